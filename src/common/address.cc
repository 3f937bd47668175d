// common/address.cc — resolving, listening, printing socket addresses; see address.h.
#include "common/address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace hmdb {

SocketAddress SocketAddress::from(const sockaddr* addr, socklen_t length) {
  SocketAddress a;
  if (length > sizeof a.storage) length = sizeof a.storage;
  std::memcpy(&a.storage, addr, length);
  a.length = length;
  return a;
}

uint16_t SocketAddress::port() const {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_port);
  return 0;
}

void SocketAddress::set_port(uint16_t port) {
  if (family() == AF_INET) reinterpret_cast<sockaddr_in*>(&storage)->sin_port = htons(port);
  if (family() == AF_INET6) reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port = htons(port);
}

bool SocketAddress::is_wildcard() const {
  if (family() == AF_INET) return reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr.s_addr == htonl(INADDR_ANY);
  if (family() == AF_INET6) {
    const in6_addr& a = reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr;
    return std::memcmp(&a, &in6addr_any, sizeof a) == 0;
  }
  return false;
}

std::string SocketAddress::host() const {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (family() == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage)->sin_addr, ip, sizeof ip);
  } else if (family() == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage)->sin6_addr, ip, sizeof ip);
  }
  return ip;
}

std::string SocketAddress::to_string() const { return format_host_port(host(), port()); }

bool numeric_address(const std::string& host, uint16_t port, SocketAddress* out) {
  SocketAddress a;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
  if (::inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    a.length = sizeof(sockaddr_in);
    *out = a;
    return true;
  }
  a = SocketAddress{};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    a.length = sizeof(sockaddr_in6);
    *out = a;
    return true;
  }
  return false;
}

Status resolve(const std::string& host, uint16_t port, SocketAddress* out) {
  if (numeric_address(host, port, out)) return Status::ok();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return Status::invalid_argument("cannot resolve " + host + ": " +
                                    (rc == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(rc)));
  }
  const addrinfo* pick = nullptr;
  for (const addrinfo* a = found; a != nullptr && pick == nullptr; a = a->ai_next)
    if (a->ai_family == AF_INET) pick = a;
  for (const addrinfo* a = found; a != nullptr && pick == nullptr; a = a->ai_next)
    if (a->ai_family == AF_INET6) pick = a;
  if (pick != nullptr) *out = SocketAddress::from(pick->ai_addr, pick->ai_addrlen);
  ::freeaddrinfo(found);
  if (pick == nullptr) return Status::invalid_argument("cannot resolve " + host + ": no IPv4 or IPv6 address");
  return Status::ok();
}

Status listen_tcp(const std::string& host, uint16_t port, int backlog, int* fd, SocketAddress* bound) {
  SocketAddress addr;
  Status s = resolve(host, port, &addr);
  if (!s) return s;
  s = listen_tcp(addr, backlog, fd, bound);
  // Name the host as it was given (a name, not only the address it resolved to).
  if (!s && !numeric_address(host, port, &addr))
    return Status::io_error(s.message() + " (" + format_host_port(host, port) + ")");
  return s;
}

Status listen_tcp(const SocketAddress& addr, int backlog, int* fd_out, SocketAddress* bound) {
  const std::string where = addr.to_string();
  const int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::io_error("cannot listen on " + where + ": socket: " + std::strerror(errno));
  auto fail = [&](const char* step) {
    Status e = Status::io_error("cannot listen on " + where + ": " + step + std::strerror(errno));
    ::close(fd);
    return e;
  };
  const int yes = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) != 0) return fail("SO_REUSEADDR: ");
  if (::bind(fd, addr.get(), addr.length) != 0) return fail("");
  if (::listen(fd, backlog) != 0) return fail("listen: ");
  SocketAddress actual;
  actual.length = sizeof actual.storage;
  if (::getsockname(fd, actual.get(), &actual.length) != 0) return fail("getsockname: ");
  *fd_out = fd;
  *bound = actual;
  return Status::ok();
}

}  // namespace hmdb
