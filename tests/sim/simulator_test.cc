// tests/sim/simulator_test.cc — the simulator itself: runs replay exactly (same seed, same
// trace hash, with or without tracing), fault-free clusters of 1, 3 and 5 nodes pass every
// check, and a run with faults actually injects them.
#include "sim/simulator.h"

#include <gtest/gtest.h>

namespace hmdb::sim {
namespace {

TEST(Simulator, SameSeedGivesIdenticalTrace) {
  for (uint64_t seed : {1ull, 42ull, 977ull}) {
    Options o;
    o.seed = seed;
    RunResult a = run_simulation(o);
    RunResult b = run_simulation(o);
    o.trace = true;
    RunResult c = run_simulation(o);
    EXPECT_EQ(a.trace_hash, b.trace_hash) << "seed " << seed;
    EXPECT_EQ(a.trace_hash, c.trace_hash) << "tracing must not change the run, seed " << seed;
    EXPECT_EQ(a.ok, c.ok);
    EXPECT_EQ(a.client_ops, b.client_ops);
    EXPECT_FALSE(c.trace.empty());
    Options o5 = o;
    o5.seed = seed + 1;
    EXPECT_NE(run_simulation(o5).trace_hash, a.trace_hash) << "different seeds, different runs";
  }
}

TEST(Simulator, FaultFreeClustersPassAndServeClients) {
  for (uint32_t nodes : {1u, 3u, 5u}) {
    Options o;
    o.seed = 7;
    o.nodes = nodes;
    o.faults = false;
    RunResult r = run_simulation(o);
    ASSERT_TRUE(r.ok) << "nodes " << nodes << ": [" << r.check << "] " << r.detail << "\nreplay: " << replay_command(o);
    EXPECT_GT(r.client_ok, r.client_ops / 2) << "nodes " << nodes;
    EXPECT_EQ(r.client_unknown, 0u) << "no faults: every op gets an answer";
    for (size_t f = 0; f < kFaultCount; f++)
      if (static_cast<Fault>(f) != Fault::kReorder && static_cast<Fault>(f) != Fault::kSnapshotInstall)
        EXPECT_FALSE(r.faults[f]) << fault_name(static_cast<Fault>(f));
  }
}

TEST(Simulator, FaultsActuallyHappen) {
  std::array<int, kFaultCount> seen{};
  for (uint64_t seed = 1; seed <= 30; seed++) {
    Options o;
    o.seed = seed;
    RunResult r = run_simulation(o);
    for (size_t f = 0; f < kFaultCount; f++) seen[f] += r.faults[f];
  }
  for (size_t f = 0; f < kFaultCount; f++) EXPECT_GT(seen[f], 0) << fault_name(static_cast<Fault>(f)) << " never happened";
}

TEST(Simulator, ReplayCommandNamesEverything) {
  Options o;
  o.seed = 123;
  o.nodes = 5;
  o.bugs.apply_before_commit = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --bug apply_before_commit --trace");
}

}  // namespace
}  // namespace hmdb::sim
