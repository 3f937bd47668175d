// tests/core/apply_budget_test.cc — the loop turn's apply budget (core::Replica::Options::
// apply_budget_spent, core/apply.h HalfApplied::budget_spent; the server's is
// kTurnApplyBudgetUs): once the host says the turn's budget is spent, an entry being applied
// stops before its next command (asked every kApplyBudgetCheckCommands commands, never before
// the first of a call) and is resumed in the next turn; meanwhile the entries behind it wait.
// The budget here is a flag the test sets, so what each turn applies is counted, not timed:
// with the budget spent, a turn applies at most kApplyBudgetCheckCommands - 1 commands of a
// 100-SET entry (15, then 15 a turn), and every command is applied once, in order, with its
// reply, to the state a whole apply makes. A yielded command that is itself a big write is then
// sliced as usual.
//
// Planted bugs (HMDB_APPLY_BUDGET_PLANT=past_budget or =skip_yielded in the environment: the
// replica's PlantedBugs apply_past_budget / skip_yielded_command): the first applies the entry
// whole in one turn and fails the per-turn counts; the second loses the command each stop was
// before and fails the replies and the state.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/apply.h"
#include "core/replica.h"
#include "hmdb/app.h"
#include "kv/kv.h"
#include "replica_harness.h"

namespace hmdb::core {
namespace {

using KvNode = TestNode<AppHost<kv::Kv>>;

constexpr size_t kSets = 100;  // SETs in the entry

// A node whose apply budget is `*spent` (asks counted in `*asks`), with the planted bug the
// environment names.
std::unique_ptr<KvNode> budget_node(const bool* spent, size_t* asks) {
  return std::make_unique<KvNode>(std::vector<raft::NodeId>{1}, false, PubSub::Options{}, [=](Replica::Options& o) {
    o.apply_budget_spent = [=] {
      ++*asks;
      return *spent;
    };
    const char* plant = std::getenv("HMDB_APPLY_BUDGET_PLANT");
    const std::string p = plant ? plant : "";
    o.bugs.apply_past_budget = p == "past_budget";
    o.bugs.skip_yielded_command = p == "skip_yielded";
  });
}

std::vector<std::vector<std::string>> sets() {
  std::vector<std::vector<std::string>> c;
  for (size_t i = 0; i < kSets; i++) c.push_back({"SET", "k" + std::to_string(i), "v" + std::to_string(i)});
  return c;
}

void send(KvNode& n, const std::vector<std::vector<std::string>>& commands, uint64_t session) {
  for (const auto& c : commands) {
    std::vector<std::string_view> argv(c.begin(), c.end());
    n.replica->command(n.s(session), Args(argv.data(), argv.size()));
  }
}

size_t count_ok(const std::string& out) {
  size_t n = 0;
  for (size_t at = out.find("+OK\r\n"); at != std::string::npos; at = out.find("+OK\r\n", at + 1)) n++;
  return n;
}

// Every key's value, as one MGET reply, and DBSIZE.
std::string state(KvNode& n) {
  std::vector<std::string> words = {"MGET"};
  for (size_t i = 0; i < kSets; i++) words.push_back("k" + std::to_string(i));
  words.push_back("later");
  send(n, {words, {"DBSIZE"}}, 7);
  n.replica->end_turn();
  return n.out(7);
}

TEST(ApplyBudget, ASpentBudgetStopsTheEntryAndTheNextTurnsResumeIt) {
  bool spent = true;
  size_t asks = 0;
  auto node = budget_node(&spent, &asks);
  KvNode& n = *node;
  const uint64_t applied_before = n.replica->applied_index();
  send(n, sets(), 1);  // one entry of 100 SETs
  n.replica->end_turn();
  // Asked before the 16th command: 15 applied and answered, the rest wait.
  EXPECT_EQ(asks, 1u);
  EXPECT_EQ(count_ok(n.out(1)), kApplyBudgetCheckCommands - 1) << "the first turn applied past its budget";
  ASSERT_NE(n.replica->applying_index(), 0u);
  EXPECT_EQ(n.replica->applied_index(), applied_before) << "its entry is not applied until its last command is";
  EXPECT_EQ(n.replica->stats().apply_yields, 1u);
  EXPECT_EQ(n.replica->stats().sliced_writes, 0u);
  // Another session's write is logged behind it, and neither applied nor answered until it is.
  send(n, {{"SET", "later", "x"}}, 2);
  // A read between turns sees the commands applied so far (their replies are out), not the rest.
  send(n, {{"GET", "k0"}, {"GET", "k14"}, {"GET", "k15"}}, 3);
  EXPECT_EQ(n.out(3), "$2\r\nv0\r\n$3\r\nv14\r\n$-1\r\n");
  size_t answered = kApplyBudgetCheckCommands - 1;
  int turns = 0;
  for (; n.replica->applying_index() != 0 && turns < 50; turns++) {
    EXPECT_EQ(n.out(2), "") << "the later write applied before the entry ahead of it (turn " << turns << ")";
    n.replica->end_turn();
    const size_t now = count_ok(n.out(1));
    EXPECT_LE(now, kApplyBudgetCheckCommands - 1) << "a resumed turn applied past its budget (turn " << turns << ")";
    answered += now;
  }
  // 15 a turn: 100 commands in 7 turns, the first and 6 that resumed.
  EXPECT_EQ(turns, 6);
  EXPECT_EQ(answered, kSets) << "every SET answered once";
  EXPECT_EQ(n.out(2), "+OK\r\n") << "the later write applies in the turn the entry ahead finishes";
  EXPECT_EQ(n.replica->applied_index(), applied_before + 2);
  EXPECT_EQ(n.replica->stats().apply_yields, 6u) << "the first turn's stop and 5 resumed turns'";

  // The same state as a node that applied the entry whole.
  KvNode whole;
  send(whole, sets(), 1);
  send(whole, {{"SET", "later", "x"}}, 2);
  whole.replica->end_turn();
  EXPECT_EQ(count_ok(whole.out(1)), kSets);
  spent = false;
  EXPECT_EQ(state(n), state(whole));
}

TEST(ApplyBudget, UnspentItIsAskedEvery16CommandsAndTheEntryAppliesWhole) {
  bool spent = false;
  size_t asks = 0;
  auto node = budget_node(&spent, &asks);
  KvNode& n = *node;
  send(n, sets(), 1);
  n.replica->end_turn();
  EXPECT_EQ(asks, kSets / kApplyBudgetCheckCommands);
  EXPECT_EQ(count_ok(n.out(1)), kSets);
  EXPECT_EQ(n.replica->applying_index(), 0u);
  EXPECT_EQ(n.replica->stats().apply_yields, 0u);
}

// A command the budget stopped before that is a big write hands its apply to a producer when
// resumed: it is sliced as any big write, then the entry goes on.
TEST(ApplyBudget, AYieldedBigWriteIsSlicedWhenResumed) {
  bool spent = false;
  size_t asks = 0;
  auto node = budget_node(&spent, &asks);
  KvNode& n = *node;
  std::vector<std::string> a = {"SADD", "a"}, b = {"SADD", "b"};
  for (size_t i = 0; i < 20000; i++) a.push_back("m" + std::to_string(i));
  for (size_t i = 10000; i < 30000; i++) b.push_back("m" + std::to_string(i));
  send(n, {a, b}, 9);
  n.replica->end_turn();
  ASSERT_EQ(n.out(9), ":20000\r\n:20000\r\n");
  // 15 SETs, the SUNIONSTORE 16th (stopped before it), then 84 SETs.
  auto commands = sets();
  commands.insert(commands.begin() + 15, {"SUNIONSTORE", "u", "a", "b"});
  spent = true;
  send(n, commands, 1);
  n.replica->end_turn();
  std::string fifteen;
  for (int i = 0; i < 15; i++) fifteen += "+OK\r\n";
  EXPECT_EQ(n.out(1), fifteen);
  EXPECT_EQ(n.replica->stats().apply_yields, 1u);
  spent = false;  // the rest fits: the SUNIONSTORE is sliced, then the SETs
  int turns = 0;
  std::string rest;
  for (; n.replica->applying_index() != 0 && turns < 50; turns++) {
    n.replica->end_turn();
    rest += n.out(1);
  }
  EXPECT_EQ(n.replica->stats().sliced_writes, 1u);
  EXPECT_EQ(n.replica->stats().apply_yields, 1u);
  EXPECT_EQ(rest.substr(0, 8), ":30000\r\n");
  EXPECT_EQ(count_ok(rest), kSets - 15);
}

// kv's freeing of deleted values follows the same budget (ApplyContext::turn_budget; kv.h,
// Graveyard): a housekeeping entry (HMDB.EXPIRE) frees kLazyFreeBudgetStepWork at a time,
// asking the budget after each step, until it is spent (one step at least) or
// kLazyFreeHousekeepingWorkMax is done; a write asks it before its step and frees nothing
// for the rest of its entry once it is spent. The budget is spent after `limit` asks, so what
// each entry frees is counted (Graveyard::work_total), not timed. Planted
// (HMDB_APPLY_BUDGET_PLANT=past_budget: the replica gives no budget, so kv frees by its
// counts alone, 8,192 a housekeeping entry and 512 a write): it fails.
TEST(ApplyBudget, KvFreesDeletedValuesWithinTheTurnsBudget) {
  using kv::kDrainSlabUnits, kv::kLazyFreeBudgetStepWork, kv::kLazyFreeEntryWork, kv::kLazyFreeHousekeepingWorkMax,
      kv::kLazyFreeStepWork;
  size_t asks = 0, limit = SIZE_MAX;
  auto node = std::make_unique<KvNode>(std::vector<raft::NodeId>{1}, false, PubSub::Options{}, [&](Replica::Options& o) {
    o.apply_budget_spent = [&] { return ++asks > limit; };
    const char* plant = std::getenv("HMDB_APPLY_BUDGET_PLANT");
    o.bugs.apply_past_budget = plant && std::string(plant) == "past_budget";
  });
  KvNode& n = *node;
  const auto& graveyard = n.app.state().graveyard;
  // 200,000 keys (one entry), flushed: more than the most housekeeping frees in an entry.
  std::vector<std::vector<std::string>> fill;
  for (size_t i = 0; i < 200000; i++) fill.push_back({"SET", "k" + std::to_string(i), "v"});
  send(n, fill, 1);
  send(n, {{"FLUSHALL"}}, 1);
  n.replica->end_turn();
  ASSERT_FALSE(graveyard.empty());
  // The most one step does: its units, plus a node slab's (a step may end on one).
  const size_t step_most = kLazyFreeBudgetStepWork + kDrainSlabUnits;
  auto housekeeping = [&](size_t budget_asks) {
    asks = 0;
    limit = budget_asks;
    const uint64_t before = graveyard.work_total();
    n.replica->housekeeping();
    n.replica->end_turn();
    return graveyard.work_total() - before;
  };
  // Spent from the start: one step.
  size_t work = housekeeping(0);
  EXPECT_EQ(asks, 1u);
  EXPECT_GE(work, kLazyFreeBudgetStepWork);
  EXPECT_LE(work, step_most) << "a housekeeping entry freed past a spent budget";
  // Spent at the fourth ask: four steps.
  work = housekeeping(3);
  EXPECT_EQ(asks, 4u);
  EXPECT_GE(work, 4 * kLazyFreeBudgetStepWork);
  EXPECT_LE(work, 4 * step_most);
  // Never spent: up to the most.
  work = housekeeping(SIZE_MAX);
  EXPECT_GE(work, kLazyFreeHousekeepingWorkMax);
  EXPECT_LE(work, kLazyFreeHousekeepingWorkMax + kDrainSlabUnits);
  ASSERT_FALSE(graveyard.empty());
  // A write entry with the budget spent frees nothing (its first write asks, the rest do not);
  // unspent, its writes free kLazyFreeStepWork each, up to kLazyFreeEntryWork.
  std::vector<std::vector<std::string>> writes;
  for (size_t i = 0; i < 10; i++) writes.push_back({"SET", "w" + std::to_string(i), "v"});
  asks = 0;
  limit = 0;
  uint64_t before = graveyard.work_total();
  send(n, writes, 1);
  n.replica->end_turn();
  EXPECT_EQ(asks, 1u);
  EXPECT_EQ(graveyard.work_total() - before, 0u) << "a write freed past a spent budget";
  asks = 0;
  limit = SIZE_MAX;
  before = graveyard.work_total();
  send(n, writes, 1);
  n.replica->end_turn();
  EXPECT_EQ(asks, 10u);
  EXPECT_GE(graveyard.work_total() - before, 10 * kLazyFreeStepWork);
  EXPECT_LE(graveyard.work_total() - before, kLazyFreeEntryWork + kDrainSlabUnits);
  // And it is all freed in the end.
  for (int i = 0; i < 100 && !graveyard.empty(); i++) housekeeping(SIZE_MAX);
  EXPECT_TRUE(graveyard.empty());
}

}  // namespace
}  // namespace hmdb::core
