// tests/server/cpu_affinity_test.cc — `--cpus LIST` (server/cpu_affinity.h): the list's
// parser on every rule and error, its printer, and the choice against the CPUs the process
// may run on. That every thread of a real server gets the list is tests/system/cpus_test.py.
#include "server/cpu_affinity.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

namespace hmdb::server {
namespace {

CpuSet cpus(std::initializer_list<size_t> list) {
  CpuSet s;
  for (size_t c : list) s.set(c);
  return s;
}

CpuSet parse_ok(std::string_view text) {
  CpuSet s;
  const Status st = parse_cpu_list(text, &s);
  EXPECT_TRUE(st) << "'" << text << "' refused: " << st.message();
  return s;
}

std::string parse_error(std::string_view text) {
  CpuSet s;
  const Status st = parse_cpu_list(text, &s);
  EXPECT_FALSE(st) << "accepted: '" << text << "'";
  EXPECT_EQ(st.message().find('\n'), std::string::npos) << "not one line: " << st.message();
  return st.message();
}

TEST(CpuList, NumbersAndRanges) {
  EXPECT_EQ(parse_ok("1"), cpus({1}));
  EXPECT_EQ(parse_ok("0"), cpus({0}));
  EXPECT_EQ(parse_ok("0-3,6"), cpus({0, 1, 2, 3, 6}));
  EXPECT_EQ(parse_ok("6,0-3"), cpus({0, 1, 2, 3, 6}));
  EXPECT_EQ(parse_ok("2-2"), cpus({2}));  // a range of one
  EXPECT_EQ(parse_ok("007"), cpus({7}));  // leading zeros are still decimal
  EXPECT_EQ(parse_ok("1023"), cpus({1023}));
  EXPECT_EQ(parse_ok("1020-1023").count(), 4u);
}

TEST(CpuList, DuplicatesAndOverlapsAreTheirUnion) {
  EXPECT_EQ(parse_ok("0,0"), cpus({0}));
  EXPECT_EQ(parse_ok("0-3,2"), cpus({0, 1, 2, 3}));
  EXPECT_EQ(parse_ok("1-2,0-3,3"), cpus({0, 1, 2, 3}));
}

TEST(CpuList, EmptyIsRefused) { EXPECT_NE(parse_error("").find("empty"), std::string::npos); }

TEST(CpuList, BlanksAreRefusedAnywhere) {
  for (const char* text : {" 1", "1 ", "0, 1", "0 -1", "0-\t1", "1\n"}) {
    EXPECT_NE(parse_error(text).find("blank"), std::string::npos) << text;
  }
}

TEST(CpuList, EmptyItemsAreRefused) {
  for (const char* text : {"1,", ",1", "0,,1", ","}) {
    EXPECT_NE(parse_error(text).find("empty item"), std::string::npos) << text;
  }
}

TEST(CpuList, ReversedRangeIsRefusedAndTheMessageSaysTheRightOrder) {
  const std::string m = parse_error("3-1");
  EXPECT_NE(m.find("'3-1' is a reversed range"), std::string::npos) << m;
  EXPECT_NE(m.find("write 1-3"), std::string::npos) << m;
  EXPECT_NE(parse_error("0,5-4").find("'5-4'"), std::string::npos);
}

TEST(CpuList, NonNumbersAreRefused) {
  for (const char* text : {"a", "1a", "0x1", "+1", "-1", "1-", "-", "1--2", "1-2-3", "0-3:2", "all", "1.5", "1;2"}) {
    EXPECT_NE(parse_error(text).find("is not a CPU number or a range N-M"), std::string::npos) << text;
  }
}

TEST(CpuList, NumbersBeyondTheSetAreRefused) {
  EXPECT_NE(parse_error("1024").find("CPU 1024 is beyond the largest CPU number a list may name (1023)"),
            std::string::npos);
  EXPECT_NE(parse_error("0-1024").find("CPU 1024"), std::string::npos);
  // Digits that would overflow any integer: refused, not wrapped around to a small number.
  EXPECT_NE(parse_error("18446744073709551617").find("beyond"), std::string::npos);
  EXPECT_NE(parse_error("99999999999999999999999999-1").find("beyond"), std::string::npos);
}

TEST(CpuList, PrintsTheShortestForm) {
  EXPECT_EQ(format_cpu_list(CpuSet{}), "");
  EXPECT_EQ(format_cpu_list(cpus({0})), "0");
  EXPECT_EQ(format_cpu_list(cpus({0, 1})), "0-1");
  EXPECT_EQ(format_cpu_list(cpus({0, 1, 2, 3, 6})), "0-3,6");
  EXPECT_EQ(format_cpu_list(cpus({1, 3, 5})), "1,3,5");
  EXPECT_EQ(format_cpu_list(cpus({1022, 1023})), "1022-1023");
  for (const char* text : {"0-3,6", "1", "5,7-9,1023", "0-1023"}) EXPECT_EQ(format_cpu_list(parse_ok(text)), text);
}

TEST(CpuChoice, TheListedCpusTheProcessMayRunOn) {
  CpuSet chosen, left_out;
  ASSERT_TRUE(choose_cpus(cpus({0}), cpus({0, 1}), &chosen, &left_out));
  EXPECT_EQ(chosen, cpus({0}));
  EXPECT_TRUE(left_out.none());
  ASSERT_TRUE(choose_cpus(parse_ok("0-7"), cpus({0, 1}), &chosen, &left_out));
  EXPECT_EQ(chosen, cpus({0, 1}));
  EXPECT_EQ(format_cpu_list(left_out), "2-7");
}

TEST(CpuChoice, NoAllowedCpuIsRefusedNamingTheAllowedOnes) {
  CpuSet chosen, left_out;
  const Status s = choose_cpus(cpus({5, 6}), cpus({0, 1, 3}), &chosen, &left_out);
  ASSERT_FALSE(s);
  EXPECT_NE(s.message().find("names no CPU this process may run on"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("it may run on 0-1,3"), std::string::npos) << s.message();
}

TEST(CpuChoice, TheProcessItselfRunsOnSomeCpu) {
  CpuSet mine;
  ASSERT_TRUE(current_cpus(&mine));
  EXPECT_TRUE(mine.any());
}

}  // namespace
}  // namespace hmdb::server
