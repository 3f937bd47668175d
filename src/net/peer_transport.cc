// net/peer_transport.cc — non-blocking TCP transport for raft messages; see
// peer_transport.h for the connection model, the refusals and the bounds.
#include "net/peer_transport.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/assert.h"
#include "common/text.h"

namespace hmdb::net {

namespace {

constexpr uint64_t kListenerToken = 0;
constexpr uint64_t kTimerToken = 1;
constexpr uint64_t kResolverToken = 2;
// Listen backlog: peers are few; this only absorbs a burst of reconnects.
constexpr int kListenBacklog = 64;
// Written bytes at the front of a peer's buffer are dropped once they exceed this and half
// the buffer (amortised O(1) per byte, no memmove per frame).
constexpr size_t kCompactBytes = 1u << 20;
// An empty buffer whose capacity exceeds this (after a snapshot chunk, say) is freed, so an
// idle peer does not pin the memory of its largest frame.
constexpr size_t kKeepBufferBytes = 4u << 20;

// Fails only for lack of memory or of epoll watches (ENOMEM, ENOSPC); errno tells which.
bool epoll_add(int epoll_fd, int fd, uint32_t events, uint64_t token) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = token;
  return ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0;
}

}  // namespace

// ---- setup ------------------------------------------------------------------------------

PeerTransport::PeerTransport(PeerTransportOptions options) : options_(std::move(options)) {}

PeerTransport::~PeerTransport() {
  for (auto& [id, p] : peers_) {
    p.tls.reset();
    if (p.fd >= 0) ::close(p.fd);
  }
  for (auto& [conn, in] : inbound_) {
    in.tls.reset();
    ::close(in.fd);
  }
  for (int fd : {listen_fd_, timer_fd_, epoll_fd_})
    if (fd >= 0) ::close(fd);
}

Status PeerTransport::open(const PeerTransportOptions& options, std::unique_ptr<PeerTransport>* out) {
  if (options.self == raft::kNoNode) return Status::invalid_argument("peer transport: node id 0");
  if (options.advertise_client_addr.size() > peer::kMaxAddressBytes ||
      options.advertise_peer_addr.size() > peer::kMaxAddressBytes)
    return Status::invalid_argument("peer transport: advertised address longer than 255 bytes");
  if (options.read_bytes_per_poll_max == 0 || options.read_chunk_bytes == 0)
    return Status::invalid_argument("peer transport: a read bound of 0 bytes");
  std::unique_ptr<PeerTransport> t(new PeerTransport(options));
  t->read_scratch_.reset(new char[options.read_chunk_bytes]);
  Status s = t->listen();
  if (!s) return s;
  *out = std::move(t);
  return Status::ok();
}

Status PeerTransport::listen() {
  SocketAddress addr;
  if (!numeric_address(options_.listen_host, options_.listen_port, &addr))
    return Status::invalid_argument("peer transport: listen host is not an IPv4 or IPv6 address: " + options_.listen_host);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  resolver_ = std::make_unique<Resolver>(options_.lookup ? options_.lookup : Resolver::Lookup(&resolve));
  if (epoll_fd_ < 0 || timer_fd_ < 0 || resolver_->fd() < 0)
    return Status::io_error(std::string("peer transport: epoll/timerfd/eventfd: ") + std::strerror(errno));
  // SO_REUSEADDR (listen_tcp): a restarted node must be able to bind its port while old
  // connections sit in TIME_WAIT.
  Status s = listen_tcp(addr, kListenBacklog, &listen_fd_, &listen_address_);
  if (!s) return Status::io_error("peer transport: " + s.message());
  port_ = listen_address_.port();
  hello_peer_addr_ = options_.advertise_peer_addr.empty() ? format_host_port(options_.listen_host, port_)
                                                          : options_.advertise_peer_addr;
  if (hello_peer_addr_.size() > peer::kMaxAddressBytes)
    return Status::invalid_argument("peer transport: peer address longer than 255 bytes");
  if (!epoll_add(epoll_fd_, listen_fd_, EPOLLIN, kListenerToken) || !epoll_add(epoll_fd_, timer_fd_, EPOLLIN, kTimerToken) ||
      !epoll_add(epoll_fd_, resolver_->fd(), EPOLLIN, kResolverToken))
    return Status::io_error(std::string("peer transport: epoll_ctl: ") + std::strerror(errno));
  return Status::ok();
}

// ---- peers and addresses ------------------------------------------------------------------

PeerTransport::Peer* PeerTransport::find_peer(raft::NodeId id) {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

const PeerTransport::Peer* PeerTransport::find_peer(raft::NodeId id) const {
  auto it = peers_.find(id);
  return it == peers_.end() ? nullptr : &it->second;
}

PeerTransport::Peer* PeerTransport::peer_for(raft::NodeId id) {
  if (Peer* p = find_peer(id)) return p;
  if (id == raft::kNoNode || peers_.size() >= kMaxPeers) return nullptr;
  Peer& p = peers_[id];
  p.id = id;
  p.stats.id = id;
  return &p;
}

const std::string* PeerTransport::dial_addr_of(const Peer& p) const {
  if (!p.dial_addr.empty()) return &p.dial_addr;
  if (p.has_hello_peer_addr && !p.hello_peer_addr.empty()) return &p.hello_peer_addr;
  return nullptr;
}

bool PeerTransport::should_dial(const Peer& p) const { return p.id != options_.self && dial_addr_of(p) != nullptr; }

const std::string* PeerTransport::client_addr_of(raft::NodeId id) const {
  std::lock_guard lk(mu_);
  const Peer* p = find_peer(id);
  return p != nullptr && p->has_hello_client_addr ? &p->hello_client_addr : nullptr;
}

bool PeerTransport::schema_versions_of(raft::NodeId id, uint32_t* oldest, uint32_t* newest) const {
  std::lock_guard lk(mu_);
  const Peer* p = find_peer(id);
  if (p == nullptr || p->hello_schema_newest == 0) return false;
  *oldest = p->hello_schema_oldest;
  *newest = p->hello_schema_newest;
  return true;
}

const std::string* PeerTransport::peer_addr_of(raft::NodeId id) const {
  std::lock_guard lk(mu_);
  const Peer* p = find_peer(id);
  return p != nullptr ? dial_addr_of(*p) : nullptr;
}

void PeerTransport::set_address(raft::NodeId id, const std::string& peer_addr) {
  std::lock_guard lk(mu_);
  if (peer_addr.empty()) {
    Peer* p = find_peer(id);
    if (p == nullptr) return;
    p->dial_addr.clear();
    p->has_hello_peer_addr = false;
    p->hello_peer_addr.clear();
    p->resolving = false;
    p->resolved.reset();
    if (p->state != Peer::State::kIdle) close_outbound(p, "its address was forgotten");
    rearm_timer();
    return;
  }
  Peer* p = peer_for(id);
  if (p == nullptr) return;
  const std::string* before = dial_addr_of(*p);
  bool changed = before == nullptr || *before != peer_addr;
  p->dial_addr = peer_addr;
  if (!changed) return;
  if (p->state != Peer::State::kIdle) close_outbound(p, "its address changed to " + peer_addr);
  p->backoff_ms = kReconnectBackoffInitialMs;
  p->next_dial_ms = now_ms_;
  if (clock_known_ && should_dial(*p)) dial(p);  // else the first poll() dials
  rearm_timer();
}

void PeerTransport::set_members(std::vector<raft::NodeId> members, raft::Index config_index, bool config_committed) {
  std::lock_guard lk(mu_);
  std::sort(members.begin(), members.end());
  members_ = std::move(members);
  config_index_ = config_index;
  config_committed_ = config_committed;
  if (members_.empty()) return;
  std::vector<uint64_t> gone;
  for (auto& [conn, in] : inbound_)
    if (!in.lingering && in.from != raft::kNoNode && !std::binary_search(members_.begin(), members_.end(), in.from))
      gone.push_back(conn);
  for (uint64_t conn : gone) {
    Inbound& in = inbound_.at(conn);
    refuse(conn, &in, config_committed_ ? peer::RefusalReason::kNotMember : peer::RefusalReason::kNotMemberUncommitted,
           fmt::format("node {} is no longer a member", in.from), in.from);
  }
}

// ---- outbound -----------------------------------------------------------------------------

void PeerTransport::dial(Peer* p) {
  HMDB_ASSERT(p->state == Peer::State::kIdle && p->fd < 0 && p->out.empty() && p->id != options_.self,
              "dialing node %llu twice or ourselves", static_cast<unsigned long long>(p->id));
  const std::string* addr = dial_addr_of(*p);
  if (addr == nullptr) return;
  auto schedule_retry = [&](const std::string& why) { dial_failed(p, *addr, why); };
  HostPort hp;
  std::string problem;
  if (!parse_host_port(*addr, &hp, &problem)) return schedule_retry(problem);
  SocketAddress to;
  if (!numeric_address(hp.host, hp.port, &to)) {
    // A name: the resolver thread looks it up (no DNS in the loop) and on_resolved() dials
    // with its answer. Each dial uses a fresh answer, so a peer that moved is found again.
    const std::string key = hp.to_string();
    if (!p->resolved || p->resolved_for != key) {
      if (!p->resolving || p->resolving_for != key) {
        if (!resolver_->ask(hp.host, hp.port)) return schedule_retry("the name resolver is busy");
        p->resolving = true;
        p->resolving_for = key;
      }
      p->next_dial_ms = UINT64_MAX;  // the answer sets it
      return;
    }
    to = *p->resolved;
    p->resolved.reset();
  }
  int fd = ::socket(to.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return schedule_retry(std::string("socket: ") + std::strerror(errno));
  int yes = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  // Source address = our peer IP (firewall rules by IP see the node), port chosen at
  // connect time so that bind does not use up the ephemeral range per destination. Only
  // within one address family: a node listening on IPv4 dials an IPv6 peer from any address.
  if (!listen_address_.is_wildcard() && listen_address_.family() == to.family()) {
    SocketAddress from = listen_address_;
    from.set_port(0);
    ::setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &yes, sizeof yes);
    if (::bind(fd, from.get(), from.length) != 0) {
      std::string why = std::string("bind source ") + options_.listen_host + ": " + std::strerror(errno);
      ::close(fd);
      return schedule_retry(why);
    }
  }
  int rc = ::connect(fd, to.get(), to.length);
  if (rc != 0 && errno != EINPROGRESS) {
    std::string why = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return schedule_retry(why);
  }
  if (options_.tls_client) {
    p->tls.reset(options_.tls_client->connect_fd(fd));
    if (!p->tls) {
      ::close(fd);
      return schedule_retry("TLS: cannot make a connection state");
    }
  }
  uint64_t conn = next_conn_++;
  // We never read on this connection, but EPOLLIN/RDHUP tell us the peer closed it.
  if (!epoll_add(epoll_fd_, fd, EPOLLIN | EPOLLRDHUP | EPOLLOUT, conn)) {
    std::string why = std::string("epoll_ctl: ") + std::strerror(errno);
    p->tls.reset();
    ::close(fd);
    return schedule_retry(why);
  }
  p->fd = fd;
  p->conn = conn;
  outbound_[p->conn] = p->id;
  p->state = Peer::State::kConnecting;
  p->connect_deadline_ms = now_ms_ + kConnectTimeoutMs;
  p->want_write = true;
  // The Hello goes first; messages queued while connecting follow it.
  p->out = peer::encode_hello_frame(options_.cluster_id,
                                    peer::Hello{options_.self, p->id, hello_peer_addr_, options_.advertise_client_addr,
                                                options_.schema_oldest, options_.schema_newest});
  p->out_offset = 0;
  p->written_in_front = 0;
  p->frames.push_back(QueuedFrame{p->out.size(), false});
  p->last_write_progress_ms = now_ms_;
}

void PeerTransport::dial_failed(Peer* p, const std::string& addr, const std::string& why) {
  if (++p->failed_dials == 1) log_for(&p->log_budget, fmt::format("cannot dial node {} at {}: {}", p->id, addr, why));
  p->next_dial_ms = now_ms_ + p->backoff_ms;
  p->backoff_ms = std::min(p->backoff_ms * 2, kReconnectBackoffMaxMs);
}

void PeerTransport::on_resolved() {
  for (Resolver::Answer& a : resolver_->take()) {
    const std::string key = format_host_port(a.host, a.port);
    for (auto& [id, p] : peers_) {
      if (!p.resolving || p.resolving_for != key) continue;  // asked for another address since
      p.resolving = false;
      if (!a.status) {
        dial_failed(&p, key, a.status.message());
        continue;
      }
      p.resolved = a.address;
      p.resolved_for = key;
      p.next_dial_ms = now_ms_;  // check_timers() dials it in this poll()
    }
  }
}

void PeerTransport::close_outbound(Peer* p, const std::string& why, bool log) {
  if (p->fd < 0) return;
  bool was_connected = p->state == Peer::State::kConnected;
  p->tls.reset();
  ::close(p->fd);  // also removes it from the epoll set
  outbound_.erase(p->conn);
  p->fd = -1;
  p->conn = 0;
  p->want_write = false;
  uint64_t dropped = 0;
  for (const auto& f : p->frames) dropped += f.message ? 1 : 0;
  p->stats.msgs_dropped += dropped;
  p->frames.clear();
  p->out.clear();
  p->out_offset = 0;
  p->written_in_front = 0;
  p->refusal_in.clear();
  p->state = Peer::State::kIdle;
  if (was_connected && now_ms_ - p->connected_at_ms >= kConnectionStableMs) p->backoff_ms = kReconnectBackoffInitialMs;
  p->next_dial_ms = now_ms_ + p->backoff_ms;
  p->backoff_ms = std::min(p->backoff_ms * 2, kReconnectBackoffMaxMs);
  // Only the first of a run of failed dials is logged; the next success says how many.
  if (!was_connected && ++p->failed_dials > 1) return;
  if (!log) return;
  log_for(&p->log_budget, fmt::format("{} node {}: {}{}", was_connected ? "disconnected from" : "could not connect to",
                                      p->id, why,
                                      dropped > 0 ? fmt::format(" ({} queued messages dropped)", dropped) : ""));
}

void PeerTransport::set_want_write(Peer* p, bool want) {
  if (p->want_write == want || p->fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (want ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = p->conn;
  HMDB_ASSERT(::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, p->fd, &ev) == 0, "epoll_ctl mod: %s", std::strerror(errno));
  p->want_write = want;
}

void PeerTransport::write_outbound(Peer* p) {
  HMDB_ASSERT(p->state == Peer::State::kConnected, "writing to node %llu before it is connected",
              static_cast<unsigned long long>(p->id));
  while (p->out_offset < p->out.size()) {
    // With TLS a retry passes the same bytes or more, as OpenSSL requires: the queue only
    // grows at its end until it is written (net/tls.h).
    TlsIo want;
    std::string tls_error;
    ssize_t n = io_send(p->fd, p->tls.get(), p->out.data() + p->out_offset, p->out.size() - p->out_offset, &want,
                        &tls_error);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A TLS handshake may wait for the peer's answer instead: EPOLLIN is always watched.
        set_want_write(p, want == TlsIo::kWantWrite);
        return;
      }
      if (errno == EPROTO) return close_outbound(p, "TLS: " + tls_error);
      return close_outbound(p, std::string("write: ") + std::strerror(errno));
    }
    size_t written = static_cast<size_t>(n);
    p->out_offset += written;
    p->stats.bytes_sent += written;
    p->last_write_progress_ms = now_ms_;
    while (written > 0) {
      HMDB_ASSERT(!p->frames.empty(), "bytes written beyond the queued frames");
      QueuedFrame& f = p->frames.front();
      size_t take = std::min(written, f.bytes - p->written_in_front);
      p->written_in_front += take;
      written -= take;
      if (p->written_in_front == f.bytes) {
        if (f.message) p->stats.msgs_sent++;
        p->frames.pop_front();
        p->written_in_front = 0;
      }
    }
  }
  HMDB_ASSERT(p->frames.empty(), "queue empty but %zu frames left", p->frames.size());
  p->out.clear();
  p->out_offset = 0;
  if (p->out.capacity() > kKeepBufferBytes) std::string().swap(p->out);
  set_want_write(p, false);
}

void PeerTransport::on_outbound_event(Peer* p, uint32_t events) {
  if (p->state == Peer::State::kConnecting) {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err == 0 && (events & (EPOLLERR | EPOLLHUP)) != 0) err = ECONNREFUSED;
    if (err != 0) return close_outbound(p, std::string("connect: ") + std::strerror(err));
    if ((events & EPOLLOUT) == 0) return;
    p->state = Peer::State::kConnected;
    p->connected_at_ms = now_ms_;
    log_for(&p->log_budget,
            fmt::format("connected to node {} at {}{}", p->id, *dial_addr_of(*p),
                        p->failed_dials > 0 ? fmt::format(" after {} failed attempts", p->failed_dials) : ""));
    p->failed_dials = 0;
    return write_outbound(p);
  }
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
    read_outbound(p);
    if (p->state != Peer::State::kConnected) return;  // closed
  }
  // With TLS a read may have moved the handshake on, which a queued write waited for.
  if ((events & EPOLLOUT) != 0 || (p->tls && p->out_offset < p->out.size())) write_outbound(p);
}

void PeerTransport::read_outbound(Peer* p) {
  // The peer writes on our connection only to refuse it: one refusal frame, then it closes.
  // Readable otherwise means closed, reset, or a broken peer.
  while (true) {
    char chunk[peer::kMaxRefusalFrameBytes];
    size_t room = peer::kMaxRefusalFrameBytes - p->refusal_in.size();
    if (room == 0) return close_outbound(p, "the peer wrote more than a refusal on our outbound connection");
    TlsIo want;
    std::string tls_error;
    ssize_t n = io_recv(p->fd, p->tls.get(), chunk, room, &want, &tls_error);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (want == TlsIo::kWantWrite) set_want_write(p, true);  // a handshake's write waits
        return;
      }
      if (errno == EPROTO) return close_outbound(p, "TLS: " + tls_error);
      return close_outbound(p, std::string("read: ") + std::strerror(errno));
    }
    if (n == 0)
      return close_outbound(p, p->refusal_in.empty() ? std::string("closed by the peer")
                                                     : fmt::format("closed by the peer after {} bytes of a frame",
                                                                   p->refusal_in.size()));
    p->refusal_in.append(chunk, static_cast<size_t>(n));
    peer::FrameParser parser(peer::kMaxRefusalBodyBytes);
    size_t consumed = 0;
    peer::Frame frame;
    std::string error;
    auto r = parser.parse(p->refusal_in.data(), p->refusal_in.size(), &consumed, &frame, &error);
    if (r == peer::FrameParser::Result::kNeedMore) continue;
    if (r == peer::FrameParser::Result::kError)
      return close_outbound(p, "the peer wrote on our outbound connection: " + error);
    if (frame.kind != peer::FrameKind::kRefusal)
      return close_outbound(p, fmt::format("the peer wrote a frame of kind {} on our outbound connection",
                                           static_cast<int>(frame.kind)));
    peer::Refusal refusal;
    if (!peer::decode_refusal(frame.body, &refusal, &error)) return close_outbound(p, "bad refusal: " + error);
    return on_refusal(p, frame.cluster_id, std::move(refusal));
  }
}

void PeerTransport::on_refusal(Peer* p, uint64_t cluster_id, peer::Refusal refusal) {
  p->stats.refusals_received++;
  Peer::RefusalLog& rl = p->refusal_log[static_cast<uint8_t>(refusal.reason)];
  if (now_ms_ >= rl.next_ms) {
    if (options_.log)
      options_.log(fmt::format("peer: node {} refused our connection: {} (refuser node {}, its membership at index {}, "
                               "cluster id {:016x}): {}{}",
                               p->id, peer::refusal_reason_name(refusal.reason), refusal.from, refusal.config_index,
                               cluster_id, refusal.text,
                               rl.suppressed > 0 ? fmt::format(" ({} such refusals not logged)", rl.suppressed) : ""));
    // The first line of a reason comes at once; repeats after a quiet time that doubles.
    if (rl.next_ms != 0) rl.interval_ms = std::min(rl.interval_ms * 2, kRefusalLogIntervalMaxMs);
    rl.next_ms = now_ms_ + rl.interval_ms;
    rl.suppressed = 0;
  } else {
    rl.suppressed++;
  }
  close_outbound(p, "refused", /*log=*/false);
  if (options_.on_refused) options_.on_refused(PeerRefusal{p->id, cluster_id, std::move(refusal)});
}

void PeerTransport::send(raft::Message msg) {
  std::lock_guard lk(mu_);
  send_locked(std::move(msg));
}

void PeerTransport::send_locked(raft::Message msg) {
  Peer* p = peer_for(msg.to);
  if (p == nullptr) return;  // node 0 or over kMaxPeers: nowhere to count it
  if (!should_dial(*p)) {  // no address, or addressed to ourselves
    p->stats.msgs_dropped++;
    return;
  }
  if (p->state == Peer::State::kIdle && clock_known_ && now_ms_ >= p->next_dial_ms) dial(p);
  if (p->state == Peer::State::kIdle) {  // backing off after a failure
    p->stats.msgs_dropped++;
    return;
  }
  size_t bytes = peer::message_frame_bytes(msg);
  uint64_t queued = p->out.size() - p->out_offset;
  if (bytes - peer::kFrameHeaderBytes > peer::kMaxFrameBodyBytes) {
    p->stats.msgs_dropped++;
    log_for(&p->log_budget, fmt::format("dropped a message of {} bytes to node {}: frames are limited to {} bytes",
                                        bytes, p->id, peer::kMaxFrameBodyBytes));
    return;
  }
  if (queued + bytes > options_.max_queue_bytes_per_peer) {
    p->stats.msgs_dropped++;
    return;
  }
  if (queued == 0) p->last_write_progress_ms = now_ms_;  // the stall clock starts now
  peer::append_message_frame(&p->out, options_.cluster_id, msg);
  p->frames.push_back(QueuedFrame{bytes, true});
}

void PeerTransport::flush() {
  std::lock_guard lk(mu_);
  flush_locked();
}

void PeerTransport::send_and_flush(std::vector<raft::Message>&& messages) {
  std::lock_guard lk(mu_);
  for (raft::Message& m : messages) send_locked(std::move(m));
  flush_locked();
}

void PeerTransport::send_later(std::vector<raft::Message>&& messages) {
  std::lock_guard lk(mu_);
  for (raft::Message& m : messages) send_locked(std::move(m));
}

void PeerTransport::flush_stale() {
  std::lock_guard lk(mu_);
  for (auto& [id, p] : peers_) {
    const bool queued = p.out_offset < p.out.size();
    if (queued && p.queued_at_stale_check && p.stats.bytes_sent == p.sent_at_stale_check &&
        p.state == Peer::State::kConnected && !p.want_write)
      write_outbound(&p);
    p.queued_at_stale_check = p.out_offset < p.out.size();
    p.sent_at_stale_check = p.stats.bytes_sent;
  }
  rearm_timer();
}

void PeerTransport::flush_locked() {
  for (auto& [id, p] : peers_) {
    if (p.state == Peer::State::kConnected && !p.want_write && p.out_offset < p.out.size()) write_outbound(&p);
    if (p.out_offset > kCompactBytes && p.out_offset * 2 >= p.out.size()) {
      p.out.erase(0, p.out_offset);
      p.out_offset = 0;
    }
  }
  rearm_timer();
}

// ---- inbound ------------------------------------------------------------------------------

void PeerTransport::accept_all() {
  for (int i = 0; i < kAcceptsPerPollMax; i++) {
    sockaddr_storage remote_storage{};
    socklen_t len = sizeof remote_storage;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&remote_storage), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      // Out of fds or memory: the pending connection stays readable on a level-triggered
      // listener, so stop watching it for a while instead of spinning the server's loop.
      log_for(&unidentified_log_budget_, fmt::format("accept: {}; not accepting peers for {} ms", std::strerror(errno),
                                                     kAcceptPauseMs));
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      accept_paused_until_ms_ = now_ms_ + kAcceptPauseMs;
      return;
    }
    const SocketAddress remote = SocketAddress::from(reinterpret_cast<const sockaddr*>(&remote_storage), len);
    if (inbound_.size() >= kMaxInboundConnections) {
      log_for(&unidentified_log_budget_, fmt::format("refused a connection from {}: {} peer connections already open",
                                                     remote.to_string(), kMaxInboundConnections));
      ::close(fd);
      continue;
    }
    uint64_t conn = next_conn_++;
    if (!epoll_add(epoll_fd_, fd, EPOLLIN | EPOLLRDHUP, conn)) {
      log_for(&unidentified_log_budget_, fmt::format("refused a connection from {}: epoll_ctl: {}",
                                                     remote.to_string(), std::strerror(errno)));
      ::close(fd);
      continue;
    }
    Inbound& in = inbound_[conn];
    in.fd = fd;
    if (options_.tls_server) in.tls.reset(options_.tls_server->connect_fd(fd));
    in.remote = remote.to_string();
    in.accepted_ms = now_ms_;
  }
}

void PeerTransport::close_inbound(uint64_t conn) {
  auto it = inbound_.find(conn);
  if (it == inbound_.end()) return;
  it->second.tls.reset();
  ::close(it->second.fd);
  inbound_.erase(it);
}

void PeerTransport::set_inbound_want_write(uint64_t conn, Inbound* in, bool want) {
  if (in->want_write == want) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | (want ? uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = conn;
  HMDB_ASSERT(::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, in->fd, &ev) == 0, "epoll_ctl mod: %s", std::strerror(errno));
  in->want_write = want;
}

void PeerTransport::set_tls(std::shared_ptr<TlsContext> server, std::shared_ptr<TlsContext> client) {
  std::lock_guard lk(mu_);
  HMDB_ASSERT((server == nullptr) == (options_.tls_server == nullptr), "peer TLS switched on or off while running");
  options_.tls_server = std::move(server);
  options_.tls_client = std::move(client);
}

bool PeerTransport::refuse(uint64_t conn, Inbound* in, peer::RefusalReason reason, const std::string& why,
                           raft::NodeId to, bool reply) {
  Peer* p = in->from != raft::kNoNode ? find_peer(in->from) : nullptr;
  if (p != nullptr) {
    p->stats.frames_refused++;
  } else {
    refused_unidentified_++;
  }
  log_for(p != nullptr ? &p->log_budget : &unidentified_log_budget_,
          fmt::format("refused the connection from {}{}: {}", in->remote,
                      in->from != raft::kNoNode ? fmt::format(" (node {})", in->from) : "", why));
  if (!reply) {
    close_inbound(conn);
    return false;
  }
  // Tell the dialer why. Nothing else was ever written on this socket, so the few hundred
  // bytes fit its empty send buffer; if not, the dialer just sees the connection close.
  peer::Refusal r{reason, options_.self, to != raft::kNoNode ? to : in->from, config_index_,
                  why.substr(0, peer::kMaxRefusalTextBytes)};
  const std::string frame = peer::encode_refusal_frame(options_.cluster_id, r);
  TlsIo want;
  std::string tls_error;
  ssize_t n = io_send(in->fd, in->tls.get(), frame.data(), frame.size(), &want, &tls_error);
  if (n == static_cast<ssize_t>(frame.size()) && in->tls) tls_shutdown(in->tls.get());  // close_notify after it
  if (n != static_cast<ssize_t>(frame.size()) || ::shutdown(in->fd, SHUT_WR) != 0) {
    close_inbound(conn);
    return false;
  }
  in->lingering = true;
  in->linger_deadline_ms = now_ms_ + kRefusalLingerMs;
  in->buf.clear();
  in->buf.shrink_to_fit();
  return false;
}

void PeerTransport::drain_lingering(uint64_t conn, Inbound* in) {
  // Discard what the dialer still sends until it closes (bounded work per poll).
  char chunk[4096];
  for (size_t total = 0; total < options_.read_bytes_per_poll_max;) {
    ssize_t n = ::recv(in->fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) return close_inbound(conn);  // closed by the dialer (or reset): done
    total += static_cast<size_t>(n);
  }
}

void PeerTransport::read_inbound(uint64_t conn) {
  auto it = inbound_.find(conn);
  if (it == inbound_.end()) return;
  Inbound* in = &it->second;
  if (in->lingering) return drain_lingering(conn, in);
  size_t total = 0;
  while (total < options_.read_bytes_per_poll_max) {
    // A connection buffers at most one frame: the parser refuses a header announcing more.
    size_t limit = peer::kFrameHeaderBytes + in->parser.max_body_bytes();
    HMDB_ASSERT(in->buf.size() < limit, "a full frame's worth of bytes was left unparsed");
    // Read a large frame's remainder in one go (fewer syscalls), else a chunk.
    size_t frame = peer::FrameParser::frame_bytes_hint(in->buf.data(), in->buf.size());
    size_t want = frame > in->buf.size() ? std::max(options_.read_chunk_bytes, frame - in->buf.size())
                                          : options_.read_chunk_bytes;
    size_t space = std::min(want, limit - in->buf.size());
    size_t old = in->buf.size();
    // A chunk is read into the scratch buffer and what came appended: growing the string by
    // the chunk before the read wrote 64 KiB of zeros per recv (std::string::resize), most
    // of a follower's instructions. A large frame's remainder is read in place.
    const bool in_place = space > options_.read_chunk_bytes;
    char* into = read_scratch_.get();
    if (in_place) {
      in->buf.resize(old + space);
      into = in->buf.data() + old;
    }
    TlsIo waits;
    std::string tls_error;
    ssize_t n = io_recv(in->fd, in->tls.get(), into, space, &waits, &tls_error);
    reads_++;
    if (in_place) in->buf.resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
    else if (n > 0) in->buf.append(into, static_cast<size_t>(n));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A TLS handshake's write that the socket did not take waits for EPOLLOUT.
        if (in->tls) set_inbound_want_write(conn, in, waits == TlsIo::kWantWrite);
        return;
      }
      if (errno == EPROTO) {
        // Before the handshake finished: not a node of this cluster (no certificate its CA
        // signed). Nothing it sent was read as a frame.
        const bool handshake = !tls_handshake_done(in->tls.get());
        if (handshake) tls_refused_++;
        Peer* p = in->from != raft::kNoNode ? find_peer(in->from) : nullptr;
        log_for(p != nullptr ? &p->log_budget : &unidentified_log_budget_,
                handshake ? fmt::format("refused the connection from {}: TLS handshake failed: {}", in->remote, tls_error)
                          : fmt::format("connection from {} failed: TLS: {}", in->remote, tls_error));
        tls_discard(in->tls.release());  // nothing more may be written on it
        return close_inbound(conn);
      }
      Peer* p = in->from != raft::kNoNode ? find_peer(in->from) : nullptr;
      log_for(p != nullptr ? &p->log_budget : &unidentified_log_budget_,
              fmt::format("connection from {} failed: {}", in->remote, std::strerror(errno)));
      return close_inbound(conn);
    }
    if (n == 0) {
      if (in->from != raft::kNoNode) {
        Peer* p = find_peer(in->from);
        log_for(p != nullptr ? &p->log_budget : &unidentified_log_budget_,
                fmt::format("node {} closed its connection from {}", in->from, in->remote));
      }
      return close_inbound(conn);
    }
    total += static_cast<size_t>(n);
    size_t offset = 0;
    while (true) {
      size_t consumed = 0;
      peer::Frame frame;
      std::string error;
      auto r = in->parser.parse(in->buf.data() + offset, in->buf.size() - offset, &consumed, &frame, &error);
      if (r == peer::FrameParser::Result::kNeedMore) break;
      if (r == peer::FrameParser::Result::kError) {
        // Bytes that do not start like a frame are not from a peer: no refusal frame then.
        const size_t left = in->buf.size() - offset;
        const bool looks_like_peer = std::memcmp(in->buf.data() + offset, "HMPR", std::min<size_t>(4, left)) == 0;
        refuse(conn, in, peer::RefusalReason::kOther, error, raft::kNoNode, looks_like_peer);
        return;
      }
      if (!handle_frame(conn, in, frame, received_)) return;  // refused and closed
      offset += consumed;
    }
    in->buf.erase(0, offset);
    if (in->buf.empty() && in->buf.capacity() > kKeepBufferBytes) std::string().swap(in->buf);
    // A plain socket that gave less than asked for had no more bytes just now: asking again
    // would only hear EAGAIN (a system call per message received, on a follower for every
    // append and on a leader for every acknowledgement). Bytes arriving later raise the
    // level-triggered event again. (OpenSSL returns one record at a time: a short TLS read
    // says nothing about the socket, so a TLS connection reads on.)
    if (!in->tls && static_cast<size_t>(n) < space) return;
  }
  // At the budget. Bytes still in the kernel raise the (level-triggered) event again; bytes
  // OpenSSL already decrypted do not.
  if (in->tls && tls_pending(in->tls.get()) > 0) reread_.push_back(conn);
}

bool PeerTransport::handle_frame(uint64_t conn, Inbound* in, const peer::Frame& frame,
                                 std::vector<raft::Message>* received) {
  std::string error;
  if (frame.cluster_id != options_.cluster_id)
    return refuse(conn, in, peer::RefusalReason::kWrongCluster,
                  fmt::format("cluster id {:016x} is not ours ({:016x})", frame.cluster_id, options_.cluster_id));
  if (frame.kind == peer::FrameKind::kRefusal)
    return refuse(conn, in, peer::RefusalReason::kOther, "a refusal frame on an accepted connection");
  if (frame.kind == peer::FrameKind::kHello) {
    if (in->from != raft::kNoNode) return refuse(conn, in, peer::RefusalReason::kOther, "a second hello");
    peer::Hello hello;
    if (!peer::decode_hello(frame.body, &hello, &error))
      return refuse(conn, in, peer::RefusalReason::kOther, "bad hello: " + error);
    if (hello.to != options_.self)
      return refuse(conn, in, peer::RefusalReason::kOther,
                    fmt::format("hello from node {} is addressed to node {}, this is node {}", hello.from, hello.to,
                                options_.self),
                    hello.from);
    if (hello.from == options_.self)
      return refuse(conn, in, peer::RefusalReason::kOther,
                    fmt::format("hello from node {} claims this node's id", hello.from), hello.from);
    if (!members_.empty() && !std::binary_search(members_.begin(), members_.end(), hello.from)) {
      // Blame the node (in its stats) if we know it, without creating state for strangers.
      if (find_peer(hello.from) != nullptr) in->from = hello.from;
      return refuse(conn, in,
                    config_committed_ ? peer::RefusalReason::kNotMember : peer::RefusalReason::kNotMemberUncommitted,
                    fmt::format("node {} is not a member", hello.from), hello.from);
    }
    Peer* p = peer_for(hello.from);
    if (p == nullptr)
      return refuse(conn, in, peer::RefusalReason::kOther, fmt::format("more than {} peers known", kMaxPeers),
                    hello.from);
    in->from = hello.from;
    in->parser.set_max_body_bytes(peer::kMaxFrameBodyBytes);
    // The newest connection from a node replaces older ones (they are stale: the node
    // reconnected, maybe after a partition hid the old connection's end).
    std::vector<uint64_t> stale;
    for (auto& [other, o] : inbound_)
      if (other != conn && o.from == hello.from) stale.push_back(other);
    for (uint64_t other : stale) close_inbound(other);
    // A node dialed by its Hello address (no set_address) that moved: redial it there.
    bool moved = p->dial_addr.empty() && p->has_hello_peer_addr && p->hello_peer_addr != hello.peer_addr;
    p->hello_peer_addr = hello.peer_addr;
    p->hello_client_addr = hello.client_addr;
    p->has_hello_peer_addr = p->has_hello_client_addr = true;
    p->hello_schema_oldest = hello.schema_oldest;
    p->hello_schema_newest = hello.schema_newest;
    log_for(&p->log_budget, fmt::format("node {} connected from {} (peer address {}, client address {})", hello.from,
                                        in->remote, hello.peer_addr, hello.client_addr));
    if (moved && p->state != Peer::State::kIdle) {
      close_outbound(p, "its peer address changed to " + hello.peer_addr);
      p->next_dial_ms = now_ms_;
    }
    return true;
  }
  if (in->from == raft::kNoNode) return refuse(conn, in, peer::RefusalReason::kOther, "a message before the hello");
  raft::Message m;
  if (!peer::decode_message(frame.body, &m, &error))
    return refuse(conn, in, peer::RefusalReason::kOther, "bad message: " + error);
  if (m.from != in->from)
    return refuse(conn, in, peer::RefusalReason::kOther,
                  fmt::format("message from node {} on node {}'s connection", m.from, in->from));
  if (m.to != options_.self)
    return refuse(conn, in, peer::RefusalReason::kOther, fmt::format("message to node {}, this is node {}", m.to, options_.self));
  Peer* p = find_peer(in->from);
  if (p != nullptr) p->stats.msgs_received++;
  received->push_back(std::move(m));
  return true;
}

// ---- the loop -------------------------------------------------------------------------------

void PeerTransport::poll(uint64_t now_ms, std::vector<raft::Message>* received) {
  std::lock_guard lk(mu_);
  now_ms_ = std::max(now_ms_, now_ms);
  clock_known_ = true;
  received_ = received;
  std::vector<uint64_t> reread;
  reread.swap(reread_);
  for (uint64_t conn : reread)
    if (inbound_.count(conn) != 0) read_inbound(conn);  // closed since: skipped
  epoll_event events[kEventsPerPollMax];
  int n = ::epoll_wait(epoll_fd_, events, kEventsPerPollMax, 0);
  HMDB_ASSERT(n >= 0 || errno == EINTR, "epoll_wait: %s", std::strerror(errno));
  for (int i = 0; i < n; i++) {
    uint64_t token = events[i].data.u64;
    if (token == kListenerToken) {
      accept_all();
    } else if (token == kTimerToken) {
      uint64_t expirations;
      [[maybe_unused]] ssize_t r = ::read(timer_fd_, &expirations, sizeof expirations);  // EAGAIN is fine
      armed_deadline_ms_ = UINT64_MAX;  // it fired: re-arm below even for the same deadline
    } else if (token == kResolverToken) {
      on_resolved();
    } else if (auto out = outbound_.find(token); out != outbound_.end()) {
      Peer* p = find_peer(out->second);
      HMDB_ASSERT(p != nullptr && p->conn == token, "outbound token without its peer");
      on_outbound_event(p, events[i].events);
    } else if (inbound_.count(token) != 0) {
      read_inbound(token);
    }
    // Else the connection was closed earlier in this batch; tokens are never reused.
  }
  received_ = nullptr;
  check_timers();
  rearm_timer();
}

void PeerTransport::check_timers() {
  if (accept_paused_until_ms_ != 0 && now_ms_ >= accept_paused_until_ms_) {
    if (epoll_add(epoll_fd_, listen_fd_, EPOLLIN, kListenerToken)) {
      accept_paused_until_ms_ = 0;
    } else {
      accept_paused_until_ms_ = now_ms_ + kAcceptPauseMs;
    }
  }
  for (auto& [id, p] : peers_) {
    switch (p.state) {
      case Peer::State::kConnecting:
        if (now_ms_ >= p.connect_deadline_ms) close_outbound(&p, fmt::format("connect timed out after {} ms", kConnectTimeoutMs));
        break;
      case Peer::State::kConnected:
        if (p.out_offset < p.out.size() && now_ms_ - p.last_write_progress_ms >= kWriteStallTimeoutMs)
          close_outbound(&p, fmt::format("no write progress for {} ms", kWriteStallTimeoutMs));
        break;
      case Peer::State::kIdle:
        if (should_dial(p) && now_ms_ >= p.next_dial_ms) dial(&p);
        break;
    }
  }
  std::vector<uint64_t> silent;
  for (auto& [conn, in] : inbound_)
    if (in.lingering && now_ms_ >= in.linger_deadline_ms) silent.push_back(conn);  // refused: closed quietly
  for (uint64_t conn : silent) close_inbound(conn);
  silent.clear();
  for (auto& [conn, in] : inbound_)
    if (!in.lingering && in.from == raft::kNoNode && now_ms_ - in.accepted_ms >= kHelloTimeoutMs) silent.push_back(conn);
  for (uint64_t conn : silent) {
    log_for(&unidentified_log_budget_,
            fmt::format("closed the connection from {}: no hello within {} ms", inbound_.at(conn).remote, kHelloTimeoutMs));
    close_inbound(conn);
  }
}

void PeerTransport::rearm_timer() {
  // The earliest moment check_timers() has something to do; the timerfd makes fd() readable
  // then, so the server calls poll() without polling on a clock of its own.
  uint64_t next = accept_paused_until_ms_ != 0 ? accept_paused_until_ms_ : UINT64_MAX;
  for (auto& [id, p] : peers_) {
    switch (p.state) {
      case Peer::State::kConnecting: next = std::min(next, p.connect_deadline_ms); break;
      case Peer::State::kConnected:
        if (p.out_offset < p.out.size()) next = std::min(next, p.last_write_progress_ms + kWriteStallTimeoutMs);
        break;
      case Peer::State::kIdle:
        if (should_dial(p)) next = std::min(next, p.next_dial_ms);
        break;
    }
  }
  for (auto& [conn, in] : inbound_) {
    if (in.lingering) next = std::min(next, in.linger_deadline_ms);
    else if (in.from == raft::kNoNode) next = std::min(next, in.accepted_ms + kHelloTimeoutMs);
  }
  if (next == armed_deadline_ms_) return;  // one syscall per change, not per loop turn
  armed_deadline_ms_ = next;
  itimerspec spec{};
  if (next != UINT64_MAX) {
    uint64_t delay_ms = next > now_ms_ ? next - now_ms_ : 1;
    spec.it_value.tv_sec = static_cast<time_t>(delay_ms / 1000);
    spec.it_value.tv_nsec = static_cast<long>(delay_ms % 1000) * 1000000;
  }
  ::timerfd_settime(timer_fd_, 0, &spec, nullptr);
}

// ---- what a refusal proves ----------------------------------------------------------------

bool refusal_proves_removal(const PeerRefusal& r, uint64_t own_cluster_id, raft::NodeId self,
                            std::optional<raft::Index> self_conf_index) {
  return r.refusal.reason == peer::RefusalReason::kNotMember && r.cluster_id == own_cluster_id &&
         r.refusal.from == r.peer && r.refusal.to == self && self_conf_index.has_value() &&
         r.refusal.config_index > *self_conf_index;
}

// ---- stats and logging --------------------------------------------------------------------

std::vector<PeerTransport::PeerStats> PeerTransport::stats() const {
  std::lock_guard lk(mu_);
  std::vector<PeerStats> out;
  for (const auto& [id, p] : peers_) {
    PeerStats s = p.stats;
    const std::string* addr = dial_addr_of(p);
    s.addr = addr != nullptr ? *addr : "";
    s.connected = p.state == Peer::State::kConnected;
    s.queued_bytes = p.out.size() - p.out_offset;
    out.push_back(std::move(s));
  }
  return out;
}

void PeerTransport::log_for(LogBudget* budget, const std::string& line) {
  if (!options_.log) return;
  std::string suffix;
  if (budget->lines == 0 || now_ms_ - budget->window_start_ms >= kLogWindowMs) {
    if (budget->suppressed > 0) suffix = fmt::format(" ({} similar lines suppressed)", budget->suppressed);
    budget->window_start_ms = now_ms_;
    budget->lines = 0;
    budget->suppressed = 0;
  }
  if (budget->lines >= kLogLinesPerWindow) {
    budget->suppressed++;
    return;
  }
  budget->lines++;
  options_.log("peer: " + line + suffix);
}

}  // namespace hmdb::net
