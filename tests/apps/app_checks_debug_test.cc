// tests/apps/app_checks_debug_test.cc — AppHost's own reply check, as a build with
// HMDB_CHECK_REPLIES has it (this file is compiled with it; tests/apps/CMakeLists.txt): a
// command that wrote anything but one complete RESP value throws where the engine called it,
// before a client could read the broken bytes. Driven here without the test driver, as the
// server drives an app. Its app is this file's own (the flag changes AppHost<App>).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "hmdb/app.h"

static_assert(HMDB_CHECK_REPLIES, "compiled with HMDB_CHECK_REPLIES=1 (tests/apps/CMakeLists.txt)");

namespace hmdb {
namespace {

struct Nothing {};
bool parse_nothing(Args, Nothing&, std::string&) { return true; }

struct DebugApp {
  static constexpr std::string_view kName = "debug";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = std::monostate;
  static void define(Commands<State>& c) {
    c.write("TWO", 1, &parse_nothing, [](State&, const Nothing&, const ApplyContext&, Reply& r) {
      r.integer(1);
      r.integer(2);
    });
    c.write("ONE", 1, &parse_nothing, [](State&, const Nothing&, const ApplyContext&, Reply& r) { r.integer(1); });
    c.query("SHORT", 1, [](const State&, Args, const QueryContext&, Reply& r) {
      r.array(2);
      r.bulk("only one");
    });
  }
  static void save(const State&, Encoder&) {}
  static bool load(State&, Decoder&, uint32_t) { return true; }
};

TEST(AppHostReplyCheck, ACommandThatWritesTwoValuesOrAShortArrayThrows) {
  AppHost<DebugApp> host;
  ApplyContext ctx;
  ctx.schema_version = 1;
  // The buffer already holds an earlier reply of the client's: only the command's own bytes count.
  std::string out = "+earlier\r\n";
  Reply reply(&out);
  std::string why;
  std::vector<std::string_view> one = {"ONE"}, two = {"TWO"}, shorter = {"SHORT"};
  EXPECT_TRUE(host.apply(Args(one.data(), one.size()), ctx, reply, &why));
  EXPECT_EQ(out, "+earlier\r\n:1\r\n");
  try {
    host.apply(Args(two.data(), two.size()), ctx, reply, &why);
    ADD_FAILURE() << "TWO's two values passed";
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "hmdb: app debug: command TWO wrote a second value after the first complete one (a command writes "
              "exactly one RESP value): \":1\\r\\n:2\\r\\n\"");
  }
  try {
    host.query(Args(shorter.data(), shorter.size()), QueryContext{}, reply);
    ADD_FAILURE() << "SHORT's array of 2 with 1 element passed";
  } catch (const std::logic_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "hmdb: app debug: command SHORT wrote an incomplete value: an aggregate promised 1 more element than "
              "were written: \"*2\\r\\n$8\\r\\nonly one\\r\\n\"");
  }
}

}  // namespace
}  // namespace hmdb
