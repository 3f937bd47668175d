// core/apply.cc — the one apply path (see apply.h).
#include "core/apply.h"

#include <fmt/format.h>

#include <memory>
#include <utility>

#include "common/assert.h"
#include "core/batch.h"
#include "hmdb/reply.h"

namespace hmdb::core {

namespace {

// A command name as a log line may show it: at most 64 bytes, anything unprintable escaped.
std::string printable(std::string_view name) {
  constexpr size_t kShownBytesMax = 64;
  std::string out = "'";
  for (size_t i = 0; i < name.size() && i < kShownBytesMax; i++) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '\'') out += static_cast<char>(c);
    else out += fmt::format("\\x{:02x}", c);
  }
  return out + (name.size() > kShownBytesMax ? "...'" : "'");
}

// The answer to an item tagged with a request id the table knows: nothing is applied.
void answer_repeat(const RequestTable::Entry& first, const BatchStep& step, std::string* out, RequestTable::Stats& stats) {
  Reply r(out, step.request_protocol);
  if (first.command_hash != step.request_hash) {
    stats.conflicts++;
    r.error("ERR this request id was used for another command (an id names one request; a new request needs a new id)");
    return;
  }
  stats.repeats++;
  if (!first.kept()) {
    r.error(fmt::format("ERR this request was applied; its reply ({} bytes) was longer than the {} bytes kept for retries",
                        first.reply_bytes, kRequestReplyKeptBytesMax));
    return;
  }
  if (first.protocol == Protocol::kResp3 && step.request_protocol == Protocol::kResp2) {
    // A RESP3 reply may not parse as RESP2 (a map, a double...); the other way round it does.
    r.error("ERR this request was applied and answered in RESP3; retry it after HELLO 3 to get that reply");
    return;
  }
  out->append(first.reply);
}

}  // namespace

namespace {
// HalfApplied::budget_spent's placeholder for the command the batch stopped before: the
// replica asks next() once in the turn that stopped (false) and again in the next (true),
// then resumes the batch, which applies the command itself (finish() is never called).
class YieldedCommand final : public ApplyProducer {
 public:
  bool next(const SliceBudget&) override { return std::exchange(asked_, true); }
  void finish(const ApplyContext&, Reply&) override { HMDB_ASSERT(false, "a yielded command is applied by its batch"); }

 private:
  bool asked_ = false;
};
}  // namespace

ApplyResult apply_batch(StateMachine& app, std::string_view payload, uint64_t index, uint32_t schema_version,
                        ApplySink* sink, ApplyScratch& scratch, KeyChanges* changes, RequestTable* requests, EventHub* events,
                        DigestMarks* marks, bool planted_apply_unread_schema, const ReplicatedAcl* acl,
                        HalfApplied* half) {
  ApplyResult result;
  result.schema_version = schema_version;
  // Entries are logged under the active version, but for those proposed before an
  // activation and applied after it: one comparison and one flag on the common path.
  if (schema_version != app.active_schema_version() || !app.reads_active_schema_version()) [[unlikely]] {
    if (!app.reads_schema_version(schema_version) && planted_apply_unread_schema) [[unlikely]] {
      schema_version = app.schema_version();  // PLANTED BUG: its own newest meaning instead
    } else if (!app.reads_schema_version(schema_version)) {
      result.status = ApplyStatus::kUnsupportedSchema;
      return result;
    }
    if (schema_version > app.active_schema_version()) {
      result.status = ApplyStatus::kDiverged;
      scratch.divergence = fmt::format("it is stamped schema version {}, above the active version {}: its proposer "
                                       "logged it under a version the log never activated",
                                       schema_version, app.active_schema_version());
      result.divergence = scratch.divergence;
      return result;
    }
  }
  BatchReader reader(payload);
  result.format = reader.format();
  if (!reader.ok()) {
    result.status = reader.format() > kBatchFormatNewest ? ApplyStatus::kNewerFormat : ApplyStatus::kMalformed;
    return result;
  }
  // Resuming a half-applied write: the items before it were applied when the batch stopped
  // there; they are walked past (no prefetching: this is the rare path).
  const bool resuming = half && half->producer;
  const size_t resume_item = resuming ? half->item : 0;
  BatchReader ahead(payload);
  const bool prefetching = reader.count() > 1 && !resuming;
  // Commands only, several: each command is decoded once, by the reader that runs ahead to
  // prefetch, into a ring the apply takes it from kPrefetchAheadCommands later (format 1's
  // path below). Otherwise the ahead reader decodes on its own.
  const bool ring = prefetching && reader.format() == kBatchFormatCommands;
  size_t ring_filled = 0;  // commands the ahead reader put in the ring
  for (size_t i = 0; prefetching && i < kPrefetchAheadCommands; i++) {
    std::vector<std::string_view>& to = ring ? scratch.ring[i] : scratch.ahead;
    if (!ahead.next(to)) break;
    app.prefetch(to);
    ring_filled++;
  }
  ApplyContext ctx;
  ctx.now_ms = reader.leader_time_ms();
  ctx.index = index;
  ctx.schema_version = schema_version;
  ctx.changes = changes;
  ctx.events = events;
  if (half) {
    ctx.slice_elements = half->slice_elements;
    ctx.turn_budget = half->budget_spent;  // the app's own bounded work (ApplyContext::turn_budget)
  }
  // Eviction by age, in the leader's time of this batch: the same on every node (done when
  // the batch began, if resuming).
  if (requests && !requests->empty() && !resuming) requests->expire(ctx.now_ms);
  auto hint = [&]() {
    if (ring) {
      std::vector<std::string_view>& to = scratch.ring[ring_filled % kApplyRingCommands];
      if (ahead.next(to)) {
        app.prefetch(to);
        ring_filled++;
      }
      return;
    }
    if (prefetching && ahead.next(scratch.ahead)) app.prefetch(scratch.ahead);
  };
  // The command that handed its apply to a producer (half->producer): the batch stops.
  bool stopped = false;
  // False (result says why) when the command does not apply under its version. `sliceable`:
  // it may hand its apply to a producer (a command of its own, untagged; where half is given).
  size_t budget_count = 0;  // sliceable commands met in this call (HalfApplied::budget_spent)
  auto apply_one = [&](Args argv, ReplyTo to, bool sliceable) {
    if (sliceable && half && half->budget_spent && ++budget_count % half->budget_check_commands == 0 &&
        (*half->budget_spent)()) [[unlikely]] {
      half->producer = std::make_unique<YieldedCommand>();
      half->yielded = true;
      stopped = true;  // nothing of it is applied: the batch resumes with it next turn
      return true;
    }
    hint();
    if (!to.out) {
      scratch.dropped_reply.clear();
      to.out = &scratch.dropped_reply;
    }
    Reply reply(to.out, to.protocol);
    ctx.producer = sliceable && half ? &half->producer : nullptr;
    if (is_publish(argv)) [[unlikely]] {
      // The engine's own write: one event; the reply is this node's receivers, as in Redis.
      reply.integer(events ? events->publish_command(argv[1], argv[2]) : 0);
    } else if (!app.apply(argv, ctx, reply, &scratch.why)) [[unlikely]] {
      result.status = ApplyStatus::kDiverged;
      scratch.divergence = fmt::format("its command {} ({}, {} words) does not apply under schema version {}: {}",
                                       result.commands + 1, printable(argv[0]), argv.size(), schema_version,
                                       scratch.why);
      result.divergence = scratch.divergence;
      return false;
    } else if (ctx.producer && *ctx.producer) [[unlikely]] {
      stopped = true;  // nothing of it is applied yet: it finishes when the batch resumes
      return true;
    }
    result.commands++;
    return true;
  };
  // The batch stops at item k, whose write handed a producer.
  auto stop_at = [&](size_t k) {
    result.status = ApplyStatus::kHalfApplied;
    half->item = k;
    half->commands = result.commands;
    return result;
  };
  // Resuming a batch that stopped for the budget before item k: item k is applied now, as
  // any command (false: it does not apply; stopped: it handed a producer, or the budget).
  auto resume_yielded = [&](size_t k, Args argv) {
    result.items = k;
    result.commands = half->commands;
    half->yielded = false;
    half->producer.reset();
    if (half->planted_skip_yielded) return true;  // PLANTED BUG: item k is never applied
    return apply_one(argv, sink ? sink->reply_to(k) : ReplyTo{}, true);
  };
  // Resuming: item k (resume_item) is the half-applied write; its producer finishes it.
  auto finish_half = [&](size_t k, ReplyTo to) {
    result.items = k;
    result.commands = half->commands;
    if (!to.out) {
      scratch.dropped_reply.clear();
      to.out = &scratch.dropped_reply;
    }
    Reply reply(to.out, to.protocol);
    ctx.producer = nullptr;
    std::unique_ptr<ApplyProducer> p = std::move(half->producer);
    p->finish(ctx, reply);
    result.commands++;
  };
  if (reader.format() == kBatchFormatCommands) {
    // Commands only (every batch without a transaction or a request id): the reader's short
    // walk. The step walk below does the same for them at ~70 more instructions per command
    // (callgrind).
    if (ring) {
      // Command k is in the ring (decoded ahead) while k < ring_filled; apply_one's hint()
      // decodes command k + kPrefetchAheadCommands into the ring first, in the slot that
      // command k - 1 used. A malformed payload stops the ahead reader: what it decoded
      // before the damage is applied, as the short walk would, and its state says kMalformed.
      static_assert(kApplyRingCommands > kPrefetchAheadCommands, "the ring holds the commands decoded ahead and one more");
      for (size_t k = 0; k < ring_filled; k++) {
        const std::vector<std::string_view>& argv = scratch.ring[k % kApplyRingCommands];
        if (!apply_one(argv, sink ? sink->reply_to(k) : ReplyTo{}, true)) return result;
        if (stopped) [[unlikely]] return stop_at(k);
        if (sink) sink->replied(k);
        result.items++;
      }
      if (!ahead.ok()) result.status = ApplyStatus::kMalformed;
      return result;
    }
    std::vector<std::string_view>& argv = scratch.step.argv;
    for (size_t k = 0; reader.next(argv); k++) {
      if (resuming && k <= resume_item) [[unlikely]] {
        if (k < resume_item) continue;  // applied before the batch stopped
        if (half->yielded) {
          if (!resume_yielded(k, argv)) return result;
          if (stopped) return stop_at(k);
        } else {
          finish_half(k, sink ? sink->reply_to(k) : ReplyTo{});
        }
      } else {
        if (!apply_one(argv, sink ? sink->reply_to(k) : ReplyTo{}, true)) return result;
        if (stopped) [[unlikely]] return stop_at(k);
      }
      if (sink) sink->replied(k);
      result.items++;
    }
  } else {
    BatchStep& step = scratch.step;
    ReplyTo group_to;  // the open group's reply buffer
    // The open group is tagged with a request the table knows: its commands are skipped.
    bool group_repeat = false;
    std::string& tagged_reply = scratch.request_reply;
    while (reader.next(step)) {
      const size_t k = step.item;
      const bool tagged = requests && step.tagged();
      if (resuming && k <= resume_item) [[unlikely]] {
        if (k < resume_item) continue;  // applied before the batch stopped
        HMDB_ASSERT(step.kind == BatchStep::Kind::kCommand && !tagged, "a half-applied item %zu that is no command of its own", k);
        if (half->yielded) {
          if (!resume_yielded(k, step.argv)) return result;
          if (stopped) return stop_at(k);
        } else {
          finish_half(k, sink ? sink->reply_to(k) : ReplyTo{});
        }
        if (sink) sink->replied(k);
        result.items++;
        continue;
      }
      switch (step.kind) {
        case BatchStep::Kind::kCommand: {
          if (!tagged) {
            if (!apply_one(step.argv, sink ? sink->reply_to(k) : ReplyTo{}, true)) return result;
            if (stopped) [[unlikely]] return stop_at(k);
          } else {
            const ReplyTo to = sink ? sink->reply_to(k) : ReplyTo{};
            tagged_reply.clear();
            if (const RequestTable::Entry* first = requests->find(step.request_id)) {
              hint();
              answer_repeat(*first, step, &tagged_reply, requests->stats());
            } else {
              if (!apply_one(step.argv, ReplyTo{&tagged_reply, step.request_protocol}, false)) return result;
              requests->insert(step.request_id, ctx.now_ms, index, step.request_hash, step.request_protocol,
                               tagged_reply);
            }
            if (to.out) to.out->append(tagged_reply);
          }
          if (sink) sink->replied(k);
          result.items++;
          break;
        }
        case BatchStep::Kind::kGroupBegin:
          group_to = sink ? sink->reply_to(k) : ReplyTo{};
          if (tagged) {
            tagged_reply.clear();
            const RequestTable::Entry* first = requests->find(step.request_id);
            group_repeat = first != nullptr;
            if (first) answer_repeat(*first, step, &tagged_reply, requests->stats());
            else Reply(&tagged_reply, step.request_protocol).array(step.group_size);  // EXEC's array
          }
          break;
        case BatchStep::Kind::kGroupCommand:
          if (!tagged) {
            if (sink) sink->group_position(k, step.position, ctx);
            if (!apply_one(step.argv, group_to, false)) return result;
          } else if (group_repeat) {
            hint();
          } else {
            if (!apply_one(step.argv, ReplyTo{&tagged_reply, step.request_protocol}, false)) return result;
          }
          break;
        case BatchStep::Kind::kActivation: {
          // Raises the active version; one not above it (two activations were in flight) is
          // refused, and one this binary does not read stops the node before anything of it.
          const uint32_t active = app.active_schema_version();
          const bool passed_over = step.version > active && !app.reads_schema_version(step.version) &&
                                   planted_apply_unread_schema;  // PLANTED BUG
          if (step.version > active && !app.reads_schema_version(step.version) && !passed_over) {
            result.status = ApplyStatus::kUnsupportedSchema;
            result.schema_version = step.version;
            result.activation = true;
            return result;
          }
          ReplyTo to = sink ? sink->reply_to(k) : ReplyTo{};
          if (!to.out) {
            scratch.dropped_reply.clear();
            to.out = &scratch.dropped_reply;
          }
          Reply reply(to.out, to.protocol);
          if (passed_over) {
            reply.ok();
          } else if (step.version <= active) {
            reply.error(fmt::format("ERR schema version {} is not above the active version {}", step.version, active));
          } else {
            app.set_active_schema_version(step.version);
            reply.ok();
          }
          if (sink) sink->replied(k);
          result.items++;
          break;
        }
        case BatchStep::Kind::kDigestMark: {
          // The state here, as every node that applies this entry sees it (core/digest_marks.h).
          // Hashed here, or by the marks' MarkHasher (the server: a forked child).
          if (marks) {
            static const RequestTable kNoRequests;
            marks->take(index, app, requests ? *requests : kNoRequests);
          }
          ReplyTo to = sink ? sink->reply_to(k) : ReplyTo{};
          if (to.out) Reply(to.out, to.protocol).integer(static_cast<int64_t>(index));
          if (sink) sink->replied(k);
          result.items++;
          break;
        }
        case BatchStep::Kind::kAcl: {
          // Every node's users change here, at the same index (core/acl.h); the reply is the
          // change's, so that a rule refused is refused alike everywhere.
          ReplyTo to = sink ? sink->reply_to(k) : ReplyTo{};
          const std::string reply =
              acl && acl->present()
                  ? apply_acl_change(*acl->users, *acl->catalog, static_cast<AclOp>(step.acl_op), step.argv)
                  : std::string("+OK\r\n");
          if (to.out) to.out->append(reply);
          if (sink) sink->replied(k);
          result.items++;
          break;
        }
        case BatchStep::Kind::kGroupEnd:
          if (tagged) {
            if (!group_repeat)
              requests->insert(step.request_id, ctx.now_ms, index, step.request_hash, step.request_protocol,
                               tagged_reply);
            if (group_to.out) group_to.out->append(tagged_reply);
            group_repeat = false;
          } else if (sink) {
            sink->group_position(k, step.group_size, ctx);
          }
          if (sink) sink->replied(k);
          group_to = ReplyTo{};
          result.items++;
          break;
      }
    }
  }
  if (!reader.ok()) result.status = ApplyStatus::kMalformed;
  return result;
}

}  // namespace hmdb::core
