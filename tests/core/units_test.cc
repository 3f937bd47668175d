// tests/core/units_test.cc — the replica core's small units alone: a session's ReplyQueue
// (sequence numbers, counts, finished replies leaving in order), ReadIndex (a turn's reads
// share one round, are released once their index is applied, and fail together), and the
// one apply path (replies to their sinks in batch order, prefetch hints ahead, malformed and
// newer-schema entries refused).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/apply.h"
#include "core/batch.h"
#include "core/read_index.h"
#include "core/reply_queue.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

using Kind = ReplyQueue::Kind;

TEST(ReplyQueue, AReplyWithNothingPendingGoesStraightOut) {
  ReplyQueue q;
  *q.reply_now() += "+A\r\n";
  EXPECT_TRUE(q.idle());
  EXPECT_EQ(q.out(), "+A\r\n");
  EXPECT_EQ(q.first_seq(), 1u) << "it took sequence number 0";
}

TEST(ReplyQueue, FinishedRepliesWaitForEarlierOnesAndLeaveInOrder) {
  ReplyQueue q;
  std::string_view words[] = {"GET", "k"};
  const uint64_t w = q.push(Kind::kWaitingWrite);
  const uint64_t r = q.push(Kind::kQueryAtApply, Args(words, 2));
  *q.reply_now() += "+C\r\n";
  EXPECT_EQ(q.waiting_writes(), 1u);
  EXPECT_EQ(q.at(r).argv, (std::vector<std::string>{"GET", "k"}));
  EXPECT_FALSE(q.flush_done());
  EXPECT_EQ(q.out(), "");
  q.at(r).reply = "$1\r\nv\r\n";
  q.finish(r, Kind::kQueryAtApply);
  EXPECT_TRUE(q.at(r).argv.empty()) << "a finished slot drops its words";
  EXPECT_FALSE(q.flush_done()) << "the write ahead is not finished";
  q.at(w).reply = "+OK\r\n";
  q.finish(w, Kind::kWaitingWrite);
  EXPECT_EQ(q.waiting_writes(), 0u);
  EXPECT_TRUE(q.flush_done());
  EXPECT_EQ(q.out(), "+OK\r\n$1\r\nv\r\n+C\r\n");
  EXPECT_TRUE(q.idle());
  EXPECT_EQ(q.first_seq(), 3u);
  EXPECT_EQ(q.next_seq(), 3u);
}

// The apply's short way for a pipeline of writes (Replica's SlotSink): the head write's reply
// goes straight to out() and its slot leaves; a message published meanwhile still leaves
// after the replies of every command that has run (here the next write's too), and while it
// waits the next write takes the slot way, behind it.
TEST(ReplyQueue, TheHeadWriteRepliesStraightToOut) {
  ReplyQueue q;
  *q.reply_now() += "+A\r\n";
  const uint64_t w1 = q.push(Kind::kWaitingWrite);
  const uint64_t w2 = q.push(Kind::kWaitingWrite);
  EXPECT_FALSE(q.head_writes_to_out(w2)) << "not the head";
  ASSERT_TRUE(q.head_writes_to_out(w1));
  q.out() += ":1\r\n";
  q.append_message(">m1\r\n");  // published by w1's apply: w2 has run too, so after w2
  q.finish_head_in_out(w1);
  EXPECT_EQ(q.out(), "+A\r\n:1\r\n");
  EXPECT_EQ(q.waiting_writes(), 1u);
  EXPECT_EQ(q.first_seq(), w2);
  EXPECT_FALSE(q.head_writes_to_out(w2)) << "a message waits: the slot way keeps it behind w2";
  q.at(w2).reply = ":2\r\n";
  q.finish(w2, Kind::kWaitingWrite);
  EXPECT_TRUE(q.flush_done());
  EXPECT_EQ(q.out(), "+A\r\n:1\r\n:2\r\n>m1\r\n");
  const uint64_t w3 = q.push(Kind::kWaitingWrite);
  ASSERT_TRUE(q.head_writes_to_out(w3));
  q.out() += ":3\r\n";
  q.append_message(">m2\r\n");  // after w3, the last command that ran
  q.finish_head_in_out(w3);
  EXPECT_EQ(q.out(), "+A\r\n:1\r\n:2\r\n>m1\r\n:3\r\n>m2\r\n") << "m2 follows w3's reply at once";
  EXPECT_TRUE(q.idle());
  EXPECT_EQ(q.waiting_writes(), 0u);
  EXPECT_EQ(q.held_message_bytes(), 0u);
  const uint64_t w4 = q.push(Kind::kWaitingWrite);
  q.push(Kind::kWaitingWrite);
  EXPECT_DEATH(q.finish_head_in_out(w4 + 1), "waiting head") << "only the head write";
}

// The slots are a ring of reused objects: across growths (8, 16, ... slots) and wraps, with
// the queue emptied now and then and refilled past kKeptRingSlotsMax (where an emptied ring
// is given back), every new slot starts clean (no reply, no words) whatever the slot it
// reuses held, at(seq) finds each pending one, and replies leave in order.
TEST(ReplyQueue, ReusedSlotsStartCleanAndKeepTheirOrder) {
  ReplyQueue q;
  std::string_view words[] = {"GET", "k"};
  std::string want;
  uint64_t next = 0;  // the next reply number to write
  for (size_t round = 0; round < 40; round++) {
    const size_t pending = 1 + (round * 37) % (ReplyQueue::kKeptRingSlotsMax + 50);
    std::vector<uint64_t> seqs;
    for (size_t i = 0; i < pending; i++) {
      const Kind kind = i % 3 == 0 ? Kind::kQueryAtApply : Kind::kWaitingWrite;
      const uint64_t seq = q.push(kind, Args(words, 2));
      ASSERT_TRUE(q.at(seq).reply.empty()) << "round " << round << " slot " << i;
      ASSERT_EQ(q.at(seq).argv.size(), kind == Kind::kQueryAtApply ? 2u : 0u) << "round " << round << " slot " << i;
      seqs.push_back(seq);
    }
    // Finish them back to front (each waits for the ones before it), some with long replies.
    for (size_t i = pending; i-- > 0;) {
      ReplyQueue::Slot& slot = q.at(seqs[i]);
      slot.reply = ":" + std::to_string(next + i) + (i % 5 == 0 ? std::string(100, 'x') : "") + "\r\n";
      q.finish(seqs[i], slot.kind);
    }
    for (size_t i = 0; i < pending; i++) want += ":" + std::to_string(next + i) + (i % 5 == 0 ? std::string(100, 'x') : "") + "\r\n";
    next += pending;
    EXPECT_TRUE(q.flush_done());
    EXPECT_TRUE(q.idle());
    if (round % 2 == 1) {  // leave a few pending across rounds, at shifted ring positions
      const uint64_t seq = q.push(Kind::kWaitingWrite);
      q.at(seq).reply = ":" + std::to_string(next++) + "\r\n";
      want += q.at(seq).reply;
      q.finish(seq, Kind::kWaitingWrite);
      EXPECT_TRUE(q.flush_done());
    }
  }
  EXPECT_EQ(q.out(), want);
  EXPECT_EQ(q.waiting_writes(), 0u);
}

TEST(ReplyQueue, CountsFollowEveryKindChange) {
  ReplyQueue q;
  std::string_view words[] = {"SNAPSHOT"};
  const uint64_t a = q.push(Kind::kDeferred, Args(words, 1));
  const uint64_t b = q.push(Kind::kWaitingRead, Args(words, 1));
  EXPECT_EQ(q.deferred(), 1u);
  EXPECT_EQ(q.waiting_reads(), 1u);
  q.set_kind(a, Kind::kWaitingWrite);
  EXPECT_EQ(q.deferred(), 0u);
  EXPECT_EQ(q.waiting_writes(), 1u);
  q.finish(b, Kind::kWaitingRead);
  EXPECT_EQ(q.waiting_reads(), 0u);
  EXPECT_DEATH(q.finish(b, Kind::kWaitingRead), "expected") << "a slot is finished once";
}

TEST(ReadIndex, ATurnsReadsShareOneRoundAndLeaveOnceApplied) {
  ReadIndex r;
  r.queue(ReplySlot{1, 0});
  r.queue(ReplySlot{2, 5});
  std::vector<uint64_t> asked;
  EXPECT_TRUE(r.ask([&](uint64_t ctx) { asked.push_back(ctx); return true; }).empty());
  ASSERT_EQ(asked.size(), 1u) << "one read_index() request for the turn";
  r.queue(ReplySlot{1, 1});
  r.ask([&](uint64_t ctx) { asked.push_back(ctx); return true; });
  EXPECT_EQ(r.pending(), 3u);
  r.answered(asked[1], 9);
  r.answered(asked[0], 7);
  r.answered(12345, 1);  // unknown context: ignored
  EXPECT_TRUE(r.ready(6).empty());
  EXPECT_EQ(r.ready(8), (std::vector<ReplySlot>{{1, 0}, {2, 5}}));
  EXPECT_EQ(r.ready(9), (std::vector<ReplySlot>{{1, 1}}));
  EXPECT_EQ(r.pending(), 0u);
}

TEST(ReadIndex, RefusedAndFailedReadsComeBack) {
  ReadIndex r;
  r.queue(ReplySlot{1, 0});
  EXPECT_EQ(r.ask([](uint64_t) { return false; }), (std::vector<ReplySlot>{{1, 0}}));
  r.queue(ReplySlot{1, 1});
  r.ask([](uint64_t) { return true; });
  r.queue(ReplySlot{1, 2});
  EXPECT_EQ(r.fail_all(), (std::vector<ReplySlot>{{1, 2}, {1, 1}})) << "queued first, then asked";
  EXPECT_EQ(r.pending(), 0u);
}

struct Recorder final : ApplySink {
  std::vector<std::string> replies;
  std::vector<size_t> done;
  ReplyTo reply_to(size_t k) override {
    if (k % 2 == 1) return {};  // nobody waits for the odd ones
    replies.resize(k + 1);
    return ReplyTo{&replies[k], Protocol::kResp2};
  }
  void replied(size_t k) override { done.push_back(k); }
};

TEST(Apply, EachReplyGoesToItsSinkInBatchOrder) {
  sim::RegisterHost app;
  BatchBuilder b(1000);
  std::vector<std::vector<std::string_view>> cmds = {{"SET", "a", "5"}, {"INCR", "a"}, {"INCR", "a"}};
  for (auto& c : cmds) b.add(Args(c.data(), c.size()));
  const std::string payload = b.finish();
  Recorder sink;
  ApplyScratch scratch;
  ApplyResult r = apply_batch(app, payload, 7, sim::RegisterApp::kSchemaVersion, &sink, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kOk);
  EXPECT_EQ(r.commands, 3u);
  EXPECT_EQ(sink.done, (std::vector<size_t>{0, 1, 2}));
  EXPECT_EQ(sink.replies[0], "+OK\r\n");
  EXPECT_EQ(sink.replies[2], ":7\r\n");
}

TEST(Apply, MalformedAndUnsupportedSchemaEntriesAreRefused) {
  sim::RegisterHost app;
  ApplyScratch scratch;
  EXPECT_EQ(apply_batch(app, "\x01garbage", 1, 1, nullptr, scratch).status, ApplyStatus::kMalformed);
  EXPECT_EQ(apply_batch(app, "\x07garbage", 1, 1, nullptr, scratch).status, ApplyStatus::kNewerFormat);
  BatchBuilder b(1);
  std::string_view set[] = {"SET", "a", "1"};
  b.add(Args(set, 3));
  const std::string payload = b.finish();
  EXPECT_EQ(apply_batch(app, payload, 1, sim::RegisterApp::kSchemaVersion + 1, nullptr, scratch).status,
            ApplyStatus::kUnsupportedSchema);
  EXPECT_EQ(apply_batch(app, payload, 1, 0, nullptr, scratch).status, ApplyStatus::kUnsupportedSchema);
  // A batch cut short: the command before the damage is applied, then it stops.
  BatchBuilder two(1);
  std::string_view incr[] = {"INCR", "b"};
  two.add(Args(incr, 2));
  two.add(Args(incr, 2));
  std::string cut = two.finish();
  cut.resize(cut.size() - 2);
  ApplyResult r = apply_batch(app, cut, 2, sim::RegisterApp::kSchemaVersion, nullptr, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kMalformed);
  EXPECT_EQ(r.commands, 1u);
}

// More commands than the ring of decoded commands holds (kApplyRingCommands): each applies
// once, in order, with its own words; a batch cut short or with trailing bytes stops where
// the short walk stopped.
TEST(Apply, ALongBatchGoesThroughTheRingInOrder) {
  constexpr size_t kCommands = 3 * kApplyRingCommands + 2;
  sim::RegisterHost app;
  ApplyScratch scratch;
  std::vector<std::string> keys;
  for (size_t i = 0; i < kCommands; i++) keys.push_back("k" + std::to_string(i % 3));
  BatchBuilder b(1);
  for (size_t i = 0; i < kCommands; i++) {
    std::string_view incr[] = {"INCR", keys[i]};
    b.add(Args(incr, 2));
  }
  const std::string payload = b.finish();
  Recorder sink;
  ApplyResult r = apply_batch(app, payload, 1, sim::RegisterApp::kSchemaVersion, &sink, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kOk);
  EXPECT_EQ(r.commands, kCommands);
  ASSERT_EQ(sink.done.size(), kCommands);
  for (size_t k = 0; k < kCommands; k++) {
    EXPECT_EQ(sink.done[k], k);
    if (k % 2 == 0) {
      EXPECT_EQ(sink.replies[k], ":" + std::to_string(k / 3 + 1) + "\r\n") << k;
    }
  }
  std::string cut = payload;
  cut.resize(cut.size() - 2);
  r = apply_batch(app, cut, 2, sim::RegisterApp::kSchemaVersion, nullptr, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kMalformed);
  EXPECT_EQ(r.commands, kCommands - 1);
  r = apply_batch(app, payload + "x", 3, sim::RegisterApp::kSchemaVersion, nullptr, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kMalformed);
  EXPECT_EQ(r.commands, kCommands - 1) << "trailing bytes: the last command is not applied";
}

}  // namespace
}  // namespace hmdb::core
