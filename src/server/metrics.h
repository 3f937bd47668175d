// server/metrics.h — the Prometheus endpoint (`--metrics-port`): a minimal HTTP/1.1 listener
// that the event loop drives, serving the text that statistics.h renders (every statistic of
// the node in the Prometheus text exposition format 0.0.4).
//
// Two parts, each usable alone:
//   * HttpResponder: one connection's request parsing and response, bytes in and bytes out,
//     no socket (the unit tests feed it byte by byte).
//   * MetricsServer: the listening socket and its connections in an epoll fd of their own,
//     added level-triggered to the node's epoll (like net::PeerTransport). Every connection
//     gets one response and is closed (`Connection: close`).
//
// Thread-safety: none; the event-loop thread owns all of it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/status.h"

namespace hmdb::server {

// ---- bounds (named; see docs/operations.md "Metrics") ----

// A request line plus headers longer than this is answered 431 and the connection closed.
// Prometheus sends a few hundred bytes.
inline constexpr size_t kMetricsRequestHeadBytesMax = 8u << 10;
// A connection that has not been answered and closed this long after accept is closed,
// whatever it is doing: bounds idle connections and slow senders (a client trickling one
// header byte at a time) alike. Prometheus' default scrape timeout is 10 s.
inline constexpr uint64_t kMetricsConnectionTimeoutMs = 10000;
// Metrics connections open at once; a connection beyond it is closed right after accept.
// A scraper or two need a handful; this bounds memory and descriptors, not clients' luck.
inline constexpr size_t kMetricsConnectionsMax = 16;
// accept() failing for lack of descriptors or memory stops the listener this long (the
// pending connection would otherwise wake the loop every turn), and is logged at most once
// per kMetricsLogIntervalMs.
inline constexpr uint64_t kMetricsAcceptPauseMs = 100;
inline constexpr uint64_t kMetricsLogIntervalMs = 10000;
// Bounded work per MetricsServer::poll(): accepts and epoll events taken.
inline constexpr int kMetricsAcceptsPerPollMax = 16;
inline constexpr int kMetricsEventsPerPollMax = 64;
// After the response is written the connection's write side is shut down and what the
// client still sends is read and dropped until it closes (so a close with unread input
// does not reset the connection before the client read the response); at most this many
// bytes, then it is closed anyway.
inline constexpr size_t kMetricsLingerBytesMax = 64u << 10;

// ---- HTTP, one connection, no socket ----

// The responder's whole vocabulary: 200 (GET /metrics, GET /), 400 (not an HTTP/1.x request
// line), 404 (another path), 405 (another method), 431 (head over
// kMetricsRequestHeadBytesMax). Every response carries `Connection: close`.
class HttpResponder {
 public:
  // Produces the metrics text when a GET /metrics arrives (called at most once).
  using MetricsSource = std::function<std::string()>;

  enum class State : uint8_t {
    kReading,     // the request head is not complete: feed more bytes
    kResponding,  // response() is ready; bytes fed from now on are ignored
  };

  explicit HttpResponder(MetricsSource source) : source_(std::move(source)) {}

  // Appends bytes received from the client and parses as far as they go. Anything after
  // the request head (a body, a pipelined second request, garbage) is ignored: the
  // connection is closed after one response.
  State feed(std::string_view bytes);
  State state() const { return state_; }
  // REQUIRES: state() == kResponding. The complete response, status line to body.
  const std::string& response() const { return response_; }
  int status() const { return status_; }

 private:
  void parse();
  void respond(int status, std::string_view body, std::string_view content_type, std::string_view extra_headers = {});

  MetricsSource source_;
  State state_ = State::kReading;
  std::string head_;        // bytes received so far (at most kMetricsRequestHeadBytesMax + 1 kept)
  size_t scanned_ = 0;      // head_[0, scanned_) holds no end of the head
  int status_ = 0;
  std::string response_;
};

// ---- the listener ----

class MetricsServer {
 public:
  // Binds and listens on bind_host:port (port 0: an ephemeral port, see port()). bind_host:
  // an IPv4 or IPv6 address, or a name (bound where it resolves: common/address.h).
  static Status open(const std::string& bind_host, uint16_t port, std::unique_ptr<MetricsServer>* out);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // An epoll fd of its own (listener, connections, a timerfd for the connection deadline):
  // add it level-triggered to the loop's epoll and call poll() when it is readable.
  int fd() const { return epoll_fd_; }
  uint16_t port() const { return port_; }
  size_t connections() const { return connections_.size(); }

  // Accepts, reads, answers and closes; source is called for each GET /metrics. Never
  // blocks; work per call is bounded (kMetricsAcceptsPerPollMax, kMetricsEventsPerPollMax).
  void poll(uint64_t now_ms, const HttpResponder::MetricsSource& source);

 private:
  struct Connection {
    uint64_t token = 0;  // its epoll token
    int fd = -1;
    uint64_t deadline_ms = 0;
    HttpResponder responder;
    size_t written = 0;        // bytes of the response sent
    bool lingering = false;    // response sent, write side shut down, reading until EOF
    size_t lingered_bytes = 0;
  };

  MetricsServer() = default;
  void accept_connections(uint64_t now_ms, const HttpResponder::MetricsSource& source);
  // Reads, answers, writes; returns false if the connection is to be closed.
  bool serve(Connection& c);
  void close_connection(uint64_t token);
  // The timerfd fires at the earliest connection deadline (disarmed with no connection).
  void arm_timer(uint64_t now_ms);

  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int timer_fd_ = -1;
  uint16_t port_ = 0;
  uint64_t next_token_ = 2;  // epoll tokens: 0 listener, 1 timer, then one per connection
  uint64_t accept_paused_until_ms_ = 0;  // 0: the listener is in the epoll set
  uint64_t last_accept_error_log_ms_ = 0;
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> connections_;
};

}  // namespace hmdb::server
