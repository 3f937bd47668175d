// core/apply.cc — the one apply path (see apply.h).
#include "core/apply.h"

#include "core/batch.h"
#include "hmdb/reply.h"

namespace hmdb::core {

ApplyResult apply_batch(StateMachine& app, std::string_view payload, uint64_t index, uint32_t schema_version,
                        ApplySink* sink, ApplyScratch& scratch) {
  ApplyResult result;
  if (schema_version > app.schema_version()) {
    result.status = ApplyStatus::kNewerSchema;
    return result;
  }
  BatchReader reader(payload);
  if (!reader.ok()) {
    result.status = ApplyStatus::kMalformed;
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
  size_t k = 0;
  while (reader.next(scratch.argv)) {
    if (prefetching && ahead.next(scratch.ahead)) app.prefetch(scratch.ahead);
    ReplyTo to = sink ? sink->reply_to(k) : ReplyTo{};
    if (!to.out) {
      scratch.dropped_reply.clear();
      to.out = &scratch.dropped_reply;
    }
    Reply reply(to.out, to.protocol);
    app.apply(scratch.argv, ctx, reply);
    if (sink) sink->replied(k);
    k++;
  }
  result.commands = k;
  if (!reader.ok()) result.status = ApplyStatus::kMalformed;
  return result;
}

}  // namespace hmdb::core
