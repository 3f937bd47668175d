// tests/net/reply_writer_test.cc — the reply writers of hmdb/reply.h: each typed writer's
// exact bytes in RESP2 and RESP3 (what Redis 7's addReply* functions send a client of that
// protocol, networking.c), and every reply they build round-trips through the client side's
// scanner (net/resp_reply.h): complete at its full length, incomplete at every cut.
#include "hmdb/reply.h"

#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <functional>
#include <limits>
#include <string>

#include "net/resp_reply.h"

namespace hmdb {
namespace {

std::string render(Protocol p, const std::function<void(Reply&)>& write) {
  std::string out;
  Reply r(&out, p);
  write(r);
  return out;
}

void expect_scans_whole(const std::string& reply) {
  SCOPED_TRACE("reply: " + reply);
  net::ScannedReply s;
  ASSERT_EQ(net::scan_reply(reply.data(), reply.size(), &s), net::ScanResult::kComplete);
  EXPECT_EQ(s.length, reply.size());
  for (size_t cut = 0; cut < reply.size(); ++cut)
    ASSERT_EQ(net::scan_reply(reply.data(), cut, &s), net::ScanResult::kIncomplete) << "cut at " << cut;
}

struct Case {
  const char* name;
  std::function<void(Reply&)> write;
  std::string resp2, resp3;
};

TEST(ReplyWriter, EachWriterInBothProtocols) {
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<Case> cases = {
      {"ok", [](Reply& r) { r.ok(); }, "+OK\r\n", "+OK\r\n"},
      {"status", [](Reply& r) { r.status("PONG"); }, "+PONG\r\n", "+PONG\r\n"},
      {"error", [](Reply& r) { r.error("ERR a\r\nb"); }, "-ERR a  b\r\n", "-ERR a  b\r\n"},
      {"integer", [](Reply& r) { r.integer(-9223372036854775807 - 1); }, ":-9223372036854775808\r\n",
       ":-9223372036854775808\r\n"},
      {"bulk", [](Reply& r) { r.bulk("a\r\nb"); }, "$4\r\na\r\nb\r\n", "$4\r\na\r\nb\r\n"},
      {"empty bulk", [](Reply& r) { r.bulk(""); }, "$0\r\n\r\n", "$0\r\n\r\n"},
      {"null", [](Reply& r) { r.null(); }, "$-1\r\n", "_\r\n"},
      {"null array", [](Reply& r) { r.null_array(); }, "*-1\r\n", "_\r\n"},
      {"array", [](Reply& r) { r.array(2); r.integer(1); r.null(); }, "*2\r\n:1\r\n$-1\r\n", "*2\r\n:1\r\n_\r\n"},
      {"map", [](Reply& r) { r.map(2); r.bulk("a"); r.integer(1); r.bulk("b"); r.bulk("x"); },
       "*4\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\nx\r\n", "%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n$1\r\nx\r\n"},
      {"empty map", [](Reply& r) { r.map(0); }, "*0\r\n", "%0\r\n"},
      {"set", [](Reply& r) { r.set(2); r.bulk("a"); r.bulk("b"); }, "*2\r\n$1\r\na\r\n$1\r\nb\r\n",
       "~2\r\n$1\r\na\r\n$1\r\nb\r\n"},
      {"empty set", [](Reply& r) { r.set(0); }, "*0\r\n", "~0\r\n"},
      {"double", [](Reply& r) { r.double_value(1.5); }, "$3\r\n1.5\r\n", ",1.5\r\n"},
      {"double integral", [](Reply& r) { r.double_value(1000); }, "$4\r\n1000\r\n", ",1000\r\n"},
      {"double negative", [](Reply& r) { r.double_value(-0.25); }, "$5\r\n-0.25\r\n", ",-0.25\r\n"},
      {"double shortest", [](Reply& r) { r.double_value(0.1); }, "$3\r\n0.1\r\n", ",0.1\r\n"},
      {"double exponent", [](Reply& r) { r.double_value(1e300); }, "$6\r\n1e+300\r\n", ",1e+300\r\n"},
      {"double inf", [inf](Reply& r) { r.double_value(inf); }, "$3\r\ninf\r\n", ",inf\r\n"},
      {"double -inf", [inf](Reply& r) { r.double_value(-inf); }, "$4\r\n-inf\r\n", ",-inf\r\n"},
      {"true", [](Reply& r) { r.boolean(true); }, ":1\r\n", "#t\r\n"},
      {"false", [](Reply& r) { r.boolean(false); }, ":0\r\n", "#f\r\n"},
      {"big number", [](Reply& r) { r.big_number("-123456789012345678901234567890"); },
       "$31\r\n-123456789012345678901234567890\r\n", "(-123456789012345678901234567890\r\n"},
      {"verbatim", [](Reply& r) { r.verbatim("a:1\r\nb\n"); }, "$7\r\na:1\r\nb\n\r\n", "=11\r\ntxt:a:1\r\nb\n\r\n"},
      {"verbatim short format", [](Reply& r) { r.verbatim("x", "md"); }, "$1\r\nx\r\n", "=5\r\nmd :x\r\n"},
      {"nested", [](Reply& r) {
         r.map(1);
         r.bulk("k");
         r.array(2);
         r.set(1);
         r.double_value(2.5);
         r.boolean(true);
       },
       "*2\r\n$1\r\nk\r\n*2\r\n*1\r\n$3\r\n2.5\r\n:1\r\n", "%1\r\n$1\r\nk\r\n*2\r\n~1\r\n,2.5\r\n#t\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string two = render(Protocol::kResp2, c.write);
    const std::string three = render(Protocol::kResp3, c.write);
    EXPECT_EQ(two, c.resp2);
    EXPECT_EQ(three, c.resp3);
    expect_scans_whole(two);
    expect_scans_whole(three);
  }
}

TEST(ReplyWriter, ProtocolIsKeptAndDefaultsToResp2) {
  std::string out;
  EXPECT_EQ(Reply(&out).protocol(), Protocol::kResp2);
  EXPECT_FALSE(Reply(&out).resp3());
  EXPECT_TRUE(Reply(&out, Protocol::kResp3).resp3());
}

// Every double the writer prints reads back as the same double, in both protocols (the
// shortest round-trip form; Redis 7.2 does the same, 7.0 printed %.17g).
TEST(ReplyWriter, DoublesReadBackExactly) {
  const double values[] = {0.0, -0.0, 1.1, 1.0 / 3, 2.5e-310, 1.7976931348623157e308, -42, 123456789.125};
  for (double d : values) {
    const std::string two = render(Protocol::kResp2, [d](Reply& r) { r.double_value(d); });
    const std::string three = render(Protocol::kResp3, [d](Reply& r) { r.double_value(d); });
    const std::string text = three.substr(1, three.size() - 3);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), d) << text;
    EXPECT_EQ(two, "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n");
    expect_scans_whole(two);
    expect_scans_whole(three);
  }
}

// double_text's integer path writes what std::to_chars(double) writes: every integer of
// up to 15 digits near the bounds (the path's and the exponent form's), with and without
// trailing zeros, powers of ten, both signs, zero and -0, and 200,000 seeded random
// integers and doubles (HMDB_REPLY_SEED=N repeats a run).
TEST(ReplyWriter, IntegralDoublesAreWrittenAsToCharsWritesThem) {
  auto expect_same = [](double d) {
    char want[64], got[64];
    const auto w = std::to_chars(want, want + sizeof want, d);
    const size_t n = Reply::double_text(d, got, sizeof got);
    ASSERT_EQ(std::string_view(got, n), std::string_view(want, static_cast<size_t>(w.ptr - want))) << d;
  };
  std::vector<double> values = {0.0, -0.0, 1, -1, 9, 10, 11, 100, 101, 1000, 10000, 99999, 100000, 100001, 1e6,
                                1234567, 1e14, 999999999999999, -999999999999999, 1e15, -1e15, 1e15 + 1,
                                1e15 - 10, 9007199254740992.0, 9007199254740993.0, 1e16, 0.5, -0.5, 123456789.125};
  for (double p = 1; p < 1e20; p *= 10)
    for (double k : {p - 1, p, p + 1, 3 * p, 7 * p + 1}) {
      values.push_back(k);
      values.push_back(-k);
    }
  for (double d : values) ASSERT_NO_FATAL_FAILURE(expect_same(d));
  const char* env = std::getenv("HMDB_REPLY_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 10) : 16;
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 100000; i++) {
    const int digits = 1 + static_cast<int>(rng() % 16);
    int64_t v = static_cast<int64_t>(rng() % 10'000'000'000'000'000ULL);
    for (int k = digits; k < 16; k++) v /= 10;
    if (rng() % 4 == 0) v -= v % 10;  // a trailing zero
    ASSERT_NO_FATAL_FAILURE(expect_same(static_cast<double>(rng() % 2 ? v : -v)));
    ASSERT_NO_FATAL_FAILURE(expect_same(static_cast<double>(v) / static_cast<double>(1 + rng() % 1000)));
  }
}

}  // namespace
}  // namespace hmdb
