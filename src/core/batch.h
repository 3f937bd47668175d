// core/batch.h — the payload of a normal log entry: a batch of client commands.
//
// The shell packs every write that arrived in one event-loop turn into one log entry, so
// consensus, the log and fsync pay their per-entry cost once per batch, not per command.
// The leader stamps its wall clock into the batch; apply() reads time only from there.
//
// Format (docs/formats.md, byte by byte): u8 format, u64 leader_time_ms, varint count, then
// count items. An item is a command — varint argc (>= 1), then argc byte strings (varint
// length + bytes) — or, in format 2 only, an extension item: a varint 0 where argc would be,
// a u8 item type, then the type's body. Type 1 is a transaction group (MULTI ... EXEC):
// varint n, then n commands, applied back to back with nothing in between. Type 2 is a
// request (HMDB.REQ, core/request.h): the request id (varint length + 1..64 bytes), a u8
// protocol (2 or 3: the RESP version its reply is rendered in), then the one item it
// tags: a command, or a transaction group. Type 3 is a schema activation: varint version
// (1 .. 2^32-1), the app schema version the cluster's writes are logged under from this
// item on (core/apply.h). Type 4 is a digest mark (CLUSTER DIGEST MARK): no body; every
// node that applies it records the digest of its state at that point (core/digest_marks.h).
// Type 5 is an ACL change (core/acl.h, AclOp): a u8 op (1 SETUSER, 2 DELUSER, 3 LOAD, 4 SEED),
// varint n, then n byte strings: SETUSER's user name and rules (passwords as #<sha256>, never
// in clear), DELUSER's names (n >= 1), LOAD's and SEED's one text of ACL LIST lines.
//
// A batch holding only commands is written as format 1, byte for byte what binaries before
// transactions wrote and read; format 2 is used only for a batch that holds an extension
// item, so a binary that does not know it refuses that entry (its reader sees an unknown
// format byte) instead of misreading it. A reader also refuses an item type it does not
// know: new wrappers are new item types.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <xxhash.h>

#include "common/assert.h"
#include "core/request.h"
#include "hmdb/codec.h"
#include "hmdb/state_machine.h"

namespace hmdb::core {

inline constexpr uint8_t kBatchFormatCommands = 1;  // commands only
inline constexpr uint8_t kBatchFormatItems = 2;     // commands and extension items
inline constexpr uint8_t kBatchFormatNewest = kBatchFormatItems;
// Extension item types (format 2).
inline constexpr uint8_t kItemTransaction = 1;
inline constexpr uint8_t kItemRequest = 2;
inline constexpr uint8_t kItemActivation = 3;
inline constexpr uint8_t kItemDigestMark = 4;
inline constexpr uint8_t kItemAcl = 5;
// Bound on words per command in a batch (also enforced by the RESP parser).
inline constexpr uint64_t kMaxArgsPerCommand = 1024 * 1024;

// An ACL item's op (core/acl.h, AclOp: 1 SETUSER, 2 DELUSER, 3 LOAD, 4 SEED) with this many
// words: SETUSER a name and its rules (>= 1), DELUSER names (>= 1), LOAD and SEED one text.
constexpr bool acl_item_valid(uint8_t op, uint64_t words) {
  switch (op) {
    case 1:
    case 2: return words >= 1 && words <= kMaxArgsPerCommand;
    case 3:
    case 4: return words == 1;
    default: return false;
  }
}

class BatchBuilder {
 public:
  explicit BatchBuilder(uint64_t leader_time_ms) { start(leader_time_ms); }
  void start(uint64_t leader_time_ms) {
    body_.clear();
    count_ = 0;
    group_left_ = 0;
    format_ = kBatchFormatCommands;
    time_ms_ = leader_time_ms;
  }
  // A command of its own. (The RESP parser and validation bound its words.)
  void add(Args argv) {
    put(argv);
    count_++;
  }
  // A transaction group of `commands` commands: the next `commands` calls of add_to_group
  // fill it.
  void add_group(uint64_t commands) {
    HMDB_ASSERT(group_left_ == 0, "a group inside a group");
    body_.varint(0);
    body_.u8(kItemTransaction);
    body_.varint(commands);
    format_ = kBatchFormatItems;
    group_left_ = commands;
    count_++;
  }
  // An activation of schema version `version` (CLUSTER SCHEMA ACTIVATE): one item.
  void add_activation(uint32_t version) {
    HMDB_ASSERT(group_left_ == 0, "an activation inside a group");
    body_.varint(0);
    body_.u8(kItemActivation);
    body_.varint(version);
    format_ = kBatchFormatItems;
    count_++;
  }
  // A digest mark (CLUSTER DIGEST MARK): one item.
  void add_digest_mark() {
    HMDB_ASSERT(group_left_ == 0, "a digest mark inside a group");
    body_.varint(0);
    body_.u8(kItemDigestMark);
    format_ = kBatchFormatItems;
    count_++;
  }
  // An ACL change (core/acl.h: AclOp and its words, checked by acl_item_valid): one item.
  void add_acl(uint8_t op, const std::vector<std::string_view>& words) {
    HMDB_ASSERT(group_left_ == 0, "an ACL change inside a group");
    HMDB_ASSERT(acl_item_valid(op, words.size()), "an ACL item of op %u with %zu words", op, words.size());
    body_.varint(0);
    body_.u8(kItemAcl);
    body_.u8(op);
    body_.varint(words.size());
    for (std::string_view w : words) body_.bytes(w);
    format_ = kBatchFormatItems;
    count_++;
  }
  // A request (HMDB.REQ, core/request.h): the next add() or add_group() is the item it tags
  // with `id`, whose reply is rendered in `protocol`. The two are one item, counted by
  // add() or add_group() (so add() stays as short as it was). Defined in core/request.cc.
  void add_request(std::string_view id, Protocol protocol);
  void add_to_group(Args argv) {
    HMDB_ASSERT(group_left_ > 0, "a group command outside a group");
    HMDB_ASSERT(!argv.empty() && argv.size() <= kMaxArgsPerCommand, "a batched command has %zu words", argv.size());
    put(argv);
    group_left_--;
  }
  uint64_t leader_time_ms() const { return time_ms_; }
  // Items: commands outside groups, and groups.
  uint64_t count() const { return count_; }
  bool empty() const { return body_.size() == 0; }  // (not count_: a request before its item is counted)
  size_t body_bytes() const { return body_.size(); }
  // The entry payload. Leaves the builder empty.
  std::string finish() {
    HMDB_ASSERT(group_left_ == 0, "a batch finished inside a group (%llu commands missing)",
                static_cast<unsigned long long>(group_left_));
    Encoder out;
    out.u8(format_);
    out.u64(time_ms_);
    out.varint(count_);
    out.raw(body_.buffer());
    body_.clear();
    count_ = 0;
    format_ = kBatchFormatCommands;
    return out.take();
  }

 private:
  // A command's encoding: varint argc, then each word's varint length and bytes. Encoded
  // into a stack buffer and appended in one call when it fits (a pipelined INCR, SADD or
  // HSET: 30-60 bytes): each Encoder call is an append of its own (5 for an INCR, 9 for an
  // HSET), ~25-35 instructions each at pipeline 32 (callgrind). Longer commands take the
  // Encoder word by word. The bytes are the same either way.
  void put(Args argv) {
    char tmp[kPutStackBytes];
    size_t need = kVarintBytesMax;
    for (auto a : argv) need += kVarintBytesMax + a.size();
    if (need > sizeof tmp) [[unlikely]] {
      body_.varint(argv.size());
      for (auto a : argv) body_.bytes(a);
      return;
    }
    char* p = put_varint(tmp, argv.size());
    for (auto a : argv) {
      p = put_varint(p, a.size());
      std::memcpy(p, a.data(), a.size());
      p += a.size();
    }
    body_.raw(std::string_view(tmp, static_cast<size_t>(p - tmp)));
  }
  static char* put_varint(char* p, uint64_t v) {
    while (v >= 0x80) {
      *p++ = static_cast<char>((v & 0x7f) | 0x80);
      v >>= 7;
    }
    *p++ = static_cast<char>(v);
    return p;
  }
  // put()'s stack buffer: a command whose encoding may be longer goes word by word. (A
  // varint of a uint64_t is at most kVarintBytesMax bytes.)
  static constexpr size_t kPutStackBytes = 256;
  static constexpr size_t kVarintBytesMax = 10;

  Encoder body_;
  uint64_t count_ = 0;
  uint64_t group_left_ = 0;  // commands the open group still needs
  uint8_t format_ = kBatchFormatCommands;
  uint64_t time_ms_ = 0;
};

// One step through a batch (BatchReader::next(BatchStep&)).
struct BatchStep {
  enum class Kind : uint8_t {
    kCommand,     // a command of its own: argv
    kGroupBegin,  // a transaction group of group_size commands starts
    kGroupCommand,  // command `position` of the open group: argv
    kGroupEnd,    // the open group is complete
    kActivation,  // a schema activation: version
    kDigestMark,  // a digest mark: the state here is hashed and kept (core/digest_marks.h)
    kAcl,         // an ACL change: acl_op, and its words in argv (core/acl.h)
  };
  Kind kind = Kind::kCommand;
  uint64_t item = 0;        // the item's position in the batch (a group and its steps share one)
  uint64_t position = 0;    // kGroupCommand: the command's position in its group
  uint64_t group_size = 0;  // kGroupBegin/kGroupCommand/kGroupEnd: commands in the group
  uint32_t version = 0;     // kActivation: the schema version it activates
  uint8_t acl_op = 0;       // kAcl: the change (core/acl.h, AclOp)
  std::vector<std::string_view> argv;  // kCommand, kGroupCommand: views into the payload
  // The item is tagged with a request (HMDB.REQ): its id (empty: not tagged), the protocol
  // its reply is rendered in, and XXH3-64 of the tagged item's bytes (a retry must be the
  // same command). Set on kCommand, and on every step of a tagged group.
  std::string_view request_id;
  Protocol request_protocol = Protocol::kResp2;
  uint64_t request_hash = 0;
  bool tagged() const { return !request_id.empty(); }
};

// Walks a batch without copying. Usage:
//   BatchReader r(payload); if (!r.ok()) refuse (r.format() says whether it is unknown);
//   while (r.next(step)) { ... }   then check r.ok() again.
// next(argv) walks the commands only, group or not, for callers that need no structure.
class BatchReader {
 public:
  explicit BatchReader(std::string_view payload) : payload_(payload), in_(payload) {
    format_ = in_.u8();
    if (format_ != kBatchFormatCommands && format_ != kBatchFormatItems) in_.fail();
    time_ms_ = in_.u64();
    count_ = in_.count(1);
  }
  bool ok() const { return in_.ok(); }
  // The format byte (0 if the payload is empty). A reader refuses every format above
  // kBatchFormatNewest: ok() is false and the caller can tell the writer was newer.
  uint8_t format() const { return format_; }
  uint64_t leader_time_ms() const { return time_ms_; }
  // Items (commands outside groups, and groups).
  uint64_t count() const { return count_; }

  // The next step. Returns false at the end or on malformed input (then ok() is false).
  bool next(BatchStep& step) {
    if (!in_.ok()) return false;
    step.item = read_;
    step.group_size = group_size_;
    step.request_id = request_id_;
    step.request_protocol = request_protocol_;
    step.request_hash = request_hash_;
    if (in_group_) {
      if (group_read_ == group_size_) {
        in_group_ = false;
        step.kind = BatchStep::Kind::kGroupEnd;
        return finish_item();
      }
      uint64_t argc = in_.count(1);
      if (argc == 0 || argc > kMaxArgsPerCommand) return fail();  // no extension inside a group
      if (!read_words(argc, step.argv)) return false;
      step.kind = BatchStep::Kind::kGroupCommand;
      step.position = group_read_++;
      return true;
    }
    if (read_ == count_) return false;
    untag(step);
    uint64_t argc = in_.count(1);
    if (argc > kMaxArgsPerCommand) return fail();
    if (argc > 0) {
      if (!read_words(argc, step.argv)) return false;
      step.kind = BatchStep::Kind::kCommand;
      return finish_item();
    }
    // An extension item.
    if (format_ < kBatchFormatItems) return fail();
    uint8_t type = in_.u8();
    if (type == kItemActivation) {
      const uint64_t version = in_.varint();
      if (version == 0 || version > UINT32_MAX) return fail();
      step.kind = BatchStep::Kind::kActivation;
      step.version = static_cast<uint32_t>(version);
      return finish_item();
    }
    if (type == kItemDigestMark) {
      step.kind = BatchStep::Kind::kDigestMark;
      return finish_item();
    }
    if (type == kItemAcl) {
      const uint8_t op = in_.u8();
      const uint64_t words = in_.count(1);
      if (!in_.ok() || !acl_item_valid(op, words)) return fail();
      if (!read_words(words, step.argv)) return false;
      step.kind = BatchStep::Kind::kAcl;
      step.acl_op = op;
      return finish_item();
    }
    if (type == kItemRequest) {
      const std::string_view id = in_.bytes();
      const uint8_t protocol = in_.u8();
      if (!in_.ok() || id.empty() || id.size() > kRequestIdBytesMax ||
          (protocol != static_cast<uint8_t>(Protocol::kResp2) && protocol != static_cast<uint8_t>(Protocol::kResp3)))
        return fail();
      const size_t tagged_at = position();
      argc = in_.count(1);
      if (argc > kMaxArgsPerCommand) return fail();
      if (argc > 0) {  // a tagged command
        if (!read_words(argc, step.argv)) return false;
        step.request_id = id;
        step.request_protocol = static_cast<Protocol>(protocol);
        step.request_hash = XXH3_64bits(payload_.data() + tagged_at, position() - tagged_at);
        step.kind = BatchStep::Kind::kCommand;
        return finish_item();
      }
      type = in_.u8();  // a request tags a command or a group, nothing else
      if (type != kItemTransaction) return fail();
      // A tagged group: its hash covers all of it, so it is read ahead once, here.
      Decoder ahead = in_;
      for (uint64_t n = ahead.count(1), i = 0; i < n && ahead.ok(); i++) {
        const uint64_t words = ahead.count(1);
        if (words == 0 || words > kMaxArgsPerCommand) ahead.fail();
        for (uint64_t w = 0; w < words && ahead.ok(); w++) ahead.bytes();
      }
      if (!ahead.ok()) return fail();
      request_id_ = id;
      request_protocol_ = static_cast<Protocol>(protocol);
      const size_t end = payload_.size() - ahead.remaining();
      request_hash_ = XXH3_64bits(payload_.data() + tagged_at, end - tagged_at);
    } else if (type != kItemTransaction) {
      return fail();
    }
    group_size_ = in_.count(1);
    if (!in_.ok()) return false;
    in_group_ = true;
    group_read_ = 0;
    step.kind = BatchStep::Kind::kGroupBegin;
    step.group_size = group_size_;
    step.request_id = request_id_;
    step.request_protocol = request_protocol_;
    step.request_hash = request_hash_;
    return true;
  }

  // The next command, group or not. Returns false at the end or on malformed input.
  bool next(std::vector<std::string_view>& argv) {
    if (format_ == kBatchFormatCommands) {  // commands only: the short walk (apply's hot path)
      if (read_ == count_ || !in_.ok()) return false;
      uint64_t argc = in_.count(1);
      if (argc == 0 || argc > kMaxArgsPerCommand) return fail();
      argv.clear();
      for (uint64_t i = 0; i < argc; i++) argv.push_back(in_.bytes());
      if (!in_.ok()) return false;
      return finish_item();
    }
    while (next(flat_)) {
      if (flat_.kind == BatchStep::Kind::kCommand || flat_.kind == BatchStep::Kind::kGroupCommand) {
        argv.swap(flat_.argv);
        return true;
      }
    }
    return false;
  }

 private:
  bool fail() {
    in_.fail();
    return false;
  }
  size_t position() const { return payload_.size() - in_.remaining(); }
  // A new item starts: not tagged unless it is a request.
  void untag(BatchStep& step) {
    request_id_ = {};
    request_hash_ = 0;
    request_protocol_ = Protocol::kResp2;
    step.request_id = {};
    step.request_hash = 0;
    step.request_protocol = Protocol::kResp2;
  }
  bool read_words(uint64_t argc, std::vector<std::string_view>& argv) {
    argv.clear();
    for (uint64_t i = 0; i < argc; i++) argv.push_back(in_.bytes());
    return in_.ok();
  }
  // The current item is complete: the last one must end the payload exactly.
  bool finish_item() {
    read_++;
    if (read_ == count_ && !in_.done()) in_.fail();  // trailing garbage
    return in_.ok();
  }

  std::string_view payload_;
  Decoder in_;
  uint8_t format_ = 0;
  uint64_t time_ms_ = 0;
  uint64_t count_ = 0;
  uint64_t read_ = 0;  // items completed
  bool in_group_ = false;
  uint64_t group_size_ = 0;
  uint64_t group_read_ = 0;
  // The open group's request, if it is tagged.
  std::string_view request_id_;
  Protocol request_protocol_ = Protocol::kResp2;
  uint64_t request_hash_ = 0;
  BatchStep flat_;  // next(argv)'s step
};

}  // namespace hmdb::core
