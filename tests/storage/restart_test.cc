// tests/storage/restart_test.cc — what a restarting node keeps of its log after its newest
// snapshot (storage/restart.h): each rule alone. The simulator's data directories are read
// back by the same function (sim/sim_disk.cc), through every fault.
#include "storage/restart.h"

#include <gtest/gtest.h>

namespace hmdb::storage {
namespace {

raft::Entry entry(raft::Index index, raft::Term term) {
  raft::Entry e;
  e.index = index;
  e.term = term;
  return e;
}

raft::SnapshotMeta snap(raft::Index index, raft::Term term) {
  raft::SnapshotMeta m;
  m.index = index;
  m.term = term;
  return m;
}

TEST(Restart, EntriesAfterTheSnapshotAreKeptWhenTheyFollowIt) {
  RecoveredLog log;
  log.hard_state = raft::HardState{5, 2, 12};
  log.entries = {entry(11, 5), entry(12, 5)};
  log.term_at_after_index = 4;  // the log's own entry at the snapshot's index: the same term
  RestartLog kept = restart_log(log, snap(10, 4), raft::kNoNode, true);
  EXPECT_TRUE(kept.dropped.empty());
  ASSERT_EQ(kept.entries.size(), 2u);
  EXPECT_EQ(kept.hard_state, (raft::HardState{5, 2, 12}));
  EXPECT_FALSE(kept.write_hard_state);
}

TEST(Restart, LeftoversOfAnOlderTermAreDropped) {
  RecoveredLog log;
  log.hard_state = raft::HardState{5, 0, 10};
  log.entries = {entry(11, 3), entry(12, 3)};  // terms below the snapshot's: from a replaced log
  RestartLog kept = restart_log(log, snap(10, 4), raft::kNoNode, true);
  EXPECT_TRUE(kept.entries.empty());
  EXPECT_NE(kept.dropped.find("entries 11..12 (terms 3..3)"), std::string::npos) << kept.dropped;
  // And with the planted bug of the simulator, they stay.
  RecoveredLog again;
  again.entries = {entry(11, 3)};
  EXPECT_EQ(restart_log(again, snap(10, 4), raft::kNoNode, true, false).entries.size(), 1u);
}

TEST(Restart, LeftoversOfANewerTermAreDroppedUnlessWrittenAfterTheCommitReachedTheSnapshot) {
  // The log held another entry at the snapshot's index (term 3, the snapshot's is 4): the
  // core installed, so what follows is the replaced log's, unless written after a hard state
  // whose commit reached index 10.
  RecoveredLog log;
  log.hard_state = raft::HardState{6, 0, 10};
  log.entries = {entry(11, 6)};
  log.term_at_after_index = 3;
  log.entries_after_commit_reached = false;
  EXPECT_TRUE(restart_log(log, snap(10, 4), raft::kNoNode, true).entries.empty());
  RecoveredLog written_after;
  written_after.hard_state = raft::HardState{6, 0, 10};
  written_after.entries = {entry(11, 6)};
  written_after.term_at_after_index = 3;
  written_after.entries_after_commit_reached = true;
  EXPECT_EQ(restart_log(written_after, snap(10, 4), raft::kNoNode, true).entries.size(), 1u);
}

TEST(Restart, TheTermOnlyASnapshotKnowsAndTheHardStateThatMarksWhereNewEntriesStart) {
  RecoveredLog log;  // durability none: no log at all
  RestartLog none = restart_log(log, snap(10, 4), 1, false);
  EXPECT_EQ(none.hard_state.term, 4u);
  EXPECT_EQ(none.hard_state.vote, 1u);
  EXPECT_FALSE(none.write_hard_state) << "no log to write it to";
  RecoveredLog lost_install_copy;  // a crash lost the install's hard state
  lost_install_copy.hard_state = raft::HardState{4, 0, 7};
  RestartLog kept = restart_log(lost_install_copy, snap(10, 4), raft::kNoNode, true);
  EXPECT_TRUE(kept.write_hard_state);
  EXPECT_EQ(kept.hard_state.commit, 10u);
}

}  // namespace
}  // namespace hmdb::storage
