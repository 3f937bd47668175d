// tests/tools/bench_test.cc — the pieces of `hmdb-bench` that decide what it reports: the
// log-bucketed latency histogram (bucket arithmetic, percentiles against an exact sort) and
// its options. (Its RESP reply scanner is net::scan_reply: tests/net/resp_reply_test.cc.)
#include "tools/bench.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
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

TEST(BenchOptions, PasswordFromTheFlagOrTheEnvironment) {
  BenchOptions o;
  std::string error;
  ::unsetenv("HMDB_PASSWORD");
  ASSERT_TRUE(parse({}, &o, &error)) << error;
  EXPECT_EQ(o.password, "");
  ASSERT_TRUE(parse({"--password", "pw 1"}, &o, &error)) << error;
  EXPECT_EQ(o.password, "pw 1");
  ::setenv("HMDB_PASSWORD", "from-env", 1);
  ASSERT_TRUE(parse({}, &o, &error)) << error;
  EXPECT_EQ(o.password, "from-env");
  ASSERT_TRUE(parse({"-a", "flag"}, &o, &error)) << error;  // the flag overrides the variable
  EXPECT_EQ(o.password, "flag");
  ::unsetenv("HMDB_PASSWORD");
  EXPECT_FALSE(parse({"--password"}, &o, &error));
  EXPECT_EQ(error, "--password needs a password");
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
