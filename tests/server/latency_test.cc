// tests/server/latency_test.cc — the latency histogram's buckets (every boundary, the
// relative width bound), its percentiles against a sorted reference on random samples (the
// seed is printed; HMDB_LATENCY_SEED=<n> replays one), weighted samples, merging, the
// Prometheus-style counts below a bound; the per-command table; SLOWLOG's truncation,
// redaction and length bound; the latency monitor's threshold and per-second samples; the
// stage clock's scaling, its readings never going backwards (with and without the TSC), and
// its fallback to clock_gettime when the TSC's rate moves.
#include "server/latency.h"
#include "server/stage_clock.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <vector>

namespace hmdb::server {
namespace {

using H = LatencyHistogram;

TEST(LatencyHistogram, BucketsTileTheValuesWithBoundedWidth) {
  EXPECT_EQ(H::kBuckets, 64u + 26u * 32u);
  EXPECT_EQ(H::bucket_low(0), 0u);
  for (size_t i = 0; i + 1 < H::kBuckets; i++) {
    const uint64_t lo = H::bucket_low(i), hi = H::bucket_high(i);
    ASSERT_LE(lo, hi) << i;
    ASSERT_EQ(hi + 1, H::bucket_low(i + 1)) << "gap or overlap after bucket " << i;
    ASSERT_EQ(H::bucket(lo), i);
    ASSERT_EQ(H::bucket(hi), i);
    if (lo < 64) {
      ASSERT_EQ(lo, hi) << "1 us resolution below 64 us";
    }
    // Width at most 1/32 of the lower bound: a percentile read as the bucket's top is
    // within 3.2 % of any value in it.
    if (lo >= 64) {
      ASSERT_LE((hi - lo + 1) * 32, lo) << i;
    }
  }
  EXPECT_EQ(H::bucket_high(H::kBuckets - 1), (uint64_t{1} << 32) - 1);
  EXPECT_EQ(H::bucket(uint64_t{1} << 32), H::kBuckets - 1);  // beyond the top: the last bucket
  EXPECT_EQ(H::bucket(UINT64_MAX), H::kBuckets - 1);
  for (int k = 0; k <= 32; k++) {
    const uint64_t p = uint64_t{1} << k;
    if (k < 32) {
      EXPECT_EQ(H::bucket_low(H::bucket(p)), p) << "a power of two starts a bucket";
    }
  }
}

TEST(LatencyHistogram, EmptyAndSingle) {
  H h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(50), 0u);
  h.record(1234);
  EXPECT_EQ(h.count(), 1u);
  EXPECT_EQ(h.max(), 1234u);
  // The bucket's top is clamped to the maximum: one sample reads back exactly.
  EXPECT_EQ(h.percentile(0.1), 1234u);
  EXPECT_EQ(h.percentile(100), 1234u);
  h.reset();
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.max(), 0u);
  // Beyond the top (71 minutes) values share the last bucket, which reads as the maximum.
  h.record(uint64_t{1} << 40);
  h.record(uint64_t{1} << 33);
  EXPECT_EQ(h.percentile(50), uint64_t{1} << 40);
  EXPECT_EQ(h.count_below(uint64_t{1} << 31), 0u);
}

uint64_t seed_from_env() {
  if (const char* s = std::getenv("HMDB_LATENCY_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}();
}

TEST(LatencyHistogram, PercentilesAgreeWithASortedReference) {
  const uint64_t seed = seed_from_env();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (HMDB_LATENCY_SEED=" + std::to_string(seed) + " replays it)");
  std::printf("latency_test seed %llu\n", static_cast<unsigned long long>(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 20; round++) {
    // Log-uniform over 0 .. ~2^(6..32) µs: every part of the bucket range.
    const int top_bits = 6 + static_cast<int>(rng() % 27);
    const size_t n = 1 + rng() % 5000;
    std::vector<uint64_t> values;
    H h;
    for (size_t i = 0; i < n; i++) {
      const double e = std::uniform_real_distribution<double>(0, top_bits)(rng);
      const uint64_t v = static_cast<uint64_t>(std::exp2(e)) - 1;
      values.push_back(v);
      h.record(v);
    }
    std::sort(values.begin(), values.end());
    EXPECT_EQ(h.count(), n);
    EXPECT_EQ(h.max(), values.back());
    uint64_t sum = 0;
    for (uint64_t v : values) sum += v;
    EXPECT_EQ(h.sum(), sum);
    for (double p : {0.1, 1.0, 25.0, 50.0, 75.0, 90.0, 99.0, 99.9, 100.0}) {
      uint64_t rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
      rank = std::clamp<uint64_t>(rank, 1, n);
      const uint64_t want = values[rank - 1];
      const uint64_t got = h.percentile(p);
      ASSERT_GE(got, want) << "p" << p << " n " << n;
      // Within the bucket's width: 1/32 of the value above 64 µs, exact below.
      ASSERT_LE(got - want, want / 32) << "p" << p << " n " << n << " want " << want;
    }
    // p50 <= p99 <= p99.9 <= max, always.
    EXPECT_LE(h.percentile(50), h.percentile(99));
    EXPECT_LE(h.percentile(99), h.percentile(99.9));
    EXPECT_LE(h.percentile(99.9), h.max());
    // Counts below a power of two are exact (powers of two are bucket boundaries).
    for (int k = 0; k <= 32; k++) {
      const uint64_t bound = uint64_t{1} << k;
      const uint64_t below = static_cast<uint64_t>(std::lower_bound(values.begin(), values.end(), bound) - values.begin());
      ASSERT_EQ(h.count_below(bound), below) << "bound 2^" << k;
    }
  }
}

TEST(LatencyHistogram, WeightedSamplesAndMerge) {
  H a, b, c;
  a.record(10, 5);
  a.record(1000, 1);
  for (int i = 0; i < 5; i++) b.record(10);
  b.record(1000);
  EXPECT_EQ(a.count(), b.count());
  EXPECT_EQ(a.sum(), b.sum());
  EXPECT_EQ(a.percentile(50), b.percentile(50));
  EXPECT_EQ(a.percentile(99), 1000u);
  c.merge(a);
  c.merge(b);
  EXPECT_EQ(c.count(), 12u);
  EXPECT_EQ(c.sum(), 2 * a.sum());
  EXPECT_EQ(c.max(), 1000u);
  EXPECT_EQ(c.count_below(16), 10u);
  EXPECT_EQ(latency_percentiles_text(a), "p50=10.000,p99=1000.000,p99.9=1000.000");
}

TEST(LatencyStats, CommandTableKnowsOnlyItsNames) {
  LatencyStats s({"GET", "set", "HMDB.REQ", "get"});
  EXPECT_EQ(s.commands(), 3u);  // GET and get are one command
  const uint32_t get = s.command_id("gEt");
  ASSERT_NE(get, LatencyStats::kNoCommand);
  EXPECT_EQ(s.command_name(get), "get");
  EXPECT_EQ(s.command_name(s.command_id("hmdb.req")), "hmdb.req");
  EXPECT_EQ(s.command_id("nosuchcommand"), LatencyStats::kNoCommand);
  EXPECT_EQ(s.command_id(std::string(100, 'x')), LatencyStats::kNoCommand);
  s.command(get).record(3);
  s.stage(Stage::kPersist).record(4);
  s.replicate(2).record(5);
  s.reset();
  EXPECT_EQ(s.command(get).count(), 0u);
  EXPECT_EQ(s.stage(Stage::kPersist).count(), 0u);
  EXPECT_TRUE(s.replicate().empty());
  for (size_t i = 0; i < kStageCount; i++) EXPECT_FALSE(stage_name(static_cast<Stage>(i)).empty());
}

// The remembered last name (command_id's shortcut) tells apart names of one size, short
// (a word for up to 8 bytes) or long, whatever came before: each lookup is the table's.
TEST(LatencyStats, RememberedNameNeverAnswersForAnother) {
  const std::vector<std::string> names = {"a", "b", "ab", "ba", "get", "set", "gex", "hget", "hset",
                                          "lpush", "rpush", "hincrby", "hincrbx", "zrangebyscore",
                                          "zrangebyscorx", "zrevrangebyscore"};
  LatencyStats s(names);
  std::vector<uint32_t> ids;
  for (const std::string& n : names) ids.push_back(s.command_id(n));
  for (size_t i = 0; i < names.size(); i++) {
    ASSERT_NE(ids[i], LatencyStats::kNoCommand) << names[i];
    EXPECT_EQ(s.command_name(ids[i]), names[i]);
  }
  // Every pair, in both orders, back to back.
  for (size_t i = 0; i < names.size(); i++) {
    for (size_t j = 0; j < names.size(); j++) {
      EXPECT_EQ(s.command_id(names[i]), ids[i]) << names[i] << " after " << names[j];
      EXPECT_EQ(s.command_id(names[j]), ids[j]) << names[j] << " after " << names[i];
    }
  }
  EXPECT_EQ(s.command_id("gey"), LatencyStats::kNoCommand);  // after a name of its size
  EXPECT_EQ(s.command_id("get"), ids[4]);
}

// record_command folds equal samples (one command, one value) and records them once a
// different one comes or the histogram is read: every sample counts, none twice.
TEST(LatencyStats, FoldedCommandSamplesAllCount) {
  LatencyStats s({"get", "set"});
  const uint32_t get = s.command_id("get"), set = s.command_id("set");
  for (int i = 0; i < 5; i++) s.record_command(set, 7);
  s.record_command(get, 7);
  s.record_command(set, 7);
  for (int i = 0; i < 3; i++) s.record_command(set, 9);
  EXPECT_EQ(s.command(set).count(), 9u);
  EXPECT_EQ(s.command(set).sum(), 6u * 7 + 3 * 9);
  EXPECT_EQ(s.command(set).max(), 9u);
  EXPECT_EQ(s.command(get).count(), 1u);
  s.record_command(set, 9);  // after a read: a new fold
  const LatencyStats& read = s;
  EXPECT_EQ(read.command(set).count(), 10u);
  s.record_command(get, 1);
  s.reset();  // a fold not yet recorded goes too
  EXPECT_EQ(s.command(get).count(), 0u);
  EXPECT_EQ(s.command(set).count(), 0u);
}

TEST(SlowLog, TruncatesRedactsAndBoundsAsRedis) {
  SlowLog log;
  log.max_len = 3;
  SlowLog off, all;
  off.slower_than_us = -1;
  all.slower_than_us = 0;
  EXPECT_FALSE(off.wants(1u << 30));
  EXPECT_TRUE(all.wants(0));
  EXPECT_TRUE(log.wants(10000));
  EXPECT_FALSE(log.wants(9999));
  std::vector<std::string> words(40);
  std::vector<std::string_view> argv;
  for (size_t i = 0; i < words.size(); i++) {
    words[i] = i == 1 ? std::string(200, 'v') : "a" + std::to_string(i);
    argv.push_back(words[i]);
  }
  log.add(argv, 100, 12345, "127.0.0.1:5000", "me");
  ASSERT_EQ(log.entries().size(), 1u);
  const SlowLog::Entry& e = log.entries().front();
  EXPECT_EQ(e.id, 0u);
  EXPECT_EQ(e.duration_us, 12345u);
  ASSERT_EQ(e.args.size(), kSlowLogEntryArgsMax);
  EXPECT_EQ(e.args[1], std::string(128, 'v') + "... (72 more bytes)");
  EXPECT_EQ(e.args.back(), "... (9 more arguments)");
  log.add({"AUTH", "user", "secret"}, 101, 1, "", "");
  EXPECT_EQ(log.entries().front().args, (std::vector<std::string>{"AUTH", "(redacted)", "(redacted)"}));
  log.add({"HELLO", "3", "AUTH", "u", "p"}, 101, 1, "", "");
  EXPECT_EQ(log.entries().front().args, (std::vector<std::string>{"HELLO", "3", "AUTH", "(redacted)", "(redacted)"}));
  log.add({"ACL", "SETUSER", "u", ">pw"}, 101, 1, "", "");
  EXPECT_EQ(log.entries().front().args, (std::vector<std::string>{"ACL", "SETUSER", "u", "(redacted)"}));
  ASSERT_EQ(log.entries().size(), 3u);  // max_len: the oldest went
  EXPECT_EQ(log.entries().front().id, 3u);
  EXPECT_EQ(log.entries().back().id, 1u);
  log.max_len = 1;
  log.trim();
  EXPECT_EQ(log.entries().size(), 1u);
  log.reset();
  EXPECT_TRUE(log.entries().empty());
}

TEST(LatencyEvents, ThresholdAndOneSamplePerSecond) {
  LatencyEvents ev;
  ev.add("event-loop", 10, 500);
  EXPECT_TRUE(ev.events().empty()) << "threshold 0: the monitor is off, as in Redis";
  ev.threshold_ms = 100;
  ev.add("event-loop", 10, 99);
  EXPECT_TRUE(ev.events().empty());
  ev.add("event-loop", 10, 150);
  ev.add("event-loop", 10, 120);  // same second: the largest stays
  ev.add("event-loop", 11, 110);
  ev.add("command", 11, 300);
  const auto& loop = ev.events().at("event-loop");
  ASSERT_EQ(loop.samples.size(), 2u);
  EXPECT_EQ(loop.samples[0].ms, 150u);
  EXPECT_EQ(loop.samples[1].ms, 110u);
  EXPECT_EQ(loop.max_ms, 150u);
  for (uint64_t t = 100; t < 100 + kLatencyEventSamplesMax + 5; t++) ev.add("command", t, 200);
  EXPECT_EQ(ev.events().at("command").samples.size(), kLatencyEventSamplesMax);
  EXPECT_NE(ev.doctor().find("event-loop"), std::string::npos);
  EXPECT_EQ(ev.reset({"nosuch"}), 0u);
  EXPECT_EQ(ev.reset({"command"}), 1u);
  EXPECT_EQ(ev.reset({}), 1u);
  EXPECT_TRUE(ev.events().empty());
}

TEST(StageClock, ScalesTicksWithoutOverflow) {
  const uint64_t mult = (uint64_t{1} << 32) / 3;  // 3 ticks per µs
  EXPECT_EQ(StageClock::scale(0, mult), 0u);
  EXPECT_EQ(StageClock::scale(3'000'000, mult), 999'999u);  // mult rounds down: never ahead
  EXPECT_EQ(StageClock::scale(uint64_t{1} << 62, uint64_t{1} << 32), uint64_t{1} << 62);  // 128-bit product
}

TEST(StageClock, WithoutTheTscReadsMonotonicAndNeverGoesBack) {
  StageClock c(false);
  const uint64_t t = monotonic_us();
  EXPECT_EQ(c.anchor(t), t);
  EXPECT_EQ(c.anchor(t - 5), t) << "an anchor behind the last turn's start";
  EXPECT_GE(c.now_us(), t);
  EXPECT_FALSE(c.reads_tsc());
}

#if defined(__x86_64__)
TEST(StageClock, TscReadingsFollowTheAnchorsAndAJumpInRateFallsBack) {
  StageClock c(true);
  // Turns, anchored to CLOCK_MONOTONIC, until the rate was measured (kStageClockCalibrationUs).
  uint64_t last = 0;
  const uint64_t start = monotonic_us();
  while (!c.reads_tsc()) {
    ASSERT_LT(monotonic_us() - start, 60'000'000u) << "no rate after a minute of anchors";
    const uint64_t a = c.anchor(monotonic_us());
    ASSERT_GE(a, last);
    for (int i = 0; i < 100; i++) {
      const uint64_t r = c.now_us();
      ASSERT_GE(r, a);
      ASSERT_GE(r, last);
      last = r;
    }
  }
  EXPECT_GT(c.ticks_per_us(), 0.0);
  // A CLOCK_MONOTONIC 10 s ahead of what the TSC counted since: the rate "moved" far past
  // kStageClockRateDriftMax, so the clock distrusts the TSC from now on, and still does
  // not go back.
  const uint64_t before = c.now_us();
  const uint64_t jumped = c.anchor(monotonic_us() + 10'000'000);
  EXPECT_FALSE(c.reads_tsc());
  EXPECT_GE(jumped, before);
  EXPECT_EQ(c.anchor(monotonic_us()), jumped) << "never behind the last turn's start";
}
#endif

}  // namespace
}  // namespace hmdb::server
