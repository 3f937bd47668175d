// sim/simulator.h — the deterministic cluster simulator that tortures the Raft core.
//
// One process, several nodes, each a raft::Raft driven exactly as the server shell drives
// it (persist, send, apply, answer reads, ack persistence), plus an AppHost of the
// register app fed real command batches. Network, disks, clocks and clients are simulated,
// every choice comes from one seeded PRNG, so a seed replays exactly (and the trace hash
// proves it). After every step the simulator checks the safety invariants of Raft and of
// the replicated state; at the end it heals every fault, checks liveness, and checks the
// client-visible history for linearizability. docs/simulator.md describes all of it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "raft/raft.h"
#include "sim/sim_disk.h"

namespace hmdb::sim {

// Fault kinds, for coverage statistics: a run "exercised" a kind if the fault actually
// happened to at least one message, node or disk (not merely that it was enabled).
enum class Fault : uint8_t {
  kLoss,
  kDelay,
  kReorder,
  kDuplicate,
  kPartition,
  kAsymmetricPartition,
  kIsolateNode,
  kCutLeader,
  kOverlappingPartitions,  // a partition started while another was in force
  kCrash,
  kTornWrite,
  kSlowDisk,
  kMembershipChange,
  kTransfer,
  kSnapshotInstall,
  kTornRecord,       // recovery cut a torn tail: a crash left a record half written
  kSectorHole,       // a torn write with an earlier sector missing (written out of order)
  kLogDamage,        // a bit flipped in synced log data
  kSnapshotDamage,   // a bit flipped in the newest snapshot file
  kRefusedStart,     // a node found damage at startup, refused to start and stayed down
  kLeftoversDropped, // recovery dropped entries a leader's snapshot had replaced
  kLyingFsync,       // synced records vanished (only with Options::lying_fsync)
  kClockDrift,  // the nodes' clocks run at different rates
  kPause,       // a node was frozen (SIGSTOP, a GC pause, a VM freeze) and resumed
  kInstallOverConflict,       // a node installed a snapshot over a log that conflicts at its
                              // index and goes on past it
  kInstallOverNewerConflict,  // the same, with the suffix's terms not below the snapshot's
  kSplitNemesis,              // the split nemesis completed a round (see docs/simulator.md)
  kRequestRepeat,             // a retried tagged write committed after its first attempt had
                              // (Options::request_ids): its effect was found, not repeated
  // Options::upgrade, the steps a run reached (docs/simulator.md, "Mixed versions"):
  kUpgradeRestart,       // a node was restarted with the v2 binary on its data directory
  kUpgradeKilledNew,     // a node was killed while catching up right after its upgrade
  kUpgradeRollback,      // a v2 node was restarted as v1 before the gate
  kUpgradeRollbackRefused,  // ... but its data directory held a v2 snapshot: v1 refused to start
  kUpgradeAbandoned,     // the operator rolled back and never opened the gate
  kUpgradeTransfer,      // leadership was handed to a v2 voter before the gate
  kUpgradeLeaderKilledInTransfer,  // ... and the leader was killed during the transfer
  kUpgradeGateRefused,   // the leader refused the activation: fewer than a quorum of voters read v2
  kUpgradeGateProposed,  // the leader logged the activation of v2
  kUpgradePartitionAtGate,  // the leader was cut off right after logging it
  kUpgradeGateCommitted,    // the activation committed
  kUpgradeNodeBlocked,   // a v1 node stopped applying at a v2 entry or refused a v2 snapshot
  kUpgradeBlockedRestarted,  // a blocked node was restarted with the v2 binary and went on
  kUpgradeAllV2,         // at the end every member ran v2 with v2 active
  // A follower loaded an installed snapshot in the background (as the server's thread
  // does): applying held, app commands answered -LOADING, the state swapped in later.
  kBackgroundLoad,
  kInstallDuringLoad,  // a newer snapshot arrived while the previous one still loaded
  kLoadingRefused,     // a client's command was answered -LOADING
  kLeaderWhileLoading, // a node led while its background load ran
  // Options::sliced_reads: a node ended a turn with a reply half made in slices, and did so
  // while entries it had committed waited for the reply to be complete (the apply held).
  kSlicedReply,
  kSlicedReplyHeldApply,
  // ... and one was made into memory behind another client's write on a forwarding link
  // (core::Replica::Stats::sliced_replies_buffered).
  kSlicedReplyBuffered,
  // Options::slow_readers: a sliced reply waited for a client that did not read while
  // entries the node had committed waited for the apply.
  kSlowReaderHeldApply,
  // Options::sliced_writes: a node ended a turn with a write half applied (its SUMSTORE made
  // in slices, the apply held); crashed with one; stopped or started leading with one; had
  // one dropped by a snapshot install.
  kSlicedWrite,
  kSlicedWriteCrashed,
  kSlicedWriteRoleChanged,
  kSlicedWriteDropped,
  // Options::snapshot_races: appends a leader sent a follower before the first chunk of a
  // snapshot arrived after that chunk; and a snapshot's last chunk reached a follower whose
  // log had meanwhile come to hold the snapshot's last entry (appends came in while the
  // earlier chunks were staged: raft.cc must keep that log, not install over it).
  kLateAppends,
  kLastChunkAtMatchingLog,
  // ... and the log went on past that entry while its commit index stayed below it: a core
  // that installed would cut the entries after it (what install-over-matching-log fails).
  kLastChunkPastItsEntry,
  // An append carrying entries past its leader's commit index held in the network while its
  // leader snapshots inside them; a follower stopped as a snapshot's last chunk reached it,
  // past the leader's resend.
  kHeldAppend,
  kStalledAtLastChunk,
  // ... and a follower got a snapshot's last chunk and another snapshot's chunk in one loop
  // turn (raft.cc must not stage the second over the install the first made pending).
  kChunksOfTwoSnapshots,
  // Options::sliced_snapshots: a node wrote a snapshot in slices (hmdb::SaveProducer) with
  // entries applied between its slices; and one was abandoned half written (the node crashed
  // or a leader's snapshot replaced its state).
  kSlicedSnapshot,
  kSlicedSnapshotAbandoned,
  // Options::fresh_leader_stalls: a leader stalled right after the turn that elected it
  // resumed with its first check-quorum round among the ticks fed to it (before the
  // messages that came meanwhile), and the fresh-leader-kept check judged it.
  kFreshLeaderStall,
  kCount
};
const char* fault_name(Fault f);
inline constexpr size_t kFaultCount = static_cast<size_t>(Fault::kCount);

struct Options {
  uint64_t seed = 1;
  uint32_t nodes = 3;          // initial voters (3 or 5); learners join during the run
  uint32_t chaos_ticks = 300;  // ticks of faults before healing
  uint32_t max_client_ops = 300;  // bounds the history the linearizability check searches
  bool faults = true;          // false: a fault-free run (for tests of the harness itself)
  // false: skip the checks that look inside the protocol (the hard state in each Ready
  // never goes back, a vote is durable before it is sent, a leader commits by counting
  // only entries of its own term, applied <= commit, the read lease and the promises it
  // rests on). What is left judges outcomes only (elections, logs, applied state, client
  // history), to show that a planted bug also breaks something a user would see.
  bool protocol_checks = true;
  bool trace = false;          // keep the readable trace (RunResult::trace)
  // If set (with trace), every trace line is also handed to it as it happens, so that a
  // run the core aborts still shows its trace up to the abort.
  std::function<void(const std::string&)> trace_sink;
  raft::Config::PlantedBugs bugs;
  // Planted bugs of the shell's bookkeeping that the simulator drives (server/), for
  // proving that its checks catch them (tests/sim/planted_bugs_test.cc).
  struct ShellBugs {
    // The shell keeps waiting on proposals that a new leader's entries (or a snapshot)
    // removed from the log, as the server did before issue 9: it then answered their
    // clients only when the log regrew, and aborted when it led again and proposed there.
    bool forget_replaced_writes = false;
    // The leader answers queries without a read-index round (core::Replica::Options::PlantedBugs).
    bool reads_without_index = false;
    // After a pause the shell feeds the core one tick instead of the ticks that really
    // elapsed (src/server/node.cc before 2026-11), so a paused leader's clock lags.
    bool drop_missed_ticks = false;
    // With forward: a follower's forwarder sends a write in flight on a broken link again
    // instead of answering "outcome unknown" (core::Forwarder::Options::PlantedBugs).
    // Without forward there is no forwarder, and nothing to catch.
    bool forward_resends_broken_writes = false;
    // The replica applies entries with no request table (core::Replica's planted bug): a
    // write tagged with a request id is applied again when its client retries it.
    bool forget_request_ids = false;
    // A follower takes the digest at a digest mark after applying the mark's whole entry,
    // not where the mark stands in it (core::Replica's planted bug): with writes batched
    // after the mark, its digest is not the leader's. Only with Options::digest_marks.
    bool hash_marks_after_entry = false;
    // With upgrade: an old (v1) node applies entries of v2, which it does not read, with its
    // own meaning and passes over the activation, instead of blocking there
    // (core::Replica's planted bug apply_unread_schema).
    bool apply_unread_schema = false;
    // A follower loading the leader's snapshot in the background does not hold applying:
    // the entries after the snapshot apply to the old state (core::Replica's planted bug
    // apply_during_background_load).
    bool apply_during_background_load = false;
    // With upgrade: the v2 app's migration of a v1 snapshot drops each register's value
    // (sim::RegisterAppV2DropsField).
    bool migration_drops_field = false;
    // With upgrade: the leader's gate (CLUSTER SCHEMA ACTIVATE, server/cluster.cc, as the
    // simulator's nodes run it) skips its quorum check and logs the activation whoever
    // reads it.
    bool gate_without_quorum = false;
    // Sliced replies do not hold the apply (core::Replica's planted bug
    // apply_while_producing): entries apply between an MGET's slices. Only with
    // Options::sliced_reads.
    bool apply_while_producing = false;
    // A write applied in slices does not hold the apply (core::Replica's planted bug
    // apply_before_write_finishes): its entry counts as applied at once, and the entries
    // after it apply before it finishes. Only with Options::sliced_writes.
    bool apply_before_write_finishes = false;
    // An entry stopped for the turn's apply budget resumes after the command it stopped
    // before, which is lost (core::Replica's planted bug skip_yielded_command). Only with
    // Options::apply_budget (whose nodes' budgets run out at random commands).
    bool skip_yielded_command = false;
    // With raft::Config::after_persist_messages (half the seeds): the shell sends the
    // messages meant for after the disk write (append acks, votes) when it hands the write
    // over, as a server whose disk thread sent them before its fdatasync would.
    bool send_after_persist_early = false;
    // With sliced_snapshots: the v1 app's snapshot producer does not copy before write
    // (sim::RegisterAppSavesWithoutCopy): a register changed ahead of its cursor is written
    // as it is now, not as it was at the snapshot's index.
    bool save_without_copy = false;
  } shell_bugs;
  // Models of a server whose recovery skips a detection (planted bugs of the shell).
  RecoveryBugs recovery_bugs;
  // Also let fsyncs lie: at some crashes the last synced records of a node's log vanish.
  // Nothing on the disk can tell that from a crash before the fsync, so no node can detect
  // it and Raft's guarantees do not hold; off in CI (docs/simulator.md).
  bool lying_fsync = false;
  // Clients send one op in three as a transaction of one command (MULTI, the op, EXEC):
  // its entry holds a transaction group (core/batch.h) and its reply is EXEC's array, read
  // as the op's; a leader change around it ends it like any write (docs/simulator.md).
  bool transactions = false;
  // Followers forward their clients' commands to the leader (core/forwarder.h), over links
  // between the simulated nodes, instead of answering -MOVED (docs/simulator.md).
  bool forward = false;
  // Clients tag every write with a request id (HMDB.REQ, core/request.h) and retry it, on
  // any node, after an unknown outcome (a timeout, a reset connection, "write outcome
  // unknown") until it is answered or kRequestAttemptsMax attempts were made; a tagged write
  // in a transaction tags its EXEC. The exactly-once check sees a tagged write take effect
  // twice (docs/simulator.md).
  bool request_ids = false;
  // Every kDigestMarkEveryTicks ticks each leader logs a digest mark (CLUSTER DIGEST MARK,
  // core/digest_marks.h) ahead of its clients' writes of that tick; the digest-mark check
  // sees every node take the same digest at each mark, also when a restart replays it
  // (docs/simulator.md). Off by default, so that the other sweeps' runs stay as they were.
  bool digest_marks = false;
  // Mixed versions (issue 13): the nodes start with v1 of the register app; an operator's
  // plan, drawn from the seed, restarts them one by one with v2 (sim::RegisterAppV2) on
  // their data directories, sometimes rolls some back, and opens the gate (CLUSTER SCHEMA
  // ACTIVATE 2) with the leader's quorum check, among the usual faults and its own (the new
  // node killed while catching up, the leader killed during a transfer, a partition at the
  // gate). Checks: no node applies an entry of a schema its binary does not read; the gate
  // commits only while a quorum of voters runs v2; plus every other check (the state digest
  // compares v1 and v2 nodes at v1 before the gate, every applying node at v2 after it).
  bool upgrade = false;
  // One client op in ten is an MGET of every key, and the nodes make big replies in slices
  // of one element (core::Replica::Options::slice_elements = 1), so an MGET's reply spans
  // loop turns while the apply is held, through crashes, leader changes and snapshot
  // installs. Checks: its two change counts (sim::RegisterApp::State::changes) are equal (no
  // write applied between its first and last slice), and each value joins the per-key
  // linearizability check as a GET of that key (docs/simulator.md). Off by default, so that
  // the other sweeps' runs stay as they were.
  bool sliced_reads = false;
  // With sliced_reads: one client in two that sends an MGET of every key stops reading its
  // connection for 1-25 ticks (a slow reader), and the nodes pause a sliced reply at any
  // unsent byte (core::Replica::Options::slice_output_pause_bytes = 1) for up to
  // kSlowReaderWaitTicks in a row, as the server does at kSliceOutputPauseBytes for
  // kSliceReaderWaitMs: the apply is then held for many election timeouts on a leader or a
  // follower, while the log moves on, snapshots are sent and installed (docs/simulator.md).
  bool slow_readers = false;
  // One client op in ten is a SUMSTORE of every key into one of them (sim::RegisterApp: the
  // sum is the reply), and the nodes apply writes in slices of one element
  // (core::Replica::Options::write_slice_elements = 1), so a SUMSTORE's apply spans loop
  // turns while the apply is held, through crashes, leader changes and snapshot installs.
  // Checks: as for every run (the state digest at every index is every node's, the
  // acknowledged SUMSTOREs are committed); the per-key linearizability check takes a
  // SUMSTORE as a write of the value it answered (docs/simulator.md). Off by default, so that
  // the other sweeps' runs stay as they were.
  bool sliced_writes = false;
  // Half the snapshots a node takes are written in slices, as the server's
  // --snapshot-method slices does (hmdb::SaveProducer; sim::RegisterSaveCursor): the engine
  // part at once, then the app's producer is called for a slice of 1-2 registers, at
  // one chance in four (seed-drawn), after every entry the node applies and at the end of
  // its turns, until done;
  // then the file is written as a whole snapshot's is. Dropped, the snapshot lost, when the
  // node crashes or a leader's snapshot replaces its state. Checks: the bytes are those of a
  // whole save at the snapshot's index (sliced-snapshot, a protocol check), and as for every
  // snapshot, a node restarted from it or installing it holds the state the cluster applied
  // there (state-digest). Off by default, so that the
  // other sweeps' runs stay as they were.
  bool sliced_snapshots = false;
  // Each node's turn apply budget (core::Replica::Options::apply_budget_spent; the server's
  // kTurnApplyBudgetUs) runs out before a random quarter of its commands, asked at every one
  // (drawn from the seed, the node and its incarnation): every node stops its entries at its
  // own points and resumes them in its next turns (docs/simulator.md, "Sliced big writes").
  bool apply_budget = false;
  // raft::Config::log_memory_bytes of every node (0: no bound, the default, so that every
  // other sweep's runs stay as they were). A tiny bound makes the cores drop entries without
  // a snapshot all the time, and a leader ask its shell for a fresh snapshot (Ready::
  // snapshot_wanted) whenever a follower needs a dropped entry; the shell takes it at the
  // end of that node's turn (after the one it is writing, if any). Checks: as for every run
  // (a follower that never catches up fails liveness; a wrong state, state-digest).
  uint64_t log_memory_bytes = 0;
  // Races around a snapshot's transfer (docs/simulator.md, "Snapshot races"), on a network
  // that reorders one leader's messages, as the core allows (the server's transport keeps
  // them in order: no chunk overtakes an append there). When a leader sends a follower a
  // snapshot's chunk, the appends to it in flight arrive after the chunk, up to
  // kLateAppendUnitsMax later, or just before the last chunk; an append carrying entries past
  // its leader's commit index is sometimes held in the network while its leader snapshots
  // inside those entries (kRaceHoldPpm), so the follower's log passes the snapshot's entry
  // while its chunks are staged, with a commit index below it. Every chunk arrives at a
  // tick's boundary, and a follower sent a last chunk often stops as it arrives, past the
  // leader's resend (kRaceStallPpm; SIGSTOP or a VM freeze do it to the server), so that
  // it reads that chunk and a newer snapshot's first in one loop turn. Off by default, so
  // that the other sweeps' runs stay as they were.
  bool snapshot_races = false;
  // A stall right after an election (docs/simulator.md, "A stall after an election"): at
  // one chance in two (kFreshLeaderStallPpm), a node that the turn made leader is frozen at
  // the end of that turn for kFreshLeaderStallTicksMin-Max ticks, more than one election
  // timeout and less than two, as a server's loop is by a slow turn or a descheduled
  // process; resumed, the shell feeds the core those ticks before it reads the messages
  // that came meanwhile (the answers to its first append among them), as the server's loop
  // does. Check fresh-leader-kept: the ticks alone do not depose it, in the term it was
  // elected in: its first check-quorum round counts the voters that elected it as heard
  // from (raft.cc become_leader; a leader cut off at once steps down at its second round).
  // Off by default, so that the other sweeps' runs stay as they were.
  bool fresh_leader_stalls = false;
};

struct RunResult {
  bool ok = true;
  std::string check;   // the name of the violated check
  std::string detail;  // what exactly was seen
  uint64_t seed = 0;
  uint64_t trace_hash = 0;  // hash of every trace event: equal for equal runs
  uint64_t ticks = 0;
  uint64_t messages_sent = 0;
  uint64_t entries_applied = 0;  // summed over nodes
  uint64_t client_ops = 0;
  uint64_t client_ok = 0, client_failed = 0, client_unknown = 0;
  bool linearizability_inconclusive = false;
  // A node became leader of a term without an entry committed in a later term: legal, and
  // the case an exact leader-completeness check must let pass (commit_terms.h).
  bool older_term_leader = false;
  // A learner was elected (it may, only after the voters failed to elect anyone for a long
  // time: raft.cc learner_may_campaign); counted by hmdb-sim's summary.
  bool learner_led = false;
  // Options::forward: client commands a follower forwarded, and forwarding links that broke
  // (their node crashed, or refused the connection).
  uint64_t forwarded = 0;
  uint64_t forward_links_broken = 0;
  // Options::log_memory_bytes: times a leader asked for a fresh snapshot, snapshots taken
  // because one asked, and installs (on followers) of such a snapshot: a follower caught up
  // by a snapshot taken on demand.
  uint64_t snapshots_wanted = 0;
  uint64_t wanted_snapshots_taken = 0;
  uint64_t wanted_snapshot_installs = 0;
  std::array<bool, kFaultCount> faults{};
  std::vector<std::string> trace;  // only with Options::trace
};

RunResult run_simulation(const Options& options);

// The same run in a forked child process, so that a core abort (HMDB_ASSERT) becomes a
// failed result (check "core-abort") instead of ending the caller. Returns the summary
// only (no trace). For sweeps and tests that must survive a crashing core.
RunResult run_simulation_isolated(const Options& options);

// The exact command that replays options (seed, node count, steps, planted bugs).
std::string replay_command(const Options& options);

// Planted-bug names as the CLI takes them; false if name is unknown.
bool set_bug(raft::Config::PlantedBugs* bugs, const std::string& name);
// The same for the shell's planted bugs (Options::ShellBugs).
bool set_shell_bug(Options::ShellBugs* bugs, const std::string& name);
std::vector<std::string> shell_bug_names();
// The same for every planted bug: the core's (Config::bugs), the shell's and the recovery's.
bool set_bug(Options* options, const std::string& name);
std::vector<std::string> bug_names();

}  // namespace hmdb::sim
