// tests/apps/app_checks_test.cc — what hmdb/app.h checks when an app is hosted (registration
// time) rather than compiled: arity ranges, reserved, repeated and oversized command names;
// and that every reply is one complete RESP value (hmdb/reply.h's reply_problem, which the
// test driver applies to every command). (Signatures are checked at compile time:
// tests/compile_fail; AppHost's own reply check in HMDB_CHECK_REPLIES builds:
// app_checks_debug_test.cc.)
#include <gtest/gtest.h>

#include <cmath>
#include <initializer_list>
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

// One app per mistake: a command named like one the engine answers first, twice, or not
// at all.
template <const char* kCommand>
struct NamedApp {
  static constexpr std::string_view kName = "checks";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = std::monostate;
  static void define(Commands<State>& c) {
    c.write("FIRST", 2, &parse_words, &reply_count);
    c.write(kCommand, -1, &parse_words, &reply_count);
  }
  static void save(const State&, Encoder&) {}
  static bool load(State&, Decoder&, uint32_t) { return true; }
};
constexpr char kPing[] = "ping";  // any case: names are matched upper case
constexpr char kCluster[] = "CLUSTER";
constexpr char kExec[] = "Exec";
constexpr char kWatch[] = "WATCH";
constexpr char kEngine[] = "hmdb.req";
constexpr char kEngineFuture[] = "HMDB.ANYTHING";
constexpr char kKvHousekeeping[] = "HMDB.EXPIRE";
constexpr char kFirst[] = "first";
constexpr char kEmpty[] = "";
constexpr char kLong[] = "A_NAME_OF_SIXTY_FIVE_BYTES_ONE_BYTE_LONGER_THAN_THE_ENGINE_TAKES_";

TEST(AppChecks, ReservedRepeatedAndOversizedNamesAreRefusedWhenHosted) {
  EXPECT_EQ(refusal<NamedApp<kPing>>(),
            "hmdb: app checks: command PING is reserved: the server answers PING itself, before any app command, so "
            "the app's would never run (hmdb/reserved_names.h)");
  EXPECT_EQ(refusal<NamedApp<kCluster>>(),
            "hmdb: app checks: command CLUSTER is reserved: the server answers CLUSTER itself, before any app command, "
            "so the app's would never run (hmdb/reserved_names.h)");
  EXPECT_EQ(refusal<NamedApp<kExec>>(),
            "hmdb: app checks: command EXEC is reserved: the engine runs transactions (MULTI, EXEC, DISCARD, WATCH, "
            "UNWATCH) for every app, so the app's EXEC would never run (hmdb/reserved_names.h)");
  EXPECT_NE(refusal<NamedApp<kWatch>>().find("command WATCH is reserved"), std::string::npos);
  EXPECT_EQ(refusal<NamedApp<kEngine>>(),
            "hmdb: app checks: command HMDB.REQ is reserved: names starting with HMDB. are the engine's own commands "
            "(HMDB.REQ, ...), present and future (hmdb/reserved_names.h)");
  EXPECT_NE(refusal<NamedApp<kEngineFuture>>().find("command HMDB.ANYTHING is reserved"), std::string::npos);
  EXPECT_EQ(refusal<NamedApp<kKvHousekeeping>>(), "(hosted without complaint)") << "kv's, from before the rule";
  EXPECT_EQ(refusal<NamedApp<kFirst>>(), "hmdb: app checks: command FIRST is registered twice");
  EXPECT_EQ(refusal<NamedApp<kEmpty>>(), "hmdb: app checks: command name '' is not 1 to 64 bytes");
  static_assert(sizeof(kLong) - 1 == 65);
  EXPECT_EQ(refusal<NamedApp<kLong>>(), "hmdb: app checks: command name '" + std::string(kLong) + "' is not 1 to 64 bytes");
}

// Every name the engine answers first is refused: the whole shared list, each name.
TEST(AppChecks, EveryShellAndTransactionCommandIsReserved) {
  for (std::string_view n : kShellCommandNames) EXPECT_NE(reserved_command_reason(n), "") << n;
  for (std::string_view n : kTransactionCommandNames) EXPECT_NE(reserved_command_reason(n), "") << n;
  for (std::string_view n : kEngineWriteNames) EXPECT_NE(reserved_command_reason(n), "") << n;
  EXPECT_EQ(reserved_command_reason("SET"), "");
  EXPECT_EQ(reserved_command_reason("HMDB"), "") << "the prefix is HMDB. with its dot";
}

// ---- replies -------------------------------------------------------------------------------

// Every value the typed writers make is one complete value, in both protocols, nested too.
TEST(ReplyProblem, WhatTheWritersWriteIsOneCompleteValue) {
  for (Protocol p : {Protocol::kResp2, Protocol::kResp3}) {
    auto one = [&](auto write) {
      std::string out;
      Reply r(&out, p);
      write(r);
      return reply_problem(out, p);
    };
    EXPECT_EQ(one([](Reply& r) { r.ok(); }), "");
    EXPECT_EQ(one([](Reply& r) { r.status(""); }), "");
    EXPECT_EQ(one([](Reply& r) { r.error("ERR multi\r\nline"); }), "");
    EXPECT_EQ(one([](Reply& r) { r.integer(-42); }), "");
    EXPECT_EQ(one([](Reply& r) { r.bulk(std::string("a\r\n\0b", 5)); }), "");
    EXPECT_EQ(one([](Reply& r) { r.bulk(""); }), "");
    EXPECT_EQ(one([](Reply& r) { r.bulk_integer(7); }), "");
    EXPECT_EQ(one([](Reply& r) { r.null(); }), "");
    EXPECT_EQ(one([](Reply& r) { r.null_array(); }), "");
    EXPECT_EQ(one([](Reply& r) { r.array(0); }), "");
    EXPECT_EQ(one([](Reply& r) { r.double_value(-1.5); }), "");
    EXPECT_EQ(one([](Reply& r) { r.double_value(-HUGE_VAL); }), "");
    EXPECT_EQ(one([](Reply& r) { r.boolean(true); }), "");
    EXPECT_EQ(one([](Reply& r) { r.big_number("-123456789012345678901234567890"); }), "");
    EXPECT_EQ(one([](Reply& r) { r.verbatim("text\n", "txt"); }), "");
    EXPECT_EQ(one([](Reply& r) {
                r.map(2);
                r.bulk("a");
                r.set(2);
                r.integer(1);
                r.null();
                r.bulk("b");
                r.array(1);
                r.map(0);
              }),
              "");
  }
  // Deep nesting is walked without recursion.
  std::string deep;
  for (int i = 0; i < 100000; i++) deep += "*1\r\n";
  deep += ":1\r\n";
  EXPECT_EQ(reply_problem(deep, Protocol::kResp2), "");
}

// Each way a command can get it wrong, with the problem named.
TEST(ReplyProblem, MistakesAreNamed) {
  struct Case {
    std::string resp;
    Protocol protocol;
    std::string problem;  // the start of reply_problem's answer
  };
  const Case cases[] = {
      {"", Protocol::kResp2, "nothing"},
      {":1\r\n:2\r\n", Protocol::kResp2, "a second value after the first complete one"},
      {"+OK\r\n+OK\r\n", Protocol::kResp3, "a second value after the first complete one"},
      {"*3\r\n:1\r\n:2\r\n", Protocol::kResp2, "an incomplete value: an aggregate promised 1 more element than"},
      {"*2\r\n*2\r\n:1\r\n", Protocol::kResp2, "an incomplete value: an aggregate promised 2 more elements"},
      {"%1\r\n+k\r\n", Protocol::kResp3, "an incomplete value: an aggregate promised 1 more element"},
      {"*1000000\r\n:1\r\n", Protocol::kResp2, "an incomplete value: an aggregate of 1000000 elements"},
      {"$5\r\nabc\r\n", Protocol::kResp2, "an incomplete bulk string of 5 bytes"},
      {"$2\r\nabc\r\n", Protocol::kResp2, "a bulk string whose CRLF is not after its 2 bytes"},
      {"+OK", Protocol::kResp2, "a line without its CRLF"},
      {"+O\nK\r\n", Protocol::kResp2, "a CR or LF inside a line"},
      {":12a\r\n", Protocol::kResp2, "a bad integer"},
      {":+1\r\n", Protocol::kResp2, "a bad integer"},
      {"*-2\r\n", Protocol::kResp2, "a bad element count '-2'"},
      {"*-1\r\n", Protocol::kResp3, "a bad element count '-1'"},  // RESP3 has one null: _
      {"$-1\r\n", Protocol::kResp3, "a bad length '-1'"},
      {"%1\r\n+k\r\n+v\r\n", Protocol::kResp2, "a RESP3 value ('%') to a RESP2 client"},
      {"_\r\n", Protocol::kResp2, "a RESP3 value ('_') to a RESP2 client"},
      {"#x\r\n", Protocol::kResp3, "a boolean other than #t or #f"},
      {"=3\r\nabc\r\n", Protocol::kResp3, "a verbatim string without its 3-letter format"},
      {"(12x\r\n", Protocol::kResp3, "a big number that is not digits"},
      {">1\r\n+x\r\n", Protocol::kResp3, "a push or attribute"},
      {"?\r\n", Protocol::kResp2, "an unknown type byte '?'"},
  };
  for (const Case& c : cases) {
    const std::string got = reply_problem(c.resp, c.protocol);
    EXPECT_EQ(got.substr(0, c.problem.size()), c.problem) << detail::quote_resp(c.resp) << ": " << got;
  }
}

// The test driver checks every reply: a command that writes two values, an array header with
// too few elements or nothing fails the test that ran it, naming the command. (In a build with
// HMDB_CHECK_REPLIES, AppHost finds it first, with the same words.)
struct SloppyApp {
  static constexpr std::string_view kName = "sloppy";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = std::monostate;
  static void define(Commands<State>& c) {
    c.write("TWO", 1, &parse_words, [](State&, const Words&, const ApplyContext&, Reply& r) {
      r.ok();
      r.ok();
    });
    c.write("SHORT", 1, &parse_words, [](State&, const Words&, const ApplyContext&, Reply& r) {
      r.array(3);
      r.integer(1);
      r.integer(2);
    });
    c.query("NOTHING", 1, [](const State&, Args, const QueryContext&, Reply&) {});
    c.query("SHORTMAP", 1, [](const State&, Args, const QueryContext&, Reply& r) {
      r.map(1);
      r.bulk("key, but no value");
    });
    c.write("FINE", 1, &parse_words, &reply_count);
  }
  static void save(const State&, Encoder&) {}
  static bool load(State&, Decoder&, uint32_t) { return true; }
};

std::string driver_refusal(testing::AppDriver<SloppyApp>& db, std::initializer_list<std::string_view> words) {
  try {
    db.run(words);
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "(no complaint)";
}

TEST(AppChecks, TheTestDriverRefusesAReplyThatIsNotOneCompleteValue) {
  testing::AppDriver<SloppyApp> db;
  EXPECT_NE(driver_refusal(db, {"TWO"}).find("command TWO wrote a second value after the first complete one"),
            std::string::npos)
      << driver_refusal(db, {"TWO"});
  EXPECT_NE(driver_refusal(db, {"SHORT"}).find("command SHORT wrote an incomplete value: an aggregate promised 1 more"),
            std::string::npos)
      << driver_refusal(db, {"SHORT"});
  EXPECT_NE(driver_refusal(db, {"NOTHING"}).find("command NOTHING wrote nothing"), std::string::npos);
  db.protocol = Protocol::kResp3;
  EXPECT_NE(driver_refusal(db, {"SHORTMAP"}).find("command SHORTMAP wrote an incomplete value"), std::string::npos);
  EXPECT_EQ(db.run({"FINE"}), ":1\r\n");
  EXPECT_EQ(db.run({"NOSUCH"}), "-ERR unknown command\r\n");
}

// ---- a write's reply when it changes nothing (Options::unchanged_reply) ----------------------

// A stock of tokens: TAKE takes one (answering how many were left) or, with none left,
// answers a null and changes nothing, the case its unchanged_reply answers. The other writes'
// unchanged_replies break the promise one way each, for the test driver to catch.
struct Stock {
  uint64_t tokens = 0;
};
void apply_take(Stock& s, const Words&, const ApplyContext&, Reply& r) {
  if (s.tokens == 0) {
    r.null();
    return;
  }
  r.integer(static_cast<int64_t>(s.tokens--));
}
bool take_unchanged(const Stock& s, const Words&, const QueryContext&, Reply& r) {
  if (s.tokens != 0) return false;
  r.null();
  return true;
}
struct StockApp {
  static constexpr std::string_view kName = "stock";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = Stock;
  static void define(Commands<State>& c) {
    c.write("ADD", 1, &parse_words, [](Stock& s, const Words&, const ApplyContext&, Reply& r) {
      r.integer(static_cast<int64_t>(++s.tokens));
    });
    c.write("TAKE", {1, 2}, &parse_words, &apply_take).unchanged_reply(&take_unchanged);
    // Says it changes nothing when it takes a token.
    c.write("TAKEALWAYS", 1, &parse_words, &apply_take)
        .unchanged_reply([](const Stock&, const Words&, const QueryContext&, Reply& r) {
          r.null();
          return true;
        });
    // Right about the state, wrong about the reply (RESP2's null is $-1, not an empty string).
    c.write("TAKEWRONGREPLY", 1, &parse_words, &apply_take)
        .unchanged_reply([](const Stock& s, const Words&, const QueryContext&, Reply& r) {
          if (s.tokens != 0) return false;
          r.bulk("");
          return true;
        });
    // Changes nothing, but tells of it: a keyspace event.
    c.write("TOUCH", 1, &parse_words,
            [](Stock&, const Words&, const ApplyContext& ctx, Reply& r) {
              ctx.keyspace_event(keyspace::kGeneric, "touch", "stock");
              r.ok();
            })
        .unchanged_reply([](const Stock&, const Words&, const QueryContext&, Reply& r) {
          r.ok();
          return true;
        });
    c.query("COUNT", 1, [](const Stock& s, Args, const QueryContext&, Reply& r) {
      r.integer(static_cast<int64_t>(s.tokens));
    });
  }
  static void save(const State& s, Encoder& out) { out.u64(s.tokens); }
  static bool load(State& s, Decoder& in, uint32_t) {
    s.tokens = in.u64();
    return in.ok();
  }
};

std::string run_refusal(testing::Driver& db, std::initializer_list<std::string_view> words) {
  try {
    db.run(words);
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "(no complaint)";
}

TEST(UnchangedReply, TheHostAnswersOnlyWhatTheAppSaysChangesNothing) {
  testing::AppDriver<StockApp> db;
  EXPECT_TRUE(db.host.has_unchanged_replies());
  auto unchanged = [&](std::vector<std::string_view> words, std::string* out) {
    out->clear();
    Reply r(out);
    return db.host.unchanged_reply(Args(words.data(), words.size()), QueryContext{}, r);
  };
  std::string out;
  EXPECT_TRUE(unchanged({"TAKE"}, &out));
  EXPECT_EQ(out, testing::kNil);
  EXPECT_TRUE(unchanged({"take", "x"}, &out)) << "any case, any arity the command takes";
  EXPECT_FALSE(unchanged({"TAKE", "x", "y"}, &out)) << "a wrong arity is the write path's error";
  EXPECT_EQ(out, "");
  EXPECT_FALSE(unchanged({"ADD"}, &out)) << "a write without the form";
  EXPECT_FALSE(unchanged({"COUNT"}, &out)) << "a query";
  EXPECT_FALSE(unchanged({"NOSUCH"}, &out));
  EXPECT_EQ(db.run({"ADD"}), integer(1));
  EXPECT_FALSE(unchanged({"TAKE"}, &out)) << "it would take the token";
  EXPECT_EQ(out, "");
  EXPECT_EQ(db.run({"TAKE"}), integer(1));
  EXPECT_EQ(db.run({"TAKE"}), testing::kNil) << "the driver applied it and found its reply the same";
  // An app without the form: the engine never asks.
  testing::AppDriver<TableApp<0>> plain;
  EXPECT_FALSE(plain.host.has_unchanged_replies());
}

// The test driver applies a write whose unchanged_reply answered anyway, and refuses one
// whose apply then changed the state, answered otherwise or emitted an event.
TEST(UnchangedReply, TheTestDriverChecksThePromise) {
  testing::AppDriver<StockApp> db;
  EXPECT_EQ(db.run({"TAKEALWAYS"}), testing::kNil) << "with no token it is right";
  EXPECT_EQ(db.run({"ADD"}), integer(1));
  EXPECT_EQ(run_refusal(db, {"TAKEALWAYS"}),
            "hmdb testing: command TAKEALWAYS's unchanged_reply said it changes nothing and answers '$-1\\r\\n', but "
            "its apply answers ':1\\r\\n'");
  EXPECT_EQ(db.run({"COUNT"}), integer(0));
  EXPECT_EQ(db.run({"ADD"}), integer(1));
  EXPECT_EQ(db.run({"TAKEWRONGREPLY"}), integer(1)) << "with a token it says nothing";
  EXPECT_EQ(run_refusal(db, {"TAKEWRONGREPLY"}),
            "hmdb testing: command TAKEWRONGREPLY's unchanged_reply said it changes nothing and answers '$0\\r\\n\\r\\n', "
            "but its apply answers '$-1\\r\\n'");
  EXPECT_EQ(run_refusal(db, {"TOUCH"}),
            "hmdb testing: command TOUCH's unchanged_reply said it changes nothing, but its apply emitted 1 events");
}

// A form whose reply agrees but whose apply changes the state: the digest tells.
struct SilentTaker {
  static constexpr std::string_view kName = "silent";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = Stock;
  static void define(Commands<State>& c) {
    c.write("ADD", 1, &parse_words, [](Stock& s, const Words&, const ApplyContext&, Reply& r) {
      s.tokens++;
      r.ok();
    });
    c.write("DROP", 1, &parse_words, [](Stock& s, const Words&, const ApplyContext&, Reply& r) {
      s.tokens = 0;
      r.ok();
    }).unchanged_reply([](const Stock&, const Words&, const QueryContext&, Reply& r) {
      r.ok();
      return true;
    });
  }
  static void save(const State& s, Encoder& out) { out.u64(s.tokens); }
  static bool load(State& s, Decoder& in, uint32_t) {
    s.tokens = in.u64();
    return in.ok();
  }
};

TEST(UnchangedReply, TheTestDriverSeesAChangedState) {
  testing::AppDriver<SilentTaker> db;
  EXPECT_EQ(db.run({"DROP"}), kOk) << "nothing to drop: right";
  EXPECT_EQ(db.run({"ADD"}), kOk);
  EXPECT_EQ(run_refusal(db, {"DROP"}),
            "hmdb testing: command DROP's unchanged_reply said it changes nothing, but its apply changed the state");
}

// Where the form cannot hold, hosting the app fails: on a query, on a blocking write, and
// with a type that is not what the write's parse fills in.
template <int kCase>
struct MisplacedUnchanged {
  static constexpr std::string_view kName = "misplaced";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = Stock;
  static void define(Commands<State>& c);
  static void save(const State& s, Encoder& out) { out.u64(s.tokens); }
  static bool load(State& s, Decoder& in, uint32_t) {
    s.tokens = in.u64();
    return in.ok();
  }
};
struct Other {};
template <>
void MisplacedUnchanged<0>::define(Commands<State>& c) {
  c.query("COUNT", 1, [](const Stock&, Args, const QueryContext&, Reply& r) { r.integer(0); })
      .unchanged_reply(&take_unchanged);
}
template <>
void MisplacedUnchanged<1>::define(Commands<State>& c) {
  c.write("BTAKE", 2, &parse_words, &apply_take).blocking(-1).unchanged_reply(&take_unchanged);
}
template <>
void MisplacedUnchanged<2>::define(Commands<State>& c) {
  c.write("TAKE", 1, &parse_words, &apply_take)
      .unchanged_reply([](const Stock&, const Other&, const QueryContext&, Reply&) { return false; });
}

TEST(UnchangedReply, RefusedWhereItCannotHold) {
  EXPECT_EQ(refusal<MisplacedUnchanged<0>>(),
            "hmdb: app misplaced: command COUNT is a query: unchanged_reply is a write's (a query changes nothing "
            "anyway)");
  EXPECT_EQ(refusal<MisplacedUnchanged<1>>(),
            "hmdb: app misplaced: command BTAKE blocks: it has no unchanged_reply (finding nothing, it waits)");
  EXPECT_EQ(refusal<MisplacedUnchanged<2>>(),
            "hmdb: app misplaced: command TAKE: unchanged_reply's function takes another type than TAKE's parse "
            "fills in");
}

// begin_save (hmdb/state_machine.h, SaveProducer): the host hands out the app's producer,
// begun on the hosted state; an app without the hook has none (the engine forks).
struct SlicedApp {
  static constexpr std::string_view kName = "sliced";
  static constexpr uint32_t kSchemaVersion = 1;
  struct State {
    int begun = 0;
  };
  static void define(Commands<State>& c) {
    c.query("BEGUN", 1, [](const State& s, Args, const QueryContext&, Reply& r) { r.integer(s.begun); });
  }
  static void save(const State& s, Encoder& out) { out.u32(static_cast<uint32_t>(s.begun)); }
  static bool load(State& s, Decoder& in, uint32_t) {
    s.begun = static_cast<int>(in.u32());
    return in.ok();
  }
  struct Producer : SaveProducer {
    explicit Producer(int v) : value(v) {}
    bool next(Encoder& out, const SliceBudget&) override {
      out.u32(static_cast<uint32_t>(value));
      return true;
    }
    int value;
  };
  static std::unique_ptr<SaveProducer> begin_save(State& s) { return std::make_unique<Producer>(++s.begun); }
};

TEST(BeginSave, TheHostHandsOutTheAppsProducerOnTheHostedState) {
  testing::AppDriver<SlicedApp> db;
  std::unique_ptr<SaveProducer> p = db.host.begin_save();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(db.run({"BEGUN"}), integer(1)) << "begun on the hosted state, not a copy";
  std::string bytes;
  Encoder out(&bytes);
  EXPECT_TRUE(p->next(out, SliceBudget{}));
  std::string whole;
  Encoder all(&whole);
  db.host.save(all);
  EXPECT_EQ(bytes, whole);
  testing::AppDriver<TableApp<0>> plain;
  EXPECT_EQ(plain.host.begin_save(), nullptr) << "no hook: the engine forks";
}

}  // namespace
}  // namespace hmdb
