// tests/core/replica_harness.h — one replica core with a real consensus core, its world
// faked: sessions by id, a shell with PING and RESP3 (local; RESP3 does to the session what
// HELLO 3 does), CLUSTER FORWARDER (marks a forwarding link), SNAP (a barrier whose reply
// waits for finish()), ACTIVATE <version> (a barrier answered when the schema activation
// it proposes applies), MARK (a barrier answered with its index when the digest mark it
// proposes applies), TRANSFER <id> (what CLUSTER TRANSFER does on a leader: a barrier
// answered when the transfer succeeds, is abandoned or times out), ACL SETUSER|DELUSER (a logged shell command, proposed as the server's
// shell does: answered when the ACL change applies) and the pub/sub commands (handed to core::PubSub as the server's shell
// does), a disk that is durable at once and keeps what it is given, a network that drops
// everything (or keeps it for the test to answer: answer_as_voter_2). Used by replica_test.cc,
// transaction_test.cc, schema_test.cc and pubsub_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/forwarder.h"
#include "core/replica.h"
#include "hmdb/app.h"

namespace hmdb::core {

// The world of one replica: sessions by id, a shell with PING (local) and SNAP (a barrier
// whose reply waits for finish()), a disk that is durable at once, a network that drops all.
class FakeHost final : public ReplicaHost {
 public:
  // TRANSFER's deadline (the server's kClusterCommandTimeoutMs): the replica's steady clock
  // stays at 0 unless a test moves it (set_time), so the deadline passes only if it does.
  static constexpr uint64_t kTransferDeadlineSteadyMs = 10000;
  std::map<uint64_t, ClientSession> sessions;
  std::vector<uint64_t> snapshot_waiters;  // seq of SNAP slots of session 1
  struct Forwarded {
    uint64_t session, seq;
    std::vector<std::string> argv;
    bool write;
  };
  std::vector<Forwarded> forwarded;
  // If set, forwarded commands go to it (as server/cluster.cc hands them to its forwarder)
  // instead of into `forwarded` and `transactions`.
  Forwarder* forwarder = nullptr;
  // If set, the messages the core sends are kept here instead of dropped.
  bool keep_messages = false;
  std::vector<raft::Message> outbox;
  int snapshots_started = 0;
  raft::Index last_index = 0;
  raft::Term last_term = 0;
  raft::HardState hard_state;
  std::vector<raft::Entry> persisted;  // every entry given to persist, in order
  Replica* replica = nullptr;          // for ACTIVATE and the pub/sub commands
  std::vector<uint64_t> closed_after_replies;  // sessions whose subscriptions ended (pub/sub)

  ClientSession* session(uint64_t id) override {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : &it->second;
  }
  void replies_ready(ClientSession&) override {}
  void close_after_replies(ClientSession& s) override { closed_after_replies.push_back(s.id); }
  CommandClass shell_command_class(Args argv) const override {
    if (PubSub::is_command(argv[0])) return iequals(argv[0], "PUBSUB") ? CommandClass::kShellLocal : CommandClass::kShellBarrier;
    if (iequals(argv[0], "PING")) return CommandClass::kShellLocal;
    if (iequals(argv[0], "SNAP")) return CommandClass::kShellBarrier;
    if (iequals(argv[0], "RESP3")) return CommandClass::kShellLocal;
    if (iequals(argv[0], "CLUSTER")) return CommandClass::kShellLocal;
    if (iequals(argv[0], "ACTIVATE")) return CommandClass::kShellBarrier;
    if (iequals(argv[0], "MARK")) return CommandClass::kShellBarrier;
    if (iequals(argv[0], "TRANSFER")) return CommandClass::kShellBarrier;
    if (iequals(argv[0], "ACL")) return CommandClass::kShellWrite;
    return CommandClass::kUnknown;
  }
  ShellResult run_shell_command(ClientSession& s, Args argv, uint64_t seq, std::string* out) override {
    if (PubSub::is_command(argv[0])) {
      replica->pubsub().command(s, argv, out);
      return ShellResult::kReplied;
    }
    if (iequals(argv[0], "PING")) {
      Reply(out).status("PONG");
      return ShellResult::kReplied;
    }
    if (iequals(argv[0], "RESP3")) {  // what HELLO 3 does to the session
      s.protocol = Protocol::kResp3;
      Reply(out).ok();
      return ShellResult::kReplied;
    }
    if (iequals(argv[0], "CLUSTER")) {  // CLUSTER FORWARDER <node>: a forwarding link's handshake
      s.forwarder = true;
      Reply(out).ok();
      return ShellResult::kReplied;
    }
    if (iequals(argv[0], "ACTIVATE")) {  // what CLUSTER SCHEMA ACTIVATE does on a leader
      uint64_t version = 0;
      EXPECT_TRUE(argv.size() == 2 && parse_uint64(argv[1], &version));
      replica->activate_schema(static_cast<uint32_t>(version), s.id, seq);
      return ShellResult::kWaitCluster;
    }
    if (iequals(argv[0], "TRANSFER")) {  // what CLUSTER TRANSFER does on a leader (server/cluster.cc)
      uint64_t id = 0;
      EXPECT_TRUE(argv.size() == 2 && parse_uint64(argv[1], &id));
      replica->transfer(id, s.id, seq, kTransferDeadlineSteadyMs, kTransferDeadlineSteadyMs);
      return ShellResult::kWaitCluster;
    }
    if (iequals(argv[0], "MARK")) {  // what CLUSTER DIGEST MARK does on a leader
      replica->digest_mark(s.id, seq);
      return ShellResult::kWaitCluster;
    }
    if (iequals(argv[0], "ACL")) {  // what ACL SETUSER and DELUSER do on a leader (acl_commands.cc)
      EXPECT_GE(argv.size(), 3u);
      std::vector<std::string> words{std::string(argv[2])};
      const bool setuser = iequals(argv[1], "SETUSER");
      if (setuser) {
        for (std::string& r : acl_rules_for_log(std::vector<std::string_view>(argv.begin() + 3, argv.end())))
          words.push_back(std::move(r));
      } else {
        for (size_t i = 3; i < argv.size(); i++) words.emplace_back(argv[i]);
      }
      replica->acl_change(setuser ? AclOp::kSetUser : AclOp::kDelUser, words, s.id, seq);
      return ShellResult::kWaitCluster;
    }
    snapshot_waiters.push_back(seq);
    return ShellResult::kWaitSnapshot;
  }
  void start_snapshot() override { snapshots_started++; }
  void forward(ClientSession& s, uint64_t seq, Args argv, bool write) override {
    if (forwarder) return forwarder->forward(s.id, seq, s.protocol, write, argv);
    forwarded.push_back(Forwarded{s.id, seq, std::vector<std::string>(argv.begin(), argv.end()), write});
  }
  std::vector<std::pair<uint64_t, std::vector<std::vector<std::string>>>> transactions;  // (seq, commands)
  void forward_transaction(ClientSession& s, uint64_t seq, const std::vector<std::vector<std::string>>& commands,
                           bool write) override {
    if (forwarder) return forwarder->forward_transaction(s.id, seq, s.protocol, write, commands);
    transactions.emplace_back(seq, commands);
  }
  std::string client_address_of(raft::NodeId id) const override { return "10.0.0." + std::to_string(id) + ":7379"; }
  void stage_snapshot_chunk(const raft::SnapshotChunk&) override { ADD_FAILURE() << "no snapshot transfer here"; }
  bool install_snapshot(const raft::SnapshotMeta&) override {
    ADD_FAILURE() << "no snapshot install here";
    return true;
  }
  std::optional<raft::PersistAck> persist(const std::optional<raft::HardState>& hs, std::vector<raft::Entry>&& entries,
                                          const std::optional<raft::SnapshotMeta>&) override {
    if (hs) hard_state = *hs;
    if (!entries.empty()) {
      last_index = entries.back().index;
      last_term = entries.back().term;
      persisted.insert(persisted.end(), entries.begin(), entries.end());
    }
    return raft::PersistAck{last_index, last_term, hard_state};
  }
  void send(std::vector<raft::Message>&& messages) override {
    if (keep_messages) outbox.insert(outbox.end(), messages.begin(), messages.end());
  }
  void applied(const raft::Entry&) override {}
  void apply_failed(const raft::Entry&, const ApplyResult&) override { ADD_FAILURE() << "apply failed"; }
  void read_snapshot_chunk(const raft::SnapshotReadRequest&) override {}
  void role_changed(raft::Role, raft::Role) override {}
  void warn(std::string_view) override {}
};

template <class App>
struct TestNode {
  FakeHost host;
  App app;
  std::unique_ptr<raft::Raft> raft;
  std::unique_ptr<Replica> replica;

  // voters: the membership; this node is 1. With one voter it elects itself.
  // forward: the host forwards plain clients' app commands (Replica::Options::forward).
  // tweak: changes the replica's options before it is made.
  explicit TestNode(std::vector<raft::NodeId> voters = {1}, bool forward = false, PubSub::Options events = {},
                    const std::function<void(Replica::Options&)>& tweak = {}) {
    raft::Config cfg;
    cfg.id = 1;
    raft::RestoreState rs;
    rs.initial_conf.voters = voters;
    raft = std::make_unique<raft::Raft>(cfg, std::move(rs));
    Replica::Options options;
    options.clustered = voters.size() > 1;
    options.forward = forward;
    options.events = events;
    if (tweak) tweak(options);
    replica = std::make_unique<Replica>(*raft, app, host, options);
    host.replica = replica.get();
    replica->set_time(1'700'000'000'000, 0);
    host.sessions[1].id = 1;
    for (int i = 0; i < 50 && voters.size() == 1 && !replica->leader(); i++) {
      raft->tick();
      replica->drive();
    }
  }
  // Session `id` (created on first use).
  ClientSession& s(uint64_t id = 1) {
    ClientSession& session = host.sessions[id];
    session.id = id;
    return session;
  }
  void send(std::vector<std::vector<std::string_view>> commands, uint64_t session = 1) {
    for (const auto& c : commands) replica->command(s(session), Args(c.data(), c.size()));
  }
  // The replies session `id` has ready, taken.
  std::string out(uint64_t id = 1) {
    std::string o = s(id).replies.out();
    s(id).replies.out().clear();
    return o;
  }
};

// For a node 1 of a cluster whose host keeps its messages (FakeHost::keep_messages): voter 2
// answers what node 1 sent it, granting every (pre-)vote and acknowledging every append and
// heartbeat at once, so node 1 can be elected and commit; what went to others is dropped.
template <class App>
void answer_as_voter_2(TestNode<App>& n) {
  std::vector<raft::Message> out = std::move(n.host.outbox);
  n.host.outbox.clear();
  for (const raft::Message& m : out) {
    if (m.to != 2) continue;
    raft::Message r;
    r.from = 2;
    r.to = 1;
    r.term = m.term;
    switch (m.type) {
      case raft::MessageType::kPreVote: r.type = raft::MessageType::kPreVoteResponse; break;
      case raft::MessageType::kVote: r.type = raft::MessageType::kVoteResponse; break;
      case raft::MessageType::kAppend:
        r.type = raft::MessageType::kAppendResponse;
        r.log_index = m.log_index + m.entries.size();
        break;
      case raft::MessageType::kHeartbeat:
        r.type = raft::MessageType::kHeartbeatResponse;
        r.log_index = m.log_index;
        r.context = m.context;
        break;
      default: continue;
    }
    n.raft->step(r);
  }
}

}  // namespace hmdb::core
