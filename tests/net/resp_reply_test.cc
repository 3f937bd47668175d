// tests/net/resp_reply_test.cc — reading a server's replies (net/resp_reply.h): the
// scanner (every RESP2 and RESP3 type, every split point, malformed input, the bounds) and
// the decoder (every RESP2 type and split point, garbage).
#include "net/resp_reply.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

namespace hmdb::net {
namespace {

// ---------------------------------------------------------------------------------------
// RESP reply scanner

struct Scanned {
  ScanResult result;
  size_t length;
  bool is_error;
  std::string error;
};

Scanned scan(const std::string& bytes) {
  ScannedReply r;
  const ScanResult s = scan_reply(bytes.data(), bytes.size(), &r);
  return {s, r.length, r.is_error,
          r.error_text ? std::string(r.error_text, r.error_length) : std::string()};
}

// Every complete reply: it scans to its full length, and every strict prefix is incomplete
// (never malformed, never complete), so a reply split across reads is never misread.
void expect_complete_reply(const std::string& reply, bool is_error = false) {
  SCOPED_TRACE("reply: " + reply);
  const Scanned s = scan(reply);
  ASSERT_EQ(s.result, ScanResult::kComplete);
  EXPECT_EQ(s.length, reply.size());
  EXPECT_EQ(s.is_error, is_error);
  for (size_t cut = 0; cut < reply.size(); ++cut) {
    ASSERT_EQ(scan(reply.substr(0, cut)).result, ScanResult::kIncomplete) << "cut at " << cut;
  }
  // Followed by another reply: only the first is consumed.
  const Scanned two = scan(reply + "+OK\r\n");
  ASSERT_EQ(two.result, ScanResult::kComplete);
  EXPECT_EQ(two.length, reply.size());
}

TEST(ScanReply, Resp2Types) {
  expect_complete_reply("+OK\r\n");
  expect_complete_reply("+\r\n");
  expect_complete_reply(":0\r\n");
  expect_complete_reply(":-42\r\n");
  expect_complete_reply(":9223372036854775807\r\n");
  expect_complete_reply("$3\r\nabc\r\n");
  expect_complete_reply("$0\r\n\r\n");
  expect_complete_reply("$-1\r\n");
  expect_complete_reply("$4\r\na\r\nb\r\n");  // binary-safe: CRLF inside a bulk
  expect_complete_reply("*0\r\n");
  expect_complete_reply("*-1\r\n");
  expect_complete_reply("*3\r\n:1\r\n$2\r\nhi\r\n$-1\r\n");
  expect_complete_reply("*2\r\n*2\r\n+a\r\n+b\r\n*0\r\n");
}

TEST(ScanReply, ErrorsAreFlaggedWithTheirText) {
  expect_complete_reply("-ERR unknown command 'FOO'\r\n", /*is_error=*/true);
  expect_complete_reply("-WRONGTYPE Operation against a key\r\n", true);
  const Scanned s = scan("-ERR out of range\r\n");
  EXPECT_EQ(s.error, "ERR out of range");
  // An error inside an array is an element, not a failed request.
  expect_complete_reply("*2\r\n-ERR inner\r\n:1\r\n", false);
  // RESP3 blob error.
  expect_complete_reply("!9\r\nERR oops!\r\n", true);
  EXPECT_EQ(scan("!9\r\nERR oops!\r\n").error, "ERR oops!");
}

TEST(ScanReply, Resp3Types) {
  expect_complete_reply("_\r\n");
  expect_complete_reply(",3.14\r\n");
  expect_complete_reply("#t\r\n");
  expect_complete_reply("(12345678901234567890\r\n");
  expect_complete_reply("=8\r\ntxt:abcd\r\n");
  expect_complete_reply("%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n");
  expect_complete_reply("~2\r\n+a\r\n+b\r\n");
  expect_complete_reply(">2\r\n+message\r\n+x\r\n");
  // An attribute annotates the value after it; together they are one reply.
  expect_complete_reply("|1\r\n+key\r\n+value\r\n:7\r\n");
  expect_complete_reply("*1\r\n|1\r\n+k\r\n+v\r\n:7\r\n");
}

TEST(ScanReply, MalformedInputIsRejected) {
  for (const std::string bad :
       {"?x\r\n", "+OK\n", ":12a\r\n", ":\r\n", ":99999999999999999999\r\n", "$-2\r\n",
        "$3\r\nabcd\r\n", "$x\r\n", "*-2\r\n", "%-1\r\n", "#x\r\n", "_x\r\n",
        "$536870913\r\n"}) {
    EXPECT_EQ(scan(bad).result, ScanResult::kMalformed) << bad;
  }
}

TEST(ScanReply, DepthAndLineLengthAreBounded) {
  std::string deep;
  for (int i = 0; i <= kMaxReplyDepth; ++i) deep += "*1\r\n";
  deep += ":1\r\n";
  EXPECT_EQ(scan(deep).result, ScanResult::kMalformed);
  std::string ok_depth;
  for (int i = 0; i < kMaxReplyDepth; ++i) ok_depth += "*1\r\n";
  ok_depth += ":1\r\n";
  EXPECT_EQ(scan(ok_depth).result, ScanResult::kComplete);

  EXPECT_EQ(scan("+" + std::string(1000, 'a')).result, ScanResult::kIncomplete);
  EXPECT_EQ(scan("+" + std::string(kMaxReplyLineBytes + 10, 'a')).result, ScanResult::kMalformed);
}

TEST(ScanReply, ManyRepliesInOneBuffer) {
  const std::string replies = "+OK\r\n:1\r\n$1\r\nx\r\n-ERR e\r\n*1\r\n$-1\r\n";
  size_t offset = 0, count = 0, errors = 0;
  while (offset < replies.size()) {
    ScannedReply r;
    ASSERT_EQ(scan_reply(replies.data() + offset, replies.size() - offset, &r),
              ScanResult::kComplete);
    offset += r.length;
    ++count;
    errors += r.is_error;
  }
  EXPECT_EQ(count, 5u);
  EXPECT_EQ(errors, 1u);
}

// ---------------------------------------------------------------------------------------
// RESP reply decoder

TEST(DecodeReply, EveryTypeAndEverySplitPoint) {
  const std::string wire =
      "+OK\r\n-MOVED 0 127.0.0.1:7380\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:7\r\n";
  // Decoding every prefix must report "incomplete" until the whole first reply is there.
  for (size_t cut = 0; cut < 5; ++cut) {
    RespReply r;
    EXPECT_EQ(decode_reply(std::string_view(wire).substr(0, cut), &r), 0) << cut;
  }
  std::string_view rest = wire;
  std::vector<RespReply> replies;
  while (!rest.empty()) {
    RespReply r;
    const int64_t used = decode_reply(rest, &r);
    ASSERT_GT(used, 0) << "at '" << rest << "'";
    for (int64_t cut = 0; cut < used; ++cut) {
      RespReply partial;
      ASSERT_EQ(decode_reply(rest.substr(0, static_cast<size_t>(cut)), &partial), 0) << cut;
    }
    replies.push_back(r);
    rest.remove_prefix(static_cast<size_t>(used));
  }
  ASSERT_EQ(replies.size(), 6u);
  EXPECT_EQ(replies[0].type, '+');
  EXPECT_EQ(replies[0].text, "OK");
  EXPECT_TRUE(replies[1].is_error());
  EXPECT_EQ(replies[1].text, "MOVED 0 127.0.0.1:7380");
  EXPECT_EQ(replies[2].integer, 42);
  EXPECT_EQ(replies[3].text, "he\r\no");  // a bulk may hold CRLF
  EXPECT_TRUE(replies[4].null);
  ASSERT_EQ(replies[5].elements.size(), 2u);
  EXPECT_EQ(replies[5].elements[0].text, "a");
  ASSERT_EQ(replies[5].elements[1].elements.size(), 1u);
  EXPECT_EQ(replies[5].elements[1].elements[0].integer, 7);
}

TEST(DecodeReply, RejectsGarbage) {
  RespReply r;
  EXPECT_LT(decode_reply("hello\r\n", &r), 0);
  EXPECT_LT(decode_reply("$abc\r\n", &r), 0);
  EXPECT_LT(decode_reply("$3\r\nabcd\r\n", &r), 0);
}

TEST(DecodeReply, AgreesWithTheScannerOnLineEnds) {
  // A '\r' alone belongs to the text; the line ends at "\r\n" for both readers.
  RespReply r;
  ASSERT_EQ(decode_reply("+a\rb\r\n:1\r\n", &r), 6);
  EXPECT_EQ(r.text, "a\rb");
}

TEST(DecodeReply, Resp3TypesAreNotDecoded) {
  // They scan (a client is not desynchronised) but this decoder does not build them: our
  // clients never ask for RESP3 (HELLO 3).
  for (const std::string resp3 : {"_\r\n", ",3.14\r\n", "#t\r\n", "%1\r\n+a\r\n:1\r\n", "*1\r\n~0\r\n"}) {
    ASSERT_EQ(scan(resp3).result, ScanResult::kComplete) << resp3;
    RespReply r;
    EXPECT_LT(decode_reply(resp3, &r), 0) << resp3;
  }
}

}  // namespace
}  // namespace hmdb::net
