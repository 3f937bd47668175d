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

TEST(RaftLogDeathTest, GapIsFatal) {
  RaftLog log;
  log.restore(0, 0, {make(1, 1)});
  EXPECT_DEATH(log.append(make(3, 1)), "contiguous");
  EXPECT_DEATH(log.append(make(2, 0)), "terms never go back");
}

}  // namespace
}  // namespace hmdb::raft
