// tools/bench.cc — `hmdb-bench`: a cheap RESP load generator (see bench.h for why).
//
// Shape of a run: for every test, open `clients` connections, give each load thread a slice
// of them, and let every connection keep `pipeline` requests in flight until the request
// budget (or the time budget) is used up. The request bytes of a test are encoded once:
// each connection holds `pipeline` copies of the request back to back and, before a write,
// patches only the random key digits of the copies it is about to send, then writes them
// with one write(). Replies are counted with a scanner (no value tree), one read() serves
// every reply it brought, and one clock read per read()/write() stamps the whole batch.
//
// With --tls a connection's reads and writes go through its OpenSSL connection (net/tls.h):
// the handshake is done, and checked with a first command, at connect time so that it is
// not measured and a refused certificate ends the run before it starts; any epoll event of
// a TLS connection drives both directions (a TLS write may wait to read and a read to
// write).

#include "tools/bench.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/assert.h"
#include "net/resp_reply.h"
#include "net/tls.h"

namespace hmdb::tools {

// ======================================================================================
// Latency histogram

size_t LatencyHistogram::bucket_of(uint64_t value) {
  if (value > kMaxValue) value = kMaxValue;
  if (value < kExactBelow) return static_cast<size_t>(value);
  const int magnitude = 63 - __builtin_clzll(value);  // >= kSubBucketBits + 1
  const int shift = magnitude - kSubBucketBits;
  const uint64_t top = value >> shift;  // in [kSubBuckets, 2 * kSubBuckets)
  const size_t bucket = kExactBelow + (magnitude - (kSubBucketBits + 1)) * kSubBuckets +
                        (top - kSubBuckets);
  HMDB_ASSERT(bucket < kBucketCount, "value %llu -> bucket %zu",
              static_cast<unsigned long long>(value), bucket);
  return bucket;
}

uint64_t LatencyHistogram::bucket_lowest(size_t bucket) {
  HMDB_ASSERT(bucket < kBucketCount, "bucket %zu", bucket);
  if (bucket < kExactBelow) return bucket;
  const size_t k = bucket - kExactBelow;
  const int magnitude = static_cast<int>(k / kSubBuckets) + kSubBucketBits + 1;
  const uint64_t top = k % kSubBuckets + kSubBuckets;
  return top << (magnitude - kSubBucketBits);
}

uint64_t LatencyHistogram::bucket_highest(size_t bucket) {
  if (bucket < kExactBelow) return bucket;
  const size_t k = bucket - kExactBelow;
  const int magnitude = static_cast<int>(k / kSubBuckets) + kSubBucketBits + 1;
  return bucket_lowest(bucket) + (uint64_t{1} << (magnitude - kSubBucketBits)) - 1;
}

void LatencyHistogram::record(uint64_t value) { record_n(value, 1); }

void LatencyHistogram::record_n(uint64_t value, uint64_t n) {
  if (n == 0) return;
  if (value > kMaxValue) value = kMaxValue;
  buckets_[bucket_of(value)] += n;
  count_ += n;
  sum_ += value * n;
  if (value < min_) min_ = value;
  if (value > max_) max_ = value;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBucketCount; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::reset() { *this = LatencyHistogram(); }

uint64_t LatencyHistogram::value_at_percentile(double percentile) const {
  if (count_ == 0) return 0;
  percentile = std::clamp(percentile, 0.0, 100.0);
  uint64_t target = static_cast<uint64_t>(std::ceil(percentile / 100.0 * static_cast<double>(count_)));
  target = std::clamp<uint64_t>(target, 1, count_);
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= target) return std::min(bucket_highest(i), max_);
  }
  HMDB_ASSERT(false, "histogram count %llu does not match its buckets",
              static_cast<unsigned long long>(count_));
  return max_;
}

// ======================================================================================
// Options

namespace {

struct TestInfo {
  TestKind kind;
  const char* name;  // as typed after --tests, lower case
  const char* label; // as printed
};

constexpr TestInfo kTestInfo[kTestKindCount] = {
    {TestKind::kPing, "ping", "PING"},    {TestKind::kSet, "set", "SET"},
    {TestKind::kGet, "get", "GET"},       {TestKind::kIncr, "incr", "INCR"},
    {TestKind::kLpush, "lpush", "LPUSH"}, {TestKind::kHset, "hset", "HSET"},
    {TestKind::kMset, "mset", "MSET"},
};

const TestInfo& info_of(TestKind kind) {
  for (const TestInfo& info : kTestInfo)
    if (info.kind == kind) return info;
  HMDB_ASSERT(false, "unknown test kind %d", static_cast<int>(kind));
  return kTestInfo[0];
}

constexpr const char* kUsage =
    "usage: hmdb-bench [options]\n"
    "  --host H          server address (default 127.0.0.1)\n"
    "  --password PW     AUTH with it on every connection (default: $HMDB_PASSWORD; docs/security.md)\n"
    "  --tls             speak TLS (the server's TLS port), checking its certificate against --cacert\n"
    "  --cacert FILE     PEM CA certificate the server's certificate must chain to (needed by --tls)\n"
    "  --cert FILE       PEM client certificate to present (a server with tls-auth-clients yes)\n"
    "  --key FILE        PEM private key of --cert\n"
    "  --port P          server port (default 6379)\n"
    "  --clients N       connections (default 50, at most 4096)\n"
    "  --pipeline N      requests in flight per connection (default 1, at most 1024)\n"
    "  --threads N       load threads (default 1, at most 8)\n"
    "  --requests N      requests per test (default 100000)\n"
    "  --seconds S       run each test for S seconds instead of a request count\n"
    "  --keyspace N      random keys drawn from [0, N) (default 1000000)\n"
    "  --tests LIST      comma list of ping,set,get,incr,lpush,hset,mset\n"
    "                    (default set,get,incr,lpush,hset,mset)\n"
    "  --value-size B    value bytes (default 3, like redis-benchmark)\n"
    "  --seed N          PRNG seed for the keys (default 1)\n"
    "  --sequential      keys 0, 1, 2, ... (mod keyspace) across all connections instead of\n"
    "                    random ones: fills a keyspace exactly (e.g. to build a state size)\n"
    "  --csv             one CSV line per test (header first)\n"
    "  --quiet           no progress lines on stderr\n"
    "  --wait-replicas N send `WAIT N 0` after every request (Redis: durable on N replicas);\n"
    "                    a request is done when WAIT replies, latency covers both\n"
    "Follow mode (failover measurements; one thread, connections survive server deaths):\n"
    "  --nodes LIST      host:port,... of a cluster: connections start spread over the\n"
    "                    nodes, follow -MOVED (each says CLIENT NO-FORWARD ON, so a follower\n"
    "                    redirects rather than forwards), and move to the next node on a lost\n"
    "                    connection, -CLUSTERDOWN or a timeout\n"
    "  --sentinel LIST   host:port,... of Redis Sentinels: connect to the master they name,\n"
    "                    ask again on a lost connection or -READONLY\n"
    "  --master-name N   Sentinel master name (default mymaster)\n"
    "  --request-timeout-ms T  abandon a request unanswered for T ms (default 1000)\n"
    "  In follow mode stdin takes lines `mark <CLOCK_MONOTONIC ns>`; for each, stdout gets\n"
    "  `first <mark> <sent ns> <done ns> <host:port>`: the earliest success sent at or after\n"
    "  the mark. EOF on stdin ends the run.\n"
    "Latency is send-to-reply per request; any error reply is counted and reported.\n";

bool parse_int_option(const char* text, int64_t low, int64_t high, int64_t* out) {
  if (text == nullptr) return false;
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < low || value > high) return false;
  *out = value;
  return true;
}

}  // namespace

bool parse_bench_options(int argc, char** argv, BenchOptions* options, std::string* error) {
  BenchOptions o;
  if (const char* env = std::getenv("HMDB_PASSWORD")) o.password = env;  // --password overrides it
  bool tests_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    const char* value = i + 1 < argc ? argv[i + 1] : nullptr;
    int64_t number = 0;
    auto integer = [&](int64_t low, int64_t high) {
      if (!parse_int_option(value, low, high, &number)) {
        *error = std::string(arg) + " needs an integer in [" + std::to_string(low) + ", " +
                 std::to_string(high) + "]";
        return false;
      }
      ++i;
      return true;
    };
    if (arg == "--password" || arg == "-a") {
      if (value == nullptr) {
        *error = std::string(arg) + " needs a password";
        return false;
      }
      o.password = value;
      ++i;
    } else if (arg == "--tls") {
      o.tls = true;
    } else if (arg == "--cacert" || arg == "--cert" || arg == "--key") {
      if (value == nullptr || *value == '\0') {
        *error = std::string(arg) + " needs a file";
        return false;
      }
      (arg == "--cacert" ? o.tls_ca_file : arg == "--cert" ? o.tls_cert_file : o.tls_key_file) = value;
      ++i;
    } else if (arg == "--host") {
      if (value == nullptr || *value == '\0') {
        *error = "--host needs an address";
        return false;
      }
      o.host = value;
      ++i;
    } else if (arg == "--port" || arg == "-p") {
      if (!integer(1, 65535)) return false;
      o.port = static_cast<int>(number);
    } else if (arg == "--clients" || arg == "-c") {
      if (!integer(1, kMaxClients)) return false;
      o.clients = static_cast<int>(number);
    } else if (arg == "--pipeline" || arg == "-P") {
      if (!integer(1, kMaxPipeline)) return false;
      o.pipeline = static_cast<int>(number);
    } else if (arg == "--threads") {
      if (!integer(1, kMaxThreads)) return false;
      o.threads = static_cast<int>(number);
    } else if (arg == "--requests" || arg == "-n") {
      if (!integer(1, int64_t{1} << 40)) return false;
      o.requests = number;
    } else if (arg == "--seconds") {
      char* end = nullptr;
      const double s = value ? std::strtod(value, &end) : 0;
      if (value == nullptr || end == value || *end != '\0' || !(s > 0) || s > 86400) {
        *error = "--seconds needs a number in (0, 86400]";
        return false;
      }
      o.seconds = s;
      ++i;
    } else if (arg == "--keyspace" || arg == "-r") {
      if (!integer(1, static_cast<int64_t>(kMaxKeyspace))) return false;
      o.keyspace = static_cast<uint64_t>(number);
    } else if (arg == "--value-size" || arg == "-d") {
      if (!integer(0, kMaxValueBytes)) return false;
      o.value_size = number;
    } else if (arg == "--seed") {
      if (!integer(0, INT64_MAX)) return false;
      o.seed = static_cast<uint64_t>(number);
    } else if (arg == "--tests" || arg == "-t") {
      if (value == nullptr) {
        *error = "--tests needs a list";
        return false;
      }
      ++i;
      tests_given = true;
      o.tests_count = 0;
      std::string_view list = value;
      while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view name = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (name.empty()) continue;
        const TestInfo* found = nullptr;
        for (const TestInfo& info : kTestInfo)
          if (name == info.name) found = &info;
        if (found == nullptr) {
          *error = "unknown test '" + std::string(name) + "'";
          return false;
        }
        if (o.tests_count == kTestKindCount) {
          *error = "too many tests (each may appear once)";
          return false;
        }
        for (int t = 0; t < o.tests_count; ++t) {
          if (o.tests[t] == found->kind) {
            *error = "test '" + std::string(name) + "' given twice";
            return false;
          }
        }
        o.tests[o.tests_count++] = found->kind;
      }
      if (o.tests_count == 0) {
        *error = "--tests list is empty";
        return false;
      }
    } else if (arg == "--wait-replicas") {
      if (!integer(0, kMaxWaitReplicas)) return false;
      o.wait_replicas = static_cast<int>(number);
    } else if (arg == "--nodes" || arg == "--sentinel") {
      const bool sentinel = arg == "--sentinel";
      std::string* out = sentinel ? o.sentinels : o.nodes;
      int* count = sentinel ? &o.sentinels_count : &o.nodes_count;
      if (value == nullptr) {
        *error = std::string(arg) + " needs a list of host:port";
        return false;
      }
      ++i;
      *count = 0;
      std::string_view list = value;
      while (!list.empty()) {
        const size_t comma = list.find(',');
        const std::string_view item = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        if (item.empty()) continue;
        std::string host;
        int port = 0;
        if (!split_host_port(item, &host, &port)) {
          *error = std::string(arg) + ": '" + std::string(item) + "' is not host:port";
          return false;
        }
        if (*count == kMaxNodes) {
          *error = std::string(arg) + ": more than " + std::to_string(kMaxNodes) + " addresses";
          return false;
        }
        out[(*count)++] = std::string(item);
      }
      if (*count == 0) {
        *error = std::string(arg) + " list is empty";
        return false;
      }
    } else if (arg == "--master-name") {
      if (value == nullptr || *value == '\0') {
        *error = "--master-name needs a name";
        return false;
      }
      o.master_name = value;
      ++i;
    } else if (arg == "--request-timeout-ms") {
      if (!integer(1, kMaxRequestTimeoutMs)) return false;
      o.request_timeout_ms = number;
    } else if (arg == "--sequential") {
      o.sequential = true;
    } else if (arg == "--csv") {
      o.csv = true;
    } else if (arg == "--quiet" || arg == "-q") {
      o.quiet = true;
    } else {
      *error = "unknown option '" + std::string(arg) + "'";
      return false;
    }
  }
  if (!tests_given) {
    const TestKind defaults[] = {TestKind::kSet,   TestKind::kGet,  TestKind::kIncr,
                                 TestKind::kLpush, TestKind::kHset, TestKind::kMset};
    for (TestKind kind : defaults) o.tests[o.tests_count++] = kind;
  }
  if (o.nodes_count > 0 && o.sentinels_count > 0) {
    *error = "--nodes and --sentinel are exclusive";
    return false;
  }
  if (o.follow() && o.threads > 1) {
    *error = "follow mode (--nodes, --sentinel) runs one load thread";
    return false;
  }
  if (!o.tls && (!o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_key_file.empty())) {
    *error = "--cacert, --cert and --key need --tls";
    return false;
  }
  if (o.tls && o.tls_ca_file.empty()) {
    *error = "--tls needs --cacert (the CA that signed the server's certificate)";
    return false;
  }
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    *error = "--cert and --key go together";
    return false;
  }
  if (o.tls && o.sentinels_count > 0) {
    *error = "--tls with --sentinel is not supported (Sentinel is asked in plaintext)";
    return false;
  }
  if (o.threads > o.clients) o.threads = o.clients;
  *options = o;
  return true;
}

bool split_host_port(std::string_view text, std::string* host, int* port) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return false;
  const std::string_view digits = text.substr(colon + 1);
  if (digits.size() > 5) return false;
  int value = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    value = value * 10 + (ch - '0');
  }
  if (value < 1 || value > 65535) return false;
  *host = std::string(text.substr(0, colon));
  *port = value;
  return true;
}

bool parse_moved(std::string_view error_text, std::string* host, int* port) {
  constexpr std::string_view kPrefix = "MOVED ";
  if (error_text.substr(0, kPrefix.size()) != kPrefix) return false;
  std::string_view rest = error_text.substr(kPrefix.size());
  const size_t space = rest.find(' ');  // after the slot number
  if (space == std::string_view::npos) return false;
  rest = rest.substr(space + 1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\r' || rest.back() == '\n'))
    rest.remove_suffix(1);
  return split_host_port(rest, host, port);
}

// ======================================================================================
// Requests: encoded once per test; only key digits change per request.

namespace {

// Most random fields in one request (MSET: one per key).
constexpr int kMaxKeySlots = kMsetKeys;

struct RequestTemplate {
  std::string bytes;
  int replies = 1;  // replies per request: 2 with --wait-replicas (the command's, WAIT's)
  int slot_count = 0;
  size_t slots[kMaxKeySlots] = {};  // offsets of the kKeyDigits digit runs
};

class TemplateBuilder {
 public:
  explicit TemplateBuilder(RequestTemplate* t) : t_(t) {}
  void array(int n) { t_->bytes += "*" + std::to_string(n) + "\r\n"; }
  void bulk(std::string_view s) {
    t_->bytes += "$" + std::to_string(s.size()) + "\r\n";
    t_->bytes.append(s);
    t_->bytes += "\r\n";
  }
  // A bulk "<prefix><12 digits>" whose digits are patched per request.
  void random_key(std::string_view prefix) {
    HMDB_ASSERT(t_->slot_count < kMaxKeySlots, "more than %d random keys", kMaxKeySlots);
    t_->bytes += "$" + std::to_string(prefix.size() + kKeyDigits) + "\r\n";
    t_->bytes.append(prefix);
    t_->slots[t_->slot_count++] = t_->bytes.size();
    t_->bytes.append(kKeyDigits, '0');
    t_->bytes += "\r\n";
  }

 private:
  RequestTemplate* t_;
};

RequestTemplate build_template(TestKind kind, int64_t value_size, int wait_replicas) {
  RequestTemplate t;
  TemplateBuilder b(&t);
  const std::string value(static_cast<size_t>(value_size), 'x');  // like redis-benchmark
  switch (kind) {
    case TestKind::kPing:
      b.array(1);
      b.bulk("PING");
      break;
    case TestKind::kSet:
      b.array(3);
      b.bulk("SET");
      b.random_key("key:");
      b.bulk(value);
      break;
    case TestKind::kGet:
      b.array(2);
      b.bulk("GET");
      b.random_key("key:");
      break;
    case TestKind::kIncr:
      b.array(2);
      b.bulk("INCR");
      b.random_key("counter:");
      break;
    case TestKind::kLpush:
      b.array(3);
      b.bulk("LPUSH");
      b.random_key("mylist:");
      b.bulk(value);
      break;
    case TestKind::kHset:
      b.array(4);
      b.bulk("HSET");
      b.random_key("myhash:");
      b.random_key("element:");
      b.bulk(value);
      break;
    case TestKind::kMset:
      b.array(1 + 2 * kMsetKeys);
      b.bulk("MSET");
      for (int k = 0; k < kMsetKeys; ++k) {
        b.random_key("key:");
        b.bulk(value);
      }
      break;
  }
  if (wait_replicas > 0) {  // sent with the request: Redis blocks this client until acked
    b.array(3);
    b.bulk("WAIT");
    b.bulk(std::to_string(wait_replicas));
    b.bulk("0");
    t.replies = 2;
  }
  return t;
}

// xorshift64*: fast, and good enough to spread keys; seeded per connection by splitmix64.
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

struct Rng {
  uint64_t state;
  uint64_t next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 0x2545F4914F6CDD1Dull;
  }
};

void write_digits(char* at, uint64_t value) {
  for (int i = kKeyDigits - 1; i >= 0; --i) {
    at[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
}

uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// ======================================================================================
// Connections and load threads

// Bytes asked for per read(); also the initial reply buffer size.
constexpr size_t kReadChunkBytes = 64 * 1024;
// The reply buffer grows (rarely: only for replies bigger than it) up to this bound.
constexpr size_t kMaxReplyBufferBytes = static_cast<size_t>(net::kMaxReplyBulkBytes) + 64 * 1024;
// epoll events handled per epoll_wait().
constexpr int kMaxEpollEvents = 256;
// A thread with requests in flight that sees no reply for this long gives up: the server
// is stalled or gone, and the run must end rather than hang.
constexpr uint64_t kStallTimeoutNs = 10ull * 1000 * 1000 * 1000;
// epoll_wait() timeout, so that the stall check runs even when nothing happens.
constexpr int kEpollTimeoutMs = 200;
// Longest error text kept for the report.
constexpr size_t kMaxErrorTextBytes = 200;
// Follow mode: a dropped connection waits this long before it connects again (so that a
// cluster with no leader yet is not hammered; short against the failover times measured).
constexpr uint64_t kReconnectDelayNs = 5ull * 1000 * 1000;
// Follow mode: epoll_wait() timeout, the resolution of reconnects and request timeouts.
constexpr int kFollowEpollTimeoutMs = 1;
// Follow mode: successes remembered for marks that arrive after them (a mark is written
// within a few ms of its time; 8192 successes cover well over that at any rate seen here).
constexpr size_t kSuccessRingSize = 8192;
// Follow mode: marks waiting for a success.
constexpr size_t kMaxPendingMarks = 64;
// Follow mode: a master address from Sentinel is reused for this long by other connections.
constexpr uint64_t kSentinelCacheNs = 5ull * 1000 * 1000;
// Sentinel query: connect/send/receive timeout.
constexpr int kSentinelTimeoutMs = 200;
// --tls: bound on each read and write of a connection's set-up (the handshake, the first
// command); 50 handshakes at once on a loaded 2-core machine take well under this.
constexpr int kTlsSetupTimeoutMs = 5000;
// Longest stdin line accepted ("mark <ns>").
constexpr size_t kMaxStdinLineBytes = 256;

struct Connection {
  int fd = -1;
  net::TlsConnection ssl;  // --tls; freed before fd is closed
  Rng rng{1};
  std::vector<char> out;  // `pipeline` copies of the request, back to back
  size_t out_offset = 0;  // next byte to write
  size_t out_end = 0;     // end of the bytes of the current batch
  bool want_write = false;
  std::vector<char> in;   // reply bytes not yet scanned
  size_t in_size = 0;
  std::vector<uint64_t> sent_at;  // ring of send times, one per request in flight
  size_t ring_head = 0;
  int in_flight = 0;
  int head_replies = 0;     // replies already read for the oldest request (--wait-replicas)
  bool head_error = false;  // one of them was an error
  bool active = true;
  // Follow mode.
  int node = -1;            // index into Shared::nodes of the current (or last) server
  int next_node = -1;       // where to reconnect (-1: decide at reconnect time)
  uint64_t retry_at_ns = 0; // when fd < 0: reconnect at this time
  int skip_replies = 0;     // replies to our own setup commands (CLIENT NO-FORWARD ON) still to come
};

// A server address of follow mode.
struct Node {
  std::string text;  // host:port
  sockaddr_storage address{};
  socklen_t length = 0;
};

struct Shared {
  const BenchOptions* options = nullptr;
  const net::TlsContext* tls = nullptr;  // --tls
  const RequestTemplate* request = nullptr;
  std::atomic<int64_t> issue_budget{0};  // requests left to send (count mode)
  uint64_t deadline_ns = 0;              // stop issuing at this time (time mode); 0 = none
  std::atomic<bool> go{false};
  std::atomic<uint64_t> next_key{0};  // --sequential
  // Follow mode (one thread only, so not synchronised).
  std::vector<Node> nodes;
};

struct ThreadResult {
  LatencyHistogram histogram;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t end_ns = 0;
  std::string first_error;  // first error reply text
  std::string failure;      // a fatal problem (connection lost, protocol error, stall)
  // Follow mode.
  uint64_t drops = 0;             // connections dropped (lost, redirected, timed out)
  uint64_t redirects = 0;         // -MOVED / -CLUSTERDOWN / -READONLY replies
  uint64_t unknown = 0;           // requests in flight on a dropped connection
  uint64_t connect_failures = 0;  // reconnect attempts that failed
};

bool resolve(const std::string& host, int port, sockaddr_storage* address, socklen_t* length,
             std::string* error);
int connect_one(const sockaddr_storage& address, socklen_t length, const std::string& password,
                const net::TlsContext* tls, net::TlsConnection* ssl, std::string* error);
std::string sentinel_master(const BenchOptions& o, std::string* error);

class LoadThread {
 public:
  LoadThread(Shared* shared, std::vector<Connection*> connections, ThreadResult* result)
      : shared_(shared), connections_(std::move(connections)), result_(result) {}

  void run() {
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      result_->failure = std::string("epoll_create1: ") + std::strerror(errno);
      return;
    }
    const bool follow = shared_->options->follow();
    for (Connection* c : connections_) {
      if (c->fd < 0) continue;  // follow mode: connected below
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = c;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        fail(c, std::string("epoll_ctl: ") + std::strerror(errno));
      }
    }
    if (follow) {  // stdin carries the marks; data.ptr == nullptr tells it apart
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = nullptr;
      stdin_open_ = epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, STDIN_FILENO, &ev) == 0;
      successes_.resize(kSuccessRingSize);
    }
    while (!shared_->go.load(std::memory_order_acquire)) std::this_thread::yield();

    const uint64_t start = now_ns();
    last_progress_ns_ = start;
    for (Connection* c : connections_) {
      if (!c->active) continue;
      if (c->fd < 0) {
        reconnect(c, start);
      } else {
        refill(c, start);
      }
    }

    epoll_event events[kMaxEpollEvents];
    while (active_count() > 0) {
      const int n = epoll_wait(epoll_fd_, events, kMaxEpollEvents,
                               follow ? kFollowEpollTimeoutMs : kEpollTimeoutMs);
      if (n < 0) {
        if (errno == EINTR) continue;
        result_->failure = std::string("epoll_wait: ") + std::strerror(errno);
        break;
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr) {
          on_stdin();
          continue;
        }
        Connection* c = static_cast<Connection*>(events[i].data.ptr);
        if (!c->active || c->fd < 0) continue;
        if (c->ssl) {
          on_readable(c);
          if (c->active && c->fd >= 0 && c->out_offset != c->out_end) flush(c);
          continue;
        }
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) on_readable(c);
        if (c->active && c->fd >= 0 && (events[i].events & EPOLLOUT)) flush(c);
      }
      if (follow) {
        maintain(now_ns());
        continue;
      }
      if (n == 0) {
        const uint64_t now = now_ns();
        if (now - last_progress_ns_ > kStallTimeoutNs) {
          for (Connection* c : connections_)
            if (c->active) fail(c, "no reply for 10 s with requests in flight (server stalled?)");
        }
        // In time mode, idle connections (nothing in flight) finish at the deadline.
        for (Connection* c : connections_)
          if (c->active && c->in_flight == 0) refill(c, now);
      }
    }
    result_->end_ns = last_reply_ns_ != 0 ? last_reply_ns_ : now_ns();
    if (stdin_open_) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, STDIN_FILENO, nullptr);
    close(epoll_fd_);
  }

 private:
  size_t active_count() const {
    size_t n = 0;
    for (const Connection* c : connections_) n += c->active ? 1 : 0;
    return n;
  }

  void fail(Connection* c, std::string why) {
    if (shared_->options->follow()) {
      drop(c, -1, kReconnectDelayNs);
      return;
    }
    if (result_->failure.empty()) result_->failure = std::move(why);
    c->active = false;
    // Stop its events (a hung-up socket would otherwise wake epoll_wait forever); the fd is
    // closed with the others at the end of the test. An error here changes nothing more.
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
  }

  // How many requests this connection may send now (takes them from the shared budget).
  int take_budget(Connection* c, uint64_t now) {
    const int room = shared_->options->pipeline - c->in_flight;
    if (room <= 0) return 0;
    if (shared_->deadline_ns != 0) return now < shared_->deadline_ns ? room : 0;
    int64_t left = shared_->issue_budget.load(std::memory_order_relaxed);
    for (;;) {
      if (left <= 0) return 0;
      const int64_t take = std::min<int64_t>(left, room);
      if (shared_->issue_budget.compare_exchange_weak(left, left - take,
                                                      std::memory_order_relaxed)) {
        return static_cast<int>(take);
      }
    }
  }

  // Puts up to `pipeline - in_flight` new requests on the wire, or ends the connection when
  // there is nothing left to send and nothing in flight.
  void refill(Connection* c, uint64_t now) {
    if (c->out_offset != c->out_end) return;  // the previous batch is still being written
    const int n = take_budget(c, now);
    if (n == 0) {
      if (c->in_flight == 0) c->active = false;  // done: budget used, all replies in
      return;
    }
    const RequestTemplate& t = *shared_->request;
    const size_t size = t.bytes.size();
    const uint64_t keyspace = shared_->options->keyspace;
    for (int i = 0; i < n; ++i) {
      char* request = c->out.data() + static_cast<size_t>(i) * size;
      for (int s = 0; s < t.slot_count; ++s) {
        const uint64_t key =
            shared_->options->sequential
                ? shared_->next_key.fetch_add(1, std::memory_order_relaxed) % keyspace
                : c->rng.next() % keyspace;
        write_digits(request + t.slots[s], key);
      }
    }
    const size_t ring = c->sent_at.size();
    for (int i = 0; i < n; ++i) {
      c->sent_at[(c->ring_head + static_cast<size_t>(c->in_flight) + i) % ring] = now;
    }
    c->in_flight += n;
    c->out_offset = 0;
    c->out_end = static_cast<size_t>(n) * size;
    flush(c);
  }

  void flush(Connection* c) {
    while (c->out_offset < c->out_end) {
      std::string tls_error;
      net::TlsIo want = net::TlsIo::kWantWrite;
      const ssize_t w = c->ssl ? net::io_send(c->fd, c->ssl.get(), c->out.data() + c->out_offset,
                                              c->out_end - c->out_offset, &want, &tls_error)
                               : write(c->fd, c->out.data() + c->out_offset, c->out_end - c->out_offset);
      if (w > 0) {
        c->out_offset += static_cast<size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        // TLS waiting to read (want == kWantRead) is woken by EPOLLIN, which TLS connections
        // answer with a flush too; EPOLLOUT is asked for either way (it is cleared below).
        set_want_write(c, true);
        return;
      }
      if (w < 0 && errno == EPROTO) {
        fail(c, "TLS: " + tls_error);
        return;
      }
      fail(c, std::string("write: ") + (w < 0 ? std::strerror(errno) : "wrote nothing"));
      return;
    }
    c->out_offset = c->out_end = 0;
    if (c->want_write) set_want_write(c, false);
  }

  void set_want_write(Connection* c, bool on) {
    epoll_event ev{};
    ev.events = on ? (EPOLLIN | EPOLLOUT) : EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
      fail(c, std::string("epoll_ctl: ") + std::strerror(errno));
      return;
    }
    c->want_write = on;
  }

  // Reads what the socket has; with TLS, also what OpenSSL decrypted and kept back (a
  // record bigger than the room in the buffer), which no epoll event would announce. The
  // buffer keeps room for a whole record (16 kB <= kReadChunkBytes / 4), so nothing is kept
  // back today: the loop keeps a smaller bound from stalling a run.
  void on_readable(Connection* c) {
    do {
      read_once(c);
    } while (c->ssl && c->active && c->fd >= 0 && net::tls_pending(c->ssl.get()) > 0);
  }

  void read_once(Connection* c) {
    if (c->in.size() - c->in_size < kReadChunkBytes / 4) {
      // The unscanned part is a reply bigger than the buffer: grow (rare, never per request).
      if (c->in.size() >= kMaxReplyBufferBytes) {
        fail(c, "reply larger than the reply buffer bound");
        return;
      }
      c->in.resize(std::min(c->in.size() * 2, kMaxReplyBufferBytes));
    }
    std::string tls_error;
    net::TlsIo want = net::TlsIo::kWantRead;
    const ssize_t r = c->ssl ? net::io_recv(c->fd, c->ssl.get(), c->in.data() + c->in_size,
                                            c->in.size() - c->in_size, &want, &tls_error)
                             : read(c->fd, c->in.data() + c->in_size, c->in.size() - c->in_size);
    if (r == 0) {
      fail(c, "server closed the connection");
      return;
    }
    if (r < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        // A TLS read that must write first (rare after the handshake) needs EPOLLOUT.
        if (want == net::TlsIo::kWantWrite && !c->want_write) set_want_write(c, true);
        return;
      }
      if (errno == EINTR) return;
      if (errno == EPROTO) {
        fail(c, "TLS: " + tls_error);
        return;
      }
      fail(c, std::string("read: ") + std::strerror(errno));
      return;
    }
    c->in_size += static_cast<size_t>(r);
    const uint64_t now = now_ns();

    size_t offset = 0;
    uint64_t replies = 0;
    while (offset < c->in_size) {
      net::ScannedReply reply;
      const net::ScanResult s = net::scan_reply(c->in.data() + offset, c->in_size - offset, &reply);
      if (s == net::ScanResult::kIncomplete) break;
      if (s == net::ScanResult::kMalformed) {
        fail(c, "malformed reply from the server");
        return;
      }
      if (c->skip_replies > 0) {  // CLIENT NO-FORWARD ON's (an error from Redis is fine too)
        offset += reply.length;
        --c->skip_replies;
        continue;
      }
      if (c->in_flight == 0) {
        fail(c, "reply without a request in flight");
        return;
      }
      offset += reply.length;
      if (reply.is_error && shared_->options->follow()) {
        const std::string_view text(reply.error_text, reply.error_length);
        std::string host;
        int port = 0;
        // The redirected request did not take effect (not "unknown"); the rest in flight are.
        if (parse_moved(text, &host, &port)) {
          ++result_->redirects;
          --c->in_flight;
          drop(c, find_or_add_node(host, port), 0);
          return;
        }
        if (text.substr(0, 11) == "CLUSTERDOWN" || text.substr(0, 8) == "READONLY") {
          ++result_->redirects;
          --c->in_flight;
          drop(c, -1, kReconnectDelayNs);
          return;
        }
      }
      if (reply.is_error) {
        if (!c->head_error) ++result_->errors;  // one per request, even with WAIT
        c->head_error = true;
        if (result_->first_error.empty()) {
          result_->first_error.assign(reply.error_text,
                                      std::min(reply.error_length, kMaxErrorTextBytes));
        }
      }
      if (++c->head_replies < shared_->request->replies) continue;  // WAIT's reply to come
      const uint64_t sent = c->sent_at[c->ring_head];
      result_->histogram.record(now - sent);
      if (!c->head_error && shared_->options->follow()) on_success(c, sent, now);
      c->head_replies = 0;
      c->head_error = false;
      c->ring_head = (c->ring_head + 1) % c->sent_at.size();
      --c->in_flight;
      ++replies;
    }
    if (offset > 0) {
      std::memmove(c->in.data(), c->in.data() + offset, c->in_size - offset);
      c->in_size -= offset;
    }
    if (replies > 0) {
      result_->completed += replies;
      last_progress_ns_ = now;
      last_reply_ns_ = now;
      refill(c, now);
    }
  }

  // ---- Follow mode ------------------------------------------------------------------

  bool no_more_work(uint64_t now) const {
    if (shared_->deadline_ns != 0) return now >= shared_->deadline_ns;
    return shared_->issue_budget.load(std::memory_order_relaxed) <= 0;
  }

  // Closes the connection; its requests in flight are unknown. It reconnects after `delay`
  // to `next_node` (-1: chosen then).
  void drop(Connection* c, int next_node, uint64_t delay) {
    if (c->fd >= 0) {
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
      c->ssl.reset();
      close(c->fd);
      c->fd = -1;
    }
    ++result_->drops;
    result_->unknown += static_cast<uint64_t>(c->in_flight);
    c->in_flight = 0;
    c->ring_head = 0;
    c->in_size = 0;
    c->out_offset = c->out_end = 0;
    c->head_replies = 0;
    c->head_error = false;
    c->want_write = false;
    c->next_node = next_node;
    c->retry_at_ns = now_ns() + delay;
  }

  int find_or_add_node(const std::string& host, int port) {
    const std::string text = host + ":" + std::to_string(port);
    for (size_t i = 0; i < shared_->nodes.size(); ++i)
      if (shared_->nodes[i].text == text) return static_cast<int>(i);
    if (shared_->nodes.size() >= static_cast<size_t>(kMaxNodes)) return -1;
    Node n;
    n.text = text;
    std::string error;
    if (!resolve(host, port, &n.address, &n.length, &error)) return -1;
    shared_->nodes.push_back(n);
    return static_cast<int>(shared_->nodes.size() - 1);
  }

  // The master Sentinel names now (cached briefly across connections), or -1.
  int sentinel_node(uint64_t now) {
    if (sentinel_cached_node_ >= 0 && now - sentinel_cached_at_ < kSentinelCacheNs)
      return sentinel_cached_node_;
    std::string error;
    const std::string master = sentinel_master(*shared_->options, &error);
    std::string host;
    int port = 0;
    const int node = !master.empty() && split_host_port(master, &host, &port)
                         ? find_or_add_node(host, port)
                         : -1;
    sentinel_cached_node_ = node;
    sentinel_cached_at_ = now;
    return node;
  }

  void reconnect(Connection* c, uint64_t now) {
    const BenchOptions& o = *shared_->options;
    int target = c->next_node;
    if (target < 0) {
      if (o.sentinels_count > 0) {
        target = sentinel_node(now);
      } else if (!shared_->nodes.empty()) {
        target = c->node < 0 ? 0 : (c->node + 1) % static_cast<int>(shared_->nodes.size());
      }
    }
    c->next_node = -1;
    if (target < 0) {  // no address known yet (Sentinel did not answer)
      ++result_->connect_failures;
      c->retry_at_ns = now + kReconnectDelayNs;
      return;
    }
    c->node = target;
    const Node& n = shared_->nodes[static_cast<size_t>(target)];
    std::string error;
    net::TlsConnection ssl;
    const int fd = connect_one(n.address, n.length, o.password, shared_->tls, &ssl, &error);
    if (fd < 0) {
      ++result_->connect_failures;
      c->retry_at_ns = now + kReconnectDelayNs;
      return;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ssl.reset();
      close(fd);
      ++result_->connect_failures;
      c->retry_at_ns = now + kReconnectDelayNs;
      return;
    }
    c->fd = fd;
    c->ssl = std::move(ssl);
    c->retry_at_ns = 0;
    c->skip_replies = 0;
    if (o.sentinels_count == 0) {
      // An hmdb cluster: follow -MOVED as a cluster client does, instead of having a follower
      // forward the requests to the leader (docs/cluster.md, "What clients see"). A fresh
      // socket takes these few bytes at once.
      static constexpr char kNoForward[] = "*3\r\n$6\r\nCLIENT\r\n$10\r\nNO-FORWARD\r\n$2\r\nON\r\n";
      std::string tls_error;
      net::TlsIo want;
      if (net::io_send(fd, c->ssl.get(), kNoForward, sizeof kNoForward - 1, &want, &tls_error) !=
          static_cast<ssize_t>(sizeof kNoForward - 1)) {
        drop(c, -1, kReconnectDelayNs);
        ++result_->connect_failures;
        return;
      }
      c->skip_replies = 1;
    }
    refill(c, now);
  }

  // Reconnects connections whose delay is over, abandons requests past their timeout, and
  // ends connections when the run is over.
  void maintain(uint64_t now) {
    const uint64_t timeout = static_cast<uint64_t>(shared_->options->request_timeout_ms) *
                             1000 * 1000;
    for (Connection* c : connections_) {
      if (!c->active) continue;
      if (c->fd < 0) {
        if (no_more_work(now)) {
          c->active = false;
        } else if (now >= c->retry_at_ns) {
          reconnect(c, now);
        }
        continue;
      }
      if (c->in_flight > 0 && now - c->sent_at[c->ring_head] > timeout) {
        drop(c, -1, 0);  // a stopped or partitioned server: try the next one at once
      } else if (c->in_flight == 0) {
        refill(c, now);  // ends it at the deadline
      }
    }
  }

  // A request succeeded: remember it for marks, answer the marks it satisfies.
  void on_success(Connection* c, uint64_t sent, uint64_t done) {
    Success& s = successes_[success_count_ % successes_.size()];
    s = Success{sent, done, c->node};
    ++success_count_;
    for (size_t i = 0; i < pending_marks_.size();) {
      if (sent >= pending_marks_[i]) {
        report_mark(pending_marks_[i], s);
        pending_marks_.erase(pending_marks_.begin() + static_cast<ptrdiff_t>(i));
      } else {
        ++i;
      }
    }
  }

  struct Success {
    uint64_t sent = 0;
    uint64_t done = 0;
    int node = -1;
  };

  void report_mark(uint64_t mark, const Success& s) {
    const char* where = s.node >= 0 ? shared_->nodes[static_cast<size_t>(s.node)].text.c_str()
                                    : "?";
    std::printf("first %llu %llu %llu %s\n", static_cast<unsigned long long>(mark),
                static_cast<unsigned long long>(s.sent), static_cast<unsigned long long>(s.done),
                where);
    std::fflush(stdout);
  }

  void on_mark(uint64_t mark) {
    // Earliest-finished remembered success sent at or after the mark, if any.
    const size_t kept = std::min(success_count_, successes_.size());
    const Success* best = nullptr;
    for (size_t i = 0; i < kept; ++i) {
      const Success& s = successes_[i];
      if (s.sent >= mark && (best == nullptr || s.done < best->done)) best = &s;
    }
    if (best != nullptr) {
      report_mark(mark, *best);
    } else if (pending_marks_.size() < kMaxPendingMarks) {
      pending_marks_.push_back(mark);
    } else {
      std::fprintf(stderr, "hmdb-bench: more than %zu marks pending; mark %llu ignored\n",
                   kMaxPendingMarks, static_cast<unsigned long long>(mark));
    }
  }

  void on_stdin() {
    char buffer[kMaxStdinLineBytes];
    const ssize_t r = read(STDIN_FILENO, buffer, sizeof buffer);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (r <= 0) {  // EOF (or an unreadable stdin): the run ends
      epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, STDIN_FILENO, nullptr);
      stdin_open_ = false;
      if (shared_->deadline_ns != 0) {
        shared_->deadline_ns = now_ns();
      } else {
        shared_->issue_budget.store(0, std::memory_order_relaxed);
      }
      return;
    }
    stdin_line_.append(buffer, static_cast<size_t>(r));
    size_t newline;
    while ((newline = stdin_line_.find('\n')) != std::string::npos) {
      const std::string line = stdin_line_.substr(0, newline);
      stdin_line_.erase(0, newline + 1);
      unsigned long long mark = 0;
      if (std::sscanf(line.c_str(), "mark %llu", &mark) == 1) {
        on_mark(mark);
      } else if (!line.empty()) {
        std::fprintf(stderr, "hmdb-bench: ignored stdin line '%s'\n", line.c_str());
      }
    }
    if (stdin_line_.size() > kMaxStdinLineBytes) stdin_line_.clear();  // garbage, no newline
  }

  Shared* shared_;
  std::vector<Connection*> connections_;
  ThreadResult* result_;
  int epoll_fd_ = -1;
  uint64_t last_progress_ns_ = 0;
  uint64_t last_reply_ns_ = 0;
  // Follow mode.
  bool stdin_open_ = false;
  std::string stdin_line_;
  std::vector<Success> successes_;  // ring, kSuccessRingSize
  size_t success_count_ = 0;
  std::vector<uint64_t> pending_marks_;
  int sentinel_cached_node_ = -1;
  uint64_t sentinel_cached_at_ = 0;
};

bool resolve(const std::string& host, int port, sockaddr_storage* address, socklen_t* length,
             std::string* error) {
  sockaddr_in v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(address, &v4, sizeof v4);
    *length = sizeof v4;
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    *error = "cannot resolve " + host + ": " + gai_strerror(rc);
    return false;
  }
  std::memcpy(address, found->ai_addr, found->ai_addrlen);
  *length = found->ai_addrlen;
  freeaddrinfo(found);
  return true;
}

// One blocking command on a connection being set up (AUTH, or PING to check a TLS
// connection): true with its reply's first line, false with *error.
bool setup_command(int fd, ssl_st* ssl, const std::string& request, std::string* reply, bool* is_error,
                   std::string* error) {
  std::string tls_error;
  net::TlsIo want;
  // With TLS 1.3 a server refuses a client's certificate after the client's side of the
  // handshake finished: the refusal arrives here, often as a plain close.
  auto failed = [&] {
    *error = !tls_error.empty() ? "TLS: " + tls_error
             : ssl ? "no reply: the server closed the TLS connection (so does one that refuses this client's "
                     "certificate: see its log)"
                   : "no reply";
    return false;
  };
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t w = ssl ? net::io_send(fd, ssl, request.data() + sent, request.size() - sent, &want, &tls_error)
                          : write(fd, request.data() + sent, request.size() - sent);
    if (w <= 0) return failed();
    sent += static_cast<size_t>(w);
  }
  net::ScannedReply scanned;
  for (;;) {
    char buffer[512];
    const ssize_t r = ssl ? net::io_recv(fd, ssl, buffer, sizeof buffer, &want, &tls_error)
                          : read(fd, buffer, sizeof buffer);
    if (r <= 0) return failed();
    reply->append(buffer, static_cast<size_t>(r));
    const net::ScanResult s = net::scan_reply(reply->data(), reply->size(), &scanned);
    if (s == net::ScanResult::kComplete) break;
    if (s == net::ScanResult::kMalformed || reply->size() > 4096) {
      *error = "malformed reply";
      return false;
    }
  }
  *is_error = scanned.is_error;
  reply->resize(reply->find('\r'));
  return true;
}

int connect_one(const sockaddr_storage& address, socklen_t length, const std::string& password,
                const net::TlsContext* tls, net::TlsConnection* ssl, std::string* error) {
  const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address), length) != 0) {
    *error = std::string("connect: ") + std::strerror(errno);
    close(fd);
    return -1;
  }
  auto give_up = [&](std::string why) {
    *error = std::move(why);
    ssl->reset();
    close(fd);
    return -1;
  };
  if (tls != nullptr || !password.empty()) {
    // Set-up exchanges, blocking (the socket is made non-blocking below). The AUTH alone is
    // bounded by kSentinelTimeoutMs like the Sentinel query, the other blocking exchange; a
    // TLS handshake by kTlsSetupTimeoutMs.
    const int timeout_ms = tls != nullptr ? kTlsSetupTimeoutMs : kSentinelTimeoutMs;
    timeval tv{};
    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  if (tls != nullptr) {
    ssl->reset(tls->connect_fd(fd));
    if (!*ssl) return give_up("TLS: cannot make a connection state");
    const net::TlsResult r = net::tls_handshake(ssl->get());
    if (r.io != net::TlsIo::kOk) {
      return give_up("TLS handshake: " + (r.io == net::TlsIo::kError   ? r.error
                                          : r.io == net::TlsIo::kClosed ? std::string("the server closed the connection")
                                                                        : std::string("timed out")));
    }
  }
  if (!password.empty() || tls != nullptr) {
    // AUTH first: a refused password ends the connection with the server's error. With TLS
    // and no password, a PING: the server's verdict on our certificate comes with its reply.
    const std::string request =
        !password.empty() ? "*2\r\n$4\r\nAUTH\r\n$" + std::to_string(password.size()) + "\r\n" + password + "\r\n"
                          : std::string("*1\r\n$4\r\nPING\r\n");
    std::string reply, why;
    bool is_error = false;
    if (!setup_command(fd, ssl->get(), request, &reply, &is_error, &why))
      return give_up((!password.empty() ? "AUTH: " : "PING: ") + why);
    if (is_error) return give_up((!password.empty() ? "AUTH refused: " : "PING refused: ") + reply.substr(1));
  }
  const int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
    return give_up(std::string("socket options: ") + std::strerror(errno));
  }
  return fd;
}

// Asks each Sentinel in turn for the master's address ("host:port"); "" when none answers.
// Blocking, with a timeout per Sentinel: it runs only while a connection is being re-made.
std::string sentinel_master(const BenchOptions& o, std::string* error) {
  std::string request = "*3\r\n$8\r\nSENTINEL\r\n$23\r\nget-master-addr-by-name\r\n$" +
                        std::to_string(o.master_name.size()) + "\r\n" + o.master_name + "\r\n";
  for (int i = 0; i < o.sentinels_count; ++i) {
    std::string host;
    int port = 0;
    sockaddr_storage address{};
    socklen_t length = 0;
    if (!split_host_port(o.sentinels[i], &host, &port) ||
        !resolve(host, port, &address, &length, error)) {
      continue;
    }
    const int fd = socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    timeval tv{};
    tv.tv_sec = 0;
    tv.tv_usec = kSentinelTimeoutMs * 1000;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::string reply;
    bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&address), length) == 0 &&
              write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size());
    net::ScannedReply scanned;
    while (ok) {
      char buffer[512];
      const ssize_t r = read(fd, buffer, sizeof buffer);
      if (r <= 0) {
        ok = false;
        break;
      }
      reply.append(buffer, static_cast<size_t>(r));
      const net::ScanResult s = net::scan_reply(reply.data(), reply.size(), &scanned);
      if (s == net::ScanResult::kComplete) break;
      if (s == net::ScanResult::kMalformed || reply.size() > kMaxStdinLineBytes * 4) ok = false;
    }
    close(fd);
    if (!ok || scanned.is_error) continue;
    // *2\r\n$<n>\r\n<ip>\r\n$<m>\r\n<port>\r\n  (a null array when the name is unknown)
    std::vector<std::string> parts;
    size_t pos = 0;
    while ((pos = reply.find('$', pos)) != std::string::npos) {
      const size_t header_end = reply.find("\r\n", pos);
      if (header_end == std::string::npos) break;
      const size_t n = static_cast<size_t>(std::atoi(reply.c_str() + pos + 1));
      if (header_end + 2 + n > reply.size()) break;
      parts.push_back(reply.substr(header_end + 2, n));
      pos = header_end + 2 + n;
    }
    if (parts.size() == 2) return parts[0] + ":" + parts[1];
  }
  *error = "no Sentinel named a master";
  return "";
}

struct TestOutcome {
  LatencyHistogram histogram;
  uint64_t completed = 0;
  uint64_t errors = 0;
  uint64_t drops = 0;
  uint64_t redirects = 0;
  uint64_t unknown = 0;
  uint64_t connect_failures = 0;
  double seconds = 0;
  std::string first_error;
  std::string failure;
};

// Runs one test: connect, load, close. Returns false when the run could not start.
bool run_test(const BenchOptions& o, const net::TlsContext* tls, TestKind kind, int test_index,
              TestOutcome* outcome) {
  const RequestTemplate request = build_template(kind, o.value_size, o.wait_replicas);
  const size_t batch_bytes = request.bytes.size() * static_cast<size_t>(o.pipeline);
  if (batch_bytes > kMaxConnectionBufferBytes) {
    outcome->failure = "pipeline x request size (" + std::to_string(batch_bytes) +
                       " bytes) is over the per-connection bound of " +
                       std::to_string(kMaxConnectionBufferBytes) + " bytes";
    return false;
  }
  sockaddr_storage address{};
  socklen_t length = 0;
  std::vector<Node> nodes;
  if (o.follow()) {
    for (int i = 0; i < o.nodes_count; ++i) {
      Node n;
      n.text = o.nodes[i];
      std::string host;
      int port = 0;
      HMDB_ASSERT(split_host_port(n.text, &host, &port), "checked by the option parser");
      if (!resolve(host, port, &n.address, &n.length, &outcome->failure)) return false;
      nodes.push_back(n);
    }
  } else if (!resolve(o.host, o.port, &address, &length, &outcome->failure)) {
    return false;
  }

  std::vector<std::unique_ptr<Connection>> connections;
  connections.reserve(static_cast<size_t>(o.clients));
  auto close_all = [&] {
    for (auto& c : connections) {
      c->ssl.reset();
      if (c->fd >= 0) close(c->fd);
    }
  };
  for (int i = 0; i < o.clients; ++i) {
    auto c = std::make_unique<Connection>();
    if (o.follow()) {
      // Connected by the load thread at its start: spread over the nodes (Sentinel: -1,
      // the master it names).
      c->next_node = nodes.empty() ? -1 : i % static_cast<int>(nodes.size());
    } else {
      c->fd = connect_one(address, length, o.password, tls, &c->ssl, &outcome->failure);
    }
    if (!o.follow() && c->fd < 0) {
      outcome->failure = o.host + ":" + std::to_string(o.port) + ": " + outcome->failure;
      close_all();
      return false;
    }
    uint64_t seed = splitmix64(o.seed ^ splitmix64(static_cast<uint64_t>(test_index) << 32 |
                                                   static_cast<uint64_t>(i)));
    c->rng.state = seed == 0 ? 1 : seed;  // xorshift must not start at 0
    c->out.resize(batch_bytes);
    for (int p = 0; p < o.pipeline; ++p) {
      std::memcpy(c->out.data() + static_cast<size_t>(p) * request.bytes.size(),
                  request.bytes.data(), request.bytes.size());
    }
    c->in.resize(kReadChunkBytes);
    c->sent_at.resize(static_cast<size_t>(o.pipeline));
    connections.push_back(std::move(c));
  }

  Shared shared;
  shared.options = &o;
  shared.tls = tls;
  shared.request = &request;
  shared.nodes = std::move(nodes);
  shared.issue_budget.store(o.seconds > 0 ? 0 : o.requests);
  std::vector<ThreadResult> results(static_cast<size_t>(o.threads));
  std::vector<std::unique_ptr<LoadThread>> loads;
  for (int t = 0; t < o.threads; ++t) {
    std::vector<Connection*> slice;
    for (int i = t; i < o.clients; i += o.threads) slice.push_back(connections[static_cast<size_t>(i)].get());
    loads.push_back(std::make_unique<LoadThread>(&shared, std::move(slice), &results[static_cast<size_t>(t)]));
  }
  std::vector<std::thread> workers;
  for (int t = 1; t < o.threads; ++t) workers.emplace_back([&, t] { loads[static_cast<size_t>(t)]->run(); });

  const uint64_t start = now_ns();
  if (o.seconds > 0) shared.deadline_ns = start + static_cast<uint64_t>(o.seconds * 1e9);
  shared.go.store(true, std::memory_order_release);
  loads[0]->run();
  for (auto& w : workers) w.join();

  uint64_t end = start;
  for (ThreadResult& r : results) {
    outcome->histogram.merge(r.histogram);
    outcome->completed += r.completed;
    outcome->errors += r.errors;
    outcome->drops += r.drops;
    outcome->redirects += r.redirects;
    outcome->unknown += r.unknown;
    outcome->connect_failures += r.connect_failures;
    end = std::max(end, r.end_ns);
    if (outcome->first_error.empty()) outcome->first_error = r.first_error;
    if (outcome->failure.empty()) outcome->failure = r.failure;
  }
  outcome->seconds = static_cast<double>(end - start) / 1e9;
  close_all();
  return true;
}

double ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

void raise_fd_limit(int clients) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  const rlim_t want = static_cast<rlim_t>(clients) + 64;
  if (limit.rlim_cur >= want) return;
  limit.rlim_cur = std::min(want, limit.rlim_max);
  setrlimit(RLIMIT_NOFILE, &limit);  // best effort: connect() reports EMFILE otherwise
}

}  // namespace

int bench_main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  BenchOptions o;
  std::string error;
  if (!parse_bench_options(argc, argv, &o, &error)) {
    std::fprintf(stderr, "hmdb-bench: %s\n%s", error.c_str(), kUsage);
    return 2;
  }
  raise_fd_limit(o.clients);
  std::shared_ptr<net::TlsContext> tls;
  if (o.tls) {
    const net::TlsFiles files{o.tls_cert_file, o.tls_key_file, o.tls_ca_file};
    if (Status s = net::TlsContext::create(net::TlsContext::Role::kClient, files, net::TlsAuthClients::kYes, &tls); !s) {
      std::fprintf(stderr, "hmdb-bench: %s\n", s.message().c_str());
      return 2;
    }
  }

  if (o.csv) {
    std::printf("test,rps,avg_latency_ms,min_latency_ms,p50_latency_ms,p99_latency_ms,"
                "p999_latency_ms,max_latency_ms,errors,requests,seconds\n");
  }
  int status = 0;
  for (int t = 0; t < o.tests_count; ++t) {
    const TestInfo& info = info_of(o.tests[t]);
    if (!o.quiet && !o.csv) {
      std::fprintf(stderr, "%s: running (%d clients, pipeline %d, %d-byte values)...\n",
                   info.label, o.clients, o.pipeline, static_cast<int>(o.value_size));
    }
    TestOutcome r;
    if (!run_test(o, tls.get(), o.tests[t], t, &r)) {
      std::fprintf(stderr, "hmdb-bench: %s: %s\n", info.label, r.failure.c_str());
      return 1;
    }
    const double rps = r.seconds > 0 ? static_cast<double>(r.completed) / r.seconds : 0;
    const LatencyHistogram& h = r.histogram;
    if (o.csv) {
      std::printf("%s,%.2f,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%llu,%llu,%.3f\n", info.label, rps,
                  h.mean() / 1e6, ms(h.min()), ms(h.value_at_percentile(50)),
                  ms(h.value_at_percentile(99)), ms(h.value_at_percentile(99.9)), ms(h.max()),
                  static_cast<unsigned long long>(r.errors),
                  static_cast<unsigned long long>(r.completed), r.seconds);
    } else {
      std::printf("%-6s %12.2f requests/s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms"
                  "  errors %llu  (%llu requests in %.2f s)\n",
                  info.label, rps, ms(h.value_at_percentile(50)), ms(h.value_at_percentile(99)),
                  ms(h.value_at_percentile(99.9)), ms(h.max()),
                  static_cast<unsigned long long>(r.errors),
                  static_cast<unsigned long long>(r.completed), r.seconds);
    }
    std::fflush(stdout);
    if (o.follow()) {
      std::fprintf(stderr,
                   "hmdb-bench: %s: follow mode: %llu connections dropped, %llu redirects, "
                   "%llu requests unknown, %llu failed connects\n",
                   info.label, static_cast<unsigned long long>(r.drops),
                   static_cast<unsigned long long>(r.redirects),
                   static_cast<unsigned long long>(r.unknown),
                   static_cast<unsigned long long>(r.connect_failures));
    }
    if (r.errors > 0) {
      std::fprintf(stderr, "hmdb-bench: %s: %llu error replies, first: %s\n", info.label,
                   static_cast<unsigned long long>(r.errors), r.first_error.c_str());
    }
    if (!r.failure.empty()) {
      std::fprintf(stderr, "hmdb-bench: %s: run failed: %s\n", info.label, r.failure.c_str());
      status = 1;
    }
  }
  return status;
}

}  // namespace hmdb::tools
