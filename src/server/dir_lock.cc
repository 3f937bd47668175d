// server/dir_lock.cc — one process per data directory (dir_lock.h).
#include "server/dir_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace hmdb::server {

namespace {

std::string lock_path(const std::string& dir) { return dir + "/" + kDirLockName; }

struct flock whole_file(short type) {
  struct flock l {};
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_start = 0;
  l.l_len = 0;  // to the end, whatever the size
  return l;
}

Status held_by(const std::string& dir, pid_t pid) {
  return Status::busy(fmt::format(
      "data directory {} is in use by another process (pid {}): one node per directory. Stop that node first, or "
      "give this one its own --dir",
      dir, pid));
}

}  // namespace

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the lock
}

Status DirLock::acquire(const std::string& dir) {
  const std::string path = lock_path(dir);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return Status::io_error(fmt::format("opening {}: {}", path, std::strerror(errno)));
  struct flock l = whole_file(F_WRLCK);
  if (::fcntl(fd, F_SETLK, &l) != 0) {
    const int err = errno;
    if (err == EACCES || err == EAGAIN) {
      struct flock probe = whole_file(F_WRLCK);
      pid_t holder = (::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK) ? probe.l_pid : -1;
      ::close(fd);
      return held_by(dir, holder);
    }
    ::close(fd);
    return Status::io_error(fmt::format("locking {}: {}", path, std::strerror(err)));
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return Status::ok();
}

Status check_dir_not_locked(const std::string& dir) {
  const std::string path = lock_path(dir);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return Status::ok();
    return Status::io_error(fmt::format("opening {}: {}", path, std::strerror(errno)));
  }
  // F_GETLK with a read lock asks "would a reader conflict?": only a writer's lock does.
  struct flock probe = whole_file(F_RDLCK);
  const int rc = ::fcntl(fd, F_GETLK, &probe);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return Status::io_error(fmt::format("testing the lock on {}: {}", path, std::strerror(err)));
  if (probe.l_type == F_UNLCK) return Status::ok();
  return held_by(dir, probe.l_pid);
}

}  // namespace hmdb::server
