// tests/apps/ledger_v2_test.cc — the proof that a logged command keeps the meaning of the
// schema version it was logged under: the ledger's version 2 (tests/apps/ledger_v2), whose
// TRANSFER takes major units where version 1 took minor ones, replays a version-1 log, and a
// version-1 snapshot followed by the rest of that log, to exactly the state the version-1
// ledger reaches, migrated; the same words logged under version 2 move a hundredth of the
// money; a version-2 node's digest at active version 1 equals a version-1 node's. With the
// upcast left out of the history (a planted bug), replaying the version-1 log diverges from
// the migration, and the test says so.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "core/apply.h"
#include "core/batch.h"
#include "core/request_table.h"
#include "core/state.h"
#include "ledger/ledger.h"
#include "ledger_v2/ledger_v2.h"

namespace hmdb {
namespace {

using ledger::Ledger;
using ledger_v2::LedgerV2;

// LedgerV2 whose author bumped the version but wrote no upcast: `c.version(2);` only, so a
// version-1 TRANSFER is read with version 2's parse (a hundred times the money).
struct LedgerV2WithoutHistory : LedgerV2 {
  static void define(Commands<State>& c) {
    define_commands(c);
    c.version(2);
  }
};

// Applies entries as a node applies committed ones: each a one-command batch at the next
// index, logged under `version`. Returns the replies; a command that does not apply under
// its version fails the test.
class Log {
 public:
  template <class App>
  std::vector<std::string> apply(AppHost<App>& host, const std::vector<std::vector<std::string>>& commands,
                                 uint32_t version, uint64_t first_index = 1) {
    std::vector<std::string> replies;
    uint64_t index = first_index;
    for (const auto& words : commands) {
      std::vector<std::string_view> argv(words.begin(), words.end());
      core::BatchBuilder b(kTime + index);
      b.add(Args(argv.data(), argv.size()));
      struct One final : core::ApplySink {
        std::string out;
        core::ReplyTo reply_to(size_t) override { return core::ReplyTo{&out, Protocol::kResp2}; }
        void replied(size_t) override {}
      } sink;
      const core::ApplyResult r = core::apply_batch(host, b.finish(), index++, version, &sink, scratch_);
      EXPECT_EQ(r.status, core::ApplyStatus::kOk) << words[0] << ": " << r.divergence;
      replies.push_back(sink.out);
    }
    return replies;
  }

 private:
  static constexpr uint64_t kTime = 1'700'000'000'000;
  core::ApplyScratch scratch_;
};

// A version-1 client's session: accounts, transfers with and without ids, retries, refusals
// by the rules of the state. Only what version 1 validates is logged, as a leader logs.
std::vector<std::vector<std::string>> random_v1_log(uint64_t seed, size_t n) {
  const AppHost<Ledger> leader;
  std::mt19937_64 rng(seed);
  const std::vector<std::string> names = {"bank", "alice", "bob", "carol", "dave"};
  std::vector<std::vector<std::string>> log = {{"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"},
                                               {"ACCOUNT.CREATE", "fund", "EUR", "OVERDRAFT"}};
  for (size_t i = 0; i < n; i++) {
    const std::string& from = names[rng() % names.size()];
    const std::string& to = names[rng() % names.size()];
    switch (rng() % 6) {
      case 0:
        log.push_back({"ACCOUNT.CREATE", to, rng() % 4 == 0 ? "EUR" : "USD"});
        break;
      case 1:  // an id, maybe one used before: a retry, or a conflict
        log.push_back({"TRANSFER", from, to, std::to_string(1 + rng() % 5000), "USD", "ID",
                       "t" + std::to_string(rng() % 40)});
        break;
      default:
        log.push_back({"TRANSFER", from, to, std::to_string(1 + rng() % 5000), "USD"});
        break;
    }
    std::vector<std::string_view> argv(log.back().begin(), log.back().end());
    std::string error;
    if (!leader.validate(Args(argv.data(), argv.size()), &error)) log.pop_back();
  }
  return log;
}

std::string save(const StateMachine& app) {
  Encoder enc;
  app.save(enc);
  return enc.take();
}

TEST(LedgerV2, AVersion1LogAndSnapshotReplayToTheVersion1StateMigrated) {
  for (uint64_t seed = 1; seed <= 20; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const auto log = random_v1_log(seed, 400);
    const size_t cut = log.size() / 2;
    const std::vector<std::vector<std::string>> first(log.begin(), log.begin() + static_cast<ptrdiff_t>(cut));
    const std::vector<std::vector<std::string>> rest(log.begin() + static_cast<ptrdiff_t>(cut), log.end());

    // The version-1 ledger: its state half way (a snapshot) and at the end.
    Log l1;
    AppHost<Ledger> v1;
    const auto replies_v1 = l1.apply(v1, first, 1);
    const std::string snapshot_v1 = save(v1);
    const auto more_v1 = l1.apply(v1, rest, 1, cut + 1);
    AppHost<LedgerV2> migrated;
    const std::string end_v1 = save(v1);
    Decoder in(end_v1);
    ASSERT_TRUE(migrated.load(in, 1));

    // Version 2 replaying the version-1 log from the start ...
    Log l2;
    AppHost<LedgerV2> replayed;
    const auto replies_v2 = l2.apply(replayed, first, 1);
    const auto more_v2 = l2.apply(replayed, rest, 1, cut + 1);
    EXPECT_EQ(replayed.digest(), migrated.digest());
    EXPECT_EQ(replies_v2, replies_v1) << "every version-1 entry answers as version 1 did";
    EXPECT_EQ(more_v2, more_v1);

    // ... and from the version-1 snapshot, then the log after it.
    Log l3;
    AppHost<LedgerV2> restored;
    Decoder snap(snapshot_v1);
    ASSERT_TRUE(restored.load(snap, 1));
    l3.apply(restored, rest, 1, cut + 1);
    EXPECT_EQ(restored.digest(), migrated.digest());

    // Nodes of both versions agree on the digest at active version 1.
    EXPECT_EQ(replayed.digest_at(1), v1.digest());
    core::RequestTable none;
    const core::StateDigest d1 = core::state_digest(v1, none), d2 = core::state_digest(replayed, none);
    EXPECT_EQ(d1.schema_version, 1u);
    EXPECT_EQ(d2.schema_version, 1u);
    EXPECT_EQ(d2.value, d1.value);
  }
}

TEST(LedgerV2, TheSameWordsMeanWhatTheirVersionSays) {
  AppHost<LedgerV2> host;
  Log log;
  log.apply(host, {{"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"}, {"ACCOUNT.CREATE", "alice", "USD"}}, 1);
  // Logged under version 1: 2550 minor units.
  log.apply(host, {{"TRANSFER", "bank", "alice", "2550", "USD"}}, 1, 3);
  host.set_active_schema_version(2);  // what an applied activation does
  // Logged under version 2, the same words: 2550 major units; and version 2's own form.
  log.apply(host, {{"TRANSFER", "bank", "alice", "2550", "USD"}}, 2, 4);
  log.apply(host, {{"TRANSFER", "bank", "alice", "0.05", "USD", "MEMO", "coffee"}}, 2, 5);
  // A version-1 entry still means version 1's after the activation (one proposed before it
  // and applied after).
  log.apply(host, {{"TRANSFER", "bank", "alice", "7", "USD"}}, 1, 6);
  EXPECT_EQ(host.state().accounts.at("alice").balance, 2550 + 255000 + 5 + 7);
  EXPECT_EQ(host.state().accounts.at("alice").history[2].memo, "coffee");

  // Version 2's words that version 1 never logged do not apply as version 1's: a divergence.
  std::vector<std::string_view> words = {"TRANSFER", "bank", "alice", "0.05", "USD"};
  core::BatchBuilder b(1);
  b.add(Args(words.data(), words.size()));
  core::ApplyScratch scratch;
  const core::ApplyResult r = core::apply_batch(host, b.finish(), 7, 1, nullptr, scratch);
  EXPECT_EQ(r.status, core::ApplyStatus::kDiverged);
  EXPECT_NE(r.divergence.find("'TRANSFER', 5 words) does not apply under schema version 1: ERR amount must be a "
                              "positive integer number of minor units"),
            std::string::npos)
      << r.divergence;

  // Clients speak the active version: version 1's words until the activation.
  AppHost<LedgerV2> fresh;
  std::string error;
  std::vector<std::string_view> decimal = {"TRANSFER", "bank", "alice", "25.50", "USD"};
  EXPECT_FALSE(fresh.validate(Args(decimal.data(), decimal.size()), &error));
  EXPECT_EQ(error, "ERR amount must be a positive integer number of minor units");
  fresh.set_active_schema_version(2);
  EXPECT_TRUE(fresh.validate(Args(decimal.data(), decimal.size()), &error)) << error;
}

TEST(LedgerV2, ASnapshotOfVersion2IsReadBackAndVersion1LayoutOnlyWithoutMemos) {
  AppHost<LedgerV2> host;
  host.set_active_schema_version(2);
  Log log;
  log.apply(host, {{"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"}, {"ACCOUNT.CREATE", "alice", "USD"},
                   {"TRANSFER", "bank", "alice", "1.25", "USD", "ID", "x", "MEMO", "rent"}},
            2);
  AppHost<LedgerV2> back;
  const std::string bytes = save(host);
  Decoder in(bytes);
  ASSERT_TRUE(back.load(in, 2));
  EXPECT_EQ(back.digest(), host.digest());
  EXPECT_EQ(host.digest_at(1), std::nullopt) << "a memo has no place in version 1's layout";
  EXPECT_EQ(host.digest_at(3), std::nullopt);
  AppHost<Ledger> v1;
  Decoder newer(bytes);
  EXPECT_FALSE(v1.load(newer, 2)) << "version 1 does not read version 2";
}

// An upgrade not yet activated can be abandoned: a version-2 node's snapshot at active version
// 1 is in version 1's layout (core::snapshot_layout), so the version-1 binary loads it (as a
// restart on that data directory, or a leader's snapshot sent to a version-1 node) to the
// same state. After the activation (a memo exists) it is in version 2's layout.
TEST(LedgerV2, ASnapshotAtActiveVersion1IsInVersion1LayoutAndLoadsInVersion1) {
  const auto log = random_v1_log(11, 300);
  Log l1, l2;
  AppHost<Ledger> v1;
  l1.apply(v1, log, 1);
  AppHost<LedgerV2> v2;
  l2.apply(v2, log, 1);
  core::RequestTable requests;
  ASSERT_EQ(core::snapshot_layout(v2), 1u);
  ASSERT_EQ(core::snapshot_layout(v2, /*refused=*/1), 2u) << "after save_as refused: the newest layout";
  Encoder enc;
  ASSERT_TRUE(core::save_state_at(v2, requests, core::snapshot_layout(v2), enc));
  const std::string bytes = enc.take();
  AppHost<Ledger> restored;
  core::RequestTable restored_requests;
  Decoder in(bytes);
  ASSERT_EQ(core::load_state(restored, restored_requests, in, 1, core::kStateFormatNewest), core::LoadState::kOk);
  EXPECT_EQ(restored.digest(), v1.digest());
  EXPECT_EQ(restored.active_schema_version(), 1u);

  v2.set_active_schema_version(2);
  EXPECT_EQ(core::snapshot_layout(v2), 2u) << "the active version is the newest";
  l2.apply(v2, {{"ACCOUNT.CREATE", "memo-holder", "USD"}, {"TRANSFER", "bank", "memo-holder", "1.25", "USD", "MEMO", "rent"}},
           2, log.size() + 1);
  Encoder memo;
  EXPECT_FALSE(core::save_state_at(v2, requests, 1, memo)) << "a memo has no place in version 1's layout";
  EXPECT_EQ(core::snapshot_layout(v1), 1u) << "a binary at its newest version writes its own layout";
}

// The planted bug: the history left out. The proof above must fail for it.
TEST(LedgerV2, AHistoryWithoutTheUpcastIsCaughtByTheProof) {
  const auto log = random_v1_log(7, 200);
  Log l1, l2;
  AppHost<Ledger> v1;
  l1.apply(v1, log, 1);
  AppHost<LedgerV2> migrated;
  const std::string bytes = save(v1);
  Decoder in(bytes);
  ASSERT_TRUE(migrated.load(in, 1));
  AppHost<LedgerV2WithoutHistory> replayed;
  l2.apply(replayed, log, 1);
  EXPECT_NE(replayed.digest(), migrated.digest()) << "version 2's parse read version 1's amounts as major units";
  EXPECT_EQ(replayed.state().accounts.at("alice").balance, 100 * migrated.state().accounts.at("alice").balance);
}

}  // namespace
}  // namespace hmdb
