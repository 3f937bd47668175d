// tests/apps/value_alloc_test.cc — the string values' allocator (apps/kv/value_alloc.h):
// values come from blocks the prefault thread populated, so the thread that stores them (the
// event loop) takes no page fault for them; the size classes; slots, runs and blocks given
// back; a forked child. Faults are the calling thread's own minor faults (getrusage
// RUSAGE_THREAD), as in prefault_test.cc; no timing.
#include "kv/value_alloc.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "kv/prefault.h"

namespace hmdb::kv {
namespace {

uint64_t thread_minor_faults() {
  rusage ru{};
  EXPECT_EQ(::getrusage(RUSAGE_THREAD, &ru), 0);
  return static_cast<uint64_t>(ru.ru_minflt);
}

// 20,000 values of 400 bytes: ~8 MB, four blocks of slots of 408 bytes.
constexpr size_t kValues = 20000;
const std::string kText(400, 'v');

// Stores kValues values of 400 bytes into `out` (already sized, its own memory written, so
// that only the values' memory is new); if `catch_up`, lets the prefault thread refill its
// pantry after each value, as the loop's turns leave it time to. Returns the calling
// thread's minor faults meanwhile.
template <class Str>
uint64_t faults_to_store(std::vector<Str>& out, bool catch_up) {
  const uint64_t f0 = thread_minor_faults();
  for (Str& s : out) {
    s.assign(kText);
    if (catch_up) prefault::wait_idle();
  }
  return thread_minor_faults() - f0;
}

class ValueAlloc : public ::testing::Test {
 protected:
  void SetUp() override {
    prefault::set_enabled(true);
    String warm(kText);  // the allocator's own state exists before anything is counted
    prefault::wait_idle();
  }
  void TearDown() override {
    prefault::set_held_for_test(false);
    prefault::set_enabled(true);
  }
};

// value_alloc::info()'s `field:value` lines.
std::map<std::string, uint64_t> info_fields() {
  std::map<std::string, uint64_t> out;
  const std::string t = value_alloc::info();
  for (size_t at = 0; at < t.size();) {
    const size_t end = t.find("\r\n", at);
    const size_t colon = t.find(':', at);
    if (end == std::string::npos || colon > end) {
      ADD_FAILURE() << "not a field:value line in " << t;
      break;
    }
    out[t.substr(at, colon - at)] = std::stoull(t.substr(colon + 1, end - colon - 1));
    at = end + 2;
  }
  return out;
}

TEST_F(ValueAlloc, ValuesComeFromPopulatedBlocksWithoutAFaultOfTheCaller) {
  std::vector<String> values(kValues);
  const value_alloc::Stats s0 = value_alloc::stats();
  const uint64_t faults = faults_to_store(values, /*catch_up=*/true);
  const value_alloc::Stats s1 = value_alloc::stats();
  std::printf("%zu values of 400 B: %llu faults of the storing thread, %llu blocks from the pantry, %llu mapped here\n",
              kValues, static_cast<unsigned long long>(faults),
              static_cast<unsigned long long>(s1.blocks_from_pantry - s0.blocks_from_pantry),
              static_cast<unsigned long long>(s1.blocks_mapped_here - s0.blocks_mapped_here));
  EXPECT_EQ(faults, 0u) << "the storing thread faulted value memory in itself";
  EXPECT_GE(s1.blocks_from_pantry - s0.blocks_from_pantry, kValues * 408 / kValueBlockBytes);
  EXPECT_EQ(s1.blocks_mapped_here, s0.blocks_mapped_here);
  EXPECT_EQ(s1.slots_live - s0.slots_live, kValues);
  EXPECT_EQ(s1.slot_bytes_live - s0.slot_bytes_live, kValues * 408);
  for (const String& v : values) ASSERT_EQ(std::string_view(v), kText);

  // The controls. With the pantry off the allocator maps and populates its blocks itself
  // (a fault per page, one per block if the kernel gives it a huge page) ...
  prefault::set_enabled(false);
  std::vector<String> more(kValues);
  const uint64_t self_faults = faults_to_store(more, false);
  // ... and a std::string's block comes from malloc's heap, faulted in by the thread that
  // writes it: what the server did before.
  std::vector<std::string> before(kValues);
  const uint64_t malloc_faults = faults_to_store(before, false);
  std::printf("the same without the pantry: %llu faults; with std::string (malloc's heap): %llu faults\n",
              static_cast<unsigned long long>(self_faults), static_cast<unsigned long long>(malloc_faults));
  EXPECT_GE(self_faults, kValues * 408 / kValueBlockBytes);
  EXPECT_GE(malloc_faults, kValues * 416 / kValueBlockBytes);
}

TEST(ValueAllocClasses, EverySizeGetsASlotAtLeastAsBigAndAtMostAnEighthMore) {
  EXPECT_EQ(value_alloc::slot_bytes(16), 16u);
  EXPECT_EQ(value_alloc::slot_bytes(401), 408u);  // a String of capacity 400 (glibc: 416)
  EXPECT_EQ(value_alloc::slot_bytes(513), 528u);
  EXPECT_EQ(value_alloc::slot_bytes(1025), 1152u);
  EXPECT_EQ(value_alloc::slot_bytes(kValueSlotBytesMax), kValueSlotBytesMax);
  size_t last = 0;
  for (size_t n = 1; n <= kValueSlotBytesMax; n++) {
    const size_t b = value_alloc::slot_bytes(n);
    ASSERT_GE(b, n);
    ASSERT_GE(b, last) << n;
    ASSERT_EQ(b % 8, 0u) << n;
    ASSERT_LE(b, n + std::max<size_t>(8, n / 8) + 8) << n;
    last = b;
  }
}

// Random values of random sizes stored, overwritten and freed: every value keeps its bytes,
// the counts agree, and once all are freed the blocks are given back but for the kept ones.
TEST_F(ValueAlloc, RandomStoresAndFreesKeepEveryValueAndGiveBlocksBack) {
  const uint64_t seed = std::random_device{}();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  const value_alloc::Stats s0 = value_alloc::stats();
  std::vector<String> values(30000);
  std::vector<std::string> expect(values.size());
  auto size = [&] {
    switch (rng() % 4) {
      case 0: return 16 + rng() % 48;
      case 1: return 300 + rng() % 200;
      case 2: return 500 + rng() % 3000;
      default: return 10000 + rng() % 12000;  // above kValueSlotBytesMax too
    }
  };
  for (int round = 0; round < 200000; round++) {
    const size_t i = rng() % values.size();
    if (rng() % 3 == 0) {
      values[i] = String();
      values[i].shrink_to_fit();
      expect[i].clear();
    } else {
      std::string t(size(), static_cast<char>('a' + rng() % 26));
      t[0] = static_cast<char>(i);
      if (rng() % 2) {
        values[i].assign(t);
      } else {
        values[i].append(t);
        t = expect[i] + t;
      }
      expect[i] = std::move(t);
    }
  }
  for (size_t i = 0; i < values.size(); i++) ASSERT_EQ(std::string_view(values[i]), expect[i]) << i;
  values.clear();
  values.shrink_to_fit();
  const value_alloc::Stats s1 = value_alloc::stats();
  EXPECT_EQ(s1.slots_live, s0.slots_live);
  EXPECT_EQ(s1.slot_bytes_live, s0.slot_bytes_live);
  // Every block made here is given back but the one empty block kept.
  EXPECT_LE(s1.blocks, s0.blocks + kValueEmptyBlocksKept);
  std::printf("blocks: %llu before, %llu after (%llu made in all)\n", static_cast<unsigned long long>(s0.blocks),
              static_cast<unsigned long long>(s1.blocks),
              static_cast<unsigned long long>(s1.blocks_from_pantry + s1.blocks_mapped_here));
}

// The empty blocks beyond the one kept go to the prefault thread (prefault::give_back), which
// unmaps them or reuses them for its pantry: the thread that frees the values (the event
// loop) makes no munmap for them.
TEST_F(ValueAlloc, BlocksOfOneSizeAreGivenBackWhenTheirValuesGo) {
  const value_alloc::Stats s0 = value_alloc::stats();
  const prefault::Stats p0 = prefault::stats();
  uint64_t most = 0;
  {
    std::vector<String> values(kValues);
    for (String& v : values) v.assign(kText);
    most = value_alloc::stats().blocks;
    EXPECT_GE(most, s0.blocks + 2);
  }
  const value_alloc::Stats s1 = value_alloc::stats();
  // One empty block is kept.
  EXPECT_LE(s1.blocks, s0.blocks + kValueEmptyBlocksKept);
  EXPECT_EQ(s1.blocks_given_back - s0.blocks_given_back, most - s1.blocks);
  const prefault::Stats p1 = prefault::wait_idle();
  EXPECT_EQ(p1.returned - p0.returned, most - s1.blocks) << "a block was not handed to the prefault thread";
  EXPECT_EQ(p1.returned_unmapped_by_caller, p0.returned_unmapped_by_caller) << "the freeing thread unmapped a block";
  EXPECT_EQ(p1.returned_reused + p1.returned_unmapped - p0.returned_reused - p0.returned_unmapped, most - s1.blocks);
}

// value_alloc::info(), the kv app's INFO lines on its 2 MiB blocks (docs/operations.md,
// "Huge pages"): each field moves by what the allocator and the prefault thread did. The
// thread is held while the test sets up what it finds, so the counts are decided, not raced.
TEST_F(ValueAlloc, InfoCountsTheBlocksMappedTakenMissedHandedBackAndReused) {
  std::map<std::string, uint64_t> i0 = info_fields();
  const std::vector<std::string> names{"value_blocks",         "pantry_blocks_taken",       "pantry_blocks_missed",
                                       "pantry_blocks_handed_back", "pantry_blocks_reused", "pantry_blocks_unmapped_by_caller",
                                       "released_array_bytes", "released_array_bytes_waiting",
                                       "released_arrays_unmapped_by_caller"};
  ASSERT_EQ(i0.size(), names.size()) << value_alloc::info();
  for (const std::string& f : names) ASSERT_EQ(i0.count(f), 1u) << f;

  // Values stored while the pantry is empty: each new block is a miss, mapped by the caller.
  prefault::set_held_for_test(true);
  while (void* p = prefault::take_block()) ::munmap(p, kValueBlockBytes);  // the pantry and any block waiting
  i0 = info_fields();
  std::vector<String> values(kValues);
  for (String& v : values) v.assign(kText);
  std::map<std::string, uint64_t> i1 = info_fields();
  std::set<uintptr_t> holding;  // the blocks the values are in
  for (const String& v : values) holding.insert(reinterpret_cast<uintptr_t>(v.data()) & ~uintptr_t{kValueBlockBytes - 1});
  const uint64_t mapped = i1["value_blocks"] - i0["value_blocks"];
  EXPECT_GE(i1["value_blocks"], holding.size());
  EXPECT_GE(mapped, holding.size() - 1) << "at most one empty block was there before";
  EXPECT_EQ(i1["pantry_blocks_missed"] - i0["pantry_blocks_missed"], mapped) << "the pantry was empty";
  EXPECT_EQ(i1["pantry_blocks_taken"], i0["pantry_blocks_taken"]);
  EXPECT_EQ(i1["value_blocks"], value_alloc::stats().blocks);

  // Freed: the empty blocks but the one kept are handed back, none reused yet (held).
  values.clear();
  values.shrink_to_fit();
  std::map<std::string, uint64_t> i2 = info_fields();
  const uint64_t back = i1["value_blocks"] - i2["value_blocks"];
  ASSERT_GE(back, 2u);
  EXPECT_LE(i2["value_blocks"], i0["value_blocks"] + kValueEmptyBlocksKept);
  EXPECT_EQ(i2["pantry_blocks_handed_back"] - i1["pantry_blocks_handed_back"], back);
  EXPECT_EQ(i2["pantry_blocks_reused"], i1["pantry_blocks_reused"]);

  // A take finds one of them waiting (the pantry still empty): taken and reused, no miss.
  void* p = prefault::take_block();
  ASSERT_NE(p, nullptr);
  std::map<std::string, uint64_t> i3 = info_fields();
  EXPECT_EQ(i3["pantry_blocks_taken"] - i2["pantry_blocks_taken"], 1u);
  EXPECT_EQ(i3["pantry_blocks_reused"] - i2["pantry_blocks_reused"], 1u);
  EXPECT_EQ(i3["pantry_blocks_missed"], i2["pantry_blocks_missed"]);
  ::munmap(p, kValueBlockBytes);

  // Let go, the thread zeroes the others into its empty pantry up to kPantryBlocks +
  // kPantrySpareBlocks and unmaps the rest; the caller unmapped none.
  prefault::set_held_for_test(false);
  prefault::wait_idle();
  std::map<std::string, uint64_t> i4 = info_fields();
  EXPECT_EQ(i4["pantry_blocks_reused"] - i3["pantry_blocks_reused"],
            std::min<uint64_t>(back - 1, prefault::kPantryBlocks + prefault::kPantrySpareBlocks));
  EXPECT_EQ(i4["pantry_blocks_unmapped_by_caller"], i0["pantry_blocks_unmapped_by_caller"]);
  EXPECT_EQ(i4["pantry_blocks_handed_back"], i2["pantry_blocks_handed_back"]);
  std::printf("info after: %s", value_alloc::info().c_str());
}

TEST_F(ValueAlloc, AForkedChildStoresAndFreesValues) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // No prefault thread here: the allocator maps its blocks itself.
    std::vector<String> values(kValues);
    for (String& v : values) v.assign(kText);
    bool ok = true;
    for (const String& v : values) ok = ok && std::string_view(v) == kText;
    values.clear();
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace hmdb::kv
