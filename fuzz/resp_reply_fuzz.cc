// fuzz/resp_reply_fuzz.cc — libFuzzer target for the client side of RESP (net/resp_reply.h):
// scan_reply and decode_reply on a stream of replies, one reply after another.
//
// Properties: no crash or out-of-bounds read; a complete reply lies inside the input and its
// error text inside the reply; every strict prefix of a complete reply is incomplete (a reply
// split across reads is never misread; the first input byte picks the cut); the decoder
// agrees with the scanner (incomplete -> 0, malformed -> -1, complete -> the same length, or
// -1 only when the reply holds a RESP3 value, which it does not build); a decoded reply
// re-encodes to bytes that decode to the same value; what hmdb::reply_problem (hmdb/reply.h,
// the check of what an app command wrote) accepts as one complete value, the scanner reads as
// one reply of exactly that length (or refuses past its bounds: nesting, line, bulk sizes).
//
// Built two ways like the other targets: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt),
// and with -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays the corpus (tests/net).
// `resp_reply_fuzz_replay --make-seeds DIR` writes the seed corpus (fuzz/corpus/resp_reply_fuzz).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/assert.h"
#include "hmdb/reply.h"
#include "net/resp_reply.h"

namespace {

using hmdb::net::decode_reply;
using hmdb::net::RespReply;
using hmdb::net::scan_reply;
using hmdb::net::ScannedReply;
using hmdb::net::ScanResult;

void encode(const RespReply& r, std::string* out) {
  switch (r.type) {
    case '+':
    case '-':
      *out += r.type + r.text + "\r\n";
      return;
    case ':':
      *out += ":" + std::to_string(r.integer) + "\r\n";
      return;
    case '$':
      if (r.null) *out += "$-1\r\n";
      else *out += "$" + std::to_string(r.text.size()) + "\r\n" + r.text + "\r\n";
      return;
    case '*':
      if (r.null) {
        *out += "*-1\r\n";
        return;
      }
      *out += "*" + std::to_string(r.elements.size()) + "\r\n";
      for (const RespReply& e : r.elements) encode(e, out);
      return;
    default:
      HMDB_ASSERT(false, "decoded a reply of type %d", r.type);
  }
}

// Whether the complete reply `r` holds a RESP3 value anywhere, found by walking it with the
// scanner alone (independently of the decoder).
bool has_resp3(std::string_view r) {
  const char type = r[0];
  if (type != '+' && type != '-' && type != ':' && type != '$' && type != '*') return true;
  if (type != '*') return false;
  const size_t newline = r.find('\n');
  const long long count = std::strtoll(std::string(r.substr(1, newline - 2)).c_str(), nullptr, 10);
  size_t pos = newline + 1;
  for (long long i = 0; i < count; i++) {
    ScannedReply element;
    HMDB_ASSERT(scan_reply(r.data() + pos, r.size() - pos, &element) == ScanResult::kComplete,
                "an element of a complete array is not complete");
    if (has_resp3(r.substr(pos, element.length))) return true;
    pos += element.length;
  }
  return false;
}

bool same(const RespReply& a, const RespReply& b) {
  if (a.type != b.type || a.null != b.null || a.text != b.text || a.integer != b.integer ||
      a.elements.size() != b.elements.size())
    return false;
  for (size_t i = 0; i < a.elements.size(); i++)
    if (!same(a.elements[i], b.elements[i])) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t cut_byte = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (hmdb::Protocol p : {hmdb::Protocol::kResp2, hmdb::Protocol::kResp3}) {
    if (!hmdb::reply_problem(rest, p).empty()) continue;
    ScannedReply whole;
    const ScanResult r = scan_reply(rest.data(), rest.size(), &whole);
    HMDB_ASSERT(r == ScanResult::kMalformed || (r == ScanResult::kComplete && whole.length == rest.size()),
                "reply_problem accepted %zu bytes the scanner does not read as one complete reply", rest.size());
  }
  while (true) {
    ScannedReply scanned;
    const ScanResult result = scan_reply(rest.data(), rest.size(), &scanned);
    RespReply decoded;
    const int64_t used = decode_reply(rest, &decoded);
    if (result == ScanResult::kIncomplete) {
      HMDB_ASSERT(used == 0, "incomplete for the scanner, %lld for the decoder", static_cast<long long>(used));
      return 0;
    }
    if (result == ScanResult::kMalformed) {
      HMDB_ASSERT(used == -1, "malformed for the scanner, %lld for the decoder", static_cast<long long>(used));
      return 0;
    }
    const size_t length = scanned.length;
    HMDB_ASSERT(length > 0 && length <= rest.size(), "reply of %zu bytes in %zu", length, rest.size());
    HMDB_ASSERT(used == -1 || used == static_cast<int64_t>(length), "scanner %zu bytes, decoder %lld", length,
                static_cast<long long>(used));
    if (scanned.is_error) {
      HMDB_ASSERT(scanned.error_text >= rest.data() &&
                      scanned.error_text + scanned.error_length <= rest.data() + length,
                  "error text outside the reply");
    }
    const size_t cut = length * cut_byte / 256;  // < length
    ScannedReply partial;
    HMDB_ASSERT(scan_reply(rest.data(), cut, &partial) == ScanResult::kIncomplete, "a prefix of %zu of %zu bytes "
                "is not incomplete", cut, length);
    RespReply partial_decoded;
    HMDB_ASSERT(decode_reply(rest.substr(0, cut), &partial_decoded) == 0, "a prefix decoded");
    if (used == -1) HMDB_ASSERT(has_resp3(rest.substr(0, length)), "a RESP2 reply was not decoded");
    if (used > 0) {
      HMDB_ASSERT(decoded.is_error() == scanned.is_error, "error flag differs");
      if (scanned.is_error)
        HMDB_ASSERT(decoded.text == std::string_view(scanned.error_text, scanned.error_length), "error text differs");
      std::string again;
      encode(decoded, &again);
      RespReply redecoded;
      HMDB_ASSERT(decode_reply(again, &redecoded) == static_cast<int64_t>(again.size()), "re-encoded reply rejected");
      HMDB_ASSERT(same(decoded, redecoded), "re-encoded reply decodes differently");
    }
    rest.remove_prefix(length);
  }
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <fstream>
#include <iostream>

#include "replay_main.h"

namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  // The first byte picks where each reply is cut for the prefix check.
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << std::string(1, '\x80') + bytes;
}

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  write_seed(dir, "resp2", "+OK\r\n-MOVED 0 127.0.0.1:7380\r\n:42\r\n$5\r\nhe\r\no\r\n$-1\r\n*2\r\n$1\r\na\r\n*1\r\n:7\r\n*-1\r\n");
  write_seed(dir, "resp3", "_\r\n,3.14\r\n#t\r\n(123\r\n!9\r\nERR oops!\r\n=8\r\ntxt:abcd\r\n%1\r\n+a\r\n:1\r\n"
                           "~1\r\n+b\r\n>2\r\n+message\r\n+x\r\n|1\r\n+k\r\n+v\r\n:7\r\n");
  write_seed(dir, "info", "$59\r\n# Replication\r\nrole:leader\r\ncommit_index:812\r\napplied:812\r\n\r\n");
  write_seed(dir, "torn", "*3\r\n:1\r\n$5\r\nab");
  write_seed(dir, "malformed", "+OK\r\n$3\r\nabcd\r\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
