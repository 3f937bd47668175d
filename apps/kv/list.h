// apps/kv/list.h — the kv app's list value: a deque of packed chunks.
//
// Why: a list was a ring buffer of 32-byte std::string slots, plus a heap block for each
// element longer than 15 bytes: 65 bytes per 20-byte element at 1 M elements, against
// 22.7 in Redis' quicklist (issue 16 item 7). Here the elements are packed into chunks,
// in the spirit of Redis' quicklist of listpacks, with a layout of our own:
//
//   - A chunk is one heap block of `cap` bytes whose bytes [begin, end) hold `count`
//     elements back to back, each encoded as
//         varint(len) | len bytes | varint(len) written backwards
//     (LEB128 forward; backwards, the last byte holds the low 7 bits and bit 7 says "more
//     bytes before me"). An element of up to 127 bytes costs its bytes + 2, so it can be
//     walked from either side. The free room of a block is at both ends, so pushing at the
//     front of the first chunk and at the back of the last are O(1) amortised: no memmove
//     of the chunk, unlike a listpack's insert at its head.
//   - A chunk holds at most kChunkBytesMax bytes (a block of 8 KiB with malloc's header,
//     Redis' list-max-listpack-size -2), except one holding a single bigger element.
//     Blocks grow by doubling up to that bound, so a short list is one small block: a list
//     of three 3-byte elements is 15 bytes in a 24-byte block.
//   - The chunks' (pointer, cap, begin, end, count) are kept in the List itself while
//     there is one chunk, else in a ring buffer of them (power-of-two capacity). Indexing
//     walks the counts in that array from the nearer end, skipping whole chunks, then
//     walks elements inside one chunk from its nearer end: O(n / elements per chunk + one
//     chunk), ~1 µs in the middle of a 1 M-element list of 20-byte elements.
//
// LINSERT, LSET with a longer value, and LREM change chunks in the middle: a chunk that
// would outgrow the bound is split at the element, and after LREM a chunk less than half
// full is merged into its neighbour when the two fit one chunk, so memory stays dense.
// Order is the visible order of LRANGE and of the snapshot: element 0 is the head. Nothing
// about the chunking is visible in a reply, a snapshot or the digest (they list elements).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>
#include <vector>

namespace hmdb::kv {

class List {
 public:
  // The most bytes a chunk holds, unless it holds a single element bigger than that.
  // 8 KiB blocks (8184 bytes + glibc malloc's 8-byte header), as Redis' default
  // list-max-listpack-size -2: ~370 elements of 20 bytes, so the per-chunk costs (its
  // entry, malloc's header, the unused tail) are ~0.1-0.2 bytes an element, and a walk
  // inside one chunk (LINDEX, LSET) is at most ~8 KiB of reads.
  static constexpr size_t kChunkBytesMax = 8184;
  // The smallest block (what glibc's malloc hands out for its smallest chunk). Block sizes
  // are 16 k + 8 bytes, the usable sizes of glibc's chunks, so none of a block is slack.
  static constexpr size_t kChunkBytesMin = 24;
  // The longest element (the offsets in a chunk are 32-bit). Far above the 512 MiB default
  // --max-bulk-bytes; a longer one throws std::length_error.
  static constexpr size_t kElementBytesMax = UINT32_MAX - 64;

  struct Chunk {
    char* bytes = nullptr;
    uint32_t cap = 0;    // bytes of the block
    uint32_t begin = 0;  // the elements are bytes [begin, end)
    uint32_t end = 0;
    uint32_t count = 0;  // elements in it; a stored chunk is never empty
    // cap > kChunkBytesMax only for a block that holds exactly one element and no room.
    uint32_t used() const noexcept { return end - begin; }
  };
  static_assert(sizeof(Chunk) == 24);

  List() noexcept = default;
  List(List&& other) noexcept { steal(other); }
  List& operator=(List&& other) noexcept {
    if (this != &other) {
      destroy();
      steal(other);
    }
    return *this;
  }
  List(const List&) = delete;
  List& operator=(const List&) = delete;
  ~List() { destroy(); }

  size_t size() const noexcept { return chunks_ >= 2 ? ring_.size : chunks_ == 1 ? one_.count : 0; }
  bool empty() const noexcept { return chunks_ == 0; }
  size_t chunk_count() const noexcept { return chunks_; }  // for tests and benchmarks
  const Chunk& chunk(size_t k) const noexcept {
    assert(k < chunks_);
    return chunks_ == 1 ? one_ : ring_.slots[(ring_.head + k) & (ring_.cap - 1)];
  }

  // ---- the encoding ----------------------------------------------------------------------
  static uint32_t varint_size(size_t n) noexcept {
    uint32_t k = 1;
    while (n >= 0x80) {
      n >>= 7;
      k++;
    }
    return k;
  }
  static size_t encoded_size(size_t len) noexcept { return len + 2 * varint_size(len); }
  // The element starting at p; *total = its encoded bytes.
  static std::string_view decode_at(const char* p, uint32_t* total) noexcept {
    uint8_t b = static_cast<uint8_t>(p[0]);
    if (b < 0x80) {
      *total = b + 2u;
      return {p + 1, b};
    }
    size_t n = 0;
    uint32_t k = 0, shift = 0;
    do {
      b = static_cast<uint8_t>(p[k++]);
      n |= static_cast<size_t>(b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    *total = static_cast<uint32_t>(n + 2 * k);
    return {p + k, n};
  }
  // The element ending at e (one past its last byte); *total = its encoded bytes.
  static std::string_view decode_before(const char* e, uint32_t* total) noexcept {
    uint8_t b = static_cast<uint8_t>(e[-1]);
    if (b < 0x80) {
      *total = b + 2u;
      return {e - 1 - b, b};
    }
    size_t n = 0;
    uint32_t k = 0, shift = 0;
    do {
      b = static_cast<uint8_t>(e[-1 - static_cast<ptrdiff_t>(k)]);
      k++;
      n |= static_cast<size_t>(b & 0x7f) << shift;
      shift += 7;
    } while (b & 0x80);
    *total = static_cast<uint32_t>(n + 2 * k);
    return {e - k - n, n};
  }
  // Writes v's encoding (encoded_size(v.size()) bytes) at p.
  static void encode(char* p, std::string_view v) noexcept {
    const size_t n = v.size();
    if (n < 0x80) {
      p[0] = static_cast<char>(n);
      if (n) std::memcpy(p + 1, v.data(), n);
      p[n + 1] = static_cast<char>(n);
      return;
    }
    const uint32_t k = varint_size(n);
    size_t x = n;
    for (uint32_t i = 0; i + 1 < k; i++, x >>= 7) *p++ = static_cast<char>((x & 0x7f) | 0x80);
    *p++ = static_cast<char>(x);
    std::memcpy(p, v.data(), n);
    p += n;
    x = n;
    for (uint32_t i = 0; i < k; i++, x >>= 7) p[k - 1 - i] = static_cast<char>((x & 0x7f) | (i + 1 < k ? 0x80 : 0));
  }

  // ---- reading ---------------------------------------------------------------------------

  // A position in the list: element `index`, chunk k, byte offset off of its start.
  class Cursor {
   public:
    std::string_view operator*() const noexcept {
      uint32_t t;
      return decode_at(c_->bytes + off_, &t);
    }
    // To the next element. REQUIRES: this is not the last one.
    void next() noexcept {
      uint32_t t;
      decode_at(c_->bytes + off_, &t);
      off_ += t;
      if (off_ == c_->end && k_ + 1 < l_->chunks_) {
        c_ = &l_->chunk(++k_);
        off_ = c_->begin;
      }
    }
    // To the previous element. REQUIRES: this is not the first one.
    void prev() noexcept {
      if (off_ == c_->begin) {
        c_ = &l_->chunk(--k_);
        off_ = c_->end;
      }
      uint32_t t;
      decode_before(c_->bytes + off_, &t);
      off_ -= t;
    }

   private:
    friend class List;
    const List* l_ = nullptr;
    const Chunk* c_ = nullptr;
    size_t k_ = 0;
    uint32_t off_ = 0;
  };
  // Element i. REQUIRES: i < size().
  Cursor cursor(size_t i) const noexcept {
    Cursor c;
    c.l_ = this;
    size_t in_chunk;
    c.k_ = find_chunk(i, &in_chunk);
    c.c_ = &chunk(c.k_);
    c.off_ = offset_in_chunk(*c.c_, in_chunk);
    return c;
  }
  std::string_view operator[](size_t i) const noexcept { return *cursor(i); }
  std::string_view front() const noexcept {
    const Chunk& c = chunk(0);
    uint32_t t;
    return decode_at(c.bytes + c.begin, &t);
  }
  std::string_view back() const noexcept {
    const Chunk& c = chunk(chunks_ - 1);
    uint32_t t;
    return decode_before(c.bytes + c.end, &t);
  }
  // fn(std::string_view) for each element, head first.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (size_t k = 0; k < chunks_; k++) {
      const Chunk& c = chunk(k);
      for (uint32_t off = c.begin; off < c.end;) {
        uint32_t t;
        fn(decode_at(c.bytes + off, &t));
        off += t;
      }
    }
  }

  // ---- writing ---------------------------------------------------------------------------

  void push_back(std::string_view v) {
    const size_t need = encoded_size(v.size());
    if (chunks_ != 0) {
      Chunk& c = back_chunk();
      if (c.cap - c.end >= need) {
        encode(c.bytes + c.end, v);
        c.end += static_cast<uint32_t>(need);
        c.count++;
        if (chunks_ >= 2) ring_.size++;
        return;
      }
    }
    push_slow(v, need, false);
  }
  void push_front(std::string_view v) {
    const size_t need = encoded_size(v.size());
    if (chunks_ != 0) {
      Chunk& c = front_chunk();
      if (c.begin >= need) {
        c.begin -= static_cast<uint32_t>(need);
        encode(c.bytes + c.begin, v);
        c.count++;
        if (chunks_ >= 2) ring_.size++;
        return;
      }
    }
    push_slow(v, need, true);
  }
  // REQUIRES: !empty().
  void pop_front() noexcept {
    Chunk& c = front_chunk();
    uint32_t t;
    decode_at(c.bytes + c.begin, &t);
    c.begin += t;
    after_end_pop(c, true);
  }
  void pop_back() noexcept {
    Chunk& c = back_chunk();
    uint32_t t;
    decode_before(c.bytes + c.end, &t);
    c.end -= t;
    after_end_pop(c, false);
  }

  // Removes the first n elements (the last n): whole chunks at a time. REQUIRES: n <= size().
  void erase_front(size_t n) noexcept;
  void erase_back(size_t n) noexcept;

  // Replaces element i with v. REQUIRES: i < size().
  void set(size_t i, std::string_view v);
  // Inserts v before element pos (pos == size(): at the end).
  void insert(size_t pos, std::string_view v);

  // Removes the elements for which remove(i, element) is true, called for i = 0, 1, ...
  // in order (i counted before any removal), keeping the others in order; the number
  // removed. O(size()); chunks left less than half full are merged with a neighbour.
  template <class Pred>
  size_t remove_where(Pred&& remove) {
    size_t removed = 0, i = 0;
    for (size_t k = 0; k < chunks_; k++) {
      Chunk& c = chunk_mut(k);
      uint32_t w = c.begin;
      for (uint32_t off = c.begin; off < c.end; i++) {
        uint32_t t;
        const std::string_view v = decode_at(c.bytes + off, &t);
        if (remove(i, v)) {
          removed++;
          c.count--;
        } else {
          if (w != off) std::memmove(c.bytes + w, c.bytes + off, t);
          w += t;
        }
        off += t;
      }
      c.end = w;
    }
    if (removed > 0) repack();
    return removed;
  }

  // Frees whole chunks from the back, at least one, until about `budget` elements are
  // gone, freeing a deleted list a bounded amount at a time (kv.h, Graveyard); the list is
  // only to be destroyed or cleared further afterwards. Returns the elements freed. (A
  // chunk costs one free() whatever its count, so counting elements is conservative.)
  size_t clear_some(size_t budget) noexcept;

  // Checks the invariants (tests): every chunk decodes to exactly its count, none is
  // empty, none outgrows the bound unless it holds one element, the counts sum to size().
  bool check() const;

 private:
  Chunk& chunk_mut(size_t k) noexcept {
    return chunks_ == 1 ? one_ : ring_.slots[(ring_.head + k) & (ring_.cap - 1)];
  }
  Chunk& front_chunk() noexcept { return chunk_mut(0); }
  Chunk& back_chunk() noexcept { return chunk_mut(chunks_ - 1); }

  // The chunk holding element i, and i's index inside it.
  size_t find_chunk(size_t i, size_t* in_chunk) const noexcept {
    const size_t n = size();
    assert(i < n);
    if (i < n / 2) {
      size_t k = 0;
      for (;; k++) {
        const uint32_t c = chunk(k).count;
        if (i < c) break;
        i -= c;
      }
      *in_chunk = i;
      return k;
    }
    size_t from_back = n - 1 - i, k = chunks_ - 1;
    for (;; k--) {
      const uint32_t c = chunk(k).count;
      if (from_back < c) break;
      from_back -= c;
    }
    *in_chunk = chunk(k).count - 1 - from_back;
    return k;
  }
  // The byte offset of element j of chunk c, walked from c's nearer end.
  static uint32_t offset_in_chunk(const Chunk& c, size_t j) noexcept {
    uint32_t t;
    if (j < c.count / 2) {
      uint32_t off = c.begin;
      for (; j > 0; j--) {
        decode_at(c.bytes + off, &t);
        off += t;
      }
      return off;
    }
    uint32_t off = c.end;
    for (size_t back = c.count - j; back > 0; back--) {
      decode_before(c.bytes + off, &t);
      off -= t;
    }
    return off;
  }

  // The block for `bytes`: a size glibc's malloc hands out whole, or exactly `bytes` for a
  // single element bigger than the bound (so no push ever lands in such a block).
  static uint32_t capacity_for(size_t bytes) noexcept {
    if (bytes <= kChunkBytesMin) return kChunkBytesMin;
    if (bytes > kChunkBytesMax) return static_cast<uint32_t>(bytes);
    return static_cast<uint32_t>(((bytes - 8 + 15) & ~size_t{15}) + 8);
  }
  static char* allocate(size_t cap) { return static_cast<char*>(::operator new(cap)); }
  static void deallocate(char* p) noexcept { ::operator delete(p); }

  void after_end_pop(Chunk& c, bool front) noexcept {
    c.count--;
    if (chunks_ >= 2) ring_.size--;
    if (c.count == 0) {
      if (front) drop_front_chunk(); else drop_back_chunk();
    } else if (chunks_ == 1 && c.cap > kChunkBytesMin && c.used() <= c.cap / 4) {
      shrink(c);
    }
  }

  void push_slow(std::string_view v, size_t need, bool front);
  void make_room(Chunk& c, size_t need, bool front);
  void shrink(Chunk& c) noexcept;
  void add_front_chunk(const Chunk& c);
  void add_end_chunk(const Chunk& n, bool front);  // both of the above
  void add_back_chunk(const Chunk& c);
  void drop_front_chunk() noexcept;  // frees its block
  void drop_back_chunk() noexcept;
  void drop_end_chunk(bool front) noexcept;  // both of the above
  void splice_at(size_t k, size_t j, uint32_t off, uint32_t old_bytes, std::string_view v);
  void repack();
  std::vector<Chunk> take_chunks();
  void adopt_chunks(std::vector<Chunk>&& all);
  void grow_ring();
  void steal(List& other) noexcept {
    std::memcpy(static_cast<void*>(&one_), static_cast<const void*>(&other.one_), sizeof(one_));
    chunks_ = std::exchange(other.chunks_, 0);
  }
  void destroy() noexcept;

  struct Ring {
    Chunk* slots;
    uint32_t cap;   // a power of two >= 4
    uint32_t head;  // slot of chunk 0
    uint64_t size;  // elements in all chunks
  };
  static_assert(sizeof(Ring) == sizeof(Chunk));
  union {
    Chunk one_{};  // chunks_ == 1
    Ring ring_;    // chunks_ >= 2
  };
  uint32_t chunks_ = 0;
};
static_assert(sizeof(List) == 32, "a list is held in place in a key's Value");

}  // namespace hmdb::kv
