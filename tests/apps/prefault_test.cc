// tests/apps/prefault_test.cc — the prefault thread (apps/kv/prefault.h): a node slab and a
// resize's new bucket array come to the calling thread already faulted in, so the thread
// that grows a table (the event loop) takes no page fault for them. Counted with the
// calling thread's own minor faults (getrusage RUSAGE_THREAD: a MADV_POPULATE_WRITE counts
// one per page it faults in, on the thread that calls it); no timing.
#include "kv/prefault.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kv/key_table.h"
#include "kv/populated_allocator.h"
#include "kv/value_alloc.h"

namespace hmdb::kv {
namespace {

uint64_t thread_minor_faults() {
  rusage ru{};
  EXPECT_EQ(::getrusage(RUSAGE_THREAD, &ru), 0);
  return static_cast<uint64_t>(ru.ru_minflt);
}

size_t resident_pages(void* p, size_t bytes) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> v(bytes / page);
  EXPECT_EQ(::mincore(p, bytes, v.data()), 0);
  size_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

using Table = KeyTable<std::string>;

// Inserts keys until a resize to a mapped bucket array (2 MiB or more) is under way.
void grow_until_mapped_resize(Table& t) {
  const size_t mapped_buckets = kPopulateBytesMin / sizeof(void*);
  for (uint64_t i = 0; !(t.rehashing() && t.bucket_count() >= mapped_buckets); i++)
    t.insert_or_assign("key:" + std::to_string(i), std::string("v"));
}

// Finishes the resize with steps that insert nothing (so no node slab is needed); returns
// the calling thread's minor faults meanwhile.
uint64_t faults_to_finish_resize(Table& t) {
  const uint64_t before = thread_minor_faults();
  while (t.rehashing()) t.step();
  return thread_minor_faults() - before;
}

// n blocks of kBlockBytes as give_back takes them (aligned, resident), each with one page
// touched and no huge page (with THP "always" a touch would fault 2 MiB in): the tests that
// hand back thousands keep their memory small.
std::vector<void*> resident_blocks(size_t n) {
  std::vector<void*> blocks;
  for (size_t i = 0; i < n; i++) {
    void* p = detail::map_aligned_block(prefault::kBlockBytes);
    ::madvise(p, prefault::kBlockBytes, MADV_NOHUGEPAGE);
    static_cast<char*>(p)[0] = 1;
    blocks.push_back(p);
  }
  return blocks;
}

// Each test starts with prefaulting on, the thread started and idle (its pantry full).
class Prefault : public ::testing::Test {
 protected:
  void SetUp() override {
    prefault::set_enabled(true);
    if (void* p = prefault::take_block()) ::munmap(p, prefault::kBlockBytes);  // starts the thread
    prefault::wait_idle();
  }
  void TearDown() override {
    prefault::set_held_for_test(false);
    prefault::set_enabled(true);
  }
};

TEST_F(Prefault, SlabComesPopulatedWithoutAFaultOfTheCaller) {
  const prefault::Stats s0 = prefault::stats();
  const uint64_t f0 = thread_minor_faults();
  void* p = detail::map_populated(prefault::kBlockBytes);  // what KeyTable does for a node slab
  const uint64_t faults = thread_minor_faults() - f0;
  EXPECT_EQ(prefault::stats().blocks_taken, s0.blocks_taken + 1);
  EXPECT_EQ(faults, 0u) << "the caller faulted the slab in itself";
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EQ(resident_pages(p, prefault::kBlockBytes), prefault::kBlockBytes / page);
  ::munmap(p, prefault::kBlockBytes);

  // The control: with prefaulting off the caller populates the slab, a fault per page (one
  // if the kernel gives it a huge page).
  prefault::set_enabled(false);
  const uint64_t f1 = thread_minor_faults();
  void* q = detail::map_populated(prefault::kBlockBytes);
  EXPECT_GE(thread_minor_faults() - f1, 1u);
  EXPECT_EQ(resident_pages(q, prefault::kBlockBytes), prefault::kBlockBytes / page);
  ::munmap(q, prefault::kBlockBytes);
}

TEST_F(Prefault, ResizeFindsItsNewBucketArrayFaultedIn) {
  // A doubling to 2^20 buckets (8 MiB): the thread is given the array a chunk at a time, at
  // most kPrefaultAheadBytes past the bucket the steps are at.
  Table t;
  const size_t buckets = size_t{1} << 20;
  uint64_t i = 0;
  while (t.size() < buckets / 2 || t.rehashing()) t.insert_or_assign("key:" + std::to_string(i++), std::string("v"));
  const prefault::Stats s0 = prefault::wait_idle();
  t.insert_or_assign("key:" + std::to_string(i++), std::string("v"));  // one more key than buckets
  ASSERT_TRUE(t.rehashing());
  ASSERT_EQ(t.bucket_count(), buckets);
  const size_t array_bytes = buckets * sizeof(void*);
  ASSERT_GT(array_bytes, kPrefaultAheadBytes + prefault::kChunkBytes);
  // The resize began at the last insert and took at most a step: the first chunks only.
  prefault::Stats s1 = prefault::wait_idle();
  EXPECT_EQ(s1.range_bytes - s0.range_bytes, kPrefaultAheadBytes) << "the bound ahead of the steps";
  // Step to the end, letting the thread catch up after each step (what a loop turn's few
  // thousand steps leave it): the stepping thread never faults a page of the new array in.
  const uint64_t f0 = thread_minor_faults();
  while (t.rehashing()) {
    t.step();
    prefault::wait_idle();
  }
  const uint64_t faults = thread_minor_faults() - f0;
  s1 = prefault::wait_idle();
  std::printf("resize to %zu buckets (%zu bytes): %llu faults of the stepping thread, %llu bytes prefaulted\n",
              buckets, array_bytes, static_cast<unsigned long long>(faults),
              static_cast<unsigned long long>(s1.range_bytes - s0.range_bytes));
  EXPECT_EQ(faults, 0u) << "the resize's steps faulted the new array in themselves";
  EXPECT_EQ(s1.range_bytes - s0.range_bytes, array_bytes);

  // The control: the same resize with prefaulting off faults the new array in page by page.
  prefault::set_enabled(false);
  Table u;
  grow_until_mapped_resize(u);
  EXPECT_GE(faults_to_finish_resize(u), u.bucket_count() * sizeof(void*) / prefault::kChunkBytes);
}

TEST_F(Prefault, ForgetLetsTheOwnerUnmapARangeUnderWay) {
  const size_t bytes = size_t{64} << 20;
  for (int round = 0; round < 3; round++) {
    void* p = detail::map_block(bytes);
    const prefault::Stats s0 = prefault::stats();
    prefault::populate_ahead(p, bytes);
    prefault::forget(p, bytes);  // whatever the thread has done of it, it does no more
    ::munmap(p, bytes);
    const prefault::Stats s1 = prefault::wait_idle();
    EXPECT_EQ(s1.ranges, s0.ranges + 1);
    EXPECT_LE(s1.range_bytes - s0.range_bytes, bytes);
  }
}

bool all_zero(const void* p, size_t bytes) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; i++)
    if (c[i] != 0) return false;
  return true;
}

// A field of value_alloc::info()'s `field:value` lines, or -1.
int64_t info_field(const std::string& info, std::string_view field) {
  const std::string key = "\r\n" + std::string(field) + ":";
  const size_t at = ("\r\n" + info).find(key);
  if (at == std::string::npos) return -1;
  return std::strtoll(info.c_str() + at + key.size() - 2, nullptr, 10);
}

// Takes every block the pantry holds (the thread held: none is added meanwhile).
std::vector<void*> take_all() {
  std::vector<void*> out;
  while (void* p = prefault::take_block()) out.push_back(p);
  return out;
}

// A block handed back (give_back: the value allocator's empty blocks) is zeroed into the
// pantry when the pantry is short, instead of a new block mapped and populated: the pantry's
// next blocks are the very blocks handed back, all zero. The thread is held while the test
// sets up what it will find, so what it does is decided, not raced.
TEST_F(Prefault, ABlockHandedBackRefillsAShortPantryZeroed) {
  prefault::set_held_for_test(true);
  std::vector<void*> blocks = take_all();  // kPantryBlocks, and spares a test before left
  ASSERT_GE(blocks.size(), prefault::kPantryBlocks);
  for (size_t i = prefault::kPantryBlocks; i < blocks.size(); i++) ::munmap(blocks[i], prefault::kBlockBytes);
  blocks.resize(prefault::kPantryBlocks);
  const prefault::Stats s0 = prefault::stats();
  for (void* p : blocks) {
    std::memset(p, 0xab, prefault::kBlockBytes);  // used, as a value block is
    prefault::give_back(p);
  }
  prefault::set_held_for_test(false);
  const prefault::Stats s1 = prefault::wait_idle();
  EXPECT_EQ(s1.returned - s0.returned, prefault::kPantryBlocks);
  EXPECT_EQ(s1.returned_reused - s0.returned_reused, prefault::kPantryBlocks);
  EXPECT_EQ(s1.blocks_made, s0.blocks_made) << "a block was made while blocks handed back were waiting";
  EXPECT_EQ(s1.returned_unmapped, s0.returned_unmapped);
  EXPECT_EQ(s1.returned_unmapped_by_caller, s0.returned_unmapped_by_caller);

  prefault::set_held_for_test(true);  // no refill while the pantry is looked at
  const std::vector<void*> again = take_all();
  EXPECT_EQ(again.size(), prefault::kPantryBlocks);
  for (void* p : again) {
    EXPECT_NE(std::find(blocks.begin(), blocks.end(), p), blocks.end()) << "not a block handed back";
    EXPECT_TRUE(all_zero(p, prefault::kBlockBytes)) << "a block handed back was not zeroed";
    ::munmap(p, prefault::kBlockBytes);
  }
  prefault::set_held_for_test(false);
}

// With the pantry empty and a block handed back not yet taken by the thread (busy, or waiting
// for a CPU), take_block gives that block, zeroed by the caller: not a miss.
TEST_F(Prefault, TakeFindsABlockHandedBackWhenThePantryIsEmpty) {
  prefault::set_held_for_test(true);
  for (void* p : take_all()) ::munmap(p, prefault::kBlockBytes);
  void* mine = detail::map_aligned_block(prefault::kBlockBytes);
  std::memset(mine, 0xab, prefault::kBlockBytes);
  const prefault::Stats s0 = prefault::stats();
  prefault::give_back(mine);
  void* p = prefault::take_block();
  const prefault::Stats s1 = prefault::stats();
  prefault::set_held_for_test(false);
  EXPECT_EQ(p, mine);
  EXPECT_TRUE(p && all_zero(p, prefault::kBlockBytes)) << "the caller was given it dirty";
  EXPECT_EQ(s1.returned_reused_by_caller - s0.returned_reused_by_caller, 1u);
  EXPECT_EQ(s1.blocks_taken - s0.blocks_taken, 1u);
  EXPECT_EQ(s1.blocks_missed, s0.blocks_missed);
  if (p) ::munmap(p, prefault::kBlockBytes);
}

// With the pantry full, the thread keeps kPantrySpareBlocks of the blocks handed back (zeroed)
// and unmaps the others; beyond kReturnedBlocksMax waiting, the caller unmaps one itself.
TEST_F(Prefault, BlocksHandedBackToAFullPantryAreKeptAsSparesOrUnmapped) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  prefault::set_held_for_test(true);
  for (void* p : take_all()) ::munmap(p, prefault::kBlockBytes);  // spares a test before left
  prefault::set_held_for_test(false);
  prefault::wait_idle();  // the pantry full: kPantryBlocks
  prefault::set_held_for_test(true);
  const prefault::Stats s0 = prefault::stats();
  const std::string info0 = value_alloc::info();
  std::vector<void*> blocks = resident_blocks(prefault::kReturnedBlocksMax + 1);
  for (void* p : blocks) prefault::give_back(p);
  const prefault::Stats s1 = prefault::stats();
  EXPECT_EQ(s1.returned - s0.returned, prefault::kReturnedBlocksMax + 1);
  EXPECT_EQ(s1.returned_unmapped_by_caller - s0.returned_unmapped_by_caller, 1u) << "the one beyond the bound";
  // INFO shows it (value_alloc::info, the kv app's section).
  EXPECT_EQ(info_field(value_alloc::info(), "pantry_blocks_unmapped_by_caller"),
            info_field(info0, "pantry_blocks_unmapped_by_caller") + 1);
  EXPECT_EQ(info_field(value_alloc::info(), "pantry_blocks_handed_back"),
            info_field(info0, "pantry_blocks_handed_back") + prefault::kReturnedBlocksMax + 1);
  std::vector<unsigned char> v(prefault::kBlockBytes / page);
  EXPECT_EQ(::mincore(blocks.back(), prefault::kBlockBytes, v.data()), -1) << "the caller did not unmap it";
  EXPECT_EQ(errno, ENOMEM);
  prefault::set_held_for_test(false);
  const prefault::Stats s2 = prefault::wait_idle();
  EXPECT_EQ(s2.returned_reused - s0.returned_reused, prefault::kPantrySpareBlocks);
  EXPECT_EQ(s2.returned_unmapped - s0.returned_unmapped, prefault::kReturnedBlocksMax - prefault::kPantrySpareBlocks);
  EXPECT_EQ(::mincore(blocks[prefault::kReturnedBlocksMax - 1], prefault::kBlockBytes, v.data()), -1)
      << "the thread did not unmap the last one queued";
  prefault::set_held_for_test(true);
  const std::vector<void*> pantry = take_all();
  prefault::set_held_for_test(false);
  EXPECT_EQ(pantry.size(), prefault::kPantryBlocks + prefault::kPantrySpareBlocks);
  for (void* p : pantry) ::munmap(p, prefault::kBlockBytes);
}

// A key table's node slabs of kBlockBytes (every mapped slab) are handed back to the thread
// when the table goes, destroyed, cleared or drained as a flushed keyspace is (FLUSHALL, a
// deleted hash's last field): the freeing thread (the event loop) unmaps none of them.
TEST_F(Prefault, NodeSlabsAreHandedBackWhenTheirTableGoes) {
  const char* const kHow[] = {"destroyed", "cleared", "drained"};
  for (int how = 0; how < 3; how++) {
    const prefault::Stats s0 = prefault::wait_idle();
    auto t = std::make_unique<Table>();
    // 150,000 nodes of 80 bytes: 12 MB, the last 10 in slabs of 2 MiB.
    for (uint64_t i = 0; i < 150000; i++) t->insert_or_assign("key:" + std::to_string(i), std::string("v"));
    const prefault::Stats s1 = prefault::wait_idle();
    // Only a slab asks for a populated block of this size here (a growing table's bucket
    // arrays are mapped unpopulated; the values are short std::strings).
    const uint64_t slabs = s1.blocks_taken + s1.blocks_missed - s0.blocks_taken - s0.blocks_missed;
    ASSERT_GE(slabs, 4u) << kHow[how];
    if (how == 0) {
      t.reset();
    } else if (how == 1) {
      t->clear();
    } else {
      for (int calls = 0; !t->drained(); calls++) {
        ASSERT_LT(calls, 1000) << "drain made no progress";
        t->drain(1000, [](std::string&&) {});
      }
    }
    const prefault::Stats s2 = prefault::wait_idle();
    EXPECT_EQ(s2.returned - s1.returned, slabs) << kHow[how] << ": a slab was not handed back";
    EXPECT_EQ(s2.returned_unmapped_by_caller, s1.returned_unmapped_by_caller) << kHow[how];
    EXPECT_EQ(s2.returned_reused + s2.returned_unmapped - s1.returned_reused - s1.returned_unmapped, slabs) << kHow[how];
    t.reset();
  }
}

// What a FLUSHALL of issue 16's largest state hands back at once (prefault.h,
// kReturnedBytesMax): 20 M values of 400 B fill ~3,900 blocks, and nearly all of them empty in
// the lazy free's last turn. All go to the thread, none is unmapped by the freeing thread,
// even while the thread does not run (held here: busy, or waiting for a CPU).
TEST_F(Prefault, AWholeKeyspacesBlocksAreHandedBackAtOnce) {
  constexpr size_t kFlushBlocks = size_t{20'000'000} * 408 / prefault::kBlockBytes;  // 408-byte slots (value_alloc.h)
  prefault::set_held_for_test(true);
  const prefault::Stats s0 = prefault::stats();
  std::vector<void*> blocks = resident_blocks(kFlushBlocks);
  for (void* p : blocks) prefault::give_back(p);
  const prefault::Stats s1 = prefault::stats();
  prefault::set_held_for_test(false);
  EXPECT_EQ(s1.returned - s0.returned, kFlushBlocks);
  EXPECT_EQ(s1.returned_unmapped_by_caller, s0.returned_unmapped_by_caller)
      << "the freeing thread unmapped blocks beyond the bound";
  const prefault::Stats s2 = prefault::wait_idle();
  EXPECT_EQ(s2.returned_reused + s2.returned_unmapped - s0.returned_reused - s0.returned_unmapped, kFlushBlocks);
  prefault::set_held_for_test(true);  // the spares left in the pantry go, for the next test
  for (void* p : take_all()) ::munmap(p, prefault::kBlockBytes);
  prefault::set_held_for_test(false);
}

bool mapped(const void* p) {
  unsigned char v = 0;
  return ::mincore(const_cast<void*>(p), 1, &v) == 0;
}

// An array handed over (release: a bucket array given up, key_table.h) is unmapped by the
// thread, not by the caller, a chunk a call with its cuts at kChunkBytes-aligned addresses: as
// many calls as the aligned windows the range touches, none over kChunkBytes. The range here
// starts a page past an aligned address (and ends 3 pages past one), as no array need be
// aligned. Held, the thread has unmapped nothing: the caller returned at once.
TEST_F(Prefault, AReleasedArrayIsUnmappedByTheThreadAChunkACall) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  char* const block = static_cast<char*>(detail::map_aligned_block(size_t{16} << 20));
  ::munmap(block, page);
  char* const p = block + page;
  const size_t bytes = (size_t{8} << 20) + 2 * page;  // to 8 MiB + 3 pages past block
  ::munmap(p + bytes, (size_t{16} << 20) - page - bytes);
  for (size_t i = 0; i < bytes; i += page) p[i] = 1;  // resident, as a bucket array written
  const auto at = reinterpret_cast<uintptr_t>(p);
  const size_t windows = (((at + bytes + prefault::kChunkBytes - 1) & ~uintptr_t{prefault::kChunkBytes - 1}) -
                          (at & ~uintptr_t{prefault::kChunkBytes - 1})) /
                         prefault::kChunkBytes;
  ASSERT_EQ(windows, 5u);
  prefault::set_held_for_test(true);
  const prefault::Stats s0 = prefault::stats();
  const uint64_t own0 = detail::unmap_stats.bytes.load();
  EXPECT_TRUE(prefault::release(p, bytes));
  const prefault::Stats s1 = prefault::stats();
  EXPECT_EQ(s1.released - s0.released, 1u);
  EXPECT_EQ(s1.released_bytes - s0.released_bytes, bytes);
  EXPECT_EQ(s1.released_bytes_waiting - s0.released_bytes_waiting, bytes);
  EXPECT_TRUE(mapped(p) && mapped(p + bytes - page)) << "unmapped while the thread was held";
  prefault::set_held_for_test(false);
  const prefault::Stats s2 = prefault::wait_idle();
  EXPECT_EQ(s2.released_bytes_unmapped - s0.released_bytes_unmapped, bytes);
  EXPECT_EQ(s2.released_munmaps - s0.released_munmaps, windows);
  EXPECT_LE(s2.released_largest_munmap, prefault::kChunkBytes);
  EXPECT_EQ(s2.released_bytes_waiting, 0u);
  EXPECT_EQ(s2.released_refused, s0.released_refused);
  EXPECT_EQ(detail::unmap_stats.bytes.load(), own0);
  for (size_t i = 0; i < bytes; i += page) ASSERT_FALSE(mapped(p + i)) << "page " << i / page << " still mapped";
}

// Beyond kReleasedBytesMax waiting, an array is refused (release returns false) and its
// caller unmaps it; INFO counts it (released_arrays_unmapped_by_caller). The ranges here are
// address space only (PROT_NONE, no memory behind it).
TEST_F(Prefault, ArraysBeyondTheBoundAreRefused) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  auto reserve = [](size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    EXPECT_NE(p, MAP_FAILED);
    return static_cast<char*>(p);
  };
  prefault::set_held_for_test(true);
  const prefault::Stats s0 = prefault::stats();
  ASSERT_EQ(s0.released_bytes_waiting, 0u);
  const std::string info0 = value_alloc::info();
  char* const big = reserve(prefault::kReleasedBytesMax - page);
  char* const one = reserve(page);
  char* const two = reserve(2 * page);
  EXPECT_TRUE(prefault::release(big, prefault::kReleasedBytesMax - page));
  EXPECT_TRUE(prefault::release(one, page)) << "refused at the bound, not beyond it";
  EXPECT_FALSE(prefault::release(two, 2 * page));
  const prefault::Stats s1 = prefault::stats();
  EXPECT_EQ(s1.released_bytes_waiting, prefault::kReleasedBytesMax);
  EXPECT_EQ(s1.released_refused - s0.released_refused, 1u);
  EXPECT_EQ(s1.released_refused_bytes - s0.released_refused_bytes, 2 * page);
  EXPECT_EQ(info_field(value_alloc::info(), "released_arrays_unmapped_by_caller"),
            info_field(info0, "released_arrays_unmapped_by_caller") + 1);
  EXPECT_EQ(info_field(value_alloc::info(), "released_array_bytes_waiting"),
            static_cast<int64_t>(prefault::kReleasedBytesMax));
  ::munmap(two, 2 * page);  // the caller's
  prefault::set_held_for_test(false);
  const prefault::Stats s2 = prefault::wait_idle();
  EXPECT_EQ(s2.released_bytes_unmapped - s0.released_bytes_unmapped, prefault::kReleasedBytesMax);
  EXPECT_EQ(s2.released_bytes_waiting, 0u);
  EXPECT_EQ(info_field(value_alloc::info(), "released_array_bytes_waiting"), 0);
  EXPECT_FALSE(mapped(big) || mapped(big + prefault::kReleasedBytesMax - 2 * page) || mapped(one));
}

// A table that grows past a mapped bucket array (2 MiB or more) gives the old one to the
// thread when its resize ends: the steps (inserts, erases) make no munmap of it. Planted,
// -DHMDB_PLANTED_BUG_LOOP_UNMAPS_BUCKETS: the stepping thread unmaps the old array itself.
TEST_F(Prefault, AGrownTablesOldArrayGoesToTheThread) {
  const size_t mapped_buckets = kPopulateBytesMin / sizeof(void*);
  Table t;
  for (uint64_t i = 0; !(t.rehashing() && t.bucket_count() >= 2 * mapped_buckets); i++)
    t.insert_or_assign("key:" + std::to_string(i), std::string("v"));
  const size_t old_bytes = t.bucket_count() / 2 * sizeof(void*);
  const prefault::Stats s0 = prefault::wait_idle();
  const uint64_t own0 = detail::unmap_stats.bytes.load();
  while (t.rehashing()) t.step();
  for (int i = 0; i < 100; i++) t.step();  // what an owner's refused array would have needed
  const uint64_t own = detail::unmap_stats.bytes.load() - own0;
  const prefault::Stats s1 = prefault::wait_idle();
  EXPECT_EQ(own, 0u) << "the stepping thread unmapped the old array";
  EXPECT_EQ(s1.released - s0.released, 1u);
  EXPECT_EQ(s1.released_bytes - s0.released_bytes, old_bytes);
  EXPECT_EQ(s1.released_bytes_unmapped - s0.released_bytes_unmapped, old_bytes);
}

TEST_F(Prefault, AForkedChildGetsNoBlockAndQueuesNothing) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The thread does not exist here, and the parent may have held the mutex at the fork.
    void* p = prefault::take_block();
    // A block handed back there is unmapped by the caller (there is no thread to take it).
    void* mine = detail::map_aligned_block(prefault::kBlockBytes);
    prefault::give_back(mine);
    unsigned char v = 0;
    if (::mincore(mine, static_cast<size_t>(::sysconf(_SC_PAGESIZE)), &v) != -1) ::_exit(2);
    // An array released there is refused: the caller unmaps it.
    void* array = detail::map_block(size_t{4} << 20);
    if (prefault::release(array, size_t{4} << 20)) ::_exit(3);
    ::munmap(array, size_t{4} << 20);
    int local = 0;
    prefault::populate_ahead(&local, sizeof local);
    prefault::forget(&local, sizeof local);
    ::_exit(p == nullptr ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace hmdb::kv
