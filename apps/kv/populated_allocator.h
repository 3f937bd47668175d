// apps/kv/populated_allocator.h — an allocator for the kv app's big hash tables that hands
// out large blocks already backed by memory.
//
// Why: a hash table of 10 M keys is one slot array of ~1.2 GiB, written at random slots
// during a snapshot load. Faulted in page by page (one minor fault per 4 KiB page, ~300,000
// faults) it cost ~5 s on the Firecracker/PVM VMs we run on, where a user page fault is very
// expensive; asking the kernel for the whole block at once (MADV_POPULATE_WRITE, or
// MAP_POPULATE) fills it in ~0.3 s.
//
// Huge pages: when the server runs with its heap in transparent huge pages (the default,
// `hmdb serve --huge-pages yes`: server/huge_pages.h), these blocks are asked for in huge
// pages too (MADV_HUGEPAGE), because a snapshot's fork() copies one page-table entry per
// page: at 4.3 M keys the fork stalled the loop 62 ms with 4 KiB pages and 2.1 ms with the
// heap and these blocks in 2 MiB pages (bench/README.md, "Fork stall and huge pages"). An
// earlier measurement on another VM found populating 1.2 GiB of huge pages took 2-3.4 s
// instead of 0.33 s; the restart figures in bench/README.md are this machine's.
//
// Blocks below kPopulateBytesMin go to std::allocator: small tables are the common case
// (hash fields, sorted-set members) and mmap per small table would waste pages and syscalls.
#pragma once

#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <string_view>
#include <type_traits>

#include "kv/prefault.h"

namespace hmdb::kv {

// Blocks of at least this size are mapped directly, populated and munmap()ed on free. Below
// it the fault cost is small (512 faults at most) and glibc's malloc reuses freed memory,
// which a fresh mapping never does; tables grow by doubling, so only the last few growth
// steps of a big table reach it.
inline constexpr size_t kPopulateBytesMin = size_t{2} << 20;

// MADV_POPULATE_WRITE (Linux 5.14) may be missing from older headers; the value is ABI.
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace detail {
// Whether big blocks go to transparent huge pages: the same switch as the server's heap,
// glibc's tunable glibc.malloc.hugetlb (GLIBC_TUNABLES), which `hmdb serve --huge-pages yes`
// sets before it starts (server/huge_pages.h). Read once; it never changes in a process.
inline bool huge_pages() {
  static const bool on = [] {
    const char* env = std::getenv("GLIBC_TUNABLES");
    if (!env) return false;
    const std::string_view t(env), key("glibc.malloc.hugetlb=");
    const size_t at = t.find(key);
    return at != std::string_view::npos && at + key.size() < t.size() && t[at + key.size()] != '0';
  }();
  return on;
}

inline size_t page_round(size_t bytes) {
  constexpr size_t kPage = 4096;  // mmap rounds to the page size; munmap must be given the same
  return (bytes + kPage - 1) & ~(kPage - 1);
}

// A private anonymous mapping for a big block, in huge pages when the server uses them
// (the advice only asks: the kernel falls back to 4 KiB pages when it has no huge ones).
inline void* map_block(size_t bytes) {
  void* p = mmap(nullptr, page_round(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if (huge_pages()) madvise(p, page_round(bytes), MADV_HUGEPAGE);
  return p;
}

// map_block, aligned to `bytes` (a power of two, at least a page): a huge page's block can
// then be one huge page, and the value allocator finds a slot's block by rounding its
// address down (value_alloc.h). Linux aligns anonymous mappings of a multiple of 2 MiB
// itself when transparent huge pages are configured (6.7 on); elsewhere twice the size is
// mapped and the ends trimmed.
inline void* map_aligned_block(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  if ((reinterpret_cast<uintptr_t>(p) & (bytes - 1)) != 0) {
    munmap(p, bytes);
    p = mmap(nullptr, 2 * bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    char* const lo = static_cast<char*>(p);
    char* const aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(lo) + bytes - 1) & ~uintptr_t{bytes - 1});
    if (aligned > lo) munmap(lo, static_cast<size_t>(aligned - lo));
    if (aligned + bytes < lo + 2 * bytes) munmap(aligned + bytes, static_cast<size_t>(lo + 2 * bytes - (aligned + bytes)));
    p = aligned;
  }
  if (huge_pages()) madvise(p, bytes, MADV_HUGEPAGE);
  return p;
}

// Maps `bytes` of zeroed private memory and faults it all in now (or takes a block the
// prefault thread populated, prefault.h). Throws std::bad_alloc like
// operator new. If the kernel lacks MADV_POPULATE_WRITE (EINVAL before Linux 5.14) the block
// is still valid: it is then faulted in lazily as before, only slower.
inline void* map_populated(size_t bytes) {
  // A block of a huge page's size (the key table's node slab) the prefault thread has
  // populated ahead, so that the caller (the event loop) does not zero it (prefault.h).
  // Else one mapped here, aligned as the thread's are: when its table goes it is handed back
  // (prefault::give_back), and the thread may give it out again as a value block.
  const bool block = page_round(bytes) == prefault::kBlockBytes;
  if (block)
    if (void* ready = prefault::take_block()) return ready;
  void* p = block ? map_aligned_block(prefault::kBlockBytes) : map_block(bytes);
  if (madvise(p, page_round(bytes), MADV_POPULATE_WRITE) != 0 && errno == ENOMEM) {
    // Not enough memory to back the block: fail now, as operator new would, rather than
    // be killed on a later page fault.
    munmap(p, page_round(bytes));
    throw std::bad_alloc();
  }
  return p;
}
}  // namespace detail

template <class T>
struct PopulatedAllocator {
  using value_type = T;
  // Stateless, so tables move and swap their blocks without copying elements.
  using is_always_equal = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;

  PopulatedAllocator() noexcept = default;
  template <class U>
  PopulatedAllocator(const PopulatedAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) {
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    const size_t bytes = n * sizeof(T);
    if (bytes < kPopulateBytesMin) return std::allocator<T>().allocate(n);
    static_assert(alignof(T) <= 4096, "mmap gives page alignment only");
    return static_cast<T*>(detail::map_populated(bytes));
  }
  void deallocate(T* p, size_t n) noexcept {
    const size_t bytes = n * sizeof(T);
    if (bytes < kPopulateBytesMin) {
      std::allocator<T>().deallocate(p, n);
      return;
    }
    munmap(p, detail::page_round(bytes));  // fails only for a bad range, i.e. a caller bug
  }

  // Stateless: any instance frees what another allocated.
  template <class U>
  bool operator==(const PopulatedAllocator<U>&) const noexcept { return true; }
};

}  // namespace hmdb::kv
