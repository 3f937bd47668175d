// core/reply_queue.h — one client session's replies, leaving in request order.
//
// Every command a session sends takes the next sequence number and, unless its reply is
// written at once with nothing ahead of it, one slot here. A slot is in one of these states:
//
//   kWaitingWrite     a write (or a membership change) waits for its log entry to be applied;
//                     the apply fills the reply in place (routed by sequence number)
//   kQueryAtApply     a query behind a waiting write of the same session: it runs the
//                     moment that write is applied, so it sees exactly the session's earlier
//                     writes (the command's words are kept in the slot)
//   kWaitingRead      a linearizable read waiting for its read index (and the apply up to it)
//   kWaitingSnapshot  SNAPSHOT/SAVE waiting for the snapshot to be durable
//   kWaitingForward   a command forwarded to the leader, waiting for the leader's reply
//                     (core/forwarder.h); filled by the host through Replica::finish
//   kDeferred         a command held back behind something (a snapshot command or a barrier
//                     behind a write, a read behind a write, anything behind a held command);
//                     its words are kept until it can be routed again
//   kBlocked          a blocking command (BLPOP) whose attempt found nothing, waiting for one
//                     of its keys to change (core/blocking.h keeps its words); the session's
//                     later commands wait behind it (ClientSession::blocking)
//   kProducing        a query whose reply is made in slices across loop turns (a big KEYS:
//                     hmdb::ReplyProducer); the Replica writes each slice straight to out()
//                     once the slot is at the head, and finishes the slot with the last one.
//                     Later replies of the session wait behind it as behind any slot
//   kDone             a finished reply that may not overtake an earlier one
//
// The queue owns the sequence numbers (a slot's seq is its position since the session
// began) and the counts of waiting writes, reads and held commands, so no caller keeps them
// by hand. Finished replies at the head move to out(), the bytes the session's socket sends.
//
// Pure bookkeeping: no I/O. Thread-safety: none (the loop thread).
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/state_machine.h"

namespace hmdb::core {

class ReplyQueue {
 public:
  enum class Kind : uint8_t {
    kWaitingWrite,
    kQueryAtApply,
    kWaitingRead,
    kWaitingSnapshot,
    kWaitingForward,
    kDeferred,
    kBlocked,
    kProducing,
    kDone,
  };
  struct Slot {
    Kind kind = Kind::kDone;
    std::string reply;              // kDone: the RESP reply; kWaitingWrite: filled by apply
    std::vector<std::string> argv;  // kDeferred, kQueryAtApply, kWaitingRead: the command
  };

  // True when no slot is pending: a reply written now may go straight to out().
  bool idle() const { return slots_.empty(); }
  // The finished replies, in order, not yet handed to the socket.
  std::string& out() { return out_; }
  const std::string& out() const { return out_; }

  // The next command's reply, finished now: out() if nothing is pending, else a new kDone
  // slot. Returns where to write it.
  std::string* reply_now() {
    if (slots_.empty()) {
      base_seq_++;  // its sequence number is taken and done
      next_seq_++;
      return &out_;
    }
    return &slots_[index_of(push(Kind::kDone))].reply;
  }
  // The reply reply_now() just put into out() (nothing was pending) is not complete after
  // all (its query hands the rest to a producer): it becomes the pending slot `kind`, at the
  // head, its first bytes already in out(). Returns its sequence number.
  uint64_t reopen_now(Kind kind) {
    base_seq_--;
    next_seq_--;  // push() takes the same number again
    return push(kind);
  }

  // A message that is no reply (a pub/sub message, core/pubsub.h): it leaves after the replies
  // of every command that has run, as Redis sends it: into out() when nothing is pending, else
  // right before the reply of the first command that has not run yet (deferred, a query or
  // local shell command waiting for its write, a read waiting for its index). Such a command
  // (an UNSUBSCRIBE or a RESET behind a write) did not change the subscriptions yet: the
  // message was sent under the old ones, so it leaves before its reply. A write waiting for
  // its entry has been routed: the message of a PUBLISH leaves after that PUBLISH's reply.
  void append_message(std::string_view bytes) {
    // A live subscriber's usual case, once per message per subscriber: nothing pending.
    if (slots_.empty() && held_.empty()) [[likely]] {
      out_.append(bytes);
      return;
    }
    uint64_t after = next_seq() - 1;
    if (deferred_ + waiting_reads_ + queries_at_apply_ > 0) [[unlikely]] after = last_run_seq();
    if (!held_.empty()) after = std::max(after, held_.back().after_seq);  // messages keep their order
    if (after + 1 == base_seq_) {  // before every pending slot
      out_.append(bytes);
      return;
    }
    if (held_.empty() || held_.back().after_seq != after) held_.push_back(HeldMessages{after, {}});
    held_.back().bytes.append(bytes);
    held_message_bytes_ += bytes.size();
  }
  // Bytes of messages waiting behind pending replies (not yet in out()).
  uint64_t held_message_bytes() const { return held_message_bytes_; }

  // Bounds of the reused slots (SlotRing, below): the reply block a slot keeps for its next
  // use, and the most slots an emptied ring keeps; the first ring's slots (a power of two).
  static constexpr size_t kKeptReplyBytesMax = 64;
  static constexpr size_t kKeptRingSlotsMax = 256;
  static constexpr size_t kRingSlotsMin = 8;

  // A new slot for the next command. `argv` is kept for the kinds that run it later.
  uint64_t push(Kind kind, Args argv = {});

  Slot& at(uint64_t seq) { return slots_[index_of(seq)]; }
  // The slot for seq, or nullptr if it is not pending (already out, or not yet sent).
  Slot* find(uint64_t seq) { return holds(seq) ? &slots_[static_cast<size_t>(seq - base_seq_)] : nullptr; }
  const Slot& at(uint64_t seq) const { return slots_[index_of(seq)]; }
  bool holds(uint64_t seq) const { return seq >= base_seq_ && seq < next_seq_; }
  // Moves slot seq to `kind`, keeping the counts (a slot leaving kDeferred, kQueryAtApply or
  // kWaitingRead drops its words unless it keeps them).
  void set_kind(uint64_t seq, Kind kind);
  // Slot seq, which must be in state `expected`, is finished: kDone (its reply already
  // written into at(seq).reply).
  void finish(uint64_t seq, Kind expected);

  // The apply answers write seq now. True when its reply may be written straight to out():
  // seq is the head slot, a waiting write, and no message waits behind earlier replies.
  // Then nothing can come between it and out()'s end, and finish_head_in_out() ends it
  // without the slot's own copy of the reply and flush_done's later move.
  bool head_writes_to_out(uint64_t seq) const {
    return seq == base_seq_ && held_.empty() && !slots_.empty() && slots_.front().kind == Kind::kWaitingWrite;
  }
  // Write seq, the head, whose reply went straight to out() (head_writes_to_out), is done:
  // its slot leaves, and messages held behind it (published during its apply) follow it.
  void finish_head_in_out(uint64_t seq);

  // Moves the finished replies at the head to out(). Returns true if out() grew.
  bool flush_done();

  // Sequence numbers: of the first pending slot, and of the next command.
  uint64_t first_seq() const { return base_seq_; }
  uint64_t next_seq() const { return next_seq_; }
  // (Kept apart from slots_.size(), which is a few multiplications on a deque: the shell asks
  // for it several times per command.)
  size_t size() const { return static_cast<size_t>(next_seq_ - base_seq_); }
  uint64_t waiting_writes() const { return waiting_writes_; }
  uint64_t waiting_reads() const { return waiting_reads_; }
  uint64_t deferred() const { return deferred_; }
  uint64_t waiting_forwards() const { return waiting_forwards_; }

 private:
  size_t index_of(uint64_t seq) const;
  bool flush_done_with_messages();
  // The sequence number of the slot before the first one whose command has not run yet.
  uint64_t last_run_seq() const;
  void count(Kind kind, int delta);

  // Messages behind pending replies, each batch to leave right after slot after_seq's reply.
  // Kept apart from the slots so that a slot (one per command) stays as small as it was.
  struct HeldMessages {
    uint64_t after_seq = 0;
    std::string bytes;
  };

  // The pending slots, oldest first: a ring of Slot objects that are reused, not made and
  // destroyed per command. (A std::deque<Slot> built, moved and destroyed a Slot per push and
  // allocated and freed a 512-byte block per 8 slots: ~145 instructions per command at
  // pipeline 32, callgrind.) Invariant: a slot outside [head, head + size) is clean: kDone,
  // an empty reply, no words. Bounds: a slot leaving keeps its reply's block only up to
  // kKeptReplyBytesMax, and the ring is given back when it empties holding more than
  // kKeptRingSlotsMax slots, so an idle session keeps at most kKeptRingSlotsMax *
  // (sizeof(Slot) + kKeptReplyBytesMax) bytes here (32 KiB).
  class SlotRing {
   public:

    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    Slot& operator[](size_t i) { return slots_[(head_ + i) & (slots_.size() - 1)]; }
    const Slot& operator[](size_t i) const { return slots_[(head_ + i) & (slots_.size() - 1)]; }
    Slot& front() { return slots_[head_]; }
    const Slot& front() const { return slots_[head_]; }
    // A clean slot at the back.
    Slot& push_back() {
      if (size_ == slots_.size()) grow();
      Slot& s = slots_[(head_ + size_) & (slots_.size() - 1)];
      size_++;
      return s;
    }
    // The front slot leaves, cleaned for reuse. REQUIRES: !empty().
    void pop_front() {
      Slot& s = slots_[head_];
      s.kind = Kind::kDone;
      if (s.reply.capacity() > kKeptReplyBytesMax) [[unlikely]] std::string().swap(s.reply);
      else s.reply.clear();
      if (!s.argv.empty()) [[unlikely]] std::vector<std::string>().swap(s.argv);
      head_ = (head_ + 1) & (slots_.size() - 1);
      size_--;
      if (size_ == 0 && slots_.size() > kKeptRingSlotsMax) [[unlikely]] {
        std::vector<Slot>().swap(slots_);
        head_ = 0;
      }
    }

   private:
    void grow() {
      std::vector<Slot> bigger(std::max(kRingSlotsMin, slots_.size() * 2));
      for (size_t i = 0; i < size_; i++) bigger[i] = std::move((*this)[i]);
      slots_.swap(bigger);
      head_ = 0;
    }
    std::vector<Slot> slots_;  // empty, or a power of two in size
    size_t head_ = 0;          // index of the first pending slot
    size_t size_ = 0;          // pending slots
  };
  static_assert((kRingSlotsMin & (kRingSlotsMin - 1)) == 0, "rings are powers of two");

  SlotRing slots_;
  std::deque<HeldMessages> held_;
  uint64_t base_seq_ = 0;  // sequence number of slots_.front()
  uint64_t next_seq_ = 0;  // base_seq_ + slots_.size()
  uint64_t waiting_writes_ = 0;
  uint64_t waiting_reads_ = 0;
  uint64_t deferred_ = 0;
  uint64_t queries_at_apply_ = 0;
  uint64_t waiting_forwards_ = 0;
  uint64_t held_message_bytes_ = 0;
  std::string out_;
};

}  // namespace hmdb::core
