// server/node.h — one hmdb node's I/O shell around its replica core.
//
// The deterministic part of a node — routing each client command, batching writes,
// tracking who waits for which log entry, handling the consensus core's Ready, applying
// entries, linearizable reads, replies in request order — is core::Replica (src/core).
// Node is everything around it that touches the world:
//
//   node.cc            lifecycle, the event loop turn, timers, and the Replica's view of
//                      the disk (persist: the DiskThread's group commit) and the network
//   client_io.cc       client sockets: accept, read, parse (with parse-ahead), send, close
//   shell_commands.cc  the shell's own commands (PING, INFO, CLIENT, CONFIG, CLUSTER,
//                      SNAPSHOT, ...) as one table; the sources of INFO and /metrics
//                      (statistics.h describes and renders them)
//   cluster.cc         peers (PeerTransport), member addresses, membership side effects,
//                      a removed node stopping; forwarding plain clients' commands to the
//                      leader (core::Forwarder over ForwardLinks' sockets)
//   snapshot.cc        snapshots: forked writers, receiving and installing the leader's,
//                      serving ours to followers
//   recovery.cc        startup: snapshot + log replayed through the Replica
//
// The write path, file by file, is in docs/architecture.md.
//
// Threads: the loop thread runs everything here; the DiskThread owns the log file; a
// snapshot is written by a fork()ed child process. Thread-safety: only request_stop() may
// be called from another thread (or a signal handler's thread).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/text.h"
#include "core/acl.h"
#include "core/forwarder.h"
#include "core/replica.h"
#include "core/state.h"
#include "hmdb/app.h"
#include "hmdb/state_machine.h"
#include "net/peer_transport.h"
#include "raft/raft.h"
#include "server/deferred_remove_env.h"
#include "server/dir_lock.h"
#include "server/auth.h"
#include "server/cluster_topology.h"
#include "server/disk_thread.h"
#include "server/fatal.h"
#include "server/forward_links.h"
#include "server/huge_pages.h"
#include "server/id_table.h"
#include "server/latency.h"
#include "server/stage_clock.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/session.h"
#include "server/statistics.h"
#include "storage/snapshot.h"
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
inline constexpr uint64_t kEpollTagForward = 7;
inline constexpr uint64_t kEpollTagDigest = 8;  // a digest child's result pipe (digest_child.cc)
inline constexpr uint64_t kEpollTagTlsListen = 9;  // --tls-port's listener
// Digest children (digest_child.cc) hashing at once; a mark applied while this many run is
// hashed on the event loop instead. Each holds a copy-on-write image of the state.
inline constexpr size_t kDigestChildrenMax = 4;
inline constexpr uint64_t kFirstSessionId = 16;

// Pipelined commands of one client parsed ahead of running them, so the app can prefetch
// their keys (StateMachine::prefetch) and the cache misses overlap. 8 covers the latency of
// a miss (~100 ns) with the ~50-100 ns a GET costs here; more only holds more views.
inline constexpr size_t kParseAheadCommands = 8;
// Log entries that a snapshot compacted out of the consensus core's memory, freed per loop
// turn (raft::Raft::free_dropped_entries). Freeing all 600,000 entries (1 GiB) of a log at
// once stalled one turn for 313 ms; 4,096 entries of a few KiB take about a millisecond.
inline constexpr size_t kDroppedEntriesFreedPerTurn = 4096;
// ... and at most this many bytes of their payloads, whose pages go back to the kernel
// (release_payload_pages: ~0.1-0.2 ms per MiB, so a few ms a turn).
inline constexpr uint64_t kDroppedBytesFreedPerTurn = 32ull << 20;
// A dropped payload at least this big has the whole pages inside its buffer handed back to
// the kernel (madvise MADV_DONTNEED) just before it is freed. glibc keeps freed heap memory
// for reuse and returns only the top of the heap (M_TRIM_THRESHOLD): the log's entries lie
// among the state's keys, so after a snapshot compacted the log, RSS stayed ~30 bytes per
// key above a restarted node's (bench/README.md, issue 16 item 7). Smaller payloads are
// left to the allocator (their pages are shared with other allocations). With the heap in
// huge pages only whole 2 MiB pages are released (heap_page_bytes): releasing part of one
// splits it into 4 KiB page-table entries, which a snapshot's fork then copies one by one.
inline constexpr uint64_t kReleasePayloadMinBytes = 64ull << 10;
// --durability none (a single node, no log on disk, never a cluster member): applied entries
// are needed by nobody, so once the consensus core's in-memory log holds this many bytes
// (raft::Status::log_bytes) it is trimmed to the applied index (Node::trim_unlogged_log).
// Without it the log grew with every write and was freed only by a SNAPSHOT (20 M SETs: 24
// bytes per key, bench/README.md). The bound amortizes the trim (a membership copy and the
// core's checks) over many turns; its memory is small next to any state.
inline constexpr uint64_t kUnloggedLogRetainBytes = 4ull << 20;
// The release (a raft::Raft::free_dropped_entries hook): whole pages strictly inside the
// buffer, past the bytes free() writes its list links into.
void release_payload_pages(std::string& payload);

// How long a forwarded command waits for a leader, and a former leader's link for its
// replies in flight, in election timeouts (core::Forwarder::Options; 2 s and 1 s with the
// default 200 ms): an election after a leader's death takes one to two.
inline constexpr uint64_t kForwardLeaderWaitElectionTimeouts = 10;
inline constexpr uint64_t kForwardDrainElectionTimeouts = 5;

class Node final : private core::ReplicaHost, private core::ForwardHost, private core::MarkHasher {
 public:
  Node(ServerOptions options, std::unique_ptr<StateMachine> app);
  ~Node() override;
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

  uint16_t port() const { return port_; }  // 0 when there is no plaintext port
  uint16_t tls_port() const { return tls_port_; }  // 0 when there is no TLS port
  uint16_t peer_port() const { return transport_ ? transport_->port() : 0; }

 private:
  // ---- core::ReplicaHost (node.cc, shell_commands.cc, cluster.cc, snapshot.cc) ----
  core::ClientSession* session(uint64_t id) override;
  void replies_ready(core::ClientSession& s) override;
  uint64_t unsent_bytes(const core::ClientSession& s) const override;
  void close_after_replies(core::ClientSession& s) override;
  core::CommandClass shell_command_class(Args argv) const override;
  core::ShellResult run_shell_command(core::ClientSession& s, Args argv, uint64_t seq, std::string* out) override;
  bool shell_command_acl(Args argv, core::AclCommand* out) const override;
  void acl_refused(const core::ClientSession& s, const core::AclDenial& denial) override;
  void start_snapshot() override;
  std::string client_address_of(raft::NodeId id) const override;
  void forward(core::ClientSession& s, uint64_t seq, Args argv, bool write) override;
  void forward_transaction(core::ClientSession& s, uint64_t seq, const std::vector<std::vector<std::string>>& commands,
                           bool write) override;
  void stage_snapshot_chunk(const raft::SnapshotChunk& chunk) override;
  bool install_snapshot(const raft::SnapshotMeta& meta) override;
  std::optional<raft::PersistAck> persist(const std::optional<raft::HardState>& hard_state,
                                          std::vector<raft::Entry>&& entries,
                                          const std::optional<raft::SnapshotMeta>& installed) override;
  void send(std::vector<raft::Message>&& messages) override;
  void send_after_persist(std::vector<raft::Message>&& messages) override;
  void applying(const raft::Entry& entry) override;
  void applied(const raft::Entry& entry) override;
  void proposed(raft::Index index, raft::Term term, const std::vector<core::ReplySlot>& slots) override;
  void apply_failed(const raft::Entry& entry, const core::ApplyResult& result) override;
  void schema_blocked(const raft::Entry& entry, const core::ApplyResult& result) override;
  // After the raft core refused a snapshot of a schema version this binary does not read:
  // the node blocks there (once) and says so.
  void note_refused_snapshot();
  void read_snapshot_chunk(const raft::SnapshotReadRequest& request) override;
  void snapshot_wanted() override;
  void role_changed(raft::Role before, raft::Role now) override;
  void warn(std::string_view message) override;  // both hosts'

  // ---- core::ForwardHost (cluster.cc): the forwarder's links and answers ----
  bool open_link(uint64_t link, raft::NodeId node) override;
  void send_link(uint64_t link, std::string_view bytes) override;
  void close_link(uint64_t link) override;
  void answer(uint64_t session, uint64_t seq, std::string_view reply) override;

  // ---- startup (recovery.cc) ----
  Status recover(int* exit_code);
  void replay_progress();
  // CLUSTER SCHEMA ACTIVATE <version> (on the leader: an activation joins the batch).
  core::ShellResult schema_command(Session& s, Args argv, uint64_t seq, std::string* out);
  // CLUSTER DIGEST MARK (the leader logs a digest mark: core/digest_marks.h) and CLUSTER
  // DIGEST AT <index> (this node's digest at that mark).
  core::ShellResult digest_mark_command(Session& s, Args argv, uint64_t seq, std::string* out);
  void digest_at_command(Session& s, Args argv, std::string* out) const;

  // ---- the loop (node.cc) ----
  void loop_turn(int timeout_ms);
  // Sleeps until the disk thread's acknowledgement (or a signal, or a stop request) instead of
  // until the next client event, for at most min(timeout_ms, kAckWaitMaxUs), if the disk
  // thread is making this node's writes durable and will wake the loop when done (options.h,
  // kAckWaitMaxUs). With rounds on the loop (loop_rounds_) it first tries to write and sync the
  // round here instead (DiskThread::round_on_loop). True if it waited or ran the round: the
  // caller then runs a turn without sleeping.
  bool wait_for_disk_ack(int timeout_ms);
  void tick();
  void on_disk_ack();
  // Takes the disk thread's published ack, if any, into the core (on_disk_ack's work).
  void take_disk_ack();
  // A leader whose followers acknowledged more than its own last ack covers needs its next
  // ack at once (disk_thread.h, "A leader's own acknowledgement"): takes one published, else
  // asks the disk thread to wake the loop for the next.
  void want_own_ack();
  void note_turn_duration(uint64_t busy_us);
  // Reads the loop thread's CPU time and involuntary context switches (note_turn_duration).
  bool read_turn_cpu();
  void disconnect_stalled_readers();
  // The clocks as of the start of this event-loop turn: a command's expiry checks and
  // batch stamps use the turn's time, like Redis' cached command time.
  void refresh_clocks();
  bool paused() const;
  void refresh_disk_queue_state();

  // ---- client sockets (client_io.cc) ----
  // From listen_fd_ (plaintext) or tls_listen_fd_ (each connection then gets its TLS state).
  void accept_clients(int listen_fd, bool tls);
  void read_session(Session& s);
  void read_session_tls(Session& s);
  // A TLS connection failed (its handshake was refused, or a record was bad): counted,
  // logged within kTlsFailureLogLinesPerWindow, closed.
  void tls_failed(Session& s, const std::string& why);
  void parse_session(Session& s);
  void flush_session(Session& s);
  void flush_session_tls(Session& s);
  // After a flush: release the sent output, close a finished session, read on.
  void flush_done(Session& s);
  void close_session(uint64_t id);
  bool session_paused(const Session& s) const;
  // The shell's own reply to a protocol error, after the session's earlier replies.
  void reply_and_close(Session& s, std::string_view error);
  Session* find_session(uint64_t id) { return sessions_.find(id); }  // inline: several per request
  void schedule_flush(Session& s);
  void schedule_read(Session& s);
  // One parsed command of s, to the replica.
  void run_command(Session& s, Args argv);

  // ---- latency by stage (stage_timing.cc; server/latency.h) ----
  // After a group of pipelined commands parsed together ran (client_io.cc, parse_session:
  // parse_ahead_[0, parsed)): one clock read for all of them: the time the group held the
  // loop (SLOWLOG), the latency of those answered at once, and the mark of its writes.
  // run_command noted each command in group_answered_ / group_writes_ (or, for one whose
  // reply waits in a slot, in the session's pending_commands).
  // (Inline: it runs once per group, a command at pipeline 1; the rare paths are out of line.)
  void group_ran(Session& s, size_t ran) {
    if (ran == 0) return;
    const uint64_t now = stage_read_us();
    // Since the previous group, or since this turn's reading began for a client's first:
    // its bytes read and parsed, and the commands run (Redis' SLOWLOG counts the run only).
    const uint64_t ran_us = now - clock_us_;
    clock_us_ = now;
    const uint64_t latency = now - turn_start_us_;
    if (group_answered_count_ > 0) queries_ran(now, latency);
    if (group_writes_ > 0) {
      latency_->stage(Stage::kReadParse).record(latency, group_writes_);
      batch_marks_.push_back(Mark{now, group_writes_});
      group_writes_ = 0;
    }
    if (slowlog_.wants(ran_us) || (latency_events_.threshold_ms != 0 && ran_us >= latency_events_.threshold_ms * 1000))
      [[unlikely]] group_was_slow(s, ran, ran_us);
  }
  void queries_ran(uint64_t now, uint64_t latency);
  void group_was_slow(Session& s, size_t ran, uint64_t ran_us);
  // The stage clock now, or its last reading if nothing that takes time ran since
  // (stage_clock_fresh_): stage boundaries that are the same instant share one read.
  uint64_t stage_now_us() {
    if (stage_clock_fresh_) return stage_clock_us_;
    stage_clock_fresh_ = true;
    return stage_clock_us_ = stage_clock_.now_us();
  }
  // A fresh reading (after work that takes time), kept for the boundaries that follow.
  uint64_t stage_read_us() {
    stage_clock_fresh_ = true;
    return stage_clock_us_ = stage_clock_.now_us();
  }
  // The replies of s that left its slots: their commands' latency. (Inline: once per
  // session whose writes were answered.)
  void replies_left(Session& s) {
    const size_t waiting = s.pending_commands.size() - s.pending_head;
    const size_t pending = s.pending();
    if (waiting <= pending) return;
    const uint64_t now = stage_now_us();
    for (size_t n = waiting - pending; n > 0; n--) {
      const Session::PendingCommand& c = s.pending_commands[s.pending_head++];
      if (c.command != LatencyStats::kNoCommand) latency_->record_command(c.command, now - c.start_us);
    }
    if (s.pending_head == s.pending_commands.size()) {
      s.pending_commands.clear();
      s.pending_head = 0;
    } else if (s.pending_head >= 1024) [[unlikely]] {  // a client that never lets its pipeline drain
      s.pending_commands.erase(s.pending_commands.begin(), s.pending_commands.begin() + s.pending_head);
      s.pending_head = 0;
    }
  }
  // The disk thread's acknowledgement reached the loop (index: durable up to).
  // published_us: when the disk thread published the ack (CLOCK_MONOTONIC µs), 0: now.
  void note_persisted(raft::Index index, uint64_t published_us);
  void note_applied(raft::Index index);
  // Every command a client may send: the shell's, the engine's and the app's.
  std::vector<std::string> latency_command_names() const;
  void note_handed_to_disk(raft::Index last);
  void note_sent(const std::vector<raft::Message>& messages);
  void note_received(const std::vector<raft::Message>& messages);
  // After Replica::end_turn and after the turn's sends.
  void note_replies_queued();
  void note_turn_end(uint64_t now_us);
  // Not leading any more: what was tracked of proposals is dropped.
  void forget_stage_marks();
  // INFO latencystats and INFO stages (empty for another section); the Prometheus histograms.
  std::string render_latency_info(std::string_view section) const;
  std::string render_latency_prometheus() const;
  core::ShellResult latency_command(Session& s, Args argv, std::string* out);
  core::ShellResult slowlog_command(Session& s, Args argv, std::string* out);
  void reset_latency();

  // ---- the shell's own commands (shell_commands.cc) ----
  struct ShellCommand;
  class ShellTable {
   public:
    explicit ShellTable(std::vector<ShellCommand> commands);
    const ShellCommand* find(std::string_view name) const;
    const std::vector<ShellCommand>& commands() const { return commands_; }

   private:
    std::vector<ShellCommand> commands_;
    detail::NameIndex index_;
  };
  static const ShellTable& shell_table();
  core::ShellResult hello_command(Session& s, Args argv, std::string* out);
  core::ShellResult client_command(Session& s, Args argv, std::string* out);
  core::ShellResult config_command(Session& s, Args argv, std::string* out);
  core::ShellResult reset_command(Session& s, std::string* out);
  // An AUTH or HELLO AUTH was refused: counted, and logged at a bounded rate.
  void auth_failed(const Session& s, std::string_view user);
  // A line of CLIENT LIST / CLIENT INFO (and ACL LOG's client-info).
  std::string client_info_line(const Session& c, uint64_t now) const;
  // An ACL LOG entry: a new one, or counted on a like one logged within kAclLogGroupingMs.
  void acl_log(const Session& s, std::string_view reason, std::string_view object, std::string_view user);
  // A new connection, or one after RESET: the default user, authenticated if that needs no
  // password.
  void sign_in_default(core::ClientSession& c) const;
  // ACL ...: the users and their rules (core/acl.h). SETUSER, DELUSER and LOAD are logged
  // (the leader proposes them: Replica::acl_change; `seq` is their slot), the rest local.
  core::ShellResult acl_command(Session& s, Args argv, uint64_t seq, std::string* out);
  // The arity of ACL's subcommand `sub` (case-insensitive), 0 if it has none of that name.
  static int acl_subcommand_arity(std::string_view sub);
  // --aclfile at startup: its users replace the node's (all or none) until the cluster's
  // replicated users replace them (the snapshot's or the log's); requirepass, if set, stays
  // the default user's password. Errors name the file and line.
  Status load_acl_file();
  // The --aclfile's text, checked to load (errors name the file and line): ACL LOAD logs it.
  Status read_acl_file(std::string* text);
  // The leader logs an ACL change (Replica::acl_change): slot `seq` of s gets its reply at
  // apply. Elsewhere (a forwarded one reached a former leader) the redirect.
  core::ShellResult log_acl_change(core::AclOp op, std::vector<std::string> words, Session& s, uint64_t seq,
                                   std::string* out);
  // ACL SAVE: the users' lines to --aclfile, through a temporary file renamed over it.
  Status save_acl_file();
  static core::ShellResult pubsub_entry(Node& n, Session& s, Args argv, uint64_t seq, std::string* out);
  core::ShellResult cluster_local_or_change(Session& s, Args argv, uint64_t seq, std::string* out);
  // CLUSTER SLOTS|SHARDS|NODES|INFO|MYID|MYSHARDID|KEYSLOT|COUNTKEYSINSLOT|GETKEYSINSLOT: what
  // Redis Cluster clients ask (cluster_topology.h).
  static bool is_redis_cluster_subcommand(std::string_view sub);
  void redis_cluster_command(Args argv, Protocol protocol, std::string* out);
  core::ShellResult snapshot_command(Session& s, uint64_t seq);
  void command_command(Session& s, Args argv, std::string* out);
  // Everything INFO and the metrics endpoint read (statistics.h), gathered now; the state
  // digest only if asked for (it hashes the whole state).
  StatisticsSources statistics_sources(bool with_digest) const;
  // CLUSTER ADDLEARNER|PROMOTE|REMOVE|TRANSFER (cluster.cc).
  core::ShellResult cluster_command(Session& s, Args argv, uint64_t seq, std::string* out);

  // ---- cluster (cluster.cc) ----
  Status start_cluster();
  void poll_peers();
  void learn_addresses(const std::vector<raft::Entry>& entries);
  void sync_transport_members();
  std::string encode_members() const;
  void decode_members(std::string_view text);
  void learn_member_lines(std::string_view context);
  void apply_conf_change(const raft::Entry& entry);
  void on_peer_refusal(const net::PeerRefusal& refusal);
  // Logs why, then stops like SIGTERM does (replies flushed) with exit code kExitRemoved.
  void stop_removed(raft::Index config_index, const std::string& how);
  std::string members_text() const;
  // The Redis Cluster view of the members (cluster_topology.h): CLUSTER SLOTS, NODES, ...
  ClusterTopology cluster_topology() const;
  // Remembers the leader this node knows now, if any (last_known_leader_).
  void note_leader();
  // Tells the forwarder the time and the leader this node knows now.
  void sync_forwarder();
  // The client address of member `id` from the address book (or the transport's hello);
  // false if unknown here.
  bool member_client_address(raft::NodeId id, HostPort* out) const;

  // ---- TLS (node.cc) ----
  // Makes the TLS contexts from the certificate files (at start, and again on SIGHUP).
  // On failure nothing changes: the running contexts stay.
  Status load_tls();
  void reload_tls();  // SIGHUP: load_tls, logged either way

  // ---- snapshots (snapshot.cc) ----
  void on_snapshot_child_exit();
  // How a snapshot ended, whoever wrote it (the fork's child, or the loop's slices and their
  // writer thread): one path for what follows (snapshot_saved, compaction, the waiters'
  // replies, the statistics, a snapshot asked meanwhile).
  enum class SnapshotEnd : uint8_t { kOk, kFailed, kLayoutRefused };
  void finish_snapshot(SnapshotEnd end, const std::string& why);
  bool snapshot_running() const { return snapshot_pid_ > 0 || sliced_save_ != nullptr; }
  // --snapshot-method slices: starts one at snapshot_meta_ (false: the app cannot, and the
  // caller forks); each turn's slices; the writer thread's end seen (the file durable or
  // failed); abandoning one.
  bool start_sliced_snapshot();
  void continue_sliced_snapshot();
  void end_sliced_snapshot_if_written();
  // `wait`: joins the writer (at shutdown); else hands it to abandoned_saves_, never waiting
  // on the loop for its final fdatasync or its temp file's unlink.
  void abandon_sliced_snapshot(const std::string& why, bool wait = false);
  // Joins the abandoned writers that ended (`all`: every one, waiting for it; at shutdown);
  // true if it joined any.
  bool reap_abandoned_saves(bool all);
  // True while slices remain that the loop can make now: it must not sleep in epoll_wait.
  bool slices_pending() const;
  // ---- digests at marks (digest_child.cc) ----
  // core::MarkHasher: fork a child that hashes the state at the mark.
  bool hash_later(uint64_t index, const StateMachine& app, const core::RequestTable& requests) override;
  void on_digest_child_output();  // a result pipe is readable: results in, finished children reaped
  void stop_digest_children();    // at exit
  void finish_snapshot_waiters(const std::string& reply);
  void maybe_auto_snapshot();
  void trim_unlogged_log();  // --durability none: kUnloggedLogRetainBytes

  ServerOptions options_;
  std::unique_ptr<StateMachine> app_;
  storage::Env* env_ = nullptr;
  DirLock dir_lock_;  // one process per --dir; taken first thing in recover()
  std::unique_ptr<raft::Raft> raft_;
  std::unique_ptr<core::Replica> replica_;  // over *raft_ and *app_; built in recover()
  std::unique_ptr<DeferredRemoveEnv> log_env_;  // the log writer's Env (outlives it)
  std::unique_ptr<storage::LogWriter> log_for_recovery_;  // handed to disk_ after recovery
  std::unique_ptr<DiskThread> disk_;

  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int wake_fd_ = -1;     // eventfd: disk acks and stop requests
  int reserve_fd_ = -1;  // spare descriptor, freed to shed a connection when out of fds
  int signal_fd_ = -1;
  uint16_t port_ = 0;
  int tls_listen_fd_ = -1;
  uint16_t tls_port_ = 0;
  // TLS (--tls-port, --tls-replication): the server side of client connections and the
  // client and server sides of peer connections and forwarding links; replaced whole by a
  // reload (connections made from the old ones keep them until they close).
  std::shared_ptr<net::TlsContext> tls_clients_;
  std::shared_ptr<net::TlsContext> tls_peer_server_;
  std::shared_ptr<net::TlsContext> tls_peer_client_;
  uint64_t tls_log_window_start_ms_ = 0;
  uint64_t tls_log_lines_ = 0;
  uint64_t tls_log_suppressed_ = 0;
  std::atomic<bool> stop_requested_{false};
  bool draining_ = false;
  int exit_code_ = kExitOk;  // what run() returns once stopped

  IdTable<Session> sessions_;  // by id (server/id_table.h: the loop looks one up several times per request)
  std::vector<uint64_t> active_;    // sessions to visit this turn (readable or stalled input)
  uint64_t turn_read_left_ = kTurnReadBytesMax;  // of this turn's client reads (kTurnReadBytesMax)
  std::vector<uint64_t> to_flush_;  // sessions with replies to send
  struct ParsedCommand {
    std::vector<std::string_view> argv;  // views into the session's read buffer
    size_t consumed = 0;                 // bytes of the buffer the command takes
  };
  std::array<ParsedCommand, kParseAheadCommands> parse_ahead_;  // scratch for parse_session
  uint64_t next_session_id_ = kFirstSessionId;
  bool disk_queue_full_ = false;  // disk thread's queue over kDiskQueueBytesMax (refreshed per turn)

  // Persistence bookkeeping (loop thread): what was last handed to the disk.
  raft::Index last_log_index_ = 0;
  raft::Term last_log_term_ = 0;
  raft::HardState hard_state_;
  uint32_t logged_active_version_ = kFirstSchemaVersion;  // the active schema version last logged
  // The leader's snapshot the raft core was told to refuse (recovery.cc's filter), not yet
  // handled by note_refused_snapshot(); and the index of the last one logged.
  std::optional<raft::SnapshotMeta> refused_snapshot_;
  raft::Index refused_snapshot_logged_ = 0;
  uint64_t log_bytes_since_snapshot_ = 0;
  uint64_t turn_steady_ms_ = 0;  // steady clock at the start of this turn
  uint64_t turn_wall_ms_ = 0;    // wall clock at the start of this turn
  // Recovery replay progress.
  bool replaying_ = false;
  raft::Index replay_target_ = 0;
  uint64_t replay_started_ms_ = 0;
  uint64_t replay_last_print_ms_ = 0;
  uint64_t next_tick_ms_ = 0;
  uint64_t next_raft_tick_ms_ = 0;
  // After a stall (a long turn, SIGSTOP, a VM freeze) the core is fed the ticks that elapsed,
  // at most this many: two election timeouts, after which every timer of the core has fired.
  uint64_t raft_catch_up_ticks_max_ = 20;
  uint64_t ticks_ = 0;
  uint64_t drain_deadline_ms_ = 0;  // SIGTERM: stop waiting for undecided proposals then

  // Digest children: each hashes the state at one mark and writes the result to its pipe.
  struct DigestChild {
    pid_t pid = -1;
    int fd = -1;  // the pipe's read end (in epoll)
    uint64_t index = 0;
    uint64_t started_us = 0;
    std::string got;  // bytes read so far
  };
  std::vector<DigestChild> digest_children_;

  // Snapshots.
  pid_t snapshot_pid_ = -1;
  int snapshot_pidfd_ = -1;
  raft::SnapshotMeta snapshot_meta_;
  uint64_t snapshot_started_ms_ = 0;
  uint64_t snapshot_log_bytes_at_start_ = 0;
  // The consensus core asked for a fresh snapshot (raft::Ready::snapshot_wanted): taken at
  // the end of the turn (maybe_auto_snapshot).
  bool core_wants_snapshot_ = false;
  bool snapshot_again_ = false;
  bool snapshot_after_write_ = false;  // start_snapshot waits for a half-applied write
  // An active schema version whose snapshot layout the app refused to write this state in
  // (the child said so): snapshots are then written in the newest layout (0: none).
  uint32_t save_as_refused_version_ = 0;
  std::vector<core::ReplySlot> snapshot_waiters_;       // of the running one
  std::vector<core::ReplySlot> next_snapshot_waiters_;  // of the next one
  // Snapshot arriving from the leader, staged in a temp file (follower).
  std::unique_ptr<storage::WritableFile> staging_file_;
  std::string staging_path_;
  raft::SnapshotMeta staging_meta_;
  uint64_t staging_bytes_ = 0;
  // The leader's snapshot, installed (durable) and loading off the loop (snapshot.cc,
  // install_snapshot): a thread decodes it into a state machine of its own while the loop
  // goes on answering its peers; the loop swaps the states once it is done, and another
  // thread frees the replaced one. Decoding 20 M keys takes seconds, longer than a leader
  // waits for a heartbeat's answer.
  struct SnapshotLoad {
    raft::SnapshotMeta meta;
    std::string path;                   // the installed file (for messages)
    // The staged file: the thread syncs it, reads it back with its checksums, renames it to
    // `path` and syncs the directory before it decodes (a 192 MB file took 120 ms of the loop
    // at 8.75 M keys). Only then is file_durable set, and the disk thread records the install
    // (DiskThread::submit_install waits for it): the follower acknowledges nothing of the
    // snapshot before its file is durable and sound.
    std::unique_ptr<storage::WritableFile> staging;
    std::string staging_path;
    std::shared_ptr<std::atomic<bool>> file_durable = std::make_shared<std::atomic<bool>>(false);
    uint64_t prepare_messages = 0;      // messages to peers before file_durable (set by the thread)
    uint64_t prepare_us = 0;
    bool durable_announced = false;     // the loop logged that the file is installed
    storage::LoadedSnapshot loaded;     // its mapping: the payload decoded from
    std::unique_ptr<StateMachine> app;  // the loaded state; after the swap, the replaced one
    core::RequestTable requests;
    std::optional<std::string_view> users;  // left to the loop (the ACL catalog is the loop's)
    core::LoadState state = core::LoadState::kOk;
    uint32_t active = 0;
    std::string refusal;  // why the app refused it (LoadState::kRefused)
    uint64_t started_us = 0, decode_us = 0;
    uint64_t turns = 0;                    // loop turns while it loaded
    std::atomic<uint64_t> messages{0};     // messages to peers sent while it loaded
    std::atomic<bool> done{false}, stop{false};
    std::thread thread;
  };
  std::unique_ptr<SnapshotLoad> snapshot_load_;
  // A snapshot written in slices (--snapshot-method slices; snapshot.cc, "Snapshots in
  // slices"): the loop calls the app's producer each turn within kTurnSnapshotBudgetUs and
  // queues the encoded slices (at most kSnapshotQueueBytesMax) for a writer thread, which
  // streams them into a storage::SnapshotWriter, makes the file durable, removes the older
  // snapshots and wakes the loop (wake_fd_).
  struct SlicedSave {
    std::unique_ptr<SaveProducer> producer;  // null once it returned true (or abandoned)
    raft::Index index = 0;  // the snapshot's
    std::string temp_path;
    uint64_t queue_bytes_max = 0;  // kSnapshotQueueBytesMax (tests: options.h)
    // Shared with the writer thread, under mu.
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::string> queue;  // encoded slices, in order
    // Buffers the writer wrote, cleared with their capacity kept, for the loop's next slices
    // (at most kSliceFreeBuffersMax, none bigger than a slice's reserve: snapshot.cc): a fresh
    // buffer's first touch may fault in a fresh huge page, ~4 ms on the reference VM.
    std::vector<std::string> free_buffers;
    uint64_t queued_bytes = 0;
    bool last_queued = false;  // the producer is done: the writer finishes after the queue
    // Abandoned: the writer stops and removes its temp file; or, if it had every slice and
    // finished the file meanwhile, leaves it durable but removes no older snapshot.
    bool stop = false;
    bool done = false;         // the writer ended (status says how)
    bool wake_when_drained = false;  // the loop stopped at the bound: wake it at half
    Status status;
    uint64_t written_bytes = 0;
    std::thread writer;
    // The loop's own.
    uint64_t started_us = 0;
    uint64_t next_us = 0;           // time in next(), all turns
    uint64_t turn_next_max_us = 0;  // longest turn's time in next()
    uint64_t turns = 0;             // turns that called next()
    uint64_t next_cpu_us = 0;           // the loop thread's CPU time in next(), all turns
    uint64_t turn_next_cpu_max_us = 0;  // ... the most in one turn (wall minus CPU: waiting for a CPU)
    uint64_t calls = 0;             // next() calls
    uint64_t buffers_allocated = 0;  // slice buffers the loop allocated (the others were reused)
    uint64_t encoded_bytes = 0;
    raft::Index slice_applied = 0;  // test_snapshot_slice_per_write: applied index at the last slice
  };
  std::unique_ptr<SlicedSave> sliced_save_;
  // Abandoned snapshots whose writer thread may still run (stopping, removing its temp file,
  // or in the final fdatasync of a file it had every slice of), joined once it says it is done
  // (reap_abandoned_saves; it wakes the loop). Few: one per abandon, and no snapshot starts
  // while one is here (so none writes a temp file another still holds).
  std::vector<std::unique_ptr<SlicedSave>> abandoned_saves_;
  bool writer_gate_used_ = false;  // options_.test_snapshot_writer_gate held the first writer
  bool sliced_fallback_logged_ = false;  // the fallback to fork was logged (once)
  std::thread state_reaper_;  // frees the state the last load replaced
  // After each snapshot, puts back in huge pages what writes during it split (huge_pages.h);
  // only when the heap is in huge pages.
  HugePageMender huge_page_mender_;
  // Swaps the loaded state in once the thread is done (`wait`: waits for it first).
  void finish_snapshot_load(bool wait);
  // Syncs, verifies (checksums, meta, app and schema) and renames l's staged file into place
  // and syncs the directory; fatal() on any failure, from whichever thread runs it.
  static void prepare_installed_file(storage::Env* env, const std::string& dir, const StateMachine& app,
                                     SnapshotLoad& l);
  // Lets a test hold (options.h) of a background load go, so that a stop never waits on it.
  void release_snapshot_load_hold();
  void reap_replaced_state();

  std::unique_ptr<MetricsServer> metrics_;  // --metrics-port; null when off

  // ---- cluster ----
  std::unique_ptr<net::PeerTransport> transport_;
  std::map<raft::NodeId, ServerOptions::MemberAddr> members_;  // address book of the members
  std::vector<raft::Message> received_;  // scratch for poll_peers
  // A leader's own acknowledgement (disk_thread.h): whether the membership has voters other
  // than this node (else its own ack is what commits: it wakes the loop) and the highest index
  // a follower acknowledged in term peer_acked_term_ (compared with acked_index_, below).
  bool other_voters_ = false;
  raft::Term peer_acked_term_ = 0;
  raft::Index peer_acked_max_ = 0;
  // Plain clients' commands on a node that does not lead, run on the leader (clustered only).
  std::unique_ptr<core::Forwarder> forwarder_;
  std::unique_ptr<ForwardLinks> forward_links_;
  // The last leader this node knew: during an election the Redis Cluster view keeps it as
  // the master (cluster_topology()).
  raft::NodeId last_known_leader_ = raft::kNoNode;

  // Latency by stage (server/latency.h): built in start() from every command name.
  std::unique_ptr<LatencyStats> latency_;
  SlowLog slowlog_;
  LatencyEvents latency_events_;
  StageClock stage_clock_;
  uint64_t turn_start_us_ = 0;  // stage clock at the start of this turn
  uint64_t turn_end_ms_ = 0;    // steady clock at the end of the last turn (its timers' "now")
  uint64_t clock_us_ = 0;       // the loop's last clock read while running commands
  uint64_t stage_clock_us_ = 0;     // the stage clock's last reading ...
  bool stage_clock_fresh_ = false;  // ... and whether it is still "now" (stage_now_us)
  // The group running now (parse_session): its commands answered as they ran (their ids)
  // and those that joined the batch.
  std::array<uint32_t, kParseAheadCommands> group_answered_{};
  size_t group_answered_count_ = 0;
  uint64_t group_writes_ = 0;
  struct Mark {
    uint64_t us;
    uint64_t count;
  };
  std::vector<Mark> batch_marks_;   // the open batch's writes: when they joined, how many
  std::vector<Mark> query_marks_;   // this turn's queries: when answered, how many
  std::vector<Mark> queued_marks_;  // this turn's applied writes: replies queued when, how many
  // The entries this node proposed (leader), oldest first, until their replies are queued.
  struct ProposalMarks {
    raft::Index index = 0;
    uint64_t writes = 0;
    uint64_t proposed_us = 0, handed_us = 0, persisted_us = 0, apply_us = 0, applied_us = 0;
  };
  MarkRing<ProposalMarks> proposals_;
  // Group commit's hold (server/disk_thread.h, "Holding the next round"): the client writes
  // proposed and not yet durable (entry index, writes), oldest first, at most kHoldMarksMax
  // (older ones are forgotten: the hold then just ends sooner); whether writes were proposed
  // since the last persist(); the hold in force as take_ack() named it (0: none), the writes
  // its acknowledgement made durable (the cohort awaited) and the writes proposed since.
  static constexpr size_t kHoldMarksMax = 4096;
  std::deque<std::pair<raft::Index, uint64_t>> hold_marks_;
  bool hold_writes_proposed_ = false;
  uint64_t hold_ = 0;
  // The last log index known durable: the recovered log's end at start, then the last index
  // of each acknowledgement the disk thread published (take_disk_ack). Below
  // last_log_index_ while a round it will wake the loop for is owed (wait_for_disk_ack);
  // below peer_acked_max_ while a leader's own ack is wanted (want_own_ack).
  raft::Index acked_index_ = 0;
  // A single node in `always` mode: the loop runs the disk's rounds when it would wait for them
  // (DiskThread::round_on_loop; not with --test-disk-rounds-on-thread).
  bool loop_rounds_ = false;
  uint64_t hold_awaited_ = 0;
  uint64_t hold_arrived_ = 0;
  uint64_t hold_arrived_clocked_ = 0;  // hold_arrived_ at the last hold_from_now
  bool hold_clock_pending_ = false;  // the hold began this turn: its clock starts once the replies are out
  void end_hold();
  // Per follower: the last index of each append sent, and when, until its ack covers it.
  std::map<raft::NodeId, std::deque<std::pair<raft::Index, uint64_t>>> appends_sent_;

  // The shell's own statistics (statistics.h; the replica, disk thread and transport keep theirs).
  ShellStats stats_;
  uint64_t last_slow_turn_log_ms_ = 0;
  uint64_t turn_cpu_read_us_ = 0;       // the loop thread's CPU time at the last reading
  uint64_t turn_preemptions_read_ = 0;  // its involuntary context switches then
  uint64_t turn_work_unread_us_ = 0;    // work time of the turns since, too short to read after
  // Who may run commands and what (core/acl.h; server/auth.h): the users, their password
  // digests and rules. requirepass is the default user's password. Replicated state: the
  // replica applies logged ACL changes to them (Replica::set_acl) and snapshots hold them.
  core::AclUsers acl_;
  // The users as the handshake sees them, and every command rules may name (the shell's,
  // the replica's, the app's at its active schema version).
  class AclAccess final : public Credentials, public core::AclCatalog {
   public:
    explicit AclAccess(const Node& n) : n_(n) {}
    bool default_nopass() const override;
    bool check(std::string_view user, std::string_view password) const override;
    void for_each(const std::function<void(const core::AclCommand&)>& fn) const override;

   private:
    const Node& n_;
  };
  AclAccess acl_access_{*this};
  struct AclLogEntry {
    uint64_t count = 1;
    std::string reason, context, object, user, client_info;
    uint64_t created_ms = 0, updated_ms = 0;  // steady clock
  };
  std::deque<AclLogEntry> acl_log_;  // newest first, at most kAclLogEntriesMax
  std::string forward_password_;  // requirepass (or the cluster secret), for this node's forwarding links' AUTH
  // --cluster-secret: the links' own user (core::kLinkUserName, allowed CLUSTER FORWARDER
  // only) and the secret's digest, which AUTH hmdb-forwarder is checked against. Null: none
  // (nobody can log in as it).
  std::shared_ptr<core::AclUser> link_user_;
  core::PasswordDigest link_secret_digest_{};
  // The user a successful AUTH or HELLO AUTH as `name` runs as (the link user, or one of acl_).
  std::shared_ptr<core::AclUser> user_named(std::string_view name) const;
  uint64_t last_auth_failure_log_ms_ = 0;
  uint64_t auth_failures_not_logged_ = 0;  // refused since the last log line about them
};

}  // namespace hmdb::server
