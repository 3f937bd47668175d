// tests/core/request_test.cc — HMDB.REQ in the replica core: a tagged write applies once and
// a retry (pipelined behind it in the same batch, later, or from another session) gets the
// first reply with nothing applied; an id sent with another command is an error; a tagged
// query runs as if untagged; what HMDB.REQ refuses; a tagged EXEC (writes only, no WATCH)
// is deduped as a whole; a tagged write waits for a HELLO queued before it and its reply is
// kept in the protocol it names; a retry over another protocol; a reply too long to keep; a
// follower redirects with the tagged command's slot, or forwards the tag and all (a tagged
// EXEC with its transaction); eviction by leader time; the planted bug that forgets request
// ids applies a retry again.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/key_slot.h"
#include "kv/kv.h"
#include "replica_harness.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using Node = TestNode<sim::RegisterHost>;
using KvNode = TestNode<AppHost<kv::Kv>>;

TEST(Request, ATaggedWriteAppliesOnceAndARetryGetsTheFirstReply) {
  Node n;
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":1\r\n");
  const uint64_t batches = n.replica->stats().batches;
  // The retry goes through the log like any write (the log decides), then nothing applies.
  n.send({{"hmdb.req", "r1", "INCR", "a"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":1\r\n:1\r\n");
  EXPECT_EQ(n.replica->stats().batches, batches + 1);
  // From another connection (a client that reconnected), the same.
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), ":1\r\n");
  n.send({{"HMDB.REQ", "r2", "INCR", "a"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":2\r\n:2\r\n") << "another id is another request";
  EXPECT_EQ(n.replica->requests().size(), 2u);
  EXPECT_EQ(n.replica->requests().stats().repeats, 2u);
  EXPECT_EQ(n.replica->stats().requests, 4u);
}

TEST(Request, ARetryPipelinedBehindItsFirstAttemptWaitsForItAndAppliesNothing) {
  Node n;
  // Both attempts in flight at once (the client gave up on the first and sent it again on
  // another connection, before the first was applied): one batch, the first applies.
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}});
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}}, 2);
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}, {"GET", "a"}});
  EXPECT_EQ(n.out(), "");
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":1\r\n:1\r\n:1\r\n");
  EXPECT_EQ(n.out(2), ":1\r\n");
}

TEST(Request, AnIdSentWithAnotherCommandIsAnErrorAndAppliesNothing) {
  Node n;
  n.send({{"HMDB.REQ", "r1", "SET", "a", "5"}});
  n.send({{"HMDB.REQ", "r1", "SET", "a", "6"}, {"HMDB.REQ", "r1", "set", "a", "5"}, {"GET", "a"}});
  n.replica->end_turn();
  const std::string conflict =
      "-ERR this request id was used for another command (an id names one request; a new request needs a new id)\r\n";
  EXPECT_EQ(n.out(), "+OK\r\n" + conflict + conflict + ":5\r\n") << "byte for byte the same command, name included";
  EXPECT_EQ(n.replica->requests().stats().conflicts, 2u);
}

TEST(Request, ATaggedQueryRunsAsIfUntaggedAndIsNotRecorded) {
  Node n;
  n.send({{"SET", "a", "3"}, {"HMDB.REQ", "q1", "GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n:3\r\n");
  n.send({{"HMDB.REQ", "q1", "GET", "a"}});
  EXPECT_EQ(n.out(), ":3\r\n") << "runs at once: nothing of the session is pending";
  EXPECT_TRUE(n.replica->requests().empty());
}

TEST(Request, WhatHmdbReqRefuses) {
  Node n;
  n.send({{"HMDB.REQ"}, {"HMDB.REQ", "r1"}, {"HMDB.REQ", "", "INCR", "a"},
          {"HMDB.REQ", std::string_view("0123456789012345678901234567890123456789012345678901234567890123x"), "INCR", "a"},
          {"HMDB.REQ", "r1", "HMDB.REQ", "r2", "INCR", "a"}, {"HMDB.REQ", "r1", "PING"}, {"HMDB.REQ", "r1", "NOSUCH", "x"},
          {"HMDB.REQ", "r1", "MULTI"}, {"HMDB.REQ", "r1", "SET", "a"}, {"HMDB.REQ", "r1", "SET", "a", "x"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "-ERR wrong number of arguments for 'hmdb.req' command\r\n"
            "-ERR wrong number of arguments for 'hmdb.req' command\r\n"
            "-ERR a request id must be 1 to 64 bytes\r\n"
            "-ERR a request id must be 1 to 64 bytes\r\n"
            "-ERR HMDB.REQ cannot wrap HMDB.REQ\r\n"
            "-ERR HMDB.REQ tags an app write, or EXEC; 'ping' is neither\r\n"
            "-ERR unknown command 'NOSUCH', with args beginning with: 'x' \r\n"
            "-ERR HMDB.REQ tags an app write, or EXEC\r\n"
            "-ERR wrong number of arguments for 'set' command\r\n"
            "-ERR value is not an integer\r\n");
  EXPECT_TRUE(n.replica->requests().empty()) << "a refused write never reaches the log, and records no id";
  EXPECT_EQ(n.replica->stats().requests, 0u);
}

TEST(Request, ATaggedExecIsDedupedAsAWhole) {
  Node n;
  n.send({{"MULTI"}, {"INCR", "a"}, {"INCR", "b"}, {"HMDB.REQ", "t1", "EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n");
  // The retry sends the whole transaction again: its EXEC's reply is the first one.
  n.send({{"MULTI"}, {"INCR", "a"}, {"INCR", "b"}, {"HMDB.REQ", "t1", "EXEC"}, {"GET", "a"}, {"GET", "b"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:1\r\n:1\r\n:1\r\n:1\r\n");
  // The same id with another transaction, or on a single write, is a conflict.
  n.send({{"MULTI"}, {"INCR", "a"}, {"HMDB.REQ", "t1", "EXEC"}, {"HMDB.REQ", "t1", "INCR", "a"}, {"GET", "a"}});
  n.replica->end_turn();
  const std::string conflict =
      "-ERR this request id was used for another command (an id names one request; a new request needs a new id)\r\n";
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n" + conflict + conflict + ":1\r\n");
}

TEST(Request, ATaggedExecHoldsOnlyWritesAndNoWatch) {
  Node n;
  const uint64_t batches = n.replica->stats().batches;
  n.send({{"MULTI"}, {"INCR", "a"}, {"GET", "a"}, {"HMDB.REQ", "t1", "EXEC"}});
  n.send({{"MULTI"}, {"INCR", "a"}, {"PING"}, {"HMDB.REQ", "t1", "EXEC"}});
  n.send({{"MULTI"}, {"INCR", "a"}, {"SET", "a", "x"}, {"HMDB.REQ", "t1", "EXEC"}});
  n.send({{"WATCH", "a"}, {"MULTI"}, {"INCR", "a"}, {"HMDB.REQ", "t1", "EXEC"}});
  n.send({{"MULTI"}, {"HMDB.REQ", "r", "INCR", "a"}, {"INCR", "a"}, {"EXEC"}});
  n.replica->end_turn();
  const std::string only_writes =
      "-EXECABORT Transaction discarded because of: a transaction with a request id may hold only writes that are "
      "valid when queued\r\n";
  EXPECT_EQ(n.out(),
            "+OK\r\n+QUEUED\r\n+QUEUED\r\n" + only_writes + "+OK\r\n+QUEUED\r\n+QUEUED\r\n" + only_writes +
                "+OK\r\n+QUEUED\r\n+QUEUED\r\n" + only_writes +
                "+OK\r\n+OK\r\n+QUEUED\r\n-EXECABORT Transaction discarded because of: a transaction with a request id "
                "may not WATCH\r\n"
                "+OK\r\n-ERR HMDB.REQ inside MULTI tags nothing: tag the transaction with HMDB.REQ <id> EXEC\r\n"
                "+QUEUED\r\n-EXECABORT Transaction discarded because of previous errors.\r\n");
  EXPECT_EQ(n.replica->stats().batches, batches) << "nothing was applied";
  EXPECT_TRUE(n.replica->requests().empty());
  n.send({{"HMDB.REQ", "t1", "EXEC"}});
  EXPECT_EQ(n.out(), "-ERR EXEC without MULTI\r\n");
}

TEST(Request, ATaggedWriteWaitsForAHelloQueuedBeforeItAndKeepsItsReplyInThatProtocol) {
  KvNode n;
  // RESP3 (the harness's HELLO 3) runs at apply, behind the SET: the tagged ZADD behind it
  // may join the batch only once it ran, so that its reply is rendered, and kept, in RESP3.
  n.send({{"SET", "x", "1"}, {"RESP3"}, {"HMDB.REQ", "z1", "ZADD", "z", "INCR", "1.5", "m"}});
  EXPECT_EQ(n.s().replies.deferred(), 1u) << "the tagged write is held";
  n.replica->end_turn();
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n,1.5\r\n");
  ASSERT_NE(n.replica->requests().find("z1"), nullptr);
  EXPECT_EQ(n.replica->requests().find("z1")->protocol, Protocol::kResp3);
  // A retry over RESP3 gets that reply; over RESP2 an error (a RESP3 reply may not parse there).
  n.send({{"HMDB.REQ", "z1", "ZADD", "z", "INCR", "1.5", "m"}});
  n.send({{"HMDB.REQ", "z1", "ZADD", "z", "INCR", "1.5", "m"}, {"ZSCORE", "z", "m"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ",1.5\r\n");
  EXPECT_EQ(n.out(2),
            "-ERR this request was applied and answered in RESP3; retry it after HELLO 3 to get that reply\r\n"
            "$3\r\n1.5\r\n");
  // A RESP2 reply is sent as it is on a RESP3 connection (RESP3 reads RESP2).
  n.send({{"HMDB.REQ", "z2", "ZADD", "z", "INCR", "1", "m"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), "$3\r\n2.5\r\n");
  n.send({{"HMDB.REQ", "z2", "ZADD", "z", "INCR", "1", "m"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "$3\r\n2.5\r\n");
}

TEST(Request, AReplyTooLongToKeepAnswersARetryWithAnError) {
  KvNode n;
  const std::string big(kRequestReplyKeptBytesMax, 'v');
  n.send({{"RPUSH", "l", big, "small"}, {"HMDB.REQ", "p1", "LPOP", "l"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":2\r\n$" + std::to_string(big.size()) + "\r\n" + big + "\r\n") << "the first reply is whole";
  n.send({{"HMDB.REQ", "p1", "LPOP", "l"}, {"LLEN", "l"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "-ERR this request was applied; its reply (4105 bytes) was longer than the 4096 bytes kept for retries\r\n"
            ":1\r\n")
      << "nothing applied twice";
}

TEST(Request, AFollowerRedirectsWithTheTaggedCommandsSlotOrForwardsTheTag) {
  Node follower({1, 2, 3});
  raft::Message heartbeat;  // node 2 leads term 1
  heartbeat.type = raft::MessageType::kHeartbeat;
  heartbeat.from = 2;
  heartbeat.to = 1;
  heartbeat.term = 1;
  follower.raft->step(heartbeat);
  follower.replica->drive();
  follower.send({{"HMDB.REQ", "r1", "INCR", "key"}});
  follower.replica->end_turn();
  EXPECT_EQ(follower.out(), "-MOVED " + std::to_string(key_hash_slot("key")) + " 10.0.0.2:7379\r\n")
      << "the slot of the tagged command's key, not of the id";
  Node forwarding({1, 2, 3}, /*forward=*/true);
  forwarding.send({{"HMDB.REQ", "r1", "INCR", "a"}, {"HMDB.REQ", "q", "GET", "a"}});
  ASSERT_EQ(forwarding.host.forwarded.size(), 2u);
  EXPECT_EQ(forwarding.host.forwarded[0].argv, (std::vector<std::string>{"HMDB.REQ", "r1", "INCR", "a"}));
  EXPECT_TRUE(forwarding.host.forwarded[0].write);
  EXPECT_EQ(forwarding.host.forwarded[1].argv, (std::vector<std::string>{"GET", "a"})) << "a query: untagged";
  EXPECT_FALSE(forwarding.host.forwarded[1].write);
  // A plain client's tagged transaction travels whole with its tag on EXEC.
  forwarding.send({{"MULTI"}, {"INCR", "a"}, {"INCR", "b"}, {"HMDB.REQ", "t1", "EXEC"}}, 2);
  ASSERT_EQ(forwarding.host.transactions.size(), 1u);
  EXPECT_EQ(forwarding.host.transactions[0].second,
            (std::vector<std::vector<std::string>>{{"MULTI"}, {"INCR", "a"}, {"INCR", "b"}, {"HMDB.REQ", "t1", "EXEC"}}));
  EXPECT_EQ(forwarding.out(2), "+OK\r\n+QUEUED\r\n+QUEUED\r\n") << "EXEC's reply is the leader's, relayed";
}

TEST(Request, AnIdIsForgottenAfterTheRetentionInLeaderTime) {
  Node n;
  const uint64_t t0 = 1'700'000'000'000;
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}});
  n.replica->end_turn();
  n.replica->set_time(t0 + kRequestRetentionMs - 1, 0);
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":1\r\n:1\r\n");
  n.replica->set_time(t0 + kRequestRetentionMs, 0);
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":2\r\n") << "past the retention a retry applies again (the documented bound)";
  EXPECT_EQ(n.replica->requests().stats().evicted_by_age, 1u);
}

TEST(Request, ThePlantedBugForgetsRequestIdsAndAppliesARetryAgain) {
  Node n;
  Replica::Options options;
  options.bugs.forget_request_ids = true;
  const raft::Index applied = n.replica->applied_index();
  const raft::Term applied_term = n.replica->applied_term();
  n.replica = std::make_unique<Replica>(*n.raft, n.app, n.host, options);
  n.replica->set_applied(applied, applied_term);
  ASSERT_TRUE(n.replica->leader());
  n.send({{"HMDB.REQ", "r1", "INCR", "a"}, {"HMDB.REQ", "r1", "INCR", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), ":1\r\n:2\r\n");
}

}  // namespace
}  // namespace hmdb::core
