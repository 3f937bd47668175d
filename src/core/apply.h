// core/apply.h — the one apply path: a committed log entry's command batch, applied to the
// app command by command, in order.
//
// The server (core::Replica), the simulator (which drives the same Replica) and the app test
// helper (include/hmdb/testing.h) all apply through apply_batch(), so what the tests and
// the simulator exercise is what a node runs. A second reader runs kPrefetchAheadCommands in
// front and hints the app to prefetch what those commands will touch
// (StateMachine::prefetch), so their cache misses overlap with the current command's work.
//
// Pure: no I/O, no clock (time comes from the batch's leader stamp).
#pragma once

#include <array>
#include <functional>
#include <memory>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/acl.h"
#include "core/batch.h"
#include "core/digest_marks.h"
#include "core/request_table.h"
#include "core/pubsub.h"
#include "hmdb/state_machine.h"

namespace hmdb::core {

// Commands of an entry hinted ahead of the one being applied. 8 covers the latency of a
// cache miss (~100 ns) with the ~50-100 ns a small command costs; more only holds more views.
inline constexpr size_t kPrefetchAheadCommands = 8;
// The ring of decoded commands of a commands-only batch (apply.cc): those decoded ahead, and
// the one being applied.
inline constexpr size_t kApplyRingCommands = kPrefetchAheadCommands + 1;

// Where item k's reply goes: the buffer it is appended to (nullptr: nobody waits, the
// reply is dropped) and the protocol its session speaks now (HELLO changes it in session
// order, so the reply of a write is rendered as the protocol in force when it is applied).
struct ReplyTo {
  std::string* out = nullptr;
  Protocol protocol = Protocol::kResp2;
};

// Where each item's reply goes (an item is a command, or a transaction group: batch.h).
// reply_to(k) before item k is applied, replied(k) once its reply is complete. A group's
// commands all reply into its one buffer, and before each of them (position 0 .. size-1),
// and once after the last (position == size), group_position(k, position, ctx) lets the
// sink write what the transaction holds between its writes (the array header, the queries
// queued there).
class ApplySink {
 public:
  virtual ~ApplySink() = default;
  virtual ReplyTo reply_to(size_t k) = 0;
  virtual void replied(size_t k) = 0;
  virtual void group_position(size_t k, size_t position, const ApplyContext& ctx) { (void)k, (void)position, (void)ctx; }
};

enum class ApplyStatus : uint8_t {
  kOk,
  kMalformed,  // the payload is not a well-formed batch (commands before the damage were applied)
  // Logged under a schema version this binary does not read (ApplyResult::schema_version;
  // above its newest: the binary is older than the data): nothing was applied.
  kUnsupportedSchema,
  kNewerFormat,  // a batch format newer than this binary reads (batch.h): nothing was applied
  // The entry does not mean here what it meant where it was logged: stamped with a schema
  // version above the active one, or a command that does not apply under its version (an
  // unknown name, the wrong arity, refused by its parse: ApplyResult::divergence says which
  // and why). Commands before it were applied. Never answered as a client error: two
  // binaries would then disagree silently.
  kDiverged,
  // A write handed its apply to a producer (hmdb::ApplyProducer, HalfApplied): the batch
  // stopped there, the items before it applied.
  kHalfApplied,
};

// A write of the batch applied in slices (hmdb::ApplyProducer; core::Replica makes the
// slices). Given to apply_batch, untagged commands outside transaction groups may hand
// their apply to a producer; not given, every write is applied whole (ApplyContext::produce
// runs the producer at once).
struct HalfApplied {
  size_t slice_elements = 0;  // in: ApplyContext::slice_elements
  // Out (ApplyStatus::kHalfApplied): the producer of item `item`, the write the batch
  // stopped at, after `commands` commands. In, set (its next() has returned true): the batch
  // is resumed there: that item's reply is the producer's finish(), and the items after it
  // are applied (they may stop at another such write). Items before it are not applied
  // again.
  std::unique_ptr<ApplyProducer> producer;
  size_t item = 0;
  size_t commands = 0;
  // In: the host's budget for one turn's applying (Replica::Options::apply_budget_spent),
  // asked before every kApplyBudgetCheckCommands-th command of one apply_batch call (never
  // before its first, so every call makes progress). Once it says spent, the batch stops
  // before that command as at a producer's write (ApplyStatus::kHalfApplied, `item`), with
  // `yielded` set and `producer` a placeholder whose next() is false once, then true: the
  // replica resumes the batch in its next turn, where item `item` is applied as any command
  // (it may itself hand its apply to a producer). Where the batch stops depends on the
  // host's clock, not the log, so it differs between nodes; what is applied, in what order,
  // and the replies do not (the replica holds everything else until the entry is applied,
  // as for any half-applied write). Null: never stops for it (the simulator's nodes, tests,
  // recovery).
  const std::function<bool()>* budget_spent = nullptr;
  size_t budget_check_commands = 0;  // in: asked every this many commands (kApplyBudgetCheckCommands)
  bool yielded = false;
  // In: a planted bug (Replica::Options::PlantedBugs::skip_yielded_command): a batch resumed
  // after the budget stopped it goes on after the command it stopped before, which is never
  // applied (nor answered).
  bool planted_skip_yielded = false;
};

// Commands an apply_batch call applies between two asks of HalfApplied::budget_spent: the
// host's check reads a clock (~0.1 us), a SET costs ~1-2 us to apply, so one ask per 16
// commands is ~0.3 % of the apply; and after the budget is spent a batch goes on for at most
// 15 more commands (~25 us usually; ~2 ms in the worst 20 M-key turn measured, 116 us per
// SET: bench/README.md, "Long turns of the 20 M-key growth").
inline constexpr size_t kApplyBudgetCheckCommands = 16;

// Reused buffers, so applying allocates nothing per command once warmed up.
struct ApplyScratch {
  BatchStep step;
  std::vector<std::string_view> ahead;
  std::array<std::vector<std::string_view>, kApplyRingCommands> ring;  // format 1's commands, decoded once
  std::string dropped_reply;
  std::string why;         // a command's reason not to apply (StateMachine::apply)
  std::string divergence;  // ApplyResult::divergence's text
  std::string request_reply;  // a tagged item's reply, kept in the request table
};

struct ApplyResult {
  ApplyStatus status = ApplyStatus::kOk;
  size_t items = 0;     // items completed (commands, and groups with all their commands)
  size_t commands = 0;  // commands applied, group or not
  uint8_t format = 0;   // the batch's format byte
  uint32_t schema_version = 0;  // the entry's schema version (the one at fault, if any)
  bool activation = false;      // kUnsupportedSchema: schema_version is what an activation item raises to
  // kDiverged: what does not apply, and why (a view of ApplyScratch::divergence: valid until
  // the scratch applies again).
  std::string_view divergence;
};

// Applies the batch `payload` of the entry at `index`, logged under `schema_version`: every
// command means what that version of the app defines. A version this binary does not read
// is kUnsupportedSchema; one above the app's active version is kDiverged (a proposer stamps
// the active version, and only a committed entry raises it). An activation item (batch.h)
// raises the app's active version and answers +OK, or an error if it is not above the
// active one (nothing changes); one to a version this binary does not read is
// kUnsupportedSchema with `activation` set, the items before it applied.
// sink may be null (nobody waits for any reply: a follower, or recovery); changes is told of
// the keys commands report changing (ApplyContext::changes; null: nobody listens).
//
// requests: the request table (core/request_table.h). Its entries older than the batch's
// leader time allows are evicted first. An item tagged with a request id (HMDB.REQ) whose id
// the table knows is not applied: its reply is the first one (or an error if the id came
// with another command); an unknown id is applied, its reply rendered in the request's
// protocol and recorded. A tagged group is the EXEC of a transaction of writes: its reply,
// the array of its writes' replies, is built here (the sink's group_position is not called).
// Null: tags are ignored (every item applies; tests of apps, the simulator's planted bug).
//
// events gets the entry's events (ApplyContext::events) and applies PUBLISH, the engine's
// own write (core/pubsub.h); the caller has begun the entry there. Null: no events, and
// PUBLISH answers 0 receivers.
//
// marks takes the digest at each digest mark (core/digest_marks.h: the state where the mark
// stands, with `requests`, hashed at the active schema version, here or by its MarkHasher);
// the mark's reply is `index`. Null: nothing is hashed (the mark is still answered).
//
// acl: the users an ACL item (batch.h, kItemAcl) changes (core/acl.h: apply_acl_change, whose
// reply is the item's). Null or not present(): the item is answered +OK and changes nothing.
//
// half: where writes may be applied in slices, and a half-applied write to resume
// (HalfApplied). Null: every write is applied whole.
//
// planted_apply_unread_schema: a planted bug for the simulator (Replica::Options::PlantedBugs,
// never set by the server): an entry logged under a version the app does not read is applied
// as its newest version, and an activation of such a version is answered +OK and passed
// over, instead of ApplyStatus::kUnsupportedSchema: an old node applying gated entries.
ApplyResult apply_batch(StateMachine& app, std::string_view payload, uint64_t index, uint32_t schema_version,
                        ApplySink* sink, ApplyScratch& scratch, KeyChanges* changes = nullptr,
                        RequestTable* requests = nullptr, EventHub* events = nullptr, DigestMarks* marks = nullptr,
                        bool planted_apply_unread_schema = false, const ReplicatedAcl* acl = nullptr,
                        HalfApplied* half = nullptr);

}  // namespace hmdb::core
