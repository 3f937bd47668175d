// core/route.h — where a client command goes: the one routing decision.
//
// Every command a session sends is routed here once when it arrives, and again each time a
// held one (ReplyQueue::Kind::kDeferred) gets another chance. The decision depends only on
// what the command is, what this node is (leader or not, whether reads need a read-index
// round), and what is ahead of the command in its session:
//
//   kError           unknown command: an error reply, in order
//   kRedirect        an app command or a logged shell command (ACL SETUSER) on a node that
//                    does not lead (a follower, a learner, a node that knows no leader),
//                    unless it is a query from a READONLY
//                    client, from a session whose commands are not forwarded: -MOVED naming
//                    the leader, or -CLUSTERDOWN (WATCH too, forwarded or not)
//   kForward         the same command from a session whose commands are forwarded (a plain
//                    client: docs/cluster.md, "What clients see"): the host sends it to the
//                    leader and answers its slot with the leader's reply (core/forwarder.h)
//   kHold            something ahead of it is held (the replica holds every new command
//                    behind a held one before it even asks: commands are served in the
//                    session's order, which MULTI/EXEC need), or it must wait for the session's
//                    earlier writes to be applied before it may even be routed (a barrier,
//                    or a linearizable read), or for its forwarded commands to be answered
//                    (an app command or a barrier that runs here): kept with its words,
//                    routed again later
//   kWrite           an app write: validated, then batched into this turn's log entry
//   kReadIndex       an app query on the leader of several voters: after a read-index round
//   kQueryAtApply    a query (or a local shell command) behind a waiting write of the
//                    session: runs right after that write is applied
//   kRunNow          a query or shell command with nothing of its session unapplied: now
//   kRunBarrier      a barrier shell command (membership change, leadership transfer,
//                    snapshot), a logged shell command on the leader, or WATCH, with
//                    nothing of its session unapplied: now
//
// Pure: a function of its inputs (tests/core/route_test.cc checks every case).
#pragma once

#include <cstdint>

namespace hmdb::core {

// What a command is, as far as routing cares.
enum class CommandClass : uint8_t {
  kUnknown,
  kAppWrite,
  kAppQuery,
  kShellLocal,    // answered by the shell from local state (PING, INFO, CLUSTER MEMBERS, ...)
  kShellBarrier,  // after every earlier command of the session (CLUSTER ADDLEARNER, SNAPSHOT, ...)
  kWatch,         // WATCH: only the leader records it (a follower redirects, as for an app
                  // command), after the session's earlier writes are applied (a barrier)
  kShellWrite,    // a shell command the leader logs (ACL SETUSER, DELUSER, LOAD): forwarded or
                  // redirected like an app write elsewhere, a barrier on the leader
};

struct NodeView {
  bool clustered = false;
  bool leader = true;             // this node leads (a single node always does)
  bool reads_need_index = false;  // leader of several voters: queries take a read-index round
};

struct SessionView {
  bool readonly = false;      // READONLY: this client's queries may be served from local state
  bool held_before = false;   // a command ahead of this one is held (kDeferred) or waits for its read
  bool write_before = false;  // a write ahead of this one is not yet applied
  // This node forwards, and the session is a plain client: not READONLY, no cluster client
  // (it never asked for the topology, nor sent CLIENT NO-FORWARD ON), not another node's
  // forwarding link (which would make a second hop).
  bool forward = false;
  bool forward_before = false;  // a forwarded command ahead of this one is not answered yet
};

enum class Route : uint8_t {
  kError,
  kRedirect,
  kForward,
  kHold,
  kWrite,
  kReadIndex,
  kQueryAtApply,
  kRunNow,
  kRunBarrier,
};

inline Route route(CommandClass c, const NodeView& node, const SessionView& session) {
  if (c == CommandClass::kUnknown) return Route::kError;
  const bool app = c == CommandClass::kAppWrite || c == CommandClass::kAppQuery || c == CommandClass::kWatch;
  const bool local_read = c == CommandClass::kAppQuery && session.readonly;
  if ((app || c == CommandClass::kShellWrite) && node.clustered && !node.leader && !local_read) {
    if (!session.forward || c == CommandClass::kWatch) return Route::kRedirect;
    return session.held_before ? Route::kHold : Route::kForward;  // a forward runs: it keeps its place
  }
  if (session.held_before) return Route::kHold;
  // What runs here waits for the session's forwarded commands, which run on the leader.
  if ((app || c == CommandClass::kShellBarrier || c == CommandClass::kShellWrite) && session.forward_before)
    return Route::kHold;
  switch (c) {
    case CommandClass::kAppWrite: return Route::kWrite;
    case CommandClass::kAppQuery:
      if (node.reads_need_index && !session.readonly) return session.write_before ? Route::kHold : Route::kReadIndex;
      return session.write_before ? Route::kQueryAtApply : Route::kRunNow;
    case CommandClass::kShellBarrier:
    case CommandClass::kShellWrite:
    case CommandClass::kWatch: return session.write_before ? Route::kHold : Route::kRunBarrier;
    case CommandClass::kShellLocal: return session.write_before ? Route::kQueryAtApply : Route::kRunNow;
    case CommandClass::kUnknown: break;
  }
  return Route::kError;
}

}  // namespace hmdb::core
