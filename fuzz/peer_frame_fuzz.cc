// fuzz/peer_frame_fuzz.cc — libFuzzer target for the peer protocol (src/net/peer_protocol):
// FrameParser on a byte stream fed in pieces, and decode_hello/decode_message/decode_refusal
// on every frame body and on the raw input itself (the checksum keeps the fuzzer out of
// framed bodies, so the decoders are also fed directly).
//
// Properties: no crash or out-of-bounds read; frames never extend past the input; split
// points do not change the frames or the outcome; a body that decodes re-encodes to the
// same bytes (the encoding is canonical, so nothing in a frame is silently ignored).
//
// Built two ways like the other targets: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt),
// and with -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays the corpus (tests/net).
// `peer_frame_fuzz_replay --make-seeds DIR` writes the seed corpus (fuzz/corpus/peer_frame_fuzz).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "net/peer_protocol.h"

namespace {

namespace peer = hmdb::net::peer;

void check_body(std::string_view body) {
  std::string error;
  peer::Hello hello;
  if (peer::decode_hello(body, &hello, &error)) {
    std::string again = peer::encode_hello_frame(0, hello).substr(peer::kFrameHeaderBytes);
    HMDB_ASSERT(again == body, "hello re-encodes differently");
  } else {
    HMDB_ASSERT(!error.empty(), "hello refused without a reason");
  }
  error.clear();
  peer::Refusal refusal;
  if (peer::decode_refusal(body, &refusal, &error)) {
    HMDB_ASSERT(refusal.text.size() <= peer::kMaxRefusalTextBytes, "refusal text over the bound accepted");
    std::string again = peer::encode_refusal_frame(0, refusal);
    HMDB_ASSERT(again.size() <= peer::kMaxRefusalFrameBytes, "refusal frame over the bound");
    HMDB_ASSERT(std::string_view(again).substr(peer::kFrameHeaderBytes) == body, "refusal re-encodes differently");
  } else {
    HMDB_ASSERT(!error.empty(), "refusal refused without a reason");
  }
  error.clear();
  hmdb::raft::Message m;
  if (peer::decode_message(body, &m, &error)) {
    HMDB_ASSERT(m.entries.size() <= peer::kMaxEntriesPerMessage, "too many entries accepted");
    std::string again;
    peer::append_message_frame(&again, 0, m);
    HMDB_ASSERT(again.size() == peer::message_frame_bytes(m), "frame size mismatch");
    HMDB_ASSERT(std::string_view(again).substr(peer::kFrameHeaderBytes) == body, "message re-encodes differently");
  } else {
    HMDB_ASSERT(!error.empty(), "message refused without a reason");
  }
}

struct Outcome {
  std::vector<std::pair<uint8_t, std::string>> frames;  // kind, body
  bool error = false;
  bool operator==(const Outcome&) const = default;
};

Outcome run(const std::string& input, size_t piece, uint32_t max_body) {
  peer::FrameParser parser(max_body);
  Outcome out;
  std::string buf;
  for (size_t fed = 0; fed < input.size();) {
    size_t n = std::min(piece, input.size() - fed);
    buf.append(input, fed, n);
    fed += n;
    while (true) {
      size_t consumed = 0;
      peer::Frame frame;
      std::string error;
      auto r = parser.parse(buf.data(), buf.size(), &consumed, &frame, &error);
      if (r == peer::FrameParser::Result::kError) {
        HMDB_ASSERT(!error.empty(), "error without message");
        out.error = true;
        return out;
      }
      if (r == peer::FrameParser::Result::kNeedMore) {
        HMDB_ASSERT(consumed == 0, "consumed bytes without a frame");
        break;
      }
      HMDB_ASSERT(consumed == peer::kFrameHeaderBytes + frame.body.size() && consumed <= buf.size(), "bad consumed");
      HMDB_ASSERT(frame.body.data() == buf.data() + peer::kFrameHeaderBytes, "body not inside the frame");
      HMDB_ASSERT(frame.body.size() <= max_body, "body over the bound");
      check_body(frame.body);
      out.frames.emplace_back(static_cast<uint8_t>(frame.kind), std::string(frame.body));
      buf.erase(0, consumed);
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t piece = 1 + data[0] % 64;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  // Smaller bounds too (the dialer reads refusals with the smallest), so the length check
  // is reachable without megabytes of input.
  for (uint32_t max_body : {peer::kMaxFrameBodyBytes, uint32_t{256}, peer::kMaxRefusalBodyBytes}) {
    Outcome a = run(input, piece, max_body);
    Outcome b = run(input, input.size() + 1, max_body);
    HMDB_ASSERT(a == b, "split points changed the frames or the outcome");
  }
  check_body(input);
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <fstream>
#include <iostream>

#include "replay_main.h"

namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  // The first byte picks the piece size of the split feed.
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << std::string(1, '\x07') + bytes;
}

int make_seeds(const std::filesystem::path& dir) {
  using hmdb::raft::Entry;
  using hmdb::raft::EntryType;
  using hmdb::raft::Message;
  using hmdb::raft::MessageType;
  std::filesystem::create_directories(dir);
  std::string hello = peer::encode_hello_frame(7, peer::Hello{1, 2, "127.0.0.1:7400", "127.0.0.1:7379"});
  Message append;
  append.type = MessageType::kAppend;
  append.from = 1;
  append.to = 2;
  append.term = 3;
  append.entries.push_back(Entry{3, 1, EntryType::kNormal, 1, "set k v"});
  append.entries.push_back(Entry{3, 2, EntryType::kNoop, 0, ""});
  Message snap;
  snap.type = MessageType::kSnapshot;
  snap.from = 1;
  snap.to = 2;
  snap.snapshot_meta = hmdb::raft::SnapshotMeta{9, 2, hmdb::raft::ConfState{{1, 2}, {3}}, 1};
  snap.snapshot_chunk = "chunk";
  snap.snapshot_last = true;
  Message resp;
  resp.type = MessageType::kAppendResponse;
  resp.reject = true;
  resp.reject_hint = 4;
  std::string stream = hello;
  for (const Message* m : {&append, &snap, &resp}) peer::append_message_frame(&stream, 7, *m);
  write_seed(dir, "stream", stream);
  write_seed(dir, "hello", hello);
  write_seed(dir, "torn", stream.substr(0, stream.size() - 3));
  std::string flipped = stream;
  flipped[flipped.size() - 2] ^= 1;
  write_seed(dir, "flipped", flipped);
  // Bare bodies, for the direct decoder path.
  std::string body;
  peer::append_message_frame(&body, 7, snap);
  write_seed(dir, "message-body", body.substr(peer::kFrameHeaderBytes));
  write_seed(dir, "hello-body", hello.substr(peer::kFrameHeaderBytes));
  std::string refusal = peer::encode_refusal_frame(
      7, peer::Refusal{peer::RefusalReason::kNotMember, 2, 1, 12, "node 1 is no longer a member"});
  write_seed(dir, "refusal", refusal);
  write_seed(dir, "refusal-body", refusal.substr(peer::kFrameHeaderBytes));
  std::cout << "seeds written to " << dir << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
