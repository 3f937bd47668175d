// tests/core/acl_test.cc — the ACL rule parser and matcher (core/acl.h): Redis 7.0's
// replies for the same rules (checked by hand against redis-server 7.0.15, and by
// apps.redis_compat_acl for those the compat harness sends), and the permission each rule
// grants.
#include "core/acl.h"

#include <gtest/gtest.h>

#include <vector>

namespace hmdb::core {
namespace {

using acl::bit;

// A small catalog: a few kv commands and two shell commands with subcommands.
class TestCatalog final : public AclCatalog {
 public:
  void for_each(const std::function<void(const AclCommand&)>& fn) const override {
    for (const AclCommand& c : commands) fn(c);
  }
  std::vector<AclCommand> commands = {
      {"get", "", bit(acl::kRead) | bit(acl::kString) | bit(acl::kFast)},
      {"set", "", bit(acl::kWrite) | bit(acl::kString) | bit(acl::kSlow)},
      {"incr", "", bit(acl::kWrite) | bit(acl::kString) | bit(acl::kFast)},
      {"hget", "", bit(acl::kRead) | bit(acl::kHash) | bit(acl::kFast)},
      {"flushall", "", bit(acl::kKeyspace) | bit(acl::kWrite) | bit(acl::kSlow) | bit(acl::kDangerous)},
      {"cluster", "info", bit(acl::kSlow)},
      {"cluster", "forwarder", bit(acl::kAdmin) | bit(acl::kSlow) | bit(acl::kDangerous)},
      {"ping", "", bit(acl::kFast) | bit(acl::kConnection)},
  };
};

const TestCatalog kCatalog;

AclCommand cmd(std::string_view name, std::string_view sub = "") {
  for (const AclCommand& c : kCatalog.commands)
    if (c.name == name && c.subcommand == sub) return c;
  ADD_FAILURE() << "no command " << name;
  return {};
}

// Applies rules one by one to a fresh user named u; every one must be accepted.
AclUser user(const std::vector<std::string_view>& rules) {
  AclUser u("u");
  for (std::string_view r : rules) EXPECT_EQ(u.apply(r, kCatalog), "") << r;
  return u;
}

TEST(AclUser, ANewUserIsOffWithNothingAllowed) {
  AclUser u("u");
  EXPECT_EQ(u.describe(), "user u off resetchannels -@all");
  EXPECT_FALSE(u.enabled());
  EXPECT_FALSE(u.check_password(""));
  EXPECT_FALSE(u.can_run(cmd("get")));
  EXPECT_FALSE(u.key_allowed("k", kKeyRead));
  EXPECT_FALSE(u.channel_allowed("ch", false));
  EXPECT_FALSE(u.permits_all());
}

TEST(AclUser, TheDefaultUserPermitsAll) {
  const AclUser d = AclUser::default_user();
  EXPECT_EQ(d.describe(), "user default on nopass ~* &* +@all");
  EXPECT_TRUE(d.permits_all());
  EXPECT_TRUE(d.check_password("anything"));
  AclUser restricted = d;
  EXPECT_EQ(restricted.apply("-@dangerous", kCatalog), "");
  EXPECT_FALSE(restricted.permits_all());
  EXPECT_FALSE(restricted.can_run(cmd("flushall")));
  EXPECT_TRUE(restricted.can_run(cmd("set")));
}

TEST(AclUser, DescriptionsAreRedis7s) {
  // Each line was answered by redis-server 7.0.15's ACL LIST for the same rules.
  EXPECT_EQ(user({"on", ">pw", "+@read", "~k*", "%W~w*", "&ch*", "-get", "+get", "+@hash", "-@all", "+set",
                  "+cluster|info"})
                .describe(),
            "user u on #30c952fab122c3f9759f02a6d95c3758b246b4fee239957b2d4fee46e26170c4 ~k* %W~w* resetchannels "
            "&ch* -@all +set +cluster|info");
  EXPECT_EQ(user({"on", "nopass", "allkeys", "allchannels", "allcommands", "resetpass", ">a", ">b", ">a",
                  "resetkeys", "~x", "%R~x", "%RW~y", "%W~x", "+get", "-get", "+@string", "-@fast"})
                .describe(),
            "user u on #ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb "
            "#3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d ~x ~y &* +@all -@fast");
  EXPECT_EQ(user({"off", "reset"}).describe(), "user u off sanitize-payload resetchannels -@all");
  EXPECT_EQ(user({"+@all", "-set", "+@write", "-get"}).commands_text(), "+@all -get");
  EXPECT_EQ(user({"-@all", "+set", "+get", "-set", "+@string", "-get", "+set"}).commands_text(), "-@all +@string -get");
  EXPECT_EQ(user({"+get", "+@read", "+get"}).commands_text(), "-@all +@read");
  EXPECT_EQ(user({"-@all", "+get", "+set", "-@string", "+@read"}).commands_text(), "-@all +@read");
  EXPECT_EQ(user({"+@all", "-cluster|info", "-cluster"}).commands_text(), "+@all -cluster");
  EXPECT_EQ(user({"+@all", "-cluster", "+cluster|info"}).commands_text(), "+@all -cluster +cluster|info");
  // Not Redis' text: Redis 7.0 says "~* %W~a", which its own ACL LOAD refuses; here %R~* with
  // %W~* is allkeys (docs/security.md, "Differences from Redis"), and every key is allowed.
  EXPECT_EQ(user({"%R~*", "%W~a", "%W~*"}).keys_text(), "~*");
  EXPECT_TRUE(user({"%R~*", "%W~a", "%W~*"}).key_allowed("", 3));
  EXPECT_EQ(user({"on", ">a", "nopass"}).flags(), (std::vector<std::string>{"on", "nopass"}));
  EXPECT_TRUE(user({"on", ">a", "nopass"}).password_hashes().empty());
}

TEST(AclUser, RefusedRulesSayWhyInRedisWords) {
  AclUser u("u");
  EXPECT_EQ(u.apply("+@foo", kCatalog), "Unknown command or category name in ACL");
  EXPECT_EQ(u.apply("+nosuch", kCatalog), "Unknown command or category name in ACL");
  EXPECT_EQ(u.apply("+cluster|nosuch", kCatalog), "Unknown command or category name in ACL");
  EXPECT_EQ(u.apply("+get|", kCatalog), "Syntax error");
  EXPECT_EQ(u.apply("xyz", kCatalog), "Syntax error");
  EXPECT_EQ(u.apply("%X~a", kCatalog), "Syntax error");
  EXPECT_EQ(u.apply("%R", kCatalog), "Syntax error");
  EXPECT_EQ(u.apply("<nope", kCatalog), "The password you are trying to remove from the user does not exist");
  EXPECT_EQ(u.apply("#abc", kCatalog),
            "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters");
  EXPECT_EQ(u.apply("allkeys", kCatalog), "");
  EXPECT_NE(u.apply("~foo", kCatalog).find("Adding a pattern after the * pattern (or the 'allkeys' flag)"),
            std::string::npos);
  EXPECT_EQ(u.apply("allchannels", kCatalog), "");
  EXPECT_NE(u.apply("&foo", kCatalog).find("(or the 'allchannels' flag)"), std::string::npos);
}

TEST(AclUser, PasswordsAreCheckedAndRemoved) {
  AclUser u = user({"on", ">one", ">two"});
  EXPECT_TRUE(u.check_password("one"));
  EXPECT_TRUE(u.check_password("two"));
  EXPECT_FALSE(u.check_password("three"));
  EXPECT_EQ(u.apply("<one", kCatalog), "");
  EXPECT_FALSE(u.check_password("one"));
  // #hash adds a password by its digest, !hash removes it.
  const std::string two = u.password_hashes()[0];
  EXPECT_EQ(u.apply("!" + two, kCatalog), "");
  EXPECT_FALSE(u.check_password("two"));
  EXPECT_EQ(u.apply("#" + two, kCatalog), "");
  EXPECT_TRUE(u.check_password("two"));
  EXPECT_EQ(u.apply("off", kCatalog), "");
  EXPECT_FALSE(u.check_password("two"));  // a disabled user cannot log in
}

TEST(AclUser, TheLastMatchingCommandRuleWins) {
  const AclUser u = user({"+@read", "-hget", "+set", "+cluster", "-cluster|forwarder"});
  EXPECT_TRUE(u.can_run(cmd("get")));
  EXPECT_FALSE(u.can_run(cmd("hget")));
  EXPECT_TRUE(u.can_run(cmd("set")));
  EXPECT_FALSE(u.can_run(cmd("incr")));
  EXPECT_TRUE(u.can_run(cmd("cluster", "info")));
  EXPECT_FALSE(u.can_run(cmd("cluster", "forwarder")));
  // Category rules see a subcommand's own categories.
  const AclUser admin = user({"+@admin"});
  EXPECT_TRUE(admin.can_run(cmd("cluster", "forwarder")));
  EXPECT_FALSE(admin.can_run(cmd("cluster", "info")));
  // +@all lets a command no rule names run (an app command added later).
  const AclUser all = user({"+@all", "-@dangerous"});
  EXPECT_TRUE(all.can_run(AclCommand{"newcommand", "", bit(acl::kWrite)}));
  EXPECT_FALSE(all.can_run(AclCommand{"newcommand", "", bit(acl::kDangerous)}));
}

TEST(AclUser, KeyPatternsGrantReadAndWriteSeparately) {
  const AclUser u = user({"~both:*", "%R~r:*", "%W~w:*"});
  EXPECT_TRUE(u.key_allowed("both:1", kKeyReadWrite));
  EXPECT_TRUE(u.key_allowed("r:1", kKeyRead));
  EXPECT_FALSE(u.key_allowed("r:1", kKeyWrite));
  EXPECT_TRUE(u.key_allowed("w:1", kKeyWrite));
  EXPECT_FALSE(u.key_allowed("w:1", kKeyRead));
  EXPECT_FALSE(u.key_allowed("other", kKeyRead));
  // Read from one pattern and write from another both count.
  const AclUser split = user({"%R~a*", "%W~*b"});
  EXPECT_TRUE(split.key_allowed("ab", kKeyReadWrite));
  EXPECT_FALSE(split.key_allowed("ac", kKeyReadWrite));
  EXPECT_TRUE(user({"allkeys"}).key_allowed("", kKeyReadWrite));
}

TEST(AclUser, ChannelsMatchByGlobAndPatternsLiterally) {
  const AclUser u = user({"&news.*", "&exact"});
  EXPECT_TRUE(u.channel_allowed("news.sport", false));
  EXPECT_TRUE(u.channel_allowed("exact", false));
  EXPECT_FALSE(u.channel_allowed("other", false));
  EXPECT_TRUE(u.channel_allowed("news.*", true));   // PSUBSCRIBE news.*: one of its patterns
  EXPECT_FALSE(u.channel_allowed("news.s*", true));  // narrower, but not literally its pattern (Redis)
  EXPECT_TRUE(user({"allchannels"}).channel_allowed("x*", true));
}

TEST(AclUsers, SetUserIsAllOrNothingAndKeepsTheObject) {
  AclUsers users;
  ASSERT_EQ(users.set_user("alice", {"on", ">pw", "+get"}, kCatalog), "");
  auto alice = users.find("alice");
  ASSERT_NE(alice, nullptr);
  EXPECT_EQ(users.set_user("alice", {"+set", "+@nosuch"}, kCatalog),
            "ERR Error in ACL SETUSER modifier '+@nosuch': Unknown command or category name in ACL");
  EXPECT_FALSE(alice->can_run(cmd("set")));  // nothing of the refused SETUSER applied
  ASSERT_EQ(users.set_user("alice", {"+set"}, kCatalog), "");
  EXPECT_TRUE(alice->can_run(cmd("set")));  // the same object: its connections see it
  EXPECT_EQ(users.set_user("a b", {}, kCatalog), "ERR Usernames can't contain spaces or null characters");
  EXPECT_EQ(users.authenticate("alice", "pw"), alice);
  EXPECT_EQ(users.authenticate("alice", "no"), nullptr);
  EXPECT_EQ(users.authenticate("bob", "pw"), nullptr);
  EXPECT_EQ(users.delete_users({"alice", "bob", "default"}), 1);
  EXPECT_TRUE(alice->deleted());
  EXPECT_FALSE(alice->permits_all());
  EXPECT_EQ(users.find("alice"), nullptr);
}

TEST(AclUsers, SaveAndLoadRoundTrip) {
  AclUsers users;
  ASSERT_EQ(users.set_user("alice", {"on", ">pw", "~k*", "%R~r*", "&ch", "-@all", "+@read", "-hget"}, kCatalog), "");
  ASSERT_EQ(users.set_user("default", {"resetpass", ">sekret"}, kCatalog), "");
  const std::string saved = users.save();
  AclUsers other;
  ASSERT_EQ(other.load(saved, kCatalog), "");
  EXPECT_EQ(other.save(), saved);
  EXPECT_NE(other.authenticate("default", "sekret"), nullptr);
  // A bad line changes nothing and names its line.
  EXPECT_EQ(other.load("user bob on\nuser carol +@nosuch\n", kCatalog),
            "line 2: Error in user declaration '+@nosuch': Unknown command or category name in ACL");
  EXPECT_EQ(other.save(), saved);
  EXPECT_EQ(other.load("usr bob\n", kCatalog), "line 1: should start with user keyword");
  EXPECT_EQ(other.load("user bob\nuser bob\n", kCatalog), "line 2: duplicate user 'bob' found");
  // Loading a file without alice removes her; default stays (as it was in the file, or new).
  auto alice = other.find("alice");
  ASSERT_EQ(other.load("user bob on nopass +@all\n", kCatalog), "");
  EXPECT_TRUE(alice->deleted());
  EXPECT_EQ(other.save(), "user bob on nopass resetchannels +@all\nuser default on nopass ~* &* +@all\n");
}

}  // namespace
}  // namespace hmdb::core
