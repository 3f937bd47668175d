// fuzz/log_reader_fuzz.cc — libFuzzer target for the log segment reader: scan_segment()
// (torn tail vs corruption), record decoding, hard-state decoding and the command-batch
// decoder that `hmdb log dump` runs on entry payloads, all on untrusted bytes.
//
// Built two ways: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt), and with
// -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays a corpus (tests/storage), so
// CI can run the seeds without clang. `log_reader_fuzz_replay --make-seeds DIR` writes
// the seed corpus (fuzz/corpus/log_reader_fuzz).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "core/batch.h"
#include "storage/log.h"
#include "storage/log_format.h"

namespace {

namespace lf = hmdb::storage::log_format;
using hmdb::storage::SegmentScan;

void decode_batch(std::string_view payload) {
  // The structured walk: items (commands and groups) never outnumber what the batch
  // declares, a group never yields more commands than its size, every word is a view into
  // the payload.
  {
    hmdb::core::BatchReader reader(payload);
    hmdb::core::BatchStep step;
    uint64_t items = 0;
    uint64_t in_group = 0;
    while (reader.next(step)) {
      using Kind = hmdb::core::BatchStep::Kind;
      if (step.kind == Kind::kCommand || step.kind == Kind::kGroupCommand) {
        HMDB_ASSERT(!step.argv.empty(), "a decoded command has no words");
        for (auto a : step.argv) HMDB_ASSERT(a.data() >= payload.data() && a.data() + a.size() <= payload.data() + payload.size(), "argument outside the payload");
      }
      if (step.kind == Kind::kCommand || step.kind == Kind::kGroupBegin || step.kind == Kind::kActivation ||
          step.kind == Kind::kDigestMark || step.kind == Kind::kAcl)
        items++;
      if (step.kind == Kind::kAcl)
        HMDB_ASSERT(hmdb::core::acl_item_valid(step.acl_op, step.argv.size()), "an ACL item of op %u with %zu words",
                    step.acl_op, step.argv.size());
      if (step.kind == Kind::kActivation) HMDB_ASSERT(step.version > 0, "an activation of version 0");
      if (step.kind == Kind::kGroupBegin) in_group = 0;
      if (step.kind == Kind::kGroupCommand) HMDB_ASSERT(++in_group <= step.group_size, "more commands than the group declares");
      if (step.kind == Kind::kGroupEnd) HMDB_ASSERT(in_group == step.group_size, "a group ended short");
    }
    HMDB_ASSERT(items <= reader.count(), "more items than the batch declares");
  }
  // The flat walk (commands only, group or not) sees the same words.
  hmdb::core::BatchReader reader(payload);
  std::vector<std::string_view> argv;
  while (reader.next(argv)) {
    HMDB_ASSERT(!argv.empty(), "a decoded command has no words");
    for (auto a : argv) HMDB_ASSERT(a.data() >= payload.data() && a.data() + a.size() <= payload.data() + payload.size(), "argument outside the payload");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (bool last : {true, false}) {
    uint64_t expected_offset = lf::kSegmentHeaderSize;
    SegmentScan scan = hmdb::storage::scan_segment(in, last, [&](uint64_t offset, const lf::RecordView& r) {
      HMDB_ASSERT(offset == expected_offset, "records must be back to back");
      HMDB_ASSERT(offset + r.size <= in.size(), "record outside the input");
      HMDB_ASSERT(r.size == lf::kRecordOverhead + r.payload.size(), "record size mismatch");
      if (r.type == static_cast<uint8_t>(lf::RecordType::kHardState)) {
        lf::decode_hard_state(r);
      } else if (r.type == static_cast<uint8_t>(lf::RecordType::kEntryNormal)) {
        decode_batch(r.payload);
      }
      expected_offset = offset + r.size;
      return true;
    });
    HMDB_ASSERT(scan.good_bytes <= in.size(), "good_bytes beyond the input");
    if (scan.end == SegmentScan::End::kClean) {
      HMDB_ASSERT(scan.good_bytes + scan.zero_tail_bytes == in.size(), "clean scan must cover everything");
      HMDB_ASSERT(in.find_first_not_of('\0', scan.good_bytes) == std::string_view::npos,
                  "a zero tail must be all zeros");
    } else {
      HMDB_ASSERT(scan.zero_tail_bytes == 0, "a zero tail only ends a clean scan");
    }
    if (scan.end == SegmentScan::End::kTornTail) HMDB_ASSERT(last, "torn tail outside the last segment");
    if (scan.end != SegmentScan::End::kClean) HMDB_ASSERT(!scan.problem.empty(), "a problem must be described");
  }
  // The batch decoder on raw bytes too: checksums keep the fuzzer out of most payloads.
  decode_batch(in);
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <fstream>
#include <iostream>

#include "replay_main.h"

#include "storage/env.h"

namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::string seg;
  lf::append_segment_header(&seg, 1);
  lf::append_hard_state(&seg, hmdb::raft::HardState{3, 1, 2});
  hmdb::core::BatchBuilder b(1700000000000);
  std::vector<std::string_view> set{"SET", "key", std::string_view("v\0\xff", 3)};
  std::vector<std::string_view> incr{"INCR", "n"};
  b.add(hmdb::Args(set));
  b.add(hmdb::Args(incr));
  lf::append_entry(&seg, hmdb::raft::Entry{3, 1, hmdb::raft::EntryType::kNormal, 1, b.finish()});
  lf::append_entry(&seg, hmdb::raft::Entry{3, 2, hmdb::raft::EntryType::kNoop, 0, ""});
  lf::append_entry(&seg, hmdb::raft::Entry{3, 3, hmdb::raft::EntryType::kConfChange, 0, "conf"});
  write_seed(dir, "segment", seg);
  write_seed(dir, "segment-torn", seg.substr(0, seg.size() - 7));
  std::string flipped = seg;
  flipped[100] ^= 4;
  write_seed(dir, "segment-flipped", flipped);
  write_seed(dir, "segment-zeros", seg + std::string(64, '\0'));
  // The writer's preallocation: zeros after the records, also after a torn one.
  write_seed(dir, "segment-zero-tail", seg + std::string(4096, '\0'));
  write_seed(dir, "segment-torn-zero-tail", seg.substr(0, seg.size() - 7) + std::string(4096, '\0'));
  write_seed(dir, "header-only", seg.substr(0, lf::kSegmentHeaderSize));
  std::cout << "seeds written to " << dir << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
