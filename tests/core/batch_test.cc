// tests/core/batch_test.cc — the command-batch format (core/batch.h, docs/formats.md): a
// batch of commands alone is format 1, byte for byte what binaries before transactions
// wrote; a transaction group makes it format 2; the reader walks groups step by step, and
// refuses what a writer never produces (an extension item in format 1, an unknown item
// type, a group inside a group, a group cut short, a format newer than it reads).
#include "core/batch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/apply.h"

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
    }
    out += "@" + std::to_string(step.item);
    for (auto a : step.argv)
      if (step.kind == BatchStep::Kind::kCommand || step.kind == BatchStep::Kind::kGroupCommand) out += " " + std::string(a);
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
