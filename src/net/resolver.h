// net/resolver.h — resolves host names on a thread of its own, so that the event loop never
// waits for DNS: getaddrinfo can block for a name server's whole timeout (seconds), and a
// leader blocked that long sends no heartbeats. The peer transport asks here for a peer
// whose address is a name (numeric addresses never come here).
//
// Usage, all from the owning thread: ask(host, port) returns at once; when answers are in,
// fd() (an eventfd, to put in an epoll set) is readable and take() hands them over. Asking
// again for a host:port that is already being resolved does not start a second lookup.
// Each answer follows common/address.h's rule (first IPv4 address, else first IPv6).
//
// The lookup thread starts at the first ask() (a cluster with numeric addresses never has
// one). Destroying the Resolver never waits for DNS: a lookup in flight finishes on its
// detached thread and its answer is dropped.
//
// Thread-safety: ask(), take() and fd() belong to one thread; the lookup thread shares only
// the queue, under a mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/address.h"
#include "common/status.h"

namespace hmdb::net {

// Lookups queued or in flight at once; ask() refuses more. The transport asks at most once
// per peer (kMaxPeers) at a time.
inline constexpr size_t kMaxPendingLookups = 1024;

class Resolver {
 public:
  struct Answer {
    std::string host;
    uint16_t port = 0;
    Status status;          // ok, or why the name did not resolve
    SocketAddress address;  // when ok
  };
  // How a name is looked up: common/address.h's resolve() (tests inject their own).
  using Lookup = std::function<Status(const std::string& host, uint16_t port, SocketAddress* out)>;

  // Fails only if an eventfd cannot be created (out of fds): then fd() is -1 and every
  // ask() is refused.
  explicit Resolver(Lookup lookup = &resolve);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  int fd() const;
  // Starts resolving host:port unless it already is. False (nothing asked) when
  // kMaxPendingLookups are pending or the lookup thread cannot start.
  bool ask(const std::string& host, uint16_t port);
  // The answers that arrived since the last call (and makes fd() unreadable until more do).
  std::vector<Answer> take();

 private:
  struct Shared;
  static void lookup_loop(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace hmdb::net
