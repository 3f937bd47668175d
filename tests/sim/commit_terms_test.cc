// tests/sim/commit_terms_test.cc — the commit-term bookkeeping behind the simulator's
// leader-completeness check: an entry committed in term T must be in every leader of a
// term > T, and only there (Raft §5.4.3).
#include "sim/commit_terms.h"

#include <gtest/gtest.h>

namespace hmdb::sim {
namespace {

// Seed 73739 (3 nodes) as the simulator first ran it: n2 granted n3 its vote in term 2 and
// the answer was delayed; meanwhile n1 won term 3 and committed 2/3; then the late vote made
// n3 leader of term 2 with a log up to 2/2. Legal: 2 was committed in term 3.
TEST(CommitTerms, AnOlderTermsLeaderNeedNotHoldWhatALaterTermCommitted) {
  CommitTerms ct;
  ct.observe(1, 1);  // n2 led term 1 and committed its noop
  ct.observe(1, 2);  // followers that moved on to term 2 with commit 1 change nothing
  ct.observe(2, 3);  // n1, leader of term 3, commits 2
  EXPECT_EQ(ct.term_of(1), 1u);
  EXPECT_EQ(ct.term_of(2), 3u);
  EXPECT_EQ(ct.required_of_leader(2), 1u) << "a term-2 leader must hold 1 only";
  EXPECT_EQ(ct.required_of_leader(3), 1u) << "the term-3 leader itself need not have held 2 when elected";
  EXPECT_EQ(ct.required_of_leader(4), 2u) << "every leader after term 3 holds 2";
  EXPECT_EQ(ct.required_of_leader(1), 0u);
}

TEST(CommitTerms, TheLowestTermThatShowedTheCommitWins) {
  CommitTerms ct;
  ct.observe(5, 7);  // first seen by a follower of term 7 (an upper bound)
  EXPECT_EQ(ct.term_of(5), 7u);
  ct.observe(3, 4);  // then the leader of term 4 is seen with commit 3: 1..3 were committed in 4
  EXPECT_EQ(ct.term_of(3), 4u);
  EXPECT_EQ(ct.term_of(4), 7u);
  ct.observe(5, 9);  // a later term never raises what is known
  EXPECT_EQ(ct.term_of(5), 7u);
  EXPECT_EQ(ct.required_of_leader(5), 3u);
  EXPECT_EQ(ct.required_of_leader(8), 5u);
  EXPECT_EQ(ct.term_of(6), CommitTerms::kUnknown);
  EXPECT_EQ(ct.required_of_leader(100), 5u) << "nothing beyond what is known committed";
}

TEST(CommitTerms, EmptyRequiresNothing) {
  CommitTerms ct;
  ct.observe(0, 3);
  EXPECT_EQ(ct.required_of_leader(10), 0u);
}

}  // namespace
}  // namespace hmdb::sim
