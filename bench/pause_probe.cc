// bench/pause_probe.cc — the platform's own pauses: threads that do nothing but read the clocks,
// and the longest gap each saw between two consecutive reads, in its own CPU time
// (CLOCK_THREAD_CPUTIME_ID) and in wall time (CLOCK_MONOTONIC).
//
// Why: the server's figures for "the loop's CPU in one turn" (INFO last_long_turn_cpu_*, the
// snapshot's turn_next_cpu, the fork's CPU) assume that a thread's CPU time is time it spent
// working. On a VM whose hypervisor does not report steal time (/proc/stat's steal column stays
// 0; the reference VM is one), a vCPU the host takes away for a while comes back with that
// while counted as the running thread's CPU time: a thread that only reads the clocks then sees
// a gap of milliseconds "on the CPU". This program measures that floor, so that a turn of the
// server's can be set against what the platform does to a thread doing nothing. A gap in wall
// time with little CPU in it is the guest's scheduler (another runnable thread had the CPU).
//
//     pause_probe [--seconds S] [--threads N]
//
// prints one line per thread and a summary line, all "key value" pairs for scripts:
//     pause_probe: threads N seconds S cpu_gap_max_ms X wall_gap_max_ms Y cpu_gaps_ge_4ms C ...
// Each thread spins on a CPU for S seconds: run it where the benchmark's own processes are not
// running (before or after them), and with --threads at most the machine's CPUs.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>
#include <vector>

namespace {

// The gaps counted apart, in ns: at least 1, 4, 8 and 20 ms (20 ms: issue 16 item 5's bound).
constexpr int64_t kGapBoundsNs[] = {1'000'000, 4'000'000, 8'000'000, 20'000'000};
constexpr int kBounds = sizeof(kGapBoundsNs) / sizeof(kGapBoundsNs[0]);

int64_t now_ns(clockid_t c) {
  timespec t{};
  ::clock_gettime(c, &t);
  return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
}

struct Result {
  int64_t cpu_gap_max = 0;
  int64_t wall_gap_max = 0;
  int64_t cpu_in_wall_gap_max = 0;  // the CPU time within the longest wall gap
  int64_t cpu_gaps[kBounds] = {};   // gaps in CPU time of at least kGapBoundsNs[i]
  int64_t reads = 0;
};

void spin(double seconds, Result& r) {
  const int64_t end = now_ns(CLOCK_MONOTONIC) + static_cast<int64_t>(seconds * 1e9);
  int64_t pm = now_ns(CLOCK_MONOTONIC), pc = now_ns(CLOCK_THREAD_CPUTIME_ID);
  while (pm < end) {
    const int64_t m = now_ns(CLOCK_MONOTONIC), c = now_ns(CLOCK_THREAD_CPUTIME_ID);
    const int64_t dc = c - pc, dm = m - pm;
    r.cpu_gap_max = std::max(r.cpu_gap_max, dc);
    if (dm > r.wall_gap_max) {
      r.wall_gap_max = dm;
      r.cpu_in_wall_gap_max = dc;
    }
    for (int i = 0; i < kBounds; i++)
      if (dc >= kGapBoundsNs[i]) r.cpu_gaps[i]++;
    r.reads++;
    pm = m;
    pc = c;
  }
}

void print(const char* who, int threads, double seconds, const Result& r) {
  std::printf("pause_probe: %s threads %d seconds %.1f cpu_gap_max_ms %.3f wall_gap_max_ms %.3f "
              "cpu_in_wall_gap_max_ms %.3f",
              who, threads, seconds, r.cpu_gap_max / 1e6, r.wall_gap_max / 1e6, r.cpu_in_wall_gap_max / 1e6);
  for (int i = 0; i < kBounds; i++) std::printf(" cpu_gaps_ge_%lldms %lld", static_cast<long long>(kGapBoundsNs[i] / 1'000'000),
                                                static_cast<long long>(r.cpu_gaps[i]));
  std::printf(" reads %lld\n", static_cast<long long>(r.reads));
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  int threads = 1;
  for (int i = 1; i < argc; i++) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--threads N]\n", argv[0]);
      return 2;
    }
  }
  if (seconds <= 0 || threads < 1 || threads > 64) {
    std::fprintf(stderr, "pause_probe: --seconds must be > 0 and --threads 1..64\n");
    return 2;
  }
  std::vector<Result> results(threads);
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; i++) ts.emplace_back(spin, seconds, std::ref(results[i]));
  for (auto& t : ts) t.join();
  Result all;
  for (int i = 0; i < threads; i++) {
    char who[32];
    std::snprintf(who, sizeof who, "thread %d", i);
    if (threads > 1) print(who, threads, seconds, results[i]);
    const Result& r = results[i];
    all.cpu_gap_max = std::max(all.cpu_gap_max, r.cpu_gap_max);
    if (r.wall_gap_max > all.wall_gap_max) {
      all.wall_gap_max = r.wall_gap_max;
      all.cpu_in_wall_gap_max = r.cpu_in_wall_gap_max;
    }
    for (int b = 0; b < kBounds; b++) all.cpu_gaps[b] += r.cpu_gaps[b];
    all.reads += r.reads;
  }
  print("all", threads, seconds, all);
  return 0;
}
