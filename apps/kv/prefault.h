// apps/kv/prefault.h — a thread that faults in the kv app's fresh big blocks of memory before
// the event loop writes them: the node slabs of the key table, the blocks of string values
// (value_alloc.h) and the new bucket array of a resize.
//
// Why: the first write to a fresh page makes the kernel zero it under the fault, on the
// thread that writes. With the heap in transparent huge pages (the default, server/huge_pages.h)
// that is 2 MiB at once, and on the reference VM a fresh 2 MiB page cost 4.75 ms to zero
// (median; up to 26 ms) because the host must back it again (free page reporting). Growing a
// node to 10 M small keys faulted ~480 node slabs (MADV_POPULATE_WRITE, one per ~24,000
// keys) and ~110 huge pages of new bucket arrays on the loop thread: 28 % of the loop's CPU
// during the growth, and 18 turns of 23-39 ms of the loop's own CPU (issue 16 item 5; 0 with
// 4 KiB pages). Here that zeroing runs on this thread instead:
//
// - a pantry of kPantryBlocks populated blocks of kBlockBytes (the key table's node slab): a
//   slab is taken from it (take_block) and the thread maps and populates the next at once;
//   if the pantry is empty the caller maps and populates its block itself, as before;
// - a resize's new bucket array is mapped unpopulated and handed to populate_ahead() a chunk
//   at a time as the resize's steps progress (key_table.h, kPrefaultAheadBytes past the bucket
//   they are at): the thread populates each chunk in one call, in the order the steps write
//   the array, so the loop finds its pages there (the thread fills a 2 MiB page in ~5 ms, the
//   steps of a doubling pass over one in ~65,000 inserts).
//
// Memory: the pantry's blocks are resident before they are used (kPantryBlocks x 2 MiB, 0.4
// bytes per key at 10 M keys), and a bucket array's pages at most kPrefaultAheadBytes before
// the resize's steps would have made them resident.
//
// Locks: a populate (MADV_POPULATE_WRITE) holds the process's mmap lock for reading for a
// whole 2 MiB page, so a call of the loop that takes it for writing (mmap, munmap, a
// madvise that changes a mapping's flags, malloc growing its heap) may wait for one page's
// populate. The thread makes no such call for the loop's sake (prefault.cc, make_block).
//
// Threads: any thread may call these (the snapshot load decodes in a thread of its own); a
// mutex guards the queues, never held across a system call. The thread starts at the first
// call and lives as long as the process. In a forked child (the snapshot writer) the thread
// does not exist: every call there does nothing (take_block returns null).
#pragma once

#include <cstddef>
#include <cstdint>

namespace hmdb::kv::prefault {

// The size of a pantry block: the key table's node slab (key_table.h, kSlabBytesMax), one
// huge page.
inline constexpr size_t kBlockBytes = size_t{2} << 20;
// Populated blocks kept ready. The loop uses a slab per ~24,000 small keys (~40 ms of growth
// at 600,000 SETs a second); the thread needs ~5 ms of CPU for one (at worst ~26 ms), and at
// load 10 on 2 cores several times that in wall time: with one block the loop still populated
// a fifth of its slabs itself. Each costs kBlockBytes of memory.
inline constexpr size_t kPantryBlocks = 2;
// One MADV_POPULATE_WRITE call of the thread over a bucket array: one huge page, so that
// forget() waits at most one page's zeroing when the array goes while the thread is in it.
inline constexpr size_t kChunkBytes = size_t{2} << 20;

// A populated block of kBlockBytes (private, anonymous, aligned to kBlockBytes, in huge pages
// when the heap is), to be freed with munmap; or nullptr when the pantry is empty or prefaulting is off (the caller
// maps one itself).
void* take_block();

// Asks the thread to populate [p, p + bytes), a mapping the caller owns, from its start.
// The caller must call forget() with the same range before it unmaps any of it.
void populate_ahead(void* p, size_t bytes);

// Drops the request for [p, p + bytes) (populate_ahead's range) if it is still queued or
// under way; if the thread is populating a chunk of it now, waits for that chunk (one
// kChunkBytes call). Afterwards the caller may unmap the range.
void forget(void* p, size_t bytes);

// Off: take_block() returns nullptr and populate_ahead() does nothing (what a forked child
// sees); the ready blocks are unmapped. For tests (the control without the thread); on by
// default.
void set_enabled(bool on);

struct Stats {
  uint64_t blocks_made = 0;      // pantry blocks mapped and populated by the thread
  uint64_t blocks_taken = 0;     // take_block() calls that got one
  uint64_t blocks_missed = 0;    // take_block() calls that found the pantry empty
  uint64_t ranges = 0;           // populate_ahead() requests
  uint64_t range_bytes = 0;      // bytes of them the thread populated
  uint64_t forget_waits = 0;     // forget() calls that waited for a chunk under way
};
Stats stats();

// For tests: waits until the thread has nothing left to do (the pantry full, no range
// queued) and returns stats(). Never called by the server.
Stats wait_idle();

}  // namespace hmdb::kv::prefault
