// tests/apps/kv_args_test.cc — regression tests for what fuzzing kv's argument parsers found
// (fuzz/kv_args_fuzz.cc): each case is one finding, with the reply Redis 7 gives.
#include "kv/kv.h"

#include <gtest/gtest.h>

#include <string>

#include "hmdb/testing.h"

namespace hmdb::kv {
namespace {

using hmdb::testing::array;
using hmdb::testing::bulk;
using hmdb::testing::error;
using hmdb::testing::integer;

const std::string kOutOfRange = error("ERR value is out of range");

// HRANDFIELD/ZRANDMEMBER with WITHVALUES/WITHSCORES and a count past +-LONG_MAX/2: Redis
// refuses it (before looking at the key); kv tried to pick |count| elements, ~10^19 for
// -9223372036854775807, and the query took the node's memory.
TEST(KvArgs, RandomPairsCountPastHalfRangeIsRefused) {
  hmdb::testing::AppDriver<Kv> db;
  ASSERT_EQ(db.run({"HSET", "h", "f", "v"}), integer(1));
  ASSERT_EQ(db.run({"ZADD", "z", "1", "m"}), integer(1));
  for (const char* count : {"-9223372036854775807", "-4611686018427387904", "4611686018427387904",
                            "9223372036854775807"}) {
    SCOPED_TRACE(count);
    EXPECT_EQ(db.run({"HRANDFIELD", "h", count, "WITHVALUES"}), kOutOfRange);
    EXPECT_EQ(db.run({"HRANDFIELD", "missing", count, "withvalues"}), kOutOfRange);
    EXPECT_EQ(db.run({"ZRANDMEMBER", "z", count, "WITHSCORES"}), kOutOfRange);
    EXPECT_EQ(db.run({"ZRANDMEMBER", "missing", count, "withscores"}), kOutOfRange);
  }
  // The edge of the range is accepted (a positive count is clamped to the size).
  EXPECT_EQ(db.run({"HRANDFIELD", "h", "4611686018427387903", "WITHVALUES"}), array({bulk("f"), bulk("v")}));
  EXPECT_EQ(db.run({"ZRANDMEMBER", "z", "4611686018427387903", "WITHSCORES"}), array({bulk("m"), bulk("1")}));
  EXPECT_EQ(db.run({"HRANDFIELD", "h", "-2", "WITHVALUES"}), array({bulk("f"), bulk("v"), bulk("f"), bulk("v")}));
  // Without WITHVALUES the range is Redis' -LONG_MAX..LONG_MAX (the count's own error).
  EXPECT_EQ(db.run({"HRANDFIELD", "h", "4611686018427387904"}), array({bulk("f")}));
  EXPECT_EQ(db.run({"HRANDFIELD", "h", "-9223372036854775808", "WITHVALUES"}),
            error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"));
}

}  // namespace
}  // namespace hmdb::kv
