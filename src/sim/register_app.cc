// sim/register_app.cc — commands, queries and snapshot encoding of the simulator's app.
#include "sim/register_app.h"

#include <charconv>

namespace hmdb::sim {
namespace {

bool parse_int(std::string_view s, int64_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

struct SetArgs {
  std::string key;
  int64_t value = 0;
};
bool parse_set(Args argv, SetArgs& out, std::string& error) {
  out.key = std::string(argv[1]);
  if (!parse_int(argv[2], &out.value)) { error = "ERR value is not an integer"; return false; }
  return true;
}
void apply_set(RegisterApp::State& s, const SetArgs& a, const ApplyContext&, Reply& r) {
  s.values[a.key] = a.value;
  r.ok();
}

struct IncrArgs {
  std::string key;
};
bool parse_incr(Args argv, IncrArgs& out, std::string&) {
  out.key = std::string(argv[1]);
  return true;
}
void apply_incr(RegisterApp::State& s, const IncrArgs& a, const ApplyContext&, Reply& r) {
  int64_t& v = s.values[a.key];  // absent counts as 0, as in Redis
  v += 1;
  r.integer(v);
}

void run_get(const RegisterApp::State& s, Args argv, const QueryContext&, Reply& r) {
  auto it = s.values.find(argv[1]);
  if (it == s.values.end()) r.null();
  else r.integer(it->second);
}

}  // namespace

void RegisterApp::define(Commands<State>& c) {
  c.write<SetArgs>("SET", 3, parse_set, apply_set);
  c.write<IncrArgs>("INCR", 2, parse_incr, apply_incr);
  c.query("GET", 2, run_get);
}

void RegisterApp::save(const State& s, Encoder& out) {
  out.varint(s.values.size());
  for (const auto& [k, v] : s.values) {
    out.bytes(k);
    out.i64(v);
  }
}

bool RegisterApp::load(State& s, Decoder& in, uint32_t version) {
  if (version != kSchemaVersion) return false;
  uint64_t n = in.count<std::string, int64_t>();
  if (n > kMaxKeys) return false;
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string key(in.bytes());
    int64_t v = in.i64();
    s.values[key] = v;
  }
  return in.done();
}

std::optional<int64_t> parse_reply(std::string_view resp, bool* ok) {
  *ok = true;
  if (resp == "+OK\r\n" || resp == "$-1\r\n") return std::nullopt;
  if (resp.size() >= 3 && resp[0] == ':' && resp.ends_with("\r\n")) {
    int64_t v;
    if (parse_int(resp.substr(1, resp.size() - 3), &v)) return v;
  }
  *ok = false;
  return std::nullopt;
}

}  // namespace hmdb::sim
