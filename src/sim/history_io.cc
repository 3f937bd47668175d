// sim/history_io.cc — the text forms of a history (see history_io.h): a flat JSON object per
// line or a whitespace-separated plain line, and the mapping of wall-clock-like times to the
// checker's distinct event numbers.
//
// The JSON reader accepts exactly what a history line needs (one flat object whose values
// are strings, integers or null) and rejects anything else with a message, rather than
// pulling in a JSON library for it.
#include "sim/history_io.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <optional>

#include <fmt/format.h>

namespace hmdb::sim {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

bool parse_i64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_u64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// One JSON value of a flat object: a string, an integer (kept as its text) or null.
struct JsonValue {
  enum class Type { kString, kNumber, kNull } type = Type::kNull;
  std::string text;
};

class FlatJsonParser {
 public:
  explicit FlatJsonParser(std::string_view s) : s_(s) {}

  Status parse(std::map<std::string, JsonValue>* out) {
    skip_ws();
    if (!eat('{')) return error("expected '{'");
    skip_ws();
    if (eat('}')) return finish();
    while (true) {
      skip_ws();
      std::string name;
      if (Status st = parse_string(&name); !st) return st;
      skip_ws();
      if (!eat(':')) return error("expected ':' after a field name");
      skip_ws();
      JsonValue v;
      if (Status st = parse_value(&v); !st) return st;
      if (!out->emplace(std::move(name), std::move(v)).second) return error("duplicate field");
      skip_ws();
      if (eat(',')) continue;
      if (eat('}')) return finish();
      return error("expected ',' or '}'");
    }
  }

 private:
  Status finish() {
    skip_ws();
    return pos_ == s_.size() ? Status::ok() : error("text after the object");
  }
  Status error(std::string_view what) const {
    return Status::invalid_argument(fmt::format("JSON: {} at column {}", what, pos_ + 1));
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\r')) pos_++;
  }
  bool eat(char c) {
    if (pos_ < s_.size() && s_[pos_] == c) {
      pos_++;
      return true;
    }
    return false;
  }
  Status parse_string(std::string* out) {
    if (!eat('"')) return error("expected a string");
    while (pos_ < s_.size()) {
      char c = s_[pos_++];
      if (c == '"') return Status::ok();
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= s_.size()) break;
      char e = s_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out->push_back(e); break;
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        default: return error("unsupported escape in a string");  // \uXXXX: keys are ASCII
      }
    }
    return error("unterminated string");
  }
  Status parse_value(JsonValue* v) {
    if (pos_ < s_.size() && s_[pos_] == '"') {
      v->type = JsonValue::Type::kString;
      return parse_string(&v->text);
    }
    if (s_.substr(pos_, 4) == "null") {
      pos_ += 4;
      v->type = JsonValue::Type::kNull;
      return Status::ok();
    }
    size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') pos_++;
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') pos_++;
    if (pos_ == start || (pos_ == start + 1 && s_[start] == '-')) return error("expected a string, an integer or null");
    v->type = JsonValue::Type::kNumber;
    v->text = std::string(s_.substr(start, pos_ - start));
    return Status::ok();
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// The fields of one op as text, whichever form they came from. "-" or absent = none.
struct RawOp {
  std::string client, key, kind, arg, result, invoke, ret, outcome;
  bool result_nil = false;
};

Status build_op(const RawOp& r, HistoryOp* op) {
  uint64_t client;
  if (!parse_u64(r.client, &client) || client > UINT32_MAX)
    return Status::invalid_argument(fmt::format("bad client '{}'", r.client));
  op->client = static_cast<uint32_t>(client);
  if (r.key.empty() || r.key.size() > kMaxHistoryKeyBytes)
    return Status::invalid_argument(fmt::format("key must be 1..{} bytes", kMaxHistoryKeyBytes));
  op->key = r.key;
  if (r.kind == "set") op->kind = OpKind::kSet;
  else if (r.kind == "incr") op->kind = OpKind::kIncr;
  else if (r.kind == "get") op->kind = OpKind::kGet;
  else return Status::invalid_argument(fmt::format("bad kind '{}' (set, incr or get)", r.kind));

  if (r.outcome == "ok") op->outcome = OpOutcome::kOk;
  else if (r.outcome == "failed") op->outcome = OpOutcome::kFailed;
  else if (r.outcome == "unknown") op->outcome = OpOutcome::kUnknown;
  else if (r.outcome == "committed") op->outcome = OpOutcome::kCommittedUnknown;
  else return Status::invalid_argument(fmt::format("bad outcome '{}' (ok, failed, unknown or committed)", r.outcome));

  op->arg = 0;
  if (op->kind == OpKind::kSet && !parse_i64(r.arg, &op->arg))
    return Status::invalid_argument(fmt::format("SET needs an integer arg, got '{}'", r.arg));

  op->result.reset();
  if (!r.result_nil && !r.result.empty()) {
    int64_t v;
    if (!parse_i64(r.result, &v)) return Status::invalid_argument(fmt::format("bad result '{}'", r.result));
    op->result = v;
  }
  if (op->outcome == OpOutcome::kOk) {
    if (op->kind == OpKind::kIncr && !op->result)
      return Status::invalid_argument("an ok INCR needs its result (the new value)");
    if (op->kind == OpKind::kGet && !op->result && !r.result_nil)
      return Status::invalid_argument("an ok GET needs its result (a value or nil)");
  }

  if (!parse_u64(r.invoke, &op->invoke)) return Status::invalid_argument(fmt::format("bad invoke '{}'", r.invoke));
  op->ret = 0;
  if (!r.ret.empty() && !parse_u64(r.ret, &op->ret)) return Status::invalid_argument(fmt::format("bad ret '{}'", r.ret));
  if (op->outcome == OpOutcome::kOk && r.ret.empty()) return Status::invalid_argument("an ok op needs its ret time");
  return Status::ok();
}

Status parse_json_line(std::string_view line, HistoryOp* op) {
  std::map<std::string, JsonValue> fields;
  if (Status st = FlatJsonParser(line).parse(&fields); !st) return st;
  static constexpr std::string_view kKnown[] = {"client", "key", "kind", "arg", "result", "invoke", "ret", "outcome"};
  for (const auto& [name, v] : fields)
    if (std::find(std::begin(kKnown), std::end(kKnown), name) == std::end(kKnown))
      return Status::invalid_argument(fmt::format("unknown field '{}'", name));
  RawOp r;
  auto text = [&](const char* name, std::string* out) {
    auto it = fields.find(name);
    if (it != fields.end() && it->second.type != JsonValue::Type::kNull) *out = it->second.text;
  };
  text("client", &r.client);
  text("key", &r.key);
  text("kind", &r.kind);
  text("arg", &r.arg);
  text("result", &r.result);
  text("invoke", &r.invoke);
  text("ret", &r.ret);
  text("outcome", &r.outcome);
  auto res = fields.find("result");
  r.result_nil = res != fields.end() && res->second.type == JsonValue::Type::kNull;
  // A string "nil" as result means the same as null.
  if (r.result == "nil") {
    r.result.clear();
    r.result_nil = true;
  }
  return build_op(r, op);
}

Status parse_plain_line(std::string_view line, HistoryOp* op) {
  std::vector<std::string> f;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) i++;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') i++;
    if (i > start) f.emplace_back(line.substr(start, i - start));
  }
  if (f.size() != 8)
    return Status::invalid_argument(
        fmt::format("expected 8 fields '<client> <key> <kind> <arg> <result> <invoke> <ret> <outcome>', got {}",
                    f.size()));
  auto dash = [](const std::string& s) { return s == "-" ? std::string() : s; };
  RawOp r{f[0], f[1], f[2], dash(f[3]), dash(f[4]), f[5], dash(f[6]), f[7], false};
  if (f[4] == "nil") {
    r.result.clear();
    r.result_nil = true;
  }
  return build_op(r, op);
}

}  // namespace

Status parse_history_line(std::string_view line, HistoryOp* op) {
  line = trim(line);
  if (line.empty() || line.front() == '#') return Status::not_found("blank");
  if (line.size() > kMaxHistoryLineBytes)
    return Status::invalid_argument(fmt::format("line longer than {} bytes", kMaxHistoryLineBytes));
  return line.front() == '{' ? parse_json_line(line, op) : parse_plain_line(line, op);
}

Status read_history(std::istream& in, std::vector<HistoryOp>* history) {
  std::string line;
  size_t number = 0;
  while (std::getline(in, line)) {
    number++;
    HistoryOp op;
    Status st = parse_history_line(line, &op);
    if (st.is_not_found()) continue;
    if (!st) return Status::invalid_argument(fmt::format("line {}: {}", number, st.message()));
    history->push_back(std::move(op));
  }
  if (in.bad()) return Status::io_error("reading the history failed");
  return Status::ok();
}

Status normalize_times(std::vector<HistoryOp>* history) {
  // Which ops carry a meaningful ret: the checker reads it for ok ops and for committed ops
  // with a known commit time; a failed op's ret is kept (renumbered) for the report only.
  auto has_ret = [](const HistoryOp& op) {
    return op.outcome == OpOutcome::kOk || (op.outcome != OpOutcome::kUnknown && op.ret != 0);
  };
  struct Event {
    uint64_t time;
    int phase;  // 0 = invoke, 1 = return: invocations first at equal times
    size_t op;
  };
  std::vector<Event> events;
  events.reserve(history->size() * 2);
  for (size_t i = 0; i < history->size(); i++) {
    const HistoryOp& op = (*history)[i];
    if (has_ret(op) && op.ret < op.invoke)
      return Status::invalid_argument(fmt::format("op returned before it was invoked: {}", describe(op)));
    events.push_back({op.invoke, 0, i});
    if (has_ret(op)) events.push_back({op.ret, 1, i});
  }
  std::sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    if (a.time != b.time) return a.time < b.time;
    if (a.phase != b.phase) return a.phase < b.phase;
    return a.op < b.op;
  });
  uint64_t next = 1;
  for (HistoryOp& op : *history) op.ret = 0;
  for (const Event& e : events) {
    HistoryOp& op = (*history)[e.op];
    if (e.phase == 0) op.invoke = next++;
    else op.ret = next++;
  }
  return Status::ok();
}

}  // namespace hmdb::sim
