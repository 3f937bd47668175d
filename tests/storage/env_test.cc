// tests/storage/env_test.cc — PosixEnv basics and FaultInjectionEnv's power-loss model and
// injected EIO (writes, syncs, reads) / ENOSPC.
#include "storage/env.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "test_util.h"

namespace hmdb::storage {
namespace {

using testing::TempDir;

Status write_file(Env* env, const std::string& path, std::string_view data, bool sync) {
  std::unique_ptr<WritableFile> f;
  Status s = env->new_writable_file(path, &f);
  if (s) s = f->append(data);
  if (s && sync) s = f->sync();
  if (s) s = f->close();
  return s;
}

TEST(PosixEnv, WriteAppendReadListRenameTruncate) {
  TempDir dir;
  Env* env = Env::posix();
  std::string a = dir.file("a");
  ASSERT_TRUE(write_file(env, a, "hello", true));
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env->new_appendable_file(a, &f));
  EXPECT_EQ(f->size(), 5u);
  ASSERT_TRUE(f->append(" world"));
  ASSERT_TRUE(f->sync());
  ASSERT_TRUE(f->close());
  std::string data;
  ASSERT_TRUE(env->read_file(a, &data));
  EXPECT_EQ(data, "hello world");

  std::unique_ptr<MappedFile> m;
  ASSERT_TRUE(env->map_file(a, &m));
  EXPECT_EQ(m->data(), "hello world");

  ASSERT_TRUE(env->truncate_file(a, 5));
  uint64_t size = 0;
  ASSERT_TRUE(env->file_size(a, &size));
  EXPECT_EQ(size, 5u);

  ASSERT_TRUE(env->rename_file(a, dir.file("b")));
  ASSERT_TRUE(env->sync_dir(dir.path()));
  EXPECT_FALSE(env->file_exists(a));
  EXPECT_TRUE(env->file_exists(dir.file("b")));
  std::vector<std::string> names;
  ASSERT_TRUE(env->list_dir(dir.path(), &names));
  EXPECT_EQ(names, std::vector<std::string>{"b"});
  ASSERT_TRUE(env->remove_file(dir.file("b")));
  ASSERT_TRUE(env->create_dir(dir.file("sub")));
  ASSERT_TRUE(env->create_dir(dir.file("sub")));  // exists: still ok
}

TEST(PosixEnv, MissingFilesAreNotFoundWithPathInMessage) {
  TempDir dir;
  Env* env = Env::posix();
  std::string data;
  Status s = env->read_file(dir.file("nope"), &data);
  EXPECT_TRUE(s.is_not_found()) << s.to_string();
  EXPECT_NE(s.message().find("nope"), std::string::npos);
  EXPECT_NE(s.message().find("No such file"), std::string::npos) << s.message();
  std::vector<std::string> names;
  EXPECT_TRUE(env->list_dir(dir.file("nodir"), &names).is_not_found());
  std::unique_ptr<MappedFile> m;
  EXPECT_TRUE(env->map_file(dir.file("nope"), &m).is_not_found());
}

TEST(PosixEnv, EmptyFileMapsToEmptyView) {
  TempDir dir;
  ASSERT_TRUE(write_file(Env::posix(), dir.file("e"), "", true));
  std::unique_ptr<MappedFile> m;
  ASSERT_TRUE(Env::posix()->map_file(dir.file("e"), &m));
  EXPECT_TRUE(m->data().empty());
}

TEST(PosixEnv, RandomAccessFileReadsAnyRangeAndStopsAtTheEnd) {
  TempDir dir;
  Env* env = Env::posix();
  ASSERT_TRUE(write_file(env, dir.file("r"), "0123456789", true));
  std::unique_ptr<RandomAccessFile> f;
  ASSERT_TRUE(env->new_random_access_file(dir.file("r"), &f));
  EXPECT_EQ(f->size(), 10u);
  std::string out = "stale";
  ASSERT_TRUE(f->read(3, 4, &out));
  EXPECT_EQ(out, "3456");
  ASSERT_TRUE(f->read(0, 10, &out));
  EXPECT_EQ(out, "0123456789");
  ASSERT_TRUE(f->read(8, 100, &out));  // past the end: what there is
  EXPECT_EQ(out, "89");
  ASSERT_TRUE(f->read(10, 5, &out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(f->read(1000, 5, &out));
  EXPECT_EQ(out, "");
  ASSERT_TRUE(f->read(2, 0, &out));
  EXPECT_EQ(out, "");
}

TEST(PosixEnv, RandomAccessFileOutlivesItsName) {
  // A snapshot being sent to a follower may be replaced (and removed) by a newer one.
  TempDir dir;
  Env* env = Env::posix();
  ASSERT_TRUE(write_file(env, dir.file("r"), "still here", true));
  std::unique_ptr<RandomAccessFile> f;
  ASSERT_TRUE(env->new_random_access_file(dir.file("r"), &f));
  ASSERT_TRUE(env->remove_file(dir.file("r")));
  std::string out;
  ASSERT_TRUE(f->read(6, 4, &out));
  EXPECT_EQ(out, "here");
}

TEST(PosixEnv, RandomAccessFileMissingIsNotFound) {
  TempDir dir;
  std::unique_ptr<RandomAccessFile> f;
  Status s = Env::posix()->new_random_access_file(dir.file("nope"), &f);
  EXPECT_TRUE(s.is_not_found()) << s.to_string();
  EXPECT_NE(s.message().find("nope"), std::string::npos) << s.message();
}

TEST(FaultInjectionEnv, DropUnsyncedLosesExactlyTheUnsyncedSuffix) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  std::string path = dir.file("f");
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env.new_writable_file(path, &f));
  ASSERT_TRUE(env.sync_dir(dir.path()));
  ASSERT_TRUE(f->append("synced-"));
  ASSERT_TRUE(f->sync());
  ASSERT_TRUE(f->append("lost"));
  ASSERT_TRUE(f->close());
  ASSERT_TRUE(env.drop_unsynced());
  std::string data;
  ASSERT_TRUE(env.read_file(path, &data));
  EXPECT_EQ(data, "synced-");
}

TEST(FaultInjectionEnv, NewFileWithoutDirSyncDisappears) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  ASSERT_TRUE(write_file(&env, dir.file("kept"), "x", true));
  ASSERT_TRUE(env.sync_dir(dir.path()));
  ASSERT_TRUE(write_file(&env, dir.file("gone"), "y", true));  // file synced, name not
  ASSERT_TRUE(env.drop_unsynced());
  EXPECT_TRUE(env.file_exists(dir.file("kept")));
  EXPECT_FALSE(env.file_exists(dir.file("gone")));
}

TEST(FaultInjectionEnv, PreexistingFilesAreDurableAsFound) {
  TempDir dir;
  ASSERT_TRUE(write_file(Env::posix(), dir.file("old"), "abc", false));
  FaultInjectionEnv env(Env::posix());
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env.new_appendable_file(dir.file("old"), &f));
  ASSERT_TRUE(f->append("def"));
  ASSERT_TRUE(f->close());
  ASSERT_TRUE(env.drop_unsynced());
  std::string data;
  ASSERT_TRUE(env.read_file(dir.file("old"), &data));
  EXPECT_EQ(data, "abc");
}

TEST(FaultInjectionEnv, SyncFailsWithEioAndStaysFailed) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env.new_writable_file(dir.file("f"), &f));
  env.fail_sync_after(1);
  ASSERT_TRUE(f->append("a"));
  EXPECT_TRUE(f->sync());
  Status s = f->sync();
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos);
  EXPECT_TRUE(f->sync().is_io_error());  // a failed device stays failed
  EXPECT_TRUE(env.sync_dir(dir.path()).is_io_error());
  env.clear_faults();
  EXPECT_TRUE(f->sync());
}

TEST(FaultInjectionEnv, WriteFailsWithEio) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env.new_writable_file(dir.file("f"), &f));
  env.fail_write_after(2);
  EXPECT_TRUE(f->append("1"));
  EXPECT_TRUE(f->append("2"));
  EXPECT_TRUE(f->append("3").is_io_error());
  EXPECT_EQ(f->size(), 2u);
}

TEST(FaultInjectionEnv, ReadFailsWithEioAndStaysFailed) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  ASSERT_TRUE(write_file(&env, dir.file("r"), "0123456789", true));
  std::unique_ptr<RandomAccessFile> f;
  ASSERT_TRUE(env.new_random_access_file(dir.file("r"), &f));
  EXPECT_EQ(f->size(), 10u);
  env.fail_read_after(1);
  std::string out;
  ASSERT_TRUE(f->read(0, 3, &out));
  EXPECT_EQ(out, "012");
  Status s = f->read(3, 3, &out);
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
  EXPECT_NE(s.message().find("Input/output error"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(dir.file("r")), std::string::npos) << s.message();
  std::unique_ptr<RandomAccessFile> again;  // a failed device stays failed, for every file
  ASSERT_TRUE(env.new_random_access_file(dir.file("r"), &again));
  EXPECT_TRUE(again->read(0, 1, &out).is_io_error());
  env.clear_faults();
  ASSERT_TRUE(f->read(3, 3, &out));
  EXPECT_EQ(out, "345");
}

TEST(FaultInjectionEnv, FullDiskWritesWhatFitsThenEnospc) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  std::unique_ptr<WritableFile> f;
  ASSERT_TRUE(env.new_writable_file(dir.file("f"), &f));
  env.set_space_left(5);
  EXPECT_TRUE(f->append("abc"));
  Status s = f->append("defgh");
  EXPECT_TRUE(s.is_io_error());
  EXPECT_NE(s.message().find("No space left"), std::string::npos) << s.message();
  EXPECT_EQ(f->size(), 5u);
  std::string data;
  ASSERT_TRUE(env.read_file(dir.file("f"), &data));
  EXPECT_EQ(data, "abcde");
}

TEST(FaultInjectionEnv, RenameWithoutDirSyncLosesTarget) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  ASSERT_TRUE(write_file(&env, dir.file("tmp"), "content", true));
  ASSERT_TRUE(env.rename_file(dir.file("tmp"), dir.file("final")));
  ASSERT_TRUE(env.drop_unsynced());
  EXPECT_FALSE(env.file_exists(dir.file("final")));
}

}  // namespace
}  // namespace hmdb::storage
