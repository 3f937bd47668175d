// server/huge_pages.h — transparent huge pages for the server's heap, so that a snapshot's
// fork() copies page tables of 2 MiB pages instead of 4 KiB ones.
//
// Why: a snapshot forks (server/snapshot.cc), and fork() copies the parent's page tables
// while the event loop waits: 20-100 ms per GiB of state with 4 KiB pages on the reference
// VM (a 0.2-1 s stall at 10 GiB, longer than the 200 ms election timeout: a leader is
// deposed), ~0.5 ms per GiB with the heap in 2 MiB pages (bench/README.md, "Fork stall and
// huge pages"). Forking from another thread does not help: the loop's first write to memory
// whose page tables fork() already copied waits for the whole fork (docs/decisions.md,
// "Huge pages by default"). Writes during a snapshot copy 4 KiB either way (since Linux 5.8
// the first write to a shared huge page splits it).
//
// How: glibc's malloc asks for huge pages (madvise(MADV_HUGEPAGE) on its heaps) when the
// tunable glibc.malloc.hugetlb=1 is set, which glibc reads at process start only. So
// `hmdb serve` (--huge-pages yes, the default) sets it in GLIBC_TUNABLES and executes itself
// again, once, before it does anything else (no file, socket or thread is open yet); the kv
// app's big blocks, which it maps itself, follow the same tunable
// (apps/kv/populated_allocator.h). The price: on a VM that hands free memory back to its host
// (free page reporting), filling memory that was handed back costs 2-3 times more in huge
// pages, so a restart of a big node can take longer (docs/operations.md, "Huge pages");
// `--huge-pages no` keeps 4 KiB pages.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

namespace hmdb::server {

// Before serving: if `want` and the tunable is not yet set, and this kernel and glibc can
// use it, sets GLIBC_TUNABLES and re-executes /proc/self/exe with argv (does not return
// then). Otherwise returns what is in effect, for the log and INFO's huge_pages: "yes",
// "no", or "no (<why>)".
std::string huge_pages_for_heap(bool want, char** argv);

// The page size of the heap's memory: 2 MiB when glibc's tunable glibc.malloc.hugetlb is set
// (as above), else the kernel's page size. Releasing part of a huge page (MADV_DONTNEED)
// splits it into 4 KiB page-table entries for good, so what the server hands back to the
// kernel from the heap it rounds to this.
size_t heap_page_bytes();

// Puts the process's memory back into huge pages after a snapshot. While a snapshot child
// runs, the server's first write to a huge page shared with it splits it (since Linux 5.8 the
// kernel copies 4 KiB, not 2 MiB) and the split stays after the child ends: measured, a
// write per huge page during one snapshot made the next fork of 2 GiB take 31-44 ms instead
// of 1.1 ms, as with 4 KiB pages. So once a snapshot is done a thread (at nice
// kMendNice) walks the private anonymous mappings of /proc/self/maps and asks the kernel to
// collapse each 2 MiB range whose 4 KiB pages are all resident (mincore) back into a huge
// page (MADV_COLLAPSE, Linux 6.1; ~150 ms of the thread's CPU per GiB split here). One range
// per call, so the loop waits at most one range's copy when it needs the address space's
// lock meanwhile (a page fault in that mapping, a malloc that grows the heap). Ranges not
// wholly resident are left as they are (collapsing them would add memory), and nothing runs
// while a child shares the memory (a collapse would copy what the child still reads).
class HugePageMender {
 public:
  HugePageMender() = default;
  HugePageMender(const HugePageMender&) = delete;
  HugePageMender& operator=(const HugePageMender&) = delete;
  ~HugePageMender() { pause(); join(); }

  // Starts a pass (after the previous one, if it still runs, has stopped).
  void start();
  // Stops the pass at its next range (before a fork); returns at once.
  void pause() { stop_.store(true); }
  // Completed passes, and 2 MiB ranges the kernel collapsed (or found already huge).
  uint64_t passes() const { return passes_.load(); }
  uint64_t ranges() const { return ranges_.load(); }
  // Why the last pass gave up, or empty.
  std::string failure() const;

 private:
  void join();
  void run();
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> passes_{0}, ranges_{0};
  std::atomic<bool> failed_{false};
  std::string failure_;  // set by the thread before failed_
};

}  // namespace hmdb::server
