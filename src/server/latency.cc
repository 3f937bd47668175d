// server/latency.cc — histograms, stages, the slow log and latency events; see latency.h.
#include "server/latency.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "hmdb/text.h"

namespace hmdb::server {

// ---------------------------------------------------------------------------------------
// LatencyHistogram

uint64_t LatencyHistogram::bucket_low(size_t i) {
  constexpr size_t kLinear = size_t{1} << kLinearBits;
  if (i < kLinear) return i;
  const size_t k = kLinearBits + ((i - kLinear) >> kSubBits);
  const uint64_t sub = (i - kLinear) & ((size_t{1} << kSubBits) - 1);
  return ((uint64_t{1} << kSubBits) + sub) << (k - kSubBits);
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; i++) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

uint64_t LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  // The sample of rank ceil(p% of count), counting from 1: a sorted reference's
  // sorted[rank - 1] lies in the bucket found here.
  uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; i++) {
    seen += counts_[i];
    // The last bucket is open-ended: it reads as the largest sample.
    if (seen >= rank) return i + 1 == kBuckets ? max_ : std::min(bucket_high(i), max_);
  }
  return max_;
}

uint64_t LatencyHistogram::count_below(uint64_t bound) const {
  if (bound >> kTopBits) return count_;
  const size_t end = bucket(bound);  // bound is its bucket's lowest value
  uint64_t n = 0;
  for (size_t i = 0; i < end; i++) n += counts_[i];
  return n;
}

std::string latency_percentiles_text(const LatencyHistogram& h) {
  return fmt::format("p50={:.3f},p99={:.3f},p99.9={:.3f}", static_cast<double>(h.percentile(50)),
                     static_cast<double>(h.percentile(99)), static_cast<double>(h.percentile(99.9)));
}

// ---------------------------------------------------------------------------------------
// Stages

namespace {
struct StageText {
  std::string_view name, help;
};
constexpr StageText kStageText[kStageCount] = {
    {"read_parse", "write: from the start of the loop turn that read it until it was parsed and joined the batch"},
    {"batch_wait", "write: from joining the batch until the batch (one log entry) was proposed"},
    {"propose", "write: from the proposal until the entry was handed to the disk thread and the followers"},
    {"persist", "write: from the hand-off until the disk thread's acknowledgement (write and fdatasync) reached the loop"},
    {"commit", "write: from this node's persist until the entry was known committed and its apply began"},
    {"apply", "write: running its batch's commands against the state"},
    {"reply_queued", "write: from the end of the apply until its reply was moved to the client's output"},
    {"reply_sent", "write: from its reply queued until the loop's send(2) of the turn's replies returned"},
    {"query", "query (any command answered as it ran): from the start of the loop turn that read it to its reply"},
    {"query_reply_sent", "query: from its reply written until the loop's send(2) of the turn's replies returned"},
    {"disk_write", "disk thread: write(2) of one group-commit round"},
    {"disk_fsync", "disk thread: fdatasync of one group-commit round"},
    {"loop_turn", "event loop: the working time of one turn (not its wait for events)"},
};
}  // namespace

std::string_view stage_name(Stage s) { return kStageText[static_cast<size_t>(s)].name; }
std::string_view stage_help(Stage s) { return kStageText[static_cast<size_t>(s)].help; }

// ---------------------------------------------------------------------------------------
// LatencyStats

LatencyStats::LatencyStats(const std::vector<std::string>& command_names) {
  for (const std::string& n : command_names) {
    std::string upper;
    for (char c : n) upper.push_back(ascii_upper(c));
    if (upper.size() > detail::kMaxCommandNameBytes) continue;
    if (std::find(upper_.begin(), upper_.end(), upper) != upper_.end()) continue;
    upper_.push_back(std::move(upper));
    names_.push_back(lowercase(n));
    commands_.push_back(std::make_unique<LatencyHistogram>());
  }
  for (const std::string& u : upper_) upper_views_.push_back(u);
  index_.rebuild(upper_views_);
}

uint32_t LatencyStats::lookup(std::string_view name) {
  const size_t i = index_.find(name, [this](size_t j) { return upper_views_[j]; });
  const uint32_t id = i == detail::NameIndex::kNotFound ? kNoCommand : static_cast<uint32_t>(i);
  if (name.size() <= sizeof cached_) {
    std::char_traits<char>::copy(cached_, name.data(), name.size());
    cached_key_ = name.size() <= 8 ? short_key(name) : 0;
    cached_size_ = name.size();
    cached_id_ = id;
  }
  return id;
}

void LatencyStats::reset() {
  for (LatencyHistogram& h : stages_) h.reset();
  for (auto& h : commands_) h->reset();
  folded_count_ = 0;
  folded_id_ = kNoCommand;
  replicate_.clear();
  persist_group_.reset();
}

// ---------------------------------------------------------------------------------------
// SlowLog

void SlowLog::add(const std::vector<std::string_view>& argv, uint64_t time_s, uint64_t duration_us,
                  std::string_view addr, std::string_view name) {
  if (max_len == 0) return;
  Entry e;
  e.id = next_id_++;
  e.time_s = time_s;
  e.duration_us = duration_us;
  e.client_addr = addr;
  e.client_name = name;
  // Passwords and rules stay out of the log (Redis redacts the same arguments).
  size_t redact_from = argv.size();
  if (!argv.empty() && iequals(argv[0], "AUTH")) redact_from = 1;
  if (!argv.empty() && iequals(argv[0], "ACL") && argv.size() > 2 && iequals(argv[1], "SETUSER")) redact_from = 3;
  if (!argv.empty() && iequals(argv[0], "HELLO"))
    for (size_t i = 1; i < argv.size(); i++)
      if (iequals(argv[i], "AUTH")) redact_from = std::min(redact_from, i + 1);
  const size_t argc = std::min(argv.size(), kSlowLogEntryArgsMax);
  for (size_t j = 0; j < argc; j++) {
    if (argc != argv.size() && j == argc - 1) {
      e.args.push_back(fmt::format("... ({} more arguments)", argv.size() - argc + 1));
    } else if (j >= redact_from) {
      e.args.emplace_back("(redacted)");
    } else if (argv[j].size() > kSlowLogArgBytesMax) {
      e.args.push_back(std::string(argv[j].substr(0, kSlowLogArgBytesMax)) +
                       fmt::format("... ({} more bytes)", argv[j].size() - kSlowLogArgBytesMax));
    } else {
      e.args.emplace_back(argv[j]);
    }
  }
  entries_.push_front(std::move(e));
  trim();
}

void SlowLog::trim() {
  while (entries_.size() > max_len) entries_.pop_back();
}

// ---------------------------------------------------------------------------------------
// LatencyEvents

void LatencyEvents::add(std::string_view name, uint64_t time_s, uint64_t ms) {
  if (threshold_ms == 0 || ms < threshold_ms) return;
  auto it = events_.find(name);
  if (it == events_.end()) it = events_.emplace(std::string(name), Event{}).first;
  Event& e = it->second;
  e.max_ms = std::max(e.max_ms, ms);
  // One sample per second, the largest of that second (Redis' latencyAddSample).
  if (!e.samples.empty() && e.samples.back().time_s == time_s) {
    e.samples.back().ms = std::max(e.samples.back().ms, ms);
    return;
  }
  e.samples.push_back(Sample{time_s, ms});
  if (e.samples.size() > kLatencyEventSamplesMax) e.samples.pop_front();
}

size_t LatencyEvents::reset(const std::vector<std::string_view>& names) {
  if (names.empty()) {
    const size_t n = events_.size();
    events_.clear();
    return n;
  }
  size_t n = 0;
  for (std::string_view name : names) {
    auto it = events_.find(name);
    if (it == events_.end()) continue;
    events_.erase(it);
    n++;
  }
  return n;
}

std::string LatencyEvents::doctor() const {
  if (threshold_ms == 0 && events_.empty()) {
    return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this hmdb instance. You may use "
           "\"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it.\n"
           "Whatever the setting, the stage histograms are always on: INFO latencystats, INFO stages, LATENCY "
           "HISTOGRAM, SLOWLOG GET.\n";
  }
  if (events_.empty()) {
    return fmt::format("No latency spike of {} ms or more was observed since the monitor was enabled or reset "
                       "(latency-monitor-threshold {}).\n",
                       threshold_ms, threshold_ms);
  }
  std::string out = fmt::format("Latency spikes of {} ms or more (latency-monitor-threshold):\n\n", threshold_ms);
  int i = 1;
  for (const auto& [name, e] : events_) {
    uint64_t sum = 0;
    for (const Sample& s : e.samples) sum += s.ms;
    const uint64_t avg = e.samples.empty() ? 0 : sum / e.samples.size();
    out += fmt::format("{}. {}: {} latency spikes (average {}ms, worst {}ms, latest {}ms at unix time {}).\n", i++,
                       name, e.samples.size(), avg, e.max_ms, e.samples.empty() ? 0 : e.samples.back().ms,
                       e.samples.empty() ? 0 : e.samples.back().time_s);
  }
  out += "\nWhat the events mean: event-loop is a loop turn's working time (every client waits meanwhile, and a "
         "leader's heartbeats); command is one command's run on the loop (SLOWLOG GET names them); apply is one "
         "log entry's apply (the disk's fdatasync is in INFO stages: disk_fsync). docs/operations.md, "
         "\"Latency\", says what to look at for each.\n";
  return out;
}

}  // namespace hmdb::server
