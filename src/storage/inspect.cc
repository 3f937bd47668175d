// storage/inspect.cc — log_dump and log_verify (the `hmdb log` tools).
#include "storage/inspect.h"

#include <sys/stat.h>

#include <algorithm>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/batch.h"
#include "storage/env.h"
#include "storage/log.h"
#include "storage/snapshot.h"

namespace hmdb::storage {

namespace lf = log_format;

std::string escape_bytes(std::string_view bytes, size_t max_bytes) {
  std::string_view shown = bytes.substr(0, std::min(bytes.size(), max_bytes));
  bool plain = !bytes.empty() && std::all_of(shown.begin(), shown.end(), [](char c) {
    return c > ' ' && c < 127 && c != '"' && c != '\\';
  });
  std::string out;
  if (!plain) out += '"';
  for (char c : shown) {
    unsigned char u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 32 || u >= 127) {
          out += fmt::format("\\x{:02x}", u);
        } else {
          out += c;
        }
    }
  }
  if (!plain) out += '"';
  if (shown.size() < bytes.size()) out += fmt::format("...({} bytes in all)", bytes.size());
  return out;
}

namespace {

enum class FileKind { kSegment, kSnapshot, kOther };

std::string base_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

FileKind kind_of(const std::string& path, std::string_view data) {
  uint64_t n = 0;
  std::string name = base_name(path);
  if (lf::parse_segment_file_name(name, &n)) return FileKind::kSegment;
  if (parse_snapshot_file_name(name, &n)) return FileKind::kSnapshot;
  // Renamed or copied files: go by the magic.
  if (data.substr(0, 8) == std::string_view(lf::kSegmentMagic, 8)) return FileKind::kSegment;
  if (data.substr(0, 8) == std::string_view(kSnapshotMagic, 8)) return FileKind::kSnapshot;
  return FileKind::kOther;
}

bool is_dir(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

void dump_batch(std::string_view payload, std::ostream& out) {
  if (payload.empty()) {
    out << "      (empty payload)\n";
    return;
  }
  core::BatchReader reader(payload);
  if (!reader.ok()) {
    out << fmt::format("      payload is not a valid command batch (format byte {})\n",
                       static_cast<unsigned>(static_cast<uint8_t>(payload[0])));
    return;
  }
  out << fmt::format("      batch: leader_time_ms={} commands={}\n", reader.leader_time_ms(), reader.count());
  core::BatchStep step;
  uint64_t shown = 0;
  while (reader.next(step)) {
    if (step.kind == core::BatchStep::Kind::kActivation) {
      out << fmt::format("      activate schema version {}\n", step.version);
      continue;
    }
    if (step.kind == core::BatchStep::Kind::kDigestMark) {
      out << "      digest mark\n";
      continue;
    }
    if (step.kind == core::BatchStep::Kind::kAcl) {
      // Passwords are logged as digests (core/acl.h: acl_rules_for_log); a text (LOAD, SEED)
      // is shown by its size: one line per user would drown the entry.
      static constexpr std::string_view kOps[] = {"?", "SETUSER", "DELUSER", "LOAD", "SEED"};
      std::string line = fmt::format("      acl {}", kOps[step.acl_op < 5 ? step.acl_op : 0]);
      if (step.acl_op == 3 || step.acl_op == 4) {
        line += fmt::format(" ({} bytes of users)", step.argv[0].size());
      } else {
        for (std::string_view w : step.argv) line += " " + escape_bytes(w);
      }
      out << line << '\n';
      continue;
    }
    if (step.kind != core::BatchStep::Kind::kCommand && step.kind != core::BatchStep::Kind::kGroupCommand) continue;
    std::string line = "      ";
    for (size_t i = 0; i < step.argv.size(); i++) {
      if (i > 0) line += ' ';
      line += escape_bytes(step.argv[i]);
    }
    out << line << '\n';
    shown++;
  }
  if (!reader.ok()) out << fmt::format("      malformed command batch after {} commands\n", shown);
}

// ", then N bytes of preallocated zeros" when a sound segment ends in them, else "".
std::string zero_tail_text(const SegmentScan& scan) {
  if (scan.zero_tail_bytes == 0) return {};
  return fmt::format(", then {} bytes of preallocated zeros (no record)", scan.zero_tail_bytes);
}

// Returns true if the segment is sound (torn tails count as sound when allowed).
bool dump_segment(const std::string& path, std::string_view data, bool last_segment, std::ostream& out) {
  out << fmt::format("== {} ({} bytes)\n", path, data.size());
  lf::SegmentHeader header;
  std::string header_problem;
  if (lf::decode_segment_header(data, &header, &header_problem)) {
    out << fmt::format("   header: format {}, first index {}\n", header.format_version, header.first_index);
  }
  SegmentScan scan = scan_segment(data, last_segment, [&](uint64_t offset, const lf::RecordView& r) {
    if (r.type == static_cast<uint8_t>(lf::RecordType::kHardState)) {
      raft::HardState hs = lf::decode_hard_state(r);
      out << fmt::format("@{} hardstate term={} vote={} commit={}\n", offset, hs.term, hs.vote, hs.commit);
      return true;
    }
    out << fmt::format("@{} {} term={} index={} schema={} payload={} bytes\n", offset, lf::record_type_name(r.type),
                       r.term, r.index, r.schema_version, r.payload.size());
    if (r.type == static_cast<uint8_t>(lf::RecordType::kEntryNormal)) {
      dump_batch(r.payload, out);
    } else if (!r.payload.empty()) {
      out << "      data " << escape_bytes(r.payload) << '\n';
    }
    return true;
  });
  switch (scan.end) {
    case SegmentScan::End::kClean:
      out << fmt::format("   end: clean, {} records{}\n", scan.records, zero_tail_text(scan));
      return true;
    case SegmentScan::End::kTornTail:
      out << fmt::format("   end: TORN TAIL at offset {}: {} ({} bytes would be cut at the next start)\n",
                         scan.problem_offset, scan.problem, data.size() - scan.good_bytes);
      return true;
    default:
      out << fmt::format("   end: CORRUPT at offset {}: {}\n", scan.problem_offset, scan.problem);
      return false;
  }
}

bool dump_snapshot(const std::string& path, std::string_view data, std::ostream& out) {
  out << fmt::format("== {} ({} bytes)\n", path, data.size());
  SnapshotHeader h;
  std::string_view payload;
  Status s = decode_snapshot(data, path, &h, &payload);
  if (!s) {
    out << "   " << s.message() << '\n';
    return false;
  }
  auto list = [](const std::vector<raft::NodeId>& v) { return fmt::format("[{}]", fmt::join(v, ",")); };
  out << fmt::format("   snapshot: app={} schema={} index={} term={} voters={} learners={}\n", escape_bytes(h.app_name),
                     h.meta.schema_version, h.meta.index, h.meta.term, list(h.meta.conf.voters),
                     list(h.meta.conf.learners));
  if (!h.cluster_info.empty()) out << fmt::format("   members: {}\n", escape_bytes(h.cluster_info));
  out << fmt::format("   header {} bytes, payload {} bytes, checksums ok\n", h.header_bytes, payload.size());
  return true;
}

// Files of a directory we know how to read, segments in log order then snapshots.
Status collect(Env* env, const std::string& dir, std::vector<std::string>* segments,
               std::vector<std::string>* snapshots) {
  Status s = list_segments(env, dir, segments);
  if (s) s = list_snapshots(env, dir, snapshots);
  return s;
}

}  // namespace

int log_dump(const std::string& path_or_dir, std::ostream& out) {
  Env* env = Env::posix();
  bool sound = true;
  std::string data;
  if (is_dir(path_or_dir)) {
    std::vector<std::string> segments, snapshots;
    Status s = collect(env, path_or_dir, &segments, &snapshots);
    if (!s) {
      out << "error: " << s.to_string() << '\n';
      return 1;
    }
    if (segments.empty() && snapshots.empty()) out << "no log segments or snapshots in " << path_or_dir << '\n';
    for (size_t i = 0; i < segments.size(); i++) {
      s = env->read_file(segments[i], &data);
      if (!s) {
        out << "error: " << s.to_string() << '\n';
        sound = false;
        continue;
      }
      sound &= dump_segment(segments[i], data, i + 1 == segments.size(), out);
    }
    for (const auto& path : snapshots) {
      std::unique_ptr<MappedFile> m;
      s = env->map_file(path, &m);
      if (!s) {
        out << "error: " << s.to_string() << '\n';
        sound = false;
        continue;
      }
      sound &= dump_snapshot(path, m->data(), out);
    }
    return sound ? 0 : 1;
  }
  std::unique_ptr<MappedFile> m;
  Status s = env->map_file(path_or_dir, &m);
  if (!s) {
    out << "error: " << s.to_string() << '\n';
    return 1;
  }
  switch (kind_of(path_or_dir, m->data())) {
    case FileKind::kSegment: sound = dump_segment(path_or_dir, m->data(), true, out); break;
    case FileKind::kSnapshot: sound = dump_snapshot(path_or_dir, m->data(), out); break;
    case FileKind::kOther:
      out << path_or_dir << ": neither an hmdb log segment nor a snapshot (unknown name and magic)\n";
      sound = false;
  }
  return sound ? 0 : 1;
}

int log_verify(const std::string& path_or_dir, std::ostream& out) {
  Env* env = Env::posix();
  if (!is_dir(path_or_dir)) {
    std::unique_ptr<MappedFile> m;
    Status s = env->map_file(path_or_dir, &m);
    if (!s) {
      out << "error: " << s.to_string() << '\n';
      return 1;
    }
    switch (kind_of(path_or_dir, m->data())) {
      case FileKind::kSegment: {
        SegmentScan scan = scan_segment(m->data(), true, nullptr);
        if (scan.end == SegmentScan::End::kClean) {
          out << fmt::format("{}: sound, {} records{}\n", path_or_dir, scan.records, zero_tail_text(scan));
          return 0;
        }
        if (scan.end == SegmentScan::End::kTornTail) {
          out << fmt::format("{}: {} sound records, then a torn tail at offset {} ({}); if this is the last segment "
                             "the next start cuts it, otherwise it is corruption\n",
                             path_or_dir, scan.records, scan.problem_offset, scan.problem);
          return 0;
        }
        out << fmt::format("{}: CORRUPT at offset {}: {} (after {} sound records)\n", path_or_dir, scan.problem_offset,
                           scan.problem, scan.records);
        return 1;
      }
      case FileKind::kSnapshot: {
        SnapshotHeader h;
        std::string_view payload;
        s = decode_snapshot(m->data(), path_or_dir, &h, &payload);
        if (!s) {
          out << "CORRUPT: " << s.message() << '\n';
          return 1;
        }
        out << fmt::format("{}: sound snapshot at index {} term {}, {} payload bytes\n", path_or_dir, h.meta.index,
                           h.meta.term, payload.size());
        return 0;
      }
      case FileKind::kOther:
        out << path_or_dir << ": neither an hmdb log segment nor a snapshot\n";
        return 1;
    }
  }

  bool sound = true;
  std::vector<std::string> segments, snapshots;
  Status s = collect(env, path_or_dir, &segments, &snapshots);
  if (!s) {
    out << "error: " << s.to_string() << '\n';
    return 1;
  }
  // Snapshots first: recovery starts from the newest one and replays the log after it.
  raft::Index after_index = 0;
  for (size_t i = 0; i < snapshots.size(); i++) {
    LoadedSnapshot snap;
    s = read_snapshot_file(env, snapshots[i], &snap);
    bool newest = i + 1 == snapshots.size();
    if (!s) {
      out << fmt::format("{}: {}{}\n", snapshots[i], s.to_string(),
                         newest ? " -- this is the newest snapshot: the server will not start" : "");
      if (newest) sound = false;
      continue;
    }
    after_index = snap.meta.index;
    out << fmt::format("{}: sound snapshot at index {} term {} (app {}, schema {}), {} payload bytes\n", snapshots[i],
                       snap.meta.index, snap.meta.term, escape_bytes(snap.app_name), snap.meta.schema_version,
                       snap.payload.size());
  }
  if (snapshots.empty()) out << "no snapshots\n";

  ScanOptions options;
  options.repair = false;
  options.keep_data = false;
  options.on_segment = [&](const SegmentReport& r) {
    std::string entries = r.entries == 0 ? "no entries" : fmt::format("{} entries {}..{}", r.entries, r.first_index, r.last_index);
    switch (r.scan.end) {
      case SegmentScan::End::kClean:
        out << fmt::format("{}: sound, {} bytes, {} records ({}, {} hard states){}\n", r.path, r.bytes, r.records,
                           entries, r.hard_states, zero_tail_text(r.scan));
        break;
      case SegmentScan::End::kTornTail:
        out << fmt::format("{}: {} sound records ({}), then a torn tail at offset {}: {}; the next start cuts {} bytes "
                           "(nothing acknowledged is lost: a torn record was never synced)\n",
                           r.path, r.records, entries, r.scan.problem_offset, r.scan.problem,
                           r.bytes - r.scan.good_bytes);
        break;
      default:
        out << fmt::format("{}: CORRUPT at offset {}: {} (after {} sound records)\n", r.path, r.scan.problem_offset,
                           r.scan.problem, r.records);
    }
  };
  RecoveredLog log;
  s = scan_log(env, path_or_dir, after_index, options, &log);
  if (!s) {
    out << "log: " << s.to_string() << '\n';
    sound = false;
  } else {
    std::string range = log.entries.empty()
                            ? "no entries after the snapshot"
                            : fmt::format("entries {}..{}", log.entries.front().index, log.entries.back().index);
    out << fmt::format("log: {} segments, {} records, {} bytes; {} replayable after index {}; hard state term={} "
                       "vote={} commit={}\n",
                       log.segments, log.records, log.bytes, range, after_index, log.hard_state.term,
                       log.hard_state.vote, log.hard_state.commit);
  }
  out << (sound ? "verdict: SOUND\n" : "verdict: NOT SOUND (the server will refuse to start)\n");
  return sound ? 0 : 1;
}

}  // namespace hmdb::storage
