// core/batch.h — the payload of a normal log entry: a batch of client commands.
//
// The shell packs every write that arrived in one event-loop turn into one log entry, so
// consensus, the log and fsync pay their per-entry cost once per batch, not per command.
// The leader stamps its wall clock into the batch; apply() reads time only from there.
//
// Format (docs/formats.md): u8 format (=1), u64 leader_time_ms, varint count, then count
// commands, each: varint argc, then argc byte strings (varint length + bytes).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/codec.h"
#include "hmdb/state_machine.h"

namespace hmdb::core {

inline constexpr uint8_t kBatchFormat = 1;
// Bound on words per command in a batch (also enforced by the RESP parser).
inline constexpr uint64_t kMaxArgsPerCommand = 1024 * 1024;

class BatchBuilder {
 public:
  explicit BatchBuilder(uint64_t leader_time_ms) { start(leader_time_ms); }
  void start(uint64_t leader_time_ms) {
    body_.clear();
    count_ = 0;
    time_ms_ = leader_time_ms;
  }
  void add(Args argv) {
    body_.varint(argv.size());
    for (auto a : argv) body_.bytes(a);
    count_++;
  }
  uint64_t count() const { return count_; }
  bool empty() const { return count_ == 0; }
  size_t body_bytes() const { return body_.size(); }
  // The entry payload. Leaves the builder empty.
  std::string finish() {
    Encoder out;
    out.u8(kBatchFormat);
    out.u64(time_ms_);
    out.varint(count_);
    out.raw(body_.buffer());
    body_.clear();
    count_ = 0;
    return out.take();
  }

 private:
  Encoder body_;
  uint64_t count_ = 0;
  uint64_t time_ms_ = 0;
};

// Walks a batch without copying. Usage:
//   BatchReader r(payload); if (!r.ok()) corrupt;
//   while (r.next(argv)) { ... }   then check r.ok() again.
class BatchReader {
 public:
  explicit BatchReader(std::string_view payload) : in_(payload) {
    if (in_.u8() != kBatchFormat) in_.fail();
    time_ms_ = in_.u64();
    count_ = in_.count(1);
  }
  bool ok() const { return in_.ok(); }
  uint64_t leader_time_ms() const { return time_ms_; }
  uint64_t count() const { return count_; }
  // Fills argv with views into the payload. Returns false at the end or on malformed input.
  bool next(std::vector<std::string_view>& argv) {
    if (read_ == count_ || !in_.ok()) return false;
    uint64_t argc = in_.count(1);
    if (argc == 0 || argc > kMaxArgsPerCommand) { in_.fail(); return false; }
    argv.clear();
    for (uint64_t i = 0; i < argc; i++) argv.push_back(in_.bytes());
    if (!in_.ok()) return false;
    read_++;
    if (read_ == count_ && !in_.done()) in_.fail();  // trailing garbage
    return in_.ok();
  }

 private:
  Decoder in_;
  uint64_t time_ms_ = 0;
  uint64_t count_ = 0;
  uint64_t read_ = 0;
};

}  // namespace hmdb::core
