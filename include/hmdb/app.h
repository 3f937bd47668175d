// hmdb/app.h — how to write an application: state, commands, queries, snapshots.
//
// An application is a struct with:
//
//   struct Ledger {
//     static constexpr std::string_view kName = "ledger";
//     static constexpr uint32_t kSchemaVersion = 1;         // the newest version it defines
//     struct State { ... plain structs and containers ... };
//     static void define(hmdb::Commands<State>& c);          // registers commands/queries
//     static void save(const State& s, hmdb::Encoder& out);   // snapshot encoding
//     static bool load(State& s, hmdb::Decoder& in, uint32_t version);  // and back, any version read
//     // optional:
//     static constexpr uint32_t kOldestSchemaVersion = 1;    // the oldest it still reads (default 1)
//     static bool save_as(const State&, uint32_t version, Encoder&);  // an older version's layout
//     static std::unique_ptr<hmdb::SaveProducer> begin_save(State& s);  // save() in slices, no fork
//     static std::optional<uint64_t> digest_as(const State&, uint32_t version);  // an older one's digest
//     static uint64_t digest(const State& s);                 // default: hash of save()
//     static void records(const State&, hmdb::RecordSink& out);  // each record, named and hashed
//     static bool records_as(const State&, uint32_t version, hmdb::RecordSink& out);  // an older one's
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
// Each may be any stateless callable: a function, a lambda without captures (no `+[]`), a
// function object without data members; Typed is read off parse's second parameter (name
// it, c.write<Typed>(...), where parse is a generic lambda). A lambda with captures is
// refused: what a command keeps outside State is neither replicated nor in snapshots.
//
// A write also says which of its words are the keys it may change (KeySpec, as Redis'
// COMMAND: first, last, step; default: the word after the name). WATCH relies on it: a
// transaction fails if a key it watched was changed since, and the engine learns of each
// change from the key spec when the write is batched. A write that changes keys it does not
// name (a housekeeping sweep, a flush) says KeySpec::reports_more and reports them from
// apply() through ApplyContext::key_changed / all_keys_changed. Naming a key the command
// then leaves alone is harmless: a transaction watching it fails and is retried.
//
// Arity counts words, the name included: a range {min, max}, or as Redis writes it, n > 0
// exactly n and n < 0 at least -n (Arity). The engine checks it before calling parse.
//
// Versions. A logged command keeps the meaning of the schema version it was logged under.
// An app at version N defines its commands as version N has them, and for each version v
// up to N says in define() what changed from v-1 to v (c.version(v), VersionChanges below):
// which commands were added, renamed or removed, and for each changed one whether an
// older entry is upcast to the new form or applied by the old rule. The engine builds one
// command table per version it reads and applies an entry with its version's table; the
// cluster's active version (StateMachine::active_schema_version) is the one clients' writes
// are validated and logged under. docs/app-tutorial.md, "Versions", walks through it.
//
// What is checked, and how it fails:
//   compiling AppHost<App>   every member above: a required one missing or declared with
//                            another signature, or an optional hook declared with another
//                            signature than the one shown (say, a non-const info(State&)),
//                            fails the compile with a static_assert giving the expected
//                            declaration (AppDefinition below). A misspelled hook name is a
//                            helper of the app's as far as the compiler can tell.
//   compiling define()       each write's parse and apply, each query's run (and each
//                            upcast, old handler, removed form): a callable that is not
//                            stateless or not callable as shown above fails where it is
//                            registered, the message giving the expected signature.
//   hosting AppHost<App>     (its constructor, so the server's startup and an app's first
//                            test) the names and arities define() registered: a name the
//                            engine answers first (hmdb/reserved_names.h: PING, CLUSTER,
//                            MULTI, HMDB.*, ...), a name given twice, an empty arity range,
//                            a version history that does not hold together throw
//                            std::logic_error naming the app, the command and why; the
//                            server prints it and exits 1.
//   running a command        the test driver (hmdb/testing.h) checks that every reply is
//                            exactly one complete RESP value in the client's protocol
//                            (hmdb/reply.h: reply_problem), and throws std::logic_error
//                            naming the command; AppHost makes the same check, and throws
//                            the same way, in builds with HMDB_CHECK_REPLIES=1 (Debug).
//   loading a snapshot       App::load leaving any byte of the app's part unread fails the
//                            load as a malformed snapshot would (the state is left empty);
//                            Decoder::count<Item...>() sizes counts from the item's types.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "hmdb/codec.h"
#include "hmdb/reply.h"
#include "hmdb/reserved_names.h"
#include "hmdb/state_machine.h"
#include "hmdb/text.h"

// HMDB_CHECK_REPLIES=1: AppHost checks that every command and query wrote exactly one
// complete RESP value (hmdb/reply.h, reply_problem) and throws std::logic_error naming the
// command if not. A compile-time switch, so that a release build pays nothing: on in Debug
// builds (CMake: the hmdb::app target and the engine's own build) or with
// -DHMDB_CHECK_REPLIES=ON; the test driver (hmdb/testing.h) checks every reply in any build.
#ifndef HMDB_CHECK_REPLIES
#define HMDB_CHECK_REPLIES 0
#endif

#ifndef XXH_STATIC_LINKING_ONLY
#define XXH_STATIC_LINKING_ONLY  // HashSink keeps an XXH3_state_t by value
#endif
#include <xxhash.h>

namespace hmdb {

// How many words a command takes, its name included: from min to max. Written as Redis
// writes it, n (exactly n) or -n (at least n), or as a range {min, max}: {2, 3} for a key
// and an optional count. The engine checks it before parse, so parse never checks a count
// of words again; a command registered with a range that is empty or starts below 1 is
// refused (std::logic_error) when the app is hosted.
struct Arity {
  static constexpr int kUnbounded = INT32_MAX;
  int min = 1;
  int max = 1;  // kUnbounded: no upper bound

  constexpr Arity(int redis) : min(redis >= 0 ? redis : -redis), max(redis >= 0 ? redis : kUnbounded) {}
  constexpr Arity(int min_words, int max_words) : min(min_words), max(max_words) {}

  constexpr bool allows(size_t words) const {
    return words >= static_cast<size_t>(min) && words <= static_cast<size_t>(max);
  }
  constexpr bool valid() const { return min >= 1 && max >= min; }
  // As Redis' COMMAND reports it (n, or -min when more than min words are allowed): what
  // clients see, and what a transaction checks when it queues the command, as Redis does.
  constexpr int redis() const { return min == max ? min : -min; }
  std::string to_string() const {
    if (min == max) return std::to_string(min);
    if (max == kUnbounded) return std::to_string(min) + " or more";
    return std::to_string(min) + ".." + std::to_string(max);
  }
};

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
struct has_oldest_schema_version : std::false_type {};
template <class T>
struct has_oldest_schema_version<T, std::void_t<decltype(T::kOldestSchemaVersion)>> : std::true_type {};
// The oldest schema version an app reads: its kOldestSchemaVersion, else 1.
template <class App>
constexpr uint32_t oldest_schema_version() {
  if constexpr (has_oldest_schema_version<App>::value) return App::kOldestSchemaVersion;
  return kFirstSchemaVersion;
}

// ---- What an app definition must declare, checked when AppHost<App> is compiled ---------
// A member named NAME of T, of any kind (static or not, overloaded or not, a function or a
// constant), is found by making the name ambiguous between T and a base that surely has it:
// a hook spelled right but declared wrong is then reported instead of ignored.
#define HMDB_DETAIL_MEMBER_DETECTOR(NAME)                                                  \
  struct Probe_##NAME {                                                                   \
    int NAME;                                                                             \
  };                                                                                      \
  template <class T>                                                                      \
  struct Both_##NAME : T, Probe_##NAME {};                                                \
  template <class T>                                                                      \
  constexpr bool declares_##NAME() {                                                      \
    if constexpr (!std::is_class_v<T>) return false;                                      \
    else if constexpr (std::is_final_v<T>) return requires { &T::NAME; };                 \
    else return !requires { &Both_##NAME<T>::NAME; };                                     \
  }                                                                                       \
  /* The member NAME of T is a static function of type Fn (or is noexcept). */            \
  template <class T, class Fn>                                                            \
  constexpr bool NAME##_is() {                                                            \
    return requires { static_cast<Fn*>(&T::NAME); };                                      \
  }
HMDB_DETAIL_MEMBER_DETECTOR(define)
HMDB_DETAIL_MEMBER_DETECTOR(save)
HMDB_DETAIL_MEMBER_DETECTOR(load)
HMDB_DETAIL_MEMBER_DETECTOR(digest)
HMDB_DETAIL_MEMBER_DETECTOR(info)
HMDB_DETAIL_MEMBER_DETECTOR(housekeeping)
HMDB_DETAIL_MEMBER_DETECTOR(prefetch)
HMDB_DETAIL_MEMBER_DETECTOR(expiry_ms)
HMDB_DETAIL_MEMBER_DETECTOR(save_as)
HMDB_DETAIL_MEMBER_DETECTOR(begin_save)
HMDB_DETAIL_MEMBER_DETECTOR(digest_as)
HMDB_DETAIL_MEMBER_DETECTOR(records)
HMDB_DETAIL_MEMBER_DETECTOR(records_as)
#undef HMDB_DETAIL_MEMBER_DETECTOR

struct MissingState {};  // stands in for a missing App::State, so that only the check fails
template <class App>
struct StateOf {
  using type = MissingState;
};
template <class App>
  requires requires { typename App::State; }
struct StateOf<App> {
  using type = typename App::State;
};

// A distinct address per type: says what a parse makes, so that an upcast is checked to
// produce exactly what the next version's command takes.
template <class T>
const void* type_tag() {
  static const char tag = 0;
  return &tag;
}

// One meaning of a command name, in one or more schema versions (Commands<State>::Entry).
template <class State>
struct CommandEntry {
  std::string name;  // upper case
  CommandKind kind = CommandKind::kUnknown;
  Arity arity{0, 0};
  // The words that name keys: for a write, the keys WATCH learns it changes and ACL key
  // patterns check for write access; for a query, those ACL patterns check for read access.
  KeySpec keys;
  // ACL categories (hmdb/acl.h): @write for a write, @read for a query, and what define()
  // added (.categories("@string @fast")), parsed when the tables are built.
  acl::Categories categories = 0;
  std::string categories_text;
  bool engine_only = false;  // only the engine logs it (housekeeping): clients are refused it
  std::function<bool(Args, std::string&)> validate;  // writes only
  // Writes only: parse then apply; false (the parse's error in the string) if parse refuses.
  std::function<bool(State&, Args, const ApplyContext&, Reply&, std::string&)> apply;
  std::function<void(const State&, Args, const QueryContext&, Reply&)> query;  // queries only
  // Writes only: what parse makes (type_tag), and apply from it: the version before's
  // upcast hands its result here.
  const void* parsed_type = nullptr;
  std::function<void(State&, const void*, const ApplyContext&, Reply&)> apply_parsed;
  // Writes only: parse into the Typed (parsed_type) at `out`, for the forms below.
  std::function<bool(Args, void*, std::string&)> parse_to;
  // Writes only, optional (Commands::Options::unchanged_reply): parse, then the app's
  // reply when the write would change nothing, or false (StateMachine::unchanged_reply).
  std::function<bool(const State&, Args, const QueryContext&, Reply&)> unchanged;
  // unchanged_reply() was called for it: build() checks that `unchanged` is set (a write
  // whose parse makes what the form takes) and that it does not block.
  bool unchanged_asked = false;
};

// ---- Callables for parse, apply, run and upcasts -------------------------------------------
// Any stateless callable: a function (or a pointer to one), a lambda without captures (no
// `+[]` needed), a function object without data members. Not a lambda with captures or a
// function object with members: what a command kept outside State would be neither
// replicated nor in snapshots, and a capture of a reference outlives what it points at.

// A function or a class without data members.
template <class F>
inline constexpr bool kStateless =
    (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) || (std::is_class_v<F> && std::is_empty_v<F>);

// The parameters of a callable that has exactly one signature: a function pointer, or a class
// with one non-template operator() (a lambda whose parameters are not auto).
template <class F, class = void>
struct Signature {
  static constexpr bool kKnown = false;
  using Params = std::tuple<>;
};
template <class R, class... A>
struct Signature<R (*)(A...)> {
  static constexpr bool kKnown = true;
  using Params = std::tuple<A...>;
};
template <class R, class... A>
struct Signature<R (*)(A...) noexcept> : Signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...)> : Signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...) const> : Signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...) noexcept> : Signature<R (*)(A...)> {};
template <class C, class R, class... A>
struct Signature<R (C::*)(A...) const noexcept> : Signature<R (*)(A...)> {};
template <class F>
struct Signature<F, std::void_t<decltype(&F::operator())>> : Signature<decltype(&F::operator())> {};

// Commands::write<Typed>'s default: Typed is what parse fills in, its second parameter.
struct DeduceTyped {};
template <class Params>
struct SecondParam {
  using type = DeduceTyped;
  static constexpr bool kOut = false;
};
template <class A, class B, class... Rest>
struct SecondParam<std::tuple<A, B, Rest...>> {
  using type = std::remove_cvref_t<B>;
  static constexpr bool kOut = std::is_lvalue_reference_v<B> && !std::is_const_v<std::remove_reference_t<B>>;
};
template <class Typed, class Parse>
struct TypedOf {
  using type = Typed;
};
template <class Parse>
struct TypedOf<DeduceTyped, Parse> {
  using type = typename SecondParam<typename Signature<Parse>::Params>::type;
};

// Check what a write (or an older version's form of one) is given; each mistake fails the
// compile where the app registers the command, with the declaration expected.
template <class Typed, class Parse>
constexpr bool check_parse() {
  static_assert(kStateless<Parse>,
                "hmdb command: parse must be stateless: a function, a lambda without captures or a function object "
                "without data members (what a command keeps outside State is neither replicated nor in snapshots)");
  static_assert(!std::is_same_v<Typed, DeduceTyped>,
                "hmdb command: cannot tell what parse fills in (a generic lambda, or an overloaded operator()?): "
                "name it, c.write<Typed>(...)");
  if constexpr (!std::is_same_v<Typed, DeduceTyped>) {
    constexpr bool callable = std::is_invocable_r_v<bool, const Parse&, Args, Typed&, std::string&> &&
                              (!Signature<Parse>::kKnown || SecondParam<typename Signature<Parse>::Params>::kOut);
    static_assert(callable,
                  "hmdb command: parse must be callable as `bool parse(hmdb::Args argv, Typed& out, std::string& "
                  "error)` (it fills in out)");
    static_assert(std::is_default_constructible_v<Typed>,
                  "hmdb command: what parse fills in must be default-constructible");
    return kStateless<Parse> && callable && std::is_default_constructible_v<Typed>;
  }
  return false;
}
template <class State, class Typed, class Apply>
constexpr bool check_apply() {
  static_assert(kStateless<Apply>,
                "hmdb command: apply must be stateless: a function, a lambda without captures or a function object "
                "without data members (what a command keeps outside State is neither replicated nor in snapshots)");
  constexpr bool callable = std::is_invocable_v<const Apply&, State&, const Typed&, const ApplyContext&, Reply&>;
  static_assert(callable,
                "hmdb command: apply must be callable as `void apply(State& s, const Typed& args, const "
                "hmdb::ApplyContext& ctx, hmdb::Reply& r)`");
  return kStateless<Apply> && callable;
}
template <class Old, class ToNew>
constexpr bool check_upcast() {
  static_assert(kStateless<ToNew>,
                "hmdb upcast: to_new must be stateless: a function, a lambda without captures or a function object "
                "without data members");
  constexpr bool callable = std::is_invocable_v<const ToNew&, const Old&>;
  static_assert(callable, "hmdb upcast: to_new must be callable as `New to_new(const Old& old)`");
  return kStateless<ToNew> && callable;
}

// A write's reply when it changes nothing (Commands::Options::unchanged_reply).
template <class State, class Typed, class Fn>
constexpr bool check_unchanged() {
  static_assert(kStateless<Fn>,
                "hmdb command: unchanged_reply's function must be stateless: a function, a lambda without captures or "
                "a function object without data members");
  static_assert(!std::is_same_v<Typed, DeduceTyped>,
                "hmdb command: cannot tell what unchanged_reply's function takes (a generic lambda?): name it, "
                ".unchanged_reply<Typed>(...)");
  if constexpr (!std::is_same_v<Typed, DeduceTyped>) {
    constexpr bool callable =
        std::is_invocable_r_v<bool, const Fn&, const State&, const Typed&, const QueryContext&, Reply&>;
    static_assert(callable,
                  "hmdb command: unchanged_reply's function must be callable as `bool fn(const State& s, const Typed& "
                  "args, const hmdb::QueryContext& ctx, hmdb::Reply& r)` (const State: it changes nothing)");
    return kStateless<Fn> && callable;
  }
  return false;
}

template <class State, class Run>
constexpr bool check_query() {
  static_assert(kStateless<Run>,
                "hmdb query: run must be stateless: a function, a lambda without captures or a function object "
                "without data members");
  static_assert(std::is_invocable_v<const Run&, const State&, Args, const QueryContext&, Reply&>,
                "hmdb query: run must be callable as `void run(const State& s, hmdb::Args argv, const "
                "hmdb::QueryContext& ctx, hmdb::Reply& r)` (const State: a query does not change the state)");
  return kStateless<Run> && std::is_invocable_v<const Run&, const State&, Args, const QueryContext&, Reply&>;
}

template <class State, class Typed, class Parse, class Apply>
CommandEntry<State> make_write(std::string_view name, Arity arity, KeySpec keys, Parse parse, Apply apply) {
  CommandEntry<State> e;
  e.name = uppercase(name);
  e.kind = CommandKind::kWrite;
  e.arity = arity;
  e.keys = keys;
  e.validate = [parse](Args argv, std::string& err) {
    Typed t{};
    return parse(argv, t, err);
  };
  e.apply = [parse, apply](State& s, Args argv, const ApplyContext& ctx, Reply& r, std::string& err) {
    Typed t{};
    if (!parse(argv, t, err)) return false;
    apply(s, t, ctx, r);
    return true;
  };
  e.parsed_type = type_tag<Typed>();
  e.apply_parsed = [apply](State& s, const void* parsed, const ApplyContext& ctx, Reply& r) {
    apply(s, *static_cast<const Typed*>(parsed), ctx, r);
  };
  e.parse_to = [parse](Args argv, void* out, std::string& err) { return parse(argv, *static_cast<Typed*>(out), err); };
  return e;
}
}  // namespace detail

template <class State>
class Commands;

// What changed in one schema version of an app, as seen by an entry logged under the
// version before it (docs/app-tutorial.md, "Versions"). Obtained from Commands::version(N);
// every call names one command and returns the same object, so a version's changes read
// as one statement:
//
//   c.version(2)
//       .renamed("ACCOUNT.CREATE", "ACCOUNT.OPEN")
//       .upcast("TRANSFER", -5, &v1::parse_transfer, &transfer_from_v1)
//       .added("ACCOUNT.LIMIT");
//
// A command the version does not name is unchanged: a version-(N-1) entry of it is applied
// exactly as a version-N one. Mistakes (a name that does not exist where it must, or exists
// where it must not; a command named twice; an upcast whose result is not what the command
// parses into) throw std::logic_error when the app is hosted: at startup and in its first test.
template <class State>
class VersionChanges {
 public:
  // `name` is new in this version: no entry of an older version holds it, and clients may
  // send it only once the cluster's active version is this one or newer.
  VersionChanges& added(std::string_view name) {
    Change ch;
    ch.what = Change::kAdded;
    ch.name = uppercase(name);
    return push(std::move(ch));
  }
  // `old_name` is called `new_name` from this version on: an older entry naming old_name
  // is applied as new_name (its words after the name mean what new_name's do).
  VersionChanges& renamed(std::string_view old_name, std::string_view new_name) {
    Change ch;
    ch.what = Change::kRenamed;
    ch.name = uppercase(old_name);
    ch.new_name = uppercase(new_name);
    return push(std::move(ch));
  }
  // `name`'s words changed in this version, not what it does: an older entry is read by
  // old_parse (the version before's parse) and converted by `to_new` into what this
  // version's parse makes, then applied as this version applies it. Chains: a command
  // changed in versions 2 and 3 has an upcast in each, and a version-1 entry goes 1 -> 2 -> 3.
  template <class OldArg = detail::DeduceTyped, class Parse, class ToNew>
  VersionChanges& upcast(std::string_view name, Arity arity, Parse old_parse, ToNew to_new, KeySpec keys = KeySpec{}) {
    using Old = typename detail::TypedOf<OldArg, Parse>::type;
    if constexpr (detail::check_parse<Old, Parse>() && detail::check_upcast<Old, ToNew>()) {
      using New = std::remove_cvref_t<std::invoke_result_t<const ToNew&, const Old&>>;
      Change ch;
      ch.what = Change::kUpcast;
      ch.name = uppercase(name);
      ch.produces = detail::type_tag<New>();
      auto next = ch.next;  // filled when the tables are built: name's form in this version
      ch.form = make_form<Old>(name, arity, keys, old_parse,
                               [to_new, next](State& s, const Old& old, const ApplyContext& ctx, Reply& r) {
                                 const New converted = to_new(old);
                                 (*next)->apply_parsed(s, &converted, ctx, r);
                               });
      push(std::move(ch));
    }
    return *this;
  }
  // `name`'s rule changed in this version: an older entry is read by old_parse and applied
  // by old_apply, the rule as it was (written against today's State).
  template <class OldArg = detail::DeduceTyped, class Parse, class Apply>
  VersionChanges& old_handler(std::string_view name, Arity arity, Parse old_parse, Apply old_apply,
                              KeySpec keys = KeySpec{}) {
    return old_form<OldArg>(Change::kOldHandler, name, arity, old_parse, old_apply, keys);
  }
  // `name` no longer exists from this version on: an older entry is read by old_parse and
  // applied by old_apply (against today's State).
  template <class OldArg = detail::DeduceTyped, class Parse, class Apply>
  VersionChanges& removed(std::string_view name, Arity arity, Parse old_parse, Apply old_apply, KeySpec keys = KeySpec{}) {
    return old_form<OldArg>(Change::kRemoved, name, arity, old_parse, old_apply, keys);
  }

 private:
  friend class Commands<State>;
  using Entry = detail::CommandEntry<State>;
  struct Change {
    enum What : uint8_t { kAdded, kRenamed, kUpcast, kOldHandler, kRemoved } what = kAdded;
    std::string name;      // upper case; kRenamed: the old name
    std::string new_name;  // kRenamed
    const void* produces = nullptr;  // kUpcast: detail::type_tag of what it converts into
    std::shared_ptr<const Entry*> next = std::make_shared<const Entry*>(nullptr);  // kUpcast
    Entry form;  // kUpcast, kOldHandler, kRemoved: how the version before reads the command
  };

  template <class Old, class Parse, class ApplyOld>
  static Entry make_form(std::string_view name, Arity arity, KeySpec keys, Parse old_parse, ApplyOld apply_old) {
    return detail::make_write<State, Old>(name, arity, keys, old_parse, std::move(apply_old));
  }
  template <class OldArg, class Parse, class Apply>
  VersionChanges& old_form(typename Change::What what, std::string_view name, Arity arity, Parse old_parse,
                           Apply old_apply, KeySpec keys) {
    using Old = typename detail::TypedOf<OldArg, Parse>::type;
    if constexpr (detail::check_parse<Old, Parse>() && detail::check_apply<State, Old, Apply>()) {
      Change ch;
      ch.what = what;
      ch.name = uppercase(name);
      ch.form = make_form<Old>(name, arity, keys, old_parse, old_apply);
      push(std::move(ch));
    }
    return *this;
  }
  VersionChanges& push(Change ch) {
    changes_.push_back(std::move(ch));
    return *this;
  }
  std::vector<Change> changes_;
};

template <class State>
class Commands {
 public:
  using Entry = detail::CommandEntry<State>;

  // What define() may add to a command it just defined, chained:
  //   c.write("SET", -3, &parse_set, &apply_set).categories("@string @slow");
  //   c.query("MGET", -2, &query_mget).keys(KeySpec::all_after_name());
  class Options {
   public:
    explicit Options(Entry* e) : e_(e) {}
    // More ACL categories (hmdb/acl.h) than the kind's own (@write or @read), as Redis'
    // names with '@', separated by spaces: "@string @fast". An unknown one fails the build
    // of the tables (the app's first test).
    Options& categories(std::string_view text) {
      if (e_) e_->categories_text += " " + std::string(text);
      return *this;
    }
    // A query's key words (a write's are write()'s KeySpec argument): what ACL key patterns
    // check. By default the first word after the name, as for a write.
    Options& keys(KeySpec spec) {
      if (e_) e_->keys = spec;
      return *this;
    }
    // A blocking write (KeySpec::timeout): word `timeout_word` (negative from the end) is its
    // timeout; it waits on its key words when its apply answers a null.
    Options& blocking(int timeout_word) {
      if (e_) e_->keys.timeout = timeout_word;
      return *this;
    }
    // Only the engine sends it (the app's housekeeping command): a client is refused it,
    // whatever its user may do.
    Options& engine_only() {
      if (e_) e_->engine_only = true;
      return *this;
    }
    // A write's reply when it would change nothing (docs/app-tutorial.md, "Writes that change
    // nothing"): `bool fn(const State& s, const Typed& args, const hmdb::QueryContext& ctx,
    // hmdb::Reply& r)`, Typed what the write's parse fills in. It returns true having written
    // exactly the reply apply would write, when apply, on s at leader time ctx.now_ms, would
    // change nothing at all (the state, events, keys reported); otherwise (and whenever in
    // doubt) false, having written nothing. The engine may then answer the write without
    // logging it; the test driver (hmdb/testing.h) applies it anyway and checks the promise.
    // Not for a query or a blocking write: hosting the app fails.
    template <class Typed = detail::DeduceTyped, class Fn>
    Options& unchanged_reply(Fn fn) {
      using T = typename detail::TypedOf<Typed, Fn>::type;
      if constexpr (detail::check_unchanged<State, T, Fn>()) {
        if (!e_) return *this;
        e_->unchanged_asked = true;
        if (e_->kind != CommandKind::kWrite || e_->parsed_type != detail::type_tag<T>()) return *this;  // build() says why
        e_->unchanged = [fn, parse = e_->parse_to](const State& s, Args argv, const QueryContext& ctx, Reply& r) {
          T args{};
          std::string error;
          return parse(argv, &args, error) && fn(s, static_cast<const T&>(args), ctx, r);
        };
      }
      return *this;
    }

   private:
    Entry* e_;
  };

  // The commands one schema version defines, looked up by name.
  class Table {
   public:
    // One probe of a small open-addressing table (detail::NameIndex), not a map: called for
    // every command, three times for a write (classify, validate, apply). The last name
    // found is remembered as it was sent (case and all, up to kLastNameBytes): a pipeline
    // mostly repeats one command, and comparing its bytes is a third of the hash and probe
    // (callgrind at pipeline 32: ~40 instructions less per lookup; a name that alternates
    // with another pays ~10 more).
    const Entry* find(std::string_view name) const {
      if (name.size() == last_size_ && same_bytes(name.data(), last_name_, name.size())) [[likely]] return last_;
      return find_and_remember(name);
    }
    // In definition order.
    const std::vector<const Entry*>& entries() const { return entries_; }
    // Some write has a reply for when it changes nothing (Options::unchanged_reply).
    bool has_unchanged() const { return has_unchanged_; }

    explicit Table(std::vector<const Entry*> entries) : entries_(std::move(entries)) {
      std::vector<std::string_view> names;
      for (const Entry* e : entries_) {
        names.push_back(e->name);
        has_unchanged_ |= e->kind == CommandKind::kWrite && static_cast<bool>(e->unchanged);
      }
      index_.rebuild(names);
    }

   private:
    // find() past the remembered name, out of line so that the remembered one's compare is
    // inlined where find() is called.
    __attribute__((noinline)) const Entry* find_and_remember(std::string_view name) const {
      const size_t n = name.size();
      const size_t i = index_.find(name, [this](size_t k) -> std::string_view { return entries_[k]->name; });
      if (i == detail::NameIndex::kNotFound) return nullptr;
      if (n <= kLastNameBytes) {
        for (size_t k = 0; k < n; k++) last_name_[k] = name[k];
        last_size_ = n;
        last_ = entries_[i];
      }
      return entries_[i];
    }

    // Longest name find() remembers (Redis' command names are at most 20 bytes or so).
    static constexpr size_t kLastNameBytes = 24;

    // a[0..n) == b[0..n), for n <= kLastNameBytes, in word compares: two overlapping 4-byte
    // loads for 4-8 bytes (INCR, HSET, LPUSH), 8-byte ones above, and below 4 the first,
    // middle and last bytes (all of them), without a loop. The byte loop it replaces, out of
    // line, cost ~50 instructions per lookup of a 4-letter name at pipeline 32 (callgrind),
    // three lookups per write.
    static bool same_bytes(const char* a, const char* b, size_t n) {
      if (n >= 8) {
        uint64_t x, y;
        for (size_t k = 0; k + 8 < n; k += 8) {
          std::memcpy(&x, a + k, 8);
          std::memcpy(&y, b + k, 8);
          if (x != y) return false;
        }
        std::memcpy(&x, a + n - 8, 8);
        std::memcpy(&y, b + n - 8, 8);
        return x == y;
      }
      if (n >= 4) {
        uint32_t x0, y0, x1, y1;
        std::memcpy(&x0, a, 4);
        std::memcpy(&y0, b, 4);
        std::memcpy(&x1, a + n - 4, 4);
        std::memcpy(&y1, b + n - 4, 4);
        return ((x0 ^ y0) | (x1 ^ y1)) == 0;
      }
      if (n == 0) return true;
      return ((a[0] ^ b[0]) | (a[n / 2] ^ b[n / 2]) | (a[n - 1] ^ b[n - 1])) == 0;
    }
    std::vector<const Entry*> entries_;
    detail::NameIndex index_;
    bool has_unchanged_ = false;
    // find()'s last hit (a cache: the loop thread's, like every use of the app).
    mutable char last_name_[kLastNameBytes] = {};
    mutable size_t last_size_ = SIZE_MAX;  // none yet
    mutable const Entry* last_ = nullptr;
  };

  // A write of the newest version: parse, then apply (hmdb/app.h's header comment). Typed,
  // what parse fills in, is parse's second parameter; name it (write<Typed>) where parse is
  // a generic lambda.
  template <class Typed = detail::DeduceTyped, class Parse, class Apply>
  Options write(std::string_view name, Arity arity, Parse parse, Apply apply, KeySpec keys = KeySpec{}) {
    using T = typename detail::TypedOf<Typed, Parse>::type;
    if constexpr (detail::check_parse<T, Parse>() && detail::check_apply<State, T, Apply>())
      return Options(add(detail::make_write<State, T>(name, arity, keys, parse, apply)));
    return Options(nullptr);
  }

  template <class Run>
  Options query(std::string_view name, Arity arity, Run run) {
    if constexpr (detail::check_query<State, Run>()) {
      Entry e;
      e.name = uppercase(name);
      e.kind = CommandKind::kQuery;
      e.arity = arity;
      e.query = run;
      return Options(add(std::move(e)));
    }
    return Options(nullptr);
  }

  // What changed in schema version `v` (VersionChanges above). An app at version N says
  // this for every version from its oldest + 1 to N, if only `c.version(v);` (no command
  // changed): hosting it fails otherwise, so a version cannot be bumped without saying
  // what happened to the commands logged under the one before.
  VersionChanges<State>& version(uint32_t v) {
    if (built()) throw std::logic_error("hmdb: Commands::version() after define()");
    return versions_[v];
  }

  // Builds the table of every version from `oldest` to `newest` (AppHost does, after
  // define()). Throws std::logic_error naming the mistake if the history does not hold
  // together.
  void build(std::string_view app, uint32_t oldest, uint32_t newest) {
    auto fail = [&](const std::string& what) { throw std::logic_error("hmdb: app " + std::string(app) + ": " + what); };
    if (built()) fail("the command tables are built once");
    auto check_arity = [&](const Entry& e, const std::string& where) {
      if (!e.arity.valid())
        fail("command " + e.name + where + ": arity {" + std::to_string(e.arity.min) + ", " + std::to_string(e.arity.max) +
             "} allows no command: it counts words with the name, from 1 (n: exactly n, -n: at least n, {min, max})");
    };
    // Names: in definition order, so the first mistake is the one reported.
    for (size_t i = 0; i < defined_.size(); i++) {
      const Entry& e = defined_[i];
      if (e.name.empty() || e.name.size() > detail::kMaxCommandNameBytes)
        fail("command name '" + e.name + "' is not 1 to " + std::to_string(detail::kMaxCommandNameBytes) + " bytes");
      if (const std::string why = reserved_command_reason(e.name); !why.empty())
        fail("command " + e.name + " is reserved: " + why + " (hmdb/reserved_names.h)");
      for (size_t j = 0; j < i; j++)
        if (defined_[j].name == e.name) fail("command " + e.name + " is registered twice");
      check_arity(e, "");
      if (e.unchanged_asked) {
        if (e.kind != CommandKind::kWrite)
          fail("command " + e.name + " is a query: unchanged_reply is a write's (a query changes nothing anyway)");
        if (!e.unchanged)
          fail("command " + e.name + ": unchanged_reply's function takes another type than " + e.name +
               "'s parse fills in");
        if (e.keys.timeout != 0)
          fail("command " + e.name + " blocks: it has no unchanged_reply (finding nothing, it waits)");
      }
    }
    for (Entry& e : defined_) {
      std::string bad;
      acl::Categories added = 0;
      if (!acl::parse_categories(e.categories_text, &added, &bad))
        fail("command " + e.name + ": '" + bad + "' is not an ACL category (hmdb/acl.h: Redis' @read, @write, @string, ...)");
      e.categories = added | acl::bit(e.kind == CommandKind::kWrite ? acl::kWrite : acl::kRead);
    }
    for (const auto& [v, changes] : versions_)
      for (const auto& ch : changes.changes_)
        if (ch.form.kind == CommandKind::kWrite) check_arity(ch.form, " (its form before c.version(" + std::to_string(v) + "))");
    if (oldest < kFirstSchemaVersion || oldest > newest)
      fail("schema versions " + std::to_string(oldest) + ".." + std::to_string(newest) + " are not a range from 1");
    for (const auto& [v, changes] : versions_)
      if (v <= oldest || v > newest)
        fail("c.version(" + std::to_string(v) + ") describes a version this app does not read (it reads " +
             std::to_string(oldest) + ".." + std::to_string(newest) + "; c.version(v) says what changed from v-1 to v)");
    for (uint32_t v = oldest + 1; v <= newest; v++)
      if (versions_.find(v) == versions_.end())
        fail("the app is at schema version " + std::to_string(newest) + " but define() says nothing of version " +
             std::to_string(v) + ": list what changed in it with c.version(" + std::to_string(v) +
             ") (just `c.version(" + std::to_string(v) + ");` if no command did)");
    oldest_ = oldest;
    std::vector<const Entry*> current;
    for (const Entry& e : defined_) current.push_back(&e);
    tables_.resize(newest - oldest + 1);
    tables_[newest - oldest].emplace(current);
    for (uint32_t v = newest; v > oldest; v--) {
      const std::string at = "c.version(" + std::to_string(v) + ")";
      auto find_in = [](const std::vector<const Entry*>& es, std::string_view name) -> const Entry* {
        for (const Entry* e : es)
          if (e->name == name) return e;
        return nullptr;
      };
      auto write_at_v = [&](const std::string& name, const char* change) -> const Entry* {
        const Entry* e = find_in(current, name);
        if (!e) fail(at + "." + change + "(\"" + name + "\"): no command " + name + " at version " + std::to_string(v));
        if (e->kind != CommandKind::kWrite)
          fail(at + "." + change + "(\"" + name + "\"): " + name +
               " is a query; queries are not logged, so they have no versions (every version has this binary's)");
        return e;
      };
      auto replace = [](std::vector<const Entry*>& es, std::string_view name, const Entry* by) {
        for (const Entry*& e : es)
          if (e->name == name) { e = by; return; }
        es.push_back(by);
      };
      std::vector<const Entry*> before = current;  // version v-1's commands
      std::vector<std::string> named;
      for (auto& ch : versions_[v].changes_) {
        for (const std::string& n : {ch.name, ch.new_name}) {
          if (n.empty()) continue;
          if (std::find(named.begin(), named.end(), n) != named.end()) fail(at + " names " + n + " twice");
          named.push_back(n);
        }
        using Change = typename VersionChanges<State>::Change;
        switch (ch.what) {
          case Change::kAdded:
            write_at_v(ch.name, "added");
            before.erase(std::find(before.begin(), before.end(), find_in(before, ch.name)));
            break;
          case Change::kRenamed: {
            const Entry* now = write_at_v(ch.new_name, "renamed");
            if (find_in(current, ch.name))
              fail(at + ".renamed(\"" + ch.name + "\", ...): " + ch.name + " is still a command at version " +
                   std::to_string(v));
            Entry old = *now;
            old.name = ch.name;
            owned_.push_back(std::move(old));
            replace(before, ch.new_name, &owned_.back());
            break;
          }
          case Change::kUpcast:
          case Change::kOldHandler: {
            const Entry* now = write_at_v(ch.name, ch.what == Change::kUpcast ? "upcast" : "old_handler");
            if (ch.what == Change::kUpcast && ch.produces != now->parsed_type)
              fail(at + ".upcast(\"" + ch.name + "\", ...): the upcast's result is not the type " + ch.name +
                   "'s parse makes at version " + std::to_string(v));
            *ch.next = now;
            owned_.push_back(std::move(ch.form));
            replace(before, ch.name, &owned_.back());
            break;
          }
          case Change::kRemoved: {
            const Entry* now = find_in(current, ch.name);
            if (now && now->kind == CommandKind::kWrite)
              fail(at + ".removed(\"" + ch.name + "\", ...): " + ch.name + " is still a write at version " +
                   std::to_string(v) + " (a changed rule is old_handler)");
            owned_.push_back(std::move(ch.form));
            replace(before, ch.name, &owned_.back());
            break;
          }
        }
      }
      current = std::move(before);
      tables_[v - 1 - oldest].emplace(current);
    }
  }

  bool built() const { return !tables_.empty(); }
  // True if no version's table names a reserved command (hmdb/reserved_names.h). build()
  // refuses one among the defined commands; this covers the forms older versions keep too.
  bool names_exclude_reserved() const {
    for (const auto& t : tables_)
      for (const Entry* e : t->entries())
        if (!reserved_command_reason(e->name).empty()) return false;
    return true;
  }
  // The commands of schema version v; nullptr for a version the app does not read.
  // REQUIRES: built().
  const Table* table(uint32_t v) const {
    const uint32_t i = v - oldest_;  // below oldest_: wraps to a large number
    return i < tables_.size() ? &*tables_[i] : nullptr;
  }
  // At the newest version.
  const Entry* find(std::string_view name) const { return tables_.back()->find(name); }
  const std::vector<const Entry*>& entries() const { return tables_.back()->entries(); }

 private:
  friend class VersionChanges<State>;

  // Names and arities are checked by build(), where the app's name is known.
  Entry* add(Entry e) {
    if (built()) throw std::logic_error("hmdb: a command defined after define(): " + e.name);
    defined_.push_back(std::move(e));
    return &defined_.back();
  }

  std::deque<Entry> defined_;  // the newest version's, in definition order (stable addresses)
  std::deque<Entry> owned_;    // older versions' forms
  std::map<uint32_t, VersionChanges<State>> versions_;
  uint32_t oldest_ = kFirstSchemaVersion;
  std::vector<std::optional<Table>> tables_;  // [v - oldest_]
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

// Checks an app definition where AppHost<App> is compiled: a required member missing or
// declared with another signature, or an optional hook declared with another signature
// than the engine calls, fails the compile with a message that gives the expected
// declaration (an optional hook would otherwise be silently ignored). A hook whose name is
// misspelled cannot be told from a helper of the app's: check the list below.
template <class App>
struct AppDefinition {
  using State = typename detail::StateOf<App>::type;

  // Required.
  static constexpr bool kHasState = !std::is_same_v<State, detail::MissingState>;
  static_assert(kHasState, "hmdb app: missing its state: `struct State { ... };` or `using State = ...;` inside the app struct");
  static_assert(!kHasState || (std::is_default_constructible_v<State> && std::is_move_assignable_v<State>),
                "hmdb app: State must be default-constructible and move-assignable (the engine resets it with State{})");
  static_assert(requires { requires std::string_view(App::kName).size() > 0; },
                "hmdb app: missing `static constexpr std::string_view kName = \"...\";` (the app's name: INFO, snapshots)");
  static_assert(requires { requires std::is_integral_v<decltype(App::kSchemaVersion)> && App::kSchemaVersion >= 1 &&
                                       App::kSchemaVersion <= UINT32_MAX; },
                "hmdb app: missing `static constexpr uint32_t kSchemaVersion = 1;` (1 or more: the version of "
                "the state's encoding and of the commands' meaning)");
  static_assert(!requires { App::kOldestSchemaVersion; } ||
                    requires { requires std::is_integral_v<decltype(App::kOldestSchemaVersion)> &&
                                            App::kOldestSchemaVersion >= 1 &&
                                            App::kOldestSchemaVersion <= App::kSchemaVersion; },
                "hmdb app: the optional `static constexpr uint32_t kOldestSchemaVersion` must be a constant from 1 to "
                "kSchemaVersion (the oldest version whose log entries and snapshots this binary still reads)");
  using DefineFn = void(Commands<State>&);
  static constexpr bool kDefine = detail::define_is<App, DefineFn>();
  static_assert(kDefine, "hmdb app: expected `static void define(hmdb::Commands<State>& c);` (registers the commands)");
  using SaveFn = void(const State&, Encoder&);
  static constexpr bool kSave = detail::save_is<App, SaveFn>();
  static_assert(kSave, "hmdb app: expected `static void save(const State& s, hmdb::Encoder& out);` (the snapshot encoding)");
  using LoadFn = bool(State&, Decoder&, uint32_t);
  static constexpr bool kLoad = detail::load_is<App, LoadFn>();
  static_assert(kLoad,
                "hmdb app: expected `static bool load(State& s, hmdb::Decoder& in, uint32_t version);` (reads save()'s encoding)");

  // Optional: absent, or declared exactly so.
  using DigestFn = uint64_t(const State&);
  static constexpr bool kDigest = detail::declares_digest<App>() && detail::digest_is<App, DigestFn>();
  static_assert(!detail::declares_digest<App>() || kDigest,
                "hmdb app: the optional hook digest must be `static uint64_t digest(const State& s);`");
  using InfoFn = std::string(const State&);
  static constexpr bool kInfo = detail::declares_info<App>() && detail::info_is<App, InfoFn>();
  static_assert(!detail::declares_info<App>() || kInfo,
                "hmdb app: the optional hook info must be `static std::string info(const State& s);` (const: INFO "
                "must not change the state)");
  using HousekeepingFn = std::optional<std::vector<std::string>>(const State&, uint64_t);
  static constexpr bool kHousekeeping = detail::declares_housekeeping<App>() && detail::housekeeping_is<App, HousekeepingFn>();
  static_assert(!detail::declares_housekeeping<App>() || kHousekeeping,
                "hmdb app: the optional hook housekeeping must be `static std::optional<std::vector<std::string>> "
                "housekeeping(const State& s, uint64_t now_ms);`");
  using PrefetchFn = void(const State&, Args);
  static constexpr bool kPrefetch = detail::declares_prefetch<App>() && detail::prefetch_is<App, PrefetchFn>();
  static_assert(!detail::declares_prefetch<App>() || kPrefetch,
                "hmdb app: the optional hook prefetch must be `static void prefetch(const State& s, hmdb::Args argv);`");
  using ExpiryFn = std::optional<uint64_t>(const State&, std::string_view);
  static constexpr bool kExpiry = detail::declares_expiry_ms<App>() && detail::expiry_ms_is<App, ExpiryFn>();
  static_assert(!detail::declares_expiry_ms<App>() || kExpiry,
                "hmdb app: the optional hook expiry_ms must be `static std::optional<uint64_t> expiry_ms(const State& "
                "s, std::string_view key);`");

  using SaveAsFn = bool(const State&, uint32_t, Encoder&);
  static constexpr bool kSaveAs = detail::declares_save_as<App>() && detail::save_as_is<App, SaveAsFn>();
  static_assert(!detail::declares_save_as<App>() || kSaveAs,
                "hmdb app: the optional hook save_as must be `static bool save_as(const State& s, uint32_t version, "
                "hmdb::Encoder& out);` (the state in an older version's snapshot layout; false if it cannot be)");

  using BeginSaveFn = std::unique_ptr<SaveProducer>(State&);
  static constexpr bool kBeginSave = detail::declares_begin_save<App>() && detail::begin_save_is<App, BeginSaveFn>();
  static_assert(!detail::declares_begin_save<App>() || kBeginSave,
                "hmdb app: the optional hook begin_save must be `static std::unique_ptr<hmdb::SaveProducer> "
                "begin_save(State& s);` (save() of the state in slices: hmdb/state_machine.h, SaveProducer)");

  using DigestAsFn = std::optional<uint64_t>(const State&, uint32_t);
  static constexpr bool kDigestAs = detail::declares_digest_as<App>() && detail::digest_as_is<App, DigestAsFn>();
  static_assert(!detail::declares_digest_as<App>() || kDigestAs,
                "hmdb app: the optional hook digest_as must be `static std::optional<uint64_t> digest_as(const State& "
                "s, uint32_t version);` (the digest an older version's binary computes; nothing if it cannot be)");

  // Where two nodes' states differ (StateMachine::records; docs/app-tutorial.md, "Naming
  // the records that differ"): every record, named by its key, with a hash of it; and, for an
  // app that compares with older versions' nodes, the records as an older binary lists them.
  using RecordsFn = void(const State&, RecordSink&);
  static constexpr bool kRecords = detail::declares_records<App>() && detail::records_is<App, RecordsFn>();
  static_assert(!detail::declares_records<App>() || kRecords,
                "hmdb app: the optional hook records must be `static void records(const State& s, hmdb::RecordSink& "
                "out);` (each record: out.record(key, hash))");
  using RecordsAsFn = bool(const State&, uint32_t, RecordSink&);
  static constexpr bool kRecordsAs = detail::declares_records_as<App>() && detail::records_as_is<App, RecordsAsFn>();
  static_assert(!detail::declares_records_as<App>() || kRecordsAs,
                "hmdb app: the optional hook records_as must be `static bool records_as(const State& s, uint32_t "
                "version, hmdb::RecordSink& out);` (the records an older version's binary lists; false if it cannot)");

  static constexpr bool kRequiredOk = kHasState && kDefine && kSave && kLoad;
};

// Implements the engine's StateMachine for an application definition App.
template <class App>
class AppHost final : public StateMachine {
  using Definition = AppDefinition<App>;  // checks App (its static_asserts fire here)

 public:
  using State = typename Definition::State;

  AppHost() {
    if constexpr (Definition::kDefine) static_cast<typename Definition::DefineFn*>(&App::define)(commands_);
    commands_.build(App::kName, detail::oldest_schema_version<App>(), App::kSchemaVersion);
    newest_ = commands_.table(App::kSchemaVersion);
    client_ = commands_.table(active_schema_version());
    reads_active_schema_version_ = reads_schema_version(active_schema_version());
    has_unchanged_replies_ = client_ && client_->has_unchanged();
    names_exclude_reserved_ = commands_.names_exclude_reserved();
  }

  std::string_view app_name() const override { return App::kName; }
  uint32_t schema_version() const override { return App::kSchemaVersion; }
  uint32_t oldest_schema_version() const override { return detail::oldest_schema_version<App>(); }

  void set_active_schema_version(uint32_t v) override {
    StateMachine::set_active_schema_version(v);
    client_ = commands_.table(v);
    has_unchanged_replies_ = client_ && client_->has_unchanged();
  }

  CommandKind kind(std::string_view name) const override {
    const auto& table = client_table();
    const auto* e = table.find(name);
    // A command of a newer version than the active one is a write (validate says why not).
    if (!e && &table != newest_) [[unlikely]] e = newest_->find(name);
    return e ? e->kind : CommandKind::kUnknown;
  }

  std::vector<CommandDescription> describe_commands() const override {
    std::vector<CommandDescription> out;
    out.reserve(client_table().entries().size());
    for (const auto* e : client_table().entries()) {
      const acl::Categories c = e->categories ? e->categories : acl::bit(e->kind == CommandKind::kWrite ? acl::kWrite : acl::kRead);
      out.push_back({e->name, e->kind, e->arity.redis(), c});
    }
    return out;
  }

  CommandAcl command_acl(std::string_view name) const override {
    const auto* e = client_ ? client_->find(name) : nullptr;
    if (!e) return StateMachine::command_acl(name);  // a newer version's: kind() says write
    CommandAcl a;
    a.kind = e->kind;
    a.categories = e->categories ? e->categories : acl::bit(e->kind == CommandKind::kWrite ? acl::kWrite : acl::kRead);
    a.keys = e->keys;
    a.engine_only = e->engine_only;
    a.arity = e->arity.redis();
    return a;
  }

  bool validate(Args argv, std::string* error, KeySpec* keys = nullptr) const override {
    return validate_as(argv, error, keys, /*client=*/true);
  }
  bool validate_housekeeping(Args argv, std::string* error, KeySpec* keys) const override {
    return validate_as(argv, error, keys, /*client=*/false);
  }
  bool validate_as(Args argv, std::string* error, KeySpec* keys, bool client) const {
    const auto* table = client_;
    const auto* e = argv.empty() || !table ? nullptr : table->find(argv[0]);
    if (!e || e->kind != CommandKind::kWrite) [[unlikely]] {
      *error = refusal(argv, table);
      return false;
    }
    if (e->engine_only && client) [[unlikely]] {
      *error = "ERR " + e->name + " is the engine's own command: no client may send it";
      return false;
    }
    if (!e->arity.allows(argv.size())) { *error = wrong_arity(argv[0]); return false; }
    if (keys) *keys = e->keys;
    return e->validate(argv, *error);
  }

  int arity(std::string_view name) const override {
    const auto* e = client_table().find(name);
    return e ? e->arity.redis() : 0;
  }

  std::optional<uint64_t> expiry_ms(std::string_view key) const override {
    if constexpr (Definition::kExpiry) return static_cast<typename Definition::ExpiryFn*>(&App::expiry_ms)(state_, key);
    return std::nullopt;
  }

  bool apply(Args argv, const ApplyContext& ctx, Reply& reply, std::string* why) override {
    const auto* table = ctx.schema_version == App::kSchemaVersion ? newest_ : commands_.table(ctx.schema_version);
    const auto* e = argv.empty() || !table ? nullptr : table->find(argv[0]);
    if (!e || e->kind != CommandKind::kWrite || !e->arity.allows(argv.size())) [[unlikely]] {
      const std::string v = std::to_string(ctx.schema_version);
      if (!table)
        *why = "this binary reads schema versions " + std::to_string(oldest_schema_version()) + ".." +
               std::to_string(App::kSchemaVersion);
      else if (!e || e->kind != CommandKind::kWrite)
        *why = "schema version " + v + " has no write of that name";
      else
        *why = std::to_string(argv.size()) + " words, but its arity at schema version " + v + " is " +
               e->arity.to_string();
      return false;
    }
#if HMDB_CHECK_REPLIES
    const size_t before = reply.size();
    const bool applied = e->apply(state_, argv, ctx, reply, *why);
    if (applied && (!ctx.producer || !*ctx.producer)) check_reply(*e, reply, before);  // a sliced write replies at finish()
    return applied;
#else
    return e->apply(state_, argv, ctx, reply, *why);
#endif
  }

  void query(Args argv, const QueryContext& ctx, Reply& reply) const override {
    const auto* e = argv.empty() ? nullptr : client_table().find(argv[0]);
    if (!e || e->kind != CommandKind::kQuery) { reply.error("ERR unknown command"); return; }
    if (!e->arity.allows(argv.size())) { reply.error(wrong_arity(argv[0])); return; }
#if HMDB_CHECK_REPLIES
    const size_t before = reply.size();
    e->query(state_, argv, ctx, reply);
    if (!ctx.producer || !*ctx.producer) check_reply(*e, reply, before);  // a sliced reply is not complete yet
#else
    e->query(state_, argv, ctx, reply);
#endif
  }

  // The active version's table: the one a client's write would be logged and applied under.
  bool unchanged_reply(Args argv, const QueryContext& ctx, Reply& reply) const override {
    const auto* e = argv.empty() || !client_ ? nullptr : client_->find(argv[0]);
    if (!e || !e->unchanged || e->engine_only || !e->arity.allows(argv.size())) return false;
#if HMDB_CHECK_REPLIES
    const size_t before = reply.size();
    const bool unchanged = e->unchanged(state_, argv, ctx, reply);
    if (unchanged) check_reply(*e, reply, before);
    else if (reply.size() != before)
      throw std::logic_error("hmdb: app " + std::string(App::kName) + ": command " + e->name +
                             "'s unchanged_reply wrote a reply and returned false");
    return unchanged;
#else
    return e->unchanged(state_, argv, ctx, reply);
#endif
  }

  void prefetch(Args argv) const override {
    if constexpr (Definition::kPrefetch) static_cast<typename Definition::PrefetchFn*>(&App::prefetch)(state_, argv);
  }

  std::optional<std::vector<std::string>> housekeeping(uint64_t now_ms) const override {
    if constexpr (Definition::kHousekeeping) {
      return static_cast<typename Definition::HousekeepingFn*>(&App::housekeeping)(state_, now_ms);
    }
    return std::nullopt;
  }

  void save(Encoder& out) const override {
    if constexpr (Definition::kSave) static_cast<typename Definition::SaveFn*>(&App::save)(state_, out);
  }
  // The decoder holds the app's part of a snapshot and nothing after it: a load that leaves
  // bytes unread read a different layout than save() wrote, so it fails here, for every
  // app, rather than each app remembering to check.
  bool load(Decoder& in, uint32_t version) override {
    state_ = State{};
    bool loaded = false;
    if constexpr (Definition::kLoad) {
      loaded = reads_schema_version(version) &&
               static_cast<typename Definition::LoadFn*>(&App::load)(state_, in, version) && in.expect_end();
    }
    if (!loaded) {
      state_ = State{};
      return false;
    }
    return true;
  }
  void clear() override { state_ = State{}; }
  std::unique_ptr<SaveProducer> begin_save() override {
    if constexpr (Definition::kBeginSave) {
      return static_cast<typename Definition::BeginSaveFn*>(&App::begin_save)(state_);
    }
    return nullptr;
  }
  std::unique_ptr<StateMachine> make_empty() const override { return std::make_unique<AppHost>(); }
  void swap_state(StateMachine& other) override {
    auto& o = static_cast<AppHost&>(other);  // REQUIRES: made by make_empty() (the same App)
    // Default construction and move assignment only: what load() and clear() already need.
    State mine{};
    mine = std::move(state_);
    state_ = std::move(o.state_);
    o.state_ = std::move(mine);
    const uint32_t version = active_schema_version();
    set_active_schema_version(o.active_schema_version());
    o.set_active_schema_version(version);
  }

  bool saves_schema_version(uint32_t version) const override {
    if (version == App::kSchemaVersion) return true;
    return Definition::kSaveAs && reads_schema_version(version);
  }
  bool save_at(uint32_t version, Encoder& out) const override {
    if (version == App::kSchemaVersion) {
      save(out);
      return true;
    }
    if constexpr (Definition::kSaveAs) {
      if (!reads_schema_version(version)) return false;
      return static_cast<typename Definition::SaveAsFn*>(&App::save_as)(state_, version, out);
    }
    return false;
  }

  uint64_t digest() const override {
    if constexpr (Definition::kDigest) {
      return static_cast<typename Definition::DigestFn*>(&App::digest)(state_);
    } else {
      detail::HashSink sink;
      Encoder enc(&sink);
      save(enc);
      enc.finish();
      return sink.digest();
    }
  }

  // At an older version: the app's digest_as(version), or, for an app that hashes save()
  // (no digest hook), the hash of save_as(version), the bytes an older binary's save() writes.
  std::optional<uint64_t> digest_at(uint32_t version) const override {
    if (version == App::kSchemaVersion) return digest();
    if constexpr (Definition::kDigestAs) {
      if (!reads_schema_version(version)) return std::nullopt;
      return static_cast<typename Definition::DigestAsFn*>(&App::digest_as)(state_, version);
    } else if constexpr (Definition::kSaveAs && !Definition::kDigest) {
      if (!reads_schema_version(version)) return std::nullopt;
      detail::HashSink sink;
      Encoder enc(&sink);
      if (!static_cast<typename Definition::SaveAsFn*>(&App::save_as)(state_, version, enc)) return std::nullopt;
      enc.finish();
      return sink.digest();
    }
    return std::nullopt;
  }

  // At the newest version the app's records; at an older one its records_as(version).
  bool records(uint32_t version, RecordSink& out) const override {
    if constexpr (Definition::kRecords) {
      if (version == App::kSchemaVersion) {
        static_cast<typename Definition::RecordsFn*>(&App::records)(state_, out);
        return true;
      }
    }
    if constexpr (Definition::kRecordsAs) {
      if (version != App::kSchemaVersion && reads_schema_version(version))
        return static_cast<typename Definition::RecordsAsFn*>(&App::records_as)(state_, version, out);
    }
    return false;
  }

  std::string info() const override {
    if constexpr (Definition::kInfo) return static_cast<typename Definition::InfoFn*>(&App::info)(state_);
    return {};
  }

  // For tests of an app: direct access to the state.
  State& state() { return state_; }
  const Commands<State>& commands() const { return commands_; }

 private:
#if HMDB_CHECK_REPLIES
  // A command that wrote anything but one complete RESP value would desynchronise its
  // client (every later reply read as the wrong one): a bug in the app, stopped here.
  static void check_reply(const typename Commands<State>::Entry& e, Reply& reply, size_t before) {
    const std::string_view wrote = std::string_view(*reply.buffer()).substr(before);
    if (std::string problem = reply_problem(wrote, reply.protocol()); !problem.empty())
      throw std::logic_error("hmdb: app " + std::string(App::kName) + ": command " + e.name + " wrote " + problem);
  }
#endif

  // The commands clients' writes are validated under: the active version's (the newest when
  // this binary does not read the active version; validate then refuses every write).
  const typename Commands<State>::Table& client_table() const { return client_ ? *client_ : *newest_; }
  std::string refusal(Args argv, const typename Commands<State>::Table* table) const {
    const std::string active = std::to_string(active_schema_version());
    if (!table)
      return "ERR this node reads schema versions " + std::to_string(oldest_schema_version()) + ".." +
             std::to_string(App::kSchemaVersion) + ", not the cluster's active version " + active;
    const auto* newer = argv.empty() ? nullptr : newest_->find(argv[0]);
    if (newer && newer->kind == CommandKind::kWrite)
      return "ERR " + newer->name + " is a command of schema version " + std::to_string(App::kSchemaVersion) +
             "; the cluster's active schema version is " + active;
    return "ERR unknown command";
  }

  Commands<State> commands_;
  const typename Commands<State>::Table* newest_ = nullptr;
  const typename Commands<State>::Table* client_ = nullptr;  // the active version's; null if not read
  State state_;
};

}  // namespace hmdb
