// common/address.h — from a host (common/text.h) to sockets: resolving it, listening on it,
// and naming the other end of a connection. Used by every listener (clients in server/
// node.cc, peers in net/peer_transport.cc, metrics) and every dialer (the peer transport,
// hmdb snapshot; hmdb cluster tries every address getaddrinfo gives).
//
// Which address a name stands for. A name may resolve to several (localhost is often
// 127.0.0.1 and ::1). One rule picks one, the same for the listener and for every dialer:
// the first IPv4 address, else the first IPv6 address. So `--bind localhost` and a peer
// dialling `localhost:P` meet, and so do redis-cli and hiredis-based clients, which try
// IPv4 first.
//
// resolve() may block for the resolver's whole timeout (seconds) when a name server does
// not answer: call it at startup and in tools, never in the event loop. The loop uses
// numeric_address(), which never does DNS, and net/resolver.h for names.
//
// Thread-safety: the functions are thread-safe; a SocketAddress is a value.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>

#include "common/status.h"

namespace hmdb {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;  // 0: empty

  static SocketAddress from(const sockaddr* addr, socklen_t length);
  bool empty() const { return length == 0; }
  int family() const { return storage.ss_family; }  // AF_INET or AF_INET6
  uint16_t port() const;
  void set_port(uint16_t port);
  // 0.0.0.0 or ::.
  bool is_wildcard() const;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* get() { return reinterpret_cast<sockaddr*>(&storage); }
  // "10.0.0.1:7379" or "[::1]:7379" (common/text.h's syntax).
  std::string to_string() const;
  // The address alone, numeric, without brackets: "10.0.0.1", "::1".
  std::string host() const;
};

// host an IPv4 or IPv6 address (no brackets): true and *out set. A name: false, no DNS.
bool numeric_address(const std::string& host, uint16_t port, SocketAddress* out);

// The address host stands for (numeric, or a name by the rule above). May block on DNS.
// Errors: invalid_argument naming the host and getaddrinfo's reason.
Status resolve(const std::string& host, uint16_t port, SocketAddress* out);

// A non-blocking, close-on-exec TCP listener on host:port (port 0: an ephemeral one), with
// SO_REUSEADDR so a restarted node can bind while old connections sit in TIME_WAIT.
// *bound is the address actually bound (its port is the chosen one). On error nothing is
// left open; the Status names host:port. The host is resolved first (may block on DNS).
Status listen_tcp(const std::string& host, uint16_t port, int backlog, int* fd, SocketAddress* bound);
// The same on an address already resolved (never blocks on DNS).
Status listen_tcp(const SocketAddress& address, int backlog, int* fd, SocketAddress* bound);

}  // namespace hmdb
