// tests/core/forwarder_test.cc — the forwarder's bookkeeping, its world faked (links are
// lists of what was sent; the test plays the leader's replies): a command waits for a leader
// and gives up after the wait; a link starts with its handshake; one client's commands are in
// flight on one link and of one kind, other clients' interleave; a broken link answers its
// writes "outcome unknown" and sends its queries again; a command that came back not run is
// sent again to the next leader, unless a later one of its client ran; a former leader's link
// drains; a node that leads sends what was never sent to itself; the bounds make it busy.
#include "core/forwarder.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace hmdb::core {
namespace {

struct FakeLinks final : ForwardHost {
  std::map<uint64_t, raft::NodeId> dialed;     // link -> node, every dial
  std::map<uint64_t, std::string> sent;        // link -> bytes sent on it
  std::vector<uint64_t> closed;
  std::map<std::pair<uint64_t, uint64_t>, std::string> answers;  // (session, seq) -> reply
  std::vector<std::string> warnings;
  bool can_dial = true;

  bool open_link(uint64_t link, raft::NodeId node) override {
    if (!can_dial) return false;
    dialed[link] = node;
    return true;
  }
  void send_link(uint64_t link, std::string_view bytes) override { sent[link] += bytes; }
  void close_link(uint64_t link) override { closed.push_back(link); }
  void answer(uint64_t session, uint64_t seq, std::string_view reply) override {
    EXPECT_TRUE(answers.emplace(std::make_pair(session, seq), std::string(reply)).second)
        << "slot " << session << "/" << seq << " answered twice";
  }
  void warn(std::string_view message) override { warnings.emplace_back(message); }

  // What was sent on the link since the last call.
  std::string take(uint64_t link) {
    std::string s = sent[link];
    sent[link].clear();
    return s;
  }
  std::string answer_of(uint64_t session, uint64_t seq) {
    auto it = answers.find({session, seq});
    return it == answers.end() ? "(none)" : it->second;
  }
};

constexpr std::string_view kHandshake = "*3\r\n$7\r\nCLUSTER\r\n$9\r\nFORWARDER\r\n$1\r\n1\r\n";
std::string set(std::string_view k, std::string_view v) {
  return "*3\r\n$3\r\nSET\r\n$" + std::to_string(k.size()) + "\r\n" + std::string(k) + "\r\n$" +
         std::to_string(v.size()) + "\r\n" + std::string(v) + "\r\n";
}
std::string get(std::string_view k) {
  return "*2\r\n$3\r\nGET\r\n$" + std::to_string(k.size()) + "\r\n" + std::string(k) + "\r\n";
}

struct Fixture {
  FakeLinks links;
  Forwarder f{links, Forwarder::Options{1, 2000, 1000, {}, "", ""}};
  uint64_t now = 1000;
  Fixture() { f.set_time(now); }
  void advance(uint64_t ms) {
    now += ms;
    f.set_time(now);
    f.tick();
  }
  void write(uint64_t session, uint64_t seq, std::string_view k, std::string_view v, Protocol p = Protocol::kResp2) {
    std::vector<std::string_view> argv{"SET", k, v};
    f.forward(session, seq, p, true, Args(argv.data(), argv.size()));
  }
  void read(uint64_t session, uint64_t seq, std::string_view k) {
    std::vector<std::string_view> argv{"GET", k};
    f.forward(session, seq, Protocol::kResp2, false, Args(argv.data(), argv.size()));
  }
  // Connects `link` and answers its handshake OK (after HELLO 3's reply, if `hello`): what
  // it sent after the handshake, which goes out alone until it is answered.
  std::string handshake_ok(uint64_t link, std::string_view hello = "") {
    f.link_connected(link);
    EXPECT_EQ(links.take(link), std::string(hello) + std::string(kHandshake)) << "the handshake goes out alone";
    if (!hello.empty()) {
      EXPECT_TRUE(f.link_reply(link, "%1\r\n+proto\r\n:3\r\n"));
    }
    EXPECT_TRUE(f.link_reply(link, "+OK\r\n"));
    return links.take(link);
  }
  // Leader 2 known and link 1 to it connected, its handshake answered.
  uint64_t connected_link(raft::NodeId leader = 2, raft::Term term = 5) {
    f.set_leader(leader, term);
    write(99, 0, "warm", "up");
    const uint64_t link = links.dialed.rbegin()->first;
    f.link_connected(link);
    EXPECT_TRUE(f.link_reply(link, "+OK\r\n"));  // handshake
    EXPECT_TRUE(f.link_reply(link, "+OK\r\n"));  // warm-up
    links.take(link);
    return link;
  }
};

TEST(Forwarder, ACommandWaitsForALeaderAndGivesUpAfterTheWait) {
  Fixture x;
  x.write(7, 0, "a", "1");
  EXPECT_TRUE(x.links.dialed.empty()) << "no leader: nothing to dial";
  EXPECT_FALSE(x.f.idle());
  x.advance(1999);
  EXPECT_EQ(x.links.answer_of(7, 0), "(none)");
  x.advance(1);
  EXPECT_EQ(x.links.answer_of(7, 0), "-CLUSTERDOWN no leader known for 2000 ms; retry\r\n");
  EXPECT_TRUE(x.f.idle());
  EXPECT_EQ(x.f.stats().timed_out, 1u);
}

TEST(Forwarder, ALinkStartsWithItsHandshakeAndRelaysRepliesInOrder) {
  Fixture x;
  x.write(7, 0, "a", "1");
  x.f.set_leader(2, 5);
  ASSERT_EQ(x.links.dialed.size(), 1u);
  const uint64_t link = x.links.dialed.begin()->first;
  EXPECT_EQ(x.links.dialed[link], 2u);
  EXPECT_EQ(x.links.take(link), "") << "nothing is sent before the link is connected";
  x.read(8, 0, "a");
  EXPECT_EQ(x.handshake_ok(link), set("a", "1") + get("a"));
  EXPECT_TRUE(x.links.answers.empty()) << "the handshake's reply is not relayed";
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_TRUE(x.f.link_reply(link, "$1\r\n1\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 0), "+OK\r\n");
  EXPECT_EQ(x.links.answer_of(8, 0), "$1\r\n1\r\n");
  EXPECT_FALSE(x.f.link_reply(link, "+OK\r\n")) << "a reply nobody waits for breaks the protocol";
  EXPECT_TRUE(x.f.idle());
}

// A link whose handshake the leader refuses (another password, a user without `cluster|
// forwarder`, a node too old for CLUSTER FORWARDER) carries no client's command: run there,
// it would run as an ordinary client, without the one-hop mark and under another user. The
// link is closed, its clients are told why at once, the refusal is logged once per node, and
// the next link is dialed after the pause.
TEST(Forwarder, ARefusedHandshakeClosesTheLinkAndItsClientsAreToldWhy) {
  Fixture x;
  x.f.set_leader(2, 5);
  x.write(7, 0, "a", "1");
  const uint64_t link = x.links.dialed.begin()->first;
  x.f.link_connected(link);
  EXPECT_EQ(x.links.take(link), kHandshake) << "the handshake goes out alone";
  EXPECT_TRUE(x.f.link_reply(link, "-NOPERM this user has no permissions to run the 'cluster|forwarder' command\r\n"));
  EXPECT_EQ(x.links.closed, std::vector<uint64_t>{link});
  EXPECT_EQ(x.links.take(link), "") << "no command was sent on the refused link";
  const std::string told =
      "-ERR this node cannot forward to the leader (node 2): it refused this node's link: NOPERM this user has no "
      "permissions to run the 'cluster|forwarder' command\r\n";
  EXPECT_EQ(x.links.answer_of(7, 0), told);
  ASSERT_EQ(x.links.warnings.size(), 1u);
  EXPECT_NE(x.links.warnings[0].find("node 2 refused this node's forwarding link's handshake: -NOPERM"), std::string::npos)
      << x.links.warnings[0];
  EXPECT_EQ(x.f.stats().handshakes_refused, 1u);
  EXPECT_TRUE(x.f.idle());
  // During the redial pause a command is answered at once; after it, a new link is tried.
  x.write(7, 1, "a", "2");
  EXPECT_EQ(x.links.answer_of(7, 1), told);
  EXPECT_EQ(x.links.dialed.size(), 1u);
  x.advance(kForwardRedialPauseMs);
  x.write(7, 2, "a", "3");
  ASSERT_EQ(x.links.dialed.size(), 2u);
  const uint64_t again = x.links.dialed.rbegin()->first;
  x.f.link_connected(again);
  EXPECT_TRUE(x.f.link_reply(again, "-NOPERM this user has no permissions to run the 'cluster|forwarder' command\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 2), told);
  EXPECT_EQ(x.links.warnings.size(), 1u) << "the same refusal is logged once";
  EXPECT_EQ(x.f.stats().handshakes_refused, 2u);
  // The leader accepts the third link (its user was fixed): commands flow again.
  x.advance(kForwardRedialPauseMs);
  x.write(7, 3, "a", "4");
  const uint64_t third = x.links.dialed.rbegin()->first;
  ASSERT_NE(third, again);
  EXPECT_EQ(x.handshake_ok(third), set("a", "4"));
  EXPECT_TRUE(x.f.link_reply(third, "+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 3), "+OK\r\n");
  EXPECT_EQ(x.f.stats().sent, 1u) << "only the command on the accepted link was sent";
}

TEST(Forwarder, AHandshakeRefusedAtAuthSendsNothingMore) {
  FakeLinks links;
  Forwarder f{links, Forwarder::Options{1, 2000, 1000, {}, "wrong", ""}};
  f.set_time(1000);
  f.set_leader(2, 5);
  std::vector<std::string_view> argv{"GET", "a"};
  f.forward(7, 0, Protocol::kResp2, false, Args(argv.data(), argv.size()));
  const uint64_t link = links.dialed.begin()->first;
  f.link_connected(link);
  EXPECT_EQ(links.take(link), "*2\r\n$4\r\nAUTH\r\n$5\r\nwrong\r\n" + std::string(kHandshake));
  EXPECT_TRUE(f.link_reply(link, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"));
  EXPECT_EQ(links.closed, std::vector<uint64_t>{link});
  EXPECT_FALSE(f.link_reply(link, "-NOAUTH Authentication required.\r\n")) << "the closed link takes no more replies";
  EXPECT_TRUE(links.answer_of(7, 0).starts_with("-ERR this node cannot forward to the leader (node 2): it refused"))
      << links.answer_of(7, 0);
  EXPECT_NE(links.answer_of(7, 0).find("WRONGPASS"), std::string::npos);
}

TEST(Forwarder, RESP3CommandsGoOnALinkOfTheirOwnThatSaysHello3) {
  Fixture x;
  const uint64_t resp2 = x.connected_link();
  x.write(7, 0, "a", "1", Protocol::kResp3);
  ASSERT_EQ(x.links.dialed.size(), 2u);
  const uint64_t resp3 = x.links.dialed.rbegin()->first;
  EXPECT_NE(resp3, resp2);
  EXPECT_EQ(x.handshake_ok(resp3, "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n"), set("a", "1"));
}

// One client: pipelined writes go together; its query waits for their replies, and its next
// write for the query's. Another client's commands interleave on the same link meanwhile.
TEST(Forwarder, AClientHasOneKindOfCommandInFlightAtATime) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  x.write(7, 1, "a", "2");
  x.read(7, 2, "a");
  x.write(7, 3, "a", "3");
  x.read(8, 0, "b");
  EXPECT_EQ(x.links.take(link), set("a", "1") + set("a", "2") + get("b"));
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_EQ(x.links.take(link), "") << "the GET waits for the second SET too";
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_EQ(x.links.take(link), get("a"));
  EXPECT_TRUE(x.f.link_reply(link, "$0\r\n\r\n"));  // client 8's GET b
  EXPECT_EQ(x.links.take(link), "") << "the SET waits for the GET before it";
  EXPECT_TRUE(x.f.link_reply(link, "$1\r\n2\r\n"));
  EXPECT_EQ(x.links.take(link), set("a", "3"));
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 2), "$1\r\n2\r\n");
  EXPECT_EQ(x.links.answer_of(8, 0), "$0\r\n\r\n");
  EXPECT_TRUE(x.f.idle());
}

TEST(Forwarder, ABrokenLinkAnswersItsWritesUnknownAndSendsItsQueriesAgain) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  x.read(8, 0, "a");
  x.read(8, 1, "b");
  x.f.link_broken(link);
  EXPECT_EQ(x.links.answer_of(7, 0).substr(0, 26), "-ERR write outcome unknown");
  EXPECT_EQ(x.links.answer_of(8, 0), "(none)");
  EXPECT_EQ(x.f.stats().unknown_outcomes, 1u);
  EXPECT_EQ(x.links.dialed.size(), 1u) << "the same node is not dialed again at once";
  x.advance(kForwardRedialPauseMs);
  ASSERT_EQ(x.links.dialed.size(), 2u);
  const uint64_t again = x.links.dialed.rbegin()->first;
  EXPECT_EQ(x.handshake_ok(again), get("a") + get("b"));
  EXPECT_TRUE(x.f.link_reply(again, "$1\r\n1\r\n"));
  EXPECT_TRUE(x.f.link_reply(again, "$-1\r\n"));
  EXPECT_EQ(x.links.answer_of(8, 0), "$1\r\n1\r\n");
  EXPECT_EQ(x.links.answer_of(8, 1), "$-1\r\n");
  EXPECT_TRUE(x.f.idle());
}

TEST(Forwarder, AQueryIsSentAtMostKForwardSendsMaxTimes) {
  Fixture x;
  uint64_t link = x.connected_link();
  x.read(8, 0, "a");
  for (uint32_t i = 0; i < kForwardSendsMax; i++) {
    ASSERT_EQ(x.links.answer_of(8, 0), "(none)") << "send " << i;
    x.f.link_broken(link);
    x.advance(kForwardRedialPauseMs);
    if (i + 1 == kForwardSendsMax) break;  // answered: nothing to dial for
    link = x.links.dialed.rbegin()->first;
    EXPECT_EQ(x.handshake_ok(link), get("a")) << "send " << i + 2;
  }
  EXPECT_EQ(x.links.answer_of(8, 0), "-ERR the connection to the leader closed before the reply; retry\r\n");
}

// A node that no longer leads answers -MOVED: not run, so sent again once this node knows the
// new leader; the client sees only the new leader's reply.
TEST(Forwarder, ACommandThatCameBackNotRunGoesToTheNextLeader) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  x.write(7, 1, "a", "2");
  EXPECT_TRUE(x.f.link_reply(link, "-MOVED 15495 10.0.0.3:7379\r\n"));
  EXPECT_TRUE(x.f.link_reply(link, "-MOVED 15495 10.0.0.3:7379\r\n"));
  EXPECT_EQ(x.links.take(link), set("a", "1") + set("a", "2"));
  x.f.set_leader(3, 6);
  EXPECT_EQ(x.links.closed, std::vector<uint64_t>{link}) << "nothing in flight on the former leader's link";
  const uint64_t to3 = x.links.dialed.rbegin()->first;
  EXPECT_EQ(x.links.dialed[to3], 3u);
  EXPECT_EQ(x.handshake_ok(to3), set("a", "1") + set("a", "2"));
  EXPECT_TRUE(x.f.link_reply(to3, "+OK\r\n"));
  EXPECT_TRUE(x.f.link_reply(to3, "+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 0), "+OK\r\n");
  EXPECT_EQ(x.links.answer_of(7, 1), "+OK\r\n");
  EXPECT_EQ(x.f.stats().resent, 2u);
}

// The first write came back not run, the second ran (its node led by then): sending the first
// again would apply it after the second, so its client gets the -MOVED.
TEST(Forwarder, ACommandThatCameBackNotRunIsNotSentAgainAfterALaterOneRan) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  x.write(7, 1, "a", "2");
  EXPECT_TRUE(x.f.link_reply(link, "-MOVED 15495 10.0.0.3:7379\r\n"));
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 0), "-MOVED 15495 10.0.0.3:7379\r\n");
  EXPECT_EQ(x.links.answer_of(7, 1), "+OK\r\n");
  x.f.set_leader(3, 6);
  EXPECT_EQ(x.f.stats().resent, 0u);
  EXPECT_TRUE(x.f.idle());
}

// The same leader keeps answering -TRYAGAIN (a transfer that does not end): sent again after
// each pause, at most kForwardSendsMax times, then the client gets the last reply.
TEST(Forwarder, ACommandNotRunBySameLeaderIsRetriedAfterAPauseAFewTimes) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  for (uint32_t i = 1; i <= kForwardSendsMax; i++) {
    EXPECT_EQ(x.links.take(link), set("a", "1")) << "send " << i;
    EXPECT_TRUE(x.f.link_reply(link, "-TRYAGAIN leadership transfer in progress; retry\r\n"));
    x.advance(kForwardRetryPauseMs - 1);
    EXPECT_EQ(x.links.take(link), "") << "resent before the pause";
    x.advance(1);
  }
  EXPECT_EQ(x.links.answer_of(7, 0), "-TRYAGAIN leadership transfer in progress; retry\r\n");
}

// A new leader while a client's writes are in flight on the old one's link: its next command
// waits for them (one link at a time per client); the old link closes once drained, and a
// link that does not drain in time is closed with its writes' outcome unknown.
TEST(Forwarder, AFormerLeadersLinkDrainsBeforeItsClientsMoveOn) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  x.write(8, 0, "b", "1");
  x.f.set_leader(3, 6);
  x.write(7, 1, "a", "2");
  x.write(9, 0, "c", "1");
  const uint64_t to3 = x.links.dialed.rbegin()->first;
  EXPECT_EQ(x.handshake_ok(to3), set("c", "1")) << "client 7 waits for its write on link " << link;
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_EQ(x.links.take(to3), set("a", "2"));
  EXPECT_TRUE(x.links.closed.empty()) << "client 8's write is still in flight there";
  x.advance(999);
  EXPECT_EQ(x.links.answer_of(8, 0), "(none)");
  x.advance(1);
  EXPECT_EQ(x.links.closed, std::vector<uint64_t>{link});
  EXPECT_EQ(x.links.answer_of(8, 0).substr(0, 26), "-ERR write outcome unknown");
}

std::string multi_set_exec(std::string_view k, std::string_view v) {
  return "*1\r\n$5\r\nMULTI\r\n" + set(k, v) + "*1\r\n$4\r\nEXEC\r\n";
}

// A transaction goes out back to back and only EXEC's reply is relayed; if a reply while
// queueing said the node does not lead, nothing ran: it goes to the next leader whole.
TEST(Forwarder, ATransactionTravelsWholeAndOnlyExecsReplyIsRelayed) {
  Fixture x;
  const uint64_t link = x.connected_link();
  const std::vector<std::vector<std::string>> t{{"MULTI"}, {"SET", "a", "1"}, {"EXEC"}};
  x.f.forward_transaction(7, 0, Protocol::kResp2, true, t);
  x.read(8, 0, "a");
  EXPECT_EQ(x.links.take(link), multi_set_exec("a", "1") + get("a"));
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_TRUE(x.f.link_reply(link, "+QUEUED\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 0), "(none)");
  EXPECT_TRUE(x.f.link_reply(link, "*1\r\n+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 0), "*1\r\n+OK\r\n");
  EXPECT_TRUE(x.f.link_reply(link, "$1\r\n1\r\n"));
  EXPECT_EQ(x.links.answer_of(8, 0), "$1\r\n1\r\n");
  x.f.forward_transaction(7, 1, Protocol::kResp2, true, t);
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_TRUE(x.f.link_reply(link, "-MOVED 15495 10.0.0.3:7379\r\n"));
  EXPECT_TRUE(x.f.link_reply(link, "-EXECABORT Transaction discarded because of previous errors.\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 1), "(none)") << "not run: the node had stopped leading";
  x.links.take(link);
  x.f.set_leader(3, 6);
  const uint64_t to3 = x.links.dialed.rbegin()->first;
  EXPECT_EQ(x.handshake_ok(to3), multi_set_exec("a", "1"));
  EXPECT_TRUE(x.f.link_reply(to3, "+OK\r\n"));
  EXPECT_TRUE(x.f.link_reply(to3, "+QUEUED\r\n"));
  EXPECT_TRUE(x.f.link_reply(to3, "*1\r\n+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 1), "*1\r\n+OK\r\n");
  EXPECT_TRUE(x.f.idle());
}

// A transaction refused while queueing by a node that does not lead, every time it is sent:
// its client is told why, in EXECABORT's words, not only that it was discarded.
TEST(Forwarder, ATransactionRefusedWhileQueueingUntilOutOfSendsSaysWhy) {
  Fixture x;
  const uint64_t link = x.connected_link();
  const std::vector<std::vector<std::string>> t{{"MULTI"}, {"SET", "a", "1"}, {"EXEC"}};
  x.f.forward_transaction(7, 0, Protocol::kResp2, true, t);
  for (uint32_t i = 1; i <= kForwardSendsMax; i++) {
    EXPECT_EQ(x.links.take(link), multi_set_exec("a", "1")) << "send " << i;
    EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
    EXPECT_TRUE(x.f.link_reply(link, "-MOVED 15495 10.0.0.3:7379\r\n"));
    EXPECT_TRUE(x.f.link_reply(link, "-EXECABORT Transaction discarded because of previous errors.\r\n"));
    x.advance(kForwardRetryPauseMs);
  }
  EXPECT_EQ(x.links.answer_of(7, 0), "-EXECABORT Transaction discarded because of: MOVED 15495 10.0.0.3:7379\r\n");
  EXPECT_TRUE(x.f.idle());
}

// This node leads now: what it never sent goes on a link to its own client port, like to any
// leader (run again here it would see the session's later HELLO or MULTI).
TEST(Forwarder, WhatWasNeverSentGoesToThisNodeItselfWhenItLeads) {
  Fixture x;
  x.write(7, 0, "a", "1");
  const std::vector<std::vector<std::string>> t{{"MULTI"}, {"SET", "a", "2"}, {"EXEC"}};
  x.f.forward_transaction(7, 1, Protocol::kResp2, true, t);
  x.f.set_leader(1, 6);
  ASSERT_EQ(x.links.dialed.size(), 1u);
  const uint64_t self = x.links.dialed.begin()->first;
  EXPECT_EQ(x.links.dialed[self], 1u) << "node 1 is this node";
  EXPECT_EQ(x.handshake_ok(self), set("a", "1") + multi_set_exec("a", "2"));
  for (const char* r : {"+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"})
    EXPECT_TRUE(x.f.link_reply(self, r));
  EXPECT_EQ(x.links.answer_of(7, 0), "+OK\r\n");
  EXPECT_EQ(x.links.answer_of(7, 1), "*1\r\n+OK\r\n");
  EXPECT_TRUE(x.f.idle());
}

TEST(Forwarder, AnUnreachableLeaderIsRedialedAndTheCommandGivesUpAfterTheWait) {
  Fixture x;
  x.links.can_dial = false;
  x.f.set_leader(2, 5);
  x.write(7, 0, "a", "1");
  x.advance(2000);
  EXPECT_EQ(x.links.answer_of(7, 0),
            "-CLUSTERDOWN the leader (node 2) could not be reached from this node for 2000 ms; retry\r\n");
}

TEST(Forwarder, AClosedClientsCommandsAreDroppedAndItsRepliesDiscarded) {
  Fixture x;
  const uint64_t link = x.connected_link();
  x.write(7, 0, "a", "1");
  x.read(7, 1, "a");
  x.f.session_closed(7);
  EXPECT_EQ(x.f.commands(), 1u) << "the SET in flight is still counted";
  EXPECT_TRUE(x.f.link_reply(link, "+OK\r\n"));
  EXPECT_EQ(x.links.answer_of(7, 0), "(none)");
  EXPECT_EQ(x.links.answer_of(7, 1), "(none)");
  EXPECT_EQ(x.links.take(link), set("a", "1"));
  EXPECT_TRUE(x.f.idle());
}

TEST(Forwarder, TooManyCommandsOrBytesMakeItBusy) {
  Fixture x;
  for (uint64_t i = 0; i + 1 < kForwardCommandsMax; i++) x.write(7, i, "k", "v");
  EXPECT_FALSE(x.f.busy());
  x.write(7, kForwardCommandsMax, "k", "v");
  EXPECT_TRUE(x.f.busy());
  Fixture y;
  const std::string big(kForwardBytesMax / 2, 'x');
  y.write(7, 0, "k", big);
  EXPECT_FALSE(y.f.busy());
  y.write(7, 1, "k", big);
  EXPECT_TRUE(y.f.busy());
  y.advance(2000);
  EXPECT_FALSE(y.f.busy());
}

}  // namespace
}  // namespace hmdb::core
