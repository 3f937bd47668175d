// server/recovery.cc — startup: newest snapshot + the log after it, replayed to the end.
//
// Order (docs/operations.md "Recovery"):
//   1. storage::read_latest_snapshot → StateMachine::load. A damaged newest snapshot stops
//      the node (never silently fall back to an older state).
//   2. storage::recover_log(after = snapshot index): a torn tail at the end of the last
//      segment is cut off and logged; damage anywhere else stops the node with the file,
//      the offset and what to do. Entries after the snapshot that are left over from a log
//      a leader's snapshot replaced are dropped.
//   3. The consensus core is restored from both. A single node elects itself (a cluster
//      of one), appends a no-op of its new term and, once that is durable, everything
//      before it commits: every entry that was durable before the crash is applied, in
//      order, before the first client is served. A cluster node applies the entries its
//      hard state says were committed, then waits for the leader (or an election) for the
//      rest: only a majority can say what else is committed.
#include <algorithm>
#include <random>

#include "common/assert.h"
#include "core/state.h"
#include "server/logging.h"
#include "server/node.h"
#include "storage/restart.h"
#include "storage/snapshot.h"

namespace hmdb::server {

namespace {
// This node's id while it is a cluster of one.
constexpr raft::NodeId kSingleNodeId = 1;
// Ticks to wait for the single node to elect itself at startup (it needs one).
constexpr int kStartupElectionTicksMax = 1000;

}  // namespace

Status Node::recover(int* exit_code) {
  const uint64_t t0 = monotonic_ms();
  *exit_code = kExitStartupFailure;
  Status s = env_->create_dir(options_.dir);
  if (!s) return s;
  s = dir_lock_.acquire(options_.dir);  // held until the node ends (dir_lock.h)
  if (!s) return s;

  raft::RestoreState restore;
  const bool clustered = options_.clustered();
  if (!clustered) {
    restore.initial_conf.voters = {kSingleNodeId};
  } else {
    members_ = options_.initial_cluster;  // the snapshot's and the log's addresses override
    if (!options_.join)
      for (const auto& [id, m] : options_.initial_cluster) restore.initial_conf.voters.push_back(id);
  }
  raft::Index after = 0;
  raft::Term after_term = 0;

  storage::LoadedSnapshot snap;
  core::RequestTable requests;  // the snapshot's, handed to the replica once it exists
  const core::ReplicatedAcl acl{&acl_, &acl_access_};  // replace the ACL file's if it holds users
  const uint64_t read_start_ms = monotonic_ms();
  s = storage::read_latest_snapshot(env_, options_.dir, &snap);
  if (s.is_ok()) {
    const uint64_t read_ms = monotonic_ms() - read_start_ms;
    if (snap.app_name != app_->app_name()) {
      return Status::invalid_argument(fmt::format(
          "snapshot {} holds the state of app '{}', but this binary is app '{}'. Start the right binary, or "
          "point --dir at another directory.",
          snap.path, snap.app_name, app_->app_name()));
    }
    if (!app_->reads_schema_version(snap.meta.schema_version)) {
      return Status::not_supported(fmt::format("snapshot {} holds {}.", snap.path,
                                               core::unreadable_schema(*app_, snap.meta.schema_version)));
    }
    log_line("recovery: loading snapshot {} (index {}, term {}, {} bytes; mapped and verified in {} ms)", snap.path,
             snap.meta.index, snap.meta.term, snap.payload.size(), read_ms);
    Decoder in(snap.payload);
    uint32_t active = 0;
    const uint64_t load_start_ms = monotonic_ms();
    const core::LoadState loaded =
        core::load_state(*app_, requests, in, snap.meta.schema_version, snap.format_version, &active, &acl);
    // The phases apart, for a slow restart: mapping and checksumming the file (above) against
    // decoding it into the app's state (bench/README.md, "The fork and the recovery at 20 M keys").
    log_line("recovery: snapshot decoded into the state in {} ms", monotonic_ms() - load_start_ms);
    if (loaded == core::LoadState::kUnsupportedActive) {
      return Status::not_supported(fmt::format("snapshot {} is of a cluster whose active schema version is {}.",
                                               snap.path, core::unreadable_schema(*app_, active)));
    }
    if (loaded == core::LoadState::kRefused)  // exit 1: the same binary refuses it again
      return Status::not_supported(
          core::refused_migration(*app_, "snapshot " + snap.path, snap.meta.schema_version, in.refusal()));
    if (loaded != core::LoadState::kOk) {
      *exit_code = kExitCorruption;
      return Status::corruption(fmt::format(
          "snapshot {} passed its checksum but {} could not be decoded (schema version {}, snapshot format {}). The "
          "file was written by a broken or different build. Move it aside to recover from an older snapshot plus "
          "the log only if that log still reaches back far enough (`hmdb log verify {}`).",
          snap.path,
          loaded == core::LoadState::kBadRequests ? std::string("its request table")
          : loaded == core::LoadState::kBadUsers  ? std::string("its ACL users")
                                                  : fmt::format("the state of app '{}'", app_->app_name()),
          snap.meta.schema_version, snap.format_version, options_.dir));
    }
    if (clustered && !snap.cluster_info.empty()) decode_members(snap.cluster_info);
    after = snap.meta.index;
    after_term = snap.meta.term;
    restore.snapshot = snap.meta;
    stats_.last_snapshot_index = snap.meta.index;
  } else if (!s.is_not_found()) {
    if (s.is_corruption()) *exit_code = kExitCorruption;
    return s;
  }

  storage::RecoveredLog log;
  s = storage::recover_log(env_, options_.dir, after, &log);
  if (!s) {
    if (s.is_corruption()) *exit_code = kExitCorruption;
    return s;
  }
  if (!log.torn_tail.empty()) log_line("recovery: cut off a torn tail (a write the crash interrupted): {}", log.torn_tail);
  // What of it the node restarts with: the rules are storage/restart.h's (the simulator's
  // data directories are read back by the same).
  storage::RestartLog kept = storage::restart_log(log, restore.snapshot, clustered ? raft::kNoNode : kSingleNodeId,
                                                  options_.durability != Durability::kNone);
  if (!kept.dropped.empty()) log_line("recovery: dropped log {}", kept.dropped);
  log_line("recovery: log has {} segments, {} records, {} entries after index {} ({} bytes)", log.segments, log.records,
           kept.entries.size(), after, log.bytes);

  hard_state_ = kept.hard_state;
  last_log_index_ = kept.entries.empty() ? after : kept.entries.back().index;
  last_log_term_ = kept.entries.empty() ? after_term : kept.entries.back().term;
  log_bytes_since_snapshot_ = log.bytes;
  stats_.recovered_entries = kept.entries.size();
  restore.hard_state = kept.hard_state;
  if (clustered) learn_addresses(kept.entries);  // of members added after the snapshot
  restore.entries = std::move(kept.entries);

  log_env_ = std::make_unique<DeferredRemoveEnv>(env_);
  s = storage::LogWriter::open(log_env_.get(), options_.dir, storage::LogOptions{}, &log_for_recovery_);
  if (!s) return s;
  if (kept.write_hard_state) {
    // storage/restart.h, rule 3: durable before this run appends any entry.
    s = log_for_recovery_->append(&restore.hard_state, {});
    if (s) s = log_for_recovery_->sync();
    if (!s) fatal(kExitDiskFailure, "writing the log in {} failed during startup: {}", options_.dir, s.to_string());
  }

  raft::Config config;
  config.id = clustered ? options_.node_id : kSingleNodeId;
  // Mode none trims its log itself, behind the applied index (trim_unlogged_log): it has no
  // follower to keep entries for.
  config.log_memory_bytes = options_.durability == Durability::kNone ? 0 : options_.log_memory_bytes;
  if (clustered) {
    config.election_ticks = static_cast<uint32_t>(std::max<uint64_t>(2, options_.election_timeout_ms / kRaftTickMs));
    config.heartbeat_ticks = static_cast<uint32_t>(std::max<uint64_t>(1, options_.heartbeat_ms / kRaftTickMs));
    if (config.heartbeat_ticks >= config.election_ticks) config.heartbeat_ticks = config.election_ticks - 1;
    config.max_inflight_appends = kRaftMaxInflightAppends;
    // A follower's acks and votes go out from the disk thread after its fdatasync
    // (server/disk_thread.h, "Sending after the sync"), not from the loop after a wake-up.
    config.after_persist_messages = true;
    config.seed = std::random_device{}();  // election timeouts differ between restarts and nodes
  }
  raft_catch_up_ticks_max_ = 2 * uint64_t{config.election_ticks};
  raft_ = std::make_unique<raft::Raft>(config, std::move(restore));
  // A snapshot this binary cannot load is refused, not installed then fatal: the node stays
  // a voter (note_refused_snapshot, once per turn, says so and stops it from leading).
  raft_->set_snapshot_filter([this](const raft::SnapshotMeta& m) {
    if (!replica_->schema_block() && app_->reads_schema_version(m.schema_version)) return true;
    refused_snapshot_ = m;
    return false;
  });
  core::Replica::Options replica_options;
  replica_options.clustered = clustered;
  replica_options.forward = clustered;  // a follower forwards plain clients' commands (cluster.cc)
  if (options_.test_slice_elements != 0) replica_options.slice_elements = options_.test_slice_elements;
  if (options_.test_write_slice_elements != 0) replica_options.write_slice_elements = options_.test_write_slice_elements;
  if (options_.test_slice_reader_wait_ms != 0) replica_options.slice_reader_wait_ms = options_.test_slice_reader_wait_ms;
  // The turn's apply budget (kTurnApplyBudgetUs), on the stage clock the turn started on.
  const uint64_t apply_budget_us = options_.test_turn_apply_budget_us != 0 ? options_.test_turn_apply_budget_us : kTurnApplyBudgetUs;
  replica_options.apply_budget_spent = [this, apply_budget_us] {
    return stage_clock_.now_us() - turn_start_us_ >= apply_budget_us;
  };
  replica_options.bugs.skip_yielded_command = options_.test_plant_skip_yielded_command;  // PLANTED BUG when set
  replica_options.bugs.unchanged_ignores_pending = options_.test_plant_unchanged_ignores_pending;  // PLANTED BUG when set
  replica_options.bugs.transfer_waits_for_deadline = options_.test_plant_transfer_waits_for_deadline;  // PLANTED BUG when set
  replica_options.bugs.transfer_ignores_lost_leadership =
      options_.test_plant_transfer_ignores_lost_leadership;  // PLANTED BUG when set
  replica_options.events.retain_bytes = options_.events_retain_bytes;
  replica_options.events.subscriber_output_bytes = options_.subscriber_output_bytes;
  const bool notify_flags_ok =
      core::parse_notify_flags(options_.notify_keyspace_events, &replica_options.events.notify_flags);
  HMDB_ASSERT(notify_flags_ok, "--notify-keyspace-events was checked when parsed");
  replica_ = std::make_unique<core::Replica>(*raft_, *app_, static_cast<core::ReplicaHost&>(*this), replica_options);
  replica_->digest_marks().set_hasher(this);  // digests at marks in forked children (digest_child.cc)
  replica_->set_acl(&acl_, &acl_access_);     // logged ACL changes apply to the node's users
  replica_->set_applied(after, after_term);
  replica_->requests() = std::move(requests);
  refresh_clocks();

  replay_target_ = last_log_index_;
  replay_started_ms_ = monotonic_ms();
  replay_last_print_ms_ = replay_started_ms_;
  replaying_ = true;
  replica_->set_writes_whole(true);  // recovery ends with everything it replays applied: no sliced writes
  if (clustered) {
    // Apply what the hard state's commit hint says is committed; the rest waits for the
    // cluster. No messages go out yet (the transport starts after recovery).
    replica_->drive();
    replaying_ = false;
    replica_->set_writes_whole(false);
    sync_transport_members();
    stats_.recovery_ms = monotonic_ms() - t0;
    log_line("recovery: done in {} ms: applied index {} of {} in the log (the rest waits for the leader)",
             stats_.recovery_ms, replica_->applied_index(), replay_target_);
    *exit_code = kExitOk;
    return Status::ok();
  }
  for (int i = 0; i < kStartupElectionTicksMax && raft_->role() != raft::Role::kLeader; i++) {
    raft_->tick();
    replica_->drive();
  }
  if (raft_->role() != raft::Role::kLeader) {
    return Status::invalid_argument("the single node did not elect itself at startup (consensus core bug)");
  }
  // The leader's no-op commits everything before it once it is durable (drive_raft writes
  // and syncs synchronously while there is no disk thread).
  replica_->drive();
  replaying_ = false;
  replica_->set_writes_whole(false);
  HMDB_ASSERT(replica_->applied_index() >= replay_target_, "recovery stopped at index %llu of %llu",
              static_cast<unsigned long long>(replica_->applied_index()), static_cast<unsigned long long>(replay_target_));

  // Replies of replayed commands went nowhere; start counting afresh.
  stats_.recovery_ms = monotonic_ms() - t0;
  log_line("recovery: done in {} ms: applied index {} ({} log entries replayed after snapshot index {})",
           stats_.recovery_ms, replica_->applied_index(), stats_.recovered_entries, after);
  *exit_code = kExitOk;
  return Status::ok();
}

void Node::replay_progress() {
  const raft::Index applied_index = replica_->applied_index();
  if (!replaying_ || (applied_index & 0xffff) != 0) return;
  uint64_t now = monotonic_ms();
  if (now - replay_last_print_ms_ < kRecoveryProgressMs) return;
  replay_last_print_ms_ = now;
  double seconds = static_cast<double>(now - replay_started_ms_) / 1000.0;
  log_line("recovery: applied index {} of {} ({:.0f} entries/s)", applied_index, replay_target_,
           seconds > 0 ? static_cast<double>(applied_index) / seconds : 0.0);
}

}  // namespace hmdb::server
