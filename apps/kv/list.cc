// apps/kv/list.cc — kv::List's slower paths (list.h): new chunks and blocks, the ring of
// chunks, splitting a chunk for LINSERT/LSET, repacking after LREM, freeing.
#include "kv/list.h"

#include <algorithm>
#include <bit>
#include <new>

namespace hmdb::kv {
namespace {

// The smallest ring of chunks (a list of one chunk has none: it is kept in the List).
constexpr uint32_t kRingMin = 4;

}  // namespace

void List::push_slow(std::string_view v, size_t need, bool front) {
  if (v.size() > kElementBytesMax) throw std::length_error("list element too long");
  if (chunks_ != 0) {
    Chunk& c = front ? front_chunk() : back_chunk();
    if (c.used() + need <= kChunkBytesMax) {
      make_room(c, need, front);
      if (front) {
        c.begin -= static_cast<uint32_t>(need);
        encode(c.bytes + c.begin, v);
      } else {
        encode(c.bytes + c.end, v);
        c.end += static_cast<uint32_t>(need);
      }
      c.count++;
      if (chunks_ >= 2) ring_.size++;
      return;
    }
  }
  Chunk n;
  n.cap = capacity_for(need);
  n.bytes = allocate(n.cap);
  n.begin = front ? n.cap - static_cast<uint32_t>(need) : 0;
  n.end = n.begin + static_cast<uint32_t>(need);
  n.count = 1;
  encode(n.bytes + n.begin, v);
  try {
    if (front) add_front_chunk(n); else add_back_chunk(n);
  } catch (...) {
    deallocate(n.bytes);
    throw;
  }
}

// Gives chunk c at least `need` free bytes on the side pushed at. With plenty of room
// left in the block (or at the bound) its bytes move inside it, the pushed side getting
// `need` and half of the rest (so pushes alternating between the sides do not move the
// bytes each time); else they move into a block twice the size (up to the bound), all of
// its new room on the pushed side.
void List::make_room(Chunk& c, size_t need, bool front) {
  const uint32_t used = c.used();
  const size_t free = c.cap - used;
  if (free >= need && (c.cap >= kChunkBytesMax || free - need >= c.cap / 4)) {
    const size_t slack = free - need;
    const uint32_t begin = static_cast<uint32_t>(front ? need + slack / 2 : slack - slack / 2);
    std::memmove(c.bytes + begin, c.bytes + c.begin, used);
    c.begin = begin;
    c.end = begin + used;
    return;
  }
  const uint32_t cap = std::max(capacity_for(used + need), std::min<uint32_t>(kChunkBytesMax, 2 * c.cap + 8));
  char* b = allocate(cap);
  const uint32_t begin = front ? cap - used : 0;
  if (used) std::memcpy(b + begin, c.bytes + c.begin, used);
  deallocate(c.bytes);
  c.bytes = b;
  c.cap = cap;
  c.begin = begin;
  c.end = begin + used;
}

// Moves a chunk at most a quarter full into a block of twice its bytes (best effort: if
// memory is short it keeps its block), its room split between the two sides.
void List::shrink(Chunk& c) noexcept {
  const uint32_t used = c.used();
  const uint32_t cap = capacity_for(2 * static_cast<size_t>(used));
  if (cap >= c.cap) return;
  auto* b = static_cast<char*>(::operator new(cap, std::nothrow));
  if (!b) return;
  const uint32_t begin = (cap - used) / 2;
  std::memcpy(b + begin, c.bytes + c.begin, used);
  deallocate(c.bytes);
  c.bytes = b;
  c.cap = cap;
  c.begin = begin;
  c.end = begin + used;
}

void List::add_back_chunk(const Chunk& n) { add_end_chunk(n, false); }
void List::add_front_chunk(const Chunk& n) { add_end_chunk(n, true); }

void List::add_end_chunk(const Chunk& n, bool front) {
  if (chunks_ == 0) {
    one_ = n;
    chunks_ = 1;
    return;
  }
  if (chunks_ == 1) {  // out of the List into a ring
    auto* s = static_cast<Chunk*>(::operator new(kRingMin * sizeof(Chunk)));
    const Chunk only = one_;
    s[0] = front ? n : only;
    s[1] = front ? only : n;
    ring_ = Ring{s, kRingMin, 0, uint64_t{only.count} + n.count};
    chunks_ = 2;
    return;
  }
  if (chunks_ == ring_.cap) grow_ring();
  if (front) {
    ring_.head = (ring_.head + ring_.cap - 1) & (ring_.cap - 1);
    ring_.slots[ring_.head] = n;
  } else {
    ring_.slots[(ring_.head + chunks_) & (ring_.cap - 1)] = n;
  }
  chunks_++;
  ring_.size += n.count;
}

void List::grow_ring() {
  const uint32_t cap = ring_.cap * 2;
  auto* s = static_cast<Chunk*>(::operator new(cap * sizeof(Chunk)));
  for (uint32_t k = 0; k < chunks_; k++) s[k] = ring_.slots[(ring_.head + k) & (ring_.cap - 1)];
  ::operator delete(ring_.slots);
  ring_.slots = s;
  ring_.cap = cap;
  ring_.head = 0;
}

void List::drop_front_chunk() noexcept { drop_end_chunk(true); }
void List::drop_back_chunk() noexcept { drop_end_chunk(false); }

void List::drop_end_chunk(bool front) noexcept {
  Chunk& c = front ? front_chunk() : back_chunk();
  deallocate(c.bytes);
  if (chunks_ == 1) {
    chunks_ = 0;
    std::memset(static_cast<void*>(&one_), 0, sizeof(one_));
    return;
  }
  ring_.size -= c.count;
  if (front) ring_.head = (ring_.head + 1) & (ring_.cap - 1);
  chunks_--;
  if (chunks_ == 1) {  // back inside the List
    Chunk* s = ring_.slots;
    const Chunk only = s[ring_.head];
    ::operator delete(s);
    one_ = only;
    return;
  }
  if (ring_.cap > kRingMin && chunks_ <= ring_.cap / 4) {  // a quarter full: halve the ring
    const uint32_t cap = ring_.cap / 2;
    auto* s = static_cast<Chunk*>(::operator new(cap * sizeof(Chunk), std::nothrow));
    if (!s) return;
    for (uint32_t k = 0; k < chunks_; k++) s[k] = ring_.slots[(ring_.head + k) & (ring_.cap - 1)];
    ::operator delete(ring_.slots);
    ring_.slots = s;
    ring_.cap = cap;
    ring_.head = 0;
  }
}

void List::erase_front(size_t n) noexcept {
  while (n > 0) {
    Chunk& c = front_chunk();
    if (n >= c.count) {
      n -= c.count;
      drop_front_chunk();
      continue;
    }
    uint32_t t;
    for (size_t i = 0; i < n; i++) {
      decode_at(c.bytes + c.begin, &t);
      c.begin += t;
    }
    c.count -= static_cast<uint32_t>(n);
    if (chunks_ >= 2) ring_.size -= n;
    else if (c.cap > kChunkBytesMin && c.used() <= c.cap / 4) shrink(c);
    n = 0;
  }
}

void List::erase_back(size_t n) noexcept {
  while (n > 0) {
    Chunk& c = back_chunk();
    if (n >= c.count) {
      n -= c.count;
      drop_back_chunk();
      continue;
    }
    uint32_t t;
    for (size_t i = 0; i < n; i++) {
      decode_before(c.bytes + c.end, &t);
      c.end -= t;
    }
    c.count -= static_cast<uint32_t>(n);
    if (chunks_ >= 2) ring_.size -= n;
    else if (c.cap > kChunkBytesMin && c.used() <= c.cap / 4) shrink(c);
    n = 0;
  }
}

void List::set(size_t i, std::string_view v) {
  if (v.size() > kElementBytesMax) throw std::length_error("list element too long");
  size_t j;
  const size_t k = find_chunk(i, &j);
  Chunk& c = chunk_mut(k);
  const uint32_t off = offset_in_chunk(c, j);
  uint32_t old;
  decode_at(c.bytes + off, &old);
  if (encoded_size(v.size()) == old) {
    encode(c.bytes + off, v);
    return;
  }
  splice_at(k, j, off, old, v);
}

void List::insert(size_t pos, std::string_view v) {
  assert(pos <= size());
  if (pos == size()) { push_back(v); return; }
  if (pos == 0) { push_front(v); return; }
  if (v.size() > kElementBytesMax) throw std::length_error("list element too long");
  size_t j;
  const size_t k = find_chunk(pos, &j);
  const uint32_t off = offset_in_chunk(chunk(k), j);
  splice_at(k, j, off, 0, v);
}

// Puts v's encoding in place of the old_bytes at off (element j of chunk k; old_bytes 0:
// inserts before it). If the chunk would outgrow the bound it is split there: the elements
// before, v, and those after, v joining whichever side has room or a chunk of its own.
void List::splice_at(size_t k, size_t j, uint32_t off, uint32_t old_bytes, std::string_view v) {
  const bool replacing = old_bytes != 0;
  Chunk& c = chunk_mut(k);
  const size_t need = encoded_size(v.size());
  const size_t used_after = c.used() - old_bytes + need;
  const uint32_t others = c.count - (replacing ? 1 : 0);
  const uint32_t tail = c.end - (off + old_bytes);  // bytes after the element
  if (used_after <= kChunkBytesMax || others == 0) {
    if (need <= old_bytes || c.cap - c.end >= need - old_bytes) {
      std::memmove(c.bytes + off + need, c.bytes + off + old_bytes, tail);
      c.end = static_cast<uint32_t>(c.end + need - old_bytes);
    } else if (c.begin >= need - old_bytes) {
      const uint32_t delta = static_cast<uint32_t>(need - old_bytes);
      std::memmove(c.bytes + c.begin - delta, c.bytes + c.begin, off - c.begin);
      c.begin -= delta;
      off -= delta;
    } else {
      const uint32_t cap = used_after > kChunkBytesMax
                               ? capacity_for(used_after)
                               : std::max(capacity_for(used_after), std::min<uint32_t>(kChunkBytesMax, 2 * c.cap + 8));
      char* b = allocate(cap);
      const uint32_t begin = static_cast<uint32_t>((cap - used_after) / 2);
      const uint32_t at = begin + (off - c.begin);
      std::memcpy(b + begin, c.bytes + c.begin, off - c.begin);
      std::memcpy(b + at + need, c.bytes + off + old_bytes, tail);
      deallocate(c.bytes);
      c.bytes = b;
      c.cap = cap;
      c.begin = begin;
      c.end = static_cast<uint32_t>(begin + used_after);
      off = at;
    }
    encode(c.bytes + off, v);
    if (!replacing) {
      c.count++;
      if (chunks_ >= 2) ring_.size++;
    }
    // A block sized for one big element replaced by a smaller one is refitted.
    if (c.cap > kChunkBytesMax && c.cap != capacity_for(c.used())) {
      const uint32_t cap = capacity_for(c.used());
      char* b = allocate(cap);
      const uint32_t begin = (cap - c.used()) / 2;
      std::memcpy(b + begin, c.bytes + c.begin, c.used());
      deallocate(c.bytes);
      c.end = begin + c.used();
      c.begin = begin;
      c.bytes = b;
      c.cap = cap;
    }
    return;
  }
  // Split: a keeps c's block and the elements before j, b gets those after it.
  Chunk a = c;
  a.end = off;
  a.count = static_cast<uint32_t>(j);
  Chunk b;
  b.count = others - a.count;
  if (b.count) {
    b.cap = capacity_for(tail);
    b.bytes = allocate(b.cap);
    b.end = tail;
    std::memcpy(b.bytes, c.bytes + off + old_bytes, tail);
  }
  Chunk alone;
  if (a.count && a.used() + need <= kChunkBytesMax) {
    make_room(a, need, false);
    encode(a.bytes + a.end, v);
    a.end += static_cast<uint32_t>(need);
    a.count++;
  } else if (b.count && b.used() + need <= kChunkBytesMax) {
    make_room(b, need, true);
    b.begin -= static_cast<uint32_t>(need);
    encode(b.bytes + b.begin, v);
    b.count++;
  } else {
    alone.cap = capacity_for(need);
    alone.bytes = allocate(alone.cap);
    alone.end = static_cast<uint32_t>(need);
    alone.count = 1;
    encode(alone.bytes, v);
  }
  std::vector<Chunk> all = take_chunks();
  std::vector<Chunk> parts;
  if (a.count) parts.push_back(a); else deallocate(a.bytes);
  if (alone.count) parts.push_back(alone);
  if (b.count) parts.push_back(b);
  all.erase(all.begin() + static_cast<std::ptrdiff_t>(k));
  all.insert(all.begin() + static_cast<std::ptrdiff_t>(k), parts.begin(), parts.end());
  adopt_chunks(std::move(all));
}

// After remove_where compacted each chunk: drops the empty ones, merges a chunk less than
// half full with its predecessor when the two fit one chunk, and gives a block at most a
// quarter full back.
void List::repack() {
  std::vector<Chunk> all = take_chunks();
  size_t out = 0;
  for (Chunk& c : all) {
    if (c.count == 0) {
      deallocate(c.bytes);
      continue;
    }
    if (out > 0) {
      Chunk& p = all[out - 1];
      if ((p.used() < kChunkBytesMax / 2 || c.used() < kChunkBytesMax / 2) && p.used() + c.used() <= kChunkBytesMax) {
        make_room(p, c.used(), false);
        std::memcpy(p.bytes + p.end, c.bytes + c.begin, c.used());
        p.end += c.used();
        p.count += c.count;
        deallocate(c.bytes);
        continue;
      }
    }
    all[out++] = c;
  }
  all.resize(out);
  for (Chunk& c : all)
    if (c.cap > kChunkBytesMin && c.used() <= c.cap / 4) shrink(c);
  adopt_chunks(std::move(all));
}

std::vector<List::Chunk> List::take_chunks() {
  std::vector<Chunk> all;
  all.reserve(chunks_ + 2);
  for (size_t k = 0; k < chunks_; k++) all.push_back(chunk(k));
  if (chunks_ >= 2) ::operator delete(ring_.slots);
  chunks_ = 0;
  std::memset(static_cast<void*>(&one_), 0, sizeof(one_));
  return all;
}

void List::adopt_chunks(std::vector<Chunk>&& all) {
  assert(chunks_ == 0);
  if (all.empty()) return;
  if (all.size() == 1) {
    one_ = all[0];
    chunks_ = 1;
    return;
  }
  const uint32_t cap = std::max<uint32_t>(kRingMin, std::bit_ceil(static_cast<uint32_t>(all.size())));
  auto* s = static_cast<Chunk*>(::operator new(cap * sizeof(Chunk)));
  uint64_t size = 0;
  for (size_t k = 0; k < all.size(); k++) {
    s[k] = all[k];
    size += all[k].count;
  }
  ring_ = Ring{s, cap, 0, size};
  chunks_ = static_cast<uint32_t>(all.size());
}

size_t List::clear_some(size_t budget) noexcept {
  size_t n = 0;
  while (chunks_ > 0 && (n == 0 || n < budget)) {
    n += back_chunk().count;
    drop_back_chunk();
  }
  return n;
}

void List::destroy() noexcept {
  for (size_t k = 0; k < chunks_; k++) deallocate(chunk(k).bytes);
  if (chunks_ >= 2) ::operator delete(ring_.slots);
  chunks_ = 0;
  std::memset(static_cast<void*>(&one_), 0, sizeof(one_));
}

bool List::check() const {
  uint64_t total = 0;
  for (size_t k = 0; k < chunks_; k++) {
    const Chunk& c = chunk(k);
    if (c.count == 0 || c.begin > c.end || c.end > c.cap || !c.bytes) return false;
    if (c.cap > kChunkBytesMax && (c.count != 1 || c.used() != c.cap)) return false;
    uint32_t n = 0, off = c.begin;
    while (off < c.end) {
      uint32_t t;
      const std::string_view v = decode_at(c.bytes + off, &t);
      if (off + t > c.end) return false;
      uint32_t back;
      const std::string_view w = decode_before(c.bytes + off + t, &back);
      if (back != t || w.data() != v.data() || w.size() != v.size()) return false;
      off += t;
      n++;
    }
    if (off != c.end || n != c.count) return false;
    total += n;
  }
  if (chunks_ >= 2 && (ring_.cap < chunks_ || (ring_.cap & (ring_.cap - 1)) != 0)) return false;
  return total == size();
}

}  // namespace hmdb::kv
