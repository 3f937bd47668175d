// core/apply.h — the one apply path: a committed log entry's command batch, applied to the
// app command by command, in order.
//
// The server (core::Replica), the simulator (which drives the same Replica) and the app test
// helper (tests/apps/app_test_util.h) all apply through apply_batch(), so what the tests and
// the simulator exercise is what a node runs. A second reader runs kPrefetchAheadCommands in
// front and hints the app to prefetch what those commands will touch
// (StateMachine::prefetch), so their cache misses overlap with the current command's work.
//
// Pure: no I/O, no clock (time comes from the batch's leader stamp).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/state_machine.h"

namespace hmdb::core {

// Commands of an entry hinted ahead of the one being applied. 8 covers the latency of a
// cache miss (~100 ns) with the ~50-100 ns a small command costs; more only holds more views.
inline constexpr size_t kPrefetchAheadCommands = 8;

// Where command k's reply goes: the buffer it is appended to (nullptr: nobody waits, the
// reply is dropped) and the protocol its session speaks now (HELLO changes it in session
// order, so the reply of a write is rendered as the protocol in force when it is applied).
struct ReplyTo {
  std::string* out = nullptr;
  Protocol protocol = Protocol::kResp2;
};

// Where each command's reply goes: reply_to(k) before command k is applied, replied(k) once
// its reply is complete.
class ApplySink {
 public:
  virtual ~ApplySink() = default;
  virtual ReplyTo reply_to(size_t k) = 0;
  virtual void replied(size_t k) = 0;
};

enum class ApplyStatus : uint8_t {
  kOk,
  kMalformed,    // the payload is not a well-formed batch (commands before the damage were applied)
  kNewerSchema,  // written by a newer schema version than the app's: nothing was applied
};

// Reused buffers, so applying allocates nothing per command once warmed up.
struct ApplyScratch {
  std::vector<std::string_view> argv;
  std::vector<std::string_view> ahead;
  std::string dropped_reply;
};

struct ApplyResult {
  ApplyStatus status = ApplyStatus::kOk;
  size_t commands = 0;  // commands applied
};

// Applies the batch `payload` of the entry at `index`, proposed under `schema_version`.
// sink may be null (nobody waits for any reply: a follower, or recovery).
ApplyResult apply_batch(StateMachine& app, std::string_view payload, uint64_t index, uint32_t schema_version,
                        ApplySink* sink, ApplyScratch& scratch);

}  // namespace hmdb::core
