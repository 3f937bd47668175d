// tests/core/batch_test.cc — the command-batch format (core/batch.h, docs/formats.md): a
// batch of commands alone is format 1, byte for byte what binaries before transactions
// wrote; a transaction group makes it format 2; the reader walks groups step by step, and
// refuses what a writer never produces (an extension item in format 1, an unknown item
// type, a group inside a group, a group cut short, a format newer than it reads). A request
// item (HMDB.REQ) tags a command or a group with its id, protocol and the hash of what it
// tags; the apply path dedupes tagged items, the same way with a sink (the leader) and
// without (a follower).
#include "core/batch.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <string>
#include <vector>

#include "core/apply.h"
#include "core/state.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

std::string steps(std::string_view payload, bool* ok = nullptr) {
  BatchReader r(payload);
  std::string out;
  BatchStep step;
  while (r.next(step)) {
    switch (step.kind) {
      case BatchStep::Kind::kCommand: out += "cmd"; break;
      case BatchStep::Kind::kGroupBegin: out += "begin" + std::to_string(step.group_size); break;
      case BatchStep::Kind::kGroupCommand: out += "g" + std::to_string(step.position); break;
      case BatchStep::Kind::kGroupEnd: out += "end"; break;
      case BatchStep::Kind::kActivation: out += "activate" + std::to_string(step.version); break;
      case BatchStep::Kind::kDigestMark: out += "mark"; break;
      case BatchStep::Kind::kAcl: out += "acl" + std::to_string(step.acl_op); break;
    }
    if (step.tagged()) out += "[" + std::string(step.request_id) + "/" + std::to_string(static_cast<int>(step.request_protocol)) + "]";
    out += "@" + std::to_string(step.item);
    for (auto a : step.argv)
      if (step.kind == BatchStep::Kind::kCommand || step.kind == BatchStep::Kind::kGroupCommand ||
          step.kind == BatchStep::Kind::kAcl)
        out += " " + std::string(a);
    out += ";";
  }
  if (ok) *ok = r.ok();
  return out;
}

TEST(Batch, CommandsAloneAreFormatOneAsBefore) {
  BatchBuilder b(42);
  std::vector<std::string_view> set = {"SET", "k", "v"};
  b.add(set);
  const std::string p = b.finish();
  // u8 1, u64 42, varint 1, varint 3, "SET", "k", "v".
  EXPECT_EQ(p, std::string("\x01\x2a\0\0\0\0\0\0\0\x01\x03\x03SET\x01k\x01v", 19));
  bool ok = false;
  EXPECT_EQ(steps(p, &ok), "cmd@0 SET k v;");
  EXPECT_TRUE(ok);
}

// BatchBuilder::add encodes a short command in one stack buffer and a long one word by
// word: either way the bytes are what the Encoder writes word by word, across word lengths
// whose length varint takes one byte or two (127 / 128) and commands whose encoding is just
// under, at and over the stack buffer (about 256 bytes).
TEST(Batch, ShortAndLongCommandsEncodeAsTheEncoderWould) {
  for (size_t words = 1; words <= 4; words++) {
    for (size_t len : {size_t{0}, size_t{1}, size_t{20}, size_t{62}, size_t{127}, size_t{128}, size_t{200}, size_t{300}}) {
      for (size_t extra = 0; extra < 3; extra++) {
        std::vector<std::string> storage;
        for (size_t i = 0; i < words; i++) storage.push_back(std::string(len + (i == 0 ? extra : 0), static_cast<char>('a' + i)));
        std::vector<std::string_view> argv(storage.begin(), storage.end());
        BatchBuilder b(9);
        b.add(argv);
        Encoder want;
        want.u8(kBatchFormatCommands);
        want.u64(9);
        want.varint(1);
        want.varint(argv.size());
        for (std::string_view w : argv) want.bytes(w);
        ASSERT_EQ(b.finish(), want.buffer()) << words << " words of " << len << " (+" << extra << ") bytes";
      }
    }
  }
}

TEST(Batch, AGroupIsOneItemOfFormatTwo) {
  BatchBuilder b(7);
  std::vector<std::string_view> set = {"SET", "a", "1"}, incr = {"INCR", "a"};
  b.add(set);
  b.add_group(2);
  b.add_to_group(set);
  b.add_to_group(incr);
  b.add_group(0);
  b.add(incr);
  EXPECT_EQ(b.count(), 4u);
  const std::string p = b.finish();
  EXPECT_EQ(static_cast<uint8_t>(p[0]), kBatchFormatItems);
  bool ok = false;
  EXPECT_EQ(steps(p, &ok),
            "cmd@0 SET a 1;begin2@1;g0@1 SET a 1;g1@1 INCR a;end@1;begin0@2;end@2;cmd@3 INCR a;");
  EXPECT_TRUE(ok);
  // The flat walk sees the commands only.
  BatchReader r(p);
  std::vector<std::string_view> argv;
  int commands = 0;
  while (r.next(argv)) commands++;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(commands, 4);
  // The builder is reusable and back to format 1.
  b.start(8);
  b.add(incr);
  EXPECT_EQ(static_cast<uint8_t>(b.finish()[0]), kBatchFormatCommands);
}

std::string header(uint8_t format, uint8_t count) {
  std::string h(1, static_cast<char>(format));
  h += std::string(8, '\0');
  h += static_cast<char>(count);
  return h;
}

TEST(Batch, TheExampleInFormatsMd) {
  BatchBuilder b(1000);
  std::vector<std::string_view> incr = {"INCR", "a"};
  b.add_group(1);
  b.add_to_group(incr);
  EXPECT_EQ(b.finish(), std::string("\x02\xe8\x03\0\0\0\0\0\0\x01\x00\x01\x01\x02\x04INCR\x01" "a", 21));
}

TEST(Batch, TheReaderRefusesWhatNoWriterProduces) {
  bool ok = true;
  // An extension item in format 1.
  steps(header(1, 1) + std::string("\x00\x01\x00", 3), &ok);
  EXPECT_FALSE(ok);
  // The same in format 2 is an empty group.
  EXPECT_EQ(steps(header(2, 1) + std::string("\x00\x01\x00", 3), &ok), "begin0@0;end@0;");
  EXPECT_TRUE(ok);
  // An unknown item type.
  steps(header(2, 1) + std::string("\x00\x07\x00", 3), &ok);
  EXPECT_FALSE(ok);
  // A group inside a group.
  steps(header(2, 1) + std::string("\x00\x01\x01\x00\x01\x00", 6), &ok);
  EXPECT_FALSE(ok);
  // A group that declares more commands than follow.
  steps(header(2, 1) + std::string("\x00\x01\x02\x01\x01x", 6), &ok);
  EXPECT_FALSE(ok);
  // Bytes after the last item.
  steps(header(2, 1) + std::string("\x00\x01\x00z", 4), &ok);
  EXPECT_FALSE(ok);
  // A newer format: refused, and the reader tells which.
  BatchReader newer(header(3, 0));
  EXPECT_FALSE(newer.ok());
  EXPECT_EQ(newer.format(), 3);
}

TEST(Batch, AnActivationIsOneItemOfFormatTwo) {
  BatchBuilder b(7);
  std::vector<std::string_view> set = {"SET", "a", "1"};
  b.add(set);
  b.add_activation(2);
  b.add(set);
  const std::string p = b.finish();
  // u8 2, u64 7, varint 3, the SET, then varint 0, type 3, varint 2, then the SET.
  const std::string cmd("\x03\x03SET\x01" "a\x01" "1", 9);
  EXPECT_EQ(p, std::string("\x02\x07\0\0\0\0\0\0\0\x03", 10) + cmd + std::string("\x00\x03\x02", 3) + cmd);
  bool ok = false;
  EXPECT_EQ(steps(p, &ok), "cmd@0 SET a 1;activate2@1;cmd@2 SET a 1;");
  EXPECT_TRUE(ok);
  // Version 0, a version beyond 32 bits, an activation in format 1 or inside a group: refused.
  steps(std::string("\x02\x07\0\0\0\0\0\0\0\x01\x00\x03\x00", 13), &ok);
  EXPECT_FALSE(ok);
  steps(std::string("\x02\x07\0\0\0\0\0\0\0\x01\x00\x03\x80\x80\x80\x80\x10", 17), &ok);
  EXPECT_FALSE(ok);
  steps(std::string("\x01\x07\0\0\0\0\0\0\0\x01\x00\x03\x02", 13), &ok);
  EXPECT_FALSE(ok);
  steps(std::string("\x02\x07\0\0\0\0\0\0\0\x01\x00\x01\x01\x00\x03\x02", 16), &ok);
  EXPECT_FALSE(ok);
  // The largest version is read back.
  BatchBuilder most(7);
  most.add_activation(UINT32_MAX);
  EXPECT_EQ(steps(most.finish(), &ok), "activate4294967295@0;");
  EXPECT_TRUE(ok);
}

TEST(Batch, AnAclChangeIsOneItemOfFormatTwo) {
  BatchBuilder b(7);
  std::vector<std::string_view> set = {"SET", "a", "1"};
  b.add(set);
  b.add_acl(1, {"alice", "on", "+get"});
  b.add_acl(2, {"bob"});
  b.add_acl(3, {"user default on nopass ~* &* +@all\n"});
  const std::string p = b.finish();
  // u8 2, u64 7, varint 4, the SET, then varint 0, type 5, u8 op, varint n, n strings.
  const std::string cmd("\x03\x03SET\x01" "a\x01" "1", 9);
  const std::string setuser("\x00\x05\x01\x03\x05" "alice\x02" "on\x04+get", 18);
  const std::string deluser("\x00\x05\x02\x01\x03" "bob", 8);
  EXPECT_EQ(p.substr(0, 10 + cmd.size() + setuser.size() + deluser.size()),
            std::string("\x02\x07\0\0\0\0\0\0\0\x04", 10) + cmd + setuser + deluser);
  bool ok = false;
  EXPECT_EQ(steps(p, &ok),
            "cmd@0 SET a 1;acl1@1 alice on +get;acl2@2 bob;acl3@3 user default on nopass ~* &* +@all\n;");
  EXPECT_TRUE(ok);
  // Every cut of it is refused (a truncated item is corruption, never a shorter item).
  for (size_t n = 0; n < p.size(); n++) {
    steps(p.substr(0, n), &ok);
    EXPECT_FALSE(ok) << "cut at " << n;
  }
  // An unknown op, the wrong number of words for an op, format 1, inside a group, or bytes
  // after it: refused.
  const std::string head("\x02\x07\0\0\0\0\0\0\0\x01", 10);
  for (const std::string& bad : {std::string("\x00\x05\x00\x01\x01x", 6), std::string("\x00\x05\x05\x01\x01x", 6),
                                 std::string("\x00\x05\x01\x00", 4), std::string("\x00\x05\x02\x00", 4),
                                 std::string("\x00\x05\x03\x00", 4), std::string("\x00\x05\x03\x02\x01x\x01y", 9),
                                 std::string("\x00\x05\x04\x02\x01x\x01y", 9), std::string("\x00\x05\x01\x01\x01xz", 7),
                                 std::string("\x00\x06", 2)}) {
    steps(head + bad, &ok);
    EXPECT_FALSE(ok) << "accepted " << testing::PrintToString(bad);
  }
  steps(std::string("\x01\x07\0\0\0\0\0\0\0\x01\x00\x05\x02\x01\x01x", 16), &ok);
  EXPECT_FALSE(ok);
  steps(std::string("\x02\x07\0\0\0\0\0\0\0\x01\x00\x01\x01\x00\x05\x02\x01\x01x", 19), &ok);
  EXPECT_FALSE(ok);
  // What apply_batch makes of one: malformed, nothing of it applied.
  sim::RegisterHost app;
  ApplyScratch scratch;
  EXPECT_EQ(apply_batch(app, p.substr(0, p.size() - 1), 1, 1, nullptr, scratch).status, ApplyStatus::kMalformed);
}

TEST(Batch, ADigestMarkIsOneItemOfFormatTwo) {
  BatchBuilder b(7);
  std::vector<std::string_view> set = {"SET", "a", "1"};
  b.add(set);
  b.add_digest_mark();
  const std::string p = b.finish();
  // u8 2, u64 7, varint 2, the SET, then varint 0, type 4 (no body).
  const std::string cmd("\x03\x03SET\x01" "a\x01" "1", 9);
  EXPECT_EQ(p, std::string("\x02\x07\0\0\0\0\0\0\0\x02", 10) + cmd + std::string("\x00\x04", 2));
  bool ok = false;
  EXPECT_EQ(steps(p, &ok), "cmd@0 SET a 1;mark@1;");
  EXPECT_TRUE(ok);
  // In format 1, inside a group, or with bytes after it: refused.
  steps(std::string("\x01\x07\0\0\0\0\0\0\0\x01\x00\x04", 12), &ok);
  EXPECT_FALSE(ok);
  steps(std::string("\x02\x07\0\0\0\0\0\0\0\x01\x00\x01\x01\x00\x04", 15), &ok);
  EXPECT_FALSE(ok);
  steps(std::string("\x02\x07\0\0\0\0\0\0\0\x01\x00\x04\x00", 13), &ok);
  EXPECT_FALSE(ok);
}

TEST(Batch, ARequestTagsACommandOrAGroup) {
  BatchBuilder b(1000);
  std::vector<std::string_view> incr = {"INCR", "a"}, set = {"SET", "a", "1"};
  b.add(set);
  b.add_request("r1", Protocol::kResp2);
  b.add(incr);
  b.add_request("t1", Protocol::kResp3);
  b.add_group(2);
  b.add_to_group(set);
  b.add_to_group(incr);
  b.add(incr);
  EXPECT_EQ(b.count(), 4u);
  const std::string p = b.finish();
  EXPECT_EQ(static_cast<uint8_t>(p[0]), kBatchFormatItems);
  bool ok = false;
  EXPECT_EQ(steps(p, &ok),
            "cmd@0 SET a 1;cmd[r1/2]@1 INCR a;begin2[t1/3]@2;g0[t1/3]@2 SET a 1;g1[t1/3]@2 INCR a;end[t1/3]@2;"
            "cmd@3 INCR a;");
  EXPECT_TRUE(ok);
  // The hash covers exactly the tagged item: equal commands hash equal, wherever they are.
  BatchBuilder other(5);
  other.add_request("x", Protocol::kResp2);
  other.add(incr);
  const std::string q = other.finish();
  BatchReader r1(p), r2(q);
  BatchStep s1, s2;
  ASSERT_TRUE(r1.next(s1) && r1.next(s1) && r2.next(s2));
  EXPECT_TRUE(s1.tagged() && s2.tagged());
  EXPECT_EQ(s1.request_hash, s2.request_hash);
  std::string encoded_incr("\x02\x04INCR\x01" "a", 8);
  EXPECT_EQ(s1.request_hash, XXH3_64bits(encoded_incr.data(), encoded_incr.size()));
}

TEST(Batch, TheRequestExampleInFormatsMd) {
  BatchBuilder b(1000);
  std::vector<std::string_view> incr = {"INCR", "a"};
  b.add_request("r1", Protocol::kResp2);
  b.add(incr);
  EXPECT_EQ(b.finish(), std::string("\x02\xe8\x03\x00\x00\x00\x00\x00\x00\x01\x00\x02\x02r1\x02\x02\x04INCR\x01" "a", 24));
}

TEST(Batch, TheReaderRefusesMalformedRequests) {
  bool ok = true;
  const std::string incr("\x02\x04INCR\x01" "a", 8);
  EXPECT_EQ(steps(header(2, 1) + std::string("\x00\x02\x01r\x02", 5) + incr, &ok), "cmd[r/2]@0 INCR a;");
  EXPECT_TRUE(ok);
  steps(header(1, 1) + std::string("\x00\x02\x01r\x02", 5) + incr, &ok);
  EXPECT_FALSE(ok) << "in format 1";
  steps(header(2, 1) + std::string("\x00\x02\x00\x02", 4) + incr, &ok);
  EXPECT_FALSE(ok) << "an empty id";
  steps(header(2, 1) + std::string("\x00\x02A", 3) + std::string(65, 'i') + "\x02" + incr, &ok);
  EXPECT_FALSE(ok) << "an id over 64 bytes";
  steps(header(2, 1) + std::string("\x00\x02\x01r\x04", 5) + incr, &ok);
  EXPECT_FALSE(ok) << "an unknown protocol";
  steps(header(2, 1) + std::string("\x00\x02\x01r\x02\x00\x02\x01s\x02", 10) + incr, &ok);
  EXPECT_FALSE(ok) << "a request tagging a request";
  steps(header(2, 1) + std::string("\x00\x02\x01r\x02", 5), &ok);
  EXPECT_FALSE(ok) << "a request tagging nothing";
  steps(header(2, 1) + std::string("\x00\x02\x01r\x02\x00\x01\x02", 8) + incr, &ok);
  EXPECT_FALSE(ok) << "a tagged group cut short";
  steps(header(2, 2) + std::string("\x00\x02\x01r\x02", 5) + incr, &ok);
  EXPECT_FALSE(ok) << "the tagged command is the request's item, not one more";
}

// The apply path, as a leader (a sink) and as a follower (none) apply the same entries:
// tagged items apply once, retries answer the first reply, and both tables end equal.
TEST(Batch, TaggedItemsApplyOnceWithOrWithoutASink) {
  struct Sink final : ApplySink {
    std::vector<std::string> replies;
    ReplyTo reply_to(size_t k) override {
      if (replies.size() <= k) replies.resize(k + 1);
      return ReplyTo{&replies[k], Protocol::kResp2};
    }
    void replied(size_t) override {}
  };
  std::vector<std::string_view> incr = {"INCR", "a"}, get_a = {"GET", "a"};
  auto batch = [&](uint64_t time_ms, bool group) {
    BatchBuilder b(time_ms);
    b.add_request("r1", Protocol::kResp2);
    b.add(incr);
    b.add_request("t1", Protocol::kResp2);
    b.add_group(group ? 2 : 1);
    b.add_to_group(incr);
    if (group) b.add_to_group(incr);
    b.add(incr);
    return b.finish();
  };
  sim::RegisterHost leader_app, follower_app;
  RequestTable leader_requests, follower_requests;
  ApplyScratch scratch;
  Sink first, second;
  const std::string one = batch(1000, true);
  ASSERT_EQ(apply_batch(leader_app, one, 1, 1, &first, scratch, nullptr, &leader_requests).status, ApplyStatus::kOk);
  ASSERT_EQ(apply_batch(follower_app, one, 1, 1, nullptr, scratch, nullptr, &follower_requests).status, ApplyStatus::kOk);
  EXPECT_EQ(first.replies, (std::vector<std::string>{":1\r\n", "*2\r\n:2\r\n:3\r\n", ":4\r\n"}));
  // The retry of both, in a later entry: the tagged items apply nothing, the untagged INCR does.
  const std::string two = batch(2000, true);
  const ApplyResult r = apply_batch(leader_app, two, 2, 1, &second, scratch, nullptr, &leader_requests);
  apply_batch(follower_app, two, 2, 1, nullptr, scratch, nullptr, &follower_requests);
  EXPECT_EQ(second.replies, (std::vector<std::string>{":1\r\n", "*2\r\n:2\r\n:3\r\n", ":5\r\n"}));
  EXPECT_EQ(r.items, 3u);
  EXPECT_EQ(r.commands, 1u) << "only the untagged INCR applied";
  EXPECT_EQ(state_digest(leader_app, leader_requests), state_digest(follower_app, follower_requests));
  EXPECT_EQ(leader_requests.find("t1")->reply, "*2\r\n:2\r\n:3\r\n");
  EXPECT_EQ(leader_requests.find("t1")->index, 1u);
  // Without a table (a node that ignores tags: the simulator's planted bug) a retry applies.
  Sink third;
  apply_batch(leader_app, two, 3, 1, &third, scratch, nullptr, nullptr);
  // (No header: this sink writes none; the server's writes EXEC's array in group_position.)
  EXPECT_EQ(third.replies, (std::vector<std::string>{":6\r\n", ":7\r\n:8\r\n", ":9\r\n"}));
}

TEST(Batch, ApplyReportsANewerFormatApartFromDamage) {
  struct NullApp final : StateMachine {
    std::string_view app_name() const override { return "null"; }
    uint32_t schema_version() const override { return 1; }
    CommandKind kind(std::string_view) const override { return CommandKind::kWrite; }
    bool validate(Args, std::string*, KeySpec*) const override { return true; }
    int arity(std::string_view) const override { return -1; }
    bool apply(Args, const ApplyContext&, Reply& r, std::string*) override {
      r.ok();
      return true;
    }
    void query(Args, const QueryContext&, Reply& r) const override { r.ok(); }
    std::optional<std::vector<std::string>> housekeeping(uint64_t) const override { return std::nullopt; }
    void save(Encoder&) const override {}
    bool load(Decoder&, uint32_t) override { return true; }
    void clear() override {}
    uint64_t digest() const override { return 0; }
    std::string info() const override { return {}; }
  } app;
  ApplyScratch scratch;
  EXPECT_EQ(apply_batch(app, header(3, 0), 1, 1, nullptr, scratch).status, ApplyStatus::kNewerFormat);
  EXPECT_EQ(apply_batch(app, header(2, 1) + "\x00\x09", 1, 1, nullptr, scratch).status, ApplyStatus::kMalformed);
  const ApplyResult r = apply_batch(app, header(2, 2) + std::string("\x00\x01\x01\x01\x01x\x01\x01y", 9), 1, 1,
                                    nullptr, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kOk);
  EXPECT_EQ(r.items, 2u);
  EXPECT_EQ(r.commands, 2u);
}

}  // namespace
}  // namespace hmdb::core
