// sim/register_app.cc — commands, queries and snapshot encoding of the simulator's app.
#include "sim/register_app.h"

#include <charconv>
#include <memory>
#include <vector>

#include "common/assert.h"

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
// Every change of a v1 register goes through this first (the snapshot in slices keeps what
// the register was at its index).
void before_change(RegisterApp::State& s, std::string_view key) {
  if (s.saving) [[unlikely]] s.saving->before_change(key);
}

void apply_set(RegisterApp::State& s, const SetArgs& a, const ApplyContext&, Reply& r) {
  s.changes++;
  before_change(s, a.key);
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
  s.changes++;
  before_change(s, a.key);
  int64_t& v = s.values[a.key];  // absent counts as 0, as in Redis
  v += 1;
  r.integer(v);
}

// SUMSTORE dst k [k ...]: dst becomes the sum of the keys' values (absent counts as 0) modulo
// kSumModulus, the reply. Where the engine slices writes (Options::sliced_writes: one element a slice), it is
// applied by a producer that reads one key a slice across loop turns and stores the sum at
// finish(): were anything applied between its slices, nodes would store sums of different
// states, which the state-digest check compares at every index.
struct SumStoreArgs {
  std::string dst;
  std::vector<std::string> keys;
};
bool parse_sumstore(Args argv, SumStoreArgs& out, std::string&) {
  out.dst = std::string(argv[1]);
  for (size_t i = 2; i < argv.size(); i++) out.keys.emplace_back(argv[i]);
  return true;
}

template <class State, class ValueOf, class Store>
class SumStoreProducer final : public ApplyProducer {
 public:
  SumStoreProducer(State& s, const SumStoreArgs& a, ValueOf value_of, Store store)
      : s_(s), a_(a), value_of_(value_of), store_(store) {}
  bool next(const SliceBudget& budget) override {
    for (size_t made = 0; next_ < a_.keys.size() && made < budget.elements; next_++, made++)
      sum_ = static_cast<int64_t>((static_cast<uint64_t>(sum_) + static_cast<uint64_t>(value_of_(s_, a_.keys[next_]).value_or(0))) %
                                  static_cast<uint64_t>(kSumModulus));
    return next_ == a_.keys.size();
  }
  void finish(const ApplyContext&, Reply& r) override {
    s_.changes++;
    store_(s_, a_.dst, sum_);
    r.integer(sum_);
  }

 private:
  State& s_;
  const SumStoreArgs a_;
  ValueOf value_of_;
  Store store_;
  size_t next_ = 0;
  int64_t sum_ = 0;
};

template <class State, class ValueOf, class Store>
void apply_sumstore(State& s, const SumStoreArgs& a, const ApplyContext& ctx, Reply& r, ValueOf value_of, Store store) {
  auto p = std::make_unique<SumStoreProducer<State, ValueOf, Store>>(s, a, value_of, store);
  if (ctx.slices(a.keys.size())) {
    ctx.produce(r, std::move(p));
    return;
  }
  while (!p->next(SliceBudget{})) {
  }
  p->finish(ctx, r);
}

void run_get(const RegisterApp::State& s, Args argv, const QueryContext&, Reply& r) {
  auto it = s.values.find(argv[1]);
  if (it == s.values.end()) r.null();
  else r.integer(it->second);
}

// MGET k [k ...]: an array of the state's change count (State::changes), each key's value
// (an integer, or nil), and the change count again. Where the engine slices replies it is
// made by a producer, `budget.elements` elements per slice: the two counts then come from
// the first and the last slice, and differ if anything changed the state in between.
template <class State, class ValueOf>
class MgetProducer final : public ReplyProducer {
 public:
  MgetProducer(const State& s, std::vector<std::string> keys, ValueOf value_of)
      : s_(s), keys_(std::move(keys)), value_of_(value_of) {}
  bool next(Reply& r, const SliceBudget& budget) override {
    size_t made = 0;
    if (next_ == 0) {
      r.array(keys_.size() + 2);
      r.integer(static_cast<int64_t>(s_.changes));
      next_++;
      made++;
    }
    for (; next_ <= keys_.size() && made < budget.elements; next_++, made++) {
      std::optional<int64_t> v = value_of_(s_, keys_[next_ - 1]);
      if (v) r.integer(*v);
      else r.null();
    }
    if (next_ <= keys_.size() || made >= budget.elements) return false;
    r.integer(static_cast<int64_t>(s_.changes));
    return true;
  }

 private:
  const State& s_;
  std::vector<std::string> keys_;
  ValueOf value_of_;
  size_t next_ = 0;  // 0: the header and the first count; k: the k-th key
};

template <class State, class ValueOf>
void run_mget(const State& s, Args argv, const QueryContext& ctx, Reply& r, ValueOf value_of) {
  std::vector<std::string> keys;
  for (size_t i = 1; i < argv.size(); i++) keys.emplace_back(argv[i]);
  const size_t elements = keys.size() + 2;
  auto p = std::make_unique<MgetProducer<State, ValueOf>>(s, std::move(keys), value_of);
  if (ctx.slices(elements)) ctx.produce(r, std::move(p));
  else while (!p->next(r, SliceBudget{})) {}
}

std::optional<int64_t> value_v1(const RegisterApp::State& s, std::string_view key) {
  auto it = s.values.find(key);
  if (it == s.values.end()) return std::nullopt;
  return it->second;
}
void run_mget_v1(const RegisterApp::State& s, Args argv, const QueryContext& ctx, Reply& r) {
  run_mget(s, argv, ctx, r, &value_v1);
}
void store_v1(RegisterApp::State& s, const std::string& key, int64_t v) {
  before_change(s, key);
  s.values[key] = v;
}
void apply_sumstore_v1(RegisterApp::State& s, const SumStoreArgs& a, const ApplyContext& ctx, Reply& r) {
  apply_sumstore(s, a, ctx, r, &value_v1, &store_v1);
}

// ---- version 2 ----
using RegisterV2 = RegisterAppV2::Register;

struct IncrArgsV2 {
  std::string key;
  std::optional<int64_t> step;  // absent: the key's step
};
bool parse_incr_v2(Args argv, IncrArgsV2& out, std::string& error) {
  out.key = std::string(argv[1]);
  if (argv.size() == 3) {
    int64_t n = 0;
    if (!parse_int(argv[2], &n)) { error = "ERR step is not an integer"; return false; }
    out.step = n;
  }
  return true;
}
IncrArgsV2 incr_from_v1(const IncrArgs& old) { return IncrArgsV2{old.key, std::nullopt}; }
void apply_incr_v2(RegisterAppV2::State& s, const IncrArgsV2& a, const ApplyContext&, Reply& r) {
  s.changes++;
  RegisterV2& reg = s.registers[a.key];
  if (a.step) reg.step = *a.step;
  reg.value += reg.step;
  r.integer(reg.value);
}
void apply_set_v2(RegisterAppV2::State& s, const SetArgs& a, const ApplyContext&, Reply& r) {
  s.changes++;
  s.registers[a.key].value = a.value;
  r.ok();
}
void run_get_v2(const RegisterAppV2::State& s, Args argv, const QueryContext&, Reply& r) {
  auto it = s.registers.find(argv[1]);
  if (it == s.registers.end()) r.null();
  else r.integer(it->second.value);
}
std::optional<int64_t> value_v2(const RegisterAppV2::State& s, std::string_view key) {
  auto it = s.registers.find(key);
  if (it == s.registers.end()) return std::nullopt;
  return it->second.value;
}
void run_mget_v2(const RegisterAppV2::State& s, Args argv, const QueryContext& ctx, Reply& r) {
  run_mget(s, argv, ctx, r, &value_v2);
}
void store_v2(RegisterAppV2::State& s, const std::string& key, int64_t v) { s.registers[key].value = v; }
void apply_sumstore_v2(RegisterAppV2::State& s, const SumStoreArgs& a, const ApplyContext& ctx, Reply& r) {
  apply_sumstore(s, a, ctx, r, &value_v2, &store_v2);
}

// A v1 snapshot's registers, migrated: value kept, step 1 (v1 always added 1). With
// drop_value (the planted bug) the value is not carried over.
bool load_v1_layout(RegisterAppV2::State& s, Decoder& in, bool drop_value) {
  s.changes++;
  uint64_t n = in.count<std::string, int64_t>();
  if (n > RegisterAppV2::kMaxKeys) return false;
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string key(in.bytes());
    int64_t v = in.i64();
    s.registers[key] = RegisterV2{drop_value ? 0 : v, 1};  // PLANTED BUG when drop_value
  }
  return in.done();
}

}  // namespace

void RegisterAppV2::define(Commands<State>& c) {
  c.write<SetArgs>("SET", 3, parse_set, apply_set_v2);
  c.write<IncrArgsV2>("INCR", {2, 3}, parse_incr_v2, apply_incr_v2);
  c.query("GET", 2, run_get_v2);
  c.query("MGET", -2, run_mget_v2);
  c.write<SumStoreArgs>("SUMSTORE", -3, parse_sumstore, apply_sumstore_v2);
  c.version(2).upcast("INCR", 2, &parse_incr, &incr_from_v1);
}

void RegisterAppV2::save(const State& s, Encoder& out) {
  out.varint(s.registers.size());
  for (const auto& [k, r] : s.registers) {
    out.bytes(k);
    out.i64(r.value);
    out.i64(r.step);
  }
}

bool RegisterAppV2::load(State& s, Decoder& in, uint32_t version) {
  if (version == 1) return load_v1_layout(s, in, false);
  if (version != kSchemaVersion) return false;
  s.changes++;
  uint64_t n = in.count<std::string, int64_t, int64_t>();
  if (n > kMaxKeys) return false;
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string key(in.bytes());
    int64_t v = in.i64();
    int64_t step = in.i64();
    s.registers[key] = RegisterV2{v, step};
  }
  return in.done();
}

bool RegisterAppV2::save_as(const State& s, uint32_t version, Encoder& out) {
  if (version != 1) return false;
  for (const auto& [k, r] : s.registers)
    if (r.step != 1) return false;  // a v1 node cannot hold a step: not expressible at v1
  out.varint(s.registers.size());
  for (const auto& [k, r] : s.registers) {
    out.bytes(k);
    out.i64(r.value);
  }
  return true;
}

bool RegisterAppV2DropsField::load(State& s, Decoder& in, uint32_t version) {
  if (version == 1) return load_v1_layout(s, in, true);
  return RegisterAppV2::load(s, in, version);
}

std::map<std::string, int64_t, std::less<>> register_values(StateMachine& app) {
  if (auto* v1 = dynamic_cast<RegisterHost*>(&app)) return v1->state().values;
  if (auto* bug = dynamic_cast<RegisterHostSavesWithoutCopy*>(&app)) return bug->state().values;
  std::map<std::string, int64_t, std::less<>> out;
  const RegisterAppV2::State* s = nullptr;
  if (auto* v2 = dynamic_cast<RegisterHostV2*>(&app)) s = &v2->state();
  else if (auto* bug = dynamic_cast<RegisterHostV2DropsField*>(&app)) s = &bug->state();
  HMDB_ASSERT(s, "not one of the simulator's register apps");
  for (const auto& [k, r] : s->registers) out.emplace(k, r.value);
  return out;
}

void RegisterApp::define(Commands<State>& c) {
  c.write<SetArgs>("SET", 3, parse_set, apply_set);
  c.write<IncrArgs>("INCR", 2, parse_incr, apply_incr);
  c.query("GET", 2, run_get);
  c.query("MGET", -2, run_mget_v1);
  c.write<SumStoreArgs>("SUMSTORE", -3, parse_sumstore, apply_sumstore_v1);
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
  s.changes++;
  uint64_t n = in.count<std::string, int64_t>();
  if (n > kMaxKeys) return false;
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string key(in.bytes());
    int64_t v = in.i64();
    s.values[key] = v;
  }
  return in.done();
}

std::unique_ptr<SaveProducer> RegisterApp::begin_save(State& s) {
  if (s.saving) return nullptr;  // one at a time
  return std::make_unique<RegisterSaveCursor>(s, true);
}

std::unique_ptr<SaveProducer> RegisterAppSavesWithoutCopy::begin_save(State& s) {
  if (s.saving) return nullptr;
  return std::make_unique<RegisterSaveCursor>(s, false);  // PLANTED BUG: keeps nothing
}

RegisterSaveCursor::RegisterSaveCursor(RegisterApp::State& s, bool copy) : s_(s), count_(s.values.size()), copy_(copy) {
  HMDB_ASSERT(s.saving == nullptr, "one snapshot in slices at a time");
  s_.saving = this;
}

RegisterSaveCursor::~RegisterSaveCursor() { unhook(); }

void RegisterSaveCursor::unhook() {
  if (s_.saving == this) s_.saving = nullptr;
}

void RegisterSaveCursor::before_change(std::string_view key) {
  if (!copy_ || !ahead(key) || kept_.find(key) != kept_.end()) return;
  auto it = s_.values.find(key);
  kept_.emplace(std::string(key), it == s_.values.end() ? std::nullopt : std::optional<int64_t>(it->second));
}

bool RegisterSaveCursor::next(Encoder& out, const SliceBudget& budget) {
  if (done_) return true;
  if (!started_) {
    out.varint(count_);
    started_ = true;
  }
  auto live = cursor_ ? s_.values.upper_bound(*cursor_) : s_.values.begin();
  auto kept = kept_.begin();  // every kept register is ahead of the cursor
  for (size_t made = 0; (live != s_.values.end() || kept != kept_.end()) && made < std::max<size_t>(budget.elements, 1);
       made++) {
    if (kept == kept_.end() || (live != s_.values.end() && live->first < kept->first)) {
      out.bytes(live->first);  // unchanged since I: a change would have kept it first
      out.i64(live->second);
      cursor_ = live->first;
      ++live;
      continue;
    }
    if (live != s_.values.end() && live->first == kept->first) ++live;  // its value at I is the kept one
    if (kept->second) {
      out.bytes(kept->first);
      out.i64(*kept->second);
    }  // else created after I: not in this snapshot
    cursor_ = kept->first;
    kept = kept_.erase(kept);
  }
  if (live != s_.values.end() || kept != kept_.end()) return false;
  done_ = true;
  unhook();
  return true;
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
