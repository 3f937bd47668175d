// testing/driver.cc — the compiled half of hmdb/testing.h: a write applied through the
// engine's one apply path (core::apply_batch), which the public header cannot reach because
// the core's headers are not installed.
#include "core/apply.h"
#include "core/batch.h"
#include "hmdb/testing.h"

namespace hmdb::testing {

bool apply_write(StateMachine& app, Args argv, uint64_t now_ms, uint64_t index, Protocol protocol, std::string* out) {
  core::BatchBuilder batch(now_ms);
  batch.add(argv);
  const std::string entry = batch.finish();
  struct OneReply final : core::ApplySink {
    core::ReplyTo to;
    core::ReplyTo reply_to(size_t) override { return to; }
    void replied(size_t) override {}
  } sink;
  sink.to = core::ReplyTo{out, protocol};
  core::ApplyScratch scratch;
  // Logged under the active version, as a leader logs it.
  const core::ApplyResult r = core::apply_batch(app, entry, index, app.active_schema_version(), &sink, scratch);
  return r.status == core::ApplyStatus::kOk && r.commands == 1;
}

}  // namespace hmdb::testing
