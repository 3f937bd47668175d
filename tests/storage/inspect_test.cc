// tests/storage/inspect_test.cc — `hmdb log dump|verify` output on a small log and snapshot,
// and their verdicts on a damaged one.
#include "storage/inspect.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "core/batch.h"
#include "storage/log.h"
#include "storage/snapshot.h"
#include "test_util.h"

namespace hmdb::storage {
namespace {

using testing::TempDir;

std::string batch(uint64_t time_ms, std::vector<std::vector<std::string_view>> commands) {
  core::BatchBuilder b(time_ms);
  for (auto& c : commands) b.add(Args(c));
  return b.finish();
}

// A log with a hard state, two command batches, a noop, and a snapshot at index 1.
// Without preallocation, so that the file ends at its last record (tests cut it there).
void make_data(const std::string& dir) {
  std::unique_ptr<LogWriter> w;
  ASSERT_TRUE(LogWriter::open(Env::posix(), dir, {.preallocate_bytes = 0}, &w));
  raft::HardState hs{2, 1, 3};
  std::vector<raft::Entry> entries{
      {1, 1, raft::EntryType::kNormal, 1, batch(1700000000000, {{"SET", "user:1", "alice"}, {"INCR", "hits"}})},
      {2, 2, raft::EntryType::kNoop, 0, ""},
      {2, 3, raft::EntryType::kNormal, 1, batch(1700000000500, {{"SET", "bin", std::string_view("a\0\xff\"", 4)}})},
  };
  ASSERT_TRUE(w->append(&hs, entries));
  ASSERT_TRUE(w->sync());
  raft::SnapshotMeta meta{1, 1, {{1, 2, 3}, {}}, 1};
  ASSERT_TRUE(write_snapshot(Env::posix(), dir, meta, "kv", [](Encoder& e) { e.varint(0); }, nullptr));
}

TEST(Inspect, DumpShowsRecordsCommandsAndSnapshot) {
  TempDir dir;
  make_data(dir.path());
  std::ostringstream out;
  EXPECT_EQ(log_dump(dir.path(), out), 0) << out.str();
  std::string text = out.str();
  for (std::string want : {
           "log-00000000000000000001.hmlog",
           "@32 hardstate term=2 vote=1 commit=3",
           "@92 entry term=1 index=1 schema=1",
           "batch: leader_time_ms=1700000000000 commands=2",
           "      SET user:1 alice\n",
           "      INCR hits\n",
           "noop term=2 index=2 schema=0 payload=0 bytes",
           "      SET bin \"a\\x00\\xff\\\"\"\n",
           "end: clean, 4 records",
           "snapshot: app=kv schema=1 index=1 term=1 voters=[1,2,3] learners=[]",
           "checksums ok",
       }) {
    EXPECT_NE(text.find(want), std::string::npos) << "missing: " << want << "\n" << text;
  }
  // One file works too.
  std::ostringstream one;
  EXPECT_EQ(log_dump(dir.file("log-00000000000000000001.hmlog"), one), 0);
  EXPECT_NE(one.str().find("INCR hits"), std::string::npos);
}

TEST(Inspect, DumpShowsASchemaActivation) {
  TempDir dir;
  std::unique_ptr<LogWriter> w;
  ASSERT_TRUE(LogWriter::open(Env::posix(), dir.path(), {}, &w));
  core::BatchBuilder b(1700000000000);
  std::vector<std::string_view> set = {"SET", "a", "1"};
  b.add(Args(set));
  b.add_activation(2);
  b.add_digest_mark();
  raft::HardState hs{1, 1, 1};
  std::vector<raft::Entry> entries{{1, 1, raft::EntryType::kNormal, 1, b.finish()}};
  ASSERT_TRUE(w->append(&hs, entries));
  ASSERT_TRUE(w->sync());
  std::ostringstream out;
  EXPECT_EQ(log_dump(dir.path(), out), 0) << out.str();
  EXPECT_NE(out.str().find("      SET a 1\n      activate schema version 2\n      digest mark\n"), std::string::npos) << out.str();
  // The writer's preallocated zeros after the record are named, not called damage.
  EXPECT_NE(out.str().find("end: clean, 2 records, then "), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("bytes of preallocated zeros (no record)"), std::string::npos) << out.str();
  std::ostringstream verify;
  EXPECT_EQ(log_verify(dir.path(), verify), 0) << verify.str();
  EXPECT_NE(verify.str().find("verdict: SOUND"), std::string::npos) << verify.str();
  EXPECT_NE(verify.str().find("bytes of preallocated zeros (no record)"), std::string::npos) << verify.str();
}

TEST(Inspect, VerifySaysSoundThenPointsAtTheDamage) {
  TempDir dir;
  make_data(dir.path());
  std::ostringstream out;
  EXPECT_EQ(log_verify(dir.path(), out), 0) << out.str();
  EXPECT_NE(out.str().find("verdict: SOUND"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find("entries 2..3 replayable after index 1"), std::string::npos) << out.str();

  std::string path = dir.file("log-00000000000000000001.hmlog");
  std::string data;
  ASSERT_TRUE(Env::posix()->read_file(path, &data));
  data[100] ^= 1;  // inside the first entry; valid records follow
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  std::ostringstream bad;
  EXPECT_EQ(log_verify(dir.path(), bad), 1) << bad.str();
  EXPECT_NE(bad.str().find("CORRUPT at offset 92"), std::string::npos) << bad.str();
  EXPECT_NE(bad.str().find("NOT SOUND"), std::string::npos) << bad.str();
  std::ostringstream dump;
  EXPECT_EQ(log_dump(path, dump), 1);
  EXPECT_NE(dump.str().find("CORRUPT at offset 92"), std::string::npos) << dump.str();
}

TEST(Inspect, VerifyReportsATornTailAsSoundWithoutCuttingIt) {
  TempDir dir;
  make_data(dir.path());
  std::string path = dir.file("log-00000000000000000001.hmlog");
  uint64_t size = testing::file_size(path);
  ASSERT_TRUE(Env::posix()->truncate_file(path, size - 5));
  std::ostringstream out;
  EXPECT_EQ(log_verify(dir.path(), out), 0) << out.str();
  EXPECT_NE(out.str().find("torn tail"), std::string::npos) << out.str();
  EXPECT_EQ(testing::file_size(path), size - 5);
}

TEST(Inspect, DamagedSnapshotIsReported) {
  TempDir dir;
  make_data(dir.path());
  std::string path = dir.file("snap-00000000000000000001.hmsnap");
  std::string data;
  ASSERT_TRUE(Env::posix()->read_file(path, &data));
  data[data.size() - 12] ^= 1;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
  std::ostringstream out;
  EXPECT_EQ(log_verify(dir.path(), out), 1) << out.str();
  EXPECT_NE(out.str().find("newest snapshot"), std::string::npos) << out.str();
  std::ostringstream one;
  EXPECT_EQ(log_verify(path, one), 1) << one.str();
}

TEST(Inspect, EscapeBytes) {
  EXPECT_EQ(escape_bytes("plain"), "plain");
  EXPECT_EQ(escape_bytes(""), "\"\"");
  EXPECT_EQ(escape_bytes("a b"), "\"a b\"");
  EXPECT_EQ(escape_bytes(std::string_view("\n\x01", 2)), "\"\\n\\x01\"");
  EXPECT_EQ(escape_bytes(std::string(300, 'x'), 4), "xxxx...(300 bytes in all)");
}

}  // namespace
}  // namespace hmdb::storage
