// tests/core/sliced_reply_test.cc — big replies made in slices across loop turns
// (hmdb::ReplyProducer; docs/architecture.md, "Big replies"), through the replica core with
// kv and a real consensus core: a sliced SMEMBERS is the same bytes as the one made whole
// inside EXEC; while it is in progress other sessions' queries are answered, a write is
// logged but neither applied nor answered, and the session's later replies wait behind it;
// the last slice releases the apply. Inside EXEC, or behind the session's own write, the
// reply is made whole; behind another client's write on a forwarding link it is made into
// memory; a producer whose client is gone is dropped and the apply resumes.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/replica.h"
#include "hmdb/app.h"
#include "kv/kv.h"
#include "replica_harness.h"

namespace hmdb::core {
namespace {

using KvNode = TestNode<AppHost<kv::Kv>>;

constexpr size_t kMembers = 3 * kSliceElements + 100;  // four slices

// A set of kMembers members, and its SMEMBERS as made whole (inside EXEC).
std::string fill_and_whole(KvNode& n) {
  std::vector<std::string> words = {"SADD", "s"};
  for (size_t i = 0; i < kMembers; i++) words.push_back("member-" + std::to_string(i));
  std::vector<std::string_view> argv(words.begin(), words.end());
  n.replica->command(n.s(9), Args(argv.data(), argv.size()));
  n.replica->end_turn();
  EXPECT_EQ(n.out(9), ":" + std::to_string(kMembers) + "\r\n");
  n.send({{"MULTI"}, {"SMEMBERS", "s"}, {"EXEC"}}, 9);
  n.replica->end_turn();
  std::string exec = n.out(9);
  const std::string head = "+OK\r\n+QUEUED\r\n*1\r\n";
  EXPECT_EQ(exec.substr(0, head.size()), head);
  EXPECT_EQ(n.replica->stats().sliced_replies, 0u) << "a query inside EXEC is made whole";
  return exec.substr(head.size());
}

TEST(SlicedReply, HoldsTheApplyServesOthersAndKeepsTheSessionsOrder) {
  KvNode n;
  const std::string whole = fill_and_whole(n);
  const std::string scard = ":" + std::to_string(kMembers) + "\r\n";

  n.send({{"SMEMBERS", "s"}, {"PING"}}, 1);
  EXPECT_EQ(n.replica->producing(), 1u);
  n.send({{"SADD", "s", "new"}}, 2);  // logged, not applied until SMEMBERS is complete
  n.send({{"SCARD", "s"}}, 3);
  EXPECT_EQ(n.out(3), scard) << "another session's query is answered at once";

  std::string got;
  int turns = 0;
  for (; n.replica->producing() > 0 && turns < 100; turns++) {
    EXPECT_EQ(n.out(2), "") << "the SADD answered while SMEMBERS was in progress (turn " << turns << ")";
    n.send({{"SCARD", "s"}}, 3);
    EXPECT_EQ(n.out(3), scard) << "the SADD applied while SMEMBERS was in progress (turn " << turns << ")";
    n.replica->end_turn();
    got += n.out(1);
  }
  EXPECT_EQ(turns, 4) << "one slice of kSliceElements per turn";
  EXPECT_EQ(got, whole + "+PONG\r\n") << "the sliced reply differs from the whole one, or PING overtook it";
  EXPECT_EQ(n.replica->stats().sliced_replies, 1u);
  EXPECT_EQ(n.replica->stats().reply_slices, 4u);
  EXPECT_EQ(n.out(2), ":1\r\n") << "the last slice releases the apply: the SADD is applied in that turn";
  n.send({{"SCARD", "s"}}, 3);
  EXPECT_EQ(n.out(3), ":" + std::to_string(kMembers + 1) + "\r\n");
}

TEST(SlicedReply, TwoInOneSessionLeaveOneAfterTheOther) {
  KvNode n;
  const std::string whole = fill_and_whole(n);
  n.send({{"SMEMBERS", "s"}, {"SCARD", "s"}, {"SMEMBERS", "s"}}, 1);
  EXPECT_EQ(n.replica->producing(), 2u);
  std::string got;
  for (int turns = 0; n.replica->producing() > 0 && turns < 100; turns++) {
    n.replica->end_turn();
    got += n.out(1);
  }
  EXPECT_EQ(got, whole + ":" + std::to_string(kMembers) + "\r\n" + whole);
}

TEST(SlicedReply, BehindTheSessionsOwnWriteItIsMadeWhole) {
  KvNode n;
  const std::string whole = fill_and_whole(n);
  // The query runs inside the apply, right after the SADD: it cannot hold the apply there.
  n.send({{"SADD", "other", "x"}, {"SMEMBERS", "s"}}, 1);
  n.replica->end_turn();
  EXPECT_EQ(n.out(1), ":1\r\n" + whole);
  EXPECT_EQ(n.replica->stats().sliced_replies, 0u);
  EXPECT_EQ(n.replica->producing(), 0u);
}

// Another node's forwarding link carries commands of many clients, routed as if nothing of
// the link were ahead of them: a big read behind another client's write runs at once, yet its
// reply must follow the write's, which waits for the apply the read holds. Its slices are
// made into its slot (buffered) and the write applies once the reply is complete. (Before,
// each waited for the other until the 30 s hold bound; found by the simulator's MGET,
// hmdb-sim --seed 8 --transactions --forward --sliced-reads.)
TEST(SlicedReply, BehindAnotherClientsWriteOnAForwardingLinkItIsBuffered) {
  KvNode n;
  const std::string whole = fill_and_whole(n);
  n.send({{"CLUSTER", "FORWARDER", "2"}}, 7);
  EXPECT_EQ(n.out(7), "+OK\r\n");
  n.send({{"SADD", "other", "x"}, {"SMEMBERS", "s"}}, 7);
  EXPECT_EQ(n.replica->producing(), 1u) << "the read ran at once, before the write was applied";
  std::string got;
  for (int turns = 0; n.replica->producing() > 0 && turns < 100; turns++) {
    n.replica->end_turn();
    got += n.out(7);
  }
  EXPECT_EQ(n.replica->producing(), 0u) << "the read waits for the write ahead of it, which waits for the read";
  n.replica->end_turn();
  got += n.out(7);
  EXPECT_TRUE(got == ":1\r\n" + whole) << "the write's reply first, then the whole SMEMBERS (got " << got.size()
                                        << " bytes: " << got.substr(0, 40) << "...)";
  EXPECT_EQ(n.replica->stats().sliced_replies_buffered, 1u);
  EXPECT_EQ(n.replica->stats().slice_hold_overdue_turns, 0u);
}

TEST(SlicedReply, AClosedSessionsReplyIsDroppedAndTheApplyResumes) {
  KvNode n;
  fill_and_whole(n);
  n.send({{"SMEMBERS", "s"}}, 5);
  EXPECT_EQ(n.replica->producing(), 1u);
  n.send({{"SADD", "s", "new"}}, 2);
  n.host.sessions.erase(5);
  n.replica->end_turn();
  EXPECT_EQ(n.replica->producing(), 0u);
  EXPECT_EQ(n.out(2), ":1\r\n");
}

}  // namespace
}  // namespace hmdb::core
