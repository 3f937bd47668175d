// tests/sim/history_io_test.cc — the text forms of a recorded history (sim/history_io.h):
// both line forms parse to the same op, malformed lines are refused with their line number,
// and time normalization keeps touching ops concurrent (never wrongly ordered).
#include "sim/history_io.h"

#include <sstream>

#include <gtest/gtest.h>

namespace hmdb::sim {
namespace {

std::vector<HistoryOp> read(const std::string& text) {
  std::istringstream in(text);
  std::vector<HistoryOp> h;
  Status st = read_history(in, &h);
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  return h;
}

TEST(HistoryIo, JsonAndPlainFormsAgree) {
  auto h = read(
      "# a comment\n"
      "{\"client\":3,\"key\":\"k1\",\"kind\":\"incr\",\"arg\":0,\"result\":42,\"invoke\":1000,\"ret\":1250,\"outcome\":\"ok\"}\n"
      "\n"
      "3 k1 incr - 42 1000 1250 ok\n");
  ASSERT_EQ(h.size(), 2u);
  for (const auto& op : h) {
    EXPECT_EQ(op.client, 3u);
    EXPECT_EQ(op.key, "k1");
    EXPECT_EQ(op.kind, OpKind::kIncr);
    EXPECT_EQ(op.result, 42);
    EXPECT_EQ(op.invoke, 1000u);
    EXPECT_EQ(op.ret, 1250u);
    EXPECT_EQ(op.outcome, OpOutcome::kOk);
  }
}

TEST(HistoryIo, NilResultsAndUnknownOps) {
  auto h = read(
      "{\"client\":1,\"key\":\"a\",\"kind\":\"get\",\"result\":null,\"invoke\":1,\"ret\":2,\"outcome\":\"ok\"}\n"
      "1 a get - nil 3 4 ok\n"
      "{\"client\":2,\"key\":\"a\",\"kind\":\"set\",\"arg\":-7,\"invoke\":5,\"outcome\":\"unknown\"}\n"
      "2 a set 9 - 6 7 failed\n");
  ASSERT_EQ(h.size(), 4u);
  EXPECT_FALSE(h[0].result.has_value());
  EXPECT_FALSE(h[1].result.has_value());
  EXPECT_EQ(h[2].arg, -7);
  EXPECT_EQ(h[2].outcome, OpOutcome::kUnknown);
  EXPECT_EQ(h[3].outcome, OpOutcome::kFailed);
}

TEST(HistoryIo, MalformedLinesAreRefusedWithTheirNumber) {
  const char* bad[] = {
      "1 a get - 5 3 ok\n",                                        // 7 fields
      "1 a put - 5 3 4 ok\n",                                      // bad kind
      "1 a set x - 3 4 ok\n",                                      // SET without an integer
      "1 a incr - - 3 4 ok\n",                                     // ok INCR without result
      "1 a get - - 3 4 ok\n",                                      // ok GET without result or nil
      "1 a get - 5 3 - ok\n",                                      // ok without ret
      "1 a get - 5 3 4 maybe\n",                                   // bad outcome
      "{\"client\":1,\"key\":\"a\",\"kind\":\"get\",\"bogus\":1}\n",  // unknown field
      "{\"client\":1,\"key\":\"a\"\n",                             // truncated JSON
  };
  for (const char* line : bad) {
    std::istringstream in(std::string("1 a get - nil 1 2 ok\n") + line);
    std::vector<HistoryOp> h;
    Status st = read_history(in, &h);
    EXPECT_FALSE(st.is_ok()) << line;
    EXPECT_NE(st.message().find("line 2"), std::string::npos) << st.to_string();
  }
}

TEST(HistoryIo, NormalizeKeepsTouchingOpsConcurrent) {
  // The SET returns at the instant the GET is invoked: not provably before it, so a GET of
  // the old value (nil) is still linearizable.
  auto h = read("1 a set 5 - 10 20 ok\n2 a get - nil 20 30 ok\n");
  ASSERT_TRUE(normalize_times(&h).is_ok());
  EXPECT_LT(h[1].invoke, h[0].ret);
  EXPECT_TRUE(check_linearizable(h).ok);
  // One nanosecond later it is ordered, and the stale read is caught.
  auto h2 = read("1 a set 5 - 10 20 ok\n2 a get - nil 21 30 ok\n");
  ASSERT_TRUE(normalize_times(&h2).is_ok());
  EXPECT_FALSE(check_linearizable(h2).ok);
}

TEST(HistoryIo, NormalizeRefusesReturnBeforeInvoke) {
  auto h = read("1 a set 5 - 10 9 ok\n");
  EXPECT_FALSE(normalize_times(&h).is_ok());
}

TEST(HistoryIo, NormalizeGivesDistinctIncreasingEvents) {
  auto h = read("1 a set 5 - 100 200 ok\n2 a incr - 6 100 200 ok\n3 a set 7 - 150 - unknown\n");
  ASSERT_EQ(h.size(), 3u);
  ASSERT_TRUE(normalize_times(&h).is_ok());
  std::vector<uint64_t> t = {h[0].invoke, h[0].ret, h[1].invoke, h[1].ret, h[2].invoke};
  std::sort(t.begin(), t.end());
  EXPECT_EQ(std::adjacent_find(t.begin(), t.end()), t.end());
  EXPECT_EQ(h[2].ret, 0u);
  EXPECT_LT(h[0].invoke, h[0].ret);
  EXPECT_LT(h[2].invoke, h[0].ret);
}

}  // namespace
}  // namespace hmdb::sim
