// tests/apps/ledger_migration_test.cc — the ledger's two migrations (v1 -> v2, v2 -> v3)
// checked with the app authors' migration kit (hmdb/testing_migration.h), and the proof that
// the kit has teeth: four planted bugs, each defined only here (a migration that drops the
// memos, a version bump without the upcast, a data fix-up in the migration, an author's
// migrate that loses a field), are each reported with the seed that reruns them and the command where the paths parted.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "hmdb/testing_migration.h"
#include "ledger/ledger.h"
#include "ledger_v2/ledger_v2.h"
#include "ledger_v3/ledger_v3.h"

namespace hmdb {
namespace {

using ledger::Ledger;
using ledger_v2::LedgerV2;
using ledger_v3::LedgerV3;
using testing::check_migration;
using testing::Migration;

// A name for a command: usually an account that exists, sometimes one that does not.
template <class State>
std::string some_account(std::mt19937_64& rng, const State& s) {
  static const std::vector<std::string> kNames = {"alice", "bob", "carol", "dave", "erin", "frank"};
  if (s.accounts.empty() || rng() % 5 == 0) return kNames[rng() % kNames.size()];
  auto it = s.accounts.begin();
  std::advance(it, static_cast<ptrdiff_t>(rng() % s.accounts.size()));
  return it->first;
}

// The words both generators share; `amount` in the version's unit.
template <class State>
std::vector<std::string> ledger_command(std::mt19937_64& rng, const State& s, const std::string& amount,
                                        bool with_memo) {
  if (s.accounts.empty()) return {"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"};
  const std::string from = some_account(rng, s), to = some_account(rng, s);
  switch (rng() % 8) {
    case 0:
      if (rng() % 3 == 0) return {"ACCOUNT.CREATE", to, "EUR", "OVERDRAFT"};
      return {"ACCOUNT.CREATE", to, rng() % 4 == 0 ? "EUR" : "USD"};
    case 1:  // an id, maybe one used before: a retry, or a conflict
      return {"TRANSFER", from, to, amount, "USD", "ID", "t" + std::to_string(rng() % 30)};
    case 2:
      if (with_memo) return {"TRANSFER", from, to, amount, "USD", "MEMO", rng() % 2 ? "rent \"may\"" : ""};
      [[fallthrough]];
    default:
      return {"TRANSFER", from, to, amount, rng() % 6 == 0 ? "EUR" : "USD"};
  }
}

std::vector<std::string> v1_command(std::mt19937_64& rng, const ledger::State& s) {
  return ledger_command(rng, s, std::to_string(1 + rng() % 5000), false);  // minor units
}

std::vector<std::string> v2_command(std::mt19937_64& rng, const ledger_v2::State& s) {
  const std::string amount = std::to_string(rng() % 50) + (rng() % 2 ? "." + std::to_string(10 + rng() % 90) : "");
  return ledger_command(rng, s, amount, true);  // major units, memos
}

Migration<Ledger, LedgerV2> v1_to_v2() {
  Migration<Ledger, LedgerV2> m;
  m.command = &v1_command;
  m.migrate = &LedgerV2::migrate;
  return m;
}

Migration<LedgerV2, LedgerV3> v2_to_v3() {
  Migration<LedgerV2, LedgerV3> m;
  m.command = &v2_command;
  m.migrate = &LedgerV3::migrate;
  return m;
}

TEST(LedgerMigration, Version1To2) {
  const testing::MigrationResult r = check_migration(v1_to_v2());
  ASSERT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(r.trials, testing::migration_trials(v1_to_v2()));
  EXPECT_GT(r.commands, r.trials * testing::kMigrationTrialCommandsDefault / 2) << "most generated commands are logged";
}

TEST(LedgerMigration, Version2To3) {
  const testing::MigrationResult r = check_migration(v2_to_v3());
  ASSERT_TRUE(r.ok) << r.failure;
  EXPECT_EQ(r.trials, testing::migration_trials(v2_to_v3()));
  EXPECT_GT(r.commands, r.trials * testing::kMigrationTrialCommandsDefault / 2);
}

// ---- planted bugs: none of these is in a shipped binary ---------------------------------------

// Version 3 whose migration forgets the memos of version 2's transfers.
struct LedgerV3ForgetsMemos : LedgerV3 {
  static bool load(State& s, Decoder& in, uint32_t version) {
    if (!LedgerV3::load(s, in, version)) return false;
    if (version < 3) {
      for (auto& [id, a] : s.accounts)
        for (auto& t : a.history) t.memo.clear();
      for (auto& [id, t] : s.transfers_by_id) t.memo.clear();
    }
    return true;
  }
};

// Version 2 bumped without the upcast: a version-1 TRANSFER read as major units.
struct LedgerV2WithoutUpcast : LedgerV2 {
  static void define(Commands<State>& c) {
    define_commands(c);
    c.version(2);
  }
};

// The seed a failure names, to rerun it.
uint64_t seed_of(const std::string& failure) {
  const size_t at = failure.find("HMDB_MIGRATION_SEED=");
  EXPECT_NE(at, std::string::npos) << failure;
  return at == std::string::npos ? 0 : std::stoull(failure.substr(at + 20));
}

TEST(LedgerMigration, AMigrationThatDropsAFieldIsCaught) {
  Migration<LedgerV2, LedgerV3ForgetsMemos> m;
  m.command = &v2_command;
  const testing::MigrationResult r = check_migration(m);
  ASSERT_FALSE(r.ok) << "the kit missed a migration that drops the memos";
  EXPECT_NE(r.failure.find("digest at version 2 is not the old app's"), std::string::npos) << r.failure;
  // ... naming the records whose memos were lost (the records hook of both versions).
  EXPECT_NE(r.failure.find("the records that differ: account:"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find(" (held differently)"), std::string::npos) << r.failure;
  // The seed it names reproduces the same failure alone.
  m.seed = seed_of(r.failure);
  m.trials = 1;
  const testing::MigrationResult again = check_migration(m);
  EXPECT_EQ(again.failure, r.failure);
  // The comparison of the two paths catches it by itself: from an empty state (nothing for
  // the digest check to see yet) the first TRANSFER with a memo parts them.
  m.seed = 1;
  m.trials = testing::kMigrationTrialsDefault;
  m.state_commands = 0;
  const testing::MigrationResult paths = check_migration(m);
  ASSERT_FALSE(paths.ok);
  EXPECT_NE(paths.failure.find("the two paths differ"), std::string::npos) << paths.failure;
  EXPECT_NE(paths.failure.find(" MEMO "), std::string::npos) << "names the command: " << paths.failure;
  std::printf("reported: %s\n", paths.failure.c_str());
}

TEST(LedgerMigration, AVersionBumpWithoutItsUpcastIsCaught) {
  Migration<Ledger, LedgerV2WithoutUpcast> m;
  m.command = &v1_command;
  const testing::MigrationResult r = check_migration(m);
  ASSERT_FALSE(r.ok) << "the kit missed version-1 amounts read as major units";
  EXPECT_NE(r.failure.find("the two paths differ"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("`TRANSFER "), std::string::npos) << "names the command: " << r.failure;
  std::printf("reported: %s\n", r.failure.c_str());
}

// Version 2 whose migration "fixes" account ids with a trailing space (a data fix-up in the
// wrong place: an old entry replayed by the new node makes them again).
struct LedgerV2TrimsIds : LedgerV2 {
  static bool load(State& s, Decoder& in, uint32_t version) {
    if (!LedgerV2::load(s, in, version)) return false;
    if (version == 1) {
      State fixed;
      fixed.last_seq = s.last_seq;
      fixed.transfers_by_id = std::move(s.transfers_by_id);
      for (auto& [id, a] : s.accounts) {
        std::string trimmed = id;
        while (!trimmed.empty() && trimmed.back() == ' ') trimmed.pop_back();
        fixed.accounts.emplace(trimmed.empty() ? id : trimmed, std::move(a));
      }
      s = std::move(fixed);
    }
    return true;
  }
};

TEST(LedgerMigration, AFixUpInTheMigrationIsCaught) {
  Migration<Ledger, LedgerV2TrimsIds> m;
  m.command = [](std::mt19937_64& rng, const ledger::State& s) -> std::vector<std::string> {
    if (rng() % 4 == 0) return {"ACCOUNT.CREATE", "acct" + std::to_string(rng() % 50) + " ", "USD"};
    return v1_command(rng, s);
  };
  const testing::MigrationResult r = check_migration(m);
  ASSERT_FALSE(r.ok) << "the kit missed a fix-up that only the snapshot path runs";
  EXPECT_NE(r.failure.find("digest at version 1 is not the old app's"), std::string::npos) << r.failure;
  // The records named are the accounts the fix-up renamed: "acctN " in the old, "acctN" in the new.
  EXPECT_NE(r.failure.find("(only in the first)"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("(only in the second)"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("account:acct"), std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find(" \"account:acct"), std::string::npos) << "the old ids, quoted (a trailing space): " << r.failure;
  std::printf("reported: %s\n", r.failure.c_str());
  // From an empty state, the first old ACCOUNT.CREATE of such an id parts the two paths.
  m.state_commands = 0;
  const testing::MigrationResult paths = check_migration(m);
  ASSERT_FALSE(paths.ok);
  EXPECT_NE(paths.failure.find("the two paths differ"), std::string::npos) << paths.failure;
  EXPECT_NE(paths.failure.find("`ACCOUNT.CREATE \"acct"), std::string::npos) << paths.failure;
  std::printf("reported: %s\n", paths.failure.c_str());
}

// Version 2 whose records at version 1 are not version 1's (it forgets "last_seq"): the
// digests agree, but verify between v1 and v2 nodes would name a record that does not differ.
struct LedgerV2RecordsAsWrong : LedgerV2 {
  struct AllBut final : RecordSink {
    explicit AllBut(RecordSink& out) : out(out) {}
    void record(std::string_view key, uint64_t hash) override {
      if (key != "last_seq") out.record(key, hash);
    }
    RecordSink& out;
  };
  static bool records_as(const State& s, uint32_t version, RecordSink& out) {
    AllBut filtered(out);
    return LedgerV2::records_as(s, version, filtered);
  }
};

TEST(LedgerMigration, RecordsAsThatDifferFromTheOldAppsAreCaught) {
  Migration<Ledger, LedgerV2RecordsAsWrong> m;
  m.command = &v1_command;
  const testing::MigrationResult r = check_migration(m);
  ASSERT_FALSE(r.ok) << "the kit missed records_as listing another set of records";
  EXPECT_NE(r.failure.find("records at version 1 are not the old app's although the digests agree"),
            std::string::npos) << r.failure;
  EXPECT_NE(r.failure.find("last_seq (only in the first)"), std::string::npos) << r.failure;
}

TEST(LedgerMigration, AnAuthorsMigrateThatDiffersFromLoadIsCaught) {
  Migration<LedgerV2, LedgerV3> m = v2_to_v3();
  m.migrate = [](ledger_v2::State&& old) {
    ledger_v3::State s = LedgerV3::migrate(std::move(old));
    for (auto& [id, a] : s.accounts) a.transfer_count = a.history.size();  // "the same thing", but not after kHistoryMax
    for (auto& [id, a] : s.accounts) a.created_ms = 0;                     // and a field lost
    return s;
  };
  const testing::MigrationResult r = check_migration(m);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.failure.find("differs from Migration::migrate"), std::string::npos) << r.failure;
}

}  // namespace
}  // namespace hmdb
