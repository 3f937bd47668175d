// storage/log_reader.cc — reading the log: the segment scanner (torn tail vs corruption)
// and recovery (segments in order, overwrites applied, torn tail cut).
#include <sys/mman.h>

#include <algorithm>

#include <fmt/format.h>

#include "common/assert.h"
#include "storage/log.h"

namespace hmdb::storage {

namespace lf = log_format;

namespace {
// Typical smallest record: the fixed overhead plus a small command batch.
constexpr uint64_t kReserveRecordBytes = lf::kRecordOverhead + 28;
constexpr uintptr_t kHugePageBytes = 2 << 20;

// Recovery of millions of entries first-touches hundreds of MiB; with 4 KiB pages the page
// faults cost more than decoding (measured: ~1.4 vs ~1.9 M records per CPU-second with
// this hint, bench/recovery_bench.cc). Only a hint: failure (THP off) changes nothing.
void advise_huge_pages(const void* data, size_t bytes) {
  uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePageBytes - 1) & ~(kHugePageBytes - 1);
  uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHugePageBytes - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}
}  // namespace

std::string corruption_advice(const std::string& dir) {
  return fmt::format(
      "Restore this node from a snapshot or a peer, or run `hmdb log verify {}` for details; "
      "the server will not start with silently lost data.",
      dir);
}

namespace {

// First offset >= from at which a complete, checksummed record starts, or npos.
size_t find_valid_record(std::string_view data, size_t from) {
  if (data.size() < lf::kRecordOverhead) return std::string_view::npos;
  for (size_t q = from; q + lf::kRecordOverhead <= data.size(); q++) {
    if (lf::is_valid_record_at(data.substr(q))) return q;
  }
  return std::string_view::npos;
}

// True if the bytes are what a crash while writing the header could leave: a prefix of
// the magic (possibly followed by anything of the remaining header fields) or zeros.
bool looks_like_torn_header(std::string_view data) {
  bool zeros = std::all_of(data.begin(), data.end(), [](char c) { return c == 0; });
  size_t n = std::min(data.size(), sizeof lf::kSegmentMagic);
  return zeros || std::memcmp(data.data(), lf::kSegmentMagic, n) == 0;
}

}  // namespace

SegmentScan scan_segment(std::string_view data, bool last_segment, const RecordVisitor& visit) {
  SegmentScan scan;
  std::string problem;
  if (!lf::decode_segment_header(data, &scan.header, &problem)) {
    scan.problem_offset = 0;
    // A crash right after the segment was created can leave a short or zero header; that
    // is torn only in the last segment and only if no record survives anywhere after it.
    bool torn = last_segment && find_valid_record(data, 1) == std::string_view::npos &&
                (data.size() >= lf::kSegmentHeaderSize || looks_like_torn_header(data));
    scan.end = torn ? SegmentScan::End::kTornTail : SegmentScan::End::kCorrupt;
    scan.problem = problem;
    return scan;
  }
  scan.header_ok = true;
  size_t pos = lf::kSegmentHeaderSize;
  scan.good_bytes = pos;
  lf::RecordView r;
  while (pos < data.size()) {
    lf::RecordCheck check = lf::decode_record(data.substr(pos), &r);
    if (check == lf::RecordCheck::kOk) {
      scan.records++;
      if (visit && !visit(pos, r)) {
        scan.end = SegmentScan::End::kStopped;
        scan.problem_offset = pos;
        return scan;
      }
      pos += r.size;
      scan.good_bytes = pos;
      continue;
    }
    if (std::all_of(data.begin() + static_cast<ptrdiff_t>(pos), data.end(), [](char c) { return c == 0; })) {
      // The writer's preallocated zeros (or a crash that wrote none of the next record).
      scan.zero_tail_bytes = data.size() - pos;
      break;
    }
    scan.problem_offset = pos;
    scan.problem = lf::record_check_text(check);
    if (check == lf::RecordCheck::kTooLong) scan.problem += fmt::format(" (length {})", r.payload_length);
    if (check == lf::RecordCheck::kPastEnd) {
      scan.problem += fmt::format(" (needs {} bytes, {} left)", lf::kRecordOverhead + r.payload_length,
                                  data.size() - pos);
    }
    if (check == lf::RecordCheck::kBadFields) {
      // The checksum matched, so the writer wrote it this way: never a torn write.
      scan.problem += fmt::format(" (type {}, flags {}, reserved {}, payload {} bytes)", r.type, r.flags,
                                  r.reserved, r.payload_length);
      scan.end = SegmentScan::End::kCorrupt;
      return scan;
    }
    if (!last_segment) {
      scan.problem += "; this is not the last segment, so it cannot be a torn write";
      scan.end = SegmentScan::End::kCorrupt;
      return scan;
    }
    size_t next = find_valid_record(data, pos + 1);
    if (next != std::string_view::npos) {
      scan.problem += fmt::format("; a valid record follows at offset {}, so this is damage in the middle of "
                                  "the log, not a torn write",
                                  next);
      scan.end = SegmentScan::End::kCorrupt;
      return scan;
    }
    scan.end = SegmentScan::End::kTornTail;
    return scan;
  }
  scan.end = SegmentScan::End::kClean;
  return scan;
}

Status list_segments(Env* env, const std::string& dir, std::vector<std::string>* paths) {
  paths->clear();
  std::vector<std::string> names;
  Status s = env->list_dir(dir, &names);
  if (s.is_not_found()) return Status::ok();
  if (!s) return s;
  std::vector<std::pair<uint64_t, std::string>> found;
  for (const auto& n : names) {
    uint64_t first = 0;
    if (lf::parse_segment_file_name(n, &first)) found.emplace_back(first, n);
  }
  std::sort(found.begin(), found.end());
  for (auto& [first, n] : found) paths->push_back(path_join(dir, n));
  return Status::ok();
}

namespace {

// Applies the log's ordering rules to the entries as they are read.
class EntrySequence {
 public:
  EntrySequence(raft::Index after_index, bool keep_data, std::vector<raft::Entry>* kept)
      : after_(after_index), keep_data_(keep_data), kept_(kept) {}

  // Returns a description of what is wrong, or an empty string.
  std::string add(const lf::RecordView& r) {
    if (r.index == 0) return "entry with index 0";
    uint64_t limit = std::max(seen_ ? last_ : 0, after_) + 1;
    if (r.index > limit && !seen_) {
      return fmt::format("the log starts at entry {} but the snapshot covers only entries up to {} (entries {}..{} "
                         "are missing)",
                         r.index, after_, after_ + 1, r.index - 1);
    }
    if (r.index > limit) {
      return fmt::format("gap in the log: entry {} follows entry {} (entries {}..{} are missing and not covered by "
                         "the snapshot at index {})",
                         r.index, last_, last_ + 1, r.index - 1, after_);
    }
    // An entry at index i replaces every entry >= i (Raft truncation on conflict).
    while (!kept_->empty() && kept_->back().index >= r.index) kept_->pop_back();
    if (!kept_->empty() && kept_->back().index + 1 == r.index && r.term < kept_->back().term) {
      return fmt::format("term goes backwards: entry {} has term {} but entry {} before it has term {}", r.index,
                         r.term, kept_->back().index, kept_->back().term);
    }
    if (r.index <= after_) term_at_after_ = r.index == after_ ? r.term : 0;  // < after_: truncated it
    if (r.index > after_) {
      entries_after_commit_reached_ |= commit_reached_;
      HMDB_ASSERT(kept_->empty() ? r.index == after_ + 1 : kept_->back().index + 1 == r.index,
                  "entry sequence not contiguous at %llu", static_cast<unsigned long long>(r.index));
      raft::Entry& e = kept_->emplace_back();
      e.term = r.term;
      e.index = r.index;
      e.type = static_cast<raft::EntryType>(r.type);
      e.schema_version = r.schema_version;
      if (keep_data_) e.data.assign(r.payload.data(), r.payload.size());
    }
    last_ = r.index;
    seen_ = true;
    return {};
  }
  void hard_state(const raft::HardState& hs) { commit_reached_ |= hs.commit >= after_ && after_ > 0; }
  raft::Term term_at_after() const { return term_at_after_; }
  bool entries_after_commit_reached() const { return entries_after_commit_reached_; }

 private:
  raft::Index after_;
  bool keep_data_;
  std::vector<raft::Entry>* kept_;
  bool seen_ = false;
  uint64_t last_ = 0;
  raft::Term term_at_after_ = 0;
  bool commit_reached_ = false;
  bool entries_after_commit_reached_ = false;
};

// Truncates path to size and makes the cut durable before anything is appended after it.
Status cut_and_sync(Env* env, const std::string& path, uint64_t size) {
  Status s = env->truncate_file(path, size);
  if (!s) return s;
  std::unique_ptr<WritableFile> f;
  s = env->new_appendable_file(path, &f);
  if (s) s = f->sync();
  if (s) s = f->close();
  return s;
}

}  // namespace

Status scan_log(Env* env, const std::string& dir, raft::Index after_index, const ScanOptions& options,
                RecoveredLog* out) {
  *out = RecoveredLog{};
  std::vector<std::string> paths;
  Status s = list_segments(env, dir, &paths);
  if (!s) return s;
  EntrySequence sequence(after_index, options.keep_data, &out->entries);
  // Reserve once for the whole log, assuming records of at least kReserveRecordBytes, so
  // the vector does not grow (and move every entry) log2(n) times. Untouched capacity
  // costs address space, not memory.
  uint64_t total_bytes = 0;
  for (const auto& path : paths) {
    uint64_t size = 0;
    s = env->file_size(path, &size);
    if (!s) return s;
    total_bytes += size;
  }
  out->entries.reserve(static_cast<size_t>(total_bytes / kReserveRecordBytes));
  advise_huge_pages(out->entries.data(), out->entries.capacity() * sizeof(raft::Entry));
  for (size_t i = 0; i < paths.size(); i++) {
    const std::string& path = paths[i];
    bool last = i + 1 == paths.size();
    std::unique_ptr<MappedFile> mapping;
    s = env->map_file(path, &mapping);
    if (!s) return s;
    std::string_view data = mapping->data();
    SegmentReport report;
    report.path = path;
    report.bytes = data.size();
    std::string semantic_problem;
    uint64_t problem_offset = 0;
    auto visit = [&](uint64_t offset, const lf::RecordView& r) {
      if (r.type == static_cast<uint8_t>(lf::RecordType::kHardState)) {
        raft::HardState hs = lf::decode_hard_state(r);
        if (hs.term < out->hard_state.term) {
          semantic_problem = fmt::format("hard state term goes backwards from {} to {}", out->hard_state.term, hs.term);
          problem_offset = offset;
          return false;
        }
        out->hard_state = hs;
        sequence.hard_state(hs);
        report.hard_states++;
        return true;
      }
      semantic_problem = sequence.add(r);
      if (!semantic_problem.empty()) {
        problem_offset = offset;
        return false;
      }
      if (report.entries == 0) report.first_index = r.index;
      report.entries++;
      report.last_index = r.index;
      return true;
    };
    report.scan = scan_segment(data, last, visit);
    report.records = report.scan.records;
    out->records += report.scan.records;
    out->segments++;
    SegmentScan& scan = report.scan;
    uint64_t first_from_name = 0;
    lf::parse_segment_file_name(path.substr(path.rfind('/') + 1), &first_from_name);
    if (scan.header_ok && scan.header.first_index != first_from_name && scan.end != SegmentScan::End::kStopped) {
      scan.end = SegmentScan::End::kCorrupt;
      scan.problem_offset = 16;
      scan.problem = fmt::format("segment header says first index {} but the file name says {} (renamed file?)",
                                 scan.header.first_index, first_from_name);
    }
    if (scan.end == SegmentScan::End::kStopped) {
      scan.end = SegmentScan::End::kCorrupt;
      scan.problem_offset = problem_offset;
      scan.problem = semantic_problem;
    }
    if (options.on_segment) options.on_segment(report);
    if (scan.end == SegmentScan::End::kCorrupt) {
      return Status::corruption(fmt::format("log segment {} at byte offset {}: {}. {}", path, scan.problem_offset,
                                            scan.problem, corruption_advice(dir)));
    }
    if (scan.end == SegmentScan::End::kClean && scan.zero_tail_bytes > 0) {
      // Preallocated zeros: nothing lost. In the last segment they are cut so that the
      // writer appends after the records (it preallocates again); an older segment keeps
      // them (a crash between a roll and the cut of the rolled segment's zeros).
      out->bytes += scan.good_bytes;
      if (last) out->zero_tail_bytes = scan.zero_tail_bytes;
      if (last && options.repair) {
        mapping.reset();  // unmap before the file shrinks under it
        s = cut_and_sync(env, path, scan.good_bytes);
        if (!s) return s;
      }
      continue;
    }
    if (scan.end == SegmentScan::End::kTornTail) {
      HMDB_ASSERT(last, "torn tail reported for a segment that is not the last");
      uint64_t cut = data.size() - scan.good_bytes;
      if (scan.header_ok) {
        out->torn_tail = fmt::format("log segment {}: torn record at byte offset {} ({}); cut {} bytes, the file now "
                                     "ends at offset {}",
                                     path, scan.problem_offset, scan.problem, cut, scan.good_bytes);
      } else {
        out->torn_tail = fmt::format("log segment {}: {} bytes with no complete segment header ({}); the file was "
                                     "created by a write that did not finish and is removed",
                                     path, data.size(), scan.problem);
      }
      if (options.repair) {
        mapping.reset();  // unmap before the file shrinks under it
        if (scan.header_ok) {
          s = cut_and_sync(env, path, scan.good_bytes);
          if (!s) return s;
        } else {
          s = env->remove_file(path);
          if (s) s = env->sync_dir(dir);
          if (!s) return s;
        }
      }
      out->bytes += scan.header_ok ? scan.good_bytes : 0;
    } else {
      out->bytes += data.size();
    }
  }
  out->term_at_after_index = sequence.term_at_after();
  out->entries_after_commit_reached = sequence.entries_after_commit_reached();
  return Status::ok();
}

Status recover_log(Env* env, const std::string& dir, raft::Index after_index, RecoveredLog* out) {
  return scan_log(env, dir, after_index, ScanOptions{}, out);
}

}  // namespace hmdb::storage
