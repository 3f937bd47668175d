// core/replica.h — one node's deterministic heart: client commands in, the consensus core's
// Ready handled in raft.h's order, committed entries applied, replies out in request order.
//
// A write's route through it (docs/architecture.md has the whole trip, file by file):
//
//   command(session, argv)      route.h decides where it goes; a write is validated and
//                               appended to this turn's batch, its reply slot reserved in
//                               the session's ReplyQueue (reply_queue.h)
//   end_turn()                  the batch becomes ONE log entry: raft.propose(); the
//                               WriteTracker (write_tracker.h) remembers who waits for it;
//                               then drive():
//   drive()                     each Ready: stage/install snapshot, persist (host), send
//                               (host), apply committed entries through apply_batch()
//                               (apply.h), each reply written straight into its slot;
//                               reads whose index is applied run (read_index.h)
//   drain                       finished replies at the head of each session move to its
//                               out() buffer; host.replies_ready() sends them
//
// The replica does no I/O and reads no clock: the embedder (the server's Node, or the
// simulator) gives it the time of each loop turn and implements ReplicaHost — the disk, the
// network, snapshot files, the shell's own commands and the sessions' sockets. So the
// simulator drives exactly the bookkeeping a server runs (issues 9 and 10).
//
// Thread-safety: none; one thread calls everything.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "core/acl.h"
#include "core/apply.h"
#include "core/batch.h"
#include "core/blocking.h"
#include "core/digest_marks.h"
#include "core/pubsub.h"
#include "core/read_index.h"
#include "core/reply_queue.h"
#include "core/request.h"
#include "core/request_table.h"
#include "core/route.h"
#include "core/transaction.h"
#include "core/watch_table.h"
#include "core/write_tracker.h"
#include "hmdb/state_machine.h"
#include "raft/raft.h"

namespace hmdb::core {

// Bytes proposed but not yet applied beyond which the replica is busy (the shell stops
// reading sockets until the disk catches up).
inline constexpr uint64_t kInflightBytesMax = 64ull << 20;
// A batch (one log entry) is proposed once it holds this many bytes, even mid-turn.
inline constexpr uint64_t kBatchBytesMax = 8ull << 20;

// Sliced replies (hmdb::ReplyProducer; docs/architecture.md, "Big replies"): a query whose
// reply holds more than this many elements is made in slices of this many (or of
// kSliceBytes, whichever comes first), one slice of each such reply per loop turn, while
// the apply waits. Counts, not time: a slice of a KEYS costs ~2-5 ms (measured 0.2-0.5 us
// an element over 8.75 M keys).
inline constexpr size_t kSliceElements = 8192;
inline constexpr size_t kSliceBytes = 1ull << 20;
// A sliced reply makes no slice while its client has this much output unsent (it reads
// slowly): the shell's kClientOutputPauseBytes, so a slow reader costs no more memory...
inline constexpr uint64_t kSliceOutputPauseBytes = 4ull << 20;
// ... for at most this long in a row: then the reply goes on regardless, its bytes buffered
// (up to the client's output limit, as a reply made whole is), because every write waits for
// it, and one client that stops reading must not hold them all (until kSliceHoldMsMax).
inline constexpr uint64_t kSliceReaderWaitMs = 200;
// The longest the apply waits for sliced replies, from the first of them: beyond it, the
// ones still unfinished are finished in that loop turn (a long turn, and their bytes
// buffered whatever their clients read), and the writes waiting are applied. Reached only
// by a reply of tens of millions of elements or a client that stops reading mid-reply.
inline constexpr uint64_t kSliceHoldMsMax = 30000;
// Sliced writes (hmdb::ApplyProducer; docs/architecture.md, "Big writes"): a write whose work
// is more than this many elements is computed in slices of this many, one slice per loop
// turn, while the apply waits, and then finished in one turn. A slice of a SUNIONSTORE costs
// ~2-4 ms (a member walked and copied into the result: 0.2-0.5 us).
inline constexpr size_t kWriteSliceElements = kSliceElements;

// A client connection as the replica sees it: who it is and its replies. The embedder owns
// it (the server's Session holds one) and finds it by id (ReplicaHost::session).
struct ClientSession {
  uint64_t id = 0;
  ReplyQueue replies;
  bool readonly = false;  // READONLY: a follower serves this client's queries from its state
  // A cluster client (it asked for the topology: CLUSTER SLOTS, SHARDS or NODES; or sent
  // CLIENT NO-FORWARD ON): a follower answers its app commands -MOVED instead of forwarding
  // them, so that it goes to the leader itself.
  bool no_forward = false;
  // Another node's forwarding link (CLUSTER FORWARDER): its commands come from many clients
  // of that node, which keeps each client's order itself (core/forwarder.h), so they are
  // routed as if nothing of this session were ahead of them; never forwarded again.
  bool forwarder = false;
  // False while a password is required and the client has not given it (the shell's AUTH,
  // HELLO AUTH and RESET change it): then only AUTH, HELLO, QUIT and RESET are served, every
  // other command is answered -NOAUTH (server/auth.h).
  bool authenticated = true;
  // The ACL user it runs as (core/acl.h): its rules are checked before each command unless
  // it permits everything. Null: no checks (the simulator's sessions).
  std::shared_ptr<AclUser> user;
  // RESP2, or RESP3 after HELLO 3. Every reply is rendered in the protocol in force when it
  // is written; HELLO runs in session order (after the writes sent before it are applied,
  // before those sent after), so each reply is in the protocol the client expects for it.
  Protocol protocol = Protocol::kResp2;
  bool in_drain = false;  // on the replica's list of sessions to drain this turn
  void* owner = nullptr;  // the embedder's object for this session (the server's Session)
  SessionTransaction transaction;  // MULTI ... EXEC, WATCH (core/transaction.h)
  // 1 + the sequence number of the last shell command queued to run at apply (a HELLO may
  // change the protocol there); 0: none. A tagged write waits while it has not run: its
  // reply is rendered, and kept for retries, in the protocol it names in the log.
  uint64_t shell_at_apply_end = 0;
  std::unique_ptr<Subscriber> subscriber;  // SUBSCRIBE ... (core/pubsub.h); null until the first
  // In a blocking command (core/blocking.h) whose reply slot is blocking_seq: every later
  // command waits behind it, as Redis blocks the connection.
  bool blocking = false;
  uint64_t blocking_seq = 0;
};

// A write validated under a newer active schema version than the writes still waiting to
// be proposed (a batch refused while the leader was busy): one entry has one version.
inline constexpr std::string_view kSchemaChangedReply =
    "-TRYAGAIN the cluster's schema version changed while writes waited to be proposed; retry\r\n";

// What the shell's own command did (ReplicaHost::run_shell_command).
enum class ShellResult : uint8_t {
  kReplied,      // the reply is written
  kWaitSnapshot,  // SNAPSHOT/SAVE: the reply comes once the snapshot is durable (finish())
  kWaitCluster,  // a membership change or transfer: the replica tracks it (propose_membership, transfer)
};

class ReplicaHost {
 public:
  virtual ~ReplicaHost() = default;

  // ---- client sessions ----
  // The session with this id, or nullptr if it closed (its replies are then dropped).
  virtual ClientSession* session(uint64_t id) = 0;
  // s.replies.out() grew, or s has no pending slot left: send, or go on reading.
  virtual void replies_ready(ClientSession& s) = 0;
  // Bytes of s.replies.out() its socket has not taken yet (pub/sub bounds a subscriber's).
  virtual uint64_t unsent_bytes(const ClientSession& s) const { return s.replies.out().size(); }
  // s's subscriptions ended with an error (core/pubsub.h): close it once its output is sent.
  virtual void close_after_replies(ClientSession& s) { (void)s; }

  // ---- the shell's own commands (PING, INFO, CLUSTER ..., SNAPSHOT, ...) ----
  // kShellLocal or kShellBarrier for a command the shell answers itself, kUnknown otherwise
  // (then the app's commands are asked).
  virtual CommandClass shell_command_class(Args argv) const = 0;
  // ACL rules' view of a shell command (core/acl.h): its name, subcommand and categories.
  // False for a name the shell does not answer or a wrong arity (its usual error comes).
  virtual bool shell_command_acl(Args argv, AclCommand* out) const {
    (void)argv, (void)out;
    return false;
  }
  // s's command argv was refused by its user's ACL rules with `error` (ACL LOG).
  virtual void acl_refused(const ClientSession& s, const AclDenial& denial) { (void)s, (void)denial; }
  // Runs it; `seq` is its reply slot (for a command that waits). Writes the reply to *out.
  virtual ShellResult run_shell_command(ClientSession& s, Args argv, uint64_t seq, std::string* out) = 0;
  // A command's slot now waits for a snapshot (ShellResult::kWaitSnapshot): take one, and
  // answer the waiters with Replica::finish once it is durable.
  virtual void start_snapshot() = 0;
  // The client address of node `id` for a -MOVED redirect, or "" if unknown here.
  virtual std::string client_address_of(raft::NodeId id) const = 0;
  // Only with Options::forward: command `argv` of s (slot `seq`, now kWaitingForward) goes
  // to the leader; answer the slot with finish(s.id, seq, kWaitingForward, reply). `write`:
  // it may change state (an app write), so its outcome is unknown if its reply is lost.
  virtual void forward(ClientSession& s, uint64_t seq, Args argv, bool write);
  // The same for a whole transaction: `commands` (MULTI, the queued commands, EXEC) go to the
  // leader back to back, nothing of another client between them; the slot's reply is the
  // last one's (EXEC's). `write`: it queued a write.
  virtual void forward_transaction(ClientSession& s, uint64_t seq, const std::vector<std::vector<std::string>>& commands,
                                   bool write);

  // ---- raft's Ready, in raft.h's order ----
  // 0. A chunk of the leader's snapshot: stage it.
  virtual void stage_snapshot_chunk(const raft::SnapshotChunk& chunk) = 0;
  // 1a. The staged snapshot is complete: make it durable and load it into the app. true:
  //     the app holds the snapshot's state now. false: it is loading in the background
  //     (the app keeps the old state meanwhile, untouched by the replica, which applies
  //     nothing and refuses app commands with -LOADING): the host calls
  //     Replica::snapshot_loaded() once the app holds it; a host asked to install another
  //     one meanwhile finishes that load first.
  virtual bool install_snapshot(const raft::SnapshotMeta& meta) = 0;
  // 1b. Start persisting (`installed`: the snapshot just installed, if any). Returns the
  //     acknowledgement if it is durable already (no log; or written synchronously).
  virtual std::optional<raft::PersistAck> persist(const std::optional<raft::HardState>& hard_state,
                                                  std::vector<raft::Entry>&& entries,
                                                  const std::optional<raft::SnapshotMeta>& installed) = 0;
  // 2. Send.
  virtual void send(std::vector<raft::Message>&& messages) = 0;
  // 2. (raft::Config::after_persist_messages) Send these once everything persist() was
  //    given so far is durable — not before: they promise it (append acks, votes). A host
  //    whose core runs without that option is never called.
  virtual void send_after_persist(std::vector<raft::Message>&& messages) {
    (void)messages;
    HMDB_ASSERT(false, "raft::Config::after_persist_messages is on but the host cannot send after persisting");
  }
  // 3. An entry is about to be applied (the server times the apply: server/latency.h).
  virtual void applying(const raft::Entry& entry) { (void)entry; }
  // 3. An entry was applied (after its replies were written): membership changes take
  //    effect here; recovery shows progress; the simulator checks the state.
  virtual void applied(const raft::Entry& entry) = 0;
  // 3. An entry could not be applied (a schema version this binary does not read, a
  //    divergence, a malformed batch): the node must stop.
  virtual void apply_failed(const raft::Entry& entry, const ApplyResult& result) = 0;
  // 3. Clustered only: the entry needs a schema version this binary does not read
  //    (ApplyStatus::kUnsupportedSchema). The replica applies nothing from here on (an
  //    activation's items before it in the entry were applied) and refuses clients' app
  //    commands; Replica::schema_block() says where. The host keeps the node in the cluster
  //    without leading (raft::Raft::set_may_lead(false)) and says so: docs/cluster.md,
  //    "Schema versions". Called once. By default the failure it was before: apply_failed.
  virtual void schema_blocked(const raft::Entry& entry, const ApplyResult& result) { apply_failed(entry, result); }
  // 6. Leader: read the bytes asked of a durable snapshot file; answer with raft.snapshot_chunk().
  virtual void read_snapshot_chunk(const raft::SnapshotReadRequest& request) = 0;
  // 7. Leader (raft::Config::log_memory_bytes): a follower needs entries the core dropped
  //    and no snapshot saved is recent enough (raft::Ready::snapshot_wanted). Take one of
  //    the applied state when the turn's work is done (one at a time: after the one being
  //    written, if any) and call snapshot_saved() once it is durable. A host whose core
  //    has no such bound is never called.
  virtual void snapshot_wanted() {
    HMDB_ASSERT(false, "raft::Config::log_memory_bytes is set but the host cannot take a snapshot when asked");
  }
  // The node's role changed (after the Ready that changed it was handled).
  virtual void role_changed(raft::Role before, raft::Role now) = 0;
  // Something an operator should hear of (the server logs it).
  virtual void warn(std::string_view message) = 0;
  // For observers (the simulator's history): the consensus core accepted a batch of
  // client commands at (index, term); `slots` are their reply slots, in batch order.
  virtual void proposed(raft::Index index, raft::Term term, const std::vector<ReplySlot>& slots) {
    (void)index, (void)term, (void)slots;
  }
};

class Replica final : private PubSubHost {
 public:
  struct Options {
    bool clustered = false;
    PubSub::Options events;  // live updates: retention and subscribers' bounds (core/pubsub.h)
    // The host forwards a plain client's app commands to the leader (ReplicaHost::forward)
    // instead of answering -MOVED (route.h, kForward).
    bool forward = false;
    // Planted bugs, for proving that the simulator catches them (tests/sim). Never set in
    // the server: `hmdb serve` has no flag for them but --test-plant-skip-yielded-command.
    struct PlantedBugs {
      // The turn's apply budget is not given to the apply (HalfApplied::budget_spent): a
      // whole entry is applied in one turn whatever it costs.
      bool apply_past_budget = false;
      // An entry stopped for the turn's budget resumes after the command it stopped before,
      // which is lost (HalfApplied::planted_skip_yielded).
      bool skip_yielded_command = false;
      // Keep waiting on proposals that a new leader's entries (or a snapshot) removed from
      // the log, as the server did before issue 9: their clients are answered only when the
      // log regrows, and a node that leads again proposes where a client still waits.
      bool forget_replaced_writes = false;
      // A leader of several voters answers queries from its applied state at once, without a
      // read-index round: a leader cut off from the majority serves stale reads.
      bool reads_without_index = false;
      // Entries apply with no request table: a write tagged with a request id (HMDB.REQ) is
      // applied again when a client retries it.
      bool forget_request_ids = false;
      // A replica that applies an entry nobody waits for here (a follower's) takes the digest
      // at a digest mark in it after the whole entry, not where the mark stands.
      bool hash_marks_after_entry = false;
      // An entry of a schema version this binary does not read is applied with its own newest
      // version's meaning, and an activation of such a version is passed over, instead of
      // the node blocking there (core::apply_batch's planted_apply_unread_schema).
      bool apply_unread_schema = false;
      // A host that loads the leader's snapshot in the background (install_snapshot returned
      // false) is taken to hold its state at once: applying is not held, so the entries after
      // the snapshot apply to the old state, which the load then replaces.
      bool apply_during_background_load = false;
      // Sliced replies do not hold the apply: entries apply between a reply's slices, so
      // one reply mixes states (the simulator's MGET sees its two change counts differ).
      bool apply_while_producing = false;
      // A write applied in slices (hmdb::ApplyProducer) does not hold the apply: its entry is
      // counted applied when the write stops half applied, and the entries after it apply
      // before its finish(), which then stores what it computed from older states.
      bool apply_before_write_finishes = false;
      // A write whose app says it would change nothing (StateMachine::unchanged_reply) is
      // answered from the applied state even while writes are pending (in this turn's batch,
      // or logged and not yet applied): a pop right behind a pipelined push finds nothing.
      bool unchanged_ignores_pending = false;
      // A leadership transfer the consensus core abandoned is not answered then: its client
      // waits for the deadline (server kClusterCommandTimeoutMs), as before the "abandoned"
      // reply (tests/core/replica_test.cc, the transfer cases).
      bool transfer_waits_for_deadline = false;
      // A leadership transfer whose leader lost its leadership to another node than the
      // target is not answered then: its client waits for the deadline (tests/core/
      // replica_test.cc, the transfer cases).
      bool transfer_ignores_lost_leadership = false;
    } bugs;
    // Sliced replies: elements per slice (0: every reply is made whole, in one turn), bytes
    // per slice, the longest hold of the apply for them, and the longest wait for a slow
    // reader (kSlice*).
    size_t slice_elements = kSliceElements;
    size_t slice_bytes = kSliceBytes;
    uint64_t slice_hold_ms_max = kSliceHoldMsMax;
    uint64_t slice_reader_wait_ms = kSliceReaderWaitMs;
    // A client with this much output unsent is a slow reader (kSliceOutputPauseBytes; the
    // simulator's slow readers, sim::Options::slow_readers, pause at any unsent byte).
    uint64_t slice_output_pause_bytes = kSliceOutputPauseBytes;
    // Sliced writes: elements per slice (0: every write is applied whole, in one turn).
    size_t write_slice_elements = kWriteSliceElements;
    // The host's budget for one turn's applying (core/apply.h, HalfApplied::budget_spent):
    // once it returns true, an entry being applied stops before its next command and is
    // resumed in the next turn, everything else held as for a sliced write. Only where writes
    // may be sliced (write_slice_elements != 0, not in recovery). Empty: never (the
    // simulator's default; the server's says whether its turn has run kTurnApplyBudgetUs).
    std::function<bool()> apply_budget_spent;
    // How often apply_budget_spent is asked, in commands (the simulator asks at every one).
    size_t apply_budget_check_commands = kApplyBudgetCheckCommands;
  };
  struct Stats {
    uint64_t commands = 0;
    uint64_t writes = 0;
    uint64_t batches = 0;
    uint64_t busy_refusals = 0;
    uint64_t forwarded = 0;  // commands routed kForward (handed to the host)
    uint64_t transactions = 0;          // EXECs whose group joined a batch
    uint64_t transactions_watch_failed = 0;  // EXECs answered with a null array (a WATCHed key changed)
    uint64_t requests = 0;  // tagged writes and EXECs (HMDB.REQ) that joined a batch
    uint64_t unchanged_writes = 0;  // writes answered as reads: they would change nothing (unchanged_reply)
    uint64_t sliced_replies = 0;  // replies made in slices (ReplyProducer)
    uint64_t reply_slices = 0;    // slices made for them
    uint64_t slice_hold_overdue_turns = 0;  // turns that finished sliced replies whole: slice_hold_ms_max reached
    uint64_t slice_reader_waits_expired = 0;  // slices made for a client with output unsent past slice_reader_wait_ms
    uint64_t sliced_replies_buffered = 0;  // made into their slot behind a reply that waits for an apply
    uint64_t sliced_writes = 0;  // writes applied in slices (ApplyProducer)
    uint64_t apply_yields = 0;   // entries whose apply stopped for the turn's budget (apply_budget_spent)
    uint64_t write_slices = 0;   // slices made for them
    uint64_t sliced_writes_dropped = 0;  // half applied when a snapshot install replaced the state
  };

  Replica(raft::Raft& raft, StateMachine& app, ReplicaHost& host, Options options);

  // The time of this loop turn: the wall clock stamped into batches and given to queries
  // (kept from going backwards), and a monotonic one for deadlines.
  void set_time(uint64_t wall_ms, uint64_t steady_ms);
  uint64_t wall_ms() const { return wall_ms_; }

  // One command of session s, in the order the session sent it.
  void command(ClientSession& s, Args argv);
  // End of a loop turn's input: propose the batch, ask for this turn's reads, handle every
  // Ready, and move finished replies out.
  void end_turn();
  // Propose the batch now (it is full, kBatchBytesMax) and hand it on.
  void propose();
  // Handle every Ready the core has (after step(), persisted(), tick()), then the reads
  // whose index is applied.
  void drive();
  // Move finished replies to the sessions' out(), and route held commands again.
  void drain();
  // A reply the shell writes itself (a protocol error), after the session's earlier ones.
  void reply(ClientSession& s, std::string_view bytes) {
    s.replies.reply_now()->append(bytes);
    mark_drain(s);
  }
  // A reply the shell writes itself into slot `seq` of s, which waits as `expected`.
  void finish(uint64_t session, uint64_t seq, ReplyQueue::Kind expected, std::string_view reply);
  // s is closing: what it subscribed to goes, and its blocking command (call before it is
  // gone from host.session()).
  void session_closed(ClientSession& s) {
    pubsub_.forget(s);
    if (s.blocking) end_blocking(s);
  }
  // Clients in a blocking command (core/blocking.h).
  const BlockedTable& blocked() const { return blocked_; }
  // CLIENT UNBLOCK: session `id`, blocked, is answered now (a null array, or -UNBLOCKED
  // when `error`), or when its attempt in flight returns if that finds nothing. False if it
  // is not blocked.
  bool unblock(uint64_t id, bool error);
  // Live updates (core/pubsub.h): the shell's pub/sub commands, settings and statistics.
  PubSub& pubsub() { return pubsub_; }
  const PubSub& pubsub() const { return pubsub_; }

  // ---- for the shell's CLUSTER commands ----
  // Proposes a membership change; on success slot (session, seq) waits for it to apply.
  raft::ProposeResult propose_membership(const raft::ConfChange& change, uint64_t session, uint64_t seq);
  // Starts a leadership transfer; slot (session, seq) is answered +OK once `target` leads,
  // with an error ("abandoned") as soon as the consensus core dropped the transfer while this
  // node still leads (target not leading within one election timeout) or as soon as another
  // node than `target` is known to lead (this node lost its leadership to it), or with an
  // error at deadline_steady_ms (the last resort: this node lost its leadership and no
  // leader is known, for that long).
  void transfer(raft::NodeId target, uint64_t session, uint64_t seq, uint64_t deadline_steady_ms, uint64_t timeout_ms);
  // Answers transfers that finished, were abandoned or timed out (call every consensus tick).
  void check_transfers();
  // Leader: an activation of schema version `version` joins the batch (batch.h); slot
  // (session, seq), waiting as kWaitingWrite, gets its reply when it applies (+OK, or an
  // error if the version is not above the active one by then). The caller checks what it
  // can first (StateMachine::reads_schema_version; the voters, docs/cluster.md).
  void activate_schema(uint32_t version, uint64_t session, uint64_t seq);

  // Leader: a digest mark joins the batch (batch.h, core/digest_marks.h) and ends it
  // (batch_full() says so); slot (session, seq), waiting as kWaitingWrite, is answered the
  // mark's index when it applies.
  void digest_mark(uint64_t session, uint64_t seq);
  // The digests this node took at the marks it applied (the last kDigestMarksKept).
  const DigestMarks& digest_marks() const { return marks_; }
  DigestMarks& digest_marks() { return marks_; }  // for the host's MarkHasher (finish, fail)

  // The users logged ACL changes apply to (core/acl.h; the host's, set once before the
  // first entry applies). Unset: ACL items change nothing (the simulator).
  void set_acl(AclUsers* users, const AclCatalog* catalog) {
    acl_ = ReplicatedAcl{users, catalog};
    marks_.set_users(users);
  }
  // Leader: an ACL change (ACL SETUSER, DELUSER, LOAD; words as AclOp says, passwords as
  // digests) joins the batch; slot (session, seq), waiting as kWaitingWrite, gets the
  // change's reply when it applies. While no ACL change ever applied here, the leader's
  // users go first (AclOp::kSeed): the first change then applies to the same users on
  // every node, whatever each one's ACL file held.
  void acl_change(AclOp op, const std::vector<std::string>& words, uint64_t session, uint64_t seq);

  // The app's housekeeping command, if due, joins the batch (leader only; one at a time).
  void housekeeping();
  // The voters in the membership in force changed (refreshes reads_need_index).
  void membership_changed();
  // After a snapshot was loaded at startup: the state stands for (index, term).
  void set_applied(raft::Index index, raft::Term term) {
    applied_index_ = index;
    applied_term_ = term;
    pubsub_.reset_at(index);
  }

  // -MOVED <slot of argv[1]> to the leader's client address (slot 0 without a key), or
  // -CLUSTERDOWN.
  std::string redirect_reply(Args argv = {}) const;
  bool leader() const { return raft_.role() == raft::Role::kLeader; }
  bool reads_need_index() const {
    return options_.clustered && leader() && voters_ > 1 && !options_.bugs.reads_without_index;  // PLANTED BUG
  }
  // Proposed bytes not yet applied, or a refused proposal waiting: stop reading clients.
  bool busy() const { return refused_payload_.has_value() || writes_.bytes() >= kInflightBytesMax; }
  // (Or it ends with a digest mark: proposed now, the mark's digest is of the state after
  // its entry.)
  bool batch_full() const { return batch_.body_bytes() >= kBatchBytesMax || mark_in_batch_; }
  // Nothing left to do without new input: no batch, no refused proposal, no Ready, no
  // sliced reply whose next slice may be made.
  bool idle() const {
    return batch_.empty() && !refused_payload_ && !raft_.has_ready() && !blocked_.has_ready() && !producing_runnable_ &&
           !half_runnable();
  }
  // Sliced replies in progress (their hold of the apply).
  size_t producing() const { return producing_.size(); }
  // The index of the entry half applied (a write of it is being applied in slices: its
  // commands before that write are applied, the rest not), 0 if none. Meanwhile the state is
  // no index's: no snapshot or digest of it may be taken.
  raft::Index applying_index() const { return half_ ? half_->entry.index : 0; }
  // A half-applied write's next slice, or its finish, may be made next turn (its finish waits
  // for the sliced replies in progress).
  bool half_runnable() const { return half_ && (!half_->computed || producing_.empty()); }
  // Recovery replays the log with every write applied whole (no slices), so that it ends
  // with everything applied: on while true.
  void set_writes_whole(bool whole) { writes_whole_ = whole; }

  raft::Index applied_index() const { return applied_index_; }
  raft::Term applied_term() const { return applied_term_; }
  // Where this node stopped applying (ReplicaHost::schema_blocked), if it did: the entry at
  // `index` needs schema `version` (an activation of it, or an entry logged under it),
  // which this binary does not read. Everything before `index` is applied; of that entry,
  // an activation's items before the activation item are too, so the state is not a state
  // of any index (no snapshot or digest of it may be taken). Lasts until the process ends.
  struct SchemaBlock {
    raft::Index index = 0;
    uint32_t version = 0;
    bool activation = false;
    bool snapshot = false;  // the leader's snapshot at `index` is of `version` (block_at_snapshot)
  };
  const std::optional<SchemaBlock>& schema_block() const { return schema_block_; }
  // The leader's snapshot the host is loading in the background (ReplicaHost::install_snapshot
  // returned false), if any: nothing is applied meanwhile, and app commands are refused.
  const std::optional<raft::SnapshotMeta>& loading() const { return loading_; }
  // The host's background load of the snapshot `loading()` is done: the app holds its state.
  void snapshot_loaded();
  // The leader's snapshot at `index` is of schema `version`, which this binary does not
  // read, and it was refused (raft::Raft::set_snapshot_filter): the node cannot catch up,
  // and blocks as at such an entry (its state is that of its applied index). No-op if
  // blocked already.
  void block_at_snapshot(raft::Index index, uint32_t version) {
    if (!schema_block_) schema_block_ = SchemaBlock{index, version, false, true};
  }
  // The error a blocked node answers app commands with.
  std::string schema_blocked_reply() const;
  // The request table (core/request_table.h): replicated state beside the app's, changed
  // only by the apply path. The host saves and loads it with the app's (core/state.h).
  RequestTable& requests() { return requests_; }
  const RequestTable& requests() const { return requests_; }
  const WriteTracker& writes() const { return writes_; }
  size_t pending_reads() const { return reads_.pending(); }
  uint64_t leader_changes() const { return leader_changes_; }
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = Stats{}; }

 private:
  // ---- PubSubHost ----
  ClientSession* session(uint64_t id) override { return host_.session(id); }
  uint64_t unsent_bytes(const ClientSession& s) override { return host_.unsent_bytes(s); }
  void output_grew(ClientSession& s) override { mark_drain(s); }
  void close_after_output(ClientSession& s) override { host_.close_after_replies(s); }
  void key_changed(std::string_view key) override {
    if (!blocked_.empty()) [[unlikely]] blocked_.key_changed(key);
  }

  // ---- blocking commands (core/blocking.h) ----
  // Slot seq of s holds a blocking command routed to the log or the leader: a new waiter,
  // or its waiter's next attempt.
  void note_blocking(ClientSession& s, uint64_t seq, Args argv, const KeySpec& keys);
  // The blocking command in slot seq of s (now `from`) got `reply` (in the slot): true if it
  // found nothing and waits (the slot is kBlocked); false if the slot is to be finished
  // (the reply may have become the timeout's null array or CLIENT UNBLOCK's error).
  bool blocking_reply(ClientSession& s, uint64_t seq);
  // s's waiter, parked, is answered `reply` now.
  void answer_blocked(ClientSession& s, std::string_view reply);
  void end_blocking(ClientSession& s);
  // Each turn: answers waiters past their timeout, attempts the woken ones again.
  void serve_blocked();
  void retry_blocked(ClientSession& s);

  CommandClass classify(Args argv) const;
  // A write of s (routed kWrite, its session ahead as `view` says) may be answered from the
  // applied state if its app says it would change nothing there (docs/architecture.md,
  // "Writes that change nothing"): a read would see exactly the state it would be applied to.
  bool may_answer_unchanged(const ClientSession& s, const SessionView& view) const {
    if (!app_.has_unchanged_replies() || reads_need_index() || s.blocking) return false;
    if (options_.bugs.unchanged_ignores_pending) return true;  // PLANTED BUG
    return !view.write_before && !view.forward_before && batch_.empty() && !refused_payload_ && !half_ &&
           apply_backlog_.empty() && !loading_ && raft_.last_index() == applied_index_;
  }
  // A write's checks before it is batched: the app's, or the engine's for PUBLISH.
  bool validate_write(Args argv, std::string* error, KeySpec* keys) const {
    if (is_publish_name(argv[0])) [[unlikely]] return validate_publish(argv, error, keys);
    return app_.validate(argv, error, keys);
  }
  bool validate_publish(Args argv, std::string* error, KeySpec* keys) const;
  int write_arity(std::string_view name) const;
  // The commands a client that has not authenticated may send.
  static bool allowed_unauthenticated(std::string_view name);
  // False when `name` is surely none of MULTI, EXEC, DISCARD, WATCH, UNWATCH, HMDB.REQ (a
  // length and first-letter test; true does not say it is one).
  static bool may_be_transaction_or_request(std::string_view name);
  // s's user may not run argv (core/acl.h): answered -NOPERM (an open transaction is then
  // discarded at EXEC, as in Redis). True if refused.
  bool refused_by_acl(ClientSession& s, Args argv, std::optional<uint64_t> held);
  // Whether `user` may run argv, and if not why.
  AclDenial acl_denial(const AclUser& user, Args argv) const;
  // A RESP2 session with subscriptions sent a command Redis refuses in that state: answered.
  bool refused_while_subscribed(ClientSession& s, Args argv, std::optional<uint64_t> held);
  // A blocked node (schema_block_) refuses app commands and transactions: answered.
  // App commands (and transactions) get `reply` while the node is blocked or loading.
  bool refused_while_blocked(ClientSession& s, Args argv, std::optional<uint64_t> held, const std::string& reply);
  NodeView node_view() const;
  // MULTI, EXEC, DISCARD, WATCH, UNWATCH, and every command between MULTI and EXEC.
  // Returns true if it served the command (false: not a transaction command).
  // `request`: argv is HMDB.REQ <id> EXEC (request->command is EXEC), a tagged transaction.
  bool serve_transaction(ClientSession& s, Args argv, std::optional<uint64_t> held, bool* stays_held,
                         const RequestCommand* request = nullptr);
  void queue_in_transaction(ClientSession& s, Args argv, std::string* out);
  // EXEC: its transaction joins the batch as one group, or fails its WATCH.
  // request_id: the EXEC is tagged (HMDB.REQ): the group is the request's item.
  void exec(ClientSession& s, std::optional<uint64_t> held, Route r, std::unique_ptr<Transaction> t,
            std::string_view request_id = {});
  // HMDB.REQ <id> <command> (core/request.h). Returns false if a held one stays held.
  bool serve_request(ClientSession& s, Args argv, std::optional<uint64_t> held);
  // A shell command of s that may change its protocol is still to run at apply.
  bool protocol_may_change(const ClientSession& s) const;
  // The EXEC in slot seq of s holds shell commands that run at apply (a HELLO): for
  // protocol_may_change.
  void note_shell_at_apply(ClientSession& s, uint64_t seq, const Transaction& t);
  // HMDB.REQ <id> EXEC: answers -EXECABORT and returns true if s's transaction cannot be
  // tagged (a WATCH, or a command that is not a write).
  bool refuse_tagged_exec(ClientSession& s, std::optional<uint64_t> held);
  // What route() needs to know of s for a new command, or for held slot `*held`.
  SessionView session_view(const ClientSession& s, std::optional<uint64_t> held) const;
  // A plain client's session on a node that forwards (SessionView::forward's rule).
  bool forwards(const ClientSession& s) const;
  // EXEC of a plain client on a node that does not lead: the transaction goes to the leader
  // whole (request_id not empty: as HMDB.REQ <id> EXEC).
  void forward_transaction(ClientSession& s, std::optional<uint64_t> held, const Transaction& t,
                           std::string_view request_id = {});
  bool watch_failed(const Transaction& t);
  // Runs the transaction's commands (in slot seq of s) that come before its write
  // `position` (all that are left if position == its writes), into its EXEC reply.
  void run_transaction_until(ClientSession& s, uint64_t seq, size_t position, uint64_t now_ms);
  // The EXEC in slot seq of s ended (applied, or answered without being applied).
  void forget_transaction(ClientSession& s, uint64_t seq);
  // Serves a command: a new one (seq empty) or held slot `*seq`. Returns false if a held one
  // stays held.
  bool serve(ClientSession& s, Args argv, std::optional<uint64_t> seq);
  std::string unknown_command_reply(Args argv) const;
  // A finished reply now: into out() (or a new slot) for a new command, into the held slot.
  std::string* finished_reply(ReplyQueue& q, std::optional<uint64_t> held);
  // A slot in `kind` for the command: new, or the held one moved there.
  uint64_t slot_as(ReplyQueue& q, std::optional<uint64_t> held, ReplyQueue::Kind kind, Args argv);
  void batch_write(uint64_t session, uint64_t seq, Args argv, const KeySpec& keys);
  void open_batch();  // starts batch_ if empty, under the active schema version
  // False while batch_ holds writes validated under another schema version than the active
  // one (an activation applied while the leader was busy): they cannot share an entry.
  bool batch_takes_active_version() const;
  void run_queries_from(ClientSession& s, uint64_t first_seq);
  // The context of a query whose reply may be sliced (into new_producer_).
  QueryContext sliceable_query() {
    return QueryContext{wall_ms_, options_.slice_elements, options_.slice_elements ? &new_producer_ : nullptr};
  }
  // The query just run into slot seq of s handed its reply to new_producer_: the slot is
  // kProducing now.
  void start_producing(ClientSession& s, uint64_t seq);
  // One slice of each sliced reply whose slot is at its session's head and whose client
  // reads (all of them, whole, once the hold is overdue or `finish_all`).
  void produce(bool finish_all = false);
  // True when every slot ahead of `seq` is finished or a sliced reply (which goes on while
  // the apply is held), none waiting for an apply.
  static bool ahead_only_replies(const ReplyQueue& q, uint64_t seq);
  // The apply is held while a snapshot loads, sliced replies are made or a write is half
  // applied (with the committed entries handed out behind it).
  void update_apply_hold() {
    raft_.hold_apply(loading_.has_value() || (!producing_.empty() && !options_.bugs.apply_while_producing) ||  // PLANTED BUG
                     (half_.has_value() && !options_.bugs.apply_before_write_finishes) ||  // PLANTED BUG
                     !apply_backlog_.empty());
  }
  void mark_drain(ClientSession& s);
  void drain_session(ClientSession& s);
  void end_proposal(raft::Index index, WriteTracker::Proposal&& p, WriteOutcome outcome);
  void answer_slot(ReplySlot slot, ReplyQueue::Kind expected, std::string_view reply);
  void apply_entry(const raft::Entry& e);
  // apply_entry's parts: a normal entry's commands through apply_batch (resuming half_'s
  // write when `half` is half_'s), and what follows once the entry is applied.
  enum class EntryApply : uint8_t { kDone, kHalfApplied, kStopped };
  EntryApply apply_commands(const raft::Entry& e, WriteTracker::Proposal* ours, HalfApplied* half);
  void entry_applied(const raft::Entry& e, std::optional<WriteTracker::Proposal>& ours);
  // One slice of the half-applied write; once it is computed (and no sliced reply holds the
  // state), its finish() and the rest of its entry, then the entries waiting behind it.
  void apply_slice();
  // Applies the entries waiting behind a half-applied write (while none is).
  void apply_backlog();
  // A snapshot replaces the state: the half-applied write and the entries behind it go.
  void drop_half_applied();
  struct SlotSink;
  void start_reads();
  void finish_reads();
  // Runs the read now, or answers it with a redirect (its node no longer leads).
  void complete_read(ReplySlot slot, bool redirect);
  void on_role_change(raft::Role before);

  raft::Raft& raft_;
  StateMachine& app_;
  ReplicaHost& host_;
  Options options_;

  uint64_t wall_ms_ = 0;    // this turn's wall clock; batch stamps never go backwards
  uint64_t steady_ms_ = 0;  // this turn's monotonic clock

  // The batch being built this turn and who waits for each of its commands.
  BatchBuilder batch_{0};
  std::vector<ReplySlot> batch_slots_;
  uint32_t batch_version_ = kFirstSchemaVersion;  // the schema version batch_'s writes were validated under
  std::optional<std::string> refused_payload_;  // proposal refused with kBusy: retried
  uint32_t refused_version_ = kFirstSchemaVersion;
  std::vector<ReplySlot> refused_slots_;
  WatchTable watch_;  // the leader's record of which keys changed when, for WATCH
  WriteTracker writes_;
  ReadIndex reads_;
  bool housekeeping_in_batch_ = false;  // the app's housekeeping command is in batch_
  bool mark_in_batch_ = false;          // batch_ holds a digest mark
  bool acl_seed_in_batch_ = false;      // batch_ holds the leader's users (AclOp::kSeed)
  ReplicatedAcl acl_;
  DigestMarks marks_;
  raft::Index housekeeping_index_ = 0;  // ... or proposed at this index and not yet applied

  struct Transfer {
    ReplySlot slot;
    raft::NodeId target = raft::kNoNode;
    uint64_t deadline_steady_ms = 0;
    uint64_t timeout_ms = 0;
  };
  std::vector<Transfer> transfers_;

  raft::Index applied_index_ = 0;
  std::optional<SchemaBlock> schema_block_;
  std::optional<raft::SnapshotMeta> loading_;  // loading()
  raft::Term applied_term_ = 0;
  raft::Role last_role_ = raft::Role::kFollower;
  size_t voters_ = 1;  // voters in the membership in force
  uint64_t leader_changes_ = 0;
  Stats stats_;

  std::vector<uint64_t> to_drain_;  // sessions with newly finished replies
  std::vector<uint64_t> drain_scratch_;  // drain()'s list being walked (kept for its capacity)
  ApplyScratch apply_scratch_;
  std::vector<std::string_view> words_scratch_;
  std::string unchanged_scratch_;  // an unchanged_reply, before it has a slot
  RequestTable requests_;
  BlockedTable blocked_;
  bool redirect_blocked_ = false;  // stepped down: blocked cluster clients get -MOVED once a leader is known
  PubSub pubsub_;

  // Sliced replies in progress, in the order they began (a session's in its order).
  struct Producing {
    uint64_t session = 0;
    uint64_t seq = 0;
    Protocol protocol = Protocol::kResp2;  // the session's when the query ran
    std::unique_ptr<ReplyProducer> producer;
    uint64_t reader_wait_since_ms = 0;  // steady time it began waiting for its client to read (0: not waiting)
    bool buffered = false;  // made into its slot: behind a reply that waits for an apply (produce())
  };
  std::vector<Producing> producing_;
  std::unique_ptr<ReplyProducer> new_producer_;  // where sliceable_query()'s query puts one

  // The entry with a write applied in slices (applying_index()): a copy (the core's log may
  // move on), who waits for its replies, and where its batch stopped.
  struct HalfAppliedEntry {
    raft::Entry entry;
    std::optional<WriteTracker::Proposal> ours;
    HalfApplied half;
    bool computed = false;  // the producer's next() returned true: it waits to finish
  };
  std::optional<HalfAppliedEntry> half_;
  // Committed entries handed out by the core behind the half-applied one (copies), applied
  // in order once it is.
  std::deque<raft::Entry> apply_backlog_;
  bool writes_whole_ = false;  // set_writes_whole
  uint64_t hold_since_ms_ = 0;      // steady time the current hold for them began
  bool producing_runnable_ = false;  // a slice may be made next turn
};

}  // namespace hmdb::core
