// fuzz/transaction_fuzz.cc — libFuzzer target for transactions, two ways by the first byte:
//
//   even: the command-batch reader (core/batch.h) on untrusted bytes. Every step sequence it
//         yields is well formed (a group's begin, exactly its commands, its end; items in
//         order; words inside the payload), and a batch it accepts, written again with
//         BatchBuilder, reads back as the same steps.
//   odd:  transaction queueing in the replica core (core/replica.cc): the bytes choose
//         commands (MULTI, EXEC, DISCARD, WATCH, UNWATCH, writes, queries, errors) for two
//         sessions of a single-node replica and where its loop turns end. Every command gets
//         exactly one complete reply, in order, and an EXEC that runs answers an array with
//         one element per command queued since its MULTI.
//
// Built two ways: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt), and with
// -DHMDB_FUZZ_REPLAY_MAIN as a plain program replaying the seed corpus (tests/core), so CI
// runs the seeds without clang. `transaction_fuzz_replay --make-seeds DIR` writes them.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "core/batch.h"
#include "core/replica.h"
#include "net/resp_reply.h"
#include "sim/register_app.h"

namespace {

using namespace hmdb;
using core::BatchStep;

// ---- the batch reader --------------------------------------------------------------------

struct Step {
  BatchStep::Kind kind;
  uint64_t item, position, group_size;
  uint32_t version = 0;
  std::vector<std::string> argv;
  bool operator==(const Step&) const = default;
};

std::vector<Step> read_steps(std::string_view payload, bool* ok) {
  core::BatchReader r(payload);
  std::vector<Step> steps;
  BatchStep s;
  uint64_t expected_item = 0;
  uint64_t group_left = 0;
  bool in_group = false;
  while (r.next(s)) {
    HMDB_ASSERT(s.item == expected_item, "item %llu where %llu was next", static_cast<unsigned long long>(s.item),
                static_cast<unsigned long long>(expected_item));
    switch (s.kind) {
      case BatchStep::Kind::kCommand:
        HMDB_ASSERT(!in_group, "a command of its own inside a group");
        expected_item++;
        break;
      case BatchStep::Kind::kGroupBegin:
        HMDB_ASSERT(!in_group, "a group inside a group");
        in_group = true;
        group_left = s.group_size;
        break;
      case BatchStep::Kind::kGroupCommand:
        HMDB_ASSERT(in_group && group_left > 0 && s.position == s.group_size - group_left, "a group command out of place");
        group_left--;
        break;
      case BatchStep::Kind::kGroupEnd:
        HMDB_ASSERT(in_group && group_left == 0, "a group ended early");
        in_group = false;
        expected_item++;
        break;
      case BatchStep::Kind::kActivation:
        HMDB_ASSERT(!in_group && s.version > 0, "an activation inside a group, or of version 0");
        expected_item++;
        break;
      case BatchStep::Kind::kDigestMark:
        HMDB_ASSERT(!in_group, "a digest mark inside a group");
        expected_item++;
        break;
      case BatchStep::Kind::kAcl:
        HMDB_ASSERT(!in_group && core::acl_item_valid(s.acl_op, s.argv.size()), "an ACL item inside a group, or invalid");
        expected_item++;
        break;
    }
    Step copy{s.kind, s.item, 0, 0, 0, {}};
    if (s.kind == BatchStep::Kind::kGroupCommand) copy.position = s.position;
    if (s.kind != BatchStep::Kind::kCommand && s.kind != BatchStep::Kind::kActivation &&
        s.kind != BatchStep::Kind::kDigestMark && s.kind != BatchStep::Kind::kAcl)
      copy.group_size = s.group_size;
    if (s.kind == BatchStep::Kind::kActivation) copy.version = s.version;
    if (s.kind == BatchStep::Kind::kAcl) copy.version = s.acl_op;  // (the op, in the version's place)
    if (s.kind == BatchStep::Kind::kAcl)
      for (auto a : s.argv) copy.argv.emplace_back(a);
    if (s.kind == BatchStep::Kind::kCommand || s.kind == BatchStep::Kind::kGroupCommand) {
      HMDB_ASSERT(!s.argv.empty(), "a command without words");
      for (auto a : s.argv) {
        HMDB_ASSERT(a.data() >= payload.data() && a.data() + a.size() <= payload.data() + payload.size(),
                    "a word outside the payload");
        copy.argv.emplace_back(a);
      }
    }
    steps.push_back(std::move(copy));
  }
  *ok = r.ok();
  if (*ok) HMDB_ASSERT(!in_group && expected_item == r.count(), "an accepted batch ended inside an item");
  return steps;
}

void fuzz_batch(std::string_view payload) {
  bool ok = false;
  const std::vector<Step> steps = read_steps(payload, &ok);
  if (!ok) return;
  core::BatchReader header(payload);
  core::BatchBuilder b(header.leader_time_ms());
  std::vector<std::string_view> argv;
  for (const Step& s : steps) {
    if (s.kind == BatchStep::Kind::kGroupBegin) b.add_group(s.group_size);
    if (s.kind == BatchStep::Kind::kActivation) b.add_activation(s.version);
    if (s.kind == BatchStep::Kind::kDigestMark) b.add_digest_mark();
    if (s.kind == BatchStep::Kind::kAcl)
      b.add_acl(static_cast<uint8_t>(s.version), std::vector<std::string_view>(s.argv.begin(), s.argv.end()));
    if (s.kind != BatchStep::Kind::kCommand && s.kind != BatchStep::Kind::kGroupCommand) continue;
    argv.assign(s.argv.begin(), s.argv.end());
    if (s.kind == BatchStep::Kind::kGroupCommand) b.add_to_group(argv);
    else b.add(argv);
  }
  const std::string again = b.finish();
  bool ok_again = false;
  HMDB_ASSERT(read_steps(again, &ok_again) == steps && ok_again, "a batch written again reads differently");
}

// ---- transaction queueing in the replica ----------------------------------------------------

class Host final : public core::ReplicaHost {
 public:
  std::map<uint64_t, core::ClientSession> sessions;
  raft::Index last_index = 0;
  raft::Term last_term = 0;
  raft::HardState hard_state;

  core::ClientSession* session(uint64_t id) override {
    auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : &it->second;
  }
  void replies_ready(core::ClientSession&) override {}
  core::CommandClass shell_command_class(Args argv) const override {
    return iequals(argv[0], "PING") ? core::CommandClass::kShellLocal : core::CommandClass::kUnknown;
  }
  core::ShellResult run_shell_command(core::ClientSession&, Args, uint64_t, std::string* out) override {
    Reply(out).status("PONG");
    return core::ShellResult::kReplied;
  }
  void start_snapshot() override {}
  std::string client_address_of(raft::NodeId) const override { return ""; }
  void stage_snapshot_chunk(const raft::SnapshotChunk&) override {}
  bool install_snapshot(const raft::SnapshotMeta&) override { return true; }
  std::optional<raft::PersistAck> persist(const std::optional<raft::HardState>& hs, std::vector<raft::Entry>&& entries,
                                          const std::optional<raft::SnapshotMeta>&) override {
    if (hs) hard_state = *hs;
    if (!entries.empty()) {
      last_index = entries.back().index;
      last_term = entries.back().term;
    }
    return raft::PersistAck{last_index, last_term, hard_state};
  }
  void send(std::vector<raft::Message>&&) override {}
  void applied(const raft::Entry&) override {}
  void apply_failed(const raft::Entry&, const core::ApplyResult&) override { HMDB_ASSERT(false, "apply failed"); }
  void read_snapshot_chunk(const raft::SnapshotReadRequest&) override {}
  void role_changed(raft::Role, raft::Role) override {}
  void warn(std::string_view) override {}
};

// The commands the bytes choose from (the register app: SET k int, INCR k, GET k).
const std::vector<std::vector<std::string_view>> kCommands = {
    {"MULTI"},       {"EXEC"},         {"DISCARD"},     {"WATCH", "a"}, {"WATCH", "a", "b"}, {"UNWATCH"},
    {"SET", "a", "1"}, {"SET", "b", "x"}, {"INCR", "a"}, {"INCR", "b"},  {"GET", "a"},        {"GET", "b"},
    {"NOSUCH"},      {"SET", "a"},     {"PING"},        {"EXEC", "x"},
};

// What a session expects, to check EXEC's array: inside MULTI, and commands queued since.
struct Shadow {
  bool multi = false;
  uint64_t queued = 0;
  uint64_t sent = 0;
  std::vector<int64_t> exec_at;  // reply positions of EXECs that end a MULTI, and their counts
  std::vector<uint64_t> exec_counts;
};

void fuzz_replica(std::string_view bytes) {
  Host host;
  sim::RegisterHost app;
  raft::Config cfg;
  cfg.id = 1;
  raft::RestoreState rs;
  rs.initial_conf.voters = {1};
  raft::Raft raft(cfg, std::move(rs));
  core::Replica replica(raft, app, host, core::Replica::Options{});
  replica.set_time(1'700'000'000'000, 0);
  for (int i = 0; i < 50 && !replica.leader(); i++) {
    raft.tick();
    replica.drive();
  }
  HMDB_ASSERT(replica.leader(), "a single node did not elect itself");
  Shadow shadow[2];
  for (uint64_t id : {1, 2}) host.sessions[id].id = id;
  for (unsigned char b : bytes) {
    if ((b & 0x1f) >= kCommands.size()) {  // the rest end the loop turn
      replica.end_turn();
      continue;
    }
    const int who = b >> 7;
    const auto& c = kCommands[b & 0x1f];
    Shadow& sh = shadow[who];
    const std::string_view name = c[0];
    if (name == "MULTI" && c.size() == 1) {
      if (!sh.multi) sh.queued = 0;
      sh.multi = true;
    } else if (name == "EXEC" || name == "DISCARD") {
      if (name == "EXEC" && c.size() == 1 && sh.multi) {
        sh.exec_at.push_back(static_cast<int64_t>(sh.sent));
        sh.exec_counts.push_back(sh.queued);
      }
      if (c.size() == 1 || name == "EXEC") sh.multi = false;
    } else if (sh.multi && name != "WATCH") {
      sh.queued++;
    }
    sh.sent++;
    replica.command(host.sessions[who + 1], Args(c.data(), c.size()));
  }
  // Each turn applies what the last one proposed; a barrier (WATCH) behind a write waits a
  // turn, so a session may need one turn per command to finish.
  auto idle = [&] { return host.sessions[1].replies.idle() && host.sessions[2].replies.idle(); };
  for (uint64_t i = 0; i < shadow[0].sent + shadow[1].sent + 3 && !idle(); i++) replica.end_turn();
  for (int who = 0; who < 2; who++) {
    core::ClientSession& s = host.sessions[who + 1];
    HMDB_ASSERT(s.replies.idle(), "a reply still pending after the loop went idle");
    std::string_view out = s.replies.out();
    uint64_t replies = 0;
    size_t next_exec = 0;
    while (!out.empty()) {
      net::ScannedReply r;
      HMDB_ASSERT(net::scan_reply(out.data(), out.size(), &r) == net::ScanResult::kComplete, "a broken reply");
      if (next_exec < shadow[who].exec_at.size() && shadow[who].exec_at[next_exec] == static_cast<int64_t>(replies)) {
        if (out[0] == '*' && out.substr(0, 3) != "*-1") {
          net::RespReply v;
          HMDB_ASSERT(net::decode_reply(out.substr(0, r.length), &v) > 0, "EXEC's reply does not decode");
          HMDB_ASSERT(v.elements.size() == shadow[who].exec_counts[next_exec], "EXEC answered %zu of %llu commands",
                      v.elements.size(), static_cast<unsigned long long>(shadow[who].exec_counts[next_exec]));
        }
        next_exec++;
      }
      out.remove_prefix(r.length);
      replies++;
    }
    HMDB_ASSERT(replies == shadow[who].sent, "%llu replies to %llu commands", static_cast<unsigned long long>(replies),
                static_cast<unsigned long long>(shadow[who].sent));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) fuzz_batch(rest);
  else fuzz_replica(rest.substr(0, 4096));  // a bounded run per input
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <filesystem>
#include <fstream>

#include "replay_main.h"

namespace {

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  int n = 0;
  auto write = [&](std::string bytes) {
    std::ofstream(dir / ("seed-" + std::to_string(n++)), std::ios::binary) << bytes;
  };
  core::BatchBuilder b(1'700'000'000'000);
  std::vector<std::string_view> set = {"SET", "a", "1"}, incr = {"INCR", "a"};
  b.add(set);
  write(std::string(1, '\0') + b.finish());
  b.start(5);
  b.add(set);
  b.add_group(2);
  b.add_to_group(set);
  b.add_to_group(incr);
  b.add_group(0);
  write(std::string(1, '\0') + b.finish());
  // Replica scripts: indexes into kCommands (0x80 | i: session 2), 0x1f ends a turn.
  write("\x01\x00\x06\x08\x0a\x0e\x01\x1f\x1f");                      // MULTI SET INCR GET PING EXEC
  write("\x01\x03\x86\x1f\x00\x08\x01\x1f");                          // WATCH a; s2 SET a; MULTI INCR EXEC
  write("\x01\x00\x06\x0c\x08\x01\x00\x07\x01\x00\x02\x01\x0f\x1f");  // EXECABORT, run-time error, DISCARD
  write("\x01\x06\x03\x00\x08\x01\x80\x88\x81\x00\x00\x04\x05\x01\x1f\x1f");  // held WATCH, nesting
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
