// server/metrics.cc — INFO fields as Prometheus metrics, and the small HTTP listener that
// serves them (see metrics.h for the parts and docs/operations.md "Metrics" for the list).
#include "server/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "common/assert.h"
#include "hmdb/text.h"
#include "server/logging.h"

namespace hmdb::server {

// ---------------------------------------------------------------------------------------
// The mapping table

namespace {

enum class Kind : uint8_t {
  kGauge,      // numeric value, may go up and down
  kCounter,    // numeric value that only grows while the process lives (name ends in _total)
  kInfo,       // string value: a label of the metric, whose value is 1
  kListCount,  // comma-separated list: the number of items, as a gauge
  kSkip,       // known, deliberately not exported (say why in the table)
};

struct InfoMetric {
  std::string_view field;   // INFO field name
  Kind kind;
  std::string_view metric;  // Prometheus name (empty for kSkip)
  std::string_view label;   // kInfo: the label that carries the value
  std::string_view help;
};

// Every field of the engine's INFO sections (server, clients, persistence, replication,
// stats, digest), in exposition order. Counters are the fields that only count events
// since the process started; everything that is a level, an index, a size, a setting or a
// "last"/"max" observation is a gauge. Several kInfo rows may share one metric (one label
// each): their labels go on one sample. Names follow the INFO field; the stats section's
// "total_" prefixes become the "_total" suffix. Units stay those of INFO (ms, us, bytes).
constexpr InfoMetric kInfoMetrics[] = {
    // # Server
    {"hmdb_version", Kind::kInfo, "hmdb_build_info", "version", "The server's version and app; the value is 1."},
    {"app", Kind::kInfo, "hmdb_build_info", "app", ""},
    {"redis_version", Kind::kSkip, "", "", "a constant for Redis clients"},
    {"redis_mode", Kind::kSkip, "", "", "a constant for Redis clients"},
    {"schema_version", Kind::kGauge, "hmdb_schema_version", "", "Schema version of the app's state."},
    {"process_id", Kind::kSkip, "", "", "not a measurement"},
    {"tcp_port", Kind::kSkip, "", "", "configuration, known to the scraper"},
    {"bind", Kind::kSkip, "", "", "configuration, known to the scraper"},
    {"data_dir", Kind::kSkip, "", "", "configuration"},
    {"uptime_in_seconds", Kind::kGauge, "hmdb_uptime_seconds", "", "Seconds since the process started."},
    // # Clients
    {"connected_clients", Kind::kGauge, "hmdb_connected_clients", "", "Client connections open now."},
    {"maxclients", Kind::kGauge, "hmdb_max_clients", "", "--max-clients: connections beyond it are refused."},
    {"client_output_limit_bytes", Kind::kGauge, "hmdb_client_output_limit_bytes", "",
     "Unsent reply bytes beyond which a client is disconnected."},
    // # Persistence
    {"durability", Kind::kInfo, "hmdb_durability", "durability", "--durability mode (always, periodic, none); the value is 1."},
    {"fsync_interval_ms", Kind::kGauge, "hmdb_fsync_interval_ms", "", "--fsync-interval-ms (periodic durability)."},
    {"log_bytes_since_snapshot", Kind::kGauge, "hmdb_log_bytes_since_snapshot", "",
     "Log bytes written since the last snapshot (a snapshot starts at hmdb_snapshot_log_bytes)."},
    {"snapshot_log_bytes", Kind::kGauge, "hmdb_snapshot_log_bytes", "", "--snapshot-log-bytes."},
    {"snapshot_in_progress", Kind::kGauge, "hmdb_snapshot_in_progress", "", "1 while a snapshot child runs."},
    {"snapshots_taken", Kind::kCounter, "hmdb_snapshots_taken_total", "", "Snapshots written."},
    {"snapshot_failures", Kind::kCounter, "hmdb_snapshot_failures_total", "", "Snapshots that failed."},
    {"last_snapshot_index", Kind::kGauge, "hmdb_last_snapshot_index", "", "Log index of the newest snapshot."},
    {"last_snapshot_status", Kind::kInfo, "hmdb_last_snapshot_status", "status",
     "Outcome of the last snapshot (none, ok, failed, fork failed); the value is 1."},
    {"last_snapshot_duration_ms", Kind::kGauge, "hmdb_last_snapshot_duration_ms", "", "Duration of the last snapshot."},
    {"fork_stall_last_us", Kind::kGauge, "hmdb_fork_stall_last_us", "", "Event-loop stall of the last snapshot fork()."},
    {"fork_stall_max_us", Kind::kGauge, "hmdb_fork_stall_max_us", "", "Longest fork() stall since start."},
    {"disk_rounds", Kind::kCounter, "hmdb_disk_rounds_total", "", "Disk-thread rounds (one write per round)."},
    {"disk_fsyncs", Kind::kCounter, "hmdb_disk_fsyncs_total", "", "fdatasync calls on the log."},
    {"disk_bytes_written", Kind::kCounter, "hmdb_disk_bytes_written_total", "", "Bytes written to the log."},
    {"fsync_last_us", Kind::kGauge, "hmdb_fsync_last_us", "", "Duration of the last fdatasync."},
    {"fsync_max_us", Kind::kGauge, "hmdb_fsync_max_us", "", "Longest fdatasync since start."},
    {"disk_queue_bytes", Kind::kGauge, "hmdb_disk_queue_bytes", "", "Bytes queued for the disk thread."},
    {"recovery_entries_replayed", Kind::kGauge, "hmdb_recovery_entries_replayed", "",
     "Log entries replayed at startup."},
    {"recovery_ms", Kind::kGauge, "hmdb_recovery_ms", "", "Duration of startup recovery."},
    // # Replication
    {"role", Kind::kInfo, "hmdb_role", "role",
     "Raft role (leader, follower, precandidate, candidate, learner); the value is 1."},
    {"redis_role", Kind::kSkip, "", "", "the role again, in Redis' words"},
    {"clustered", Kind::kGauge, "hmdb_clustered", "", "1 if the node runs with peers (--peer-addr)."},
    {"node_id", Kind::kGauge, "hmdb_node_id", "", "This node's id."},
    {"term", Kind::kGauge, "hmdb_term", "", "Current raft term."},
    {"leader_id", Kind::kGauge, "hmdb_leader_id", "", "Id of the leader this node knows (0: none)."},
    {"leader_addr", Kind::kSkip, "", "", "hmdb_leader_id names the leader; its address is in INFO"},
    {"commit_index", Kind::kGauge, "hmdb_commit_index", "", "Highest log index known to be committed."},
    {"applied_index", Kind::kGauge, "hmdb_applied_index", "", "Highest log index applied to the state."},
    {"last_index", Kind::kGauge, "hmdb_last_index", "", "Last index in this node's log."},
    {"first_index", Kind::kGauge, "hmdb_first_index", "", "First index in this node's log (after the snapshot)."},
    {"voters", Kind::kListCount, "hmdb_voters", "", "Voters in the membership in force."},
    {"learners", Kind::kListCount, "hmdb_learners", "", "Learners in the membership in force."},
    {"leader_changes", Kind::kCounter, "hmdb_leader_changes_total", "", "Changes of the known leader since start."},
    {"inflight_batches", Kind::kGauge, "hmdb_inflight_batches", "", "Batches proposed and not yet applied."},
    {"inflight_bytes", Kind::kGauge, "hmdb_inflight_bytes", "", "Bytes proposed and not yet applied."},
    {"pending_reads", Kind::kGauge, "hmdb_pending_reads", "", "Linearizable reads waiting for their read index."},
    // # Stats
    {"total_connections_received", Kind::kCounter, "hmdb_connections_received_total", "", "Client connections accepted."},
    {"rejected_connections", Kind::kCounter, "hmdb_rejected_connections_total", "",
     "Client connections refused (--max-clients)."},
    {"total_commands_processed", Kind::kCounter, "hmdb_commands_processed_total", "", "Client commands processed."},
    {"total_writes", Kind::kCounter, "hmdb_writes_total", "", "Write commands proposed."},
    {"total_batches", Kind::kCounter, "hmdb_batches_total", "", "Batches (log entries) proposed."},
    {"protocol_errors", Kind::kCounter, "hmdb_protocol_errors_total", "", "Client connections closed for a protocol error."},
    {"output_limit_disconnects", Kind::kCounter, "hmdb_output_limit_disconnects_total", "",
     "Clients disconnected for not reading their replies."},
    {"busy_refusals", Kind::kCounter, "hmdb_busy_refusals_total", "",
     "Proposals refused by raft's uncommitted-bytes bound (retried)."},
    {"loop_turn_max_ms", Kind::kGauge, "hmdb_loop_turn_max_ms", "", "Longest event-loop turn since start."},
    {"slow_turns", Kind::kCounter, "hmdb_slow_turns_total", "", "Event-loop turns of at least 100 ms."},
    // # Digest (only in `INFO digest`, not in `INFO all`)
    {"state_digest", Kind::kSkip, "", "", "a hash, not a measurement"},
};

// The fields of one `peer<ID>:addr=...,connected=...,...` line of INFO replication; every
// sample carries the label peer="<ID>". A row with leader_only is left out for a peer
// whose lag is "-": only a leader tracks its followers' progress (elsewhere INFO shows
// match=0, lag=-).
struct PeerMetric {
  std::string_view field;
  Kind kind;
  std::string_view metric;
  std::string_view label;  // kInfo
  bool leader_only;
  std::string_view help;
};

constexpr PeerMetric kPeerMetrics[] = {
    {"addr", Kind::kInfo, "hmdb_peer_info", "addr", false,
     "A peer's address and state (voter, learner; - where this node is not its leader); the value is 1."},
    {"state", Kind::kInfo, "hmdb_peer_info", "state", false, ""},
    {"connected", Kind::kGauge, "hmdb_peer_connected", "", false, "1 if this node's connection to the peer is up."},
    {"match", Kind::kGauge, "hmdb_peer_match_index", "", true, "Leader only: highest log index the peer is known to hold."},
    {"lag", Kind::kGauge, "hmdb_peer_lag_entries", "", true, "Leader only: entries the peer is behind the leader's last index."},
    {"sent", Kind::kCounter, "hmdb_peer_messages_sent_total", "", false, "Raft messages sent to the peer."},
    {"dropped", Kind::kCounter, "hmdb_peer_messages_dropped_total", "", false,
     "Raft messages to the peer dropped (no connection, queue full; raft retransmits)."},
    {"received", Kind::kCounter, "hmdb_peer_messages_received_total", "", false, "Raft messages received from the peer."},
    {"refused", Kind::kCounter, "hmdb_peer_frames_refused_total", "", false, "Frames from the peer refused (bad checksum, ...)."},
};

constexpr std::string_view kAppSection = "App";
constexpr std::string_view kAppMetricPrefix = "hmdb_app_";
constexpr std::string_view kPeerFieldPrefix = "peer";
constexpr std::string_view kUnmappedComment = "# hmdb: INFO field ";

std::string_view trim_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

// The number forms INFO prints and the exposition format accepts as they are:
// -?digits(.digits)?([eE][-+]?digits)?. (Not from_chars: it also takes "inf" and "nan".)
bool is_number(std::string_view v) {
  size_t i = 0;
  auto digits = [&] {
    size_t start = i;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') i++;
    return i > start;
  };
  if (i < v.size() && v[i] == '-') i++;
  if (!digits()) return false;
  if (i < v.size() && v[i] == '.') {
    i++;
    if (!digits()) return false;
  }
  if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
    i++;
    if (i < v.size() && (v[i] == '+' || v[i] == '-')) i++;
    if (!digits()) return false;
  }
  return i == v.size();
}

// A peer id: decimal digits only, fitting in 64 bits.
bool parse_id(std::string_view v, uint64_t* out) { return parse_uint64(v, out); }

std::string escape_help(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

// An app's field name as a metric name: [a-zA-Z0-9_:] kept, anything else becomes '_'.
std::string sanitize_name(std::string_view name) {
  std::string out;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == ':';
    out += ok ? c : '_';
  }
  return out;
}

const char* type_name(Kind k) { return k == Kind::kCounter ? "counter" : "gauge"; }

using Labels = std::vector<std::pair<std::string_view, std::string>>;

struct Family {
  std::string name;
  std::string_view help;
  Kind kind = Kind::kGauge;
  std::vector<std::pair<Labels, std::string>> samples;  // (labels, value)
};

void write_family(const Family& f, std::string* out) {
  if (f.samples.empty()) return;
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f.name, escape_help(f.help), f.name, type_name(f.kind));
  for (const auto& [labels, value] : f.samples) {
    *out += f.name;
    if (!labels.empty()) {
      *out += '{';
      for (size_t i = 0; i < labels.size(); i++) {
        if (i > 0) *out += ',';
        *out += fmt::format("{}=\"{}\"", labels[i].first, escape_label_value(labels[i].second));
      }
      *out += '}';
    }
    *out += ' ';
    *out += value;
    *out += '\n';
  }
}

// Rows that share a metric are one family; the family's help is its first row's.
template <class Row, size_t N>
std::vector<std::string_view> family_order(const Row (&rows)[N]) {
  std::vector<std::string_view> names;
  for (const Row& r : rows)
    if (r.kind != Kind::kSkip && std::find(names.begin(), names.end(), r.metric) == names.end()) names.push_back(r.metric);
  return names;
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string info_to_prometheus(std::string_view info) {
  // 1. Split INFO into engine fields, app fields and peer lines (first occurrence wins).
  std::map<std::string_view, std::string_view> fields;
  std::vector<std::pair<std::string_view, std::string_view>> app_fields;
  std::map<uint64_t, std::map<std::string_view, std::string_view>> peers;
  std::vector<std::string> notes;  // unmapped fields, values that are not numbers
  std::string_view section;
  while (!info.empty()) {
    size_t nl = info.find('\n');
    std::string_view line = trim_cr(info.substr(0, nl));
    info.remove_prefix(nl == std::string_view::npos ? info.size() : nl + 1);
    if (line.empty()) continue;
    if (line[0] == '#') {
      section = line.substr(1);
      while (!section.empty() && section.front() == ' ') section.remove_prefix(1);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    if (section == kAppSection) {
      bool seen = std::any_of(app_fields.begin(), app_fields.end(), [&](const auto& f) { return f.first == key; });
      if (!seen) app_fields.emplace_back(key, value);
    } else if (uint64_t id = 0; key.starts_with(kPeerFieldPrefix) && parse_id(key.substr(kPeerFieldPrefix.size()), &id)) {
      auto& p = peers[id];
      while (!value.empty()) {
        size_t comma = value.find(',');
        std::string_view item = value.substr(0, comma);
        value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
        size_t eq = item.find('=');
        if (eq == std::string_view::npos) continue;
        p.emplace(item.substr(0, eq), item.substr(eq + 1));
      }
    } else {
      fields.emplace(key, value);
    }
  }

  // 2. Engine fields, in table order.
  std::string out;
  for (std::string_view name : family_order(kInfoMetrics)) {
    Family f;
    f.name = name;
    Labels info_labels;
    bool first_row = true;
    for (const InfoMetric& row : kInfoMetrics) {
      if (row.metric != name) continue;
      if (first_row) f.help = row.help, f.kind = row.kind, first_row = false;
      auto it = fields.find(row.field);
      if (it == fields.end()) continue;
      std::string_view v = it->second;
      if (row.kind == Kind::kInfo) {
        info_labels.emplace_back(row.label, std::string(v));
      } else if (row.kind == Kind::kListCount) {
        size_t n = v.empty() ? 0 : static_cast<size_t>(std::count(v.begin(), v.end(), ',')) + 1;
        f.samples.push_back({{}, std::to_string(n)});
      } else if (is_number(v)) {
        f.samples.push_back({{}, std::string(v)});
      } else {
        notes.push_back(fmt::format("{}{} has a value that is not a number: {}", kUnmappedComment, row.field,
                                    escape_label_value(v)));
      }
    }
    if (!info_labels.empty()) f.samples.push_back({std::move(info_labels), "1"});
    write_family(f, &out);
  }
  for (const auto& [key, value] : fields) {
    bool known = std::any_of(std::begin(kInfoMetrics), std::end(kInfoMetrics),
                             [&](const InfoMetric& r) { return r.field == key; });
    if (!known) notes.push_back(fmt::format("{}{} is not mapped", kUnmappedComment, key));
  }

  // 3. Peer lines: one family per peer field, one sample per peer (ascending ids).
  for (std::string_view name : family_order(kPeerMetrics)) {
    Family f;
    f.name = name;
    for (const PeerMetric& row : kPeerMetrics) {
      if (row.metric == name) {
        f.help = row.help, f.kind = row.kind;
        break;
      }
    }
    for (const auto& [id, kv] : peers) {
      auto lag = kv.find("lag");
      const bool progress_known = lag != kv.end() && lag->second != "-";
      Labels labels{{"peer", std::to_string(id)}};
      bool any_info = false;
      for (const PeerMetric& row : kPeerMetrics) {
        if (row.metric != name) continue;
        if (row.leader_only && !progress_known) continue;
        auto it = kv.find(row.field);
        if (it == kv.end()) continue;
        if (row.kind == Kind::kInfo) {
          labels.emplace_back(row.label, std::string(it->second));
          any_info = true;
        } else if (is_number(it->second)) {
          f.samples.push_back({labels, std::string(it->second)});
        } else {
          notes.push_back(fmt::format("{}peer{} {} has a value that is not a number: {}", kUnmappedComment, id,
                                      row.field, escape_label_value(it->second)));
        }
      }
      if (any_info) f.samples.push_back({std::move(labels), "1"});
    }
    write_family(f, &out);
  }
  for (const auto& [id, kv] : peers)
    for (const auto& [key, value] : kv) {
      bool known = std::any_of(std::begin(kPeerMetrics), std::end(kPeerMetrics),
                               [&](const PeerMetric& r) { return r.field == key; });
      if (!known) notes.push_back(fmt::format("{}peer{} {} is not mapped", kUnmappedComment, id, key));
    }

  // 4. The app's own fields: numbers become gauges; the app decides what they mean.
  for (const auto& [key, value] : app_fields) {
    if (!is_number(value)) continue;
    Family f;
    f.name = std::string(kAppMetricPrefix) + sanitize_name(key);
    f.help = "A field of the app's INFO section.";
    f.samples.push_back({{}, std::string(value)});
    write_family(f, &out);
  }

  for (const std::string& n : notes) out += n + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------
// HTTP, one connection

namespace {

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr std::string_view kRootBody = "hmdb: metrics are at /metrics\n";

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
  }
  return "Error";
}

// The request target's path: origin-form "/p?q" -> "/p"; absolute-form "http://h/p" -> "/p".
// Empty if it is neither.
std::string_view target_path(std::string_view target) {
  constexpr std::string_view kScheme = "http://";
  if (target.size() >= kScheme.size() &&
      std::equal(kScheme.begin(), kScheme.end(), target.begin(),
                 [](char a, char b) { return a == (b >= 'A' && b <= 'Z' ? b - 'A' + 'a' : b); })) {
    target.remove_prefix(kScheme.size());
    size_t slash = target.find('/');
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.empty() || target[0] != '/') return {};
  return target.substr(0, target.find('?'));
}

}  // namespace

HttpResponder::State HttpResponder::feed(std::string_view bytes) {
  if (state_ != State::kReading) return state_;
  // Keep one byte beyond the bound: it tells "exactly at the bound" from "over it".
  const size_t room = kMetricsRequestHeadBytesMax + 1 - head_.size();
  head_.append(bytes.substr(0, std::min(room, bytes.size())));
  parse();
  return state_;
}

void HttpResponder::parse() {
  // The head ends with an empty line; lines end with CRLF (a bare LF is accepted too).
  size_t end = std::string::npos;
  for (size_t i = scanned_; i < head_.size(); i++) {
    if (head_[i] != '\n') continue;
    if ((i >= 1 && head_[i - 1] == '\n') || (i >= 2 && head_[i - 1] == '\r' && head_[i - 2] == '\n')) {
      end = i + 1;
      break;
    }
  }
  if (end == std::string::npos || end > kMetricsRequestHeadBytesMax) {
    if (head_.size() > kMetricsRequestHeadBytesMax) {
      respond(431, "request head too large\n", kTextContentType);
    } else {
      scanned_ = head_.size();
    }
    return;
  }

  // Request line: METHOD SP target SP HTTP/1.x
  std::string_view line(head_.data(), head_.find('\n'));
  line = trim_cr(line);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    respond(400, "malformed request line\n", kTextContentType);
    return;
  }
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  const bool version_ok = version.size() == 8 && version.starts_with("HTTP/1.") && version[7] >= '0' && version[7] <= '9';
  std::string_view path = target_path(target);
  if (method.empty() || !version_ok || path.empty()) {
    respond(400, "malformed request line\n", kTextContentType);
  } else if (method != "GET") {
    respond(405, "only GET is served\n", kTextContentType, "Allow: GET\r\n");
  } else if (path == "/metrics") {
    std::string body = source_();
    respond(200, body, kMetricsContentType);
  } else if (path == "/") {
    respond(200, kRootBody, kTextContentType);
  } else {
    respond(404, "not found; metrics are at /metrics\n", kTextContentType);
  }
}

void HttpResponder::respond(int status, std::string_view body, std::string_view content_type,
                            std::string_view extra_headers) {
  HMDB_ASSERT(state_ == State::kReading, "one response per connection");
  status_ = status;
  response_ = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
                          status, reason_phrase(status), content_type, body.size(), extra_headers);
  response_ += body;
  state_ = State::kResponding;
  head_.clear();
  head_.shrink_to_fit();
}

// ---------------------------------------------------------------------------------------
// The listener

namespace {

constexpr uint64_t kTokenListen = 0;
constexpr uint64_t kTokenTimer = 1;
// listen(2) backlog: scrapers connect rarely.
constexpr int kMetricsListenBacklog = 64;
// recv(2) size while reading a request head or lingering.
constexpr size_t kMetricsReadChunkBytes = 4096;

}  // namespace

Status MetricsServer::open(const std::string& bind_ip, uint16_t port, std::unique_ptr<MetricsServer>* out) {
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (::inet_pton(AF_INET, bind_ip.c_str(), &addr.sin_addr) != 1)
    return Status::invalid_argument("metrics: " + bind_ip + " is not an IPv4 address");
  m->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  m->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  m->timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (m->listen_fd_ < 0 || m->epoll_fd_ < 0 || m->timer_fd_ < 0)
    return Status::io_error(std::string("metrics: socket/epoll/timerfd: ") + std::strerror(errno));
  int yes = 1;
  ::setsockopt(m->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  if (::bind(m->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Status::io_error(fmt::format("cannot listen for metrics on {}:{}: {}", bind_ip, port, std::strerror(errno)));
  if (::listen(m->listen_fd_, kMetricsListenBacklog) != 0)
    return Status::io_error(std::string("metrics: listen: ") + std::strerror(errno));
  socklen_t len = sizeof addr;
  ::getsockname(m->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  m->port_ = ntohs(addr.sin_port);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTokenListen;
  if (::epoll_ctl(m->epoll_fd_, EPOLL_CTL_ADD, m->listen_fd_, &ev) != 0)
    return Status::io_error(std::string("metrics: epoll_ctl: ") + std::strerror(errno));
  ev.data.u64 = kTokenTimer;
  if (::epoll_ctl(m->epoll_fd_, EPOLL_CTL_ADD, m->timer_fd_, &ev) != 0)
    return Status::io_error(std::string("metrics: epoll_ctl: ") + std::strerror(errno));
  *out = std::move(m);
  return Status::ok();
}

MetricsServer::~MetricsServer() {
  for (auto& [token, c] : connections_) ::close(c->fd);
  for (int fd : {listen_fd_, timer_fd_, epoll_fd_})
    if (fd >= 0) ::close(fd);
}

void MetricsServer::poll(uint64_t now_ms, const HttpResponder::MetricsSource& source) {
  epoll_event events[kMetricsEventsPerPollMax];
  int n = ::epoll_wait(epoll_fd_, events, kMetricsEventsPerPollMax, 0);
  for (int i = 0; i < n; i++) {
    const uint64_t token = events[i].data.u64;
    if (token == kTokenListen) {
      accept_connections(now_ms, source);
    } else if (token == kTokenTimer) {
      uint64_t expirations = 0;
      [[maybe_unused]] ssize_t r = ::read(timer_fd_, &expirations, sizeof expirations);
    } else if (auto it = connections_.find(token); it != connections_.end()) {
      if (!serve(*it->second)) close_connection(token);
    }
  }
  if (accept_paused_until_ms_ != 0 && now_ms >= accept_paused_until_ms_) {
    accept_paused_until_ms_ = 0;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kTokenListen;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  }
  std::vector<uint64_t> expired;
  for (const auto& [token, c] : connections_)
    if (c->deadline_ms <= now_ms) expired.push_back(token);
  for (uint64_t token : expired) close_connection(token);
  arm_timer(now_ms);
}

void MetricsServer::accept_connections(uint64_t now_ms, const HttpResponder::MetricsSource& source) {
  for (int i = 0; i < kMetricsAcceptsPerPollMax; i++) {
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return;
      // Out of descriptors or memory: the connection stays in the backlog and the listener
      // readable, which would wake the loop at once, every turn. Stop listening for a while.
      if (now_ms - last_accept_error_log_ms_ >= kMetricsLogIntervalMs || last_accept_error_log_ms_ == 0) {
        last_accept_error_log_ms_ = now_ms;
        log_line("metrics: accept: {}; not accepting for {} ms", std::strerror(errno), kMetricsAcceptPauseMs);
      }
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      accept_paused_until_ms_ = now_ms + kMetricsAcceptPauseMs;
      return;
    }
    if (connections_.size() >= kMetricsConnectionsMax) {
      ::close(fd);
      continue;
    }
    const uint64_t token = next_token_++;
    auto c = std::make_unique<Connection>(Connection{token, fd, now_ms + kMetricsConnectionTimeoutMs, HttpResponder(source)});
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = token;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log_line("metrics: epoll_ctl: {}", std::strerror(errno));
      ::close(fd);
      continue;
    }
    Connection& conn = *c;
    connections_.emplace(token, std::move(c));
    // The request is often there already.
    if (!serve(conn)) close_connection(token);
  }
}

bool MetricsServer::serve(Connection& c) {
  char buf[kMetricsReadChunkBytes];
  // Read the request head (bounded: the responder answers 431 past its bound).
  while (!c.lingering && c.responder.state() == HttpResponder::State::kReading) {
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n > 0) {
      c.responder.feed(std::string_view(buf, static_cast<size_t>(n)));
    } else if (n == 0) {
      return false;  // closed before a complete request: nothing to answer
    } else {
      return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    }
  }
  if (!c.lingering) {
    const std::string& r = c.responder.response();
    while (c.written < r.size()) {
      ssize_t n = ::send(c.fd, r.data() + c.written, r.size() - c.written, MSG_NOSIGNAL);
      if (n > 0) {
        c.written += static_cast<size_t>(n);
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        epoll_event ev{};
        ev.events = EPOLLOUT;
        ev.data.u64 = c.token;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
        return true;
      } else {
        return false;
      }
    }
    // All sent: half-close, and read what the client still sends until it closes.
    ::shutdown(c.fd, SHUT_WR);
    c.lingering = true;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = c.token;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  }
  while (true) {
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n == 0) return false;  // the client has closed: done
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    c.lingered_bytes += static_cast<size_t>(n);
    if (c.lingered_bytes > kMetricsLingerBytesMax) return false;
  }
}

void MetricsServer::close_connection(uint64_t token) {
  auto it = connections_.find(token);
  if (it == connections_.end()) return;
  ::close(it->second->fd);  // also removes it from the epoll set
  connections_.erase(it);
}

void MetricsServer::arm_timer(uint64_t now_ms) {
  itimerspec spec{};  // all zero: disarmed
  uint64_t first = accept_paused_until_ms_ != 0 ? accept_paused_until_ms_ : UINT64_MAX;
  for (const auto& [token, c] : connections_) first = std::min(first, c->deadline_ms);
  if (first != UINT64_MAX) {
    const uint64_t in_ms = first > now_ms ? first - now_ms : 1;
    spec.it_value.tv_sec = static_cast<time_t>(in_ms / 1000);
    spec.it_value.tv_nsec = static_cast<long>(in_ms % 1000) * 1000000;
  }
  ::timerfd_settime(timer_fd_, 0, &spec, nullptr);
}

}  // namespace hmdb::server
