// server/metrics.cc — the small HTTP listener that serves the Prometheus text (see metrics.h;
// the text itself is rendered by statistics.h).
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
#include <vector>

#include <fmt/format.h>

#include "common/address.h"
#include "common/assert.h"
#include "server/logging.h"

namespace hmdb::server {

// ---------------------------------------------------------------------------------------
// HTTP, one connection

namespace {

constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kTextContentType = "text/plain; charset=utf-8";
constexpr std::string_view kRootBody = "hmdb: metrics are at /metrics\n";

std::string_view trim_cr(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

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

Status MetricsServer::open(const std::string& bind_host, uint16_t port, std::unique_ptr<MetricsServer>* out) {
  std::unique_ptr<MetricsServer> m(new MetricsServer());
  m->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  m->timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (m->epoll_fd_ < 0 || m->timer_fd_ < 0)
    return Status::io_error(std::string("metrics: epoll/timerfd: ") + std::strerror(errno));
  SocketAddress bound;
  Status s = listen_tcp(bind_host, port, kMetricsListenBacklog, &m->listen_fd_, &bound);
  if (!s) return Status::io_error("metrics: " + s.message());
  m->port_ = bound.port();
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
