// tests/sim/planted_bugs_test.cc — the simulator has teeth: with each planted bug of the
// core switched on (raft::Config::bugs), some seed within a bound fails a check. The test
// prints which check caught it and on which seed; it fails if the bug goes unnoticed.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "sim/simulator.h"

namespace hmdb::sim {
namespace {

// Seeds tried per bug and cluster size before declaring the bug unnoticed.
constexpr uint64_t kMaxSeedsPerBug = 400;

void expect_caught(const std::string& bug) {
  for (uint32_t nodes : {3u, 5u}) {
    for (uint64_t s = 1; s <= kMaxSeedsPerBug; s++) {
      Options o;
      o.seed = s;
      o.nodes = nodes;
      ASSERT_TRUE(set_bug(&o.bugs, bug));
      RunResult r = run_simulation(o);
      if (!r.ok) {
        std::printf("[planted bug %s] caught on seed %llu (%u nodes) by check [%s]: %s\n  replay: %s\n", bug.c_str(),
                    static_cast<unsigned long long>(s), nodes, r.check.c_str(), r.detail.substr(0, 300).c_str(),
                    replay_command(o).c_str());
        return;
      }
    }
  }
  ADD_FAILURE() << "planted bug " << bug << " was not caught within " << kMaxSeedsPerBug
                << " seeds on 3 and on 5 nodes: the simulator lacks teeth (or the core ignores the flag)";
}

TEST(PlantedBugs, GrantTwoVotesPerTerm) { expect_caught("grant_two_votes_per_term"); }
TEST(PlantedBugs, AnswerVoteBeforePersisting) { expect_caught("answer_vote_before_persisting"); }
TEST(PlantedBugs, CommitOldTermByCounting) { expect_caught("commit_old_term_by_counting"); }
TEST(PlantedBugs, ApplyBeforeCommit) { expect_caught("apply_before_commit"); }

}  // namespace
}  // namespace hmdb::sim
