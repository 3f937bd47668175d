// apps/kv/kv.h — the default hmdb application: a useful subset of Redis' data model.
//
// Strings, hashes, lists, sets and sorted sets, with key expiry, written only against the
// public API (hmdb/app.h). docs/kv-commands.md lists the commands and how they differ from
// Redis. The state is plain containers; every write is a logged command applied
// deterministically, every read is a query.
//
// Determinism (see hmdb/state_machine.h):
//   - Time: deadlines are absolute ms computed from ApplyContext::now_ms (leader-stamped).
//     apply() treats a key whose deadline <= ctx.now_ms as absent and deletes it; queries
//     hide keys whose deadline <= QueryContext::now_ms; housekeeping() proposes
//     HMDB.EXPIRE, which deletes up to kExpireBatchMax keys expired as of ctx.now_ms.
//   - Order: every container whose order is visible in a reply or decides what a command
//     changes is ordered (sorted array, skip list, a deque of packed chunks, or a hash table in hash
//     order). The top-level key table (key_table.h) is a hash table that iterates in one
//     canonical order, (XXH3(key), key bytes), whatever its size or resize progress, so
//     snapshot bytes are the same on every node with the same state; big hashes and sets
//     are tables of the same kind (hash.h, set.h). A sorted set's member index is a hash
//     table too; a reply
//     that lists keys or members (SCAN, KEYS, RANDOMKEY, ZSCAN) orders or picks them by a
//     hash of their bytes, never by slot, and the digest combines per-key hashes by
//     addition, so it does not depend on order at all.
//   - SPOP: sets are ordered by (XXH3(member, kSetHashSeed), member). The i-th member
//     popped by a command at log index idx is the first member whose hash is >= r, where
//     r = XXH3 of (idx, i, set size), wrapping to the first member. Every node picks the
//     same member; over many pops the choice is close to uniform.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <absl/container/btree_map.h>
#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include "hmdb/app.h"
#include "kv/hash.h"
#include "kv/key.h"
#include "kv/key_table.h"
#include "kv/list.h"
#include "kv/set.h"
#include "kv/zorder.h"
#include "kv/populated_allocator.h"
#include "kv/value_alloc.h"

#include <xxhash.h>

namespace hmdb::kv {

// Keys deleted by one HMDB.EXPIRE command. It bounds the time one housekeeping entry
// holds the apply loop (a few ms at ~0.2-0.5 µs per key) and sets the expiry rate: the
// server proposes at most one housekeeping command per tick (100 ms), so 10,000 keys per
// tick is 100,000 expiries a second; keys past their deadline are invisible meanwhile.
inline constexpr size_t kExpireBatchMax = 10000;

// kSetHashSeed, the seed of the member hash that orders sets, is in set.h.

// Hash and equality for string-keyed tables that accept std::string_view lookups (this
// Abseil build's own StringHash takes absl::string_view, a distinct type), so a lookup
// never builds a std::string. XXH3, not absl::Hash<std::string_view>: the latter falls back
// to std::hash here, whose low bits are too regular for a Swiss table (measured: long probe
// chains and a 10x slower SET).
struct KeyHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return XXH3_64bits(s.data(), s.size()); }
};
struct KeyEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
// Big tables (the key table at millions of keys) get their slot array pre-faulted, see
// populated_allocator.h; small ones use the default allocator through it.
template <class V>
using StringMap = absl::flat_hash_map<Key, V, KeyHash, KeyEq, PopulatedAllocator<std::pair<const Key, V>>>;

// ---- value types ---------------------------------------------------------------------

// Hash (hash.h), List (list.h) and Set (set.h) are compact containers: one block while
// small, a hash table (hash, set) once big.

struct ZSet {
  ZOrder order;  // (score, member), the visible order, with ranks and a member index
  bool empty() const { return order.empty(); }
};

// Type tags; also the snapshot's type byte (do not renumber within a schema version).
enum class Type : uint8_t { kString = 0, kHash = 1, kList = 2, kSet = 3, kZSet = 4 };

// Sorted sets are boxed; hashes, lists and sets are held in place (each is a 32-byte handle
// to one block while small), so a string key (the common case) costs one String (a
// std::string whose block of more than 15 bytes comes from populated memory: value_alloc.h)
// and the variant stays 40 bytes. Invariant: a stored container is never empty.
using Value = std::variant<String, Hash, List, Set, std::unique_ptr<ZSet>>;
static_assert(sizeof(Value) == 40, "a key table slot is Key + Value");

// Orders (deadline, key) pairs; transparent so a lookup needs no std::string.
struct ExpiryLess {
  using is_transparent = void;
  template <class A, class B>
  bool operator()(const A& a, const B& b) const {
    if (a.first != b.first) return a.first < b.first;
    return std::string_view(a.second) < std::string_view(b.second);
  }
};

using ExpiryOrder = absl::btree_set<std::pair<uint64_t, std::string>, ExpiryLess>;

// Values bigger than this many elements are not destroyed by the command that deletes or
// replaces them (destroying 10 M elements takes ~1 s) but buried in the Graveyard. Redis'
// LAZYFREE_THRESHOLD is the same.
inline constexpr size_t kLazyFreeElementsMin = 64;
// Elements (or table nodes) the graveyard destroys per write command that runs while it
// is not empty (up to ~190 µs: measured 90 ns an element for a hash, 250 for a set, 370 for
// a sorted set; a list frees whole 8 KiB chunks, ~0.1 ns an element), at most kLazyFreeEntryWork per log entry (a loop turn
// applies a batch of up to thousands of commands as one entry: up to ~3 ms), and as much per
// HMDB.EXPIRE, which housekeeping proposes (one a tick, 100 ms) while it is not empty. It
// freed 50,000 a tick until the loop turns of a FLUSHALL's freeing were measured at 14-20 ms
// of the loop's CPU (keys of 400 B, 0.3-0.4 us a key; a sorted set's members 19-21 ms:
// docs/kv-commands.md, "Commands that take long"), at issue 16's 20 ms bound with no room
// for slower memory; at kLazyFreeEntryWork a housekeeping turn frees ~3 ms at most, and 10
// M elements are gone in ~2 min with no writes (~20 s before; writes free more meanwhile).
inline constexpr size_t kLazyFreeStepWork = 512;
inline constexpr size_t kLazyFreeEntryWork = 8192;
inline constexpr size_t kLazyFreeHousekeepingWork = kLazyFreeEntryWork;
// Those counts bound time only as far as memory is fast: a unit's cost is the machine's
// (cache and TLB misses into the freed memory), and on a loaded VM housekeeping turns of
// 8,192 units took 9-20 ms of the loop's CPU (bench/README.md). So where the host gives the
// turn's budget (ApplyContext::turn_budget: the server's kTurnApplyBudgetUs, 8 ms from the
// turn's start), a housekeeping entry frees in steps of kLazyFreeBudgetStepWork, asking the
// budget after each, until it is spent (the first step is always made, so freeing goes on
// in turns already over it), or kLazyFreeHousekeepingWorkMax is done; and a write asks it
// before its step, the rest of its entry freeing nothing once it is spent. 256 units are
// ~0.1 ms at the quiet machine's 0.1-0.4 us a unit (the budget overshot by that, or by a
// slab's or a release step's units); asking costs ~0.1 us each. The most is 8 times the
// count: a quiet machine gives memory back faster (a 10 M-element value in ~15 s with no
// writes instead of ~2 min), and a turn frees at most that where the budget is not asked.
inline constexpr size_t kLazyFreeBudgetStepWork = 256;
inline constexpr size_t kLazyFreeHousekeepingWorkMax = 8 * kLazyFreeHousekeepingWork;

// Deleted big values and flushed tables, destroyed a bounded amount of work at a time
// (lazy_free.cc). Not part of the state: nothing in it is visible to a command, a
// snapshot or the digest, so when it is freed does not matter to determinism (each node
// frees at its own pace; one that restarted from a snapshot has nothing to free).
class Graveyard {
 public:
  bool empty() const noexcept { return values_.empty() && tables_.empty() && deadline_tables_.empty() && orders_.empty(); }
  // Takes v if it is big (leaving it empty), else leaves it to its owner to destroy.
  void bury_if_big(Value& v);
  // Takes a whole keyspace (FLUSHALL), leaving the three empty.
  void bury_keyspace(KeyTable<Value>& keys, KeyTable<uint64_t>& expires, ExpiryOrder& order);
  // Destroys about `budget` elements' worth (a container's elements, a table's nodes);
  // returns the work done.
  size_t step(size_t budget);
  // For tests: the work step() did in all.
  uint64_t work_total() const noexcept { return work_total_; }
  // step(kLazyFreeStepWork) for a write command of log entry ctx.index, unless the commands
  // of that entry already did kLazyFreeEntryWork or found the turn's budget spent (then the
  // rest of the entry frees nothing: ApplyContext::turn_budget).
  void step_for_entry(const ApplyContext& ctx) {
    if (ctx.index != entry_index_) {
      entry_index_ = ctx.index;
      entry_work_ = 0;
    }
    if (entry_work_ >= kLazyFreeEntryWork) return;
    if (ctx.turn_budget_spent()) {
      entry_work_ = kLazyFreeEntryWork;
      return;
    }
    entry_work_ += step(std::min(kLazyFreeStepWork, kLazyFreeEntryWork - entry_work_));
  }
  // A housekeeping entry's share (HMDB.EXPIRE): kLazyFreeHousekeepingWork where the host
  // gives no budget, else steps until the turn's budget is spent (kLazyFreeBudgetStepWork).
  // Returns the work done.
  size_t step_for_housekeeping(const ApplyContext& ctx);

 private:
  uint64_t entry_index_ = 0;
  size_t entry_work_ = 0;
  uint64_t work_total_ = 0;
  std::vector<Value> values_;
  std::vector<KeyTable<Value>> tables_;
  std::vector<KeyTable<uint64_t>> deadline_tables_;
  std::vector<ExpiryOrder> orders_;
};

class SaveCursor;  // save_producer.h

struct State {
  // Both grow and shrink a few buckets per insert/erase (key_table.h): no command stalls
  // the loop to resize them.
  KeyTable<Value> keys;
  // Deadlines (absolute ms) of the keys that have one, and the same pairs ordered by
  // deadline for housekeeping. Invariant: every key here is in `keys`, and both agree.
  KeyTable<uint64_t> expires;
  ExpiryOrder expiry_order;
  Graveyard graveyard;  // not state: see Graveyard
  // The snapshot being written by the loop in slices (save_producer.h), whose hooks every
  // change to a key calls first; null when none runs. Not state.
  SaveCursor* saving = nullptr;
};

// A key's entry in save()'s format (kv.cc; save_producer.cc writes the same bytes).
void encode_snapshot_entry(hmdb::Encoder& e, std::string_view key, const Value& v, std::optional<uint64_t> deadline);
// Its first part: the key, tag, deadline and (a container's) element count; the elements follow.
void encode_snapshot_header(hmdb::Encoder& e, std::string_view key, const Value& v, std::optional<uint64_t> deadline);

// ---- the application -----------------------------------------------------------------

struct Kv {
  static constexpr std::string_view kName = "kv";
  // The first version: define() has no history yet. kv hashes its state its own way
  // (digest), so a version 2 that must compare with version-1 nodes while version 1 is
  // active also defines digest_as (hmdb/app.h).
  static constexpr uint32_t kSchemaVersion = 1;
  using State = kv::State;

  static void define(hmdb::Commands<State>& c);
  static void save(const State& s, hmdb::Encoder& out);
  static bool load(State& s, hmdb::Decoder& in, uint32_t version);
  // save() in slices on the loop, without fork() (save_producer.h).
  static std::unique_ptr<hmdb::SaveProducer> begin_save(State& s);
  static uint64_t digest(const State& s);
  // Each key, hashed as the digest hashes it (digest() is the sum of these): what names the
  // keys two nodes hold differently (`hmdb cluster verify`).
  static void records(const State& s, hmdb::RecordSink& out);
  static std::string info(const State& s);
  static std::optional<std::vector<std::string>> housekeeping(const State& s, uint64_t now_ms);
  // The key's deadline, for WATCH (an expiry between WATCH and EXEC fails the EXEC).
  static std::optional<uint64_t> expiry_ms(const State& s, std::string_view key);
  // Cache hint for a command about to run: the key table's slot of argv[1].
  static void prefetch(const State& s, Args argv) {
    if (argv.size() >= 2) s.keys.prefetch(argv[1]);
  }
};

}  // namespace hmdb::kv
