// fuzz/kv_args_fuzz.cc — libFuzzer target for kv's argument parsers (apps/kv/kv.cc): the
// bytes choose commands from kv's own table and argument words biased toward what its
// parsers know (ZRANGE's BYSCORE/BYLEX/REV/LIMIT, intervals "(1" "[a" "+" "-", infinities,
// ZADD's flags, WEIGHTS/AGGREGATE, SCAN's cursors with MATCH/COUNT/TYPE, GETEX/SET options,
// LPOS RANK/COUNT/MAXLEN, LMOVE's directions, blocking timeouts, huge and negative numbers,
// glob patterns), run the way a node runs them: a write is validated as the leader does,
// encoded into a log entry and applied through the engine's apply path (hmdb/testing.h's
// apply_write); a query goes through the query path. Two copies of the state, A and B, run
// every command; B is now and then replaced by a load of A's snapshot (a node that restarted
// from one: same state, different memory layout, nothing left to lazily free), and the clock
// moves now and then, with housekeeping deleting what expired. Checked:
//   - every command gets exactly one well-formed reply (hmdb/reply.h's reply_problem) or error;
//   - a write that validate() accepted applies (no divergence), and a blocking one's timeout
//     word is one the engine reads (core/blocking.h);
//   - A and B answer every command with the same bytes and the same events, and end every
//     write with the same digest (determinism across nodes); at the end their snapshots are
//     the same bytes and load back to the same digest;
//   - a command answered with an error changes nothing (digest) and emits no event;
//   - and, by the sanitizers, no crash, no UB, no ASan report.
// Commands whose valid arguments are expensive by design (SETRANGE at a 512 MiB offset,
// SRANDMEMBER with a count of -10^18: docs/kv-commands.md, "Commands that take long") are
// skipped when their count or offset is huge (too_costly); what must be refused is not.
//
// Built two ways: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt), and with
// -DHMDB_FUZZ_REPLAY_MAIN as a plain program replaying the seed corpus (tests/apps), so CI
// runs the seeds without clang. `kv_args_fuzz_replay --make-seeds DIR` writes them.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "core/blocking.h"
#include "hmdb/app.h"
#include "hmdb/reply.h"
#include "hmdb/testing.h"
#include "kv/kv.h"

namespace {

using namespace hmdb;
using KvDriver = testing::AppDriver<kv::Kv>;

// The keys the state below holds (and two it does not).
const std::vector<std::string_view> kKeys = {"str", "num", "flt", "hash", "list", "set",  "zset",
                                             "zbig", "sbig", "lbig", "hbig", "new", "new2"};

// The words kv's parsers look for, in both cases where it matters.
const std::vector<std::string_view> kKeywords = {
    "BYSCORE", "BYLEX",  "REV",      "LIMIT",  "WITHSCORES", "NX",       "XX",      "GT",        "LT",
    "CH",      "INCR",   "WEIGHTS",  "AGGREGATE", "SUM",     "MIN",      "MAX",     "MATCH",     "COUNT",
    "TYPE",    "EX",     "PX",       "EXAT",   "PXAT",       "PERSIST",  "KEEPTTL", "GET",       "RANK",
    "MAXLEN",  "LEFT",   "RIGHT",    "BEFORE", "AFTER",      "ENCODING", "FREQ",    "IDLETIME",  "REFCOUNT",
    "HELP",    "REPLACE", "DB",      "ASYNC",  "SYNC",       "WITHVALUES", "string", "hash",     "list",
    "set",     "zset",   "none",     "withscores", "limit",  "byscore",  "rev",     "match",     "count"};

// Numbers, intervals and infinities, well and badly formed.
const std::vector<std::string_view> kNumbers = {
    "0", "1", "-1", "2", "3", "10", "-2", "100", "-100", "1000", "9223372036854775807", "-9223372036854775808",
    "9223372036854775808", "-9223372036854775809", "18446744073709551615", "4294967296", "536870911", "536870912",
    "0.5", "-0.5", "1.5", "1e308", "-1e308", "1e309", "inf", "-inf", "+inf", "INF", "nan", "(1", "(-1", "(inf",
    "(-inf", "(+inf", "(", "[", "[a", "(a", "[m", "(z", "+", "-", "1e400", "0x10", " 1", "1 ", "01", "-0", "+1",
    "1.", "1e", "", "3.0", "4611686018427387904", "-4611686018427387904", "0.0001", "1e-320", "5e-324", "(5",
    "(0", "9007199254740993", "-9223372036854775807", "1000000000000000", "-0.0", "[]", "(2.5", "[b", "[\xff"};

// Members, field names and glob patterns.
const std::vector<std::string_view> kMembers = {
    "a", "b", "c", "m1", "m2", "m3", "f1", "f2", "", "*", "?", "a*", "*a*", "[a-c]*", "[^a]*", "\\*", "[", "[a-",
    "h[", "[]", "[\\]", "**", "*?*?*?*?*?*?*?*?*?*?*?*?b", "\\", "m*", "*1", "[!m]*", "z\xff", "hello"};

// A parsed number, for the few caps below; false if the word is not one.
bool as_int(std::string_view w, int64_t* v) {
  auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), *v);
  return ec == std::errc() && p == w.data() + w.size();
}

// Valid arguments that are expensive by design (they are not what this target looks for).
bool too_costly(const std::vector<std::string_view>& argv) {
  const std::string name = [&] {
    std::string n(argv[0]);
    for (char& c : n) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return n;
  }();
  int64_t v = 0;
  if (name == "SETRANGE" && argv.size() > 2 && as_int(argv[2], &v) && v > (1 << 20)) return true;
  // A negative count asks for |count| picks with repeats; with WITHVALUES/WITHSCORES Redis
  // refuses one below -LONG_MAX/2 (its reply would be 2|count| long), and so must kv.
  if ((name == "SRANDMEMBER" || name == "HRANDFIELD" || name == "ZRANDMEMBER") && argv.size() > 2 &&
      as_int(argv[2], &v) && v < -4096)
    return argv.size() == 3 || v >= -(std::numeric_limits<int64_t>::max() / 2);
  return false;
}

class Script {
 public:
  explicit Script(std::string_view bytes) : in_(bytes) {}
  bool done() const { return in_.empty(); }
  uint8_t byte() {
    if (in_.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return b;
  }
  std::string_view take(size_t n) {
    n = std::min(n, in_.size());
    std::string_view s = in_.substr(0, n);
    in_.remove_prefix(n);
    return s;
  }

 private:
  std::string_view in_;
};

std::string build_start(bool big) {
  KvDriver db;
  auto run = [&](std::vector<std::string> words) {
    const std::string r = db.run_strings(words);
    HMDB_ASSERT(r[0] != '-', "building the start state: %s", r.c_str());
  };
  run({"SET", "str", "hello"});
  run({"EXPIRE", "str", "1000"});
  run({"SET", "num", "42"});
  run({"SET", "flt", "3.5"});
  run({"HSET", "hash", "f1", "v1", "f2", "2", "f3", "3.5"});
  run({"RPUSH", "list", "a", "b", "c", "a", "m1", "2"});
  run({"SADD", "set", "a", "b", "c", "m1", "m2", "1", "2"});
  run({"ZADD", "zset", "1", "a", "2", "b", "2", "c", "3", "m1", "-inf", "m2", "+inf", "m3", "0", ""});
  for (int i = 0; big && i < 130; i++) {
    const std::string m = "m" + std::to_string(i);
    run({"ZADD", "zbig", std::to_string(i / 3), m});
    run({"SADD", "sbig", m});
    if (i < 70) run({"RPUSH", "lbig", m});
    run({"HSET", "hbig", m, std::to_string(i)});
  }
  return db.snapshot();
}

// The states an input starts from, as snapshots (built once): every type small, one key with
// a deadline; and, for one input in four (its first byte), the same plus containers past
// kv's compact, lazy-free and whole-SCAN sizes (64, 64, 128), which cost most of an input's
// time to load twice.
const std::string& start_snapshot(bool big) {
  static const std::string bytes[2] = {build_start(false), build_start(true)};
  return bytes[big];
}
// One node's copy: its driver and what its writes emitted. Built once (building the command
// table is most of the cost of a fresh one) and reset to the start state for each input.
struct Node {
  KvDriver db;
  testing::RecordedEvents events;
  Node() { db.events = &events; }
  void reset(bool big) {
    db.app().clear();
    db.host.state().graveyard.step(SIZE_MAX);  // nothing left over from the last input
    HMDB_ASSERT(db.restore(start_snapshot(big)), "the start state does not load");
    db.now_ms = testing::Driver::kStartMs;
    events.take();
  }
};

// Extracts the cursor of a SCAN-family reply ("*2\r\n$N\r\n<cursor>\r\n..."), if it is one.
void note_cursor(std::string_view reply, std::string* cursor) {
  if (reply.substr(0, 5) != "*2\r\n$" && reply.substr(0, 5) != ">2\r\n$") return;
  const size_t crlf = reply.find("\r\n", 5);
  if (crlf == std::string_view::npos) return;
  size_t n = 0;
  if (std::from_chars(reply.data() + 5, reply.data() + crlf, n).ec != std::errc()) return;
  if (crlf + 2 + n > reply.size() || n > 20) return;
  *cursor = std::string(reply.substr(crlf + 2, n));
}

// HMDB_FUZZ_TRACE=1 in the environment prints each command and A's reply (to read what an
// input does: `kv_args_fuzz_replay crash-file`).
void trace(const std::vector<std::string_view>& argv, std::string_view reply) {
  static const bool on = std::getenv("HMDB_FUZZ_TRACE") != nullptr;
  if (!on) return;
  std::string line;
  for (std::string_view w : argv) line += "'" + std::string(w) + "' ";
  std::fprintf(stderr, "%s-> %s\n", line.c_str(), std::string(reply.substr(0, 200)).c_str());
}

void run_command(Node& a, Node& b, const std::vector<std::string_view>& argv, Protocol protocol, uint64_t* index,
                 std::string* cursor) {
  const Args args(argv.data(), argv.size());
  StateMachine& app = a.db.app();
  std::string out_a, out_b;
  switch (app.kind(argv[0])) {
    case CommandKind::kWrite: {
      std::string error;
      KeySpec keys;
      if (!app.validate(args, &error, &keys)) {  // refused at the leader: never logged
        trace(argv, "(refused) " + error);
        // The error may quote the client's word, CR and LF included (EXPIRE k 1 "X\r\n"):
        // Reply::error turns them into spaces, as Redis' addReplyErrorFormat does, so what
        // the client reads is one line either way.
        std::string line;
        Reply(&line).error(error);
        HMDB_ASSERT(!error.empty() && line.find("\r\n") == line.size() - 2 && line.find('\n') == line.size() - 1,
                    "a bad validate error");
        return;
      }
      if (keys.timeout != 0) {
        const int64_t n = static_cast<int64_t>(argv.size());
        const int64_t at = keys.timeout < 0 ? n + keys.timeout : keys.timeout;
        HMDB_ASSERT(at > 0 && at < n && core::parse_block_timeout_ms(argv[static_cast<size_t>(at)]),
                    "%s validated with a timeout the engine cannot read", std::string(argv[0]).c_str());
      }
      const uint64_t digest_before = a.db.digest();
      ++*index;
      HMDB_ASSERT(testing::apply_write(a.db.app(), args, a.db.now_ms, *index, protocol, &out_a, &a.events),
                  "%s: validated but not applied", std::string(argv[0]).c_str());
      HMDB_ASSERT(testing::apply_write(b.db.app(), args, b.db.now_ms, *index, protocol, &out_b, &b.events),
                  "%s: applied on A, not on B", std::string(argv[0]).c_str());
      trace(argv, out_a);
      const std::string problem = reply_problem(out_a, protocol);
      HMDB_ASSERT(problem.empty(), "%s wrote %s", std::string(argv[0]).c_str(), problem.c_str());
      HMDB_ASSERT(out_a == out_b, "%s answered A and B differently", std::string(argv[0]).c_str());
      const uint64_t digest_after = a.db.digest();
      HMDB_ASSERT(digest_after == b.db.digest(), "%s left A and B with different digests", std::string(argv[0]).c_str());
      HMDB_ASSERT(a.events.events == b.events.events, "%s emitted different events on A and B",
                  std::string(argv[0]).c_str());
      if (out_a[0] == '-' || out_a[0] == '!') {
        HMDB_ASSERT(digest_after == digest_before, "%s answered an error and changed the state: %s",
                    std::string(argv[0]).c_str(), out_a.c_str());
        HMDB_ASSERT(a.events.events.empty(), "%s answered an error and emitted an event", std::string(argv[0]).c_str());
      }
      a.events.take();
      b.events.take();
      break;
    }
    case CommandKind::kQuery: {
      QueryContext ctx;
      ctx.now_ms = a.db.now_ms;
      Reply ra(&out_a, protocol), rb(&out_b, protocol);
      app.query(args, ctx, ra);
      b.db.app().query(args, ctx, rb);
      trace(argv, out_a);
      const std::string problem = reply_problem(out_a, protocol);
      HMDB_ASSERT(problem.empty(), "%s wrote %s", std::string(argv[0]).c_str(), problem.c_str());
      HMDB_ASSERT(out_a == out_b, "%s answered A and B differently", std::string(argv[0]).c_str());
      note_cursor(out_a, cursor);
      break;
    }
    case CommandKind::kUnknown:
      trace(argv, "(unknown)");
      break;
  }
}

// Moves both clocks and deletes what expired (housekeeping, as the leader proposes it), so
// that no key past its deadline is left for a later command to delete lazily: a command
// that fails must then change nothing at all.
void advance(Node& a, Node& b, uint64_t ms, uint64_t* index) {
  a.db.now_ms += ms;
  b.db.now_ms += ms;
  for (int i = 0; i < 4; i++) {
    std::optional<std::vector<std::string>> hk = a.db.app().housekeeping(a.db.now_ms);
    if (!hk) break;
    std::vector<std::string_view> argv(hk->begin(), hk->end());
    std::string error;
    HMDB_ASSERT(a.db.app().validate_housekeeping(Args(argv.data(), argv.size()), &error, nullptr), "housekeeping refused");
    std::string out_a, out_b;
    ++*index;
    HMDB_ASSERT(testing::apply_write(a.db.app(), Args(argv.data(), argv.size()), a.db.now_ms, *index,
                                     Protocol::kResp2, &out_a),
                "housekeeping not applied");
    HMDB_ASSERT(testing::apply_write(b.db.app(), Args(argv.data(), argv.size()), b.db.now_ms, *index,
                                     Protocol::kResp2, &out_b),
                "housekeeping not applied on B");
    HMDB_ASSERT(out_a == out_b && a.db.digest() == b.db.digest(), "housekeeping differs on A and B");
  }
}

constexpr size_t kCommandsMax = 64;  // per input: a bounded run
constexpr size_t kArgsMax = 9;

// kv's command names, and one it does not know: what an input's bytes pick from (fuzz) and
// what a seed's words are looked up in (encode).
const std::vector<std::string>& command_names() {
  static const std::vector<std::string> names = [] {
    KvDriver db;
    std::vector<std::string> out;
    for (const CommandDescription& d : db.app().describe_commands()) out.push_back(d.name);
    out.push_back("NOSUCH");
    return out;
  }();
  return names;
}

void fuzz(std::string_view bytes) {
  const std::vector<std::string>& names = command_names();
  static Node a, b, c;
  if (bytes.empty()) return;
  const bool big = (static_cast<uint8_t>(bytes[0]) & 3) == 0;
  bytes.remove_prefix(1);
  a.reset(big);
  b.reset(big);
  Protocol protocol = Protocol::kResp2;
  uint64_t index = 1000;
  std::string cursor = "0";
  Script in(bytes);
  for (size_t commands = 0; commands < kCommandsMax && !in.done();) {
    const uint8_t op = in.byte();
    if (op >= 0xf8) {  // the rarer operations
      switch (op) {
        case 0xf8: case 0xf9: advance(a, b, 1 + in.byte() * 7, &index); break;
        case 0xfa: advance(a, b, 1000ull * in.byte(), &index); break;
        case 0xfb: case 0xfc: {  // B restarts from A's snapshot
          b.db.app().clear();
          HMDB_ASSERT(b.db.restore(a.db.snapshot()), "A's snapshot does not load");
          HMDB_ASSERT(b.db.digest() == a.db.digest(), "A's snapshot loads to another digest");
          break;
        }
        default: protocol = protocol == Protocol::kResp2 ? Protocol::kResp3 : Protocol::kResp2; break;
      }
      continue;
    }
    commands++;
    // 0xf7: a command named in the input (what the seeds use, so that they keep their meaning
    // when kv's table grows); below it, an index into kv's table.
    std::string name = op == 0xf7 ? std::string(in.take(in.byte() % 24)) : names[op % names.size()];
    if (name.empty()) continue;
    const uint8_t shape = in.byte();
    if (shape & 0x80)
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::vector<std::string> words{name};
    const size_t nargs = shape % (kArgsMax + 1);
    for (size_t i = 0; i < nargs; i++) {
      const uint8_t w = in.byte();
      const uint8_t pick = in.byte();
      switch (w % 6) {
        case 0: case 1: words.emplace_back(kKeys[pick % kKeys.size()]); break;
        case 2: words.emplace_back(kKeywords[pick % kKeywords.size()]); break;
        case 3: words.emplace_back(kNumbers[pick % kNumbers.size()]); break;
        case 4: words.emplace_back(kMembers[pick % kMembers.size()]); break;
        default:
          if (pick < 16) words.push_back(cursor);
          else words.emplace_back(in.take(pick % 24));
          break;
      }
    }
    std::vector<std::string_view> argv(words.begin(), words.end());
    if (too_costly(argv)) continue;
    run_command(a, b, argv, protocol, &index, &cursor);
  }
  const std::string snap_a = a.db.snapshot();
  HMDB_ASSERT(snap_a == b.db.snapshot(), "A and B hold the same state in different snapshot bytes");
  c.db.app().clear();
  HMDB_ASSERT(c.db.restore(snap_a) && c.db.digest() == a.db.digest(), "the final snapshot loads to another digest");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz(std::string_view(reinterpret_cast<const char*>(data), std::min<size_t>(size, 4096)));
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <filesystem>
#include <fstream>

#include "replay_main.h"

namespace {

// Seeds spelled as commands: each word is looked up in the vocabularies above and encoded
// as the bytes that pick it (a word in none of them is taken raw).
std::string encode(const std::vector<std::vector<std::string_view>>& script) {
  const std::vector<std::string>& names = command_names();
  std::string out(1, '\0');  // the big start state: seeds name its keys
  auto index_in = [](const std::vector<std::string_view>& v, std::string_view w) -> int {
    for (size_t i = 0; i < v.size(); i++)
      if (v[i] == w) return static_cast<int>(i);
    return -1;
  };
  for (const auto& cmd : script) {
    if (cmd[0] == "@restart") { out += '\xfb'; continue; }
    if (cmd[0] == "@resp3") { out += '\xfd'; continue; }
    if (cmd[0] == "@advance") { out += '\xfa'; out += static_cast<char>(std::atoi(std::string(cmd[1]).c_str())); continue; }
    HMDB_ASSERT(std::find(names.begin(), names.end(), cmd[0]) != names.end() && cmd[0].size() < 24, "no command %s",
                std::string(cmd[0]).c_str());
    out += '\xf7';
    out += static_cast<char>(cmd[0].size());
    out += cmd[0];
    out += static_cast<char>(cmd.size() - 1);
    for (size_t i = 1; i < cmd.size(); i++) {
      int k;
      if (cmd[i] == "@cursor") { out += '\x05'; out += '\x00'; }
      else if ((k = index_in(kKeys, cmd[i])) >= 0) { out += '\x00'; out += static_cast<char>(k); }
      else if ((k = index_in(kKeywords, cmd[i])) >= 0) { out += '\x02'; out += static_cast<char>(k); }
      else if ((k = index_in(kNumbers, cmd[i])) >= 0) { out += '\x03'; out += static_cast<char>(k); }
      else if ((k = index_in(kMembers, cmd[i])) >= 0) { out += '\x04'; out += static_cast<char>(k); }
      else {
        HMDB_ASSERT(cmd[i].size() < 24, "a raw word too long");
        out += '\x05';
        out += static_cast<char>(24 + cmd[i].size());
        out += cmd[i];
      }
    }
  }
  return out;
}

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  using S = std::vector<std::vector<std::string_view>>;
  const std::vector<std::pair<std::string, S>> seeds = {
      {"zrange", {{"ZRANGE", "zbig", "(1", "+inf", "BYSCORE", "LIMIT", "1", "10", "WITHSCORES"},
                  {"ZRANGE", "zset", "[a", "+", "BYLEX", "REV"},
                  {"ZRANGE", "zset", "+", "-", "BYLEX", "REV", "LIMIT", "0", "-1"},
                  {"ZRANGE", "zbig", "-1", "0", "REV"}}},
      {"zrangebyscore", {{"ZRANGEBYSCORE", "zset", "-inf", "(2.5", "WITHSCORES"},
                         {"ZREVRANGEBYSCORE", "zbig", "+inf", "(5", "LIMIT", "2", "3"},
                         {"ZRANGEBYLEX", "zset", "-", "[m"}, {"ZCOUNT", "zset", "(1", "inf"},
                         {"ZLEXCOUNT", "zset", "[b", "(z"}}},
      {"zadd", {{"ZADD", "zset", "NX", "CH", "1.5", "a", "2", "new"}, {"ZADD", "zset", "XX", "GT", "INCR", "1", "a"},
                {"ZADD", "zset", "nan", "a"}, {"ZINCRBY", "zset", "inf", "m3"}, {"ZINCRBY", "zset", "-inf", "m3"}}},
      {"zsetop", {{"ZUNIONSTORE", "new", "2", "zset", "zbig", "WEIGHTS", "2", "-inf", "AGGREGATE", "MAX"},
                  {"ZINTERSTORE", "new2", "2", "zset", "set", "AGGREGATE", "SUM"},
                  {"ZUNION", "2", "zset", "zbig", "WITHSCORES"},
                  {"ZDIFFSTORE", "new", "1", "zset"},
                  {"ZREMRANGEBYSCORE", "zbig", "(1", "10"}, {"ZREMRANGEBYLEX", "zset", "-", "(c"}}},
      {"scan", {{"SCAN", "0", "MATCH", "*a*", "COUNT", "2", "TYPE", "zset"}, {"SCAN", "@cursor", "COUNT", "3"},
                {"@restart"}, {"SCAN", "@cursor", "COUNT", "3"}, {"HSCAN", "hbig", "0", "MATCH", "m*"},
                {"SSCAN", "sbig", "0", "COUNT", "1000"}, {"ZSCAN", "zbig", "@cursor"}, {"KEYS", "[a-c]*"}}},
      {"strings", {{"SET", "new", "a", "NX", "GET", "PX", "100"}, {"SET", "str", "b", "KEEPTTL", "XX"},
                   {"GETEX", "str", "PERSIST"}, {"GETEX", "num", "EXAT", "9223372036854775807"},
                   {"SETRANGE", "new2", "10", "x"}, {"SETRANGE", "str", "-1", "x"}, {"INCRBYFLOAT", "flt", "1e308"},
                   {"INCRBYFLOAT", "flt", "inf"}, {"GETRANGE", "str", "-9223372036854775808", "-1"},
                   {"@advance", "200"}, {"GET", "new"}}},
      {"lists", {{"LPOS", "list", "a", "RANK", "-1", "COUNT", "0", "MAXLEN", "2"},
                 {"LPOS", "list", "a", "RANK", "-9223372036854775808"}, {"LMOVE", "list", "new", "LEFT", "RIGHT"},
                 {"BLMOVE", "lbig", "list", "RIGHT", "LEFT", "0.5"}, {"BLPOP", "new2", "list", "0"},
                 {"BZPOPMIN", "zset", "1e400"}, {"BZMPOP", "1", "2", "zset", "zbig", "MAX", "COUNT", "3"},
                 {"LINSERT", "list", "BEFORE", "a", "z"}, {"LTRIM", "lbig", "1", "-2"}}},
      {"keys", {{"OBJECT", "ENCODING", "zbig"}, {"OBJECT", "FREQ", "str"}, {"OBJECT", "HELP"},
                {"COPY", "zbig", "new", "REPLACE"}, {"COPY", "str", "new", "DB", "0"}, {"DEL", "sbig"},
                {"SINTERCARD", "2", "set", "sbig", "LIMIT", "1"}, {"SRANDMEMBER", "set", "-5"},
                {"@resp3"}, {"HRANDFIELD", "hash", "-3", "WITHVALUES"}, {"ZRANDMEMBER", "zset", "2", "WITHSCORES"},
                {"EXPIRE", "num", "10", "NX"}, {"@advance", "20"}, {"TTL", "num"}}},
      // kv_args_test's RandomPairsCountPastHalfRangeIsRefused: refused, not ~10^19 picks.
      {"random-pairs", {{"HRANDFIELD", "hash", "-9223372036854775807", "WITHVALUES"},
                        {"ZRANDMEMBER", "zset", "-9223372036854775807", "WITHSCORES"},
                        {"HRANDFIELD", "new", "4611686018427387904", "WITHVALUES"},
                        {"ZRANDMEMBER", "zbig", "-5", "WITHSCORES"}, {"SRANDMEMBER", "sbig", "-3"}}},
      {"sets", {{"SUNIONSTORE", "new", "set", "sbig"}, {"SINTERSTORE", "new2", "set", "sbig", "none"},
                {"SDIFF", "sbig", "set"}, {"SMOVE", "set", "new", "a"}, {"SPOP", "sbig", "3"},
                {"SMISMEMBER", "set", "a", "zz"}, {"SINTERCARD", "0", "set"}, {"SINTERCARD", "2", "set", "new", "LIMIT", "-1"}}},
      {"hashes", {{"HINCRBYFLOAT", "hash", "f2", "1e308"}, {"HINCRBYFLOAT", "hash", "f1", "1"},
                  {"HINCRBY", "hash", "f2", "9223372036854775807"}, {"HSETNX", "hbig", "m1", "x"},
                  {"HMGET", "hash", "f1", "nope"}, {"HSTRLEN", "hash", "f3"}, {"HSCAN", "hash", "0", "COUNT", "0"}}},
      {"expiry", {{"EXPIRE", "set", "1", "GT"}, {"PEXPIRE", "zset", "9223372036854775807"},
                  {"EXPIREAT", "list", "-1"}, {"SET", "num", "1", "EX", "0"}, {"SET", "new", "1", "PXAT", "1"},
                  {"@advance", "2"}, {"PTTL", "set"}, {"EXPIRETIME", "str"}, {"PERSIST", "str"},
                  {"SCAN", "0", "TYPE", "set"}, {"RANDOMKEY"}}},
  };
  for (const auto& [name, script] : seeds)
    std::ofstream(dir / ("seed-" + name), std::ios::binary) << encode(script);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
