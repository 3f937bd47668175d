// apps/kv/kv.cc — the kv application's commands, queries, snapshot encoding and digest.
//
// Reply formats and error texts follow Redis 7 (see docs/kv-commands.md for the
// differences). Sections: error texts, keyspace helpers (expiry), strings, hashes, lists,
// sets, sorted sets, expiry commands, server commands, snapshot, digest, define().
#include "kv/kv.h"

#include <algorithm>
#include <optional>
#include <cassert>
#include <charconv>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include <xxhash.h>

#include "hmdb/glob.h"
#include "kv/save_producer.h"

namespace hmdb::kv {
namespace {

// ---- error texts (Redis' own) ------------------------------------------------------------

constexpr std::string_view kWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value";
constexpr std::string_view kNotInteger = "ERR value is not an integer or out of range";
constexpr std::string_view kSyntax = "ERR syntax error";
constexpr std::string_view kOverflow = "ERR increment or decrement would overflow";
constexpr std::string_view kNotFloat = "ERR value is not a valid float";
constexpr std::string_view kMustBePositive = "ERR value is out of range, must be positive";
constexpr std::string_view kHashNotInteger = "ERR hash value is not an integer";
constexpr std::string_view kStringTooLong = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";

// Largest string APPEND may build: Redis' default proto-max-bulk-len (512 MiB).
constexpr size_t kStringBytesMax = 512ull << 20;

// Largest count SPOP/LPOP/ZPOPMIN accept; larger counts are clamped to the container size
// anyway, this only keeps the arithmetic in range.
constexpr int64_t kPopCountMax = std::numeric_limits<int64_t>::max();

std::string wrong_arity_error(std::string_view name) { return hmdb::wrong_arity(name); }

// ---- keyspace helpers ----------------------------------------------------------------------

using KeyIter = KeyTable<Value>::iterator;

bool expired(const State& s, std::string_view key, uint64_t now_ms) {
  if (s.expires.empty()) return false;  // fast path: most workloads have no deadlines
  auto it = s.expires.find(key);
  return it != s.expires.end() && it->second <= now_ms;
}

std::optional<uint64_t> deadline_of(const State& s, std::string_view key) {
  if (s.expires.empty()) return std::nullopt;
  auto it = s.expires.find(key);
  if (it == s.expires.end()) return std::nullopt;
  return it->second;
}

// Removes key's deadline; true if it had one.
bool clear_deadline(State& s, std::string_view key) {
  if (s.expires.empty()) return false;
  auto it = s.expires.find(key);
  if (it == s.expires.end()) return false;
  size_t erased = s.expiry_order.erase(std::pair<uint64_t, std::string_view>(it->second, key));
  assert(erased == 1);
  (void)erased;
  s.expires.erase(it);
  return true;
}

void set_deadline(State& s, std::string_view key, uint64_t deadline_ms) {
  auto [it, inserted] = s.expires.try_emplace(key, deadline_ms);
  if (!inserted) {
    if (it->second == deadline_ms) return;
    size_t erased = s.expiry_order.erase(std::pair<uint64_t, std::string_view>(it->second, key));
    assert(erased == 1);
    (void)erased;
    it->second = deadline_ms;
  }
  s.expiry_order.emplace(deadline_ms, std::string(key));
}

// Frees a bounded part of what earlier commands deleted; run by every write that looks a
// key up, so a backlog goes at a bounded cost per command and per log entry.
void free_some(State& s, const ApplyContext& ctx) {
  if (!s.graveyard.empty()) [[unlikely]] s.graveyard.step_for_entry(ctx);
}

// A snapshot written by the loop (save_producer.h) keeps what a key was before its first
// change: every path that changes a key's value, deadline or existence calls one of these
// first (or erase_key, or hands FLUSHALL's keyspace over). One predictable branch when no
// snapshot runs.
#ifndef HMDB_PLANTED_BUG_SAVE_NO_TOUCH_ON_CREATE
constexpr bool kTouchOnCreate = true;
#else
constexpr bool kTouchOnCreate = false;  // a planted bug: HSET/LPUSH/SADD's path skips the hook
#endif
#ifndef HMDB_PLANTED_BUG_SAVE_NO_KEEP_ON_DELETE
constexpr bool kKeepOnDelete = true;
#else
constexpr bool kKeepOnDelete = false;  // a planted bug: erase_key (DEL's path) skips the hook
#endif
#ifndef HMDB_PLANTED_BUG_SAVE_NO_TOUCH_ON_WRITE
constexpr bool kTouchOnWrite = true;
#else
// A planted bug: save_touch does nothing on any path, so no write keeps a key's value (its
// encoding, or a big container's header); the element hooks of big containers (fields,
// members, sorted-set places, list ends and LSET), save_replace and deletes still keep theirs.
constexpr bool kTouchOnWrite = false;
#endif
#ifndef HMDB_PLANTED_BUG_SAVE_NO_FIELD_HOOK
constexpr bool kHookFields = true;
#else
constexpr bool kHookFields = false;  // a planted bug: HSET's fields and SADD's members skip the hook
#endif
inline void save_touch(State& s, std::string_view key, uint64_t h) {
  if (kTouchOnWrite && s.saving) [[unlikely]] s.saving->touch(h, key);
}
// The value at it is about to be replaced in place (SET over a container, MSET, a STORE's or
// RENAME's or COPY's destination): a big container kept element by element moves to the
// snapshot (O(1)) rather than being lost. Before its deadline is cleared.
inline void save_replace(State& s, KeyIter it) {
  if (s.saving) [[unlikely]] s.saving->before_delete(it.hash(), it->first.view(), it->second);
}
// An element of the big container at it is about to change (save_producer.h, ContainerSave):
// every mutator of a hash's fields or a set's members calls one of these first.
inline void save_hash_field(State& s, KeyIter it, const Hash& h, std::string_view field) {
  if (s.saving) [[unlikely]] s.saving->before_hash_field(it.hash(), it->first.view(), h, field);
}
inline void save_set_member(State& s, KeyIter it, const Set& set, SetMemberKey m) {
  if (s.saving) [[unlikely]] s.saving->before_set_member(it.hash(), it->first.view(), set, m.hash, m.value);
}
// The same for a sorted set's entries (zset_save.h): every ZADD, ZINCRBY, ZREM, pop and range
// removal calls one of these before each entry it changes.
#ifndef HMDB_PLANTED_BUG_SAVE_ZSET_MOVE_NOT_KEPT
constexpr bool kKeepZsetOldPlace = true;
#else
constexpr bool kKeepZsetOldPlace = false;  // a planted bug: a score change keeps only its new place
#endif
#ifndef HMDB_PLANTED_BUG_SAVE_NO_ZSET_POP_HOOK
constexpr bool kHookZsetPops = true;
#else
constexpr bool kHookZsetPops = false;  // a planted bug: ZPOPMIN/MAX, BZPOP*, ZMPOP skip the hook
#endif
inline void save_zset_erase(State& s, KeyIter it, const ZEntry& e) {
  if (s.saving) [[unlikely]] s.saving->before_zset_erase(it.hash(), it->first.view(), e.score, e.member);
}
inline void save_zset_insert(State& s, KeyIter it, double score, std::string_view m) {
  if (s.saving) [[unlikely]] s.saving->before_zset_insert(it.hash(), it->first.view(), score, m);
}
inline void save_zset_move(State& s, KeyIter it, double from, double to, std::string_view m) {
  if (s.saving) [[unlikely]] {
    if (kKeepZsetOldPlace) s.saving->before_zset_move(it.hash(), it->first.view(), from, to, m);
    else s.saving->before_zset_insert(it.hash(), it->first.view(), to, m);
  }
}
// The same for a list's elements (list_save.h): every push at its head, pop, LTRIM, LSET and
// LINSERT calls it first, LREM its own with the positions it removes (a push at the tail
// changes nothing the snapshot follows).
#ifndef HMDB_PLANTED_BUG_SAVE_NO_LIST_POP_HOOK
constexpr bool kHookListPops = true;
#else
constexpr bool kHookListPops = false;  // a planted bug: LPOP/RPOP, BLPOP/BRPOP, LMPOP and LMOVE's pop skip the hook
#endif
#ifndef HMDB_PLANTED_BUG_SAVE_NO_LSET_KEEP
constexpr bool kHookListSet = true;
#else
constexpr bool kHookListSet = false;  // a planted bug: LSET skips the hook
#endif
using ListChange = SaveCursor::ListChange;
inline void save_list(State& s, KeyIter it, ListChange c, size_t n) {
  if (s.saving) [[unlikely]] s.saving->before_list(it.hash(), it->first.view(), it->second, c, n);
}
// n elements are about to be popped from the head (front) or the tail of the list at it.
inline void save_list_pop(State& s, KeyIter it, bool front, size_t n) {
  if (kHookListPops) save_list(s, it, front ? ListChange::kEraseFront : ListChange::kEraseBack, n);
}

// A big value is buried (freed over the next commands, kv.h: Graveyard), not destroyed here.
// A snapshot running takes the value first if it still needs it (moved, not copied).
void erase_key(State& s, KeyIter it) {
  if (kKeepOnDelete && s.saving) [[unlikely]] s.saving->before_delete(it.hash(), it->first.view(), it->second);
  clear_deadline(s, it->first);
  s.graveyard.bury_if_big(it->second);
  s.keys.erase(it);
}

// Redis' keyspace notifications (docs/subscriptions.md): what a command did to a key, with
// Redis' event names and classes. The engine renders them if the node's
// notify-keyspace-events asks for them.
void notify(const ApplyContext& ctx, uint32_t type, std::string_view event, std::string_view key) {
  ctx.keyspace_event(type, event, key);
}

// The live entry for key in apply(): an expired key is deleted here, deterministically,
// because every node applies the same command with the same ctx.now_ms ("expired", as Redis
// notifies a key it finds expired on access).
// h is the key's hash (KeyTable<Value>::hash_of(key)): a command that may insert the key
// afterwards passes it to try_emplace_hashed too, so the key is hashed once (XXH3 of a
// 20-byte key: ~40 instructions of a ~3,000-instruction pipelined INCR or SET).
// The caller may change the key (or create it) afterwards: a snapshot running keeps it first
// (save_touch); live_find's caller only reads or deletes it (erase_key keeps it then).
template <bool kTouch>
KeyIter live_lookup_hashed(State& s, std::string_view key, uint64_t h, const ApplyContext& ctx) {
  free_some(s, ctx);
  auto it = s.keys.find_hashed(key, h);
  if (it != s.keys.end() && expired(s, key, ctx.now_ms)) {
    erase_key(s, it);
    notify(ctx, keyspace::kExpired, "expired", key);
    it = s.keys.end();
  }
  if constexpr (kTouch) save_touch(s, key, h);
  return it;
}
KeyIter live_write_hashed(State& s, std::string_view key, uint64_t h, const ApplyContext& ctx) {
  return live_lookup_hashed<true>(s, key, h, ctx);
}
// For a key the command only deletes (DEL, UNLINK, GETDEL) or only reads (COPY's source, a
// STORE's inputs), besides an expired one deleted here: a snapshot running keeps nothing of
// it, or takes the deleted value itself (erase_key) instead of an encoding of it.
KeyIter live_find(State& s, std::string_view key, const ApplyContext& ctx) {
  return live_lookup_hashed<false>(s, key, KeyTable<Value>::hash_of(key), ctx);
}
KeyIter live_write(State& s, std::string_view key, const ApplyContext& ctx) {
  return live_write_hashed(s, key, KeyTable<Value>::hash_of(key), ctx);
}

// The live value for key in a query (which must not modify the state).
const Value* live_read(const State& s, std::string_view key, uint64_t now_ms) {
  auto it = s.keys.find(key);
  if (it == s.keys.end() || expired(s, key, now_ms)) return nullptr;
  return &it->second;
}

// Hashes, lists and sets are held in the Value itself, sorted sets behind a pointer.
template <class T>
constexpr bool kInPlace = std::is_same_v<T, Hash> || std::is_same_v<T, List> || std::is_same_v<T, Set>;

// The container of type T in v, or null if v holds another type. A pointer to an in-place
// container lives in the key table's node: it is valid until that key is erased (nodes
// never move, key_table.h).
template <class T>
T* boxed(Value& v) {
  if constexpr (kInPlace<T>) {
    return std::get_if<T>(&v);
  } else {
    auto* p = std::get_if<std::unique_ptr<T>>(&v);
    return p ? p->get() : nullptr;
  }
}
template <class T>
const T* boxed(const Value& v) {
  return boxed<T>(const_cast<Value&>(v));
}

// A pop's reply when it would change nothing (hmdb/app.h, Options::unchanged_reply): the node
// may then answer it without logging it (docs/kv-commands.md, "Pops that find nothing"). True,
// with kMissing's reply, if the key is absent, and with -WRONGTYPE if it holds a live value of
// another type: the pop's apply then changes nothing, emits nothing, reports no key, as in
// Redis (no change, notification, WATCH signal or propagation). False for a key that is there
// but expired, which the apply deletes (notifying "expired"), and for one of type T (the pop
// pops, or in doubt). kMissing is the same function the pop's apply answers a missing key with.
template <class T, class Pop, void (*kMissing)(const Pop&, Reply&)>
bool pop_unchanged(const State& s, const Pop& a, const QueryContext& ctx, Reply& r) {
  const auto it = s.keys.find(a.key);
  if (it == s.keys.end()) {
    kMissing(a, r);
    return true;
  }
  if (expired(s, a.key, ctx.now_ms) || boxed<T>(it->second)) return false;
  r.error(kWrongType);
  return true;
}

// Looks up key for a write on a container of type T. Returns false (and replies
// WRONGTYPE) if the key holds another type; *out is null if the key is absent.
template <class T>
bool container_for_write(State& s, std::string_view key, const ApplyContext& ctx, Reply& r, KeyIter* it, T** out) {
  *it = live_write(s, key, ctx);
  *out = nullptr;
  if (*it == s.keys.end()) return true;
  *out = boxed<T>((*it)->second);
  if (!*out) { r.error(kWrongType); return false; }
  return true;
}
template <class T>
bool container_for_read(const State& s, std::string_view key, uint64_t now_ms, Reply& r, const T** out) {
  const Value* v = live_read(s, key, now_ms);
  *out = nullptr;
  if (!v) return true;
  *out = boxed<T>(*v);
  if (!*out) { r.error(kWrongType); return false; }
  return true;
}

template <class T>
T* create(State& s, std::string_view key, KeyIter* it) {
  auto [pos, inserted] = s.keys.try_emplace(key);
  assert(inserted);
  (void)inserted;
  *it = pos;
  if constexpr (kInPlace<T>) {
    return &pos->second.emplace<T>();
  } else {
    return pos->second.emplace<std::unique_ptr<T>>(std::make_unique<T>()).get();
  }
}

// Like container_for_write followed by create<T> if the key is absent, in one probe of the
// key table instead of a find and an insert (the table is large and probed at random, so
// the second probe is measurable on HSET/LPUSH of new keys). For in-place containers
// only: creating one cannot fail, so no half-made key is left behind.
template <class T>
bool container_for_create(State& s, std::string_view key, const ApplyContext& ctx, Reply& r, KeyIter* it, T** out) {
  static_assert(kInPlace<T>);
  free_some(s, ctx);
  if constexpr (kTouchOnCreate) save_touch(s, key, KeyTable<Value>::hash_of(key));
  auto [pos, inserted] = s.keys.try_emplace(key);  // an empty std::string: no allocation
  if (!inserted && expired(s, key, ctx.now_ms)) {
    erase_key(s, pos);
    notify(ctx, keyspace::kExpired, "expired", key);
    pos = s.keys.try_emplace(key).first;
    inserted = true;
  }
  *it = pos;
  if (inserted) {
    *out = &pos->second.emplace<T>();
    return true;
  }
  *out = boxed<T>(pos->second);
  if (!*out) { r.error(kWrongType); return false; }
  return true;
}

// Containers are never stored empty: a command that empties one deletes the key.
template <class T>
void erase_if_empty(State& s, KeyIter it, const T* c) {
  if (c->empty()) erase_key(s, it);
}
// The same after a command emptied it: Redis notifies "del" (after the command's own event).
template <class T>
void erase_if_emptied(State& s, KeyIter it, const T* c, std::string_view key, const ApplyContext& ctx) {
  if (!c->empty()) return;
  erase_key(s, it);
  notify(ctx, keyspace::kGeneric, "del", key);
}

// ---- numbers -------------------------------------------------------------------------------

// Redis' float syntax (string2d: strtod's, the whole value, no leading space, no NaN, no
// overflow to infinity; "inf" itself is accepted). from_chars reads the usual decimal forms
// fast; what it refuses (hex "0x10", "+1", subnormals, errors) is decided by strtod as Redis.
// Digits (after an optional '-') that parse_double reads without from_chars: up to 15 are
// below 2^53, so the double is exact, as from_chars would give it.
constexpr size_t kExactIntegerDigitsMax = 15;

bool parse_double(std::string_view s, double* out) {
  if (s.empty()) return false;
  // An integer (redis-benchmark's and most clients' scores) is read here, not by from_chars:
  // 234 instead of 300 instructions for a 12-digit score (callgrind), twice per ZADD score
  // (its check and its apply).
  const size_t sign = s[0] == '-' ? 1 : 0;
  if (s.size() > sign && s.size() - sign <= kExactIntegerDigitsMax) {
    uint64_t n = 0;
    size_t i = sign;
    for (; i < s.size() && static_cast<unsigned>(s[i] - '0') < 10; i++) n = n * 10 + static_cast<unsigned>(s[i] - '0');
    if (i == s.size()) {
      const double d = static_cast<double>(n);
      *out = sign ? -d : d;  // "-0" is -0.0, as from_chars reads it
      return true;
    }
  }
  double v = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec == std::errc() && res.ptr == s.data() + s.size()) {
    if (std::isnan(v)) return false;
    *out = v;
    return true;
  }
  if (std::isspace(static_cast<unsigned char>(s[0]))) return false;
  const std::string text(s);
  char* end = nullptr;
  errno = 0;
  v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || std::isnan(v) ||
      (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL || std::fpclassify(v) == FP_ZERO))) {
    return false;
  }
  *out = v;
  return true;
}

// A score as Redis 7.2 writes it in a bulk string: "inf", "-inf", or the shortest text that
// reads back as the same double (Reply::double_value's RESP2 form). buf: 40 bytes.
std::string_view score_text(double d, char* buf) {
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  auto res = std::to_chars(buf, buf + 40, d);
  return std::string_view(buf, static_cast<size_t>(res.ptr - buf));
}

template <class Str>  // std::string or String
void assign_int(Str& out, int64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.assign(buf, static_cast<size_t>(res.ptr - buf));
}

// A count argument of LPOP/RPOP/SPOP/ZPOPMIN: an integer >= 0.
bool parse_count(std::string_view s, int64_t* out, std::string& err) {
  if (!parse_int64(s, out) || *out < 0 || *out > kPopCountMax) { err = kMustBePositive; return false; }
  return true;
}

// Redis' LRANGE/ZRANGE index rules: negative counts from the end, out of range clamps.
// Returns false if the range is empty; else [*first, *last] is inside [0, size).
bool clamp_range(int64_t start, int64_t stop, size_t size, size_t* first, size_t* last) {
  int64_t n = static_cast<int64_t>(size);
  if (start < 0) start += n;
  if (stop < 0) stop += n;
  if (start < 0) start = 0;
  if (start > stop || start >= n) return false;
  if (stop >= n) stop = n - 1;
  *first = static_cast<size_t>(start);
  *last = static_cast<size_t>(stop);
  return true;
}

// ---- random choices in queries ---------------------------------------------------------------

// HRANDFIELD, SRANDMEMBER and ZRANDMEMBER are queries: not logged, with no random source but
// the serving node's clock. Their draws are XXH3 seeded by (QueryContext::now_ms, key): nodes
// with the same state answer the same in the same millisecond, and a client asking twice in
// one millisecond gets the same answer (docs/kv-commands.md).
uint64_t query_seed(const QueryContext& ctx, std::string_view key) {
  const uint64_t words[2] = {ctx.now_ms, XXH3_64bits(key.data(), key.size())};
  return XXH3_64bits_withSeed(words, sizeof words, kSetHashSeed);
}
uint64_t draw(uint64_t seed, uint64_t i) { return XXH3_64bits_withSeed(&i, sizeof i, seed); }

// The j-th pick of a negative count (with repetition): a position in [0, n).
size_t repeat_pick(size_t n, uint64_t seed, uint64_t j) { return static_cast<size_t>(draw(seed ^ 0x9e3779b97f4a7c15ULL, j) % n); }

// How many elements a random read of a container of n (> 0) replies: 1 without a count,
// |count| (saturated) with a negative one, min(count, n) with a positive one.
size_t pick_count(size_t n, int64_t count, bool has_count) {
  if (!has_count) return 1;
  if (count < 0) return static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(-(count + 1)) + 1, SIZE_MAX));
  return static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(count), n));
}

// A step of a distinct pick's heap (an element drawn and kept or dropped, or the smallest
// taken out) counts as this many elements of a slice: ~20 comparisons with cache misses over
// a heap of millions, against ~0.3 us an element written.
constexpr size_t kHeapPickWork = 4;

// Redis' positive count: k distinct positions of [0, n) (k <= n), a uniform subset in random
// order, chosen a bounded amount of work at a time, so that RandomPicksProducer spreads the
// choice over loop turns as it does the writing. Up to n / 4 picks: draws, the repeats
// skipped (O(k) expected: at most 4/3 of a draw per pick on average, like Redis' case 4 in
// SRANDMEMBER); above: the k smallest of the n draws (draw(seed, i), i), kept in a max-heap
// of k as i goes from 0 to n, then taken out largest last (O(n log k), the heap sort
// std::partial_sort does, in steps). The pairs are distinct, so the picks are those of a
// partial sort of all n draws, in its order.
class DistinctPicks {
 public:
  DistinctPicks(size_t n, size_t k, uint64_t seed) : n_(n), k_(k), seed_(seed), by_heap_(k > n / 4) {
    if (by_heap_) heap_.reserve(k);
    else {
      taken_.reserve(k);
      out_.reserve(k);
    }
  }

  // Goes on until done (true) or until `work` reaches `budget` (false: call again).
  bool step(size_t& work, size_t budget) {
    if (!by_heap_) {
      for (; out_.size() < k_; j_++) {
        if (work >= budget) return false;
        work++;
        const size_t i = static_cast<size_t>(draw(seed_, j_) % n_);
        if (taken_.insert(i).second) out_.push_back(i);
      }
      return true;
    }
    for (; i_ < n_; i_++) {
      if (work >= budget) return false;
      work += kHeapPickWork;
      const std::pair<uint64_t, size_t> d{draw(seed_, i_), i_};
      if (heap_.size() < k_) {
        heap_.push_back(d);
        std::push_heap(heap_.begin(), heap_.end());
      } else if (k_ > 0 && d < heap_.front()) {
        std::pop_heap(heap_.begin(), heap_.end());
        heap_.back() = d;
        std::push_heap(heap_.begin(), heap_.end());
      }
    }
    // The largest to the end, one at a time: ascending in the end (std::sort_heap's steps).
    if (unsorted_ == SIZE_MAX) unsorted_ = heap_.size();
    for (; unsorted_ > 1; unsorted_--) {
      if (work >= budget) return false;
      work += kHeapPickWork;
      std::pop_heap(heap_.begin(), heap_.begin() + static_cast<ptrdiff_t>(unsorted_));
    }
    if (out_.empty() && k_ > 0) {
      out_.reserve(k_);
      for (const auto& d : heap_) out_.push_back(d.second);
      std::vector<std::pair<uint64_t, size_t>>().swap(heap_);
    }
    return true;
  }
  std::vector<size_t> take() { return std::move(out_); }

 private:
  const size_t n_, k_;
  const uint64_t seed_;
  const bool by_heap_;
  absl::flat_hash_set<size_t> taken_;            // draws: the positions picked
  uint64_t j_ = 0;                               // draws: the next draw
  std::vector<std::pair<uint64_t, size_t>> heap_;  // heap: the k smallest (draw, i) so far
  size_t i_ = 0;                                 // heap: the next position drawn
  size_t unsorted_ = SIZE_MAX;                   // heap: its unsorted prefix, once all are drawn
  std::vector<size_t> out_;
};

// Positions in [0, n) for Redis' count rule: count > 0 picks min(count, n) distinct ones
// (DistinctPicks, all at once), count < 0 picks |count| with repetition. REQUIRES: n > 0.
// ZRANDMEMBER of a set of millions costs its count, not the set, up to n / 4 picks.
std::vector<size_t> random_picks(size_t n, int64_t count, uint64_t seed) {
  if (count < 0) {
    std::vector<size_t> out;
    const uint64_t k = static_cast<uint64_t>(-(count + 1)) + 1;  // |count| without overflow
    out.reserve(static_cast<size_t>(std::min<uint64_t>(k, 1u << 20)));
    for (uint64_t j = 0; j < k; j++) out.push_back(repeat_pick(n, seed, j));
    return out;
  }
  DistinctPicks picks(n, static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(count), n)), seed);
  size_t work = 0;
  picks.step(work, SIZE_MAX);
  return picks.take();
}

// The count argument of HRANDFIELD/SRANDMEMBER/ZRANDMEMBER (Redis: -LONG_MAX..LONG_MAX).
bool parse_random_count(std::string_view s, int64_t* out, Reply& r) {
  if (!parse_int64(s, out)) { r.error(kNotInteger); return false; }
  if (*out == std::numeric_limits<int64_t>::min()) {
    r.error("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807");
    return false;
  }
  return true;
}

// With WITHVALUES/WITHSCORES the reply holds 2|count| elements: Redis (7.0.8 on) refuses a count
// past +-LONG_MAX/2, before it looks at the key. Without this a negative count there asked kv
// for ~10^19 picks: one query took the node's memory until it was killed.
bool pairs_count_in_range(int64_t count, Reply& r) {
  constexpr int64_t kHalf = std::numeric_limits<int64_t>::max() / 2;
  if (count >= -kHalf && count <= kHalf) return true;
  r.error("ERR value is out of range");
  return false;
}

// A pick by rank (ZRANDMEMBER's) counts as this many elements of a slice: it descends the
// order's levels, ~2 us over a million entries when the order was a skip list, against ~0.3
// us an element written (bench/big_compute_bench.py), so that a slice stays a few ms; with
// the B+tree (zorder.h) a slice of ZRANDMEMBER z -3000000 took at most 3 ms.
constexpr size_t kRankPickWork = 4;

// SRANDMEMBER / HRANDFIELD / ZRANDMEMBER's reply in slices (hmdb::ReplyProducer: nothing is
// applied meanwhile, so the container stays as it is): the same picks in the same order as
// made whole. A set's or a hash's elements are listed first (picks are positions in its
// order, as the whole path does), a slice's worth a turn; a sorted set needs no list (a
// rank is O(log n)). Then the picks are written a slice at a time: a negative count's drawn
// one by one (repeat_pick); a positive count's chosen a slice of work at a time first
// (DistinctPicks: O(count), or O(n log count) above n / 4), then written in slices.
template <class C>  // Set, Hash or ZSet
class RandomPicksProducer final : public ReplyProducer {
 public:
  RandomPicksProducer(const C& c, int64_t count, bool has_count, bool with_values, uint64_t seed)
      : c_(c), count_(count), has_count_(has_count), with_values_(with_values), seed_(seed) {}

  bool next(Reply& r, const SliceBudget& budget) override {
    size_t work = 0;
    if constexpr (!std::is_same_v<C, ZSet>) {
      if (!listed_) {
        if (all_.empty()) all_.reserve(c_.size());
        const size_t before = all_.size();
        if constexpr (std::is_same_v<C, Set>) {
          listed_ = c_.for_each_some(cursor_, budget.elements, [&](std::string_view m) { all_.push_back(m); });
        } else {
          listed_ = c_.for_each_some(cursor_, budget.elements,
                                     [&](std::string_view f, const std::string& v) { all_.emplace_back(f, &v); });
        }
        if (!listed_) return false;
        work = all_.size() - before;
      }
    }
    const size_t n = size();
    if (!has_count_) {
      write(r, random_picks(n, 1, seed_)[0], false);
      return true;
    }
    const bool pairs = with_values_ && r.resp3();
    if (!started_) {
      if (count_ > 0) {
        if (!picker_) picker_.emplace(n, pick_count(n, count_, true), seed_);
        if (!picker_->step(work, budget.elements)) return false;
        picks_ = picker_->take();
        picker_.reset();
      }
      started_ = true;
      total_ = pick_count(n, count_, true);
      r.array(with_values_ && !pairs ? 2 * total_ : total_);
    }
    const size_t start = r.size();
    for (; next_ < total_; next_++) {
      if (work >= budget.elements || r.size() - start >= budget.bytes) return false;
      work += std::is_same_v<C, ZSet> ? kRankPickWork : 1;
      write(r, count_ > 0 ? picks_[next_] : repeat_pick(n, seed_, next_), pairs);
    }
    return true;
  }

 private:
  size_t size() const {
    if constexpr (std::is_same_v<C, ZSet>) return c_.order.size();
    else return c_.size();
  }
  void write(Reply& r, size_t i, bool pairs) const {
    if (pairs) r.array(2);
    if constexpr (std::is_same_v<C, ZSet>) {
      const ZEntry& e = *c_.order.at(i);
      r.bulk(e.member);
      if (with_values_) r.double_value(e.score);
    } else if constexpr (std::is_same_v<C, Set>) {
      r.bulk(all_[i]);
    } else {
      r.bulk(all_[i].first);
      if (with_values_) r.bulk(*all_[i].second);
    }
  }

  using Listed = std::conditional_t<std::is_same_v<C, Set>, std::string_view, std::pair<std::string_view, const std::string*>>;
  const C& c_;
  const int64_t count_;
  const bool has_count_, with_values_;
  const uint64_t seed_;
  std::vector<Listed> all_;  // Set, Hash: the elements in the container's order
  typename std::conditional_t<std::is_same_v<C, ZSet>, Set, C>::Cursor cursor_;
  bool listed_ = false;
  bool started_ = false;
  std::optional<DistinctPicks> picker_;  // a positive count's, while it chooses
  std::vector<size_t> picks_;            // a positive count's
  size_t total_ = 0, next_ = 0;
};

// ---- typed arguments shared by many commands ------------------------------------------------

// The whole argv (for commands whose arguments are plain keys/values, checked by arity).
struct Words {
  Args argv;
};
bool parse_words(Args a, Words& o, std::string&) {
  o.argv = a;
  return true;
}
// argc must be odd (name + key + pairs, or name + pairs of key/value).
bool parse_pairs_after_name(Args a, Words& o, std::string& err) {
  if (a.size() % 2 != 1) { err = wrong_arity_error(a[0]); return false; }
  o.argv = a;
  return true;
}
bool parse_pairs_after_key(Args a, Words& o, std::string& err) {
  if (a.size() % 2 != 0) { err = wrong_arity_error(a[0]); return false; }
  o.argv = a;
  return true;
}

struct KeyArg {
  std::string_view key;
};
bool parse_key(Args a, KeyArg& o, std::string&) {
  o.key = a[1];
  return true;
}

struct KeyValue {
  std::string_view key, value;
};
bool parse_key_value(Args a, KeyValue& o, std::string&) {
  o.key = a[1];
  o.value = a[2];
  return true;
}

// KEY [count]
struct PopArgs {
  std::string_view key;
  bool has_count = false;
  int64_t count = 1;
};
bool parse_pop(Args a, PopArgs& o, std::string& err) {
  o.key = a[1];
  if (a.size() == 3) {
    o.has_count = true;
    return parse_count(a[2], &o.count, err);
  }
  return true;
}
// SPOP and ZPOPMIN answer extra words with a syntax error, as Redis does.
bool parse_pop_syntax(Args a, PopArgs& o, std::string& err) {
  if (a.size() > 3) { err = kSyntax; return false; }
  return parse_pop(a, o, err);
}

// =============================================================================================
// strings
// =============================================================================================

struct SetArgs {
  enum class Cond : uint8_t { kAlways, kIfAbsent, kIfPresent };
  enum class Ttl : uint8_t { kClear, kKeep, kRelativeMs, kAbsoluteMs };
  std::string_view key, value;
  Cond cond = Cond::kAlways;
  bool get = false;
  Ttl ttl = Ttl::kClear;
  int64_t ttl_ms = 0;
  bool reply_integer = false;        // SETNX: 1 if set, 0 if not (instead of OK / nil)
  std::string_view command = "set";  // for error texts (SETEX, PSETEX)
};

bool parse_set(Args a, SetArgs& o, std::string& err) {
  o.key = a[1];
  o.value = a[2];
  // Like Redis: options are checked first (syntax), the expire number after.
  enum class Unit : uint8_t { kNone, kEx, kPx, kExAt, kPxAt } unit = Unit::kNone;
  std::string_view expire_word;
  bool keep_ttl = false;
  for (size_t i = 3; i < a.size(); i++) {
    std::string_view opt = a[i];
    bool has_next = i + 1 < a.size();
    auto unit_ok = [&](Unit u) { return !keep_ttl && (unit == Unit::kNone || unit == u) && has_next; };
    if (iequals(opt, "NX") && o.cond != SetArgs::Cond::kIfPresent) {
      o.cond = SetArgs::Cond::kIfAbsent;
    } else if (iequals(opt, "XX") && o.cond != SetArgs::Cond::kIfAbsent) {
      o.cond = SetArgs::Cond::kIfPresent;
    } else if (iequals(opt, "GET")) {
      o.get = true;
    } else if (iequals(opt, "KEEPTTL") && unit == Unit::kNone) {
      keep_ttl = true;
    } else if (iequals(opt, "EX") && unit_ok(Unit::kEx)) {
      unit = Unit::kEx;
      expire_word = a[++i];
    } else if (iequals(opt, "PX") && unit_ok(Unit::kPx)) {
      unit = Unit::kPx;
      expire_word = a[++i];
    } else if (iequals(opt, "EXAT") && unit_ok(Unit::kExAt)) {
      unit = Unit::kExAt;
      expire_word = a[++i];
    } else if (iequals(opt, "PXAT") && unit_ok(Unit::kPxAt)) {
      unit = Unit::kPxAt;
      expire_word = a[++i];
    } else {
      err = kSyntax;
      return false;
    }
  }
  if (keep_ttl) o.ttl = SetArgs::Ttl::kKeep;
  if (unit == Unit::kNone) return true;
  int64_t v = 0;
  if (!parse_int64(expire_word, &v)) { err = kNotInteger; return false; }
  bool seconds = unit == Unit::kEx || unit == Unit::kExAt;
  if (v <= 0 || (seconds && v > std::numeric_limits<int64_t>::max() / 1000)) {
    err = "ERR invalid expire time in 'set' command";
    return false;
  }
  o.ttl_ms = seconds ? v * 1000 : v;
  o.ttl = (unit == Unit::kEx || unit == Unit::kPx) ? SetArgs::Ttl::kRelativeMs : SetArgs::Ttl::kAbsoluteMs;
  return true;
}

void apply_set(State& s, const SetArgs& a, const ApplyContext& ctx, Reply& r) {
  uint64_t deadline = 0;
  if (a.ttl == SetArgs::Ttl::kRelativeMs) {
    if (static_cast<uint64_t>(a.ttl_ms) > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - ctx.now_ms) {
      r.error("ERR invalid expire time in '" + lowercase(a.command) + "' command");
      return;
    }
    deadline = ctx.now_ms + static_cast<uint64_t>(a.ttl_ms);
  } else if (a.ttl == SetArgs::Ttl::kAbsoluteMs) {
    deadline = static_cast<uint64_t>(a.ttl_ms);
  }
  const uint64_t h = KeyTable<Value>::hash_of(a.key);
  KeyIter it = live_write_hashed(s, a.key, h, ctx);
  bool found = it != s.keys.end();
  String* old = found ? std::get_if<String>(&it->second) : nullptr;
  if (a.get && found && !old) { r.error(kWrongType); return; }
  if ((a.cond == SetArgs::Cond::kIfAbsent && found) || (a.cond == SetArgs::Cond::kIfPresent && !found)) {
    if (a.reply_integer) r.integer(0);
    else if (a.get && old) r.bulk(*old);
    else r.null();
    return;
  }
  if (a.get) { if (old) r.bulk(*old); else r.null(); }
  if (old) {
    old->assign(a.value.data(), a.value.size());  // reuses the old buffer when it fits
  } else if (found) {
    save_replace(s, it);
    s.graveyard.bury_if_big(it->second);
    it->second.emplace<String>(a.value);
  } else {
    it = s.keys.try_emplace_hashed(a.key, h, std::in_place_index<0>, a.value).first;
  }
  notify(ctx, keyspace::kString, "set", a.key);
  switch (a.ttl) {
    case SetArgs::Ttl::kClear: clear_deadline(s, a.key); break;
    case SetArgs::Ttl::kKeep: break;
    case SetArgs::Ttl::kRelativeMs:
    case SetArgs::Ttl::kAbsoluteMs:
      if (deadline <= ctx.now_ms) {  // already in the past (EXAT/PXAT)
        erase_key(s, it);
        notify(ctx, keyspace::kGeneric, "del", a.key);
      } else {
        set_deadline(s, a.key, deadline);
        notify(ctx, keyspace::kGeneric, "expire", a.key);
      }
      break;
  }
  if (a.reply_integer) r.integer(1);
  else if (!a.get) r.ok();
}

// SETNX key value: SET key value NX, answering 1 or 0.
bool parse_setnx(Args a, SetArgs& o, std::string&) {
  o.key = a[1];
  o.value = a[2];
  o.cond = SetArgs::Cond::kIfAbsent;
  o.ttl = SetArgs::Ttl::kKeep;  // the key is new if set: nothing to keep
  o.reply_integer = true;
  return true;
}
// SETEX key seconds value, PSETEX key milliseconds value: SET key value EX/PX n.
template <bool kSeconds>
bool parse_setex(Args a, SetArgs& o, std::string& err) {
  o.key = a[1];
  o.value = a[3];
  o.command = a[0];
  int64_t v = 0;
  if (!parse_int64(a[2], &v)) { err = kNotInteger; return false; }
  if (v <= 0 || (kSeconds && v > std::numeric_limits<int64_t>::max() / 1000)) {
    err = "ERR invalid expire time in '" + lowercase(a[0]) + "' command";
    return false;
  }
  o.ttl = SetArgs::Ttl::kRelativeMs;
  o.ttl_ms = kSeconds ? v * 1000 : v;
  return true;
}
// GETSET key value: SET key value GET.
bool parse_getset(Args a, SetArgs& o, std::string&) {
  o.key = a[1];
  o.value = a[2];
  o.get = true;
  return true;
}

void query_get(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Value* v = live_read(s, a[1], ctx.now_ms);
  if (!v) { r.null(); return; }
  const auto* str = std::get_if<String>(v);
  if (!str) { r.error(kWrongType); return; }
  r.bulk(*str);
}

void apply_del(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  int64_t n = 0;
  for (size_t i = 1; i < a.argv.size(); i++) {
    KeyIter it = live_find(s, a.argv[i], ctx);
    if (it == s.keys.end()) continue;
    erase_key(s, it);
    notify(ctx, keyspace::kGeneric, "del", a.argv[i]);
    n++;
  }
  r.integer(n);
}

void query_exists(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  int64_t n = 0;
  for (size_t i = 1; i < a.size(); i++) n += live_read(s, a[i], ctx.now_ms) ? 1 : 0;
  r.integer(n);
}

struct IncrArgs {
  std::string_view key;
  int64_t delta = 0;
};
bool parse_incr(Args a, IncrArgs& o, std::string&) { o.key = a[1]; o.delta = 1; return true; }
bool parse_decr(Args a, IncrArgs& o, std::string&) { o.key = a[1]; o.delta = -1; return true; }
bool parse_incrby(Args a, IncrArgs& o, std::string& err) {
  o.key = a[1];
  if (!parse_int64(a[2], &o.delta)) { err = kNotInteger; return false; }
  return true;
}
bool parse_decrby(Args a, IncrArgs& o, std::string& err) {
  o.key = a[1];
  int64_t v = 0;
  if (!parse_int64(a[2], &v)) { err = kNotInteger; return false; }
  if (v == std::numeric_limits<int64_t>::min()) { err = "ERR decrement would overflow"; return false; }
  o.delta = -v;
  return true;
}

// INCR and friends keep the key's deadline, as in Redis.
void apply_incr(State& s, const IncrArgs& a, const ApplyContext& ctx, Reply& r) {
  const uint64_t h = KeyTable<Value>::hash_of(a.key);
  KeyIter it = live_write_hashed(s, a.key, h, ctx);
  if (it == s.keys.end()) {
    std::string text;
    assign_int(text, a.delta);
    s.keys.try_emplace_hashed(a.key, h, std::in_place_index<0>, std::move(text));
    notify(ctx, keyspace::kString, "incrby", a.key);
    r.integer(a.delta);
    return;
  }
  auto* str = std::get_if<String>(&it->second);
  if (!str) { r.error(kWrongType); return; }
  int64_t v = 0;
  if (!parse_int64(*str, &v)) { r.error(kNotInteger); return; }
  int64_t result = 0;
  if (__builtin_add_overflow(v, a.delta, &result)) { r.error(kOverflow); return; }
  assign_int(*str, result);
  notify(ctx, keyspace::kString, "incrby", a.key);
  r.integer(result);
}

void apply_append(State& s, const KeyValue& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it = live_write(s, a.key, ctx);
  if (it == s.keys.end()) {
    if (a.value.size() > kStringBytesMax) { r.error(kStringTooLong); return; }
    s.keys.try_emplace(a.key, std::in_place_index<0>, a.value);
    notify(ctx, keyspace::kString, "append", a.key);
    r.integer(static_cast<int64_t>(a.value.size()));
    return;
  }
  auto* str = std::get_if<String>(&it->second);
  if (!str) { r.error(kWrongType); return; }
  if (str->size() + a.value.size() > kStringBytesMax) { r.error(kStringTooLong); return; }
  str->append(a.value.data(), a.value.size());
  notify(ctx, keyspace::kString, "append", a.key);
  r.integer(static_cast<int64_t>(str->size()));
}

void query_strlen(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Value* v = live_read(s, a[1], ctx.now_ms);
  if (!v) { r.integer(0); return; }
  const auto* str = std::get_if<String>(v);
  if (!str) { r.error(kWrongType); return; }
  r.integer(static_cast<int64_t>(str->size()));
}

// MGET answers nil for keys of another type (no error), as Redis does.
void query_mget(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  r.array(a.size() - 1);
  for (size_t i = 1; i < a.size(); i++) {
    const Value* v = live_read(s, a[i], ctx.now_ms);
    const auto* str = v ? std::get_if<String>(v) : nullptr;
    if (str) r.bulk(*str); else r.null();
  }
}

// MSET replaces values of any type and clears their deadlines.
void apply_mset_pairs(State& s, const Words& a, const ApplyContext& ctx) {
  for (size_t i = 1; i + 1 < a.argv.size(); i += 2) {
    std::string_view key = a.argv[i], value = a.argv[i + 1];
    const uint64_t h = KeyTable<Value>::hash_of(key);
    save_touch(s, key, h);
    auto [it, inserted] = s.keys.try_emplace_hashed(key, h, std::in_place_index<0>, value);
    if (!inserted) {
      if (auto* str = std::get_if<String>(&it->second)) str->assign(value.data(), value.size());
      else {
        save_replace(s, it);
        s.graveyard.bury_if_big(it->second);
        it->second.emplace<String>(value);
      }
      clear_deadline(s, key);
    }
    notify(ctx, keyspace::kString, "set", key);
  }
}
void apply_mset(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  apply_mset_pairs(s, a, ctx);
  r.ok();
}

// MSETNX key value [key value ...]: sets them all only if none exists; 1 or 0.
void apply_msetnx(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  for (size_t i = 1; i + 1 < a.argv.size(); i += 2) {
    if (live_write(s, a.argv[i], ctx) != s.keys.end()) { r.integer(0); return; }
  }
  apply_mset_pairs(s, a, ctx);
  r.integer(1);
}

void apply_getdel(State& s, const KeyArg& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it = live_find(s, a.key, ctx);
  if (it == s.keys.end()) { r.null(); return; }
  auto* str = std::get_if<String>(&it->second);
  if (!str) { r.error(kWrongType); return; }
  r.bulk(*str);
  erase_key(s, it);
  notify(ctx, keyspace::kGeneric, "del", a.key);
}

// GETEX key [EX s | PX ms | EXAT unix-s | PXAT unix-ms | PERSIST]. The options are checked
// when parsed, the number when applied, after the key's lookup and type, as Redis does.
struct GetExArgs {
  enum class Op : uint8_t { kNone, kEx, kPx, kExAt, kPxAt, kPersist };
  std::string_view key;
  Op op = Op::kNone;
  std::string_view when;
};
bool parse_getex(Args a, GetExArgs& o, std::string& err) {
  o.key = a[1];
  for (size_t i = 2; i < a.size(); i++) {
    const bool has_next = i + 1 < a.size();
    GetExArgs::Op op = GetExArgs::Op::kNone;
    if (iequals(a[i], "EX") && has_next) op = GetExArgs::Op::kEx;
    else if (iequals(a[i], "PX") && has_next) op = GetExArgs::Op::kPx;
    else if (iequals(a[i], "EXAT") && has_next) op = GetExArgs::Op::kExAt;
    else if (iequals(a[i], "PXAT") && has_next) op = GetExArgs::Op::kPxAt;
    else if (iequals(a[i], "PERSIST")) op = GetExArgs::Op::kPersist;
    // Redis: one option, though the same one may be repeated (the last value wins).
    if (op == GetExArgs::Op::kNone || (o.op != GetExArgs::Op::kNone && o.op != op)) { err = kSyntax; return false; }
    o.op = op;
    if (op != GetExArgs::Op::kPersist) o.when = a[++i];
  }
  return true;
}
void apply_getex(State& s, const GetExArgs& a, const ApplyContext& ctx, Reply& r) {
  using Op = GetExArgs::Op;
  KeyIter it = live_write(s, a.key, ctx);
  if (it == s.keys.end()) { r.null(); return; }
  auto* str = std::get_if<String>(&it->second);
  if (!str) { r.error(kWrongType); return; }
  int64_t deadline = 0;
  if (a.op != Op::kNone && a.op != Op::kPersist) {
    int64_t v = 0;
    if (!parse_int64(a.when, &v)) { r.error(kNotInteger); return; }
    const bool seconds = a.op == Op::kEx || a.op == Op::kExAt;
    constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
    const int64_t now = static_cast<int64_t>(std::min<uint64_t>(ctx.now_ms, kMax));
    const bool relative = a.op == Op::kEx || a.op == Op::kPx;
    if (v <= 0 || (seconds && v > kMax / 1000) || (relative && (seconds ? v * 1000 : v) > kMax - now)) {
      r.error("ERR invalid expire time in 'getex' command");
      return;
    }
    deadline = (seconds ? v * 1000 : v) + (relative ? now : 0);
  }
  r.bulk(*str);
  if (a.op == Op::kPersist) {
    if (clear_deadline(s, a.key)) notify(ctx, keyspace::kGeneric, "persist", a.key);
  } else if (a.op != Op::kNone) {
    if (static_cast<uint64_t>(deadline) <= ctx.now_ms) {
      erase_key(s, it);
      notify(ctx, keyspace::kGeneric, "del", a.key);
    } else {
      set_deadline(s, a.key, static_cast<uint64_t>(deadline));
      notify(ctx, keyspace::kGeneric, "expire", a.key);
    }
  }
}

// GETRANGE key start end: Redis' rules, an empty string where they find no range.
void query_getrange(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  int64_t start = 0, end = 0;
  if (!parse_int64(a[2], &start) || !parse_int64(a[3], &end)) { r.error(kNotInteger); return; }
  const Value* v = live_read(s, a[1], ctx.now_ms);
  if (!v) { r.bulk(""); return; }
  const auto* str = std::get_if<String>(v);
  if (!str) { r.error(kWrongType); return; }
  const int64_t n = static_cast<int64_t>(str->size());
  if (start < 0 && end < 0 && start > end) { r.bulk(""); return; }
  if (start < 0) start = std::max<int64_t>(0, start + n);
  if (end < 0) end = std::max<int64_t>(0, end + n);
  if (end >= n) end = n - 1;
  if (n == 0 || start > end) { r.bulk(""); return; }
  r.bulk(std::string_view(*str).substr(static_cast<size_t>(start), static_cast<size_t>(end - start + 1)));
}

// SETRANGE key offset value: overwrites from offset, padding with zero bytes; the new length.
struct SetRangeArgs {
  std::string_view key, value;
  int64_t offset = 0;
};
bool parse_setrange(Args a, SetRangeArgs& o, std::string& err) {
  o.key = a[1];
  o.value = a[3];
  if (!parse_int64(a[2], &o.offset)) { err = kNotInteger; return false; }
  if (o.offset < 0) { err = "ERR offset is out of range"; return false; }
  return true;
}
void apply_setrange(State& s, const SetRangeArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it = live_write(s, a.key, ctx);
  String* str = nullptr;
  if (it != s.keys.end()) {
    str = std::get_if<String>(&it->second);
    if (!str) { r.error(kWrongType); return; }
  }
  if (a.value.empty()) { r.integer(str ? static_cast<int64_t>(str->size()) : 0); return; }
  if (static_cast<uint64_t>(a.offset) + a.value.size() > kStringBytesMax) { r.error(kStringTooLong); return; }
  if (!str) str = &std::get<String>(s.keys.try_emplace(a.key, std::in_place_index<0>).first->second);
  const size_t end = static_cast<size_t>(a.offset) + a.value.size();
  if (str->size() < end) str->resize(end, '\0');
  str->replace(static_cast<size_t>(a.offset), a.value.size(), a.value.data(), a.value.size());
  notify(ctx, keyspace::kString, "setrange", a.key);
  r.integer(static_cast<int64_t>(str->size()));
}

// Redis' long-double float syntax (string2ld: strtold, no leading space, nothing after, no
// NaN, no overflow to infinity; "inf" itself is accepted).
bool parse_long_double(std::string_view s, long double* out) {
  constexpr size_t kMaxLongDoubleChars = 5 * 1024;  // Redis' MAX_LONG_DOUBLE_CHARS
  if (s.empty() || s.size() >= kMaxLongDoubleChars) return false;
  const std::string text(s);
  char* end = nullptr;
  errno = 0;
  const long double v = std::strtold(text.c_str(), &end);
  // end must reach the text's end: strtold stops at a zero byte inside the value too.
  if (std::isspace(static_cast<unsigned char>(text[0])) || end != text.c_str() + text.size() || std::isnan(v) ||
      (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || v == 0))) {
    return false;
  }
  *out = v;
  return true;
}
// Redis' "human friendly" long double text (ld2string, LD_STR_HUMAN): %.17Lf without
// trailing zeros, "-0" as "0". REQUIRES: v is finite.
std::string format_long_double(long double v) {
  char buf[5 * 1024];
  int n = std::snprintf(buf, sizeof buf, "%.17Lf", v);
  if (n < 0 || static_cast<size_t>(n) >= sizeof buf) return "0";  // not reached for a finite long double
  size_t len = static_cast<size_t>(n);
  if (std::memchr(buf, '.', len)) {
    while (buf[len - 1] == '0') len--;
    if (buf[len - 1] == '.') len--;
  }
  if (len == 2 && buf[0] == '-' && buf[1] == '0') return "0";
  return std::string(buf, len);
}

struct FloatIncrArgs {
  std::string_view key, field;
  long double delta = 0;
  bool bad_delta = false;  // INCRBYFLOAT: the increment is not a float, answered after the type
};
// Redis' INCRBYFLOAT checks the key's type before the increment (INCRBYFLOAT list x is
// WRONGTYPE), so a bad increment is answered by the apply.
bool parse_incrbyfloat(Args a, FloatIncrArgs& o, std::string&) {
  o.key = a[1];
  o.bad_delta = !parse_long_double(a[2], &o.delta);
  return true;
}
constexpr std::string_view kNanOrInfinity = "ERR increment would produce NaN or Infinity";

// INCRBYFLOAT keeps the key's deadline, as INCRBY does.
void apply_incrbyfloat(State& s, const FloatIncrArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it = live_write(s, a.key, ctx);
  String* str = nullptr;
  long double v = 0;
  if (it != s.keys.end()) {
    str = std::get_if<String>(&it->second);
    if (!str) { r.error(kWrongType); return; }
    if (!parse_long_double(*str, &v)) { r.error(kNotFloat); return; }
  }
  if (a.bad_delta) { r.error(kNotFloat); return; }
  v += a.delta;
  if (std::isnan(v) || std::isinf(v)) { r.error(kNanOrInfinity); return; }
  std::string text = format_long_double(v);
  if (str) str->assign(text);
  else str = &std::get<String>(s.keys.try_emplace(a.key, std::in_place_index<0>, text).first->second);
  notify(ctx, keyspace::kString, "incrbyfloat", a.key);
  r.bulk(*str);
}

// =============================================================================================
// hashes
// =============================================================================================

// Returns the number of new fields.
int64_t hash_set_pairs(State& s, KeyIter it, Hash* h, Args argv) {
  if (kHookFields && s.saving) [[unlikely]]
    for (size_t i = 2; i + 1 < argv.size(); i += 2) save_hash_field(s, it, *h, argv[i]);
  int64_t added = 0;
  for (size_t i = 2; i + 1 < argv.size(); i += 2) added += h->set(argv[i], argv[i + 1]) ? 1 : 0;
  return added;
}

bool hash_for_write(State& s, std::string_view key, const ApplyContext& ctx, Reply& r, KeyIter* it, Hash** h) {
  return container_for_create<Hash>(s, key, ctx, r, it, h);
}

void apply_hset(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Hash* h;
  if (!hash_for_write(s, a.argv[1], ctx, r, &it, &h)) return;
  const int64_t added = hash_set_pairs(s, it, h, a.argv);
  notify(ctx, keyspace::kHash, "hset", a.argv[1]);
  r.integer(added);
}

void apply_hmset(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Hash* h;
  if (!hash_for_write(s, a.argv[1], ctx, r, &it, &h)) return;
  hash_set_pairs(s, it, h, a.argv);
  notify(ctx, keyspace::kHash, "hset", a.argv[1]);
  r.ok();
}

void query_hget(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  if (!h) { r.null(); return; }
  const std::string* value = h->find(a[2]);
  if (!value) r.null(); else r.bulk(*value);
}

void query_hexists(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  r.integer(h && h->find(a[2]) ? 1 : 0);
}

void apply_hdel(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Hash* h;
  if (!container_for_write<Hash>(s, a.argv[1], ctx, r, &it, &h)) return;
  if (!h) { r.integer(0); return; }
  int64_t n = 0;
  for (size_t i = 2; i < a.argv.size(); i++) {
    save_hash_field(s, it, *h, a.argv[i]);
    n += h->erase(a.argv[i]) ? 1 : 0;
  }
  if (n > 0) notify(ctx, keyspace::kHash, "hdel", a.argv[1]);
  erase_if_emptied(s, it, h, a.argv[1], ctx);
  r.integer(n);
}

// Fields in byte order (Redis leaves the order unspecified). A map (RESP2: flat array).
// HGETALL's (kWhat kAll), HKEYS' (kFields) and HVALS' (kValues) reply in slices
// (hmdb::ReplyProducer: the engine calls next() once a loop turn and applies nothing
// meanwhile, so the hash does not change under the cursor).
enum class HashPart : uint8_t { kAll, kFields, kValues };
template <HashPart kWhat>
class HashProducer final : public ReplyProducer {
 public:
  explicit HashProducer(const Hash& h) : h_(h) {}
  bool next(Reply& r, const SliceBudget& budget) override {
    if (!cursor_.started) {
      if (kWhat == HashPart::kAll) r.map(h_.size());
      else r.array(h_.size());
    }
    const size_t start = r.size();
    constexpr size_t kStep = 256;  // fields between checks of the byte budget
    for (size_t done = 0; done < budget.elements && r.size() - start < budget.bytes;) {
      const size_t n = std::min(kStep, budget.elements - done);
      const bool end = h_.for_each_some(cursor_, n, [&](std::string_view field, const std::string& value) {
        if (kWhat != HashPart::kValues) r.bulk(field);
        if (kWhat != HashPart::kFields) r.bulk(value);
      });
      if (end) return true;
      done += n;
    }
    return false;
  }

 private:
  const Hash& h_;
  Hash::Cursor cursor_;
};

void query_hgetall(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  if (!h) { r.map(0); return; }
  if (ctx.slices(h->size())) [[unlikely]] {
    ctx.produce(r, std::make_unique<HashProducer<HashPart::kAll>>(*h));
    return;
  }
  r.map(h->size());
  h->for_each([&](std::string_view field, const std::string& value) {
    r.bulk(field);
    r.bulk(value);
  });
}

void query_hlen(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  r.integer(h ? static_cast<int64_t>(h->size()) : 0);
}

struct HIncrArgs {
  std::string_view key, field;
  int64_t delta = 0;
};
bool parse_hincrby(Args a, HIncrArgs& o, std::string& err) {
  o.key = a[1];
  o.field = a[2];
  if (!parse_int64(a[3], &o.delta)) { err = kNotInteger; return false; }
  return true;
}

void apply_hincrby(State& s, const HIncrArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Hash* h;
  if (!container_for_write<Hash>(s, a.key, ctx, r, &it, &h)) return;
  int64_t v = 0;
  std::string* field = h ? h->find(a.field) : nullptr;
  if (field && !parse_int64(*field, &v)) { r.error(kHashNotInteger); return; }
  int64_t result = 0;
  if (__builtin_add_overflow(v, a.delta, &result)) { r.error(kOverflow); return; }
  if (h) save_hash_field(s, it, *h, a.field);
  if (!h) h = create<Hash>(s, a.key, &it);
  if (!field) {
    bool inserted;
    field = &h->find_or_insert(a.field, &inserted);
    assert(inserted);
  }
  assign_int(*field, result);
  notify(ctx, keyspace::kHash, "hincrby", a.key);
  r.integer(result);
}


void query_hmget(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  r.array(a.size() - 2);
  for (size_t i = 2; i < a.size(); i++) {
    const std::string* v = h ? h->find(a[i]) : nullptr;
    if (v) r.bulk(*v); else r.null();
  }
}

// HKEYS / HVALS: in field byte order, as HGETALL (Redis leaves the order unspecified).
template <bool kKeys>
void query_hkeys(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  if (!h) { r.array(0); return; }
  if (ctx.slices(h->size())) [[unlikely]] {
    ctx.produce(r, std::make_unique<HashProducer<kKeys ? HashPart::kFields : HashPart::kValues>>(*h));
    return;
  }
  r.array(h->size());
  h->for_each([&](std::string_view f, const std::string& v) { r.bulk(kKeys ? f : std::string_view(v)); });
}

void query_hstrlen(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  const std::string* v = h ? h->find(a[2]) : nullptr;
  r.integer(v ? static_cast<int64_t>(v->size()) : 0);
}

void apply_hsetnx(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Hash* h;
  if (!container_for_create<Hash>(s, a.argv[1], ctx, r, &it, &h)) return;
  save_hash_field(s, it, *h, a.argv[2]);
  bool inserted;
  std::string& v = h->find_or_insert(a.argv[2], &inserted);
  if (inserted) {
    v.assign(a.argv[3].data(), a.argv[3].size());
    notify(ctx, keyspace::kHash, "hset", a.argv[1]);
  }
  r.integer(inserted ? 1 : 0);
}

bool parse_hincrbyfloat(Args a, FloatIncrArgs& o, std::string& err) {
  o.key = a[1];
  o.field = a[2];
  if (!parse_long_double(a[3], &o.delta)) { err = kNotFloat; return false; }
  if (std::isinf(o.delta)) { err = "ERR value is NaN or Infinity"; return false; }  // Redis checks HINCRBYFLOAT's only
  return true;
}
void apply_hincrbyfloat(State& s, const FloatIncrArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Hash* h;
  if (!container_for_write<Hash>(s, a.key, ctx, r, &it, &h)) return;
  long double v = 0;
  const std::string* field = h ? h->find(a.field) : nullptr;
  if (field && !parse_long_double(*field, &v)) { r.error("ERR hash value is not a float"); return; }
  v += a.delta;
  if (std::isnan(v) || std::isinf(v)) { r.error(kNanOrInfinity); return; }
  const std::string text = format_long_double(v);
  if (h) save_hash_field(s, it, *h, a.field);
  if (!h) h = create<Hash>(s, a.key, &it);
  h->set(a.field, text);
  notify(ctx, keyspace::kHash, "hincrbyfloat", a.key);
  r.bulk(text);
}

// HRANDFIELD key [count [WITHVALUES]] (random choices: query_seed above).
void query_hrandfield(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  int64_t count = 0;
  const bool has_count = a.size() >= 3;
  if (has_count && !parse_random_count(a[2], &count, r)) return;
  if (a.size() > 4 || (a.size() == 4 && !iequals(a[3], "WITHVALUES"))) { r.error(kSyntax); return; }
  const bool with_values = a.size() == 4;
  if (with_values && !pairs_count_in_range(count, r)) return;
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  if (!h) { if (has_count) r.array(0); else r.null(); return; }
  if (ctx.slices(h->size() + pick_count(h->size(), count, has_count))) [[unlikely]] {
    ctx.produce(r, std::make_unique<RandomPicksProducer<Hash>>(*h, count, has_count, with_values, query_seed(ctx, a[1])));
    return;
  }
  std::vector<std::pair<std::string_view, const std::string*>> fields;
  fields.reserve(h->size());
  h->for_each([&](std::string_view f, const std::string& v) { fields.emplace_back(f, &v); });
  const uint64_t seed = query_seed(ctx, a[1]);
  if (!has_count) { r.bulk(fields[random_picks(fields.size(), 1, seed)[0]].first); return; }
  const std::vector<size_t> picks = random_picks(fields.size(), count, seed);
  // WITHVALUES, as Redis 7: RESP2 a flat field, value, ...; RESP3 [field, value] pairs.
  const bool pairs = with_values && r.resp3();
  r.array(with_values && !pairs ? 2 * picks.size() : picks.size());
  for (size_t i : picks) {
    if (pairs) r.array(2);
    r.bulk(fields[i].first);
    if (with_values) r.bulk(*fields[i].second);
  }
}

// =============================================================================================
// lists
// =============================================================================================

template <bool kFront>
void apply_push(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_create<List>(s, a.argv[1], ctx, r, &it, &l)) return;
  if (kFront) save_list(s, it, ListChange::kPushFront, a.argv.size() - 2);
  for (size_t i = 2; i < a.argv.size(); i++) {
    if (kFront) l->push_front(a.argv[i]); else l->push_back(a.argv[i]);
  }
  notify(ctx, keyspace::kList, kFront ? "lpush" : "rpush", a.argv[1]);
  r.integer(static_cast<int64_t>(l->size()));
}

// LPOP/RPOP's reply for a missing key (its apply's, and its unchanged_reply's).
void list_pop_missing(const PopArgs& a, Reply& r) {
  if (a.has_count) r.null_array(); else r.null();
}

template <bool kFront>
void apply_list_pop(State& s, const PopArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_write<List>(s, a.key, ctx, r, &it, &l)) return;
  if (!l) { list_pop_missing(a, r); return; }
  auto pop_one = [&] {
    if (kFront) { r.bulk(l->front()); l->pop_front(); }
    else { r.bulk(l->back()); l->pop_back(); }
  };
  size_t n = 1;
  if (!a.has_count) {
    save_list_pop(s, it, kFront, 1);
    pop_one();
  } else {
    n = std::min<uint64_t>(static_cast<uint64_t>(a.count), l->size());
    save_list_pop(s, it, kFront, n);
    r.array(n);
    for (size_t i = 0; i < n; i++) pop_one();
  }
  if (n > 0) notify(ctx, keyspace::kList, kFront ? "lpop" : "rpop", a.key);
  erase_if_emptied(s, it, l, a.key, ctx);
}

struct RangeArgs {
  int64_t start = 0, stop = 0;
};
bool parse_range(Args a, size_t at, RangeArgs* o) {
  return parse_int64(a[at], &o->start) && parse_int64(a[at + 1], &o->stop);
}

// LRANGE's reply in slices (hmdb::ReplyProducer: the engine calls next() once a loop turn
// and applies nothing meanwhile, so the list does not change under the cursor).
class ListRangeProducer final : public ReplyProducer {
 public:
  ListRangeProducer(const List& l, size_t first, size_t last) : cursor_(l.cursor(first)), next_(first), last_(last) {}
  bool next(Reply& r, const SliceBudget& budget) override {
    if (!started_) r.array(last_ - next_ + 1);
    started_ = true;
    const size_t start = r.size();
    for (size_t n = 0;; n++) {
      if (n == budget.elements || r.size() - start >= budget.bytes) return false;
      r.bulk(*cursor_);
      if (next_ == last_) return true;
      next_++;
      cursor_.next();
    }
  }

 private:
  List::Cursor cursor_;  // at element next_
  size_t next_, last_;
  bool started_ = false;
};

void query_lrange(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  RangeArgs range;
  if (!parse_range(a, 2, &range)) { r.error(kNotInteger); return; }
  const List* l;
  if (!container_for_read<List>(s, a[1], ctx.now_ms, r, &l)) return;
  size_t first, last;
  if (!l || !clamp_range(range.start, range.stop, l->size(), &first, &last)) { r.array(0); return; }
  if (ctx.slices(last - first + 1)) [[unlikely]] {
    ctx.produce(r, std::make_unique<ListRangeProducer>(*l, first, last));
    return;
  }
  r.array(last - first + 1);
  List::Cursor c = l->cursor(first);
  for (size_t i = first;; i++) {
    r.bulk(*c);
    if (i == last) break;
    c.next();
  }
}

void query_llen(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const List* l;
  if (!container_for_read<List>(s, a[1], ctx.now_ms, r, &l)) return;
  r.integer(l ? static_cast<int64_t>(l->size()) : 0);
}

// LINDEX key index: negative counts from the tail; nil out of range.
void query_lindex(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const List* l;
  if (!container_for_read<List>(s, a[1], ctx.now_ms, r, &l)) return;
  if (!l) { r.null(); return; }
  int64_t index = 0;
  if (!parse_int64(a[2], &index)) { r.error(kNotInteger); return; }
  const int64_t n = static_cast<int64_t>(l->size());
  if (index < 0) index += n;
  if (index < 0 || index >= n) { r.null(); return; }
  r.bulk((*l)[static_cast<size_t>(index)]);
}

void apply_lset(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_write<List>(s, a.argv[1], ctx, r, &it, &l)) return;
  if (!l) { r.error("ERR no such key"); return; }
  int64_t index = 0;
  if (!parse_int64(a.argv[2], &index)) { r.error(kNotInteger); return; }
  const int64_t n = static_cast<int64_t>(l->size());
  if (index < 0) index += n;
  if (index < 0 || index >= n) { r.error("ERR index out of range"); return; }
  if (kHookListSet) save_list(s, it, ListChange::kSet, static_cast<size_t>(index));
  l->set(static_cast<size_t>(index), a.argv[3]);
  notify(ctx, keyspace::kList, "lset", a.argv[1]);
  r.ok();
}

// LREM key count element: count > 0 removes the first count matches from the head, < 0
// from the tail, 0 all of them. O(n).
struct LRemArgs {
  std::string_view key, element;
  int64_t count = 0;
};
bool parse_lrem(Args a, LRemArgs& o, std::string& err) {
  o.key = a[1];
  o.element = a[3];
  if (!parse_int64(a[2], &o.count)) { err = kNotInteger; return false; }
  return true;
}
void apply_lrem(State& s, const LRemArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_write<List>(s, a.key, ctx, r, &it, &l)) return;
  if (!l) { r.integer(0); return; }
  const size_t n = l->size();
  uint64_t limit = a.count == 0 ? UINT64_MAX
                   : a.count > 0 ? static_cast<uint64_t>(a.count)
                                 : static_cast<uint64_t>(-(a.count + 1)) + 1;
  size_t removed;
  if (s.saving) [[unlikely]] {
    // A snapshot may follow the list: its hook takes the positions removed (ascending),
    // before the removal, then they go.
    std::vector<size_t> at;
    if (a.count >= 0) {
      List::Cursor c = l->cursor(0);
      for (size_t i = 0; i < n && limit > 0; i++) {
        if (i > 0) c.next();
        if (*c == a.element) { at.push_back(i); limit--; }
      }
    } else {
      List::Cursor c = l->cursor(n - 1);
      for (size_t k = 0; k < n && limit > 0; k++) {
        if (*c == a.element) { at.push_back(n - 1 - k); limit--; }
        if (k + 1 < n) c.prev();
      }
      std::reverse(at.begin(), at.end());
    }
    s.saving->before_list_remove(it.hash(), it->first.view(), it->second, at);
    size_t next = 0;
    removed = l->remove_where([&](size_t i, std::string_view) {
      if (next == at.size() || at[next] != i) return false;
      next++;
      return true;
    });
  } else if (a.count >= 0) {
    removed = l->remove_where([&](size_t, std::string_view v) {
      if (limit == 0 || v != a.element) return false;
      limit--;
      return true;
    });
  } else {  // the matches nearest the tail: found walking back, then removed in one pass
    std::vector<bool> remove(n, false);
    List::Cursor c = l->cursor(n - 1);
    for (size_t k = 0; k < n && limit > 0; k++) {
      if (*c == a.element) { remove[n - 1 - k] = true; limit--; }
      if (k + 1 < n) c.prev();
    }
    removed = l->remove_where([&](size_t i, std::string_view) { return remove[i]; });
  }
  if (removed > 0) notify(ctx, keyspace::kList, "lrem", a.key);
  erase_if_emptied(s, it, l, a.key, ctx);
  r.integer(static_cast<int64_t>(removed));
}

// LTRIM key start stop: keeps [start, stop] (LRANGE's rules), an empty range empties it.
struct LTrimArgs {
  std::string_view key;
  RangeArgs range;
};
bool parse_ltrim(Args a, LTrimArgs& o, std::string& err) {
  o.key = a[1];
  if (!parse_range(a, 2, &o.range)) { err = kNotInteger; return false; }
  return true;
}
void apply_ltrim(State& s, const LTrimArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_write<List>(s, a.key, ctx, r, &it, &l)) return;
  if (!l) { r.ok(); return; }
  size_t first = 0, last = 0;
  if (!clamp_range(a.range.start, a.range.stop, l->size(), &first, &last)) {
    save_list(s, it, ListChange::kEraseBack, l->size());
    l->erase_back(l->size());
  } else {
    save_list(s, it, ListChange::kEraseBack, l->size() - (last + 1));
    l->erase_back(l->size() - (last + 1));
    save_list(s, it, ListChange::kEraseFront, first);
    l->erase_front(first);
  }
  notify(ctx, keyspace::kList, "ltrim", a.key);  // even when nothing went, as Redis
  erase_if_emptied(s, it, l, a.key, ctx);
  r.ok();
}

// LINSERT key BEFORE|AFTER pivot element: the new length, -1 without the pivot, 0 without the key.
struct LInsertArgs {
  std::string_view key, pivot, element;
  bool after = false;
};
bool parse_linsert(Args a, LInsertArgs& o, std::string& err) {
  o.key = a[1];
  o.pivot = a[3];
  o.element = a[4];
  if (iequals(a[2], "AFTER")) o.after = true;
  else if (!iequals(a[2], "BEFORE")) { err = kSyntax; return false; }
  return true;
}
void apply_linsert(State& s, const LInsertArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_write<List>(s, a.key, ctx, r, &it, &l)) return;
  if (!l) { r.integer(0); return; }
  const size_t n = l->size();
  List::Cursor c = l->cursor(0);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) c.next();
    if (*c != a.pivot) continue;
    save_list(s, it, ListChange::kInsert, a.after ? i + 1 : i);
    l->insert(a.after ? i + 1 : i, a.element);
    notify(ctx, keyspace::kList, "linsert", a.key);
    r.integer(static_cast<int64_t>(l->size()));
    return;
  }
  r.integer(-1);
}

// LPOS key element [RANK rank] [COUNT n] [MAXLEN len]: indexes (from the head) of matches.
void query_lpos(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  int64_t rank = 1, count = -1, maxlen = 0;
  for (size_t i = 3; i < a.size(); i++) {
    const bool more = i + 1 < a.size();
    if (iequals(a[i], "RANK") && more) {
      if (!parse_random_count(a[++i], &rank, r)) return;  // -LONG_MAX..LONG_MAX, Redis' texts
      if (rank == 0) {
        r.error("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative "
                "to start from the end of the list");
        return;
      }
    } else if (iequals(a[i], "COUNT") && more) {
      if (!parse_int64(a[++i], &count) || count < 0) { r.error("ERR COUNT can't be negative"); return; }
    } else if (iequals(a[i], "MAXLEN") && more) {
      if (!parse_int64(a[++i], &maxlen) || maxlen < 0) { r.error("ERR MAXLEN can't be negative"); return; }
    } else {
      r.error(kSyntax);
      return;
    }
  }
  const List* l;
  if (!container_for_read<List>(s, a[1], ctx.now_ms, r, &l)) return;
  if (!l) { if (count != -1) r.array(0); else r.null(); return; }
  const size_t n = l->size();
  const uint64_t skip = rank > 0 ? static_cast<uint64_t>(rank - 1) : static_cast<uint64_t>(-(rank + 1));
  const uint64_t want = count == -1 ? 1 : count == 0 ? UINT64_MAX : static_cast<uint64_t>(count);
  const size_t scan = maxlen == 0 ? n : std::min<uint64_t>(static_cast<uint64_t>(maxlen), n);
  std::vector<int64_t> found;
  uint64_t matches = 0;
  List::Cursor c = l->cursor(rank > 0 ? 0 : n - 1);
  for (size_t k = 0; k < scan && found.size() < want; k++) {
    const size_t i = rank > 0 ? k : n - 1 - k;
    if (k > 0) { if (rank > 0) c.next(); else c.prev(); }
    if (*c != a[2]) continue;
    if (matches++ >= skip) found.push_back(static_cast<int64_t>(i));
  }
  if (count == -1) {
    if (found.empty()) r.null(); else r.integer(found[0]);
    return;
  }
  r.array(found.size());
  for (int64_t i : found) r.integer(i);
}

// LPUSHX / RPUSHX key element [element ...]: push only onto an existing list; 0 otherwise.
template <bool kFront>
void apply_pushx(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  List* l;
  if (!container_for_write<List>(s, a.argv[1], ctx, r, &it, &l)) return;
  if (!l) { r.integer(0); return; }
  if (kFront) save_list(s, it, ListChange::kPushFront, a.argv.size() - 2);
  for (size_t i = 2; i < a.argv.size(); i++) {
    if (kFront) l->push_front(a.argv[i]); else l->push_back(a.argv[i]);
  }
  notify(ctx, keyspace::kList, kFront ? "lpush" : "rpush", a.argv[1]);
  r.integer(static_cast<int64_t>(l->size()));
}

// LMOVE src dst LEFT|RIGHT LEFT|RIGHT, RPOPLPUSH src dst (= RIGHT LEFT): pops from src and
// pushes onto dst (created if missing; src == dst rotates). The element, nil if src is missing.
struct LMoveArgs {
  std::string_view src, dst;
  bool from_left = false, to_left = true;
};
bool parse_side(std::string_view w, bool* left, std::string& err) {
  if (iequals(w, "LEFT")) *left = true;
  else if (iequals(w, "RIGHT")) *left = false;
  else { err = kSyntax; return false; }
  return true;
}
bool parse_lmove(Args a, LMoveArgs& o, std::string& err) {
  o.src = a[1];
  o.dst = a[2];
  return parse_side(a[3], &o.from_left, err) && parse_side(a[4], &o.to_left, err);
}
bool parse_rpoplpush(Args a, LMoveArgs& o, std::string&) {
  o.src = a[1];
  o.dst = a[2];
  o.from_left = false;
  o.to_left = true;
  return true;
}
void apply_lmove(State& s, const LMoveArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter from;
  List* src;
  if (!container_for_write<List>(s, a.src, ctx, r, &from, &src)) return;
  if (!src) { r.null(); return; }
  KeyIter to;
  List* dst;
  if (!container_for_write<List>(s, a.dst, ctx, r, &to, &dst)) return;
  src = boxed<List>(s.keys.find(a.src)->second);  // dst's lookup may have deleted an expired dst
  std::string value(a.from_left ? src->front() : src->back());
  save_list_pop(s, s.keys.find(a.src), a.from_left, 1);
  if (a.from_left) src->pop_front(); else src->pop_back();
  // Pointers into the table die if creating dst grows it: look src up again after.
  if (a.src != a.dst && s.keys.find(a.dst) == s.keys.end()) create<List>(s, a.dst, &to);
  to = s.keys.find(a.dst);
  dst = boxed<List>(to->second);
  if (a.to_left) save_list(s, to, ListChange::kPushFront, 1);
  if (a.to_left) dst->push_front(value); else dst->push_back(value);
  notify(ctx, keyspace::kList, a.to_left ? "lpush" : "rpush", a.dst);
  notify(ctx, keyspace::kList, a.from_left ? "lpop" : "rpop", a.src);
  from = s.keys.find(a.src);
  erase_if_emptied(s, from, boxed<List>(from->second), a.src, ctx);
  r.bulk(value);
}

// =============================================================================================
// sets
// =============================================================================================

uint64_t member_hash(std::string_view m) { return SetMemberHasher::hash(m); }

void apply_sadd(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Set* set;
  if (!container_for_create<Set>(s, a.argv[1], ctx, r, &it, &set)) return;
  int64_t added = 0;
  for (size_t i = 2; i < a.argv.size(); i++) {
    const SetMemberKey m{member_hash(a.argv[i]), a.argv[i]};
    if (kHookFields) save_set_member(s, it, *set, m);
    added += set->insert(m) ? 1 : 0;
  }
  if (added > 0) notify(ctx, keyspace::kSet, "sadd", a.argv[1]);
  r.integer(added);
}

void apply_srem(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Set* set;
  if (!container_for_write<Set>(s, a.argv[1], ctx, r, &it, &set)) return;
  if (!set) { r.integer(0); return; }
  int64_t removed = 0;
  for (size_t i = 2; i < a.argv.size(); i++) {
    const SetMemberKey m{member_hash(a.argv[i]), a.argv[i]};
    save_set_member(s, it, *set, m);
    removed += set->erase(m) ? 1 : 0;
  }
  if (removed > 0) notify(ctx, keyspace::kSet, "srem", a.argv[1]);
  erase_if_emptied(s, it, set, a.argv[1], ctx);
  r.integer(removed);
}

// The deterministic choice described in kv.h: hash of (log index, pop number, set size).
std::string spop_pick(State& s, KeyIter it, Set* set, uint64_t index, uint64_t pop_number) {
  uint64_t words[3] = {index, pop_number, set->size()};  // host byte order: little endian
  uint64_t r = XXH3_64bits_withSeed(words, sizeof words, kSetHashSeed);
  if (s.saving) [[unlikely]] save_set_member(s, it, *set, set->at_or_after(r));
  return set->pop_at_or_after(r);
}

// SPOP's reply for a missing key (its apply's, and its unchanged_reply's).
void spop_missing(const PopArgs& a, Reply& r) {
  if (a.has_count) r.set(0); else r.null();
}

void apply_spop(State& s, const PopArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  Set* set;
  if (!container_for_write<Set>(s, a.key, ctx, r, &it, &set)) return;
  if (!set) { spop_missing(a, r); return; }
  size_t n = a.has_count ? std::min<uint64_t>(static_cast<uint64_t>(a.count), set->size()) : 1;
  if (a.has_count) r.set(n);
  for (size_t i = 0; i < n; i++) r.bulk(spop_pick(s, it, set, ctx.index, i));
  if (n > 0) notify(ctx, keyspace::kSet, "spop", a.key);
  erase_if_emptied(s, it, set, a.key, ctx);
}

// SMEMBERS' reply in slices (hmdb::ReplyProducer: the engine calls next() once a loop turn
// and applies nothing meanwhile, so the set does not change under the cursor).
class SetMembersProducer final : public ReplyProducer {
 public:
  explicit SetMembersProducer(const Set& set) : set_(set) {}
  bool next(Reply& r, const SliceBudget& budget) override {
    if (!cursor_.started) r.set(set_.size());
    const size_t start = r.size();
    // Slices of at most budget.elements members, ended early past budget.bytes.
    constexpr size_t kStep = 256;
    for (size_t done = 0; done < budget.elements && r.size() - start < budget.bytes;) {
      const size_t n = std::min(kStep, budget.elements - done);
      if (set_.for_each_some(cursor_, n, [&](std::string_view m) { r.bulk(m); })) return true;
      done += n;
    }
    return false;
  }

 private:
  const Set& set_;
  Set::Cursor cursor_;
};

// Members in the set's hash order: the same on every node, and not sorted, like Redis.
void query_smembers(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Set* set;
  if (!container_for_read<Set>(s, a[1], ctx.now_ms, r, &set)) return;
  if (!set) { r.set(0); return; }
  if (ctx.slices(set->size())) [[unlikely]] {
    ctx.produce(r, std::make_unique<SetMembersProducer>(*set));
    return;
  }
  r.set(set->size());
  set->for_each([&](std::string_view m) { r.bulk(m); });
}

void query_scard(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Set* set;
  if (!container_for_read<Set>(s, a[1], ctx.now_ms, r, &set)) return;
  r.integer(set ? static_cast<int64_t>(set->size()) : 0);
}

void query_sismember(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Set* set;
  if (!container_for_read<Set>(s, a[1], ctx.now_ms, r, &set)) return;
  r.integer(set && set->contains(SetMemberKey{member_hash(a[2]), a[2]}) ? 1 : 0);
}

void query_smismember(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const Set* set;
  if (!container_for_read<Set>(s, a[1], ctx.now_ms, r, &set)) return;
  r.array(a.size() - 2);
  for (size_t i = 2; i < a.size(); i++) r.integer(set && set->contains(SetMemberKey{member_hash(a[i]), a[i]}) ? 1 : 0);
}

// SRANDMEMBER key [count] (random choices: query_seed above).
void query_srandmember(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  if (a.size() > 3) { r.error(kSyntax); return; }
  int64_t count = 0;
  const bool has_count = a.size() == 3;
  if (has_count && !parse_random_count(a[2], &count, r)) return;
  const Set* set;
  if (!container_for_read<Set>(s, a[1], ctx.now_ms, r, &set)) return;
  if (!set) { if (has_count) r.array(0); else r.null(); return; }
  if (ctx.slices(set->size() + pick_count(set->size(), count, has_count))) [[unlikely]] {
    ctx.produce(r, std::make_unique<RandomPicksProducer<Set>>(*set, count, has_count, false, query_seed(ctx, a[1])));
    return;
  }
  std::vector<std::string_view> members;
  members.reserve(set->size());
  set->for_each([&](std::string_view m) { members.push_back(m); });
  const std::vector<size_t> picks = random_picks(members.size(), has_count ? count : 1, query_seed(ctx, a[1]));
  if (!has_count) { r.bulk(members[picks[0]]); return; }
  r.array(picks.size());
  for (size_t i : picks) r.bulk(members[i]);
}

// The sets SINTER/SUNION/SDIFF read, in argument order: null for a missing key. False (and
// WRONGTYPE replied) if any holds another type, even after a missing key, as Redis 7.0.
bool read_sets(const State& s, Args keys, uint64_t now_ms, Reply& r, std::vector<const Set*>* out, bool* missing) {
  *missing = false;
  for (std::string_view k : keys) {
    const Value* v = live_read(s, k, now_ms);
    if (!v) {
      *missing = true;
      out->push_back(nullptr);
      continue;
    }
    const Set* set = std::get_if<Set>(v);
    if (!set) { r.error(kWrongType); return false; }
    out->push_back(set);
  }
  return true;
}

enum class SetOp : uint8_t { kInter, kUnion, kDiff };

// The result of op over sets, as members (views into the sets) in set order. Costs: inter
// O(smallest x sets x log), union O(total x log), diff O(first x sets x log).
std::vector<std::string_view> combine_sets(SetOp op, const std::vector<const Set*>& sets, bool missing, size_t limit) {
  std::vector<std::string_view> out;
  if (sets.empty()) return out;
  switch (op) {
    case SetOp::kInter: {
      if (missing) return out;
      const Set* smallest = *std::min_element(sets.begin(), sets.end(), [](const Set* x, const Set* y) { return x->size() < y->size(); });
      smallest->for_each([&](std::string_view m) {
        if (limit && out.size() >= limit) return;
        const SetMemberKey k{member_hash(m), m};
        for (const Set* other : sets)
          if (other != smallest && !other->contains(k)) return;
        out.push_back(m);
      });
      break;
    }
    case SetOp::kUnion: {
      std::vector<std::pair<uint64_t, std::string_view>> all;  // in set order, then deduplicated
      for (const Set* set : sets)
        if (set) set->for_each([&](std::string_view m) { all.emplace_back(member_hash(m), m); });
      std::sort(all.begin(), all.end());
      all.erase(std::unique(all.begin(), all.end()), all.end());
      out.reserve(all.size());
      for (const auto& m : all) out.push_back(m.second);
      break;
    }
    case SetOp::kDiff: {
      if (!sets[0]) return out;
      sets[0]->for_each([&](std::string_view m) {
        const SetMemberKey k{member_hash(m), m};
        for (size_t i = 1; i < sets.size(); i++)
          if (sets[i] && sets[i]->contains(k)) return;
        out.push_back(m);
      });
      break;
    }
  }
  return out;
}

// The members of op over sets, found a few at a time (SetOpProducer): the same members in
// the same (hash, bytes) order as combine_sets, without building them. Every set is in that
// order, so SINTER walks the smallest set and keeps what every other set holds, SDIFF walks
// the first and keeps what no other holds, and SUNION merges the sets' walks (a heap of one
// cursor a set), keeping the first of equal members. Valid while the sets do not change.
class SetOpWalk {
 public:
  SetOpWalk(SetOp op, const std::vector<const Set*>& sets, bool missing) : op_(op), sets_(sets) {
    if (sets.empty()) return;
    switch (op) {
      case SetOp::kInter:
        if (missing) return;
        lead_ = *std::min_element(sets.begin(), sets.end(), [](const Set* x, const Set* y) { return x->size() < y->size(); });
        break;
      case SetOp::kDiff:
        lead_ = sets[0];
        break;
      case SetOp::kUnion:
        cursors_.resize(sets.size());
        for (size_t i = 0; i < sets.size(); i++) push(i);
        break;
    }
  }

  // Visits candidates until *work reaches budget, fn(member) (called for each member of the
  // result) returns false, or the walk ends: true once it ended. Each candidate, and each
  // membership test in another set, adds one to *work.
  template <class Fn>
  bool walk(size_t budget, size_t* work, Fn&& fn) {
    if (op_ == SetOp::kUnion) {
      while (!heap_.empty()) {
        if (*work >= budget) return false;
        const Head head = heap_.front();
        std::pop_heap(heap_.begin(), heap_.end(), After());
        heap_.pop_back();
        sets_[head.set]->advance(cursors_[head.set]);
        push(head.set);
        ++*work;
        // Equal members come out of the heap one after the other: the first one counts.
        if (any_ && last_.hash == head.member.hash && last_.value == head.member.value) continue;
        last_ = head.member;
        any_ = true;
        if (!fn(head.member.value)) return heap_.empty();
      }
      return true;
    }
    if (!lead_) return true;
    SetMemberKey m;
    while (lead_->at(cursor_, &m)) {
      if (*work >= budget) return false;
      lead_->advance(cursor_);
      ++*work;
      if (!keeps(m, work)) continue;
      if (!fn(m.value)) return !lead_->at(cursor_, &m);
    }
    return true;
  }

 private:
  struct Head {
    SetMemberKey member;
    size_t set;
  };
  struct After {  // a min-heap in (hash, bytes) order
    bool operator()(const Head& a, const Head& b) const { return SetLess()(b.member, a.member); }
  };
  void push(size_t i) {
    SetMemberKey m;
    if (!sets_[i] || !sets_[i]->at(cursors_[i], &m)) return;
    heap_.push_back(Head{m, i});
    std::push_heap(heap_.begin(), heap_.end(), After());
  }
  bool keeps(const SetMemberKey& m, size_t* work) const {
    if (op_ == SetOp::kInter) {
      for (const Set* other : sets_) {
        if (other == lead_) continue;
        ++*work;
        if (!other->contains(m)) return false;
      }
      return true;
    }
    for (size_t i = 1; i < sets_.size(); i++) {
      if (!sets_[i]) continue;
      ++*work;
      if (sets_[i]->contains(m)) return false;
    }
    return true;
  }

  const SetOp op_;
  const std::vector<const Set*>& sets_;
  const Set* lead_ = nullptr;  // kInter, kDiff: the set walked
  Set::Cursor cursor_;
  std::vector<Set::Cursor> cursors_;  // kUnion: one a set
  std::vector<Head> heap_;
  SetMemberKey last_{};
  bool any_ = false;
};

// SINTER / SUNION / SDIFF's reply, and SINTERCARD's (kCard), computed and written in slices
// (hmdb::ReplyProducer: nothing is applied meanwhile, so the sets stay as they are). The
// set's length comes first, so a first walk counts the members (SINTERCARD stops there, at
// its limit), a second writes them, as KEYS does: no copy of the result. Each candidate and
// each membership test counts against the slice's budget.
class SetOpProducer final : public ReplyProducer {
 public:
  SetOpProducer(SetOp op, std::vector<const Set*> sets, bool missing, bool card, size_t limit)
      : op_(op), sets_(std::move(sets)), missing_(missing), card_(card), limit_(limit) {
    walk_.emplace(op_, sets_, missing_);
  }
  SetOpProducer(const SetOpProducer&) = delete;  // walk_ refers to sets_
  SetOpProducer& operator=(const SetOpProducer&) = delete;

  bool next(Reply& r, const SliceBudget& budget) override {
    size_t work = 0;
    if (counting_) {
      const bool end = walk_->walk(budget.elements, &work, [&](std::string_view) {
        count_++;
        return !(card_ && count_ == limit_);
      });
      if (!end && !(card_ && count_ == limit_)) return false;
      if (card_) {
        r.integer(static_cast<int64_t>(count_));
        return true;
      }
      counting_ = false;
      r.set(count_);
      if (count_ == 0) return true;
      walk_.emplace(op_, sets_, missing_);
    }
    const size_t start = r.size();
    return walk_->walk(budget.elements, &work, [&](std::string_view m) {
      r.bulk(m);
      return r.size() - start < budget.bytes;
    });
  }

 private:
  const SetOp op_;
  const std::vector<const Set*> sets_;
  const bool missing_, card_;
  const size_t limit_;  // kCard: 0 none
  std::optional<SetOpWalk> walk_;
  bool counting_ = true;
  size_t count_ = 0;
};

// The work of one pass of a set operation, in SetOpWalk's units: SINTER walks the smallest
// set and tests each member in every other, SDIFF walks the first and tests in the others
// present, SUNION walks every one.
size_t setop_work(SetOp op, const std::vector<const Set*>& sets, bool missing) {
  if (sets.empty()) return 0;
  switch (op) {
    case SetOp::kInter: {
      if (missing) return 0;
      size_t n = SIZE_MAX;
      for (const Set* set : sets) n = std::min(n, set->size());
      return n * sets.size();
    }
    case SetOp::kDiff: {
      if (!sets[0]) return 0;
      size_t tests = 1;
      for (size_t i = 1; i < sets.size(); i++) tests += sets[i] ? 1 : 0;
      return sets[0]->size() * tests;
    }
    case SetOp::kUnion: {
      size_t n = 0;
      for (const Set* set : sets) n += set ? set->size() : 0;
      return n;
    }
  }
  return 0;
}

// SINTER / SUNION / SDIFF key [key ...]: a set (RESP3 ~), in set order. Beyond a slice's
// worth of members to walk, computed and written in slices (SetOpProducer).
template <SetOp kOp>
void query_setop(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  std::vector<const Set*> sets;
  bool missing;
  if (!read_sets(s, a.subspan(1), ctx.now_ms, r, &sets, &missing)) return;
  if (ctx.slices(setop_work(kOp, sets, missing))) [[unlikely]] {
    ctx.produce(r, std::make_unique<SetOpProducer>(kOp, std::move(sets), missing, false, 0));
    return;
  }
  std::vector<std::string_view> result = combine_sets(kOp, sets, missing, 0);
  r.set(result.size());
  for (std::string_view m : result) r.bulk(m);
}

// A set operation's result stored at dst (any type there goes, its deadline cleared); an
// empty result deletes dst. The size of the result.
void store_set_result(State& s, std::string_view dst, Set&& result, SetOp op, const ApplyContext& ctx, Reply& r) {
  const size_t n = result.size();
  static constexpr std::string_view kEvents[] = {"sinterstore", "sunionstore", "sdiffstore"};
  KeyIter it = live_write(s, dst, ctx);
  if (n == 0) {
    if (it != s.keys.end()) {
      erase_key(s, it);
      notify(ctx, keyspace::kGeneric, "del", dst);
    }
  } else {
    if (it != s.keys.end()) save_replace(s, it);
    clear_deadline(s, dst);
    if (it != s.keys.end()) s.graveyard.bury_if_big(it->second);
    s.keys.insert_or_assign(dst, Value(std::move(result)));
    notify(ctx, keyspace::kSet, kEvents[static_cast<int>(op)], dst);
  }
  r.integer(static_cast<int64_t>(n));
}

// SINTERSTORE / SUNIONSTORE / SDIFFSTORE's result computed in slices (hmdb::ApplyProducer):
// SetOpWalk's members (the sets stay as they are until finish(): nothing else is applied
// meanwhile) copied into a set of its own, each candidate and membership test counting
// against a slice's budget; finish() then does what apply_setop_store does: the expired
// sources go, and the result is stored. The same members, so the same set (its order is its
// members', set.h), as the whole computation.
class SetStoreProducer final : public ApplyProducer {
 public:
  SetStoreProducer(State& s, SetOp op, std::string_view dst, Args sources, std::vector<const Set*> sets, bool missing)
      : s_(s), op_(op), dst_(dst), sets_(std::move(sets)) {
    for (std::string_view k : sources) sources_.emplace_back(k);
    walk_.emplace(op_, sets_, missing);
  }
  SetStoreProducer(const SetStoreProducer&) = delete;  // walk_ refers to sets_
  SetStoreProducer& operator=(const SetStoreProducer&) = delete;

  bool next(const SliceBudget& budget) override {
    size_t work = 0;
    return walk_->walk(budget.elements, &work, [&](std::string_view m) {
      result_.insert(SetMemberKey{member_hash(m), m});
      return true;
    });
  }
  void finish(const ApplyContext& ctx, Reply& r) override {
    walk_.reset();
    for (const std::string& k : sources_) live_find(s_, k, ctx);  // expired sources go first
    store_set_result(s_, dst_, std::move(result_), op_, ctx, r);
  }

 private:
  State& s_;
  const SetOp op_;
  const std::string dst_;
  std::vector<std::string> sources_;
  const std::vector<const Set*> sets_;
  std::optional<SetOpWalk> walk_;
  Set result_;
};

// SINTERSTORE / SUNIONSTORE / SDIFFSTORE dst key [key ...]: the result replaces dst (any type,
// its deadline cleared); an empty result deletes dst. The size of the result. Beyond a
// slice's worth of members to walk, computed in slices (SetStoreProducer).
template <SetOp kOp>
void apply_setop_store(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  const std::string_view dst = a.argv[1];
  const Args sources = a.argv.subspan(2);
  // The sources are read before their expired ones are deleted (live_write, below): a read
  // counts those absent already, so the sets are the same, and the others' nodes stay where
  // they are (key_table.h). A big result is then computed before anything changes.
  std::vector<const Set*> sets;
  bool missing;
  const bool typed = read_sets(s, sources, ctx.now_ms, r, &sets, &missing);
  if (typed && ctx.producer && ctx.slices(setop_work(kOp, sets, missing))) [[unlikely]] {
    ctx.produce(r, std::make_unique<SetStoreProducer>(s, kOp, dst, sources, std::move(sets), missing));
    return;
  }
  for (std::string_view k : sources) live_find(s, k, ctx);  // expired sources go first
  if (!typed) return;  // answered WRONGTYPE
  Set result;
  for (std::string_view m : combine_sets(kOp, sets, missing, 0)) result.insert(SetMemberKey{member_hash(m), m});
  store_set_result(s, dst, std::move(result), kOp, ctx, r);
}

// SINTERCARD numkeys key [key ...] [LIMIT limit]: the size of the intersection, counting
// stopped at limit (0: no limit). Beyond a slice's worth of members to walk, counted in
// slices (SetOpProducer).
void query_sintercard(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  int64_t numkeys = 0;
  if (!parse_int64(a[1], &numkeys) || numkeys < 1) { r.error("ERR numkeys should be greater than 0"); return; }
  if (numkeys > static_cast<int64_t>(a.size()) - 2) { r.error("ERR Number of keys can't be greater than number of args"); return; }
  int64_t limit = 0;
  for (size_t i = 2 + static_cast<size_t>(numkeys); i < a.size(); i++) {
    if (iequals(a[i], "LIMIT") && i + 1 < a.size()) {
      if (!parse_int64(a[++i], &limit) || limit < 0) { r.error("ERR LIMIT can't be negative"); return; }
    } else {
      r.error(kSyntax);
      return;
    }
  }
  std::vector<const Set*> sets;
  bool missing;
  if (!read_sets(s, a.subspan(2, static_cast<size_t>(numkeys)), ctx.now_ms, r, &sets, &missing)) return;
  if (ctx.slices(setop_work(SetOp::kInter, sets, missing))) [[unlikely]] {
    ctx.produce(r, std::make_unique<SetOpProducer>(SetOp::kInter, std::move(sets), missing, true, static_cast<size_t>(limit)));
    return;
  }
  r.integer(static_cast<int64_t>(combine_sets(SetOp::kInter, sets, missing, static_cast<size_t>(limit)).size()));
}

// SMOVE src dst member: 1 if moved (or src == dst and the member is there), else 0.
void apply_smove(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  const std::string_view src = a.argv[1], dst = a.argv[2], member = a.argv[3];
  KeyIter from;
  Set* from_set;
  if (!container_for_write<Set>(s, src, ctx, r, &from, &from_set)) return;
  if (!from_set) { r.integer(0); return; }  // before dst's type, as Redis
  KeyIter to;
  Set* to_set;
  if (!container_for_write<Set>(s, dst, ctx, r, &to, &to_set)) return;
  from = s.keys.find(src);  // dst's lookup may have deleted an expired dst: look again
  from_set = boxed<Set>(from->second);
  const SetMemberKey k{member_hash(member), member};
  if (src == dst) { r.integer(from_set->contains(k) ? 1 : 0); return; }
  save_set_member(s, from, *from_set, k);
  if (!from_set->erase(k)) { r.integer(0); return; }
  notify(ctx, keyspace::kSet, "srem", src);
  erase_if_emptied(s, from, from_set, src, ctx);
  to = s.keys.find(dst);
  if (to == s.keys.end()) create<Set>(s, dst, &to);
  save_set_member(s, to, std::get<Set>(to->second), k);
  if (std::get<Set>(to->second).insert(k)) notify(ctx, keyspace::kSet, "sadd", dst);
  r.integer(1);
}

// =============================================================================================
// sorted sets
// =============================================================================================

struct ZAddArgs {
  std::string_view key;
  bool nx = false, xx = false, gt = false, lt = false, ch = false, incr = false;
  Args pairs;  // score member ...; every score already checked by parse
};

bool parse_zadd(Args a, ZAddArgs& o, std::string& err) {
  o.key = a[1];
  size_t i = 2;
  for (; i < a.size(); i++) {
    std::string_view opt = a[i];
    if (iequals(opt, "NX")) o.nx = true;
    else if (iequals(opt, "XX")) o.xx = true;
    else if (iequals(opt, "GT")) o.gt = true;
    else if (iequals(opt, "LT")) o.lt = true;
    else if (iequals(opt, "CH")) o.ch = true;
    else if (iequals(opt, "INCR")) o.incr = true;
    else break;
  }
  size_t elements = a.size() - i;
  if (elements == 0 || elements % 2 != 0) { err = kSyntax; return false; }
  if (o.nx && o.xx) { err = "ERR XX and NX options at the same time are not compatible"; return false; }
  if ((o.gt && o.nx) || (o.lt && o.nx) || (o.gt && o.lt)) {
    err = "ERR GT, LT, and/or NX options at the same time are not compatible";
    return false;
  }
  if (o.incr && elements > 2) { err = "ERR INCR option supports a single increment-element pair"; return false; }
  o.pairs = a.subspan(i);
  for (size_t j = 0; j < o.pairs.size(); j += 2) {
    double score;
    if (!parse_double(o.pairs[j], &score)) { err = kNotFloat; return false; }
  }
  return true;
}

void zset_insert(ZSet* z, std::string_view member, double score) {
  const bool inserted = z->order.insert(ZEntry{score, ZMember(member)});
  assert(inserted);  // callers insert new members only
  (void)inserted;
}
void zset_erase(ZSet* z, std::string_view member) {
  const size_t erased = z->order.erase_member(member);
  assert(erased == 1);
  (void)erased;
}

void apply_zadd(State& s, const ZAddArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  ZSet* z;
  if (!container_for_write<ZSet>(s, a.key, ctx, r, &it, &z)) return;
  if (!z) {
    if (a.xx) { if (a.incr) r.null(); else r.integer(0); return; }
    z = create<ZSet>(s, a.key, &it);
  }
  int64_t added = 0, changed = 0;
  bool done = false;
  double result = 0;
  for (size_t j = 0; j < a.pairs.size(); j += 2) {
    double score = 0;
    bool ok = parse_double(a.pairs[j], &score);
    assert(ok);  // parse_zadd checked every score
    (void)ok;
    std::string_view member = a.pairs[j + 1];
    if (const ZEntry* found = z->order.find_member(member)) {
      if (a.nx) continue;
      double current = found->score;
      double next = a.incr ? current + score : score;
      if (std::isnan(next)) {
        erase_if_empty(s, it, z);
        r.error("ERR resulting score is not a number (NaN)");
        return;
      }
      if ((a.lt && next >= current) || (a.gt && next <= current)) continue;
      done = true;
      result = next;
      if (next != current) {
        save_zset_move(s, it, current, next, member);
        z->order.update_score(found, next);
        changed++;
      }
    } else {
      if (a.xx) continue;
      save_zset_insert(s, it, score, member);
      zset_insert(z, member, score);
      added++;
      done = true;
      result = score;
    }
  }
  erase_if_empty(s, it, z);  // created for nothing (XX, NX, GT, LT skipped every member)
  if (added > 0 || changed > 0) notify(ctx, keyspace::kZset, a.incr ? "zincr" : "zadd", a.key);
  if (a.incr) {
    if (done) r.double_value(result); else r.null();
  } else {
    r.integer(a.ch ? added + changed : added);
  }
}

void apply_zrem(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  ZSet* z;
  if (!container_for_write<ZSet>(s, a.argv[1], ctx, r, &it, &z)) return;
  if (!z) { r.integer(0); return; }
  int64_t removed = 0;
  for (size_t i = 2; i < a.argv.size(); i++) {
    if (s.saving) [[unlikely]]
      if (const ZEntry* e = z->order.find_member(a.argv[i])) save_zset_erase(s, it, *e);
    if (z->order.erase_member(a.argv[i]) == 0) continue;
    removed++;
  }
  if (removed > 0) notify(ctx, keyspace::kZset, "zrem", a.argv[1]);
  erase_if_emptied(s, it, z, a.argv[1], ctx);
  r.integer(removed);
}

// ZPOPMIN/ZPOPMAX's reply for a missing key (its apply's, and its unchanged_reply's).
void zpop_missing(const PopArgs&, Reply& r) { r.array(0); }

// ZPOPMIN / ZPOPMAX key [count].
template <bool kMax>
void apply_zpop(State& s, const PopArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it;
  ZSet* z;
  if (!container_for_write<ZSet>(s, a.key, ctx, r, &it, &z)) return;
  if (!z) { zpop_missing(a, r); return; }
  size_t n = std::min<uint64_t>(static_cast<uint64_t>(a.count), z->order.size());
  // Redis 7: RESP2 a flat member, score, ...; RESP3 with a count, [member, score] pairs.
  const bool pairs = r.resp3() && a.has_count;
  r.array(pairs ? n : 2 * n);
  for (size_t i = 0; i < n; i++) {
    auto first = kMax ? std::prev(z->order.end()) : z->order.begin();
    if (pairs) r.array(2);
    r.bulk(first->member);
    r.double_value(first->score);
    if (kHookZsetPops) save_zset_erase(s, it, *first);
    z->order.remove(first);
  }
  if (n > 0) notify(ctx, keyspace::kZset, kMax ? "zpopmax" : "zpopmin", a.key);
  erase_if_emptied(s, it, z, a.key, ctx);
}

void query_zscore(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z) { r.null(); return; }
  const ZEntry* found = z->order.find_member(a[2]);
  if (!found) r.null(); else r.double_value(found->score);
}

void query_zcard(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  r.integer(z ? static_cast<int64_t>(z->order.size()) : 0);
}

// ---- ranges by score and by member ---------------------------------------------------------

// A score range, Redis' zslParseRange: "(" makes a bound exclusive; strtod's syntax (so
// "inf", "-inf", and even "" as 0); NaN refused.
struct ScoreRange {
  double min = 0, max = 0;
  bool minex = false, maxex = false;
  bool contains(double v) const { return (minex ? v > min : v >= min) && (maxex ? v < max : v <= max); }
  bool empty() const { return min > max || (min == max && (minex || maxex)); }
};
bool parse_score_bound(std::string_view s, double* v, bool* ex) {
  *ex = !s.empty() && s[0] == '(';
  if (*ex) s.remove_prefix(1);
  const std::string text(s);
  char* end = nullptr;
  *v = std::strtod(text.c_str(), &end);
  return *end == '\0' && !std::isnan(*v);
}
bool parse_score_range(std::string_view min, std::string_view max, ScoreRange* out) {
  return parse_score_bound(min, &out->min, &out->minex) && parse_score_bound(max, &out->max, &out->maxex);
}
constexpr std::string_view kNotFloatRange = "ERR min or max is not a float";

// A member range, Redis' zslParseLexRange: "[" inclusive, "(" exclusive, "-" and "+" the
// ends of everything.
struct LexBound {
  enum class Kind : uint8_t { kMinusInf, kPlusInf, kValue } kind = Kind::kValue;
  std::string_view value;
  bool ex = false;
  // <0, 0, >0 as v is below, at or above the bound.
  int compare(std::string_view v) const {
    if (kind == Kind::kMinusInf) return 1;
    if (kind == Kind::kPlusInf) return -1;
    const int c = v.compare(value);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
};
struct LexRange {
  LexBound min, max;
  bool contains(std::string_view v) const {
    const int lo = min.compare(v), hi = max.compare(v);
    return (min.ex ? lo > 0 : lo >= 0) && (max.ex ? hi < 0 : hi <= 0);
  }
  bool empty() const {
    // min vs max, as Redis' sdscmplex of the two bounds.
    auto rank = [](const LexBound& b) { return b.kind == LexBound::Kind::kMinusInf ? 0 : b.kind == LexBound::Kind::kValue ? 1 : 2; };
    int c = rank(min) - rank(max);
    if (c == 0 && min.kind == LexBound::Kind::kValue) c = min.value.compare(max.value);
    return c > 0 || (c == 0 && (min.ex || max.ex));
  }
};
bool parse_lex_bound(std::string_view s, LexBound* b) {
  if (s.empty()) return false;
  switch (s[0]) {
    case '+': if (s.size() != 1) return false; b->kind = LexBound::Kind::kPlusInf; b->ex = true; return true;
    case '-': if (s.size() != 1) return false; b->kind = LexBound::Kind::kMinusInf; b->ex = true; return true;
    case '(': b->ex = true; b->value = s.substr(1); return true;
    case '[': b->ex = false; b->value = s.substr(1); return true;
    default: return false;
  }
}
bool parse_lex_range(std::string_view min, std::string_view max, LexRange* out) {
  return parse_lex_bound(min, &out->min) && parse_lex_bound(max, &out->max);
}
constexpr std::string_view kNotLexRange = "ERR min or max not valid string range item";


// The first entry with a score above (or at, if !exclusive) v.
ZOrder::const_iterator score_lower_bound(const ZOrder& order, double v, bool exclusive) {
  if (!exclusive) return order.lower_bound(ZEntryKey{v, std::string_view()});
  if (v == std::numeric_limits<double>::infinity()) return order.end();
  return order.lower_bound(ZEntryKey{std::nextafter(v, std::numeric_limits<double>::infinity()), std::string_view()});
}

// What ZRANGE and its older forms select.
struct ZRangeSpec {
  enum class By : uint8_t { kRank, kScore, kLex } by = By::kRank;
  bool rev = false;
  bool withscores = false;
  int64_t offset = 0, limit = -1;  // BYSCORE/BYLEX: LIMIT offset count (count < 0: all)
  int64_t start = 0, stop = 0;     // by rank
  ScoreRange score;
  LexRange lex;
};

// The entries the range selects, in reply order. Rank: O(log n + k); score: O(log n + k);
// lex (equal scores, as Redis requires): a walk from the end it starts at.
std::vector<const ZEntry*> zset_select(const ZSet& z, const ZRangeSpec& spec) {
  std::vector<const ZEntry*> out;
  const ZOrder& order = z.order;
  if (spec.by == ZRangeSpec::By::kRank) {
    size_t first, last;
    if (!clamp_range(spec.start, spec.stop, order.size(), &first, &last)) return out;
    out.reserve(last - first + 1);
    if (!spec.rev) {
      auto e = order.at(first);
      for (size_t i = first; i <= last; i++, ++e) out.push_back(&*e);
    } else {
      auto e = order.at(order.size() - 1 - first);
      for (size_t i = first; i <= last; i++, --e) out.push_back(&*e);
    }
    return out;
  }
  if (spec.offset < 0 || (spec.offset > 0 && static_cast<uint64_t>(spec.offset) >= order.size())) return out;
  uint64_t skip = static_cast<uint64_t>(spec.offset);
  uint64_t left = spec.limit < 0 ? UINT64_MAX : static_cast<uint64_t>(spec.limit);
  auto take = [&](const ZEntry& e) {
    if (skip > 0) { skip--; return; }
    out.push_back(&e);
    left--;
  };
  if (spec.by == ZRangeSpec::By::kScore) {
    if (spec.score.empty()) return out;
    if (!spec.rev) {
      for (auto e = score_lower_bound(order, spec.score.min, spec.score.minex); e != order.end() && left > 0; ++e) {
        if (!spec.score.contains(e->score)) break;
        take(*e);
      }
    } else {
      auto e = std::make_reverse_iterator(score_lower_bound(order, spec.score.max, !spec.score.maxex));
      for (; e != order.rend() && left > 0; ++e) {
        if (!spec.score.contains(e->score)) break;
        take(*e);
      }
    }
    return out;
  }
  if (spec.lex.empty()) return out;
  if (!spec.rev) {
    auto e = order.begin();
    while (e != order.end() && !spec.lex.contains(e->member) && spec.lex.max.compare(e->member) <= 0) ++e;
    for (; e != order.end() && left > 0 && spec.lex.contains(e->member); ++e) take(*e);
  } else {
    auto e = order.rbegin();
    while (e != order.rend() && !spec.lex.contains(e->member) && spec.lex.min.compare(e->member) >= 0) ++e;
    for (; e != order.rend() && left > 0 && spec.lex.contains(e->member); ++e) take(*e);
  }
  return out;
}

// WITHSCORES, as Redis 7: RESP2 a flat member, score, ...; RESP3 [member, score] pairs.
void reply_zentries(Reply& r, const std::vector<const ZEntry*>& entries, bool withscores) {
  const bool pairs = withscores && r.resp3();
  r.array(withscores && !pairs ? 2 * entries.size() : entries.size());
  for (const ZEntry* e : entries) {
    if (pairs) r.array(2);
    r.bulk(e->member);
    if (withscores) r.double_value(e->score);
  }
}

// What ZRANGE selects, found and written in slices (hmdb::ReplyProducer: nothing is applied
// meanwhile, so the entries stay where they are): the same entries in the same order as
// zset_select, without listing them. They are consecutive in the walk's direction (It: the
// order's iterator, or its reverse), so a first pass finds the first one and counts them
// (by rank both are known at once: no pass), a second writes them. BYLEX's walk first skips
// what zset_select skips before the range. Each entry stepped over counts against the slice.
template <class It>
class ZRangeProducer final : public ReplyProducer {
 public:
  // By rank: count entries from `first`.
  ZRangeProducer(It first, size_t count, bool withscores) : withscores_(withscores), it_(first), count_(count) {
    stage_ = kWrite;
  }
  // By score or member: the walk from `from` to `end` under spec (its bounds copied here).
  ZRangeProducer(const ZRangeSpec& spec, It from, It end) : spec_(spec), withscores_(spec.withscores), it_(from), end_(end) {
    lex_min_ = spec.lex.min.value;
    lex_max_ = spec.lex.max.value;
    spec_.lex.min.value = lex_min_;
    spec_.lex.max.value = lex_max_;
    skip_ = static_cast<uint64_t>(spec.offset);
    left_ = spec.limit < 0 ? UINT64_MAX : static_cast<uint64_t>(spec.limit);
    stage_ = spec.by == ZRangeSpec::By::kLex ? kBeforeRange : kInRange;
  }
  ZRangeProducer(const ZRangeProducer&) = delete;
  ZRangeProducer& operator=(const ZRangeProducer&) = delete;

  // The first pass, up to `budget` entries stepped over: true once the entries are counted.
  bool count_some(size_t budget, size_t* work) {
    if (stage_ == kBeforeRange) {
      const bool rev = spec_.rev;
      for (; it_ != end_; ++it_) {
        const std::string_view m = it_->member;
        if (spec_.lex.contains(m) || (rev ? spec_.lex.min.compare(m) < 0 : spec_.lex.max.compare(m) > 0)) break;
        if (*work >= budget) return false;
        ++*work;
      }
      stage_ = kInRange;
    }
    if (stage_ == kInRange) {
      for (; it_ != end_ && left_ > 0 && in_range(*it_); ++it_) {
        if (*work >= budget) return false;
        ++*work;
        if (skip_ > 0) { skip_--; continue; }
        if (count_ == 0) first_ = it_;
        count_++;
        left_--;
      }
      it_ = first_;
      stage_ = kWrite;
    }
    return true;
  }
  size_t count() const { return count_; }

  bool next(Reply& r, const SliceBudget& budget) override {
    size_t work = 0;
    if (!count_some(budget.elements, &work)) return false;
    const bool pairs = withscores_ && r.resp3();
    if (!started_) r.array(withscores_ && !pairs ? 2 * count_ : count_);
    started_ = true;
    const size_t start = r.size();
    for (; written_ < count_; written_++, ++it_) {
      if (work >= budget.elements || r.size() - start >= budget.bytes) return false;
      work++;
      if (pairs) r.array(2);
      r.bulk(it_->member);
      if (withscores_) r.double_value(it_->score);
    }
    return true;
  }

 private:
  bool in_range(const ZEntry& e) const {
    return spec_.by == ZRangeSpec::By::kScore ? spec_.score.contains(e.score) : spec_.lex.contains(e.member);
  }
  enum Stage : uint8_t { kBeforeRange, kInRange, kWrite };
  ZRangeSpec spec_;
  std::string lex_min_, lex_max_;  // spec_.lex's bounds point here: the command's words go
  const bool withscores_;
  Stage stage_;
  It it_, end_{}, first_{};
  uint64_t skip_ = 0, left_ = 0;
  size_t count_ = 0, written_ = 0;
  bool started_ = false;
};

// ZRANGE's selection made lazily when it is big: beyond a slice's worth of entries (by rank)
// or of entries in the sorted set (by score or member: its first pass runs here up to a
// slice's worth, and a range found within it is written whole, as zset_select would). False
// if the caller is to reply whole.
template <class It>
bool zrange_lazily(std::unique_ptr<ZRangeProducer<It>> p, const QueryContext& ctx, Reply& r) {
  size_t work = 0;
  if (p->count_some(ctx.slice_elements, &work) && p->count() <= ctx.slice_elements) {
    while (!p->next(r, SliceBudget{})) {
    }
    return true;
  }
  ctx.produce(r, std::move(p));
  return true;
}
bool zrange_sliced(const ZSet& z, const ZRangeSpec& spec, const QueryContext& ctx, Reply& r) {
  const ZOrder& order = z.order;
  using Rev = ZOrder::const_reverse_iterator;
  if (spec.by == ZRangeSpec::By::kRank) {
    size_t first, last;
    if (!clamp_range(spec.start, spec.stop, order.size(), &first, &last) || !ctx.slices(last - first + 1)) return false;
    if (!spec.rev) {
      ctx.produce(r, std::make_unique<ZRangeProducer<ZOrder::const_iterator>>(order.at(first), last - first + 1, spec.withscores));
    } else {
      ctx.produce(r, std::make_unique<ZRangeProducer<Rev>>(Rev(std::next(order.at(order.size() - 1 - first))), last - first + 1,
                                                           spec.withscores));
    }
    return true;
  }
  if (!ctx.slices(order.size())) return false;
  // zset_select's early exits (an empty reply) stay there.
  if (spec.offset < 0 || (spec.offset > 0 && static_cast<uint64_t>(spec.offset) >= order.size())) return false;
  if (spec.by == ZRangeSpec::By::kScore) {
    if (spec.score.empty()) return false;
    if (!spec.rev) {
      return zrange_lazily(std::make_unique<ZRangeProducer<ZOrder::const_iterator>>(
                               spec, score_lower_bound(order, spec.score.min, spec.score.minex), order.end()),
                           ctx, r);
    }
    return zrange_lazily(std::make_unique<ZRangeProducer<Rev>>(
                             spec, std::make_reverse_iterator(score_lower_bound(order, spec.score.max, !spec.score.maxex)), order.rend()),
                         ctx, r);
  }
  if (spec.lex.empty()) return false;
  if (!spec.rev) return zrange_lazily(std::make_unique<ZRangeProducer<ZOrder::const_iterator>>(spec, order.begin(), order.end()), ctx, r);
  return zrange_lazily(std::make_unique<ZRangeProducer<Rev>>(spec, order.rbegin(), order.rend()), ctx, r);
}

// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES], and the
// older forms with their kind fixed (kBy/kRev: 0 free, else 1 + the fixed value): Redis'
// zrangeGenericCommand, its option loop and its errors.
enum class Fixed : uint8_t { kFree, kRank, kScore, kLex };
template <Fixed kBy, int kRev>  // kRev: -1 free, 0 forward, 1 reverse
void query_zrange_generic(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ZRangeSpec spec;
  bool by_set = kBy != Fixed::kFree, rev_set = kRev >= 0;
  spec.rev = kRev == 1;
  if (kBy == Fixed::kScore) spec.by = ZRangeSpec::By::kScore;
  if (kBy == Fixed::kLex) spec.by = ZRangeSpec::By::kLex;
  for (size_t i = 4; i < a.size(); i++) {
    const size_t left = a.size() - i - 1;
    if (iequals(a[i], "WITHSCORES")) {
      spec.withscores = true;
    } else if (iequals(a[i], "LIMIT") && left >= 2) {
      if (!parse_int64(a[i + 1], &spec.offset) || !parse_int64(a[i + 2], &spec.limit)) { r.error(kNotInteger); return; }
      i += 2;
    } else if (!rev_set && iequals(a[i], "REV")) {
      rev_set = true;
      spec.rev = true;
    } else if (!by_set && iequals(a[i], "BYLEX")) {
      by_set = true;
      spec.by = ZRangeSpec::By::kLex;
    } else if (!by_set && iequals(a[i], "BYSCORE")) {
      by_set = true;
      spec.by = ZRangeSpec::By::kScore;
    } else {
      r.error(kSyntax);
      return;
    }
  }
  // Redis tests the count only: by rank, LIMIT <any offset> -1 is accepted and ignored.
  if (spec.limit != -1 && spec.by == ZRangeSpec::By::kRank) {
    r.error("ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX");
    return;
  }
  if (spec.withscores && spec.by == ZRangeSpec::By::kLex) {
    r.error("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    return;
  }
  // By score or member, a reverse range is written max then min.
  const bool swap = spec.rev && spec.by != ZRangeSpec::By::kRank;
  const std::string_view lo = swap ? a[3] : a[2], hi = swap ? a[2] : a[3];
  switch (spec.by) {
    case ZRangeSpec::By::kRank:
      if (!parse_int64(lo, &spec.start) || !parse_int64(hi, &spec.stop)) { r.error(kNotInteger); return; }
      break;
    case ZRangeSpec::By::kScore:
      if (!parse_score_range(lo, hi, &spec.score)) { r.error(kNotFloatRange); return; }
      break;
    case ZRangeSpec::By::kLex:
      if (!parse_lex_range(lo, hi, &spec.lex)) { r.error(kNotLexRange); return; }
      break;
  }
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z) { r.array(0); return; }
  if (ctx.producer && zrange_sliced(*z, spec, ctx, r)) [[unlikely]] return;
  reply_zentries(r, zset_select(*z, spec), spec.withscores);
}

// The 0-based rank of `it` in `order` (its size for end()): O(log n), found again by the
// entry's key.
size_t zrank_at(const ZOrder& order, ZOrder::const_iterator it) {
  if (it == order.end()) return order.size();
  return static_cast<size_t>(order.rank(ZEntryKey{it->score, it->member}));
}

// The rank of the first entry not below a member bound (`upper`: of the first entry above
// it), when every score is `score` (the order is then the members' order).
size_t zlex_bound_rank(const ZOrder& order, double score, const LexBound& b, bool upper) {
  if (b.kind == LexBound::Kind::kMinusInf) return 0;
  if (b.kind == LexBound::Kind::kPlusInf) return order.size();
  auto it = order.lower_bound(ZEntryKey{score, b.value});
  // Past an entry equal to the bound when the range leaves it out below (an exclusive min)
  // or keeps it (an inclusive max).
  if (it != order.end() && it->member == b.value && b.ex != upper) ++it;
  return zrank_at(order, it);
}

// ZLEXCOUNT over unequal scores: ZRANGE BYLEX's first pass (what it selects, in order) run a
// slice of entries stepped over at a time, then the count.
class ZLexCountProducer final : public ReplyProducer {
 public:
  explicit ZLexCountProducer(std::unique_ptr<ZRangeProducer<ZOrder::const_iterator>> walk) : walk_(std::move(walk)) {}
  bool next(Reply& r, const SliceBudget& budget) override {
    size_t work = 0;
    if (!walk_->count_some(budget.elements, &work)) return false;
    r.integer(static_cast<int64_t>(walk_->count()));
    return true;
  }

 private:
  std::unique_ptr<ZRangeProducer<ZOrder::const_iterator>> walk_;
};

// ZCOUNT key min max / ZLEXCOUNT key min max: O(log n), two ranks (the B+tree counts the
// entries below each child), never a walk of the range, so no count is a long turn.
// ZLEXCOUNT over unequal scores (Redis leaves that undefined) counts what ZRANGE BYLEX
// selects by walking the order: beyond a slice's worth of entries, in slices
// (ZLexCountProducer), as ZRANGE BYLEX's own walk.
void query_zcount(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ScoreRange range;
  if (!parse_score_range(a[2], a[3], &range)) { r.error(kNotFloatRange); return; }
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z || z->order.empty() || range.empty()) { r.integer(0); return; }
  const size_t first = zrank_at(z->order, score_lower_bound(z->order, range.min, range.minex));
  const size_t past = zrank_at(z->order, score_lower_bound(z->order, range.max, !range.maxex));
  r.integer(past > first ? static_cast<int64_t>(past - first) : 0);
}
void query_zlexcount(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ZRangeSpec spec;
  spec.by = ZRangeSpec::By::kLex;
  if (!parse_lex_range(a[2], a[3], &spec.lex)) { r.error(kNotLexRange); return; }
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z || z->order.empty() || spec.lex.empty()) { r.integer(0); return; }
  const ZOrder& order = z->order;
  if (order.begin()->score != order.rbegin()->score) {  // unequal scores: ZRANGE BYLEX's walk
    auto walk = std::make_unique<ZRangeProducer<ZOrder::const_iterator>>(spec, order.begin(), order.end());
    size_t work = 0;
    if (walk->count_some(ctx.slices(order.size()) ? ctx.slice_elements : SIZE_MAX, &work)) {
      r.integer(static_cast<int64_t>(walk->count()));
    } else {
      ctx.produce(r, std::make_unique<ZLexCountProducer>(std::move(walk)));
    }
    return;
  }
  const double score = order.begin()->score;
  const size_t first = zlex_bound_rank(order, score, spec.lex.min, false);
  const size_t past = zlex_bound_rank(order, score, spec.lex.max, true);
  r.integer(past > first ? static_cast<int64_t>(past - first) : 0);
}

// ZRANK / ZREVRANK key member: O(log n) (the skip list's spans).
template <bool kRev>
void query_zrank(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z) { r.null(); return; }
  const ZEntry* found = z->order.find_member(a[2]);
  if (!found) { r.null(); return; }
  const int64_t rank = z->order.rank(ZEntryKey{found->score, found->member});
  assert(rank >= 0);  // the member index holds exactly the order's entries
  r.integer(kRev ? static_cast<int64_t>(z->order.size()) - 1 - rank : rank);
}

void query_zmscore(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  r.array(a.size() - 2);
  for (size_t i = 2; i < a.size(); i++) {
    const ZEntry* found = z ? z->order.find_member(a[i]) : nullptr;
    if (found) r.double_value(found->score); else r.null();
  }
}

// ZINCRBY key increment member: ZADD key INCR increment member.
bool parse_zincrby(Args a, ZAddArgs& o, std::string& err) {
  o.key = a[1];
  o.incr = true;
  o.pairs = a.subspan(2);
  double v;
  if (!parse_double(a[2], &v)) { err = kNotFloat; return false; }
  return true;
}

// ZREMRANGEBYRANK key start stop / ZREMRANGEBYSCORE key min max / ZREMRANGEBYLEX key min max.
struct ZRemRangeArgs {
  std::string_view key;
  ZRangeSpec spec;
};
template <ZRangeSpec::By kBy>
bool parse_zremrange(Args a, ZRemRangeArgs& o, std::string& err) {
  o.key = a[1];
  o.spec.by = kBy;
  switch (kBy) {
    case ZRangeSpec::By::kRank:
      if (!parse_int64(a[2], &o.spec.start) || !parse_int64(a[3], &o.spec.stop)) { err = kNotInteger; return false; }
      return true;
    case ZRangeSpec::By::kScore:
      if (!parse_score_range(a[2], a[3], &o.spec.score)) { err = kNotFloatRange; return false; }
      return true;
    case ZRangeSpec::By::kLex:
      if (!parse_lex_range(a[2], a[3], &o.spec.lex)) { err = kNotLexRange; return false; }
      return true;
  }
  return false;
}
void apply_zremrange(State& s, const ZRemRangeArgs& a, const ApplyContext& ctx, Reply& r) {
  static constexpr std::string_view kEvents[] = {"zremrangebyrank", "zremrangebyscore", "zremrangebylex"};
  KeyIter it;
  ZSet* z;
  if (!container_for_write<ZSet>(s, a.key, ctx, r, &it, &z)) return;
  if (!z) { r.integer(0); return; }
  std::vector<std::string> members;
  for (const ZEntry* e : zset_select(*z, a.spec)) {
    save_zset_erase(s, it, *e);  // before any of them changes
    members.emplace_back(e->member);
  }
  for (const std::string& m : members) zset_erase(z, m);
  if (!members.empty()) notify(ctx, keyspace::kZset, kEvents[static_cast<int>(a.spec.by)], a.key);
  erase_if_emptied(s, it, z, a.key, ctx);
  r.integer(static_cast<int64_t>(members.size()));
}

// ZRANDMEMBER key [count [WITHSCORES]] (random choices: query_seed).
void query_zrandmember(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  int64_t count = 0;
  const bool has_count = a.size() >= 3;
  if (has_count && !parse_random_count(a[2], &count, r)) return;
  if (a.size() > 4 || (a.size() == 4 && !iequals(a[3], "WITHSCORES"))) { r.error(kSyntax); return; }
  const bool withscores = a.size() == 4;
  if (withscores && !pairs_count_in_range(count, r)) return;
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z) { if (has_count) r.array(0); else r.null(); return; }
  // Each pick is the entry at a rank: O(log n), not a copy of the whole order.
  const uint64_t seed = query_seed(ctx, a[1]);
  if (!has_count) { r.bulk(z->order.at(random_picks(z->order.size(), 1, seed)[0])->member); return; }
  if (ctx.slices(pick_count(z->order.size(), count, true))) [[unlikely]] {
    ctx.produce(r, std::make_unique<RandomPicksProducer<ZSet>>(*z, count, true, withscores, seed));
    return;
  }
  std::vector<const ZEntry*> picked;
  for (size_t i : random_picks(z->order.size(), count, seed)) picked.push_back(&*z->order.at(i));
  reply_zentries(r, picked, withscores);
}

// ZUNION / ZINTER / ZDIFF numkeys key ... [WEIGHTS w ...] [AGGREGATE SUM|MIN|MAX]
// [WITHSCORES], and the STORE forms (dst numkeys key ...): sets count as sorted sets of
// score 1, as in Redis.
struct ZSetOpArgs {
  std::string_view dst;  // STORE forms
  Args keys;
  std::vector<double> weights;
  enum class Aggregate : uint8_t { kSum, kMin, kMax } aggregate = Aggregate::kSum;
  bool withscores = false;
};
// *in_options tells whether err is an option's (WEIGHTS, AGGREGATE, ...) rather than numkeys':
// the query forms check the keys' types between the two, as Redis does.
template <SetOp kOp, bool kStore>
bool parse_zsetop_args(Args a, ZSetOpArgs& o, std::string& err, bool* in_options) {
  static constexpr std::string_view kNames[2][3] = {{"zinter", "zunion", "zdiff"}, {"zinterstore", "zunionstore", "zdiffstore"}};
  const size_t numkeys_at = kStore ? 2 : 1;
  if (kStore) o.dst = a[1];
  int64_t n = 0;
  if (!parse_int64(a[numkeys_at], &n)) { err = kNotInteger; return false; }
  if (n < 1) {
    err = "ERR at least 1 input key is needed for '" + std::string(kNames[kStore][static_cast<int>(kOp)]) + "' command";
    return false;
  }
  if (static_cast<uint64_t>(n) > a.size() - numkeys_at - 1) { err = kSyntax; return false; }
  o.keys = a.subspan(numkeys_at + 1, static_cast<size_t>(n));
  o.weights.assign(static_cast<size_t>(n), 1.0);
  *in_options = true;
  for (size_t i = numkeys_at + 1 + static_cast<size_t>(n); i < a.size();) {
    const size_t left = a.size() - i;
    if (kOp != SetOp::kDiff && left >= static_cast<size_t>(n) + 1 && iequals(a[i], "WEIGHTS")) {
      i++;
      for (size_t k = 0; k < static_cast<size_t>(n); k++, i++) {
        if (!parse_double(a[i], &o.weights[k])) { err = "ERR weight value is not a float"; return false; }
      }
    } else if (kOp != SetOp::kDiff && left >= 2 && iequals(a[i], "AGGREGATE")) {
      if (iequals(a[i + 1], "SUM")) o.aggregate = ZSetOpArgs::Aggregate::kSum;
      else if (iequals(a[i + 1], "MIN")) o.aggregate = ZSetOpArgs::Aggregate::kMin;
      else if (iequals(a[i + 1], "MAX")) o.aggregate = ZSetOpArgs::Aggregate::kMax;
      else { err = kSyntax; return false; }
      i += 2;
    } else if (!kStore && iequals(a[i], "WITHSCORES")) {
      o.withscores = true;
      i++;
    } else {
      err = kSyntax;
      return false;
    }
  }
  return true;
}

// The STORE forms' parser: every word is checked before the entry is logged (the options
// before the keys' types, docs/kv-commands.md).
template <SetOp kOp, bool kStore>
bool parse_zsetop(Args a, ZSetOpArgs& o, std::string& err) {
  bool in_options = false;
  return parse_zsetop_args<kOp, kStore>(a, o, err, &in_options);
}

// One input of a sorted-set operation: a sorted set, a set (scores 1), or nothing.
struct ZInput {
  const ZSet* z = nullptr;
  const Set* set = nullptr;
  double weight = 1;
  size_t size() const { return z ? z->order.size() : set ? set->size() : 0; }
  bool find(std::string_view m, double* score) const {
    if (z) {
      const ZEntry* e = z->order.find_member(m);
      if (!e) return false;
      *score = e->score;
      return true;
    }
    if (set && set->contains(SetMemberKey{member_hash(m), m})) { *score = 1; return true; }
    return false;
  }
  template <class Fn>
  void for_each(Fn&& fn) const {  // fn(std::string_view member, double score)
    if (z) for (const ZEntry& e : z->order) fn(std::string_view(e.member), e.score);
    if (set) set->for_each([&](std::string_view m) { fn(m, 1.0); });
  }
};

double weighted(double score, double weight) {
  const double v = score * weight;
  return std::isnan(v) ? 0 : v;  // inf * 0, as Redis
}
void aggregate_into(double* acc, double v, ZSetOpArgs::Aggregate how) {
  switch (how) {
    case ZSetOpArgs::Aggregate::kSum: *acc += v; if (std::isnan(*acc)) *acc = 0; break;  // inf + -inf
    case ZSetOpArgs::Aggregate::kMin: *acc = std::min(*acc, v); break;
    case ZSetOpArgs::Aggregate::kMax: *acc = std::max(*acc, v); break;
  }
}

// Reads the inputs (WRONGTYPE for anything but a sorted set or a set); false after replying.
bool read_zinputs(const State& s, const ZSetOpArgs& a, uint64_t now_ms, Reply& r, std::vector<ZInput>* out) {
  for (size_t i = 0; i < a.keys.size(); i++) {
    ZInput in;
    in.weight = a.weights[i];
    if (const Value* v = live_read(s, a.keys[i], now_ms)) {
      in.z = boxed<ZSet>(*v);
      in.set = std::get_if<Set>(v);
      if (!in.z && !in.set) { r.error(kWrongType); return false; }
    }
    out->push_back(in);
  }
  return true;
}

// A sorted-set operation's (score, member) pairs, found a few candidates at a time
// (ZStoreProducer, a sliced ZUNIONSTORE) or all at once (combine_zsets): one code path, so a
// sliced write computes every score with the same operations in the same order as a whole
// one. ZUNION and ZINTER take their inputs smallest first, as Redis does (the order of
// additions of the weighted scores). ZUNION walks each input in turn. Over up to
// kZUnionLookupInputsMax inputs present it takes a member at its first input: one an earlier
// input holds is skipped, else its weighted score is aggregated with the weighted scores of
// the later inputs holding it, in input order (what adding each input's members into a table
// of sums in turn computes, without a table: a table of millions, fresh memory written at
// random, cost a page fault per slot in the first slices); over more inputs, where a member's
// lookups would outnumber the other ways several times, it sorts instead: every input's
// (member, weighted score) in turn into one array (written in order: no page faults at
// random), then that array sorted by member in runs of at most a slice's work, then the runs
// merged, each member's weighted scores aggregated in input order as they meet (the order a
// table of sums adds them in; a table, grown as members arrived, rehashed all so far in one
// slice: 44-220 ms of CPU at 6 x 1 M, and reserved up front it faulted its pages in at random,
// up to 28 ms a slice; bench/README.md). ZINTER walks the smallest and looks each member up in the others; ZDIFF walks the
// first and looks each member up in the others present. Each candidate, and each lookup in
// another input, is one unit of work (zsetop_work). The pairs come in the walk's order, not
// sorted; they are views into the inputs, valid while the state does not change.
// ZUNION's walk (ZSetOpWalk) looks a member up in the other inputs up to this many inputs
// present; beyond, it adds the members into a table (a member's lookups would cost more).
inline constexpr size_t kZUnionLookupInputsMax = 4;
// A run of the sorting ZUNION (above) holds at most this many entries, sorted in one go.
inline constexpr size_t kZUnionSortRunMax = 8192;

class ZSetOpWalk {
 public:
  using Pair = std::pair<double, std::string_view>;

  ZSetOpWalk(SetOp op, std::vector<ZInput> in, ZSetOpArgs::Aggregate how) : op_(op), in_(std::move(in)), how_(how) {
    if (op_ != SetOp::kDiff) {
      std::stable_sort(in_.begin(), in_.end(), [](const ZInput& x, const ZInput& y) { return x.size() < y.size(); });
    }
    // Reserved up front (an upper bound): no copy of millions in one slice.
    if (op_ == SetOp::kUnion) {
      size_t total = 0, present = 0;
      for (const ZInput& i : in_) {
        total += i.size();
        present += (i.z || i.set) ? 1 : 0;
      }
      walked_ = in_.size();
      sorting_ = present > kZUnionLookupInputsMax;
      if (sorting_) keyed_.reserve(total);
      else pairs_.reserve(total);
    } else {
      pairs_.reserve(in_.empty() ? 0 : in_[0].size());
      walked_ = in_.empty() ? 0 : 1;
    }
  }
  ZSetOpWalk(const ZSetOpWalk&) = delete;  // the cursors refer to in_
  ZSetOpWalk& operator=(const ZSetOpWalk&) = delete;

  // Visits candidates until *work reaches budget or the walk ends: true once it ended.
  bool walk(size_t budget, size_t* work) {
    for (; input_ < walked_; input_++, started_ = false, set_cursor_ = Set::Cursor{}) {
      const ZInput& in = in_[input_];
      if (in.z) {
        if (!started_) z_cursor_ = in.z->order.begin();
        started_ = true;
        while (z_cursor_ != in.z->order.end()) {
          if (*work >= budget) return false;
          const ZEntry& e = *z_cursor_;
          ++z_cursor_;
          visit(e.member, e.score, work);
        }
      } else if (in.set) {
        SetMemberKey m;
        while (in.set->at(set_cursor_, &m)) {
          if (*work >= budget) return false;
          in.set->advance(set_cursor_);
          visit(m.value, 1.0, work);
        }
      }
    }
    return !sorting_ || sort_and_merge(budget, work);
  }

  std::vector<Pair>& pairs() { return pairs_; }

 private:
  void visit(std::string_view m, double score, size_t* work) {
    ++*work;
    switch (op_) {
      case SetOp::kUnion: {
        if (sorting_) {
          keyed_.push_back(Keyed{m, weighted(score, in_[input_].weight), static_cast<uint32_t>(input_)});
          return;
        }
        double other;
        for (size_t i = 0; i < input_; i++) {
          if (!in_[i].z && !in_[i].set) continue;  // missing: holds nothing
          ++*work;
          if (in_[i].find(m, &other)) return;  // taken at that input
        }
        double acc = weighted(score, in_[input_].weight);
        for (size_t i = input_ + 1; i < in_.size(); i++) {
          if (!in_[i].z && !in_[i].set) continue;
          ++*work;
          if (in_[i].find(m, &other)) aggregate_into(&acc, weighted(other, in_[i].weight), how_);
        }
        pairs_.emplace_back(acc, m);
        return;
      }
      case SetOp::kInter: {
        double acc = weighted(score, in_[0].weight);
        for (size_t i = 1; i < in_.size(); i++) {
          double other;
          ++*work;
          if (!in_[i].find(m, &other)) return;
          // Redis zeroes a NaN product (inf * 0) of the first input only: a later one makes
          // SUM 0 (NaN sum) and leaves MIN and MAX unchanged (comparisons with NaN fail).
          aggregate_into(&acc, other * in_[i].weight, how_);
        }
        pairs_.emplace_back(acc, m);
        return;
      }
      case SetOp::kDiff: {
        double ignored;
        for (size_t i = 1; i < in_.size(); i++) {
          if (!in_[i].z && !in_[i].set) continue;  // missing: holds nothing
          ++*work;
          if (in_[i].find(m, &ignored)) return;
        }
        pairs_.emplace_back(score, m);
        return;
      }
    }
  }

  const SetOp op_;
  std::vector<ZInput> in_;
  const ZSetOpArgs::Aggregate how_;
  size_t walked_ = 0;  // inputs walked: all for ZUNION, the first for ZINTER and ZDIFF
  size_t input_ = 0;   // the one being walked
  bool started_ = false;
  bool sorting_ = false;  // ZUNION over more than kZUnionLookupInputsMax inputs present
  ZOrder::const_iterator z_cursor_;
  Set::Cursor set_cursor_;
  std::vector<Pair> pairs_;

  // The sorting ZUNION's entries: a member, its weighted score in one input, that input.
  // (member, input) is distinct for every entry (an input holds a member once).
  struct Keyed {
    std::string_view member;
    double v;
    uint32_t input;
    bool operator<(const Keyed& o) const { return member != o.member ? member < o.member : input < o.input; }
  };
  struct Run {  // keyed_[next, end), sorted
    size_t next, end;
  };
  struct After {  // a min-heap of runs by their next entry
    const std::vector<Keyed>* k;
    const std::vector<Run>* runs;
    bool operator()(size_t x, size_t y) const { return (*k)[(*runs)[y].next] < (*k)[(*runs)[x].next]; }
  };

  // The sorting ZUNION after the walk: keyed_ sorted in runs, then the runs merged into
  // pairs_, a member's scores aggregated in input order (the runs hold the inputs in walk
  // order, and (member, input) orders ties); one unit per entry sorted, one per entry merged.
  bool sort_and_merge(size_t budget, size_t* work) {
    while (sorted_ < keyed_.size()) {
      if (*work >= budget) return false;
      const size_t n = std::min({budget - *work, kZUnionSortRunMax, keyed_.size() - sorted_});
      std::sort(keyed_.begin() + static_cast<std::ptrdiff_t>(sorted_),
                keyed_.begin() + static_cast<std::ptrdiff_t>(sorted_ + n));
      runs_.push_back(Run{sorted_, sorted_ + n});
      sorted_ += n;
      *work += n;
    }
    const After after{&keyed_, &runs_};
    if (!merging_) {
      merging_ = true;
      for (size_t i = 0; i < runs_.size(); i++) heap_.push_back(i);
      std::make_heap(heap_.begin(), heap_.end(), after);
      pairs_.reserve(keyed_.size());  // an upper bound: every member distinct
    }
    while (!heap_.empty()) {
      if (*work >= budget) return false;
      std::pop_heap(heap_.begin(), heap_.end(), after);
      Run& run = runs_[heap_.back()];
      const Keyed& e = keyed_[run.next++];
      if (!pairs_.empty() && pairs_.back().second == e.member) aggregate_into(&pairs_.back().first, e.v, how_);
      else pairs_.emplace_back(e.v, e.member);
      ++*work;
      if (run.next == run.end) heap_.pop_back();
      else std::push_heap(heap_.begin(), heap_.end(), after);
    }
    decltype(keyed_)().swap(keyed_);  // done with: freed in this slice
    decltype(runs_)().swap(runs_);
    return true;
  }

  std::vector<Keyed> keyed_;
  size_t sorted_ = 0;
  bool merging_ = false;
  std::vector<Run> runs_;
  std::vector<size_t> heap_;
};

// The work of a sorted-set operation's walk, in ZSetOpWalk's units (at most): ZUNION
// visits every input's members with a lookup in each other input present (over more than
// kZUnionLookupInputsMax present, each entry walked, sorted and merged instead), ZINTER the
// smallest input's with a lookup in each other, ZDIFF the first's with a lookup in each
// other present.
size_t zsetop_work(SetOp op, const std::vector<ZInput>& in) {
  if (in.empty()) return 0;
  switch (op) {
    case SetOp::kUnion: {
      size_t n = 0, present = 0;
      for (const ZInput& i : in) {
        n += i.size();
        present += (i.z || i.set) ? 1 : 0;
      }
      return present > kZUnionLookupInputsMax ? 3 * n : n * present;  // sorting: walk, sort, merge
    }
    case SetOp::kInter: {
      size_t n = SIZE_MAX;
      for (const ZInput& i : in) n = std::min(n, i.size());
      return n * in.size();
    }
    case SetOp::kDiff: {
      size_t lookups = 1;
      for (size_t i = 1; i < in.size(); i++) lookups += (in[i].z || in[i].set) ? 1 : 0;
      return in[0].size() * lookups;
    }
  }
  return 0;
}

// The result, in (score, member) order (scores are never NaN and members distinct, so the
// order is total). O(total · log).
std::vector<std::pair<double, std::string_view>> combine_zsets(SetOp op, std::vector<ZInput> in, ZSetOpArgs::Aggregate how) {
  ZSetOpWalk walk(op, std::move(in), how);
  size_t work = 0;
  walk.walk(SIZE_MAX, &work);
  std::vector<std::pair<double, std::string_view>> out = std::move(walk.pairs());
  std::sort(out.begin(), out.end());
  return out;
}

template <SetOp kOp>
void query_zsetop(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ZSetOpArgs o;
  std::string err;
  bool in_options = false;
  const bool parsed = parse_zsetop_args<kOp, false>(a, o, err, &in_options);
  if (!parsed && !in_options) { r.error(err); return; }
  // Redis' order: numkeys, then the keys' types (WRONGTYPE), then the options.
  std::vector<ZInput> in;
  if (!read_zinputs(s, o, ctx.now_ms, r, &in)) return;
  if (!parsed) { r.error(err); return; }
  const auto result = combine_zsets(kOp, std::move(in), o.aggregate);
  const bool pairs = o.withscores && r.resp3();
  r.array(o.withscores && !pairs ? 2 * result.size() : result.size());
  for (const auto& [score, m] : result) {
    if (pairs) r.array(2);
    r.bulk(m);
    if (o.withscores) r.double_value(score);
  }
}

// A sorted-set operation's result stored at dst (any type there goes, its deadline
// cleared); an empty result deletes dst. The size of the result.
void store_zset_result(State& s, std::string_view dst, std::unique_ptr<ZSet> z, SetOp op, const ApplyContext& ctx, Reply& r) {
  static constexpr std::string_view kEvents[] = {"zinterstore", "zunionstore", "zdiffstore"};
  const size_t n = z->order.size();
  KeyIter it = live_write(s, dst, ctx);
  if (n == 0) {
    if (it != s.keys.end()) {
      erase_key(s, it);
      notify(ctx, keyspace::kGeneric, "del", dst);
    }
  } else {
    if (it != s.keys.end()) save_replace(s, it);
    clear_deadline(s, dst);
    if (it != s.keys.end()) s.graveyard.bury_if_big(it->second);
    s.keys.insert_or_assign(dst, Value(std::move(z)));
    notify(ctx, keyspace::kZset, kEvents[static_cast<int>(op)], dst);
  }
  r.integer(static_cast<int64_t>(n));
}

// The work of inserting one entry into a new sorted set (an entry, its member index link, its
// leaf slot; ~0.7 us where a walk's unit costs ~0.15-0.3 us): a slice of 8,192 units inserts
// 2,048 (ZStoreProducer's merge; measured ~6 ms at 8,192 a slice, load 5).
inline constexpr size_t kZInsertWork = 4;

// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE's result computed in slices (hmdb::ApplyProducer),
// into memory of its own: ZSetOpWalk's pairs (the inputs stay as they are until finish():
// nothing else is applied meanwhile); then sorted, a run of at most a slice's budget a slice
// (each run one unit of work per pair); then the runs merged (a heap of one cursor a run) into
// a sorted set of its own, kZInsertWork units a pair inserted. The merge gives every pair in the order
// std::sort gives the whole (the order is total), so the sorted set is built by the same
// inserts in the same order as apply_zsetop_store's. finish() then does what that does: the
// expired inputs go, and the result is stored.
class ZStoreProducer final : public ApplyProducer {
 public:
  ZStoreProducer(State& s, SetOp op, std::string_view dst, Args keys, std::vector<ZInput> in, ZSetOpArgs::Aggregate how)
      : s_(s), op_(op), dst_(dst), z_(std::make_unique<ZSet>()) {
    for (std::string_view k : keys) keys_.emplace_back(k);
    walk_.emplace(op, std::move(in), how);
  }
  ZStoreProducer(const ZStoreProducer&) = delete;
  ZStoreProducer& operator=(const ZStoreProducer&) = delete;

  bool next(const SliceBudget& budget) override {
    const size_t b = std::max<size_t>(budget.elements, 1);
    size_t work = 0;
    if (phase_ == Phase::kWalk) {
      if (!walk_->walk(b, &work)) return false;
      phase_ = Phase::kSort;
    }
    std::vector<ZSetOpWalk::Pair>& p = walk_->pairs();
    if (phase_ == Phase::kSort) {
      while (sorted_ < p.size()) {
        if (work >= b) return false;
        const size_t n = std::min(b - work, p.size() - sorted_);
        std::sort(p.begin() + static_cast<std::ptrdiff_t>(sorted_), p.begin() + static_cast<std::ptrdiff_t>(sorted_ + n));
        runs_.push_back(Run{sorted_, sorted_ + n});
        sorted_ += n;
        work += n;
      }
      for (size_t i = 0; i < runs_.size(); i++) heap_.push_back(i);
      std::make_heap(heap_.begin(), heap_.end(), After{&p, &runs_});
      phase_ = Phase::kMerge;
    }
    const After after{&p, &runs_};
    while (!heap_.empty()) {
      if (work >= b) return false;
      std::pop_heap(heap_.begin(), heap_.end(), after);
      Run& run = runs_[heap_.back()];
      const ZSetOpWalk::Pair& e = p[run.next++];
      zset_insert(z_.get(), e.second, e.first);
      work += kZInsertWork;
      if (run.next == run.end) heap_.pop_back();
      else std::push_heap(heap_.begin(), heap_.end(), after);
    }
    walk_.reset();  // the pairs are in the sorted set now: freed in this slice, not finish()'s
    return true;
  }

  void finish(const ApplyContext& ctx, Reply& r) override {
    walk_.reset();
    for (const std::string& k : keys_) live_find(s_, k, ctx);  // expired inputs go first
    store_zset_result(s_, dst_, std::move(z_), op_, ctx, r);
  }

 private:
  enum class Phase : uint8_t { kWalk, kSort, kMerge };
  struct Run {  // pairs [next, end) of the walk's, sorted
    size_t next, end;
  };
  struct After {  // a min-heap of runs by their next pair
    const std::vector<ZSetOpWalk::Pair>* p;
    const std::vector<Run>* runs;
    bool operator()(size_t x, size_t y) const { return (*p)[(*runs)[y].next] < (*p)[(*runs)[x].next]; }
  };

  State& s_;
  const SetOp op_;
  const std::string dst_;
  std::vector<std::string> keys_;
  std::optional<ZSetOpWalk> walk_;
  Phase phase_ = Phase::kWalk;
  size_t sorted_ = 0;  // pairs sorted into runs
  std::vector<Run> runs_;
  std::vector<size_t> heap_;  // runs not yet merged
  std::unique_ptr<ZSet> z_;
};

// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE dst numkeys key ...: the result replaces dst (any
// type, its deadline cleared); an empty result deletes dst. The size of the result. Beyond a
// slice's worth of walk (zsetop_work), computed in slices (ZStoreProducer).
template <SetOp kOp>
void apply_zsetop_store(State& s, const ZSetOpArgs& a, const ApplyContext& ctx, Reply& r) {
  // The inputs are read before their expired ones are deleted (live_write, below): a read
  // counts those absent already, so the inputs are the same, and the others' nodes stay
  // where they are (key_table.h). A big result is then computed before anything changes.
  std::vector<ZInput> in;
  const bool typed = read_zinputs(s, a, ctx.now_ms, r, &in);
  if (typed && ctx.producer && ctx.slices(zsetop_work(kOp, in))) [[unlikely]] {
    ctx.produce(r, std::make_unique<ZStoreProducer>(s, kOp, a.dst, a.keys, std::move(in), a.aggregate));
    return;
  }
  for (std::string_view k : a.keys) live_find(s, k, ctx);  // expired inputs go first
  if (!typed) return;  // answered WRONGTYPE
  auto z = std::make_unique<ZSet>();
  for (const auto& [score, m] : combine_zsets(kOp, std::move(in), a.aggregate)) zset_insert(z.get(), m, score);
  store_zset_result(s, a.dst, std::move(z), kOp, ctx, r);
}

// =============================================================================================
// expiry
// =============================================================================================

struct ExpireArgs {
  std::string_view key;
  std::string_view name;  // for error texts
  bool absolute = false;
  int64_t when_ms = 0;
  bool nx = false, xx = false, gt = false, lt = false;
};

bool parse_expire_generic(Args a, ExpireArgs& o, std::string& err, bool seconds, bool absolute) {
  o.key = a[1];
  o.name = a[0];
  o.absolute = absolute;
  for (size_t i = 3; i < a.size(); i++) {
    if (iequals(a[i], "NX")) o.nx = true;
    else if (iequals(a[i], "XX")) o.xx = true;
    else if (iequals(a[i], "GT")) o.gt = true;
    else if (iequals(a[i], "LT")) o.lt = true;
    else { err = "ERR Unsupported option " + std::string(a[i]); return false; }
  }
  if (o.nx && (o.xx || o.gt || o.lt)) { err = "ERR NX and XX, GT or LT options at the same time are not compatible"; return false; }
  if (o.gt && o.lt) { err = "ERR GT and LT options at the same time are not compatible"; return false; }
  int64_t v = 0;
  if (!parse_int64(a[2], &v)) { err = kNotInteger; return false; }
  if (seconds) {
    if (v > std::numeric_limits<int64_t>::max() / 1000 || v < std::numeric_limits<int64_t>::min() / 1000) {
      err = "ERR invalid expire time in '" + lowercase(a[0]) + "' command";
      return false;
    }
    v *= 1000;
  }
  o.when_ms = v;
  return true;
}
bool parse_expire(Args a, ExpireArgs& o, std::string& e) { return parse_expire_generic(a, o, e, true, false); }
bool parse_pexpire(Args a, ExpireArgs& o, std::string& e) { return parse_expire_generic(a, o, e, false, false); }
bool parse_expireat(Args a, ExpireArgs& o, std::string& e) { return parse_expire_generic(a, o, e, true, true); }
bool parse_pexpireat(Args a, ExpireArgs& o, std::string& e) { return parse_expire_generic(a, o, e, false, true); }

// A deadline at or before now deletes the key at once (reply 1), as in Redis.
void apply_expire(State& s, const ExpireArgs& a, const ApplyContext& ctx, Reply& r) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t now = static_cast<int64_t>(std::min<uint64_t>(ctx.now_ms, kMax));
  int64_t when = a.when_ms;
  if (!a.absolute) {
    if (when > kMax - now) { r.error("ERR invalid expire time in '" + lowercase(a.name) + "' command"); return; }
    when += now;
  }
  KeyIter it = live_write(s, a.key, ctx);
  if (it == s.keys.end()) { r.integer(0); return; }
  std::optional<uint64_t> current = deadline_of(s, a.key);
  int64_t cur = current ? static_cast<int64_t>(*current) : 0;
  if ((a.nx && current) || (a.xx && !current) || (a.gt && (!current || when <= cur)) || (a.lt && current && when >= cur)) {
    r.integer(0);
    return;
  }
  if (when <= now) {
    erase_key(s, it);
    notify(ctx, keyspace::kGeneric, "del", a.key);
  } else {
    set_deadline(s, a.key, static_cast<uint64_t>(when));
    notify(ctx, keyspace::kGeneric, "expire", a.key);
  }
  r.integer(1);
}

void apply_persist(State& s, const KeyArg& a, const ApplyContext& ctx, Reply& r) {
  KeyIter it = live_write(s, a.key, ctx);
  if (it == s.keys.end()) { r.integer(0); return; }
  const bool had = clear_deadline(s, a.key);
  if (had) notify(ctx, keyspace::kGeneric, "persist", a.key);
  r.integer(had ? 1 : 0);
}

template <bool kMilliseconds>
void query_ttl(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  if (!live_read(s, a[1], ctx.now_ms)) { r.integer(-2); return; }
  std::optional<uint64_t> d = deadline_of(s, a[1]);
  if (!d) { r.integer(-1); return; }
  uint64_t left_ms = *d - ctx.now_ms;  // > 0: the key is live
  r.integer(static_cast<int64_t>(kMilliseconds ? left_ms : (left_ms + 500) / 1000));
}

// HMDB.EXPIRE: proposed by housekeeping(); deletes up to kExpireBatchMax keys whose
// deadline <= ctx.now_ms, oldest deadline first. Harmless if a client sends it: it only
// removes keys that are already logically absent.
void apply_hmdb_expire(State& s, const Words&, const ApplyContext& ctx, Reply& r) {
  int64_t n = 0;
  while (n < static_cast<int64_t>(kExpireBatchMax) && !s.expiry_order.empty() &&
         s.expiry_order.begin()->first <= ctx.now_ms) {
    auto first = s.expiry_order.begin();
    ctx.key_changed(first->second);  // an expiry is a change to a WATCH (key spec: reports_more)
    notify(ctx, keyspace::kExpired, "expired", first->second);
    auto key = s.keys.find(std::string_view(first->second));
    assert(key != s.keys.end());
    if (s.saving) [[unlikely]] s.saving->before_delete(key.hash(), first->second, key->second);
    s.graveyard.bury_if_big(key->second);
    s.keys.erase(key);
    size_t erased = s.expires.erase(std::string_view(first->second));
    assert(erased == 1);
    (void)erased;
    s.expiry_order.erase(first);
    n++;
  }
  // Housekeeping also proposes this while the graveyard is not empty: its share of freeing
  // (the turn's budget where the host gives one, kv.h).
  if (!s.graveyard.empty()) s.graveyard.step_for_housekeeping(ctx);
  r.integer(n);
}

// =============================================================================================
// keys: RENAME, RENAMENX, COPY, TOUCH, EXPIRETIME, PEXPIRETIME, OBJECT
// =============================================================================================

// RENAME src dst / RENAMENX src dst: the value and its deadline move to dst (replacing it;
// RENAMENX: only if dst does not exist).
template <bool kNx>
void apply_rename(State& s, const Words& a, const ApplyContext& ctx, Reply& r) {
  const std::string_view src = a.argv[1], dst = a.argv[2];
  KeyIter from = live_write(s, src, ctx);
  if (from == s.keys.end()) { r.error("ERR no such key"); return; }
  if (src == dst) { if (kNx) r.integer(0); else r.ok(); return; }
  const bool dst_exists = live_write(s, dst, ctx) != s.keys.end();
  if (kNx && dst_exists) { r.integer(0); return; }
  from = s.keys.find(src);  // live_write(dst) may have deleted an expired dst: look again
  const std::optional<uint64_t> deadline = deadline_of(s, src);
  // dst's old value goes first (a snapshot takes it if it needs it), then a snapshot follows
  // src's value to dst (save_producer.h: O(1), a big container is not encoded here).
  if (auto old = s.keys.find(dst); old != s.keys.end()) {
    save_replace(s, old);
    s.graveyard.bury_if_big(old->second);
  }
  if (s.saving) [[unlikely]] s.saving->before_move(from.hash(), src, dst);
  Value v = std::move(from->second);
  erase_key(s, from);
  clear_deadline(s, dst);
  s.keys.insert_or_assign(dst, std::move(v));
  if (deadline) set_deadline(s, dst, *deadline);
  notify(ctx, keyspace::kGeneric, "rename_from", src);
  notify(ctx, keyspace::kGeneric, "rename_to", dst);
  if (kNx) r.integer(1); else r.ok();
}

Value clone_value(const Value& v) {
  switch (static_cast<Type>(v.index())) {
    case Type::kString: return Value(std::in_place_index<0>, std::get<String>(v));
    case Type::kHash: {
      Value out(std::in_place_type<Hash>);
      Hash& h = std::get<Hash>(out);
      std::get<Hash>(v).for_each([&](std::string_view f, const std::string& val) { h.set(f, val); });
      return out;
    }
    case Type::kList: {
      Value out(std::in_place_type<List>);
      List& l = std::get<List>(out);
      const List& from = std::get<List>(v);
      from.for_each([&](std::string_view x) { l.push_back(x); });
      return out;
    }
    case Type::kSet: {
      Value out(std::in_place_type<Set>);
      Set& set = std::get<Set>(out);
      std::get<Set>(v).for_each([&](std::string_view m) { set.insert(SetMemberKey{member_hash(m), m}); });
      return out;
    }
    case Type::kZSet: {
      const ZSet& from = *std::get<std::unique_ptr<ZSet>>(v);
      auto z = std::make_unique<ZSet>();
      z->order = from.order;
      return Value(std::move(z));
    }
  }
  return Value();
}

// COPY src dst [DB 0] [REPLACE]. One database: DB 0 is accepted, any other index is Redis'
// out-of-range error.
struct CopyArgs {
  std::string_view src, dst;
  bool replace = false;
};
bool parse_copy(Args a, CopyArgs& o, std::string& err) {
  o.src = a[1];
  o.dst = a[2];
  for (size_t i = 3; i < a.size(); i++) {
    if (iequals(a[i], "REPLACE")) {
      o.replace = true;
    } else if (iequals(a[i], "DB") && i + 1 < a.size()) {
      int64_t db = 0;
      if (!parse_int64(a[++i], &db) || db < std::numeric_limits<int32_t>::min() || db > std::numeric_limits<int32_t>::max()) {
        err = kNotInteger;
        return false;
      }
      if (db != 0) { err = "ERR DB index is out of range"; return false; }
    } else {
      err = kSyntax;
      return false;
    }
  }
  if (o.src == o.dst) { err = "ERR source and destination objects are the same"; return false; }
  return true;
}
void apply_copy(State& s, const CopyArgs& a, const ApplyContext& ctx, Reply& r) {
  KeyIter from = live_find(s, a.src, ctx);  // only read
  if (from == s.keys.end()) { r.integer(0); return; }
  KeyIter to = live_write(s, a.dst, ctx);
  if (to != s.keys.end() && !a.replace) { r.integer(0); return; }
  from = s.keys.find(a.src);
  Value copy = clone_value(from->second);
  const std::optional<uint64_t> deadline = deadline_of(s, a.src);
  if (auto old = s.keys.find(a.dst); old != s.keys.end()) {
    save_replace(s, old);
    s.graveyard.bury_if_big(old->second);
  }
  clear_deadline(s, a.dst);
  s.keys.insert_or_assign(a.dst, std::move(copy));
  if (deadline) set_deadline(s, a.dst, *deadline);
  notify(ctx, keyspace::kGeneric, "copy_to", a.dst);
  r.integer(1);
}

// TOUCH key [key ...]: the number of keys that exist. A query: hmdb keeps no access times.
void query_touch(const State& s, Args a, const QueryContext& ctx, Reply& r) { query_exists(s, a, ctx, r); }

// EXPIRETIME / PEXPIRETIME key: the absolute deadline (unix s, rounded as Redis, or ms); -1
// without one, -2 without the key.
template <bool kMilliseconds>
void query_expiretime(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  if (!live_read(s, a[1], ctx.now_ms)) { r.integer(-2); return; }
  std::optional<uint64_t> d = deadline_of(s, a[1]);
  if (!d) { r.integer(-1); return; }
  const int64_t ms = static_cast<int64_t>(std::min<uint64_t>(*d, std::numeric_limits<int64_t>::max() - 500));
  r.integer(kMilliseconds ? ms : (ms + 500) / 1000);
}

// OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP (docs/kv-commands.md says
// what each means here).
void query_object(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  const std::string sub = uppercase(a[1]);
  if (sub == "HELP" && a.size() == 2) {
    static constexpr std::string_view kHelp[] = {
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    hmdb tracks no access frequency: an error.",
        "IDLETIME <key>",
        "    hmdb tracks no access time: an error.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key> (always 1: hmdb shares no values).",
        "HELP",
        "    Print this help."};
    r.array(std::size(kHelp));
    for (std::string_view line : kHelp) r.status(line);
    return;
  }
  if (sub != "ENCODING" && sub != "FREQ" && sub != "IDLETIME" && sub != "REFCOUNT" && sub != "HELP") {
    r.error("ERR unknown subcommand '" + std::string(a[1]) + "'. Try OBJECT HELP.");
    return;
  }
  if (a.size() != 3) {
    r.error("ERR wrong number of arguments for 'object|" + lowercase(a[1]) + "' command");
    return;
  }
  const Value* v = live_read(s, a[2], ctx.now_ms);
  if (!v) { r.null(); return; }
  if (sub == "FREQ") {
    r.error("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when "
            "switching between policies at runtime LRU and LFU data will take some time to adjust.");
  } else if (sub == "IDLETIME") {
    r.error("ERR hmdb tracks no access time, so OBJECT IDLETIME has no answer");
  } else if (sub == "REFCOUNT") {
    r.integer(1);
  } else {
    switch (static_cast<Type>(v->index())) {
      case Type::kString: {
        // The encoding Redis would choose for these bytes (hmdb stores every string as bytes).
        const String& str = std::get<String>(*v);
        int64_t n;
        constexpr size_t kEmbstrBytesMax = 44;  // Redis' OBJ_ENCODING_EMBSTR_SIZE_LIMIT
        r.bulk(str.size() <= 20 && parse_int64(str, &n) ? "int" : str.size() <= kEmbstrBytesMax ? "embstr" : "raw");
        break;
      }
      case Type::kHash: r.bulk(std::get<Hash>(*v).is_small() ? "listpack" : "hashtable"); break;
      case Type::kList: r.bulk("quicklist"); break;
      case Type::kSet: r.bulk(std::get<Set>(*v).is_small() ? "listpack" : "hashtable"); break;
      case Type::kZSet: r.bulk("skiplist"); break;
    }
  }
}

// =============================================================================================
// key iteration: SCAN, HSCAN, SSCAN, ZSCAN, KEYS, RANDOMKEY
// =============================================================================================
//
// A cursor is a position in a 64-bit hash space, not in a table: cursor c means "every
// element whose scan position is below c was returned". A call returns the elements whose
// position is >= c, the `page` smallest of them, and the position just past the last one
// as the next cursor (0 when none is left). So an element present for the whole iteration
// is returned exactly once, whatever was written, grown, shrunk, snapshotted or restored in
// between, and the same cursor means the same thing on every node: positions depend only
// on the element's bytes (docs/kv-commands.md, "Iterating keys").
//
// A key's position is its key-table hash (XXH3, KeyTable::hash_of): the key table keeps its
// keys in (hash, key) order whatever its size or resize progress (key_table.h), so a page
// is a walk from KeyTable::lower_bound_hash(cursor), O(COUNT). A hash field's or sorted-set
// member's position is the XXH3 of its bytes: their tables are unordered, so a page is
// found by one pass over the container; pages are therefore at least 1/kScanPagesMin of it
// (COUNT is a hint in Redis too), bounding a whole iteration to about kScanPagesMin passes.

// A whole HSCAN/ZSCAN iteration of a big hash or sorted set makes at most about this many
// passes over it: a page holds at least size / kScanPagesMin elements.
constexpr size_t kScanPagesMin = 64;
// COUNT's default, as Redis.
constexpr int64_t kScanCountDefault = 10;
// A hash, set or sorted set of at most this many elements is returned whole by one
// HSCAN/SSCAN/ZSCAN call with cursor 0, as Redis does for its small (listpack) encodings,
// whose default limit this is.
constexpr size_t kScanWholeMax = 128;

// Hash fields and sorted-set members: any hash spread evenly will do (a full pass either way).
uint64_t element_scan_position(std::string_view e) { return XXH3_64bits(e.data(), e.size()); }

// Picks one page: the `page` elements with the smallest positions >= cursor, offered one by
// one in any order (a max-heap of `page` entries: O(n log page) for n offered).
template <class Item>
class PagePicker {
 public:
  PagePicker(uint64_t cursor, size_t page) : cursor_(cursor), page_(page) { heap_.reserve(std::min<size_t>(page, 1024)); }

  void offer(uint64_t pos, Item item) {
    if (pos < cursor_) return;
    offered_++;
    if (heap_.size() < page_) {
      heap_.push_back({pos, std::move(item)});
      std::push_heap(heap_.begin(), heap_.end(), Less());
      return;
    }
    const uint64_t top = heap_.front().pos;
    if (pos > top) return;  // past this page; a later call returns it
    if (pos == top) { note_lost(pos); return; }
    std::pop_heap(heap_.begin(), heap_.end(), Less());
    note_lost(heap_.back().pos);
    heap_.back() = {pos, std::move(item)};
    std::push_heap(heap_.begin(), heap_.end(), Less());
  }

  // Sorts up to n more of the page (no offer() after): true once it is sorted. The first
  // part of finish(), for doing it a part at a time (a sliced ZSCAN, whose page may be the
  // whole set): std::sort_heap's own steps, so the order is the same.
  bool sort_some(size_t n) {
    if (!sorting_) unsorted_ = heap_.size();
    sorting_ = true;
    for (; unsorted_ > 1 && n > 0; unsorted_--, n--) std::pop_heap(heap_.begin(), heap_.begin() + static_cast<ptrdiff_t>(unsorted_), Less());
    return unsorted_ <= 1;
  }

  // The page in position order into *out; returns the next cursor (0: the iteration ends).
  uint64_t finish(std::vector<Item>* out) {
    size_t n;
    const uint64_t next = finish_in_place(&n);
    out->reserve(out->size() + n);
    for (size_t i = 0; i < n; i++) out->push_back(std::move(heap_[i].item));
    return next;
  }
  // finish() without the copy (a sliced ZSCAN's page may be the whole set): the page is
  // item(0) .. item(*count - 1), in position order.
  uint64_t finish_in_place(size_t* count) {
    sort_some(SIZE_MAX);
    uint64_t next = 0;
    size_t n = heap_.size();
    if (offered_ > heap_.size()) {  // else the page holds every element left: the end
      const uint64_t last = heap_.back().pos;
      // Elements sharing the last position were dropped (two elements with one 64-bit
      // hash): end the page before that position so they all come next time. Only if the
      // page would then be empty (page or more elements on one position) are they lost.
      size_t before_last = n;
      while (before_last > 0 && heap_[before_last - 1].pos == last) before_last--;
      if (lost_ && lost_pos_ == last && before_last > 0) {
        n = before_last;
        next = last;
      } else {
        next = last + 1;  // wraps to 0 past the last position: the iteration ends
      }
    }
    *count = n;
    return next;
  }
  const Item& item(size_t i) const { return heap_[i].item; }
  // Room for n entries at once, so that offering them grows no array (whose copy would be
  // one long turn for a page of millions).
  void reserve(size_t n) { heap_.reserve(n); }

 private:
  struct Entry {
    uint64_t pos;
    Item item;
  };
  struct Less {
    bool operator()(const Entry& a, const Entry& b) const { return a.pos < b.pos; }
  };
  void note_lost(uint64_t pos) {
    if (!lost_ || pos < lost_pos_) { lost_ = true; lost_pos_ = pos; }
  }
  uint64_t cursor_;
  size_t page_;
  size_t offered_ = 0;  // at or after the cursor
  std::vector<Entry> heap_;
  bool lost_ = false;
  uint64_t lost_pos_ = 0;
  bool sorting_ = false;
  size_t unsorted_ = 0;  // once sorting_: heap_'s first unsorted_ entries are still a heap
};

size_t scan_page_size(int64_t count, size_t elements) {
  return std::max<size_t>(static_cast<size_t>(count), (elements + kScanPagesMin - 1) / kScanPagesMin);
}

struct ScanOptions {
  uint64_t cursor = 0;
  int64_t count = kScanCountDefault;
  bool has_pattern = false;  // false for MATCH *, which matches the empty key too (Redis)
  std::string_view pattern;
  bool has_type = false;
  std::string_view type;
  bool matches(std::string_view s) const { return !has_pattern || string_match(pattern, s); }
};

// Redis 7.0's cursor rule: strtoul's, so "-1" is 2^64 - 1 and "" is 0; no leading space,
// nothing after the digits, no overflow.
bool parse_scan_cursor(std::string_view s, uint64_t* out, Reply& r) {
  const std::string text(s);  // strtoull needs the terminating NUL
  char* end = nullptr;
  errno = 0;
  *out = std::strtoull(text.c_str(), &end, 10);
  if ((!text.empty() && std::isspace(static_cast<unsigned char>(text[0]))) || *end != '\0' || errno == ERANGE) {
    r.error("ERR invalid cursor");
    return false;
  }
  return true;
}

// Redis' option loop (scanGenericCommand): COUNT n (>= 1), MATCH pattern, TYPE type (SCAN
// only), in any order, the last of each winning. Replies the error and returns false.
bool parse_scan_options(Args a, size_t first, bool allow_type, ScanOptions* o, Reply& r) {
  for (size_t i = first; i < a.size(); i += 2) {
    const bool has_value = i + 1 < a.size();
    if (iequals(a[i], "COUNT") && has_value) {
      if (!parse_int64(a[i + 1], &o->count)) { r.error(kNotInteger); return false; }
      if (o->count < 1) { r.error(kSyntax); return false; }
    } else if (iequals(a[i], "MATCH") && has_value) {
      o->pattern = a[i + 1];
      o->has_pattern = o->pattern != "*";
    } else if (iequals(a[i], "TYPE") && allow_type && has_value) {
      o->has_type = true;
      o->type = a[i + 1];
    } else {
      r.error(kSyntax);
      return false;
    }
  }
  return true;
}

constexpr std::string_view kTypeNames[] = {"string", "hash", "list", "set", "zset"};

void reply_scan(Reply& r, uint64_t next, size_t elements) {
  r.array(2);
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, next);
  r.bulk(std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
  r.array(elements);
}

// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: visits COUNT keys from the cursor
// (and every further key sharing the last one's hash, so the next cursor skips none), and
// returns those that are live and pass MATCH and TYPE, as Redis counts: a page may be short
// or empty before the end. O(COUNT): the key table is in hash order (key_table.h).
void query_scan(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ScanOptions o;
  if (!parse_scan_cursor(a[1], &o.cursor, r) || !parse_scan_options(a, 2, true, &o, r)) return;
  const bool check_expiry = !s.expires.empty();
  std::vector<std::string_view> page;
  auto it = s.keys.lower_bound_hash(o.cursor);
  uint64_t visited = 0, last = 0;
  for (; it != s.keys.end(); ++it) {
    const std::string_view k = it->first.view();
    const uint64_t h = KeyTable<Value>::hash_of(k);
    if (visited >= static_cast<uint64_t>(o.count) && h != last) break;
    visited++;
    last = h;
    if (o.has_type && !iequals(o.type, kTypeNames[it->second.index()])) continue;
    if (!o.matches(k)) continue;
    if (check_expiry && expired(s, k, ctx.now_ms)) continue;
    page.push_back(k);
  }
  const uint64_t next = it == s.keys.end() ? 0 : KeyTable<Value>::hash_of(it->first.view());
  reply_scan(r, next, page.size());
  for (std::string_view k : page) r.bulk(k);
}

// KEYS' reply in slices (hmdb::ReplyProducer: the engine calls next() once a loop turn and
// applies nothing meanwhile, so the key table does not change under the iterator). The
// array's length comes first, so a first pass counts the matching keys (none for KEYS *
// without expiring keys: the table's size), a second writes them; each visited key counts
// against the slice's budget.
class KeysProducer final : public ReplyProducer {
 public:
  KeysProducer(const State& s, std::string_view pattern, uint64_t now_ms)
      : s_(s), pattern_(pattern), all_(pattern == "*"), check_expiry_(!s.expires.empty()), now_ms_(now_ms),
        it_(s.keys.begin()) {}

  bool next(Reply& r, const SliceBudget& budget) override {
    size_t visited = 0;
    if (counting_) {
      if (all_ && !check_expiry_) {
        matching_ = s_.keys.size();
      } else {
        for (; it_ != s_.keys.end(); ++it_) {
          if (visited++ == budget.elements) return false;
          if (matches(it_->first.view())) matching_++;
        }
      }
      counting_ = false;
      r.array(matching_);
      it_ = s_.keys.begin();
    }
    const size_t start = r.size();
    for (; it_ != s_.keys.end(); ++it_) {
      if (visited == budget.elements || r.size() - start >= budget.bytes) return false;
      visited++;
      const std::string_view k = it_->first.view();
      if (matches(k)) r.bulk(k);
    }
    return true;
  }

 private:
  bool matches(std::string_view k) const {
    if (!all_ && !string_match(pattern_, k)) return false;
    return !(check_expiry_ && expired(s_, k, now_ms_));
  }
  const State& s_;
  const std::string pattern_;  // a copy: the command's words are gone once the query returns
  const bool all_;
  const bool check_expiry_;
  const uint64_t now_ms_;
  KeyTable<Value>::const_iterator it_;
  bool counting_ = true;
  size_t matching_ = 0;
};

// KEYS pattern: every live matching key, in the key table's order (by hash: the same on
// every node). O(keys): beyond a slice's worth of keys, made in slices (KeysProducer).
void query_keys(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  if (ctx.slices(s.keys.size())) [[unlikely]] {
    ctx.produce(r, std::make_unique<KeysProducer>(s, a[1], ctx.now_ms));
    return;
  }
  const std::string_view pattern = a[1];
  const bool all = pattern == "*";
  const bool check_expiry = !s.expires.empty();
  std::vector<std::string_view> found;
  for (const auto& [key, value] : s.keys) {
    const std::string_view k = key.view();
    if (!all && !string_match(pattern, k)) continue;
    if (check_expiry && expired(s, k, ctx.now_ms)) continue;
    found.push_back(k);
  }
  r.array(found.size());
  for (std::string_view k : found) r.bulk(k);
}

// Keys RANDOMKEY chooses among: the live keys at and after a random hash, in table order.
constexpr size_t kRandomKeyWindow = 8;

// RANDOMKEY: from a random hash drawn from the query's clock, the next kRandomKeyWindow live
// keys in table order (wrapping), and among them the one with the smallest XXH3(key, seed).
// O(window), and close to uniform: a key's chance grows with the gap before it in hash
// order, averaged over the window. A query is not logged, so the reply depends on the state
// and QueryContext::now_ms: nodes with the same state answer the same key in the same ms.
void query_randomkey(const State& s, Args, const QueryContext& ctx, Reply& r) {
  const uint64_t words[2] = {ctx.now_ms, kSetHashSeed};
  const uint64_t seed = XXH3_64bits(words, sizeof words);
  const bool check_expiry = !s.expires.empty();
  auto it = s.keys.lower_bound_hash(seed);
  size_t seen = 0, visited = 0;
  uint64_t best = 0;
  std::string_view pick;
  // Visits at most the whole table once (every key expired: then nil).
  for (; seen < kRandomKeyWindow && visited < s.keys.size(); ++it, visited++) {
    if (it == s.keys.end()) it = s.keys.begin();
    const std::string_view k = it->first.view();
    if (check_expiry && expired(s, k, ctx.now_ms)) continue;
    const uint64_t d = XXH3_64bits_withSeed(k.data(), k.size(), seed);
    if (seen++ == 0 || d < best) { best = d; pick = k; }
  }
  if (seen > 0) r.bulk(pick); else r.null();
}

// A big set's SSCAN page or a big hash's HSCAN page (kHash), found and written in slices
// (hmdb::ReplyProducer: nothing is applied meanwhile): the same walk as the whole path
// (query_sscan, query_hscan) from the cursor's hash, a slice's worth of elements a turn,
// listing the page's elements; then the next cursor, which comes first in the reply, and
// the page, a slice a turn. For a huge COUNT.
template <bool kHash>
class ScanPageProducer final : public ReplyProducer {
 public:
  using C = std::conditional_t<kHash, Hash, Set>;
  ScanPageProducer(const C& c, const ScanOptions& o)
      : c_(c), from_(o.cursor), count_(static_cast<uint64_t>(o.count)), has_pattern_(o.has_pattern), pattern_(o.pattern) {
    page_.reserve(std::min<uint64_t>(count_, c.size()));  // no copy of a growing page in one turn
  }

  bool next(Reply& r, const SliceBudget& budget) override {
    size_t work = 0;
    if (!found_) {
      // Elements sharing the last hash all go in this page, so the next cursor skips none.
      auto take = [&](uint64_t hash, std::string_view e, const std::string* v) {
        if (full_ && hash != last_) { more_ = true; return false; }
        work++;
        if (!has_pattern_ || string_match(pattern_, e)) page_.emplace_back(e, v);
        last_ = hash;
        if (page_.size() >= count_) full_ = true;
        return true;
      };
      bool end;
      if constexpr (kHash) {
        end = c_.for_each_from_some(from_, cursor_, budget.elements,
                                    [&](uint64_t h, std::string_view f, const std::string& v) { return take(h, f, &v); });
      } else {
        end = c_.for_each_from_some(from_, cursor_, budget.elements, [&](uint64_t h, std::string_view m) { return take(h, m, nullptr); });
      }
      if (!end) return false;
      found_ = true;
      reply_scan(r, more_ ? last_ + 1 : 0, kHash ? 2 * page_.size() : page_.size());  // last_ < the next hash: no wrap
    }
    const size_t start = r.size();
    for (; written_ < page_.size(); written_++) {
      if (work >= budget.elements || r.size() - start >= budget.bytes) return false;
      work++;
      r.bulk(page_[written_].first);
      if (kHash) r.bulk(*page_[written_].second);
    }
    return true;
  }

 private:
  const C& c_;
  const uint64_t from_, count_;
  const bool has_pattern_;
  const std::string pattern_;  // a copy: the command's words are gone once the query returns
  typename C::Cursor cursor_;
  std::vector<std::pair<std::string_view, const std::string*>> page_;  // (element, HSCAN's value)
  bool found_ = false, full_ = false, more_ = false;
  uint64_t last_ = 0;
  size_t written_ = 0;
};
// A set or hash this big is a hash table (its walk from a hash is for_each_from_some's).
static_assert(kScanWholeMax >= Set::kSmallMembersMax && kScanWholeMax >= Hash::kSmallFieldsMax);

// A step of sorting a ZSCAN page (a pop from its heap: ~22 levels at 3 M entries) counts as
// this many elements of a slice.
constexpr size_t kHeapPopWork = 4;

// A big sorted set's ZSCAN page, found and written in slices (hmdb::ReplyProducer: nothing is
// applied meanwhile): the whole path's one pass over the set offering each member to the
// PagePicker (query_zscan), a slice's worth of members a turn; then the page, a slice a turn.
class ZScanProducer final : public ReplyProducer {
 public:
  ZScanProducer(const ZSet& z, const ScanOptions& o)
      : z_(z), has_pattern_(o.has_pattern), pattern_(o.pattern), picker_(o.cursor, scan_page_size(o.count, z.order.size())),
        it_(z.order.begin()) {
    picker_.reserve(std::min(scan_page_size(o.count, z.order.size()), z.order.size()));
  }

  bool next(Reply& r, const SliceBudget& budget) override {
    size_t work = 0;
    if (!found_) {
      for (; it_ != z_.order.end(); ++it_) {
        if (work >= budget.elements) return false;
        work++;
        const ZEntry& e = *it_;
        if (!has_pattern_ || string_match(pattern_, e.member))
          picker_.offer(element_scan_position(e.member), {std::string_view(e.member), e.score});
      }
      // At least one step a call, so that a slice of fewer than kHeapPopWork elements goes on.
      if (!picker_.sort_some(std::max<size_t>(1, budget.elements > work ? (budget.elements - work) / kHeapPopWork : 0))) return false;
      found_ = true;
      const uint64_t next = picker_.finish_in_place(&page_size_);
      reply_scan(r, next, 2 * page_size_);
    }
    const size_t start = r.size();
    for (; written_ < page_size_; written_++) {
      if (work >= budget.elements || r.size() - start >= budget.bytes) return false;
      work++;
      const auto& [member, score] = picker_.item(written_);
      r.bulk(member);
      char buf[40];
      r.bulk(score_text(score, buf));
    }
    return true;
  }

 private:
  const ZSet& z_;
  const bool has_pattern_;
  const std::string pattern_;  // a copy: the command's words are gone once the query returns
  PagePicker<std::pair<std::string_view, double>> picker_;
  ZOrder::const_iterator it_;
  size_t page_size_ = 0;  // the page: picker_.item(0 .. page_size_ - 1)
  bool found_ = false;
  size_t written_ = 0;
};

// HSCAN key cursor [MATCH pattern] [COUNT count]: fields and values, a flat array.
void query_hscan(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ScanOptions o;
  if (!parse_scan_cursor(a[2], &o.cursor, r)) return;
  const Hash* h;
  if (!container_for_read<Hash>(s, a[1], ctx.now_ms, r, &h)) return;
  if (!h) { reply_scan(r, 0, 0); return; }  // before the options, as Redis
  if (!parse_scan_options(a, 3, false, &o, r)) return;
  if (h->size() > kScanWholeMax && ctx.slices(std::min<uint64_t>(static_cast<uint64_t>(o.count), h->size()))) [[unlikely]] {
    ctx.produce(r, std::make_unique<ScanPageProducer<true>>(*h, o));
    return;
  }
  std::vector<std::pair<std::string_view, const std::string*>> page;
  uint64_t next = 0;
  if (h->size() <= kScanWholeMax) {
    h->for_each([&](std::string_view f, const std::string& v) {
      if (o.matches(f)) page.emplace_back(f, &v);
    });
  } else {
    // A big hash is ordered by field hash, the scan position (hash.h): walk from the
    // cursor as SSCAN does, O(COUNT).
    bool full = false, more = false;
    uint64_t last = 0;
    h->for_each_from(o.cursor, [&](uint64_t hash, std::string_view f, const std::string& v) {
      // Fields sharing the last hash all go in this page, so the next cursor skips none.
      if (full && hash != last) { more = true; return false; }
      if (o.matches(f)) page.emplace_back(f, &v);
      last = hash;
      if (page.size() >= static_cast<uint64_t>(o.count)) full = true;
      return true;
    });
    if (more) next = last + 1;  // last < the next field's hash: no wrap
  }
  reply_scan(r, next, 2 * page.size());
  for (const auto& [f, v] : page) { r.bulk(f); r.bulk(*v); }
}

// SSCAN key cursor [MATCH pattern] [COUNT count]. Sets are ordered by member hash (set.h),
// which is the scan position: a page is a walk from the cursor, O(log n + COUNT).
void query_sscan(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ScanOptions o;
  if (!parse_scan_cursor(a[2], &o.cursor, r)) return;
  const Set* set;
  if (!container_for_read<Set>(s, a[1], ctx.now_ms, r, &set)) return;
  if (!set) { reply_scan(r, 0, 0); return; }
  if (!parse_scan_options(a, 3, false, &o, r)) return;
  if (set->size() > kScanWholeMax && ctx.slices(std::min<uint64_t>(static_cast<uint64_t>(o.count), set->size()))) [[unlikely]] {
    ctx.produce(r, std::make_unique<ScanPageProducer<false>>(*set, o));
    return;
  }
  std::vector<std::string_view> page;
  uint64_t next = 0;
  if (set->size() <= kScanWholeMax) {
    set->for_each([&](std::string_view m) {
      if (o.matches(m)) page.push_back(m);
    });
    reply_scan(r, 0, page.size());
    for (std::string_view m : page) r.bulk(m);
    return;
  }
  bool full = false, more = false;
  uint64_t last = 0;
  set->for_each_from(o.cursor, [&](uint64_t hash, std::string_view m) {
    // Members sharing the last hash all go in this page, so the next cursor skips none.
    if (full && hash != last) { more = true; return false; }
    if (o.matches(m)) page.push_back(m);
    last = hash;
    if (page.size() >= static_cast<uint64_t>(o.count)) full = true;
    return true;
  });
  if (more) next = last + 1;  // last < the next member's hash: no wrap
  reply_scan(r, next, page.size());
  for (std::string_view m : page) r.bulk(m);
}

// ZSCAN key cursor [MATCH pattern] [COUNT count]: members and scores (bulk strings, in both
// protocols, as Redis).
void query_zscan(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  ScanOptions o;
  if (!parse_scan_cursor(a[2], &o.cursor, r)) return;
  const ZSet* z;
  if (!container_for_read<ZSet>(s, a[1], ctx.now_ms, r, &z)) return;
  if (!z) { reply_scan(r, 0, 0); return; }
  if (!parse_scan_options(a, 3, false, &o, r)) return;
  if (z->order.size() > kScanWholeMax && ctx.slices(z->order.size())) [[unlikely]] {
    ctx.produce(r, std::make_unique<ZScanProducer>(*z, o));
    return;
  }
  std::vector<std::pair<std::string_view, double>> page;
  uint64_t next = 0;
  if (z->order.size() <= kScanWholeMax) {
    for (const ZEntry& e : z->order)
      if (o.matches(e.member)) page.emplace_back(e.member, e.score);
  } else {
    PagePicker<std::pair<std::string_view, double>> picker(o.cursor, scan_page_size(o.count, z->order.size()));
    for (const ZEntry& e : z->order)
      if (o.matches(e.member)) picker.offer(element_scan_position(e.member), {std::string_view(e.member), e.score});
    next = picker.finish(&page);
  }
  reply_scan(r, next, 2 * page.size());
  for (const auto& [m, score] : page) {
    r.bulk(m);
    char buf[40];
    r.bulk(score_text(score, buf));
  }
}

// =============================================================================================
// blocking commands
// =============================================================================================

// Each is a write whose apply is its non-blocking form: the first non-empty key's element(s),
// or a null when every key is empty or missing. The engine turns that null into waiting
// (KeySpec::timeout, core/blocking.h): it applies the command again on the client's behalf
// when an entry changes one of its keys, and answers a null array at the timeout. Inside
// MULTI, or tagged with HMDB.REQ, the null is the reply, as Redis answers in a transaction.
// The timeout is checked where Redis checks it (after the other arguments for BLMOVE,
// BLMPOP and BZMPOP) and otherwise unused here: waiting is the engine's.

bool parse_timeout_word(std::string_view w, std::string& err) {
  uint64_t ms = 0;
  return parse_block_timeout(w, &ms, &err);
}

// BLPOP / BRPOP / BZPOPMIN / BZPOPMAX key [key ...] timeout.
struct BlockingPopArgs {
  Args keys;
};
bool parse_blocking_pop(Args a, BlockingPopArgs& o, std::string& err) {
  if (!parse_timeout_word(a.back(), err)) return false;
  o.keys = a.subspan(1, a.size() - 2);
  return true;
}

template <bool kFront>
void apply_blocking_list_pop(State& s, const BlockingPopArgs& a, const ApplyContext& ctx, Reply& r) {
  for (std::string_view key : a.keys) {
    KeyIter it;
    List* l;
    if (!container_for_write<List>(s, key, ctx, r, &it, &l)) return;
    if (!l) continue;
    r.array(2);
    r.bulk(key);
    save_list_pop(s, it, kFront, 1);
    if (kFront) { r.bulk(l->front()); l->pop_front(); }
    else { r.bulk(l->back()); l->pop_back(); }
    notify(ctx, keyspace::kList, kFront ? "lpop" : "rpop", key);
    erase_if_emptied(s, it, l, key, ctx);
    return;
  }
  r.null_array();
}

template <bool kMax>
void apply_blocking_zpop(State& s, const BlockingPopArgs& a, const ApplyContext& ctx, Reply& r) {
  for (std::string_view key : a.keys) {
    KeyIter it;
    ZSet* z;
    if (!container_for_write<ZSet>(s, key, ctx, r, &it, &z)) return;
    if (!z) continue;
    auto first = kMax ? std::prev(z->order.end()) : z->order.begin();
    r.array(3);
    r.bulk(key);
    r.bulk(first->member);
    r.double_value(first->score);
    if (kHookZsetPops) save_zset_erase(s, it, *first);
    z->order.remove(first);
    notify(ctx, keyspace::kZset, kMax ? "zpopmax" : "zpopmin", key);
    erase_if_emptied(s, it, z, key, ctx);
    return;
  }
  r.null_array();
}

// BLMOVE src dst LEFT|RIGHT LEFT|RIGHT timeout, BRPOPLPUSH src dst timeout: LMOVE's apply
// (a null bulk when src is empty, as Redis answers them inside MULTI).
bool parse_blmove(Args a, LMoveArgs& o, std::string& err) {
  return parse_lmove(a, o, err) && parse_timeout_word(a[5], err);
}
bool parse_brpoplpush(Args a, LMoveArgs& o, std::string& err) {
  return parse_timeout_word(a[3], err) && parse_rpoplpush(a, o, err);
}

// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count],
// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: Redis 7.0's order of checks
// (numkeys, the side, COUNT, then the timeout). LMPOP and ZMPOP: the same without the
// timeout (kBlocking false), and the same apply.
struct MultiPopArgs {
  Args keys;
  bool first = true;  // LEFT / MIN
  uint64_t count = 1;
};
template <bool kZset, bool kBlocking = true>
bool parse_multi_pop(Args a, MultiPopArgs& o, std::string& err) {
  constexpr size_t kNumkeys = kBlocking ? 2 : 1;
  int64_t numkeys = 0;
  if (!parse_int64(a[kNumkeys], &numkeys) || numkeys <= 0) {
    err = "ERR numkeys should be greater than 0";
    return false;
  }
  const uint64_t side = kNumkeys + 1 + static_cast<uint64_t>(numkeys);
  if (side >= a.size()) { err = kSyntax; return false; }
  if (iequals(a[side], kZset ? "MIN" : "LEFT")) o.first = true;
  else if (iequals(a[side], kZset ? "MAX" : "RIGHT")) o.first = false;
  else { err = kSyntax; return false; }
  bool counted = false;
  for (size_t i = side + 1; i < a.size(); i++) {
    if (!counted && iequals(a[i], "COUNT") && i + 1 < a.size()) {
      int64_t n = 0;
      if (!parse_int64(a[++i], &n) || n <= 0) { err = "ERR count should be greater than 0"; return false; }
      o.count = static_cast<uint64_t>(n);
      counted = true;
    } else {
      err = kSyntax;
      return false;
    }
  }
  if (kBlocking && !parse_timeout_word(a[1], err)) return false;
  o.keys = a.subspan(kNumkeys + 1, static_cast<size_t>(numkeys));
  return true;
}

void apply_blmpop(State& s, const MultiPopArgs& a, const ApplyContext& ctx, Reply& r) {
  for (std::string_view key : a.keys) {
    KeyIter it;
    List* l;
    if (!container_for_write<List>(s, key, ctx, r, &it, &l)) return;
    if (!l) continue;
    const size_t n = std::min<uint64_t>(a.count, l->size());
    r.array(2);
    r.bulk(key);
    r.array(n);
    save_list_pop(s, it, a.first, n);
    for (size_t i = 0; i < n; i++) {
      if (a.first) { r.bulk(l->front()); l->pop_front(); }
      else { r.bulk(l->back()); l->pop_back(); }
    }
    notify(ctx, keyspace::kList, a.first ? "lpop" : "rpop", key);
    erase_if_emptied(s, it, l, key, ctx);
    return;
  }
  r.null_array();
}

void apply_bzmpop(State& s, const MultiPopArgs& a, const ApplyContext& ctx, Reply& r) {
  for (std::string_view key : a.keys) {
    KeyIter it;
    ZSet* z;
    if (!container_for_write<ZSet>(s, key, ctx, r, &it, &z)) return;
    if (!z) continue;
    const size_t n = std::min<uint64_t>(a.count, z->order.size());
    r.array(2);
    r.bulk(key);
    r.array(n);
    for (size_t i = 0; i < n; i++) {
      auto e = a.first ? z->order.begin() : std::prev(z->order.end());
      r.array(2);
      r.bulk(e->member);
      r.double_value(e->score);
      if (kHookZsetPops) save_zset_erase(s, it, *e);
      z->order.remove(e);
    }
    notify(ctx, keyspace::kZset, a.first ? "zpopmin" : "zpopmax", key);
    erase_if_emptied(s, it, z, key, ctx);
    return;
  }
  r.null_array();
}

// =============================================================================================
// server commands
// =============================================================================================

void query_dbsize(const State& s, Args, const QueryContext& ctx, Reply& r) {
  // Keys past their deadline still occupy the table until HMDB.EXPIRE runs; housekeeping
  // keeps them few, so counting them here is cheap.
  size_t dead = 0;
  for (auto it = s.expiry_order.begin(); it != s.expiry_order.end() && it->first <= ctx.now_ms; ++it) dead++;
  r.integer(static_cast<int64_t>(s.keys.size() - dead));
}

void query_type(const State& s, Args a, const QueryContext& ctx, Reply& r) {
  static constexpr std::string_view kNames[] = {"string", "hash", "list", "set", "zset"};
  const Value* v = live_read(s, a[1], ctx.now_ms);
  r.status(v ? kNames[v->index()] : "none");
}

bool parse_flushall(Args a, Words& o, std::string& err) {
  if (a.size() > 2 || (a.size() == 2 && !iequals(a[1], "ASYNC") && !iequals(a[1], "SYNC"))) {
    err = kSyntax;
    return false;
  }
  o.argv = a;
  return true;
}
void apply_flushall(State& s, const Words&, const ApplyContext& ctx, Reply& r) {
  ctx.all_keys_changed();
  // Freed over the next commands (kv.h: Graveyard): 20 M keys take seconds to destroy. A
  // snapshot running takes the keyspace instead (what it has not written yet is in it).
  if (s.saving) [[unlikely]] s.saving->flushed(s.keys, s.expires, s.expiry_order);
  else s.graveyard.bury_keyspace(s.keys, s.expires, s.expiry_order);
  free_some(s, ctx);  // a small keyspace goes at once
  r.ok();
}

// =============================================================================================
// snapshot and digest
// =============================================================================================

// Snapshot format, schema version 1 (docs/kv-commands.md):
//   varint key_count, then per key:
//     bytes key; u8 tag = type | 0x80 if it has a deadline; [u64 deadline_ms]
//     string: bytes value
//     hash:   varint n, n × (bytes field, bytes value)       in (XXH3(field), field) order
//             (the digest hashes them in field byte order: EncodeFor::kDigest)
//     list:   varint n, n × bytes element                    head first
//     set:    varint n, n × bytes member                     in set order
//     zset:   varint n, n × (bytes member, f64 score)        in (score, member) order
constexpr uint8_t kTagHasDeadline = 0x80;
constexpr uint8_t kTagTypeMask = 0x7f;

// The digest (and records) hash a key's encoding with a hash's fields in byte order, the
// order snapshots listed them in before big hashes were hash tables (hash.h), so a node of
// either binary computes the same digest for the same state; a snapshot lists them in the
// hash's own order, which costs no sort.
enum class EncodeFor { kSnapshot, kDigest };

// A container's entry up to its elements: key, tag, deadline, element count (save_producer.cc
// writes a big container's elements after it in slices). For a string: up to its bytes.
void encode_header(Encoder& e, std::string_view key, const Value& v, std::optional<uint64_t> deadline) {
  e.bytes(key);
  e.u8(static_cast<uint8_t>(v.index()) | (deadline ? kTagHasDeadline : 0));
  if (deadline) e.u64(*deadline);
  switch (static_cast<Type>(v.index())) {
    case Type::kString: break;
    case Type::kHash: e.varint(std::get<Hash>(v).size()); break;
    case Type::kList: e.varint(std::get<List>(v).size()); break;
    case Type::kSet: e.varint(std::get<Set>(v).size()); break;
    case Type::kZSet: e.varint(std::get<std::unique_ptr<ZSet>>(v)->order.size()); break;
  }
}

void encode_entry(Encoder& e, std::string_view key, const Value& v, std::optional<uint64_t> deadline,
                  EncodeFor purpose = EncodeFor::kSnapshot) {
  encode_header(e, key, v, deadline);
  switch (static_cast<Type>(v.index())) {
    case Type::kString: e.bytes(std::get<String>(v)); break;
    case Type::kHash: {
      const Hash& h = std::get<Hash>(v);
      auto put = [&](std::string_view f, const std::string& val) { e.bytes(f); e.bytes(val); };
      if (purpose == EncodeFor::kDigest) h.for_each_in_byte_order(put); else h.for_each(put);
      break;
    }
    case Type::kList: {
      const List& l = std::get<List>(v);
      l.for_each([&](std::string_view x) { e.bytes(x); });
      break;
    }
    case Type::kSet: {
      const Set& set = std::get<Set>(v);
      set.for_each([&](std::string_view m) { e.bytes(m); });
      break;
    }
    case Type::kZSet: {
      const ZSet& z = *std::get<std::unique_ptr<ZSet>>(v);
      for (const auto& x : z.order) { e.bytes(x.member); e.f64(x.score); }
      break;
    }
  }
}

// Decodes one value of the given type; false on malformed or invariant-breaking input
// (empty container, duplicate member, NaN score).
bool decode_value(Decoder& in, Type type, Value* out) {
  switch (type) {
    case Type::kString: out->emplace<String>(in.bytes()); return in.ok();
    case Type::kHash: {
      uint64_t n = in.count<std::string, std::string>();
      if (n == 0) return false;
      Hash& h = out->emplace<Hash>();
      for (uint64_t i = 0; i < n && in.ok(); i++) {
        std::string_view f = in.bytes(), v = in.bytes();
        if (!in.ok()) return false;
        if (!h.set(f, v)) return false;  // a field twice: corrupt
      }
      return in.ok();
    }
    case Type::kList: {
      uint64_t n = in.count<std::string>();
      if (n == 0) return false;
      List& l = out->emplace<List>();
      for (uint64_t i = 0; i < n && in.ok(); i++) {
        std::string_view x = in.bytes();
        if (!in.ok()) return false;
        l.push_back(x);
      }
      return in.ok();
    }
    case Type::kSet: {
      uint64_t n = in.count<std::string>();
      if (n == 0) return false;
      Set& set = out->emplace<Set>();
      for (uint64_t i = 0; i < n && in.ok(); i++) {
        std::string_view m = in.bytes();
        if (!in.ok()) return false;
        if (!set.insert(SetMemberKey{member_hash(m), m})) return false;  // a member twice: corrupt
      }
      return in.ok();
    }
    case Type::kZSet: {
      uint64_t n = in.count<std::string, double>();
      if (n == 0) return false;
      auto z = std::make_unique<ZSet>();
      z->order.reserve(n);
      for (uint64_t i = 0; i < n && in.ok(); i++) {
        std::string_view m = in.bytes();
        double score = in.f64();
        if (!in.ok() || std::isnan(score) || !z->order.insert(ZEntry{score, ZMember(m)})) return false;
      }
      *out = std::move(z);
      return in.ok();
    }
  }
  return false;
}

}  // namespace

void encode_snapshot_entry(Encoder& e, std::string_view key, const Value& v, std::optional<uint64_t> deadline) {
  encode_entry(e, key, v, deadline);
}
void encode_snapshot_header(Encoder& e, std::string_view key, const Value& v, std::optional<uint64_t> deadline) {
  encode_header(e, key, v, deadline);
}

void Kv::save(const State& s, Encoder& out) {
  out.varint(s.keys.size());
  for (const auto& [key, value] : s.keys) encode_entry(out, key, value, deadline_of(s, key));
}

// Loading is bound by memory latency: each insert lands on a random slot of a table of up
// to gigabytes. String entries (the common case) are therefore decoded kLoadPrefetchDepth
// ahead of their insert, and their slots prefetched, so the cache misses overlap.
constexpr size_t kLoadPrefetchDepth = 16;

namespace {
struct PendingString {
  std::string_view key, value;
  bool has_deadline;
  uint64_t deadline;
};

bool insert_loaded(State& s, std::string_view key, Value* container, std::string_view value, bool has_deadline,
                   uint64_t deadline) {
  bool inserted = container ? s.keys.try_emplace(key, std::move(*container)).second
                            : s.keys.try_emplace(key, std::in_place_index<0>, value).second;
  if (!inserted) return false;  // a key twice: corrupt
  if (has_deadline) {
    s.expires.emplace(key, deadline);
    s.expiry_order.emplace(deadline, std::string(key));
  }
  return true;
}
}  // namespace

bool Kv::load(State& s, Decoder& in, uint32_t version) {
  // AppHost passes only a version this app reads: 1 (kOldestSchemaVersion..kSchemaVersion).
  if (version != 1) return false;
  // Per key: its name, the tag, then a payload of at least a length or a count.
  uint64_t n = in.count<std::string, uint8_t, std::string>();
  if (!in.ok()) return false;
  s.keys.reserve(n);
  PendingString ring[kLoadPrefetchDepth];
  size_t ring_start = 0, ring_size = 0;
  auto insert_oldest = [&] {
    const PendingString& p = ring[ring_start];
    ring_start = (ring_start + 1) % kLoadPrefetchDepth;
    ring_size--;
    return insert_loaded(s, p.key, nullptr, p.value, p.has_deadline, p.deadline);
  };
  for (uint64_t i = 0; i < n; i++) {
    std::string_view key = in.bytes();
    uint8_t tag = in.u8();
    if (!in.ok()) return false;
    uint8_t type = tag & kTagTypeMask;
    bool has_deadline = (tag & kTagHasDeadline) != 0;
    if (type > static_cast<uint8_t>(Type::kZSet)) return false;
    uint64_t deadline = has_deadline ? in.u64() : 0;
    if (type == static_cast<uint8_t>(Type::kString)) {
      std::string_view value = in.bytes();
      if (!in.ok()) return false;
      if (ring_size == kLoadPrefetchDepth && !insert_oldest()) return false;
      s.keys.prefetch(key);
      ring[(ring_start + ring_size) % kLoadPrefetchDepth] = PendingString{key, value, has_deadline, deadline};
      ring_size++;
    } else {
      Value v;
      if (!decode_value(in, static_cast<Type>(type), &v)) return false;
      if (!insert_loaded(s, key, &v, {}, has_deadline, deadline)) return false;
    }
  }
  while (ring_size > 0)
    if (!insert_oldest()) return false;
  return in.ok();
}

// Sum of XXH3 over each key's canonical encoding (the snapshot's, deadline included):
// addition commutes, so the table's iteration order does not matter.
uint64_t Kv::digest(const State& s) {
  Encoder enc;
  uint64_t sum = 0;
  for (const auto& [key, value] : s.keys) {
    enc.clear();
    encode_entry(enc, key, value, deadline_of(s, key), EncodeFor::kDigest);
    sum += XXH3_64bits(enc.buffer().data(), enc.buffer().size());
  }
  return sum;
}

void Kv::records(const State& s, RecordSink& out) {
  Encoder enc;
  for (const auto& [key, value] : s.keys) {
    enc.clear();
    encode_entry(enc, key, value, deadline_of(s, key), EncodeFor::kDigest);
    out.record(key, XXH3_64bits(enc.buffer().data(), enc.buffer().size()));
  }
}

std::string Kv::info(const State& s) {
  // Then the process's 2 MiB blocks of memory and the bucket arrays handed to the prefault
  // thread (value_alloc.h): not the state's; and what the side map of a snapshot written by
  // the loop keeps (save_producer.h; 0 if none runs).
  const SaveCursor* p = s.saving;
  return "keys:" + std::to_string(s.keys.size()) + "\r\nexpires:" + std::to_string(s.expires.size()) + "\r\n" +
         value_alloc::info() + "save_side_keys:" + std::to_string(p ? p->side_entries() : 0) +
         "\r\nsave_side_bytes:" + std::to_string(p ? p->side_bytes() : 0) + "\r\n";
}

std::optional<uint64_t> Kv::expiry_ms(const State& s, std::string_view key) { return deadline_of(s, key); }

std::optional<std::vector<std::string>> Kv::housekeeping(const State& s, uint64_t now_ms) {
  const bool expiring = !s.expiry_order.empty() && s.expiry_order.begin()->first <= now_ms;
  if (!expiring && s.graveyard.empty()) return std::nullopt;
  return std::vector<std::string>{"HMDB.EXPIRE"};
}

void Kv::define(Commands<State>& c) {
  // strings
  c.write("SET", -3, &parse_set, &apply_set).categories("@string @slow");
  c.query("GET", 2, &query_get).categories("@string @fast");
  c.write("DEL", -2, &parse_words, &apply_del, KeySpec::all_after_name()).categories("@keyspace @slow");
  c.query("EXISTS", -2, &query_exists).categories("@keyspace @fast").keys(KeySpec::all_after_name());
  c.write("INCR", 2, &parse_incr, &apply_incr).categories("@string @fast");
  c.write("DECR", 2, &parse_decr, &apply_incr).categories("@string @fast");
  c.write("INCRBY", 3, &parse_incrby, &apply_incr).categories("@string @fast");
  c.write("DECRBY", 3, &parse_decrby, &apply_incr).categories("@string @fast");
  c.write("APPEND", 3, &parse_key_value, &apply_append).categories("@string @fast");
  c.query("STRLEN", 2, &query_strlen).categories("@string @fast");
  c.query("MGET", -2, &query_mget).categories("@string @fast").keys(KeySpec::all_after_name());
  c.write("MSET", -3, &parse_pairs_after_name, &apply_mset, KeySpec{1, -1, 2}).categories("@string @slow");
  c.write("MSETNX", -3, &parse_pairs_after_name, &apply_msetnx, KeySpec{1, -1, 2}).categories("@string @slow");
  c.write("SETNX", 3, &parse_setnx, &apply_set).categories("@string @fast");
  c.write("SETEX", 4, &parse_setex<true>, &apply_set).categories("@string @slow");
  c.write("PSETEX", 4, &parse_setex<false>, &apply_set).categories("@string @slow");
  c.write("GETSET", 3, &parse_getset, &apply_set).categories("@string @fast");
  c.write("GETDEL", 2, &parse_key, &apply_getdel).categories("@string @fast");
  c.write("GETEX", -2, &parse_getex, &apply_getex).categories("@string @fast");
  c.query("GETRANGE", 4, &query_getrange).categories("@string @slow");
  c.write("SETRANGE", 4, &parse_setrange, &apply_setrange).categories("@string @slow");
  c.write("INCRBYFLOAT", 3, &parse_incrbyfloat, &apply_incrbyfloat).categories("@string @fast");
  // hashes
  c.write("HSET", -4, &parse_pairs_after_key, &apply_hset).categories("@hash @fast");
  c.write("HMSET", -4, &parse_pairs_after_key, &apply_hmset).categories("@hash @fast");
  c.query("HGET", 3, &query_hget).categories("@hash @fast");
  c.query("HEXISTS", 3, &query_hexists).categories("@hash @fast");
  c.write("HDEL", -3, &parse_words, &apply_hdel).categories("@hash @fast");
  c.query("HGETALL", 2, &query_hgetall).categories("@hash @slow");
  c.query("HLEN", 2, &query_hlen).categories("@hash @fast");
  c.write("HINCRBY", 4, &parse_hincrby, &apply_hincrby).categories("@hash @fast");
  c.query("HMGET", -3, &query_hmget).categories("@hash @fast");
  c.query("HKEYS", 2, &query_hkeys<true>).categories("@hash @slow");
  c.query("HVALS", 2, &query_hkeys<false>).categories("@hash @slow");
  c.query("HSTRLEN", 3, &query_hstrlen).categories("@hash @fast");
  c.write("HSETNX", 4, &parse_words, &apply_hsetnx).categories("@hash @fast");
  c.write("HINCRBYFLOAT", 4, &parse_hincrbyfloat, &apply_hincrbyfloat).categories("@hash @fast");
  c.query("HRANDFIELD", -2, &query_hrandfield).categories("@hash @slow");
  // lists
  c.write("LPUSH", -3, &parse_words, &apply_push<true>).categories("@list @fast");
  c.write("RPUSH", -3, &parse_words, &apply_push<false>).categories("@list @fast");
  c.write("LPOP", {2, 3}, &parse_pop, &apply_list_pop<true>)
      .categories("@list @fast")
      .unchanged_reply(&pop_unchanged<List, PopArgs, &list_pop_missing>);
  c.write("RPOP", {2, 3}, &parse_pop, &apply_list_pop<false>)
      .categories("@list @fast")
      .unchanged_reply(&pop_unchanged<List, PopArgs, &list_pop_missing>);
  c.query("LRANGE", 4, &query_lrange).categories("@list @slow");
  c.query("LLEN", 2, &query_llen).categories("@list @fast");
  c.query("LINDEX", 3, &query_lindex).categories("@list @slow");
  c.write("LSET", 4, &parse_words, &apply_lset).categories("@list @slow");
  c.write("LREM", 4, &parse_lrem, &apply_lrem).categories("@list @slow");
  c.write("LTRIM", 4, &parse_ltrim, &apply_ltrim).categories("@list @slow");
  c.write("LINSERT", 5, &parse_linsert, &apply_linsert).categories("@list @slow");
  c.query("LPOS", -3, &query_lpos).categories("@list @slow");
  c.write("LPUSHX", -3, &parse_words, &apply_pushx<true>).categories("@list @fast");
  c.write("RPUSHX", -3, &parse_words, &apply_pushx<false>).categories("@list @fast");
  c.write("LMOVE", 5, &parse_lmove, &apply_lmove, KeySpec{1, 2, 1}).categories("@list @slow");
  c.write("RPOPLPUSH", 3, &parse_rpoplpush, &apply_lmove, KeySpec{1, 2, 1}).categories("@list @slow");
  // sets
  c.write("SADD", -3, &parse_words, &apply_sadd).categories("@set @fast");
  c.write("SREM", -3, &parse_words, &apply_srem).categories("@set @fast");
  c.write("SPOP", -2, &parse_pop_syntax, &apply_spop)
      .categories("@set @fast")
      .unchanged_reply(&pop_unchanged<Set, PopArgs, &spop_missing>);
  c.query("SMEMBERS", 2, &query_smembers).categories("@set @slow");
  c.query("SCARD", 2, &query_scard).categories("@set @fast");
  c.query("SISMEMBER", 3, &query_sismember).categories("@set @fast");
  c.query("SMISMEMBER", -3, &query_smismember).categories("@set @fast");
  c.query("SRANDMEMBER", -2, &query_srandmember).categories("@set @slow");
  c.query("SINTER", -2, &query_setop<SetOp::kInter>).categories("@set @slow").keys(KeySpec::all_after_name());
  c.query("SUNION", -2, &query_setop<SetOp::kUnion>).categories("@set @slow").keys(KeySpec::all_after_name());
  c.query("SDIFF", -2, &query_setop<SetOp::kDiff>).categories("@set @slow").keys(KeySpec::all_after_name());
  // The sources are named too (the destination is what changes): ACL key patterns check
  // every key a command touches; WATCH is only told of more keys than change, which is safe.
  c.write("SINTERSTORE", -3, &parse_words, &apply_setop_store<SetOp::kInter>, KeySpec::all_after_name())
      .categories("@set @slow");
  c.write("SUNIONSTORE", -3, &parse_words, &apply_setop_store<SetOp::kUnion>, KeySpec::all_after_name())
      .categories("@set @slow");
  c.write("SDIFFSTORE", -3, &parse_words, &apply_setop_store<SetOp::kDiff>, KeySpec::all_after_name())
      .categories("@set @slow");
  c.query("SINTERCARD", -3, &query_sintercard).categories("@set @slow").keys(KeySpec{2, -1, 1});
  c.write("SMOVE", 4, &parse_words, &apply_smove, KeySpec{1, 2, 1}).categories("@set @fast");
  // sorted sets
  c.write("ZADD", -4, &parse_zadd, &apply_zadd).categories("@sortedset @fast");
  c.write("ZREM", -3, &parse_words, &apply_zrem).categories("@sortedset @fast");
  c.write("ZPOPMIN", -2, &parse_pop_syntax, &apply_zpop<false>)
      .categories("@sortedset @fast")
      .unchanged_reply(&pop_unchanged<ZSet, PopArgs, &zpop_missing>);
  c.write("ZPOPMAX", -2, &parse_pop_syntax, &apply_zpop<true>)
      .categories("@sortedset @fast")
      .unchanged_reply(&pop_unchanged<ZSet, PopArgs, &zpop_missing>);
  c.query("ZRANGE", -4, &query_zrange_generic<Fixed::kFree, -1>).categories("@sortedset @slow");
  c.query("ZREVRANGE", -4, &query_zrange_generic<Fixed::kRank, 1>).categories("@sortedset @slow");
  c.query("ZRANGEBYSCORE", -4, &query_zrange_generic<Fixed::kScore, 0>).categories("@sortedset @slow");
  c.query("ZREVRANGEBYSCORE", -4, &query_zrange_generic<Fixed::kScore, 1>).categories("@sortedset @slow");
  c.query("ZRANGEBYLEX", -4, &query_zrange_generic<Fixed::kLex, 0>).categories("@sortedset @slow");
  c.query("ZREVRANGEBYLEX", -4, &query_zrange_generic<Fixed::kLex, 1>).categories("@sortedset @slow");
  c.query("ZCOUNT", 4, &query_zcount).categories("@sortedset @fast");
  c.query("ZLEXCOUNT", 4, &query_zlexcount).categories("@sortedset @fast");
  c.query("ZRANK", 3, &query_zrank<false>).categories("@sortedset @fast");
  c.query("ZREVRANK", 3, &query_zrank<true>).categories("@sortedset @fast");
  c.query("ZMSCORE", -3, &query_zmscore).categories("@sortedset @fast");
  c.write("ZINCRBY", 4, &parse_zincrby, &apply_zadd).categories("@sortedset @fast");
  c.write("ZREMRANGEBYRANK", 4, &parse_zremrange<ZRangeSpec::By::kRank>, &apply_zremrange)
      .categories("@sortedset @slow");
  c.write("ZREMRANGEBYSCORE", 4, &parse_zremrange<ZRangeSpec::By::kScore>, &apply_zremrange)
      .categories("@sortedset @slow");
  c.write("ZREMRANGEBYLEX", 4, &parse_zremrange<ZRangeSpec::By::kLex>, &apply_zremrange).categories("@sortedset @slow");
  c.query("ZRANDMEMBER", -2, &query_zrandmember).categories("@sortedset @slow");
  // Their keys follow a count and come before options: every word after the name is checked
  // as a key (stricter than Redis for a restricted user; WATCH is told of more than changes).
  c.query("ZUNION", -3, &query_zsetop<SetOp::kUnion>).categories("@sortedset @slow").keys(KeySpec::all_after_name());
  c.query("ZINTER", -3, &query_zsetop<SetOp::kInter>).categories("@sortedset @slow").keys(KeySpec::all_after_name());
  c.query("ZDIFF", -3, &query_zsetop<SetOp::kDiff>).categories("@sortedset @slow").keys(KeySpec::all_after_name());
  c.write("ZUNIONSTORE", -4, &parse_zsetop<SetOp::kUnion, true>, &apply_zsetop_store<SetOp::kUnion>,
          KeySpec::all_after_name())
      .categories("@sortedset @slow");
  c.write("ZINTERSTORE", -4, &parse_zsetop<SetOp::kInter, true>, &apply_zsetop_store<SetOp::kInter>,
          KeySpec::all_after_name())
      .categories("@sortedset @slow");
  c.write("ZDIFFSTORE", -4, &parse_zsetop<SetOp::kDiff, true>, &apply_zsetop_store<SetOp::kDiff>,
          KeySpec::all_after_name())
      .categories("@sortedset @slow");
  c.query("ZSCORE", 3, &query_zscore).categories("@sortedset @fast");
  c.query("ZCARD", 2, &query_zcard).categories("@sortedset @fast");
  // expiry
  c.write("EXPIRE", -3, &parse_expire, &apply_expire).categories("@keyspace @fast");
  c.write("PEXPIRE", -3, &parse_pexpire, &apply_expire).categories("@keyspace @fast");
  c.write("EXPIREAT", -3, &parse_expireat, &apply_expire).categories("@keyspace @fast");
  c.write("PEXPIREAT", -3, &parse_pexpireat, &apply_expire).categories("@keyspace @fast");
  c.write("PERSIST", 2, &parse_key, &apply_persist).categories("@keyspace @fast");
  c.query("TTL", 2, &query_ttl<false>).categories("@keyspace @fast");
  c.query("PTTL", 2, &query_ttl<true>).categories("@keyspace @fast");
  c.write("HMDB.EXPIRE", 1, &parse_words, &apply_hmdb_expire, KeySpec{0, 0, 1, /*reports_more=*/true})
      .categories("@keyspace @slow")
      .engine_only();  // the leader's housekeeping logs it; a client may not (docs/security.md)
  // keyspace
  c.query("DBSIZE", 1, &query_dbsize).categories("@keyspace @fast").keys(KeySpec::none());
  c.query("TYPE", 2, &query_type).categories("@keyspace @fast");
  c.write("FLUSHALL", -1, &parse_flushall, &apply_flushall, KeySpec{0, 0, 1, /*reports_more=*/true})
      .categories("@keyspace @slow @dangerous");
  c.write("FLUSHDB", -1, &parse_flushall, &apply_flushall, KeySpec{0, 0, 1, /*reports_more=*/true})
      .categories("@keyspace @slow @dangerous");
  c.write("UNLINK", -2, &parse_words, &apply_del, KeySpec::all_after_name()).categories("@keyspace @fast");
  c.write("RENAME", 3, &parse_words, &apply_rename<false>, KeySpec{1, 2, 1}).categories("@keyspace @slow");
  c.write("RENAMENX", 3, &parse_words, &apply_rename<true>, KeySpec{1, 2, 1}).categories("@keyspace @fast");
  c.write("COPY", -3, &parse_copy, &apply_copy, KeySpec{1, 2, 1}).categories("@keyspace @slow");
  c.query("TOUCH", -2, &query_touch).categories("@keyspace @fast").keys(KeySpec::all_after_name());
  c.query("EXPIRETIME", 2, &query_expiretime<false>).categories("@keyspace @fast");
  c.query("PEXPIRETIME", 2, &query_expiretime<true>).categories("@keyspace @fast");
  c.query("OBJECT", -2, &query_object).categories("@keyspace @slow").keys(KeySpec{2, 2, 1});
  // blocking forms: writes that wait (.blocking(timeout word): core/blocking.h). BLMPOP's and
  // BZMPOP's keys follow a count: every word after the name is checked as a key, as for ZUNION.
  c.write("BLPOP", -3, &parse_blocking_pop, &apply_blocking_list_pop<true>, KeySpec{1, -2, 1})
      .categories("@list @slow @blocking")
      .blocking(-1);
  c.write("BRPOP", -3, &parse_blocking_pop, &apply_blocking_list_pop<false>, KeySpec{1, -2, 1})
      .categories("@list @slow @blocking")
      .blocking(-1);
  c.write("BLMOVE", 6, &parse_blmove, &apply_lmove, KeySpec{1, 2, 1}).categories("@list @slow @blocking").blocking(-1);
  c.write("BRPOPLPUSH", 4, &parse_brpoplpush, &apply_lmove, KeySpec{1, 2, 1})
      .categories("@list @slow @blocking")
      .blocking(-1);
  c.write("BLMPOP", -5, &parse_multi_pop<false>, &apply_blmpop, KeySpec::all_after_name())
      .categories("@list @slow @blocking")
      .blocking(1);
  c.write("BZPOPMIN", -3, &parse_blocking_pop, &apply_blocking_zpop<false>, KeySpec{1, -2, 1})
      .categories("@sortedset @fast @blocking")
      .blocking(-1);
  c.write("BZPOPMAX", -3, &parse_blocking_pop, &apply_blocking_zpop<true>, KeySpec{1, -2, 1})
      .categories("@sortedset @fast @blocking")
      .blocking(-1);
  c.write("BZMPOP", -5, &parse_multi_pop<true>, &apply_bzmpop, KeySpec::all_after_name())
      .categories("@sortedset @slow @blocking")
      .blocking(1);
  c.write("LMPOP", -4, &parse_multi_pop<false, false>, &apply_blmpop, KeySpec::all_after_name())
      .categories("@list @slow");
  c.write("ZMPOP", -4, &parse_multi_pop<true, false>, &apply_bzmpop, KeySpec::all_after_name())
      .categories("@sortedset @slow");
  // key iteration
  c.query("SCAN", -2, &query_scan).categories("@keyspace @slow").keys(KeySpec::none());
  c.query("KEYS", 2, &query_keys).categories("@keyspace @slow @dangerous").keys(KeySpec::none());
  c.query("RANDOMKEY", 1, &query_randomkey).categories("@keyspace @slow").keys(KeySpec::none());
  c.query("HSCAN", -3, &query_hscan).categories("@hash @slow");
  c.query("SSCAN", -3, &query_sscan).categories("@set @slow");
  c.query("ZSCAN", -3, &query_zscan).categories("@sortedset @slow");
}

}  // namespace hmdb::kv
