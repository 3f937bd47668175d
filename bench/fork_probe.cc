// bench/fork_probe.cc — a bare process's fork() cost per 2 MiB huge page, with the server's
// circumstances added one at a time: what made a kv node's snapshot fork cost 2-4 times more
// per huge page than a bare process's (the page tables the fork deposits taken warm or from
// memory the VM handed back, and memory touched since the last fork; issue 16 item 5;
// bench/README.md, "The fork's cost per huge page: the server against a bare process").
//
// Not built by CMake (a diagnosis tool, no project code):
//     g++ -O2 -pthread -o /tmp/fork_probe bench/fork_probe.cc
//     /tmp/fork_probe --mib 4096 [--threads N] [--block-mib M]   # then commands on stdin
//
// It maps MIB of memory in blocks of --block-mib (default 2: one mmap per 2 MiB block, as the
// kv app's populated blocks are; each block its own mapping, --gaps adds a guard page), each
// madvise(MADV_HUGEPAGE) and MADV_POPULATE_WRITE, and then reads commands, one a line:
//   fork [exit|read|file PATH]  fork(); the child _exit()s at once, or first reads every
//                        64-byte line of the memory, or writes the whole memory to PATH and
//                        fsyncs it (as a snapshot child does: the page cache takes it);
//                        the parent waits for it. Prints the fork's wall time, the forking
//                        thread's CPU (CLOCK_THREAD_CPUTIME_ID; and getrusage(RUSAGE_THREAD),
//                        which the server's log line used, tick-grained), its voluntary and
//                        involuntary switches, and the CPU per huge page.
//   touch read|write K   the parent reads (or writes) one byte every K KiB of its memory.
//   churn MIB            maps, writes and unmaps MIB of 4 KiB pages (the page allocator's
//                        free lists get those pages back).
//   ptwarm N             touches one 4 KiB page in each of N 2 MiB ranges of a mapping without
//                        huge pages and unmaps it: N page tables allocated and freed on this CPU.
//   ptwarm-other N       the same on a thread pinned to the other CPUs.
//   ptwarm-here N        the same on a SCHED_IDLE thread pinned to this thread's CPU, this
//                        thread pinned there too until `unpin`.
//   sleep S              sleeps S seconds (fractions allowed).
//   info                 mappings, AnonHugePages and VmPTE of this process.
//   quit
// --threads N starts N threads that wake every 50 ms and sleep again, --busy-threads N
// threads that touch a random 4 KiB page of the memory every --busy-us µs (as the server's
// loop does between snapshots). Output lines start with the command's name, for a driver.
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

constexpr size_t kHuge = size_t{2} << 20;   // a PMD-mapped page on x86-64
constexpr size_t kPage = 4096;              // the base page
constexpr size_t kLine = 64;                // what the reading child steps by

struct Block {
  char* p;
  size_t bytes;
};

std::vector<Block> g_blocks;
std::atomic<bool> g_stop{false};
cpu_set_t g_affinity;  // this thread's CPUs before `ptwarm-here` pinned it

uint64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t us_of(const timeval& tv) { return int64_t{tv.tv_sec} * 1'000'000 + tv.tv_usec; }

// The calling thread's CPU time to the ns (the scheduler's runtime, including the running
// slice). getrusage(RUSAGE_THREAD) is not enough for a fork of a few ms: it reads the runtime
// as of the last tick or switch (CONFIG_HZ=250 here: 4 ms steps).
uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

std::string status_field(const char* file, const char* key) {
  std::ifstream f(file);
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return line.substr(std::strlen(key));
  return "?";
}

size_t mappings() {
  std::ifstream f("/proc/self/maps");
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) n++;
  return n;
}

long huge_pages_now() {
  const std::string s = status_field("/proc/self/smaps_rollup", "AnonHugePages:");
  return std::atol(s.c_str()) / 2048;
}

void map_memory(size_t mib, size_t block_mib, bool gaps) {
  const size_t block = block_mib << 20;
  for (size_t done = 0; done < (mib << 20); done += block) {
    // Over-map by one huge page to align, plus one page of gap (PROT_NONE) when asked.
    const size_t span = block + kHuge + (gaps ? kPage : 0);
    char* raw = static_cast<char*>(mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (raw == MAP_FAILED) { perror("mmap"); std::exit(1); }
    char* p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~(kHuge - 1));
    if (p > raw) munmap(raw, p - raw);
    char* end = p + block;
    if (gaps) { mprotect(end, kPage, PROT_NONE); end += kPage; }
    if (raw + span > end) munmap(end, raw + span - end);
    if (madvise(p, block, MADV_HUGEPAGE) != 0) perror("MADV_HUGEPAGE");
    if (madvise(p, block, MADV_POPULATE_WRITE) != 0) perror("MADV_POPULATE_WRITE");
    g_blocks.push_back({p, block});
  }
}

void touch(bool write, size_t stride) {
  uint64_t sum = 0;
  for (auto& b : g_blocks)
    for (size_t i = 0; i < b.bytes; i += stride) {
      if (write) b.p[i]++;
      else sum += static_cast<unsigned char>(*static_cast<volatile char*>(b.p + i));
    }
  if (sum == 1) std::puts("");  // keep the reads
}

void churn(size_t mib) {
  const size_t bytes = mib << 20;
  char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) { perror("mmap"); return; }
  madvise(p, bytes, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < bytes; i += kPage) p[i] = 1;
  munmap(p, bytes);
}

// Page tables made and freed: one 4 KiB page touched in each of N 2 MiB ranges of a mapping
// without huge pages (N page-table pages and N data pages allocated, zeroed and charged),
// then unmapped (both go back to this CPU's free lists). What a fork right after takes for
// the tables it deposits may then be these pages.
void ptwarm(size_t n) {
  const size_t bytes = n * kHuge;
  char* p = static_cast<char*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) { perror("mmap"); return; }
  madvise(p, bytes, MADV_NOHUGEPAGE);
  for (size_t i = 0; i < bytes; i += kHuge) p[i] = 1;
  munmap(p, bytes);
}

void do_fork(const std::string& child, const std::string& path) {
  const long hp = huge_pages_now();
  rusage r0{}, r1{};
  getrusage(RUSAGE_THREAD, &r0);
  const uint64_t c_0 = thread_cpu_ns();
  const uint64_t t0 = now_us();
  const pid_t pid = fork();
  const uint64_t wall = now_us() - t0;
  const uint64_t cpu_ns = thread_cpu_ns() - c_0;
  if (pid == 0) {
    if (child == "read") {
      uint64_t sum = 0;
      for (auto& b : g_blocks)
        for (size_t i = 0; i < b.bytes; i += kLine) sum += static_cast<unsigned char>(b.p[i]);
      _exit(sum == 1 ? 3 : 0);
    }
    if (child == "file") {
      FILE* f = std::fopen(path.c_str(), "w");
      if (!f) _exit(4);
      for (auto& b : g_blocks)
        if (std::fwrite(b.p, 1, b.bytes, f) != b.bytes) _exit(5);
      std::fflush(f);
      fsync(fileno(f));
      std::fclose(f);
      _exit(0);
    }
    _exit(0);
  }
  getrusage(RUSAGE_THREAD, &r1);
  const int64_t rusage_us = us_of(r1.ru_utime) + us_of(r1.ru_stime) - us_of(r0.ru_utime) - us_of(r0.ru_stime);
  const int64_t cpu = static_cast<int64_t>(cpu_ns / 1000);
  const uint64_t c0 = now_us();
  int st = 0;
  waitpid(pid, &st, 0);
  std::printf("fork wall_us=%llu cpu_us=%lld rusage_us=%lld nvcsw=%ld nivcsw=%ld huge_pages=%ld cpu_ns_per_hp=%lld "
              "child_ms=%llu\n",
              static_cast<unsigned long long>(wall), static_cast<long long>(cpu), static_cast<long long>(rusage_us),
              r1.ru_nvcsw - r0.ru_nvcsw,
              r1.ru_nivcsw - r0.ru_nivcsw, hp, hp ? static_cast<long long>(cpu * 1000 / hp) : 0LL,
              static_cast<unsigned long long>((now_us() - c0) / 1000));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024, block_mib = 2;
  int threads = 0, busy = 0, busy_us = 1000;
  bool gaps = false;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    auto next = [&] { return i + 1 < argc ? std::atol(argv[++i]) : 0L; };
    if (a == "--mib") mib = next();
    else if (a == "--block-mib") block_mib = next();
    else if (a == "--gaps") gaps = true;
    else if (a == "--threads") threads = static_cast<int>(next());
    else if (a == "--busy-threads") busy = static_cast<int>(next());
    else if (a == "--busy-us") busy_us = static_cast<int>(next());
    else { std::fprintf(stderr, "unknown option %s\n", a.c_str()); return 2; }
  }
  const uint64_t t0 = now_us();
  map_memory(mib, block_mib, gaps);
  std::printf("ready mib=%zu fill_ms=%llu mappings=%zu huge_pages=%ld pid=%d\n", mib,
              static_cast<unsigned long long>((now_us() - t0) / 1000), mappings(), huge_pages_now(), getpid());
  std::fflush(stdout);
  std::vector<std::thread> ts;
  for (int i = 0; i < threads; i++)
    ts.emplace_back([] { while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50)); });
  for (int i = 0; i < busy; i++)
    ts.emplace_back([i, busy_us] {
      std::mt19937_64 rng(i + 1);
      while (!g_stop.load()) {
        const Block& b = g_blocks[rng() % g_blocks.size()];
        b.p[(rng() % (b.bytes / kPage)) * kPage + 8]++;
        std::this_thread::sleep_for(std::chrono::microseconds(busy_us));
      }
    });
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream in(line);
    std::string cmd, arg;
    in >> cmd >> arg;
    if (cmd == "fork") {
      std::string path;
      in >> path;
      do_fork(arg.empty() ? "exit" : arg, path);
    }
    else if (cmd == "touch") {
      size_t kib = 4;
      in >> kib;
      const uint64_t a = now_us();
      touch(arg == "write", kib * 1024);
      std::printf("touch ms=%llu\n", static_cast<unsigned long long>((now_us() - a) / 1000));
    } else if (cmd == "churn") {
      const uint64_t a = now_us();
      churn(std::atol(arg.c_str()));
      std::printf("churn ms=%llu\n", static_cast<unsigned long long>((now_us() - a) / 1000));
    } else if (cmd == "ptwarm") {
      const uint64_t a = now_us();
      const uint64_t c = thread_cpu_ns();
      ptwarm(std::atol(arg.c_str()));
      std::printf("ptwarm ms=%llu cpu_us=%llu\n", static_cast<unsigned long long>((now_us() - a) / 1000),
                  static_cast<unsigned long long>((thread_cpu_ns() - c) / 1000));
    } else if (cmd == "ptwarm-other") {
      // The same on a thread pinned to another CPU than this one's (as a helper thread of the
      // server would, while the loop runs on its own).
      const int here = sched_getcpu();
      const uint64_t a = now_us();
      std::thread t([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c = 0; c < CPU_SETSIZE && c < 1024; c++)
          if (c != here) CPU_SET(c, &set);
        sched_setaffinity(0, sizeof(set), &set);
        ptwarm(std::atol(arg.c_str()));
      });
      t.join();
      std::printf("ptwarm-other ms=%llu from_cpu=%d now_cpu=%d\n", static_cast<unsigned long long>((now_us() - a) / 1000),
                  here, sched_getcpu());
    } else if (cmd == "ptwarm-here") {
      // The same on a helper thread at SCHED_IDLE pinned to this thread's CPU, this thread
      // pinned there too until `unpin` (so that the next fork takes from that CPU's lists).
      const int here = sched_getcpu();
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(here, &one);
      sched_getaffinity(0, sizeof(g_affinity), &g_affinity);
      sched_setaffinity(0, sizeof(one), &one);
      const uint64_t a = now_us();
      uint64_t helper_cpu_us = 0;
      std::thread t([&] {
        sched_setaffinity(0, sizeof(one), &one);
        sched_param sp{};
        sched_setscheduler(0, SCHED_IDLE, &sp);
        const uint64_t c = thread_cpu_ns();
        ptwarm(std::atol(arg.c_str()));
        helper_cpu_us = (thread_cpu_ns() - c) / 1000;
      });
      t.join();
      std::printf("ptwarm-here ms=%llu helper_cpu_us=%llu cpu=%d\n",
                  static_cast<unsigned long long>((now_us() - a) / 1000),
                  static_cast<unsigned long long>(helper_cpu_us), here);
    } else if (cmd == "unpin") {
      sched_setaffinity(0, sizeof(g_affinity), &g_affinity);
      std::printf("unpin\n");
    } else if (cmd == "sleep") {
      std::this_thread::sleep_for(std::chrono::microseconds(static_cast<int64_t>(std::atof(arg.c_str()) * 1e6)));
      std::printf("sleep\n");
    } else if (cmd == "info") {
      std::printf("info mappings=%zu huge_pages=%ld VmPTE=%s threads=%zu\n", mappings(), huge_pages_now(),
                  status_field("/proc/self/status", "VmPTE:").c_str(), ts.size() + 1);
    } else if (cmd == "quit") break;
    std::fflush(stdout);
  }
  g_stop.store(true);
  for (auto& t : ts) t.join();
  return 0;
}
