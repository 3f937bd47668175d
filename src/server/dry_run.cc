// server/dry_run.cc — `hmdb dry-run`: a data directory replayed read-only (dry_run.h).
//
// The same steps as a node's recovery (server/recovery.cc), without the consensus core or a
// log writer: the newest snapshot through core::load_state, the log through
// storage::scan_log (repair off) and storage::restart_log (the same rules for what a
// restart keeps), each entry applied with core::apply_batch, the engine's one apply path. A
// single node that restarts on this directory commits and applies every entry kept, so the
// result is the state it would serve.
#include "server/dry_run.h"

#include <fmt/format.h>

#include <ostream>

#include "common/assert.h"
#include "common/clock.h"
#include "core/apply.h"
#include "core/digest_marks.h"
#include "core/request_table.h"
#include "core/state.h"
#include "server/dir_lock.h"
#include "server/fatal.h"
#include "storage/log.h"
#include "storage/read_only_env.h"
#include "storage/restart.h"
#include "storage/snapshot.h"

namespace hmdb::server {

namespace {

double per_second(uint64_t n, uint64_t us) { return us == 0 ? 0.0 : static_cast<double>(n) * 1e6 / static_cast<double>(us); }
double ms_of(uint64_t us) { return static_cast<double>(us) / 1000.0; }

}  // namespace

int dry_run(const StateMachineFactory& factory, const DryRunOptions& options, std::ostream& out, std::ostream& progress) {
  const uint64_t t0 = monotonic_us();
  std::unique_ptr<StateMachine> app = factory();
  storage::ReadOnlyEnv env(storage::Env::posix());
  const std::string& dir = options.dir;
  auto fail = [&](int code, const std::string& what) {
    out << "first error: " << what << "\n";
    out << "result: failed (exit " << code << ")\n";
    return code;
  };

  out << fmt::format("dry run of {} by app '{}' (reads schema versions {}..{}); the directory is opened read-only\n",
                     dir, app->app_name(), app->oldest_schema_version(), app->schema_version());
  // A live node's log tail moves under the reader: the result would be a torn state.
  if (Status s = check_dir_not_locked(dir); !s)
    return fail(kExitStartupFailure, s.message() + " (dry-run a copy of the directory: cp -a, or the node's snapshot)");
  std::vector<std::string> names;
  if (Status s = env.list_dir(dir, &names); !s) return fail(kExitStartupFailure, s.to_string());

  // 1. The newest snapshot. A stale temporary one is left in place (read-only).
  core::RequestTable requests;
  std::optional<raft::SnapshotMeta> snapshot_meta;
  uint64_t snapshot_bytes = 0;
  storage::LoadedSnapshot snap;
  Status s = storage::read_latest_snapshot(&env, dir, &snap, /*remove_stale_temp_files=*/false);
  if (s.is_ok()) {
    if (snap.app_name != app->app_name())
      return fail(kExitStartupFailure, fmt::format("snapshot {} holds the state of app '{}', but this binary is app '{}'",
                                                   snap.path, snap.app_name, app->app_name()));
    if (!app->reads_schema_version(snap.meta.schema_version))
      return fail(kExitStartupFailure,
                  fmt::format("snapshot {} holds {}", snap.path, core::unreadable_schema(*app, snap.meta.schema_version)));
    progress << fmt::format("dry run: loading snapshot {} (index {}, schema version {}, {} bytes)\n", snap.path,
                            snap.meta.index, snap.meta.schema_version, snap.payload.size())
             << std::flush;
    const uint64_t load_start = monotonic_us();
    Decoder in(snap.payload);
    uint32_t active = 0;
    const core::LoadState loaded =
        core::load_state(*app, requests, in, snap.meta.schema_version, snap.format_version, &active);
    if (loaded == core::LoadState::kUnsupportedActive)
      return fail(kExitStartupFailure, fmt::format("snapshot {} is of a cluster whose active schema version is {}", snap.path,
                                             core::unreadable_schema(*app, active)));
    if (loaded == core::LoadState::kRefused)
      return fail(kExitStartupFailure,
                  core::refused_migration(*app, "snapshot " + snap.path, snap.meta.schema_version, in.refusal()));
    if (loaded != core::LoadState::kOk)
      return fail(kExitCorruption,
                  fmt::format("snapshot {} passed its checksum but its {} could not be decoded by this binary (schema "
                              "version {}, snapshot format {})",
                              snap.path, loaded == core::LoadState::kBadRequests ? "request table" : "app state",
                              snap.meta.schema_version, snap.format_version));
    snapshot_meta = snap.meta;
    snapshot_bytes = snap.payload.size();
    out << fmt::format("snapshot: {} at index {}, schema version {}, {} bytes, loaded (and migrated) in {:.1f} ms\n",
                       snap.path, snap.meta.index, snap.meta.schema_version, snapshot_bytes,
                       ms_of(monotonic_us() - load_start));
  } else if (s.is_not_found()) {
    out << "snapshot: none\n";
  } else {
    return fail(s.is_corruption() ? kExitCorruption : kExitStartupFailure, s.to_string());
  }
  const raft::Index after = snapshot_meta ? snapshot_meta->index : 0;

  // 2. The log after it: read, never repaired.
  storage::ScanOptions scan;
  scan.repair = false;
  scan.on_segment = [&](const storage::SegmentReport& r) {
    progress << fmt::format("dry run: read {} ({} records, {} entries, {} bytes)\n", r.path, r.records, r.entries, r.bytes)
             << std::flush;
  };
  storage::RecoveredLog log;
  s = storage::scan_log(&env, dir, after, scan, &log);
  if (!s) return fail(s.is_corruption() ? kExitCorruption : kExitStartupFailure, s.to_string());
  if (!log.torn_tail.empty())
    out << "note: the log ends in a torn record (a write a crash interrupted); a node restarting here cuts it off, the "
           "dry run leaves it: "
        << log.torn_tail << "\n";
  storage::RestartLog kept = storage::restart_log(log, snapshot_meta, raft::kNoNode, /*writes_log=*/false);
  if (!kept.dropped.empty()) out << "note: entries a leader's snapshot replaced are not applied: " << kept.dropped << "\n";
  out << fmt::format("log: {} segments, {} records, {} bytes; {} entries after index {} (commit hint {})\n", log.segments,
                     log.records, log.bytes, kept.entries.size(), after, kept.hard_state.commit);

  // 3. Every entry kept, in order, through the engine's apply path.
  const uint64_t apply_start = monotonic_us();
  uint64_t last_print = apply_start;
  uint64_t applied = after, commands = 0;
  const uint64_t target = kept.entries.empty() ? after : kept.entries.back().index;
  core::ApplyScratch scratch;
  core::DigestMarks marks;  // no hasher: each mark's digest is taken where it stands
  std::vector<uint64_t> mark_indexes;  // entries that held a mark (the last kDigestMarksKept are reported)
  for (const raft::Entry& e : kept.entries) {
    if (e.type == raft::EntryType::kNormal) {
      const core::ApplyResult r =
          core::apply_batch(*app, e.data, e.index, e.schema_version, nullptr, scratch, nullptr, &requests, nullptr, &marks);
      commands += r.commands;
      switch (r.status) {
        case core::ApplyStatus::kOk:
          break;
        case core::ApplyStatus::kUnsupportedSchema:
          return fail(kExitStartupFailure, fmt::format("entry {} (term {}) {}: {}", e.index, e.term,
                                                 r.activation ? "activates" : "is logged under",
                                                 core::unreadable_schema(*app, r.schema_version)));
        case core::ApplyStatus::kDiverged:
          return fail(kExitDiverged, fmt::format("entry {} (term {}, schema version {}): {}", e.index, e.term,
                                                 e.schema_version, r.divergence));
        case core::ApplyStatus::kMalformed:
          return fail(kExitCorruption, fmt::format("entry {} (term {}) is not a well-formed command batch (its checksum "
                                                   "passed: written by a broken or different build)",
                                                   e.index, e.term));
        case core::ApplyStatus::kNewerFormat:
          return fail(kExitStartupFailure, fmt::format("entry {} (term {}) is a batch of format {}, newer than this binary reads",
                                                 e.index, e.term, r.format));
        case core::ApplyStatus::kHalfApplied:  // not here: no write is sliced (apply_batch was given no HalfApplied)
          HMDB_ASSERT(false, "entry %llu half applied in a dry run", static_cast<unsigned long long>(e.index));
      }
      if (marks.find(e.index) && (mark_indexes.empty() || mark_indexes.back() != e.index)) mark_indexes.push_back(e.index);
    }
    applied = e.index;
    const uint64_t now = monotonic_us();
    if (now - last_print >= options.progress_ms * 1000) {
      last_print = now;
      progress << fmt::format("dry run: applied index {} of {} ({:.0f} entries/s)\n", applied, target,
                              per_second(applied - after, now - apply_start))
               << std::flush;
    }
  }
  const uint64_t end = monotonic_us();
  const uint64_t apply_us = end - apply_start, total_us = end - t0;

  out << fmt::format("applied: index {} ({} entries, {} commands) in {:.1f} ms: {:.0f} entries/s, {:.0f} commands/s\n",
                     applied, applied - after, commands, ms_of(apply_us), per_second(applied - after, apply_us),
                     per_second(commands, apply_us));
  out << fmt::format("time: {:.1f} ms in all: {:.0f} log records/s, {:.1f} MB/s of snapshot and log\n", ms_of(total_us),
                     per_second(log.records, total_us), per_second(snapshot_bytes + log.bytes, total_us) / 1e6);
  for (uint64_t i : mark_indexes) {
    if (const core::DigestMark* m = marks.find(i))
      out << fmt::format("digest mark: {} {:016x} {}\n", m->index, m->digest.value, m->digest.schema_version);
  }
  out << fmt::format("active schema version: {}\n", app->active_schema_version());
  // As CLUSTER DIGEST answers: "<applied index> <digest> <schema version it hashed at>".
  const core::StateDigest d = core::state_digest(*app, requests);
  out << fmt::format("digest: {} {:016x} {}\n", applied, d.value, d.schema_version);
  out << fmt::format("migrated digest: {:016x} (the app's state at this binary's schema version {})\n", app->digest(),
                     app->schema_version());
  if (env.refused() != 0)  // nothing above writes; a refusal would have failed its step
    return fail(kExitStartupFailure, fmt::format("{} writes were attempted and refused", env.refused()));
  out << "first error: none\nresult: ok\n";
  return kExitOk;
}

}  // namespace hmdb::server
