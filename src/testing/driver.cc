// testing/driver.cc — the compiled half of hmdb/testing.h and hmdb/testing_migration.h: a
// write applied through the engine's one apply path (core::apply_batch), which the public
// headers cannot reach because the core's headers are not installed.
#include "core/apply.h"
#include "core/batch.h"
#include "hmdb/testing.h"
#include "hmdb/testing_migration.h"

namespace hmdb::testing {

bool apply_write(StateMachine& app, Args argv, uint64_t now_ms, uint64_t index, Protocol protocol, std::string* out,
                 EventSink* events, WriteSlicing* slicing) {
  core::BatchBuilder batch(now_ms);
  batch.add(argv);
  const std::string entry = batch.finish();
  struct OneReply final : core::ApplySink {
    core::ReplyTo to;
    core::ReplyTo reply_to(size_t) override { return to; }
    void replied(size_t) override {}
  } sink;
  sink.to = core::ReplyTo{out, protocol};
  // The test's sink gets the events; a PUBLISH reaches no subscriber here.
  struct Events final : core::EventHub {
    EventSink* to = nullptr;
    void publish(std::string_view channel, std::string_view message) override { to->publish(channel, message); }
    void keyspace_event(uint32_t type, std::string_view event, std::string_view key) override {
      to->keyspace_event(type, event, key);
    }
    int64_t publish_command(std::string_view channel, std::string_view message) override {
      to->publish(channel, message);
      return 0;
    }
  } hub;
  hub.to = events;
  core::ApplyScratch scratch;
  core::HalfApplied half;
  const bool sliced = slicing && slicing->slice_elements != 0;
  if (sliced) half.slice_elements = slicing->slice_elements;
  // Logged under the active version, as a leader logs it.
  core::ApplyResult r = core::apply_batch(app, entry, index, app.active_schema_version(), &sink, scratch, nullptr,
                                          nullptr, events ? &hub : nullptr, nullptr, false, nullptr,
                                          sliced ? &half : nullptr);
  while (r.status == core::ApplyStatus::kHalfApplied) {
    // As core::Replica: a slice a turn, the state unchanged between them; then the rest.
    bool computed = false;
    while (!computed) {
      if (slicing->between) slicing->between();
      slicing->slices++;
      computed = half.producer->next(SliceBudget{slicing->slice_elements, SIZE_MAX});
    }
    r = core::apply_batch(app, entry, index, app.active_schema_version(), &sink, scratch, nullptr, nullptr,
                          events ? &hub : nullptr, nullptr, false, nullptr, &half);
  }
  return r.status == core::ApplyStatus::kOk && r.commands == 1;
}

}  // namespace hmdb::testing

namespace hmdb::testing {

bool apply_logged(StateMachine& app, Args argv, uint64_t now_ms, uint64_t index, uint32_t version, std::string* out,
                  std::string* why) {
  core::BatchBuilder batch(now_ms);
  batch.add(argv);
  const std::string entry = batch.finish();
  struct OneReply final : core::ApplySink {
    core::ReplyTo to;
    core::ReplyTo reply_to(size_t) override { return to; }
    void replied(size_t) override {}
  } sink;
  sink.to = core::ReplyTo{out, Protocol::kResp2};
  core::ApplyScratch scratch;
  const core::ApplyResult r = core::apply_batch(app, entry, index, version, &sink, scratch);
  if (r.status == core::ApplyStatus::kOk && r.commands == 1) return true;
  if (why) *why = r.divergence.empty() ? "apply status " + std::to_string(static_cast<int>(r.status)) : r.divergence;
  return false;
}

}  // namespace hmdb::testing
