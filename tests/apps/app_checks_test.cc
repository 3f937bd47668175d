// tests/apps/app_checks_test.cc — what hmdb/app.h checks when an app is hosted (registration
// time) rather than compiled: arity ranges. (Signatures are checked at compile time:
// tests/compile_fail.)
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "hmdb/app.h"
#include "hmdb/testing.h"

namespace hmdb {
namespace {

using testing::error;
using testing::integer;
using testing::kOk;

struct Words {
  size_t n = 0;
};
bool parse_words(Args a, Words& out, std::string&) {
  out.n = a.size();
  return true;
}
void reply_count(std::monostate&, const Words& w, const ApplyContext&, Reply& r) { r.integer(static_cast<int64_t>(w.n)); }

// An app whose define() is chosen by a test: each registers one table and hosts it.
template <int kCase>
struct TableApp {
  static constexpr std::string_view kName = "checks";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = std::monostate;
  static void define(Commands<State>& c);
  static void save(const State&, Encoder&) {}
  static bool load(State&, Decoder&, uint32_t) { return true; }
};

template <>
void TableApp<0>::define(Commands<State>& c) {
  c.write("EXACT", 2, &parse_words, &reply_count);
  c.write("ATLEAST", -2, &parse_words, &reply_count);
  c.write("RANGE", {2, 4}, &parse_words, &reply_count);
  c.query("QRANGE", {1, 2}, [](const State&, Args a, const QueryContext&, Reply& r) {
    r.integer(static_cast<int64_t>(a.size()));
  });
}

TEST(AppChecks, ArityIsARangeCheckedBeforeParse) {
  testing::AppDriver<TableApp<0>> db;
  const std::string wrong = "ERR wrong number of arguments for 'range' command";
  EXPECT_EQ(db.run({"RANGE"}), error(wrong));
  EXPECT_EQ(db.run({"RANGE", "a"}), integer(2));
  EXPECT_EQ(db.run({"RANGE", "a", "b", "c"}), integer(4));
  EXPECT_EQ(db.run({"RANGE", "a", "b", "c", "d"}), error(wrong));
  EXPECT_EQ(db.run({"EXACT", "a"}), integer(2));
  EXPECT_EQ(db.run({"EXACT", "a", "b"}), error("ERR wrong number of arguments for 'exact' command"));
  EXPECT_EQ(db.run({"ATLEAST"}), error("ERR wrong number of arguments for 'atleast' command"));
  EXPECT_EQ(db.run({"ATLEAST", "a", "b", "c", "d", "e", "f"}), integer(7));
  EXPECT_EQ(db.run({"QRANGE"}), integer(1));
  EXPECT_EQ(db.run({"QRANGE", "a", "b"}), error("ERR wrong number of arguments for 'qrange' command"));
  // Clients (COMMAND) and transactions see Redis' form: a range with a maximum is -min.
  EXPECT_EQ(db.host.arity("RANGE"), -2);
  EXPECT_EQ(db.host.arity("EXACT"), 2);
  EXPECT_EQ(db.host.arity("ATLEAST"), -2);
  // A logged entry outside the range does not apply: a divergence, named with the range.
  std::vector<std::string_view> words = {"RANGE", "a", "b", "c", "d"};
  std::string out, why;
  Reply reply(&out);
  ApplyContext ctx;
  ctx.schema_version = 1;
  EXPECT_FALSE(db.host.apply(Args(words.data(), words.size()), ctx, reply, &why));
  EXPECT_EQ(why, "5 words, but its arity at schema version 1 is 2..4");
}

template <>
void TableApp<1>::define(Commands<State>& c) {
  c.write("BACKWARDS", {3, 2}, &parse_words, &reply_count);
}
template <>
void TableApp<2>::define(Commands<State>& c) {
  c.write("NOTHING", 0, &parse_words, &reply_count);  // 0 words: not even the name
}

// Registration-time refusals throw when the app is hosted: the server fails at startup,
// the app's first test fails, each with the message.
template <class App>
std::string refusal() {
  try {
    AppHost<App> host;
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "(hosted without complaint)";
}

TEST(AppChecks, AnEmptyArityIsRefusedWhenHosted) {
  EXPECT_EQ(refusal<TableApp<1>>(),
            "hmdb: app checks: command BACKWARDS: arity {3, 2} allows no command: it counts words with the name, from 1 "
            "(n: exactly n, -n: at least n, {min, max})");
  EXPECT_EQ(refusal<TableApp<2>>(),
            "hmdb: app checks: command NOTHING: arity {0, 0} allows no command: it counts words with the name, from 1 "
            "(n: exactly n, -n: at least n, {min, max})");
}

}  // namespace
}  // namespace hmdb
