// core/pubsub.h — live updates: the events committed entries emit, the node's subscribers,
// and the events it retains so that a subscriber can resume from a position.
//
// docs/subscriptions.md is the design. In short:
//   - Events are born in apply (core/apply.cc): PUBLISH, an app's ApplyContext::publish, and
//     Redis keyspace notifications (ApplyContext::keyspace_event). Apply runs only for
//     committed entries, so only committed events exist, on every node alike.
//   - Each event has a position (index, ordinal): its entry's log index and its ordinal among
//     that entry's events; the same on every node.
//   - Live subscribers get each event at once, appended to their output after the replies of
//     the commands they sent before (ReplyQueue::append_message). A subscriber resuming from a
//     past position catches up from the retained events, a chunk per loop turn (pump()).
//   - Retained events are a ring bounded by Options::retain_bytes, evicted a whole entry at a
//     time; floor() is the oldest position a resume may name.
//   - A subscription that can no longer be served ends with -SUBSCRIPTIONENDED <last
//     position delivered> and its connection closes: a slow subscriber (output past
//     Options::subscriber_output_bytes), a catch-up that fell behind the ring, a snapshot
//     installed over the entries in between. Nothing is ever skipped silently.
//
// The commands (SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, HMDB.SUBSCRIBE,
// HMDB.PSUBSCRIBE, PUBSUB) are the shell's (its table says how each is routed); it hands
// them to command(). PUBLISH is a write: the replica batches it and apply calls publish_command.
//
// Pure: no I/O, no clock. The sessions are reached through PubSubHost. Thread-safety: none
// (the loop thread).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <xxhash.h>

#include "common/assert.h"
#include "hmdb/reply.h"
#include "hmdb/state_machine.h"
#include "hmdb/text.h"

namespace hmdb::core {

struct ClientSession;

// Defaults and bounds (docs/subscriptions.md, "Bounds").
inline constexpr uint64_t kEventsRetainBytesDefault = 64ull << 20;
inline constexpr uint64_t kSubscriberOutputBytesDefault = 8ull << 20;
// What a retained event costs beyond its channel and message (its record in the ring).
inline constexpr uint64_t kRetainedEventOverheadBytes = 64;
// Channels and patterns one session may subscribe to.
inline constexpr size_t kSubscriptionsPerSessionMax = 100000;
// A catching-up subscriber is given more retained events only while less than this (or half
// its output bound, if smaller) is unsent.
inline constexpr uint64_t kCatchUpLowWaterBytes = 256 << 10;
// At most what a message's frame adds to its channel, pattern and payload (headers, the
// kind, a position and a term).
inline constexpr uint64_t kFrameOverheadBytesMax = 256;
// Retained events examined per catching-up subscriber per pump (one loop turn).
inline constexpr uint64_t kCatchUpEventsPerTurn = 10000;

// A place in the stream of events: after event `ordinal` of the entry at `index`.
// kWholeEntry: after every event of that entry. Ordered as (index, ordinal).
struct EventPosition {
  static constexpr uint64_t kWholeEntry = UINT64_MAX;
  uint64_t index = 0;
  uint64_t ordinal = kWholeEntry;
  auto operator<=>(const EventPosition&) const = default;
};
// Where an entry's events go as it is applied (core/apply.h): a node's PubSub; the app test
// driver's recorder (hmdb/testing.h).
class EventHub : public EventSink {
 public:
  // PUBLISH, applied: one event; returns the receivers on this node (PUBLISH's reply).
  virtual int64_t publish_command(std::string_view channel, std::string_view message) = 0;
};

// PUBLISH <channel> <message>: the engine's own write, logged and applied like an app's
// (its name comes before the app's commands).
inline bool is_publish_name(std::string_view name) {
  return name.size() == 7 && (name[0] == 'P' || name[0] == 'p') && iequals(name, "PUBLISH");
}
inline bool is_publish(Args argv) { return argv.size() == 3 && is_publish_name(argv[0]); }

// "<index>-<ordinal>", or "<index>" for a whole entry.
std::string format_position(EventPosition p);
// The same forms back; false for anything else.
bool parse_position(std::string_view text, EventPosition* out);

// Redis' glob (stringmatchlen): * ? [abc] [^a-z] and \ escapes, case-sensitive; the empty
// channel matches only the empty pattern (Redis': not even "*"). Linear in
// the pattern times the string at worst (no exponential backtracking).
bool glob_match(std::string_view pattern, std::string_view text);

// Redis' notify-keyspace-events flags: K (keyspace channel) and E (keyevent channel) besides
// the classes of hmdb::keyspace; parsed from and rendered to Redis' letters.
inline constexpr uint32_t kNotifyKeyspace = 1u << 0;   // K
inline constexpr uint32_t kNotifyKeyevent = 1u << 1;   // E
inline constexpr uint32_t kNotifyKeyMiss = 1u << 11;   // m (reads are not logged: never sent here)
bool parse_notify_flags(std::string_view letters, uint32_t* out);
std::string format_notify_flags(uint32_t flags);

// Names (channels, patterns) looked up by std::string_view without building a std::string
// (this Abseil's own StringHash takes absl::string_view, a distinct type).
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return XXH3_64bits(s.data(), s.size()); }
};
struct NameEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};
using NameSet = absl::flat_hash_set<std::string, NameHash, NameEq>;
template <class V>
using NameMap = absl::flat_hash_map<std::string, V, NameHash, NameEq>;

// One session's subscriptions (ClientSession::subscriber; allocated on its first SUBSCRIBE).
struct Subscriber {
  NameSet channels;
  NameSet patterns;
  bool positioned = false;   // HMDB.(P)SUBSCRIBE: messages carry their position and term
  bool catching_up = false;  // its messages come from the ring (pump), not at apply
  uint64_t cursor = 0;       // catching up: ring sequence number of the next event to look at
  EventPosition start;       // nothing at or before it is delivered
  EventPosition last;        // the last position delivered (start until one is)
  uint64_t delivered = 0;    // messages
  size_t count() const { return channels.size() + patterns.size(); }
};

// What the hub needs of the sessions (the replica implements it over ReplicaHost).
class PubSubHost {
 public:
  virtual ~PubSubHost() = default;
  virtual ClientSession* session(uint64_t id) = 0;
  // Bytes of s's finished output not yet taken by its socket.
  virtual uint64_t unsent_bytes(const ClientSession& s) = 0;
  // s's output grew: it should be sent.
  virtual void output_grew(ClientSession& s) = 0;
  // s's subscriptions ended with an error: close it once its output is sent.
  virtual void close_after_output(ClientSession& s) = 0;
  // An applied entry's keyspace event named `key` (whatever this node's notify setting):
  // clients blocked on it are woken (core/blocking.h).
  virtual void key_changed(std::string_view key) { (void)key; }
};

class PubSub final : public EventHub {
 public:
  struct Options {
    uint64_t retain_bytes = kEventsRetainBytesDefault;
    uint64_t subscriber_output_bytes = kSubscriberOutputBytesDefault;
    uint32_t notify_flags = 0;  // notify-keyspace-events at start (set_notify_flags changes it)
  };
  struct Stats {
    uint64_t events = 0;             // events emitted by applied entries (rendered or not)
    uint64_t messages = 0;           // messages appended to subscribers' output
    uint64_t ended_slow = 0;         // subscriptions ended: output past its bound
    uint64_t ended_behind = 0;       // ... a catch-up fell behind the retained events
    uint64_t ended_snapshot = 0;     // ... a snapshot was installed over their entries
    uint64_t resumes = 0;            // HMDB.(P)SUBSCRIBE from a past position accepted
    uint64_t resumes_refused = 0;    // ... refused: older than the retained events (-OLDPOSITION)
  };

  PubSub(PubSubHost& host, Options options) : host_(host), options_(options), notify_flags_(options.notify_flags) {}

  // ---- the apply path (replica.cc) ----
  // The entry at (index, term) is about to be applied; events get its positions. (Inline:
  // once per entry, on the apply path.)
  void begin_entry(uint64_t index, uint64_t term) {
    HMDB_ASSERT(!in_entry_, "entry %llu begun inside another", static_cast<unsigned long long>(index));
    in_entry_ = true;
    entry_index_ = index;
    entry_term_ = term;
    next_ordinal_ = 0;
    current_ = EventPosition{index - 1, EventPosition::kWholeEntry};
  }
  // It was applied: retention is trimmed to its bound.
  void end_entry() {
    HMDB_ASSERT(in_entry_, "entry ended without beginning");
    in_entry_ = false;
    current_ = EventPosition{entry_index_, EventPosition::kWholeEntry};
    if (ring_bytes_ > options_.retain_bytes) [[unlikely]] evict();
  }
  // The state now stands for entry `index` by other means (a snapshot loaded at startup or
  // installed from the leader): no event before it will be seen. Every subscription ends
  // (-SUBSCRIPTIONENDED), as its events in between are skipped; the ring starts empty.
  void reset_at(uint64_t index);
  // PUBLISH, applied: one event; returns the receivers on this node (the reply).
  int64_t publish_command(std::string_view channel, std::string_view message) override;
  // EventSink (an app's apply).
  void publish(std::string_view channel, std::string_view message) override;
  void keyspace_event(uint32_t type, std::string_view event, std::string_view key) override;

  // ---- commands (the shell's table hands them here) ----
  // SUBSCRIBE, PSUBSCRIBE, UNSUBSCRIBE, PUNSUBSCRIBE, HMDB.SUBSCRIBE, HMDB.PSUBSCRIBE, PUBSUB.
  static bool is_command(std::string_view name);
  // Runs one of them for s; writes its reply (confirmations, or an error) to *out.
  void command(ClientSession& s, Args argv, std::string* out);
  // RESET, and a closing session: its subscriptions go, without confirmations.
  void forget(ClientSession& s);
  // A RESP2 session with subscriptions may only send these (Redis' rule).
  static bool allowed_when_subscribed(std::string_view name);

  // ---- catch-up ----
  // Gives catching-up subscribers with room in their output their next retained events.
  // (Called every loop turn: nothing to do costs a test.)
  void pump() {
    if (!catching_up_.empty()) [[unlikely]] pump_catching_up();
  }
  // A catching-up subscriber has room: pump() would make progress.
  bool pump_ready() { return !catching_up_.empty() && catching_up_ready(); }

  // ---- node settings ----
  // notify-keyspace-events (a node's own setting, as in Redis; positions do not depend on it).
  void set_notify_flags(uint32_t flags) { notify_flags_ = flags; }
  uint32_t notify_flags() const { return notify_flags_; }

  // ---- introspection ----
  EventPosition floor() const { return floor_; }      // resumes must be at or after it
  EventPosition current() const { return current_; }  // the newest position emitted
  size_t channels() const { return channels_.size(); }
  size_t patterns() const { return patterns_.size(); }
  size_t subscribers() const { return subscribers_; }
  size_t catching_up() const { return catching_up_.size(); }
  size_t retained_events() const { return ring_.size(); }
  uint64_t retained_bytes() const { return ring_bytes_; }
  // Entries between what s has been given and the newest applied (0 when live).
  uint64_t lag_entries(const ClientSession& s) const;
  uint64_t lag_entries_max() const;
  const Stats& stats() const { return stats_; }
  void reset_stats() { stats_ = Stats{}; }

 private:
  struct RetainedEvent {
    EventPosition position;
    uint64_t term = 0;
    std::string channel;
    std::string message;
  };
  // One rendered message, kept while an event is delivered to many sessions.
  struct Frames {
    std::string bytes[4];  // [protocol RESP3][positioned]
    bool made[4] = {false, false, false, false};
  };

  // An event at `ordinal` of the current entry: retained, and delivered to live subscribers.
  int64_t emit(uint64_t ordinal, std::string_view channel, std::string_view message);
  // Appends a retained event's messages for catching-up s (its channel and its matching
  // patterns), unless they do not fit its output bound yet (kFull: wait for it to drain).
  enum class Catchup : uint8_t { kDelivered, kFull, kEnded };
  Catchup deliver_retained(ClientSession& s, const RetainedEvent& e);
  uint64_t catch_up_low_water() const;
  // Evicts the oldest entries' events until retention is within its bound.
  void evict();
  void pump_catching_up();
  bool catching_up_ready();
  // Renders (once per kind) and appends one message (a pmessage for `pattern`, a message if it is
  // null); false if s was too slow and ended.
  bool send_message(ClientSession& s, Frames& frames, const std::string* pattern, std::string_view channel,
                    std::string_view message, EventPosition position, uint64_t term);
  void end_subscription(ClientSession& s, std::string_view reason);
  void subscribe(ClientSession& s, Args names, bool pattern, std::optional<EventPosition> from, std::string* out);
  void unsubscribe(ClientSession& s, Args names, bool pattern, std::string* out);
  void pubsub_command(ClientSession& s, Args argv, std::string* out);
  void drop_subscriptions(ClientSession& s);
  // The ring's sequence number of the first retained event after p.
  uint64_t ring_seq_after(EventPosition p) const;

  PubSubHost& host_;
  Options options_;
  uint32_t notify_flags_ = 0;

  // channel (or pattern) -> the sessions subscribed to it. Pointers, not ids: an event walks
  // these lists once per subscriber, and a lookup by id per subscriber was ~30 instructions
  // of the ~650 a message cost. A session leaves every list (forget(), through
  // Replica::session_closed) before its host destroys it.
  NameMap<std::vector<ClientSession*>> channels_;
  NameMap<std::vector<ClientSession*>> patterns_;
  size_t subscribers_ = 0;             // sessions with at least one subscription
  std::vector<uint64_t> catching_up_;  // sessions whose messages come from the ring

  // The entry being applied, and the positions.
  uint64_t entry_index_ = 0;
  uint64_t entry_term_ = 0;
  uint64_t next_ordinal_ = 0;
  bool in_entry_ = false;
  EventPosition current_{0, EventPosition::kWholeEntry};
  EventPosition floor_{0, EventPosition::kWholeEntry};  // everything after it is retained

  std::deque<RetainedEvent> ring_;
  uint64_t ring_base_seq_ = 0;  // sequence number of ring_.front()
  uint64_t ring_bytes_ = 0;

  Frames frames_scratch_;
  std::string keyspace_channel_scratch_;
  Stats stats_;
};

}  // namespace hmdb::core
