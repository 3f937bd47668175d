// server/disk_thread.h — the thread that owns the log file: group commit off the event loop.
//
// The event loop hands over what a raft Ready asked to persist (hard state + entries) with
// submit(); it never blocks on the disk. The disk thread takes everything queued since its
// last round, encodes each submitted Ready with LogWriter::append and writes them all with
// ONE write(2) (LogWriter::flush; was one per Ready, about two per round), then, in
// `always` mode, makes it durable with ONE LogWriter::sync() (fdatasync) for all of it:
// group commit. It then publishes a PersistAck covering everything written and wakes the
// loop through an eventfd; the loop calls raft.persisted(ack), which commits the entries.
//
// Durability modes (ServerOptions::durability):
//   always    ack after sync(): nothing acknowledged can be lost.
//   periodic  ack after append() (write(2) returned); sync() every fsync_interval_ms. A
//             crash of the process loses nothing (the kernel has the bytes); a crash of the
//             machine loses at most the last interval plus one round.
//   none      no DiskThread at all (the node acks in the loop).
//
// Holding the next round (`always` only). A leader's clients whose writes a round made
// durable send their next writes only after the loop has seen the ack, applied the entry and
// sent their replies. Starting the next round at once (with whatever other clients queued
// meanwhile) splits the clients into two cohorts that alternate, each syncing about half of
// them. So after a round that carried client writes (submit's `hold_after`), the disk thread
// holds the next one until the loop calls release_hold() — once as many new writes
// arrived as the round made durable, the answered cohort is back (Node::end_hold) — or until
// the hold's deadline: its span is at most kGroupHoldMaxUs and, on a single node, at most the
// last fdatasync's duration (holding longer than a sync costs more latency than the cohorts
// it joins save; a cluster's leader is not capped so: see cluster_hold_bounds), counted from
// when the loop sent the answered clients their replies (hold_from_now).
// Before that no answered client can have written again, so the hold's clock has not
// started: the thread waits for hold_from_now, which wakes it, and only a loop turn longer
// than kGroupHoldUnsentMaxUs after the sync ends the hold unsent. (Counted from the sync's
// end, a hold of a fast sync ran out while the loop was still applying and sending the
// replies — 50 replies take 250-350 µs, a quiet fdatasync 100-200 µs — in a third to a half
// of all holds: the first answered clients to write again then started a round alone, and
// the cohort split.) While the cohort keeps arriving the hold goes on: every loop turn that
// proposed some of the awaited writes calls hold_from_now again, which moves the deadline to
// now plus the span, but never beyond kGroupHoldExtendMaxUs after the first call (the
// replies' send). A client like redis-benchmark, one thread for all its connections, sends
// the cohort's next writes one by one ~17 µs apart: a span of one fdatasync after the last
// reply ran out with ~60 % of them back. The loop's release and the first hold_from_now are
// a futex wake each per round; a later hold_from_now wakes nobody (a thread that wakes at
// the earlier deadline waits on to the later one), nor does a submit during a hold. Holding
// only ever delays a sync: no write is acknowledged before its fdatasync returned.
//
// Whether a round holds at all is GroupHoldBounds::mode's (--group-commit-hold; the decision
// in server/group_hold_policy.h): `auto`, the default, holds while the disk is the slower
// side — the fdatasync (averaged) took longer than the held cohorts took to come back
// (averaged: from the first hold_from_now to the release, or to the deadline) — and on a
// fast disk lets the next round start as soon as the disk is free, so that the loop works on
// one group of clients while the disk syncs the other's. A cluster's leader holds always
// (cluster_hold_bounds). A round that carried client writes and did not hold counts in
// DiskStats::holds_skipped.
//
// A hard state that moves only its commit index (raft's commit is a hint on disk: a restart
// learns it again, and no message waits on it being durable — raft.cc's gates wait on the
// term, the vote and the entries) starts no round of its own: it is written with the next
// round that something else starts (entries, a term or vote, an install, the periodic sync,
// stop). Every acknowledgement commits entries, so every ack's next Ready carries such a hard
// state; before, when the hold had ended, it woke the thread for a write and an fdatasync of a
// 60-byte record that made nothing durable that anyone waited for.
//
// Sending after the sync (a follower's acknowledgements; raft::Config::after_persist_messages).
// submit_messages() queues messages that promise what was submitted before them is durable
// (append acks, votes). The thread sends them itself (the sender given to start(), the peer
// transport's send_and_flush) once the round that made everything submitted before them
// durable published its ack, before it writes the eventfd; messages whose round is already
// durable wake the thread and go at once. So a follower's loop need not wake for the disk's
// acknowledgement before the leader hears it: a Work submitted with wake_loop = false (a
// follower's) publishes its ack without writing the eventfd, and the loop takes it at its next
// turn (ack_unseen()). The loop's wake-ups per follower round fall from two to one.
//
// A leader's own acknowledgement (a leader with other voters; Node::persist). Its own ack
// commits nothing unless a follower already has what it makes durable: the leader's
// fdatasync starts as its appends leave, so its ack usually comes first, woke the loop for
// nothing, and the follower's acknowledgement woke it again for the commit. Its Works are
// submitted with wake_loop = false too, and the loop takes the ack at the turn a follower's
// acknowledgement wakes it; when a follower acknowledged more than the loop's last ack
// covers, the loop calls wake_on_next_ack(): an ack published and not taken is taken at
// once, else the next published ack writes the eventfd whatever its Works said. (The group-
// commit hold's clock, started by hold_from_now as the loop sends the round's replies, then
// starts after the commit's replies, not at the turn that took the leader's own ack before
// the commit.)
//
// A leader's appends leave when its round starts (Node::send). While the thread has a round
// to start (an urgent Work queued: held, or waiting for the round in progress to end) or a
// hold is in force (flush_pending()), the loop queues a leader's appends in the peer
// transport without writing them (PeerTransport::send_later), and the thread calls the
// `round_start` given to start() (the transport's flush) as it takes a round, before writing
// it, or as a hold ends at its deadline with no round to start. A follower then gets the
// round's entries and the commit announcements made meanwhile (the previous round's commit
// comes while its hold is in force) in one write, instead of an append per loop turn that
// proposed and one per commit: one wake-up of its loop and one disk round per leader round.
// The entries lose little by waiting for the round: the leader cannot commit them before its
// own round made them durable unless every other voter did (two followers of three). The
// loop flushes at every consensus tick too (kRaftTickMs), which bounds the wait when an
// fdatasync is slow, and after releasing a hold that no round follows (Node::end_hold).
//
// Rounds on the loop (a single node in `always` mode; Node::wait_for_disk_ack). When the loop
// has handed over its writes and has nothing else to do, it would sleep until the round's ack
// anyway: a single node has no peers to serve meanwhile, and clients that write during the
// fdatasync can only join the next round. Waking the thread for that round and being woken
// by it cost a futex wake, the thread's context switch, an eventfd write and read and the
// loop's own context switch per round: on a VM each wake-up of a sleeping vCPU is an
// interrupt the hypervisor delivers, and both threads paid it (bench/README.md, issue 16 item
// 3). So with set_loop_rounds(true) a submit does not wake the thread; at the end of its turn
// the loop either runs the round itself (round_on_loop: the same write_round, on its own
// thread; the ack is taken at its next turn, no eventfd) or, when it goes on working (kick) or
// the round cannot run there, wakes the thread as before. The round runs on the loop only
// when none is running or held on the thread (round_running_ makes the log one runner's at a
// time), nothing but writes is queued (stop, compaction and peer messages stay the thread's),
// and the fdatasync's average is at most kLoopRoundSyncAvgMaxUs (the loop cannot look at its
// clients meanwhile, as Redis' loop cannot during its fsync). Everything else is unchanged:
// the ack still follows the fdatasync, the hold policy decides after a loop's round as after
// the thread's (a hold it begins goes on on the thread, which it wakes to keep the deadline).
//
// An append() or sync() error stops the process (never retry after a failed fsync: the
// kernel may have dropped the dirty pages, PostgreSQL's lesson). It prints what failed and
// _exit()s with kExitDiskFailure (server/fatal.h), before any reply for the affected writes
// is sent.
//
// Thread-safety: submit(), submit_messages(), request_compact(), take_ack(), queued_bytes(),
// flush_pending(), set_loop_rounds(), round_on_loop(), kick() and stop() are called by the loop
// thread; everything else runs on the disk thread. A round (write_round) runs on one of the
// two at a time (round_running_).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "raft/raft.h"
#include "server/fatal.h"
#include "server/group_hold_policy.h"
#include "server/latency.h"
#include "server/options.h"
#include "storage/log.h"

namespace hmdb::server {

struct DiskStats {
  uint64_t rounds = 0;        // group-commit rounds
  uint64_t holds = 0;         // rounds after which the next one was held (see above)
  // Holds that ended at their deadline, not by release_hold() (the answered clients were not
  // all back), whether or not writes were waiting then. (Counted only with writes waiting, as
  // before, the third to half of the holds that ran out while the loop was still sending the
  // round's replies — nothing can be queued then — went unseen: bench/README.md.)
  uint64_t holds_expired = 0;
  uint64_t holds_expired_unsent = 0;  // of those, before the loop had sent the replies (hold_from_now)
  uint64_t holds_skipped = 0;  // rounds with client writes that held nothing (GroupHoldPolicy)
  uint64_t hold_sync_avg_us = 0;    // GroupHoldPolicy's averages: the fdatasync's
  uint64_t hold_return_avg_us = 0;  // and the held cohorts' return
  uint64_t syncs = 0;         // fdatasync calls
  uint64_t appends = 0;       // Readies written
  uint64_t bytes = 0;         // log bytes written
  uint64_t preallocated_bytes = 0;     // zeros written ahead of the log's records
  uint64_t preallocate_failures = 0;   // preallocations a full disk stopped (not fatal)
  uint64_t messages_sent = 0;          // peer messages the thread sent after a round (submit_messages)
  uint64_t quiet_acks = 0;             // acks published without waking the loop (wake_loop = false)
  uint64_t loop_rounds = 0;            // rounds the loop ran itself (round_on_loop)
  uint64_t last_sync_us = 0;  // duration of the last fdatasync
  uint64_t max_sync_us = 0;
};

// Per group-commit round: how long its write(2)s and its fdatasync took (µs), and how many
// log entries it wrote (the group).
struct DiskLatency {
  LatencyHistogram write_us;
  LatencyHistogram sync_us;
  LatencyHistogram group_entries;
};

// How long a held round may wait (see "Holding the next round" above). Tests lift the bounds
// to see a hold end by release_hold() alone, or shorten them to see it end by its deadline.
struct GroupHoldBounds {
  uint64_t max_us = kGroupHoldMaxUs;
  bool capped_by_sync = true;  // and at most the last fdatasync's duration
  uint64_t unsent_max_us = kGroupHoldUnsentMaxUs;  // from the sync's end, until hold_from_now
  uint64_t extend_max_us = kGroupHoldExtendMaxUs;  // from the first hold_from_now
  // Whether rounds hold at all (above). The node passes --group-commit-hold (auto by
  // default); on here, so that a test of the hold's mechanics sees every round hold.
  GroupHoldMode mode = GroupHoldMode::kOn;
};
// The bounds of a node that has peers: kGroupHoldMaxUs alone, not the fdatasync's duration.
// A cluster leader's round lasts its fdatasync plus a follower's (begun when the round's
// appends left) and the acknowledgement's way back, and its clients write again only after
// that: capped by its own fdatasync (100-300 us on a fast disk) the hold ran out while the
// answered clients were still coming back, and the stragglers started a round of their own
// (30-40 writes per round of 50 clients, against 43-45 uncapped; bench/README.md, issue 16
// item 6), and every node paid that round's costs.
// Its rounds hold always unless told `off`: `auto` was measured on a single node only.
inline GroupHoldBounds cluster_hold_bounds(GroupHoldMode mode = GroupHoldMode::kAuto) {
  return GroupHoldBounds{.max_us = kGroupHoldMaxUs,
                         .capped_by_sync = false,
                         .mode = mode == GroupHoldMode::kAuto ? GroupHoldMode::kOn : mode};
}

class DiskThread {
 public:
  // wake_fd: an eventfd the loop polls; written after every published ack.
  // last_index/last_term: the last entry already durable (from recovery), so that an ack
  // for a round that carried only a hard state still names the right entry.
  DiskThread(storage::Env* env, std::string dir, std::unique_ptr<storage::LogWriter> log, Durability durability,
             uint64_t fsync_interval_ms, int wake_fd, raft::Index last_index, raft::Term last_term,
             raft::HardState hard_state, GroupHoldBounds hold_bounds = {});
  ~DiskThread();
  DiskThread(const DiskThread&) = delete;
  DiskThread& operator=(const DiskThread&) = delete;

  // sender: sends messages to peers; called on the disk thread (see "Sending after the
  // sync"). May be empty if submit_messages() is never called. round_start: called on the
  // disk thread as it takes a round, before writing it (see "A leader's appends"); may be empty.
  void start(std::function<void(std::vector<raft::Message>&&)> sender = {},
             std::function<void()> round_start = {});
  // Queues one Ready's persistence work. hold_after: it carries client writes, so the round
  // that makes it durable may hold the next round (`always` mode; see above). wake_loop: the
  // round that makes it durable writes the eventfd (else the loop takes the ack at its next
  // turn; see "Sending after the sync").
  void submit(std::optional<raft::HardState> hard_state, std::vector<raft::Entry> entries, bool hold_after = false,
              bool wake_loop = true);
  // Sends `messages` (with the sender given to start()) once everything submitted before
  // them is durable (see "Sending after the sync").
  void submit_messages(std::vector<raft::Message>&& messages);
  // An ack was published without writing the eventfd and take_ack() has not taken it yet:
  // the loop calls take_ack() in its next turn. One relaxed load.
  bool ack_unseen() const { return ack_unseen_.load(std::memory_order_relaxed); }
  // The loop needs the next ack as soon as it is published (see "A leader's own
  // acknowledgement"): true if one is published and not taken yet (take it now); else
  // false, and the next ack published writes the eventfd even if its Works were submitted
  // with wake_loop = false.
  bool wake_on_next_ack();
  // Ends the hold `hold` (from take_ack) now; a later hold, or one that ended, is left alone.
  void release_hold(uint64_t hold);
  // The replies of the writes whose ack began hold `hold` were sent (the first call: the
  // hold's clock starts), or more of those clients' writes arrived (later calls): its
  // deadline is now plus its span, if that is later, and at most extend_max_us after the
  // first call (see above). A hold that ended is left alone.
  void hold_from_now(uint64_t hold);
  // A follower installed the leader's snapshot `meta`: the log continues after meta.index,
  // and the next ack names it. Call before the submit() of the same Ready. `file_durable`
  // (null: the file is durable already) is set by whoever syncs and verifies the snapshot
  // file: the thread waits for it before recording the install, and so before anything
  // queued after it (server/snapshot.cc, install_snapshot).
  void submit_install(const raft::SnapshotMeta& meta, std::shared_ptr<const std::atomic<bool>> file_durable);
  // After a snapshot at index is durable: delete the log segments it covers.
  void request_compact(raft::Index index);
  // The newest ack published since the last call, if any. *hold (optional): the id of the
  // hold that began when it was published (0: the next round is not held). *published
  // (optional): when it was published (steady_clock, i.e. CLOCK_MONOTONIC).
  std::optional<raft::PersistAck> take_ack(uint64_t* hold = nullptr,
                                           std::chrono::steady_clock::time_point* published = nullptr);
  uint64_t queued_bytes() const;
  // The thread will call round_start soon: work that starts a round is queued and no round
  // took it yet, or a hold is in force (its end calls round_start when no round follows it).
  // False after release_hold() of the hold in force with no such work. Takes the thread's lock.
  bool flush_pending() const;
  DiskStats stats() const;
  DiskLatency latency() const;  // a copy (~21 KB): for INFO and scrapes, not per command
  void reset_latency();
  // Rounds on the loop (see "Rounds on the loop"; `always` only): from now on a submit does
  // not wake the thread; the loop calls round_on_loop() or kick() at the end of its turn.
  // Off again: what a submit left for the loop goes to the thread.
  // sync_avg_max_us: kLoopRoundSyncAvgMaxUs but in tests.
  void set_loop_rounds(bool on, uint64_t sync_avg_max_us = kLoopRoundSyncAvgMaxUs);
  // The loop is about to sleep with writes owed: if no round is running or held, nothing but
  // writes is queued and the disk is fast on average, writes and syncs the queued Works here,
  // on the caller's thread, and publishes the ack without the eventfd (ack_unseen() is true
  // after it): true. Else hands the work to the thread (one wake-up if it can start a round):
  // false.
  bool round_on_loop();
  // The loop goes on working (it will not sleep): the thread starts the round a submit left
  // for the loop, if it can.
  void kick();
  // Writes and syncs what is queued, then ends the thread.
  void stop();

 private:
  struct Work {
    std::optional<raft::HardState> hard_state;
    std::vector<raft::Entry> entries;
    std::optional<raft::SnapshotMeta> install;
    std::shared_ptr<const std::atomic<bool>> install_durable;  // see submit_install
    uint64_t bytes = 0;
    bool hold_after = false;
    bool lazy = false;  // a commit-only hard state: starts no round (see above)
    bool wake_loop = true;
  };
  // Messages to send once the Works submitted before them (up to urgent seq `after`) are durable.
  struct Outgoing {
    uint64_t after = 0;
    std::vector<raft::Message> messages;
  };
  void run();
  // One round: writes `round` (one write(2)), syncs as the mode says, publishes the ack, sends
  // what it made sendable, compacts. On the thread, or on the loop (on_loop: no eventfd; the
  // ack is left for the loop's next turn). The caller set round_running_; this clears it.
  void write_round(std::deque<Work>& round, uint64_t round_seq, std::optional<raft::Index> compact, bool stopping,
                   bool on_loop);
  [[noreturn]] void fail(const std::string& what, const Status& status);

  storage::Env* env_;
  std::string dir_;
  std::unique_ptr<storage::LogWriter> log_;
  const Durability durability_;
  const uint64_t fsync_interval_ms_;
  const int wake_fd_;
  const GroupHoldBounds hold_bounds_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Work> queue_;           // GUARDED_BY(mu_)
  uint64_t urgent_ = 0;              // GUARDED_BY(mu_): queued Works that start a round (not lazy)
  uint64_t urgent_seq_ = 0;          // GUARDED_BY(mu_): Works that start a round, ever submitted
  uint64_t durable_seq_ = 0;         // GUARDED_BY(mu_): of those, how many a published round covered
  std::deque<Outgoing> outgoing_;    // GUARDED_BY(mu_)
  std::atomic<bool> ack_unseen_{false};
  uint64_t queued_bytes_ = 0;        // GUARDED_BY(mu_)
  std::optional<raft::PersistAck> ack_;  // GUARDED_BY(mu_)
  std::chrono::steady_clock::time_point ack_published_;  // GUARDED_BY(mu_): of ack_
  bool wake_wanted_ = false;         // GUARDED_BY(mu_): wake_on_next_ack() found no ack to take
  uint64_t ack_hold_ = 0;            // GUARDED_BY(mu_): the hold that began with ack_
  uint64_t hold_ = 0;                // GUARDED_BY(mu_): the hold in force (0: none)
  uint64_t holds_begun_ = 0;         // GUARDED_BY(mu_): ids of holds
  std::chrono::steady_clock::time_point hold_deadline_;  // GUARDED_BY(mu_): once hold_sent_
  std::chrono::microseconds hold_span_{0};                // GUARDED_BY(mu_): the hold's length
  bool hold_sent_ = false;           // GUARDED_BY(mu_): hold_from_now came for the hold in force
  bool hold_waits_send_ = false;     // GUARDED_BY(mu_): the thread waits for it (wake it)
  std::chrono::steady_clock::time_point hold_sent_at_;     // GUARDED_BY(mu_): the first hold_from_now
  std::chrono::steady_clock::time_point hold_unsent_end_;  // GUARDED_BY(mu_): the deadline until then
  GroupHoldPolicy hold_policy_;      // GUARDED_BY(mu_): whether a round holds the next
  std::optional<raft::Index> compact_index_;  // GUARDED_BY(mu_)
  bool stopping_ = false;            // GUARDED_BY(mu_)
  bool loop_rounds_ = false;         // GUARDED_BY(mu_): set_loop_rounds
  uint64_t loop_round_sync_avg_max_us_ = kLoopRoundSyncAvgMaxUs;  // GUARDED_BY(mu_)
  // A submit left its wake-up to the loop. Written only by the loop thread, under mu_ (the
  // thread reads it under mu_); the loop's own reads need no lock (kick).
  bool deferred_ = false;
  bool round_running_ = false;       // GUARDED_BY(mu_): a round owns the log (the thread's or the loop's)
  DiskStats stats_;                  // GUARDED_BY(mu_)
  DiskLatency latency_;              // GUARDED_BY(mu_)

  // Loop thread (submit) only: the hard state last submitted, to tell a commit-only change.
  raft::HardState submitted_hs_;

  // The round's runner only (round_running_: the disk thread, or the loop in round_on_loop).
  bool dirty_ = false;  // appended but not yet synced
  std::chrono::steady_clock::time_point next_sync_;  // the periodic mode's next sync
  raft::Index last_index_;
  raft::Term last_term_;
  raft::HardState hard_state_;
  std::function<void(std::vector<raft::Message>&&)> sender_;
  std::function<void()> round_start_;
  std::thread thread_;
};

}  // namespace hmdb::server
