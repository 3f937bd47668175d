// raft/raft_log.cc — the in-memory log of the consensus core (see raft_log.h).
#include "raft/raft_log.h"

#include "common/assert.h"

namespace hmdb::raft {

void RaftLog::restore(Index snapshot_index, Term snapshot_term, std::vector<Entry> entries) {
  snapshot_index_ = snapshot_index;
  snapshot_term_ = snapshot_term;
  appended_.clear();
  // The same checks append() makes, without moving the entries anywhere.
  Index expect = snapshot_index + 1;
  Term prev_term = snapshot_term;
  bytes_ = 0;
  for (const Entry& e : entries) {
    bytes_ += entry_bytes(e);
    HMDB_ASSERT(e.index == expect,
                "restoring entry at index %llu after index %llu: the log must stay contiguous",
                (unsigned long long)e.index, (unsigned long long)(expect - 1));
    HMDB_ASSERT(e.term >= prev_term,
                "restoring entry of term %llu after an entry of term %llu: terms never go back",
                (unsigned long long)e.term, (unsigned long long)prev_term);
    expect++;
    prev_term = e.term;
  }
  restored_ = std::move(entries);
  restored_head_ = 0;
}

std::optional<Term> RaftLog::term_at(Index index) const {
  if (index == snapshot_index_) return snapshot_term_;
  if (index < snapshot_index_ || index > last_index()) return std::nullopt;
  return entry(index - snapshot_index_ - 1).term;
}

const Entry& RaftLog::at(Index index) const {
  HMDB_ASSERT(index > snapshot_index_ && index <= last_index(),
              "log entry %llu requested, but the log holds (%llu, %llu]: was it compacted?",
              (unsigned long long)index, (unsigned long long)snapshot_index_,
              (unsigned long long)last_index());
  return entry(index - snapshot_index_ - 1);
}

void RaftLog::append(Entry e) {
  HMDB_ASSERT(e.index == last_index() + 1,
              "appending entry at index %llu after last index %llu: the log must stay contiguous",
              (unsigned long long)e.index, (unsigned long long)last_index());
  HMDB_ASSERT(e.term >= last_term(),
              "appending entry of term %llu after an entry of term %llu: terms never go back",
              (unsigned long long)e.term, (unsigned long long)last_term());
  bytes_ += entry_bytes(e);
  appended_.push_back(std::move(e));
}

void RaftLog::truncate_after(Index index) {
  HMDB_ASSERT(index >= snapshot_index_,
              "truncating the log after %llu, below the snapshot at %llu: snapshots are committed",
              (unsigned long long)index, (unsigned long long)snapshot_index_);
  while (last_index() > index && !appended_.empty()) {
    bytes_ -= entry_bytes(appended_.back());
    appended_.pop_back();
  }
  while (last_index() > index) {
    bytes_ -= entry_bytes(restored_.back());
    restored_.pop_back();  // never reallocates
  }
}

void RaftLog::compact_to(Index index, Term term) {
  if (index <= snapshot_index_) return;
  HMDB_ASSERT(index <= last_index(), "compacting to %llu beyond the last index %llu",
              (unsigned long long)index, (unsigned long long)last_index());
  HMDB_ASSERT(at(index).term == term,
              "snapshot at index %llu claims term %llu but the log has term %llu there",
              (unsigned long long)index, (unsigned long long)term,
              (unsigned long long)at(index).term);
  drop_front_to(index);
  snapshot_term_ = term;
}

void RaftLog::drop_front_to(Index index) {
  while (snapshot_index_ < index) {
    if (restored_count() > 0) {
      // The payload moves to dropped_; the slot itself goes with the vector.
      bytes_ -= entry_bytes(restored_[restored_head_]);
      dropped_.push_back(std::move(restored_[restored_head_]));
      restored_head_++;
      if (restored_count() == 0) {
        restored_ = std::vector<Entry>();
        restored_head_ = 0;
      }
    } else {
      bytes_ -= entry_bytes(appended_.front());
      dropped_.push_back(std::move(appended_.front()));
      appended_.pop_front();
    }
    snapshot_index_++;
  }
}

void RaftLog::reset_to_snapshot(Index index, Term term) {
  for (size_t i = restored_head_; i < restored_.size(); i++) dropped_.push_back(std::move(restored_[i]));
  restored_ = std::vector<Entry>();
  restored_head_ = 0;
  for (Entry& e : appended_) dropped_.push_back(std::move(e));
  appended_.clear();
  bytes_ = 0;
  snapshot_index_ = index;
  snapshot_term_ = term;
}

void RaftLog::reset_to_snapshot_keeping_suffix(Index index, Term term) {
  if (index < snapshot_index_ || index >= last_index() || at(index + 1).term < term) {
    reset_to_snapshot(index, term);
    return;
  }
  drop_front_to(index);
  snapshot_term_ = term;  // whatever the log had at `index`: that is the bug
}

size_t RaftLog::free_dropped(size_t max_entries, uint64_t max_bytes, void (*before_free)(std::string& payload)) {
  // Called every loop turn: nothing to do is the common case, and a fresh std::deque
  // allocates, so it is made only when the last dropped entries were just freed.
  if (dropped_.empty()) return 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < max_entries && bytes < max_bytes && !dropped_.empty(); i++) {
    bytes += dropped_.front().data.capacity();
    if (before_free) before_free(dropped_.front().data);
    dropped_.pop_front();
  }
  if (dropped_.empty()) std::deque<Entry>().swap(dropped_);  // and the deque's own blocks
  return dropped_.size();
}

Index RaftLog::find_conflict_by_term(Index index, Term term) const {
  if (index > last_index()) index = last_index();
  // Below the snapshot the terms are unknown: no refinement possible.
  if (index < snapshot_index_) return index;
  while (index > snapshot_index_) {
    if (entry(index - snapshot_index_ - 1).term <= term) return index;
    index--;
  }
  // The match point is below the snapshot if the snapshot's term is already too new.
  return snapshot_term_ <= term || snapshot_index_ == 0 ? snapshot_index_ : snapshot_index_ - 1;
}

uint64_t RaftLog::copy_range(Index lo, Index hi, uint64_t max_bytes,
                             std::vector<Entry>* out) const {
  uint64_t bytes = 0;
  for (Index i = lo; i <= hi; i++) {
    const Entry& e = at(i);
    uint64_t b = entry_bytes(e);
    if (i > lo && bytes + b > max_bytes) break;
    out->push_back(e);
    bytes += b;
  }
  return bytes;
}

}  // namespace hmdb::raft
