// hmdb/codec.h — the binary encoding used by snapshots, log payloads and peer messages.
// It is the one codec of the tree: the log's record format (storage/log_format.h), the
// snapshot header, the peer frames (net/peer_protocol.cc) and raft's membership entries are
// written and read with it, so every little-endian field has one implementation.
//
// Encoder appends little-endian fixed-width integers, LEB128 varints and length-prefixed
// byte strings to a buffer: its own, or a caller's std::string it appends to in place (the
// log writer and the peer frame codec reuse one buffer per batch: no copy, no allocation
// once it has grown). When the buffer is given a Sink, it is flushed to the sink whenever
// it grows past Encoder::kFlushBytes, so a multi-GiB snapshot is streamed to disk without
// being held in memory twice.
//
// Decoder reads the same encoding from a string_view. It never throws and never reads out
// of bounds: the first malformed field sets ok() to false, every later read returns zero
// or an empty view, and the caller checks ok() once at the end (a sticky error, like
// std::istream's failbit). Decoders are used on untrusted bytes (fuzzed), so every length
// is checked against what remains. A count of items is read with count<T...>(), which
// refuses a count the remaining bytes cannot hold, the fewest bytes per item derived from
// the C++ types of the values each item holds (codec::encoded_bytes_min); expect_end() says
// the input must end there.
//
// codec::put_u16/u32/u64 and codec::get_u16/u32/u64 are the fixed-width primitives under
// both: they write into a preallocated header (a record header built on the stack, a
// checksum filled in after the body) and read a field at a known offset. REQUIRES: the
// caller owns that many bytes at the pointer.
//
// Thread-safety: none; one Encoder/Decoder per thread.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace hmdb {

namespace codec {

inline void put_u16(char* out, uint16_t v) {
  for (size_t i = 0; i < 2; i++) out[i] = static_cast<char>(v >> (8 * i));
}
inline void put_u32(char* out, uint32_t v) {
  for (size_t i = 0; i < 4; i++) out[i] = static_cast<char>(v >> (8 * i));
}
inline void put_u64(char* out, uint64_t v) {
  for (size_t i = 0; i < 8; i++) out[i] = static_cast<char>(v >> (8 * i));
}
inline uint16_t get_u16(const char* in) {
  return static_cast<uint16_t>(static_cast<uint8_t>(in[0]) | (static_cast<uint16_t>(static_cast<uint8_t>(in[1])) << 8));
}
inline uint32_t get_u32(const char* in) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; i++) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}
inline uint64_t get_u64(const char* in) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8; i++) v |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}

// The fewest bytes any of the Encoder's writers produces for a value of C++ type T, so
// that a count of items checked with it never refuses bytes an Encoder wrote: an integer,
// bool or enum 1 (varint, svarint, u8), a floating-point number 8 (f64), a string 1 (its
// length; bytes()), std::array<char, N> N (raw()), a container or std::optional 1 (a count
// or a flag), a pair or tuple the sum of its members'. Any other type (a struct) has no
// size: list the types of the values save() writes for it instead.
template <class T, class = void>
struct EncodedBytesMin {
  static constexpr bool kKnown = false;
  static constexpr size_t value = 0;
};
template <class T>
struct EncodedBytesMin<T, std::enable_if_t<std::is_integral_v<T> || std::is_enum_v<T>>> {
  static constexpr bool kKnown = true;
  static constexpr size_t value = 1;
};
template <class T>
struct EncodedBytesMin<T, std::enable_if_t<std::is_floating_point_v<T>>> {
  static constexpr bool kKnown = true;
  static constexpr size_t value = 8;
};
template <class T>
struct IsStdArray : std::false_type {};
template <class T, size_t N>
struct IsStdArray<std::array<T, N>> : std::true_type {};
template <class T>  // strings and containers: a length or count first
struct EncodedBytesMin<T, std::enable_if_t<!std::is_arithmetic_v<T> && !IsStdArray<T>::value && requires(const T& t) {
                            t.size();
                            t.begin();
                          }>> {
  static constexpr bool kKnown = true;
  static constexpr size_t value = 1;
};
template <class T, size_t N>
struct EncodedBytesMin<std::array<T, N>> {  // fixed size: written with raw(), no length
  static constexpr bool kKnown = EncodedBytesMin<T>::kKnown;
  static constexpr size_t value = N * EncodedBytesMin<T>::value;
};
template <class T>
struct EncodedBytesMin<std::optional<T>> {
  static constexpr bool kKnown = true;
  static constexpr size_t value = 1;
};
template <class... Ts>
struct EncodedBytesMin<std::tuple<Ts...>> {
  static constexpr bool kKnown = (EncodedBytesMin<std::remove_cv_t<Ts>>::kKnown && ...);
  static constexpr size_t value = (size_t{0} + ... + EncodedBytesMin<std::remove_cv_t<Ts>>::value);
};
template <class A, class B>
struct EncodedBytesMin<std::pair<A, B>> : EncodedBytesMin<std::tuple<A, B>> {};

template <class... Ts>
inline constexpr size_t encoded_bytes_min = EncodedBytesMin<std::tuple<Ts...>>::value;

}  // namespace codec

// Receives encoded bytes. REQUIRES: write() either consumes all bytes or records an error
// that its owner checks after Encoder::finish().
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(std::string_view bytes) = 0;
};

class Encoder {
 public:
  // Flush threshold when a Sink is attached: large enough to amortise write(2) calls.
  static constexpr size_t kFlushBytes = 1 << 20;

  Encoder() = default;
  explicit Encoder(Sink* sink) : sink_(sink) { buf_->reserve(kFlushBytes + 4096); }
  // Appends to *out, which the caller owns and keeps alive while this Encoder is used;
  // buffer(), take() and clear() then act on *out (its earlier bytes included).
  explicit Encoder(std::string* out) : buf_(out) {}

  // Copies and moves keep an Encoder's own buffer its own.
  Encoder(const Encoder& o) : sink_(o.sink_), own_(o.own_), buf_(o.owns() ? &own_ : o.buf_) {}
  Encoder(Encoder&& o) noexcept : sink_(o.sink_), own_(std::move(o.own_)), buf_(o.owns() ? &own_ : o.buf_) {}
  Encoder& operator=(const Encoder& o) {
    if (this != &o) {
      sink_ = o.sink_;
      own_ = o.own_;
      buf_ = o.owns() ? &own_ : o.buf_;
    }
    return *this;
  }
  Encoder& operator=(Encoder&& o) noexcept {
    if (this != &o) {
      sink_ = o.sink_;
      own_ = std::move(o.own_);
      buf_ = o.owns() ? &own_ : o.buf_;
    }
    return *this;
  }

  void u8(uint8_t v) { buf_->push_back(static_cast<char>(v)); maybe_flush(); }
  void u16(uint16_t v) { fixed(v); }
  void u32(uint32_t v) { fixed(v); }
  void u64(uint64_t v) { fixed(v); }
  void i64(int64_t v) { fixed(static_cast<uint64_t>(v)); }
  void f64(double v) { uint64_t bits; std::memcpy(&bits, &v, 8); fixed(bits); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void varint(uint64_t v) {
    char tmp[10];
    int n = 0;
    while (v >= 0x80) { tmp[n++] = static_cast<char>((v & 0x7f) | 0x80); v >>= 7; }
    tmp[n++] = static_cast<char>(v);
    buf_->append(tmp, n);
    maybe_flush();
  }
  // Zig-zag signed varint.
  void svarint(int64_t v) { varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
  // varint length, then the bytes.
  void bytes(std::string_view s) { varint(s.size()); raw(s); }
  void raw(std::string_view s) { buf_->append(s.data(), s.size()); maybe_flush(); }

  // In-memory use (no sink): the encoded bytes so far.
  const std::string& buffer() const { return *buf_; }
  std::string take() { return std::move(*buf_); }
  size_t size() const { return buf_->size(); }
  void clear() { buf_->clear(); }
  // Sink use: push out what is buffered. Call once when done.
  void finish() { if (sink_ && !buf_->empty()) { sink_->write(*buf_); buf_->clear(); } }

 private:
  template <class T>
  void fixed(T v) {
    char tmp[sizeof(T)];
    if constexpr (sizeof(T) == 2) codec::put_u16(tmp, v);
    if constexpr (sizeof(T) == 4) codec::put_u32(tmp, v);
    if constexpr (sizeof(T) == 8) codec::put_u64(tmp, v);
    buf_->append(tmp, sizeof(T));
    maybe_flush();
  }
  void maybe_flush() {
    if (sink_ && buf_->size() >= kFlushBytes) { sink_->write(*buf_); buf_->clear(); }
  }
  bool owns() const { return buf_ == &own_; }

  Sink* sink_ = nullptr;
  std::string own_;
  std::string* buf_ = &own_;  // &own_, or the caller's string
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  uint8_t u8() { return static_cast<uint8_t>(fixed<uint8_t>()); }
  uint16_t u16() { return fixed<uint16_t>(); }
  uint32_t u32() { return fixed<uint32_t>(); }
  uint64_t u64() { return fixed<uint64_t>(); }
  int64_t i64() { return static_cast<int64_t>(fixed<uint64_t>()); }
  double f64() { uint64_t bits = fixed<uint64_t>(); double v; std::memcpy(&v, &bits, 8); return v; }
  bool boolean() {
    uint8_t v = u8();
    if (v > 1) fail();
    return v == 1;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) { fail(); return 0; }
      uint8_t b = static_cast<uint8_t>(in_[0]);
      in_.remove_prefix(1);
      if (shift == 63 && b > 1) { fail(); return 0; }
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail();
    return 0;
  }
  int64_t svarint() { uint64_t u = varint(); return static_cast<int64_t>((u >> 1) ^ (~(u & 1) + 1)); }
  // A varint length then that many bytes; the view points into the input.
  std::string_view bytes() {
    uint64_t n = varint();
    return raw(n);
  }
  std::string_view raw(uint64_t n) {
    if (!ok_ || n > in_.size()) { fail(); return {}; }
    std::string_view out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }
  // A count of items, each saved as values of the C++ types Item... in order (for a map
  // of string to double: count<std::string, double>()). Refuses a count that cannot fit in
  // what remains, so a corrupt count cannot make the caller reserve() gigabytes; the
  // fewest bytes per item are derived from the types (codec::EncodedBytesMin), never
  // overstated, so a count an Encoder wrote is never refused.
  template <class... Item>
  uint64_t count() {
    static_assert(sizeof...(Item) > 0, "Decoder::count<Item...>(): name the types of the values each item holds");
    static_assert(codec::EncodedBytesMin<std::tuple<std::remove_cv_t<Item>...>>::kKnown,
                  "Decoder::count<Item...>(): no encoded size is known for one of these types (a struct?): "
                  "list the types of the values save() writes for one item, e.g. count<std::string, uint64_t>()");
    return count(codec::encoded_bytes_min<std::remove_cv_t<Item>...>);
  }
  // The same with the fewest bytes per item given by hand: for the engine's own formats,
  // whose item sizes a format document fixes. Apps use count<Item...>().
  uint64_t count(size_t min_item_bytes) {
    uint64_t n = varint();
    if (min_item_bytes && n > in_.size() / min_item_bytes) { fail(); return 0; }
    return n;
  }

  // The input must end here: fails the decoder if any byte remains. Returns ok().
  bool expect_end() {
    if (!in_.empty()) fail();
    return ok_;
  }

  bool ok() const { return ok_; }
  bool done() const { return ok_ && in_.empty(); }
  size_t remaining() const { return in_.size(); }
  void fail() { ok_ = false; in_ = {}; }
  // For an app's load(): the bytes are sound, but this version will not take the state they
  // hold (a migration that must be refused: a value the new layout cannot hold, data a
  // human must fix first). Fails the decoder like malformed input, and keeps the reason:
  // the engine then reports it (startup, a snapshot from the leader, `hmdb dry-run`) as a
  // refused migration, exit code 1, instead of calling the snapshot damaged
  // (docs/migrations.md, "A migration that must be refused").
  void refuse(std::string why) {
    refusal_ = std::move(why);
    fail();
  }
  // Why load() refused the state (empty: it did not, or the input was malformed).
  const std::string& refusal() const { return refusal_; }

 private:
  template <class T>
  T fixed() {
    if (!ok_ || in_.size() < sizeof(T)) { fail(); return 0; }
    T v = 0;
    if constexpr (sizeof(T) == 1) v = static_cast<uint8_t>(in_[0]);
    if constexpr (sizeof(T) == 2) v = codec::get_u16(in_.data());
    if constexpr (sizeof(T) == 4) v = codec::get_u32(in_.data());
    if constexpr (sizeof(T) == 8) v = codec::get_u64(in_.data());
    in_.remove_prefix(sizeof(T));
    return v;
  }

  std::string_view in_;
  bool ok_ = true;
  std::string refusal_;
};

}  // namespace hmdb
