// server/node.cc — the node's lifecycle and event loop, and the replica's view of the disk
// and the network (core::ReplicaHost: persist, send, applied).
//
// One loop turn:
//   1. epoll_wait (edge-triggered client sockets; level-triggered listener, eventfd,
//      signalfd, snapshot pidfd, peer transport, metrics listener)
//   2. tick raft every kRaftTickMs, housekeeping every kTickMs
//   3. read every readable client (bounded per turn) and parse its commands; each goes to
//      Replica::command (client_io.cc)
//   4. Replica::end_turn: the turn's writes become ONE log entry, raft's Readies are handled
//      (entries to the disk thread here in persist(), messages to peers in send(),
//      committed entries applied), finished replies move to the sessions' output
//   5. write replies (client_io.cc)
// The disk thread's ack arrives through the eventfd in some later turn and commits the
// entries (raft.persisted, then step 4 of that turn applies them). A single node with nothing
// else to do while it is owed sleeps on that ack alone, not on every client (wait_for_disk_ack).
#include "server/node.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>

#include "common/address.h"
#include "common/assert.h"
#include "common/text.h"
#include "core/state.h"
#include "server/logging.h"
#include "storage/log_format.h"

namespace hmdb::server {

namespace {

// listen(2) backlog.
constexpr int kListenBacklog = 511;
// Per-entry overhead counted towards the snapshot trigger: the log record's header and
// checksum, from the one header that defines the format.
constexpr uint64_t kLogRecordOverheadBytes = storage::log_format::kRecordOverhead;

}  // namespace

// ---------------------------------------------------------------------------------------
// Construction, start, stop

const char* durability_name(Durability d) {
  switch (d) {
    case Durability::kAlways: return "always";
    case Durability::kPeriodic: return "periodic";
    case Durability::kNone: return "none";
  }
  return "?";
}

const char* group_hold_mode_name(GroupHoldMode m) {
  switch (m) {
    case GroupHoldMode::kAuto: return "auto";
    case GroupHoldMode::kOn: return "on";
    case GroupHoldMode::kOff: return "off";
  }
  return "?";
}

bool parse_group_hold_mode(const std::string& s, GroupHoldMode* out) {
  if (s == "auto") *out = GroupHoldMode::kAuto;
  else if (s == "on") *out = GroupHoldMode::kOn;
  else if (s == "off") *out = GroupHoldMode::kOff;
  else return false;
  return true;
}

const char* snapshot_method_name(SnapshotMethod m) {
  switch (m) {
    case SnapshotMethod::kFork: return "fork";
    case SnapshotMethod::kSlices: return "slices";
  }
  return "?";
}

bool parse_snapshot_method(const std::string& s, SnapshotMethod* out) {
  if (s == "fork") *out = SnapshotMethod::kFork;
  else if (s == "slices") *out = SnapshotMethod::kSlices;
  else return false;
  return true;
}

bool parse_durability(const std::string& s, Durability* out) {
  if (s == "always") *out = Durability::kAlways;
  else if (s == "periodic") *out = Durability::kPeriodic;
  else if (s == "none") *out = Durability::kNone;
  else return false;
  return true;
}

Status check_protected_mode(const ServerOptions& o) {
  if (!o.protected_mode || !o.requirepass.empty()) return Status::ok();
  SocketAddress addr;
  if (Status s = resolve(o.bind, o.port, &addr); !s) return s;
  bool loopback = false;
  if (addr.family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr.storage);
    loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  } else if (addr.family() == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr.storage);
    loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
               (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
  }
  if (loopback) return Status::ok();
  return Status::invalid_argument(
      "protected mode: --bind " + o.bind + " (" + addr.host() +
      ") is not a loopback address and no password is set, so anyone who reaches it could read and change "
      "everything. Set a password (requirepass in the --config file, or --requirepass; clients then AUTH), or bind "
      "to 127.0.0.1, or, if the network is protected otherwise, start with --protected-mode no (docs/security.md)");
}

Node::Node(ServerOptions options, std::unique_ptr<StateMachine> app)
    : options_(std::move(options)), app_(std::move(app)) {
  env_ = storage::Env::posix();
  // requirepass is the default user's password (core/acl.h keeps its digest).
  if (!options_.requirepass.empty()) acl_.pin_default_password(options_.requirepass);
  // Only the digest stays (acl_), and the text for this node's forwarding links (handed to
  // the forwarder in cluster.cc): nothing that renders the options can show it.
  forward_password_ = std::move(options_.requirepass);
  options_.requirepass.clear();
  if (!options_.cluster_secret.empty()) {
    // The links' own user: CLUSTER FORWARDER and nothing else (its commands after that are
    // its node's clients', checked there); the secret replaces requirepass on the links.
    core::AclUser link{std::string(core::kLinkUserName)};
    for (std::string_view rule : {"on", "+cluster|forwarder"}) {
      const std::string error = link.apply(rule, acl_access_);
      HMDB_ASSERT(error.empty(), "the link user's rule %.*s refused: %s", static_cast<int>(rule.size()), rule.data(),
                  error.c_str());
    }
    link_user_ = std::make_shared<core::AclUser>(std::move(link));
    link_secret_digest_ = core::password_digest(options_.cluster_secret);
    forward_password_ = std::move(options_.cluster_secret);
    options_.cluster_secret.clear();
  }
  latency_ = std::make_unique<LatencyStats>(latency_command_names());
}

Node::~Node() {
  if (snapshot_load_ && snapshot_load_->thread.joinable()) {
    snapshot_load_->stop.store(true);
    snapshot_load_->messages.notify_all();
    snapshot_load_->thread.join();
  }
  reap_replaced_state();
  if (snapshot_pid_ > 0) {
    ::kill(snapshot_pid_, SIGKILL);
    ::waitpid(snapshot_pid_, nullptr, 0);
  }
  if (sliced_save_) {  // run() abandons it; a node that never ran stops its thread here
    sliced_save_->producer.reset();
    {
      std::lock_guard lk(sliced_save_->mu);
      sliced_save_->stop = true;
    }
    sliced_save_->cv.notify_all();
    sliced_save_->writer.join();
  }
  for (auto& save : abandoned_saves_)
    if (save->writer.joinable()) save->writer.join();  // each was told to stop
  stop_digest_children();
  if (disk_) disk_->stop();
  for (auto& [id, s] : sessions_) {
    s->tls.reset();
    ::close(s->fd);
  }
  for (int fd : {epoll_fd_, listen_fd_, tls_listen_fd_, wake_fd_, reserve_fd_, snapshot_pidfd_})
    if (fd >= 0) ::close(fd);
}

void Node::request_stop() {
  stop_requested_.store(true);
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
  }
}

Status Node::start(int* exit_code) {
  *exit_code = kExitStartupFailure;
  stats_.start_ms = wall_ms();

  // Large buffers (command batches, log entries, replication messages: up to
  // kBatchBytesMax) come from the heap and stay there when freed, instead of a fresh mmap
  // per allocation: every first touch of a fresh page is a page fault, which costs ~19 us per
  // 4 KiB page on a virtualised host (measured: 8 MiB batches copied a few times per loop turn
  // made single turns take hundreds of ms and followers start elections).
  ::mallopt(M_MMAP_THRESHOLD, static_cast<int>(kMallocMmapThresholdBytes));
  ::mallopt(M_TRIM_THRESHOLD, static_cast<int>(kMallocTrimThresholdBytes));

  // 10,000 idle connections need 10,000 descriptors: raise the soft limit to the hard one.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < options_.max_clients + 64) {
    log_line("warning: open-file limit {} is below --max-clients {} + 64; raise it with ulimit -n",
             static_cast<uint64_t>(rl.rlim_cur), options_.max_clients);
  }

  Status s = validate_cluster_options(options_);
  if (!s) return s;
  if (!options_.aclfile.empty()) {
    s = load_acl_file();
    if (!s) return s;
  }
  s = recover(exit_code);
  if (!s) return s;

  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) return Status::io_error(std::string("epoll/eventfd: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagWake;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);

  // --bind: an IPv4 or IPv6 address, or a name bound at the address it resolves to
  // (common/address.h's rule, the one every dialer uses too).
  if (options_.tls_configured()) {
    s = load_tls();
    if (!s) return s;
  }
  SocketAddress bound;
  if (options_.plain_listen) {
    s = listen_tcp(options_.bind, options_.port, kListenBacklog, &listen_fd_, &bound);
    if (!s) return s;
    port_ = bound.port();
    ev.events = EPOLLIN;
    ev.data.u64 = kEpollTagListen;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  }
  if (options_.tls_listen) {
    s = listen_tcp(options_.bind, options_.tls_port, kListenBacklog, &tls_listen_fd_, &bound);
    if (!s) return s;
    tls_port_ = bound.port();
    ev.events = EPOLLIN;
    ev.data.u64 = kEpollTagTlsListen;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, tls_listen_fd_, &ev);
  }
  if (options_.metrics_port != 0) {
    s = MetricsServer::open(options_.bind, options_.metrics_port, &metrics_);
    if (!s) return s;
    ev.events = EPOLLIN;  // level-triggered, like the peer transport's epoll fd
    ev.data.u64 = kEpollTagMetrics;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, metrics_->fd(), &ev) != 0)
      return Status::io_error(std::string("epoll_ctl(metrics): ") + std::strerror(errno));
    log_line("metrics: http://{}/metrics", format_host_port(options_.bind, metrics_->port()));
  }

  s = start_cluster();
  if (!s) return s;

  if (options_.durability != Durability::kNone) {
    disk_ = std::make_unique<DiskThread>(env_, options_.dir, std::move(log_for_recovery_), options_.durability,
                                         options_.fsync_interval_ms, wake_fd_, last_log_index_, last_log_term_,
                                         hard_state_, options_.clustered() ? cluster_hold_bounds(options_.group_commit_hold)
                                                              : GroupHoldBounds{.mode = options_.group_commit_hold});
    // A follower's acknowledgements leave from the disk thread (disk_thread.h, "Sending after
    // the sync"); the transport takes its lock for them.
    std::function<void(std::vector<raft::Message>&&)> sender;
    // A leader's appends queued while a round was pending leave as it starts (Node::send).
    std::function<void()> round_start;
    if (transport_) {
      sender = [t = transport_.get()](std::vector<raft::Message>&& m) { t->send_and_flush(std::move(m)); };
      round_start = [t = transport_.get()] { t->flush(); };
    }
    disk_->start(std::move(sender), std::move(round_start));
    acked_index_ = last_log_index_;  // durable: recovered from the log
    // A single node's loop writes and syncs a round itself when it would wait for it anyway
    // (disk_thread.h, "Rounds on the loop"); a cluster's loop has peers to serve meanwhile.
    loop_rounds_ = !options_.clustered() && options_.durability == Durability::kAlways &&
                   !options_.test_disk_rounds_on_thread;
    disk_->set_loop_rounds(loop_rounds_, options_.test_loop_round_sync_avg_max_us != 0
                                             ? options_.test_loop_round_sync_avg_max_us
                                             : kLoopRoundSyncAvgMaxUs);
  }
  logged_active_version_ = app_->active_schema_version();
  std::string listening = options_.plain_listen ? format_host_port(options_.bind, port_) : std::string();
  if (options_.tls_listen)
    listening += (listening.empty() ? "" : ", ") + fmt::format("TLS on {}", format_host_port(options_.bind, tls_port_));
  log_line("ready: app {} (schema {}, reads {}..{}, active {}), listening on {}, durability {}, data in {}",
           app_->app_name(), app_->schema_version(), app_->oldest_schema_version(), app_->schema_version(),
           logged_active_version_, listening, durability_name(options_.durability), options_.dir);
  log_line("memory: heap in transparent huge pages: {} (--huge-pages)", options_.huge_pages);
  if (transport_) {
    const raft::Status st = raft_->status();
    log_line("cluster: node {} of cluster '{}', peers on {} (port {}), voters [{}], learners [{}]{}", options_.node_id,
             options_.cluster_id, options_.peer_addr, transport_->port(), fmt::join(st.conf.voters, ","),
             fmt::join(st.conf.learners, ","), st.conf.voters.empty() && st.conf.learners.empty() ? " (waiting to be added: CLUSTER ADDLEARNER on the leader)" : "");
  }
  *exit_code = kExitOk;
  return Status::ok();
}

int Node::run(int signal_fd) {
  signal_fd_ = signal_fd;
  if (signal_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kEpollTagSignal;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, signal_fd_, &ev);
  }
  refresh_clocks();
  read_turn_cpu();  // the first long turn's CPU time is measured from here
  next_tick_ms_ = turn_steady_ms_ + kTickMs;
  next_raft_tick_ms_ = turn_steady_ms_ + kRaftTickMs;
  int timeout_ms = 0;
  while (true) {
    if (stop_requested_.load() && !draining_) {
      // Stop taking connections and commands; finish what was proposed (fsync + replies).
      draining_ = true;
      drain_deadline_ms_ = monotonic_ms() + kShutdownFlushMs;
      for (int* fd : {&listen_fd_, &tls_listen_fd_}) {
        if (*fd < 0) continue;
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, *fd, nullptr);
        ::close(*fd);
        *fd = -1;
      }
      log_line("stopping: no new connections or commands; finishing {} in-flight batches", replica_->writes().size());
    }
    // A follower (or a leader that lost its majority) may never see its proposals decided:
    // drain what this node can finish, within kShutdownFlushMs.
    // Forwarded commands are waited for too: their replies come from the leader.
    if (draining_ && replica_->idle() &&
        ((replica_->writes().empty() && (!forwarder_ || forwarder_->idle())) ||
         (options_.clustered() && monotonic_ms() >= drain_deadline_ms_)))
      break;
    loop_turn(timeout_ms);

    // Sleep in epoll only if nothing can progress without an event.
    // From the end of the turn (read there), not a clock read of its own.
    const uint64_t next = std::min(next_tick_ms_, next_raft_tick_ms_);
    timeout_ms = static_cast<int>(std::min<uint64_t>(kTickMs, next > turn_end_ms_ ? next - turn_end_ms_ : 0));
    if (!replica_->idle() || replica_->pubsub().pump_ready()) timeout_ms = 0;
    if (slices_pending()) timeout_ms = 0;  // a snapshot's slices go on (snapshot.cc)
    if (transport_ && transport_->reads_pending()) timeout_ms = 0;
    if (!draining_ && !paused()) {
      for (uint64_t id : active_) {
        Session* s = find_session(id);
        if (s && (s->readable || s->input_stalled) && !session_paused(*s)) {
          timeout_ms = 0;
          break;
        }
      }
    }
    if (timeout_ms > 0 && wait_for_disk_ack(timeout_ms)) timeout_ms = 0;
    // The loop goes on: a round this turn's writes left for it goes to the disk thread.
    else if (timeout_ms == 0 && loop_rounds_) disk_->kick();
  }

  // A snapshot in slices stops here, before the last replies: its waiters get an error.
  if (sliced_save_) {
    abandon_sliced_snapshot("the server stops", /*wait=*/true);
    replica_->drain();  // the waiters' errors to their sessions' output
  }
  reap_abandoned_saves(/*all=*/true);  // no writer outlives the loop (it writes wake_fd_)
  // Deliver the last replies (bounded wait for slow readers).
  uint64_t deadline = monotonic_ms() + kShutdownFlushMs;
  while (monotonic_ms() < deadline) {
    bool unsent = false;
    std::vector<uint64_t> ids;
    for (auto& [id, s] : sessions_) ids.push_back(id);
    for (uint64_t id : ids) {
      Session* s = find_session(id);
      if (!s) continue;
      flush_session(*s);
      if ((s = find_session(id)) && s->unsent() > 0) unsent = true;
    }
    if (!unsent) break;
    epoll_event events[kEpollEventsMax];
    ::epoll_wait(epoll_fd_, events, kEpollEventsMax, 10);
  }
  if (snapshot_pid_ > 0) {
    log_line("stopping: abandoning the snapshot in progress (child {})", snapshot_pid_);
    ::kill(snapshot_pid_, SIGKILL);
    ::waitpid(snapshot_pid_, nullptr, 0);
    snapshot_pid_ = -1;
  }
  release_snapshot_load_hold();  // a test hold would keep the disk thread waiting for the install
  if (disk_) disk_->stop();  // writes and syncs anything left
  disk_.reset();
  log_for_recovery_.reset();
  if (log_env_) log_env_->stop();  // finishes removing compacted segments
  log_line("stopped cleanly at applied index {}", replica_->applied_index());
  return exit_code_;
}

// ---------------------------------------------------------------------------------------
// One loop turn

bool Node::read_turn_cpu() {
  rusage ru;
  if (::getrusage(RUSAGE_THREAD, &ru) != 0) return false;
  auto us = [](const timeval& t) { return static_cast<uint64_t>(t.tv_sec) * 1000000 + static_cast<uint64_t>(t.tv_usec); };
  turn_cpu_read_us_ = us(ru.ru_utime) + us(ru.ru_stime);
  turn_preemptions_read_ = static_cast<uint64_t>(ru.ru_nivcsw);
  turn_work_unread_us_ = 0;
  return true;
}

void Node::note_turn_duration(uint64_t busy_us) {
  const uint64_t busy_ms = busy_us / 1000;
  // A turn that works long delays every client and, on a leader, its heartbeats: a
  // follower whose election timer runs out meanwhile starts an election.
  stats_.loop_turn_max_ms = std::max(stats_.loop_turn_max_ms, busy_ms);
  stats_.loop_turns++;
  // The thread's CPU time during the turn (options.h, kTurnCpuReadMinUs): read only after a
  // turn that worked long enough that the system call does not count.
  if (busy_us < kTurnCpuReadMinUs) {
    turn_work_unread_us_ += busy_us;
    return;
  }
  const uint64_t cpu_before = turn_cpu_read_us_, preemptions_before = turn_preemptions_read_;
  const uint64_t others_us = turn_work_unread_us_;
  if (!read_turn_cpu() || busy_ms < kLongTurnMs) return;
  const uint64_t window_us = turn_cpu_read_us_ - cpu_before;
  const uint64_t cpu_us = std::min(busy_us, window_us > others_us ? window_us - others_us : 0);
  const uint64_t cpu_max_us = std::min(busy_us, window_us);  // if the short turns used no CPU
  stats_.long_turns++;
  stats_.long_turns_us += busy_us;
  stats_.long_turns_cpu_us += cpu_us;
  stats_.long_turns_cpu_max_us += cpu_max_us;
  if (cpu_us * 100 >= busy_us * kLongTurnOnCpuPercent) stats_.long_turns_on_cpu++;
  stats_.last_long_turn_us = busy_us;
  stats_.last_long_turn_cpu_us = cpu_us;
  stats_.last_long_turn_cpu_max_us = cpu_max_us;
  stats_.last_long_turn_preemptions = turn_preemptions_read_ - preemptions_before;
  if (busy_ms < kSlowTurnMs) return;
  stats_.slow_turns++;
  const uint64_t now = monotonic_ms();
  if (now - last_slow_turn_log_ms_ >= kSlowTurnLogIntervalMs) {
    last_slow_turn_log_ms_ = now;
    log_line("warning: one event-loop turn took {} ms, {} ms of it on the CPU ({} such turns over {} ms so far); a "
             "leader's heartbeats wait meanwhile (election timeout {} ms)",
             busy_ms, cpu_us / 1000, stats_.slow_turns, kSlowTurnMs, options_.election_timeout_ms);
  }
}

void Node::refresh_clocks() {
  // One read for both: the turn's time in ms (timers) and, anchoring the stage clock, in µs
  // (stage latencies: server/stage_clock.h).
  const uint64_t mono_us = monotonic_us();
  turn_steady_ms_ = mono_us / 1000;
  turn_start_us_ = stage_clock_.anchor(mono_us);
  stage_clock_us_ = turn_start_us_;  // the disk's acknowledgement is seen now (on_disk_ack)
  stage_clock_fresh_ = true;
  turn_wall_ms_ = wall_ms();
  if (replica_) replica_->set_time(turn_wall_ms_, turn_steady_ms_);
}

bool Node::paused() const {
  return draining_ || replica_->busy() || disk_queue_full_ || (forwarder_ && forwarder_->busy());
}

void Node::refresh_disk_queue_state() {
  // Once per turn, not per command: queued_bytes() takes the disk thread's lock.
  disk_queue_full_ = disk_ && disk_->queued_bytes() >= kDiskQueueBytesMax;
}

void Node::loop_turn(int timeout_ms) {
  epoll_event events[kEpollEventsMax];
  int n = ::epoll_wait(epoll_fd_, events, kEpollEventsMax, timeout_ms);
  HMDB_ASSERT(n >= 0 || errno == EINTR, "epoll_wait: %s", std::strerror(errno));
  // One clock read per turn, not per command (clock_gettime was 6 % of a GET's CPU).
  refresh_clocks();
  // A follower's disk round published its ack without waking us (disk_thread.h): take it now.
  if (disk_ && disk_->ack_unseen()) on_disk_ack();
  bool peers_polled = false;
  // Whether anything but client sockets and the disk's acknowledgement took time before
  // the reading below (the first command's time starts after it).
  bool other_work = false;
  // Consensus time first, from the clock read just now: the core is fed every tick that
  // elapsed since the last turn (at most raft_catch_up_ticks_max_), before it sees this
  // turn's messages and requests. After a stall (a long turn, SIGSTOP, a VM freeze) a
  // leader then knows how long it was away (check-quorum steps it down, a read lease
  // expires), and a heartbeat read after the stall is not credited with the stalled time,
  // which would end a follower's check-quorum stickiness early. (Feeding one tick per turn,
  // as this loop once did, made a stalled leader's clock fall behind real time.)
  if (turn_steady_ms_ >= next_raft_tick_ms_) {
    const uint64_t due = (turn_steady_ms_ - next_raft_tick_ms_) / kRaftTickMs + 1;
    const uint64_t feed = std::min(due, raft_catch_up_ticks_max_);
    for (uint64_t i = 0; i < feed; i++) raft_->tick();
    next_raft_tick_ms_ += due * kRaftTickMs;
    other_work = true;
    if (transport_) {
      poll_peers();  // reconnects with backoff need a clock
      peers_polled = true;
      // Appends waiting for a disk round (Node::send) wait at most two ticks: an fdatasync
      // that takes long does not keep the entries from the followers.
      transport_->flush_stale();
    }
    replica_->check_transfers();
    if (forwarder_) {
      sync_forwarder();
      forward_links_->tick(*forwarder_, turn_steady_ms_);
      forwarder_->tick();
    }
  }
  for (int i = 0; i < n; i++) {
    uint64_t tag = events[i].data.u64;
    if (tag < kFirstSessionId) other_work = other_work || tag != kEpollTagWake;
    if (tag == kEpollTagListen) {
      accept_clients(listen_fd_, false);
    } else if (tag == kEpollTagTlsListen) {
      accept_clients(tls_listen_fd_, true);
    } else if (tag == kEpollTagWake) {
      uint64_t count = 0;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
      on_disk_ack();
    } else if (tag == kEpollTagSignal) {
      signalfd_siginfo info{};
      if (::read(signal_fd_, &info, sizeof info) != sizeof info) continue;
      if (info.ssi_signo == SIGHUP) {
        reload_tls();
        continue;
      }
      log_line("received signal {}: shutting down", static_cast<int>(info.ssi_signo));
      stop_requested_.store(true);
    } else if (tag == kEpollTagSnapshot) {
      on_snapshot_child_exit();
    } else if (tag == kEpollTagDigest) {
      on_digest_child_output();
    } else if (tag == kEpollTagPeers) {
      poll_peers();
      peers_polled = true;
    } else if (tag == kEpollTagForward) {
      forward_links_->poll(*forwarder_, turn_steady_ms_);
    } else if (tag == kEpollTagMetrics) {
      // A scrape: every statistic, as INFO all has them (statistics.h); no state hashing.
      metrics_->poll(turn_steady_ms_, [this] {
        return render_prometheus(collect_statistics(statistics_sources(false))) + render_latency_prometheus();
      });
    } else {
      Session* s = find_session(tag);
      if (!s) continue;
      if (s->tls) [[unlikely]] {
        // Either readiness may unblock either direction: a handshake reads and writes, and
        // so may a read or a write later (net/tls.h).
        s->readable = true;
        schedule_read(*s);
        if (s->unsent() > 0) schedule_flush(*s);
        continue;
      }
      if (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->hangup = true;
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        s->readable = true;
        schedule_read(*s);
      }
      if ((events[i].events & EPOLLOUT) && s->unsent() > 0) schedule_flush(*s);
    }
  }

  // A TLS peer connection that stopped at its read budget has bytes no event announces.
  if (transport_ && !peers_polled && transport_->reads_pending()) poll_peers();
  refresh_disk_queue_state();
  // The turn's start is "now" for the housekeeping tick (kTickMs apart: a few µs of event
  // handling do not matter to it).
  if (turn_steady_ms_ >= next_tick_ms_) {
    tick();
    next_tick_ms_ = std::max(next_tick_ms_ + kTickMs, turn_steady_ms_ + 1);
    other_work = true;
  }
  stage_clock_fresh_ = false;

  // Read and parse. Under global back-pressure nothing is read: the kernel's socket buffers
  // fill and TCP pushes back on the clients.
  if (!draining_ && !paused()) {
    std::vector<uint64_t> work;
    work.swap(active_);
    turn_read_left_ = kTurnReadBytesMax;
    std::vector<uint64_t> unread;  // sessions left at the turn's read bound: first in the next turn
    // The first command's time starts here: the turn's start, unless other work came first.
    if (!work.empty()) clock_us_ = other_work ? stage_read_us() : turn_start_us_;
    for (uint64_t id : work) {
      Session* s = find_session(id);
      if (!s) continue;
      s->in_active = false;
      if (paused()) {  // back-pressure began mid-turn: keep the rest for later
        s->in_active = true;
        active_.push_back(id);
        continue;
      }
      if (turn_read_left_ == 0) {  // the turn's read bound (kTurnReadBytesMax) is reached
        s->in_active = true;
        unread.push_back(id);
        continue;
      }
      if (s->readable && !session_paused(*s)) read_session(*s);
      if (!(s = find_session(id))) continue;
      parse_session(*s);
      stage_clock_fresh_ = false;
      if (!(s = find_session(id))) continue;
      if (s->eof && s->unsent() == 0 && ((s->pending() == 0 && s->in.empty()) || s->client.blocking)) {
        // The peer closed and nothing is owed to it. (Replies still owed to a half-closed
        // peer are sent first: flush_session closes it afterwards.) A client waiting in a
        // blocking command is closed as Redis closes it: its reply may never come.
        close_session(id);
        continue;
      }
      if (s->eof) schedule_flush(*s);
      if ((s->readable && !s->eof) || s->input_stalled) schedule_read(*s);
      if (replica_->batch_full()) {
        replica_->propose();
        replica_->drive();  // hands the entry to the disk thread now
        refresh_disk_queue_state();
        stage_clock_fresh_ = false;
      }
    }
    if (turn_read_left_ == 0) stats_.read_bound_turns++;
    if (!unread.empty()) active_.insert(active_.begin(), unread.begin(), unread.end());
  }

  // The batch becomes one log entry; the Readies are handled (persist, send, apply);
  // finished replies move out in order (replies_ready() schedules their sending).
  sync_forwarder();  // the leader may have changed this turn: before the replica drains
  stage_clock_fresh_ = false;
  if (snapshot_load_) [[unlikely]] finish_snapshot_load(false);
  // A snapshot in slices whose file the writer finished: ended before the replica's turn,
  // which drains the replies to its waiters (as a fork's child's end, seen in the events).
  if (sliced_save_) [[unlikely]] end_sliced_snapshot_if_written();
  if (!abandoned_saves_.empty()) [[unlikely]] {
    // A snapshot asked while an abandoned one's writer ran (start_snapshot waits for them).
    if (reap_abandoned_saves(false) && abandoned_saves_.empty() && (snapshot_again_ || !next_snapshot_waiters_.empty())) {
      snapshot_again_ = false;
      start_snapshot();
    }
  }
  replica_->end_turn();
  end_hold();  // before the replies' send(2)s: the disk works while the loop sends
  note_replies_queued();
  if (refused_snapshot_) [[unlikely]] note_refused_snapshot();
  if (forward_links_) forward_links_->flush(*forwarder_);  // what was forwarded this turn
  // A snapshot's slices (snapshot.cc), after the turn's applying: the apply's budget
  // (kTurnApplyBudgetUs) is the turn's first 8 ms, and these kTurnSnapshotBudgetUs more.
  if (sliced_save_) [[unlikely]] continue_sliced_snapshot();
  maybe_auto_snapshot();
  if (options_.durability == Durability::kNone) trim_unlogged_log();
  raft_->free_dropped_entries(kDroppedEntriesFreedPerTurn, kDroppedBytesFreedPerTurn, release_payload_pages);

  std::vector<uint64_t> flush;
  flush.swap(to_flush_);
  for (uint64_t id : flush) {
    Session* s = find_session(id);
    if (!s) continue;
    s->in_flush = false;
    flush_session(*s);
  }
  // The replies of the writes the disk's ack made durable are out: the hold for those clients'
  // next writes counts from here; and while more of them arrive, it goes on (disk_thread.h,
  // "Holding the next round").
  if (hold_clock_pending_ || (hold_ != 0 && hold_arrived_ != hold_arrived_clocked_)) {
    hold_clock_pending_ = false;
    hold_arrived_clocked_ = hold_arrived_;
    if (hold_ != 0) disk_->hold_from_now(hold_);
  }
  const uint64_t end_us = stage_read_us();
  note_turn_end(end_us);
  turn_end_ms_ = end_us / 1000;
  note_turn_duration(end_us - turn_start_us_);
}

bool Node::wait_for_disk_ack(int timeout_ms) {
  // A single node's loop (a cluster's waits for its peers too), while an acknowledgement that
  // will wake it is owed: writes were handed to the disk thread and not acknowledged, and no
  // hold the loop knows of keeps them from a round (a held round waits for the clients this
  // loop reads). Clients that write meanwhile would only join the next round, which the ack
  // lets start: they are read in the turn that takes the ack (options.h, kAckWaitMaxUs).
  // With rounds on the loop, the round this turn's writes started is written and synced right
  // here, and the next turn takes its ack (disk_thread.h, "Rounds on the loop"); if it cannot
  // run here (one runs or is held on the thread, or the disk is slow), the thread has it and
  // the loop waits as below.
  if (loop_rounds_ && disk_->round_on_loop()) return true;
#ifdef HMDB_PLANTED_BUG_NO_ACK_WAIT
  return false;  // PLANTED BUG: the loop wakes for every client event while its writes sync
#endif
  if (!disk_ || transport_ || forwarder_ || draining_ || hold_ != 0 || options_.durability != Durability::kAlways ||
      acked_index_ >= last_log_index_)
    return false;
  pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {signal_fd_, POLLIN, 0}};
  const uint64_t wait_us = std::min<uint64_t>(kAckWaitMaxUs, static_cast<uint64_t>(timeout_ms) * 1000);
  const timespec ts{static_cast<time_t>(wait_us / 1000000), static_cast<long>(wait_us % 1000000 * 1000)};
  const int n = ::ppoll(fds, signal_fd_ >= 0 ? 2 : 1, &ts, nullptr);
  HMDB_ASSERT(n >= 0 || errno == EINTR, "ppoll: %s", std::strerror(errno));
  stats_.ack_waits++;
  return true;
}

void Node::end_hold() {
  // The disk thread holds its next round (disk_thread.h) until the clients whose
  // writes its last round made durable sent their next ones; a node that stopped leading or
  // is stopping has no such clients to wait for.
  if (hold_ == 0) return;
  if (hold_arrived_ * 100 < hold_awaited_ * kGroupHoldReturnPercent && replica_->leader() && !draining_) return;
  disk_->release_hold(hold_);
  hold_ = 0;
  // No round follows (a leader stepping down or stopping): nothing else would flush the
  // appends queued for the hold's end (Node::send).
  if (transport_ && !disk_->flush_pending()) transport_->flush();
}

void Node::disconnect_stalled_readers() {
  const uint64_t now = monotonic_ms();
  std::vector<uint64_t> stalled;
  for (const auto& [id, s] : sessions_) {
    if (s->unsent() >= kClientOutputPauseBytes && now - s->output_progress_ms > kClientOutputStallMs)
      stalled.push_back(id);
  }
  for (uint64_t id : stalled) {
    Session* s = find_session(id);
    log_line("closing client {} ({}): {} bytes of replies not read for {} s", id, s->address, s->unsent(),
             kClientOutputStallMs / 1000);
    stats_.output_limit_disconnects++;
    close_session(id);
  }
}

void Node::tick() {
  // Once a second: clients that stopped reading their replies altogether.
  constexpr uint64_t kStallCheckTicks = 1000 / kTickMs;
  if (++ticks_ % kStallCheckTicks == 0) disconnect_stalled_readers();
  if (!draining_) replica_->housekeeping();
}

void Node::on_disk_ack() {
  if (!disk_) return;
  take_disk_ack();
  want_own_ack();
}

void Node::want_own_ack() {
  // Each pass either takes an ack published meanwhile or leaves the request with the thread.
  while (disk_ && peer_acked_max_ > acked_index_ && raft_->role() == raft::Role::kLeader &&
         disk_->wake_on_next_ack())
    take_disk_ack();
}

void Node::take_disk_ack() {
  uint64_t hold = 0;
  std::chrono::steady_clock::time_point published;
  if (auto ack = disk_->take_ack(&hold, &published)) {
    // The writes this acknowledgement made durable: their clients are the cohort the disk
    // thread's hold waits for (end_hold).
    uint64_t durable = 0;
    while (!hold_marks_.empty() && hold_marks_.front().first <= ack->last_index) {
      durable += hold_marks_.front().second;
      hold_marks_.pop_front();
    }
    if (hold != 0) {
      hold_ = hold;
      hold_awaited_ = durable;
      hold_arrived_ = 0;
      hold_clock_pending_ = true;
    }
    if (!proposals_.empty()) {
      // When the disk thread published it: a leader's own ack may be taken only at the turn a
      // follower's acknowledgement wakes the loop (disk_thread.h).
      const auto at = std::chrono::duration_cast<std::chrono::microseconds>(published.time_since_epoch()).count();
      note_persisted(ack->last_index, static_cast<uint64_t>(at));
    }
    acked_index_ = ack->last_index;
    raft_->persisted(*ack);
  }
}

// ---------------------------------------------------------------------------------------
// TLS certificates

Status Node::load_tls() {
  std::shared_ptr<net::TlsContext> clients, peer_server, peer_client;
  if (options_.tls_listen) {
    // Read ahead: the sessions read until OpenSSL wants the socket (client_io.cc), so a
    // request costs one read and the final one, not a header's, a body's and the final one.
    Status s = net::TlsContext::create(net::TlsContext::Role::kServer, options_.tls_files, options_.tls_auth_clients,
                                       &clients, /*read_ahead=*/true);
    if (!s) return s;
  }
  if (options_.tls_replication) {
    // Mutual: a peer (or a forwarding link) must present a certificate the CA signed.
    Status s = net::TlsContext::create(net::TlsContext::Role::kServer, options_.tls_files, net::TlsAuthClients::kYes,
                                       &peer_server);
    if (!s) return s;
    s = net::TlsContext::create(net::TlsContext::Role::kClient, options_.tls_files, net::TlsAuthClients::kYes,
                                &peer_client);
    if (!s) return s;
  }
  tls_clients_ = std::move(clients);
  tls_peer_server_ = std::move(peer_server);
  tls_peer_client_ = std::move(peer_client);
  if (transport_) transport_->set_tls(tls_peer_server_, tls_peer_client_);
  if (forward_links_) forward_links_->set_tls(tls_peer_client_);
  const auto& any = tls_clients_ ? tls_clients_ : tls_peer_server_;
  log_line("tls: certificate {} ({}), CA {}, client certificates {}{}", options_.tls_files.cert_file,
           any->description(), options_.tls_files.ca_cert_file.empty() ? "none" : options_.tls_files.ca_cert_file,
           net::tls_auth_clients_name(options_.tls_auth_clients),
           options_.tls_replication ? ", peers and forwarding links over TLS" : "");
  return Status::ok();
}

void Node::reload_tls() {
  if (!options_.tls_configured()) {
    log_line("received SIGHUP: no TLS configured, nothing to reload");
    return;
  }
  log_line("received SIGHUP: reading the TLS certificate, key and CA files again");
  Status s = load_tls();
  if (s) {
    stats_.tls_reloads++;
    return;
  }
  stats_.tls_reload_failures++;
  log_line("tls: reload failed, the certificates in use stay: {}", s.message());
}

void Node::warn(std::string_view message) { log_line("warning: {}", message); }

// ---------------------------------------------------------------------------------------
// The replica's disk and network (core::ReplicaHost)

std::optional<raft::PersistAck> Node::persist(const std::optional<raft::HardState>& hard_state,
                                              std::vector<raft::Entry>&& entries,
                                              const std::optional<raft::SnapshotMeta>& installed) {
  if (hard_state) hard_state_ = *hard_state;
  if (installed) {
    last_log_index_ = installed->index;
    last_log_term_ = installed->term;
  }
  if (!entries.empty()) {
    last_log_index_ = entries.back().index;
    last_log_term_ = entries.back().term;
    for (const auto& e : entries) log_bytes_since_snapshot_ += e.data.size() + kLogRecordOverheadBytes;
    if (options_.clustered()) learn_addresses(entries);
    if (!proposals_.empty()) note_handed_to_disk(last_log_index_);
  }
  if (disk_) {
    // Group commit: the disk thread writes and syncs everything queued since its last round.
    // The install is recorded once its file is durable and verified (the load's thread).
    if (installed)
      disk_->submit_install(*installed, snapshot_load_ && snapshot_load_->meta == *installed
                                            ? snapshot_load_->file_durable
                                            : nullptr);
    const bool hold_after = std::exchange(hold_writes_proposed_, false) && !entries.empty();
    // A follower's core needs the ack for nothing urgent (its acks go out from the disk thread:
    // send_after_persist); a candidate counts its vote by it; a leader commits by it alone only
    // as the only voter: with other voters its ack wakes the loop only when a follower already
    // acknowledged more (want_own_ack; disk_thread.h, "A leader's own acknowledgement").
    const raft::Role role = raft_->role();
    const bool wake_loop = role == raft::Role::kLeader
                               ? !other_voters_
                               : role != raft::Role::kFollower && role != raft::Role::kLearner;
    disk_->submit(hard_state, std::move(entries), hold_after, wake_loop);
    return std::nullopt;  // on_disk_ack() brings the acknowledgement
  }
  if (options_.durability != Durability::kNone) {
    // Startup, before the disk thread runs: write and sync right here.
    HMDB_ASSERT(log_for_recovery_ != nullptr, "no log writer during startup");
    HMDB_ASSERT(!installed, "snapshot install during startup");
    Status st = log_for_recovery_->append(hard_state ? &*hard_state : nullptr, entries);
    if (st) st = log_for_recovery_->sync();
    if (!st) fatal(kExitDiskFailure, "writing the log in {} failed during startup: {}", options_.dir, st.to_string());
  }
  // Durable now (written and synced above), or no log at all ("persisted" when handed over).
  if (!proposals_.empty()) note_persisted(last_log_index_, 0);
  return raft::PersistAck{last_log_index_, last_log_term_, hard_state_};
}

void Node::send(std::vector<raft::Message>&& messages) {
  if (!transport_) return;
  if (snapshot_load_) [[unlikely]] {
    snapshot_load_->messages.fetch_add(messages.size());
    snapshot_load_->messages.notify_all();
  }
  note_sent(messages);
  // A leader's appends wait in the peer queues for the start of its next disk round, which
  // writes their entries, or for the end of the hold in force (disk_thread.h, "A leader's
  // appends leave when its round starts"): a follower gets one write per leader round instead
  // of an append per loop turn that proposed and one per commit. Queued first, then asked: a
  // round taken (or a hold ended) meanwhile may have flushed before they were queued, and
  // then nothing is pending here, so the loop flushes. Anything else (heartbeats, votes,
  // snapshots) goes at once, with what waited before it.
  const bool appends_only = disk_ && std::all_of(messages.begin(), messages.end(), [](const raft::Message& m) {
                              return m.type == raft::MessageType::kAppend;
                            });
  if (appends_only) {
    transport_->send_later(std::move(messages));
    if (disk_->flush_pending()) return;
    transport_->flush();
  } else {
    transport_->send_and_flush(std::move(messages));
  }
  stage_clock_fresh_ = false;  // sockets written: the next stage boundary reads the clock
}

void Node::send_after_persist(std::vector<raft::Message>&& messages) {
  if (!transport_) return;
  if (!disk_) {
    // Durable already: written synchronously (startup) or no log at all (none).
    send(std::move(messages));
    return;
  }
  if (snapshot_load_) [[unlikely]] {
    snapshot_load_->messages.fetch_add(messages.size());
    snapshot_load_->messages.notify_all();
  }
  disk_->submit_messages(std::move(messages));  // sent by the disk thread after the sync
}

void Node::applied(const raft::Entry& entry) {
  if (!proposals_.empty()) note_applied(entry.index);
  if (entry.type == raft::EntryType::kConfChange) apply_conf_change(entry);
  if (app_->active_schema_version() != logged_active_version_) [[unlikely]] {
    logged_active_version_ = app_->active_schema_version();
    log_line("schema: version {} of app {} is active from log index {} (this binary reads {}..{})",
             logged_active_version_, app_->app_name(), entry.index, app_->oldest_schema_version(),
             app_->schema_version());
  }
  replay_progress();
}

void Node::schema_blocked(const raft::Entry& e, const core::ApplyResult& r) {
  // Stopping would take a voter away from a cluster that may need it for its quorum: the
  // node stays, keeps its log and votes, but applies nothing more and does not lead (a leader
  // must apply). docs/cluster.md, "Schema versions".
  raft_->set_may_lead(false);
  log_line("schema: BLOCKED at log index {}: it {} {}. This node applies nothing from there on (applied index {}), "
           "does not lead, and refuses clients' commands; it still stores the log and votes. Restart it with a binary "
           "that reads version {}, or remove it from the cluster.",
           e.index, r.activation ? "activates" : "was logged under", core::unreadable_schema(*app_, r.schema_version),
           replica_->applied_index(), r.schema_version);
}

void Node::note_refused_snapshot() {
  const raft::SnapshotMeta m = *refused_snapshot_;
  refused_snapshot_.reset();
  if (m.index == refused_snapshot_logged_) return;  // offered again: said already
  refused_snapshot_logged_ = m.index;
  if (const auto& block = replica_->schema_block()) {
    log_line("schema: refused the leader's snapshot at index {} (schema version {}): this node is blocked at log index "
             "{} and applies nothing",
             m.index, m.schema_version, block->index);
    return;
  }
  replica_->block_at_snapshot(m.index, m.schema_version);
  raft_->set_may_lead(false);
  log_line("schema: BLOCKED: refused the leader's snapshot at index {}: it is of {}. This node cannot catch up "
           "(applied index {}): it applies nothing, does not lead, and refuses clients' commands; it still votes. "
           "Restart it with a binary that reads version {}, or remove it from the cluster.",
           m.index, core::unreadable_schema(*app_, m.schema_version), replica_->applied_index(), m.schema_version);
}

void Node::apply_failed(const raft::Entry& e, const core::ApplyResult& r) {
  if (r.status == core::ApplyStatus::kUnsupportedSchema) {
    // The binary is older (or much newer) than the data, which is sound: the same code as
    // a snapshot of a version it does not read at startup (recovery.cc), not kExitCorruption.
    fatal(kExitStartupFailure, "log entry {} {} {}. Nothing was applied past index {}.", e.index,
          r.activation ? "activates" : "was logged under", core::unreadable_schema(*app_, r.schema_version),
          replica_->applied_index());
  }
  if (r.status == core::ApplyStatus::kNewerFormat) {
    fatal(kExitStartupFailure,
          "log entry {} holds a command batch of format {}, which a newer hmdb wrote; this binary reads formats up "
          "to {}. Upgrade the binary; nothing was applied past index {}.",
          e.index, r.format, core::kBatchFormatNewest, replica_->applied_index());
  }
  if (r.status == core::ApplyStatus::kDiverged) {
    fatal(kExitDiverged,
          "log entry {} (term {}, schema version {}) diverges: {}. The node that logged it validated it, so it meant "
          "something there that it does not mean to this binary of app {} (versions {}..{}): stopping rather than "
          "applying it differently. Nothing was applied past index {}.",
          e.index, e.term, r.schema_version, r.divergence, app_->app_name(), app_->oldest_schema_version(),
          app_->schema_version(), replica_->applied_index());
  }
  fatal(kExitCorruption,
        "log entry {} (term {}) holds a malformed command batch (after {} commands); the log passed its checksum, so "
        "the writer was broken. Run `hmdb log verify {}`.",
        e.index, e.term, r.commands, options_.dir);
}

}  // namespace hmdb::server
