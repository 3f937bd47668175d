// tests/server/metrics_test.cc — a node's statistics without a server: typed values rendered
// as INFO's text (byte for byte what INFO printed before the statistics were typed) and as
// the Prometheus exposition format (types, labels, a leader's peer lines, escaping, every
// statistic in both renderings); the HTTP responder fed bytes directly (whole requests,
// split at every byte, oversized heads, bad methods, unknown paths, garbage after a
// request), and the listener over loopback sockets.
#include "server/metrics.h"
#include "server/statistics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace hmdb::server {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using PeerStats = net::PeerTransport::PeerStats;

PeerStats peer(raft::NodeId id, std::string addr, bool connected, uint64_t sent, uint64_t dropped, uint64_t received,
               uint64_t refused) {
  PeerStats p;
  p.id = id;
  p.addr = std::move(addr);
  p.connected = connected;
  p.msgs_sent = sent;
  p.msgs_dropped = dropped;
  p.msgs_received = received;
  p.frames_refused = refused;
  return p;
}

raft::Status::Progress progress(raft::NodeId id, raft::Index match, bool learner = false) {
  return raft::Status::Progress{id, match, match + 1, learner, false, 0, 0};
}

// A leader of three voters; what is not set here is zero (or its default).
StatisticsSources leader_sources() {
  StatisticsSources s;
  s.version = "0.3.0";
  s.redis_version = "7.2.0";
  s.app_name = "kv";
  s.schema_version = 1;
  s.process_id = 4242;
  s.port = 7379;
  s.options.bind = "127.0.0.1";
  s.options.dir = "/tmp/d";
  s.options.durability = Durability::kAlways;
  s.options.peer_addr = "127.0.0.11:7400";
  s.shell.start_ms = 1'000'000;
  s.now_ms = 1'012'500;  // 12 s up
  s.shell.snapshots = 3;
  s.shell.last_snapshot_status = "ok";
  s.disk.bytes = 123456;
  s.raft.id = 1;
  s.raft.role = raft::Role::kLeader;
  s.raft.term = 5;
  s.raft.leader = 1;
  s.leader_addr = "127.0.0.11:7379";
  s.raft.commit = 100;
  s.applied_index = 99;
  s.raft.last_index = 100;
  s.raft.conf.voters = {1, 2, 3};
  s.leader_changes = 2;
  s.raft.progress = {progress(1, 100), progress(2, 100), progress(3, 40)};
  s.peers = {peer(2, "127.0.0.12:7400", true, 10, 0, 9, 0), peer(3, "127.0.0.13:7400", false, 5, 7, 2, 1)};
  s.replica.commands = 77;
  s.shell.loop_turn_max_ms = 4;
  s.app_info = "keys:42\r\nexpires:0\r\nflavour:vanilla\r\n";
  return s;
}

std::string prometheus(const StatisticsSources& s) { return render_prometheus(collect_statistics(s)); }
std::string info(const StatisticsSources& s, std::string_view section) {
  return render_info(collect_statistics(s), section);
}

TEST(InfoToPrometheus, GaugesHaveHelpTypeAndValue) {
  std::string m = prometheus(leader_sources());
  EXPECT_TRUE(contains(m, "# HELP hmdb_applied_index Highest log index applied to the state.\n"
                          "# TYPE hmdb_applied_index gauge\n"
                          "hmdb_applied_index 99\n"))
      << m;
  EXPECT_TRUE(contains(m, "# TYPE hmdb_term gauge\nhmdb_term 5\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_uptime_seconds gauge\nhmdb_uptime_seconds 12\n"));
}

TEST(InfoToPrometheus, CountersEndInTotal) {
  std::string m = prometheus(leader_sources());
  EXPECT_TRUE(contains(m, "# TYPE hmdb_commands_processed_total counter\nhmdb_commands_processed_total 77\n")) << m;
  EXPECT_TRUE(contains(m, "# TYPE hmdb_snapshots_taken_total counter\nhmdb_snapshots_taken_total 3\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_disk_bytes_written_total counter\nhmdb_disk_bytes_written_total 123456\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_leader_changes_total counter\nhmdb_leader_changes_total 2\n"));
}

TEST(InfoToPrometheus, StringFieldsBecomeLabelledInfoMetrics) {
  std::string m = prometheus(leader_sources());
  EXPECT_TRUE(contains(m, "# TYPE hmdb_role gauge\nhmdb_role{role=\"leader\"} 1\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_durability{durability=\"always\"} 1\n"));
  EXPECT_TRUE(contains(m, "hmdb_last_snapshot_status{status=\"ok\"} 1\n"));
  // Two fields, one sample.
  EXPECT_TRUE(contains(m, "hmdb_build_info{version=\"0.3.0\",app=\"kv\"} 1\n"));
}

TEST(InfoToPrometheus, ListsAreCounted) {
  std::string m = prometheus(leader_sources());
  EXPECT_TRUE(contains(m, "hmdb_voters 3\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_learners 0\n"));
}

TEST(InfoToPrometheus, SkippedFieldsAreAbsentAndNotReportedAsUnmapped) {
  std::string m = prometheus(leader_sources());
  for (const char* absent : {"redis", "process_id", "tcp_port", "data_dir", "leader_addr", "4242"})
    EXPECT_FALSE(contains(m, absent)) << absent << " in\n" << m;
  EXPECT_FALSE(contains(m, "# hmdb:")) << m;
}

TEST(InfoToPrometheus, LeaderPeerLinesBecomeOneFamilyPerFieldWithPeerLabels) {
  std::string m = prometheus(leader_sources());
  EXPECT_TRUE(contains(m, "# HELP hmdb_peer_lag_entries Leader only: entries the peer is behind the leader's last index.\n"
                          "# TYPE hmdb_peer_lag_entries gauge\n"
                          "hmdb_peer_lag_entries{peer=\"2\"} 0\n"
                          "hmdb_peer_lag_entries{peer=\"3\"} 60\n"))
      << m;
  EXPECT_TRUE(contains(m, "hmdb_peer_match_index{peer=\"2\"} 100\nhmdb_peer_match_index{peer=\"3\"} 40\n"));
  EXPECT_TRUE(contains(m, "hmdb_peer_connected{peer=\"2\"} 1\nhmdb_peer_connected{peer=\"3\"} 0\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_peer_messages_dropped_total counter\n"
                          "hmdb_peer_messages_dropped_total{peer=\"2\"} 0\n"
                          "hmdb_peer_messages_dropped_total{peer=\"3\"} 7\n"));
  EXPECT_TRUE(contains(m, "hmdb_peer_frames_refused_total{peer=\"3\"} 1\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_peer_bytes_sent_total counter\n"));
  EXPECT_TRUE(contains(m, "hmdb_peer_snapshot_bytes{peer=\"3\"} 0\n"));
  EXPECT_TRUE(contains(m, "hmdb_peer_info{peer=\"2\",addr=\"127.0.0.12:7400\",state=\"voter\"} 1\n"));
  // One HELP/TYPE per family, however many peers.
  size_t first = m.find("# TYPE hmdb_peer_connected ");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(m.find("# TYPE hmdb_peer_connected ", first + 1), std::string::npos);
}

TEST(InfoToPrometheus, FollowerPeerLinesHaveNoProgress) {
  StatisticsSources s;
  s.raft.role = raft::Role::kFollower;
  s.peers = {peer(1, "127.0.0.11:7400", true, 3, 0, 4, 0)};  // and no raft progress: not the leader
  std::string m = prometheus(s);
  EXPECT_FALSE(contains(m, "hmdb_peer_lag_entries")) << m;
  EXPECT_FALSE(contains(m, "hmdb_peer_match_index")) << m;
  EXPECT_TRUE(contains(m, "hmdb_peer_messages_received_total{peer=\"1\"} 4\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_peer_info{peer=\"1\",addr=\"127.0.0.11:7400\",state=\"-\"} 1\n")) << m;
  EXPECT_FALSE(contains(m, "# hmdb:")) << m;
}

TEST(InfoToPrometheus, AppFieldsThatAreNumbersBecomeGauges) {
  std::string m = prometheus(leader_sources());
  EXPECT_TRUE(contains(m, "# HELP hmdb_app_keys A field of the app's INFO section.\n"
                          "# TYPE hmdb_app_keys gauge\nhmdb_app_keys 42\n"))
      << m;
  EXPECT_TRUE(contains(m, "hmdb_app_expires 0\n"));
  EXPECT_FALSE(contains(m, "vanilla"));
  EXPECT_FALSE(contains(m, "flavour"));
}

TEST(InfoToPrometheus, AppFieldNamesAreSanitized) {
  StatisticsSources s;
  s.app_info = "weird-name.x:5\r\n";
  std::string m = prometheus(s);
  EXPECT_TRUE(contains(m, "hmdb_app_weird_name_x 5\n")) << m;
}

TEST(InfoToPrometheus, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  StatisticsSources s;
  s.shell.last_snapshot_status = "fork \"failed\" \\ here";
  std::string m = prometheus(s);
  EXPECT_TRUE(contains(m, "hmdb_last_snapshot_status{status=\"fork \\\"failed\\\" \\\\ here\"} 1\n")) << m;
}

// The engine's statistics are typed, so none can be unknown to the renderer or hold a
// non-number where a number belongs (what the text parser used to report as "# hmdb:"
// comments). The app's lines are still free text: whatever is not `field:number` is left
// out, silently.
TEST(InfoToPrometheus, AppLinesThatAreNotNumbersAreLeftOutAndNothingIsReportedUnmapped) {
  StatisticsSources s;
  s.raft.role = raft::Role::kLeader;
  s.raft.last_index = 8;
  s.raft.progress = {progress(7, 7)};
  s.peers = {peer(7, "x:1", true, 0, 0, 0, 0)};
  s.app_info = "brand_new_counter:5\nterm:abc\n# Section\nno colon\nsent:inf\ndup:1\ndup:2\n:3\n";
  std::string m = prometheus(s);
  EXPECT_TRUE(contains(m, "hmdb_app_brand_new_counter 5\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_app_dup 1\n")) << m;
  EXPECT_FALSE(contains(m, "hmdb_app_dup 2")) << m;
  EXPECT_FALSE(contains(m, "hmdb_app_term")) << m;
  EXPECT_FALSE(contains(m, "hmdb_app_sent")) << m;
  EXPECT_FALSE(contains(m, "abc")) << m;
  EXPECT_FALSE(contains(m, "# hmdb:")) << m;
  // LF-only lines are read the same way.
  EXPECT_TRUE(contains(m, "hmdb_peer_lag_entries{peer=\"7\"} 1\n")) << m;
}

TEST(InfoToPrometheus, EveryLineIsACommentOrASample) {
  // The exposition format: "# HELP"/"# TYPE"/comment lines, or "name{labels} value".
  std::string m = prometheus(leader_sources());
  ASSERT_FALSE(m.empty());
  ASSERT_EQ(m.back(), '\n');
  size_t start = 0;
  while (start < m.size()) {
    size_t nl = m.find('\n', start);
    std::string line = m.substr(start, nl - start);
    start = nl + 1;
    ASSERT_FALSE(line.empty());
    if (line[0] == '#') continue;
    ASSERT_TRUE(line.starts_with("hmdb_")) << line;
    size_t sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    std::string value = line.substr(sp + 1);
    ASSERT_FALSE(value.empty()) << line;
    for (char c : value) ASSERT_TRUE((c >= '0' && c <= '9') || c == '-' || c == '.' || c == 'e') << line;
  }
}

// ---- the description, and INFO's text ----

// A leader whose every statistic has a value of its own (so a reader that reads the wrong
// source shows), with a learner among its peers and the digest collected.
StatisticsSources distinct_sources() {
  StatisticsSources s;
  s.version = "0.1.0";
  s.redis_version = "7.0.0";
  s.app_name = "kv";
  s.schema_version = 3;
  s.schema_version_oldest = 2;
  s.schema_version_active = 2;
  s.schema_blocked_at_index = 811;
  s.schema_blocked_version = 4;
  s.process_id = 21538;
  s.port = 47245;
  s.options.bind = "127.0.0.13";
  s.options.dir = "/tmp/hmdb-stats-capture-j002gvd8/node3";
  s.options.max_clients = 10000;
  s.options.durability = Durability::kPeriodic;
  s.options.fsync_interval_ms = 250;
  s.options.snapshot_log_bytes = 268435456;
  s.options.peer_addr = "127.0.0.13:41000";
  s.shell.start_ms = 1'700'000'000'000;
  s.now_ms = s.shell.start_ms + 7'999;
  s.connected_clients = 11;
  s.client_output_limit_bytes = 1073741824;
  s.log_bytes_since_snapshot = 1166;
  s.snapshot_in_progress = true;
  s.shell.snapshots = 12;
  s.shell.snapshot_failures = 13;
  s.shell.last_snapshot_index = 14;
  s.shell.last_snapshot_status = "ok";
  s.shell.last_snapshot_ms = 15;
  s.shell.fork_last_us = 16;
  s.shell.fork_max_us = 17;
  s.options.snapshot_method = SnapshotMethod::kSlices;
  s.snapshot_slices_in_progress = true;
  s.shell.last_snapshot_method = "slices";
  s.shell.last_snapshot_bytes = 190;
  s.shell.last_snapshot_slice_us = 191;
  s.shell.last_snapshot_slice_turn_max_us = 192;
  s.shell.last_snapshot_slice_turns = 193;
  s.disk = DiskStats{.rounds = 41, .holds = 160, .holds_expired = 161, .holds_expired_unsent = 165,
                     .holds_skipped = 166, .hold_sync_avg_us = 167, .hold_return_avg_us = 168, .syncs = 42,
                     .appends = 99, .bytes = 1786, .preallocated_bytes = 1048576, .preallocate_failures = 162,
                     .messages_sent = 163, .quiet_acks = 164, .loop_rounds = 169, .last_sync_us = 1254,
                     .max_sync_us = 14108};
  s.disk_queue_bytes = 18;
  s.shell.recovered_entries = 19;
  s.shell.recovery_ms = 21;
  s.raft.id = 3;
  s.raft.role = raft::Role::kLeader;
  s.raft.term = 22;
  s.raft.leader = 3;
  s.leader_addr = "127.0.0.13:47245";
  s.raft.commit = 1021;
  s.applied_index = 1020;
  s.raft.last_index = 1023;
  s.raft.first_index = 24;
  s.raft.log_bytes = 125;
  s.raft.trimmed_entries = 1201;
  s.raft.snapshots_wanted = 1202;
  s.raft.conf.voters = {1, 2, 3};
  s.raft.conf.learners = {4};
  s.leader_changes = 25;
  s.inflight_batches = 26;
  s.inflight_bytes = 27;
  s.pending_reads = 28;
  s.forward_pending = 54;
  s.forward = core::Forwarder::Stats{.resent = 56, .unknown_outcomes = 57, .timed_out = 58, .links_broken = 59, .handshakes_refused = 159};
  s.raft.progress = {progress(1, 1023), progress(2, 1000), progress(3, 1023), progress(4, 980, true)};
  s.peers = {peer(1, "127.0.0.11:34503", true, 47, 29, 48, 30), peer(2, "127.0.0.12:59297", false, 49, 31, 50, 32),
             peer(4, "127.0.0.14:41234", true, 51, 33, 52, 34)};
  // The learner is receiving a snapshot: 300 of its 1000 bytes acknowledged.
  s.raft.progress[3].sending_snapshot = true;
  s.raft.progress[3].snapshot_acked = 300;
  s.raft.progress[3].snapshot_total = 1000;
  s.peers[2].bytes_sent = 70;
  s.shell.connections_received = 40;
  s.shell.rejected_connections = 35;
  s.shell.auth_failures = 116;
  s.replica = core::Replica::Stats{.commands = 36,
                                   .writes = 37,
                                   .batches = 38,
                                   .busy_refusals = 45,
                                   .forwarded = 55,
                                   .transactions = 61,
                                   .transactions_watch_failed = 62};
  s.replica.requests = 63;
  s.replica.unchanged_writes = 184;
  s.requests.repeats = 64;
  s.request_ids = 65;
  s.request_table_bytes = 66;
  s.requests.evicted_by_bytes = 67;
  s.shell.protocol_errors = 39;
  s.shell.tls_handshake_failures = 117;
  s.shell.tls_reloads = 118;
  s.shell.tls_reload_failures = 119;
  s.peer_tls_refused = 120;
  s.snapshot_loading = true;
  s.shell.snapshot_installs = 121;
  s.shell.last_install_load_ms = 122;
  s.shell.last_install_load_turns = 123;
  s.shell.last_install_load_messages = 124;
  s.shell.unlogged_log_trims = 126;
  s.shell.last_install_prepare_messages = 125;
  s.shell.output_limit_disconnects = 44;
  s.shell.loop_turn_max_ms = 46;
  s.shell.slow_turns = 53;
  s.shell.read_bound_turns = 166;
  s.shell.long_turns = 133;
  s.shell.long_turns_us = 134000;
  s.shell.long_turns_cpu_us = 135000;
  s.shell.long_turns_cpu_max_us = 140000;
  s.shell.long_turns_on_cpu = 136;
  s.shell.last_long_turn_us = 137000;
  s.shell.last_long_turn_cpu_us = 138000;
  s.shell.last_long_turn_cpu_max_us = 141000;
  s.shell.last_long_turn_preemptions = 139;
  s.shell.loop_turns = 150;
  s.shell.ack_waits = 183;
  s.replica.sliced_replies = 151;
  s.sliced_replies_in_progress = 152;
  s.replica.reply_slices = 153;
  s.replica.sliced_writes = 156;
  s.replica.write_slices = 157;
  s.replica.apply_yields = 167;
  s.applying_index = 158;
  s.replica.slice_hold_overdue_turns = 154;
  s.replica.slice_reader_waits_expired = 155;
  s.pubsub_channels = 101;
  s.pubsub_patterns = 102;
  s.pubsub_subscribers = 103;
  s.pubsub_catching_up = 104;
  s.pubsub_lag_entries_max = 105;
  s.pubsub = core::PubSub::Stats{.events = 106,
                                 .messages = 107,
                                 .ended_slow = 108,
                                 .ended_behind = 109,
                                 .ended_snapshot = 110,
                                 .resumes = 111,
                                 .resumes_refused = 112};
  s.events_retained = 113;
  s.events_retained_bytes = 114;
  s.events_oldest_index = 115;
  s.app_info = "keys:20\r\nexpires:0\r\n";
  s.state_digest = 0xaeedab0f2be9573f;
  s.state_digest_schema_version = 2;
  return s;
}

// INFO all of that leader, as INFO printed it before the statistics were typed: the text of
// a real 3-node cluster's leader (`INFO all`, captured from the binary of commit 482f38f),
// its values then changed so that no two statistics share one, and two peers added. Issue
// 11 changed it on purpose: a clustered node says redis_mode:cluster and has Redis' Cluster
// section (cluster_enabled:1), which cluster clients read; the stats section gained the
// request table's lines (total_requests .. request_ids_evicted_early, HMDB.REQ), and issue 14
// the live updates' lines at its end (pubsub_channels .. events_oldest_index).
constexpr std::string_view kGoldenInfoAll =
    "# Server\r\n"
    "hmdb_version:0.1.0\r\n"
    "redis_version:7.0.0\r\n"
    "redis_mode:cluster\r\n"
    "app:kv\r\n"
    "schema_version:3\r\n"
    "schema_version_oldest:2\r\n"
    "schema_version_active:2\r\n"
    "schema_blocked_at_index:811\r\n"
    "schema_blocked_version:4\r\n"
    "process_id:21538\r\n"
    "tcp_port:47245\r\n"
    "bind:127.0.0.13\r\n"
    "data_dir:/tmp/hmdb-stats-capture-j002gvd8/node3\r\n"
    "uptime_in_seconds:7\r\n"
    "\r\n"
    "# Clients\r\n"
    "connected_clients:11\r\n"
    "blocked_clients:0\r\n"
    "maxclients:10000\r\n"
    "client_output_limit_bytes:1073741824\r\n"
    "\r\n"
    "# Persistence\r\n"
    "durability:periodic\r\n"
    "fsync_interval_ms:250\r\n"
    "log_bytes_since_snapshot:1166\r\n"
    "snapshot_log_bytes:268435456\r\n"
    "snapshot_method:slices\r\n"
    "snapshot_in_progress:1\r\n"
    "snapshot_slices_in_progress:1\r\n"
    "loading:1\r\n"
    "unlogged_log_trims:126\r\n"
    "snapshot_installs:121\r\n"
    "last_install_load_ms:122\r\n"
    "last_install_load_turns:123\r\n"
    "last_install_load_messages:124\r\n"
    "last_install_prepare_messages:125\r\n"
    "snapshots_taken:12\r\n"
    "snapshot_failures:13\r\n"
    "last_snapshot_index:14\r\n"
    "last_snapshot_status:ok\r\n"
    "last_snapshot_duration_ms:15\r\n"
    "last_snapshot_method:slices\r\n"
    "last_snapshot_bytes:190\r\n"
    "last_snapshot_slices_us:191\r\n"
    "last_snapshot_slices_turn_max_us:192\r\n"
    "last_snapshot_slices_turns:193\r\n"
    "fork_stall_last_us:16\r\n"
    "huge_pages:no\r\n"
    "huge_pages_mend_passes:0\r\n"
    "huge_pages_mend_ranges:0\r\n"
    "fork_stall_max_us:17\r\n"
    "disk_rounds:41\r\n"
    "disk_holds:160\r\n"
    "disk_holds_expired:161\r\n"
    "disk_holds_expired_unsent:165\r\n"
    "disk_holds_skipped:166\r\n"
    "disk_hold_sync_avg_us:167\r\n"
    "disk_hold_return_avg_us:168\r\n"
    "disk_messages_sent:163\r\n"
    "disk_quiet_acks:164\r\n"
    "disk_loop_rounds:169\r\n"
    "disk_fsyncs:42\r\n"
    "disk_bytes_written:1786\r\n"
    "disk_preallocated_bytes:1048576\r\n"
    "disk_preallocate_failures:162\r\n"
    "fsync_last_us:1254\r\n"
    "fsync_max_us:14108\r\n"
    "disk_queue_bytes:18\r\n"
    "recovery_entries_replayed:19\r\n"
    "recovery_ms:21\r\n"
    "\r\n"
    "# Replication\r\n"
    "role:leader\r\n"
    "redis_role:master\r\n"
    "clustered:1\r\n"
    "node_id:3\r\n"
    "term:22\r\n"
    "leader_id:3\r\n"
    "leader_addr:127.0.0.13:47245\r\n"
    "commit_index:1021\r\n"
    "applied_index:1020\r\n"
    "last_index:1023\r\n"
    "first_index:24\r\n"
    "log_entries:1000\r\n"
    "log_bytes:125\r\n"
    "log_memory_bytes:33554432\r\n"
    "log_trimmed_entries:1201\r\n"
    "snapshots_wanted:1202\r\n"
    "voters:1,2,3\r\n"
    "learners:4\r\n"
    "leader_changes:25\r\n"
    "inflight_batches:26\r\n"
    "inflight_bytes:27\r\n"
    "pending_reads:28\r\n"
    "forward_pending:54\r\n"
    "forwarded_commands:55\r\n"
    "forward_resent:56\r\n"
    "forward_unknown_outcomes:57\r\n"
    "forward_timed_out:58\r\n"
    "forward_links_broken:59\r\n"
    "forward_handshakes_refused:159\r\n"
    "peer1:addr=127.0.0.11:34503,connected=1,match=1023,lag=0,state=voter,sent=47,dropped=29,received=48,refused=30,sent_bytes=0,snapshot_sent=0,snapshot_bytes=0\r\n"
    "peer2:addr=127.0.0.12:59297,connected=0,match=1000,lag=23,state=voter,sent=49,dropped=31,received=50,refused=32,sent_bytes=0,snapshot_sent=0,snapshot_bytes=0\r\n"
    "peer4:addr=127.0.0.14:41234,connected=1,match=980,lag=43,state=learner,sent=51,dropped=33,received=52,refused=34,sent_bytes=70,snapshot_sent=300,snapshot_bytes=1000\r\n"
    "\r\n"
    "# Stats\r\n"
    "total_connections_received:40\r\n"
    "rejected_connections:35\r\n"
    "acl_access_denied_auth:116\r\n"
    "total_commands_processed:36\r\n"
    "total_writes:37\r\n"
    "total_batches:38\r\n"
    "total_writes_unchanged:184\r\n"
    "total_transactions:61\r\n"
    "transactions_watch_failed:62\r\n"
    "protocol_errors:39\r\n"
    "tls_handshake_failures:117\r\n"
    "tls_peer_handshake_failures:120\r\n"
    "tls_reloads:118\r\n"
    "tls_reload_failures:119\r\n"
    "output_limit_disconnects:44\r\n"
    "busy_refusals:45\r\n"
    "total_requests:63\r\n"
    "request_repeats:64\r\n"
    "request_ids:65\r\n"
    "request_table_bytes:66\r\n"
    "request_ids_evicted_early:67\r\n"
    "loop_turn_max_ms:46\r\n"
    "slow_turns:53\r\n"
    "read_bound_turns:166\r\n"
    "long_turns:133\r\n"
    "long_turns_ms:134\r\n"
    "long_turns_cpu_ms:135\r\n"
    "long_turns_cpu_max_ms:140\r\n"
    "long_turns_on_cpu:136\r\n"
    "last_long_turn_ms:137\r\n"
    "last_long_turn_cpu_ms:138\r\n"
    "last_long_turn_cpu_max_ms:141\r\n"
    "last_long_turn_preemptions:139\r\n"
    "loop_turns:150\r\n"
    "loop_ack_waits:183\r\n"
    "sliced_replies:151\r\n"
    "sliced_replies_in_progress:152\r\n"
    "reply_slices:153\r\n"
    "slice_hold_overdue_turns:154\r\n"
    "slice_reader_waits_expired:155\r\n"
    "sliced_replies_buffered:0\r\n"
    "sliced_writes:156\r\n"
    "write_slices:157\r\n"
    "apply_yields:167\r\n"
    "applying_index:158\r\n"
    "pubsub_channels:101\r\n"
    "pubsub_patterns:102\r\n"
    "pubsub_subscribers:103\r\n"
    "pubsub_catching_up:104\r\n"
    "pubsub_lag_entries_max:105\r\n"
    "pubsub_events:106\r\n"
    "pubsub_messages_delivered:107\r\n"
    "pubsub_ended_slow:108\r\n"
    "pubsub_ended_behind:109\r\n"
    "pubsub_ended_snapshot:110\r\n"
    "pubsub_resumes:111\r\n"
    "pubsub_resumes_refused:112\r\n"
    "events_retained:113\r\n"
    "events_retained_bytes:114\r\n"
    "events_oldest_index:115\r\n"
    "\r\n"
    "# Cluster\r\n"
    "cluster_enabled:1\r\n"
    "\r\n"
    "# App\r\n"
    "keys:20\r\n"
    "expires:0\r\n"
    "\r\n";

// The start of the golden text up to (not including) the header `# <name>` that follows
// section `name`; the section's own text is between its header and the next.
std::string golden_section(std::string_view header) {
  size_t begin = kGoldenInfoAll.find(header);
  EXPECT_NE(begin, std::string_view::npos) << header;
  size_t end = kGoldenInfoAll.find("\r\n\r\n", begin);
  return std::string(kGoldenInfoAll.substr(begin, end + 4 - begin));
}

TEST(InfoText, IsTheTextInfoPrintedBefore) {
  const StatisticsSources s = distinct_sources();
  EXPECT_EQ(info(s, "all"), kGoldenInfoAll);
  EXPECT_EQ(info(s, "everything"), kGoldenInfoAll);
  EXPECT_EQ(info(s, "default"), kGoldenInfoAll);
  EXPECT_EQ(info(s, "ALL"), kGoldenInfoAll);
  for (const char* section : {"Server", "Clients", "Persistence", "Replication", "Stats", "Cluster", "App"})
    EXPECT_EQ(info(s, section), golden_section(std::string("# ") + section + "\r\n")) << section;
  EXPECT_EQ(info(s, "replication"), golden_section("# Replication\r\n"));
  EXPECT_EQ(info(s, "keyspace"), golden_section("# App\r\n"));
  EXPECT_EQ(info(s, "digest"), "# Digest\r\nstate_digest:aeedab0f2be9573f\r\nstate_digest_schema_version:2\r\napplied_index:1020\r\n\r\n");
  EXPECT_EQ(info(s, "nonsense"), "");
  // One section's lines alone, without its header.
  std::string replication = golden_section("# Replication\r\n");
  EXPECT_EQ(render_info_fields(collect_statistics(s), StatSection::kReplication),
            replication.substr(std::string_view("# Replication\r\n").size(),
                               replication.size() - std::string_view("# Replication\r\n\r\n").size()));
}

TEST(InfoText, FollowerAndSingleNodeAsBefore) {
  // A follower's replication section (captured as above): no progress of its peers.
  StatisticsSources f;
  f.options.peer_addr = "127.0.0.11:41000";
  f.raft.id = 1;
  f.raft.role = raft::Role::kFollower;
  f.raft.term = 1;
  f.raft.leader = 3;
  f.leader_addr = "127.0.0.13:47245";
  f.raft.commit = f.applied_index = f.raft.last_index = 21;
  f.raft.first_index = 1;
  f.raft.conf.voters = {1, 2, 3};
  f.peers = {peer(2, "127.0.0.12:59297", true, 0, 0, 0, 0), peer(3, "127.0.0.13:52805", true, 47, 0, 47, 0)};
  EXPECT_EQ(info(f, "replication"),
            "# Replication\r\n"
            "role:follower\r\n"
            "redis_role:slave\r\n"
            "clustered:1\r\n"
            "node_id:1\r\n"
            "term:1\r\n"
            "leader_id:3\r\n"
            "leader_addr:127.0.0.13:47245\r\n"
            "commit_index:21\r\n"
            "applied_index:21\r\n"
            "last_index:21\r\n"
            "first_index:1\r\n"
            "log_entries:21\r\n"
            "log_bytes:0\r\n"
            "log_memory_bytes:33554432\r\n"
            "log_trimmed_entries:0\r\n"
            "snapshots_wanted:0\r\n"
            "voters:1,2,3\r\n"
            "learners:\r\n"
            "leader_changes:0\r\n"
            "inflight_batches:0\r\n"
            "inflight_bytes:0\r\n"
            "pending_reads:0\r\n"
            "forward_pending:0\r\n"
            "forwarded_commands:0\r\n"
            "forward_resent:0\r\n"
            "forward_unknown_outcomes:0\r\n"
            "forward_timed_out:0\r\n"
            "forward_links_broken:0\r\n"
            "forward_handshakes_refused:0\r\n"
            "peer2:addr=127.0.0.12:59297,connected=1,match=0,lag=-,state=-,sent=0,dropped=0,received=0,refused=0,sent_bytes=0,snapshot_sent=-,snapshot_bytes=-\r\n"
            "peer3:addr=127.0.0.13:52805,connected=1,match=0,lag=-,state=-,sent=47,dropped=0,received=47,refused=0,sent_bytes=0,snapshot_sent=-,snapshot_bytes=-\r\n"
            "\r\n");
  // A single node: no peer lines; an app without INFO lines has an empty section.
  StatisticsSources single;
  single.raft.role = raft::Role::kLeader;
  EXPECT_FALSE(contains(info(single, "replication"), "peer"));
  EXPECT_TRUE(contains(info(single, "replication"), "clustered:0\r\n"));
  EXPECT_EQ(info(single, "cluster"), "# Cluster\r\ncluster_enabled:0\r\n\r\n") << "a standalone Redis";
  EXPECT_TRUE(contains(info(single, "server"), "redis_mode:standalone\r\n"));
  EXPECT_EQ(info(single, "app"), "# App\r\n\r\n");
  single.app_info = "keys:1";  // an app line without its CRLF gets one
  EXPECT_EQ(info(single, "app"), "# App\r\nkeys:1\r\n\r\n");
}

// What the test expects a value to look like in INFO.
std::string info_value(const StatValue& v) {
  if (const uint64_t* n = std::get_if<uint64_t>(&v)) return std::to_string(*n);
  if (const std::string* t = std::get_if<std::string>(&v)) return *t;
  return fmt::format("{}", fmt::join(std::get<std::vector<uint64_t>>(v), ","));
}

// The lines of `text` (split at "\n", a trailing "\r" dropped) that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    start = nl == std::string::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.starts_with(prefix)) out.push_back(line);
  }
  return out;
}

TEST(Statistics, EveryStatisticAppearsInBothRenderings) {
  const StatisticsSources s = distinct_sources();
  const CollectedStatistics c = collect_statistics(s);
  const std::string all = render_info(c, "all") + render_info(c, "digest");
  const std::string m = render_prometheus(c);
  ASSERT_EQ(c.values.size(), node_statistics().size());
  size_t exported = 0;
  for (size_t i = 0; i < node_statistics().size(); i++) {
    const Statistic& st = node_statistics()[i];
    SCOPED_TRACE(std::string(st.name));
    // INFO: `name:value` in its section.
    const std::string line = std::string(st.name) + ":" + info_value(c.values[i]) + "\r\n";
    EXPECT_TRUE(contains(all, "\r\n" + line)) << line;
    if (st.kind == StatKind::kInfoOnly) {
      EXPECT_TRUE(st.metric.empty());
      EXPECT_FALSE(st.help.empty()) << "say why it is not exported";
      // (The digest section's applied_index repeats the exported one of replication.)
      const bool exported_elsewhere =
          std::any_of(node_statistics().begin(), node_statistics().end(),
                      [&](const Statistic& o) { return o.name == st.name && o.kind != StatKind::kInfoOnly; });
      if (!exported_elsewhere) {
        EXPECT_FALSE(contains(m, std::string(st.name))) << "INFO-only, yet in the metrics";
      }
      continue;
    }
    exported++;
    // Prometheus: a family with its HELP and TYPE, and the value in a sample.
    const std::string type = st.kind == StatKind::kCounter ? "counter" : "gauge";
    EXPECT_TRUE(contains(m, "# TYPE " + std::string(st.metric) + " " + type + "\n")) << m;
    const std::string sample_start = std::string(st.metric) + (st.kind == StatKind::kLabel ? "{" : " ");
    const std::vector<std::string> samples = lines_starting(m, sample_start);
    ASSERT_EQ(samples.size(), 1u) << m;
    if (st.kind == StatKind::kLabel) {
      EXPECT_TRUE(contains(samples[0], std::string(st.label) + "=\"" + info_value(c.values[i]) + "\"")) << samples[0];
    } else if (st.kind == StatKind::kListCount) {
      EXPECT_EQ(samples[0], std::string(st.metric) + " " +
                                std::to_string(std::get<std::vector<uint64_t>>(c.values[i]).size()));
    } else {
      EXPECT_EQ(samples[0], std::string(st.metric) + " " + info_value(c.values[i]));
    }
  }
  EXPECT_GT(exported, 40u);

  // Per peer: every field in each peer's INFO line and, for the peers of a leader, in a
  // family with the peer's label.
  ASSERT_EQ(c.peers.size(), 3u);
  for (const CollectedStatistics::Peer& p : c.peers) {
    const std::string id = std::to_string(p.id);
    const std::vector<std::string> info_line = lines_starting(all, "peer" + id + ":");
    ASSERT_EQ(info_line.size(), 1u) << id;
    for (size_t i = 0; i < peer_statistics().size(); i++) {
      const PeerStatistic& st = peer_statistics()[i];
      SCOPED_TRACE(std::string(st.name) + " of peer " + id);
      ASSERT_TRUE(p.values[i].has_value());
      const std::string value = info_value(*p.values[i]);
      EXPECT_TRUE(contains(info_line[0] + ",", std::string(st.name) + "=" + value + ",")) << info_line[0];
      const std::vector<std::string> samples = lines_starting(m, std::string(st.metric) + "{peer=\"" + id + "\"");
      ASSERT_EQ(samples.size(), 1u) << m;
      if (st.kind == StatKind::kLabel) EXPECT_TRUE(contains(samples[0], std::string(st.label) + "=\"" + value + "\""));
      else EXPECT_TRUE(samples[0].ends_with("} " + value)) << samples[0];
    }
  }
}

TEST(Statistics, KindsNamesAndUnitsAgree) {
  const CollectedStatistics c = collect_statistics(distinct_sources());
  std::set<std::pair<StatSection, std::string_view>> names;
  for (size_t i = 0; i < node_statistics().size(); i++) {
    const Statistic& st = node_statistics()[i];
    SCOPED_TRACE(std::string(st.name));
    EXPECT_TRUE(names.insert({st.section, st.name}).second) << "twice in one section";
    EXPECT_NE(st.section, StatSection::kApp) << "the app's section is its own text";
    // The value has the type its kind needs.
    const bool number = std::holds_alternative<uint64_t>(c.values[i]);
    const bool text = std::holds_alternative<std::string>(c.values[i]);
    const bool list = std::holds_alternative<std::vector<uint64_t>>(c.values[i]);
    EXPECT_EQ(number, st.kind == StatKind::kGauge || st.kind == StatKind::kCounter ||
                          (st.kind == StatKind::kInfoOnly && !text));
    EXPECT_EQ(text, st.kind == StatKind::kLabel || (st.kind == StatKind::kInfoOnly && !number));
    EXPECT_EQ(list, st.kind == StatKind::kListCount);
    if (st.kind == StatKind::kInfoOnly) continue;
    const std::string metric(st.metric);
    EXPECT_TRUE(metric.starts_with("hmdb_")) << metric;
    EXPECT_EQ(metric.ends_with("_total"), st.kind == StatKind::kCounter) << metric;
    EXPECT_FALSE(st.help.empty() && (i == 0 || node_statistics()[i - 1].metric != st.metric)) << "a family without help";
    if (!st.unit.empty()) {
      const std::string word = "_" + std::string(st.unit);
      EXPECT_TRUE(metric.ends_with(word) || contains(metric, word + "_")) << metric << " lacks its unit " << st.unit;
    }
    EXPECT_EQ(st.kind == StatKind::kLabel, !st.label.empty()) << metric;
  }
  for (const PeerStatistic& st : peer_statistics()) {
    SCOPED_TRACE(std::string(st.name));
    EXPECT_NE(st.kind, StatKind::kInfoOnly);
    EXPECT_EQ(std::string(st.metric).ends_with("_total"), st.kind == StatKind::kCounter);
    EXPECT_EQ(st.leader_only, !st.not_leading.empty());
  }
}

// ---- HTTP responder ----

std::string metrics_body() { return "hmdb_up 1\n"; }

const std::string kGoodRequest =
    "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9100\r\nUser-Agent: Prometheus/2.45\r\n"
    "Accept: text/plain;version=0.0.4\r\n\r\n";

std::string expected_metrics_response() {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 10\r\n"
         "Connection: close\r\n\r\nhmdb_up 1\n";
}

TEST(HttpResponder, GoodRequest) {
  int calls = 0;
  HttpResponder r([&] {
    calls++;
    return metrics_body();
  });
  EXPECT_EQ(r.feed(kGoodRequest), HttpResponder::State::kResponding);
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.response(), expected_metrics_response());
  EXPECT_EQ(calls, 1);
}

TEST(HttpResponder, RequestSplitAtEveryByte) {
  for (size_t split = 0; split <= kGoodRequest.size(); split++) {
    HttpResponder r(metrics_body);
    HttpResponder::State first = r.feed(std::string_view(kGoodRequest).substr(0, split));
    EXPECT_EQ(first, split == kGoodRequest.size() ? HttpResponder::State::kResponding : HttpResponder::State::kReading)
        << split;
    r.feed(std::string_view(kGoodRequest).substr(split));
    ASSERT_EQ(r.state(), HttpResponder::State::kResponding) << split;
    EXPECT_EQ(r.response(), expected_metrics_response()) << split;
  }
  // And one byte at a time.
  HttpResponder r(metrics_body);
  for (char c : kGoodRequest) r.feed(std::string_view(&c, 1));
  EXPECT_EQ(r.response(), expected_metrics_response());
}

TEST(HttpResponder, BareLineFeedsAndQueryStringsAndHttp10) {
  HttpResponder a(metrics_body);
  a.feed("GET /metrics?x=1 HTTP/1.0\n\n");
  EXPECT_EQ(a.status(), 200);
  HttpResponder b(metrics_body);
  b.feed("GET http://host:9100/metrics HTTP/1.1\r\nHost: host\r\n\r\n");
  EXPECT_EQ(b.status(), 200);
}

TEST(HttpResponder, RootHasAShortText) {
  HttpResponder r(metrics_body);
  r.feed("GET / HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status(), 200);
  EXPECT_TRUE(contains(r.response(), "/metrics")) << r.response();
  EXPECT_FALSE(contains(r.response(), "hmdb_up"));
}

TEST(HttpResponder, UnknownPathIs404) {
  HttpResponder r(metrics_body);
  r.feed("GET /metricsx HTTP/1.1\r\n\r\n");
  EXPECT_EQ(r.status(), 404);
  EXPECT_TRUE(r.response().starts_with("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_TRUE(contains(r.response(), "Connection: close\r\n"));
}

TEST(HttpResponder, OtherMethodsAre405AndNeverScrape) {
  for (const char* method : {"POST", "HEAD", "PUT", "DELETE", "get"}) {
    int calls = 0;
    HttpResponder r([&] {
      calls++;
      return metrics_body();
    });
    r.feed(std::string(method) + " /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(r.status(), 405) << method;
    EXPECT_TRUE(contains(r.response(), "Allow: GET\r\n")) << method;
    EXPECT_EQ(calls, 0) << method;
  }
}

TEST(HttpResponder, MalformedRequestLinesAre400) {
  for (const char* req : {"GET /metrics\r\n\r\n", "GET  /metrics HTTP/1.1\r\n\r\n", "GET /metrics HTTP/2.0\r\n\r\n",
                          "GET metrics HTTP/1.1\r\n\r\n", "\r\n\r\n", "\x16\x03\x01\x02\x05\n\n",
                          "GET /metrics HTTP/1.1 extra\r\n\r\n"}) {
    HttpResponder r(metrics_body);
    r.feed(req);
    EXPECT_EQ(r.status(), 400) << req;
    EXPECT_TRUE(r.response().starts_with("HTTP/1.1 400 Bad Request\r\n")) << req;
  }
}

TEST(HttpResponder, OversizedHeadIs431) {
  // Exactly at the bound: served.
  std::string prefix = "GET /metrics HTTP/1.1\r\nX-Pad: ";
  std::string at_bound = prefix + std::string(kMetricsRequestHeadBytesMax - prefix.size() - 4, 'a') + "\r\n\r\n";
  ASSERT_EQ(at_bound.size(), kMetricsRequestHeadBytesMax);
  HttpResponder ok(metrics_body);
  ok.feed(at_bound);
  EXPECT_EQ(ok.status(), 200);

  // One byte more, complete: 431.
  HttpResponder over(metrics_body);
  over.feed(prefix + std::string(kMetricsRequestHeadBytesMax - prefix.size() - 3, 'a') + "\r\n\r\n");
  EXPECT_EQ(over.status(), 431);

  // Never ending: 431 as soon as the bound is passed, fed in small pieces.
  HttpResponder endless(metrics_body);
  endless.feed(prefix);
  size_t fed = prefix.size();
  while (endless.state() == HttpResponder::State::kReading) {
    endless.feed(std::string(100, 'b'));
    fed += 100;
    ASSERT_LE(fed, kMetricsRequestHeadBytesMax + 100);
  }
  EXPECT_EQ(endless.status(), 431);
  EXPECT_TRUE(endless.response().starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
}

TEST(HttpResponder, PipelinedGarbageAfterARequestIsIgnored) {
  int calls = 0;
  HttpResponder r([&] {
    calls++;
    return metrics_body();
  });
  r.feed(kGoodRequest + "GET /other HTTP/1.1\r\n\r\n\x01\x02garbage" + std::string(20000, 'z'));
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.response(), expected_metrics_response());
  // More bytes change nothing and never call the source again.
  EXPECT_EQ(r.feed("POST / HTTP/1.1\r\n\r\n"), HttpResponder::State::kResponding);
  EXPECT_EQ(r.response(), expected_metrics_response());
  EXPECT_EQ(calls, 1);
}

TEST(HttpResponder, GarbageWithoutNewlinesHitsTheBound) {
  HttpResponder r(metrics_body);
  r.feed(std::string(kMetricsRequestHeadBytesMax + 1, '\x7f'));
  EXPECT_EQ(r.status(), 431);
}

// ---- the listener, over real loopback sockets; its clock is the now_ms we pass ----

// How long a test waits for the kernel to deliver a loopback connection or bytes.
constexpr int kSocketWaitMs = 5000;

int connect_to(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  return fd;
}

// Polls the server (waiting for its fd) until the client socket has hit EOF; returns
// everything the client received. Fails the test if that takes over kSocketWaitMs.
std::string serve_until_closed(MetricsServer& m, int client, uint64_t now_ms) {
  std::string got;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSocketWaitMs);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{m.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    m.poll(now_ms, metrics_body);
    char buf[4096];
    ssize_t n = ::recv(client, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n == 0) return got;
  }
  ADD_FAILURE() << "the server did not close the connection; received so far: " << got;
  return got;
}

// Polls until the server holds `count` connections.
void poll_until_connections(MetricsServer& m, size_t count, uint64_t now_ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kSocketWaitMs);
  while (m.connections() != count && std::chrono::steady_clock::now() < deadline) {
    pollfd p{m.fd(), POLLIN, 0};
    ::poll(&p, 1, 10);
    m.poll(now_ms, metrics_body);
  }
  ASSERT_EQ(m.connections(), count);
}

TEST(MetricsServer, AnswersAndCloses) {
  std::unique_ptr<MetricsServer> m;
  ASSERT_TRUE(MetricsServer::open("127.0.0.1", 0, &m));
  ASSERT_NE(m->port(), 0);
  int c = connect_to(m->port());
  ASSERT_EQ(::send(c, kGoodRequest.data(), kGoodRequest.size(), 0), static_cast<ssize_t>(kGoodRequest.size()));
  EXPECT_EQ(serve_until_closed(*m, c, 0), expected_metrics_response());
  ::close(c);
  poll_until_connections(*m, 0, 0);
}

TEST(MetricsServer, GarbageAfterTheRequestDoesNotLoseTheResponse) {
  std::unique_ptr<MetricsServer> m;
  ASSERT_TRUE(MetricsServer::open("127.0.0.1", 0, &m));
  int c = connect_to(m->port());
  std::string bytes = kGoodRequest + std::string(30000, 'g');
  ASSERT_EQ(::send(c, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::shutdown(c, SHUT_WR);  // the server reads to our EOF after answering, then closes
  EXPECT_EQ(serve_until_closed(*m, c, 0), expected_metrics_response());
  ::close(c);
}

TEST(MetricsServer, ConnectionTimeoutClosesIdleConnections) {
  std::unique_ptr<MetricsServer> m;
  ASSERT_TRUE(MetricsServer::open("127.0.0.1", 0, &m));
  int c = connect_to(m->port());
  ASSERT_EQ(::send(c, "GET /met", 8, 0), 8);
  poll_until_connections(*m, 1, 1000);
  m->poll(1000 + kMetricsConnectionTimeoutMs - 1, metrics_body);
  EXPECT_EQ(m->connections(), 1u);
  m->poll(1000 + kMetricsConnectionTimeoutMs, metrics_body);
  EXPECT_EQ(m->connections(), 0u);
  EXPECT_EQ(serve_until_closed(*m, c, 1000 + kMetricsConnectionTimeoutMs), "");
  ::close(c);
}

TEST(MetricsServer, ConnectionsBeyondTheBoundAreClosed) {
  std::unique_ptr<MetricsServer> m;
  ASSERT_TRUE(MetricsServer::open("127.0.0.1", 0, &m));
  std::vector<int> clients;
  for (size_t i = 0; i < kMetricsConnectionsMax; i++) clients.push_back(connect_to(m->port()));
  poll_until_connections(*m, kMetricsConnectionsMax, 0);
  int extra = connect_to(m->port());
  EXPECT_EQ(serve_until_closed(*m, extra, 0), "");
  EXPECT_EQ(m->connections(), kMetricsConnectionsMax);
  ::close(extra);
  // The ones held are still served.
  ASSERT_EQ(::send(clients[0], kGoodRequest.data(), kGoodRequest.size(), 0), static_cast<ssize_t>(kGoodRequest.size()));
  EXPECT_EQ(serve_until_closed(*m, clients[0], 0), expected_metrics_response());
  for (int c : clients) ::close(c);
}

}  // namespace
}  // namespace hmdb::server
