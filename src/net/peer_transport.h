// net/peer_transport.h — carries raft::Message between nodes over TCP (net/peer_protocol.h
// frames). Non-blocking and single-threaded: the server's event loop drives it.
//
// Connection model. Each node dials ONE outbound connection per peer and only writes on it
// (a Hello first, then message frames). Connections a node accepts are only read from; it
// never writes on them. So A->B traffic flows only on the connection A dialed, and a
// firewall rule on (A -> B's peer port) cuts exactly that direction: asymmetric partitions
// can be staged with nftables. Dialed sockets are bound to listen_host (port 0) first, so
// rules by source IP see the node's peer IP.
//
// Failure handling. Raft retransmits, so the transport never retries a message: when an
// outbound connection fails (refused, reset, connect timeout, or no write progress for
// kWriteStallTimeoutMs while bytes are queued) its queue is dropped (counted) and it is
// re-dialed after a backoff that doubles from kReconnectBackoffInitialMs to
// kReconnectBackoffMaxMs. While a peer has no connection and none is being dialed,
// messages to it are dropped at once, so a dead peer cannot pile up stale messages.
//
// Refusals (a log line, the connection closed, nothing delivered, counted): bad magic,
// version, reserved bits, length or checksum; another cluster id; Hello.to != self; a
// sender outside set_members() (when that is not empty); a message before the Hello or a
// second Hello; message.from != Hello.from or message.to != self.
//
// Event loop integration. fd() is an epoll fd of its own (listener, every socket and a
// timerfd for reconnects and timeouts). Add it level-triggered to the server's epoll and
// call poll() when it is readable (calling it more often is harmless); call flush() once
// per loop turn after send()s. Nothing ever blocks, and work per call is bounded.
//
// Addresses are numeric IPv4 "a.b.c.d:port" or "localhost:port" (no DNS in the loop).
//
// Thread-safety: none; one thread owns the transport.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "net/peer_protocol.h"
#include "raft/types.h"

namespace hmdb::net {

// Queued bytes per peer beyond which send() drops. A follower that cannot keep up is caught
// up by raft (retransmit or snapshot); this only bounds memory.
inline constexpr uint64_t kPeerQueueBytesMax = 256ull << 20;
// Reconnect backoff: first retry after 50 ms, doubling to 1 s. A connection that stayed
// up kConnectionStableMs resets it, so a peer that accepts and drops at once (refusing
// us) is retried at most once a second.
inline constexpr uint64_t kReconnectBackoffInitialMs = 50;
inline constexpr uint64_t kReconnectBackoffMaxMs = 1000;
inline constexpr uint64_t kConnectionStableMs = 1000;
// A dial that has not completed in this time is abandoned (SYNs dropped by a partition).
inline constexpr uint64_t kConnectTimeoutMs = 1000;
// Bytes queued and none written for this long: the peer is unreachable (packets dropped)
// or not reading. The connection is closed and its queue dropped.
inline constexpr uint64_t kWriteStallTimeoutMs = 3000;
// An accepted connection must complete its Hello within this time.
inline constexpr uint64_t kHelloTimeoutMs = 5000;
// Accepted connections at once; beyond it new ones are closed at once. A node keeps only
// the newest connection per sender, so stale ones do not accumulate.
inline constexpr size_t kMaxInboundConnections = 64;
// Nodes the transport keeps state for (addresses, counters).
inline constexpr size_t kMaxPeers = 1024;
// Bounded work per poll(): bytes read per connection, connections accepted, events taken.
inline constexpr size_t kReadBytesPerPollMax = 4u << 20;
inline constexpr size_t kReadChunkBytes = 64u << 10;
inline constexpr int kAcceptsPerPollMax = 16;
inline constexpr int kEventsPerPollMax = 64;
// After accept() fails for lack of fds or memory, the listener is ignored this long.
inline constexpr uint64_t kAcceptPauseMs = 100;
// Log rate limit, per peer (and one budget for connections not yet identified): at most
// kLogLinesPerWindow lines per kLogWindowMs; the next line after a quiet window reports how
// many were suppressed.
inline constexpr uint64_t kLogWindowMs = 10000;
inline constexpr uint32_t kLogLinesPerWindow = 5;

struct PeerTransportOptions {
  uint64_t cluster_id = 0;  // peer::cluster_id_from_name(--cluster-id)
  raft::NodeId self = raft::kNoNode;
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 0;  // 0: ephemeral (tests); see port()
  std::string advertise_peer_addr;    // sent in our Hello; "": listen_host:port()
  std::string advertise_client_addr;  // sent in our Hello
  uint64_t max_queue_bytes_per_peer = kPeerQueueBytesMax;
  // One line per refusal/connect/disconnect, rate-limited per peer. May be empty.
  std::function<void(const std::string&)> log;
};

class PeerTransport {
 public:
  struct PeerStats {
    raft::NodeId id = raft::kNoNode;
    std::string addr;  // the address dialed (set_address, else learnt from its Hello)
    bool connected = false;  // our outbound connection is established
    uint64_t msgs_sent = 0, bytes_sent = 0, msgs_dropped = 0, msgs_received = 0, frames_refused = 0,
             queued_bytes = 0;
  };

  // Binds and listens on listen_host:listen_port. REQUIRES: self != 0.
  static Status open(const PeerTransportOptions& options, std::unique_ptr<PeerTransport>* out);
  ~PeerTransport();
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;

  int fd() const { return epoll_fd_; }
  uint16_t port() const { return port_; }

  // Where to dial node id ("host:port"); "" forgets it and closes our connection to it.
  // A changed address closes the old connection and dials the new one. Our own id may be
  // given (it is remembered for peer_addr_of, never dialed).
  void set_address(raft::NodeId id, const std::string& peer_addr);
  // Accepted senders; EMPTY = any node with our cluster id (a joining node has no
  // membership yet). Connections from nodes no longer listed are closed.
  void set_members(std::vector<raft::NodeId> members);

  // Queues msg for msg.to. Dropped and counted when no address is known, when the peer has
  // no connection (and none being dialed; nothing is dialed before the first poll()), or
  // when its queue would exceed the bound.
  void send(raft::Message msg);
  // Writes every peer's queue as far as the sockets take it.
  void flush();
  // Accepts, reads and decodes (appending to *received), writes, and (re)connects.
  // now_ms: any monotonic clock in milliseconds; used for backoff and timeouts.
  void poll(uint64_t now_ms, std::vector<raft::Message>* received);

  // Learnt from that node's Hello (or null).
  const std::string* client_addr_of(raft::NodeId id) const;
  // set_address's, else learnt from its Hello (or null).
  const std::string* peer_addr_of(raft::NodeId id) const;

  std::vector<PeerStats> stats() const;
  // Frames refused on connections whose sender is not a known peer (no Hello yet, or a
  // Hello that was itself refused).
  uint64_t frames_refused_unidentified() const { return refused_unidentified_; }

 private:
  struct LogBudget {
    uint64_t window_start_ms = 0;
    uint32_t lines = 0;
    uint64_t suppressed = 0;
  };
  // One queued frame: how many bytes, and whether it is a message (not our Hello).
  struct QueuedFrame {
    size_t bytes;
    bool message;
  };
  struct Peer {
    raft::NodeId id = raft::kNoNode;
    std::string dial_addr;    // from set_address
    std::string hello_peer_addr, hello_client_addr;  // from its Hello
    bool has_hello_peer_addr = false, has_hello_client_addr = false;
    // Outbound connection.
    enum class State : uint8_t { kIdle, kConnecting, kConnected } state = State::kIdle;
    int fd = -1;
    uint64_t conn = 0;  // epoll token of fd
    bool want_write = false;  // EPOLLOUT registered
    uint64_t next_dial_ms = 0;
    uint64_t backoff_ms = kReconnectBackoffInitialMs;
    uint64_t connect_deadline_ms = 0;
    uint64_t connected_at_ms = 0;
    uint64_t last_write_progress_ms = 0;
    uint64_t failed_dials = 0;  // in a row, since the last established connection
    std::string out;  // frames not yet written: out[out_offset, size)
    size_t out_offset = 0;
    size_t written_in_front = 0;  // bytes of frames.front() already written
    std::deque<QueuedFrame> frames;
    PeerStats stats;
    LogBudget log_budget;
  };
  struct Inbound {
    int fd = -1;
    std::string remote;  // "ip:port" of the other end
    uint64_t accepted_ms = 0;
    raft::NodeId from = raft::kNoNode;  // set by its Hello
    std::string buf;
    peer::FrameParser parser{peer::kMaxHelloBodyBytes};
  };

  explicit PeerTransport(PeerTransportOptions options);
  Status listen();

  Peer* find_peer(raft::NodeId id);
  const Peer* find_peer(raft::NodeId id) const;
  Peer* peer_for(raft::NodeId id);  // creates it while under kMaxPeers; else null
  const std::string* dial_addr_of(const Peer& p) const;
  bool should_dial(const Peer& p) const;  // has an address and is not ourselves

  void dial(Peer* p);
  void close_outbound(Peer* p, const std::string& why);
  void on_outbound_event(Peer* p, uint32_t events);
  void write_outbound(Peer* p);
  void set_want_write(Peer* p, bool want);

  void accept_all();
  void read_inbound(uint64_t conn);
  // Returns false if the connection was refused (and closed).
  bool handle_frame(uint64_t conn, Inbound* in, const peer::Frame& frame, std::vector<raft::Message>* received);
  bool refuse(uint64_t conn, Inbound* in, const std::string& why);  // always false
  void close_inbound(uint64_t conn);

  void check_timers();
  void rearm_timer();
  void log_for(LogBudget* budget, const std::string& line);

  PeerTransportOptions options_;
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int timer_fd_ = -1;
  uint16_t port_ = 0;
  uint64_t now_ms_ = 0;
  // Deadlines need the caller's clock: nothing is dialed before the first poll().
  bool clock_known_ = false;
  uint64_t armed_deadline_ms_ = UINT64_MAX;  // what timer_fd_ is set to (UINT64_MAX: disarmed)
  uint64_t next_conn_ = 2;  // epoll tokens: 0 listener, 1 timer, then one per connection
  std::string hello_peer_addr_;
  std::vector<raft::NodeId> members_;  // sorted
  std::map<raft::NodeId, Peer> peers_;
  std::unordered_map<uint64_t, raft::NodeId> outbound_;  // token -> peer
  std::unordered_map<uint64_t, Inbound> inbound_;        // token -> connection
  std::vector<raft::Message>* received_ = nullptr;       // during poll()
  uint64_t refused_unidentified_ = 0;
  uint64_t accept_paused_until_ms_ = 0;  // 0: the listener is watched
  LogBudget unidentified_log_budget_;
};

}  // namespace hmdb::net
