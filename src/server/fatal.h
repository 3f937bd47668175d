// server/fatal.h — the exit codes of `hmdb serve`, and fatal(): how the server stops on an
// error it must not survive.
//
// The codes are the operator's contract (docs/operations.md, "Exit codes"; docs/cluster.md
// names the ones a supervisor must not restart). A code says what the operator does, not
// where in the code the error was found: the same condition exits with the same code whether
// it is met while starting or while running.
//
// fatal() is for errors found where no caller can take them back: after a failed write or
// fsync (never retried: the file's content is unknown), on a log entry or snapshot that
// cannot be applied (applying past it would diverge from the other nodes). It logs one line,
// "FATAL: <message>", and _exit()s at once: no destructor, atexit handler or flush of
// replies runs, so no reply for a write that was not durable leaves the process. (stderr is
// unbuffered, so the line is out first.) Errors met before serving are returned as a Status
// instead and end in main's "cannot start: ..." with the same codes.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <utility>

#include "server/logging.h"

namespace hmdb::server {

// Exit codes of `hmdb serve`. Unscoped on purpose: they are process exit statuses (int).
enum ExitCode : int {
  // Stopped cleanly on SIGTERM/SIGINT: replies flushed, log synced.
  kExitOk = 0,
  // Could not start, or this binary cannot go on with this data: a bad flag, the port in
  // use, or data of another app or of a newer schema version (in a snapshot, a log entry or
  // the leader's snapshot). Fix the command line or start the right (newer) binary.
  kExitStartupFailure = 1,
  // The data directory is damaged (a checksum failed, a segment is missing, a sound record
  // could not be decoded): the message names the file. Needs a person, not a restart loop.
  kExitCorruption = 2,
  // A write or fsync to the data directory failed (log, or a snapshot received from the
  // leader). Never retried; fix the disk and restart: recovery replays the log up to its
  // last sound record.
  kExitDiskFailure = 3,
  // This node was removed from the cluster: it applied a membership without itself, or a
  // member refused it as a non-member of a newer committed membership (cluster.cc). Stops
  // cleanly like SIGTERM; its data directory is kept; restarting it does not make it a
  // member again.
  kExitRemoved = 4,
  // A committed log entry does not mean here what it meant to the node that logged it (a
  // command that no longer parses under the version it was logged under, an entry stamped
  // with a version never activated): applying it differently would make the nodes disagree
  // silently. Needs a person: the binary, or its app's version history, is not the one the
  // cluster's data was written with.
  kExitDiverged = 5,
};

// Logs "FATAL: <message>" (one log_line) and ends the process with `code` at once.
[[noreturn]] inline void fatal_message(ExitCode code, std::string_view message) {
  log_line("FATAL: {}", message);
  ::_exit(code);
}

template <class... Args>
[[noreturn]] void fatal(ExitCode code, fmt::format_string<Args...> format, Args&&... args) {
  fatal_message(code, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace hmdb::server
