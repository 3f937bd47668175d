// server/node.cc — the event loop: sockets, sessions, batching, driving raft, apply, replies.
//
// One loop turn:
//   1. epoll_wait (edge-triggered client sockets; level-triggered listener, eventfd,
//      signalfd, snapshot pidfd)
//   2. tick raft + housekeeping every kTickMs
//   3. read every readable client (bounded per turn) and parse its commands: queries run
//      at once, writes are validated and added to the turn's batch
//   4. propose the batch as ONE raft entry
//   5. drain raft's Ready: entries to the disk thread, committed entries applied, replies
//      routed to their sessions
//   6. write replies
// The disk thread's ack arrives through the eventfd in some later turn and commits the
// entries (step 5 of that turn).
#include "server/node.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

#include "common/assert.h"
#include "server/logging.h"
#include "storage/log_format.h"

namespace hmdb::server {

namespace {

// listen(2) backlog.
constexpr int kListenBacklog = 511;
// A client whose unparsed input exceeds this is disconnected (Redis' client-query-buffer-limit).
constexpr uint64_t kClientQueryBufferLimitBytes = 1ull << 30;
// Largest single read(2) while a big bulk is arriving.
constexpr uint64_t kReadChunkBytesMax = 64ull << 20;
// Per-entry overhead counted towards the snapshot trigger: the log record's header and
// checksum, from the one header that defines the format.
constexpr uint64_t kLogRecordOverheadBytes = storage::log_format::kRecordOverhead;

uint64_t steady_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

uint64_t realtime_ms() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

std::string quote_for_error(std::string_view s) {
  constexpr size_t kMax = 128;  // Redis truncates each argument in this message
  return "'" + std::string(s.substr(0, kMax)) + "' ";
}

}  // namespace

// ---------------------------------------------------------------------------------------
// ReadBuffer

char* ReadBuffer::reserve(size_t n) {
  if (cap_ - end_ >= n) return buf_.get() + end_;
  size_t live = end_ - start_;
  if (start_ > 0 && cap_ - live >= n && live <= cap_ / 2) {
    std::memmove(buf_.get(), buf_.get() + start_, live);
  } else {
    size_t cap = std::max<size_t>(cap_ * 2, live + n);
    std::unique_ptr<char[]> grown(new char[cap]);
    if (live) std::memcpy(grown.get(), buf_.get() + start_, live);
    buf_ = std::move(grown);
    cap_ = cap;
  }
  start_ = 0;
  end_ = live;
  return buf_.get() + end_;
}

void ReadBuffer::consume(size_t n) {
  HMDB_ASSERT(n <= size(), "consume past the end");
  start_ += n;
  if (start_ == end_) start_ = end_ = 0;
}

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

bool parse_durability(const std::string& s, Durability* out) {
  if (s == "always") *out = Durability::kAlways;
  else if (s == "periodic") *out = Durability::kPeriodic;
  else if (s == "none") *out = Durability::kNone;
  else return false;
  return true;
}

Node::Node(ServerOptions options, std::unique_ptr<StateMachine> app)
    : options_(std::move(options)), app_(std::move(app)) {
  env_ = storage::Env::posix();
}

Node::~Node() {
  if (snapshot_pid_ > 0) {
    ::kill(snapshot_pid_, SIGKILL);
    ::waitpid(snapshot_pid_, nullptr, 0);
  }
  if (disk_) disk_->stop();
  for (auto& [id, s] : sessions_) ::close(s->fd);
  for (int fd : {epoll_fd_, listen_fd_, wake_fd_, reserve_fd_, snapshot_pidfd_})
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
  stats_.start_ms = realtime_ms();

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

  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::io_error(std::string("socket: ") + std::strerror(errno));
  int yes = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(options_.port);
  if (::inet_pton(AF_INET, options_.bind.c_str(), &addr.sin_addr) != 1)
    return Status::invalid_argument("--bind " + options_.bind + " is not an IPv4 address");
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Status::io_error(fmt::format("cannot listen on {}:{}: {}", options_.bind, options_.port, std::strerror(errno)));
  if (::listen(listen_fd_, kListenBacklog) != 0) return Status::io_error(std::string("listen: ") + std::strerror(errno));
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagListen;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  if (options_.metrics_port != 0) {
    s = MetricsServer::open(options_.bind, options_.metrics_port, &metrics_);
    if (!s) return s;
    ev.events = EPOLLIN;  // level-triggered, like the peer transport's epoll fd
    ev.data.u64 = kEpollTagMetrics;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, metrics_->fd(), &ev) != 0)
      return Status::io_error(std::string("epoll_ctl(metrics): ") + std::strerror(errno));
    log_line("metrics: http://{}:{}/metrics", options_.bind, metrics_->port());
  }

  s = start_cluster();
  if (!s) return s;

  if (options_.durability != Durability::kNone) {
    disk_ = std::make_unique<DiskThread>(env_, options_.dir, std::move(log_for_recovery_), options_.durability,
                                         options_.fsync_interval_ms, wake_fd_, last_log_index_, last_log_term_,
                                         hard_state_);
    disk_->start();
  }
  log_line("ready: app {} (schema {}), listening on {}:{}, durability {}, data in {}", app_->app_name(),
           app_->schema_version(), options_.bind, port_, durability_name(options_.durability), options_.dir);
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
  next_tick_ms_ = turn_steady_ms_ + kTickMs;
  next_raft_tick_ms_ = turn_steady_ms_ + kRaftTickMs;
  int timeout_ms = 0;
  while (true) {
    if (stop_requested_.load() && !draining_) {
      // Stop taking connections and commands; finish what was proposed (fsync + replies).
      draining_ = true;
      drain_deadline_ms_ = steady_ms() + kShutdownFlushMs;
      ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
      ::close(listen_fd_);
      listen_fd_ = -1;
      log_line("stopping: no new connections or commands; finishing {} in-flight batches", writes_.size());
    }
    // A follower (or a leader that lost its majority) may never see its proposals decided:
    // drain what this node can finish, within kShutdownFlushMs.
    if (draining_ && batch_.empty() && !refused_payload_ && !raft_->has_ready() &&
        (writes_.empty() || (options_.clustered() && steady_ms() >= drain_deadline_ms_)))
      break;
    loop_turn(timeout_ms);

    // Sleep in epoll only if nothing can progress without an event.
    const uint64_t next = std::min(next_tick_ms_, next_raft_tick_ms_);
    timeout_ms = static_cast<int>(std::min<uint64_t>(kTickMs, next > steady_ms() ? next - steady_ms() : 0));
    if (!batch_.empty() || raft_->has_ready()) timeout_ms = 0;
    if (!draining_ && !paused()) {
      for (uint64_t id : active_) {
        Session* s = find_session(id);
        if (s && (s->readable || s->input_stalled) && !session_paused(*s)) {
          timeout_ms = 0;
          break;
        }
      }
    }
  }

  // Deliver the last replies (bounded wait for slow readers).
  uint64_t deadline = steady_ms() + kShutdownFlushMs;
  while (steady_ms() < deadline) {
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
  if (disk_) disk_->stop();  // writes and syncs anything left
  disk_.reset();
  log_for_recovery_.reset();
  if (log_env_) log_env_->stop();  // finishes removing compacted segments
  log_line("stopped cleanly at applied index {}", applied_index_);
  return exit_code_;
}

// ---------------------------------------------------------------------------------------
// One loop turn

void Node::note_turn_duration(uint64_t busy_ms) {
  // A turn that works long delays every client and, on a leader, its heartbeats: a
  // follower whose election timer runs out meanwhile starts an election.
  stats_.loop_turn_max_ms = std::max(stats_.loop_turn_max_ms, busy_ms);
  if (busy_ms < kSlowTurnMs) return;
  stats_.slow_turns++;
  const uint64_t now = steady_ms();
  if (now - last_slow_turn_log_ms_ >= kSlowTurnLogIntervalMs) {
    last_slow_turn_log_ms_ = now;
    log_line("warning: one event-loop turn took {} ms ({} such turns over {} ms so far); a leader's heartbeats wait "
             "meanwhile (election timeout {} ms)", busy_ms, stats_.slow_turns, kSlowTurnMs,
             options_.election_timeout_ms);
  }
}

uint64_t Node::realtime_now_ms() { return realtime_ms(); }
uint64_t Node::steady_now_ms() { return steady_ms(); }

Session* Node::find_session(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void Node::refresh_clocks() {
  turn_steady_ms_ = steady_ms();
  // Batch stamps never go backwards, even if the system clock does: expiry stays monotonic.
  last_time_ms_ = std::max(last_time_ms_, realtime_ms());
}

uint64_t Node::wall_clock_ms() const { return last_time_ms_; }

bool Node::paused() const {
  return draining_ || refused_payload_.has_value() || writes_.bytes() >= kInflightBytesMax || disk_queue_full_;
}

void Node::refresh_disk_queue_state() {
  // Once per turn, not per command: queued_bytes() takes the disk thread's lock.
  disk_queue_full_ = disk_ && disk_->queued_bytes() >= kDiskQueueBytesMax;
}

bool Node::session_paused(const Session& s) const {
  return s.close_after_reply || s.pending.size() >= kClientPendingCommandsMax || s.unsent() >= kClientOutputPauseBytes;
}

void Node::loop_turn(int timeout_ms) {
  epoll_event events[kEpollEventsMax];
  int n = ::epoll_wait(epoll_fd_, events, kEpollEventsMax, timeout_ms);
  HMDB_ASSERT(n >= 0 || errno == EINTR, "epoll_wait: %s", std::strerror(errno));
  // One clock read per turn, not per command (clock_gettime was 6 % of a GET's CPU).
  refresh_clocks();
  const uint64_t work_start_ms = turn_steady_ms_;
  for (int i = 0; i < n; i++) {
    uint64_t tag = events[i].data.u64;
    if (tag == kEpollTagListen) {
      accept_clients();
    } else if (tag == kEpollTagWake) {
      uint64_t count = 0;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
      on_disk_ack();
    } else if (tag == kEpollTagSignal) {
      signalfd_siginfo info{};
      if (::read(signal_fd_, &info, sizeof info) == sizeof info)
        log_line("received signal {}: shutting down", static_cast<int>(info.ssi_signo));
      stop_requested_.store(true);
    } else if (tag == kEpollTagSnapshot) {
      on_snapshot_child_exit();
    } else if (tag == kEpollTagPeers) {
      poll_peers();
    } else if (tag == kEpollTagMetrics) {
      // A scrape is INFO all, converted: no state hashing.
      metrics_->poll(turn_steady_ms_, [this] { return info_to_prometheus(info_text("all")); });
    } else {
      Session* s = find_session(tag);
      if (!s) continue;
      if (events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) s->hangup = true;
      if (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        s->readable = true;
        if (!s->in_active) {
          s->in_active = true;
          active_.push_back(s->id);
        }
      }
      if ((events[i].events & EPOLLOUT) && s->unsent() > 0 && !s->in_flush) {
        s->in_flush = true;
        to_flush_.push_back(s->id);
      }
    }
  }

  refresh_disk_queue_state();
  uint64_t now = steady_ms();
  if (now >= next_raft_tick_ms_) {
    raft_->tick();
    next_raft_tick_ms_ = std::max(next_raft_tick_ms_ + kRaftTickMs, now + 1);
    if (transport_) poll_peers();  // reconnects with backoff need a clock
    check_cluster_waiters();
  }
  if (now >= next_tick_ms_) {
    tick();
    next_tick_ms_ = std::max(next_tick_ms_ + kTickMs, now + 1);
  }

  // Read and parse. Under global back-pressure nothing is read: the kernel's socket buffers
  // fill and TCP pushes back on the clients.
  if (!draining_ && !paused()) {
    std::vector<uint64_t> work;
    work.swap(active_);
    for (uint64_t id : work) {
      Session* s = find_session(id);
      if (!s) continue;
      s->in_active = false;
      if (paused()) {  // back-pressure began mid-turn: keep the rest for later
        s->in_active = true;
        active_.push_back(id);
        continue;
      }
      if (s->readable && !session_paused(*s)) read_session(*s);
      if (!(s = find_session(id))) continue;
      parse_session(*s);
      if (!(s = find_session(id))) continue;
      if (s->eof && s->pending.empty() && s->in.empty() && s->unsent() == 0) {
        // The peer closed and nothing is owed to it. (Replies still owed to a half-closed
        // peer are sent first: flush_session closes it afterwards.)
        close_session(id);
        continue;
      }
      if (s->eof && !s->in_flush) {
        s->in_flush = true;
        to_flush_.push_back(id);
      }
      if ((s->readable && !s->eof) || s->input_stalled) {
        s->in_active = true;
        active_.push_back(id);
      }
      if (batch_.body_bytes() >= kBatchBytesMax) {
        propose_batch();
        drive_raft();  // hands the entry to the disk thread now
        refresh_disk_queue_state();
      }
    }
  }

  propose_batch();
  start_reads();
  drive_raft();  // ends by running the reads whose index is applied
  maybe_auto_snapshot();
  raft_->free_dropped_entries(kDroppedEntriesFreedPerTurn);

  // Replies that apply or a snapshot filled in: move them out in order, run what waited.
  while (!to_drain_.empty()) {
    std::vector<uint64_t> drain;
    drain.swap(to_drain_);
    for (uint64_t id : drain) {
      Session* s = find_session(id);
      if (!s) continue;
      s->in_drain = false;
      drain_pending(*s);
    }
  }

  std::vector<uint64_t> flush;
  flush.swap(to_flush_);
  for (uint64_t id : flush) {
    Session* s = find_session(id);
    if (!s) continue;
    s->in_flush = false;
    flush_session(*s);
  }
  note_turn_duration(steady_ms() - work_start_ms);
}

void Node::accept_clients() {
  for (int i = 0; i < kAcceptsPerTurnMax; i++) {
    sockaddr_in addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: use the spare one to accept and close the connection, so the
        // listener does not stay readable forever (and the client learns quickly).
        ::close(reserve_fd_);
        int shed = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (shed >= 0) {
          ::send(shed, "-ERR max number of clients reached\r\n", 36, MSG_NOSIGNAL | MSG_DONTWAIT);
          ::close(shed);
        }
        reserve_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        stats_.rejected_connections++;
        if (stats_.rejected_connections % 1000 == 1)
          log_line("out of file descriptors: refused a connection ({} so far); raise ulimit -n",
                   stats_.rejected_connections);
        continue;
      }
      log_line("accept: {}", std::strerror(errno));
      return;
    }
    if (sessions_.size() >= options_.max_clients) {
      static constexpr char kMsg[] = "-ERR max number of clients reached\r\n";
      ::send(fd, kMsg, sizeof kMsg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      stats_.rejected_connections++;
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    auto s = std::make_unique<Session>(options_.max_bulk_bytes);
    s->id = next_session_id_++;
    s->fd = fd;
    char ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
    s->address = fmt::format("{}:{}", ip, ntohs(addr.sin_port));
    s->created_ms = realtime_ms();
    s->output_progress_ms = steady_ms();
    s->last_command_ms = s->created_ms;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = s->id;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log_line("epoll_ctl: {}", std::strerror(errno));
      ::close(fd);
      continue;
    }
    stats_.connections_received++;
    sessions_.emplace(s->id, std::move(s));
  }
}

void Node::read_session(Session& s) {
  uint64_t budget = kReadBytesPerTurnMax;
  while (budget > 0) {
    uint64_t want = kReadChunkBytes;
    uint64_t hint = s.parser.bytes_wanted();
    if (hint > s.in.size()) want = std::max<uint64_t>(want, std::min<uint64_t>(hint - s.in.size(), kReadChunkBytesMax));
    char* p = s.in.reserve(want);
    ssize_t n = ::read(s.fd, p, want);
    if (n > 0) {
      s.in.commit(static_cast<size_t>(n));
      budget -= std::min<uint64_t>(budget, static_cast<uint64_t>(n));
      // A short read from a stream socket means its buffer is empty now; the next byte
      // brings a new edge. Not so for the peer's FIN if it came with the same edge as the
      // data: then read on until read() says 0.
      if (static_cast<uint64_t>(n) < want && !s.hangup) {
        s.readable = false;
        break;
      }
      continue;
    }
    if (n == 0) {
      s.eof = true;
      s.readable = false;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      s.readable = false;
      break;
    }
    s.eof = true;  // ECONNRESET and friends
    s.readable = false;
    break;
  }
  if (s.in.size() > kClientQueryBufferLimitBytes && s.in.size() > 2 * options_.max_bulk_bytes) {
    log_line("closing client {} ({}): query buffer over {} bytes", s.id, s.address, s.in.size());
    s.in.release();
    s.parser.reset();
    s.close_after_reply = true;
    Reply(&s.out).error("ERR Protocol error: query buffer limit exceeded");
    if (!s.in_flush) {
      s.in_flush = true;
      to_flush_.push_back(s.id);
    }
  }
}

void Node::parse_session(Session& s) {
  std::string error;
  s.input_stalled = false;
  while (!s.in.empty()) {
    if (s.close_after_reply) {
      s.in.release();
      break;
    }
    if (session_paused(s) || paused()) {
      s.input_stalled = true;
      return;
    }
    // Parse up to kParseAheadCommands pipelined commands, hint the app to prefetch what each
    // will touch, then run them in order: their cache misses overlap. Views stay valid until
    // the next read (consume only moves the buffer's start). Only multibulk commands are
    // parsed ahead: an inline command is unquoted in place, so it must be parsed just once.
    size_t parsed = 0;
    size_t offset = 0;
    bool error_next = false;  // the command after the parsed ones is malformed
    while (parsed < kParseAheadCommands && offset < s.in.size()) {
      if (parsed > 0 && s.in.data()[offset] != '*') break;
      ParsedCommand& c = parse_ahead_[parsed];
      auto r = s.parser.parse(s.in.data() + offset, s.in.size() - offset, &c.consumed, &c.argv, &error);
      if (r == net::RespParser::Result::kNeedMore) break;
      if (r == net::RespParser::Result::kError) {
        error_next = true;
        break;
      }
      offset += c.consumed;
      parsed++;
    }
    if (parsed > 1)
      for (size_t i = 0; i < parsed; i++)
        if (!parse_ahead_[i].argv.empty()) app_->prefetch(parse_ahead_[i].argv);
    for (size_t i = 0; i < parsed; i++) {
      if (i > 0 && (s.close_after_reply || session_paused(s) || paused())) {
        // Stop here; the loop's top handles why. The parser may hold a later command's
        // partial state, but parsing resumes at this command: forget it.
        s.parser.reset();
        error_next = false;
        break;
      }
      if (!parse_ahead_[i].argv.empty()) handle_command(s, parse_ahead_[i].argv);
      s.in.consume(parse_ahead_[i].consumed);
    }
    if (parsed > 0 && !error_next) continue;
    if (parsed > 0) {
      s.parser.reset();  // the malformed command is parsed again, first, and answered below
      continue;
    }
    if (!error_next) break;  // kNeedMore
    {  // kError on the first command
      // The stream cannot be trusted any more: answer (after earlier replies) and close.
      stats_.protocol_errors++;
      std::string reply;
      Reply(&reply).error(error);
      Pending p;
      p.kind = Pending::Kind::kDone;
      p.reply = std::move(reply);
      s.pending.push_back(std::move(p));
      s.next_seq++;
      s.close_after_reply = true;
      s.in.release();
      s.parser.reset();
      if (!s.in_drain) {
        s.in_drain = true;
        to_drain_.push_back(s.id);
      }
      break;
    }
  }
  if (s.in.empty() && s.in.capacity() > 0) s.in.release();
}

void Node::emit(Session& s, std::string reply) {
  if (s.pending.empty()) {
    s.out.append(reply);
  } else {
    Pending p;
    p.kind = Pending::Kind::kDone;
    p.reply = std::move(reply);
    s.pending.push_back(std::move(p));
    s.next_seq++;
  }
  if (!s.in_flush) {
    s.in_flush = true;
    to_flush_.push_back(s.id);
  }
}

void Node::handle_command(Session& s, std::span<const std::string_view> argv) {
  stats_.commands++;
  s.commands++;
  s.last_command_ms = last_time_ms_;
  const bool server = is_server_command(argv[0]);
  const CommandKind kind = server ? CommandKind::kQuery : app_->kind(argv[0]);
  if (kind == CommandKind::kUnknown) {
    std::string msg = "ERR unknown command " + quote_for_error(argv[0]);
    msg.pop_back();
    msg += ", with args beginning with: ";
    for (size_t i = 1; i < argv.size() && msg.size() < 1024; i++) msg += quote_for_error(argv[i]);
    std::string reply;
    Reply(&reply).error(msg);
    emit(s, std::move(reply));
    return;
  }
  // QUIT: nothing after it is read; the connection closes once its reply is out.
  if (server && argv.size() == 1 && is_quit(argv[0])) s.close_after_reply = true;
  // Cluster: only the leader serves the app's commands; a follower names it (-MOVED). A
  // client that said READONLY may read a follower's (possibly stale) state.
  if (!server && options_.clustered() && !is_leader() && !(kind == CommandKind::kQuery && s.readonly)) {
    emit(s, redirect_reply());
    return;
  }
  if (s.deferred > 0 || s.waiting_reads > 0) {
    // Something ahead is held back: keep the order by waiting behind it.
    Pending p;
    p.kind = Pending::Kind::kDeferred;
    p.argv.assign(argv.begin(), argv.end());
    s.pending.push_back(std::move(p));
    s.next_seq++;
    s.deferred++;
    return;
  }
  if (kind == CommandKind::kWrite) {
    std::string error;
    if (!app_->validate(argv, &error)) {
      std::string reply;
      Reply(&reply).error(error);
      emit(s, std::move(reply));
      return;
    }
    Pending p;
    p.kind = Pending::Kind::kWaitingWrite;
    s.pending.push_back(std::move(p));
    s.waiting_writes++;
    batch_write(s.id, argv, s.next_seq++);
    return;
  }
  if (!server && reads_need_index() && !s.readonly) {
    // A linearizable read on the leader of a cluster: after a read-index round, or, behind
    // a write of this session, after that write (and then a read-index round).
    Pending p;
    p.argv.assign(argv.begin(), argv.end());
    if (s.waiting_writes > 0) {
      p.kind = Pending::Kind::kDeferred;
      s.deferred++;
      s.pending.push_back(std::move(p));
      s.next_seq++;
    } else {
      p.kind = Pending::Kind::kWaitingRead;
      s.pending.push_back(std::move(p));
      queue_read(s, s.next_seq++);
    }
    return;
  }
  if (server && is_barrier_command(argv) && !is_snapshot_command(argv[0])) {
    // A membership change or transfer: after every earlier command of the session.
    if (s.waiting_writes > 0) {
      Pending p;
      p.kind = Pending::Kind::kDeferred;
      p.argv.assign(argv.begin(), argv.end());
      s.deferred++;
      s.pending.push_back(std::move(p));
      s.next_seq++;
      return;
    }
    Pending p;
    const uint64_t seq = s.next_seq++;
    if (cluster_command(s, argv, seq, &p.reply) == RunResult::kWaitCluster) {
      p.kind = Pending::Kind::kWaitingWrite;
      s.waiting_writes++;
    } else {
      p.kind = Pending::Kind::kDone;
    }
    s.pending.push_back(std::move(p));
    if (!s.in_drain) {
      s.in_drain = true;
      to_drain_.push_back(s.id);
    }
    return;
  }
  if (s.waiting_writes > 0) {
    // Behind a write of this session: run right after that write is applied.
    Pending p;
    p.kind = server && is_snapshot_command(argv[0]) ? Pending::Kind::kDeferred : Pending::Kind::kQueryAtApply;
    if (p.kind == Pending::Kind::kDeferred) s.deferred++;
    p.argv.assign(argv.begin(), argv.end());
    s.pending.push_back(std::move(p));
    s.next_seq++;
    return;
  }
  // Nothing of this session is unapplied: answer now (behind earlier replies, if any).
  if (s.pending.empty()) {
    if (run_now(s, argv, &s.out) == RunResult::kWaitSnapshot) {
      Pending p;
      p.kind = Pending::Kind::kWaitingSnapshot;
      s.pending.push_back(std::move(p));
      next_snapshot_waiters_.emplace_back(s.id, s.next_seq++);
      start_snapshot();
    }
  } else {
    Pending p;
    if (run_now(s, argv, &p.reply) == RunResult::kWaitSnapshot) {
      p.kind = Pending::Kind::kWaitingSnapshot;
      next_snapshot_waiters_.emplace_back(s.id, s.next_seq);
    } else {
      p.kind = Pending::Kind::kDone;
    }
    s.pending.push_back(std::move(p));
    s.next_seq++;
    if (s.pending.back().kind == Pending::Kind::kWaitingSnapshot) start_snapshot();
  }
  if (!s.in_flush) {
    s.in_flush = true;
    to_flush_.push_back(s.id);
  }
}

Node::RunResult Node::run_now(Session& s, std::span<const std::string_view> argv, std::string* out) {
  if (is_server_command(argv[0])) return server_command(s, argv, out);
  Reply reply(out);
  app_->query(argv, QueryContext{wall_clock_ms()}, reply);
  return RunResult::kReplied;
}

void Node::batch_write(uint64_t session_id, std::span<const std::string_view> argv, uint64_t seq) {
  if (batch_.empty()) batch_.start(wall_clock_ms());
  batch_.add(argv);
  batch_slots_.push_back(ReplySlot{session_id, seq});
  stats_.writes++;
}

bool Node::promote_deferred(Session& s, size_t i, bool write_before) {
  Pending& p = s.pending[i];
  const uint64_t seq = s.pending_base_seq + i;
  HMDB_ASSERT(p.kind == Pending::Kind::kDeferred, "not deferred");
  std::vector<std::string_view> argv(p.argv.begin(), p.argv.end());
  const bool server = is_server_command(argv[0]);
  if (server && is_barrier_command(argv) && write_before) return false;  // still behind a write
  const CommandKind kind = server ? CommandKind::kQuery : app_->kind(argv[0]);
  const bool redirect = !server && options_.clustered() && !is_leader() && !(kind == CommandKind::kQuery && s.readonly);
  const bool linearizable_read = !server && !redirect && kind == CommandKind::kQuery && reads_need_index() && !s.readonly;
  if (linearizable_read && write_before) return false;  // a read-index round after the write
  s.deferred--;
  if (redirect) {
    p.reply = redirect_reply();
    p.kind = Pending::Kind::kDone;
  } else if (linearizable_read) {
    p.kind = Pending::Kind::kWaitingRead;
    queue_read(s, seq);
    return true;  // keeps its argv until it runs
  } else if (server && is_barrier_command(argv) && !is_snapshot_command(argv[0])) {
    p.reply.clear();
    if (cluster_command(s, argv, seq, &p.reply) == RunResult::kWaitCluster) {
      p.kind = Pending::Kind::kWaitingWrite;
      s.waiting_writes++;
    } else {
      p.kind = Pending::Kind::kDone;
    }
  } else if (kind == CommandKind::kWrite) {
    std::string error;
    if (!app_->validate(argv, &error)) {
      p.reply.clear();
      Reply(&p.reply).error(error);
      p.kind = Pending::Kind::kDone;
    } else {
      p.kind = Pending::Kind::kWaitingWrite;
      s.waiting_writes++;
      batch_write(s.id, argv, seq);  // copies the bytes into the batch
    }
  } else if (write_before) {
    p.kind = Pending::Kind::kQueryAtApply;
    return true;  // keeps its argv until it runs
  } else {
    p.reply.clear();
    if (run_now(s, argv, &p.reply) == RunResult::kWaitSnapshot) {
      p.kind = Pending::Kind::kWaitingSnapshot;
      next_snapshot_waiters_.emplace_back(s.id, seq);
      start_snapshot();
    } else {
      p.kind = Pending::Kind::kDone;
    }
  }
  p.argv.clear();
  p.argv.shrink_to_fit();
  return true;
}

void Node::run_queries_after(Session& s, size_t i) { run_queries_from(s, i + 1); }

void Node::run_queries_from(Session& s, size_t first) {
  // Called when the write before `first` got its reply: the state is exactly "after it".
  // Queries queued right behind it (errors in between do not matter) run now.
  for (size_t j = first; j < s.pending.size(); j++) {
    Pending& q = s.pending[j];
    if (q.kind == Pending::Kind::kDone) continue;
    if (q.kind != Pending::Kind::kQueryAtApply) break;
    std::vector<std::string_view> argv(q.argv.begin(), q.argv.end());
    q.reply.clear();
    RunResult r = run_now(s, argv, &q.reply);
    HMDB_ASSERT(r == RunResult::kReplied, "a snapshot command was queued to run inside apply");
    q.kind = Pending::Kind::kDone;
    q.argv.clear();
    q.argv.shrink_to_fit();
  }
}

void Node::drain_pending(Session& s) {
  auto flush_done_prefix = [&s] {
    while (!s.pending.empty() && s.pending.front().kind == Pending::Kind::kDone) {
      s.out.append(s.pending.front().reply);
      s.pending.pop_front();
      s.pending_base_seq++;
    }
  };
  flush_done_prefix();
  // Held-back commands whose reason to wait is gone move on, in order.
  bool write_before = false;
  for (size_t i = 0; i < s.pending.size() && s.deferred > 0; i++) {
    Pending& p = s.pending[i];
    if (p.kind == Pending::Kind::kWaitingRead) break;  // everything after it waits for it
    if (p.kind == Pending::Kind::kWaitingWrite) write_before = true;
    if (p.kind == Pending::Kind::kQueryAtApply) {
      // Its write was resolved without running it (cannot happen today; be safe).
      if (!write_before) run_queries_from(s, i);
      continue;
    }
    if (p.kind != Pending::Kind::kDeferred) continue;
    if (!promote_deferred(s, i, write_before)) break;
    if (s.pending[i].kind == Pending::Kind::kWaitingRead) break;
    if (s.pending[i].kind == Pending::Kind::kWaitingWrite) write_before = true;
  }
  flush_done_prefix();
  if (s.unsent() > 0 && !s.in_flush) {
    s.in_flush = true;
    to_flush_.push_back(s.id);
  }
  if ((s.close_after_reply || s.eof) && s.pending.empty() && s.unsent() == 0 && !s.in_flush) {
    s.in_flush = true;  // flush_session closes it
    to_flush_.push_back(s.id);
  }
  // A session that was paused (too much pending) may go on.
  if (s.input_stalled && !s.in_active) {
    s.in_active = true;
    active_.push_back(s.id);
  }
}

void Node::flush_session(Session& s) {
  while (s.unsent() > 0) {
    ssize_t n = ::send(s.fd, s.out.data() + s.out_sent, s.unsent(), MSG_NOSIGNAL);
    if (n > 0) {
      s.out_sent += static_cast<size_t>(n);
      s.output_progress_ms = turn_steady_ms_;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // EPOLLOUT brings us back
    close_session(s.id);  // EPIPE, ECONNRESET: the peer is gone
    return;
  }
  if (s.unsent() == 0) {
    s.out.clear();
    s.out_sent = 0;
    constexpr size_t kKeepOutputCapacityBytes = 64 << 10;
    if (s.out.capacity() > kKeepOutputCapacityBytes) s.out.shrink_to_fit();
    // Done with this client: it asked to quit, broke the protocol, or closed its sending
    // side (a half-closed peer such as `nc` gets every reply before we close).
    if (s.pending.empty() && (s.close_after_reply || (s.eof && s.in.empty()))) {
      close_session(s.id);
      return;
    }
    if ((s.input_stalled || s.readable) && !s.in_active) {
      s.in_active = true;
      active_.push_back(s.id);
    }
  } else if (s.unsent() > kClientOutputLimitBytes) {
    log_line("closing client {} ({}): {} bytes of replies unread (limit {})", s.id, s.address, s.unsent(),
             kClientOutputLimitBytes);
    stats_.output_limit_disconnects++;
    close_session(s.id);
  }
}

void Node::close_session(uint64_t id) {
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return;
  ::close(it->second->fd);  // also removes it from epoll
  sessions_.erase(it);      // waiters naming this id find nothing and drop the reply
}

// ---------------------------------------------------------------------------------------
// Raft: propose, ready, apply

void Node::propose_batch() {
  auto submit = [this](std::string& payload, std::vector<ReplySlot>& slots) -> bool {
    const uint64_t bytes = payload.size();
    raft::ProposeResult r = raft_->propose(raft::EntryType::kNormal, app_->schema_version(), &payload);
    switch (r.error) {
      case raft::ProposeError::kNone: {
        writes_.track(r.index, r.term, bytes, std::move(slots),
                      [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) { end_proposal(i, std::move(p), o); });
        slots.clear();
        stats_.batches++;
        if (housekeeping_in_batch_) {
          housekeeping_index_ = r.index;
          housekeeping_in_batch_ = false;
        }
        return true;
      }
      case raft::ProposeError::kBusy:
        stats_.busy_refusals++;
        return false;
      case raft::ProposeError::kNotLeader:
      case raft::ProposeError::kTransferring:
      case raft::ProposeError::kRejected: {  // only for membership changes; treat as refused
        const std::string reply = r.error == raft::ProposeError::kTransferring
                                      ? "-TRYAGAIN leadership transfer in progress; retry\r\n"
                                      : redirect_reply();
        for (ReplySlot slot : slots) resolve_slot(slot.session, slot.seq, Pending::Kind::kWaitingWrite, reply);
        slots.clear();
        housekeeping_in_batch_ = false;
        return true;
      }
    }
    return true;
  };
  if (refused_payload_) {
    if (!submit(*refused_payload_, refused_slots_)) return;  // still busy: keep waiting
    refused_payload_.reset();
    refused_slots_.clear();
  }
  if (batch_.empty()) return;
  std::string payload = batch_.finish();
  std::vector<ReplySlot> slots;
  slots.swap(batch_slots_);
  if (!submit(payload, slots)) {
    refused_payload_ = std::move(payload);
    refused_slots_ = std::move(slots);
  }
}

void Node::end_proposal(raft::Index index, WriteTracker::Proposal&& p, WriteOutcome outcome) {
  const char* reply = outcome == WriteOutcome::kLost
                          ? "-ERR write lost in a leadership change; retry\r\n"
                          : "-ERR write outcome unknown: leadership changed before it was committed; it may still "
                            "take effect, check before retrying\r\n";
  for (ReplySlot slot : p.slots)
    if (slot.session != 0) resolve_slot(slot.session, slot.seq, Pending::Kind::kWaitingWrite, reply);
  if (index == housekeeping_index_) housekeeping_index_ = 0;  // the next one may be proposed
}

void Node::drive_raft() {
  // The order of raft.h's Ready contract: stage snapshot chunks; start persisting (and
  // install a snapshot); send; apply; answer reads; answer snapshot reads.
  while (raft_->has_ready()) {
    const raft::Role role_before = last_role_;
    // Committed entries by reference into the core's log (no copy of each payload): valid
    // until the next step() or snapshot_saved(), neither of which runs before they are applied.
    raft::Ready rd = raft_->take_ready(raft::ReadyOptions{.committed_by_reference = true});
    for (const raft::SnapshotChunk& c : rd.snapshot_chunks) stage_snapshot_chunk(c);
    if (rd.snapshot) install_snapshot(*rd.snapshot);
    const bool persist = rd.hard_state.has_value() || !rd.entries.empty() || rd.snapshot.has_value();
    if (rd.hard_state) hard_state_ = *rd.hard_state;
    if (rd.snapshot) {
      last_log_index_ = rd.snapshot->meta.index;
      last_log_term_ = rd.snapshot->meta.term;
    }
    // Proposals of ours that this Ready removes from the log (a new leader's entries
    // replace them, or a snapshot replaces the whole log) end now: their clients learn at
    // once that the outcome is unknown, and nobody waits on an index proposed again later.
    if (rd.snapshot || !rd.entries.empty())
      writes_.log_replaced(rd.snapshot ? std::optional<raft::Index>(rd.snapshot->meta.index) : std::nullopt, rd.entries,
                           [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) { end_proposal(i, std::move(p), o); });
    if (!rd.entries.empty()) {
      last_log_index_ = rd.entries.back().index;
      last_log_term_ = rd.entries.back().term;
      for (const auto& e : rd.entries) log_bytes_since_snapshot_ += e.data.size() + kLogRecordOverheadBytes;
      if (options_.clustered()) learn_addresses(rd.entries);
    }
    bool ack_now = false;
    if (persist) {
      if (disk_) {
        if (rd.snapshot) disk_->submit_install(rd.snapshot->meta);
        disk_->submit(rd.hard_state, std::move(rd.entries));
      } else if (options_.durability == Durability::kNone) {
        ack_now = true;  // no log: "persisted" as soon as handed over
      } else {
        // Startup, before the disk thread runs: write and sync right here.
        HMDB_ASSERT(log_for_recovery_ != nullptr, "no log writer during startup");
        HMDB_ASSERT(!rd.snapshot, "snapshot install during startup");
        Status st = log_for_recovery_->append(rd.hard_state ? &*rd.hard_state : nullptr, rd.entries);
        if (st) st = log_for_recovery_->sync();
        if (!st) {
          fatal(kExitDiskFailure, "writing the log in {} failed during startup: {}", options_.dir, st.to_string());
        }
        ack_now = true;
      }
    }
    if (transport_) {
      for (raft::Message& m : rd.messages) transport_->send(std::move(m));
      transport_->flush();
    }
    for (const raft::Entry* e : rd.committed_refs) apply_entry(*e);
    if (!rd.committed_refs.empty()) raft_->applied_to(applied_index_);
    for (const raft::ReadState& rs : rd.read_states) {
      auto it = reads_asked_.find(rs.context);
      if (it == reads_asked_.end()) continue;
      reads_ready_.emplace_back(rs.index, std::move(it->second));
      reads_asked_.erase(it);
    }
    for (const raft::SnapshotReadRequest& req : rd.snapshot_reads) answer_snapshot_read(req);
    if (ack_now) raft_->persisted(raft::PersistAck{last_log_index_, last_log_term_, hard_state_});
    last_role_ = raft_->role();
    if (last_role_ != role_before) on_role_change(role_before);
  }
  if (!reads_ready_.empty()) finish_reads();
}

void Node::on_disk_ack() {
  if (!disk_) return;
  if (auto ack = disk_->take_ack()) raft_->persisted(*ack);
}

void Node::resolve_slot(uint64_t session_id, uint64_t seq, Pending::Kind expected, std::string reply) {
  Session* s = find_session(session_id);
  if (!s) return;
  HMDB_ASSERT(seq >= s->pending_base_seq && seq - s->pending_base_seq < s->pending.size(), "reply slot out of range");
  const size_t i = seq - s->pending_base_seq;
  Pending& p = s->pending[i];
  HMDB_ASSERT(p.kind == expected, "reply slot in the wrong state");
  p.reply = std::move(reply);
  p.kind = Pending::Kind::kDone;
  if (expected == Pending::Kind::kWaitingWrite) {
    s->waiting_writes--;
    run_queries_after(*s, i);
  }
  if (!s->in_drain) {
    s->in_drain = true;
    to_drain_.push_back(s->id);
  }
}

void Node::apply_entry(const raft::Entry& e) {
  HMDB_ASSERT(e.index == applied_index_ + 1, "apply out of order: entry %llu after %llu",
              static_cast<unsigned long long>(e.index), static_cast<unsigned long long>(applied_index_));
  std::optional<WriteTracker::Proposal> ours;
  if (auto tracked = writes_.take_applied(e.index, e.term)) {
    if (tracked->second == WriteOutcome::kApplied) ours = std::move(tracked->first);
    else end_proposal(e.index, std::move(tracked->first), tracked->second);
  }
  const WriteTracker::Proposal* w = ours ? &*ours : nullptr;
  if (e.type == raft::EntryType::kNormal) {
    if (e.schema_version > app_->schema_version()) {
      // The binary is older than the data, which is sound: the same code as a snapshot of a
      // newer schema at startup (recovery.cc), not kExitCorruption.
      fatal(kExitStartupFailure,
            "log entry {} was written by schema version {} of app {}, this binary has version {}. "
            "Upgrade the binary; nothing was applied past index {}.",
            e.index, e.schema_version, app_->app_name(), app_->schema_version(), applied_index_);
    }
    core::BatchReader reader(e.data);
    // A second reader runs kPrefetchAheadCommands in front and hints the app to prefetch
    // what those commands will touch, so their cache misses overlap with this one's work.
    core::BatchReader ahead(e.data);
    const bool prefetching = reader.count() > 1;
    for (size_t i = 0; prefetching && i < kPrefetchAheadCommands && ahead.next(prefetch_argv_); i++)
      app_->prefetch(prefetch_argv_);
    if (!reader.ok()) {
      fatal(kExitCorruption,
            "log entry {} (term {}) holds a malformed command batch; the log passed its checksum, so the writer "
            "was broken. Run `hmdb log verify {}`.", e.index, e.term, options_.dir);
    }
    ApplyContext ctx;
    ctx.now_ms = reader.leader_time_ms();
    ctx.index = e.index;
    ctx.schema_version = e.schema_version;
    size_t k = 0;
    while (reader.next(apply_argv_)) {
      if (prefetching && ahead.next(prefetch_argv_)) app_->prefetch(prefetch_argv_);
      Pending* slot = nullptr;
      Session* s = nullptr;
      if (w && k < w->slots.size() && w->slots[k].session != 0) {
        s = find_session(w->slots[k].session);
        if (s) {
          uint64_t seq = w->slots[k].seq;
          HMDB_ASSERT(seq >= s->pending_base_seq && seq - s->pending_base_seq < s->pending.size(), "reply slot out of range");
          slot = &s->pending[seq - s->pending_base_seq];
          HMDB_ASSERT(slot->kind == Pending::Kind::kWaitingWrite, "reply slot in the wrong state");
        }
      }
      if (slot) {
        Reply reply(&slot->reply);
        app_->apply(apply_argv_, ctx, reply);
        slot->kind = Pending::Kind::kDone;
        s->waiting_writes--;
        run_queries_after(*s, w->slots[k].seq - s->pending_base_seq);
        if (!s->in_drain) {
          s->in_drain = true;
          to_drain_.push_back(s->id);
        }
      } else {
        scratch_reply_.clear();
        Reply reply(&scratch_reply_);
        app_->apply(apply_argv_, ctx, reply);
      }
      k++;
    }
    if (!reader.ok()) {
      fatal(kExitCorruption, "log entry {} (term {}) holds a malformed command batch after {} commands. Run `hmdb log "
            "verify {}`.", e.index, e.term, k, options_.dir);
    }
    HMDB_ASSERT(!w || k == w->slots.size(), "batch at index %llu has %zu commands, %zu waiters",
                static_cast<unsigned long long>(e.index), k, w ? w->slots.size() : size_t{0});
  }
  if (e.type == raft::EntryType::kConfChange) apply_conf_change(e);
  if (w && e.type != raft::EntryType::kNormal) {
    // A membership change proposed by CLUSTER ADDLEARNER/PROMOTE/REMOVE: committed.
    for (ReplySlot slot : w->slots)
      if (slot.session != 0) resolve_slot(slot.session, slot.seq, Pending::Kind::kWaitingWrite, "+OK\r\n");
  }
  applied_index_ = e.index;
  applied_term_ = e.term;
  if (housekeeping_index_ != 0 && applied_index_ >= housekeeping_index_) housekeeping_index_ = 0;
  replay_progress();
}

void Node::disconnect_stalled_readers() {
  const uint64_t now = steady_ms();
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
  if (draining_ || raft_->role() != raft::Role::kLeader) return;
  // One housekeeping command at a time: the next one is computed after the last applied.
  if (housekeeping_in_batch_ || housekeeping_index_ != 0) return;
  auto command = app_->housekeeping(wall_clock_ms());
  if (!command || command->empty()) return;
  std::vector<std::string_view> argv(command->begin(), command->end());
  std::string error;
  if (!app_->validate(argv, &error)) {
    log_line("warning: the app's housekeeping command {} is invalid: {}", (*command)[0], error);
    return;
  }
  batch_write(0, argv, 0);
  housekeeping_in_batch_ = true;
}

}  // namespace hmdb::server
