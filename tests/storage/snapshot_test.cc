// tests/storage/snapshot_test.cc — snapshot files: round trip, streaming, damage (bit flips,
// truncation) is corruption naming the file, newest-snapshot selection, temp files, faults.
#include "storage/snapshot.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <fstream>
#include <random>

#include "test_util.h"

namespace hmdb::storage {
namespace {

using testing::TempDir;

raft::SnapshotMeta meta(raft::Index index) {
  raft::SnapshotMeta m;
  m.index = index;
  m.term = 3;
  m.schema_version = 2;
  m.conf.voters = {1, 2, 3};
  m.conf.learners = {7};
  return m;
}

// A body of n key/value pairs, streamed.
std::function<void(Encoder&)> body(int n) {
  return [n](Encoder& e) {
    e.varint(n);
    for (int i = 0; i < n; i++) {
      e.bytes("key-" + std::to_string(i));
      e.u64(static_cast<uint64_t>(i) * 7);
    }
  };
}

std::string expected_payload(int n) {
  Encoder e;
  body(n)(e);
  return e.take();
}

std::string write(Env* env, const std::string& dir, raft::Index index, int n = 10) {
  std::string path;
  Status s = write_snapshot(env, dir, meta(index), "kv", body(n), &path);
  EXPECT_TRUE(s) << s.to_string();
  return path;
}

std::string read_all(const std::string& path) {
  std::string data;
  EXPECT_TRUE(Env::posix()->read_file(path, &data));
  return data;
}

void overwrite(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

TEST(Snapshot, RoundTrip) {
  TempDir dir;
  std::string path = write(Env::posix(), dir.path(), 42);
  EXPECT_EQ(path, dir.file("snap-00000000000000000042.hmsnap"));
  LoadedSnapshot snap;
  ASSERT_TRUE(read_latest_snapshot(Env::posix(), dir.path(), &snap));
  EXPECT_EQ(snap.meta, meta(42));
  EXPECT_EQ(snap.app_name, "kv");
  EXPECT_EQ(snap.path, path);
  EXPECT_EQ(snap.payload, expected_payload(10));
  Decoder d(snap.payload);
  EXPECT_EQ(d.varint(), 10u);
}

// Files of the formats before this one are still read, and say which format they are (the
// payload of formats 1 and 2 has no request table: core/state.h).
TEST(Snapshot, OlderFormatsAreStillReadAndSayTheirVersion) {
  TempDir dir;
  std::string path = write(Env::posix(), dir.path(), 42);
  std::string data = read_all(path);
  EXPECT_EQ(codec::get_u32(data.data() + 8), kSnapshotFormatVersion);
  EXPECT_EQ(kSnapshotFormatVersion, 5u);
  LoadedSnapshot snap;
  ASSERT_TRUE(read_snapshot_file(Env::posix(), path, &snap));
  EXPECT_EQ(snap.format_version, 5u);
  // The same file as format 2 (same header fields): version, header and file checksums.
  const uint64_t header_bytes = codec::get_u32(data.data() + 12);
  codec::put_u32(data.data() + 8, 2);
  codec::put_u64(data.data() + header_bytes - 8, XXH3_64bits(data.data(), header_bytes - 8));
  codec::put_u64(data.data() + data.size() - 8, XXH3_64bits(data.data(), data.size() - 8));
  overwrite(path, data);
  ASSERT_TRUE(read_snapshot_file(Env::posix(), path, &snap));
  EXPECT_EQ(snap.format_version, 2u);
  EXPECT_EQ(snap.payload, expected_payload(10));
  EXPECT_EQ(snap.cluster_info, "");
  // A version above this binary's is refused as unsupported, naming the versions it reads.
  codec::put_u32(data.data() + 8, kSnapshotFormatVersion + 1);
  codec::put_u64(data.data() + header_bytes - 8, XXH3_64bits(data.data(), header_bytes - 8));
  codec::put_u64(data.data() + data.size() - 8, XXH3_64bits(data.data(), data.size() - 8));
  overwrite(path, data);
  Status s = read_snapshot_file(Env::posix(), path, &snap);
  EXPECT_EQ(s.code(), Status::Code::kNotSupported) << "a newer binary's file, not damage: " << s.to_string();
  EXPECT_NE(s.message().find("unsupported snapshot format version 6 (this build reads 1 to 5): written by a newer hmdb"),
            std::string::npos)
      << s.message();
  // The same version with a damaged header is corruption.
  data[20] ^= 1;
  overwrite(path, data);
  s = read_snapshot_file(Env::posix(), path, &snap);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("unsupported snapshot format version 6 (this build reads 1 to 5), and the header "
                             "checksum does not match: damaged"),
            std::string::npos)
      << s.message();
}

TEST(Snapshot, LargePayloadIsStreamedInChunks) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  int n = 300000;  // ~5 MB: several Encoder flushes
  std::string path = write(&env, dir.path(), 9, n);
  LoadedSnapshot snap;
  ASSERT_TRUE(read_snapshot_file(&env, path, &snap));
  EXPECT_EQ(snap.payload, expected_payload(n));
  // Payload outlives the LoadedSnapshot it came from as long as a copy holds the mapping.
  LoadedSnapshot copy = snap;
  snap = LoadedSnapshot{};
  EXPECT_EQ(copy.payload.substr(0, 3), expected_payload(n).substr(0, 3));
}

TEST(Snapshot, EveryFlippedBitIsCorruptionNamingTheFile) {
  TempDir dir;
  std::string path = write(Env::posix(), dir.path(), 5, 20);
  const std::string good = read_all(path);
  for (size_t at = 0; at < good.size(); at++) {
    std::string bad = good;
    bad[at] ^= static_cast<char>(1 << (at % 8));
    overwrite(path, bad);
    LoadedSnapshot snap;
    Status s = read_latest_snapshot(Env::posix(), dir.path(), &snap);
    ASSERT_TRUE(s.is_corruption()) << "flip at " << at << ": " << s.to_string();
    EXPECT_NE(s.message().find(path), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("offset"), std::string::npos) << s.message();
  }
}

TEST(Snapshot, TruncationAndExtensionAreCorruption) {
  TempDir dir;
  std::string path = write(Env::posix(), dir.path(), 5, 20);
  const std::string good = read_all(path);
  for (size_t len : {size_t{0}, size_t{7}, size_t{40}, good.size() / 2, good.size() - 1}) {
    overwrite(path, good.substr(0, len));
    LoadedSnapshot snap;
    Status s = read_snapshot_file(Env::posix(), path, &snap);
    EXPECT_TRUE(s.is_corruption()) << len << ": " << s.to_string();
  }
  overwrite(path, good + "x");
  LoadedSnapshot snap;
  EXPECT_TRUE(read_snapshot_file(Env::posix(), path, &snap).is_corruption());
}

TEST(Snapshot, NewestWinsAndADamagedNewestIsNeverSkipped) {
  TempDir dir;
  write(Env::posix(), dir.path(), 10);
  std::string newest = write(Env::posix(), dir.path(), 20);
  LoadedSnapshot snap;
  ASSERT_TRUE(read_latest_snapshot(Env::posix(), dir.path(), &snap));
  EXPECT_EQ(snap.meta.index, 20u);
  std::string data = read_all(newest);
  data[data.size() / 2] ^= 4;
  overwrite(newest, data);
  Status s = read_latest_snapshot(Env::posix(), dir.path(), &snap);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("snap-00000000000000000020.hmsnap"), std::string::npos) << s.message();
}

TEST(Snapshot, NoneIsNotFound) {
  TempDir dir;
  LoadedSnapshot snap;
  EXPECT_TRUE(read_latest_snapshot(Env::posix(), dir.path(), &snap).is_not_found());
  EXPECT_TRUE(read_latest_snapshot(Env::posix(), dir.file("missing"), &snap).is_not_found());
}

TEST(Snapshot, StaleTempFilesAreRemovedAtStartup) {
  TempDir dir;
  overwrite(dir.file("snap-00000000000000000050.hmsnap.tmp"), "half a snapshot");
  overwrite(dir.file("snap-00000000000000000060.hmsnap.slices.tmp"), "half a snapshot in slices");
  overwrite(dir.file("unrelated.tmp"), "not ours");
  overwrite(dir.file("unrelated.slices.tmp"), "not ours either");
  write(Env::posix(), dir.path(), 10);
  LoadedSnapshot snap;
  ASSERT_TRUE(read_latest_snapshot(Env::posix(), dir.path(), &snap, /*remove_stale_temp_files=*/false));
  EXPECT_TRUE(Env::posix()->file_exists(dir.file("snap-00000000000000000050.hmsnap.tmp")));
  ASSERT_TRUE(read_latest_snapshot(Env::posix(), dir.path(), &snap));
  EXPECT_EQ(snap.meta.index, 10u);
  EXPECT_FALSE(Env::posix()->file_exists(dir.file("snap-00000000000000000050.hmsnap.tmp")));
  EXPECT_FALSE(Env::posix()->file_exists(dir.file("snap-00000000000000000060.hmsnap.slices.tmp")));
  EXPECT_TRUE(Env::posix()->file_exists(dir.file("unrelated.tmp")));
  EXPECT_TRUE(Env::posix()->file_exists(dir.file("unrelated.slices.tmp")));
}

TEST(Snapshot, RemoveSnapshotsBefore) {
  TempDir dir;
  for (raft::Index i : {5, 10, 15}) write(Env::posix(), dir.path(), i);
  ASSERT_TRUE(remove_snapshots_before(Env::posix(), dir.path(), 15));
  std::vector<std::string> paths;
  ASSERT_TRUE(list_snapshots(Env::posix(), dir.path(), &paths));
  EXPECT_EQ(paths, std::vector<std::string>{dir.file("snap-00000000000000000015.hmsnap")});
}

TEST(Snapshot, RenamedFileIsCorruption) {
  TempDir dir;
  std::string path = write(Env::posix(), dir.path(), 5);
  ASSERT_TRUE(Env::posix()->rename_file(path, dir.file(snapshot_file_name(6))));
  LoadedSnapshot snap;
  Status s = read_latest_snapshot(Env::posix(), dir.path(), &snap);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
}

TEST(Snapshot, WriteOrSyncFailureLeavesNoSnapshotBehind) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  env.fail_write_after(1);
  std::string path;
  Status s = write_snapshot(&env, dir.path(), meta(5), "kv", body(100000), &path);
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
  env.clear_faults();
  env.fail_sync_after(0);
  s = write_snapshot(&env, dir.path(), meta(6), "kv", body(10), &path);
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
  env.clear_faults();
  std::vector<std::string> names;
  ASSERT_TRUE(env.list_dir(dir.path(), &names));
  EXPECT_TRUE(names.empty()) << names.front();
}

TEST(Snapshot, SurvivesPowerLossOnceWritten) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  ASSERT_TRUE(env.create_dir(dir.path()));
  write(&env, dir.path(), 8);
  ASSERT_TRUE(env.drop_unsynced());
  LoadedSnapshot snap;
  ASSERT_TRUE(read_latest_snapshot(&env, dir.path(), &snap));
  EXPECT_EQ(snap.payload, expected_payload(10));
}

TEST(Snapshot, ChunkedAppendMatchesEncoderBody) {
  // A follower receiving a snapshot from its leader writes the payload in chunks.
  TempDir dir;
  std::string payload = expected_payload(5000);
  std::unique_ptr<SnapshotWriter> w;
  ASSERT_TRUE(SnapshotWriter::create(Env::posix(), dir.path(), meta(77), "kv", &w));
  for (size_t at = 0; at < payload.size(); at += 1000) ASSERT_TRUE(w->append(payload.substr(at, 1000)));
  std::string path;
  ASSERT_TRUE(w->finish(&path));
  LoadedSnapshot snap;
  ASSERT_TRUE(read_snapshot_file(Env::posix(), path, &snap));
  EXPECT_EQ(snap.payload, payload);
  EXPECT_EQ(snap.meta, meta(77));
}

}  // namespace
}  // namespace hmdb::storage
