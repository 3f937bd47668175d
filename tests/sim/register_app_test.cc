// tests/sim/register_app_test.cc — the simulator's app: commands, replies, snapshot round trip.
#include "sim/register_app.h"

#include <gtest/gtest.h>

namespace hmdb::sim {
namespace {

// Runs a command on any of the register apps; a write applies as logged under `version`.
std::string run(StateMachine& h, std::vector<std::string_view> argv, uint32_t version = 1) {
  std::string out;
  Reply r(&out);
  if (h.kind(argv[0]) == CommandKind::kQuery) h.query(Args(argv.data(), argv.size()), QueryContext{}, r);
  else {
    std::string why;
    ApplyContext ctx;
    ctx.schema_version = version;
    EXPECT_TRUE(h.apply(Args(argv.data(), argv.size()), ctx, r, &why)) << why;
  }
  return out;
}

TEST(RegisterApp, SetIncrGet) {
  RegisterHost h;
  EXPECT_EQ(run(h, {"GET", "a"}), "$-1\r\n");
  EXPECT_EQ(run(h, {"INCR", "a"}), ":1\r\n");
  EXPECT_EQ(run(h, {"SET", "a", "41"}), "+OK\r\n");
  EXPECT_EQ(run(h, {"INCR", "a"}), ":42\r\n");
  EXPECT_EQ(run(h, {"get", "a"}), ":42\r\n");
  std::string err;
  std::string_view bad[] = {"SET", "a", "x"};
  EXPECT_FALSE(h.validate(Args(bad, 3), &err));
}

TEST(RegisterApp, ParseReply) {
  bool ok;
  EXPECT_EQ(parse_reply(":42\r\n", &ok), 42);
  EXPECT_TRUE(ok);
  EXPECT_EQ(parse_reply("+OK\r\n", &ok), std::nullopt);
  EXPECT_TRUE(ok);
  EXPECT_EQ(parse_reply("$-1\r\n", &ok), std::nullopt);
  EXPECT_TRUE(ok);
  parse_reply("-ERR x\r\n", &ok);
  EXPECT_FALSE(ok);
}

TEST(RegisterApp, SnapshotRoundTripKeepsDigest) {
  RegisterHost a, b;
  run(a, {"SET", "x", "7"});
  run(a, {"INCR", "y"});
  Encoder enc;
  a.save(enc);
  std::string bytes = enc.take();
  Decoder in(bytes);
  ASSERT_TRUE(b.load(in, RegisterApp::kSchemaVersion));
  EXPECT_EQ(a.digest(), b.digest());
  EXPECT_EQ(run(b, {"GET", "x"}), ":7\r\n");
  Decoder truncated(std::string_view(bytes).substr(0, bytes.size() - 1));
  EXPECT_FALSE(b.load(truncated, RegisterApp::kSchemaVersion));
}

// Version 2: a v1 INCR (upcast) keeps its meaning, a v2 INCR with a step sets it; a v1
// snapshot migrates; save_as(1) is what a v1 node holding the same data saves, so their
// digests at version 1 agree, until a step other than 1 exists.
TEST(RegisterAppV2, UpcastMigrationAndDigestAtVersion1) {
  RegisterHost v1;
  RegisterHostV2 v2;
  for (StateMachine* h : {static_cast<StateMachine*>(&v1), static_cast<StateMachine*>(&v2)}) {
    run(*h, {"SET", "x", "7"});
    run(*h, {"INCR", "x"});
    run(*h, {"INCR", "y"});
  }
  EXPECT_EQ(run(v2, {"GET", "x"}), ":8\r\n");
  ASSERT_TRUE(v2.digest_at(1).has_value());
  EXPECT_EQ(*v2.digest_at(1), v1.digest());
  EXPECT_NE(v2.digest(), v1.digest());  // the v2 layout holds the steps

  Encoder enc;
  v1.save(enc);
  std::string bytes = enc.take();
  RegisterHostV2 migrated;
  Decoder in(bytes);
  ASSERT_TRUE(migrated.load(in, 1));
  EXPECT_EQ(migrated.digest(), v2.digest());
  RegisterHostV2DropsField planted;  // the planted bug: the migration loses the values
  Decoder again(bytes);
  ASSERT_TRUE(planted.load(again, 1));
  EXPECT_NE(*planted.digest_at(1), v1.digest());

  Encoder enc2;
  v2.save(enc2);
  std::string bytes2 = enc2.take();
  RegisterHostV2 reloaded;
  Decoder in2(bytes2);
  ASSERT_TRUE(reloaded.load(in2, 2));
  EXPECT_EQ(reloaded.digest(), v2.digest());

  EXPECT_EQ(run(v2, {"INCR", "x", "5"}, 2), ":13\r\n");
  EXPECT_EQ(run(v2, {"INCR", "x"}, 2), ":18\r\n");
  EXPECT_FALSE(v2.digest_at(1).has_value());  // a step of 5 means nothing to a v1 node
  EXPECT_EQ(register_values(v2).at("x"), 18);
  EXPECT_EQ(register_values(v1).at("x"), 8);
}

}  // namespace
}  // namespace hmdb::sim
