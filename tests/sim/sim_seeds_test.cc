// tests/sim/sim_seeds_test.cc — the CI seed sweep: many whole-cluster runs with every fault
// kind, on 3 and 5 nodes. HMDB_SIM_SEEDS overrides the number of seeds per cluster size
// (HMDB_SIM_START the first seed). A failure names the seed, the check and the command that
// replays it with a full trace.
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "sim/simulator.h"

namespace hmdb::sim {
namespace {

// Per cluster size: sized for about two minutes of CPU in total (docs/simulator.md).
constexpr uint64_t kDefaultSeeds = 1000;

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void sweep(uint32_t nodes) {
  uint64_t seeds = env_or("HMDB_SIM_SEEDS", kDefaultSeeds);
  uint64_t start = env_or("HMDB_SIM_START", 1);
  for (uint64_t s = start; s < start + seeds; s++) {
    Options o;
    o.seed = s;
    o.nodes = nodes;
    RunResult r = run_simulation_isolated(o);  // a core abort fails this seed, not the binary
    ASSERT_TRUE(r.ok) << "seed " << s << " failed check [" << r.check << "]: " << r.detail
                      << "\nreplay: " << replay_command(o);
  }
}

TEST(SimSeeds, ThreeNodes) { sweep(3); }
TEST(SimSeeds, FiveNodes) { sweep(5); }

}  // namespace
}  // namespace hmdb::sim
