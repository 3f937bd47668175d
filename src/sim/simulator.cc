// sim/simulator.cc — the deterministic cluster simulator (see simulator.h, docs/simulator.md).
//
// Time is counted in units; kUnitsPerTick units make one Raft tick. A message takes a few
// units, a disk write a few units (a slow disk: many), so Raft sees a network much faster
// than its election timeout, as in production. In each unit the simulator, in this order:
//   1. on a tick boundary: injects faults, moves clients, ticks every running core;
//   2. delivers every message due now, completes every disk write due now (persisted());
//   3. for every running node: ends its loop turn (core::Replica::end_turn, as the server's
//      event loop does: propose the turn's batch, ask for reads, handle every Ready in
//      raft.h's order through the simulator's ReplicaHost), and checks the invariants that
//      concern that node.
// Each node runs the server's own replica core (src/core): clients send commands into its
// sessions and read the replies it writes, so routing, reply order, write tracking and
// read-index reads meet every fault, as they do in the server.
// A violated invariant stops the run with the check's name and what was seen.
#include "sim/simulator.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <queue>
#include <set>
#include <unordered_map>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <xxhash.h>

#include "common/assert.h"
#include "core/batch.h"
#include "core/forwarder.h"
#include "core/replica.h"
#include "core/state.h"
#include "net/resp.h"
#include "net/resp_reply.h"
#include "sim/commit_terms.h"
#include "sim/linearizability.h"
#include "sim/random.h"
#include "sim/register_app.h"

namespace hmdb::sim {

using raft::Entry;
using raft::EntryType;
using raft::HardState;
using raft::Index;
using raft::Message;
using raft::MessageType;
using raft::NodeId;
using raft::Role;
using raft::Term;

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kLoss: return "loss";
    case Fault::kDelay: return "delay";
    case Fault::kReorder: return "reorder";
    case Fault::kDuplicate: return "duplicate";
    case Fault::kPartition: return "partition";
    case Fault::kAsymmetricPartition: return "asymmetric-partition";
    case Fault::kIsolateNode: return "isolate-node";
    case Fault::kCutLeader: return "cut-leader";
    case Fault::kOverlappingPartitions: return "overlapping-partitions";
    case Fault::kCrash: return "crash";
    case Fault::kTornWrite: return "torn-write";
    case Fault::kSlowDisk: return "slow-disk";
    case Fault::kMembershipChange: return "membership-change";
    case Fault::kTransfer: return "transfer";
    case Fault::kSnapshotInstall: return "snapshot-install";
    case Fault::kTornRecord: return "torn-record";
    case Fault::kSectorHole: return "sector-hole";
    case Fault::kLogDamage: return "log-damage";
    case Fault::kSnapshotDamage: return "snapshot-damage";
    case Fault::kRefusedStart: return "refused-start";
    case Fault::kLeftoversDropped: return "leftovers-dropped";
    case Fault::kLyingFsync: return "lying-fsync";
    case Fault::kClockDrift: return "clock-drift";
    case Fault::kPause: return "pause";
    case Fault::kInstallOverConflict: return "install-over-conflict";
    case Fault::kInstallOverNewerConflict: return "install-over-newer-conflict";
    case Fault::kSplitNemesis: return "split-nemesis";
    case Fault::kRequestRepeat: return "request-repeat";
    case Fault::kUpgradeRestart: return "upgrade-restart-v2";
    case Fault::kUpgradeKilledNew: return "upgrade-killed-new";
    case Fault::kUpgradeRollback: return "upgrade-rollback";
    case Fault::kUpgradeRollbackRefused: return "upgrade-rollback-refused";
    case Fault::kUpgradeAbandoned: return "upgrade-abandoned";
    case Fault::kUpgradeTransfer: return "upgrade-transfer";
    case Fault::kUpgradeLeaderKilledInTransfer: return "upgrade-leader-killed";
    case Fault::kUpgradeGateRefused: return "upgrade-gate-refused";
    case Fault::kUpgradeGateProposed: return "upgrade-gate-proposed";
    case Fault::kUpgradePartitionAtGate: return "upgrade-gate-partition";
    case Fault::kUpgradeGateCommitted: return "upgrade-gate-committed";
    case Fault::kUpgradeNodeBlocked: return "upgrade-node-blocked";
    case Fault::kUpgradeBlockedRestarted: return "upgrade-blocked-restart";
    case Fault::kUpgradeAllV2: return "upgrade-all-v2";
    case Fault::kBackgroundLoad: return "background-load";
    case Fault::kInstallDuringLoad: return "install-during-load";
    case Fault::kLoadingRefused: return "loading-refused";
    case Fault::kLeaderWhileLoading: return "leader-while-loading";
    case Fault::kSlicedReply: return "sliced-reply";
    case Fault::kSlicedReplyHeldApply: return "sliced-reply-held-apply";
    case Fault::kSlicedReplyBuffered: return "sliced-reply-buffered";
    case Fault::kSlowReaderHeldApply: return "slow-reader-held-apply";
    case Fault::kSlicedWrite: return "sliced-write";
    case Fault::kSlicedWriteCrashed: return "sliced-write-crashed";
    case Fault::kSlicedWriteRoleChanged: return "sliced-write-role-changed";
    case Fault::kSlicedWriteDropped: return "sliced-write-dropped";
    case Fault::kLateAppends: return "late-appends";
    case Fault::kLastChunkAtMatchingLog: return "last-chunk-at-matching-log";
    case Fault::kLastChunkPastItsEntry: return "last-chunk-past-its-entry";
    case Fault::kHeldAppend: return "held-append";
    case Fault::kStalledAtLastChunk: return "stalled-at-last-chunk";
    case Fault::kChunksOfTwoSnapshots: return "chunks-of-two-snapshots";
    case Fault::kSlicedSnapshot: return "sliced-snapshot";
    case Fault::kSlicedSnapshotAbandoned: return "sliced-snapshot-abandoned";
    case Fault::kFreshLeaderStall: return "fresh-leader-stall";
    case Fault::kCount: break;
  }
  return "?";
}

std::vector<std::string> bug_names() {
  return {"grant_two_votes_per_term", "answer_vote_before_persisting", "commit_old_term_by_counting",
          "apply_before_commit", "keep_log_suffix_on_snapshot_install", "ignore_lease_when_voting",
          "lease_without_drift_margin", "ack_append_before_persisting", "learners_never_campaign",
          "send_stale_snapshot_after_trim", "install_over_matching_log", "stage_over_pending_install",
          "commit_past_pending_install", "recovery_cuts_corrupt_log", "recovery_ignores_snapshot_checksum",
          "recovery_keeps_replaced_log", "fresh_leader_forgets_its_voters"};
}

bool set_bug(Options* o, const std::string& name) {
  if (set_bug(&o->bugs, name) || set_shell_bug(&o->shell_bugs, name)) return true;
  if (name == "recovery_cuts_corrupt_log") o->recovery_bugs.cut_corrupt_log = true;
  else if (name == "recovery_ignores_snapshot_checksum") o->recovery_bugs.ignore_snapshot_checksum = true;
  else if (name == "recovery_keeps_replaced_log") o->recovery_bugs.keep_replaced_log = true;
  else return false;
  return true;
}

bool set_bug(raft::Config::PlantedBugs* bugs, const std::string& name) {
  if (name == "grant_two_votes_per_term") bugs->grant_two_votes_per_term = true;
  else if (name == "answer_vote_before_persisting") bugs->answer_vote_before_persisting = true;
  else if (name == "commit_old_term_by_counting") bugs->commit_old_term_by_counting = true;
  else if (name == "apply_before_commit") bugs->apply_before_commit = true;
  else if (name == "ignore_lease_when_voting") bugs->ignore_lease_when_voting = true;
  else if (name == "lease_without_drift_margin") bugs->lease_without_drift_margin = true;
  else if (name == "ack_append_before_persisting") bugs->ack_append_before_persisting = true;
  else if (name == "keep_log_suffix_on_snapshot_install") bugs->keep_log_suffix_on_snapshot_install = true;
  else if (name == "learners_never_campaign") bugs->learners_never_campaign = true;
  else if (name == "send_stale_snapshot_after_trim") bugs->send_stale_snapshot_after_trim = true;
  else if (name == "install_over_matching_log") bugs->install_over_matching_log = true;
  else if (name == "stage_over_pending_install") bugs->stage_over_pending_install = true;
  else if (name == "commit_past_pending_install") bugs->commit_past_pending_install = true;
  else if (name == "fresh_leader_forgets_its_voters") bugs->fresh_leader_forgets_its_voters = true;
  else return false;
  return true;
}

std::vector<std::string> shell_bug_names() {
  return {"forget_replaced_writes", "drop_missed_ticks", "reads_without_index", "forward_resends_broken_writes",
          "forget_request_ids", "hash_marks_after_entry", "apply_unread_schema", "migration_drops_field",
          "gate_without_quorum", "apply_during_background_load", "apply_while_producing",
          "send_after_persist_early", "apply_before_write_finishes", "skip_yielded_command",
          "save_without_copy"};
}

bool set_shell_bug(Options::ShellBugs* bugs, const std::string& name) {
  if (name == "forget_replaced_writes") bugs->forget_replaced_writes = true;
  else if (name == "drop_missed_ticks") bugs->drop_missed_ticks = true;
  else if (name == "reads_without_index") bugs->reads_without_index = true;
  else if (name == "forward_resends_broken_writes") bugs->forward_resends_broken_writes = true;
  else if (name == "forget_request_ids") bugs->forget_request_ids = true;
  else if (name == "hash_marks_after_entry") bugs->hash_marks_after_entry = true;
  else if (name == "apply_unread_schema") bugs->apply_unread_schema = true;
  else if (name == "migration_drops_field") bugs->migration_drops_field = true;
  else if (name == "gate_without_quorum") bugs->gate_without_quorum = true;
  else if (name == "apply_during_background_load") bugs->apply_during_background_load = true;
  else if (name == "apply_while_producing") bugs->apply_while_producing = true;
  else if (name == "send_after_persist_early") bugs->send_after_persist_early = true;
  else if (name == "apply_before_write_finishes") bugs->apply_before_write_finishes = true;
  else if (name == "skip_yielded_command") bugs->skip_yielded_command = true;
  else if (name == "save_without_copy") bugs->save_without_copy = true;
  else return false;
  return true;
}

std::string replay_command(const Options& o) {
  std::string cmd = fmt::format("build/src/sim/hmdb-sim --seed {} --nodes {} --steps {}", o.seed, o.nodes,
                                o.chaos_ticks);
  if (o.max_client_ops != Options{}.max_client_ops) cmd += fmt::format(" --ops {}", o.max_client_ops);
  if (!o.faults) cmd += " --no-faults";
  if (!o.protocol_checks) cmd += " --outcome-checks-only";
  if (o.bugs.grant_two_votes_per_term) cmd += " --bug grant_two_votes_per_term";
  if (o.bugs.answer_vote_before_persisting) cmd += " --bug answer_vote_before_persisting";
  if (o.bugs.commit_old_term_by_counting) cmd += " --bug commit_old_term_by_counting";
  if (o.bugs.apply_before_commit) cmd += " --bug apply_before_commit";
  if (o.shell_bugs.forget_replaced_writes) cmd += " --bug forget_replaced_writes";
  if (o.shell_bugs.reads_without_index) cmd += " --bug reads_without_index";
  if (o.bugs.keep_log_suffix_on_snapshot_install) cmd += " --bug keep_log_suffix_on_snapshot_install";
  if (o.recovery_bugs.cut_corrupt_log) cmd += " --bug recovery_cuts_corrupt_log";
  if (o.recovery_bugs.ignore_snapshot_checksum) cmd += " --bug recovery_ignores_snapshot_checksum";
  if (o.recovery_bugs.keep_replaced_log) cmd += " --bug recovery_keeps_replaced_log";
  if (o.lying_fsync) cmd += " --lying-fsync";
  if (o.transactions) cmd += " --transactions";
  if (o.forward) cmd += " --forward";
  if (o.request_ids) cmd += " --request-ids";
  if (o.shell_bugs.forget_request_ids) cmd += " --bug forget_request_ids";
  if (o.digest_marks) cmd += " --digest-marks";
  if (o.shell_bugs.hash_marks_after_entry) cmd += " --bug hash_marks_after_entry";
  if (o.bugs.ignore_lease_when_voting) cmd += " --bug ignore_lease_when_voting";
  if (o.bugs.lease_without_drift_margin) cmd += " --bug lease_without_drift_margin";
  if (o.bugs.ack_append_before_persisting) cmd += " --bug ack_append_before_persisting";
  if (o.bugs.learners_never_campaign) cmd += " --bug learners_never_campaign";
  if (o.shell_bugs.drop_missed_ticks) cmd += " --bug drop_missed_ticks";
  if (o.shell_bugs.forward_resends_broken_writes) cmd += " --bug forward_resends_broken_writes";
  if (o.upgrade) cmd += " --upgrade";
  if (o.shell_bugs.apply_unread_schema) cmd += " --bug apply_unread_schema";
  if (o.shell_bugs.migration_drops_field) cmd += " --bug migration_drops_field";
  if (o.shell_bugs.gate_without_quorum) cmd += " --bug gate_without_quorum";
  if (o.shell_bugs.apply_during_background_load) cmd += " --bug apply_during_background_load";
  if (o.sliced_reads) cmd += " --sliced-reads";
  if (o.slow_readers) cmd += " --slow-readers";
  if (o.shell_bugs.apply_while_producing) cmd += " --bug apply_while_producing";
  if (o.shell_bugs.send_after_persist_early) cmd += " --bug send_after_persist_early";
  if (o.sliced_writes) cmd += " --sliced-writes";
  if (o.shell_bugs.apply_before_write_finishes) cmd += " --bug apply_before_write_finishes";
  if (o.apply_budget) cmd += " --apply-budget";
  if (o.shell_bugs.skip_yielded_command) cmd += " --bug skip_yielded_command";
  if (o.log_memory_bytes != 0) cmd += fmt::format(" --log-memory-bytes {}", o.log_memory_bytes);
  if (o.snapshot_races) cmd += " --snapshot-races";
  if (o.sliced_snapshots) cmd += " --sliced-snapshots";
  if (o.fresh_leader_stalls) cmd += " --fresh-leader-stalls";
  if (o.bugs.fresh_leader_forgets_its_voters) cmd += " --bug fresh_leader_forgets_its_voters";
  if (o.shell_bugs.save_without_copy) cmd += " --bug save_without_copy";
  if (o.bugs.send_stale_snapshot_after_trim) cmd += " --bug send_stale_snapshot_after_trim";
  if (o.bugs.install_over_matching_log) cmd += " --bug install_over_matching_log";
  if (o.bugs.stage_over_pending_install) cmd += " --bug stage_over_pending_install";
  if (o.bugs.commit_past_pending_install) cmd += " --bug commit_past_pending_install";
  return cmd + " --trace";
}

namespace {

// ---------------------------------------------------------------------------------------
// Bounds and timing. Every one is a deliberate choice; see docs/simulator.md.

constexpr uint64_t kUnitsPerTick = 10;        // sim time units per Raft tick
constexpr uint32_t kElectionTicks = 10;       // Config::election_ticks of every core
constexpr uint32_t kHeartbeatTicks = 1;
constexpr uint64_t kMaxNodes = 8;             // initial voters + joiners
constexpr uint64_t kMaxJoiners = 3;           // learners added during a run
constexpr uint64_t kMinVoters = 3;            // membership changes never go below this
constexpr uint64_t kClientCount = 4;
constexpr uint64_t kClientTimeoutTicks = 3 * kElectionTicks;  // then the op's outcome is unknown
// Options::slow_readers: a slow reader stops reading for 1 to kSlowReaderStallTicksMax
// ticks (below the client's timeout, mostly); a sliced reply waits for it at most
// kSlowReaderWaitTicks in a row (then its slices go on, buffered).
constexpr uint64_t kSlowReaderStallTicksMax = 25;
constexpr uint64_t kSlowReaderWaitTicks = 3 * kElectionTicks;
// Options::snapshot_races: appends overtaken by a snapshot's chunk arrive up to this many
// units after it (a chunk arrives at a tick's boundary; the next one is sent when its
// acknowledgement is back), so they fall between two chunks, or are overtaken by the next.
constexpr uint64_t kLateAppendUnitsMax = 6 * kUnitsPerTick;
// Options::snapshot_races: an append that carries entries past its leader's commit index is
// held in the network this often (ppm), for kRaceHoldUnitsMin..Max, and its leader snapshots
// inside those entries once it has applied there; so the snapshot the follower is then sent
// has a log passing its last entry on its way, with a commit index below it.
constexpr uint32_t kRaceHoldPpm = 300'000;
constexpr uint64_t kRaceHoldUnitsMin = 2 * kUnitsPerTick;
constexpr uint64_t kRaceHoldUnitsMax = 6 * kUnitsPerTick;
// Options::snapshot_races: a follower sent a snapshot's last chunk stops (SIGSTOP, a VM
// freeze) as it arrives this often (ppm), for kRaceStallTicksMin..Max: longer than the
// leader waits for an answer before it sends again (raft.cc's kSnapshotStallElectionTimeouts,
// two election timeouts of its clock, which may run 5 % slow), so that the follower reads
// that chunk and the one sent again (a newer snapshot's first, if its leader took one) in one
// loop turn.
constexpr uint32_t kRaceStallPpm = 500'000;
constexpr uint64_t kRaceStallTicksMin = 2 * kElectionTicks + 2;
constexpr uint64_t kRaceStallTicksMax = 3 * kElectionTicks;
// Options::request_ids: times a tagged write is sent (the first and its retries) before its
// client gives up with an unknown outcome, and the pause before each retry (a client backing
// off while a new leader is elected).
constexpr uint32_t kRequestAttemptsMax = 8;
constexpr uint64_t kRequestRetryPauseTicks = kElectionTicks;
constexpr uint64_t kLivenessTicks = 30 * kElectionTicks;      // heal -> converged, at most
constexpr uint64_t kSnapshotChunkBytes = 64;  // tiny, so that installs take several chunks
// Options::snapshot_races: tinier still, so that every install takes several chunks (the
// register app's snapshots start at ~40 bytes) and the races have chunks to fall between.
constexpr uint64_t kRaceSnapshotChunkBytes = 8;
constexpr uint64_t kMaxSnapshotsKept = 4;     // per node, for answering chunk reads
// Messages in flight at once: runs have hundreds. Far more is a storm (a leader and a
// follower that lost entries it had acknowledged answering each other forever, with every
// duplicate starting one more exchange): the run would never end, so it fails instead.
constexpr size_t kMaxMessagesInFlight = 200'000;
constexpr size_t kMaxPartitions = 3;          // random partitions in force at once
constexpr const char* kKeys[] = {"a", "b", "c"};
// Options::sliced_snapshots: the chance that a node's snapshot producer writes a slice at each
// chance it has (every applied entry, every turn's end).
constexpr uint32_t kSliceChancePpm = 250'000;
// The key of a GET that is an MGET of every key in kKeys (Options::sliced_reads).
constexpr const char* kAllKeys = "*";
// A SUMSTORE (Options::sliced_writes) sums every key in kKeys this many times over: twelve
// slices of one element, so that its apply spans a tick (crashes and elections happen at
// tick boundaries).
constexpr uint32_t kSumStoreRounds = 4;
constexpr const char* kProbeKey = "__probe";  // liveness probe writes (not in the history)
constexpr const char* kNemesisKey = "__nemesis";  // the split nemesis's writes (not in the history)
// The split nemesis (below): each of its stages gives up after this many ticks, and it runs
// at most this many rounds per run.
constexpr uint64_t kNemesisStageTicks = 8 * kElectionTicks;
constexpr uint32_t kNemesisMaxRounds = 3;

// Clocks: each node's ticks run at its own rate, in parts per million of real time. The
// core's lease reads assume that no node's clock runs more than 10% faster than another's
// (kLeaseClockDriftPercent, docs/raft.md "Clock assumption"); with drift on, rates are drawn
// in [1/1.05, 1.05], a ratio of at most 1.1 between any two nodes: the assumption's edge.
constexpr uint64_t kClockPpm = 1'000'000;  // nominal: a tick every kUnitsPerTick units
constexpr uint64_t kClockRateMinPpm = 952'381;
constexpr uint64_t kClockRateMaxPpm = 1'047'619;
static_assert(kClockRateMaxPpm * 100 <= kClockRateMinPpm * 110, "drift beyond the core's 10% assumption");
// Pauses (SIGSTOP, a GC pause, a VM freeze): a node is frozen for 1 unit to this long.
constexpr uint64_t kMaxPauseTicks = 4 * kElectionTicks;
// Snapshot installs loaded in the background (a follower's load thread, server/snapshot.cc):
// this share of them, each taking 1 unit to this long (the server's thread decodes at about
// 400 MB/s: long enough here for elections, a newer snapshot, a crash during the load).
constexpr uint32_t kBackgroundLoadPpm = 500'000;
constexpr uint64_t kMaxLoadUnits = 3 * kElectionTicks * kUnitsPerTick;
constexpr uint64_t kLoadRngSalt = 0x6c6f61645f726e67ull;  // "load_rng": load_rng_'s stream
// On resuming, the shell feeds the core the ticks that elapsed, at most this many, as
// src/server/node.cc does: after two election timeouts every timer of the core has fired
// (randomized election timeout, check-quorum, transfer, snapshot stall), and a lease of
// less than one election timeout has run out, so more ticks would change nothing.
constexpr uint64_t kMaxCatchUpTicks = 2 * kElectionTicks;
// Options::fresh_leader_stalls: the share of new leaders stalled right after the turn that
// elected them, and the stall's length in ticks of real time: its first check-quorum round
// (one election timeout after the election) falls among the ticks fed on resuming, its
// second does not (two election timeouts, also kMaxCatchUpTicks), whatever the node's clock
// rate (kClockRateMinPpm..kClockRateMaxPpm: at most 5% either way).
constexpr uint32_t kFreshLeaderStallPpm = 500'000;
constexpr uint64_t kFreshLeaderStallTicksMin = kElectionTicks + 2;
constexpr uint64_t kFreshLeaderStallTicksMax = 2 * kElectionTicks - 2;
static_assert(kFreshLeaderStallTicksMin * kClockRateMinPpm >= (kElectionTicks + 1) * kClockPpm &&
                  kFreshLeaderStallTicksMax * kClockRateMaxPpm < (kMaxCatchUpTicks - 1) * kClockPpm,
              "a fresh leader's stall must hold its first check-quorum round and not its second");
// Options::digest_marks: ticks between a leader's digest marks (about 40 in a run's chaos;
// none once healing starts, as the clients stop: the log must stop growing for a slow
// follower to catch up).
constexpr uint64_t kDigestMarkEveryTicks = 7;

// ---------------------------------------------------------------------------------------
// A run's fault profile: drawn once per seed, so that runs differ in kind, not only in
// detail (some seeds have no loss at all, some lose a fifth of their messages).

struct Profile {
  // Commands a client may have waiting on its connection (1: one at a time; more: pipelined,
  // so a session's reply queue holds writes, reads behind them and redirects at once).
  uint32_t pipeline_depth = 1;
  uint32_t loss_ppm = 0;
  uint32_t duplicate_ppm = 0;
  uint32_t long_delay_ppm = 0;
  uint64_t max_delay_units = 3;
  uint32_t partition_ppm = 0;  // per tick: start a partition
  uint32_t crash_ppm = 0;      // per tick: crash a node
  uint32_t torn_ppm = 0;       // per crash: keep part of the unsynced writes
  uint32_t hole_ppm = 0;       // per torn write: an earlier sector of it never reached the disk
  uint32_t damage_ppm = 0;     // per crash: a bit of synced data flips (found at the next start)
  uint32_t lying_ppm = 0;      // per crash, only with Options::lying_fsync: synced records vanish
  uint32_t crash_after_install_ppm = 0;  // per snapshot install: crash the node right after it
  uint32_t slow_disk_ppm = 0;  // per tick: make a disk slow for a while
  uint32_t membership_ppm = 0;
  uint32_t transfer_ppm = 0;
  uint64_t snapshot_every = 0;  // entries between a node's snapshots
  uint32_t client_ppm = 0;      // per client per tick: start an op
  // Leader hunting: crash leaders, most likely in their first ticks, when a new leader is
  // still bringing followers up to date (the window of the paper's Figure 8).
  uint32_t young_leader_crash_ppm = 0;
  uint32_t leader_crash_ppm = 0;
  uint32_t crash_after_commit_ppm = 0;  // per commit advance of a leader
  // Flow control of the cores: small values split catch-up into many messages, so that a
  // new leader's old-term entries and its own no-op travel apart (Figure 8 needs that).
  uint64_t max_append_bytes = 4096;
  uint32_t max_inflight_appends = 8;
  // Config::after_persist_messages (the server's setting): on in half the seeds, taken from a
  // bit of max_append_bytes so that no draw of the profile moves (every known seed replays
  // as before where it is off).
  bool after_persist_messages = false;
  // Lease reads (Config::lease_reads), checked by vote-during-lease and stale-lease.
  bool lease_reads = false;
  // Time: per-node clock rates (else every clock is exact), and pauses of a random node or
  // of the leader (per tick).
  bool clock_drift = false;
  bool lockstep_ticks = false;  // every process starts its ticks at the same phase
  uint32_t pause_ppm = 0;
  uint32_t leader_pause_ppm = 0;
  // Snapshots are taken as soon as the applied index reaches the next snapshot point, even
  // between two entries of one Ready (a shell may snapshot after any applied entry), instead
  // of after the whole Ready. Only then can a snapshot end inside a run of entries that a
  // new leader commits all at once (the split nemesis needs that).
  bool snapshot_between_entries = false;
  // The split nemesis (Simulation::nemesis_*): first round's tick (0: off).
  uint64_t split_nemesis_tick = 0;
};

Profile draw_profile(Rng& rng, bool faults) {
  Profile p;
  p.snapshot_every = rng.range(5, 60);
  p.client_ppm = 0;  // set from the op budget in run()
  p.max_delay_units = rng.range(1, 8);
  p.max_append_bytes = rng.range(64, 4096);
  p.max_inflight_appends = static_cast<uint32_t>(rng.range(1, 8));
  p.after_persist_messages = (p.max_append_bytes & 2) != 0;
  p.lease_reads = rng.chance(500'000);
  p.snapshot_between_entries = rng.chance(500'000);
  uint64_t split_nemesis_tick = rng.range(10, 120);
  bool split_nemesis = rng.chance(400'000);
  p.pipeline_depth = rng.chance(500'000) ? 1 : static_cast<uint32_t>(rng.range(2, 4));
  if (!faults) return p;
  if (split_nemesis) p.split_nemesis_tick = split_nemesis_tick;
  if (rng.chance(600'000)) p.loss_ppm = static_cast<uint32_t>(rng.range(5'000, 150'000));
  if (rng.chance(500'000)) p.duplicate_ppm = static_cast<uint32_t>(rng.range(5'000, 100'000));
  if (rng.chance(600'000)) p.long_delay_ppm = static_cast<uint32_t>(rng.range(5'000, 100'000));
  if (rng.chance(700'000)) p.partition_ppm = static_cast<uint32_t>(rng.range(5'000, 40'000));
  if (rng.chance(700'000)) p.crash_ppm = static_cast<uint32_t>(rng.range(5'000, 30'000));
  if (rng.chance(600'000)) p.torn_ppm = static_cast<uint32_t>(rng.range(300'000, 1'000'000));
  if (rng.chance(500'000)) p.slow_disk_ppm = static_cast<uint32_t>(rng.range(5'000, 30'000));
  if (rng.chance(600'000)) p.membership_ppm = static_cast<uint32_t>(rng.range(10'000, 50'000));
  if (rng.chance(500'000)) p.transfer_ppm = static_cast<uint32_t>(rng.range(5'000, 30'000));
  if (rng.chance(400'000)) {
    p.young_leader_crash_ppm = static_cast<uint32_t>(rng.range(50'000, 300'000));
    p.leader_crash_ppm = static_cast<uint32_t>(rng.range(5'000, 30'000));
    p.crash_after_commit_ppm = static_cast<uint32_t>(rng.range(5'000, 50'000));
  }
  if (rng.chance(400'000)) p.hole_ppm = static_cast<uint32_t>(rng.range(200'000, 1'000'000));
  if (rng.chance(400'000)) p.damage_ppm = static_cast<uint32_t>(rng.range(20'000, 200'000));
  p.lying_ppm = static_cast<uint32_t>(rng.range(20'000, 200'000));
  if (rng.chance(400'000)) p.crash_after_install_ppm = static_cast<uint32_t>(rng.range(50'000, 250'000));
  p.clock_drift = rng.chance(500'000);
  p.lockstep_ticks = rng.chance(400'000);
  if (rng.chance(500'000)) {
    p.pause_ppm = static_cast<uint32_t>(rng.range(5'000, 30'000));
    p.leader_pause_ppm = static_cast<uint32_t>(rng.range(5'000, 30'000));
  }
  return p;
}

// ---------------------------------------------------------------------------------------

uint64_t entry_hash(const Entry& e) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  uint8_t head[13];
  head[0] = static_cast<uint8_t>(e.type);
  std::memcpy(head + 1, &e.schema_version, 4);
  std::memcpy(head + 5, &e.term, 8);
  XXH3_64bits_update(&st, head, sizeof head);
  XXH3_64bits_update(&st, e.data.data(), e.data.size());
  return XXH3_64bits_digest(&st);
}

const char* msg_name(MessageType t) {
  switch (t) {
    case MessageType::kPreVote: return "PreVote";
    case MessageType::kPreVoteResponse: return "PreVoteResp";
    case MessageType::kVote: return "Vote";
    case MessageType::kVoteResponse: return "VoteResp";
    case MessageType::kAppend: return "Append";
    case MessageType::kAppendResponse: return "AppendResp";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatResponse: return "HeartbeatResp";
    case MessageType::kSnapshot: return "Snapshot";
    case MessageType::kSnapshotResponse: return "SnapshotResp";
    case MessageType::kTimeoutNow: return "TimeoutNow";
    case MessageType::kReadIndex: return "ReadIndex";
    case MessageType::kReadIndexResponse: return "ReadIndexResp";
  }
  return "?";
}

const char* role_name(Role r) {
  switch (r) {
    case Role::kFollower: return "follower";
    case Role::kPreCandidate: return "pre-candidate";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
    case Role::kLearner: return "learner";
  }
  return "?";
}

std::string summarize(const Message& m) {
  std::string s = fmt::format("{} t{}", msg_name(m.type), m.term);
  switch (m.type) {
    case MessageType::kAppend:
      s += fmt::format(" prev={}/{} n={} commit={}", m.log_index, m.log_term, m.entries.size(), m.commit);
      break;
    case MessageType::kPreVote:
    case MessageType::kVote: s += fmt::format(" last={}/{}", m.log_index, m.log_term); break;
    case MessageType::kSnapshot:
      if (m.snapshot_meta)
        s += fmt::format(" snap={}/{} off={} len={}{}", m.snapshot_meta->index, m.snapshot_meta->term,
                         m.snapshot_offset, m.snapshot_chunk.size(), m.snapshot_last ? " last" : "");
      break;
    case MessageType::kHeartbeat: s += fmt::format(" commit={} ctx={}", m.commit, m.context); break;
    default:
      s += fmt::format(" idx={}{}", m.log_index, m.reject ? fmt::format(" REJECT hint={}/{}", m.reject_hint, m.reject_term) : "");
      break;
  }
  return s;
}

std::string conf_string(const raft::ConfState& c) {
  return fmt::format("voters={{{}}} learners={{{}}}", fmt::join(c.voters, ","), fmt::join(c.learners, ","));
}

void conf_apply(raft::ConfState* c, const raft::ConfChange& cc) {
  auto erase = [](std::vector<NodeId>& v, NodeId id) { v.erase(std::remove(v.begin(), v.end(), id), v.end()); };
  auto insert = [](std::vector<NodeId>& v, NodeId id) {
    if (std::find(v.begin(), v.end(), id) == v.end()) { v.push_back(id); std::sort(v.begin(), v.end()); }
  };
  bool voter = std::count(c->voters.begin(), c->voters.end(), cc.node) > 0;
  bool learner = std::count(c->learners.begin(), c->learners.end(), cc.node) > 0;
  switch (cc.type) {
    case raft::ConfChangeType::kAddLearner:
      if (!voter) insert(c->learners, cc.node);
      break;
    case raft::ConfChangeType::kPromote:
      if (learner) { erase(c->learners, cc.node); insert(c->voters, cc.node); }
      break;
    case raft::ConfChangeType::kAddVoter:
      erase(c->learners, cc.node);
      insert(c->voters, cc.node);
      break;
    case raft::ConfChangeType::kRemove:
      erase(c->voters, cc.node);
      erase(c->learners, cc.node);
      break;
  }
}

bool contains(const std::vector<NodeId>& v, NodeId id) { return std::find(v.begin(), v.end(), id) != v.end(); }

// ---------------------------------------------------------------------------------------
// The per-node model.

struct Write {
  uint64_t done_at = 0;
  std::optional<HardState> hard_state;
  std::vector<Entry> entries;
  std::optional<raft::Snapshot> install;  // follower install (data: the staged chunks)
  std::optional<raft::Snapshot> local;    // a snapshot this node took of its own state
  // Config::after_persist_messages: sent once this write and every one before it completed
  // (the server's disk thread sends them after its fdatasync).
  std::vector<Message> after;
};

// What survives a crash. Only completed writes reach here.
struct Disk {
  HardState hard_state;
  std::optional<raft::SnapshotMeta> snapshot;
  std::vector<Entry> entries;  // contiguous from snapshot index + 1
  std::map<Index, std::pair<raft::SnapshotMeta, std::string>> snapshot_files;  // newest few
  std::deque<Write> pending;   // in flight, completed in order
  uint64_t slow_until_tick = 0;

  Index snapshot_index() const { return snapshot ? snapshot->index : 0; }
  Term snapshot_term() const { return snapshot ? snapshot->term : 0; }
  Index last_index() const { return snapshot_index() + entries.size(); }
  Term last_term() const { return entries.empty() ? snapshot_term() : entries.back().term; }
};

// The liveness probe's writes are not in the history: kProbeOp stands for them.
constexpr uint32_t kProbeOp = UINT32_MAX;
constexpr uint32_t kProbeClient = UINT32_MAX;  // the probe's connections belong to no client

struct Node;
class Simulation;

// A node's world as its replica core sees it (core::ReplicaHost): the simulated disk,
// network, snapshot files and client connections. Forwards to the Simulation.
class NodeHost final : public core::ReplicaHost {
 public:
  NodeHost(Simulation* sim, Node* node) : sim_(sim), node_(node) {}
  core::ClientSession* session(uint64_t id) override;
  void replies_ready(core::ClientSession& s) override;
  // The one shell command the simulated nodes know: CLUSTER FORWARDER, a forwarding link's
  // handshake (Options::forward; the clients send none).
  core::CommandClass shell_command_class(Args argv) const override {
    return iequals(argv[0], "CLUSTER") ? core::CommandClass::kShellLocal : core::CommandClass::kUnknown;
  }
  core::ShellResult run_shell_command(core::ClientSession& s, Args argv, uint64_t, std::string* out) override {
    HMDB_ASSERT(argv.size() == 3 && iequals(argv[1], "FORWARDER"), "the simulator's clients send no shell commands");
    s.forwarder = true;
    Reply(out).ok();
    return core::ShellResult::kReplied;
  }
  void forward(core::ClientSession& s, uint64_t seq, Args argv, bool write) override;
  void forward_transaction(core::ClientSession& s, uint64_t seq, const std::vector<std::vector<std::string>>& commands,
                           bool write) override;
  void start_snapshot() override { HMDB_ASSERT(false, "the simulator's clients send no SNAPSHOT"); }
  std::string client_address_of(raft::NodeId id) const override { return fmt::format("n{}", id); }
  void stage_snapshot_chunk(const raft::SnapshotChunk& chunk) override;
  bool install_snapshot(const raft::SnapshotMeta& meta) override;
  std::optional<raft::PersistAck> persist(const std::optional<raft::HardState>& hard_state, std::vector<raft::Entry>&& entries,
                                          const std::optional<raft::SnapshotMeta>& installed) override;
  void send(std::vector<raft::Message>&& messages) override;
  void send_after_persist(std::vector<raft::Message>&& messages) override;
  void applied(const raft::Entry& entry) override;
  void apply_failed(const raft::Entry& entry, const core::ApplyResult& result) override;
  void schema_blocked(const raft::Entry& entry, const core::ApplyResult& result) override;
  void read_snapshot_chunk(const raft::SnapshotReadRequest& request) override;
  void snapshot_wanted() override;
  void role_changed(raft::Role, raft::Role) override;
  void warn(std::string_view message) override;
  void proposed(raft::Index index, raft::Term term, const std::vector<core::ReplySlot>& slots) override;

 private:
  Simulation* sim_;
  Node* node_;
};

// A node's forwarding links as its core::Forwarder sees them (Options::forward): links to
// another simulated node's client sessions. Forwards to the Simulation.
class SimLinks final : public core::ForwardHost {
 public:
  SimLinks(Simulation* sim, Node* node) : sim_(sim), node_(node) {}
  bool open_link(uint64_t link, raft::NodeId to) override;
  void send_link(uint64_t link, std::string_view bytes) override;
  void close_link(uint64_t link) override;
  void answer(uint64_t session, uint64_t seq, std::string_view reply) override;
  void warn(std::string_view message) override;
  void sent(uint64_t link, uint64_t session, uint64_t seq) override;

 private:
  Simulation* sim_;
  Node* node_;
};

// A client connection to a node: the ops sent on it, by the sequence number the node's
// reply queue gives each command (the k-th command sent is seq k), and the ones still
// waiting for their reply, oldest first.
struct Connection {
  uint32_t client = 0;  // kProbeClient: the liveness probe's
  NodeId node = 0;
  bool open = true;  // closed: its session is gone; kept, so that its ops' proposals are known
  std::vector<uint32_t> ops_by_seq;
  std::deque<uint32_t> waiting;
  // What each waiting reply is to its op (Options::transactions): the op's own reply, a
  // MULTI's +OK or the op's +QUEUED inside a transaction, or EXEC's array holding its reply.
  enum Role : uint8_t { kOwn, kQueued, kExec };
  std::deque<Role> roles;
  // Options::slow_readers: the client reads nothing on it before this time (0: it reads).
  uint64_t unread_until = 0;
};

struct InFlight {
  uint64_t at = 0;
  uint64_t seq = 0;  // send order, for FIFO among equal times and reorder detection
  bool duplicate = false;
  // The sender had applied its own removal when it sent this (removed-node-disrupts).
  bool from_removed_node = false;
  Message msg;
  // The newest schema version the sender's binary reads (the server's peer hello says so
  // on every connection; Options::upgrade).
  uint32_t sender_newest = 0;
};
struct Node {
  NodeId id = 0;
  bool exists = false;
  bool up = false;
  bool removed = false;  // its removal is committed
  uint64_t removed_tick = 0;
  uint32_t incarnation = 0;
  std::unique_ptr<raft::Raft> raft;
  std::unique_ptr<StateMachine> app;  // RegisterApp (binary 1) or RegisterAppV2 (binary 2)
  uint32_t binary = 1;  // the register app's version this node's binary runs (Options::upgrade)
  // Options::upgrade: the newest schema version each peer's binary reads, as this
  // incarnation last heard (0: not heard), what the leader's gate counts; a snapshot the
  // filter refused (handled once the core returns, as the server does); when an operator
  // restarts it with v2 because it is blocked, and when the plan kills it (0: not planned).
  uint32_t peer_newest[9] = {};
  std::optional<raft::SnapshotMeta> refused_snapshot;
  uint64_t remedy_tick = 0;
  uint64_t kill_tick = 0;
  bool kill_new = false;
  // The active version whose layout the app refused to write this incarnation's state in (its
  // save_as returned false): snapshots then use the newest layout (server/snapshot.cc).
  uint32_t layout_refused = 0;  // the kill is of a node just restarted with v2 (not of a leader in a transfer)
  Disk disk;             // what the core was told is durable
  std::unique_ptr<DataDir> dir;  // the same, byte for byte, as the server's files (sim_disk.h)
  bool dead = false;     // refused to start (the server's exit code 2): stays down
  bool damaged = false;  // its synced data was damaged while it was down (may refuse to start)
  // The highest term its disk ever held durably, and that term when this incarnation
  // started: a restarted node never acts in a term below it.
  Term promised_term = 0;
  Term floor_term = 0;
  // Set when a restart lost entries the disk had acknowledged (only a planted recovery bug
  // or a lying fsync do that): the durable log before that crash, as terms from
  // lost_base + 1, which is what the node would hold had nothing been lost. Cleared once
  // its log holds all of it again, or a leader overwrites it where it differs.
  bool lost = false;
  Index lost_base = 0;
  Term lost_base_term = 0;
  std::vector<Term> lost_terms;
  std::map<std::pair<NodeId, Term>, std::pair<Term, Index>> vote_requests;  // (candidate, term) -> its last
  std::string staging;  // snapshot chunks received (not durable)
  raft::SnapshotMeta staging_meta;  // ... of this snapshot (server/snapshot.cc keeps one staging file too)
  bool staging_open = false;  // chunks staged and not installed yet (Fault::kLastChunkAtMatchingLog)
  // The last snapshot chunk delivered to it: when, and whether it was a snapshot's last
  // (Fault::kChunksOfTwoSnapshots).
  uint64_t last_chunk_at = 0;
  raft::SnapshotMeta last_chunk_meta;
  bool last_chunk_was_last = false;
  // A leader's snapshot installed (durable) but still loading in the background, as the
  // server's load thread does: its bytes, and the unit at which the load ends (the loop's
  // next turn then swaps the state in: Simulation::finish_load).
  std::optional<raft::SnapshotMeta> loading;
  std::string loading_data;
  uint64_t load_done_at = 0;
  uint64_t restart_tick = 0;

  // The core's log as the simulator saw it being written: the base (snapshot point) and
  // the term + content hash of every entry after it.
  Index mirror_base = 0;
  Term mirror_base_term = 0;
  std::vector<std::pair<Term, uint64_t>> mirror;

  Index applied = 0;
  Term applied_term = 0;
  raft::ConfState applied_conf;
  Index snapshot_index = 0;  // newest snapshot the core knows (saved or installed)
  bool snapshot_in_flight = false;
  Index snapshot_at = 0;  // the split nemesis: snapshot right after applying this (0: none)
  // Options::snapshot_races: snapshot once it applied this (0: none), inside the entries of an
  // append it sent that the network holds (kRaceHoldPpm).
  Index race_snapshot_at = 0;
  bool snapshot_wanted = false;  // its core asked for a fresh snapshot (Ready::snapshot_wanted)
  // Options::sliced_snapshots: the snapshot being written in slices (snapshot_in_flight is
  // set meanwhile): the app's producer, the snapshot's meta, the bytes so far (the engine
  // part, then the slices), a whole save at its index to compare them with at the end, and
  // the applied index at its start.
  std::unique_ptr<SaveProducer> saving;
  raft::SnapshotMeta saving_meta;
  std::string saving_bytes;
  std::string saving_expected;
  Index saving_from = 0;

  // Per incarnation, for monotonicity checks.
  Term last_term = 0;
  Index last_commit = 0;
  Role last_role = Role::kFollower;
  uint64_t leader_since_tick = 0;
  std::optional<HardState> last_ready_hs;

  // Clock: ticks at clock_ppm of real time (fixed per node: its oscillator); clock_acc is
  // the progress towards the next tick, kUnitsPerTick * kClockPpm per tick.
  uint64_t clock_ppm = kClockPpm;
  uint64_t clock_acc = 0;
  // Pause: frozen from unit pause_at (0: none scheduled) until unit resume_at. Meanwhile
  // its clock runs on (missed_ticks), messages wait in its inbox (a socket buffer), client
  // reads queue, and its disk completes writes that the core hears of only on resuming.
  bool paused = false;
  uint64_t pause_at = 0;
  uint64_t resume_at = 0;
  uint64_t missed_ticks = 0;
  // Options::fresh_leader_stalls: the term it was elected in when this pause was scheduled
  // right after its election (0: not such a pause).
  Term fresh_stall_term = 0;
  std::vector<InFlight> inbox;
  // Commands clients sent while it was paused, read from the socket when it resumes:
  // (connection, words).
  std::vector<std::pair<uint64_t, std::vector<std::string>>> queued_commands;
  // What reached its forwarder's links while it was paused (Options::forward): a link
  // connected or broke, a reply; its forwarder hears of them, in order, when it resumes.
  struct LinkInput {
    enum Kind : uint8_t { kConnected, kBroken, kReply } kind;
    uint64_t link = 0;
    std::string reply;
  };
  std::vector<LinkInput> link_inbox;
  bool ack_pending = false;                     // writes completed, persisted() not called
  // Config::after_persist_messages of completed writes, sent when the process runs
  // (notify_disk): a paused process's disk thread sends nothing.
  std::vector<Message> after_persist_out;
  std::vector<raft::SnapshotMeta> saved_pending;  // snapshots durable, snapshot_saved() not called
  // The core's observation counters as last seen (they restart with the core).
  uint64_t lease_reads_seen = 0;
  uint64_t votes_granted_seen = 0;

  bool running() const { return up && !paused; }

  // The server's replica core over raft and app, with this node's world (NodeHost), and
  // the client connections open to it (a crash closes them all).
  std::unique_ptr<NodeHost> host;
  std::unique_ptr<core::Replica> replica;
  // Options::forward: its forwarder of clients' commands to the leader, over SimLinks.
  std::unique_ptr<SimLinks> links;
  std::unique_ptr<core::Forwarder> forwarder;
  std::map<uint64_t, core::ClientSession> sessions;
  // A single node opens its client port only once it leads and has applied every entry its
  // log held at the start (server/recovery.cc replays before it listens): until then a
  // client cannot connect.
  Index serve_from = 0;
  bool single = false;
  bool listening = false;  // its client port is open (a paused process's kernel still accepts)

  std::optional<Term> mirror_term(Index i) const {
    if (i == mirror_base) return mirror_base_term;
    if (i < mirror_base || i > mirror_base + mirror.size()) return std::nullopt;
    return mirror[i - mirror_base - 1].first;
  }
  Index mirror_last() const { return mirror_base + mirror.size(); }
};

struct InFlightLater {
  bool operator()(const InFlight& a, const InFlight& b) const {
    return a.at != b.at ? a.at > b.at : a.seq > b.seq;
  }
};

struct Client {
  uint32_t id = 0;
  uint64_t connection = 0;  // open connection (0: none); ops are pipelined on it
  NodeId guess = 0;
  uint64_t seq = 0;
};

struct OpMeta {
  NodeId node = 0;
  Index prop_index = 0;  // where its batch was proposed (0: never accepted)
  Term prop_term = 0;
  bool concluded = false;  // the client has its answer (or gave up)
  uint64_t deadline_tick = 0;  // then the client gives up on it (and its connection)
  uint64_t commit_seq = 0;  // history time stamp of the first apply anywhere (0: not seen)
  // Options::request_ids: the write's request id (empty: untagged), the attempts sent, and
  // whether one of them may have taken effect (its outcome was unknown); every proposal of
  // any attempt (prop_index/prop_term are the latest).
  std::string request_id;
  uint32_t attempts = 0;
  bool maybe_applied = false;
  bool retry_pending = false;  // in Simulation::retries_
  uint64_t retry_tick = 0;     // ... to be sent at this tick or later
  std::vector<std::pair<Index, Term>> props;
};

struct CommittedRec {
  Term term = 0;
  uint64_t hash = 0;
  EntryType type = EntryType::kNormal;
  bool has_digest = false;
  uint64_t digest = 0;
  bool has_mark = false;  // Options::digest_marks: the first digest a node took at a mark here
  uint64_t mark_digest = 0;
};

class Simulation {
 public:
  explicit Simulation(const Options& o) : opt_(o), rng_(o.seed), load_rng_(o.seed ^ kLoadRngSalt) {
    result_.seed = o.seed;
    hash_ = XXH3_64bits(&o.seed, sizeof o.seed);
  }

  RunResult run();

 private:
  // --- trace -------------------------------------------------------------------------
  template <class F>
  void ev(uint64_t kind, uint64_t node, uint64_t a, uint64_t b, F&& text) {
    uint64_t rec[6] = {now_, kind, node, a, b, hash_};
    hash_ = XXH3_64bits(rec, sizeof rec);
    if (opt_.trace) {
      result_.trace.push_back(fmt::format("[{:>5}.{}] ", now_ / kUnitsPerTick, now_ % kUnitsPerTick) + text());
      if (opt_.trace_sink) opt_.trace_sink(result_.trace.back());
    }
  }
  void fail(const std::string& check, const std::string& detail) {
    if (!result_.ok) return;
    result_.ok = false;
    result_.check = check;
    result_.detail = detail;
    ev(999, 0, 0, 0, [&] { return fmt::format("CHECK FAILED [{}]: {}", check, detail); });
  }
  void mark(Fault f) { result_.faults[static_cast<size_t>(f)] = true; }
  uint64_t tick() const { return now_ / kUnitsPerTick; }

  // --- nodes -------------------------------------------------------------------------
  void create_node(NodeId id, bool initial);
  std::unique_ptr<StateMachine> make_app(uint32_t binary) const;
  // Options::upgrade: the operator's plan, one step per tick (docs/simulator.md).
  void upgrade_tick();
  void restart_with(Node& n, uint32_t binary);
  bool try_gate();
  void note_refused_snapshot(Node& n);
  void blocked(Node& n);
  size_t voters_reading_v2() const;
  void start_node(Node& n);
  void crash_node(Node& n, bool allow_faults);
  bool restore_from_dir(Node& n, std::string* snapshot_data);
  bool behind_lost(const Node& n, Term term, Index index) const;
  void end_turn(Node& n);
  void log_digest_marks();  // Options::digest_marks: each leader's batch gets a mark
  void send(Node& n, Message m);
  // Options::snapshot_races: the appends from `from` to `to` in flight arrive after the chunk
  // that arrives at `chunk_at`, or, if it is the snapshot's last, just before it.
  void move_appends_around_chunk(NodeId from, NodeId to, uint64_t chunk_at, bool last);
  uint64_t hold_append(Node& n, const Message& m);
  void stall_at_last_chunk(NodeId to, uint64_t at);
  // The durable part of an install; the load into the app too unless `background`.
  void install_snapshot(Node& n, const raft::SnapshotMeta& meta, bool background);
  void finish_load(Node& n);
  bool load_into_app(Node& n, const raft::SnapshotMeta& m, const std::string& data);
  void complete_writes(Node& n);
  void apply_write_to_disk(Node& n, Write& w);
  uint64_t disk_done_at(Node& n, uint64_t lo, uint64_t hi);
  void maybe_snapshot(Node& n);
  // Snapshots taken because a core asked (Options::log_memory_bytes): (index, term).
  std::set<std::pair<Index, Term>> wanted_snapshots_;
  void take_snapshot(Node& n);
  // Options::sliced_snapshots: the producer's next slice (a seed-drawn budget), and the
  // snapshot's write queued once it is done; and the snapshot dropped half written.
  void advance_sliced_snapshot(Node& n);
  void abandon_sliced_snapshot(Node& n, const char* why);
  void check_node(Node& n);
  void mirror_append(Node& n, const Entry& e);

  // --- world -------------------------------------------------------------------------
  void deliver_due();
  Term member_max_term() const;
  void advance_clocks();
  void pause_node(Node& n);
  void resume_node(Node& n);
  void tick_node(Node& n);
  void step_message(Node& n, const InFlight& f);
  void notify_disk(Node& n);
  void after_input(Node& n);
  void check_vote_during_lease(Node& voter, const Message& request);
  void check_leases();
  void inject_faults();
  void heal_all();
  void start_random_partition();
  uint64_t add_partition(std::vector<std::pair<NodeId, NodeId>> links, uint64_t until_tick);
  void end_partition(uint64_t id);
  uint64_t cut_off(const std::vector<NodeId>& side);
  void propose_nemesis_write(Node& n);
  void nemesis_tick();
  void nemesis_on_leader(Node& n, Term term);
  void nemesis_on_snapshot_saved(Node& n, const raft::SnapshotMeta& m);
  void nemesis_on_install(Node& n, Index index);
  void nemesis_end(bool success);
  void clients_tick();
  void submit(Client& c, uint32_t op);
  void send_command(Node& n, uint64_t connection, std::vector<std::string> words);
  void close_connection(uint64_t connection);
  void abandon(uint64_t connection, const char* why);
  void read_replies(Node& n, core::ClientSession& s);
  // Options::slow_readers: connections whose client stopped reading (Connection::
  // unread_until), and reading them again once their time has come.
  std::vector<uint64_t> unread_;
  void resume_slow_readers();

  // --- forwarding links (Options::forward) ---------------------------------------------
  // Node n's forwarder dials node `to` (link_connected or link_broken comes from
  // process_link_events, never from inside the call), sends on a link (each command reaches
  // `to`'s session at the next processing, as a client's does), closes one.
  bool open_link(Node& n, uint64_t link, NodeId to);
  void send_link(Node& n, uint64_t link, std::string_view bytes);
  void close_link(Node& n, uint64_t link);
  void process_link_events();
  // The links of a node that crashes: those it dialed close, those to it break.
  void drop_links(Node& n);
  void read_link_replies(Node& to, core::ClientSession& s);
  // Something for node `from`'s forwarder from one of its links: now, or when it resumes.
  void link_input(Node& from, Node::LinkInput in);
  void deliver_link_input(Node& from, const Node::LinkInput& in);
  void sync_forwarder(Node& n);
  void answer(Connection& c, uint32_t op, const net::RespReply& reply);
  void answer_mget(Connection& c, uint32_t op, const net::RespReply& reply);
  void answer_in_transaction(Connection& c, uint32_t op, Connection::Role role, const net::RespReply& reply);
  void probe();
  bool busy(const Client& c) const;
  void conclude(uint32_t op, OpOutcome outcome, std::optional<int64_t> result);
  // An attempt of op ended without a result: a tagged write that may have taken effect is
  // sent again (Options::request_ids), else the op concludes with `outcome`.
  void retry_or_conclude(uint32_t op, OpOutcome outcome);
  // The exactly-once check: entry e, applied for the first time anywhere (by n), moves the
  // model of the registers, where a tagged write takes effect once; n's state must equal it.
  void check_exactly_once(Node& n, const Entry& e);
  Node* leader();
  std::vector<NodeId> live_ids() const;
  bool converged();
  void final_checks();

  Options opt_;
  Rng rng_;
  // Its own stream, from the same seed, for whether an install loads in the background and
  // how long: runs without installs draw the same as before it existed.
  Rng load_rng_;
  Profile prof_;
  RunResult result_;
  uint64_t hash_ = 0;
  uint64_t now_ = 0;
  uint64_t send_seq_ = 0;
  uint64_t event_seq_ = 0;  // history time stamps

  std::array<Node, kMaxNodes + 1> nodes_;  // by id; 0 unused
  raft::ConfState initial_conf_;
  uint64_t joiners_ = 0;
  NodeId next_id_ = 0;
  std::priority_queue<InFlight, std::vector<InFlight>, InFlightLater> net_;
  // Partitions in force, each with its own links and end, so that the network can be cut in
  // several ways at once and heal piece by piece. cut_[a][b]: how many of them block a -> b.
  struct Partition {
    uint64_t id = 0;
    uint64_t until_tick = 0;
    std::vector<std::pair<NodeId, NodeId>> links;  // blocked directed links
  };
  std::vector<Partition> partitions_;
  // The split nemesis: a scripted sequence that makes two overlapping leaders with partial
  // replication and a third that compacts past the split point and sends its snapshot to
  // the node holding the conflicting suffix. Each stage waits for its event, or gives up.
  enum class NemesisStage : uint8_t {
    kOff,           // not in this run, or done
    kArmed,         // at `next_tick`, cut the leader off (the old leader, "A") with a minority
    kOldLeaderCut,  // waiting for a new leader ("X") elsewhere; then cut it off too, heal A
    kNewLeaderCut,  // waiting for a third leader ("L"); it will snapshot inside the split
    kThirdLeader,   // waiting for L's snapshot past the split point to be durable
    kSnapshotSaved  // X's side healed: waiting for X to install L's snapshot
  };
  struct Nemesis {
    NemesisStage stage = NemesisStage::kOff;
    uint64_t next_tick = 0;  // kArmed: when to start; otherwise: when the stage gives up
    uint32_t rounds = 0;
    NodeId new_leader = 0, third = 0;
    Term old_term = 0, new_term = 0;
    std::vector<NodeId> old_side, new_side;
    uint64_t old_cut = 0, new_cut = 0;  // partition ids
    Index snapshot_at = 0;
  } nemesis_;
  uint64_t nemesis_seq_ = 0;
  uint64_t partition_seq_ = 0;
  uint8_t cut_[kMaxNodes + 1][kMaxNodes + 1] = {};
  std::map<std::pair<NodeId, NodeId>, uint64_t> last_delivered_seq_;
  bool healing_ = false;
  uint64_t crash_at_ = 0;  // a crash scheduled within the current tick (0: none)
  NodeId crash_node_ = 0;
  bool crash_leader_ = false;
  uint32_t doomed_ = 0;    // nodes that refused to start, or were damaged and may
  uint32_t max_doomed_ = 0;  // at most this many: a majority stays able to run

  std::vector<CommittedRec> committed_{CommittedRec{}};  // [0] unused
  raft::ConfState committed_conf_;
  std::unordered_map<Index, std::unordered_map<Term, std::pair<uint64_t, Term>>> log_matching_;
  std::map<Term, NodeId> leader_of_term_;
  CommitTerms commit_terms_;  // the term each index was first known committed in
  Term max_leader_term_ = 0;  // the highest term any node has been seen leading
  std::map<std::pair<NodeId, Term>, NodeId> vote_granted_;  // survives crashes
  Index pending_conf_index_ = 0;
  Term pending_conf_term_ = 0;
  NodeId transfer_target_ = 0;

  std::map<std::pair<Index, Term>, std::vector<uint32_t>> proposed_ops_;  // every accepted batch
  std::vector<Client> clients_;
  std::deque<uint32_t> retries_;  // tagged writes to send again, by their clients (in order)
  // The exactly-once check's model: the registers after the committed log so far, each
  // request id applied at its first occurrence only, and the ids seen.
  RegisterApp::State model_;
  std::set<std::string, std::less<>> model_requests_;
  std::vector<HistoryOp> history_;
  std::vector<HistoryOp> mget_reads_;  // the GETs an answered MGET stands for (answer_mget)
  std::vector<OpMeta> meta_;
  std::map<uint64_t, Connection> connections_;  // every client connection ever opened
  uint64_t next_connection_ = 0;
  // Forwarding links, by their session id on the node they go to (ids shared with
  // connections_), and what waits to happen on them, in order.
  struct Link {
    NodeId from = 0;
    uint32_t from_incarnation = 0;
    uint64_t link = 0;  // the id the forwarder gave it
    NodeId to = 0;
    bool connected = false;
  };
  std::map<uint64_t, Link> links_;
  std::map<std::pair<NodeId, uint64_t>, uint64_t> link_sessions_;  // (from, link) -> session
  // Per link session, for each command it carried (by its sequence number on the node it
  // went to), the client slot (session, seq) on the forwarding node whose op it is (0, 0:
  // a handshake, or a transaction's MULTI and queued commands). Kept for good, as
  // connections_ are: the leader's proposal of a forwarded write names the link's slot.
  std::map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> link_origins_;
  std::optional<std::pair<uint64_t, uint64_t>> next_link_origin_;  // from SimLinks::sent
  struct LinkEvent {
    enum Kind : uint8_t { kConnect, kCommand, kBroken, kCloseSession } kind;
    uint64_t session = 0;
    NodeId node = 0;         // kBroken: the forwarding node; kCloseSession: the node served
    uint32_t incarnation = 0;
    uint64_t link = 0;
    std::vector<std::string> words;
  };
  std::deque<LinkEvent> link_events_;
  uint64_t probe_seq_ = 0;
  uint64_t probe_connection_ = 0;  // the probe's connection while its write waits (0: none)
  Term probe_term_sent_ = 0;       // the term of the leader it was sent to
  Index probe_index_ = 0;
  Term probe_term_ = 0;
  bool probe_done_ = false;

  // Options::upgrade: the operator's plan and how far it got. Its choices come from its own
  // generator (seeded from the run's seed), so that the rest of the run draws as without it.
  enum class UpgradeStage : uint8_t { kWaiting, kUpgrading, kRollingBack, kGate, kAfterGate, kDone };
  struct UpgradePlan {
    UpgradeStage stage = UpgradeStage::kWaiting;
    uint64_t next_tick = 0;
    std::vector<NodeId> order;  // the nodes to restart with the other binary, in turn
    size_t pos = 0;
    size_t rollback_after = SIZE_MAX;  // upgrades before the rollback (SIZE_MAX: none)
    bool abandon = false;       // after the rollback, give the upgrade up
    bool early_gate = false;    // try the gate as soon as a quorum of voters runs v2
    bool premature_gate = false;  // ask for the gate at every step of the upgrade (the leader refuses)
    bool transfer = false;      // hand leadership to a v2 voter before the gate
    bool kill_in_transfer = false;
    bool partition_at_gate = false;
    uint32_t joiner_binary = 1;  // the binary a node added now runs
    uint64_t gate_tick = 0;      // when the activation was last logged
    bool gate_proposed = false;
    bool transferred = false;
  } upgrade_;
  Rng urng_{0};
  bool gate_committed_ = false;
  Index gate_index_ = 0;

  friend class NodeHost;
  friend class SimLinks;
};

// ---------------------------------------------------------------------------------------
// Nodes

void Simulation::create_node(NodeId id, bool initial) {
  Node& n = nodes_[id];
  n.id = id;
  n.exists = true;
  n.applied_conf = initial_conf_;
  n.dir = std::make_unique<DataDir>();
  n.binary = initial ? 1 : upgrade_.joiner_binary;
  // At either edge of the bound a third of the time each: the worst pairs (a slow leader, a
  // fast follower) are what a lease's margin is for.
  if (prof_.clock_drift) {
    uint64_t r = rng_.below(3);
    n.clock_ppm = r == 0 ? kClockRateMinPpm : r == 1 ? kClockRateMaxPpm : rng_.range(kClockRateMinPpm, kClockRateMaxPpm);
  } else {
    n.clock_ppm = kClockPpm;
  }
  if (n.clock_ppm != kClockPpm) mark(Fault::kClockDrift);
  ev(10, id, initial, n.clock_ppm, [&] {
    return fmt::format("n{} created ({}), clock at {} ppm of real time", id, initial ? "initial voter" : "joining", n.clock_ppm);
  });
  start_node(n);
}

// A restart: the server's recovery reads the data directory back (sim_disk.h does what
// server/recovery.cc does). Returns false if the node refuses to start: it stays down.
bool Simulation::restore_from_dir(Node& n, std::string* snapshot_data) {
  Recovered rec = n.dir->recover(opt_.recovery_bugs, opt_.nodes > 1);
  if (!rec.started) {
    n.dead = true;
    mark(Fault::kRefusedStart);
    ev(13, n.id, 0, 0, [&] { return fmt::format("n{} REFUSES TO START (exit code 2; it stays down): {}", n.id, rec.problem); });
    return false;
  }
  if (n.damaged) {
    n.damaged = false;
    doomed_--;
  }
  for (const std::string& note : rec.notes) {
    if (note.starts_with("cut off a torn tail")) mark(Fault::kTornRecord);
    if (note.starts_with("dropped entries")) mark(Fault::kLeftoversDropped);
    ev(14, n.id, 0, 0, [&] { return fmt::format("n{} recovery: {}", n.id, note); });
  }
  // The core must accept what recovery hands it (it aborts otherwise, at every start).
  Index last = rec.snapshot ? rec.snapshot->index : 0;
  Term last_term = rec.snapshot ? rec.snapshot->term : 0;
  for (const Entry& e : rec.entries) {
    if (e.index != last + 1 || e.term < last_term) {
      fail("recovery-restore", fmt::format("n{} recovery gives entry {}/{} after {}/{} (snapshot at {}): the core refuses a "
                                           "log whose terms go back, so the node could never start again",
                                           n.id, e.index, e.term, last, last_term, rec.snapshot ? rec.snapshot->index : 0));
      return false;
    }
    last = e.index;
    last_term = e.term;
  }
  // Log matching for what recovery gives back, as mirror_append checks what is written:
  // each recovered entry must be the one written at that (index, term), after an entry
  // of the term it followed when it was written. Entries of a log that a leader's
  // snapshot replaced may survive on disk; they must not come back after that snapshot.
  Term prev = rec.snapshot ? rec.snapshot->term : 0;
  for (const Entry& e : rec.entries) {
    auto at = log_matching_.find(e.index);
    auto it = at == log_matching_.end() ? decltype(at->second)::iterator{} : at->second.find(e.term);
    if (at == log_matching_.end() || it == at->second.end() || it->second.first != entry_hash(e) ||
        it->second.second != prev) {
      fail("recovery-restore", fmt::format("n{} recovery gives entry {}/{} after term {} (snapshot at {}), but {}", n.id, e.index,
                                           e.term, prev, rec.snapshot ? rec.snapshot->index : 0,
                                           at == log_matching_.end() || it == at->second.end()
                                               ? std::string("no node ever wrote it")
                                               : fmt::format("it was written after term {}: a leftover of a replaced log",
                                                             it->second.second)));
      return false;
    }
    prev = e.term;
  }
  if (rec.hard_state.term < last_term || rec.hard_state.commit > last) {
    fail("recovery-restore", fmt::format("n{} recovery gives hard state term={} commit={} with a log up to {}/{}: the core "
                                         "refuses it", n.id, rec.hard_state.term, rec.hard_state.commit, last, last_term));
    return false;
  }
  // Lost what the disk had acknowledged? Raft orders logs by last term, then last index.
  Term old_term = n.disk.last_term();
  Index old_last = n.disk.last_index();
  if (std::make_pair(last_term, last) < std::make_pair(old_term, old_last) && !behind_lost(n, old_term, old_last)) {
    n.lost = true;
    n.lost_base = n.disk.snapshot_index();
    n.lost_base_term = n.disk.snapshot_term();
    n.lost_terms.clear();
    for (const Entry& e : n.disk.entries) n.lost_terms.push_back(e.term);
  }
  if (n.lost) {
    ev(15, n.id, old_last, last, [&] {
      return fmt::format("n{} LOST acknowledged entries: its disk had acknowledged a log up to {}/{}, it restarts with {}/{}",
                         n.id, old_last, old_term, last, last_term);
    });
  }
  n.floor_term = n.promised_term;
  n.promised_term = std::max(n.promised_term, rec.hard_state.term);
  n.disk.hard_state = rec.hard_state;
  n.disk.snapshot = rec.snapshot;
  n.disk.entries = std::move(rec.entries);
  if (rec.snapshot) n.disk.snapshot_files[rec.snapshot->index] = {*rec.snapshot, rec.snapshot_data};
  *snapshot_data = std::move(rec.snapshot_data);
  return true;
}

// True if (term, index) is behind, in Raft's order, the log n had acknowledged before it
// lost part of it.
bool Simulation::behind_lost(const Node& n, Term term, Index index) const {
  if (!n.lost) return false;
  Term lt = n.lost_terms.empty() ? n.lost_base_term : n.lost_terms.back();
  return std::make_pair(term, index) < std::make_pair(lt, n.lost_base + n.lost_terms.size());
}

void Simulation::start_node(Node& n) {
  if (n.dead) return;
  std::string snapshot_data;
  const bool restart = !n.dir->empty();
  if (restart && !restore_from_dir(n, &snapshot_data)) return;
  n.vote_requests.clear();
  raft::Config cfg;
  cfg.id = n.id;
  cfg.election_ticks = kElectionTicks;
  cfg.heartbeat_ticks = kHeartbeatTicks;
  cfg.pre_vote = true;
  cfg.check_quorum = true;
  cfg.snapshot_chunk_bytes = opt_.snapshot_races ? kRaceSnapshotChunkBytes : kSnapshotChunkBytes;
  cfg.max_inflight_appends = prof_.max_inflight_appends;
  cfg.max_append_bytes = prof_.max_append_bytes;
  cfg.lease_reads = prof_.lease_reads;
  cfg.after_persist_messages = prof_.after_persist_messages;
  cfg.log_memory_bytes = opt_.log_memory_bytes;
  cfg.seed = rng_.next();
  cfg.bugs = opt_.bugs;

  raft::RestoreState rs;
  rs.hard_state = n.disk.hard_state;
  rs.snapshot = n.disk.snapshot;
  rs.entries = n.disk.entries;
  // Every node, joiners too, starts from the bootstrap membership; the log's conf-change
  // entries (or a snapshot's conf) bring it up to date.
  rs.initial_conf = initial_conf_;
  rs.applied = 0;

  if (n.disk.snapshot && n.binary < n.disk.snapshot->schema_version) {
    // A v1 binary started on a data directory whose snapshot a v2 binary wrote: the server
    // refuses to start (exit 1, server/recovery.cc), so the operator starts v2 again.
    ev(14, n.id, n.disk.snapshot->schema_version, 0, [&] {
      return fmt::format("n{} v{} REFUSES its snapshot of schema version {} (exit code 1): started with v{} again", n.id,
                         n.binary, n.disk.snapshot->schema_version, n.disk.snapshot->schema_version);
    });
    mark(Fault::kUpgradeRollbackRefused);
    n.binary = n.disk.snapshot->schema_version;
  }
  n.app = make_app(n.binary);
  std::fill(std::begin(n.peer_newest), std::end(n.peer_newest), 0u);
  n.refused_snapshot.reset();
  n.remedy_tick = 0;
  n.layout_refused = 0;
  n.applied = n.disk.snapshot_index();
  n.applied_term = n.disk.snapshot_term();
  n.applied_conf = n.disk.snapshot ? n.disk.snapshot->conf : initial_conf_;
  core::RequestTable requests;  // the snapshot's, handed to the replica core below
  if (n.disk.snapshot) {
    Decoder in(snapshot_data);  // the simulator writes the newest snapshot format only
    if (core::load_state(*n.app, requests, in, n.disk.snapshot->schema_version, core::kStateFormatNewest) !=
        core::LoadState::kOk) {
      // Only a recovery that skipped the snapshot's checksum gets here: the server then
      // stops ("passed its checksum but app ... could not decode it", exit code 2).
      n.dead = true;
      n.app.reset();
      mark(Fault::kRefusedStart);
      ev(13, n.id, 1, 0, [&] { return fmt::format("n{} REFUSES TO START (exit code 2): the app cannot decode its snapshot", n.id); });
      return;
    }
  }
  n.snapshot_index = n.disk.snapshot_index();
  n.mirror_base = n.disk.snapshot_index();
  n.mirror_base_term = n.disk.snapshot_term();
  n.mirror.clear();
  for (const Entry& e : n.disk.entries) n.mirror.emplace_back(e.term, entry_hash(e));
  n.staging.clear();
  n.staging_open = false;
  n.snapshot_in_flight = false;
  n.snapshot_wanted = false;
  n.last_term = n.disk.hard_state.term;
  n.last_commit = 0;
  n.last_role = Role::kFollower;
  n.last_ready_hs = n.disk.hard_state;
  n.queued_commands.clear();
  n.link_inbox.clear();
  n.sessions.clear();
  n.incarnation++;
  n.raft = std::make_unique<raft::Raft>(cfg, std::move(rs));
  // As server/recovery.cc: a snapshot of a version this binary does not read is refused
  // (the node then blocks), not installed.
  n.raft->set_snapshot_filter([&n](const raft::SnapshotMeta& m) {
    if (!n.replica->schema_block() && n.app->reads_schema_version(m.schema_version)) return true;
    n.refused_snapshot = m;
    return false;
  });
  // The server's replica core over this incarnation's raft and app (server/recovery.cc
  // builds it the same way, with the applied index of the snapshot it loaded).
  core::Replica::Options ro;
  ro.clustered = opt_.nodes > 1;
  ro.bugs.forget_replaced_writes = opt_.shell_bugs.forget_replaced_writes;
  ro.bugs.reads_without_index = opt_.shell_bugs.reads_without_index;
  ro.forward = opt_.forward && opt_.nodes > 1;
  ro.bugs.forget_request_ids = opt_.shell_bugs.forget_request_ids;
  ro.bugs.hash_marks_after_entry = opt_.shell_bugs.hash_marks_after_entry;
  ro.bugs.apply_unread_schema = opt_.shell_bugs.apply_unread_schema;
  ro.bugs.apply_during_background_load = opt_.shell_bugs.apply_during_background_load;
  ro.bugs.apply_while_producing = opt_.shell_bugs.apply_while_producing;
  if (opt_.sliced_reads) ro.slice_elements = 1;  // an MGET of every key: 5 slices
  if (opt_.slow_readers) {
    ro.slice_output_pause_bytes = 1;
    ro.slice_reader_wait_ms = kSlowReaderWaitTicks * kUnitsPerTick;
  }
  ro.bugs.apply_before_write_finishes = opt_.shell_bugs.apply_before_write_finishes;
  if (opt_.sliced_writes) ro.write_slice_elements = 1;  // a SUMSTORE: 12 slices (kSumStoreRounds)
  if (opt_.apply_budget) {
    // The turn's apply budget (the server's kTurnApplyBudgetUs) runs out before a random
    // quarter of the commands, asked at every one: each node stops its entries at its own
    // points, drawn from the seed, the node and its incarnation (deterministic).
    ro.apply_budget_check_commands = 1;
    ro.apply_budget_spent = [x = (opt_.seed ^ (uint64_t{n.id} << 32) ^ n.incarnation) | 1]() mutable {
      x ^= x << 13;  // xorshift64
      x ^= x >> 7;
      x ^= x << 17;
      return (x & 3) == 0;
    };
    ro.bugs.skip_yielded_command = opt_.shell_bugs.skip_yielded_command;
  }
  n.host = std::make_unique<NodeHost>(this, &n);
  n.replica = std::make_unique<core::Replica>(*n.raft, *n.app, *n.host, ro);
  if (ro.forward) {
    // The server's bounds in election timeouts (server/node.h), in the simulator's units.
    core::Forwarder::Options fo;
    fo.self = n.id;
    fo.leader_wait_ms = 10 * kElectionTicks * kUnitsPerTick;
    fo.drain_ms = 5 * kElectionTicks * kUnitsPerTick;
    fo.bugs.resend_broken_writes = opt_.shell_bugs.forward_resends_broken_writes;
    n.links = std::make_unique<SimLinks>(this, &n);
    n.forwarder = std::make_unique<core::Forwarder>(*n.links, fo);
    n.forwarder->set_time(now_);
  }
  n.replica->set_applied(n.applied, n.applied_term);
  n.replica->requests() = std::move(requests);
  n.replica->set_time(now_, now_);
  n.single = opt_.nodes == 1;
  n.serve_from = n.disk.last_index();
  n.listening = !n.single;
  n.up = true;
  // A process starts its tick schedule at a random phase of the others', or (lockstep
  // seeds) all at the same phase, which makes elections collide (split votes, two
  // candidates of one term) far more often.
  n.clock_acc = prof_.lockstep_ticks ? 0 : rng_.below(kUnitsPerTick * kClockPpm);
  n.lease_reads_seen = 0;
  n.votes_granted_seen = 0;
  ev(11, n.id, n.disk.hard_state.term, n.disk.last_index(), [&] {
    return fmt::format("n{} start #{}{}: durable term={} vote={} snapshot={} log=({}, {}]", n.id, n.incarnation,
                       opt_.upgrade ? fmt::format(" as v{}", n.binary) : std::string(), n.disk.hard_state.term,
                       n.disk.hard_state.vote, n.disk.snapshot_index(), n.disk.snapshot_index(), n.disk.last_index());
  });
  check_node(n);
}

void Simulation::crash_node(Node& n, bool allow_faults) {
  abandon_sliced_snapshot(n, "crash");  // the app goes with the process
  // The process stops and the machine loses power. What the disk thread had handed to
  // write(2) but not synced may survive in part (a torn write): a prefix of those bytes, cut
  // anywhere (inside a record, too), sometimes with an earlier sector missing. A snapshot
  // being written is lost whole (it is renamed into place only once synced).
  bool unsynced = false;
  for (const Write& w : n.disk.pending) unsynced |= !w.local && (w.hard_state || !w.entries.empty());
  Tear tear = Tear::kNone;
  if (allow_faults && unsynced && rng_.chance(prof_.torn_ppm)) {
    tear = doomed_ < max_doomed_ && rng_.chance(prof_.hole_ppm) ? Tear::kHole : Tear::kPrefix;
    for (const Write& w : n.disk.pending)
      if (!w.local) n.dir->append(w.hard_state ? &*w.hard_state : nullptr, w.entries, false);
  }
  DataDir::PowerLoss loss = n.dir->power_loss(tear, rng_);
  std::string what = loss.what;
  if (loss.torn) mark(Fault::kTornWrite);
  if (loss.hole) {
    mark(Fault::kSectorHole);
    n.damaged = true;  // the reader may call it corruption: the node may not start again
    doomed_++;
  }
  // Damage to synced data while the node is down, found when it starts: a bit flip in its
  // log (never in the last record: that would look like a torn write, below) or in its
  // newest snapshot. At most max_doomed_ nodes, so that a majority can always run.
  if (allow_faults && !n.damaged && doomed_ < max_doomed_ && rng_.chance(prof_.damage_ppm)) {
    bool snapshot = rng_.chance(500'000);
    std::string d = snapshot ? n.dir->flip_snapshot_bit(rng_) : std::string();
    if (d.empty()) {
      snapshot = false;
      d = n.dir->flip_log_bit(rng_, false);
    }
    if (!d.empty()) {
      mark(snapshot ? Fault::kSnapshotDamage : Fault::kLogDamage);
      n.damaged = true;
      doomed_++;
      what += " DAMAGE: " + d + ";";
    }
  }
  // A lying fsync (only when asked): synced records vanish. Undetectable (see Options).
  if (allow_faults && opt_.lying_fsync && rng_.chance(prof_.lying_ppm)) {
    std::string d = n.dir->lose_synced_tail(rng_);
    if (!d.empty()) {
      mark(Fault::kLyingFsync);
      what += " LIE: " + d + ";";
    }
  }
  ev(12, n.id, loss.torn, loss.hole, [&] { return fmt::format("n{} CRASH (power loss:{})", n.id, what.empty() ? " nothing unsynced" : what); });
  n.disk.pending.clear();
  if (n.replica && n.replica->applying_index() != 0 && !healing_) mark(Fault::kSlicedWriteCrashed);
  n.forwarder.reset();  // it answers through the replica
  n.replica.reset();  // it refers to raft and app
  n.raft.reset();
  n.app.reset();
  n.up = false;
  n.staging.clear();
  n.staging_open = false;
  n.loading.reset();  // the load thread dies with the process; recovery reads the durable snapshot
  n.loading_data.clear();
  // A paused process can be killed too: what it had not yet read is gone with it.
  n.paused = false;
  n.pause_at = 0;
  n.missed_ticks = 0;
  n.inbox.clear();
  n.queued_commands.clear();
  n.link_inbox.clear();
  n.ack_pending = false;
  n.after_persist_out.clear();  // never sent: the process died first
  n.saved_pending.clear();
  // Its client connections are reset: what waited on them may or may not have happened.
  std::vector<uint64_t> open;
  for (const auto& [id, c] : connections_)
    if (c.open && c.node == n.id) open.push_back(id);
  for (uint64_t id : open) abandon(id, "connection reset");
  drop_links(n);
  n.sessions.clear();
  n.links.reset();
  n.replica.reset();
  n.host.reset();
  if (!healing_) mark(Fault::kCrash);
}

// The end of the node's loop turn, as the server's event loop ends one: the turn's batch is
// proposed, reads are asked for, every Ready is handled through NodeHost (stage chunks,
// install, persist, send, apply, reads, snapshot reads), finished replies go out.
void Simulation::end_turn(Node& n) {
  n.replica->set_time(now_, now_);
  if (n.forwarder) sync_forwarder(n);  // the leader may have changed: before the replica drains
  n.replica->end_turn();
  if (!result_.ok || !n.up) return;
  if (!n.listening && n.raft->role() == Role::kLeader && n.applied >= n.serve_from) n.listening = true;
  if (n.loading && n.raft->role() == Role::kLeader) mark(Fault::kLeaderWhileLoading);
  if (n.replica->producing() > 0) {
    mark(Fault::kSlicedReply);
    if (n.raft->status().commit > n.applied) {
      mark(Fault::kSlicedReplyHeldApply);
      for (uint64_t id : unread_) {
        auto c = connections_.find(id);
        auto s = n.sessions.find(id);
        if (c != connections_.end() && c->second.node == n.id && s != n.sessions.end() && !s->second.replies.out().empty())
          mark(Fault::kSlowReaderHeldApply);
      }
    }
  }
  if (n.replica->stats().sliced_replies_buffered > 0) mark(Fault::kSlicedReplyBuffered);
  if (n.replica->applying_index() != 0) mark(Fault::kSlicedWrite);
  if (n.replica->stats().sliced_writes_dropped > 0) mark(Fault::kSlicedWriteDropped);
  after_input(n);
  if (!result_.ok) return;
  advance_sliced_snapshot(n);  // as the server's loop, once a turn (and after each applied entry)
  if (!result_.ok) return;
  maybe_snapshot(n);
  if (result_.ok && n.up) check_node(n);
}

void NodeHost::stage_snapshot_chunk(const raft::SnapshotChunk& c) {
  Simulation& sim = *sim_;
  Node& n = *node_;
  if (!sim.result_.ok) return;
  if (c.offset == 0) {
    n.staging.clear();
    n.staging_meta = c.meta;
    n.staging_open = true;
  }
  if (c.offset != n.staging.size() || !(c.meta == n.staging_meta)) {
    sim.fail("snapshot-chunks", fmt::format("n{} got chunk at offset {} but has {} bytes staged", n.id, c.offset, n.staging.size()));
    return;
  }
  n.staging += c.data;
  sim.ev(20, n.id, c.offset, c.data.size(), [&] {
    return fmt::format("n{} stages snapshot {}/{} chunk off={} len={}{}", n.id, c.meta.index, c.meta.term, c.offset,
                       c.data.size(), c.last ? " (last)" : "");
  });
}

bool NodeHost::install_snapshot(const raft::SnapshotMeta& meta) {
  Simulation& sim = *sim_;
  Node& n = *node_;
  if (!(meta == n.staging_meta)) {  // the server's install asserts the same
    sim.fail("snapshot-chunks", fmt::format("n{} told to install snapshot {}/{} but the chunks staged are of {}/{}", n.id,
                                            meta.index, meta.term, n.staging_meta.index, n.staging_meta.term));
    return true;
  }
  // A newer one while the previous one still loads: that load ends first (server/snapshot.cc
  // joins its thread), so the replica is told before it hears of the new one.
  if (n.loading) {
    sim.mark(Fault::kInstallDuringLoad);
    sim.finish_load(n);
    if (!sim.result_.ok) return true;
  }
  // Loaded in the background (the server's thread), or in place, as the draw says: both
  // are what a server may do (an app without make_empty loads in place).
  const bool background = sim.load_rng_.chance(kBackgroundLoadPpm);
  sim.install_snapshot(n, meta, background);
  if (!background || !sim.result_.ok) return true;
  sim.mark(Fault::kBackgroundLoad);
  n.loading = meta;
  n.load_done_at = sim.now_ + sim.load_rng_.range(1, kMaxLoadUnits);
  sim.ev(24, n.id, meta.index, n.load_done_at, [&] {
    return fmt::format("n{} loads snapshot {}/{} in the background until {}.{}", n.id, meta.index, meta.term,
                       n.load_done_at / kUnitsPerTick, n.load_done_at % kUnitsPerTick);
  });
  return false;
}

// The background load of the leader's snapshot ends: the node's state becomes the
// snapshot's (the server swaps in the state its thread decoded) and the replica applies
// again. Called at the start of a loop turn, or when a newer snapshot arrives.
void Simulation::finish_load(Node& n) {
  HMDB_ASSERT(n.loading, "finish_load without a load");
  const raft::SnapshotMeta m = *n.loading;
  n.loading.reset();
  if (!load_into_app(n, m, n.loading_data)) return;
  n.loading_data.clear();
  n.applied = m.index;
  n.applied_term = m.term;
  n.applied_conf = m.conf;
  ev(25, n.id, m.index, m.term, [&] { return fmt::format("n{} LOADED snapshot {}/{}: applying again", n.id, m.index, m.term); });
  if (n.replica->loading()) n.replica->snapshot_loaded();  // (not loading: only with the planted bug)
}

// The app takes the snapshot's state (the server: a fresh state machine loaded from the
// file); the state digest must be the one the cluster applied up to there.
bool Simulation::load_into_app(Node& n, const raft::SnapshotMeta& m, const std::string& data) {
  abandon_sliced_snapshot(n, "the state is replaced");
  Decoder in(data);
  n.app->clear();
  if (core::load_state(*n.app, n.replica->requests(), in, m.schema_version, core::kStateFormatNewest) !=
      core::LoadState::kOk) {
    fail("snapshot-install", fmt::format("n{} cannot load snapshot {} ({} bytes staged)", n.id, m.index, data.size()));
    return false;
  }
  if (committed_[m.index].has_digest && committed_[m.index].digest != core::state_digest(*n.app, n.replica->requests()).value) {
    fail("state-digest", fmt::format("n{} installed snapshot at {} whose state digest differs from the applied state there",
                                     n.id, m.index));
    return false;
  }
  return true;
}

// Ready step 1: start persisting (completes later: complete_writes), and update the view of
// the core's log.
std::optional<raft::PersistAck> NodeHost::persist(const std::optional<raft::HardState>& hard_state,
                                                  std::vector<raft::Entry>&& entries,
                                                  const std::optional<raft::SnapshotMeta>& installed) {
  Simulation& sim = *sim_;
  Node& n = *node_;
  if (!sim.result_.ok) return std::nullopt;
  if (hard_state) {
    const HardState& hs = *hard_state;
    if (n.last_ready_hs) {
      const HardState& old = *n.last_ready_hs;
      if (sim.opt_.protocol_checks &&
          (hs.term < old.term || (hs.term == old.term && old.vote != raft::kNoNode && hs.vote != old.vote))) {
        sim.fail("term-vote-monotonic", fmt::format("n{} hard state went from term={} vote={} to term={} vote={}", n.id,
                                                    old.term, old.vote, hs.term, hs.vote));
        return std::nullopt;
      }
    }
    n.last_ready_hs = hs;
  }
  for (const Entry& e : entries) {
    sim.mirror_append(n, e);
    if (!sim.result_.ok) return std::nullopt;
  }
  Write w;
  w.hard_state = hard_state;
  w.entries = std::move(entries);
  if (installed) w.install = raft::Snapshot{*installed, n.staging};
  w.done_at = sim.disk_done_at(n, 1, 4);
  n.disk.pending.push_back(std::move(w));
  return std::nullopt;  // the disk acknowledges later (complete_writes, notify_disk)
}

void NodeHost::send(std::vector<raft::Message>&& messages) {
  for (Message& m : messages) {
    if (!sim_->result_.ok) return;
    sim_->send(*node_, std::move(m));
  }
}

// Ready step 2 with Config::after_persist_messages: with the last write handed to the disk
// (they go out when it completes, complete_writes), or at once when every write completed.
void NodeHost::send_after_persist(std::vector<raft::Message>&& messages) {
  Node& n = *node_;
  if (n.disk.pending.empty() || sim_->opt_.shell_bugs.send_after_persist_early) {  // PLANTED BUG if pending
    send(std::move(messages));
    return;
  }
  std::vector<Message>& after = n.disk.pending.back().after;
  for (Message& m : messages) after.push_back(std::move(m));
}

// Ready step 6 (leader): answered from the durable snapshot files.
void NodeHost::read_snapshot_chunk(const raft::SnapshotReadRequest& r) {
  Simulation& sim = *sim_;
  Node& n = *node_;
  if (!sim.result_.ok) return;
  auto it = n.disk.snapshot_files.find(r.meta.index);
  if (it == n.disk.snapshot_files.end() || !(it->second.first == r.meta)) {
    sim.ev(22, n.id, r.meta.index, 0, [&] { return fmt::format("n{} snapshot read for {} not found", n.id, r.meta.index); });
    return;
  }
  const std::string& data = it->second.second;
  if (r.offset > data.size()) {
    sim.fail("snapshot-read", fmt::format("n{} asked offset {} of a {}-byte snapshot", n.id, r.offset, data.size()));
    return;
  }
  uint64_t len = std::min<uint64_t>(r.length, data.size() - r.offset);
  bool last = r.offset + len == data.size();
  n.raft->snapshot_chunk(r.to, r.meta, r.offset, data.size(), data.substr(r.offset, len), last);
}

void NodeHost::apply_failed(const raft::Entry& e, const core::ApplyResult& r) {
  const char* what = r.status == core::ApplyStatus::kUnsupportedSchema ? "unsupported schema version"
                     : r.status == core::ApplyStatus::kDiverged          ? "diverged"
                                                                         : "malformed batch";
  sim_->fail("entry-payload", fmt::format("n{} entry {}: {} after {} commands{}{}", node_->id, e.index, what, r.commands,
                                          r.divergence.empty() ? "" : ": ", r.divergence));
}

void NodeHost::schema_blocked(const raft::Entry& e, const core::ApplyResult& r) {
  sim_->ev(43, node_->id, e.index, r.schema_version, [&] {
    return fmt::format("n{} v{} BLOCKED at {}: it {} schema version {}", node_->id, node_->binary, e.index,
                       r.activation ? "activates" : "was logged under", r.schema_version);
  });
  sim_->blocked(*node_);
}

void NodeHost::warn(std::string_view message) {
  sim_->ev(24, node_->id, 0, 0, [&] { return fmt::format("n{} warning: {}", node_->id, message); });
}

core::ClientSession* NodeHost::session(uint64_t id) {
  auto it = node_->sessions.find(id);
  return it == node_->sessions.end() ? nullptr : &it->second;
}

void NodeHost::replies_ready(core::ClientSession& s) { sim_->read_replies(*node_, s); }

void NodeHost::forward(core::ClientSession& s, uint64_t seq, Args argv, bool write) {
  sim_->result_.forwarded++;
  node_->forwarder->forward(s.id, seq, s.protocol, write, argv);
}

void NodeHost::forward_transaction(core::ClientSession& s, uint64_t seq,
                                   const std::vector<std::vector<std::string>>& commands, bool write) {
  sim_->result_.forwarded++;
  node_->forwarder->forward_transaction(s.id, seq, s.protocol, write, commands);
}

// The leader's core wants a fresh snapshot (Options::log_memory_bytes): taken at the end of
// this node's turn (Simulation::maybe_snapshot), as the server does.
void NodeHost::snapshot_wanted() {
  Simulation& sim = *sim_;
  Node& n = *node_;
  n.snapshot_wanted = true;
  sim.result_.snapshots_wanted++;
  sim.ev(52, n.id, n.applied, 0, [&] { return fmt::format("n{} core wants a fresh snapshot (applied {})", n.id, n.applied); });
}

void NodeHost::role_changed(raft::Role before, raft::Role now) {
  if (node_->forwarder) sim_->sync_forwarder(*node_);  // as the server's Node::role_changed
  if ((before == raft::Role::kLeader || now == raft::Role::kLeader) && node_->replica->applying_index() != 0)
    sim_->mark(Fault::kSlicedWriteRoleChanged);
}

bool SimLinks::open_link(uint64_t link, raft::NodeId to) { return sim_->open_link(*node_, link, to); }
void SimLinks::send_link(uint64_t link, std::string_view bytes) { sim_->send_link(*node_, link, bytes); }
void SimLinks::close_link(uint64_t link) { sim_->close_link(*node_, link); }
void SimLinks::answer(uint64_t session, uint64_t seq, std::string_view reply) {
  node_->replica->finish(session, seq, core::ReplyQueue::Kind::kWaitingForward, reply);
}
void SimLinks::sent(uint64_t, uint64_t session, uint64_t seq) { sim_->next_link_origin_ = {session, seq}; }
void SimLinks::warn(std::string_view message) {
  sim_->ev(80, node_->id, 0, 0, [&] { return fmt::format("n{} forwarder: {}", node_->id, message); });
}

// The consensus core accepted a batch: where each client op's write is (final_checks
// resolves unknown outcomes from the committed log with it).
void NodeHost::proposed(raft::Index index, raft::Term term, const std::vector<core::ReplySlot>& slots) {
  Simulation& sim = *sim_;
  std::vector<uint32_t> ops;
  for (core::ReplySlot slot : slots) {
    // A forwarded command: the leader's slot is on the link; its op is the forwarding
    // node's client's.
    if (auto link = sim.link_origins_.find(slot.session); link != sim.link_origins_.end()) {
      if (slot.seq >= link->second.size() || link->second[slot.seq].first == 0) continue;
      slot = core::ReplySlot{link->second[slot.seq].first, link->second[slot.seq].second};
    }
    auto it = sim.connections_.find(slot.session);
    if (it == sim.connections_.end() || slot.seq >= it->second.ops_by_seq.size()) continue;
    const uint32_t op = it->second.ops_by_seq[slot.seq];
    ops.push_back(op);
    if (op == kProbeOp) {
      sim.probe_index_ = index;
      sim.probe_term_ = term;
      continue;
    }
    sim.meta_[op].prop_index = index;
    sim.meta_[op].prop_term = term;
    sim.meta_[op].props.emplace_back(index, term);
  }
  sim.ev(71, node_->id, index, term, [&] {
    return fmt::format("n{} proposed a batch of {} at {}/{}", node_->id, slots.size(), index, term);
  });
  sim.proposed_ops_[{index, term}] = std::move(ops);
}

// Ready step 1a (follower): install the leader's snapshot from the staged chunks, as the
// server does (make it durable, load it into the app).
void Simulation::install_snapshot(Node& n, const raft::SnapshotMeta& m, bool background) {
  if (!result_.ok) return;
  abandon_sliced_snapshot(n, "a leader's snapshot replaces the state");  // as server/snapshot.cc, at its staging
  const bool replaced_longer = n.mirror_last() > m.index;
  mark(Fault::kSnapshotInstall);
  if (wanted_snapshots_.count({m.index, m.term})) result_.wanted_snapshot_installs++;
  if (m.index < n.applied) {
    fail("snapshot-install", fmt::format("n{} told to install snapshot {} below its applied index {}", n.id, m.index, n.applied));
    return;
  }
  if (m.index >= committed_.size()) {
    fail("snapshot-install", fmt::format("n{} installs snapshot at {} but only {} entries are known committed", n.id,
                                         m.index, committed_.size() - 1));
    return;
  }
  if (committed_[m.index].term != m.term) {
    fail("snapshot-install", fmt::format("n{} installs snapshot {}/{} but the committed entry there has term {}", n.id,
                                         m.index, m.term, committed_[m.index].term));
    return;
  }
  // The history the split nemesis aims at: the node's log goes on past the snapshot but
  // holds another entry at its index (a suffix of a history that lost); "newer": the
  // suffix's terms are not below the snapshot's.
  auto here = n.mirror_term(m.index);
  // Raft's InstallSnapshot rule 6: a log that holds the snapshot's last entry keeps the
  // entries after it (the node may have acknowledged them, and a leader counted them for a
  // commit); a node that installed over it would cut them (raft.cc checks at the first and
  // at the last chunk; Options::snapshot_races makes the log reach it in between).
  if (opt_.protocol_checks && here && *here == m.term && n.mirror_last() > m.index) {
    fail("install-over-matching-log", fmt::format("n{} installs snapshot {}/{} over a log that holds that entry and goes on "
                                                  "to {}: the entries after it are cut", n.id, m.index, m.term,
                                                  n.mirror_last()));
    return;
  }
  if (here && *here != m.term && n.mirror_last() > m.index) {
    mark(Fault::kInstallOverConflict);
    if (*n.mirror_term(m.index + 1) >= m.term) mark(Fault::kInstallOverNewerConflict);
  }
  nemesis_on_install(n, m.index);
  std::string data = n.staging;
  // Into the app the replica core holds (the server: app_->clear(), then load), now or, in
  // the background, when finish_load runs.
  if (background) n.loading_data = data;
  else if (!load_into_app(n, m, data)) return;
  ev(23, n.id, m.index, m.term, [&] {
    return fmt::format("n{} INSTALL snapshot {}/{} ({} bytes) {}; it replaces a log up to {}", n.id, m.index, m.term,
                       data.size(), conf_string(m.conf), n.mirror_last());
  });
  if (n.lost) {
    // Had it kept its log, it would have installed this snapshot only if that log did not
    // hold the snapshot's entry; then nothing it lost matters any more.
    Index lost_last = n.lost_base + n.lost_terms.size();
    bool holds = m.index <= n.lost_base || (m.index <= lost_last && n.lost_terms[m.index - n.lost_base - 1] == m.term);
    if (!holds || m.index >= lost_last) {
      n.lost = false;
      n.vote_requests.clear();
    }
  }
  if (!background) {
    n.applied = m.index;
    n.applied_term = m.term;
    n.applied_conf = m.conf;
  }
  n.snapshot_index = m.index;
  n.mirror_base = m.index;
  n.mirror_base_term = m.term;
  n.mirror.clear();
  n.staging = data;
  n.staging_open = false;
  // The server makes the leader's snapshot durable right here (sync, rename, directory
  // sync) and removes older ones; the log gets nothing (entries after the snapshot that
  // the old log holds stay on disk until overwritten: recovery must not revive them).
  n.dir->save_snapshot(m, n.staging);
  n.disk.snapshot_files[m.index] = {m, n.staging};
  // Sometimes crash it before the leader's next entries are durable: the restart then
  // reads a snapshot newer than everything in its log, and, if the log it replaced went
  // past the snapshot, entries of that log after it (more likely then: the rarer case).
  uint32_t ppm = replaced_longer ? 4 * prof_.crash_after_install_ppm : prof_.crash_after_install_ppm;
  if (!crash_at_ && !healing_ && opt_.faults && rng_.chance(ppm)) {
    crash_at_ = now_ + 1 + rng_.below(2 * kUnitsPerTick);
    crash_node_ = n.id;
    crash_leader_ = true;  // this node, not one picked for its writes in flight
  }
}

void Simulation::mirror_append(Node& n, const Entry& e) {
  if (e.index <= n.mirror_base || e.index > n.mirror_last() + 1) {
    fail("log-contiguous", fmt::format("n{} asked to persist entry {} but its log is ({}, {}]", n.id, e.index, n.mirror_base,
                                       n.mirror_last()));
    return;
  }
  // A committed entry, once in a node's log, is never removed from it (an isolated old
  // leader may hold other entries at committed indexes: those are not committed).
  Index top = std::min<Index>(n.mirror_last(), committed_.size() - 1);
  for (Index j = e.index; j <= top; j++) {
    if (*n.mirror_term(j) != committed_[j].term) continue;
    if (j == e.index && e.term == committed_[j].term) continue;
    fail("committed-entry-removed", fmt::format("n{} writes {}/{}, removing committed entry {}/{} from its log", n.id,
                                                e.index, e.term, j, committed_[j].term));
    return;
  }
  n.mirror.resize(e.index - n.mirror_base - 1);
  Term prev = *n.mirror_term(e.index - 1);
  if (e.term < prev) {
    fail("log-terms", fmt::format("n{} entry {} has term {} after an entry of term {}", n.id, e.index, e.term, prev));
    return;
  }
  uint64_t h = entry_hash(e);
  // Log matching, incrementally: an (index, term) pair must always carry the same content
  // and follow the same term. By induction, two logs that share an (index, term) are
  // identical up to it.
  auto [it, fresh] = log_matching_[e.index].try_emplace(e.term, h, prev);
  if (!fresh && (it->second.first != h || it->second.second != prev)) {
    fail("log-matching", fmt::format("n{} writes entry {}/{} with different content or predecessor term ({} vs {}) than "
                                     "another node had", n.id, e.index, e.term, prev, it->second.second));
    return;
  }
  n.mirror.emplace_back(e.term, h);
  if (n.lost && n.raft->role() != Role::kLeader) {
    // What it had lost is either back (it holds everything again) or moot (a leader replaced
    // that part of the log, as it would have replaced the lost entries). Its own entries as
    // a leader prove nothing (lead-after-loss judges its election).
    Index lost_last = n.lost_base + n.lost_terms.size();
    if (e.index >= lost_last || (e.index > n.lost_base && n.lost_terms[e.index - n.lost_base - 1] != e.term)) {
      n.lost = false;
      n.vote_requests.clear();
    }
  }
}

void Simulation::send(Node& n, Message m) {
  if (m.from != n.id) { fail("message-from", fmt::format("n{} sent a message from n{}", n.id, m.from)); return; }
  // A vote is released only once it is durable (raft.h: held back until persisted()).
  if (m.type == MessageType::kVoteResponse && !m.reject) {
    const HardState& d = n.disk.hard_state;
    if (opt_.protocol_checks && (d.term < m.term || (d.term == m.term && d.vote != m.to))) {
      fail("vote-durable-before-send", fmt::format("n{} granted its vote to n{} in term {} but its durable hard state is "
                                                   "term={} vote={}", n.id, m.to, m.term, d.term, d.vote));
      return;
    }
    auto [it, fresh] = vote_granted_.try_emplace({n.id, m.term}, m.to);
    if (!fresh && it->second != m.to) {
      fail("one-vote-per-term", it->second == n.id
                                    ? fmt::format("n{} voted for itself as a candidate in term {}, then granted that term's "
                                                  "vote to n{}", n.id, m.term, m.to)
                                    : fmt::format("n{} granted its vote in term {} to n{} and to n{}", n.id, m.term,
                                                  it->second, m.to));
      return;
    }
    // A node that lost part of what its disk had acknowledged must not vote as if it never
    // had it: not in a term it had already left, nor for a log behind the one it had.
    if (m.term < n.floor_term) {
      fail("vote-after-loss", fmt::format("n{} granted its vote to n{} in term {}, but its disk had reached term {} before "
                                          "it restarted", n.id, m.to, m.term, n.floor_term));
      return;
    }
    auto req = n.vote_requests.find({m.to, m.term});
    if (req != n.vote_requests.end() && behind_lost(n, req->second.first, req->second.second)) {
      fail("vote-after-loss", fmt::format("n{} granted its vote in term {} to n{}, whose log ends at {}/{}, but its disk had "
                                          "acknowledged a log up to {}/{} before it lost part of it", n.id, m.term, m.to,
                                          req->second.second, req->second.first, n.lost_base + n.lost_terms.size(),
                                          n.lost_terms.empty() ? n.lost_base_term : n.lost_terms.back()));
      return;
    }
  }
  if (m.type == MessageType::kVote) {
    // A candidate votes for itself (its requests leave once that vote is durable): it counts
    // for one-vote-per-term too.
    auto [it, fresh] = vote_granted_.try_emplace({n.id, m.term}, n.id);
    if (!fresh && it->second != n.id) {
      fail("one-vote-per-term", fmt::format("n{} voted for n{} in term {}, then for itself as a candidate", n.id, it->second,
                                            m.term));
      return;
    }
  }
  result_.messages_sent++;
  uint64_t seq = ++send_seq_;
  uint64_t delay = rng_.range(1, prof_.max_delay_units);
  bool long_delay = !healing_ && rng_.chance(prof_.long_delay_ppm);
  if (long_delay) delay += rng_.range(kUnitsPerTick, 6 * kUnitsPerTick);
  bool dup = !healing_ && rng_.chance(prof_.duplicate_ppm);
  bool lost = !healing_ && rng_.chance(prof_.loss_ppm);
  ev(30, n.id, m.to, static_cast<uint64_t>(m.type), [&] {
    return fmt::format("n{} -> n{} {}{}{}", n.id, m.to, summarize(m), lost ? " [LOST]" : "", long_delay ? " [DELAYED]" : "");
  });
  if (lost) { mark(Fault::kLoss); return; }
  if (long_delay) mark(Fault::kDelay);
  if (opt_.snapshot_races && m.type == MessageType::kAppend && !healing_) delay += hold_append(n, m);
  bool removed = n.removed && !contains(n.applied_conf.voters, n.id) && !contains(n.applied_conf.learners, n.id);
  const uint32_t newest = n.app->schema_version();
  if (dup) {
    InFlight d{now_ + delay + rng_.range(0, 3 * kUnitsPerTick), seq, true, removed, m, newest};
    net_.push(std::move(d));
  }
  const bool chunk = opt_.snapshot_races && m.type == MessageType::kSnapshot;
  const NodeId to = m.to;
  const bool last_chunk = m.snapshot_last;
  // Options::snapshot_races: chunks arrive at a tick's boundary (chunks of two snapshots meet).
  const uint64_t at = chunk ? (now_ + delay + kUnitsPerTick - 1) / kUnitsPerTick * kUnitsPerTick : now_ + delay;
  net_.push(InFlight{at, seq, false, removed, std::move(m), newest});
  if (chunk) move_appends_around_chunk(n.id, to, at, last_chunk);
  if (chunk && last_chunk && opt_.faults && !healing_ && rng_.chance(kRaceStallPpm)) stall_at_last_chunk(to, at);
  if (net_.size() > kMaxMessagesInFlight)
    fail("message-storm", fmt::format("{} messages in flight (the last one sent by n{})", net_.size(), n.id));
}

// Options::snapshot_races: an append whose entries go past its leader's commit index may be
// held (kRaceHoldPpm); its leader then snapshots at one of those entries once it applied it.
// Returns the extra delay.
uint64_t Simulation::hold_append(Node& n, const Message& m) {
  const Index last = m.log_index + m.entries.size();
  if (last <= m.commit + 1 || n.race_snapshot_at != 0 || !rng_.chance(kRaceHoldPpm)) return 0;
  const Index from = std::max({m.commit + 1, n.applied + 1, n.snapshot_index + 1});
  if (from >= last) return 0;
  n.race_snapshot_at = rng_.range(from, last - 1);
  mark(Fault::kHeldAppend);
  ev(34, n.id, m.to, n.race_snapshot_at, [&] {
    return fmt::format("n{} -> n{}: append up to {} (commit {}) HELD; n{} snapshots at {}", n.id, m.to, last, m.commit,
                       n.id, n.race_snapshot_at);
  });
  return rng_.range(kRaceHoldUnitsMin, kRaceHoldUnitsMax);
}

// Options::snapshot_races: the follower `to` stops as a snapshot's last chunk reaches it at
// `at`, past the leader's resend (kRaceStallTicksMin..Max).
void Simulation::stall_at_last_chunk(NodeId to, uint64_t at) {
  Node& f = nodes_[to];
  if (!f.exists || !f.up || f.paused || f.pause_at) return;
  f.pause_at = at;
  f.resume_at = at + rng_.range(kRaceStallTicksMin * kUnitsPerTick, kRaceStallTicksMax * kUnitsPerTick);
  mark(Fault::kStalledAtLastChunk);
  ev(35, to, at, f.resume_at, [&] { return fmt::format("n{} will stop as the snapshot's last chunk reaches it", to); });
}

void Simulation::move_appends_around_chunk(NodeId from, NodeId to, uint64_t chunk_at, bool last) {
  std::vector<InFlight> all;
  all.reserve(net_.size());
  bool moved = false;
  while (!net_.empty()) {
    all.push_back(std::move(const_cast<InFlight&>(net_.top())));
    net_.pop();
    InFlight& f = all.back();
    if (f.msg.from != from || f.msg.to != to || f.msg.type != MessageType::kAppend) continue;
    if (!last) {
      f.at = std::max(f.at, chunk_at) + rng_.range(1, kLateAppendUnitsMax);
    } else if (f.at >= chunk_at && chunk_at > now_ + 1) {
      f.at = rng_.range(now_ + 1, chunk_at - 1);  // the last chunk is on its way behind them
    } else {
      continue;
    }
    moved = true;
  }
  for (InFlight& f : all) net_.push(std::move(f));
  if (!moved) return;
  mark(Fault::kLateAppends);
  ev(33, from, to, chunk_at, [&] { return fmt::format("n{} -> n{}: appends in flight moved {} the snapshot's chunk", from, to, last ? "just before" : "past"); });
}

// Ready step 3: the replica core applied entry e (core::apply_batch wrote each command's
// reply into its client's slot). Is it the entry the node's log holds there, the one every
// node applies there, and does the state after it agree everywhere?
void NodeHost::applied(const raft::Entry& e) {
  Simulation& sim = *sim_;
  Node& n = *node_;
  if (!sim.result_.ok) return;
  if (e.index != n.applied + 1) {
    sim.fail("apply-order", fmt::format("n{} applied entry {} after applying {} (each entry exactly once, in order)", n.id,
                                        e.index, n.applied));
    return;
  }
  // No node applies an entry of a schema its binary does not read (it must block there).
  if (e.type == EntryType::kNormal && !n.app->reads_schema_version(e.schema_version)) {
    sim.fail("unknown-schema-applied", fmt::format("n{} (binary v{}, reads {}..{}) applied entry {}/{}, logged under schema "
                                                   "version {}", n.id, n.binary, n.app->oldest_schema_version(),
                                                   n.app->schema_version(), e.index, e.term, e.schema_version));
    return;
  }
  if (sim.opt_.upgrade && e.type == EntryType::kNormal) {  // nor an activation of one
    core::BatchReader reader(e.data);
    core::BatchStep step;
    while (reader.next(step)) {
      if (step.kind == core::BatchStep::Kind::kActivation && !n.app->reads_schema_version(step.version)) {
        sim.fail("unknown-schema-applied", fmt::format("n{} (binary v{}, reads {}..{}) applied entry {}/{}, which "
                                                       "activates schema version {}", n.id, n.binary,
                                                       n.app->oldest_schema_version(), n.app->schema_version(), e.index,
                                                       e.term, step.version));
        return;
      }
    }
  }
  auto mt = n.mirror_term(e.index);
  if (!mt || *mt != e.term || n.mirror[e.index - n.mirror_base - 1].second != entry_hash(e)) {
    sim.fail("apply-from-log", fmt::format("n{} applied entry {}/{} that is not what its log holds there", n.id, e.index, e.term));
    return;
  }
  uint64_t h = entry_hash(e);
  if (e.index < sim.committed_.size()) {
    if (sim.committed_[e.index].term != e.term || sim.committed_[e.index].hash != h) {
      sim.fail("state-machine-safety", fmt::format("n{} applied {}/{} but another node applied {}/{} at that index", n.id,
                                                   e.index, e.term, e.index, sim.committed_[e.index].term));
      return;
    }
  } else {
    HMDB_ASSERT(e.index == sim.committed_.size(), "committed entries are first recorded in order");
    sim.committed_.push_back(CommittedRec{e.term, h, e.type, false, 0});
    // The ops of this batch took effect no later than now.
    auto po = sim.proposed_ops_.find({e.index, e.term});
    if (po != sim.proposed_ops_.end()) {
      uint64_t stamp = ++sim.event_seq_;
      for (uint32_t op : po->second)  // a retried write's first committed attempt is its effect
        if (op != kProbeOp && sim.meta_[op].commit_seq == 0) sim.meta_[op].commit_seq = stamp;
      sim.proposed_ops_.erase(po);
    }
    sim.check_exactly_once(n, e);
    if (!sim.result_.ok) return;
  }
  size_t commands = 0;
  if (e.type == EntryType::kNormal) {
    core::BatchReader reader(e.data);
    commands = reader.count();
  } else if (e.type == EntryType::kConfChange) {
    raft::ConfChange cc;
    if (!raft::decode_conf_change(e.data, &cc)) {
      sim.fail("entry-payload", fmt::format("n{} entry {}: bad conf change", n.id, e.index));
      return;
    }
    conf_apply(&n.applied_conf, cc);
    if (e.index + 1 == sim.committed_.size() && !sim.committed_[e.index].has_digest) {
      // First application anywhere: update the cluster's committed membership.
      conf_apply(&sim.committed_conf_, cc);
      sim.mark(Fault::kMembershipChange);
      sim.ev(40, n.id, e.index, cc.node, [&] {
        return fmt::format("membership change committed at {}: {} -> {}", e.index,
                           cc.type == raft::ConfChangeType::kRemove ? "remove" : "add/promote",
                           conf_string(sim.committed_conf_));
      });
      if (cc.type == raft::ConfChangeType::kRemove && cc.node <= kMaxNodes && sim.nodes_[cc.node].exists) {
        Node& r = sim.nodes_[cc.node];
        r.removed = true;
        r.removed_tick = sim.tick();
      }
    }
  }
  n.applied = e.index;
  n.applied_term = e.term;
  sim.result_.entries_applied++;
  if (n.app->active_schema_version() > RegisterApp::kSchemaVersion && !sim.gate_committed_) {
    // The first node to apply the activation: it committed. The gate must have let it only
    // with a quorum of the voters running a binary that reads it (else the cluster stops).
    sim.gate_committed_ = true;
    sim.gate_index_ = e.index;
    sim.mark(Fault::kUpgradeGateCommitted);
    const size_t readers = sim.voters_reading_v2(), voters = sim.committed_conf_.voters.size();
    sim.ev(42, n.id, e.index, readers, [&] {
      return fmt::format("GATE committed at {}: schema version {} active; {} of {} voters run v2", e.index,
                         n.app->active_schema_version(), readers, voters);
    });
    if (readers < voters / 2 + 1) {
      sim.fail("gate-without-quorum", fmt::format("the activation of v2 committed at {} while {} of {} voters ({}) run a "
                                                  "binary that reads it", e.index, readers, voters,
                                                  conf_string(sim.committed_conf_)));
      return;
    }
  }
  sim.ev(41, n.id, e.index, e.term, [&] {
    return fmt::format("n{} apply {}/{} {}", n.id, e.index, e.term,
                       e.type == EntryType::kNormal ? fmt::format("batch of {}", commands)
                                                    : e.type == EntryType::kNoop ? "noop" : "conf change");
  });
  uint64_t digest = core::state_digest(*n.app, n.replica->requests()).value;
  CommittedRec& rec = sim.committed_[e.index];
  if (!rec.has_digest) {
    rec.has_digest = true;
    rec.digest = digest;
  } else if (rec.digest != digest) {
    sim.fail("state-digest", fmt::format("n{} state digest after applying {} differs from another node's", n.id, e.index));
    return;
  }
  // A digest mark in the entry: every node takes the same digest at it (taken at once here:
  // the simulator gives the replica no MarkHasher).
  if (const core::DigestMark* m = n.replica->digest_marks().find(e.index)) {
    if (!rec.has_mark) {
      rec.has_mark = true;
      rec.mark_digest = m->digest.value;
    } else if (rec.mark_digest != m->digest.value) {
      sim.fail("digest-mark", fmt::format("n{} took digest {:016x} at the digest mark in entry {}, another node {:016x}",
                                          n.id, m->digest.value, e.index, rec.mark_digest));
      return;
    }
  }
  sim.advance_sliced_snapshot(n);  // writes were applied since its last slice
  if (!sim.result_.ok) return;
  // Snapshots between two applied entries (half the seeds), and the split nemesis's.
  if (n.race_snapshot_at && e.index >= n.race_snapshot_at) {
    // Options::snapshot_races: as maybe_snapshot would take one, but here.
    n.race_snapshot_at = 0;
    if (!n.snapshot_in_flight && !n.loading && !n.replica->schema_block() && n.replica->applying_index() == 0 &&
        n.snapshot_at == 0)
      sim.take_snapshot(n);
  }
  if (n.snapshot_at == e.index) {
    n.snapshot_at = 0;
    if (!n.snapshot_in_flight) sim.take_snapshot(n);
  } else if (sim.prof_.snapshot_between_entries) {
    sim.maybe_snapshot(n);
  }
}

// ---------------------------------------------------------------------------------------
// Mixed versions (Options::upgrade)

std::unique_ptr<StateMachine> Simulation::make_app(uint32_t binary) const {
  if (binary == 1) {
    if (opt_.shell_bugs.save_without_copy) return std::make_unique<RegisterHostSavesWithoutCopy>();  // PLANTED BUG
    return std::make_unique<RegisterHost>();
  }
  if (opt_.shell_bugs.migration_drops_field) return std::make_unique<RegisterHostV2DropsField>();  // PLANTED BUG
  return std::make_unique<RegisterHostV2>();
}

// As the server's schema_blocked and note_refused_snapshot: it stays a voter that does not
// lead. Its operator restarts it with v2 a while later (at once while healing).
void Simulation::blocked(Node& n) {
  n.raft->set_may_lead(false);
  mark(Fault::kUpgradeNodeBlocked);
  n.remedy_tick = tick() + (healing_ ? 1 : urng_.range(10, 6 * kElectionTicks));
}

void Simulation::note_refused_snapshot(Node& n) {
  const raft::SnapshotMeta m = *n.refused_snapshot;
  n.refused_snapshot.reset();
  if (n.replica->schema_block()) return;  // blocked already
  n.replica->block_at_snapshot(m.index, m.schema_version);
  ev(44, n.id, m.index, m.schema_version, [&] {
    return fmt::format("n{} v{} BLOCKED: refused the leader's snapshot at {} of schema version {}", n.id, n.binary, m.index,
                       m.schema_version);
  });
  blocked(n);
}

// A restart with the other binary on the same data directory: the process stops (what it
// had not synced is lost, nothing is torn) and starts at once. A node that is down gets the
// new binary when it next starts.
void Simulation::restart_with(Node& n, uint32_t binary) {
  if (!n.exists || n.removed) return;
  const uint32_t before = n.binary;
  n.binary = binary;
  ev(15, n.id, before, binary, [&] { return fmt::format("UPGRADE PLAN: n{} v{} -> v{}{}", n.id, before, binary, n.up ? "" : " (down)"); });
  if (!n.up || n.dead) return;
  crash_node(n, false);
  start_node(n);
}

size_t Simulation::voters_reading_v2() const {
  size_t readers = 0;
  for (NodeId v : committed_conf_.voters)
    if (v <= kMaxNodes && nodes_[v].exists && nodes_[v].binary >= 2) readers++;
  return readers;
}

// The leader's gate (server/cluster.cc, CLUSTER SCHEMA ACTIVATE): it reads v2 itself, and
// a quorum of voters does as their binaries last said (itself included; a peer not heard
// from since it started counts as not reading it); then it logs the activation.
bool Simulation::try_gate() {
  Node* l = leader();
  if (!l || l->app->active_schema_version() >= 2 || l->replica->schema_block()) return false;
  if (!l->app->reads_schema_version(2)) {
    ev(45, l->id, 0, 0, [&] {
      return fmt::format("n{} CLUSTER SCHEMA ACTIVATE 2: REFUSED (this node reads schema versions 1..1)", l->id);
    });
    mark(Fault::kUpgradeGateRefused);
    return false;
  }
  const raft::Status st = l->raft->status();
  size_t readers = 0;
  for (NodeId v : st.conf.voters) {
    const uint32_t newest = v == l->id ? l->app->schema_version() : v < std::size(l->peer_newest) ? l->peer_newest[v] : 0;
    readers += newest >= 2;
  }
  const size_t quorum = st.conf.voters.size() / 2 + 1;
  ev(45, l->id, readers, quorum, [&] {
    return fmt::format("n{} CLUSTER SCHEMA ACTIVATE 2: {} of {} voters read it (quorum {}){}", l->id, readers,
                       st.conf.voters.size(), quorum, readers < quorum ? ": REFUSED" : "");
  });
  if (readers < quorum && !opt_.shell_bugs.gate_without_quorum) {  // PLANTED BUG when set
    mark(Fault::kUpgradeGateRefused);
    return false;
  }
  l->replica->activate_schema(2, 0, 0);  // no client waits: the plan watches the log
  mark(Fault::kUpgradeGateProposed);
  upgrade_.gate_proposed = true;
  upgrade_.gate_tick = tick();
  if (upgrade_.partition_at_gate && !healing_) {
    std::vector<std::pair<NodeId, NodeId>> links;
    for (const Node& b : nodes_)
      if (b.exists && b.id != l->id) { links.emplace_back(l->id, b.id); links.emplace_back(b.id, l->id); }
    uint64_t id = add_partition(std::move(links), tick() + urng_.range(2, 4 * kElectionTicks));
    mark(Fault::kUpgradePartitionAtGate);
    mark(Fault::kPartition);
    ev(85, id, l->id, 0, [&] { return fmt::format("UPGRADE PLAN: PARTITION #{} cuts the leader n{} off at the gate", id, l->id); });
  }
  return true;
}

// One step of the operator's plan per tick: wait, restart the nodes with v2 one by one
// (maybe rolling some back to v1, maybe abandoning), hand leadership to a v2 voter, open the
// gate (with a quorum, or as early as the leader allows), then upgrade the rest. Blocked
// nodes are restarted with v2 by their operator; the plan's own kills land here too.
void Simulation::upgrade_tick() {
  UpgradePlan& u = upgrade_;
  for (Node& n : nodes_) {
    if (!n.exists || n.removed || !n.up) continue;
    if (n.kill_tick && tick() >= n.kill_tick) {
      n.kill_tick = 0;
      if (healing_) continue;
      mark(n.kill_new ? Fault::kUpgradeKilledNew : Fault::kUpgradeLeaderKilledInTransfer);
      crash_node(n, true);
      n.restart_tick = tick() + urng_.range(1, 4 * kElectionTicks);
      continue;
    }
    if (n.remedy_tick && tick() >= n.remedy_tick && n.replica->schema_block()) {
      mark(Fault::kUpgradeBlockedRestarted);
      restart_with(n, 2);
    }
  }
  if (healing_ || tick() < u.next_tick || !result_.ok) return;
  auto members = [&] {
    std::vector<NodeId> ids;
    for (const Node& n : nodes_)
      if (n.exists && !n.removed && (contains(committed_conf_.voters, n.id) || contains(committed_conf_.learners, n.id)))
        ids.push_back(n.id);
    return ids;
  };
  auto next_gap = [&] { u.next_tick = tick() + urng_.range(kElectionTicks / 2, 2 * kElectionTicks); };
  switch (u.stage) {
    case UpgradeStage::kWaiting: {
      u.order = members();
      for (size_t i = u.order.size(); i > 1; i--) std::swap(u.order[i - 1], u.order[urng_.below(i)]);
      u.pos = 0;
      u.joiner_binary = 2;  // an operator adding a node now adds the new version
      u.stage = UpgradeStage::kUpgrading;
      next_gap();
      break;
    }
    case UpgradeStage::kUpgrading: {
      // An operator who asks too early: the leader must refuse while fewer than a quorum of
      // voters read v2 (it decides by what their binaries last told it).
      if (u.premature_gate && !u.gate_proposed && try_gate()) {
        u.stage = UpgradeStage::kAfterGate;
        next_gap();
        break;
      }
      while (u.pos < u.order.size() && (nodes_[u.order[u.pos]].removed || nodes_[u.order[u.pos]].binary >= 2)) u.pos++;
      if (u.pos < u.order.size()) {
        Node& n = nodes_[u.order[u.pos++]];
        mark(Fault::kUpgradeRestart);
        restart_with(n, 2);
        if (n.up && urng_.chance(250'000)) {  // mid catch-up
          n.kill_tick = tick() + urng_.range(1, kElectionTicks);
          n.kill_new = true;
        }
        if (u.pos == u.rollback_after && !u.gate_proposed) {
          u.stage = UpgradeStage::kRollingBack;
          u.order = members();
          u.pos = 0;
        }
      } else {
        for (NodeId id : members())  // nodes added meanwhile run v2 already; any other too
          if (nodes_[id].binary < 2) u.order.push_back(id);
        if (u.pos >= u.order.size()) u.stage = UpgradeStage::kGate;
      }
      // An early gate: once a quorum of voters runs v2, the rest wait until it commits (the
      // nodes left on v1 block at the activation, until they get v2 after it).
      if (u.early_gate && u.stage == UpgradeStage::kUpgrading &&
          voters_reading_v2() >= committed_conf_.voters.size() / 2 + 1)
        u.stage = UpgradeStage::kGate;
      next_gap();
      break;
    }
    case UpgradeStage::kRollingBack: {
      while (u.pos < u.order.size() && (nodes_[u.order[u.pos]].removed || nodes_[u.order[u.pos]].binary < 2)) u.pos++;
      if (u.pos < u.order.size()) {
        mark(Fault::kUpgradeRollback);
        restart_with(nodes_[u.order[u.pos++]], 1);
      } else if (u.abandon) {
        mark(Fault::kUpgradeAbandoned);
        u.joiner_binary = 1;
        u.stage = UpgradeStage::kDone;
      } else {
        u.rollback_after = SIZE_MAX;
        u.stage = UpgradeStage::kWaiting;
      }
      next_gap();
      break;
    }
    case UpgradeStage::kGate: {
      Node* l = leader();
      // The plan's transfer, or one the operator needs: a v1 leader cannot open the gate.
      if (l && ((u.transfer && !u.transferred) || l->binary < 2)) {
        std::vector<NodeId> cand;
        for (NodeId v : committed_conf_.voters)
          if (v != l->id && nodes_[v].up && nodes_[v].binary >= 2) cand.push_back(v);
        if (!cand.empty()) {
          const NodeId to = cand[urng_.below(cand.size())];
          const bool kill = u.kill_in_transfer && !u.transferred;
          u.transferred = true;
          mark(Fault::kUpgradeTransfer);
          mark(Fault::kTransfer);
          ev(84, l->id, to, 1, [&] { return fmt::format("UPGRADE PLAN: n{} transfers leadership to n{}", l->id, to); });
          l->raft->transfer_leadership(to);
          if (kill) {
            l->kill_tick = tick() + urng_.range(1, 3);
            l->kill_new = false;
          }
          u.next_tick = tick() + urng_.range(2, 2 * kElectionTicks);
          break;
        }
      }
      if (try_gate()) u.stage = UpgradeStage::kAfterGate;
      u.next_tick = tick() + urng_.range(2, kElectionTicks);
      break;
    }
    case UpgradeStage::kAfterGate: {
      if (!gate_committed_) {
        // The activation may have been lost with its leader: log it again after a while
        // (a second one committing too is answered "not above the active version").
        if (tick() >= u.gate_tick + 6 * kElectionTicks && try_gate()) u.gate_tick = tick();
        u.next_tick = tick() + kElectionTicks;
        break;
      }
      // Then every node still on v1 (an early gate left some) is restarted with v2.
      for (NodeId id : members())
        if (nodes_[id].binary < 2) {
          mark(Fault::kUpgradeRestart);
          restart_with(nodes_[id], 2);
          break;
        }
      next_gap();
      break;
    }
    case UpgradeStage::kDone:
      break;
  }
}

void Simulation::maybe_snapshot(Node& n) {
  if (n.loading) return;  // its state is not the log's until the load ends (server/snapshot.cc)
  if (n.replica->schema_block()) return;  // its state is no index's: it takes none (docs/cluster.md)
  // A write is half applied: the state is no index's until it is (server/snapshot.cc waits too).
  if (n.replica->applying_index() != 0) return;
  if (n.snapshot_wanted && !n.snapshot_in_flight && n.snapshot_at == 0) {
    // Asked for by the core (Options::log_memory_bytes): one at a time, like the server's.
    n.snapshot_wanted = false;
    if (n.applied > n.snapshot_index) {
      wanted_snapshots_.insert({n.applied, n.applied_term});
      result_.wanted_snapshots_taken++;
      ev(53, n.id, n.applied, n.applied_term, [&] {
        return fmt::format("n{} takes the snapshot its core asked for at {}/{}", n.id, n.applied, n.applied_term);
      });
      take_snapshot(n);
      return;
    }
  }
  if (n.snapshot_in_flight || n.snapshot_at != 0 || n.applied < n.snapshot_index + prof_.snapshot_every) return;
  // The split nemesis's third leader keeps the snapshot it took inside the split until the
  // node with the conflicting suffix has had it (a newer one would be sent instead).
  if (nemesis_.third == n.id && (nemesis_.stage == NemesisStage::kThirdLeader ||
                                 nemesis_.stage == NemesisStage::kSnapshotSaved)) return;
  take_snapshot(n);
}

void Simulation::take_snapshot(Node& n) {
  raft::SnapshotMeta meta;
  meta.index = n.applied;
  meta.term = n.applied_term;
  meta.conf = n.raft->conf_state_at(n.applied);
  // As server/snapshot.cc: the active version's layout when the app can write it, so that a
  // binary that reads only that version loads it (an upgrade not yet activated can be
  // abandoned), else the binary's newest.
  meta.schema_version = core::snapshot_layout(*n.app, n.layout_refused);
  if (meta.conf != n.applied_conf) {
    fail("conf-at-applied", fmt::format("n{} core says membership at {} is {} but the applied log says {}", n.id, n.applied,
                                        conf_string(meta.conf), conf_string(n.applied_conf)));
    return;
  }
  if (opt_.sliced_snapshots && meta.schema_version == n.app->schema_version() && rng_.chance(500'000)) {
    // As server/snapshot.cc's start_sliced_snapshot: the engine part now, the app's in slices.
    if (std::unique_ptr<SaveProducer> p = n.app->begin_save()) {
      Encoder whole;
      core::save_state(*n.app, n.replica->requests(), whole);
      n.saving_expected = whole.take();
      Encoder engine;
      core::save_engine_part(*n.app, n.replica->requests(), engine);
      n.saving_bytes = engine.take();
      n.saving = std::move(p);
      n.saving_meta = meta;
      n.saving_from = n.applied;
      n.snapshot_in_flight = true;
      ev(54, n.id, meta.index, meta.term, [&] {
        return fmt::format("n{} begins a snapshot at {}/{} in slices", n.id, meta.index, meta.term);
      });
      return;
    }
  }
  Encoder enc;
  if (!core::save_state_at(*n.app, n.replica->requests(), meta.schema_version, enc)) {
    n.layout_refused = meta.schema_version;
    meta.schema_version = n.app->schema_version();
    enc = Encoder();
    core::save_state(*n.app, n.replica->requests(), enc);
  }
  Write w;
  w.local = raft::Snapshot{meta, enc.take()};
  w.done_at = disk_done_at(n, 1, 6);
  n.disk.pending.push_back(std::move(w));
  n.snapshot_in_flight = true;
}

void Simulation::advance_sliced_snapshot(Node& n) {
  if (!n.saving || !result_.ok) return;
  // The workload has three registers: a slice at one chance in four, of one or two, spreads
  // a snapshot over several turns and entries, so that writes land ahead of its cursor.
  if (!rng_.chance(kSliceChancePpm)) return;
  Encoder out;
  const bool done = n.saving->next(out, SliceBudget{.elements = rng_.range(1, 2), .bytes = SIZE_MAX});
  n.saving_bytes += out.take();
  if (!done) return;
  n.saving.reset();
  const raft::SnapshotMeta meta = n.saving_meta;
  if (opt_.protocol_checks && n.saving_bytes != n.saving_expected) {
    fail("sliced-snapshot", fmt::format("n{} wrote the snapshot at {}/{} in slices ({} bytes), entries up to {} applied "
                                        "meanwhile: not the bytes of a whole save at {} ({} bytes)", n.id, meta.index,
                                        meta.term, n.saving_bytes.size(), n.applied, meta.index, n.saving_expected.size()));
    return;
  }
  if (n.applied > n.saving_from) mark(Fault::kSlicedSnapshot);
  ev(55, n.id, meta.index, n.applied, [&] {
    return fmt::format("n{} wrote its snapshot at {} in slices (applied {} meanwhile)", n.id, meta.index, n.applied);
  });
  Write w;
  w.local = raft::Snapshot{meta, std::move(n.saving_bytes)};
  w.done_at = disk_done_at(n, 1, 6);
  n.disk.pending.push_back(std::move(w));
  n.saving_bytes.clear();
  n.saving_expected.clear();
}

void Simulation::abandon_sliced_snapshot(Node& n, const char* why) {
  if (!n.saving) return;
  n.saving.reset();  // before anything replaces the state (SaveProducer's contract)
  n.saving_bytes.clear();
  n.saving_expected.clear();
  n.snapshot_in_flight = false;
  if (!healing_) mark(Fault::kSlicedSnapshotAbandoned);
  ev(56, n.id, n.saving_meta.index, 0, [&] {
    return fmt::format("n{} abandons its snapshot at {} in slices ({})", n.id, n.saving_meta.index, why);
  });
}

// The disk pipelines requests and completes them in order: a write submitted now is durable
// after its own latency, but never before the writes submitted earlier (group commit: a
// burst of small writes shares one slow sync instead of queueing one sync each).
uint64_t Simulation::disk_done_at(Node& n, uint64_t lo, uint64_t hi) {
  bool slow = tick() < n.disk.slow_until_tick;
  uint64_t latency = slow ? rng_.range(2 * kUnitsPerTick, 20 * kUnitsPerTick) : rng_.range(lo, hi);
  uint64_t at = now_ + latency;
  if (!n.disk.pending.empty()) at = std::max(at, n.disk.pending.back().done_at);
  return at;
}

void Simulation::apply_write_to_disk(Node& n, Write& w) {
  Disk& d = n.disk;
  if (w.hard_state) {
    const HardState& hs = *w.hard_state;
    if (hs.term < d.hard_state.term ||
        (hs.term == d.hard_state.term && d.hard_state.vote != raft::kNoNode && hs.vote != d.hard_state.vote)) {
      fail("durable-term-vote", fmt::format("n{} durable hard state went from term={} vote={} to term={} vote={}", n.id,
                                            d.hard_state.term, d.hard_state.vote, hs.term, hs.vote));
      return;
    }
    d.hard_state = hs;
    n.promised_term = std::max(n.promised_term, hs.term);
  }
  if (w.install) {
    d.snapshot = w.install->meta;
    d.snapshot_files[w.install->meta.index] = {w.install->meta, w.install->data};
    d.entries.clear();  // the core replaced its whole log by the snapshot
  }
  if (w.local) {
    const raft::SnapshotMeta& m = w.local->meta;
    d.snapshot_files[m.index] = {m, w.local->data};
    if (m.index > d.snapshot_index()) {
      Index drop = std::min<Index>(m.index - d.snapshot_index(), d.entries.size());
      d.entries.erase(d.entries.begin(), d.entries.begin() + static_cast<ptrdiff_t>(drop));
      if (d.entries.empty() || d.entries.front().index != m.index + 1) d.entries.clear();
      d.snapshot = m;
    }
  }
  while (d.snapshot_files.size() > kMaxSnapshotsKept) d.snapshot_files.erase(d.snapshot_files.begin());
  for (const Entry& e : w.entries) {
    if (e.index <= d.snapshot_index()) continue;  // already covered by a newer snapshot
    if (e.index > d.last_index() + 1) {
      fail("durable-log-gap", fmt::format("n{} writes entry {} after durable last index {}", n.id, e.index, d.last_index()));
      return;
    }
    d.entries.resize(e.index - d.snapshot_index() - 1);
    d.entries.push_back(e);
  }
  if (!d.entries.empty() && d.entries.front().index != d.snapshot_index() + 1) {
    fail("durable-log-layout", fmt::format("n{} durable snapshot at {} but first entry {}", n.id, d.snapshot_index(),
                                           d.entries.front().index));
  }
}

void Simulation::complete_writes(Node& n) {
  // The disk goes on while the process is paused: writes become durable on time (a crash
  // keeps them), but the core hears of them only when it runs again.
  while (!n.disk.pending.empty() && n.disk.pending.front().done_at <= now_ && result_.ok) {
    Write w = std::move(n.disk.pending.front());
    n.disk.pending.pop_front();
    // The files first (the server's disk thread: append, fdatasync; compaction after a
    // snapshot), then the core's view of what is durable.
    n.dir->append(w.hard_state ? &*w.hard_state : nullptr, w.entries, true);
    if (w.install) n.dir->compact(w.install->meta.index - 1);  // as server/snapshot.cc: keeps the entry at the index
    if (w.local) {
      n.dir->save_snapshot(w.local->meta, w.local->data);
      n.dir->compact(w.local->meta.index);
    }
    apply_write_to_disk(n, w);
    for (Message& m : w.after) n.after_persist_out.push_back(std::move(m));
    if (w.local) n.saved_pending.push_back(w.local->meta);
    else n.ack_pending = true;
  }
  if (result_.ok && !n.paused) notify_disk(n);
}

void Simulation::notify_disk(Node& n) {
  if (!n.after_persist_out.empty()) {
    // As the server's disk thread: after the sync, before the loop hears of it.
    std::vector<Message> out = std::move(n.after_persist_out);
    n.after_persist_out.clear();
    for (Message& m : out) {
      if (!result_.ok) return;
      send(n, std::move(m));
    }
  }
  if (n.ack_pending) {
    n.ack_pending = false;
    raft::PersistAck ack;
    ack.last_index = n.disk.last_index();
    ack.last_term = n.disk.last_term();
    ack.hard_state = n.disk.hard_state;
    ev(50, n.id, ack.last_index, ack.last_term, [&] {
      return fmt::format("n{} persisted: log up to {}/{} term={} vote={}", n.id, ack.last_index, ack.last_term,
                         ack.hard_state.term, ack.hard_state.vote);
    });
    n.raft->persisted(ack);
    after_input(n);
    if (!result_.ok) return;
  }
  std::vector<raft::SnapshotMeta> saved = std::move(n.saved_pending);
  n.saved_pending.clear();
  for (const raft::SnapshotMeta& m : saved) {
    n.snapshot_in_flight = false;
    if (m.index <= n.snapshot_index) continue;  // an install overtook it
    n.snapshot_index = m.index;
    ev(51, n.id, m.index, m.term, [&] { return fmt::format("n{} snapshot saved at {}/{}", n.id, m.index, m.term); });
    n.raft->snapshot_saved(m);
    n.raft->free_dropped_entries(SIZE_MAX);  // the shell frees them over later turns; no I/O here
    nemesis_on_snapshot_saved(n, m);
  }
}

void Simulation::check_node(Node& n) {
  // The server's write tracking (core/write_tracker.h): every proposal still waited on
  // is in the core's log with its term. Else a client waits for an entry that is gone, and
  // a node that leads again proposes at an index somebody still waits on.
  std::optional<std::pair<Index, Term>> stale;
  n.replica->writes().for_each([&](Index i, const core::WriteTracker::Proposal& p) {
    auto t = n.mirror_term(i);
    if (!stale && (!t || *t != p.term)) stale = {i, p.term};
  });
  if (stale && opt_.protocol_checks) {
    fail("write-tracking", fmt::format("n{} still waits on its proposal {}/{}, but its log holds {} there", n.id,
                                       stale->first, stale->second,
                                       n.mirror_term(stale->first) ? fmt::format("term {}", *n.mirror_term(stale->first))
                                                                   : std::string("nothing")));
    return;
  }
  if (n.replica->writes().reused() > 0) {
    fail("write-index-reused", fmt::format("n{} proposed at an index a client still waited on (the server aborted here)", n.id));
    return;
  }
  raft::Status st = n.raft->status();
  if (st.term < n.last_term) {
    fail("term-monotonic", fmt::format("n{} term went back from {} to {}", n.id, n.last_term, st.term));
    return;
  }
  if (st.commit < n.last_commit) {
    fail("commit-monotonic", fmt::format("n{} commit went back from {} to {}", n.id, n.last_commit, st.commit));
    return;
  }
  Index prev_commit = n.last_commit;
  n.last_commit = st.commit;
  commit_terms_.observe(st.commit, st.term);
  // Raft §5.4.2 (Figure 8): a leader advances its commit index only to an entry of its own
  // term; older entries become committed only through one.
  if (opt_.protocol_checks && st.role == Role::kLeader && n.last_role == Role::kLeader && st.commit > prev_commit &&
      st.term == n.last_term) {
    auto t = n.mirror_term(st.commit);
    if (t && *t != st.term) {
      fail("commit-current-term", fmt::format("leader n{} of term {} advanced commit {} -> {} to an entry of term {}", n.id,
                                              st.term, prev_commit, st.commit, *t));
      return;
    }
  }
  // A leader commits on acknowledgements, which must stand for disks: a majority of the
  // voters' disks hold the entry it commits. An acknowledgement sent before the write was
  // durable, or one of entries its node lost since (a lying fsync, a broken recovery),
  // would not (nothing else undoes one: an acknowledged entry that commits is never
  // overwritten).
  if (st.role == Role::kLeader && st.commit > prev_commit && st.commit > n.mirror_base) {
    Term t = *n.mirror_term(st.commit);
    size_t hold = 0;
    for (NodeId v : st.conf.voters) {
      if (v > kMaxNodes || !nodes_[v].exists) continue;
      const Disk& d = nodes_[v].disk;
      Index c = st.commit;
      hold += c <= d.snapshot_index() || (c <= d.last_index() && d.entries[c - d.snapshot_index() - 1].term == t);
    }
    if (2 * hold <= st.conf.voters.size()) {
      fail("commit-on-majority-disks", fmt::format("leader n{} of term {} committed {}/{} but only {} of the {} voters' disks "
                                                   "hold it: it counted acknowledgements that do not stand for a disk",
                                         n.id, st.term, st.commit, t, hold, st.conf.voters.size()));
      return;
    }
  }
  n.last_term = st.term;
  // Figure 8 nemesis: sometimes crash a leader right after it advanced its commit index,
  // before the followers hear of it.
  if (st.role == Role::kLeader && st.commit > prev_commit && !crash_at_ && !healing_ && opt_.faults &&
      rng_.chance(prof_.crash_after_commit_ppm)) {
    crash_at_ = now_ + 1 + rng_.below(3);
    crash_node_ = n.id;
    crash_leader_ = true;
  }
  if ((opt_.protocol_checks && n.applied > st.commit) || st.commit > st.last_index) {
    fail("applied<=commit<=last", fmt::format("n{} applied={} commit={} last={}", n.id, n.applied, st.commit, st.last_index));
    return;
  }
  if (opt_.log_memory_bytes == 0 && st.first_index != n.snapshot_index + 1) {
    fail("snapshot+1==first", fmt::format("n{} snapshot index {} but first log index {}", n.id, n.snapshot_index, st.first_index));
    return;
  }
  // With the bound the core also drops entries without a snapshot: never before its newest
  // snapshot, never an entry not yet applied.
  if (opt_.log_memory_bytes != 0 &&
      (st.first_index < n.snapshot_index + 1 || (st.first_index > n.snapshot_index + 1 && st.first_index > n.applied + 1))) {
    fail("snapshot+1==first", fmt::format("n{} snapshot index {} applied {} but first log index {}", n.id, n.snapshot_index,
                                          n.applied, st.first_index));
    return;
  }
  if (st.last_index != n.mirror_last()) {
    fail("log-view", fmt::format("n{} core's last index {} but it asked to persist up to {}", n.id, st.last_index, n.mirror_last()));
    return;
  }
  if (st.role == Role::kLeader) {
    max_leader_term_ = std::max(max_leader_term_, st.term);
    auto [it, fresh] = leader_of_term_.try_emplace(st.term, n.id);
    if (!fresh && it->second != n.id) {
      fail("election-safety", fmt::format("n{} and n{} are both leaders of term {}", it->second, n.id, st.term));
      return;
    }
    if (n.last_role != Role::kLeader) {
      n.leader_since_tick = tick();
      ev(60, n.id, st.term, st.last_index, [&] {
        return fmt::format("n{} BECOMES LEADER of term {} (log up to {}, commit {})", n.id, st.term, st.last_index, st.commit);
      });
      if (transfer_target_ == n.id) { mark(Fault::kTransfer); transfer_target_ = 0; }
      if (opt_.fresh_leader_stalls && opt_.faults && !healing_ && !n.paused && !n.pause_at &&
          st.conf.voters.size() > 1 && rng_.chance(kFreshLeaderStallPpm)) {
        // Frozen at the end of this turn (the next unit's clocks), messages left unread.
        n.pause_at = now_;
        n.resume_at = now_ + rng_.range(kFreshLeaderStallTicksMin, kFreshLeaderStallTicksMax) * kUnitsPerTick;
        n.fresh_stall_term = st.term;
        ev(93, n.id, st.term, n.resume_at, [&] {
          return fmt::format("n{} STALLS right after its election in term {}, until {}.{}", n.id, st.term,
                             n.resume_at / kUnitsPerTick, n.resume_at % kUnitsPerTick);
        });
      }
      if (contains(st.conf.learners, n.id)) result_.learner_led = true;  // raft.cc: learner_may_campaign
      if (n.lost) {
        // The log it campaigned with: without the entries of its new term.
        Index last = n.mirror_last();
        while (last > n.mirror_base && *n.mirror_term(last) >= st.term) last--;
        if (behind_lost(n, *n.mirror_term(last), last)) {
          fail("lead-after-loss", fmt::format("n{} won term {} with a log up to {}/{}, behind the log up to {} its disk had "
                                              "acknowledged before it lost part of it", n.id, st.term, last,
                                              *n.mirror_term(last), n.lost_base + n.lost_terms.size()));
          return;
        }
      }
      // Leader completeness (§5.4.3): an entry committed in term T is in the log of every
      // leader of a term > T. A leader of an older term may lack it (a late vote; see
      // commit_terms.h), which the trace notes.
      Index known = committed_.size() - 1;
      Index required = std::min(known, commit_terms_.required_of_leader(st.term));
      if (required > n.mirror_last()) {
        fail("leader-completeness", fmt::format("n{} leads term {} with log up to {} but {} was committed in term {}", n.id,
                                                st.term, n.mirror_last(), required, commit_terms_.term_of(required)));
        return;
      }
      for (Index i = n.mirror_base + 1; i <= required; i++) {
        if (*n.mirror_term(i) != committed_[i].term) {
          fail("leader-completeness", fmt::format("n{} leads term {} but has {}/{} where {}/{} was committed in term {}", n.id,
                                                  st.term, i, *n.mirror_term(i), i, committed_[i].term,
                                                  commit_terms_.term_of(i)));
          return;
        }
      }
      for (Index i = std::max(required, n.mirror_base) + 1; i <= known; i++) {
        if (i <= n.mirror_last() && *n.mirror_term(i) == committed_[i].term) continue;
        result_.older_term_leader = true;
        ev(62, n.id, i, commit_terms_.term_of(i), [&] {
          return fmt::format("n{} leads term {} without committed entry {}/{}: legal, it was committed in term {}", n.id,
                             st.term, i, committed_[i].term, commit_terms_.term_of(i));
        });
        break;
      }
      nemesis_on_leader(n, st.term);
    }
  } else if (n.last_role != st.role) {
    ev(61, n.id, st.term, static_cast<uint64_t>(st.role),
       [&] { return fmt::format("n{} is now {} in term {}", n.id, role_name(st.role), st.term); });
  }
  n.last_role = st.role;
}

// ---------------------------------------------------------------------------------------
// Network

Term Simulation::member_max_term() const {
  Term t = 0;
  for (const Node& x : nodes_)
    if (x.exists && !x.removed) t = std::max(t, x.up ? x.raft->term() : x.disk.hard_state.term);
  return t;
}

void Simulation::deliver_due() {
  while (!net_.empty() && net_.top().at <= now_ && result_.ok) {
    InFlight f = std::move(const_cast<InFlight&>(net_.top()));
    net_.pop();
    const Message& m = f.msg;
    NodeId to = m.to, from = m.from;
    if (to == 0 || to > kMaxNodes || !nodes_[to].exists || !nodes_[to].up) continue;
    if (from <= kMaxNodes && cut_[from][to] > 0) {
      ev(31, from, to, 1, [&] { return fmt::format("n{} -> n{} {} [CUT]", from, to, msg_name(m.type)); });
      continue;
    }
    uint64_t& last = last_delivered_seq_[{from, to}];
    if (f.seq < last) mark(Fault::kReorder);
    last = std::max(last, f.seq);
    if (f.duplicate) mark(Fault::kDuplicate);
    Node& n = nodes_[to];
    if (n.paused) {  // it waits in the socket buffer
      n.inbox.push_back(std::move(f));
      continue;
    }
    step_message(n, f);
  }
}

void Simulation::step_message(Node& n, const InFlight& f) {
  const Message& m = f.msg;
  NodeId to = m.to, from = m.from;
  Term before = n.raft->term();
  // Only for messages from a removed node: the highest term any member has reached.
  Term member_max = f.from_removed_node ? member_max_term() : 0;
  ev(32, from, to, static_cast<uint64_t>(m.type), [&] {
    return fmt::format("n{} <- n{} {}{}", to, from, summarize(m), f.duplicate ? " [DUP]" : "");
  });
  if (n.lost && m.type == MessageType::kVote) n.vote_requests[{from, m.term}] = {m.log_term, m.log_index};
  if (m.type == MessageType::kSnapshot && m.snapshot_meta) {
    // The race raft.cc's last-chunk check is for: the log reached the snapshot's entry while
    // the earlier chunks were staged.
    auto here = n.mirror_term(m.snapshot_meta->index);
    if (m.snapshot_last && m.snapshot_offset > 0 && n.staging_open && n.staging_meta == *m.snapshot_meta && here &&
        *here == m.snapshot_meta->term) {
      mark(Fault::kLastChunkAtMatchingLog);
      // ... and past it, with a commit index below it (raft.cc answers a snapshot it has
      // committed at once): installing would cut what follows (install-over-matching-log).
      if (n.mirror_last() > m.snapshot_meta->index && n.raft->status().commit < m.snapshot_meta->index)
        mark(Fault::kLastChunkPastItsEntry);
    }
    if (n.last_chunk_at == now_ && n.last_chunk_was_last && !(n.last_chunk_meta == *m.snapshot_meta))
      mark(Fault::kChunksOfTwoSnapshots);
    n.last_chunk_at = now_;
    n.last_chunk_meta = *m.snapshot_meta;
    n.last_chunk_was_last = m.snapshot_last;
  }
  if (from < std::size(n.peer_newest)) n.peer_newest[from] = f.sender_newest;
  n.raft->step(m);
  if (n.refused_snapshot) note_refused_snapshot(n);
  after_input(n);
  if (!result_.ok) return;
  if ((m.type == MessageType::kVote || m.type == MessageType::kPreVote) && n.raft->votes_granted() != n.votes_granted_seen &&
      opt_.protocol_checks) {
    n.votes_granted_seen = n.raft->votes_granted();
    check_vote_during_lease(n, m);
    if (!result_.ok) return;
  }
  // A removed node must not disrupt the cluster: once it has applied its own removal, a
  // message from it may not push a member into a term that no member had reached (it may
  // relay the cluster's current term). Before it learns that its removal committed, it
  // is a voter in its own eyes and may legitimately campaign, as in every apply-time
  // membership scheme. A granted pre-vote is exempt (its term is the one the member asked
  // for), and so is TimeoutNow (a removed leader handing over). What the sender knew is
  // taken when it sent the message (it may arrive much later: delays, a paused receiver).
  bool granted_pre_vote = m.type == MessageType::kPreVoteResponse && !m.reject;
  bool handover = m.type == MessageType::kTimeoutNow;
  if (f.from_removed_node && !n.removed && !granted_pre_vote && !handover && n.raft->term() > before &&
      n.raft->term() > member_max) {
    fail("removed-node-disrupts", fmt::format("removed n{} pushed n{} from term {} to {}, beyond every member's term {}",
                                              from, to, before, n.raft->term(), member_max));
  }
}

// ---------------------------------------------------------------------------------------
// Forwarding links (Options::forward): what the server's ForwardLinks do with sockets, done
// between simulated nodes. A link is a client session on the node it goes to, marked by the
// forwarder's handshake (CLUSTER FORWARDER); its commands reach that node as a client's do
// (queued while it is paused), its replies go back to the forwarder as they are drained.
// Events are processed in order at one point of each unit, never from inside a core's call.
// Links ignore network partitions, as the simulated client connections do.

void Simulation::sync_forwarder(Node& n) {
  n.forwarder->set_time(now_);
  n.forwarder->set_leader(n.raft->leader(), n.raft->term());
}

bool Simulation::open_link(Node& n, uint64_t link, NodeId to) {
  if (to == 0 || to > kMaxNodes || !nodes_[to].exists) return false;  // no address known
  const uint64_t session = ++next_connection_;
  links_[session] = Link{n.id, n.incarnation, link, to, false};
  link_sessions_[{n.id, link}] = session;
  link_events_.push_back(LinkEvent{LinkEvent::kConnect, session, n.id, n.incarnation, link, {}});
  ev(81, n.id, to, session, [&] { return fmt::format("n{} dials n{} (forwarding link {}, session {})", n.id, to, link, session); });
  return true;
}

void Simulation::send_link(Node& n, uint64_t link, std::string_view bytes) {
  const auto origin = next_link_origin_;
  next_link_origin_.reset();
  auto it = link_sessions_.find({n.id, link});
  if (it == link_sessions_.end()) return;  // the node it went to crashed: its kBroken is on the way
  std::string buffer(bytes);
  std::vector<std::pair<uint64_t, uint64_t>>& origins = link_origins_[it->second];
  net::RespParser parser;
  std::vector<std::string_view> argv;
  std::string error;
  size_t at = 0;
  while (at < buffer.size()) {
    size_t used = 0;
    const net::RespParser::Result r = parser.parse(buffer.data() + at, buffer.size() - at, &used, &argv, &error);
    HMDB_ASSERT(r == net::RespParser::Result::kCommand, "a forwarder sent a partial or malformed command");
    at += used;
    if (argv.empty()) continue;
    origins.push_back(at == buffer.size() && origin ? *origin : std::make_pair(uint64_t{0}, uint64_t{0}));
    link_events_.push_back(LinkEvent{LinkEvent::kCommand, it->second, n.id, n.incarnation, link,
                                     std::vector<std::string>(argv.begin(), argv.end())});
  }
}

void Simulation::close_link(Node& n, uint64_t link) {
  auto it = link_sessions_.find({n.id, link});
  if (it == link_sessions_.end()) return;
  const uint64_t session = it->second;
  link_sessions_.erase(it);
  auto l = links_.find(session);
  if (l == links_.end()) return;
  link_events_.push_back(LinkEvent{LinkEvent::kCloseSession, session, l->second.to, nodes_[l->second.to].incarnation, 0, {}});
  links_.erase(l);  // commands still queued for it are dropped, replies ignored
}

void Simulation::drop_links(Node& n) {
  for (auto it = links_.begin(); it != links_.end();) {
    const Link& l = it->second;
    if (l.from == n.id) {
      // Its forwarder is gone with the process: the served node closes the session.
      link_events_.push_back(LinkEvent{LinkEvent::kCloseSession, it->first, l.to, nodes_[l.to].incarnation, 0, {}});
    } else if (l.to == n.id) {
      // The process it went to is gone: the forwarding node sees the connection reset.
      link_events_.push_back(LinkEvent{LinkEvent::kBroken, it->first, l.from, l.from_incarnation, l.link, {}});
    } else {
      ++it;
      continue;
    }
    link_sessions_.erase({l.from, l.link});
    it = links_.erase(it);
  }
}

void Simulation::process_link_events() {
  while (!link_events_.empty() && result_.ok) {
    LinkEvent e = std::move(link_events_.front());
    link_events_.pop_front();
    switch (e.kind) {
      case LinkEvent::kConnect: {
        auto it = links_.find(e.session);
        if (it == links_.end()) break;  // closed meanwhile
        Link& l = it->second;
        Node& from = nodes_[l.from];
        Node& to = nodes_[l.to];
        if (!from.up || from.incarnation != l.from_incarnation) break;  // drop_links took care
        if (to.up && to.listening) {
          l.connected = true;
          to.sessions[e.session].id = e.session;
          link_input(from, Node::LinkInput{Node::LinkInput::kConnected, l.link, {}});
        } else {  // connection refused
          result_.forward_links_broken++;
          link_sessions_.erase({l.from, l.link});
          const uint64_t link = l.link;
          links_.erase(it);
          link_input(from, Node::LinkInput{Node::LinkInput::kBroken, link, {}});
        }
        break;
      }
      case LinkEvent::kCommand: {
        auto it = links_.find(e.session);
        if (it == links_.end() || !it->second.connected) break;
        Node& to = nodes_[it->second.to];
        if (to.up) send_command(to, e.session, std::move(e.words));
        break;
      }
      case LinkEvent::kBroken: {
        result_.forward_links_broken++;
        Node& from = nodes_[e.node];
        if (from.up && from.incarnation == e.incarnation && from.forwarder)
          link_input(from, Node::LinkInput{Node::LinkInput::kBroken, e.link, {}});
        break;
      }
      case LinkEvent::kCloseSession: {
        Node& to = nodes_[e.node];
        if (to.up && to.incarnation == e.incarnation) to.sessions.erase(e.session);
        break;
      }
    }
  }
}

// The replies the node served a link with, drained in order: each goes to the forwarder.
void Simulation::read_link_replies(Node& to, core::ClientSession& s) {
  const Link l = links_.at(s.id);
  std::string& out = s.replies.out();
  Node& from = nodes_[l.from];
  if (!from.up || from.incarnation != l.from_incarnation) {
    out.clear();
    return;
  }
  size_t used = 0;
  while (result_.ok && used < out.size()) {
    net::ScannedReply reply;
    const net::ScanResult r = net::scan_reply(out.data() + used, out.size() - used, &reply);
    if (r == net::ScanResult::kIncomplete) break;
    if (r == net::ScanResult::kMalformed) {
      fail("forward-reply", fmt::format("n{} sent n{}'s forwarding link {} bytes that are not RESP: {}", to.id, l.from,
                                        l.link, out.substr(used, 80)));
      return;
    }
    link_input(from, Node::LinkInput{Node::LinkInput::kReply, l.link, out.substr(used, reply.length)});
    used += reply.length;
    if (!links_.count(s.id)) break;  // the forwarder closed it (a former leader's, drained)
  }
  out.erase(0, used);
}

void Simulation::link_input(Node& from, Node::LinkInput in) {
  if (from.paused) {
    from.link_inbox.push_back(std::move(in));  // its socket buffers hold it
    return;
  }
  deliver_link_input(from, in);
}

void Simulation::deliver_link_input(Node& from, const Node::LinkInput& in) {
  switch (in.kind) {
    case Node::LinkInput::kConnected: from.forwarder->link_connected(in.link); break;
    case Node::LinkInput::kBroken: from.forwarder->link_broken(in.link); break;
    case Node::LinkInput::kReply:
      if (!link_sessions_.count({from.id, in.link})) break;  // closed or broken meanwhile: the reply is gone with it
      if (!from.forwarder->link_reply(in.link, in.reply))
        fail("forward-reply", fmt::format("n{}'s forwarding link {} got a reply it does not wait for: {}", from.id,
                                          in.link, in.reply.substr(0, 80)));
      break;
  }
}

// ---------------------------------------------------------------------------------------
// Clients

void Simulation::conclude(uint32_t op, OpOutcome outcome, std::optional<int64_t> result) {
  OpMeta& m = meta_[op];
  HistoryOp& h = history_[op];
  if (m.concluded) return;
  m.concluded = true;
  h.outcome = outcome;
  h.result = result;
  h.ret = ++event_seq_;
  ev(70, h.client, op, static_cast<uint64_t>(outcome), [&] { return "client returns " + describe(h); });
  result_.client_ok += outcome == OpOutcome::kOk;
  result_.client_failed += outcome == OpOutcome::kFailed;
  result_.client_unknown += outcome == OpOutcome::kUnknown;
}

void Simulation::retry_or_conclude(uint32_t op, OpOutcome outcome) {
  OpMeta& m = meta_[op];
  if (m.concluded) return;
  if (outcome == OpOutcome::kUnknown) m.maybe_applied = true;
  if (m.retry_pending) return;  // its next attempt is on its way already
  // An untagged write, or one that provably never took effect: the op ends here.
  if (m.request_id.empty() || !m.maybe_applied) {
    conclude(op, outcome, std::nullopt);
    return;
  }
  if (m.attempts >= kRequestAttemptsMax) {
    conclude(op, OpOutcome::kUnknown, std::nullopt);
    return;
  }
  m.retry_pending = true;
  m.retry_tick = tick() + kRequestRetryPauseTicks;
  retries_.push_back(op);
  ev(75, history_[op].client, op, m.attempts, [&] {
    return fmt::format("client c{} will retry {} ({}, attempt {})", history_[op].client, describe(history_[op]),
                       m.request_id, m.attempts + 1);
  });
}

void Simulation::check_exactly_once(Node& n, const Entry& e) {
  if (e.type != EntryType::kNormal) return;
  core::BatchReader reader(e.data);
  // The model keeps every id; the request table forgets one kRequestRetentionMs of leader
  // time after it was applied. Runs are far shorter; one that is not would need the model
  // to forget too, rather than report a false failure.
  if (reader.ok() && reader.leader_time_ms() >= core::kRequestRetentionMs) {
    fail("exactly-once", fmt::format("entry {}/{} has leader time {} ms, past the request table's retention: the "
                                     "check's model does not evict", e.index, e.term, reader.leader_time_ms()));
    return;
  }
  core::BatchStep step;
  bool skip = false;  // the item is tagged with an id the log carried before: no effect
  while (reader.next(step)) {
    const bool starts_item = step.kind == core::BatchStep::Kind::kCommand || step.kind == core::BatchStep::Kind::kGroupBegin;
    if (starts_item) skip = step.tagged() && !model_requests_.emplace(step.request_id).second;
    if (skip || (step.kind != core::BatchStep::Kind::kCommand && step.kind != core::BatchStep::Kind::kGroupCommand)) continue;
    // The register app's writes (validated before they were logged).
    int64_t v = 0;
    if (step.argv.size() == 3 && iequals(step.argv[0], "SET") && parse_int64(step.argv[2], &v))
      model_.values[std::string(step.argv[1])] = v;
    else if (step.argv.size() == 2 && iequals(step.argv[0], "INCR"))
      model_.values[std::string(step.argv[1])]++;
    else if (step.argv.size() >= 3 && iequals(step.argv[0], "SUMSTORE")) {  // Options::sliced_writes
      uint64_t sum = 0;
      for (size_t i = 2; i < step.argv.size(); i++) {
        auto it = model_.values.find(std::string(step.argv[i]));
        sum = (sum + static_cast<uint64_t>(it == model_.values.end() ? 0 : it->second)) % static_cast<uint64_t>(kSumModulus);
      }
      model_.values[std::string(step.argv[1])] = static_cast<int64_t>(sum);
    }
  }
  if (!reader.ok()) return;  // entry-payload reports it
  const auto values = register_values(*n.app);
  if (values == model_.values) return;
  std::string diff;
  for (const auto& [key, v] : model_.values) {
    auto it = values.find(key);
    if (it == values.end() || it->second != v)
      diff += fmt::format(" {}={} (model {})", key, it == values.end() ? std::string("absent") : std::to_string(it->second), v);
  }
  for (const auto& [key, v] : values)
    if (!model_.values.count(key)) diff += fmt::format(" {}={} (not in the model)", key, v);
  fail("exactly-once", fmt::format("n{} after applying {}/{}:{}; a tagged write took effect twice, or a write took "
                                   "effect other than once", n.id, e.index, e.term, diff));
}

bool Simulation::busy(const Client& c) const {
  auto it = connections_.find(c.connection);
  return it != connections_.end() && it->second.open && !it->second.waiting.empty();
}

// A client sends op on its connection: the one it has (ops are pipelined on it, in order),
// else a new one to the node it believes leads (a redirect's hint), or to any node.
void Simulation::submit(Client& c, uint32_t op) {
  auto open = connections_.find(c.connection);
  if (open != connections_.end() && !open->second.open) open = connections_.end();
  if (open != connections_.end() && open->second.waiting.empty() &&
      (c.guess != 0 && c.guess != open->second.node)) {
    close_connection(c.connection);  // idle, and the leader is elsewhere: reconnect there
    open = connections_.end();
  }
  if (open == connections_.end()) {
    if (c.guess == 0 || c.guess > kMaxNodes || !nodes_[c.guess].exists) {
      std::vector<NodeId> all;
      for (const Node& x : nodes_) if (x.exists && !x.removed) all.push_back(x.id);
      c.guess = all[rng_.below(all.size())];
    }
    Node& target = nodes_[c.guess];
    if (!target.up || !target.listening) {  // connection refused: nothing was sent
      meta_[op].node = target.id;
      ev(72, c.id, op, target.id, [&] { return fmt::format("client c{} cannot connect to n{} [{}]", c.id, target.id, history_[op].invoke); });
      c.guess = 0;
      meta_[op].attempts++;
      retry_or_conclude(op, OpOutcome::kFailed);
      return;
    }
    c.connection = ++next_connection_;
    Connection& conn = connections_[c.connection];
    conn.client = c.id;
    conn.node = target.id;
    target.sessions[c.connection].id = c.connection;
  }
  Connection& conn = connections_[c.connection];
  Node& n = nodes_[conn.node];
  meta_[op].node = n.id;
  meta_[op].deadline_tick = tick() + kClientTimeoutTicks;
  meta_[op].attempts++;
  const HistoryOp& h = history_[op];
  std::vector<std::string> words;
  if (h.kind == OpKind::kSet) words = {"SET", h.key, std::to_string(h.arg)};
  else if (h.kind == OpKind::kIncr) words = {"INCR", h.key};
  else if (h.kind == OpKind::kSumStore) {
    words = {"SUMSTORE", h.key};
    for (uint32_t i = 0; i < kSumStoreRounds; i++) words.insert(words.end(), std::begin(kKeys), std::end(kKeys));
  }
  else if (h.key == kAllKeys) {
    words = {"MGET"};
    words.insert(words.end(), std::begin(kKeys), std::end(kKeys));
  }
  else words = {"GET", h.key};
  const std::string& request_id = meta_[op].request_id;  // tags the write, or its transaction's EXEC
  const bool in_transaction = opt_.transactions && op % 3 == 2;
  if (!request_id.empty() && !in_transaction) words.insert(words.begin(), {"HMDB.REQ", request_id});
  ev(72, c.id, op, n.id, [&] {
    return fmt::format("client c{} invokes {} via n{} (connection {}, {} waiting) [{}]", c.id, fmt::join(words, " "), n.id,
                       c.connection, conn.waiting.size(), h.invoke);
  });
  if (opt_.slow_readers && h.key == kAllKeys && rng_.chance(500'000)) {
    conn.unread_until = now_ + rng_.range(1, kSlowReaderStallTicksMax) * kUnitsPerTick;
    if (std::find(unread_.begin(), unread_.end(), c.connection) == unread_.end()) unread_.push_back(c.connection);
    ev(75, c.id, op, conn.unread_until, [&] {
      return fmt::format("client c{} stops reading connection {} until {}.{}", c.id, c.connection,
                         conn.unread_until / kUnitsPerTick, conn.unread_until % kUnitsPerTick);
    });
  }
  if (in_transaction) {  // a transaction of one command: MULTI, the op, EXEC
    for (Connection::Role role : {Connection::kQueued, Connection::kQueued, Connection::kExec}) {
      conn.ops_by_seq.push_back(op);
      conn.waiting.push_back(op);
      conn.roles.push_back(role);
    }
    send_command(n, c.connection, {"MULTI"});
    send_command(n, c.connection, std::move(words));
    if (request_id.empty()) send_command(n, c.connection, {"EXEC"});
    else send_command(n, c.connection, {"HMDB.REQ", request_id, "EXEC"});
    return;
  }
  conn.ops_by_seq.push_back(op);
  conn.waiting.push_back(op);
  conn.roles.push_back(Connection::kOwn);
  send_command(n, c.connection, std::move(words));
}

// The command reaches the node's socket: read now, or when a paused process resumes.
void Simulation::send_command(Node& n, uint64_t connection, std::vector<std::string> words) {
  if (n.paused) {
    n.queued_commands.emplace_back(connection, std::move(words));
    return;
  }
  auto s = n.sessions.find(connection);
  if (s == n.sessions.end()) return;  // closed meanwhile
  std::vector<std::string_view> argv(words.begin(), words.end());
  n.replica->set_time(now_, now_);
  n.replica->command(s->second, Args(argv.data(), argv.size()));
}

void Simulation::close_connection(uint64_t connection) {
  auto it = connections_.find(connection);
  if (it == connections_.end() || !it->second.open) return;
  Node& n = nodes_[it->second.node];
  n.sessions.erase(connection);  // replies still owed to it are dropped, as the server drops them
  if (n.up && n.forwarder) n.forwarder->session_closed(connection);  // as server/client_io.cc
  if (it->second.client != kProbeClient && clients_[it->second.client].connection == connection)
    clients_[it->second.client].connection = 0;
  if (probe_connection_ == connection) probe_connection_ = 0;
  it->second.open = false;
  it->second.waiting.clear();
  it->second.roles.clear();
}

// The client gives up on its connection (a timeout, or the node reset it): what waited on
// it may or may not have happened (a write), or is simply not known (a read: no effect).
void Simulation::abandon(uint64_t connection, const char* why) {
  auto it = connections_.find(connection);
  if (it == connections_.end() || !it->second.open) return;
  std::deque<uint32_t> waiting = std::move(it->second.waiting);
  it->second.roles.clear();
  ev(73, it->second.client, connection, waiting.size(), [&] {
    return fmt::format("connection {} to n{} abandoned ({}), {} waiting", connection, it->second.node, why, waiting.size());
  });
  for (uint32_t op : waiting) {
    if (op == kProbeOp) continue;
    if (history_[op].kind == OpKind::kGet) conclude(op, OpOutcome::kFailed, std::nullopt);
    else retry_or_conclude(op, OpOutcome::kUnknown);  // once per op (a transaction's op waits thrice)
  }
  if (it->second.client != kProbeClient) clients_[it->second.client].guess = 0;
  close_connection(connection);
}

void Simulation::resume_slow_readers() {
  for (size_t i = 0; i < unread_.size();) {
    auto it = connections_.find(unread_[i]);
    if (it == connections_.end() || !it->second.open) {
      unread_.erase(unread_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    Connection& conn = it->second;
    Node& n = nodes_[conn.node];
    if (now_ < conn.unread_until || !n.running()) {  // (a paused node sends nothing meanwhile)
      i++;
      continue;
    }
    const uint64_t id = unread_[i];
    conn.unread_until = 0;
    unread_.erase(unread_.begin() + static_cast<std::ptrdiff_t>(i));
    ev(75, conn.client, id, 0, [&] { return fmt::format("connection {} is read again", id); });
    auto s = n.sessions.find(id);
    if (s != n.sessions.end()) read_replies(n, s->second);
    if (!result_.ok) return;
  }
}

// The node's replica moved finished replies to the session's output, in request order: each
// answers the oldest op waiting on that connection.
void Simulation::read_replies(Node& n, core::ClientSession& s) {
  if (links_.count(s.id)) {
    read_link_replies(n, s);
    return;
  }
  auto it = connections_.find(s.id);
  if (it == connections_.end() || !it->second.open) return;
  Connection& conn = it->second;
  if (now_ < conn.unread_until) return;  // a slow reader (Options::slow_readers): later
  std::string& out = s.replies.out();
  size_t used = 0;
  while (result_.ok && used < out.size()) {
    net::RespReply reply;
    int64_t k = net::decode_reply(std::string_view(out).substr(used), &reply);
    if (k == 0) break;
    if (k < 0 || conn.waiting.empty()) {
      fail("app-reply", fmt::format("n{} sent connection {} a reply nobody waits for, or not RESP: {}", n.id, s.id,
                                    out.substr(used, 80)));
      return;
    }
    used += static_cast<size_t>(k);
    const uint32_t op = conn.waiting.front();
    const Connection::Role role = conn.roles.front();
    conn.waiting.pop_front();
    conn.roles.pop_front();
    if (role == Connection::kOwn) answer(conn, op, reply);
    else answer_in_transaction(conn, op, role, reply);
  }
  out.erase(0, used);
}

// What a reply tells the client, as a Redis client library reads it.
void Simulation::answer(Connection& conn, uint32_t op, const net::RespReply& reply) {
  if (op == kProbeOp) {
    ev(74, conn.node, reply.is_error(), 0, [&] { return fmt::format("probe on n{} answered {}{}", conn.node, reply.type, reply.text); });
    if (!reply.is_error()) probe_done_ = true;
    else probe_connection_ = 0;  // sent again, to whoever leads
    return;
  }
  const HistoryOp& h = history_[op];
  Client& c = clients_[conn.client];
  if (reply.is_error()) {
    const std::string& e = reply.text;
    if (e.starts_with("MOVED ")) {  // "MOVED <slot> n<id>": the leader is there
      size_t at = e.rfind(" n");
      c.guess = at == std::string::npos ? 0 : static_cast<NodeId>(std::strtoull(e.c_str() + at + 2, nullptr, 10));
      retry_or_conclude(op, OpOutcome::kFailed);
    } else if (e.starts_with("CLUSTERDOWN") || e.starts_with("TRYAGAIN") ||
               e.starts_with("ERR write lost in a leadership change")) {
      c.guess = 0;
      retry_or_conclude(op, OpOutcome::kFailed);  // not executed, or provably without effect
    } else if (e.starts_with("ERR this node stopped applying")) {  // blocked (Options::upgrade): refused
      c.guess = 0;
      retry_or_conclude(op, OpOutcome::kFailed);
    } else if (e.starts_with("LOADING ")) {  // refused before it was run, as Redis while it loads
      mark(Fault::kLoadingRefused);
      retry_or_conclude(op, OpOutcome::kFailed);
    } else if (e.starts_with("ERR write outcome unknown") && h.kind != OpKind::kGet) {
      c.guess = 0;
      retry_or_conclude(op, OpOutcome::kUnknown);
    } else if (e.starts_with("ERR the connection to the leader closed before the reply") && h.kind == OpKind::kGet) {
      conclude(op, OpOutcome::kFailed, std::nullopt);  // a forwarded read whose answer was lost: no effect
    } else {
      fail("app-reply", fmt::format("n{} answered {} with -{}", conn.node, describe(h), e));
    }
    return;
  }
  std::optional<int64_t> value;
  bool ok = false;
  switch (h.kind) {
    case OpKind::kSet: ok = reply.type == '+' && reply.text == "OK"; break;
    case OpKind::kIncr:
    case OpKind::kSumStore:
      ok = reply.type == ':';
      value = reply.integer;
      break;
    case OpKind::kGet:  // the register app answers an integer, or nil
      if (h.key == kAllKeys) {
        answer_mget(conn, op, reply);
        return;
      }
      if (reply.type == '$' && reply.null) {
        ok = true;
      } else if (reply.type == ':') {
        ok = true;
        value = reply.integer;
      }
      break;
  }
  if (!ok) {
    fail("app-reply", fmt::format("n{} answered {} with {}{}", conn.node, describe(h), reply.type, reply.text));
    return;
  }
  conclude(op, OpOutcome::kOk, value);
}

// MGET's reply: [changes, a, b, c, changes] (sim/register_app.h). Equal change counts: no
// write was applied on that node between the first and the last slice of the reply. Each
// value is then a GET of its key for the linearizability check, over the MGET's interval.
void Simulation::answer_mget(Connection& conn, uint32_t op, const net::RespReply& reply) {
  const size_t keys = std::size(kKeys);
  const HistoryOp& h = history_[op];
  bool ok = reply.type == '*' && !reply.null && reply.elements.size() == keys + 2 &&
            reply.elements.front().type == ':' && reply.elements.back().type == ':';
  for (size_t i = 1; ok && i <= keys; i++) {
    const net::RespReply& e = reply.elements[i];
    ok = e.type == ':' || (e.type == '$' && e.null);
  }
  if (!ok) {
    fail("app-reply", fmt::format("n{} answered {} with {}{} ({} elements)", conn.node, describe(h), reply.type,
                                  reply.text, reply.elements.size()));
    return;
  }
  const int64_t first = reply.elements.front().integer, last = reply.elements.back().integer;
  if (first != last) {
    fail("sliced-read", fmt::format("n{} answered MGET with values of changing state: its change count was {} at the "
                                    "first slice and {} at the last (writes applied while the reply was made)",
                                    conn.node, first, last));
    return;
  }
  conclude(op, OpOutcome::kOk, std::nullopt);
  for (size_t i = 0; i < keys; i++) {
    HistoryOp read = history_[op];
    read.key = kKeys[i];
    const net::RespReply& e = reply.elements[i + 1];
    read.result = e.type == ':' ? std::optional<int64_t>(e.integer) : std::nullopt;
    mget_reads_.push_back(std::move(read));
  }
}

// A reply to an op sent as a transaction of one command (Options::transactions). MULTI's +OK
// and the op's +QUEUED carry nothing; an error there (the node does not lead: -MOVED or
// -CLUSTERDOWN) ends the op, and EXEC's -EXECABORT after it is expected. EXEC's array holds
// the op's reply; an error instead of it ends the op as it would end a write's (a redirect,
// or a group replaced in a leadership change), a GET's unknown outcome as a failed read.
void Simulation::answer_in_transaction(Connection& conn, uint32_t op, Connection::Role role,
                                       const net::RespReply& reply) {
  const HistoryOp& h = history_[op];
  if (role == Connection::kQueued) {
    if (reply.is_error()) answer(conn, op, reply);
    else if (!(reply.type == '+' && (reply.text == "OK" || reply.text == "QUEUED")))
      fail("app-reply", fmt::format("n{} answered MULTI or a queued {} with {}{}", conn.node, describe(h), reply.type,
                                    reply.text));
    return;
  }
  if (reply.is_error()) {
    if ((meta_[op].concluded || meta_[op].retry_pending) && reply.text.starts_with("EXECABORT"))
      return;  // its queueing was refused
    if (reply.text.starts_with("EXECABORT")) {
      // A forwarded transaction refused whole (the node it reached did not lead, or this
      // node led before it was sent): nothing of it ran.
      retry_or_conclude(op, OpOutcome::kFailed);
      return;
    }
    if (h.kind == OpKind::kGet && (reply.text.starts_with("ERR write outcome unknown") ||
                                   reply.text.starts_with("ERR write lost in a leadership change"))) {
      conclude(op, OpOutcome::kFailed, std::nullopt);  // a read that did not happen, or whose answer is lost
      clients_[conn.client].guess = 0;
      return;
    }
    answer(conn, op, reply);
    return;
  }
  if (reply.type != '*' || reply.null || reply.elements.size() != 1) {
    fail("app-reply", fmt::format("n{} answered the EXEC of {} with {}{} ({} elements)", conn.node, describe(h),
                                  reply.type, reply.text, reply.elements.size()));
    return;
  }
  answer(conn, op, reply.elements[0]);
}

// After the heal: a write of the liveness probe on the leader, sent again if the leader
// changed or the write failed, until one succeeds.
void Simulation::probe() {
  Node* l = leader();
  if (!l || !l->running() || probe_done_) return;
  if (probe_connection_ != 0) {
    const Connection& c = connections_[probe_connection_];
    if (c.node == l->id && probe_term_sent_ == l->raft->term()) return;  // still waiting for it
    close_connection(probe_connection_);
  }
  probe_connection_ = ++next_connection_;
  Connection& conn = connections_[probe_connection_];
  conn.client = kProbeClient;
  conn.node = l->id;
  conn.ops_by_seq.push_back(kProbeOp);
  conn.waiting.push_back(kProbeOp);
  conn.roles.push_back(Connection::kOwn);
  l->sessions[probe_connection_].id = probe_connection_;
  probe_term_sent_ = l->raft->term();
  send_command(*l, probe_connection_, {"SET", kProbeKey, std::to_string(++probe_seq_)});
}

void Simulation::clients_tick() {
  for (Client& c : clients_) {
    auto open = connections_.find(c.connection);
    if (open != connections_.end() && !open->second.open) open = connections_.end();
    if (open != connections_.end() && !open->second.waiting.empty() &&
        tick() >= meta_[open->second.waiting.front()].deadline_tick) {
      abandon(c.connection, "timeout");
      continue;
    }
    // A retry (Options::request_ids) goes out once nothing else waits on the connection, so
    // that no reply of an earlier attempt can arrive after it.
    auto retry = std::find_if(retries_.begin(), retries_.end(), [&](uint32_t op) { return history_[op].client == c.id; });
    if (retry != retries_.end()) {
      if (tick() < meta_[*retry].retry_tick || (open != connections_.end() && !open->second.waiting.empty())) continue;
      const uint32_t op = *retry;
      retries_.erase(retry);
      meta_[op].retry_pending = false;
      submit(c, op);
      continue;
    }
    // One op at a time, or up to the seed's pipeline depth on the open connection.
    const size_t waiting = open == connections_.end() ? 0 : open->second.waiting.size();
    if (waiting >= prof_.pipeline_depth) continue;
    if (healing_ || history_.size() >= opt_.max_client_ops || !rng_.chance(prof_.client_ppm)) continue;
    HistoryOp h;
    h.client = c.id;
    h.key = kKeys[rng_.below(std::size(kKeys))];
    uint64_t r = rng_.below(10);
    h.kind = r < 4 ? OpKind::kGet : r < 7 ? OpKind::kSet : OpKind::kIncr;
    if (opt_.sliced_reads && r == 0) h.key = kAllKeys;
    if (opt_.sliced_writes && r == 9) h.kind = OpKind::kSumStore;  // of every key, into h.key
    h.arg = static_cast<int64_t>((c.id + 1) * 1'000'000 + ++c.seq);
    h.invoke = ++event_seq_;
    h.outcome = OpOutcome::kUnknown;
    uint32_t op = static_cast<uint32_t>(history_.size());
    history_.push_back(h);
    meta_.push_back(OpMeta{});
    if (opt_.request_ids && h.kind != OpKind::kGet) meta_.back().request_id = fmt::format("c{}-op{}", c.id, op);
    result_.client_ops++;
    submit(c, op);
  }
}

// ---------------------------------------------------------------------------------------
// Faults

std::vector<NodeId> Simulation::live_ids() const {
  std::vector<NodeId> ids;
  for (const Node& n : nodes_) if (n.exists && n.up) ids.push_back(n.id);
  return ids;
}

Node* Simulation::leader() {
  Node* best = nullptr;
  for (Node& n : nodes_)
    if (n.exists && n.running() && n.raft->role() == Role::kLeader && n.raft->may_lead() &&
        (!best || n.raft->term() > best->raft->term()))
      best = &n;
  return best;
}

void Simulation::heal_all() {
  partitions_.clear();
  std::memset(cut_, 0, sizeof cut_);
}

uint64_t Simulation::add_partition(std::vector<std::pair<NodeId, NodeId>> links, uint64_t until_tick) {
  std::sort(links.begin(), links.end());
  links.erase(std::unique(links.begin(), links.end()), links.end());
  for (auto [a, b] : links) cut_[a][b]++;
  partitions_.push_back(Partition{++partition_seq_, until_tick, std::move(links)});
  return partition_seq_;
}

void Simulation::end_partition(uint64_t id) {
  auto it = std::find_if(partitions_.begin(), partitions_.end(), [&](const Partition& p) { return p.id == id; });
  if (it == partitions_.end()) return;
  for (auto [a, b] : it->links) cut_[a][b]--;
  partitions_.erase(it);
  ev(80, 0, id, partitions_.size(), [&] {
    return fmt::format("partition #{} healed ({} still in force)", id, partitions_.size());
  });
}

void Simulation::start_random_partition() {
  std::vector<NodeId> members;
  for (const Node& n : nodes_) if (n.exists && !n.removed) members.push_back(n.id);
  uint64_t until = tick() + rng_.range(5, 6 * kElectionTicks);
  uint64_t kind = rng_.below(4);
  Node* l = leader();
  if (kind == 3 && !l) kind = 0;
  std::vector<std::pair<NodeId, NodeId>> links;
  auto both = [&](NodeId a, NodeId b) { links.emplace_back(a, b); links.emplace_back(b, a); };
  std::string what;
  if (kind == 0) {  // symmetric split into two sides
    std::vector<bool> side(kMaxNodes + 1);
    for (NodeId id : members) side[id] = rng_.below(2);
    bool split = false;
    for (NodeId id : members) split |= side[id] != side[members[0]];
    if (!split) side[members[rng_.below(members.size())]] = !side[members[0]];  // two real sides
    for (NodeId a : members)
      for (NodeId b : members)
        if (side[a] != side[b]) links.emplace_back(a, b);
    mark(Fault::kPartition);
    what = "symmetric split:";
    for (NodeId id : members) what += fmt::format(" n{}={}", id, side[id] ? "B" : "A");
  } else if (kind == 1) {  // asymmetric: some links one way only
    for (NodeId a : members)
      for (NodeId b : members)
        if (a != b && rng_.chance(300'000)) { links.emplace_back(a, b); what += fmt::format(" n{}-x->n{}", a, b); }
    mark(Fault::kAsymmetricPartition);
    what = "asymmetric:" + what;
  } else if (kind == 2) {  // isolate one node
    NodeId x = members[rng_.below(members.size())];
    for (NodeId b : members) if (b != x) both(x, b);
    mark(Fault::kIsolateNode);
    mark(Fault::kPartition);
    what = fmt::format("isolate n{}", x);
  } else {  // cut the leader from a majority: it keeps at most one peer
    NodeId x = l->id;
    std::vector<NodeId> others;
    for (NodeId b : members) if (b != x) others.push_back(b);
    NodeId keep = others.empty() ? 0 : others[rng_.below(others.size())];
    for (NodeId b : others) if (b != keep || others.size() < 3) both(x, b);
    mark(Fault::kCutLeader);
    mark(Fault::kPartition);
    what = others.size() < 3 ? fmt::format("cut leader n{} from every peer", x)
                             : fmt::format("cut leader n{} from the majority (keeps n{})", x, keep);
  }
  if (!partitions_.empty()) mark(Fault::kOverlappingPartitions);
  uint64_t id = add_partition(std::move(links), until);
  ev(81, id, kind, until, [&] {
    return fmt::format("PARTITION #{} {} until tick {} ({} in force)", id, what, until, partitions_.size());
  });
}

// Cuts `side` off from every other node, both ways, until the nemesis ends the partition.
uint64_t Simulation::cut_off(const std::vector<NodeId>& side) {
  std::vector<std::pair<NodeId, NodeId>> links;
  for (NodeId a : side)
    for (const Node& b : nodes_)
      if (b.exists && !contains(side, b.id)) { links.emplace_back(a, b.id); links.emplace_back(b.id, a); }
  if (!partitions_.empty()) mark(Fault::kOverlappingPartitions);
  mark(Fault::kPartition);
  uint64_t id = add_partition(std::move(links), UINT64_MAX);
  ev(85, id, side.size(), 0, [&] {
    return fmt::format("NEMESIS PARTITION #{} cuts {{n{}}} off ({} in force)", id, fmt::join(side, ",n"), partitions_.size());
  });
  return id;
}

// A write of the nemesis's own (not a client's: no one waits for it), so that a leader it
// cuts off holds entries that no other node has.
void Simulation::propose_nemesis_write(Node& n) {
  if (!n.up || n.raft->role() != Role::kLeader) return;
  core::BatchBuilder b(now_);
  std::string v = std::to_string(++nemesis_seq_);
  std::string_view argv[3] = {"SET", kNemesisKey, v};
  b.add(Args(argv, 3));
  raft::ProposeResult r = n.raft->propose(EntryType::kNormal, n.app->active_schema_version(), b.finish());
  ev(86, n.id, r.index, static_cast<uint64_t>(r.error), [&] {
    return fmt::format("n{} nemesis write -> {}", n.id, r.error == raft::ProposeError::kNone
                                                         ? fmt::format("index {} term {}", r.index, r.term)
                                                         : fmt::format("refused ({})", static_cast<int>(r.error)));
  });
}

// Picks a side for a leader to be cut off with: itself and up to a minority's worth of other
// voters (so that the rest, with the other side back, can still elect a leader).
std::vector<NodeId> pick_side(Rng& rng, NodeId leader, const std::vector<NodeId>& voters,
                                     const std::vector<NodeId>& exclude) {
  std::vector<NodeId> side{leader};
  size_t minority = (voters.size() - 1) / 2;
  size_t extra = minority > 1 ? rng.below(minority) : 0;
  std::vector<NodeId> cand;
  for (NodeId v : voters)
    if (v != leader && !contains(exclude, v)) cand.push_back(v);
  while (extra-- > 0 && !cand.empty()) {
    size_t k = rng.below(cand.size());
    side.push_back(cand[k]);
    cand.erase(cand.begin() + static_cast<ptrdiff_t>(k));
  }
  return side;
}

void Simulation::nemesis_end(bool success) {
  Nemesis& z = nemesis_;
  if (z.old_cut) end_partition(z.old_cut);
  if (z.new_cut) end_partition(z.new_cut);
  if (z.third && nodes_[z.third].snapshot_at == z.snapshot_at) nodes_[z.third].snapshot_at = 0;
  ev(87, z.rounds, success, static_cast<uint64_t>(z.stage), [&] {
    return fmt::format("NEMESIS round {} {}", z.rounds, success ? "done: the suffix holder installed the snapshot"
                                                                : fmt::format("gave up in stage {}", static_cast<int>(z.stage)));
  });
  uint32_t rounds = z.rounds;
  z = Nemesis{};
  z.rounds = rounds;
  // Another round later, if there is time for one.
  uint64_t next = tick() + rng_.range(5, 6 * kElectionTicks);
  if (rounds < kNemesisMaxRounds && next + 3 * kNemesisStageTicks < opt_.chaos_ticks) {
    z.stage = NemesisStage::kArmed;
    z.next_tick = next;
  }
}

void Simulation::nemesis_tick() {
  Nemesis& z = nemesis_;
  if (z.stage == NemesisStage::kOff) return;
  if (z.stage != NemesisStage::kArmed) {
    if (tick() >= z.next_tick) nemesis_end(false);
    return;
  }
  Node* l = leader();
  if (tick() < z.next_tick || !l || !contains(committed_conf_.voters, l->id) || committed_conf_.voters.size() < 3) return;
  // Stage 1: cut the leader off with a minority and give it entries no one else has.
  z.rounds++;
  z.old_term = l->raft->term();
  z.old_side = pick_side(rng_, l->id, committed_conf_.voters, {});
  z.old_cut = cut_off(z.old_side);
  for (uint64_t k = rng_.range(1, 6); k > 0; k--) propose_nemesis_write(*l);
  z.stage = NemesisStage::kOldLeaderCut;
  z.next_tick = tick() + kNemesisStageTicks;
}

void Simulation::nemesis_on_leader(Node& n, Term term) {
  Nemesis& z = nemesis_;
  if (healing_) return;
  if (z.stage == NemesisStage::kOldLeaderCut && !contains(z.old_side, n.id) && term > z.old_term) {
    // Stage 2: a new leader elsewhere. Cut it off at once (its first appends are still in
    // flight) with a minority of its own, bring the old side back, and give the new leader
    // entries no one else has: two overlapping histories after the split point.
    z.new_leader = n.id;
    z.new_term = term;
    z.new_side = pick_side(rng_, n.id, committed_conf_.voters, z.old_side);
    z.new_cut = cut_off(z.new_side);
    end_partition(z.old_cut);
    z.old_cut = 0;
    for (uint64_t k = rng_.range(2, 10); k > 0; k--) propose_nemesis_write(n);
    z.stage = NemesisStage::kNewLeaderCut;
    z.next_tick = tick() + kNemesisStageTicks;
  } else if (z.stage == NemesisStage::kNewLeaderCut && !contains(z.new_side, n.id) && term > z.new_term) {
    // Stage 3: a third leader. It will snapshot right after applying an entry past the point
    // where its log and the new leader's part, so that the new leader needs that snapshot.
    const Node& x = nodes_[z.new_leader];
    Index lo = std::max(n.mirror_base, x.mirror_base) + 1;
    Index top = std::min(n.mirror_last(), x.mirror_last());
    Index split = lo;
    while (split <= top && n.mirror_term(split) == x.mirror_term(split)) split++;
    Index first = std::max({split, n.applied + 1, n.snapshot_index + 1});
    Index last = std::min(n.mirror_last(), x.mirror_last() - 1);  // x keeps a suffix past it
    if (first > last) last = n.mirror_last();
    if (first > last) { nemesis_end(false); return; }
    z.third = n.id;
    z.snapshot_at = rng_.range(first, last);
    n.snapshot_at = z.snapshot_at;
    ev(88, n.id, z.snapshot_at, split, [&] {
      return fmt::format("NEMESIS n{} (third leader) will snapshot at {} (its log and n{}'s part at {}; n{} has up to {})",
                         n.id, z.snapshot_at, x.id, split, x.id, x.mirror_last());
    });
    z.stage = NemesisStage::kThirdLeader;
    z.next_tick = tick() + kNemesisStageTicks;
  }
}

void Simulation::nemesis_on_snapshot_saved(Node& n, const raft::SnapshotMeta& m) {
  Nemesis& z = nemesis_;
  if (z.stage != NemesisStage::kThirdLeader || n.id != z.third || m.index != z.snapshot_at) return;
  // Stage 4: bring the new leader's side back; the third leader must send it the snapshot.
  end_partition(z.new_cut);
  z.new_cut = 0;
  z.stage = NemesisStage::kSnapshotSaved;
  z.next_tick = tick() + kNemesisStageTicks;
}

void Simulation::nemesis_on_install(Node& n, Index index) {
  Nemesis& z = nemesis_;
  if (z.stage != NemesisStage::kSnapshotSaved || !contains(z.new_side, n.id) || index != z.snapshot_at) return;
  mark(Fault::kSplitNemesis);
  nemesis_end(true);
}

void Simulation::inject_faults() {
  nemesis_tick();
  // Partitions: up to kMaxPartitions at once, each healing at its own end.
  for (size_t i = 0; i < partitions_.size();) {
    if (tick() >= partitions_[i].until_tick) end_partition(partitions_[i].id);
    else i++;
  }
  if (partitions_.size() < kMaxPartitions && rng_.chance(prof_.partition_ppm)) start_random_partition();
  // Crashes and restarts.
  for (Node& n : nodes_) {
    if (!n.exists || n.removed) continue;
    if (!n.up && !n.dead && tick() >= n.restart_tick) start_node(n);
  }
  if (rng_.chance(prof_.crash_ppm)) {
    std::vector<NodeId> ids = live_ids();
    if (!ids.empty()) {
      // At a random moment within the tick, so that crashes land mid-write too.
      crash_at_ = now_ + rng_.below(kUnitsPerTick);
      crash_node_ = ids[rng_.below(ids.size())];
    }
  }
  // Leader hunting.
  if (Node* l = leader(); l && !crash_at_) {
    bool young = tick() < l->leader_since_tick + 5;
    if (rng_.chance(young ? prof_.young_leader_crash_ppm : prof_.leader_crash_ppm)) {
      crash_at_ = now_ + rng_.below(kUnitsPerTick);
      crash_node_ = l->id;
      crash_leader_ = true;
    }
  }
  // Pauses: a random node, or the leader (whose read lease is what a pause endangers). Half
  // are short (a GC pause of up to two ticks), half up to kMaxPauseTicks; each starts at a
  // random unit within the tick.
  auto schedule_pause = [&](Node& n) {
    if (n.paused || n.pause_at) return;
    n.pause_at = now_ + rng_.below(kUnitsPerTick);
    n.resume_at = n.pause_at + (rng_.chance(500'000) ? rng_.range(1, 2 * kUnitsPerTick)
                                                     : rng_.range(2 * kUnitsPerTick, kMaxPauseTicks * kUnitsPerTick));
  };
  if (rng_.chance(prof_.pause_ppm)) {
    std::vector<NodeId> ids = live_ids();
    if (!ids.empty()) schedule_pause(nodes_[ids[rng_.below(ids.size())]]);
  }
  if (Node* l = leader(); l && rng_.chance(prof_.leader_pause_ppm)) schedule_pause(*l);
  // Slow disks.
  if (rng_.chance(prof_.slow_disk_ppm)) {
    std::vector<NodeId> ids = live_ids();
    if (!ids.empty()) {
      Node& n = nodes_[ids[rng_.below(ids.size())]];
      n.disk.slow_until_tick = tick() + rng_.range(5, 8 * kElectionTicks);
      mark(Fault::kSlowDisk);
      ev(82, n.id, n.disk.slow_until_tick, 0, [&] { return fmt::format("n{} disk SLOW until tick {}", n.id, n.disk.slow_until_tick); });
    }
  }
  // Membership changes, one at a time, proposed to the leader.
  Node* l = leader();
  if (l && rng_.chance(prof_.membership_ppm) && pending_conf_index_ < committed_.size()) {
    raft::ConfChange cc;
    std::vector<NodeId> voters = committed_conf_.voters, learners = committed_conf_.learners;
    uint64_t choice = rng_.below(3);
    bool ok = false;
    if (choice == 0 && joiners_ < kMaxJoiners && next_id_ <= kMaxNodes) {
      cc.type = raft::ConfChangeType::kAddLearner;
      cc.node = next_id_++;
      joiners_++;
      create_node(cc.node, false);
      ok = true;
    } else if (choice == 1 && !learners.empty()) {
      cc.type = raft::ConfChangeType::kPromote;
      cc.node = learners[rng_.below(learners.size())];
      ok = true;
    } else if (choice == 2 && (voters.size() > kMinVoters || !learners.empty())) {
      cc.type = raft::ConfChangeType::kRemove;
      std::vector<NodeId> cand = voters.size() > kMinVoters ? voters : learners;
      cc.node = cand[rng_.below(cand.size())];
      ok = true;
    }
    if (ok) {
      raft::ProposeResult r = l->raft->propose_conf_change(cc);
      ev(83, l->id, cc.node, static_cast<uint64_t>(cc.type), [&] {
        return fmt::format("n{} propose conf change type={} node=n{} -> {}", l->id, static_cast<int>(cc.type), cc.node,
                           r.error == raft::ProposeError::kNone ? fmt::format("index {}", r.index)
                                                                : fmt::format("refused ({})", static_cast<int>(r.error)));
      });
      if (r.error == raft::ProposeError::kNone) { pending_conf_index_ = r.index; pending_conf_term_ = r.term; }
    }
  }
  // Leadership transfers.
  l = leader();
  if (l && rng_.chance(prof_.transfer_ppm)) {
    std::vector<NodeId> cand;
    for (NodeId v : committed_conf_.voters) if (v != l->id) cand.push_back(v);
    if (!cand.empty()) {
      transfer_target_ = cand[rng_.below(cand.size())];
      ev(84, l->id, transfer_target_, 0, [&] { return fmt::format("n{} asked to transfer leadership to n{}", l->id, transfer_target_); });
      l->raft->transfer_leadership(transfer_target_);
    }
  }
}

// Every unit: pauses begin and end, every node's clock advances at its own rate, and a
// running core gets its tick when its clock crosses one. (Removed nodes keep ticking until
// the heal shuts them down, as an operator would.)
void Simulation::advance_clocks() {
  constexpr uint64_t kTickAcc = kUnitsPerTick * kClockPpm;
  for (Node& n : nodes_) {
    if (!n.exists || !n.up) continue;
    if (!n.paused && n.pause_at && now_ >= n.pause_at) pause_node(n);
    n.clock_acc += n.clock_ppm;
    bool ticks = n.clock_acc >= kTickAcc;  // rates stay below 2x: at most one tick a unit
    if (ticks) n.clock_acc -= kTickAcc;
    if (n.paused) {
      n.missed_ticks += ticks;
      if (now_ >= n.resume_at) resume_node(n);
    } else if (ticks) {
      tick_node(n);
    }
    if (!result_.ok) return;
  }
}

void Simulation::log_digest_marks() {
  for (Node& n : nodes_) {
    if (!n.exists || !n.running() || !n.replica->leader()) continue;
    n.replica->digest_mark(0, 0);  // nobody waits for its reply
    ev(90, n.id, tick(), 0, [&] { return fmt::format("n{} logs a digest mark", n.id); });
  }
}

void Simulation::tick_node(Node& n) {
  n.raft->tick();
  after_input(n);
  if (n.forwarder && n.up) {
    sync_forwarder(n);
    n.forwarder->tick();
  }
}

void Simulation::pause_node(Node& n) {
  n.paused = true;
  n.pause_at = 0;
  n.missed_ticks = 0;
  mark(Fault::kPause);
  ev(85, n.id, n.resume_at, 0, [&] {
    return fmt::format("n{} PAUSED until {}.{}{}", n.id, n.resume_at / kUnitsPerTick, n.resume_at % kUnitsPerTick,
                       n.raft->role() == Role::kLeader ? " (leader)" : "");
  });
}

// What the shell does when the process runs again, in the order of a server loop turn
// (src/server/node.cc): feed the core the ticks that elapsed (at most kMaxCatchUpTicks),
// then the messages that arrived meanwhile, the disk's acknowledgements, and the clients'
// requests. Ticks first: a heartbeat read after the pause must not be credited with the
// time the process was frozen, or a follower would forget its leader lease too early.
void Simulation::resume_node(Node& n) {
  n.paused = false;
  uint64_t feed = opt_.shell_bugs.drop_missed_ticks ? std::min<uint64_t>(n.missed_ticks, 1) : std::min(n.missed_ticks, kMaxCatchUpTicks);
  ev(86, n.id, n.missed_ticks, feed, [&] {
    return fmt::format("n{} RESUMES: {} ticks elapsed, {} fed to the core; {} messages waiting", n.id, n.missed_ticks, feed,
                       n.inbox.size());
  });
  n.missed_ticks = 0;
  const Term fresh = n.fresh_stall_term;
  n.fresh_stall_term = 0;
  const bool judge_fresh = fresh != 0 && n.raft->role() == Role::kLeader && n.raft->term() == fresh;
  for (uint64_t i = 0; i < feed && result_.ok && n.up; i++) tick_node(n);
  // Options::fresh_leader_stalls: the stall's ticks alone (nothing read yet) must not depose
  // a leader elected just before it: its first check-quorum round counts its voters.
  if (judge_fresh && result_.ok && n.up && feed >= kElectionTicks) {
    if (!healing_) mark(Fault::kFreshLeaderStall);
    if (n.raft->role() != Role::kLeader && n.raft->term() == fresh) {
      fail("fresh-leader-kept", fmt::format("n{}, elected in term {} just before a stall of {} ticks, was deposed by "
                                            "check-quorum among those ticks, before reading what its voters sent",
                                            n.id, fresh, feed));
      return;
    }
  }
  std::vector<InFlight> inbox = std::move(n.inbox);
  n.inbox.clear();
  for (const InFlight& f : inbox) {
    if (!result_.ok) return;
    step_message(n, f);
  }
  if (!result_.ok) return;
  notify_disk(n);
  std::vector<Node::LinkInput> link_inputs = std::move(n.link_inbox);
  n.link_inbox.clear();
  for (const Node::LinkInput& in : link_inputs) {
    if (!result_.ok || !n.up) return;
    deliver_link_input(n, in);
  }
  std::vector<std::pair<uint64_t, std::vector<std::string>>> commands = std::move(n.queued_commands);
  n.queued_commands.clear();
  for (auto& [connection, words] : commands) {
    if (!result_.ok || !n.up) return;
    send_command(n, connection, std::move(words));
  }
}

// At the end of every unit, every running leader's read lease as it computes it. It rests on
// a promise: no leader of a later term exists, because each voter whose heartbeat
// acknowledgement it counts refuses to vote for anyone else until the lease ends. So the
// lease must not be valid once a later term has a leader (stale-lease: checked whenever the
// core could answer a read from it, not only when it does), and every such voter that is
// running must still be in check-quorum's stickiness (lease-outlives-stickiness: the
// lease's allowance for drift and tick granularity is too small, or the voter forgot its
// promise). Its term may have moved on (a stale rejection carrying a higher term): it still
// refuses every vote, and a leader of that term would be stale-lease's business. A voter that is down keeps the promise by
// refusing votes after its restart; a paused one is judged once it resumes.
void Simulation::check_leases() {
  for (Node& x : nodes_) {
    if (!x.exists || !x.running() || x.raft->role() != Role::kLeader) continue;
    raft::Raft::Lease lease = x.raft->lease();
    if (!lease.valid) continue;
    Term t = x.raft->term();
    if (max_leader_term_ > t) {
      fail("stale-lease", fmt::format("n{}, leader of term {}, holds a valid read lease after a leader of term {} was "
                                      "elected", x.id, t, max_leader_term_));
      return;
    }
    for (NodeId v : lease.voters) {
      if (v > kMaxNodes || !nodes_[v].exists || !nodes_[v].running()) continue;
      raft::Raft& r = *nodes_[v].raft;
      if (r.in_leader_lease()) continue;
      fail("lease-outlives-stickiness",
           fmt::format("leader n{} of term {} holds a read lease resting on n{}'s heartbeat acknowledgement, but n{} "
                       "({} in term {}) no longer refuses votes (clocks: n{} {} ppm, n{} {} ppm)",
                       x.id, t, v, v, role_name(r.role()), r.term(), x.id, x.clock_ppm, v, nodes_[v].clock_ppm));
      return;
    }
  }
}

// Called after every input to a core (tick, step, persisted, read_index): records who
// leads, and checks each read the core answered from its lease at the instant it did so.
void Simulation::after_input(Node& n) {
  raft::Raft& r = *n.raft;
  if (r.role() == Role::kLeader) max_leader_term_ = std::max(max_leader_term_, r.term());
  uint64_t answered = r.lease_reads_answered();
  if (answered == n.lease_reads_seen) return;
  n.lease_reads_seen = answered;
  if (opt_.protocol_checks && max_leader_term_ > r.term()) {
    fail("stale-lease", fmt::format("n{}, leader of term {}, answered a read from its lease after a leader of term {} "
                                    "was elected", n.id, r.term(), max_leader_term_));
  }
}

// A (pre-)vote was just granted by `voter`. A leader whose read lease rests on the voter's
// heartbeat acknowledgement holds it only because the voter promised (check-quorum's
// stickiness) to vote for no one else until that lease ends, as the leader computes it with
// its own clock: the clocks' drift stays within what the lease allows for. A paused leader
// computes nothing; when it resumes, stale-lease judges its lease.
void Simulation::check_vote_during_lease(Node& voter, const Message& request) {
  for (Node& x : nodes_) {
    if (!x.exists || !x.running() || x.id == voter.id || x.raft->role() != Role::kLeader) continue;
    if (request.term <= x.raft->term()) continue;
    raft::Raft::Lease lease = x.raft->lease();
    if (!lease.valid || !contains(lease.voters, voter.id)) continue;
    fail("vote-during-lease",
         fmt::format("n{} granted a {} for term {} to n{}{} while leader n{} of term {} holds a read lease resting on "
                     "n{}'s heartbeat acknowledgement", voter.id, request.type == MessageType::kPreVote ? "pre-vote" : "vote",
                     request.term, request.from, request.context ? " (leadership transfer)" : "", x.id, x.raft->term(),
                     voter.id));
    return;
  }
}

bool Simulation::converged() {
  Node* l = leader();
  if (!l || !probe_done_) return false;
  Index commit = l->raft->status().commit;
  if (probe_index_ > commit) return false;
  for (const Node& n : nodes_) {
    if (!n.exists || n.removed) continue;
    bool member = contains(committed_conf_.voters, n.id) || contains(committed_conf_.learners, n.id);
    if (!member || n.dead) continue;  // a node that refused to start waits for its operator
    if (!n.up || n.applied < commit) return false;
  }
  for (const Client& c : clients_) if (busy(c)) return false;
  // Every forwarded command answered (each waits a bounded time: the leader wait, the drain).
  for (const Node& n : nodes_)
    if (n.exists && n.up && n.forwarder && !n.forwarder->idle()) return false;
  if (!retries_.empty()) return false;
  return true;
}

void Simulation::final_checks() {
  // Every acknowledged write is in the committed log, at the index and term it was given.
  for (size_t i = 0; i < history_.size(); i++) {
    HistoryOp& h = history_[i];
    OpMeta& m = meta_[i];
    if (h.kind == OpKind::kGet) continue;
    auto committed_at = [&](Index index, Term term) { return index < committed_.size() && committed_[index].term == term; };
    if (!m.request_id.empty()) {
      size_t committed_attempts = 0;
      for (const auto& [index, term] : m.props) committed_attempts += committed_at(index, term);
      if (committed_attempts >= 2) mark(Fault::kRequestRepeat);
    }
    if (h.outcome == OpOutcome::kOk) {
      // A retried write (Options::request_ids) may be answered by an attempt that found the
      // first one's effect: some attempt's proposal is committed.
      bool committed = committed_at(m.prop_index, m.prop_term);
      if (!m.request_id.empty())
        for (const auto& [index, term] : m.props) committed |= committed_at(index, term);
      if (!committed) {
        fail("acknowledged-write-lost", fmt::format("{} was acknowledged at {}/{} but is not committed there", describe(h),
                                                    m.prop_index, m.prop_term));
        return;
      }
    } else if (h.outcome == OpOutcome::kUnknown) {
      // Resolve from the committed log when it decides the question, for every attempt:
      // committed if one is, failed if all are (a different entry at its index, or a
      // committed entry of a later term before it: no future leader holds the proposal).
      if (m.props.empty()) { h.outcome = OpOutcome::kFailed; continue; }
      bool committed = false, all_failed = true;
      for (const auto& [index, term] : m.props) {
        if (committed_at(index, term)) committed = true;
        bool failed = index < committed_.size();
        for (Index j = 1; !failed && j < committed_.size(); j++) failed = committed_[j].term > term;
        all_failed &= failed && !committed_at(index, term);
      }
      if (committed) {
        h.outcome = OpOutcome::kCommittedUnknown;
        h.ret = m.commit_seq;
      } else if (all_failed) {
        h.outcome = OpOutcome::kFailed;
      }
    }
  }
  // Same state on every member at the end (same applied index: same digest). An MGET is
  // checked as the GETs of its keys.
  std::vector<HistoryOp> checked;
  checked.reserve(history_.size() + mget_reads_.size());
  for (const HistoryOp& h : history_)
    if (h.key != kAllKeys) checked.push_back(h);
  checked.insert(checked.end(), mget_reads_.begin(), mget_reads_.end());
  LinearizabilityResult lr = check_linearizable(checked);
  result_.linearizability_inconclusive = lr.inconclusive;
  if (!lr.ok) fail("linearizability", lr.explanation);
}

RunResult Simulation::run() {
  prof_ = draw_profile(rng_, opt_.faults);
  if (prof_.split_nemesis_tick && opt_.nodes >= 3) {
    nemesis_.stage = NemesisStage::kArmed;
    nemesis_.next_tick = prof_.split_nemesis_tick;
  }
  HMDB_ASSERT(opt_.nodes >= 1 && opt_.nodes + kMaxJoiners <= kMaxNodes, "nodes must be 1..%llu",
              (unsigned long long)(kMaxNodes - kMaxJoiners));
  for (NodeId id = 1; id <= opt_.nodes; id++) initial_conf_.voters.push_back(id);
  committed_conf_ = initial_conf_;
  next_id_ = opt_.nodes + 1;
  if (opt_.nodes < kMinVoters) prof_.membership_ppm = 0;
  // Nodes that may refuse to start for good: one, if the cluster can spare it (membership
  // changes never go below kMinVoters voters, so two down could stop a 5-node cluster).
  max_doomed_ = opt_.nodes >= kMinVoters ? 1 : 0;
  // Spread the op budget over the chaos phase (0.5x to 1.5x of the exact spread).
  prof_.client_ppm = static_cast<uint32_t>(std::min<uint64_t>(
      1'000'000, uint64_t{opt_.max_client_ops} * 1'000'000 / (kClientCount * std::max(opt_.chaos_ticks, 1u)) *
                     rng_.range(50, 150) / 100));
  for (uint32_t i = 0; i < kClientCount; i++) clients_.push_back(Client{i, 0, 0, 0});
  ev(1, opt_.seed, opt_.nodes, 0, [&] {
    return fmt::format("seed {} nodes {} profile: loss={}ppm dup={}ppm delay={}ppm partition={}ppm crash={}ppm torn={}ppm "
                       "sector-hole={}ppm damage={}ppm "
                       "slow={}ppm membership={}ppm transfer={}ppm leader-hunt={}/{}/{}ppm snapshot-every={} append-bytes={} inflight={} "
                       "lease-reads={} clock-drift={} lockstep={} pause={}/{}ppm",
                       opt_.seed, opt_.nodes, prof_.loss_ppm, prof_.duplicate_ppm, prof_.long_delay_ppm, prof_.partition_ppm,
                       prof_.crash_ppm, prof_.torn_ppm, prof_.hole_ppm, prof_.damage_ppm, prof_.slow_disk_ppm, prof_.membership_ppm, prof_.transfer_ppm,
                       prof_.young_leader_crash_ppm, prof_.leader_crash_ppm, prof_.crash_after_commit_ppm,
                       prof_.snapshot_every, prof_.max_append_bytes, prof_.max_inflight_appends, prof_.lease_reads,
                       prof_.clock_drift, prof_.lockstep_ticks, prof_.pause_ppm, prof_.leader_pause_ppm);
  });
  ev(2, prof_.snapshot_between_entries, nemesis_.next_tick, 0, [&] {
    return fmt::format("profile: after-persist-messages={} snapshot-between-entries={} split-nemesis={}",
                       prof_.after_persist_messages, prof_.snapshot_between_entries,
                       nemesis_.stage == NemesisStage::kArmed ? fmt::format("from tick {}", nemesis_.next_tick) : "off");
  });
  if (opt_.upgrade) {
    // The operator's plan (upgrade_tick), from its own generator.
    urng_ = Rng(opt_.seed ^ 0x9e3779b97f4a7c15ULL);
    UpgradePlan& u = upgrade_;
    u.next_tick = urng_.range(5, 60);
    if (urng_.chance(250'000)) {
      u.rollback_after = urng_.range(1, opt_.nodes);
      u.abandon = urng_.chance(500'000);
    } else {
      u.early_gate = urng_.chance(300'000);
    }
    u.transfer = urng_.chance(500'000);
    u.kill_in_transfer = u.transfer && urng_.chance(400'000);
    u.partition_at_gate = urng_.chance(300'000);
    u.premature_gate = urng_.chance(200'000);
    ev(3, u.next_tick, u.rollback_after, u.abandon, [&] {
      return fmt::format("upgrade plan: from tick {}; rollback {}; early gate {}; transfer {} (leader killed {}); "
                         "partition at the gate {}; premature gate {}", u.next_tick,
                         u.rollback_after == SIZE_MAX ? std::string("none")
                                                      : fmt::format("after {} nodes{}", u.rollback_after,
                                                                    u.abandon ? ", then abandoned" : ""),
                         u.early_gate, u.transfer, u.kill_in_transfer, u.partition_at_gate, u.premature_gate);
    });
  }
  for (NodeId id = 1; id <= opt_.nodes; id++) create_node(id, true);

  uint64_t heal_tick = opt_.chaos_ticks;
  uint64_t deadline_tick = heal_tick + kLivenessTicks;
  for (now_ = 0; result_.ok; now_++) {
    if (now_ % kUnitsPerTick == 0) {
      if (tick() == heal_tick) {
        healing_ = true;
        if (nemesis_.third) nodes_[nemesis_.third].snapshot_at = 0;
        nemesis_ = Nemesis{};
        heal_all();
        for (Node& n : nodes_) {
          if (!n.exists || !opt_.upgrade) continue;
          // The operator finishes what the plan started: once the activation was logged,
          // every node still on v1 gets v2; a blocked node is restarted with v2 now.
          if (upgrade_.gate_proposed && n.binary < 2 && !n.removed) restart_with(n, 2);
          else if (n.up && n.replica->schema_block()) n.remedy_tick = tick();
        }
        for (Node& n : nodes_) {
          if (!n.exists) continue;
          n.disk.slow_until_tick = 0;
          for (Write& w : n.disk.pending) w.done_at = std::min(w.done_at, now_ + 4);  // fast again
          n.pause_at = 0;
          if (n.paused) n.resume_at = now_;  // resumes below
          if (n.removed && n.up) crash_node(n, false);
          if (!n.removed && !n.up && !n.dead) start_node(n);
        }
        ev(90, 0, 0, 0, [&] { return std::string("HEAL: network whole, disks fast, every member up"); });
      }
      if (healing_ && converged()) break;
      if (tick() >= deadline_tick) {
        Node* l = leader();
        std::string nodes;
        for (const Node& n : nodes_) {
          if (!n.exists) continue;
          if (!n.up) {
            nodes += fmt::format(" n{}:down{}", n.id, n.removed ? "(removed)" : n.dead ? "(refused to start)" : "");
            continue;
          }
          raft::Status st = n.raft->status();
          nodes += fmt::format(" n{}:{}/t{}/commit{}/applied{}/last{}{}", n.id, role_name(st.role), st.term, st.commit,
                               n.applied, st.last_index, n.removed ? "(removed)" : "");
          if (n.forwarder && !n.forwarder->idle()) nodes += fmt::format("/forwarding{}", n.forwarder->commands());
        }
        std::string waiting;
        for (const Client& c : clients_)
          if (busy(c)) waiting += fmt::format(" c{}:{}", c.id, describe(history_[connections_[c.connection].waiting.front()]));
        fail("liveness", fmt::format("{} ticks after healing (a connected majority is up): leader={} probe {} at {}; "
                                     "committed membership {}; nodes:{}; busy clients:{}",
                                     kLivenessTicks, l ? fmt::format("n{}", l->id) : "none",
                                     probe_done_ ? "committed" : "pending", probe_index_, conf_string(committed_conf_),
                                     nodes, waiting.empty() ? " none" : waiting));
        break;
      }
      if (!healing_ && opt_.faults) inject_faults();
      if (opt_.upgrade && result_.ok) upgrade_tick();
    }
    // The nodes' clocks first, then the clients: a request is read after the tick, as a
    // server reads its sockets after feeding the core the time (src/server/node.cc).
    advance_clocks();
    if (now_ % kUnitsPerTick == 0 && result_.ok) {
      if (opt_.digest_marks && !healing_ && tick() % kDigestMarkEveryTicks == 0) log_digest_marks();
      clients_tick();
      if (healing_ && result_.ok) probe();
    }
    if (crash_at_ && now_ >= crash_at_) {
      // Mostly hit a node with a write in flight, so that crashes lose (or tear) writes.
      std::vector<NodeId> writing;
      for (const Node& x : nodes_) if (x.exists && x.up && !x.disk.pending.empty()) writing.push_back(x.id);
      if (!writing.empty() && !crash_leader_ && rng_.chance(700'000)) crash_node_ = writing[rng_.below(writing.size())];
      Node& n = nodes_[crash_node_];
      crash_at_ = 0;
      if (n.up && !healing_) {
        crash_node(n, true);
        n.restart_tick = tick() + (crash_leader_ ? rng_.range(kElectionTicks, 4 * kElectionTicks)
                                                 : rng_.range(1, 8 * kElectionTicks));
      }
      crash_leader_ = false;
    }
    deliver_due();
    if (!unread_.empty() && result_.ok) resume_slow_readers();
    for (Node& n : nodes_)
      if (n.exists && n.up && result_.ok) complete_writes(n);
    if (result_.ok) process_link_events();
    for (Node& n : nodes_) {
      if (!n.exists || !n.running() || !result_.ok) continue;
      if (n.loading && now_ >= n.load_done_at) finish_load(n);  // the turn's start swaps it in
      if (result_.ok) end_turn(n);
    }
    if (result_.ok && prof_.lease_reads && opt_.protocol_checks) check_leases();
  }
  result_.ticks = tick();
  if (result_.ok) final_checks();
  if (result_.ok && opt_.upgrade && gate_committed_) {
    bool all = true;
    for (const Node& n : nodes_)
      if (n.exists && !n.removed && !n.dead && (n.binary < 2 || !n.up || n.app->active_schema_version() < 2)) all = false;
    if (all) mark(Fault::kUpgradeAllV2);
  }
  result_.trace_hash = hash_;
  return std::move(result_);
}

}  // namespace

RunResult run_simulation(const Options& options) {
  Simulation sim(options);
  return sim.run();
}

namespace {
// What a forked run sends back to the parent: the summary, not the trace.
struct IsolatedSummary {
  bool ok;
  uint64_t ticks, messages, client_ops, inconclusive;
  bool older_term_leader;
  bool learner_led;
  uint64_t forwarded, forward_links_broken;
  uint64_t snapshots_wanted, wanted_snapshots_taken, wanted_snapshot_installs;
  bool faults[kFaultCount];
  char check[64];
  char detail[512];
};

}  // namespace

RunResult run_simulation_isolated(const Options& o) {
  int fds[2];
  if (pipe(fds) != 0) { std::perror("pipe"); std::exit(2); }
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) { std::perror("fork"); std::exit(2); }
  if (pid == 0) {
    close(fds[0]);
    RunResult r = run_simulation(o);
    IsolatedSummary s{};
    s.ok = r.ok;
    s.ticks = r.ticks;
    s.messages = r.messages_sent;
    s.client_ops = r.client_ops;
    s.inconclusive = r.linearizability_inconclusive;
    s.older_term_leader = r.older_term_leader;
    s.learner_led = r.learner_led;
    s.forwarded = r.forwarded;
    s.forward_links_broken = r.forward_links_broken;
    s.snapshots_wanted = r.snapshots_wanted;
    s.wanted_snapshots_taken = r.wanted_snapshots_taken;
    s.wanted_snapshot_installs = r.wanted_snapshot_installs;
    for (size_t f = 0; f < kFaultCount; f++) s.faults[f] = r.faults[f];
    std::snprintf(s.check, sizeof s.check, "%s", r.check.c_str());
    std::snprintf(s.detail, sizeof s.detail, "%s", r.detail.c_str());
    ssize_t n = write(fds[1], &s, sizeof s);
    _exit(n == static_cast<ssize_t>(sizeof s) ? 0 : 3);
  }
  close(fds[1]);
  IsolatedSummary s{};
  size_t got = 0;
  while (got < sizeof s) {
    ssize_t n = read(fds[0], reinterpret_cast<char*>(&s) + got, sizeof s - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  r.seed = o.seed;
  if (got != sizeof s) {
    r.ok = false;
    r.check = "core-abort";
    r.detail = WIFSIGNALED(status) ? fmt::format("the run died with signal {} (see the assertion above)", WTERMSIG(status))
                                   : fmt::format("the run exited with status {}", WEXITSTATUS(status));
    return r;
  }
  r.ok = s.ok;
  r.ticks = s.ticks;
  r.messages_sent = s.messages;
  r.client_ops = s.client_ops;
  r.linearizability_inconclusive = s.inconclusive;
  r.older_term_leader = s.older_term_leader;
  r.learner_led = s.learner_led;
  r.forwarded = s.forwarded;
  r.forward_links_broken = s.forward_links_broken;
  r.snapshots_wanted = s.snapshots_wanted;
  r.wanted_snapshots_taken = s.wanted_snapshots_taken;
  r.wanted_snapshot_installs = s.wanted_snapshot_installs;
  for (size_t f = 0; f < kFaultCount; f++) r.faults[f] = s.faults[f];
  r.check = s.check;
  r.detail = s.detail;
  return r;
}



}  // namespace hmdb::sim
