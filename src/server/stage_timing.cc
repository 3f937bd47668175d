// server/stage_timing.cc — latency by stage, the node's side of server/latency.h: where the
// loop reads the clock for each stage boundary, what it records, and the commands and
// renderings that show it (INFO latencystats and stages, LATENCY, SLOWLOG, the Prometheus
// histograms). docs/operations.md, "Latency", says what each stage means.
//
// Cost: the clock (clock_gettime through the vDSO, ~17 ns here) is read once per group of
// pipelined commands parsed together (up to kParseAheadCommands; each command at pipeline
// 1): the group's time on the loop (SLOWLOG) and the latency of the commands answered at
// once; and once per stage boundary per batch (a log entry): proposal, hand-off to the
// disk, the disk's acknowledgement, apply start and end, replies queued, the turn's end.
// A sample is an add to a fixed array (LatencyHistogram::record); a command's histogram is
// found by name once per command (the last name is remembered, as one word when short), and
// equal command samples in a row (a turn's writes answered at one instant) are added once
// (LatencyStats::record_command). The proposals followed are a ring (MarkRing), not a deque
// that allocates a block every few entries.
//
// A write's stages are kept for the entries this node proposed as leader: ProposalMarks
// follows each from its proposal to its replies, and every stage counts each client write
// of the entry. A follower records no write stages (its disk thread's rounds and its loop
// turns, yes).
#include <fmt/format.h>

#include <algorithm>

#include "core/request.h"
#include "hmdb/reserved_names.h"
#include "server/node.h"

namespace hmdb::server {

namespace {

// Proposals, and appends per follower, followed at once; older ones are dropped (a leader
// that cannot commit stops taking writes long before: core::kInflightBytesMax).
constexpr size_t kStageMarksMax = 65536;

// Prometheus buckets: powers of two from 1 µs to 2^26 µs (67 s), and 1 to 2^20 for sizes.
constexpr int kPrometheusTimeBucketsLog2 = 26;
constexpr int kPrometheusSizeBucketsLog2 = 20;

std::string histogram_line(const LatencyHistogram& h) {
  return fmt::format("count={},p50={},p99={},p99.9={},max={}", h.count(), h.percentile(50), h.percentile(99),
                     h.percentile(99.9), h.max());
}

// One histogram's series in the exposition format: buckets at powers of two (exact: they
// are bucket boundaries of LatencyHistogram), +Inf, _sum and _count. `scale` turns a value
// into the metric's unit (1e-6: µs to seconds).
void prometheus_histogram(std::string& t, std::string_view family, std::string_view labels, const LatencyHistogram& h,
                          int buckets_log2, double scale) {
  const std::string sep = labels.empty() ? "" : ",";
  for (int k = 0; k <= buckets_log2; k++) {
    const uint64_t bound = uint64_t{1} << k;
    t += fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", family, labels, sep, static_cast<double>(bound) * scale,
                     h.count_below(bound));
  }
  t += fmt::format("{}_bucket{{{}{}le=\"+Inf\"}} {}\n", family, labels, sep, h.count());
  const std::string braces = labels.empty() ? "" : fmt::format("{{{}}}", labels);
  t += fmt::format("{}_sum{} {}\n", family, braces, static_cast<double>(h.sum()) * scale);
  t += fmt::format("{}_count{} {}\n", family, braces, h.count());
}

void prometheus_family(std::string& t, std::string_view family, std::string_view help) {
  t += fmt::format("# HELP {} {}\n# TYPE {} histogram\n", family, help, family);
}

}  // namespace

std::vector<std::string> Node::latency_command_names() const {
  std::vector<std::string> names;
  for (std::string_view n : kShellCommandNames) names.emplace_back(n);
  for (std::string_view n : kEngineWriteNames) names.emplace_back(n);
  for (std::string_view n : kTransactionCommandNames) names.emplace_back(n);
  names.emplace_back(core::kRequestCommandName);
  for (const CommandDescription& d : app_->describe_commands()) names.push_back(d.name);
  return names;
}

// ---------------------------------------------------------------------------------------
// Commands and sessions

void Node::queries_ran(uint64_t now, uint64_t latency) {
  for (size_t i = 0; i < group_answered_count_; i++)
    if (group_answered_[i] != LatencyStats::kNoCommand) latency_->record_command(group_answered_[i], latency);
  latency_->stage(Stage::kQuery).record(latency, group_answered_count_);
  query_marks_.push_back(Mark{now, group_answered_count_});
  group_answered_count_ = 0;
}

void Node::group_was_slow(Session& s, size_t ran, uint64_t ran_us) {
  if (slowlog_.wants(ran_us)) {
    // A group of several pipelined commands is timed as one: each is logged with its time.
    for (size_t i = 0; i < ran; i++) {
      if (parse_ahead_[i].argv.empty()) continue;
      const std::vector<std::string_view> words(parse_ahead_[i].argv.begin(), parse_ahead_[i].argv.end());
      slowlog_.add(words, turn_wall_ms_ / 1000, ran_us, s.address, s.name);
    }
  }
  if (latency_events_.threshold_ms != 0 && ran_us >= latency_events_.threshold_ms * 1000)
    latency_events_.add("command", turn_wall_ms_ / 1000, ran_us / 1000);
}

// ---------------------------------------------------------------------------------------
// A write's entry: proposed, handed to the disk, persisted, replicated, applied, replied

void Node::proposed(raft::Index index, raft::Term, const std::vector<core::ReplySlot>& slots) {
  if (disk_ && !slots.empty()) {
    // For group commit's hold (node.h): a cohort of clients coming back.
    if (hold_marks_.size() >= kHoldMarksMax) hold_marks_.pop_front();
    hold_marks_.emplace_back(index, slots.size());
    hold_arrived_ += slots.size();
    hold_writes_proposed_ = true;
  }
  if (batch_marks_.empty()) return;  // no client's write in it (housekeeping, a schema activation)
  const uint64_t now = stage_read_us();
  uint64_t writes = 0;
  for (const Mark& m : batch_marks_) {
    latency_->stage(Stage::kBatchWait).record(now - m.us, m.count);
    writes += m.count;
  }
  batch_marks_.clear();
  if (proposals_.size() >= kStageMarksMax) proposals_.pop_front();
  proposals_.push_back(ProposalMarks{.index = index, .writes = writes, .proposed_us = now});
}

void Node::note_handed_to_disk(raft::Index last) {
  // In the same drive as the proposal (raft moved the entry to a Ready): the same instant.
  const uint64_t now = stage_now_us();
  for (size_t i = 0; i < proposals_.size(); i++) {
    ProposalMarks& p = proposals_[i];
    if (p.index > last) break;
    if (p.handed_us != 0) continue;
    p.handed_us = now;
    latency_->stage(Stage::kPropose).record(now - p.proposed_us, p.writes);
  }
}

void Node::note_persisted(raft::Index index, uint64_t published_us) {
  // When the disk thread published its acknowledgement (CLOCK_MONOTONIC µs, as the stage
  // clock's scale), if that is earlier than now: a leader with other voters may take its own
  // ack only at a later turn (disk_thread.h). 0: now (seen at the start of a turn, or without
  // a disk thread, when handed over).
  const uint64_t now = published_us != 0 ? std::min(stage_now_us(), published_us) : stage_now_us();
  uint64_t group = 0;
  for (size_t i = 0; i < proposals_.size(); i++) {
    ProposalMarks& p = proposals_[i];
    if (p.index > index) break;
    if (p.handed_us == 0 || p.persisted_us != 0) continue;
    p.persisted_us = std::max(now, p.handed_us);
    latency_->stage(Stage::kPersist).record(p.persisted_us - p.handed_us, p.writes);
    group += p.writes;
  }
  if (group > 0) latency_->persist_group().record(group);
}

void Node::note_sent(const std::vector<raft::Message>& messages) {
  uint64_t now = 0;
  for (const raft::Message& m : messages) {
    if (m.type != raft::MessageType::kAppend || m.entries.empty()) continue;
    if (now == 0) now = stage_now_us();
    auto& sent = appends_sent_[m.to];
    if (sent.size() >= kStageMarksMax) sent.pop_front();
    sent.emplace_back(m.entries.back().index, now);
  }
}

void Node::note_received(const std::vector<raft::Message>& messages) {
  uint64_t now = 0;
  for (const raft::Message& m : messages) {
    if (m.type != raft::MessageType::kAppendResponse || m.reject) continue;
    auto it = appends_sent_.find(m.from);
    if (it == appends_sent_.end()) continue;
    // The follower has everything up to log_index: every append up to there is acknowledged.
    auto& sent = it->second;
    while (!sent.empty() && sent.front().first <= m.log_index) {
      if (now == 0) now = stage_now_us();
      latency_->replicate(m.from).record(now > sent.front().second ? now - sent.front().second : 0);
      sent.pop_front();
    }
  }
}

void Node::applying(const raft::Entry& entry) {
  if (proposals_.empty()) return;
  for (size_t i = 0; i < proposals_.size(); i++) {
    ProposalMarks& p = proposals_[i];
    if (p.index > entry.index) return;
    if (p.index != entry.index) continue;
    const uint64_t now = stage_now_us();  // right after the proposal or the previous apply: shared
    p.apply_us = now;
    const uint64_t from = p.persisted_us != 0 ? p.persisted_us : p.handed_us;
    if (from != 0) latency_->stage(Stage::kCommit).record(now - from, p.writes);
    return;
  }
}

void Node::note_applied(raft::Index index) {
  for (size_t i = 0; i < proposals_.size(); i++) {
    ProposalMarks& p = proposals_[i];
    if (p.index > index) return;
    if (p.index != index || p.apply_us == 0) continue;
    const uint64_t now = stage_read_us();  // after the batch's commands ran
    p.applied_us = now;
    latency_->stage(Stage::kApply).record(now - p.apply_us, p.writes);
    if (latency_events_.threshold_ms != 0 && now - p.apply_us >= latency_events_.threshold_ms * 1000) [[unlikely]]
      latency_events_.add("apply", turn_wall_ms_ / 1000, (now - p.apply_us) / 1000);
    return;
  }
}

void Node::note_replies_queued() {
  if (!batch_marks_.empty() && !replica_->leader()) batch_marks_.clear();  // redirected, not proposed
  if (proposals_.empty() || proposals_.front().index > replica_->applied_index()) return;
  const uint64_t now = stage_now_us();
  while (!proposals_.empty() && proposals_.front().index <= replica_->applied_index()) {
    const ProposalMarks& p = proposals_.front();
    // (An entry applied without marks was replaced or applied before its proposal was seen:
    // it is dropped uncounted.)
    if (p.applied_us != 0) {
      latency_->stage(Stage::kReplyQueued).record(now - p.applied_us, p.writes);
      queued_marks_.push_back(Mark{now, p.writes});
    }
    proposals_.pop_front();
  }
}

void Node::note_turn_end(uint64_t now_us) {
  for (const Mark& m : queued_marks_) latency_->stage(Stage::kReplySent).record(now_us - m.us, m.count);
  for (const Mark& m : query_marks_) latency_->stage(Stage::kQueryReplySent).record(now_us - m.us, m.count);
  queued_marks_.clear();
  query_marks_.clear();
  const uint64_t turn_us = now_us - turn_start_us_;
  latency_->stage(Stage::kLoopTurn).record(turn_us);
  if (latency_events_.threshold_ms != 0 && turn_us >= latency_events_.threshold_ms * 1000) [[unlikely]]
    latency_events_.add("event-loop", turn_wall_ms_ / 1000, turn_us / 1000);
}

void Node::forget_stage_marks() {
  proposals_.clear();
  batch_marks_.clear();
  appends_sent_.clear();
}

void Node::reset_latency() {
  latency_->reset();
  if (disk_) disk_->reset_latency();
}

// ---------------------------------------------------------------------------------------
// INFO and Prometheus

std::string Node::render_latency_info(std::string_view section) const {
  const bool all = iequals(section, "all") || iequals(section, "everything");
  std::string t;
  if (all || iequals(section, "latencystats")) {
    // Redis 7's section: the commands that ran, in the table's order.
    t += "# Latencystats\r\n";
    for (size_t i = 0; i < latency_->commands(); i++) {
      const LatencyHistogram& h = latency_->command(static_cast<uint32_t>(i));
      if (h.count() == 0) continue;
      t += fmt::format("latency_percentiles_usec_{}:{}\r\n", latency_->command_name(static_cast<uint32_t>(i)),
                       latency_percentiles_text(h));
    }
    t += "\r\n";
  }
  if (all || iequals(section, "stages")) {
    const DiskLatency disk = disk_ ? disk_->latency() : DiskLatency{};
    t += "# Stages\r\n";
    for (size_t i = 0; i < kStageCount; i++) {
      const Stage st = static_cast<Stage>(i);
      const LatencyHistogram& h = st == Stage::kDiskWrite ? disk.write_us
                                  : st == Stage::kDiskSync ? disk.sync_us
                                                           : latency_->stage(st);
      t += fmt::format("latency_stage_usec_{}:{}\r\n", stage_name(st), histogram_line(h));
    }
    for (const auto& [peer, h] : latency_->replicate())
      t += fmt::format("latency_replicate_usec_peer{}:{}\r\n", peer, histogram_line(h));
    t += fmt::format("persist_group_writes:{}\r\n", histogram_line(latency_->persist_group()));
    t += fmt::format("disk_group_entries:{}\r\n", histogram_line(disk.group_entries));
    t += fmt::format("slowlog_len:{}\r\n", slowlog_.entries().size());
    t += "\r\n";
  }
  return t;
}

std::string Node::render_latency_prometheus() const {
  std::string t;
  const DiskLatency disk = disk_ ? disk_->latency() : DiskLatency{};
  prometheus_family(t, "hmdb_stage_latency_seconds",
                    "Time a request spent in each stage (docs/operations.md, Latency): a write's from read_parse to "
                    "reply_sent, a query's, the disk thread's rounds, the event loop's turns.");
  for (size_t i = 0; i < kStageCount; i++) {
    const Stage st = static_cast<Stage>(i);
    const LatencyHistogram& h = st == Stage::kDiskWrite ? disk.write_us
                                : st == Stage::kDiskSync ? disk.sync_us
                                                         : latency_->stage(st);
    prometheus_histogram(t, "hmdb_stage_latency_seconds", fmt::format("stage=\"{}\"", stage_name(st)), h,
                         kPrometheusTimeBucketsLog2, 1e-6);
  }
  prometheus_family(t, "hmdb_command_latency_seconds",
                    "Per command: from the start of the loop turn that read it until its reply was queued.");
  for (size_t i = 0; i < latency_->commands(); i++) {
    const LatencyHistogram& h = latency_->command(static_cast<uint32_t>(i));
    if (h.count() == 0) continue;
    prometheus_histogram(t, "hmdb_command_latency_seconds",
                         fmt::format("command=\"{}\"", escape_label_value(latency_->command_name(static_cast<uint32_t>(i)))),
                         h, kPrometheusTimeBucketsLog2, 1e-6);
  }
  if (!latency_->replicate().empty()) {
    prometheus_family(t, "hmdb_replicate_latency_seconds",
                      "Leader: from sending entries to a follower until its acknowledgement covered them.");
    for (const auto& [peer, h] : latency_->replicate())
      prometheus_histogram(t, "hmdb_replicate_latency_seconds", fmt::format("peer=\"{}\"", peer), h,
                           kPrometheusTimeBucketsLog2, 1e-6);
  }
  prometheus_family(t, "hmdb_persist_group_writes", "Client writes made durable by one acknowledgement of the disk thread.");
  prometheus_histogram(t, "hmdb_persist_group_writes", "", latency_->persist_group(), kPrometheusSizeBucketsLog2, 1);
  prometheus_family(t, "hmdb_disk_group_entries", "Log entries written by one group-commit round of the disk thread.");
  prometheus_histogram(t, "hmdb_disk_group_entries", "", disk.group_entries, kPrometheusSizeBucketsLog2, 1);
  return t;
}

// ---------------------------------------------------------------------------------------
// LATENCY and SLOWLOG (Redis 7's replies)

namespace {

struct Subcommand {
  std::string_view name;  // upper case
  int arity;              // of the whole command, Redis style
};
constexpr Subcommand kLatencySubcommands[] = {
    {"DOCTOR", 2}, {"GRAPH", 3}, {"HELP", 2}, {"HISTOGRAM", -2}, {"HISTORY", 3}, {"LATEST", 2}, {"RESET", -2},
};
constexpr Subcommand kSlowlogSubcommands[] = {{"GET", -2}, {"HELP", 2}, {"LEN", 2}, {"RESET", 2}};

// The subcommand of argv (answered with Redis' errors if unknown or of the wrong arity).
template <size_t N>
const Subcommand* find_subcommand(const Subcommand (&table)[N], std::string_view command, Args argv, Reply& r) {
  for (const Subcommand& c : table) {
    if (!iequals(c.name, argv[1])) continue;
    if (!arity_ok(c.arity, argv.size())) {
      r.error(fmt::format("ERR wrong number of arguments for '{}|{}' command", lowercase(command), lowercase(c.name)));
      return nullptr;
    }
    return &c;
  }
  r.error(fmt::format("ERR unknown subcommand '{}'. Try {} HELP.", argv[1].substr(0, 128), command));
  return nullptr;
}

void help(Reply& r, std::initializer_list<std::string_view> lines) {
  r.array(lines.size());
  for (std::string_view l : lines) r.status(l);
}

// One command's LATENCY HISTOGRAM value: calls, and the cumulative count of calls below each
// power of two of µs (Redis lists the bounds where the count grew).
void command_histogram(Reply& r, const LatencyHistogram& h) {
  r.map(2);
  r.bulk("calls");
  r.integer(static_cast<int64_t>(h.count()));
  r.bulk("histogram_usec");
  std::vector<std::pair<uint64_t, uint64_t>> points;
  uint64_t previous = 0;
  for (int k = 0; k <= LatencyHistogram::kTopBits && previous < h.count(); k++) {
    const uint64_t bound = uint64_t{1} << k;
    const uint64_t below = h.count_below(bound);
    if (below > previous) points.emplace_back(bound, below);
    previous = below;
  }
  r.map(points.size());
  for (const auto& [bound, n] : points) {
    r.integer(static_cast<int64_t>(bound));
    r.integer(static_cast<int64_t>(n));
  }
}

}  // namespace

core::ShellResult Node::latency_command(Session& s, Args argv, std::string* out) {
  Reply r(out, s.client.protocol);
  const Subcommand* sub = find_subcommand(kLatencySubcommands, "LATENCY", argv, r);
  if (!sub) return core::ShellResult::kReplied;
  const std::string_view name = sub->name;
  if (name == "HISTOGRAM") {
    // Every command that ran, or those named (unknown names and commands that never ran are
    // left out, as in Redis).
    std::vector<uint32_t> ids;
    if (argv.size() == 2) {
      for (size_t i = 0; i < latency_->commands(); i++)
        if (latency_->command(static_cast<uint32_t>(i)).count() > 0) ids.push_back(static_cast<uint32_t>(i));
    } else {
      for (size_t i = 2; i < argv.size(); i++) {
        const uint32_t id = latency_->command_id(argv[i]);
        if (id == LatencyStats::kNoCommand || latency_->command(id).count() == 0) continue;
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
      }
    }
    r.map(ids.size());
    for (uint32_t id : ids) {
      r.bulk(latency_->command_name(id));
      command_histogram(r, latency_->command(id));
    }
  } else if (name == "LATEST") {
    const auto& events = latency_events_.events();
    r.array(events.size());
    for (const auto& [event, e] : events) {
      r.array(4);
      r.bulk(event);
      r.integer(static_cast<int64_t>(e.samples.empty() ? 0 : e.samples.back().time_s));
      r.integer(static_cast<int64_t>(e.samples.empty() ? 0 : e.samples.back().ms));
      r.integer(static_cast<int64_t>(e.max_ms));
    }
  } else if (name == "HISTORY") {
    const auto& events = latency_events_.events();
    auto it = events.find(argv[2]);
    if (it == events.end()) {
      r.array(0);
    } else {
      r.array(it->second.samples.size());
      for (const LatencyEvents::Sample& sample : it->second.samples) {
        r.array(2);
        r.integer(static_cast<int64_t>(sample.time_s));
        r.integer(static_cast<int64_t>(sample.ms));
      }
    }
  } else if (name == "RESET") {
    const std::vector<std::string_view> names(argv.begin() + 2, argv.end());
    r.integer(static_cast<int64_t>(latency_events_.reset(names)));
  } else if (name == "DOCTOR") {
    r.verbatim(latency_events_.doctor());
  } else if (name == "GRAPH") {
    r.error("ERR LATENCY GRAPH is not supported by hmdb: use LATENCY HISTORY, or the Prometheus histograms");
  } else {
    help(r, {"LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             "DOCTOR",
             "    Return a human readable latency analysis report.",
             "HISTORY <event>",
             "    Return time-latency samples for the <event> class.",
             "LATEST",
             "    Return the latest latency samples for all events.",
             "RESET [<event> ...]",
             "    Reset latency data of one or more <event> classes.",
             "    (default: reset all data for all event classes)",
             "HISTOGRAM [COMMAND ...]",
             "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
             "    If no commands are specified then all histograms are replied.",
             "    (hmdb: from the start of the loop turn that read a command to its reply queued; INFO stages has where the time went)",
             "HELP",
             "    Print this help."});
  }
  return core::ShellResult::kReplied;
}

core::ShellResult Node::slowlog_command(Session& s, Args argv, std::string* out) {
  Reply r(out, s.client.protocol);
  const Subcommand* sub = find_subcommand(kSlowlogSubcommands, "SLOWLOG", argv, r);
  if (!sub) return core::ShellResult::kReplied;
  const std::string_view name = sub->name;
  if (name == "GET") {
    if (argv.size() > 3) {
      r.error(fmt::format("ERR unknown subcommand or wrong number of arguments for '{}'. Try SLOWLOG HELP.",
                          argv[1].substr(0, 128)));
      return core::ShellResult::kReplied;
    }
    int64_t count = 10;
    if (argv.size() == 3 && (!parse_int64(argv[2], &count) || count < -1)) {
      r.error("ERR count should be greater than or equal to -1");
      return core::ShellResult::kReplied;
    }
    const auto& entries = slowlog_.entries();
    const size_t n = count == -1 ? entries.size() : std::min<size_t>(entries.size(), static_cast<size_t>(count));
    r.array(n);
    for (size_t i = 0; i < n; i++) {
      const SlowLog::Entry& e = entries[i];
      r.array(6);
      r.integer(static_cast<int64_t>(e.id));
      r.integer(static_cast<int64_t>(e.time_s));
      r.integer(static_cast<int64_t>(e.duration_us));
      r.array(e.args.size());
      for (const std::string& a : e.args) r.bulk(a);
      r.bulk(e.client_addr);
      r.bulk(e.client_name);
    }
  } else if (name == "LEN") {
    r.integer(static_cast<int64_t>(slowlog_.entries().size()));
  } else if (name == "RESET") {
    slowlog_.reset();
    r.ok();
  } else {
    help(r, {"SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
             "GET [<count>]",
             "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
             "    Entries are made of:",
             "    id, timestamp, time in microseconds, arguments array, client IP and port,",
             "    client name",
             "LEN",
             "    Return the length of the slowlog.",
             "RESET",
             "    Reset the slowlog.",
             "HELP",
             "    Print this help."});
  }
  return core::ShellResult::kReplied;
}

}  // namespace hmdb::server
