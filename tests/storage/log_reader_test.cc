// tests/storage/log_reader_test.cc — recovery's torn-tail vs corruption rules: a record cut
// at every byte offset is a torn tail; a flipped bit with a valid record after it, in a
// non-last segment, or in a header is corruption naming the file and the offset.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "storage/log.h"
#include "test_util.h"

namespace hmdb::storage {
namespace {

using testing::TempDir;
namespace lf = log_format;

using Batch = std::vector<raft::Entry>;

raft::Entry entry(uint64_t index, uint64_t term = 1) {
  return raft::Entry{term, index, raft::EntryType::kNormal, 1, "payload-" + std::to_string(index)};
}

std::vector<raft::Entry> entries(uint64_t from, uint64_t to) {
  std::vector<raft::Entry> out;
  for (uint64_t i = from; i <= to; i++) out.push_back(entry(i));
  return out;
}

// Writes entries from..to (one append each) into dir; returns the paths of the segments.
// Without preallocation: these tests cut and damage files at record offsets, so a file
// must end at its last record (the zeros of preallocation have tests of their own).
std::vector<std::string> write_log(const std::string& dir, uint64_t from, uint64_t to, uint64_t segment_bytes = 64 << 20) {
  std::unique_ptr<LogWriter> w;
  EXPECT_TRUE(
      LogWriter::open(Env::posix(), dir, LogOptions{.segment_bytes = segment_bytes, .preallocate_bytes = 0}, &w));
  raft::HardState hs{1, 1, 0};
  EXPECT_TRUE(w->append(&hs, Batch{}));
  for (uint64_t i = from; i <= to; i++) EXPECT_TRUE(w->append(nullptr, Batch{entry(i)}));
  EXPECT_TRUE(w->sync());
  std::vector<std::string> paths;
  EXPECT_TRUE(list_segments(Env::posix(), dir, &paths));
  return paths;
}

std::string read(const std::string& path) {
  std::string data;
  EXPECT_TRUE(Env::posix()->read_file(path, &data));
  return data;
}

void overwrite(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << data;
}

// Offsets of every record in a segment.
std::vector<uint64_t> record_offsets(const std::string& data) {
  std::vector<uint64_t> out;
  scan_segment(data, true, [&](uint64_t offset, const lf::RecordView&) {
    out.push_back(offset);
    return true;
  });
  return out;
}

TEST(LogReader, MissingDirectoryIsAnEmptyLog) {
  TempDir dir;
  RecoveredLog log;
  ASSERT_TRUE(recover_log(Env::posix(), dir.file("none"), 0, &log));
  EXPECT_TRUE(log.entries.empty());
  EXPECT_EQ(log.segments, 0u);
}

TEST(LogReader, TornTailAtEveryOffsetOfTheLastRecordIsCut) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 5);
  ASSERT_EQ(paths.size(), 1u);
  const std::string full = read(paths[0]);
  auto offsets = record_offsets(full);
  uint64_t last_start = offsets.back();
  for (uint64_t cut = last_start + 1; cut < full.size(); cut++) {
    SCOPED_TRACE("file cut at " + std::to_string(cut));
    overwrite(paths[0], full.substr(0, cut));
    RecoveredLog log;
    Status s = recover_log(Env::posix(), dir.path(), 0, &log);
    ASSERT_TRUE(s) << s.to_string();
    EXPECT_EQ(log.entries, entries(1, 4));
    EXPECT_NE(log.torn_tail.find(paths[0]), std::string::npos) << log.torn_tail;
    EXPECT_NE(log.torn_tail.find("offset " + std::to_string(last_start)), std::string::npos) << log.torn_tail;
    EXPECT_NE(log.torn_tail.find("cut " + std::to_string(cut - last_start) + " bytes"), std::string::npos)
        << log.torn_tail;
    EXPECT_EQ(testing::file_size(paths[0]), last_start);
    // Recovery is idempotent: the second run finds a clean log.
    RecoveredLog again;
    ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 0, &again));
    EXPECT_TRUE(again.torn_tail.empty());
    EXPECT_EQ(again.entries, entries(1, 4));
  }
}

TEST(LogReader, TornTailFollowedByZerosOrGarbageIsCut) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 5);
  const std::string full = read(paths[0]);
  uint64_t last_start = record_offsets(full).back();
  // Last record's checksum damaged and zeros after it (a partially flushed page).
  std::string damaged = full;
  damaged[damaged.size() - 1] ^= 0x55;
  damaged += std::string(4096, '\0');
  overwrite(paths[0], damaged);
  RecoveredLog log;
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 0, &log));
  EXPECT_EQ(log.entries, entries(1, 4));
  EXPECT_EQ(testing::file_size(paths[0]), last_start);
  // Only zeros after the last good record: the writer's preallocation, not a torn write
  // (nothing is reported as lost), but cut all the same so that appends follow the records.
  overwrite(paths[0], full + std::string(100, '\0'));
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 0, &log));
  EXPECT_EQ(log.entries, entries(1, 5));
  EXPECT_TRUE(log.torn_tail.empty()) << log.torn_tail;
  EXPECT_EQ(log.zero_tail_bytes, 100u);
  EXPECT_EQ(testing::file_size(paths[0]), full.size());
}

TEST(LogReader, FlippedBitInTheMiddleIsCorruptionNamingFileAndOffset) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 10);
  const std::string full = read(paths[0]);
  auto offsets = record_offsets(full);
  uint64_t victim = offsets[4];
  // Every byte of a middle record: length, type, term, index, payload, checksum.
  uint64_t victim_end = offsets[5];
  for (uint64_t at = victim; at < victim_end; at++) {
    SCOPED_TRACE("bit flipped at " + std::to_string(at));
    std::string damaged = full;
    damaged[at] ^= 0x10;
    overwrite(paths[0], damaged);
    RecoveredLog log;
    Status s = recover_log(Env::posix(), dir.path(), 0, &log);
    ASSERT_TRUE(s.is_corruption()) << s.to_string();
    EXPECT_NE(s.message().find(paths[0]), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("offset " + std::to_string(victim)), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("hmdb log verify"), std::string::npos) << s.message();
    EXPECT_EQ(read(paths[0]), damaged) << "a corrupt log must not be modified";
  }
}

TEST(LogReader, FlippedBitInLastRecordWithValidRecordAfterItInSameFileIsCorruption) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 6);
  const std::string full = read(paths[0]);
  auto offsets = record_offsets(full);
  // Damage record 5 (the one before last); record 6 after it is valid.
  std::string damaged = full;
  damaged[offsets[offsets.size() - 2] + lf::kRecordHeaderSize + 2] ^= 1;
  overwrite(paths[0], damaged);
  RecoveredLog log;
  Status s = recover_log(Env::posix(), dir.path(), 0, &log);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("valid record follows at offset " + std::to_string(offsets.back())), std::string::npos)
      << s.message();
}

TEST(LogReader, DamageInANonLastSegmentIsCorruptionEvenAtItsEnd) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 100, 1024);
  ASSERT_GT(paths.size(), 2u);
  const std::string first = read(paths[0]);
  overwrite(paths[0], first.substr(0, first.size() - 3));  // "torn", but not the last segment
  RecoveredLog log;
  Status s = recover_log(Env::posix(), dir.path(), 0, &log);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find(paths[0]), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("not the last segment"), std::string::npos) << s.message();
}

TEST(LogReader, MissingMiddleSegmentIsAGap) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 100, 1024);
  ASSERT_GT(paths.size(), 2u);
  ASSERT_TRUE(Env::posix()->remove_file(paths[1]));
  RecoveredLog log;
  Status s = recover_log(Env::posix(), dir.path(), 0, &log);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("gap in the log"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(paths[2]), std::string::npos) << s.message();
}

TEST(LogReader, BadSegmentHeaderIsCorruption) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 5);
  std::string data = read(paths[0]);
  data[9] ^= 1;  // format version
  overwrite(paths[0], data);
  RecoveredLog log;
  Status s = recover_log(Env::posix(), dir.path(), 0, &log);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("header"), std::string::npos) << s.message();
}

TEST(LogReader, RenamedSegmentIsCorruption) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 5);
  ASSERT_TRUE(Env::posix()->rename_file(paths[0], dir.file(lf::segment_file_name(7))));
  RecoveredLog log;
  Status s = recover_log(Env::posix(), dir.path(), 0, &log);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("file name"), std::string::npos) << s.message();
}

TEST(LogReader, TornSegmentCreationIsRemoved) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 5);
  std::string header;
  lf::append_segment_header(&header, 6);
  for (size_t n : {size_t{0}, size_t{5}, size_t{20}}) {
    std::string path = dir.file(lf::segment_file_name(6));
    overwrite(path, header.substr(0, n));
    RecoveredLog log;
    Status s = recover_log(Env::posix(), dir.path(), 0, &log);
    ASSERT_TRUE(s) << s.to_string();
    EXPECT_FALSE(Env::posix()->file_exists(path));
    EXPECT_NE(log.torn_tail.find("removed"), std::string::npos) << log.torn_tail;
    EXPECT_EQ(log.entries, entries(1, 5));
  }
}

TEST(LogReader, HugeLengthFieldInTheMiddleIsCorruptionNotTorn) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 5);
  std::string data = read(paths[0]);
  auto offsets = record_offsets(data);
  data[offsets[2] + 3] = '\x7f';  // length ~2 GiB: over the bound and past the end
  overwrite(paths[0], data);
  RecoveredLog log;
  Status s = recover_log(Env::posix(), dir.path(), 0, &log);
  ASSERT_TRUE(s.is_corruption()) << s.to_string();
  EXPECT_NE(s.message().find("1 GiB"), std::string::npos) << s.message();
}

TEST(LogReader, ValidChecksumWithImpossibleFieldsIsCorruption) {
  std::string data;
  lf::append_segment_header(&data, 1);
  lf::append_record(&data, static_cast<lf::RecordType>(9), 0, 1, 1, "x");
  SegmentScan scan = scan_segment(data, true, nullptr);
  EXPECT_EQ(scan.end, SegmentScan::End::kCorrupt);
  EXPECT_EQ(scan.problem_offset, lf::kSegmentHeaderSize);
}

TEST(LogReader, CutAtEveryOffsetOfTheLastSegmentKeepsExactlyTheCompleteRecords) {
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 60, 1024);
  ASSERT_GT(paths.size(), 2u);
  const std::string last = read(paths.back());
  // Entries that live in the earlier segments, and where each record of the last one ends.
  RecoveredLog whole;
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 0, &whole));
  std::vector<std::pair<uint64_t, uint64_t>> ends;  // (end offset, index or 0 for hard state)
  scan_segment(last, true, [&](uint64_t offset, const lf::RecordView& r) {
    ends.emplace_back(offset + r.size, r.type == 4 ? 0 : r.index);
    return true;
  });
  uint64_t before_last = whole.entries.size();
  for (auto& [end, index] : ends) {
    if (index != 0) before_last--;
  }
  auto near_boundary = [&](uint64_t cut) {
    if (cut <= lf::kSegmentHeaderSize + 1) return true;
    for (auto& [end, index] : ends) {
      if (cut + 1 >= end && cut <= end + 1) return true;
    }
    return false;
  };
  for (uint64_t cut = 0; cut <= last.size(); cut++) {
    // Every offset with HMDB_STORAGE_HEAVY=1; by default record boundaries +-1 and every 7th.
    if (!testing::heavy() && !near_boundary(cut) && cut % 7 != 0) continue;
    SCOPED_TRACE("last segment cut at " + std::to_string(cut));
    overwrite(paths.back(), last.substr(0, cut));
    uint64_t want = before_last;
    for (auto& [end, index] : ends) {
      if (index != 0 && end <= cut) want++;
    }
    RecoveredLog log;
    Status s = recover_log(Env::posix(), dir.path(), 0, &log);
    ASSERT_TRUE(s) << s.to_string();
    ASSERT_EQ(log.entries, entries(1, want));
    EXPECT_EQ(log.torn_tail.empty(), cut == last.size() || cut == lf::kSegmentHeaderSize ||
                                         std::any_of(ends.begin(), ends.end(), [&](auto& e) { return e.first == cut; }));
    if (!Env::posix()->file_exists(paths.back())) {
      EXPECT_LT(cut, lf::kSegmentHeaderSize);
    }
  }
}

TEST(LogReader, NoFlippedBitAnywhereLosesDataSilently) {
  // Whatever byte is damaged, recovery either reports corruption or, only when the damage
  // is in the very last record (indistinguishable from a torn write), drops that record.
  TempDir dir;
  auto paths = write_log(dir.path(), 1, 30, 512);
  ASSERT_GT(paths.size(), 2u);
  std::vector<std::string> originals;
  for (auto& p : paths) originals.push_back(read(p));
  uint64_t last_record_start = record_offsets(originals.back()).back();
  // Every byte with HMDB_STORAGE_HEAVY=1; by default every byte of the segment headers and
  // of the last 100 bytes, and a seeded random eighth of the rest.
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  for (size_t f = 0; f < paths.size(); f++) {
    bool last_file = f + 1 == paths.size();
    for (size_t at = 0; at < originals[f].size(); at++) {
      bool must = at < lf::kSegmentHeaderSize + 8 || (last_file && at + 100 >= originals[f].size());
      if (!testing::heavy() && !must && rng() % 8 != 0) continue;
      std::string damaged = originals[f];
      damaged[at] ^= static_cast<char>(1 << (at % 8));
      overwrite(paths[f], damaged);
      RecoveredLog log;
      Status s = recover_log(Env::posix(), dir.path(), 0, &log);
      bool in_last_record = f + 1 == paths.size() && at >= last_record_start;
      if (in_last_record) {
        ASSERT_TRUE(s) << "file " << f << " byte " << at << ": " << s.to_string();
        EXPECT_EQ(log.entries, entries(1, 29));
        EXPECT_FALSE(log.torn_tail.empty());
      } else {
        ASSERT_TRUE(s.is_corruption()) << "file " << f << " byte " << at << ": " << s.to_string();
        EXPECT_NE(s.message().find(paths[f]), std::string::npos) << s.message();
      }
      overwrite(paths[f], originals[f]);
    }
  }
}

// What recovery needs to recognise a log that a leader's snapshot at index 3 (term 2)
// replaced: the term the records leave at index 3, and whether an entry after it was
// written after a hard state whose commit reached 3 (the first one follows the install).
TEST(LogReader, ReportsTheTermAtTheSnapshotIndexAndEntriesAfterTheCommitReachedIt) {
  TempDir dir;
  std::unique_ptr<LogWriter> w;
  ASSERT_TRUE(LogWriter::open(Env::posix(), dir.path(), LogOptions{}, &w));
  raft::HardState hs{1, 1, 1};
  ASSERT_TRUE(w->append(&hs, Batch{entry(1), entry(2), entry(3), entry(4), entry(5)}));  // all of term 1
  ASSERT_TRUE(w->sync());
  RecoveredLog log;
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 3, &log));
  EXPECT_EQ(log.term_at_after_index, 1u);
  EXPECT_FALSE(log.entries_after_commit_reached);  // commit 1 < 3
  ASSERT_EQ(log.entries.size(), 2u);

  hs.commit = 3;  // the install's hard state: commit = the snapshot's index
  ASSERT_TRUE(w->append(&hs, Batch{}));
  ASSERT_TRUE(w->sync());
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 3, &log));
  EXPECT_FALSE(log.entries_after_commit_reached);  // 4 and 5 were written before it

  ASSERT_TRUE(w->append(nullptr, Batch{entry(4, 2)}));  // the leader's first entry after the install
  ASSERT_TRUE(w->sync());
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 3, &log));
  EXPECT_TRUE(log.entries_after_commit_reached);
  EXPECT_EQ(log.term_at_after_index, 1u);
  ASSERT_EQ(log.entries.size(), 1u);
  EXPECT_EQ(log.entries[0].term, 2u);

  ASSERT_TRUE(w->append(nullptr, Batch{entry(2, 3)}));  // truncates 3 and after
  ASSERT_TRUE(w->sync());
  ASSERT_TRUE(recover_log(Env::posix(), dir.path(), 3, &log));
  EXPECT_EQ(log.term_at_after_index, 0u);
}

TEST(LogFormat, SegmentNames) {
  EXPECT_EQ(lf::segment_file_name(42), "log-00000000000000000042.hmlog");
  uint64_t v = 0;
  EXPECT_TRUE(lf::parse_segment_file_name("log-00000000000000000042.hmlog", &v));
  EXPECT_EQ(v, 42u);
  EXPECT_TRUE(lf::parse_segment_file_name(lf::segment_file_name(UINT64_MAX), &v));
  EXPECT_EQ(v, UINT64_MAX);
  EXPECT_FALSE(lf::parse_segment_file_name("log-99999999999999999999.hmlog", &v));  // overflow
  EXPECT_FALSE(lf::parse_segment_file_name("log-0000000000000000004x.hmlog", &v));
  EXPECT_FALSE(lf::parse_segment_file_name("log-42.hmlog", &v));
  EXPECT_FALSE(lf::parse_segment_file_name("snap-00000000000000000042.hmsnap", &v));
}

TEST(LogFormat, RecordLayoutIsAsDocumented) {
  std::string data;
  lf::append_record(&data, lf::RecordType::kEntryNormal, 7, 0x0102030405060708, 9, "abc");
  ASSERT_EQ(data.size(), lf::kRecordOverhead + 3);
  EXPECT_EQ(lf::get_u32(data.data()), 3u);
  EXPECT_EQ(data[4], 1);
  EXPECT_EQ(data[5], 0);
  EXPECT_EQ(lf::get_u16(data.data() + 6), 0u);
  EXPECT_EQ(lf::get_u32(data.data() + 8), 7u);
  EXPECT_EQ(lf::get_u64(data.data() + 12), 0x0102030405060708u);
  EXPECT_EQ(lf::get_u64(data.data() + 20), 9u);
  EXPECT_EQ(data.substr(28, 3), "abc");
  EXPECT_EQ(lf::get_u64(data.data() + 31), XXH3_64bits(data.data(), 31));
}

}  // namespace
}  // namespace hmdb::storage
