// server/session.h — one client connection: its socket state, its read buffer and parser,
// and its replica-side session (core::ClientSession: the replies in request order).
//
// What a command does and in what order replies leave is the replica's business
// (core/replica.h, core/reply_queue.h); this is the connection around it: bytes in,
// finished replies (client.replies.out()) out, back-pressure and closing.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/replica.h"
#include "net/resp.h"
#include "net/tls.h"

namespace hmdb::server {

// A growable byte buffer with a consumed prefix (read buffer). Allocated on first use, so
// 10,000 idle connections cost no buffer memory.
class ReadBuffer {
 public:
  char* data() { return buf_.get() + start_; }
  size_t size() const { return end_ - start_; }
  bool empty() const { return start_ == end_; }
  // Room for at least n more bytes at the end; returns where to write.
  char* reserve(size_t n);
  void commit(size_t n) { end_ += n; }
  void consume(size_t n);
  size_t capacity() const { return cap_; }
  // Gives the buffer up (an idle session holds none); one of kReadChunkBytes goes to the
  // loop's pool, where the next reserve() of any session finds it (client_io.cc).
  void release();
  // Buffers in this thread's pool (tests).
  static size_t pooled_buffers();

 private:
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t start_ = 0;
  size_t end_ = 0;
};

struct Session {
  core::ClientSession client;  // its id is the session's id
  int fd = -1;
  // Set for a connection to the TLS port (net/tls.h): its reads and writes go through it.
  // Freed before fd is closed (close_session).
  net::TlsConnection tls;
  std::string address;  // peer "ip:port"
  std::string name;     // CLIENT SETNAME
  std::string lib_name, lib_version;
  uint64_t created_ms = 0;
  uint64_t last_command_ms = 0;
  uint64_t commands = 0;

  ReadBuffer in;
  net::RespParser parser;
  bool readable = false;      // edge-triggered: the socket may have more bytes
  bool input_stalled = false; // complete commands are buffered but were not parsed (paused)
  bool eof = false;           // the peer closed its side
  bool hangup = false;        // epoll reported RDHUP/HUP/ERR: read until read() returns 0

  size_t out_sent = 0;              // bytes of client.replies.out() already sent
  uint64_t output_progress_ms = 0;  // steady clock: last time send() took bytes (or creation)
  bool close_after_reply = false;   // QUIT or protocol error: close once every reply is sent

  // Commands whose replies wait in slots (client.replies), oldest first from
  // pending_head: for their latency once the replies leave (server/latency.h). One record
  // per command that took a slot, so their count follows pending(). Allocated on first use.
  struct PendingCommand {
    uint32_t command;   // LatencyStats::command_id
    uint64_t start_us;  // the start of the loop turn that read it
  };
  std::vector<PendingCommand> pending_commands;
  size_t pending_head = 0;

  // Membership of the loop's per-turn work lists (avoids duplicates).
  bool in_active = false;
  bool in_flush = false;

  explicit Session(uint64_t max_bulk) : parser(max_bulk) {}
  uint64_t id() const { return client.id; }
  std::string& out() { return client.replies.out(); }
  uint64_t unsent() const { return client.replies.out().size() - out_sent; }
  size_t pending() const { return client.replies.size(); }
};

}  // namespace hmdb::server
