// apps/kv/save_producer.cc — kv::SaveCursor (save_producer.h): kv's snapshot written in
// slices by the event loop, copy before write.
#include "kv/save_producer.h"

#include <cassert>

namespace hmdb::kv {
namespace {

std::optional<uint64_t> deadline_in(const KeyTable<uint64_t>& expires, std::string_view key) {
  if (expires.empty()) return std::nullopt;
  auto it = expires.find(key);
  if (it == expires.end()) return std::nullopt;
  return it->second;
}

// (h1, k1) < (h2, k2) in the key table's order.
bool before(uint64_t h1, std::string_view k1, uint64_t h2, std::string_view k2) {
  return h1 < h2 || (h1 == h2 && k1 < k2);
}

// The checks of the state (SaveCursor::fail): on, except under a planted bug that the
// tests build to see them fail without (kv_save_test, StateNotAsTheHooksKeepItAbandons).
#ifndef HMDB_PLANTED_BUG_SAVE_NO_STATE_CHECK
constexpr bool kCheckState = true;
#else
constexpr bool kCheckState = false;  // a planted bug: next() reads a value of another type
#endif

// A key as failure() names it: at most this many bytes, non-printable ones as \xNN (a key
// is any bytes; the engine writes the reason into its log).
constexpr size_t kFailureKeyBytesMax = 64;
std::string printable(std::string_view key) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < key.size() && i < kFailureKeyBytesMax; i++) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c >= 32 && c < 127 && c != '\\' && c != '\'') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  out += key.size() > kFailureKeyBytesMax ? "'..." : "'";
  return out;
}

const char* type_name(Type t) {
  switch (t) {
    case Type::kString: return "string";
    case Type::kHash: return "hash";
    case Type::kList: return "list";
    case Type::kSet: return "set";
    case Type::kZSet: return "sorted set";
  }
  return "?";
}

}  // namespace

// ---- hashes and sets, element by element ---------------------------------------------------

struct HashSaveTraits {
  static constexpr Type kType = Type::kHash;
  using Container = Hash;
  using Old = std::optional<std::string>;  // the field's value at I, or absent
  static const Hash& of(const Value& v) { return std::get<Hash>(v); }
  static Old old_of(const Hash& live, std::string_view field) {
    const std::string* v = live.find(field);
    return v ? Old(*v) : std::nullopt;
  }
  static size_t old_bytes(const Old& o) { return o ? o->size() : 0; }
  // Writes the kept element; false if it was absent at I.
  static bool put_old(Encoder& out, std::string_view field, const Old& o) {
    if (!o) return false;
    out.bytes(field);
    out.bytes(*o);
    return true;
  }
  // fn(hash, element, put) for each element of live from hash position h on, until fn
  // returns false; put(out) writes the element.
  template <class Fn>
  static void for_each_from(const Hash& live, uint64_t h, Fn&& fn) {
    live.for_each_from(h, [&](uint64_t fh, std::string_view f, const std::string& v) {
      return fn(fh, f, [&](Encoder& out) {
        out.bytes(f);
        out.bytes(v);
      });
    });
  }
};

struct SetSaveTraits {
  static constexpr Type kType = Type::kSet;
  using Container = Set;
  using Old = bool;  // a member at I
  static const Set& of(const Value& v) { return std::get<Set>(v); }
  static Old old_of(const Set& live, std::string_view m) { return live.contains(SetMemberKey{SetMemberHasher::hash(m), m}); }
  static size_t old_bytes(const Old&) { return 0; }
  static bool put_old(Encoder& out, std::string_view m, const Old& o) {
    if (!o) return false;
    out.bytes(m);
    return true;
  }
  template <class Fn>
  static void for_each_from(const Set& live, uint64_t h, Fn&& fn) {
    live.for_each_from(h, [&](uint64_t mh, std::string_view m) { return fn(mh, m, [&](Encoder& out) { out.bytes(m); }); });
  }
};

template <class Traits>
bool HashedSave<Traits>::write_some(Encoder& out, const Value& v, SliceMeter& meter) {
  const Container& live = Traits::of(v);
  auto k = keeps_.begin();
  bool spent = false;
  // A kept element first: its version at I (nothing if absent then); the live one of the same
  // element, if any, is skipped (it changed since I).
  auto write_kept = [&] {
    if (Traits::put_old(out, k->first.second, k->second)) written_++;
    pos_h_ = k->first.first;
    pos_ = k->first.second;
    started_ = true;
    bytes_ -= k->first.second.size() + Traits::old_bytes(k->second) + kSideElementOverheadBytes;
    k = keeps_.erase(k);
    spent = meter.add();
  };
  const bool from_start = !started_;
  const uint64_t from = pos_h_;
  Traits::for_each_from(live, from_start ? 0 : from, [&](uint64_t eh, std::string_view e, auto put) {
    if (!ahead(eh, e)) return true;  // written already (the position's hash: collisions)
    while (k != keeps_.end() && before(k->first.first, k->first.second, eh, e)) {
      write_kept();
      if (spent) return false;
    }
    if (k != keeps_.end() && k->first.first == eh && std::string_view(k->first.second) == e) {
      write_kept();  // changed since I: its kept version
    } else {
      put(out);  // unchanged since I: a change would have kept it first
      written_++;
      pos_h_ = eh;
      pos_.assign(e.data(), e.size());
      started_ = true;
      spent = meter.add();
    }
    return !spent;
  });
  while (!spent && k != keeps_.end()) write_kept();
  if (spent) return false;
  // Nothing live or kept after the position: done (a slice that ended right after the last
  // element finds that on its next call).
  return true;
}

template class HashedSave<HashSaveTraits>;
template class HashedSave<SetSaveTraits>;

namespace {

size_t elements_of(const Value& v) {
  switch (static_cast<Type>(v.index())) {
    case Type::kString: return 0;
    case Type::kHash: return std::get<Hash>(v).size();
    case Type::kList: return std::get<List>(v).size();
    case Type::kSet: return std::get<Set>(v).size();
    case Type::kZSet: return std::get<std::unique_ptr<ZSet>>(v)->order.size();
  }
  return 0;
}

// The element-level save for a value of more than whole_max elements, or null: a small
// one, or a type that does not slice (yet): kept and written whole. A list's segments are
// bounded by list_segments_max (list_save.h).
std::unique_ptr<ContainerSave> make_container_save(const Value& v, size_t whole_max, size_t list_segments_max) {
  if (elements_of(v) <= whole_max) return nullptr;
  switch (static_cast<Type>(v.index())) {
    case Type::kHash: return std::make_unique<HashSave>(elements_of(v));
    case Type::kSet: return std::make_unique<SetSave>(elements_of(v));
    case Type::kZSet: return std::make_unique<ZSave>(elements_of(v));
    case Type::kList: return std::make_unique<LSave>(elements_of(v), list_segments_max);
    case Type::kString: return nullptr;
  }
  return nullptr;
}

}  // namespace

// ---- the cursor ------------------------------------------------------------------------------

SaveCursor::SaveCursor(State& s) : s_(s), count_(s.keys.size()) {
  assert(s.saving == nullptr);
  s_.saving = this;
}

SaveCursor::~SaveCursor() {
  if (!done_) finish();
}

void SaveCursor::recount(Kept& e, size_t key_bytes) noexcept {
  side_bytes_ -= e.counted;
  e.counted = key_bytes + e.encoded.size() + (e.save ? e.save->kept_bytes() : 0) + kSideEntryOverheadBytes;
  side_bytes_ += e.counted;
  if (side_bytes_ > side_bytes_peak_) side_bytes_peak_ = side_bytes_;
}

void SaveCursor::uncount(Kept& e) noexcept {
  side_bytes_ -= e.counted;
  e.counted = 0;
}

void SaveCursor::keep(uint64_t h, std::string_view key) {
  if (side_.find(std::pair<uint64_t, std::string_view>(h, key)) != side_.end()) return;  // kept already
  Kept e;
  auto it = s_.keys.find_hashed(key, h);
  if (it != s_.keys.end()) {
    Encoder enc(&e.encoded);
    e.save = make_container_save(it->second, whole_max_, list_segments_max_);
    if (e.save) {
      // A big container: its header now, its elements one by one as they change.
      e.kind = Kept::Kind::kContainer;
      encode_snapshot_header(enc, key, it->second, deadline_in(s_.expires, key));
      containers_sliced_++;
    } else {
      e.kind = Kept::Kind::kEncoded;
      encode_snapshot_entry(enc, key, it->second, deadline_in(s_.expires, key));
    }
  }
  auto pos = side_.emplace(SideKey(h, std::string(key)), std::move(e)).first;
  recount(pos->second, key.size());
}

void SaveCursor::keep_deleted(uint64_t h, std::string_view key, Value& v) {
  if (Kept* c = live_container(h, key)) {
    // v is a big container followed element by element: its elements at I are read from it.
    c->held = std::move(v);
    v.emplace<String>();
    c->moved = true;
    held_++;
    if (c->renamed) {
      if (auto f = follows_.find(key); f != follows_.end()) follows_.erase(f);
    }
    return;
  }
  // Kept already (what it was at I stays), or not ahead (nothing to keep).
  if (at_container(h, key) || side_.find(std::pair<uint64_t, std::string_view>(h, key)) != side_.end()) return;
  if (!ahead(h, key)) return;
  Kept k;
  k.kind = Kept::Kind::kHeld;
  k.deadline = deadline_in(s_.expires, key);
  k.held = std::move(v);
  v.emplace<String>();  // what was moved from is empty, but say so (as Graveyard::bury_if_big)
  auto pos = side_.emplace(SideKey(h, std::string(key)), std::move(k)).first;
  recount(pos->second, key.size());
  held_++;
}

void SaveCursor::move(uint64_t h, std::string_view key, std::string_view to) {
  Kept* c = live_container(h, key);
  if (!c) return;  // not a big container followed element by element: nothing to follow
  SideKey own;
  if (auto f = follows_.find(key); f != follows_.end()) {
    own = std::move(f->second);
    follows_.erase(f);
  } else {
    own = SideKey(h, std::string(key));
  }
  c->renamed = true;
  c->live_name.assign(to.data(), to.size());
#ifndef HMDB_PLANTED_BUG_SAVE_RENAME_NOT_FOLLOWED
  follows_.insert_or_assign(std::string(to), std::move(own));
#endif  // else a planted bug: writes under the new name keep nothing of its elements
}

void SaveCursor::flatten(Kept* e, std::string_view key, const Value& v) {
  if (!check_live(key, *e->save, static_cast<Type>(v.index()))) return;
  // The rest of its elements at I, after the header (or after what the cursor wrote).
  std::string rest;
  {
    Encoder enc(&rest);
    SliceBudget unlimited;
    SliceMeter meter(enc, unlimited);
    e->save->write_some(enc, v, meter);
  }
  if (kCheckState && e->save->written() != e->save->count_at_i()) {
    fail(std::string("the big ") + type_name(e->save->type()) + " " + printable(key) + " held " +
         std::to_string(e->save->count_at_i()) + " elements at the snapshot's index, but " +
         std::to_string(e->save->written()) + " are there to write: an element changed without its hook");
    return;
  }
  if (e->renamed) {  // followed no more: its rest is in its bytes
    if (auto f = follows_.find(e->live_name); f != follows_.end()) follows_.erase(f);
  }
  if (e == &active_) {
    active_.encoded = std::move(rest);
    rest_at_ = 0;
  } else {
    e->encoded += rest;
  }
  e->kind = Kept::Kind::kEncoded;
  e->save.reset();
  if (e != &active_) recount(*e, key.size());  // key: its live name (an estimate, as INFO's)
}

SaveCursor::Kept* SaveCursor::kept_at(const SideKey& k) {
  if (at_container(k.first, k.second)) return &active_;
  auto it = side_.find(k);
  return it == side_.end() ? nullptr : &it->second;
}

SaveCursor::Kept* SaveCursor::live_container(uint64_t h, std::string_view key) {
  Kept* e = nullptr;
  if (!follows_.empty()) {
    if (auto f = follows_.find(key); f != follows_.end()) {
      e = kept_at(f->second);
      return e && e->kind == Kept::Kind::kContainer && !e->moved ? e : nullptr;
    }
  }
  if (at_container(h, key)) {
    e = &active_;
  } else if (auto it = side_.find(std::pair<uint64_t, std::string_view>(h, key)); it != side_.end()) {
    e = &it->second;
  }
  return e && e->kind == Kept::Kind::kContainer && !e->moved && !e->renamed ? e : nullptr;
}

ContainerSave* SaveCursor::container_at(uint64_t h, std::string_view key, Kept** owner) {
  Kept* e = live_container(h, key);
  if (!e) return nullptr;
  *owner = e;
  return e->save.get();
}

void SaveCursor::hash_field(uint64_t h, std::string_view key, const Hash& live, std::string_view field) {
  Kept* e;
  ContainerSave* c = container_at(h, key, &e);
  if (!c) return;
  if (!check_live(key, *c, Type::kHash)) return;
  static_cast<HashSave*>(c)->keep(live, Hash::field_hash(field), field);
  recount(*e, key.size());
}

void SaveCursor::set_member(uint64_t h, std::string_view key, const Set& live, uint64_t mh, std::string_view m) {
  Kept* e;
  ContainerSave* c = container_at(h, key, &e);
  if (!c) return;
  if (!check_live(key, *c, Type::kSet)) return;
  static_cast<SetSave*>(c)->keep(live, mh, m);
  recount(*e, key.size());
}

void SaveCursor::zset_place(uint64_t h, std::string_view key, ZChange c, double from, double to, std::string_view m) {
  Kept* e;
  ContainerSave* cs = container_at(h, key, &e);
  if (!cs) return;
  if (!check_live(key, *cs, Type::kZSet)) return;
  ZSetSave& z = static_cast<ZSave*>(cs)->places();
  const size_t before = z.side_entries();
  switch (c) {
    case ZChange::kErase: z.before_erase(from, m); break;
    case ZChange::kInsert: z.before_insert(to, m); break;
    case ZChange::kMove: z.before_move(from, to, m); break;
  }
  if (z.side_entries() == before) return;
  zset_places_kept_ += z.side_entries() - before;
  recount(*e, key.size());
}

void SaveCursor::list_change(uint64_t h, std::string_view key, const Value& v, ListChange c, size_t n,
                             std::span<const size_t> at) {
  Kept* e;
  ContainerSave* cs = container_at(h, key, &e);
  if (!cs) return;
  if (!check_live(key, *cs, static_cast<Type>(v.index()))) return;
  ListSave& l = static_cast<LSave*>(cs)->list();
  const List& live = std::get<List>(v);
  const size_t before = l.kept_total(), segments = l.segments();
  bool follow = true;
  switch (c) {
    case ListChange::kPushFront: l.before_push_front(n); return;
    case ListChange::kEraseFront: l.before_erase_front(live, n); break;
    case ListChange::kEraseBack: l.before_erase_back(live, n); break;
    case ListChange::kSet: l.before_set(live, n); break;
    case ListChange::kInsert: follow = l.before_insert(n); break;
    case ListChange::kRemove: follow = l.before_remove(live, at); break;
  }
  if (!follow) {
    // The rest of its elements at I, encoded now; the list is followed no more.
    flatten(e, key, v);
    lists_flattened_++;
    return;
  }
  if (l.segments() > segments) lists_split_++;
  if (l.kept_total() != before) list_elements_kept_ += l.kept_total() - before;
  else if (c != ListChange::kInsert && c != ListChange::kRemove) return;  // side bytes as they were
  recount(*e, key.size());  // kept elements, or segments split
}

void SaveCursor::release(Kept& e) {
  if (e.kind != Kept::Kind::kHeld && !e.moved) return;
  s_.graveyard.bury_if_big(e.held);  // a big one is freed a bounded amount at a time
  e.held.emplace<String>();
  e.moved = false;
  held_--;
}

void SaveCursor::flushed(KeyTable<Value>& keys, KeyTable<uint64_t>& expires, ExpiryOrder& order) {
  assert(!frozen_);
  frozen_keys_ = std::move(keys);
  frozen_expires_ = std::move(expires);
  frozen_order_ = std::move(order);
  order.clear();  // moved from: empty in practice, and now by contract
  frozen_ = true;
  // Nothing the live keyspace does from now on is in this snapshot: no more hooks.
  s_.saving = nullptr;
}

bool SaveCursor::check_live(std::string_view key, const ContainerSave& c, std::optional<Type> now) {
  if (!kCheckState || now == c.type()) return true;
  if (!now) {
    fail(std::string("the big ") + type_name(c.type()) + " " + printable(key) +
         " left the key table without the snapshot's hook (a delete that did not call before_delete)");
  } else {
    fail(std::string("the big ") + type_name(c.type()) + " " + printable(key) + " is a " + type_name(*now) +
         " now: a change replaced it without the snapshot's hook (before_delete)");
  }
  return false;
}

void SaveCursor::fail(std::string why) {
  if (failure_.empty()) failure_ = std::move(why);
  finish();
}

void SaveCursor::finish() {
  done_ = true;
  if (s_.saving == this) s_.saving = nullptr;
  for (auto& [k, e] : side_) release(e);
  side_.clear();
  if (in_container_) {
    release(active_);
    active_ = Kept();
    in_container_ = false;
  }
  side_bytes_ = 0;
  follows_.clear();
  if (frozen_) {
    s_.graveyard.bury_keyspace(frozen_keys_, frozen_expires_, frozen_order_);
    frozen_ = false;
  }
}

void SaveCursor::begin_container(uint64_t h, std::string_view key, Kept&& e) {
  cur_h_ = h;
  cur_key_.assign(key.data(), key.size());
  has_cursor_ = true;
  in_container_ = true;
  active_ = std::move(e);
  recount(active_, key.size());
}

bool SaveCursor::write_container(Encoder& out, SliceMeter& meter) {
  bool all = false;
  if (active_.kind == Kept::Kind::kEncoded) {
    // Flattened: the rest of its bytes, a slice's bytes at a time.
    const size_t n = std::min(active_.encoded.size() - rest_at_, std::max<size_t>(meter.bytes_left(), 1));
    out.raw(std::string_view(active_.encoded).substr(rest_at_, n));
    rest_at_ += n;
    meter.add();
    all = rest_at_ == active_.encoded.size();
  } else if (active_.moved) {
    all = active_.save->write_some(out, active_.held, meter);
  } else {
    // Its key's live value, or its new name's after a RENAME (as of the FLUSHALL if frozen).
    const KeyTable<Value>& keys = frozen_ ? frozen_keys_ : s_.keys;
    auto it = active_.renamed ? keys.find(std::string_view(active_.live_name)) : keys.find_hashed(cur_key_, cur_h_);
    // A delete or replace would have moved it here (before_delete): checked, not assumed.
    if (!check_live(active_.renamed ? active_.live_name : cur_key_, *active_.save,
                    it == keys.end() ? std::nullopt : std::optional<Type>(static_cast<Type>(it->second.index()))))
      return true;
    all = active_.save->write_some(out, it->second, meter);
  }
  if (!all) {
    recount(active_, cur_key_.size());
    return false;
  }
  if (kCheckState && active_.kind == Kept::Kind::kContainer && active_.save->written() != active_.save->count_at_i()) {
    fail(std::string("the big ") + type_name(active_.save->type()) + " " + printable(cur_key_) + " held " +
         std::to_string(active_.save->count_at_i()) + " elements at the snapshot's index, but " +
         std::to_string(active_.save->written()) + " were written: an element changed without its hook");
    return true;
  }
  uncount(active_);
  if (active_.renamed && !active_.moved) follows_.erase(active_.live_name);
  release(active_);
  active_ = Kept();
  rest_at_ = 0;
  in_container_ = false;
  return true;
}

bool SaveCursor::next(Encoder& out, const SliceBudget& budget) {
  if (done_) {
    if (!failure_.empty()) throw SaveFailed(failure_);  // a hook found it (fail())
    return true;
  }
  if (!started_) {
    out.varint(count_);
    started_ = true;
  }
  SliceMeter meter(out, budget);
  if (in_container_ && !write_container(out, meter)) return false;
  if (done_) throw SaveFailed(failure_);  // failed (fail())
  if (meter.spent()) return false;
  const KeyTable<Value>& keys = frozen_ ? frozen_keys_ : s_.keys;
  const KeyTable<uint64_t>& expires = frozen_ ? frozen_expires_ : s_.expires;
  // The first live key after the cursor (keys with the cursor's hash are few: collisions).
  KeyTable<Value>::const_iterator it = keys.begin();
  if (has_cursor_) {
    it = keys.lower_bound_hash(cur_h_);
    while (it != keys.end() && it.hash() == cur_h_ && it->first.view() <= std::string_view(cur_key_)) ++it;
  }
  // Every kept entry is ahead of the cursor (kept only when ahead, erased when begun).
  auto side = side_.begin();
  while (it != keys.end() || side != side_.end()) {
    bool live_first = side == side_.end();
    bool same = false;
    if (!live_first && it != keys.end()) {
      const uint64_t h = it.hash();
      const std::string_view k = it->first.view();
      live_first = before(h, k, side->first.first, side->first.second);
      same = h == side->first.first && k == std::string_view(side->first.second);
    }
    bool container = false;
    if (live_first) {
      // Unchanged since I: a change would have kept it first.
      const std::string_view k = it->first.view();
      const uint64_t h = it.hash();
      std::unique_ptr<ContainerSave> save = make_container_save(it->second, whole_max_, list_segments_max_);
      if (save) {
        encode_snapshot_header(out, k, it->second, deadline_in(expires, k));
        Kept e;
        e.kind = Kept::Kind::kContainer;
        e.save = std::move(save);
        containers_sliced_++;
        begin_container(h, k, std::move(e));
        container = true;
      } else {
        encode_snapshot_entry(out, k, it->second, deadline_in(expires, k));
        cur_h_ = h;
        cur_key_.assign(k.data(), k.size());
      }
      keys_written_++;
      ++it;
    } else {
      Kept& e = side->second;
      if (e.kind == Kept::Kind::kHeld) {
        // A big container deleted since I (moved here whole): element by element too.
        if (std::unique_ptr<ContainerSave> save = make_container_save(e.held, whole_max_, list_segments_max_)) {
          e.encoded.clear();
          Encoder enc(&e.encoded);
          encode_snapshot_header(enc, side->first.second, e.held, e.deadline);
          e.kind = Kept::Kind::kContainer;
          e.moved = true;
          e.save = std::move(save);
          containers_sliced_++;
        }
      }
      switch (e.kind) {
        case Kept::Kind::kAbsent: break;  // created after I
        case Kept::Kind::kEncoded: out.raw(e.encoded); break;
        case Kept::Kind::kHeld: encode_snapshot_entry(out, side->first.second, e.held, e.deadline); break;
        case Kept::Kind::kContainer: out.raw(e.encoded); break;  // its header; the elements follow
      }
      if (e.kind != Kept::Kind::kAbsent) keys_written_++;
      if (same) ++it;  // the live key's version at I is the kept one
      uncount(e);
      if (e.kind == Kept::Kind::kContainer) {
        e.encoded.clear();
        SideKey k = side->first;
        Kept moved = std::move(e);
        side = side_.erase(side);
        begin_container(k.first, k.second, std::move(moved));
        container = true;
      } else {
        cur_h_ = side->first.first;
        cur_key_ = side->first.second;
        release(e);
        side = side_.erase(side);
      }
    }
    has_cursor_ = true;
    if (meter.add()) break;
    if (container) {
      if (!write_container(out, meter)) return false;
      if (done_) throw SaveFailed(failure_);  // failed (fail())
      // The side map may have changed? No: nothing runs between; but `it` is still valid.
      if (meter.spent()) break;
    }
  }
  if (in_container_ || it != keys.end() || side != side_.end()) return false;
  if (kCheckState && keys_written_ != count_) {
    fail("the key table held " + std::to_string(count_) + " keys at the snapshot's index, but " +
         std::to_string(keys_written_) + " were written: a key was created or deleted without the snapshot's hook");
    throw SaveFailed(failure_);
  }
  finish();
  return true;
}

std::unique_ptr<SaveProducer> begin_save(State& s) {
  if (s.saving) return nullptr;  // one at a time: the engine forks instead
  return std::make_unique<SaveCursor>(s);
}

std::unique_ptr<SaveProducer> Kv::begin_save(State& s) { return kv::begin_save(s); }

}  // namespace hmdb::kv
