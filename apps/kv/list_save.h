// apps/kv/list_save.h — kv::ListSave, a snapshot's inner cursor over one big list: its
// elements as they were at the snapshot's index I, written over several slices while
// writes change the list between them (save_producer.h; issue 16 item 5, docs/decisions.md,
// "kv's snapshot in slices").
//
// save()'s bytes for a list (kv.cc, encode_entry) are its length, then each element's bytes,
// head first. The inner position is w, the count of elements of I written (indexes of I
// below w are written). The unwritten ones, indexes [w, n) of I, are a short sequence of
// segments in index order, each either
//   - a run: indexes [i, i + len) of I still in the list, one after the other at live
//     positions [at, at + len) (stored less a shared offset, so that a push at the head moves
//     every run in O(1)); runs are in the list's order as in I's, none overlapping; or
//   - a queue: the bytes at I of elements [i, i + len) of I no longer in the list (a List).
// It starts as one run, the whole list. Everything around the runs is written already or
// created since I, and does not matter. So:
//   - a push at the head moves every run (the offset += n); one at the tail changes nothing;
//   - a pop at the head takes either nothing of a run (the offset -= 1) or the first element
//     of the first run at the head: kept at the back of the queue before it (made if there
//     is none), the run one shorter; a pop at the tail the same way, the last element of the
//     last run kept at the front of the queue after it. LTRIM is both. A run emptied goes,
//     its queues on either side join (the smaller moved into the larger);
//   - LSET of an element in a run keeps its old bytes by its index of I, once (a map; a kept
//     one removed later goes to a queue from the map, not from the list);
//   - LINSERT before a run moves it and those after, after all of them changes nothing, and
//     strictly inside one splits it in two with the new element (not in I) between them;
//   - LREM (before_remove, with the positions it removes, ascending) keeps each removed
//     element of a run in a queue where it was, splitting the run around it (consecutive
//     removals in one queue), and moves the runs after back by the removals before them;
//     runs that become adjacent in the list again join.
// LINSERT costs O(segments), LREM O(segments + elements it removes), each removed element
// of a run copied once; pushes O(1), pops O(elements popped + queues passed). Splits are
// bounded: an insert or LREM that could make more than kListSaveSegmentsMax segments ends
// the following instead (before_insert/before_remove return false, nothing changed) and the
// producer encodes the rest then (ListSave::write with no budget, O(n): ~100 ms of CPU
// at 1 M elements, bench/README.md) and follows the list no more. Pops add at most two
// segments past the bound (the queues at the ends).
// write() writes index w from the first segment: a queue's front, or the live list at the
// run's position (walking chunks with a List::Cursor from there, not indexing each; an
// LSET-kept element from the map).
//
// Memory: one kept element per element of I removed or LSET while ahead of the position:
// the queues are Lists themselves (packed, ~2 bytes over the element), the map ~64 bytes
// an entry, a segment ~kListSaveSegmentBytes. Counted in side_bytes(), not bounded (a fork's
// copy on write is not either).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <absl/container/btree_map.h>

#include "hmdb/codec.h"
#include "kv/list.h"

namespace hmdb::kv {

// Bookkeeping per LSET-kept element counted besides its bytes: the btree slot (an index and
// a std::string) and node overhead. An estimate for INFO, not a bound.
inline constexpr size_t kListSetKeptOverheadBytes = 64;

// The most segments (runs and queues) an LINSERT or LREM inside the runs may leave; past it
// the rest of the list is encoded at once (O(n)) and followed no more. Each costs a List
// header and four words (~100 bytes), and an LINSERT or an LSET walks up to all of them (a
// few ns each, not measured alone): 1,024 keep that walk to a few µs and the segments to
// ~100 KiB, while an LREM may split the runs at up to ~500 scattered places.
inline constexpr size_t kListSaveSegmentsMax = 1024;

// A segment's bytes counted in side_bytes() besides its elements (an estimate for INFO),
// past the first kListSaveSegmentsOwn (a run and the queues at both ends: ListSave's own,
// as before there were more).
inline constexpr size_t kListSaveSegmentBytes = 96;
inline constexpr size_t kListSaveSegmentsOwn = 3;

// An LREM's hook reads each removed element of a run from the list: from the last one read
// with a cursor walk when the next is at most this many elements on (an element's walk is a
// few ns), else with a fresh cursor (a walk over the list's chunks from its nearer end).
inline constexpr size_t kListSaveCursorWalkMax = 256;

class ListSave {
 public:
  // For a list of count_at_i elements now (the snapshot's I).
  // segments_max: kListSaveSegmentsMax but in tests (of the fallback).
  explicit ListSave(uint64_t count_at_i, size_t segments_max = kListSaveSegmentsMax)
      : n_(count_at_i), segments_max_(segments_max) {
    if (n_ > 0) {
      segs_.push_back(Seg{0, n_, 0, true, {}});
      runs_ = 1;
    }
  }

  uint64_t count_at_i() const noexcept { return n_; }
  uint64_t written() const noexcept { return w_; }
  bool done() const noexcept { return w_ == n_; }
  // True while unwritten elements of I are still in the list (some run is left).
  bool following() const noexcept { return runs_ > 0; }
  // For tests and benchmarks: runs and segments (runs and queues) now.
  size_t runs() const noexcept { return runs_; }
  size_t segments() const noexcept { return segs_.size(); }

  // ---- hooks, before the change, with the list `live` as it is then -----------------------
  // n elements are about to be pushed at the head.
  void before_push_front(size_t n) noexcept {
#ifndef HMDB_PLANTED_BUG_SAVE_LIST_PUSH_FRONT_NOT_COUNTED
    base_ += n;
#else
    (void)n;  // a planted bug: the runs' live positions do not move with a push at the head
#endif
  }
  // The first n (the last n) elements of live are about to go. REQUIRES: n <= live.size().
  void before_erase_front(const List& live, size_t n);
  void before_erase_back(const List& live, size_t n);
  // Element j of live is about to be replaced.
  void before_set(const List& live, size_t j) {
    for (const Seg& s : segs_) {
      if (!s.run) continue;
      const size_t p = pos(s);
      if (j < p) return;
      if (j - p >= s.len) continue;
      const uint64_t i = s.i + (j - p);
      if (set_.find(i) != set_.end()) return;  // kept already: its bytes at I
      std::string old(live[j]);
      bytes_ += old.size() + kListSetKeptOverheadBytes;
      set_.emplace(i, std::move(old));
      kept_++;
      return;
    }
  }
  // An element is about to be inserted before element p of live (p == size(): at the end).
  // False if that would split a run past kListSaveSegmentsMax segments (nothing changed):
  // the caller then writes the rest now and stops following.
  bool before_insert(size_t p);
  // The elements of live at positions `at` (ascending, distinct) are about to be removed
  // (LREM). False if that could split the runs past kListSaveSegmentsMax segments (nothing
  // changed): the caller then writes the rest now and stops following.
  bool before_remove(const List& live, std::span<const size_t> at);

  // Writes the elements of I from w on, bytes each, reading `live` (the list now), calling
  // spent() after each until it returns true; true once the last one is written.
  template <class Spent>
  bool write(const List& live, Encoder& out, Spent&& spent);

  // For INFO and tests: elements kept (queued or LSET-kept) now, and their bytes with the
  // segments'; elements kept so far in all.
  size_t side_entries() const noexcept { return queued_ + set_.size(); }
  size_t side_bytes() const noexcept {
    return bytes_ + (segs_.size() > kListSaveSegmentsOwn ? segs_.size() - kListSaveSegmentsOwn : 0) * kListSaveSegmentBytes;
  }
  size_t kept_total() const noexcept { return kept_; }

 private:
  struct Seg {
    uint64_t i;    // the index of I of its first element
    uint64_t len;  // its elements (a queue's: q.size())
    size_t at;     // a run's: the live position of element i, less base_ (modulo 2^64)
    bool run;      // a run of the live list, or a queue of kept bytes (q)
    List q;
  };
  size_t pos(const Seg& s) const noexcept { return s.at + base_; }
  // Element i of I (in a run, at live bytes live_bytes) leaves the list: its bytes at I.
  std::string_view at_i(uint64_t i, std::string_view live_bytes, std::string* from_map) {
    auto it = set_.find(i);
    if (it == set_.end()) return live_bytes;
    *from_map = std::move(it->second);
    bytes_ -= from_map->size() + kListSetKeptOverheadBytes;
    set_.erase(it);
    return *from_map;
  }
  // Queues v at q's front or back.
  void keep(Seg& q, bool front, std::string_view v) {
    if (front) q.q.push_front(v); else q.q.push_back(v);
    q.len++;
    bytes_ += List::encoded_size(v.size());
    kept_++;
    queued_++;
  }
  // A new segment at segs_[k].
  void add_seg(size_t k, Seg&& s) {
    segs_.insert(segs_.begin() + static_cast<std::ptrdiff_t>(k), std::move(s));
  }
  void drop_seg(size_t k) {
    segs_.erase(segs_.begin() + static_cast<std::ptrdiff_t>(k));
  }
  // Queue b (the one right after a in index order) joins queue a: the smaller moves.
  static void join(Seg& a, Seg&& b) {
    if (a.len >= b.len) {
      b.q.for_each([&](std::string_view v) { a.q.push_back(v); });
    } else {
      if (a.len > 0) {
        List::Cursor c = a.q.cursor(a.len - 1);
        for (uint64_t x = 0; x < a.len; x++) {
          if (x > 0) c.prev();
          b.q.push_front(*c);
        }
      }
      a.q = std::move(b.q);
    }
    a.len += b.len;
  }
  // Joins segs_[k] and segs_[k + 1] if both are queues.
  void join_at(size_t k) {
    if (k + 1 >= segs_.size() || segs_[k].run || segs_[k + 1].run) return;
    join(segs_[k], std::move(segs_[k + 1]));
    drop_seg(k + 1);
  }

  const uint64_t n_;
  const size_t segments_max_;
  uint64_t w_ = 0;            // elements of I written; segs_.front().i == w_ until done
  std::vector<Seg> segs_;     // the unwritten elements of I, in index order
  size_t runs_ = 0;           // the runs among them
  size_t base_ = 0;           // added to a run's at: its live position
  absl::btree_map<uint64_t, std::string> set_;  // index of I -> bytes at I, LSET in a run
  size_t queued_ = 0;         // elements in the queues
  bool broken_ = false;       // a run found past the list's end (a skipped hook)
  size_t bytes_ = 0;
  size_t kept_ = 0;
};

inline void ListSave::before_erase_front(const List& live, size_t n) {
  for (size_t k = 0; k < segs_.size() && runs_ > 0; k++) {
    if (!segs_[k].run) continue;
    const size_t p = pos(segs_[k]);
    if (p >= n) break;  // this run and those after it stay
    // Its first c elements (at live positions [p, p + c)) leave: kept, in order, at the back
    // of the queue before it.
    const uint64_t c = std::min<uint64_t>(n - p, segs_[k].len);
    if (k == 0 || segs_[k - 1].run) {
      const uint64_t i = segs_[k].i;
      add_seg(k++, Seg{i, 0, 0, false, {}});
    }
    Seg& q = segs_[k - 1];
    Seg& r = segs_[k];
    List::Cursor cur = live.cursor(p);
    for (uint64_t x = 0; x < c; x++) {
      if (x > 0) cur.next();
      std::string m;
      keep(q, false, at_i(r.i + x, *cur, &m));
    }
    r.i += c;
    r.len -= c;
    r.at += c;
    if (r.len == 0) {
      drop_seg(k);
      runs_--;
      join_at(--k);
    }
  }
  base_ -= n;
}

inline void ListSave::before_erase_back(const List& live, size_t n) {
  if (broken_) return;
  const size_t cut = live.size() - n;  // positions from cut on go
  for (size_t k = segs_.size(); k-- > 0 && runs_ > 0;) {
    if (!segs_[k].run) continue;
    const size_t p = pos(segs_[k]), end = p + segs_[k].len;
    if (end <= cut) break;  // this run and those before it stay
    if (end > live.size()) {
      // The run no longer fits the list: a hook was skipped (a bug; tests plant it). Nothing
      // more is read; write() then stops short (the snapshot's count does not match).
      broken_ = true;
      return;
    }
    // Its last c elements leave: kept, last first, each at the front of the queue after it.
    const uint64_t c = end - std::max(p, cut);
    if (k + 1 == segs_.size() || segs_[k + 1].run) add_seg(k + 1, Seg{0, 0, 0, false, {}});
    Seg& r = segs_[k];
    Seg& q = segs_[k + 1];
    List::Cursor cur = live.cursor(end - 1);
    for (uint64_t x = 0; x < c; x++) {
      if (x > 0) cur.prev();
      std::string m;
      keep(q, true, at_i(r.i + r.len - 1 - x, *cur, &m));
    }
    r.len -= c;
    q.i = r.i + r.len;
    if (r.len == 0) {
      drop_seg(k);
      runs_--;
      if (k > 0) join_at(k - 1);
    }
  }
}

inline bool ListSave::before_insert(size_t p) {
  for (size_t k = 0; k < segs_.size(); k++) {
    Seg& s = segs_[k];
    if (!s.run) continue;
    const size_t q = pos(s);
    if (p > q && p - q >= s.len) continue;  // after this run
    size_t from = k;                          // the runs from here on move one on
    if (p > q) {
      // Strictly inside: the run splits, the new element between its halves.
      if (segs_.size() >= segments_max_) return false;
      const uint64_t d = p - q;
      Seg b{s.i + d, s.len - d, s.at + d, true, {}};
      s.len = d;
      add_seg(k + 1, std::move(b));
      runs_++;
#ifndef HMDB_PLANTED_BUG_SAVE_LIST_INSERT_NOT_SPLIT
      from = k + 1;
#else
      from = k + 2;  // a planted bug: the second half does not move past the new element
#endif
    }
    for (size_t x = from; x < segs_.size(); x++) {
      if (segs_[x].run) segs_[x].at++;
    }
    return true;
  }
  return true;
}

inline bool ListSave::before_remove(const List& live, std::span<const size_t> at) {
  if (runs_ == 0 || at.empty()) return true;
  // An upper bound of the segments it leaves: each stretch of consecutive removals inside a
  // run adds at most a queue and the run's rest.
  size_t extra = 0;
  {
    size_t r = 0;
    for (const Seg& s : segs_) {
      if (!s.run) continue;
      const size_t p = pos(s);
      while (r < at.size() && at[r] < p) r++;
      for (size_t next = SIZE_MAX; r < at.size() && at[r] - p < s.len; r++) {
        if (at[r] != next) extra += 2;  // a new stretch
        next = at[r] + 1;
      }
    }
  }
  if (segs_.size() + extra > segments_max_) return false;
  std::vector<Seg> out;
  out.reserve(segs_.size() + extra);
  size_t r = 0, gone = 0;  // gone: positions removed before the one looked at
  List::Cursor cur;
  size_t cpos = SIZE_MAX;  // cur's position, if any
  auto read = [&](size_t p) {
    if (cpos != SIZE_MAX && p >= cpos && p - cpos <= kListSaveCursorWalkMax) {
      for (; cpos < p; cpos++) cur.next();
    } else {
      cur = live.cursor(p);
      cpos = p;
    }
    return *cur;
  };
  auto add_run = [&](uint64_t i, uint64_t len, size_t new_pos) {
    if (!out.empty() && out.back().run && pos(out.back()) + out.back().len == new_pos) {
      out.back().len += len;  // adjacent again in the list: one run
      return;
    }
    out.push_back(Seg{i, len, new_pos - base_, true, {}});
  };
  for (Seg& s : segs_) {
    if (!s.run) {
      if (!out.empty() && !out.back().run) join(out.back(), std::move(s));
      else out.push_back(std::move(s));
      continue;
    }
    const size_t p = pos(s);
    for (; r < at.size() && at[r] < p; r++) gone++;
    uint64_t off = 0;  // the run's elements before off are placed
    for (; r < at.size() && at[r] - p < s.len; r++) {
      const uint64_t d = at[r] - p;
#ifndef HMDB_PLANTED_BUG_SAVE_LIST_REMOVE_NOT_SHIFTED
      if (d > off) add_run(s.i + off, d - off, p + off - gone);
#else
      if (d > off) add_run(s.i + off, d - off, p + off);  // a planted bug: not moved back
#endif
      if (out.empty() || out.back().run) out.push_back(Seg{s.i + d, 0, 0, false, {}});
      std::string m;
      keep(out.back(), false, at_i(s.i + d, read(at[r]), &m));
      off = d + 1;
      gone++;
    }
    if (off < s.len) add_run(s.i + off, s.len - off, p + off - gone);
  }
  segs_ = std::move(out);
  runs_ = 0;
  for (const Seg& s : segs_) runs_ += s.run ? 1 : 0;
  return true;
}

template <class Spent>
bool ListSave::write(const List& live, Encoder& out, Spent&& spent) {
  List::Cursor c;
  bool positioned = false;  // c is at the first run's first element
  if (broken_) {  // as below: the rest not written
    w_ = n_;
    return true;
  }
  while (w_ < n_) {
    Seg& s = segs_.front();
    if (!s.run) {
      out.bytes(s.q.front());
      bytes_ -= List::encoded_size(s.q.front().size());
      s.q.pop_front();
      queued_--;
    } else {
      if (!positioned) {
        if (pos(s) + s.len > live.size()) {
          // The run no longer fits the list: a hook was skipped (a bug; tests plant it). The
          // rest is not written, so the snapshot's count does not match and its load fails,
          // rather than this reading past the list.
          w_ = n_;
          return true;
        }
        c = live.cursor(pos(s));
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
      s.at++;
    }
    s.i++;
    s.len--;
    w_++;
    if (s.len == 0) {
      if (s.run) runs_--;
      drop_seg(0);
      positioned = false;
    } else if (s.run) {
      c.next();
    }
    if (spent()) break;
  }
  return w_ == n_;
}

}  // namespace hmdb::kv
