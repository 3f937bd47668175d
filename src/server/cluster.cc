// server/cluster.cc — the node's cluster side: peers, redirects, linearizable reads,
// snapshot transfer to and from peers, membership commands and INFO replication.
//
// The write path is the single node's (node.cc): the only differences are that raft's
// messages go to the PeerTransport between persist and apply, that an entry commits once
// a majority (not just this disk) has it durably, and that only the leader serves clients.
//
//   follower:  app command          -> -MOVED 0 <leader client addr> (or -CLUSTERDOWN)
//              READONLY + query     -> served from the local applied state (stale)
//   leader:    write                -> batch -> propose -> majority durable -> apply -> reply
//              query (several voters) -> read_index round (one per loop turn for all the
//                                      reads of that turn) -> applied >= index -> run
//
// Member addresses: each member's client and peer address travel in the context of the
// membership change that added it (CLUSTER ADDLEARNER), in --initial-cluster for the first
// voters, and in every snapshot's header (cluster info), so that a node that catches up by
// snapshot knows every peer. docs/cluster.md is the operator's view.
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <sstream>

#include "common/assert.h"
#include "hmdb/app.h"
#include "server/logging.h"
#include "server/node.h"
#include "storage/snapshot.h"

namespace hmdb::server {

namespace {

bool parse_u64(std::string_view s, uint64_t* out) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size() && !s.empty();
}

const char* role_name(raft::Role r) {
  switch (r) {
    case raft::Role::kFollower: return "follower";
    case raft::Role::kPreCandidate: return "precandidate";
    case raft::Role::kCandidate: return "candidate";
    case raft::Role::kLeader: return "leader";
    case raft::Role::kLearner: return "learner";
  }
  return "?";
}

// The context of a membership change that adds a node: "<client addr> <peer addr>", then
// (CLUSTER ADDLEARNER) one line "<id> <client addr> <peer addr>" per member at that time,
// so that a node catching up by log learns every member's address, not only its own.
bool parse_member_context(std::string_view context, ServerOptions::MemberAddr* out) {
  context = context.substr(0, context.find('\n'));
  size_t sp = context.find(' ');
  if (sp == std::string_view::npos) return false;
  std::string client(context.substr(0, sp)), peer(context.substr(sp + 1));
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(client, &host, &port) || !split_host_port(peer, &host, &port)) return false;
  out->client = std::move(client);
  out->peer = std::move(peer);
  return true;
}

// One line of the member list (snapshot cluster info, ADDLEARNER context):
// "<id> <client addr> <peer addr>".
bool parse_member_line(std::string_view line, uint64_t* id, ServerOptions::MemberAddr* m) {
  size_t sp = line.find(' ');
  return sp != std::string_view::npos && parse_u64(line.substr(0, sp), id) &&
         parse_member_context(line.substr(sp + 1), m);
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Options

bool split_host_port(const std::string& addr, std::string* host, uint16_t* port) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  uint64_t p = 0;
  if (!parse_u64(std::string_view(addr).substr(colon + 1), &p) || p == 0 || p > 65535) return false;
  std::string h = addr.substr(0, colon);
  unsigned a, b, c, d;
  char tail;
  if (std::sscanf(h.c_str(), "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 || c > 255 || d > 255)
    return false;
  *host = std::move(h);
  *port = static_cast<uint16_t>(p);
  return true;
}

Status parse_initial_cluster(const std::string& text, std::map<uint64_t, ServerOptions::MemberAddr>* out) {
  out->clear();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    size_t eq = item.find('='), at = item.find('@');
    uint64_t id = 0;
    if (eq == std::string::npos || at == std::string::npos || at < eq || !parse_u64(item.substr(0, eq), &id) || id == 0)
      return Status::invalid_argument("--initial-cluster: '" + item +
                                      "' is not ID=CLIENT_HOST:PORT@PEER_HOST:PORT (ID a positive integer)");
    ServerOptions::MemberAddr m;
    m.client = item.substr(eq + 1, at - eq - 1);
    m.peer = item.substr(at + 1);
    std::string host;
    uint16_t port = 0;
    if (!split_host_port(m.client, &host, &port) || !split_host_port(m.peer, &host, &port))
      return Status::invalid_argument("--initial-cluster: '" + item + "': addresses must be IPv4_HOST:PORT");
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
  std::string host;
  uint16_t port = 0;
  if (!split_host_port(o.peer_addr, &host, &port)) return Status::invalid_argument("--peer-addr must be IPv4_HOST:PORT");
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
  std::string host;
  uint16_t port = 0;
  split_host_port(options_.peer_addr, &host, &port);
  net::PeerTransportOptions o;
  o.cluster_id = net::peer::cluster_id_from_name(options_.cluster_id);
  o.self = options_.node_id;
  o.listen_host = host;
  o.listen_port = port;
  o.advertise_peer_addr = options_.peer_addr;
  o.advertise_client_addr = fmt::format("{}:{}", options_.bind, port_);
  o.max_queue_bytes_per_peer = kPeerQueueBytesPerPeer;
  o.log = [](const std::string& line) { log_line("peers: {}", line); };
  o.on_refused = [this](const net::PeerRefusal& r) { on_peer_refusal(r); };
  Status s = net::PeerTransport::open(o, &transport_);
  if (!s) return s;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kEpollTagPeers;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, transport_->fd(), &ev) != 0)
    return Status::io_error(std::string("epoll_ctl(peers): ") + std::strerror(errno));
  members_[options_.node_id] = ServerOptions::MemberAddr{o.advertise_client_addr, options_.peer_addr};
  sync_transport_members();
  last_role_ = raft_->role();
  return Status::ok();
}

void Node::poll_peers() {
  if (!transport_) return;
  received_.clear();
  transport_->poll(steady_now_ms(), &received_);
  for (const raft::Message& m : received_) raft_->step(m);
  // Handle the Readies now: a snapshot the core accepted must be installed before anything
  // else in this turn (e.g. a SNAPSHOT command) looks at the applied state.
  if (!received_.empty()) drive_raft();
}

bool Node::is_leader() const { return raft_->role() == raft::Role::kLeader; }

bool Node::reads_need_index() const { return options_.clustered() && is_leader() && voter_count_ > 1; }

std::string Node::redirect_reply() const {
  const raft::NodeId leader = raft_->leader();
  if (leader == raft::kNoNode || leader == options_.node_id) return "-CLUSTERDOWN no leader known; retry\r\n";
  std::string addr;
  if (auto it = members_.find(leader); it != members_.end()) addr = it->second.client;
  if (addr.empty() && transport_)
    if (const std::string* a = transport_->client_addr_of(leader)) addr = *a;
  if (addr.empty()) return fmt::format("-CLUSTERDOWN the leader is node {}, whose address is unknown here; retry\r\n", leader);
  return fmt::format("-MOVED 0 {}\r\n", addr);
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
  const raft::Status st = raft_->status();
  voter_count_ = st.conf.voters.size();
  if (!transport_) return;
  std::vector<raft::NodeId> ids = st.conf.voters;
  ids.insert(ids.end(), st.conf.learners.begin(), st.conf.learners.end());
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

void Node::on_role_change(raft::Role before) {
  const raft::Role now = raft_->role();
  if (before == raft::Role::kLeader || now == raft::Role::kLeader) leader_changes_++;
  log_line("raft: {} -> {} in term {} (leader: {})", role_name(before), role_name(now), raft_->term(), raft_->leader());
  if (before == raft::Role::kLeader && now != raft::Role::kLeader) {
    // The core drops its pending read-index requests when it steps down.
    fail_reads(redirect_reply());
  }
  sync_transport_members();
}

// ---------------------------------------------------------------------------------------
// Snapshots between peers

void Node::stage_snapshot_chunk(const raft::SnapshotChunk& c) {
  if (c.offset == 0) {
    if (staging_file_) {
      staging_file_->close();
      env_->remove_file(staging_path_);
    }
    staging_file_.reset();
    staging_path_ = options_.dir + "/" + storage::snapshot_file_name(c.meta.index) + std::string(storage::kTempSuffix);
    Status s = env_->new_writable_file(staging_path_, &staging_file_);
    if (!s) {
      fatal(kExitDiskFailure, "cannot create {} for the leader's snapshot: {}", staging_path_, s.to_string());
    }
    staging_meta_ = c.meta;
    staging_bytes_ = 0;
    log_line("snapshot: receiving the leader's snapshot at index {} ({} bytes)", c.meta.index, c.total);
  }
  HMDB_ASSERT(staging_file_ && staging_meta_ == c.meta && c.offset == staging_bytes_,
              "snapshot chunk at offset %llu out of order (%llu staged)", static_cast<unsigned long long>(c.offset),
              static_cast<unsigned long long>(staging_bytes_));
  Status s = staging_file_->append(c.data);
  if (!s) {
    fatal(kExitDiskFailure, "writing the leader's snapshot to {} failed: {}", staging_path_, s.to_string());
  }
  staging_bytes_ += c.data.size();
}

void Node::install_snapshot(const raft::Snapshot& snap) {
  const raft::SnapshotMeta& meta = snap.meta;
  HMDB_ASSERT(staging_file_ && staging_meta_ == meta, "snapshot install without its staged chunks");
  const uint64_t t0 = steady_now_ms();
  Status s = staging_file_->sync();
  if (s) s = staging_file_->close();
  if (!s) {
    fatal(kExitDiskFailure, "syncing the leader's snapshot {} failed: {}", staging_path_, s.to_string());
  }
  staging_file_.reset();
  storage::LoadedSnapshot loaded;
  s = storage::read_snapshot_file(env_, staging_path_, &loaded);
  if (!s || !(loaded.meta == meta)) {
    fatal(kExitCorruption,
          "the snapshot received from the leader is unusable: {}. Nothing was applied from it; restart this node to "
          "fetch it again.",
          !s ? s.to_string()
             : fmt::format("it is at index {} term {}, the leader announced index {} term {}", loaded.meta.index,
                           loaded.meta.term, meta.index, meta.term));
  }
  if (loaded.app_name != app_->app_name() || meta.schema_version > app_->schema_version()) {
    // Sound data this binary cannot serve: the code recovery.cc uses for such a snapshot at
    // startup (not kExitCorruption: nothing is damaged, and fetching it again would not help).
    fatal(kExitStartupFailure,
          "the snapshot received from the leader is of app '{}' schema {} (index {}), this node is app '{}' schema "
          "{}. Nothing was applied from it; start the right binary, or upgrade this one.",
          loaded.app_name, meta.schema_version, meta.index, app_->app_name(), app_->schema_version());
  }
  const std::string final_path = options_.dir + "/" + storage::snapshot_file_name(meta.index);
  s = env_->rename_file(staging_path_, final_path);
  if (s) s = env_->sync_dir(options_.dir);
  if (!s) {
    fatal(kExitDiskFailure, "installing the leader's snapshot as {} failed: {}", final_path, s.to_string());
  }
  app_->clear();
  Decoder in(loaded.payload);
  if (!app_->load(in, meta.schema_version)) {
    fatal(kExitCorruption, "app '{}' could not decode the leader's snapshot {} (schema {})", app_->app_name(),
          final_path, meta.schema_version);
  }
  if (!loaded.cluster_info.empty()) decode_members(loaded.cluster_info);
  applied_index_ = meta.index;
  applied_term_ = meta.term;
  stats_.last_snapshot_index = meta.index;
  log_bytes_since_snapshot_ = 0;
  s = storage::remove_snapshots_before(env_, options_.dir, meta.index);
  if (!s) log_line("warning: could not remove snapshots older than index {}: {}", meta.index, s.to_string());
  if (disk_) disk_->request_compact(meta.index);
  sync_transport_members();
  log_line("snapshot: installed the leader's snapshot at index {} term {} ({} bytes) in {} ms", meta.index, meta.term,
           loaded.file_bytes, steady_now_ms() - t0);
}

void Node::answer_snapshot_read(const raft::SnapshotReadRequest& req) {
  // The file is opened for each chunk, not kept open between requests: an open is cheap next
  // to a chunk's read, and a descriptor kept open would pin the disk space of a snapshot that a
  // newer one replaced (a follower that stops asking would hold it with no bound in time).
  const std::string path = options_.dir + "/" + storage::snapshot_file_name(req.meta.index);
  std::unique_ptr<storage::RandomAccessFile> file;
  Status s = env_->new_random_access_file(path, &file);
  if (!s) {
    // Replaced by a newer snapshot meanwhile: the core asks again (for the newest one).
    log_line("snapshot: cannot read {} for node {}: {}", path, req.to, s.to_string());
    return;
  }
  const uint64_t total = file->size();
  if (req.offset > total) return;
  const uint64_t length = std::min<uint64_t>(req.length, total - req.offset);
  std::string bytes;
  s = file->read(req.offset, length, &bytes);
  if (!s || bytes.size() != length) {
    log_line("snapshot: short read of {} at offset {} for node {}{}", path, req.offset, req.to,
             s ? "" : ": " + s.to_string());
    return;
  }
  const bool last = req.offset + bytes.size() == total;
  raft_->snapshot_chunk(req.to, req.meta, req.offset, total, std::move(bytes), last);
}

// ---------------------------------------------------------------------------------------
// Linearizable reads on the leader

void Node::queue_read(Session& s, uint64_t seq) {
  s.waiting_reads++;
  read_batch_.emplace_back(s.id, seq);
}

void Node::start_reads() {
  if (read_batch_.empty()) return;
  const uint64_t context = next_read_context_++;
  if (!is_leader() || !raft_->read_index(context)) {
    std::vector<std::pair<uint64_t, uint64_t>> slots;
    slots.swap(read_batch_);
    const std::string reply = redirect_reply();
    for (auto [id, seq] : slots) complete_read(id, seq, &reply);
    return;
  }
  reads_asked_.emplace(context, std::move(read_batch_));
  read_batch_.clear();
}

void Node::finish_reads() {
  for (size_t i = 0; i < reads_ready_.size();) {
    if (reads_ready_[i].first > applied_index_) {
      i++;
      continue;
    }
    auto slots = std::move(reads_ready_[i].second);
    reads_ready_[i] = std::move(reads_ready_.back());
    reads_ready_.pop_back();
    for (auto [id, seq] : slots) complete_read(id, seq, nullptr);
  }
}

void Node::fail_reads(const std::string& reply) {
  std::vector<std::pair<uint64_t, uint64_t>> all;
  all.swap(read_batch_);
  for (auto& [ctx, slots] : reads_asked_) all.insert(all.end(), slots.begin(), slots.end());
  reads_asked_.clear();
  for (auto& [index, slots] : reads_ready_) all.insert(all.end(), slots.begin(), slots.end());
  reads_ready_.clear();
  for (auto [id, seq] : all) complete_read(id, seq, &reply);
}

void Node::complete_read(uint64_t session_id, uint64_t seq, const std::string* reply) {
  Session* s = find_session(session_id);
  if (!s) return;
  HMDB_ASSERT(seq >= s->pending_base_seq && seq - s->pending_base_seq < s->pending.size(), "read slot out of range");
  Pending& p = s->pending[seq - s->pending_base_seq];
  HMDB_ASSERT(p.kind == Pending::Kind::kWaitingRead, "read slot in the wrong state");
  if (reply) {
    p.reply = *reply;
  } else {
    std::vector<std::string_view> argv(p.argv.begin(), p.argv.end());
    p.reply.clear();
    run_now(*s, argv, &p.reply);
  }
  p.kind = Pending::Kind::kDone;
  p.argv.clear();
  p.argv.shrink_to_fit();
  s->waiting_reads--;
  if (!s->in_drain) {
    s->in_drain = true;
    to_drain_.push_back(s->id);
  }
}

// ---------------------------------------------------------------------------------------
// CLUSTER commands that wait: ADDLEARNER, PROMOTE, REMOVE, TRANSFER

bool Node::is_barrier_command(std::span<const std::string_view> argv) {
  if (is_snapshot_command(argv[0])) return true;
  if (!iequals(argv[0], "CLUSTER") || argv.size() < 2) return false;
  return iequals(argv[1], "ADDLEARNER") || iequals(argv[1], "PROMOTE") || iequals(argv[1], "REMOVE") ||
         iequals(argv[1], "TRANSFER");
}

Node::RunResult Node::cluster_command(Session& s, std::span<const std::string_view> argv, uint64_t seq,
                                      std::string* out) {
  Reply r(out);
  const std::string_view sub = argv[1];
  if (!options_.clustered()) {
    r.error("ERR this node runs alone (started without --peer-addr): membership commands need a cluster");
    return RunResult::kReplied;
  }
  if (!is_leader()) {
    out->append(redirect_reply());
    return RunResult::kReplied;
  }
  const size_t want = iequals(sub, "ADDLEARNER") ? 5 : 3;
  uint64_t id = 0;
  if (argv.size() != want || !parse_u64(argv[2], &id) || id == 0) {
    r.error(iequals(sub, "ADDLEARNER") ? "ERR usage: CLUSTER ADDLEARNER <id> <client host:port> <peer host:port>"
                                      : fmt::format("ERR usage: CLUSTER {} <id> (a positive node id)", std::string(sub)));
    return RunResult::kReplied;
  }
  const raft::Status st = raft_->status();
  const bool voter = std::count(st.conf.voters.begin(), st.conf.voters.end(), id) > 0;
  const bool learner = std::count(st.conf.learners.begin(), st.conf.learners.end(), id) > 0;

  if (iequals(sub, "TRANSFER")) {
    if (!voter) {
      r.error(fmt::format("ERR node {} is not a voter", id));
      return RunResult::kReplied;
    }
    if (id == options_.node_id) {
      r.ok();
      return RunResult::kReplied;
    }
    raft_->transfer_leadership(id);
    transfer_waiters_.push_back(TransferWaiter{s.id, seq, id, steady_now_ms() + kClusterCommandTimeoutMs});
    log_line("cluster: transferring leadership to node {}", id);
    return RunResult::kWaitCluster;
  }

  raft::ConfChange cc;
  cc.node = id;
  ServerOptions::MemberAddr addr;
  if (iequals(sub, "ADDLEARNER")) {
    if (voter || learner) {
      r.error(fmt::format("ERR node {} is already a {}", id, voter ? "voter" : "learner"));
      return RunResult::kReplied;
    }
    std::string context = std::string(argv[3]) + " " + std::string(argv[4]);
    if (!parse_member_context(context, &addr)) {
      r.error("ERR addresses must be IPv4_HOST:PORT");
      return RunResult::kReplied;
    }
    context += "\n" + encode_members();  // every member's address, for the new node
    cc.type = raft::ConfChangeType::kAddLearner;
    cc.context = std::move(context);
  } else if (iequals(sub, "PROMOTE")) {
    if (!learner) {
      r.error(fmt::format("ERR node {} is not a learner{}", id, voter ? " (it is a voter already)" : ""));
      return RunResult::kReplied;
    }
    raft::Index match = 0;
    for (const auto& p : st.progress)
      if (p.id == id) match = p.match;
    if (st.last_index > match + kPromoteMaxLagEntries) {
      r.error(fmt::format("ERR learner {} is {} entries behind (at most {} allowed): wait until it caught up "
                          "(INFO replication) and retry",
                          id, st.last_index - match, kPromoteMaxLagEntries));
      return RunResult::kReplied;
    }
    cc.type = raft::ConfChangeType::kPromote;
  } else if (iequals(sub, "REMOVE")) {
    if (!voter && !learner) {
      r.error(fmt::format("ERR node {} is not a member", id));
      return RunResult::kReplied;
    }
    cc.type = raft::ConfChangeType::kRemove;
  } else {
    r.error("ERR unknown CLUSTER subcommand");
    return RunResult::kReplied;
  }

  raft::ProposeResult pr = raft_->propose_conf_change(cc);
  switch (pr.error) {
    case raft::ProposeError::kNone: {
      writes_.track(pr.index, pr.term, 0, {ReplySlot{s.id, seq}},
                    [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) { end_proposal(i, std::move(p), o); });
      if (cc.type == raft::ConfChangeType::kAddLearner) members_[id] = addr;
      sync_transport_members();
      log_line("cluster: proposed {} {} at index {}", std::string(sub), id, pr.index);
      return RunResult::kWaitCluster;
    }
    case raft::ProposeError::kNotLeader: out->append(redirect_reply()); break;
    case raft::ProposeError::kBusy: r.error("ERR the leader is busy (too many uncommitted entries); retry"); break;
    case raft::ProposeError::kTransferring: out->append("-TRYAGAIN leadership transfer in progress; retry\r\n"); break;
    case raft::ProposeError::kRejected:
      r.error("ERR membership change refused: another change is still uncommitted, or it would remove the last voter");
      break;
  }
  return RunResult::kReplied;
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

void Node::check_cluster_waiters() {
  if (transfer_waiters_.empty()) return;
  const uint64_t now = steady_now_ms();
  for (size_t i = 0; i < transfer_waiters_.size();) {
    TransferWaiter& w = transfer_waiters_[i];
    std::string reply;
    if (raft_->leader() == w.target && !is_leader()) reply = "+OK\r\n";
    else if (now >= w.deadline_ms)
      reply = fmt::format("-ERR leadership transfer to node {} did not finish within {} ms (is it caught up and "
                          "reachable?)\r\n",
                          w.target, kClusterCommandTimeoutMs);
    if (reply.empty()) {
      i++;
      continue;
    }
    resolve_slot(w.session, w.seq, Pending::Kind::kWaitingWrite, reply);
    transfer_waiters_[i] = transfer_waiters_.back();
    transfer_waiters_.pop_back();
  }
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
    if (id == options_.node_id && client == "?") client = fmt::format("{}:{}", options_.bind, port_);
    if (id == options_.node_id && peer == "?" && !options_.clustered()) peer = "-";
    t += fmt::format("{} {} {} {}{}{}\n", id, client, peer, kind, id == st.leader ? " leader" : "",
                     id == options_.node_id ? " myself" : "");
  };
  for (auto id : st.conf.voters) one(id, "voter");
  for (auto id : st.conf.learners) one(id, "learner");
  return t;
}

std::string Node::replication_info() const {
  const raft::Status st = raft_->status();
  std::string t;
  auto line = [&t](std::string_view k, const auto& v) { t += fmt::format("{}:{}\r\n", k, v); };
  line("role", role_name(st.role));
  line("redis_role", st.role == raft::Role::kLeader ? "master" : "slave");
  line("clustered", options_.clustered() ? 1 : 0);
  line("node_id", st.id);
  line("term", st.term);
  line("leader_id", st.leader);
  std::string leader_addr;
  if (auto it = members_.find(st.leader); it != members_.end()) leader_addr = it->second.client;
  line("leader_addr", leader_addr);
  line("commit_index", st.commit);
  line("applied_index", applied_index_);
  line("last_index", st.last_index);
  line("first_index", st.first_index);
  line("voters", fmt::format("{}", fmt::join(st.conf.voters, ",")));
  line("learners", fmt::format("{}", fmt::join(st.conf.learners, ",")));
  line("leader_changes", leader_changes_);
  line("inflight_batches", writes_.size());
  line("inflight_bytes", writes_.bytes());
  line("pending_reads", read_batch_.size() + reads_asked_.size() + reads_ready_.size());
  if (transport_) {
    for (const auto& ps : transport_->stats()) {
      std::string state = "-", addr = ps.addr;
      raft::Index match = 0;
      bool found = false;
      for (const auto& p : st.progress) {
        if (p.id != ps.id) continue;
        found = true;
        match = p.match;
        state = p.is_learner ? "learner" : "voter";
      }
      std::string lag = found ? std::to_string(st.last_index > match ? st.last_index - match : 0) : "-";
      line(fmt::format("peer{}", ps.id),
           fmt::format("addr={},connected={},match={},lag={},state={},sent={},dropped={},received={},refused={}", addr,
                       ps.connected ? 1 : 0, match, lag, state, ps.msgs_sent, ps.msgs_dropped, ps.msgs_received,
                       ps.frames_refused));
    }
  }
  return t;
}

}  // namespace hmdb::server
