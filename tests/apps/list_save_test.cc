// tests/apps/list_save_test.cc — kv::ListSave (apps/kv/list_save.h), a snapshot's inner
// cursor over one big list: what its slices write, put together, is the list's elements as
// save() writes them (bytes each, head first) at the moment it began, whatever pushes and
// pops at both ends (with counts), LTRIMs, LSETs, LINSERTs (at the ends and inside the
// unwritten runs, splitting them) and LREMs (counts positive, negative and zero; matches at
// the ends and in the middle) run between slices (each calling its hook first, as kv.cc
// does) and however the budgets cut it. Some rounds bound the segments low: an LINSERT or
// LREM past the bound ends the following (the hook says so, nothing changed): the round then
// writes the rest at once, as the producer does, and goes on changing the list.
//
// Elements come from a small pool (an LSET of an element already LSET, a pop of one LSET,
// pops taking the runs from both ends until they are gone, LREM matching several), so
// changes land ahead of, at and behind the position. HMDB_TEST_SEED=<n> replays a seed
// (printed on failure). The test checks it can fail: with a hook skipped (the pops', the
// push at the head's, LSET's, LINSERT's, LREM's), rounds must differ from save() at the
// start. Planted bugs seen failing it (built with -D...):
// HMDB_PLANTED_BUG_SAVE_LIST_INSERT_NOT_SPLIT (the second half of a run split by an insert
// does not move past the new element) and HMDB_PLANTED_BUG_SAVE_LIST_REMOVE_NOT_SHIFTED
// (runs after an LREM's removals do not move back).
#include "kv/list_save.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace hmdb::kv {
namespace {

// Rounds per test run, each up to a few hundred changes.
constexpr int kRounds = 1000;

uint64_t seed_from_env() {
  if (const char* env = std::getenv("HMDB_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

// save()'s element bytes for the whole list.
std::string encode_all(const List& l) {
  std::string out;
  Encoder e(&out);
  l.for_each([&](std::string_view x) { e.bytes(x); });
  return out;
}

// Which hook a planted bug skips (the test's own sensitivity check).
enum class Skip { kNone, kPops, kPushFront, kSet, kInsert, kRemove };

struct Round {
  std::mt19937_64 rng;
  List l;
  Skip skip;
  size_t changes = 0, flattened = 0, inserts_inside = 0, removes = 0, split_max = 0;
  size_t segments_max = kListSaveSegmentsMax;
  // The change whose hook ended the following: made after the rest is written.
  std::function<void()> pending;

  Round(uint64_t seed, Skip s) : rng(seed), skip(s) {}
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
  std::string element() {
    // Mostly short; sometimes over 127 bytes (two-byte lengths in the chunks).
    if (pick(0, 30) == 0) return std::string(static_cast<size_t>(pick(128, 300)), static_cast<char>('A' + pick(0, 5)));
    return "e" + std::to_string(pick(0, 40));
  }

  void pop(ListSave& st, bool front, size_t n) {
    n = std::min(n, l.size());
    if (skip != Skip::kPops) {
      if (front) st.before_erase_front(l, n); else st.before_erase_back(l, n);
    }
    if (front) l.erase_front(n); else l.erase_back(n);
  }

  // One change of the kinds kv's commands make, its hook first. False if the hook ended the
  // following (an LINSERT inside the run): the change is not made, the caller writes the
  // rest at once first, then makes it (insert_at).
  bool change(ListSave& st) {
    changes++;
    switch (pick(0, 14)) {
      case 9:
      case 10:
      case 11:  // LPOP / RPOP of 1
        pop(st, pick(0, 1), 1);
        return true;
      case 0:
      case 1: {  // LPUSH of 1-4, sometimes many
        const int n = pick(0, 9) == 0 ? pick(20, 200) : pick(1, 4);
        if (skip != Skip::kPushFront) st.before_push_front(static_cast<size_t>(n));
        for (int i = 0; i < n; i++) l.push_front(element());
        return true;
      }
      case 2:  // RPUSH: no hook
        for (int n = pick(1, 4); n > 0; n--) l.push_back(element());
        return true;
      case 3:
      case 4:  // LPOP / RPOP, LMOVE's pop (count 1-3)
        pop(st, pick(0, 1), static_cast<size_t>(pick(1, 3)));
        return true;
      case 5:  // LPOP / RPOP / LMPOP with a big count
        pop(st, pick(0, 1), static_cast<size_t>(pick(5, 60)));
        return true;
      case 6: {  // LTRIM start -k: the back first, then the front, as kv.cc
        if (l.empty()) return true;
        const size_t back = std::min<size_t>(l.size(), static_cast<size_t>(pick(0, 8)));
        pop(st, false, back);
        pop(st, true, std::min<size_t>(l.size(), static_cast<size_t>(pick(0, 8))));
        return true;
      }
      case 7:
      case 8: {  // LSET anywhere
        if (l.empty()) return true;
        const size_t j = static_cast<size_t>(pick(0, static_cast<int>(l.size()) - 1));
        if (skip != Skip::kSet) st.before_set(l, j);
        l.set(j, element());
        return true;
      }
      case 12: {  // LREM count element: the positions as kv.cc finds them
        if (l.empty()) return true;
        const int64_t count = pick(0, 2) == 0 ? 0 : pick(0, 1) ? pick(1, 4) : -pick(1, 4);
        // An element of the list (from a random place, so the middle too) or, at times, one
        // at an end, or none.
        const int w = pick(0, 9);
        const std::string e(w == 0 ? l.front() : w == 1 ? l.back() : w == 2 ? std::string("none")
                                                                         : l[static_cast<size_t>(pick(0, static_cast<int>(l.size()) - 1))]);
        std::vector<size_t> at;
        uint64_t limit = count == 0 ? UINT64_MAX : static_cast<uint64_t>(count > 0 ? count : -count);
        const size_t n = l.size();
        for (size_t k = 0; k < n && limit > 0; k++) {
          const size_t i = count >= 0 ? k : n - 1 - k;
          if (l[i] == e) { at.push_back(i); limit--; }
        }
        std::sort(at.begin(), at.end());
        auto remove = [this, at] {
          size_t next = 0;
          l.remove_where([&](size_t i, std::string_view) {
            if (next == at.size() || at[next] != i) return false;
            next++;
            return true;
          });
        };
        removes++;
        if (skip != Skip::kRemove && !st.before_remove(l, at)) {
          pending = remove;
          return false;
        }
        remove();
        return true;
      }
      default: {  // LINSERT: at the ends mostly, anywhere 1 in 4
        const int where = pick(0, 15);
        const size_t p = where < 6 ? 0 : where < 12 ? l.size() : static_cast<size_t>(pick(0, static_cast<int>(l.size())));
        const std::string e = element();
        if (p > 0 && p < l.size()) inserts_inside++;
        if (skip != Skip::kInsert && !st.before_insert(p)) {
          pending = [this, p, e] { l.insert(p, e); };
          return false;
        }
        l.insert(p, e);
        return true;
      }
    }
  }

  // A list of random size, a ListSave begun on it, changes between slices of random
  // budgets; the slices put together, against save()'s bytes at the start.
  void run(std::string* got, std::string* want) {
    for (int i = pick(0, 400); i > 0; i--) l.push_back(element());
    *want = encode_all(l);
    // One round in three bounds the segments low (the fallback: the rest encoded at once).
    segments_max = pick(0, 2) == 0 ? static_cast<size_t>(pick(2, 8)) : kListSaveSegmentsMax;
    ListSave st(l.size(), segments_max);
    Encoder e(got);
    bool done = false;
    for (int slice = 0; !done; slice++) {
      if (slice > 0) {
        for (int n = pick(0, 12); n > 0; n--) {
          if (!change(st)) {
            // As the producer: the rest written now (before the insert), the list followed
            // no more.
            flattened++;
            ASSERT_TRUE(st.write(l, e, [] { return false; }));
            pending();
            done = true;
            break;
          }
          ASSERT_TRUE(l.check());
          split_max = std::max(split_max, st.segments());
          if (segments_max < kListSaveSegmentsMax) {
            EXPECT_LE(st.segments(), segments_max + 2) << "pops add the end queues at most";
          }
        }
        if (done) break;
      }
      size_t steps = 0;
      const size_t elements = pick(0, 7) == 0 ? SIZE_MAX : static_cast<size_t>(pick(1, 20));
      done = st.write(l, e, [&] { return ++steps >= elements; });
      if (!done) EXPECT_EQ(steps, elements) << "a slice stops at its budget";
    }
    if (skip != Skip::kNone) return;  // a planted bug: the caller counts what differs
    EXPECT_EQ(st.written(), st.count_at_i());
    EXPECT_EQ(st.side_entries(), 0u) << "every kept element written is released";
    EXPECT_EQ(st.side_bytes(), 0u);
  }
};

TEST(ListSave, SlicesAreTheListAtBeginWhateverChangesBetween) {
  const uint64_t seed = seed_from_env();
  size_t changes = 0, flattened = 0, flattened_at_bound = 0, inserts_inside = 0, removes = 0, split = 0;
  for (int r = 0; r < kRounds && !HasFailure(); r++) {
    SCOPED_TRACE("HMDB_TEST_SEED=" + std::to_string(seed) + " round " + std::to_string(r));
    Round round(seed + static_cast<uint64_t>(r), Skip::kNone);
    std::string got, want;
    round.run(&got, &want);
    EXPECT_TRUE(got == want) << "round " << r << ": " << got.size() << " bytes written, save() " << want.size();
    changes += round.changes;
    inserts_inside += round.inserts_inside;
    removes += round.removes;
    if (round.split_max > 3) split++;
    if (round.segments_max == kListSaveSegmentsMax) flattened += round.flattened;
    else flattened_at_bound += round.flattened;
  }
  if (HasFailure()) std::fprintf(stderr, "list_save_test: replay with HMDB_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::printf("rounds %d, changes %zu (LINSERTs not at an end %zu, LREMs %zu), rounds with more than 3 segments %zu, "
              "ended past a low bound %zu, past kListSaveSegmentsMax %zu\n",
              kRounds, changes, inserts_inside, removes, split, flattened_at_bound, flattened);
  EXPECT_GT(changes, static_cast<size_t>(kRounds) * 20) << "changes ran between slices";
  EXPECT_GT(split, static_cast<size_t>(kRounds) / 4) << "LINSERT and LREM split the runs";
  EXPECT_GT(flattened_at_bound, static_cast<size_t>(kRounds) / 20) << "the fallback past the bound ran";
  EXPECT_EQ(flattened, 0u) << "under kListSaveSegmentsMax, every list was followed to the end";
}

// The test sees each hook: with one skipped, rounds differ from save() at the start.
TEST(ListSave, ASkippedHookIsSeen) {
  const uint64_t seed = seed_from_env() ^ 0x5c1;
  for (Skip skip : {Skip::kPops, Skip::kPushFront, Skip::kSet, Skip::kInsert, Skip::kRemove}) {
    int differ = 0;
    for (int r = 0; r < 200; r++) {
      Round round(seed + static_cast<uint64_t>(r), skip);
      std::string got, want;
      round.run(&got, &want);
      if (got != want) differ++;
    }
    EXPECT_GE(differ, 20) << "skip " << static_cast<int>(skip) << ": the slices still matched save()";
  }
}

// Pops that take the whole run from both ends, an LSET element popped later, and a list
// emptied and pushed again: by hand, with the expected bytes.
TEST(ListSave, ThePopsTakeTheRunFromBothEnds) {
  List l;
  for (const char* x : {"a", "b", "c", "d", "e", "f"}) l.push_back(x);
  const std::string want = encode_all(l);
  ListSave st(l.size());
  std::string got;
  Encoder e(&got);
  size_t steps = 0;
  EXPECT_FALSE(st.write(l, e, [&] { return ++steps >= 1; }));  // "a" written
  st.before_set(l, 3);  // "d" -> "D"
  l.set(3, "D");
  st.before_push_front(2);
  l.push_front("y");
  l.push_front("x");  // x y a b c D e f
  st.before_erase_front(l, 4);  // x y a b: "b" kept (a is written)
  l.erase_front(4);
  st.before_erase_back(l, 3);  // D e f: "d" (its bytes at I), "e", "f" kept
  l.erase_back(3);             // c
  EXPECT_EQ(st.side_entries(), 4u);
  EXPECT_FALSE(st.following() && st.written() > 1);
  l.push_back("z");
  st.before_erase_front(l, 2);  // c z: "c" kept
  l.erase_front(2);
  EXPECT_FALSE(st.following()) << "the run is gone";
  EXPECT_TRUE(st.before_insert(0)) << "nothing followed: an insert anywhere changes nothing";
  steps = 0;
  EXPECT_TRUE(st.write(l, e, [&] { return false; }));
  EXPECT_EQ(got, want);
  EXPECT_EQ(st.side_entries(), 0u);
  EXPECT_EQ(st.side_bytes(), 0u);
}

}  // namespace
}  // namespace hmdb::kv
