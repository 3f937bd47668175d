// fuzz/request_fuzz.cc — libFuzzer target for request ids (HMDB.REQ), three ways by the
// first byte (mod 3):
//
//   0: the wrapper's parser (core/request.h) on words cut from the bytes: it accepts exactly
//      HMDB.REQ, an id of 1..64 bytes and a command that is not HMDB.REQ, hands back views
//      into the words it was given, and refuses everything else with an ERR message.
//   1: the command-batch reader's request items (core/batch.h) on untrusted bytes: a tagged
//      step has an id of 1..64 bytes inside the payload and a known protocol, every step of
//      a tagged group carries the same request, and a batch it accepts, written again with
//      BatchBuilder, reads back as the same steps with the same ids and hashes.
//   2: the replica core with its request table (core/replica.cc, core/apply.cc): the bytes
//      choose tagged and untagged INCRs, retries, tagged EXECs, queries and errors for two
//      sessions of a single-node replica, and where its loop turns end. Every command gets
//      one complete reply in order; every reply to a request id is the first reply to that
//      id (or the error for an id sent with another command) and the one its table holds.
//      An INCR applied twice would have answered a new value: no tagged write takes effect
//      twice.
//
// Built two ways: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt), and with
// -DHMDB_FUZZ_REPLAY_MAIN as a plain program replaying the seed corpus (tests/core), so CI
// runs the seeds without clang. `request_fuzz_replay --make-seeds DIR` writes them.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "core/batch.h"
#include "core/replica.h"
#include "core/request.h"
#include "net/resp_reply.h"
#include "sim/register_app.h"

namespace {

using namespace hmdb;
using core::BatchStep;

// ---- the wrapper's parser -------------------------------------------------------------

// Words are cut at 0xff bytes; the first word is sometimes made HMDB.REQ so that the parse
// gets past the name.
void fuzz_parser(std::string_view bytes) {
  std::vector<std::string> words;
  std::string w;
  for (char c : bytes) {
    if (static_cast<unsigned char>(c) == 0xff) {
      words.push_back(std::move(w));
      w.clear();
    } else {
      w.push_back(c);
    }
  }
  words.push_back(std::move(w));
  if (!words[0].empty() && words[0][0] == 'R') words[0] = "hmdb.req";
  std::vector<std::string_view> argv(words.begin(), words.end());
  const Args args(argv.data(), argv.size());
  if (!core::is_request(args)) return;
  core::RequestCommand r;
  std::string error;
  const bool ok = core::parse_request(args, &r, &error);
  const bool expect = argv.size() >= 3 && !argv[1].empty() && argv[1].size() <= core::kRequestIdBytesMax &&
                      !core::is_request(args.subspan(2));
  HMDB_ASSERT(ok == expect, "parse_request said %d for %zu words", ok, argv.size());
  if (!ok) {
    HMDB_ASSERT(error.starts_with("ERR "), "an error without its code: %s", error.c_str());
    return;
  }
  HMDB_ASSERT(r.id.data() == argv[1].data() && r.id.size() == argv[1].size(), "the id is not the second word");
  HMDB_ASSERT(r.command.data() == argv.data() + 2 && r.command.size() == argv.size() - 2, "the command is not the rest");
}

// ---- the batch reader's request items ----------------------------------------------------

struct Step {
  BatchStep::Kind kind;
  uint64_t item, group_size;
  std::vector<std::string> argv;
  std::string request_id;
  int protocol;
  uint64_t hash;
  uint32_t version = 0;  // kActivation
  bool operator==(const Step&) const = default;
};

std::vector<Step> read_steps(std::string_view payload, bool* ok) {
  core::BatchReader r(payload);
  std::vector<Step> steps;
  BatchStep s;
  std::string group_request;
  uint64_t group_hash = 0;
  while (r.next(s)) {
    const bool grouped = s.kind != BatchStep::Kind::kCommand && s.kind != BatchStep::Kind::kActivation &&
                         s.kind != BatchStep::Kind::kDigestMark && s.kind != BatchStep::Kind::kAcl;
    Step copy{s.kind, s.item, grouped ? s.group_size : 0, {}, {}, 0, 0};
    if (s.tagged()) {
      HMDB_ASSERT(s.request_id.size() <= core::kRequestIdBytesMax, "a request id of %zu bytes", s.request_id.size());
      HMDB_ASSERT(s.request_id.data() >= payload.data() &&
                      s.request_id.data() + s.request_id.size() <= payload.data() + payload.size(),
                  "a request id outside the payload");
      HMDB_ASSERT(s.request_protocol == Protocol::kResp2 || s.request_protocol == Protocol::kResp3, "a protocol %d",
                  static_cast<int>(s.request_protocol));
      copy.request_id.assign(s.request_id);
      copy.protocol = static_cast<int>(s.request_protocol);
      copy.hash = s.request_hash;
    }
    switch (s.kind) {
      case BatchStep::Kind::kGroupBegin:
        group_request = copy.request_id;
        group_hash = copy.hash;
        break;
      case BatchStep::Kind::kGroupCommand:
      case BatchStep::Kind::kGroupEnd:
        HMDB_ASSERT(copy.request_id == group_request && copy.hash == group_hash, "a group's steps disagree on its request");
        break;
      case BatchStep::Kind::kCommand: break;
      case BatchStep::Kind::kActivation:
        copy.version = s.version;
        break;
      case BatchStep::Kind::kDigestMark: break;
      case BatchStep::Kind::kAcl:
        HMDB_ASSERT(!s.tagged(), "a tagged ACL item");
        copy.version = s.acl_op;  // (the op, in the version's place)
        break;
    }
    if (s.kind == BatchStep::Kind::kCommand || s.kind == BatchStep::Kind::kGroupCommand || s.kind == BatchStep::Kind::kAcl)
      for (auto a : s.argv) copy.argv.emplace_back(a);
    steps.push_back(std::move(copy));
  }
  *ok = r.ok();
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
    const bool starts_item = s.kind == BatchStep::Kind::kCommand || s.kind == BatchStep::Kind::kGroupBegin;
    if (starts_item && !s.request_id.empty()) b.add_request(s.request_id, static_cast<Protocol>(s.protocol));
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

// ---- the replica with its request table ---------------------------------------------------

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

// What a byte sends (low 5 bits; bit 7: session 2). Tagged commands name one of four ids;
// r0 and r1 are INCRs of a and b, so a retry with r0 on b is "another command".
const std::vector<std::vector<std::string_view>> kCommands = {
    {"HMDB.REQ", "r0", "INCR", "a"}, {"HMDB.REQ", "r1", "INCR", "b"}, {"HMDB.REQ", "r0", "INCR", "b"},
    {"HMDB.REQ", "r2", "INCR", "a"}, {"INCR", "a"},                   {"GET", "a"},
    {"MULTI"},                       {"HMDB.REQ", "t0", "EXEC"},      {"HMDB.REQ", "t1", "EXEC"},
    {"EXEC"},                        {"HMDB.REQ", "q", "GET", "b"},   {"HMDB.REQ", "r3", "PING"},
    {"HMDB.REQ", "r3"},              {"PING"},                        {"HMDB.REQ", "r3", "SET", "a", "x"},
    {"HMDB.REQ", "r3", "INCR", "b"}, {"DISCARD"},                     {"HMDB.REQ", "r0", "INCR", "a"},
};
constexpr std::string_view kConflict =
    "-ERR this request id was used for another command (an id names one request; a new request needs a new id)\r\n";

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
  std::vector<std::string> tags[2];  // per session, per command sent: the request id of a tagged INCR ("" otherwise)
  for (uint64_t id : {1, 2}) host.sessions[id].id = id;
  for (unsigned char b : bytes) {
    if ((b & 0x1f) >= kCommands.size()) {
      replica.end_turn();
      continue;
    }
    const int who = b >> 7;
    const auto& c = kCommands[b & 0x1f];
    const bool tagged_incr = c.size() == 4 && c[0] == "HMDB.REQ" && c[2] == "INCR";
    tags[who].push_back(tagged_incr ? std::string(c[1]) : std::string());
    replica.command(host.sessions[who + 1], Args(c.data(), c.size()));
  }
  // A tagged write waits for a shell command queued before it to run at apply (its reply's
  // protocol is decided then), so each such command may take one more turn: the loop goes on
  // while it makes progress, at most once per command.
  for (size_t i = 0; i < bytes.size() + 3; i++) {
    replica.end_turn();
    if (host.sessions[1].replies.idle() && host.sessions[2].replies.idle() && replica.idle()) break;
  }
  // Replies: one per command, in order; every reply to an id is the first reply to it.
  std::map<std::string, std::string> first;  // id -> its first reply
  for (int who = 0; who < 2; who++) {
    core::ClientSession& s = host.sessions[who + 1];
    HMDB_ASSERT(s.replies.idle(), "a reply still pending after the loop went idle");
    std::string_view out = s.replies.out();
    size_t n = 0;
    while (!out.empty()) {
      net::ScannedReply r;
      HMDB_ASSERT(net::scan_reply(out.data(), out.size(), &r) == net::ScanResult::kComplete, "a broken reply");
      HMDB_ASSERT(n < tags[who].size(), "more replies than commands");
      const std::string reply(out.substr(0, r.length));
      const std::string& id = tags[who][n];
      if (!id.empty() && reply != kConflict && reply[0] != '-') {
        auto [it, fresh] = first.emplace(id, reply);
        HMDB_ASSERT(fresh || it->second == reply, "id %s answered %s, then %s", id.c_str(), it->second.c_str(),
                    reply.c_str());
      }
      out.remove_prefix(r.length);
      n++;
    }
    HMDB_ASSERT(n == tags[who].size(), "%zu replies to %zu commands", n, tags[who].size());
  }
  // The table holds each id's first reply (an INCR applied a second time would have
  // answered a new value, caught above).
  const core::RequestTable& table = replica.requests();
  for (const auto& [id, reply] : first) {
    const core::RequestTable::Entry* e = table.find(id);
    HMDB_ASSERT(e && e->reply == reply, "id %s answered %s but the table holds %s", id.c_str(), reply.c_str(),
                e ? e->reply.c_str() : "nothing");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: fuzz_parser(rest.substr(0, 1024)); break;
    case 1: fuzz_batch(rest); break;
    default: fuzz_replica(rest.substr(0, 4096)); break;  // a bounded run per input
  }
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
  // The parser: HMDB.REQ r1 INCR a; too few words; an empty id; nested.
  using namespace std::string_literals;
  write("\x00R\xffr1\xffINCR\xff" "a"s);
  write("\x00R\xffr1"s);
  write("\x00R\xff\xffINCR"s);
  write("\x00R\xffr1\xffhmdb.req\xffr2\xffINCR"s);
  // Batches: a tagged command and a tagged group among plain ones.
  core::BatchBuilder b(1'700'000'000'000);
  std::vector<std::string_view> set = {"SET", "a", "1"}, incr = {"INCR", "a"};
  b.add(set);
  b.add_request("r1", Protocol::kResp2);
  b.add(incr);
  b.add_request("t1", Protocol::kResp3);
  b.add_group(2);
  b.add_to_group(set);
  b.add_to_group(incr);
  write(std::string(1, '\x01') + b.finish());
  // Replica scripts: indexes into kCommands (0x80 | i: session 2), 0x1f ends a turn.
  write("\x02\x00\x00\x1f\x00\x80\x1f\x02\x11\x1f"s);              // a retry, by both sessions; r0 on b; HMDB.REQ r0 incr
  write("\x02\x06\x04\x04\x07\x1f\x06\x04\x04\x07\x1f\x08\x1f"s);  // a tagged EXEC and its retry; t1 without MULTI
  write("\x02\x06\x05\x07\x06\x00\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x1f"s);  // refusals
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
