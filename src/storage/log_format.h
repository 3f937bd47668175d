// storage/log_format.h — the on-disk format of the command log, shared by the writer, the
// reader, the inspect tools and the fuzz target (one header, so they cannot disagree).
// docs/formats.md describes it byte by byte; keep the two in step.
//
// A log is a directory of segment files `log-<N, 20 digits>.hmlog`. N is the index of the
// first entry appended to the segment (or the next expected index if the segment was
// created for a hard state alone); names are strictly increasing in creation order, so
// sorting by N gives the write order.
//
// Segment = 32-byte header, then records back to back:
//   header: 8 bytes magic "HMDBLOG1" | u32 format version (1) | u32 reserved (0)
//           | u64 first index (= N of the file name) | u64 XXH3_64 of the 24 bytes before
//   record: u32 payload_length | u8 type | u8 flags (0) | u16 reserved (0)
//           | u32 schema_version | u64 term | u64 index | payload | u64 checksum
//   checksum = XXH3_64bits over every byte of the record before it (length included).
// All integers little endian.
#pragma once

#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "hmdb/codec.h"
#include "hmdb/text.h"
#include "raft/types.h"

namespace hmdb::storage::log_format {

inline constexpr char kSegmentMagic[8] = {'H', 'M', 'D', 'B', 'L', 'O', 'G', '1'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr size_t kSegmentHeaderSize = 32;
inline constexpr size_t kRecordHeaderSize = 28;
inline constexpr size_t kRecordChecksumSize = 8;
inline constexpr size_t kRecordOverhead = kRecordHeaderSize + kRecordChecksumSize;
// Bound on one record's payload. A larger length field is damage, never a real record;
// it also caps what a reader allocates for one record.
inline constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 30;
inline constexpr size_t kHardStatePayloadSize = 24;  // u64 term, u64 vote, u64 commit
// File name: "log-" + 20 digits + ".hmlog".
inline constexpr std::string_view kSegmentPrefix = "log-";
inline constexpr std::string_view kSegmentSuffix = ".hmlog";
inline constexpr size_t kIndexDigits = 20;

enum class RecordType : uint8_t {
  kEntryNormal = 1,      // raft::EntryType::kNormal; payload = command batch (core/batch.h)
  kEntryConfChange = 2,  // raft::EntryType::kConfChange
  kEntryNoop = 3,        // raft::EntryType::kNoop
  kHardState = 4,        // payload = term, vote, commit; header term/index/schema are 0
};
static_assert(static_cast<uint8_t>(RecordType::kEntryNormal) == static_cast<uint8_t>(raft::EntryType::kNormal));
static_assert(static_cast<uint8_t>(RecordType::kEntryConfChange) == static_cast<uint8_t>(raft::EntryType::kConfChange));
static_assert(static_cast<uint8_t>(RecordType::kEntryNoop) == static_cast<uint8_t>(raft::EntryType::kNoop));

inline const char* record_type_name(uint8_t type) {
  switch (type) {
    case 1: return "entry";
    case 2: return "confchange";
    case 3: return "noop";
    case 4: return "hardstate";
    default: return "unknown";
  }
}

// ---- fixed-width fields (the one codec's; named here for the format's readers) ----
using codec::get_u16;
using codec::get_u32;
using codec::get_u64;

// ---- names ----
inline std::string segment_file_name(uint64_t first_index) {
  std::string digits = std::to_string(first_index);
  return std::string(kSegmentPrefix) + std::string(kIndexDigits - digits.size(), '0') + digits +
         std::string(kSegmentSuffix);
}
// True if name is exactly log-<20 digits>.hmlog; sets *first_index.
inline bool parse_segment_file_name(std::string_view name, uint64_t* first_index) {
  if (name.size() != kSegmentPrefix.size() + kIndexDigits + kSegmentSuffix.size()) return false;
  if (name.substr(0, kSegmentPrefix.size()) != kSegmentPrefix) return false;
  if (name.substr(kSegmentPrefix.size() + kIndexDigits) != kSegmentSuffix) return false;
  return parse_uint64(name.substr(kSegmentPrefix.size(), kIndexDigits), first_index);
}

// ---- encoding ----
// Headers are built in place on the stack and appended once: the writer's hot path costs
// one append per field group, never an allocation once the caller's buffer has grown.
inline void append_segment_header(std::string* out, uint64_t first_index) {
  char h[kSegmentHeaderSize];
  std::memcpy(h, kSegmentMagic, sizeof kSegmentMagic);
  codec::put_u32(h + 8, kFormatVersion);
  codec::put_u32(h + 12, 0);
  codec::put_u64(h + 16, first_index);
  codec::put_u64(h + 24, XXH3_64bits(h, 24));
  out->append(h, sizeof h);
}

// REQUIRES: payload.size() <= kMaxPayloadBytes.
inline void append_record(std::string* out, RecordType type, uint32_t schema_version, uint64_t term,
                          uint64_t index, std::string_view payload) {
  size_t start = out->size();
  char h[kRecordHeaderSize];
  codec::put_u32(h, static_cast<uint32_t>(payload.size()));
  h[4] = static_cast<char>(type);
  h[5] = 0;                // flags
  codec::put_u16(h + 6, 0);  // reserved
  codec::put_u32(h + 8, schema_version);
  codec::put_u64(h + 12, term);
  codec::put_u64(h + 20, index);
  out->append(h, sizeof h);
  out->append(payload.data(), payload.size());
  char sum[kRecordChecksumSize];
  codec::put_u64(sum, XXH3_64bits(out->data() + start, out->size() - start));
  out->append(sum, sizeof sum);
}

inline void append_entry(std::string* out, const raft::Entry& e) {
  append_record(out, static_cast<RecordType>(e.type), e.schema_version, e.term, e.index, e.data);
}

inline void append_hard_state(std::string* out, const raft::HardState& hs) {
  char payload[kHardStatePayloadSize];
  codec::put_u64(payload, hs.term);
  codec::put_u64(payload + 8, hs.vote);
  codec::put_u64(payload + 16, hs.commit);
  append_record(out, RecordType::kHardState, 0, 0, 0, std::string_view(payload, sizeof payload));
}

// ---- decoding ----
struct SegmentHeader {
  uint32_t format_version = 0;
  uint64_t first_index = 0;
};

// Checks a segment header. On failure returns false and sets *problem.
inline bool decode_segment_header(std::string_view data, SegmentHeader* out, std::string* problem) {
  if (data.size() < kSegmentHeaderSize) {
    *problem = "file is shorter than the " + std::to_string(kSegmentHeaderSize) + "-byte segment header";
    return false;
  }
  const char* p = data.data();
  if (std::memcmp(p, kSegmentMagic, sizeof kSegmentMagic) != 0) {
    *problem = "bad magic (not an hmdb log segment, expected \"HMDBLOG1\")";
    return false;
  }
  if (get_u64(p + 24) != XXH3_64bits(p, 24)) {
    *problem = "segment header checksum mismatch";
    return false;
  }
  out->format_version = get_u32(p + 8);
  out->first_index = get_u64(p + 16);
  if (out->format_version != kFormatVersion) {
    *problem = "unsupported segment format version " + std::to_string(out->format_version) +
               " (this build reads version " + std::to_string(kFormatVersion) + ")";
    return false;
  }
  if (get_u32(p + 12) != 0) {
    *problem = "non-zero reserved field in segment header";
    return false;
  }
  return true;
}

struct RecordView {
  uint32_t payload_length = 0;
  uint8_t type = 0;
  uint8_t flags = 0;
  uint16_t reserved = 0;
  uint32_t schema_version = 0;
  uint64_t term = 0;
  uint64_t index = 0;
  std::string_view payload;
  uint64_t checksum = 0;
  size_t size = 0;  // whole record, header to checksum
};

enum class RecordCheck {
  kOk,
  kShortHeader,   // fewer than kRecordHeaderSize bytes left
  kTooLong,       // payload_length > kMaxPayloadBytes
  kPastEnd,       // the record's extent runs past the end of the data
  kBadChecksum,
  kBadFields,     // checksum is right but a field is impossible (type, flags, sizes)
};

inline const char* record_check_text(RecordCheck c) {
  switch (c) {
    case RecordCheck::kOk: return "ok";
    case RecordCheck::kShortHeader: return "incomplete record header";
    case RecordCheck::kTooLong: return "record length exceeds the 1 GiB bound";
    case RecordCheck::kPastEnd: return "record runs past the end of the file";
    case RecordCheck::kBadChecksum: return "record checksum mismatch";
    case RecordCheck::kBadFields: return "record has impossible fields";
  }
  return "?";
}

// Decodes the record at the start of `at` and verifies its checksum and fields.
// Never reads outside `at` (fuzzed).
inline RecordCheck decode_record(std::string_view at, RecordView* r) {
  if (at.size() < kRecordHeaderSize) return RecordCheck::kShortHeader;
  const char* p = at.data();
  r->payload_length = get_u32(p);
  r->type = static_cast<uint8_t>(p[4]);
  r->flags = static_cast<uint8_t>(p[5]);
  r->reserved = get_u16(p + 6);
  r->schema_version = get_u32(p + 8);
  r->term = get_u64(p + 12);
  r->index = get_u64(p + 20);
  if (r->payload_length > kMaxPayloadBytes) return RecordCheck::kTooLong;
  uint64_t size = kRecordOverhead + uint64_t{r->payload_length};
  if (size > at.size()) return RecordCheck::kPastEnd;
  r->size = static_cast<size_t>(size);
  r->payload = at.substr(kRecordHeaderSize, r->payload_length);
  r->checksum = get_u64(p + kRecordHeaderSize + r->payload_length);
  if (XXH3_64bits(p, kRecordHeaderSize + r->payload_length) != r->checksum) return RecordCheck::kBadChecksum;
  if (r->type < 1 || r->type > 4 || r->flags != 0 || r->reserved != 0) return RecordCheck::kBadFields;
  if (r->type == static_cast<uint8_t>(RecordType::kHardState) &&
      (r->payload_length != kHardStatePayloadSize || r->term != 0 || r->index != 0 || r->schema_version != 0)) {
    return RecordCheck::kBadFields;
  }
  return RecordCheck::kOk;
}

inline raft::HardState decode_hard_state(const RecordView& r) {
  const char* p = r.payload.data();
  return raft::HardState{get_u64(p), get_u64(p + 8), get_u64(p + 16)};
}

// Cheap test used when searching for a valid record after a bad one: plausible header
// fields first, the checksum only then (so scanning garbage stays linear in practice).
inline bool is_valid_record_at(std::string_view at) {
  if (at.size() < kRecordOverhead) return false;
  const char* p = at.data();
  uint8_t type = static_cast<uint8_t>(p[4]);
  if (type < 1 || type > 4 || p[5] != 0 || get_u16(p + 6) != 0) return false;
  uint64_t len = get_u32(p);
  if (len > kMaxPayloadBytes || kRecordOverhead + len > at.size()) return false;
  return XXH3_64bits(p, kRecordHeaderSize + len) == get_u64(p + kRecordHeaderSize + len);
}

}  // namespace hmdb::storage::log_format
