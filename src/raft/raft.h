// raft/raft.h — the consensus core's API: a pure state machine (no I/O, no clock, no threads).
//
// The caller (the server shell, or the simulator) owns the disk, the network and time.
// It feeds the core inputs and drains its outputs in an explicit order:
//
//   inputs:  tick()                    one logical clock tick (the shell: every tick_ms)
//            step(msg)                 a message from a peer
//            propose(...)              a client write (leader only)
//            read_index(ctx)           a linearizable read request
//            persisted(ack)            the disk finished writing what an earlier Ready asked
//            snapshot_saved(meta)      the shell durably wrote a snapshot: the core may
//                                      compact its log up to meta.index
//   With Config::log_memory_bytes the core also drops applied, durable entries without a
//   snapshot (in take_ready()), and a leader asks for a fresh snapshot (Ready::
//   snapshot_wanted) when a follower needs a dropped entry and the newest one is too old.
//
//   outputs: take_ready() returns a Ready; the caller must, in this order:
//     0. (follower) write ready.snapshot_chunks to a staging area for that snapshot, in order;
//     1. start persisting ready.hard_state and ready.entries (append; an entry at index i
//        replaces any entries >= i); and ready.snapshot if set (follower install: the data
//        is the concatenation of the staged chunks). The hard state must be durable no later
//        than the entries of the same Ready (write it first, or in the same fsync);
//     2. send ready.messages (the core only releases a message once everything it depends
//        on is durable: a vote or append ack is held back until persisted() covers it;
//        the leader's appends to followers go out in parallel with its own write);
//        and, with Config::after_persist_messages, ready.after_persist once step 1 (and
//        every earlier Ready's) is durable;
//     3. apply ready.committed in order (all are durable on a quorum);
//     4. answer ready.read_states once applied index >= read_state.index;
//     5. when the disk write completes, call persisted() (possibly covering several
//        Readies at once: group commit).
//     6. (leader) answer each ready.snapshot_reads request {to, meta, offset, len} by reading
//        those bytes of the durable snapshot file and calling snapshot_chunk(); the core
//        never holds a whole snapshot, only one chunk per follower at a time.
//
// Snapshots: the caller decides when to snapshot (e.g. every N bytes of log); it writes the
// app state at its applied index, with meta = {index, term_at(index), conf_state_at(index)},
// then calls snapshot_saved(meta) and the core drops its in-memory log up to meta.index.
// A follower whose next entry was dropped gets the snapshot in chunks of
// Config::snapshot_chunk_bytes (one chunk in flight per follower).
//
// Single node: a cluster of one campaigns on its first tick (no election timeout) and becomes
// leader once persisted() covers the hard state with its new term and self-vote (a vote
// that a crash could lose must not count: the node could lead the same term twice). An
// entry commits as soon as persisted() covers it. There is one write path. Like any
// leader, it answers read_index() only after committing an entry of its own term.
//
// Every queue inside the core is bounded (Config); a proposal beyond a bound is refused
// with ProposeError::kBusy so that the shell pushes back on clients instead of growing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "raft/types.h"

namespace hmdb::raft {

struct Config {
  NodeId id = kNoNode;
  // Ticks without hearing from a leader before a follower starts a (pre-)vote. The actual
  // timeout is randomized in [election_ticks, 2 * election_ticks) from `seed`.
  uint32_t election_ticks = 10;
  uint32_t heartbeat_ticks = 1;
  bool pre_vote = true;
  bool check_quorum = true;
  // Flow control: bytes and messages in flight per follower.
  uint64_t max_append_bytes = 1 << 20;   // per kAppend message
  uint32_t max_inflight_appends = 64;    // per follower
  uint64_t max_uncommitted_bytes = 256ull << 20;  // proposals beyond this: kBusy
  uint64_t snapshot_chunk_bytes = 1 << 20;
  uint64_t seed = 1;  // randomized election timeouts; deterministic given the seed
  // Opt-in lease reads: while a quorum answered a heartbeat recently enough, the leader
  // answers read_index() at once, without a heartbeat round (needs check_quorum, on every
  // node). Safe only if clocks run at nearly the same rate on every node, the caller feeds
  // the ticks that really elapsed (also after a pause), and it feeds them after reading a
  // request and before read_index(): docs/raft.md "Clock assumption".
  bool lease_reads = false;
  // Messages that wait for this node's own log or hard state to become durable (a
  // follower's append acks and rejections, votes, a candidate's vote requests) are handed
  // out in Ready::after_persist instead of being held until persisted() covers them. The
  // caller sends them once everything it was handed to persist so far (that Ready's hard
  // state, entries and snapshot included) is durable: the server's disk thread sends them
  // itself right after its fdatasync, so a follower's loop need not wake for its disk's
  // acknowledgement before the leader hears it (etcd's asynchronous storage writes). Order
  // holds: while handed-out ones are not known durable (persisted()), later such messages
  // wait for the next Ready's after_persist, never overtake them in `messages`.
  bool after_persist_messages = false;
  // The log a node holds in memory beyond what it still needs (0: no bound, every entry
  // since the last snapshot_saved() stays, as before this bound existed). The oldest
  // entries that are applied (applied_to()) and durable (persisted()) are dropped without a
  // snapshot while the log holds more than this many bytes (Status::log_bytes), on every
  // node. A follower that then needs a dropped entry is sent a snapshot; if
  // the newest one (snapshot_saved()) is older than the log's first entry, the core asks
  // the caller for a fresh one (Ready::snapshot_wanted) and keeps every entry after the
  // point it asked at until that follower has its snapshot (the log of a catch-up by
  // snapshot is held as it was before the bound, up to the next snapshot_saved()).
  // Trimming happens in take_ready(). docs/raft.md, "Bounded log memory".
  uint64_t log_memory_bytes = 0;

  // Planted bugs, for proving that the simulator catches them (tests/sim). Never set in
  // the server: `hmdb serve` has no flag for them.
  struct PlantedBugs {
    bool grant_two_votes_per_term = false;
    bool answer_vote_before_persisting = false;
    bool commit_old_term_by_counting = false;
    bool apply_before_commit = false;
    // A follower installing a snapshot keeps the entries of its log after the snapshot's
    // index when their terms are not below the snapshot's (so its log's terms still never
    // go back), without checking that it holds the snapshot's last entry (index and term):
    // those entries may belong to a history that lost.
    bool keep_log_suffix_on_snapshot_install = false;
    // A follower grants (pre-)votes of a higher term within check-quorum's leader lease
    // (the stickiness that read leases rest on).
    bool ignore_lease_when_voting = false;
    // The read lease lasts election_ticks - kLeaseTickGranularity leader ticks: no
    // allowance for a follower's clock running faster than the leader's.
    bool lease_without_drift_margin = false;
    // A learner never campaigns, not even to break the deadlock that only it can break
    // (docs/raft.md, "Who campaigns"): the rule before that was found.
    bool learners_never_campaign = false;
    // A new leader counts only itself as heard from in its first check-quorum round, not the
    // voters that just elected it: a stall right after its election (the shell feeds the
    // stall's ticks before the answers to its first append) deposes it at its first check.
    // Liveness only (an election more).
    bool fresh_leader_forgets_its_voters = false;
    // A follower acknowledges appended entries at once, before persisted() covers them
    // (a crash can then lose entries the leader counted).
    bool ack_append_before_persisting = false;
    // With log_memory_bytes: a follower that needs an entry the bound dropped is sent the
    // newest snapshot even when it is older than the log's first entry, instead of a fresh
    // one asked for (Ready::snapshot_wanted): it installs it and needs the dropped entries
    // after it again, for ever.
    bool send_stale_snapshot_after_trim = false;
    // A follower checks whether its log already holds a snapshot's last entry only at the
    // snapshot's first chunk: appends it acknowledged while the later chunks were staged
    // are cut from its log by the install, and the leader, which counts them held there,
    // never sends them again (a follower that never catches up).
    bool install_over_matching_log = false;
    // A follower stages the chunks of another snapshot while an install is pending in the
    // Ready not yet taken: the caller stages them before installing, over the install's
    // data (the server aborts: "snapshot install without its staged chunks").
    bool stage_over_pending_install = false;
    // A follower advances its commit index past a snapshot whose install is pending in the
    // Ready not yet taken (an append after the snapshot's last chunk, in one loop turn): that
    // Ready then hands out entries after the snapshot to apply while its caller may load the
    // snapshot in the background (the replica aborts: "apply out of order").
    bool commit_past_pending_install = false;
  } bugs;
};

// What the core was when it stopped: read back from disk at startup.
struct RestoreState {
  HardState hard_state;
  std::optional<SnapshotMeta> snapshot;  // newest durable snapshot, if any
  std::vector<Entry> entries;            // durable entries after the snapshot, contiguous
  ConfState initial_conf;                // used only when there is no snapshot and no conf entries
  Index applied = 0;  // the state machine's applied index after restart (0: the snapshot's)
};

struct PersistAck {
  Index last_index = 0;  // entries up to here (of last_term at that index) are durable
  Term last_term = 0;
  HardState hard_state;  // durable hard state
};

struct ReadState {
  uint64_t context = 0;  // the caller's request id from read_index()
  Index index = 0;       // answer the read once applied >= index
};

// Leader: read bytes [offset, offset + length) of the snapshot `meta` and call
// snapshot_chunk(to, meta, offset, total, bytes, last).
struct SnapshotReadRequest {
  NodeId to = kNoNode;
  SnapshotMeta meta;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Follower: one received chunk of the snapshot `meta`; write it at `offset` of the staging
// file. offset 0 starts a new staging file (discard any earlier partial one).
struct SnapshotChunk {
  SnapshotMeta meta;
  uint64_t offset = 0;
  uint64_t total = 0;
  bool last = false;
  std::string data;
};

// kLearner: a learner that follows. A learner that campaigns (after the voters failed to
// elect one of their own for long, to end a deadlock only it can end: docs/raft.md, "Who
// campaigns") reports kPreCandidate, kCandidate and kLeader like a voter; Status::conf
// tells whether this node is a voter.
enum class Role : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader, kLearner };

struct Ready {
  // Set when it changed. Its commit never exceeds the durable log (it is a hint for restart).
  std::optional<HardState> hard_state;
  std::vector<Entry> entries;           // to persist (append/overwrite)
  std::optional<Snapshot> snapshot;     // follower: install and persist this snapshot
  std::vector<Message> messages;        // to send
  // Config::after_persist_messages: to send only once everything handed out to persist so
  // far, this Ready's hard state, entries and snapshot included, is durable.
  std::vector<Message> after_persist;
  std::vector<Entry> committed;         // to apply, in order (noop/conf entries included)
  // take_ready(ReadyOptions{.committed_by_reference = true}) fills this instead of
  // `committed`: the same entries, in order, as pointers into the core's own log, so that
  // applying them copies no payload. They stay valid until the next take_ready(), step()
  // or snapshot_saved(): the only calls that truncate, compact or replace the core's log
  // (take_ready() drops applied entries under Config::log_memory_bytes; appending, e.g.
  // propose() while applying, never moves an entry). Apply them first.
  std::vector<const Entry*> committed_refs;
  std::vector<ReadState> read_states;
  std::vector<SnapshotReadRequest> snapshot_reads;  // leader: read and call snapshot_chunk()
  std::vector<SnapshotChunk> snapshot_chunks;       // follower: stage before installing
  // Leader with Config::log_memory_bytes: a follower needs an entry the bound dropped, and
  // the newest snapshot saved is older than the log's first entry. The caller takes a
  // snapshot of its applied state (one at a time: if one is being written, another once it
  // is done) and calls snapshot_saved(); the core then sends it. Asked again every
  // kSnapshotStallElectionTimeouts election timeouts while the follower still waits.
  bool snapshot_wanted = false;
  bool empty() const {
    return !hard_state && entries.empty() && !snapshot && messages.empty() && after_persist.empty() &&
           committed.empty() &&
           committed_refs.empty() &&
           read_states.empty() && snapshot_reads.empty() && snapshot_chunks.empty() && !snapshot_wanted;
  }
};

struct ReadyOptions {
  // Hand committed entries out in Ready::committed_refs (pointers into the core's log)
  // instead of copies in Ready::committed. For a caller that applies them before its next
  // call into the core (the server's drive loop, which replays a whole log at startup).
  bool committed_by_reference = false;
};

// kRejected: a membership change that is not allowed (would remove the last voter, or
// changes nothing).
enum class ProposeError : uint8_t { kNone, kNotLeader, kBusy, kTransferring, kRejected };

struct ProposeResult {
  ProposeError error = ProposeError::kNone;
  Index index = 0;  // where the entry will be, if accepted
  Term term = 0;
};

struct Status {
  NodeId id = kNoNode;
  Role role = Role::kFollower;
  Term term = 0;
  NodeId leader = kNoNode;
  Index commit = 0;
  Index applied = 0;  // as told by the caller via applied_to()
  Index last_index = 0;
  Index first_index = 0;
  // The entries [first_index, last_index] held in memory: their payloads plus
  // kEntryOverheadBytes each (raft_log.h's entry_bytes).
  uint64_t log_bytes = 0;
  ConfState conf;
  // Index of the entry (or snapshot) that established `conf` (0: the initial membership).
  Index conf_index = 0;
  // Index of the newest membership this core still knows (since its snapshot) that contains
  // this node; none if no known membership does (a --join node before it is added). A peer
  // that refuses this node as a non-member by a membership newer than this proves that the
  // node was removed (server/cluster.cc).
  std::optional<Index> self_conf_index;
  struct Progress {
    NodeId id;
    Index match;
    Index next;
    bool is_learner;
    // Streaming a snapshot to it: the bytes it acknowledged so far and the snapshot's size
    // (0 until the host read a first chunk). Operators watch a catch-up with these.
    bool sending_snapshot = false;
    uint64_t snapshot_acked = 0;
    uint64_t snapshot_total = 0;
    // Waiting for a fresh snapshot (Ready::snapshot_wanted) to be sent one.
    bool waiting_snapshot = false;
  };
  std::vector<Progress> progress;  // leader only
  NodeId transferee = kNoNode;     // leader: leadership transfer in progress to this node
  uint64_t dropped_messages = 0;   // messages dropped because a bounded queue was full
  // Config::log_memory_bytes: entries dropped from the log without a snapshot, and the
  // times a fresh snapshot was asked for (Ready::snapshot_wanted), since construction.
  uint64_t trimmed_entries = 0;
  uint64_t snapshots_wanted = 0;
};

class Raft {
 public:
  Raft(const Config& config, RestoreState restore);
  ~Raft();
  Raft(const Raft&) = delete;
  Raft& operator=(const Raft&) = delete;

  void tick();
  void step(const Message& msg);
  ProposeResult propose(EntryType type, uint32_t schema_version, std::string data);
  // The same without a copy: takes *data (leaves it moved-from) only if the proposal is
  // accepted; a refused proposal (e.g. kBusy, to be retried) keeps its bytes.
  ProposeResult propose(EntryType type, uint32_t schema_version, std::string* data);
  ProposeResult propose_conf_change(const ConfChange& change);
  // Linearizable read: the context comes back in a ReadState once the leader has confirmed
  // its leadership with a quorum. Returns false if this node cannot serve it (not leader).
  bool read_index(uint64_t context);
  void transfer_leadership(NodeId to);
  void persisted(const PersistAck& ack);
  void snapshot_saved(const SnapshotMeta& meta);
  void applied_to(Index index);
  // Entries that snapshot_saved() or a snapshot install dropped from the log are not freed
  // there (a big log would stall the caller): this frees at most max_entries of them and
  // returns how many are left. Call it regularly (the server: once per loop turn). It
  // stops early once the payloads freed reach max_bytes, and calls before_free (if given)
  // on each payload just before freeing it: the server madvises the payload's pages away
  // there (server/node.cc), which the core, doing no system calls, leaves to its caller.
  size_t free_dropped_entries(size_t max_entries, uint64_t max_bytes = UINT64_MAX,
                              void (*before_free)(std::string& payload) = nullptr);
  // Start an election now (tests and the simulator; the server never calls it: an operator
  // moves leadership with `hmdb cluster transfer`). Ignored by learners and leaders (a
  // learner campaigns only on its own, after a long silence: docs/raft.md).
  // With lease reads, a node within check-quorum's stickiness that campaigns breaks the
  // promise a leader's lease rests on: move leadership with transfer_leadership() instead.
  void campaign();
  // false: this node does not lead. It ignores campaign() and a TimeoutNow (a leadership
  // transfer to it), its election timeout starts nothing, a campaign under way is
  // abandoned and a leader hands over (TimeoutNow to its most up-to-date voter) and steps
  // down. It still votes, appends, persists and acknowledges entries, so it counts for
  // commits and elections like any voter. One exception, the learner's (docs/raft.md, "Who
  // campaigns"): with pre-vote and check-quorum, after kLearnerCampaignElectionTimeouts
  // election timeouts without a leader it runs a pre-vote, because its log may be the only
  // complete one among the voters alive (it refuses its vote to shorter logs, so nobody
  // else could win); elected, it leads only until its noop commits (which brings a
  // majority up to its log), then hands over and steps down the same way, having proposed
  // nothing (the caller must not propose on such a leader). The server sets it on a node
  // that stopped applying at a schema version its binary does not read (docs/cluster.md,
  // "Schema versions"). Not persisted: the caller sets it again after a restart.
  void set_may_lead(bool may);
  bool may_lead() const;
  // true: Ready hands out no committed entries to apply (they stay in the log, handed out
  // once this is false again); everything else (appending, persisting, acknowledging,
  // voting, heartbeats) goes on. The server holds applying while it loads an installed
  // snapshot in a background thread: the entries after the snapshot's index must wait for
  // the state they apply to. Not persisted.
  void hold_apply(bool hold);
  // Follower: a snapshot the leader offers is installed only if `accept(meta)` is true
  // (empty: every one). A refused one is not answered, chunk after chunk: the leader sends
  // it again after its stall timeout, and the follower stays where it is. The server refuses
  // a snapshot of a schema version its binary does not read rather than stop
  // (docs/cluster.md, "Schema versions"). `accept` must not call into this core.
  void set_snapshot_filter(std::function<bool(const SnapshotMeta&)> accept);
  uint64_t snapshots_refused() const;  // snapshot messages refused so far
  // Answer to a Ready::snapshot_reads request: `bytes` are [offset, offset + bytes.size())
  // of the snapshot `meta`, whose total size is `total`; `last` if they end it. Ignored if
  // the request is obsolete (the follower moved on, or a newer snapshot exists).
  void snapshot_chunk(NodeId to, const SnapshotMeta& meta, uint64_t offset, uint64_t total,
                      std::string bytes, bool last);
  // The membership in force at `index`, for SnapshotMeta::conf. REQUIRES: index >=
  // status().first_index - 1 (the core's snapshot). After the core accepted a snapshot from
  // the leader, the caller's applied index is below that until it handles the Ready that
  // installs it: do not snapshot in between.
  ConfState conf_state_at(Index index) const;

  // Observation, for checkers outside the core (the simulator); changes nothing.
  // The read lease as this node computes it now: valid only on a leader with
  // Config::lease_reads that would answer read_index() from it at once; `voters` are the
  // other voters whose heartbeat acknowledgements make it valid (each of them promised,
  // by check-quorum's stickiness, to vote for no one else until the lease ends).
  struct Lease {
    bool valid = false;
    std::vector<NodeId> voters;
  };
  Lease lease() const;
  // Running counts since this core was constructed: reads answered from the lease (no
  // heartbeat round), and (pre-)votes granted.
  uint64_t lease_reads_answered() const;
  uint64_t votes_granted() const;
  // Check-quorum's stickiness, the promise a lease rests on: this node heard from a leader
  // less than election_ticks of its own ticks ago (or, with lease reads, restarted less than
  // that ago), so it must ignore (pre-)vote requests of a higher term that are not part of
  // a leadership transfer. The promise, whether or not the node keeps it.
  bool in_leader_lease() const;

  bool has_ready() const;
  Ready take_ready();
  Ready take_ready(const ReadyOptions& options);

  Status status() const;
  uint64_t log_bytes() const;  // Status::log_bytes, without building a Status
  Index last_index() const;    // Status::last_index, without building a Status
  Role role() const;
  NodeId leader() const;
  Term term() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Encoding of ConfChange entries' data (shared with log dump). The core writes entries with
// encode_conf_change_entry(), which also carries the membership that results from the
// change (so a node joining with no membership learns it from the log);
// decode_conf_change() reads both forms.
std::string encode_conf_change(const ConfChange& change);
std::string encode_conf_change_entry(const ConfChange& change, const ConfState& after);
bool decode_conf_change(std::string_view data, ConfChange* out);
// `after` (may be null) receives the resulting membership if the entry carries it.
bool decode_conf_change_entry(std::string_view data, ConfChange* out,
                              std::optional<ConfState>* after);

}  // namespace hmdb::raft
