// apps/kv/zset_save.h — kv::ZSetSave, a snapshot's inner cursor over one big sorted set:
// its entries as they were at the snapshot's index I, written over several slices while
// writes change the set between them (save_producer.h; issue 16 item 5, docs/decisions.md,
// "kv's snapshot in slices").
//
// save()'s bytes for a sorted set (kv.cc, encode_entry) are its count, then each entry's
// (bytes member, f64 score) in (score, member) order. The cursor is the last entry written
// (none before the first). Copy before write, one level down from the key's: a change to an
// entry that is still ahead of the cursor first records, in a side map ordered as the set,
// what that place held at I: "present" where an entry leaves (ZREM, a pop, a range removal,
// the old place of a member whose score changes), "absent" where one arrives (a new member,
// the new place of a moved member). So a score change that is ahead costs two side entries,
// one on each side of the cursor costs one. A place already in the side map is not
// recorded again: the side map holds what it was at I, and what happened since does not
// matter. Each slice merges the live entries after the cursor with the side map's: where
// the side map has the place, it decides (present: the entry is written; absent: skipped);
// elsewhere the live entry has not changed since I (a change would have been recorded).
//
// The key (score, member) is the whole entry, so "present" needs no value: the side map
// is a set of places with one bit. Its size is the entries changed ahead of the cursor
// (each counted in side_bytes(): member bytes plus kZSideEntryOverheadBytes), not bounded;
// a fork's copy on write is not either.
//
// What it does not do: find the set (the producer hands it the ZOrder each slice: the live
// one, or the one it took over when the key was deleted or replaced), know the key's
// header, or be called (kv.cc calls the three hooks before each change to a set that the
// producer follows). The count at I is kept for the key's header and for a check.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <absl/container/btree_map.h>

#include "hmdb/codec.h"
#include "kv/zorder.h"

namespace hmdb::kv {

// Bookkeeping per side entry counted besides its member: the btree slot (a double, a
// std::string and a bool) and node overhead. An estimate for INFO, not a bound.
inline constexpr size_t kZSideEntryOverheadBytes = 64;

class ZSetSave {
 public:
  // For a sorted set of count_at_i entries now (the snapshot's I).
  explicit ZSetSave(uint64_t count_at_i) : count_(count_at_i) {}

  uint64_t count_at_i() const noexcept { return count_; }
  // Entries written so far, and whether every one of them was.
  uint64_t written() const noexcept { return written_; }
  bool done() const noexcept { return done_; }

  // True if the place (s, m) comes after the last entry written (every place does before
  // the first; none once done).
  bool ahead(double s, std::string_view m) const noexcept {
    if (done_) return false;
    if (!started_) return true;
    return ZLess{}(ZEntryKey{cur_score_, cur_member_}, ZEntryKey{s, m});
  }

  // ---- hooks, before the change --------------------------------------------------------
  // Entry (s, m) is about to leave the set (or move away from (s, m)).
  void before_erase(double s, std::string_view m) {
    if (ahead(s, m)) keep(s, m, /*present=*/true);
  }
  // Member m, absent, is about to arrive at (s, m) (or move to it).
  void before_insert(double s, std::string_view m) {
    if (ahead(s, m)) keep(s, m, /*present=*/false);
  }
  // Member m's score is about to change from `from` to `to` (not equal: no change, no call).
  void before_move(double from, double to, std::string_view m) {
    before_erase(from, m);
    before_insert(to, m);
  }

  // Writes the entries at I after the cursor, (bytes member, f64 score) each, reading the
  // set `live` is now, calling spent() after each step (an entry written, or a place absent
  // at I passed over) until it returns true; true when the last entry is written.
  template <class Spent>
  bool write(const ZOrder& live, Encoder& out, Spent&& spent);
  // The same until `elements` steps were made or `bytes` bytes written (at least one step a
  // call). *bytes_out: the bytes written (a sink that flushed within the call: `bytes`).
  bool write(const ZOrder& live, Encoder& out, size_t elements, size_t bytes, size_t* bytes_out = nullptr) {
    size_t steps = 0, wrote = 0, last = out.size();
    const bool done = write(live, out, [&] {
      const size_t now = out.size();
      wrote = now >= last ? wrote + (now - last) : bytes;
      last = now;
      return ++steps >= elements || wrote >= bytes;
    });
    if (bytes_out) *bytes_out = wrote;
    return done;
  }

  // For INFO and tests: side entries, and the bytes counted for them.
  size_t side_entries() const noexcept { return side_.size(); }
  size_t side_bytes() const noexcept { return side_bytes_; }

 private:
  struct Place {
    double score;
    std::string member;
  };
  using Side = absl::btree_map<Place, bool, ZLess>;  // place -> present at I

  void keep(double s, std::string_view m, bool present) {
    auto [pos, added] = side_.try_emplace(Place{s, std::string(m)}, present);
    if (added) side_bytes_ += m.size() + kZSideEntryOverheadBytes;
  }

  const uint64_t count_;
  uint64_t written_ = 0;
  bool started_ = false;  // an entry was written: cur_score_, cur_member_ are the last one
  bool done_ = false;
  double cur_score_ = 0;
  std::string cur_member_;
  Side side_;
  size_t side_bytes_ = 0;
};

template <class Spent>
bool ZSetSave::write(const ZOrder& live, Encoder& out, Spent&& spent) {
  if (done_) return true;
  ZOrder::const_iterator it = started_ ? live.upper_bound(ZEntryKey{cur_score_, cur_member_}) : live.begin();
  // Every side entry is ahead of the cursor (recorded only when ahead, erased when passed).
  auto side = side_.begin();
  const ZEntry* last_live = nullptr;  // the last entry written, if it was a live one
  while (it != live.end() || side != side_.end()) {
    bool live_first = side == side_.end();
    bool same = false;
    if (!live_first && it != live.end()) {
      live_first = ZLess{}(*it, side->first);
      same = !live_first && !ZLess{}(side->first, *it);
    }
    if (live_first) {
      // Unchanged since I: a change would have been recorded first.
      out.bytes(it->member);
      out.f64(it->score);
      written_++;
      last_live = &*it;
      ++it;
    } else {
      if (side->second) {
        out.bytes(side->first.member);
        out.f64(side->first.score);
        written_++;
      }
      if (same) ++it;  // the live entry at that place is not what it held at I
      last_live = nullptr;
      cur_score_ = side->first.score;
      cur_member_ = side->first.member;
      started_ = true;
      side_bytes_ -= side->first.member.size() + kZSideEntryOverheadBytes;
      side = side_.erase(side);
    }
    if (spent()) break;
  }
  if (last_live) {
    cur_score_ = last_live->score;
    cur_member_.assign(last_live->member.data(), last_live->member.size());
    started_ = true;
  }
  if (it != live.end() || side != side_.end()) return false;
  done_ = true;  // written_ == count_at_i() unless a hook was skipped (tests check it)
  return true;
}

}  // namespace hmdb::kv
