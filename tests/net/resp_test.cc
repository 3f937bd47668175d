// tests/net/resp_test.cc — the RESP2 request parser: every frame shape, every split point,
// the bounds, inline commands and malformed input.
#include "net/resp.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace hmdb::net {
namespace {

using Words = std::vector<std::string>;

struct Outcome {
  std::vector<Words> commands;  // empty commands (blank lines, *0) are dropped like the server does
  bool error = false;
  std::string error_message;
};

// Feeds `input` to a parser in pieces whose ends are at `cuts`, the way a session does: a
// buffer that grows by appending and shrinks by erasing consumed bytes from the front.
Outcome feed(const std::string& input, const std::vector<size_t>& cuts, uint64_t max_bulk = kDefaultMaxBulkBytes) {
  RespParser parser(max_bulk);
  Outcome out;
  std::string buf;
  size_t fed = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(input.size());
  std::vector<std::string_view> argv;
  for (size_t end : ends) {
    if (end < fed) continue;
    buf.append(input, fed, end - fed);
    fed = end;
    while (true) {
      size_t consumed = 0;
      auto r = parser.parse(buf.data(), buf.size(), &consumed, &argv, &out.error_message);
      if (r == RespParser::Result::kError) {
        out.error = true;
        return out;
      }
      if (r == RespParser::Result::kNeedMore) break;
      EXPECT_GT(consumed, 0u);
      if (!argv.empty()) out.commands.emplace_back(argv.begin(), argv.end());
      buf.erase(0, consumed);
    }
  }
  return out;
}

Outcome feed_whole(const std::string& input, uint64_t max_bulk = kDefaultMaxBulkBytes) {
  return feed(input, {}, max_bulk);
}

std::string multibulk(const Words& w) {
  std::string s = "*" + std::to_string(w.size()) + "\r\n";
  for (const auto& a : w) s += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
  return s;
}

TEST(Resp, SimpleMultibulk) {
  auto o = feed_whole(multibulk({"SET", "key", "value"}));
  ASSERT_FALSE(o.error) << o.error_message;
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], (Words{"SET", "key", "value"}));
}

TEST(Resp, BinarySafeBulkWithCrLfInside) {
  std::string v("a\r\nb\0c*$", 8);
  auto o = feed_whole(multibulk({"SET", "k", v}));
  ASSERT_FALSE(o.error) << o.error_message;
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0][2], v);
}

TEST(Resp, EmptyBulkAndEmptyMultibulk) {
  auto o = feed_whole("*0\r\n*-1\r\n" + multibulk({"SET", "", ""}));
  ASSERT_FALSE(o.error) << o.error_message;
  ASSERT_EQ(o.commands.size(), 1u);
  EXPECT_EQ(o.commands[0], (Words{"SET", "", ""}));
}

TEST(Resp, PipelinedCommandsInOneRead) {
  std::string in;
  std::vector<Words> want;
  for (int i = 0; i < 100; i++) {
    Words w = {"INCR", "counter" + std::to_string(i)};
    want.push_back(w);
    in += multibulk(w);
  }
  auto o = feed_whole(in);
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.commands, want);
}

TEST(Resp, EverySplitPointGivesTheSameCommands) {
  std::string in = multibulk({"SET", "key", "value"}) + "PING\r\n" + multibulk({"GET", "key"}) +
                   "set \"a b\" 'c d'\n" + multibulk({"MSET", "a", "", "b", std::string(300, 'x')});
  auto whole = feed_whole(in);
  ASSERT_FALSE(whole.error) << whole.error_message;
  ASSERT_EQ(whole.commands.size(), 5u);
  for (size_t cut = 0; cut <= in.size(); cut++) {
    auto o = feed(in, {cut});
    ASSERT_FALSE(o.error) << "cut at " << cut << ": " << o.error_message;
    ASSERT_EQ(o.commands, whole.commands) << "cut at " << cut;
  }
  // And byte by byte.
  std::vector<size_t> every;
  for (size_t i = 0; i <= in.size(); i++) every.push_back(i);
  auto o = feed(in, every);
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.commands, whole.commands);
}

TEST(Resp, RandomSplitsOfRandomCommands) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  std::string in;
  std::vector<Words> want;
  for (int i = 0; i < 200; i++) {
    Words w;
    int argc = 1 + static_cast<int>(rng() % 6);
    for (int a = 0; a < argc; a++) {
      std::string s(rng() % 40, '\0');
      for (char& c : s) c = static_cast<char>(rng() % 256);
      w.push_back(s);
    }
    want.push_back(w);
    in += multibulk(w);
  }
  std::vector<size_t> cuts;
  for (size_t p = 0; p < in.size(); p += 1 + rng() % 50) cuts.push_back(p);
  auto o = feed(in, cuts);
  ASSERT_FALSE(o.error) << o.error_message;
  EXPECT_EQ(o.commands, want);
}

TEST(Resp, InlineCommands) {
  auto o = feed_whole("PING\r\nset  a   b\n\r\n\n  \r\nECHO \"hello\\x41\\n\" 'it\\'s'\r\n\"\"\r\n");
  ASSERT_FALSE(o.error) << o.error_message;
  ASSERT_EQ(o.commands.size(), 4u);
  EXPECT_EQ(o.commands[0], (Words{"PING"}));
  EXPECT_EQ(o.commands[1], (Words{"set", "a", "b"}));
  EXPECT_EQ(o.commands[2], (Words{"ECHO", "helloA\n", "it's"}));
  EXPECT_EQ(o.commands[3], (Words{""}));
}

TEST(Resp, InlineUnbalancedQuotesIsAnError) {
  for (std::string bad : {"SET \"abc\n", "SET 'abc\n", "SET \"a\"b\n", "SET 'a'b\n"}) {
    auto o = feed_whole(bad);
    EXPECT_TRUE(o.error) << bad;
    EXPECT_EQ(o.error_message, "ERR Protocol error: unbalanced quotes in request");
  }
}

TEST(Resp, InlineTooLongWithoutNewline) {
  auto o = feed_whole(std::string(kMaxInlineBytes, 'a'));
  EXPECT_FALSE(o.error);  // exactly at the limit: still waiting
  o = feed_whole(std::string(kMaxInlineBytes + 1, 'a'));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error_message, "ERR Protocol error: too big inline request");
  // Arriving in pieces: the error comes as soon as the limit is passed, not at the end.
  std::vector<size_t> cuts;
  for (size_t p = 4096; p < (1u << 20); p += 4096) cuts.push_back(p);
  o = feed(std::string(1u << 20, 'a'), cuts);
  EXPECT_TRUE(o.error);
}

TEST(Resp, MultibulkCountBounds) {
  auto o = feed_whole("*" + std::to_string(kMaxMultibulkCount + 1) + "\r\n");
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error_message, "ERR Protocol error: invalid multibulk length");
  // The largest count is accepted (and waits for its arguments without allocating them).
  o = feed_whole("*" + std::to_string(kMaxMultibulkCount) + "\r\n$1\r\na\r\n");
  EXPECT_FALSE(o.error);
  EXPECT_TRUE(o.commands.empty());
  o = feed_whole("*" + std::string(kMaxInlineBytes + 1, '1'));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error_message, "ERR Protocol error: too big mbulk count string");
}

TEST(Resp, BulkLengthBounds) {
  auto o = feed_whole("*2\r\n$3\r\nGET\r\n$11\r\n", /*max_bulk=*/10);
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error_message, "ERR Protocol error: invalid bulk length");
  o = feed_whole("*2\r\n$3\r\nGET\r\n$10\r\n0123456789\r\n", /*max_bulk=*/10);
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.commands.size(), 1u);
  o = feed_whole("*1\r\n$" + std::to_string(kDefaultMaxBulkBytes + 1) + "\r\n");
  EXPECT_TRUE(o.error);
  o = feed_whole("*1\r\n$" + std::string(kMaxInlineBytes + 1, '1'));
  ASSERT_TRUE(o.error);
  EXPECT_EQ(o.error_message, "ERR Protocol error: too big bulk count string");
}

// A lone 0, a negative multibulk count and a length line split anywhere mean what they meant
// before the one-pass digit path (resp.cc, fast_length): the same commands or the same wait.
TEST(Resp, HeaderLinesOutsideTheDigitFastPath) {
  auto o = feed_whole("*0\r\n*-1\r\n*1\r\n$0\r\n\r\n" + multibulk({"GET", "k"}));
  ASSERT_FALSE(o.error) << o.error_message;
  ASSERT_EQ(o.commands.size(), 2u);
  EXPECT_EQ(o.commands[0], std::vector<std::string>{""});
  EXPECT_EQ(o.commands[1], (std::vector<std::string>{"GET", "k"}));
  for (const char* partial : {"*1", "*1\r", "*12", "*1\r\n$1", "*1\r\n$1\r", "*1\r\n$12\r"}) {
    o = feed_whole(partial);
    EXPECT_FALSE(o.error) << partial;
    EXPECT_TRUE(o.commands.empty()) << partial;
  }
}

TEST(Resp, BytesWantedHintsTheBulkSize) {
  RespParser p;
  std::string buf = "*2\r\n$3\r\nSET\r\n$100000\r\nabc";
  size_t consumed = 0;
  std::vector<std::string_view> argv;
  std::string err;
  ASSERT_EQ(p.parse(buf.data(), buf.size(), &consumed, &argv, &err), RespParser::Result::kNeedMore);
  EXPECT_EQ(p.bytes_wanted(), 100002u);
}

TEST(Resp, MalformedFrames) {
  struct Case {
    std::string input;
    std::string error;
  };
  std::vector<Case> cases = {
      {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*1x\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*01\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*+1\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*1\rx", "ERR Protocol error: invalid multibulk length"},
      {"*99999999999999999999999\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"},
      {"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$3\r\nabcd\r\n", "ERR Protocol error: expected CRLF after bulk data"},
      {"*1\r\n$3\r\nab\r\n\r\n", "ERR Protocol error: expected CRLF after bulk data"},
      // Header lines the one-pass digit path (resp.cc, fast_length) hands to the general one.
      {"*1\r\n$03\r\nabc\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$+3\r\nabc\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$3\rxabc\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$3x\r\nabc\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$" + std::string(18, '9') + "\r\n", "ERR Protocol error: invalid bulk length"},
      {"*1\r\n$" + std::string(19, '9') + "\r\n", "ERR Protocol error: invalid bulk length"},
      {"*" + std::string(18, '9') + "\r\n", "ERR Protocol error: invalid multibulk length"},
      {"*" + std::string(19, '9') + "\r\n", "ERR Protocol error: invalid multibulk length"},
  };
  for (const auto& c : cases) {
    auto o = feed_whole(c.input);
    EXPECT_TRUE(o.error) << c.input;
    EXPECT_EQ(o.error_message, c.error) << c.input;
  }
}

TEST(Resp, ErrorAfterGoodCommandsKeepsTheGoodOnes) {
  auto o = feed_whole(multibulk({"PING"}) + "*1\r\n$x\r\n" + multibulk({"PING"}));
  EXPECT_TRUE(o.error);
  EXPECT_EQ(o.commands.size(), 1u);
}

TEST(Resp, IncompleteFramesWait) {
  for (std::string partial : {"*", "*2", "*2\r", "*2\r\n", "*2\r\n$", "*2\r\n$3", "*2\r\n$3\r\nGE", "*2\r\n$3\r\nGET\r",
                              "*2\r\n$3\r\nGET\r\n$1\r\nk", "*2\r\n$3\r\nGET\r\n$1\r\nk\r", "PING", "PING\r"}) {
    auto o = feed_whole(partial);
    EXPECT_FALSE(o.error) << partial;
    EXPECT_TRUE(o.commands.empty()) << partial;
  }
}

TEST(Resp, SplitInline) {
  std::string s = "  a\t\"b c\"   '' \"\\\\\\\"\" ";
  std::vector<std::string_view> argv;
  ASSERT_TRUE(split_inline(s.data(), s.size(), &argv));
  ASSERT_EQ(argv.size(), 4u);
  EXPECT_EQ(argv[0], "a");
  EXPECT_EQ(argv[1], "b c");
  EXPECT_EQ(argv[2], "");
  EXPECT_EQ(argv[3], "\\\"");
}

}  // namespace
}  // namespace hmdb::net
