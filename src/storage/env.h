// storage/env.h — every file access of the storage layer goes through Env (LevelDB style).
//
// Why an interface: the log and snapshot code must be testable against a disk that loses
// what was never synced, fails an fsync with EIO, or runs out of space. PosixEnv is the
// real thing; FaultInjectionEnv wraps any Env and simulates those faults.
//
// Errors: Status::io_error with the operation, the path and strerror(errno);
// Status::not_found when a file or directory does not exist.
// Thread-safety: PosixEnv is thread-safe (no shared state). A WritableFile is used by one
// thread at a time. FaultInjectionEnv guards its bookkeeping with a mutex.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace hmdb::storage {

// A file opened for appending. append() writes through to the kernel with pwrite(2) at
// size() (no user-space buffer: callers batch), sync() is fdatasync.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  // Writes all of data or returns an error (short writes are retried, EINTR handled).
  // After an error the file's content past the last successful append is unknown.
  virtual Status append(std::string_view data) = 0;
  // fdatasync(2). An error here means the kernel may have dropped dirty pages: the caller
  // must treat it as fatal and never retry (PostgreSQL's fsync lesson).
  virtual Status sync() = 0;
  virtual Status close() = 0;
  // Bytes in the file (what was there when opened plus what was appended since).
  virtual uint64_t size() const = 0;

  // Preallocation (the log's segments use it; see "Preallocated segments" in
  // docs/decisions.md). Writes zeros over [allocated(), end) without changing size(): later
  // appends overwrite them in place, so the fdatasync after an append no longer has to
  // write the file's new length (on ext4 one device write and one wait less per sync).
  // A failure is not fatal to the file's content: what was written before stays, appends
  // still go to size(); allocated() says how far the zeros got. Files that cannot do it
  // (the default) do nothing and return ok.
  virtual Status preallocate(uint64_t end) {
    (void)end;
    return Status::ok();
  }
  // End of the file's bytes on disk: size() plus the zeros preallocate() put after it.
  virtual uint64_t allocated() const { return size(); }
};

// A read-only view of a whole file (mmap). data() is valid while the object lives.
class MappedFile {
 public:
  virtual ~MappedFile() = default;
  virtual std::string_view data() const = 0;
};

// A file opened for reading parts of it at any offset (pread), e.g. a snapshot sent to a
// follower one chunk at a time, without mapping or reading the whole file. Used by one thread
// at a time. The open descriptor keeps the file's data alive after its name is removed.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads the bytes [offset, offset + length) into *out (replacing its content). Fewer bytes
  // (possibly none) only where the file ends before offset + length. EINTR and short reads are
  // handled. An error leaves *out unspecified.
  virtual Status read(uint64_t offset, size_t length, std::string* out) = 0;
  // Bytes in the file when it was opened.
  virtual uint64_t size() const = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  // The process-wide POSIX environment (never deleted).
  static Env* posix();

  // Creates or truncates path.
  virtual Status new_writable_file(const std::string& path, std::unique_ptr<WritableFile>* out) = 0;
  // Opens path for appending, creating it if missing.
  virtual Status new_appendable_file(const std::string& path, std::unique_ptr<WritableFile>* out) = 0;
  // Reads the whole file into *out.
  virtual Status read_file(const std::string& path, std::string* out) = 0;
  // Maps the whole file read-only.
  virtual Status map_file(const std::string& path, std::unique_ptr<MappedFile>* out) = 0;
  // Opens path for reading at any offset.
  virtual Status new_random_access_file(const std::string& path, std::unique_ptr<RandomAccessFile>* out) = 0;
  virtual Status file_size(const std::string& path, uint64_t* size) = 0;
  virtual Status truncate_file(const std::string& path, uint64_t size) = 0;
  // Names (not paths) of the entries of dir, without "." and "..", in no particular order.
  virtual Status list_dir(const std::string& dir, std::vector<std::string>* names) = 0;
  // Creates dir (one level); ok if it already exists.
  virtual Status create_dir(const std::string& dir) = 0;
  virtual Status remove_file(const std::string& path) = 0;
  // rename(2): atomically replaces `to`. Durable only after sync_dir() of the directory.
  virtual Status rename_file(const std::string& from, const std::string& to) = 0;
  // fsync of the directory, which makes created, renamed and removed names durable.
  virtual Status sync_dir(const std::string& dir) = 0;
  virtual bool file_exists(const std::string& path) = 0;
};

// Joins a directory and a file name.
std::string path_join(const std::string& dir, std::string_view name);

// ---------------------------------------------------------------------------------------
// FaultInjectionEnv: for tests. Wraps a real Env (usually Env::posix() on a temp dir).
//
// It remembers, for every file written through it, how many bytes were synced, and which
// files were created since their directory was last synced. drop_unsynced() then does what
// a power loss does: every such file is truncated to its synced size (or, torn, to a
// point between that and its current size) and files whose
// directory entry was never synced are removed (as LevelDB's fault_injection_test does).
// Files that existed before the Env saw them are assumed durable as they are.
// Preallocated zeros (WritableFile::preallocate) are durable once synced: a power loss
// then turns the lost appends inside them back into zeros instead of cutting the file.
//
// Faults: fail_write_after(n) / fail_sync_after(n) make the (n+1)-th following append /
// sync fail with EIO, and every one after it (a failed device stays failed); directory
// syncs count as syncs.
// set_space_left(bytes) simulates a full disk: appends beyond the budget write what fits
// and then fail with ENOSPC. fail_read_after(n) makes the (n+1)-th following
// RandomAccessFile::read fail with EIO, and every one after it (read_file and map_file, which
// read whole files at startup, are not counted).
class FaultInjectionEnv final : public Env {
 public:
  explicit FaultInjectionEnv(Env* base) : base_(base) {}

  // Simulated power loss. REQUIRES: no WritableFile of this Env is still written to.
  // With torn_seed != 0, each file keeps a pseudo-random prefix (chosen from the seed) of
  // its unsynced bytes instead of none: a write that was partly on the platter.
  Status drop_unsynced(uint64_t torn_seed = 0);

  static constexpr int64_t kNever = -1;
  void fail_write_after(int64_t appends);
  void fail_sync_after(int64_t syncs);
  void set_space_left(uint64_t bytes);
  void fail_read_after(int64_t reads);
  void clear_faults();
  uint64_t sync_count() const;
  uint64_t dir_sync_count() const;
  uint64_t append_count() const;  // WritableFile appends let through (each one write(2) in Posix)

  Status new_writable_file(const std::string& path, std::unique_ptr<WritableFile>* out) override;
  Status new_appendable_file(const std::string& path, std::unique_ptr<WritableFile>* out) override;
  Status read_file(const std::string& path, std::string* out) override { return base_->read_file(path, out); }
  Status map_file(const std::string& path, std::unique_ptr<MappedFile>* out) override { return base_->map_file(path, out); }
  Status new_random_access_file(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override;
  Status file_size(const std::string& path, uint64_t* size) override { return base_->file_size(path, size); }
  Status truncate_file(const std::string& path, uint64_t size) override;
  Status list_dir(const std::string& dir, std::vector<std::string>* names) override { return base_->list_dir(dir, names); }
  Status create_dir(const std::string& dir) override { return base_->create_dir(dir); }
  Status remove_file(const std::string& path) override;
  Status rename_file(const std::string& from, const std::string& to) override;
  Status sync_dir(const std::string& dir) override;
  bool file_exists(const std::string& path) override { return base_->file_exists(path); }

 private:
  class File;
  friend class File;
  class ReadFile;
  friend class ReadFile;
  // Called by File and ReadFile under no lock; they take mu_.
  Status before_append(const std::string& path, std::string_view data, size_t* allowed);
  Status before_preallocate(const std::string& path, uint64_t bytes, uint64_t* allowed);
  Status before_read(const std::string& path);
  Status before_sync(const std::string& path);
  void after_append(const std::string& path, uint64_t size);
  void after_sync(const std::string& path, uint64_t size, uint64_t allocated);
  Status zero_range(const std::string& path, uint64_t from, uint64_t to);  // under mu_

  struct Tracked {
    uint64_t synced_size = 0;
    bool dir_entry_synced = true;
    // Set once preallocate() was used on the file: then its length on disk is not where
    // its appends end, and these say what a power loss leaves.
    bool preallocated = false;
    uint64_t size = 0;               // where the appends end (WritableFile::size)
    uint64_t synced_allocated = 0;   // length on disk at the last sync (synced zeros)
  };

  Env* base_;
  mutable std::mutex mu_;
  std::map<std::string, Tracked> files_;  // by path
  int64_t writes_until_failure_ = kNever;
  int64_t syncs_until_failure_ = kNever;
  int64_t reads_until_failure_ = kNever;
  bool writes_failed_ = false;
  bool syncs_failed_ = false;
  bool reads_failed_ = false;
  bool space_limited_ = false;
  uint64_t space_left_ = 0;
  uint64_t sync_count_ = 0;
  uint64_t dir_sync_count_ = 0;
  uint64_t append_count_ = 0;
};

}  // namespace hmdb::storage
