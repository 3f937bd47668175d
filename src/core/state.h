// core/state.h — a node's replicated state as a snapshot holds it and the state digest
// compares it: the app's state and the engine's request table (core/request_table.h).
//
// A snapshot's payload (snapshot file format 3, docs/formats.md) is the request table's
// encoding followed by the app's own. A payload of formats 1 and 2 holds the app's only;
// its table is empty (no write could be tagged before request ids existed). The server
// (snapshot child, recovery, a leader's snapshot installed) and the simulator save and load
// through these functions, so both hold the same thing.
#pragma once

#include <cstdint>

#include <xxhash.h>

#include "core/request_table.h"
#include "hmdb/codec.h"
#include "hmdb/state_machine.h"

namespace hmdb::core {

inline void save_state(const StateMachine& app, const RequestTable& requests, Encoder& out) {
  requests.save(out);
  app.save(out);
}

enum class LoadState : uint8_t {
  kOk,
  kBadRequests,  // the request table's encoding is malformed
  kBadApp,       // the app refused its part (StateMachine::load returned false)
};

// Replaces both from a payload; `with_requests`: the payload starts with the request table
// (snapshot format 3 and later). On failure both are left empty.
inline LoadState load_state(StateMachine& app, RequestTable& requests, Decoder& in, uint32_t schema_version,
                            bool with_requests) {
  requests.clear();
  if (with_requests && !requests.load(in)) {
    app.clear();
    return LoadState::kBadRequests;
  }
  if (!app.load(in, schema_version)) {
    requests.clear();
    return LoadState::kBadApp;
  }
  return LoadState::kOk;
}

// The state digest: the app's digest, combined with the request table's when the table holds
// anything (so a node that never saw a tagged write has the app's digest, as before).
inline uint64_t state_digest(const StateMachine& app, const RequestTable& requests) {
  const uint64_t app_digest = app.digest();
  if (requests.empty()) return app_digest;
  const uint64_t both[2] = {app_digest, requests.digest()};
  return XXH3_64bits(both, sizeof both);
}

}  // namespace hmdb::core
