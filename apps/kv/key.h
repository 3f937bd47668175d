// apps/kv/key.h — kv::Key, a string with a 31-byte inline buffer, for the kv app's keys,
// member names and hash fields.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>

namespace hmdb::kv {

// A key or member name in a hash table: up to kInlineBytesMax bytes live inside the
// 32-byte object, longer ones in one heap block. std::string keeps only 15 bytes inline,
// so the common 16-30-byte key ("user:1000:session") would cost a malloc, 32 more bytes
// and a cache miss per key; at 10 M keys that is 320 MiB and most of the load time.
class Key {
 public:
  static constexpr size_t kInlineBytesMax = 31;

  Key() noexcept { raw_[kTagAt] = 0; }
  explicit Key(std::string_view s) { init(s); }
  Key(const Key& other) { init(other.view()); }
  Key(Key&& other) noexcept {
    std::memcpy(raw_, other.raw_, sizeof raw_);
    other.raw_[kTagAt] = 0;
  }
  Key& operator=(const Key& other) {
    if (this != &other) { Key copy(other); *this = std::move(copy); }
    return *this;
  }
  Key& operator=(Key&& other) noexcept {
    if (this != &other) {
      release();
      std::memcpy(raw_, other.raw_, sizeof raw_);
      other.raw_[kTagAt] = 0;
    }
    return *this;
  }
  ~Key() { release(); }

  std::string_view view() const noexcept {
    if (!on_heap()) return std::string_view(raw_, static_cast<unsigned char>(raw_[kTagAt]));
    const char* p;
    size_t n;
    std::memcpy(&p, raw_, sizeof p);
    std::memcpy(&n, raw_ + sizeof p, sizeof n);
    return std::string_view(p, n);
  }
  operator std::string_view() const noexcept { return view(); }  // NOLINT: lookups by view

 private:
  static constexpr size_t kTagAt = 31;           // inline length, or kHeapTag
  static constexpr unsigned char kHeapTag = 0xff;
  static_assert(kInlineBytesMax < kHeapTag);

  bool on_heap() const noexcept { return static_cast<unsigned char>(raw_[kTagAt]) == kHeapTag; }
  void init(std::string_view s) {
    if (s.size() <= kInlineBytesMax) {
      std::memcpy(raw_, s.data(), s.size());
      raw_[kTagAt] = static_cast<char>(s.size());
      return;
    }
    char* p = new char[s.size()];
    std::memcpy(p, s.data(), s.size());
    size_t n = s.size();
    std::memcpy(raw_, &p, sizeof p);
    std::memcpy(raw_ + sizeof p, &n, sizeof n);
    raw_[kTagAt] = static_cast<char>(kHeapTag);
  }
  void release() noexcept {
    if (!on_heap()) return;
    char* p;
    std::memcpy(&p, raw_, sizeof p);
    delete[] p;
  }

  alignas(8) char raw_[32];
};
static_assert(sizeof(Key) == 32);

}  // namespace hmdb::kv
