// server/shell_commands.cc — the commands the shell answers itself, as one table:
// PING ECHO QUIT RESET SELECT HELLO AUTH ACL CLIENT COMMAND CONFIG INFO READONLY READWRITE CLUSTER
// SNAPSHOT SAVE BGSAVE, LATENCY SLOWLOG (stage_timing.cc), and pub/sub's SUBSCRIBE PSUBSCRIBE UNSUBSCRIBE PUNSUBSCRIBE
// HMDB.SUBSCRIBE HMDB.PSUBSCRIBE PUBSUB (core/pubsub.h runs them; PUBLISH is a write).
//
// They come before the app's commands (an app cannot shadow them) and are looked up like
// the app's (hmdb::detail::NameIndex). Each entry says how the replica routes it: a local
// command is answered from this node's state (a follower answers it too); a barrier waits
// for every earlier command of its session (membership changes, leadership transfer,
// snapshots). Enough of each is implemented for redis-cli, redis-benchmark and common
// client libraries to connect (the handshake's rules: handshake.h); CLUSTER SLOTS, NODES,
// ... present a cluster as a Redis Cluster of one shard (cluster_topology.h). Each reply is
// written in the session's protocol (RESP2, or RESP3 after HELLO 3) with the typed writers
// of hmdb/reply.h, in the shapes Redis 7 uses.
#include <fnmatch.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>

#include "common/assert.h"
#include "core/key_slot.h"
#include "core/request.h"
#include "core/state.h"
#include "hmdb/app.h"
#include "server/handshake.h"
#include "server/logging.h"
#include "server/node.h"

namespace hmdb::server {

namespace {

constexpr std::string_view kVersion = "0.1.0";
// Some clients refuse servers that do not look like Redis >= 6: INFO and HELLO say this.
constexpr std::string_view kRedisCompatVersion = "7.0.0";

// One entry of COMMAND's reply (Redis 7 layout: name, arity, flags, first key, last key,
// step, ACL categories, tips, key specs, subcommands; the last five are sets in RESP3).
// first_key, last_key, step as Redis' COMMAND: 0 0 0 without a key.
void command_info(Reply& r, std::string_view name, int arity, std::string_view flag, int first_key, int last_key,
                  int step) {
  r.array(10);
  r.bulk(lowercase(name));
  r.integer(arity);
  r.set(1);
  r.status(flag);
  r.integer(first_key);
  r.integer(last_key);
  r.integer(step);
  r.set(0);
  r.set(0);
  r.set(0);
  r.set(0);
}

void command_info(Reply& r, std::string_view name, int arity, std::string_view flag, bool has_key) {
  command_info(r, name, arity, flag, has_key ? 1 : 0, has_key ? 1 : 0, has_key ? 1 : 0);
}

// HMDB.REQ <id> <command> [args...] (core/request.h): a write, whose key is the tagged
// command's first (a cluster client such as redis-py's RedisCluster routes it by COMMAND's
// key positions).
void request_command_info(Reply& r) { command_info(r, core::kRequestCommandName, -3, "write", 3, 3, 1); }

// Redis' getIntFromObjectOrReply: SELECT's index is a 32-bit integer.
constexpr int64_t kInt32Min = -2147483648LL;
constexpr int64_t kInt32Max = 2147483647LL;

// CLIENT's subcommands and their arity (Redis 7.2's table, less those hmdb does not have).
struct ClientSubcommand {
  std::string_view name;
  int arity;
};
constexpr ClientSubcommand kClientSubcommands[] = {
    {"ID", 2},       {"INFO", 2},     {"LIST", -2},     {"GETNAME", 2},  {"SETNAME", 3},
    {"SETINFO", 4},  {"NO-EVICT", 3}, {"NO-TOUCH", 3},  {"TRACKING", -3}, {"NO-FORWARD", 3},
    {"UNBLOCK", -3},
};

// ACL rules' view of the shell's commands (core/acl.h): Redis 7's categories for each, and
// for a command with subcommands, each subcommand's ("cluster|info"). hmdb's own follow
// Redis' rule of thumb: what changes the cluster or reads its configuration is
// @admin @slow @dangerous (membership, snapshots, schema activation, digest marks, the
// forwarding links' CLUSTER FORWARDER).
constexpr acl::Categories kFast = acl::bit(acl::kFast), kSlow = acl::bit(acl::kSlow),
                          kConnection = acl::bit(acl::kConnection), kPubSubCat = acl::bit(acl::kPubSub),
                          kAdminCat = acl::bit(acl::kAdmin) | acl::bit(acl::kSlow) | acl::bit(acl::kDangerous);
struct ShellAcl {
  std::string_view name;  // lower case
  std::string_view sub;   // lower case; "" for a command without subcommands
  acl::Categories categories;
};
constexpr ShellAcl kShellAcl[] = {
    {"ping", "", kFast | kConnection},
    {"echo", "", kFast | kConnection},
    {"quit", "", kFast | kConnection},
    {"reset", "", kFast | kConnection},
    {"select", "", kFast | kConnection},
    {"hello", "", kFast | kConnection},
    {"auth", "", kFast | kConnection},
    {"readonly", "", kFast | kConnection},
    {"readwrite", "", kFast | kConnection},
    {"subscribe", "", kPubSubCat | kSlow},
    {"psubscribe", "", kPubSubCat | kSlow},
    {"unsubscribe", "", kPubSubCat | kSlow},
    {"punsubscribe", "", kPubSubCat | kSlow},
    {"hmdb.subscribe", "", kPubSubCat | kSlow},
    {"hmdb.psubscribe", "", kPubSubCat | kSlow},
    {"pubsub", "channels", kPubSubCat | kSlow},
    {"pubsub", "numsub", kPubSubCat | kSlow},
    {"pubsub", "numpat", kPubSubCat | kSlow},
    {"pubsub", "shardchannels", kPubSubCat | kSlow},
    {"pubsub", "shardnumsub", kPubSubCat | kSlow},
    {"pubsub", "help", kSlow},
    {"acl", "whoami", kSlow},
    {"acl", "cat", kSlow},
    {"acl", "help", kSlow},
    {"acl", "setuser", kAdminCat},
    {"acl", "getuser", kAdminCat},
    {"acl", "deluser", kAdminCat},
    {"acl", "list", kAdminCat},
    {"acl", "users", kAdminCat},
    {"acl", "load", kAdminCat},
    {"acl", "save", kAdminCat},
    {"acl", "log", kAdminCat},
    {"client", "id", kSlow | kConnection},
    {"client", "info", kSlow | kConnection},
    {"client", "getname", kSlow | kConnection},
    {"client", "setname", kSlow | kConnection},
    {"client", "setinfo", kSlow | kConnection},
    {"client", "tracking", kSlow | kConnection},
    {"client", "no-forward", kSlow | kConnection},
    {"client", "no-touch", kSlow},
    {"client", "no-evict", kAdminCat | kConnection},
    {"client", "list", kAdminCat | kConnection},
    {"client", "unblock", kAdminCat | kConnection},
    {"command", "", kSlow | kConnection},
    {"command", "count", kSlow | kConnection},
    {"command", "docs", kSlow | kConnection},
    {"command", "info", kSlow | kConnection},
    {"command", "list", kSlow | kConnection},
    {"config", "get", kAdminCat},
    {"config", "set", kAdminCat},
    {"config", "resetstat", kAdminCat},
    {"config", "help", kSlow},
    {"info", "", kSlow | acl::bit(acl::kDangerous)},
    {"latency", "histogram", kAdminCat},
    {"latency", "latest", kAdminCat},
    {"latency", "history", kAdminCat},
    {"latency", "reset", kAdminCat},
    {"latency", "doctor", kAdminCat},
    {"latency", "graph", kAdminCat},
    {"latency", "help", kSlow},
    {"slowlog", "get", kAdminCat},
    {"slowlog", "len", kAdminCat},
    {"slowlog", "reset", kAdminCat},
    {"slowlog", "help", kSlow},
    {"snapshot", "", kAdminCat},
    {"save", "", kAdminCat},
    {"bgsave", "", kAdminCat},
    {"cluster", "info", kSlow},
    {"cluster", "myid", kSlow},
    {"cluster", "myshardid", kSlow},
    {"cluster", "slots", kSlow},
    {"cluster", "shards", kSlow},
    {"cluster", "nodes", kSlow},
    {"cluster", "keyslot", kSlow},
    {"cluster", "countkeysinslot", kSlow},
    {"cluster", "getkeysinslot", kSlow},
    {"cluster", "members", kSlow},
    {"cluster", "addlearner", kAdminCat},
    {"cluster", "promote", kAdminCat},
    {"cluster", "remove", kAdminCat},
    {"cluster", "transfer", kAdminCat},
    {"cluster", "schema", kAdminCat},
    {"cluster", "digest", kAdminCat},
    {"cluster", "forwarder", kAdminCat},
};

// A subcommand no row names (a typo, or one added without a row) is checked as the
// command's own name with the strictest categories: never let through by a rule it escapes.
constexpr acl::Categories kUnlistedSubcommand = kAdminCat;

// The CLUSTER subcommands that change the cluster wait for the session's earlier commands.
bool cluster_barrier(Args argv) {
  if (argv.size() < 2) return false;
  return iequals(argv[1], "ADDLEARNER") || iequals(argv[1], "PROMOTE") || iequals(argv[1], "REMOVE") ||
         iequals(argv[1], "TRANSFER") || iequals(argv[1], "SCHEMA") ||
         (iequals(argv[1], "DIGEST") && argv.size() >= 3 && iequals(argv[2], "MARK"));
}

}  // namespace

// A shell command's name, taken from hmdb::kShellCommandNames (hmdb/reserved_names.h), the
// list apps are refused: a name missing there does not compile (the throw is evaluated at
// compile time), so an app can never define a command the shell would answer first.
consteval std::string_view shell_name(std::string_view name) {
  for (std::string_view listed : kShellCommandNames)
    if (listed == name) return listed;
  throw "a shell command missing from hmdb::kShellCommandNames (hmdb/reserved_names.h): add it there";
}

// One command the shell answers: its name, arity (Redis style: negative means at least),
// whether it is a barrier, and what it does. `seq` is its reply slot, for one that waits.
struct Node::ShellCommand {
  std::string_view name;  // upper case
  int arity;
  bool (*barrier)(Args argv);
  core::ShellResult (*run)(Node& n, Session& s, Args argv, uint64_t seq, std::string* out);
};

const Node::ShellTable& Node::shell_table() {
  using R = core::ShellResult;
  static auto never = [](Args) { return false; };
  static auto always = [](Args) { return true; };
  static const ShellTable table(std::vector<ShellCommand>{
      {shell_name("PING"), -1, never,
       [](Node&, Session& s, Args argv, uint64_t, std::string* out) {
         Reply r(out);
         if (argv.size() > 2) {
           r.error(wrong_arity(argv[0]));
         } else if (s.client.subscriber && s.client.subscriber->count() > 0 && s.client.protocol == Protocol::kResp2) {
           // Redis: a RESP2 subscriber reads pushes, so PING's reply is one too.
           r.array(2);
           r.bulk("pong");
           r.bulk(argv.size() == 2 ? argv[1] : std::string_view());
         } else if (argv.size() == 1) {
           r.status("PONG");
         } else {
           r.bulk(argv[1]);
         }
         return R::kReplied;
       }},
      {shell_name("ECHO"), 2, never,
       [](Node&, Session&, Args argv, uint64_t, std::string* out) {
         Reply(out).bulk(argv[1]);
         return R::kReplied;
       }},
      {shell_name("QUIT"), -1, never,
       [](Node&, Session& s, Args, uint64_t, std::string* out) {
         Reply(out).ok();
         s.close_after_reply = true;
         return R::kReplied;
       }},
      {shell_name("RESET"), 1, never, [](Node& n, Session& s, Args, uint64_t, std::string* out) { return n.reset_command(s, out); }},
      // Pub/sub (core/pubsub.h). Subscribing and unsubscribing wait for the session's earlier
      // commands (barriers), so that what it sends after them is checked in their light
      // (a RESP2 subscriber may only send a few commands).
      {shell_name("SUBSCRIBE"), -2, always, &Node::pubsub_entry},
      {shell_name("PSUBSCRIBE"), -2, always, &Node::pubsub_entry},
      {shell_name("UNSUBSCRIBE"), -1, always, &Node::pubsub_entry},
      {shell_name("PUNSUBSCRIBE"), -1, always, &Node::pubsub_entry},
      {shell_name("HMDB.SUBSCRIBE"), -3, always, &Node::pubsub_entry},
      {shell_name("HMDB.PSUBSCRIBE"), -3, always, &Node::pubsub_entry},
      {shell_name("PUBSUB"), -2, never, &Node::pubsub_entry},
      // One database (Redis with `databases 1`); in a cluster, as Redis Cluster says it.
      {shell_name("SELECT"), 2, never,
       [](Node& n, Session&, Args argv, uint64_t, std::string* out) {
         Reply r(out);
         int64_t db = 0;
         if (!parse_int64(argv[1], &db)) r.error("ERR value is not an integer or out of range");
         else if (db < kInt32Min || db > kInt32Max)
           r.error("ERR value is out of range, value must between -2147483648 and 2147483647");
         else if (db != 0 && n.options_.clustered()) r.error("ERR SELECT is not allowed in cluster mode");
         else if (db != 0) r.error("ERR DB index is out of range");
         else r.ok();
         return R::kReplied;
       }},
      {shell_name("HELLO"), -1, never, [](Node& n, Session& s, Args argv, uint64_t, std::string* out) { return n.hello_command(s, argv, out); }},
      {shell_name("AUTH"), -2, never,
       [](Node& n, Session& s, Args argv, uint64_t, std::string* out) {
         Reply r(out);
         const std::string error = auth_error(argv, n.acl_access_);
         if (error.empty()) {
           s.client.authenticated = true;
           s.client.user = n.user_named(argv.size() == 2 ? kDefaultUser : argv[1]);
           HMDB_ASSERT(s.client.user, "AUTH succeeded for a user that does not exist");
           r.ok();
         } else {
           // A refused AUTH leaves an authenticated client authenticated, as in Redis.
           if (auth_refused(error)) n.auth_failed(s, argv.size() == 2 ? kDefaultUser : argv[1]);
           r.error(error);
         }
         return R::kReplied;
       }},
      {shell_name("ACL"), -2, never,
       [](Node& n, Session& s, Args argv, uint64_t seq, std::string* out) { return n.acl_command(s, argv, seq, out); }},
      {shell_name("CLIENT"), -2, never, [](Node& n, Session& s, Args argv, uint64_t, std::string* out) { return n.client_command(s, argv, out); }},
      {shell_name("COMMAND"), -1, never,
       [](Node& n, Session& s, Args argv, uint64_t, std::string* out) {
         n.command_command(s, argv, out);
         return R::kReplied;
       }},
      {shell_name("CONFIG"), -2, never, [](Node& n, Session& s, Args argv, uint64_t, std::string* out) { return n.config_command(s, argv, out); }},
      {shell_name("INFO"), -1, never,
       [](Node& n, Session& s, Args argv, uint64_t, std::string* out) {
         const std::string_view section = argv.size() >= 2 ? argv[1] : std::string_view("default");
         Reply(out, s.client.protocol)
             .verbatim(render_info(collect_statistics(n.statistics_sources(iequals(section, "digest"))), section) +
                       n.render_latency_info(section));
         return R::kReplied;
       }},
      {shell_name("LATENCY"), -2, never,
       [](Node& n, Session& s, Args argv, uint64_t, std::string* out) { return n.latency_command(s, argv, out); }},
      {shell_name("SLOWLOG"), -2, never,
       [](Node& n, Session& s, Args argv, uint64_t, std::string* out) { return n.slowlog_command(s, argv, out); }},
      // The reply of SNAPSHOT and SAVE comes when the snapshot is durable; extra words are ignored.
      {shell_name("SNAPSHOT"), -1, always,
       [](Node& n, Session& s, Args, uint64_t seq, std::string*) { return n.snapshot_command(s, seq); }},
      {shell_name("BGSAVE"), -1, always,
       [](Node& n, Session&, Args, uint64_t, std::string* out) {
         Reply(out).status("Background saving started");
         n.start_snapshot();
         return R::kReplied;
       }},
      {shell_name("SAVE"), -1, always,
       [](Node& n, Session& s, Args, uint64_t seq, std::string*) { return n.snapshot_command(s, seq); }},
      // READONLY: this client accepts a follower's possibly stale state for its queries. It
      // is a cluster client: a follower redirects its writes rather than forwarding them.
      {shell_name("READONLY"), 1, never,
       [](Node&, Session& s, Args, uint64_t, std::string* out) {
         s.client.readonly = true;
         s.client.no_forward = true;
         Reply(out).ok();
         return R::kReplied;
       }},
      {shell_name("READWRITE"), 1, never,
       [](Node&, Session& s, Args, uint64_t, std::string* out) {
         s.client.readonly = false;
         Reply(out).ok();
         return R::kReplied;
       }},
      {shell_name("CLUSTER"), -2, cluster_barrier,
       [](Node& n, Session& s, Args argv, uint64_t seq, std::string* out) { return n.cluster_local_or_change(s, argv, seq, out); }},
  });
  return table;
}

Node::ShellTable::ShellTable(std::vector<ShellCommand> commands) : commands_(std::move(commands)) {
  std::vector<std::string_view> names;
  for (const ShellCommand& c : commands_) names.push_back(c.name);
  index_.rebuild(names);
  // The other direction of shell_name(): the reserved list names no command the shell lacks.
  HMDB_ASSERT(commands_.size() == std::size(kShellCommandNames), "the shell has %zu commands, hmdb/reserved_names.h lists %zu",
              commands_.size(), std::size(kShellCommandNames));
  for (std::string_view listed : kShellCommandNames)
    HMDB_ASSERT(find(listed), "hmdb/reserved_names.h lists %.*s, which the shell does not answer", static_cast<int>(listed.size()),
                listed.data());
}

const Node::ShellCommand* Node::ShellTable::find(std::string_view name) const {
  const size_t i = index_.find(name, [this](size_t k) { return commands_[k].name; });
  return i == detail::NameIndex::kNotFound ? nullptr : &commands_[i];
}

core::CommandClass Node::shell_command_class(Args argv) const {
  const ShellCommand* c = shell_table().find(argv[0]);
  if (!c) return core::CommandClass::kUnknown;
  // With a password, RESET signs the client out: it waits for the session's earlier commands
  // (a barrier) so that what follows it is served after it ran, and refused -NOAUTH.
  if (!acl_access_.default_nopass() && c->name == "RESET") return core::CommandClass::kShellBarrier;
  // ACL SETUSER, DELUSER and LOAD change the cluster's users: logged by the leader.
  if (c->name == "ACL" && argv.size() >= 2 &&
      (iequals(argv[1], "SETUSER") || iequals(argv[1], "DELUSER") || iequals(argv[1], "LOAD")))
    return core::CommandClass::kShellWrite;
  return c->barrier(argv) ? core::CommandClass::kShellBarrier : core::CommandClass::kShellLocal;
}

core::ShellResult Node::run_shell_command(core::ClientSession& client, Args argv, uint64_t seq, std::string* out) {
  const ShellCommand* c = shell_table().find(argv[0]);
  Session* s = find_session(client.id);
  HMDB_ASSERT(c && s, "shell command without its table entry or session");
  if (!arity_ok(c->arity, argv.size())) {
    Reply(out).error(wrong_arity(argv[0]));
    return core::ShellResult::kReplied;
  }
  return c->run(*this, *s, argv, seq, out);
}

core::ShellResult Node::hello_command(Session& s, Args argv, std::string* out) {
  const HelloRequest hello = parse_hello(argv, acl_access_);
  if (hello.name) s.name = std::string(*hello.name);
  if (hello.auth_failed) auth_failed(s, hello.user);
  if (!hello.error.empty()) {
    Reply(out, s.client.protocol).error(hello.error);
    return core::ShellResult::kReplied;
  }
  if (hello.authenticated) {
    s.client.authenticated = true;
    s.client.user = user_named(hello.user);
    HMDB_ASSERT(s.client.user, "HELLO AUTH succeeded for a user that does not exist");
  }
  if (!s.client.authenticated) {
    Reply(out, s.client.protocol).error(kHelloNoAuth);
    return core::ShellResult::kReplied;
  }
  if (hello.protocol) s.client.protocol = *hello.protocol;
  // The reply is already in the protocol just chosen, as Redis answers HELLO 3.
  Reply r(out, s.client.protocol);
  r.map(7);
  r.bulk("server");
  r.bulk("hmdb");
  r.bulk("version");
  r.bulk(kRedisCompatVersion);
  r.bulk("proto");
  r.integer(static_cast<int>(s.client.protocol));
  r.bulk("id");
  r.integer(static_cast<int64_t>(s.id()));
  // As INFO's redis_mode and role say it: a cluster's leader is its master, the others
  // its replicas.
  r.bulk("mode");
  r.bulk(options_.clustered() ? "cluster" : "standalone");
  r.bulk("role");
  r.bulk(!options_.clustered() || replica_->leader() ? "master" : "replica");
  r.bulk("modules");
  r.array(0);
  return core::ShellResult::kReplied;
}

void Node::auth_failed(const Session& s, std::string_view user) {
  acl_log(s, "auth", "AUTH", user);
  // Counted always; logged at most once per kAuthFailureLogIntervalMs, with how many were
  // refused since the last line. Never the user name or password a client sent (a password
  // typed as the user name would be shown).
  stats_.auth_failures++;
  auth_failures_not_logged_++;
  const uint64_t now = monotonic_ms();
  if (last_auth_failure_log_ms_ != 0 && now - last_auth_failure_log_ms_ < kAuthFailureLogIntervalMs) return;
  log_line("authentication refused for client {} ({}): wrong user name or password ({} refused since the last such "
           "line, {} in all; at most one line per {} ms)",
           s.id(), s.address, auth_failures_not_logged_, stats_.auth_failures, kAuthFailureLogIntervalMs);
  auth_failures_not_logged_ = 0;
  last_auth_failure_log_ms_ = now;
}

core::ShellResult Node::pubsub_entry(Node& n, Session& s, Args argv, uint64_t, std::string* out) {
  n.replica_->pubsub().command(s.client, argv, out);
  return core::ShellResult::kReplied;
}

core::ShellResult Node::reset_command(Session& s, std::string* out) {
  // Redis' RESET: the connection as if new (the replica ended an open MULTI already).
  s.client.transaction.reset();
  replica_->pubsub().forget(s.client);
  s.client.protocol = Protocol::kResp2;
  s.client.readonly = false;
  s.name.clear();
  // As in Redis, RESET makes it the default user again: signed out if that needs a password.
  sign_in_default(s.client);
  Reply(out).status("RESET");
  return core::ShellResult::kReplied;
}

std::string Node::client_info_line(const Session& c, uint64_t now) const {
  // Redis 7's fields (clients such as redis-py parse id, age, idle, db, sub, psub, multi,
  // qbuf, qbuf-free, obl, argv-mem, oll, omem and tot-mem as integers), with what hmdb
  // knows of each, then hmdb's own: replies pending, commands run, and a subscriber's lag in log
  // entries (core/pubsub.h).
  return fmt::format(
      "id={} addr={} fd={} name={} age={} idle={} flags=N db=0 sub={} psub={} ssub=0 multi=-1 qbuf={} qbuf-free=0 "
      "argv-mem=0 multi-mem=0 rbs={} rbp=0 obl={} oll=0 omem={} tot-mem={} events=r user={} redir=-1 resp={} "
      "lib-name={} lib-ver={} pending={} commands={} lag={}",
      c.client.id, c.address, c.fd, c.name, (now - c.created_ms) / 1000, (now - c.last_command_ms) / 1000,
      c.client.subscriber ? c.client.subscriber->channels.size() : 0,
      c.client.subscriber ? c.client.subscriber->patterns.size() : 0, c.in.size(),
      c.in.capacity(), c.unsent(), c.unsent(), c.in.capacity() + c.unsent(),
      c.client.user ? std::string_view(c.client.user->name()) : kDefaultUser, static_cast<int>(c.client.protocol),
      c.lib_name, c.lib_version, c.pending(), c.commands, replica_->pubsub().lag_entries(c.client));
}

core::ShellResult Node::client_command(Session& s, Args argv, std::string* out) {
  Reply r(out, s.client.protocol);
  const std::string_view sub = argv[1];
  const uint64_t now = wall_ms();
  auto client_line = [&](const Session& c) { return client_info_line(c, now); };
  const ClientSubcommand* known = nullptr;
  for (const ClientSubcommand& c : kClientSubcommands)
    if (iequals(sub, c.name)) known = &c;
  if (!known) {
    r.error("ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try CLIENT HELP.");
    return core::ShellResult::kReplied;
  }
  if (!arity_ok(known->arity, argv.size())) {
    r.error("ERR wrong number of arguments for 'client|" + lowercase(known->name) + "' command");
    return core::ShellResult::kReplied;
  }
  // ON|OFF, as CLIENT NO-EVICT and NO-TOUCH take it (they change nothing here: hmdb evicts
  // no client and keeps no access times).
  auto on_off = [&](std::string_view v) {
    if (iequals(v, "ON") || iequals(v, "OFF")) r.ok();
    else r.error("ERR syntax error");
  };
  if (known->name == "SETNAME") {
    if (!valid_client_name(argv[2])) {
      r.error("ERR Client names cannot contain spaces, newlines or special characters.");
    } else {
      s.name = std::string(argv[2]);
      r.ok();
    }
  } else if (known->name == "GETNAME") {
    if (s.name.empty()) r.null();
    else r.bulk(s.name);
  } else if (known->name == "ID") {
    r.integer(static_cast<int64_t>(s.id()));
  } else if (known->name == "INFO") {
    r.verbatim(client_line(s) + "\n");
  } else if (known->name == "LIST") {
    if (argv.size() != 2) {
      r.error("ERR syntax error");
    } else {
      std::string all;
      for (const auto& [id, c] : sessions_) all += client_line(*c) + "\n";
      r.verbatim(all);
    }
  } else if (known->name == "SETINFO") {
    // Redis 7.2 (node-redis and redis-py send it on connect, ignoring an error).
    std::string* field = iequals(argv[2], "LIB-NAME") ? &s.lib_name : iequals(argv[2], "LIB-VER") ? &s.lib_version : nullptr;
    if (!field) {
      r.error("ERR Unrecognized option '" + std::string(argv[2]) + "'");
    } else if (!valid_client_name(argv[3])) {
      r.error(std::string(argv[2]) + " cannot contain spaces, newlines or special characters.");
    } else {
      *field = std::string(argv[3]);
      r.ok();
    }
  } else if (known->name == "UNBLOCK") {
    // A client in a blocking command (core/blocking.h) is answered now: a null array
    // (TIMEOUT, the default) or -UNBLOCKED (ERROR), as Redis 7. 1 if it was blocked.
    int64_t id = 0;
    if (argv.size() > 4) {
      r.error("ERR unknown subcommand or wrong number of arguments for 'unblock'. Try CLIENT HELP.");
    } else if (!parse_int64(argv[2], &id)) {
      r.error("ERR value is not an integer or out of range");
    } else if (argv.size() == 4 && !iequals(argv[3], "TIMEOUT") && !iequals(argv[3], "ERROR")) {
      r.error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR");
    } else {
      const bool error = argv.size() == 4 && iequals(argv[3], "ERROR");
      r.integer(id > 0 && replica_->unblock(static_cast<uint64_t>(id), error) ? 1 : 0);
    }
  } else if (known->name == "NO-EVICT" || known->name == "NO-TOUCH") {
    on_off(argv[2]);
  } else if (known->name == "NO-FORWARD") {
    // hmdb's own: ON makes a follower answer this connection's app commands -MOVED instead
    // of forwarding them to the leader (what a cluster client wants; docs/cluster.md).
    on_off(argv[2]);
    if (iequals(argv[2], "ON")) s.client.no_forward = true;
    else if (iequals(argv[2], "OFF")) s.client.no_forward = false;
  } else {  // TRACKING: client-side caching needs invalidation pushes, which hmdb does not send
    if (iequals(argv[2], "OFF")) r.ok();
    else if (iequals(argv[2], "ON")) r.error("ERR CLIENT TRACKING is not supported by hmdb (no invalidation messages)");
    else r.error("ERR syntax error");
  }
  return core::ShellResult::kReplied;
}

core::ShellResult Node::config_command(Session& s, Args argv, std::string* out) {
  Reply r(out, s.client.protocol);
  if (iequals(argv[1], "GET") && argv.size() >= 3) {
    const std::string fsync = options_.durability == Durability::kAlways     ? "always"
                              : options_.durability == Durability::kPeriodic ? "everysec"
                                                                             : "no";
    // What redis-benchmark and clients ask for, answered in Redis' terms.
    const std::vector<std::pair<std::string, std::string>> params = {
        {"save", ""},
        {"appendonly", options_.durability == Durability::kNone ? "no" : "yes"},
        {"appendfsync", fsync},
        {"port", std::to_string(port_)},
        {"bind", options_.bind},
        {"dir", options_.dir},
        {"maxclients", std::to_string(options_.max_clients)},
        {"proto-max-bulk-len", std::to_string(options_.max_bulk_bytes)},
        {"databases", "1"},
        {"hmdb-durability", durability_name(options_.durability)},
        {"hmdb-group-commit-hold", group_hold_mode_name(options_.group_commit_hold)},
        {"hmdb-fsync-interval-ms", std::to_string(options_.fsync_interval_ms)},
        {"hmdb-snapshot-log-bytes", std::to_string(options_.snapshot_log_bytes)},
        {"hmdb-snapshot-method", snapshot_method_name(options_.snapshot_method)},
        {"hmdb-log-memory-bytes", std::to_string(options_.log_memory_bytes)},
        {"notify-keyspace-events", core::format_notify_flags(replica_->pubsub().notify_flags())},
        {"hmdb-events-retain-bytes", std::to_string(options_.events_retain_bytes)},
        {"hmdb-subscriber-output-bytes", std::to_string(options_.subscriber_output_bytes)},
        {"hmdb-cpus", options_.cpus},
        {"slowlog-log-slower-than", std::to_string(slowlog_.slower_than_us)},
        {"slowlog-max-len", std::to_string(slowlog_.max_len)},
        {"latency-monitor-threshold", std::to_string(latency_events_.threshold_ms)},
    };
    std::vector<const std::pair<std::string, std::string>*> hits;
    for (const auto& p : params) {
      for (size_t i = 2; i < argv.size(); i++) {
        std::string pattern(argv[i]);
        if (fnmatch(pattern.c_str(), p.first.c_str(), FNM_CASEFOLD) == 0) {
          hits.push_back(&p);
          break;
        }
      }
    }
    r.map(hits.size());
    for (const auto* p : hits) {
      r.bulk(p->first);
      r.bulk(p->second);
    }
  } else if (iequals(argv[1], "SET")) {
    // Only notify-keyspace-events (a node's own setting, as in Redis: docs/subscriptions.md)
    // and the slow log's and latency monitor's settings (docs/operations.md, "Latency");
    // everything else is a flag of `hmdb serve`. All or nothing, as in Redis.
    if (argv.size() < 4 || argv.size() % 2 != 0) {
      r.error("ERR wrong number of arguments for 'config|set' command");
      return core::ShellResult::kReplied;
    }
    std::optional<uint32_t> flags;
    std::optional<int64_t> slower_than, max_len, threshold;
    for (size_t i = 2; i < argv.size(); i += 2) {
      uint32_t parsed = 0;
      // Redis' integer settings and their ranges.
      const auto integer = [&](int64_t min, std::optional<int64_t>* into) {
        int64_t v = 0;
        if (!parse_int64(argv[i + 1], &v)) {
          r.error("ERR CONFIG SET failed (possibly related to argument '" + lowercase(argv[i]) +
                  "') - argument couldn't be parsed into an integer");
          return false;
        }
        if (v < min) {
          r.error("ERR CONFIG SET failed (possibly related to argument '" + lowercase(argv[i]) +
                  "') - argument must be between " + std::to_string(min) + " and 9223372036854775807 inclusive");
          return false;
        }
        *into = v;
        return true;
      };
      if (iequals(argv[i], "slowlog-log-slower-than")) {
        if (!integer(-1, &slower_than)) return core::ShellResult::kReplied;
        continue;
      }
      if (iequals(argv[i], "slowlog-max-len")) {
        if (!integer(0, &max_len)) return core::ShellResult::kReplied;
        continue;
      }
      if (iequals(argv[i], "latency-monitor-threshold")) {
        if (!integer(0, &threshold)) return core::ShellResult::kReplied;
        continue;
      }
      if (!iequals(argv[i], "notify-keyspace-events")) {
        r.error("ERR CONFIG SET is not supported for '" + std::string(argv[i].substr(0, 128)) +
                "': restart `hmdb serve` with the flag (see hmdb serve --help)");
        return core::ShellResult::kReplied;
      }
      if (!core::parse_notify_flags(argv[i + 1], &parsed)) {
        r.error("ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - Invalid event class "
                "character. Use 'Ag$lshzxeKEtmdn'.");
        return core::ShellResult::kReplied;
      }
      flags = parsed;
    }
    if (flags) replica_->pubsub().set_notify_flags(*flags);
    if (slower_than) slowlog_.slower_than_us = *slower_than;
    if (max_len) {
      slowlog_.max_len = static_cast<uint64_t>(*max_len);
      slowlog_.trim();
    }
    if (threshold) latency_events_.threshold_ms = static_cast<uint64_t>(*threshold);
    r.ok();
  } else if (iequals(argv[1], "RESETSTAT") && argv.size() == 2) {
    // Counters start again; what describes the node's state (since when it runs, its newest
    // snapshot, what recovery did) stays: start_snapshot() skips a snapshot at an index
    // already snapshotted by last_snapshot_index.
    ShellStats kept = stats_;
    stats_ = ShellStats{};
    stats_.start_ms = kept.start_ms;
    stats_.last_snapshot_index = kept.last_snapshot_index;
    stats_.last_snapshot_status = kept.last_snapshot_status;
    stats_.last_snapshot_ms = kept.last_snapshot_ms;
    stats_.last_snapshot_method = kept.last_snapshot_method;
    stats_.last_snapshot_bytes = kept.last_snapshot_bytes;
    stats_.last_snapshot_slice_us = kept.last_snapshot_slice_us;
    stats_.last_snapshot_slice_turn_max_us = kept.last_snapshot_slice_turn_max_us;
    stats_.last_snapshot_slice_turns = kept.last_snapshot_slice_turns;
    stats_.recovered_entries = kept.recovered_entries;
    stats_.recovery_ms = kept.recovery_ms;
    replica_->reset_stats();
    reset_latency();  // the histograms, as Redis' RESETSTAT resets latencystats (not SLOWLOG)
    r.ok();
  } else {
    r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(argv[1]) +
            "'. Try CONFIG GET|SET|RESETSTAT.");
  }
  return core::ShellResult::kReplied;
}

core::ShellResult Node::cluster_local_or_change(Session& s, Args argv, uint64_t seq, std::string* out) {
  Reply r(out, s.client.protocol);
  const std::string_view sub = argv[1];
  if (cluster_barrier(argv)) return cluster_command(s, argv, seq, out);
  // A client that asks for the topology routes by it: a follower answers its app commands
  // -MOVED rather than forwarding them, so it finds the leader and goes there itself.
  if (iequals(sub, "SLOTS") || iequals(sub, "SHARDS") || iequals(sub, "NODES")) s.client.no_forward = true;
  if (iequals(sub, "MEMBERS") && argv.size() == 2) {
    r.bulk(members_text());
  } else if (iequals(sub, "DIGEST") && argv.size() == 2 && replica_->schema_block()) [[unlikely]] {
    // Its state may hold part of the blocking entry: no state of any index (replica.h).
    out->append(replica_->schema_blocked_reply());
  } else if (iequals(sub, "DIGEST") && argv.size() == 2 && replica_->applying_index() != 0) [[unlikely]] {
    // A write is half applied (sliced): the state is no index's until it is.
    out->append(fmt::format("-TRYAGAIN a write of log index {} is being applied in slices; retry\r\n",
                            replica_->applying_index()));
  } else if (iequals(sub, "DIGEST") && argv.size() == 2) {
    // "<applied index> <digest> <schema version it was computed at>" (hmdb cluster digest).
    const core::StateDigest d = core::state_digest(*app_, replica_->requests());
    r.bulk(fmt::format("{} {:016x} {}", replica_->applied_index(), d.value, d.schema_version));
  } else if (iequals(sub, "DIGEST") && argv.size() >= 3 && iequals(argv[2], "AT")) {
    digest_at_command(s, argv, out);
  } else if (iequals(sub, "FORWARDER") && argv.size() == 3) {
    // Another node's forwarding link (core/forwarder.h): its commands come from that node's
    // clients, whose order that node keeps; they are never forwarded again (one hop).
    uint64_t from = 0;
    if (!options_.clustered()) {
      r.error("ERR This instance has cluster support disabled");
    } else if (!parse_uint64(argv[2], &from)) {
      r.error("ERR usage: CLUSTER FORWARDER <node id of the forwarding node>");
    } else {
      s.client.forwarder = true;
      s.name = fmt::format("hmdb-forwarder-{}", from);
      r.ok();
    }
  } else if (is_redis_cluster_subcommand(sub)) {
    redis_cluster_command(argv, s.client.protocol, out);
  } else {
    r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(sub) +
            "'. Try CLUSTER SLOTS|SHARDS|NODES|INFO|MYID|MYSHARDID|KEYSLOT|MEMBERS|DIGEST|ADDLEARNER|PROMOTE|REMOVE|"
            "TRANSFER|SCHEMA|FORWARDER; DIGEST MARK|AT <index> [RECORDS|USERS].");
  }
  return core::ShellResult::kReplied;
}

bool Node::is_redis_cluster_subcommand(std::string_view sub) {
  for (std::string_view name : {"SLOTS", "SHARDS", "NODES", "INFO", "MYID", "MYSHARDID", "KEYSLOT", "COUNTKEYSINSLOT",
                                "GETKEYSINSLOT"})
    if (iequals(sub, name)) return true;
  return false;
}

void Node::redis_cluster_command(Args argv, Protocol protocol, std::string* out) {
  // The subcommands Redis Cluster clients send, answered from this node's view of the
  // members (cluster_topology.h). A single node is a standalone Redis: cluster mode off.
  Reply r(out, protocol);
  const std::string_view sub = argv[1];
  if (!options_.clustered()) {
    r.error("ERR This instance has cluster support disabled");
    return;
  }
  const size_t want = iequals(sub, "KEYSLOT") || iequals(sub, "COUNTKEYSINSLOT") ? 3 : iequals(sub, "GETKEYSINSLOT") ? 4 : 2;
  if (argv.size() != want) {
    r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(sub) + "'. Try CLUSTER HELP.");
    return;
  }
  if (iequals(sub, "KEYSLOT")) {
    r.integer(core::key_hash_slot(argv[2]));
    return;
  }
  if (iequals(sub, "COUNTKEYSINSLOT") || iequals(sub, "GETKEYSINSLOT")) {
    // An app's state has no index of its keys by slot (one shard holds every slot).
    r.error("ERR CLUSTER " + uppercase(sub) + " is not supported: hmdb keeps no index of keys by hash slot");
    return;
  }
  const ClusterTopology t = cluster_topology();
  if (iequals(sub, "SLOTS")) {
    reply_cluster_slots(t, r);
  } else if (iequals(sub, "SHARDS")) {
    reply_cluster_shards(t, r);
  } else if (iequals(sub, "NODES")) {
    r.verbatim(cluster_nodes_text(t));
  } else if (iequals(sub, "INFO")) {
    r.verbatim(cluster_info_text(t));
  } else if (iequals(sub, "MYID")) {
    r.bulk(redis_node_name(options_.cluster_id, options_.node_id));
  } else {  // MYSHARDID
    r.bulk(redis_shard_name(options_.cluster_id, 0));
  }
}

core::ShellResult Node::snapshot_command(Session& s, uint64_t seq) {
  // Its reply waits for the next snapshot, which the replica asks for (start_snapshot) once
  // the slot waits.
  next_snapshot_waiters_.push_back(core::ReplySlot{s.id(), seq});
  return core::ShellResult::kWaitSnapshot;
}

void Node::command_command(Session& s, Args argv, std::string* out) {
  Reply r(out, s.client.protocol);
  // The shell's own commands, then the app's (StateMachine::describe_commands()).
  const std::vector<ShellCommand>& shell = shell_table().commands();
  const std::vector<CommandDescription> app_commands = app_->describe_commands();
  auto app_info = [&](const CommandDescription& c) {
    command_info(r, c.name, c.arity, c.kind == CommandKind::kWrite ? "write" : "readonly", true);
  };
  const size_t total = shell.size() + 1 + app_commands.size();  // 1: HMDB.REQ
  if (argv.size() == 1) {
    r.array(total);
    for (const ShellCommand& c : shell) command_info(r, c.name, c.arity, "fast", false);
    request_command_info(r);
    for (const auto& c : app_commands) app_info(c);
  } else if (iequals(argv[1], "COUNT")) {
    r.integer(static_cast<int64_t>(total));
  } else if (iequals(argv[1], "DOCS")) {
    r.map(0);  // redis-cli falls back to its built-in help
  } else if (iequals(argv[1], "LIST")) {
    r.array(total);
    for (const ShellCommand& c : shell) r.bulk(lowercase(c.name));
    r.bulk(lowercase(core::kRequestCommandName));
    for (const auto& c : app_commands) r.bulk(lowercase(c.name));
  } else if (iequals(argv[1], "INFO")) {
    r.array(argv.size() - 2);
    for (size_t i = 2; i < argv.size(); i++) {
      if (const ShellCommand* c = shell_table().find(argv[i])) {
        command_info(r, argv[i], c->arity, "fast", false);
        continue;
      }
      if (iequals(argv[i], core::kRequestCommandName)) {
        request_command_info(r);
        continue;
      }
      auto it = std::find_if(app_commands.begin(), app_commands.end(),
                             [&](const CommandDescription& c) { return iequals(c.name, argv[i]); });
      if (it == app_commands.end()) r.null();
      else app_info(*it);
    }
  } else {
    r.error("ERR unknown subcommand '" + std::string(argv[1]) + "'. Try COMMAND COUNT|DOCS|INFO|LIST.");
  }
}

StatisticsSources Node::statistics_sources(bool with_digest) const {
  StatisticsSources s;
  s.version = kVersion;
  s.redis_version = kRedisCompatVersion;
  s.app_name = app_->app_name();
  s.schema_version = app_->schema_version();
  s.schema_version_oldest = app_->oldest_schema_version();
  s.schema_version_active = app_->active_schema_version();
  if (const auto& block = replica_->schema_block()) {
    s.schema_blocked_at_index = block->index;
    s.schema_blocked_version = block->version;
  }
  s.process_id = static_cast<uint64_t>(::getpid());
  s.port = port_;
  s.options = options_;
  s.now_ms = wall_ms();
  s.connected_clients = sessions_.size();
  s.blocked_clients = replica_->blocked().blocked_clients();
  s.client_output_limit_bytes = kClientOutputLimitBytes;
  s.shell = stats_;
  s.shell.huge_page_mend_passes = huge_page_mender_.passes();
  s.shell.huge_page_mend_ranges = huge_page_mender_.ranges();
  s.log_bytes_since_snapshot = log_bytes_since_snapshot_;
  s.snapshot_in_progress = snapshot_running();
  s.snapshot_slices_in_progress = sliced_save_ != nullptr;
  s.snapshot_loading = snapshot_load_ != nullptr;
  if (disk_) {
    s.disk = disk_->stats();
    s.disk_queue_bytes = disk_->queued_bytes();
  }
  s.raft = raft_->status();
  if (auto it = members_.find(s.raft.leader); it != members_.end()) s.leader_addr = it->second.client;
  s.replica = replica_->stats();
  s.applied_index = replica_->applied_index();
  s.leader_changes = replica_->leader_changes();
  s.inflight_batches = replica_->writes().size();
  s.sliced_replies_in_progress = replica_->producing();
  s.applying_index = replica_->applying_index();
  s.inflight_bytes = replica_->writes().bytes();
  s.pending_reads = replica_->pending_reads();
  if (forwarder_) {
    s.forward = forwarder_->stats();
    s.forward_pending = forwarder_->commands();
  }
  s.request_ids = replica_->requests().size();
  s.request_table_bytes = replica_->requests().bytes();
  s.requests = replica_->requests().stats();
  if (transport_) s.peers = transport_->stats();
  if (transport_) s.peer_tls_refused = transport_->tls_handshakes_refused();
  const core::PubSub& pubsub = replica_->pubsub();
  s.pubsub = pubsub.stats();
  s.pubsub_channels = pubsub.channels();
  s.pubsub_patterns = pubsub.patterns();
  s.pubsub_subscribers = pubsub.subscribers();
  s.pubsub_catching_up = pubsub.catching_up();
  s.pubsub_lag_entries_max = pubsub.lag_entries_max();
  s.events_retained = pubsub.retained_events();
  s.events_retained_bytes = pubsub.retained_bytes();
  s.events_oldest_index = pubsub.floor().index;
  s.app_info = app_->info();
  if (with_digest && replica_->applying_index() == 0) {  // (a half-applied state is no index's)
    const core::StateDigest d = core::state_digest(*app_, replica_->requests());
    s.state_digest = d.value;
    s.state_digest_schema_version = d.schema_version;
  }
  return s;
}

// ---------------------------------------------------------------------------------------
// ACL rules' view of the shell's commands (kShellAcl)

bool Node::shell_command_acl(Args argv, core::AclCommand* out) const {
  const ShellCommand* c = shell_table().find(argv[0]);
  if (!c || !arity_ok(c->arity, argv.size())) return false;
  const ShellAcl* plain = nullptr;
  const ShellAcl* any = nullptr;
  for (const ShellAcl& a : kShellAcl) {
    if (!iequals(a.name, argv[0])) continue;
    any = &a;
    if (a.sub.empty()) {
      plain = &a;
    } else if (argv.size() >= 2 && iequals(a.sub, argv[1])) {
      // ACL's subcommands' arity comes first, as in Redis (ACL SETUSER alone is an arity error).
      if (a.name == "acl" && !arity_ok(acl_subcommand_arity(a.sub), argv.size())) return false;
      *out = core::AclCommand{a.name, a.sub, a.categories};
      return true;
    }
  }
  // ACL answers an unknown subcommand itself (every one it has is listed); elsewhere an
  // unlisted one is checked as strictly as possible, below.
  if (any && any->name == "acl") return false;
  HMDB_ASSERT(any, "shell command %.*s has no row in kShellAcl", static_cast<int>(c->name.size()), c->name.data());
  const bool has_subcommands = any != plain || std::count_if(std::begin(kShellAcl), std::end(kShellAcl), [&](const ShellAcl& a) {
                                                  return a.name == any->name;
                                                }) > 1;
  if (plain && (!has_subcommands || argv.size() == 1)) {
    *out = core::AclCommand{plain->name, "", plain->categories};
  } else {
    *out = core::AclCommand{any->name, "", kUnlistedSubcommand};
  }
  return true;
}

void Node::AclAccess::for_each(const std::function<void(const core::AclCommand&)>& fn) const {
  for (const ShellAcl& a : kShellAcl) fn(core::AclCommand{a.name, a.sub, a.categories});
  for (const core::EngineCommandAcl& e : core::kEngineCommandAcl) fn(core::AclCommand{e.name, "", e.categories});
  for (const CommandDescription& d : n_.app_->describe_commands()) {
    const std::string name = lowercase(d.name);
    if (n_.app_->command_acl(d.name).engine_only) continue;  // no client may send it: no rule names it
    fn(core::AclCommand{name, "", d.categories});
  }
}

bool Node::AclAccess::default_nopass() const {
  const core::AclUser& d = *n_.acl_.default_user();
  return d.nopass() && d.enabled();
}

bool Node::AclAccess::check(std::string_view user, std::string_view password) const {
  if (user == core::kLinkUserName) {
    if (!n_.link_user_) return false;
    // As AclUser::check_password: digests compared in constant time.
    const core::PasswordDigest d = core::password_digest(password);
    return CRYPTO_memcmp(d.data(), n_.link_secret_digest_.data(), d.size()) == 0;
  }
  return n_.acl_.authenticate(user, password) != nullptr;
}

std::shared_ptr<core::AclUser> Node::user_named(std::string_view name) const {
  if (name == core::kLinkUserName) return link_user_;
  return acl_.find(name);
}

void Node::sign_in_default(core::ClientSession& c) const {
  c.user = acl_.default_user();
  c.authenticated = acl_access_.default_nopass();
}

}  // namespace hmdb::server
