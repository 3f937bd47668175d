// server/forward_links.cc — the forwarding links' sockets (see forward_links.h).
#include "server/forward_links.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/address.h"
#include "net/resp_reply.h"
#include "server/logging.h"

namespace hmdb::server {

namespace {

// The resolver's token in the links' epoll set (link ids start at 1).
constexpr uint64_t kResolverToken = UINT64_MAX;
// One read(2) of replies.
constexpr size_t kLinkReadChunkBytes = 64 << 10;
// Events handled per epoll_wait of the links' set.
constexpr int kLinkEventsMax = 64;

}  // namespace

ForwardLinks::~ForwardLinks() {
  for (auto& [id, l] : links_) {
    l.tls.reset();
    if (l.fd >= 0) ::close(l.fd);
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

Status ForwardLinks::init() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return Status::io_error(std::string("epoll_create1 (forwarding links): ") + std::strerror(errno));
  return Status::ok();
}

void ForwardLinks::open(uint64_t id, const HostPort& to, uint64_t now_ms) {
  Link& l = links_[id];
  l.to = to;
  SocketAddress address;
  if (numeric_address(to.host, to.port, &address)) {
    dial(id, l, address, now_ms);
    return;
  }
  // A name: looked up on the resolver's thread; on_resolved() dials.
  if (!resolver_) {
    resolver_ = std::make_unique<net::Resolver>();
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kResolverToken;
    if (resolver_->fd() < 0 || ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, resolver_->fd(), &ev) != 0) {
      resolver_.reset();
      l.state = State::kFailed;
      l.failure = "cannot start the name resolver";
      return;
    }
  }
  if (!resolver_->ask(to.host, to.port)) {
    l.state = State::kFailed;
    l.failure = "the name resolver is busy";
    return;
  }
  l.state = State::kResolving;
  l.connect_deadline_ms = now_ms + kForwardConnectTimeoutMs;
}

void ForwardLinks::dial(uint64_t id, Link& l, const SocketAddress& address, uint64_t now_ms) {
  auto failed = [&](const char* what) {
    l.failure = std::string(what) + ": " + std::strerror(errno);
    l.tls.reset();
    if (l.fd >= 0) ::close(l.fd);
    l.fd = -1;
    l.state = State::kFailed;
  };
  l.fd = ::socket(address.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (l.fd < 0) return failed("socket");
  int yes = 1;
  ::setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  if (::connect(l.fd, address.get(), address.length) != 0 && errno != EINPROGRESS) return failed("connect");
  if (tls_) {
    l.tls.reset(tls_->connect_fd(l.fd));
    if (!l.tls) return failed("TLS connection state");
  }
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, l.fd, &ev) != 0) return failed("epoll_ctl");
  l.state = State::kConnecting;
  l.connect_deadline_ms = now_ms + kForwardConnectTimeoutMs;
}

void ForwardLinks::on_resolved(uint64_t now_ms) {
  for (net::Resolver::Answer& a : resolver_->take()) {
    for (auto& [id, l] : links_) {
      if (l.state != State::kResolving || l.to.host != a.host || l.to.port != a.port) continue;
      if (!a.status) {
        l.state = State::kFailed;
        l.failure = a.status.to_string();
      } else {
        dial(id, l, a.address, now_ms);
      }
    }
  }
}

void ForwardLinks::send(uint64_t id, std::string_view bytes) {
  auto it = links_.find(id);
  if (it != links_.end()) it->second.out.append(bytes);
}

void ForwardLinks::close(uint64_t id) {
  auto it = links_.find(id);
  if (it == links_.end()) return;
  it->second.tls.reset();
  if (it->second.fd >= 0) ::close(it->second.fd);  // also leaves the epoll set
  links_.erase(it);
}

void ForwardLinks::fail(core::Forwarder& forwarder, uint64_t id, const std::string& why) {
  auto it = links_.find(id);
  if (it == links_.end()) return;
  // Logged once per address and reason: a leader that cannot be reached is dialed again
  // every kForwardRedialPauseMs.
  std::string& last = failing_[it->second.to.to_string()];
  if (last != why) log_line("forwarding: the link to the leader's client port {} failed: {}", it->second.to.to_string(), why);
  last = why;
  close(id);
  forwarder.link_broken(id);
}

bool ForwardLinks::write_out(Link& l, std::string* why) {
  while (l.out_sent < l.out.size()) {
    // (With TLS a retry passes the same bytes or more: the queue only grows until sent.)
    net::TlsIo want;
    std::string tls_error;
    const ssize_t n = net::io_send(l.fd, l.tls.get(), l.out.data() + l.out_sent, l.out.size() - l.out_sent, &want,
                                   &tls_error);
    if (n > 0) {
      l.out_sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    // EPOLLOUT brings us back (or, for a TLS handshake waiting to read, EPOLLIN: both are watched).
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    *why = n < 0 && errno == EPROTO ? "TLS: " + tls_error : std::string("send: ") + std::strerror(errno);
    return false;
  }
  l.out.clear();
  l.out_sent = 0;
  return true;
}

void ForwardLinks::flush(core::Forwarder& forwarder) {
  std::vector<std::pair<uint64_t, std::string>> failed;
  for (auto& [id, l] : links_) {
    std::string why;
    if (l.state == State::kConnected && l.out_sent < l.out.size() && !write_out(l, &why)) failed.emplace_back(id, why);
  }
  for (const auto& [id, why] : failed) fail(forwarder, id, why);
}

void ForwardLinks::read_replies(core::Forwarder& forwarder, uint64_t id) {
  Link& l = links_.at(id);
  bool closed = false;
  std::string why;
  while (true) {
    const size_t at = l.in.size();
    l.in.resize(at + kLinkReadChunkBytes);
    net::TlsIo want;
    std::string tls_error;
    const ssize_t n = net::io_recv(l.fd, l.tls.get(), l.in.data() + at, kLinkReadChunkBytes, &want, &tls_error);
    l.in.resize(at + (n > 0 ? static_cast<size_t>(n) : 0));
    if (n > 0) continue;
    if (n == 0) {
      closed = true;
      why = "the leader closed the connection";
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EPROTO) {
      closed = true;
      why = "TLS: " + tls_error;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
      closed = true;
      why = std::string("read: ") + std::strerror(errno);
    }
    break;
  }
  // Every complete reply goes to the forwarder, which may close this link meanwhile (a
  // former leader's, drained): the buffer is taken out of it first.
  std::string in = std::move(l.in);
  size_t used = 0;
  while (used < in.size()) {
    net::ScannedReply reply;
    const net::ScanResult r = net::scan_reply(in.data() + used, in.size() - used, &reply);
    if (r == net::ScanResult::kIncomplete) break;
    if (r == net::ScanResult::kMalformed) return fail(forwarder, id, "a reply is not RESP");
    if (!forwarder.link_reply(id, std::string_view(in).substr(used, reply.length))) {
      if (links_.count(id)) fail(forwarder, id, "a reply nobody waits for");
      return;
    }
    used += reply.length;
    if (!links_.count(id)) return;  // closed by the forwarder
  }
  if (closed) return fail(forwarder, id, why);
  in.erase(0, used);
  links_.at(id).in = std::move(in);
}

void ForwardLinks::poll(core::Forwarder& forwarder, uint64_t now_ms) {
  epoll_event events[kLinkEventsMax];
  const int n = ::epoll_wait(epoll_fd_, events, kLinkEventsMax, 0);
  for (int i = 0; i < n; i++) {
    const uint64_t id = events[i].data.u64;
    if (id == kResolverToken) {
      on_resolved(now_ms);
      continue;
    }
    auto it = links_.find(id);
    if (it == links_.end()) continue;
    Link& l = it->second;
    const uint32_t ev = events[i].events;
    if (l.state == State::kConnecting) {
      int err = 0;
      socklen_t len = sizeof err;
      if (::getsockopt(l.fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err == 0 && (ev & (EPOLLERR | EPOLLHUP)) != 0) err = ECONNREFUSED;
      if (err != 0) {
        fail(forwarder, id, std::string("connect: ") + std::strerror(err));
        continue;
      }
      if ((ev & EPOLLOUT) == 0) continue;
      l.state = State::kConnected;
      if (failing_.erase(l.to.to_string()) > 0)
        log_line("forwarding: connected to the leader's client port {} again", l.to.to_string());
      forwarder.link_connected(id);  // sends its handshake and what waited for it
      if (!links_.count(id)) continue;
    }
    // With TLS either readiness may move the other direction on (a handshake).
    if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) || l.tls) read_replies(forwarder, id);
    auto again = links_.find(id);
    std::string why;
    if (again != links_.end() && again->second.state == State::kConnected && !write_out(again->second, &why))
      fail(forwarder, id, why);
  }
}

void ForwardLinks::tick(core::Forwarder& forwarder, uint64_t now_ms) {
  std::vector<std::pair<uint64_t, std::string>> failed;
  for (const auto& [id, l] : links_) {
    if (l.state == State::kFailed) failed.emplace_back(id, l.failure);
    else if ((l.state == State::kConnecting || l.state == State::kResolving) && now_ms >= l.connect_deadline_ms)
      failed.emplace_back(id, fmt::format("no connection within {} ms", kForwardConnectTimeoutMs));
  }
  for (const auto& [id, why] : failed) fail(forwarder, id, why);
}

}  // namespace hmdb::server
