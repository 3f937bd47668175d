// core/forwarder.h — a node that does not lead runs a plain client's app commands on the
// leader: which forwarded command goes on which link, in what order, and what the client is
// told when a link breaks or no leader is known.
//
// A plain client (one address, no cluster support) connected to a follower gets the same
// replies as on the leader: the replica routes its app commands kForward (route.h), and this
// class sends them to the leader over a few pipelined links (one per leader and protocol,
// RESP2 or RESP3 after HELLO 3, each another client connection of the leader's, marked with
// CLUSTER FORWARDER so that the leader never forwards them again: one hop at most). Each
// reply goes back into its client's slot (ForwardHost::answer); the replica's reply queue
// puts it in order.
//
// Order within a client session. The leader runs a link's commands without ordering them
// against each other (they come from many clients: ClientSession::forwarder), so the order
// of one client's commands is kept here. A client's commands are in flight on ONE link at a
// time, and all of the same kind: pipelined writes (the leader batches them in arrival
// order) or pipelined queries (each takes its own read index, after what the client's
// earlier commands did). A write behind the client's queries in flight, a query behind its
// writes in flight, and anything bound for another link (a new leader, the other protocol)
// wait here until those are answered. So a query sees the client's earlier writes, a write
// comes after the client's earlier queries, and writes apply in order, as on the leader.
//
// When things go wrong (docs/cluster.md, "What clients see", has the client's view):
//   no leader known        the command waits here, at most leader_wait_ms from its arrival,
//                          then -CLUSTERDOWN; a new leader gets it as soon as it is known
//   the leader is this     what was never sent goes on a link to this node's own client
//   node now               port, like to any leader: it runs here, as the client sent it (in
//                          the protocol, and outside the transaction state, it had then),
//                          while what the client sent since and runs here waits for it
//   the leader changed     a link to a former leader takes no more commands; replies still
//                          in flight on it are awaited for drain_ms, then it is closed
//   a link breaks          nothing tells whether a write in flight on it was applied: it is
//   (or is closed)         answered "-ERR write outcome unknown ..." (as a replaced proposal
//                          is on the leader). A query in flight has no effect: it is sent
//                          again (at most kForwardSendsMax times in all)
//   the link's node does   -MOVED, -CLUSTERDOWN, -TRYAGAIN and "write lost" mean it did
//   not lead (any more)    not run: it is sent again to the leader this node knows, once
//                          that is another leader or term or kForwardRetryPauseMs passed
//                          (at most kForwardSendsMax sends, within leader_wait_ms), unless a
//                          later command of its client already ran: then the client gets
//                          that reply as it is
//   a client closes        its commands not yet sent are dropped; replies are discarded
//
// A transaction (forward_transaction) travels as one command: MULTI, its commands and EXEC
// back to back on the link, only EXEC's reply relayed; if a reply while queueing said the
// node does not lead, the whole transaction did not run.
//
// Pure bookkeeping: no I/O and no clock (the host gives the time). The server
// (server/forward_links.h: sockets) and the simulator (links between simulated nodes) both
// drive it. Thread-safety: none (the loop thread).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hmdb/reply.h"
#include "hmdb/state_machine.h"
#include "raft/types.h"

namespace hmdb::core {

// Forwarded commands waiting here or in flight, in commands and in bytes of their words:
// beyond either the forwarder is busy() and the host stops reading clients (back-pressure,
// as for the replica's kInflightBytesMax). The leader parses a link like any client, which
// it pauses at 100,000 pending commands (server/options.h, kClientPendingCommandsMax).
inline constexpr uint64_t kForwardCommandsMax = 10'000;
inline constexpr uint64_t kForwardBytesMax = 64ull << 20;
// Times one command is sent (it came back not run, or its link broke under a query).
inline constexpr uint32_t kForwardSendsMax = 4;
// A command that came back not run is sent again after this pause, or as soon as this node
// learns of another leader or term.
inline constexpr uint64_t kForwardRetryPauseMs = 50;
// After a link to a node failed, the next link to it is not dialed before this pause.
inline constexpr uint64_t kForwardRedialPauseMs = 100;

// What the forwarder needs from its embedder.
class ForwardHost {
 public:
  virtual ~ForwardHost() = default;
  // Dial node `node`'s client port as link `link`. False if it cannot (its address is not
  // known here); else link_connected() or link_broken() follows, never from inside this call.
  virtual bool open_link(uint64_t link, raft::NodeId node) = 0;
  // Appends bytes to the link's output (sent in order, the host decides when).
  virtual void send_link(uint64_t link, std::string_view bytes) = 0;
  // The forwarder is done with the link: close it. No link_broken() follows.
  virtual void close_link(uint64_t link) = 0;
  // The reply to slot `seq` of session `session` (Replica::finish with kWaitingForward).
  virtual void answer(uint64_t session, uint64_t seq, std::string_view reply) = 0;
  // Something an operator should hear of.
  virtual void warn(std::string_view message) = 0;
  // For observers (the simulator's history): slot (session, seq)'s command is what the next
  // send_link() on `link` carries (its last command, for a transaction).
  virtual void sent(uint64_t link, uint64_t session, uint64_t seq) { (void)link, (void)session, (void)seq; }
};

class Forwarder {
 public:
  struct Options {
    raft::NodeId self = 0;
    // A command waits at most this long from its arrival for a leader it can be sent to.
    uint64_t leader_wait_ms = 2000;
    // A link to a node that no longer leads is kept this long for the replies in flight on it.
    uint64_t drain_ms = 1000;
    // Planted bugs, for proving that the simulator catches them (tests/sim). Never set in
    // the server: `hmdb serve` has no flag for them.
    struct PlantedBugs {
      // A write in flight on a link that broke is sent again, like a query, instead of being
      // answered "outcome unknown": a write the old leader committed applies twice.
      bool resend_broken_writes = false;
    } bugs;
    // The default user's password (requirepass), sent first on every link (AUTH) when set:
    // the leader requires it of the link as of any client (docs/security.md). With `user`
    // set, AUTH user password (the cluster secret of the reserved link user).
    std::string password;
    std::string user;
  };
  struct Stats {
    uint64_t sent = 0;              // commands sent on a link (re-sends included)
    uint64_t replies = 0;           // replies relayed to a client
    uint64_t resent = 0;            // commands sent again (not run, or a query on a broken link)
    uint64_t unknown_outcomes = 0;  // writes in flight on a link that broke
    uint64_t timed_out = 0;         // commands answered -CLUSTERDOWN after leader_wait_ms
    uint64_t links_opened = 0;
    uint64_t links_broken = 0;      // broke, failed to connect, or closed with replies in flight
    uint64_t handshakes_refused = 0;  // links closed because the node refused their handshake
  };

  Forwarder(ForwardHost& host, Options options) : host_(host), options_(options) {}
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // The time of this loop turn (a monotonic clock).
  void set_time(uint64_t steady_ms) { now_ms_ = steady_ms; }
  // The leader this node knows now (kNoNode: none) and the term; call whenever it may have
  // changed, before the replica's drain.
  void set_leader(raft::NodeId leader, raft::Term term);
  // A command of `session` (its reply slot `seq`) to run on the leader. `protocol`: the
  // session's when it was sent, the protocol its reply must be in.
  void forward(uint64_t session, uint64_t seq, Protocol protocol, bool write, Args argv);
  // A transaction: `commands` (MULTI ... EXEC) sent back to back; the slot gets EXEC's reply.
  void forward_transaction(uint64_t session, uint64_t seq, Protocol protocol, bool write,
                           const std::vector<std::vector<std::string>>& commands);

  // The host's link events. link_reply takes ONE complete reply; false means the link broke
  // the protocol (a reply nobody waits for): the host closes it and calls link_broken.
  void link_connected(uint64_t link);
  bool link_reply(uint64_t link, std::string_view reply);
  void link_broken(uint64_t link);

  // The client closed: its commands not yet sent are dropped.
  void session_closed(uint64_t session);
  // Deadlines (the leader wait, draining links, retry pauses); call every few ms.
  void tick();

  // Too much is waiting or in flight: stop reading clients.
  bool busy() const { return commands_ >= kForwardCommandsMax || bytes_ >= kForwardBytesMax; }
  // Nothing waiting or in flight.
  bool idle() const { return commands_ == 0; }
  uint64_t commands() const { return commands_; }
  uint64_t bytes() const { return bytes_; }
  size_t links() const { return links_.size(); }
  const Stats& stats() const { return stats_; }

 private:
  struct Command {
    uint64_t session = 0;
    uint64_t seq = 0;
    Protocol protocol = Protocol::kResp2;
    bool write = false;
    std::vector<std::vector<std::string>> commands;  // one; or MULTI ... EXEC (a transaction)
    uint64_t bytes = 0;
    uint64_t deadline_ms = 0;  // waiting here: answered -CLUSTERDOWN then
    uint32_t sends = 0;
    raft::NodeId sent_to = 0;  // the leader and term when last sent
    raft::Term sent_term = 0;
    uint64_t retry_at_ms = 0;   // came back not run: not sent again to the same leader before then
    std::string not_run_reply;  // ... and the reply that said so
  };
  using CommandPtr = std::unique_ptr<Command>;
  // One client session's forwarded commands.
  struct Origin {
    std::deque<CommandPtr> waiting;  // not sent yet, in order
    std::deque<CommandPtr> not_run;  // came back not run while later ones are still in flight
    uint64_t link = 0;               // where its commands in flight are (if any)
    uint32_t in_flight = 0;
    bool in_flight_write = false;
    bool closed = false;
  };
  // kHandshaking: connected, its handshake sent, no command sent before every handshake
  // command was answered OK. A refused handshake closes the link, so no client's command
  // ever runs on a link that is not a declared one (one hop, the link user's rights).
  enum class LinkState : uint8_t { kDialing, kHandshaking, kReady, kDraining };
  struct InFlight {
    uint64_t session = 0;  // 0: the link's own handshake command
    CommandPtr command;
    uint32_t skip = 0;            // a transaction's replies before EXEC's, still to come
    std::string skipped_not_run;  // the first of them that said the node does not lead
  };
  struct Link {
    raft::NodeId node = 0;
    Protocol protocol = Protocol::kResp2;
    LinkState state = LinkState::kDialing;
    uint64_t drain_deadline_ms = 0;
    std::deque<InFlight> in_flight;
    uint32_t handshake_left = 0;  // handshake replies still to come (kHandshaking)
  };
  // A node's refusal of a link's handshake, until a handshake to it succeeds: the reply
  // commands waiting for a link to it get while the redial pause lasts, and whether it
  // was logged (once per node until it accepts a link again).
  struct Refusal {
    std::string reply;
    bool logged = false;
  };
  // False if it refused: the link is closed and erased.
  bool handshake_replied(uint64_t link_id, Link& l, std::string_view reply);

  // The link to `node` in `protocol` that takes commands: found, or dialed now (0: none now).
  uint64_t link_to(raft::NodeId node, Protocol protocol);
  void send(Origin& o, uint64_t link_id, Link& l, CommandPtr c);
  void pump(uint64_t session);
  void pump_all();
  // The commands that came back not run, once nothing of their client is in flight: to the
  // front of its queue (or answered, out of sends).
  void requeue_not_run(Origin& o);
  // A later command of o ran: those that came back not run before it cannot be sent again.
  void answer_not_run(Origin& o);
  void break_link(uint64_t link_id);
  void drain_others();
  void answer(Command& c, std::string_view reply);
  void drop(Command& c);
  void forget_if_done(uint64_t session);
  static std::string encode(const std::vector<std::string>& argv);
  void add(CommandPtr c);

  ForwardHost& host_;
  Options options_;
  uint64_t now_ms_ = 0;
  raft::NodeId leader_ = 0;
  raft::Term term_ = 0;
  uint64_t next_link_ = 1;
  // Ordered containers: the simulator replays a seed to the same events.
  std::map<uint64_t, Link> links_;
  std::map<uint64_t, Origin> origins_;
  std::set<uint64_t> waiting_;  // sessions with commands waiting here
  std::map<std::pair<raft::NodeId, Protocol>, uint64_t> redial_at_ms_;
  std::map<raft::NodeId, Refusal> refusals_;
  uint64_t commands_ = 0;
  uint64_t bytes_ = 0;
  Stats stats_;
};

}  // namespace hmdb::core
