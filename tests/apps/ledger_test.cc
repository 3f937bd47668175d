// tests/apps/ledger_test.cc — the ledger app through AppHost: accounts, transfers and their
// rules, idempotency, history, conservation of money, snapshots.
#include "ledger/ledger.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "hmdb/testing.h"

namespace hmdb::ledger {
namespace {

using hmdb::testing::array;
using hmdb::testing::bulk;
using hmdb::testing::error;
using hmdb::testing::integer;
using hmdb::testing::kOk;

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run({"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"}), kOk);
    ASSERT_EQ(run({"ACCOUNT.CREATE", "alice", "USD"}), kOk);
    ASSERT_EQ(run({"ACCOUNT.CREATE", "bob", "USD"}), kOk);
    ASSERT_EQ(run({"ACCOUNT.CREATE", "euro", "EUR"}), kOk);
  }
  std::string run(std::initializer_list<std::string_view> words) { return db.run(words); }
  hmdb::testing::AppDriver<Ledger> db;
};

TEST_F(LedgerTest, TransfersMoveMoneyAndReturnSequenceNumbers) {
  EXPECT_EQ(run({"TRANSFER", "bank", "alice", "1000", "USD"}), integer(1));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "250", "USD"}), integer(2));
  EXPECT_EQ(run({"BALANCE", "bank"}), integer(-1000));
  EXPECT_EQ(run({"BALANCE", "alice"}), integer(750));
  EXPECT_EQ(run({"BALANCE", "bob"}), integer(250));
  EXPECT_EQ(run({"SUPPLY", "USD"}), array({integer(3), bulk("0"), bulk("1000")}));
  EXPECT_EQ(run({"SUPPLY", "EUR"}), array({integer(1), bulk("0"), bulk("0")}));
  EXPECT_EQ(db.host.info(), "accounts:4\r\ntransfers:2\r\n");
}

// Each transfer is one event on each of its accounts' channels; a refused transfer and a
// repeated transfer id publish nothing. Ids are escaped as JSON strings.
TEST_F(LedgerTest, TransfersArePublishedOnBothAccountsChannels) {
  hmdb::testing::RecordedEvents recorded;
  db.events = &recorded;
  const uint64_t t = db.now_ms;
  ASSERT_EQ(run({"TRANSFER", "bank", "alice", "1000", "USD", "ID", "t-\"1\""}), integer(1));
  const std::string first = "{\"seq\":1,\"time_ms\":" + std::to_string(t) +
                            ",\"from\":\"bank\",\"to\":\"alice\",\"amount\":1000,\"currency\":\"USD\",\"id\":\"t-\\\"1\\\"\"}";
  using Event = hmdb::testing::RecordedEvents::Event;
  EXPECT_EQ(recorded.take(), (std::vector<Event>{{"account:bank", first, 0, {}, {}}, {"account:alice", first, 0, {}, {}}}));
  EXPECT_EQ(run({"TRANSFER", "bank", "alice", "1000", "USD", "ID", "t-\"1\""}), integer(1));  // a retry
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "5000", "USD"}), error("ERR insufficient funds"));
  EXPECT_TRUE(recorded.take().empty());
  ASSERT_EQ(run({"ACCOUNT.CREATE", std::string_view("a\nb\x01", 4), "USD"}), kOk);
  ASSERT_EQ(run({"TRANSFER", "alice", std::string_view("a\nb\x01", 4), "1", "USD"}), integer(2));
  const std::vector<Event> second = recorded.take();
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(second[1].channel, std::string("account:a\nb\x01", 12));
  EXPECT_NE(second[1].message.find("\"to\":\"a\\u000ab\\u0001\""), std::string::npos) << second[1].message;
}

TEST_F(LedgerTest, AccountRules) {
  EXPECT_EQ(run({"ACCOUNT.CREATE", "alice", "USD"}), error("ERR account 'alice' already exists"));
  EXPECT_EQ(run({"ACCOUNT.CREATE", "x", "usd"}), error("ERR currency must be 1 to 12 characters A-Z or 0-9"));
  EXPECT_EQ(run({"ACCOUNT.CREATE", "x", "USD", "MAYBE"}), error("ERR syntax error"));
  EXPECT_EQ(run({"ACCOUNT.CREATE", "", "USD"}), error("ERR account id must be 1 to 64 bytes"));
  std::string long_id(kAccountIdBytesMax + 1, 'a');
  EXPECT_EQ(run({"ACCOUNT.CREATE", long_id, "USD"}), error("ERR account id must be 1 to 64 bytes"));
  EXPECT_EQ(run({"ACCOUNT.CREATE", "x"}), error("ERR wrong number of arguments for 'account.create' command"));
  // The arity is a range, {3, 4}: the engine refuses a fifth word before parse runs.
  EXPECT_EQ(run({"ACCOUNT.CREATE", "x", "USD", "OVERDRAFT", "MORE"}),
            error("ERR wrong number of arguments for 'account.create' command"));
  EXPECT_EQ(run({"BALANCE", "nobody"}), error("ERR no such account 'nobody'"));
  db.now_ms += 5;
  EXPECT_EQ(run({"ACCOUNT.CREATE", "carol", "USD"}), kOk);
  EXPECT_EQ(run({"ACCOUNT.GET", "carol"}),
            array({bulk("id"), bulk("carol"), bulk("currency"), bulk("USD"), bulk("balance"), integer(0),
                   bulk("overdraft"), integer(0), bulk("created_ms"), integer(static_cast<int64_t>(db.now_ms)),
                   bulk("transfers"), integer(0)}));
}

TEST_F(LedgerTest, TransferRulesAndErrorsChangeNothing) {
  ASSERT_EQ(run({"TRANSFER", "bank", "alice", "100", "USD"}), integer(1));
  uint64_t before = db.host.digest();
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "101", "USD"}), error("ERR insufficient funds"));
  EXPECT_EQ(run({"TRANSFER", "alice", "euro", "1", "USD"}), error("ERR currency mismatch: account 'euro' holds EUR"));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "1", "EUR"}), error("ERR currency mismatch: account 'alice' holds USD"));
  EXPECT_EQ(run({"TRANSFER", "alice", "nobody", "1", "USD"}), error("ERR no such account 'nobody'"));
  EXPECT_EQ(run({"TRANSFER", "nobody", "alice", "1", "USD"}), error("ERR no such account 'nobody'"));
  EXPECT_EQ(db.host.digest(), before) << "a refused transfer changes nothing";
  EXPECT_EQ(db.index, 10u) << "4 accounts, 1 transfer, 5 refused in apply";
  // Refused before the log: the applied index does not move.
  EXPECT_EQ(run({"TRANSFER", "alice", "alice", "1", "USD"}), error("ERR cannot transfer from an account to itself"));
  for (auto bad : {"0", "-5", "1.5", "abc", "9223372036854775808"})
    EXPECT_EQ(run({"TRANSFER", "alice", "bob", bad, "USD"}), error("ERR amount must be a positive integer number of minor units")) << bad;
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "1", "USD", "ID"}), error("ERR wrong number of arguments for 'transfer' command"));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "1", "USD", "KEY", "t1"}), error("ERR syntax error"));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob"}), error("ERR wrong number of arguments for 'transfer' command"));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "1", "USD", "ID", "t1", "more"}),
            error("ERR wrong number of arguments for 'transfer' command"));
  EXPECT_EQ(db.index, 10u);
  EXPECT_EQ(run({"BALANCE", "alice"}), integer(100));
}

TEST_F(LedgerTest, OverdraftAccountsMayGoNegativeButNotOverflow) {
  EXPECT_EQ(run({"TRANSFER", "bank", "alice", "9223372036854775807", "USD"}), integer(1));
  EXPECT_EQ(run({"TRANSFER", "bank", "bob", "1", "USD"}), integer(2));
  EXPECT_EQ(run({"BALANCE", "bank"}), integer(INT64_MIN));
  EXPECT_EQ(run({"TRANSFER", "bank", "bob", "1", "USD"}), error("ERR balance would overflow"));
  EXPECT_EQ(run({"TRANSFER", "bob", "alice", "1", "USD"}), error("ERR balance would overflow"));
  EXPECT_EQ(run({"SUPPLY", "USD"}), array({integer(3), bulk("0"), bulk("9223372036854775808")}));
}

TEST_F(LedgerTest, RepeatedTransferIdReturnsTheOriginalResult) {
  ASSERT_EQ(run({"TRANSFER", "bank", "alice", "100", "USD"}), integer(1));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "30", "USD", "ID", "pay-1"}), integer(2));
  EXPECT_EQ(run({"TRANSFER", "bank", "bob", "5", "USD"}), integer(3));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "30", "USD", "id", "pay-1"}), integer(2)) << "a retry";
  EXPECT_EQ(run({"BALANCE", "alice"}), integer(70)) << "a retry moves nothing";
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "31", "USD", "ID", "pay-1"}),
            error("ERR transfer id already used with different arguments"));
  // A failed transfer is not remembered: the same id may succeed later.
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "500", "USD", "ID", "pay-2"}), error("ERR insufficient funds"));
  EXPECT_EQ(run({"TRANSFER", "bank", "alice", "500", "USD"}), integer(4));
  EXPECT_EQ(run({"TRANSFER", "alice", "bob", "500", "USD", "ID", "pay-2"}), integer(5));
  EXPECT_EQ(run({"BALANCE", "bob"}), integer(535));
}

TEST_F(LedgerTest, HistoryIsNewestFirstAndBounded) {
  db.now_ms += 1;
  ASSERT_EQ(run({"TRANSFER", "bank", "alice", "7", "USD", "ID", "first"}), integer(1));
  EXPECT_EQ(run({"HISTORY", "alice"}),
            array({array({bulk("seq"), integer(1), bulk("time_ms"), integer(static_cast<int64_t>(db.now_ms)), bulk("id"),
                          bulk("first"), bulk("from"), bulk("bank"), bulk("to"), bulk("alice"), bulk("amount"),
                          integer(7), bulk("currency"), bulk("USD")})}));
  for (size_t i = 0; i < kHistoryMax + 10; i++) ASSERT_EQ(run({"TRANSFER", "bank", "bob", "1", "USD"}), integer(static_cast<int64_t>(i + 2)));
  EXPECT_EQ(db.host.state().accounts.at("bob").history.size(), kHistoryMax);
  EXPECT_EQ(db.host.state().accounts.at("bob").transfer_count, kHistoryMax + 10);
  std::string two = run({"HISTORY", "bob", "2"});
  EXPECT_EQ(two.substr(0, 4), "*2\r\n");
  EXPECT_NE(two.find(":" + std::to_string(kHistoryMax + 11) + "\r\n"), std::string::npos) << "newest first";
  std::string all = run({"HISTORY", "bob", std::to_string(kHistoryMax).c_str()});
  EXPECT_EQ(all.substr(0, 7), "*" + std::to_string(kHistoryMax) + "\r\n");
  std::string count_error = "ERR count must be an integer from 1 to " + std::to_string(kHistoryMax);
  EXPECT_EQ(run({"HISTORY", "bob", std::to_string(kHistoryMax + 1).c_str()}), error(count_error));
  EXPECT_EQ(run({"HISTORY", "bob", "0"}), error(count_error));
  EXPECT_EQ(run({"HISTORY", "bob", "1", "2"}), error("ERR wrong number of arguments for 'history' command"));
  EXPECT_EQ(run({"HISTORY", "bob", "x"}), error(count_error));
  EXPECT_EQ(run({"HISTORY", "euro"}), "*0\r\n");
  EXPECT_EQ(run({"HISTORY", "nobody"}), error("ERR no such account 'nobody'"));
}

uint64_t test_seed() {
  const char* env = std::getenv("HMDB_TEST_SEED");
  return env ? std::strtoull(env, nullptr, 10) : 20261124;
}

// Random transfers (many refused) never create or destroy money, two nodes fed the same
// commands agree, and a snapshot restores the same state.
TEST(LedgerRandom, MoneyIsConservedAndNodesAgree) {
  const uint64_t seed = test_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (set HMDB_TEST_SEED to replay)");
  std::mt19937_64 rng(seed);
  hmdb::testing::AppDriver<Ledger> a, b;
  std::vector<std::vector<std::string>> commands;
  const std::vector<std::string> currencies = {"USD", "EUR"};
  const int kAccounts = 12;
  for (int i = 0; i < kAccounts; i++) {
    std::vector<std::string> create = {"ACCOUNT.CREATE", "acct" + std::to_string(i), currencies[i % 2]};
    if (i < 2) create.push_back("OVERDRAFT");  // one issuer per currency
    commands.push_back(create);
  }
  for (int i = 0; i < 5000; i++) {
    std::string from = "acct" + std::to_string(rng() % kAccounts);
    std::string to = "acct" + std::to_string(rng() % kAccounts);
    std::string amount = std::to_string(1 + rng() % 500);
    std::vector<std::string> t = {"TRANSFER", from, to, amount, currencies[rng() % 2]};
    if (rng() % 4 == 0) { t.push_back("ID"); t.push_back("t" + std::to_string(rng() % 300)); }
    commands.push_back(t);
  }
  int succeeded = 0;
  for (size_t i = 0; i < commands.size(); i++) {
    if (i % 7 == 0) { a.now_ms++; b.now_ms++; }
    std::string ra = a.run_strings(commands[i]);
    ASSERT_EQ(ra, b.run_strings(commands[i])) << "command " << i;
    if (ra[0] == ':') succeeded++;
  }
  EXPECT_GT(succeeded, 500) << "the workload should not be all refusals";
  std::map<std::string, __int128> net;
  for (const auto& [id, account] : a.host.state().accounts) {
    net[account.currency] += account.balance;
    if (!account.allow_overdraft) { EXPECT_GE(account.balance, 0) << id; }
  }
  for (const auto& [currency, sum] : net) EXPECT_TRUE(sum == 0) << currency;
  for (const auto& c : currencies) EXPECT_EQ(a.run({"SUPPLY", c}).substr(0, 15), "*3\r\n:6\r\n$1\r\n0\r\n") << c;
  EXPECT_EQ(a.host.digest(), b.host.digest());

  Encoder enc;
  a.host.save(enc);
  hmdb::testing::AppDriver<Ledger> c;
  ASSERT_TRUE(c.restore(enc.buffer()));
  c.now_ms = a.now_ms;
  EXPECT_EQ(c.host.digest(), a.host.digest());
  EXPECT_EQ(c.run({"HISTORY", "acct3", "50"}), a.run({"HISTORY", "acct3", "50"}));
  EXPECT_EQ(c.run({"TRANSFER", "acct0", "acct2", "5", "USD"}), a.run({"TRANSFER", "acct0", "acct2", "5", "USD"}));
  EXPECT_EQ(c.host.digest(), a.host.digest());
}

TEST(LedgerSnapshot, BadBytesAreRefused) {
  hmdb::testing::AppDriver<Ledger> a;
  a.run({"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"});
  a.run({"ACCOUNT.CREATE", "alice", "USD"});
  a.run({"TRANSFER", "bank", "alice", "10", "USD", "ID", "x"});
  std::string bytes = a.snapshot();
  hmdb::testing::AppDriver<Ledger> b;
  for (size_t len = 0; len < bytes.size(); len++)
    EXPECT_FALSE(b.restore(std::string_view(bytes).substr(0, len))) << "prefix of " << len << " bytes";
  EXPECT_FALSE(b.restore(bytes, Ledger::kSchemaVersion + 1));
  EXPECT_FALSE(b.restore(bytes + '\0')) << "a byte after the state: the engine refuses what load() left unread";
  ASSERT_TRUE(b.restore(bytes));
  EXPECT_EQ(b.host.digest(), a.host.digest());

  // A snapshot whose balances do not sum to zero is corrupt, even if well-formed.
  State broken;
  Account rich;
  rich.currency = "USD";
  rich.balance = 5;
  broken.accounts.emplace("rich", rich);
  Encoder enc;
  Ledger::save(broken, enc);
  EXPECT_FALSE(b.restore(enc.buffer()));

  std::mt19937_64 rng(test_seed());
  for (int round = 0; round < 2000; round++) {
    std::string mutated = bytes;
    mutated[rng() % mutated.size()] = static_cast<char>(rng());
    hmdb::testing::AppDriver<Ledger> c;
    if (c.restore(mutated)) c.run({"SUPPLY", "USD"});
  }
}

// RESP3 (a client after HELLO 3): an account and a transfer are maps, overdraft a boolean,
// SUPPLY's exact sums big numbers. RESP2 renders the same writers as the flat arrays,
// integers and bulk strings the tests above check.
TEST(LedgerResp3, MapsBooleansAndBigNumbers) {
  hmdb::testing::AppDriver<Ledger> db;
  db.protocol = hmdb::Protocol::kResp3;
  ASSERT_EQ(db.run({"ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"}), kOk);
  ASSERT_EQ(db.run({"ACCOUNT.CREATE", "alice", "USD"}), kOk);
  ASSERT_EQ(db.run({"TRANSFER", "bank", "alice", "5", "USD"}), integer(1));
  const std::string account = db.run({"ACCOUNT.GET", "bank"});
  EXPECT_EQ(account.substr(0, 4), "%6\r\n");
  EXPECT_NE(account.find("$9\r\noverdraft\r\n#t\r\n"), std::string::npos) << account;
  EXPECT_NE(db.run({"ACCOUNT.GET", "alice"}).find("$9\r\noverdraft\r\n#f\r\n"), std::string::npos);
  const std::string history = db.run({"HISTORY", "alice"});
  EXPECT_EQ(history.substr(0, 8), "*1\r\n%7\r\n") << history;
  EXPECT_EQ(db.run({"SUPPLY", "USD"}), "*3\r\n:2\r\n(0\r\n(5\r\n");
}

}  // namespace
}  // namespace hmdb::ledger
