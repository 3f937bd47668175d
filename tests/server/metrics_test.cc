// tests/server/metrics_test.cc — the Prometheus endpoint without a server: INFO text to the
// exposition format (types, labels, a leader's peer lines, escaping), and the HTTP responder
// fed bytes directly (whole requests, split at every byte, oversized heads, bad methods,
// unknown paths, garbage after a request), and the listener over loopback sockets.
#include "server/metrics.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

namespace hmdb::server {
namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A leader's INFO, in the shape Node::info_text("all") prints (CRLF lines, blank line after
// each section).
const char* kLeaderInfo =
    "# Server\r\n"
    "hmdb_version:0.3.0\r\n"
    "redis_version:7.2.0\r\n"
    "redis_mode:standalone\r\n"
    "app:kv\r\n"
    "schema_version:1\r\n"
    "process_id:4242\r\n"
    "tcp_port:7379\r\n"
    "bind:127.0.0.1\r\n"
    "data_dir:/tmp/d\r\n"
    "uptime_in_seconds:12\r\n"
    "\r\n"
    "# Persistence\r\n"
    "durability:always\r\n"
    "snapshots_taken:3\r\n"
    "last_snapshot_status:ok\r\n"
    "disk_bytes_written:123456\r\n"
    "\r\n"
    "# Replication\r\n"
    "role:leader\r\n"
    "redis_role:master\r\n"
    "clustered:1\r\n"
    "node_id:1\r\n"
    "term:5\r\n"
    "leader_id:1\r\n"
    "leader_addr:127.0.0.11:7379\r\n"
    "commit_index:100\r\n"
    "applied_index:99\r\n"
    "voters:1,2,3\r\n"
    "learners:\r\n"
    "leader_changes:2\r\n"
    "peer2:addr=127.0.0.12:7400,connected=1,match=100,lag=0,state=voter,sent=10,dropped=0,received=9,refused=0\r\n"
    "peer3:addr=127.0.0.13:7400,connected=0,match=40,lag=60,state=voter,sent=5,dropped=7,received=2,refused=1\r\n"
    "\r\n"
    "# Stats\r\n"
    "total_commands_processed:77\r\n"
    "loop_turn_max_ms:4\r\n"
    "\r\n"
    "# App\r\n"
    "keys:42\r\n"
    "expires:0\r\n"
    "flavour:vanilla\r\n"
    "\r\n";

TEST(InfoToPrometheus, GaugesHaveHelpTypeAndValue) {
  std::string m = info_to_prometheus(kLeaderInfo);
  EXPECT_TRUE(contains(m, "# HELP hmdb_applied_index Highest log index applied to the state.\n"
                          "# TYPE hmdb_applied_index gauge\n"
                          "hmdb_applied_index 99\n"))
      << m;
  EXPECT_TRUE(contains(m, "# TYPE hmdb_term gauge\nhmdb_term 5\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_uptime_seconds gauge\nhmdb_uptime_seconds 12\n"));
}

TEST(InfoToPrometheus, CountersEndInTotal) {
  std::string m = info_to_prometheus(kLeaderInfo);
  EXPECT_TRUE(contains(m, "# TYPE hmdb_commands_processed_total counter\nhmdb_commands_processed_total 77\n")) << m;
  EXPECT_TRUE(contains(m, "# TYPE hmdb_snapshots_taken_total counter\nhmdb_snapshots_taken_total 3\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_disk_bytes_written_total counter\nhmdb_disk_bytes_written_total 123456\n"));
  EXPECT_TRUE(contains(m, "# TYPE hmdb_leader_changes_total counter\nhmdb_leader_changes_total 2\n"));
}

TEST(InfoToPrometheus, StringFieldsBecomeLabelledInfoMetrics) {
  std::string m = info_to_prometheus(kLeaderInfo);
  EXPECT_TRUE(contains(m, "# TYPE hmdb_role gauge\nhmdb_role{role=\"leader\"} 1\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_durability{durability=\"always\"} 1\n"));
  EXPECT_TRUE(contains(m, "hmdb_last_snapshot_status{status=\"ok\"} 1\n"));
  // Two fields, one sample.
  EXPECT_TRUE(contains(m, "hmdb_build_info{version=\"0.3.0\",app=\"kv\"} 1\n"));
}

TEST(InfoToPrometheus, ListsAreCounted) {
  std::string m = info_to_prometheus(kLeaderInfo);
  EXPECT_TRUE(contains(m, "hmdb_voters 3\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_learners 0\n"));
}

TEST(InfoToPrometheus, SkippedFieldsAreAbsentAndNotReportedAsUnmapped) {
  std::string m = info_to_prometheus(kLeaderInfo);
  for (const char* absent : {"redis", "process_id", "tcp_port", "data_dir", "leader_addr", "4242"})
    EXPECT_FALSE(contains(m, absent)) << absent << " in\n" << m;
  EXPECT_FALSE(contains(m, "# hmdb:")) << m;
}

TEST(InfoToPrometheus, LeaderPeerLinesBecomeOneFamilyPerFieldWithPeerLabels) {
  std::string m = info_to_prometheus(kLeaderInfo);
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
  EXPECT_TRUE(contains(m, "hmdb_peer_info{peer=\"2\",addr=\"127.0.0.12:7400\",state=\"voter\"} 1\n"));
  // One HELP/TYPE per family, however many peers.
  size_t first = m.find("# TYPE hmdb_peer_connected ");
  ASSERT_NE(first, std::string::npos);
  EXPECT_EQ(m.find("# TYPE hmdb_peer_connected ", first + 1), std::string::npos);
}

TEST(InfoToPrometheus, FollowerPeerLinesHaveNoProgress) {
  std::string m = info_to_prometheus(
      "# Replication\r\nrole:follower\r\n"
      "peer1:addr=127.0.0.11:7400,connected=1,match=0,lag=-,state=-,sent=3,dropped=0,received=4,refused=0\r\n");
  EXPECT_FALSE(contains(m, "hmdb_peer_lag_entries")) << m;
  EXPECT_FALSE(contains(m, "hmdb_peer_match_index")) << m;
  EXPECT_TRUE(contains(m, "hmdb_peer_messages_received_total{peer=\"1\"} 4\n")) << m;
  EXPECT_TRUE(contains(m, "hmdb_peer_info{peer=\"1\",addr=\"127.0.0.11:7400\",state=\"-\"} 1\n")) << m;
  EXPECT_FALSE(contains(m, "# hmdb:")) << m;
}

TEST(InfoToPrometheus, AppFieldsThatAreNumbersBecomeGauges) {
  std::string m = info_to_prometheus(kLeaderInfo);
  EXPECT_TRUE(contains(m, "# HELP hmdb_app_keys A field of the app's INFO section.\n"
                          "# TYPE hmdb_app_keys gauge\nhmdb_app_keys 42\n"))
      << m;
  EXPECT_TRUE(contains(m, "hmdb_app_expires 0\n"));
  EXPECT_FALSE(contains(m, "vanilla"));
  EXPECT_FALSE(contains(m, "flavour"));
}

TEST(InfoToPrometheus, AppFieldNamesAreSanitized) {
  std::string m = info_to_prometheus("# App\r\nweird-name.x:5\r\n");
  EXPECT_TRUE(contains(m, "hmdb_app_weird_name_x 5\n")) << m;
}

TEST(InfoToPrometheus, LabelValuesAreEscaped) {
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  std::string m = info_to_prometheus("# Persistence\r\nlast_snapshot_status:fork \"failed\" \\ here\r\n");
  EXPECT_TRUE(contains(m, "hmdb_last_snapshot_status{status=\"fork \\\"failed\\\" \\\\ here\"} 1\n")) << m;
}

TEST(InfoToPrometheus, UnknownFieldsAndNonNumbersAreReportedAsComments) {
  std::string m = info_to_prometheus(
      "# Stats\nbrand_new_counter:5\nterm:abc\n"
      "# Replication\npeer7:addr=x:1,connected=1,wobble=3,sent=inf,lag=1\n"
      "peer99999999999999999999999:connected=1\n");
  EXPECT_TRUE(contains(m, "# hmdb: INFO field brand_new_counter is not mapped\n")) << m;
  EXPECT_TRUE(contains(m, "# hmdb: INFO field term has a value that is not a number: abc\n")) << m;
  EXPECT_TRUE(contains(m, "# hmdb: INFO field peer7 wobble is not mapped\n")) << m;
  EXPECT_TRUE(contains(m, "# hmdb: INFO field peer7 sent has a value that is not a number: inf\n")) << m;
  EXPECT_FALSE(contains(m, "hmdb_term ")) << m;
  EXPECT_FALSE(contains(m, "hmdb_brand_new_counter"));
  // A peer id beyond 64 bits is no peer line: reported, not exported.
  EXPECT_TRUE(contains(m, "# hmdb: INFO field peer99999999999999999999999 is not mapped\n")) << m;
  // LF-only lines are read the same way.
  EXPECT_TRUE(contains(m, "hmdb_peer_lag_entries{peer=\"7\"} 1\n")) << m;
}

TEST(InfoToPrometheus, EveryLineIsACommentOrASample) {
  // The exposition format: "# HELP"/"# TYPE"/comment lines, or "name{labels} value".
  std::string m = info_to_prometheus(kLeaderInfo);
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
