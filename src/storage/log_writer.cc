// storage/log_writer.cc — appending to the log: one buffer and one write(2) per append,
// zeros written ahead of the appends (preallocation), fdatasync on sync(), segment roll,
// and deletion of segments covered by a snapshot.
#include <algorithm>

#include <fmt/format.h>

#include "common/assert.h"
#include "storage/log.h"

namespace hmdb::storage {

namespace lf = log_format;

namespace {
// After an unusually large append the buffer is released rather than kept at that size.
constexpr size_t kBufferKeepBytes = 16 << 20;
}  // namespace

Status LogWriter::open(Env* env, const std::string& dir, const LogOptions& options, std::unique_ptr<LogWriter>* out) {
  HMDB_ASSERT(options.segment_bytes > 0, "segment_bytes must be positive");
  Status s = env->create_dir(dir);
  if (!s) return s;
  std::unique_ptr<LogWriter> w(new LogWriter(env, dir, options));
  std::vector<std::string> paths;
  s = list_segments(env, dir, &paths);
  if (!s) return s;
  for (const auto& path : paths) {
    Segment seg;
    seg.path = path;
    lf::parse_segment_file_name(path.substr(path.rfind('/') + 1), &seg.name);
    s = env->file_size(path, &seg.size);
    if (!s) return s;
    w->segments_.push_back(std::move(seg));
  }
  if (!w->segments_.empty()) {
    // The newest hard state is in the last segment (each segment starts with a copy), unless
    // a crash cut that copy off; then look further back.
    bool found_hard_state = false;
    for (size_t i = w->segments_.size(); i-- > 0 && !found_hard_state;) {
      Segment& seg = w->segments_[i];
      std::unique_ptr<MappedFile> mapping;
      s = env->map_file(seg.path, &mapping);
      if (!s) return s;
      std::string_view data = mapping->data();
      bool is_last = i + 1 == w->segments_.size();
      SegmentScan scan = scan_segment(data, is_last, [&](uint64_t, const lf::RecordView& r) {
        if (r.type == static_cast<uint8_t>(lf::RecordType::kHardState)) {
          w->hard_state_ = lf::decode_hard_state(r);
          found_hard_state = true;
        } else {
          seg.has_entries = true;
          seg.max_index = std::max(seg.max_index, r.index);
          if (is_last) w->last_index_ = r.index;
        }
        return true;
      });
      if (scan.end != SegmentScan::End::kClean) {
        return Status::corruption(fmt::format("log segment {} at byte offset {}: {}; run recovery (recover_log) "
                                              "before opening the log for writing",
                                              seg.path, scan.problem_offset, scan.problem));
      }
      if (is_last && scan.zero_tail_bytes > 0) {
        // Appends go to the end of the file: after these zeros they would be unreadable.
        return Status::corruption(fmt::format("log segment {} ends with {} bytes of zeros after its last record at "
                                              "offset {}; run recovery (recover_log), which cuts them, before "
                                              "opening the log for writing",
                                              seg.path, scan.zero_tail_bytes, scan.good_bytes));
      }
      seg.size = scan.good_bytes;
      seg.summary_known = true;
    }
    s = env->new_appendable_file(w->segments_.back().path, &w->active_);
    if (!s) return s;
    w->segments_.back().size = w->active_->size();
  }
  *out = std::move(w);
  return Status::ok();
}

LogWriter::~LogWriter() {
  // Unsynced data stays in the page cache; durability is the caller's sync().
  for (auto& f : rolled_) f->close();
  if (active_) active_->close();
}

uint64_t LogWriter::log_bytes() const {
  uint64_t total = 0;
  for (const auto& seg : segments_) total += seg.size;
  return total;
}

Status LogWriter::start_segment(uint64_t name) {
  HMDB_ASSERT(segments_.empty() || name > segments_.back().name, "segment names must increase");
  Segment seg;
  seg.name = name;
  seg.path = path_join(dir_, lf::segment_file_name(name));
  seg.summary_known = true;
  HMDB_ASSERT(!env_->file_exists(seg.path), "segment %s already exists", seg.path.c_str());
  // A rolled segment ends at its last record, as before preallocation: the zeros never
  // go past segment_bytes (preallocate_for), and a segment rolls only once its records
  // reach it. So only the last segment can end in zeros, which recovery cuts.
  HMDB_ASSERT(!active_ || active_->allocated() == active_->size(), "a rolled segment must not end in zeros");
  std::unique_ptr<WritableFile> file;
  Status s = env_->new_writable_file(seg.path, &file);
  if (!s) return s;
  if (active_) rolled_.push_back(std::move(active_));
  active_ = std::move(file);
  preallocate_failed_ = false;
  segments_.push_back(std::move(seg));
  dir_dirty_ = true;
  // Every segment starts with the current hard state, so deleting older segments never
  // loses term and vote.
  lf::append_segment_header(&buffer_, name);
  lf::append_hard_state(&buffer_, hard_state_);
  return Status::ok();
}

Status LogWriter::append(const raft::HardState* hard_state, std::span<const raft::Entry> entries, bool defer) {
  if (!failed_) return failed_;
  for (size_t i = 0; i < entries.size(); i++) {
    const raft::Entry& e = entries[i];
    if (e.index == 0) return Status::invalid_argument("log entry with index 0");
    if (i > 0 && e.index != entries[i - 1].index + 1) {
      return Status::invalid_argument(fmt::format("log entries not contiguous: {} after {}", e.index, entries[i - 1].index));
    }
    uint8_t t = static_cast<uint8_t>(e.type);
    if (t < 1 || t > 3) return Status::invalid_argument(fmt::format("log entry {} has unknown type {}", e.index, t));
    if (e.data.size() > lf::kMaxPayloadBytes) {
      return Status::invalid_argument(fmt::format("log entry {} is {} bytes, over the {}-byte bound", e.index,
                                                  e.data.size(), lf::kMaxPayloadBytes));
    }
  }
  if (hard_state == nullptr && entries.empty()) return defer ? Status::ok() : write_buffer();

  if (hard_state != nullptr) hard_state_ = *hard_state;
  bool hard_state_written = false;
  // Roll only when the next entry's index is above the active segment's name, so names
  // stay strictly increasing even when a batch overwrites older indexes.
  bool roll = active_ != nullptr && active_->size() + buffer_.size() >= options_.segment_bytes && !entries.empty() &&
              entries.front().index > segments_.back().name;
  if (active_ == nullptr || roll) {
    uint64_t name = entries.empty() ? last_index_ + 1 : entries.front().index;
    // What earlier deferred appends encoded belongs to the segment that ends here.
    Status s = active_ != nullptr ? write_buffer() : Status::ok();
    if (!s) return s;
    s = start_segment(name);
    if (!s) {
      failed_ = s;
      return s;
    }
    hard_state_written = true;  // start_segment wrote the (updated) hard state
  }
  if (hard_state != nullptr && !hard_state_written) lf::append_hard_state(&buffer_, hard_state_);
  Segment& seg = segments_.back();
  for (const raft::Entry& e : entries) {
    lf::append_entry(&buffer_, e);
    seg.has_entries = true;
    seg.max_index = std::max(seg.max_index, e.index);
  }
  if (!entries.empty()) last_index_ = entries.back().index;
  return defer ? Status::ok() : write_buffer();
}

Status LogWriter::write_buffer() {
  if (!failed_) return failed_;
  if (buffer_.empty()) return Status::ok();
  preallocate_for(buffer_.size());
  Status s = active_->append(buffer_);
  segments_.back().size = active_->size();
  if (!s) {
    failed_ = s;
    return s;
  }
  bytes_written_ += buffer_.size();
  buffer_.clear();
  if (buffer_.capacity() > kBufferKeepBytes) std::string().swap(buffer_);
  return Status::ok();
}

// Before an append of `bytes` that would run past the zeros after the active segment's
// records: write options_.preallocate_bytes more (never past segment_bytes). The next
// fdatasync then writes the new length once; the appends after it overwrite zeros and
// their fdatasyncs write data only. A failure (a full disk) only stops the zeros short:
// the append itself still says whether there is room for the records.
void LogWriter::preallocate_for(uint64_t bytes) {
  if (options_.preallocate_bytes == 0 || preallocate_failed_) return;
  uint64_t need = active_->size() + bytes;
  if (need <= active_->allocated()) return;
  uint64_t target = std::min(need + options_.preallocate_bytes, std::max(options_.segment_bytes, need));
  if (target <= need) return;  // at or past segment_bytes: the next append rolls, no zeros
  uint64_t before = active_->allocated();
  Status s = active_->preallocate(target);
  preallocated_bytes_ += active_->allocated() - before;
  if (!s) {
    preallocate_failures_++;
    preallocate_failed_ = true;  // not again in this segment: a full disk stays full
  }
}

Status LogWriter::sync() {
  if (!failed_) return failed_;
  Status s = write_buffer();  // what deferred appends left
  if (!s) return s;
  for (auto& f : rolled_) {
    s = f->sync();
    if (s) s = f->close();
    if (!s) break;
  }
  if (s) rolled_.clear();
  if (s && dir_dirty_) {
    s = env_->sync_dir(dir_);
    if (s) dir_dirty_ = false;
  }
  if (s && active_) s = active_->sync();
  if (!s) failed_ = s;
  return s;
}

Status LogWriter::summarize(Segment* seg) {
  std::unique_ptr<MappedFile> mapping;
  Status s = env_->map_file(seg->path, &mapping);
  if (!s) return s;
  std::string_view data = mapping->data();
  seg->has_entries = false;
  seg->max_index = 0;
  SegmentScan scan = scan_segment(data, false, [&](uint64_t, const lf::RecordView& r) {
    if (r.type != static_cast<uint8_t>(lf::RecordType::kHardState)) {
      seg->has_entries = true;
      seg->max_index = std::max(seg->max_index, r.index);
    }
    return true;
  });
  if (scan.end != SegmentScan::End::kClean) {
    return Status::corruption(fmt::format("log segment {} at byte offset {}: {}. {}", seg->path, scan.problem_offset,
                                          scan.problem, corruption_advice(dir_)));
  }
  seg->summary_known = true;
  return Status::ok();
}

Status LogWriter::compact(raft::Index index) {
  if (!failed_) return failed_;
  Status s = sync();
  if (!s) return s;
  size_t removed = 0;
  // The last segment is the active one: never deleted.
  while (segments_.size() > 1) {
    Segment& seg = segments_.front();
    if (!seg.summary_known) {
      s = summarize(&seg);
      if (!s) return s;
    }
    if (seg.has_entries && seg.max_index > index) break;
    s = env_->remove_file(seg.path);
    if (!s) return s;
    segments_.erase(segments_.begin());
    removed++;
  }
  if (removed > 0) s = env_->sync_dir(dir_);
  return s;
}

}  // namespace hmdb::storage
