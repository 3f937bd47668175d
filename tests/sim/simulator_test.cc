// tests/sim/simulator_test.cc — the simulator itself: runs replay exactly (same seed, same
// trace hash, with or without tracing), fault-free clusters of 1, 3 and 5 nodes pass every
// check, and a run with faults actually injects them (rare disk events within more seeds);
// with followers forwarding, the same, and links do break.
#include "sim/simulator.h"

#include <array>
#include <cstdio>
#include <functional>

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

// A follower loading an installed snapshot in the background, and what follows from it: not
// faults, but what a server does with any install (so fault-free runs have them too).
bool loading(Fault f) {
  return f == Fault::kBackgroundLoad || f == Fault::kInstallDuringLoad || f == Fault::kLoadingRefused ||
         f == Fault::kLeaderWhileLoading;
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
    for (size_t f = 0; f < kFaultCount; f++) {
      if (static_cast<Fault>(f) != Fault::kReorder && static_cast<Fault>(f) != Fault::kSnapshotInstall &&
          !loading(static_cast<Fault>(f))) {
        EXPECT_FALSE(r.faults[f]) << fault_name(static_cast<Fault>(f));
      }
    }
  }
}

// Events that only some runs produce: damage is on in 40% of the seeds, a missing
// sector needs a torn write across a sector boundary, a damaged snapshot a first damage
// after a snapshot, leftovers after a leader's snapshot a follower that held another
// history past the snapshot and crashed right after the install; a newer snapshot during a
// background load, and a node elected while it loads, happen in 1-2% of the runs. Searched
// for over more seeds (the search stops as soon as each was seen).
bool rare(Fault f) {
  return f == Fault::kSectorHole || f == Fault::kSnapshotDamage || f == Fault::kLeftoversDropped ||
         f == Fault::kLyingFsync || f == Fault::kLogDamage || f == Fault::kRefusedStart ||
         f == Fault::kInstallDuringLoad || f == Fault::kLeaderWhileLoading;
}

// The steps of a mixed-version run (Options::upgrade): only such runs reach them.
bool upgrade_step(Fault f) { return f >= Fault::kUpgradeRestart && f <= Fault::kUpgradeAllV2; }
// What only runs with Options::sliced_reads reach (a client's MGET made in slices).
bool sliced_step(Fault f) {
  return f == Fault::kSlicedReply || f == Fault::kSlicedReplyHeldApply || f == Fault::kSlicedReplyBuffered;
}
// What only runs with Options::slow_readers reach (a sliced reply waiting for its client).
bool slow_reader_step(Fault f) { return f == Fault::kSlowReaderHeldApply; }
// What only runs with Options::sliced_writes reach (a client's SUMSTORE applied in slices).
bool sliced_write_step(Fault f) {
  return f == Fault::kSlicedWrite || f == Fault::kSlicedWriteCrashed || f == Fault::kSlicedWriteRoleChanged ||
         f == Fault::kSlicedWriteDropped;
}

// What only runs with Options::sliced_snapshots reach (a snapshot written in slices).
bool sliced_snapshot_step(Fault f) { return f == Fault::kSlicedSnapshot || f == Fault::kSlicedSnapshotAbandoned; }

// What only runs with Options::fresh_leader_stalls reach (a leader stalled after its election).
bool fresh_leader_stall_step(Fault f) { return f == Fault::kFreshLeaderStall; }

// What only runs with Options::snapshot_races reach (appends overtaken by a snapshot's chunk).
bool snapshot_race_step(Fault f) {
  return f == Fault::kLateAppends || f == Fault::kLastChunkAtMatchingLog || f == Fault::kLastChunkPastItsEntry ||
         f == Fault::kHeldAppend || f == Fault::kStalledAtLastChunk ||
         f == Fault::kChunksOfTwoSnapshots;
}

TEST(Simulator, FaultsActuallyHappen) {
  std::array<int, kFaultCount> seen{};
  for (uint64_t seed = 1; seed <= 30; seed++) {
    Options o;
    o.seed = seed;
    o.request_ids = seed % 3 == 0;  // request-repeat needs clients that tag and retry
    RunResult r = run_simulation(o);
    for (size_t f = 0; f < kFaultCount; f++) seen[f] += r.faults[f];
  }
  for (size_t f = 0; f < kFaultCount; f++) {
    if (!rare(static_cast<Fault>(f)) && !upgrade_step(static_cast<Fault>(f)) && !sliced_step(static_cast<Fault>(f)) &&
        !slow_reader_step(static_cast<Fault>(f)) && !sliced_write_step(static_cast<Fault>(f)) &&
        !snapshot_race_step(static_cast<Fault>(f)) && !sliced_snapshot_step(static_cast<Fault>(f)) &&
        !fresh_leader_stall_step(static_cast<Fault>(f))) {
      EXPECT_GT(seen[f], 0) << fault_name(static_cast<Fault>(f)) << " never happened";
    }
  }
}

// What the tests below share: seeds from 1 with an option on (`with` sets it, and what goes
// with it on that seed: o.seed is set first) until every fault that `wanted` names was seen,
// at most max_seeds; every run must pass. Each seed whose run reached `marker` is run again
// with the option off (`without`), which must not reach it: only the option makes it.
void expect_reached_only_with(const char* option, uint64_t max_seeds, const std::function<void(Options&)>& with,
                              const std::function<void(Options&)>& without, const std::function<bool(Fault)>& wanted,
                              Fault marker) {
  std::array<bool, kFaultCount> seen{};
  auto all_seen = [&] {
    for (size_t f = 0; f < kFaultCount; f++)
      if (wanted(static_cast<Fault>(f)) && !seen[f]) return false;
    return true;
  };
  for (uint64_t seed = 1; seed <= max_seeds && !all_seen(); seed++) {
    Options o;
    o.seed = seed;
    with(o);
    RunResult r = run_simulation(o);
    ASSERT_TRUE(r.ok) << "seed " << seed << " [" << r.check << "] " << r.detail << "\nreplay: " << replay_command(o);
    for (size_t f = 0; f < kFaultCount; f++) seen[f] = seen[f] || r.faults[f];
    if (!r.faults[static_cast<size_t>(marker)]) continue;
    without(o);
    EXPECT_FALSE(run_simulation(o).faults[static_cast<size_t>(marker)])
        << fault_name(marker) << " without " << option << ", seed " << seed << "\nreplay: " << replay_command(o);
  }
  for (size_t f = 0; f < kFaultCount; f++) {
    if (wanted(static_cast<Fault>(f))) {
      EXPECT_TRUE(seen[f]) << fault_name(static_cast<Fault>(f)) << " never happened with " << option << " in "
                           << max_seeds << " seeds";
    }
  }
}

// Options::sliced_reads: replies made in slices, while committed entries wait for them, and
// (with forwarding links) one made into memory behind another client's write on a link. No
// run reaches them without the option.
TEST(Simulator, SlicedReadsHappen) {
  expect_reached_only_with(
      "--sliced-reads", 500,
      [](Options& o) {
        o.sliced_reads = true;
        o.forward = o.transactions = o.seed % 2 == 0;
      },
      [](Options& o) { o.sliced_reads = false; }, sliced_step, Fault::kSlicedReply);
}

// Options::snapshot_races: a follower's log reaches the index of a snapshot whose chunks it has
// staged (appends the leader sent before the snapshot's first chunk came after it), and goes
// on past it with a commit index below it; the same seeds without the option never delay
// appends so.
TEST(Simulator, SnapshotRacesReachAStagedSnapshot) {
  expect_reached_only_with(
      "--snapshot-races", 300, [](Options& o) { o.snapshot_races = true; },
      [](Options& o) { o.snapshot_races = false; },
      [](Fault f) { return f == Fault::kLastChunkAtMatchingLog || f == Fault::kLastChunkPastItsEntry; },
      Fault::kLateAppends);
}

// Options::fresh_leader_stalls: a leader stalled right after its election is judged on
// resuming (fresh-leader-kept); the same seeds without the option never stall so.
TEST(Simulator, FreshLeaderStallsHappen) {
  expect_reached_only_with(
      "--fresh-leader-stalls", 50, [](Options& o) { o.fresh_leader_stalls = true; },
      [](Options& o) { o.fresh_leader_stalls = false; }, fresh_leader_stall_step, Fault::kFreshLeaderStall);
}

// Options::slow_readers: a sliced reply waits for a client that stopped reading while
// committed entries wait for the apply; the same seeds without the option never do.
TEST(Simulator, SlowReadersHoldTheApply) {
  expect_reached_only_with(
      "--slow-readers", 200, [](Options& o) { o.sliced_reads = o.slow_readers = true; },
      [](Options& o) { o.slow_readers = false; }, slow_reader_step, Fault::kSlowReaderHeldApply);
}

// Options::sliced_writes: writes applied in slices while committed entries wait for them,
// through a crash, a leader change and a snapshot install that drops one. No run reaches
// them without the option.
TEST(Simulator, SlicedWritesHappen) {
  expect_reached_only_with(
      "--sliced-writes", 500,
      [](Options& o) {
        o.sliced_writes = true;
        o.forward = o.transactions = o.seed % 2 == 0;
      },
      [](Options& o) { o.sliced_writes = false; }, sliced_write_step, Fault::kSlicedWrite);
}

// Options::sliced_snapshots: snapshots written in slices with entries applied between the
// slices (each checked against a whole save at its index, and loaded by restarts and
// installs), and some abandoned half written by a crash or an install. No run writes one
// without the option.
TEST(Simulator, SlicedSnapshotsHappen) {
  expect_reached_only_with(
      "--sliced-snapshots", 200, [](Options& o) { o.sliced_snapshots = true; },
      [](Options& o) { o.sliced_snapshots = false; }, sliced_snapshot_step, Fault::kSlicedSnapshot);
}

TEST(Simulator, RareEventsHappen) {
  constexpr uint64_t kMaxSeeds = 5000;
  std::array<bool, kFaultCount> seen{};
  auto all_seen = [&] {
    for (size_t f = 0; f < kFaultCount; f++)
      if (rare(static_cast<Fault>(f)) && !seen[f]) return false;
    return true;
  };
  for (uint64_t seed = 1; seed <= kMaxSeeds && !all_seen(); seed++) {
    Options o;
    o.seed = seed;
    // Lying fsyncs happen only when asked (and runs may then fail): until one was seen.
    o.lying_fsync = !seen[static_cast<size_t>(Fault::kLyingFsync)];
    RunResult r = run_simulation(o);
    for (size_t f = 0; f < kFaultCount; f++) seen[f] = seen[f] || r.faults[f];
  }
  for (size_t f = 0; f < kFaultCount; f++) {
    if (rare(static_cast<Fault>(f))) {
      EXPECT_TRUE(seen[f]) << fault_name(static_cast<Fault>(f)) << " never happened in " << kMaxSeeds << " seeds";
    }
  }
}

// Options::log_memory_bytes: with a tiny bound, leaders ask for fresh snapshots and
// followers install them (a follower caught up by a snapshot taken on demand); without the
// bound no core ever asks. Every run passes its checks.
TEST(Simulator, OnDemandSnapshotsHappen) {
  uint64_t wanted = 0, taken = 0, installed = 0;
  for (uint64_t seed = 1; seed <= 20; seed++) {
    Options o;
    o.seed = seed;
    o.log_memory_bytes = 300;
    RunResult r = run_simulation(o);
    ASSERT_TRUE(r.ok) << "[" << r.check << "] " << r.detail << "\nreplay: " << replay_command(o);
    wanted += r.snapshots_wanted;
    taken += r.wanted_snapshots_taken;
    installed += r.wanted_snapshot_installs;
    o.log_memory_bytes = 0;
    RunResult plain = run_simulation(o);
    EXPECT_EQ(plain.snapshots_wanted, 0u) << "seed " << seed;
    EXPECT_EQ(plain.wanted_snapshot_installs, 0u) << "seed " << seed;
  }
  std::printf("20 seeds, log memory bound 300 bytes: %llu fresh snapshots asked for, %llu taken, %llu installed\n",
              static_cast<unsigned long long>(wanted), static_cast<unsigned long long>(taken),
              static_cast<unsigned long long>(installed));
  EXPECT_GT(wanted, 0u);
  EXPECT_GT(taken, 0u);
  EXPECT_GT(installed, 0u) << "no follower was caught up by a snapshot taken on demand";
}

// Options::forward: followers forward their clients' commands over links between the nodes.
TEST(Simulator, ForwardingRunsReplayAndLinksBreak) {
  Options o;
  o.seed = 42;
  o.forward = true;
  o.transactions = true;
  RunResult a = run_simulation(o);
  o.trace = true;
  RunResult b = run_simulation(o);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(a.forwarded, b.forwarded);
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 42 --nodes 3 --steps 300 --transactions --forward --trace");
  Options calm = o;
  calm.trace = false;
  calm.seed = 7;
  calm.faults = false;
  RunResult r = run_simulation(calm);
  ASSERT_TRUE(r.ok) << "[" << r.check << "] " << r.detail << "\nreplay: " << replay_command(calm);
  EXPECT_GT(r.forwarded, 0u) << "clients connect to any node: some to followers";
  EXPECT_EQ(r.client_unknown, 0u);
  uint64_t broken = 0;
  for (uint64_t seed = 1; seed <= 30 && broken == 0; seed++) {
    Options f = calm;
    f.seed = seed;
    f.faults = true;
    broken += run_simulation(f).forward_links_broken;
  }
  EXPECT_GT(broken, 0u) << "crashes break forwarding links";
}

// Options::upgrade: every step of the operator's plan is reached on some seed (the search
// stops once each was seen; the rarest, a blocked node restarted by its operator, first
// shows within about a hundred 5-node seeds), and a run replays exactly.
TEST(Simulator, UpgradeStepsHappenAndReplay) {
  constexpr uint64_t kMaxSeeds = 2000;
  std::array<bool, kFaultCount> seen{};
  auto all_seen = [&] {
    for (size_t f = 0; f < kFaultCount; f++)
      if (upgrade_step(static_cast<Fault>(f)) && static_cast<Fault>(f) != Fault::kUpgradeRollbackRefused && !seen[f])
        return false;
    return true;
  };
  for (uint64_t seed = 1; seed <= kMaxSeeds && !all_seen(); seed++) {
    Options o;
    o.seed = seed;
    o.nodes = 5;
    o.upgrade = true;
    RunResult r = run_simulation(o);
    ASSERT_TRUE(r.ok) << "[" << r.check << "] " << r.detail << "\nreplay: " << replay_command(o);
    for (size_t f = 0; f < kFaultCount; f++) seen[f] = seen[f] || r.faults[f];
  }
  // Except a refused rollback: a v2 node writes its snapshots in v1's layout while v1 is
  // active (server/snapshot.cc, core::snapshot_layout), which the register app's save_as
  // refuses only for a step other than 1, which no client can set before the gate.
  for (size_t f = 0; f < kFaultCount; f++) {
    if (upgrade_step(static_cast<Fault>(f)) && static_cast<Fault>(f) != Fault::kUpgradeRollbackRefused) {
      EXPECT_TRUE(seen[f]) << fault_name(static_cast<Fault>(f)) << " never happened in " << kMaxSeeds << " seeds";
    }
  }
  Options o;
  o.seed = 4;
  o.upgrade = true;
  RunResult a = run_simulation(o);
  o.trace = true;
  RunResult b = run_simulation(o);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 4 --nodes 3 --steps 300 --upgrade --trace");
}

TEST(Simulator, ReplayCommandNamesEverything) {
  Options o;
  o.seed = 123;
  o.nodes = 5;
  o.bugs.apply_before_commit = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --bug apply_before_commit --trace");
  o.bugs.apply_before_commit = false;
  o.recovery_bugs.cut_corrupt_log = true;
  o.lying_fsync = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --bug recovery_cuts_corrupt_log "
                               "--lying-fsync --trace");
  o.recovery_bugs.cut_corrupt_log = false;
  o.lying_fsync = false;
  o.request_ids = true;
  o.shell_bugs.forget_request_ids = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --request-ids "
                               "--bug forget_request_ids --trace");
  o.request_ids = false;
  o.shell_bugs.forget_request_ids = false;
  o.sliced_reads = true;
  o.shell_bugs.apply_while_producing = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --sliced-reads "
                               "--bug apply_while_producing --trace");
  o.sliced_reads = false;
  o.shell_bugs.apply_while_producing = false;
  o.snapshot_races = true;
  o.bugs.install_over_matching_log = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --snapshot-races "
                               "--bug install_over_matching_log --trace");
  o.bugs.install_over_matching_log = false;
  o.sliced_writes = true;
  o.log_memory_bytes = 300;
  o.bugs.stage_over_pending_install = true;
  o.bugs.commit_past_pending_install = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --sliced-writes "
                               "--log-memory-bytes 300 --snapshot-races --bug stage_over_pending_install "
                               "--bug commit_past_pending_install --trace");
  o.snapshot_races = false;
  o.log_memory_bytes = 0;
  o.bugs.stage_over_pending_install = false;
  o.bugs.commit_past_pending_install = false;
  o.apply_budget = true;
  o.shell_bugs.skip_yielded_command = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --sliced-writes "
                               "--apply-budget --bug skip_yielded_command --trace");
  o.sliced_writes = false;
  o.apply_budget = false;
  o.shell_bugs.skip_yielded_command = false;
  o.sliced_snapshots = true;
  o.shell_bugs.save_without_copy = true;
  EXPECT_EQ(replay_command(o), "build/src/sim/hmdb-sim --seed 123 --nodes 5 --steps 300 --sliced-snapshots "
                               "--bug save_without_copy --trace");
}

}  // namespace
}  // namespace hmdb::sim
