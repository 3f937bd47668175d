// hmdb/state_machine.h — the boundary between the engine and an application.
//
// The engine (server shell, simulator, log tools) sees an application only through this
// interface. Application authors do not implement it by hand: hmdb/app.h turns an app
// definition (state, commands, queries, snapshot encoding) into an AppHost<App>, which
// implements it. Keeping the boundary virtual means the engine is compiled once and every
// app binary links the same engine library.
//
// Determinism contract (what makes replication and recovery correct):
//   apply() and load() do no I/O, read no clock and use no randomness. Everything a
//   command needs of time comes from ApplyContext, which the leader stamped into the log
//   entry. The same sequence of apply() calls on the same starting state yields the same
//   state and the same replies, on every node and on every restart.
//
// Thread-safety: none. The engine calls everything from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

#include "hmdb/acl.h"
#include "hmdb/codec.h"
#include "hmdb/reply.h"

namespace hmdb {

// A command line as the client sent it: argv[0] is the command name (any case).
using Args = std::span<const std::string_view>;

// Every app's history starts at schema version 1, and so does a new cluster's active
// version (docs/app-tutorial.md, "Versions").
inline constexpr uint32_t kFirstSchemaVersion = 1;

// Told of the keys a write changed beyond those its key spec names (KeySpec::reports_more):
// WATCH must learn of every change to a key (a transaction that watched it then fails).
class KeyChanges {
 public:
  virtual ~KeyChanges() = default;
  virtual void changed(std::string_view key) = 0;
  virtual void all_changed() = 0;
};

// Redis' keyspace notification classes (notify-keyspace-events), for
// ApplyContext::keyspace_event: which kind of key an event is about. The values are Redis'.
namespace keyspace {
inline constexpr uint32_t kGeneric = 1u << 2;  // g: DEL, EXPIRE, RENAME, ... on any type
inline constexpr uint32_t kString = 1u << 3;   // $
inline constexpr uint32_t kList = 1u << 4;     // l
inline constexpr uint32_t kSet = 1u << 5;      // s
inline constexpr uint32_t kHash = 1u << 6;     // h
inline constexpr uint32_t kZset = 1u << 7;     // z
inline constexpr uint32_t kExpired = 1u << 8;  // x: a key deleted because it expired
inline constexpr uint32_t kEvicted = 1u << 9;  // e
inline constexpr uint32_t kStream = 1u << 10;  // t
inline constexpr uint32_t kModule = 1u << 13;  // d
inline constexpr uint32_t kNewKey = 1u << 14;  // n
}  // namespace keyspace

// Told of the events a write emits (docs/subscriptions.md): messages on channels, delivered
// to subscribers on every node once the entry is committed, each at a position (the entry's
// index and the event's ordinal in it). Deterministic like the rest of apply: the same entry
// must emit the same events in the same order on every node. How many subscribers there
// are is not the app's to know (it differs per node).
class EventSink {
 public:
  virtual ~EventSink() = default;
  // One message on `channel`.
  virtual void publish(std::string_view channel, std::string_view message) = 0;
  // A Redis keyspace notification: `event` ("set", "del", "expired", ...) happened to
  // `key`, of class `type` (keyspace::). It becomes the messages Redis sends on
  // __keyspace@0__:<key> and __keyevent@0__:<event>, if this node's notify-keyspace-events
  // setting asks for them; its positions are taken whether or not they are sent.
  virtual void keyspace_event(uint32_t type, std::string_view event, std::string_view key) = 0;
};

// Told of the records of a state, each named by a key and hashed (StateMachine::records):
// what lets `hmdb cluster verify` name the records two nodes hold differently, not only say
// that their states differ (docs/cluster.md, "Verifying").
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  // One record. `key` names it, uniquely in the state (an app with several kinds of record
  // prefixes them: "account:alice", "transfer:t1"); `hash` hashes everything it holds, so
  // two nodes holding it differently give different hashes. Any order.
  virtual void record(std::string_view key, uint64_t hash) = 0;
  // The record `key` hashed as the bytes fn(Encoder&) writes (its snapshot encoding, say).
  template <class Fn>
  void record_encoded(std::string_view key, Fn&& fn) {
    scratch_.clear();
    fn(scratch_);
    record(key, XXH3_64bits(scratch_.buffer().data(), scratch_.buffer().size()));
  }

 private:
  Encoder scratch_;
};

class ApplyProducer;

// What apply() may know beyond the command's arguments. All of it is in the log entry.
struct ApplyContext {
  uint64_t now_ms = 0;          // leader's wall clock when it built the batch, ms since epoch
  uint64_t index = 0;           // log index of the entry holding this command
  // The schema version the entry was logged under: the command means what that version
  // of the app defines (an app at a newer version applies it through its version history).
  uint32_t schema_version = kFirstSchemaVersion;
  KeyChanges* changes = nullptr;  // null when nobody listens (a follower, recovery)
  EventSink* events = nullptr;    // null when events are not wanted (app tests)

  // Events (docs/subscriptions.md): a message on a channel, or a Redis keyspace
  // notification. Deterministic: emitted in the same order on every node.
  void publish(std::string_view channel, std::string_view message) const {
    if (events) events->publish(channel, message);
  }
  void keyspace_event(uint32_t type, std::string_view event, std::string_view key) const {
    if (events) events->keyspace_event(type, event, key);
  }

  // A command whose KeySpec says reports_more calls these for what it changed beyond its
  // named keys (kv's HMDB.EXPIRE: each key it deletes; FLUSHALL: everything). Deterministic
  // like the rest of apply: the calls change nothing in the state.
  void key_changed(std::string_view key) const {
    if (changes) changes->changed(key);
  }
  void all_keys_changed() const {
    if (changes) changes->all_changed();
  }

  // The host's budget for this loop turn's applying (the server's kTurnApplyBudgetUs): true
  // once it is spent; asking reads the host's clock (~0.1 us). Not in the log, so only for
  // work that changes nothing a command, a reply, a snapshot or the digest shows, whose pace
  // may then differ between nodes (kv's freeing of deleted values, apps/kv/kv.h Graveyard);
  // never for what a command does. Null where the host gives none (recovery, the test
  // driver): such work then goes by its counts alone.
  const std::function<bool()>* turn_budget = nullptr;
  bool turn_budget_spent() const { return turn_budget != nullptr && (*turn_budget)(); }

  // Where a write may be applied in slices (ApplyProducer; a client's write applied by a
  // node that slices: not one inside a transaction, a retried request's, recovery's, nor the
  // test driver's): the elements a slice holds, and where the engine takes the producer.
  // Unset: every write is applied whole, in one call. Not in the log: whether a write is
  // sliced must not change what it does (the same result on every node, sliced or not).
  size_t slice_elements = 0;
  std::unique_ptr<ApplyProducer>* producer = nullptr;

  // True when a write of `elements` elements of work is to be applied by a producer
  // (produce()): the engine slices here and it is more than one slice. A write checks this
  // before making a producer, so a small one costs what it did.
  bool slices(size_t elements) const { return producer != nullptr && elements > slice_elements; }
  // Hands the rest of the write to the engine, which computes it in slices and then has it
  // finish (ApplyProducer); where writes are not sliced, computes and finishes it now.
  // The write's apply must not have changed the state, emitted an event or written any of
  // its reply before handing it over, and returns true right after.
  inline void produce(Reply& reply, std::unique_ptr<ApplyProducer> p) const;
};

// Which words of a write name the keys it may change, as Redis' COMMAND reports them
// (first key, last key, step): the engine's WATCH learns of a change from these when the
// write is batched, without running it. The default is the first word after the name.
struct KeySpec {
  int first = 1;  // position of the first key; 0: the words name no key
  int last = 1;   // position of the last key; negative counts from the end (-1: the last word)
  int step = 1;
  // The command may change keys it does not name, and reports them through
  // ApplyContext::key_changed / all_keys_changed when applied.
  bool reports_more = false;
  // A blocking command (kv's BLPOP): the position of its timeout word (negative counts from
  // the end), seconds as Redis reads them (hmdb/text.h, parse_block_timeout). Its apply is
  // the non-blocking form, answering a null when it finds nothing; the engine then keeps the
  // client waiting until an entry changes one of its keys, and applies it again on the
  // client's behalf (core/blocking.h), or answers a null array at the timeout. 0: it does
  // not block.
  int timeout = 0;

  static constexpr KeySpec none() { return KeySpec{0, 0, 1, false}; }
  static constexpr KeySpec all_after_name() { return KeySpec{1, -1, 1, false}; }

  // Calls fn(key) for each key argv names.
  template <class Fn>
  void for_each(std::span<const std::string_view> argv, Fn&& fn) const {
    if (first <= 0 || step <= 0) return;
    const int64_t n = static_cast<int64_t>(argv.size());
    const int64_t end = last < 0 ? n + last : last;  // inclusive
    for (int64_t i = first; i <= end && i < n; i += step) fn(argv[static_cast<size_t>(i)]);
  }
};

// How much of a sliced reply (ReplyProducer) or write (ApplyProducer) one loop turn makes:
// counts, not time (an app does no I/O and reads no clock). A producer stops after the
// element that reaches either bound; it may stop earlier, never later by more than one
// element. (A write's producer is given elements only.)
struct SliceBudget {
  size_t elements = SIZE_MAX;
  size_t bytes = SIZE_MAX;
};

// A reply made in slices across loop turns instead of in one (a KEYS over millions of keys,
// a big SMEMBERS): docs/app-tutorial.md, "Big replies". A query whose reply would be big
// hands one to QueryContext::produce. The engine then calls next() once per loop turn until
// it returns true, sending each slice's bytes to the client as they are made, and applies
// no log entry meanwhile: the state the producer reads (it may keep pointers and iterators
// into it) does not change until the reply is complete, so the reply is the state at one
// point, as if made in one turn. Other clients' reads are served between slices; writes are
// logged and committed, and applied (and answered) once the reply is complete.
class ReplyProducer {
 public:
  virtual ~ReplyProducer() = default;
  // Appends the next part of the reply to `reply` (about `budget`'s worth; the first call
  // writes its header too). Returns true once the whole reply (exactly one RESP value with
  // what the query wrote before handing it over) is written.
  virtual bool next(Reply& reply, const SliceBudget& budget) = 0;
};

// A write applied in slices across loop turns instead of in one (a SUNIONSTORE of two sets
// of a million members): docs/app-tutorial.md, "Big writes". A write whose work would be big
// hands one to ApplyContext::produce. The engine then calls next() once per loop turn until
// it returns true, and then finish() once, in a later turn; until finish() returns it applies
// nothing else (the write's entry, and every entry after it, wait), takes no snapshot and
// counts the entry as not applied. Reads are served between slices and see the state before
// the write (the write has not happened yet for them), so:
//   * next() computes into the producer's own memory and changes nothing of the state (it may
//     keep pointers and iterators into it: nothing changes the state until finish());
//   * finish() does everything the write does to the state and what it tells: the state
//     change, the events (ApplyContext::publish, keyspace_event, key_changed), exactly one
//     RESP value of reply;
//   * the outcome depends only on the state and the command, never on the budgets nor on how
//     many slices it took: a node that slices, one that applies the write whole (recovery,
//     another configuration) and one that slices differently reach the same state and reply.
// A node that crashes or installs a snapshot mid-way drops the producer (destroyed without
// finish(): its destructor must not touch the state) and loses nothing: the entry is still
// in the log, or in the snapshot's state. The producer must not keep the write's argv (copy
// what finish() needs).
class ApplyProducer {
 public:
  virtual ~ApplyProducer() = default;
  // Computes the next part of the write, about budget.elements' worth of work (counts, not
  // time: an app reads no clock). Returns true once everything finish() needs is computed.
  virtual bool next(const SliceBudget& budget) = 0;
  // Applies the computed write (called once, after next() returned true). `ctx` is the
  // write's (its entry's time, index and schema version; this turn's listeners).
  virtual void finish(const ApplyContext& ctx, Reply& reply) = 0;
};

// A snapshot's app part written by the event loop in slices instead of by a fork()ed child
// (issue 16 item 5; docs/decisions.md, "A snapshot without fork()"): fork() copies the page
// tables of the whole state inside one loop turn (~4,900 huge pages at 10 GiB: 5-36 ms on the
// reference VM), and this copies none. StateMachine::begin_save() makes one for the state as
// it is then (the snapshot's index I). The engine then calls next() in loop turns until it
// returns true, writing the bytes out as they come, and keeps applying writes in between, so:
//   * the bytes, put together, are exactly what save() would have written at I, whatever
//     was applied between the calls and however the budgets cut them: the app keeps what it
//     changes after I and the producer has not written yet (copy before write, its own
//     business, in its own memory), and leaves out what was created after I;
//   * next() changes nothing the app's commands and queries see (it may advance its own
//     cursors, hand back what it kept, and release memory of its own);
//   * the engine destroys the producer before anything replaces the state (load, clear,
//     swap_state: a snapshot installed, a restart) and may destroy it at any point before
//     it is done (the snapshot abandoned): its destructor leaves the state as it would be
//     without a snapshot running, keeping nothing of it hooked.
// One producer at a time. Budgets are counts (SliceBudget), not time: an app reads no clock.
class SaveProducer {
 public:
  virtual ~SaveProducer() = default;
  // Appends the next part of save()'s encoding of the state at I to `out` (about budget's
  // worth: at least one element, the first call the encoding's start). Returns true once
  // all of it is written.
  virtual bool next(Encoder& out, const SliceBudget& budget) = 0;
};

inline void ApplyContext::produce(Reply& reply, std::unique_ptr<ApplyProducer> p) const {
  if (producer) {
    *producer = std::move(p);
    return;
  }
  while (!p->next(SliceBudget{})) {
  }
  p->finish(*this, reply);
}

// What a read-only query may know. Queries are not logged, so the shell passes its clock.
struct QueryContext {
  uint64_t now_ms = 0;
  // Where a reply may be sliced (a client's query served from the applied state; not one
  // inside EXEC or run at apply behind the session's write, nor the test driver's): the
  // elements a slice holds, and where the engine takes the producer. Unset: whole replies.
  size_t slice_elements = 0;
  std::unique_ptr<ReplyProducer>* producer = nullptr;

  // True when a reply of `elements` elements is to be made by a producer (produce()): the
  // engine slices here and it is more than one slice. A query checks this before making a
  // producer, so a small reply costs what it did (no allocation).
  bool slices(size_t elements) const { return producer != nullptr && elements > slice_elements; }
  // Hands the rest of the reply to the engine, which makes it in slices; where replies are
  // not sliced, makes it whole now.
  void produce(Reply& reply, std::unique_ptr<ReplyProducer> p) const {
    if (producer) {
      *producer = std::move(p);
      return;
    }
    while (!p->next(reply, SliceBudget{})) {
    }
  }
};

enum class CommandKind : uint8_t { kUnknown, kWrite, kQuery };

// One command an app defines, as listed by COMMAND (names in upper case; arity as Redis).
struct CommandDescription {
  std::string name;
  CommandKind kind = CommandKind::kUnknown;
  int arity = 0;
  acl::Categories categories = 0;  // ACL categories (hmdb/acl.h)
};

// What ACL rules check of a command (docs/security.md): its categories and the words that
// name its keys (read access for a query, write access for a write).
struct CommandAcl {
  CommandKind kind = CommandKind::kUnknown;  // kUnknown: the app does not define it
  acl::Categories categories = 0;
  KeySpec keys;
  bool engine_only = false;  // the engine's own command (housekeeping): clients are refused it
  int arity = 0;             // Redis style, as arity()
};

class StateMachine {
 public:
  virtual ~StateMachine() = default;

  virtual std::string_view app_name() const = 0;

  // Schema versions (docs/app-tutorial.md, "Versions"). This binary applies entries logged
  // under, and loads snapshots of, versions oldest_schema_version() .. schema_version().
  virtual uint32_t schema_version() const = 0;
  virtual uint32_t oldest_schema_version() const { return schema_version(); }
  bool reads_schema_version(uint32_t v) const { return v >= oldest_schema_version() && v <= schema_version(); }

  // The cluster's active schema version: the one clients' writes are validated and logged
  // under (kind, validate, arity, describe_commands and query answer as it defines them).
  // Replicated state, like the app's: only a committed activation (core/apply.h) and a
  // loaded snapshot (core/state.h) change it; an empty state is at kFirstSchemaVersion.
  uint32_t active_schema_version() const { return active_schema_version_; }
  // (Virtual so that AppHost can keep the active version's command table at hand.)
  virtual void set_active_schema_version(uint32_t v) {
    active_schema_version_ = v;
    reads_active_schema_version_ = reads_schema_version(v);
  }
  // reads_schema_version(active_schema_version()), kept at hand for the apply path.
  bool reads_active_schema_version() const { return reads_active_schema_version_; }

  // True when no name kind() knows is one the engine answers itself (hmdb/reserved_names.h),
  // at any version: AppHost checks when it hosts the app. The engine then asks the app first
  // and its own tables only for names the app does not define: one name lookup for an app's
  // command instead of two. False (the engine's tables first) for a StateMachine written
  // by hand.
  bool names_exclude_reserved() const { return names_exclude_reserved_; }

  // Classifies argv[0] (case-insensitive). kUnknown for names the app does not define.
  virtual CommandKind kind(std::string_view name) const = 0;

  // The command `name`'s ACL view (case-insensitive). By default from kind(): @write or
  // @read, and the first word after the name as its key.
  virtual CommandAcl command_acl(std::string_view name) const {
    CommandAcl a;
    a.kind = kind(name);
    if (a.kind != CommandKind::kUnknown) a.categories = acl::bit(a.kind == CommandKind::kWrite ? acl::kWrite : acl::kRead);
    a.arity = arity(name);
    return a;
  }

  // Every command the app defines, in definition order (for COMMAND and introspection).
  virtual std::vector<CommandDescription> describe_commands() const { return {}; }

  // Checks a write before it is proposed: known name, arity, typed parse. On failure writes
  // the RESP error message (without the leading '-') to *error and returns false; such a
  // command is answered with that error and never reaches the log. On success *keys (if
  // given) is the command's key spec.
  virtual bool validate(Args argv, std::string* error, KeySpec* keys = nullptr) const = 0;
  // The same for the app's own housekeeping command (housekeeping() below), which validate
  // refuses when a client sends it (an engine-only command: hmdb/app.h).
  virtual bool validate_housekeeping(Args argv, std::string* error, KeySpec* keys) const {
    return validate(argv, error, keys);
  }

  // The arity of the command `name` (Redis style: n > 0 exactly n words, n < 0 at least -n),
  // 0 if the app does not define it. A transaction refuses a command of the wrong arity
  // when it is queued, as Redis does; other argument errors come when it runs.
  virtual int arity(std::string_view name) const = 0;

  // When `key` will change by itself (it expires), in the leader's ms since the epoch, or
  // nothing. WATCH counts an expiry between WATCH and EXEC as a change, as Redis does.
  virtual std::optional<uint64_t> expiry_ms(std::string_view key) const {
    (void)key;
    return std::nullopt;
  }

  // Applies one logged write as ctx.schema_version (the version it was logged under)
  // defines it: writes exactly one RESP value to reply and returns true. A command that
  // does not apply under that version (a name it does not define, the wrong arity, refused
  // by its parse) writes nothing and returns false with the reason in *why: the node that
  // logged it validated it, so this node and that one disagree on what the command means,
  // a divergence the engine stops on (core/apply.h), never a reply.
  virtual bool apply(Args argv, const ApplyContext& ctx, Reply& reply, std::string* why) = 0;

  // Runs a read-only query. Writes exactly one RESP value to reply.
  virtual void query(Args argv, const QueryContext& ctx, Reply& reply) const = 0;

  // A write's reply when it would change nothing (docs/app-tutorial.md, "Writes that change
  // nothing"; hmdb/app.h, Options::unchanged_reply): if the write argv, logged now under the
  // active schema version and applied to this state at leader time ctx.now_ms, would change
  // nothing (no byte of the state, no event, no key reported), writes exactly the reply its
  // apply would write and returns true. The engine may then answer the write so, as it
  // answers a read, without logging it (only where a read would see the state the write would
  // be applied to: docs/architecture.md, "Writes that change nothing"). False, having written
  // nothing, otherwise: the write is logged and applied as any. Must not change the state.
  // Default: false for every write.
  virtual bool unchanged_reply(Args argv, const QueryContext& ctx, Reply& reply) const {
    (void)argv, (void)ctx, (void)reply;
    return false;
  }
  // True when some write of the active schema version has such a reply (the engine asks
  // unchanged_reply only then).
  bool has_unchanged_replies() const { return has_unchanged_replies_; }

  // A hint, for a command that will run soon (the shell parses a few of a client's
  // pipelined commands ahead): start loading the memory it will touch (e.g. the hash-table
  // slot of its key), so the cache misses of several commands overlap instead of each
  // stalling in turn. Must not change the state or its observable behaviour. Default: none.
  virtual void prefetch(Args argv) const { (void)argv; }

  // Periodic housekeeping the leader should log as a command (e.g. deleting expired keys).
  // Called by the leader's shell every housekeeping interval; returns the argv to propose,
  // or nothing. Must be cheap: it runs on the event loop.
  virtual std::optional<std::vector<std::string>> housekeeping(uint64_t now_ms) const = 0;

  // Snapshot encoding. save() writes the newest version's layout and must not modify the
  // state. load() replaces the state from a snapshot of schema version `schema_version`
  // (any this binary reads: older ones are migrated) and returns false (leaving the state
  // empty) if the bytes are malformed, if any byte is left after the state (`in` holds the
  // state and nothing after it), or if the version is one it does not read.
  virtual void save(Encoder& out) const = 0;
  virtual bool load(Decoder& in, uint32_t schema_version) = 0;
  virtual void clear() = 0;
  // save() of the current state in slices, without fork() (SaveProducer, above); the newest
  // version's layout only. Default: nullptr, the app cannot (the engine forks and the child
  // calls save()).
  virtual std::unique_ptr<SaveProducer> begin_save() { return nullptr; }

  // For a load off the event loop (the server loads a leader's snapshot in a thread while
  // its loop keeps answering its peers): a new state machine of the same app with an empty
  // state, and swapping the state and active schema version of this one with such a one's
  // (O(1): the states are moved, not copied). Default: none (nullptr; the caller loads in
  // place).
  virtual std::unique_ptr<StateMachine> make_empty() const { return nullptr; }
  virtual void swap_state(StateMachine& other) { (void)other; }

  // The state in an older version's snapshot layout (the app's save_as), so that while that
  // version is active a snapshot written by this binary loads in a binary that reads only
  // it: the upgrade can still be abandoned. saves_schema_version says whether to try (the
  // app can write `version`'s layout at all); save_at may still return false for this
  // state (it holds what that layout cannot), having written part of it: the caller then
  // discards what it wrote and saves the newest layout.
  virtual bool saves_schema_version(uint32_t version) const { return version == schema_version(); }
  virtual bool save_at(uint32_t version, Encoder& out) const {
    if (version != schema_version()) return false;
    save(out);
    return true;
  }

  // A digest of the logical state, equal on two nodes iff their states are equal (with
  // overwhelming probability), independent of container iteration order.
  virtual uint64_t digest() const = 0;

  // The digest a binary at schema version `version` computes for this state (what an older
  // node holding the same data reports), so that nodes of two versions compare; nothing if
  // this binary cannot express its state at that version. core::state_digest takes it at
  // the active version.
  virtual std::optional<uint64_t> digest_at(uint32_t version) const {
    if (version == schema_version()) return digest();
    return std::nullopt;
  }

  // The state as records, each named and hashed (RecordSink), as a binary at schema version
  // `version` sees it (like digest_at: what an older node holding the same data lists), so
  // that a verification names the records two nodes hold differently. False (having told
  // `out` nothing) when the app does not list its records at that version: the tool then
  // says only that the states differ. Optional; must not change the state.
  virtual bool records(uint32_t version, RecordSink& out) const {
    (void)version;
    (void)out;
    return false;
  }

  // Human-readable statistics for INFO (e.g. "keys:12\r\n"), app-specific.
  virtual std::string info() const = 0;

 protected:
  // Set by set_active_schema_version; AppHost's constructor sets it for an empty state (a
  // constructor cannot ask the virtual version bounds).
  bool reads_active_schema_version_ = true;
  // Set by AppHost's constructor (names_exclude_reserved()).
  bool names_exclude_reserved_ = false;
  // Set by AppHost for the active schema version (has_unchanged_replies()).
  bool has_unchanged_replies_ = false;

 private:
  uint32_t active_schema_version_ = kFirstSchemaVersion;
};

}  // namespace hmdb
