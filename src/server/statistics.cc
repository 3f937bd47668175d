// server/statistics.cc — the one table of a node's statistics and its two renderings,
// INFO's text and the Prometheus exposition text (see statistics.h for the parts and
// docs/operations.md "Metrics" for the list).
#include "server/statistics.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "common/assert.h"
#include "hmdb/text.h"

namespace hmdb::server {

std::string_view role_name(raft::Role role) {
  switch (role) {
    case raft::Role::kFollower: return "follower";
    case raft::Role::kPreCandidate: return "precandidate";
    case raft::Role::kCandidate: return "candidate";
    case raft::Role::kLeader: return "leader";
    case raft::Role::kLearner: return "learner";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------
// The table

namespace {

using S = StatisticsSources;
using enum StatKind;
using enum StatSection;

// A reader: how one statistic's value is read from the sources.
#define READ(expr) [](const S& s) -> StatValue { return expr; }

// Every statistic, in INFO's order. Counters are the fields that only count events since
// the process started; everything that is a level, an index, a size, a setting or a
// "last"/"max" observation is a gauge. Metric names follow the INFO field; the stats
// section's "total_" prefixes become the "_total" suffix. Units stay those of INFO.
constexpr Statistic kStatistics[] = {
    // # Server
    {"hmdb_version", kServer, kLabel, "hmdb_build_info", "version", "", "The server's version and app; the value is 1.",
     READ(s.version)},
    {"redis_version", kServer, kInfoOnly, "", "", "", "a constant for Redis clients", READ(s.redis_version)},
    {"redis_mode", kServer, kInfoOnly, "", "", "", "hmdb_clustered in Redis' words (cluster, standalone)",
     READ(std::string(s.options.clustered() ? "cluster" : "standalone"))},
    {"app", kServer, kLabel, "hmdb_build_info", "app", "", "The app's name (a label of hmdb_build_info).",
     READ(s.app_name)},
    {"schema_version", kServer, kGauge, "hmdb_schema_version", "", "",
     "The newest schema version of the app this binary reads (and writes its snapshots in).", READ(s.schema_version)},
    {"schema_version_oldest", kServer, kGauge, "hmdb_schema_version_oldest", "", "",
     "The oldest schema version of the app this binary still reads.", READ(s.schema_version_oldest)},
    {"schema_version_active", kServer, kGauge, "hmdb_schema_version_active", "", "",
     "The cluster's active schema version as this node applied it: writes are validated and logged under it.",
     READ(s.schema_version_active)},
    {"schema_blocked_at_index", kServer, kGauge, "hmdb_schema_blocked_at_index", "", "",
     "0, or the log index where this node stopped applying: that entry needs schema_blocked_version, which this "
     "binary does not read. Such a node votes and stores the log but applies nothing more, does not lead and refuses "
     "clients: restart it with a newer binary, or remove it.",
     READ(s.schema_blocked_at_index)},
    {"schema_blocked_version", kServer, kGauge, "hmdb_schema_blocked_version", "", "",
     "0, or the schema version the entry at schema_blocked_at_index needs.", READ(s.schema_blocked_version)},
    {"process_id", kServer, kInfoOnly, "", "", "", "not a measurement", READ(s.process_id)},
    {"tcp_port", kServer, kInfoOnly, "", "", "", "configuration, known to the scraper", READ(s.port)},
    {"bind", kServer, kInfoOnly, "", "", "", "configuration, known to the scraper", READ(s.options.bind)},
    {"data_dir", kServer, kInfoOnly, "", "", "", "configuration", READ(s.options.dir)},
    {"uptime_in_seconds", kServer, kGauge, "hmdb_uptime_seconds", "", "seconds", "Seconds since the process started.",
     READ((s.now_ms - s.shell.start_ms) / 1000)},
    // # Clients
    {"connected_clients", kClients, kGauge, "hmdb_connected_clients", "", "", "Client connections open now.",
     READ(s.connected_clients)},
    {"blocked_clients", kClients, kGauge, "hmdb_blocked_clients", "", "",
     "Clients waiting in a blocking command (BLPOP, ...) whose attempt found nothing.", READ(s.blocked_clients)},
    {"maxclients", kClients, kGauge, "hmdb_max_clients", "", "", "--max-clients: connections beyond it are refused.",
     READ(s.options.max_clients)},
    {"client_output_limit_bytes", kClients, kGauge, "hmdb_client_output_limit_bytes", "", "bytes",
     "Unsent reply bytes beyond which a client is disconnected.", READ(s.client_output_limit_bytes)},
    // # Persistence
    {"durability", kPersistence, kLabel, "hmdb_durability", "durability", "",
     "--durability mode (always, periodic, none); the value is 1.",
     READ(std::string(durability_name(s.options.durability)))},
    {"fsync_interval_ms", kPersistence, kGauge, "hmdb_fsync_interval_ms", "", "ms",
     "--fsync-interval-ms (periodic durability).", READ(s.options.fsync_interval_ms)},
    {"log_bytes_since_snapshot", kPersistence, kGauge, "hmdb_log_bytes_since_snapshot", "", "bytes",
     "Log bytes written since the last snapshot (a snapshot starts at hmdb_snapshot_log_bytes).",
     READ(s.log_bytes_since_snapshot)},
    {"snapshot_log_bytes", kPersistence, kGauge, "hmdb_snapshot_log_bytes", "", "bytes", "--snapshot-log-bytes.",
     READ(s.options.snapshot_log_bytes)},
    {"snapshot_method", kPersistence, kLabel, "hmdb_snapshot_method", "method", "",
     "--snapshot-method (fork, slices; slices forks for an app that cannot); the value is 1.",
     READ(std::string(snapshot_method_name(s.options.snapshot_method)))},
    {"snapshot_in_progress", kPersistence, kGauge, "hmdb_snapshot_in_progress", "", "",
     "1 while a snapshot is written (a child, or the loop's slices).", READ(uint64_t{s.snapshot_in_progress ? 1u : 0u})},
    {"snapshot_slices_in_progress", kPersistence, kGauge, "hmdb_snapshot_slices_in_progress", "", "",
     "1 while a snapshot is written in slices by the event loop (--snapshot-method slices).",
     READ(uint64_t{s.snapshot_slices_in_progress ? 1u : 0u})},
    {"loading", kPersistence, kGauge, "hmdb_loading", "", "",
     "1 while a leader's snapshot loads in the background (app commands get -LOADING).",
     READ(uint64_t{s.snapshot_loading ? 1u : 0u})},
    {"unlogged_log_trims", kPersistence, kCounter, "hmdb_unlogged_log_trims_total", "", "",
     "--durability none: times the in-memory log was trimmed to the applied index (no snapshot needed).",
     READ(s.shell.unlogged_log_trims)},
    {"snapshot_installs", kPersistence, kCounter, "hmdb_snapshot_installs_total", "", "",
     "Leader's snapshots installed (a follower catching up).", READ(s.shell.snapshot_installs)},
    {"last_install_load_ms", kPersistence, kGauge, "hmdb_last_install_load_ms", "", "ms",
     "Duration of the last installed snapshot's load, off the event loop.", READ(s.shell.last_install_load_ms)},
    {"last_install_load_turns", kPersistence, kGauge, "hmdb_last_install_load_turns", "", "",
     "Event-loop turns while the last installed snapshot loaded.", READ(s.shell.last_install_load_turns)},
    {"last_install_load_messages", kPersistence, kGauge, "hmdb_last_install_load_messages", "", "",
     "Messages to peers the event loop sent while the last installed snapshot loaded.",
     READ(s.shell.last_install_load_messages)},
    {"last_install_prepare_messages", kPersistence, kGauge, "hmdb_last_install_prepare_messages", "", "",
     "Of those, the messages sent while the snapshot's file was synced and verified (before its install was recorded).",
     READ(s.shell.last_install_prepare_messages)},
    {"snapshots_taken", kPersistence, kCounter, "hmdb_snapshots_taken_total", "", "", "Snapshots written.",
     READ(s.shell.snapshots)},
    {"snapshot_failures", kPersistence, kCounter, "hmdb_snapshot_failures_total", "", "", "Snapshots that failed.",
     READ(s.shell.snapshot_failures)},
    {"last_snapshot_index", kPersistence, kGauge, "hmdb_last_snapshot_index", "", "", "Log index of the newest snapshot.",
     READ(s.shell.last_snapshot_index)},
    {"last_snapshot_status", kPersistence, kLabel, "hmdb_last_snapshot_status", "status", "",
     "Outcome of the last snapshot (none, ok, failed, fork failed, abandoned); the value is 1.",
     READ(s.shell.last_snapshot_status)},
    {"last_snapshot_duration_ms", kPersistence, kGauge, "hmdb_last_snapshot_duration_ms", "", "ms",
     "Duration of the last snapshot.", READ(s.shell.last_snapshot_ms)},
    {"last_snapshot_method", kPersistence, kLabel, "hmdb_last_snapshot_method", "method", "",
     "How the last snapshot was written (fork, slices; empty before the first); the value is 1.",
     READ(s.shell.last_snapshot_method)},
    {"last_snapshot_bytes", kPersistence, kGauge, "hmdb_last_snapshot_bytes", "", "bytes",
     "Size of the last snapshot's file.", READ(s.shell.last_snapshot_bytes)},
    {"last_snapshot_slices_us", kPersistence, kGauge, "hmdb_last_snapshot_slices_us", "", "us",
     "Event-loop time in the app's producer of the last snapshot written in slices, all turns.",
     READ(s.shell.last_snapshot_slice_us)},
    {"last_snapshot_slices_turn_max_us", kPersistence, kGauge, "hmdb_last_snapshot_slices_turn_max_us", "", "us",
     "Of that, the most in one event-loop turn (kTurnSnapshotBudgetUs bounds it, plus one slice).",
     READ(s.shell.last_snapshot_slice_turn_max_us)},
    {"last_snapshot_slices_turns", kPersistence, kGauge, "hmdb_last_snapshot_slices_turns", "", "",
     "Event-loop turns that encoded slices of the last snapshot written in slices.",
     READ(s.shell.last_snapshot_slice_turns)},
    {"fork_stall_last_us", kPersistence, kGauge, "hmdb_fork_stall_last_us", "", "us",
     "Event-loop stall of the last snapshot fork().", READ(s.shell.fork_last_us)},
    {"huge_pages", kPersistence, kLabel, "hmdb_huge_pages", "huge_pages", "",
     "Whether the heap is in transparent huge pages (--huge-pages: a snapshot's fork() copies 512 times fewer page "
     "table entries); yes, no, or no (why); the value is 1.",
     READ(s.options.huge_pages)},
    {"huge_pages_mend_passes", kPersistence, kCounter, "hmdb_huge_pages_mend_passes_total", "", "",
     "Passes that put back in huge pages what writes during a snapshot split (after each snapshot).",
     READ(s.shell.huge_page_mend_passes)},
    {"huge_pages_mend_ranges", kPersistence, kCounter, "hmdb_huge_pages_mend_ranges_total", "", "",
     "2 MiB ranges those passes collapsed into a huge page (or found huge already).",
     READ(s.shell.huge_page_mend_ranges)},
    {"fork_stall_max_us", kPersistence, kGauge, "hmdb_fork_stall_max_us", "", "us", "Longest fork() stall since start.",
     READ(s.shell.fork_max_us)},
    {"disk_rounds", kPersistence, kCounter, "hmdb_disk_rounds_total", "", "", "Disk-thread rounds (one write per round).",
     READ(s.disk.rounds)},
    {"disk_holds", kPersistence, kCounter, "hmdb_disk_holds_total", "", "",
     "Group-commit rounds held for the clients the previous round answered (always mode).", READ(s.disk.holds)},
    {"disk_holds_expired", kPersistence, kCounter, "hmdb_disk_holds_expired_total", "", "",
     "Holds that ended at their deadline before those clients' writes had all arrived (with or without writes "
     "waiting then).",
     READ(s.disk.holds_expired)},
    {"disk_holds_expired_unsent", kPersistence, kCounter, "hmdb_disk_holds_expired_unsent_total", "", "",
     "Of those, holds that ended before the event loop had sent the replies of the round that began them.",
     READ(s.disk.holds_expired_unsent)},
    {"disk_holds_skipped", kPersistence, kCounter, "hmdb_disk_holds_skipped_total", "", "",
     "Group-commit rounds that made client writes durable and held nothing: --group-commit-hold off, or auto with "
     "the disk the faster side (disk_hold_sync_avg_us below disk_hold_return_avg_us).",
     READ(s.disk.holds_skipped)},
    {"disk_hold_sync_avg_us", kPersistence, kGauge, "hmdb_disk_hold_sync_avg_us", "", "us",
     "--group-commit-hold auto: the fdatasync's time, averaged over the last rounds (weight 1/8 for the newest).",
     READ(s.disk.hold_sync_avg_us)},
    {"disk_hold_return_avg_us", kPersistence, kGauge, "hmdb_disk_hold_return_avg_us", "", "us",
     "--group-commit-hold auto: how long the clients a held round answered took to send their next writes, "
     "averaged over the last holds (weight 1/8). Rounds hold while the fdatasync's average is the longer.",
     READ(s.disk.hold_return_avg_us)},
    {"disk_messages_sent", kPersistence, kCounter, "hmdb_disk_messages_sent_total", "", "",
     "Peer messages (a follower's acknowledgements, votes) the disk thread sent right after the fdatasync they wait "
     "for, without waking the event loop.",
     READ(s.disk.messages_sent)},
    {"disk_quiet_acks", kPersistence, kCounter, "hmdb_disk_quiet_acks_total", "", "",
     "Disk rounds of a follower that did not wake the event loop (it takes the acknowledgement at its next turn).",
     READ(s.disk.quiet_acks)},
    {"disk_loop_rounds", kPersistence, kCounter, "hmdb_disk_loop_rounds_total", "", "",
     "Disk rounds a single node's event loop wrote and synced itself, when it would otherwise have slept until the "
     "disk thread's acknowledgement (no thread wake-up, no eventfd).",
     READ(s.disk.loop_rounds)},
    {"disk_fsyncs", kPersistence, kCounter, "hmdb_disk_fsyncs_total", "", "", "fdatasync calls on the log.",
     READ(s.disk.syncs)},
    {"disk_bytes_written", kPersistence, kCounter, "hmdb_disk_bytes_written_total", "", "bytes",
     "Bytes written to the log.", READ(s.disk.bytes)},
    {"disk_preallocated_bytes", kPersistence, kCounter, "hmdb_disk_preallocated_bytes_total", "", "bytes",
     "Zeros written ahead of the log's records, so that an fdatasync writes no new file length (docs/formats.md).",
     READ(s.disk.preallocated_bytes)},
    {"disk_preallocate_failures", kPersistence, kCounter, "hmdb_disk_preallocate_failures_total", "", "",
     "Preallocations of the log a full disk stopped: not fatal, but the disk is nearly full.",
     READ(s.disk.preallocate_failures)},
    {"fsync_last_us", kPersistence, kGauge, "hmdb_fsync_last_us", "", "us", "Duration of the last fdatasync.",
     READ(s.disk.last_sync_us)},
    {"fsync_max_us", kPersistence, kGauge, "hmdb_fsync_max_us", "", "us", "Longest fdatasync since start.",
     READ(s.disk.max_sync_us)},
    {"disk_queue_bytes", kPersistence, kGauge, "hmdb_disk_queue_bytes", "", "bytes", "Bytes queued for the disk thread.",
     READ(s.disk_queue_bytes)},
    {"recovery_entries_replayed", kPersistence, kGauge, "hmdb_recovery_entries_replayed", "", "",
     "Log entries replayed at startup.", READ(s.shell.recovered_entries)},
    {"recovery_ms", kPersistence, kGauge, "hmdb_recovery_ms", "", "ms", "Duration of startup recovery.",
     READ(s.shell.recovery_ms)},
    // # Replication (then one line per peer: kPeerStatistics)
    {"role", kReplication, kLabel, "hmdb_role", "role", "",
     "Raft role (leader, follower, precandidate, candidate, learner); the value is 1.",
     READ(std::string(role_name(s.raft.role)))},
    {"redis_role", kReplication, kInfoOnly, "", "", "", "the role again, in Redis' words",
     READ(std::string(s.raft.role == raft::Role::kLeader ? "master" : "slave"))},
    {"clustered", kReplication, kGauge, "hmdb_clustered", "", "", "1 if the node runs with peers (--peer-addr).",
     READ(uint64_t{s.options.clustered() ? 1u : 0u})},
    {"node_id", kReplication, kGauge, "hmdb_node_id", "", "", "This node's id.", READ(s.raft.id)},
    {"term", kReplication, kGauge, "hmdb_term", "", "", "Current raft term.", READ(s.raft.term)},
    {"leader_id", kReplication, kGauge, "hmdb_leader_id", "", "", "Id of the leader this node knows (0: none).",
     READ(s.raft.leader)},
    {"leader_addr", kReplication, kInfoOnly, "", "", "", "hmdb_leader_id names the leader; its address is in INFO",
     READ(s.leader_addr)},
    {"commit_index", kReplication, kGauge, "hmdb_commit_index", "", "", "Highest log index known to be committed.",
     READ(s.raft.commit)},
    {"applied_index", kReplication, kGauge, "hmdb_applied_index", "", "", "Highest log index applied to the state.",
     READ(s.applied_index)},
    {"last_index", kReplication, kGauge, "hmdb_last_index", "", "", "Last index in this node's log.",
     READ(s.raft.last_index)},
    {"first_index", kReplication, kGauge, "hmdb_first_index", "", "",
     "First index in this node's log (after the snapshot).", READ(s.raft.first_index)},
    {"log_entries", kReplication, kGauge, "hmdb_log_entries", "", "",
     "Entries in the consensus core's in-memory log (last_index - first_index + 1).",
     READ(uint64_t{s.raft.last_index + 1 - s.raft.first_index})},
    {"log_bytes", kReplication, kGauge, "hmdb_log_bytes", "", "bytes",
     "Bytes of the consensus core's in-memory log: the entries' payloads plus 32 each.", READ(s.raft.log_bytes)},
    {"log_memory_bytes", kReplication, kGauge, "hmdb_log_memory_bytes", "", "bytes",
     "--log-memory-bytes: applied log entries kept in memory for followers that fall behind (0: no bound).",
     READ(s.options.log_memory_bytes)},
    {"log_trimmed_entries", kReplication, kCounter, "hmdb_log_trimmed_entries_total", "", "",
     "Log entries dropped from memory without a snapshot (--log-memory-bytes), since this process started.",
     READ(s.raft.trimmed_entries)},
    {"snapshots_wanted", kReplication, kCounter, "hmdb_snapshots_wanted_total", "", "",
     "Times this node, leading, asked for a fresh snapshot for a follower that needs entries it no longer holds in "
     "memory.",
     READ(s.raft.snapshots_wanted)},
    {"voters", kReplication, kListCount, "hmdb_voters", "", "", "Voters in the membership in force.",
     READ(s.raft.conf.voters)},
    {"learners", kReplication, kListCount, "hmdb_learners", "", "", "Learners in the membership in force.",
     READ(s.raft.conf.learners)},
    {"leader_changes", kReplication, kCounter, "hmdb_leader_changes_total", "", "",
     "Changes of the known leader since start.", READ(s.leader_changes)},
    {"inflight_batches", kReplication, kGauge, "hmdb_inflight_batches", "", "", "Batches proposed and not yet applied.",
     READ(s.inflight_batches)},
    {"inflight_bytes", kReplication, kGauge, "hmdb_inflight_bytes", "", "bytes", "Bytes proposed and not yet applied.",
     READ(s.inflight_bytes)},
    {"pending_reads", kReplication, kGauge, "hmdb_pending_reads", "", "",
     "Linearizable reads waiting for their read index.", READ(s.pending_reads)},
    {"forward_pending", kReplication, kGauge, "hmdb_forward_pending", "", "",
     "Plain clients' commands forwarded to the leader (or waiting for one) and not yet answered.",
     READ(s.forward_pending)},
    {"forwarded_commands", kReplication, kCounter, "hmdb_forwarded_commands_total", "", "",
     "Plain clients' commands this node forwarded to the leader.", READ(s.replica.forwarded)},
    {"forward_resent", kReplication, kCounter, "hmdb_forward_resent_total", "", "",
     "Forwarded commands sent again (not run by a node that no longer led, or a query on a broken link).",
     READ(s.forward.resent)},
    {"forward_unknown_outcomes", kReplication, kCounter, "hmdb_forward_unknown_outcomes_total", "", "",
     "Forwarded writes answered 'outcome unknown': their link to the leader broke before the reply.",
     READ(s.forward.unknown_outcomes)},
    {"forward_timed_out", kReplication, kCounter, "hmdb_forward_timed_out_total", "", "",
     "Forwarded commands answered -CLUSTERDOWN: no reachable leader within the wait.", READ(s.forward.timed_out)},
    {"forward_links_broken", kReplication, kCounter, "hmdb_forward_links_broken_total", "", "",
     "Links to the leader's client port that failed, or closed with replies in flight.",
     READ(s.forward.links_broken)},
    {"forward_handshakes_refused", kReplication, kCounter, "hmdb_forward_handshakes_refused_total", "", "",
     "Links to the leader closed because it refused their handshake (password, ACL user); their clients get an error.",
     READ(s.forward.handshakes_refused)},
    // # Stats
    {"total_connections_received", kStats, kCounter, "hmdb_connections_received_total", "", "",
     "Client connections accepted.", READ(s.shell.connections_received)},
    {"rejected_connections", kStats, kCounter, "hmdb_rejected_connections_total", "", "",
     "Client connections refused (--max-clients).", READ(s.shell.rejected_connections)},
    {"acl_access_denied_auth", kStats, kCounter, "hmdb_auth_failures_total", "", "",
     "AUTH and HELLO AUTH attempts refused: wrong user or password.", READ(s.shell.auth_failures)},
    {"total_commands_processed", kStats, kCounter, "hmdb_commands_processed_total", "", "",
     "Client commands processed.", READ(s.replica.commands)},
    {"total_writes", kStats, kCounter, "hmdb_writes_total", "", "", "Write commands proposed.", READ(s.replica.writes)},
    {"total_batches", kStats, kCounter, "hmdb_batches_total", "", "", "Batches (log entries) proposed.",
     READ(s.replica.batches)},
    {"total_writes_unchanged", kStats, kCounter, "hmdb_writes_unchanged_total", "", "",
     "Write commands answered as reads, not logged: their app said they would change nothing (kv: a pop of a "
     "missing key) and nothing was pending (docs/architecture.md, \"Writes that change nothing\").",
     READ(s.replica.unchanged_writes)},
    {"total_transactions", kStats, kCounter, "hmdb_transactions_total", "", "",
     "EXECs whose writes joined a batch as one group.", READ(s.replica.transactions)},
    {"transactions_watch_failed", kStats, kCounter, "hmdb_transactions_watch_failed_total", "", "",
     "EXECs answered with a null array: a WATCHed key changed (or may have: docs/kv-commands.md).",
     READ(s.replica.transactions_watch_failed)},
    {"protocol_errors", kStats, kCounter, "hmdb_protocol_errors_total", "", "",
     "Client connections closed for a protocol error.", READ(s.shell.protocol_errors)},
    {"tls_handshake_failures", kStats, kCounter, "hmdb_tls_handshake_failures_total", "", "",
     "TLS client connections refused at the handshake: no certificate, one the CA did not sign or expired, not TLS.",
     READ(s.shell.tls_handshake_failures)},
    {"tls_peer_handshake_failures", kStats, kCounter, "hmdb_tls_peer_handshake_failures_total", "", "",
     "Peer connections refused at the TLS handshake (--tls-replication): no certificate the cluster's CA signed, "
     "an expired one, not TLS.",
     READ(s.peer_tls_refused)},
    {"tls_reloads", kStats, kCounter, "hmdb_tls_reloads_total", "", "",
     "Certificate reloads (SIGHUP) that took effect.", READ(s.shell.tls_reloads)},
    {"tls_reload_failures", kStats, kCounter, "hmdb_tls_reload_failures_total", "", "",
     "Certificate reloads (SIGHUP) refused: a file missing or bad; the certificates in use stayed.",
     READ(s.shell.tls_reload_failures)},
    {"output_limit_disconnects", kStats, kCounter, "hmdb_output_limit_disconnects_total", "", "",
     "Clients disconnected for not reading their replies.", READ(s.shell.output_limit_disconnects)},
    {"busy_refusals", kStats, kCounter, "hmdb_busy_refusals_total", "", "",
     "Proposals refused by raft's uncommitted-bytes bound (retried).", READ(s.replica.busy_refusals)},
    {"total_requests", kStats, kCounter, "hmdb_requests_total", "", "",
     "Writes and EXECs tagged with a request id (HMDB.REQ) proposed.", READ(s.replica.requests)},
    {"request_repeats", kStats, kCounter, "hmdb_request_repeats_total", "", "",
     "Tagged writes applied here as retries: answered with the first reply, not applied again.",
     READ(s.requests.repeats)},
    {"request_ids", kStats, kGauge, "hmdb_request_ids", "", "", "Request ids in the request table.",
     READ(s.request_ids)},
    {"request_table_bytes", kStats, kGauge, "hmdb_request_table_bytes", "", "bytes",
     "Bytes the request table counts against its bound (64 MiB).", READ(s.request_table_bytes)},
    {"request_ids_evicted_early", kStats, kCounter, "hmdb_request_ids_evicted_early_total", "", "",
     "Request ids evicted by the byte bound before their retention (10 min) ran out.",
     READ(s.requests.evicted_by_bytes)},
    {"loop_turn_max_ms", kStats, kGauge, "hmdb_loop_turn_max_ms", "", "ms", "Longest event-loop turn since start.",
     READ(s.shell.loop_turn_max_ms)},
    {"slow_turns", kStats, kCounter, "hmdb_slow_turns_total", "", "", "Event-loop turns of at least 100 ms.",
     READ(s.shell.slow_turns)},
    {"read_bound_turns", kStats, kCounter, "hmdb_read_bound_turns_total", "", "",
     "Event-loop turns that read their bound from clients (256 KiB, kTurnReadBytesMax); the clients left unread go first in the next turn.",
     READ(s.shell.read_bound_turns)},
    {"long_turns", kStats, kCounter, "hmdb_long_turns_total", "", "", "Event-loop turns of at least 20 ms.",
     READ(s.shell.long_turns)},
    {"long_turns_ms", kStats, kCounter, "hmdb_long_turns_ms_total", "", "ms", "Wall time of the turns of at least 20 ms.",
     READ(s.shell.long_turns_us / 1000)},
    {"long_turns_cpu_ms", kStats, kCounter, "hmdb_long_turns_cpu_ms_total", "", "ms",
     "The loop thread's CPU time during the turns of at least 20 ms (the rest it waited for a CPU).",
     READ(s.shell.long_turns_cpu_us / 1000)},
    {"long_turns_cpu_max_ms", kStats, kCounter, "hmdb_long_turns_cpu_max_ms_total", "", "ms",
     "At most this much CPU time during the turns of at least 20 ms (long_turns_cpu_ms is at least).",
     READ(s.shell.long_turns_cpu_max_us / 1000)},
    {"long_turns_on_cpu", kStats, kCounter, "hmdb_long_turns_on_cpu_total", "", "",
     "Turns of at least 20 ms that were at least 80 % on the CPU: the server's own work.",
     READ(s.shell.long_turns_on_cpu)},
    {"last_long_turn_ms", kStats, kGauge, "hmdb_last_long_turn_ms", "", "ms", "Wall time of the last turn of at least 20 ms.",
     READ(s.shell.last_long_turn_us / 1000)},
    {"last_long_turn_cpu_ms", kStats, kGauge, "hmdb_last_long_turn_cpu_ms", "", "ms",
     "The loop thread's CPU time during the last turn of at least 20 ms.", READ(s.shell.last_long_turn_cpu_us / 1000)},
    {"last_long_turn_cpu_max_ms", kStats, kGauge, "hmdb_last_long_turn_cpu_max_ms", "", "ms",
     "At most this much CPU time during the last turn of at least 20 ms.",
     READ(s.shell.last_long_turn_cpu_max_us / 1000)},
    {"last_long_turn_preemptions", kStats, kGauge, "hmdb_last_long_turn_preemptions", "", "",
     "Involuntary context switches of the loop thread around the last turn of at least 20 ms.",
     READ(s.shell.last_long_turn_preemptions)},
    {"loop_turns", kStats, kCounter, "hmdb_loop_turns_total", "", "", "Event-loop turns.", READ(s.shell.loop_turns)},
    {"loop_ack_waits", kStats, kCounter, "hmdb_loop_ack_waits_total", "", "",
     "Times the event loop slept until the disk's acknowledgement of its writes, not the next client event (a single "
     "node, always mode).",
     READ(s.shell.ack_waits)},
    {"sliced_replies", kStats, kCounter, "hmdb_sliced_replies_total", "", "",
     "Big replies (KEYS, SMEMBERS, ...) made in slices across loop turns while the apply waited.",
     READ(s.replica.sliced_replies)},
    {"sliced_replies_in_progress", kStats, kGauge, "hmdb_sliced_replies_in_progress", "", "",
     "Sliced replies not yet complete: no log entry is applied meanwhile.", READ(s.sliced_replies_in_progress)},
    {"reply_slices", kStats, kCounter, "hmdb_reply_slices_total", "", "", "Slices made for sliced replies.",
     READ(s.replica.reply_slices)},
    {"slice_hold_overdue_turns", kStats, kCounter, "hmdb_slice_hold_overdue_turns_total", "", "",
     "Turns that finished sliced replies whole: the apply had waited for them 30 s.",
     READ(s.replica.slice_hold_overdue_turns)},
    {"slice_reader_waits_expired", kStats, kCounter, "hmdb_slice_reader_waits_expired_total", "", "",
     "Slices made for a client that had not read its reply's last 4 MiB for 200 ms (a slow reader holds no write "
     "longer).",
     READ(s.replica.slice_reader_waits_expired)},
    {"sliced_replies_buffered", kStats, kCounter, "hmdb_sliced_replies_buffered_total", "", "",
     "Sliced replies made into memory instead of sent slice by slice: on a forwarding link, behind another client's "
     "write that waits for the apply they hold.",
     READ(s.replica.sliced_replies_buffered)},
    {"sliced_writes", kStats, kCounter, "hmdb_sliced_writes_total", "", "",
     "Big writes (SUNIONSTORE, ZINTERSTORE, ...) computed in slices across loop turns while the apply waited.",
     READ(s.replica.sliced_writes)},
    {"write_slices", kStats, kCounter, "hmdb_write_slices_total", "", "", "Slices made for sliced writes.",
     READ(s.replica.write_slices)},
    {"apply_yields", kStats, kCounter, "hmdb_apply_yields_total", "", "",
     "Log entries whose apply stopped for the loop turn's budget (8 ms, kTurnApplyBudgetUs) and went on in the next turn.",
     READ(s.replica.apply_yields)},
    {"applying_index", kStats, kGauge, "hmdb_applying_index", "", "",
     "Log index of the entry whose write is being applied in slices (0: none): it and the entries after it wait; "
     "no snapshot is taken meanwhile.",
     READ(s.applying_index)},
    // Live updates (docs/subscriptions.md); the first two are Redis' own fields.
    {"pubsub_channels", kStats, kGauge, "hmdb_pubsub_channels", "", "", "Channels with a subscriber on this node.",
     READ(s.pubsub_channels)},
    {"pubsub_patterns", kStats, kGauge, "hmdb_pubsub_patterns", "", "", "Patterns with a subscriber on this node.",
     READ(s.pubsub_patterns)},
    {"pubsub_subscribers", kStats, kGauge, "hmdb_pubsub_subscribers", "", "",
     "Connections with at least one subscription.", READ(s.pubsub_subscribers)},
    {"pubsub_catching_up", kStats, kGauge, "hmdb_pubsub_catching_up", "", "",
     "Subscribers resuming from a past position, given retained events as their output drains.",
     READ(s.pubsub_catching_up)},
    {"pubsub_lag_entries_max", kStats, kGauge, "hmdb_pubsub_lag_entries_max", "", "",
     "Log entries the furthest-behind catching-up subscriber still has to look at (CLIENT LIST lag= per client).",
     READ(s.pubsub_lag_entries_max)},
    {"pubsub_events", kStats, kCounter, "hmdb_pubsub_events_total", "", "",
     "Events applied entries emitted on this node (PUBLISH, app events, keyspace notifications it renders).",
     READ(s.pubsub.events)},
    {"pubsub_messages_delivered", kStats, kCounter, "hmdb_pubsub_messages_delivered_total", "", "",
     "Messages appended to subscribers' output.", READ(s.pubsub.messages)},
    {"pubsub_ended_slow", kStats, kCounter, "hmdb_pubsub_ended_slow_total", "", "",
     "Subscriptions ended: more than --subscriber-output-bytes unread.", READ(s.pubsub.ended_slow)},
    {"pubsub_ended_behind", kStats, kCounter, "hmdb_pubsub_ended_behind_total", "", "",
     "Subscriptions ended: a catch-up fell behind the retained events.", READ(s.pubsub.ended_behind)},
    {"pubsub_ended_snapshot", kStats, kCounter, "hmdb_pubsub_ended_snapshot_total", "", "",
     "Subscriptions ended: this node installed the leader's snapshot over their entries.",
     READ(s.pubsub.ended_snapshot)},
    {"pubsub_resumes", kStats, kCounter, "hmdb_pubsub_resumes_total", "", "",
     "Subscriptions from a past position accepted (HMDB.SUBSCRIBE).", READ(s.pubsub.resumes)},
    {"pubsub_resumes_refused", kStats, kCounter, "hmdb_pubsub_resumes_refused_total", "", "",
     "Subscriptions refused: their position is older than the retained events (-OLDPOSITION).",
     READ(s.pubsub.resumes_refused)},
    {"events_retained", kStats, kGauge, "hmdb_events_retained", "", "", "Events kept for resuming subscribers.",
     READ(s.events_retained)},
    {"events_retained_bytes", kStats, kGauge, "hmdb_events_retained_bytes", "", "bytes",
     "Bytes the retained events count against --events-retain-bytes.", READ(s.events_retained_bytes)},
    {"events_oldest_index", kStats, kGauge, "hmdb_events_oldest_index", "", "",
     "Resumes from positions before this log index are refused (the events after it are retained).",
     READ(s.events_oldest_index)},
    // # Cluster (Redis' section: cluster clients check it; CLUSTER INFO has the rest)
    {"cluster_enabled", kCluster, kInfoOnly, "", "", "", "hmdb_clustered again, in Redis' words",
     READ(uint64_t{s.options.clustered() ? 1u : 0u})},
    // # Digest (only `INFO digest`: hashing a large state takes time on the event loop)
    {"state_digest", kDigest, kInfoOnly, "", "", "", "a hash, not a measurement; only collected for INFO digest",
     READ(s.state_digest ? fmt::format("{:016x}", *s.state_digest) : std::string())},
    {"state_digest_schema_version", kDigest, kInfoOnly, "", "", "",
     "the schema version the digest hashed the app's state at (core/state.h): digests compare at the same one",
     READ(uint64_t{s.state_digest_schema_version})},
    {"applied_index", kDigest, kInfoOnly, "", "", "",
     "the replication section's applied_index again (hmdb_applied_index), next to the digest it belongs to",
     READ(s.applied_index)},
};

#undef READ
#define READ(expr) [](const PeerSource& p) -> StatValue { return expr; }

// The fields of one `peer<ID>:addr=...,connected=...,...` line of INFO replication.
constexpr PeerStatistic kPeerStatistics[] = {
    {"addr", kLabel, "hmdb_peer_info", "addr", false, "",
     "A peer's address and state (voter, learner; - where this node is not its leader); the value is 1.",
     READ(p.transport.addr)},
    {"connected", kGauge, "hmdb_peer_connected", "", false, "", "1 if this node's connection to the peer is up.",
     READ(uint64_t{p.transport.connected ? 1u : 0u})},
    {"match", kGauge, "hmdb_peer_match_index", "", true, "0",
     "Leader only: highest log index the peer is known to hold.", READ(p.progress->match)},
    {"lag", kGauge, "hmdb_peer_lag_entries", "", true, "-",
     "Leader only: entries the peer is behind the leader's last index.",
     READ(p.last_index > p.progress->match ? p.last_index - p.progress->match : 0)},
    {"state", kLabel, "hmdb_peer_info", "state", false, "", "The peer's state (a label of hmdb_peer_info).",
     READ(std::string(p.progress == nullptr ? "-" : p.progress->is_learner ? "learner" : "voter"))},
    {"sent", kCounter, "hmdb_peer_messages_sent_total", "", false, "", "Raft messages sent to the peer.",
     READ(p.transport.msgs_sent)},
    {"dropped", kCounter, "hmdb_peer_messages_dropped_total", "", false, "",
     "Raft messages to the peer dropped (no connection, queue full; raft retransmits).",
     READ(p.transport.msgs_dropped)},
    {"received", kCounter, "hmdb_peer_messages_received_total", "", false, "", "Raft messages received from the peer.",
     READ(p.transport.msgs_received)},
    {"refused", kCounter, "hmdb_peer_frames_refused_total", "", false, "",
     "Frames from the peer refused (bad checksum, ...).", READ(p.transport.frames_refused)},
    {"sent_bytes", kCounter, "hmdb_peer_bytes_sent_total", "", false, "",
     "Bytes written to the peer's connection (log entries, snapshot chunks, heartbeats).",
     READ(p.transport.bytes_sent)},
    {"snapshot_sent", kGauge, "hmdb_peer_snapshot_sent_bytes", "", true, "-",
     "Leader only: bytes of the snapshot being sent to the peer that it acknowledged (0: none being sent).",
     READ(p.progress->sending_snapshot ? p.progress->snapshot_acked : 0)},
    {"snapshot_bytes", kGauge, "hmdb_peer_snapshot_bytes", "", true, "-",
     "Leader only: size of the snapshot being sent to the peer (0: none, or its size not yet read).",
     READ(p.progress->sending_snapshot ? p.progress->snapshot_total : 0)},
};

#undef READ

constexpr std::string_view kAppMetricPrefix = "hmdb_app_";
constexpr std::string_view kAppMetricHelp = "A field of the app's INFO section.";

struct SectionName {
  StatSection section;
  std::string_view name;  // as INFO's header says it; INFO <name> asks for it, case-insensitive
};
// INFO's sections in order (App between Cluster and Digest, written from the app's text).
constexpr SectionName kSections[] = {{kServer, "Server"},   {kClients, "Clients"}, {kPersistence, "Persistence"},
                                     {kReplication, "Replication"}, {kStats, "Stats"},     {kCluster, "Cluster"},
                                     {kApp, "App"},                 {kDigest, "Digest"}};

std::string value_text(const StatValue& v) {
  if (const uint64_t* n = std::get_if<uint64_t>(&v)) return std::to_string(*n);
  if (const std::string* t = std::get_if<std::string>(&v)) return *t;
  return fmt::format("{}", fmt::join(std::get<std::vector<uint64_t>>(v), ","));
}

// The sample value of a gauge or counter (a list counts its items).
std::string sample_value(StatKind kind, const StatValue& v) {
  if (kind == kListCount) return std::to_string(std::get<std::vector<uint64_t>>(v).size());
  HMDB_ASSERT(std::holds_alternative<uint64_t>(v), "a gauge or counter whose value is not a number");
  return std::to_string(std::get<uint64_t>(v));
}

// ---- the exposition format ----

std::string escape_help(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// An app's field name as a metric name: [a-zA-Z0-9_:] kept, anything else becomes '_'.
std::string sanitize_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  return out;
}

// The number forms the exposition format accepts as they are:
// -?digits(.digits)?([eE][-+]?digits)?. (Not from_chars: it also takes "inf" and "nan".)
bool is_number(std::string_view v) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') i++;
    return i > start;
  };
  if (i < v.size() && v[i] == '-') i++;
  if (!digits()) return false;
  if (i < v.size() && v[i] == '.') {
    i++;
    if (!digits()) return false;
  }
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    i++;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) i++;
    if (!digits()) return false;
  }
  return i == v.size();
}

using Labels = std::vector<std::pair<std::string_view, std::string>>;

struct Family {
  std::string name;
  std::string_view help;
  StatKind kind = kGauge;
  std::vector<std::pair<Labels, std::string>> samples;  // (labels, value)
};

void write_family(const Family& f, std::string* out) {
  if (f.samples.empty()) return;
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(f.help), f.name,
                      f.kind == kCounter ? "counter" : "gauge");
  for (const auto& [labels, value] : f.samples) {
    *out += f.name;
    if (!labels.empty()) {
      *out += '{';
      for (size_t i = 0; i < labels.size(); i++) {
        if (i > 0) *out += ',';
        *out += fmt::format("{}=\"{}\"", labels[i].first, escape_label_value(labels[i].second));
      }
      *out += '}';
    }
    *out += ' ';
    *out += value;
    *out += '\n';
  }
}

// Rows that share a metric are one family, at the place of its first row.
template <class Row>
std::vector<std::string_view> family_order(std::span<const Row> rows) {
  std::vector<std::string_view> names;
  for (const Row& r : rows)
    if (r.kind != kInfoOnly && std::find(names.begin(), names.end(), r.metric) == names.end())
      names.push_back(r.metric);
  return names;
}

// The app's `field:value` lines whose value is a number (first occurrence of a field wins;
// CRLF or LF; other lines are left out).
std::vector<std::pair<std::string_view, std::string_view>> app_numbers(std::string_view text) {
  std::vector<std::pair<std::string_view, std::string_view>> fields;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t colon = line.find(':');
    if (line.empty() || line[0] == '#' || colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    if (std::any_of(fields.begin(), fields.end(), [&](const auto& f) { return f.first == key; })) continue;
    fields.emplace_back(key, value);
  }
  std::erase_if(fields, [](const auto& f) { return !is_number(f.second); });
  return fields;
}

}  // namespace

std::span<const Statistic> node_statistics() { return kStatistics; }
std::span<const PeerStatistic> peer_statistics() { return kPeerStatistics; }

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Collecting

CollectedStatistics collect_statistics(const StatisticsSources& sources) {
  CollectedStatistics c;
  c.values.reserve(std::size(kStatistics));
  for (const Statistic& st : kStatistics) c.values.push_back(st.read(sources));
  for (const net::PeerTransport::PeerStats& ps : sources.peers) {
    const raft::Status::Progress* progress = nullptr;
    for (const raft::Status::Progress& p : sources.raft.progress)
      if (p.id == ps.id) progress = &p;
    const PeerSource peer{ps, progress, sources.raft.last_index};
    CollectedStatistics::Peer out;
    out.id = ps.id;
    for (const PeerStatistic& st : kPeerStatistics) {
      if (st.leader_only && progress == nullptr) out.values.emplace_back();
      else out.values.emplace_back(st.read(peer));
    }
    c.peers.push_back(std::move(out));
  }
  c.app_info = sources.app_info;
  c.digest = sources.state_digest.has_value();
  return c;
}

// ---------------------------------------------------------------------------------------
// INFO

std::string render_info_fields(const CollectedStatistics& stats, StatSection section) {
  HMDB_ASSERT(stats.values.size() == std::size(kStatistics), "values collected for another table");
  HMDB_ASSERT(section != kDigest || stats.digest, "INFO digest without a collected digest");
  std::string t;
  for (size_t i = 0; i < std::size(kStatistics); i++) {
    if (kStatistics[i].section != section) continue;
    t += fmt::format("{}:{}\r\n", kStatistics[i].name, value_text(stats.values[i]));
  }
  if (section == kReplication) {
    for (const CollectedStatistics::Peer& p : stats.peers) {
      t += fmt::format("peer{}:", p.id);
      for (size_t i = 0; i < std::size(kPeerStatistics); i++) {
        if (i > 0) t += ',';
        const PeerStatistic& st = kPeerStatistics[i];
        const std::optional<StatValue>& v = p.values[i];
        t += fmt::format("{}={}", st.name, v ? value_text(*v) : std::string(st.not_leading));
      }
      t += "\r\n";
    }
  }
  return t;
}

std::string render_info(const CollectedStatistics& stats, std::string_view section) {
  const bool all = iequals(section, "all") || iequals(section, "everything") || iequals(section, "default");
  std::string t;
  for (const SectionName& s : kSections) {
    const bool wanted = s.section == kDigest ? iequals(section, s.name)
                        : s.section == kApp  ? all || iequals(section, s.name) || iequals(section, "keyspace")
                                             : all || iequals(section, s.name);
    if (!wanted) continue;
    t += fmt::format("# {}\r\n", s.name);
    if (s.section == kApp) {
      t += stats.app_info;
      if (t.back() != '\n') t += "\r\n";
    } else {
      t += render_info_fields(stats, s.section);
    }
    t += "\r\n";
  }
  return t;
}

// ---------------------------------------------------------------------------------------
// Prometheus

std::string render_prometheus(const CollectedStatistics& stats) {
  HMDB_ASSERT(stats.values.size() == std::size(kStatistics), "values collected for another table");
  std::string out;
  // 1. The node's statistics, one family per metric, in table order.
  for (std::string_view name : family_order(std::span<const Statistic>(kStatistics))) {
    Family f;
    f.name = name;
    Labels labels;
    bool first_row = true;
    for (size_t i = 0; i < std::size(kStatistics); i++) {
      const Statistic& st = kStatistics[i];
      if (st.metric != name) continue;
      if (first_row) f.help = st.help, f.kind = st.kind, first_row = false;
      if (st.kind == kLabel) labels.emplace_back(st.label, value_text(stats.values[i]));
      else f.samples.push_back({{}, sample_value(st.kind, stats.values[i])});
    }
    if (!labels.empty()) f.samples.push_back({std::move(labels), "1"});
    write_family(f, &out);
  }

  // 2. Per peer: one family per peer metric, one sample per peer (ascending ids).
  std::vector<const CollectedStatistics::Peer*> peers;
  for (const CollectedStatistics::Peer& p : stats.peers) peers.push_back(&p);
  std::sort(peers.begin(), peers.end(), [](const auto* a, const auto* b) { return a->id < b->id; });
  for (std::string_view name : family_order(std::span<const PeerStatistic>(kPeerStatistics))) {
    Family f;
    f.name = name;
    for (const PeerStatistic& st : kPeerStatistics) {
      if (st.metric == name) {
        f.help = st.help, f.kind = st.kind;
        break;
      }
    }
    for (const CollectedStatistics::Peer* p : peers) {
      Labels labels{{"peer", std::to_string(p->id)}};
      bool any_label = false;
      for (size_t i = 0; i < std::size(kPeerStatistics); i++) {
        const PeerStatistic& st = kPeerStatistics[i];
        if (st.metric != name || !p->values[i]) continue;
        if (st.kind == kLabel) {
          labels.emplace_back(st.label, value_text(*p->values[i]));
          any_label = true;
        } else {
          f.samples.push_back({labels, sample_value(st.kind, *p->values[i])});
        }
      }
      if (any_label) f.samples.push_back({std::move(labels), "1"});
    }
    write_family(f, &out);
  }

  // 3. The app's own lines: the numbers become gauges; the app decides what they mean.
  for (const auto& [key, value] : app_numbers(stats.app_info)) {
    Family f;
    f.name = std::string(kAppMetricPrefix) + sanitize_name(key);
    f.help = kAppMetricHelp;
    f.samples.push_back({{}, std::string(value)});
    write_family(f, &out);
  }
  return out;
}

}  // namespace hmdb::server
