// sim/register_app.h — the tiny deterministic application the simulator replicates.
//
// A map of integer registers: SET k v, INCR k, SUMSTORE dst k [k ...] (writes; SUMSTORE is
// applied in slices where the engine slices writes: Options::sliced_writes), GET k and
// MGET k [k ...] (queries; MGET's reply is made in slices where the engine slices:
// Options::sliced_reads). It is a real hmdb
// application (hmdb/app.h), hosted by AppHost and fed real command batches (core/batch.h),
// so the simulator exercises the same apply path as the server, and its digest lets the
// checker compare the applied state of every node at every index. Registers are enough for
// linearizability checking: SET writes unique values, INCR's reply reveals the order of
// increments, GET observes both.
//
// Snapshots in slices (Options::sliced_snapshots; hmdb::SaveProducer, docs/decisions.md "A
// snapshot without fork()"): begin_save hooks a RegisterSaveCursor on the state; SET, INCR and
// SUMSTORE's store keep a register's value at I (or "absent") before they change it when it is
// ahead of the cursor, as kv's SaveCursor does per key. RegisterAppSavesWithoutCopy is the
// planted bug (Options::ShellBugs::save_without_copy): its producer keeps nothing.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "hmdb/app.h"

namespace hmdb::sim {

// SUMSTORE's sum is taken modulo this (a register summed into itself again and again stays
// far from overflow).
inline constexpr int64_t kSumModulus = 1'000'000'000'000;

class RegisterSaveCursor;

struct RegisterApp {
  static constexpr std::string_view kName = "simreg";
  static constexpr uint32_t kSchemaVersion = 1;
  // Bound on keys in a snapshot we accept to load (the workload uses a handful).
  static constexpr uint64_t kMaxKeys = 1 << 20;

  struct State {
    std::map<std::string, int64_t, std::less<>> values;  // ordered: save() order is stable
    // Writes applied to this state, plus one per snapshot loaded into it: this node's own
    // count, not replicated, not in snapshots or digests. MGET reads it before its first
    // value and after its last: equal readings mean no write or load changed the state while
    // its reply was made in slices (the engine holds the apply meanwhile).
    uint64_t changes = 0;
    // The snapshot being written in slices (begin_save), null when none: every change of a
    // register calls it first (RegisterSaveCursor::before_change). Not state: not saved.
    RegisterSaveCursor* saving = nullptr;
  };

  static void define(Commands<State>& c);
  static void save(const State& s, Encoder& out);
  static bool load(State& s, Decoder& in, uint32_t version);
  static std::unique_ptr<SaveProducer> begin_save(State& s);
};

using RegisterHost = AppHost<RegisterApp>;

// save()'s bytes of the state at I written in slices while writes go on: a cursor (the last
// register written) over the map's order, and a side map keeping, for a register ahead of it
// changed since I, its value then or "absent" (created since). With copy = false it keeps
// nothing (the planted bug): a register changed ahead of the cursor is written as it is now.
class RegisterSaveCursor final : public SaveProducer {
 public:
  RegisterSaveCursor(RegisterApp::State& s, bool copy);
  ~RegisterSaveCursor() override;
  RegisterSaveCursor(const RegisterSaveCursor&) = delete;
  RegisterSaveCursor& operator=(const RegisterSaveCursor&) = delete;
  bool next(Encoder& out, const SliceBudget& budget) override;
  // key is about to change or be created: keeps what it is now if it is ahead of the cursor
  // and not kept yet.
  void before_change(std::string_view key);

 private:
  bool ahead(std::string_view key) const { return !done_ && (!cursor_ || key > *cursor_); }
  void unhook();

  RegisterApp::State& s_;
  const uint64_t count_;  // registers at I: save()'s first varint
  const bool copy_;
  bool started_ = false;
  bool done_ = false;
  std::optional<std::string> cursor_;  // the last register written
  std::map<std::string, std::optional<int64_t>, std::less<>> kept_;  // nullopt: absent at I
};

// The planted bug's app (Options::ShellBugs::save_without_copy): RegisterApp whose producer
// does not copy before write.
struct RegisterAppSavesWithoutCopy : RegisterApp {
  static std::unique_ptr<SaveProducer> begin_save(State& s);
};
using RegisterHostSavesWithoutCopy = AppHost<RegisterAppSavesWithoutCopy>;

// Version 2 of the same app, for the simulator's mixed-version runs (Options::upgrade,
// issue 13): a node runs RegisterApp (v1) or this (v2, which reads 1..2). What changed:
//   * INCR takes an optional step, `INCR k [n]`: with n, the key's step becomes n; then the
//     key grows by its step. A v1 `INCR k` is upcast to `INCR k` without n (its step, 1 for
//     every key until a v2 INCR sets one, so a v1 entry keeps its v1 meaning).
//   * Each register holds a step beside its value, and the snapshot layout changed: v2
//     writes (key, value, step); a v1 snapshot (key, value) migrates with step 1.
// SET, SUMSTORE, GET and MGET are unchanged. save_as(1) writes the v1 layout while every step is 1 (what
// a v1 node holding the same data writes), so v1 and v2 nodes compare digests before the
// gate. The simulator's clients send v1's forms only, valid in both versions.
struct RegisterAppV2 {
  static constexpr std::string_view kName = "simreg";
  static constexpr uint32_t kSchemaVersion = 2;
  static constexpr uint32_t kOldestSchemaVersion = 1;
  static constexpr uint64_t kMaxKeys = RegisterApp::kMaxKeys;

  struct Register {
    int64_t value = 0;
    int64_t step = 1;
    bool operator==(const Register&) const = default;
  };
  struct State {
    std::map<std::string, Register, std::less<>> registers;
    uint64_t changes = 0;  // as RegisterApp::State::changes
  };

  static void define(Commands<State>& c);
  static void save(const State& s, Encoder& out);
  static bool load(State& s, Decoder& in, uint32_t version);
  static bool save_as(const State& s, uint32_t version, Encoder& out);
};

// A planted bug (Options::ShellBugs::migration_drops_field): v2 whose migration of a v1
// snapshot drops each register's value (the migrated register holds v2's defaults), as a
// migration that forgets to copy a field does.
struct RegisterAppV2DropsField : RegisterAppV2 {
  static bool load(State& s, Decoder& in, uint32_t version);
};

using RegisterHostV2 = AppHost<RegisterAppV2>;
using RegisterHostV2DropsField = AppHost<RegisterAppV2DropsField>;

// The registers' values of any of the simulator's register apps (v1, v2, the planted v2).
std::map<std::string, int64_t, std::less<>> register_values(StateMachine& app);

// Parses the one RESP value a RegisterApp command or query writes: "+OK" -> nullopt with
// *ok=true, ":N" or "$len\r\nN" -> N, "$-1" -> nullopt, anything else -> *ok=false.
std::optional<int64_t> parse_reply(std::string_view resp, bool* ok);

}  // namespace hmdb::sim
