// server/disk_thread.cc — group commit on its own thread; see disk_thread.h.
#include "server/disk_thread.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <iterator>

#include "common/assert.h"
#include "server/logging.h"

namespace hmdb::server {

namespace {
using Clock = std::chrono::steady_clock;

uint64_t elapsed_us(Clock::time_point from, Clock::time_point to) {
  return to > from ? static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(to - from).count()) : 0;
}

uint64_t work_bytes(const std::optional<raft::HardState>& hs, const std::vector<raft::Entry>& entries) {
  // Approximate record overhead; only used for back-pressure.
  uint64_t n = hs ? 32 : 0;
  for (const auto& e : entries) n += e.data.size() + 32;
  return n;
}
}  // namespace

DiskThread::DiskThread(storage::Env* env, std::string dir, std::unique_ptr<storage::LogWriter> log,
                       Durability durability, uint64_t fsync_interval_ms, int wake_fd, raft::Index last_index,
                       raft::Term last_term, raft::HardState hard_state, GroupHoldBounds hold_bounds)
    : env_(env),
      dir_(std::move(dir)),
      log_(std::move(log)),
      durability_(durability),
      fsync_interval_ms_(fsync_interval_ms),
      wake_fd_(wake_fd),
      hold_bounds_(hold_bounds),
      hold_policy_(hold_bounds.mode),
      submitted_hs_(hard_state),
      last_index_(last_index),
      last_term_(last_term),
      hard_state_(hard_state) {
  HMDB_ASSERT(durability_ != Durability::kNone, "durability none has no disk thread");
  HMDB_ASSERT(log_ != nullptr, "no log writer");
}

DiskThread::~DiskThread() {
  if (thread_.joinable()) stop();
}

void DiskThread::start(std::function<void(std::vector<raft::Message>&&)> sender, std::function<void()> round_start) {
  sender_ = std::move(sender);
  round_start_ = std::move(round_start);
  next_sync_ = Clock::now() + std::chrono::milliseconds(fsync_interval_ms_);
  thread_ = std::thread([this] { run(); });
}

void DiskThread::submit(std::optional<raft::HardState> hard_state, std::vector<raft::Entry> entries, bool hold_after,
                        bool wake_loop) {
  Work w;
  w.wake_loop = wake_loop;
  w.bytes = work_bytes(hard_state, entries);
  w.hard_state = std::move(hard_state);
  w.entries = std::move(entries);
  w.hold_after = hold_after && durability_ == Durability::kAlways;
  // Only the commit index moved: written with the next round, starts none (disk_thread.h).
  w.lazy = w.entries.empty() && w.hard_state && w.hard_state->term == submitted_hs_.term &&
           w.hard_state->vote == submitted_hs_.vote;
  if (w.hard_state) submitted_hs_ = *w.hard_state;
  const bool lazy = w.lazy;
  bool wake;
  {
    std::lock_guard lk(mu_);
    HMDB_ASSERT(!stopping_, "submit after stop");
    queued_bytes_ += w.bytes;
    queue_.push_back(std::move(w));
    if (lazy) return;
    urgent_++;
    urgent_seq_++;
    // During a hold the thread waits for release_hold() or the deadline: no wake-up per submit.
    // With rounds on the loop the loop decides at the end of its turn (round_on_loop / kick).
    wake = hold_ == 0 && !loop_rounds_;
    if (hold_ == 0 && loop_rounds_) deferred_ = true;
  }
  if (wake) cv_.notify_one();
}

void DiskThread::submit_messages(std::vector<raft::Message>&& messages) {
  HMDB_ASSERT(sender_, "submit_messages without a sender");
  if (messages.empty()) return;
  bool wake;
  {
    std::lock_guard lk(mu_);
    HMDB_ASSERT(!stopping_, "submit_messages after stop");
    outgoing_.push_back(Outgoing{urgent_seq_, std::move(messages)});
    // Durable already (nothing submitted since the last round): the thread sends them now.
    wake = urgent_seq_ <= durable_seq_;
  }
  if (wake) cv_.notify_one();
}

void DiskThread::release_hold(uint64_t hold) {
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (hold == 0 || hold_ != hold) return;
    hold_ = 0;
    // The cohort is back: how long it took since its replies were sent (group_hold_policy.h).
    if (hold_sent_) hold_policy_.cohort_returned(elapsed_us(hold_sent_at_, Clock::now()));
    // With rounds on the loop the loop (which calls this) decides at the end of its turn, as
    // after a submit: it runs the round itself or hands it over.
    wake = urgent_ > 0 && !loop_rounds_;
    if (urgent_ > 0 && loop_rounds_) deferred_ = true;
  }
  if (wake) cv_.notify_one();
}

void DiskThread::hold_from_now(uint64_t hold) {
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    if (hold == 0 || hold_ != hold) return;
    const auto now = Clock::now();
    if (!hold_sent_) {
      // The replies are out: the hold's clock starts (disk_thread.h).
      hold_sent_ = true;
      hold_sent_at_ = now;
      hold_deadline_ = now + hold_span_;
      wake = std::exchange(hold_waits_send_, false);
    } else {
      // More of the cohort arrived: wait on for the rest, within the bound.
      const auto bound = hold_sent_at_ + std::chrono::microseconds(hold_bounds_.extend_max_us);
      hold_deadline_ = std::max(hold_deadline_, std::min(now + hold_span_, bound));
    }
  }
  // The thread waits for the first call (run()): from now on it waits for the deadline.
  if (wake) cv_.notify_one();
}

void DiskThread::submit_install(const raft::SnapshotMeta& meta,
                                std::shared_ptr<const std::atomic<bool>> file_durable) {
  Work w;
  w.install = meta;
  w.install_durable = std::move(file_durable);
  {
    std::lock_guard lk(mu_);
    queue_.push_back(std::move(w));
    urgent_++;
    urgent_seq_++;
  }
  cv_.notify_one();
}

void DiskThread::request_compact(raft::Index index) {
  {
    std::lock_guard lk(mu_);
    compact_index_ = index;
  }
  cv_.notify_one();
}

void DiskThread::set_loop_rounds(bool on, uint64_t sync_avg_max_us) {
  HMDB_ASSERT(durability_ == Durability::kAlways || !on, "rounds on the loop in always mode only");
  bool wake;
  {
    std::lock_guard lk(mu_);
    loop_rounds_ = on;
    loop_round_sync_avg_max_us_ = sync_avg_max_us;
    wake = std::exchange(deferred_, false);
  }
  if (wake) cv_.notify_one();
}

bool DiskThread::round_on_loop() {
  std::deque<Work> round;
  uint64_t round_seq = 0;
  bool wake = false;
  {
    std::lock_guard lk(mu_);
    deferred_ = false;
    const bool startable = urgent_ > 0 && hold_ == 0 && !round_running_;
    // Not here: a round in progress or held (the thread goes on with it), work only the
    // thread does (stop, compaction, messages), or a disk slow enough on average that the
    // loop would sit in fdatasync longer than it would wait for an ack (kLoopRoundSyncAvgMaxUs).
    if (!loop_rounds_ || !startable || stopping_ || compact_index_ || !outgoing_.empty() ||
        hold_policy_.sync_avg_us() > loop_round_sync_avg_max_us_) {
      wake = startable;
    } else {
      round.swap(queue_);
      urgent_ = 0;
      round_seq = urgent_seq_;
      round_running_ = true;
    }
  }
  if (round.empty()) {
    if (wake) cv_.notify_one();
    return false;
  }
  write_round(round, round_seq, std::nullopt, /*stopping=*/false, /*on_loop=*/true);
  return true;
}

void DiskThread::kick() {
  // Nothing left for the loop to hand over (the usual end of a busy turn): no lock taken.
  // deferred_ is written by the loop thread alone, so it may read it without mu_.
  if (!deferred_) return;
  bool wake;
  {
    std::lock_guard lk(mu_);
    wake = std::exchange(deferred_, false) && urgent_ > 0 && hold_ == 0 && !round_running_;
  }
  if (wake) cv_.notify_one();
}

std::optional<raft::PersistAck> DiskThread::take_ack(uint64_t* hold, Clock::time_point* published) {
  std::lock_guard lk(mu_);
  ack_unseen_.store(false, std::memory_order_relaxed);
  if (hold) *hold = ack_ ? ack_hold_ : 0;
  if (published && ack_) *published = ack_published_;
  return std::exchange(ack_, std::nullopt);
}

bool DiskThread::wake_on_next_ack() {
  std::lock_guard lk(mu_);
  if (ack_) return true;
  wake_wanted_ = true;
  return false;
}

bool DiskThread::flush_pending() const {
  std::lock_guard lk(mu_);
  return urgent_ > 0 || hold_ != 0;
}

uint64_t DiskThread::queued_bytes() const {
  std::lock_guard lk(mu_);
  return queued_bytes_;
}

DiskStats DiskThread::stats() const {
  std::lock_guard lk(mu_);
  DiskStats s = stats_;
  s.hold_sync_avg_us = hold_policy_.sync_avg_us();
  s.hold_return_avg_us = hold_policy_.return_avg_us();
  return s;
}

DiskLatency DiskThread::latency() const {
  std::lock_guard lk(mu_);
  return latency_;
}

void DiskThread::reset_latency() {
  std::lock_guard lk(mu_);
  latency_ = DiskLatency{};
}

void DiskThread::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void DiskThread::fail(const std::string& what, const Status& status) {
  // Never retry: after a failed write or fsync the file's content is unknown, and a retried
  // fsync can report success for pages the kernel already dropped. Stop before any reply for
  // the affected writes goes out (replies wait for our ack, which is never published).
  fatal(kExitDiskFailure,
        "{} failed: {}. Stopping the node; no write that was not acknowledged is reported as done. Check the "
        "disk (space, errors in dmesg) and restart: recovery replays the log up to the last sound record.",
        what, status.to_string());
}

void DiskThread::run() {
  while (true) {
    std::deque<Work> round;
    std::optional<raft::Index> compact;
    bool stopping = false;
    bool periodic_due = false;
    uint64_t round_seq = 0;  // the urgent Works submitted so far: all in this round or earlier
    {
      std::unique_lock lk(mu_);
      // Lazy Works (commit-only hard states) ride along with the next round; they start none.
      // A round the loop runs (round_on_loop) ends before the thread starts one; with rounds on
      // the loop, what a submit left for the loop (deferred_) is the thread's only once the loop
      // hands it over (kick, round_on_loop).
      auto has_round = [&] {
        return !round_running_ && (stopping_ || compact_index_.has_value() || (urgent_ > 0 && hold_ == 0 && !deferred_));
      };
      // Messages whose Works are durable: sent without a round (see "Sending after the sync").
      auto sendable = [&] { return !outgoing_.empty() && outgoing_.front().after <= durable_seq_; };
      auto has_work = [&] { return has_round() || sendable(); };
      while (!has_work()) {
        if (hold_ != 0) {
          // Held (see disk_thread.h): the loop's release_hold() or the deadline ends it. The
          // deadline counts from the first hold_from_now, which wakes the thread if it waits
          // for it, and may move meanwhile: then wait on to it.
          hold_waits_send_ = !hold_sent_;
          const auto until = hold_sent_ ? hold_deadline_ : hold_unsent_end_;
          const bool timed_out = cv_.wait_until(lk, until) == std::cv_status::timeout;
          hold_waits_send_ = false;
          if (timed_out && hold_ != 0 && Clock::now() >= (hold_sent_ ? hold_deadline_ : hold_unsent_end_)) {
            hold_ = 0;
            // The cohort takes at least this long to come back (group_hold_policy.h).
            if (hold_sent_) hold_policy_.cohort_returned(elapsed_us(hold_sent_at_, Clock::now()));
            // Counted with or without writes waiting (DiskStats::holds_expired).
            stats_.holds_expired++;
            if (!hold_sent_) stats_.holds_expired_unsent++;
            if (urgent_ == 0 && round_start_) {
              // No round follows: what the loop queued for it (commit announcements) leaves
              // now (see "A leader's appends leave when its round starts").
              lk.unlock();
              round_start_();
              lk.lock();
            }
          }
        } else if (durability_ == Durability::kPeriodic && dirty_) {
          if (cv_.wait_until(lk, next_sync_) == std::cv_status::timeout) {  // the periodic sync is due
            periodic_due = true;
            break;
          }
        } else {
          cv_.wait(lk);
        }
      }
      if (periodic_due || has_round()) {
        hold_ = 0;  // stopping or compacting ends a hold too
        round.swap(queue_);
        urgent_ = 0;
        compact = std::exchange(compact_index_, std::nullopt);
        stopping = stopping_;
      }  // else woken only to send messages: the queue (lazy Works, or held ones) stays
      round_seq = urgent_seq_;
      round_running_ = true;
    }
    write_round(round, round_seq, compact, stopping, /*on_loop=*/false);
    if (stopping) {
      std::lock_guard lk(mu_);
      if (queue_.empty() && !dirty_) break;
    }
  }
}

void DiskThread::write_round(std::deque<Work>& round, uint64_t round_seq, std::optional<raft::Index> compact,
                             bool stopping, bool on_loop) {
  bool hold_after = false;
  bool wake_loop = false;
  bool urgent = false;
  for (const Work& w : round) {
    hold_after |= w.hold_after;
    wake_loop |= w.wake_loop && !w.lazy;
    urgent |= !w.lazy;
  }
  // A leader's appends queued while this round was pending leave now, before its write
  // (see "A leader's appends leave when its round starts"). After urgent_ went to 0 above:
  // an append queued later finds no round pending and is flushed by the loop.
  if (urgent && round_start_) round_start_();

  uint64_t bytes = 0;
  uint64_t entries = 0;
  const auto write_start = Clock::now();
  for (auto& w : round) {
    if (w.install) {
      // Not before the snapshot's file is synced and verified (a thread of the loop's
      // does that, a few hundred ms for a big one): no ack names it before, and the
      // entries queued after it wait too, in order.
      if (w.install_durable) w.install_durable->wait(false);
      // Entries after the snapshot come next; older ones in the log are superseded
      // (recovery skips what the snapshot covers and applies later overwrites).
      last_index_ = w.install->index;
      last_term_ = w.install->term;
      continue;
    }
    // Encoded only: the round's records go out in one write(2) below.
    Status s = log_->append(w.hard_state ? &*w.hard_state : nullptr, w.entries, /*defer=*/true);
    if (!s) fail("write to the log in " + dir_, s);
    if (w.hard_state) hard_state_ = *w.hard_state;
    if (!w.entries.empty()) {
      last_index_ = w.entries.back().index;
      last_term_ = w.entries.back().term;
    }
    bytes += w.bytes;
    entries += w.entries.size();
  }
  if (Status s = log_->flush(); !s) fail("write to the log in " + dir_, s);
  const bool wrote = !round.empty();
  const auto write_end = wrote ? Clock::now() : write_start;
  dirty_ = dirty_ || wrote;

  uint64_t sync_us = 0;
  bool synced = false;
  Clock::time_point synced_at;
  const bool sync_due = durability_ == Durability::kAlways || stopping || write_end >= next_sync_;
  if (dirty_ && sync_due) {
    // The sync starts where the writes ended (nothing between): one clock read less.
    const auto t0 = wrote ? write_end : Clock::now();
#ifdef HMDB_PLANTED_BUG_LOOP_ROUND_SKIPS_SYNC
    Status s = on_loop ? Status{} : log_->sync();  // PLANTED BUG: the loop's round acks without the fdatasync
#else
    Status s = log_->sync();
#endif
    if (!s) fail("fdatasync of the log in " + dir_, s);
    const auto t1 = Clock::now();
    synced_at = t1;
    sync_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
    dirty_ = false;
    synced = true;
    next_sync_ = t1 + std::chrono::milliseconds(fsync_interval_ms_);
  }

  // `always`: the ack waits for the sync. `periodic`: write(2) returning is enough.
  const bool publish = wrote && (durability_ == Durability::kPeriodic || synced);
  HMDB_ASSERT(!wrote || publish || durability_ != Durability::kAlways, "always mode must ack every round");
  std::vector<raft::Message> to_send;
  bool wake_thread = false;
  {
    std::lock_guard lk(mu_);
    queued_bytes_ -= bytes;
    if (publish) {
      durable_seq_ = round_seq;
      ack_ = raft::PersistAck{last_index_, last_term_, hard_state_};
      ack_published_ = synced ? synced_at : write_end;
      ack_hold_ = 0;
      // The loop asked for this ack (wake_on_next_ack): it wakes whatever the Works said.
      if (std::exchange(wake_wanted_, false)) wake_loop = true;
      bool hold_next = false;
      if (hold_after && synced && !stopping) {
        hold_next = hold_policy_.hold_after_sync(sync_us);
        if (!hold_next) stats_.holds_skipped++;
      }
      if (hold_next) {
        // Hold the next round for the clients this one answers (disk_thread.h).
        const uint64_t hold_us =
            hold_bounds_.capped_by_sync ? std::min(hold_bounds_.max_us, sync_us) : hold_bounds_.max_us;
        hold_span_ = std::chrono::microseconds(hold_us);
        hold_ = ack_hold_ = ++holds_begun_;
        hold_sent_ = false;
        hold_unsent_end_ = synced_at + std::chrono::microseconds(hold_bounds_.unsent_max_us);
        stats_.holds++;
      }
    }
    if (wrote) {
      latency_.write_us.record(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::microseconds>(write_end - write_start).count()));
      latency_.group_entries.record(entries);
      stats_.rounds++;
      stats_.appends += round.size();
      stats_.bytes += bytes;
      stats_.preallocated_bytes = log_->preallocated_bytes_total();
      stats_.preallocate_failures = log_->preallocate_failures();
    }
    while (!outgoing_.empty() && outgoing_.front().after <= durable_seq_) {
      std::vector<raft::Message>& m = outgoing_.front().messages;
      stats_.messages_sent += m.size();
      if (to_send.empty()) to_send = std::move(m);
      else std::move(m.begin(), m.end(), std::back_inserter(to_send));
      outgoing_.pop_front();
    }
    if (on_loop) {
      // The loop takes the ack at its next turn (ack_unseen), no eventfd. A hold this round
      // began has a deadline only the thread keeps (it sleeps without one): wake it, as for
      // anything else left for it.
      stats_.loop_rounds++;
      if (publish) ack_unseen_.store(true, std::memory_order_relaxed);
      wake_loop = false;
      wake_thread = hold_ != 0 || urgent_ > 0 || stopping_ || compact_index_.has_value() || !outgoing_.empty();
    } else if (publish && !wake_loop) {
      stats_.quiet_acks++;
      ack_unseen_.store(true, std::memory_order_relaxed);
    }
    // The log is free for the next round, the loop's or the thread's (after the compaction below).
    round_running_ = compact.has_value();
    if (synced) {
      stats_.syncs++;
      stats_.last_sync_us = sync_us;
      latency_.sync_us.record(sync_us);
      if (sync_us > stats_.max_sync_us) stats_.max_sync_us = sync_us;
    }
  }
  // The acknowledgements first (they promise only what is durable now), then the loop.
  if (!to_send.empty()) sender_(std::move(to_send));
  if (publish && wake_loop) {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd_, &one, sizeof one);
    HMDB_ASSERT(n == sizeof one || errno == EAGAIN, "eventfd write: %s", std::strerror(errno));
  }
  if (wake_thread) cv_.notify_one();

  if (compact) {
    // Segments wholly covered by the durable snapshot go (older snapshot files were
    // removed by the snapshot child); compact() syncs first, and a failed sync there is
    // as fatal as anywhere else.
    auto t0 = Clock::now();
    const size_t segments_before = log_->segment_count();
    Status s = log_->compact(*compact);
    if (!s) fail("compaction of the log in " + dir_, s);
    const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    log_line("log: removed {} segments covered by the snapshot at index {} in {} ms",
             segments_before - log_->segment_count(), *compact, took_ms);
    std::lock_guard lk(mu_);
    round_running_ = false;
  }
}

}  // namespace hmdb::server
