// tests/sim/linearizability_test.cc — the history checker accepts linearizable register
// histories and rejects the classic violations (stale read, lost write, bad increment).
#include "sim/linearizability.h"

#include <gtest/gtest.h>

namespace hmdb::sim {
namespace {

HistoryOp set(uint32_t c, int64_t v, uint64_t inv, uint64_t ret, OpOutcome o = OpOutcome::kOk) {
  HistoryOp h;
  h.client = c; h.key = "k"; h.kind = OpKind::kSet; h.arg = v; h.invoke = inv; h.ret = ret; h.outcome = o;
  return h;
}
HistoryOp incr(uint32_t c, std::optional<int64_t> r, uint64_t inv, uint64_t ret, OpOutcome o = OpOutcome::kOk) {
  HistoryOp h;
  h.client = c; h.key = "k"; h.kind = OpKind::kIncr; h.result = r; h.invoke = inv; h.ret = ret; h.outcome = o;
  return h;
}
HistoryOp get(uint32_t c, std::optional<int64_t> r, uint64_t inv, uint64_t ret) {
  HistoryOp h;
  h.client = c; h.key = "k"; h.kind = OpKind::kGet; h.result = r; h.invoke = inv; h.ret = ret; h.outcome = OpOutcome::kOk;
  return h;
}

TEST(Linearizability, SequentialHistoryIsLinearizable) {
  EXPECT_TRUE(check_linearizable({get(0, std::nullopt, 1, 2), set(0, 5, 3, 4), get(0, 5, 5, 6), incr(0, 6, 7, 8),
                                  get(1, 6, 9, 10)}).ok);
}

TEST(Linearizability, StaleReadAfterWriteReturnedIsRejected) {
  auto r = check_linearizable({set(0, 5, 1, 2), set(0, 7, 3, 4), get(1, 5, 5, 6)});
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.key, "k");
}

TEST(Linearizability, ConcurrentReadMaySeeEitherValue) {
  // The read overlaps the second write: 5 and 7 are both fine.
  EXPECT_TRUE(check_linearizable({set(0, 5, 1, 2), set(0, 7, 3, 6), get(1, 5, 4, 5)}).ok);
  EXPECT_TRUE(check_linearizable({set(0, 5, 1, 2), set(0, 7, 3, 6), get(1, 7, 4, 5)}).ok);
}

TEST(Linearizability, ReadsMustNotGoBackInTime) {
  // Two reads concurrent with the write, but the second starts after the first ended: once
  // 7 was seen, 5 may not come back.
  EXPECT_FALSE(check_linearizable({set(0, 5, 1, 2), set(0, 7, 3, 10), get(1, 7, 4, 5), get(2, 5, 6, 7)}).ok);
}

TEST(Linearizability, DuplicateIncrementIsRejected) {
  EXPECT_FALSE(check_linearizable({incr(0, 1, 1, 2), incr(1, 1, 3, 4)}).ok);
  EXPECT_TRUE(check_linearizable({incr(0, 2, 1, 4), incr(1, 1, 2, 3)}).ok);
}

TEST(Linearizability, UnknownWriteMayOrMayNotHaveHappened) {
  EXPECT_TRUE(check_linearizable({set(0, 5, 1, 0, OpOutcome::kUnknown), get(1, 5, 2, 3)}).ok);
  EXPECT_TRUE(check_linearizable({set(0, 5, 1, 0, OpOutcome::kUnknown), get(1, std::nullopt, 2, 3)}).ok);
  // ... but not before it was invoked.
  EXPECT_FALSE(check_linearizable({get(1, 5, 1, 2), set(0, 5, 3, 0, OpOutcome::kUnknown)}).ok);
}

TEST(Linearizability, CommittedUnknownWriteTookEffectByItsCommitTime) {
  // An increment whose reply was lost, but which the log shows committed by time 3 (ret):
  // it explains a read of 2, and it cannot be placed after that read.
  EXPECT_TRUE(check_linearizable({incr(0, std::nullopt, 1, 3, OpOutcome::kCommittedUnknown), incr(1, 1, 2, 4),
                                  get(1, 2, 5, 6)}).ok);
  EXPECT_FALSE(check_linearizable({incr(0, std::nullopt, 1, 3, OpOutcome::kCommittedUnknown), incr(1, 1, 4, 5),
                                   get(1, 1, 6, 7)}).ok);
  // With no known commit time (ret 0) it may go last.
  EXPECT_TRUE(check_linearizable({incr(0, std::nullopt, 1, 0, OpOutcome::kCommittedUnknown), incr(1, 1, 4, 5),
                                  get(1, 1, 6, 7)}).ok);
}

TEST(Linearizability, FailedWriteHasNoEffect) {
  EXPECT_FALSE(check_linearizable({set(0, 5, 1, 2, OpOutcome::kFailed), get(1, 5, 3, 4)}).ok);
}

TEST(Linearizability, KeysAreIndependent) {
  auto a = set(0, 5, 1, 2);
  auto b = get(1, std::nullopt, 3, 4);
  b.key = "other";
  EXPECT_TRUE(check_linearizable({a, b}).ok);
}

TEST(Linearizability, ManyConcurrentOpsStayFast) {
  // 4 clients, 200 overlapping ops on one key: the memo keeps this quick.
  std::vector<HistoryOp> h;
  uint64_t t = 0;
  int64_t value = 0;
  for (int round = 0; round < 50; round++) {
    uint64_t inv = ++t;
    for (uint32_t c = 0; c < 3; c++) h.push_back(incr(c, std::nullopt, inv + c, 0));
    t += 3;
    for (uint32_t c = 0; c < 3; c++) {
      value++;
      h[h.size() - 3 + c].result = value;
      h[h.size() - 3 + c].ret = ++t;
    }
    uint64_t inv_get = ++t;
    uint64_t ret_get = ++t;
    h.push_back(get(3, value, inv_get, ret_get));
  }
  auto r = check_linearizable(h);
  EXPECT_TRUE(r.ok) << r.explanation;
  EXPECT_FALSE(r.inconclusive);
}

}  // namespace
}  // namespace hmdb::sim
