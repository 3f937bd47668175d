// tests/storage/read_only_env_test.cc — storage::ReadOnlyEnv, the guarantee behind `hmdb
// dry-run`: every write, truncation, removal, rename, directory creation and sync is refused
// and counted, the file left as it was; reads pass through. And the storage code a dry run
// calls with repair left on (recover_log cutting a torn tail) fails instead of writing.
#include "storage/read_only_env.h"

#include <gtest/gtest.h>

#include "storage/log.h"
#include "test_util.h"

namespace hmdb::storage {
namespace {

using testing::TempDir;

TEST(ReadOnlyEnv, RefusesEveryWriteAndReads) {
  TempDir dir;
  Env* posix = Env::posix();
  std::unique_ptr<WritableFile> w;
  ASSERT_TRUE(posix->new_writable_file(dir.file("a"), &w).is_ok());
  ASSERT_TRUE(w->append("hello").is_ok());
  ASSERT_TRUE(w->close().is_ok());

  ReadOnlyEnv env(posix);
  std::string data;
  ASSERT_TRUE(env.read_file(dir.file("a"), &data).is_ok());
  EXPECT_EQ(data, "hello");
  std::vector<std::string> names;
  ASSERT_TRUE(env.list_dir(dir.path(), &names).is_ok());
  EXPECT_EQ(names, std::vector<std::string>{"a"});
  EXPECT_TRUE(env.file_exists(dir.file("a")));

  std::unique_ptr<WritableFile> f;
  const Status refusals[] = {
      env.new_writable_file(dir.file("a"), &f), env.new_appendable_file(dir.file("a"), &f),
      env.new_writable_file(dir.file("b"), &f), env.truncate_file(dir.file("a"), 1),
      env.remove_file(dir.file("a")),           env.rename_file(dir.file("a"), dir.file("c")),
      env.create_dir(dir.file("d")),            env.sync_dir(dir.path()),
  };
  for (const Status& s : refusals) {
    EXPECT_TRUE(s.is_io_error()) << s.to_string();
    EXPECT_NE(s.to_string().find("read-only: refused to"), std::string::npos) << s.to_string();
  }
  EXPECT_EQ(env.refused(), std::size(refusals));
  ASSERT_TRUE(posix->read_file(dir.file("a"), &data).is_ok());
  EXPECT_EQ(data, "hello") << "not truncated, not replaced";
  ASSERT_TRUE(posix->list_dir(dir.path(), &names).is_ok());
  EXPECT_EQ(names, std::vector<std::string>{"a"}) << "nothing created, removed or renamed";
}

TEST(ReadOnlyEnv, ALogRepairFailsInsteadOfCuttingTheTornTail) {
  TempDir dir;
  {
    std::unique_ptr<LogWriter> w;
    ASSERT_TRUE(LogWriter::open(Env::posix(), dir.path(), LogOptions{}, &w).is_ok());
    raft::Entry e;
    e.term = 1;
    e.index = 1;
    e.data = "x";
    ASSERT_TRUE(w->append(nullptr, std::span<const raft::Entry>(&e, 1)).is_ok());
    ASSERT_TRUE(w->sync().is_ok());
  }
  std::vector<std::string> segments;
  ASSERT_TRUE(list_segments(Env::posix(), dir.path(), &segments).is_ok());
  ASSERT_EQ(segments.size(), 1u);
  std::string before;
  ASSERT_TRUE(Env::posix()->read_file(segments[0], &before).is_ok());
  std::unique_ptr<WritableFile> a;
  ASSERT_TRUE(Env::posix()->new_appendable_file(segments[0], &a).is_ok());
  ASSERT_TRUE(a->append("\x07torn").is_ok());
  ASSERT_TRUE(a->close().is_ok());
  std::string torn;
  ASSERT_TRUE(Env::posix()->read_file(segments[0], &torn).is_ok());

  ReadOnlyEnv env(Env::posix());
  RecoveredLog log;
  const Status s = recover_log(&env, dir.path(), 0, &log);  // repair on: it tries to cut
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
  EXPECT_GE(env.refused(), 1u);
  std::string after;
  ASSERT_TRUE(Env::posix()->read_file(segments[0], &after).is_ok());
  EXPECT_EQ(after, torn) << "the torn tail is still there";

  RecoveredLog described;  // what the dry run does: repair off, the tail described
  ScanOptions scan;
  scan.repair = false;
  ASSERT_TRUE(scan_log(&env, dir.path(), 0, scan, &described).is_ok());
  EXPECT_FALSE(described.torn_tail.empty());
  ASSERT_EQ(described.entries.size(), 1u);
  EXPECT_EQ(described.entries[0].data, "x");
}

}  // namespace
}  // namespace hmdb::storage
