// tests/storage/log_writer_test.cc — LogWriter: round trip through recovery, overwrites,
// segment roll and compaction, hard state copies, sync errors, and power loss.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "storage/log.h"
#include "test_util.h"

namespace hmdb::storage {
namespace {

using testing::TempDir;

using Batch = std::vector<raft::Entry>;

raft::Entry entry(uint64_t index, uint64_t term, std::string data = "",
                  raft::EntryType type = raft::EntryType::kNormal) {
  if (data.empty()) data = "cmd-" + std::to_string(index) + "-t" + std::to_string(term);
  return raft::Entry{term, index, type, 1, std::move(data)};
}

std::vector<raft::Entry> entries(uint64_t from, uint64_t to, uint64_t term) {
  std::vector<raft::Entry> out;
  for (uint64_t i = from; i <= to; i++) out.push_back(entry(i, term));
  return out;
}

std::unique_ptr<LogWriter> open_writer(Env* env, const std::string& dir, LogOptions options = {}) {
  std::unique_ptr<LogWriter> w;
  Status s = LogWriter::open(env, dir, options, &w);
  EXPECT_TRUE(s) << s.to_string();
  return w;
}

RecoveredLog recover(Env* env, const std::string& dir, raft::Index after = 0) {
  RecoveredLog log;
  Status s = recover_log(env, dir, after, &log);
  EXPECT_TRUE(s) << s.to_string();
  return log;
}

TEST(LogWriter, RoundTripThroughRecovery) {
  TempDir dir;
  Env* env = Env::posix();
  raft::HardState hs{3, 2, 5};
  auto batch = entries(1, 10, 3);
  batch[4].type = raft::EntryType::kNoop;
  batch[5].type = raft::EntryType::kConfChange;
  batch[6].data = std::string("\0\xff binary", 9);
  {
    auto w = open_writer(env, dir.path());
    ASSERT_TRUE(w->append(&hs, batch));
    ASSERT_TRUE(w->sync());
  }
  RecoveredLog log = recover(env, dir.path());
  EXPECT_EQ(log.hard_state, hs);
  EXPECT_EQ(log.entries, batch);
  EXPECT_TRUE(log.torn_tail.empty());
  EXPECT_EQ(log.bytes, testing::file_size(dir.file("log-00000000000000000001.hmlog")));

  RecoveredLog after = recover(env, dir.path(), 7);
  ASSERT_EQ(after.entries.size(), 3u);
  EXPECT_EQ(after.entries.front().index, 8u);
}

TEST(LogWriter, ReopenAppendsToLastSegmentAndKeepsHardState) {
  TempDir dir;
  Env* env = Env::posix();
  raft::HardState hs{2, 1, 0};
  {
    auto w = open_writer(env, dir.path());
    ASSERT_TRUE(w->append(&hs, entries(1, 3, 2)));
    ASSERT_TRUE(w->sync());
  }
  recover(env, dir.path());
  {
    auto w = open_writer(env, dir.path());
    EXPECT_EQ(w->hard_state(), hs);
    ASSERT_TRUE(w->append(nullptr, entries(4, 6, 2)));
    ASSERT_TRUE(w->sync());
  }
  RecoveredLog log = recover(env, dir.path());
  EXPECT_EQ(log.entries, entries(1, 6, 2));
  EXPECT_EQ(log.hard_state, hs);
  EXPECT_EQ(log.segments, 1u);
}

TEST(LogWriter, OverwriteReplacesTheSuffix) {
  TempDir dir;
  Env* env = Env::posix();
  {
    auto w = open_writer(env, dir.path());
    ASSERT_TRUE(w->append(nullptr, entries(1, 10, 1)));
    // A new leader's entry at 6 replaces 6..10 of the old term.
    ASSERT_TRUE(w->append(nullptr, entries(6, 7, 2)));
    ASSERT_TRUE(w->append(nullptr, entries(8, 8, 3)));
    ASSERT_TRUE(w->sync());
  }
  RecoveredLog log = recover(env, dir.path());
  auto want = entries(1, 5, 1);
  for (auto& e : entries(6, 7, 2)) want.push_back(e);
  want.push_back(entry(8, 3));
  EXPECT_EQ(log.entries, want);
}

TEST(LogWriter, OverwriteMayLowerTheTermAtAnIndexButNotBelowItsPredecessor) {
  TempDir dir;
  Env* env = Env::posix();
  {
    auto w = open_writer(env, dir.path());
    ASSERT_TRUE(w->append(nullptr, entries(1, 3, 1)));
    ASSERT_TRUE(w->append(nullptr, Batch{entry(4, 5)}));
    ASSERT_TRUE(w->append(nullptr, Batch{entry(4, 2)}));  // legal: Raft Figure 7-like history
    ASSERT_TRUE(w->sync());
  }
  EXPECT_EQ(recover(env, dir.path()).entries.back(), entry(4, 2));
  {
    auto w = open_writer(env, dir.path());
    ASSERT_TRUE(w->append(nullptr, Batch{entry(5, 1)}));  // term below its predecessor's: impossible
    ASSERT_TRUE(w->sync());
  }
  RecoveredLog log;
  Status s = recover_log(env, dir.path(), 0, &log);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("term goes backwards"), std::string::npos) << s.message();
}

TEST(LogWriter, RollsSegmentsEachStartingWithTheHardState) {
  TempDir dir;
  Env* env = Env::posix();
  LogOptions options{.segment_bytes = 1024};
  raft::HardState hs{7, 3, 0};
  std::vector<raft::Entry> all;
  {
    auto w = open_writer(env, dir.path(), options);
    ASSERT_TRUE(w->append(&hs, Batch{}));
    for (uint64_t i = 1; i <= 200; i++) {
      all.push_back(entry(i, 7));
      ASSERT_TRUE(w->append(nullptr, Batch{all.back()}));
    }
    ASSERT_TRUE(w->sync());
    EXPECT_GT(w->segment_count(), 5u);
  }
  std::vector<std::string> paths;
  ASSERT_TRUE(list_segments(env, dir.path(), &paths));
  ASSERT_GT(paths.size(), 5u);
  for (const auto& p : paths) {
    std::string data;
    ASSERT_TRUE(env->read_file(p, &data));
    log_format::RecordView r;
    ASSERT_EQ(log_format::decode_record(std::string_view(data).substr(log_format::kSegmentHeaderSize), &r),
              log_format::RecordCheck::kOk);
    ASSERT_EQ(r.type, 4) << p << " does not start with a hard state";
    EXPECT_EQ(log_format::decode_hard_state(r), hs);
  }
  RecoveredLog log = recover(env, dir.path());
  EXPECT_EQ(log.entries, all);
  EXPECT_EQ(log.segments, paths.size());
}

// The disk thread's round: deferred appends are encoded only, and written in order with one
// write(2) by flush() — the injected fault lets exactly one write through, so a writer that
// wrote each append fails the second. A roll in the middle writes what the old segment got
// first; recovery reads everything back in order, each segment starting with the hard state.
// (Planted bug, seen failing: append ignoring defer — the second deferred append's write is
// refused.)
TEST(LogWriter, DeferredAppendsAreWrittenTogetherInOrder) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  const raft::HardState hs1{2, 1, 0}, hs2{2, 1, 3}, hs3{3, 2, 3};
  auto w = open_writer(&env, dir.path(), LogOptions{.segment_bytes = 4096, .preallocate_bytes = 0});
  env.fail_write_after(1);
  ASSERT_TRUE(w->append(&hs1, entries(1, 3, 2), /*defer=*/true));
  ASSERT_TRUE(w->append(&hs2, Batch{}, /*defer=*/true));
  ASSERT_TRUE(w->append(nullptr, entries(4, 5, 2), /*defer=*/true));
  EXPECT_EQ(w->bytes_written_total(), 0u) << "a deferred append wrote";
  ASSERT_TRUE(w->flush());
  const uint64_t written = w->bytes_written_total();
  EXPECT_GT(written, 0u);
  ASSERT_TRUE(w->flush());  // nothing left: no write (the fault would refuse one)
  EXPECT_EQ(w->bytes_written_total(), written);
  env.clear_faults();
  // Past segment_bytes: the next append with entries rolls, after writing what is deferred.
  ASSERT_TRUE(w->append(nullptr, Batch{entry(6, 2, std::string(5000, 'x'))}, /*defer=*/true));
  ASSERT_TRUE(w->append(&hs3, Batch{entry(7, 3)}, /*defer=*/true));
  ASSERT_TRUE(w->append(nullptr, entries(8, 9, 3), /*defer=*/true));
  ASSERT_TRUE(w->sync());  // writes what is deferred, then syncs
  EXPECT_EQ(w->segment_count(), 2u);
  w.reset();
  ASSERT_TRUE(env.drop_unsynced());
  RecoveredLog log = recover(&env, dir.path());
  auto want = entries(1, 5, 2);
  want.push_back(entry(6, 2, std::string(5000, 'x')));
  for (auto& e : entries(7, 9, 3)) want.push_back(e);
  EXPECT_EQ(log.entries, want);
  EXPECT_EQ(log.hard_state, hs3);
  EXPECT_EQ(log.segments, 2u);
  EXPECT_TRUE(log.torn_tail.empty());
}

TEST(LogWriter, SyncAfterARollSyncsTheOldSegmentAndTheDirectory) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  LogOptions options{.segment_bytes = 300};
  std::vector<raft::Entry> all;
  {
    auto w = open_writer(&env, dir.path(), options);
    uint64_t dir_syncs = env.dir_sync_count();
    for (uint64_t i = 1; i <= 40; i++) {
      all.push_back(entry(i, 1));
      ASSERT_TRUE(w->append(nullptr, Batch{all.back()}));
    }
    ASSERT_GT(w->segment_count(), 3u);
    ASSERT_TRUE(w->sync());
    EXPECT_EQ(env.dir_sync_count(), dir_syncs + 1) << "one directory sync for all the new names";
    ASSERT_TRUE(w->sync());
    EXPECT_EQ(env.dir_sync_count(), dir_syncs + 1) << "no new names, no directory sync";
  }
  ASSERT_TRUE(env.drop_unsynced());
  EXPECT_EQ(recover(&env, dir.path()).entries, all);
}

TEST(LogWriter, CompactDeletesCoveredSegmentsButKeepsHardStateAndTail) {
  TempDir dir;
  Env* env = Env::posix();
  LogOptions options{.segment_bytes = 1024};
  raft::HardState hs{4, 1, 100};
  auto w = open_writer(env, dir.path(), options);
  ASSERT_TRUE(w->append(&hs, Batch{}));
  for (uint64_t i = 1; i <= 200; i++) ASSERT_TRUE(w->append(nullptr, Batch{entry(i, 4)}));
  size_t before = w->segment_count();
  uint64_t bytes_before = w->log_bytes();
  ASSERT_TRUE(w->compact(150));
  EXPECT_LT(w->segment_count(), before);
  EXPECT_LT(w->log_bytes(), bytes_before);
  RecoveredLog log = recover(env, dir.path(), 150);
  EXPECT_EQ(log.hard_state, hs);
  EXPECT_EQ(log.entries, entries(151, 200, 4));

  // Compacting past the end never removes the active segment.
  ASSERT_TRUE(w->compact(1000));
  EXPECT_EQ(w->segment_count(), 1u);
  w.reset();
  log = recover(env, dir.path(), 200);
  EXPECT_EQ(log.hard_state, hs);
  EXPECT_TRUE(log.entries.empty());
}

TEST(LogWriter, CompactAfterReopenScansOldSegments) {
  TempDir dir;
  Env* env = Env::posix();
  LogOptions options{.segment_bytes = 512};
  {
    auto w = open_writer(env, dir.path(), options);
    for (uint64_t i = 1; i <= 100; i++) ASSERT_TRUE(w->append(nullptr, Batch{entry(i, 1)}));
    ASSERT_TRUE(w->sync());
  }
  recover(env, dir.path());
  auto w = open_writer(env, dir.path(), options);
  size_t before = w->segment_count();
  ASSERT_TRUE(w->compact(50));
  EXPECT_LT(w->segment_count(), before);
  w.reset();
  EXPECT_EQ(recover(env, dir.path(), 50).entries, entries(51, 100, 1));
}

TEST(LogWriter, GapCoveredBySnapshotIsAccepted) {
  // A follower that installed a snapshot at 500 continues its log at 501.
  TempDir dir;
  Env* env = Env::posix();
  {
    auto w = open_writer(env, dir.path());
    ASSERT_TRUE(w->append(nullptr, entries(1, 10, 1)));
    ASSERT_TRUE(w->append(nullptr, entries(501, 505, 2)));
    ASSERT_TRUE(w->sync());
  }
  EXPECT_EQ(recover(env, dir.path(), 500).entries, entries(501, 505, 2));
  RecoveredLog log;
  Status s = recover_log(env, dir.path(), 0, &log);
  EXPECT_TRUE(s.is_corruption());
  EXPECT_NE(s.message().find("gap"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("log-00000000000000000001.hmlog"), std::string::npos) << s.message();
}

TEST(LogWriter, InvalidEntriesAreRejectedWithoutWriting) {
  TempDir dir;
  Env* env = Env::posix();
  auto w = open_writer(env, dir.path());
  EXPECT_EQ(w->append(nullptr, Batch{entry(0, 1)}).code(), Status::Code::kInvalidArgument);
  std::vector<raft::Entry> holes{entry(1, 1), entry(3, 1)};
  EXPECT_EQ(w->append(nullptr, holes).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(w->bytes_written_total(), 0u);
  ASSERT_TRUE(w->append(nullptr, Batch{entry(1, 1)}));  // still usable
}

TEST(LogWriter, SyncEioIsReturnedAndSticky) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  auto w = open_writer(&env, dir.path());
  ASSERT_TRUE(w->append(nullptr, entries(1, 3, 1)));
  env.fail_sync_after(0);
  Status s = w->sync();
  EXPECT_TRUE(s.is_io_error()) << s.to_string();
  env.clear_faults();
  // Never retry after a failed fsync: the writer stays failed.
  EXPECT_TRUE(w->sync().is_io_error());
  EXPECT_TRUE(w->append(nullptr, entries(4, 4, 1)).is_io_error());
}

TEST(LogWriter, WriteEioAndFullDiskAreSticky) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  {
    auto w = open_writer(&env, dir.path());
    env.fail_write_after(1);
    ASSERT_TRUE(w->append(nullptr, entries(1, 3, 1)));
    EXPECT_TRUE(w->append(nullptr, entries(4, 6, 1)).is_io_error());
    env.clear_faults();
    EXPECT_TRUE(w->sync().is_io_error());
  }
  TempDir dir2;
  auto w = open_writer(&env, dir2.path());
  env.set_space_left(200);
  Status s;
  uint64_t i = 1;
  while ((s = w->append(nullptr, Batch{entry(i, 1)}))) i++;
  EXPECT_NE(s.message().find("No space left"), std::string::npos) << s.message();
  env.clear_faults();
  EXPECT_FALSE(w->sync());
  w.reset();
  // What reached the disk is a sound prefix plus a torn record, which recovery cuts.
  RecoveredLog log = recover(&env, dir2.path());
  EXPECT_EQ(log.entries, entries(1, i - 1, 1));
  EXPECT_FALSE(log.torn_tail.empty());
}

std::string read_file(const std::string& path) {
  std::string data;
  EXPECT_TRUE(Env::posix()->read_file(path, &data));
  return data;
}

bool all_zeros(std::string_view bytes) { return bytes.find_first_not_of('\0') == std::string_view::npos; }

// The active segment holds zeros after its records (LogOptions::preallocate_bytes): later
// appends overwrite them without making the file longer; recovery reads the records, does
// not call the zeros a torn tail, and cuts them so that the writer goes on after the records.
TEST(LogWriter, PreallocatesZerosAheadAndRecoveryCutsThem) {
  TempDir dir;
  LogOptions options{.preallocate_bytes = 4096};
  auto w = open_writer(Env::posix(), dir.path(), options);
  ASSERT_TRUE(w->append(nullptr, entries(1, 3, 1)));
  ASSERT_TRUE(w->sync());
  std::vector<std::string> paths;
  ASSERT_TRUE(list_segments(Env::posix(), dir.path(), &paths));
  ASSERT_EQ(paths.size(), 1u);
  uint64_t first_end = w->log_bytes();
  uint64_t on_disk = testing::file_size(paths[0]);
  EXPECT_EQ(on_disk, first_end + 4096);
  EXPECT_TRUE(all_zeros(std::string_view(read_file(paths[0])).substr(first_end)));
  EXPECT_EQ(w->preallocated_bytes_total(), on_disk) << "the new file was zeros from its start";

  ASSERT_TRUE(w->append(nullptr, entries(4, 5, 1)));
  ASSERT_TRUE(w->sync());
  uint64_t records_end = w->log_bytes();
  EXPECT_GT(records_end, first_end);
  EXPECT_EQ(testing::file_size(paths[0]), on_disk) << "an append inside the zeros must not grow the file";
  w.reset();

  RecoveredLog log = recover(Env::posix(), dir.path());
  EXPECT_EQ(log.entries, entries(1, 5, 1));
  EXPECT_TRUE(log.torn_tail.empty()) << log.torn_tail;
  EXPECT_EQ(log.zero_tail_bytes, on_disk - records_end);
  EXPECT_EQ(log.bytes, records_end);
  EXPECT_EQ(testing::file_size(paths[0]), records_end) << "recovery cuts the zeros";

  w = open_writer(Env::posix(), dir.path(), options);
  ASSERT_TRUE(w->append(nullptr, entries(6, 6, 1)));
  ASSERT_TRUE(w->sync());
  EXPECT_GT(testing::file_size(paths[0]), w->log_bytes()) << "preallocated again";
  w.reset();
  EXPECT_EQ(recover(Env::posix(), dir.path()).entries, entries(1, 6, 1));
}

// Opening the writer on a last segment that still ends in zeros (recovery skipped) is
// refused: its appends would land after the zeros, where no reader finds them.
TEST(LogWriter, OpenRefusesZerosThatRecoveryDidNotCut) {
  TempDir dir;
  auto w = open_writer(Env::posix(), dir.path(), LogOptions{.preallocate_bytes = 4096});
  ASSERT_TRUE(w->append(nullptr, entries(1, 2, 1)));
  ASSERT_TRUE(w->sync());
  w.reset();
  std::unique_ptr<LogWriter> again;
  Status s = LogWriter::open(Env::posix(), dir.path(), LogOptions{}, &again);
  EXPECT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("run recovery"), std::string::npos) << s.message();
}

// Only the last segment may end in zeros: a rolled segment is cut back to its records.
TEST(LogWriter, ARolledSegmentEndsAtItsLastRecord) {
  TempDir dir;
  LogOptions options{.segment_bytes = 1024, .preallocate_bytes = 300};
  auto w = open_writer(Env::posix(), dir.path(), options);
  uint64_t next = 1;
  while (w->segment_count() < 4) {
    ASSERT_TRUE(w->append(nullptr, entries(next, next + 1, 1)));
    next += 2;
  }
  ASSERT_TRUE(w->sync());
  std::vector<std::string> paths;
  ASSERT_TRUE(list_segments(Env::posix(), dir.path(), &paths));
  ASSERT_EQ(paths.size(), 4u);
  for (size_t i = 0; i + 1 < paths.size(); i++) {
    std::string data = read_file(paths[i]);
    SegmentScan scan = scan_segment(data, false, nullptr);
    EXPECT_EQ(scan.end, SegmentScan::End::kClean) << paths[i] << ": " << scan.problem;
    EXPECT_EQ(scan.zero_tail_bytes, 0u) << paths[i];
    EXPECT_EQ(scan.good_bytes, data.size()) << paths[i];
  }
  EXPECT_GT(w->preallocated_bytes_total(), 0u);
  w.reset();
  EXPECT_EQ(recover(Env::posix(), dir.path()).entries, entries(1, next - 1, 1));
}

// A power loss after the zeros were synced: the appends that were not synced are zeros
// again (the zeros stay), which recovery reads as the clean end of the log.
TEST(LogWriter, PowerLossTurnsUnsyncedAppendsInSyncedZerosBackToZeros) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  auto w = open_writer(&env, dir.path(), LogOptions{.preallocate_bytes = 4096});
  ASSERT_TRUE(w->append(nullptr, entries(1, 3, 1)));
  ASSERT_TRUE(w->sync());
  uint64_t synced_end = w->log_bytes();
  ASSERT_TRUE(w->append(nullptr, entries(4, 5, 1)));  // inside the synced zeros, never synced
  w.reset();
  ASSERT_TRUE(env.drop_unsynced());
  std::vector<std::string> paths;
  ASSERT_TRUE(list_segments(&env, dir.path(), &paths));
  std::string data = read_file(paths[0]);
  EXPECT_EQ(data.size(), synced_end + 4096);
  EXPECT_TRUE(all_zeros(std::string_view(data).substr(synced_end)));
  RecoveredLog log = recover(&env, dir.path());
  EXPECT_EQ(log.entries, entries(1, 3, 1));
  EXPECT_TRUE(log.torn_tail.empty()) << log.torn_tail;
  EXPECT_EQ(log.zero_tail_bytes, 4096u);
}

// A full disk stops the zeros (given back, tried once per segment), not the appends: the
// records go on into the space that is left.
TEST(LogWriter, AFullDiskStopsThePreallocationNotTheAppends) {
  TempDir dir;
  FaultInjectionEnv env(Env::posix());
  auto w = open_writer(&env, dir.path());  // 1 MiB of zeros ahead by default
  env.set_space_left(2000);
  Status s;
  uint64_t i = 1;
  while ((s = w->append(nullptr, Batch{entry(i, 1)}))) i++;
  EXPECT_NE(s.message().find("No space left"), std::string::npos) << s.message();
  EXPECT_GT(i, 20u) << "the appends used the space the zeros did not take";
  EXPECT_EQ(w->preallocate_failures(), 1u);
  EXPECT_EQ(w->preallocated_bytes_total(), 0u);
  w.reset();
  RecoveredLog log = recover(&env, dir.path());
  EXPECT_EQ(log.entries, entries(1, i - 1, 1));
}

// Power loss in the middle of random appends, syncs and hard-state changes. Without torn
// writes exactly the synced prefix survives; with them (part of the unsynced bytes reach
// the disk) the synced prefix survives plus possibly some complete later entries, and the
// torn record is cut.
void power_loss_rounds(bool torn) {
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 20; round++) {
    std::vector<raft::Entry> appended;
    TempDir dir;
    FaultInjectionEnv env(Env::posix());
    // Preallocation off in a third of the rounds, else a few hundred bytes ahead (the
    // zeros then end many appends and survive power losses).
    LogOptions options{.segment_bytes = 256 + rng() % 2048,
                       .preallocate_bytes = rng() % 3 == 0 ? 0 : 1 + rng() % 600};
    std::vector<raft::Entry> synced;
    raft::HardState synced_hs;
    {
      auto w = open_writer(&env, dir.path(), options);
      raft::HardState hs;
      uint64_t next = 1;
      int steps = 1 + static_cast<int>(rng() % 40);
      for (int step = 0; step < steps; step++) {
        if (rng() % 4 == 0) {
          hs.term++;
          hs.vote = rng() % 3;
          ASSERT_TRUE(w->append(&hs, Batch{}));
        }
        auto batch = entries(next, next + rng() % 5, hs.term);
        next += batch.size();
        ASSERT_TRUE(w->append(nullptr, batch));
        appended.insert(appended.end(), batch.begin(), batch.end());
        if (rng() % 3 == 0) {
          ASSERT_TRUE(w->sync());
          synced = appended;
          synced_hs = hs;
        }
      }
    }
    ASSERT_TRUE(env.drop_unsynced(torn ? rng() | 1 : 0));
    RecoveredLog log;
    Status s = recover_log(&env, dir.path(), 0, &log);
    ASSERT_TRUE(s) << "round " << round << ": " << s.to_string();
    if (torn) {
      ASSERT_GE(log.entries.size(), synced.size()) << "round " << round;
      ASSERT_LE(log.entries.size(), appended.size()) << "round " << round;
      EXPECT_TRUE(std::equal(log.entries.begin(), log.entries.end(), appended.begin())) << "round " << round;
      EXPECT_GE(log.hard_state.term, synced_hs.term) << "round " << round;
    } else {
      EXPECT_EQ(log.entries, synced) << "round " << round;
      EXPECT_EQ(log.hard_state, synced_hs) << "round " << round;
    }
    // And the log can be written again after the repair.
    auto w = open_writer(&env, dir.path(), options);
    uint64_t next = log.entries.size() + 1;
    ASSERT_TRUE(w->append(nullptr, Batch{entry(next, log.hard_state.term)}));
    ASSERT_TRUE(w->sync());
    w.reset();
    RecoveredLog again;
    ASSERT_TRUE(recover_log(&env, dir.path(), 0, &again));
    EXPECT_EQ(again.entries.size(), next);
  }
}

TEST(LogWriter, PowerLossKeepsExactlyWhatWasSynced) { power_loss_rounds(false); }
TEST(LogWriter, PowerLossWithTornWritesKeepsTheSyncedPrefixAndCutsTheTornRecord) { power_loss_rounds(true); }

}  // namespace
}  // namespace hmdb::storage
