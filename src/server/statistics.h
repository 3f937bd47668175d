// server/statistics.h — every statistic of a node described once, collected as typed
// values, and rendered two ways: INFO's text (clients and tests parse it) and the
// Prometheus text exposition format 0.0.4 (served by metrics.h's listener).
//
//   StatisticsSources   what the statistics are read from: the shell's settings and
//                       counters, the replica's, the disk thread's, the consensus core's
//                       status, the peer transport's per-peer counters, the app's INFO text.
//                       Plain values, gathered by the node in one go (Node::statistics_sources)
//                       for an INFO command or a scrape, never per command; a test fills one
//                       by hand.
//   node_statistics()   the one description of every statistic, in INFO's order: INFO field
//   peer_statistics()   name, section, kind, Prometheus name, label, unit, help, and how to
//                       read its value from the sources. docs/operations.md "Metrics" lists it.
//   collect_statistics  runs every reader: the values.
//   render_info         INFO's text (`# Section` headers, `field:value` lines, CRLF).
//   render_prometheus   the exposition text: one family per metric, in table order.
//
// The app's own lines (StateMachine::info()) are free text: INFO prints them as they are;
// Prometheus exports each `field:value` line whose value is a number as a gauge
// hmdb_app_<field> and leaves the rest out.
//
// Thread-safety: plain functions over values; no state.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/forwarder.h"
#include "core/replica.h"
#include "net/peer_transport.h"
#include "raft/raft.h"
#include "server/disk_thread.h"
#include "server/options.h"

namespace hmdb::server {

// ---- what the statistics are read from ----

// The shell's own counters and observations (the replica, the disk thread and the peer
// transport keep theirs). CONFIG RESETSTAT zeroes them, start_ms excepted.
struct ShellStats {
  uint64_t start_ms = 0;  // wall clock at startup
  uint64_t connections_received = 0;
  uint64_t rejected_connections = 0;
  uint64_t auth_failures = 0;  // AUTH / HELLO AUTH refused (wrong user or password)
  uint64_t protocol_errors = 0;
  uint64_t tls_handshake_failures = 0;  // client TLS connections refused or broken (client_io.cc)
  uint64_t tls_reloads = 0, tls_reload_failures = 0;  // SIGHUP: certificates read again
  uint64_t output_limit_disconnects = 0;
  uint64_t snapshots = 0;
  uint64_t snapshot_failures = 0;
  raft::Index last_snapshot_index = 0;
  uint64_t last_snapshot_ms = 0;
  uint64_t fork_last_us = 0;
  uint64_t fork_max_us = 0;
  // The last snapshot's method ("fork", "slices"; "" before the first) and file size; of one
  // written in slices (--snapshot-method slices), the loop's time in the app's producer over
  // all turns, the most of it in one turn, and the turns.
  std::string last_snapshot_method;
  uint64_t last_snapshot_bytes = 0;
  uint64_t last_snapshot_slice_us = 0;
  uint64_t last_snapshot_slice_turn_max_us = 0;
  uint64_t last_snapshot_slice_turns = 0;
  // HugePageMender's completed passes and 2 MiB ranges collapsed (or found huge already).
  uint64_t huge_page_mend_passes = 0;
  uint64_t huge_page_mend_ranges = 0;
  std::string last_snapshot_status = "none";
  // The leader's snapshots installed (followers), and the last one's load off the loop: its
  // duration, and the loop turns and messages to peers while it loaded (the loop kept
  // answering: a heartbeat's answer is such a message).
  uint64_t snapshot_installs = 0;
  uint64_t last_install_load_ms = 0;
  uint64_t last_install_load_turns = 0;
  uint64_t last_install_load_messages = 0;
  uint64_t last_install_prepare_messages = 0;  // of those, before the file was durable
  // --durability none: times the in-memory log was trimmed to the applied index
  // (Node::trim_unlogged_log).
  uint64_t unlogged_log_trims = 0;
  uint64_t recovered_entries = 0;
  uint64_t recovery_ms = 0;
  uint64_t loop_turn_max_ms = 0;  // longest turn spent working (not waiting in epoll)
  uint64_t slow_turns = 0;        // turns of at least kSlowTurnMs
  uint64_t read_bound_turns = 0;  // turns whose client reads reached kTurnReadBytesMax
  // Turns of at least kLongTurnMs: their count, wall time, the loop thread's CPU time
  // during them (options.h, kTurnCpuReadMinUs), those mostly on the CPU, and the last one.
  uint64_t long_turns = 0;
  uint64_t long_turns_us = 0;
  uint64_t long_turns_cpu_us = 0;      // at least (the turns between readings discounted)
  uint64_t long_turns_cpu_max_us = 0;  // at most (the CPU time since the reading before)
  uint64_t long_turns_on_cpu = 0;
  uint64_t last_long_turn_us = 0;
  uint64_t last_long_turn_cpu_us = 0;
  uint64_t last_long_turn_cpu_max_us = 0;
  uint64_t last_long_turn_preemptions = 0;  // involuntary context switches of the loop thread
  uint64_t loop_turns = 0;        // every turn
  uint64_t ack_waits = 0;         // sleeps on the disk's acknowledgement, not the clients (Node::wait_for_disk_ack)
};

struct StatisticsSources {
  // The process.
  std::string version;        // hmdb's
  std::string redis_version;  // the Redis version INFO and HELLO claim, for clients
  std::string app_name;
  uint32_t schema_version = 0;         // the newest the binary reads
  uint32_t schema_version_oldest = 0;  // the oldest it reads
  uint32_t schema_version_active = 0;  // replicated: what writes are logged under
  uint64_t schema_blocked_at_index = 0;  // 0: not blocked (core::Replica::schema_block)
  uint32_t schema_blocked_version = 0;
  uint64_t process_id = 0;
  uint16_t port = 0;  // the client port bound
  ServerOptions options;
  uint64_t now_ms = 0;  // wall clock, for the uptime
  // Clients.
  uint64_t connected_clients = 0;
  uint64_t blocked_clients = 0;  // core::BlockedTable::blocked_clients
  uint64_t client_output_limit_bytes = 0;
  // Persistence.
  ShellStats shell;
  uint64_t log_bytes_since_snapshot = 0;
  bool snapshot_in_progress = false;
  bool snapshot_slices_in_progress = false;  // the one in progress is written in slices
  bool snapshot_loading = false;  // a leader's snapshot loads in the background (Node::SnapshotLoad)
  DiskStats disk;  // zero without a disk thread (--durability none)
  uint64_t disk_queue_bytes = 0;
  // Replication.
  raft::Status raft;
  std::string leader_addr;  // the leader's client address; empty if unknown
  core::Replica::Stats replica;
  raft::Index applied_index = 0;
  uint64_t leader_changes = 0;
  uint64_t inflight_batches = 0;
  uint64_t sliced_replies_in_progress = 0;  // the apply waits for them (core::Replica::producing)
  uint64_t applying_index = 0;  // an entry with a write half applied (core::Replica::applying_index), or 0
  uint64_t inflight_bytes = 0;
  uint64_t pending_reads = 0;
  core::Forwarder::Stats forward;  // zero for a single node
  uint64_t forward_pending = 0;
  // The request table of tagged writes (core/request_table.h).
  uint64_t request_ids = 0;
  uint64_t request_table_bytes = 0;
  core::RequestTable::Stats requests;
  std::vector<net::PeerTransport::PeerStats> peers;  // empty for a single node
  uint64_t peer_tls_refused = 0;  // net::PeerTransport::tls_handshakes_refused
  // Live updates (core/pubsub.h).
  core::PubSub::Stats pubsub;
  uint64_t pubsub_channels = 0;
  uint64_t pubsub_patterns = 0;
  uint64_t pubsub_subscribers = 0;
  uint64_t pubsub_catching_up = 0;
  uint64_t pubsub_lag_entries_max = 0;
  uint64_t events_retained = 0;
  uint64_t events_retained_bytes = 0;
  uint64_t events_oldest_index = 0;  // resumes from positions in entries before it are refused
  // The app's own INFO lines (StateMachine::info()): free text.
  std::string app_info;
  // Only for `INFO digest` (hashing the state takes time on the event loop).
  std::optional<uint64_t> state_digest;
  uint32_t state_digest_schema_version = 0;  // the app schema version it hashed the state at
};

// What the replication section and the peer lines call a raft role.
std::string_view role_name(raft::Role role);

// ---- the description ----

enum class StatSection : uint8_t { kServer, kClients, kPersistence, kReplication, kStats, kCluster, kApp, kDigest };

enum class StatKind : uint8_t {
  kGauge,      // a number that may go up and down (levels, indexes, sizes, settings, last/max)
  kCounter,    // a number of events since the process started: the metric's name ends in _total
  kLabel,      // a text: label `label` of the metric, whose value is 1 (rows may share a metric)
  kListCount,  // a list of ids: INFO prints them comma-separated; the metric is how many
  kInfoOnly,   // INFO only; `help` says why it is not exported
};

// kGauge, kCounter: a number; kLabel, kInfoOnly: a number or a text; kListCount: ids.
using StatValue = std::variant<uint64_t, std::string, std::vector<uint64_t>>;

struct Statistic {
  std::string_view name;  // INFO field
  StatSection section;
  StatKind kind;
  std::string_view metric;  // Prometheus name (empty for kInfoOnly)
  std::string_view label;   // kLabel: the label that carries the value
  std::string_view unit;    // "seconds", "ms", "us", "bytes"; empty for counts, ids, flags
  std::string_view help;    // the metric's HELP (a shared metric takes its first row's)
  StatValue (*read)(const StatisticsSources& s);
};

// One peer as the per-peer statistics read it: the transport's counters and, where this
// node leads, the consensus core's progress of that peer.
struct PeerSource {
  const net::PeerTransport::PeerStats& transport;
  const raft::Status::Progress* progress;  // null where this node does not lead
  raft::Index last_index;                  // this node's last log index
};

// A field of one `peer<ID>:field=value,...` line of INFO replication; every sample carries
// the label peer="<ID>".
struct PeerStatistic {
  std::string_view name;  // INFO field within the peer line
  StatKind kind;
  std::string_view metric;
  std::string_view label;  // kLabel
  // Leader only: a follower knows nothing of its peers' progress; INFO then prints
  // `not_leading` and the metric is left out rather than exported as 0.
  bool leader_only;
  std::string_view not_leading;
  std::string_view help;
  StatValue (*read)(const PeerSource& p);
};

// Every statistic, in INFO's order (which is also the order of the metric families).
std::span<const Statistic> node_statistics();
// The fields of a peer line, in INFO's order.
std::span<const PeerStatistic> peer_statistics();

// ---- values and their renderings ----

struct CollectedStatistics {
  std::vector<StatValue> values;  // one per node_statistics() row
  struct Peer {
    raft::NodeId id = raft::kNoNode;
    std::vector<std::optional<StatValue>> values;  // one per peer_statistics() row; none: leader only
  };
  std::vector<Peer> peers;  // in the transport's order (ascending ids)
  std::string app_info;
  bool digest = false;  // the Digest section was collected (StatisticsSources::state_digest)
};

CollectedStatistics collect_statistics(const StatisticsSources& sources);

// INFO's text for `INFO <section>`: one section by name (case-insensitive; `keyspace` is
// `app`), every section but digest for `all`, `everything` and `default`, the digest only
// for `digest` (REQUIRES: collected with state_digest), nothing for an unknown name.
std::string render_info(const CollectedStatistics& stats, std::string_view section);
// The `field:value` lines of one section, without its header.
std::string render_info_fields(const CollectedStatistics& stats, StatSection section);
// The Prometheus text exposition format 0.0.4: every statistic but kInfoOnly ones, each
// family with # HELP and # TYPE, then the per-peer families, then the app's numeric lines.
std::string render_prometheus(const CollectedStatistics& stats);

// Label value escaping of the exposition format: backslash, double quote and newline.
std::string escape_label_value(std::string_view value);

}  // namespace hmdb::server
