// raft/raft_log.h — the consensus core's in-memory log: a snapshot point plus the entries
// after it. No I/O: what is durable is tracked by the core (raft.cc), not here.
//
// Invariants (asserted), with entry(k) the k-th entry after the snapshot (k from 0):
//   entry(k).index == snapshot_index_ + 1 + k      (contiguous after the snapshot)
//   entry(k).term  >= snapshot_term_, and terms never decrease along the log
//
// Storage: the entries restored at startup stay in the vector they came in (restore() is
// O(1) in moves: a replayed log of millions of entries is not moved entry by entry into
// another container), later appends go to a deque. Neither ever moves an entry that is
// still in the log: appending leaves every reference valid (Ready::committed_refs).
#pragma once

#include <deque>
#include <optional>
#include <vector>

#include "raft/types.h"

namespace hmdb::raft {

// Bytes an entry is charged for, beyond its payload, when batching appends and bounding
// uncommitted data (term + index + type + schema version + framing).
inline constexpr uint64_t kEntryOverheadBytes = 32;

inline uint64_t entry_bytes(const Entry& e) { return e.data.size() + kEntryOverheadBytes; }

class RaftLog {
 public:
  RaftLog() = default;
  // Starts from a snapshot point (0/0 for an empty log) and the durable entries after it.
  void restore(Index snapshot_index, Term snapshot_term, std::vector<Entry> entries);

  Index snapshot_index() const { return snapshot_index_; }
  Term snapshot_term() const { return snapshot_term_; }
  Index first_index() const { return snapshot_index_ + 1; }
  Index last_index() const { return snapshot_index_ + size(); }
  Term last_term() const { return size() == 0 ? snapshot_term_ : entry(size() - 1).term; }
  // Entries in the log (after the snapshot point), and their entry_bytes() summed: what the
  // log holds in memory (dropped entries not yet freed are not counted).
  size_t entries() const { return size(); }
  uint64_t bytes() const { return bytes_; }

  // Term of the entry at `index`; the snapshot's term at the snapshot index; nullopt if the
  // entry was compacted away or does not exist yet.
  std::optional<Term> term_at(Index index) const;
  bool matches(Index index, Term term) const {
    auto t = term_at(index);
    return t && *t == term;
  }
  // REQUIRES: first_index() <= index <= last_index().
  const Entry& at(Index index) const;

  // REQUIRES: e.index == last_index() + 1 and e.term >= last_term().
  void append(Entry e);
  // Drops every entry with index > index. REQUIRES: index >= snapshot_index().
  void truncate_after(Index index);
  // Drops entries up to `index` (now covered by a durable snapshot of term `term`).
  void compact_to(Index index, Term term);
  // Replaces the whole log by a snapshot point (follower installing a snapshot).
  void reset_to_snapshot(Index index, Term term);
  // PLANTED BUG only (Config::PlantedBugs::keep_log_suffix_on_snapshot_install): the
  // entries after `index` stay if their terms are not below `term`, although the log need
  // not hold the snapshot's last entry (index, term): they may belong to another history.
  void reset_to_snapshot_keeping_suffix(Index index, Term term);
  // Compaction and reset do not free the dropped entries: they move them here, and the
  // caller frees them a bounded number at a time. (Freeing a whole log of 600,000 entries,
  // 1 GiB of payloads, at once took one event-loop turn of 313 ms.) Returns how many are
  // left to free. It stops early once the payloads freed reach max_bytes; `before_free`, if
  // given, sees each payload just before it is freed (the server hands its pages back to
  // the kernel: raft.h, free_dropped_entries).
  size_t free_dropped(size_t max_entries, uint64_t max_bytes = UINT64_MAX,
                      void (*before_free)(std::string& payload) = nullptr);
  size_t dropped_count() const { return dropped_.size(); }

  // Fast backtracking (etcd's findConflictByTerm): the largest index j <= index whose term
  // is <= term, or the snapshot index if none is known. A follower and leader that share
  // no entry above j cannot match before j+1, so the leader can skip straight there.
  Index find_conflict_by_term(Index index, Term term) const;

  // Appends copies of entries [lo, hi] to out, stopping once max_bytes is reached (at least
  // one entry is copied if lo <= hi). Returns the number of bytes copied.
  uint64_t copy_range(Index lo, Index hi, uint64_t max_bytes, std::vector<Entry>* out) const;

 private:
  size_t restored_count() const { return restored_.size() - restored_head_; }
  // Moves the entries up to `index` to dropped_ and makes `index` the snapshot point.
  void drop_front_to(Index index);
  size_t size() const { return restored_count() + appended_.size(); }
  // The k-th entry after the snapshot. REQUIRES: k < size().
  const Entry& entry(size_t k) const {
    size_t r = restored_count();
    return k < r ? restored_[restored_head_ + k] : appended_[k - r];
  }

  Index snapshot_index_ = 0;
  Term snapshot_term_ = 0;
  uint64_t bytes_ = 0;  // entry_bytes() of every entry after the snapshot point
  // The entries after the snapshot are restored_[restored_head_..] then appended_[..].
  // restored_ never grows after restore() (so it never reallocates); compaction destroys
  // its front entries in place (restored_head_ moves on) and frees the vector once all of
  // it is compacted; truncation pops from the back of appended_, then of restored_.
  // appended_ is a deque: appending never moves an entry, so Ready::committed_refs
  // (pointers into this log) stay valid across proposals.
  std::vector<Entry> restored_;
  size_t restored_head_ = 0;
  std::deque<Entry> appended_;
  std::deque<Entry> dropped_;  // compacted or reset away, waiting for free_dropped()
};

}  // namespace hmdb::raft
