// tools/bench.h — `hmdb-bench`: the project's own RESP load generator, a program of its own
// (bench/CMakeLists.txt); no server binary links it.
//
// Why it exists: on a 2-core machine redis-benchmark itself is the bottleneck at pipeline 1,
// so it cannot tell how fast a server is. This client is cheap per request: one epoll thread
// (or a few), request bytes encoded once per test and only the key digits patched per
// request, no allocation per request, one clock read per write()/read() batch, and latency
// recorded into a fixed log-bucketed histogram.
//
// Replies are counted with net::scan_reply (net/resp_reply.h). The pieces a test needs (the
// histogram, option parsing) are declared here; the connection loop lives in bench.cc.
// Thread-safety: none of these types are shared between threads; each load thread owns its
// own and they are merged after the run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hmdb::tools {

// Entry point of `hmdb-bench` (bench_main.cc). argv[0] is the command name and is skipped;
// returns the process exit status (0 ok, 1 run failed, 2 bad usage). `--help` lists the
// options.
int bench_main(int argc, char** argv);

// ---------------------------------------------------------------------------------------
// Latency histogram, HdrHistogram-style: exact below kExactBelow, then every power of two
// is split into kSubBuckets linear buckets, so any recorded value is known to within
// 1/kSubBuckets (< 0.8 %). Fixed size, no allocation after construction.
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr uint64_t kSubBuckets = uint64_t{1} << kSubBucketBits;  // 128
  static constexpr uint64_t kExactBelow = 2 * kSubBuckets;                 // 256
  // Largest value kept apart; bigger ones are clamped to it (2^40 ns is over 18 minutes,
  // far beyond any run's time bound).
  static constexpr int kMaxMagnitude = 40;
  static constexpr uint64_t kMaxValue = (uint64_t{1} << kMaxMagnitude) - 1;
  static constexpr size_t kBucketCount =
      kExactBelow + (kMaxMagnitude - (kSubBucketBits + 1)) * kSubBuckets;

  void record(uint64_t value);
  // Records `count` samples of the same value (a whole read() batch shares one timestamp).
  void record_n(uint64_t value, uint64_t count);
  void merge(const LatencyHistogram& other);
  void reset();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }
  // The smallest recorded-bucket upper bound v such that at least `percentile` % of the
  // samples are <= v (never above max()). percentile in [0, 100]. 0 when empty.
  uint64_t value_at_percentile(double percentile) const;

  // Bucket arithmetic, public for tests.
  static size_t bucket_of(uint64_t value);
  static uint64_t bucket_lowest(size_t bucket);
  static uint64_t bucket_highest(size_t bucket);

 private:
  uint64_t buckets_[kBucketCount] = {};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

// ---------------------------------------------------------------------------------------
// Options, parsed from the command line; exposed for tests.

inline constexpr int kMaxClients = 4096;           // connections in one run
inline constexpr int kMaxPipeline = 1024;          // requests in flight per connection
inline constexpr int kMaxThreads = 8;              // load threads
inline constexpr int64_t kMaxValueBytes = 1 << 20;  // --value-size
inline constexpr uint64_t kMaxKeyspace = 1000000000000ull;  // fits the 12 key digits
inline constexpr int kKeyDigits = 12;              // key:000000001234, like redis-benchmark
inline constexpr int kMsetKeys = 10;               // keys per MSET, like redis-benchmark
// Request bytes buffered per connection (pipeline x request size) must fit this bound.
inline constexpr size_t kMaxConnectionBufferBytes = 8u << 20;
// --wait-replicas: largest replica count one may ask WAIT for.
inline constexpr int kMaxWaitReplicas = 64;
// --nodes / --sentinel: most addresses a connection may move between (the given ones plus
// those learned from -MOVED replies or from Sentinel).
inline constexpr int kMaxNodes = 16;
// --request-timeout-ms bounds (follow mode: a request unanswered this long is abandoned).
inline constexpr int64_t kMaxRequestTimeoutMs = 60000;

enum class TestKind { kPing, kSet, kGet, kIncr, kLpush, kHset, kMset };
inline constexpr int kTestKindCount = 7;

struct BenchOptions {
  std::string host = "127.0.0.1";
  std::string password;  // --password / HMDB_PASSWORD: AUTH on every connection
  // --tls: every connection speaks TLS, checking the server's certificate against --cacert
  // (not its host name, as redis-cli does not without --sni) and presenting --cert/--key
  // if given (a server with tls-auth-clients yes). redis-cli's and redis-benchmark's flags.
  bool tls = false;
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  int port = 6379;
  int clients = 50;
  int pipeline = 1;
  int threads = 1;
  int64_t requests = 100000;  // per test, when seconds == 0
  double seconds = 0;         // per test; when > 0 it replaces requests
  uint64_t keyspace = 1000000;
  int64_t value_size = 3;
  uint64_t seed = 1;
  bool csv = false;
  bool quiet = false;
  bool sequential = false;  // keys 0, 1, 2, ... instead of random ones
  // --wait-replicas N: every request is followed by `WAIT N 0` on the same connection (sent
  // with it); the request counts as done when WAIT replies, so latency covers both. 0: off.
  int wait_replicas = 0;
  // Follow mode (--nodes or --sentinel): connections survive a dead or demoted server. A
  // lost connection, a -MOVED, -CLUSTERDOWN or -READONLY reply, or a request unanswered for
  // request_timeout_ms drops the connection (its requests in flight are "unknown") and it
  // reconnects: to the node a -MOVED names, else to the master Sentinel names, else to the
  // next node of the list. One load thread; stdin takes "mark <CLOCK_MONOTONIC ns>" lines
  // and stdout answers "first <mark> <sent ns> <done ns> <host:port>" for the earliest
  // success sent at or after the mark (how failover is timed); stdin EOF ends the run.
  std::string nodes[kMaxNodes];  // host:port, as given by --nodes
  int nodes_count = 0;
  std::string sentinels[kMaxNodes];  // host:port, as given by --sentinel
  int sentinels_count = 0;
  std::string master_name = "mymaster";
  int64_t request_timeout_ms = 1000;
  bool follow() const { return nodes_count > 0 || sentinels_count > 0; }
  int tests_count = 0;
  TestKind tests[kTestKindCount] = {};
};

// Parses argv[1..argc). On error returns false with a message in *error.
bool parse_bench_options(int argc, char** argv, BenchOptions* options, std::string* error);

// Splits "host:port" (port in 1..65535). Exposed for tests.
bool split_host_port(std::string_view text, std::string* host, int* port);

// Parses the text of a redirect error "MOVED <slot> <host:port>" (without the leading '-').
// Returns false when the text is not a MOVED redirect. Exposed for tests.
bool parse_moved(std::string_view error_text, std::string* host, int* port);

}  // namespace hmdb::tools
