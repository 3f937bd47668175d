// server/digest_child.cc — the digest at a digest mark (core/digest_marks.h), taken by a
// forked child so that the event loop does not stall while a large state is hashed.
//
// When the replica applies a mark, fork() gives a child the copy-on-write image of the state
// exactly there (the apply is single-threaded: the state is consistent at that instant, in
// the middle of a batch if need be). The child hashes it (core::state_digest, the digest
// CLUSTER DIGEST gives) and, when the app lists its records, sketches them (core/
// record_sketch.h: what names the records two nodes hold differently), writes the result to
// a pipe and _exit()s; the parent goes on applying and serving. The pipe's read end is in epoll: when it turns readable the result is handed
// to the replica's DigestMarks (finish), and at its end of file the child is reaped. Until
// then CLUSTER DIGEST AT answers `pending`. The stall left on the loop is fork() itself
// (page tables: 3.7-12.6 ms for kv with a million small keys, measured under load;
// docs/cluster.md, "Verifying").
//
// Hashed on the loop instead (the replica's default): while the log is replayed at startup
// (no client waits, and a burst of forks would cost more than the hashing), when
// kDigestChildrenMax children still run, or when pipe() or fork() fail (logged).
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "common/assert.h"
#include "core/record_sketch.h"
#include "core/state.h"
#include "server/logging.h"
#include "server/node.h"

namespace hmdb::server {

namespace {
// Niceness of a digest child (CPU below the serving parent, like a snapshot child).
constexpr int kDigestChildNice = 10;
// The result: u64 digest, u32 schema version it hashed at, u32 magic (a short write or
// another writer cannot pass for a result), then, if the app lists its records, the time
// the child took to sketch them (u64 us, for the log line) and the sketch
// (core::kRecordSketchBytes).
constexpr size_t kDigestResultBytes = 16;
constexpr uint32_t kDigestResultMagic = 0x6d61726b;  // "mark"
}  // namespace

bool Node::hash_later(uint64_t index, const StateMachine& app, const core::RequestTable& requests) {
  if (replaying_ || digest_children_.size() >= kDigestChildrenMax) return false;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    log_line("digest: mark at index {}: pipe: {}; hashing on the event loop", index, std::strerror(errno));
    return false;
  }
  const uint64_t t0 = monotonic_us();
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Child: the only thread here; it must not run the parent's destructors or atexit
    // handlers, hence _exit.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // do not outlive a killed server
    [[maybe_unused]] int niced = ::nice(kDigestChildNice);
    ::close(fds[0]);
    const core::StateDigest d = core::state_digest(app, requests);
    std::string out(kDigestResultBytes, '\0');
    codec::put_u64(out.data(), d.value);
    codec::put_u32(out.data() + 8, d.schema_version);
    codec::put_u32(out.data() + 12, kDigestResultMagic);
    const uint64_t sketch_t0 = monotonic_us();
    if (const std::optional<core::RecordSketch> s = core::record_sketch(app, d.schema_version)) {
      char us[8];
      codec::put_u64(us, monotonic_us() - sketch_t0);
      out.append(us, sizeof us);
      out += s->encode();
    }
    size_t written = 0;
    while (written < out.size()) {
      const ssize_t n = ::write(fds[1], out.data() + written, out.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) _exit(1);
      written += static_cast<size_t>(n);
    }
    _exit(0);
  }
  ::close(fds[1]);
  if (pid < 0) {
    log_line("digest: mark at index {}: fork failed: {}; hashing on the event loop", index, std::strerror(errno));
    ::close(fds[0]);
    return false;
  }
  const uint64_t fork_us = monotonic_us() - t0;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagDigest;
  HMDB_ASSERT(::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fds[0], &ev) == 0, "epoll_ctl: %s", std::strerror(errno));
  ::fcntl(fds[0], F_SETFL, ::fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  digest_children_.push_back(DigestChild{pid, fds[0], index, t0, {}});
  log_line("digest: mark at index {}: child {} hashing the state (fork took {} us)", index, pid, fork_us);
  return true;
}

void Node::on_digest_child_output() {
  for (size_t i = 0; i < digest_children_.size();) {
    DigestChild& c = digest_children_[i];
    char buf[4096];
    ssize_t n;
    while ((n = ::read(c.fd, buf, sizeof buf)) > 0) c.got.append(buf, static_cast<size_t>(n));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      i++;
      continue;  // still hashing
    }
    // End of file (the child exited: reaped at once), or a read error (then it is ended).
    if (n < 0) ::kill(c.pid, SIGKILL);
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
    ::close(c.fd);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    const uint64_t ms = (monotonic_us() - c.started_us) / 1000;
    const char* bytes = c.got.data();
    auto records = std::make_shared<core::RecordSketch>();
    constexpr size_t kWithRecords = kDigestResultBytes + 8 + core::kRecordSketchBytes;
    const bool whole = (c.got.size() == kDigestResultBytes ||
                        (c.got.size() == kWithRecords &&
                         core::RecordSketch::decode(std::string_view(c.got).substr(kDigestResultBytes + 8), records.get()))) &&
                       codec::get_u32(bytes + 12) == kDigestResultMagic;
    if (whole) {
      const core::StateDigest d{codec::get_u64(bytes), codec::get_u32(bytes + 8)};
      std::string sketched;
      if (c.got.size() == kDigestResultBytes) {
        records.reset();
      } else {
        sketched = fmt::format("; its {} records sketched in {} ms", records->records,
                               codec::get_u64(bytes + kDigestResultBytes) / 1000);
      }
      replica_->digest_marks().finish(c.index, d, std::move(records));
      log_line("digest: mark at index {}: {:016x} at schema version {} ({} ms{})", c.index, d.value, d.schema_version,
               ms, sketched);
    } else {
      replica_->digest_marks().fail(c.index);
      log_line("digest: mark at index {}: child {} ended without a result ({} bytes; {}): CLUSTER DIGEST AT "
               "answers 'failed'",
               c.index, c.pid, c.got.size(),
               WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                   : fmt::format("exit status {}", WEXITSTATUS(status)));
    }
    digest_children_[i] = std::move(digest_children_.back());
    digest_children_.pop_back();
  }
}

void Node::stop_digest_children() {
  for (DigestChild& c : digest_children_) {
    ::kill(c.pid, SIGKILL);
    ::waitpid(c.pid, nullptr, 0);
    ::close(c.fd);
  }
  digest_children_.clear();
}

}  // namespace hmdb::server
