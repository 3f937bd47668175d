// tests/core/transaction_test.cc — MULTI/EXEC/DISCARD/WATCH/UNWATCH in the replica core:
// queueing (+QUEUED), the group as one log entry whose EXEC reply is one array, queries
// inside seeing exactly the transaction's earlier writes, EXECABORT for errors at queue
// time (nothing applied), run-time errors in their place, DISCARD, WATCH failing an EXEC
// for a change by another session (applied or still in the batch), by expiry, and not for
// the session's own writes sent before the WATCH; a node that does not lead.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "replica_harness.h"
#include "kv/kv.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using Node = TestNode<sim::RegisterHost>;

TEST(Transaction, QueuedCommandsRunAsOneEntryWithOneArrayReply) {
  Node n;
  const uint64_t batches = n.replica->stats().batches;
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"INCR", "a"}, {"GET", "a"}, {"PING"}});
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n");
  n.replica->end_turn();
  EXPECT_EQ(n.replica->stats().batches, batches) << "nothing is proposed before EXEC";
  n.send({{"EXEC"}, {"GET", "a"}});
  EXPECT_EQ(n.out(), "") << "EXEC waits for its entry";
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "*4\r\n+OK\r\n:2\r\n:2\r\n+PONG\r\n:2\r\n");
  EXPECT_EQ(n.replica->stats().batches, batches + 1);
  EXPECT_EQ(n.replica->stats().transactions, 1u);
  EXPECT_TRUE(n.s().replies.idle());
}

TEST(Transaction, QueriesInsideSeeTheTransactionsWritesAndNothingElse) {
  Node n;
  // Session 2's SET joins the batch before the group, its second SET after it: the GETs
  // inside the transaction see the first and never the second, whatever they share.
  n.send({{"MULTI"}, {"GET", "a"}, {"INCR", "a"}, {"GET", "a"}, {"INCR", "a"}});
  n.send({{"SET", "a", "100"}}, 2);
  n.send({{"EXEC"}});
  n.send({{"SET", "a", "5"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*4\r\n:100\r\n:101\r\n:101\r\n:102\r\n");
  EXPECT_EQ(n.out(2), "+OK\r\n+OK\r\n");
  n.send({{"GET", "a"}});
  EXPECT_EQ(n.out(), ":5\r\n");
}

TEST(Transaction, AnErrorWhileQueueingAbortsTheWholeTransaction) {
  Node n;
  const uint64_t batches = n.replica->stats().batches;
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"NOSUCH", "x"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "+OK\r\n+QUEUED\r\n-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n+QUEUED\r\n"
            "-EXECABORT Transaction discarded because of previous errors.\r\n");
  n.send({{"MULTI"}, {"SET", "a"}, {"EXEC"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "+OK\r\n-ERR wrong number of arguments for 'set' command\r\n"
            "-EXECABORT Transaction discarded because of previous errors.\r\n$-1\r\n");
  EXPECT_EQ(n.replica->stats().batches, batches) << "nothing of an aborted transaction reaches the log";
  n.send({{"MULTI"}, {"SNAP"}, {"EXEC"}});
  EXPECT_EQ(n.out(),
            "+OK\r\n-ERR Command not allowed inside a transaction\r\n"
            "-EXECABORT Transaction discarded because of previous errors.\r\n");
  EXPECT_EQ(n.host.snapshots_started, 0);
}

TEST(Transaction, ARunTimeErrorTakesItsPlaceInTheArray) {
  Node n;
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"SET", "b", "notanumber"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n+OK\r\n-ERR value is not an integer\r\n:2\r\n");
}

TEST(Transaction, DiscardNestingAndCommandsOutOfPlace) {
  Node n;
  n.send({{"EXEC"}, {"DISCARD"}, {"MULTI", "x"}, {"EXEC", "x"}});
  EXPECT_EQ(n.out(),
            "-ERR EXEC without MULTI\r\n-ERR DISCARD without MULTI\r\n"
            "-ERR wrong number of arguments for 'multi' command\r\n"
            "-EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command\r\n");
  // Nested MULTI and WATCH inside MULTI answer an error and leave the transaction as it was.
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"MULTI"}, {"WATCH", "a"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "+OK\r\n+QUEUED\r\n-ERR MULTI calls can not be nested\r\n-ERR WATCH inside MULTI is not allowed\r\n"
            "+QUEUED\r\n*2\r\n+OK\r\n:2\r\n");
  n.send({{"MULTI"}, {"INCR", "a"}, {"DISCARD"}, {"GET", "a"}, {"MULTI"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n+OK\r\n:2\r\n+OK\r\n*0\r\n");
}

TEST(Transaction, WatchFailsTheExecWhenAnotherSessionChangedTheKey) {
  Node n;
  n.send({{"SET", "a", "1"}});
  n.replica->end_turn();
  n.send({{"WATCH", "a"}});
  n.send({{"SET", "a", "2"}}, 2);
  n.replica->end_turn();
  n.send({{"MULTI"}, {"SET", "a", "3"}, {"EXEC"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n:2\r\n");
  EXPECT_EQ(n.replica->stats().transactions_watch_failed, 1u);
  // EXEC forgot the watched key: the next transaction runs.
  n.send({{"MULTI"}, {"SET", "a", "3"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n");
}

TEST(Transaction, WatchSeesAChangeStillInTheBatchBeforeTheExec) {
  Node n;
  n.send({{"WATCH", "a"}, {"MULTI"}, {"SET", "a", "3"}});
  n.send({{"SET", "a", "2"}}, 2);  // joins this turn's batch, before the EXEC
  n.send({{"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n");
  n.send({{"GET", "a"}});
  EXPECT_EQ(n.out(), ":2\r\n");
}

TEST(Transaction, WatchOfKeysNobodyChangedPasses) {
  Node n;
  n.send({{"WATCH", "a", "b"}});
  n.send({{"SET", "c", "2"}}, 2);
  n.replica->end_turn();
  n.send({{"MULTI"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:1\r\n");
}

TEST(Transaction, UnwatchForgetsTheWatchedKeys) {
  Node n;
  n.send({{"WATCH", "a"}});
  n.send({{"SET", "a", "2"}}, 2);
  n.replica->end_turn();
  n.send({{"UNWATCH"}, {"MULTI"}, {"INCR", "a"}, {"UNWATCH"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:3\r\n+OK\r\n");
}

TEST(Transaction, TheSessionsOwnWritesSentBeforeWatchAreNotChangesSince) {
  Node n;
  // All pipelined in one turn: WATCH waits until the SET before it is applied, and
  // everything after the WATCH waits behind it, in order.
  n.send({{"SET", "a", "1"}, {"WATCH", "a"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  n.replica->end_turn();  // the group joined the next batch once the WATCH had run
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n:2\r\n");
  // ... while a write after the WATCH is a change since, even the session's own.
  n.send({{"WATCH", "a"}, {"INCR", "a"}, {"MULTI"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n:3\r\n+OK\r\n+QUEUED\r\n*-1\r\n");
}

TEST(Transaction, ACommandInATransactionOnANodeThatDoesNotLeadIsRedirectedAndAbortsIt) {
  Node n({1, 2, 3});  // a follower: no election here
  ASSERT_FALSE(n.replica->leader());
  n.send({{"WATCH", "a"}, {"MULTI"}, {"SET", "a", "1"}, {"PING"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "-CLUSTERDOWN no leader known; retry\r\n+OK\r\n-CLUSTERDOWN no leader known; retry\r\n+QUEUED\r\n"
            "-EXECABORT Transaction discarded because of previous errors.\r\n");
  n.send({{"MULTI"}, {"EXEC"}});
  EXPECT_EQ(n.out(), "+OK\r\n-CLUSTERDOWN no leader known; retry\r\n");
}

TEST(Transaction, ASessionClosedBeforeItsGroupIsAppliedIsSkipped) {
  Node n;
  n.send({{"MULTI"}, {"INCR", "a"}, {"GET", "a"}, {"EXEC"}});
  n.host.sessions.erase(1);
  n.replica->end_turn();  // the group is applied; nobody to answer
  n.send({{"GET", "a"}});
  EXPECT_EQ(n.out(), ":1\r\n");
}

// Expiry needs an app with deadlines: kv.
using KvNode = TestNode<AppHost<kv::Kv>>;

TEST(Transaction, AKeyThatExpiresBetweenWatchAndExecFailsIt) {
  KvNode n;
  const uint64_t t0 = 1'700'000'000'000;
  n.send({{"SET", "a", "1", "PX", "100"}, {"SET", "gone", "1", "PX", "10"}});
  n.replica->end_turn();
  n.replica->set_time(t0 + 50, 50);
  n.send({{"WATCH", "a", "gone"}});  // "gone" has expired already: not a change (Redis)
  n.replica->set_time(t0 + 60, 60);
  n.send({{"MULTI"}, {"SET", "b", "1"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n");
  n.send({{"WATCH", "a"}});
  n.replica->set_time(t0 + 200, 200);  // "a" expires, nobody deleted it yet
  n.send({{"MULTI"}, {"SET", "b", "2"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n");
}

TEST(Transaction, TheHousekeepingSweepReportsTheKeysItExpires) {
  KvNode n;
  const uint64_t t0 = 1'700'000'000'000;
  n.send({{"SET", "a", "1", "PX", "100"}, {"SET", "b", "1"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n");
  n.send({{"WATCH", "a"}}, 1);
  n.send({{"WATCH", "b"}}, 2);
  n.replica->set_time(t0 + 200, 200);
  n.replica->housekeeping();  // HMDB.EXPIRE: while it is in flight, every WATCH fails
  n.send({{"MULTI"}, {"SET", "x", "1"}, {"EXEC"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), "+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n");
  n.send({{"WATCH", "b"}}, 2);
  n.send({{"MULTI"}, {"SET", "x", "1"}, {"EXEC"}}, 2);  // applied: it deleted "a" only
  n.send({{"MULTI"}, {"SET", "x", "1"}, {"EXEC"}}, 1);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), "+OK\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n");
  EXPECT_EQ(n.out(1), "+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n");
}

TEST(Transaction, FlushallChangesEveryKey) {
  KvNode n;
  n.send({{"WATCH", "a"}});
  n.send({{"FLUSHALL"}}, 2);
  n.replica->end_turn();
  n.send({{"MULTI"}, {"SET", "a", "1"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n");
}

}  // namespace
}  // namespace hmdb::core
