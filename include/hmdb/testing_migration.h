// hmdb/testing_migration.h — a test kit for an app's schema migration: given the old app and
// the new one, random states and random commands, checks that the new binary treats old data
// exactly as the old binary did, migrated. docs/migrations.md walks through using it.
//
// An old cluster upgraded to a new binary sees old data two ways, and they must agree:
//   - the old leader applies an old command, and the new node later receives that state in
//     a snapshot, which it migrates (New::load of Old's bytes): "apply, then migrate";
//   - the new node, caught up already, applies the same logged entry itself, under the old
//     version (its upcast or old handler): "migrate, then apply".
// check_migration() builds a random old state from commands the app author's generator
// makes (each trial from its own seed), migrates it, and then runs more random commands down
// both paths, comparing after every command:
//   (a) the two paths: the new app's digest, and where the snapshot bytes first differ;
//       the replies (optional: an upcast command answers as the new apply does);
//       whether the old and the new binary (at the old active version) accept the same
//       commands;
//   (b) snapshots: the migrated state saved and loaded back by the new app is the same
//       (digest and bytes), and, when the author gives their own `migrate` function, the
//       new app loading the old snapshot equals it;
//   (c) the new app's digest at the old version (digest_at: digest_as, or the hash of
//       save_as) equals the old app's digest: what `hmdb cluster verify` compares while the
//       old version is active; and, when the old app lists its records (the records hook),
//       the new app's records at the old version (records_as) are the old app's, so that
//       verify names the right records between old and new nodes. A failure of (a) or (c)
//       names the records that differ, when both list them.
// The first failure ends the check; its text names the seed (HMDB_MIGRATION_SEED=<seed>
// reruns that trial alone), the command that made the paths differ and what differed.
//
//   hmdb::testing::Migration<LedgerV1, LedgerV2> m;
//   m.command = [](std::mt19937_64& rng, const LedgerV1::State& s) { return ...words...; };
//   m.migrate = &LedgerV2::migrate;            // optional
//   const auto r = hmdb::testing::check_migration(m);
//   EXPECT_TRUE(r.ok) << r.failure;
//
// Cost: trials × (state_commands + trial_commands × (one apply on each path + one migration
// of the whole state)): the defaults take milliseconds for a small app. A long run:
// HMDB_MIGRATION_TRIALS=<n> (the environment overrides `trials`).
//
// Link hmdb::testing (it defines apply_logged). Thread-safety: none.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "hmdb/app.h"
#include "hmdb/codec.h"
#include "hmdb/testing.h"

namespace hmdb::testing {

// Applies the write argv to app as a node applies a committed entry logged under schema
// `version` (by a binary whose active version it was), at log index `index` with leader time
// now_ms; the reply is appended to *out (RESP2). Returns false, with the engine's reason in
// *why, if the entry did not apply (a divergence: the binary does not read it as the version
// that logged it did). Defined in the hmdb_testing library.
bool apply_logged(StateMachine& app, Args argv, uint64_t now_ms, uint64_t index, uint32_t version, std::string* out,
                  std::string* why);

// The defaults: a few milliseconds of CI for a small app, each trial a fresh random state.
inline constexpr size_t kMigrationTrialsDefault = 20;
inline constexpr size_t kMigrationStateCommandsDefault = 40;
inline constexpr size_t kMigrationTrialCommandsDefault = 40;

template <class Old, class New>
struct Migration {
  using OldState = typename AppHost<Old>::State;
  using NewState = typename AppHost<New>::State;

  // Required: the next command an old client sends, given the old state so far (pick names
  // that exist, sometimes ones that do not). Commands the old app refuses are skipped, as a
  // leader never logs them. Every random choice must come from `rng`.
  std::function<std::vector<std::string>(std::mt19937_64& rng, const OldState& state)> command;
  // Optional: the author's own migration of a state, checked equal to New::load of the old
  // snapshot; path "apply, then migrate" then uses it. Without it, New::load is the migration.
  std::function<NewState(OldState&&)> migrate;
  // The version old entries and snapshots are written under: the old binary's own.
  uint32_t old_version = Old::kSchemaVersion;
  uint64_t seed = 1;  // trial t runs from seed + t
  size_t trials = kMigrationTrialsDefault;
  size_t state_commands = kMigrationStateCommandsDefault;  // generated to build each random state
  size_t trial_commands = kMigrationTrialCommandsDefault;  // generated, then run down both paths
  // Compare each command's reply on the two paths (off for a command whose upcast answers in
  // the new version's shape: docs/app-tutorial.md, "Versions").
  bool compare_replies = true;
  // Require the new app to compute the old version's digest (digest_as or save_as): without
  // it `hmdb cluster verify` cannot compare old and new nodes before the activation.
  bool require_digest_as = true;
};

struct MigrationResult {
  bool ok = true;
  std::string failure;  // the first failure: seed, command, what differed
  uint64_t trials = 0;
  uint64_t commands = 0;  // commands run down both paths (refused ones not counted)
  uint64_t refused = 0;   // generated commands the old app refused (never logged)
};

namespace migration_detail {

inline std::string words_text(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) {
    if (!out.empty()) out += ' ';
    const bool plain = !w.empty() && w.find_first_of(" \"\\\r\n\t") == std::string::npos;
    if (plain) {
      out += w;
      continue;
    }
    out += '"';
    for (char c : w) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out;
}

inline std::string save_bytes(const StateMachine& app) {
  Encoder enc;
  app.save(enc);
  return enc.take();
}

// Where two snapshots first differ, for the report.
inline std::string first_difference(const std::string& a, const std::string& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) i++;
  if (i == a.size() && i == b.size()) return "the snapshot bytes are equal (a digest hook that reads more?)";
  return "the snapshots first differ at byte " + std::to_string(i) + " (sizes " + std::to_string(a.size()) + " and " +
         std::to_string(b.size()) + ")";
}

inline uint64_t env_u64(const char* name, uint64_t fallback, bool* set = nullptr) {
  const char* v = std::getenv(name);
  if (set) *set = v != nullptr && *v != '\0';
  if (!v || !*v) return fallback;
  return std::strtoull(v, nullptr, 10);
}

// Every record an app lists at `version` (StateMachine::records), by key.
class RecordMap final : public RecordSink {
 public:
  void record(std::string_view key, uint64_t hash) override {
    if (!hashes.emplace(std::string(key), hash).second && twice.empty()) twice = std::string(key);
  }
  std::map<std::string, uint64_t> hashes;
  std::string twice;  // a key listed twice (the first one), if any
};

// The first `shown` keys whose records differ between a and b at `version`, for a report
// ("" when they are the same, or when either does not list its records there).
inline std::string records_differ(const StateMachine& a, const StateMachine& b, uint32_t version, size_t shown = 5) {
  RecordMap ra, rb;
  if (!a.records(version, ra) || !b.records(version, rb)) return {};
  std::vector<std::string> keys;
  size_t n = 0;
  auto note = [&](const std::string& k, const char* what) {
    if (n++ < shown) keys.push_back(words_text({k}) + " (" + what + ")");
  };
  // Both maps in key order at once, so that similar keys are reported side by side.
  auto ia = ra.hashes.begin(), ib = rb.hashes.begin();
  while (ia != ra.hashes.end() || ib != rb.hashes.end()) {
    if (ib == rb.hashes.end() || (ia != ra.hashes.end() && ia->first < ib->first)) {
      note(ia->first, "only in the first");
      ++ia;
    } else if (ia == ra.hashes.end() || ib->first < ia->first) {
      note(ib->first, "only in the second");
      ++ib;
    } else {
      if (ia->second != ib->second) note(ia->first, "held differently");
      ++ia;
      ++ib;
    }
  }
  if (n == 0) return {};
  std::string out = "the records that differ: ";
  for (size_t i = 0; i < keys.size(); i++) out += (i ? ", " : "") + keys[i];
  if (n > shown) out += " and " + std::to_string(n - shown) + " more";
  return out;
}

}  // namespace migration_detail

// The trials check_migration(m) runs: m.trials, or HMDB_MIGRATION_TRIALS, or 1 when
// HMDB_MIGRATION_SEED names one trial alone.
template <class Old, class New>
uint64_t migration_trials(const Migration<Old, New>& m) {
  bool seed_set = false;
  migration_detail::env_u64("HMDB_MIGRATION_SEED", m.seed, &seed_set);
  return migration_detail::env_u64("HMDB_MIGRATION_TRIALS", seed_set ? 1 : m.trials);
}

// Runs the check described at the top of this file. Stops at the first failure.
template <class Old, class New>
MigrationResult check_migration(const Migration<Old, New>& m) {
  using OldState = typename Migration<Old, New>::OldState;
  using migration_detail::first_difference;
  using migration_detail::save_bytes;
  using migration_detail::words_text;
  static constexpr uint64_t kStartMs = Driver::kStartMs;

  MigrationResult result;
  if (!m.command) {
    result.ok = false;
    result.failure = "hmdb migration check: no command generator (Migration::command)";
    return result;
  }
  const uint64_t first_seed = migration_detail::env_u64("HMDB_MIGRATION_SEED", m.seed);
  const uint64_t trials = migration_trials(m);
  const std::string name = std::string(Old::kName) + " v" + std::to_string(m.old_version) + " -> " +
                           std::string(New::kName) + " v" + std::to_string(New::kSchemaVersion);

  for (uint64_t t = 0; t < trials && result.ok; t++) {
    const uint64_t seed = first_seed + t;
    std::string where = "building the random state";
    auto fail = [&](const std::string& what) {
      result.ok = false;
      result.failure = "hmdb migration check " + name + ": seed " + std::to_string(seed) +
                       " (rerun it alone: HMDB_MIGRATION_SEED=" + std::to_string(seed) + "), " + where + ": " + what;
    };
    std::mt19937_64 rng(seed);
    uint64_t index = 0;

    // The old node's state: random commands, as its leader logged them.
    AppHost<Old> old;
    old.set_active_schema_version(m.old_version);
    for (size_t i = 0; i < m.state_commands && result.ok; i++) {
      const std::vector<std::string> words = m.command(rng, old.state());
      const std::vector<std::string_view> argv(words.begin(), words.end());
      const Args args(argv.data(), argv.size());
      std::string error, out, why;
      if (argv.empty() || !old.validate(args, &error)) {
        result.refused++;
        continue;
      }
      index++;
      where = "state command " + std::to_string(i + 1) + " `" + words_text(words) + "`";
      if (!apply_logged(old, args, kStartMs + index, index, m.old_version, &out, &why))
        fail("the old app did not apply a command it accepted: " + why);
    }
    if (!result.ok) break;
    const std::string state_where = "a random state of " + std::to_string(index) + " commands";
    where = state_where;

    // Migrated: the new node installing the old node's snapshot.
    auto migrate = [&](AppHost<New>& into, std::string* error) -> bool {
      if (m.migrate) {
        OldState copy = old.state();
        into.state() = m.migrate(std::move(copy));
        into.set_active_schema_version(m.old_version);
        return true;
      }
      const std::string bytes = save_bytes(old);
      Decoder in(bytes);
      if (!into.load(in, m.old_version)) {
        *error = "the new app's load refused the old app's snapshot (" + std::to_string(bytes.size()) + " bytes)" +
                 (in.refusal().empty() ? "" : ": " + in.refusal());
        return false;
      }
      into.set_active_schema_version(m.old_version);
      return true;
    };
    AppHost<New> follower;  // path "migrate, then apply": the new node applying old entries
    {
      const std::string bytes = save_bytes(old);
      Decoder in(bytes);
      if (!follower.load(in, m.old_version)) {
        fail("the new app's load refused the old app's snapshot (" + std::to_string(bytes.size()) + " bytes)" +
             (in.refusal().empty() ? "" : ": " + in.refusal()));
        break;
      }
      follower.set_active_schema_version(m.old_version);
    }
    // (b) the author's migrate equals New::load of the old snapshot.
    if (m.migrate) {
      AppHost<New> by_hand;
      std::string error;
      migrate(by_hand, &error);
      if (by_hand.digest() != follower.digest()) {
        fail("the new app loading the old snapshot differs from Migration::migrate of the old state: " +
             first_difference(save_bytes(follower), save_bytes(by_hand)));
        break;
      }
    }
    // (b) the migrated state round-trips through the new app's own snapshot.
    auto round_trip = [&]() -> bool {
      const std::string bytes = save_bytes(follower);
      AppHost<New> back;
      Decoder in(bytes);
      if (!back.load(in, New::kSchemaVersion)) {
        fail("the new app's load refused its own snapshot of the migrated state (" + std::to_string(bytes.size()) +
             " bytes)");
        return false;
      }
      if (back.digest() != follower.digest() || save_bytes(back) != bytes) {
        fail("the migrated state saved and loaded back by the new app is not the same: " +
             first_difference(bytes, save_bytes(back)));
        return false;
      }
      return true;
    };
    // (c) the new app's digest at the old version is the old app's.
    auto digest_as_old = [&]() -> bool {
      const std::optional<uint64_t> at = follower.digest_at(m.old_version);
      if (!at) {
        if (m.require_digest_as)
          fail("the new app cannot compute schema version " + std::to_string(m.old_version) +
               "'s digest of this state (digest_as, or save_as for an app that hashes save())");
        return !m.require_digest_as;
      }
      if (*at != old.digest()) {
        const std::string which = migration_detail::records_differ(old, follower, m.old_version);
        fail("the new app's digest at version " + std::to_string(m.old_version) +
             " is not the old app's: the migration lost or changed something the old version holds" +
             (which.empty() ? "" : "; " + which + " (first: the old app, second: the new)"));
        return false;
      }
      migration_detail::RecordMap old_records, new_records;
      if (old.records(m.old_version, old_records)) {
        if (!old_records.twice.empty()) {
          fail("the old app's records hook lists the key " + old_records.twice + " twice (a key names one record)");
          return false;
        }
        if (!follower.records(m.old_version, new_records)) {
          if (m.require_digest_as)
            fail("the old app lists its records but the new app does not at version " + std::to_string(m.old_version) +
                 " (records_as): `hmdb cluster verify` could not name where old and new nodes differ");
          return !m.require_digest_as;
        }
        if (const std::string which = migration_detail::records_differ(old, follower, m.old_version); !which.empty()) {
          fail("the new app's records at version " + std::to_string(m.old_version) +
               " are not the old app's although the digests agree (records_as lists them otherwise): " + which);
          return false;
        }
      }
      return true;
    };
    if (!round_trip() || !digest_as_old()) break;

    // (a) the same old commands down both paths, compared after each.
    for (size_t j = 0; j < m.trial_commands && result.ok; j++) {
      const std::vector<std::string> words = m.command(rng, old.state());
      const std::vector<std::string_view> argv(words.begin(), words.end());
      const Args args(argv.data(), argv.size());
      where = "command " + std::to_string(j + 1) + " after " + state_where + ", `" + words_text(words) + "`";
      std::string old_error, new_error;
      const bool old_accepts = !argv.empty() && old.validate(args, &old_error);
      const bool new_accepts = !argv.empty() && follower.validate(args, &new_error);
      if (old_accepts != new_accepts) {
        fail(std::string("the old app ") + (old_accepts ? "accepts" : "refuses (" + old_error + ")") +
             " it but the new app at active version " + std::to_string(m.old_version) + " " +
             (new_accepts ? "accepts it" : "refuses it (" + new_error + ")"));
        break;
      }
      if (!old_accepts) {
        if (m.compare_replies && old_error != new_error)
          fail("refused with another error: the old app says '" + old_error + "', the new app '" + new_error + "'");
        result.refused++;
        continue;
      }
      index++;
      result.commands++;
      std::string old_reply, new_reply, why;
      if (!apply_logged(old, args, kStartMs + index, index, m.old_version, &old_reply, &why)) {
        fail("the old app did not apply a command it accepted: " + why);
        break;
      }
      if (!apply_logged(follower, args, kStartMs + index, index, m.old_version, &new_reply, &why)) {
        fail("the new app does not apply the old entry (a divergence; a node would stop): " + why);
        break;
      }
      AppHost<New> leader_path;  // path "apply, then migrate"
      std::string error;
      if (!migrate(leader_path, &error)) {
        fail(error);
        break;
      }
      if (leader_path.digest() != follower.digest()) {
        const std::string which = migration_detail::records_differ(leader_path, follower, New::kSchemaVersion);
        fail("the two paths differ: the old app applying it then migrating is not the new app applying the old "
             "entry to the migrated state; " +
             first_difference(save_bytes(leader_path), save_bytes(follower)) +
             (which.empty() ? "" : "; " + which + " (first: apply then migrate, second: migrate then apply)"));
        break;
      }
      if (m.compare_replies && old_reply != new_reply) {
        fail("the replies differ: the old app answered " + old_reply.substr(0, 200) + " the new app " +
             new_reply.substr(0, 200));
        break;
      }
      if (!digest_as_old()) break;
    }
    if (result.ok && !round_trip()) break;
    if (result.ok) result.trials++;
  }
  return result;
}

}  // namespace hmdb::testing
