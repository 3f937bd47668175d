// tests/core/pubsub_test.cc — live updates (core/pubsub.h) through the replica core, with a
// real consensus core and the simulator's register app: PUBLISH is a logged write whose
// message reaches subscribers only once its entry is applied; Redis' frames in RESP2 and
// RESP3; a subscription's confirmation before its messages; what a RESP2 subscriber may send;
// positions: every message of a positioned subscription carries (index-ordinal, term), a
// resume from any delivered position gets exactly the messages after it (catch-up from the
// retained events, then live), a position older than the retained events is refused naming
// the oldest, a slow subscriber ends with the last position it was given, a catch-up that
// falls behind retention ends too. Plus Redis' glob and the position syntax.
#include "core/pubsub.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/replica.h"
#include "net/resp_reply.h"
#include "replica_harness.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using Node = TestNode<sim::RegisterHost>;

// Every RESP2 value in `bytes`, in order.
std::vector<net::RespReply> frames(const std::string& bytes) {
  std::vector<net::RespReply> out;
  std::string_view rest = bytes;
  while (!rest.empty()) {
    net::RespReply r;
    const int64_t used = net::decode_reply(rest, &r);
    EXPECT_GT(used, 0) << "not RESP2: " << rest;
    if (used <= 0) break;
    out.push_back(std::move(r));
    rest.remove_prefix(static_cast<size_t>(used));
  }
  return out;
}

// The payloads of the messages in `bytes` (frames that are "message" or "pmessage").
std::vector<std::string> payloads(const std::string& bytes) {
  std::vector<std::string> out;
  for (const auto& f : frames(bytes)) {
    if (f.type != '*' || f.elements.empty()) continue;
    if (f.elements[0].text == "message") out.push_back(f.elements[2].text);
    if (f.elements[0].text == "pmessage") out.push_back(f.elements[3].text);
  }
  return out;
}

// What session `id` has ready once finished replies moved out (a barrier's reply waits in its
// slot until the replica drains, as at the end of a server's loop turn), taken.
std::string out(Node& n, uint64_t id = 1) {
  n.replica->drain();
  return n.out(id);
}

std::string publish_n(Node& n, int count, const std::string& channel, const std::string& prefix, uint64_t session = 1) {
  std::vector<std::string> words;
  for (int i = 0; i < count; i++) {
    std::string m = prefix + std::to_string(i);
    const std::vector<std::string_view> argv = {"PUBLISH", channel, m};
    n.replica->command(n.s(session), Args(argv.data(), argv.size()));
  }
  n.replica->end_turn();
  return out(n, session);
}

TEST(PubSub, PublishIsALoggedWriteAndItsMessageLeavesOnlyOnceApplied) {
  Node n;
  n.send({{"SUBSCRIBE", "news"}}, 2);
  EXPECT_EQ(out(n, 2), "*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
  const uint64_t batches = n.replica->stats().batches;
  n.send({{"SET", "a", "1"}, {"PUBLISH", "news", "hello"}, {"PUBLISH", "other", "x"}});
  EXPECT_EQ(out(n, 2), "") << "nothing is delivered before the entry is applied";
  EXPECT_EQ(out(n, 1), "");
  n.replica->end_turn();
  EXPECT_EQ(n.replica->stats().batches, batches + 1) << "PUBLISH shares the SET's log entry";
  EXPECT_EQ(out(n, 1), "+OK\r\n:1\r\n:0\r\n") << "the reply counts the receivers on this node";
  EXPECT_EQ(out(n, 2), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
  EXPECT_EQ(n.replica->pubsub().stats().events, 2u);
}

TEST(PubSub, PatternsAndChannelsBothDeliverAndCountAsRedisDoes) {
  Node n;
  n.send({{"SUBSCRIBE", "news.a"}, {"PSUBSCRIBE", "news.*"}}, 2);
  n.send({{"RESP3"}, {"PSUBSCRIBE", "n?ws.[ab]"}}, 3);
  out(n, 2);
  EXPECT_EQ(out(n, 3), "+OK\r\n>3\r\n$10\r\npsubscribe\r\n$9\r\nn?ws.[ab]\r\n:1\r\n");
  EXPECT_EQ(publish_n(n, 1, "news.a", "m"), ":3\r\n");
  EXPECT_EQ(out(n, 2),
            "*3\r\n$7\r\nmessage\r\n$6\r\nnews.a\r\n$2\r\nm0\r\n"
            "*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$6\r\nnews.a\r\n$2\r\nm0\r\n");
  EXPECT_EQ(out(n, 3), ">4\r\n$8\r\npmessage\r\n$9\r\nn?ws.[ab]\r\n$6\r\nnews.a\r\n$2\r\nm0\r\n");
  n.send({{"PUBSUB", "NUMSUB", "news.a", "news.b"}, {"PUBSUB", "NUMPAT"}, {"PUBSUB", "CHANNELS"}});
  EXPECT_EQ(out(n), "*4\r\n$6\r\nnews.a\r\n:1\r\n$6\r\nnews.b\r\n:0\r\n:2\r\n*1\r\n$6\r\nnews.a\r\n");
}

// The empty pattern is a pattern (it matches the empty channel, as in Redis): its messages are
// pmessages, live and caught up (found by subscription_fuzz: they were sent as plain messages
// for a channel never subscribed; fuzz/corpus/subscription_fuzz/empty-pattern-message).
TEST(PubSub, TheEmptyPatternDeliversPmessages) {
  Node n;
  n.send({{"PSUBSCRIBE", ""}}, 2);
  n.send({{"HMDB.PSUBSCRIBE", "0", ""}}, 3);
  EXPECT_EQ(out(n, 2), "*3\r\n$10\r\npsubscribe\r\n$0\r\n\r\n:1\r\n");
  out(n, 3);
  EXPECT_EQ(publish_n(n, 1, "", "m"), ":2\r\n");
  EXPECT_EQ(out(n, 2), "*4\r\n$8\r\npmessage\r\n$0\r\n\r\n$0\r\n\r\n$2\r\nm0\r\n");
  EXPECT_EQ(out(n, 3), "*6\r\n$8\r\npmessage\r\n$0\r\n\r\n$0\r\n\r\n$2\r\nm0\r\n$3\r\n2-0\r\n:1\r\n");
  n.send({{"HMDB.PSUBSCRIBE", "1", ""}}, 4);  // caught up from the retained events
  n.replica->end_turn();
  EXPECT_EQ(out(n, 4), "*4\r\n$10\r\npsubscribe\r\n$0\r\n\r\n:1\r\n$1\r\n1\r\n"
                       "*6\r\n$8\r\npmessage\r\n$0\r\n\r\n$0\r\n\r\n$2\r\nm0\r\n$3\r\n2-0\r\n:1\r\n");
}

// A confirmation leaves before any message of its subscription, and messages leave after the
// replies of everything the subscriber sent before, even when those are still pending.
TEST(PubSub, MessagesFollowTheRepliesOfEverythingSentBefore) {
  Node n;
  n.send({{"RESP3"}, {"SET", "a", "1"}, {"SUBSCRIBE", "c"}, {"PUBLISH", "c", "self"}});
  EXPECT_EQ(out(n), "+OK\r\n");
  n.replica->end_turn();  // SET applied; SUBSCRIBE (a barrier) runs; PUBLISH joins the next batch
  EXPECT_EQ(out(n), "+OK\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
  n.replica->end_turn();
  EXPECT_EQ(out(n), ":1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$4\r\nself\r\n");
  // A message for a session with a reply pending waits behind that reply.
  n.send({{"SET", "b", "1"}});
  publish_n(n, 1, "c", "other", 2);
  EXPECT_EQ(out(n), "+OK\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$6\r\nother0\r\n");
}

// A command still waiting its turn (an UNSUBSCRIBE behind the session's own write) has not
// run when a message is emitted: the message leaves before its confirmation, never after it
// for a channel the client was told it left (found by subscription_fuzz:
// fuzz/corpus/subscription_fuzz/late-message-after-unsubscribe).
TEST(PubSub, AMessageLeavesBeforeTheReplyOfACommandThatHasNotRunYet) {
  Node n;
  n.send({{"RESP3"}, {"SUBSCRIBE", "c"}});
  EXPECT_EQ(out(n), "+OK\r\n>3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n");
  n.send({{"SET", "a", "1"}, {"UNSUBSCRIBE", "c"}, {"HMDB.SUBSCRIBE", "$", "d"}});  // both wait for the SET
  n.send({{"PUBLISH", "c", "x"}}, 2);  // in the SET's entry, after it
  n.replica->end_turn();
  EXPECT_EQ(out(n), "+OK\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"
                    ">3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n"
                    ">4\r\n$9\r\nsubscribe\r\n$1\r\nd\r\n:1\r\n$1\r\n2\r\n");  // after entry 2
}

// The same for a command that runs when the session's write is applied (a query or a local
// shell command such as RESET or PING behind it): the write's own message (here its
// PUBLISH's; with kv, its keyspace notification) is emitted before that command runs, so it
// leaves before its reply (found by subscription_fuzz: a RESET behind a SET answered +RESET,
// then the SET's notification; fuzz/corpus/subscription_fuzz/message-after-reset).
TEST(PubSub, AMessageLeavesBeforeTheReplyOfACommandWaitingForTheWrite) {
  Node n;
  n.send({{"RESP3"}, {"SUBSCRIBE", "c"}});
  out(n);
  n.send({{"PUBLISH", "c", "x"}, {"PING"}});
  n.replica->end_turn();
  EXPECT_EQ(out(n), ":1\r\n>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n+PONG\r\n");
}

TEST(PubSub, ARESP2SubscriberMaySendOnlyWhatRedisAllows) {
  Node n;
  n.send({{"SUBSCRIBE", "c"}, {"GET", "a"}, {"SET", "a", "1"}, {"MULTI"}, {"NOSUCH"}, {"PING"}, {"PUBSUB", "NUMPAT"}});
  const std::string cant = " only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n";
  EXPECT_EQ(out(n), "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n"
                     "-ERR Can't execute 'get':" + cant + "-ERR Can't execute 'set':" + cant +
                     "-ERR Can't execute 'multi':" + cant +
                     "-ERR unknown command 'NOSUCH', with args beginning with: \r\n"
                     "+PONG\r\n-ERR Can't execute 'pubsub':" + cant);
  n.send({{"UNSUBSCRIBE"}, {"GET", "a"}});
  EXPECT_EQ(out(n), "*3\r\n$11\r\nunsubscribe\r\n$1\r\nc\r\n:0\r\n$-1\r\n") << "no subscription left: any command";
}

// Behind a held command a RESP2 session's later commands are checked once SUBSCRIBE ran.
TEST(PubSub, TheSubscriberRuleAppliesInSessionOrder) {
  Node n;
  n.send({{"SET", "a", "1"}, {"SUBSCRIBE", "c"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(out(n), "+OK\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n-ERR Can't execute 'get': only (P|S)SUBSCRIBE "
                     "/ (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
}

TEST(PubSub, AFollowerForwardsPublishAsAWriteAndServesSubscriptionsItself) {
  Node n({1, 2, 3}, /*forward=*/true);
  ASSERT_FALSE(n.replica->leader());
  n.send({{"SUBSCRIBE", "c"}, {"PUBLISH", "c", "x"}}, 2);
  EXPECT_EQ(out(n, 2), "*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n-ERR Can't execute 'publish': only (P|S)SUBSCRIBE / "
                       "(P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
  ASSERT_EQ(n.host.forwarded.size(), 0u) << "a RESP2 subscriber may not PUBLISH";
  n.send({{"PUBLISH", "c", "x"}});
  ASSERT_EQ(n.host.forwarded.size(), 1u);
  EXPECT_TRUE(n.host.forwarded[0].write);
  EXPECT_EQ(n.host.forwarded[0].argv, (std::vector<std::string>{"PUBLISH", "c", "x"}));
}

TEST(PubSub, ATransactionPublishesInItsPlace) {
  Node n;
  n.send({{"SUBSCRIBE", "c"}}, 2);
  out(n, 2);
  n.send({{"MULTI"}, {"PUBLISH", "c", "1"}, {"INCR", "k"}, {"PUBLISH", "c"}, {"EXEC"}});
  n.send({{"MULTI"}, {"PUBLISH", "c", "1"}, {"INCR", "k"}, {"PUBLISH", "c", "2"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(out(n), "+OK\r\n+QUEUED\r\n+QUEUED\r\n-ERR wrong number of arguments for 'publish' command\r\n"
                     "-EXECABORT Transaction discarded because of previous errors.\r\n"
                     "+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n:1\r\n:1\r\n:1\r\n");
  EXPECT_EQ(payloads(out(n, 2)), (std::vector<std::string>{"1", "2"}));
}

// The request table is the same on every node; a PUBLISH's reply is not (its receivers on the
// node that applied it), so a request id cannot tag one.
TEST(PubSub, ARequestIdCannotTagPublish) {
  Node n;
  n.send({{"HMDB.REQ", "r1", "PUBLISH", "c", "x"}, {"MULTI"}, {"PUBLISH", "c", "y"}, {"HMDB.REQ", "r2", "EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(out(n), "-ERR HMDB.REQ cannot tag PUBLISH: its reply differs from node to node\r\n+OK\r\n+QUEUED\r\n"
                    "-EXECABORT Transaction discarded because of: a transaction with a request id may not PUBLISH "
                    "(its reply differs from node to node)\r\n");
  EXPECT_EQ(n.replica->pubsub().stats().events, 0u);
}

TEST(PubSub, ASlowSubscriberEndsWithTheLastPositionItWasGiven) {
  PubSub::Options events;
  events.subscriber_output_bytes = 4096;
  Node n({1}, false, events);
  n.send({{"HMDB.SUBSCRIBE", "$", "c"}}, 2);
  out(n, 2);
  // The harness's sessions never send: out() is what is unsent. 100-byte messages: the 4 KiB
  // bound ends the subscription part way.
  const std::string big(100, 'x');
  for (int i = 0; i < 100; i++) n.send({{"PUBLISH", "c", big}});
  n.replica->end_turn();
  const std::string got = out(n, 2);
  const std::vector<net::RespReply> f = frames(got);
  ASSERT_GE(f.size(), 2u);
  ASSERT_TRUE(f.back().is_error());
  const net::RespReply& last = f[f.size() - 2];
  ASSERT_EQ(last.elements.size(), 5u) << "a positioned message: message, channel, payload, position, term";
  EXPECT_EQ(f.back().text.substr(0, f.back().text.find(' ', 19)), "SUBSCRIPTIONENDED " + last.elements[3].text);
  EXPECT_LE(got.size() - f.back().text.size(), 4096u + 200u);
  EXPECT_EQ(n.host.closed_after_replies, (std::vector<uint64_t>{2}));
  EXPECT_EQ(n.replica->pubsub().subscribers(), 0u);
  EXPECT_EQ(n.replica->pubsub().stats().ended_slow, 1u);
  out(n);
  n.send({{"PUBSUB", "NUMSUB", "c"}});
  EXPECT_EQ(out(n), "*2\r\n$1\r\nc\r\n:0\r\n");
}

// The core of resuming: whatever position a subscriber received last, a new subscription from
// it (on another session: another connection, or another node) gets exactly the messages after
// it, first from the retained events (catching up), then live.
TEST(PubSub, AResumeFromAnyDeliveredPositionGetsExactlyWhatFollows) {
  Node n;
  n.send({{"HMDB.SUBSCRIBE", "$", "c"}}, 2);
  const std::string confirm = out(n, 2);
  ASSERT_EQ(frames(confirm).size(), 1u);
  // Three entries, with events on two channels and a write between.
  publish_n(n, 3, "c", "a");
  n.send({{"SET", "k", "1"}, {"PUBLISH", "d", "not-c"}, {"PUBLISH", "c", "b0"}});
  n.replica->end_turn();
  out(n);
  publish_n(n, 2, "c", "c");
  std::vector<std::string> positions, all;
  for (const auto& f : frames(out(n, 2))) {
    ASSERT_EQ(f.elements.size(), 5u);
    all.push_back(f.elements[2].text);
    positions.push_back(f.elements[3].text);
    EXPECT_EQ(f.elements[4].integer, static_cast<int64_t>(n.raft->status().term));
  }
  ASSERT_EQ(all, (std::vector<std::string>{"a0", "a1", "a2", "b0", "c0", "c1"}));
  for (size_t k = 0; k < positions.size(); k++) {
    const uint64_t session = 10 + k;
    n.send({{"HMDB.SUBSCRIBE", positions[k], "c"}}, session);
    n.replica->end_turn();  // the catch-up is pumped at the end of a turn
    const std::vector<std::string> got = payloads(out(n, session));
    EXPECT_EQ(got, std::vector<std::string>(all.begin() + static_cast<long>(k) + 1, all.end()))
        << "resumed after " << positions[k];
    EXPECT_EQ(n.replica->pubsub().catching_up(), 0u) << "it reached the newest event: live";
  }
  // They are live now: the next message reaches every one of them once.
  publish_n(n, 1, "c", "live");
  for (size_t k = 0; k < positions.size(); k++) EXPECT_EQ(payloads(out(n, 10 + k)), (std::vector<std::string>{"live0"}));
  // A bare index resumes after all of that entry's events.
  EventPosition first;
  ASSERT_TRUE(parse_position(positions[0], &first));
  n.send({{"HMDB.SUBSCRIBE", std::to_string(first.index), "c"}}, 30);
  n.replica->end_turn();
  EXPECT_EQ(payloads(out(n, 30)), (std::vector<std::string>{"b0", "c0", "c1", "live0"}));
}

// --events-retain-bytes 0 retains nothing: only $ resumes, and a resume from before the
// newest event is refused rather than answered with nothing (found by subscription_fuzz:
// fuzz/corpus/subscription_fuzz/retain-zero-resume).
TEST(PubSub, RetainingNothingRefusesAResumeFromThePast) {
  PubSub::Options events;
  events.retain_bytes = 0;
  Node n({1}, false, events);
  n.send({{"HMDB.SUBSCRIBE", "$", "c"}}, 2);
  const std::string start = frames(out(n, 2))[0].elements[3].text;
  publish_n(n, 2, "c", "m");
  const std::vector<net::RespReply> got = frames(out(n, 2));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(n.replica->pubsub().retained_events(), 0u);
  EXPECT_EQ(format_position(n.replica->pubsub().floor()), got[1].elements[3].text) << "the newest event";
  n.send({{"HMDB.SUBSCRIBE", start, "c"}}, 3);
  n.send({{"HMDB.SUBSCRIBE", got[0].elements[3].text, "c"}}, 4);
  for (uint64_t session : {3, 4}) {
    const std::string refused = out(n, session);
    EXPECT_EQ(refused.substr(0, refused.find(" position")), "-OLDPOSITION " + got[1].elements[3].text);
  }
  n.send({{"HMDB.SUBSCRIBE", got[1].elements[3].text, "c"}}, 5);
  publish_n(n, 1, "c", "after");
  EXPECT_EQ(payloads(out(n, 5)), (std::vector<std::string>{"after0"})) << "the newest position resumes";
}

TEST(PubSub, APositionOlderThanTheRetainedEventsIsRefusedNamingTheOldest) {
  PubSub::Options events;
  events.retain_bytes = 2000;  // ~20 events of 100 bytes
  Node n({1}, false, events);
  n.send({{"HMDB.SUBSCRIBE", "$", "c"}}, 2);
  const std::string start = frames(out(n, 2))[0].elements[3].text;
  for (int i = 0; i < 10; i++) publish_n(n, 5, "c", "m");  // ten entries of five
  out(n, 2);
  const EventPosition floor = n.replica->pubsub().floor();
  ASSERT_GT(floor.index, 0u);
  n.send({{"HMDB.SUBSCRIBE", start, "c"}}, 3);
  const std::string refused = out(n, 3);
  EXPECT_EQ(refused.substr(0, refused.find(" position")), "-OLDPOSITION " + format_position(floor));
  EXPECT_EQ(n.replica->pubsub().stats().resumes_refused, 1u);
  // The oldest position named is accepted, and gives every retained event after it.
  n.send({{"HMDB.SUBSCRIBE", format_position(floor), "c"}}, 4);
  n.replica->end_turn();
  const std::vector<net::RespReply> got = frames(out(n, 4));
  ASSERT_GT(got.size(), 1u);
  EXPECT_EQ(got.size() - 1, n.replica->pubsub().retained_events());
  EXPECT_EQ(n.replica->pubsub().stats().resumes, 1u);
  // Malformed positions.
  n.send({{"HMDB.SUBSCRIBE", "x", "c"}, {"HMDB.SUBSCRIBE", "1-", "c"}, {"HMDB.SUBSCRIBE", "-1", "c"}}, 5);
  EXPECT_EQ(frames(out(n, 5)).size(), 3u);
}

TEST(PubSub, ACatchUpThatFallsBehindRetentionEnds) {
  PubSub::Options events;
  events.retain_bytes = (kCatchUpEventsPerTurn + 5000) * (kRetainedEventOverheadBytes + 6);
  Node n({1}, false, events);
  // Fill retention with events on another channel.
  for (int i = 0; i < 15; i++) publish_n(n, static_cast<int>(kCatchUpEventsPerTurn / 10), "o", "x");
  n.send({{"HMDB.SUBSCRIBE", format_position(n.replica->pubsub().floor()), "c"}}, 2);
  n.replica->end_turn();  // one pump: kCatchUpEventsPerTurn events looked at, none for it
  ASSERT_EQ(n.replica->pubsub().catching_up(), 1u);
  EXPECT_GT(n.replica->pubsub().lag_entries_max(), 0u);
  publish_n(n, static_cast<int>(kCatchUpEventsPerTurn + kCatchUpEventsPerTurn / 5), "o", "y");  // evicts past its cursor
  const std::vector<net::RespReply> f = frames(out(n, 2));
  ASSERT_FALSE(f.empty());
  EXPECT_TRUE(f.back().is_error());
  EXPECT_EQ(f.back().text.substr(0, 18), "SUBSCRIPTIONENDED ");
  EXPECT_EQ(n.replica->pubsub().stats().ended_behind, 1u);
  EXPECT_EQ(n.replica->pubsub().catching_up(), 0u);
}

TEST(PubSub, ConnectionsWithSubscriptionsAddOnlyFromNowAndOfTheirOwnKind) {
  Node n;
  n.send({{"SUBSCRIBE", "a"}, {"HMDB.SUBSCRIBE", "$", "b"}});
  EXPECT_EQ(frames(out(n)).back().text.substr(0, 40), "ERR this connection has plain subscripti");
  n.send({{"HMDB.SUBSCRIBE", "$", "a"}, {"HMDB.SUBSCRIBE", "0", "b"}, {"HMDB.SUBSCRIBE", "$", "b"}, {"SUBSCRIBE", "c"}}, 2);
  const std::vector<net::RespReply> f = frames(out(n, 2));
  ASSERT_EQ(f.size(), 4u);
  EXPECT_TRUE(f[1].is_error());
  EXPECT_EQ(f[2].elements[2].integer, 2);
  EXPECT_EQ(f[3].elements.size(), 4u) << "a positioned connection's confirmations carry the start";
}

TEST(PubSub, ClosingASessionDropsItsSubscriptions) {
  Node n;
  n.send({{"SUBSCRIBE", "a", "b"}, {"PSUBSCRIBE", "x*"}}, 2);
  EXPECT_EQ(n.replica->pubsub().channels(), 2u);
  n.replica->session_closed(n.s(2));
  n.host.sessions.erase(2);
  EXPECT_EQ(n.replica->pubsub().channels(), 0u);
  EXPECT_EQ(n.replica->pubsub().patterns(), 0u);
  EXPECT_EQ(n.replica->pubsub().subscribers(), 0u);
  EXPECT_EQ(publish_n(n, 1, "a", "m"), ":0\r\n");
}

TEST(PubSubPositions, FormatAndParse) {
  EventPosition p;
  ASSERT_TRUE(parse_position("12-3", &p));
  EXPECT_EQ(p, (EventPosition{12, 3}));
  ASSERT_TRUE(parse_position("12", &p));
  EXPECT_EQ(p, (EventPosition{12, EventPosition::kWholeEntry}));
  EXPECT_EQ(format_position({12, 3}), "12-3");
  EXPECT_EQ(format_position({12, EventPosition::kWholeEntry}), "12");
  for (const char* bad : {"", "-", "1-", "-1", "a", "1-a", "1-2-3", "+1", "1 "}) EXPECT_FALSE(parse_position(bad, &p)) << bad;
  EXPECT_LT((EventPosition{12, 3}), (EventPosition{12, EventPosition::kWholeEntry}));
  EXPECT_LT((EventPosition{12, EventPosition::kWholeEntry}), (EventPosition{13, 0}));
}

// Redis' stringmatchlen cases (its tests/unit/keyspace.tcl and pubsub.tcl patterns).
TEST(PubSubGlob, MatchesAsRedis) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  };
  const Case cases[] = {
      {"*", "", false},          {"*", "abc", true},        {"a*", "abc", true},       {"a*c", "abc", true},
      {"a*c", "ab", false},      {"a?c", "abc", true},      {"a?c", "ac", false},      {"[abc]x", "bx", true},
      {"[^abc]x", "bx", false},  {"[^abc]x", "dx", true},   {"[a-c]x", "cx", true},    {"[c-a]x", "bx", true},
      {"[a-c]x", "dx", false},   {"a\\*", "a*", true},      {"a\\*", "ab", false},     {"\\[a]", "[a]", true},
      {"*b*b*b*b*b*", "bbbbb", true}, {"*b*b*b*b*b*", "bbbb", false}, {"ab", "abc", false}, {"abc", "ab", false},
      {"[", "x", false},         {"h*llo", "hello", true},  {"h*llo", "hllo", true},   {"h[ae]llo", "hallo", true},
      {"a\\", "a\\", true},      {"*a", "bbba", true},      {"**a", "a", true},        {"[\\]]", "]", true},
      {"", "", true},            {"?*", "", false},
  };
  for (const Case& c : cases) EXPECT_EQ(glob_match(c.pattern, c.text), c.match) << c.pattern << " ~ " << c.text;
  // No exponential backtracking: this returns at once.
  EXPECT_FALSE(glob_match(std::string(30, '*') + std::string(30, 'a') + "b", std::string(1000, 'a')));
}

TEST(PubSubNotifyFlags, ParseAndFormatAsRedis) {
  uint32_t f = 0;
  ASSERT_TRUE(parse_notify_flags("KEA", &f));
  EXPECT_EQ(format_notify_flags(f), "AKE");
  ASSERT_TRUE(parse_notify_flags("Kg$x", &f));
  EXPECT_EQ(format_notify_flags(f), "g$xK");
  ASSERT_TRUE(parse_notify_flags("", &f));
  EXPECT_EQ(f, 0u);
  EXPECT_FALSE(parse_notify_flags("Q", &f));
  ASSERT_TRUE(parse_notify_flags("Enm", &f));
  EXPECT_EQ(format_notify_flags(f), "nEm");
}

}  // namespace
}  // namespace hmdb::core
