// hmdb/app.h — how to write an application: state, commands, queries, snapshots.
//
// An application is a struct with:
//
//   struct Ledger {
//     static constexpr std::string_view kName = "ledger";
//     static constexpr uint32_t kSchemaVersion = 1;
//     struct State { ... plain structs and containers ... };
//     static void define(hmdb::Commands<State>& c);          // registers commands/queries
//     static void save(const State& s, hmdb::Encoder& out);   // snapshot encoding
//     static bool load(State& s, hmdb::Decoder& in, uint32_t version);  // and back
//     // optional:
//     static uint64_t digest(const State& s);                 // default: hash of save()
//     static std::string info(const State& s);                // lines for INFO
//     static std::optional<std::vector<std::string>> housekeeping(const State&, uint64_t now_ms);
//     static void prefetch(const State&, Args argv);          // cache hint, see StateMachine
//     static std::optional<uint64_t> expiry_ms(const State&, std::string_view key);  // WATCH
//   };
//   int main(int argc, char** argv) { return hmdb::run<Ledger>(argc, argv); }  // hmdb/server.h
//
// A write command is a pair of functions:
//   parse(Args argv, Typed& out, std::string& error) -> bool
//       turns the client's strings into typed arguments; false + error rejects the command
//       before it is logged. Must be pure (no state access): it runs before proposing and
//       again when the logged entry is applied.
//   apply(State&, const Typed&, const ApplyContext&, Reply&)
//       changes the state deterministically and writes one reply.
// A query is one function run(const State&, Args, const QueryContext&, Reply&).
//
// A write also says which of its words are the keys it may change (KeySpec, as Redis'
// COMMAND: first, last, step; default: the word after the name). WATCH relies on it: a
// transaction fails if a key it watched was changed since, and the engine learns of each
// change from the key spec when the write is batched. A write that changes keys it does not
// name (a housekeeping sweep, a flush) says KeySpec::reports_more and reports them from
// apply() through ApplyContext::key_changed / all_keys_changed. Naming a key the command
// then leaves alone is harmless: a transaction watching it fails and is retried.
//
// Arity follows Redis: n > 0 means exactly n words including the name; n < 0 means at
// least -n words. The engine checks it before calling parse.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "hmdb/codec.h"
#include "hmdb/reply.h"
#include "hmdb/state_machine.h"
#include "hmdb/text.h"

#ifndef XXH_STATIC_LINKING_ONLY
#define XXH_STATIC_LINKING_ONLY  // HashSink keeps an XXH3_state_t by value
#endif
#include <xxhash.h>

namespace hmdb {

namespace detail {
// Case-insensitive lookup without allocating: names are at most kMaxNameBytes long.
constexpr size_t kMaxCommandNameBytes = 64;
// FNV-1a (32-bit) for the command table: short names, one pass.
constexpr uint32_t kFnvOffset = 2166136261u;
constexpr uint32_t kFnvPrime = 16777619u;

class HashSink final : public Sink {
 public:
  HashSink() { XXH3_64bits_reset(&state_); }
  void write(std::string_view b) override { XXH3_64bits_update(&state_, b.data(), b.size()); }
  uint64_t digest() { return XXH3_64bits_digest(&state_); }
 private:
  XXH3_state_t state_;
};

// Case-insensitive name -> position lookup for command tables (the app's Commands, the
// shell's own commands): one pass over the name (ASCII upper case + FNV-1a) and a probe of
// an open-addressing table kept at a load of at most 1/4, so a miss (an unknown command)
// ends after a probe or two. Measured: a std::unordered_map here was 7 % of a GET's CPU.
class NameIndex {
 public:
  static constexpr size_t kNotFound = SIZE_MAX;
  // names: upper case, at most kMaxCommandNameBytes, distinct; position i is names[i].
  void rebuild(const std::vector<std::string_view>& names) {
    size_t size = 16;
    while (size < names.size() * 4) size *= 2;
    slots_.assign(size, kEmptySlot);
    for (size_t i = 0; i < names.size(); i++) {
      uint32_t h = kFnvOffset;
      for (char c : names[i]) h = (h ^ static_cast<unsigned char>(c)) * kFnvPrime;
      size_t j = h & (size - 1);
      while (slots_[j] != kEmptySlot) j = (j + 1) & (size - 1);
      slots_[j] = static_cast<uint32_t>(i);
    }
  }
  // name_at(i) gives the upper-case name at position i.
  template <class NameAt>
  size_t find(std::string_view name, NameAt&& name_at) const {
    if (name.size() > kMaxCommandNameBytes || slots_.empty()) return kNotFound;
    char buf[kMaxCommandNameBytes];
    uint32_t h = kFnvOffset;
    for (size_t i = 0; i < name.size(); i++) {
      const char c = ascii_upper(name[i]);  // no libc call per byte
      buf[i] = c;
      h = (h ^ static_cast<unsigned char>(c)) * kFnvPrime;
    }
    const std::string_view upper(buf, name.size());
    const size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == kEmptySlot) return kNotFound;
      if (name_at(slot) == upper) return slot;
    }
  }

 private:
  static constexpr uint32_t kEmptySlot = UINT32_MAX;
  std::vector<uint32_t> slots_;  // positions, kEmptySlot where free
};

template <class T, class = void>
struct has_digest : std::false_type {};
template <class T>
struct has_digest<T, std::void_t<decltype(T::digest(std::declval<const typename T::State&>()))>> : std::true_type {};
template <class T, class = void>
struct has_info : std::false_type {};
template <class T>
struct has_info<T, std::void_t<decltype(T::info(std::declval<const typename T::State&>()))>> : std::true_type {};
template <class T, class = void>
struct has_prefetch : std::false_type {};
template <class T>
struct has_prefetch<T, std::void_t<decltype(T::prefetch(std::declval<const typename T::State&>(), std::declval<Args>()))>>
    : std::true_type {};
template <class T, class = void>
struct has_expiry : std::false_type {};
template <class T>
struct has_expiry<T, std::void_t<decltype(T::expiry_ms(std::declval<const typename T::State&>(), std::string_view{}))>>
    : std::true_type {};
template <class T, class = void>
struct has_housekeeping : std::false_type {};
template <class T>
struct has_housekeeping<T, std::void_t<decltype(T::housekeeping(std::declval<const typename T::State&>(), uint64_t{}))>>
    : std::true_type {};
}  // namespace detail

template <class State>
class Commands {
 public:
  struct Entry {
    std::string name;  // upper case
    CommandKind kind;
    int arity;
    KeySpec keys;  // writes only
    std::function<bool(Args, std::string&)> validate;                         // writes only
    std::function<void(State&, Args, const ApplyContext&, Reply&)> apply;     // writes only
    std::function<void(const State&, Args, const QueryContext&, Reply&)> query;  // queries only
  };

  template <class Typed>
  void write(std::string_view name, int arity, bool (*parse)(Args, Typed&, std::string&),
             void (*apply)(State&, const Typed&, const ApplyContext&, Reply&), KeySpec keys = KeySpec{}) {
    Entry e;
    e.name = uppercase(name);
    e.kind = CommandKind::kWrite;
    e.arity = arity;
    e.keys = keys;
    e.validate = [parse](Args argv, std::string& err) {
      Typed t{};
      return parse(argv, t, err);
    };
    e.apply = [parse, apply](State& s, Args argv, const ApplyContext& ctx, Reply& r) {
      Typed t{};
      std::string err;
      if (!parse(argv, t, err)) { r.error(err); return; }
      apply(s, t, ctx, r);
    };
    add(std::move(e));
  }

  void query(std::string_view name, int arity, void (*run)(const State&, Args, const QueryContext&, Reply&)) {
    Entry e;
    e.name = uppercase(name);
    e.kind = CommandKind::kQuery;
    e.arity = arity;
    e.query = run;
    add(std::move(e));
  }

  // Called for every command (twice for most: kind, then validate/query/apply): one probe
  // of a small open-addressing table (detail::NameIndex), not a std::unordered_map.
  const Entry* find(std::string_view name) const {
    const size_t i = index_.find(name, [this](size_t k) -> std::string_view { return entries_[k].name; });
    return i == detail::NameIndex::kNotFound ? nullptr : &entries_[i];
  }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  void add(Entry e) {
    if (e.name.size() > detail::kMaxCommandNameBytes || find(e.name))
      throw std::logic_error("hmdb: bad or duplicate command name: " + e.name);
    entries_.push_back(std::move(e));
    std::vector<std::string_view> names;
    for (const Entry& x : entries_) names.push_back(x.name);
    index_.rebuild(names);
  }
  std::vector<Entry> entries_;
  detail::NameIndex index_;
};

// ---- Argument helpers for parse() functions (Redis-compatible rules) --------------------
// Every app needs these, and getting them subtly different from Redis confuses clients.

// parse_int64, parse_uint64, iequals, uppercase, lowercase: hmdb/text.h (included above).

inline bool arity_ok(int arity, size_t argc) {
  return arity >= 0 ? argc == static_cast<size_t>(arity) : argc >= static_cast<size_t>(-arity);
}
inline std::string wrong_arity(std::string_view name) {
  return "ERR wrong number of arguments for '" + lowercase(name) + "' command";
}

// Implements the engine's StateMachine for an application definition App.
template <class App>
class AppHost final : public StateMachine {
 public:
  using State = typename App::State;

  AppHost() { App::define(commands_); }

  std::string_view app_name() const override { return App::kName; }
  uint32_t schema_version() const override { return App::kSchemaVersion; }

  CommandKind kind(std::string_view name) const override {
    const auto* e = commands_.find(name);
    return e ? e->kind : CommandKind::kUnknown;
  }

  std::vector<CommandDescription> describe_commands() const override {
    std::vector<CommandDescription> out;
    out.reserve(commands_.entries().size());
    for (const auto& e : commands_.entries()) out.push_back({e.name, e.kind, e.arity});
    return out;
  }

  bool validate(Args argv, std::string* error, KeySpec* keys = nullptr) const override {
    const auto* e = argv.empty() ? nullptr : commands_.find(argv[0]);
    if (!e || e->kind != CommandKind::kWrite) {
      *error = "ERR unknown command";
      return false;
    }
    if (!arity_ok(e->arity, argv.size())) { *error = wrong_arity(argv[0]); return false; }
    if (keys) *keys = e->keys;
    return e->validate(argv, *error);
  }

  int arity(std::string_view name) const override {
    const auto* e = commands_.find(name);
    return e ? e->arity : 0;
  }

  std::optional<uint64_t> expiry_ms(std::string_view key) const override {
    if constexpr (detail::has_expiry<App>::value) return App::expiry_ms(state_, key);
    return std::nullopt;
  }

  void apply(Args argv, const ApplyContext& ctx, Reply& reply) override {
    const auto* e = argv.empty() ? nullptr : commands_.find(argv[0]);
    if (!e || e->kind != CommandKind::kWrite) { reply.error("ERR unknown command"); return; }
    if (!arity_ok(e->arity, argv.size())) { reply.error(wrong_arity(argv[0])); return; }
    e->apply(state_, argv, ctx, reply);
  }

  void query(Args argv, const QueryContext& ctx, Reply& reply) const override {
    const auto* e = argv.empty() ? nullptr : commands_.find(argv[0]);
    if (!e || e->kind != CommandKind::kQuery) { reply.error("ERR unknown command"); return; }
    if (!arity_ok(e->arity, argv.size())) { reply.error(wrong_arity(argv[0])); return; }
    e->query(state_, argv, ctx, reply);
  }

  void prefetch(Args argv) const override {
    if constexpr (detail::has_prefetch<App>::value) App::prefetch(state_, argv);
  }

  std::optional<std::vector<std::string>> housekeeping(uint64_t now_ms) const override {
    if constexpr (detail::has_housekeeping<App>::value) return App::housekeeping(state_, now_ms);
    return std::nullopt;
  }

  void save(Encoder& out) const override { App::save(state_, out); }
  // The decoder holds the app's part of a snapshot and nothing after it: a load that leaves
  // bytes unread read a different layout than save() wrote, so it fails here, for every
  // app, rather than each app remembering to check.
  bool load(Decoder& in, uint32_t version) override {
    state_ = State{};
    if (version > App::kSchemaVersion || !App::load(state_, in, version) || !in.expect_end()) {
      state_ = State{};
      return false;
    }
    return true;
  }
  void clear() override { state_ = State{}; }

  uint64_t digest() const override {
    if constexpr (detail::has_digest<App>::value) {
      return App::digest(state_);
    } else {
      detail::HashSink sink;
      Encoder enc(&sink);
      App::save(state_, enc);
      enc.finish();
      return sink.digest();
    }
  }

  std::string info() const override {
    if constexpr (detail::has_info<App>::value) return App::info(state_);
    return {};
  }

  // For tests of an app: direct access to the state.
  State& state() { return state_; }
  const Commands<State>& commands() const { return commands_; }

 private:
  Commands<State> commands_;
  State state_;
};

}  // namespace hmdb
