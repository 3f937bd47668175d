// core/blocking.cc — clients waiting in a blocking command (see blocking.h).
#include "core/blocking.h"

#include "common/assert.h"
#include "hmdb/text.h"

namespace hmdb::core {

std::optional<uint64_t> parse_block_timeout_ms(std::string_view word) {
  uint64_t ms = 0;
  std::string error;
  if (!parse_block_timeout(word, &ms, &error)) return std::nullopt;
  return ms;
}

bool is_null_reply(std::string_view reply) { return reply == "*-1\r\n" || reply == "$-1\r\n" || reply == "_\r\n"; }

BlockedTable::Waiter* BlockedTable::find(uint64_t session) {
  auto it = waiters_.find(session);
  return it == waiters_.end() ? nullptr : &it->second;
}

BlockedTable::Waiter& BlockedTable::add(uint64_t session, uint64_t seq, std::vector<std::string> argv,
                                        std::vector<std::string> keys, uint64_t deadline_ms) {
  HMDB_ASSERT(!waiters_.contains(session), "a session waits in two blocking commands");
  Waiter& w = waiters_[session];
  w.session = session;
  w.seq = seq;
  w.argv = std::move(argv);
  w.keys = std::move(keys);
  w.deadline_ms = deadline_ms;
  for (const std::string& k : w.keys) {
    std::list<uint64_t>& q = by_key_[k];
    w.positions.push_back(q.insert(q.end(), session));
  }
  if (deadline_ms != 0) deadlines_.emplace(deadline_ms, session);
  return w;
}

void BlockedTable::make_ready(Waiter& w) {
  if (w.ready) return;
  w.ready = true;
  ready_.push_back(w.session);
}

void BlockedTable::wake_head(std::string_view key) {
  auto it = by_key_.find(std::string(key));
  if (it == by_key_.end() || it->second.empty()) return;
  Waiter* w = find(it->second.front());
  HMDB_ASSERT(w, "a key's queue names a session that does not wait");
  if (w->in_flight) w->touched = true;
  else make_ready(*w);
}

void BlockedTable::key_changed(std::string_view key) {
  if (waiters_.empty()) return;
  wake_head(key);
}

void BlockedTable::all_changed() {
  for (auto& [key, q] : by_key_) wake_head(key);
}

void BlockedTable::wake(uint64_t session) {
  if (Waiter* w = find(session)) {
    if (w->in_flight) w->touched = true;
    else make_ready(*w);
  }
}

void BlockedTable::attempt_started(Waiter& w) {
  w.in_flight = true;
  w.ready = false;
  w.touched = false;
}

void BlockedTable::parked(Waiter& w) {
  w.in_flight = false;
  if (!w.counted) {
    w.counted = true;
    blocked_clients_++;
  }
  if (w.touched) make_ready(w);
}

void BlockedTable::remove(uint64_t session) {
  auto it = waiters_.find(session);
  if (it == waiters_.end()) return;
  Waiter w = std::move(it->second);
  waiters_.erase(it);
  if (w.counted) blocked_clients_--;
  if (w.deadline_ms != 0) deadlines_.erase({w.deadline_ms, session});
  // A change it was woken for (or that came while it was in flight) may be what the next
  // waiter needs: its attempt took one key's element at most, from one key of its list.
  const bool pass_on = w.in_flight || w.ready || w.touched;
  for (size_t i = 0; i < w.keys.size(); i++) {
    auto q = by_key_.find(w.keys[i]);
    q->second.erase(w.positions[i]);
    if (q->second.empty()) by_key_.erase(q);
    else if (pass_on) wake_head(w.keys[i]);
  }
  // ready_ may still name it: take_ready skips sessions that no longer wait.
}

std::vector<uint64_t> BlockedTable::expire(uint64_t now_ms) {
  std::vector<uint64_t> due;
  for (auto it = deadlines_.begin(); it != deadlines_.end() && it->first <= now_ms;) {
    Waiter* w = find(it->second);
    HMDB_ASSERT(w, "a deadline names a session that does not wait");
    if (w->in_flight) {
      w->expired = true;
      ++it;
      continue;
    }
    due.push_back(it->second);
    ++it;
  }
  return due;
}

std::vector<uint64_t> BlockedTable::take_ready() {
  std::vector<uint64_t> out;
  out.reserve(ready_.size());
  for (uint64_t id : ready_) {
    Waiter* w = find(id);
    if (!w || !w->ready || w->in_flight) continue;  // gone, or listed twice
    w->ready = false;
    out.push_back(id);
  }
  ready_.clear();
  return out;
}

}  // namespace hmdb::core
