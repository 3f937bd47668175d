// server/latency.h — where a request's time goes: log-linear latency histograms, the write
// and query stages they are kept for, per-command latency, the slow log and latency events.
//
//   LatencyHistogram  a fixed array of counters (no allocation per sample): 1 µs buckets
//                     below 64 µs, then 32 buckets per power of two (≤ 3.2 % wide) up to
//                     2^32 µs (71 minutes); percentiles, Prometheus and LATENCY HISTOGRAM
//                     buckets. Values are whole microseconds (or any count: group sizes).
//   Stage             the stages of a write and of a query (docs/operations.md, "Latency").
//   LatencyStats      the node's histograms: one per stage, one per command, one per
//                     follower (replication), and the disk thread's group sizes.
//   SlowLog           Redis' SLOWLOG: commands that held the event loop at least
//                     slowlog-log-slower-than µs, newest first, at most slowlog-max-len.
//   LatencyEvents     Redis' latency monitor (LATENCY LATEST/HISTORY/RESET/DOCTOR): named
//                     events at least latency-monitor-threshold ms (0: off, as in Redis).
//
// Nothing here reads a clock: the server's shell (node.cc, client_io.cc, disk_thread.cc)
// reads it at the stage boundaries and hands durations in, so a simulated run could drive
// the same bookkeeping with simulated time (common/clock.h).
//
// Thread-safety: none; the event loop owns a LatencyStats. The disk thread keeps its own
// histograms under its lock (disk_thread.h) and the loop copies them for INFO.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/app.h"

namespace hmdb::server {

// ---- the histogram ----

class LatencyHistogram {
 public:
  // Values below 2^kLinearBits µs get a bucket each (1 µs resolution at the bottom).
  static constexpr int kLinearBits = 6;
  // Above, each power of two [2^k, 2^(k+1)) is split into 2^kSubBits buckets: a bucket is at
  // most 1/32 (3.1 %) of its lower bound wide, so a percentile read from it is within 3.2 %.
  static constexpr int kSubBits = 5;
  // Values from 2^kTopBits µs (71 minutes) on are counted in the last bucket (max() keeps
  // the largest exactly).
  static constexpr int kTopBits = 32;
  static constexpr size_t kBuckets = (size_t{1} << kLinearBits) + (size_t{kTopBits - kLinearBits} << kSubBits);

  // The bucket of value v.
  static size_t bucket(uint64_t v) {
    if (v < (uint64_t{1} << kLinearBits)) return static_cast<size_t>(v);
    if (v >> kTopBits) return kBuckets - 1;
    const int k = 63 - __builtin_clzll(v);  // kLinearBits <= k < kTopBits
    return (size_t{1} << kLinearBits) + (static_cast<size_t>(k - kLinearBits) << kSubBits) +
           static_cast<size_t>((v >> (k - kSubBits)) & ((uint64_t{1} << kSubBits) - 1));
  }
  // The smallest and largest value of bucket i (the last one's largest is 2^kTopBits - 1).
  static uint64_t bucket_low(size_t i);
  static uint64_t bucket_high(size_t i) { return i + 1 < kBuckets ? bucket_low(i + 1) - 1 : (uint64_t{1} << kTopBits) - 1; }

  // n samples of value v (n > 1: a group of requests that spent the same time in a stage).
  void record(uint64_t v, uint64_t n = 1) {
    counts_[bucket(v)] += n;
    count_ += n;
    sum_ += v * n;
    if (v > max_) max_ = v;
  }
  void merge(const LatencyHistogram& other);
  void reset() { *this = LatencyHistogram(); }

  uint64_t count() const { return count_; }
  uint64_t sum() const { return sum_; }
  uint64_t max() const { return max_; }
  // The value below or at which p percent of the samples are (0 < p <= 100), as the largest
  // value of the bucket holding that sample (HdrHistogram's "highest equivalent value"),
  // never above max(). 0 without samples.
  uint64_t percentile(double p) const;
  // Samples below `bound`. REQUIRES: bound is a bucket boundary (every power of two up to
  // 2^kTopBits is one).
  uint64_t count_below(uint64_t bound) const;
  uint64_t count_at(size_t bucket) const { return counts_[bucket]; }

 private:
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

// "p50=12.000,p99=80.000,p99.9=210.000": Redis 7's latencystats value (µs, 3 decimals).
std::string latency_percentiles_text(const LatencyHistogram& h);

// ---- stages ----

enum class Stage : uint8_t {
  // A write this node leads, per client write (a batch's stages count each write in it).
  kReadParse,    // start of the loop turn that read it → parsed and handed to the replica
  kBatchWait,    // → its batch (one log entry) proposed
  kPropose,      // → the entry handed to the disk thread (and the followers)
  kPersist,      // → the disk thread's acknowledgement seen by the loop (write + fdatasync)
  kCommit,       // → known committed (a quorum has it) and its apply starting
  kApply,        // → the entry applied (the batch's commands run against the state)
  kReplyQueued,  // → the replies moved to the clients' output
  kReplySent,    // → the loop's send(2) of this turn's replies returned
  // A query answered at once (and any command whose reply was written as it ran).
  kQuery,           // start of the loop turn → its reply written
  kQueryReplySent,  // → the loop's send(2) of this turn's replies returned
  // The disk thread, per group-commit round (disk_thread.h).
  kDiskWrite,  // write(2) of every Ready in the round
  kDiskSync,   // fdatasync (always; periodic when due)
  // The event loop: a turn's working time (not the wait in epoll_wait).
  kLoopTurn,
};
inline constexpr size_t kStageCount = static_cast<size_t>(Stage::kLoopTurn) + 1;
std::string_view stage_name(Stage s);
std::string_view stage_help(Stage s);

// ---- the node's histograms ----

class LatencyStats {
 public:
  // Per-command histograms exist for these names (the shell's, the engine's, the app's),
  // and for nothing else: a client sending made-up names cannot make the table grow.
  explicit LatencyStats(const std::vector<std::string>& command_names);

  LatencyHistogram& stage(Stage s) { return stages_[static_cast<size_t>(s)]; }
  const LatencyHistogram& stage(Stage s) const { return stages_[static_cast<size_t>(s)]; }

  // The command's position, or kNoCommand for a name that is not a command. The last name
  // looked up is remembered as sent (a pipeline of one command hashes it once).
  static constexpr uint32_t kNoCommand = UINT32_MAX;
  uint32_t command_id(std::string_view name) {
    // Compared here, not with memcmp: a call costs more than the few bytes of a name.
    if (name.size() != cached_size_) return lookup(name);
    if (name.size() <= 8) return short_key(name) == cached_key_ ? cached_id_ : lookup(name);
    for (size_t i = 0; i < name.size(); i++)
      if (name[i] != cached_[i]) return lookup(name);
    return cached_id_;
  }
  // A name of at most 8 bytes as one word, read without going past its end (with its size,
  // it tells the name: two overlapping 4-byte reads cover 4-8 bytes, three bytes 1-3).
  static uint64_t short_key(std::string_view n) {
    const char* p = n.data();
    if (n.size() >= 4) {
      uint32_t a, b;
      std::memcpy(&a, p, 4);
      std::memcpy(&b, p + n.size() - 4, 4);
      return (uint64_t{a} << 32) | b;
    }
    if (n.empty()) return 0;
    const auto byte = [](char c) { return uint64_t{static_cast<unsigned char>(c)}; };
    return byte(p[0]) << 16 | byte(p[n.size() / 2]) << 8 | byte(p[n.size() - 1]);
  }
  // Its name in lower case, as INFO and LATENCY HISTOGRAM print it.
  const std::string& command_name(uint32_t id) const { return names_[id]; }
  size_t commands() const { return names_.size(); }
  LatencyHistogram& command(uint32_t id) {
    flush_folded();
    return *commands_[id];
  }
  const LatencyHistogram& command(uint32_t id) const {
    flush_folded();
    return *commands_[id];
  }
  // A sample of command `id` (not kNoCommand). Samples equal to the previous one (the same
  // command and value: the replies of a turn's writes leave at one instant, and were read in
  // one turn) are counted and recorded together, once a different one comes or the
  // histogram is read: one bucket update for a turn's SETs instead of one per SET.
  void record_command(uint32_t id, uint64_t v) {
    if (id == folded_id_ && v == folded_value_) {
      folded_count_++;
      return;
    }
    flush_folded();
    folded_id_ = id;
    folded_value_ = v;
    folded_count_ = 1;
  }

  // Replication to follower `peer`: from the leader sending entries to its ack covering them.
  LatencyHistogram& replicate(uint64_t peer) { return replicate_[peer]; }
  const std::map<uint64_t, LatencyHistogram>& replicate() const { return replicate_; }

  // Client writes made durable by one acknowledgement of the disk thread (group commit).
  LatencyHistogram& persist_group() { return persist_group_; }
  const LatencyHistogram& persist_group() const { return persist_group_; }

  // CONFIG RESETSTAT, LATENCY RESET of no event: every histogram empty.
  void reset();

 private:
  uint32_t lookup(std::string_view name);
  // Reads see every sample: const, since the folded samples are part of the value.
  void flush_folded() const {
    if (folded_count_ == 0) return;
    commands_[folded_id_]->record(folded_value_, folded_count_);
    folded_count_ = 0;
    folded_id_ = kNoCommand;
  }

  char cached_[16] = {};
  uint64_t cached_key_ = 0;  // short_key(cached_), for names of at most 8 bytes
  size_t cached_size_ = SIZE_MAX;
  uint32_t cached_id_ = kNoCommand;
  std::array<LatencyHistogram, kStageCount> stages_;
  std::vector<std::string> names_;  // lower case
  std::vector<std::string_view> upper_views_;
  std::vector<std::string> upper_;
  detail::NameIndex index_;
  std::vector<std::unique_ptr<LatencyHistogram>> commands_;  // stable addresses
  // record_command's samples not yet in their histogram: folded_count_ of folded_value_.
  mutable uint32_t folded_id_ = kNoCommand;
  mutable uint64_t folded_value_ = 0;
  mutable uint64_t folded_count_ = 0;
  std::map<uint64_t, LatencyHistogram> replicate_;
  LatencyHistogram persist_group_;
};

// ---- the marks of entries in flight ----

// A FIFO of marks (the proposals a leader follows through their stages, stage_timing.cc)
// in one array whose size is a power of two, grown by doubling and never shrunk: no
// allocation per entry once it reached its working size, unlike std::deque's blocks of a
// few entries each. Indexes count from the oldest (0).
template <class T>
class MarkRing {
 public:
  bool empty() const { return head_ == tail_; }
  size_t size() const { return static_cast<size_t>(tail_ - head_); }
  T& operator[](size_t i) { return slots_[(head_ + i) & mask_]; }
  T& front() { return slots_[head_ & mask_]; }
  void pop_front() { head_++; }
  void push_back(const T& v) {
    if (size() == slots_.size()) grow();
    slots_[tail_++ & mask_] = v;
  }
  void clear() { head_ = tail_ = 0; }

 private:
  static constexpr size_t kFirstSlots = 16;
  void grow() {
    std::vector<T> bigger(slots_.empty() ? kFirstSlots : 2 * slots_.size());
    const size_t n = size();
    for (size_t i = 0; i < n; i++) bigger[i] = (*this)[i];
    slots_.swap(bigger);
    mask_ = slots_.size() - 1;
    head_ = 0;
    tail_ = n;
  }
  std::vector<T> slots_;
  size_t mask_ = 0;
  uint64_t head_ = 0, tail_ = 0;
};

// ---- SLOWLOG ----

// Redis' bounds on what an entry keeps of a command (SLOWLOG_ENTRY_MAX_ARGC, _STRING).
inline constexpr size_t kSlowLogEntryArgsMax = 32;
inline constexpr size_t kSlowLogArgBytesMax = 128;
// Redis' defaults for slowlog-log-slower-than (µs; negative: off; 0: every command) and
// slowlog-max-len.
inline constexpr int64_t kSlowLogSlowerThanUsDefault = 10000;
inline constexpr uint64_t kSlowLogMaxLenDefault = 128;

class SlowLog {
 public:
  struct Entry {
    uint64_t id = 0;
    uint64_t time_s = 0;  // wall clock, Unix seconds
    uint64_t duration_us = 0;
    std::vector<std::string> args;  // truncated as Redis does
    std::string client_addr, client_name;
  };

  int64_t slower_than_us = kSlowLogSlowerThanUsDefault;
  uint64_t max_len = kSlowLogMaxLenDefault;

  // Whether a command that took duration_us is logged.
  bool wants(uint64_t duration_us) const {
    return slower_than_us >= 0 && duration_us >= static_cast<uint64_t>(slower_than_us);
  }
  // Logs it (arguments of AUTH, HELLO's AUTH and ACL SETUSER are redacted).
  void add(const std::vector<std::string_view>& argv, uint64_t time_s, uint64_t duration_us, std::string_view addr,
           std::string_view name);
  const std::deque<Entry>& entries() const { return entries_; }  // newest first
  void reset() { entries_.clear(); }
  // After slowlog-max-len was lowered.
  void trim();

 private:
  std::deque<Entry> entries_;
  uint64_t next_id_ = 0;
};

// ---- the latency monitor (LATENCY LATEST, HISTORY, RESET, DOCTOR) ----

// Samples kept per event (Redis' LATENCY_TS_LEN).
inline constexpr size_t kLatencyEventSamplesMax = 160;

class LatencyEvents {
 public:
  struct Sample {
    uint64_t time_s = 0;
    uint64_t ms = 0;
  };
  struct Event {
    std::deque<Sample> samples;  // oldest first; one per second at most (the max of that second)
    uint64_t max_ms = 0;
  };
  uint64_t threshold_ms = 0;  // latency-monitor-threshold; 0: nothing is recorded

  // Records `ms` for event `name` at time_s if the monitor is on and ms >= threshold_ms.
  void add(std::string_view name, uint64_t time_s, uint64_t ms);
  const std::map<std::string, Event, std::less<>>& events() const { return events_; }
  // Forgets the named events (all without names); returns how many were forgotten.
  size_t reset(const std::vector<std::string_view>& names);
  // LATENCY DOCTOR's report, for a person.
  std::string doctor() const;

 private:
  std::map<std::string, Event, std::less<>> events_;
};

}  // namespace hmdb::server
