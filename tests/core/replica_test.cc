// tests/core/replica_test.cc — the replica core with a real consensus core and a tiny app,
// its world faked (a disk that is durable at once, no network): replies leave in request
// order; a pipeline of writes and reads is one log entry, each read seeing exactly the
// session's earlier writes; errors take their place in the order; a barrier behind a write
// waits until it is applied and holds everything behind it; a node that does not lead
// redirects app commands but serves a READONLY client's queries; one that forwards hands a
// plain client's app commands to its host in their place, and what runs locally waits for
// them; one elected with forwarded commands still unsent runs them as the client sent them;
// a leadership transfer to a voter that never answers is answered "abandoned" as soon as
// the consensus core drops it, not at the deadline.
// The simulator drives the same class through faults (tests/sim).
#include "core/replica.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/forwarder.h"
#include "net/resp.h"
#include "net/resp_reply.h"
#include "replica_harness.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using Node = TestNode<sim::RegisterHost>;

TEST(Replica, APipelineOfWritesAndReadsIsOneEntryAndEachReadSeesTheWritesBeforeIt) {
  Node n;
  ASSERT_TRUE(n.replica->leader());
  const uint64_t batches = n.replica->stats().batches;
  n.send({{"SET", "a", "1"}, {"GET", "a"}, {"INCR", "a"}, {"GET", "a"}, {"PING"}});
  EXPECT_EQ(n.out(), "") << "nothing may overtake the unapplied SET";
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n:1\r\n:2\r\n:2\r\n+PONG\r\n");
  EXPECT_EQ(n.replica->stats().batches, batches + 1) << "the two writes share one log entry";
  EXPECT_TRUE(n.s().replies.idle());
}

// HELLO 3 behind an unapplied write runs right after it (in session order), so the replies
// before it are RESP2 and those after it RESP3, whether they are queries run at apply or
// writes rendered when their entry is applied.
TEST(Replica, TheProtocolSwitchesInSessionOrder) {
  Node n;
  n.send({{"SET", "a", "1"}, {"GET", "x"}, {"RESP3"}, {"GET", "x"}, {"SET", "b", "2"}, {"GET", "y"}});
  EXPECT_EQ(n.out(), "");
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n$-1\r\n+OK\r\n_\r\n+OK\r\n_\r\n");
  EXPECT_EQ(n.s().protocol, Protocol::kResp3);
  n.send({{"GET", "z"}});
  EXPECT_EQ(n.out(), "_\r\n") << "a query with nothing pending runs at once, in RESP3";
}

TEST(Replica, ErrorsTakeTheirPlaceInTheOrder) {
  Node n;
  n.send({{"SET", "a", "1"}, {"NOSUCH", "x"}, {"SET", "a"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "+OK\r\n-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
            "-ERR wrong number of arguments for 'set' command\r\n:1\r\n");
}

TEST(Replica, ABarrierBehindAWriteWaitsForItAndHoldsWhatFollows) {
  Node n;
  n.send({{"SET", "a", "1"}, {"SNAP"}, {"SET", "a", "2"}, {"GET", "a"}});
  EXPECT_EQ(n.host.snapshots_started, 0) << "the barrier ran before the write before it was applied";
  EXPECT_EQ(n.s().replies.deferred(), 3u) << "SNAP and everything behind it are held";
  n.replica->end_turn();
  // The SET is applied, the SNAP runs (waits for its snapshot), the rest waits behind it.
  EXPECT_EQ(n.host.snapshots_started, 1);
  ASSERT_EQ(n.host.snapshot_waiters.size(), 1u);
  EXPECT_EQ(n.out(), "+OK\r\n");
  n.replica->finish(1, n.host.snapshot_waiters[0], ReplyQueue::Kind::kWaitingSnapshot, "+SNAPPED\r\n");
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+SNAPPED\r\n+OK\r\n:2\r\n");
}

TEST(Replica, ANodeThatDoesNotLeadRedirectsAppCommandsButServesReadonlyQueries) {
  Node n({1, 2, 3});  // a follower: no election here
  ASSERT_FALSE(n.replica->leader());
  n.send({{"SET", "a", "1"}, {"GET", "a"}, {"PING"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "-CLUSTERDOWN no leader known; retry\r\n-CLUSTERDOWN no leader known; retry\r\n+PONG\r\n");
  n.s().readonly = true;
  n.send({{"GET", "a"}, {"SET", "a", "1"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "$-1\r\n-CLUSTERDOWN no leader known; retry\r\n");
}

// A plain client on a follower: its app commands go to the host in their place, with their
// kind; a local command's reply waits behind theirs; the host's answers fill the slots.
TEST(Replica, AFollowerForwardsAPlainClientsAppCommandsInTheirPlace) {
  Node n({1, 2, 3}, /*forward=*/true);
  ASSERT_FALSE(n.replica->leader());
  n.send({{"SET", "a", "1"}, {"PING"}, {"GET", "a"}, {"NOSUCH"}});
  n.replica->end_turn();
  ASSERT_EQ(n.host.forwarded.size(), 2u);
  EXPECT_EQ(n.host.forwarded[0].argv, (std::vector<std::string>{"SET", "a", "1"}));
  EXPECT_TRUE(n.host.forwarded[0].write);
  EXPECT_EQ(n.host.forwarded[1].argv, (std::vector<std::string>{"GET", "a"}));
  EXPECT_FALSE(n.host.forwarded[1].write);
  EXPECT_EQ(n.out(), "") << "PING's reply may not overtake the forwarded SET's";
  EXPECT_EQ(n.replica->stats().forwarded, 2u);
  n.replica->finish(1, n.host.forwarded[1].seq, ReplyQueue::Kind::kWaitingForward, ":7\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "") << "the GET's reply came first; it waits for the SET's";
  n.replica->finish(1, n.host.forwarded[0].seq, ReplyQueue::Kind::kWaitingForward, "+OK\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "+OK\r\n+PONG\r\n:7\r\n-ERR unknown command 'NOSUCH', with args beginning with: \r\n");
  EXPECT_TRUE(n.s().replies.idle());
}

// A cluster client (no_forward), a READONLY client's writes and another node's forwarding
// link get -MOVED/-CLUSTERDOWN as before; a READONLY query runs here, after the session's
// forwarded command is answered.
TEST(Replica, ClusterClientsAndLinksAreRedirectedAndLocalQueriesWaitForForwards) {
  Node n({1, 2, 3}, /*forward=*/true);
  n.s().no_forward = true;
  n.send({{"SET", "a", "1"}});
  n.s().no_forward = false;
  n.s().forwarder = true;
  n.send({{"SET", "a", "1"}});
  n.s().forwarder = false;
  n.replica->end_turn();
  EXPECT_TRUE(n.host.forwarded.empty());
  EXPECT_EQ(n.out(), "-CLUSTERDOWN no leader known; retry\r\n-CLUSTERDOWN no leader known; retry\r\n");
  n.send({{"SET", "a", "1"}});  // forwarded
  n.s().readonly = true;
  n.send({{"GET", "a"}, {"SET", "b", "1"}, {"PING"}});
  n.replica->end_turn();
  ASSERT_EQ(n.host.forwarded.size(), 1u);
  EXPECT_EQ(n.s().replies.deferred(), 3u)
      << "the READONLY GET waits for the forwarded SET, and everything behind it (served in order)";
  n.replica->finish(1, n.host.forwarded[0].seq, ReplyQueue::Kind::kWaitingForward, "+OK\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "+OK\r\n$-1\r\n-CLUSTERDOWN no leader known; retry\r\n+PONG\r\n");
}

// A plain client's transaction on a follower is queued there (MULTI and each command
// answered at once) and goes to the host whole at EXEC, whose slot waits for the leader's
// EXEC reply; a cluster client's is refused while queueing.
TEST(Replica, AFollowerForwardsAPlainClientsTransactionWhole) {
  Node n({1, 2, 3}, /*forward=*/true);
  n.send({{"MULTI"}, {"SET", "a"}, {"EXEC"}});  // refused while queueing: EXECABORT here, nothing sent
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"INCR", "a"}, {"EXEC"}, {"PING"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n-EXECABORT Transaction discarded "
                     "because of previous errors.\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n")
      << "EXEC and what follows wait for the leader's answer";
  ASSERT_EQ(n.host.transactions.size(), 1u);
  EXPECT_EQ(n.host.transactions[0].second,
            (std::vector<std::vector<std::string>>{{"MULTI"}, {"SET", "a", "1"}, {"INCR", "a"}, {"EXEC"}}));
  EXPECT_TRUE(n.host.forwarded.empty());
  n.replica->finish(1, n.host.transactions[0].first, ReplyQueue::Kind::kWaitingForward, "-EXECABORT x\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "-EXECABORT x\r\n+PONG\r\n");
  n.s().no_forward = true;
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n-CLUSTERDOWN no leader known; retry\r\n-EXECABORT Transaction discarded because of "
                     "previous errors.\r\n");
  EXPECT_EQ(n.host.transactions.size(), 1u);
}

// Node 1 of three with its forwarder wired as server/cluster.cc wires it. A link to node 1
// itself is a session of node 1; a link to node 3 is only the bytes sent on it (the test
// plays node 3's replies). Voter 2 grants every vote and acknowledges every append and
// heartbeat at once, so node 1 can be elected and commit.
struct ForwardingNode final : ForwardHost {
  Node n{{1, 2, 3}, /*forward=*/true};
  Forwarder forwarder{*this, Forwarder::Options{1, 2000, 1000, {}, "", ""}};
  std::vector<uint64_t> dialing;
  std::map<uint64_t, uint64_t> self_links;     // link -> its session on node 1
  std::map<uint64_t, std::string> to_node3;  // link -> what was sent on it

  ForwardingNode() {
    n.host.forwarder = &forwarder;
    n.host.keep_messages = true;
  }
  bool open_link(uint64_t link, raft::NodeId to) override {
    EXPECT_TRUE(to == 1 || to == 3) << "node " << to << " never leads here";
    if (to == 3) to_node3[link];
    dialing.push_back(link);
    return true;
  }
  void send_link(uint64_t link, std::string_view bytes) override {
    if (auto it = to_node3.find(link); it != to_node3.end()) {
      it->second += bytes;
      return;
    }
    std::string buffer(bytes);
    net::RespParser parser;
    std::vector<std::string_view> argv;
    std::string error;
    for (size_t at = 0; at < buffer.size();) {
      size_t used = 0;
      ASSERT_EQ(parser.parse(buffer.data() + at, buffer.size() - at, &used, &argv, &error),
                net::RespParser::Result::kCommand);
      at += used;
      n.replica->command(n.s(self_links.at(link)), Args(argv.data(), argv.size()));
    }
  }
  void close_link(uint64_t link) override {
    if (to_node3.erase(link)) return;
    n.host.sessions.erase(self_links.at(link));
    self_links.erase(link);
  }
  void answer(uint64_t session, uint64_t seq, std::string_view reply) override {
    n.replica->finish(session, seq, ReplyQueue::Kind::kWaitingForward, reply);
  }
  void warn(std::string_view message) override { ADD_FAILURE() << "forwarder: " << message; }

  // One loop turn: the replica's, voter 2's answers, the forwarder told who leads, links
  // connected, the replies on links to node 1 relayed.
  void turn() {
    n.replica->end_turn();
    answer_as_voter_2(n);
    n.replica->drive();
    forwarder.set_leader(n.raft->leader(), n.raft->term());
    for (uint64_t link : std::exchange(dialing, {})) {
      if (!to_node3.count(link)) {
        self_links[link] = 100 + link;
        n.s(100 + link);
      }
      forwarder.link_connected(link);
    }
    n.replica->drain();
    for (const auto& [link, session] : std::map<uint64_t, uint64_t>(self_links)) {
      std::string& replies = n.s(session).replies.out();
      size_t used = 0;
      net::ScannedReply r;
      while (net::scan_reply(replies.data() + used, replies.size() - used, &r) == net::ScanResult::kComplete) {
        EXPECT_TRUE(forwarder.link_reply(link, std::string_view(replies).substr(used, r.length)));
        used += r.length;
      }
      replies.erase(0, used);
    }
  }
};

// A forwarded command that comes back not run after its follower was elected goes to that
// node itself over a link, like to any leader: it runs as the client sent it, even though
// the client switched to RESP3 and opened a MULTI on this node since. Before, it was handed
// back (Replica::unforward) and routed again in the session's state of then: the GET,
// sent before the MULTI, was queued into that transaction (+QUEUED, run by EXEC) and
// answered in RESP3 (hmdb-sim --forward --transactions --seed 1139 found it).
TEST(Replica, AForwardedCommandThatComesBackNotRunAfterThisNodeWasElectedRunsAsItWasSent) {
  ForwardingNode x;
  Node& n = x.n;
  raft::Message heartbeat;  // node 3 leads term 1
  heartbeat.type = raft::MessageType::kHeartbeat;
  heartbeat.from = 3;
  heartbeat.to = 1;
  heartbeat.term = 1;
  n.raft->step(heartbeat);
  x.turn();
  ASSERT_EQ(n.raft->leader(), 3u);
  n.send({{"GET", "x"}});
  x.turn();
  ASSERT_EQ(x.to_node3.size(), 1u);
  const uint64_t to3 = x.to_node3.begin()->first;
  EXPECT_EQ(x.to_node3[to3], "*3\r\n$7\r\nCLUSTER\r\n$9\r\nFORWARDER\r\n$1\r\n1\r\n") << "the handshake goes out alone";
  EXPECT_TRUE(x.forwarder.link_reply(to3, "+OK\r\n"));  // the handshake's: the GET follows
  EXPECT_EQ(x.to_node3[to3], "*3\r\n$7\r\nCLUSTER\r\n$9\r\nFORWARDER\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\nx\r\n");
  for (int i = 0; i < 100 && !n.replica->leader(); i++) {
    n.raft->tick();
    x.turn();
  }
  ASSERT_TRUE(n.replica->leader());
  n.send({{"RESP3"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}});
  x.turn();
  EXPECT_EQ(n.out(), "") << "everything waits behind the GET";
  EXPECT_TRUE(x.forwarder.link_reply(to3, "-MOVED 16287 10.0.0.1:7379\r\n"));  // node 3 no longer leads: not run
  for (int i = 0; i < 10 && !n.s().replies.idle(); i++) x.turn();
  EXPECT_EQ(n.out(), "$-1\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:1\r\n")
      << "the GET in RESP2, outside the transaction; the transaction as queued, here";
  EXPECT_EQ(x.forwarder.stats().resent, 1u) << "the GET, to node 1";
  EXPECT_TRUE(x.forwarder.idle());
}

TEST(Replica, RepliesOfAClosedSessionAreDropped) {
  Node n;
  n.send({{"SET", "a", "1"}, {"GET", "a"}});
  n.host.sessions.erase(1);
  n.replica->end_turn();  // applies the write; nobody to answer
  n.host.sessions[1].id = 1;
  n.send({{"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":1\r\n");
}


// The engine's names come first. An AppHost refuses reserved names, so the replica asks such
// an app first (one lookup for its commands); a StateMachine written by hand that claims a
// shell command's name is asked second, and the shell answers.
struct ClaimsPing final : StateMachine {
  std::string_view app_name() const override { return "claims-ping"; }
  uint32_t schema_version() const override { return 1; }
  CommandKind kind(std::string_view) const override { return CommandKind::kQuery; }
  bool validate(Args, std::string*, KeySpec*) const override { return false; }
  int arity(std::string_view) const override { return -1; }
  bool apply(Args, const ApplyContext&, Reply&, std::string*) override { return false; }
  void query(Args, const QueryContext&, Reply& r) const override { r.status("APP"); }
  std::optional<std::vector<std::string>> housekeeping(uint64_t) const override { return std::nullopt; }
  void save(Encoder&) const override {}
  bool load(Decoder&, uint32_t) override { return true; }
  void clear() override {}
  uint64_t digest() const override { return 0; }
  std::string info() const override { return {}; }
};

TEST(Replica, TheShellAnswersItsNamesBeforeTheAppWhicheverIsAskedFirst) {
  Node hosted;
  EXPECT_TRUE(hosted.app.names_exclude_reserved()) << "AppHost refused reserved names when hosting";
  hosted.send({{"PING"}, {"GET", "x"}});
  EXPECT_EQ(hosted.out(), "+PONG\r\n$-1\r\n");
  TestNode<ClaimsPing> by_hand;
  EXPECT_FALSE(by_hand.app.names_exclude_reserved());
  by_hand.send({{"PING"}, {"ANYTHING"}});
  EXPECT_EQ(by_hand.out(), "+PONG\r\n+APP\r\n");
}

// Node 1 of three leads (voter 2 answers everything); CLUSTER TRANSFER 3 while node 3 is
// stopped (what is sent to it is dropped). The consensus core drops the transfer after one
// election timeout and node 1 leads on: the client gets the "abandoned" error then, not the
// deadline's error 10 s later (the steady clock never moves here, so the deadline never
// passes). `plant`: Replica::Options::PlantedBugs::transfer_waits_for_deadline. Returns the
// replies, after 5 election timeouts of ticks, to TRANSFER, to a write sent behind it
// (refused while the transfer is under way) and to a write sent after those ticks.
std::string transfer_to_a_stopped_voter(bool plant) {
  Node n({1, 2, 3}, false, {}, [&](Replica::Options& o) { o.bugs.transfer_waits_for_deadline = plant; });
  n.host.keep_messages = true;
  auto turn = [&] {
    n.replica->end_turn();
    answer_as_voter_2(n);
    n.replica->drive();
    n.replica->check_transfers();
    n.replica->drain();
  };
  for (int i = 0; i < 100 && !n.replica->leader(); i++) {
    n.raft->tick();
    turn();
  }
  EXPECT_TRUE(n.replica->leader());
  n.send({{"SET", "a", "1"}});
  for (int i = 0; i < 10 && !n.s().replies.idle(); i++) turn();
  EXPECT_EQ(n.out(), "+OK\r\n");
  n.send({{"TRANSFER", "3"}, {"SET", "a", "2"}});
  turn();
  EXPECT_EQ(n.raft->status().transferee, 3u);
  EXPECT_EQ(n.out(), "") << "the transfer is under way";
  const raft::Config cfg;
  for (uint32_t i = 0; i < 5 * cfg.election_ticks && !n.s().replies.idle(); i++) {
    n.raft->tick();
    turn();
  }
  EXPECT_TRUE(n.replica->leader()) << "node 1 leads on";
  EXPECT_EQ(n.raft->status().transferee, raft::kNoNode) << "the core dropped the transfer";
  n.send({{"SET", "a", "3"}});  // taken again
  for (int i = 0; i < 10; i++) turn();
  return n.out();
}

TEST(Replica, ATransferTheCoreAbandonsIsAnsweredAbandonedAtOnceAndWritesGoOn) {
  EXPECT_EQ(transfer_to_a_stopped_voter(false),
            "-ERR leadership transfer to node 3 abandoned: it did not take over within an election timeout (is it "
            "up, caught up and reachable?); node 1 still leads\r\n"
            "-TRYAGAIN leadership transfer in progress; retry\r\n"
            "+OK\r\n");
}

// The check above catches the old behaviour (the client waits for the deadline, and the
// writes behind it with it): the planted bug leaves all three unanswered.
TEST(Replica, ATransferTheCoreAbandonsWithThePlantedBugWaitsForTheDeadline) {
  EXPECT_EQ(transfer_to_a_stopped_voter(true), "");
}

// Node 1 of three leads (voter 2 answers); CLUSTER TRANSFER 3 and a write behind it; then,
// before the core drops the transfer, node 1 loses its leadership. `successor`: 2, a
// heartbeat of node 2's in the next term (node 2 won an election node 1 did not see); 3, a
// vote request of node 3's for the transfer (what its TimeoutNow starts), with no leader
// known until node 3's heartbeat of its new term follows. The steady clock never moves, so
// the deadline never passes. `plant`: Replica::Options::PlantedBugs::
// transfer_ignores_lost_leadership. Returns the replies after each of the two steps: the
// step-down, and node `successor`'s heartbeat (for 2, the same as the step-down).
std::pair<std::string, std::string> transfer_when_leadership_is_lost(raft::NodeId successor, bool plant) {
  Node n({1, 2, 3}, false, {}, [&](Replica::Options& o) { o.bugs.transfer_ignores_lost_leadership = plant; });
  n.host.keep_messages = true;
  auto turn = [&] {
    n.replica->end_turn();
    answer_as_voter_2(n);
    n.replica->drive();
    n.replica->check_transfers();
    n.replica->drain();
  };
  for (int i = 0; i < 100 && !n.replica->leader(); i++) {
    n.raft->tick();
    turn();
  }
  EXPECT_TRUE(n.replica->leader());
  n.send({{"TRANSFER", "3"}, {"SET", "a", "2"}});
  turn();
  EXPECT_EQ(n.raft->status().transferee, 3u);
  EXPECT_EQ(n.out(), "") << "the transfer is under way";
  const raft::Term next = n.raft->term() + 1;
  raft::Message heartbeat;
  heartbeat.type = raft::MessageType::kHeartbeat;
  heartbeat.from = successor;
  heartbeat.to = 1;
  heartbeat.term = next;
  if (successor == 3) {
    raft::Message vote;
    vote.type = raft::MessageType::kVote;
    vote.from = 3;
    vote.to = 1;
    vote.term = next;
    vote.log_index = n.raft->status().last_index;
    vote.log_term = n.raft->term();
    vote.context = 1;  // raft.cc's kTransferContext: the campaign a TimeoutNow starts
    n.raft->step(vote);
  } else {
    n.raft->step(heartbeat);
  }
  turn();
  EXPECT_FALSE(n.replica->leader()) << "node 1 stepped down";
  std::string after_step_down = n.out();
  if (successor == 3) {
    EXPECT_EQ(n.raft->leader(), raft::kNoNode) << "no leader known until node 3's heartbeat";
    n.raft->step(heartbeat);
    turn();
  }
  EXPECT_EQ(n.raft->leader(), successor);
  return {after_step_down, n.out()};
}

TEST(Replica, ATransferWhoseLeaderLosesItToAnotherNodeIsAnsweredAtOnceNamingIt) {
  EXPECT_EQ(transfer_when_leadership_is_lost(2, false).first,
            "-ERR leadership transfer to node 3 abandoned: node 1 lost its leadership meanwhile; node 2 leads now\r\n"
            "-TRYAGAIN leadership transfer in progress; retry\r\n");
}

// The planted bug leaves it to the deadline (which never passes here): nothing is answered.
TEST(Replica, ATransferWhoseLeaderLosesItWithThePlantedBugWaitsForTheDeadline) {
  EXPECT_EQ(transfer_when_leadership_is_lost(2, true).first, "");
}

// A leader steps down for the target's own campaign knowing no leader until the target won
// it: the client waits through that, and gets +OK (not an error at the step-down).
TEST(Replica, ATransferWaitsThroughTheTargetsCampaignAndIsAnsweredOkWhenItLeads) {
  const auto [step_down, elected] = transfer_when_leadership_is_lost(3, false);
  EXPECT_EQ(step_down, "") << "answered while node 3's campaign was under way";
  EXPECT_EQ(elected, "+OK\r\n-TRYAGAIN leadership transfer in progress; retry\r\n");
}

}  // namespace
}  // namespace hmdb::core
