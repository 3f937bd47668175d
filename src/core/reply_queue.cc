// core/reply_queue.cc — one client session's replies, in request order (see reply_queue.h).
#include "core/reply_queue.h"

#include "common/assert.h"

namespace hmdb::core {

size_t ReplyQueue::index_of(uint64_t seq) const {
  HMDB_ASSERT(holds(seq), "reply slot %llu out of range [%llu, %llu)", static_cast<unsigned long long>(seq),
              static_cast<unsigned long long>(base_seq_), static_cast<unsigned long long>(next_seq()));
  return static_cast<size_t>(seq - base_seq_);
}

void ReplyQueue::count(Kind kind, int delta) {
  switch (kind) {
    case Kind::kWaitingWrite: waiting_writes_ += delta; break;
    case Kind::kWaitingRead: waiting_reads_ += delta; break;
    case Kind::kDeferred: deferred_ += delta; break;
    case Kind::kQueryAtApply: queries_at_apply_ += delta; break;
    case Kind::kWaitingForward: waiting_forwards_ += delta; break;
    default: break;
  }
}

uint64_t ReplyQueue::push(Kind kind, Args argv) {
  Slot& s = slots_.push_back();
  s.kind = kind;
  if (kind == Kind::kDeferred || kind == Kind::kQueryAtApply || kind == Kind::kWaitingRead)
    s.argv.assign(argv.begin(), argv.end());
  count(kind, +1);
  return next_seq_++;
}

uint64_t ReplyQueue::last_run_seq() const {
  // Only while a command waits to run (rare for a subscriber): a walk over the pending slots.
  for (size_t i = 0; i < slots_.size(); i++) {
    const Kind k = slots_[i].kind;
    if (k == Kind::kDeferred || k == Kind::kQueryAtApply || k == Kind::kWaitingRead) return base_seq_ + i - 1;
  }
  return next_seq() - 1;
}

void ReplyQueue::set_kind(uint64_t seq, Kind kind) {
  Slot& s = at(seq);
  count(s.kind, -1);
  count(kind, +1);
  s.kind = kind;
  if (kind != Kind::kDeferred && kind != Kind::kQueryAtApply && kind != Kind::kWaitingRead && !s.argv.empty()) {
    s.argv.clear();
    s.argv.shrink_to_fit();
  }
}

void ReplyQueue::finish(uint64_t seq, Kind expected) {
  // On the apply path once per write: one lookup, no detour through set_kind.
  Slot& s = at(seq);
  HMDB_ASSERT(s.kind == expected, "reply slot %llu in state %d, expected %d", static_cast<unsigned long long>(seq),
              static_cast<int>(s.kind), static_cast<int>(expected));
  count(expected, -1);
  s.kind = Kind::kDone;
  if (!s.argv.empty()) {
    s.argv.clear();
    s.argv.shrink_to_fit();
  }
}

void ReplyQueue::finish_head_in_out(uint64_t seq) {
  HMDB_ASSERT(seq == base_seq_ && !slots_.empty() && slots_.front().kind == Kind::kWaitingWrite,
              "reply slot %llu is not the waiting head", static_cast<unsigned long long>(seq));
  waiting_writes_--;
  slots_.pop_front();
  base_seq_++;
  while (!held_.empty() && held_.front().after_seq < base_seq_) [[unlikely]] {
    out_.append(held_.front().bytes);
    held_message_bytes_ -= held_.front().bytes.size();
    held_.pop_front();
  }
}

// flush_done with messages held behind replies: each batch leaves right after its slot's
// reply. Apart from flush_done, which runs for every reply: its loop stays what it was before
// messages existed (the interleaving inside it cost ~30 instructions per request).
__attribute__((noinline)) bool ReplyQueue::flush_done_with_messages() {
  bool grew = false;
  while (!slots_.empty() && slots_.front().kind == Kind::kDone) {
    out_.append(slots_.front().reply);
    slots_.pop_front();
    base_seq_++;
    while (!held_.empty() && held_.front().after_seq < base_seq_) {
      out_.append(held_.front().bytes);
      held_message_bytes_ -= held_.front().bytes.size();
      held_.pop_front();
    }
    grew = true;
  }
  return grew;
}

bool ReplyQueue::flush_done() {
  // Nothing finished at the head: the common case, first and with no frame to set up.
  if (slots_.empty() || slots_.front().kind != Kind::kDone) return false;
  if (held_message_bytes_ > 0) [[unlikely]] return flush_done_with_messages();
  bool grew = false;
  while (!slots_.empty() && slots_.front().kind == Kind::kDone) {
    out_.append(slots_.front().reply);
    slots_.pop_front();
    base_seq_++;
    grew = true;
  }
  return grew;
}

}  // namespace hmdb::core
