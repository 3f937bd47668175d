// tests/core/sliced_write_test.cc — big writes applied in slices across loop turns
// (hmdb::ApplyProducer; docs/architecture.md, "Big writes"), through the replica core with kv
// and a real consensus core: while a SUNIONSTORE is half applied, other sessions' reads are
// answered from the state before it, a later write is logged but neither applied nor
// answered, and the entry does not count as applied; the last slice finishes it (its reply,
// then the writes behind it). A WATCH on its destination fails the EXEC; a client that goes
// away does not stop it (it is a committed entry); two in one entry finish in order; one
// never finishes while a sliced reply still reads the state it would change; inside EXEC and
// in recovery it is applied whole. In a cluster a read-index read that arrives while it is
// half applied waits for its last slice (its entry is committed).
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "core/replica.h"
#include "hmdb/app.h"
#include "kv/kv.h"
#include "replica_harness.h"

namespace hmdb::core {
namespace {

using KvNode = TestNode<AppHost<kv::Kv>>;

constexpr size_t kMembers = 20000;  // per set: a SUNIONSTORE of two walks 40,000, five slices

// SADD key member-<from> .. member-<to - 1>, applied.
void fill(KvNode& n, std::string_view key, size_t from, size_t to) {
  std::vector<std::string> words = {"SADD", std::string(key)};
  for (size_t i = from; i < to; i++) words.push_back("member-" + std::to_string(i));
  std::vector<std::string_view> argv(words.begin(), words.end());
  n.replica->command(n.s(9), Args(argv.data(), argv.size()));
  n.replica->end_turn();
  EXPECT_EQ(n.out(9), ":" + std::to_string(to - from) + "\r\n");
}

// Sets a (0..kMembers) and b (kMembers/2 .. kMembers*3/2), and dst holding "old".
void fill_sets(KvNode& n) {
  fill(n, "a", 0, kMembers);
  fill(n, "b", kMembers / 2, kMembers * 3 / 2);
  n.send({{"SADD", "dst", "old"}}, 9);
  n.replica->end_turn();
  EXPECT_EQ(n.out(9), ":1\r\n");
}
const std::string kUnionReply = ":" + std::to_string(kMembers * 3 / 2) + "\r\n";

// Turns until no write is half applied (at most 100).
int turns_until_applied(KvNode& n) {
  int turns = 0;
  for (; n.replica->applying_index() != 0 && turns < 100; turns++) n.replica->end_turn();
  return turns;
}

TEST(SlicedWrite, HoldsTheApplyServesReadsOfTheOldStateAndFinishesInTheLastSlice) {
  KvNode n;
  fill_sets(n);
  const raft::Index applied_before = n.replica->applied_index();
  n.send({{"SUNIONSTORE", "dst", "a", "b"}}, 1);
  n.replica->end_turn();
  ASSERT_NE(n.replica->applying_index(), 0u) << "a write of 30,000 members is applied in slices";
  EXPECT_EQ(n.replica->applying_index(), applied_before + 1);
  EXPECT_EQ(n.replica->applied_index(), applied_before) << "its entry is not applied until the write is";
  EXPECT_EQ(n.replica->stats().sliced_writes, 1u);
  n.send({{"SADD", "c", "x"}}, 2);  // logged, not applied until the SUNIONSTORE is
  int turns = 0;
  for (; n.replica->applying_index() != 0 && turns < 100; turns++) {
    n.send({{"SMEMBERS", "dst"}, {"EXISTS", "c"}}, 3);
    EXPECT_EQ(n.out(3), "*1\r\n$3\r\nold\r\n:0\r\n") << "a read between slices saw the write or the SADD (turn " << turns
                                                    << ")";
    EXPECT_EQ(n.out(1), "") << "answered before it was applied (turn " << turns << ")";
    EXPECT_EQ(n.out(2), "") << "the SADD applied while the SUNIONSTORE was half applied (turn " << turns << ")";
    n.replica->end_turn();
  }
  EXPECT_EQ(n.replica->applying_index(), 0u);
  EXPECT_EQ(n.out(1), kUnionReply);
  EXPECT_EQ(n.out(2), ":1\r\n") << "the SADD behind it applies in the turn it finishes";
  EXPECT_EQ(n.replica->applied_index(), applied_before + 2);
  // 40,000 members walked, kWriteSliceElements a slice: the first made in the apply's turn.
  const uint64_t slices = (2 * kMembers + kWriteSliceElements - 1) / kWriteSliceElements;
  EXPECT_EQ(n.replica->stats().write_slices, slices);
  EXPECT_EQ(static_cast<uint64_t>(turns) + 1, slices);
  n.send({{"SCARD", "dst"}, {"SISMEMBER", "dst", "old"}, {"SISMEMBER", "dst", "member-29999"}}, 3);
  EXPECT_EQ(n.out(3), kUnionReply + ":0\r\n:1\r\n");
}

// Node 1 of three, voter 2 answering every vote, append and heartbeat at once
// (answer_as_voter_2): reads take a read index (Config::lease_reads is off).
struct ThreeNodeKv {
  KvNode n{{1, 2, 3}};
  ThreeNodeKv() { n.host.keep_messages = true; }
  // One loop turn: the replica's, then voter 2's answers to what it sent.
  void turn() {
    n.replica->end_turn();
    answer_as_voter_2(n);
    n.replica->drive();
  }
};

// In a cluster a read waits for its read index to be applied: a read that arrives while a
// committed write is half applied names that write's entry (it is committed), so it waits
// for the write's last slice and sees the new state, never the old one. (A follower may
// have applied the write already and answered a read with the new state: the leader must
// not answer one with the old state after that.)
TEST(SlicedWrite, AReadIndexReadWaitsForTheHalfAppliedWrite) {
  ThreeNodeKv c;
  KvNode& n = c.n;
  for (int i = 0; i < 100 && !n.replica->leader(); i++) {
    n.raft->tick();
    c.turn();
  }
  ASSERT_TRUE(n.replica->leader());
  auto until_answered = [&](uint64_t session) {
    std::string got;
    for (int i = 0; i < 100 && (got = n.out(session)).empty(); i++) c.turn();
    return got;
  };
  for (auto [key, from, to] : {std::tuple{"a", size_t{0}, kMembers}, std::tuple{"b", kMembers / 2, kMembers * 3 / 2}}) {
    std::vector<std::string> words = {"SADD", key};
    for (size_t i = from; i < to; i++) words.push_back("member-" + std::to_string(i));
    std::vector<std::string_view> argv(words.begin(), words.end());
    n.replica->command(n.s(9), Args(argv.data(), argv.size()));
    ASSERT_EQ(until_answered(9), ":" + std::to_string(to - from) + "\r\n");
  }
  n.send({{"SADD", "dst", "old"}}, 9);
  ASSERT_EQ(until_answered(9), ":1\r\n");

  n.send({{"SUNIONSTORE", "dst", "a", "b"}}, 1);
  for (int i = 0; i < 100 && n.replica->applying_index() == 0; i++) c.turn();
  ASSERT_NE(n.replica->applying_index(), 0u) << "committed and half applied";
  n.send({{"SCARD", "dst"}}, 3);
  int turns_waited = 0;
  std::string read;
  for (; n.replica->applying_index() != 0 && turns_waited < 100; turns_waited++) {
    c.turn();
    read += n.out(3);
    if (n.replica->applying_index() != 0) {
      EXPECT_EQ(read, "") << "the read was answered while the write it must see was half applied (turn " << turns_waited
                          << ")";
    }
  }
  EXPECT_GT(turns_waited, 1) << "the write took several slices after the read arrived";
  read += until_answered(3);
  EXPECT_EQ(read, kUnionReply) << "the read saw the state before the committed write";
  EXPECT_EQ(until_answered(1), kUnionReply);
}

TEST(SlicedWrite, AWatchOnItsDestinationFailsTheExec) {
  KvNode n;
  fill_sets(n);
  n.send({{"WATCH", "dst"}}, 5);
  EXPECT_EQ(n.out(5), "+OK\r\n");
  n.send({{"SUNIONSTORE", "dst", "a", "b"}}, 1);
  n.replica->end_turn();
  ASSERT_NE(n.replica->applying_index(), 0u);
  n.send({{"MULTI"}, {"SET", "dst", "mine"}, {"EXEC"}}, 5);
  n.replica->end_turn();
  turns_until_applied(n);
  n.replica->end_turn();
  EXPECT_EQ(n.out(5), "+OK\r\n+QUEUED\r\n*-1\r\n") << "dst changed after WATCH: the EXEC must fail";
  n.send({{"SCARD", "dst"}}, 3);
  EXPECT_EQ(n.out(3), kUnionReply);
}

TEST(SlicedWrite, AClientThatGoesAwayDoesNotStopIt) {
  KvNode n;
  fill_sets(n);
  n.send({{"SUNIONSTORE", "dst", "a", "b"}}, 4);
  n.replica->end_turn();
  ASSERT_NE(n.replica->applying_index(), 0u);
  n.host.sessions.erase(4);  // its connection closed: the write is a committed entry all the same
  n.send({{"SADD", "c", "x"}}, 2);
  EXPECT_GT(turns_until_applied(n), 0);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), ":1\r\n");
  n.send({{"SCARD", "dst"}}, 3);
  EXPECT_EQ(n.out(3), kUnionReply);
}

TEST(SlicedWrite, TwoInOneEntryFinishInOrderWithTheWritesBetween) {
  KvNode n;
  fill_sets(n);
  // One session's pipeline: one batch, one entry, two big writes with a small one between.
  n.send({{"SUNIONSTORE", "u", "a", "b"}, {"SADD", "c", "x"}, {"SDIFFSTORE", "d", "a", "b"}, {"SCARD", "u"}}, 1);
  n.replica->end_turn();
  ASSERT_NE(n.replica->applying_index(), 0u);
  const raft::Index index = n.replica->applying_index();
  std::string got = n.out(1);
  for (int turns = 0; n.replica->applying_index() != 0 && turns < 100; turns++) {
    EXPECT_EQ(n.replica->applying_index(), index) << "one entry";
    n.replica->end_turn();
    got += n.out(1);
  }
  EXPECT_EQ(got, kUnionReply + ":1\r\n:" + std::to_string(kMembers / 2) + "\r\n" + kUnionReply);
  EXPECT_EQ(n.replica->stats().sliced_writes, 2u);
  EXPECT_EQ(n.replica->applied_index(), index);
}

TEST(SlicedWrite, ItWaitsForASlicedReplyThatReadsTheStateItChanges) {
  KvNode n;
  fill_sets(n);
  fill(n, "big", 0, 6 * kSliceElements);  // its SMEMBERS: six slices
  n.send({{"MULTI"}, {"SMEMBERS", "big"}, {"EXEC"}}, 9);
  n.replica->end_turn();
  const std::string head = "+OK\r\n+QUEUED\r\n*1\r\n";
  const std::string whole = n.out(9).substr(head.size());
  fill(n, "small", 0, kWriteSliceElements);
  // Half applied first (computed in four slices), then a sliced read of the key it replaces.
  n.send({{"SUNIONSTORE", "big", "a", "small"}}, 1);
  n.replica->end_turn();
  ASSERT_NE(n.replica->applying_index(), 0u);
  n.send({{"SMEMBERS", "big"}}, 3);
  ASSERT_EQ(n.replica->producing(), 1u);
  std::string got;
  for (int turns = 0; (n.replica->producing() != 0 || n.replica->applying_index() != 0) && turns < 100; turns++) {
    n.replica->end_turn();
    got += n.out(3);
    if (n.replica->producing() != 0) {
      EXPECT_EQ(n.out(1), "") << "the write finished under a sliced reply of its key";
    }
  }
  EXPECT_EQ(got, whole) << "the sliced SMEMBERS saw the write";
  n.replica->end_turn();
  EXPECT_EQ(n.out(1), ":" + std::to_string(kMembers) + "\r\n");
}

TEST(SlicedWrite, InsideExecAndInRecoveryItIsWhole) {
  KvNode n;
  fill_sets(n);
  n.send({{"MULTI"}, {"SUNIONSTORE", "dst", "a", "b"}, {"EXEC"}}, 1);
  n.replica->end_turn();
  EXPECT_EQ(n.replica->applying_index(), 0u);
  EXPECT_EQ(n.out(1), "+OK\r\n+QUEUED\r\n*1\r\n" + kUnionReply);
  n.replica->set_writes_whole(true);
  n.send({{"SINTERSTORE", "dst", "a", "b"}}, 1);
  n.replica->end_turn();
  EXPECT_EQ(n.replica->applying_index(), 0u);
  EXPECT_EQ(n.out(1), ":" + std::to_string(kMembers / 2) + "\r\n");
  EXPECT_EQ(n.replica->stats().sliced_writes, 0u);
}

}  // namespace
}  // namespace hmdb::core
