// net/peer_transport.h — carries raft::Message between nodes over TCP (net/peer_protocol.h
// frames). Non-blocking and single-threaded: the server's event loop drives it.
//
// Connection model. Each node dials ONE outbound connection per peer and only writes on it
// (a Hello first, then message frames). Connections a node accepts are only read from; it
// never writes on them, except one refusal frame before it closes one it refuses (below).
// So A->B traffic flows only on the connection A dialed, and a firewall rule on (A -> B's
// peer port) cuts exactly that direction: asymmetric partitions can be staged with
// nftables. Dialed sockets are bound to listen_host (port 0) first, so rules by source IP
// see the node's peer IP (when the peer's address is of the same family, IPv4 or IPv6).
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
// second Hello; message.from != Hello.from or message.to != self; a refusal frame on an
// accepted connection.
//
// Telling the refused node. Before it closes a refused connection (except one whose first
// bytes are not the frame magic: not a peer), the accepting side writes one refusal frame
// (peer_protocol.h: reason, its node id, the index of the membership it judged by, a text),
// shuts down its sending side, and discards what still arrives until the dialer closes or
// kRefusalLingerMs passed (closing with unread bytes would reset the connection, which can
// destroy the refusal before the dialer reads it). The dialer reads at most
// kMaxRefusalFrameBytes on its connection: a valid refusal frame is logged (once per reason
// per peer, then again after a doubling quiet time) and reported to options.on_refused,
// and the connection is closed and re-dialed as after any failure; anything else on it is
// a broken peer (closed, as before).
//
// TLS (--tls-replication; net/tls.h). With contexts set, every connection is TLS with
// mutual authentication: the dialer presents the node's certificate and checks the
// acceptor's against the CA, and the acceptor requires and checks the dialer's. A connection
// whose handshake fails is closed before a single frame is read from it (so a node without
// a certificate the cluster's CA signed cannot send a Hello, let alone a raft message):
// logged, counted (tls_handshakes_refused), no refusal frame (there is no channel to carry
// one). Refusals after the handshake travel inside TLS as above.
//
// Event loop integration. fd() is an epoll fd of its own (listener, every socket and a
// timerfd for reconnects and timeouts). Add it level-triggered to the server's epoll and
// call poll() when it is readable (calling it more often is harmless); call flush() once
// per loop turn after send()s. Nothing ever blocks, and work per call is bounded.
//
// Addresses are common/text.h's host:port: "10.0.0.1:7000", "[::1]:7000" or a host name,
// "db-1.internal:7000". A name is looked up afresh before each dial on the resolver's thread
// (net/resolver.h), never in the loop: the dial waits for the answer (an unresolvable name
// is a failed dial: logged once, retried with the backoff), and the answer picks the
// address by common/address.h's rule (first IPv4, else first IPv6).
//
// Thread-safety: one thread (the event loop) owns the transport and makes every call but
// two: send_and_flush() and flush() may also come from another thread (the disk thread sends
// a follower's acknowledgements right after its fdatasync, and flushes a leader's appends
// when a round starts: server/disk_thread.h). Every public
// call takes the transport's mutex, so the two never interleave inside it; the pointers the
// address lookups return stay valid (only the owner changes addresses).
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/address.h"
#include "common/status.h"
#include "net/peer_protocol.h"
#include "net/resolver.h"
#include "net/tls.h"
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
// How long a refused connection waits for the dialer to close it after the refusal frame.
inline constexpr uint64_t kRefusalLingerMs = 1000;
// Refusals received: the first of each reason from a peer is logged; the same reason again
// only after this quiet time, which doubles up to the maximum (a removed or misconfigured
// node is refused at every re-dial, once a second).
inline constexpr uint64_t kRefusalLogIntervalInitialMs = 10000;
inline constexpr uint64_t kRefusalLogIntervalMaxMs = 600000;

// A refusal received on one of our outbound connections.
struct PeerRefusal {
  raft::NodeId peer = raft::kNoNode;  // the node we dialed
  uint64_t cluster_id = 0;            // the refuser's, from the frame header
  peer::Refusal refusal;
};

// The node's rule for "this node was removed" (server/cluster.cc): a refusal proves it only
// if a member of our own cluster, the node we dialed, refused us (by our id) as not a member
// of its committed membership, and that membership is newer than the newest one we know
// that contains us. So a new learner refused by a follower that has not yet appended the
// change adding it, or a --join node that knows no membership with itself yet, never
// concludes it was removed. self_conf_index: raft::Status::self_conf_index.
bool refusal_proves_removal(const PeerRefusal& r, uint64_t own_cluster_id, raft::NodeId self,
                            std::optional<raft::Index> self_conf_index);

struct PeerTransportOptions {
  uint64_t cluster_id = 0;  // peer::cluster_id_from_name(--cluster-id)
  raft::NodeId self = raft::kNoNode;
  std::string listen_host = "127.0.0.1";  // an IPv4 or IPv6 address (the server resolves a name first)
  uint16_t listen_port = 0;  // 0: ephemeral (tests); see port()
  std::string advertise_peer_addr;    // sent in our Hello; "": listen_host:port()
  std::string advertise_client_addr;  // sent in our Hello
  // The app schema versions this node's binary reads, sent in our Hello (0, 0: not said).
  uint32_t schema_oldest = 0, schema_newest = 0;
  uint64_t max_queue_bytes_per_peer = kPeerQueueBytesMax;
  // One line per refusal/connect/disconnect, rate-limited per peer. May be empty.
  std::function<void(const std::string&)> log;
  // Called from poll() for every refusal frame received (after the connection was closed).
  // It must not call back into the transport. May be empty.
  std::function<void(const PeerRefusal&)> on_refused;
  // How peer names are looked up (on the resolver thread); empty: common/address.h's
  // resolve(). Tests inject their own.
  Resolver::Lookup lookup;
  // TLS for every connection (both set) or none (both null): the acceptor's context
  // requires client certificates; set_tls replaces them for later connections.
  std::shared_ptr<TlsContext> tls_server, tls_client;
  // Bounded work per poll (the defaults above); tests lower them to reach the budget's edge.
  size_t read_bytes_per_poll_max = kReadBytesPerPollMax;
  size_t read_chunk_bytes = kReadChunkBytes;
};

class PeerTransport {
 public:
  struct PeerStats {
    raft::NodeId id = raft::kNoNode;
    std::string addr;  // the address dialed (set_address, else learnt from its Hello)
    bool connected = false;  // our outbound connection is established
    uint64_t msgs_sent = 0, bytes_sent = 0, msgs_dropped = 0, msgs_received = 0, frames_refused = 0,
             queued_bytes = 0;
    uint64_t refusals_received = 0;  // refusal frames it sent on our connections
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
  // membership yet). Connections from nodes no longer listed are refused and closed.
  // config_index: the index of the membership they come from, and whether it is committed;
  // both go into refusals (RefusalReason::kNotMember vs kNotMemberUncommitted).
  void set_members(std::vector<raft::NodeId> members, raft::Index config_index = 0, bool config_committed = true);

  // Queues msg for msg.to. Dropped and counted when no address is known, when the peer has
  // no connection (and none being dialed; nothing is dialed before the first poll()), or
  // when its queue would exceed the bound.
  void send(raft::Message msg);
  // Writes every peer's queue as far as the sockets take it.
  void flush();
  // send() each message, then flush(), under one lock: callable from any thread.
  void send_and_flush(std::vector<raft::Message>&& messages);
  // send() each message under one lock, without writing: they leave with the next flush()
  // or send_and_flush() (from any thread), behind what was queued before and ahead of what
  // is queued after. The server queues a leader's appends so while its disk has a round to
  // start, whose start flushes them (server/node.cc, Node::send).
  void send_later(std::vector<raft::Message>&& messages);
  // Writes the queue of every peer that had bytes queued at the previous call and has
  // written none since: called once per period, it bounds how long send_later()'s messages
  // wait to between one and two periods, without writing early the ones queued just now.
  void flush_stale();
  // Accepts, reads and decodes (appending to *received), writes, and (re)connects.
  // now_ms: any monotonic clock in milliseconds; used for backoff and timeouts.
  void poll(uint64_t now_ms, std::vector<raft::Message>* received);
  // True if the next poll() has bytes to read that no epoll event will announce (a TLS
  // connection stopped at the read budget): the caller polls again without sleeping.
  bool reads_pending() const { return !reread_.empty(); }

  // Learnt from that node's Hello (or null).
  const std::string* client_addr_of(raft::NodeId id) const;
  // set_address's, else learnt from its Hello (or null).
  const std::string* peer_addr_of(raft::NodeId id) const;
  // The schema versions node id's binary reads, from its latest Hello: false if no Hello
  // came yet, or it said none (a node from before they were sent).
  bool schema_versions_of(raft::NodeId id, uint32_t* oldest, uint32_t* newest) const;

  // Certificates reloaded: connections made from now on use these (the open ones keep theirs).
  void set_tls(std::shared_ptr<TlsContext> server, std::shared_ptr<TlsContext> client);
  // Accepted connections whose TLS handshake failed: no certificate, one the CA did not
  // sign, an expired one, not TLS.
  uint64_t tls_handshakes_refused() const { return tls_refused_; }

  std::vector<PeerStats> stats() const;
  // Frames refused on connections whose sender is not a known peer (no Hello yet, or a
  // Hello that was itself refused).
  uint64_t frames_refused_unidentified() const { return refused_unidentified_; }
  // recv calls on accepted connections so far (each costs a system call): what a message
  // received costs the loop, for tests.
  uint64_t inbound_reads() const { return reads_; }

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
    uint32_t hello_schema_oldest = 0, hello_schema_newest = 0;  // 0: not said
    // Outbound connection.
    enum class State : uint8_t { kIdle, kConnecting, kConnected } state = State::kIdle;
    int fd = -1;
    TlsConnection tls;  // with --tls-replication; freed before fd is closed
    uint64_t conn = 0;  // epoll token of fd
    bool want_write = false;  // EPOLLOUT registered
    uint64_t next_dial_ms = 0;
    uint64_t backoff_ms = kReconnectBackoffInitialMs;
    uint64_t connect_deadline_ms = 0;
    uint64_t connected_at_ms = 0;
    uint64_t last_write_progress_ms = 0;
    uint64_t failed_dials = 0;  // in a row, since the last established connection
    // A dial address that is a name: being looked up (for resolving_for, "host:port"), and
    // the answer for resolved_for, which the next dial uses once.
    bool resolving = false;
    std::string resolving_for;
    std::optional<SocketAddress> resolved;
    std::string resolved_for;
    // flush_stale(): bytes were queued at its previous call, and bytes_sent then.
    bool queued_at_stale_check = false;
    uint64_t sent_at_stale_check = 0;
    std::string out;  // frames not yet written: out[out_offset, size)
    size_t out_offset = 0;
    size_t written_in_front = 0;  // bytes of frames.front() already written
    std::deque<QueuedFrame> frames;
    PeerStats stats;
    LogBudget log_budget;
    std::string refusal_in;  // bytes read on our connection: at most one refusal frame
    struct RefusalLog {
      uint64_t next_ms = 0;  // same reason logged again from then on
      uint64_t interval_ms = kRefusalLogIntervalInitialMs;
      uint64_t suppressed = 0;
    };
    std::array<RefusalLog, peer::kRefusalReasonMax + 1> refusal_log;  // by reason code
  };
  struct Inbound {
    int fd = -1;
    TlsConnection tls;        // with --tls-replication; freed before fd is closed
    bool want_write = false;  // EPOLLOUT registered: its TLS handshake waits to write
    std::string remote;  // "ip:port" of the other end
    uint64_t accepted_ms = 0;
    raft::NodeId from = raft::kNoNode;  // set by its Hello
    std::string buf;
    peer::FrameParser parser{peer::kMaxHelloBodyBytes};
    // Refused: the refusal was written; waiting for the dialer to close (or the deadline).
    bool lingering = false;
    uint64_t linger_deadline_ms = 0;
  };

  explicit PeerTransport(PeerTransportOptions options);
  Status listen();

  Peer* find_peer(raft::NodeId id);
  const Peer* find_peer(raft::NodeId id) const;
  Peer* peer_for(raft::NodeId id);  // creates it while under kMaxPeers; else null
  const std::string* dial_addr_of(const Peer& p) const;
  bool should_dial(const Peer& p) const;  // has an address and is not ourselves

  void dial(Peer* p);
  // Logs the first of a run of failed dials and schedules the next after the backoff.
  void dial_failed(Peer* p, const std::string& addr, const std::string& why);
  void on_resolved();  // the resolver's answers: dial the peers that waited for them
  void close_outbound(Peer* p, const std::string& why, bool log = true);
  void on_outbound_event(Peer* p, uint32_t events);
  void read_outbound(Peer* p);  // a refusal frame, or the peer closing
  void on_refusal(Peer* p, uint64_t cluster_id, peer::Refusal refusal);
  void write_outbound(Peer* p);
  void set_want_write(Peer* p, bool want);
  void set_inbound_want_write(uint64_t conn, Inbound* in, bool want);

  void send_locked(raft::Message msg);  // send() and flush() under mu_
  void flush_locked();
  void accept_all();
  void read_inbound(uint64_t conn);
  // Returns false if the connection was refused (and closed).
  bool handle_frame(uint64_t conn, Inbound* in, const peer::Frame& frame, std::vector<raft::Message>* received);
  // Logs, counts, writes a refusal frame (unless reply is false) and closes or lingers.
  // to: the node the refusal names (its Hello's from). Always returns false.
  bool refuse(uint64_t conn, Inbound* in, peer::RefusalReason reason, const std::string& why,
              raft::NodeId to = raft::kNoNode, bool reply = true);
  void drain_lingering(uint64_t conn, Inbound* in);
  void close_inbound(uint64_t conn);

  void check_timers();
  void rearm_timer();
  void log_for(LogBudget* budget, const std::string& line);

  // Held by every public call (see "Thread-safety" above); private helpers run under it.
  mutable std::mutex mu_;
  PeerTransportOptions options_;
  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int timer_fd_ = -1;
  uint16_t port_ = 0;
  SocketAddress listen_address_;  // as bound; the source address of our dials
  std::unique_ptr<Resolver> resolver_;
  uint64_t now_ms_ = 0;
  // Deadlines need the caller's clock: nothing is dialed before the first poll().
  bool clock_known_ = false;
  uint64_t armed_deadline_ms_ = UINT64_MAX;  // what timer_fd_ is set to (UINT64_MAX: disarmed)
  uint64_t next_conn_ = 3;  // epoll tokens: 0 listener, 1 timer, 2 resolver, then one per connection
  std::string hello_peer_addr_;
  std::vector<raft::NodeId> members_;  // sorted
  raft::Index config_index_ = 0;       // of members_ (set_members)
  bool config_committed_ = true;
  std::map<raft::NodeId, Peer> peers_;
  std::unordered_map<uint64_t, raft::NodeId> outbound_;  // token -> peer
  std::unordered_map<uint64_t, Inbound> inbound_;        // token -> connection
  std::vector<raft::Message>* received_ = nullptr;       // during poll()
  // read_inbound reads a chunk here (uninitialized, unlike a string grown to take it).
  std::unique_ptr<char[]> read_scratch_;  // options_.read_chunk_bytes
  // Inbound TLS connections that stopped at the read budget with plaintext already inside
  // OpenSSL (tls_pending): no epoll event will announce those bytes, so the next poll reads
  // them first. Without this list such a connection waited for the sender's next bytes.
  std::vector<uint64_t> reread_;
  uint64_t refused_unidentified_ = 0;
  uint64_t reads_ = 0;  // inbound_reads()
  uint64_t tls_refused_ = 0;
  uint64_t accept_paused_until_ms_ = 0;  // 0: the listener is watched
  LogBudget unidentified_log_budget_;
};

}  // namespace hmdb::net
