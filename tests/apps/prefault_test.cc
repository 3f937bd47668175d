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

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "kv/key_table.h"
#include "kv/populated_allocator.h"

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

// Each test starts with prefaulting on, the thread started and idle (its pantry full).
class Prefault : public ::testing::Test {
 protected:
  void SetUp() override {
    prefault::set_enabled(true);
    if (void* p = prefault::take_block()) ::munmap(p, prefault::kBlockBytes);  // starts the thread
    prefault::wait_idle();
  }
  void TearDown() override { prefault::set_enabled(true); }
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

TEST_F(Prefault, AForkedChildGetsNoBlockAndQueuesNothing) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The thread does not exist here, and the parent may have held the mutex at the fork.
    void* p = prefault::take_block();
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
