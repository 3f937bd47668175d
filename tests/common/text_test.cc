// tests/common/text_test.cc — the shared text rules: Redis' integer syntax (signed), plain
// digits (unsigned), ASCII case (hmdb/text.h), and host:port (common/text.h).
#include "common/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace hmdb {
namespace {

TEST(Text, SignedIntegersFollowRedisString2ll) {
  struct Case {
    const char* text;
    int64_t value;
  };
  for (Case c : {Case{"0", 0}, Case{"7", 7}, Case{"-7", -7}, Case{"1234567890", 1234567890},
                 Case{"9223372036854775807", INT64_MAX}, Case{"-9223372036854775808", INT64_MIN}}) {
    int64_t v = 42;
    EXPECT_TRUE(parse_int64(c.text, &v)) << c.text;
    EXPECT_EQ(v, c.value) << c.text;
  }
  for (const char* bad : {"", "-", "+1", " 1", "1 ", "01", "-0", "00", "1x", "x1", "1.0", "1e3", "0x10",
                          "9223372036854775808", "-9223372036854775809", "99999999999999999999999", "--1",
                          "\xd9\xa1" /* Arabic-Indic digit one */}) {
    int64_t v = 42;
    EXPECT_FALSE(parse_int64(bad, &v)) << "'" << bad << "'";
    EXPECT_EQ(v, 42) << "a refused text leaves the output alone: '" << bad << "'";
  }
  int64_t v = 0;
  EXPECT_FALSE(parse_int64(std::string("1\0", 2), &v)) << "an embedded NUL is not the end of the number";
}

TEST(Text, UnsignedIntegersAreDigitsOnly) {
  uint64_t v = 42;
  EXPECT_TRUE(parse_uint64("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_uint64("00000000000000000042", &v)) << "file names pad to 20 digits";
  EXPECT_EQ(v, 42u);
  EXPECT_TRUE(parse_uint64("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1x", "18446744073709551616", "99999999999999999999",
                          "184467440737095516150"}) {
    v = 42;
    EXPECT_FALSE(parse_uint64(bad, &v)) << "'" << bad << "'";
    EXPECT_EQ(v, 42u) << "'" << bad << "'";
  }
}

TEST(Text, CaseIsAsciiOnly) {
  EXPECT_TRUE(iequals("withscores", "WITHSCORES"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("get", "gets"));
  EXPECT_FALSE(iequals("a", "b"));
  EXPECT_FALSE(iequals("[", "{")) << "only letters fold: '[' + 32 is '{'";
  EXPECT_FALSE(iequals("\xe9", "\xc9")) << "no locale: Latin-1 e-acute and E-acute differ";
  EXPECT_EQ(uppercase("Set-Ex_1\xe9"), "SET-EX_1\xe9");
  EXPECT_EQ(lowercase("CLUSTER AddLearner"), "cluster addlearner");
  EXPECT_EQ(ascii_upper('z'), 'Z');
  EXPECT_EQ(ascii_lower('@'), '@');
}

TEST(HostPort, AcceptsIpv4BracketedIpv6AndNames) {
  struct Case {
    const char* text;
    const char* host;
    uint16_t port;
    const char* canonical;
  };
  for (Case c : {Case{"10.0.0.1:7379", "10.0.0.1", 7379, "10.0.0.1:7379"},
                 Case{"[::1]:7379", "::1", 7379, "[::1]:7379"},
                 Case{"[2001:db8::7]:1", "2001:db8::7", 1, "[2001:db8::7]:1"},
                 Case{"[::ffff:127.0.0.1]:65535", "::ffff:127.0.0.1", 65535, "[::ffff:127.0.0.1]:65535"},
                 Case{"localhost:7379", "localhost", 7379, "localhost:7379"},
                 Case{"db-1.internal:7379", "db-1.internal", 7379, "db-1.internal:7379"},
                 Case{"node_2.svc.cluster.local.:80", "node_2.svc.cluster.local.", 80, "node_2.svc.cluster.local.:80"},
                 Case{"10.0.0.1:007379", "10.0.0.1", 7379, "10.0.0.1:7379"}}) {
    HostPort hp;
    std::string error;
    ASSERT_TRUE(parse_host_port(c.text, &hp, &error)) << c.text << ": " << error;
    EXPECT_EQ(hp.host, c.host) << c.text;
    EXPECT_EQ(hp.port, c.port) << c.text;
    EXPECT_EQ(hp.to_string(), c.canonical) << c.text;
    HostPort again;
    ASSERT_TRUE(parse_host_port(hp.to_string(), &again, &error)) << "the canonical form parses back: " << c.text;
    EXPECT_EQ(again, hp);
  }
}

TEST(HostPort, RefusesWithAReasonThatNamesTheText) {
  struct Case {
    const char* text;
    const char* reason;  // a part of the error text
  };
  for (Case c : {Case{"", "is not HOST:PORT"}, Case{"7379", "is not HOST:PORT"}, Case{"localhost", "is not HOST:PORT"},
                 Case{":7379", "the host is empty"}, Case{"::1:7379", "needs brackets"},
                 Case{"fe80::1:80", "needs brackets"}, Case{"[::1]", "is not [IPv6]:PORT"},
                 Case{"[::1]7379", "is not [IPv6]:PORT"}, Case{"[::1:7379", "is not [IPv6]:PORT"},
                 Case{"[10.0.0.1]:7379", "is not an IPv6 address"}, Case{"[db-1]:7379", "is not an IPv6 address"},
                 Case{"10.0.0.256:7379", "is not an IPv4 address"}, Case{"10.0.0:7379", "is not an IPv4 address"},
                 Case{"1.2.3.4.5:7379", "is not an IPv4 address"}, Case{"db 1:7379", "is not an IPv4 address, an"},
                 Case{"db/1:7379", "is not an IPv4 address, an"}, Case{"-db:7379", "starts with '-'"},
                 Case{"db..internal:7379", "a label is empty"}, Case{".db:7379", "a label is empty"},
                 Case{"10.0.0.1:", "1..65535"}, Case{"10.0.0.1:0", "1..65535"}, Case{"10.0.0.1:65536", "1..65535"},
                 Case{"10.0.0.1:-1", "1..65535"}, Case{"10.0.0.1:+1", "1..65535"}, Case{"10.0.0.1: 1", "1..65535"},
                 Case{"10.0.0.1:1 ", "1..65535"}, Case{"10.0.0.1:7a", "1..65535"},
                 Case{"10.0.0.1:99999999999999999999", "1..65535"}, Case{"[::1]:0", "1..65535"}}) {
    HostPort hp{"unchanged", 1};
    std::string error;
    EXPECT_FALSE(parse_host_port(c.text, &hp, &error)) << "'" << c.text << "'";
    EXPECT_NE(error.find(c.reason), std::string::npos) << "'" << c.text << "': " << error;
    EXPECT_NE(error.find("'" + std::string(c.text) + "'"), std::string::npos) << "names the text: " << error;
    EXPECT_EQ(hp, (HostPort{"unchanged", 1})) << c.text;
  }
  HostPort hp;
  std::string error;
  const std::string long_name(kMaxHostNameBytes + 1, 'a');
  EXPECT_FALSE(parse_host_port(long_name + ":1", &hp, &error));
  EXPECT_TRUE(parse_host_port(long_name.substr(1) + ":1", &hp, &error)) << error;
}

TEST(HostPort, HostAloneForBind) {
  std::string host, error;
  for (auto [text, want] : {std::pair{"127.0.0.1", "127.0.0.1"}, std::pair{"0.0.0.0", "0.0.0.0"}, std::pair{"::1", "::1"},
                            std::pair{"[::1]", "::1"}, std::pair{"::", "::"}, std::pair{"localhost", "localhost"}}) {
    ASSERT_TRUE(parse_host(text, &host, &error)) << text << ": " << error;
    EXPECT_EQ(host, want);
  }
  for (const char* bad : {"", "1.2.3", "::1::2", "[::1", "a b", "127.0.0.1:7379", "[::1]:7379"}) {
    EXPECT_FALSE(parse_host(bad, &host, &error)) << "'" << bad << "'";
    EXPECT_FALSE(error.empty()) << "'" << bad << "'";
  }
  EXPECT_EQ(format_host_port("::1", 7379), "[::1]:7379");
  EXPECT_EQ(format_host_port("db-1", 7379), "db-1:7379");
}

}  // namespace
}  // namespace hmdb
