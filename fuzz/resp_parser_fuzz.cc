// fuzz/resp_parser_fuzz.cc — libFuzzer target for the RESP request parser.
// The input is fed in pieces (the first byte picks the piece size) the way a session feeds
// its read buffer; the parser must never crash, read out of bounds, or return views
// outside the buffer, and must agree with a whole-buffer parse.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/assert.h"
#include "net/resp.h"

namespace {

// Parses everything; returns the commands and whether it ended in an error.
std::vector<std::vector<std::string>> run(const std::string& input, size_t piece, bool* error) {
  hmdb::net::RespParser parser(/*max_bulk_bytes=*/1 << 16);
  std::vector<std::vector<std::string>> out;
  std::string buf;
  std::vector<std::string_view> argv;
  std::string message;
  *error = false;
  for (size_t fed = 0; fed < input.size();) {
    size_t n = std::min(piece, input.size() - fed);
    buf.append(input, fed, n);
    fed += n;
    while (true) {
      size_t consumed = 0;
      auto r = parser.parse(buf.data(), buf.size(), &consumed, &argv, &message);
      if (r == hmdb::net::RespParser::Result::kError) {
        HMDB_ASSERT(!message.empty(), "error without message");
        *error = true;
        return out;
      }
      if (r == hmdb::net::RespParser::Result::kNeedMore) break;
      HMDB_ASSERT(consumed > 0 && consumed <= buf.size(), "bad consumed %zu of %zu", consumed, buf.size());
      std::vector<std::string> words;
      for (auto a : argv) {
        HMDB_ASSERT(a.data() >= buf.data() && a.data() + a.size() <= buf.data() + consumed, "view outside the command");
        words.emplace_back(a);
      }
      if (!words.empty()) out.push_back(std::move(words));
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
  bool error_pieces = false;
  bool error_whole = false;
  auto a = run(input, piece, &error_pieces);
  auto b = run(input, input.size() + 1, &error_whole);
  // Split points must not change the outcome (commands before an error included).
  HMDB_ASSERT(error_pieces == error_whole, "split changed the outcome");
  HMDB_ASSERT(a == b, "split changed the commands");
  return 0;
}
