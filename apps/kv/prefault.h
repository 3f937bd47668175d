// apps/kv/prefault.h — a thread that faults in the kv app's fresh big blocks of memory before
// the event loop writes them: the node slabs of the key table, the blocks of string values
// (value_alloc.h), the slabs of the sorted sets' node pools (node_pool.h) and the new bucket
// array of a resize.
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
//   steps of a doubling pass over one in ~65,000 inserts);
// - a block its user no longer needs (the value allocator's empty blocks, the 2 MiB node
//   slabs of a key table that goes: key_table.h, free_block; a node pool's empty slab) is
//   handed back (give_back): the thread zeroes it into the pantry if the pantry is short,
//   so it is not populated anew, else unmaps it; either way the loop makes no munmap of a
//   populated block (its pages freed, the TLBs of the process's other CPUs flushed);
// - a mapped array its owner gave up (release: a bucket array of a key table or of a sorted
//   set's member index, key_table.h, after a finished resize or when its table is freed) is
//   unmapped by the thread, kChunkBytes a call. The loop unmapped such an array itself,
//   kReleaseBytesPerStep (64 KiB) a step: 2,048 munmaps for a 10 M-member sorted set's 128
//   MiB, each waiting for the TLB-flush interrupt to the other CPU (1-24 ms of wall for some
//   on this VM under load), which carried its DEL to loop turns of 20-24 ms (bench/README.md,
//   "the long turn named").
//
// Memory: the pantry's blocks are resident before they are used (kPantryBlocks x 2 MiB, 0.4
// bytes per key at 10 M keys), and a bucket array's pages at most kPrefaultAheadBytes before
// the resize's steps would have made them resident.
//
// Locks: a populate (MADV_POPULATE_WRITE) holds the process's mmap lock for reading for a
// whole 2 MiB page, so a call of the loop that takes it for writing (mmap, munmap, a
// madvise that changes a mapping's flags, malloc growing its heap) may wait for one page's
// populate. The thread makes no such call for the loop's sake (prefault.cc, make_block). Its
// munmap of a block handed back, or of an array's chunk, takes that lock for writing for one
// block's (one chunk's) unmap: the loop's mmap or page fault may wait for that, where before
// the loop made the munmap itself. Hence an array is unmapped a chunk a call, not whole (128
// MiB of 4 KiB pages is ~32,000 pages to free under the lock).
//
// A block handed back while a snapshot's child shares its pages is copied page by page as the
// thread zeroes it (copy-on-write), on this thread rather than the loop's.
//
// Threads: any thread may call these (the snapshot load decodes in a thread of its own); a
// mutex guards the queues, never held across a system call. The thread starts at the first
// call and lives as long as the process: what is queued at exit (blocks, arrays) goes with
// the process's address space, as any mapping does (no heap memory, nothing for a leak
// checker). In a forked child (the snapshot writer) the thread does not exist: every call
// there does nothing (take_block returns null; give_back and release leave the unmap to
// their caller).
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
// when the heap is, zeroed), to be freed with munmap (or handed back); or nullptr when the
// pantry is empty or prefaulting is off (the caller maps one itself). With the pantry empty
// and a block handed back waiting for the thread, the caller gets that block, zeroed by
// itself (a memset of resident memory, ~0.1-0.3 ms, instead of a new block's ~5 ms populate).
void* take_block();

// Asks the thread to populate [p, p + bytes), a mapping the caller owns, from its start.
// The caller must call forget() with the same range before it unmaps any of it.
void populate_ahead(void* p, size_t bytes);

// Drops the request for [p, p + bytes) (populate_ahead's range) if it is still queued or
// under way; if the thread is populating a chunk of it now, waits for that chunk (one
// kChunkBytes call). Afterwards the caller may unmap the range.
void forget(void* p, size_t bytes);

// Blocks handed back that the thread keeps, zeroed, in the pantry beyond kPantryBlocks (it
// makes new blocks only up to kPantryBlocks): values deleted and then written again (a cache's
// churn) take them back without a populate. Without them, a DEL's blocks came back to a full
// pantry and were unmapped, and the SETs after it took new ones: 0 of 44 blocks reused in 20
// rounds of DEL 25,000 / SET 25,000 values of 400 B (bench/README.md). Each is kBlockBytes of
// memory while kept.
inline constexpr size_t kPantrySpareBlocks = 4;

// Blocks handed back (give_back) and not yet reused or unmapped, at most kReturnedBytesMax of
// them: memory the process has let go of and the kernel does not have yet. A block beyond it
// is unmapped by its caller. Why so much: a flushed keyspace (or a deleted big hash) is freed
// in its key table's order (kv.h, Graveyard), which is not the order of the value blocks, so a
// block empties only when the last of its ~5,000 values (of 400 B) goes: the blocks of a
// keyspace empty together, at the end of its freeing. A FLUSHALL of 600,000 values of 400 B
// handed back 142 blocks (117 value blocks, 25 node slabs) faster than the thread unmapped
// them: with a bound of 64 the loop unmapped 17 itself (53 of 117 in an earlier run; bench/
// README.md, "Node slabs handed back"). At issue 16's size (20 M values of 400 B, ~10 GiB)
// that is ~3,900 value blocks: 0.1-0.4 s of munmaps (0.025-0.1 ms each) if the loop made
// those beyond a small bound. So the bound is above the value memory of the largest
// state the server is built for, and the whole keyspace's blocks go to the thread. It adds
// nothing to the process's peak memory (a block queued was resident the moment before); it
// delays the release of what the loop freed by the thread's time to unmap it (~0.025-0.045 ms
// a block, ~0.1-0.2 s for 3,900) where the loop would have unmapped it in the same turn, or
// (with an element budget that made fewer blocks empty per turn) in later turns. The queue
// itself costs 8 bytes a block.
inline constexpr size_t kReturnedBytesMax = size_t{16} << 30;
inline constexpr size_t kReturnedBlocksMax = kReturnedBytesMax / kBlockBytes;

// Hands back a block of kBlockBytes the caller no longer uses (aligned to kBlockBytes, as
// take_block's; resident, any content; a value block or a key table's node slab): the
// thread zeroes it into the pantry if the pantry holds fewer than kPantryBlocks +
// kPantrySpareBlocks (a block reused is not mapped and populated again), else unmaps it.
// So the caller (the event loop) pays neither the munmap of a populated block (its pages freed, the other
// CPUs' TLBs flushed) nor, later, the populate of a new one. In a forked child, with
// prefaulting off, or with kReturnedBlocksMax blocks waiting already, the caller unmaps it
// itself (counted: returned_unmapped_by_caller).
void give_back(void* p);

// Bytes of arrays handed over (release) and not yet unmapped, at most: memory the process has
// let go of and the kernel does not have yet. An array beyond it is refused and unmapped by
// its owner as before (key_table.h: kReleaseBytesPerStep a step of the owner's). Why this
// much: a FLUSHALL (or a deleted key) hands over every mapped array of what it frees as its
// freeing reaches it, the key table's (256 MiB at 20 M keys, 384 while a doubling is under
// way) and each big hash's, set's or sorted set's member index (2 MiB from 262,144 elements
// on, 8-16 bytes per element); at issue 16's largest state (10 GiB) that is at most ~200 M
// elements of ~50 bytes, ~3.2 GiB of arrays at the lowest load factor (0.5), under this bound,
// so the loop unmaps none of them. Usually far less waits: the thread unmaps ~2 MiB in
// 0.03-0.1 ms (a 128 MiB array in a few ms), and the freeing hands arrays over over many
// turns. It adds nothing to the process's peak memory (an array queued was mapped the moment
// before, and only its resident pages count); it delays the array's return to the kernel by
// the thread's time to unmap it. The queue costs 24 bytes an array.
inline constexpr size_t kReleasedBytesMax = size_t{4} << 30;

// Hands over [p, p + bytes), a private anonymous mapping the caller no longer uses (p page-
// aligned; bytes rounded up to whole pages as mmap does; any content; the caller has called
// forget() for any range of it given to populate_ahead): the thread unmaps it, kChunkBytes a
// call, its cuts at kChunkBytes-aligned addresses (a huge page is unmapped whole, not split).
// Returns true if it took it; false (nothing done: the caller unmaps it itself) in a forked
// child, with prefaulting off, with kReleasedBytesMax waiting already, or if the queue could
// not grow (counted: released_refused).
bool release(void* p, size_t bytes) noexcept;

// Off: take_block() returns nullptr and populate_ahead() does nothing (what a forked child
// sees); the ready blocks and the blocks handed back are unmapped. For tests (the control
// without the thread); on by default. Arrays handed over (release) are unmapped then too.
void set_enabled(bool on);

// For tests: while held, the thread starts no new work (it finishes the call under way), so
// that a test sets up what the thread then finds, deterministically. Off by default.
void set_held_for_test(bool held);

struct Stats {
  uint64_t blocks_made = 0;      // pantry blocks mapped and populated by the thread
  uint64_t blocks_taken = 0;     // take_block() calls that got one
  uint64_t blocks_missed = 0;    // take_block() calls that found the pantry empty
  uint64_t ranges = 0;           // populate_ahead() requests
  uint64_t range_bytes = 0;      // bytes of them the thread populated
  uint64_t forget_waits = 0;     // forget() calls that waited for a chunk under way
  uint64_t returned = 0;         // give_back() calls
  uint64_t returned_reused = 0;  // blocks handed back that the thread zeroed into the pantry
  uint64_t returned_reused_by_caller = 0;    // ... that take_block gave out (the pantry empty)
  uint64_t returned_unmapped = 0;            // ... that the thread unmapped (the pantry full)
  uint64_t returned_unmapped_by_caller = 0;  // ... that their caller unmapped (see give_back)
  uint64_t released = 0;                 // arrays handed over (release() calls that returned true)
  uint64_t released_bytes = 0;           // their bytes
  uint64_t released_bytes_unmapped = 0;  // of those, the bytes the thread has unmapped
  uint64_t released_munmaps = 0;         // the thread's munmap calls for them
  uint64_t released_largest_munmap = 0;  // the most bytes one of those calls unmapped
  uint64_t released_bytes_waiting = 0;   // handed over and not yet unmapped (now, not a count)
  uint64_t released_refused = 0;         // release() calls that returned false (their caller unmaps)
  uint64_t released_refused_bytes = 0;   // their bytes
};
Stats stats();

// For tests: waits until the thread has nothing left to do (the pantry full, no range
// queued, no block handed back or array released waiting) and returns stats(). Never called by the server.
Stats wait_idle();

}  // namespace hmdb::kv::prefault
