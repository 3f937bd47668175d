// storage/read_only_env.h — an Env that reads through another and refuses every write: the
// guarantee behind `hmdb dry-run` (src/server/dry_run.cc) that a data directory it replays is
// never changed, whatever the storage code it calls would otherwise do (cut a torn tail,
// remove a stale temporary snapshot, create the directory).
//
// Every mutating call fails with Status::io_error naming the operation and the path, and is
// counted, so a caller can also tell that something tried. Reads (read_file, map_file: a
// read-only mapping, random access, sizes, listings) go to the base Env unchanged.
// Thread-safety: as the base Env's; the refusal count is atomic.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "storage/env.h"

namespace hmdb::storage {

class ReadOnlyEnv final : public Env {
 public:
  explicit ReadOnlyEnv(Env* base) : base_(base) {}

  // Mutating calls refused so far.
  uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  Status new_writable_file(const std::string& path, std::unique_ptr<WritableFile>*) override {
    return refuse("create", path);
  }
  Status new_appendable_file(const std::string& path, std::unique_ptr<WritableFile>*) override {
    return refuse("open for appending", path);
  }
  Status read_file(const std::string& path, std::string* out) override { return base_->read_file(path, out); }
  Status map_file(const std::string& path, std::unique_ptr<MappedFile>* out) override {
    return base_->map_file(path, out);
  }
  Status new_random_access_file(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override {
    return base_->new_random_access_file(path, out);
  }
  Status file_size(const std::string& path, uint64_t* size) override { return base_->file_size(path, size); }
  Status truncate_file(const std::string& path, uint64_t) override { return refuse("truncate", path); }
  Status list_dir(const std::string& dir, std::vector<std::string>* names) override {
    return base_->list_dir(dir, names);
  }
  Status create_dir(const std::string& dir) override { return refuse("create the directory", dir); }
  Status remove_file(const std::string& path) override { return refuse("remove", path); }
  Status rename_file(const std::string& from, const std::string&) override { return refuse("rename", from); }
  Status sync_dir(const std::string& dir) override { return refuse("sync", dir); }
  bool file_exists(const std::string& path) override { return base_->file_exists(path); }

 private:
  Status refuse(const char* what, const std::string& path) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    return Status::io_error(std::string("read-only: refused to ") + what + " " + path +
                            " (a dry run never writes the directory it reads)");
  }

  Env* base_;
  std::atomic<uint64_t> refused_{0};
};

}  // namespace hmdb::storage
