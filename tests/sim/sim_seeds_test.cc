// tests/sim/sim_seeds_test.cc — the CI seed sweep: many whole-cluster runs with every fault
// kind, on 3 and 5 nodes. HMDB_SIM_SEEDS overrides the number of seeds per cluster size
// (HMDB_SIM_START the first seed). A failure names the seed, the check and the command that
// replays it with a full trace. Runs are in-process (a fork per seed would double the
// cost); if the core aborts on an assertion, a SIGABRT handler prints the seed and the
// replay command before the binary dies.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "sim/simulator.h"

namespace hmdb::sim {
namespace {

// Per cluster size. About 2-3 minutes of CPU for both sizes together on the 2-core CI box
// (measured figures in docs/simulator.md).
constexpr uint64_t kDefaultSeeds = 20000;

char g_replay_line[512];
void on_abort(int) {
  ssize_t n = write(2, g_replay_line, std::strlen(g_replay_line));
  (void)n;
  signal(SIGABRT, SIG_DFL);
  raise(SIGABRT);
}

uint64_t env_or(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

void sweep(uint32_t nodes, uint64_t default_seeds = kDefaultSeeds, bool transactions = false, bool forward = false,
           bool request_ids = false, bool digest_marks = false, bool upgrade = false, bool sliced_reads = false,
           uint64_t log_memory_bytes = 0, bool slow_readers = false, bool sliced_writes = false,
           bool snapshot_races = false, bool apply_budget = false, bool sliced_snapshots = false,
           bool fresh_leader_stalls = false) {
  signal(SIGABRT, on_abort);
  uint64_t seeds = env_or("HMDB_SIM_SEEDS", default_seeds);
  uint64_t start = env_or("HMDB_SIM_START", 1);
  for (uint64_t s = start; s < start + seeds; s++) {
    Options o;
    o.seed = s;
    o.nodes = nodes;
    o.transactions = transactions;
    o.forward = forward;
    o.request_ids = request_ids;
    o.digest_marks = digest_marks;
    o.upgrade = upgrade;
    o.sliced_reads = sliced_reads;
    o.log_memory_bytes = log_memory_bytes;
    o.slow_readers = slow_readers;
    o.sliced_writes = sliced_writes;
    o.snapshot_races = snapshot_races;
    o.apply_budget = apply_budget;
    o.sliced_snapshots = sliced_snapshots;
    o.fresh_leader_stalls = fresh_leader_stalls;
    std::snprintf(g_replay_line, sizeof g_replay_line, "\nsim_seeds_test: the core aborted on seed %llu; replay: %s\n",
                  static_cast<unsigned long long>(s), replay_command(o).c_str());
    RunResult r = run_simulation(o);
    ASSERT_TRUE(r.ok) << "seed " << s << " failed check [" << r.check << "]: " << r.detail
                      << "\nreplay: " << replay_command(o);
  }
  signal(SIGABRT, SIG_DFL);
}

TEST(SimSeeds, ThreeNodes) { sweep(3); }
// A 5-node run costs about 1.6 times a 3-node one: 14,000 seeds keep the cold CI within its
// 25 minutes (scripts/test.sh). HMDB_SIM_SEEDS for more.
TEST(SimSeeds, FiveNodes) { sweep(5, kDefaultSeeds * 7 / 10); }
// A cluster of one (the server's default): crashes, torn writes, slow disk and clients;
// no network. Cheap, so fewer seeds suffice.
TEST(SimSeeds, OneNode) { sweep(1, kDefaultSeeds / 10); }
// Clients send one op in three as MULTI, op, EXEC (Options::transactions): groups in the
// log, EXEC's array, transactions across crashes and leader changes. A planted bug that
// applies a group's commands twice fails 258 of 300 3-node seeds (docs/simulator.md).
TEST(SimSeeds, ThreeNodesTransactions) { sweep(3, kDefaultSeeds / 10, /*transactions=*/true); }
// Followers forward their plain clients' commands to the leader (Options::forward), one op
// in three as a transaction: links between the nodes broken by crashes, drained after
// leader changes, a follower elected with commands still to send (seed 1139 failed when
// such a command was handed back to the replica: a GET queued into a later MULTI). 2,000
// seeds add about 4.7 s of user CPU (docs/simulator.md).
TEST(SimSeeds, ThreeNodesForward) { sweep(3, kDefaultSeeds / 10, /*transactions=*/true, /*forward=*/true); }
// Clients tag every write with a request id and retry it after an unknown outcome, on any
// node (Options::request_ids), one op in three as a transaction whose EXEC is tagged: the
// exactly-once check sees no tagged write take effect twice. Half the seeds with clients
// that follow -MOVED, half through followers that forward (the tag travels with the
// command). In about half the seeds a retry commits after its first attempt did
// (docs/simulator.md).
TEST(SimSeeds, ThreeNodesRequestIds) {
  sweep(3, kDefaultSeeds / 20, /*transactions=*/true, /*forward=*/false, /*request_ids=*/true);
}
TEST(SimSeeds, ThreeNodesRequestIdsForward) {
  sweep(3, kDefaultSeeds / 20, /*transactions=*/true, /*forward=*/true, /*request_ids=*/true);
}
// Leaders log digest marks (Options::digest_marks) among tagged writes and transactions:
// every node takes the same digest at every mark, through crashes, restarts that replay the
// mark and snapshot installs (docs/simulator.md).
TEST(SimSeeds, ThreeNodesDigestMarks) {
  sweep(3, kDefaultSeeds / 20, /*transactions=*/true, /*forward=*/false, /*request_ids=*/true, /*digest_marks=*/true);
}

// One op in ten is an MGET of every key, made in slices of one element across loop turns
// while the node holds the apply (Options::sliced_reads): its two change counts are equal
// and its values linearizable, through crashes, leader changes, snapshot installs, and (half
// the seeds) on forwarding links with transactions and tagged retries. Seed 8 of the forward
// half found a reply behind another client's write on a forwarding link waiting for that
// write while the write waited for the reply's hold (docs/simulator.md).
TEST(SimSeeds, ThreeNodesSlicedReads) {
  sweep(3, kDefaultSeeds / 40, false, false, false, false, false, /*sliced_reads=*/true);
  sweep(3, kDefaultSeeds / 40, /*transactions=*/true, /*forward=*/true, /*request_ids=*/true, false, false,
        /*sliced_reads=*/true);
}

// Slow readers (Options::slow_readers): a client that sent an MGET of every key stops
// reading for 1-25 ticks one time in two, and its reply's slices wait for it (up to 3
// election timeouts in a row), holding the node's apply, on leaders and followers, through
// crashes, leader changes and snapshot installs. 1,000 3-node seeds with forwarding,
// transactions and tagged retries, and 300 5-node seeds (docs/simulator.md, "Slow readers").
TEST(SimSeeds, SlowReaders) {
  sweep(3, kDefaultSeeds / 20, /*transactions=*/true, /*forward=*/true, /*request_ids=*/true, false, false,
        /*sliced_reads=*/true, 0, /*slow_readers=*/true);
  sweep(5, kDefaultSeeds / 66, false, false, false, false, false, /*sliced_reads=*/true, 0, /*slow_readers=*/true);
}

// One op in ten is a SUMSTORE of every key, applied in slices of one element across loop
// turns while the node holds the apply (Options::sliced_writes): the state digest is every
// node's at every index, through crashes, leader changes, snapshot installs that drop a
// half-applied write, and (half the seeds) on forwarding links with transactions (a tagged
// write is applied whole: no tags here) (docs/simulator.md, "Sliced writes").
TEST(SimSeeds, ThreeNodesSlicedWrites) {
  sweep(3, kDefaultSeeds / 40, false, false, false, false, false, false, 0, false, /*sliced_writes=*/true);
  sweep(3, kDefaultSeeds / 40, /*transactions=*/true, /*forward=*/true, false, false, false, false, 0, false,
        /*sliced_writes=*/true);
}

// The same with every node's turn apply budget running out before a random quarter of its
// commands (Options::apply_budget): entries stopped at different points on every node and
// resumed in later turns, besides the SUMSTOREs' slices; the state digest is every node's at
// every index (docs/simulator.md, "Sliced big writes").
TEST(SimSeeds, ThreeNodesApplyBudget) {
  sweep(3, kDefaultSeeds / 40, false, false, false, false, false, false, 0, false, /*sliced_writes=*/true,
        /*snapshot_races=*/false, /*apply_budget=*/true);
  sweep(3, kDefaultSeeds / 40, /*transactions=*/true, /*forward=*/true, false, false, false, false, 0, false,
        /*sliced_writes=*/true, /*snapshot_races=*/false, /*apply_budget=*/true);
}

// Mixed versions (Options::upgrade, issue 13): the nodes go from v1 to v2 of the register
// app by an operator's plan drawn from the seed (restarts on the same data directory,
// rollbacks, an abandoned upgrade, a transfer with the leader killed, the gate with a
// partition, nodes left blocked), among every usual fault. 2,000 3-node and 1,000 5-node
// seeds take about 7.5 s of user CPU (docs/simulator.md, "Mixed versions").
TEST(SimSeeds, ThreeNodesUpgrade) {
  sweep(3, kDefaultSeeds / 10, false, false, false, false, /*upgrade=*/true);
}
TEST(SimSeeds, FiveNodesUpgrade) {
  sweep(5, kDefaultSeeds / 20, false, false, false, false, /*upgrade=*/true);
}

// A tiny log memory bound (Options::log_memory_bytes: 300 bytes, a few entries): the cores drop
// entries without a snapshot all the time, and every follower that falls behind is caught
// up by a snapshot its leader's shell takes on demand (Ready::snapshot_wanted), among every
// usual fault; on 5 nodes a bound of 150 bytes, with forwarding, transactions and tagged
// retries on a third. The planted bug send_stale_snapshot_after_trim fails liveness within a
// few seeds (planted_bugs_test). docs/simulator.md, "Log memory bound".
TEST(SimSeeds, ThreeNodesLogMemory) {
  sweep(3, kDefaultSeeds / 10, false, false, false, false, false, false, /*log_memory_bytes=*/300);
}
TEST(SimSeeds, FiveNodesLogMemory) {
  sweep(5, kDefaultSeeds / 20, false, false, false, false, false, false, /*log_memory_bytes=*/150);
  sweep(3, kDefaultSeeds / 20, /*transactions=*/true, /*forward=*/true, /*request_ids=*/true, false, false, false,
        /*log_memory_bytes=*/150);
}

// Snapshot races (Options::snapshot_races): appends overtaken by a snapshot's chunks, a last
// chunk reaching a log that came to hold the snapshot's entry meanwhile, chunks of two
// snapshots in one loop turn, through every other fault; 500 3-node seeds and 300 5-node
// seeds with writes in slices (docs/simulator.md, "Snapshot races").
TEST(SimSeeds, SnapshotRaces) {
  sweep(3, kDefaultSeeds / 40, false, false, false, false, false, false, 0, false, false, /*snapshot_races=*/true);
  sweep(5, kDefaultSeeds / 66, false, false, false, false, false, false, 0, false, /*sliced_writes=*/true,
        /*snapshot_races=*/true);
}

// Snapshots written in slices (Options::sliced_snapshots: kv's --snapshot-method slices, with
// the register app's copy-before-write producer): half a node's snapshots, their slices
// between applied entries, abandoned by crashes and installs; each checked against a whole
// save at its index, and loaded by restarts and installs (state-digest). With a tiny log
// memory bound and writes in slices too (many snapshots taken on demand and installed), and
// on 5 nodes. docs/simulator.md, "Snapshots in slices".
TEST(SimSeeds, SlicedSnapshots) {
  sweep(3, kDefaultSeeds / 66, false, false, false, false, false, false, 0, false, false, false, false,
        /*sliced_snapshots=*/true);
  sweep(3, kDefaultSeeds / 66, false, false, false, false, false, false, /*log_memory_bytes=*/300, false,
        /*sliced_writes=*/true, false, false, /*sliced_snapshots=*/true);
  sweep(5, kDefaultSeeds / 133, /*transactions=*/true, /*forward=*/true, false, false, false, false, 0, false, false,
        /*snapshot_races=*/true, false, /*sliced_snapshots=*/true);
}

// A stall right after an election (Options::fresh_leader_stalls): half the new leaders are
// frozen for more than one election timeout at the end of the turn that elected them; the
// ticks fed on resuming must not depose them (fresh-leader-kept), and every other check
// holds through the elections the stalls cause. With writes in slices and snapshot races on
// 5 nodes. docs/simulator.md, "A stall after an election". (~3 s of CPU here.)
TEST(SimSeeds, FreshLeaderStalls) {
  sweep(3, kDefaultSeeds / 20, false, false, false, false, false, false, 0, false, false, false, false, false,
        /*fresh_leader_stalls=*/true);
  sweep(5, kDefaultSeeds / 40, /*transactions=*/true, /*forward=*/true, false, false, false, false, 0, false,
        /*sliced_writes=*/true, /*snapshot_races=*/true, false, false, /*fresh_leader_stalls=*/true);
}

}  // namespace
}  // namespace hmdb::sim
