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

}  // namespace

SaveCursor::SaveCursor(State& s) : s_(s), count_(s.keys.size()) {
  assert(s.saving == nullptr);
  s_.saving = this;
}

SaveCursor::~SaveCursor() {
  if (!done_) finish();
}

void SaveCursor::count(const SideKey& k, const Kept& e, bool add) noexcept {
  const size_t bytes = k.second.size() + e.encoded.size() + kSideEntryOverheadBytes;
  if (add) {
    side_bytes_ += bytes;
    if (side_bytes_ > side_bytes_peak_) side_bytes_peak_ = side_bytes_;
  } else {
    side_bytes_ -= bytes;
  }
}

void SaveCursor::keep(uint64_t h, std::string_view key) {
  if (side_.find(std::pair<uint64_t, std::string_view>(h, key)) != side_.end()) return;  // kept already
  Kept e;
  auto it = s_.keys.find_hashed(key, h);
  if (it != s_.keys.end()) {
    e.kind = Kept::Kind::kEncoded;
    Encoder enc(&e.encoded);
    encode_snapshot_entry(enc, key, it->second, deadline_in(s_.expires, key));
  }
  auto pos = side_.emplace(SideKey(h, std::string(key)), std::move(e)).first;
  count(pos->first, pos->second, true);
}

void SaveCursor::keep_deleted(uint64_t h, std::string_view key, Value& v) {
  if (side_.find(std::pair<uint64_t, std::string_view>(h, key)) != side_.end()) return;
  Kept e;
  e.kind = Kept::Kind::kHeld;
  e.deadline = deadline_in(s_.expires, key);
  e.held = std::move(v);
  v.emplace<String>();  // what was moved from is empty, but say so (as Graveyard::bury_if_big)
  auto pos = side_.emplace(SideKey(h, std::string(key)), std::move(e)).first;
  count(pos->first, pos->second, true);
  held_++;
}

void SaveCursor::release(Kept& e) {
  if (e.kind != Kept::Kind::kHeld) return;
  s_.graveyard.bury_if_big(e.held);  // a big one is freed a bounded amount at a time
  e.held.emplace<String>();
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

void SaveCursor::finish() {
  done_ = true;
  if (s_.saving == this) s_.saving = nullptr;
  for (auto& [k, e] : side_) release(e);
  side_.clear();
  side_bytes_ = 0;
  if (frozen_) {
    s_.graveyard.bury_keyspace(frozen_keys_, frozen_expires_, frozen_order_);
    frozen_ = false;
  }
}

bool SaveCursor::next(Encoder& out, const SliceBudget& budget) {
  if (done_) return true;
  if (!started_) {
    out.varint(count_);
    started_ = true;
  }
  const KeyTable<Value>& keys = frozen_ ? frozen_keys_ : s_.keys;
  const KeyTable<uint64_t>& expires = frozen_ ? frozen_expires_ : s_.expires;
  // The first live key after the cursor (keys with the cursor's hash are few: collisions).
  KeyTable<Value>::const_iterator it = keys.begin();
  if (has_cursor_) {
    it = keys.lower_bound_hash(cur_h_);
    while (it != keys.end() && it.hash() == cur_h_ && it->first.view() <= std::string_view(cur_key_)) ++it;
  }
  // Every kept entry is ahead of the cursor (kept only when ahead, erased when written).
  auto side = side_.begin();
  size_t elements = 0, bytes = 0;
  while (it != keys.end() || side != side_.end()) {
    const size_t before_bytes = out.size();
    bool live_first = side == side_.end();
    bool same = false;
    if (!live_first && it != keys.end()) {
      const uint64_t h = it.hash();
      const std::string_view k = it->first.view();
      live_first = before(h, k, side->first.first, side->first.second);
      same = h == side->first.first && k == std::string_view(side->first.second);
    }
    if (live_first) {
      // Unchanged since I: a change would have kept it first.
      const std::string_view k = it->first.view();
      encode_snapshot_entry(out, k, it->second, deadline_in(expires, k));
      cur_h_ = it.hash();
      cur_key_.assign(k.data(), k.size());
      ++it;
    } else {
      Kept& e = side->second;
      switch (e.kind) {
        case Kept::Kind::kAbsent: break;  // created after I
        case Kept::Kind::kEncoded: out.raw(e.encoded); break;
        case Kept::Kind::kHeld: encode_snapshot_entry(out, side->first.second, e.held, e.deadline); break;
      }
      if (same) ++it;  // the live key's version at I is the kept one
      cur_h_ = side->first.first;
      cur_key_ = side->first.second;
      release(e);
      count(side->first, e, false);
      side = side_.erase(side);
    }
    has_cursor_ = true;
    elements++;
    // A sink that flushed within this key (out.size() went down) has taken at least its
    // Encoder::kFlushBytes: the slice ends.
    bytes = out.size() >= before_bytes ? bytes + (out.size() - before_bytes) : budget.bytes;
    if (elements >= budget.elements || bytes >= budget.bytes) break;
  }
  if (it != keys.end() || side != side_.end()) return false;
  finish();
  return true;
}

std::unique_ptr<SaveProducer> begin_save(State& s) {
  if (s.saving) return nullptr;  // one at a time: the engine forks instead
  return std::make_unique<SaveCursor>(s);
}

std::unique_ptr<SaveProducer> Kv::begin_save(State& s) { return kv::begin_save(s); }

}  // namespace hmdb::kv
