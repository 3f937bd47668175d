// server/dir_lock.h — one process per data directory.
//
// Two nodes started on the same --dir would append to the same log segments and write
// each other's snapshots: each would believe what it reads back, and the directory would
// hold an interleaving no node ever wrote. A node therefore holds a POSIX record lock on
// `<dir>/LOCK` for as long as it runs, and refuses to start when another process holds it,
// naming that process. `hmdb dry-run` only tests the lock (it writes nothing), and refuses
// a directory a live node holds: a node's log tail moves under the reader, so the dry run
// would read a torn state and report it as corruption.
//
// fcntl(F_SETLK) record locks, not flock(): they are not inherited by fork(), so a snapshot
// or digest child that outlives a node killed with -9 does not keep the next start of the
// node from taking the lock; and F_GETLK names the holder's pid without taking the lock.
// The kernel drops the lock when the process ends, however it ends: no stale lock file to
// clean up after a crash. The file stays, empty: a start, even a refused one, changes no
// file's content (the fault tests check that a refused start leaves the directory as it was).
#pragma once

#include <string>

#include "common/status.h"

namespace hmdb::server {

// The lock file's name inside a data directory.
inline constexpr const char* kDirLockName = "LOCK";

class DirLock {
 public:
  DirLock() = default;
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

  // Takes the lock on `dir` (which exists), creating `dir`/LOCK if needed. Fails with an
  // error naming the holder's pid when another process holds it.
  Status acquire(const std::string& dir);

 private:
  int fd_ = -1;
};

// For readers that must not run beside a node (dry-run): ok when no process holds `dir`'s
// lock (or the directory has no LOCK file: no node of this version ever ran there), an
// error naming the holder's pid otherwise. Takes no lock and writes nothing.
Status check_dir_not_locked(const std::string& dir);

}  // namespace hmdb::server
