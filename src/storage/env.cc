// storage/env.cc — PosixEnv (the real file system) and FaultInjectionEnv (tests).
#include "storage/env.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/assert.h"

namespace hmdb::storage {

std::string path_join(const std::string& dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  std::string out = dir;
  if (out.back() != '/') out += '/';
  out += name;
  return out;
}

namespace {

Status errno_status(std::string_view op, const std::string& path, int err) {
  std::string msg = fmt::format("{} {}: {}", op, path, std::strerror(err));
  if (err == ENOENT) return Status::not_found(std::move(msg));
  return Status::io_error(std::move(msg));
}

// Opens path read-only and stats it; on failure nothing is left open.
Status open_for_reading(const std::string& path, int* fd_out, struct stat* st) {
  int fd;
  do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno_status("open", path, errno);
  if (::fstat(fd, st) != 0) {
    Status s = errno_status("stat", path, errno);
    ::close(fd);
    return s;
  }
  *fd_out = fd;
  return Status::ok();
}

// Parent directory of a path ("." for a bare name).
std::string dir_of(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Strips trailing slashes so "a/b/" and "a/b" compare equal.
std::string normal_dir(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

// ================================ PosixEnv ================================

class PosixWritableFile final : public WritableFile {
 public:
  // size: bytes already in the file; appends go after them (pwrite at size_, not O_APPEND,
  // so that they can overwrite the zeros of preallocate()).
  PosixWritableFile(std::string path, int fd, uint64_t size)
      : path_(std::move(path)), fd_(fd), size_(size), allocated_(size) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status append(std::string_view data) override {
    HMDB_ASSERT(fd_ >= 0, "append to closed file %s", path_.c_str());
    Status s = write_at(size_, data.data(), data.size(), &size_);
    allocated_ = std::max(allocated_, size_);
    return s;
  }

  Status preallocate(uint64_t end) override {
    HMDB_ASSERT(fd_ >= 0, "preallocate of closed file %s", path_.c_str());
    static const char kZeros[64 << 10] = {};
    while (allocated_ < end) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(end - allocated_, sizeof kZeros));
      Status s = write_at(allocated_, kZeros, n, &allocated_);
      if (!s) {
        // Give the room back (a full disk): the appends may still fit without the zeros.
        if (allocated_ > size_ && ::ftruncate(fd_, static_cast<off_t>(size_)) == 0) allocated_ = size_;
        return s;
      }
    }
    return Status::ok();
  }

  Status sync() override {
    HMDB_ASSERT(fd_ >= 0, "sync of closed file %s", path_.c_str());
    while (::fdatasync(fd_) != 0) {
      if (errno == EINTR) continue;
      return errno_status("fdatasync", path_, errno);
    }
    return Status::ok();
  }

  Status close() override {
    if (fd_ < 0) return Status::ok();
    int fd = fd_;
    fd_ = -1;
    // Never retry close() on Linux: the descriptor is released even when it fails.
    if (::close(fd) != 0) return errno_status("close", path_, errno);
    return Status::ok();
  }

  uint64_t size() const override { return size_; }
  uint64_t allocated() const override { return allocated_; }

 private:
  // Writes all of [p, p + n) at offset; *end advances with every byte written (so after an
  // error it says how far the write got). Short writes are retried, EINTR handled.
  Status write_at(uint64_t offset, const char* p, size_t n, uint64_t* end) {
    while (n > 0) {
      ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno_status("write", path_, errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
      offset += static_cast<uint64_t>(w);
      *end = std::max(*end, offset);
    }
    return Status::ok();
  }

  std::string path_;
  int fd_;
  uint64_t size_;       // bytes appended (and there before): where the next append goes
  uint64_t allocated_;  // end of the bytes in the file: size_ plus preallocated zeros
};

class PosixMappedFile final : public MappedFile {
 public:
  PosixMappedFile(void* base, size_t size) : base_(base), size_(size) {}
  ~PosixMappedFile() override {
    if (base_ != nullptr) ::munmap(base_, size_);
  }
  std::string_view data() const override {
    return base_ == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(base_), size_);
  }

 private:
  void* base_;
  size_t size_;
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(std::string path, int fd, uint64_t size) : path_(std::move(path)), fd_(fd), size_(size) {}
  ~PosixRandomAccessFile() override { ::close(fd_); }

  Status read(uint64_t offset, size_t length, std::string* out) override {
    out->resize(length);
    size_t done = 0;
    while (done < length) {
      ssize_t n = ::pread(fd_, out->data() + done, length - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno_status("pread", path_, errno);
      }
      if (n == 0) break;  // the end of the file
      done += static_cast<size_t>(n);
    }
    out->resize(done);
    return Status::ok();
  }

  uint64_t size() const override { return size_; }

 private:
  std::string path_;
  int fd_;
  uint64_t size_;
};

class PosixEnv final : public Env {
 public:
  Status new_writable_file(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    int fd;
    do fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno_status("create", path, errno);
    *out = std::make_unique<PosixWritableFile>(path, fd, 0);
    return Status::ok();
  }

  Status new_appendable_file(const std::string& path, std::unique_ptr<WritableFile>* out) override {
    int fd;
    do fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno_status("open for append", path, errno);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      Status s = errno_status("stat", path, errno);
      ::close(fd);
      return s;
    }
    *out = std::make_unique<PosixWritableFile>(path, fd, static_cast<uint64_t>(st.st_size));
    return Status::ok();
  }

  Status read_file(const std::string& path, std::string* out) override {
    out->clear();
    int fd;
    struct stat st;
    if (Status s = open_for_reading(path, &fd, &st); !s) return s;
    // resize_and_overwrite would avoid zero-filling; the memset is cheap next to the read.
    out->resize(static_cast<size_t>(st.st_size));
    size_t done = 0;
    while (done < out->size()) {
      ssize_t n = ::read(fd, out->data() + done, out->size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        Status s = errno_status("read", path, errno);
        ::close(fd);
        return s;
      }
      if (n == 0) break;  // the file shrank meanwhile
      done += static_cast<size_t>(n);
    }
    out->resize(done);
    ::close(fd);
    return Status::ok();
  }

  Status map_file(const std::string& path, std::unique_ptr<MappedFile>* out) override {
    int fd;
    struct stat st;
    if (Status s = open_for_reading(path, &fd, &st); !s) return s;
    void* base = nullptr;
    size_t size = static_cast<size_t>(st.st_size);
    if (size > 0) {
      // MAP_POPULATE: every caller reads the whole file (checksums), so fault it in at once.
      base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
      if (base == MAP_FAILED) {
        Status s = errno_status("mmap", path, errno);
        ::close(fd);
        return s;
      }
    }
    ::close(fd);  // the mapping keeps the file alive
    *out = std::make_unique<PosixMappedFile>(base, size);
    return Status::ok();
  }

  Status new_random_access_file(const std::string& path, std::unique_ptr<RandomAccessFile>* out) override {
    int fd;
    struct stat st;
    if (Status s = open_for_reading(path, &fd, &st); !s) return s;
    *out = std::make_unique<PosixRandomAccessFile>(path, fd, static_cast<uint64_t>(st.st_size));
    return Status::ok();
  }

  Status file_size(const std::string& path, uint64_t* size) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return errno_status("stat", path, errno);
    *size = static_cast<uint64_t>(st.st_size);
    return Status::ok();
  }

  Status truncate_file(const std::string& path, uint64_t size) override {
    int rc;
    do rc = ::truncate(path.c_str(), static_cast<off_t>(size));
    while (rc != 0 && errno == EINTR);
    if (rc != 0) return errno_status("truncate", path, errno);
    return Status::ok();
  }

  Status list_dir(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return errno_status("opendir", dir, errno);
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != "..") names->emplace_back(n);
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return errno_status("readdir", dir, err);
    return Status::ok();
  }

  Status create_dir(const std::string& dir) override {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return errno_status("mkdir", dir, errno);
    return Status::ok();
  }

  Status remove_file(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return errno_status("unlink", path, errno);
    return Status::ok();
  }

  Status rename_file(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) return errno_status("rename", from + " -> " + to, errno);
    return Status::ok();
  }

  Status sync_dir(const std::string& dir) override {
    int fd;
    do fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno_status("open dir", dir, errno);
    Status s;
    while (::fsync(fd) != 0) {
      if (errno == EINTR) continue;
      s = errno_status("fsync dir", dir, errno);
      break;
    }
    ::close(fd);
    return s;
  }

  bool file_exists(const std::string& path) override { return ::access(path.c_str(), F_OK) == 0; }
};

}  // namespace

Env* Env::posix() {
  static PosixEnv* env = new PosixEnv();  // never destroyed: usable from static destructors
  return env;
}

// ============================ FaultInjectionEnv ============================

class FaultInjectionEnv::File final : public WritableFile {
 public:
  File(FaultInjectionEnv* env, std::string path, std::unique_ptr<WritableFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  Status append(std::string_view data) override {
    size_t allowed = data.size();
    Status fault = env_->before_append(path_, data, &allowed);
    if (allowed > 0) {
      Status s = base_->append(data.substr(0, allowed));
      env_->after_append(path_, base_->size());
      if (!s) return s;
    }
    return fault;
  }
  // Zeros take room on the disk (set_space_left) but do not count as appends for
  // fail_write_after, so tests that fail the n-th append mean the same with and without it.
  Status preallocate(uint64_t end) override {
    if (end <= base_->allocated()) return Status::ok();
    uint64_t allowed = 0;
    Status fault = env_->before_preallocate(path_, end - base_->allocated(), &allowed);
    if (allowed > 0) {
      Status s = base_->preallocate(base_->allocated() + allowed);
      if (!s) return s;
    }
    return fault;
  }
  Status sync() override {
    Status s = env_->before_sync(path_);
    if (!s) return s;
    s = base_->sync();
    if (s) env_->after_sync(path_, base_->size(), base_->allocated());
    return s;
  }
  Status close() override { return base_->close(); }
  uint64_t size() const override { return base_->size(); }
  uint64_t allocated() const override { return base_->allocated(); }

 private:
  FaultInjectionEnv* env_;
  std::string path_;
  std::unique_ptr<WritableFile> base_;
};

class FaultInjectionEnv::ReadFile final : public RandomAccessFile {
 public:
  ReadFile(FaultInjectionEnv* env, std::string path, std::unique_ptr<RandomAccessFile> base)
      : env_(env), path_(std::move(path)), base_(std::move(base)) {}

  Status read(uint64_t offset, size_t length, std::string* out) override {
    Status s = env_->before_read(path_);
    if (!s) return s;
    return base_->read(offset, length, out);
  }
  uint64_t size() const override { return base_->size(); }

 private:
  FaultInjectionEnv* env_;
  std::string path_;
  std::unique_ptr<RandomAccessFile> base_;
};

Status FaultInjectionEnv::new_random_access_file(const std::string& path, std::unique_ptr<RandomAccessFile>* out) {
  std::unique_ptr<RandomAccessFile> base;
  Status s = base_->new_random_access_file(path, &base);
  if (!s) return s;
  *out = std::make_unique<ReadFile>(this, path, std::move(base));
  return Status::ok();
}

Status FaultInjectionEnv::new_writable_file(const std::string& path, std::unique_ptr<WritableFile>* out) {
  bool existed = base_->file_exists(path);
  std::unique_ptr<WritableFile> base;
  Status s = base_->new_writable_file(path, &base);
  if (!s) return s;
  {
    std::lock_guard lock(mu_);
    Tracked& t = files_[path];
    bool dir_entry_synced = existed ? t.dir_entry_synced : false;
    t = Tracked{};  // truncated: nothing of the new content is durable yet
    t.dir_entry_synced = dir_entry_synced;
  }
  *out = std::make_unique<File>(this, path, std::move(base));
  return Status::ok();
}

Status FaultInjectionEnv::new_appendable_file(const std::string& path, std::unique_ptr<WritableFile>* out) {
  bool existed = base_->file_exists(path);
  std::unique_ptr<WritableFile> base;
  Status s = base_->new_appendable_file(path, &base);
  if (!s) return s;
  {
    std::lock_guard lock(mu_);
    auto [it, inserted] = files_.try_emplace(path);
    if (inserted) {
      it->second.synced_size = base->size();  // what was there before we saw it is durable
      it->second.size = base->size();
      it->second.synced_allocated = base->size();
      it->second.dir_entry_synced = existed;
    }
  }
  *out = std::make_unique<File>(this, path, std::move(base));
  return Status::ok();
}

Status FaultInjectionEnv::truncate_file(const std::string& path, uint64_t size) {
  Status s = base_->truncate_file(path, size);
  if (!s) return s;
  std::lock_guard lock(mu_);
  auto it = files_.find(path);
  if (it != files_.end()) {
    Tracked& t = it->second;
    t.synced_size = std::min(t.synced_size, size);
    t.size = std::min(t.size, size);
    t.synced_allocated = std::min(t.synced_allocated, size);
  }
  return s;
}

Status FaultInjectionEnv::remove_file(const std::string& path) {
  Status s = base_->remove_file(path);
  std::lock_guard lock(mu_);
  files_.erase(path);
  return s;
}

Status FaultInjectionEnv::rename_file(const std::string& from, const std::string& to) {
  Status s = base_->rename_file(from, to);
  if (!s) return s;
  std::lock_guard lock(mu_);
  auto it = files_.find(from);
  Tracked t;
  if (it != files_.end()) {
    t = it->second;
    files_.erase(it);
  }
  // The new name is durable only after the directory is synced. (A lost rename would also
  // bring back the old name; we model only the loss of the new one, which is what matters
  // to write-temp-then-rename: the target must not appear without its content.)
  t.dir_entry_synced = false;
  files_[to] = t;
  return s;
}

Status FaultInjectionEnv::sync_dir(const std::string& dir) {
  {
    std::lock_guard lock(mu_);
    if (syncs_failed_ || syncs_until_failure_ == 0) {
      syncs_failed_ = true;
      return Status::io_error("fsync dir " + dir + ": Input/output error (injected)");
    }
    if (syncs_until_failure_ > 0) syncs_until_failure_--;
  }
  Status s = base_->sync_dir(dir);
  if (!s) return s;
  std::lock_guard lock(mu_);
  dir_sync_count_++;
  std::string d = normal_dir(dir);
  for (auto& [path, t] : files_) {
    if (normal_dir(dir_of(path)) == d) t.dir_entry_synced = true;
  }
  return s;
}

Status FaultInjectionEnv::before_append(const std::string& path, std::string_view data, size_t* allowed) {
  std::lock_guard lock(mu_);
  if (writes_failed_ || writes_until_failure_ == 0) {
    writes_failed_ = true;
    *allowed = 0;
    return Status::io_error("write " + path + ": Input/output error (injected)");
  }
  if (writes_until_failure_ > 0) writes_until_failure_--;
  if (space_limited_ && data.size() > space_left_) {
    *allowed = static_cast<size_t>(space_left_);
    space_left_ = 0;
    return Status::io_error("write " + path + ": No space left on device (injected)");
  }
  if (space_limited_) space_left_ -= data.size();
  *allowed = data.size();
  append_count_++;
  return Status::ok();
}

Status FaultInjectionEnv::before_preallocate(const std::string& path, uint64_t bytes, uint64_t* allowed) {
  std::lock_guard lock(mu_);
  files_[path].preallocated = true;
  if (writes_failed_) {
    *allowed = 0;
    return Status::io_error("write " + path + ": Input/output error (injected)");
  }
  if (space_limited_ && bytes > space_left_) {
    // As PosixWritableFile does: the zeros that fit are given back at once.
    *allowed = 0;
    return Status::io_error("write " + path + ": No space left on device (injected)");
  }
  if (space_limited_) space_left_ -= bytes;
  *allowed = bytes;
  return Status::ok();
}

void FaultInjectionEnv::after_append(const std::string& path, uint64_t size) {
  std::lock_guard lock(mu_);
  files_[path].size = size;
}

Status FaultInjectionEnv::before_sync(const std::string& path) {
  std::lock_guard lock(mu_);
  if (syncs_failed_ || syncs_until_failure_ == 0) {
    syncs_failed_ = true;
    return Status::io_error("fdatasync " + path + ": Input/output error (injected)");
  }
  if (syncs_until_failure_ > 0) syncs_until_failure_--;
  return Status::ok();
}

Status FaultInjectionEnv::before_read(const std::string& path) {
  std::lock_guard lock(mu_);
  if (reads_failed_ || reads_until_failure_ == 0) {
    reads_failed_ = true;
    return Status::io_error("pread " + path + ": Input/output error (injected)");
  }
  if (reads_until_failure_ > 0) reads_until_failure_--;
  return Status::ok();
}

void FaultInjectionEnv::after_sync(const std::string& path, uint64_t size, uint64_t allocated) {
  std::lock_guard lock(mu_);
  sync_count_++;
  Tracked& t = files_[path];
  t.synced_size = size;
  t.size = size;
  t.synced_allocated = allocated;
}

// Overwrites [from, to) of path with zeros through the base Env (which has no positioned
// write: read, rewrite). Tests only, small files.
Status FaultInjectionEnv::zero_range(const std::string& path, uint64_t from, uint64_t to) {
  std::string data;
  Status s = base_->read_file(path, &data);
  if (!s) return s;
  HMDB_ASSERT(to <= data.size(), "zero_range past the end of %s", path.c_str());
  std::fill(data.begin() + static_cast<ptrdiff_t>(from), data.begin() + static_cast<ptrdiff_t>(to), '\0');
  std::unique_ptr<WritableFile> f;
  s = base_->new_writable_file(path, &f);
  if (s) s = f->append(data);
  if (s) s = f->close();
  return s;
}

Status FaultInjectionEnv::drop_unsynced(uint64_t torn_seed) {
  std::lock_guard lock(mu_);
  uint64_t rng = torn_seed;
  auto next_random = [&rng] {  // splitmix64: deterministic from the seed
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  for (auto& [path, t] : files_) {
    if (!base_->file_exists(path)) continue;
    if (!t.dir_entry_synced) {
      Status s = base_->remove_file(path);
      if (!s) return s;
      continue;
    }
    uint64_t on_disk = 0;
    Status s = base_->file_size(path, &on_disk);
    if (!s) return s;
    // Where the appends end; for a preallocated file the zeros after it are not appends.
    uint64_t size = t.preallocated ? std::min(t.size, on_disk) : on_disk;
    uint64_t keep = t.synced_size;
    if (size > t.synced_size && torn_seed != 0) keep += next_random() % (size - t.synced_size + 1);
    // The file keeps its synced zeros (and its kept appends); lost appends inside the
    // synced zeros are zeros again, everything past both is gone.
    uint64_t length = std::max(keep, t.preallocated ? std::min(t.synced_allocated, on_disk) : 0);
    uint64_t zero_to = std::min(size, length);
    if (zero_to > keep) {
      s = zero_range(path, keep, zero_to);
      if (!s) return s;
    }
    if (on_disk > length) {
      s = base_->truncate_file(path, length);
      if (!s) return s;
    }
  }
  files_.clear();  // what survived is now durable
  return Status::ok();
}

void FaultInjectionEnv::fail_write_after(int64_t appends) {
  std::lock_guard lock(mu_);
  writes_until_failure_ = appends;
}
void FaultInjectionEnv::fail_sync_after(int64_t syncs) {
  std::lock_guard lock(mu_);
  syncs_until_failure_ = syncs;
}
void FaultInjectionEnv::set_space_left(uint64_t bytes) {
  std::lock_guard lock(mu_);
  space_limited_ = true;
  space_left_ = bytes;
}
void FaultInjectionEnv::fail_read_after(int64_t reads) {
  std::lock_guard lock(mu_);
  reads_until_failure_ = reads;
}
void FaultInjectionEnv::clear_faults() {
  std::lock_guard lock(mu_);
  writes_until_failure_ = syncs_until_failure_ = reads_until_failure_ = kNever;
  writes_failed_ = syncs_failed_ = reads_failed_ = space_limited_ = false;
}
uint64_t FaultInjectionEnv::sync_count() const {
  std::lock_guard lock(mu_);
  return sync_count_;
}
uint64_t FaultInjectionEnv::dir_sync_count() const {
  std::lock_guard lock(mu_);
  return dir_sync_count_;
}

uint64_t FaultInjectionEnv::append_count() const {
  std::lock_guard lock(mu_);
  return append_count_;
}

}  // namespace hmdb::storage
