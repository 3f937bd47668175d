// core/replica.cc — one node's deterministic heart (see replica.h).
//
// Sections: client commands (route, serve, hold and release) · the batch and its proposal ·
// raft's Ready (persist, send, apply, reads) · membership and transfers · housekeeping.
#include "core/replica.h"

#include <algorithm>
#include <unordered_set>

#include <fmt/format.h>

#include "common/assert.h"
#include "core/key_slot.h"
#include "hmdb/app.h"
#include "hmdb/reply.h"
#include "hmdb/text.h"

namespace hmdb::core {

namespace {

using Kind = ReplyQueue::Kind;

constexpr size_t kQuotedArgumentMax = 128;        // Redis truncates each argument in this message
constexpr size_t kUnknownCommandReplyMax = 1024;  // ... and the whole list of arguments

std::string quote_for_error(std::string_view s) { return "'" + std::string(s.substr(0, kQuotedArgumentMax)) + "' "; }

// What a client is told when its write's entry left the log, or another entry took its place.
constexpr std::string_view kLostReply = "-ERR write lost in a leadership change; retry\r\n";
constexpr std::string_view kUnknownOutcomeReply =
    "-ERR write outcome unknown: leadership changed before it was committed; it may still take effect, check "
    "before retrying\r\n";
constexpr std::string_view kTransferringReply = "-TRYAGAIN leadership transfer in progress; retry\r\n";
constexpr std::string_view kUnblockedReply = "-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n";

}  // namespace

Replica::Replica(raft::Raft& raft, StateMachine& app, ReplicaHost& host, Options options)
    : raft_(raft), app_(app), host_(host), options_(options), pubsub_(*this, options.events) {
  last_role_ = raft_.role();
  if (leader()) watch_.start(raft_.status().last_index);
  membership_changed();
}

void Replica::set_time(uint64_t wall_ms, uint64_t steady_ms) {
  wall_ms_ = std::max(wall_ms_, wall_ms);  // expiry stays monotonic even if the system clock steps back
  steady_ms_ = steady_ms;
}

void Replica::membership_changed() { voters_ = raft_.status().conf.voters.size(); }

// ---------------------------------------------------------------------------------------
// Client commands

std::string Replica::schema_blocked_reply() const {
  const SchemaBlock& b = *schema_block_;
  return fmt::format("-ERR this node stopped applying at log index {}: {} schema version {}, which this "
                     "binary of app {} does not read (versions {}..{}); its state is stale (applied index {}). Send "
                     "commands to another node, or restart this one with a binary that reads version {}\r\n",
                     b.index,
                     b.snapshot     ? "the leader's snapshot there is of"
                     : b.activation ? "the entry activates"
                                    : "the entry was logged under",
                     b.version, app_.app_name(),
                     app_.oldest_schema_version(), app_.schema_version(), applied_index_, b.version);
}

bool Replica::refused_while_blocked(ClientSession& s, Args argv, std::optional<uint64_t> held,
                                    const std::string& reply) {
  const CommandClass cls = classify(argv);
  const bool app = cls == CommandClass::kAppWrite || cls == CommandClass::kAppQuery || cls == CommandClass::kWatch;
  if (!app && !s.transaction.multi && !is_request(argv) && !iequals(argv[0], "MULTI") && !iequals(argv[0], "EXEC"))
    return false;  // the shell's own commands (INFO, CLUSTER ..., PING) are served
  if (s.transaction.multi) s.transaction.reset();  // nothing of it can run here
  finished_reply(s.replies, held)->append(reply);
  if (!held) mark_drain(s);
  return true;
}

CommandClass Replica::classify(Args argv) const {
  // The engine's names come first. When the app's names cannot be among them (an AppHost
  // refuses reserved names), asking the app first gives the same answer with one lookup for
  // the app's commands, most of what clients send.
  const bool app_first = app_.names_exclude_reserved();
  if (app_first) [[likely]] {
    switch (app_.kind(argv[0])) {
      case CommandKind::kWrite: return CommandClass::kAppWrite;
      case CommandKind::kQuery: return CommandClass::kAppQuery;
      case CommandKind::kUnknown: break;
    }
  }
  const CommandClass shell = host_.shell_command_class(argv);
  if (shell != CommandClass::kUnknown) return shell;
  if (is_publish_name(argv[0])) [[unlikely]] return CommandClass::kAppWrite;  // the engine's own write
  if (app_first) return CommandClass::kUnknown;
  switch (app_.kind(argv[0])) {
    case CommandKind::kWrite: return CommandClass::kAppWrite;
    case CommandKind::kQuery: return CommandClass::kAppQuery;
    case CommandKind::kUnknown: break;
  }
  return CommandClass::kUnknown;
}

bool Replica::validate_publish(Args argv, std::string* error, KeySpec* keys) const {
  if (argv.size() != 3) {
    *error = wrong_arity(argv[0]);
    return false;
  }
  *keys = KeySpec::none();  // it changes no key (WATCH is not about channels)
  return true;
}

int Replica::write_arity(std::string_view name) const { return is_publish_name(name) ? 3 : app_.arity(name); }

NodeView Replica::node_view() const {
  return NodeView{options_.clustered, leader(), reads_need_index()};
}

std::string Replica::unknown_command_reply(Args argv) const {
  std::string msg = "ERR unknown command " + quote_for_error(argv[0]);
  msg.pop_back();
  msg += ", with args beginning with: ";
  for (size_t i = 1; i < argv.size() && msg.size() < kUnknownCommandReplyMax; i++) msg += quote_for_error(argv[i]);
  std::string reply;
  Reply(&reply).error(msg);
  return reply;
}

std::string Replica::redirect_reply(Args argv) const {
  const raft::NodeId leader_id = raft_.leader();
  if (leader_id == raft::kNoNode || (leader() && leader_id == raft_.status().id))
    return "-CLUSTERDOWN no leader known; retry\r\n";
  const std::string addr = host_.client_address_of(leader_id);
  if (addr.empty())
    return fmt::format("-CLUSTERDOWN the leader is node {}, whose address is unknown here; retry\r\n", leader_id);
  // The slot of the command's key: an app command's first key is argv[1] (COMMAND INFO says
  // so). Cluster clients remap the slot named here; 0 where no key is known.
  return fmt::format("-MOVED {} {}\r\n", argv.size() >= 2 ? key_hash_slot(argv[1]) : 0, addr);
}

void Replica::command(ClientSession& s, Args argv) {
  stats_.commands++;
  serve(s, argv, std::nullopt);
}

bool Replica::serve(ClientSession& s, Args argv, std::optional<uint64_t> held) {
  ReplyQueue& q = s.replies;
  // Behind a held command every new command waits too, so that commands are served in the
  // order the session sent them (a transaction's state changes as its commands are served).
  // (Another node's forwarding link is not ordered: core/forwarder.h.)
  if (!held && !s.forwarder && (q.deferred() > 0 || q.waiting_reads() > 0 || s.blocking)) {
    q.push(Kind::kDeferred, argv);
    return true;  // nothing finished: no drain needed
  }
  if (!s.authenticated) [[unlikely]] {
    // Checked in session order (behind what waits), so an AUTH or RESET before this command
    // has run. Unknown commands and wrong arities get -NOAUTH too: a client that has not
    // authenticated learns nothing about the commands there are (Redis 7 tells it).
    if (!allowed_unauthenticated(argv[0])) {
      finished_reply(q, held)->append("-NOAUTH Authentication required.\r\n");
      if (!held) mark_drain(s);
      return true;
    }
  }
  // A user that may not do everything (ACL rules; the default user may by default). Another
  // node's link is not checked: that node checked each command against its own client's
  // user before forwarding it (docs/security.md), and the link's user had to be allowed
  // CLUSTER FORWARDER.
  // AUTH, HELLO, QUIT and RESET are never refused (Redis' no-auth commands skip the check).
  if (s.user && !s.user->permits_all() && !s.forwarder) [[unlikely]] {
    if (!allowed_unauthenticated(argv[0]) && refused_by_acl(s, argv, held)) return true;
  }
  if (s.subscriber && s.protocol == Protocol::kResp2 && s.subscriber->count() > 0) [[unlikely]] {
    if (refused_while_subscribed(s, argv, held)) return true;
  }
  if (schema_block_) [[unlikely]] {
    if (refused_while_blocked(s, argv, held, schema_blocked_reply())) return true;
  }
  if (loading_) [[unlikely]] {
    // As Redis answers while it loads a dataset: the state here is not the one the log says.
    static const std::string kLoading = "-LOADING this node is loading the leader's snapshot in memory\r\n";
    if (refused_while_blocked(s, argv, held, kLoading)) return true;
  }
  // RESET ends an open transaction at once, as in Redis (the shell's RESET does the rest).
  if (s.transaction.multi && argv[0].size() == 5 && iequals(argv[0], "RESET")) [[unlikely]] s.transaction.reset();
  if (s.transaction.multi || may_be_transaction_or_request(argv[0])) [[unlikely]] {
    if (is_request(argv)) return serve_request(s, argv, held);
    bool stays_held = false;
    if (serve_transaction(s, argv, held, &stays_held)) {
      if (!held) mark_drain(s);
      return !stays_held;
    }
  }
  const CommandClass cls = classify(argv);
  SessionView view;
  view.readonly = s.readonly;
  view.forward = options_.forward && !s.readonly && !s.no_forward && !s.forwarder;
  if (s.forwarder) {
    // Another node's link: that node sends a client's next command only when it may run
    // regardless of what else is on the link (core/forwarder.h), so nothing here waits for
    // the link's earlier commands.
  } else if (held) {
    // Routed again from its place: held_before is false (the caller stops at the first
    // command that stays held); a write or a forward before it is any still waiting ahead.
    for (uint64_t seq = q.first_seq(); seq < *held && !(view.write_before && view.forward_before); seq++) {
      view.write_before |= q.at(seq).kind == Kind::kWaitingWrite;
      view.forward_before |= q.at(seq).kind == Kind::kWaitingForward;
    }
  } else {
    view.write_before = q.waiting_writes() > 0;
    view.forward_before = q.waiting_forwards() > 0;
  }
  const Route r = route(cls, node_view(), view);
  if (r == Route::kHold && held) return false;

  switch (r) {
    case Route::kError:
      finished_reply(q, held)->append(unknown_command_reply(argv));
      break;
    case Route::kRedirect:
      finished_reply(q, held)->append(redirect_reply(argv));
      break;
    case Route::kForward: {
      stats_.forwarded++;
      const uint64_t seq = slot_as(q, held, Kind::kWaitingForward, argv);
      if (cls == CommandClass::kAppWrite) {
        // A blocking command waits here, on the client's node: the leader answers the
        // forwarding link's attempt as the non-blocking form (core/blocking.h).
        if (s.blocking) [[unlikely]] note_blocking(s, seq, argv, KeySpec{});
        else if (const KeySpec keys = app_.command_acl(argv[0]).keys; keys.timeout != 0) [[unlikely]]
          note_blocking(s, seq, argv, keys);
      }
      host_.forward(s, seq, argv, cls == CommandClass::kAppWrite || cls == CommandClass::kShellWrite);
      return true;  // it finishes when the host answers it, which marks the session
    }
    case Route::kHold:
      q.push(Kind::kDeferred, argv);
      return true;  // nothing finished: no drain needed
    case Route::kWrite: {
      if (may_answer_unchanged(s, view)) [[unlikely]] {
        // Nothing is pending: the applied state is the one the write would be applied to,
        // at this turn's time (the batch's stamp), and a read now would be served from it.
        unchanged_scratch_.clear();
        Reply reply(&unchanged_scratch_, s.protocol);
        if (app_.unchanged_reply(argv, QueryContext{wall_ms_}, reply)) {
          stats_.unchanged_writes++;
          finished_reply(q, held)->append(unchanged_scratch_);
          break;
        }
      }
      std::string error;
      KeySpec keys;
      if (!validate_write(argv, &error, &keys)) {
        Reply(finished_reply(q, held)).error(error);
        break;
      }
      if (!batch_takes_active_version()) [[unlikely]] {
        finished_reply(q, held)->append(kSchemaChangedReply);
        break;
      }
      const uint64_t seq = slot_as(q, held, Kind::kWaitingWrite, argv);
      if ((keys.timeout != 0 && !s.forwarder) || s.blocking) [[unlikely]] note_blocking(s, seq, argv, keys);
      batch_write(s.id, seq, argv, keys);  // copies the words into the batch
      return true;  // it finishes at apply, which marks the session
    }
    case Route::kReadIndex:
      reads_.queue(ReplySlot{s.id, slot_as(q, held, Kind::kWaitingRead, argv)});  // keeps its words until it runs
      return true;
    case Route::kQueryAtApply: {
      const uint64_t seq = slot_as(q, held, Kind::kQueryAtApply, argv);  // keeps its words until its write is applied
      if (cls != CommandClass::kAppQuery) s.shell_at_apply_end = seq + 1;  // HELLO may change the protocol there
      return true;
    }
    case Route::kRunNow:
      if (cls == CommandClass::kAppQuery) {
        std::string* out = finished_reply(q, held);
        Reply reply(out, s.protocol);
        app_.query(argv, sliceable_query(), reply);
        if (new_producer_) [[unlikely]] {
          // A big reply, made in slices: its slot stays pending (the held one, the new kDone
          // one at the back, or, if the query wrote into out(), a new one at the head).
          start_producing(s, held ? *held : out == &q.out() ? q.reopen_now(Kind::kProducing) : q.next_seq() - 1);
        }
      } else {
        // A local shell command never waits (only barriers may): no slot needed first.
        std::string* out = finished_reply(q, held);
        const ShellResult res = host_.run_shell_command(s, argv, held ? *held : q.next_seq() - 1, out);
        HMDB_ASSERT(res == ShellResult::kReplied, "a local shell command waited");
      }
      break;
    case Route::kRunBarrier: {
      // It may wait (for a snapshot, a membership change, a transfer): its slot first.
      const uint64_t seq = slot_as(q, held, Kind::kDone, argv);
      std::string* out = &q.at(seq).reply;
      out->clear();
      switch (host_.run_shell_command(s, argv, seq, out)) {
        case ShellResult::kReplied: break;
        case ShellResult::kWaitSnapshot:
          q.set_kind(seq, Kind::kWaitingSnapshot);
          host_.start_snapshot();  // may answer at once (nothing new to snapshot): the slot waits by now
          break;
        case ShellResult::kWaitCluster: q.set_kind(seq, Kind::kWaitingWrite); break;
      }
      break;
    }
  }
  if (!held) mark_drain(s);  // a held one is routed by drain_session, which goes on with it
  return true;
}

// serve() computes the same inline (its hot path: a call here cost measurable instructions
// per command); WATCH and EXEC come here.
SessionView Replica::session_view(const ClientSession& s, std::optional<uint64_t> held) const {
  const ReplyQueue& q = s.replies;
  SessionView view;
  view.readonly = s.readonly;
  view.forward = forwards(s);
  if (s.forwarder) {
    // Another node's link: that node sends a client's next command only when it may run
    // regardless of what else is on the link (core/forwarder.h), so nothing here waits for
    // the link's earlier commands.
  } else if (held) {
    // Routed again from its place: held_before is false (the caller stops at the first
    // command that stays held); a write or a forward before it is any still waiting ahead.
    for (uint64_t seq = q.first_seq(); seq < *held && !(view.write_before && view.forward_before); seq++) {
      view.write_before |= q.at(seq).kind == Kind::kWaitingWrite;
      view.forward_before |= q.at(seq).kind == Kind::kWaitingForward;
    }
  } else {
    view.held_before = q.deferred() > 0 || q.waiting_reads() > 0;
    view.write_before = q.waiting_writes() > 0;
    view.forward_before = q.waiting_forwards() > 0;
  }
  return view;
}

std::string* Replica::finished_reply(ReplyQueue& q, std::optional<uint64_t> held) {
  if (!held) return q.reply_now();
  std::string* b = &q.at(*held).reply;
  b->clear();
  q.set_kind(*held, Kind::kDone);
  return b;
}

uint64_t Replica::slot_as(ReplyQueue& q, std::optional<uint64_t> held, Kind kind, Args argv) {
  if (!held) return q.push(kind, argv);
  q.set_kind(*held, kind);
  return *held;
}

// ---------------------------------------------------------------------------------------
// Transactions (core/transaction.h has Redis' rules)

namespace {

enum class TransactionName : uint8_t { kNone, kMulti, kExec, kDiscard, kWatch, kUnwatch };

TransactionName transaction_name(std::string_view name) {
  switch (name.size()) {  // most commands are none of these: one length test
    case 4:
      if (iequals(name, "EXEC")) return TransactionName::kExec;
      break;
    case 5:
      if (iequals(name, "MULTI")) return TransactionName::kMulti;
      if (iequals(name, "WATCH")) return TransactionName::kWatch;
      break;
    case 7:
      if (iequals(name, "DISCARD")) return TransactionName::kDiscard;
      if (iequals(name, "UNWATCH")) return TransactionName::kUnwatch;
      break;
    default: break;
  }
  return TransactionName::kNone;
}

}  // namespace

// MULTI, EXEC, DISCARD, WATCH, UNWATCH and HMDB.REQ by length and first letter: most
// commands, among them the 4- and 5-letter INCR, SADD, HSET, LPUSH, leave serve() on one
// or two compares instead of the transaction and request checks (measured: ~65-90
// instructions per such command at pipeline 32 under callgrind).
bool Replica::may_be_transaction_or_request(std::string_view name) {
  const char first = static_cast<char>(name.empty() ? 0 : name[0] | 0x20);  // ASCII lower case (letters)
  switch (name.size()) {
    case 4: return first == 'e';                  // EXEC
    case 5: return first == 'm' || first == 'w';  // MULTI, WATCH
    case 7: return first == 'd' || first == 'u';  // DISCARD, UNWATCH
    case 8: return first == 'h';                  // HMDB.REQ
    default: return false;
  }
}

namespace {

constexpr std::string_view kQueuedReply = "+QUEUED\r\n";
constexpr std::string_view kOkReply = "+OK\r\n";
constexpr std::string_view kExecAbortReply = "-EXECABORT Transaction discarded because of previous errors.\r\n";

}  // namespace

bool Replica::allowed_unauthenticated(std::string_view name) {
  // Redis 7's commands with the no-auth flag.
  return iequals(name, "AUTH") || iequals(name, "HELLO") || iequals(name, "QUIT") || iequals(name, "RESET");
}

bool Replica::refused_by_acl(ClientSession& s, Args argv, std::optional<uint64_t> held) {
  if (s.user->deleted()) [[unlikely]] {
    // ACL DELUSER (or a load without it) closes its connections, as in Redis: nothing more runs.
    finished_reply(s.replies, held);
    host_.close_after_replies(s);
    if (!held) mark_drain(s);
    return true;
  }
  const AclDenial denial = acl_denial(*s.user, argv);
  if (!denial.denied()) return false;
  host_.acl_refused(s, denial);  // (before the transaction ends: ACL LOG's context says "multi")
  if (s.transaction.multi && transaction_name(argv[0]) == TransactionName::kExec) {
    // A refused EXEC ends its transaction, as Redis' EXEC errors do.
    Reply(finished_reply(s.replies, held)).error("EXECABORT Transaction discarded because of: " + denial.error);
    s.transaction.reset();
  } else {
    Reply(finished_reply(s.replies, held)).error(denial.error);
    // Redis flags an open transaction: EXEC then answers EXECABORT.
    if (s.transaction.multi) s.transaction.aborted = true;
  }
  if (!held) mark_drain(s);
  return true;
}

AclDenial Replica::acl_denial(const AclUser& user, Args argv) const {
  Args command = argv;
  if (is_request(argv)) {
    // HMDB.REQ tags a command: that command is what runs (a malformed one is refused later).
    RequestCommand request;
    std::string error;
    if (!parse_request(argv, &request, &error)) return {};
    command = request.command;
  }
  const std::string name = lowercase(command[0]);
  AclCommand c;
  c.name = name;
  KeySpec keys = KeySpec::none();
  uint8_t key_access = 0;
  if (const EngineCommandAcl* e = engine_command_acl(name)) {
    c.categories = e->categories;
  } else if (const CommandAcl a = app_.command_acl(command[0]); a.kind != CommandKind::kUnknown) {
    // A wrong arity gets its usual error first, as in Redis; the engine's own command is
    // refused to every client by validation.
    if (!arity_ok(a.arity, command.size()) || a.engine_only) return {};
    c.categories = a.categories;
    keys = a.keys;
    key_access = a.kind == CommandKind::kWrite ? kKeyWrite : kKeyRead;
  } else if (!host_.shell_command_acl(command, &c)) {
    return {};  // unknown: answered as unknown
  }
  if (!user.can_run(c)) {
    std::string full(c.name);
    if (!c.subcommand.empty()) full += "|" + std::string(c.subcommand);
    return AclDenial{"NOPERM this user has no permissions to run the '" + full + "' command", "command", full};
  }
  AclDenial denial;
  keys.for_each(command, [&](std::string_view key) {
    if (!denial.denied() && !user.key_allowed(key, key_access))
      denial = AclDenial{"NOPERM this user has no permissions to access one of the keys used as arguments", "key",
                         std::string(key)};
  });
  if (denial.denied()) return denial;
  // Channels: PUBLISH's, (P)SUBSCRIBE's, HMDB.(P)SUBSCRIBE's after the position.
  size_t first_channel = 0;
  bool patterns = false;
  if (name == "publish" || name == "subscribe") first_channel = 1;
  else if (name == "psubscribe") first_channel = 1, patterns = true;
  else if (name == "hmdb.subscribe") first_channel = 2;
  else if (name == "hmdb.psubscribe") first_channel = 2, patterns = true;
  if (first_channel > 0) {
    const size_t last = name == "publish" ? std::min<size_t>(2, command.size()) : command.size();
    for (size_t i = first_channel; i < last; i++)
      if (!user.channel_allowed(command[i], patterns))
        return AclDenial{"NOPERM this user has no permissions to access one of the channels used as arguments",
                         "channel", std::string(command[i])};
  }
  return {};
}

bool Replica::refused_while_subscribed(ClientSession& s, Args argv, std::optional<uint64_t> held) {
  // Redis 7: a RESP2 connection with subscriptions reads pushes, not replies, so it may only
  // (un)subscribe, PING, QUIT and RESET. Unknown commands get their usual error.
  if (PubSub::allowed_when_subscribed(argv[0])) return false;
  if (transaction_name(argv[0]) == TransactionName::kNone && classify(argv) == CommandClass::kUnknown) return false;
  Reply(finished_reply(s.replies, held))
      .error("ERR Can't execute '" + lowercase(argv[0].substr(0, 128)) +
             "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context");
  if (!held) mark_drain(s);
  return true;
}

bool Replica::serve_transaction(ClientSession& s, Args argv, std::optional<uint64_t> held, bool* stays_held,
                                const RequestCommand* request) {
  SessionTransaction& t = s.transaction;
  // A tagged EXEC: argv is HMDB.REQ's, kept whole if the EXEC is held; command is EXEC's.
  const Args command = request ? request->command : argv;
  const TransactionName name = transaction_name(command[0]);
  if (name == TransactionName::kNone && !t.multi) return false;
  ReplyQueue& q = s.replies;
  if (name != TransactionName::kNone) {
    // Redis checks arity before anything else; a wrong one marks an open transaction, and
    // EXEC's own ends it.
    const bool arity_ok = name == TransactionName::kWatch ? command.size() >= 2 : command.size() == 1;
    if (!arity_ok) {
      Reply r(finished_reply(q, held));
      if (name == TransactionName::kExec) {
        r.error("EXECABORT Transaction discarded because of: " + wrong_arity(command[0]).substr(4));
        t.reset();
      } else {
        r.error(wrong_arity(argv[0]));
        if (t.multi) t.aborted = true;
      }
      return true;
    }
  }
  if (t.multi && (name == TransactionName::kNone || name == TransactionName::kUnwatch)) {
    queue_in_transaction(s, argv, finished_reply(q, held));
    return true;
  }
  switch (name) {
    case TransactionName::kNone: break;
    case TransactionName::kMulti:
      if (t.multi) {
        Reply(finished_reply(q, held)).error("ERR MULTI calls can not be nested");
      } else {
        t.multi = true;
        finished_reply(q, held)->append(kOkReply);
      }
      break;
    case TransactionName::kDiscard:
      if (!t.multi) {
        Reply(finished_reply(q, held)).error("ERR DISCARD without MULTI");
      } else {
        t.reset();
        finished_reply(q, held)->append(kOkReply);
      }
      break;
    case TransactionName::kUnwatch:  // outside MULTI (inside, it is queued above)
      t.queued.watched.clear();
      finished_reply(q, held)->append(kOkReply);
      break;
    case TransactionName::kExec:
      if (!t.multi) {
        Reply(finished_reply(q, held)).error("ERR EXEC without MULTI");
      } else if (t.aborted) {
        finished_reply(q, held)->append(kExecAbortReply);
        t.reset();
      } else {
        // A transaction runs on the leader only: here, or forwarded whole (a plain client's).
        const Route r = route(CommandClass::kAppWrite, node_view(), session_view(s, held));
        // Held behind a held command, or a forwarded one still unanswered; a tagged one also
        // until a HELLO queued before it ran (its reply is kept in its protocol).
        if (r == Route::kHold || (request && r == Route::kWrite && protocol_may_change(s))) {
          if (held) *stays_held = true;
          else q.push(Kind::kDeferred, argv);
          break;
        }
        if (request && refuse_tagged_exec(s, held)) break;
        auto transaction = std::make_unique<Transaction>(std::move(t.queued));
        t.reset();
        const std::string_view request_id = request ? request->id : std::string_view();
        if (r == Route::kForward) {
          forward_transaction(s, held, *transaction, request_id);
          break;
        }
        exec(s, held, r, std::move(transaction), request_id);
      }
      break;
    case TransactionName::kWatch: {
      if (t.multi) {
        Reply(finished_reply(q, held)).error("ERR WATCH inside MULTI is not allowed");
        break;
      }
      SessionView view = session_view(s, held);
      view.forward = false;  // a WATCH is the leader's: it is never forwarded
      // After the session's earlier writes are applied, so that they are not changes since.
      const Route r = route(CommandClass::kWatch, node_view(), view);
      if (r == Route::kHold) {
        if (held) *stays_held = true;
        else q.push(Kind::kDeferred, argv);
        break;
      }
      if (r == Route::kRedirect) {
        finished_reply(q, held)->append(redirect_reply(argv));  // the first key's slot
        break;
      }
      HMDB_ASSERT(r == Route::kRunBarrier, "WATCH routed to %d", static_cast<int>(r));
      if (t.queued.watched.size() + (argv.size() - 1) > kWatchedKeysMax) {
        Reply(finished_reply(q, held)).error(fmt::format("ERR a session may WATCH at most {} keys", kWatchedKeysMax));
        break;
      }
      watch_.watching(steady_ms_);
      for (size_t i = 1; i < argv.size(); i++) {
        const std::optional<uint64_t> expiry = app_.expiry_ms(argv[i]);
        t.queued.watched.push_back(WatchedKey{std::string(argv[i]), applied_index_, expiry && *expiry <= wall_ms_});
      }
      finished_reply(q, held)->append(kOkReply);
      break;
    }
  }
  return true;
}

void Replica::queue_in_transaction(ClientSession& s, Args argv, std::string* out) {
  SessionTransaction& t = s.transaction;
  Reply reply(out);
  // Refused now, as Redis refuses while queueing: the whole transaction fails at EXEC.
  auto refuse = [&](std::string_view error) {
    out->append(error);
    t.aborted = true;
    t.queued.commands.clear();  // nothing of it will run: keep no memory for it
    t.bytes = 0;
  };
  QueuedCommand c;
  c.kind = QueuedCommand::Kind::kReply;
  const CommandClass cls =
      transaction_name(argv[0]) == TransactionName::kUnwatch ? CommandClass::kShellLocal : classify(argv);
  switch (cls) {
    case CommandClass::kUnknown: refuse(unknown_command_reply(argv)); return;
    case CommandClass::kShellBarrier:
    case CommandClass::kShellWrite:
    case CommandClass::kWatch: refuse("-ERR Command not allowed inside a transaction\r\n"); return;
    case CommandClass::kShellLocal:
      if (transaction_name(argv[0]) == TransactionName::kUnwatch) {
        c.reply = kOkReply;  // EXEC forgets the watched keys anyway
      } else {
        c.kind = QueuedCommand::Kind::kLocal;
      }
      break;
    case CommandClass::kAppWrite:
    case CommandClass::kAppQuery: {
      if (!arity_ok(write_arity(argv[0]), argv.size())) {
        std::string e;
        Reply(&e).error(wrong_arity(argv[0]));
        refuse(e);
        return;
      }
      // Only the leader runs a transaction: elsewhere a cluster client's commands are
      // redirected (and the transaction fails), as a Redis Cluster node does with a key it
      // does not serve. A plain client's transaction is queued here and forwarded whole at
      // EXEC (forward_transaction).
      if (options_.clustered && !leader() && !forwards(s)) {
        refuse(redirect_reply(argv));
        return;
      }
      if (cls == CommandClass::kAppQuery) {
        c.kind = QueuedCommand::Kind::kQuery;
      } else {
        std::string error;
        if (validate_write(argv, &error, &c.keys)) {
          c.kind = QueuedCommand::Kind::kWrite;
          // Its words mean what the active version says: EXEC logs them under it or not at all.
          const uint32_t v = app_.active_schema_version();
          t.queued.schema_version = t.queued.schema_version == 0 || t.queued.schema_version == v ? v : kMixedSchemaVersions;
        } else {
          Reply(&c.reply).error(error);  // a run-time error in Redis: its place in EXEC's array
        }
      }
      break;
    }
  }
  if (t.aborted) {
    out->append(kQueuedReply);  // Redis keeps answering, and keeps nothing
    return;
  }
  for (auto a : argv) t.bytes += a.size();
  if (t.bytes > kTransactionBytesMax) {
    reply.error(fmt::format("ERR a transaction may queue at most {} bytes of commands", kTransactionBytesMax));
    t.aborted = true;
    t.queued.commands.clear();
    t.bytes = 0;
    return;
  }
  // Every command keeps its words: a transaction forwarded whole sends them all, the
  // leader answering each as this node did when queueing it.
  c.argv.assign(argv.begin(), argv.end());
  if (c.kind == QueuedCommand::Kind::kWrite) t.queued.writes++;
  t.queued.commands.push_back(std::move(c));
  out->append(kQueuedReply);
}

bool Replica::forwards(const ClientSession& s) const {
  return options_.forward && !s.readonly && !s.no_forward && !s.forwarder;
}

void Replica::forward_transaction(ClientSession& s, std::optional<uint64_t> held, const Transaction& t,
                                  std::string_view request_id) {
  // MULTI, the commands as the client sent them, EXEC: the leader queues and runs them as
  // this node would have (a WATCH is never recorded here, so there is none to carry). A
  // tagged EXEC goes with its tag: the leader dedupes it as any tagged transaction.
  std::vector<std::vector<std::string>> commands;
  commands.reserve(t.commands.size() + 2);
  commands.push_back({"MULTI"});
  for (const QueuedCommand& c : t.commands) commands.push_back(c.argv);
  if (request_id.empty()) commands.push_back({"EXEC"});
  else commands.push_back({std::string(kRequestCommandName), std::string(request_id), "EXEC"});
  stats_.forwarded++;
  host_.forward_transaction(s, slot_as(s.replies, held, Kind::kWaitingForward, {}), commands, t.writes > 0);
}

void Replica::exec(ClientSession& s, std::optional<uint64_t> held, Route r, std::unique_ptr<Transaction> t,
                   std::string_view request_id) {
  ReplyQueue& q = s.replies;
  if (r == Route::kRedirect) {
    // The transaction is dropped, as Redis does; the slot named is its first command's key's.
    Args first;
    std::vector<std::string_view> words;
    for (const QueuedCommand& c : t->commands) {
      if (c.kind != QueuedCommand::Kind::kWrite && c.kind != QueuedCommand::Kind::kQuery) continue;
      words.assign(c.argv.begin(), c.argv.end());
      first = words;
      break;
    }
    finished_reply(q, held)->append(redirect_reply(first));
    return;
  }
  HMDB_ASSERT(r == Route::kWrite, "EXEC routed to %d", static_cast<int>(r));
  if (watch_failed(*t)) {
    Reply(finished_reply(q, held), s.protocol).null_array();  // RESP2 *-1, RESP3 _
    stats_.transactions_watch_failed++;
    return;
  }
  if (t->writes > 0 && t->schema_version != app_.active_schema_version()) [[unlikely]] {
    Reply(finished_reply(q, held)).error(
        "EXECABORT Transaction discarded because the cluster's schema version changed while it was queued");
    return;
  }
  if (!batch_takes_active_version()) [[unlikely]] {
    finished_reply(q, held)->append(kSchemaChangedReply);
    return;
  }
  const uint64_t seq = slot_as(q, held, Kind::kWaitingWrite, {});
  Transaction& group = *t;
  s.transaction.in_flight.emplace_back(seq, std::move(t));
  note_shell_at_apply(s, seq, group);
  open_batch();
  if (!request_id.empty()) {
    batch_.add_request(request_id, s.protocol);  // tags the group
    stats_.requests++;
  }
  batch_.add_group(group.writes);
  for (const QueuedCommand& c : group.commands) {
    if (c.kind != QueuedCommand::Kind::kWrite) continue;
    words_scratch_.assign(c.argv.begin(), c.argv.end());
    batch_.add_to_group(words_scratch_);
    watch_.batched(words_scratch_, c.keys);
  }
  batch_slots_.push_back(ReplySlot{s.id, seq});
  stats_.writes += group.writes;
  stats_.transactions++;
}

bool Replica::watch_failed(const Transaction& t) {
  if (t.watched.empty()) return false;
  // The group applies with the batch's time: a key that expires by then has changed.
  const uint64_t now_ms = batch_.empty() ? wall_ms_ : batch_.leader_time_ms();
  for (const WatchedKey& w : t.watched) {
    if (watch_.changed_since(w.key, w.since)) return true;
    if (!w.expired) {
      const std::optional<uint64_t> expiry = app_.expiry_ms(w.key);
      if (expiry && *expiry <= now_ms) return true;
    }
  }
  return false;
}

void Replica::run_transaction_until(ClientSession& s, uint64_t seq, size_t position, uint64_t now_ms) {
  ReplyQueue::Slot& slot = s.replies.at(seq);
  Transaction* found = nullptr;
  for (auto& [at, transaction] : s.transaction.in_flight)
    if (at == seq) found = transaction.get();
  HMDB_ASSERT(slot.kind == Kind::kWaitingWrite && found, "reply slot %llu waits for no transaction",
              static_cast<unsigned long long>(seq));
  Transaction& t = *found;
  std::string* out = &slot.reply;
  if (!t.started) {
    Reply(out, s.protocol).array(t.commands.size());
    t.started = true;
  }
  for (; t.cursor < t.commands.size(); t.cursor++) {
    QueuedCommand& c = t.commands[t.cursor];
    if (c.kind == QueuedCommand::Kind::kWrite) {
      if (t.writes_passed == position) return;  // the apply runs it next
      t.writes_passed++;
      continue;
    }
    if (c.kind == QueuedCommand::Kind::kReply) {
      out->append(c.reply);
      continue;
    }
    words_scratch_.assign(c.argv.begin(), c.argv.end());
    if (c.kind == QueuedCommand::Kind::kQuery) {
      Reply reply(out, s.protocol);
      app_.query(words_scratch_, QueryContext{now_ms}, reply);
    } else {
      const ShellResult res = host_.run_shell_command(s, words_scratch_, seq, out);
      HMDB_ASSERT(res == ShellResult::kReplied, "a shell command in a transaction waited");
    }
  }
  HMDB_ASSERT(position == t.writes_passed, "a group of %llu writes applied for a transaction of %llu",
              static_cast<unsigned long long>(position), static_cast<unsigned long long>(t.writes));
}

void Replica::forget_transaction(ClientSession& s, uint64_t seq) {
  auto& in_flight = s.transaction.in_flight;
  for (size_t i = 0; i < in_flight.size(); i++) {
    if (in_flight[i].first != seq) continue;
    in_flight.erase(in_flight.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

void Replica::mark_drain(ClientSession& s) {
  if (s.in_drain) return;
  s.in_drain = true;
  to_drain_.push_back(s.id);
}

void Replica::run_queries_from(ClientSession& s, uint64_t first_seq) {
  // The write before `first_seq` got its reply: the state is exactly "after it". Queries
  // queued right behind it (finished replies in between do not matter) run now.
  ReplyQueue& q = s.replies;
  // Usually the next slot is a write of the same pipeline, waiting: nothing to run.
  if (ReplyQueue::Slot* next = q.find(first_seq); !next || next->kind == Kind::kWaitingWrite) return;
  std::vector<std::string_view> argv;
  for (uint64_t seq = first_seq; q.holds(seq); seq++) {
    ReplyQueue::Slot& slot = q.at(seq);
    if (slot.kind == Kind::kDone) continue;
    if (slot.kind != Kind::kQueryAtApply) break;
    argv.assign(slot.argv.begin(), slot.argv.end());
    std::string* out = &slot.reply;
    out->clear();
    if (host_.shell_command_class(argv) != CommandClass::kUnknown) {
      const ShellResult res = host_.run_shell_command(s, argv, seq, out);
      HMDB_ASSERT(res == ShellResult::kReplied, "a waiting shell command was queued to run inside apply");
    } else {
      Reply reply(out, s.protocol);
      app_.query(argv, QueryContext{wall_ms_}, reply);
    }
    q.finish(seq, Kind::kQueryAtApply);
  }
}

void Replica::drain() {
  // The two lists trade places and keep their capacity: a fan-out marks every subscriber
  // each turn, and a fresh list grew by reallocation every time.
  std::vector<uint64_t>& ids = drain_scratch_;
  HMDB_ASSERT(ids.empty(), "drain() re-entered");
  while (!to_drain_.empty()) {
    ids.swap(to_drain_);
    for (uint64_t id : ids) {
      ClientSession* s = host_.session(id);
      if (!s) continue;
      s->in_drain = false;
      drain_session(*s);
    }
    ids.clear();
  }
}

void Replica::drain_session(ClientSession& s) {
  ReplyQueue& q = s.replies;
  if (q.idle()) {  // nothing pending (a subscriber given messages): only the sending is left
    host_.replies_ready(s);
    return;
  }
  q.flush_done();
  // Held commands whose reason to wait is gone are routed again, in order. Everything
  // behind a read still waiting, or behind a command that stays held, keeps waiting.
  bool write_before = false;
  for (uint64_t seq = q.first_seq(); q.holds(seq) && q.deferred() > 0; seq++) {
    if (s.blocking && seq == s.blocking_seq) break;  // what follows waits for its answer
    const Kind kind = q.at(seq).kind;
    if (kind == Kind::kWaitingRead) break;
    if (kind == Kind::kWaitingWrite) write_before = true;
    if (kind == Kind::kQueryAtApply) {
      if (!write_before) run_queries_from(s, seq);  // its write ended without running it
      continue;
    }
    if (kind != Kind::kDeferred) continue;
    std::vector<std::string> words = q.at(seq).argv;  // serve() may move the slot on
    std::vector<std::string_view> argv(words.begin(), words.end());
    if (!serve(s, argv, seq)) break;
    if (s.blocking) break;  // it became a blocking command: the rest waits for its answer
    const Kind now = q.at(seq).kind;
    if (now == Kind::kWaitingRead) break;
    if (now == Kind::kWaitingWrite) write_before = true;
  }
  q.flush_done();
  host_.replies_ready(s);
}

void Replica::finish(uint64_t session, uint64_t seq, Kind expected, std::string_view reply) {
  answer_slot(ReplySlot{session, seq}, expected, reply);
}

void ReplicaHost::forward(ClientSession&, uint64_t, Args, bool) {
  HMDB_ASSERT(false, "Replica::Options::forward is set, but the host does not forward");
}

void ReplicaHost::forward_transaction(ClientSession&, uint64_t, const std::vector<std::vector<std::string>>&, bool) {
  HMDB_ASSERT(false, "Replica::Options::forward is set, but the host does not forward transactions");
}

void Replica::answer_slot(ReplySlot slot, Kind expected, std::string_view reply) {
  ClientSession* s = host_.session(slot.session);
  if (!s) return;
  ReplyQueue& q = s->replies;
  q.at(slot.seq).reply.assign(reply);
  if (s->blocking && s->blocking_seq == slot.seq) [[unlikely]] {
    if (blocking_reply(*s, slot.seq)) return;
  }
  q.finish(slot.seq, expected);
  if (expected == Kind::kWaitingWrite) {
    if (!s->transaction.in_flight.empty()) forget_transaction(*s, slot.seq);  // its EXEC ended unapplied
    run_queries_from(*s, slot.seq + 1);
  }
  mark_drain(*s);
}

// ---------------------------------------------------------------------------------------
// Blocking commands (core/blocking.h)

void Replica::note_blocking(ClientSession& s, uint64_t seq, Args argv, const KeySpec& keys) {
  if (s.blocking) {  // its next attempt
    HMDB_ASSERT(seq == s.blocking_seq, "a blocked session's other command was routed");
    if (BlockedTable::Waiter* w = blocked_.find(s.id)) blocked_.attempt_started(*w);
    return;
  }
  const int64_t n = static_cast<int64_t>(argv.size());
  const int64_t at = keys.timeout < 0 ? n + keys.timeout : keys.timeout;
  if (at <= 0 || at >= n) return;
  // A timeout the app refuses: its parse answers the error (the attempt is not logged).
  const std::optional<uint64_t> timeout_ms = parse_block_timeout_ms(argv[static_cast<size_t>(at)]);
  if (!timeout_ms) return;
  std::vector<std::string> key_words;
  std::unordered_set<std::string_view> seen;
  keys.for_each(argv, [&](std::string_view k) {
    if (seen.insert(k).second) key_words.emplace_back(k);
  });
  s.blocking = true;
  s.blocking_seq = seq;
  blocked_.add(s.id, seq, std::vector<std::string>(argv.begin(), argv.end()), std::move(key_words),
               *timeout_ms == 0 ? 0 : steady_ms_ + *timeout_ms);
}

bool Replica::blocking_reply(ClientSession& s, uint64_t seq) {
  ReplyQueue& q = s.replies;
  std::string& reply = q.at(seq).reply;
  BlockedTable::Waiter* w = blocked_.find(s.id);
  if (!w) {
    s.blocking = false;
    return false;
  }
  if (is_null_reply(reply)) {
    if (!w->expired && w->unblock == BlockedTable::Unblock::kNone) {
      reply.clear();
      q.set_kind(seq, Kind::kBlocked);
      blocked_.parked(*w);
      return true;
    }
    // Its timeout passed, or CLIENT UNBLOCK came, while the attempt was in flight.
    reply.clear();
    if (w->unblock == BlockedTable::Unblock::kError) reply = kUnblockedReply;
    else Reply(&reply, s.protocol).null_array();
  }
  end_blocking(s);
  return false;
}

void Replica::answer_blocked(ClientSession& s, std::string_view reply) {
  ReplyQueue& q = s.replies;
  q.at(s.blocking_seq).reply.assign(reply);
  q.finish(s.blocking_seq, Kind::kBlocked);
  end_blocking(s);
  mark_drain(s);
}

void Replica::end_blocking(ClientSession& s) {
  blocked_.remove(s.id);
  s.blocking = false;
}

bool Replica::unblock(uint64_t id, bool error) {
  BlockedTable::Waiter* w = blocked_.find(id);
  ClientSession* s = host_.session(id);
  if (!w || !w->counted || !s) return false;  // not blocked (yet): its first attempt is in flight
  if (w->in_flight) {
    w->unblock = error ? BlockedTable::Unblock::kError : BlockedTable::Unblock::kTimeout;
    return true;
  }
  std::string reply;
  if (error) reply = kUnblockedReply;
  else Reply(&reply, s->protocol).null_array();
  answer_blocked(*s, reply);
  return true;
}

void Replica::serve_blocked() {
  if (redirect_blocked_ && (leader() || raft_.leader() != raft::kNoNode)) {
    // This node stepped down and a leader is known now: a blocked cluster client is routed
    // again, -MOVED to the leader, as a Redis Cluster node answers a client blocked on a
    // slot it no longer serves. A plain client keeps waiting here: its next attempt is
    // forwarded to the new leader. (Leading again: nothing to do.)
    redirect_blocked_ = false;
    for (uint64_t id : blocked_.sessions()) {
      const ClientSession* s = host_.session(id);
      if (s && !leader() && !forwards(*s)) blocked_.wake(id);
    }
  }
  for (uint64_t id : blocked_.expire(steady_ms_)) {
    ClientSession* s = host_.session(id);
    if (!s) {
      blocked_.remove(id);
      continue;
    }
    std::string reply;
    Reply(&reply, s->protocol).null_array();  // Redis' reply at a list's or sorted set's timeout
    answer_blocked(*s, reply);
  }
  for (uint64_t id : blocked_.take_ready()) {
    ClientSession* s = host_.session(id);
    if (!s) blocked_.remove(id);
    else retry_blocked(*s);
  }
}

void Replica::retry_blocked(ClientSession& s) {
  BlockedTable::Waiter* w = blocked_.find(s.id);
  ReplyQueue& q = s.replies;
  const uint64_t seq = s.blocking_seq;
  // Routed again from its slot, as a held command is: the same checks (its user's ACL
  // rules, this node's role) as when it came.
  const std::vector<std::string> words = w->argv;
  q.at(seq).argv = words;
  q.set_kind(seq, Kind::kDeferred);
  blocked_.attempt_started(*w);
  const std::vector<std::string_view> argv(words.begin(), words.end());
  if (!serve(s, argv, seq)) {  // held (for the session's forwarded commands): next turn
    q.set_kind(seq, Kind::kBlocked);
    if ((w = blocked_.find(s.id))) {
      blocked_.parked(*w);
      blocked_.wake(s.id);
    }
    return;
  }
  if (q.at(seq).kind == Kind::kDone) {  // answered at once: -MOVED, -NOPERM, ...
    end_blocking(s);
    mark_drain(s);
  }
}

// ---------------------------------------------------------------------------------------
// The batch and its proposal

void Replica::open_batch() {
  if (!batch_.empty()) return;
  batch_.start(wall_ms_);
  batch_version_ = app_.active_schema_version();
}

bool Replica::batch_takes_active_version() const {
  return batch_.empty() || batch_version_ == app_.active_schema_version();
}

void Replica::batch_write(uint64_t session, uint64_t seq, Args argv, const KeySpec& keys) {
  open_batch();
  batch_.add(argv);
  watch_.batched(argv, keys);
  batch_slots_.push_back(ReplySlot{session, seq});
  stats_.writes++;
}

void Replica::end_proposal(raft::Index index, WriteTracker::Proposal&& p, WriteOutcome outcome) {
  const std::string_view reply = outcome == WriteOutcome::kLost ? kLostReply : kUnknownOutcomeReply;
  for (ReplySlot slot : p.slots)
    if (slot.session != 0) answer_slot(slot, Kind::kWaitingWrite, reply);
  if (index == housekeeping_index_) housekeeping_index_ = 0;  // the next one may be proposed
}

void Replica::propose() {
  auto ended = [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) { end_proposal(i, std::move(p), o); };
  watch_.idle_check(steady_ms_);
  // Stamped with the schema version its commands were validated under: what they mean.
  auto submit = [&](std::string& payload, uint32_t version, std::vector<ReplySlot>& slots, bool refused_batch) -> bool {
    const uint64_t bytes = payload.size();
    raft::ProposeResult r = raft_.propose(raft::EntryType::kNormal, version, &payload);
    switch (r.error) {
      case raft::ProposeError::kNone:
        watch_.proposed(r.index, refused_batch);
        host_.proposed(r.index, r.term, slots);
        writes_.track(r.index, r.term, bytes, std::move(slots), ended);
        slots.clear();
        stats_.batches++;
        if (housekeeping_in_batch_) {
          housekeeping_index_ = r.index;
          housekeeping_in_batch_ = false;
        }
        return true;
      case raft::ProposeError::kBusy:
        stats_.busy_refusals++;
        return false;
      case raft::ProposeError::kNotLeader:
      case raft::ProposeError::kTransferring:
      case raft::ProposeError::kRejected: {  // kRejected: only for membership changes
        watch_.dropped(raft_.status().last_index, refused_batch);
        const std::string reply =
            r.error == raft::ProposeError::kTransferring ? std::string(kTransferringReply) : redirect_reply();
        for (ReplySlot slot : slots)
          if (slot.session != 0) answer_slot(slot, Kind::kWaitingWrite, reply);
        slots.clear();
        housekeeping_in_batch_ = false;
        return true;
      }
    }
    return true;
  };
  if (refused_payload_) {
    if (!submit(*refused_payload_, refused_version_, refused_slots_, true)) return;  // still busy: keep waiting
    refused_payload_.reset();
    refused_slots_.clear();
  }
  if (batch_.empty()) return;
  mark_in_batch_ = false;
  acl_seed_in_batch_ = false;
  std::string payload = batch_.finish();
  std::vector<ReplySlot> slots;
  slots.swap(batch_slots_);
  if (!submit(payload, batch_version_, slots, false)) {
    watch_.refused();
    refused_payload_ = std::move(payload);
    refused_version_ = batch_version_;
    refused_slots_ = std::move(slots);
  }
}

void Replica::end_turn() {
  if (!blocked_.empty()) [[unlikely]] serve_blocked();
  propose();
  start_reads();
  if (!producing_.empty()) [[unlikely]] produce();  // a slice of each big reply; the last one releases the apply
  drive();  // ends by running the reads whose index is applied
  if (half_) [[unlikely]] {
    // A slice of the big write; the last one applies it, then the entries behind it. After
    // drive(): a snapshot the core installs drops it first, rather than have it finish
    // against a core whose log already starts past it.
    apply_slice();
    if (!half_) drive();  // the entries the hold kept, and the reads waiting for them
  }
  pubsub_.pump();  // catching-up subscribers with room get their next retained events
  drain();
}

// ---------------------------------------------------------------------------------------
// raft's Ready

void Replica::drive() {
  auto ended = [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) { end_proposal(i, std::move(p), o); };
  // The order of raft.h's Ready contract: stage snapshot chunks; install a snapshot and
  // start persisting; send; apply; answer reads; answer snapshot reads; take a snapshot if
  // the core wants one; acknowledge.
  while (raft_.has_ready()) {
    const raft::Role role_before = last_role_;
    // Committed entries by reference into the core's log (no copy of each payload): valid
    // until the next take_ready(), step() or snapshot_saved(), none of which runs before
    // they are applied.
    raft::Ready rd = raft_.take_ready(raft::ReadyOptions{.committed_by_reference = true});
    for (const raft::SnapshotChunk& c : rd.snapshot_chunks) host_.stage_snapshot_chunk(c);
    std::optional<raft::SnapshotMeta> installed;
    if (rd.snapshot) {
      // The state is replaced: sliced replies still reading the old one are finished now,
      // and a half-applied write is dropped.
      if (!producing_.empty()) [[unlikely]] produce(/*finish_all=*/true);
      if (half_ || !apply_backlog_.empty()) [[unlikely]] drop_half_applied();
      installed = rd.snapshot->meta;
      // A host still loading the previous one finishes it first (snapshot_loaded).
      const bool loaded_now = host_.install_snapshot(*installed);
      HMDB_ASSERT(!loading_, "a snapshot install while the host still loads the previous one");
      if (loaded_now || options_.bugs.apply_during_background_load) {  // PLANTED BUG when loading
        applied_index_ = installed->index;
        applied_term_ = installed->term;
      } else {
        // The entries after it wait in the core's log for the state they apply to.
        loading_ = *installed;
        raft_.hold_apply(true);
      }
      pubsub_.reset_at(installed->index);  // events between were never seen here: subscriptions end
      blocked_.all_changed();  // any key may have changed
    }
    // Proposals of ours that this Ready removes from the log (a new leader's entries replace
    // them, or a snapshot replaces the whole log) end now: their clients learn at once that
    // the outcome is unknown, and nobody waits on an index proposed again later.
    if ((installed || !rd.entries.empty()) && !options_.bugs.forget_replaced_writes)
      writes_.log_replaced(installed ? std::optional<raft::Index>(installed->index) : std::nullopt, rd.entries, ended);
    bool conf_appended = installed.has_value();
    for (const raft::Entry& e : rd.entries) conf_appended |= e.type == raft::EntryType::kConfChange;
    std::optional<raft::PersistAck> ack;
    if (rd.hard_state || !rd.entries.empty() || installed) ack = host_.persist(rd.hard_state, std::move(rd.entries), installed);
    if (conf_appended) membership_changed();  // a membership takes effect when appended
    if (!rd.messages.empty()) host_.send(std::move(rd.messages));
    if (!rd.after_persist.empty()) host_.send_after_persist(std::move(rd.after_persist));
    for (const raft::Entry* e : rd.committed_refs) {
      if (schema_block_) [[unlikely]] break;  // the rest stays in the log, unapplied
      // Behind a half-applied write: kept (copied) for when it is applied (apply_slice). The
      // hold keeps the core from handing out more meanwhile.
      if ((half_ && !options_.bugs.apply_before_write_finishes) || !apply_backlog_.empty()) [[unlikely]] {  // PLANTED BUG
        apply_backlog_.push_back(*e);
        continue;
      }
      apply_entry(*e);
    }
    if (!rd.committed_refs.empty()) raft_.applied_to(applied_index_);
    for (const raft::ReadState& rs : rd.read_states) reads_.answered(rs.context, rs.index);
    for (const raft::SnapshotReadRequest& req : rd.snapshot_reads) host_.read_snapshot_chunk(req);
    if (rd.snapshot_wanted) host_.snapshot_wanted();
    if (ack) raft_.persisted(*ack);
    last_role_ = raft_.role();
    if (last_role_ != role_before) on_role_change(role_before);
  }
  finish_reads();
}

void Replica::snapshot_loaded() {
  HMDB_ASSERT(loading_, "snapshot_loaded without a snapshot loading");
  applied_index_ = loading_->index;
  applied_term_ = loading_->term;
  loading_.reset();
  update_apply_hold();
  blocked_.all_changed();  // any key may have changed (again: the install's own call saw the old state)
}

// Each item's reply goes straight into its session's slot (a group's, into its EXEC's).
struct Replica::SlotSink final : ApplySink {
  Replica* self;
  const WriteTracker::Proposal* p;
  ClientSession* session = nullptr;
  bool to_out = false;  // the reply goes straight to the session's out() (the head write)
  ReplyTo reply_to(size_t k) override {
    session = nullptr;
    to_out = false;
    if (!p || k >= p->slots.size() || p->slots[k].session == 0) return {};
    session = self->host_.session(p->slots[k].session);
    if (!session) return {};
    ReplyQueue& q = session->replies;
    const uint64_t seq = p->slots[k].seq;
    // A pipeline's writes are answered in order, each at the head once the one before
    // left: written to out() at once, not into its slot and then moved. Not a blocking
    // attempt's (its reply may be dropped) nor a transaction's (EXEC writes its slot).
    if (q.head_writes_to_out(seq) && !session->blocking && session->transaction.in_flight.empty()) [[likely]] {
      to_out = true;
      return ReplyTo{&q.out(), session->protocol};
    }
    ReplyQueue::Slot& slot = q.at(seq);
    HMDB_ASSERT(slot.kind == Kind::kWaitingWrite, "reply slot in the wrong state");
    return ReplyTo{&slot.reply, session->protocol};
  }
  void group_position(size_t k, size_t position, const ApplyContext& ctx) override {
    if (!session) return;
    self->run_transaction_until(*session, p->slots[k].seq, position, ctx.now_ms);
  }
  void replied(size_t k) override {
    if (!session) return;
    const uint64_t seq = p->slots[k].seq;
    if (to_out) [[likely]] {
      session->replies.finish_head_in_out(seq);
      self->run_queries_from(*session, seq + 1);
      self->mark_drain(*session);
      return;
    }
    if (session->blocking && session->blocking_seq == seq) [[unlikely]] {
      if (self->blocking_reply(*session, seq)) return;
    }
    session->replies.finish(seq, Kind::kWaitingWrite);
    if (!session->transaction.in_flight.empty()) self->forget_transaction(*session, seq);
    self->run_queries_from(*session, seq + 1);
    self->mark_drain(*session);
  }
};

void Replica::apply_entry(const raft::Entry& e) {
  HMDB_ASSERT(e.index == applied_index_ + 1, "apply out of order: entry %llu after %llu",
              static_cast<unsigned long long>(e.index), static_cast<unsigned long long>(applied_index_));
  host_.applying(e);
  std::optional<WriteTracker::Proposal> ours;
  if (auto tracked = writes_.take_applied(e.index, e.term)) {
    if (tracked->second == WriteOutcome::kApplied) ours = std::move(tracked->first);
    else end_proposal(e.index, std::move(tracked->first), tracked->second);
  }
  if (e.type == raft::EntryType::kNormal) {
    // Writes may be applied in slices (not in recovery; one at a time, which only the
    // planted bug can meet).
    HalfApplied h;
    h.slice_elements = options_.write_slice_elements;
    if (options_.apply_budget_spent && !options_.bugs.apply_past_budget) {  // PLANTED BUG when set
      h.budget_spent = &options_.apply_budget_spent;
      h.budget_check_commands = std::max<size_t>(1, options_.apply_budget_check_commands);
      h.planted_skip_yielded = options_.bugs.skip_yielded_command;  // PLANTED BUG when set
    }
    const bool slicing = options_.write_slice_elements != 0 && !writes_whole_ && !half_;
    switch (apply_commands(e, ours ? &*ours : nullptr, slicing ? &h : nullptr)) {
      case EntryApply::kDone: break;
      case EntryApply::kStopped: return;
      case EntryApply::kHalfApplied:
        // The write waits for its slices (apply_slice); this entry, and every one after it,
        // waits for the write (or, stopped for the turn's budget, for the next turn).
        if (h.yielded) stats_.apply_yields++;
        else stats_.sliced_writes++;
        half_ = HalfAppliedEntry{e, std::move(ours), std::move(h), false};
        if (options_.bugs.apply_before_write_finishes) {  // PLANTED BUG: counted applied now
          pubsub_.end_entry();  // (begun again at its finish: the next entries have theirs)
          std::optional<WriteTracker::Proposal> none;
          entry_applied(e, none);
          return;
        }
        update_apply_hold();
        return;
    }
  }
  entry_applied(e, ours);
}

Replica::EntryApply Replica::apply_commands(const raft::Entry& e, WriteTracker::Proposal* ours, HalfApplied* half) {
  const bool resuming = half && half->producer;
  SlotSink sink;
  sink.self = this;
  sink.p = ours;
  KeyChanges* changes = nullptr;
  if (watch_.active()) {
    watch_.applying(e.index);
    changes = &watch_;
  }
  RequestTable* requests = options_.bugs.forget_request_ids ? nullptr : &requests_;  // PLANTED BUG
  // The entry's events: begun once (a half-applied entry's stays open until it is applied,
  // so that its events' positions go on where they stopped).
  if (!resuming || options_.bugs.apply_before_write_finishes) pubsub_.begin_entry(e.index, e.term);  // PLANTED BUG
  std::optional<DigestMarks> after_entry;  // PLANTED BUG hash_marks_after_entry
  if (options_.bugs.hash_marks_after_entry && !ours) after_entry.emplace();
  const ApplyResult r = apply_batch(app_, e.data, e.index, e.schema_version, ours ? &sink : nullptr, apply_scratch_,
                                    changes, requests, &pubsub_, after_entry ? &*after_entry : &marks_,
                                    options_.bugs.apply_unread_schema, &acl_, half);  // PLANTED BUG when set
  if (r.status == ApplyStatus::kHalfApplied) [[unlikely]] {
    if (resuming && options_.bugs.apply_before_write_finishes) pubsub_.end_entry();  // PLANTED BUG
    return EntryApply::kHalfApplied;
  }
  if (after_entry && after_entry->find(e.index))
    marks_.record(DigestMark{e.index, state_digest(app_, requests_), app_.active_schema_version()});
  pubsub_.end_entry();
  if (r.status == ApplyStatus::kUnsupportedSchema && options_.clustered) [[unlikely]] {
    schema_block_ = SchemaBlock{e.index, r.schema_version, r.activation};
    if (ours) end_proposal(e.index, std::move(*ours), WriteOutcome::kUnknown);
    host_.schema_blocked(e, r);
    return EntryApply::kStopped;
  }
  if (r.status != ApplyStatus::kOk) {
    host_.apply_failed(e, r);
    return EntryApply::kStopped;
  }
  HMDB_ASSERT(!ours || r.items == ours->slots.size(), "batch at index %llu has %zu items, %zu waiters",
              static_cast<unsigned long long>(e.index), r.items, ours->slots.size());
  return EntryApply::kDone;
}

void Replica::entry_applied(const raft::Entry& e, std::optional<WriteTracker::Proposal>& ours) {
  if (e.type != raft::EntryType::kNormal) {
    pubsub_.begin_entry(e.index, e.term);  // no events: positions move past it
    pubsub_.end_entry();
  }
  if (e.type != raft::EntryType::kNormal && ours) {
    // A membership change proposed by CLUSTER ADDLEARNER/PROMOTE/REMOVE: committed.
    for (ReplySlot slot : ours->slots)
      if (slot.session != 0) answer_slot(slot, Kind::kWaitingWrite, "+OK\r\n");
  }
  applied_index_ = e.index;
  applied_term_ = e.term;
  if (housekeeping_index_ != 0 && applied_index_ >= housekeeping_index_) housekeeping_index_ = 0;
  if (e.type == raft::EntryType::kConfChange) membership_changed();
  host_.applied(e);
}

void Replica::apply_slice() {
  HalfAppliedEntry& h = *half_;
  if (!h.computed) {
    if (!h.half.yielded) stats_.write_slices++;
    h.computed = h.half.producer->next(SliceBudget{options_.write_slice_elements, SIZE_MAX});
    if (!h.computed) return;
  }
  // Sliced replies read the state as it is: the write changes it once they are complete.
  if (!producing_.empty() && !options_.bugs.apply_while_producing) return;  // PLANTED BUG
  const bool counted = options_.bugs.apply_before_write_finishes;  // PLANTED BUG: applied already
  HalfAppliedEntry done = std::move(*half_);
  half_.reset();
  switch (apply_commands(done.entry, done.ours ? &*done.ours : nullptr, &done.half)) {
    case EntryApply::kStopped: return;
    case EntryApply::kHalfApplied:
      // Another big write further in the same entry (or the turn's budget spent again).
      if (done.half.yielded) stats_.apply_yields++;
      else stats_.sliced_writes++;
      // Stopped for the turn's budget, the batch resumes in the next turn's apply_slice (its
      // placeholder's next() is for the turn the apply first stopped in: then apply_slice
      // runs after drive() in the same turn).
      done.computed = done.half.yielded;
      half_ = std::move(done);
      if (counted) return;
      update_apply_hold();
      return;
    case EntryApply::kDone: break;
  }
  if (!counted) entry_applied(done.entry, done.ours);
  apply_backlog();
  raft_.applied_to(applied_index_);
  update_apply_hold();
}

void Replica::apply_backlog() {
  while (!half_ && !apply_backlog_.empty() && !schema_block_) {
    const raft::Entry e = std::move(apply_backlog_.front());
    apply_backlog_.pop_front();
    apply_entry(e);
  }
}

void Replica::drop_half_applied() {
  if (half_) {
    // Its entry is in the snapshot's state (the snapshot is beyond this node's log): the
    // write took effect, but this node cannot say with what reply.
    stats_.sliced_writes_dropped++;
    if (!options_.bugs.apply_before_write_finishes) pubsub_.end_entry();  // PLANTED BUG: ended already
    if (half_->ours) end_proposal(half_->entry.index, std::move(*half_->ours), WriteOutcome::kUnknown);
    half_.reset();
  }
  apply_backlog_.clear();  // their proposals end with the log the snapshot replaces
  update_apply_hold();
}

void Replica::start_reads() {
  if (!reads_.has_queued()) return;
  std::vector<ReplySlot> refused = reads_.ask([this](uint64_t context) { return leader() && raft_.read_index(context); });
  for (ReplySlot slot : refused) complete_read(slot, /*redirect=*/true);
}

void Replica::finish_reads() {
  if (!reads_.has_ready()) return;
  for (ReplySlot slot : reads_.ready(applied_index_)) complete_read(slot, /*redirect=*/false);
}

void Replica::complete_read(ReplySlot slot, bool redirect) {
  ClientSession* s = host_.session(slot.session);
  if (!s) return;
  ReplyQueue& q = s->replies;
  ReplyQueue::Slot& read = q.at(slot.seq);
  HMDB_ASSERT(read.kind == Kind::kWaitingRead, "read slot in the wrong state");
  read.reply.clear();
  std::vector<std::string_view> argv(read.argv.begin(), read.argv.end());
  if (redirect) {
    read.reply = redirect_reply(argv);
  } else {
    Reply r(&read.reply, s->protocol);
    app_.query(argv, sliceable_query(), r);
    if (new_producer_) [[unlikely]] {
      start_producing(*s, slot.seq);
      mark_drain(*s);
      return;
    }
  }
  q.finish(slot.seq, Kind::kWaitingRead);
  mark_drain(*s);
}

// ---------------------------------------------------------------------------------------
// Sliced replies (hmdb::ReplyProducer)

bool Replica::ahead_only_replies(const ReplyQueue& q, uint64_t seq) {
  for (uint64_t i = q.first_seq(); i < seq; i++) {
    const Kind k = q.at(i).kind;
    if (k != Kind::kDone && k != Kind::kProducing) return false;
  }
  return true;
}

void Replica::start_producing(ClientSession& s, uint64_t seq) {
  ReplyQueue& q = s.replies;
  if (q.at(seq).kind != Kind::kProducing) q.set_kind(seq, Kind::kProducing);
  if (producing_.empty()) hold_since_ms_ = steady_ms_;
  producing_.push_back(Producing{s.id, seq, s.protocol, std::move(new_producer_)});
  new_producer_.reset();
  stats_.sliced_replies++;
  producing_runnable_ = true;
  update_apply_hold();  // from now on no entry is applied until the reply is complete
}

void Replica::produce(bool finish_all) {
  producing_runnable_ = false;
  if (producing_.empty()) return;
  const bool overdue = steady_ms_ - hold_since_ms_ >= options_.slice_hold_ms_max;
  if (overdue && !finish_all) stats_.slice_hold_overdue_turns++;
  const bool whole = overdue || finish_all;
  const SliceBudget budget = whole ? SliceBudget{} : SliceBudget{options_.slice_elements, options_.slice_bytes};
  for (size_t i = 0; i < producing_.size();) {
    Producing& p = producing_[i];
    ClientSession* s = host_.session(p.session);
    if (!s) {  // its client is gone: so is the reply
      producing_.erase(producing_.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    ReplyQueue& q = s->replies;
    q.flush_done();
    // Behind an earlier reply of its session (another sliced one) it waits its turn, so
    // that its slices go straight out; a slow reader gets no slice until it reads. (Made
    // whole, a reply behind others is written into its slot, which keeps the order.)
    const bool at_head = q.first_seq() == p.seq;
    // But behind a reply that waits for an apply (on another node's forwarding link, a
    // write of another client of that node: routed as if nothing were ahead of it), it
    // would wait for what waits for it: its slices are made into its slot, buffered as a
    // whole reply would be, and the apply goes on once it is complete.
    const bool buffered = !at_head && !ahead_only_replies(q, p.seq);
    if (buffered && !p.buffered) {
      p.buffered = true;
      stats_.sliced_replies_buffered++;
    }
    // A slow reader waits at most slice_reader_wait_ms in a row; then its reply goes on.
    bool wait_for_reader = false;
    if (at_head && host_.unsent_bytes(*s) >= options_.slice_output_pause_bytes) {
      if (p.reader_wait_since_ms == 0) p.reader_wait_since_ms = std::max<uint64_t>(steady_ms_, 1);
      wait_for_reader = steady_ms_ - p.reader_wait_since_ms < options_.slice_reader_wait_ms;
      if (!wait_for_reader && !whole) stats_.slice_reader_waits_expired++;
    } else {
      p.reader_wait_since_ms = 0;
    }
    if (!whole && ((!at_head && !buffered) || wait_for_reader)) {
      if (at_head) mark_drain(*s);  // (sending its output is what may let it go on)
      i++;
      continue;
    }
    ReplyQueue::Slot& slot = q.at(p.seq);
    std::string* out = &slot.reply;
    if (at_head) {
      out = &q.out();
      out->append(slot.reply);  // what the query wrote before its slot reached the head
      slot.reply.clear();
    }
    Reply r(out, p.protocol);
    bool done = false;
    do {
      done = p.producer->next(r, budget);
      stats_.reply_slices++;
    } while (whole && !done);
    mark_drain(*s);
    if (!done) {
      producing_runnable_ = true;
      i++;
      continue;
    }
    q.finish(p.seq, Kind::kProducing);
    producing_.erase(producing_.begin() + static_cast<std::ptrdiff_t>(i));
  }
  update_apply_hold();
  if (producing_.empty()) producing_runnable_ = false;
}

void Replica::on_role_change(raft::Role before) {
  const raft::Role now = raft_.role();
  if (before == raft::Role::kLeader || now == raft::Role::kLeader) leader_changes_++;
  // WATCH is decided by the leader from the changes of its own entries: everything in the
  // log now (earlier leaders' entries, and any batch proposed before this call) is below
  // the horizon.
  if (now == raft::Role::kLeader) watch_.start(raft_.status().last_index);
  else watch_.stop();
  if (before == raft::Role::kLeader && now != raft::Role::kLeader) {
    // The core drops its pending read-index requests when it steps down.
    for (ReplySlot slot : reads_.fail_all()) complete_read(slot, /*redirect=*/true);
    // Its blocked cluster clients are routed again once the new leader is known
    // (serve_blocked): -MOVED to it.
    if (!blocked_.empty()) redirect_blocked_ = true;
  }
  membership_changed();
  host_.role_changed(before, now);
}

// ---------------------------------------------------------------------------------------
// Membership and transfers

raft::ProposeResult Replica::propose_membership(const raft::ConfChange& change, uint64_t session, uint64_t seq) {
  raft::ProposeResult pr = raft_.propose_conf_change(change);
  if (pr.error == raft::ProposeError::kNone) {
    writes_.track(pr.index, pr.term, 0, {ReplySlot{session, seq}},
                  [this](raft::Index i, WriteTracker::Proposal&& p, WriteOutcome o) { end_proposal(i, std::move(p), o); });
  }
  return pr;
}

void Replica::transfer(raft::NodeId target, uint64_t session, uint64_t seq, uint64_t deadline_steady_ms,
                       uint64_t timeout_ms) {
  raft_.transfer_leadership(target);
  transfers_.push_back(Transfer{ReplySlot{session, seq}, target, deadline_steady_ms, timeout_ms});
}

void Replica::activate_schema(uint32_t version, uint64_t session, uint64_t seq) {
  open_batch();
  batch_.add_activation(version);
  batch_slots_.push_back(ReplySlot{session, seq});
}

void Replica::digest_mark(uint64_t session, uint64_t seq) {
  open_batch();
  batch_.add_digest_mark();
  batch_slots_.push_back(ReplySlot{session, seq});
  mark_in_batch_ = true;
}

void Replica::acl_change(AclOp op, const std::vector<std::string>& words, uint64_t session, uint64_t seq) {
  open_batch();
  if (acl_.present() && !acl_.users->logged() && !acl_seed_in_batch_) {
    // Loaded only where no ACL change applied yet (a seed of an earlier leader's may be in
    // flight: then this one changes nothing).
    const std::string users = acl_.users->save();
    batch_.add_acl(static_cast<uint8_t>(AclOp::kSeed), {users});
    batch_slots_.push_back(ReplySlot{0, 0});  // nobody waits for it
    acl_seed_in_batch_ = true;
  }
  std::vector<std::string_view> views(words.begin(), words.end());
  batch_.add_acl(static_cast<uint8_t>(op), views);
  batch_slots_.push_back(ReplySlot{session, seq});
}

void Replica::check_transfers() {
  for (size_t i = 0; i < transfers_.size();) {
    const Transfer& t = transfers_[i];
    const raft::NodeId leads = raft_.leader();
    std::string reply;
    if (leads == t.target && !leader()) {
      reply = "+OK\r\n";
    } else if (leader() && raft_.status().transferee != t.target &&
               !options_.bugs.transfer_waits_for_deadline) {  // PLANTED BUG
      // The core dropped it (not done within one election timeout, or superseded by a
      // transfer to another node): this node leads on and takes writes again.
      reply = fmt::format("-ERR leadership transfer to node {} abandoned: it did not take over within an election "
                          "timeout (is it up, caught up and reachable?); node {} still leads\r\n",
                          t.target, leads);
    } else if (!leader() && leads != raft::kNoNode &&
               !options_.bugs.transfer_ignores_lost_leadership) {  // PLANTED BUG
      // This node lost its leadership and another node than the target leads now (it won an
      // election the transfer's own may have started): the transfer is over. While no leader
      // is known the client waits: a node that steps down for the target's campaign knows
      // no leader until the target has won it.
      reply = fmt::format("-ERR leadership transfer to node {} abandoned: node {} lost its leadership meanwhile; "
                          "node {} leads now\r\n",
                          t.target, raft_.status().id, leads);
    } else if (steady_ms_ >= t.deadline_steady_ms) {
      reply = fmt::format("-ERR leadership transfer to node {} did not finish within {} ms (is it caught up and "
                          "reachable?){}\r\n",
                          t.target, t.timeout_ms, leader() ? "" : "; no leader is known now");
    }
    if (reply.empty()) {
      i++;
      continue;
    }
    const ReplySlot slot = t.slot;
    transfers_[i] = transfers_.back();
    transfers_.pop_back();
    answer_slot(slot, Kind::kWaitingWrite, reply);
  }
}

// ---------------------------------------------------------------------------------------
// Housekeeping

void Replica::housekeeping() {
  if (!leader() || schema_block_) return;
  // One housekeeping command at a time: the next one is computed after the last applied.
  if (housekeeping_in_batch_ || housekeeping_index_ != 0) return;
  auto command = app_.housekeeping(wall_ms_);
  if (!command || command->empty()) return;
  std::vector<std::string_view> argv(command->begin(), command->end());
  std::string error;
  KeySpec keys;
  if (!app_.validate_housekeeping(argv, &error, &keys)) {
    host_.warn(fmt::format("the app's housekeeping command {} is invalid: {}", (*command)[0], error));
    return;
  }
  if (!batch_takes_active_version()) return;  // the next round
  batch_write(0, 0, argv, keys);
  housekeeping_in_batch_ = true;
}

}  // namespace hmdb::core
