// core/state.h — a node's replicated state as a snapshot holds it and the state digest
// compares it: the app's state, the app's active schema version, the engine's request
// table (core/request_table.h) and the ACL users (core/acl.h; not in the digest yet).
//
// A snapshot's payload (snapshot file format 5, docs/formats.md) is the active schema
// version (u32), the users (u8 0: none logged yet, the node keeps its own; u8 1 and the
// users' ACL LIST lines as one byte string), the request table's encoding, then the app's
// own. Format 4 has no users (the node keeps its own, as with u8 0). Format 3 has no active
// version: the schema version in its header (that of the binary that wrote it, which logged
// every entry under it) is taken. Formats 1 and 2 hold the app's encoding only; their table
// is empty (no write could be tagged before request ids existed). The server (snapshot
// child, recovery, a leader's snapshot installed) and the simulator save and load through
// these functions, so both hold the same thing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <fmt/format.h>
#include <xxhash.h>

#include "core/acl.h"
#include "core/request_table.h"
#include "hmdb/codec.h"
#include "hmdb/state_machine.h"

namespace hmdb::core {

// Snapshot file formats (storage/snapshot.h) by what their payload holds.
inline constexpr uint32_t kStateFormatWithRequests = 3;       // the request table first
inline constexpr uint32_t kStateFormatWithActiveVersion = 4;  // the active schema version before it
inline constexpr uint32_t kStateFormatWithUsers = 5;          // the ACL users after it
inline constexpr uint32_t kStateFormatNewest = kStateFormatWithUsers;

// The users' part: only once they are replicated (AclUsers::logged); null: none.
inline void save_users(const AclUsers* users, Encoder& out) {
  if (!users || !users->logged()) {
    out.u8(0);
    return;
  }
  out.u8(1);
  out.bytes(users->save());
}

// The payload's engine part, before the app's: the active schema version, the users, the
// request table (small next to the app's part: a snapshot written in slices encodes it in
// one go at its index, server/snapshot.cc).
inline void save_engine_part(const StateMachine& app, const RequestTable& requests, Encoder& out,
                             const AclUsers* users = nullptr) {
  out.u32(app.active_schema_version());
  save_users(users, out);
  requests.save(out);
}

inline void save_state(const StateMachine& app, const RequestTable& requests, Encoder& out,
                       const AclUsers* users = nullptr) {
  save_engine_part(app, requests, out, users);
  app.save(out);
}

// save_state with the app's part in schema version `layout`'s layout (StateMachine::save_at):
// false if the app cannot write this state in it (what was written is then of no use).
inline bool save_state_at(const StateMachine& app, const RequestTable& requests, uint32_t layout, Encoder& out,
                          const AclUsers* users = nullptr) {
  save_engine_part(app, requests, out, users);
  return app.save_at(layout, out);
}

// The layout a snapshot of this state is written in: the active version's when the app can
// write it (an older binary that reads only the active version then loads the snapshot: an
// upgrade not yet activated can be abandoned), else this binary's newest. `refused` is an
// active version whose layout the app already failed to write this state in (0: none).
inline uint32_t snapshot_layout(const StateMachine& app, uint32_t refused = 0) {
  const uint32_t active = app.active_schema_version();
  if (active != refused && active < app.schema_version() && app.saves_schema_version(active)) return active;
  return app.schema_version();
}

enum class LoadState : uint8_t {
  kOk,
  kBadRequests,        // the request table's encoding (or the active version before it) is malformed
  kBadUsers,           // the users' part is malformed, or its lines do not load (AclUsers::load)
  kBadApp,             // the app refused its part (StateMachine::load returned false)
  kRefused,            // ... on purpose: a migration it will not make (Decoder::refusal says why)
  kUnsupportedActive,  // the active schema version is one this binary does not read
};

// Replaces the app's state, its active schema version and the request table from a payload
// of snapshot file format `format`, whose app part is of schema version `schema_version`.
// On failure all are left empty (the active version at kFirstSchemaVersion); *active (if
// given) is the active version the payload holds, readable or not. The users the payload
// holds replace acl's (all or none; `logged` then); a payload without users (format 4 or
// before, or none logged) leaves acl's as they are. Null or not present(): the users' part
// is checked for its framing and skipped, and handed out in *users_out if given (a view into
// the payload: a load off the event loop leaves the users, whose rules need the loop's
// catalog, to the loop).
inline LoadState load_state(StateMachine& app, RequestTable& requests, Decoder& in, uint32_t schema_version,
                            uint32_t format, uint32_t* active = nullptr, const ReplicatedAcl* acl = nullptr,
                            std::optional<std::string_view>* users_out = nullptr) {
  auto fail = [&](LoadState why) {
    requests.clear();
    app.clear();
    app.set_active_schema_version(kFirstSchemaVersion);
    return why;
  };
  requests.clear();
  const uint32_t active_version = format >= kStateFormatWithActiveVersion ? in.u32() : schema_version;
  if (active) *active = active_version;
  if (!in.ok()) return fail(LoadState::kBadRequests);
  if (!app.reads_schema_version(active_version)) return fail(LoadState::kUnsupportedActive);
  std::optional<std::string_view> users;  // loaded last: their rules name the commands of the active version
  if (format >= kStateFormatWithUsers) {
    const uint8_t logged = in.u8();
    if (!in.ok() || logged > 1) return fail(LoadState::kBadUsers);
    if (logged == 1) {
      users = in.bytes();
      if (!in.ok()) return fail(LoadState::kBadUsers);
    }
  }
  if (format >= kStateFormatWithRequests && !requests.load(in)) return fail(LoadState::kBadRequests);
  if (!app.load(in, schema_version)) return fail(in.refusal().empty() ? LoadState::kBadApp : LoadState::kRefused);
  app.set_active_schema_version(active_version);
  if (users_out) *users_out = users;
  if (users && acl && acl->present()) {
    if (!acl->users->load(*users, *acl->catalog).empty()) return fail(LoadState::kBadUsers);
    acl->users->set_logged(true);
  }
  return LoadState::kOk;
}

// A refused migration (LoadState::kRefused), for a log line: what, where and what to do.
inline std::string refused_migration(const StateMachine& app, std::string_view where, uint32_t version,
                                     std::string_view why) {
  return fmt::format("{}: app '{}' at schema version {} refuses to migrate this state of schema version {}: {}. "
                     "Nothing is damaged: keep serving with a binary that reads version {} as it is, fix the data "
                     "there as the reason says, take a new snapshot, and upgrade again",
                     where, app.app_name(), app.schema_version(), version, why, version);
}

// Why this binary cannot hold data of schema version `version`, for a log line ("" if it
// can): above its newest version it is older than the data, below its oldest it dropped it.
inline std::string unreadable_schema(const StateMachine& app, uint32_t version) {
  if (app.reads_schema_version(version)) return {};
  return fmt::format("schema version {} of app '{}'; this binary reads versions {}..{}: {}", version, app.app_name(),
                     app.oldest_schema_version(), app.schema_version(),
                     version > app.schema_version() ? "upgrade the binary"
                                                    : "start a binary that still reads that version");
}

// A state digest and the app schema version it hashed the app's state at.
struct StateDigest {
  uint64_t value = 0;
  uint32_t schema_version = 0;
  bool operator==(const StateDigest&) const = default;
};

// The state digest, comparable between nodes whose binaries are at different versions: the
// app's digest at the active schema version (what every node that applies the log can
// express: StateMachine::digest_at), or at this binary's newest when it cannot (then only
// nodes of the same binary version compare: the result says which version). Combined with
// the request table's when the table holds anything, and with the active version above 1
// (so a node that never saw a tagged write or an activation has the app's digest, as before).
inline StateDigest state_digest(const StateMachine& app, const RequestTable& requests) {
  StateDigest d;
  d.schema_version = app.active_schema_version();
  std::optional<uint64_t> at = app.digest_at(d.schema_version);
  if (!at) {
    d.schema_version = app.schema_version();
    at = app.digest();
  }
  d.value = *at;
  if (!requests.empty()) {
    const uint64_t both[2] = {d.value, requests.digest()};
    d.value = XXH3_64bits(both, sizeof both);
  }
  if (app.active_schema_version() != kFirstSchemaVersion) {
    const uint64_t both[2] = {d.value, app.active_schema_version()};
    d.value = XXH3_64bits(both, sizeof both);
  }
  return d;
}

}  // namespace hmdb::core
