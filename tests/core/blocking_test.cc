// tests/core/blocking_test.cc — blocking commands in the replica core (core/blocking.h), with
// kv's BLPOP & co.: a command that finds nothing parks its client, the session's later
// commands wait behind it, a write to one of its keys wakes the longest-waiting client
// first (FIFO), the timeout answers a null array, a closed session leaves the queue and
// passes the element on, MULTI runs the non-blocking form, CLIENT UNBLOCK, and a plain
// client on a follower waits there while its attempts go to the leader.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/blocking.h"
#include "kv/kv.h"
#include "replica_harness.h"

namespace hmdb::core {
namespace {

using KvNode = TestNode<AppHost<kv::Kv>>;

constexpr uint64_t kWallMs = 1'700'000'000'000;

// Turns until nothing is left to do (a woken client's attempt is proposed the turn after the
// write that woke it is applied).
void settle(KvNode& n) {
  for (int i = 0; i < 10; i++) n.replica->end_turn();
}

TEST(Blocking, AnEmptyKeyParksTheClientAndAPushWakesIt) {
  KvNode n;
  n.send({{"BLPOP", "q", "0"}, {"PING"}});
  settle(n);
  EXPECT_EQ(n.out(), "") << "parked; PING waits behind it, as Redis blocks the connection";
  EXPECT_EQ(n.replica->blocked().blocked_clients(), 1u);
  n.send({{"RPUSH", "q", "a"}}, 2);
  settle(n);
  EXPECT_EQ(n.out(2), ":1\r\n");
  EXPECT_EQ(n.out(), "*2\r\n$1\r\nq\r\n$1\r\na\r\n+PONG\r\n");
  EXPECT_EQ(n.replica->blocked().blocked_clients(), 0u);
  EXPECT_TRUE(n.replica->blocked().empty());
  n.send({{"LLEN", "q"}}, 2);
  EXPECT_EQ(n.out(2), ":0\r\n");
}

TEST(Blocking, AKeyWithDataAnswersAtOnceWithoutBlocking) {
  KvNode n;
  n.send({{"RPUSH", "q", "a", "b"}, {"BRPOP", "none", "q", "0"}, {"BLMOVE", "q", "d", "LEFT", "LEFT", "0"}});
  settle(n);
  EXPECT_EQ(n.out(), ":2\r\n*2\r\n$1\r\nq\r\n$1\r\nb\r\n$1\r\na\r\n");
  EXPECT_TRUE(n.replica->blocked().empty());
}

TEST(Blocking, WaitersAreServedInTheOrderTheyCame) {
  KvNode n;
  for (uint64_t id : {3, 1, 2}) {
    n.send({{"BLPOP", "q", "0"}}, id);
    settle(n);
  }
  EXPECT_EQ(n.replica->blocked().blocked_clients(), 3u);
  n.send({{"RPUSH", "q", "a", "b"}}, 4);
  settle(n);
  EXPECT_EQ(n.out(3), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
  EXPECT_EQ(n.out(1), "*2\r\n$1\r\nq\r\n$1\r\nb\r\n");
  EXPECT_EQ(n.out(2), "") << "nothing left for the third";
  EXPECT_EQ(n.replica->blocked().blocked_clients(), 1u);
  n.send({{"LPUSH", "q", "c"}}, 4);
  settle(n);
  EXPECT_EQ(n.out(2), "*2\r\n$1\r\nq\r\n$1\r\nc\r\n");
}

TEST(Blocking, AWaiterOnSeveralKeysTakesFromTheFirstThatHasDataAndPassesTheRestOn) {
  KvNode n;
  n.send({{"BLPOP", "a", "b", "0"}}, 1);
  settle(n);
  n.send({{"BLPOP", "b", "0"}}, 2);
  settle(n);
  // One entry pushes onto both: the first waiter takes a's, b's goes to the second.
  n.send({{"MULTI"}, {"RPUSH", "b", "y"}, {"RPUSH", "a", "x"}, {"EXEC"}}, 3);
  settle(n);
  EXPECT_EQ(n.out(1), "*2\r\n$1\r\na\r\n$1\r\nx\r\n");
  EXPECT_EQ(n.out(2), "*2\r\n$1\r\nb\r\n$1\r\ny\r\n");
  EXPECT_TRUE(n.replica->blocked().empty());
}

TEST(Blocking, TheTimeoutAnswersANullArrayInTheSessionsProtocol) {
  KvNode n;
  n.send({{"BLPOP", "q", "0.05"}});
  n.send({{"RESP3"}, {"BLMOVE", "q", "d", "LEFT", "LEFT", "0.1"}}, 2);
  settle(n);
  n.replica->set_time(kWallMs + 49, 49);
  settle(n);
  EXPECT_EQ(n.out(), "") << "not yet";
  n.replica->set_time(kWallMs + 50, 50);
  settle(n);
  EXPECT_EQ(n.out(), "*-1\r\n");
  n.replica->set_time(kWallMs + 100, 100);
  settle(n);
  EXPECT_EQ(n.out(2), "+OK\r\n_\r\n");
  EXPECT_TRUE(n.replica->blocked().empty());
}

TEST(Blocking, AClosedSessionLeavesTheQueueAndTheNextWaiterGetsTheElement) {
  KvNode n;
  n.send({{"BLPOP", "q", "0"}}, 1);
  settle(n);
  n.send({{"BLPOP", "q", "0"}}, 2);
  settle(n);
  n.replica->session_closed(n.s(1));
  n.host.sessions.erase(1);
  EXPECT_EQ(n.replica->blocked().blocked_clients(), 1u);
  n.send({{"RPUSH", "q", "a"}}, 3);
  settle(n);
  EXPECT_EQ(n.out(2), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
}

TEST(Blocking, AClosedSessionWokenButNotYetServedPassesTheChangeOn) {
  KvNode n;
  n.send({{"BLPOP", "q", "0"}}, 1);
  settle(n);
  n.send({{"BLPOP", "q", "0"}}, 2);
  settle(n);
  n.send({{"RPUSH", "q", "a"}}, 3);
  n.replica->end_turn();  // the push is applied: session 1 is woken, its attempt not yet made
  n.replica->session_closed(n.s(1));
  n.host.sessions.erase(1);
  settle(n);
  EXPECT_EQ(n.out(2), "*2\r\n$1\r\nq\r\n$1\r\na\r\n");
}

TEST(Blocking, InsideMultiTheNonBlockingFormAnswers) {
  KvNode n;
  n.send({{"MULTI"}, {"BLPOP", "q", "0"}, {"BLMOVE", "q", "d", "LEFT", "LEFT", "0"}, {"EXEC"}});
  settle(n);
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n*-1\r\n$-1\r\n");
  EXPECT_TRUE(n.replica->blocked().empty());
}

TEST(Blocking, ClientUnblockAnswersANullOrAnError) {
  KvNode n;
  n.send({{"BLPOP", "q", "0"}}, 1);
  n.send({{"BZPOPMIN", "z", "0"}}, 2);
  EXPECT_FALSE(n.replica->unblock(1, false)) << "its first attempt is in flight: not blocked yet";
  settle(n);
  EXPECT_TRUE(n.replica->unblock(1, false));
  EXPECT_TRUE(n.replica->unblock(2, true));
  EXPECT_FALSE(n.replica->unblock(2, true));
  n.replica->drain();
  EXPECT_EQ(n.out(1), "*-1\r\n");
  EXPECT_EQ(n.out(2), "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n");
}

TEST(Blocking, AWrongTypeAnswersTheErrorAndAKeyTurnedWrongTypeToo) {
  KvNode n;
  n.send({{"SET", "s", "v"}, {"BLPOP", "s", "0"}});
  n.send({{"BLPOP", "q", "0"}}, 2);
  settle(n);
  EXPECT_EQ(n.out(), "+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
  n.send({{"SET", "q", "v"}}, 3);
  settle(n);
  EXPECT_EQ(n.out(2), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
}

TEST(Blocking, APlainClientOnAFollowerWaitsThereAndItsAttemptsGoToTheLeader) {
  KvNode n({1, 2, 3}, /*forward=*/true);
  ASSERT_FALSE(n.replica->leader());
  n.send({{"BLPOP", "q", "0.5"}, {"PING"}});
  ASSERT_EQ(n.host.forwarded.size(), 1u);
  EXPECT_EQ(n.host.forwarded[0].argv, (std::vector<std::string>{"BLPOP", "q", "0.5"}));
  // The leader answered the link's attempt as LPOP would: nothing. The client waits here.
  n.replica->finish(1, n.host.forwarded[0].seq, ReplyQueue::Kind::kWaitingForward, "*-1\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "");
  EXPECT_EQ(n.replica->blocked().blocked_clients(), 1u);
  n.replica->set_time(kWallMs + 500, 500);
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "*-1\r\n+PONG\r\n");
  // An answer with data ends it at once; so does an error (a leader change's).
  n.send({{"BLPOP", "q", "0"}});
  ASSERT_EQ(n.host.forwarded.size(), 2u);
  n.replica->finish(1, n.host.forwarded[1].seq, ReplyQueue::Kind::kWaitingForward,
                    "-ERR write outcome unknown: leadership changed before it was committed\r\n");
  n.replica->drain();
  EXPECT_EQ(n.out(), "-ERR write outcome unknown: leadership changed before it was committed\r\n");
  EXPECT_TRUE(n.replica->blocked().empty());
}

TEST(Blocking, TimeoutWordsParseAsRedisReadsThem) {
  EXPECT_EQ(parse_block_timeout_ms("0"), 0u);
  EXPECT_EQ(parse_block_timeout_ms("0.01"), 10u);
  EXPECT_EQ(parse_block_timeout_ms("0.0001"), 1u) << "rounded up";
  EXPECT_EQ(parse_block_timeout_ms("1e1"), 10000u);
  EXPECT_EQ(parse_block_timeout_ms("-0.0001"), 0u) << "Redis: ceil(-0.1) is 0, forever";
  for (std::string_view bad : {"-1", "x", "", " 1", "1 ", "nan", "inf", "1e20"})
    EXPECT_FALSE(parse_block_timeout_ms(bad)) << bad;
  EXPECT_FALSE(parse_block_timeout_ms(std::string_view("1\0x", 3))) << "Redis reads the whole word (string2ld)";
  EXPECT_TRUE(is_null_reply("*-1\r\n") && is_null_reply("$-1\r\n") && is_null_reply("_\r\n"));
  EXPECT_FALSE(is_null_reply("*0\r\n"));
}

}  // namespace
}  // namespace hmdb::core
