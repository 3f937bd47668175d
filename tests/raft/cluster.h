// tests/raft/cluster.h — an in-memory cluster of consensus cores for tests and benchmarks:
// synchronous "disk" (a vector per node), a FIFO network with link rules, and a toy state
// machine (the list of applied payloads). It follows raft.h's Ready contract literally, so
// scenario scripts exercise the same order of persist → send → apply → ack as the shell.
#pragma once

#include <algorithm>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/assert.h"
#include "raft/raft.h"

namespace hmdb::raft::testing {

struct MemNode {
  NodeId id = kNoNode;
  Config cfg;
  std::unique_ptr<Raft> raft;
  bool down = false;
  // Durable state.
  HardState hs;
  std::optional<SnapshotMeta> snap;
  std::string snap_data;
  std::vector<Entry> log;  // after the snapshot
  ConfState initial_conf;
  // Snapshot being received.
  std::string staging;
  // The toy state machine: payloads of applied kNormal entries, in order.
  std::vector<std::string> state;
  Index applied = 0;
  std::vector<ReadState> reads;
  // Asynchronous disk (randomized tests): writes wait here until sync(); a crash loses them.
  struct Write {
    std::optional<HardState> hs;
    std::vector<Entry> entries;
    std::optional<SnapshotMeta> snap;
    std::string snap_data;
  };
  std::vector<Write> unsynced;
  // Readies that asked for a fresh snapshot (Ready::snapshot_wanted).
  uint64_t snapshots_wanted = 0;

  Index durable_last_index() const { return log.empty() ? (snap ? snap->index : 0) : log.back().index; }
  Term durable_last_term() const { return log.empty() ? (snap ? snap->term : 0) : log.back().term; }
};

inline std::string join_state(const std::vector<std::string>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (i) out += ',';
    out += s[i];
  }
  return out;
}

inline std::vector<std::string> split_state(const std::string& s) {
  std::vector<std::string> out;
  if (s.empty()) return out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

inline const char* type_name(MessageType t) {
  switch (t) {
    case MessageType::kPreVote: return "PreVote";
    case MessageType::kPreVoteResponse: return "PreVoteResp";
    case MessageType::kVote: return "Vote";
    case MessageType::kVoteResponse: return "VoteResp";
    case MessageType::kAppend: return "App";
    case MessageType::kAppendResponse: return "AppResp";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kHeartbeatResponse: return "HeartbeatResp";
    case MessageType::kSnapshot: return "Snap";
    case MessageType::kSnapshotResponse: return "SnapResp";
    case MessageType::kTimeoutNow: return "TimeoutNow";
    case MessageType::kReadIndex: return "ReadIndex";
    case MessageType::kReadIndexResponse: return "ReadIndexResp";
  }
  return "?";
}

inline const char* role_name(Role r) {
  switch (r) {
    case Role::kFollower: return "follower";
    case Role::kPreCandidate: return "pre-candidate";
    case Role::kCandidate: return "candidate";
    case Role::kLeader: return "leader";
    case Role::kLearner: return "learner";
  }
  return "?";
}

inline std::string format_entry(const Entry& e) {
  std::ostringstream o;
  o << e.index << "/" << e.term << " ";
  if (e.type == EntryType::kNoop) {
    o << "noop";
  } else if (e.type == EntryType::kConfChange) {
    ConfChange cc;
    if (!decode_conf_change(e.data, &cc)) return o.str() + "conf(corrupt)";
    static const char* names[] = {"?", "add-learner", "promote", "remove", "add-voter"};
    o << "conf(" << names[static_cast<int>(cc.type)] << " " << cc.node << ")";
  } else {
    o << '"' << e.data << '"';
  }
  return o.str();
}

inline std::string format_message(const Message& m) {
  std::ostringstream o;
  o << m.from << "->" << m.to << " " << type_name(m.type) << " t" << m.term;
  switch (m.type) {
    case MessageType::kPreVote:
    case MessageType::kVote:
      o << " last=" << m.log_index << "/" << m.log_term;
      if (m.context) o << " transfer";
      break;
    case MessageType::kPreVoteResponse:
    case MessageType::kVoteResponse:
      o << (m.reject ? " rejected" : " granted");
      break;
    case MessageType::kAppend:
      o << " prev=" << m.log_index << "/" << m.log_term << " commit=" << m.commit;
      if (!m.entries.empty()) {
        o << " [";
        for (size_t i = 0; i < m.entries.size(); i++) o << (i ? ", " : "") << format_entry(m.entries[i]);
        o << "]";
      }
      break;
    case MessageType::kAppendResponse:
      if (m.reject) {
        o << " reject prev=" << m.log_index << " hint=" << m.reject_hint << "/" << m.reject_term;
      } else {
        o << " index=" << m.log_index;
      }
      break;
    case MessageType::kHeartbeat:
      o << " commit=" << m.commit;
      if (m.context) o << " ctx=" << m.context;
      break;
    case MessageType::kHeartbeatResponse:
      if (m.context) o << " ctx=" << m.context;
      break;
    case MessageType::kSnapshot:
      o << " snap=" << m.snapshot_meta->index << "/" << m.snapshot_meta->term << " bytes=["
        << m.snapshot_offset << "," << m.snapshot_offset + m.snapshot_chunk.size() << ") of "
        << m.snapshot_total << (m.snapshot_last ? " last" : "");
      break;
    case MessageType::kSnapshotResponse:
      o << (m.reject ? " reject" : "") << " next-offset=" << m.snapshot_offset;
      break;
    case MessageType::kTimeoutNow:
      break;
    case MessageType::kReadIndex:
      o << " ctx=" << m.context;
      break;
    case MessageType::kReadIndexResponse:
      o << " ctx=" << m.context << " index=" << m.log_index;
      break;
  }
  return o.str();
}

class Cluster {
 public:
  std::map<NodeId, MemNode> nodes;
  std::deque<Message> network;
  std::set<std::pair<NodeId, NodeId>> cut;  // directed links that drop everything
  std::function<void(const std::string&)> out = [](const std::string&) {};
  // Optional: drop/duplicate decisions for randomized tests (return true to drop).
  std::function<bool(const Message&)> lossy;
  // false: writes become durable only at sync(id), and crash() loses what was not synced.
  bool sync_disk = true;
  std::function<void(NodeId, const Entry&)> on_apply;
  // A Ready's snapshot_wanted: take the snapshot at once (compact()), as a shell with no
  // snapshot running does. false: only count it (MemNode::snapshots_wanted).
  bool snapshot_when_wanted = true;

  // Creates node `id` with empty storage and the given initial membership.
  void add_node(NodeId id, const Config& base, const ConfState& conf) {
    MemNode& n = nodes[id];
    n.id = id;
    n.cfg = base;
    n.cfg.id = id;
    n.initial_conf = conf;
    start(n);
  }

  // (Re)creates the core from the node's durable storage: a crash loses nothing here
  // because this disk is synchronous; the state machine restarts from the snapshot.
  void start(MemNode& n) {
    RestoreState rs;
    rs.hard_state = n.hs;
    rs.snapshot = n.snap;
    rs.entries = n.log;
    rs.initial_conf = n.initial_conf;
    n.raft = std::make_unique<Raft>(n.cfg, std::move(rs));
    n.state = split_state(n.snap ? n.snap_data : std::string());
    n.applied = n.snap ? n.snap->index : 0;
    n.staging.clear();
    n.down = false;
  }

  // A crash: the process dies; of the writes not yet synced, the first `keep` reached the
  // disk anyway (a disk may write before fsync), the rest are lost.
  void crash(NodeId id, size_t keep = 0) {
    MemNode& n = nodes.at(id);
    n.down = true;
    n.raft.reset();
    for (size_t i = 0; i < keep && i < n.unsynced.size(); i++) write_durable(n, n.unsynced[i]);
    n.unsynced.clear();
  }

  static void write_durable(MemNode& n, MemNode::Write& w) {
    if (w.snap) {
      n.snap = w.snap;
      n.snap_data = std::move(w.snap_data);
      n.log.clear();
    }
    if (w.hs) n.hs = *w.hs;
    if (!w.entries.empty()) {
      Index first = w.entries.front().index;
      while (!n.log.empty() && n.log.back().index >= first) n.log.pop_back();
      for (auto& e : w.entries) n.log.push_back(std::move(e));
    }
  }

  // Makes the node's pending writes durable and tells the core (group commit).
  void sync(NodeId id) {
    MemNode& n = nodes.at(id);
    if (n.down || n.unsynced.empty()) return;
    for (auto& w : n.unsynced) write_durable(n, w);
    n.unsynced.clear();
    ack(n);
  }

  static void ack(MemNode& n) {
    PersistAck a;
    a.hard_state = n.hs;
    a.last_index = n.durable_last_index();
    a.last_term = n.durable_last_term();
    n.raft->persisted(a);
  }

  void restart(NodeId id) { start(nodes.at(id)); }

  bool link_cut(NodeId from, NodeId to) const { return cut.count({from, to}) > 0; }

  // Handles every Ready of node `id`, in the contract's order. Returns whether it did work.
  bool process_ready(NodeId id) {
    MemNode& n = nodes.at(id);
    if (n.down) return false;
    bool any = false;
    while (n.raft->has_ready()) {
      any = true;
      // Even-numbered nodes take committed entries by reference, odd ones as copies, so
      // every test runs both hand-out paths of take_ready() side by side.
      const bool by_ref = id % 2 == 0;
      Ready rd = n.raft->take_ready(ReadyOptions{.committed_by_reference = by_ref});
      HMDB_ASSERT(by_ref ? rd.committed.empty() : rd.committed_refs.empty(), "committed handed out both ways");
      std::vector<const Entry*> committed = std::move(rd.committed_refs);
      if (!by_ref) {
        for (const Entry& e : rd.committed) committed.push_back(&e);
      }
      // 0. stage snapshot chunks; 1. persist snapshot, hard state, entries.
      for (auto& c : rd.snapshot_chunks) {
        if (c.offset == 0) n.staging.clear();
        HMDB_ASSERT(c.offset == n.staging.size(), "chunk out of order");
        n.staging += c.data;
      }
      MemNode::Write w;
      if (rd.snapshot) {
        w.snap = rd.snapshot->meta;
        w.snap_data = n.staging;
        n.state = split_state(n.staging);
        n.applied = rd.snapshot->meta.index;
        out(std::to_string(id) + " installed snapshot " + std::to_string(w.snap->index) + "/" +
            std::to_string(w.snap->term));
      }
      w.hs = rd.hard_state;
      w.entries = rd.entries;
      bool wrote = rd.hard_state || !rd.entries.empty() || rd.snapshot;
      if (wrote) n.unsynced.push_back(std::move(w));
      // 2. send.
      for (auto& m : rd.messages) network.push_back(std::move(m));
      // 3. apply.
      for (const Entry* ep : committed) {
        const Entry& e = *ep;
        HMDB_ASSERT(e.index == n.applied + 1, "node %llu applies %llu after %llu",
                    (unsigned long long)id, (unsigned long long)e.index, (unsigned long long)n.applied);
        if (e.type == EntryType::kNormal) n.state.push_back(e.data);
        n.applied = e.index;
        if (on_apply) on_apply(id, e);
      }
      if (!committed.empty()) n.raft->applied_to(n.applied);
      // 4. reads.
      for (auto& r : rd.read_states) {
        n.reads.push_back(r);
        out(std::to_string(id) + " read ctx=" + std::to_string(r.context) + " index=" +
            std::to_string(r.index));
      }
      // 5. the write completed.
      if (wrote && sync_disk) sync(id);
      // 6. snapshot reads (leader).
      for (auto& req : rd.snapshot_reads) {
        if (!n.snap || !(*n.snap == req.meta)) continue;  // gone: the core will ask again
        uint64_t total = n.snap_data.size();
        uint64_t end = std::min<uint64_t>(total, req.offset + req.length);
        n.raft->snapshot_chunk(req.to, req.meta, req.offset, total,
                               n.snap_data.substr(req.offset, end - req.offset), end == total);
      }
      // 7. a fresh snapshot asked for (leader, Config::log_memory_bytes).
      if (rd.snapshot_wanted) {
        n.snapshots_wanted++;
        out(std::to_string(id) + " snapshot wanted");
        if (snapshot_when_wanted) compact(id);
      }
    }
    return any;
  }

  // Takes a snapshot of node `id` at its applied index (or at `at`, an applied index not
  // older than its snapshot: the state as it was right after applying that entry, as a
  // shell that snapshots between two entries of one Ready would) and compacts its log.
  // Returns false if there is nothing new to snapshot or the entries are not durable yet.
  bool compact(NodeId id, Index at = 0) {
    MemNode& n = nodes.at(id);
    if (at == 0) at = n.applied;
    if (n.down || at > n.applied || n.applied > n.durable_last_index()) return false;
    if (at == 0 || (n.snap && n.snap->index >= at)) return false;
    // An install accepted by the core but not yet handled here: snapshot after it.
    if (n.applied + 1 < n.raft->status().first_index) return false;
    SnapshotMeta meta;
    meta.index = at;
    meta.term = 0;
    std::vector<std::string> state = n.state;
    for (auto& e : n.log) {
      if (e.index == at) meta.term = e.term;
      if (e.index > at && e.index <= n.applied && e.type == EntryType::kNormal) state.pop_back();
    }
    meta.conf = n.raft->conf_state_at(at);
    n.snap = meta;
    n.snap_data = join_state(state);
    n.log.erase(std::remove_if(n.log.begin(), n.log.end(), [&](const Entry& e) { return e.index <= meta.index; }),
                n.log.end());
    n.raft->snapshot_saved(meta);
    return true;
  }

  // One round: every node handles its Ready, then every message in flight is delivered.
  // Returns false when there was nothing to do.
  bool deliver_round(bool verbose) {
    bool any = false;
    for (auto& [id, n] : nodes) any |= process_ready(id);
    std::deque<Message> msgs;
    msgs.swap(network);
    for (auto& m : msgs) {
      any = true;
      auto it = nodes.find(m.to);
      bool drop = it == nodes.end() || it->second.down || link_cut(m.from, m.to) ||
                  (lossy && lossy(m));
      if (verbose) out((drop ? "dropped " : "") + format_message(m));
      if (!drop) it->second.raft->step(m);
    }
    return any;
  }

  // Rounds until nothing moves. Bounded so that a livelock fails instead of hanging.
  static constexpr int kMaxStabilizeRounds = 10000;
  // As stabilize(false), but a livelock (still moving after kMaxStabilizeRounds) returns
  // false instead of failing the process, for a harness that reports it with its seed.
  bool try_stabilize() {
    for (int i = 0; i < kMaxStabilizeRounds; i++) {
      if (!deliver_round(false)) return true;
    }
    return false;
  }
  void stabilize(bool verbose) {
    for (int i = 0; i < kMaxStabilizeRounds; i++) {
      if (!deliver_round(verbose)) return;
    }
    // Show what keeps moving before failing.
    out = [](const std::string& s) { std::fprintf(stderr, "  %s\n", s.c_str()); };
    for (int i = 0; i < 3; i++) {
      std::fprintf(stderr, "round:\n");
      deliver_round(true);
    }
    for (auto& [id, n] : nodes) std::fprintf(stderr, "%s\n", status_line(id).c_str());
    HMDB_ASSERT(false, "cluster did not stabilize within %d rounds", kMaxStabilizeRounds);
  }

  void tick(NodeId id) {
    MemNode& n = nodes.at(id);
    if (!n.down) n.raft->tick();
  }

  std::string status_line(NodeId id) const {
    const MemNode& n = nodes.at(id);
    std::ostringstream o;
    o << id << ": ";
    if (n.down) {
      o << "down";
      return o.str();
    }
    Status s = n.raft->status();
    o << role_name(s.role) << " term=" << s.term << " lead=" << s.leader << " commit=" << s.commit
      << " applied=" << n.applied << " log=" << s.first_index << ".." << s.last_index;
    o << " voters=";
    for (size_t i = 0; i < s.conf.voters.size(); i++) o << (i ? "," : "") << s.conf.voters[i];
    if (!s.conf.learners.empty()) {
      o << " learners=";
      for (size_t i = 0; i < s.conf.learners.size(); i++) o << (i ? "," : "") << s.conf.learners[i];
    }
    return o.str();
  }
};

}  // namespace hmdb::raft::testing
