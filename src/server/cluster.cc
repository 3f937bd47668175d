// server/cluster.cc — the node's cluster side: peers (PeerTransport), member addresses,
// membership commands and their side effects, a removed node stopping.
//
// The write path is the single node's: the replica (core/replica.h) hands raft's messages
// to send() between persist and apply, an entry commits once a majority (not just this
// disk) has it durably, and only the leader serves clients (core/route.h: a follower
// answers app commands with -MOVED naming the leader, READONLY queries from its state).
//
// Member addresses: each member's client and peer address travel in the context of the
// membership change that added it (CLUSTER ADDLEARNER), in --initial-cluster for the first
// voters, and in every snapshot's header (cluster info), so that a node that catches up by
// snapshot knows every peer. docs/cluster.md is the operator's view.
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "common/address.h"
#include "common/assert.h"
#include "common/text.h"
#include "hmdb/app.h"
#include "core/record_sketch.h"
#include "core/key_slot.h"
#include "server/cluster_topology.h"
#include "server/logging.h"
#include "server/node.h"
#include "storage/snapshot.h"

namespace hmdb::server {

namespace {

// The context of a membership change that adds a node: "<client addr> <peer addr>", then
// (CLUSTER ADDLEARNER) one line "<id> <client addr> <peer addr>" per member at that time,
// so that a node catching up by log learns every member's address, not only its own.
bool parse_member_context(std::string_view context, ServerOptions::MemberAddr* out) {
  context = context.substr(0, context.find('\n'));
  size_t sp = context.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string client(context.substr(0, sp)), peer(context.substr(sp + 1));
  HostPort parsed;
  std::string error;
  if (!parse_host_port(client, &parsed, &error) || !parse_host_port(peer, &parsed, &error)) return false;
  out->client = std::move(client);
  out->peer = std::move(peer);
  return true;
}

// One line of the member list (snapshot cluster info, ADDLEARNER context):
// "<id> <client addr> <peer addr>".
bool parse_member_line(std::string_view line, uint64_t* id, ServerOptions::MemberAddr* m) {
  size_t sp = line.find(' ');
  return sp != std::string_view::npos && parse_uint64(line.substr(0, sp), id) &&
         parse_member_context(line.substr(sp + 1), m);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Options

Status parse_initial_cluster(const std::string& text, std::map<uint64_t, ServerOptions::MemberAddr>* out) {
  out->clear();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('='), at = item.find('@');
    uint64_t id = 0;
    if (eq == std::string::npos || at == std::string::npos || at < eq || !parse_uint64(item.substr(0, eq), &id) || id == 0)
      return Status::invalid_argument("--initial-cluster: '" + item +
                                      "' is not ID=CLIENT_HOST:PORT@PEER_HOST:PORT (ID a positive integer)");
    ServerOptions::MemberAddr m;
    m.client = item.substr(eq + 1, at - eq - 1);
    m.peer = item.substr(at + 1);
    HostPort parsed;
    std::string error;
    if (!parse_host_port(m.client, &parsed, &error) || !parse_host_port(m.peer, &parsed, &error))
      return Status::invalid_argument("--initial-cluster: '" + item + "': " + error);
    if (!out->emplace(id, m).second) return Status::invalid_argument(fmt::format("--initial-cluster names node {} twice", id));
  }
  if (out->empty()) return Status::invalid_argument("--initial-cluster is empty");
  return Status::ok();
}

Status validate_cluster_options(const ServerOptions& o) {
  if (o.node_id == 0) return Status::invalid_argument("--node-id must be a positive integer");
  if (!o.clustered()) {
    if (!o.initial_cluster.empty() || o.join)
      return Status::invalid_argument("--initial-cluster and --join need --peer-addr (where this node listens for peers)");
    return Status::ok();
  }
  HostPort peer;
  std::string error;
  if (!parse_host_port(o.peer_addr, &peer, &error)) return Status::invalid_argument("--peer-addr: " + error);
  if (o.durability == Durability::kNone)
    return Status::invalid_argument("a cluster needs a log: --durability none is for a single node only");
  if (o.join && !o.initial_cluster.empty()) return Status::invalid_argument("--join and --initial-cluster exclude each other");
  if (!o.join) {
    if (o.initial_cluster.empty())
      return Status::invalid_argument("a cluster node needs --initial-cluster (the first voters) or --join (a new node)");
    auto it = o.initial_cluster.find(o.node_id);
    if (it == o.initial_cluster.end())
      return Status::invalid_argument(fmt::format("--initial-cluster does not name this node (--node-id {})", o.node_id));
    if (it->second.peer != o.peer_addr)
      return Status::invalid_argument(fmt::format("--initial-cluster gives node {} the peer address {}, but --peer-addr is {}",
                                                  o.node_id, it->second.peer, o.peer_addr));
  }
  if (o.heartbeat_ms < kRaftTickMs || o.election_timeout_ms < 2 * o.heartbeat_ms)
    return Status::invalid_argument(fmt::format("need --heartbeat-ms >= {} and --election-timeout-ms >= 2 x --heartbeat-ms",
                                                kRaftTickMs));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Peers

Status Node::start_cluster() {
  if (!options_.clustered()) return Status::ok();
  HostPort peer;
  std::string error;
  if (!parse_host_port(options_.peer_addr, &peer, &error)) return Status::invalid_argument("--peer-addr: " + error);
  // A name in --peer-addr is resolved once, here (startup may wait for DNS; the loop never
  // does): the transport listens at that address, and peers dial the name (Hello).
  SocketAddress listen_at;
  Status s = resolve(peer.host, peer.port, &listen_at);
  if (!s) return Status::invalid_argument("--peer-addr: " + s.message());
  net::PeerTransportOptions o;
  o.cluster_id = net::peer::cluster_id_from_name(options_.cluster_id);
  o.self = options_.node_id;
  o.listen_host = listen_at.host();
  o.listen_port = peer.port;
  o.advertise_peer_addr = options_.peer_addr;
  // With peer TLS the cluster's clients and forwarding links reach a node on its TLS port.
  o.advertise_client_addr = format_host_port(options_.bind, options_.tls_replication ? tls_port_ : port_);
  o.tls_server = tls_peer_server_;
  o.tls_client = tls_peer_client_;
  o.schema_oldest = app_->oldest_schema_version();  // the leader's activation gate (schema_command)
  o.schema_newest = app_->schema_version();
  o.max_queue_bytes_per_peer = kPeerQueueBytesPerPeer;
  o.log = [](const std::string& line) { log_line("peers: {}", line); };
  o.on_refused = [this](const net::PeerRefusal& r) { on_peer_refusal(r); };
  s = net::PeerTransport::open(o, &transport_);
  if (!s) return s;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagPeers;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, transport_->fd(), &ev) != 0)
    return Status::io_error(std::string("epoll_ctl(peers): ") + std::strerror(errno));
  members_[options_.node_id] = ServerOptions::MemberAddr{o.advertise_client_addr, options_.peer_addr};
  sync_transport_members();

  core::Forwarder::Options fo;
  fo.self = options_.node_id;
  fo.password = forward_password_;
  if (link_user_) fo.user = std::string(core::kLinkUserName);  // the secret, not requirepass
  fo.leader_wait_ms = kForwardLeaderWaitElectionTimeouts * options_.election_timeout_ms;
  fo.drain_ms = kForwardDrainElectionTimeouts * options_.election_timeout_ms;
  forwarder_ = std::make_unique<core::Forwarder>(static_cast<core::ForwardHost&>(*this), fo);
  forward_links_ = std::make_unique<ForwardLinks>();
  forward_links_->set_tls(tls_peer_client_);
  s = forward_links_->init();
  if (!s) return s;
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagForward;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, forward_links_->fd(), &ev) != 0)
    return Status::io_error(std::string("epoll_ctl(forwarding links): ") + std::strerror(errno));
  return Status::ok();
}

void Node::poll_peers() {
  if (!transport_) return;
  received_.clear();
  transport_->poll(monotonic_ms(), &received_);
  if (!appends_sent_.empty()) note_received(received_);
  // What the followers acknowledged: beyond the leader's own last ack, that ack may commit
  // (want_own_ack; disk_thread.h, "A leader's own acknowledgement").
  for (const raft::Message& m : received_) {
    if (m.type != raft::MessageType::kAppendResponse || m.reject) continue;
    if (m.term != peer_acked_term_) {
      if (m.term < peer_acked_term_) continue;
      peer_acked_term_ = m.term;
      peer_acked_max_ = 0;
    }
    peer_acked_max_ = std::max(peer_acked_max_, m.log_index);
  }
  want_own_ack();
  for (const raft::Message& m : received_) raft_->step(m);
  // Handle the Readies now: a snapshot the core accepted must be installed before anything
  // else in this turn (e.g. a SNAPSHOT command) looks at the applied state.
  if (!received_.empty()) replica_->drive();
  note_leader();
  sync_forwarder();
}

// ---------------------------------------------------------------------------------------
// Forwarding plain clients' commands to the leader (core/forwarder.h; docs/cluster.md)

void Node::sync_forwarder() {
  if (!forwarder_) return;
  forwarder_->set_time(turn_steady_ms_);
  forwarder_->set_leader(raft_->leader(), raft_->term());
}

void Node::forward(core::ClientSession& s, uint64_t seq, Args argv, bool write) {
  if (argv.size() == 2 && iequals(argv[0], "ACL") && iequals(argv[1], "LOAD")) [[unlikely]] {
    // ACL LOAD logs the ACL file of the node that received it: this one's text goes to the
    // leader (ACL LOAD <text>, taken from a forwarding link only: acl_commands.cc).
    std::string text;
    if (options_.aclfile.empty()) {
      std::string e;
      Reply(&e).error(kNoAclFileError);
      replica_->finish(s.id, seq, core::ReplyQueue::Kind::kWaitingForward, e);
      return;
    }
    if (const Status read = read_acl_file(&text); !read) {
      std::string e;
      Reply(&e).error("ERR " + read.message());
      replica_->finish(s.id, seq, core::ReplyQueue::Kind::kWaitingForward, e);
      return;
    }
    const std::string_view words[] = {argv[0], argv[1], text};
    forwarder_->forward(s.id, seq, s.protocol, write, Args(words));
    return;
  }
  forwarder_->forward(s.id, seq, s.protocol, write, argv);
}

void Node::forward_transaction(core::ClientSession& s, uint64_t seq, const std::vector<std::vector<std::string>>& commands,
                               bool write) {
  forwarder_->forward_transaction(s.id, seq, s.protocol, write, commands);
}

bool Node::open_link(uint64_t link, raft::NodeId node) {
  HostPort to;
  if (!member_client_address(node, &to)) return false;
  forward_links_->open(link, to, turn_steady_ms_);
  return true;
}

void Node::send_link(uint64_t link, std::string_view bytes) { forward_links_->send(link, bytes); }

void Node::close_link(uint64_t link) { forward_links_->close(link); }

void Node::answer(uint64_t session, uint64_t seq, std::string_view reply) {
  replica_->finish(session, seq, core::ReplyQueue::Kind::kWaitingForward, reply);
}

void Node::note_leader() {
  if (raft_ && raft_->leader() != raft::kNoNode) last_known_leader_ = raft_->leader();
}

std::string Node::client_address_of(raft::NodeId id) const {
  // As Redis writes an address in -MOVED: "host:port", an IPv6 host without brackets (the
  // client libraries split at the last ':'; redis-py would try to resolve "[::1]").
  HostPort hp;
  return member_client_address(id, &hp) ? hp.host + ":" + std::to_string(hp.port) : std::string();
}

bool Node::member_client_address(raft::NodeId id, HostPort* out) const {
  std::string text;
  if (auto it = members_.find(id); it != members_.end() && !it->second.client.empty()) text = it->second.client;
  else if (const std::string* a = transport_ ? transport_->client_addr_of(id) : nullptr) text = *a;
  std::string error;
  return !text.empty() && parse_host_port(text, out, &error);
}

void Node::learn_addresses(const std::vector<raft::Entry>& entries) {
  bool changed = false;
  for (const raft::Entry& e : entries) {
    if (e.type != raft::EntryType::kConfChange) continue;
    changed = true;
    raft::ConfChange cc;
    std::optional<raft::ConfState> after;
    if (!raft::decode_conf_change_entry(e.data, &cc, &after)) continue;
    ServerOptions::MemberAddr m;
    if ((cc.type == raft::ConfChangeType::kAddLearner || cc.type == raft::ConfChangeType::kAddVoter) &&
        parse_member_context(cc.context, &m)) {
      learn_member_lines(cc.context);
      members_[cc.node] = m;
    }
  }
  if (changed && raft_) sync_transport_members();
}

void Node::sync_transport_members() {
  if (!transport_) return;
  const raft::Status st = raft_->status();
  // Called whenever a membership entry is persisted or applied, or a snapshot installed: the
  // voters of the membership in force (raft's, from the entry's append on).
  other_voters_ = std::any_of(st.conf.voters.begin(), st.conf.voters.end(),
                              [&](raft::NodeId v) { return v != options_.node_id; });
  std::vector<raft::NodeId> ids = st.conf.voters;
  ids.insert(ids.end(), st.conf.learners.begin(), st.conf.learners.end());
  // A membership without this node is one it knows to be older than the cluster's (a new
  // node that installed a leader's snapshot taken before it, or before that leader, was
  // added): judged by it, the leader itself may be "not a member", refused, and the entries
  // that add it never arrive. Such a node refuses nobody, as a --join node not yet added
  // does; one that applies its own removal stops.
  if (std::find(ids.begin(), ids.end(), options_.node_id) == ids.end()) ids.clear();
  // The refusals the transport sends say whether this membership is committed: only then
  // may a refused node conclude that it was removed. Called again when it is applied.
  transport_->set_members(ids, st.conf_index, st.commit >= st.conf_index);
  for (const auto& [id, m] : members_)
    if (id != options_.node_id) transport_->set_address(id, m.peer);
}

std::string Node::encode_members() const {
  std::string out;
  for (const auto& [id, m] : members_) out += fmt::format("{} {} {}\n", id, m.client, m.peer);
  return out;
}

void Node::learn_member_lines(std::string_view context) {
  size_t nl = context.find('\n');
  if (nl == std::string_view::npos) return;
  std::istringstream in{std::string(context.substr(nl + 1))};
  std::string line;
  while (std::getline(in, line)) {
    uint64_t id = 0;
    ServerOptions::MemberAddr m;
    if (!parse_member_line(line, &id, &m) || id == options_.node_id) continue;
    members_.try_emplace(id, m);  // what this node already knows wins
  }
}

void Node::decode_members(std::string_view text) {
  std::map<raft::NodeId, ServerOptions::MemberAddr> book;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    uint64_t id = 0;
    ServerOptions::MemberAddr m;
    if (!parse_member_line(line, &id, &m)) {
      log_line("warning: ignoring a malformed member line in a snapshot: '{}'", line);
      continue;
    }
    book[id] = m;
  }
  // Our own addresses are what this process was started with.
  if (auto self = members_.find(options_.node_id); self != members_.end()) book[options_.node_id] = self->second;
  members_ = std::move(book);
}

void Node::role_changed(raft::Role before, raft::Role now) {
  if (now != raft::Role::kLeader) forget_stage_marks();
  note_leader();
  sync_forwarder();  // links to a former leader drain; a node that leads now sends to itself
  log_line("raft: {} -> {} in term {} (leader: {})", role_name(before), role_name(now), raft_->term(), raft_->leader());
  sync_transport_members();
}

// ---------------------------------------------------------------------------------------
// CLUSTER commands that change the cluster: ADDLEARNER, PROMOTE, REMOVE, TRANSFER

core::ShellResult Node::schema_command(Session& s, Args argv, uint64_t seq, std::string* out) {
  Reply r(out, s.client.protocol);
  uint64_t version = 0;
  if (argv.size() != 4 || !iequals(argv[2], "ACTIVATE") || !parse_uint64(argv[3], &version) || version == 0 ||
      version > UINT32_MAX) {
    r.error("ERR usage: CLUSTER SCHEMA ACTIVATE <schema version>");
    return core::ShellResult::kReplied;
  }
  if (!replica_->leader()) {
    out->append(replica_->redirect_reply());
    return core::ShellResult::kReplied;
  }
  // The leader's checks; `hmdb cluster schema activate` also asks every member first and
  // refuses while any one does not read `version` (docs/cluster.md, "Schema versions").
  const uint32_t active = app_->active_schema_version();
  if (version <= active) {
    r.error(fmt::format("ERR schema version {} is not above the active version {}", version, active));
    return core::ShellResult::kReplied;
  }
  if (!app_->reads_schema_version(static_cast<uint32_t>(version))) {
    r.error(fmt::format("ERR this node reads schema versions {}..{} of app {}: it cannot activate version {}",
                        app_->oldest_schema_version(), app_->schema_version(), app_->app_name(), version));
    return core::ShellResult::kReplied;
  }
  // The gate: a voter that does not read `version` stops applying at the activation and
  // does not lead, so the cluster keeps serving only while a quorum of voters reads it.
  // Each peer's binary says what it reads in its Hello; one not heard from (or an hmdb from
  // before Hellos carried versions) counts as not reading it.
  const raft::Status st = raft_->status();
  size_t readers = 0;
  std::vector<std::string> left;  // voters and learners that would be left blocked
  auto judge = [&](raft::NodeId id, bool voter) {
    uint32_t oldest = 0, newest = 0;
    bool known = true;
    if (id == options_.node_id) {
      oldest = app_->oldest_schema_version();
      newest = app_->schema_version();
    } else {
      known = transport_ && transport_->schema_versions_of(id, &oldest, &newest);
    }
    if (known && version >= oldest && version <= newest) {
      readers += voter ? 1 : 0;
      return;
    }
    left.push_back(fmt::format("node {} ({}{})", id, voter ? "voter" : "learner",
                               known ? fmt::format(", reads {}..{}", oldest, newest)
                                     : ", its versions are unknown here: no peer hello from it with versions"));
  };
  for (raft::NodeId v : st.conf.voters) judge(v, true);
  for (raft::NodeId l : st.conf.learners) judge(l, false);
  const size_t quorum = st.conf.voters.size() / 2 + 1;
  if (readers < quorum) {
    r.error(fmt::format("ERR refused: {} of {} voters read schema version {}, and a quorum is {}; these would be "
                        "left blocked: {}. Upgrade them first",
                        readers, st.conf.voters.size(), version, quorum, fmt::join(left, ", ")));
    return core::ShellResult::kReplied;
  }
  if (!left.empty())
    log_line("schema: activating version {} leaves these nodes blocked at the activation (they will apply nothing "
             "more and not lead): {}", version, fmt::join(left, ", "));
  replica_->activate_schema(static_cast<uint32_t>(version), s.id(), seq);
  log_line("schema: proposing to activate version {} of app {} (active: {})", version, app_->app_name(), active);
  return core::ShellResult::kWaitCluster;
}

core::ShellResult Node::digest_mark_command(Session& s, Args argv, uint64_t seq, std::string* out) {
  if (argv.size() != 3) {
    Reply(out, s.client.protocol).error("ERR usage: CLUSTER DIGEST MARK");
    return core::ShellResult::kReplied;
  }
  if (!replica_->leader()) {  // like every write of the cluster's own: the leader logs it
    out->append(replica_->redirect_reply());
    return core::ShellResult::kReplied;
  }
  replica_->digest_mark(s.id(), seq);
  return core::ShellResult::kWaitCluster;
}

void Node::digest_at_command(Session& s, Args argv, std::string* out) const {
  Reply r(out, s.client.protocol);
  uint64_t index = 0;
  // RECORDS: the sketch of the app's records at the mark instead of its digest; USERS: the
  // replicated ACL users' digest there (words added after the index, so that the 4-word
  // form answers as it always did).
  const bool records = argv.size() == 5 && iequals(argv[4], "RECORDS");
  const bool users = argv.size() == 5 && iequals(argv[4], "USERS");
  if ((argv.size() != 4 && !records && !users) || !parse_uint64(argv[3], &index)) {
    r.error("ERR usage: CLUSTER DIGEST AT <log index of a digest mark> [RECORDS|USERS]");
    return;
  }
  // Words, like CLUSTER DIGEST's (docs/cluster.md, "Verifying"): the digest, or why there is
  // none here.
  const uint64_t applied = replica_->applied_index();
  const core::DigestMark* m = replica_->digest_marks().find(index);
  if (m && users) {
    // "users <hex>", or "users none" before any ACL change was logged. Taken when the mark
    // was applied (never pending, whatever the app's digest is doing).
    r.bulk(m->users ? fmt::format("users {:016x}", *m->users) : std::string("users none"));
  } else if (m && m->failed) {
    r.bulk(fmt::format("failed {}", applied));  // its digest child ended without a result (logged)
  } else if (m && !m->pending && records) {
    // "records <hex of the sketch>", or "records none" when the app lists no records there.
    r.bulk(m->records ? "records " + core::to_hex(m->records->encode()) : std::string("records none"));
  } else if (m && !m->pending) {
    r.bulk(fmt::format("{} {:016x} {} {} {}..{}", m->index, m->digest.value, m->digest.schema_version,
                       m->active_version, app_->oldest_schema_version(), app_->schema_version()));
  } else if (m || index > applied) {  // applied and being hashed (digest_child.cc), or not applied yet
    r.bulk(fmt::format("pending {}", applied));
  } else {
    r.bulk(fmt::format("none {} {}", applied, replica_->digest_marks().oldest_index()));
  }
}

core::ShellResult Node::cluster_command(Session& s, Args argv, uint64_t seq, std::string* out) {
  Reply r(out);
  const std::string_view sub = argv[1];
  if (iequals(sub, "SCHEMA")) return schema_command(s, argv, seq, out);
  if (iequals(sub, "DIGEST")) return digest_mark_command(s, argv, seq, out);
  if (!options_.clustered()) {
    r.error("ERR this node runs alone (started without --peer-addr): membership commands need a cluster");
    return core::ShellResult::kReplied;
  }
  if (!replica_->leader()) {
    out->append(replica_->redirect_reply());
    return core::ShellResult::kReplied;
  }
  const size_t want = iequals(sub, "ADDLEARNER") ? 5 : 3;
  uint64_t id = 0;
  if (argv.size() != want || !parse_uint64(argv[2], &id) || id == 0) {
    r.error(iequals(sub, "ADDLEARNER") ? "ERR usage: CLUSTER ADDLEARNER <id> <client host:port> <peer host:port>"
                                      : fmt::format("ERR usage: CLUSTER {} <id> (a positive node id)", std::string(sub)));
    return core::ShellResult::kReplied;
  }
  const raft::Status st = raft_->status();
  const bool voter = std::count(st.conf.voters.begin(), st.conf.voters.end(), id) > 0;
  const bool learner = std::count(st.conf.learners.begin(), st.conf.learners.end(), id) > 0;

  if (iequals(sub, "TRANSFER")) {
    if (!voter) {
      r.error(fmt::format("ERR node {} is not a voter", id));
      return core::ShellResult::kReplied;
    }
    if (id == options_.node_id) {
      r.ok();
      return core::ShellResult::kReplied;
    }
    // A node whose binary does not read the active version would not take it (it stopped
    // applying, or will: docs/cluster.md, "Schema versions").
    if (uint32_t oldest = 0, newest = 0; transport_ && transport_->schema_versions_of(id, &oldest, &newest)) {
      const uint32_t active = app_->active_schema_version();
      if (active < oldest || active > newest) {
        r.error(fmt::format("ERR node {} reads schema versions {}..{}, not the active version {}: it cannot lead",
                            id, oldest, newest, active));
        return core::ShellResult::kReplied;
      }
    }
    replica_->transfer(id, s.id(), seq, turn_steady_ms_ + kClusterCommandTimeoutMs, kClusterCommandTimeoutMs);
    log_line("cluster: transferring leadership to node {}", id);
    return core::ShellResult::kWaitCluster;
  }

  raft::ConfChange cc;
  cc.node = id;
  ServerOptions::MemberAddr addr;
  if (iequals(sub, "ADDLEARNER")) {
    if (voter || learner) {
      r.error(fmt::format("ERR node {} is already a {}", id, voter ? "voter" : "learner"));
      return core::ShellResult::kReplied;
    }
    std::string context = std::string(argv[3]) + " " + std::string(argv[4]);
    if (!parse_member_context(context, &addr)) {
      r.error("ERR addresses must be IPv4_HOST:PORT");
      return core::ShellResult::kReplied;
    }
    context += "\n" + encode_members();  // every member's address, for the new node
    cc.type = raft::ConfChangeType::kAddLearner;
    cc.context = std::move(context);
  } else if (iequals(sub, "PROMOTE")) {
    if (!learner) {
      r.error(fmt::format("ERR node {} is not a learner{}", id, voter ? " (it is a voter already)" : ""));
      return core::ShellResult::kReplied;
    }
    raft::Index match = 0;
    for (const auto& p : st.progress)
      if (p.id == id) match = p.match;
    if (st.last_index > match + kPromoteMaxLagEntries) {
      r.error(fmt::format("ERR learner {} is {} entries behind (at most {} allowed): wait until it caught up "
                          "(INFO replication) and retry",
                          id, st.last_index - match, kPromoteMaxLagEntries));
      return core::ShellResult::kReplied;
    }
    cc.type = raft::ConfChangeType::kPromote;
  } else if (iequals(sub, "REMOVE")) {
    if (!voter && !learner) {
      r.error(fmt::format("ERR node {} is not a member", id));
      return core::ShellResult::kReplied;
    }
    cc.type = raft::ConfChangeType::kRemove;
  } else {
    r.error("ERR unknown CLUSTER subcommand");
    return core::ShellResult::kReplied;
  }

  raft::ProposeResult pr = replica_->propose_membership(cc, s.id(), seq);
  switch (pr.error) {
    case raft::ProposeError::kNone: {
      if (cc.type == raft::ConfChangeType::kAddLearner) members_[id] = addr;
      sync_transport_members();
      log_line("cluster: proposed {} {} at index {}", std::string(sub), id, pr.index);
      return core::ShellResult::kWaitCluster;
    }
    case raft::ProposeError::kNotLeader: out->append(replica_->redirect_reply()); break;
    // For a membership change, busy means one change at a time: an earlier change, or this
    // term's first entry (a leader just elected), is not committed yet. "the leader is busy"
    // is what `hmdb cluster` retries on.
    case raft::ProposeError::kBusy:
      r.error("ERR the leader is busy (an earlier membership change or this term's first entry is not committed "
              "yet); retry");
      break;
    case raft::ProposeError::kTransferring: out->append("-TRYAGAIN leadership transfer in progress; retry\r\n"); break;
    case raft::ProposeError::kRejected:
      r.error("ERR membership change refused: another change is still uncommitted, or it would remove the last voter");
      break;
  }
  return core::ShellResult::kReplied;
}

void Node::apply_conf_change(const raft::Entry& e) {
  raft::ConfChange cc;
  std::optional<raft::ConfState> after;
  if (!raft::decode_conf_change_entry(e.data, &cc, &after)) {
    fatal(kExitCorruption, "log entry {} holds a malformed membership change", e.index);
  }
  ServerOptions::MemberAddr m;
  if ((cc.type == raft::ConfChangeType::kAddLearner || cc.type == raft::ConfChangeType::kAddVoter) &&
      parse_member_context(cc.context, &m)) {
    learn_member_lines(cc.context);
    members_[cc.node] = m;
  }
  if (cc.type == raft::ConfChangeType::kRemove && cc.node != options_.node_id) {
    members_.erase(cc.node);
    if (transport_) transport_->set_address(cc.node, "");
  }
  if (!replaying_)
    log_line("cluster: applied membership change at index {}: {} node {}", e.index,
             cc.type == raft::ConfChangeType::kAddLearner ? "add learner"
             : cc.type == raft::ConfChangeType::kPromote  ? "promote"
             : cc.type == raft::ConfChangeType::kRemove   ? "remove"
                                                          : "add voter",
             cc.node);
  sync_transport_members();
  if (cc.type == raft::ConfChangeType::kRemove && cc.node == options_.node_id && !replaying_)
    stop_removed(e.index, "applied here");
}

// A removed node is not told by the log: once the change removing it commits, the leader
// stops replicating to it, so it usually never applies its own removal. It learns it from
// the members' refusals instead (like etcd's "member removed"): refused as a non-member by
// a committed membership newer than any it knows with itself (net::refusal_proves_removal).
// A new learner refused by a member that has not appended its addition yet, or a --join
// node not added yet, knows no such membership and goes on.
void Node::on_peer_refusal(const net::PeerRefusal& r) {
  if (exit_code_ == kExitRemoved) return;
  const raft::Status st = raft_->status();
  if (!net::refusal_proves_removal(r, net::peer::cluster_id_from_name(options_.cluster_id), options_.node_id,
                                   st.self_conf_index))
    return;
  stop_removed(r.refusal.config_index, fmt::format("told by node {}", r.refusal.from));
}

void Node::stop_removed(raft::Index config_index, const std::string& how) {
  if (exit_code_ == kExitRemoved) return;
  log_line("this node (id {}) was removed from the cluster by the configuration at index {} ({}); it stops",
           options_.node_id, config_index, how);
  exit_code_ = kExitRemoved;
  stop_requested_.store(true);  // run() drains and flushes replies as for SIGTERM
}

// ---------------------------------------------------------------------------------------
// Introspection

std::string Node::members_text() const {
  const raft::Status st = raft_->status();
  std::string t;
  auto one = [&](raft::NodeId id, const char* kind) {
    auto it = members_.find(id);
    std::string client = it != members_.end() ? it->second.client : "?";
    std::string peer = it != members_.end() ? it->second.peer : "?";
    if (client == "?" && transport_ && transport_->client_addr_of(id)) client = *transport_->client_addr_of(id);
    if (peer == "?" && transport_ && transport_->peer_addr_of(id)) peer = *transport_->peer_addr_of(id);
    if (id == options_.node_id && client == "?") client = format_host_port(options_.bind, port_);
    if (id == options_.node_id && peer == "?" && !options_.clustered()) peer = "-";
    t += fmt::format("{} {} {} {}{}{}\n", id, client, peer, kind, id == st.leader ? " leader" : "",
                     id == options_.node_id ? " myself" : "");
  };
  for (auto id : st.conf.voters) one(id, "voter");
  for (auto id : st.conf.learners) one(id, "learner");
  return t;
}

// ---------------------------------------------------------------------------------------
// The Redis Cluster view (cluster_topology.h): one shard owning every slot, the leader its
// master, the other members its replicas.

ClusterTopology Node::cluster_topology() const {
  const raft::Status st = raft_->status();
  ClusterTopology t;
  t.epoch = st.term;
  t.state_ok = st.leader != raft::kNoNode;
  std::vector<net::PeerTransport::PeerStats> peers;
  if (transport_) peers = transport_->stats();
  for (const auto& p : peers) {
    t.messages_sent += p.msgs_sent;
    t.messages_received += p.msgs_received;
  }
  // During an election (no leader known) the last leader this node knew stays the master,
  // as a Redis node keeps listing a failing master until a replica is promoted: its clients
  // then find it gone and ask again.
  raft::NodeId master = st.leader != raft::kNoNode ? st.leader : last_known_leader_;
  // A node that has known no leader since it started (restarted during an election, or
  // with no majority up) still presents one master owning every slot: itself if it votes,
  // else the first voter. With no slots at all a client that refreshed its topology here
  // would have nowhere to send anything (node-redis 6 then fails every command and never
  // asks again); with a nominal master its commands get -CLUSTERDOWN, or -MOVED to the real
  // leader once one is known, and it asks again. CLUSTER INFO says cluster_state:fail.
  if (master == raft::kNoNode) {
    const auto& voters = st.conf.voters;
    if (std::count(voters.begin(), voters.end(), options_.node_id) > 0) master = options_.node_id;
    else if (!voters.empty()) master = *std::min_element(voters.begin(), voters.end());
  }
  const bool leading = st.role == raft::Role::kLeader;

  ClusterTopology::Shard shard;
  shard.name = redis_shard_name(options_.cluster_id, 0);
  shard.slots = {{0, core::kClusterSlots - 1}};
  auto add = [&](raft::NodeId id) {
    ClusterTopology::Node n;
    HostPort client, peer;
    if (!member_client_address(id, &client)) return false;  // a client could not reach it
    n.id = id;
    n.name = redis_node_name(options_.cluster_id, id);
    n.host = client.host;
    n.port = client.port;
    std::string error;
    if (auto it = members_.find(id); it != members_.end() && parse_host_port(it->second.peer, &peer, &error))
      n.bus_port = peer.port;
    n.myself = id == options_.node_id;
    if (n.myself) n.offset = replica_->applied_index();
    for (const raft::Status::Progress& p : st.progress)
      if (p.id == id && !n.myself) n.offset = p.match;
    if (leading && !n.myself)
      for (const auto& p : peers)
        if (p.id == id) n.reachable = p.connected;
    shard.nodes.push_back(std::move(n));
    return true;
  };
  const bool master_is_voter = std::count(st.conf.voters.begin(), st.conf.voters.end(), master) > 0;
  shard.has_master = master_is_voter && add(master);
  for (raft::NodeId id : st.conf.voters)
    if (!(shard.has_master && id == master)) add(id);
  for (raft::NodeId id : st.conf.learners) add(id);
  t.shards.push_back(std::move(shard));
  return t;
}

}  // namespace hmdb::server
