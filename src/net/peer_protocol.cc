// net/peer_protocol.cc — encoding and strict decoding of peer frames; see peer_protocol.h
// for the layout and the bounds.
#include "net/peer_protocol.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: no allocation per frame
#include <xxhash.h>

#include <cstring>

#include "common/assert.h"
#include "hmdb/codec.h"

namespace hmdb::net::peer {

namespace {

// Bounds-checked reader over a body: the codec's Decoder, plus the name of the first field
// that was short (for the refusal log line). Every get returns false once anything was
// short; the first failure's description is kept.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t* v, const char* what) {
    if (!need(1, what)) return false;
    *v = in_.u8();
    return true;
  }
  bool u32(uint32_t* v, const char* what) {
    if (!need(4, what)) return false;
    *v = in_.u32();
    return true;
  }
  bool u64(uint64_t* v, const char* what) {
    if (!need(8, what)) return false;
    *v = in_.u64();
    return true;
  }
  bool bytes(size_t n, std::string* out, const char* what) {
    if (!need(n, what)) return false;
    out->assign(in_.raw(n));
    return true;
  }
  size_t left() const { return in_.remaining(); }
  const std::string& error() const { return error_; }
  bool fail(std::string e) {
    if (error_.empty()) error_ = std::move(e);
    return false;
  }

 private:
  bool need(size_t n, const char* what) {
    if (left() >= n) return true;
    return fail(std::string("truncated ") + what);
  }
  Decoder in_;
  std::string error_;
};

// Writes the header for a body of body_bytes that the caller appends next; returns the
// offset of the header in *out so that seal() can fill in the checksum.
size_t begin_frame(std::string* out, FrameKind kind, uint64_t cluster_id, size_t body_bytes) {
  HMDB_ASSERT(body_bytes <= kMaxFrameBodyBytes, "frame body of %zu bytes exceeds the bound", body_bytes);
  char h[kFrameHeaderBytes];
  codec::put_u32(h, kMagic);
  h[4] = static_cast<char>(kProtocolVersion);
  h[5] = static_cast<char>(kind);
  codec::put_u16(h + 6, 0);
  codec::put_u32(h + 8, static_cast<uint32_t>(body_bytes));
  codec::put_u64(h + 12, cluster_id);
  codec::put_u64(h + 20, 0);  // checksum, filled in by seal()
  size_t at = out->size();
  out->append(h, sizeof h);
  return at;
}

uint64_t frame_checksum(const char* header, const char* body, size_t body_bytes) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, header, kChecksummedHeaderBytes);
  XXH3_64bits_update(&state, body, body_bytes);
  return XXH3_64bits_digest(&state);
}

void seal(std::string* out, size_t at) {
  size_t body_bytes = out->size() - at - kFrameHeaderBytes;
  HMDB_ASSERT(body_bytes == codec::get_u32(out->data() + at + 8), "frame body is %zu bytes, header says %u",
              body_bytes, codec::get_u32(out->data() + at + 8));
  uint64_t sum = frame_checksum(out->data() + at, out->data() + at + kFrameHeaderBytes, body_bytes);
  codec::put_u64(out->data() + at + kChecksummedHeaderBytes, sum);
}

constexpr uint8_t kFlagReject = 1;
constexpr uint8_t kFlagSnapshotLast = 2;
constexpr uint8_t kFlagSnapshotMeta = 4;
constexpr uint8_t kFlagsKnown = kFlagReject | kFlagSnapshotLast | kFlagSnapshotMeta;

// The message's fixed fields up to the snapshot meta: type, six u64, flags, five u64.
constexpr size_t kMessageHeaderBytes = 1 + 6 * 8 + 1 + 5 * 8;
constexpr size_t kMessageFixedBytes = kMessageHeaderBytes + 4 /*chunk len*/ + 4 /*entry count*/;
constexpr size_t kMetaFixedBytes = 8 + 8 + 4 + 4 + 4;
constexpr size_t kEntryFixedBytes = 8 + 8 + 1 + 4 + 4;

size_t message_body_bytes(const raft::Message& m) {
  size_t n = kMessageFixedBytes + m.snapshot_chunk.size();
  if (m.snapshot_meta) n += kMetaFixedBytes + 8 * (m.snapshot_meta->conf.voters.size() + m.snapshot_meta->conf.learners.size());
  for (const auto& e : m.entries) n += kEntryFixedBytes + e.data.size();
  return n;
}

}  // namespace

// ---- encoders -------------------------------------------------------------------------

std::string encode_hello_frame(uint64_t cluster_id, const Hello& hello) {
  HMDB_ASSERT(hello.peer_addr.size() <= kMaxAddressBytes && hello.client_addr.size() <= kMaxAddressBytes,
              "hello address too long (%zu, %zu bytes)", hello.peer_addr.size(), hello.client_addr.size());
  const bool versions = hello.schema_newest != 0;
  HMDB_ASSERT(!versions || (hello.schema_oldest >= 1 && hello.schema_oldest <= hello.schema_newest),
              "hello schema versions %u..%u", hello.schema_oldest, hello.schema_newest);
  std::string out;
  size_t body = 8 + 8 + 1 + hello.peer_addr.size() + 1 + hello.client_addr.size() + (versions ? 8 : 0);
  size_t at = begin_frame(&out, FrameKind::kHello, cluster_id, body);
  Encoder e(&out);
  e.u64(hello.from);
  e.u64(hello.to);
  e.u8(static_cast<uint8_t>(hello.peer_addr.size()));
  e.raw(hello.peer_addr);
  e.u8(static_cast<uint8_t>(hello.client_addr.size()));
  e.raw(hello.client_addr);
  if (versions) {
    e.u32(hello.schema_oldest);
    e.u32(hello.schema_newest);
  }
  seal(&out, at);
  return out;
}

std::string encode_refusal_frame(uint64_t cluster_id, const Refusal& refusal) {
  HMDB_ASSERT(refusal.from != raft::kNoNode, "a refusal from node 0");
  HMDB_ASSERT(refusal.text.size() <= kMaxRefusalTextBytes, "refusal text of %zu bytes", refusal.text.size());
  std::string out;
  size_t body = 1 + 8 + 8 + 8 + 1 + refusal.text.size();
  size_t at = begin_frame(&out, FrameKind::kRefusal, cluster_id, body);
  Encoder e(&out);
  e.u8(static_cast<uint8_t>(refusal.reason));
  e.u64(refusal.from);
  e.u64(refusal.to);
  e.u64(refusal.config_index);
  e.u8(static_cast<uint8_t>(refusal.text.size()));
  e.raw(refusal.text);
  seal(&out, at);
  return out;
}

const char* refusal_reason_name(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kNotMember: return "not a member";
    case RefusalReason::kWrongCluster: return "wrong cluster id";
    case RefusalReason::kOther: return "other";
    case RefusalReason::kNotMemberUncommitted: return "not a member of an uncommitted configuration";
  }
  return "?";
}

size_t message_frame_bytes(const raft::Message& msg) { return kFrameHeaderBytes + message_body_bytes(msg); }

void append_message_frame(std::string* out, uint64_t cluster_id, const raft::Message& m) {
  HMDB_ASSERT(m.entries.size() <= kMaxEntriesPerMessage, "%zu entries in one message", m.entries.size());
  size_t body = message_body_bytes(m);
  out->reserve(out->size() + kFrameHeaderBytes + body);
  size_t at = begin_frame(out, FrameKind::kMessage, cluster_id, body);
  // Fixed fields are written into stack headers and appended once per group: one append
  // per entry plus its data, on the replication hot path.
  char h[kMessageHeaderBytes];
  h[0] = static_cast<char>(m.type);
  codec::put_u64(h + 1, m.from);
  codec::put_u64(h + 9, m.to);
  codec::put_u64(h + 17, m.term);
  codec::put_u64(h + 25, m.log_index);
  codec::put_u64(h + 33, m.log_term);
  codec::put_u64(h + 41, m.commit);
  h[49] = static_cast<char>((m.reject ? kFlagReject : 0) | (m.snapshot_last ? kFlagSnapshotLast : 0) |
                            (m.snapshot_meta ? kFlagSnapshotMeta : 0));
  codec::put_u64(h + 50, m.reject_hint);
  codec::put_u64(h + 58, m.reject_term);
  codec::put_u64(h + 66, m.snapshot_offset);
  codec::put_u64(h + 74, m.snapshot_total);
  codec::put_u64(h + 82, m.context);
  out->append(h, sizeof h);
  if (m.snapshot_meta) {
    const auto& meta = *m.snapshot_meta;
    HMDB_ASSERT(meta.conf.voters.size() <= kMaxConfMembers && meta.conf.learners.size() <= kMaxConfMembers,
                "configuration of %zu voters and %zu learners", meta.conf.voters.size(), meta.conf.learners.size());
    Encoder e(out);
    e.u64(meta.index);
    e.u64(meta.term);
    e.u32(meta.schema_version);
    e.u32(static_cast<uint32_t>(meta.conf.voters.size()));
    for (auto id : meta.conf.voters) e.u64(id);
    e.u32(static_cast<uint32_t>(meta.conf.learners.size()));
    for (auto id : meta.conf.learners) e.u64(id);
  }
  HMDB_ASSERT(m.snapshot_chunk.size() <= UINT32_MAX, "snapshot chunk of %zu bytes", m.snapshot_chunk.size());
  char n[4];
  codec::put_u32(n, static_cast<uint32_t>(m.snapshot_chunk.size()));
  out->append(n, sizeof n);
  out->append(m.snapshot_chunk);
  codec::put_u32(n, static_cast<uint32_t>(m.entries.size()));
  out->append(n, sizeof n);
  for (const auto& entry : m.entries) {
    HMDB_ASSERT(entry.data.size() <= UINT32_MAX, "entry of %zu bytes", entry.data.size());
    char eh[kEntryFixedBytes];
    codec::put_u64(eh, entry.term);
    codec::put_u64(eh + 8, entry.index);
    eh[16] = static_cast<char>(entry.type);
    codec::put_u32(eh + 17, entry.schema_version);
    codec::put_u32(eh + 21, static_cast<uint32_t>(entry.data.size()));
    out->append(eh, sizeof eh);
    out->append(entry.data);
  }
  HMDB_ASSERT(out->size() - at == kFrameHeaderBytes + body, "message body is %zu bytes, expected %zu",
              out->size() - at - kFrameHeaderBytes, body);
  seal(out, at);
}

// ---- decoders -------------------------------------------------------------------------

bool decode_hello(std::string_view body, Hello* out, std::string* error) {
  Reader r(body);
  uint8_t len = 0;
  bool ok = r.u64(&out->from, "hello from") && r.u64(&out->to, "hello to") && r.u8(&len, "hello peer address") &&
            r.bytes(len, &out->peer_addr, "hello peer address") && r.u8(&len, "hello client address") &&
            r.bytes(len, &out->client_addr, "hello client address");
  if (ok && (out->from == raft::kNoNode || out->to == raft::kNoNode)) ok = r.fail("hello names node 0");
  out->schema_oldest = out->schema_newest = 0;
  if (ok && r.left() != 0) {
    ok = r.u32(&out->schema_oldest, "hello schema versions") && r.u32(&out->schema_newest, "hello schema versions");
    if (ok && (out->schema_oldest == 0 || out->schema_oldest > out->schema_newest))
      ok = r.fail("hello schema versions " + std::to_string(out->schema_oldest) + ".." +
                  std::to_string(out->schema_newest));
  }
  if (ok && r.left() != 0) ok = r.fail(std::to_string(r.left()) + " trailing bytes after the hello");
  if (!ok) *error = r.error();
  return ok;
}

bool decode_refusal(std::string_view body, Refusal* out, std::string* error) {
  Reader r(body);
  uint8_t reason = 0;
  uint8_t len = 0;
  bool ok = r.u8(&reason, "refusal reason") && r.u64(&out->from, "refusal from") && r.u64(&out->to, "refusal to") &&
            r.u64(&out->config_index, "refusal config index") && r.u8(&len, "refusal text") &&
            r.bytes(len, &out->text, "refusal text");
  if (ok && (reason == 0 || reason > kRefusalReasonMax)) ok = r.fail("unknown refusal reason " + std::to_string(reason));
  if (ok) out->reason = static_cast<RefusalReason>(reason);
  if (ok && out->from == raft::kNoNode) ok = r.fail("refusal from node 0");
  if (ok && r.left() != 0) ok = r.fail(std::to_string(r.left()) + " trailing bytes after the refusal");
  if (!ok) *error = r.error();
  return ok;
}

namespace {

bool decode_ids(Reader* r, std::vector<raft::NodeId>* ids, const char* what) {
  uint32_t n = 0;
  if (!r->u32(&n, what)) return false;
  if (n > kMaxConfMembers) return r->fail(std::string(what) + ": " + std::to_string(n) + " ids exceed the bound");
  if (n * 8ull > r->left()) return r->fail(std::string("truncated ") + what);
  ids->resize(n);
  for (auto& id : *ids) r->u64(&id, what);
  return true;
}

}  // namespace

bool decode_message(std::string_view body, raft::Message* m, std::string* error) {
  Reader r(body);
  *m = raft::Message{};
  uint8_t type = 0;
  uint8_t flags = 0;
  bool ok = r.u8(&type, "message type") && r.u64(&m->from, "from") && r.u64(&m->to, "to") &&
            r.u64(&m->term, "term") && r.u64(&m->log_index, "log index") && r.u64(&m->log_term, "log term") &&
            r.u64(&m->commit, "commit") && r.u8(&flags, "flags") && r.u64(&m->reject_hint, "reject hint") &&
            r.u64(&m->reject_term, "reject term") && r.u64(&m->snapshot_offset, "snapshot offset") &&
            r.u64(&m->snapshot_total, "snapshot total") && r.u64(&m->context, "context");
  if (ok && (type < static_cast<uint8_t>(raft::MessageType::kPreVote) ||
             type > static_cast<uint8_t>(raft::MessageType::kReadIndexResponse)))
    ok = r.fail("unknown message type " + std::to_string(type));
  if (ok && (flags & ~kFlagsKnown) != 0) ok = r.fail("unknown message flags " + std::to_string(flags));
  if (ok) {
    m->type = static_cast<raft::MessageType>(type);
    m->reject = (flags & kFlagReject) != 0;
    m->snapshot_last = (flags & kFlagSnapshotLast) != 0;
  }
  if (ok && (flags & kFlagSnapshotMeta) != 0) {
    raft::SnapshotMeta meta;
    ok = r.u64(&meta.index, "snapshot index") && r.u64(&meta.term, "snapshot term") &&
         r.u32(&meta.schema_version, "snapshot schema version") && decode_ids(&r, &meta.conf.voters, "voters") &&
         decode_ids(&r, &meta.conf.learners, "learners");
    if (ok) m->snapshot_meta = std::move(meta);
  }
  uint32_t len = 0;
  ok = ok && r.u32(&len, "snapshot chunk length") && r.bytes(len, &m->snapshot_chunk, "snapshot chunk");
  uint32_t count = 0;
  ok = ok && r.u32(&count, "entry count");
  if (ok && count > kMaxEntriesPerMessage)
    ok = r.fail(std::to_string(count) + " entries exceed the bound of " + std::to_string(kMaxEntriesPerMessage));
  // Every entry takes at least kEntryFixedBytes: a lying count cannot make us allocate.
  if (ok && count * uint64_t{kEntryFixedBytes} > r.left()) ok = r.fail("truncated entries");
  if (ok) m->entries.resize(count);
  for (uint32_t i = 0; ok && i < count; i++) {
    raft::Entry& e = m->entries[i];
    uint8_t etype = 0;
    ok = r.u64(&e.term, "entry term") && r.u64(&e.index, "entry index") && r.u8(&etype, "entry type") &&
         r.u32(&e.schema_version, "entry schema version") && r.u32(&len, "entry length") &&
         r.bytes(len, &e.data, "entry data");
    if (ok && (etype < static_cast<uint8_t>(raft::EntryType::kNormal) ||
               etype > static_cast<uint8_t>(raft::EntryType::kNoop)))
      ok = r.fail("unknown entry type " + std::to_string(etype));
    if (ok) e.type = static_cast<raft::EntryType>(etype);
  }
  if (ok && r.left() != 0) ok = r.fail(std::to_string(r.left()) + " trailing bytes after the message");
  if (!ok) *error = r.error();
  return ok;
}

// ---- frame parser ---------------------------------------------------------------------

FrameParser::Result FrameParser::parse(const char* data, size_t n, size_t* consumed, Frame* frame,
                                       std::string* error) const {
  *consumed = 0;
  // The magic first, byte by byte: an HTTP request or a RESP client on the peer port is
  // refused at its first byte.
  static constexpr char kMagicBytes[4] = {'H', 'M', 'P', 'R'};
  for (size_t i = 0; i < 4 && i < n; i++) {
    if (data[i] != kMagicBytes[i]) {
      *error = "bad frame magic (not an hmdb peer)";
      return Result::kError;
    }
  }
  if (n > 4) {
    uint8_t version = static_cast<uint8_t>(data[4]);
    if (version != kProtocolVersion) {
      *error = "peer protocol version " + std::to_string(version) + " is not supported (this node speaks version " +
               std::to_string(kProtocolVersion) + ")";
      return Result::kError;
    }
  }
  if (n < kFrameHeaderBytes) return Result::kNeedMore;
  uint8_t kind = static_cast<uint8_t>(data[5]);
  if (kind != static_cast<uint8_t>(FrameKind::kHello) && kind != static_cast<uint8_t>(FrameKind::kMessage) &&
      kind != static_cast<uint8_t>(FrameKind::kRefusal)) {
    *error = "unknown frame kind " + std::to_string(kind);
    return Result::kError;
  }
  if (data[6] != 0 || data[7] != 0) {
    *error = "reserved frame header bytes are not zero";
    return Result::kError;
  }
  uint32_t body_bytes = codec::get_u32(data + 8);
  if (body_bytes > max_body_bytes_) {
    *error = "frame body of " + std::to_string(body_bytes) + " bytes exceeds the bound of " +
             std::to_string(max_body_bytes_);
    return Result::kError;
  }
  if (n - kFrameHeaderBytes < body_bytes) return Result::kNeedMore;
  const char* body = data + kFrameHeaderBytes;
  if (frame_checksum(data, body, body_bytes) != codec::get_u64(data + kChecksummedHeaderBytes)) {
    *error = "frame checksum mismatch";
    return Result::kError;
  }
  frame->kind = static_cast<FrameKind>(kind);
  frame->cluster_id = codec::get_u64(data + 12);
  frame->body = std::string_view(body, body_bytes);
  *consumed = kFrameHeaderBytes + body_bytes;
  return Result::kFrame;
}

size_t FrameParser::frame_bytes_hint(const char* data, size_t n) {
  if (n < kFrameHeaderBytes) return 0;
  return kFrameHeaderBytes + codec::get_u32(data + 8);
}

uint64_t cluster_id_from_name(std::string_view name) { return XXH3_64bits(name.data(), name.size()); }

}  // namespace hmdb::net::peer
