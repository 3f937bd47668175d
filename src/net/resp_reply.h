// net/resp_reply.h — the client side of RESP: reading a server's replies (the request
// parser, the server side, is net/resp.h).
//
// Two readers over the same rules, for two kinds of client:
//   scan_reply    where one reply ends and whether it is an error, building no value: the
//                 load generator (tools/bench.cc) counts millions of replies with it, with no
//                 allocation per reply.
//   decode_reply  the reply as a value tree (RespReply), for tools that read what a reply
//                 says (tools/cluster_cli.cc); it scans first, so it accepts exactly what
//                 scan_reply accepts, less the RESP3 types (we never send HELLO 3).
// scan_reply understands RESP2 (+ - : $ *) and the RESP3 types (_ , # ( ! = % ~ > |) so that a
// server answering in RESP3 does not desynchronise a client. A reply is scanned from its
// first byte each time; an incomplete one is scanned again when more bytes arrive (replies to
// a client are small, so the rescan costs little; a caller bounds its buffer).
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hmdb::net {

// Nesting deeper than this is treated as a protocol error (no server sends it to us).
inline constexpr int kMaxReplyDepth = 32;
// A simple line (status, error, integer, length header) longer than this with no CRLF is a
// protocol error rather than "wait for more".
inline constexpr size_t kMaxReplyLineBytes = 64 * 1024;
// Largest bulk string accepted in a reply (Redis' default proto-max-bulk-len).
inline constexpr int64_t kMaxReplyBulkBytes = int64_t{512} * 1024 * 1024;
// Largest aggregate element count accepted in a reply.
inline constexpr int64_t kMaxReplyElements = int64_t{1} << 32;

enum class ScanResult { kComplete, kIncomplete, kMalformed };

struct ScannedReply {
  size_t length = 0;      // bytes of the whole reply (valid when kComplete)
  bool is_error = false;  // top-level '-' or '!' reply
  // The error text (without the leading '-' and CRLF) points into the scanned buffer.
  const char* error_text = nullptr;
  size_t error_length = 0;
};

// Scans the reply at the front of data[0, size).
ScanResult scan_reply(const char* data, size_t size, ScannedReply* out);

// A decoded RESP2 reply.
struct RespReply {
  char type = 0;  // '+', '-', ':', '$', '*'
  bool null = false;
  std::string text;  // status, error (without '-') or bulk
  int64_t integer = 0;
  std::vector<RespReply> elements;
  bool is_error() const { return type == '-'; }
};

// Decodes one complete reply at the front of `data`. Returns the bytes it used, 0 when the
// reply is not complete yet, and -1 when the bytes are not RESP2.
int64_t decode_reply(std::string_view data, RespReply* out);

}  // namespace hmdb::net
