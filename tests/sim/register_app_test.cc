// tests/sim/register_app_test.cc — the simulator's app: commands, replies, snapshot round trip.
#include "sim/register_app.h"

#include <gtest/gtest.h>

namespace hmdb::sim {
namespace {

std::string run(RegisterHost& h, std::vector<std::string_view> argv) {
  std::string out;
  Reply r(&out);
  if (h.kind(argv[0]) == CommandKind::kQuery) h.query(Args(argv.data(), argv.size()), QueryContext{}, r);
  else {
    std::string why;
    EXPECT_TRUE(h.apply(Args(argv.data(), argv.size()), ApplyContext{}, r, &why)) << why;
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

}  // namespace
}  // namespace hmdb::sim
