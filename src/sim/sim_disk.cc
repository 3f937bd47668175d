// sim/sim_disk.cc — a simulated node's data directory on an in-memory file system, written
// and read back by the server's storage code (see sim_disk.h).
#include "sim/sim_disk.h"

#include <algorithm>

#include <fmt/format.h>

#include "common/assert.h"
#include "sim/register_app.h"
#include "storage/log.h"
#include "storage/restart.h"
#include "storage/log_format.h"
#include "storage/snapshot.h"

namespace hmdb::sim {

namespace lf = storage::log_format;

namespace {
constexpr const char* kDir = "data";
}  // namespace

// ---------------------------------------------------------------------------------------
// An in-memory Env that remembers, per file, how many bytes were synced and whether its
// name is durable (a directory sync makes created and renamed names durable). A removal is
// durable at once: the storage code syncs the directory after every removal it relies on,
// and a removed segment or snapshot coming back would only be skipped by recovery.

class MemEnv final : public storage::Env {
 public:
  struct File {
    std::string data;  // the bytes, preallocated zeros included
    uint64_t end = 0;  // where the appends end (data.size() unless zeros follow)
    uint64_t synced = 0;            // appends durable: [0, synced)
    uint64_t synced_allocated = 0;  // data.size() at the last sync: zeros durable up to it
    bool name_durable = false;
  };
  std::map<std::string, File> files;

  class Writable final : public storage::WritableFile {
   public:
    Writable(MemEnv* env, std::string path) : env_(env), path_(std::move(path)) {}
    Status append(std::string_view data) override {
      File& f = env_->files[path_];
      f.data.replace(f.end, std::min<uint64_t>(data.size(), f.data.size() - f.end), data);
      f.end += data.size();
      return Status::ok();
    }
    Status preallocate(uint64_t end) override {
      File& f = env_->files[path_];
      if (end > f.data.size()) f.data.resize(end, '\0');
      return Status::ok();
    }
    Status sync() override {
      File& f = env_->files[path_];
      f.synced = f.end;
      f.synced_allocated = f.data.size();
      return Status::ok();
    }
    Status close() override { return Status::ok(); }
    uint64_t size() const override {
      auto it = env_->files.find(path_);
      return it == env_->files.end() ? 0 : it->second.end;
    }
    uint64_t allocated() const override {
      auto it = env_->files.find(path_);
      return it == env_->files.end() ? 0 : it->second.data.size();
    }

   private:
    MemEnv* env_;
    std::string path_;
  };

  class Reader final : public storage::RandomAccessFile {
   public:
    explicit Reader(std::string data) : data_(std::move(data)) {}
    Status read(uint64_t offset, size_t length, std::string* out) override {
      *out = offset < data_.size() ? data_.substr(offset, length) : std::string();
      return Status::ok();
    }
    uint64_t size() const override { return data_.size(); }

   private:
    std::string data_;  // the file as it was when opened
  };

  class Mapped final : public storage::MappedFile {
   public:
    explicit Mapped(std::string data) : data_(std::move(data)) {}
    std::string_view data() const override { return data_; }

   private:
    std::string data_;
  };

  Status new_writable_file(const std::string& path, std::unique_ptr<storage::WritableFile>* out) override {
    File& f = files[path];
    f.data.clear();
    f.end = f.synced = f.synced_allocated = 0;
    *out = std::make_unique<Writable>(this, path);
    return Status::ok();
  }
  Status new_appendable_file(const std::string& path, std::unique_ptr<storage::WritableFile>* out) override {
    files.try_emplace(path);
    *out = std::make_unique<Writable>(this, path);
    return Status::ok();
  }
  Status read_file(const std::string& path, std::string* out) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::not_found(path);
    *out = it->second.data;
    return Status::ok();
  }
  Status map_file(const std::string& path, std::unique_ptr<storage::MappedFile>* out) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::not_found(path);
    *out = std::make_unique<Mapped>(it->second.data);
    return Status::ok();
  }
  Status new_random_access_file(const std::string& path, std::unique_ptr<storage::RandomAccessFile>* out) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::not_found(path);
    *out = std::make_unique<Reader>(it->second.data);
    return Status::ok();
  }
  Status file_size(const std::string& path, uint64_t* size) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::not_found(path);
    *size = it->second.data.size();
    return Status::ok();
  }
  Status truncate_file(const std::string& path, uint64_t size) override {
    auto it = files.find(path);
    if (it == files.end()) return Status::not_found(path);
    File& f = it->second;
    if (size < f.data.size()) f.data.resize(size);
    f.end = std::min(f.end, size);
    f.synced = std::min(f.synced, size);
    f.synced_allocated = std::min(f.synced_allocated, size);
    return Status::ok();
  }
  Status list_dir(const std::string& dir, std::vector<std::string>* names) override {
    names->clear();
    std::string prefix = dir + "/";
    for (const auto& [path, f] : files)
      if (path.compare(0, prefix.size(), prefix) == 0) names->push_back(path.substr(prefix.size()));
    return Status::ok();
  }
  Status create_dir(const std::string&) override { return Status::ok(); }
  Status remove_file(const std::string& path) override {
    return files.erase(path) ? Status::ok() : Status::not_found(path);
  }
  Status rename_file(const std::string& from, const std::string& to) override {
    auto it = files.find(from);
    if (it == files.end()) return Status::not_found(from);
    File f = std::move(it->second);
    files.erase(it);
    f.name_durable = false;
    files[to] = std::move(f);
    return Status::ok();
  }
  Status sync_dir(const std::string&) override {
    for (auto& [path, f] : files) f.name_durable = true;
    return Status::ok();
  }
  bool file_exists(const std::string& path) override { return files.count(path) > 0; }
};

namespace {

// Byte offsets of the sound records of one segment (the reader's view).
std::vector<uint64_t> record_offsets(std::string_view data, bool last) {
  std::vector<uint64_t> offsets;
  storage::scan_segment(data, last, [&](uint64_t offset, const lf::RecordView&) {
    offsets.push_back(offset);
    return true;
  });
  return offsets;
}

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

}  // namespace

// ---------------------------------------------------------------------------------------

DataDir::DataDir() : env_(std::make_unique<MemEnv>()) {}
DataDir::~DataDir() = default;

bool DataDir::empty() const { return env_->files.empty() && !writer_; }

void DataDir::open_writer() {
  if (writer_) return;
  Status s = storage::LogWriter::open(env_.get(), kDir, storage::LogOptions{kSegmentBytes, kPreallocateBytes}, &writer_);
  HMDB_ASSERT(s.is_ok(), "sim: opening the log writer: %s", s.to_string().c_str());
}

void DataDir::append(const raft::HardState* hard_state, const std::vector<raft::Entry>& entries, bool sync) {
  if (!hard_state && entries.empty()) return;
  open_writer();
  Status s = writer_->append(hard_state, entries);
  if (s && sync) s = writer_->sync();
  HMDB_ASSERT(s.is_ok(), "sim: log append: %s", s.to_string().c_str());
}

void DataDir::compact(raft::Index index) {
  open_writer();
  Status s = writer_->compact(index);
  HMDB_ASSERT(s.is_ok(), "sim: log compaction: %s", s.to_string().c_str());
}

void DataDir::save_snapshot(const raft::SnapshotMeta& meta, std::string_view data) {
  std::unique_ptr<storage::SnapshotWriter> w;
  Status s = storage::SnapshotWriter::create(env_.get(), kDir, meta, RegisterApp::kName, &w);
  if (s) s = w->append(data);
  if (s) s = w->finish(nullptr);
  if (s) s = storage::remove_snapshots_before(env_.get(), kDir, meta.index);
  HMDB_ASSERT(s.is_ok(), "sim: writing a snapshot: %s", s.to_string().c_str());
  snapshot_meta_[meta.index] = meta;
}

DataDir::PowerLoss DataDir::power_loss(Tear tear, Rng& rng) {
  writer_.reset();
  PowerLoss out;
  std::string& what = out.what;
  for (auto it = env_->files.begin(); it != env_->files.end();) {
    MemEnv::File& f = it->second;
    const std::string name = base_name(it->first);
    if (!f.name_durable) {  // created since the last directory sync: the name is gone
      what += fmt::format(" {} (new, {} bytes) lost;", name, f.data.size());
      it = env_->files.erase(it);
      continue;
    }
    uint64_t size = f.end;
    if (size > f.synced || f.data.size() > f.synced_allocated) {
      uint64_t unsynced = size - f.synced;
      uint64_t keep = tear == Tear::kNone || unsynced == 0 ? 0 : rng.range(0, unsynced);
      // Lost appends inside zeros that were synced (the log's preallocation) are zeros
      // again; everything past both the kept appends and the synced zeros is gone.
      uint64_t length = std::max(f.synced + keep, std::min<uint64_t>(f.synced_allocated, f.data.size()));
      uint64_t zero_to = std::min(size, length);
      if (zero_to > f.synced + keep) {
        std::fill(f.data.begin() + static_cast<ptrdiff_t>(f.synced + keep),
                  f.data.begin() + static_cast<ptrdiff_t>(zero_to), '\0');
      }
      f.data.resize(length);
      f.end = f.synced + keep;
      out.torn |= keep > 0;
      what += fmt::format(" {}: {} of {} unsynced bytes kept", name, keep, unsynced);
      if (tear == Tear::kHole && keep > 0) {
        // Sectors that end inside the kept bytes (so that data after the hole survives).
        uint64_t end = f.synced + keep;
        uint64_t first = f.synced / kSectorBytes, last = (end - 1) / kSectorBytes;  // sectors touched
        if (last > first) {
          uint64_t s = rng.range(first, last - 1);
          uint64_t from = std::max(f.synced, s * kSectorBytes), to = (s + 1) * kSectorBytes;
          std::fill(f.data.begin() + static_cast<ptrdiff_t>(from), f.data.begin() + static_cast<ptrdiff_t>(to), '\0');
          out.hole = true;
          what += fmt::format(", bytes {}..{} never written (sector out of order)", from, to);
        }
      }
      what += ";";
    }
    f.synced = f.end;
    f.synced_allocated = f.data.size();
    ++it;
  }
  return out;
}

std::string DataDir::flip_log_bit(Rng& rng, bool allow_last_record) {
  std::vector<std::string> paths;
  storage::list_segments(env_.get(), kDir, &paths);
  std::vector<std::pair<std::string, uint64_t>> ranges;  // (path, damageable prefix length)
  uint64_t total = 0;
  for (size_t i = 0; i < paths.size(); i++) {
    const std::string& data = env_->files[paths[i]].data;
    uint64_t len = data.size();
    if (i + 1 == paths.size() && !allow_last_record) {
      std::vector<uint64_t> offsets = record_offsets(data, true);
      len = offsets.empty() ? 0 : offsets.back();  // everything before the last sound record
    }
    if (len == 0) continue;
    ranges.emplace_back(paths[i], len);
    total += len;
  }
  if (total == 0) return {};
  uint64_t at = rng.below(total);
  for (auto& [path, len] : ranges) {
    if (at >= len) { at -= len; continue; }
    int bit = static_cast<int>(rng.below(8));
    env_->files[path].data[at] ^= static_cast<char>(1 << bit);
    return fmt::format("bit {} of byte {} of {} flipped", bit, at, base_name(path));
  }
  return {};
}

std::string DataDir::flip_snapshot_bit(Rng& rng) {
  std::vector<std::string> paths;
  storage::list_snapshots(env_.get(), kDir, &paths);
  if (paths.empty()) return {};
  std::string& data = env_->files[paths.back()].data;
  uint64_t header = data.size() >= 16 ? lf::get_u32(data.data() + 12) : 0;
  uint64_t from = 0, to = data.size();
  if (header < data.size() && data.size() - header > storage::kSnapshotTrailerSize) {
    from = header;  // the payload: the bulk of any real snapshot
    to = data.size() - storage::kSnapshotTrailerSize;
  }
  if (to <= from) return {};
  uint64_t at = rng.range(from, to - 1);
  int bit = static_cast<int>(rng.below(8));
  data[at] ^= static_cast<char>(1 << bit);
  return fmt::format("bit {} of byte {} of {} flipped", bit, at, base_name(paths.back()));
}

std::string DataDir::lose_synced_tail(Rng& rng) {
  std::vector<std::string> paths;
  storage::list_segments(env_.get(), kDir, &paths);
  if (paths.empty()) return {};
  std::string& data = env_->files[paths.back()].data;
  std::vector<uint64_t> offsets = record_offsets(data, true);
  if (offsets.size() < 2) return {};  // keep the segment's leading hard-state copy
  uint64_t lose = rng.range(1, std::min<uint64_t>(3, offsets.size() - 1));
  uint64_t cut = offsets[offsets.size() - lose];
  uint64_t bytes = data.size() - cut;
  data.resize(cut);
  MemEnv::File& f = env_->files[paths.back()];
  f.end = f.synced = f.synced_allocated = cut;
  return fmt::format("the last {} synced records ({} bytes) of {} vanished (a lying fsync)", lose, bytes,
                     base_name(paths.back()));
}

Recovered DataDir::recover(const RecoveryBugs& bugs, bool clustered) {
  writer_.reset();
  Recovered out;
  auto refuse = [&](const std::string& why) {
    out.started = false;
    out.problem = why;
    return out;
  };

  // 1. The newest snapshot (a damaged one stops the server).
  raft::Index after = 0;
  storage::LoadedSnapshot snap;
  Status s = storage::read_latest_snapshot(env_.get(), kDir, &snap);
  if (s.is_ok()) {
    out.snapshot = snap.meta;
    out.snapshot_data.assign(snap.payload);
  } else if (s.is_corruption() && bugs.ignore_snapshot_checksum) {
    std::vector<std::string> paths;
    storage::list_snapshots(env_.get(), kDir, &paths);
    raft::Index index = 0;
    storage::parse_snapshot_file_name(base_name(paths.back()), &index);
    const std::string& data = env_->files[paths.back()].data;
    uint64_t header = data.size() >= 16 ? lf::get_u32(data.data() + 12) : 0;
    auto meta = snapshot_meta_.find(index);
    if (meta == snapshot_meta_.end() || header > data.size() || data.size() - header < storage::kSnapshotTrailerSize)
      return refuse(s.to_string());
    out.snapshot = meta->second;
    out.snapshot_data = data.substr(header, data.size() - header - storage::kSnapshotTrailerSize);
    out.notes.push_back("loaded a snapshot that fails its checksum (planted bug): " + s.message());
  } else if (!s.is_not_found()) {
    return refuse(s.to_string());
  }
  if (out.snapshot) {
    after = out.snapshot->index;
  }

  // 2. The log after it: a torn tail is cut; damage anywhere else stops the server.
  storage::RecoveredLog log;
  s = storage::recover_log(env_.get(), kDir, after, &log);
  for (int round = 0; !s && s.is_corruption() && bugs.cut_corrupt_log && round < 8; round++) {
    // The planted bug: cut the log where the damage is, as if it were a torn tail.
    std::string bad;
    uint64_t offset = 0;
    storage::ScanOptions scan_options;
    scan_options.repair = false;
    scan_options.keep_data = false;
    scan_options.on_segment = [&](const storage::SegmentReport& r) {
      if (bad.empty() && r.scan.end == storage::SegmentScan::End::kCorrupt) {
        bad = r.path;
        offset = r.scan.problem_offset;
      }
    };
    storage::RecoveredLog ignored;
    storage::scan_log(env_.get(), kDir, after, scan_options, &ignored);
    if (bad.empty()) break;
    std::vector<std::string> paths;
    storage::list_segments(env_.get(), kDir, &paths);
    bool later = false;
    for (const std::string& p : paths) {
      if (later) env_->remove_file(p);
      if (p == bad) later = true;
    }
    if (offset < lf::kSegmentHeaderSize) env_->remove_file(bad);
    else env_->truncate_file(bad, offset);
    out.notes.push_back(fmt::format("cut the log at byte {} of {} where it is damaged (planted bug)", offset, base_name(bad)));
    s = storage::recover_log(env_.get(), kDir, after, &log);
  }
  if (!s) return refuse(s.to_string());
  if (!log.torn_tail.empty()) out.notes.push_back("cut off a torn tail: " + log.torn_tail);

  // 3. What of it the node restarts with: the server's rules (storage/restart.h).
  storage::RestartLog kept =
      storage::restart_log(log, out.snapshot, clustered ? raft::kNoNode : 1, true, !bugs.keep_replaced_log);
  if (!kept.dropped.empty()) out.notes.push_back("dropped " + kept.dropped);
  out.hard_state = kept.hard_state;
  out.entries = std::move(kept.entries);

  // 4. The writer appends after what was read; rule 3's hard state goes first.
  s = storage::LogWriter::open(env_.get(), kDir, storage::LogOptions{kSegmentBytes, kPreallocateBytes}, &writer_);
  if (!s) return refuse(s.to_string());
  if (kept.write_hard_state) append(&out.hard_state, {}, true);
  return out;
}

}  // namespace hmdb::sim
