// net/peer_protocol.h — the framed binary protocol that carries raft::Message between nodes.
//
// A peer connection is a stream of frames. Every frame is a fixed header and a body:
//
//   offset size  field (little endian)
//        0    4  magic "HMPR"
//        4    1  protocol version (kProtocolVersion)
//        5    1  kind: 1 hello, 2 raft message, 3 refusal
//        6    2  reserved, 0
//        8    4  body bytes (at most the parser's bound, kMaxFrameBodyBytes by default)
//       12    8  cluster id
//       20    8  XXH3_64 of header bytes [0, 20) followed by the body
//       28       body
//
// The checksum covers the cluster id and the kind, so a frame cannot be replayed into
// another cluster by rewriting the header alone, and a bit flip anywhere is caught before
// the body is decoded. (TCP's checksum is 16 bits and misses real-world corruption.)
//
// Bodies (all integers little endian; strings are a length then bytes):
//   hello:   u64 from | u64 to | u8 len, peer address | u8 len, client address
//            [| u32 oldest, u32 newest schema version the sender's binary reads]
//            (the versions are optional: a node from before them sends none, and a
//            decoder takes both forms; docs/formats.md, "Peer protocol")
//   refusal: u8 reason | u64 from (the refuser) | u64 to (the refused node, 0: unknown)
//            | u64 config_index | u8 len, text (at most kMaxRefusalTextBytes)
//   message: u8 type | u64 from, to, term, log_index, log_term, commit | u8 flags
//            (bit 0 reject, bit 1 snapshot_last, bit 2 snapshot_meta present; others 0)
//            | u64 reject_hint, reject_term, snapshot_offset, snapshot_total, context
//            | [meta: u64 index, term | u32 schema_version | u32 n, n x u64 voters
//               | u32 n, n x u64 learners]
//            | u32 len, snapshot chunk | u32 n entries, each:
//              u64 term, index | u8 type | u32 schema_version | u32 len, data
//
// Direction: the dialer writes a Hello then messages; the accepting side writes nothing,
// except one refusal frame right before it closes a connection it refuses (the dialer reads
// at most kMaxRefusalFrameBytes on its connection, to learn why; docs/formats.md). A refusal
// frame carries the refuser's cluster id in its header, so the dialer accepts it whatever
// that id is: it only informs. Older nodes never send one and close the connection when
// they receive one, as they did: no version change.
//
// Decoding is strict: every length is checked against the bytes left and against a named
// bound, enum values must be known, unused flag bits must be 0, and no byte may be left over.
// A decoder error means the peer is broken or hostile: the caller closes the connection.
//
// Thread-safety: none needed; the functions are pure and a FrameParser belongs to one
// connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "raft/types.h"

namespace hmdb::net::peer {

inline constexpr uint32_t kMagic = 0x52504D48;  // "HMPR" read as a little-endian u32
inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kFrameHeaderBytes = 28;
inline constexpr size_t kChecksummedHeaderBytes = 20;  // header bytes before the checksum

// Largest frame body. A message carries at most raft's max_append_bytes of entries (1 MiB by
// default) or one snapshot chunk (snapshot_chunk_bytes, 1 MiB by default) plus fixed fields;
// 64 MiB leaves room for those settings to grow 30-fold before frames are refused.
inline constexpr uint32_t kMaxFrameBodyBytes = 64u << 20;
// Largest hello body: two ids and two bounded addresses. A connection that has not yet
// introduced itself may only buffer this much (an unauthenticated socket cannot make us
// hold 64 MiB).
inline constexpr size_t kMaxAddressBytes = 255;
inline constexpr uint32_t kMaxHelloBodyBytes = 8 + 8 + 2 * (1 + kMaxAddressBytes) + 4 + 4;
// Most entries in one message: raft charges kEntryOverheadBytes (32) per entry against
// max_append_bytes, so 1 MiB appends hold at most 32768 entries; the bound allows
// max_append_bytes up to 32 MiB.
inline constexpr uint32_t kMaxEntriesPerMessage = 1u << 20;
// Most voters, and separately most learners, in a snapshot's configuration.
inline constexpr uint32_t kMaxConfMembers = 1024;

// A refusal's free text (why, for the log); the transport cuts longer texts to this.
inline constexpr size_t kMaxRefusalTextBytes = 255;
inline constexpr uint32_t kMaxRefusalBodyBytes = 1 + 8 + 8 + 8 + 1 + kMaxRefusalTextBytes;
inline constexpr size_t kMaxRefusalFrameBytes = kFrameHeaderBytes + kMaxRefusalBodyBytes;

static_assert(kMaxHelloBodyBytes <= kMaxFrameBodyBytes);
static_assert(kMaxRefusalBodyBytes <= kMaxFrameBodyBytes);
static_assert(kMaxFrameBodyBytes > (2u << 20) + 4096, "must hold an append or a chunk with room to spare");

enum class FrameKind : uint8_t { kHello = 1, kMessage = 2, kRefusal = 3 };

// Why a connection was refused (u8 on the wire; decoding refuses other values).
enum class RefusalReason : uint8_t {
  // The sender is not in the refuser's membership, which is committed: config_index is the
  // index of that membership's entry (or snapshot). The only reason a node acts on
  // (PeerTransport's refusal_proves_removal()).
  kNotMember = 1,
  kWrongCluster = 2,  // the frame's cluster id is not the refuser's
  kOther = 3,         // a protocol violation, a Hello addressed to another node id, ...
  // Not in the refuser's newest membership, which is not committed yet (it may still be
  // truncated): nobody may conclude anything from it.
  kNotMemberUncommitted = 4,
};
inline constexpr uint8_t kRefusalReasonMax = 4;
const char* refusal_reason_name(RefusalReason reason);

// What the accepting side writes before it closes a connection it refuses.
struct Refusal {
  RefusalReason reason = RefusalReason::kOther;
  raft::NodeId from = raft::kNoNode;  // the refuser (never 0)
  raft::NodeId to = raft::kNoNode;    // the refused node as its Hello named it; 0: unknown
  raft::Index config_index = 0;       // the refuser's membership it judged by (see reasons)
  std::string text;                   // at most kMaxRefusalTextBytes
  bool operator==(const Refusal&) const = default;
};

// What a node says first on a connection it dialed.
struct Hello {
  raft::NodeId from = raft::kNoNode;
  raft::NodeId to = raft::kNoNode;
  std::string peer_addr;    // where the sender listens for peers ("host:port")
  std::string client_addr;  // where the sender serves clients ("host:port")
  // The app schema versions the sender's binary reads (StateMachine::oldest_schema_version()
  // .. schema_version()); both 0: not said (a node from before they were sent, or an
  // encoder that knows no app). REQUIRES when said: 1 <= oldest <= newest (decoding refuses
  // anything else).
  uint32_t schema_oldest = 0;
  uint32_t schema_newest = 0;
  bool operator==(const Hello&) const = default;
};

// One complete, checksum-verified frame. body points into the buffer given to parse().
struct Frame {
  FrameKind kind = FrameKind::kHello;
  uint64_t cluster_id = 0;
  std::string_view body;
};

// Encoders. REQUIRES (asserted): hello addresses at most kMaxAddressBytes; a message whose
// body fits kMaxFrameBodyBytes and whose counts fit the bounds above.
std::string encode_hello_frame(uint64_t cluster_id, const Hello& hello);
// REQUIRES (asserted): from != 0 and text at most kMaxRefusalTextBytes.
std::string encode_refusal_frame(uint64_t cluster_id, const Refusal& refusal);
void append_message_frame(std::string* out, uint64_t cluster_id, const raft::Message& msg);
// Exact size of the frame append_message_frame() would append (to check a queue bound first).
size_t message_frame_bytes(const raft::Message& msg);

// Decoders of a frame body. On failure: false, *error says what is wrong; *out is unspecified.
bool decode_hello(std::string_view body, Hello* out, std::string* error);
bool decode_message(std::string_view body, raft::Message* out, std::string* error);
bool decode_refusal(std::string_view body, Refusal* out, std::string* error);

// Splits a byte stream into frames. Stateless apart from its bound: the caller keeps the
// unconsumed bytes and hands them again, from the first byte of a frame, with more appended.
// The header is checked as soon as it is complete (and the magic as soon as its first byte
// arrives), so a wrong peer is refused before its body is buffered.
class FrameParser {
 public:
  enum class Result : uint8_t {
    kNeedMore,  // no complete frame yet; *consumed is 0
    kFrame,     // *frame is valid; the first *consumed bytes of data belong to it
    kError,     // *error says why; the stream cannot be trusted, close the connection
  };

  explicit FrameParser(uint32_t max_body_bytes = kMaxFrameBodyBytes) : max_body_bytes_(max_body_bytes) {}
  void set_max_body_bytes(uint32_t n) { max_body_bytes_ = n; }
  uint32_t max_body_bytes() const { return max_body_bytes_; }

  Result parse(const char* data, size_t n, size_t* consumed, Frame* frame, std::string* error) const;

  // Bytes of the whole frame starting at data, once its header is complete and valid; 0 if
  // unknown. A hint for reserving buffer space.
  static size_t frame_bytes_hint(const char* data, size_t n);

 private:
  uint32_t max_body_bytes_;
};

// The wire id of a cluster named on the command line (--cluster-id NAME): XXH3_64 of NAME.
uint64_t cluster_id_from_name(std::string_view name);

}  // namespace hmdb::net::peer
