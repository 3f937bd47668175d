// tests/apps/versions_test.cc — an app's version history (hmdb/app.h, Commands::version):
// a toy app, Tally, in three versions, each a complete app as its binary would hold it.
//
//   v1: INCRBY k n (n whole units), ZERO k (sets k to 0), DOUBLE k, GET k.
//   v2: INCRBY is renamed ADD; ZERO deletes k (a v1 ZERO still sets 0: the old handler);
//       the snapshot gains a count of resets.
//   v3: ADD's n is in hundredths (a v2 ADD is upcast: n * 100); DOUBLE is removed; CAP k max
//       is new; values are kept in hundredths (the snapshot too).
//
// Checked: an entry means what its version defines (the same words apply differently under
// 2 and 3); renamed, removed and added commands in the tables of each version; what clients
// may send under each active version; a command that does not apply under its version is
// reported, never answered; snapshots load along the chain v1 -> v2 -> v3; and every mistake
// in a history is refused when the app is hosted, with a message naming it.
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/apply.h"
#include "core/batch.h"
#include "hmdb/app.h"

namespace hmdb {
namespace {

struct KeyArg {
  std::string_view key;
};
struct AmountArgs {
  std::string_view key;
  int64_t amount = 0;
};

bool parse_key(Args a, KeyArg& out, std::string&) {
  out.key = a[1];
  return true;
}
bool parse_amount(Args a, AmountArgs& out, std::string& err) {
  out.key = a[1];
  if (!parse_int64(a[2], &out.amount)) {
    err = "ERR value is not an integer or out of range";
    return false;
  }
  return true;
}

using Values = std::map<std::string, int64_t, std::less<>>;

void save_values(const Values& v, Encoder& out) {
  out.varint(v.size());
  for (const auto& [k, n] : v) {
    out.bytes(k);
    out.svarint(n);
  }
}
bool load_values(Values& v, Decoder& in) {
  const uint64_t n = in.count(2);
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string k(in.bytes());
    v[k] = in.svarint();
  }
  return in.ok();
}

void query_get(const Values& v, Args a, Reply& r) {
  auto it = v.find(a[1]);
  if (it == v.end()) r.null();
  else r.integer(it->second);
}

// ---- version 1 ----------------------------------------------------------------------------
struct TallyV1 {
  static constexpr std::string_view kName = "tally";
  static constexpr uint32_t kSchemaVersion = 1;
  struct State {
    Values units;
  };
  static void incrby(State& s, const AmountArgs& a, const ApplyContext&, Reply& r) {
    s.units[std::string(a.key)] += a.amount;
    r.ok();
  }
  static void reset(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    s.units[std::string(a.key)] = 0;
    r.ok();
  }
  static void twice(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    s.units[std::string(a.key)] *= 2;
    r.ok();
  }
  static void define(Commands<State>& c) {
    c.write("INCRBY", 3, &parse_amount, &incrby);
    c.write("ZERO", 2, &parse_key, &reset);
    c.write("DOUBLE", 2, &parse_key, &twice);
    c.query("GET", 2, [](const State& s, Args a, const QueryContext&, Reply& r) { query_get(s.units, a, r); });
  }
  static void save(const State& s, Encoder& out) { save_values(s.units, out); }
  static bool load(State& s, Decoder& in, uint32_t version) { return version == 1 && load_values(s.units, in); }
};

// ---- version 2 ----------------------------------------------------------------------------
struct TallyV2 {
  static constexpr std::string_view kName = "tally";
  static constexpr uint32_t kSchemaVersion = 2;
  struct State {
    Values units;
    uint64_t resets = 0;
  };
  static void add(State& s, const AmountArgs& a, const ApplyContext&, Reply& r) {
    s.units[std::string(a.key)] += a.amount;
    r.ok();
  }
  static void reset(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    if (auto it = s.units.find(a.key); it != s.units.end()) s.units.erase(it);
    s.resets++;
    r.ok();
  }
  static void reset_v1(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {  // the rule as it was
    s.units[std::string(a.key)] = 0;
    r.ok();
  }
  static void twice(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    s.units[std::string(a.key)] *= 2;
    r.ok();
  }
  static void define(Commands<State>& c) {
    c.write("ADD", 3, &parse_amount, &add);
    c.write("ZERO", 2, &parse_key, &reset);
    c.write("DOUBLE", 2, &parse_key, &twice);
    c.query("GET", 2, [](const State& s, Args a, const QueryContext&, Reply& r) { query_get(s.units, a, r); });
    c.version(2).renamed("INCRBY", "ADD").old_handler("ZERO", 2, &parse_key, &reset_v1);
  }
  static void save(const State& s, Encoder& out) {
    save_values(s.units, out);
    out.varint(s.resets);
  }
  static State migrate(TallyV1::State&& old) { return State{std::move(old.units), 0}; }
  static bool load(State& s, Decoder& in, uint32_t version) {
    if (version == 2) {
      if (!load_values(s.units, in)) return false;
      s.resets = in.varint();
      return in.ok();
    }
    TallyV1::State old;  // older: the version before reads it, then it is migrated
    if (!TallyV1::load(old, in, version)) return false;
    s = migrate(std::move(old));
    return true;
  }
};

// ---- version 3 ----------------------------------------------------------------------------
struct TallyV3 {
  static constexpr std::string_view kName = "tally";
  static constexpr uint32_t kSchemaVersion = 3;
  struct State {
    Values hundredths;
    uint64_t resets = 0;
  };
  static void add(State& s, const AmountArgs& a, const ApplyContext&, Reply& r) {  // a.amount: hundredths
    s.hundredths[std::string(a.key)] += a.amount;
    r.ok();
  }
  static AmountArgs add_from_v2(const AmountArgs& v2) { return AmountArgs{v2.key, v2.amount * 100}; }
  static void reset(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    if (auto it = s.hundredths.find(a.key); it != s.hundredths.end()) s.hundredths.erase(it);
    s.resets++;
    r.ok();
  }
  static void reset_v1(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    s.hundredths[std::string(a.key)] = 0;
    r.ok();
  }
  static void twice_v2(State& s, const KeyArg& a, const ApplyContext&, Reply& r) {
    s.hundredths[std::string(a.key)] *= 2;
    r.ok();
  }
  static void cap(State& s, const AmountArgs& a, const ApplyContext&, Reply& r) {
    auto it = s.hundredths.find(a.key);
    if (it != s.hundredths.end()) it->second = std::min(it->second, a.amount);
    r.ok();
  }
  static void define(Commands<State>& c) {
    c.write("ADD", 3, &parse_amount, &add);
    c.write("ZERO", 2, &parse_key, &reset);
    c.write("CAP", 3, &parse_amount, &cap);
    c.query("GET", 2, [](const State& s, Args a, const QueryContext&, Reply& r) { query_get(s.hundredths, a, r); });
    c.version(2).renamed("INCRBY", "ADD").old_handler("ZERO", 2, &parse_key, &reset_v1);
    c.version(3)
        .upcast("ADD", 3, &parse_amount, &add_from_v2)
        .removed("DOUBLE", 2, &parse_key, &twice_v2)
        .added("CAP");
  }
  static void save(const State& s, Encoder& out) {
    save_values(s.hundredths, out);
    out.varint(s.resets);
  }
  static State migrate(TallyV2::State&& old) {
    State s;
    for (auto& [k, n] : old.units) s.hundredths[k] = n * 100;
    s.resets = old.resets;
    return s;
  }
  static bool load(State& s, Decoder& in, uint32_t version) {
    if (version == 3) {
      if (!load_values(s.hundredths, in)) return false;
      s.resets = in.varint();
      return in.ok();
    }
    TallyV2::State old;  // v1 and v2: TallyV2::load reads both (v1 through TallyV1's)
    if (!TallyV2::load(old, in, version)) return false;
    s = migrate(std::move(old));
    return true;
  }
};

// Applies one command logged under `version`, as every node applies a committed entry.
template <class App>
core::ApplyResult apply_at(AppHost<App>& host, uint32_t version, std::vector<std::string_view> words,
                           std::string* reply = nullptr) {
  core::BatchBuilder b(1'700'000'000'000);
  b.add(Args(words.data(), words.size()));
  const std::string payload = b.finish();
  struct One final : core::ApplySink {
    std::string* out;
    core::ReplyTo reply_to(size_t) override { return core::ReplyTo{out, Protocol::kResp2}; }
    void replied(size_t) override {}
  } sink;
  std::string ignored;
  sink.out = reply ? reply : &ignored;
  static core::ApplyScratch scratch;  // the result's divergence is a view into it
  return core::apply_batch(host, payload, 1, version, &sink, scratch);
}

template <class App>
std::string get(const AppHost<App>& host, std::string_view key) {
  std::vector<std::string_view> words = {"GET", key};
  std::string out;
  Reply r(&out);
  host.query(Args(words.data(), words.size()), QueryContext{}, r);
  return out;
}

template <class App>
bool validates(const AppHost<App>& host, std::vector<std::string_view> words, std::string* error = nullptr) {
  std::string e;
  const bool ok = host.validate(Args(words.data(), words.size()), &e);
  if (error) *error = e;
  return ok;
}

TEST(Versions, AnEntryMeansWhatItsVersionDefines) {
  AppHost<TallyV3> host;
  host.set_active_schema_version(3);
  // Version 1: INCRBY counts whole units (1 -> 2: renamed ADD, 2 -> 3: upcast to hundredths).
  ASSERT_EQ(apply_at(host, 1, {"INCRBY", "a", "5"}).status, core::ApplyStatus::kOk);
  EXPECT_EQ(get(host, "a"), ":500\r\n");
  // Version 2: the same words under ADD's name mean the same, version 3's mean hundredths.
  ASSERT_EQ(apply_at(host, 2, {"ADD", "b", "5"}).status, core::ApplyStatus::kOk);
  ASSERT_EQ(apply_at(host, 3, {"ADD", "c", "5"}).status, core::ApplyStatus::kOk);
  EXPECT_EQ(get(host, "b"), ":500\r\n");
  EXPECT_EQ(get(host, "c"), ":5\r\n");
  // ZERO: version 1's rule sets 0 (the old handler), version 2's deletes.
  ASSERT_EQ(apply_at(host, 1, {"ZERO", "a"}).status, core::ApplyStatus::kOk);
  ASSERT_EQ(apply_at(host, 2, {"ZERO", "b"}).status, core::ApplyStatus::kOk);
  EXPECT_EQ(get(host, "a"), ":0\r\n");
  EXPECT_EQ(get(host, "b"), "$-1\r\n");
  EXPECT_EQ(host.state().resets, 1u);
  // DOUBLE, removed in 3, still applies as logged under 1 and 2.
  ASSERT_EQ(apply_at(host, 2, {"DOUBLE", "c"}).status, core::ApplyStatus::kOk);
  ASSERT_EQ(apply_at(host, 1, {"DOUBLE", "c"}).status, core::ApplyStatus::kOk);
  EXPECT_EQ(get(host, "c"), ":20\r\n");
  // CAP, new in 3.
  ASSERT_EQ(apply_at(host, 3, {"CAP", "c", "7"}).status, core::ApplyStatus::kOk);
  EXPECT_EQ(get(host, "c"), ":7\r\n");
}

TEST(Versions, WhatDoesNotApplyUnderItsVersionIsADivergenceNotAReply) {
  AppHost<TallyV3> host;
  host.set_active_schema_version(3);
  struct Case {
    uint32_t version;
    std::vector<std::string_view> words;
    std::string why;  // part of the reason
  };
  const std::vector<Case> cases = {
      {3, {"DOUBLE", "a"}, "schema version 3 has no write of that name"},  // removed in 3
      {2, {"CAP", "a", "1"}, "schema version 2 has no write of that name"},  // added in 3
      {2, {"INCRBY", "a", "1"}, "schema version 2 has no write of that name"},  // renamed in 2
      {1, {"ADD", "a", "1"}, "schema version 1 has no write of that name"},
      {3, {"ADD", "a"}, "2 words, but its arity at schema version 3 is 3"},
      {1, {"INCRBY", "a", "x"}, "ERR value is not an integer or out of range"},  // refused by v1's parse
      {3, {"GET", "a"}, "schema version 3 has no write of that name"},
  };
  for (const Case& c : cases) {
    std::string reply;
    const core::ApplyResult r = apply_at(host, c.version, c.words, &reply);
    EXPECT_EQ(r.status, core::ApplyStatus::kDiverged) << c.words[0] << " at " << c.version;
    EXPECT_NE(r.divergence.find(c.why), std::string::npos) << r.divergence;
    EXPECT_NE(r.divergence.find("'" + std::string(c.words[0]) + "'"), std::string::npos) << r.divergence;
    EXPECT_EQ(reply, "") << "no client reply";
  }
  EXPECT_TRUE(host.state().hundredths.empty()) << "nothing applied";
}

TEST(Versions, AnEntryStampedAboveTheActiveVersionOrOutsideTheBinaryIsRefused) {
  AppHost<TallyV3> host;  // active: 1 (an empty state)
  EXPECT_EQ(host.active_schema_version(), kFirstSchemaVersion);
  const core::ApplyResult above = apply_at(host, 2, {"ADD", "a", "1"});
  EXPECT_EQ(above.status, core::ApplyStatus::kDiverged);
  EXPECT_NE(above.divergence.find("above the active version 1"), std::string::npos) << above.divergence;
  EXPECT_EQ(apply_at(host, 4, {"ADD", "a", "1"}).status, core::ApplyStatus::kUnsupportedSchema);
  EXPECT_EQ(apply_at(host, 0, {"ADD", "a", "1"}).status, core::ApplyStatus::kUnsupportedSchema);
  EXPECT_TRUE(host.state().hundredths.empty());
}

TEST(Versions, ClientsSpeakTheActiveVersion) {
  AppHost<TallyV3> host;
  std::string error;
  host.set_active_schema_version(1);
  EXPECT_TRUE(validates(host, {"INCRBY", "a", "1"}));
  EXPECT_TRUE(validates(host, {"DOUBLE", "a"}));
  EXPECT_FALSE(validates(host, {"ADD", "a", "1"}, &error));
  EXPECT_EQ(error, "ERR ADD is a command of schema version 3; the cluster's active schema version is 1");
  EXPECT_EQ(host.kind("ADD"), CommandKind::kWrite) << "so that validate, not 'unknown command', answers";
  EXPECT_FALSE(validates(host, {"CAP", "a", "1"}));
  EXPECT_EQ(host.kind("GET"), CommandKind::kQuery);
  std::vector<std::string> names;
  for (const auto& d : host.describe_commands()) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"INCRBY", "ZERO", "GET", "DOUBLE"})) << "removed ones last";

  host.set_active_schema_version(3);
  EXPECT_TRUE(validates(host, {"ADD", "a", "1"}));
  EXPECT_TRUE(validates(host, {"CAP", "a", "1"}));
  EXPECT_FALSE(validates(host, {"DOUBLE", "a"}, &error));
  EXPECT_EQ(error, "ERR unknown command");
  EXPECT_EQ(host.kind("INCRBY"), CommandKind::kUnknown);
  names.clear();
  for (const auto& d : host.describe_commands()) names.push_back(d.name);
  EXPECT_EQ(names, (std::vector<std::string>{"ADD", "ZERO", "CAP", "GET"}));

  host.set_active_schema_version(4);  // a version this binary does not read
  EXPECT_FALSE(validates(host, {"ADD", "a", "1"}, &error));
  EXPECT_EQ(error, "ERR this node reads schema versions 1..3, not the cluster's active version 4");
}

// The old binary's state, saved, loads in the newer one as the newer one's migration makes it.
TEST(Versions, SnapshotsLoadAlongTheChain) {
  AppHost<TallyV1> v1;
  ASSERT_EQ(apply_at(v1, 1, {"INCRBY", "a", "3"}).status, core::ApplyStatus::kOk);
  ASSERT_EQ(apply_at(v1, 1, {"INCRBY", "b", "-2"}).status, core::ApplyStatus::kOk);
  Encoder enc;
  v1.save(enc);
  const std::string bytes = enc.take();

  AppHost<TallyV3> v3;
  Decoder in(bytes);
  ASSERT_TRUE(v3.load(in, 1));
  EXPECT_EQ(get(v3, "a"), ":300\r\n");
  EXPECT_EQ(get(v3, "b"), ":-200\r\n");

  AppHost<TallyV2> v2;
  Decoder in2(bytes);
  ASSERT_TRUE(v2.load(in2, 1));
  Encoder enc2;
  v2.save(enc2);
  const std::string bytes2 = enc2.take();
  AppHost<TallyV3> v3b;
  Decoder in3(bytes2);
  ASSERT_TRUE(v3b.load(in3, 2));
  EXPECT_EQ(v3b.digest(), v3.digest()) << "1 -> 3 in one load equals 1 -> 2, saved, -> 3";

  Decoder newer(bytes);
  EXPECT_FALSE(v2.load(newer, 3)) << "a newer snapshot is refused";
}

// Replaying version-1 entries in the version-3 binary gives the v1 binary's state migrated.
TEST(Versions, ReplayingOldEntriesEqualsMigratingTheOldState) {
  const std::vector<std::vector<std::string_view>> log = {
      {"INCRBY", "a", "4"}, {"INCRBY", "b", "7"}, {"DOUBLE", "a"}, {"ZERO", "b"}, {"INCRBY", "b", "1"},
  };
  AppHost<TallyV1> old;
  AppHost<TallyV3> replayed;
  for (const auto& words : log) {
    ASSERT_EQ(apply_at(old, 1, words).status, core::ApplyStatus::kOk);
    ASSERT_EQ(apply_at(replayed, 1, words).status, core::ApplyStatus::kOk);
  }
  Encoder enc;
  old.save(enc);
  const std::string bytes = enc.take();
  AppHost<TallyV3> migrated;
  Decoder in(bytes);
  ASSERT_TRUE(migrated.load(in, 1));
  EXPECT_EQ(replayed.digest(), migrated.digest());
  EXPECT_EQ(get(replayed, "a"), ":800\r\n");
  EXPECT_EQ(get(replayed, "b"), ":100\r\n");
}

// The digest at an older version: what that version's binary would report for the same data.
struct TallyV3WithDigests : TallyV3 {
  static uint64_t digest(const State& s) { return s.hundredths.size(); }
  static std::optional<uint64_t> digest_as(const State& s, uint32_t version) {
    if (version == 2) return 1000 + s.hundredths.size();
    return std::nullopt;  // version 1: say it cannot
  }
};

TEST(Versions, TheDigestAtAnOlderVersionIsTheAppsOrNothing) {
  AppHost<TallyV3WithDigests> host;
  host.state().hundredths["a"] = 1;
  EXPECT_EQ(host.digest_at(3), 1u);
  EXPECT_EQ(host.digest_at(2), 1001u);
  EXPECT_EQ(host.digest_at(1), std::nullopt);
  EXPECT_EQ(host.digest_at(4), std::nullopt) << "a version it does not read";
  AppHost<TallyV3> plain;  // neither digest_as nor save_as: only its own version
  EXPECT_EQ(plain.digest_at(3), plain.digest());
  EXPECT_EQ(plain.digest_at(2), std::nullopt);
}

// ---- mistakes in a history -----------------------------------------------------------------

template <void (*Define)(Commands<TallyV3::State>&), uint32_t Version = 3, uint32_t Oldest = 1>
struct Broken {
  static constexpr std::string_view kName = "broken";
  static constexpr uint32_t kSchemaVersion = Version;
  static constexpr uint32_t kOldestSchemaVersion = Oldest;
  using State = TallyV3::State;
  static void define(Commands<State>& c) {
    c.write("ADD", 3, &parse_amount, &TallyV3::add);
    c.write("ZERO", 2, &parse_key, &TallyV3::reset);
    c.query("GET", 2, [](const State& s, Args a, const QueryContext&, Reply& r) { query_get(s.hundredths, a, r); });
    Define(c);
  }
  static void save(const State&, Encoder&) {}
  static bool load(State&, Decoder&, uint32_t) { return true; }
};

template <class App>
std::string hosting_error() {
  try {
    AppHost<App> host;
  } catch (const std::logic_error& e) {
    return e.what();
  }
  return "";
}

KeyArg upcast_to_wrong_type(const AmountArgs& a) { return KeyArg{a.key}; }

void no_history(Commands<TallyV3::State>&) {}
void version_2_only(Commands<TallyV3::State>& c) { c.version(2); }
void full(Commands<TallyV3::State>& c) {
  c.version(2);
  c.version(3);
}
void beyond(Commands<TallyV3::State>& c) {
  full(c);
  c.version(4);
}
void added_unknown(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).added("NOPE");
}
void added_query(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).added("GET");
}
void renamed_to_unknown(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).renamed("OLD", "NEW");
}
void renamed_from_existing(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).renamed("ZERO", "ADD");
}
void upcast_to_wrong_type_history(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).upcast("ADD", 3, &parse_amount, &upcast_to_wrong_type);
}
void removed_existing(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).removed("ZERO", 2, &parse_key, &TallyV3::reset_v1);
}
void named_twice(Commands<TallyV3::State>& c) {
  full(c);
  c.version(3).added("ADD").old_handler("ADD", 3, &parse_amount, &TallyV3::add);
}
void old_handler_of_unknown(Commands<TallyV3::State>& c) {
  full(c);
  c.version(2).old_handler("GONE", 2, &parse_key, &TallyV3::reset_v1);
}
void below_oldest(Commands<TallyV3::State>& c) {
  c.version(2);
  c.version(3);
}

TEST(Versions, MistakesInAHistoryAreRefusedWhenTheAppIsHosted) {
  EXPECT_EQ(hosting_error<Broken<&full>>(), "");
  EXPECT_EQ(hosting_error<Broken<&no_history>>(),
            "hmdb: app broken: the app is at schema version 3 but define() says nothing of version 2: list what "
            "changed in it with c.version(2) (just `c.version(2);` if no command did)");
  EXPECT_NE(hosting_error<Broken<&version_2_only>>().find("says nothing of version 3"), std::string::npos);
  EXPECT_NE(hosting_error<Broken<&beyond>>().find("c.version(4) describes a version this app does not read"),
            std::string::npos);
  EXPECT_EQ(hosting_error<Broken<&added_unknown>>(),
            "hmdb: app broken: c.version(3).added(\"NOPE\"): no command NOPE at version 3");
  EXPECT_NE(hosting_error<Broken<&added_query>>().find("GET is a query; queries are not logged"), std::string::npos);
  EXPECT_NE(hosting_error<Broken<&renamed_to_unknown>>().find("no command NEW at version 3"), std::string::npos);
  EXPECT_NE(hosting_error<Broken<&renamed_from_existing>>().find("ZERO is still a command at version 3"),
            std::string::npos);
  EXPECT_NE(hosting_error<Broken<&upcast_to_wrong_type_history>>().find(
                "the upcast's result is not the type ADD's parse makes at version 3"),
            std::string::npos);
  EXPECT_NE(hosting_error<Broken<&removed_existing>>().find("ZERO is still a write at version 3"), std::string::npos);
  EXPECT_NE(hosting_error<Broken<&named_twice>>().find("c.version(3) names ADD twice"), std::string::npos);
  EXPECT_NE(hosting_error<Broken<&old_handler_of_unknown>>().find("no command GONE at version 2"), std::string::npos);
  using BelowOldest = Broken<&below_oldest, 3, 2>;
  using AtVersion2 = Broken<&version_2_only, 2, 1>;
  using OnlyNewest = Broken<&no_history, 3, 3>;
  EXPECT_NE(hosting_error<BelowOldest>().find("c.version(2) describes a version this app does not read"),
            std::string::npos);
  EXPECT_EQ(hosting_error<AtVersion2>(), "");
  EXPECT_EQ(hosting_error<OnlyNewest>(), "") << "an app reading only its newest version";
}

TEST(Versions, AnAppReadsNothingOlderThanItsOldestVersion) {
  using OnlyNewest = Broken<&no_history, 3, 3>;
  AppHost<OnlyNewest> host;
  EXPECT_EQ(host.oldest_schema_version(), 3u);
  EXPECT_FALSE(host.reads_schema_version(2));
  EXPECT_EQ(apply_at(host, 2, {"ADD", "a", "1"}).status, core::ApplyStatus::kUnsupportedSchema);
  // An entry logged under the active version (1), which this binary does not read, even one
  // the engine would apply without the app (PUBLISH): nothing applies past it.
  EXPECT_EQ(apply_at(host, 1, {"ADD", "a", "1"}).status, core::ApplyStatus::kUnsupportedSchema);
  EXPECT_EQ(apply_at(host, 1, {"PUBLISH", "c", "m"}).status, core::ApplyStatus::kUnsupportedSchema);
  Decoder in("");
  EXPECT_FALSE(host.load(in, 2));
  std::string error;
  EXPECT_FALSE(validates(host, {"ADD", "a", "1"}, &error)) << "an empty state is at version 1";
  EXPECT_EQ(error, "ERR this node reads schema versions 3..3, not the cluster's active version 1");
}

}  // namespace
}  // namespace hmdb
