// core/write_tracker.h — who waits for which proposed log entry: batch → entry → waiters.
//
// The shell proposes each turn's batch of client writes as one log entry and remembers, for
// the entry's (index, term), which client reply slot each of its commands fills. A tracked
// proposal ends in exactly one of three ways:
//
//   kApplied  its index is applied and the entry there has its term: it is ours, and the
//             apply fills its commands' replies;
//   kLost     its index is applied with an entry of another term: another leader's entry
//             is committed there, so ours never takes effect;
//   kUnknown  the core's log stopped holding it before it was applied — a new leader's
//             entries replaced it, or an installed snapshot replaced the whole log (a
//             snapshot that covers its index may contain it). Not "lost": in a cluster of
//             five, another node may still hold the entry, win an election and commit it.
//
// Invariant, kept by log_replaced() on every Ready that writes the log: every tracked index
// is in the core's log with the tracked term. So a node that leads again proposes at an
// index nobody waits on (a waiter left behind there made `track` abort before: issue 9), and
// a client whose write was truncated is answered at once instead of when the log regrows.
// The simulator drives this class and checks the invariant after every Ready.
//
// Pure bookkeeping: no I/O, no clock. Thread-safety: none (the loop thread).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <vector>

#include "raft/types.h"

namespace hmdb::core {

// Where a command's reply goes: a session and the sequence number of its reply slot.
// Session 0 is nobody (the app's housekeeping command; the reply is dropped).
struct ReplySlot {
  uint64_t session = 0;
  uint64_t seq = 0;
  bool operator==(const ReplySlot&) const = default;
};

enum class WriteOutcome : uint8_t { kApplied, kLost, kUnknown };

class WriteTracker {
 public:
  struct Proposal {
    raft::Term term = 0;
    uint64_t bytes = 0;            // payload size, for the in-flight bound
    std::vector<ReplySlot> slots;  // one per command of the entry, in order
  };
  // A proposal the core accepted at (index, term). `ended(index, Proposal&&, WriteOutcome)`
  // receives each proposal that ends without being applied. A proposal still tracked at that
  // index (or above) cannot be (see the invariant); should one be, it ends as kUnknown first.
  template <class Fn>
  void track(raft::Index index, raft::Term term, uint64_t bytes, std::vector<ReplySlot> slots, Fn&& ended) {
    while (!proposals_.empty() && proposals_.back().index >= index) {
      reused_++;
      end_back(WriteOutcome::kUnknown, ended);
    }
    bytes_ += bytes;
    proposals_.push_back(Tracked{index, Proposal{term, bytes, std::move(slots)}});
  }

  // The core's log as one Ready writes it: `snapshot_index` (if set) replaced the whole log
  // by a snapshot up to that index, then `entries` replaced everything from their first
  // index on (the core's log now ends at the last of them). Every proposal no longer in the
  // log ends as kUnknown through `ended`, in index order.
  template <class Fn>
  void log_replaced(std::optional<raft::Index> snapshot_index, std::span<const raft::Entry> entries, Fn&& ended) {
    if (snapshot_index) {
      while (!proposals_.empty()) end_front(WriteOutcome::kUnknown, ended);
    }
    if (entries.empty()) return;
    const raft::Index first = entries.front().index;
    const raft::Index last = entries.back().index;
    // The replaced ones are a suffix: past the first tracked index whose entry changed,
    // every later one changed too (two logs that agree on (index, term) agree before it).
    size_t keep = proposals_.size();
    for (size_t i = lower_bound(first); i < proposals_.size(); i++) {
      const Tracked& t = proposals_[i];
      if (t.index > last || entries[t.index - first].term != t.proposal.term) {
        keep = i;
        break;
      }
    }
    std::vector<Tracked> gone;
    while (proposals_.size() > keep) {
      gone.push_back(std::move(proposals_.back()));
      bytes_ -= gone.back().proposal.bytes;
      proposals_.pop_back();
    }
    for (auto it = gone.rbegin(); it != gone.rend(); ++it) ended(it->index, std::move(it->proposal), WriteOutcome::kUnknown);
  }

  // The entry (index, term) is being applied. Returns the proposal tracked there, no longer
  // tracked, with kApplied if the entry is ours or kLost if it is another leader's.
  // (Entries are applied in index order and proposals are tracked in index order: it is
  // the oldest tracked one, if any.)
  std::optional<std::pair<Proposal, WriteOutcome>> take_applied(raft::Index index, raft::Term term) {
    if (proposals_.empty() || proposals_.front().index != index) return std::nullopt;
    Tracked t = std::move(proposals_.front());
    proposals_.pop_front();
    bytes_ -= t.proposal.bytes;
    const WriteOutcome outcome = t.proposal.term == term ? WriteOutcome::kApplied : WriteOutcome::kLost;
    return std::pair<Proposal, WriteOutcome>{std::move(t.proposal), outcome};
  }

  const Proposal* find(raft::Index index) const {
    const size_t i = lower_bound(index);
    return i < proposals_.size() && proposals_[i].index == index ? &proposals_[i].proposal : nullptr;
  }
  size_t size() const { return proposals_.size(); }
  bool empty() const { return proposals_.empty(); }
  uint64_t bytes() const { return bytes_; }
  // Proposals found at an index that was proposed again (0 while the invariant holds).
  uint64_t reused() const { return reused_; }
  // For checks and introspection: (index, term) of each tracked proposal, in index order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const Tracked& t : proposals_) fn(t.index, t.proposal);
  }

 private:
  struct Tracked {
    raft::Index index = 0;
    Proposal proposal;
  };
  size_t lower_bound(raft::Index index) const {
    size_t lo = 0, hi = proposals_.size();
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      if (proposals_[mid].index < index) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  template <class Fn>
  void end_front(WriteOutcome outcome, Fn& ended) {
    Tracked t = std::move(proposals_.front());
    proposals_.pop_front();
    bytes_ -= t.proposal.bytes;
    ended(t.index, std::move(t.proposal), outcome);
  }
  template <class Fn>
  void end_back(WriteOutcome outcome, Fn& ended) {
    Tracked t = std::move(proposals_.back());
    proposals_.pop_back();
    bytes_ -= t.proposal.bytes;
    ended(t.index, std::move(t.proposal), outcome);
  }

  std::deque<Tracked> proposals_;  // in increasing index order
  uint64_t bytes_ = 0;
  uint64_t reused_ = 0;
};

}  // namespace hmdb::core
