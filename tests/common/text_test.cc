// tests/common/text_test.cc — the shared text rules: Redis' integer syntax (signed), plain
// digits (unsigned), ASCII case.
#include "hmdb/text.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

namespace hmdb {
namespace {

TEST(Text, SignedIntegersFollowRedisString2ll) {
  struct Case {
    const char* text;
    int64_t value;
  };
  for (Case c : {Case{"0", 0}, Case{"7", 7}, Case{"-7", -7}, Case{"1234567890", 1234567890},
                 Case{"9223372036854775807", INT64_MAX}, Case{"-9223372036854775808", INT64_MIN}}) {
    int64_t v = 42;
    EXPECT_TRUE(parse_int64(c.text, &v)) << c.text;
    EXPECT_EQ(v, c.value) << c.text;
  }
  for (const char* bad : {"", "-", "+1", " 1", "1 ", "01", "-0", "00", "1x", "x1", "1.0", "1e3", "0x10",
                          "9223372036854775808", "-9223372036854775809", "99999999999999999999999", "--1",
                          "\xd9\xa1" /* Arabic-Indic digit one */}) {
    int64_t v = 42;
    EXPECT_FALSE(parse_int64(bad, &v)) << "'" << bad << "'";
    EXPECT_EQ(v, 42) << "a refused text leaves the output alone: '" << bad << "'";
  }
  int64_t v = 0;
  EXPECT_FALSE(parse_int64(std::string("1\0", 2), &v)) << "an embedded NUL is not the end of the number";
}

TEST(Text, UnsignedIntegersAreDigitsOnly) {
  uint64_t v = 42;
  EXPECT_TRUE(parse_uint64("0", &v));
  EXPECT_EQ(v, 0u);
  EXPECT_TRUE(parse_uint64("00000000000000000042", &v)) << "file names pad to 20 digits";
  EXPECT_EQ(v, 42u);
  EXPECT_TRUE(parse_uint64("18446744073709551615", &v));
  EXPECT_EQ(v, UINT64_MAX);
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "1x", "18446744073709551616", "99999999999999999999",
                          "184467440737095516150"}) {
    v = 42;
    EXPECT_FALSE(parse_uint64(bad, &v)) << "'" << bad << "'";
    EXPECT_EQ(v, 42u) << "'" << bad << "'";
  }
}

TEST(Text, CaseIsAsciiOnly) {
  EXPECT_TRUE(iequals("withscores", "WITHSCORES"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_FALSE(iequals("get", "gets"));
  EXPECT_FALSE(iequals("a", "b"));
  EXPECT_FALSE(iequals("[", "{")) << "only letters fold: '[' + 32 is '{'";
  EXPECT_FALSE(iequals("\xe9", "\xc9")) << "no locale: Latin-1 e-acute and E-acute differ";
  EXPECT_EQ(uppercase("Set-Ex_1\xe9"), "SET-EX_1\xe9");
  EXPECT_EQ(lowercase("CLUSTER AddLearner"), "cluster addlearner");
  EXPECT_EQ(ascii_upper('z'), 'Z');
  EXPECT_EQ(ascii_lower('@'), '@');
}

}  // namespace
}  // namespace hmdb
