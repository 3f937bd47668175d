// tests/raft/raft_test.cc — unit tests of the consensus core through its public API:
// the single-node write path, restart, the Ready contract, durability gating, conf change
// encoding and the diagnoses for impossible states. Multi-node protocol behaviour is in
// the scenario scripts (scenario_test.cc, testdata/*.txt).
#include "raft/raft.h"

#include <gtest/gtest.h>

#include "cluster.h"
#include "raft/raft_log.h"

namespace hmdb::raft {
namespace {

Config one_node_config() {
  Config c;
  c.id = 1;
  return c;
}

RestoreState fresh(std::vector<NodeId> voters) {
  RestoreState r;
  r.initial_conf.voters = std::move(voters);
  return r;
}

PersistAck ack_for(const Ready& rd, const HardState& hs) {
  PersistAck a;
  a.hard_state = rd.hard_state ? *rd.hard_state : hs;
  if (!rd.entries.empty()) {
    a.last_index = rd.entries.back().index;
    a.last_term = rd.entries.back().term;
  }
  return a;
}

// Campaigns (term 1, self-vote) on the first tick and becomes leader once persisted() covers
// that hard state: the Ready it takes to persist it. Returns with the noop not yet handed out.
void elect_single(Raft& r) {
  r.tick();
  ASSERT_EQ(r.role(), Role::kCandidate);
  Ready rd = r.take_ready();
  ASSERT_TRUE(rd.hard_state.has_value());
  ASSERT_TRUE(rd.entries.empty());
  r.persisted(ack_for(rd, {}));
  ASSERT_EQ(r.role(), Role::kLeader);
}

TEST(RaftSingleNode, CampaignsOnFirstTickLeadsOnceVoteDurableAndCommitsNoop) {
  Raft r(one_node_config(), fresh({1}));
  EXPECT_EQ(r.role(), Role::kFollower);
  r.tick();
  // Its own vote counts only once durable: else a crash could lose the vote and the node
  // could lead term 1 a second time with different entries (simulator seed 107).
  EXPECT_EQ(r.role(), Role::kCandidate);
  EXPECT_EQ(r.term(), 1u);
  EXPECT_EQ(r.leader(), kNoNode);
  EXPECT_FALSE(r.read_index(1)) << "no leader yet";
  ASSERT_TRUE(r.has_ready());
  Ready rd = r.take_ready();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->term, 1u);
  EXPECT_EQ(rd.hard_state->vote, 1u);
  EXPECT_TRUE(rd.entries.empty()) << "no entry of term 1 before term 1's hard state";
  EXPECT_TRUE(rd.messages.empty());
  // Waiting for the disk does not start another election.
  r.tick();
  r.tick();
  EXPECT_EQ(r.role(), Role::kCandidate);
  EXPECT_EQ(r.term(), 1u);
  EXPECT_FALSE(r.has_ready());
  r.persisted(ack_for(rd, {}));
  EXPECT_EQ(r.role(), Role::kLeader);
  EXPECT_EQ(r.term(), 1u);
  EXPECT_EQ(r.leader(), 1u);
  ASSERT_TRUE(r.has_ready());
  rd = r.take_ready();
  EXPECT_FALSE(rd.hard_state.has_value());
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].type, EntryType::kNoop);
  EXPECT_EQ(rd.entries[0].index, 1u);
  EXPECT_EQ(rd.entries[0].term, 1u);
  EXPECT_TRUE(rd.committed.empty()) << "nothing commits before it is durable";
  EXPECT_TRUE(rd.messages.empty());
  r.persisted(ack_for(rd, {}));
  ASSERT_TRUE(r.has_ready());
  Ready rd2 = r.take_ready();
  ASSERT_EQ(rd2.committed.size(), 1u);
  EXPECT_EQ(rd2.committed[0].type, EntryType::kNoop);
  ASSERT_TRUE(rd2.hard_state.has_value());
  EXPECT_EQ(rd2.hard_state->commit, 1u);
  EXPECT_FALSE(r.has_ready());
}

TEST(RaftSingleNode, CrashBeforeVoteDurableReusesNothing) {
  // The first incarnation campaigns for term 1 but crashes before its hard state is durable:
  // it never led, so no entry of term 1 exists anywhere, and the next incarnation may
  // campaign for term 1 again.
  {
    Raft r(one_node_config(), fresh({1}));
    r.tick();
    Ready rd = r.take_ready();
    EXPECT_TRUE(rd.entries.empty());
    EXPECT_NE(r.propose(EntryType::kNormal, 1, "lost").error, ProposeError::kNone);
  }  // crash: the Ready was never written
  Raft r(one_node_config(), fresh({1}));
  elect_single(r);
  EXPECT_EQ(r.term(), 1u);
  Ready rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].type, EntryType::kNoop);
  // Once the vote was durable, a restart campaigns for the next term.
  RestoreState rs = fresh({1});
  rs.hard_state = HardState{1, 1, 0};
  Raft again(one_node_config(), rs);
  again.tick();
  EXPECT_EQ(again.term(), 2u);
}

TEST(RaftSingleNode, ProposeThenPersistThenCommit) {
  Raft r(one_node_config(), fresh({1}));
  elect_single(r);
  Ready rd = r.take_ready();
  r.persisted(ack_for(rd, {}));
  r.take_ready();
  ProposeResult p = r.propose(EntryType::kNormal, 1, "set a 1");
  EXPECT_EQ(p.error, ProposeError::kNone);
  EXPECT_EQ(p.index, 2u);
  EXPECT_EQ(p.term, 1u);
  ProposeResult q = r.propose(EntryType::kNormal, 1, "set b 2");
  EXPECT_EQ(q.index, 3u);
  rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 2u);
  EXPECT_TRUE(rd.committed.empty());
  // Group commit: one ack covering only the first entry, then the rest.
  PersistAck a;
  a.hard_state = HardState{1, 1, 1};
  a.last_index = 2;
  a.last_term = 1;
  r.persisted(a);
  rd = r.take_ready();
  ASSERT_EQ(rd.committed.size(), 1u);
  EXPECT_EQ(rd.committed[0].data, "set a 1");
  a.last_index = 3;
  r.persisted(a);
  rd = r.take_ready();
  ASSERT_EQ(rd.committed.size(), 1u);
  EXPECT_EQ(rd.committed[0].data, "set b 2");
  r.applied_to(3);
  EXPECT_EQ(r.status().applied, 3u);
  EXPECT_EQ(r.status().commit, 3u);
}

TEST(RaftSingleNode, RestartFromDurableState) {
  RestoreState rs = fresh({1});
  rs.hard_state = HardState{3, 1, 2};
  for (Index i = 1; i <= 4; i++) {
    Entry e;
    e.index = i;
    e.term = i <= 2 ? 2 : 3;
    e.data = "e" + std::to_string(i);
    rs.entries.push_back(e);
  }
  Raft r(one_node_config(), rs);
  EXPECT_EQ(r.term(), 3u);
  EXPECT_EQ(r.status().commit, 2u);
  // The hinted commit is re-applied (the state machine starts from its snapshot, here none).
  Ready rd = r.take_ready();
  ASSERT_EQ(rd.committed.size(), 2u);
  EXPECT_EQ(rd.committed[1].data, "e2");
  // Until its term-4 noop commits, the read could miss the acknowledged entries 3..4.
  elect_single(r);
  EXPECT_EQ(r.term(), 4u);
  ASSERT_TRUE(r.read_index(9));
  rd = r.take_ready();
  EXPECT_TRUE(rd.read_states.empty());
  ASSERT_EQ(rd.entries.size(), 1u);
  EXPECT_EQ(rd.entries[0].index, 5u);
  r.persisted(ack_for(rd, {}));
  rd = r.take_ready();
  // Entries 3..4 of term 3 commit through the noop of term 4.
  ASSERT_EQ(rd.committed.size(), 3u);
  EXPECT_EQ(rd.committed[0].data, "e3");
  EXPECT_EQ(rd.committed[2].type, EntryType::kNoop);
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0].context, 9u);
  EXPECT_EQ(rd.read_states[0].index, 5u);
}

// The replay path of the server: a restored log is handed out for apply by reference (no
// payload copies), the same entries in the same order as the copying path, and the
// pointers survive proposals made while applying.
TEST(RaftSingleNode, CommittedByReferenceMatchesCopies) {
  auto restore = [] {
    RestoreState rs = fresh({1});
    rs.hard_state = HardState{2, 1, 0};
    for (Index i = 1; i <= 1000; i++) {
      Entry e;
      e.index = i;
      e.term = i <= 500 ? 1 : 2;
      e.data = std::string(i % 40, 'x') + std::to_string(i);
      rs.entries.push_back(e);
    }
    return rs;
  };
  Raft by_copy(one_node_config(), restore());
  Raft by_ref(one_node_config(), restore());
  elect_single(by_copy);
  elect_single(by_ref);
  Ready rc = by_copy.take_ready();
  Ready rr = by_ref.take_ready(ReadyOptions{.committed_by_reference = true});
  EXPECT_TRUE(rc.committed_refs.empty());
  EXPECT_TRUE(rr.committed.empty());
  ASSERT_EQ(rr.entries, rc.entries);  // the noop at 1001, to persist
  by_copy.persisted(ack_for(rc, {}));
  by_ref.persisted(ack_for(rr, {}));
  rc = by_copy.take_ready();
  rr = by_ref.take_ready(ReadyOptions{.committed_by_reference = true});
  ASSERT_EQ(rc.committed.size(), 1001u);
  ASSERT_EQ(rr.committed_refs.size(), rc.committed.size());
  // Proposals while applying append to the core's log; the handed-out pointers stay valid.
  for (int i = 0; i < 2000; i++) {
    ASSERT_EQ(by_ref.propose(EntryType::kNormal, 1, "p" + std::to_string(i)).error, ProposeError::kNone);
  }
  for (size_t i = 0; i < rc.committed.size(); i++) {
    ASSERT_EQ(*rr.committed_refs[i], rc.committed[i]) << "entry " << i;
  }
  EXPECT_EQ(rr.committed_refs.back()->type, EntryType::kNoop);
  by_ref.applied_to(1001);
  EXPECT_EQ(by_ref.status().applied, 1001u);
}

TEST(RaftSingleNode, RestartWithAppliedIndexSkipsReplay) {
  RestoreState rs = fresh({1});
  rs.hard_state = HardState{1, 1, 2};
  for (Index i = 1; i <= 2; i++) {
    Entry e;
    e.index = i;
    e.term = 1;
    rs.entries.push_back(e);
  }
  rs.applied = 2;
  Raft r(one_node_config(), rs);
  EXPECT_TRUE(r.take_ready().committed.empty());
}

TEST(RaftSingleNode, RestartFromSnapshot) {
  RestoreState rs;
  SnapshotMeta meta;
  meta.index = 10;
  meta.term = 2;
  meta.conf.voters = {1};
  rs.snapshot = meta;
  rs.hard_state = HardState{2, 1, 10};
  Entry e;
  e.index = 11;
  e.term = 2;
  e.data = "after";
  rs.entries.push_back(e);
  Raft r(one_node_config(), rs);
  EXPECT_EQ(r.status().first_index, 11u);
  EXPECT_TRUE(r.take_ready().committed.empty()) << "the snapshot is the applied state";
  elect_single(r);
  Ready rd = r.take_ready();
  r.persisted(ack_for(rd, {}));
  rd = r.take_ready();
  ASSERT_EQ(rd.committed.size(), 2u);
  EXPECT_EQ(rd.committed[0].data, "after");
}

TEST(RaftSingleNode, FollowerRefusesProposals) {
  Config c = one_node_config();
  Raft r(c, fresh({1, 2, 3}));
  EXPECT_EQ(r.propose(EntryType::kNormal, 1, "x").error, ProposeError::kNotLeader);
  EXPECT_FALSE(r.read_index(7)) << "no leader known";
}

TEST(RaftSingleNode, UncommittedBytesBound) {
  Config c = one_node_config();
  c.max_uncommitted_bytes = 1000;
  Raft r(c, fresh({1}));
  elect_single(r);
  r.take_ready();  // noop not yet persisted: it counts as uncommitted
  int accepted = 0;
  for (int i = 0; i < 100; i++) {
    if (r.propose(EntryType::kNormal, 1, std::string(100, 'x')).error == ProposeError::kNone) {
      accepted++;
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, 10);
  EXPECT_EQ(r.propose(EntryType::kNormal, 1, std::string(100, 'y')).error, ProposeError::kBusy);
}

TEST(RaftSingleNode, ReadIndexAnsweredAtOnceAfterFirstCommitOfTerm) {
  Raft r(one_node_config(), fresh({1}));
  elect_single(r);
  Ready rd = r.take_ready();
  r.persisted(ack_for(rd, {}));
  r.take_ready();
  ASSERT_TRUE(r.read_index(42));
  rd = r.take_ready();
  ASSERT_EQ(rd.read_states.size(), 1u);
  EXPECT_EQ(rd.read_states[0].context, 42u);
  EXPECT_EQ(rd.read_states[0].index, 1u);
}

TEST(RaftSingleNode, LearnerMessagesWaitForDurableTerm) {
  // A single voter with a learner: nothing goes to the learner before the leader's term and
  // vote are durable (else, after a crash, it could lead the same term twice). Since it
  // becomes leader only then, its first appends leave with the noop, in parallel with that
  // entry's own write.
  RestoreState rs = fresh({1});
  rs.initial_conf.learners = {2};
  Raft r(one_node_config(), rs);
  r.tick();
  EXPECT_EQ(r.role(), Role::kCandidate);
  Ready rd = r.take_ready();
  EXPECT_TRUE(rd.messages.empty()) << "a learner gets no vote request";
  r.persisted(ack_for(rd, {}));
  EXPECT_EQ(r.role(), Role::kLeader);
  rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  ASSERT_FALSE(rd.messages.empty());
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppend);
  EXPECT_EQ(rd.messages[0].to, 2u);
  ASSERT_EQ(rd.messages[0].entries.size(), 1u);
  EXPECT_EQ(rd.messages[0].entries[0].type, EntryType::kNoop);
}

TEST(RaftDurabilityGate, VoteAnsweredOnlyOnceDurable) {
  Config c;
  c.id = 1;
  Raft r(c, fresh({1, 2, 3}));
  Message v;
  v.type = MessageType::kVote;
  v.from = 2;
  v.to = 1;
  v.term = 1;
  r.step(v);
  Ready rd = r.take_ready();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->vote, 2u);
  EXPECT_TRUE(rd.messages.empty()) << "the vote must not be announced before it is durable";
  PersistAck a;
  a.hard_state = *rd.hard_state;
  r.persisted(a);
  rd = r.take_ready();
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kVoteResponse);
  EXPECT_FALSE(rd.messages[0].reject);
}

TEST(RaftDurabilityGate, AppendAckAndCommitWaitForEntries) {
  Config c;
  c.id = 1;
  Raft r(c, fresh({1, 2, 3}));
  Message m;
  m.type = MessageType::kAppend;
  m.from = 2;
  m.to = 1;
  m.term = 1;
  m.commit = 2;
  for (Index i = 1; i <= 3; i++) {
    Entry e;
    e.term = 1;
    e.index = i;
    e.data = "e" + std::to_string(i);
    m.entries.push_back(e);
  }
  r.step(m);
  Ready rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 3u);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, 0u) << "a persisted commit must not outrun the durable log";
  EXPECT_EQ(rd.committed.size(), 2u) << "committed entries are durable on a quorum: apply";
  EXPECT_TRUE(rd.messages.empty()) << "the ack promises durability";
  PersistAck a;
  a.hard_state = *rd.hard_state;
  a.last_index = 3;
  a.last_term = 1;
  r.persisted(a);
  rd = r.take_ready();
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppendResponse);
  EXPECT_EQ(rd.messages[0].log_index, 3u);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, 2u);
}

TEST(RaftDurabilityGate, StaleAckForOverwrittenEntriesIsIgnored) {
  Config c;
  c.id = 1;
  Raft r(c, fresh({1, 2, 3}));
  auto append = [&](Term term, Index prev, Term prev_term, std::vector<std::pair<Index, Term>> es) {
    Message m;
    m.type = MessageType::kAppend;
    m.from = 2;
    m.to = 1;
    m.term = term;
    m.log_index = prev;
    m.log_term = prev_term;
    for (auto [i, t] : es) {
      Entry e;
      e.index = i;
      e.term = t;
      m.entries.push_back(e);
    }
    r.step(m);
  };
  append(1, 0, 0, {{1, 1}, {2, 1}, {3, 1}});
  Ready rd = r.take_ready();
  append(2, 1, 1, {{2, 2}});  // overwrites 2..3 before the first write completed
  rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  PersistAck stale;
  stale.hard_state = HardState{2, 0, 0};
  stale.last_index = 3;
  stale.last_term = 1;
  r.persisted(stale);
  rd = r.take_ready();
  for (auto& m : rd.messages) {
    EXPECT_FALSE(m.type == MessageType::kAppendResponse && !m.reject && m.log_index >= 2)
        << "acked entries that are not durable";
  }
  PersistAck good = stale;
  good.last_index = 2;
  good.last_term = 2;
  r.persisted(good);
  rd = r.take_ready();
  bool acked = false;
  for (auto& m : rd.messages) acked |= m.type == MessageType::kAppendResponse && m.log_index == 2;
  EXPECT_TRUE(acked);
}

// Config::after_persist_messages: the messages the gate holds leave with the Ready whose
// writes they wait for (Ready::after_persist: the caller sends them once that is durable),
// never in `messages` ahead of it, and in order: while some are out, not known durable,
// later gated messages wait for the next Ready's after_persist. A heartbeat response,
// which promises nothing about the log, still goes at once.
TEST(RaftDurabilityGate, AfterPersistMessagesLeaveWithTheReadyTheyWaitFor) {
  Config c;
  c.id = 1;
  c.after_persist_messages = true;
  Raft r(c, fresh({1, 2, 3}));
  auto append = [&](Index prev, std::vector<Index> indexes) {
    Message m;
    m.type = MessageType::kAppend;
    m.from = 2;
    m.to = 1;
    m.term = 1;
    m.log_index = prev;
    m.log_term = prev == 0 ? 0 : 1;
    for (Index i : indexes) {
      Entry e;
      e.term = 1;
      e.index = i;
      m.entries.push_back(e);
    }
    r.step(m);
  };
  append(0, {1, 2, 3});
  ASSERT_TRUE(r.has_ready());
  Ready rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 3u);
  EXPECT_TRUE(rd.messages.empty()) << "the ack promises durability: not before the write";
  ASSERT_EQ(rd.after_persist.size(), 1u);
  EXPECT_EQ(rd.after_persist[0].type, MessageType::kAppendResponse);
  EXPECT_EQ(rd.after_persist[0].log_index, 3u);
  const PersistAck first = ack_for(rd, {});
  // A probe for what the first Ready handed out: its ack must not overtake the first one.
  append(3, {});
  rd = r.take_ready();
  EXPECT_TRUE(rd.messages.empty()) << "an ack overtook one that waits for the disk";
  ASSERT_EQ(rd.after_persist.size(), 1u);
  EXPECT_EQ(rd.after_persist[0].log_index, 3u);
  append(3, {4});
  rd = r.take_ready();
  ASSERT_EQ(rd.entries.size(), 1u);
  ASSERT_EQ(rd.after_persist.size(), 1u);
  EXPECT_EQ(rd.after_persist[0].log_index, 4u);
  // A heartbeat's answer promises nothing about the log (only the term, durable with the
  // first write): it goes now, while the ack of entry 4 still waits.
  r.persisted(first);
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.from = 2;
  hb.to = 1;
  hb.term = 1;
  r.step(hb);
  rd = r.take_ready();
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kHeartbeatResponse);
  EXPECT_TRUE(rd.after_persist.empty());
  // Once persisted() covers everything handed out, an ack needs nothing more: it goes now.
  PersistAck all = first;
  all.last_index = 4;
  all.last_term = 1;
  r.persisted(all);
  EXPECT_FALSE(r.has_ready() && !r.take_ready().after_persist.empty());
  append(4, {});
  rd = r.take_ready();
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].log_index, 4u);
  EXPECT_TRUE(rd.after_persist.empty());
  // A vote waits for its hard state's write the same way (a node that heard no leader).
  Raft voter(c, fresh({1, 2, 3}));
  Message v;
  v.type = MessageType::kVote;
  v.from = 3;
  v.to = 1;
  v.term = 1;
  voter.step(v);
  rd = voter.take_ready();
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->vote, 3u);
  EXPECT_TRUE(rd.messages.empty());
  ASSERT_EQ(rd.after_persist.size(), 1u);
  EXPECT_EQ(rd.after_persist[0].type, MessageType::kVoteResponse);
  EXPECT_FALSE(rd.after_persist[0].reject);
}

// Check-quorum's stickiness, which read leases rest on, is about time since hearing from a
// leader: a stale rejection carrying a higher term makes a follower adopt that term with no
// leader, and it must still refuse that term's vote requests until election_ticks have
// passed (the simulator's lease-outlives-stickiness, 3-node seed 8437: a pre-vote
// rejection held behind a slow disk arrived after the follower had joined the new leader).
TEST(RaftLeaderLease, AHigherTermFromARejectionDoesNotEndTheStickiness) {
  Config c;
  c.id = 2;
  Raft r(c, fresh({1, 2, 3}));
  Message hb;
  hb.type = MessageType::kHeartbeat;
  hb.from = 1;
  hb.to = 2;
  hb.term = 1;
  hb.log_index = 1;
  r.step(hb);
  ASSERT_EQ(r.leader(), 1u);
  EXPECT_TRUE(r.in_leader_lease());
  Message rejection;
  rejection.type = MessageType::kPreVoteResponse;
  rejection.from = 3;
  rejection.to = 2;
  rejection.term = 3;
  rejection.reject = true;
  r.step(rejection);
  ASSERT_EQ(r.term(), 3u);
  EXPECT_EQ(r.leader(), kNoNode);
  EXPECT_TRUE(r.in_leader_lease()) << "it heard from leader 1 less than an election timeout ago";
  Message vote;
  vote.type = MessageType::kVote;
  vote.from = 3;
  vote.to = 2;
  vote.term = 3;
  r.step(vote);
  EXPECT_EQ(r.votes_granted(), 0u) << "a vote within the stickiness breaks leader 1's read lease";
  for (uint32_t i = 0; i < c.election_ticks; i++) r.tick();
  EXPECT_FALSE(r.in_leader_lease());
  r.step(vote);
  EXPECT_EQ(r.votes_granted(), 1u) << "an election timeout later it may vote";
}

// Check-quorum's first round of a new leader (docs/raft.md, "Check-quorum"). The server's
// loop feeds the core every tick a stall missed before it reads the messages that came
// meanwhile (src/server/node.cc, loop_turn; the simulator resumes a paused node the same
// way): a leader elected just before a stall of an election timeout is ticked through its
// whole first round before it reads the answers to its first append. It keeps leading on
// the grants that elected it, as a leader that led for a while survives such a stall on
// what it heard before; a round later, having heard nobody, it steps down as before. With
// the planted bug (fresh_leader_forgets_its_voters, the behaviour before) it was deposed at
// the first check: seen on a real server under load, elected and stepped down in the same
// millisecond (2026-12-07, system.tls.intruder's node 1).
namespace fresh_leader {

using testing::Cluster;

// Node 1 of three campaigns (only it ticks, everything delivered) until it leads; then
// nothing more is delivered (a stall) and it gets `ticks` more ticks. Its role then.
Role role_after_stall(bool planted, uint32_t ticks) {
  Cluster c;
  Config cfg;
  cfg.bugs.fresh_leader_forgets_its_voters = planted;
  ConfState conf;
  conf.voters = {1, 2, 3};
  for (NodeId id : {1, 2, 3}) c.add_node(id, cfg, conf);
  Raft& r = *c.nodes.at(1).raft;
  for (int i = 0; i < 1000 && r.role() != Role::kLeader; i++) {
    c.tick(1);
    while (r.role() != Role::kLeader && c.deliver_round(false)) {
    }
  }
  EXPECT_EQ(r.role(), Role::kLeader) << c.status_line(1);
  const Term term = r.term();
  for (uint32_t t = 0; t < ticks; t++) c.tick(1);
  EXPECT_EQ(r.term(), term);
  return r.role();
}

TEST(RaftCheckQuorum, ALeaderElectedJustBeforeAStallKeepsLeadingItsFirstRound) {
  const uint32_t round = Config{}.election_ticks;
  EXPECT_EQ(role_after_stall(false, round), Role::kLeader)
      << "deposed at its first check, its voters' answers unread";
  EXPECT_EQ(role_after_stall(false, round + round / 2), Role::kLeader);
  EXPECT_EQ(role_after_stall(false, 2 * round), Role::kFollower)
      << "it heard from nobody for a whole round after its first and still leads";
}

TEST(RaftCheckQuorum, WithThePlantedBugALeaderElectedJustBeforeAStallIsDeposedAtOnce) {
  const uint32_t round = Config{}.election_ticks;
  EXPECT_EQ(role_after_stall(true, round - 1), Role::kLeader);
  EXPECT_EQ(role_after_stall(true, round), Role::kFollower);
}

}  // namespace fresh_leader

// A learner campaigns only to break a deadlock no voter can break (docs/raft.md,
// "Membership changes"; the history is testdata/learner_breaks_deadlock.txt): only with
// pre-vote and check-quorum, only by a pre-vote, and only after 10 of its randomized
// election timeouts (kLearnerCampaignElectionTimeouts), i.e. never before 10 * election_ticks
// ticks of silence and always by 20 * election_ticks. Returns the ticks until it sent a pre-vote, or 0 if it sent nothing
// within `max_ticks`.
uint32_t learner_ticks_to_campaign(const Config& c, uint32_t max_ticks) {
  RestoreState rs = fresh({1, 3});
  rs.initial_conf.learners = {c.id};
  Raft r(c, rs);
  for (uint32_t t = 1; t <= max_ticks; t++) {
    r.tick();
    Ready rd = r.take_ready();
    EXPECT_FALSE(rd.hard_state) << "nothing durable changes before a pre-vote is won";
    for (const Message& m : rd.messages) {
      EXPECT_EQ(m.type, MessageType::kPreVote) << "a learner starts with a pre-vote";
      EXPECT_NE(m.to, c.id);
    }
    if (!rd.messages.empty()) {
      EXPECT_EQ(rd.messages.size(), 2u) << "to the voters 1 and 3";
      EXPECT_EQ(r.role(), Role::kPreCandidate);
      EXPECT_EQ(r.term(), 0u) << "a pre-vote changes no term";
      return t;
    }
  }
  EXPECT_EQ(r.role(), Role::kLearner);
  return 0;
}

TEST(RaftLearner, CampaignsOnlyAfterTwiceItsElectionTimeout) {
  for (uint64_t seed = 1; seed <= 50; seed++) {
    Config c;
    c.id = 2;
    c.seed = seed;
    uint32_t t = learner_ticks_to_campaign(c, 20 * c.election_ticks);
    EXPECT_GE(t, 10 * c.election_ticks) << "seed " << seed;
    EXPECT_LT(t, 20 * c.election_ticks) << "seed " << seed;
  }
}

TEST(RaftLearner, NeverCampaignsWithoutPreVoteOrCheckQuorumOrWithThePlantedBug) {
  Config c;
  c.id = 2;
  c.pre_vote = false;
  EXPECT_EQ(learner_ticks_to_campaign(c, 30 * c.election_ticks), 0u) << "without pre-vote";
  c.pre_vote = true;
  c.check_quorum = false;
  EXPECT_EQ(learner_ticks_to_campaign(c, 30 * c.election_ticks), 0u) << "without check-quorum";
  c.check_quorum = true;
  c.bugs.learners_never_campaign = true;
  EXPECT_EQ(learner_ticks_to_campaign(c, 30 * c.election_ticks), 0u) << "learners_never_campaign";
}

TEST(RaftLearner, CampaignIgnoredAndNoRealVoteWithoutAWonPreVote) {
  Config c;
  c.id = 2;
  RestoreState rs = fresh({1, 3});
  rs.initial_conf.learners = {2};
  Raft r(c, rs);
  r.campaign();
  EXPECT_EQ(r.role(), Role::kLearner) << "campaign() is for voters";
  EXPECT_TRUE(r.take_ready().messages.empty());
  // A TimeoutNow (a transfer: real votes at once) is for voters too.
  Message tn;
  tn.type = MessageType::kTimeoutNow;
  tn.from = 1;
  tn.to = 2;
  tn.term = 1;
  r.step(tn);
  EXPECT_EQ(r.role(), Role::kLearner);
  EXPECT_EQ(r.term(), 1u);
  for (const Message& m : r.take_ready().messages) EXPECT_NE(m.type, MessageType::kVote);
}

// set_may_lead(false): the node a server sets it on stopped applying at a schema version
// it does not read (docs/cluster.md, "Schema versions"). It must never lead, and must go on
// counting for commits and elections.
namespace may_lead {

using testing::Cluster;

bool sent_vote_request(const std::deque<Message>& network, NodeId from) {
  for (const Message& m : network)
    if (m.from == from && (m.type == MessageType::kPreVote || m.type == MessageType::kVote)) return true;
  return false;
}

// Ticks `id` until it leads (each tick followed by delivering everything).
void elect(Cluster& c, NodeId id) {
  for (int i = 0; i < 1000 && c.nodes.at(id).raft->role() != Role::kLeader; i++) {
    c.tick(id);
    c.stabilize(false);
  }
  ASSERT_EQ(c.nodes.at(id).raft->role(), Role::kLeader) << c.status_line(id);
}

TEST(RaftMayNotLead, NeverCampaignsButVotesAndCountsForCommit) {
  Cluster c;
  Config cfg;
  ConfState conf;
  conf.voters = {1, 2, 3};
  for (NodeId id : {1, 2, 3}) c.add_node(id, cfg, conf);
  c.nodes.at(3).raft->set_may_lead(false);
  EXPECT_FALSE(c.nodes.at(3).raft->may_lead());
  elect(c, 1);

  // Node 2 down: a commit needs node 3's acknowledgement, which it still gives.
  c.nodes.at(2).down = true;
  const Index before = c.nodes.at(1).raft->status().commit;
  ASSERT_EQ(c.nodes.at(1).raft->propose(EntryType::kNormal, 1, "x").error, ProposeError::kNone);
  c.stabilize(false);
  EXPECT_EQ(c.nodes.at(1).raft->status().commit, before + 1);
  // Node 2 back and caught up: every voter's log is complete.
  c.nodes.at(2).down = false;
  c.tick(1);
  c.stabilize(false);
  ASSERT_EQ(c.nodes.at(2).raft->status().last_index, c.nodes.at(1).raft->status().last_index);

  // The leader is gone: node 3's election timeouts pass by (fewer than the learner's
  // kLearnerCampaignElectionTimeouts = 10: its last resort, tested below).
  c.nodes.at(1).down = true;
  for (uint32_t t = 0; t < 9 * cfg.election_ticks; t++) {
    c.tick(3);
    EXPECT_FALSE(sent_vote_request(c.network, 3)) << "tick " << t;
    EXPECT_EQ(c.nodes.at(3).raft->role(), Role::kFollower) << "tick " << t;
    c.stabilize(false);
  }
  // Node 2 campaigns and wins with node 3's vote (node 1 is down: 2 of 3).
  elect(c, 2);
  EXPECT_EQ(c.nodes.at(3).raft->leader(), 2u);

  // campaign() and a leadership transfer to it (TimeoutNow) are refused.
  c.nodes.at(3).raft->campaign();
  EXPECT_FALSE(sent_vote_request(c.network, 3));
  const Term term = c.nodes.at(2).raft->term();
  c.nodes.at(2).raft->transfer_leadership(3);
  c.stabilize(false);
  EXPECT_EQ(c.nodes.at(3).raft->role(), Role::kFollower);
  EXPECT_EQ(c.nodes.at(2).raft->role(), Role::kLeader) << "a refused transfer times out; 2 leads on";
  EXPECT_EQ(c.nodes.at(3).raft->term(), term) << "node 3 started no term";

  // Allowed again (a newer binary): a transfer to it works (once the refused one timed out).
  for (uint32_t t = 0; t < cfg.election_ticks; t++) c.tick(2);
  c.stabilize(false);
  c.nodes.at(3).raft->set_may_lead(true);
  c.nodes.at(2).raft->transfer_leadership(3);
  c.stabilize(false);
  EXPECT_EQ(c.nodes.at(3).raft->role(), Role::kLeader);
}

// The leader's status shows a snapshot being streamed to a follower, so that an operator can
// watch a catch-up (INFO's snapshot_sent/snapshot_bytes, hmdb cluster replace): the bytes
// the follower acknowledged and the snapshot's size, and nothing once it is installed.
TEST(RaftSnapshotProgress, StatusShowsTheBytesAcknowledgedAndTheSize) {
  Cluster c;
  Config cfg;
  cfg.snapshot_chunk_bytes = 4;
  ConfState conf;
  conf.voters = {1, 2, 3};
  for (NodeId id : {1, 2, 3}) c.add_node(id, cfg, conf);
  elect(c, 1);
  c.nodes.at(3).down = true;
  for (int i = 0; i < 5; i++)
    ASSERT_EQ(c.nodes.at(1).raft->propose(EntryType::kNormal, 1, "value" + std::to_string(i)).error,
              ProposeError::kNone);
  c.stabilize(false);
  ASSERT_TRUE(c.compact(1));
  const uint64_t size = c.nodes.at(1).snap_data.size();
  ASSERT_GT(size, 8u) << "the snapshot must take more than two chunks";
  auto progress_of_3 = [&] {
    for (const Status::Progress& p : c.nodes.at(1).raft->status().progress)
      if (p.id == 3) return p;
    ADD_FAILURE() << "no progress for node 3";
    return Status::Progress{};
  };
  EXPECT_FALSE(progress_of_3().sending_snapshot);
  // Node 3 back; its answers past the second chunk are lost: the stream stalls there.
  c.nodes.at(3).down = false;
  c.lossy = [](const Message& m) { return m.type == MessageType::kSnapshotResponse && m.snapshot_offset > 8; };
  c.tick(1);
  c.stabilize(false);
  Status::Progress p = progress_of_3();
  EXPECT_TRUE(p.sending_snapshot);
  EXPECT_EQ(p.snapshot_acked, 8u);
  EXPECT_EQ(p.snapshot_total, size);
  // Answers flow again: the leader resends after a stall, the follower installs it.
  c.lossy = nullptr;
  for (uint32_t t = 0; t < 4 * cfg.election_ticks && progress_of_3().sending_snapshot; t++) {
    c.tick(1);
    c.stabilize(false);
  }
  p = progress_of_3();
  EXPECT_FALSE(p.sending_snapshot);
  EXPECT_EQ(p.snapshot_acked, 0u);
  EXPECT_EQ(p.snapshot_total, 0u);
  EXPECT_EQ(p.match, c.nodes.at(1).raft->status().last_index);
}

// A follower fed by hand (node 3 of {1, 2, 3}; node 1 leads term 1): appends and snapshot
// chunks in an order a network that delays and reorders can produce.
struct HandFedFollower {
  Raft r;
  explicit HandFedFollower(Config::PlantedBugs bugs = {}) : r(config(bugs), fresh({1, 2, 3})) {}
  static Config config(Config::PlantedBugs bugs) {
    Config c;
    c.id = 3;
    c.bugs = bugs;
    return c;
  }
  static SnapshotMeta meta(Index index) {
    SnapshotMeta m;
    m.index = index;
    m.term = 1;
    m.conf.voters = {1, 2, 3};
    return m;
  }
  void append(Index prev, Index last, Index commit) {
    Message m;
    m.type = MessageType::kAppend;
    m.from = 1;
    m.to = 3;
    m.term = 1;
    m.log_index = prev;
    m.log_term = prev == 0 ? 0 : 1;
    m.commit = commit;
    for (Index i = prev + 1; i <= last; i++) {
      Entry e;
      e.index = i;
      e.term = 1;
      e.data = "e" + std::to_string(i);
      m.entries.push_back(e);
    }
    r.step(m);
  }
  void chunk(Index index, uint64_t offset, uint64_t total, bool last) {
    Message m;
    m.type = MessageType::kSnapshot;
    m.from = 1;
    m.to = 3;
    m.term = 1;
    m.snapshot_meta = meta(index);
    m.snapshot_offset = offset;
    m.snapshot_total = total;
    m.snapshot_last = last;
    m.snapshot_chunk = std::string(total / 2, 'x');
    m.commit = index;
    r.step(m);
  }
  // A log up to 2, the snapshot at 4 staged in two chunks: its last chunk makes the install
  // pending in the Ready, which is not taken.
  void install_pending() {
    append(0, 2, 0);
    settle();
    chunk(4, 0, 8, false);
    settle();
    chunk(4, 4, 8, true);
  }
  // Takes the Ready and makes everything in it durable (its messages are returned).
  Ready settle() {
    Ready rd = r.take_ready();
    PersistAck a;
    a.hard_state = rd.hard_state ? *rd.hard_state : HardState{1, 0, 0};
    if (rd.snapshot) {
      a.last_index = rd.snapshot->meta.index;
      a.last_term = rd.snapshot->meta.term;
    }
    if (!rd.entries.empty()) {
      a.last_index = rd.entries.back().index;
      a.last_term = rd.entries.back().term;
    }
    r.persisted(a);
    return rd;
  }
};

// The simulator's seed 388 (issue 16, with writes applied in slices): a follower at 2 is
// sent the snapshot at 4 (its first chunk staged), then appends sent before the leader
// switched to the snapshot arrive late and bring its log to 6, which it acknowledges (the
// leader then counts 6 as held there and replicates from 7); then the snapshot's last
// chunk. Installing it would cut 5 and 6 from the log, which the leader never sends again.
// The follower's log holds the snapshot's last entry: it keeps its log and commits.
TEST(RaftSnapshotInstall, ALogThatReachedTheSnapshotWhileItWasStagedIsKept) {
  for (bool bug : {false, true}) {
    SCOPED_TRACE(bug ? "planted bug install_over_matching_log" : "fixed");
    Config::PlantedBugs bugs;
    bugs.install_over_matching_log = bug;
    HandFedFollower f(bugs);
    f.append(0, 2, 0);
    f.settle();
    f.chunk(4, 0, 8, false);
    Ready rd = f.settle();
    ASSERT_EQ(rd.snapshot_chunks.size(), 1u) << "staged: the log does not hold entry 4 yet";
    f.append(2, 6, 2);
    f.settle();
    rd = f.settle();
    ASSERT_EQ(f.r.status().last_index, 6u);
    f.chunk(4, 4, 8, true);
    rd = f.settle();
    if (bug) {
      EXPECT_TRUE(rd.snapshot.has_value());
      EXPECT_EQ(f.r.status().last_index, 4u) << "the bug installs and cuts 5 and 6";
      continue;
    }
    EXPECT_FALSE(rd.snapshot.has_value()) << "installed over a log that holds the snapshot's last entry";
    EXPECT_TRUE(rd.snapshot_chunks.empty());
    EXPECT_EQ(f.r.status().last_index, 6u) << "entries the leader counts as held here were cut";
    EXPECT_EQ(f.r.status().commit, 4u);
    bool acked = false;
    for (const Message& m : rd.messages)
      acked |= m.type == MessageType::kAppendResponse && !m.reject && m.log_index == 4;
    EXPECT_TRUE(acked) << "the leader learns that the snapshot's point is held";
  }
}

// The simulator's seed 349: one Ready's worth of input holds the last chunk of the snapshot
// at 4 (the install) and the first chunk of a newer one at 8. The caller stages every chunk
// of a Ready before it installs (raft.h, step 0 then step 1), so staging the newer one would
// replace the data of the install. It is refused (the leader starts it again), and the
// Ready holds the install with its own chunks only.
TEST(RaftSnapshotInstall, AnotherSnapshotsChunksWaitForAPendingInstall) {
  for (bool bug : {false, true}) {
    SCOPED_TRACE(bug ? "planted bug stage_over_pending_install" : "fixed");
    Config::PlantedBugs bugs;
    bugs.stage_over_pending_install = bug;
    HandFedFollower f(bugs);
    f.install_pending();  // the snapshot at 4's last chunk, its Ready not taken...
    f.chunk(8, 0, 8, false);  // ... and a newer snapshot's first chunk, before take_ready()
    Ready rd = f.r.take_ready();
    ASSERT_TRUE(rd.snapshot.has_value());
    EXPECT_EQ(rd.snapshot->meta.index, 4u);
    size_t others = 0;
    for (const SnapshotChunk& c : rd.snapshot_chunks) others += c.meta.index != 4;
    if (bug) {
      EXPECT_EQ(others, 1u) << "the bug stages the newer snapshot's chunk over the install's";
      continue;
    }
    EXPECT_EQ(others, 0u) << "another snapshot's chunk staged in the Ready of an install";
    // (Its answer leaves behind the install's acknowledgement, once that is durable.)
    PersistAck a;
    a.hard_state = rd.hard_state ? *rd.hard_state : HardState{1, 0, 0};
    a.last_index = 4;
    a.last_term = 1;
    f.r.persisted(a);
    std::vector<Message> sent = std::move(rd.messages);
    for (Message& m : f.r.take_ready().messages) sent.push_back(std::move(m));
    bool refused = false;
    for (const Message& m : sent)
      refused |= m.type == MessageType::kSnapshotResponse && m.reject && m.snapshot_offset == 0 &&
                 m.snapshot_meta && m.snapshot_meta->index == 8;
    EXPECT_TRUE(refused) << "the leader is told to start the newer snapshot again";
  }
}

// The simulator's 5-node seed 1788 (--snapshot-races --sliced-writes) and 3-node seed 1518
// (--snapshot-races --log-memory-bytes 300): one Ready's worth of input holds the last chunk
// of the snapshot at 4 (the install) and then an append after it (5 and 6, commit 6; a
// network that reorders delivered one the leader sent before it switched to the snapshot).
// The caller may load the snapshot in the background and hold applying only once it has
// it, so that Ready must not hand out 5 and 6 to apply (the replica aborted: "apply out of
// order: entry 5 after 2"). The entries are kept and acknowledged; they commit from the
// leader's next heartbeat.
TEST(RaftSnapshotInstall, NothingAfterAPendingInstallIsCommittedInItsReady) {
  for (bool bug : {false, true}) {
    SCOPED_TRACE(bug ? "planted bug commit_past_pending_install" : "fixed");
    Config::PlantedBugs bugs;
    bugs.commit_past_pending_install = bug;
    HandFedFollower f(bugs);
    f.install_pending();  // the snapshot at 4's last chunk, its Ready not taken...
    f.append(4, 6, 6);    // ... and an append after it, before take_ready()
    Ready rd = f.r.take_ready();
    ASSERT_TRUE(rd.snapshot.has_value());
    EXPECT_EQ(rd.snapshot->meta.index, 4u);
    Index last_committed = 0;
    for (const Entry& e : rd.committed) last_committed = std::max(last_committed, e.index);
    if (bug) {
      EXPECT_EQ(last_committed, 6u) << "the bug hands out 5 and 6 in the install's Ready";
      continue;
    }
    EXPECT_EQ(last_committed, 0u) << "entries after a pending install handed out to apply in its Ready";
    EXPECT_EQ(f.r.status().last_index, 6u) << "the append's entries are kept";
    PersistAck a;
    a.hard_state = rd.hard_state ? *rd.hard_state : HardState{1, 0, 0};
    a.last_index = 6;
    a.last_term = 1;
    f.r.persisted(a);
    // The leader's next heartbeat brings the commit index: 5 and 6 are handed out then.
    Message hb;
    hb.type = MessageType::kHeartbeat;
    hb.from = 1;
    hb.to = 3;
    hb.term = 1;
    hb.commit = 6;
    f.r.step(hb);
    rd = f.r.take_ready();
    ASSERT_EQ(rd.committed.size(), 2u);
    EXPECT_EQ(rd.committed.front().index, 5u);
    EXPECT_EQ(rd.committed.back().index, 6u);
  }
}

// The one case where it leads: the leader died after node 3, and not node 2, appended the
// last entry. Node 3 refuses its vote to node 2 (a shorter log), so only node 3 can win.
// It leads until its noop commits (which gives node 2 the whole log), then hands over.
// With its last resort disabled (the learners' planted bug), nobody is ever elected.
TEST(RaftMayNotLead, EndsTheDeadlockOnlyItCanEndThenHandsOver) {
  for (bool bug : {false, true}) {
    SCOPED_TRACE(bug ? "planted bug: learners_never_campaign" : "as built");
    Cluster c;
    Config cfg;
    cfg.bugs.learners_never_campaign = bug;
    ConfState conf;
    conf.voters = {1, 2, 3};
    for (NodeId id : {1, 2, 3}) c.add_node(id, cfg, conf);
    c.nodes.at(3).raft->set_may_lead(false);
    elect(c, 1);
    c.nodes.at(2).down = true;
    ASSERT_EQ(c.nodes.at(1).raft->propose(EntryType::kNormal, 1, "x").error, ProposeError::kNone);
    c.stabilize(false);
    c.nodes.at(1).down = true;
    c.nodes.at(2).down = false;
    ASSERT_LT(c.nodes.at(2).raft->status().last_index, c.nodes.at(3).raft->status().last_index);

    int node3_led = 0;
    c.on_apply = [&](NodeId, const Entry& e) {
      // Node 3 leads only to commit its noop: no other entry of its terms ever appears.
      if (e.type != EntryType::kNormal) return;
      EXPECT_EQ(e.data, "x");
    };
    for (uint32_t t = 0; t < 40 * cfg.election_ticks && c.nodes.at(2).raft->role() != Role::kLeader; t++) {
      c.tick(2);
      c.tick(3);
      if (c.nodes.at(3).raft->role() == Role::kLeader) node3_led++;
      c.stabilize(false);
      EXPECT_NE(c.nodes.at(3).raft->role(), Role::kLeader) << "it hands over as soon as its noop commits";
    }
    if (bug) {
      EXPECT_NE(c.nodes.at(2).raft->role(), Role::kLeader) << "without the last resort: no leader, ever";
      continue;
    }
    ASSERT_EQ(c.nodes.at(2).raft->role(), Role::kLeader) << c.status_line(2) << "; " << c.status_line(3);
    EXPECT_EQ(c.nodes.at(2).raft->status().last_index, c.nodes.at(3).raft->status().last_index);
    EXPECT_EQ(c.nodes.at(2).state, (std::vector<std::string>{"x"}));
  }
}

// A follower refuses the leader's snapshot while its filter says so (the server: a schema
// version its binary does not read): nothing installed, nothing answered, the leader
// offers it again only after its stall timeout; once accepted, it installs and catches up.
TEST(RaftSnapshotFilter, ARefusedSnapshotIsNeitherInstalledNorAnsweredAndRetriedSlowly) {
  Cluster c;
  Config cfg;
  ConfState conf;
  conf.voters = {1, 2, 3};
  for (NodeId id : {1, 2, 3}) c.add_node(id, cfg, conf);
  elect(c, 1);
  c.nodes.at(3).down = true;
  for (int i = 0; i < 5; i++) ASSERT_EQ(c.nodes.at(1).raft->propose(EntryType::kNormal, 1, "e" + std::to_string(i)).error, ProposeError::kNone);
  c.stabilize(false);
  ASSERT_TRUE(c.compact(1));
  const Index leader_applied = c.nodes.at(1).applied;
  bool accept = false;
  std::vector<Index> offered;
  c.nodes.at(3).down = false;
  c.nodes.at(3).raft->set_snapshot_filter([&](const SnapshotMeta& m) {
    offered.push_back(m.index);
    return accept;
  });
  bool installed = false;
  c.out = [&](const std::string& s) { installed |= s.find("3 installed snapshot") != std::string::npos; };
  const uint32_t ticks = 20 * cfg.election_ticks;
  for (uint32_t t = 0; t < ticks; t++) {
    c.tick(1);
    c.stabilize(false);
  }
  EXPECT_FALSE(installed);
  EXPECT_LT(c.nodes.at(3).applied, leader_applied);
  ASSERT_FALSE(offered.empty()) << "the leader offered it";
  EXPECT_EQ(c.nodes.at(3).raft->snapshots_refused(), offered.size());
  // Offered once per stall timeout at most (2 election timeouts), not in a loop.
  EXPECT_LE(offered.size(), ticks / (2 * cfg.election_ticks) + 1) << offered.size();
  EXPECT_EQ(c.nodes.at(1).raft->role(), Role::kLeader) << "the refusing follower still answers heartbeats";

  accept = true;
  for (uint32_t t = 0; t < ticks && !installed; t++) {
    c.tick(1);
    c.stabilize(false);
  }
  EXPECT_TRUE(installed);
  EXPECT_EQ(c.nodes.at(3).applied, c.nodes.at(1).applied);
}

TEST(RaftMayNotLead, CandidateAndLeaderStepDown) {
  Raft r(one_node_config(), fresh({1, 2, 3}));
  r.campaign();
  ASSERT_NE(r.role(), Role::kFollower);
  r.set_may_lead(false);
  EXPECT_EQ(r.role(), Role::kFollower);
  (void)r.take_ready();

  Raft single(one_node_config(), fresh({1}));
  elect_single(single);
  single.set_may_lead(false);
  EXPECT_EQ(single.role(), Role::kFollower);
  for (int i = 0; i < 100; i++) single.tick();
  EXPECT_EQ(single.role(), Role::kFollower) << "a cluster of one that may not lead has no leader";
}

}  // namespace may_lead

// Config::log_memory_bytes (docs/raft.md, "Bounded log memory").
namespace log_memory {

using testing::Cluster;

Cluster three_nodes(uint64_t log_memory_bytes) {
  Cluster c;
  Config cfg;
  cfg.log_memory_bytes = log_memory_bytes;
  cfg.snapshot_chunk_bytes = 16;
  ConfState conf;
  conf.voters = {1, 2, 3};
  for (NodeId id : {1, 2, 3}) c.add_node(id, cfg, conf);
  return c;
}

void propose(Cluster& c, NodeId leader, int n, const std::string& prefix) {
  for (int i = 0; i < n; i++)
    ASSERT_EQ(c.nodes.at(leader).raft->propose(EntryType::kNormal, 1, prefix + std::to_string(i)).error,
              ProposeError::kNone);
  c.stabilize(false);
}

// A single node drops its oldest applied, durable entries beyond the bound; without the
// bound (0) it keeps every entry since its last snapshot, as before.
TEST(RaftLogMemory, SingleNodeKeepsTheBoundsWorthWithoutASnapshot) {
  for (uint64_t bound : {uint64_t{0}, 3 * (kEntryOverheadBytes + 2)}) {
    Config cfg = one_node_config();
    cfg.log_memory_bytes = bound;
    Raft r(cfg, fresh({1}));
    elect_single(r);
    HardState hs;
    Index applied = 0;
    for (int i = 0; i < 10; i++) {
      std::string v = "v" + std::to_string(i);
      ASSERT_EQ(r.propose(EntryType::kNormal, 1, v).error, ProposeError::kNone);
      Ready rd = r.take_ready();
      EXPECT_FALSE(rd.snapshot_wanted);
      if (rd.hard_state) hs = *rd.hard_state;
      for (const Entry& e : rd.committed) applied = e.index;
      if (!rd.committed.empty()) r.applied_to(applied);
      r.persisted(ack_for(rd, hs));
      rd = r.take_ready();  // the commit
      for (const Entry& e : rd.committed) applied = e.index;
      if (!rd.committed.empty()) r.applied_to(applied);
    }
    r.take_ready();  // trims what the last one applied
    Status s = r.status();
    EXPECT_EQ(s.last_index, 11u) << "noop + 10";
    EXPECT_EQ(s.commit, 11u);
    if (bound == 0) {
      EXPECT_EQ(s.first_index, 1u);
      EXPECT_EQ(s.trimmed_entries, 0u);
    } else {
      EXPECT_EQ(s.first_index, 9u) << "the last three entries fit in the bound";
      EXPECT_EQ(s.log_bytes, bound);
      EXPECT_EQ(s.trimmed_entries, 8u);
    }
    EXPECT_EQ(s.snapshots_wanted, 0u);
  }
}

// Every node, the leader too, keeps the bound's worth of applied, durable entries (its
// oldest beyond the bound go), even of what every follower holds: a node added later, or
// one that lags a new leader, is caught up from them.
TEST(RaftLogMemory, EveryNodeKeepsTheBoundsWorth) {
  const uint64_t bound = 5 * (kEntryOverheadBytes + 2);
  Cluster c = three_nodes(bound);
  may_lead::elect(c, 1);
  propose(c, 1, 20, "v");
  c.tick(1);  // a heartbeat: the followers learn the last commit, and every node takes a Ready
  c.stabilize(false);
  c.tick(1);
  c.stabilize(false);
  for (NodeId f : {1, 2, 3}) {
    Status s = c.nodes.at(f).raft->status();
    EXPECT_LE(s.log_bytes, bound) << "follower " << f;
    EXPECT_GT(s.log_bytes, bound - 2 * (kEntryOverheadBytes + 2)) << "follower " << f << " keeps about the bound";
    EXPECT_GT(s.first_index, 1u) << "follower " << f;
  }
  for (NodeId id : {1, 2, 3}) EXPECT_EQ(c.nodes.at(id).snapshots_wanted, 0u);
  EXPECT_EQ(c.nodes.at(2).state, c.nodes.at(1).state);
}

// A follower that was away while the leader dropped entries beyond the bound: no snapshot is
// recent enough, so the leader asks for one (Ready::snapshot_wanted), keeps its log from
// where it asked, and streams the fresh snapshot once saved; the follower ends with every
// entry's effect. A snapshot saved that is older than the log's start is not sent: the leader
// asks again at once.
TEST(RaftLogMemory, AFollowerThatNeedsADroppedEntryGetsAFreshSnapshot) {
  const uint64_t bound = 3 * (kEntryOverheadBytes + 2);
  Cluster c = three_nodes(bound);
  c.snapshot_when_wanted = false;
  may_lead::elect(c, 1);
  propose(c, 1, 3, "a");
  ASSERT_TRUE(c.compact(1));  // an old snapshot, at 4
  const Index old_snapshot = c.nodes.at(1).snap->index;
  c.nodes.at(3).down = true;
  propose(c, 1, 20, "b");
  c.tick(1);  // a Ready after the last apply: the core trims in take_ready()
  c.stabilize(false);
  Status l = c.nodes.at(1).raft->status();
  ASSERT_GT(l.first_index, old_snapshot + 1) << "the bound dropped entries past the snapshot";
  EXPECT_LE(l.log_bytes, bound);
  const Index pin = l.first_index - 1;
  // Node 3 is back: it needs entry 5 (after the old snapshot), long dropped.
  c.nodes.at(3).down = false;
  c.tick(1);
  c.stabilize(false);
  EXPECT_EQ(c.nodes.at(1).snapshots_wanted, 1u);
  auto progress_of_3 = [&] {
    for (const Status::Progress& p : c.nodes.at(1).raft->status().progress)
      if (p.id == 3) return p;
    ADD_FAILURE() << "no progress for node 3";
    return Status::Progress{};
  };
  EXPECT_TRUE(progress_of_3().waiting_snapshot);
  EXPECT_TRUE(progress_of_3().sending_snapshot);
  // More writes meanwhile: the log is kept from where the leader asked.
  propose(c, 1, 10, "c");
  EXPECT_EQ(c.nodes.at(1).raft->status().first_index, pin + 1);
  EXPECT_EQ(c.nodes.at(3).raft->status().commit, 4u) << "nothing reached node 3 yet";
  // A snapshot older than the log's start (as one started before the log was trimmed
  // would be): not sent, asked for again.
  ASSERT_TRUE(c.compact(1, pin - 1));
  EXPECT_EQ(c.nodes.at(1).snapshots_wanted, 1u);
  c.stabilize(false);
  EXPECT_EQ(c.nodes.at(1).snapshots_wanted, 2u) << "the stale snapshot made the leader ask again";
  EXPECT_TRUE(progress_of_3().waiting_snapshot);
  // The fresh one: streamed in chunks and installed; node 3 then takes entries again.
  ASSERT_TRUE(c.compact(1));
  c.stabilize(false);
  EXPECT_FALSE(progress_of_3().sending_snapshot);
  propose(c, 1, 2, "d");
  c.tick(1);
  c.stabilize(false);
  EXPECT_EQ(c.nodes.at(3).raft->status().commit, c.nodes.at(1).raft->status().commit);
  EXPECT_EQ(c.nodes.at(3).state, c.nodes.at(1).state) << "node 3 holds every write";
  EXPECT_EQ(c.nodes.at(3).state.size(), 3u + 20 + 10 + 2);
  EXPECT_GT(c.nodes.at(1).raft->status().trimmed_entries, 0u);
}

// The same with the shell answering every ask at once (Cluster::snapshot_when_wanted).
TEST(RaftLogMemory, FreshSnapshotTakenWhenAskedCatchesTheFollowerUp) {
  Cluster c = three_nodes(2 * (kEntryOverheadBytes + 2));
  may_lead::elect(c, 1);
  c.nodes.at(2).down = true;
  propose(c, 1, 30, "x");
  c.nodes.at(2).down = false;
  for (int i = 0; i < 3; i++) {
    c.tick(1);
    c.stabilize(false);
  }
  EXPECT_EQ(c.nodes.at(1).snapshots_wanted, 1u);
  EXPECT_EQ(c.nodes.at(2).state, c.nodes.at(1).state);
  EXPECT_EQ(c.nodes.at(2).state.size(), 30u);
}

}  // namespace log_memory

TEST(RaftConfChange, EncodeDecodeRoundTrip) {
  ConfChange cc;
  cc.type = ConfChangeType::kPromote;
  cc.node = 0x0102030405060708ull;
  cc.context = "127.0.0.1:7001";
  std::string enc = encode_conf_change(cc);
  ConfChange out;
  ASSERT_TRUE(decode_conf_change(enc, &out));
  EXPECT_EQ(out.type, cc.type);
  EXPECT_EQ(out.node, cc.node);
  EXPECT_EQ(out.context, cc.context);
  EXPECT_FALSE(decode_conf_change(enc.substr(0, 5), &out));
  std::string bad = enc;
  bad[1] = 9;
  EXPECT_FALSE(decode_conf_change(bad, &out));
}

TEST(RaftConfChange, EntryCarriesResultingMembership) {
  ConfChange cc;
  cc.type = ConfChangeType::kAddLearner;
  cc.node = 4;
  cc.context = "addr";
  ConfState after;
  after.voters = {1, 2, 3};
  after.learners = {4};
  std::string enc = encode_conf_change_entry(cc, after);
  ConfChange out;
  std::optional<ConfState> got;
  ASSERT_TRUE(decode_conf_change_entry(enc, &out, &got));
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, after);
  EXPECT_EQ(out.context, "addr");
  ASSERT_TRUE(decode_conf_change(enc, &out));
  for (size_t cut = 0; cut < enc.size(); cut++) {
    EXPECT_FALSE(decode_conf_change_entry(enc.substr(0, cut), &out, &got)) << "cut at " << cut;
  }
}

TEST(RaftDeathTest, CommitBeyondLogIsDiagnosed) {
  RestoreState rs = fresh({1});
  rs.hard_state = HardState{1, 1, 5};
  EXPECT_DEATH(Raft(one_node_config(), rs), "commit index 5 beyond last index 0: was the log truncated");
}

TEST(RaftDeathTest, HardStateOlderThanEntriesIsDiagnosed) {
  RestoreState rs = fresh({1});
  rs.hard_state = HardState{1, 1, 0};
  Entry e;
  e.index = 1;
  e.term = 2;
  rs.entries.push_back(e);
  EXPECT_DEATH(Raft(one_node_config(), rs), "hard state must be made durable");
}

}  // namespace
}  // namespace hmdb::raft
