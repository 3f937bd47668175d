// tests/raft/raft_log_test.cc — the consensus core's in-memory log: indexing, truncation,
// compaction, conflict search and batching.
#include "raft/raft_log.h"

#include <gtest/gtest.h>

namespace hmdb::raft {
namespace {

Entry make(Index i, Term t, std::string data = "x") {
  Entry e;
  e.index = i;
  e.term = t;
  e.data = std::move(data);
  return e;
}

TEST(RaftLog, EmptyLog) {
  RaftLog log;
  EXPECT_EQ(log.first_index(), 1u);
  EXPECT_EQ(log.last_index(), 0u);
  EXPECT_EQ(log.last_term(), 0u);
  EXPECT_EQ(log.term_at(0), 0u);
  EXPECT_FALSE(log.term_at(1).has_value());
}

TEST(RaftLog, AppendTruncateCompact) {
  RaftLog log;
  log.restore(0, 0, {make(1, 1), make(2, 1), make(3, 2), make(4, 2)});
  EXPECT_EQ(log.last_index(), 4u);
  EXPECT_EQ(log.last_term(), 2u);
  EXPECT_TRUE(log.matches(3, 2));
  EXPECT_FALSE(log.matches(3, 1));
  log.truncate_after(2);
  EXPECT_EQ(log.last_index(), 2u);
  log.append(make(3, 3));
  EXPECT_EQ(log.at(3).term, 3u);
  log.compact_to(2, 1);
  EXPECT_EQ(log.first_index(), 3u);
  EXPECT_EQ(log.term_at(2), 1u);
  EXPECT_FALSE(log.term_at(1).has_value());
  EXPECT_EQ(log.last_index(), 3u);
}

// bytes() is every entry's entry_bytes() (payload + kEntryOverheadBytes) in the log, through
// restore, append, truncation of appended and restored entries, compaction and reset: what
// INFO log_bytes shows and the mode-none trim is bounded by.
TEST(RaftLog, BytesFollowTheEntriesHeld) {
  constexpr uint64_t o = kEntryOverheadBytes;
  RaftLog log;
  log.restore(0, 0, {make(1, 1, std::string(10, 'a')), make(2, 1, std::string(20, 'b'))});
  EXPECT_EQ(log.bytes(), 30 + 2 * o);
  EXPECT_EQ(log.entries(), 2u);
  log.append(make(3, 1, std::string(40, 'c')));
  log.append(make(4, 2, std::string(80, 'd')));
  EXPECT_EQ(log.bytes(), 150 + 4 * o);
  log.truncate_after(3);  // an appended entry
  EXPECT_EQ(log.bytes(), 70 + 3 * o);
  log.truncate_after(1);  // an appended and a restored one
  EXPECT_EQ(log.bytes(), 10 + o);
  log.append(make(2, 3, std::string(5, 'e')));
  log.append(make(3, 3, std::string(7, 'f')));
  log.compact_to(2, 3);  // the restored entry and an appended one
  EXPECT_EQ(log.bytes(), 7 + o);
  EXPECT_EQ(log.entries(), 1u);
  log.free_dropped(SIZE_MAX);
  EXPECT_EQ(log.bytes(), 7 + o);  // freeing the dropped entries does not touch the log
  log.reset_to_snapshot(10, 4);
  EXPECT_EQ(log.bytes(), 0u);
  EXPECT_EQ(log.entries(), 0u);
}

TEST(RaftLog, RestoreAfterSnapshot) {
  RaftLog log;
  log.restore(10, 3, {make(11, 3), make(12, 4)});
  EXPECT_EQ(log.first_index(), 11u);
  EXPECT_EQ(log.term_at(10), 3u);
  EXPECT_EQ(log.term_at(12), 4u);
  log.reset_to_snapshot(20, 5);
  EXPECT_EQ(log.last_index(), 20u);
  EXPECT_EQ(log.last_term(), 5u);
}

// Compaction and reset keep the dropped entries for free_dropped(), which frees a bounded
// number per call (the server calls it once per loop turn instead of stalling one turn).
TEST(RaftLog, DroppedEntriesAreFreedABoundedNumberAtATime) {
  RaftLog log;
  log.restore(0, 0, {make(1, 1, std::string(100, 'a')), make(2, 1), make(3, 1)});
  for (Index i = 4; i <= 10; i++) log.append(make(i, 2, std::string(100, 'b')));
  log.compact_to(6, 2);  // 3 restored + 3 appended entries
  EXPECT_EQ(log.first_index(), 7u);
  EXPECT_EQ(log.dropped_count(), 6u);
  EXPECT_EQ(log.at(7).data, std::string(100, 'b'));  // the live entries kept their payloads
  EXPECT_EQ(log.free_dropped(4), 2u);
  EXPECT_EQ(log.free_dropped(4), 0u);
  EXPECT_EQ(log.free_dropped(4), 0u);
  log.reset_to_snapshot(20, 3);  // the 4 entries left move too
  EXPECT_EQ(log.dropped_count(), 4u);
  EXPECT_EQ(log.last_index(), 20u);
  EXPECT_EQ(log.free_dropped(100), 0u);
  EXPECT_EQ(log.dropped_count(), 0u);
}

// A byte bound too (payloads of 100 KiB: the server frees 32 MiB a turn), and the hook sees
// each payload, whole, just before it is freed (the server madvises its pages away there).
std::vector<size_t> hooked_sizes;
TEST(RaftLog, DroppedEntriesStopAtTheByteBoundAndPassTheHook) {
  RaftLog log;
  for (Index i = 1; i <= 5; i++) log.append(make(i, 1, std::string(100 << 10, 'x')));
  log.compact_to(5, 1);
  hooked_sizes.clear();
  auto hook = [](std::string& payload) { hooked_sizes.push_back(payload.size()); };
  EXPECT_EQ(log.free_dropped(100, 150 << 10, hook), 3u);  // the entry that crosses the bound is freed
  EXPECT_EQ(hooked_sizes, std::vector<size_t>(2, 100 << 10));
  EXPECT_EQ(log.free_dropped(100, UINT64_MAX, hook), 0u);
  EXPECT_EQ(hooked_sizes.size(), 5u);
}

TEST(RaftLog, FindConflictByTerm) {
  RaftLog log;
  // terms: 1 1 1 4 4 5 5 6 6 6 (Figure 7 style)
  Term terms[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
  std::vector<Entry> es;
  for (Index i = 1; i <= 10; i++) es.push_back(make(i, terms[i - 1]));
  log.restore(0, 0, std::move(es));
  EXPECT_EQ(log.find_conflict_by_term(10, 6), 10u);
  EXPECT_EQ(log.find_conflict_by_term(10, 5), 7u);
  EXPECT_EQ(log.find_conflict_by_term(10, 3), 3u);
  EXPECT_EQ(log.find_conflict_by_term(10, 0), 0u);
  EXPECT_EQ(log.find_conflict_by_term(50, 4), 5u);  // beyond the end: from the last entry
}

TEST(RaftLog, FindConflictByTermBelowSnapshot) {
  RaftLog log;
  log.restore(4, 2, {make(5, 3), make(6, 3)});
  EXPECT_EQ(log.find_conflict_by_term(1, 2), 1u) << "compacted: the hint stays as it is";
  EXPECT_EQ(log.find_conflict_by_term(6, 2), 4u) << "the snapshot's term is old enough";
  EXPECT_EQ(log.find_conflict_by_term(6, 1), 3u) << "the match point is below the snapshot";
}

TEST(RaftLog, CopyRangeHonoursByteBound) {
  RaftLog log;
  std::vector<Entry> es;
  for (Index i = 1; i <= 10; i++) es.push_back(make(i, 1, std::string(100, 'a')));
  log.restore(0, 0, std::move(es));
  std::vector<Entry> out;
  uint64_t per = 100 + kEntryOverheadBytes;
  log.copy_range(1, 10, per * 3, &out);
  EXPECT_EQ(out.size(), 3u);
  out.clear();
  log.copy_range(4, 10, 1, &out);  // at least one entry, even over the bound
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].index, 4u);
}

// Restored entries and appended ones live in different containers (raft_log.h): indexing,
// truncation and compaction across the boundary, and references that appends keep valid.
TEST(RaftLog, RestoredAndAppendedAcrossTheBoundary) {
  RaftLog log;
  std::vector<Entry> es;
  for (Index i = 6; i <= 10; i++) es.push_back(make(i, 2, "r" + std::to_string(i)));
  log.restore(5, 1, std::move(es));
  const Entry* eight = &log.at(8);
  for (Index i = 11; i <= 1000; i++) log.append(make(i, 3, "a" + std::to_string(i)));
  EXPECT_EQ(&log.at(8), eight) << "appending moved a restored entry";
  const Entry* five_hundred = &log.at(500);
  for (Index i = 1001; i <= 3000; i++) log.append(make(i, 3));
  EXPECT_EQ(&log.at(500), five_hundred) << "appending moved an appended entry";
  EXPECT_EQ(log.at(10).data, "r10");
  EXPECT_EQ(log.at(11).data, "a11");
  EXPECT_EQ(log.find_conflict_by_term(3000, 2), 10u);
  // Truncate into the restored part, then append again.
  log.truncate_after(8);
  EXPECT_EQ(log.last_index(), 8u);
  EXPECT_EQ(log.last_term(), 2u);
  EXPECT_EQ(&log.at(8), eight);
  log.append(make(9, 4, "n9"));
  log.append(make(10, 4, "n10"));
  EXPECT_EQ(log.at(9).data, "n9");
  EXPECT_EQ(log.term_at(10), 4u);
  // Compact part of the restored entries, then past the boundary.
  log.compact_to(7, 2);
  EXPECT_EQ(log.first_index(), 8u);
  EXPECT_EQ(log.at(8).data, "r8");
  EXPECT_EQ(log.at(9).data, "n9");
  log.compact_to(9, 4);
  EXPECT_EQ(log.first_index(), 10u);
  EXPECT_EQ(log.term_at(9), 4u);
  EXPECT_EQ(log.at(10).data, "n10");
  EXPECT_EQ(log.last_index(), 10u);
  std::vector<Entry> out;
  log.copy_range(10, 10, UINT64_MAX, &out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "n10");
  // Truncating everything after the snapshot leaves an empty log that appends again.
  log.truncate_after(9);
  EXPECT_EQ(log.last_index(), 9u);
  EXPECT_EQ(log.last_term(), 4u);
  log.append(make(10, 5));
  EXPECT_EQ(log.term_at(10), 5u);
}

TEST(RaftLog, CompactAllRestoredThenTruncateRestored) {
  RaftLog log;
  log.restore(0, 0, {make(1, 1), make(2, 1), make(3, 1)});
  log.compact_to(3, 1);
  EXPECT_EQ(log.first_index(), 4u);
  EXPECT_EQ(log.last_index(), 3u);
  EXPECT_EQ(log.last_term(), 1u);
  log.append(make(4, 2));
  EXPECT_EQ(log.at(4).term, 2u);
  // A restored log truncated to nothing, then compacted through appended entries.
  RaftLog other;
  other.restore(10, 1, {make(11, 1), make(12, 1)});
  other.truncate_after(10);
  other.append(make(11, 2));
  other.append(make(12, 2));
  other.compact_to(11, 2);
  EXPECT_EQ(other.first_index(), 12u);
  EXPECT_EQ(other.at(12).term, 2u);
}

TEST(RaftLogDeathTest, RestoreChecksTheSequence) {
  EXPECT_DEATH(RaftLog().restore(0, 0, {make(1, 1), make(3, 1)}), "contiguous");
  EXPECT_DEATH(RaftLog().restore(4, 2, {make(6, 2)}), "contiguous");
  EXPECT_DEATH(RaftLog().restore(0, 0, {make(1, 2), make(2, 1)}), "terms never go back");
  EXPECT_DEATH(RaftLog().restore(4, 3, {make(5, 2)}), "terms never go back");
}

TEST(RaftLogDeathTest, GapIsFatal) {
  RaftLog log;
  log.restore(0, 0, {make(1, 1)});
  EXPECT_DEATH(log.append(make(3, 1)), "contiguous");
  EXPECT_DEATH(log.append(make(2, 0)), "terms never go back");
}

}  // namespace
}  // namespace hmdb::raft
