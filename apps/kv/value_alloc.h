// apps/kv/value_alloc.h — kv::ValueAllocator and kv::String: the memory of string values
// (longer than std::string's 15 inline bytes) from populated 2 MiB blocks the prefault
// thread made, in size-class slots, instead of glibc malloc's heap.
//
// Why: a string value of more than 15 bytes is one heap block. In malloc's heap, growing a
// node with 400-byte values wrote ~1 fresh 2 MiB huge page every ~5,000 SETs on the event
// loop, and the kernel zeroed it under the loop's fault (~4.75 ms each on the reference VM,
// up to 26 ms; prefault.h): 47 % of the loop's CPU growing to 2 M values of 400 B was
// clear_page_erms (issue 16 item 5). Faulting malloc's heap top in from the prefault thread
// did not help enough (47 % -> 36 %): malloc writes the first page of each heap extension
// itself, on the loop. Here values live in blocks that come populated from the prefault
// thread's pantry (prefault::take_block), so the loop writes no fresh page for them.
//
// Layout: a block is kValueBlockBytes (a huge page), aligned to its size, so the block of a
// slot is its address rounded down; its header holds the descriptors of its
// kValueRunsPerBlock runs of kValueRunBytes. A run serves one size class at a time: slots of
// one size, carved from its start as needed, a freed slot on the run's free list (its first
// 8 bytes link it). Classes (value_alloc.cc, class_of): 8-byte steps up to 512 bytes, 16-byte
// steps up to 1 KiB, then 8 per doubling up to kValueSlotBytesMax; a std::string of capacity
// 400 asks for 401 bytes and gets a 408-byte slot (glibc: a 416-byte chunk). Longer values
// go to operator new (malloc) as before.
//
// Memory given back: a run whose last slot is freed goes back to the free runs, for any
// class (list updates only); a block with no used run is handed back to the prefault thread
// (prefault::give_back), which unmaps it or reuses it as its pantry's next block, so that
// the munmap of a populated block (0.025-0.065 ms median, up to 4-5 ms under load: bench/
// README.md) is not the loop's; one block,
// kValueEmptyBlocksKept, is kept, so that values that come and go around a block boundary
// do not take and hand back a block per command. A run is never partly released: MADV_DONTNEED
// inside a huge page splits it (a snapshot's fork then copies 512 page-table entries for
// it, bench/README.md). As with malloc's heap, used slots scattered over many blocks keep
// those blocks resident; freed slots are reused by their class, and whole runs by any class.
//
// Snapshots: a forked child gets no block from the pantry (prefault.h) and maps and
// populates one itself if it allocates. It does not (it only reads values), and must not
// while another thread of the parent may have held the mutex at the fork.
//
// Threads: the event loop, the snapshot load thread and the reaper of a replaced state
// allocate and free values; a mutex guards the allocator, taken once per allocate or free,
// never held across a system call except the mmap of a block when the pantry is empty (one
// per ~5,000 values of 400 B) and a munmap when the prefault thread cannot take a block back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>

namespace hmdb::kv {

// A block: the prefault thread's pantry block (a huge page).
inline constexpr size_t kValueBlockBytes = size_t{2} << 20;
// A run: what one size class takes from a block at a time. Small, so that a class with few
// values holds little (one run; 8 MiB if all 128 classes held one), big enough to hold 4 of
// the largest slots.
inline constexpr size_t kValueRunBytes = size_t{64} << 10;
inline constexpr size_t kValueRunsPerBlock = kValueBlockBytes / kValueRunBytes;
// Longer allocations go to operator new: a slot of 16 KiB or less wastes at most 1/8 of it
// (the class steps) and a run holds at least 4.
inline constexpr size_t kValueSlotBytesMax = size_t{16} << 10;
// Blocks with no used run kept mapped instead of unmapped (see above).
inline constexpr size_t kValueEmptyBlocksKept = 1;

namespace value_alloc {

// `bytes` of memory, 8-byte aligned; throws std::bad_alloc. Free with deallocate(p, bytes).
void* allocate(size_t bytes);
void deallocate(void* p, size_t bytes) noexcept;

// The slot size a request of `bytes` gets (bytes <= kValueSlotBytesMax), for tests.
size_t slot_bytes(size_t bytes);

struct Stats {
  uint64_t blocks = 0;             // blocks mapped (in use or kept empty)
  uint64_t blocks_from_pantry = 0; // blocks the prefault thread had populated (since start)
  uint64_t blocks_mapped_here = 0; // blocks mapped and populated by the caller (pantry empty)
  uint64_t blocks_given_back = 0;  // empty blocks handed back to the prefault thread (give_back)
  uint64_t slots_live = 0;         // slots handed out and not freed
  uint64_t slot_bytes_live = 0;    // their bytes
};
Stats stats();

// The kv app's INFO lines on its 2 MiB blocks (Kv::info appends them to the app's section;
// docs/operations.md, "Huge pages", says what each means), `field:value\r\n` each:
//   value_blocks                      Stats::blocks: value blocks mapped (in use or kept empty)
//   pantry_blocks_taken               prefault::Stats::blocks_taken: blocks (value blocks, node
//                                     slabs) that came populated from the prefault thread
//   pantry_blocks_missed              ...::blocks_missed: the pantry was empty, the caller
//                                     mapped and populated its block itself
//   pantry_blocks_handed_back         ...::returned: empty blocks handed back (give_back):
//                                     value blocks, and node slabs (key_table.h)
//   pantry_blocks_reused              ...::returned_reused + returned_reused_by_caller: of
//                                     those, the ones kept zeroed for the pantry, not unmapped
//   pantry_blocks_unmapped_by_caller  ...::returned_unmapped_by_caller: of those, the ones
//                                     their caller unmapped itself (kReturnedBytesMax waiting
//                                     already): the munmaps the hand-back did not take off it
//   released_array_bytes              ...::released_bytes: bytes of mapped bucket arrays (key
//                                     tables', sorted sets' member indexes') handed to the
//                                     thread to unmap (prefault::release, key_table.h)
//   released_array_bytes_waiting      ...::released_bytes_waiting: of those, the bytes not
//                                     unmapped yet (now): given up, not yet the kernel's
//   released_arrays_unmapped_by_caller  ...::released_refused: arrays the thread refused
//                                     (kReleasedBytesMax waiting), unmapped by their owner
// Process-wide counts since start (the allocator and the thread are the process's), not
// the state's: two nodes with one state show different ones.
std::string info();

}  // namespace value_alloc

// std::allocator's interface over value_alloc, for String.
template <class T>
struct ValueAllocator {
  using value_type = T;
  using is_always_equal = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;

  ValueAllocator() noexcept = default;
  template <class U>
  ValueAllocator(const ValueAllocator<U>&) noexcept {}  // NOLINT: rebinding is implicit

  T* allocate(size_t n) {
    static_assert(alignof(T) <= 8, "slots are 8-byte aligned");
    if (n > static_cast<size_t>(-1) / sizeof(T)) throw std::bad_array_new_length();
    return static_cast<T*>(value_alloc::allocate(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept { value_alloc::deallocate(p, n * sizeof(T)); }

  template <class U>
  bool operator==(const ValueAllocator<U>&) const noexcept { return true; }
};

// A string value (Value's first alternative, kv.h).
using String = std::basic_string<char, std::char_traits<char>, ValueAllocator<char>>;
static_assert(sizeof(String) == sizeof(std::string));

}  // namespace hmdb::kv
