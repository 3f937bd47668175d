// tests/apps/zorder_test.cc — kv::ZOrder (apps/kv/zorder.h, a B+tree with counts) against
// a model (std::set with Redis' order, and a member -> score map) through random inserts,
// erases and score updates: the order both ways, rank, the entry at a rank, lower_bound,
// find, the member index, erase (remove) by iterator and by member, copies, and the structure's own
// invariants (every count, first entry, fill bound, leaf link, the size and the index). The
// model tests run the same code with tiny nodes (4 or 5 entries a leaf, 4 or 7 children an
// inner node: deep trees, every split, borrow and merge) and with kv's sizes.
// The node pool (apps/kv/node_pool.h) on its own and as the order uses it: no leaf or inner
// node goes to malloc (counted by this binary's own operator new and delete).
// ZORDER_SEED=N repeats a run.
#include "kv/zorder.h"
#include "kv/prefault.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <iterator>
#include <random>
#include <set>
#include <map>
#include <string>
#include <vector>

// Counts, while g_count_blocks is set, the blocks of kCountedMin..kCountedMax bytes that
// operator new hands out and operator delete frees (sizes by malloc_usable_size, so an
// unsized delete is counted too): a B+tree leaf or inner node (552 bytes) falls in the
// range, an entry (48), a member's heap block, a slab of the pool (mapped, not from malloc) do not.
// g_all_news and g_all_deletes count blocks of any size.
namespace {
constexpr size_t kCountedMin = 512;
constexpr size_t kCountedMax = 4096;
bool g_count_blocks = false;
size_t g_counted_news = 0;
size_t g_counted_deletes = 0;
size_t g_all_news = 0;
size_t g_all_deletes = 0;
}  // namespace

void* operator new(size_t n) {
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  if (g_count_blocks) {
    g_all_news++;
    if (n >= kCountedMin && n < kCountedMax) g_counted_news++;
  }
  return p;
}
void operator delete(void* p) noexcept {
  if (p && g_count_blocks) {
    g_all_deletes++;
    const size_t n = malloc_usable_size(p);
    if (n >= kCountedMin && n < kCountedMax) g_counted_deletes++;
  }
  std::free(p);
}
void operator delete(void* p, size_t) noexcept { operator delete(p); }

namespace hmdb::kv {
namespace {

using Model = std::set<ZEntry, ZLess>;

uint64_t seed_from_env(uint64_t fallback) {
  const char* s = std::getenv("ZORDER_SEED");
  return s ? std::strtoull(s, nullptr, 10) : fallback;
}

template <class Order>
void expect_same(const Order& l, const Model& m) {
  ASSERT_EQ(l.size(), m.size());
  ASSERT_TRUE(l.check_invariants());
  std::vector<std::string> forward, backward, want;
  for (const ZEntry& e : l) forward.emplace_back(e.member);
  for (auto it = l.rbegin(); it != l.rend(); ++it) backward.emplace_back(it->member);
  for (const ZEntry& e : m) want.emplace_back(e.member);
  EXPECT_EQ(forward, want);
  std::vector<std::string> reversed(want.rbegin(), want.rend());
  EXPECT_EQ(backward, reversed);
  size_t r = 0;
  for (const ZEntry& e : m) {
    ASSERT_EQ(l.rank(ZEntryKey{e.score, e.member}), static_cast<int64_t>(r));
    ASSERT_EQ(l.at(r)->member, e.member);
    r++;
  }
}

template <class Order>
class ZOrderModel : public ::testing::Test {};
using Orders = ::testing::Types<BasicZOrder<4, 4>, BasicZOrder<5, 7>, ZOrder>;
TYPED_TEST_SUITE(ZOrderModel, Orders);

TYPED_TEST(ZOrderModel, MatchesAModelThroughRandomInsertsAndErases) {
  using Order = TypeParam;
  for (uint64_t base = 1; base <= 30; base++) {
    const uint64_t seed = seed_from_env(base);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (ZORDER_SEED=" + std::to_string(seed) + " to repeat)");
    std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
    std::mt19937_64 rng(seed);
    Order l;
    Model m;
    std::map<std::string, double> scores;
    // Mostly small pools (many equal scores and re-inserts), every fifth run a big one
    // (trees several levels deep with kv's node sizes too).
    const int members = 1 + static_cast<int>(rng() % (base % 5 == 0 ? 3000 : 300));
    const int steps = base % 5 == 0 ? 12000 : 2000;
    for (int step = 0; step < steps; step++) {
      // Every third run with members longer than ZMember::kInline (held on the heap).
      const std::string member = (base % 3 == 0 ? std::string(40, 'x') : std::string("m")) + std::to_string(rng() % members);
      const double score = static_cast<double>(static_cast<int>(rng() % 20) - 10) / 2;
      const int op = static_cast<int>(rng() % 14);
      if (op < 5) {
        // A member is there once: a second insert with any score is refused.
        const bool inserted = scores.emplace(member, score).second;
        if (inserted) m.insert(ZEntry{score, member});
        ASSERT_EQ(l.insert(ZEntry{score, member}), inserted);
      } else if (op < 7) {
        const size_t erased = m.erase(ZEntry{score, member});
        if (erased) scores.erase(member);
        ASSERT_EQ(l.erase(ZEntryKey{score, member}), erased);
      } else if (op < 8) {
        auto found = scores.find(member);
        const size_t erased = found != scores.end() ? 1 : 0;
        if (erased) {
          m.erase(ZEntry{found->second, member});
          scores.erase(found);
        }
        ASSERT_EQ(l.erase_member(member), erased);
      } else if (op >= 11) {
        // A new score for a member: in place (the rank holds) or moved, as ZADD does.
        auto found = scores.find(member);
        const bool there = found != scores.end();
        if (there) {
          m.erase(ZEntry{found->second, member});
          m.insert(ZEntry{score, member});
          found->second = score;
        }
        ASSERT_EQ(l.update_score(member, score), there);
      } else if (!m.empty()) {
        // Erase by iterator: the one at a random rank; the returned iterator is the next.
        // Or remove(it), which returns nothing (ZPOPMIN's).
        const uint64_t pick = rng() % 4;  // the ends often (ZPOPMIN, ZPOPMAX), else anywhere
        const size_t r = pick == 0 ? 0 : pick == 1 ? m.size() - 1 : rng() % m.size();
        auto victim = std::next(m.begin(), static_cast<std::ptrdiff_t>(r));
        scores.erase(victim->member.str());
        if (rng() % 2) {
          l.remove(l.at(r));
          m.erase(victim);
        } else {
          auto it = l.erase(l.at(r));
          auto mit = m.erase(victim);
          ASSERT_EQ(it == l.end(), mit == m.end());
          if (mit != m.end()) {
            ASSERT_EQ(it->member, mit->member);
          }
        }
      }
      // Probes that may or may not be present.
      const ZEntryKey probe{score, member};
      const bool present = m.count(ZEntry{score, member}) > 0;
      ASSERT_EQ(l.find(probe) != l.end(), present);
      const ZEntry* by_member = l.find_member(member);
      ASSERT_EQ(by_member != nullptr, scores.count(member) > 0);
      if (by_member) {
        ASSERT_EQ(by_member->score, scores[member]);
      }
      ASSERT_EQ(l.rank(probe) >= 0, present);
      auto lb = l.lower_bound(probe);
      auto mlb = m.lower_bound(ZEntry{score, member});
      ASSERT_EQ(lb == l.end(), mlb == m.end());
      if (mlb != m.end()) {
        ASSERT_EQ(lb->member, mlb->member);
      }
      if (!m.empty()) {
        ASSERT_EQ(std::prev(l.end())->member, std::prev(m.end())->member);
        ASSERT_EQ(l.begin()->member, m.begin()->member);
        ASSERT_TRUE(std::prev(l.begin()) == l.end());  // ZREVRANGE's walk steps past the first entry
      }
      ASSERT_TRUE(l.check_invariants()) << "step " << step;
      if (step % 200 == 0) {
        ASSERT_NO_FATAL_FAILURE(expect_same(l, m));
      }
    }
    ASSERT_NO_FATAL_FAILURE(expect_same(l, m));
    Order copy(l);
    ASSERT_NO_FATAL_FAILURE(expect_same(copy, m));
    ASSERT_TRUE(copy.insert(ZEntry{1e9, "last"}));
    m.insert(ZEntry{1e9, "last"});
    ASSERT_FALSE(copy.insert(ZEntry{-1, "last"}));
    ASSERT_NO_FATAL_FAILURE(expect_same(copy, m));
    Order moved(std::move(copy));
    ASSERT_NO_FATAL_FAILURE(expect_same(moved, m));
    EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
    moved.clear();
    EXPECT_TRUE(moved.empty() && moved.check_invariants() && moved.begin() == moved.end());
  }
}

TEST(ZOrder, RankAndAtOnABigOrder) {
  ZOrder l;
  const int n = 200000;
  for (int i = 0; i < n; i++) ASSERT_TRUE(l.insert(ZEntry{static_cast<double>(i % 1000), "k" + std::to_string(i)}));
  ASSERT_EQ(l.size(), static_cast<size_t>(n));
  EXPECT_EQ(l.rank(ZEntryKey{0, "k0"}), 0);
  EXPECT_EQ(l.at(0)->member, "k0");
  const ZEntry& last = *l.at(n - 1);
  EXPECT_EQ(last.score, 999);
  EXPECT_EQ(l.rank(ZEntryKey{last.score, last.member}), n - 1);
  for (size_t r : {size_t{1}, size_t{777}, size_t{123456}}) {
    const ZEntry& e = *l.at(r);
    EXPECT_EQ(l.rank(ZEntryKey{e.score, e.member}), static_cast<int64_t>(r));
  }
  EXPECT_TRUE(l.check_invariants());
  EXPECT_GE(l.depth(), 2);
  // Every rank both ways, in order.
  size_t r = 0;
  for (auto it = l.begin(); it != l.end(); ++it, ++r) {
    ASSERT_EQ(&*l.at(r), &*it);
    ASSERT_EQ(l.rank(ZEntryKey{it->score, it->member}), static_cast<int64_t>(r));
  }
  ASSERT_EQ(r, static_cast<size_t>(n));
  // Emptied from the front (ZPOPMIN) and the back (ZPOPMAX), half each.
  for (int i = 0; i < n; i++) {
    auto it = i % 2 ? std::prev(l.end()) : l.begin();
    l.remove(it);
    if (i % 9973 == 0) {
      ASSERT_TRUE(l.check_invariants()) << i;
    }
  }
  EXPECT_TRUE(l.empty() && l.check_invariants() && l.begin() == l.end());
}

// A big order's leaves and inner nodes come from the pool, not one malloc block each: filled
// with 100,000 entries, emptied from the front (ZPOPMIN) and filled again, malloc hands out
// and frees only a few blocks of leaf size (the member index's small bucket arrays), where
// it handed out 9,347 and freed 5,012 without the pool (bench/README:
// freeing them one by one made glibc coalesce and consolidate during ZPOPMIN). Every node
// goes back to the pool, which keeps one empty slab.
TEST(ZOrder, LeavesAndInnerNodesComeFromThePool) {
  const size_t nodes_before = ZOrder::pool_nodes();
  const int n = 100000;
  auto member = [](int i) { return "element:" + std::to_string(1000000000 + i); };  // 18 bytes: on the heap
  size_t news = 0, deletes = 0;
  {
    ZOrder l;
    g_counted_news = g_counted_deletes = 0;
    g_count_blocks = true;
    for (int i = 0; i < n; i++) l.insert(ZEntry{static_cast<double>((i * 7919) % n), member(i)});
    g_count_blocks = false;
    ASSERT_EQ(l.size(), static_cast<size_t>(n));
    ASSERT_TRUE(l.check_invariants());
    const size_t in_use = ZOrder::pool_nodes() - nodes_before;
    EXPECT_GT(in_use, static_cast<size_t>(n) / ZOrder::kLeafMax);  // at least the leaves
    news += g_counted_news;
    deletes += g_counted_deletes;
    g_counted_news = g_counted_deletes = 0;
    // The entries too: a member of up to ZMember::kInline bytes lives in its entry, and the
    // entry in a pool of its own, so popping them all frees to malloc only the member
    // index's shrinking bucket arrays (the pools' slabs go to the prefault thread), where it
    // freed two blocks per entry (the entry and its member's) before: 200,000.
    g_all_news = g_all_deletes = 0;
    g_count_blocks = true;
    while (!l.empty()) l.remove(l.begin());
    g_count_blocks = false;
    std::printf("popping %d entries: %zu blocks from malloc, %zu freed; entries in the pool: %zu\n", n, g_all_news,
                g_all_deletes, ZOrder::pool_entries());
    EXPECT_LT(g_all_deletes, 300u);
    EXPECT_LT(g_all_news, 10u);
    g_count_blocks = true;
    for (int i = 0; i < n; i++) l.insert(ZEntry{static_cast<double>(i), member(i)});
    g_count_blocks = false;
    news += g_counted_news;
    deletes += g_counted_deletes;
    ASSERT_TRUE(l.check_invariants());
    std::printf("blocks of %zu-%zu bytes from malloc: %zu handed out, %zu freed; pool: %zu nodes, %zu slabs\n",
                kCountedMin, kCountedMax, news, deletes, ZOrder::pool_nodes() - nodes_before, ZOrder::pool_slabs());
  }
  EXPECT_LT(news, 40u);
  EXPECT_LT(deletes, 40u);
  EXPECT_EQ(ZOrder::pool_nodes(), nodes_before);
  if (nodes_before == 0) {
    EXPECT_EQ(ZOrder::pool_slabs(), detail::NodePool::kEmptySlabsKept);
  }
}

// A member's bytes inline (up to kInline) or on the heap, through copies, moves, swaps and
// assignments, each compared with the std::string it was made from.
TEST(ZMember, InlineOrOnTheHeapItKeepsItsBytes) {
  std::vector<std::string> texts;
  for (size_t len : {size_t{0}, size_t{1}, size_t{15}, size_t{16}, ZMember::kInline - 1, ZMember::kInline,
                     ZMember::kInline + 1, size_t{100}, size_t{5000}}) {
    std::string t;
    for (size_t i = 0; i < len; i++) t.push_back(static_cast<char>('a' + (i * 7 + len) % 26));
    if (len > 2) t[1] = '\0';  // bytes, not C strings
    texts.push_back(t);
  }
  for (const std::string& a : texts) {
    for (const std::string& b : texts) {
      ZMember x(a);
      ZMember y{std::string_view(b)};
      ASSERT_EQ(x.view(), a);
      ASSERT_EQ(y.size(), b.size());
      ZMember copy(x);
      ASSERT_EQ(copy, x);
      ASSERT_EQ(copy == y, a == b);
      ZMember moved(std::move(copy));
      ASSERT_EQ(moved.view(), a);
      EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
      copy = y;  // a moved-from member takes a new value
      ASSERT_EQ(copy.view(), b);
      moved.swap(copy);
      ASSERT_EQ(moved.view(), b);
      ASSERT_EQ(copy.view(), a);
      copy = std::move(moved);
      ASSERT_EQ(copy.view(), b);
      const ZMember& self = x;
      x = self;  // self-assignment keeps the bytes
      ASSERT_EQ(x.view(), a);
      ASSERT_EQ(x.str(), a);
      ASSERT_EQ(std::string_view(x) < std::string_view(y), a < b);
    }
  }
}

// The pool alone: blocks handed out and freed in a random order (seeded) never overlap
// (each is filled with its own byte and checked before it is freed), freed slots are handed
// out again before a new slab is taken, and a slab whose blocks are all freed goes back to
// the prefault thread but for kEmptySlabsKept.
TEST(NodePool, BlocksNeverOverlapAndEmptySlabsGoBack) {
  const uint64_t seed = seed_from_env(7);
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  const size_t bytes = 552;
  detail::NodePool pool(bytes);
  const size_t per_slab = pool.slots_per_slab();
  ASSERT_GE(per_slab, 100u);
  std::vector<std::pair<unsigned char*, unsigned char>> live;
  size_t max_live = 0;
  auto check_and_free = [&](size_t i) {
    auto [p, fill] = live[i];
    for (size_t b = 0; b < bytes; b++) ASSERT_EQ(p[b], fill) << "block " << static_cast<void*>(p) << " byte " << b;
    pool.deallocate(p);
    live[i] = live.back();
    live.pop_back();
  };
  for (int round = 0; round < 6; round++) {
    const size_t target = 1 + rng() % 3000;
    while (live.size() < target) {
      auto* p = static_cast<unsigned char*>(pool.allocate());
      const auto fill = static_cast<unsigned char>(rng());
      std::memset(p, fill, bytes);
      live.emplace_back(p, fill);
      max_live = std::max(max_live, live.size());
      // Freed slots are reused first: never more slabs than the live blocks need, plus the
      // ones still holding a live block of an earlier, bigger round.
      ASSERT_LE(pool.slabs(), (max_live + per_slab - 1) / per_slab + detail::NodePool::kEmptySlabsKept);
    }
    while (live.size() > target / 4) ASSERT_NO_FATAL_FAILURE(check_and_free(rng() % live.size()));
    ASSERT_EQ(pool.live(), live.size());
  }
  while (!live.empty()) ASSERT_NO_FATAL_FAILURE(check_and_free(rng() % live.size()));
  EXPECT_EQ(pool.live(), 0u);
  EXPECT_EQ(pool.slabs(), detail::NodePool::kEmptySlabsKept);
}

// A pool's slabs are the prefault thread's blocks, not malloc's (node_pool.h: glibc gave a
// deleted 10 M-member sorted set's 64 KiB slabs back to the kernel from the heap's top, hundreds of
// MiB in one sbrk of one loop turn). Filling kSlabs slabs grows malloc's memory (mallinfo2: the
// heap and its own mappings) by less than one slab, and every slab that empties but
// kEmptySlabsKept is handed back to the thread (prefault::give_back), none unmapped by the
// caller. Counted, not timed. Planted bug -DHMDB_PLANTED_BUG_NODE_POOL_HEAP_SLABS (the slabs
// from operator new, as before): malloc grows by the 8 slabs and nothing is handed back.
TEST(NodePool, SlabsGoToThePrefaultThreadNotMalloc) {
  constexpr size_t kSlabs = 8;
  const size_t bytes = 552;
  std::vector<void*> blocks;
  {
    detail::NodePool pool(bytes);
    const size_t n = kSlabs * pool.slots_per_slab();
    blocks.reserve(n);  // before malloc is measured
    const prefault::Stats s0 = prefault::stats();
    const struct mallinfo2 m0 = mallinfo2();
    for (size_t i = 0; i < n; i++) blocks.push_back(pool.allocate());
    const struct mallinfo2 m1 = mallinfo2();
    ASSERT_EQ(pool.slabs(), kSlabs);
    const auto grown = static_cast<int64_t>(m1.arena + m1.hblkhd) - static_cast<int64_t>(m0.arena + m0.hblkhd);
    std::printf("%zu slabs of %zu bytes: malloc's memory grew by %lld bytes\n", kSlabs, detail::NodePool::kSlabBytes,
                static_cast<long long>(grown));
    EXPECT_LT(grown, static_cast<int64_t>(detail::NodePool::kSlabBytes));
    // Half freed a leaf's worth at a time (deallocate_n), the rest one by one.
    const size_t half = n / 2;
    for (size_t i = 0; i < half; i += 64) pool.deallocate_n(blocks.data() + i, std::min<size_t>(64, half - i));
    for (size_t i = half; i < n; i++) pool.deallocate(blocks[i]);
    const prefault::Stats s1 = prefault::stats();
    std::printf("handed back %llu, unmapped by the caller %llu\n",
                static_cast<unsigned long long>(s1.returned - s0.returned),
                static_cast<unsigned long long>(s1.returned_unmapped_by_caller - s0.returned_unmapped_by_caller));
    EXPECT_EQ(pool.live(), 0u);
    EXPECT_EQ(pool.slabs(), detail::NodePool::kEmptySlabsKept);
    EXPECT_EQ(s1.returned - s0.returned, kSlabs - detail::NodePool::kEmptySlabsKept);
    EXPECT_EQ(s1.returned_unmapped_by_caller, s0.returned_unmapped_by_caller);
  }
}

// The member index resizes a few buckets per insert and erase, never all at once (issue 16:
// the Swiss table it replaced doubled in one call, a 169-176 ms loop turn at 1,835,008
// members). Grown to 2^19 members (17 doublings) and emptied again (shrinks): no insert or
// erase visits more old buckets than the bound (kRehashBucketsPerStep non-empty ones, and
// kRehashEmptyVisitsPerBucket empty ones for each), nor relinks more than a few buckets'
// worth of members. Counted, not timed. The members are fixed, so the counts are the same
// in every run.
// kv's lazy freeing: clear_some destroys at most its budget of entries a call, leaf by leaf
// from the front, and frees each inner node when its last child goes: no call's work (entries
// plus inner nodes) exceeds the budget by more than the inner nodes above one leaf (depth),
// and no call frees more pool nodes (leaves and inner nodes, counted by the pool) than that
// allows, until none is left; a partly cleared order is destroyed whole (ASan's leak check
// counts what is left behind in both cases). Counted, not timed. With the tiny node sizes a
// tree of 20,000 entries has thousands of inner nodes, more than a budget: planted (seen),
// the former clear_some (every inner node freed in its first call) fails the first call's
// bound: work 7,342 (BasicZOrder<4, 4>) and 1,965 (<5, 7>) for a budget of 1,000.
TYPED_TEST(ZOrderModel, ClearSomeFreesABudgetAtATime) {
  using Order = TypeParam;
  constexpr size_t kBudget = 1000;
  for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{20000}}) {
    SCOPED_TRACE(n);
    Order l;
    for (size_t i = 0; i < n; i++) ASSERT_TRUE(l.insert(ZEntry{static_cast<double>(i % 77), "m" + std::to_string(i)}));
    const size_t depth = static_cast<size_t>(l.depth());
    size_t calls = 0, inner = 0, left = n;
    while (!l.empty()) {
      const size_t nodes_before = Order::pool_nodes(), entries_before = Order::pool_entries();
      const size_t work = l.clear_some(kBudget);
      const size_t freed = left - l.size();
      ASSERT_LE(work, kBudget + depth) << "call " << calls;
      ASSERT_GE(work, freed);
      ASSERT_EQ(entries_before - Order::pool_entries(), freed) << "call " << calls;
      // Each leaf freed held an entry freed in this call; each inner node freed, a child freed.
      ASSERT_LE(nodes_before - Order::pool_nodes(), 2 * freed + depth + 1) << "call " << calls;
      ASSERT_GT(freed, 0u);
      inner += work - freed;
      left = l.size();
      ASSERT_EQ(static_cast<size_t>(std::distance(l.begin(), l.end())), left);  // what is left still iterates
      calls++;
    }
    while (!l.cleared()) l.clear_some(kBudget);  // the member index's arrays (none this small)
    EXPECT_GE(calls, (n + kBudget - 1) / kBudget);
    EXPECT_LE(calls, (n + inner + kBudget - 1) / kBudget + 1);
    if (depth > 0) {
      EXPECT_GT(inner, 0u);
    }
    EXPECT_EQ(l.find_member("m0"), nullptr);
  }
  Order half;
  for (int i = 0; i < 5000; i++) ASSERT_TRUE(half.insert(ZEntry{static_cast<double>(i), "m" + std::to_string(i)}));
  const size_t work = half.clear_some(1234);
  EXPECT_GE(work, 1234u);
  EXPECT_LE(work, 1234u + static_cast<size_t>(half.depth()));
  EXPECT_LT(half.size(), 5000u);
  EXPECT_GE(half.size(), 5000u - 1234u);  // the inner nodes freed counted too
  EXPECT_EQ(static_cast<size_t>(std::distance(half.begin(), half.end())), half.size());
  half.clear();
  EXPECT_TRUE(half.empty() && half.begin() == half.end());
}

TEST(ZOrder, MemberIndexResizesAFewBucketsPerOperation) {
  ZOrder l;
  const size_t n = size_t{1} << 19;
  const size_t bucket_bound = kRehashBucketsPerStep * (1 + kRehashEmptyVisitsPerBucket);
  // A bucket holds one member on average at the most (a doubling starts there), and the
  // fullest of 2^19 a handful: two buckets' worth stays under this.
  const size_t node_bound = kRehashBucketsPerStep * 12;
  size_t max_buckets = 0, max_nodes = 0, resizes = 0, resizing_ops = 0;
  bool was_resizing = false;
  auto observe = [&] {
    const auto w = l.index_last_step();
    max_buckets = std::max(max_buckets, w.buckets);
    max_nodes = std::max(max_nodes, w.nodes);
    if (l.index_resizing()) {
      resizing_ops++;
      if (!was_resizing) resizes++;
    }
    was_resizing = l.index_resizing();
  };
  auto member = [](size_t i) { return "element:" + std::to_string(i); };
  for (size_t i = 0; i < n; i++) {
    ASSERT_TRUE(l.insert(ZEntry{static_cast<double>(i % 1000), member(i)}));
    observe();
  }
  const size_t grown_resizes = resizes;
  EXPECT_GE(l.index_buckets(), n / 2);
  EXPECT_GE(grown_resizes, 16u) << "the index grew from 4 buckets to 2^18 or more";
  for (size_t i = 0; i < n; i += 997) ASSERT_NE(l.find_member(member(i)), nullptr);
  for (size_t i = 0; i < n; i++) {
    ASSERT_EQ(l.erase_member(member(i)), 1u);
    observe();
  }
  EXPECT_GE(resizes - grown_resizes, 5u) << "the index shrank as it emptied (by 4x or more each time)";
  EXPECT_LE(l.index_buckets(), 64u);
  std::printf("member index: %zu resizes over %zu operations, %zu of them during a resize; per operation at most %zu "
              "old buckets visited (bound %zu), %zu members relinked (bound %zu)\n",
              resizes, 2 * n, resizing_ops, max_buckets, bucket_bound, max_nodes, node_bound);
  EXPECT_LE(max_buckets, bucket_bound);
  EXPECT_LE(max_nodes, node_bound);
  EXPECT_GT(max_nodes, 0u);
  EXPECT_TRUE(l.empty() && l.check_invariants());
}

}  // namespace
}  // namespace hmdb::kv
