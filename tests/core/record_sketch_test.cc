// tests/core/record_sketch_test.cc — the sketch of an app's records at a digest mark
// (core/record_sketch.h): two kv states that differ in a few keys are told apart by exactly
// those keys (held differently, or by one only), whatever order the keys were written in;
// equal states give equal sketches; too many differences are said to be too many, with the
// buckets that differ; an app without the records hook has no sketch; a mark taken at once
// (DigestMarks without a hasher) keeps it beside the digest.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/digest_marks.h"
#include "core/record_sketch.h"
#include "core/request_table.h"
#include "hmdb/app.h"
#include "kv/kv.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using KvHost = AppHost<kv::Kv>;

void run(KvHost& app, std::vector<std::string> words) {
  const std::vector<std::string_view> argv(words.begin(), words.end());
  std::string out, why;
  Reply reply(&out);
  ApplyContext ctx;
  ctx.now_ms = 1;
  ctx.index = 1;
  ASSERT_TRUE(app.apply(Args(argv.data(), argv.size()), ctx, reply, &why)) << why;
}

RecordSketch sketch_of(const KvHost& app) {
  const std::optional<RecordSketch> s = record_sketch(app, 1);
  EXPECT_TRUE(s.has_value());
  return s.value_or(RecordSketch{});
}

constexpr int kKeys = 20000;

TEST(RecordSketch, NamesExactlyTheKeysThatDiffer) {
  KvHost a, b;
  for (int i = 0; i < kKeys; i++) run(a, {"SET", "key:" + std::to_string(i), "v" + std::to_string(i)});
  for (int i = kKeys - 1; i >= 0; i--) run(b, {"SET", "key:" + std::to_string(i), "v" + std::to_string(i)});
  EXPECT_EQ(a.digest(), b.digest());
  const RecordSketch sa = sketch_of(a);
  EXPECT_EQ(sa.records, static_cast<uint64_t>(kKeys));
  EXPECT_EQ(sa.encode(), sketch_of(b).encode()) << "the order keys were written in does not matter";
  SketchComparison same = compare_sketches(sa, sketch_of(b));
  EXPECT_TRUE(same.complete);
  EXPECT_TRUE(same.buckets.empty());
  EXPECT_TRUE(same.records.empty());

  run(b, {"SET", "key:777", "changed"});  // held differently
  run(b, {"DEL", "key:4242"});            // only on a
  run(b, {"SADD", "extra", "m"});         // only on b
  ASSERT_NE(a.digest(), b.digest());
  const SketchComparison c = compare_sketches(sa, sketch_of(b));
  ASSERT_TRUE(c.complete);
  EXPECT_GE(c.buckets.size(), 1u);
  EXPECT_LE(c.buckets.size(), 3u);
  ASSERT_EQ(c.records.size(), 3u);
  for (const RecordDifference& r : c.records) {
    EXPECT_NE(std::find(c.buckets.begin(), c.buckets.end(), r.bucket), c.buckets.end()) << r.key;
    if (r.key == "key:777") {
      EXPECT_TRUE(r.hash_a && r.hash_b && *r.hash_a != *r.hash_b);
    } else if (r.key == "key:4242") {
      EXPECT_TRUE(r.hash_a && !r.hash_b);
    } else {
      EXPECT_EQ(r.key, "extra");
      EXPECT_TRUE(!r.hash_a && r.hash_b);
    }
  }
  // Ordered by bucket, then key.
  for (size_t i = 1; i < c.records.size(); i++) EXPECT_LE(c.records[i - 1].bucket, c.records[i].bucket);
  // The other way round, the sides swap.
  const SketchComparison back = compare_sketches(sketch_of(b), sa);
  ASSERT_EQ(back.records.size(), 3u);
  for (const RecordDifference& r : back.records)
    if (r.key == "extra") {
      EXPECT_TRUE(r.hash_a && !r.hash_b);
    }
}

TEST(RecordSketch, ALongKeyIsNamedByItsStartAndSize) {
  KvHost a, b;
  const std::string long_key = std::string(60, 'x') + "tail";
  run(a, {"SET", long_key, "1"});
  run(b, {"SET", long_key, "2"});
  run(a, {"SET", "bin\x01 key", "1"});
  const SketchComparison c = compare_sketches(sketch_of(a), sketch_of(b));
  ASSERT_TRUE(c.complete);
  ASSERT_EQ(c.records.size(), 2u);
  std::vector<std::string> printed;
  for (const RecordDifference& r : c.records) printed.push_back(printable_key(r.key, r.key_size));
  std::sort(printed.begin(), printed.end());
  EXPECT_EQ(printed[0], "\"bin\\x01 key\"");
  EXPECT_EQ(printed[1], std::string(kSketchKeyBytes, 'x') + "... (64 bytes)");
}

TEST(RecordSketch, TooManyDifferencesAreSaidToBe) {
  KvHost a, b;
  for (int i = 0; i < 2000; i++) run(a, {"SET", "k" + std::to_string(i), "1"});
  for (int i = 0; i < 2000; i++) run(b, {"SET", "k" + std::to_string(i), i % 4 == 0 ? "2" : "1"});  // 500 differ
  const SketchComparison c = compare_sketches(sketch_of(a), sketch_of(b));
  EXPECT_FALSE(c.complete);
  EXPECT_GT(c.buckets.size(), kSketchBuckets / 2);
  EXPECT_LT(c.records.size(), 500u);
  // What it names, it names right: each a key that differs.
  for (const RecordDifference& r : c.records) {
    ASSERT_EQ(r.key[0], 'k');
    EXPECT_EQ(std::stoi(r.key.substr(1)) % 4, 0) << r.key;
  }
}

TEST(RecordSketch, EncodesAndRefusesWhatIsNotOne) {
  KvHost a;
  for (int i = 0; i < 100; i++) run(a, {"SET", "k" + std::to_string(i), "1"});
  const std::string bytes = sketch_of(a).encode();
  ASSERT_EQ(bytes.size(), kRecordSketchBytes);
  RecordSketch back;
  ASSERT_TRUE(RecordSketch::decode(bytes, &back));
  EXPECT_EQ(back.encode(), bytes);
  EXPECT_FALSE(RecordSketch::decode(bytes.substr(1), &back));
  std::string bad = bytes;
  bad[0] ^= 1;
  EXPECT_FALSE(RecordSketch::decode(bad, &back));
  std::string raw;
  ASSERT_TRUE(from_hex(to_hex(bytes), &raw));
  EXPECT_EQ(raw, bytes);
  EXPECT_FALSE(from_hex("abc", &raw));
  EXPECT_FALSE(from_hex("zz", &raw));
}

TEST(RecordSketch, AnAppWithoutTheHookHasNone) {
  sim::RegisterHost app;
  EXPECT_FALSE(record_sketch(app, app.schema_version()).has_value());
  DigestMarks marks;
  RequestTable requests;
  marks.take(5, app, requests);
  ASSERT_NE(marks.find(5), nullptr);
  EXPECT_EQ(marks.find(5)->records, nullptr);
}

TEST(RecordSketch, AMarkTakenAtOnceKeepsIt) {
  KvHost app;
  run(app, {"SET", "a", "1"});
  DigestMarks marks;
  RequestTable requests;
  marks.take(7, app, requests);
  const DigestMark* m = marks.find(7);
  ASSERT_NE(m, nullptr);
  ASSERT_NE(m->records, nullptr);
  EXPECT_EQ(m->records->records, 1u);
  EXPECT_EQ(m->records->encode(), sketch_of(app).encode());
}

}  // namespace
}  // namespace hmdb::core
