// fuzz/snapshot_reader_fuzz.cc — libFuzzer target for the snapshot reader:
// decode_snapshot() (header fields, bounds, header and whole-file checksums) on untrusted
// bytes, then a generic walk of the payload with the codec's Decoder.
//
// Built two ways: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt), and with
// -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays a corpus (tests/storage), so
// CI can run the seeds without clang. `snapshot_reader_fuzz_replay --make-seeds DIR`
// writes the seed corpus (fuzz/corpus/snapshot_reader_fuzz).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/assert.h"
#include "hmdb/codec.h"
#include "storage/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  hmdb::storage::SnapshotHeader header;
  std::string_view payload;
  // A name that parses as a snapshot file name exercises the index-vs-name check too.
  for (const char* name : {"fuzz-input", "snap-00000000000000000007.hmsnap"}) {
    hmdb::Status s = hmdb::storage::decode_snapshot(in, name, &header, &payload);
    if (!s) {
      // Or a format this build does not read, under an intact header (another binary's file).
      HMDB_ASSERT(s.is_corruption() || (s.code() == hmdb::Status::Code::kNotSupported &&
                                        s.message().find("unsupported snapshot format version") != std::string::npos),
                  "a bad snapshot must be corruption: %s", s.to_string().c_str());
      continue;
    }
    HMDB_ASSERT(payload.data() >= in.data() && payload.data() + payload.size() <= in.data() + in.size(),
                "payload outside the input");
    HMDB_ASSERT(header.app_name.size() <= hmdb::storage::kMaxAppNameBytes, "app name over its bound");
    HMDB_ASSERT(header.header_bytes + payload.size() + hmdb::storage::kSnapshotTrailerSize == in.size(),
                "header + payload + trailer must be the whole file");
    hmdb::Decoder d(payload);
    while (d.ok() && d.remaining() > 0) {
      d.varint();
      d.bytes();
    }
  }
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <fstream>
#include <iostream>

#include "replay_main.h"

#include "storage/env.h"

namespace {

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::string tmp = (std::filesystem::temp_directory_path() / "hmdb-snapshot-seed-XXXXXX").string();
  if (::mkdtemp(tmp.data()) == nullptr) return 1;
  hmdb::raft::SnapshotMeta meta{7, 2, {{1, 2, 3}, {4}}, 1};
  std::string path;
  hmdb::Status s = hmdb::storage::write_snapshot(hmdb::storage::Env::posix(), tmp, meta, "kv", [](hmdb::Encoder& e) {
    e.varint(2);
    e.bytes("key");
    e.bytes("value");
    e.bytes("counter");
    e.bytes("42");
  }, &path);
  if (!s) {
    std::cerr << s.to_string() << "\n";
    return 1;
  }
  std::filesystem::copy_file(path, dir / "snapshot", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove_all(tmp);
  std::cout << "seeds written to " << dir << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
