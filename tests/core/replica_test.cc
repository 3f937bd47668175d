// tests/core/replica_test.cc — the replica core with a real consensus core and a tiny app,
// its world faked (a disk that is durable at once, no network): replies leave in request
// order; a pipeline of writes and reads is one log entry, each read seeing exactly the
// session's earlier writes; errors take their place in the order; a barrier behind a write
// waits until it is applied and holds everything behind it; a node that does not lead
// redirects app commands but serves a READONLY client's queries; one that forwards hands a
// plain client's app commands to its host in their place, and what runs locally waits for
// them. The simulator drives the same class through faults (tests/sim).
#include "core/replica.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

// A forwarded command that was never sent comes back when the node leads: it is routed again
// in its place, and the session's later commands wait behind it.
TEST(Replica, AnUnforwardedCommandIsRoutedAgainInItsPlace) {
  Node n({1, 2, 3}, /*forward=*/true);
  n.send({{"SET", "a", "1"}, {"SET", "a", "2"}});
  ASSERT_EQ(n.host.forwarded.size(), 2u);
  const auto first = n.host.forwarded[0];
  std::vector<std::string_view> words(first.argv.begin(), first.argv.end());
  n.replica->unforward(1, first.seq, Args(words.data(), words.size()));
  n.replica->drain();
  ASSERT_EQ(n.host.forwarded.size(), 3u) << "still a follower: forwarded again";
  EXPECT_EQ(n.host.forwarded[2].seq, first.seq);
  n.replica->finish(1, n.host.forwarded[1].seq, ReplyQueue::Kind::kWaitingForward, "+OK2\r\n");
  n.replica->finish(1, first.seq, ReplyQueue::Kind::kWaitingForward, "+OK1\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "+OK1\r\n+OK2\r\n");
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

}  // namespace
}  // namespace hmdb::core
