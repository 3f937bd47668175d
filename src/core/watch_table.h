// core/watch_table.h — what WATCH needs to decide an EXEC: for each key-hash bucket, the
// last log index whose entry changes a key hashing there.
//
// Only the leader decides a WATCH, when the EXEC's transaction joins a batch (the EXEC's
// entry E is then the next index the leader proposes, or a later one): the transaction
// runs only if no entry in (w, E) changed a watched key, where w is the applied index when
// the WATCH ran. Every such entry is in the leader's log by then, and if E commits, the
// entries before it are exactly those (log matching), so the decision made at batching is
// the one that holds wherever E is applied: the entry carries no watch at all, and
// followers apply the group as it is.
//
// The leader learns of the changes of each entry before it is even proposed (while sessions
// use WATCH: kWatchTrackingIdleMs; an entry proposed otherwise counts as changing every key): a write's
// keys come from the app's key spec (hmdb/state_machine.h, KeySpec) when it is batched
// (pending until its batch has an index), and a write that reports more (kv's expiry
// sweep, FLUSHALL) counts as "any key" while it is in flight, then reports exactly what it
// changed when applied (ApplyContext::key_changed). Entries of earlier leaders are not
// parsed: the table starts empty when this node becomes leader, and nothing is known below
// that point (the horizon), so a WATCH older than it fails its EXEC.
//
// Conservative by construction, never the other way: a bucket holds many keys (a change to
// any fails a WATCH of all: with kWatchBuckets buckets and T distinct keys changed between
// WATCH and EXEC, a one-key WATCH fails spuriously with probability about T / kWatchBuckets),
// a write that names a key but leaves it alone counts, and a leader change fails every
// WATCH taken before it. A spurious failure is an EXEC answered with a null array, which
// clients handle by retrying (the reason WATCH exists).
//
// Pure bookkeeping: no I/O. Thread-safety: none (the loop thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <string_view>
#include <vector>

#include <xxhash.h>

#include "hmdb/state_machine.h"
#include "raft/types.h"

namespace hmdb::core {

// Buckets of the table: 64 Ki x 8 bytes = 512 KiB, allocated when the node first leads.
inline constexpr size_t kWatchBuckets = 1u << 16;
// The leader records each write's keys only while sessions use WATCH: from a WATCH until
// this long after the last one. Otherwise a write costs nothing here (hashing its keys was
// 2-3 % of a SET's instructions), and an entry proposed untracked counts as a change to
// every key: the first WATCH after a quiet spell may fail its EXEC once or twice, while
// writes proposed before it are still in flight.
inline constexpr uint64_t kWatchTrackingIdleMs = 60'000;

class WatchTable final : public KeyChanges {
 public:
  static uint32_t bucket(std::string_view key) {
    return static_cast<uint32_t>(XXH3_64bits(key.data(), key.size()) & (kWatchBuckets - 1));
  }

  // This node became leader; `horizon` is the last index it did not write itself (its
  // first entry of the term is horizon + 1). A WATCH taken at an applied index below the
  // horizon fails: changes of earlier entries were not tracked.
  void start(raft::Index horizon) {
    last_change_.assign(kWatchBuckets, 0);
    all_changed_ = 0;
    horizon_ = horizon;
    pending_.clear();
    pending_more_ = false;
    refused_.clear();
    refused_more_ = false;
    in_flight_more_.clear();
    active_ = true;
    tracking_ = false;
    untracked_through_ = 0;
    pending_untracked_ = refused_untracked_ = false;
  }
  // This node no longer leads: nothing is tracked until start().
  void stop() {
    active_ = false;
    tracking_ = false;
    pending_.clear();
    refused_.clear();
    in_flight_more_.clear();
  }
  bool active() const { return active_; }

  // A session WATCHes (monotonic ms): record writes' keys from now on.
  void watching(uint64_t now_ms) {
    if (!active_) return;
    tracking_ = true;
    last_watch_ms_ = now_ms;
  }
  // Stop recording once nobody WATCHed for kWatchTrackingIdleMs (called per proposal).
  void idle_check(uint64_t now_ms) {
    if (tracking_ && now_ms - last_watch_ms_ >= kWatchTrackingIdleMs) tracking_ = false;
  }

  // A write joins the batch being built: its keys (by its key spec) change at the batch's
  // index, not yet known.
  void batched(Args argv, const KeySpec& keys) {
    if (!tracking_) {
      pending_untracked_ = true;  // a change to any key, once its batch has an index
      return;
    }
    keys.for_each(argv, [this](std::string_view key) {
      const uint32_t b = bucket(key);
      last_change_[b] = kPending;
      pending_.push_back(b);
    });
    pending_more_ |= keys.reports_more;
  }
  // The batch was proposed at `index`: the batch being built, or (`refused_batch`) the one
  // the core refused earlier, proposed again before it.
  void proposed(raft::Index index, bool refused_batch) {
    if (!active_) return;
    bool& untracked = refused_batch ? refused_untracked_ : pending_untracked_;
    if (untracked) untracked_through_ = std::max<raft::Index>(untracked_through_, index);
    untracked = false;
    if (!refused_batch) {
      settle(pending_, pending_more_, index, true);
      return;
    }
    settle(refused_, refused_more_, index, true);
    for (uint32_t b : pending_) last_change_[b] = kPending;  // the batch being built changes them again
  }
  // The batch was refused (the core is busy) and will be proposed again later, while the
  // next batch is built: its changes stay pending (they fail every WATCH) until then.
  void refused() {
    if (!active_) return;
    refused_.insert(refused_.end(), pending_.begin(), pending_.end());
    refused_more_ |= pending_more_;
    refused_untracked_ |= pending_untracked_;
    pending_.clear();
    pending_more_ = false;
    pending_untracked_ = false;
  }
  // The batch was answered without being proposed (no longer leader, a transfer under
  // way): its keys did not change; dating them at `last_index` (the log's end) keeps them
  // from staying pending, and errs on the safe side.
  void dropped(raft::Index last_index, bool refused_batch) {
    if (!active_) return;
    (refused_batch ? refused_untracked_ : pending_untracked_) = false;
    if (!refused_batch) {
      settle(pending_, pending_more_, last_index, false);
      return;
    }
    settle(refused_, refused_more_, last_index, false);
    for (uint32_t b : pending_) last_change_[b] = kPending;
  }
  // Applying the entry at `index`: what its commands report (KeyChanges) is dated there.
  void applying(raft::Index index) {
    applying_ = index;
    while (!in_flight_more_.empty() && *in_flight_more_.begin() <= index) in_flight_more_.erase(in_flight_more_.begin());
  }
  void changed(std::string_view key) override {
    if (!active_) return;
    uint64_t& at = last_change_[bucket(key)];
    at = std::max<uint64_t>(at, applying_);
  }
  void all_changed() override {
    if (!active_) return;
    all_changed_ = std::max<uint64_t>(all_changed_, applying_);
  }

  // True if `key` may have changed after the applied index `since` (conservative).
  bool changed_since(std::string_view key, raft::Index since) const {
    if (!active_ || since < horizon_ || all_changed_ > since || untracked_through_ > since || pending_untracked_ ||
        refused_untracked_ || !in_flight_more_.empty() || pending_more_ || refused_more_)
      return true;
    return last_change_[bucket(key)] > since;
  }

  raft::Index horizon() const { return horizon_; }

 private:
  static constexpr uint64_t kPending = std::numeric_limits<uint64_t>::max();

  void settle(std::vector<uint32_t>& buckets, bool& more, raft::Index index, bool in_flight) {
    for (uint32_t b : buckets)
      if (last_change_[b] == kPending) last_change_[b] = index;
    buckets.clear();
    if (more && in_flight) in_flight_more_.insert(index);
    more = false;
  }

  bool active_ = false;
  bool tracking_ = false;        // recording writes' keys (a WATCH in the last kWatchTrackingIdleMs)
  uint64_t last_watch_ms_ = 0;
  raft::Index untracked_through_ = 0;  // the last entry proposed with a write not recorded
  bool pending_untracked_ = false;     // the batch being built holds such a write
  bool refused_untracked_ = false;     // the refused batch does
  std::vector<uint64_t> last_change_;  // per bucket: index of the last change, kPending if batched
  uint64_t all_changed_ = 0;           // index of the last entry that changed every key
  raft::Index horizon_ = 0;
  raft::Index applying_ = 0;
  std::vector<uint32_t> pending_;  // buckets changed by the batch being built
  bool pending_more_ = false;      // ... which holds a write that reports more when applied
  std::vector<uint32_t> refused_;  // buckets changed by the refused batch
  bool refused_more_ = false;
  std::set<raft::Index> in_flight_more_;  // proposed entries holding a write that reports more
};

}  // namespace hmdb::core
