// server/dry_run.h — `hmdb dry-run --dir COPY`: this binary replays a copy of a data
// directory (its newest snapshot, then the log after it) as a restarting single node would,
// without serving, and reports what it reached: the applied index, the state digest as
// `CLUSTER DIGEST` / `INFO digest` give it, the digest of the migrated state at this binary's
// own schema version, the time, the rates, and the first error. For an upgrade: run the new
// binary over a copy of an old version's data before anything touches the cluster
// (docs/migrations.md, docs/cluster.md).
//
// It never writes the directory: every file access goes through storage::ReadOnlyEnv, which
// refuses each write, truncation, removal, rename and directory creation (so a torn tail is
// described, not cut, and a stale temporary snapshot is left where it is).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "hmdb/server.h"

namespace hmdb::server {

// How often progress is printed while the log is applied (and after each segment read).
inline constexpr uint64_t kDryRunProgressMs = 1000;

struct DryRunOptions {
  std::string dir;
  uint64_t progress_ms = kDryRunProgressMs;
};

// Exit codes, as `hmdb serve` would stop on the same data (docs/operations.md, "Exit codes"):
// kExitOk (0) when everything replayed; kExitCorruption (2) for a damaged snapshot or log;
// kExitDiverged (5) for an entry this binary does not apply as the binary that logged it did;
// kExitStartupFailure (1) for data this binary does not read (a schema version outside its
// range, in the snapshot or the log; another app's) or no such directory. The report goes to
// `out`, progress lines to `progress`.
int dry_run(const StateMachineFactory& factory, const DryRunOptions& options, std::ostream& out,
            std::ostream& progress);

}  // namespace hmdb::server
