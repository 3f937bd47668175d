// fuzz/subscription_fuzz.cc — libFuzzer target for live updates (core/pubsub.h), three ways
// by the first byte (mod 3):
//
//   0: Redis' glob (core::glob_match) against a port of Redis 7's own stringmatchlen, on a
//      pattern and a channel cut from the bytes: PSUBSCRIBE and PUBSUB CHANNELS match what
//      redis-server matches, including its corners (an unclosed '[', a trailing '\', "[^" at
//      the end, '*' against the empty channel).
//   1: positions (parse_position): accepted exactly for <index> and <index>-<n> within
//      uint64, and what it accepts formats back to text that parses to the same position.
//   2: a hostile subscriber's view of the replica core (core/replica.cc, core/pubsub.cc,
//      kv's keyspace notifications): the bytes choose, for four client sessions, arbitrary
//      pub/sub commands (SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, HMDB.SUBSCRIBE and
//      HMDB.PSUBSCRIBE with positions huge, malformed, past, future, mid-entry; PUBSUB; RESET;
//      PING; HELLO 2/3) with names from a dictionary of edge cases or raw bytes, interleaved
//      with writes (PUBLISH, kv writes that notify), transactions, disconnects, sessions that
//      never read their output, resumes from positions, the output and retention bounds and
//      notify-keyspace-events chosen by the bytes. A witness session sees every event. Then:
//        - every value a session is sent is one well-formed RESP value (hmdb::reply_problem;
//          a push is checked as the array it frames), in RESP2 unless it spoke RESP3;
//        - the messages a session holds unsent never pass --subscriber-output-bytes, or one
//          message when it is larger (docs/subscriptions.md, "Bounds");
//        - confirmations count the connection's subscriptions exactly;
//        - a message arrives only for a channel or pattern it is subscribed to (the pattern
//          checked by the Redis port), is the witness's event at its position (channel,
//          payload, term), and on a positioned connection positions never go back, are
//          strictly increasing per channel or pattern and skip no event of it (no gap);
//        - -SUBSCRIPTIONENDED names the last position delivered;
//        - a resume from position P (a fresh connection subscribing to everything from P)
//          gets exactly the witness's events after P, in order (or, ended, a prefix of them
//          up to the position its error names), or -OLDPOSITION naming the oldest retained
//          position when P is older.
//
// Built two ways: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt), and with
// -DHMDB_FUZZ_REPLAY_MAIN as a plain program replaying the seed corpus (tests/core), so CI
// runs the seeds without clang. `subscription_fuzz_replay --make-seeds DIR` writes them.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "core/pubsub.h"
#include "core/replica.h"
#include "hmdb/app.h"
#include "hmdb/reply.h"
#include "kv/kv.h"
#include "net/resp_reply.h"

namespace {

using namespace hmdb;
using core::EventPosition;

// ---- Redis' glob -----------------------------------------------------------------------

// Redis 7's stringmatchlen_impl (util.c), case-sensitive, ported line for line: pointers
// into NUL-terminated strings (Redis' sds), so its reads of the terminator behave as there.
int redis_stringmatch(const char* pattern, int patternLen, const char* string, int stringLen, int* skipLonger,
                      int nesting) {
  if (nesting > 1000) return 0;
  while (patternLen && stringLen) {
    switch (pattern[0]) {
      case '*':
        while (patternLen && pattern[1] == '*') {
          pattern++;
          patternLen--;
        }
        if (patternLen == 1) return 1;
        while (stringLen) {
          if (redis_stringmatch(pattern + 1, patternLen - 1, string, stringLen, skipLonger, nesting + 1)) return 1;
          if (*skipLonger) return 0;
          string++;
          stringLen--;
        }
        *skipLonger = 1;
        return 0;
      case '?':
        string++;
        stringLen--;
        break;
      case '[': {
        pattern++;
        patternLen--;
        const bool negate = pattern[0] == '^';
        if (negate) {
          pattern++;
          patternLen--;
        }
        bool match = false;
        while (true) {
          if (pattern[0] == '\\' && patternLen >= 2) {
            pattern++;
            patternLen--;
            if (pattern[0] == string[0]) match = true;
          } else if (pattern[0] == ']') {
            break;
          } else if (patternLen == 0) {
            pattern--;
            patternLen++;
            break;
          } else if (patternLen >= 3 && pattern[1] == '-') {
            int start = pattern[0];
            int end = pattern[2];
            const int c = string[0];
            if (start > end) std::swap(start, end);
            pattern += 2;
            patternLen -= 2;
            if (c >= start && c <= end) match = true;
          } else if (pattern[0] == string[0]) {
            match = true;
          }
          pattern++;
          patternLen--;
        }
        if (negate) match = !match;
        if (!match) return 0;
        string++;
        stringLen--;
        break;
      }
      case '\\':
        if (patternLen >= 2) {
          pattern++;
          patternLen--;
        }
        [[fallthrough]];
      default:
        if (pattern[0] != string[0]) return 0;
        string++;
        stringLen--;
        break;
    }
    pattern++;
    patternLen--;
    if (stringLen == 0) {
      while (*pattern == '*') {
        pattern++;
        patternLen--;
      }
      break;
    }
  }
  return patternLen == 0 && stringLen == 0;
}

// Below 1000 stars Redis' nesting limit cannot cut the match short (hmdb has none).
bool redis_glob(std::string_view pattern, std::string_view text) {
  const std::string p(pattern), t(text);
  int skip = 0;
  return redis_stringmatch(p.c_str(), static_cast<int>(p.size()), t.c_str(), static_cast<int>(t.size()), &skip, 0) != 0;
}

void fuzz_glob(std::string_view bytes) {
  // The pattern, a 0xff byte, the channel; both short enough for the reference's recursion.
  const size_t cut = bytes.find('\xff');
  const std::string_view pattern = bytes.substr(0, std::min<size_t>(cut, 256));
  const std::string_view text = cut == std::string_view::npos ? std::string_view() : bytes.substr(cut + 1, 256);
  const bool got = core::glob_match(pattern, text);
  HMDB_ASSERT(got == redis_glob(pattern, text), "glob_match(%s, %s) = %d, Redis says otherwise",
              detail::quote_resp(pattern).c_str(), detail::quote_resp(text).c_str(), got);
}

// ---- positions ---------------------------------------------------------------------------

bool all_digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

bool fits_uint64(std::string_view digits) {
  while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
  return digits.size() < 20 || (digits.size() == 20 && digits <= "18446744073709551615");
}

void fuzz_position(std::string_view text) {
  EventPosition p;
  const bool ok = core::parse_position(text, &p);
  const size_t dash = text.find('-');
  const std::string_view index = text.substr(0, dash);
  const std::string_view ordinal = dash == std::string_view::npos ? std::string_view("0") : text.substr(dash + 1);
  const bool expect = all_digits(index) && fits_uint64(index) && all_digits(ordinal) && fits_uint64(ordinal);
  HMDB_ASSERT(ok == expect, "parse_position(%s) said %d", detail::quote_resp(text).c_str(), ok);
  if (!ok) return;
  EventPosition again;
  const std::string formatted = core::format_position(p);
  HMDB_ASSERT(core::parse_position(formatted, &again) && again == p, "%s formats as %s, which reads differently",
              detail::quote_resp(text).c_str(), formatted.c_str());
}

// ---- the replica core, driven by hostile subscribers ----------------------------------------

using KvHost = AppHost<kv::Kv>;

constexpr uint64_t kWitness = 1'000'000;  // a session that subscribes to everything and always reads
constexpr uint64_t kProbeBase = 2'000'000;

class Host final : public core::ReplicaHost {
 public:
  std::map<uint64_t, core::ClientSession> sessions;
  std::set<uint64_t> closing;  // their subscriptions ended: closed once their output is taken
  core::Replica* replica = nullptr;
  raft::Index last_index = 0;
  raft::Term last_term = 0;
  raft::HardState hard_state;

  core::ClientSession* session(uint64_t id) override {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : &it->second;
  }
  void replies_ready(core::ClientSession&) override {}
  // The witness's socket takes everything at once: it is never a slow subscriber.
  uint64_t unsent_bytes(const core::ClientSession& s) const override {
    return s.id == kWitness ? 0 : s.replies.out().size();
  }
  void close_after_replies(core::ClientSession& s) override { closing.insert(s.id); }
  core::CommandClass shell_command_class(Args argv) const override {
    if (core::PubSub::is_command(argv[0]))
      return iequals(argv[0], "PUBSUB") ? core::CommandClass::kShellLocal : core::CommandClass::kShellBarrier;
    if (iequals(argv[0], "PING") || iequals(argv[0], "RESET")) return core::CommandClass::kShellLocal;
    if (iequals(argv[0], "HELLO")) return core::CommandClass::kShellBarrier;
    return core::CommandClass::kUnknown;
  }
  // What the server's shell does (server/shell_commands.cc) for these commands.
  core::ShellResult run_shell_command(core::ClientSession& s, Args argv, uint64_t, std::string* out) override {
    Reply r(out, s.protocol);
    if (core::PubSub::is_command(argv[0])) {
      replica->pubsub().command(s, argv, out);
    } else if (iequals(argv[0], "PING")) {
      if (argv.size() > 2) r.error("ERR wrong number of arguments for 'ping' command");
      else if (s.subscriber && s.subscriber->count() > 0 && s.protocol == Protocol::kResp2) {
        r.array(2);
        r.bulk("pong");
        r.bulk(argv.size() == 2 ? argv[1] : std::string_view());
      } else {
        r.status("PONG");
      }
    } else if (iequals(argv[0], "RESET")) {
      s.transaction.reset();
      replica->pubsub().forget(s);
      s.protocol = Protocol::kResp2;
      r.status("RESET");
    } else {  // HELLO 2 | HELLO 3
      if (argv.size() == 2 && (argv[1] == "2" || argv[1] == "3"))
        s.protocol = argv[1] == "3" ? Protocol::kResp3 : Protocol::kResp2;
      Reply(out, s.protocol).map(0);
    }
    return core::ShellResult::kReplied;
  }
  void start_snapshot() override {}
  std::string client_address_of(raft::NodeId) const override { return ""; }
  void stage_snapshot_chunk(const raft::SnapshotChunk&) override {}
  bool install_snapshot(const raft::SnapshotMeta&) override { return true; }
  std::optional<raft::PersistAck> persist(const std::optional<raft::HardState>& hs, std::vector<raft::Entry>&& entries,
                                          const std::optional<raft::SnapshotMeta>&) override {
    if (hs) hard_state = *hs;
    if (!entries.empty()) {
      last_index = entries.back().index;
      last_term = entries.back().term;
    }
    return raft::PersistAck{last_index, last_term, hard_state};
  }
  void send(std::vector<raft::Message>&&) override {}
  void applied(const raft::Entry&) override {}
  void apply_failed(const raft::Entry&, const core::ApplyResult&) override { HMDB_ASSERT(false, "apply failed"); }
  void read_snapshot_chunk(const raft::SnapshotReadRequest&) override {}
  void role_changed(raft::Role, raft::Role) override {}
  void warn(std::string_view) override {}
};

// ---- reading what a session was sent ----

struct Value {
  char type = 0;
  std::string text;  // simple string, error, integer, bulk
  bool null = false;
  std::vector<Value> elements;
};

// Decodes one value already checked by reply_problem (so well formed); pushes and arrays alike.
Value decode(std::string_view v, size_t* pos) {
  Value out;
  out.type = v[*pos];
  const size_t eol = v.find("\r\n", *pos);
  const std::string_view line = v.substr(*pos + 1, eol - *pos - 1);
  *pos = eol + 2;
  switch (out.type) {
    case '$':
    case '!':
    case '=': {
      int64_t n = 0;
      detail::resp_integer(line, &n);
      if (n < 0) {
        out.null = true;
        break;
      }
      out.text.assign(v.substr(*pos, static_cast<size_t>(n)));
      *pos += static_cast<size_t>(n) + 2;
      break;
    }
    case '*':
    case '>':
    case '~':
    case '%': {
      int64_t n = 0;
      detail::resp_integer(line, &n);
      if (n < 0) {
        out.null = true;
        break;
      }
      const size_t count = static_cast<size_t>(n) * (out.type == '%' ? 2 : 1);
      for (size_t i = 0; i < count; i++) out.elements.push_back(decode(v, pos));
      break;
    }
    case '_': out.null = true; break;
    default: out.text.assign(line); break;
  }
  return out;
}

bool is_bulk(const Value& v) { return v.type == '$' && !v.null; }

// Every value in `bytes` (what one session was sent, in order), each checked well formed.
std::vector<Value> values_of(std::string_view bytes, bool spoke_resp3, uint64_t id) {
  std::vector<Value> out;
  while (!bytes.empty()) {
    net::ScannedReply r;
    HMDB_ASSERT(net::scan_reply(bytes.data(), bytes.size(), &r) == net::ScanResult::kComplete,
                "session %llu was sent bytes that are not RESP: %s", static_cast<unsigned long long>(id),
                detail::quote_resp(bytes).c_str());
    const std::string_view one = bytes.substr(0, r.length);
    std::string problem;
    if (one[0] == '>') {
      HMDB_ASSERT(spoke_resp3, "a push to session %llu, which never spoke RESP3", static_cast<unsigned long long>(id));
      problem = reply_problem("*" + std::string(one.substr(1)), Protocol::kResp3);
    } else {
      // A session that spoke RESP3 may have gone back (RESET, HELLO 2): either protocol.
      problem = reply_problem(one, Protocol::kResp2);
      if (!problem.empty() && spoke_resp3) problem = reply_problem(one, Protocol::kResp3);
    }
    HMDB_ASSERT(problem.empty(), "session %llu: %s", static_cast<unsigned long long>(id), problem.c_str());
    size_t pos = 0;
    out.push_back(decode(one, &pos));
    bytes.remove_prefix(r.length);
  }
  return out;
}

// A message frame (message/pmessage, with position and term on a positioned connection).
struct Message {
  std::string pattern;  // empty for a channel's message
  bool by_pattern = false;
  std::string channel, payload;
  bool positioned = false;
  EventPosition position;
  uint64_t term = 0;
};

// The names Redis gives pub/sub frames: a channel that would make PUBSUB CHANNELS' reply
// look like one is never generated (see name()).
bool is_frame_kind(std::string_view s) {
  return s == "message" || s == "pmessage" || s == "subscribe" || s == "psubscribe" || s == "unsubscribe" ||
         s == "punsubscribe";
}

std::optional<Message> as_message(const Value& v) {
  if ((v.type != '*' && v.type != '>') || v.elements.size() < 3 || !is_bulk(v.elements[0])) return std::nullopt;
  const std::string& kind = v.elements[0].text;
  const bool by_pattern = kind == "pmessage";
  if (kind != "message" && !by_pattern) return std::nullopt;
  const size_t base = by_pattern ? 4 : 3;
  const auto& e = v.elements;
  if (e.size() != base && e.size() != base + 2) return std::nullopt;
  for (size_t i = 1; i < base; i++)
    if (!is_bulk(e[i])) return std::nullopt;
  Message m;
  m.by_pattern = by_pattern;
  if (by_pattern) m.pattern = e[1].text;
  m.channel = e[base - 2].text;
  m.payload = e[base - 1].text;
  if (e.size() == base + 2) {
    m.positioned = true;
    HMDB_ASSERT(is_bulk(e[base]) && core::parse_position(e[base].text, &m.position) &&
                    m.position.ordinal != EventPosition::kWholeEntry,
                "a message's position is not <index>-<n>");
    HMDB_ASSERT(e[base + 1].type == ':' && parse_uint64(e[base + 1].text, &m.term), "a message's term is not an integer");
  }
  return m;
}

struct Event {
  EventPosition position;
  uint64_t term;
  std::string channel, payload;
};

// The witness's events: every event, in order (it subscribes to "*" and "" from the start).
std::vector<Event> witness_events(std::string_view bytes) {
  std::vector<Event> events;
  for (const Value& v : values_of(bytes, true, kWitness)) {
    std::optional<Message> m = as_message(v);
    if (!m) continue;  // its confirmations
    HMDB_ASSERT(m->positioned, "the witness got a message without its position");
    HMDB_ASSERT(events.empty() || events.back().position < m->position, "the witness's positions went back: %s after %s",
                core::format_position(m->position).c_str(), core::format_position(events.back().position).c_str());
    HMDB_ASSERT(m->by_pattern ? m->pattern == "*" && !m->channel.empty() : m->channel.empty(),
                "the witness got a message for no subscription of its own");
    events.push_back(Event{m->position, m->term, m->channel, m->payload});
  }
  return events;
}

const Event* event_at(const std::vector<Event>& events, EventPosition p) {
  auto it = std::lower_bound(events.begin(), events.end(), p, [](const Event& e, EventPosition q) { return e.position < q; });
  return it != events.end() && it->position == p ? &*it : nullptr;
}

// What a session's stream says of its subscriptions, checked as it is read.
struct SessionModel {
  uint64_t id = 0;
  const std::vector<Event>* events = nullptr;
  std::map<std::string, std::optional<EventPosition>> keys;  // "c:"/"p:" + name -> last position delivered
  bool positioned = false;
  EventPosition start;
  std::optional<EventPosition> last;  // the connection's last message position
  std::vector<Message> messages;      // every message, in order
  std::string ended;                  // the -SUBSCRIPTIONENDED error, if any

  void forget_all() {
    keys.clear();
    last.reset();
  }
  void confirmation(const std::string& kind, const Value& v) {
    const bool sub = kind == "subscribe" || kind == "psubscribe";
    const bool pattern = kind[0] == 'p';
    HMDB_ASSERT(v.elements.size() == 3 || (sub && v.elements.size() == 4), "a %s confirmation of %zu elements", kind.c_str(),
                v.elements.size());
    HMDB_ASSERT(v.elements[2].type == ':', "a confirmation without its count");
    int64_t count = -1;
    detail::resp_integer(v.elements[2].text, &count);
    if (sub) {
      HMDB_ASSERT(is_bulk(v.elements[1]), "a subscribe confirmation without its name");
      if (keys.empty()) {  // a fresh connection: this command decided how it is served
        positioned = v.elements.size() == 4;
        last.reset();
      }
      HMDB_ASSERT(positioned == (v.elements.size() == 4), "session %llu: plain and positioned confirmations mixed",
                  static_cast<unsigned long long>(id));
      if (positioned) {
        EventPosition p;
        HMDB_ASSERT(is_bulk(v.elements[3]) && core::parse_position(v.elements[3].text, &p),
                    "a confirmation's position is not one");
        HMDB_ASSERT(keys.empty() || p == start, "session %llu: a confirmation names %s, the connection started after %s",
                    static_cast<unsigned long long>(id), v.elements[3].text.c_str(), core::format_position(start).c_str());
        start = p;
      }
      keys.emplace((pattern ? "p:" : "c:") + v.elements[1].text, std::nullopt);
    } else if (is_bulk(v.elements[1])) {
      keys.erase((pattern ? "p:" : "c:") + v.elements[1].text);
    } else {
      HMDB_ASSERT(v.elements[1].null, "an unsubscribe confirmation's name is neither a name nor null");
    }
    HMDB_ASSERT(count == static_cast<int64_t>(keys.size()), "session %llu: a %s confirmation counts %lld, it has %zu",
                static_cast<unsigned long long>(id), kind.c_str(), static_cast<long long>(count), keys.size());
    if (keys.empty()) last.reset();
  }
  void message(const Message& m) {
    const std::string key = m.by_pattern ? "p:" + m.pattern : "c:" + m.channel;
    auto it = keys.find(key);
    HMDB_ASSERT(it != keys.end(), "session %llu: a message for %s, to which it is not subscribed",
                static_cast<unsigned long long>(id), detail::quote_resp(key).c_str());
    HMDB_ASSERT(!m.by_pattern || redis_glob(m.pattern, m.channel), "a pmessage whose channel the pattern does not match");
    HMDB_ASSERT(m.positioned == positioned, "session %llu: a message %s its position", static_cast<unsigned long long>(id),
                m.positioned ? "with" : "without");
    messages.push_back(m);
    if (!positioned) {
      // Plain: the event exists (its position is not sent).
      const bool known = std::any_of(events->begin(), events->end(), [&](const Event& e) {
        return e.channel == m.channel && e.payload == m.payload;
      });
      HMDB_ASSERT(known, "session %llu: a message no event made", static_cast<unsigned long long>(id));
      return;
    }
    const Event* e = event_at(*events, m.position);
    HMDB_ASSERT(e && e->channel == m.channel && e->payload == m.payload && e->term == m.term,
                "session %llu: the message at %s is not the event there", static_cast<unsigned long long>(id),
                core::format_position(m.position).c_str());
    HMDB_ASSERT(start < m.position, "session %llu: a message at %s, at or before its start %s",
                static_cast<unsigned long long>(id), core::format_position(m.position).c_str(),
                core::format_position(start).c_str());
    HMDB_ASSERT(!last || *last <= m.position, "session %llu: positions went back", static_cast<unsigned long long>(id));
    last = m.position;
    std::optional<EventPosition>& prev = it->second;
    if (prev) {
      HMDB_ASSERT(*prev < m.position, "session %llu: %s delivered %s twice", static_cast<unsigned long long>(id),
                  key.c_str(), core::format_position(m.position).c_str());
      // No gap: every event of this channel or pattern between the two was delivered.
      for (auto e2 = std::upper_bound(events->begin(), events->end(), *prev,
                                       [](EventPosition q, const Event& x) { return q < x.position; });
           e2 != events->end() && e2->position < m.position; ++e2) {
        const bool matches = m.by_pattern ? redis_glob(m.pattern, e2->channel) : e2->channel == m.channel;
        HMDB_ASSERT(!matches, "session %llu: %s skipped the event at %s", static_cast<unsigned long long>(id),
                    key.c_str(), core::format_position(e2->position).c_str());
      }
    }
    prev = m.position;
  }
  void read(const std::vector<Value>& values) {
    for (const Value& v : values) {
      // After -SUBSCRIPTIONENDED the node reads nothing more, but commands it had already
      // received still run and answer (an UNSUBSCRIBE, even a SUBSCRIBE that starts again and
      // may end again), and are checked as a fresh start. (Redis would run nothing more;
      // whether hmdb should refuse them is an open question, docs/subscriptions.md.)
      if (std::optional<Message> m = as_message(v)) {
        message(*m);
        continue;
      }
      if ((v.type == '*' || v.type == '>') && !v.elements.empty() && is_bulk(v.elements[0]) &&
          is_frame_kind(v.elements[0].text)) {
        confirmation(v.elements[0].text, v);
        continue;
      }
      HMDB_ASSERT(v.type != '>', "session %llu: a push that is neither a message nor a confirmation",
                  static_cast<unsigned long long>(id));
      if (v.type == '+' && v.text == "RESET") forget_all();
      if (v.type == '-' && v.text.starts_with("SUBSCRIPTIONENDED ")) {
        ended = v.text;
        const std::string named = v.text.substr(18, v.text.find(' ', 18) - 18);
        if (positioned) {
          const std::string expect = core::format_position(last.value_or(start));
          HMDB_ASSERT(named == expect, "session %llu: -SUBSCRIPTIONENDED names %s, the last delivered was %s",
                      static_cast<unsigned long long>(id), named.c_str(), expect.c_str());
        }
        forget_all();
      }
    }
  }
};

// A resume: a fresh connection subscribing to everything after `from`.
struct Probe {
  uint64_t id;
  std::string from;     // as sent
  bool parsed = false;  // `from` is a position
  EventPosition position;
  EventPosition floor, current;  // the node's, when it subscribed
};

// The bytes, read front to back; zeros once they run out.
struct Input {
  std::string_view bytes;
  uint8_t u8() {
    if (bytes.empty()) return 0;
    const uint8_t b = static_cast<uint8_t>(bytes[0]);
    bytes.remove_prefix(1);
    return b;
  }
  std::string raw(size_t max) {
    const size_t n = std::min<size_t>(u8() % (max + 1), bytes.size());
    std::string s(bytes.substr(0, n));
    bytes.remove_prefix(n);
    return s;
  }
};

// Channels and patterns: edge cases, or raw bytes.
const std::vector<std::string_view> kNames = {
    "a", "b", "ab", "", "news.a", "news.b", "*", "a*", "*b", "?", "[ab]", "[^a]", "[a-", "[", "\\", "a\\*", "*a*a*a*b",
    "**", "[]", "[^", "[]]", "[\\]", "[z-a]*", "__keyspace@0__:k", "__keyevent@0__:set", "__key*", "__keyevent@0__:*",
    "x\r\ny", std::string_view("\0", 1), "\xff\xfe", "*[^]", "?*?", "\\*", "k",
};
// Positions: malformed, extreme, and (below) relative to what the node has.
const std::vector<std::string_view> kPositions = {
    "$", "0", "1", "1-0", "-1", "1-", "-", "1-2-3", "18446744073709551615", "18446744073709551616",
    "18446744073709551615-18446744073709551615", "18446744073709551615-18446744073709551614", "007", "+1", " 1",
    "", "99999999999", "2-18446744073709551615", "0-0", "$$", "1 ", "1-+0",
};

struct Run {
  Host host;
  KvHost app;
  std::unique_ptr<raft::Raft> raft;
  std::unique_ptr<core::Replica> replica;
  core::PubSub::Options events;
  Input in;
  uint64_t slots[4] = {1, 2, 3, 4};  // the session ids of the four clients (a reconnect takes a new id)
  uint64_t next_id = 5;
  std::set<uint64_t> silent;          // sessions that never read
  std::set<uint64_t> spoke_resp3;
  std::map<uint64_t, std::string> transcript;  // what each session was sent and took
  std::vector<Probe> probes;
  std::vector<std::string> witness_positions;  // recent positions the witness saw (for resumes)
  size_t witness_scanned = 0;
  uint64_t published = 0;
  const bool trace = std::getenv("HMDB_FUZZ_TRACE") != nullptr;  // the commands sent, to stderr

  core::ClientSession& session(uint64_t id) {
    core::ClientSession& s = host.sessions[id];
    s.id = id;
    return s;
  }
  void send(uint64_t id, const std::vector<std::string>& words) {
    if (host.closing.count(id) || !host.sessions.count(id)) return;  // nothing more is read from it
    if (trace) {
      std::string line = "session " + std::to_string(id) + ":";
      for (const std::string& w : words) line += " " + detail::quote_resp(w);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::vector<std::string_view> argv(words.begin(), words.end());
    core::ClientSession& s = session(id);
    replica->command(s, Args(argv.data(), argv.size()));
    if (words[0] == "HELLO" || s.protocol == Protocol::kResp3) spoke_resp3.insert(id);
  }
  std::string name() {
    const uint8_t b = in.u8();
    std::string n = b < 200 ? std::string(kNames[b % kNames.size()]) : in.raw(24);
    if (is_frame_kind(n)) n += "!";
    return n;
  }
  std::string position() {
    const uint8_t b = in.u8();
    if (b < 100) return std::string(kPositions[b % kPositions.size()]);
    const core::PubSub& ps = replica->pubsub();
    switch (b % 6) {
      case 0: return core::format_position(ps.floor());
      case 1: return core::format_position(ps.current());
      case 2: return std::to_string(ps.current().index + 1 + in.u8() % 3);  // the future
      case 3: return std::to_string(ps.current().index - std::min<uint64_t>(ps.current().index, in.u8() % 8));
      case 4: return std::to_string(ps.current().index) + "-" + std::to_string(in.u8() % 4);
      default:
        if (witness_positions.empty()) return "0";
        return witness_positions[witness_positions.size() - 1 - in.u8() % witness_positions.size()];
    }
  }
  // Takes what reading sessions were sent (the witness's is parsed for positions to resume
  // from); a closing session whose output is all taken closes, as the server does.
  void take_output(bool everyone) {
    std::vector<uint64_t> closed;
    for (auto& [id, s] : host.sessions) {
      if (!everyone && silent.count(id)) continue;
      transcript[id] += s.replies.out();
      s.replies.out().clear();
      if (host.closing.count(id) && s.replies.idle()) closed.push_back(id);
    }
    for (uint64_t id : closed) close(id);
    const std::string& w = transcript[kWitness];
    while (witness_scanned < w.size()) {
      net::ScannedReply r;
      if (net::scan_reply(w.data() + witness_scanned, w.size() - witness_scanned, &r) != net::ScanResult::kComplete)
        break;
      size_t pos = 0;
      const std::string one = w.substr(witness_scanned, r.length);
      if (reply_problem("*" + one.substr(1), Protocol::kResp3).empty()) {
        if (std::optional<Message> m = as_message(decode(one, &pos)); m && m->positioned) {
          witness_positions.push_back(core::format_position(m->position));
          if (witness_positions.size() > 64) witness_positions.erase(witness_positions.begin());
        }
      }
      witness_scanned += r.length;
    }
  }
  void close(uint64_t id) {
    core::ClientSession* s = host.session(id);
    if (!s) return;
    transcript[id] += s->replies.out();
    replica->session_closed(*s);
    host.sessions.erase(id);
    host.closing.erase(id);
  }
  // The bound: a session's unsent messages never pass --subscriber-output-bytes, unless one
  // message alone does (a message is always accepted into an empty buffer).
  void check_output_bounds() {
    for (auto& [id, s] : host.sessions) {
      if (id == kWitness) continue;
      std::string_view out = s.replies.out();
      uint64_t message_bytes = 0, largest = 0;
      while (!out.empty()) {
        net::ScannedReply r;
        if (net::scan_reply(out.data(), out.size(), &r) != net::ScanResult::kComplete) break;  // checked at the end
        const std::string_view one = out.substr(0, r.length);
        const bool push = one[0] == '>';
        if ((one[0] == '*' || push) && reply_problem("*" + std::string(one.substr(1)), Protocol::kResp3).empty()) {
          size_t pos = 0;
          if (as_message(decode(one, &pos))) {
            message_bytes += one.size();
            largest = std::max<uint64_t>(largest, one.size());
          }
        }
        out.remove_prefix(r.length);
      }
      // Held messages wait behind pending replies; an -SUBSCRIPTIONENDED may be among them.
      const uint64_t held = s.replies.held_message_bytes();
      const uint64_t ended_error = host.closing.count(id) ? 512 : 0;
      HMDB_ASSERT(message_bytes + held <= std::max(events.subscriber_output_bytes, largest) + ended_error,
                  "session %llu holds %llu bytes of messages unsent (+%llu held), bound %llu",
                  static_cast<unsigned long long>(id), static_cast<unsigned long long>(message_bytes),
                  static_cast<unsigned long long>(held), static_cast<unsigned long long>(events.subscriber_output_bytes));
    }
  }
  void turn() {
    if (trace) std::fprintf(stderr, "turn\n");
    replica->end_turn();
    check_output_bounds();
    take_output(false);
  }
  void probe() {
    Probe p;
    p.id = kProbeBase + probes.size();
    p.from = position();
    p.parsed = p.from != "$" && core::parse_position(p.from, &p.position);
    p.floor = replica->pubsub().floor();
    p.current = replica->pubsub().current();
    if (p.from == "$") {
      p.parsed = true;
      p.position = p.current;
    }
    if (in.u8() & 1) session(p.id).protocol = Protocol::kResp3, spoke_resp3.insert(p.id);
    session(p.id);
    send(p.id, {"HMDB.SUBSCRIBE", p.from, ""});
    send(p.id, {"HMDB.PSUBSCRIBE", "$", "*"});
    probes.push_back(p);
  }
  void client_command(uint64_t id) {
    std::vector<std::string> w;
    const uint8_t c = in.u8();
    auto names = [&](size_t min) {
      const uint8_t n = in.u8();
      if (n >= 250) {  // many at once
        for (int i = 0; i < 40 * (n - 249); i++) w.push_back((i % 2 ? "p*" : "c") + std::to_string(i));
        return;
      }
      for (size_t i = 0; i < min + n % 4; i++) w.push_back(name());
    };
    switch (c % 20) {
      case 0: w = {"SUBSCRIBE"}; names(1); break;
      case 1: w = {"PSUBSCRIBE"}; names(1); break;
      case 2: w = {"UNSUBSCRIBE"}; names(0); break;
      case 3: w = {"PUNSUBSCRIBE"}; names(0); break;
      case 4:
      case 5: w = {"HMDB.SUBSCRIBE", position()}; names(c & 32 ? 0 : 1); break;
      case 6: w = {"HMDB.PSUBSCRIBE", position()}; names(c & 32 ? 0 : 1); break;
      case 7: {
        static const char* kSub[] = {"CHANNELS", "NUMSUB", "NUMPAT", "SHARDCHANNELS", "SHARDNUMSUB", "HELP", "channels"};
        w = {"PUBSUB", kSub[in.u8() % 7]};
        names(0);
        break;
      }
      case 8: w = {"RESET"}; break;
      case 9: w = {"PING"}; if (c & 32) w.push_back(name()); break;
      case 10: w = {"HELLO", c & 32 ? "2" : "3"}; break;
      case 11: w = {"SET", "k", "v" + std::to_string(c)}; break;
      case 12: w = {"GET", "k"}; break;
      case 13: w = {"MULTI"}; break;
      case 14: w = {"EXEC"}; break;
      case 15: w = {"PUBLISH", name(), "from-client"}; break;
      case 16: w = {"DEL", "k"}; break;
      case 17: w = {"SUBSCRIBE"}; break;  // arity errors
      case 18: w = {"HMDB.SUBSCRIBE", position()}; break;
      default: w = {name()}; names(0); break;  // anything at all
    }
    send(id, w);
  }
  void script() {
    for (int ops = 0; ops < 400 && !in.bytes.empty(); ops++) {
      const uint8_t op = in.u8();
      const uint64_t who = slots[(op >> 4) & 3];
      switch (op & 15) {
        case 0: case 1: case 2: case 3: case 4: case 5: client_command(who); break;
        case 6:
        case 7: {
          const std::string payload = "m" + std::to_string(published++) + ":" + in.raw(16);
          send(kPublisher, {"PUBLISH", name(), payload});
          break;
        }
        case 8: send(kPublisher, {in.u8() & 1 ? "DEL" : "SET", in.u8() & 1 ? "k" : "j", "v"}); break;
        case 9:
        case 10: turn(); break;
        case 11:
          if (silent.count(who)) silent.erase(who);
          else silent.insert(who);
          break;
        case 12: {  // the client goes away; its slot reconnects as a new session
          close(who);
          slots[(op >> 4) & 3] = next_id++;
          break;
        }
        case 13: probe(); break;
        case 14: {  // CONFIG SET notify-keyspace-events
          static const char* kFlags[] = {"", "KEA", "K$", "E$", "Kg", "KEA$lshzxetdn", "Ex"};
          uint32_t flags = 0;
          HMDB_ASSERT(core::parse_notify_flags(kFlags[in.u8() % 7], &flags), "notify flags");
          replica->pubsub().set_notify_flags(flags);
          break;
        }
        default: take_output(false); break;
      }
    }
  }
  static constexpr uint64_t kPublisher = 999'999;

  void run(std::string_view bytes) {
    in.bytes = bytes;
    static const uint64_t kOutput[] = {1024, 1500, 4096, 65536};  // the server takes 1 KiB and up
    static const uint64_t kRetain[] = {0, 100, 1000, 10000, 64ull << 20};
    events.subscriber_output_bytes = kOutput[in.u8() % 4];
    events.retain_bytes = kRetain[in.u8() % 5];
    HMDB_ASSERT(core::parse_notify_flags(in.u8() & 1 ? "KEA" : "", &events.notify_flags), "notify flags");
    raft::Config cfg;
    cfg.id = 1;
    raft::RestoreState rs;
    rs.initial_conf.voters = {1};
    raft = std::make_unique<raft::Raft>(cfg, std::move(rs));
    core::Replica::Options options;
    options.events = events;
    replica = std::make_unique<core::Replica>(*raft, app, host, options);
    host.replica = replica.get();
    replica->set_time(1'700'000'000'000, 0);
    for (int i = 0; i < 50 && !replica->leader(); i++) {
      raft->tick();
      replica->drive();
    }
    HMDB_ASSERT(replica->leader(), "a single node did not elect itself");
    for (uint64_t id : slots) session(id);
    session(kPublisher);
    session(kWitness).protocol = Protocol::kResp3;
    spoke_resp3.insert(kWitness);
    send(kWitness, {"HMDB.PSUBSCRIBE", "$", "*"});
    send(kWitness, {"HMDB.SUBSCRIBE", "$", ""});
    // Its confirmations leave their slots (as at the end of a server's loop turn): messages
    // held behind a pending reply count against the bound like unsent ones, and the witness
    // must never be slow.
    replica->drain();
    HMDB_ASSERT(session(kWitness).replies.idle(), "the witness's subscriptions are still pending");
    script();
    // The end: everything applied and delivered (a catching-up session gets a chunk per
    // turn while it has room), then every session reads what it was sent.
    for (int i = 0; i < 1000; i++) {
      turn();
      take_output(true);
      if (replica->idle() && replica->pubsub().catching_up() == 0) break;
    }
    HMDB_ASSERT(replica->pubsub().catching_up() == 0, "a catching-up session that reads got no further");
    take_output(true);
    check();
  }

  void check() {
    if (trace) std::fprintf(stderr, "the witness was sent:\n%s\n", transcript[kWitness].c_str());
    const std::vector<Event> witnessed = witness_events(transcript[kWitness]);
    HMDB_ASSERT(witnessed.size() == replica->pubsub().stats().events, "the witness saw %zu of %llu events",
                witnessed.size(), static_cast<unsigned long long>(replica->pubsub().stats().events));
    // Every PUBLISH of the publisher is an event (its payloads are unique).
    uint64_t from_publisher = 0;
    for (const Event& e : witnessed)
      if (e.payload.size() > 1 && e.payload[0] == 'm' && e.payload.find(':') != std::string::npos) from_publisher++;
    HMDB_ASSERT(from_publisher == published, "%llu PUBLISHes, %llu of their events", static_cast<unsigned long long>(published),
                static_cast<unsigned long long>(from_publisher));
    for (auto& [id, bytes] : transcript) {
      if (id == kWitness) continue;
      if (trace) std::fprintf(stderr, "session %llu was sent:\n%s\n", static_cast<unsigned long long>(id), bytes.c_str());
      SessionModel m;
      m.id = id;
      m.events = &witnessed;
      m.read(values_of(bytes, spoke_resp3.count(id) > 0, id));
    }
    for (const Probe& p : probes) check_probe(p, witnessed);
  }

  void check_probe(const Probe& p, const std::vector<Event>& witnessed) {
    std::vector<Value> values = values_of(transcript[p.id], spoke_resp3.count(p.id) > 0, p.id);
    HMDB_ASSERT(!values.empty(), "a resume got no answer");
    if (!p.parsed) {
      HMDB_ASSERT(values[0].type == '-' && values[0].text.starts_with("ERR invalid position"),
                  "HMDB.SUBSCRIBE %s was not refused", detail::quote_resp(p.from).c_str());
      return;
    }
    if (p.position < p.floor) {
      const std::string expect = "OLDPOSITION " + core::format_position(p.floor) + " ";
      HMDB_ASSERT(values[0].type == '-' && values[0].text.starts_with(expect), "a resume from %s under floor %s got %s",
                  p.from.c_str(), core::format_position(p.floor).c_str(), values[0].text.c_str());
      return;
    }
    // Exactly the events after its position, in order, up to the end (or to where it ended).
    std::vector<EventPosition> got;
    std::string ended;
    for (const Value& v : values) {
      if (std::optional<Message> m = as_message(v)) got.push_back(m->position);
      if (v.type == '-') {
        HMDB_ASSERT(v.text.starts_with("SUBSCRIPTIONENDED "), "a resume got %s", v.text.c_str());
        ended = v.text;
      }
    }
    std::vector<EventPosition> expect;
    for (const Event& e : witnessed)
      if (p.position < e.position) expect.push_back(e.position);
    if (ended.empty()) {
      HMDB_ASSERT(got == expect, "a resume from %s got %zu events, %zu were retained after it", p.from.c_str(),
                  got.size(), expect.size());
    } else {
      HMDB_ASSERT(got.size() <= expect.size() && std::equal(got.begin(), got.end(), expect.begin()),
                  "a resume from %s that ended got events out of order or with a gap", p.from.c_str());
    }
  }
};

void fuzz_replica(std::string_view bytes) {
  Run run;
  run.run(bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: fuzz_glob(rest); break;
    case 1: fuzz_position(rest.substr(0, 64)); break;
    default: fuzz_replica(rest.substr(0, 4096)); break;  // a bounded run per input
  }
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <filesystem>
#include <fstream>

#include "replay_main.h"

namespace {

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  int n = 0;
  auto write = [&](std::string bytes) {
    std::ofstream(dir / ("seed-" + std::to_string(n++)), std::ios::binary) << bytes;
  };
  using namespace std::string_literals;
  // Globs: Redis' corners.
  write("\x00*\xff"s);
  write("\x00[^\xffx"s);
  write("\x00[a-\xff]"s);
  write("\x00*a*a*a*a*a*a*b\xff" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"s);
  write("\x00\\\xff\\"s);
  // Positions.
  write("\x01" "18446744073709551615-18446744073709551615"s);
  write("\x01" "1-"s);
  write("\x01" "007-0"s);
  // Replica scripts (after the bound, retention and notify bytes): a session subscribes to
  // channels and patterns (op 0x00: session 1; command byte, then names), the publisher
  // publishes (op 0x06: name byte, payload), turns (0x09), a probe resumes (0x0d).
  // 1 KiB bound, 10 KB retained, KEA: SUBSCRIBE a; PSUBSCRIBE *; publish on a; SET k; turn; probe from 0.
  write("\x02\x03\x03\x01"
        "\x00\x00\x00\x00"            // SUBSCRIBE (1 name) a
        "\x10\x01\x00\x06"            // session 2: PSUBSCRIBE (1 name) *
        "\x06\x00\x03hi!"             // PUBLISH a m0:hi!
        "\x08\x00\x00"                // SET j v
        "\x09"                        // turn
        "\x0d\x01\x00"                // probe from "0"
        "\x09"s);
  // A positioned session that never reads, with a 64-byte bound: it ends slow.
  write("\x02\x01\x04\x00"
        "\x0b"                        // session 1 goes silent
        "\x00\x04\x00\x00"            // HMDB.SUBSCRIBE $ a
        "\x06\x00\x04" "aaaa\x06\x00\x04" "bbbb\x06\x00\x04" "cccc\x09"
        "\x06\x00\x04" "dddd\x09\x0f"s);
  // A resume from the witness's positions after eviction (100 bytes retained).
  write("\x02\x04\x01\x01"
        "\x06\x00\x02xx\x06\x01\x02yy\x08\x01\x00\x09\x06\x00\x02zz\x09"
        "\x0d\x65\x00\x0d\x64\x01\x0d\xc5\x02\x01\x09\x09"s);
  // Pipelined in RESP3: SET then UNSUBSCRIBE behind it, while events flow.
  write("\x02\x05\x04\x01"
        "\x00\x0a"                    // HELLO 3
        "\x00\x04\x00\x00"            // HMDB.SUBSCRIBE $ a
        "\x09"
        "\x00\x0b\x00\x02\x00"        // SET k, UNSUBSCRIBE a
        "\x06\x00\x01x\x09\x06\x00\x01y\x09"s);
  // Many names at once, and garbage commands.
  write("\x02\x05\x04\x00\x00\x00\xfb\x00\x01\xfa\x00\x13\xc8\x05zzzzz\x00\x09\x00\x07\x00\x00\x09\x0d\x01\x00"s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
