// sim/linearizability.h — checks a client-visible history of register operations for
// linearizability (Wing & Gong's search with Lowe's memoisation, one key at a time:
// linearizability is compositional, so per-key checking is exact and far cheaper).
//
// Operations are SET k v, INCR k (returns the new value) and GET k (returns the value or
// nil). Times are event sequence numbers: invoke < return, and all distinct, so "a returned
// before b was invoked" is exact. An operation whose outcome the client never learnt
// (timeout, crash) is kUnknown: it may have taken effect at any point after its invocation,
// or never. A caller that knows from the committed log that such a write did take effect
// marks it kCommittedUnknown (must take effect, at an unknown time, result unchecked).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace hmdb::sim {

// kSumStore (Options::sliced_writes): writes the key the sum of several registers, which its
// reply tells; checked here as a write of that value (of an unknown value when its reply is
// unknown: the register may then hold anything until an op shows what), not the sum itself
// (the exactly-once register model and the state digest check that).
enum class OpKind : uint8_t { kSet, kIncr, kGet, kSumStore };
enum class OpOutcome : uint8_t {
  kOk,                // returned with a result
  kFailed,            // definitely had no effect (refused)
  kUnknown,           // may or may not have taken effect
  kCommittedUnknown,  // took effect (by `ret` if known), result unknown
};

struct HistoryOp {
  uint32_t client = 0;
  std::string key;
  OpKind kind = OpKind::kGet;
  int64_t arg = 0;                // SET's value
  std::optional<int64_t> result;  // INCR's new value, GET's value (nullopt: nil)
  uint64_t invoke = 0;
  // kOk: when the reply arrived. kCommittedUnknown: when the log first showed it committed
  // (it took effect by then), or 0 if not known. Otherwise unused.
  uint64_t ret = 0;
  OpOutcome outcome = OpOutcome::kUnknown;
};

struct LinearizabilityResult {
  bool ok = true;
  bool inconclusive = false;  // the search hit kMaxSearchStates on some key
  std::string key;            // the first key that is not linearizable
  std::string explanation;
};

// Bound on search states per key before giving up as inconclusive (not a failure).
inline constexpr uint64_t kMaxSearchStates = 2'000'000;

LinearizabilityResult check_linearizable(const std::vector<HistoryOp>& history);

std::string describe(const HistoryOp& op);

}  // namespace hmdb::sim
