// bench/recovery_bench.cc — how fast the log is written and, above all, replayed at startup
// (goal: >= 1 million records/s). A program, not a test: it prints figures, it does not
// pass or fail.
//
// It writes N entries (default 2,000,000) whose payload is a one-command batch
// `SET key:<i> <value>` of about --payload bytes, in appends of --batch entries (as group
// commit would), syncs, then times recover_log() --runs times and reports the median.
// The page cache is warm (the file was just written), which is also the case after a
// process crash; after a reboot the disk's read speed adds to these figures.
//
// It then times --sync-rounds rounds of one append + one fdatasync (group commit), and
// writes a --snapshot-mb snapshot (streamed through the Encoder, fsync'ed) and
// reads it back (mmap + header and whole-file checksum), and reports both rates.
//
// usage: recovery_bench [--records N] [--payload BYTES] [--batch N] [--segment-mb MB]
//                       [--runs N] [--sync-rounds N] [--snapshot-mb MB] [--dir DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sys/resource.h>
#include <string>
#include <vector>

#include "core/batch.h"
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
  const uint64_t batch = std::max<uint64_t>(1, arg_u64(argc, argv, "--batch", 100));
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
  auto t0 = Clock::now();
  if (!(s = writer->append(&hs, std::span<const raft::Entry>()))) {
    std::fprintf(stderr, "append: %s\n", s.to_string().c_str());
    return 1;
  }
  for (uint64_t next = 1; next <= records;) {
    uint64_t n = std::min(batch, records - next + 1);
    for (uint64_t i = 0; i < n; i++, next++) {
      core::BatchBuilder b(1700000000000 + next);
      std::string key = "key:" + std::to_string(next);
      // 16 bytes of batch framing + SET + key; the value pads the payload to the target.
      size_t fixed = 16 + 3 + key.size();
      std::string value(payload_target > fixed ? payload_target - fixed : 1, 'v');
      std::vector<std::string_view> argv_set{"SET", key, value};
      b.add(Args(argv_set));
      entries[i] = raft::Entry{1, next, raft::EntryType::kNormal, 1, b.finish()};
      payload_bytes += entries[i].data.size();
    }
    s = writer->append(nullptr, std::span<const raft::Entry>(entries.data(), n));
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
  std::printf("wrote %llu entries (avg payload %.1f bytes, %.1f MiB in %zu segments) in %.2f s: %.0f entries/s, %.0f MiB/s\n",
              static_cast<unsigned long long>(records), static_cast<double>(payload_bytes) / records,
              log_bytes / 1048576.0, segments, write_s, records / write_s, log_bytes / 1048576.0 / write_s);

  // ---- recover ----
  auto measure = [&](const char* what, bool keep_data) {
    std::vector<double> times, cpu_times;
    for (uint64_t r = 0; r < runs; r++) {
      storage::RecoveredLog log;
      storage::ScanOptions options;
      options.keep_data = keep_data;
      auto t = Clock::now();
      double c = cpu_seconds();
      Status rs = storage::scan_log(env, dir, 0, options, &log);
      double secs = seconds_since(t);
      cpu_times.push_back(cpu_seconds() - c);
      if (!rs || log.entries.size() != records) {
        std::fprintf(stderr, "recovery failed: %s (%zu entries)\n", rs.to_string().c_str(), log.entries.size());
        std::exit(1);
      }
      times.push_back(secs);
    }
    std::sort(times.begin(), times.end());
    std::sort(cpu_times.begin(), cpu_times.end());
    double median = times[times.size() / 2];
    double cpu_median = cpu_times[cpu_times.size() / 2];
    std::printf("%s: median of %llu runs %.3f s (min %.3f, max %.3f): %.2f M records/s, %.0f MiB/s; CPU %.3f s: %.2f M records per CPU-second\n", what,
                static_cast<unsigned long long>(runs), median, times.front(), times.back(), records / median / 1e6,
                log_bytes / 1048576.0 / median, cpu_median, records / cpu_median / 1e6);
  };
  measure("recover_log (entries with payloads)", true);
  measure("scan only (verify, no payload copies)", false);

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
