// tests/apps/ledger_v3_test.cc — the proof that the ledger's version 3 (tests/apps/ledger_v3:
// posted and pending balances, two-phase transfers) keeps every older entry's meaning: a
// version-1 log, a version-1 log followed by a version-2 one, a version-1 snapshot and the
// log after it, and a version-2 snapshot and the log after it, all replay to exactly the
// state the version-2 ledger reaches, migrated (digest and snapshot bytes); nodes of every
// version agree on the digest at the active version. Then version 3's own commands: a
// reservation, its post and void, their retries; version 3's TRANSFER refuses reserved
// money where a version-2 entry (version 2's rule) spends it; snapshots with pending
// transfers round-trip and a corrupted one is refused.
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
#include "ledger_v3/ledger_v3.h"

namespace hmdb {
namespace {

using ledger::Ledger;
using ledger_v2::LedgerV2;
using ledger_v3::LedgerV3;
using Words = std::vector<std::vector<std::string>>;

// Random log lengths: long enough to reach every rule (retries, refusals, overdrafts).
constexpr size_t kLogCommands = 300;
constexpr uint64_t kSeeds = 12;

// Applies entries as a node applies committed ones: each a one-command batch at the next
// index, logged under `version`. Returns the replies; a command that does not apply under
// its version fails the test.
class Log {
 public:
  template <class App>
  std::vector<std::string> apply(AppHost<App>& host, const Words& commands, uint32_t version) {
    std::vector<std::string> replies;
    for (const auto& words : commands) {
      std::vector<std::string_view> argv(words.begin(), words.end());
      core::BatchBuilder b(kTime + index_);
      b.add(Args(argv.data(), argv.size()));
      struct One final : core::ApplySink {
        std::string out;
        core::ReplyTo reply_to(size_t) override { return core::ReplyTo{&out, Protocol::kResp2}; }
        void replied(size_t) override {}
      } sink;
      const core::ApplyResult r = core::apply_batch(host, b.finish(), ++index_, version, &sink, scratch_);
      EXPECT_EQ(r.status, core::ApplyStatus::kOk) << words[0] << ": " << r.divergence;
      replies.push_back(sink.out);
    }
    return replies;
  }
  void skip_to(uint64_t index) { index_ = index; }

 private:
  static constexpr uint64_t kTime = 1'700'000'000'000;
  uint64_t index_ = 0;
  core::ApplyScratch scratch_;
};

// A client session of `App` at its active version `version`: accounts, transfers with and
// without ids (retries, conflicts), refusals by the rules of the state. Only what that
// version validates is kept, as a leader logs. `v2_words`: amounts in major units and MEMOs.
template <class App>
Words random_log(uint64_t seed, size_t n, uint32_t version, bool v2_words) {
  AppHost<App> leader;
  leader.set_active_schema_version(version);
  std::mt19937_64 rng(seed);
  const std::vector<std::string> names = {"bank", "alice", "bob", "carol", "dave"};
  Words log;
  if (seed % 2 == 0 || !v2_words)
    log = {{"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"}, {"ACCOUNT.CREATE", "fund", "EUR", "OVERDRAFT"}};
  for (size_t i = 0; i < n; i++) {
    const std::string& from = names[rng() % names.size()];
    const std::string& to = names[rng() % names.size()];
    const std::string amount = v2_words ? std::to_string(rng() % 50) + "." + std::to_string(10 + rng() % 90)
                                        : std::to_string(1 + rng() % 5000);
    switch (rng() % 6) {
      case 0:
        log.push_back({"ACCOUNT.CREATE", to, rng() % 4 == 0 ? "EUR" : "USD"});
        break;
      case 1:  // an id, maybe one used before: a retry, or a conflict
        log.push_back({"TRANSFER", from, to, amount, "USD", "ID", "t" + std::to_string(rng() % 40)});
        break;
      case 2:
        if (v2_words) {
          log.push_back({"TRANSFER", from, to, amount, "USD", "MEMO", "m" + std::to_string(rng() % 3)});
          break;
        }
        [[fallthrough]];
      default:
        log.push_back({"TRANSFER", from, to, amount, "USD"});
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

template <class App>
bool load(AppHost<App>& host, const std::string& bytes, uint32_t version) {
  Decoder in(bytes);
  return host.load(in, version);
}

Words slice(const Words& w, size_t begin, size_t end) {
  return Words(w.begin() + static_cast<ptrdiff_t>(begin), w.begin() + static_cast<ptrdiff_t>(end));
}

TEST(LedgerV3, Version1And2LogsAndSnapshotsReplayToTheVersion2StateMigrated) {
  for (uint64_t seed = 1; seed <= kSeeds; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const Words log1 = random_log<Ledger>(seed, kLogCommands, 1, false);
    Words log2 = random_log<LedgerV2>(seed * 1000 + 7, kLogCommands, 2, true);
    const size_t cut1 = log1.size() / 2, cut2 = log2.size() / 2;

    // The version-2 ledger: version 1's log, the activation of version 2, version 2's log;
    // snapshots half way through each.
    Log l2;
    AppHost<LedgerV2> v2;
    const auto r2_first = l2.apply(v2, slice(log1, 0, cut1), 1);
    std::string snap1_v1;
    {
      AppHost<Ledger> v1;
      Log l1;
      l1.apply(v1, slice(log1, 0, cut1), 1);
      snap1_v1 = save(v1);  // what a version-1 node wrote
      EXPECT_EQ(v2.digest_at(1), v1.digest());
    }
    const auto r2_rest1 = l2.apply(v2, slice(log1, cut1, log1.size()), 1);
    v2.set_active_schema_version(2);
    const auto r2_log2a = l2.apply(v2, slice(log2, 0, cut2), 2);
    const std::string snap2 = save(v2);
    const auto r2_log2b = l2.apply(v2, slice(log2, cut2, log2.size()), 2);
    AppHost<LedgerV3> migrated;
    ASSERT_TRUE(load(migrated, save(v2), 2));
    ASSERT_TRUE(migrated.state().pending.empty());
    // The logs reach the rules: transfers of both versions succeed, some with memos.
    size_t memos = 0;
    for (const auto& [id, a] : migrated.state().accounts)
      for (const auto& t : a.history) memos += !t.memo.empty();
    EXPECT_GT(migrated.state().last_seq, kLogCommands / 10);
    EXPECT_GT(memos, 0u);
    EXPECT_GT(migrated.state().transfers_by_id.size(), 5u);

    // Version 3 replaying everything from the start: each entry under its own version.
    {
      Log l3;
      AppHost<LedgerV3> v3;
      EXPECT_EQ(l3.apply(v3, slice(log1, 0, cut1), 1), r2_first);
      EXPECT_EQ(l3.apply(v3, slice(log1, cut1, log1.size()), 1), r2_rest1);
      v3.set_active_schema_version(2);
      EXPECT_EQ(l3.apply(v3, slice(log2, 0, cut2), 2), r2_log2a) << "every version-2 entry answers as version 2 did";
      EXPECT_EQ(l3.apply(v3, slice(log2, cut2, log2.size()), 2), r2_log2b);
      EXPECT_EQ(v3.digest(), migrated.digest());
      EXPECT_EQ(save(v3), save(migrated));
      // At active version 2 a version-3 node's digest is a version-2 node's.
      core::RequestTable none;
      EXPECT_EQ(core::state_digest(v3, none), core::state_digest(v2, none));
    }
    // From version 1's snapshot (the v1 binary's bytes), then the log after it.
    {
      Log l3;
      l3.skip_to(cut1);
      AppHost<LedgerV3> v3;
      ASSERT_TRUE(load(v3, snap1_v1, 1));
      l3.apply(v3, slice(log1, cut1, log1.size()), 1);
      v3.set_active_schema_version(2);
      l3.apply(v3, log2, 2);
      EXPECT_EQ(save(v3), save(migrated));
    }
    // From version 2's snapshot half way through version 2's log.
    {
      Log l3;
      l3.skip_to(log1.size() + cut2);
      AppHost<LedgerV3> v3;
      ASSERT_TRUE(load(v3, snap2, 2));
      v3.set_active_schema_version(2);
      l3.apply(v3, slice(log2, cut2, log2.size()), 2);
      EXPECT_EQ(save(v3), save(migrated));
      EXPECT_EQ(v3.digest(), migrated.digest());
    }
    // A version-1 log alone, at active version 1: every version agrees on the digest.
    {
      Log la, lb;
      AppHost<Ledger> v1;
      AppHost<LedgerV3> v3;
      la.apply(v1, log1, 1);
      lb.apply(v3, log1, 1);
      EXPECT_EQ(v3.digest_at(1), v1.digest());
      AppHost<LedgerV3> from_v1;
      ASSERT_TRUE(load(from_v1, save(v1), 1));
      EXPECT_EQ(save(from_v1), save(v3));
    }
  }
}

// A small fixture: a bank (overdraft) and alice holding 100.00, at active version 3.
class TwoPhase : public ::testing::Test {
 protected:
  void SetUp() override {
    host.set_active_schema_version(3);
    run({"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"});
    run({"ACCOUNT.CREATE", "alice", "USD"});
    run({"ACCOUNT.CREATE", "bob", "USD"});
    run({"TRANSFER", "bank", "alice", "100", "USD"});
  }
  std::string run(std::vector<std::string> words, uint32_t version = 3) { return log.apply(host, {std::move(words)}, version)[0]; }
  const ledger_v3::Account& account(const std::string& id) { return host.state().accounts.at(id); }

  AppHost<LedgerV3> host;
  Log log;
};

TEST_F(TwoPhase, APendingTransferReservesThenPostsOrVoidsOnce) {
  EXPECT_EQ(run({"TRANSFER.PENDING", "alice", "bob", "60", "USD", "ID", "p1", "MEMO", "hotel"}), "+OK\r\n");
  EXPECT_EQ(account("alice").posted, 10000);
  EXPECT_EQ(account("alice").pending_debits, 6000);
  EXPECT_EQ(account("bob").pending_credits, 6000);
  EXPECT_EQ(run({"TRANSFER.PENDING", "alice", "bob", "60", "USD", "ID", "p1", "MEMO", "hotel"}), "+OK\r\n")
      << "a retry reserves nothing more";
  EXPECT_EQ(account("alice").pending_debits, 6000);
  EXPECT_EQ(run({"TRANSFER.PENDING", "alice", "bob", "61", "USD", "ID", "p1"}),
            "-ERR pending id already used with different arguments\r\n");
  // Version 3's TRANSFER cannot spend reserved money: 100 - 60 = 40 available.
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "40.01", "USD"}), "-ERR insufficient funds\r\n");
  EXPECT_EQ(run({"TRANSFER.PENDING", "alice", "bob", "40.01", "USD", "ID", "p2"}), "-ERR insufficient funds\r\n");
  EXPECT_EQ(run({"TRANSFER.POST", "p1"}), ":2\r\n");
  EXPECT_EQ(account("alice").posted, 4000);
  EXPECT_EQ(account("bob").posted, 6000);
  EXPECT_EQ(account("alice").pending_debits, 0);
  EXPECT_EQ(account("bob").pending_credits, 0);
  EXPECT_EQ(account("bob").history.back().memo, "hotel");
  EXPECT_EQ(run({"TRANSFER.POST", "p1"}), ":2\r\n") << "a retried post answers the first post's sequence";
  EXPECT_EQ(run({"TRANSFER.VOID", "p1"}), "-ERR pending transfer 'p1' was already posted\r\n");
  EXPECT_EQ(run({"TRANSFER.PENDING", "alice", "bob", "10", "USD", "ID", "p3"}), "+OK\r\n");
  EXPECT_EQ(run({"TRANSFER.VOID", "p3"}), "+OK\r\n");
  EXPECT_EQ(run({"TRANSFER.VOID", "p3"}), "+OK\r\n");
  EXPECT_EQ(run({"TRANSFER.POST", "p3"}), "-ERR pending transfer 'p3' was already voided\r\n");
  EXPECT_EQ(run({"TRANSFER.POST", "nope"}), "-ERR no such pending transfer 'nope'\r\n");
  EXPECT_EQ(account("alice").posted, 4000);
  EXPECT_EQ(account("alice").pending_debits, 0);
  EXPECT_EQ(host.state().last_seq, 2u);
}

TEST_F(TwoPhase, AVersion2EntryKeepsVersion2sRuleAndAPostThenFindsTheMoneyGone) {
  EXPECT_EQ(run({"TRANSFER.PENDING", "alice", "bob", "60", "USD", "ID", "p1"}), "+OK\r\n");
  // Logged under version 2 before the activation, applied after: version 2 knew nothing
  // pending and checks the posted balance only.
  EXPECT_EQ(run({"TRANSFER", "alice", "bank", "70", "USD"}, 2), ":2\r\n");
  EXPECT_EQ(run({"TRANSFER", "alice", "bank", "70", "USD"}, 3), "-ERR insufficient funds\r\n");
  EXPECT_EQ(account("alice").posted, 3000);
  EXPECT_EQ(run({"TRANSFER.POST", "p1"}), "-ERR insufficient funds\r\n");
  EXPECT_EQ(account("alice").pending_debits, 6000) << "still pending";
  EXPECT_EQ(run({"TRANSFER.VOID", "p1"}), "+OK\r\n");
  // And a version-1 entry (minor units) through both upcasts: 1 -> 2 -> version 2's rule.
  EXPECT_EQ(run({"TRANSFER", "alice", "bank", "3000", "USD"}, 1), ":3\r\n");
  EXPECT_EQ(account("alice").posted, 0);
}

TEST_F(TwoPhase, ClientsGetTheTwoPhaseCommandsOnlyAtVersion3) {
  AppHost<LedgerV3> at2;
  at2.set_active_schema_version(2);
  std::vector<std::string_view> words = {"TRANSFER.PENDING", "alice", "bob", "1", "USD", "ID", "p"};
  std::string error;
  EXPECT_FALSE(at2.validate(Args(words.data(), words.size()), &error));
  EXPECT_EQ(error, "ERR TRANSFER.PENDING is a command of schema version 3; the cluster's active schema version is 2");
  std::vector<std::string_view> no_id = {"TRANSFER.PENDING", "alice", "bob", "1", "USD", "MEMO", "x"};
  EXPECT_FALSE(host.validate(Args(no_id.data(), no_id.size()), &error));
  EXPECT_EQ(error, "ERR a pending transfer needs ID <pending-id>");
}

TEST_F(TwoPhase, SnapshotsWithPendingTransfersRoundTripAndCorruptionIsRefused) {
  run({"TRANSFER.PENDING", "alice", "bob", "60", "USD", "ID", "p1"});
  run({"TRANSFER.PENDING", "bank", "bob", "5", "USD", "ID", "p2"});
  run({"TRANSFER.POST", "p2"});
  run({"TRANSFER.PENDING", "alice", "bob", "1", "USD", "ID", "p3"});
  run({"TRANSFER.VOID", "p3"});
  const std::string bytes = save(host);
  AppHost<LedgerV3> back;
  ASSERT_TRUE(load(back, bytes, 3));
  EXPECT_EQ(save(back), bytes);
  EXPECT_EQ(back.digest(), host.digest());
  EXPECT_EQ(host.digest_at(2), std::nullopt) << "pending transfers have no place in version 2's layout";
  EXPECT_EQ(host.digest_at(1), std::nullopt);
  AppHost<LedgerV2> v2;
  EXPECT_FALSE(load(v2, bytes, 3)) << "version 2 does not read version 3";

  // An account's reserved amount that is not the sum of its pending transfers is corrupt.
  AppHost<LedgerV3> bad;
  ASSERT_TRUE(load(bad, bytes, 3));
  bad.state().accounts.at("alice").pending_debits += 1;
  AppHost<LedgerV3> reload;
  EXPECT_FALSE(load(reload, save(bad), 3));
  EXPECT_TRUE(reload.state().accounts.empty());
}

}  // namespace
}  // namespace hmdb
