// apps/kv/save_producer.h — kv::SaveCursor, kv's snapshot written by the event loop in
// slices (hmdb::SaveProducer) instead of by a fork()ed child: save()'s bytes of the state at
// the snapshot's index I while writes go on (issue 16 item 5; docs/decisions.md, "A snapshot
// without fork()").
//
// The bytes are Kv::save's: the key count at I, then each key's entry in the key table's
// canonical (XXH3(key), key bytes) order (key_table.h). The producer walks that order with a
// cursor (the last key it began). Copy before write: every path of kv.cc that changes a key
// (its value, its deadline, its existence) first calls a hook of the producer hooked on the
// State (State::saving; null when no snapshot runs, so a write pays one predictable branch).
// For a key still ahead of the cursor and not yet kept, the hook keeps what the key was at I
// in a side map ordered as the table: its entry's encoding (touch), the value itself when the
// key is being deleted or replaced (before_delete: moved, not copied), or "absent" for a key
// created after I. The cursor writes a key's kept version where there is one, else the live
// key (unchanged since I: any change would have been kept first). FLUSHALL hands the producer
// the whole old keyspace (O(1)): from then on it reads that frozen table and unhooks itself.
//
// Big containers (more than kSaveWholeElementsMax elements at I: hashes, sets, sorted sets
// and lists; ContainerSave below says how a type plugs in) go element by element, one level
// down the same way. The cursor becomes (key, inner position): next() writes such a key's header
// (key, tag, deadline, element count at I) and then its elements in save() order over as
// many slices as the budget needs. A first change to one ahead of the cursor keeps only its
// header (touch); each mutator of its elements keeps, first, the element it changes (the old
// value, or "absent") if it is ahead of the inner position (before_hash_field,
// before_set_member, before_zset_*, before_list); a delete or replace moves the Value to the
// producer (before_delete, O(1)), whose elements are then written from it merged with the kept ones.
// RENAME moves the Value to another key (before_move, O(1)): its element-level save stays
// under the key it had at I and follows it under the new name (follows_: live name -> that
// key), so writes there keep elements as before and next() reads it there. Never the whole
// container in one turn, except a big list whose LINSERTs and LREMs inside its unwritten runs
// split them past kListSaveSegmentsMax (the rest of it encoded then: list_save.h, flatten). Strings and small containers are
// kept and written whole.
//
// Costs: a write during a snapshot compares its key with the cursor; the first write to a
// key ahead of it encodes that key's value on the loop (its size in CPU, for a small one), or
// its header and the elements it changes (a big hash or set), and looks it up in the side map
// (a btree; an element in the container's own). Memory: the side map holds, at most, one
// entry per key changed or created ahead of the cursor and one per element changed ahead of
// a big container's inner position, so its worst case is the state again in encoded bytes
// (every key rewritten right after I) plus the keys and elements created meanwhile as
// markers; it is not bounded (a fork's copy-on-write is not either), only counted (INFO
// save_side_*). Destroying the producer (done or abandoned) unhooks it; values kept by a
// delete go to the graveyard (big ones) or are destroyed, and a frozen keyspace goes to the
// graveyard: the destructor's work is O(side map entries), never O(state).
//
// For the engine (hmdb::SaveProducer's contract, and): next() and every write run on the one
// thread that owns the state; the producer must be destroyed before the State is replaced
// or destroyed (load, clear, swap_state), as the contract says, since it points into it; a
// second begin_save while one runs returns null (the engine then forks). Budgets: elements
// are keys and a big container's elements (its header counts as one); a slice ends after the
// key or element that reaches either count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <span>
#include <string_view>
#include <utility>

#include <absl/container/btree_map.h>

#include "hmdb/state_machine.h"
#include "kv/kv.h"
#include "kv/list_save.h"
#include "kv/zset_save.h"

namespace hmdb::kv {

// The side map's bookkeeping per entry counted besides its key and encoding: the btree slot
// (a (hash, key) pair, a Kept of ~120 bytes) and node overhead. An estimate for INFO, not a
// bound. The same per kept element of a big container (kSideElementOverheadBytes).
inline constexpr size_t kSideEntryOverheadBytes = 160;
inline constexpr size_t kSideElementOverheadBytes = 64;

// A container with at most this many elements at I is kept (its first change ahead of the
// cursor) and written (next()) whole, as a string is: encoding 1,024 fields or members
// takes ~30-60 us, well inside a slice, and a small container needs no inner cursor. A
// bigger one is a "big container": kept and written element by element (ContainerSave).
// Tests lower it (SaveCursor::set_whole_elements_max) to put small containers on that path.
inline constexpr size_t kSaveWholeElementsMax = 1024;

// Counts what a slice wrote against its budget (elements: keys and a big container's
// elements; bytes: of out).
class SliceMeter {
 public:
  SliceMeter(const Encoder& out, const SliceBudget& budget) : out_(out), budget_(budget), last_(out.size()) {}
  // One element written (or one kept element skipped): true if the slice is spent. A sink
  // that flushed meanwhile (out.size() went down) has taken at least Encoder::kFlushBytes:
  // spent.
  bool add() noexcept {
    const size_t now = out_.size();
    bytes_ = now >= last_ ? bytes_ + (now - last_) : budget_.bytes;
    last_ = now;
    elements_++;
    return spent();
  }
  bool spent() const noexcept { return elements_ >= budget_.elements || bytes_ >= budget_.bytes; }
  // Bytes the slice may still write (for writing a flattened rest in pieces).
  size_t bytes_left() const noexcept { return bytes_ >= budget_.bytes ? 0 : budget_.bytes - bytes_; }

 private:
  const Encoder& out_;
  const SliceBudget& budget_;
  size_t last_;
  size_t elements_ = 0, bytes_ = 0;
};

// The save of one big container, element by element: the framework's per-type part. A
// container's entry is save()'s: its header (key, tag, deadline, element count at I; written
// by SaveCursor) then its elements in save() order at I, written by write_some over as many
// slices as the budget needs. Its elements at I are the container now (the key's live value,
// or the value itself once a delete or replace moved it to the producer) merged with the
// elements kept since I: a mutator about to change an element ahead of the inner position
// (or anywhere, before the first is written) keeps what it was at I (its old value, or
// "absent" for one created after I), once.
//
// A container type plugs in with:
//  1. a subclass holding its inner position (the last element written), an ahead() test,
//     a keep of one element about to change, and write_some (HashedSave below, for hashes
//     and sets: both are in (element hash, bytes) order, so the position is a hash position);
//  2. a case in make_container_save (save_producer.cc) for its Value alternative: a type
//     without one is kept and written whole whatever its size;
//  3. a hook on SaveCursor, before_<type>_<element>(h, key, live container, element...),
//     calling container_at(h, key) then the subclass's keep, and a call of that hook in
//     kv.cc before every mutator of the type's elements (after the key's own touch, which
//     live_write and container_for_create make).
// Deletes and replaces of the key need nothing per type: before_delete moves the Value here.
class ContainerSave {
 public:
  virtual ~ContainerSave() = default;
  // Writes the elements at I after the inner position (from the first, the first time):
  // `live` (the container now, of this type) merged with the kept ones, moving the position,
  // until `meter` says the slice is spent. True once the last element was written.
  virtual bool write_some(Encoder& out, const Value& live, SliceMeter& meter) = 0;
  // The bytes the kept elements hold (for INFO): keys, values, kSideElementOverheadBytes each.
  virtual size_t kept_bytes() const noexcept = 0;
  // For SaveCursor's checks of the state (a change that skipped its hook): the container's
  // type at I (write_some reads the live value as one), and the elements written so far
  // against the count at I (the header's: the two must be equal at the end).
  virtual Type type() const noexcept = 0;
  virtual uint64_t written() const noexcept = 0;
  virtual uint64_t count_at_i() const noexcept = 0;
};

// The hook's per-type side for hashes and sets (hash.h, set.h): both list their elements
// in (element hash, bytes) order from any hash position (for_each_from), so the inner
// position is the last (hash, bytes) written. Traits (save_producer.cc) say how an element
// hashes, what is kept of it (Old: a hash field's value, std::nullopt for absent; a set
// member's presence), and how it is written.
template <class Traits>
class HashedSave final : public ContainerSave {
 public:
  using Container = typename Traits::Container;
  using Old = typename Traits::Old;

  explicit HashedSave(uint64_t count_at_i) : count_(count_at_i) {}
  // True if element (eh, e) is not written yet.
  bool ahead(uint64_t eh, std::string_view e) const noexcept {
#ifndef HMDB_PLANTED_BUG_SAVE_INNER_AHEAD_AT_POSITION
    return !started_ || eh > pos_h_ || (eh == pos_h_ && e > std::string_view(pos_));
#else
    return !started_ || eh > pos_h_ || (eh == pos_h_ && e >= std::string_view(pos_));  // a planted bug
#endif
  }
  // Element (eh, e) of `live` is about to change: keeps what it is now, if ahead and not kept.
  void keep(const Container& live, uint64_t eh, std::string_view e) {
    if (!ahead(eh, e)) return;
    if (keeps_.find(std::pair<uint64_t, std::string_view>(eh, e)) != keeps_.end()) return;
    Old old = Traits::old_of(live, e);
    bytes_ += e.size() + Traits::old_bytes(old) + kSideElementOverheadBytes;
    keeps_.emplace(std::pair<uint64_t, std::string>(eh, std::string(e)), std::move(old));
  }
  bool write_some(Encoder& out, const Value& live, SliceMeter& meter) override;
  size_t kept_bytes() const noexcept override { return bytes_; }
  Type type() const noexcept override { return Traits::kType; }
  uint64_t written() const noexcept override { return written_; }
  uint64_t count_at_i() const noexcept override { return count_; }

 private:
  const uint64_t count_;
  uint64_t written_ = 0;
  bool started_ = false;  // an element was written: pos_h_, pos_ are the last one
  uint64_t pos_h_ = 0;
  std::string pos_;
  // The kept elements, all ahead of the position (erased as written), and their bytes.
  absl::btree_map<std::pair<uint64_t, std::string>, Old, ExpiryLess> keeps_;
  size_t bytes_ = 0;
};

struct HashSaveTraits;
struct SetSaveTraits;
using HashSave = HashedSave<HashSaveTraits>;
using SetSave = HashedSave<SetSaveTraits>;

// The same for a big sorted set (kv::ZSetSave, zset_save.h): saved in (score, member) order,
// so the inner position is the last (score, member) written and a score change touches two
// places (its old one kept "present", its new one "absent", where ahead).
class ZSave final : public ContainerSave {
 public:
  explicit ZSave(uint64_t count_at_i) : z_(count_at_i) {}
  ZSetSave& places() noexcept { return z_; }
  bool write_some(Encoder& out, const Value& live, SliceMeter& meter) override {
    return z_.write(std::get<std::unique_ptr<ZSet>>(live)->order, out, [&] { return meter.add(); });
  }
  size_t kept_bytes() const noexcept override { return z_.side_bytes(); }
  Type type() const noexcept override { return Type::kZSet; }
  uint64_t written() const noexcept override { return z_.written(); }
  uint64_t count_at_i() const noexcept override { return z_.count_at_i(); }

 private:
  ZSetSave z_;
};

// The same for a big list (kv::ListSave, list_save.h): saved head first, so the inner position
// is the count of elements of I written, and the unwritten ones are a few runs of the live
// list and queues of the bytes of those popped or removed from them, in index order.
class LSave final : public ContainerSave {
 public:
  LSave(uint64_t count_at_i, size_t segments_max) : l_(count_at_i, segments_max) {}
  ListSave& list() noexcept { return l_; }
  bool write_some(Encoder& out, const Value& live, SliceMeter& meter) override {
    return l_.write(std::get<List>(live), out, [&] { return meter.add(); });
  }
  size_t kept_bytes() const noexcept override { return l_.side_bytes(); }
  Type type() const noexcept override { return Type::kList; }
  uint64_t written() const noexcept override { return l_.written(); }
  uint64_t count_at_i() const noexcept override { return l_.count_at_i(); }

 private:
  ListSave l_;
};

// What next() throws once the producer found the state not as its hooks keep it (a write
// path that skipped its hook: a bug; SaveCursor::fail): what() says why, naming the key. The
// producer is unhooked and done; the bytes it wrote are not save()'s. The engine catches it
// (server/snapshot.cc), abandons the snapshot and serves on. Hooks never throw (they run
// inside a command's apply): a failure they find is thrown by the next next().
class SaveFailed : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class SaveCursor final : public SaveProducer {
 public:
  // Hooks itself on s (s.saving, which must be null: one producer at a time).
  explicit SaveCursor(State& s);
  ~SaveCursor() override;
  SaveCursor(const SaveCursor&) = delete;
  SaveCursor& operator=(const SaveCursor&) = delete;

  bool next(Encoder& out, const SliceBudget& budget) override;
  // Set once the state was found not as the hooks keep it (fail()): a key gone, a value of
  // another type, a count that does not add up. next() then throws SaveFailed (unhooked).
  const std::string& failure() const noexcept { return failure_; }

  // For tests: containers of more than n elements at I are big (kSaveWholeElementsMax).
  // REQUIRES: before the first next() and the first hook.
  void set_whole_elements_max(size_t n) noexcept { whole_max_ = n; }
  // For tests: big lists' segments are bounded by n (kListSaveSegmentsMax; list_save.h).
  // REQUIRES: before the first next() and the first hook.
  void set_list_segments_max(size_t n) noexcept { list_segments_max_ = n; }

  // ---- hooks, called by kv.cc while s.saving == this, before the change ------------------
  // Key (hash h) is about to change or be created: keeps what it is now (its encoding, with
  // its deadline, or "absent"; a big container's header only) if it is ahead of the cursor
  // and not kept yet.
  void touch(uint64_t h, std::string_view key) {
    if (ahead(h, key)) keep(h, key);
  }
  // Key (hash h, value v, still in the table with its deadline) is about to be deleted or
  // replaced: moves v here (v is left an empty string) if the key is ahead and not kept yet,
  // or if it is a big container kept element by element (ahead, or at the cursor and being
  // written) whose value is still the key's.
  void before_delete(uint64_t h, std::string_view key, Value& v) {
    if (watched(h, key)) keep_deleted(h, key, v);
  }
  // Key's value is about to move to key `to` (RENAME's source; to's old value, if any, was
  // replaced first: before_delete) and live on there: a big container followed element by
  // element is followed there from now on (O(1): nothing is encoded).
  void before_move(uint64_t h, std::string_view key, std::string_view to) {
    if (watched(h, key)) move(h, key, to);
  }
  // Field of hash `live` (key h, key) is about to be set or deleted.
  void before_hash_field(uint64_t h, std::string_view key, const Hash& live, std::string_view field) {
    if (watched(h, key)) hash_field(h, key, live, field);
  }
  // Member m of set `live` (key h, key) is about to be added or removed.
  void before_set_member(uint64_t h, std::string_view key, const Set& live, uint64_t mh, std::string_view m) {
    if (watched(h, key)) set_member(h, key, live, mh, m);
  }
  // Sorted set `key` (hash h): entry (score, m) is about to leave it (ZREM, a pop, a range
  // removal); member m is about to arrive at (score, m); m's score is about to change from
  // `from` to `to` (not equal).
  void before_zset_erase(uint64_t h, std::string_view key, double score, std::string_view m) {
    if (watched(h, key)) zset_place(h, key, ZChange::kErase, score, score, m);
  }
  void before_zset_insert(uint64_t h, std::string_view key, double score, std::string_view m) {
    if (watched(h, key)) zset_place(h, key, ZChange::kInsert, score, score, m);
  }
  void before_zset_move(uint64_t h, std::string_view key, double from, double to, std::string_view m) {
    if (watched(h, key)) zset_place(h, key, ZChange::kMove, from, to, m);
  }
  // List `key` (hash h, value v, a List) is about to change (ListChange says how; n: the
  // elements pushed at its head or removed from an end, or the index replaced or inserted
  // before). An insert inside the unwritten runs splits one (list_save.h); one that would
  // make more than kListSaveSegmentsMax segments encodes the rest of the list now.
  enum class ListChange : uint8_t { kPushFront, kEraseFront, kEraseBack, kSet, kInsert, kRemove };
  void before_list(uint64_t h, std::string_view key, const Value& v, ListChange c, size_t n) {
    if (watched(h, key)) list_change(h, key, v, c, n, {});
  }
  // The elements of list `key` at positions `at` (ascending) are about to be removed (LREM):
  // those of the unwritten runs are kept where they were (list_save.h); removals that would
  // split the runs past kListSaveSegmentsMax segments encode the rest of the list now.
  void before_list_remove(uint64_t h, std::string_view key, const Value& v, std::span<const size_t> at) {
    if (watched(h, key)) list_change(h, key, v, ListChange::kRemove, 0, at);
  }
  // FLUSHALL: takes the whole keyspace (the three are left empty) and unhooks itself.
  void flushed(KeyTable<Value>& keys, KeyTable<uint64_t>& expires, ExpiryOrder& order);

  // For INFO and tests: entries of the side map, those holding a moved value, and the bytes
  // counted (keys, encodings, kept elements, kSideEntryOverheadBytes each).
  size_t side_entries() const noexcept { return side_.size(); }
  size_t side_held() const noexcept { return held_; }
  size_t side_bytes() const noexcept { return side_bytes_; }
  // The most side_bytes() reached during this snapshot.
  size_t side_bytes_peak() const noexcept { return side_bytes_peak_; }
  // For tests: big containers kept or being written element by element so far.
  size_t containers_sliced() const noexcept { return containers_sliced_; }
  // For tests: places of big sorted sets kept (zset_save.h) so far.
  size_t zset_places_kept() const noexcept { return zset_places_kept_; }
  // For tests: elements of big lists kept (list_save.h) so far, and big lists encoded whole
  // from where they were (an LINSERT or LREM past kListSaveSegmentsMax segments).
  size_t list_elements_kept() const noexcept { return list_elements_kept_; }
  size_t lists_flattened() const noexcept { return lists_flattened_; }
  // For tests: LINSERTs and LREMs that split the unwritten runs of a big list so far.
  size_t lists_split() const noexcept { return lists_split_; }

 private:
  // What a key was at I.
  struct Kept {
    enum class Kind : uint8_t { kAbsent, kEncoded, kHeld, kContainer };
    Kind kind = Kind::kAbsent;
    // kEncoded: its whole entry, as save() writes it; kContainer: its header (key, tag,
    // deadline, element count at I), then save writes its elements.
    std::string encoded;
    Value held;                        // kHeld, or kContainer once moved: the value
    std::optional<uint64_t> deadline;  // kHeld: its deadline
    bool moved = false;                // kContainer: held is the container (not the live key's)
    // kContainer: RENAME moved the container away from this entry's key; it lives (unless
    // moved) under live_name, which follows_ maps back here. Its own key is not it any more.
    bool renamed = false;
    std::string live_name;
    std::unique_ptr<ContainerSave> save;  // kContainer
    size_t counted = 0;                // the bytes side_bytes_ counts for it
  };
  using SideKey = std::pair<uint64_t, std::string>;
  using Side = absl::btree_map<SideKey, Kept, ExpiryLess>;

  // True if (h, key) comes after the last key begun (every key before the first is).
  bool ahead(uint64_t h, std::string_view key) const noexcept {
    if (!has_cursor_) return !done_;
    return h > cur_h_ || (h == cur_h_ && key > std::string_view(cur_key_));
  }
  // True if (h, key) is the big container being written (the cursor is inside it).
  bool at_container(uint64_t h, std::string_view key) const noexcept {
    return in_container_ && h == cur_h_ && key == std::string_view(cur_key_);
  }
  // True if a hook on (h, key) may matter: ahead, at the cursor, or a name a big container
  // lives under after a RENAME (follows_, empty but for those: one branch).
  bool watched(uint64_t h, std::string_view key) const noexcept {
    return ahead(h, key) || at_container(h, key) || (!follows_.empty() && follows_.contains(key));
  }
  // The Kept of the big container followed element by element (not moved) that is the live
  // value of key now (its own key's, or one RENAMEd to key), or null.
  Kept* live_container(uint64_t h, std::string_view key);
  // The Kept saved under key k: active_ if the cursor is inside it, else side_'s, or null.
  Kept* kept_at(const SideKey& k);
  // The element-level save of key (ahead or at the cursor) whose live value is a big
  // container kept element by element, or null; the Kept it belongs to in *owner.
  ContainerSave* container_at(uint64_t h, std::string_view key, Kept** owner);
  void keep(uint64_t h, std::string_view key);
  void keep_deleted(uint64_t h, std::string_view key, Value& v);
  void move(uint64_t h, std::string_view key, std::string_view to);
  // Encodes the rest of the big container e (the live value v of key) now: e is kEncoded from
  // then on (a list's change the inner cursor cannot follow: list_save.h).
  void flatten(Kept* e, std::string_view key, const Value& v);
  void hash_field(uint64_t h, std::string_view key, const Hash& live, std::string_view field);
  void set_member(uint64_t h, std::string_view key, const Set& live, uint64_t mh, std::string_view m);
  enum class ZChange : uint8_t { kErase, kInsert, kMove };
  void zset_place(uint64_t h, std::string_view key, ZChange c, double from, double to, std::string_view m);
  void list_change(uint64_t h, std::string_view key, const Value& v, ListChange c, size_t n,
                   std::span<const size_t> at);
  // side_bytes_ counts e as it is now (for its key of `key_bytes`).
  void recount(Kept& e, size_t key_bytes) noexcept;
  void uncount(Kept& e) noexcept;
  // Hands a kept value to the graveyard (a big one) or destroys it.
  void release(Kept& e);
  // Writes more of the container at the cursor (active_); true once it is all written.
  bool write_container(Encoder& out, SliceMeter& meter);
  // Begins writing key (h, key) element by element: active_ is e (its header written).
  void begin_container(uint64_t h, std::string_view key, Kept&& e);
  // The end: unhooked, the frozen keyspace buried, the side map released.
  void finish();
  // The state is not what the hooks keep (a change skipped its hook: a bug): gives up, as
  // finish(), with why (failure(); next() throws it). Callers return at once (the side map
  // is gone).
  void fail(std::string why);
  // Checks that the live value of the big container `key` followed element by element by c
  // is still of c's type (`now`; nullopt: the key is gone); fail()s and returns false if not.
  bool check_live(std::string_view key, const ContainerSave& c, std::optional<Type> now);

  State& s_;
  const uint64_t count_;  // the keys at I: the format's first varint
  size_t whole_max_ = kSaveWholeElementsMax;
  size_t list_segments_max_ = kListSaveSegmentsMax;
  bool started_ = false;     // the first call wrote the count
  bool done_ = false;        // everything written (or the producer given up): nothing ahead
  bool has_cursor_ = false;  // a key was begun: cur_h_, cur_key_ are the last one
  uint64_t cur_h_ = 0;
  std::string cur_key_;
  // The cursor is inside a big container (cur_key_'s): active_ is its kContainer (elements
  // from the live key's value, its live_name's if renamed, or from held once moved), or, once
  // flattened, kEncoded with the rest of its bytes from rest_at_ on.
  bool in_container_ = false;
  Kept active_;
  size_t rest_at_ = 0;
  Side side_;
  // Big containers RENAMEd away from their key, followed under their new name: live name ->
  // the key their Kept is under (in side_, or active_'s). At most one per kContainer.
  std::map<std::string, SideKey, std::less<>> follows_;  // few: a std::map
  size_t held_ = 0;
  size_t side_bytes_ = 0, side_bytes_peak_ = 0;
  size_t containers_sliced_ = 0;
  size_t zset_places_kept_ = 0;
  size_t list_elements_kept_ = 0, lists_flattened_ = 0, lists_split_ = 0;
  uint64_t keys_written_ = 0;  // entries written: count_ at the end (checked)
  std::string failure_;        // fail()'s why
  // After a FLUSHALL: the keyspace as it was then (frozen_ set), read instead of s_'s.
  bool frozen_ = false;
  KeyTable<Value> frozen_keys_;
  KeyTable<uint64_t> frozen_expires_;
  ExpiryOrder frozen_order_;
};

// Kv::begin_save: a SaveCursor hooked on s.
std::unique_ptr<SaveProducer> begin_save(State& s);

}  // namespace hmdb::kv
