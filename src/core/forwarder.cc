// core/forwarder.cc — forwarding a plain client's commands to the leader (see forwarder.h).
//
// Sections: commands in (forward, pump, send) · replies and broken links · the leader
// changing, deadlines, closing clients.
#include "core/forwarder.h"

#include <fmt/format.h>

#include "common/assert.h"

namespace hmdb::core {

namespace {

// A link's node did not run the command (it does not lead, or not any more): -MOVED,
// -CLUSTERDOWN, -TRYAGAIN from the routing of a node that does not lead, or the replica's
// "write lost" (its proposal is known to be gone).
bool not_run(std::string_view reply) {
  return reply.starts_with("-MOVED ") || reply.starts_with("-CLUSTERDOWN ") || reply.starts_with("-TRYAGAIN ") ||
         reply.starts_with("-ERR write lost in a leadership change");
}

constexpr std::string_view kUnknownOutcomeReply =
    "-ERR write outcome unknown: the connection to the leader closed before its reply; it may still take effect, "
    "check before retrying\r\n";
constexpr std::string_view kQueryLostReply = "-ERR the connection to the leader closed before the reply; retry\r\n";

// Bytes a command's words take, as counted for kForwardBytesMax (with RESP's framing).
uint64_t command_bytes(const std::vector<std::string>& argv) {
  uint64_t n = 16;
  for (const std::string& a : argv) n += a.size() + 16;
  return n;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Commands in

void Forwarder::forward(uint64_t session, uint64_t seq, Protocol protocol, bool write, Args argv) {
  auto c = std::make_unique<Command>();
  c->session = session;
  c->seq = seq;
  c->protocol = protocol;
  c->write = write;
  c->commands.emplace_back(argv.begin(), argv.end());
  add(std::move(c));
}

void Forwarder::forward_transaction(uint64_t session, uint64_t seq, Protocol protocol, bool write,
                                    const std::vector<std::vector<std::string>>& commands) {
  HMDB_ASSERT(commands.size() >= 2, "a forwarded transaction without MULTI and EXEC");
  auto c = std::make_unique<Command>();
  c->session = session;
  c->seq = seq;
  c->protocol = protocol;
  c->write = write;
  c->commands = commands;
  add(std::move(c));
}

void Forwarder::add(CommandPtr c) {
  for (const std::vector<std::string>& argv : c->commands) c->bytes += command_bytes(argv);
  c->deadline_ms = now_ms_ + options_.leader_wait_ms;
  commands_++;
  bytes_ += c->bytes;
  const uint64_t session = c->session;
  Origin& o = origins_[session];
  o.waiting.push_back(std::move(c));
  waiting_.insert(session);
  pump(session);
}

uint64_t Forwarder::link_to(raft::NodeId node, Protocol protocol) {
  for (const auto& [id, l] : links_)
    if (l.node == node && l.protocol == protocol && l.state != LinkState::kDraining) return id;
  const auto key = std::make_pair(node, protocol);
  if (auto it = redial_at_ms_.find(key); it != redial_at_ms_.end() && now_ms_ < it->second) return 0;
  const uint64_t id = next_link_++;
  if (!host_.open_link(id, node)) {
    redial_at_ms_[key] = now_ms_ + kForwardRedialPauseMs;
    return 0;
  }
  stats_.links_opened++;
  Link& l = links_[id];
  l.node = node;
  l.protocol = protocol;
  return id;
}

void Forwarder::pump(uint64_t session) {
  auto it = origins_.find(session);
  if (it == origins_.end()) {
    waiting_.erase(session);
    return;
  }
  Origin& o = it->second;
  while (!o.waiting.empty()) {
    const Command& c = *o.waiting.front();
    // No leader known: wait (tick() answers it once it waited leader_wait_ms). When this
    // node itself leads, the command goes on a link to its own client port, like to any
    // leader: routing it again here would run it in the session's state of now (a HELLO or
    // a MULTI the client sent after it), not in the one it was sent in.
    if (leader_ == raft::kNoNode) break;
    // It came back not run from this same leader: give it a moment, or a new leader.
    if (!c.not_run_reply.empty() && now_ms_ < c.retry_at_ms && c.sent_to == leader_ && c.sent_term == term_) break;
    // One link and one kind in flight per client (forwarder.h: order within a session).
    if (o.in_flight > 0 && o.in_flight_write != c.write) break;
    const uint64_t id = link_to(leader_, c.protocol);
    if (id == 0 && o.in_flight == 0) {
      // The leader refused this node's last link: say so now rather than after the wait.
      if (auto r = refusals_.find(leader_); r != refusals_.end()) {
        CommandPtr refused = std::move(o.waiting.front());
        o.waiting.pop_front();
        answer(*refused, r->second.reply);
        continue;
      }
    }
    if (id == 0 || (o.in_flight > 0 && o.link != id)) break;
    Link& l = links_.at(id);
    if (l.state != LinkState::kReady) break;  // dialing or handshaking: pumped again after
    CommandPtr next = std::move(o.waiting.front());
    o.waiting.pop_front();
    send(o, id, l, std::move(next));
  }
  if (o.waiting.empty()) waiting_.erase(session);
  forget_if_done(session);
}

void Forwarder::pump_all() {
  const std::vector<uint64_t> sessions(waiting_.begin(), waiting_.end());
  for (uint64_t s : sessions) pump(s);
}

void Forwarder::send(Origin& o, uint64_t link_id, Link& l, CommandPtr c) {
  c->sends++;
  c->sent_to = leader_;
  c->sent_term = term_;
  c->not_run_reply.clear();
  stats_.sent++;
  if (c->sends > 1) stats_.resent++;
  std::string bytes;
  for (const std::vector<std::string>& argv : c->commands) bytes += encode(argv);
  host_.sent(link_id, c->session, c->seq);
  host_.send_link(link_id, bytes);  // one call: a transaction's commands stay together
  o.link = link_id;
  o.in_flight++;
  o.in_flight_write = c->write;
  const uint32_t skip = static_cast<uint32_t>(c->commands.size() - 1);
  l.in_flight.push_back(InFlight{c->session, std::move(c), skip, {}});
}

std::string Forwarder::encode(const std::vector<std::string>& argv) {
  std::string out = fmt::format("*{}\r\n", argv.size());
  for (const std::string& a : argv) {
    out += fmt::format("${}\r\n", a.size());
    out += a;
    out += "\r\n";
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Replies and broken links

void Forwarder::link_connected(uint64_t link_id) {
  auto it = links_.find(link_id);
  if (it == links_.end() || it->second.state != LinkState::kDialing) return;
  Link& l = it->second;
  l.state = LinkState::kHandshaking;
  // The handshake: the password if one is set (the leader requires it of every client), the link's protocol, and the mark that makes its commands one hop only
  // (the leader never forwards them) and unordered against each other (each client's order
  // is kept here). Their replies are checked, not relayed.
  // Commands follow once it is answered (handshake_replied), one round trip per link.
  auto handshake = [&](const std::vector<std::string>& words) {
    host_.send_link(link_id, encode(words));
    l.in_flight.push_back(InFlight{});
    l.handshake_left++;
  };
  if (!options_.password.empty()) {
    if (options_.user.empty()) handshake({"AUTH", options_.password});
    else handshake({"AUTH", options_.user, options_.password});
  }
  if (l.protocol == Protocol::kResp3) handshake({"HELLO", "3"});
  handshake({"CLUSTER", "FORWARDER", std::to_string(options_.self)});
}

bool Forwarder::handshake_replied(uint64_t link_id, Link& l, std::string_view reply) {
  if (l.state != LinkState::kHandshaking) return true;  // draining (another leader): closes when answered
  if (!reply.starts_with("-")) {
    if (--l.handshake_left > 0) return true;
    l.state = LinkState::kReady;
    refusals_.erase(l.node);
    pump_all();
    return true;
  }
  // Refused: nothing but the handshake was sent, so no client's command ran on it. The link
  // is closed, and dialed again after the redial pause; meanwhile its clients' commands are
  // answered with the refusal (pump).
  stats_.handshakes_refused++;
  const std::string error(reply.substr(1, reply.find('\r') - 1));
  Refusal& r = refusals_[l.node];
  r.reply = fmt::format("-ERR this node cannot forward to the leader (node {}): it refused this node's link: {}\r\n",
                        l.node, error);
  if (!r.logged) {
    r.logged = true;
    host_.warn(fmt::format("node {} refused this node's forwarding link's handshake: -{} (its clients' commands get "
                           "an error until it accepts a link; docs/security.md, \"In a cluster\")",
                           l.node, error));
  }
  redial_at_ms_[std::make_pair(l.node, l.protocol)] = now_ms_ + kForwardRedialPauseMs;
  host_.close_link(link_id);
  links_.erase(link_id);
  pump_all();
  return false;
}

bool Forwarder::link_reply(uint64_t link_id, std::string_view reply) {
  auto it = links_.find(link_id);
  if (it == links_.end() || it->second.in_flight.empty()) return false;
  Link& l = it->second;
  if (InFlight& head = l.in_flight.front(); head.skip > 0) {
    // MULTI's or a queued command's reply: only EXEC's is relayed. A node that does not
    // lead refuses the commands while queueing, and EXEC then answers -EXECABORT.
    head.skip--;
    if (head.skipped_not_run.empty() && not_run(reply)) head.skipped_not_run.assign(reply.substr(1, reply.find('\r') - 1));
    return true;
  }
  InFlight f = std::move(l.in_flight.front());
  l.in_flight.pop_front();
  if (f.session == 0) {
    if (!handshake_replied(link_id, l, reply)) return true;  // refused: the link is closed
  } else {
    Origin& o = origins_.at(f.session);
    HMDB_ASSERT(o.in_flight > 0 && o.link == link_id, "a forwarded command's client is not in flight on its link");
    o.in_flight--;
    Command& c = *f.command;
    if (o.closed) {
      drop(c);
    } else if (not_run(reply) || !f.skipped_not_run.empty()) {
      // A transaction refused while queueing did not run: if it is not sent again, its
      // client is told why (the node's redirect), not only that it was discarded.
      c.not_run_reply = f.skipped_not_run.empty()
                            ? std::string(reply)
                            : "-EXECABORT Transaction discarded because of: " + f.skipped_not_run + "\r\n";
      c.retry_at_ms = now_ms_ + kForwardRetryPauseMs;
      o.not_run.push_back(std::move(f.command));
    } else {
      stats_.replies++;
      answer(c, reply);
      answer_not_run(o);  // they came before this one, which ran
    }
    if (o.in_flight == 0) requeue_not_run(o);
  }
  if (l.state == LinkState::kDraining && l.in_flight.empty()) {
    host_.close_link(link_id);
    links_.erase(it);
  }
  if (f.session != 0) pump(f.session);
  return true;
}

void Forwarder::answer_not_run(Origin& o) {
  for (CommandPtr& c : o.not_run) answer(*c, c->not_run_reply);
  o.not_run.clear();
}

void Forwarder::requeue_not_run(Origin& o) {
  while (!o.not_run.empty()) {
    CommandPtr c = std::move(o.not_run.back());
    o.not_run.pop_back();
    if (c->sends >= kForwardSendsMax) {
      answer(*c, c->not_run_reply);  // nothing later of its client ran: its order is kept
    } else {
      waiting_.insert(c->session);
      o.waiting.push_front(std::move(c));
    }
  }
}

void Forwarder::link_broken(uint64_t link_id) {
  if (links_.find(link_id) == links_.end()) return;
  break_link(link_id);
  pump_all();
}

void Forwarder::break_link(uint64_t link_id) {
  auto it = links_.find(link_id);
  Link l = std::move(it->second);
  links_.erase(it);
  stats_.links_broken++;
  redial_at_ms_[std::make_pair(l.node, l.protocol)] = now_ms_ + kForwardRedialPauseMs;
  std::vector<uint64_t> touched;
  for (InFlight& f : l.in_flight) {
    if (f.session == 0) continue;
    Origin& o = origins_.at(f.session);
    o.in_flight--;
    Command& c = *f.command;
    if (o.closed) {
      drop(c);
    } else if (c.write && !options_.bugs.resend_broken_writes) {  // PLANTED BUG
      // It may have been applied, or may still be: nobody can tell this client now.
      stats_.unknown_outcomes++;
      answer(c, kUnknownOutcomeReply);
      answer_not_run(o);
    } else {
      // A query has no effect: it is sent again (after its client's earlier ones that came
      // back not run, all queries too: one kind in flight per client).
      c.not_run_reply.assign(kQueryLostReply);
      c.retry_at_ms = 0;
      o.not_run.push_back(std::move(f.command));
    }
    if (touched.empty() || touched.back() != f.session) touched.push_back(f.session);
  }
  for (uint64_t s : touched) {
    auto o = origins_.find(s);
    if (o == origins_.end()) continue;
    if (o->second.in_flight == 0) requeue_not_run(o->second);
    forget_if_done(s);
  }
}

// ---------------------------------------------------------------------------------------
// The leader changing, deadlines, closing clients

void Forwarder::set_leader(raft::NodeId leader, raft::Term term) {
  if (leader == leader_ && term == term_) return;
  leader_ = leader;
  term_ = term;
  drain_others();
  pump_all();
}

void Forwarder::drain_others() {
  for (auto it = links_.begin(); it != links_.end();) {
    Link& l = it->second;
    if (l.node == leader_ || l.state == LinkState::kDraining) {
      ++it;
      continue;
    }
    if (l.in_flight.empty()) {  // dialing, or nothing to wait for
      host_.close_link(it->first);
      it = links_.erase(it);
      continue;
    }
    l.state = LinkState::kDraining;
    l.drain_deadline_ms = now_ms_ + options_.drain_ms;
    ++it;
  }
}

void Forwarder::tick() {
  std::vector<uint64_t> expired;
  for (const auto& [id, l] : links_)
    if (l.state == LinkState::kDraining && now_ms_ >= l.drain_deadline_ms) expired.push_back(id);
  for (uint64_t id : expired) {
    host_.close_link(id);
    break_link(id);
  }
  const std::vector<uint64_t> sessions(waiting_.begin(), waiting_.end());
  for (uint64_t s : sessions) {
    Origin& o = origins_.at(s);
    for (auto c = o.waiting.begin(); c != o.waiting.end();) {
      if (now_ms_ < (*c)->deadline_ms) {
        ++c;
        continue;
      }
      stats_.timed_out++;
      std::string reply;
      if (!(*c)->not_run_reply.empty() && (*c)->not_run_reply != kQueryLostReply) reply = (*c)->not_run_reply;
      else if (leader_ == raft::kNoNode)
        reply = fmt::format("-CLUSTERDOWN no leader known for {} ms; retry\r\n", options_.leader_wait_ms);
      else
        reply = fmt::format("-CLUSTERDOWN the leader (node {}) could not be reached from this node for {} ms; retry\r\n",
                            leader_, options_.leader_wait_ms);
      answer(**c, reply);
      c = o.waiting.erase(c);
    }
  }
  pump_all();
}

void Forwarder::session_closed(uint64_t session) {
  auto it = origins_.find(session);
  if (it == origins_.end()) return;
  Origin& o = it->second;
  for (CommandPtr& c : o.waiting) drop(*c);
  for (CommandPtr& c : o.not_run) drop(*c);
  o.waiting.clear();
  o.not_run.clear();
  o.closed = true;
  waiting_.erase(session);
  forget_if_done(session);
}

void Forwarder::answer(Command& c, std::string_view reply) {
  host_.answer(c.session, c.seq, reply);
  drop(c);
}

void Forwarder::drop(Command& c) {
  HMDB_ASSERT(commands_ > 0 && bytes_ >= c.bytes, "forwarded commands miscounted");
  commands_--;
  bytes_ -= c.bytes;
}

void Forwarder::forget_if_done(uint64_t session) {
  auto it = origins_.find(session);
  if (it == origins_.end()) return;
  const Origin& o = it->second;
  if (o.waiting.empty() && o.not_run.empty() && o.in_flight == 0) origins_.erase(it);
}

}  // namespace hmdb::core
