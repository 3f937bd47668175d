// storage/snapshot.cc — writing snapshot files (streamed, hashed, temp + rename) and
// reading them back (mmap, verified before the payload is exposed).
#include "storage/snapshot.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "common/assert.h"
#include "hmdb/codec.h"
#include "hmdb/text.h"

namespace hmdb::storage {

namespace {

constexpr size_t kIndexDigits = 20;

std::string snapshot_advice(const std::string& path) {
  return fmt::format(
      "The server will not start from a damaged snapshot. Restore this node from a peer, or move {} out of the "
      "data directory to fall back to the previous snapshot (only if the log still covers everything after it); "
      "`hmdb log verify` shows what is sound.",
      path);
}

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

std::string snapshot_file_name(raft::Index index) {
  std::string digits = std::to_string(index);
  return std::string(kSnapshotPrefix) + std::string(kIndexDigits - digits.size(), '0') + digits +
         std::string(kSnapshotSuffix);
}

bool parse_snapshot_file_name(std::string_view name, raft::Index* index) {
  if (name.size() != kSnapshotPrefix.size() + kIndexDigits + kSnapshotSuffix.size()) return false;
  if (name.substr(0, kSnapshotPrefix.size()) != kSnapshotPrefix) return false;
  if (name.substr(kSnapshotPrefix.size() + kIndexDigits) != kSnapshotSuffix) return false;
  return parse_uint64(name.substr(kSnapshotPrefix.size(), kIndexDigits), index);
}

// ================================ writing ================================

class SnapshotWriter::HashingSink final : public Sink {
 public:
  explicit HashingSink(SnapshotWriter* w) : w_(w) {}
  void write(std::string_view bytes) override {
    if (!w_->status_) return;  // sticky: finish() reports the first error
    w_->payload_bytes_ += bytes.size();
    Status s = w_->write(bytes);
    if (!s) w_->status_ = s;
  }

 private:
  SnapshotWriter* w_;
};

Status SnapshotWriter::create(Env* env, const std::string& dir, const raft::SnapshotMeta& meta,
                              std::string_view app_name, std::unique_ptr<SnapshotWriter>* out,
                              std::string_view cluster_info, std::string_view temp_suffix) {
  if (app_name.size() > kMaxAppNameBytes) return Status::invalid_argument("app name too long for a snapshot header");
  if (cluster_info.size() > kMaxClusterInfoBytes) return Status::invalid_argument("cluster info too long for a snapshot header");
  if (meta.conf.voters.size() > kMaxConfNodes || meta.conf.learners.size() > kMaxConfNodes) {
    return Status::invalid_argument("too many nodes for a snapshot header");
  }
  std::unique_ptr<SnapshotWriter> w(new SnapshotWriter());
  w->env_ = env;
  w->dir_ = dir;
  w->final_path_ = path_join(dir, snapshot_file_name(meta.index));
  w->temp_path_ = w->final_path_ + std::string(temp_suffix);
  Status s = env->create_dir(dir);
  if (!s) return s;
  s = env->new_writable_file(w->temp_path_, &w->file_);
  if (!s) return s;
  auto* state = XXH3_createState();
  HMDB_ASSERT(state != nullptr, "out of memory for a hash state");
  XXH3_64bits_reset(state);
  w->hash_state_ = state;
  w->sink_ = std::make_unique<HashingSink>(w.get());

  size_t header_bytes = kSnapshotMinHeaderBytes + app_name.size() + 8 * (meta.conf.voters.size() + meta.conf.learners.size()) +
                        4 + cluster_info.size();
  std::string h;
  h.reserve(header_bytes);
  Encoder e(&h);
  e.raw(std::string_view(kSnapshotMagic, sizeof kSnapshotMagic));
  e.u32(kSnapshotFormatVersion);
  e.u32(static_cast<uint32_t>(header_bytes));
  e.u64(meta.index);
  e.u64(meta.term);
  e.u32(meta.schema_version);
  e.u16(static_cast<uint16_t>(app_name.size()));
  e.raw(app_name);
  e.u32(static_cast<uint32_t>(meta.conf.voters.size()));
  for (auto v : meta.conf.voters) e.u64(v);
  e.u32(static_cast<uint32_t>(meta.conf.learners.size()));
  for (auto v : meta.conf.learners) e.u64(v);
  e.u32(static_cast<uint32_t>(cluster_info.size()));
  e.raw(cluster_info);
  e.u64(XXH3_64bits(h.data(), h.size()));
  HMDB_ASSERT(h.size() == header_bytes, "snapshot header size mismatch");
  s = w->write(h);
  if (!s) return s;
  *out = std::move(w);
  return Status::ok();
}

SnapshotWriter::~SnapshotWriter() {
  if (hash_state_ != nullptr) XXH3_freeState(static_cast<XXH3_state_t*>(hash_state_));
  if (!finished_ && env_ != nullptr) {
    if (file_) file_->close();
    env_->remove_file(temp_path_);  // best effort: a leftover .tmp is removed at startup
  }
}

Status SnapshotWriter::write(std::string_view bytes) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_state_), bytes.data(), bytes.size());
  return file_->append(bytes);
}

Sink* SnapshotWriter::sink() { return sink_.get(); }

Status SnapshotWriter::append(std::string_view payload_bytes) {
  sink_->write(payload_bytes);
  return status_;
}

Status SnapshotWriter::finish(std::string* path_out) {
  HMDB_ASSERT(!finished_, "finish() called twice");
  if (!status_) return status_;
  char trailer[kSnapshotTrailerSize];
  codec::put_u64(trailer, payload_bytes_);
  XXH3_64bits_update(static_cast<XXH3_state_t*>(hash_state_), trailer, 8);
  codec::put_u64(trailer + 8, XXH3_64bits_digest(static_cast<XXH3_state_t*>(hash_state_)));
  Status s = file_->append(std::string_view(trailer, sizeof trailer));
  if (s) s = file_->sync();
  if (s) s = file_->close();
  if (s) s = env_->rename_file(temp_path_, final_path_);
  if (s) s = env_->sync_dir(dir_);
  if (!s) {
    status_ = s;
    return s;
  }
  finished_ = true;
  if (path_out != nullptr) *path_out = final_path_;
  return Status::ok();
}

Status write_snapshot(Env* env, const std::string& dir, const raft::SnapshotMeta& meta, std::string_view app_name,
                      const std::function<void(Encoder&)>& body, std::string* path_out,
                      std::string_view cluster_info) {
  std::unique_ptr<SnapshotWriter> w;
  Status s = SnapshotWriter::create(env, dir, meta, app_name, &w, cluster_info);
  if (!s) return s;
  Encoder enc(w->sink());
  body(enc);
  enc.finish();
  return w->finish(path_out);
}

// ================================ reading ================================

Status decode_snapshot(std::string_view file, const std::string& name, SnapshotHeader* header,
                       std::string_view* payload) {
  auto bad = [&](uint64_t offset, const std::string& what) {
    return Status::corruption(fmt::format("snapshot {} at byte offset {}: {}. {}", name, offset, what,
                                          snapshot_advice(name)));
  };
  if (file.size() < kSnapshotMinHeaderBytes + kSnapshotTrailerSize) {
    return bad(0, fmt::format("file is {} bytes, shorter than the smallest snapshot ({} bytes); truncated?",
                              file.size(), kSnapshotMinHeaderBytes + kSnapshotTrailerSize));
  }
  const char* p = file.data();
  if (std::memcmp(p, kSnapshotMagic, sizeof kSnapshotMagic) != 0) return bad(0, "bad magic (expected \"HMDBSNP1\")");
  uint32_t version = codec::get_u32(p + 8);
  const bool readable = version >= kSnapshotOldestFormatVersion && version <= kSnapshotFormatVersion;
  const std::string unsupported = fmt::format("unsupported snapshot format version {} (this build reads {} to {})",
                                              version, kSnapshotOldestFormatVersion, kSnapshotFormatVersion);
  uint64_t header_bytes = codec::get_u32(p + 12);
  if (header_bytes < kSnapshotMinHeaderBytes || header_bytes > kSnapshotMaxHeaderBytes ||
      header_bytes > file.size() - kSnapshotTrailerSize) {
    return bad(readable ? 12 : 8, readable ? fmt::format("impossible header length {}", header_bytes) : unsupported);
  }
  uint64_t header_sum_at = header_bytes - 8;
  if (codec::get_u64(p + header_sum_at) != XXH3_64bits(p, header_sum_at)) {
    if (!readable) return bad(8, unsupported + ", and the header checksum does not match: damaged");
    return bad(header_sum_at, fmt::format("header checksum mismatch (header bytes 0..{} are damaged)", header_bytes));
  }
  if (!readable) {
    // Every format frames its header alike (magic, version, length ... checksum), and this
    // one's checksum holds: not damage, another hmdb's file (exit 1, not corruption's 2).
    return Status::not_supported(fmt::format(
        "snapshot {}: {}: written by {} hmdb. Start the binary that wrote it on this directory (a node is never "
        "moved back to an older binary: docs/operations.md), or remove the node and add it again empty",
        name, unsupported, version > kSnapshotFormatVersion ? "a newer" : "a much older"));
  }
  // The header checksum matched, so the fields below were written this way; the length
  // checks still guard against a writer bug (and fuzzed input).
  SnapshotHeader h;
  h.format_version = version;
  h.header_bytes = header_bytes;
  h.meta.index = codec::get_u64(p + 16);
  h.meta.term = codec::get_u64(p + 24);
  h.meta.schema_version = codec::get_u32(p + 32);
  uint64_t at = 36;
  uint64_t name_len = codec::get_u16(p + at);
  at += 2;
  auto fits = [&](uint64_t n) { return at + n <= header_sum_at; };
  if (name_len > kMaxAppNameBytes || !fits(name_len)) return bad(36, "app name length out of bounds");
  h.app_name.assign(p + at, name_len);
  at += name_len;
  for (auto* list : {&h.meta.conf.voters, &h.meta.conf.learners}) {
    if (!fits(4)) return bad(at, "node list runs past the header");
    uint64_t count = codec::get_u32(p + at);
    at += 4;
    if (count > kMaxConfNodes || !fits(8 * count)) return bad(at - 4, fmt::format("node count {} out of bounds", count));
    for (uint64_t i = 0; i < count; i++, at += 8) list->push_back(codec::get_u64(p + at));
  }
  if (version >= 2) {
    if (!fits(4)) return bad(at, "cluster info length runs past the header");
    uint64_t info_len = codec::get_u32(p + at);
    at += 4;
    if (info_len > kMaxClusterInfoBytes || !fits(info_len)) return bad(at - 4, "cluster info length out of bounds");
    h.cluster_info.assign(p + at, info_len);
    at += info_len;
  }
  if (at != header_sum_at) return bad(at, "header length does not match its fields");

  uint64_t trailer_at = file.size() - kSnapshotTrailerSize;
  uint64_t payload_len = codec::get_u64(p + trailer_at);
  if (payload_len != trailer_at - header_bytes) {
    return bad(trailer_at, fmt::format("trailer says the payload is {} bytes but the file holds {} (truncated or "
                                       "extended file)",
                                       payload_len, trailer_at - header_bytes));
  }
  uint64_t sum_at = file.size() - 8;
  if (codec::get_u64(p + sum_at) != XXH3_64bits(p, sum_at)) {
    return bad(header_bytes, fmt::format("checksum mismatch: the payload (bytes {}..{}) or the trailer is damaged",
                                         header_bytes, trailer_at));
  }
  raft::Index from_name = 0;
  if (parse_snapshot_file_name(base_name(name), &from_name) && from_name != h.meta.index) {
    return bad(16, fmt::format("header says index {} but the file name says {} (renamed file?)", h.meta.index,
                               from_name));
  }
  *header = std::move(h);
  *payload = file.substr(header_bytes, payload_len);
  return Status::ok();
}

Status read_snapshot_file(Env* env, const std::string& path, LoadedSnapshot* out) {
  std::unique_ptr<MappedFile> mapped;
  Status s = env->map_file(path, &mapped);
  if (!s) return s;
  std::shared_ptr<MappedFile> mapping(std::move(mapped));
  SnapshotHeader header;
  std::string_view payload;
  s = decode_snapshot(mapping->data(), path, &header, &payload);
  if (!s) return s;
  out->meta = std::move(header.meta);
  out->format_version = header.format_version;
  out->app_name = std::move(header.app_name);
  out->cluster_info = std::move(header.cluster_info);
  out->path = path;
  out->payload = payload;
  out->file_bytes = mapping->data().size();
  out->header_bytes = header.header_bytes;
  out->mapping = std::move(mapping);
  return Status::ok();
}

Status list_snapshots(Env* env, const std::string& dir, std::vector<std::string>* paths) {
  paths->clear();
  std::vector<std::string> names;
  Status s = env->list_dir(dir, &names);
  if (s.is_not_found()) return Status::ok();
  if (!s) return s;
  std::vector<std::pair<raft::Index, std::string>> found;
  for (const auto& n : names) {
    raft::Index index = 0;
    if (parse_snapshot_file_name(n, &index)) found.emplace_back(index, n);
  }
  std::sort(found.begin(), found.end());
  for (auto& [index, n] : found) paths->push_back(path_join(dir, n));
  return Status::ok();
}

Status read_latest_snapshot(Env* env, const std::string& dir, LoadedSnapshot* out, bool remove_stale_temp_files) {
  if (remove_stale_temp_files) {
    std::vector<std::string> names;
    Status s = env->list_dir(dir, &names);
    if (!s && !s.is_not_found()) return s;
    bool removed = false;
    for (const auto& n : names) {
      raft::Index index = 0;
      auto stale = [&](std::string_view suffix) {
        return n.size() > suffix.size() && n.ends_with(suffix) &&
               parse_snapshot_file_name(std::string_view(n).substr(0, n.size() - suffix.size()), &index);
      };
      if (stale(kTempSuffix) || stale(kSlicesTempSuffix)) {
        s = env->remove_file(path_join(dir, n));
        if (!s) return s;
        removed = true;
      }
    }
    if (removed) {
      Status s2 = env->sync_dir(dir);
      if (!s2) return s2;
    }
  }
  std::vector<std::string> paths;
  Status s = list_snapshots(env, dir, &paths);
  if (!s) return s;
  if (paths.empty()) return Status::not_found("no snapshot in " + dir);
  return read_snapshot_file(env, paths.back(), out);
}

Status remove_snapshots_before(Env* env, const std::string& dir, raft::Index index) {
  std::vector<std::string> paths;
  Status s = list_snapshots(env, dir, &paths);
  if (!s) return s;
  bool removed = false;
  for (const auto& path : paths) {
    raft::Index i = 0;
    parse_snapshot_file_name(base_name(path), &i);
    if (i >= index) break;
    s = env->remove_file(path);
    if (!s) return s;
    removed = true;
  }
  if (removed) s = env->sync_dir(dir);
  return s;
}

}  // namespace hmdb::storage
