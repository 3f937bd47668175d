// core/request.cc — HMDB.REQ in the replica core (core/request.h): Replica::serve_request
// routes a tagged write or EXEC, and BatchBuilder::add_request writes the request item.
//
// Apart from replica.cc on purpose, with the refusals of a tagged EXEC: what the compiler
// inlines there (the path every untagged command takes) stays as it was without request
// ids. With this code in replica.cc and batch.h, a plain SET cost 1-1.5 % more instructions
// (callgrind, server process): helpers it calls (slot_as, mark_drain, Encoder::varint, the
// batch's finish) were no longer inlined into the hot path, not for anything it runs.
#include "common/assert.h"
#include "core/batch.h"
#include "core/replica.h"
#include "core/request.h"
#include "hmdb/reply.h"
#include "hmdb/text.h"

namespace hmdb::core {

namespace {

using Kind = ReplyQueue::Kind;

bool is_transaction_command(std::string_view name) {
  for (std::string_view t : {"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"})
    if (iequals(name, t)) return true;
  return false;
}

}  // namespace

void BatchBuilder::add_request(std::string_view id, Protocol protocol) {
  HMDB_ASSERT(group_left_ == 0, "a request inside a group");
  HMDB_ASSERT(!id.empty() && id.size() <= kRequestIdBytesMax, "a request id of %zu bytes", id.size());
  body_.varint(0);
  body_.u8(kItemRequest);
  body_.bytes(id);
  body_.u8(static_cast<uint8_t>(protocol));
  format_ = kBatchFormatItems;
}

bool Replica::serve_request(ClientSession& s, Args argv, std::optional<uint64_t> held) {
  ReplyQueue& q = s.replies;
  SessionTransaction& t = s.transaction;
  auto answer = [&](std::string_view reply) {
    finished_reply(q, held)->append(reply);
    if (!held) mark_drain(s);
    return true;
  };
  auto refuse = [&](std::string_view error) {
    std::string reply;
    Reply(&reply).error(error);
    if (t.multi) {  // refused while queueing, as Redis refuses: the EXEC will fail
      t.aborted = true;
      t.queued.commands.clear();
      t.bytes = 0;
    }
    return answer(reply);
  };
  RequestCommand request;
  std::string error;
  if (!parse_request(argv, &request, &error)) return refuse(error);
  if (iequals(request.command[0], "EXEC")) {
    bool stays_held = false;
    serve_transaction(s, argv, held, &stays_held, &request);
    if (!held) mark_drain(s);
    return !stays_held;
  }
  if (t.multi) return refuse("ERR HMDB.REQ inside MULTI tags nothing: tag the transaction with HMDB.REQ <id> EXEC");
  if (is_transaction_command(request.command[0])) return refuse("ERR HMDB.REQ tags an app write, or EXEC");
  // A PUBLISH's reply is the receivers on the node that applied it: the request table, the same
  // on every node, cannot keep it. (Put an id in the message instead: docs/subscriptions.md.)
  if (is_publish_name(request.command[0])) return refuse("ERR HMDB.REQ cannot tag PUBLISH: its reply differs from node to node");
  const CommandClass cls = classify(request.command);
  switch (cls) {
    case CommandClass::kAppWrite: break;
    case CommandClass::kAppQuery: return serve(s, request.command, held);  // changes nothing: as if untagged
    case CommandClass::kUnknown: return answer(unknown_command_reply(request.command));
    default: return refuse("ERR HMDB.REQ tags an app write, or EXEC; '" + lowercase(request.command[0]) + "' is neither");
  }
  const Route r = route(cls, node_view(), session_view(s, held));
  if (r == Route::kHold && held) return false;
  switch (r) {
    case Route::kRedirect:
      return answer(redirect_reply(request.command));  // the slot of the tagged command's key
    case Route::kForward:
      // Tag and all: the leader dedupes it as any tagged write.
      stats_.forwarded++;
      host_.forward(s, slot_as(q, held, Kind::kWaitingForward, argv), argv, /*write=*/true);
      return true;
    case Route::kHold:
      q.push(Kind::kDeferred, argv);
      return true;
    case Route::kWrite: {
      if (protocol_may_change(s)) {
        if (held) return false;
        q.push(Kind::kDeferred, argv);
        return true;
      }
      KeySpec keys;
      if (!app_.validate(request.command, &error, &keys)) {
        std::string reply;
        Reply(&reply).error(error);
        return answer(reply);
      }
      if (!batch_takes_active_version()) [[unlikely]] return answer(kSchemaChangedReply);
      const uint64_t seq = slot_as(q, held, Kind::kWaitingWrite, argv);
      open_batch();
      batch_.add_request(request.id, s.protocol);  // the item batch_write adds is the one it tags
      stats_.requests++;
      batch_write(s.id, seq, request.command, keys);
      return true;  // it finishes at apply, which marks the session
    }
    default: break;
  }
  HMDB_ASSERT(false, "a tagged write routed to %d", static_cast<int>(r));
  return true;
}

bool Replica::protocol_may_change(const ClientSession& s) const {
  if (s.shell_at_apply_end == 0) return false;
  const ReplyQueue& q = s.replies;
  const uint64_t seq = s.shell_at_apply_end - 1;
  if (!q.holds(seq)) return false;
  const Kind kind = q.at(seq).kind;
  return kind == Kind::kQueryAtApply || kind == Kind::kWaitingWrite;  // not yet run (an EXEC's: its group)
}

void Replica::note_shell_at_apply(ClientSession& s, uint64_t seq, const Transaction& t) {
  for (const QueuedCommand& c : t.commands)
    if (c.kind == QueuedCommand::Kind::kLocal) s.shell_at_apply_end = seq + 1;
}

bool Replica::refuse_tagged_exec(ClientSession& s, std::optional<uint64_t> held) {
  // The reply is kept for retries, identical on every node: so the whole reply must come
  // from the log (a query's reply would not: queries are not logged), and a retry must not
  // depend on a WATCH (a key the first attempt changed would fail it).
  SessionTransaction& t = s.transaction;
  const char* why = nullptr;
  if (!t.queued.watched.empty()) why = "a transaction with a request id may not WATCH";
  for (const QueuedCommand& c : t.queued.commands) {
    if (!why && c.kind != QueuedCommand::Kind::kWrite)
      why = "a transaction with a request id may hold only writes that are valid when queued";
    if (!why && is_publish_name(c.argv[0]))
      why = "a transaction with a request id may not PUBLISH (its reply differs from node to node)";
  }
  if (!why) return false;
  Reply(finished_reply(s.replies, held)).error(std::string("EXECABORT Transaction discarded because of: ") + why);
  t.reset();
  return true;
}

}  // namespace hmdb::core
