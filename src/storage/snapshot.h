// storage/snapshot.h — snapshot files: `<dir>/snap-<index, 20 digits>.hmsnap`.
//
// Layout (little endian; docs/formats.md has it byte by byte):
//   header:  8 bytes magic "HMDBSNP1" | u32 format version (5) | u32 header_bytes
//            | u64 index | u64 term | u32 schema_version | u16 app name length | app name
//            | u32 voter count | voters (u64 each) | u32 learner count | learners (u64 each)
//            | (format 2) u32 cluster info length | cluster info (the shell's member
//              addresses, opaque here) | u64 XXH3_64 of the header bytes before it
//   payload: the replicated state, streamed: from format 5, the active schema version, the
//            ACL users, the request table, then the app's encoding; format 4 the same
//            without the users; format 3, the request table then the
//            app's; formats 1 and 2, the app's encoding alone (core/state.h).
//            Opaque here: the header's format version tells its reader which it is.
//   trailer: u64 payload length | u64 XXH3_64 of every byte of the file before it
// The payload length sits in the trailer, not the header, because the writer streams a
// multi-GiB state straight to the file and learns the length only at the end; keeping it
// last keeps the file append-only and the checksum a single pass.
//
// Writing: to `<name>.tmp`, fdatasync, rename, fsync of the directory, so a crash leaves
// either the old set of snapshots or the new one, never a half file under the final name.
// Reading: mmap (read-only); header, lengths and checksum are verified before the payload
// is exposed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "core/state.h"
#include "hmdb/codec.h"
#include "raft/types.h"
#include "storage/env.h"

namespace hmdb::storage {

inline constexpr char kSnapshotMagic[8] = {'H', 'M', 'D', 'B', 'S', 'N', 'P', '1'};
// Version 2 added the cluster info; version 3 starts the payload with the request table,
// version 4 with the active schema version before it, version 5 adds the ACL users after
// that (core/state.h says what each payload holds). Files of versions 1 to 4 are still read.
inline constexpr uint32_t kSnapshotFormatVersion = 5;
static_assert(kSnapshotFormatVersion == core::kStateFormatNewest, "core/state.h writes the newest payload");
inline constexpr uint32_t kSnapshotOldestFormatVersion = 1;
inline constexpr size_t kMaxClusterInfoBytes = 1 << 20;  // bound on the cluster info in a header
inline constexpr size_t kMaxAppNameBytes = 255;   // bound on the app name in a header
inline constexpr uint32_t kMaxConfNodes = 4096;   // bound on voters, and on learners
inline constexpr size_t kSnapshotTrailerSize = 16;
inline constexpr size_t kSnapshotMinHeaderBytes = 8 + 4 + 4 + 8 + 8 + 4 + 2 + 4 + 4 + 8;
inline constexpr size_t kSnapshotMaxHeaderBytes =
    kSnapshotMinHeaderBytes + kMaxAppNameBytes + 2 * 8 * kMaxConfNodes + 4 + kMaxClusterInfoBytes;
inline constexpr std::string_view kSnapshotPrefix = "snap-";
inline constexpr std::string_view kSnapshotSuffix = ".hmsnap";
inline constexpr std::string_view kTempSuffix = ".tmp";
// A snapshot written in slices (server/snapshot.cc) is streamed into <final name> + this, not
// kTempSuffix: an abandoned writer may still be finishing or removing its file while the
// leader's snapshot of the same index is staged under <final name> + kTempSuffix.
inline constexpr std::string_view kSlicesTempSuffix = ".slices.tmp";

std::string snapshot_file_name(raft::Index index);
// True if name is exactly snap-<20 digits>.hmsnap; sets *index.
bool parse_snapshot_file_name(std::string_view name, raft::Index* index);

// Streams one snapshot into `<dir>/snap-<index>.hmsnap.tmp` (or the temp_suffix given);
// finish() makes it durable
// under its final name. Use sink() with an Encoder, or append() for raw chunks (a follower
// receiving a snapshot from its leader). Destroying an unfinished writer removes the
// temp file. Thread-safety: none.
class SnapshotWriter {
 public:
  static Status create(Env* env, const std::string& dir, const raft::SnapshotMeta& meta, std::string_view app_name,
                       std::unique_ptr<SnapshotWriter>* out, std::string_view cluster_info = {},
                       std::string_view temp_suffix = kTempSuffix);
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  // A Sink for Encoder(sink()): writes through to the file and the running hash. An error
  // is remembered and returned by finish().
  Sink* sink();
  Status append(std::string_view payload_bytes);
  uint64_t payload_bytes() const { return payload_bytes_; }
  // Trailer, fdatasync, close, rename to the final name, fsync of the directory.
  Status finish(std::string* path_out);

 private:
  class HashingSink;
  SnapshotWriter() = default;
  Status write(std::string_view bytes);

  Env* env_ = nullptr;
  std::string dir_;
  std::string temp_path_;
  std::string final_path_;
  std::unique_ptr<WritableFile> file_;
  std::unique_ptr<HashingSink> sink_;
  void* hash_state_ = nullptr;  // XXH3_state_t
  uint64_t payload_bytes_ = 0;
  Status status_;
  bool finished_ = false;
};

// Writes <dir>/snap-<index 20 digits>.hmsnap via a temp file: body() streams the app state
// into the Encoder (whose sink writes the file and hashes it), then fsync, rename, fsync dir.
Status write_snapshot(Env* env, const std::string& dir, const raft::SnapshotMeta& meta, std::string_view app_name,
                      const std::function<void(Encoder&)>& body, std::string* path_out,
                      std::string_view cluster_info = {});

struct LoadedSnapshot {
  raft::SnapshotMeta meta;
  uint32_t format_version = 0;  // of the file: says what the payload holds (core/state.h)
  std::string app_name;
  std::string cluster_info;  // the shell's member addresses (empty in format 1)
  std::string path;
  std::string_view payload;  // valid while this object (or a copy of it) lives: it holds the mapping
  uint64_t file_bytes = 0;
  uint64_t header_bytes = 0;
  std::shared_ptr<MappedFile> mapping;
};

// Reads and verifies one snapshot file.
Status read_snapshot_file(Env* env, const std::string& path, LoadedSnapshot* out);

// Newest snapshot in dir (highest index); NotFound if none. A damaged newest snapshot is
// corruption (naming the file and offset), never silently skipped.
// remove_stale_temp_files: deletes `*.hmsnap.tmp` and `*.hmsnap.slices.tmp` left by a crash.
// Right at startup; pass
// false when a snapshot may be being written concurrently (e.g. by a forked child).
Status read_latest_snapshot(Env* env, const std::string& dir, LoadedSnapshot* out, bool remove_stale_temp_files = true);

// Deletes snapshots with index < index (and syncs the directory).
Status remove_snapshots_before(Env* env, const std::string& dir, raft::Index index);

// Snapshot files of dir, oldest first (paths). A missing dir yields an empty list.
Status list_snapshots(Env* env, const std::string& dir, std::vector<std::string>* paths);

// Parses and verifies a whole snapshot file held in memory. `name` is used in messages
// (and its index, if it parses as a snapshot file name, must match the header). Never
// reads outside `file` (fuzzed). On success *payload points into `file`.
struct SnapshotHeader {
  raft::SnapshotMeta meta;
  uint32_t format_version = 0;
  std::string app_name;
  std::string cluster_info;
  uint64_t header_bytes = 0;
};
Status decode_snapshot(std::string_view file, const std::string& name, SnapshotHeader* header, std::string_view* payload);

}  // namespace hmdb::storage
