// tests/core/digest_mark_test.cc — digest marks (core/digest_marks.h): a leader logs one and
// answers its index once applied; every replica that applies the log takes the same digest
// at it, hashed where the mark stands in its entry; a replica whose state was changed behind
// the log's back takes another; only the last kDigestMarksKept marks are kept.
//
// The followers here apply the leader's persisted entries through apply_batch, the call
// Replica::apply_entry makes with its own DigestMarks (the simulator drives whole clusters).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/apply.h"
#include "core/digest_marks.h"
#include "core/state.h"
#include "replica_harness.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using Node = TestNode<sim::RegisterHost>;

// A follower: the app, its request table and its marks, fed the leader's entries in order.
struct Follower {
  sim::RegisterHost app;
  RequestTable requests;
  DigestMarks marks;
  ApplyScratch scratch;
  void apply(const raft::Entry& e) {
    if (e.type != raft::EntryType::kNormal) return;
    const ApplyResult r = apply_batch(app, e.data, e.index, e.schema_version, nullptr, scratch, nullptr, &requests,
                                      nullptr, &marks);
    ASSERT_EQ(r.status, ApplyStatus::kOk) << r.divergence;
  }
  // A write applied here only, as if a bug or a bad disk changed this node's state.
  void change_behind_the_logs_back(std::vector<std::string_view> argv) {
    BatchBuilder b(1);
    b.add(argv);
    const std::string payload = b.finish();
    ASSERT_EQ(apply_batch(app, payload, 0, kFirstSchemaVersion, nullptr, scratch).status, ApplyStatus::kOk);
  }
};

uint64_t parse_integer_reply(const std::string& reply) {
  EXPECT_EQ(reply.front(), ':') << reply;
  EXPECT_EQ(reply.substr(reply.size() - 2), "\r\n") << reply;
  return std::stoull(reply.substr(1, reply.size() - 3));
}

TEST(DigestMark, EveryReplicaTakesTheSameDigestAtAMark) {
  Node leader;
  leader.send({{"SET", "a", "1"}, {"INCR", "b"}});
  leader.replica->end_turn();
  EXPECT_EQ(leader.out(), "+OK\r\n:1\r\n");
  leader.send({{"INCR", "b"}, {"MARK"}});
  for (int turn = 0; turn < 3; turn++) leader.replica->end_turn();  // a barrier waits for the INCR
  const std::string replies = leader.out();
  ASSERT_EQ(replies.substr(0, 4), ":2\r\n") << replies;
  const uint64_t mark = parse_integer_reply(replies.substr(4));
  EXPECT_EQ(mark, leader.replica->applied_index()) << "the mark ends its entry (batch_full)";
  // Writes after the mark do not change what it recorded.
  leader.send({{"SET", "a", "2"}});
  leader.replica->end_turn();
  EXPECT_EQ(leader.out(), "+OK\r\n");

  const DigestMark* at_leader = leader.replica->digest_marks().find(mark);
  ASSERT_NE(at_leader, nullptr);
  EXPECT_EQ(at_leader->index, mark);
  EXPECT_EQ(at_leader->active_version, kFirstSchemaVersion);
  EXPECT_EQ(at_leader->digest.schema_version, kFirstSchemaVersion);
  EXPECT_NE(at_leader->digest, state_digest(leader.app, leader.replica->requests())) << "the state moved on since";

  Follower f1, f2;
  for (const raft::Entry& e : leader.host.persisted) {
    f1.apply(e);
    f2.apply(e);
  }
  for (const Follower* f : {&f1, &f2}) {
    const DigestMark* m = f->marks.find(mark);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->digest, at_leader->digest);
  }
  EXPECT_EQ(state_digest(f1.app, f1.requests), state_digest(leader.app, leader.replica->requests()));
}

TEST(DigestMark, AReplicaChangedBehindTheLogsBackTakesAnotherDigest) {
  Node leader;
  leader.send({{"SET", "a", "1"}, {"SET", "b", "2"}, {"MARK"}});
  for (int turn = 0; turn < 3; turn++) leader.replica->end_turn();
  const std::string replies = leader.out();
  const uint64_t mark = parse_integer_reply(replies.substr(10));
  Follower honest, changed;
  for (const raft::Entry& e : leader.host.persisted) {
    if (e.index == mark) changed.change_behind_the_logs_back({"INCR", "a"});
    honest.apply(e);
    changed.apply(e);
  }
  const DigestMark* at_leader = leader.replica->digest_marks().find(mark);
  ASSERT_NE(at_leader, nullptr);
  ASSERT_NE(honest.marks.find(mark), nullptr);
  ASSERT_NE(changed.marks.find(mark), nullptr);
  EXPECT_EQ(honest.marks.find(mark)->digest, at_leader->digest);
  EXPECT_NE(changed.marks.find(mark)->digest, at_leader->digest) << "the planted change is seen at the mark";
}

TEST(DigestMark, TheDigestIsOfTheStateWhereTheMarkStandsInItsEntry) {
  // The simulator batches a mark with the writes after it: the mark hashes what came before.
  sim::RegisterHost app, before_only;
  RequestTable requests;
  DigestMarks marks;
  ApplyScratch scratch;
  std::vector<std::string_view> set_a = {"SET", "a", "1"}, set_b = {"SET", "b", "2"};
  BatchBuilder b(1);
  b.add(set_a);
  b.add_digest_mark();
  b.add(set_b);
  ASSERT_EQ(apply_batch(app, b.finish(), 5, kFirstSchemaVersion, nullptr, scratch, nullptr, &requests, nullptr, &marks)
                .status,
            ApplyStatus::kOk);
  b.start(1);
  b.add(set_a);
  ASSERT_EQ(apply_batch(before_only, b.finish(), 5, kFirstSchemaVersion, nullptr, scratch).status, ApplyStatus::kOk);
  ASSERT_NE(marks.find(5), nullptr);
  EXPECT_EQ(marks.find(5)->digest, state_digest(before_only, requests));
  EXPECT_NE(marks.find(5)->digest, state_digest(app, requests));
}

// What the server's digest child does, in the test's own thread: the state handed over at
// the mark is hashed, and reported later.
struct DeferringHasher final : MarkHasher {
  bool take = true;
  std::vector<std::pair<uint64_t, StateDigest>> taken;
  bool hash_later(uint64_t index, const StateMachine& app, const RequestTable& requests) override {
    if (!take) return false;
    taken.emplace_back(index, state_digest(app, requests));
    return true;
  }
};

TEST(DigestMark, AHasherTakesTheDigestLaterAndTheMarkIsPendingMeanwhile) {
  sim::RegisterHost app;
  RequestTable requests;
  DigestMarks marks;
  DeferringHasher hasher;
  marks.set_hasher(&hasher);
  ApplyScratch scratch;
  std::vector<std::string_view> set_a = {"SET", "a", "1"}, set_b = {"SET", "b", "2"};
  BatchBuilder b(1);
  b.add(set_a);
  b.add_digest_mark();
  b.add(set_b);
  ASSERT_EQ(apply_batch(app, b.finish(), 5, kFirstSchemaVersion, nullptr, scratch, nullptr, &requests, nullptr, &marks)
                .status,
            ApplyStatus::kOk);
  ASSERT_EQ(hasher.taken.size(), 1u);
  EXPECT_EQ(hasher.taken[0].first, 5u);
  ASSERT_NE(marks.find(5), nullptr);
  EXPECT_TRUE(marks.find(5)->pending);
  marks.finish(5, hasher.taken[0].second);
  EXPECT_FALSE(marks.find(5)->pending);
  EXPECT_EQ(marks.find(5)->digest, hasher.taken[0].second);
  EXPECT_NE(marks.find(5)->digest, state_digest(app, requests)) << "the state at the mark, not after the entry";
  marks.finish(5, StateDigest{1, 1});
  EXPECT_EQ(marks.find(5)->digest, hasher.taken[0].second) << "a digest is reported once";

  b.start(1);
  b.add_digest_mark();
  ASSERT_EQ(apply_batch(app, b.finish(), 6, kFirstSchemaVersion, nullptr, scratch, nullptr, &requests, nullptr, &marks)
                .status,
            ApplyStatus::kOk);
  marks.fail(6);
  EXPECT_TRUE(marks.find(6)->failed);
  EXPECT_FALSE(marks.find(6)->pending);

  hasher.take = false;  // declined (the server: replaying its log, too many children): taken at once
  b.start(1);
  b.add_digest_mark();
  ASSERT_EQ(apply_batch(app, b.finish(), 7, kFirstSchemaVersion, nullptr, scratch, nullptr, &requests, nullptr, &marks)
                .status,
            ApplyStatus::kOk);
  EXPECT_FALSE(marks.find(7)->pending);
  EXPECT_EQ(marks.find(7)->digest, state_digest(app, requests));
}

TEST(DigestMark, OnlyTheLastMarksAreKept) {
  DigestMarks marks;
  EXPECT_EQ(marks.find(1), nullptr);
  EXPECT_EQ(marks.oldest_index(), 0u);
  for (uint64_t i = 1; i <= kDigestMarksKept + 3; i++) marks.record(DigestMark{i * 10, StateDigest{i, 1}, 1});
  EXPECT_EQ(marks.size(), kDigestMarksKept);
  EXPECT_EQ(marks.oldest_index(), 40u);
  EXPECT_EQ(marks.find(30), nullptr);
  ASSERT_NE(marks.find(40), nullptr);
  EXPECT_EQ(marks.find(40)->digest.value, 4u);
  ASSERT_NE(marks.find((kDigestMarksKept + 3) * 10), nullptr);
  // Two marks in one entry: the later one stands.
  marks.record(DigestMark{(kDigestMarksKept + 3) * 10, StateDigest{99, 1}, 1});
  EXPECT_EQ(marks.size(), kDigestMarksKept);
  EXPECT_EQ(marks.find((kDigestMarksKept + 3) * 10)->digest.value, 99u);
  EXPECT_EQ(marks.oldest_index(), 40u);
}

// The ACL users are replicated state beside the app's: a mark keeps their digest once an ACL
// change was logged, equal on nodes that applied the same changes, different on one whose
// users changed behind the log; before any change, none (each node's users are its file's).
class OneCommandCatalog final : public AclCatalog {
 public:
  void for_each(const std::function<void(const AclCommand&)>& fn) const override {
    fn(AclCommand{"get", "", acl::bit(acl::kRead) | acl::bit(acl::kFast)});
  }
};

TEST(DigestMark, AMarkKeepsTheReplicatedUsersDigest) {
  const OneCommandCatalog catalog;
  struct Member {
    sim::RegisterHost app;
    RequestTable requests;
    DigestMarks marks;
    AclUsers users;
  };
  Member a, b;
  ApplyScratch scratch;
  for (Member* m : {&a, &b}) m->marks.set_users(&m->users);
  auto apply = [&](Member& m, const std::string& payload, uint64_t index) {
    const ReplicatedAcl acl{&m.users, &catalog};
    ASSERT_EQ(apply_batch(m.app, payload, index, kFirstSchemaVersion, nullptr, scratch, nullptr, &m.requests, nullptr,
                          &m.marks, false, &acl)
                  .status,
              ApplyStatus::kOk);
  };
  BatchBuilder batch(1);
  batch.add_digest_mark();
  const std::string mark_only = batch.finish();
  for (Member* m : {&a, &b}) apply(*m, mark_only, 5);
  ASSERT_NE(a.marks.find(5), nullptr);
  EXPECT_FALSE(a.marks.find(5)->users.has_value()) << "no ACL change logged: each node's users are its own";

  batch.start(1);
  batch.add_acl(static_cast<uint8_t>(AclOp::kSetUser), {"alice", "on", "nopass", "+get"});
  batch.add_digest_mark();
  const std::string change = batch.finish();
  for (Member* m : {&a, &b}) apply(*m, change, 6);
  ASSERT_TRUE(a.marks.find(6)->users.has_value());
  EXPECT_EQ(a.marks.find(6)->users, b.marks.find(6)->users);
  EXPECT_EQ(*a.marks.find(6)->users, users_digest(a.users));
  EXPECT_EQ(a.marks.find(6)->digest, b.marks.find(6)->digest);

  // b's users change behind the log: the app's digests stay equal, the users' do not.
  ASSERT_EQ(b.users.set_user("mallory", {"on", "nopass", "+get"}, catalog), "");
  batch.start(1);
  batch.add_digest_mark();
  const std::string mark_again = batch.finish();
  for (Member* m : {&a, &b}) apply(*m, mark_again, 7);
  EXPECT_EQ(a.marks.find(7)->digest, b.marks.find(7)->digest);
  EXPECT_NE(a.marks.find(7)->users, b.marks.find(7)->users);
}

}  // namespace
}  // namespace hmdb::core
