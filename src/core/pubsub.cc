// core/pubsub.cc — live updates: events, subscribers, retention (see pubsub.h and
// docs/subscriptions.md).
//
// Sections: positions, globs and notify flags · the apply path (events born, retained,
// delivered live) · commands · catch-up · introspection.
#include "core/pubsub.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/assert.h"
#include "core/replica.h"
#include "hmdb/app.h"
#include "hmdb/glob.h"
#include "hmdb/text.h"

namespace hmdb::core {

namespace {

// Redis' channels of keyspace notifications (database 0: hmdb has one).
constexpr std::string_view kKeyspacePrefix = "__keyspace@0__:";
constexpr std::string_view kKeyeventPrefix = "__keyevent@0__:";

// Redis' letters of notify-keyspace-events, in the order it renders them.
struct NotifyLetter {
  char letter;
  uint32_t flag;
};
constexpr NotifyLetter kNotifyClasses[] = {
    {'g', keyspace::kGeneric}, {'$', keyspace::kString},  {'l', keyspace::kList},    {'s', keyspace::kSet},
    {'h', keyspace::kHash},    {'z', keyspace::kZset},    {'x', keyspace::kExpired}, {'e', keyspace::kEvicted},
    {'t', keyspace::kStream},  {'d', keyspace::kModule},  {'n', keyspace::kNewKey},
};
// "A": every class but key misses and new keys (Redis' NOTIFY_ALL).
constexpr uint32_t kNotifyAll = keyspace::kGeneric | keyspace::kString | keyspace::kList | keyspace::kSet |
                                keyspace::kHash | keyspace::kZset | keyspace::kExpired | keyspace::kEvicted |
                                keyspace::kStream | keyspace::kModule;

void put_header(std::string* out, char type, uint64_t n) {
  char tmp[24];
  tmp[0] = type;
  auto r = std::to_chars(tmp + 1, tmp + sizeof tmp - 2, n);
  r.ptr[0] = '\r';
  r.ptr[1] = '\n';
  out->append(tmp, static_cast<size_t>(r.ptr + 2 - tmp));
}

// A pub/sub frame's header: a push in RESP3, an array in RESP2 (what Redis sends).
void frame_header(std::string* out, Protocol protocol, uint64_t elements) {
  put_header(out, protocol == Protocol::kResp3 ? '>' : '*', elements);
}

void put_bulk(std::string* out, std::string_view s) {
  put_header(out, '$', s.size());
  out->append(s.data(), s.size());
  out->append("\r\n");
}

void put_integer(std::string* out, int64_t v) {
  char tmp[24];
  tmp[0] = ':';
  auto r = std::to_chars(tmp + 1, tmp + sizeof tmp - 2, v);
  r.ptr[0] = '\r';
  r.ptr[1] = '\n';
  out->append(tmp, static_cast<size_t>(r.ptr + 2 - tmp));
}

// Removes id from a list of sessions (order does not matter: each session gets each event
// once whatever the order).
void remove_id(std::vector<uint64_t>& ids, uint64_t id) {
  auto it = std::find(ids.begin(), ids.end(), id);
  HMDB_ASSERT(it != ids.end(), "session %llu missing from a subscription list", static_cast<unsigned long long>(id));
  *it = ids.back();
  ids.pop_back();
}
void remove_session(std::vector<ClientSession*>& list, ClientSession* s) {
  auto it = std::find(list.begin(), list.end(), s);
  HMDB_ASSERT(it != list.end(), "session %llu missing from a subscription list", static_cast<unsigned long long>(s->id));
  *it = list.back();
  list.pop_back();
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Positions, globs, notify flags

std::string format_position(EventPosition p) {
  if (p.ordinal == EventPosition::kWholeEntry) return std::to_string(p.index);
  return fmt::format("{}-{}", p.index, p.ordinal);
}

bool parse_position(std::string_view text, EventPosition* out) {
  const size_t dash = text.find('-');
  EventPosition p;
  if (!parse_uint64(text.substr(0, dash), &p.index)) return false;
  if (dash != std::string_view::npos && !parse_uint64(text.substr(dash + 1), &p.ordinal)) return false;
  *out = p;
  return true;
}

// The rules and the code are hmdb/glob.h's, which apps use for KEYS-like commands: one
// matcher for channels (Redis: PUBLISH "" reaches no "*" subscriber) and keys.
bool glob_match(std::string_view pattern, std::string_view text) { return string_match(pattern, text); }

bool parse_notify_flags(std::string_view letters, uint32_t* out) {
  uint32_t flags = 0;
  for (char c : letters) {
    if (c == 'A') {
      flags |= kNotifyAll;
    } else if (c == 'K') {
      flags |= kNotifyKeyspace;
    } else if (c == 'E') {
      flags |= kNotifyKeyevent;
    } else if (c == 'm') {
      flags |= kNotifyKeyMiss;
    } else {
      const NotifyLetter* hit = nullptr;
      for (const NotifyLetter& l : kNotifyClasses)
        if (l.letter == c) hit = &l;
      if (!hit) return false;
      flags |= hit->flag;
    }
  }
  *out = flags;
  return true;
}

std::string format_notify_flags(uint32_t flags) {
  std::string out;
  if ((flags & kNotifyAll) == kNotifyAll) {
    out += 'A';
    if (flags & keyspace::kNewKey) out += 'n';
  } else {
    for (const NotifyLetter& l : kNotifyClasses)
      if (flags & l.flag) out += l.letter;
  }
  if (flags & kNotifyKeyspace) out += 'K';
  if (flags & kNotifyKeyevent) out += 'E';
  if (flags & kNotifyKeyMiss) out += 'm';
  return out;
}

// ---------------------------------------------------------------------------------------
// The apply path

void PubSub::evict() {
  // A whole entry at a time, so that floor_ is exact: after it, every event is here.
  while (ring_bytes_ > options_.retain_bytes && !ring_.empty()) {
    const uint64_t index = ring_.front().position.index;
    while (!ring_.empty() && ring_.front().position.index == index) {
      const RetainedEvent& e = ring_.front();
      floor_ = e.position;
      ring_bytes_ -= e.channel.size() + e.message.size() + kRetainedEventOverheadBytes;
      ring_.pop_front();
      ring_base_seq_++;
    }
  }
}

void PubSub::reset_at(uint64_t index) {
  HMDB_ASSERT(!in_entry_, "reset inside an entry");
  absl::flat_hash_set<uint64_t> ids;
  for (const auto& [name, list] : channels_)
    for (const ClientSession* s : list) ids.insert(s->id);
  for (const auto& [name, list] : patterns_)
    for (const ClientSession* s : list) ids.insert(s->id);
  for (uint64_t id : ids) {
    ClientSession* s = host_.session(id);
    if (!s) continue;
    stats_.ended_snapshot++;
    end_subscription(*s, fmt::format("this node installed a snapshot at index {}: the events of the entries before "
                                     "it were never applied here; resume on another node, or resync",
                                     index));
  }
  ring_base_seq_ += ring_.size();  // sequence numbers go on: no cursor names a cleared event
  ring_.clear();
  ring_bytes_ = 0;
  current_ = floor_ = EventPosition{index, EventPosition::kWholeEntry};
}

int64_t PubSub::publish_command(std::string_view channel, std::string_view message) {
  HMDB_ASSERT(in_entry_, "PUBLISH applied outside an entry");
  return emit(next_ordinal_++, channel, message);
}

void PubSub::publish(std::string_view channel, std::string_view message) {
  HMDB_ASSERT(in_entry_, "an event emitted outside an entry");
  emit(next_ordinal_++, channel, message);
}

void PubSub::keyspace_event(uint32_t type, std::string_view event, std::string_view key) {
  HMDB_ASSERT(in_entry_, "a keyspace event emitted outside an entry");
  host_.key_changed(key);
  // Two positions whatever this node's setting: positions are the same on every node.
  const uint64_t ordinal = next_ordinal_;
  next_ordinal_ += 2;
  if (!(notify_flags_ & type)) return;
  std::string& channel = keyspace_channel_scratch_;
  if (notify_flags_ & kNotifyKeyspace) {
    channel.assign(kKeyspacePrefix);
    channel.append(key);
    emit(ordinal, channel, event);
  }
  if (notify_flags_ & kNotifyKeyevent) {
    channel.assign(kKeyeventPrefix);
    channel.append(event);
    emit(ordinal + 1, channel, key);
  }
}

int64_t PubSub::emit(uint64_t ordinal, std::string_view channel, std::string_view message) {
  const EventPosition position{entry_index_, ordinal};
  current_ = position;
  stats_.events++;
  if (options_.retain_bytes > 0) {
    ring_.push_back(RetainedEvent{position, entry_term_, std::string(channel), std::string(message)});
    ring_bytes_ += channel.size() + message.size() + kRetainedEventOverheadBytes;
  } else {
    floor_ = position;  // not retained: a resume from before it is refused, not silently empty
  }
  if (subscribers_ == 0) return 0;
  int64_t receivers = 0;
  std::vector<ClientSession*> slow;  // ended after the loops: ending changes the lists they walk
  auto deliver = [&](const std::vector<ClientSession*>& list, Frames& frames, const std::string* pattern) {
    for (ClientSession* s : list) {
      Subscriber& sub = *s->subscriber;
      if (sub.catching_up) {  // it reads this event from the ring, in its turn
        receivers++;
        continue;
      }
      if (position <= sub.start || (!slow.empty() && std::find(slow.begin(), slow.end(), s) != slow.end())) continue;
      if (send_message(*s, frames, pattern, channel, message, position, entry_term_)) receivers++;
      else slow.push_back(s);
    }
  };
  if (auto it = channels_.find(channel); it != channels_.end()) {
    Frames& frames = frames_scratch_;
    for (bool& m : frames.made) m = false;
    deliver(it->second, frames, nullptr);
  }
  for (const auto& [pattern, ids] : patterns_) {
    if (!glob_match(pattern, channel)) continue;
    Frames& frames = frames_scratch_;
    for (bool& m : frames.made) m = false;
    deliver(ids, frames, &pattern);
  }
  for (ClientSession* s : slow) {
    stats_.ended_slow++;
    end_subscription(*s, fmt::format("slow subscriber: more than {} bytes of output unread",
                                     options_.subscriber_output_bytes));
  }
  return receivers;
}

bool PubSub::send_message(ClientSession& s, Frames& frames, const std::string* pattern, std::string_view channel,
                          std::string_view message, EventPosition position, uint64_t term) {
  Subscriber& sub = *s.subscriber;
  const size_t kind = (s.protocol == Protocol::kResp3 ? 2 : 0) + (sub.positioned ? 1 : 0);
  std::string& frame = frames.bytes[kind];
  if (!frames.made[kind]) {
    frame.clear();
    const bool is_pattern = pattern != nullptr;  // "" is a pattern too (it matches the empty channel)
    frame_header(&frame, s.protocol, (is_pattern ? 4 : 3) + (sub.positioned ? 2 : 0));
    put_bulk(&frame, is_pattern ? "pmessage" : "message");
    if (is_pattern) put_bulk(&frame, *pattern);
    put_bulk(&frame, channel);
    put_bulk(&frame, message);
    if (sub.positioned) {
      put_bulk(&frame, format_position(position));
      put_integer(&frame, static_cast<int64_t>(term));
    }
    frames.made[kind] = true;
  }
  // A message always fits an empty buffer (so every message can be delivered); past the
  // bound the subscription ends instead of holding more memory.
  const uint64_t unsent = host_.unsent_bytes(s) + s.replies.held_message_bytes();
  if (unsent > 0 && unsent + frame.size() > options_.subscriber_output_bytes) return false;
  s.replies.append_message(frame);
  sub.last = position;
  sub.delivered++;
  stats_.messages++;
  host_.output_grew(s);
  return true;
}

void PubSub::end_subscription(ClientSession& s, std::string_view reason) {
  Subscriber& sub = *s.subscriber;
  std::string error = "-SUBSCRIPTIONENDED " + format_position(sub.last) + " ";
  for (char c : reason) error.push_back(c == '\r' || c == '\n' ? ' ' : c);
  error += "\r\n";
  drop_subscriptions(s);
  s.replies.append_message(error);
  host_.close_after_output(s);
  host_.output_grew(s);
}

// ---------------------------------------------------------------------------------------
// Commands

namespace {

enum class Name : uint8_t { kNone, kSubscribe, kPsubscribe, kUnsubscribe, kPunsubscribe, kHmdbSubscribe, kHmdbPsubscribe, kPubsub };

Name command_name(std::string_view name) {
  switch (name.size()) {
    case 6: return iequals(name, "PUBSUB") ? Name::kPubsub : Name::kNone;
    case 9: return iequals(name, "SUBSCRIBE") ? Name::kSubscribe : Name::kNone;
    case 10: return iequals(name, "PSUBSCRIBE") ? Name::kPsubscribe : Name::kNone;
    case 11: return iequals(name, "UNSUBSCRIBE") ? Name::kUnsubscribe : Name::kNone;
    case 12: return iequals(name, "PUNSUBSCRIBE") ? Name::kPunsubscribe : Name::kNone;
    case 14: return iequals(name, "HMDB.SUBSCRIBE") ? Name::kHmdbSubscribe : Name::kNone;
    case 15: return iequals(name, "HMDB.PSUBSCRIBE") ? Name::kHmdbPsubscribe : Name::kNone;
    default: return Name::kNone;
  }
}

}  // namespace

bool PubSub::is_command(std::string_view name) { return command_name(name) != Name::kNone; }

bool PubSub::allowed_when_subscribed(std::string_view name) {
  const Name n = command_name(name);
  if (n != Name::kNone && n != Name::kPubsub) return true;
  return iequals(name, "PING") || iequals(name, "QUIT") || iequals(name, "RESET");
}

void PubSub::command(ClientSession& s, Args argv, std::string* out) {
  Reply r(out, s.protocol);
  const Name name = command_name(argv[0]);
  const size_t min_words = name == Name::kHmdbSubscribe || name == Name::kHmdbPsubscribe ? 3
                           : name == Name::kUnsubscribe || name == Name::kPunsubscribe ? 1
                                                                                       : 2;
  if (argv.size() < min_words) {
    r.error(wrong_arity(argv[0]));
    return;
  }
  switch (name) {
    case Name::kNone: HMDB_ASSERT(false, "not a pub/sub command"); break;
    case Name::kSubscribe: subscribe(s, argv.subspan(1), false, std::nullopt, out); break;
    case Name::kPsubscribe: subscribe(s, argv.subspan(1), true, std::nullopt, out); break;
    case Name::kUnsubscribe: unsubscribe(s, argv.subspan(1), false, out); break;
    case Name::kPunsubscribe: unsubscribe(s, argv.subspan(1), true, out); break;
    case Name::kHmdbSubscribe:
    case Name::kHmdbPsubscribe: {
      EventPosition from = current_;
      if (argv[1] != "$" && !parse_position(argv[1], &from)) {
        r.error(fmt::format("ERR invalid position '{}': expected <index>-<n>, <index> or $",
                            argv[1].substr(0, 64)));
        return;
      }
      subscribe(s, argv.subspan(2), name == Name::kHmdbPsubscribe, from, out);
      break;
    }
    case Name::kPubsub: pubsub_command(s, argv, out); break;
  }
}

void PubSub::subscribe(ClientSession& s, Args names, bool pattern, std::optional<EventPosition> from,
                       std::string* out) {
  Reply r(out, s.protocol);
  if (!s.subscriber) s.subscriber = std::make_unique<Subscriber>();
  Subscriber& sub = *s.subscriber;
  const bool fresh = sub.count() == 0;
  if (!fresh && from && !sub.positioned) {
    r.error("ERR this connection has plain subscriptions (SUBSCRIBE); positioned ones (HMDB.SUBSCRIBE) need a "
            "connection without any");
    return;
  }
  if (!fresh && from && *from != current_) {
    r.error("ERR a connection that has subscriptions adds more only from $; resume from a position on a "
            "connection without any");
    return;
  }
  if (sub.count() + names.size() > kSubscriptionsPerSessionMax) {
    r.error(fmt::format("ERR a connection may subscribe to at most {} channels and patterns",
                        kSubscriptionsPerSessionMax));
    return;
  }
  if (fresh) {
    EventPosition start = from.value_or(current_);
    if (start < floor_) {
      stats_.resumes_refused++;
      r.error(fmt::format("OLDPOSITION {} position {} is older than the events this node retains; read the current "
                          "state, then subscribe from $ (docs/subscriptions.md)",
                          format_position(floor_), format_position(start)));
      return;
    }
    sub.positioned = from.has_value();
    sub.start = sub.last = start;
    sub.delivered = 0;
    // Everything after floor_ is retained, so with no retained event after start there is
    // none at all: it is live at once. (Marked catching up, it would skip the events applied
    // before its first pump that the ring does not keep: all of them when retaining nothing.)
    sub.cursor = ring_seq_after(start);
    sub.catching_up = start < current_ && sub.cursor < ring_base_seq_ + ring_.size();
    if (start < current_) stats_.resumes++;
    if (sub.catching_up) catching_up_.push_back(s.id);
  }
  auto& table = pattern ? patterns_ : channels_;
  auto& mine = pattern ? sub.patterns : sub.channels;
  for (std::string_view name : names) {
    if (mine.emplace(name).second) table[name].push_back(&s);
    frame_header(out, s.protocol, sub.positioned ? 4 : 3);
    put_bulk(out, pattern ? "psubscribe" : "subscribe");
    put_bulk(out, name);
    put_integer(out, static_cast<int64_t>(sub.count()));
    if (sub.positioned) put_bulk(out, format_position(sub.start));
  }
  if (fresh && sub.count() > 0) subscribers_++;
}

void PubSub::unsubscribe(ClientSession& s, Args names, bool pattern, std::string* out) {
  Subscriber* sub = s.subscriber.get();
  std::string_view kind = pattern ? "punsubscribe" : "unsubscribe";
  auto confirm = [&](std::optional<std::string_view> name, size_t count) {
    frame_header(out, s.protocol, 3);
    put_bulk(out, kind);
    if (name) put_bulk(out, *name);
    else out->append(s.protocol == Protocol::kResp3 ? "_\r\n" : "$-1\r\n");
    put_integer(out, static_cast<int64_t>(count));
  };
  if (!sub) {
    if (names.empty()) confirm(std::nullopt, 0);
    for (std::string_view name : names) confirm(name, 0);
    return;
  }
  auto& table = pattern ? patterns_ : channels_;
  auto& mine = pattern ? sub->patterns : sub->channels;
  const bool had = sub->count() > 0;
  auto drop = [&](std::string_view name) {
    auto it = table.find(name);
    remove_session(it->second, &s);
    if (it->second.empty()) table.erase(it);
  };
  if (names.empty()) {
    if (mine.empty()) confirm(std::nullopt, sub->count());
    std::vector<std::string> all(mine.begin(), mine.end());
    for (const std::string& name : all) {
      drop(name);
      mine.erase(name);
      confirm(name, sub->count());
    }
  } else {
    for (std::string_view name : names) {
      if (auto it = mine.find(name); it != mine.end()) {
        drop(name);
        mine.erase(it);
      }
      confirm(name, sub->count());
    }
  }
  if (had && sub->count() == 0) {
    subscribers_--;
    if (sub->catching_up) {
      sub->catching_up = false;
      remove_id(catching_up_, s.id);
    }
  }
}

void PubSub::drop_subscriptions(ClientSession& s) {
  Subscriber* sub = s.subscriber.get();
  if (!sub) return;
  if (sub->count() > 0) subscribers_--;
  for (const std::string& name : sub->channels) {
    auto it = channels_.find(name);
    remove_session(it->second, &s);
    if (it->second.empty()) channels_.erase(it);
  }
  for (const std::string& name : sub->patterns) {
    auto it = patterns_.find(name);
    remove_session(it->second, &s);
    if (it->second.empty()) patterns_.erase(it);
  }
  sub->channels.clear();
  sub->patterns.clear();
  if (sub->catching_up) {
    sub->catching_up = false;
    remove_id(catching_up_, s.id);
  }
}

void PubSub::forget(ClientSession& s) {
  drop_subscriptions(s);
  s.subscriber.reset();
}

void PubSub::pubsub_command(ClientSession& s, Args argv, std::string* out) {
  Reply r(out, s.protocol);
  const std::string_view sub = argv[1];
  auto arity = [&](size_t min, size_t max) {
    if (argv.size() >= min && argv.size() <= max) return true;
    r.error("ERR wrong number of arguments for 'pubsub|" + lowercase(sub) + "' command");
    return false;
  };
  if (iequals(sub, "CHANNELS") || iequals(sub, "SHARDCHANNELS")) {
    if (argv.size() > 3) {  // Redis' own check, after the table's (at least 2 words)
      r.error("ERR unknown subcommand or wrong number of arguments for '" + std::string(sub) + "'. Try PUBSUB HELP.");
      return;
    }
    std::vector<std::string_view> hits;
    if (iequals(sub, "CHANNELS"))
      for (const auto& [name, ids] : channels_)
        if (argv.size() == 2 || glob_match(argv[2], name)) hits.push_back(name);
    r.array(hits.size());
    for (std::string_view name : hits) r.bulk(name);
  } else if (iequals(sub, "NUMSUB") || iequals(sub, "SHARDNUMSUB")) {
    const bool shard = iequals(sub, "SHARDNUMSUB");
    r.array((argv.size() - 2) * 2);
    for (size_t i = 2; i < argv.size(); i++) {
      r.bulk(argv[i]);
      auto it = shard ? channels_.end() : channels_.find(argv[i]);
      r.integer(it == channels_.end() ? 0 : static_cast<int64_t>(it->second.size()));
    }
  } else if (iequals(sub, "NUMPAT")) {
    if (!arity(2, 2)) return;
    r.integer(static_cast<int64_t>(patterns_.size()));
  } else {
    r.error("ERR unknown subcommand '" + std::string(sub.substr(0, 128)) + "'. Try PUBSUB HELP.");
  }
}

// ---------------------------------------------------------------------------------------
// Catch-up

uint64_t PubSub::ring_seq_after(EventPosition p) const {
  auto it = std::partition_point(ring_.begin(), ring_.end(), [&](const RetainedEvent& e) { return e.position <= p; });
  return ring_base_seq_ + static_cast<uint64_t>(it - ring_.begin());
}

PubSub::Catchup PubSub::deliver_retained(ClientSession& s, const RetainedEvent& e) {
  Subscriber& sub = *s.subscriber;
  if (e.position <= sub.start) return Catchup::kDelivered;
  // A catching-up subscriber waits for room rather than ending: the event stays retained
  // until its output drains. So first, will this event's messages fit?
  const bool channel = sub.channels.contains(e.channel);
  uint64_t bytes = channel ? e.channel.size() + e.message.size() + kFrameOverheadBytesMax : 0;
  for (const std::string& pattern : sub.patterns)
    if (glob_match(pattern, e.channel)) bytes += pattern.size() + e.channel.size() + e.message.size() + kFrameOverheadBytesMax;
  const uint64_t unsent = host_.unsent_bytes(s) + s.replies.held_message_bytes();
  if (bytes > 0 && unsent > 0 && unsent + bytes > options_.subscriber_output_bytes) return Catchup::kFull;
  if (channel) {
    Frames& frames = frames_scratch_;
    for (bool& m : frames.made) m = false;
    if (!send_message(s, frames, nullptr, e.channel, e.message, e.position, e.term)) return Catchup::kEnded;
  }
  for (const std::string& pattern : sub.patterns) {
    if (!glob_match(pattern, e.channel)) continue;
    Frames& frames = frames_scratch_;
    for (bool& m : frames.made) m = false;
    if (!send_message(s, frames, &pattern, e.channel, e.message, e.position, e.term)) return Catchup::kEnded;
  }
  return Catchup::kDelivered;
}

uint64_t PubSub::catch_up_low_water() const {
  return std::min(kCatchUpLowWaterBytes, options_.subscriber_output_bytes / 2);
}

void PubSub::pump_catching_up() {
  const uint64_t end = ring_base_seq_ + ring_.size();
  for (size_t i = 0; i < catching_up_.size();) {
    ClientSession* s = host_.session(catching_up_[i]);
    HMDB_ASSERT(s && s->subscriber && s->subscriber->catching_up, "a catching-up session is gone or live");
    Subscriber& sub = *s->subscriber;
    if (sub.cursor < ring_base_seq_) {
      // Retention evicted events it had not looked at: whether they were for it is unknown.
      stats_.ended_behind++;
      end_subscription(*s, fmt::format("catching up fell behind the events this node retains (oldest position {})",
                                       format_position(floor_)));
      continue;  // end_subscription took it off catching_up_: the same i is the next one
    }
    bool ended = false;
    for (uint64_t examined = 0; examined < kCatchUpEventsPerTurn && sub.cursor < end; examined++) {
      if (host_.unsent_bytes(*s) + s->replies.held_message_bytes() >= catch_up_low_water()) break;
      const Catchup r = deliver_retained(*s, ring_[sub.cursor - ring_base_seq_]);
      if (r == Catchup::kFull) break;
      if (r == Catchup::kEnded) {
        ended = true;
        break;
      }
      sub.cursor++;
    }
    if (ended) {
      stats_.ended_slow++;
      end_subscription(*s, fmt::format("slow subscriber: more than {} bytes of output unread",
                                       options_.subscriber_output_bytes));
      continue;
    }
    if (sub.cursor == end) {  // it has everything retained: live from the next event on
      sub.catching_up = false;
      catching_up_[i] = catching_up_.back();
      catching_up_.pop_back();
      continue;
    }
    i++;
  }
}

bool PubSub::catching_up_ready() {
  const uint64_t end = ring_base_seq_ + ring_.size();
  for (uint64_t id : catching_up_) {
    ClientSession* s = host_.session(id);
    if (!s) continue;
    const Subscriber& sub = *s->subscriber;
    if (sub.cursor < ring_base_seq_) return true;
    if (sub.cursor < end && host_.unsent_bytes(*s) + s->replies.held_message_bytes() < catch_up_low_water())
      return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Introspection

uint64_t PubSub::lag_entries(const ClientSession& s) const {
  const Subscriber* sub = s.subscriber.get();
  if (!sub || !sub->catching_up) return 0;
  if (sub->cursor < ring_base_seq_) return current_.index - floor_.index;
  if (sub->cursor >= ring_base_seq_ + ring_.size()) return 0;
  return current_.index - ring_[sub->cursor - ring_base_seq_].position.index;
}

uint64_t PubSub::lag_entries_max() const {
  uint64_t lag = 0;
  for (uint64_t id : catching_up_) {
    ClientSession* s = host_.session(id);
    if (s) lag = std::max(lag, lag_entries(*s));
  }
  return lag;
}

}  // namespace hmdb::core
