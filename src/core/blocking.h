// core/blocking.h — clients waiting in a blocking command (kv's BLPOP, BLMOVE, BZPOPMIN, ...)
// for one of its keys to change, in the order they came, as Redis serves them.
//
// A blocking command is an app write whose KeySpec names a timeout word (KeySpec::timeout):
// the app applies it as its non-blocking form, which answers a null when every key is empty.
// The replica (core/replica.h) turns that null into waiting, here, on the node the client is
// connected to:
//
//   attempt   the command is proposed (leader) or forwarded (a plain client on a follower),
//             like any write; its words and keys are kept here, and the client's later
//             commands wait behind it (Redis blocks the connection)
//   parked    the attempt answered null: the slot waits (ReplyQueue::Kind::kBlocked)
//   ready     an applied entry changed one of its keys (any keyspace event on it, the
//             signal Redis' signalKeyAsReady is): the attempt is made again, on the
//             client's behalf, through the same routing and checks as when it came
//   answered  an attempt answered anything else (the data, an error, -MOVED, "write
//             outcome unknown"); or the timeout passed (null array); or CLIENT UNBLOCK
//
// Only the longest-waiting client of a key is made ready when the key changes; its pop
// changes the key again, which wakes the next, so N waiters on a key that gets one element
// cost one attempt, not N. A waiter that leaves (served, timed out, gone) after a key of its
// changed wakes the next waiter of each of its keys, so a change is never lost behind it. An
// attempt in flight when its key changes is made again if it answers null ("touched"): the
// change may have come after the state it saw. Every node applies every entry, so a client
// waiting on a follower is woken by the same changes as one on the leader.
//
// At most one waiter per session (the session's later commands wait behind it), so
// --max-clients bounds the table; each waiter holds its command's words.
//
// Deterministic bookkeeping: time is the replica's turn time. Thread-safety: none.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "hmdb/state_machine.h"

namespace hmdb::core {

// Redis' timeout of a blocking command: seconds as a float ("0.01", "1e1"), rounded up to
// milliseconds; 0 waits forever. nullopt: not one Redis accepts (negative, not a number,
// out of range); the app's parse answers the error (kv: "ERR timeout is negative", ...).
std::optional<uint64_t> parse_block_timeout_ms(std::string_view word);

// True for a null reply in either protocol (`*-1`, `$-1`, `_`): what a blocking command's
// non-blocking form answers when it finds nothing.
bool is_null_reply(std::string_view reply);

class BlockedTable {
 public:
  enum class Unblock : uint8_t { kNone, kTimeout, kError };  // CLIENT UNBLOCK while in flight
  struct Waiter {
    uint64_t session = 0;
    uint64_t seq = 0;                // its reply slot
    std::vector<std::string> argv;   // the command, made again on its behalf
    std::vector<std::string> keys;   // distinct
    uint64_t deadline_ms = 0;        // steady clock; 0: none
    bool in_flight = true;           // an attempt is proposed or forwarded, not answered
    bool ready = false;              // on the ready list: to be attempted again
    bool touched = false;            // a key changed since the attempt in flight began
    bool expired = false;            // the deadline passed while in flight
    bool counted = false;            // answered null at least once: a blocked client
    Unblock unblock = Unblock::kNone;
    std::vector<std::list<uint64_t>::iterator> positions;  // in each key's queue
  };

  bool empty() const { return waiters_.empty(); }
  size_t size() const { return waiters_.size(); }
  // Waiters whose attempt answered null at least once (INFO's blocked_clients).
  size_t blocked_clients() const { return blocked_clients_; }
  bool has_ready() const { return !ready_.empty(); }

  Waiter* find(uint64_t session);
  std::vector<uint64_t> sessions() const {
    std::vector<uint64_t> out;
    for (const auto& [id, w] : waiters_) out.push_back(id);
    return out;
  }
  // A new waiter, its first attempt in flight, last in the queue of each of its keys.
  Waiter& add(uint64_t session, uint64_t seq, std::vector<std::string> argv, std::vector<std::string> keys,
              uint64_t deadline_ms);
  // An applied entry changed `key` (or every key: a snapshot was installed, a flush).
  void key_changed(std::string_view key);
  void all_changed();
  // Made ready whatever changed (a leader change: it must be routed again).
  void wake(uint64_t session);
  // An attempt of it is proposed or forwarded now.
  void attempt_started(Waiter& w);
  // Its attempt answered null: it waits (again ready at once if touched meanwhile).
  void parked(Waiter& w);
  // It leaves (answered, or its session closed).
  void remove(uint64_t session);
  // Sessions whose deadline passed by now_ms and that are not in flight (to be answered
  // now); those in flight are marked expired (answered when their attempt returns).
  std::vector<uint64_t> expire(uint64_t now_ms);
  // The ready sessions, in the order they became ready; the list is emptied.
  std::vector<uint64_t> take_ready();

 private:
  void wake_head(std::string_view key);
  void make_ready(Waiter& w);

  std::unordered_map<uint64_t, Waiter> waiters_;  // by session
  // Each key's waiters, longest-waiting first (std::list: a waiter leaves from anywhere in O(1)).
  std::unordered_map<std::string, std::list<uint64_t>> by_key_;
  std::vector<uint64_t> ready_;
  std::set<std::pair<uint64_t, uint64_t>> deadlines_;  // (deadline_ms, session)
  size_t blocked_clients_ = 0;
};

}  // namespace hmdb::core
