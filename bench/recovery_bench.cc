// bench/recovery_bench.cc — how fast the log is written and, above all, replayed at startup
// (goal: >= 1 million records/s). A program, not a test: it prints figures, it does not
// pass or fail.
//
// It writes N entries (default 2,000,000) whose payload is a batch of --commands commands
// `SET key:<i> <value>` of about --payload bytes in all, in appends of --batch entries (as
// group commit would), with a hard-state record in every --hard-state-every-th append (the
// server writes one whenever the commit index moved), syncs, then times --runs times each:
//   - recover_log() alone (read, check, copy payloads into entries), and a scan without
//     payload copies (what `hmdb log verify` does);
//   - the whole replay the server does at startup, minus the app: recover_log(), the
//     consensus core restored from it, the single node's election, every committed entry
//     handed out (by copy, as raft::Ready::committed, and by reference, as
//     Ready::committed_refs) and its command batch decoded. The app's apply() comes on top
//     of this (measure it with bench/restart.py).
// Rates are records/s (entries + hard-state records: what the reader decodes) and
// entries/s, by wall clock and per CPU-second (on a loaded machine the wall clock lies).
// The page cache is warm (the file was just written), which is also the case after a
// process crash; after a reboot the disk's read speed adds to these figures.
//
// It then times --sync-rounds rounds of one append + one fdatasync (group commit), and
// writes a --snapshot-mb snapshot (streamed through the Encoder, fsync'ed) and
// reads it back (mmap + header and whole-file checksum), and reports both rates.
//
// A log shaped like the one bench/restart.py replays (~4 SETs per entry, a hard state per
// append, ~130-byte payloads):
//   recovery_bench --records 1000000 --commands 4 --payload 130 --batch 1 --hard-state-every 1
//
// usage: recovery_bench [--records N] [--commands N] [--payload BYTES] [--batch N]
//                       [--hard-state-every N] [--segment-mb MB] [--runs N]
//                       [--sync-rounds N] [--snapshot-mb MB] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <functional>
#include <string>
#include <vector>

#include "core/batch.h"
#include "raft/raft.h"
#include "storage/log.h"
#include "storage/snapshot.h"

using namespace hmdb;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// CPU seconds (user + system) this process has used: on a shared, loaded machine the
// wall-clock rate understates what one core does, so both are reported.
double cpu_seconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Runs body in a forked child and returns its wall-clock and CPU seconds. Every measured
// run gets a fresh copy of this process: a run must not find the pages and free lists an
// earlier run left in the heap (that made later phases look 2x cheaper than the first), as
// a restarting server does not. The child exits nonzero if body fails.
struct Timing {
  double seconds = 0;
  double cpu = 0;
};
Timing run_in_child(const std::function<void()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) {
    std::perror("pipe");
    std::exit(1);
  }
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    std::perror("fork");
    std::exit(1);
  }
  if (pid == 0) {
    ::close(fds[0]);
    auto t = Clock::now();
    double c = cpu_seconds();
    body();
    Timing out{seconds_since(t), cpu_seconds() - c};
    bool ok = ::write(fds[1], &out, sizeof out) == static_cast<ssize_t>(sizeof out);
    std::fflush(nullptr);
    ::_exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  Timing out;
  ssize_t got = ::read(fds[0], &out, sizeof out);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof out) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "a measured run failed (child status %d)\n", status);
    std::exit(1);
  }
  return out;
}

uint64_t arg_u64(int argc, char** argv, const char* name, uint64_t fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string(argv[i]) == name) return std::strtoull(argv[i + 1], nullptr, 10);
  }
  return fallback;
}

std::string arg_str(int argc, char** argv, const char* name, std::string fallback) {
  for (int i = 1; i + 1 < argc; i++) {
    if (std::string(argv[i]) == name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const uint64_t records = arg_u64(argc, argv, "--records", 2'000'000);
  const uint64_t payload_target = arg_u64(argc, argv, "--payload", 60);
  const uint64_t commands = std::max<uint64_t>(1, arg_u64(argc, argv, "--commands", 1));
  const uint64_t batch = std::max<uint64_t>(1, arg_u64(argc, argv, "--batch", 100));
  const uint64_t hard_state_every = arg_u64(argc, argv, "--hard-state-every", 0);
  const uint64_t segment_mb = arg_u64(argc, argv, "--segment-mb", 64);
  const uint64_t runs = std::max<uint64_t>(1, arg_u64(argc, argv, "--runs", 3));
  std::string dir = arg_str(argc, argv, "--dir", "");
  bool own_dir = dir.empty();
  if (own_dir) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hmdb-recovery-bench-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    dir = tmpl;
  }
  storage::Env* env = storage::Env::posix();

  // ---- write ----
  std::unique_ptr<storage::LogWriter> writer;
  Status s = storage::LogWriter::open(env, dir, storage::LogOptions{.segment_bytes = segment_mb << 20}, &writer);
  if (!s) {
    std::fprintf(stderr, "open: %s\n", s.to_string().c_str());
    return 1;
  }
  raft::HardState hs{1, 1, 0};
  std::vector<raft::Entry> entries(batch);
  uint64_t payload_bytes = 0;
  uint64_t hard_states = 1;
  uint64_t appends = 0;
  auto t0 = Clock::now();
  if (!(s = writer->append(&hs, std::span<const raft::Entry>()))) {
    std::fprintf(stderr, "append: %s\n", s.to_string().c_str());
    return 1;
  }
  for (uint64_t next = 1; next <= records;) {
    uint64_t n = std::min(batch, records - next + 1);
    for (uint64_t i = 0; i < n; i++, next++) {
      core::BatchBuilder b(1700000000000 + next);
      std::vector<std::string> keys, values;
      for (uint64_t c = 0; c < commands; c++) {
        std::string key = "key:" + std::to_string(next * commands + c);
        // 16 bytes of batch framing, then per command SET + key (+ 4 bytes of lengths);
        // the value pads the payload to the target.
        size_t share = payload_target > 16 ? (payload_target - 16) / commands : 0;
        size_t fixed = 4 + 3 + key.size();
        values.emplace_back(share > fixed ? share - fixed : 1, 'v');
        keys.push_back(std::move(key));
      }
      for (uint64_t c = 0; c < commands; c++) {
        std::vector<std::string_view> argv_set{"SET", keys[c], values[c]};
        b.add(Args(argv_set));
      }
      entries[i] = raft::Entry{1, next, raft::EntryType::kNormal, 1, b.finish()};
      payload_bytes += entries[i].data.size();
    }
    // The commit index as group commit would persist it: what was durable before this append.
    raft::HardState append_hs{1, 1, next - n - 1};
    bool with_hs = hard_state_every > 0 && appends % hard_state_every == 0;
    hard_states += with_hs;
    appends++;
    s = writer->append(with_hs ? &append_hs : nullptr, std::span<const raft::Entry>(entries.data(), n));
    if (!s) {
      std::fprintf(stderr, "append: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  if (!(s = writer->sync())) {
    std::fprintf(stderr, "sync: %s\n", s.to_string().c_str());
    return 1;
  }
  double write_s = seconds_since(t0);
  uint64_t log_bytes = writer->log_bytes();
  size_t segments = writer->segment_count();
  writer.reset();
  const uint64_t all_records = records + hard_states;
  std::printf("wrote %llu entries of %llu commands (avg payload %.1f bytes) + %llu hard states = %llu records, "
              "%.1f MiB in %zu segments, in %.2f s: %.0f entries/s, %.0f MiB/s\n",
              static_cast<unsigned long long>(records), static_cast<unsigned long long>(commands),
              static_cast<double>(payload_bytes) / records, static_cast<unsigned long long>(hard_states),
              static_cast<unsigned long long>(all_records), log_bytes / 1048576.0, segments, write_s,
              records / write_s, log_bytes / 1048576.0 / write_s);

  // ---- recover ----
  auto report = [&](const char* what, std::vector<double> times, std::vector<double> cpu_times) {
    std::sort(times.begin(), times.end());
    std::sort(cpu_times.begin(), cpu_times.end());
    double median = times[times.size() / 2];
    double cpu_median = cpu_times[cpu_times.size() / 2];
    std::printf("%s: median of %llu runs %.3f s (min %.3f, max %.3f): %.2f M records/s (%.2f M entries/s), "
                "%.0f MiB/s; CPU %.3f s: %.2f M records per CPU-second\n",
                what, static_cast<unsigned long long>(runs), median, times.front(), times.back(),
                all_records / median / 1e6, records / median / 1e6, log_bytes / 1048576.0 / median, cpu_median,
                all_records / cpu_median / 1e6);
  };
  auto recover = [&](bool keep_data, storage::RecoveredLog* log) {
    storage::ScanOptions options;
    options.keep_data = keep_data;
    Status rs = storage::scan_log(env, dir, 0, options, log);
    if (!rs || log->entries.size() != records || log->records != all_records) {
      std::fprintf(stderr, "recovery failed: %s (%zu entries, %llu records)\n", rs.to_string().c_str(),
                   log->entries.size(), static_cast<unsigned long long>(log->records));
      std::exit(1);
    }
  };
  auto measure = [&](const char* what, bool keep_data) {
    std::vector<double> times, cpu_times;
    for (uint64_t r = 0; r < runs; r++) {
      Timing t = run_in_child([&] {
        storage::RecoveredLog log;
        recover(keep_data, &log);
      });
      times.push_back(t.seconds);
      cpu_times.push_back(t.cpu);
    }
    report(what, times, cpu_times);
  };
  measure("recover_log (entries with payloads)", true);
  measure("scan only (verify, no payload copies)", false);

  // The server's startup replay without the app (server/recovery.cc, Node::drive_raft):
  // restore the core, let the single node elect itself, persist its no-op at once (the
  // server writes and syncs it; here it is acknowledged without a disk), and take every
  // committed entry, decoding its batch as apply would. Freeing the log is included.
  auto replay = [&](const char* what, bool by_reference) {
    std::vector<double> times, cpu_times;
    for (uint64_t r = 0; r < runs; r++) {
      Timing timing = run_in_child([&] {
      uint64_t applied = 0, applied_commands = 0;
      {
        storage::RecoveredLog log;
        recover(true, &log);
        raft::RestoreState restore;
        restore.initial_conf.voters = {1};
        restore.hard_state = log.hard_state;
        raft::Index last_index = log.entries.empty() ? 0 : log.entries.back().index;
        raft::Term last_term = log.entries.empty() ? 0 : log.entries.back().term;
        restore.entries = std::move(log.entries);
        raft::Config config;
        config.id = 1;
        raft::Raft core(config, std::move(restore));
        raft::HardState durable = log.hard_state;
        std::vector<std::string_view> argv_scratch;
        auto apply = [&](const raft::Entry& e) {
          if (e.type == raft::EntryType::kNormal) {
            core::BatchReader reader(e.data);
            while (reader.next(argv_scratch)) applied_commands++;
            if (!reader.ok()) {
              std::fprintf(stderr, "replay: malformed batch at %llu\n", static_cast<unsigned long long>(e.index));
              std::exit(1);
            }
          }
          applied = e.index;
        };
        auto drive = [&] {
          while (core.has_ready()) {
            raft::Ready rd = core.take_ready(raft::ReadyOptions{.committed_by_reference = by_reference});
            bool persist = rd.hard_state.has_value() || !rd.entries.empty();
            if (rd.hard_state) durable = *rd.hard_state;
            if (!rd.entries.empty()) {
              last_index = rd.entries.back().index;
              last_term = rd.entries.back().term;
            }
            for (const raft::Entry& e : rd.committed) apply(e);
            for (const raft::Entry* e : rd.committed_refs) apply(*e);
            if (!rd.committed.empty() || !rd.committed_refs.empty()) core.applied_to(applied);
            if (persist) core.persisted(raft::PersistAck{last_index, last_term, durable});
          }
        };
        for (int i = 0; i < 1000 && core.role() != raft::Role::kLeader; i++) {
          core.tick();
          drive();
        }
        drive();
      }
      if (applied != records + 1 || applied_commands != records * commands) {
        std::fprintf(stderr, "replay applied %llu entries (%llu commands), expected %llu (+ the no-op)\n",
                     static_cast<unsigned long long>(applied), static_cast<unsigned long long>(applied_commands),
                     static_cast<unsigned long long>(records));
        std::exit(1);
      }
      });
      times.push_back(timing.seconds);
      cpu_times.push_back(timing.cpu);
    }
    report(what, times, cpu_times);
  };
  replay("replay without the app, committed by copy", false);
  replay("replay without the app, committed by reference", true);

  // ---- group commit: one append of --batch entries + one fdatasync, --sync-rounds times ----
  const uint64_t sync_rounds = arg_u64(argc, argv, "--sync-rounds", 200);
  if (sync_rounds > 0) {
    std::unique_ptr<storage::LogWriter> w;
    s = storage::LogWriter::open(env, dir, storage::LogOptions{.segment_bytes = segment_mb << 20}, &w);
    if (!s) {
      std::fprintf(stderr, "reopen: %s\n", s.to_string().c_str());
      return 1;
    }
    std::vector<double> sync_us;
    uint64_t next = records + 1;
    for (uint64_t round = 0; round < sync_rounds; round++) {
      for (uint64_t i = 0; i < batch; i++) entries[i].index = next++;
      s = w->append(nullptr, std::span<const raft::Entry>(entries.data(), batch));
      auto t = Clock::now();
      if (s) s = w->sync();
      sync_us.push_back(seconds_since(t) * 1e6);
      if (!s) {
        std::fprintf(stderr, "append/sync: %s\n", s.to_string().c_str());
        return 1;
      }
    }
    std::sort(sync_us.begin(), sync_us.end());
    std::printf("group commit (%llu entries per fdatasync, %llu rounds): fdatasync p50 %.0f us, p99 %.0f us, max %.0f us\n",
                static_cast<unsigned long long>(batch), static_cast<unsigned long long>(sync_rounds),
                sync_us[sync_us.size() / 2], sync_us[sync_us.size() * 99 / 100], sync_us.back());
  }

  // ---- snapshot: streamed write (fsync included) and verified read of --snapshot-mb ----
  const uint64_t snapshot_mb = arg_u64(argc, argv, "--snapshot-mb", 256);
  if (snapshot_mb > 0) {
    std::string chunk(4096, 's');
    raft::SnapshotMeta meta{records, 1, {{1}, {}}, 1};
    std::string path;
    auto t = Clock::now();
    Status ws = storage::write_snapshot(env, dir, meta, "bench", [&](Encoder& e) {
      for (uint64_t i = 0; i < (snapshot_mb << 20) / chunk.size(); i++) e.raw(chunk);
    }, &path);
    double write_secs = seconds_since(t);
    if (!ws) {
      std::fprintf(stderr, "snapshot write: %s\n", ws.to_string().c_str());
      return 1;
    }
    t = Clock::now();
    storage::LoadedSnapshot snap;
    Status rs = storage::read_snapshot_file(env, path, &snap);
    double read_secs = seconds_since(t);
    if (!rs || snap.payload.size() != (snapshot_mb << 20)) {
      std::fprintf(stderr, "snapshot read: %s\n", rs.to_string().c_str());
      return 1;
    }
    std::printf("snapshot of %llu MiB: write+fsync %.2f s (%.0f MiB/s), map+verify %.2f s (%.0f MiB/s)\n",
                static_cast<unsigned long long>(snapshot_mb), write_secs, snapshot_mb / write_secs, read_secs,
                snapshot_mb / read_secs);
  }

  if (own_dir) std::filesystem::remove_all(dir);
  return 0;
}
