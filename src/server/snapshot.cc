// server/snapshot.cc — snapshots without stopping writes: fork() and let the child write.
//
// Like Redis' BGSAVE: fork() gives the child a copy-on-write image of the state as of the
// last applied entry; the child streams the state (in the active schema version's layout when
// the app can write it: core::snapshot_layout) into a storage::SnapshotWriter (temp file,
// fsync, rename, fsync dir) and _exit()s. The parent keeps serving; pages it
// changes meanwhile are copied by the kernel (the memory cost: at most the pages written
// during the snapshot). The only stall is fork() itself (copying page tables: about
// 1 ms per GiB of resident state), measured and shown in INFO persistence.
//
// The child also deletes the older snapshots once the new one is durable (unlinking a
// multi-GiB file takes long enough to stall whoever does it). The parent learns of the
// child's end through a pidfd in epoll, reaps it, tells the consensus core
// (snapshot_saved), and has the disk thread delete the log segments the snapshot covers.
//
// Snapshots in slices (--snapshot-method slices; docs/decisions.md, "A snapshot without
// fork()"): fork() copies the page tables of the whole state in one loop turn (36.5 ms at
// 9.57 GiB on the reference VM). Instead, at the applied index I the loop encodes the
// payload's engine part (active version, users, request table: small) at once and begins
// the app's SaveProducer (hmdb/state_machine.h), which keeps what writes change after I
// ahead of it (copy before write). Each loop turn then calls its next() for at most
// kTurnSnapshotBudgetUs, kSnapshotSliceBytes a call, and queues the slices for a writer
// thread (at most kSnapshotQueueBytesMax queued: beyond it the loop stops slicing until the
// writer drained half and woke it), which gives their buffers back for the loop's next slices
// (a fresh buffer may fault in a fresh huge page). The writer streams them into a storage::SnapshotWriter,
// starts writeback every kSnapshotWritebackBytes, finishes the file (fdatasync, rename,
// directory fsync), removes the older snapshots and wakes the loop (wake_fd_), whose next
// turn ends the snapshot through finish_snapshot, the fork's path too. A write error of the
// file fails the snapshot (the writer removes its temp file), never the log. Before anything
// replaces the state (a leader's snapshot staged and installed), at shutdown, and when the
// app's producer gives up, the snapshot is abandoned: the producer is destroyed first, the
// writer is told to stop, the waiters get an error, and the log is kept. The loop does not
// wait for the writer (but at shutdown): it may be in its final fdatasync, or unlinking its
// temp file (seconds for GiBs). It ends by itself, removing its temp file, and the loop joins
// it once it says it is done (abandoned_saves_, reap_abandoned_saves); no snapshot starts
// before (so none writes a temp file one still holds). Its temp file is <name>.slices.tmp
// (storage::kSlicesTempSuffix), never the name a leader's snapshot of the same index is staged
// under (<name>.tmp). A writer that had every slice and was stopped while it finished the file
// leaves it durable under its final name (a whole snapshot at I, as if the abandon came just
// after), but removes no older snapshot: which ones it removes it decides under the lock the
// abandon takes, before the abandon, so none the loop writes or installs afterwards.
// An app without begin_save, or a
// snapshot in an older version's layout (save_as, written whole), is forked, logged once.
//
// Between nodes (core::ReplicaHost's snapshot steps): a follower stages the leader's
// snapshot chunks in a temp file, verifies and installs it; a leader answers a follower's
// chunk requests from its newest durable snapshot file.
#include <signal.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fcntl.h>

#include <atomic>
#include <cerrno>
#include <exception>
#include <thread>
#include <chrono>
#include <cstring>

#include "common/assert.h"
#include "core/state.h"
#include "server/logging.h"
#include "server/node.h"
#include "storage/snapshot.h"

namespace hmdb::server {

namespace {
// Niceness of the snapshot child (CPU priority below the serving parent).
constexpr int kSnapshotChildNice = 10;
// How often the snapshot child starts writeback of what it wrote so far.
constexpr int kSnapshotWritebackPeriodMs = 50;
// The snapshot child's exit code when the app could not write its state in the active
// version's layout (save_as refused it): the parent then writes the newest layout.
constexpr int kSnapshotChildLayoutRefused = 3;
// A slice's buffer is reserved at its byte budget plus this (the element that crosses the
// budget), so that most slices are encoded without a reallocation.
constexpr uint64_t kSliceReserveSlackBytes = 4096;
// The most a slice's buffer is reserved at; a buffer the writer gave back that grew beyond it
// (a big element crossed the budget) is freed rather than kept for reuse.
constexpr uint64_t kSliceBufferKeptCapacityMax = kSnapshotSliceBytes + kSliceReserveSlackBytes;
// Slice buffers the writer keeps for the loop's reuse (SlicedSave::free_buffers), at most. It
// cannot hold more than the queue's kSnapshotQueueBytesMax worth of buffers anyway (each one it
// holds was a queued slice of about kSnapshotSliceBytes, and the loop takes from it before it
// allocates): this says so by name, and bounds it should slices get smaller.
constexpr size_t kSliceFreeBuffersMax = kSnapshotQueueBytesMax / kSnapshotSliceBytes;
}  // namespace

void Node::snapshot_wanted() { core_wants_snapshot_ = true; }

void Node::maybe_auto_snapshot() {
  if (core_wants_snapshot_) [[unlikely]] {
    // A follower needs entries the core dropped (--log-memory-bytes) and no snapshot file is
    // recent enough: one of the applied state, now or (start_snapshot's "again") once the
    // one being written is done. The core sends it when snapshot_saved() brings it.
    core_wants_snapshot_ = false;
    log_line("snapshot: a follower needs log entries this node no longer holds in memory (--log-memory-bytes {}): "
             "taking a snapshot to send it",
             options_.log_memory_bytes);
    start_snapshot();
    return;
  }
  if (snapshot_after_write_ && replica_->applying_index() == 0) {
    snapshot_after_write_ = false;  // start_snapshot met a half-applied write: now it is applied
    start_snapshot();
    return;
  }
  if (options_.durability == Durability::kNone || snapshot_running() || draining_) return;
  if (!abandoned_saves_.empty()) return;  // start_snapshot waits for them: asked once they end
  if (replica_->applying_index() != 0) return;  // its state is no index's (start_snapshot)
  if (replica_->schema_block()) return;  // its state is no index's (start_snapshot)
  if (log_bytes_since_snapshot_ < options_.snapshot_log_bytes) return;
  log_line("snapshot: log grew by {} bytes since the last snapshot (limit {}): taking one", log_bytes_since_snapshot_,
           options_.snapshot_log_bytes);
  start_snapshot();
}

void Node::trim_unlogged_log() {
  // docs/decisions.md, "Durability none trims its log without a snapshot". Mode none never
  // runs with peers (validate_cluster_options), keeps no log on disk and restarts from its
  // last snapshot file alone: the in-memory state is the only copy of the applied entries,
  // which nobody reads again. The core compacts its log only behind a snapshot, and in this
  // mode the state in memory is that snapshot, as durable as anything here (mode none tells
  // the core that entries are persisted once handed over, node.cc persist). A follower
  // would ask the core for this "snapshot" and find no file: there is none to ask.
  if (raft_->log_bytes() < kUnloggedLogRetainBytes) return;
  HMDB_ASSERT(!options_.clustered(), "--durability none in a cluster");
  // The state is not the applied index's.
  if (snapshot_load_ || replica_->schema_block() || replica_->applying_index() != 0) return;
  const raft::Index applied = replica_->applied_index();
  if (applied < raft_->status().first_index) return;  // nothing applied to drop
  raft::SnapshotMeta m;
  m.index = applied;
  m.term = replica_->applied_term();
  m.conf = raft_->conf_state_at(applied);
  m.schema_version = app_->active_schema_version();
  raft_->snapshot_saved(m);
  stats_.unlogged_log_trims++;
}

namespace {
// The calling thread's CPU time in ns (clock_gettime(CLOCK_THREAD_CPUTIME_ID)).
uint64_t thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

void Node::start_snapshot() {
  if (!abandoned_saves_.empty()) reap_abandoned_saves(false);
  if (snapshot_running() || snapshot_load_ || !abandoned_saves_.empty()) {
    // The running one may not cover the latest writes; or the leader's snapshot is loading
    // (the state is not that of the applied index yet); or an abandoned snapshot's writer
    // still runs, whose temp file may have this one's name: once that is done.
    snapshot_again_ = true;
    return;
  }
  if (const auto& block = replica_->schema_block()) [[unlikely]] {
    // The blocking entry may be half applied (an activation's items before it): the state
    // is not the state at the applied index, and a snapshot of it would be wrong.
    snapshot_waiters_ = std::move(next_snapshot_waiters_);
    next_snapshot_waiters_.clear();
    finish_snapshot_waiters(fmt::format("-ERR no snapshot: this node stopped applying at log index {} (schema version "
                                        "{}, which its binary does not read)\r\n",
                                        block->index, block->version));
    return;
  }
  if (replica_->applying_index() != 0) [[unlikely]] {
    // A write is half applied (sliced): the state holds part of its entry, no index's state.
    // Taken once it is applied (maybe_auto_snapshot).
    snapshot_after_write_ = true;
    return;
  }
  const raft::Index applied = replica_->applied_index();
  if (applied == 0 || applied == stats_.last_snapshot_index) {
    // Nothing new since the last snapshot: the newest one already stands for this state.
    snapshot_waiters_ = std::move(next_snapshot_waiters_);
    next_snapshot_waiters_.clear();
    finish_snapshot_waiters(fmt::format("+OK snapshot at index {} is current\r\n", applied));
    return;
  }
  snapshot_meta_ = raft::SnapshotMeta{};
  snapshot_meta_.index = applied;
  snapshot_meta_.term = replica_->applied_term();
  snapshot_meta_.conf = raft_->conf_state_at(applied);  // in force at the applied index
  // The active version's layout when the app can write it (core::snapshot_layout): while an
  // upgrade is not activated, an old binary must still be able to load what a new one wrote.
  snapshot_meta_.schema_version = core::snapshot_layout(*app_, save_as_refused_version_);
  snapshot_waiters_ = std::move(next_snapshot_waiters_);
  next_snapshot_waiters_.clear();
  snapshot_log_bytes_at_start_ = log_bytes_since_snapshot_;
  if (options_.snapshot_method == SnapshotMethod::kSlices && start_sliced_snapshot()) return;

  // Nothing collapses memory the child shares (it would copy what the child still reads).
  huge_page_mender_.pause();
  // The fork's wall time, and what of it was the loop thread's own CPU (the kernel copying
  // page tables) against waiting (for the address space's lock: voluntary switches) or for a
  // CPU (involuntary ones): which of them a long fork was, in the log line below. The CPU
  // from CLOCK_THREAD_CPUTIME_ID (the scheduler's runtime to the ns): getrusage's is the
  // runtime as of the last tick or switch, 4 ms steps at CONFIG_HZ=250, as long as the fork.
  rusage ru0{};
  ::getrusage(RUSAGE_THREAD, &ru0);
  const uint64_t cpu0_ns = thread_cpu_ns();
  const uint64_t t0 = monotonic_us();
  pid_t pid = ::fork();
  const uint64_t fork_us = monotonic_us() - t0;
  const uint64_t fork_cpu_us = (thread_cpu_ns() - cpu0_ns) / 1000;
  if (pid == 0) {
    // Child: the only thread here. It shares nothing mutable with the parent any more; it
    // must not run the parent's destructors or atexit handlers, hence _exit.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // do not outlive a killed server
    // Lower CPU and I/O priority: the server's log fdatasync and its event loop come first.
    // (The I/O class is honoured by the BFQ scheduler; elsewhere it is a no-op.)
    [[maybe_unused]] int niced = ::nice(kSnapshotChildNice);
    constexpr int kIoprioClassIdle = 3, kIoprioClassShift = 13, kIoprioWhoProcess = 1;
    ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, kIoprioClassIdle << kIoprioClassShift);
    // Start writeback of the temp file continuously, so its gigabytes do not pile up as
    // dirty pages that the final fdatasync flushes in one burst while the server's log
    // fdatasync waits behind them in the disk queue (what Redis' incremental fsync avoids).
    std::atomic<bool> written{false};
    const std::string temp_path = options_.dir + "/" + storage::snapshot_file_name(snapshot_meta_.index) +
                                  std::string(storage::kTempSuffix);
    std::thread writeback([&written, &temp_path] {
      int fd = -1;
      while (!written.load()) {
        if (fd < 0) fd = ::open(temp_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
        std::this_thread::sleep_for(std::chrono::milliseconds(kSnapshotWritebackPeriodMs));
      }
      if (fd >= 0) ::close(fd);
    });
    // storage::write_snapshot's steps, so that a layout the app refuses leaves no file (the
    // writer removes its temp file unless finished).
    std::string path;
    bool layout_refused = false;
    Status s;
    {
      std::unique_ptr<storage::SnapshotWriter> w;
      s = storage::SnapshotWriter::create(env_, options_.dir, snapshot_meta_, app_->app_name(), &w,
                                          options_.clustered() ? encode_members() : std::string());
      if (s) {
        Encoder enc(w->sink());
        layout_refused =
            !core::save_state_at(*app_, replica_->requests(), snapshot_meta_.schema_version, enc, &acl_);
        enc.finish();
        if (!layout_refused) s = w->finish(&path);
      }
    }
    written.store(true);
    writeback.join();
    if (layout_refused) _exit(kSnapshotChildLayoutRefused);
    if (!s) {
      log_line("snapshot: writing index {} failed: {}", snapshot_meta_.index, s.to_string());
      _exit(1);
    }
    // The new snapshot is durable: older ones may go. Done here, in the child, because
    // unlinking a multi-GiB file can take seconds, which the event loop (or the disk
    // thread, and with it every write) must not wait for.
    s = storage::remove_snapshots_before(env_, options_.dir, snapshot_meta_.index);
    if (!s) log_line("warning: could not remove snapshots older than index {}: {}", snapshot_meta_.index, s.to_string());
    _exit(0);
  }
  if (pid < 0) {
    log_line("snapshot: fork failed: {} (not enough memory for the page tables?)", std::strerror(errno));
    stats_.snapshot_failures++;
    stats_.last_snapshot_status = "fork failed";
    finish_snapshot_waiters(fmt::format("-ERR snapshot failed: fork: {}\r\n", std::strerror(errno)));
    return;
  }
  stats_.fork_last_us = fork_us;
  stats_.fork_max_us = std::max(stats_.fork_max_us, fork_us);
  snapshot_pid_ = pid;
  snapshot_started_ms_ = monotonic_us() / 1000;
  stats_.last_snapshot_method = "fork";
  snapshot_pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  HMDB_ASSERT(snapshot_pidfd_ >= 0, "pidfd_open: %s", std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagSnapshot;
  HMDB_ASSERT(::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, snapshot_pidfd_, &ev) == 0, "epoll_ctl: %s", std::strerror(errno));
  rusage ru1{};
  ::getrusage(RUSAGE_THREAD, &ru1);
  log_line("snapshot: child {} writing index {} (fork took {} us: {} us of the loop's CPU, {} waits, {} preemptions)",
           pid, snapshot_meta_.index, fork_us, fork_cpu_us, ru1.ru_nvcsw - ru0.ru_nvcsw, ru1.ru_nivcsw - ru0.ru_nivcsw);
}

void Node::on_snapshot_child_exit() {
  if (snapshot_pid_ <= 0) return;
  int status = 0;
  pid_t r = ::waitpid(snapshot_pid_, &status, WNOHANG);
  if (r == 0) return;  // not yet (spurious wakeup)
  ::close(snapshot_pidfd_);  // also leaves epoll
  snapshot_pidfd_ = -1;
  snapshot_pid_ = -1;
  // The writes during the snapshot split the huge pages they touched: mend them (a snapshot
  // started again below pauses it before its fork).
  if (options_.huge_pages == "yes") huge_page_mender_.start();
  if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == kSnapshotChildLayoutRefused) [[unlikely]] {
    finish_snapshot(SnapshotEnd::kLayoutRefused, "");
    return;
  }
  if (r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    // The file's size (the child wrote it): INFO's last_snapshot_bytes.
    uint64_t bytes = 0;
    const std::string path = options_.dir + "/" + storage::snapshot_file_name(snapshot_meta_.index);
    if (env_->file_size(path, &bytes)) stats_.last_snapshot_bytes = bytes;
    finish_snapshot(SnapshotEnd::kOk, "");
    return;
  }
  std::string why = r < 0                 ? std::string("waitpid: ") + std::strerror(errno)
                    : WIFSIGNALED(status) ? fmt::format("killed by signal {}", WTERMSIG(status))
                                          : fmt::format("exit code {}", WEXITSTATUS(status));
  log_line("snapshot: child for index {} failed ({}); the log is kept, nothing is lost", snapshot_meta_.index, why);
  finish_snapshot(SnapshotEnd::kFailed, why);
}

void Node::finish_snapshot(SnapshotEnd end, const std::string& why) {
  const uint64_t took_ms = monotonic_us() / 1000 - snapshot_started_ms_;
  if (end == SnapshotEnd::kLayoutRefused) [[unlikely]] {
    // The app holds what the active version's layout cannot (its save_as said so): write the
    // newest layout instead, for the same waiters. A binary reading only the active version
    // cannot load this snapshot: say so, since abandoning the upgrade now needs the log.
    save_as_refused_version_ = snapshot_meta_.schema_version;
    log_line("snapshot: the app cannot write its state at index {} in schema version {}'s layout (its save_as "
             "refused); writing this binary's layout (version {}) instead, which a binary that reads only version {} "
             "cannot load",
             snapshot_meta_.index, snapshot_meta_.schema_version, app_->schema_version(),
             snapshot_meta_.schema_version);
    next_snapshot_waiters_.insert(next_snapshot_waiters_.begin(), snapshot_waiters_.begin(), snapshot_waiters_.end());
    snapshot_waiters_.clear();
    start_snapshot();
    return;
  }
  if (end == SnapshotEnd::kOk) {
    raft_->snapshot_saved(snapshot_meta_);
    if (disk_) {
      disk_->request_compact(snapshot_meta_.index);
    } else if (log_for_recovery_) {
      // durability none: no disk thread; the (unused) log may still hold old segments.
      Status s = log_for_recovery_->compact(snapshot_meta_.index);
      if (!s) log_line("warning: cleaning up after the snapshot: {}", s.to_string());
    }
    log_bytes_since_snapshot_ -= std::min(log_bytes_since_snapshot_, snapshot_log_bytes_at_start_);
    stats_.snapshots++;
    stats_.last_snapshot_index = snapshot_meta_.index;
    stats_.last_snapshot_ms = took_ms;
    stats_.last_snapshot_status = "ok";
    log_line("snapshot: index {} done in {} ms ({})", snapshot_meta_.index, took_ms, stats_.last_snapshot_method);
    finish_snapshot_waiters(fmt::format("+OK snapshot at index {}\r\n", snapshot_meta_.index));
  } else {
    stats_.snapshot_failures++;
    stats_.last_snapshot_status = "failed";
    finish_snapshot_waiters(fmt::format("-ERR snapshot failed ({}); see the server log\r\n", why));
  }
  if (snapshot_again_ || !next_snapshot_waiters_.empty()) {
    snapshot_again_ = false;
    start_snapshot();
  }
}

// ---------------------------------------------------------------------------------------
// Snapshots in slices (the file's header comment)

bool Node::start_sliced_snapshot() {
  std::unique_ptr<SaveProducer> producer;
  const char* fallback = nullptr;
  if (snapshot_meta_.schema_version != app_->schema_version()) {
    fallback = "this snapshot is in an older schema version's layout (the app's save_as writes it whole)";
  } else if (!(producer = app_->begin_save())) {
    fallback = "the app cannot write its state in slices (it has no begin_save hook)";
  }
  if (fallback != nullptr) {
    if (!sliced_fallback_logged_) {
      sliced_fallback_logged_ = true;
      log_line("snapshot: --snapshot-method slices: {}: forking instead (logged once)", fallback);
    }
    return false;
  }
  auto save = std::make_unique<SlicedSave>();
  SlicedSave* sv = save.get();
  sv->producer = std::move(producer);
  sv->started_us = monotonic_us();
  sv->slice_applied = replica_->applied_index();
  sv->queue_bytes_max =
      options_.test_snapshot_queue_bytes != 0 ? options_.test_snapshot_queue_bytes : kSnapshotQueueBytesMax;
  sv->index = snapshot_meta_.index;
  sv->temp_path =
      options_.dir + "/" + storage::snapshot_file_name(snapshot_meta_.index) + std::string(storage::kSlicesTempSuffix);
  // The engine's part of the payload, at I, now (what save_state_at writes before the app's).
  std::string engine;
  {
    Encoder enc(&engine);
    core::save_engine_part(*app_, replica_->requests(), enc, &acl_);
  }
  sv->encoded_bytes = engine.size();
  sv->queued_bytes = engine.size();
  sv->queue.push_back(std::move(engine));
  // Tests: the snapshot file's appends fail (storage::FaultInjectionEnv), a write error.
  std::shared_ptr<storage::Env> fault_env;
  if (options_.test_snapshot_fail_write_after != 0) {
    auto f = std::make_shared<storage::FaultInjectionEnv>(env_);
    f->fail_write_after(static_cast<int64_t>(options_.test_snapshot_fail_write_after));
    fault_env = std::move(f);
  }
  storage::Env* env = fault_env ? fault_env.get() : env_;
  const bool drop_slice = options_.test_plant_slices_bug == "drop-slice";
  const bool keep_temp = options_.test_plant_slices_bug == "keep-temp";
  const bool no_reuse = options_.test_plant_slices_bug == "no-reuse";
  // Tests: the first writer of the process waits, its temp file created, until the test opens
  // and closes this FIFO (options.h): an abandon then meets a busy writer.
  std::string gate;
  if (!options_.test_snapshot_writer_gate.empty() && !writer_gate_used_) {
    writer_gate_used_ = true;
    gate = options_.test_snapshot_writer_gate;
  }
  sv->writer = std::thread([sv, env, fault_env, drop_slice, keep_temp, no_reuse, gate, wake_fd = wake_fd_, dir = options_.dir,
                            meta = snapshot_meta_, app_name = std::string(app_->app_name()),
                            cluster_info = options_.clustered() ? encode_members() : std::string()] {
    // Lower CPU and I/O priority than the loop and the log's disk thread, as the fork's child
    // (Linux: a thread's own nice value and I/O class).
    const pid_t tid = static_cast<pid_t>(::syscall(SYS_gettid));
    ::setpriority(PRIO_PROCESS, static_cast<id_t>(tid), kSnapshotChildNice);
    constexpr int kIoprioClassIdle = 3, kIoprioClassShift = 13, kIoprioWhoProcess = 1;
    ::syscall(SYS_ioprio_set, kIoprioWhoProcess, tid, kIoprioClassIdle << kIoprioClassShift);
    auto wake = [wake_fd] {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);
    };
    std::unique_ptr<storage::SnapshotWriter> w;
    Status s = storage::SnapshotWriter::create(env, dir, meta, app_name, &w, cluster_info, storage::kSlicesTempSuffix);
    if (!gate.empty()) {
      // Blocks until the test opens the FIFO for writing, then reads to its end (its close).
      const int g = ::open(gate.c_str(), O_RDONLY | O_CLOEXEC);
      char b[16];
      while (g >= 0 && ::read(g, b, sizeof b) > 0) {
      }
      if (g >= 0) ::close(g);
    }
    int fd = -1;  // the temp file, for sync_file_range
    uint64_t unflushed = 0, slices = 0;
    bool finished = false;
    std::string slice;  // the one being written; then, cleared, given back to the loop
    while (s) {
      bool wake_loop = false;
      {
        std::unique_lock lk(sv->mu);
        // The slice written last goes back for the loop's reuse (its capacity kept), unless it
        // grew beyond a slice's reserve or enough are kept. PLANTED BUG (no-reuse): none does.
        if (slice.capacity() != 0 && slice.capacity() <= kSliceBufferKeptCapacityMax &&
            sv->free_buffers.size() < kSliceFreeBuffersMax && !no_reuse) {
          slice.clear();
          sv->free_buffers.push_back(std::move(slice));
        }
        sv->cv.wait(lk, [sv] { return sv->stop || !sv->queue.empty() || sv->last_queued; });
        if (sv->stop) break;
        if (sv->queue.empty()) {  // every slice written
          finished = true;
          break;
        }
        slice = std::move(sv->queue.front());
        sv->queue.pop_front();
        sv->queued_bytes -= slice.size();
        if (sv->wake_when_drained && sv->queued_bytes <= sv->queue_bytes_max / 2) {
          sv->wake_when_drained = false;
          wake_loop = true;
        }
      }
      if (wake_loop) wake();
      slices++;
      // PLANTED BUG (--test-plant-slices-bug drop-slice): the app's second slice is not written.
      if (!(drop_slice && slices == 3)) s = w->append(slice);
      unflushed += slice.size();
      if (unflushed >= kSnapshotWritebackBytes) {
        unflushed = 0;
        if (fd < 0) fd = ::open(sv->temp_path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
      }
    }
    if (fd >= 0) ::close(fd);
    std::string path;
    uint64_t bytes = w ? w->payload_bytes() : 0;
    if (finished) {
      std::lock_guard lk(sv->mu);
      if (sv->stop) finished = false;  // abandoned after its last slice: not finished either
    }
    if (finished && s) {
      s = w->finish(&path);
      uint64_t size = 0;
      if (s && env->file_size(path, &size)) bytes = size;
      // Durable: the older snapshots may go (unlinking a multi-GiB file takes long: not on the
      // loop). Which ones is decided under the lock, and none once abandoned: the loop may
      // have moved on (a leader's snapshot staged or installed), counting on what it had.
      std::vector<std::string> older;
      if (s) {
        std::lock_guard lk(sv->mu);
        Status r = sv->stop ? Status::ok() : storage::list_snapshots(env, dir, &older);
        if (!r) log_line("warning: could not list the snapshots older than index {}: {}", meta.index, r.to_string());
      }
      bool removed = false;
      for (const std::string& p : older) {
        raft::Index i = 0;
        if (!storage::parse_snapshot_file_name(p.substr(p.rfind('/') + 1), &i) || i >= meta.index) continue;
        Status r = env->remove_file(p);
        if (!r) log_line("warning: could not remove the snapshot {}: {}", p, r.to_string());
        removed = removed || r;
      }
      if (removed) {
        Status r = env->sync_dir(dir);
        if (!r) log_line("warning: could not sync {} after removing older snapshots: {}", dir, r.to_string());
      }
    }
    // An unfinished writer removes its temp file (stopped, or a write error).
    if (keep_temp && !finished) (void)w.release();  // PLANTED BUG (--test-plant-slices-bug keep-temp)
    w.reset();
    {
      std::lock_guard lk(sv->mu);
      sv->done = true;
      sv->status = finished || !s ? s : Status::busy("abandoned");
      sv->written_bytes = bytes;
    }
    wake();
  });
  sliced_save_ = std::move(save);
  snapshot_started_ms_ = sv->started_us / 1000;
  stats_.last_snapshot_method = "slices";
  stats_.last_snapshot_slice_us = 0;
  stats_.last_snapshot_slice_turn_max_us = 0;
  stats_.last_snapshot_slice_turns = 0;
  log_line("snapshot: writing index {} in slices (the loop encodes it between its other work, at most {} us a turn)",
           snapshot_meta_.index, kTurnSnapshotBudgetUs);
  return true;  // the first slices in the next turn (slices_pending: the loop does not sleep)
}

bool Node::slices_pending() const {
  if (!sliced_save_ || !sliced_save_->producer) return false;
  const SlicedSave& sv = *sliced_save_;
  if (options_.test_snapshot_slice_per_write && sv.calls > 0 && replica_->applied_index() == sv.slice_applied)
    return false;  // tests: the next slice waits for an entry applied
  std::lock_guard lk(sliced_save_->mu);
  return sv.queued_bytes < sv.queue_bytes_max;
}

void Node::end_sliced_snapshot_if_written() {
  {
    std::lock_guard lk(sliced_save_->mu);
    if (!sliced_save_->done) return;
  }
  {
    // The writer ended: the file is durable, or it failed (a write error). The producer goes
    // first (its copies released, the state unhooked), then the thread.
    std::unique_ptr<SlicedSave> save = std::move(sliced_save_);
    save->producer.reset();
    save->writer.join();
    stats_.last_snapshot_slice_us = save->next_us;
    stats_.last_snapshot_slice_turn_max_us = save->turn_next_max_us;
    stats_.last_snapshot_slice_turns = save->turns;
    stats_.last_snapshot_bytes = save->written_bytes;
    log_line("snapshot: index {} in slices: {} bytes, {} slices over {} loop turns, {} us of the loop in the app's "
             "producer (at most {} us in one turn); of the loop thread's CPU {} us (at most {} us in one turn); {} "
             "slice buffers allocated, the others reused",
             snapshot_meta_.index, save->written_bytes, save->calls, save->turns, save->next_us,
             save->turn_next_max_us, save->next_cpu_us, save->turn_next_cpu_max_us, save->buffers_allocated);
    if (save->status) {
      finish_snapshot(SnapshotEnd::kOk, "");
    } else {
      log_line("snapshot: writing index {} failed: {}; the log is kept, nothing is lost", snapshot_meta_.index,
               save->status.to_string());
      finish_snapshot(SnapshotEnd::kFailed, save->status.to_string());
    }
  }
}

void Node::continue_sliced_snapshot() {
  SlicedSave& sv = *sliced_save_;
  if (!sv.producer) return;  // every slice is queued: the writer finishes the file
  const bool one = options_.test_snapshot_slice_per_write;
  if (one && sv.calls > 0 && replica_->applied_index() == sv.slice_applied) return;  // tests: after a write
  {
    // At the bound: the writer wakes the loop once it drained half (checked and asked under
    // one lock, so the writer's next dequeue sees the request).
    std::lock_guard lk(sv.mu);
    if (sv.queued_bytes >= sv.queue_bytes_max) {
      sv.wake_when_drained = true;
      return;
    }
  }
  const SliceBudget budget{.elements = SIZE_MAX,
                           .bytes = options_.test_snapshot_slice_bytes != 0 ? options_.test_snapshot_slice_bytes
                                                                            : kSnapshotSliceBytes};
  const uint64_t t0 = monotonic_us();
  const uint64_t cpu0 = thread_cpu_ns();  // the loop thread's CPU, against the wall time a loaded machine adds
  uint64_t t = t0;
  bool last = false;
  const uint64_t reserve = std::min<uint64_t>(budget.bytes, kSnapshotSliceBytes) + kSliceReserveSlackBytes;
  while (true) {
    // A buffer the writer gave back, else a new one: a new one's first touch may fault in a
    // fresh huge page (~4 ms on the reference VM; bench/README.md).
    std::string slice;
    {
      std::lock_guard lk(sv.mu);
      if (!sv.free_buffers.empty()) {
        slice = std::move(sv.free_buffers.back());
        sv.free_buffers.pop_back();
      }
    }
    if (slice.capacity() < reserve) {
      slice.reserve(reserve);
      sv.buffers_allocated++;
    }
    Encoder enc(&slice);
    if (options_.test_plant_slices_bug == "no-catch") [[unlikely]] {
      last = sv.producer->next(enc, budget);  // PLANTED BUG (--test-plant-slices-bug no-catch)
    } else {
      try {
        last = sv.producer->next(enc, budget);
      } catch (const std::exception& e) {
        // The app found its state not as its copy before write keeps it (kv's SaveCursor
        // throws SaveFailed then, naming the key; any exception of a producer is met the same
        // way): these bytes are not save()'s at I. The node goes on, the log is kept; the
        // abandon's log line and the waiters' error say why. next() changes no state the
        // commands see (hmdb/state_machine.h), so serving on is safe.
        abandon_sliced_snapshot(std::string("the app's producer failed: ") + e.what());
        if (snapshot_again_ || !next_snapshot_waiters_.empty()) {
          snapshot_again_ = false;
          start_snapshot();
        }
        return;
      }
    }
    sv.calls++;
    sv.encoded_bytes += slice.size();
    bool full = false;
    {
      std::lock_guard lk(sv.mu);
      sv.queued_bytes += slice.size();
      sv.queue.push_back(std::move(slice));
      if (last) sv.last_queued = true;
      full = sv.queued_bytes >= sv.queue_bytes_max;
      if (full && !last) sv.wake_when_drained = true;
    }
    sv.cv.notify_one();
    if (last) sv.producer.reset();  // its copies go now, not when the file is durable
    t = monotonic_us();
    if (last || full || one || t - t0 >= kTurnSnapshotBudgetUs) break;
  }
  const uint64_t cpu_us = (thread_cpu_ns() - cpu0) / 1000;
  sv.turns++;
  sv.next_us += t - t0;
  sv.next_cpu_us += cpu_us;
  sv.turn_next_max_us = std::max(sv.turn_next_max_us, t - t0);
  sv.turn_next_cpu_max_us = std::max(sv.turn_next_cpu_max_us, cpu_us);
  sv.slice_applied = replica_->applied_index();
}

void Node::abandon_sliced_snapshot(const std::string& why, bool wait) {
  if (!sliced_save_) return;
  std::unique_ptr<SlicedSave> save = std::move(sliced_save_);
  save->producer.reset();  // first: nothing of the app's state stays hooked to it
  {
    std::lock_guard lk(save->mu);
    save->stop = true;
  }
  save->cv.notify_all();
  // It removes its temp file (or leaves the file it finished meanwhile), maybe after an
  // fdatasync or an unlink of GiBs: not waited for on the loop (joined once it says it is
  // done), but at shutdown. PLANTED BUG (--test-plant-slices-bug join-on-abandon): waited for.
  if (wait || options_.test_plant_slices_bug == "join-on-abandon") save->writer.join();
  else abandoned_saves_.push_back(std::move(save));
  stats_.snapshot_failures++;
  stats_.last_snapshot_status = "abandoned";
  log_line("snapshot: abandoned the snapshot of index {} written in slices ({}); the log is kept, nothing is lost",
           snapshot_meta_.index, why);
  finish_snapshot_waiters(fmt::format("-ERR snapshot abandoned ({})\r\n", why));
}

bool Node::reap_abandoned_saves(bool all) {
  const size_t before = abandoned_saves_.size();
  std::erase_if(abandoned_saves_, [all](const std::unique_ptr<SlicedSave>& save) {
    if (!all) {
      std::lock_guard lk(save->mu);
      if (!save->done) return false;
    }
    save->writer.join();  // done: at most its last lines; `all`: waits for it
    log_line("snapshot: the abandoned writer of the snapshot of index {} ended", save->index);
    return true;
  });
  return abandoned_saves_.size() != before;
}

void Node::finish_snapshot_waiters(const std::string& reply) {
  auto waiters = std::move(snapshot_waiters_);
  snapshot_waiters_.clear();
  for (core::ReplySlot w : waiters) replica_->finish(w.session, w.seq, core::ReplyQueue::Kind::kWaitingSnapshot, reply);
}

// ---------------------------------------------------------------------------------------
// Snapshots between peers (core::ReplicaHost)

void Node::stage_snapshot_chunk(const raft::SnapshotChunk& c) {
  if (c.offset == 0) {
    // The leader's snapshot will replace the state (its temp file is never a writer's in
    // slices: <name>.slices.tmp).
    abandon_sliced_snapshot("the leader's snapshot replaces the state");
    // The same file again while the previous install's thread still syncs and reads it
    // (rare: the leader re-sent it): not before that thread is done with it.
    const std::string path =
        options_.dir + "/" + storage::snapshot_file_name(c.meta.index) + std::string(storage::kTempSuffix);
    if (snapshot_load_ && snapshot_load_->staging_path == path) {
      release_snapshot_load_hold();
      snapshot_load_->file_durable->wait(false);
    }
    if (staging_file_) {
      staging_file_->close();
      env_->remove_file(staging_path_);
    }
    staging_file_.reset();
    staging_path_ = options_.dir + "/" + storage::snapshot_file_name(c.meta.index) + std::string(storage::kTempSuffix);
    Status s = env_->new_writable_file(staging_path_, &staging_file_);
    if (!s) fatal(kExitDiskFailure, "cannot create {} for the leader's snapshot: {}", staging_path_, s.to_string());
    staging_meta_ = c.meta;
    staging_bytes_ = 0;
    log_line("snapshot: receiving the leader's snapshot at index {} ({} bytes)", c.meta.index, c.total);
  }
  HMDB_ASSERT(staging_file_ && staging_meta_ == c.meta && c.offset == staging_bytes_,
              "snapshot chunk at offset %llu out of order (%llu staged)", static_cast<unsigned long long>(c.offset),
              static_cast<unsigned long long>(staging_bytes_));
  Status s = staging_file_->append(c.data);
  if (!s) fatal(kExitDiskFailure, "writing the leader's snapshot to {} failed: {}", staging_path_, s.to_string());
  staging_bytes_ += c.data.size();
}

void Node::prepare_installed_file(storage::Env* env, const std::string& dir, const StateMachine& app,
                                  SnapshotLoad& l) {
  const raft::SnapshotMeta& meta = l.meta;
  Status s = l.staging->sync();
  if (s) s = l.staging->close();
  if (!s) fatal(kExitDiskFailure, "syncing the leader's snapshot {} failed: {}", l.staging_path, s.to_string());
  l.staging.reset();
  s = storage::read_snapshot_file(env, l.staging_path, &l.loaded);
  if (!s || !(l.loaded.meta == meta)) {
    fatal(kExitCorruption,
          "the snapshot received from the leader is unusable: {}. Nothing was applied from it; restart this node to "
          "fetch it again.",
          !s ? s.to_string()
             : fmt::format("it is at index {} term {}, the leader announced index {} term {}", l.loaded.meta.index,
                           l.loaded.meta.term, meta.index, meta.term));
  }
  if (l.loaded.app_name != app.app_name() || !app.reads_schema_version(meta.schema_version)) {
    // Sound data this binary cannot serve: the code recovery.cc uses for such a snapshot at
    // startup (not kExitCorruption: nothing is damaged, and fetching it again would not help).
    fatal(kExitStartupFailure,
          "the snapshot received from the leader is of app '{}' schema {} (index {}), this node is app '{}' reading "
          "schema versions {}..{}. Nothing was applied from it; start the right binary, or upgrade this one.",
          l.loaded.app_name, meta.schema_version, meta.index, app.app_name(), app.oldest_schema_version(),
          app.schema_version());
  }
  s = env->rename_file(l.staging_path, l.path);
  if (s) s = env->sync_dir(dir);
  if (!s) fatal(kExitDiskFailure, "installing the leader's snapshot as {} failed: {}", l.path, s.to_string());
}

bool Node::install_snapshot(const raft::SnapshotMeta& meta) {
  HMDB_ASSERT(staging_file_ && staging_meta_ == meta, "snapshot install without its staged chunks");
  abandon_sliced_snapshot("the leader's snapshot replaces the state");
  // A newer one while the previous one still loads (the leader compacted past what this
  // node stored meanwhile): that load ends first, waiting for its thread.
  if (snapshot_load_) finish_snapshot_load(true);
  const uint64_t t0 = monotonic_us();
  auto load = std::make_unique<SnapshotLoad>();
  load->meta = meta;
  load->path = options_.dir + "/" + storage::snapshot_file_name(meta.index);
  load->staging = std::move(staging_file_);
  load->staging_path = staging_path_;
  load->app = app_->make_empty();
  load->started_us = t0;
  stats_.snapshot_installs++;
  if (!load->app) {
    // An app that cannot make an empty twin: made durable and loaded in place, on the loop.
    prepare_installed_file(env_, options_.dir, *app_, *load);
    load->prepare_us = monotonic_us() - t0;
    load->file_durable->store(true);
    app_->clear();
    snapshot_load_ = std::move(load);
    SnapshotLoad& l = *snapshot_load_;
    Decoder in(l.loaded.payload);
    const core::ReplicatedAcl acl{&acl_, &acl_access_};
    l.state = core::load_state(*app_, l.requests, in, meta.schema_version, l.loaded.format_version, &l.active, &acl);
    if (l.state == core::LoadState::kRefused) l.refusal = std::string(in.refusal());
    if (l.state == core::LoadState::kOk) replica_->requests() = std::move(l.requests);
    l.done.store(true);
    finish_snapshot_load(true);
    return true;
  }
  // The file is made durable and verified, then decoded, by a thread, into a state machine of
  // its own: the loop keeps answering the leader's heartbeats and appends meanwhile (the
  // replica holds applying, and answers app commands -LOADING), and the app's state stays
  // whole, the old one, until the swap. The persist step that follows this call records the
  // install only once the file is durable (DiskThread::submit_install waits for file_durable),
  // so this node acknowledges nothing of the snapshot before.
  snapshot_load_ = std::move(load);
  SnapshotLoad* l = snapshot_load_.get();
  const uint64_t hold = options_.test_snapshot_load_hold_messages;
  const int wake_fd = wake_fd_;
  // Tests: a step does not end before the loop answered its peers `hold` times during it
  // (options.h).
  auto hold_for_messages = [l, hold](uint64_t from) {
    for (uint64_t seen = l->messages.load(); seen - from < hold && !l->stop.load(); seen = l->messages.load())
      l->messages.wait(seen);
  };
  l->thread = std::thread([this, l, wake_fd, hold_for_messages] {
    const uint64_t start = monotonic_us();
    prepare_installed_file(env_, options_.dir, *l->app, *l);
    hold_for_messages(0);
    l->prepare_messages = l->messages.load();
    l->prepare_us = monotonic_us() - start;
    l->file_durable->store(true);
    l->file_durable->notify_all();
    const uint64_t decode_start = monotonic_us();
    Decoder in(l->loaded.payload);
    l->state = core::load_state(*l->app, l->requests, in, l->meta.schema_version, l->loaded.format_version, &l->active,
                                nullptr, &l->users);
    l->decode_us = monotonic_us() - decode_start;
    if (l->state == core::LoadState::kRefused) l->refusal = std::string(in.refusal());
    hold_for_messages(l->prepare_messages);
    l->done.store(true);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd, &one, sizeof one);  // the loop's next turn swaps it in
  });
  log_line("snapshot: installed the leader's snapshot at index {} term {} ({} bytes); syncing, verifying and loading "
           "it in the background",
           meta.index, meta.term, staging_bytes_);
  return false;
}

void Node::release_snapshot_load_hold() {
  if (!snapshot_load_) return;
  snapshot_load_->stop.store(true);  // no test hold (options.h) outlasts a wait or a stop
  snapshot_load_->messages.notify_all();
}

void Node::finish_snapshot_load(bool wait) {
  SnapshotLoad& l = *snapshot_load_;
  auto announce_durable = [&] {
    if (l.durable_announced || !l.file_durable->load()) return;
    l.durable_announced = true;
    log_line("snapshot: the leader's snapshot at index {} is durable and verified ({} bytes, {} ms); the node "
             "records the install now",
             l.meta.index, l.loaded.file_bytes, l.prepare_us / 1000);
  };
  if (!wait && !l.done.load()) {
    l.turns++;
    announce_durable();
    return;
  }
  if (wait) release_snapshot_load_hold();
  if (l.thread.joinable()) l.thread.join();
  announce_durable();
  const raft::SnapshotMeta meta = l.meta;
  const std::string& final_path = l.path;
  if (l.state == core::LoadState::kOk && l.app) {
    app_->swap_state(*l.app);
    replica_->requests() = std::move(l.requests);
    // core::load_state's last step, which the thread left to the loop.
    const core::ReplicatedAcl acl{&acl_, &acl_access_};
    if (l.users && acl.present()) {
      if (acl.users->load(*l.users, *acl.catalog).empty()) acl.users->set_logged(true);
      else l.state = core::LoadState::kBadUsers;
    }
  }
  if (l.state == core::LoadState::kUnsupportedActive) {
    fatal(kExitStartupFailure,
          "the snapshot received from the leader (index {}) is of a cluster whose active schema version is {}. "
          "Nothing was applied from it.",
          meta.index, core::unreadable_schema(*app_, l.active));
  }
  if (l.state == core::LoadState::kRefused)
    fatal(kExitStartupFailure, "{}",
          core::refused_migration(*app_, fmt::format("the leader's snapshot {}", final_path), meta.schema_version,
                                  l.refusal));
  if (l.state != core::LoadState::kOk) {
    fatal(kExitCorruption, "{} could not be decoded from the leader's snapshot {} (schema {}, format {})",
          l.state == core::LoadState::kBadRequests ? std::string("the request table")
          : l.state == core::LoadState::kBadUsers  ? std::string("the ACL users")
                                                   : fmt::format("the state of app '{}'", app_->app_name()),
          final_path, meta.schema_version, l.loaded.format_version);
  }
  if (!l.loaded.cluster_info.empty()) decode_members(l.loaded.cluster_info);
  stats_.last_snapshot_index = meta.index;
  log_bytes_since_snapshot_ = 0;
  Status s = storage::remove_snapshots_before(env_, options_.dir, meta.index);
  if (!s) log_line("warning: could not remove snapshots older than index {}: {}", meta.index, s.to_string());
  // Not the segment holding the replaced log's entry at the snapshot's index: until the
  // leader's entries overwrite the rest of that log, recovery tells its leftovers by that
  // entry's term (recovery.cc). The next snapshot's compaction removes it.
  if (disk_) disk_->request_compact(meta.index - 1);
  sync_transport_members();
  stats_.last_install_load_ms = (monotonic_us() - l.started_us) / 1000;
  stats_.last_install_load_turns = l.turns;
  stats_.last_install_load_messages = l.messages.load();
  stats_.last_install_prepare_messages = l.prepare_messages;
  log_line("snapshot: loaded the leader's snapshot at index {} term {} ({} bytes) in {} ms (syncing and verifying {} ms, "
           "decoding {} ms, off the event loop: {} turns and {} messages to peers meanwhile, {} before the file was "
           "durable)",
           meta.index, meta.term, l.loaded.file_bytes, stats_.last_install_load_ms, l.prepare_us / 1000,
           l.decode_us / 1000, l.turns, l.messages.load(), l.prepare_messages);
  std::unique_ptr<StateMachine> replaced = std::move(l.app);
  storage::LoadedSnapshot mapping = std::move(l.loaded);
  const bool in_place = !replaced;
  snapshot_load_.reset();
  if (!in_place) {
    replica_->snapshot_loaded();
    // Freeing millions of keys takes as long as loading them, and unmapping a GiB file tens
    // of ms: not on the loop either.
    reap_replaced_state();
    state_reaper_ = std::thread([old = std::move(replaced), file = std::move(mapping)]() mutable {
      old.reset();
      file = storage::LoadedSnapshot{};
    });
    // A SNAPSHOT asked meanwhile (not when a newer install ends this load: its state is not
    // the log's until that one is loaded too).
    if (!wait && (snapshot_again_ || !next_snapshot_waiters_.empty())) {
      snapshot_again_ = false;
      start_snapshot();
    }
  }
}

void release_payload_pages(std::string& payload) {
  if (payload.capacity() < kReleasePayloadMinBytes) return;
  // free() writes up to four pointers at the start of the chunk's user bytes (its bin
  // links) and the next chunk's header (prev_size, size) lies just past its end: the pages
  // released here keep a margin from both. What the allocator hands out from them later
  // reads as zeros, as malloc_trim's pages do.
  constexpr uintptr_t kFreeLinksBytes = 64;
  // Whole heap pages only: a huge page released in part is split for good (huge_pages.h).
  const uintptr_t page = static_cast<uintptr_t>(heap_page_bytes());
  const auto at = reinterpret_cast<uintptr_t>(payload.data());
  const uintptr_t begin = (at + kFreeLinksBytes + page - 1) & ~(page - 1);
  const uintptr_t end = (at + payload.capacity() - kFreeLinksBytes) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

void Node::reap_replaced_state() {
  if (state_reaper_.joinable()) state_reaper_.join();
}

void Node::read_snapshot_chunk(const raft::SnapshotReadRequest& req) {
  // The file is opened for each chunk, not kept open between requests: an open is cheap next
  // to a chunk's read, and a descriptor kept open would pin the disk space of a snapshot that a
  // newer one replaced (a follower that stops asking would hold it with no bound in time).
  const std::string path = options_.dir + "/" + storage::snapshot_file_name(req.meta.index);
  std::unique_ptr<storage::RandomAccessFile> file;
  Status s = env_->new_random_access_file(path, &file);
  if (!s) {
    // Replaced by a newer snapshot meanwhile: the core asks again (for the newest one).
    log_line("snapshot: cannot read {} for node {}: {}", path, req.to, s.to_string());
    return;
  }
  const uint64_t total = file->size();
  if (req.offset > total) return;
  const uint64_t length = std::min<uint64_t>(req.length, total - req.offset);
  std::string bytes;
  s = file->read(req.offset, length, &bytes);
  if (!s || bytes.size() != length) {
    log_line("snapshot: short read of {} at offset {} for node {}{}", path, req.offset, req.to,
             s ? "" : ": " + s.to_string());
    return;
  }
  const bool last = req.offset + bytes.size() == total;
  raft_->snapshot_chunk(req.to, req.meta, req.offset, total, std::move(bytes), last);
}

}  // namespace hmdb::server
