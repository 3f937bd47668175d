// core/record_sketch.cc — the record sketch of a state and the comparison of two
// (core/record_sketch.h).
#include "core/record_sketch.h"

#include <algorithm>
#include <cstring>

#include "hmdb/codec.h"

namespace hmdb::core {

namespace {
constexpr uint32_t kSketchMagic = 0x31736b72;  // "rks1"
constexpr size_t kCellsPerHash = kSketchCells / kSketchHashes;
static_assert(kSketchCells % kSketchHashes == 0);
static_assert((kSketchBuckets & (kSketchBuckets - 1)) == 0);
// Seeds of the hashes (any fixed values: every node and the tool use these).
constexpr uint64_t kKeySeed = 0x6b6579;       // the key hash
constexpr uint64_t kElementSeed = 0x656c74;   // a record's element hash: (key hash, record hash)
constexpr uint64_t kCheckSeed = 0x636865636b;  // its check

uint64_t element_of(uint64_t key_hash, uint64_t record_hash) {
  const uint64_t both[2] = {key_hash, record_hash};
  return XXH3_64bits_withSeed(both, sizeof both, kElementSeed);
}
uint64_t check_of(uint64_t element) { return XXH3_64bits_withSeed(&element, sizeof element, kCheckSeed); }
// The cell of `element` in sub-table j: a different slice of its hash for each.
size_t cell_of(uint64_t element, size_t j) { return j * kCellsPerHash + static_cast<size_t>((element >> (j * 20)) % kCellsPerHash); }

// Adds (sign +1) or removes (-1) one record's fields to a cell.
void toggle(SketchCell& c, int32_t sign, uint64_t key_hash, uint64_t record_hash, uint64_t check, uint32_t key_size,
            const char* key) {
  c.count += sign;
  c.key_size ^= key_size;
  c.key_hash ^= key_hash;
  c.record_hash ^= record_hash;
  c.check ^= check;
  for (size_t i = 0; i < kSketchKeyBytes; i++) c.key[i] ^= key[i];
}

class SketchSink final : public RecordSink {
 public:
  explicit SketchSink(RecordSketch* s) : s_(s) {}
  void record(std::string_view key, uint64_t hash) override { s_->add(key, hash); }

 private:
  RecordSketch* s_;
};
}  // namespace

bool SketchCell::empty() const {
  if (count != 0 || key_size != 0 || key_hash != 0 || record_hash != 0 || check != 0) return false;
  for (char b : key)
    if (b != 0) return false;
  return true;
}

void RecordSketch::add(std::string_view key, uint64_t record_hash) {
  const uint64_t key_hash = XXH3_64bits_withSeed(key.data(), key.size(), kKeySeed);
  const uint64_t element = element_of(key_hash, record_hash);
  const size_t bucket = key_hash & (kSketchBuckets - 1);
  records++;
  buckets[bucket] += element;
  bucket_records[bucket]++;
  char prefix[kSketchKeyBytes] = {};
  std::memcpy(prefix, key.data(), std::min(key.size(), kSketchKeyBytes));
  const uint64_t check = check_of(element);
  const uint32_t size = static_cast<uint32_t>(std::min<size_t>(key.size(), UINT32_MAX));
  for (size_t j = 0; j < kSketchHashes; j++) toggle(cells[cell_of(element, j)], +1, key_hash, record_hash, check, size, prefix);
}

std::string RecordSketch::encode() const {
  Encoder e;
  e.u32(kSketchMagic);
  e.u32(kSketchBuckets);
  e.u32(kSketchCells);
  e.u32(kSketchKeyBytes);
  e.u64(records);
  for (size_t b = 0; b < kSketchBuckets; b++) {
    e.u64(buckets[b]);
    e.u32(bucket_records[b]);
  }
  for (const SketchCell& c : cells) {
    e.u32(static_cast<uint32_t>(c.count));
    e.u32(c.key_size);
    e.u64(c.key_hash);
    e.u64(c.record_hash);
    e.u64(c.check);
    e.raw(std::string_view(c.key.data(), c.key.size()));
  }
  return e.take();
}

bool RecordSketch::decode(std::string_view bytes, RecordSketch* out) {
  if (bytes.size() != kRecordSketchBytes) return false;
  Decoder d(bytes);
  if (d.u32() != kSketchMagic || d.u32() != kSketchBuckets || d.u32() != kSketchCells || d.u32() != kSketchKeyBytes)
    return false;
  out->records = d.u64();
  for (size_t b = 0; b < kSketchBuckets; b++) {
    out->buckets[b] = d.u64();
    out->bucket_records[b] = d.u32();
  }
  for (SketchCell& c : out->cells) {
    c.count = static_cast<int32_t>(d.u32());
    c.key_size = d.u32();
    c.key_hash = d.u64();
    c.record_hash = d.u64();
    c.check = d.u64();
    const std::string_view k = d.raw(kSketchKeyBytes);
    if (!d.ok()) return false;
    std::memcpy(c.key.data(), k.data(), kSketchKeyBytes);
  }
  return d.ok() && d.expect_end();
}

std::optional<RecordSketch> record_sketch(const StateMachine& app, uint32_t version) {
  std::optional<RecordSketch> s(std::in_place);
  SketchSink sink(&*s);
  if (!app.records(version, sink)) return std::nullopt;
  return s;
}

SketchComparison compare_sketches(const RecordSketch& a, const RecordSketch& b) {
  SketchComparison out;
  for (size_t i = 0; i < kSketchBuckets; i++)
    if (a.buckets[i] != b.buckets[i] || a.bucket_records[i] != b.bucket_records[i]) out.buckets.push_back(i);
  // a - b: what both hold cancels (count 0, every XOR 0); +1 cells hold a's, -1 cells b's.
  std::array<SketchCell, kSketchCells> diff = a.cells;
  for (size_t i = 0; i < kSketchCells; i++) {
    const SketchCell& c = b.cells[i];
    toggle(diff[i], -c.count, c.key_hash, c.record_hash, c.check, c.key_size, c.key.data());
  }
  struct Named {
    uint64_t key_hash, record_hash;
    uint32_t key_size;
    std::string key;
    int32_t side;  // +1: a holds it, -1: b
  };
  std::vector<Named> named;
  // A cell holding exactly one record: count +-1 and a check that matches its fields.
  auto pure = [](const SketchCell& c) {
    return (c.count == 1 || c.count == -1) && c.check == check_of(element_of(c.key_hash, c.record_hash));
  };
  bool progress = true;
  while (progress && named.size() < kSketchPeelMax) {
    progress = false;
    for (size_t i = 0; i < kSketchCells && named.size() < kSketchPeelMax; i++) {
      if (!pure(diff[i])) continue;
      const SketchCell one = diff[i];
      const uint64_t element = element_of(one.key_hash, one.record_hash);
      bool fits = false;  // a true record is in this cell's own slot
      for (size_t j = 0; j < kSketchHashes; j++) fits = fits || cell_of(element, j) == i;
      if (!fits) continue;
      for (size_t j = 0; j < kSketchHashes; j++)
        toggle(diff[cell_of(element, j)], -one.count, one.key_hash, one.record_hash, one.check, one.key_size,
               one.key.data());
      named.push_back(Named{one.key_hash, one.record_hash, one.key_size,
                            std::string(one.key.data(), std::min<size_t>(one.key_size, kSketchKeyBytes)), one.count});
      progress = true;
    }
  }
  out.complete = std::all_of(diff.begin(), diff.end(), [](const SketchCell& c) { return c.empty(); });
  // One line per key: held by both with different hashes, or by one only.
  for (const Named& n : named) {
    auto it = std::find_if(out.records.begin(), out.records.end(),
                           [&](const RecordDifference& r) { return r.key_hash == n.key_hash && r.key_size == n.key_size; });
    if (it == out.records.end()) {
      out.records.push_back(RecordDifference{n.key, n.key_size, n.key_hash, n.key_hash & (kSketchBuckets - 1), {}, {}});
      it = out.records.end() - 1;
    }
    (n.side > 0 ? it->hash_a : it->hash_b) = n.record_hash;
  }
  std::sort(out.records.begin(), out.records.end(), [](const RecordDifference& x, const RecordDifference& y) {
    if (x.bucket != y.bucket) return x.bucket < y.bucket;
    if (x.key != y.key) return x.key < y.key;
    return x.key_hash < y.key_hash;
  });
  return out;
}

std::string to_hex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

bool from_hex(std::string_view hex, std::string* bytes) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  bytes->clear();
  bytes->reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

std::string printable_key(std::string_view key, uint32_t full_size) {
  const bool quote = key.empty() || key.find_first_of(" \"") != std::string_view::npos;
  std::string out = quote ? "\"" : "";
  for (unsigned char c : key) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (quote) out += '"';
  if (full_size > key.size()) out += "... (" + std::to_string(full_size) + " bytes)";
  return out;
}

}  // namespace hmdb::core
