// apps/kv/value_alloc.cc — the size-class allocator of string values over populated blocks
// (value_alloc.h says why and how).
#include "kv/value_alloc.h"

#include <sys/mman.h>

#include <array>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "kv/node_pool.h"  // HMDB_NODE_POOL_POISON / UNPOISON (AddressSanitizer)
#include "kv/populated_allocator.h"
#include "kv/prefault.h"

namespace hmdb::kv::value_alloc {

namespace {

static_assert(kValueBlockBytes == prefault::kBlockBytes, "blocks come from the prefault pantry");
static_assert(kValueBlockBytes % kValueRunBytes == 0);

// Size classes: 8-byte steps to 512 (64), 16-byte steps to 1 KiB (32), then 8 per doubling
// to kValueSlotBytesMax (32).
constexpr size_t kClasses = 64 + 32 + 32;
static_assert((size_t{1024} << 4) == kValueSlotBytesMax, "four doublings above 1 KiB");

size_t class_of(size_t n) {
  if (n <= 512) return n <= 8 ? 0 : (n + 7) / 8 - 1;
  if (n <= 1024) return 64 + (n - 512 + 15) / 16 - 1;
  const unsigned k = static_cast<unsigned>(std::bit_width(n - 1));  // 2^(k-1) < n <= 2^k, k in 11..14
  const size_t base = size_t{1} << (k - 1), step = base / 8;
  return 96 + (k - 11) * 8 + (n - base + step - 1) / step - 1;
}

constexpr std::array<uint32_t, kClasses> make_class_bytes() {
  std::array<uint32_t, kClasses> a{};
  size_t i = 0;
  for (uint32_t b = 8; b <= 512; b += 8) a[i++] = b;
  for (uint32_t b = 528; b <= 1024; b += 16) a[i++] = b;
  for (uint32_t base = 1024; base < kValueSlotBytesMax; base *= 2)
    for (uint32_t j = 1; j <= 8; j++) a[i++] = base + j * (base / 8);
  return a;
}
constexpr std::array<uint32_t, kClasses> kClassBytes = make_class_bytes();
static_assert(kClassBytes[kClasses - 1] == kValueSlotBytesMax);

constexpr uint16_t kNoClass = 0xffff;

// A run's descriptor, in its block's header.
struct Run {
  Run* prev = nullptr;  // on its class's partial list, or on the free runs
  Run* next = nullptr;
  void* free = nullptr;  // freed slots, linked through their first 8 bytes
  char* start = nullptr; // the first slot
  uint32_t carved = 0;   // slots [0, carved) were handed out at least once
  uint32_t live = 0;
  uint32_t cap = 0;      // slots that fit
  uint16_t cls = kNoClass;
};

struct Block {
  uint32_t used_runs = 0;
  std::array<Run, kValueRunsPerBlock> runs;
};
constexpr size_t kHeaderBytes = (sizeof(Block) + 63) & ~size_t{63};
static_assert(kHeaderBytes + kValueSlotBytesMax <= kValueRunBytes, "run 0 holds a slot of every class");

struct Class {
  Run* partial = nullptr;  // runs with a free or never-used slot, most recently freed-into first
};

void push(Run*& list, Run* r) {
  r->prev = nullptr;
  r->next = list;
  if (list) list->prev = r;
  list = r;
}
void unlink(Run*& list, Run* r) {
  if (r->prev) r->prev->next = r->next;
  else list = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = nullptr;
}

class Allocator {
 public:
  void* allocate(size_t n) {
    const size_t c = class_of(n);
    const size_t bytes = kClassBytes[c];
    std::lock_guard<std::mutex> lock(mu_);
    Class& k = classes_[c];
    Run* r = k.partial;
    if (!r) {
      r = take_run(c);
      push(k.partial, r);
    }
    void* p;
    if (r->free) {
      p = r->free;
      HMDB_NODE_POOL_UNPOISON(p, bytes);
      r->free = *static_cast<void**>(p);
    } else {
      p = r->start + size_t{r->carved} * bytes;
      r->carved++;
    }
    r->live++;
    if (!r->free && r->carved == r->cap) unlink(k.partial, r);  // now full
    stats_.slots_live++;
    stats_.slot_bytes_live += bytes;
    return p;
  }

  void deallocate(void* p) noexcept {
    Block* b = block_of(p);
    Run* r = &b->runs[static_cast<size_t>(static_cast<char*>(p) - reinterpret_cast<char*>(b)) / kValueRunBytes];
    std::lock_guard<std::mutex> lock(mu_);
    assert(r->cls != kNoClass && r->live > 0);
    Class& k = classes_[r->cls];
    const size_t bytes = kClassBytes[r->cls];
    const bool was_full = !r->free && r->carved == r->cap;
    *static_cast<void**>(p) = r->free;
    r->free = p;
    HMDB_NODE_POOL_POISON(p, bytes);
    if (was_full) push(k.partial, r);
    stats_.slots_live--;
    stats_.slot_bytes_live -= bytes;
    if (--r->live > 0) return;
    unlink(k.partial, r);  // no syscall: a class that grows and shrinks around a run boundary costs list updates only
    release_run(b, r);
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  static Block* block_of(void* p) {
    return reinterpret_cast<Block*>(reinterpret_cast<uintptr_t>(p) & ~uintptr_t{kValueBlockBytes - 1});
  }

  // A run for class c, from the free runs or a new block.
  Run* take_run(size_t c) {
    if (!free_runs_) new_block();
    Run* r = free_runs_;
    unlink(free_runs_, r);
    Block* b = block_of(r->start);
    if (b->used_runs++ == 0) empty_blocks_--;
    const size_t bytes = kClassBytes[c];
    char* const end = reinterpret_cast<char*>(b) + (static_cast<size_t>(r - b->runs.data()) + 1) * kValueRunBytes;
    r->cls = static_cast<uint16_t>(c);
    r->free = nullptr;
    r->carved = 0;
    r->live = 0;
    r->cap = static_cast<uint32_t>(static_cast<size_t>(end - r->start) / bytes);
    return r;
  }

  void release_run(Block* b, Run* r) {
    HMDB_NODE_POOL_UNPOISON(r->start, r->cap * size_t{kClassBytes[r->cls]});
    r->cls = kNoClass;
    push(free_runs_, r);
    if (--b->used_runs > 0) return;
    if (empty_blocks_ < kValueEmptyBlocksKept) {
      empty_blocks_++;
      return;
    }
    for (Run& x : b->runs) unlink(free_runs_, &x);
    HMDB_NODE_POOL_UNPOISON(b, kValueBlockBytes);
    // Not munmap here (the event loop): the prefault thread unmaps it, or reuses it as its
    // pantry's next block (prefault.h, give_back).
    prefault::give_back(b);
    stats_.blocks--;
    stats_.blocks_given_back++;
  }

  // Maps a block (from the pantry when it has one) and puts its runs on the free runs.
  void new_block() {
    void* p = prefault::take_block();
    if (p && (reinterpret_cast<uintptr_t>(p) & (kValueBlockBytes - 1)) != 0) {
      ::munmap(p, kValueBlockBytes);  // not aligned (prefault.cc maps aligned blocks): unusable here
      p = nullptr;
    }
    if (p) {
      stats_.blocks_from_pantry++;
    } else {
      p = detail::map_aligned_block(kValueBlockBytes);
      if (::madvise(p, kValueBlockBytes, MADV_POPULATE_WRITE) != 0 && errno == ENOMEM) {
        ::munmap(p, kValueBlockBytes);
        throw std::bad_alloc();
      }
      stats_.blocks_mapped_here++;
    }
    Block* b = new (p) Block();
    char* const base = static_cast<char*>(p);
    for (size_t i = kValueRunsPerBlock; i-- > 0;) {
      Run* r = &b->runs[i];
      r->start = base + (i == 0 ? kHeaderBytes : i * kValueRunBytes);
      push(free_runs_, r);
    }
    empty_blocks_++;
    stats_.blocks++;
  }

  std::mutex mu_;
  std::array<Class, kClasses> classes_{};
  Run* free_runs_ = nullptr;  // runs of no class, in any block
  size_t empty_blocks_ = 0;   // blocks with no used run
  Stats stats_;
};

// Never destroyed: values of static objects may be freed after other static destructors.
Allocator& instance() {
  static Allocator* a = new Allocator;
  return *a;
}

}  // namespace

void* allocate(size_t bytes) {
  if (bytes > kValueSlotBytesMax) return ::operator new(bytes);
  return instance().allocate(bytes);
}

void deallocate(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (bytes > kValueSlotBytesMax) {
    ::operator delete(p);  // unsized: clang 14 declares no sized delete without -fsized-deallocation
    return;
  }
  instance().deallocate(p);
}

size_t slot_bytes(size_t bytes) { return kClassBytes[class_of(bytes)]; }

Stats stats() { return instance().stats(); }

std::string info() {
  const Stats v = stats();
  const prefault::Stats p = prefault::stats();
  std::string t;
  auto line = [&t](std::string_view field, uint64_t value) {
    t += field;
    t += ':';
    t += std::to_string(value);
    t += "\r\n";
  };
  line("value_blocks", v.blocks);
  line("pantry_blocks_taken", p.blocks_taken);
  line("pantry_blocks_missed", p.blocks_missed);
  line("pantry_blocks_handed_back", p.returned);
  line("pantry_blocks_reused", p.returned_reused + p.returned_reused_by_caller);
  line("pantry_blocks_unmapped_by_caller", p.returned_unmapped_by_caller);
  line("released_array_bytes", p.released_bytes);
  line("released_array_bytes_waiting", p.released_bytes_waiting);
  line("released_arrays_unmapped_by_caller", p.released_refused);
  return t;
}

}  // namespace hmdb::kv::value_alloc
