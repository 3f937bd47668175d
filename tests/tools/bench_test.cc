// tests/tools/bench_test.cc — the pieces of `hmdb bench` that decide what it reports: the
// log-bucketed latency histogram (bucket arithmetic, percentiles against an exact sort) and
// the RESP reply scanner (every type, every split point, malformed input), plus options.
#include "tools/bench.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace hmdb::tools {
namespace {

// ---------------------------------------------------------------------------------------
// Histogram

TEST(LatencyHistogram, BucketsAreContiguousAndCoverTheRange) {
  using H = LatencyHistogram;
  EXPECT_EQ(H::bucket_lowest(0), 0u);
  for (size_t b = 0; b + 1 < H::kBucketCount; ++b) {
    ASSERT_LE(H::bucket_lowest(b), H::bucket_highest(b)) << "bucket " << b;
    ASSERT_EQ(H::bucket_highest(b) + 1, H::bucket_lowest(b + 1)) << "bucket " << b;
    ASSERT_EQ(H::bucket_of(H::bucket_lowest(b)), b);
    ASSERT_EQ(H::bucket_of(H::bucket_highest(b)), b);
  }
  EXPECT_EQ(H::bucket_highest(H::kBucketCount - 1), H::kMaxValue);
  EXPECT_EQ(H::bucket_of(UINT64_MAX), H::kBucketCount - 1);  // clamped, not out of range
}

TEST(LatencyHistogram, BucketWidthIsWithinOnePercentOfItsValues) {
  using H = LatencyHistogram;
  for (size_t b = H::kExactBelow; b < H::kBucketCount; ++b) {
    const double width = static_cast<double>(H::bucket_highest(b) - H::bucket_lowest(b) + 1);
    ASSERT_LE(width / static_cast<double>(H::bucket_lowest(b)), 1.0 / 128) << "bucket " << b;
  }
}

TEST(LatencyHistogram, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.value_at_percentile(50), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LatencyHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.record(v);
  EXPECT_EQ(h.count(), 100u);
  EXPECT_EQ(h.value_at_percentile(50), 50u);
  EXPECT_EQ(h.value_at_percentile(99), 99u);
  EXPECT_EQ(h.value_at_percentile(100), 100u);
  EXPECT_EQ(h.value_at_percentile(0), 1u);
  EXPECT_EQ(h.min(), 1u);
  EXPECT_EQ(h.max(), 100u);
  EXPECT_DOUBLE_EQ(h.mean(), 50.5);
}

TEST(LatencyHistogram, PercentilesMatchAnExactSortWithinBucketPrecision) {
  const uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  // Log-uniform values from 1 us to 1 s, like latencies.
  std::uniform_real_distribution<double> exponent(3.0, 9.0);
  std::vector<uint64_t> values;
  LatencyHistogram a, b;
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = static_cast<uint64_t>(std::pow(10.0, exponent(rng)));
    values.push_back(v);
    (i % 2 ? a : b).record(v);
  }
  a.merge(b);  // merging two halves must equal recording everything in one
  std::sort(values.begin(), values.end());
  ASSERT_EQ(a.count(), values.size());
  EXPECT_EQ(a.max(), values.back());
  EXPECT_EQ(a.min(), values.front());
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 100.0}) {
    size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * values.size()));
    rank = std::clamp<size_t>(rank, 1, values.size());
    const uint64_t exact = values[rank - 1];
    const uint64_t reported = a.value_at_percentile(p);
    EXPECT_GE(reported, exact) << "p" << p;  // the bucket's upper bound, never below
    EXPECT_LE(static_cast<double>(reported), static_cast<double>(exact) * (1 + 1.0 / 128) + 1)
        << "p" << p;
  }
}

TEST(LatencyHistogram, RecordNEqualsRepeatedRecord) {
  LatencyHistogram a, b;
  a.record_n(12345, 7);
  for (int i = 0; i < 7; ++i) b.record(12345);
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.value_at_percentile(50), b.value_at_percentile(50));
  EXPECT_EQ(a.mean(), b.mean());
  a.reset();
  EXPECT_EQ(a.count(), 0u);
}

// ---------------------------------------------------------------------------------------
// RESP reply scanner

struct Scanned {
  ScanResult result;
  size_t length;
  bool is_error;
  std::string error;
};

Scanned scan(const std::string& bytes) {
  ScannedReply r;
  const ScanResult s = scan_reply(bytes.data(), bytes.size(), &r);
  return {s, r.length, r.is_error,
          r.error_text ? std::string(r.error_text, r.error_length) : std::string()};
}

// Every complete reply: it scans to its full length, and every strict prefix is incomplete
// (never malformed, never complete), so a reply split across reads is never misread.
void expect_complete_reply(const std::string& reply, bool is_error = false) {
  SCOPED_TRACE("reply: " + reply);
  const Scanned s = scan(reply);
  ASSERT_EQ(s.result, ScanResult::kComplete);
  EXPECT_EQ(s.length, reply.size());
  EXPECT_EQ(s.is_error, is_error);
  for (size_t cut = 0; cut < reply.size(); ++cut) {
    ASSERT_EQ(scan(reply.substr(0, cut)).result, ScanResult::kIncomplete) << "cut at " << cut;
  }
  // Followed by another reply: only the first is consumed.
  const Scanned two = scan(reply + "+OK\r\n");
  ASSERT_EQ(two.result, ScanResult::kComplete);
  EXPECT_EQ(two.length, reply.size());
}

TEST(ScanReply, Resp2Types) {
  expect_complete_reply("+OK\r\n");
  expect_complete_reply("+\r\n");
  expect_complete_reply(":0\r\n");
  expect_complete_reply(":-42\r\n");
  expect_complete_reply(":9223372036854775807\r\n");
  expect_complete_reply("$3\r\nabc\r\n");
  expect_complete_reply("$0\r\n\r\n");
  expect_complete_reply("$-1\r\n");
  expect_complete_reply("$4\r\na\r\nb\r\n");  // binary-safe: CRLF inside a bulk
  expect_complete_reply("*0\r\n");
  expect_complete_reply("*-1\r\n");
  expect_complete_reply("*3\r\n:1\r\n$2\r\nhi\r\n$-1\r\n");
  expect_complete_reply("*2\r\n*2\r\n+a\r\n+b\r\n*0\r\n");
}

TEST(ScanReply, ErrorsAreFlaggedWithTheirText) {
  expect_complete_reply("-ERR unknown command 'FOO'\r\n", /*is_error=*/true);
  expect_complete_reply("-WRONGTYPE Operation against a key\r\n", true);
  const Scanned s = scan("-ERR out of range\r\n");
  EXPECT_EQ(s.error, "ERR out of range");
  // An error inside an array is an element, not a failed request.
  expect_complete_reply("*2\r\n-ERR inner\r\n:1\r\n", false);
  // RESP3 blob error.
  expect_complete_reply("!9\r\nERR oops!\r\n", true);
  EXPECT_EQ(scan("!9\r\nERR oops!\r\n").error, "ERR oops!");
}

TEST(ScanReply, Resp3Types) {
  expect_complete_reply("_\r\n");
  expect_complete_reply(",3.14\r\n");
  expect_complete_reply("#t\r\n");
  expect_complete_reply("(12345678901234567890\r\n");
  expect_complete_reply("=8\r\ntxt:abcd\r\n");
  expect_complete_reply("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n");
  expect_complete_reply("~2\r\n+a\r\n+b\r\n");
  expect_complete_reply(">2\r\n+message\r\n+x\r\n");
  // An attribute annotates the value after it; together they are one reply.
  expect_complete_reply("|1\r\n+key\r\n+value\r\n:7\r\n");
  expect_complete_reply("*1\r\n|1\r\n+k\r\n+v\r\n:7\r\n");
}

TEST(ScanReply, MalformedInputIsRejected) {
  for (const std::string bad :
       {"?x\r\n", "+OK\n", ":12a\r\n", ":\r\n", ":99999999999999999999\r\n", "$-2\r\n",
        "$3\r\nabcd\r\n", "$x\r\n", "*-2\r\n", "%-1\r\n", "#x\r\n", "_x\r\n",
        "$536870913\r\n"}) {
    EXPECT_EQ(scan(bad).result, ScanResult::kMalformed) << bad;
  }
}

TEST(ScanReply, DepthAndLineLengthAreBounded) {
  std::string deep;
  for (int i = 0; i <= kMaxReplyDepth; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  EXPECT_EQ(scan(deep).result, ScanResult::kMalformed);
  std::string ok_depth;
  for (int i = 0; i < kMaxReplyDepth; ++i) ok_depth += "*1\r\n";
  ok_depth += ":1\r\n";
  EXPECT_EQ(scan(ok_depth).result, ScanResult::kComplete);

  EXPECT_EQ(scan("+" + std::string(1000, 'a')).result, ScanResult::kIncomplete);
  EXPECT_EQ(scan("+" + std::string(kMaxReplyLineBytes + 10, 'a')).result, ScanResult::kMalformed);
}

TEST(ScanReply, ManyRepliesInOneBuffer) {
  const std::string replies = "+OK\r\n:1\r\n$1\r\nx\r\n-ERR e\r\n*1\r\n$-1\r\n";
  size_t offset = 0, count = 0, errors = 0;
  while (offset < replies.size()) {
    ScannedReply r;
    ASSERT_EQ(scan_reply(replies.data() + offset, replies.size() - offset, &r),
              ScanResult::kComplete);
    offset += r.length;
    ++count;
    errors += r.is_error;
  }
  EXPECT_EQ(count, 5u);
  EXPECT_EQ(errors, 1u);
}

// ---------------------------------------------------------------------------------------
// Options

bool parse(std::vector<std::string> args, BenchOptions* o, std::string* error) {
  args.insert(args.begin(), "bench");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return parse_bench_options(static_cast<int>(argv.size()), argv.data(), o, error);
}

TEST(BenchOptions, DefaultsAndValues) {
  BenchOptions o;
  std::string error;
  ASSERT_TRUE(parse({}, &o, &error)) << error;
  EXPECT_EQ(o.clients, 50);
  EXPECT_EQ(o.pipeline, 1);
  EXPECT_EQ(o.keyspace, 1000000u);
  EXPECT_EQ(o.value_size, 3);
  EXPECT_EQ(o.tests_count, 6);

  ASSERT_TRUE(parse({"--port", "7390", "--clients", "10", "--pipeline", "32", "--tests",
                     "get,mset", "--seconds", "1.5", "--csv"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.port, 7390);
  EXPECT_EQ(o.clients, 10);
  EXPECT_EQ(o.pipeline, 32);
  ASSERT_EQ(o.tests_count, 2);
  EXPECT_EQ(o.tests[0], TestKind::kGet);
  EXPECT_EQ(o.tests[1], TestKind::kMset);
  EXPECT_DOUBLE_EQ(o.seconds, 1.5);
  EXPECT_TRUE(o.csv);
}

TEST(BenchOptions, BoundsAndTyposAreRejected) {
  BenchOptions o;
  std::string error;
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {"--clients", "0"},
           {"--clients", std::to_string(kMaxClients + 1)},
           {"--pipeline", std::to_string(kMaxPipeline + 1)},
           {"--port", "70000"},
           {"--port"},
           {"--tests", "set,nope"},
           {"--tests", "set,set"},
           {"--seconds", "-1"},
           {"--value-size", "12x"},
           {"--frobnicate"},
           {"--wait-replicas", std::to_string(kMaxWaitReplicas + 1)},
           {"--nodes", "127.0.0.1"},
           {"--nodes", "127.0.0.1:0"},
           {"--nodes", ","},
           {"--nodes", "a:1", "--sentinel", "b:2"},
           {"--nodes", "a:1", "--threads", "2"},
           {"--request-timeout-ms", "0"}}) {
    EXPECT_FALSE(parse(bad, &o, &error)) << bad[0];
    EXPECT_FALSE(error.empty());
  }
}

TEST(BenchOptions, WaitAndFollowModeOptions) {
  BenchOptions o;
  std::string error;
  ASSERT_TRUE(parse({}, &o, &error)) << error;
  EXPECT_EQ(o.wait_replicas, 0);
  EXPECT_FALSE(o.follow());
  ASSERT_TRUE(parse({"--wait-replicas", "1", "--nodes", "127.0.0.1:7001,,localhost:7002",
                     "--request-timeout-ms", "250"},
                    &o, &error))
      << error;
  EXPECT_EQ(o.wait_replicas, 1);
  ASSERT_EQ(o.nodes_count, 2);
  EXPECT_EQ(o.nodes[0], "127.0.0.1:7001");
  EXPECT_EQ(o.nodes[1], "localhost:7002");
  EXPECT_EQ(o.request_timeout_ms, 250);
  EXPECT_TRUE(o.follow());
  ASSERT_TRUE(parse({"--sentinel", "127.0.0.1:26379", "--master-name", "m"}, &o, &error))
      << error;
  EXPECT_EQ(o.sentinels_count, 1);
  EXPECT_EQ(o.master_name, "m");
  EXPECT_TRUE(o.follow());
}

TEST(Redirects, HostPortAndMovedAreParsed) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(split_host_port("127.0.0.1:7379", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 7379);
  ASSERT_TRUE(split_host_port("::1:80", &host, &port));  // the last colon splits
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 80);
  for (const char* bad : {"", ":1", "h:", "h", "h:65536", "h:0", "h:1x", "h:123456"})
    EXPECT_FALSE(split_host_port(bad, &host, &port)) << bad;

  ASSERT_TRUE(parse_moved("MOVED 0 127.0.0.1:7381", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 7381);
  ASSERT_TRUE(parse_moved("MOVED 3999 localhost:6380\r\n", &host, &port));
  EXPECT_EQ(host, "localhost");
  EXPECT_EQ(port, 6380);
  for (const char* bad : {"MOVED", "MOVED 0", "MOVED 0 nohost", "ASK 0 h:1",
                          "CLUSTERDOWN no leader known; retry", "ERR MOVED 0 h:1"})
    EXPECT_FALSE(parse_moved(bad, &host, &port)) << bad;
}

}  // namespace
}  // namespace hmdb::tools
