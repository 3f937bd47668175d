// raft/raft.cc — the consensus core: elections, replication, commit, snapshots, membership,
// leadership transfer and read-index, as a pure state machine (see raft.h for the contract,
// docs/raft.md for the design). No I/O, no clock, no threads: inputs are ticks, messages,
// proposals and persistence acknowledgements; outputs are collected into a Ready.
//
// Sections: bounds and helpers · state · construction · inputs · roles · elections ·
// replication (leader) · replication (follower) · snapshots · membership · read-index ·
// durability gate · Ready · conf change encoding.
#include "raft/raft.h"

#include <algorithm>
#include <deque>
#include <map>

#include "common/assert.h"
#include "hmdb/codec.h"
#include "raft/raft_log.h"

namespace hmdb::raft {

// ───────────────────────────── bounds and helpers ─────────────────────────────

namespace {

// Messages waiting in the outbox between two take_ready() calls. Beyond it, messages are
// dropped (always safe in Raft: every message may be lost) and counted.
constexpr size_t kMaxOutboxMessages = 1 << 16;
// Messages held back until persisted() makes their preconditions durable. Same policy.
constexpr size_t kMaxHeldMessages = 1 << 14;
// Read-index requests pending on the leader (waiting for a heartbeat quorum, or for the
// first commit of the leader's term). Beyond it, read_index() returns false.
constexpr size_t kMaxPendingReads = 4096;
// Bytes of committed entries handed out in one Ready; the rest come in the next one.
constexpr uint64_t kMaxCommittedBytesPerReady = 64ull << 20;
// Vote request context marking an election started by leadership transfer: receivers then
// ignore their leader lease (the old leader asked for it).
constexpr uint64_t kTransferContext = 1;
// Lease reads: the fastest rate (percent) at which one node's ticks may run relative to
// another's. A lease lasts election_ticks * (100 - this) / 100 leader ticks from the send
// time of the heartbeat that a quorum acknowledged, minus kLeaseTickGranularity (a
// follower may have been partway into a tick when the heartbeat arrived).
constexpr uint32_t kLeaseClockDriftPercent = 10;
constexpr uint64_t kLeaseTickGranularity = 1;
// A learner campaigns (to end an election no voter can end) only after this many of its
// randomized election timeouts without a leader: rare enough that a learner leads only when
// the voters have failed to elect anyone for seconds (measured in the simulator at 2: a
// learner led briefly in 2.4 % of runs, after ordinary long elections), short enough that
// the deadlock ends well within the simulator's liveness bound (30 election timeouts).
constexpr uint32_t kLearnerCampaignElectionTimeouts = 10;
// A snapshot chunk not acknowledged within this many election timeouts is sent again.
constexpr uint32_t kSnapshotStallElectionTimeouts = 2;
// Format version bytes of an encoded ConfChange: without / with the resulting membership.
constexpr uint8_t kConfChangeFormat = 1;
constexpr uint8_t kConfChangeFormatWithState = 2;

uint64_t splitmix64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool contains(const std::vector<NodeId>& v, NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

void erase_id(std::vector<NodeId>* v, NodeId id) {
  v->erase(std::remove(v->begin(), v->end(), id), v->end());
}

void insert_sorted(std::vector<NodeId>* v, NodeId id) {
  if (contains(*v, id)) return;
  v->insert(std::upper_bound(v->begin(), v->end(), id), id);
}

using ull = unsigned long long;

}  // namespace

// ───────────────────────────── state ─────────────────────────────

enum class InternalRole : uint8_t { kFollower, kPreCandidate, kCandidate, kLeader };

// The leader's view of one follower (etcd's tracker.Progress).
//   kProbe:     we do not know where the follower's log matches ours; one append at a time.
//   kReplicate: it matched; appends are pipelined, at most max_inflight_appends in flight.
//   kSnapshot:  its next entry was compacted; we stream a snapshot, one chunk at a time.
struct Progress {
  enum class State : uint8_t { kProbe, kReplicate, kSnapshot };
  Index match = 0;
  Index next = 1;
  State state = State::kProbe;
  bool probe_sent = false;     // kProbe: an append is out, wait for its answer or a heartbeat
  bool recent_active = false;  // heard from it since the last check-quorum round
  uint64_t heartbeat_ack_sent_tick = 0;  // send tick of the newest heartbeat it answered
  bool is_learner = false;
  std::deque<Index> inflight;  // kReplicate: last index of each append in flight (bounded)
  // kSnapshot
  SnapshotMeta snapshot_meta;
  uint64_t snapshot_offset = 0;  // next byte to send
  uint64_t snapshot_total = 0;   // its size, once the host read a first chunk (0: not yet)
  uint32_t snapshot_stall_ticks = 0;
  // Config::log_memory_bytes: no snapshot saved is recent enough for it; a fresh one was
  // asked for (Ready::snapshot_wanted). The log is not trimmed past snapshot_pin (its
  // snapshot index when it began to wait, at or below the fresh snapshot's) meanwhile.
  bool waiting_snapshot = false;
  Index snapshot_pin = 0;
};

// A read-index request on the leader, answered once a quorum acknowledged a heartbeat sent
// after the request was registered (heartbeat context >= seq).
struct ReadRequest {
  uint64_t seq = 0;
  NodeId from = kNoNode;  // this node, or the follower that forwarded it
  uint64_t context = 0;
  Index index = 0;
  std::vector<NodeId> acks;
};

// A message waiting until what it depends on is durable: the hard state (term, vote) at the
// time it was produced and, for non-leaders, the log up to (log_index, log_term).
struct HeldMessage {
  Message msg;
  Term hs_term = 0;
  NodeId hs_vote = kNoNode;
  Index log_index = 0;
  Term log_term = 0;
};

struct Raft::Impl {
  Config cfg;
  NodeId id;

  // Persistent state (the source of the hard state) and the log.
  Term term = 0;
  NodeId vote = kNoNode;
  RaftLog log;
  Index commit = 0;

  // Volatile role state.
  InternalRole role = InternalRole::kFollower;
  NodeId lead = kNoNode;
  uint32_t election_elapsed = 0;
  uint32_t heartbeat_elapsed = 0;
  uint64_t now_ticks = 1;  // ticks since this core started, from 1 (for leader leases)
  // With lease reads, a node restarted with a durable term may have acknowledged a
  // heartbeat just before it stopped, promising (check-quorum's stickiness) to vote for no
  // one else for election_ticks; it forgot from whom, so it keeps the promise towards
  // everyone for its first election_ticks ticks.
  bool restart_lease = false;
  // now_ticks when a leader's append, heartbeat or snapshot last arrived (0: never). Kept
  // apart from `lead`, which a higher term in any message clears: the promise below is about
  // time since hearing from a leader, whatever happened to the term since.
  uint64_t leader_contact_tick = 0;
  uint32_t randomized_election_timeout = 0;
  uint64_t rng_state = 0;
  std::map<NodeId, bool> votes;  // candidate / pre-candidate: who answered, granted or not
  // Raft::set_may_lead(false): this node campaigns only as a learner does, to end an
  // election that no other voter can win, and then leads only until its noop commits.
  bool may_lead = true;
  bool apply_held = false;  // Raft::hold_apply

  // Membership: the latest in the log, committed or not (Ongaro's single-server rule: a
  // change takes effect when appended, and is undone if truncated), and its history since
  // the snapshot: (index of the conf entry, membership from there on), increasing indexes,
  // history.front().first <= log.snapshot_index(), history.back().second == conf.
  ConfState conf;
  std::vector<std::pair<Index, ConfState>> conf_history;

  // Leader.
  std::map<NodeId, Progress> progress;
  NodeId transferee = kNoNode;
  // A TimeoutNow went out in this term: its receiver's vote requests bypass the followers'
  // stickiness whenever they arrive (after a slow disk write, long after the transfer was
  // given up), so the read lease is over for this term.
  bool timeout_now_sent = false;
  Index pending_conf_index = 0;  // no new conf change until commit reaches this
  uint64_t uncommitted_bytes = 0;
  bool append_pending = false;  // proposals since the last take_ready() not yet sent
  std::deque<ReadRequest> reads;
  std::deque<std::pair<NodeId, uint64_t>> reads_waiting_commit;  // before first commit of term
  uint64_t read_seq = 0;
  std::optional<SnapshotMeta> latest_snapshot;  // newest durable snapshot, to send
  // Config::log_memory_bytes: a fresh snapshot is wanted (Ready::snapshot_wanted), and the
  // running counts of Status::trimmed_entries and snapshots_wanted.
  bool snapshot_wanted = false;
  uint64_t trimmed_entries = 0;
  uint64_t snapshots_wanted = 0;

  // Follower: snapshot being received (staged by the caller chunk by chunk).
  std::optional<SnapshotMeta> staging_meta;
  uint64_t staging_offset = 0;

  // Durability and hand-out bookkeeping.
  Index handed_index = 0;   // entries up to here were given out in a Ready to persist
  Index durable_index = 0;  // entries up to here (of the current log) are durable
  Term durable_term = 0;    // durable hard state
  NodeId durable_vote = kNoNode;
  HardState handed_hs;      // last hard state given out
  Index applied_handed = 0; // entries up to here were given out to apply
  Index applied = 0;        // as reported by applied_to()

  // Outputs, drained by take_ready().
  std::vector<Message> outbox;
  std::vector<HeldMessage> held;  // in creation order; compacted in place on release
  // Config::after_persist_messages: the durable state the after_persist messages handed out
  // last wait for (the hard state's term and vote, the log's last entry), until persisted()
  // covers it; meanwhile later gated messages are held, so they cannot overtake them.
  bool after_persist_outstanding = false;
  HeldMessage after_persist_gate;
  std::vector<Index> match_scratch;  // maybe_commit's sort buffer, kept to avoid allocating
  std::optional<Snapshot> install;
  std::vector<SnapshotChunk> chunks_out;
  std::vector<SnapshotReadRequest> snapshot_reads;
  std::vector<ReadState> read_states;
  uint64_t dropped_messages = 0;
  // Observation counters (Raft::lease_reads_answered(), votes_granted()).
  uint64_t lease_reads_answered = 0;
  uint64_t votes_granted = 0;
  // Raft::set_snapshot_filter.
  std::function<bool(const SnapshotMeta&)> snapshot_accept;
  uint64_t snapshots_refused = 0;

  // A planted bug that may break safety is set: some assertions then let the simulator's
  // checker report instead. (Not learners_never_campaign: it costs liveness only, so every
  // assertion stays on.)
  bool any_bug() const {
    const auto& b = cfg.bugs;
    return b.grant_two_votes_per_term || b.answer_vote_before_persisting ||
           b.commit_old_term_by_counting || b.apply_before_commit ||
           b.keep_log_suffix_on_snapshot_install || b.ignore_lease_when_voting ||
           b.lease_without_drift_margin || b.ack_append_before_persisting;
  }

  // ─────────── construction ───────────

  Impl(const Config& config, RestoreState restore) : cfg(config), id(config.id) {
    HMDB_ASSERT(id != kNoNode, "Config::id must be set (0 means no node)");
    HMDB_ASSERT(cfg.election_ticks > cfg.heartbeat_ticks && cfg.heartbeat_ticks > 0,
                "election_ticks (%u) must exceed heartbeat_ticks (%u) > 0", cfg.election_ticks,
                cfg.heartbeat_ticks);
    HMDB_ASSERT(cfg.max_inflight_appends > 0 && cfg.max_append_bytes > 0 &&
                    cfg.snapshot_chunk_bytes > 0,
                "flow-control bounds must be positive");
    rng_state = cfg.seed * 0x9E3779B97F4A7C15ull ^ id;

    Index snap_index = 0;
    Term snap_term = 0;
    if (restore.snapshot) {
      snap_index = restore.snapshot->index;
      snap_term = restore.snapshot->term;
      conf = restore.snapshot->conf;
      latest_snapshot = restore.snapshot;
    } else {
      conf = restore.initial_conf;
    }
    std::sort(conf.voters.begin(), conf.voters.end());
    std::sort(conf.learners.begin(), conf.learners.end());
    conf_history.push_back({snap_index, conf});
    if (!restore.entries.empty()) {
      HMDB_ASSERT(restore.entries.front().index == snap_index + 1,
                  "restored entries start at %llu but the snapshot ends at %llu: a gap in the log",
                  (ull)restore.entries.front().index, (ull)snap_index);
    }
    log.restore(snap_index, snap_term, std::move(restore.entries));
    // The membership in force is the latest one in the log, committed or not.
    for (Index i = log.first_index(); i <= log.last_index(); i++) {
      if (log.at(i).type == EntryType::kConfChange) apply_conf_change_entry(log.at(i));
    }

    const HardState& hs = restore.hard_state;
    HMDB_ASSERT(hs.term >= log.last_term(),
                "hard state term %llu is older than the last entry's term %llu: the hard state "
                "must be made durable no later than the entries of the same Ready",
                (ull)hs.term, (ull)log.last_term());
    term = hs.term;
    vote = hs.vote;
    restart_lease = cfg.lease_reads && cfg.check_quorum && hs.term > 0;
    HMDB_ASSERT(hs.commit <= log.last_index(),
                "commit index %llu beyond last index %llu: was the log truncated?", (ull)hs.commit,
                (ull)log.last_index());
    commit = snap_index;
    applied_handed = std::max(snap_index, restore.applied);
    HMDB_ASSERT(applied_handed <= std::max(hs.commit, snap_index),
                "restored applied index %llu beyond commit %llu", (ull)applied_handed,
                (ull)hs.commit);
    applied = applied_handed;
    // The hinted commit index: entries up to it are handed out to apply again (the state
    // machine restarts from its snapshot).
    advance_commit(std::max(hs.commit, snap_index));

    handed_index = log.last_index();
    durable_index = log.last_index();
    durable_term = term;
    durable_vote = vote;
    handed_hs = current_hard_state();
    reset_randomized_timeout();
  }

  // ─────────── small queries ───────────

  bool is_voter(NodeId n) const { return contains(conf.voters, n); }
  bool is_learner(NodeId n) const { return contains(conf.learners, n); }
  // A voter of its latest membership may campaign, and so may a node that only an
  // uncommitted change removes: its log may be the most up to date, so that the others
  // cannot win without its vote, and nobody else may be able to finish that change (found
  // by the simulator: 4 voters, one down for good, the leader's own removal appended but
  // not replicated before it lost its leadership: no leader ever again). It counts votes in
  // its latest membership, without itself, and once elected leads without counting itself
  // until the change commits, then steps down (as a leader that removed itself does).
  bool promotable() const { return is_voter(id) || removal_pending(); }
  bool removal_pending() const {
    if (conf_history.back().first <= commit) return false;  // the latest membership is committed
    for (auto it = conf_history.rbegin(); it != conf_history.rend(); ++it)
      if (it->first <= commit) return contains(it->second.voters, id);
    return false;
  }
  // A learner may campaign too, to break a deadlock that no voter can break (found by the
  // simulator: voters {1,2,3}, learner 4. Leader 3 appends PROMOTE 4, which reaches no one;
  // 1 leads the next term, gets its noop to 4 only, and then refuses to start for good. 3
  // needs 3 of {1,2,3,4} and 4 refuses it (4's last term is newer); 2 needs 2 of {1,2,3}
  // and 3 refuses it (2's log is behind); only 4 could win). Hence: only with pre-vote and
  // check-quorum, so that it never disturbs a cluster that has a leader (the voters within
  // check-quorum's stickiness ignore it), and only after kLearnerCampaignElectionTimeouts of
  // its election timeouts, so that a voter normally wins first (it cannot tell the deadlock from a long failure to
  // elect, and campaigns after either: docs/raft.md). Its own vote does not count (tally
  // counts voters): it needs a majority of the voters, each of which checked that its log
  // is up to date, as in any election. Once elected it leads only until its noop commits,
  // then steps down as a leader outside its membership does (advance_commit), leaving a
  // majority of voters with an entry of the newest term: one of them wins next.
  // A voter that may not lead (set_may_lead(false)) campaigns under the learner's rules, for
  // the same reason: its log may be the only complete one among the voters alive (the
  // leader died after it, and not the others, appended the last entries), and it refuses
  // its vote to every candidate with a shorter log, so no one else can win (found by
  // tests/system/schema_gate_test.py's first design: v1 and v2 alive, v1 blocked). Its own
  // vote counts: it is a voter. It leads until its noop commits, which brings a majority of
  // voters up to its log, then steps down and hands over (advance_commit).
  bool last_resort_may_campaign() const {
    return promotable() && cfg.pre_vote && cfg.check_quorum && !cfg.bugs.learners_never_campaign;
  }
  bool learner_may_campaign() const {
    return is_learner(id) && cfg.pre_vote && cfg.check_quorum && !cfg.bugs.learners_never_campaign;
  }
  // May start a (pre-)vote now: a learner starts a real vote only after winning a pre-vote.
  bool may_campaign(bool pre) const {
    if (!may_lead) return last_resort_may_campaign() && (pre || role == InternalRole::kPreCandidate);
    if (promotable()) return true;
    return learner_may_campaign() && (pre || role == InternalRole::kPreCandidate);
  }
  size_t quorum() const { return conf.voters.size() / 2 + 1; }
  bool single_voter_self() const { return conf.voters.size() == 1 && conf.voters[0] == id; }
  bool committed_in_current_term() const { return log.term_at(commit) == term; }

  void reset_randomized_timeout() {
    randomized_election_timeout =
        cfg.election_ticks + static_cast<uint32_t>(splitmix64(&rng_state) % cfg.election_ticks);
  }

  // ─────────── roles ───────────

  void reset(Term new_term) {
    if (new_term != term) {
      HMDB_ASSERT(new_term > term, "term going back from %llu to %llu", (ull)term, (ull)new_term);
      term = new_term;
      vote = kNoNode;
    }
    lead = kNoNode;
    election_elapsed = 0;
    heartbeat_elapsed = 0;
    reset_randomized_timeout();
    votes.clear();
    progress.clear();
    transferee = kNoNode;
    timeout_now_sent = false;
    reads.clear();
    reads_waiting_commit.clear();
    uncommitted_bytes = 0;
    append_pending = false;
  }

  void become_follower(Term t, NodeId leader) {
    reset(t);
    role = InternalRole::kFollower;
    lead = leader;
  }

  void become_pre_candidate() {
    HMDB_ASSERT(role != InternalRole::kLeader, "a leader cannot become a pre-candidate");
    // The term does not change: a pre-vote must not disturb anyone if it fails.
    votes.clear();
    lead = kNoNode;
    election_elapsed = 0;
    reset_randomized_timeout();
    role = InternalRole::kPreCandidate;
  }

  void become_candidate() {
    HMDB_ASSERT(role != InternalRole::kLeader, "a leader cannot become a candidate");
    reset(term + 1);
    vote = id;
    role = InternalRole::kCandidate;
  }

  void become_leader() {
    HMDB_ASSERT(role == InternalRole::kCandidate, "only a candidate can become leader");
    // The voters whose grants elected it were heard from in its first check-quorum round
    // (reset() forgets the votes).
    std::vector<NodeId> granted;
    for (const auto& [n, yes] : votes)
      if (yes && n != id) granted.push_back(n);
    reset(term);
    role = InternalRole::kLeader;
    lead = id;
    for (NodeId v : conf.voters) add_progress(v, false);
    for (NodeId l : conf.learners) add_progress(l, true);
    progress[id].recent_active = true;
    // Check-quorum's first round then judges what the leader heard, not whether it could
    // read: a shell that feeds a stall's ticks before the messages that came meanwhile
    // (the server's loop after a long or descheduled turn) would otherwise depose a leader
    // elected just before the stall at its first check, the answers to its first append
    // unread, while one that led for a while survives the same stall on what it heard
    // before it. A leader cut off at once still steps down, at the second round.
    if (!cfg.bugs.fresh_leader_forgets_its_voters) {
      for (NodeId n : granted)
        if (auto it = progress.find(n); it != progress.end()) it->second.recent_active = true;
    }
    for (Index i = std::max(commit + 1, log.first_index()); i <= log.last_index(); i++) {
      uncommitted_bytes += entry_bytes(log.at(i));
    }
    // A leader commits entries of earlier terms only through an entry of its own term.
    append_entry(EntryType::kNoop, 0, std::string());
    // Single-step membership changes are safe only once this term committed an entry
    // (Ongaro's fix): no conf change until the noop commits.
    pending_conf_index = log.last_index();
    progress[id].match = durable_index;
    maybe_commit();
    broadcast_append(true);
  }

  void add_progress(NodeId n, bool learner) {
    Progress pr;
    pr.next = log.last_index() + 1;
    pr.is_learner = learner;
    pr.recent_active = (n == id);
    if (n == id) pr.match = durable_index;
    progress[n] = std::move(pr);
  }

  // ─────────── elections ───────────

  void tick() {
    now_ticks++;
    if (role == InternalRole::kLeader) {
      tick_leader();
      return;
    }
    election_elapsed++;
    if (!promotable() || !may_lead) {
      if ((learner_may_campaign() || (!may_lead && last_resort_may_campaign())) &&
          election_elapsed >= kLearnerCampaignElectionTimeouts * randomized_election_timeout) {
        start_campaign(true, false);  // resets election_elapsed
      }
      return;
    }
    if (single_voter_self()) {
      // A cluster of one campaigns at once: there is nobody to wait for. It wins when
      // persisted() makes its own vote durable (see self_vote_durable()); until then it
      // stays candidate rather than bump the term again on every tick.
      if (role != InternalRole::kCandidate) start_campaign(false, false);
      return;
    }
    if (election_elapsed >= randomized_election_timeout) {
      election_elapsed = 0;
      start_campaign(cfg.pre_vote, false);
    }
  }

  void tick_leader() {
    heartbeat_elapsed++;
    election_elapsed++;
    if (election_elapsed >= cfg.election_ticks) {
      election_elapsed = 0;
      if (cfg.check_quorum && !quorum_active()) {
        // Cannot hear a majority for a whole election timeout: someone else may be leader
        // by now. Stop serving (reads especially) rather than act on stale authority.
        become_follower(term, kNoNode);
        return;
      }
      if (transferee != kNoNode) transferee = kNoNode;  // transfer timed out: abort it
    }
    for (auto& [n, pr] : progress) {
      if (n == id || pr.state != Progress::State::kSnapshot) continue;
      if (++pr.snapshot_stall_ticks >= kSnapshotStallElectionTimeouts * cfg.election_ticks) {
        if (pr.waiting_snapshot) {
          pr.snapshot_stall_ticks = 0;
          want_snapshot();  // the caller could not take one (e.g. its fork failed): ask again
        } else {
          request_snapshot_chunk(n, pr);  // a chunk or its answer was lost: send it again
        }
      }
    }
    if (heartbeat_elapsed >= cfg.heartbeat_ticks) {
      heartbeat_elapsed = 0;
      broadcast_heartbeat();
    }
  }

  bool quorum_active() {
    size_t active = 0;
    for (auto& [n, pr] : progress) {
      if (n == id) continue;
      if (pr.recent_active && is_voter(n)) active++;
      pr.recent_active = false;
    }
    if (is_voter(id)) active++;
    return active >= quorum();
  }

  void start_campaign(bool pre, bool transfer) {
    if (!may_campaign(pre) || role == InternalRole::kLeader) return;
    Term vote_term;
    if (pre) {
      become_pre_candidate();
      vote_term = term + 1;
    } else {
      become_candidate();
      vote_term = term;
    }
    // A pre-vote changes nothing durable, so our own counts at once. A real vote counts only
    // once durable: a leader whose vote could be lost in a crash could come back and lead
    // the same term again, writing different entries at the same index and term (a single
    // voter wins on its own vote alone). persisted() counts it when it becomes durable.
    if (pre || self_vote_durable()) votes[id] = true;
    if (tally_granted() >= quorum()) {
      if (pre) {
        start_campaign(false, transfer);
      } else {
        become_leader();
      }
      return;
    }
    for (NodeId v : conf.voters) {
      if (v == id) continue;
      Message m;
      m.type = pre ? MessageType::kPreVote : MessageType::kVote;
      m.to = v;
      m.term = vote_term;
      m.log_index = log.last_index();
      m.log_term = log.last_term();
      m.context = transfer ? kTransferContext : 0;
      send(std::move(m));
    }
  }

  // Check-quorum's stickiness: this node leads, or heard from a leader less than
  // election_ticks of its own ticks ago, or (with lease reads) restarted less than
  // election_ticks ago; meanwhile it grants no (pre-)vote, transfers excepted (Ongaro's
  // thesis §4.2.3: it neither updates its term nor grants its vote). Time since the contact,
  // not the current `lead`: a stale rejection carrying a higher term makes a follower
  // adopt that term with no leader, and it must still refuse the vote requests of that term
  // (the simulator's lease-outlives-stickiness, 3-node seed 8437).
  bool in_leader_lease() const {
    if (!cfg.check_quorum) return false;
    if (role == InternalRole::kLeader) return true;
    if (leader_contact_tick != 0 && now_ticks - leader_contact_tick < cfg.election_ticks) return true;
    return restart_lease && now_ticks <= cfg.election_ticks;
  }

  // PLANTED BUG ignore_lease_when_voting: a follower grants votes within its stickiness.
  bool keeps_leader_lease() const {
    return in_leader_lease() && !(cfg.bugs.ignore_lease_when_voting && role != InternalRole::kLeader);
  }

  // Our vote for ourselves in the current term is on disk.
  bool self_vote_durable() const { return durable_term == term && durable_vote == id && vote == id; }

  size_t tally_granted() const {
    size_t n = 0;
    for (auto& [v, granted] : votes) n += (granted && is_voter(v));
    return n;
  }
  size_t tally_rejected() const {
    size_t n = 0;
    for (auto& [v, granted] : votes) n += (!granted && is_voter(v));
    return n;
  }

  void handle_vote_request(const Message& m) {
    bool pre = m.type == MessageType::kPreVote;
    bool can_vote = vote == m.from || (vote == kNoNode && lead == kNoNode) || (pre && m.term > term);
    // A request of our own term within the stickiness (one of a higher term never gets here).
    bool force = !pre && m.context == kTransferContext;
    if (vote != m.from && !force && keeps_leader_lease()) can_vote = false;
    if (!pre && cfg.bugs.grant_two_votes_per_term) can_vote = true;  // PLANTED BUG
    bool up_to_date = m.log_term > log.last_term() ||
                      (m.log_term == log.last_term() && m.log_index >= log.last_index());
    Message r;
    r.type = pre ? MessageType::kPreVoteResponse : MessageType::kVoteResponse;
    r.to = m.from;
    if (can_vote && up_to_date) {
      votes_granted++;
      r.term = m.term;  // a pre-vote is granted for the future term the candidate asked for
      if (!pre) {
        election_elapsed = 0;
        vote = m.from;
      }
    } else {
      r.term = term;
      r.reject = true;
    }
    if (!pre && cfg.bugs.answer_vote_before_persisting) {  // PLANTED BUG
      r.from = id;
      push_outbox(std::move(r));
      return;
    }
    send(std::move(r));
  }

  void handle_vote_response(const Message& m) {
    bool pre = m.type == MessageType::kPreVoteResponse;
    if (pre != (role == InternalRole::kPreCandidate)) return;
    if (role != InternalRole::kPreCandidate && role != InternalRole::kCandidate) return;
    // A granted pre-vote carries term+1; anything else must be for our term.
    if (pre && !m.reject && m.term != term + 1) return;
    if ((!pre || m.reject) && m.term != term) return;
    votes.emplace(m.from, !m.reject);
    if (tally_granted() >= quorum()) {
      if (pre) {
        start_campaign(false, false);
      } else {
        become_leader();
      }
    } else if (tally_rejected() >= quorum()) {
      become_follower(term, kNoNode);
    }
  }

  // ─────────── inputs ───────────

  void step(const Message& m) {
    HMDB_ASSERT(m.to == id, "message for node %llu delivered to node %llu", (ull)m.to, (ull)id);
    if (m.term > term) {
      if (m.type == MessageType::kPreVote || m.type == MessageType::kVote) {
        bool force = m.type == MessageType::kVote && m.context == kTransferContext;
        // We heard from a leader within the election timeout (or may have, just before a
        // restart): ignore the disruption. This keeps a partitioned or removed node from
        // deposing a healthy leader, and it is the promise that read leases rest on.
        if (!force && keeps_leader_lease()) return;
      }
      if (m.type == MessageType::kPreVote) {
        // Never change term on a pre-vote.
      } else if (m.type == MessageType::kPreVoteResponse && !m.reject) {
        // The future term we asked for: counted in handle_vote_response.
      } else {
        bool from_leader = m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat ||
                           m.type == MessageType::kSnapshot;
        become_follower(m.term, from_leader ? m.from : kNoNode);
      }
    } else if (m.term < term) {
      if ((cfg.check_quorum || cfg.pre_vote) &&
          (m.type == MessageType::kAppend || m.type == MessageType::kHeartbeat)) {
        // A stale leader (e.g. healed from a partition): tell it our term so it steps down.
        // Without this, a node whose term rose through pre-vote-less elections would be
        // ignored forever.
        Message r;
        r.type = MessageType::kAppendResponse;
        r.to = m.from;
        r.term = term;
        send(std::move(r));
      } else if (m.type == MessageType::kPreVote) {
        Message r;
        r.type = MessageType::kPreVoteResponse;
        r.to = m.from;
        r.term = term;
        r.reject = true;
        send(std::move(r));
      }
      return;
    }

    switch (m.type) {
      case MessageType::kPreVote:
      case MessageType::kVote:
        handle_vote_request(m);
        return;
      case MessageType::kPreVoteResponse:
      case MessageType::kVoteResponse:
        handle_vote_response(m);
        return;
      case MessageType::kAppend:
      case MessageType::kHeartbeat:
      case MessageType::kSnapshot:
        if (role == InternalRole::kLeader) {
          HMDB_ASSERT(any_bug(), "two leaders in term %llu: %llu and %llu (election safety broken)",
                      (ull)term, (ull)id, (ull)m.from);
          return;  // with a planted bug: let the simulator's checker find it
        }
        if (role != InternalRole::kFollower) become_follower(term, m.from);
        election_elapsed = 0;
        lead = m.from;
        leader_contact_tick = now_ticks;
        if (m.type == MessageType::kAppend) handle_append(m);
        else if (m.type == MessageType::kHeartbeat) handle_heartbeat(m);
        else handle_snapshot(m);
        return;
      case MessageType::kAppendResponse:
        if (role == InternalRole::kLeader) handle_append_response(m);
        return;
      case MessageType::kHeartbeatResponse:
        if (role == InternalRole::kLeader) handle_heartbeat_response(m);
        return;
      case MessageType::kSnapshotResponse:
        if (role == InternalRole::kLeader) handle_snapshot_response(m);
        return;
      case MessageType::kTimeoutNow:
        if (role != InternalRole::kLeader && promotable()) start_campaign(false, true);
        return;
      case MessageType::kReadIndex:
        if (role == InternalRole::kLeader) handle_read(m.from, m.context);
        return;
      case MessageType::kReadIndexResponse:
        if (role != InternalRole::kLeader) read_states.push_back({m.context, m.log_index});
        return;
    }
    HMDB_ASSERT(false, "unknown message type %d", (int)m.type);
  }

  // Moves from data only if the proposal is accepted.
  ProposeResult propose(EntryType type, uint32_t schema_version, std::string& data) {
    ProposeResult res;
    if (role != InternalRole::kLeader) {
      res.error = ProposeError::kNotLeader;
      return res;
    }
    if (transferee != kNoNode) {
      res.error = ProposeError::kTransferring;
      return res;
    }
    uint64_t bytes = data.size() + kEntryOverheadBytes;
    // One entry may exceed the bound alone (else it could never be proposed).
    if (uncommitted_bytes > 0 && uncommitted_bytes + bytes > cfg.max_uncommitted_bytes) {
      res.error = ProposeError::kBusy;
      return res;
    }
    append_entry(type, schema_version, std::move(data));
    res.index = log.last_index();
    res.term = term;
    // Appends go out at the next take_ready(): every proposal made meanwhile travels in the
    // same message (batching falls out of the caller's loop, like group commit).
    append_pending = true;
    return res;
  }

  void append_entry(EntryType type, uint32_t schema_version, std::string data) {
    Entry e;
    e.term = term;
    e.index = log.last_index() + 1;
    e.type = type;
    e.schema_version = schema_version;
    e.data = std::move(data);
    uncommitted_bytes += entry_bytes(e);
    log.append(std::move(e));
    if (type == EntryType::kConfChange) apply_conf_change_entry(log.at(log.last_index()));
  }

  // ─────────── replication (leader) ───────────

  void broadcast_append(bool allow_empty) {
    for (auto& [n, pr] : progress) {
      if (n == id) continue;
      send_appends(n, allow_empty);
    }
  }

  // Sends as many appends to `to` as flow control allows (several in kReplicate).
  void send_appends(NodeId to, bool allow_empty) {
    bool sent = maybe_send_append(to, allow_empty);
    Progress& pr = progress[to];
    while (sent && pr.state == Progress::State::kReplicate && pr.next <= log.last_index()) {
      sent = maybe_send_append(to, false);
    }
  }

  bool maybe_send_append(NodeId to, bool allow_empty) {
    Progress& pr = progress[to];
    if (pr.state == Progress::State::kSnapshot) return false;
    if (pr.state == Progress::State::kProbe && pr.probe_sent) return false;
    if (pr.state == Progress::State::kReplicate && pr.inflight.size() >= cfg.max_inflight_appends) {
      return false;
    }
    Index prev = pr.next - 1;
    std::optional<Term> prev_term = log.term_at(prev);
    if (!prev_term) {
      start_snapshot(to, pr);
      return false;
    }
    Message m;
    m.type = MessageType::kAppend;
    m.to = to;
    m.term = term;
    m.log_index = prev;
    m.log_term = *prev_term;
    m.commit = commit;
    if (pr.next <= log.last_index()) {
      log.copy_range(pr.next, log.last_index(), cfg.max_append_bytes, &m.entries);
    }
    if (m.entries.empty() && !allow_empty) return false;
    if (pr.state == Progress::State::kReplicate) {
      if (!m.entries.empty()) {
        pr.next = m.entries.back().index + 1;
        pr.inflight.push_back(m.entries.back().index);
      }
    } else {
      pr.probe_sent = true;
    }
    send(std::move(m));
    return true;
  }

  void broadcast_heartbeat() {
    for (auto& [n, pr] : progress) {
      if (n == id) continue;
      Message m;
      m.type = MessageType::kHeartbeat;
      m.to = n;
      m.term = term;
      // Never more than the follower is known to hold: it may hold a diverging suffix.
      m.commit = std::min(pr.match, commit);
      m.context = read_seq;
      m.log_index = now_ticks;  // send tick, echoed back: the start of a leader lease
      send(std::move(m));
    }
  }

  void handle_append_response(const Message& m) {
    auto it = progress.find(m.from);
    if (it == progress.end()) return;  // removed meanwhile
    Progress& pr = it->second;
    pr.recent_active = true;
    if (m.reject) {
      Index hint = m.reject_hint;
      if (m.reject_term > 0) hint = log.find_conflict_by_term(m.reject_hint, m.reject_term);
      if (maybe_decrease_next(pr, m.log_index, hint)) {
        if (pr.state == Progress::State::kReplicate) become_probe(pr);
        send_appends(m.from, false);
      }
      return;
    }
    // A follower we were probing learns the commit index from the next append even if it
    // carries no entries (etcd: "oldPaused").
    bool was_paused = pr.state == Progress::State::kProbe && pr.probe_sent;
    bool updated = false;
    if (m.log_index > pr.match) {
      if (m.log_index > log.last_index()) {
        HMDB_ASSERT(any_bug(),
                    "follower %llu acknowledged index %llu beyond the leader's last index %llu",
                    (ull)m.from, (ull)m.log_index, (ull)log.last_index());
        return;  // with a planted bug: let the simulator's checker find it
      }
      pr.match = m.log_index;
      updated = true;
    }
    if (pr.next < pr.match + 1) pr.next = pr.match + 1;
    while (!pr.inflight.empty() && pr.inflight.front() <= pr.match) pr.inflight.pop_front();
    if (pr.state == Progress::State::kProbe && (updated || pr.match + 1 >= pr.next)) {
      become_replicate(pr);
    } else if (pr.state == Progress::State::kSnapshot &&
               pr.match >= (pr.waiting_snapshot ? log.snapshot_index() : pr.snapshot_meta.index)) {
      become_replicate(pr);
    }
    if (!updated) {
      send_appends(m.from, false);
      return;
    }
    if (maybe_commit()) {
      broadcast_append(true);  // followers learn the new commit index
    } else {
      send_appends(m.from, was_paused);
    }
    if (m.from == transferee && pr.match == log.last_index()) send_timeout_now(m.from);
  }

  void become_probe(Progress& pr) {
    pr.state = Progress::State::kProbe;
    pr.waiting_snapshot = false;
    pr.probe_sent = false;
    pr.inflight.clear();
    pr.next = std::max(pr.next, pr.match + 1);
  }

  void become_replicate(Progress& pr) {
    pr.state = Progress::State::kReplicate;
    pr.waiting_snapshot = false;
    pr.probe_sent = false;
    pr.inflight.clear();
    pr.next = pr.match + 1;
  }

  // Follower rejected an append whose previous entry was `rejected`; `hint` is where the
  // logs may match at best. Returns false for a stale rejection.
  bool maybe_decrease_next(Progress& pr, Index rejected, Index hint) {
    if (pr.state == Progress::State::kReplicate) {
      if (rejected <= pr.match) return false;
      pr.next = pr.match + 1;
      return true;
    }
    if (pr.state == Progress::State::kSnapshot) return false;
    if (pr.next - 1 != rejected) return false;
    pr.next = std::max(std::min(rejected, hint) + 1, pr.match + 1);
    pr.probe_sent = false;
    return true;
  }

  void handle_heartbeat_response(const Message& m) {
    auto it = progress.find(m.from);
    if (it == progress.end()) return;
    Progress& pr = it->second;
    pr.recent_active = true;
    pr.probe_sent = false;
    pr.heartbeat_ack_sent_tick = std::max(pr.heartbeat_ack_sent_tick, m.log_index);
    // An append may have been lost: free a slot so the pipeline cannot stall for good.
    if (pr.state == Progress::State::kReplicate && pr.inflight.size() >= cfg.max_inflight_appends) {
      pr.inflight.pop_front();
    }
    if (pr.match < log.last_index()) send_appends(m.from, true);
    ack_reads(m.from, m.context);
  }

  void send_timeout_now(NodeId to) {
    Message m;
    m.type = MessageType::kTimeoutNow;
    m.to = to;
    m.term = term;
    timeout_now_sent = true;
    send(std::move(m));
  }

  void set_may_lead(bool may) {
    if (may_lead == may) return;
    may_lead = may;
    if (may) return;
    // A campaign under way is abandoned; a leader hands over as a deadlock breaker does.
    if (role == InternalRole::kLeader) step_down_as_non_voter();
    else if (role != InternalRole::kFollower) become_follower(term, kNoNode);
  }

  void transfer_leadership(NodeId to) {
    if (role != InternalRole::kLeader || to == id || !is_voter(to)) return;
    if (transferee == to) return;
    transferee = to;
    election_elapsed = 0;  // the transfer must finish within one election timeout
    if (progress[to].match == log.last_index()) {
      send_timeout_now(to);
    } else {
      send_appends(to, true);
    }
  }

  // Commit by counting replicas, only for an entry of the current term (§5.4.2, Figure 8).
  bool maybe_commit() {
    bool any = false;
    for (;;) {
      std::vector<Index>& matches = match_scratch;
      matches.clear();
      for (NodeId v : conf.voters) {
        auto it = progress.find(v);
        matches.push_back(it == progress.end() ? 0 : it->second.match);
      }
      if (matches.empty()) return any;
      std::sort(matches.begin(), matches.end(), std::greater<Index>());
      Index candidate = matches[quorum() - 1];
      if (candidate <= commit) return any;
      if (log.term_at(candidate) != term && !cfg.bugs.commit_old_term_by_counting) return any;
      advance_commit(candidate);  // may change membership, hence the loop
      any = true;
      if (role != InternalRole::kLeader) return any;
    }
  }

  // ─────────── replication (follower) ───────────

  void handle_append(const Message& m) {
    Message r;
    r.type = MessageType::kAppendResponse;
    r.to = m.from;
    r.term = term;
    if (m.log_index < commit) {
      r.log_index = commit;  // already have (and committed) all of that
      send(std::move(r));
      return;
    }
    if (!log.matches(m.log_index, m.log_term)) {
      Index hint = std::min(m.log_index, log.last_index());
      hint = log.find_conflict_by_term(hint, m.log_term);
      r.reject = true;
      r.log_index = m.log_index;
      r.reject_hint = hint;
      r.reject_term = log.term_at(hint).value_or(0);
      send(std::move(r));
      return;
    }
    Index last_new = m.log_index + m.entries.size();
    for (const Entry& e : m.entries) {
      HMDB_ASSERT(e.index == m.log_index + 1 + (&e - m.entries.data()),
                  "append from %llu has entry %llu out of sequence", (ull)m.from, (ull)e.index);
      if (e.index <= log.last_index()) {
        if (log.term_at(e.index) == e.term) continue;
        HMDB_ASSERT(e.index > commit || any_bug(),
                    "entry %llu (term %llu) conflicts with a committed entry (commit %llu): "
                    "the leader's log lost a committed entry",
                    (ull)e.index, (ull)e.term, (ull)commit);
        if (e.index <= log.snapshot_index()) return;  // planted bug only: cannot repair
        truncate_after(e.index - 1);
        // Planted bugs only: commit was wrong; let the simulator see the regression.
        commit = std::min(commit, e.index - 1);
        applied_handed = std::min(applied_handed, e.index - 1);
      }
      log.append(e);
      if (e.type == EntryType::kConfChange) apply_conf_change_entry(e);
    }
    if (m.commit > commit && may_commit_past_install()) advance_commit(std::min(m.commit, last_new));
    r.log_index = last_new;
    if (cfg.bugs.ack_append_before_persisting) {  // PLANTED BUG
      r.from = id;
      push_outbox(std::move(r));
      return;
    }
    send(std::move(r));
  }

  void truncate_after(Index index) {
    log.truncate_after(index);
    // A membership change that is no longer in the log is no longer in force.
    while (conf_history.size() > 1 && conf_history.back().first > index) conf_history.pop_back();
    HMDB_ASSERT(conf_history.back().first <= index,
                "truncating to %llu below the membership base at %llu", (ull)index,
                (ull)conf_history.back().first);
    conf = conf_history.back().second;
    handed_index = std::min(handed_index, index);
    durable_index = std::min(durable_index, index);
  }

  // A follower's commit index stays at a snapshot whose install is pending in the Ready not
  // yet taken: the caller may load that snapshot in the background and holds applying only
  // once it has it (core::Replica, hold_apply), so that Ready must hand out no entry after
  // it. The leader's next append or heartbeat brings the commit index again.
  bool may_commit_past_install() const {
    return !install || cfg.bugs.commit_past_pending_install;  // PLANTED BUG
  }

  void handle_heartbeat(const Message& m) {
    if (m.commit > commit && may_commit_past_install()) advance_commit(std::min(m.commit, log.last_index()));
    Message r;
    r.type = MessageType::kHeartbeatResponse;
    r.to = m.from;
    r.term = term;
    r.context = m.context;
    r.log_index = m.log_index;
    send(std::move(r));
  }

  // Moves the commit index forward. (Membership changes took effect when appended; a leader
  // that removed itself steps down once that change commits.)
  void advance_commit(Index to) {
    if (to <= commit) return;
    HMDB_ASSERT(to <= log.last_index(), "commit index %llu beyond last index %llu: was the log truncated?",
                (ull)to, (ull)log.last_index());
    for (Index i = std::max(commit + 1, log.first_index()); i <= to; i++) {
      const Entry& e = log.at(i);
      if (role == InternalRole::kLeader) {
        uint64_t b = entry_bytes(e);
        uncommitted_bytes = b > uncommitted_bytes ? 0 : uncommitted_bytes - b;
      }
      commit = i;
    }
    commit = to;
    // A leader outside its latest membership (it removed itself, or it is a learner that
    // broke a deadlock) steps down once that membership committed. A leader commits only
    // entries of its own term, so this is never before its noop committed: the voters that
    // acknowledged it now hold the newest term's entry, and one of them can win next.
    if (role == InternalRole::kLeader && !is_voter(id) && commit >= conf_history.back().first) {
      step_down_as_non_voter();
      return;
    }
    // A voter that may not lead, elected to end a deadlock (last_resort_may_campaign): its
    // noop committed, so a majority holds its log; one of them may take over.
    if (role == InternalRole::kLeader && !may_lead && committed_in_current_term()) {
      step_down_as_non_voter();
      return;
    }
    // (Most commits find no read waiting: moving an empty deque still allocates its map.)
    if (role == InternalRole::kLeader && !reads_waiting_commit.empty() && committed_in_current_term()) {
      auto waiting = std::move(reads_waiting_commit);
      reads_waiting_commit.clear();
      for (auto& [from, ctx] : waiting) handle_read(from, ctx);
    }
  }

  // ─────────── snapshots ───────────

  // The newest snapshot saved covers every entry the log dropped: it can be sent.
  bool usable_snapshot() const {
    return latest_snapshot.has_value() && latest_snapshot->index >= log.snapshot_index();
  }

  void want_snapshot() {
    snapshot_wanted = true;
    snapshots_wanted++;
  }

  void start_snapshot(NodeId to, Progress& pr) {
    pr.state = Progress::State::kSnapshot;
    pr.inflight.clear();
    pr.snapshot_offset = 0;
    pr.snapshot_total = 0;
    pr.snapshot_stall_ticks = 0;
    const bool stale_bug = cfg.bugs.send_stale_snapshot_after_trim && latest_snapshot.has_value();  // PLANTED BUG
    if (usable_snapshot() || stale_bug) {
      pr.waiting_snapshot = false;
      pr.snapshot_meta = *latest_snapshot;
      request_snapshot_chunk(to, pr);
      return;
    }
    HMDB_ASSERT(cfg.log_memory_bytes > 0,
                "follower %llu needs entry %llu but the log starts at %llu and no snapshot covers "
                "it: was the log compacted without snapshot_saved()?",
                (ull)to, (ull)pr.next, (ull)log.first_index());
    // The log dropped entries (Config::log_memory_bytes) past the newest snapshot: ask the
    // caller for a fresh one, of its applied state, which is at or past every entry dropped.
    pr.waiting_snapshot = true;
    pr.snapshot_meta = SnapshotMeta{};
    pr.snapshot_pin = log.snapshot_index();
    want_snapshot();
  }

  // After a snapshot_saved(): followers waiting for a fresh snapshot get it, or, if it is
  // still older than the log's first entry (it was started before the log was trimmed past
  // it), the caller is asked for another one at once.
  void serve_snapshot_waiters() {
    if (role != InternalRole::kLeader) return;
    bool still_waiting = false;
    for (auto& [n, pr] : progress) {
      if (n == id || pr.state != Progress::State::kSnapshot || !pr.waiting_snapshot) continue;
      if (!usable_snapshot()) {
        still_waiting = true;
        continue;
      }
      pr.waiting_snapshot = false;
      pr.snapshot_meta = *latest_snapshot;
      pr.snapshot_offset = 0;
      pr.snapshot_total = 0;
      request_snapshot_chunk(n, pr);
    }
    if (still_waiting) want_snapshot();
  }

  // Config::log_memory_bytes, at the start of take_ready(): drops the oldest applied and
  // durable entries while the log holds more than the bound. Every node keeps the bound's
  // worth, a leader too, even of what every follower holds: a node added later, a
  // follower that restarts, or one that lags a new leader is then caught up from entries,
  // not by a snapshot of the whole state (docs/raft.md, "Bounded log memory"). Never past a
  // follower's snapshot catch-up (its pin, or the snapshot it is being sent): the entries
  // after that snapshot are what it needs next.
  void trim_log() {
    if (cfg.log_memory_bytes == 0 || log.bytes() <= cfg.log_memory_bytes) return;
    Index limit = std::min({applied, durable_index, commit});
    if (role == InternalRole::kLeader) {
      for (auto& [n, pr] : progress) {
        if (n != id && pr.state == Progress::State::kSnapshot)
          limit = std::min(limit, pr.waiting_snapshot ? pr.snapshot_pin : pr.snapshot_meta.index);
      }
    }
    if (limit <= log.snapshot_index()) return;
    Index to = log.snapshot_index();
    uint64_t bytes = log.bytes();
    while (to < limit && bytes > cfg.log_memory_bytes) {
      to++;
      bytes -= entry_bytes(log.at(to));
    }
    to = std::min(to, limit);
    if (to <= log.snapshot_index()) return;
    trimmed_entries += to - log.snapshot_index();
    compact_log_to(to, *log.term_at(to));
  }

  // Drops the log up to `index` (term `term`), keeping the membership in force there as the
  // base of the history.
  void compact_log_to(Index index, Term t) {
    log.compact_to(index, t);
    size_t keep = 0;
    for (size_t i = 0; i < conf_history.size(); i++) {
      if (conf_history[i].first <= index) keep = i;
    }
    conf_history.erase(conf_history.begin(), conf_history.begin() + keep);
  }

  void request_snapshot_chunk(NodeId to, Progress& pr) {
    if (latest_snapshot && !(pr.snapshot_meta == *latest_snapshot) &&
        (usable_snapshot() || cfg.bugs.send_stale_snapshot_after_trim)) {
      pr.snapshot_meta = *latest_snapshot;  // a newer snapshot exists: send that one instead
      pr.snapshot_offset = 0;
      pr.snapshot_total = 0;
    }
    pr.snapshot_stall_ticks = 0;
    snapshot_reads.push_back({to, pr.snapshot_meta, pr.snapshot_offset, cfg.snapshot_chunk_bytes});
  }

  void snapshot_chunk(NodeId to, const SnapshotMeta& meta, uint64_t offset, uint64_t total,
                      std::string bytes, bool last) {
    if (role != InternalRole::kLeader) return;
    auto it = progress.find(to);
    if (it == progress.end()) return;
    Progress& pr = it->second;
    if (pr.state != Progress::State::kSnapshot || !(pr.snapshot_meta == meta) ||
        pr.snapshot_offset != offset) {
      return;  // obsolete answer
    }
    HMDB_ASSERT(offset + bytes.size() <= total && (last == (offset + bytes.size() == total)),
                "snapshot chunk [%llu, +%zu) of %llu bytes inconsistent with last=%d",
                (ull)offset, bytes.size(), (ull)total, (int)last);
    pr.snapshot_total = total;
    Message m;
    m.type = MessageType::kSnapshot;
    m.to = to;
    m.term = term;
    m.snapshot_meta = meta;
    m.snapshot_offset = offset;
    m.snapshot_total = total;
    m.snapshot_last = last;
    m.snapshot_chunk = std::move(bytes);
    m.commit = commit;
    send(std::move(m));
  }

  void handle_snapshot_response(const Message& m) {
    auto it = progress.find(m.from);
    if (it == progress.end() || !m.snapshot_meta) return;
    Progress& pr = it->second;
    pr.recent_active = true;
    if (pr.state != Progress::State::kSnapshot || !(pr.snapshot_meta == *m.snapshot_meta)) return;
    // Accepted: ask for the next chunk. Rejected: the follower says where to resume.
    pr.snapshot_offset = m.snapshot_offset;
    request_snapshot_chunk(m.from, pr);
  }

  void handle_snapshot(const Message& m) {
    HMDB_ASSERT(m.snapshot_meta.has_value(), "snapshot message from %llu without meta", (ull)m.from);
    const SnapshotMeta& meta = *m.snapshot_meta;
    Message r;
    r.to = m.from;
    r.term = term;
    if (meta.index <= commit) {
      staging_meta.reset();
      r.type = MessageType::kAppendResponse;
      r.log_index = commit;
      send(std::move(r));
      return;
    }
    const bool check_log = m.snapshot_offset == 0 || (m.snapshot_last && !cfg.bugs.install_over_matching_log);  // PLANTED BUG
    if (check_log && log.matches(meta.index, meta.term)) {
      // We already hold that prefix: no need to install, just commit it. Checked again at
      // the last chunk: appends received while the chunks were staged may have brought the
      // log to the snapshot's point and past it, and this node acknowledged them; installing
      // would cut them from the log while the leader counts them as held here (Raft's
      // InstallSnapshot rule: a log that holds the snapshot's last entry keeps what follows).
      staging_meta.reset();
      advance_commit(meta.index);
      r.type = MessageType::kAppendResponse;
      r.log_index = meta.index;
      send(std::move(r));
      return;
    }
    if (snapshot_accept && !snapshot_accept(meta)) {
      staging_meta.reset();
      snapshots_refused++;
      return;  // not answered: the leader retries after its stall timeout, no faster
    }
    if (install && !cfg.bugs.stage_over_pending_install) {  // PLANTED BUG
      // An install is pending in the Ready not yet taken, its data the staged chunks, which
      // this snapshot's chunks would replace before the caller installs it (raft.h: step 0
      // stages every chunk of a Ready, step 1 installs): refused, and the leader sends this
      // snapshot again from its start, once that Ready is out.
      r.type = MessageType::kSnapshotResponse;
      r.snapshot_meta = meta;
      r.reject = true;
      r.snapshot_offset = 0;
      send(std::move(r));
      return;
    }
    if (m.snapshot_offset == 0) {
      staging_meta = meta;
      staging_offset = 0;
    }
    r.type = MessageType::kSnapshotResponse;
    r.snapshot_meta = meta;
    if (!staging_meta || !(*staging_meta == meta) || m.snapshot_offset != staging_offset) {
      r.reject = true;
      r.snapshot_offset = (staging_meta && *staging_meta == meta) ? staging_offset : 0;
      send(std::move(r));
      return;
    }
    staging_offset += m.snapshot_chunk.size();
    chunks_out.push_back({meta, m.snapshot_offset, m.snapshot_total, m.snapshot_last, m.snapshot_chunk});
    if (!m.snapshot_last) {
      r.snapshot_offset = staging_offset;
      send(std::move(r));
      return;
    }
    // Last chunk: install. The whole log is replaced by the snapshot point.
    staging_meta.reset();
    install = Snapshot{meta, std::string()};
    if (cfg.bugs.keep_log_suffix_on_snapshot_install) {  // PLANTED BUG
      // The kept entries go out again in this Ready, after the snapshot.
      log.reset_to_snapshot_keeping_suffix(meta.index, meta.term);
    } else {
      log.reset_to_snapshot(meta.index, meta.term);
    }
    handed_index = meta.index;  // the snapshot itself goes out in this Ready
    durable_index = 0;          // until persisted() acknowledges (meta.index, meta.term)
    commit = meta.index;
    applied_handed = meta.index;
    conf = meta.conf;
    conf_history.clear();
    conf_history.push_back({meta.index, conf});
    latest_snapshot = meta;
    r.type = MessageType::kAppendResponse;
    r.snapshot_meta.reset();
    r.log_index = meta.index;
    send(std::move(r));  // held until the install is durable
  }

  void snapshot_saved(const SnapshotMeta& meta) {
    if (meta.index <= log.snapshot_index()) {
      // Older than what the log dropped (Config::log_memory_bytes trimmed it meanwhile): the
      // newest snapshot if it is exactly at the log's start, else of no use to a follower.
      if (meta.index == log.snapshot_index() && meta.term == log.snapshot_term() &&
          (!latest_snapshot || latest_snapshot->index < meta.index)) {
        HMDB_ASSERT(conf_state_at(meta.index) == meta.conf,
                    "snapshot at %llu carries a membership that differs from the log's: use "
                    "conf_state_at(index)",
                    (ull)meta.index);
        latest_snapshot = meta;
      }
      serve_snapshot_waiters();
      return;
    }
    HMDB_ASSERT(meta.index <= applied_handed,
                "snapshot at %llu beyond the entries handed out to apply (%llu): a snapshot is "
                "of applied state",
                (ull)meta.index, (ull)applied_handed);
    HMDB_ASSERT(log.matches(meta.index, meta.term),
                "snapshot (%llu, term %llu) does not match the log (term there: %llu)",
                (ull)meta.index, (ull)meta.term, (ull)log.term_at(meta.index).value_or(0));
    ConfState expected = conf_state_at(meta.index);
    HMDB_ASSERT(expected == meta.conf,
                "snapshot at %llu carries a membership that differs from the log's: use "
                "conf_state_at(index)",
                (ull)meta.index);
    if (meta.index > commit) {
      // Only with the planted apply_before_commit bug: a snapshot of uncommitted state.
      HMDB_ASSERT(any_bug(), "snapshot at %llu beyond the commit index %llu", (ull)meta.index,
                  (ull)commit);
      commit = meta.index;
    }
    compact_log_to(meta.index, meta.term);
    durable_index = std::max(durable_index, meta.index);
    latest_snapshot = meta;
    serve_snapshot_waiters();
  }

  ConfState conf_state_at(Index index) const {
    HMDB_ASSERT(!conf_history.empty() && index >= conf_history.front().first,
                "membership at %llu asked, but the core's history starts at %llu: the core "
                "holds a newer snapshot (an install may be pending in the next Ready); take "
                "snapshots only at applied >= status().first_index - 1",
                (ull)index, (ull)conf_history.front().first);
    const ConfState* c = &conf_history.front().second;
    for (auto& [i, cs] : conf_history) {
      if (i <= index) c = &cs;
    }
    return *c;
  }

  // ─────────── membership ───────────

  ProposeResult propose_conf_change(const ConfChange& cc) {
    ProposeResult res;
    if (role != InternalRole::kLeader) {
      res.error = ProposeError::kNotLeader;
      return res;
    }
    if (transferee != kNoNode) {
      res.error = ProposeError::kTransferring;
      return res;
    }
    // One change at a time, and not before this term's noop committed.
    if (pending_conf_index > commit) {
      res.error = ProposeError::kBusy;
      return res;
    }
    ConfState next = conf;
    if (!apply_change(&next, cc) || next.voters.empty()) {
      res.error = ProposeError::kRejected;
      return res;
    }
    append_entry(EntryType::kConfChange, 0, encode_conf_change_entry(cc, next));
    pending_conf_index = log.last_index();
    res.index = log.last_index();
    res.term = term;
    append_pending = true;
    return res;
  }

  // Returns false if the change changes nothing.
  static bool apply_change(ConfState* c, const ConfChange& cc) {
    bool voter = contains(c->voters, cc.node), learner = contains(c->learners, cc.node);
    switch (cc.type) {
      case ConfChangeType::kAddLearner:
        if (voter || learner) return false;
        insert_sorted(&c->learners, cc.node);
        return true;
      case ConfChangeType::kPromote:
        if (!learner) return false;
        erase_id(&c->learners, cc.node);
        insert_sorted(&c->voters, cc.node);
        return true;
      case ConfChangeType::kAddVoter:
        if (voter) return false;
        erase_id(&c->learners, cc.node);
        insert_sorted(&c->voters, cc.node);
        return true;
      case ConfChangeType::kRemove:
        if (!voter && !learner) return false;
        erase_id(&c->voters, cc.node);
        erase_id(&c->learners, cc.node);
        return true;
    }
    return false;
  }

  void apply_conf_change_entry(const Entry& e) {
    ConfChange cc;
    std::optional<ConfState> after;
    HMDB_ASSERT(decode_conf_change_entry(e.data, &cc, &after),
                "conf change at index %llu does not decode: the log is corrupt", (ull)e.index);
    if (e.index <= conf_history.back().first) return;  // already in force (replay)
    if (after) {
      conf = std::move(*after);
    } else if (!apply_change(&conf, cc)) {
      return;  // a no-op delta
    }
    conf_history.push_back({e.index, conf});
    if (role != InternalRole::kLeader) return;
    for (NodeId v : conf.voters) {
      if (!progress.count(v)) add_progress(v, false);
      progress[v].is_learner = false;
    }
    for (NodeId l : conf.learners) {
      if (!progress.count(l)) add_progress(l, true);
      progress[l].is_learner = true;
    }
    for (auto it = progress.begin(); it != progress.end();) {
      if (!is_voter(it->first) && !is_learner(it->first) && it->first != id) {
        it = progress.erase(it);
      } else {
        ++it;
      }
    }
    if (transferee != kNoNode && !is_voter(transferee)) transferee = kNoNode;
    // A leader that removed itself keeps leading (without counting itself) until the change
    // commits: see advance_commit().
  }

  // This leader is not a voter of its committed membership (the change removing it
  // committed, or it is a learner whose noop committed): tell the others the new commit
  // index, hand leadership to the most up-to-date voter so the election is immediate, and
  // stop leading.
  void step_down_as_non_voter() {
    broadcast_append(true);
    NodeId best = kNoNode;
    for (NodeId v : conf.voters) {
      auto it = progress.find(v);
      if (v == id || it == progress.end()) continue;
      if (best == kNoNode || it->second.match > progress[best].match) best = v;
    }
    if (best != kNoNode && progress[best].match == log.last_index()) send_timeout_now(best);
    become_follower(term, kNoNode);
  }

  // ─────────── read-index ───────────

  bool read_index(uint64_t ctx) {
    if (role == InternalRole::kLeader) return handle_read(id, ctx);
    if (lead == kNoNode) return false;
    Message m;
    m.type = MessageType::kReadIndex;
    m.to = lead;
    m.term = term;
    m.context = ctx;
    send(std::move(m));
    return true;
  }

  bool handle_read(NodeId from, uint64_t ctx) {
    if (reads.size() + reads_waiting_commit.size() >= kMaxPendingReads) return false;
    if (!committed_in_current_term()) {
      // A new leader does not know the commit index of its predecessor until it commits an
      // entry of its own term: answering now could miss a committed write. This holds for a
      // single voter too: after a restart its commit index is only the durable hint, and
      // entries acknowledged before the crash may lie beyond it.
      reads_waiting_commit.push_back({from, ctx});
      return true;
    }
    if (single_voter_self()) {
      answer_read(from, ctx, commit);  // no one else can be leader: no heartbeat round
      return true;
    }
    if (lease_valid()) {
      lease_reads_answered++;
      answer_read(from, ctx, commit);
      return true;
    }
    ReadRequest rr;
    rr.seq = ++read_seq;
    rr.from = from;
    rr.context = ctx;
    rr.index = commit;
    rr.acks.push_back(id);
    reads.push_back(std::move(rr));
    broadcast_heartbeat();
    return true;
  }

  // Lease reads (opt-in): a quorum acknowledged a heartbeat sent at tick s; each of those
  // followers refuses to vote for anyone else for election_ticks of its own ticks after
  // receiving it (check-quorum's leader lease), so no other leader can exist before
  // s + election_ticks on their clocks: shortened here by the allowed drift. Never during a
  // transfer, nor after a TimeoutNow in this term: the transferee's votes bypass the
  // followers' lease.
  bool lease_valid() const { return lease_start() != 0; }

  // The send tick of the heartbeat that starts the current lease, or 0 if there is none.
  uint64_t lease_start() const {
    if (role != InternalRole::kLeader || !cfg.lease_reads || !cfg.check_quorum ||
        transferee != kNoNode || timeout_now_sent) {
      return 0;
    }
    std::vector<uint64_t> sent;
    for (NodeId v : conf.voters) {
      if (v == id) {
        sent.push_back(now_ticks);
        continue;
      }
      auto it = progress.find(v);
      sent.push_back(it == progress.end() ? 0 : it->second.heartbeat_ack_sent_tick);
    }
    std::sort(sent.begin(), sent.end(), std::greater<uint64_t>());
    uint64_t start = sent[quorum() - 1];
    if (start == 0) return 0;  // no quorum has answered a heartbeat yet
    uint32_t margin = cfg.bugs.lease_without_drift_margin ? 0 : kLeaseClockDriftPercent;  // PLANTED BUG
    uint64_t length = uint64_t{cfg.election_ticks} * (100 - margin) / 100;
    if (length <= kLeaseTickGranularity) return 0;
    return now_ticks < start + length - kLeaseTickGranularity ? start : 0;
  }

  Raft::Lease lease() const {
    Raft::Lease l;
    uint64_t start = lease_start();
    if (start == 0) return l;
    l.valid = true;
    for (NodeId v : conf.voters) {
      if (v == id) continue;
      auto it = progress.find(v);
      if (it != progress.end() && it->second.heartbeat_ack_sent_tick >= start) l.voters.push_back(v);
    }
    return l;
  }

  void answer_read(NodeId from, uint64_t ctx, Index index) {
    if (from == id) {
      read_states.push_back({ctx, index});
      return;
    }
    Message m;
    m.type = MessageType::kReadIndexResponse;
    m.to = from;
    m.term = term;
    m.context = ctx;
    m.log_index = index;
    send(std::move(m));
  }

  void ack_reads(NodeId from, uint64_t seq) {
    if (reads.empty() || !is_voter(from)) return;
    for (auto& rr : reads) {
      if (rr.seq > seq) break;
      if (!contains(rr.acks, from)) rr.acks.push_back(from);
    }
    // Release the longest prefix whose last request has a quorum: a heartbeat answered for
    // a later request also confirms every earlier one.
    size_t release = 0;
    for (size_t i = 0; i < reads.size(); i++) {
      size_t n = 0;
      for (NodeId a : reads[i].acks) n += is_voter(a);
      if (n >= quorum()) release = i + 1;
    }
    for (size_t i = 0; i < release; i++) {
      answer_read(reads.front().from, reads.front().context, reads.front().index);
      reads.pop_front();
    }
  }

  // ─────────── durability gate ───────────

  void push_outbox(Message m) {
    if (outbox.size() >= kMaxOutboxMessages) {
      dropped_messages++;
      return;
    }
    outbox.push_back(std::move(m));
  }

  // Every message waits until the hard state it was produced under is durable (a vote must
  // never be forgotten after it was announced); a non-leader's message also waits for the
  // log as it was then (an append ack promises the entries are on disk). The leader's
  // appends go out at once: its own write runs in parallel, and commit counts the leader
  // only through persisted().
  //
  // A heartbeat response is the exception to the log gate and to the order: it promises
  // nothing about the log (its log_index is the leader's send tick), only that this node is
  // in the leader's term, so it waits for the hard state alone and may overtake held append
  // acks. Otherwise a follower whose fsync is slow (a snapshot saturating the disk) looks
  // dead to the leader's check-quorum, and the leader steps down for nothing.
  void send(Message m) {
    m.from = id;
    HeldMessage h;
    h.hs_term = term;
    h.hs_vote = vote;
    const bool log_gate = role != InternalRole::kLeader && m.type != MessageType::kHeartbeatResponse;
    if (log_gate) {
      h.log_index = log.last_index();
      h.log_term = log.last_term();
    }
    if ((held.empty() || !log_gate) && !(log_gate && after_persist_outstanding) && gate_satisfied(h)) {
      push_outbox(std::move(m));
      return;
    }
    if (held.size() >= kMaxHeldMessages) {
      dropped_messages++;
      held.erase(held.begin());  // the oldest goes: rare, so the O(n) shift is fine
    }
    h.msg = std::move(m);
    held.push_back(std::move(h));
  }

  bool gate_satisfied(const HeldMessage& h) const {
    bool hs_ok = durable_term > h.hs_term ||
                 (durable_term == h.hs_term && (h.hs_vote == kNoNode || durable_vote == h.hs_vote));
    if (!hs_ok) return false;
    if (h.log_index == 0) return true;
    if (durable_index < h.log_index) return false;
    return h.log_index <= log.snapshot_index() || log.matches(h.log_index, h.log_term);
  }

  bool gate_impossible(const HeldMessage& h) const {
    if (h.log_index == 0 || h.log_index <= log.snapshot_index()) return false;
    return !log.matches(h.log_index, h.log_term);  // that log was overwritten: obsolete
  }

  void release_held() {
    size_t kept = 0;
    for (size_t i = 0; i < held.size(); i++) {
      HeldMessage& h = held[i];
      if (gate_satisfied(h)) {
        push_outbox(std::move(h.msg));
      } else if (gate_impossible(h)) {
        dropped_messages++;
      } else {
        if (kept != i) held[kept] = std::move(h);
        kept++;
      }
    }
    held.resize(kept);
  }

  // Config::after_persist_messages, in take_ready() once this Ready's hard state and entries
  // are handed out: every held message's gate holds once they are durable (its hard state is
  // the current one or older, its log a prefix of the current one), unless its log was
  // overwritten since (obsolete: dropped, as release_held drops it).
  void hand_out_after_persist(std::vector<Message>* out) {
    for (HeldMessage& h : held) {
      if (gate_impossible(h)) {
        dropped_messages++;
        continue;
      }
      out->push_back(std::move(h.msg));
    }
    held.clear();
    if (out->empty()) return;
    after_persist_outstanding = true;
    after_persist_gate = HeldMessage{};
    after_persist_gate.hs_term = term;
    after_persist_gate.hs_vote = vote;
    after_persist_gate.log_index = log.last_index();
    after_persist_gate.log_term = log.last_term();
  }

  void persisted(const PersistAck& ack) {
    const HardState& hs = ack.hard_state;
    HMDB_ASSERT(hs.term <= term, "persisted term %llu is newer than the core's term %llu",
                (ull)hs.term, (ull)term);
    if (hs.term > durable_term || (hs.term == durable_term && durable_vote == kNoNode)) {
      durable_term = hs.term;
      durable_vote = hs.vote;
    }
    if (ack.last_index > 0 && log.matches(ack.last_index, ack.last_term)) {
      HMDB_ASSERT(ack.last_index <= handed_index,
                  "persisted() reports entry %llu durable, but only %llu were handed out",
                  (ull)ack.last_index, (ull)handed_index);
      durable_index = std::max(durable_index, ack.last_index);
    }
    if (after_persist_outstanding && gate_satisfied(after_persist_gate)) after_persist_outstanding = false;
    if (!held.empty()) release_held();
    if (role == InternalRole::kCandidate && self_vote_durable() && !votes.count(id)) {
      votes[id] = true;
      if (tally_granted() >= quorum()) become_leader();
    }
    if (role == InternalRole::kLeader) {
      progress[id].match = durable_index;
      if (maybe_commit()) broadcast_append(true);
    }
  }

  // ─────────── Ready ───────────

  Index apply_limit() const {
    if (apply_held) return applied_handed;
    if (cfg.bugs.apply_before_commit) return log.last_index();  // PLANTED BUG
    return commit;
  }

  // The hard state to persist. Its commit never exceeds what is already durable (or the
  // snapshot, written before it): the hard state is written before the entries of the
  // same Ready, so a larger commit could survive a crash that loses those entries — or,
  // after a truncation, point at stale entries still on disk.
  HardState current_hard_state() const {
    Index safe = std::max(durable_index, log.snapshot_index());
    return HardState{term, vote, std::min(commit, safe)};
  }

  bool has_ready() const {
    return append_pending || !(current_hard_state() == handed_hs) ||
           handed_index < log.last_index() ||
           install || !outbox.empty() || (cfg.after_persist_messages && !held.empty()) ||
           applied_handed < apply_limit() || !read_states.empty() ||
           !snapshot_reads.empty() || !chunks_out.empty() || snapshot_wanted;
  }

  Ready take_ready(const ReadyOptions& options) {
    trim_log();
    if (append_pending) {
      append_pending = false;
      if (role == InternalRole::kLeader) broadcast_append(false);
    }
    Ready rd;
    HardState hs = current_hard_state();
    if (!(hs == handed_hs)) {
      rd.hard_state = hs;
      handed_hs = hs;
    }
    rd.snapshot = std::move(install);
    install.reset();
    if (handed_index < log.last_index()) {
      log.copy_range(handed_index + 1, log.last_index(), UINT64_MAX, &rd.entries);
      handed_index = log.last_index();
    }
    rd.messages = std::move(outbox);
    outbox.clear();
    if (cfg.after_persist_messages && !held.empty()) hand_out_after_persist(&rd.after_persist);
    uint64_t bytes = 0;
    Index limit = apply_limit();
    if (applied_handed < log.snapshot_index()) {
      // Only reachable with a planted bug (a committed entry was overwritten, then the
      // log compacted): skip what is gone so the simulator's checker, not an assert, reports.
      HMDB_ASSERT(any_bug(), "entries up to %llu handed to apply, but the log was compacted to %llu",
                  (ull)applied_handed, (ull)log.snapshot_index());
      applied_handed = log.snapshot_index();
    }
    // Entries (applied_handed, last] are handed out: up to the limit, stopping once the
    // bytes reach kMaxCommittedBytesPerReady (the entry that crosses it is included).
    Index last = applied_handed;
    while (last < limit && bytes < kMaxCommittedBytesPerReady) {
      bytes += entry_bytes(log.at(last + 1));
      last++;
    }
    if (last > applied_handed) {
      // Sized once: at startup a whole log's worth of entries commits in one Ready.
      const Index first = applied_handed + 1;
      const size_t n = static_cast<size_t>(last - applied_handed);
      if (options.committed_by_reference) {
        rd.committed_refs.reserve(n);
        for (Index i = first; i <= last; i++) rd.committed_refs.push_back(&log.at(i));
      } else {
        rd.committed.reserve(n);
        for (Index i = first; i <= last; i++) rd.committed.push_back(log.at(i));
      }
      applied_handed = last;
    }
    rd.read_states = std::move(read_states);
    read_states.clear();
    rd.snapshot_reads = std::move(snapshot_reads);
    snapshot_reads.clear();
    rd.snapshot_chunks = std::move(chunks_out);
    chunks_out.clear();
    rd.snapshot_wanted = snapshot_wanted;
    snapshot_wanted = false;
    return rd;
  }

  void applied_to(Index index) {
    HMDB_ASSERT(index <= applied_handed, "applied_to(%llu) beyond the entries handed out (%llu)",
                (ull)index, (ull)applied_handed);
    applied = std::max(applied, index);
  }

  Role public_role() const {
    switch (role) {
      case InternalRole::kLeader: return Role::kLeader;
      case InternalRole::kCandidate: return Role::kCandidate;
      case InternalRole::kPreCandidate: return Role::kPreCandidate;
      case InternalRole::kFollower: return is_learner(id) ? Role::kLearner : Role::kFollower;
    }
    return Role::kFollower;
  }

  Status status() const {
    Status s;
    s.id = id;
    s.role = public_role();
    s.term = term;
    s.leader = lead;
    s.commit = commit;
    s.applied = applied;
    s.last_index = log.last_index();
    s.first_index = log.first_index();
    s.log_bytes = log.bytes();
    s.conf = conf;
    s.conf_index = conf_history.back().first;
    for (auto it = conf_history.rbegin(); it != conf_history.rend(); ++it) {
      if (contains(it->second.voters, id) || contains(it->second.learners, id)) {
        s.self_conf_index = it->first;
        break;
      }
    }
    if (role == InternalRole::kLeader) {
      for (auto& [n, pr] : progress) {
        const bool snap = pr.state == Progress::State::kSnapshot;
        s.progress.push_back({n, pr.match, pr.next, pr.is_learner, snap, snap ? pr.snapshot_offset : 0,
                              snap ? pr.snapshot_total : 0, snap && pr.waiting_snapshot});
      }
    }
    s.transferee = transferee;
    s.dropped_messages = dropped_messages;
    s.trimmed_entries = trimmed_entries;
    s.snapshots_wanted = snapshots_wanted;
    return s;
  }
};

// ───────────────────────────── public wrappers ─────────────────────────────

Raft::Raft(const Config& config, RestoreState restore)
    : impl_(std::make_unique<Impl>(config, std::move(restore))) {}
Raft::~Raft() = default;

void Raft::tick() { impl_->tick(); }
uint64_t Raft::log_bytes() const { return impl_->log.bytes(); }
Index Raft::last_index() const { return impl_->log.last_index(); }
void Raft::step(const Message& msg) { impl_->step(msg); }
ProposeResult Raft::propose(EntryType type, uint32_t schema_version, std::string data) {
  HMDB_ASSERT(type != EntryType::kConfChange, "use propose_conf_change() for membership changes");
  return impl_->propose(type, schema_version, data);
}
ProposeResult Raft::propose(EntryType type, uint32_t schema_version, std::string* data) {
  HMDB_ASSERT(type != EntryType::kConfChange, "use propose_conf_change() for membership changes");
  return impl_->propose(type, schema_version, *data);
}
ProposeResult Raft::propose_conf_change(const ConfChange& change) {
  return impl_->propose_conf_change(change);
}
bool Raft::read_index(uint64_t context) { return impl_->read_index(context); }
void Raft::transfer_leadership(NodeId to) { impl_->transfer_leadership(to); }
void Raft::persisted(const PersistAck& ack) { impl_->persisted(ack); }
void Raft::snapshot_saved(const SnapshotMeta& meta) { impl_->snapshot_saved(meta); }
void Raft::applied_to(Index index) { impl_->applied_to(index); }
size_t Raft::free_dropped_entries(size_t max_entries, uint64_t max_bytes, void (*before_free)(std::string&)) {
  return impl_->log.free_dropped(max_entries, max_bytes, before_free);
}
void Raft::set_may_lead(bool may) { impl_->set_may_lead(may); }
void Raft::set_snapshot_filter(std::function<bool(const SnapshotMeta&)> accept) {
  impl_->snapshot_accept = std::move(accept);
}
uint64_t Raft::snapshots_refused() const { return impl_->snapshots_refused; }
bool Raft::may_lead() const { return impl_->may_lead; }
void Raft::hold_apply(bool hold) { impl_->apply_held = hold; }
void Raft::campaign() {
  if (!impl_->promotable() || !impl_->may_lead) return;  // a learner campaigns only on its own (tick)
  impl_->start_campaign(impl_->cfg.pre_vote && !impl_->single_voter_self(), false);
}
void Raft::snapshot_chunk(NodeId to, const SnapshotMeta& meta, uint64_t offset, uint64_t total,
                          std::string bytes, bool last) {
  impl_->snapshot_chunk(to, meta, offset, total, std::move(bytes), last);
}
ConfState Raft::conf_state_at(Index index) const { return impl_->conf_state_at(index); }
Raft::Lease Raft::lease() const { return impl_->lease(); }
uint64_t Raft::lease_reads_answered() const { return impl_->lease_reads_answered; }
uint64_t Raft::votes_granted() const { return impl_->votes_granted; }
bool Raft::in_leader_lease() const { return impl_->in_leader_lease(); }
bool Raft::has_ready() const { return impl_->has_ready(); }
Ready Raft::take_ready() { return impl_->take_ready(ReadyOptions{}); }
Ready Raft::take_ready(const ReadyOptions& options) { return impl_->take_ready(options); }
Status Raft::status() const { return impl_->status(); }
Role Raft::role() const { return impl_->public_role(); }
NodeId Raft::leader() const { return impl_->lead; }
Term Raft::term() const { return impl_->term; }

// ───────────────────────────── conf change encoding ─────────────────────────────
// Format 1: u8 1, u8 type, u64 node (little-endian), then the context bytes to the end.
// Format 2 (written by the core): u8 2, u8 type, u64 node, u32 context length, context,
// u32 voter count, u64 voters..., u32 learner count, u64 learners... — the membership that
// results from the change. Carrying the whole result (not only the delta) lets a node that
// joins with no membership at all replay the log to the right membership.

namespace {

// Bound on members in an encoded membership (a sanity check against corrupt input).
constexpr uint32_t kMaxMembers = 1024;
bool get_ids(Decoder* in, std::vector<NodeId>* out) {
  uint32_t n = in->u32();
  if (!in->ok() || n > kMaxMembers) return false;
  out->clear();
  for (uint32_t i = 0; i < n; i++) {
    uint64_t id = in->u64();
    if (!in->ok() || id == kNoNode) return false;
    out->push_back(id);
  }
  return std::is_sorted(out->begin(), out->end());
}

}  // namespace

std::string encode_conf_change(const ConfChange& change) {
  std::string out;
  out.reserve(10 + change.context.size());
  Encoder e(&out);
  e.u8(kConfChangeFormat);
  e.u8(static_cast<uint8_t>(change.type));
  e.u64(change.node);
  e.raw(change.context);
  return out;
}

std::string encode_conf_change_entry(const ConfChange& change, const ConfState& after) {
  std::string out;
  Encoder e(&out);
  e.u8(kConfChangeFormatWithState);
  e.u8(static_cast<uint8_t>(change.type));
  e.u64(change.node);
  e.u32(static_cast<uint32_t>(change.context.size()));
  e.raw(change.context);
  e.u32(static_cast<uint32_t>(after.voters.size()));
  for (NodeId v : after.voters) e.u64(v);
  e.u32(static_cast<uint32_t>(after.learners.size()));
  for (NodeId l : after.learners) e.u64(l);
  return out;
}

bool decode_conf_change_entry(std::string_view data, ConfChange* out,
                              std::optional<ConfState>* after) {
  if (data.size() < 10) return false;
  Decoder in(data);
  uint8_t format = in.u8();
  uint8_t type = in.u8();
  if (type < 1 || type > 4) return false;
  uint64_t node = in.u64();
  if (node == kNoNode) return false;
  out->type = static_cast<ConfChangeType>(type);
  out->node = node;
  if (format == kConfChangeFormat) {
    out->context.assign(in.raw(in.remaining()));
    if (after) after->reset();
    return true;
  }
  if (format != kConfChangeFormatWithState) return false;
  uint32_t len = in.u32();
  std::string_view context = in.raw(len);
  if (!in.ok()) return false;
  out->context.assign(context);
  ConfState cs;
  if (!get_ids(&in, &cs.voters) || !get_ids(&in, &cs.learners) || !in.done()) return false;
  if (after) *after = std::move(cs);
  return true;
}

bool decode_conf_change(std::string_view data, ConfChange* out) {
  return decode_conf_change_entry(data, out, nullptr);
}

}  // namespace hmdb::raft
