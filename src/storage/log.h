// storage/log.h — the segmented command log: writer, recovery, and the segment scanner
// that recovery, `hmdb log dump|verify` and the fuzz target share.
//
// Format: storage/log_format.h and docs/formats.md. The log stores raft entries and hard
// states; it never decides what is committed. An entry at index i logically replaces every
// entry >= i written before it (Raft's log truncation on conflict); recovery applies that.
//
// Startup sequence (REQUIRED order): recover_log() (which cuts a torn tail), then
// LogWriter::open() on the same directory.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "raft/types.h"
#include "storage/env.h"
#include "storage/log_format.h"

namespace hmdb::storage {

// How far ahead of the appends the active segment is filled with zeros (see
// LogOptions::preallocate_bytes and "Preallocated segments" in docs/decisions.md).
inline constexpr uint64_t kLogPreallocateBytes = 1 << 20;

struct LogOptions {
  // A segment is closed and a new one started once it has grown past this many bytes
  // (checked before each append that carries entries; a segment can exceed it by one append).
  uint64_t segment_bytes = 64 << 20;
  // When an append would run past the zeros already written after the active segment's
  // records, the writer first writes this many more bytes of zeros (never past
  // segment_bytes): appends then overwrite zeros in place and their fdatasync has no new
  // file length to write, except once per this many bytes. 0: no preallocation. A rolled
  // segment is cut back to its records; recovery cuts the last segment's zeros.
  uint64_t preallocate_bytes = kLogPreallocateBytes;
};

struct RecoveredLog {
  raft::HardState hard_state;        // last hard state record found (zero if none)
  std::vector<raft::Entry> entries;  // contiguous, index > after_index, overwrites applied
  uint64_t bytes = 0;                // total log bytes read (for the snapshot trigger)
  std::string torn_tail;             // non-empty if a torn tail was cut off: what and where
  uint64_t segments = 0;             // number of segment files read
  uint64_t records = 0;              // number of records read (all types, all segments)
  uint64_t zero_tail_bytes = 0;      // preallocated zeros after the last segment's records
                                     // (cut, with repair: the writer appends after them)
  // For telling a log that a leader's snapshot replaced (server/recovery.cc): the term of
  // the entry at after_index as the records leave it (0 if none does), and whether an
  // entry after after_index was written after a hard state whose commit reached
  // after_index (the first such hard state follows an install at after_index).
  raft::Term term_at_after_index = 0;
  bool entries_after_commit_reached = false;
};

// Reads every segment in dir (a missing dir is an empty log). A torn record at the very end
// of the last segment is cut off (file truncated and synced; a last segment that holds not
// even a complete header is removed) and described in torn_tail. Anything else bad is
// Status::corruption with a message naming the file, the byte offset, what is wrong and
// what to do. I/O failures are Status::io_error.
//
// Entries with index <= after_index (covered by the snapshot) are skipped. A gap in the
// log indexes is corruption unless every missing index is <= after_index (a follower that
// installed a snapshot continues its log after the snapshot's index).
Status recover_log(Env* env, const std::string& dir, raft::Index after_index, RecoveredLog* out);

// ---- lower level: what recover_log and the inspect tools are built from ----

// How one segment file ended.
struct SegmentScan {
  enum class End {
    kClean,     // every byte belongs to a sound record, or is a zero after the last one
    kTornTail,  // a bad record at the end of the last segment with nothing valid after it
    kCorrupt,   // damage that is not a torn write
    kStopped,   // the visitor asked to stop
  };
  End end = End::kClean;
  bool header_ok = false;
  log_format::SegmentHeader header;
  uint64_t records = 0;        // sound records visited
  uint64_t good_bytes = 0;     // end of the last sound record (where a torn tail is cut);
                               // 0 if not even the segment header is sound
  uint64_t problem_offset = 0; // kTornTail / kCorrupt: byte offset of the bad record
  std::string problem;         // kTornTail / kCorrupt: what is wrong, in words
  // kClean: bytes after the last sound record that are all zeros (the writer's
  // preallocation, LogOptions::preallocate_bytes; they end at the end of the file).
  uint64_t zero_tail_bytes = 0;
};

// Called for every sound record, in order. Return false to stop the scan (kStopped).
using RecordVisitor = std::function<bool(uint64_t offset, const log_format::RecordView&)>;

// Walks one segment's bytes. last_segment selects the torn-tail rule: only in the last
// segment of a log may a bad record be a torn write, and only if no valid record can be
// found anywhere after it (LevelDB's rule: a valid record after a bad one means damage in
// the middle, not a crash in the middle of a write). Zeros from a record boundary to the
// end of the file, in any segment, are the writer's preallocation: the segment ends
// cleanly there (a lost record is then a gap in the indexes, which recovery reports).
// Never reads outside data (fuzzed).
SegmentScan scan_segment(std::string_view data, bool last_segment, const RecordVisitor& visit);

// Per-segment summary handed to ScanOptions::on_segment.
struct SegmentReport {
  std::string path;
  uint64_t bytes = 0;
  uint64_t records = 0;
  uint64_t entries = 0;
  uint64_t hard_states = 0;
  uint64_t first_index = 0;  // of the entries in it (0 if none)
  uint64_t last_index = 0;
  SegmentScan scan;
};

struct ScanOptions {
  bool repair = true;     // cut a torn tail (recover_log); false: only describe it (verify)
  bool keep_data = true;  // false: entries come back without payloads (verify saves memory)
  std::function<void(const SegmentReport&)> on_segment;  // optional
};

// recover_log() with options. recover_log(env, dir, i, out) == scan_log(env, dir, i, {}, out).
Status scan_log(Env* env, const std::string& dir, raft::Index after_index, const ScanOptions& options,
                RecoveredLog* out);

// Segment files of dir in write order (paths). A missing dir yields an empty list.
Status list_segments(Env* env, const std::string& dir, std::vector<std::string>* paths);

// The advice every corruption message ends with.
std::string corruption_advice(const std::string& dir);

// ---- writer ----

// Appends records to the active segment, rolls segments, syncs, deletes old segments.
// Thread-safety: none; one thread (the shell's disk thread) owns a LogWriter.
// Any error from append() or sync() is sticky: the writer refuses all later calls, and the
// caller must stop the node (after a failed write or fsync the file content is unknown).
class LogWriter {
 public:
  // REQUIRES: recover_log() ran on dir first (it repairs a torn tail). Creates dir if
  // missing. Appends go to the last existing segment.
  static Status open(Env* env, const std::string& dir, const LogOptions& options, std::unique_ptr<LogWriter>* out);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Encodes the records (hard state first if given, then entries) into one buffer and
  // writes it with one write(2). No fsync. An entry at index i logically replaces entries
  // >= i. REQUIRES: entries contiguous and increasing, index > 0, payload <= 1 GiB
  // (violations are Status::invalid_argument and write nothing).
  // defer: only encode; the records are written, in order, with those of the next append
  // without defer, or by flush() or sync(), in one write(2) — the disk thread's round of
  // several Readies. A segment roll writes what is deferred to the old segment first.
  Status append(const raft::HardState* hard_state, std::span<const raft::Entry> entries, bool defer = false);
  // Writes what deferred appends encoded (nothing to write: no system call).
  Status flush() { return write_buffer(); }
  // fdatasync of everything appended so far: segments rolled since the last sync are synced
  // and closed, then the directory (new names), then the active segment. Errors are fatal
  // for the caller (never retry).
  Status sync();
  // Deletes the oldest segments while every entry in them has index <= index (after a
  // snapshot at index); never the active segment. Syncs first, so the newest hard-state
  // copy is durable before older copies disappear.
  Status compact(raft::Index index);

  uint64_t bytes_written_total() const { return bytes_written_; }  // appended by this writer
  uint64_t preallocated_bytes_total() const { return preallocated_bytes_; }
  uint64_t preallocate_failures() const { return preallocate_failures_; }
  uint64_t log_bytes() const;      // current size of all segments on disk
  size_t segment_count() const { return segments_.size(); }
  const raft::HardState& hard_state() const { return hard_state_; }

 private:
  struct Segment {
    uint64_t name = 0;  // N of log-<N>.hmlog
    std::string path;
    uint64_t size = 0;  // bytes of its records (not the preallocated zeros after them)
    bool summary_known = false;  // has_entries/max_index valid (else scan on compact)
    bool has_entries = false;
    uint64_t max_index = 0;
  };

  LogWriter(Env* env, std::string dir, LogOptions options) : env_(env), dir_(std::move(dir)), options_(options) {}
  Status start_segment(uint64_t name);
  Status write_buffer();  // writes buffer_ (what append encoded) to the active segment
  void preallocate_for(uint64_t bytes);
  Status summarize(Segment* segment);

  Env* env_;
  std::string dir_;
  LogOptions options_;
  std::vector<Segment> segments_;  // write order; back() is the active one
  std::unique_ptr<WritableFile> active_;
  std::vector<std::unique_ptr<WritableFile>> rolled_;  // synced and closed at the next sync()
  bool dir_dirty_ = false;  // a segment was created since the last directory sync
  raft::HardState hard_state_;
  uint64_t last_index_ = 0;  // index of the last entry appended (0: none yet)
  Status failed_;            // sticky error
  std::string buffer_;  // encoded records not written yet (append's defer)
  uint64_t bytes_written_ = 0;
  uint64_t preallocated_bytes_ = 0;       // zeros written ahead, all segments
  uint64_t preallocate_failures_ = 0;     // preallocations that stopped short (not fatal)
  bool preallocate_failed_ = false;       // in the active segment: no more tries there
};

}  // namespace hmdb::storage
