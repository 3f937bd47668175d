// tests/apps/kv_save_test.cc — kv's snapshot written by the loop in slices (apps/kv/
// save_producer.h, hmdb::SaveProducer): the producer's bytes, put together, are exactly
// Kv::save() of the state at begin_save, whatever writes run between its slices and however
// the budgets cut it; it changes nothing the commands see; destroying it mid-way unhooks it.
//
// The property test runs random command sequences over every kv write command family
// through the app test driver, interleaved with next() calls of random budgets, on a twin
// driver without a producer too (same replies, same final state). HMDB_TEST_SEED=<n> replays
// a seed (printed on failure); HMDB_SAVE_ROUNDS=<n> runs more rounds (CI: kRoundsDefault).
// Planted bugs seen failing (built with -D...): HMDB_PLANTED_BUG_SAVE_NO_TOUCH_ON_CREATE
// (HSET/LPUSH/SADD's container_for_create skips the hook) and
// HMDB_PLANTED_BUG_SAVE_NO_KEEP_ON_DELETE (erase_key, DEL's path, skips it); for big
// containers (written element by element; most rounds lower the threshold so that every
// container is one) HMDB_PLANTED_BUG_SAVE_NO_FIELD_HOOK (HSET's fields and SADD's members
// skip the element hook) and HMDB_PLANTED_BUG_SAVE_INNER_AHEAD_AT_POSITION (an element at
// the inner position counts as ahead: kept after it was written, written twice); for big
// lists (BigListsWhateverIsWrittenBetween) HMDB_PLANTED_BUG_SAVE_NO_LIST_POP_HOOK (LPOP/RPOP,
// BLPOP, LMPOP and LMOVE's pop skip the hook), HMDB_PLANTED_BUG_SAVE_LIST_PUSH_FRONT_NOT_COUNTED
// (a push at the head does not move the run: a wrong index mapping) and
// HMDB_PLANTED_BUG_SAVE_NO_LSET_KEEP (LSET skips the hook), HMDB_PLANTED_BUG_SAVE_LIST_INSERT_NOT_SPLIT
// (an LINSERT inside a run splits it but its second half does not move past the new element)
// and HMDB_PLANTED_BUG_SAVE_LIST_REMOVE_NOT_SHIFTED (the runs after an LREM's removals do not
// move back); for the checks of a state changed
// behind the hooks' back, HMDB_PLANTED_BUG_SAVE_NO_STATE_CHECK (next() throws
// std::bad_variant_access).
#include "kv/save_producer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "hmdb/testing.h"

namespace hmdb::kv {
namespace {

// Rounds of the property test in CI (each a few hundred commands); HMDB_SAVE_ROUNDS for more.
constexpr int kRoundsDefault = 150;

std::string save_of(const State& s) {
  std::string out;
  Encoder e(&out);
  Kv::save(s, e);
  return out;
}

// Where two encodings first differ, for a failure message (the bytes themselves are long).
std::string difference(const std::string& got, const std::string& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) i++;
  auto around = [&](const std::string& x) {
    std::string out;
    for (size_t j = i; j < x.size() && j < i + 24; j++) {
      const unsigned char c = static_cast<unsigned char>(x[j]);
      out += (c >= 32 && c < 127) ? std::string(1, static_cast<char>(c)) : "\\x" + std::to_string(c);
    }
    return out;
  };
  return "sizes " + std::to_string(got.size()) + " and " + std::to_string(want.size()) + ", first difference at byte " +
         std::to_string(i) + ": got '" + around(got) + "', save() '" + around(want) + "'";
}

// Everything p writes from now on, in slices of the budgets `pick` gives, with `between`
// run before each slice after the first; the number of slices in *slices.
template <class Pick, class Between>
std::string drain(SaveProducer& p, Pick pick, Between between, size_t* slices = nullptr) {
  std::string out;
  Encoder e(&out);
  size_t n = 0;
  for (;;) {
    if (n > 0) between();
    n++;
    if (p.next(e, pick())) break;
  }
  if (slices) *slices = n;
  return out;
}

// Random kv writes over a small key pool (so writes land ahead of and behind the cursor,
// and on keys already kept), of every write family; containers small and big (over the
// lazy-free and compact-container thresholds).
class Writer {
 public:
  explicit Writer(uint64_t seed) : rng_(seed) { keys_ = pick(0, 1) ? 24 : 160; }
  bool flushes = true;  // FLUSHALL and FLUSHDB among the commands
  // Sorted sets only (and a few keyspace commands) over 6 keys, each a big sorted set first.
  void zsets_only() {
    zsets_ = true;
    keys_ = 6;
  }
  std::vector<std::vector<std::string>> big_zsets() {
    std::vector<std::vector<std::string>> out;
    for (int k = 0; k < keys_; k++) {
      std::vector<std::string> c = {"ZADD", "k" + std::to_string(k)};
      for (int i = pick(100, 270); i >= 0; i--) {
        c.push_back(zscore());
        c.push_back("z" + std::to_string(i));
      }
      out.push_back(std::move(c));
    }
    return out;
  }

  // Lists only (and a few keyspace commands) over 6 keys, each a big list first.
  void lists_only() {
    lists_ = true;
    keys_ = 6;
  }
  std::vector<std::vector<std::string>> big_lists() {
    std::vector<std::vector<std::string>> out;
    for (int k = 0; k < keys_; k++) {
      std::vector<std::string> c = {"RPUSH", "k" + std::to_string(k)};
      for (int i = pick(100, 270); i >= 0; i--) c.push_back(word());
      out.push_back(std::move(c));
    }
    return out;
  }

  std::vector<std::string> command() {
    if (zsets_) return pick(0, 19) == 0 ? keyspace_cmd() : zset_cmd();
    if (lists_) return pick(0, 19) == 0 ? keyspace_cmd() : big_list_cmd();
    const int family = pick(0, 99);
    if (family < 22) return string_cmd();
    if (family < 36) return hash_cmd();
    if (family < 50) return list_cmd();
    if (family < 64) return set_cmd();
    if (family < 78) return zset_cmd();
    if (family < 92) return expiry_cmd();
    return keyspace_cmd();
  }
  int pick(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  std::mt19937_64& rng() { return rng_; }

 private:
  std::string key() { return "k" + std::to_string(pick(0, keys_ - 1)); }
  std::string word() { return std::string(static_cast<size_t>(pick(1, 3)), static_cast<char>('a' + pick(0, 5))) + std::to_string(pick(0, 9)); }
  std::string num() { return std::to_string(pick(-5, 50)); }
  // A field or member of a big hash or set ("f12", "m12"), or of a small one.
  std::string field() { return pick(0, 1) ? "f" + std::to_string(pick(0, 270)) : word(); }
  std::string member() { return pick(0, 1) ? "m" + std::to_string(pick(0, 270)) : word(); }
  // A big container's members: more than kLazyFreeElementsMin and the compact forms hold.
  bool big() { return pick(0, 19) == 0; }
  size_t big_count() { return static_cast<size_t>(pick(70, 260)); }

  std::vector<std::string> string_cmd() {
    switch (pick(0, 13)) {
      case 0: return {"SET", key(), word()};
      case 1: return {"SET", key(), word(), "PX", std::to_string(pick(1, 400))};
      case 2: return {"SET", key(), word(), pick(0, 1) ? "NX" : "XX"};
      case 3: return {"SET", key(), word(), "KEEPTTL", "GET"};
      case 4: return {"INCR", key()};
      case 5: return {"INCRBY", key(), num()};
      case 6: return {"APPEND", key(), word()};
      case 7: return {"SETRANGE", key(), std::to_string(pick(0, 6)), word()};
      case 8: return {"MSET", key(), word(), key(), word()};
      case 9: return {"MSETNX", key(), word(), key(), word()};
      case 10: return {"GETDEL", key()};
      case 11: return {"GETEX", key(), "PX", std::to_string(pick(1, 400))};
      case 12: return {"INCRBYFLOAT", key(), "1.5"};
      default: return {"GETSET", key(), word()};
    }
  }
  std::vector<std::string> hash_cmd() {
    std::vector<std::string> c;
    switch (pick(0, 6)) {
      case 0:
      case 1: {
        c = {"HSET", key()};
        const size_t n = big() ? big_count() : static_cast<size_t>(pick(1, 4));
        for (size_t i = 0; i < n; i++) {
          c.push_back(n > 8 ? "f" + std::to_string(i) : word());
          c.push_back(word());
        }
        return c;
      }
      case 2: return {"HDEL", key(), field(), field()};
      case 3: return {"HINCRBY", key(), field(), num()};
      case 4: return {"HSETNX", key(), field(), word()};
      case 5: return {"HINCRBYFLOAT", key(), field(), "0.5"};
      default: return {"HSET", key(), field(), word(), field(), num()};
    }
  }
  std::vector<std::string> list_cmd() {
    switch (pick(0, 11)) {
      case 0:
      case 1: {
        std::vector<std::string> c = {pick(0, 1) ? "LPUSH" : "RPUSH", key()};
        const size_t n = big() ? big_count() : static_cast<size_t>(pick(1, 4));
        for (size_t i = 0; i < n; i++) c.push_back(word());
        return c;
      }
      case 2: return {"LPOP", key()};
      case 3: return {"RPOP", key(), std::to_string(pick(1, 3))};
      case 4: return {"LSET", key(), std::to_string(pick(-2, 2)), word()};
      case 5: return {"LREM", key(), std::to_string(pick(-1, 1)), word()};
      case 6: return {"LTRIM", key(), std::to_string(pick(0, 2)), std::to_string(pick(-3, 5))};
      case 7: return {"LINSERT", key(), pick(0, 1) ? "BEFORE" : "AFTER", word(), word()};
      case 8: return {"LMOVE", key(), key(), pick(0, 1) ? "LEFT" : "RIGHT", pick(0, 1) ? "LEFT" : "RIGHT"};
      case 9: return {"RPOPLPUSH", key(), key()};
      case 10: return {"LPUSHX", key(), word()};
      default: return {"LMPOP", "2", key(), key(), pick(0, 1) ? "LEFT" : "RIGHT"};
    }
  }
  // List writes for big lists: pushes and pops at both ends (counts), LTRIM at both ends,
  // LSET anywhere, LINSERT, LREM, LMOVE/BLMOVE/RPOPLPUSH within the pool, BLPOP/BRPOP,
  // LMPOP/BLMPOP.
  std::vector<std::string> big_list_cmd() {
    const std::string side = pick(0, 1) ? "LEFT" : "RIGHT";
    switch (pick(0, 17)) {
      case 0:
      case 1:
      case 2: {
        std::vector<std::string> c = {pick(0, 2) ? "LPUSH" : "RPUSH", key()};
        for (int n = pick(0, 9) == 0 ? pick(20, 80) : pick(1, 4); n > 0; n--) c.push_back(word());
        return c;
      }
      case 3: return {pick(0, 1) ? "LPOP" : "RPOP", key()};
      case 4: return {pick(0, 1) ? "LPOP" : "RPOP", key(), std::to_string(pick(0, 30))};
      case 5:
      case 6: return {"LSET", key(), std::to_string(pick(-300, 300)), word()};
      case 7: return {"LTRIM", key(), std::to_string(pick(0, 12)), std::to_string(pick(-12, -1))};
      case 8: return {"LTRIM", key(), std::to_string(pick(0, 200)), std::to_string(pick(-300, 300))};
      case 9: return {"LINSERT", key(), pick(0, 1) ? "BEFORE" : "AFTER", word(), word()};
      case 10: return {"LREM", key(), std::to_string(pick(-2, 2)), word()};
      case 11: return {"LMOVE", key(), key(), side, pick(0, 1) ? "LEFT" : "RIGHT"};
      case 12: return {"BLMOVE", key(), key(), side, pick(0, 1) ? "LEFT" : "RIGHT", "0.01"};
      case 13: return {"RPOPLPUSH", key(), key()};
      case 14: return {pick(0, 1) ? "BLPOP" : "BRPOP", key(), key(), "0.01"};
      case 15: return {"LMPOP", "2", key(), key(), side, "COUNT", std::to_string(pick(1, 20))};
      case 16: return {"BLMPOP", "0.01", "2", key(), key(), side, "COUNT", std::to_string(pick(1, 20))};
      default: return {pick(0, 1) ? "LPUSHX" : "RPUSHX", key(), word(), word()};
    }
  }
  std::vector<std::string> set_cmd() {
    switch (pick(0, 9)) {
      case 0:
      case 1: {
        std::vector<std::string> c = {"SADD", key()};
        const size_t n = big() ? big_count() : static_cast<size_t>(pick(1, 4));
        for (size_t i = 0; i < n; i++) c.push_back(n > 8 ? "m" + std::to_string(i) : word());
        return c;
      }
      case 2: return {"SREM", key(), member(), member()};
      case 3: return {"SPOP", key()};
      case 4: return {"SPOP", key(), std::to_string(pick(1, 5))};
      case 5: return {"SMOVE", key(), key(), member()};
      case 9: return {"SADD", key(), member(), member()};
      case 6: return {"SUNIONSTORE", key(), key(), key()};
      case 7: return {"SINTERSTORE", key(), key(), key()};
      default: return {"SDIFFSTORE", key(), key(), key()};
    }
  }
  // A member of a big sorted set ("z12"), or of a small one; and a score among few values
  // (ties: the member decides the place).
  std::string zmember() { return pick(0, 2) ? "z" + std::to_string(pick(0, 270)) : word(); }
  std::string zscore() { return pick(0, 3) ? num() : std::to_string(pick(-2, 2)); }
  std::vector<std::string> zset_cmd() {
    switch (pick(0, 21)) {
      case 0:
      case 1: {
        std::vector<std::string> c = {"ZADD", key()};
        const size_t n = big() ? big_count() : static_cast<size_t>(pick(1, 4));
        for (size_t i = 0; i < n; i++) {
          c.push_back(num());
          c.push_back(n > 8 ? "z" + std::to_string(i) : word());
        }
        return c;
      }
      case 2: return {"ZREM", key(), zmember(), zmember()};
      case 3: return {"ZINCRBY", key(), zscore(), zmember()};
      case 4: return {pick(0, 1) ? "ZPOPMIN" : "ZPOPMAX", key()};
      case 5: return {"ZREMRANGEBYRANK", key(), "0", std::to_string(pick(0, 3))};
      case 6: return {"ZREMRANGEBYSCORE", key(), "0", std::to_string(pick(0, 20))};
      case 7: return {"ZUNIONSTORE", key(), "2", key(), key()};
      case 8: return {"ZINTERSTORE", key(), "2", key(), key()};
      case 9: {  // ZADD with flags on existing members: moves, GT/LT/NX/XX skips, INCR
        static constexpr const char* kFlags[] = {"NX", "XX", "GT", "LT", "CH"};
        std::vector<std::string> c = {"ZADD", key()};
        if (pick(0, 1)) c.push_back(kFlags[pick(0, 4)]);
        if (pick(0, 3) == 0) {
          c.push_back("INCR");
          c.push_back(zscore());
          c.push_back(zmember());
          return c;
        }
        for (int i = pick(1, 4); i > 0; i--) {
          c.push_back(zscore());
          c.push_back(zmember());
        }
        return c;
      }
      case 10: return {pick(0, 1) ? "ZPOPMIN" : "ZPOPMAX", key(), std::to_string(pick(1, 12))};
      case 11: {  // a run in the middle or at the end (negative ranks)
        const int from = pick(-40, 60);
        return {"ZREMRANGEBYRANK", key(), std::to_string(from), std::to_string(from + pick(0, 8))};
      }
      case 12: {
        const int lo = pick(-5, 50);
        return {"ZREMRANGEBYSCORE", key(), pick(0, 1) ? "(" + std::to_string(lo) : std::to_string(lo),
                std::to_string(lo + pick(0, 3))};
      }
      case 13: return {"ZREMRANGEBYLEX", key(), "[z1", pick(0, 1) ? "(z2" : "[z15"};
      case 14: return {pick(0, 1) ? "BZPOPMIN" : "BZPOPMAX", key(), key(), "0.01"};
      case 15: return {"BZMPOP", "0.01", "2", key(), key(), pick(0, 1) ? "MIN" : "MAX", "COUNT", std::to_string(pick(1, 9))};
      case 16: return {"ZDIFFSTORE", key(), "2", key(), key()};
      case 17: return {"ZINCRBY", key(), std::to_string(pick(-60, 60)), "z" + std::to_string(pick(0, 80))};
      case 18: return {"ZREM", key(), zmember(), zmember(), zmember(), zmember()};
      case 19: return {"ZADD", key(), "XX", "CH", zscore(), zmember(), zscore(), zmember()};
      case 20: return {"ZUNIONSTORE", key(), "1", key(), "WEIGHTS", std::to_string(pick(-1, 2))};
      default: return {"ZMPOP", "2", key(), key(), pick(0, 1) ? "MIN" : "MAX"};
    }
  }
  std::vector<std::string> expiry_cmd() {
    switch (pick(0, 6)) {
      case 0: return {"PEXPIRE", key(), std::to_string(pick(1, 400))};
      case 1: return {"EXPIRE", key(), std::to_string(pick(1, 5))};
      case 2: return {"PEXPIREAT", key(), "1"};  // in the past: deletes the key
      case 3: return {"PERSIST", key()};
      case 4: return {"PEXPIRE", key(), std::to_string(pick(1, 400)), pick(0, 1) ? "NX" : "GT"};
      case 5: return {"HMDB.EXPIRE"};
      default: return {"SETEX", key(), "1", word()};
    }
  }
  std::vector<std::string> keyspace_cmd() {
    switch (pick(0, 20)) {
      case 0:
      case 1:
      case 2:
      case 3: return {"DEL", key(), key()};
      case 4:
      case 5:
      case 6: return {"UNLINK", key()};
      case 7:
      case 8:
      case 9: return {"RENAME", key(), key()};
      case 10:
      case 11: return {"RENAMENX", key(), key()};
      case 12:
      case 13:
      case 14: return {"COPY", key(), key(), "REPLACE"};
      case 15:
      case 16: return {"COPY", key(), key()};
      case 17: if (flushes) return {"FLUSHALL"}; return {"DEL", key()};
      case 18: if (flushes) return {"FLUSHDB"}; return {"DEL", key()};
      default: return {"DEL", key()};
    }
  }

  std::mt19937_64 rng_;
  int keys_;  // the key pool: k0 .. k<keys_ - 1>
  bool zsets_ = false;
  bool lists_ = false;
};

uint64_t seed_from_env() {
  if (const char* env = std::getenv("HMDB_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

int rounds_from_env() {
  if (const char* env = std::getenv("HMDB_SAVE_ROUNDS")) return std::atoi(env);
  return kRoundsDefault;
}

// Two drivers fed the same commands: `db` has the producer, `twin` none.
struct Twins {
  testing::AppDriver<Kv> db, twin;
  size_t commands = 0;
  void run(const std::vector<std::string>& c, bool slice_writes) {
    std::vector<std::string_view> w(c.begin(), c.end());
    db.write_slicing.slice_elements = slice_writes ? 16 : 0;
    twin.write_slicing.slice_elements = 0;
    const std::string a = db.run(w), b = twin.run(w);
    commands++;
    ASSERT_EQ(a, b) << "a snapshot running changed a reply: " << c[0];
  }
  void advance(uint64_t ms) {
    db.now_ms += ms;
    twin.now_ms += ms;
  }
};

// What the rounds exercised, so that the test says it did (a generator that stopped writing
// ahead of the cursor would pass vacuously).
struct Coverage {
  size_t rounds = 0, slices = 0, writes_between = 0, keys_at_begin = 0, kept = 0, held = 0, flushed = 0;
  size_t sliced = 0;  // big containers kept or written element by element
  size_t zset_places = 0;  // places of big sorted sets kept (zset_save.h)
  size_t list_elements = 0;  // elements of big lists kept (list_save.h)
  size_t lists_flattened = 0;  // big lists encoded from where they were (LINSERT, LREM past the bound)
  size_t lists_split = 0;  // LINSERTs and LREMs that split the unwritten runs of a big list
};
Coverage coverage;

// One round: a random state, a producer begun on it, random writes between its slices.
// kZsets: big sorted sets, sorted-set commands, slices of more elements (zsets_only); kLists
// the same for lists (lists_only).
enum class Only { kAll, kZsets, kLists };
void round(uint64_t seed, bool abandon, Only only = Only::kAll) {
  Writer w(seed);
  Twins t;
  const bool zsets = only != Only::kAll;  // a few big containers: slices of more elements
  if (only == Only::kZsets) {
    w.zsets_only();
    for (const auto& c : w.big_zsets()) ASSERT_NO_FATAL_FAILURE(t.run(c, false));
  } else if (only == Only::kLists) {
    w.lists_only();
    for (const auto& c : w.big_lists()) ASSERT_NO_FATAL_FAILURE(t.run(c, false));
  }
  const int setup = w.pick(0, zsets ? 40 : 300);
  w.flushes = false;
  for (int i = 0; i < setup; i++) {
    ASSERT_NO_FATAL_FAILURE(t.run(w.command(), false));
    if (w.pick(0, 9) == 0) t.advance(static_cast<uint64_t>(w.pick(1, 200)));
  }
  w.flushes = true;
  const std::string expected = save_of(t.db.host.state());
  std::unique_ptr<SaveProducer> p = t.db.host.begin_save();
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(t.db.host.state().saving, p.get());
  auto* cursor = static_cast<SaveCursor*>(p.get());
  // Which containers are big (written element by element): all of them, the test's big
  // ones (70-260 elements), or none (kSaveWholeElementsMax).
  static constexpr size_t kWholeMax[] = {0, 3, 64, kSaveWholeElementsMax};
  cursor->set_whole_elements_max(kWholeMax[zsets ? w.pick(0, 2) : w.pick(0, 3)]);
  // Big lists: one round in three bounds their segments low (the fallback past the bound:
  // the rest encoded at once, list_save.h).
  if (w.pick(0, 2) == 0) cursor->set_list_segments_max(static_cast<size_t>(w.pick(2, 6)));
  coverage.rounds++;
  coverage.keys_at_begin += t.db.host.state().keys.size();
  bool flushed = false;
  const size_t stop_after = abandon ? static_cast<size_t>(w.pick(1, 6)) : SIZE_MAX;
  std::string got;
  Encoder e(&got);
  bool done = false;
  for (size_t slice = 0; !done && slice < stop_after; slice++) {
    if (slice > 0) {
      const int n = w.pick(0, 8);
      for (int i = 0; i < n; i++) {
        ASSERT_NO_FATAL_FAILURE(t.run(w.command(), w.pick(0, 3) == 0));
        if (w.pick(0, 7) == 0) t.advance(static_cast<uint64_t>(w.pick(1, 300)));
      }
      coverage.writes_between += static_cast<size_t>(n);
      if (!flushed && t.db.host.state().saving == nullptr) {
        flushed = true;
        coverage.flushed++;
      }
      coverage.kept = std::max(coverage.kept, cursor->side_entries());
      coverage.held = std::max(coverage.held, cursor->side_held());
    }
    coverage.slices++;
    SliceBudget b;
    b.elements = w.pick(0, 7) == 0 ? SIZE_MAX : static_cast<size_t>(w.pick(1, zsets ? 60 : 6));
    b.bytes = w.pick(0, 2) == 0 ? SIZE_MAX : static_cast<size_t>(w.pick(1, 300));
    done = p->next(e, b);
    ASSERT_EQ(save_of(t.db.host.state()), save_of(t.twin.host.state())) << "next() changed the state";
  }
  coverage.sliced += cursor->containers_sliced();
  coverage.zset_places += cursor->zset_places_kept();
  coverage.list_elements += cursor->list_elements_kept();
  coverage.lists_flattened += cursor->lists_flattened();
  coverage.lists_split += cursor->lists_split();
  if (abandon) {
    p.reset();
    EXPECT_EQ(t.db.host.state().saving, nullptr) << "destroyed: unhooked";
  } else {
    EXPECT_TRUE(done);
    EXPECT_TRUE(got == expected) << "the slices are not save() at begin_save (" << t.commands
                                 << " commands): " << difference(got, expected);
    EXPECT_EQ(t.db.host.state().saving, nullptr) << "done: unhooked";
  }
  // Either way the state goes on as without a snapshot.
  for (int i = 0; i < 60; i++) ASSERT_NO_FATAL_FAILURE(t.run(w.command(), false));
  EXPECT_EQ(save_of(t.db.host.state()), save_of(t.twin.host.state()));
  // And a next snapshot works.
  const std::string again = save_of(t.db.host.state());
  p = t.db.host.begin_save();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(drain(*p, [] { return SliceBudget{3, SIZE_MAX}; }, [] {}), again);
}

TEST(KvSave, SlicesAreSaveAtBeginWhateverIsWrittenBetween) {
  const uint64_t seed = seed_from_env();
  const int rounds = rounds_from_env();
  for (int r = 0; r < rounds && !HasFailure(); r++) {
    SCOPED_TRACE("HMDB_TEST_SEED=" + std::to_string(seed) + " round " + std::to_string(r));
    round(seed + static_cast<uint64_t>(r), /*abandon=*/false);
  }
  if (HasFailure()) std::fprintf(stderr, "kv_save_test: replay with HMDB_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed));
  std::printf("rounds %zu, keys at begin %zu, slices %zu, writes between slices %zu, most kept %zu, most held %zu, "
              "flushed mid-way %zu, big containers sliced %zu, sorted-set places kept %zu\n",
              coverage.rounds, coverage.keys_at_begin, coverage.slices, coverage.writes_between, coverage.kept,
              coverage.held, coverage.flushed, coverage.sliced, coverage.zset_places);
  if (rounds >= kRoundsDefault && !HasFailure()) {
    EXPECT_GT(coverage.writes_between, coverage.rounds * 10) << "writes ran between slices";
    EXPECT_GE(coverage.kept, 5u) << "keys were kept ahead of the cursor";
    EXPECT_GE(coverage.held, 2u) << "deleted values were moved into the side map";
    EXPECT_GE(coverage.flushed, 1u) << "a FLUSHALL ran mid-way";
    EXPECT_GE(coverage.sliced, 50u) << "big containers were kept and written element by element";
  }
}

TEST(KvSave, DestroyedMidwayLeavesTheStateAsWithoutASnapshot) {
  const uint64_t seed = seed_from_env() ^ 0x5eed;
  const int rounds = rounds_from_env() / 3 + 1;
  for (int r = 0; r < rounds && !HasFailure(); r++) {
    SCOPED_TRACE("HMDB_TEST_SEED=" + std::to_string(seed ^ 0x5eed) + " round " + std::to_string(r));
    round(seed + static_cast<uint64_t>(r), /*abandon=*/true);
  }
}

// Big sorted sets (above the test's threshold: written over several slices) hit by every
// sorted-set write between slices: ZADD (new members, moves, NX/XX/GT/LT/CH/INCR), ZINCRBY,
// ZREM, pops (ZPOPMIN/MAX, BZPOP*, ZMPOP, BZMPOP), range removals (by rank, score, lex),
// ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE over them, and DEL, RENAME, COPY, FLUSHALL.
TEST(KvSave, BigSortedSetsWhateverIsWrittenBetween) {
  const uint64_t seed = seed_from_env() ^ 0x25e7;
  const int rounds = rounds_from_env();
  const Coverage before = coverage;
  for (int r = 0; r < rounds && !HasFailure(); r++) {
    SCOPED_TRACE("HMDB_TEST_SEED=" + std::to_string(seed ^ 0x25e7) + " round " + std::to_string(r));
    round(seed + static_cast<uint64_t>(r), /*abandon=*/r % 5 == 4, Only::kZsets);
  }
  if (HasFailure()) std::fprintf(stderr, "kv_save_test: replay with HMDB_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed ^ 0x25e7));
  const size_t places = coverage.zset_places - before.zset_places, sliced = coverage.sliced - before.sliced;
  std::printf("big sorted sets: rounds %d, sliced %zu, places kept %zu\n", rounds, sliced, places);
  if (rounds >= kRoundsDefault && !HasFailure()) {
    EXPECT_GE(sliced, static_cast<size_t>(rounds)) << "sorted sets were written element by element";
    EXPECT_GE(places, static_cast<size_t>(rounds) * 5) << "their entries were kept ahead of the inner cursor";
  }
}

// Big lists (above the test's threshold: written over several slices) hit by every list
// write between slices: pushes at both ends, pops with and without counts, LTRIM, LSET,
// LINSERT, LREM, LMOVE/BLMOVE/RPOPLPUSH (a list onto itself too), BLPOP/BRPOP,
// LMPOP/BLMPOP, LPUSHX/RPUSHX, and DEL, RENAME, COPY, FLUSHALL.
TEST(KvSave, BigListsWhateverIsWrittenBetween) {
  const uint64_t seed = seed_from_env() ^ 0x7157;
  const int rounds = rounds_from_env();
  const Coverage before = coverage;
  for (int r = 0; r < rounds && !HasFailure(); r++) {
    SCOPED_TRACE("HMDB_TEST_SEED=" + std::to_string(seed ^ 0x7157) + " round " + std::to_string(r));
    round(seed + static_cast<uint64_t>(r), /*abandon=*/r % 5 == 4, Only::kLists);
  }
  if (HasFailure()) std::fprintf(stderr, "kv_save_test: replay with HMDB_TEST_SEED=%llu\n", static_cast<unsigned long long>(seed ^ 0x7157));
  const size_t kept = coverage.list_elements - before.list_elements, sliced = coverage.sliced - before.sliced,
               flattened = coverage.lists_flattened - before.lists_flattened,
               split = coverage.lists_split - before.lists_split;
  std::printf("big lists: rounds %d, sliced %zu, elements kept %zu, runs split by LINSERT/LREM %zu, encoded from where "
              "they were (past a low bound) %zu\n",
              rounds, sliced, kept, split, flattened);
  if (rounds >= kRoundsDefault && !HasFailure()) {
    EXPECT_GE(sliced, static_cast<size_t>(rounds)) << "lists were written element by element";
    EXPECT_GE(kept, static_cast<size_t>(rounds) * 5) << "their elements were kept ahead of the inner cursor";
    EXPECT_LT(flattened, sliced / 2) << "most lists were followed to the end, not encoded from where they were";
    EXPECT_GE(split, static_cast<size_t>(rounds)) << "LINSERT and LREM split the runs";
    EXPECT_GT(flattened, 0u) << "the fallback past the bound ran";
  }
}

TEST(KvSave, EmptyState) {
  testing::AppDriver<Kv> db;
  auto p = db.host.begin_save();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(db.run({"SET", "a", "1"}), testing::kOk);  // created after I: not in it
  std::string out;
  Encoder e(&out);
  EXPECT_TRUE(p->next(e, SliceBudget{1, 1}));
  EXPECT_EQ(out, std::string(1, '\0')) << "save() of an empty state: a zero key count";
  EXPECT_EQ(db.host.state().saving, nullptr);
}

TEST(KvSave, OneAtATime) {
  testing::AppDriver<Kv> db;
  auto p = db.host.begin_save();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(db.host.begin_save(), nullptr) << "a second one while one runs: none (the engine forks)";
  p.reset();
  EXPECT_NE(db.host.begin_save(), nullptr);
}

// Begun while the key table doubles (key_table.h: a resize moves buckets a step per insert
// and erase), writes going on across its end.
TEST(KvSave, TableMidResize) {
  testing::AppDriver<Kv> db, twin;
  int n = 0;
  auto set = [&](const std::string& k, const std::string& v) {
    db.run({"SET", k, v});
    twin.run({"SET", k, v});
  };
  while (n < 1000 || !db.host.state().keys.rehashing()) {
    set("key:" + std::to_string(n), std::to_string(n));
    n++;
  }
  ASSERT_TRUE(db.host.state().keys.rehashing());
  const std::string expected = save_of(db.host.state());
  auto p = db.host.begin_save();
  int written = 0;
  bool saw_resize_end = false;
  const std::string got = drain(
      *p, [] { return SliceBudget{3, SIZE_MAX}; },
      [&] {
        for (int i = 0; i < 5; i++) {
          set("key:" + std::to_string(written % (n + 400)), "x" + std::to_string(written));
          if (written % 3 == 0) {
            db.run({"DEL", "key:" + std::to_string(written / 2)});
            twin.run({"DEL", "key:" + std::to_string(written / 2)});
          }
          written++;
        }
        if (!db.host.state().keys.rehashing()) saw_resize_end = true;
      });
  EXPECT_TRUE(saw_resize_end) << "the resize ended during the snapshot";
  EXPECT_EQ(got, expected);
  EXPECT_EQ(save_of(db.host.state()), save_of(twin.host.state()));
}

// FLUSHALL hands the keyspace over; writes after it cost the snapshot nothing (unhooked),
// and the kept keys and the old keyspace go to the graveyard at the end.
TEST(KvSave, FlushallHandsTheKeyspaceOver) {
  testing::AppDriver<Kv> db;
  for (int i = 0; i < 50; i++) db.run({"SET", "k" + std::to_string(i), std::to_string(i)});
  db.run({"PEXPIRE", "k3", "100000"});
  const std::string expected = save_of(db.host.state());
  auto p = db.host.begin_save();
  std::string out;
  Encoder e(&out);
  EXPECT_FALSE(p->next(e, SliceBudget{10, SIZE_MAX}));
  db.run({"SET", "k7", "changed"});
  db.run({"DEL", "k9"});
  EXPECT_EQ(db.run({"FLUSHALL"}), testing::kOk);
  EXPECT_EQ(db.host.state().saving, nullptr) << "after FLUSHALL nothing live is in the snapshot";
  for (int i = 0; i < 50; i++) db.run({"SET", "k" + std::to_string(i), "new"});
  while (!p->next(e, SliceBudget{10, SIZE_MAX})) {
  }
  EXPECT_EQ(out, expected);
  p.reset();
  for (int i = 0; i < 100; i++) db.run({"SET", "x", "y"});  // the graveyard frees what was kept
}

// A big hash, set or list (over kSaveWholeElementsMax) is kept and written element by element: a
// first write ahead of the cursor keeps its header and the element it changes, not the
// whole container; next() writes it over many calls of a small byte budget, none over the
// budget by more than one element; the bytes are save()'s at the start.
TEST(KvSave, BigContainersGoElementByElement) {
  for (const char* type : {"hash", "set", "list"}) {
    SCOPED_TRACE(type);
    const bool hash = std::string(type) == "hash", list = std::string(type) == "list";
    testing::AppDriver<Kv> db;
    constexpr int kElements = 5000;
    static_assert(kElements > kSaveWholeElementsMax);
    for (int i = 0; i < kElements; i++) {
      const std::string m = "member:" + std::to_string(i);
      if (hash) db.run({"HSET", "big", m, "value:" + std::to_string(i)});
      else if (list) db.run({"RPUSH", "big", m});
      else db.run({"SADD", "big", m});
    }
    db.run({"SET", "small", "x"});
    const std::string expected = save_of(db.host.state());
    auto p = db.host.begin_save();
    auto* c = static_cast<SaveCursor*>(p.get());
    if (hash) db.run({"HSET", "big", "member:7", "changed", "new", "field"});
    else if (list) db.run({"LSET", "big", "7", "changed"}), db.run({"RPOP", "big"}), db.run({"LPUSH", "big", "new"});
    else db.run({"SADD", "big", "new"}), db.run({"SREM", "big", "member:7"});
    EXPECT_EQ(c->side_entries(), 1u);
    EXPECT_LT(c->side_bytes(), 2 * kSideEntryOverheadBytes + 4 * kSideElementOverheadBytes)
        << "the header and two elements kept, not " << kElements << " elements";
    EXPECT_EQ(c->containers_sliced(), 1u);
    std::string out;
    Encoder e(&out);
    constexpr size_t kBudget = 1000;
    constexpr size_t kElementMax = 40;  // "member:4999" and "value:4999" with their lengths
    size_t calls = 0;
    for (bool done = false; !done; calls++) {
      const size_t before = out.size();
      done = p->next(e, SliceBudget{SIZE_MAX, kBudget});
      EXPECT_LE(out.size() - before, kBudget + kElementMax) << "call " << calls;
      // Between calls, writes on both sides of the inner cursor.
      const std::string m = "member:" + std::to_string((calls * 37) % kElements);
      if (hash) db.run({"HSET", "big", m, "again"}), db.run({"HDEL", "big", "member:" + std::to_string(calls)});
      else if (list) db.run({"LSET", "big", std::to_string((calls * 37) % 4000), "again"}), db.run({"LPOP", "big"}),
                     db.run({"RPOP", "big"}), db.run({"LPUSH", "big", m});
      else db.run({"SREM", "big", m}), db.run({"SADD", "big", "x" + std::to_string(calls)});
    }
    EXPECT_GT(calls, expected.size() / (kBudget + kElementMax)) << "written over many calls";
    EXPECT_TRUE(out == expected) << difference(out, expected);
  }
}

// RENAME (and RENAMENX) of a big hash, set, sorted set or list being written element by element
// (ahead of the cursor, or the cursor inside it) encodes nothing: the producer follows it
// under its new name (side_bytes stays that of a header and a few elements), through more
// renames, writes of its elements under each name, a rename back to its own name, and a
// delete or replace at the end; the bytes are save()'s at the start. Planted bug seen
// failing: HMDB_PLANTED_BUG_SAVE_RENAME_NOT_FOLLOWED (writes under the new name keep
// nothing).
TEST(KvSave, ARenamedBigContainerIsFollowedNotEncoded) {
  for (const char* type : {"hash", "set", "zset", "list"}) {
    for (int variant = 0; variant < 4; variant++) {
      SCOPED_TRACE(std::string(type) + " variant " + std::to_string(variant));
      const std::string t = type;
      testing::AppDriver<Kv> db, twin;
      auto both = [&](const std::vector<std::string>& c) {
        std::vector<std::string_view> w(c.begin(), c.end());
        const std::string a = db.run(w), b = twin.run(w);
        ASSERT_EQ(a, b) << c[0];
      };
      constexpr int kElements = 3000;
      static_assert(kElements > kSaveWholeElementsMax);
      for (int i = 0; i < kElements; i++) {
        const std::string m = "m" + std::to_string(i);
        if (t == "hash") both({"HSET", "big", m, "v" + std::to_string(i)});
        else if (t == "set") both({"SADD", "big", m});
        else if (t == "list") both({"RPUSH", "big", m});
        else both({"ZADD", "big", std::to_string(i % 97), m});
      }
      for (int i = 0; i < 30; i++) both({"SET", "k" + std::to_string(i), "x"});
      both({"SET", "dst", "old"});  // a destination with a value of its own at I
      const std::string expected = save_of(db.host.state());
      auto p = db.host.begin_save();
      auto* c = static_cast<SaveCursor*>(p.get());
      std::string out;
      Encoder e(&out);
      // Odd variants: the cursor inside the container first (its header written).
      if (variant % 2 == 1) {
        while (c->containers_sliced() == 0) ASSERT_FALSE(p->next(e, SliceBudget{SIZE_MAX, 300}));
      }
      size_t w = 0;
      auto change = [&](const std::string& key) {  // elements spread over the order
        for (int i = 0; i < 6; i++, w++) {
          const std::string m = "m" + std::to_string((w * 7919) % kElements);
          if (t == "hash") both({"HSET", key, m, "changed"}), both({"HDEL", key, "m" + std::to_string(w % kElements)});
          else if (t == "set") both({"SREM", key, m}), both({"SADD", key, "new" + std::to_string(w)});
          else if (t == "list") both({"LPOP", key}), both({"RPUSH", key, "new" + std::to_string(w)}), both({"LSET", key, "-3000", "set"});
          else both({"ZADD", key, "1000", m}), both({"ZREM", key, "m" + std::to_string(w % kElements)});
        }
      };
      change("big");
      both({"RENAME", "big", "dst"});
      EXPECT_LT(c->side_bytes(), 4096u) << "the RENAME encoded the container";
      change("dst");
      ASSERT_FALSE(p->next(e, SliceBudget{SIZE_MAX, 300}));
      change("dst");
      both({"RENAMENX", "dst", "third"});
      change("third");
      ASSERT_FALSE(p->next(e, SliceBudget{SIZE_MAX, 300}));
      if (variant >= 2) {
        both({"RENAME", "third", "big"});  // back under its own name
        change("big");
      }
      both({"SET", "big", "x"});  // a new value under its own name: not in the snapshot
      bool done = false;
      for (int calls = 0; !done; calls++) {
        done = p->next(e, SliceBudget{SIZE_MAX, 300});
        if (calls == 5) change("third");
        if (calls == 10) both({variant % 2 ? "DEL" : "SET", "third", "gone"});  // its value moves to the snapshot
      }
      EXPECT_TRUE(c->failure().empty()) << c->failure();
      EXPECT_TRUE(out == expected) << difference(out, expected);
      EXPECT_EQ(save_of(db.host.state()), save_of(twin.host.state()));
    }
  }
}

// INFO's side map lines count what the producer keeps, and go back to 0.
TEST(KvSave, InfoCountsTheSideMap) {
  testing::AppDriver<Kv> db;
  for (int i = 0; i < 20; i++) db.run({"SET", "k" + std::to_string(i), std::string(100, 'v')});
  EXPECT_NE(Kv::info(db.host.state()).find("save_side_keys:0\r\nsave_side_bytes:0\r\n"), std::string::npos);
  auto p = db.host.begin_save();
  db.run({"SET", "k1", "x"});
  db.run({"SET", "new", "x"});
  auto* c = static_cast<SaveCursor*>(p.get());
  EXPECT_EQ(c->side_entries(), 2u);
  EXPECT_GE(c->side_bytes(), 100u + 2 * kSideEntryOverheadBytes);
  EXPECT_NE(Kv::info(db.host.state()).find("save_side_keys:2\r\n"), std::string::npos);
  db.run({"DEL", "k2"});
  EXPECT_EQ(c->side_held(), 1u) << "a delete moves the value, no encoding";
  p.reset();
  EXPECT_NE(Kv::info(db.host.state()).find("save_side_keys:0\r\n"), std::string::npos);
}

// A change that skipped its hook (a bug of kv.cc) leaves the state not as the producer keeps
// it: next() must then neither read a value as the type it had at I (std::bad_variant_access
// thrown on the event loop) or a key that is gone, nor write bytes whose counts do not add up
// (a file load would misread). The seam: the test changes the State behind the hooks' back.
// next() must give the snapshot up (throw SaveFailed, what() naming the key and why, which the
// engine catches), unhook itself, and leave the next snapshot able to run (save()'s bytes).
// Both where the cursor is before the big hash (kept by a hooked write first) and inside it
// (its elements being written). Planted bug seen failing: HMDB_PLANTED_BUG_SAVE_NO_STATE_CHECK
// (the checks off: next() throws std::bad_variant_access, or reads a key that is gone).
TEST(KvSave, AStateNotAsTheHooksKeepItGivesTheSnapshotUp) {
  enum class Break { kReplaced, kDeleted, kElementsAdded, kKeysCreated };
  for (Break b : {Break::kReplaced, Break::kDeleted, Break::kElementsAdded, Break::kKeysCreated}) {
    for (bool inside : {false, true}) {
      if (b == Break::kKeysCreated && inside) continue;  // created keys may be behind the cursor: no harm
      SCOPED_TRACE("break " + std::to_string(static_cast<int>(b)) + (inside ? " inside" : " before"));
      testing::AppDriver<Kv> db;
      constexpr int kElements = 2000;
      static_assert(kElements > kSaveWholeElementsMax);
      for (int i = 0; i < kElements; i++) db.run({"HSET", "big", "member:" + std::to_string(i), "v" + std::to_string(i)});
      for (int i = 0; i < 20; i++) db.run({"SET", "k" + std::to_string(i), "x"});
      auto p = db.host.begin_save();
      auto* c = static_cast<SaveCursor*>(p.get());
      std::string out;
      Encoder e(&out);
      if (inside) {
        // Small slices until the cursor is inside the big hash (its header written).
        while (c->containers_sliced() == 0) ASSERT_FALSE(p->next(e, SliceBudget{SIZE_MAX, 200}));
      } else {
        db.run({"HSET", "big", "member:1", "changed"});  // kept: its header and one field
        ASSERT_EQ(c->containers_sliced(), 1u);
      }
      State& s = db.host.state();
      auto it = s.keys.find(std::string_view("big"));
      ASSERT_NE(it, s.keys.end());
      switch (b) {
        case Break::kReplaced: it->second.emplace<String>(); break;
        case Break::kDeleted: s.keys.erase(it); break;
        case Break::kElementsAdded:
          // Enough that some land ahead of the inner position (a few % of the hash is behind).
          for (int i = 0; i < 50; i++) std::get<Hash>(it->second).set("added:" + std::to_string(i), "v");
          break;
        case Break::kKeysCreated:
          for (int i = 0; i < 5; i++) s.keys.insert_or_assign("created:" + std::to_string(i), Value());
          break;
      }
      std::string why;
      bool done = false;
      try {
        for (int calls = 0; !done && calls < 100000; calls++) done = p->next(e, SliceBudget{SIZE_MAX, 200});
      } catch (const SaveFailed& f) {
        why = f.what();
      }
      EXPECT_FALSE(done) << "next() wrote it all as if nothing were wrong";
      EXPECT_FALSE(why.empty()) << "the snapshot was not given up";
      EXPECT_EQ(why, c->failure());
      if (b != Break::kKeysCreated) {
        EXPECT_NE(why.find("'big'"), std::string::npos) << why;
      }
      std::printf("failure(): %s\n", why.c_str());
      EXPECT_EQ(s.saving, nullptr) << "unhooked";
      EXPECT_THROW(p->next(e, SliceBudget{}), SaveFailed) << "and stays given up";
      // The node goes on: writes, then a new snapshot of the state as it is.
      db.run({"SET", "after", "1"});
      db.run({"HSET", "big2", "f", "v"});
      p.reset();
      const std::string expected = save_of(s);
      p = db.host.begin_save();
      ASSERT_NE(p, nullptr);
      EXPECT_TRUE(drain(*p, [] { return SliceBudget{3, SIZE_MAX}; }, [] {}) == expected);
    }
  }
}

}  // namespace
}  // namespace hmdb::kv
