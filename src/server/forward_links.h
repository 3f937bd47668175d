// server/forward_links.h — the sockets of a node's forwarding links: client connections to
// the leader's client port that carry plain clients' commands. What goes on a link, and
// what each reply answers, is core::Forwarder's business (core/forwarder.h); this is the
// I/O: dial, write, read whole replies, notice failures, and tell the forwarder.
//
// A link is dialed to the member's client address (--bind/--port, --initial-cluster, CLUSTER
// ADDLEARNER). A host name is resolved on net::Resolver's thread, never in the loop. A dial
// that has not completed within kForwardConnectTimeoutMs is a failed link. A link fails when
// the peer closes it, on a socket error, or when its replies break RESP (then the forwarder
// is told link_broken and decides what its clients are told).
//
// TLS (--tls-replication): a link dials the leader's TLS port (the client address members
// advertise then) and presents this node's certificate, checking the leader's against the
// cluster's CA (net/tls.h); the handshake happens inside the first writes and reads.
//
// Event loop integration, as net::PeerTransport: fd() is an epoll fd of its own; add it
// level-triggered to the loop's epoll and call poll() when it is readable; call flush()
// once per loop turn after the forwarder sent, and tick() every few ms (connect timeouts,
// and dials that failed at once, reported outside open()).
//
// Thread-safety: none; the loop thread owns it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "common/text.h"
#include "core/forwarder.h"
#include "net/resolver.h"
#include "net/tls.h"

namespace hmdb::server {

// A dial to the leader's client port that has not completed in this time fails.
inline constexpr uint64_t kForwardConnectTimeoutMs = 1000;

class ForwardLinks {
 public:
  ForwardLinks() = default;
  ~ForwardLinks();
  ForwardLinks(const ForwardLinks&) = delete;
  ForwardLinks& operator=(const ForwardLinks&) = delete;

  Status init();
  int fd() const { return epoll_fd_; }
  // Links dialed from now on speak TLS with this context (null: plaintext).
  void set_tls(std::shared_ptr<net::TlsContext> tls) { tls_ = std::move(tls); }

  // Dials `to` as link `id`. Never calls the forwarder: the outcome comes through poll()
  // or tick().
  void open(uint64_t id, const HostPort& to, uint64_t now_ms);
  // Queues bytes on link id (written by flush(), or as soon as it is connected).
  void send(uint64_t id, std::string_view bytes);
  // Closes link id; nothing more is reported of it.
  void close(uint64_t id);

  void poll(core::Forwarder& forwarder, uint64_t now_ms);
  void flush(core::Forwarder& forwarder);
  void tick(core::Forwarder& forwarder, uint64_t now_ms);
  size_t size() const { return links_.size(); }

 private:
  enum class State : uint8_t { kResolving, kConnecting, kConnected, kFailed };
  struct Link {
    State state = State::kResolving;
    int fd = -1;
    net::TlsConnection tls;  // freed before fd is closed
    HostPort to;
    uint64_t connect_deadline_ms = 0;
    std::string out;
    size_t out_sent = 0;
    std::string in;
    std::string failure;  // kFailed: why (reported by tick)
  };

  void dial(uint64_t id, Link& l, const SocketAddress& address, uint64_t now_ms);
  void on_resolved(uint64_t now_ms);
  // Writes what it can; false (and why) if the socket failed.
  bool write_out(Link& l, std::string* why);
  // Reads what arrived and hands each complete reply to the forwarder.
  void read_replies(core::Forwarder& forwarder, uint64_t id);
  // The link failed: closed here, and the forwarder told.
  void fail(core::Forwarder& forwarder, uint64_t id, const std::string& why);

  int epoll_fd_ = -1;
  std::shared_ptr<net::TlsContext> tls_;
  std::unique_ptr<net::Resolver> resolver_;  // started for the first host name
  std::map<uint64_t, Link> links_;
  std::map<std::string, std::string> failing_;  // address -> the last failure logged
};

}  // namespace hmdb::server
