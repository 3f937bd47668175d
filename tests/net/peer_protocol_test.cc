// tests/net/peer_protocol_test.cc — the peer frame format: round trips of every message
// type and of refusals, torn frames at every split point, corruption, versions, bounds and
// strict decoding; the refusal frame's exact bytes (docs/formats.md).
#include "net/peer_protocol.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace hmdb::net::peer {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

constexpr uint64_t kCluster = 0x1234567890abcdefull;

void expect_same(const Message& a, const Message& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.from, b.from);
  EXPECT_EQ(a.to, b.to);
  EXPECT_EQ(a.term, b.term);
  EXPECT_EQ(a.log_index, b.log_index);
  EXPECT_EQ(a.log_term, b.log_term);
  EXPECT_EQ(a.commit, b.commit);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.reject, b.reject);
  EXPECT_EQ(a.reject_hint, b.reject_hint);
  EXPECT_EQ(a.reject_term, b.reject_term);
  EXPECT_EQ(a.snapshot_meta, b.snapshot_meta);
  EXPECT_EQ(a.snapshot_offset, b.snapshot_offset);
  EXPECT_EQ(a.snapshot_total, b.snapshot_total);
  EXPECT_EQ(a.snapshot_last, b.snapshot_last);
  EXPECT_EQ(a.snapshot_chunk, b.snapshot_chunk);
  EXPECT_EQ(a.context, b.context);
}

// A message with every field set to a distinct, non-default value.
Message rich_message(MessageType type) {
  Message m;
  m.type = type;
  m.from = 1;
  m.to = 0xffffffffffffffffull;
  m.term = 7;
  m.log_index = 100;
  m.log_term = 6;
  m.commit = 99;
  m.entries.push_back(Entry{7, 101, EntryType::kNormal, 3, std::string("set\0k\xff", 6)});
  m.entries.push_back(Entry{7, 102, EntryType::kConfChange, 0, "conf"});
  m.entries.push_back(Entry{7, 103, EntryType::kNoop, 0, ""});
  m.reject = true;
  m.reject_hint = 55;
  m.reject_term = 5;
  m.snapshot_meta = raft::SnapshotMeta{90, 4, raft::ConfState{{1, 2, 3}, {4}}, 2};
  m.snapshot_offset = 1 << 20;
  m.snapshot_total = 3 << 20;
  m.snapshot_last = true;
  m.snapshot_chunk = std::string(1000, 'c');
  m.context = 0xdeadbeef;
  return m;
}

std::string frame_of(const Message& m) {
  std::string out;
  append_message_frame(&out, kCluster, m);
  EXPECT_EQ(out.size(), message_frame_bytes(m));
  return out;
}

FrameParser::Result parse_all(const std::string& bytes, Frame* frame, std::string* error, size_t* consumed) {
  FrameParser parser;
  return parser.parse(bytes.data(), bytes.size(), consumed, frame, error);
}

std::string body_of(const std::string& frame) { return frame.substr(kFrameHeaderBytes); }

TEST(PeerProtocol, EveryMessageTypeRoundTrips) {
  for (int t = 1; t <= static_cast<int>(MessageType::kReadIndexResponse); t++) {
    for (bool rich : {false, true}) {
      SCOPED_TRACE("type " + std::to_string(t) + (rich ? " rich" : " minimal"));
      Message m = rich ? rich_message(static_cast<MessageType>(t)) : Message{};
      m.type = static_cast<MessageType>(t);
      std::string bytes = frame_of(m);
      Frame f;
      std::string error;
      size_t consumed = 0;
      ASSERT_EQ(parse_all(bytes, &f, &error, &consumed), FrameParser::Result::kFrame) << error;
      EXPECT_EQ(consumed, bytes.size());
      EXPECT_EQ(f.kind, FrameKind::kMessage);
      EXPECT_EQ(f.cluster_id, kCluster);
      Message back;
      ASSERT_TRUE(decode_message(f.body, &back, &error)) << error;
      expect_same(m, back);
    }
  }
}

TEST(PeerProtocol, SnapshotChunkOfOneMebibyteAndManyEntriesRoundTrip) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.snapshot_meta = raft::SnapshotMeta{1, 1, raft::ConfState{{1}, {}}, 0};
  m.snapshot_chunk.assign(1 << 20, 'x');
  for (size_t i = 0; i < m.snapshot_chunk.size(); i += 4096) m.snapshot_chunk[i] = static_cast<char>(i >> 12);
  Message a;
  a.type = MessageType::kAppend;
  for (uint64_t i = 1; i <= 32768; i++) a.entries.push_back(Entry{1, i, EntryType::kNoop, 0, ""});
  for (const Message* msg : {&m, &a}) {
    std::string bytes = frame_of(*msg);
    Frame f;
    std::string error;
    size_t consumed = 0;
    ASSERT_EQ(parse_all(bytes, &f, &error, &consumed), FrameParser::Result::kFrame) << error;
    Message back;
    ASSERT_TRUE(decode_message(f.body, &back, &error)) << error;
    expect_same(*msg, back);
  }
}

TEST(PeerProtocol, HelloRoundTrips) {
  Hello h{3, 1, "127.0.0.1:7400", std::string(kMaxAddressBytes, 'a'), 1, 0xffffffffu};
  EXPECT_EQ(encode_hello_frame(kCluster, h).size(), kFrameHeaderBytes + kMaxHelloBodyBytes - kMaxAddressBytes + 14)
      << "the largest hello but for its peer address";
  std::string bytes = encode_hello_frame(kCluster, h);
  Frame f;
  std::string error;
  size_t consumed = 0;
  ASSERT_EQ(parse_all(bytes, &f, &error, &consumed), FrameParser::Result::kFrame) << error;
  EXPECT_EQ(f.kind, FrameKind::kHello);
  EXPECT_LE(f.body.size(), kMaxHelloBodyBytes);
  Hello back;
  ASSERT_TRUE(decode_hello(f.body, &back, &error)) << error;
  EXPECT_EQ(back, h);
}

TEST(PeerProtocol, TornFramesAtEverySplitPoint) {
  // Two frames back to back, handed over as a growing prefix the way a socket delivers them.
  std::string stream = encode_hello_frame(kCluster, Hello{2, 1, "h:1", "h:2"}) + frame_of(rich_message(MessageType::kAppend));
  for (size_t split = 0; split <= stream.size(); split++) {
    SCOPED_TRACE("split at " + std::to_string(split));
    std::string buf = stream.substr(0, split);
    FrameParser parser;
    std::vector<FrameKind> kinds;
    Frame f;
    std::string error;
    size_t consumed = 0;
    auto drain = [&] {
      while (true) {
        auto r = parser.parse(buf.data(), buf.size(), &consumed, &f, &error);
        ASSERT_NE(r, FrameParser::Result::kError) << error;
        if (r == FrameParser::Result::kNeedMore) {
          EXPECT_EQ(consumed, 0u);
          return;
        }
        kinds.push_back(f.kind);
        buf.erase(0, consumed);
      }
    };
    drain();
    buf += stream.substr(split);
    drain();
    EXPECT_TRUE(buf.empty());
    EXPECT_EQ(kinds, (std::vector<FrameKind>{FrameKind::kHello, FrameKind::kMessage}));
  }
}

TEST(PeerProtocol, AnyFlippedBitIsNeverAcceptedAsAFrame) {
  std::string good = frame_of(rich_message(MessageType::kAppend));
  good.resize(good.size());
  // Flip one bit per byte position (bit chosen by position) over the whole frame.
  for (size_t i = 0; i < good.size(); i++) {
    std::string bad = good;
    bad[i] ^= static_cast<char>(1 << (i % 8));
    Frame f;
    std::string error;
    size_t consumed = 0;
    auto r = parse_all(bad, &f, &error, &consumed);
    ASSERT_NE(r, FrameParser::Result::kFrame) << "flip at byte " << i;
    if (i >= kChecksummedHeaderBytes) {
      // Body or checksum: the checksum catches it.
      ASSERT_EQ(r, FrameParser::Result::kError);
      EXPECT_EQ(error, "frame checksum mismatch");
    }
  }
}

TEST(PeerProtocol, OtherVersionIsRefusedNamingBoth) {
  std::string bytes = frame_of(Message{});
  bytes[4] = 2;
  Frame f;
  std::string error;
  size_t consumed = 0;
  // Refused as soon as the version byte arrives, before the rest of the header.
  FrameParser parser;
  ASSERT_EQ(parser.parse(bytes.data(), 5, &consumed, &f, &error), FrameParser::Result::kError);
  EXPECT_NE(error.find("version 2"), std::string::npos) << error;
  EXPECT_NE(error.find("version 1"), std::string::npos) << error;
}

TEST(PeerProtocol, BadMagicIsRefusedAtTheFirstByte) {
  Frame f;
  std::string error;
  size_t consumed = 0;
  FrameParser parser;
  EXPECT_EQ(parser.parse("GET / HTTP/1.1\r\n", 1, &consumed, &f, &error), FrameParser::Result::kError);
  EXPECT_EQ(parser.parse("HM", 2, &consumed, &f, &error), FrameParser::Result::kNeedMore);
}

TEST(PeerProtocol, HeaderFieldsAreChecked) {
  std::string good = frame_of(Message{});
  Frame f;
  std::string error;
  size_t consumed = 0;
  std::string bad = good;
  bad[5] = 4;  // kind (1 hello, 2 message, 3 refusal)
  EXPECT_EQ(parse_all(bad, &f, &error, &consumed), FrameParser::Result::kError);
  EXPECT_NE(error.find("kind"), std::string::npos);
  bad = good;
  bad[7] = 1;  // reserved
  EXPECT_EQ(parse_all(bad, &f, &error, &consumed), FrameParser::Result::kError);
  EXPECT_NE(error.find("reserved"), std::string::npos);
}

TEST(PeerProtocol, OversizedBodyIsRefusedFromTheHeaderAlone) {
  std::string bytes = frame_of(rich_message(MessageType::kAppend));
  FrameParser small(static_cast<uint32_t>(bytes.size() - kFrameHeaderBytes - 1));
  Frame f;
  std::string error;
  size_t consumed = 0;
  EXPECT_EQ(small.parse(bytes.data(), kFrameHeaderBytes, &consumed, &f, &error), FrameParser::Result::kError);
  EXPECT_NE(error.find("exceeds the bound"), std::string::npos) << error;
  // The default bound: a header claiming 64 MiB + 1.
  std::string header = bytes.substr(0, kFrameHeaderBytes);
  uint32_t n = kMaxFrameBodyBytes + 1;
  for (int i = 0; i < 4; i++) header[8 + i] = static_cast<char>(n >> (8 * i));
  EXPECT_EQ(FrameParser().parse(header.data(), header.size(), &consumed, &f, &error), FrameParser::Result::kError);
}

TEST(PeerProtocol, MessageDecoderRejectsEveryTruncationAndTrailingBytes) {
  std::string body = body_of(frame_of(rich_message(MessageType::kSnapshot)));
  Message m;
  std::string error;
  for (size_t n = 0; n < body.size(); n++) {
    error.clear();
    ASSERT_FALSE(decode_message(std::string_view(body.data(), n), &m, &error)) << "prefix " << n;
    EXPECT_FALSE(error.empty());
  }
  EXPECT_FALSE(decode_message(body + "x", &m, &error));
  EXPECT_NE(error.find("trailing"), std::string::npos) << error;
  EXPECT_TRUE(decode_message(body, &m, &error)) << error;
}

TEST(PeerProtocol, MessageDecoderRejectsUnknownEnumsAndFlags) {
  Message m;
  std::string error;
  std::string body = body_of(frame_of(Message{}));
  for (uint8_t type : {0, 14, 255}) {
    std::string bad = body;
    bad[0] = static_cast<char>(type);
    EXPECT_FALSE(decode_message(bad, &m, &error));
    EXPECT_NE(error.find("unknown message type"), std::string::npos) << error;
  }
  std::string bad = body;
  bad[1 + 6 * 8] = static_cast<char>(8);  // flags
  EXPECT_FALSE(decode_message(bad, &m, &error));
  EXPECT_NE(error.find("flags"), std::string::npos) << error;

  Message one;
  one.entries.push_back(Entry{1, 1, EntryType::kNoop, 0, ""});
  std::string entry_body = body_of(frame_of(one));
  size_t type_at = entry_body.size() - (4 + 4 + 1);  // type, then schema version and length
  for (uint8_t type : {0, 4}) {
    std::string b = entry_body;
    b[type_at] = static_cast<char>(type);
    EXPECT_FALSE(decode_message(b, &m, &error));
    EXPECT_NE(error.find("unknown entry type"), std::string::npos) << error;
  }
}

TEST(PeerProtocol, MessageDecoderEnforcesCountBounds) {
  Message m;
  std::string error;
  // An entry count above the bound (the count is the last u32 of an entry-less body).
  std::string body = body_of(frame_of(Message{}));
  uint32_t n = kMaxEntriesPerMessage + 1;
  for (int i = 0; i < 4; i++) body[body.size() - 4 + i] = static_cast<char>(n >> (8 * i));
  EXPECT_FALSE(decode_message(body, &m, &error));
  EXPECT_NE(error.find("bound"), std::string::npos) << error;
  // A count within the bound but larger than the bytes present.
  n = 1000;
  for (int i = 0; i < 4; i++) body[body.size() - 4 + i] = static_cast<char>(n >> (8 * i));
  EXPECT_FALSE(decode_message(body, &m, &error));
  // Too many voters.
  Message s;
  s.snapshot_meta = raft::SnapshotMeta{};
  s.snapshot_meta->conf.voters.assign(kMaxConfMembers, 1);
  std::string sb = body_of(frame_of(s));
  ASSERT_TRUE(decode_message(sb, &m, &error)) << error;
  size_t count_at = 1 + 6 * 8 + 1 + 5 * 8 + 8 + 8 + 4;
  sb[count_at] = static_cast<char>((kMaxConfMembers + 1) & 0xff);
  sb[count_at + 1] = static_cast<char>((kMaxConfMembers + 1) >> 8);
  EXPECT_FALSE(decode_message(sb, &m, &error));
  EXPECT_NE(error.find("voters"), std::string::npos) << error;
}

// A hello without schema versions (from a node before they were sent) decodes as "not
// said"; one with them round-trips; versions 0 or out of order are refused.
TEST(PeerProtocol, HelloSchemaVersionsAreOptional) {
  std::string old_form = body_of(encode_hello_frame(kCluster, Hello{2, 1, "a:1", "b:2"}));
  Hello h;
  std::string error;
  h.schema_oldest = h.schema_newest = 7;
  ASSERT_TRUE(decode_hello(old_form, &h, &error)) << error;
  EXPECT_EQ(h, (Hello{2, 1, "a:1", "b:2", 0, 0}));
  std::string new_form = body_of(encode_hello_frame(kCluster, Hello{2, 1, "a:1", "b:2", 1, 2}));
  EXPECT_EQ(new_form.size(), old_form.size() + 8);
  ASSERT_TRUE(decode_hello(new_form, &h, &error)) << error;
  EXPECT_EQ(h, (Hello{2, 1, "a:1", "b:2", 1, 2}));
  for (auto [oldest, newest] : {std::pair<uint32_t, uint32_t>{0, 2}, {3, 2}, {0, 0}}) {
    std::string bad = old_form;
    for (uint32_t v : {oldest, newest})
      for (int i = 0; i < 4; i++) bad.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    EXPECT_FALSE(decode_hello(bad, &h, &error)) << oldest << ".." << newest;
    EXPECT_NE(error.find("schema versions"), std::string::npos) << error;
  }
  // Part of the versions is a truncated hello, not an old one.
  EXPECT_FALSE(decode_hello(old_form + std::string(4, '\1'), &h, &error));
}

TEST(PeerProtocol, HelloDecoderIsStrict) {
  std::string body = body_of(encode_hello_frame(kCluster, Hello{2, 1, "a:1", "b:2", 1, 1}));
  Hello h;
  std::string error;
  // Every prefix fails except the one that ends where a hello without versions ends.
  const size_t old_form_bytes = body.size() - 8;
  for (size_t n = 0; n < body.size(); n++) {
    if (n == old_form_bytes) continue;
    EXPECT_FALSE(decode_hello(std::string_view(body.data(), n), &h, &error)) << n;
  }
  EXPECT_FALSE(decode_hello(body + std::string(1, '\0'), &h, &error));
  EXPECT_NE(error.find("trailing"), std::string::npos) << error;
  std::string zero = body_of(encode_hello_frame(kCluster, Hello{0, 1, "", ""}));
  EXPECT_FALSE(decode_hello(zero, &h, &error));
  EXPECT_TRUE(decode_hello(body, &h, &error)) << error;
}

Refusal full_refusal(RefusalReason reason) {
  return Refusal{reason, 3, 0xfffffffffffffffeull, 0x0102030405060708ull, std::string(kMaxRefusalTextBytes, 'r')};
}

TEST(PeerProtocol, RefusalRoundTripsForEveryReason) {
  for (uint8_t code = 1; code <= kRefusalReasonMax; code++) {
    SCOPED_TRACE(int(code));
    for (const Refusal& r : {full_refusal(static_cast<RefusalReason>(code)),
                             Refusal{static_cast<RefusalReason>(code), 1, 0, 0, ""}}) {
      std::string bytes = encode_refusal_frame(kCluster, r);
      EXPECT_LE(bytes.size(), kMaxRefusalFrameBytes);
      // The dialer's parser is bounded by the largest refusal.
      FrameParser parser(kMaxRefusalBodyBytes);
      Frame f;
      std::string error;
      size_t consumed = 0;
      ASSERT_EQ(parser.parse(bytes.data(), bytes.size(), &consumed, &f, &error), FrameParser::Result::kFrame) << error;
      EXPECT_EQ(consumed, bytes.size());
      EXPECT_EQ(f.kind, FrameKind::kRefusal);
      EXPECT_EQ(f.cluster_id, kCluster);
      Refusal back;
      ASSERT_TRUE(decode_refusal(f.body, &back, &error)) << error;
      EXPECT_EQ(back, r);
      EXPECT_STRNE(refusal_reason_name(back.reason), "?");
    }
  }
  EXPECT_EQ(encode_refusal_frame(kCluster, full_refusal(RefusalReason::kOther)).size(), kMaxRefusalFrameBytes);
}

// The layout docs/formats.md gives, byte by byte.
TEST(PeerProtocol, RefusalFrameBytesAreAsDocumented) {
  std::string bytes = encode_refusal_frame(0x1122334455667788ull, Refusal{RefusalReason::kNotMember, 2, 3, 9, "no"});
  std::string expect_header("HMPR\x01\x03\x00\x00", 8);                  // magic, version 1, kind 3, reserved
  expect_header += std::string("\x1c\x00\x00\x00", 4);                  // body: 1+8+8+8+1+2 = 28 bytes
  expect_header += std::string("\x88\x77\x66\x55\x44\x33\x22\x11", 8);  // cluster id
  ASSERT_EQ(bytes.size(), kFrameHeaderBytes + 28);
  EXPECT_EQ(bytes.substr(0, kChecksummedHeaderBytes), expect_header);
  std::string body("\x01", 1);                                  // reason: not a member
  body += std::string("\x02\x00\x00\x00\x00\x00\x00\x00", 8);  // from
  body += std::string("\x03\x00\x00\x00\x00\x00\x00\x00", 8);  // to
  body += std::string("\x09\x00\x00\x00\x00\x00\x00\x00", 8);  // config index
  body += std::string("\x02no", 3);                             // text
  EXPECT_EQ(body_of(bytes), body);
}

TEST(PeerProtocol, RefusalTornOrCorruptedIsNeverAccepted) {
  const std::string good = encode_refusal_frame(kCluster, Refusal{RefusalReason::kNotMember, 2, 3, 9, "not a member"});
  FrameParser parser(kMaxRefusalBodyBytes);
  Frame f;
  std::string error;
  size_t consumed = 0;
  for (size_t n = 0; n < good.size(); n++)
    ASSERT_EQ(parser.parse(good.data(), n, &consumed, &f, &error), FrameParser::Result::kNeedMore) << n;
  for (size_t i = 0; i < good.size(); i++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string bad = good;
      bad[i] ^= static_cast<char>(1 << bit);
      ASSERT_NE(parser.parse(bad.data(), bad.size(), &consumed, &f, &error), FrameParser::Result::kFrame)
          << "flip of bit " << bit << " at byte " << i;
    }
  }
  // A header announcing more than the largest refusal is refused from the header alone.
  std::string big = good.substr(0, kFrameHeaderBytes);
  big[8] = static_cast<char>((kMaxRefusalBodyBytes + 1) & 0xff);
  big[9] = static_cast<char>((kMaxRefusalBodyBytes + 1) >> 8);
  EXPECT_EQ(parser.parse(big.data(), big.size(), &consumed, &f, &error), FrameParser::Result::kError);
  EXPECT_NE(error.find("exceeds the bound"), std::string::npos) << error;
}

TEST(PeerProtocol, RefusalDecoderIsStrict) {
  const Refusal want{RefusalReason::kWrongCluster, 2, 3, 9, "why"};
  const std::string body = body_of(encode_refusal_frame(kCluster, want));
  Refusal r;
  std::string error;
  for (size_t n = 0; n < body.size(); n++) {
    EXPECT_FALSE(decode_refusal(std::string_view(body.data(), n), &r, &error)) << n;
    EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  }
  EXPECT_FALSE(decode_refusal(body + std::string(1, '\0'), &r, &error));
  EXPECT_NE(error.find("trailing"), std::string::npos) << error;
  for (int reason : {0, kRefusalReasonMax + 1, 0xff}) {
    std::string bad = body;
    bad[0] = static_cast<char>(reason);
    EXPECT_FALSE(decode_refusal(bad, &r, &error));
    EXPECT_NE(error.find("unknown refusal reason"), std::string::npos) << error;
  }
  std::string from_zero = body;
  for (int i = 1; i <= 8; i++) from_zero[i] = 0;
  EXPECT_FALSE(decode_refusal(from_zero, &r, &error));
  EXPECT_NE(error.find("node 0"), std::string::npos) << error;
  // A refusal body is neither a hello nor a message.
  Hello h;
  Message m;
  EXPECT_FALSE(decode_hello(body, &h, &error));
  EXPECT_FALSE(decode_message(body, &m, &error));
  ASSERT_TRUE(decode_refusal(body, &r, &error)) << error;
  EXPECT_EQ(r, want);
}

TEST(PeerProtocol, ClusterIdFromNameIsStableAndDistinct) {
  EXPECT_EQ(cluster_id_from_name("hmdb"), cluster_id_from_name("hmdb"));
  EXPECT_NE(cluster_id_from_name("hmdb"), cluster_id_from_name("hmdb2"));
}

}  // namespace
}  // namespace hmdb::net::peer
