// apps/kv/save_producer.h — kv::SaveCursor, kv's snapshot written by the event loop in
// slices (hmdb::SaveProducer) instead of by a fork()ed child: save()'s bytes of the state at
// the snapshot's index I while writes go on (issue 16 item 5; docs/decisions.md, "A snapshot
// without fork()").
//
// The bytes are Kv::save's: the key count at I, then each key's entry in the key table's
// canonical (XXH3(key), key bytes) order (key_table.h). The producer walks that order with a
// cursor (the last key it wrote). Copy before write: every path of kv.cc that changes a key
// (its value, its deadline, its existence) first calls a hook of the producer hooked on the
// State (State::saving; null when no snapshot runs, so a write pays one predictable branch).
// For a key still ahead of the cursor and not yet kept, the hook keeps what the key was at I
// in a side map ordered as the table: its entry's encoding (touch), the value itself when the
// key is being deleted (before_delete: moved, not copied), or "absent" for a key created
// after I. The cursor writes a key's kept version where there is one, else the live key
// (unchanged since I: any change would have been kept first). FLUSHALL hands the producer
// the whole old keyspace (O(1)): from then on it reads that frozen table and unhooks itself.
//
// Costs: a write during a snapshot compares its key with the cursor; the first write to a
// key ahead of it encodes that key's value on the loop (its size in CPU: a big container is
// encoded whole; docs/decisions.md says what per-container cursors would take), and looks it
// up in the side map (a btree). Memory: the side map holds, at most, one entry per key
// changed or created ahead of the cursor, so its worst case is the state again in encoded
// bytes (every key rewritten right after I) plus the keys created meanwhile as markers; it is
// not bounded (a fork's copy-on-write is not either), only counted (INFO save_side_*).
// Destroying the producer (done or abandoned) unhooks it; values kept by a delete go to the
// graveyard (big ones) or are destroyed, and a frozen keyspace goes to the graveyard: the
// destructor's work is O(side map entries), never O(state).
//
// For the engine (hmdb::SaveProducer's contract, and): next() and every write run on the one
// thread that owns the state; the producer must be destroyed before the State is replaced
// or destroyed (load, clear, swap_state), as the contract says, since it points into it; a
// second begin_save while one runs returns null (the engine then forks). Budgets: elements
// are keys; a slice ends after the key that reaches either count (one key may be a big
// container: its whole entry).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <absl/container/btree_map.h>

#include "hmdb/state_machine.h"
#include "kv/kv.h"

namespace hmdb::kv {

// The side map's bookkeeping per entry counted besides its key and encoding: the btree slot
// (a (hash, key) pair, a Kept of ~88 bytes) and node overhead. An estimate for INFO, not a
// bound.
inline constexpr size_t kSideEntryOverheadBytes = 160;

class SaveCursor final : public SaveProducer {
 public:
  // Hooks itself on s (s.saving, which must be null: one producer at a time).
  explicit SaveCursor(State& s);
  ~SaveCursor() override;
  SaveCursor(const SaveCursor&) = delete;
  SaveCursor& operator=(const SaveCursor&) = delete;

  bool next(Encoder& out, const SliceBudget& budget) override;

  // ---- hooks, called by kv.cc while s.saving == this, before the change ------------------
  // Key (hash h) is about to change or be created: keeps what it is now (its encoding, with
  // its deadline, or "absent") if it is ahead of the cursor and not kept yet.
  void touch(uint64_t h, std::string_view key) {
    if (ahead(h, key)) keep(h, key);
  }
  // Key (hash h, value v, still in the table with its deadline) is about to be deleted:
  // moves v here (v is left an empty string) if the key is ahead and not kept yet.
  void before_delete(uint64_t h, std::string_view key, Value& v) {
    if (ahead(h, key)) keep_deleted(h, key, v);
  }
  // FLUSHALL: takes the whole keyspace (the three are left empty) and unhooks itself.
  void flushed(KeyTable<Value>& keys, KeyTable<uint64_t>& expires, ExpiryOrder& order);

  // For INFO and tests: entries of the side map, those holding a moved value, and the bytes
  // counted (keys, encodings, kSideEntryOverheadBytes each).
  size_t side_entries() const noexcept { return side_.size(); }
  size_t side_held() const noexcept { return held_; }
  size_t side_bytes() const noexcept { return side_bytes_; }
  // The most side_bytes() reached during this snapshot.
  size_t side_bytes_peak() const noexcept { return side_bytes_peak_; }

 private:
  // What a key was at I.
  struct Kept {
    enum class Kind : uint8_t { kAbsent, kEncoded, kHeld };
    Kind kind = Kind::kAbsent;
    std::string encoded;               // kEncoded: its whole entry, as save() writes it
    Value held;                        // kHeld: the value, moved out by a delete
    std::optional<uint64_t> deadline;  // kHeld: its deadline
  };
  using SideKey = std::pair<uint64_t, std::string>;
  using Side = absl::btree_map<SideKey, Kept, ExpiryLess>;

  // True if (h, key) comes after the last key written (every key before the first is).
  bool ahead(uint64_t h, std::string_view key) const noexcept {
    if (!has_cursor_) return !done_;
    return h > cur_h_ || (h == cur_h_ && key > std::string_view(cur_key_));
  }
  void keep(uint64_t h, std::string_view key);
  void keep_deleted(uint64_t h, std::string_view key, Value& v);
  void count(const SideKey& k, const Kept& e, bool add) noexcept;
  // Hands a kept value to the graveyard (a big one) or destroys it.
  void release(Kept& e);
  // The end: unhooked, the frozen keyspace buried, the side map released.
  void finish();

  State& s_;
  const uint64_t count_;  // the keys at I: the format's first varint
  bool started_ = false;     // the first call wrote the count
  bool done_ = false;        // everything written (or the producer given up): nothing ahead
  bool has_cursor_ = false;  // a key was written: cur_h_, cur_key_ are the last one
  uint64_t cur_h_ = 0;
  std::string cur_key_;
  Side side_;
  size_t held_ = 0;
  size_t side_bytes_ = 0, side_bytes_peak_ = 0;
  // After a FLUSHALL: the keyspace as it was then (frozen_ set), read instead of s_'s.
  bool frozen_ = false;
  KeyTable<Value> frozen_keys_;
  KeyTable<uint64_t> frozen_expires_;
  ExpiryOrder frozen_order_;
};

// Kv::begin_save: a SaveCursor hooked on s.
std::unique_ptr<SaveProducer> begin_save(State& s);

}  // namespace hmdb::kv
