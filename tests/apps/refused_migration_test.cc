// tests/apps/refused_migration_test.cc — a migration that must be refused (docs/migrations.md):
// a toy counter app whose version 2 keeps 32-bit counters refuses, in load(), a version-1
// state holding a counter it cannot hold, with Decoder::refuse(why). The reason reaches
// core::load_state (LoadState::kRefused: what startup, a snapshot install and `hmdb dry-run`
// report as a refused migration, exit code 1, instead of a damaged snapshot), while malformed
// bytes are still kBadApp; and the migration kit names it with the seed that built the state.
#include <gtest/gtest.h>

#include <absl/container/btree_map.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/request_table.h"
#include "core/state.h"
#include "hmdb/app.h"
#include "hmdb/testing_migration.h"

namespace hmdb {
namespace {

// INCRBY <counter> <n>: version 1 counts in 64 bits.
struct CountersV1 {
  static constexpr std::string_view kName = "counters";
  static constexpr uint32_t kSchemaVersion = 1;
  struct State {
    absl::btree_map<std::string, uint64_t, std::less<>> counters;
  };
  struct Incr {
    std::string_view key;
    uint64_t by = 0;
  };
  static bool parse_incr(Args a, Incr& out, std::string& err) {
    out.key = a[1];
    if (!parse_uint64(a[2], &out.by)) { err = "ERR increment must be a non-negative integer"; return false; }
    return true;
  }
  static void apply_incr(State& s, const Incr& a, const ApplyContext&, Reply& r) {
    uint64_t& v = s.counters[std::string(a.key)];
    if (__builtin_add_overflow(v, a.by, &v)) { r.error("ERR counter would overflow"); return; }
    r.integer(static_cast<int64_t>(v));
  }
  static void define(Commands<State>& c) { c.write("INCRBY", 3, &parse_incr, &apply_incr); }
  static void save(const State& s, Encoder& out) {
    out.varint(s.counters.size());
    for (const auto& [k, v] : s.counters) {
      out.bytes(k);
      out.varint(v);
    }
  }
  static bool load(State& s, Decoder& in, uint32_t) {
    const uint64_t n = in.count<std::string, uint64_t>();
    for (uint64_t i = 0; i < n && in.ok(); i++) {
      std::string k(in.bytes());
      s.counters[k] = in.varint();
    }
    return in.ok();
  }
};

// Version 2 keeps counters in 32 bits: a version-1 state with a larger one cannot migrate.
struct CountersV2 {
  static constexpr std::string_view kName = "counters";
  static constexpr uint32_t kSchemaVersion = 2;
  struct State {
    absl::btree_map<std::string, uint32_t, std::less<>> counters;
  };
  static void apply_incr(State& s, const CountersV1::Incr& a, const ApplyContext&, Reply& r) {
    uint32_t& v = s.counters[std::string(a.key)];
    if (a.by > UINT32_MAX - v) { r.error("ERR counter would overflow"); return; }
    v += static_cast<uint32_t>(a.by);
    r.integer(v);
  }
  static void define(Commands<State>& c) {
    c.write("INCRBY", 3, &CountersV1::parse_incr, &apply_incr);
    c.version(2);  // the words are unchanged (a version-1 entry past 32 bits is refused by this rule)
  }
  static void save(const State& s, Encoder& out) {
    out.varint(s.counters.size());
    for (const auto& [k, v] : s.counters) {
      out.bytes(k);
      out.u32(v);
    }
  }
  static bool save_as(const State& s, uint32_t version, Encoder& out) {
    if (version != 1) return false;
    CountersV1::State old;
    for (const auto& [k, v] : s.counters) old.counters[k] = v;
    CountersV1::save(old, out);
    return true;
  }
  static bool load(State& s, Decoder& in, uint32_t version) {
    if (version == 2) {
      const uint64_t n = in.count<std::string, uint32_t>();
      for (uint64_t i = 0; i < n && in.ok(); i++) {
        std::string k(in.bytes());
        s.counters[k] = in.u32();
      }
      return in.ok();
    }
    CountersV1::State old;
    if (!CountersV1::load(old, in, version)) return false;
    for (const auto& [k, v] : old.counters) {
      if (v > UINT32_MAX) {
        in.refuse("counter '" + k + "' holds " + std::to_string(v) + ", more than version 2's 32-bit counters hold (" +
                  std::to_string(UINT32_MAX) + ")");
        return false;
      }
      s.counters[k] = static_cast<uint32_t>(v);
    }
    return true;
  }
};

std::string v1_snapshot(uint64_t value) {
  AppHost<CountersV1> v1;
  v1.state().counters["small"] = 7;
  v1.state().counters["big"] = value;
  Encoder enc;
  v1.save(enc);
  return enc.take();
}

TEST(RefusedMigration, TheReasonReachesLoadStateAndMalformedBytesStayBadApp) {
  AppHost<CountersV2> v2;
  core::RequestTable requests;
  {
    const std::string bytes = v1_snapshot(5'000'000'000);
    Decoder in(bytes);
    EXPECT_FALSE(v2.load(in, 1));
    EXPECT_EQ(in.refusal(), "counter 'big' holds 5000000000, more than version 2's 32-bit counters hold (4294967295)");
    EXPECT_TRUE(v2.state().counters.empty()) << "a refused load leaves the state empty";
  }
  {
    // Through the engine's loader: the state format with its request table and active version.
    AppHost<CountersV1> v1;
    v1.state().counters["big"] = 5'000'000'000;
    Encoder enc;
    core::save_state(v1, requests, enc);  // what a version-1 node's snapshot holds
    const std::string payload = enc.take();
    Decoder in(payload);
    EXPECT_EQ(core::load_state(v2, requests, in, 1, core::kStateFormatNewest), core::LoadState::kRefused);
    const std::string line = core::refused_migration(v2, "snapshot snap-1.hmsnap", 1, in.refusal());
    EXPECT_NE(line.find("app 'counters' at schema version 2 refuses to migrate this state of schema version 1: counter "
                        "'big' holds 5000000000"),
              std::string::npos)
        << line;
  }
  {
    const std::string fits = v1_snapshot(4'000'000'000);
    Decoder in(fits);
    ASSERT_TRUE(v2.load(in, 1));
    EXPECT_EQ(v2.state().counters.at("big"), 4'000'000'000u);
    EXPECT_TRUE(in.refusal().empty());
  }
  {
    std::string broken = v1_snapshot(1);
    broken.resize(broken.size() - 1);
    Decoder in(broken);
    EXPECT_FALSE(v2.load(in, 1));
    EXPECT_TRUE(in.refusal().empty()) << "malformed bytes are not a refusal";
  }
}

TEST(RefusedMigration, TheKitNamesTheRefusalAndTheSeed) {
  testing::Migration<CountersV1, CountersV2> m;
  m.command = [](std::mt19937_64& rng, const CountersV1::State&) -> std::vector<std::string> {
    // Mostly small increments; now and then one that leaves 32 bits behind.
    const uint64_t by = rng() % 10 == 0 ? (uint64_t{1} << 33) : rng() % 1000;
    return {"INCRBY", "c" + std::to_string(rng() % 3), std::to_string(by)};
  };
  const testing::MigrationResult r = testing::check_migration(m);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("refused the old app's snapshot"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("more than version 2's 32-bit counters hold"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("HMDB_MIGRATION_SEED="), std::string::npos) << r.failure;
}

}  // namespace
}  // namespace hmdb
