// core/apply.cc — the one apply path (see apply.h).
#include "core/apply.h"

#include <fmt/format.h>

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

}  // namespace

ApplyResult apply_batch(StateMachine& app, std::string_view payload, uint64_t index, uint32_t schema_version,
                        ApplySink* sink, ApplyScratch& scratch, KeyChanges* changes) {
  ApplyResult result;
  result.schema_version = schema_version;
  if (!app.reads_schema_version(schema_version)) [[unlikely]] {
    result.status = ApplyStatus::kUnsupportedSchema;
    return result;
  }
  if (schema_version > app.active_schema_version()) [[unlikely]] {
    result.status = ApplyStatus::kDiverged;
    result.divergence = fmt::format("it is stamped schema version {}, above the active version {}: its proposer "
                                    "logged it under a version the log never activated",
                                    schema_version, app.active_schema_version());
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
  // False (result says why) when the command does not apply under its version.
  auto apply_one = [&](Args argv, ReplyTo to) {
    if (prefetching && ahead.next(scratch.ahead)) app.prefetch(scratch.ahead);
    if (!to.out) {
      scratch.dropped_reply.clear();
      to.out = &scratch.dropped_reply;
    }
    Reply reply(to.out, to.protocol);
    if (!app.apply(argv, ctx, reply, &scratch.why)) [[unlikely]] {
      result.status = ApplyStatus::kDiverged;
      result.divergence = fmt::format("its command {} ({}, {} words) does not apply under schema version {}: {}",
                                      result.commands + 1, printable(argv[0]), argv.size(), schema_version,
                                      scratch.why);
      return false;
    }
    result.commands++;
    return true;
  };
  if (reader.format() == kBatchFormatCommands) {
    // Commands only (every batch without a transaction): the reader's short walk. The step
    // walk below does the same for them at ~70 more instructions per command (callgrind).
    std::vector<std::string_view>& argv = scratch.step.argv;
    for (size_t k = 0; reader.next(argv); k++) {
      if (!apply_one(argv, sink ? sink->reply_to(k) : ReplyTo{})) return result;
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
          if (!apply_one(step.argv, sink ? sink->reply_to(k) : ReplyTo{})) return result;
          if (sink) sink->replied(k);
          result.items++;
          break;
        case BatchStep::Kind::kGroupBegin:
          group_to = sink ? sink->reply_to(k) : ReplyTo{};
          break;
        case BatchStep::Kind::kGroupCommand:
          if (sink) sink->group_position(k, step.position, ctx);
          if (!apply_one(step.argv, group_to)) return result;
          break;
        case BatchStep::Kind::kActivation: {
          // Raises the active version; one not above it (two activations were in flight) is
          // refused, and one this binary does not read stops the node before anything of it.
          const uint32_t active = app.active_schema_version();
          if (step.version > active && !app.reads_schema_version(step.version)) {
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
          if (step.version <= active) {
            reply.error(fmt::format("ERR schema version {} is not above the active version {}", step.version, active));
          } else {
            app.set_active_schema_version(step.version);
            reply.ok();
          }
          if (sink) sink->replied(k);
          result.items++;
          break;
        }
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
