// core/request.h — HMDB.REQ <request-id> <command> [args...]: a write tagged with the id of
// the request it carries, so that a retry returns the first outcome instead of applying the
// write again (docs/kv-commands.md, "Retries that never apply twice").
//
// A client chooses the id (a UUID, or client-id:counter), unique per logical request, and
// sends the same words again when it retries, on any node, after a failover. The wrapper is
// an ordinary command to a client library (every library can send an arbitrary command), and
// its reply is the wrapped command's. Where it goes is decided by what it wraps:
//
//   an app write       a tagged write: the log carries it with its id (core/batch.h, the
//                      request item), and the apply path applies it only if the request
//                      table (core/request_table.h) does not know the id; otherwise the
//                      first reply is the answer, and nothing is applied
//   EXEC               the transaction as a whole is tagged (writes only, no WATCH)
//   an app query       runs as if unwrapped: a query changes nothing, a retry is always safe
//   anything else      an error (a shell command, HMDB.REQ itself, an unknown command)
//
// This file parses the words; core::Replica routes them, core/apply.cc dedupes.
// Pure: no state. The parser is fuzzed (fuzz/request_fuzz.cc).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "hmdb/app.h"
#include "hmdb/state_machine.h"
#include "hmdb/text.h"

namespace hmdb::core {

inline constexpr std::string_view kRequestCommandName = "HMDB.REQ";
// A request id is 1 to 64 bytes, any bytes (a UUID is 36).
inline constexpr size_t kRequestIdBytesMax = 64;

struct RequestCommand {
  std::string_view id;
  Args command;  // the wrapped command: a suffix of the words
};

inline bool is_request(Args argv) {
  return !argv.empty() && argv[0].size() == kRequestCommandName.size() && iequals(argv[0], kRequestCommandName);
}

// Parses HMDB.REQ's words (REQUIRES: is_request(argv)). On success fills *out and returns
// true; otherwise writes the error (a RESP error message without its '-') to *error.
inline bool parse_request(Args argv, RequestCommand* out, std::string* error) {
  if (argv.size() < 3) {
    *error = wrong_arity(argv[0]);
    return false;
  }
  if (argv[1].empty() || argv[1].size() > kRequestIdBytesMax) {
    *error = "ERR a request id must be 1 to 64 bytes";
    return false;
  }
  const Args command = argv.subspan(2);
  if (is_request(command)) {
    *error = "ERR HMDB.REQ cannot wrap HMDB.REQ";
    return false;
  }
  out->id = argv[1];
  out->command = command;
  return true;
}

}  // namespace hmdb::core
