// server/node.h — one hmdb node: the event loop that drives the consensus core, the disk
// thread, the application and the client sessions. The write path (docs/architecture.md):
//
//   socket → read → RESP parse → classify → (write) StateMachine::validate → BatchBuilder
//   → end of loop turn: raft.propose(batch) → take_ready(): entries to the DiskThread
//   (group commit) → eventfd → raft.persisted(ack) → take_ready(): committed entries →
//   StateMachine::apply in log order → each reply into its session's slot → write(2).
//
// A single node is a cluster of one: the same path serves a replicated cluster later
// (messages to peers are sent between persist and apply).
//
// Threads: the loop thread runs everything here; the DiskThread owns the log file; a
// snapshot is written by a fork()ed child process. Thread-safety: only request_stop() may
// be called from another thread (or a signal handler's thread).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "core/batch.h"
#include "hmdb/state_machine.h"
#include "net/peer_transport.h"
#include "raft/raft.h"
#include "server/deferred_remove_env.h"
#include "server/disk_thread.h"
#include "server/fatal.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/session.h"
#include "server/write_tracker.h"
#include "storage/env.h"
#include "storage/log.h"

namespace hmdb::server {

// Exit codes of `hmdb serve` (kExitOk, kExitRemoved, ...): server/fatal.h.

// epoll tags of the loop's own descriptors; client sessions use their ids (>= 16).
inline constexpr uint64_t kEpollTagListen = 1;
inline constexpr uint64_t kEpollTagWake = 2;
inline constexpr uint64_t kEpollTagSignal = 3;
inline constexpr uint64_t kEpollTagSnapshot = 4;
inline constexpr uint64_t kEpollTagPeers = 5;
inline constexpr uint64_t kEpollTagMetrics = 6;
inline constexpr uint64_t kFirstSessionId = 16;

// Pipelined commands of one client parsed ahead of running them, so the app can prefetch
// their keys (StateMachine::prefetch) and the cache misses overlap. 8 covers the latency of
// a miss (~100 ns) with the ~50-100 ns a GET costs here; more only holds more views.
inline constexpr size_t kParseAheadCommands = 8;
// Commands of a log entry the apply loop hints ahead of the one it applies (same reason).
inline constexpr size_t kPrefetchAheadCommands = 8;
// Log entries that a snapshot compacted out of the consensus core's memory, freed per loop
// turn (raft::Raft::free_dropped_entries). Freeing all 600,000 entries (1 GiB) of a log at
// once stalled one turn for 313 ms; 4,096 entries of a few KiB take about a millisecond.
inline constexpr size_t kDroppedEntriesFreedPerTurn = 4096;

class Node {
 public:
  Node(ServerOptions options, std::unique_ptr<StateMachine> app);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Recovers the data directory (snapshot + log), replays it, opens the log for appending
  // and binds the listening socket. On failure returns the status; *exit_code says which
  // exit code the process should use.
  Status start(int* exit_code);
  // The event loop, until request_stop() or SIGTERM/SIGINT (if signal_fd >= 0). Drains
  // in-flight writes before returning. Returns the exit code.
  int run(int signal_fd = -1);
  void request_stop();

  uint16_t port() const { return port_; }
  uint16_t peer_port() const { return transport_ ? transport_->port() : 0; }

 private:
  enum class RunResult : uint8_t { kReplied, kWaitSnapshot, kWaitCluster };

  // ---- startup (recovery.cc) ----
  Status recover(int* exit_code);

  // ---- loop (node.cc) ----
  void loop_turn(int timeout_ms);
  void accept_clients();
  void read_session(Session& s);
  void parse_session(Session& s);
  void handle_command(Session& s, std::span<const std::string_view> argv);
  RunResult run_now(Session& s, std::span<const std::string_view> argv, std::string* out);
  bool promote_deferred(Session& s, size_t i, bool write_before);
  void run_queries_after(Session& s, size_t i);
  void run_queries_from(Session& s, size_t first);
  void emit(Session& s, std::string reply);
  void batch_write(uint64_t session_id, std::span<const std::string_view> argv, uint64_t seq);
  void drain_pending(Session& s);
  void flush_session(Session& s);
  void close_session(uint64_t id);
  void resolve_slot(uint64_t session_id, uint64_t seq, Pending::Kind expected, std::string reply);
  bool paused() const;
  void refresh_disk_queue_state();
  bool session_paused(const Session& s) const;
  void propose_batch();
  void drive_raft();
  void apply_entry(const raft::Entry& entry);
  void apply_conf_change(const raft::Entry& entry);
  // A tracked proposal ended unapplied (kLost, kUnknown): each of its clients gets the error.
  void end_proposal(raft::Index index, WriteTracker::Proposal&& p, WriteOutcome outcome);

  // ---- cluster (cluster.cc) ----
  Status start_cluster();
  void poll_peers();
  bool is_leader() const;
  bool reads_need_index() const;
  std::string redirect_reply() const;
  void learn_addresses(const std::vector<raft::Entry>& entries);
  void sync_transport_members();
  std::string encode_members() const;
  void decode_members(std::string_view text);
  void learn_member_lines(std::string_view context);
  void stage_snapshot_chunk(const raft::SnapshotChunk& chunk);
  void install_snapshot(const raft::Snapshot& snap);
  void answer_snapshot_read(const raft::SnapshotReadRequest& req);
  void queue_read(Session& s, uint64_t seq);
  // Runs the read (reply == nullptr) or answers it with *reply; then its session goes on.
  void complete_read(uint64_t session_id, uint64_t seq, const std::string* reply);
  void start_reads();
  void finish_reads();
  void fail_reads(const std::string& reply);
  void on_role_change(raft::Role before);
  void on_peer_refusal(const net::PeerRefusal& refusal);
  // Logs why, then stops like SIGTERM does (replies flushed) with exit code kExitRemoved.
  void stop_removed(raft::Index config_index, const std::string& how);
  RunResult cluster_command(Session& s, std::span<const std::string_view> argv, uint64_t seq, std::string* out);
  void check_cluster_waiters();
  std::string members_text() const;
  std::string replication_info() const;
  void replay_progress();
  void on_disk_ack();
  void tick();
  void note_turn_duration(uint64_t busy_ms);
  void disconnect_stalled_readers();
  // The clocks as of the start of this event-loop turn (refresh_clocks): a command's
  // expiry checks and batch stamps use the turn's time, like Redis' cached command time.
  void refresh_clocks();
  uint64_t wall_clock_ms() const;
  static uint64_t realtime_now_ms();
  static uint64_t steady_now_ms();
  Session* find_session(uint64_t id);

  // ---- server-level commands (commands.cc) ----
  bool is_server_command(std::string_view name) const;
  static bool is_snapshot_command(std::string_view name);  // SNAPSHOT, SAVE, BGSAVE
  // Commands that wait for everything before them in the session (snapshot commands and
  // cluster membership changes).
  static bool is_barrier_command(std::span<const std::string_view> argv);
  static bool is_quit(std::string_view name);
  RunResult server_command(Session& s, std::span<const std::string_view> argv, std::string* out);
  std::string info_text(std::string_view section);
  void command_command(std::span<const std::string_view> argv, std::string* out);

  // ---- snapshots (snapshot.cc) ----
  void start_snapshot();
  void on_snapshot_child_exit();
  void finish_snapshot_waiters(bool ok, const std::string& message);
  void maybe_auto_snapshot();

  ServerOptions options_;
  std::unique_ptr<StateMachine> app_;
  storage::Env* env_ = nullptr;
  std::unique_ptr<raft::Raft> raft_;
  std::unique_ptr<DeferredRemoveEnv> log_env_;  // the log writer's Env (outlives it)
  std::unique_ptr<storage::LogWriter> log_for_recovery_;  // handed to disk_ after recovery
  std::unique_ptr<DiskThread> disk_;

  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int wake_fd_ = -1;     // eventfd: disk acks and stop requests
  int reserve_fd_ = -1;  // spare descriptor, freed to shed a connection when out of fds
  int signal_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_requested_{false};
  bool draining_ = false;
  int exit_code_ = kExitOk;  // what run() returns once stopped

  std::unordered_map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::vector<uint64_t> active_;  // sessions to visit this turn (readable or stalled input)
  std::vector<uint64_t> to_flush_;
  std::vector<uint64_t> to_drain_;  // sessions whose pending queue has new finished replies
  std::vector<std::string_view> apply_argv_;     // scratch for apply
  std::vector<std::string_view> prefetch_argv_;  // scratch for apply's read-ahead
  struct ParsedCommand {
    std::vector<std::string_view> argv;  // views into the session's read buffer
    size_t consumed = 0;                 // bytes of the buffer the command takes
  };
  std::array<ParsedCommand, kParseAheadCommands> parse_ahead_;  // scratch for parse_session
  std::string scratch_reply_;                 // replies nobody waits for (housekeeping, replay)
  uint64_t next_session_id_ = kFirstSessionId;

  // The batch being built this turn and who waits for each of its commands.
  core::BatchBuilder batch_{0};
  std::vector<ReplySlot> batch_slots_;
  std::optional<std::string> refused_payload_;  // proposal refused with kBusy: retried
  std::vector<ReplySlot> refused_slots_;
  WriteTracker writes_;  // proposed entries and who waits for each (bytes: the in-flight bound)
  bool disk_queue_full_ = false;  // disk thread's queue over kDiskQueueBytesMax (refreshed per turn)

  // Persistence bookkeeping (loop thread).
  raft::Index last_log_index_ = 0;  // last entry handed to the disk (or acked, for none)
  raft::Term last_log_term_ = 0;
  raft::HardState hard_state_;
  raft::Index applied_index_ = 0;
  raft::Term applied_term_ = 0;
  uint64_t last_time_ms_ = 0;    // wall clock of this turn; batch stamps never go backwards
  uint64_t turn_steady_ms_ = 0;  // steady clock at the start of this turn
  bool housekeeping_in_batch_ = false;  // the app's housekeeping command is in batch_
  raft::Index housekeeping_index_ = 0;  // ... or proposed at this index and not yet applied
  // Recovery replay progress.
  bool replaying_ = false;
  raft::Index replay_target_ = 0;
  uint64_t replay_started_ms_ = 0;
  uint64_t replay_last_print_ms_ = 0;
  uint64_t next_tick_ms_ = 0;
  uint64_t ticks_ = 0;

  // Snapshots.
  pid_t snapshot_pid_ = -1;
  int snapshot_pidfd_ = -1;
  raft::SnapshotMeta snapshot_meta_;
  uint64_t snapshot_started_ms_ = 0;
  uint64_t snapshot_log_bytes_at_start_ = 0;
  bool snapshot_again_ = false;
  std::vector<std::pair<uint64_t, uint64_t>> snapshot_waiters_;       // of the running one
  std::vector<std::pair<uint64_t, uint64_t>> next_snapshot_waiters_;  // of the next one
  uint64_t log_bytes_since_snapshot_ = 0;

  std::unique_ptr<MetricsServer> metrics_;  // --metrics-port; null when off

  // ---- cluster ----
  std::unique_ptr<net::PeerTransport> transport_;
  std::map<raft::NodeId, ServerOptions::MemberAddr> members_;  // address book of the members
  std::vector<raft::Message> received_;  // scratch for poll_peers
  raft::Role last_role_ = raft::Role::kFollower;
  // Snapshot arriving from the leader, staged in a temp file (follower).
  std::unique_ptr<storage::WritableFile> staging_file_;
  std::string staging_path_;
  raft::SnapshotMeta staging_meta_;
  uint64_t staging_bytes_ = 0;
  // Linearizable reads (leader of several voters): queued this turn, asked of raft, ready.
  std::vector<std::pair<uint64_t, uint64_t>> read_batch_;
  std::unordered_map<uint64_t, std::vector<std::pair<uint64_t, uint64_t>>> reads_asked_;  // context -> slots
  std::vector<std::pair<raft::Index, std::vector<std::pair<uint64_t, uint64_t>>>> reads_ready_;
  uint64_t next_read_context_ = 1;
  // CLUSTER TRANSFER waiting for the new leader; membership changes wait in writes_.
  struct TransferWaiter {
    uint64_t session = 0, seq = 0;
    raft::NodeId target = raft::kNoNode;
    uint64_t deadline_ms = 0;
  };
  std::vector<TransferWaiter> transfer_waiters_;
  uint64_t next_raft_tick_ms_ = 0;
  uint64_t drain_deadline_ms_ = 0;  // SIGTERM: stop waiting for undecided proposals then
  size_t voter_count_ = 1;          // voters in the membership in force (latest appended)
  uint64_t leader_changes_ = 0;

  // Statistics for INFO.
  struct Stats {
    uint64_t start_ms = 0;
    uint64_t connections_received = 0;
    uint64_t rejected_connections = 0;
    uint64_t commands = 0;
    uint64_t writes = 0;
    uint64_t batches = 0;
    uint64_t protocol_errors = 0;
    uint64_t output_limit_disconnects = 0;
    uint64_t busy_refusals = 0;
    uint64_t snapshots = 0;
    uint64_t snapshot_failures = 0;
    raft::Index last_snapshot_index = 0;
    uint64_t last_snapshot_ms = 0;
    uint64_t fork_last_us = 0;
    uint64_t fork_max_us = 0;
    std::string last_snapshot_status = "none";
    uint64_t recovered_entries = 0;
    uint64_t recovery_ms = 0;
    uint64_t loop_turn_max_ms = 0;  // longest turn spent working (not waiting in epoll)
    uint64_t slow_turns = 0;        // turns of at least kSlowTurnMs
  } stats_;
  uint64_t last_slow_turn_log_ms_ = 0;
};

}  // namespace hmdb::server
