// apps/kv/list_save.h — kv::ListSave, a snapshot's inner cursor over one big list: its
// elements as they were at the snapshot's index I, written over several slices while
// writes change the list between them (save_producer.h; issue 16 item 5, docs/decisions.md,
// "kv's snapshot in slices").
//
// save()'s bytes for a list (kv.cc, encode_entry) are its length, then each element's bytes,
// head first. The inner position is w, the count of elements of I written (indexes of I
// below w are written). A list changes at its ends (pushes, pops, LTRIM) and, rarely, in the
// middle (LSET, LINSERT, LREM). As long as only its ends change, the elements of I not yet
// written that are still in the list are one contiguous run of it: indexes [lo, hi) of I,
// at live positions [at, at + hi - lo). Everything around the run is either written already
// or created since I, and does not matter. So:
//   - a push at the head moves the run (at += n); one at the tail changes nothing;
//   - a pop at the head takes either something before the run (at -= 1) or, when the run
//     starts the list (at == 0), the element of I at lo: kept (its bytes) at the back of the
//     front queue, lo += 1. A pop at the tail the same way: the element of I at hi - 1 when
//     the run ends the list, kept at the front of the back queue, hi -= 1. LTRIM is both.
//     The front queue holds exactly indexes [w, lo) of I, the back queue [max(w, hi), n):
//     both in index order, written from their front;
//   - LSET of an element in the run keeps its old bytes by its index of I, once (a map; a
//     kept one popped later goes to a queue from the map, not from the list);
//   - LINSERT before the run moves it (at += 1), after it changes nothing, inside it ends
//     the following (insert() returns false); LREM anywhere while a run is left ends it too
//     (reshape()). The producer then encodes the rest (ListSave::write with no budget) and
//     follows the list no more: both commands are O(n) scans already.
// write() writes index w from the front queue if w < lo, else from the map or the live list
// at at (walking chunks with a List::Cursor from there, not indexing each), else from the
// back queue.
//
// Memory: one kept element per element of I removed or LSET while ahead of the position:
// the queues are Lists themselves (packed, ~2 bytes over the element), the map ~64 bytes
// an entry. Counted in side_bytes(), not bounded (a fork's copy on write is not either).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <absl/container/btree_map.h>

#include "hmdb/codec.h"
#include "kv/list.h"

namespace hmdb::kv {

// Bookkeeping per LSET-kept element counted besides its bytes: the btree slot (an index and
// a std::string) and node overhead. An estimate for INFO, not a bound.
inline constexpr size_t kListSetKeptOverheadBytes = 64;

class ListSave {
 public:
  // For a list of count_at_i elements now (the snapshot's I).
  explicit ListSave(uint64_t count_at_i) : n_(count_at_i), hi_(count_at_i) {}

  uint64_t count_at_i() const noexcept { return n_; }
  uint64_t written() const noexcept { return w_; }
  bool done() const noexcept { return w_ == n_; }
  // True while the unwritten elements of I still in the list are followed (until an
  // insert() or reshape() inside the run).
  bool following() const noexcept { return lo_ < hi_; }

  // ---- hooks, before the change, with the list `live` as it is then -----------------------
  // n elements are about to be pushed at the head.
  void before_push_front(size_t n) noexcept {
#ifndef HMDB_PLANTED_BUG_SAVE_LIST_PUSH_FRONT_NOT_COUNTED
    at_ += n;
#else
    (void)n;  // a planted bug: the run's live position does not move with a push at the head
#endif
  }
  // The first n (the last n) elements of live are about to go. REQUIRES: n <= live.size().
  void before_erase_front(const List& live, size_t n);
  void before_erase_back(const List& live, size_t n);
  // Element j of live is about to be replaced.
  void before_set(const List& live, size_t j) {
    if (!in_run(j)) return;
    const uint64_t i = lo_ + (j - at_);
    if (set_.find(i) != set_.end()) return;  // kept already: its bytes at I
    std::string old(live[j]);
    bytes_ += old.size() + kListSetKeptOverheadBytes;
    set_.emplace(i, std::move(old));
    kept_++;
  }
  // An element is about to be inserted before element p of live (p == size(): at the end).
  // False if p is inside the run: the caller then writes the rest now and stops following.
  bool before_insert(size_t p) noexcept {
    if (!following() || p >= at_ + (hi_ - lo_)) return true;
    if (p <= at_) {
      at_++;
      return true;
    }
    return false;
  }
  // Elements anywhere are about to be removed (LREM): false if the run is still followed (the
  // caller then writes the rest now and stops following).
  bool before_reshape() const noexcept { return !following(); }

  // Writes the elements of I from w on, bytes each, reading `live` (the list now), calling
  // spent() after each until it returns true; true once the last one is written.
  template <class Spent>
  bool write(const List& live, Encoder& out, Spent&& spent);

  // For INFO and tests: elements kept (queued or LSET-kept) now, and their bytes; elements
  // kept so far in all.
  size_t side_entries() const noexcept { return front_.size() + back_.size() + set_.size(); }
  size_t side_bytes() const noexcept { return bytes_; }
  size_t kept_total() const noexcept { return kept_; }

 private:
  bool in_run(size_t j) const noexcept { return following() && j >= at_ && j - at_ < hi_ - lo_; }
  // Element i of I (in the run, at live position j) leaves the list: its bytes at I.
  std::string_view at_i(uint64_t i, std::string_view live_bytes, std::string* from_map) {
    auto it = set_.find(i);
    if (it == set_.end()) return live_bytes;
    *from_map = std::move(it->second);
    bytes_ -= from_map->size() + kListSetKeptOverheadBytes;
    set_.erase(it);
    return *from_map;
  }
  void queue(List& q, bool front, std::string_view v) {
    if (front) q.push_front(v); else q.push_back(v);
    bytes_ += List::encoded_size(v.size());
    kept_++;
  }

  const uint64_t n_;
  uint64_t w_ = 0;        // elements of I written
  uint64_t lo_ = 0, hi_;  // the run: unwritten elements of I still in the list, lo_ >= w_
  size_t at_ = 0;         // the live position of element lo_ of I (while following())
  List front_;            // elements [w_, lo_) of I, popped from the head
  List back_;             // elements [max(w_, hi_), n_) of I, popped from the tail
  absl::btree_map<uint64_t, std::string> set_;  // index of I -> bytes at I, LSET in the run
  size_t bytes_ = 0;
  size_t kept_ = 0;
};

inline void ListSave::before_erase_front(const List& live, size_t n) {
  if (!following()) return;
  if (at_ >= n) {
    at_ -= n;
    return;
  }
  // Positions [at_, min(n, at_ + run)) are elements lo_.. of I: kept in order.
  const size_t k = std::min<size_t>(n - at_, hi_ - lo_);
  List::Cursor c = live.cursor(at_);
  for (size_t x = 0; x < k; x++) {
    if (x > 0) c.next();
    std::string m;
    queue(front_, false, at_i(lo_ + x, *c, &m));
  }
  lo_ += k;
  at_ = 0;
}

inline void ListSave::before_erase_back(const List& live, size_t n) {
  if (!following()) return;
  const size_t size = live.size(), end = at_ + (hi_ - lo_);  // the run ends before end
  if (end <= size - n) return;
  // Positions [max(at_, size - n), end) are elements ..hi_ - 1 of I: kept, last first, each
  // at the back queue's front.
  const size_t from = std::max(at_, size - n), k = end - from;
  List::Cursor c = live.cursor(end - 1);
  for (size_t x = 0; x < k; x++) {
    if (x > 0) c.prev();
    std::string m;
    queue(back_, true, at_i(hi_ - 1 - x, *c, &m));
  }
  hi_ -= k;
}

template <class Spent>
bool ListSave::write(const List& live, Encoder& out, Spent&& spent) {
  List::Cursor c;
  bool positioned = false;  // c is at live position at_ (element lo_ of I)
  while (w_ < n_) {
    if (w_ < lo_) {
      out.bytes(front_.front());
      bytes_ -= List::encoded_size(front_.front().size());
      front_.pop_front();
    } else if (w_ < hi_) {
      // w_ == lo_: the run's first element, live unless LSET kept it.
      if (!positioned) {
        if (at_ + (hi_ - lo_) > live.size()) {
          // The run no longer fits the list: a hook was skipped (a bug; tests plant it). The
          // rest is not written, so the snapshot's count does not match and its load fails,
          // rather than this reading past the list.
          w_ = n_;
          return true;
        }
        c = live.cursor(at_);
        positioned = true;
      }
      auto it = set_.begin();
      if (it != set_.end() && it->first == w_) {
        out.bytes(it->second);
        bytes_ -= it->second.size() + kListSetKeptOverheadBytes;
        set_.erase(it);
      } else {
        out.bytes(*c);
      }
      lo_++;
      at_++;
      if (lo_ < hi_) c.next();
    } else {
      out.bytes(back_.front());
      bytes_ -= List::encoded_size(back_.front().size());
      back_.pop_front();
    }
    w_++;
    if (lo_ < w_) lo_ = w_;  // written from a queue: the run (empty, or after) starts on
    if (spent()) break;
  }
  return w_ == n_;
}

}  // namespace hmdb::kv
