// server/client_io.cc — client sockets: accept, read, parse, send, close.
//
// Bytes in: a readable socket is read (at most kReadBytesPerTurnMax per turn, and at most
// kTurnReadBytesMax from all sockets together: the loop in node.cc leaves the rest for the
// next turn, first), the RESP
// parser finds complete commands in the buffer (up to kParseAheadCommands at a time, so the
// app can prefetch their keys), and each goes to Replica::command, in order. Replies out:
// the replica moves finished replies to the session's output in request order
// (replies_ready), and they are sent with send(2); what the socket does not take waits for
// EPOLLOUT. Back-pressure: a session with too many pending commands or too many unsent
// bytes is not parsed further (its bytes wait in the kernel), and the whole node stops
// reading while the replica or the disk is busy.
//
// TLS (--tls-port): a session accepted there carries an OpenSSL connection (net/tls.h) and
// reads and writes through it (read_session_tls, flush_session_tls); the handshake happens
// inside those reads and writes. Plaintext sessions take one predicted branch more.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/address.h"
#include "common/assert.h"
#include "hmdb/app.h"
#include "server/logging.h"
#include "server/node.h"

namespace hmdb::server {

namespace {

// A client whose unparsed input exceeds this is disconnected (Redis' client-query-buffer-limit).
constexpr uint64_t kClientQueryBufferLimitBytes = 1ull << 30;
// Largest single read(2) while a big bulk is arriving.
constexpr uint64_t kReadChunkBytesMax = 64ull << 20;
// A session gives its read buffer back whenever it has parsed all it read (10,000 idle
// connections would otherwise hold 64 KiB each); at pipeline 1 that is after every request.
// The loop keeps up to this many released buffers of kReadChunkBytes for the next reads
// (4 MiB), so such a session does not allocate and free 64 KiB per request (~360
// instructions under callgrind, 7 % of a SET's at 50 clients).
constexpr size_t kPooledReadBuffersMax = 64;
// The loop thread's pool (ReadBuffer is only used there).
thread_local std::vector<std::unique_ptr<char[]>> pooled_read_buffers;

}  // namespace

// ---------------------------------------------------------------------------------------
// ReadBuffer

char* ReadBuffer::reserve(size_t n) {
  if (cap_ - end_ >= n) return buf_.get() + end_;
  if (!buf_ && n <= kReadChunkBytes && !pooled_read_buffers.empty()) {
    buf_ = std::move(pooled_read_buffers.back());
    pooled_read_buffers.pop_back();
    cap_ = kReadChunkBytes;
    start_ = end_ = 0;
    return buf_.get();
  }
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

void ReadBuffer::release() {
  if (buf_ && cap_ == kReadChunkBytes && pooled_read_buffers.size() < kPooledReadBuffersMax)
    pooled_read_buffers.push_back(std::move(buf_));
  buf_.reset();
  cap_ = start_ = end_ = 0;
}

size_t ReadBuffer::pooled_buffers() { return pooled_read_buffers.size(); }

void ReadBuffer::consume(size_t n) {
  HMDB_ASSERT(n <= size(), "consume past the end");
  start_ += n;
  if (start_ == end_) start_ = end_ = 0;
}

// ---------------------------------------------------------------------------------------
// Sessions and their work lists

core::ClientSession* Node::session(uint64_t id) {
  Session* s = find_session(id);
  return s ? &s->client : nullptr;
}

void Node::schedule_read(Session& s) {
  if (s.in_active) return;
  s.in_active = true;
  active_.push_back(s.id());
}

void Node::schedule_flush(Session& s) {
  if (s.in_flush) return;
  s.in_flush = true;
  to_flush_.push_back(s.id());
}

void Node::replies_ready(core::ClientSession& c) {
  Session* s = static_cast<Session*>(c.owner);  // the replica found c through session(): it is open
  if (s->pending_head < s->pending_commands.size()) replies_left(*s);
  if (s->unsent() > 0) schedule_flush(*s);
  // Nothing more is owed to a client that asked to quit, broke the protocol or closed its
  // side: flush_session closes it.
  if ((s->close_after_reply || s->eof) && s->pending() == 0 && s->unsent() == 0) schedule_flush(*s);
  // A session that was paused (too much pending) may go on.
  if (s->input_stalled) schedule_read(*s);
}

uint64_t Node::unsent_bytes(const core::ClientSession& c) const {
  return static_cast<const Session*>(c.owner)->unsent();
}

void Node::close_after_replies(core::ClientSession& c) {
  Session* s = static_cast<Session*>(c.owner);
  s->close_after_reply = true;  // nothing more is read; flush_session closes it once all is sent
  schedule_flush(*s);
}

bool Node::session_paused(const Session& s) const {
  return s.close_after_reply || s.pending() >= kClientPendingCommandsMax || s.unsent() >= kClientOutputPauseBytes;
}

void Node::reply_and_close(Session& s, std::string_view error) {
  s.in.release();
  s.parser.reset();
  s.close_after_reply = true;
  std::string reply;
  Reply(&reply).error(error);
  replica_->reply(s.client, reply);
}

// ---------------------------------------------------------------------------------------
// Accept, read, parse

void Node::accept_clients(int listen_fd, bool tls) {
  for (int i = 0; i < kAcceptsPerTurnMax; i++) {
    sockaddr_storage addr{};
    socklen_t len = sizeof addr;
    int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&addr), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: use the spare one to accept and close the connection, so the
        // listener does not stay readable forever (and the client learns quickly).
        ::close(reserve_fd_);
        int shed = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
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
      if (!tls) ::send(fd, kMsg, sizeof kMsg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);  // a TLS client could not read it
      ::close(fd);
      stats_.rejected_connections++;
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    auto s = std::make_unique<Session>(options_.max_bulk_bytes);
    s->client.id = next_session_id_++;
    s->client.owner = s.get();
    s->fd = fd;
    if (tls) {
      s->tls.reset(tls_clients_->connect_fd(fd));
      if (!s->tls) {
        log_line("tls: cannot make a connection state (out of memory?); closing a client");
        ::close(fd);
        continue;
      }
    }
    s->address = SocketAddress::from(reinterpret_cast<const sockaddr*>(&addr), len).to_string();
    s->created_ms = wall_ms();
    s->output_progress_ms = monotonic_ms();
    s->last_command_ms = s->created_ms;
    sign_in_default(s->client);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = s->id();
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      log_line("epoll_ctl: {}", std::strerror(errno));
      ::close(fd);
      continue;
    }
    stats_.connections_received++;
    sessions_.emplace(s->id(), std::move(s));
  }
}

void Node::read_session(Session& s) {
  if (s.tls) [[unlikely]] {
    read_session_tls(s);
    return;
  }
  uint64_t budget = std::min(kReadBytesPerTurnMax, turn_read_left_);
  while (budget > 0) {
    uint64_t want = kReadChunkBytes;
    uint64_t hint = s.parser.bytes_wanted();
    if (hint > s.in.size()) want = std::max<uint64_t>(want, std::min<uint64_t>(hint - s.in.size(), kReadChunkBytesMax));
    char* p = s.in.reserve(want);
    ssize_t n = ::read(s.fd, p, want);
    if (n > 0) {
      s.in.commit(static_cast<size_t>(n));
      budget -= std::min<uint64_t>(budget, static_cast<uint64_t>(n));
      turn_read_left_ -= std::min<uint64_t>(turn_read_left_, static_cast<uint64_t>(n));
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
    log_line("closing client {} ({}): query buffer over {} bytes", s.id(), s.address, s.in.size());
    reply_and_close(s, "ERR Protocol error: query buffer limit exceeded");
  }
}

void Node::read_session_tls(Session& s) {
  uint64_t budget = std::min(kReadBytesPerTurnMax, turn_read_left_);
  while (budget > 0) {
    uint64_t want = kReadChunkBytes;
    uint64_t hint = s.parser.bytes_wanted();
    if (hint > s.in.size()) want = std::max<uint64_t>(want, std::min<uint64_t>(hint - s.in.size(), kReadChunkBytesMax));
    char* p = s.in.reserve(want);
    net::TlsResult r = net::tls_read(s.tls.get(), p, want);
    if (r.io == net::TlsIo::kOk) {
      // A read returns one record at most, and OpenSSL may hold more than the socket does:
      // read on until it says it wants the socket (the edge-triggered socket's next edge).
      s.in.commit(r.bytes);
      budget -= std::min<uint64_t>(budget, r.bytes);
      turn_read_left_ -= std::min<uint64_t>(turn_read_left_, r.bytes);
      continue;
    }
    s.readable = false;  // kWantRead / kWantWrite: the next epoll event brings us back
    if (r.io == net::TlsIo::kClosed) s.eof = true;
    if (r.io == net::TlsIo::kError) {
      tls_failed(s, r.error);  // closes it
      return;
    }
    break;
  }
  if (s.in.size() > kClientQueryBufferLimitBytes && s.in.size() > 2 * options_.max_bulk_bytes) {
    log_line("closing client {} ({}): query buffer over {} bytes", s.id(), s.address, s.in.size());
    reply_and_close(s, "ERR Protocol error: query buffer limit exceeded");
  }
}

void Node::tls_failed(Session& s, const std::string& why) {
  const bool handshake = !net::tls_handshake_done(s.tls.get());
  if (handshake) stats_.tls_handshake_failures++;
  const uint64_t now = monotonic_ms();
  if (now - tls_log_window_start_ms_ >= kTlsFailureLogWindowMs) {
    if (tls_log_suppressed_ > 0)
      log_line("tls: {} more refused or broken TLS connections were not logged", tls_log_suppressed_);
    tls_log_window_start_ms_ = now;
    tls_log_lines_ = 0;
    tls_log_suppressed_ = 0;
  }
  if (tls_log_lines_ < kTlsFailureLogLinesPerWindow) {
    tls_log_lines_++;
    log_line("tls: {} client {} ({}): {}", handshake ? "refused" : "closing", s.id(), s.address, why);
  } else {
    tls_log_suppressed_++;
  }
  // Nothing more may be written on a broken connection: no close_notify either.
  net::tls_discard(s.tls.release());
  close_session(s.id());
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
    size_t ran = 0;
    for (size_t i = 0; i < parsed; i++, ran++) {
      if (i > 0 && (s.close_after_reply || session_paused(s) || paused())) {
        // Stop here; the loop's top handles why. The parser may hold a later command's
        // partial state, but parsing resumes at this command: forget it.
        s.parser.reset();
        error_next = false;
        break;
      }
      if (!parse_ahead_[i].argv.empty()) run_command(s, parse_ahead_[i].argv);
      s.in.consume(parse_ahead_[i].consumed);
    }
    group_ran(s, ran);  // latency, SLOWLOG (stage_timing.cc)
    if (parsed > 0 && !error_next) continue;
    if (parsed > 0) {
      s.parser.reset();  // the malformed command is parsed again, first, and answered below
      continue;
    }
    if (!error_next) break;  // kNeedMore
    // kError on the first command: the stream cannot be trusted any more; answer (after
    // earlier replies) and close.
    stats_.protocol_errors++;
    reply_and_close(s, error);
    break;
  }
  if (s.in.empty() && s.in.capacity() > 0) s.in.release();
}

void Node::run_command(Session& s, Args argv) {
  s.commands++;
  s.last_command_ms = turn_wall_ms_;
  // QUIT: nothing after it is read; the connection closes once its reply is out.
  if (argv.size() == 1 && iequals(argv[0], "QUIT")) s.close_after_reply = true;
  const size_t pending_before = s.pending();
  const uint64_t writes_before = replica_->stats().writes;
  replica_->command(s.client, argv);
  // Latency (stage_timing.cc): a command answered at once is timed at the end of its group
  // (group_ran); one whose reply waits in a slot (a write, or anything behind one), when
  // the reply leaves (replies_left).
  const uint32_t id = latency_->command_id(argv[0]);
  if (s.pending() > pending_before) {
    s.pending_commands.push_back(Session::PendingCommand{id, turn_start_us_});
  } else {
    group_answered_[group_answered_count_++] = id;  // at most kParseAheadCommands a group
  }
  if (replica_->stats().writes != writes_before) group_writes_++;
}

// ---------------------------------------------------------------------------------------
// Send, close

void Node::flush_session(Session& s) {
  if (s.tls) [[unlikely]] {
    flush_session_tls(s);
    return;
  }
  std::string& out = s.out();
  while (s.unsent() > 0) {
    ssize_t n = ::send(s.fd, out.data() + s.out_sent, s.unsent(), MSG_NOSIGNAL);
    if (n > 0) {
      s.out_sent += static_cast<size_t>(n);
      s.output_progress_ms = turn_steady_ms_;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;  // EPOLLOUT brings us back
    close_session(s.id());  // EPIPE, ECONNRESET: the peer is gone
    return;
  }
  // A reader that keeps up only partly never empties the buffer, which then grows with all
  // that was ever sent (a big reply's tens of MB, copied whole at each doubling): drop the
  // sent bytes once they are many and at least as many as the unsent ones (so the move
  // costs at most what was sent).
  if (s.out_sent >= kOutputCompactBytes && s.out_sent >= s.unsent()) {
    out.erase(0, s.out_sent);
    s.out_sent = 0;
  }
  flush_done(s);
}

void Node::flush_session_tls(Session& s) {
  std::string& out = s.out();
  while (s.unsent() > 0) {
    // A retry after kWantWrite passes the same bytes or more (the output only grows until
    // it is all sent), as OpenSSL requires; the buffer may have moved (net/tls.cc's mode).
    net::TlsResult r = net::tls_write(s.tls.get(), out.data() + s.out_sent, s.unsent());
    if (r.io == net::TlsIo::kOk) {
      s.out_sent += r.bytes;
      s.output_progress_ms = turn_steady_ms_;
      continue;
    }
    if (r.io == net::TlsIo::kWantRead || r.io == net::TlsIo::kWantWrite) break;  // epoll brings us back
    if (r.io == net::TlsIo::kError) {
      tls_failed(s, r.error);
      return;
    }
    close_session(s.id());  // the peer is gone
    return;
  }
  flush_done(s);
}

void Node::flush_done(Session& s) {
  std::string& out = s.out();
  if (s.unsent() == 0) {
    out.clear();
    s.out_sent = 0;
    constexpr size_t kKeepOutputCapacityBytes = 64 << 10;
    if (out.capacity() > kKeepOutputCapacityBytes) out.shrink_to_fit();
    // Done with this client: it asked to quit, broke the protocol, or closed its sending
    // side (a half-closed peer such as `nc` gets every reply before we close).
    if ((s.pending() == 0 && (s.close_after_reply || (s.eof && s.in.empty()))) || (s.eof && s.client.blocking)) {
      close_session(s.id());
      return;
    }
    if (s.input_stalled || s.readable) schedule_read(s);
  } else if (s.unsent() > kClientOutputLimitBytes) {
    log_line("closing client {} ({}): {} bytes of replies unread (limit {})", s.id(), s.address, s.unsent(),
             kClientOutputLimitBytes);
    stats_.output_limit_disconnects++;
    close_session(s.id());
  }
}

void Node::close_session(uint64_t id) {
  Session* s = sessions_.find(id);
  if (!s) return;
  s->tls.reset();                     // a close_notify if it can go now, before the descriptor goes
  ::close(s->fd);                     // also removes it from epoll
  replica_->session_closed(s->client);  // its subscriptions go
  sessions_.erase(id);                // waiters naming this id find nothing and drop the reply
  if (forwarder_) forwarder_->session_closed(id);  // what it had not forwarded yet is dropped
}

}  // namespace hmdb::server
