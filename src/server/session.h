// server/session.h — one client connection: its buffers, its parser and its reply queue.
//
// Replies go out strictly in request order. A session's commands flow through `pending`:
//   - a write that was validated and batched waits there (kWaitingWrite) until its log entry
//     is applied; the apply fills its reply in place (routed by sequence number);
//   - a query (or a server command) that arrives behind a waiting write of the same session
//     is copied and queued (kQueryAtApply); it runs the moment that write has been applied,
//     inside the apply loop, so it sees exactly the session's earlier writes and none of
//     its later ones, while later writes still join the same batch (pipelines of mixed
//     reads and writes cost one log entry, not one per read);
//   - SNAPSHOT/SAVE/BGSAVE behind a waiting write is held back (kDeferred) until the write
//     is applied (a snapshot must be taken between entries, not inside one), and everything
//     after it waits too;
//   - kDone holds a finished reply that may not overtake earlier ones.
// With nothing pending, queries run immediately and their replies go straight to `out`.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "net/resp.h"

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
  void release() { buf_.reset(); cap_ = start_ = end_ = 0; }

 private:
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t start_ = 0;
  size_t end_ = 0;
};

struct Pending {
  // kWaitingRead: a query on the leader of a cluster, waiting for raft's read index (and
  // the apply up to it) to run; everything after it in the session waits too.
  enum class Kind : uint8_t { kWaitingWrite, kQueryAtApply, kWaitingSnapshot, kDeferred, kWaitingRead, kDone };
  Kind kind = Kind::kDone;
  std::string reply;              // kDone: the RESP reply; kWaitingWrite: filled by apply
  std::vector<std::string> argv;  // kDeferred, kQueryAtApply: the command, copied out of the read buffer
};

struct Session {
  uint64_t id = 0;
  int fd = -1;
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

  std::string out;
  size_t out_sent = 0;
  uint64_t output_progress_ms = 0;  // steady clock: last time send() took bytes (or creation)
  bool close_after_reply = false;  // QUIT or protocol error: close once `out` is written

  std::deque<Pending> pending;
  uint64_t pending_base_seq = 0;  // sequence number of pending.front()
  uint64_t next_seq = 0;          // sequence number of the next pending item
  uint64_t deferred = 0;          // how many kDeferred items are in `pending`
  uint64_t waiting_writes = 0;    // how many kWaitingWrite items are in `pending`
  uint64_t waiting_reads = 0;     // how many kWaitingRead items are in `pending`
  bool readonly = false;          // READONLY: a follower serves this client's queries (stale)

  // Membership of the loop's per-turn work lists (avoids duplicates).
  bool in_active = false;
  bool in_flush = false;
  bool in_drain = false;

  explicit Session(uint64_t max_bulk) : parser(max_bulk) {}
  uint64_t unsent() const { return out.size() - out_sent; }
};

}  // namespace hmdb::server
