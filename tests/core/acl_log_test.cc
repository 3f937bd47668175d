// tests/core/acl_log_test.cc — ACL users replicated through the log (core/acl.h: AclOp,
// apply_acl_change; core/batch.h: kItemAcl; core/state.h: the users in a snapshot): a change
// applied to nodes that started from different ACL files leaves them with the same users
// and the same reply, a refused rule is refused alike, the leader's users go first while no
// change applied (the seed) and only then, passwords never reach the log in clear,
// requirepass stays the default user's password, and a snapshot carries the users (an older
// snapshot without them leaves a node's own).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/acl.h"
#include "core/apply.h"
#include "core/state.h"
#include "replica_harness.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using acl::bit;

class TestCatalog final : public AclCatalog {
 public:
  void for_each(const std::function<void(const AclCommand&)>& fn) const override {
    for (const AclCommand& c : commands) fn(c);
  }
  std::vector<AclCommand> commands = {
      {"get", "", bit(acl::kRead) | bit(acl::kString) | bit(acl::kFast)},
      {"set", "", bit(acl::kWrite) | bit(acl::kString) | bit(acl::kSlow)},
      {"incr", "", bit(acl::kWrite) | bit(acl::kString) | bit(acl::kFast)},
  };
};
const TestCatalog kCatalog;

std::string sha256_hex(std::string_view text) {
  const PasswordDigest d = password_digest(text);
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : d) {
    s += kDigits[c >> 4];
    s += kDigits[c & 15];
  }
  return s;
}

// Users as a node's ACL file left them.
AclUsers from_file(std::string_view text) {
  AclUsers u;
  EXPECT_EQ(u.load(text, kCatalog), "");
  return u;
}

std::string apply(AclUsers& users, AclOp op, std::vector<std::string_view> words) {
  return apply_acl_change(users, kCatalog, op, words);
}

TEST(AclLog, PasswordsAreLoggedAsTheirDigests) {
  const std::vector<std::string> logged = acl_rules_for_log({"on", ">s3cret", "<old", "+get", "~k*"});
  ASSERT_EQ(logged.size(), 5u);
  EXPECT_EQ(logged[0], "on");
  EXPECT_EQ(logged[1], "#" + sha256_hex("s3cret"));
  EXPECT_EQ(logged[2], "!" + sha256_hex("old"));
  EXPECT_EQ(logged[3], "+get");
  EXPECT_EQ(logged[4], "~k*");
  // They mean what the clear ones mean.
  AclUsers users;
  EXPECT_EQ(apply(users, AclOp::kSetUser, {"alice", "on", logged[1], "+get"}), "+OK\r\n");
  EXPECT_TRUE(users.authenticate("alice", "s3cret"));
  EXPECT_FALSE(users.authenticate("alice", "other"));
  EXPECT_EQ(apply(users, AclOp::kSetUser, {"alice", acl_rules_for_log({"<s3cret"})[0]}), "+OK\r\n");
  EXPECT_FALSE(users.authenticate("alice", "s3cret"));
}

TEST(AclLog, AChangeGivesTheSameUsersAndReplyOnNodesThatStartedFromDifferentFiles) {
  AclUsers leader = from_file("user default on nopass ~* &* +@all\nuser ops on nopass ~* &* +@all\n");
  AclUsers follower = from_file("user default on nopass ~* &* +@all -set\n");
  EXPECT_FALSE(leader.logged());
  const std::string seed = leader.save();  // what Replica::acl_change logs first
  for (AclUsers* u : {&leader, &follower}) {
    EXPECT_EQ(apply(*u, AclOp::kSeed, {seed}), "+OK\r\n");
    EXPECT_TRUE(u->logged());
    EXPECT_EQ(apply(*u, AclOp::kSetUser, {"alice", "on", "#" + sha256_hex("pw"), "~app:*", "+get"}), "+OK\r\n");
  }
  EXPECT_EQ(leader.save(), follower.save());
  ASSERT_TRUE(follower.find("ops"));
  EXPECT_TRUE(follower.default_user()->permits_all()) << "the follower's file said -set: the leader's users won";
  // A rule refused is refused on every node, with the same reply, and changes nothing.
  const std::string before = leader.save();
  for (AclUsers* u : {&leader, &follower}) {
    EXPECT_EQ(apply(*u, AclOp::kSetUser, {"alice", "-get", "+nosuchcommand"}),
              "-ERR Error in ACL SETUSER modifier '+nosuchcommand': Unknown command or category name in ACL\r\n");
    EXPECT_EQ(u->save(), before);
  }
}

TEST(AclLog, TheSeedLoadsOnlyWhereNoChangeAppliedYet) {
  AclUsers u = from_file("user default on nopass ~* &* +@all\n");
  EXPECT_EQ(apply(u, AclOp::kSetUser, {"alice", "on", "nopass", "+get"}), "+OK\r\n");
  // A second leader's seed, proposed before it applied the first change: no effect.
  EXPECT_EQ(apply(u, AclOp::kSeed, {"user default on nopass ~* &* +@all -get\n"}), "+OK\r\n");
  EXPECT_TRUE(u.find("alice"));
  EXPECT_TRUE(u.default_user()->permits_all());
}

TEST(AclLog, DelUserCountsAndRefusesDefault) {
  AclUsers u = from_file("user a on nopass +@all\nuser b on nopass +@all\n");
  const std::shared_ptr<AclUser> a = u.find("a");
  EXPECT_EQ(apply(u, AclOp::kDelUser, {"a", "nosuch"}), ":1\r\n");
  EXPECT_TRUE(a->deleted()) << "its connections are closed at their next command";
  EXPECT_FALSE(u.find("a"));
  EXPECT_EQ(apply(u, AclOp::kDelUser, {"b", "default"}), "-ERR The 'default' user cannot be removed\r\n");
  EXPECT_TRUE(u.find("b")) << "refused as a whole";
}

TEST(AclLog, LoadReplacesAllOrNothing) {
  AclUsers u = from_file("user a on nopass +@all\n");
  EXPECT_EQ(apply(u, AclOp::kLoad, {"user b on nopass +get\nuser c bogus\n"}),
            "-ERR line 2: Error in user declaration 'bogus': Syntax error (no user was changed)\r\n");
  EXPECT_TRUE(u.find("a"));
  EXPECT_FALSE(u.logged()) << "a refused change is not the cluster's first";
  EXPECT_EQ(apply(u, AclOp::kLoad, {"user b on nopass +get\n"}), "+OK\r\n");
  EXPECT_FALSE(u.find("a"));
  EXPECT_TRUE(u.find("b"));
  EXPECT_TRUE(u.logged());
}

TEST(AclLog, TheLinkUsersNameIsReserved) {
  AclUsers u;
  const std::string refused =
      "-ERR the user name 'hmdb-forwarder' is reserved for the nodes' forwarding links (--cluster-secret)\r\n";
  EXPECT_EQ(apply(u, AclOp::kSetUser, {"hmdb-forwarder", "on", "nopass", "+@all"}), refused);
  EXPECT_EQ(u.check_set_user("hmdb-forwarder", {"on"}, kCatalog), refused.substr(1, refused.size() - 3));
  EXPECT_EQ(apply(u, AclOp::kLoad, {"user hmdb-forwarder on nopass +@all\n"}),
            "-ERR line 1: the user name 'hmdb-forwarder' is reserved for the nodes' forwarding links (--cluster-secret) "
            "(no user was changed)\r\n");
  EXPECT_FALSE(u.find("hmdb-forwarder"));
}

TEST(AclLog, RequirepassStaysTheDefaultUsersPassword) {
  AclUsers u;
  u.pin_default_password("pinned");
  EXPECT_TRUE(u.authenticate("default", "pinned"));
  EXPECT_FALSE(u.authenticate("default", "anything"));
  EXPECT_EQ(apply(u, AclOp::kSetUser, {"default", "nopass"}), "+OK\r\n");
  EXPECT_FALSE(u.authenticate("default", "anything"));
  EXPECT_TRUE(u.authenticate("default", "pinned"));
  EXPECT_EQ(apply(u, AclOp::kLoad, {"user default on nopass ~* &* +@all\n"}), "+OK\r\n");
  EXPECT_TRUE(u.authenticate("default", "pinned"));
  EXPECT_FALSE(u.authenticate("default", "anything"));
}

TEST(AclLog, ASnapshotCarriesTheUsersOnceLogged) {
  sim::RegisterHost app;
  RequestTable requests;
  AclUsers users = from_file("user default on nopass ~* &* +@all\n");
  // Not logged yet: the payload says so, and a node loading it keeps its own users.
  std::string none;
  {
    Encoder enc(&none);
    save_state(app, requests, enc, &users);
  }
  AclUsers own = from_file("user default on nopass ~* &* +@all\nuser mine on nopass +get\n");
  const ReplicatedAcl own_acl{&own, &kCatalog};
  sim::RegisterHost app2;
  {
    Decoder in(none);
    ASSERT_EQ(load_state(app2, requests, in, sim::RegisterApp::kSchemaVersion, kStateFormatNewest, nullptr, &own_acl),
              LoadState::kOk);
  }
  EXPECT_TRUE(own.find("mine"));
  EXPECT_FALSE(own.logged());
  // Logged: they replace the loading node's.
  EXPECT_EQ(apply(users, AclOp::kSetUser, {"alice", "on", "#" + sha256_hex("pw"), "+get"}), "+OK\r\n");
  std::string with;
  {
    Encoder enc(&with);
    save_state(app, requests, enc, &users);
  }
  EXPECT_EQ(with.find("pw"), std::string::npos);
  {
    Decoder in(with);
    ASSERT_EQ(load_state(app2, requests, in, sim::RegisterApp::kSchemaVersion, kStateFormatNewest, nullptr, &own_acl),
              LoadState::kOk);
  }
  EXPECT_EQ(own.save(), users.save());
  EXPECT_TRUE(own.logged());
  EXPECT_TRUE(own.authenticate("alice", "pw"));
  // A format 4 payload (no users part) leaves a node's users as they are.
  AclUsers mine = from_file("user mine on nopass +get\n");
  const ReplicatedAcl mine_acl{&mine, &kCatalog};
  std::string v4;
  {
    Encoder enc(&v4);
    enc.u32(app.active_schema_version());
    requests.save(enc);
    app.save(enc);
  }
  {
    Decoder in(v4);
    ASSERT_EQ(load_state(app2, requests, in, sim::RegisterApp::kSchemaVersion, kStateFormatWithActiveVersion, nullptr,
                         &mine_acl),
              LoadState::kOk);
  }
  EXPECT_TRUE(mine.find("mine"));
  // A damaged users part: another flag, a cut text, or lines that do not load.
  for (const std::string& bad : {std::string("\x02", 1), std::string("\x01\x09user", 6),
                                 std::string("\x01\x0cuser x bogus", 14)}) {
    std::string payload;
    Encoder enc(&payload);
    enc.u32(app.active_schema_version());
    enc.raw(bad);
    requests.save(enc);
    app.save(enc);
    enc.finish();
    Decoder in(payload);
    EXPECT_EQ(load_state(app2, requests, in, sim::RegisterApp::kSchemaVersion, kStateFormatNewest, nullptr, &mine_acl),
              LoadState::kBadUsers)
        << testing::PrintToString(bad);
  }
}

// The whole trip through a replica: the leader logs the change (after its users, the first
// time), answers with the apply's reply, and followers applying the same entries end with
// the same users, though their ACL files differed; no password is in the log in clear.
TEST(AclLog, FollowersApplyingTheLeadersEntriesHoldItsUsers) {
  TestNode<sim::RegisterHost> leader;
  AclUsers leader_users = from_file("user default on nopass ~* &* +@all\nuser ops on nopass ~* &* +@all\n");
  leader.replica->set_acl(&leader_users, &kCatalog);
  leader.send({{"ACL", "SETUSER", "alice", "on", ">s3cret", "~app:*", "+get"}, {"SET", "a", "1"}});
  for (int turn = 0; turn < 3; turn++) leader.replica->end_turn();
  leader.send({{"ACL", "SETUSER", "alice", "+nosuchcommand"}, {"ACL", "DELUSER", "ops"}});
  for (int turn = 0; turn < 3; turn++) leader.replica->end_turn();
  EXPECT_EQ(leader.out(),
            "+OK\r\n+OK\r\n-ERR Error in ACL SETUSER modifier '+nosuchcommand': Unknown command or category name in "
            "ACL\r\n:1\r\n");
  EXPECT_TRUE(leader_users.authenticate("alice", "s3cret"));
  EXPECT_FALSE(leader_users.find("ops"));

  struct Follower {
    sim::RegisterHost app;
    AclUsers users;
    ApplyScratch scratch;
  };
  Follower f1, f2;
  ASSERT_EQ(f1.users.load("user default on nopass ~* &* +@all -get\n", kCatalog), "");
  ASSERT_EQ(f2.users.load("user default off\nuser stray on nopass +@all\n", kCatalog), "");
  int seeds = 0;
  for (const raft::Entry& e : leader.host.persisted) {
    if (e.type != raft::EntryType::kNormal) continue;
    EXPECT_EQ(e.data.find("s3cret"), std::string::npos) << "a password in clear in the log";
    BatchReader r(e.data);
    BatchStep step;
    while (r.next(step)) seeds += step.kind == BatchStep::Kind::kAcl && step.acl_op == static_cast<uint8_t>(AclOp::kSeed);
    for (Follower* f : {&f1, &f2}) {
      const ReplicatedAcl acl{&f->users, &kCatalog};
      ASSERT_EQ(apply_batch(f->app, e.data, e.index, e.schema_version, nullptr, f->scratch, nullptr, nullptr, nullptr,
                            nullptr, false, &acl)
                    .status,
                ApplyStatus::kOk);
    }
  }
  EXPECT_EQ(seeds, 1) << "the leader's users go first once";
  EXPECT_EQ(f1.users.save(), leader_users.save());
  EXPECT_EQ(f2.users.save(), leader_users.save());
  EXPECT_FALSE(f2.users.find("stray"));
  EXPECT_TRUE(f1.users.authenticate("alice", "s3cret"));
}

}  // namespace
}  // namespace hmdb::core
