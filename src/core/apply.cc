// core/apply.cc — the one apply path (see apply.h).
#include "core/apply.h"

#include "core/batch.h"
#include "hmdb/reply.h"

namespace hmdb::core {

ApplyResult apply_batch(StateMachine& app, std::string_view payload, uint64_t index, uint32_t schema_version,
                        ApplySink* sink, ApplyScratch& scratch, KeyChanges* changes) {
  ApplyResult result;
  if (schema_version > app.schema_version()) {
    result.status = ApplyStatus::kNewerSchema;
    return result;
  }
  BatchReader reader(payload);
  result.format = reader.format();
  if (!reader.ok()) {
    result.status = reader.format() > kBatchFormatNewest ? ApplyStatus::kNewerFormat : ApplyStatus::kMalformed;
    return result;
  }
  BatchReader ahead(payload);
  const bool prefetching = reader.count() > 1;
  for (size_t i = 0; prefetching && i < kPrefetchAheadCommands && ahead.next(scratch.ahead); i++)
    app.prefetch(scratch.ahead);
  ApplyContext ctx;
  ctx.now_ms = reader.leader_time_ms();
  ctx.index = index;
  ctx.schema_version = schema_version;
  ctx.changes = changes;
  auto apply_one = [&](Args argv, ReplyTo to) {
    if (prefetching && ahead.next(scratch.ahead)) app.prefetch(scratch.ahead);
    if (!to.out) {
      scratch.dropped_reply.clear();
      to.out = &scratch.dropped_reply;
    }
    Reply reply(to.out, to.protocol);
    app.apply(argv, ctx, reply);
    result.commands++;
  };
  if (reader.format() == kBatchFormatCommands) {
    // Commands only (every batch without a transaction): the reader's short walk. The step
    // walk below does the same for them at ~70 more instructions per command (callgrind).
    std::vector<std::string_view>& argv = scratch.step.argv;
    for (size_t k = 0; reader.next(argv); k++) {
      apply_one(argv, sink ? sink->reply_to(k) : ReplyTo{});
      if (sink) sink->replied(k);
      result.items++;
    }
  } else {
    BatchStep& step = scratch.step;
    ReplyTo group_to;  // the open group's reply buffer
    while (reader.next(step)) {
      const size_t k = step.item;
      switch (step.kind) {
        case BatchStep::Kind::kCommand:
          apply_one(step.argv, sink ? sink->reply_to(k) : ReplyTo{});
          if (sink) sink->replied(k);
          result.items++;
          break;
        case BatchStep::Kind::kGroupBegin:
          group_to = sink ? sink->reply_to(k) : ReplyTo{};
          break;
        case BatchStep::Kind::kGroupCommand:
          if (sink) sink->group_position(k, step.position, ctx);
          apply_one(step.argv, group_to);
          break;
        case BatchStep::Kind::kGroupEnd:
          if (sink) {
            sink->group_position(k, step.group_size, ctx);
            sink->replied(k);
          }
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
