// tests/common/address_test.cc — common/address.h: numeric addresses without DNS, the one
// rule for names (IPv4 first), listeners on IPv4 and IPv6 loopback (skipped, saying so,
// where the machine has no IPv6 loopback), and how an address prints.
#include "common/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hmdb {
namespace {

// True if this machine can bind ::1 (containers often have no IPv6 loopback).
bool have_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Connects (blocking) to what listen_tcp bound; true when the connection is accepted.
bool connects(const SocketAddress& to) {
  const int fd = ::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool ok = ::connect(fd, to.get(), to.length) == 0;
  ::close(fd);
  return ok;
}

TEST(Address, NumericAddressesNeedNoDns) {
  SocketAddress a;
  ASSERT_TRUE(numeric_address("10.0.0.1", 7379, &a));
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 7379);
  EXPECT_EQ(a.to_string(), "10.0.0.1:7379");
  ASSERT_TRUE(numeric_address("2001:db8::7", 1, &a));
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.to_string(), "[2001:db8::7]:1");
  EXPECT_FALSE(numeric_address("localhost", 1, &a)) << "a name is never resolved here";
  EXPECT_FALSE(numeric_address("[::1]", 1, &a)) << "brackets belong to host:port text, not to a host";
  ASSERT_TRUE(numeric_address("0.0.0.0", 1, &a));
  EXPECT_TRUE(a.is_wildcard());
  ASSERT_TRUE(numeric_address("::", 1, &a));
  EXPECT_TRUE(a.is_wildcard());
  ASSERT_TRUE(numeric_address("127.0.0.1", 1, &a));
  EXPECT_FALSE(a.is_wildcard());
}

TEST(Address, LocalhostResolvesToItsIpv4AddressFirst) {
  SocketAddress a;
  Status s = resolve("localhost", 7379, &a);
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_EQ(a.family(), AF_INET) << "the rule: the first IPv4 address, else the first IPv6 one";
  EXPECT_EQ(a.to_string(), "127.0.0.1:7379");
}

TEST(Address, ListensOnIpv4LoopbackAndAnEphemeralPort) {
  int fd = -1;
  SocketAddress bound;
  Status s = listen_tcp("127.0.0.1", 0, 16, &fd, &bound);
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_NE(bound.port(), 0);
  EXPECT_EQ(bound.to_string(), "127.0.0.1:" + std::to_string(bound.port()));
  EXPECT_TRUE(connects(bound));

  int second = -1;
  SocketAddress ignored;
  s = listen_tcp("127.0.0.1", bound.port(), 16, &second, &ignored);
  EXPECT_FALSE(s) << "the port is taken";
  EXPECT_NE(s.to_string().find("cannot listen on 127.0.0.1:" + std::to_string(bound.port())), std::string::npos)
      << s.to_string();
  ::close(fd);
}

TEST(Address, ListensOnANameAtTheAddressItResolvesTo) {
  int fd = -1;
  SocketAddress bound;
  Status s = listen_tcp("localhost", 0, 16, &fd, &bound);
  ASSERT_TRUE(s) << s.to_string();
  SocketAddress expected;
  ASSERT_TRUE(resolve("localhost", bound.port(), &expected));
  EXPECT_EQ(bound.to_string(), expected.to_string());
  EXPECT_TRUE(connects(expected));
  ::close(fd);
}

TEST(Address, ListensOnIpv6Loopback) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "this machine has no IPv6 loopback (::1 cannot be bound)";
  int fd = -1;
  SocketAddress bound;
  Status s = listen_tcp("::1", 0, 16, &fd, &bound);
  ASSERT_TRUE(s) << s.to_string();
  EXPECT_EQ(bound.family(), AF_INET6);
  EXPECT_EQ(bound.to_string(), "[::1]:" + std::to_string(bound.port()));
  EXPECT_TRUE(connects(bound));
  ::close(fd);
}

}  // namespace
}  // namespace hmdb
