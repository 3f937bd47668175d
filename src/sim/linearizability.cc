// sim/linearizability.cc — the Wing & Gong / Lowe search for register histories.
//
// For one key, the search linearizes operations one at a time. An operation may go next
// if it was invoked before every not-yet-linearized operation with a known return had
// returned (otherwise some op finished before it started and must go first). The state
// of the search is (set of linearized ops, register value); a memo of visited states
// (Lowe) makes the search polynomial for histories with little concurrency. Unknown ops
// never constrain others (their return is +infinity) and need not be linearized at all.
#include "sim/linearizability.h"

#include <algorithm>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

namespace hmdb::sim {
namespace {

constexpr uint64_t kInfinity = UINT64_MAX;
constexpr int64_t kNil = INT64_MIN;  // register value of an absent key
constexpr int64_t kAny = INT64_MIN + 1;  // after a SUMSTORE whose reply is unknown: any value

struct Op {
  OpKind kind;
  int64_t arg;
  bool has_result;  // false: result unknown (unchecked)
  int64_t result;   // kNil for a GET of nil
  uint64_t invoke;
  uint64_t ret;
  bool required;
  size_t source;  // index in the caller's history, for explanations
};

struct StateKey {
  std::vector<uint64_t> done;
  int64_t value;
  bool operator==(const StateKey&) const = default;
};
struct StateKeyHash {
  size_t operator()(const StateKey& k) const {
    uint64_t h = static_cast<uint64_t>(k.value) * 0x9e3779b97f4a7c15ull;
    for (uint64_t w : k.done) h = (h ^ w) * 0x100000001b3ull + (h >> 29);
    return h;
  }
};

class KeySearch {
 public:
  explicit KeySearch(std::vector<Op> ops) : ops_(std::move(ops)) {
    std::sort(ops_.begin(), ops_.end(), [](const Op& a, const Op& b) { return a.invoke < b.invoke; });
    done_.assign((ops_.size() + 63) / 64, 0);
    for (const Op& o : ops_) required_left_ += o.required;
  }
  // Returns true if linearizable; sets *inconclusive if the search was cut off.
  bool run(bool* inconclusive) {
    bool ok = dfs(kNil);
    *inconclusive = cut_off_;
    return ok || cut_off_;
  }
  size_t deepest() const { return deepest_; }

 private:
  bool is_done(size_t i) const { return done_[i / 64] >> (i % 64) & 1; }
  void set_done(size_t i, bool v) {
    if (v) done_[i / 64] |= 1ull << (i % 64);
    else done_[i / 64] &= ~(1ull << (i % 64));
  }

  // Applies op to value: false if the op's observed result contradicts the model.
  static bool step(const Op& o, int64_t value, int64_t* next) {
    switch (o.kind) {
      case OpKind::kSet: *next = o.arg; return true;
      case OpKind::kIncr: {
        if (value == kAny) {  // what it returns says what the register held
          *next = o.has_result ? o.result : kAny;
          return true;
        }
        int64_t v = (value == kNil ? 0 : value) + 1;
        if (o.has_result && o.result != v) return false;
        *next = v;
        return true;
      }
      case OpKind::kGet:
        if (value == kAny) {
          *next = o.has_result ? o.result : kAny;
          return true;
        }
        *next = value;
        return !o.has_result || o.result == value;
      case OpKind::kSumStore:
        *next = o.has_result ? o.result : kAny;
        return true;
    }
    return false;
  }

  bool dfs(int64_t value) {
    if (required_left_ == 0) return true;
    if (cut_off_) return false;
    if (!memo_.insert(StateKey{done_, value}).second) return false;
    if (memo_.size() > kMaxSearchStates) { cut_off_ = true; return false; }
    deepest_ = std::max(deepest_, linearized_);
    uint64_t min_ret = kInfinity;
    for (size_t i = 0; i < ops_.size(); i++)
      if (!is_done(i)) min_ret = std::min(min_ret, ops_[i].ret);
    for (size_t i = 0; i < ops_.size() && ops_[i].invoke < min_ret; i++) {
      if (is_done(i)) continue;
      int64_t next;
      if (!step(ops_[i], value, &next)) continue;
      set_done(i, true);
      required_left_ -= ops_[i].required;
      linearized_++;
      bool ok = dfs(next);
      linearized_--;
      required_left_ += ops_[i].required;
      set_done(i, false);
      if (ok) return true;
    }
    return false;
  }

  std::vector<Op> ops_;
  std::vector<uint64_t> done_;
  size_t required_left_ = 0;
  size_t linearized_ = 0;
  size_t deepest_ = 0;
  bool cut_off_ = false;
  std::unordered_set<StateKey, StateKeyHash> memo_;
};

}  // namespace

std::string describe(const HistoryOp& op) {
  std::string what;
  switch (op.kind) {
    case OpKind::kSet: what = fmt::format("SET {} {}", op.key, op.arg); break;
    case OpKind::kIncr: what = fmt::format("INCR {}", op.key); break;
    case OpKind::kGet: what = fmt::format("GET {}", op.key); break;
    case OpKind::kSumStore: what = fmt::format("SUMSTORE {} <every key, 4 times>", op.key); break;
  }
  std::string res = op.result ? std::to_string(*op.result) : (op.kind == OpKind::kSet ? "OK" : "nil");
  switch (op.outcome) {
    case OpOutcome::kOk: return fmt::format("c{} {} -> {} [{}..{}]", op.client, what, res, op.invoke, op.ret);
    case OpOutcome::kFailed: return fmt::format("c{} {} -> failed [{}..{}]", op.client, what, op.invoke, op.ret);
    case OpOutcome::kUnknown: return fmt::format("c{} {} -> unknown [{}..]", op.client, what, op.invoke);
    case OpOutcome::kCommittedUnknown:
      return fmt::format("c{} {} -> committed (reply lost) [{}..{}]", op.client, what, op.invoke,
                         op.ret ? std::to_string(op.ret) : "");
  }
  return what;
}

LinearizabilityResult check_linearizable(const std::vector<HistoryOp>& history) {
  std::map<std::string, std::vector<Op>> per_key;  // ordered: deterministic report
  for (size_t i = 0; i < history.size(); i++) {
    const HistoryOp& h = history[i];
    if (h.outcome == OpOutcome::kFailed) continue;
    if (h.kind == OpKind::kGet && h.outcome != OpOutcome::kOk) continue;  // a lost read has no effect
    Op o;
    o.kind = h.kind;
    o.arg = h.arg;
    o.has_result = h.outcome == OpOutcome::kOk && h.kind != OpKind::kSet;
    o.result = h.result ? *h.result : kNil;
    o.invoke = h.invoke;
    o.ret = h.outcome == OpOutcome::kOk || (h.outcome == OpOutcome::kCommittedUnknown && h.ret != 0) ? h.ret : kInfinity;
    o.required = h.outcome != OpOutcome::kUnknown;
    o.source = i;
    per_key[h.key].push_back(o);
  }
  LinearizabilityResult result;
  for (auto& [key, ops] : per_key) {
    std::vector<size_t> sources;
    for (const Op& o : ops) sources.push_back(o.source);
    KeySearch search(std::move(ops));
    bool inconclusive = false;
    if (!search.run(&inconclusive)) {
      result.ok = false;
      result.key = key;
      std::sort(sources.begin(), sources.end(),
                [&](size_t a, size_t b) { return history[a].invoke < history[b].invoke; });
      result.explanation = fmt::format("history of key {} ({} ops) is not linearizable; at most {} ops "
                                       "could be ordered. Ops by invocation:\n",
                                       key, sources.size(), search.deepest());
      for (size_t s : sources) result.explanation += "  " + describe(history[s]) + "\n";
      return result;
    }
    result.inconclusive |= inconclusive;
  }
  return result;
}

}  // namespace hmdb::sim
