// net/resp.h — incremental RESP2 request parser (multibulk and inline commands).
//
// A client's read buffer is handed to RespParser::parse() whenever new bytes arrive. The
// parser remembers how far it got inside the current command, so a 512 MiB bulk that
// arrives in 64 KiB pieces is scanned once, not 8192 times. When a command is complete the
// parser returns views into the buffer (zero copy); they stay valid until the caller
// consumes the command's bytes from its buffer.
//
// Contract with the caller (the session):
//   - parse() is always given the unconsumed bytes, starting at the first byte of the
//     command being parsed. The caller may move those bytes around between calls (compact
//     its buffer): the parser keeps offsets relative to the command start, never pointers.
//   - parse() may rewrite bytes in place (unquoting an inline command), hence char*.
//   - After kError the stream cannot be trusted: reply "-<error>" and close the connection.
//
// Bounds (Redis' defaults, named so that docs/operations.md can cite them):
//   kDefaultMaxBulkBytes   largest bulk string (configurable: --max-bulk-bytes)
//   kMaxMultibulkCount     most arguments in one command
//   kMaxInlineBytes        longest inline command line, and the longest "*<n>" / "$<n>"
//                          header line; a client that sends more than this without a newline
//                          gets a protocol error and is disconnected.
//
// Thread-safety: none; one parser per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hmdb::net {

inline constexpr uint64_t kDefaultMaxBulkBytes = 512ull << 20;
inline constexpr uint64_t kMaxMultibulkCount = 1024 * 1024;
inline constexpr size_t kMaxInlineBytes = 64 * 1024;

class RespParser {
 public:
  enum class Result : uint8_t {
    kNeedMore,  // no complete command yet; call again with more bytes
    kCommand,   // *argv holds a complete command; *consumed bytes belong to it
    kError,     // protocol error: *error holds the message (without '-'); close after replying
  };

  explicit RespParser(uint64_t max_bulk_bytes = kDefaultMaxBulkBytes) : max_bulk_bytes_(max_bulk_bytes) {}

  // Parses the command that starts at data[0]. On kCommand, argv holds views into data
  // (at least one word; empty lines and "*0" are skipped over and reported as consumed
  // bytes with an empty argv — the caller just drops them). On kNeedMore, *consumed is 0.
  Result parse(char* data, size_t len, size_t* consumed, std::vector<std::string_view>* argv, std::string* error);

  // Bytes the current command still needs at least (a hint to reserve buffer space for a
  // large bulk). 0 when unknown.
  uint64_t bytes_wanted() const { return bulk_len_ >= 0 ? static_cast<uint64_t>(bulk_len_) + 2 : 0; }

  // Forgets any partial command (the caller dropped its buffer).
  void reset();

 private:
  struct Span {
    size_t offset;
    size_t length;
  };
  // A command that is whole in data[0, len) and whose header lines fast_length reads (no
  // sign, no leading zero, within the bounds): its words into argv and its size into
  // *consumed in one pass, true. Otherwise false, argv partly filled (the caller clears it)
  // and nothing else changed: parse_multibulk's general path then reads the command as it
  // arrives, and reports any error. Both accept such a command alike, with the same words.
  bool parse_whole(const char* data, size_t len, size_t* consumed, std::vector<std::string_view>* argv) const;
  Result parse_multibulk(char* data, size_t len, size_t* consumed, std::vector<std::string_view>* argv,
                         std::string* error);
  Result parse_inline(char* data, size_t len, size_t* consumed, std::vector<std::string_view>* argv,
                      std::string* error);

  uint64_t max_bulk_bytes_;
  // State of the multibulk command being parsed (offsets relative to the command start).
  bool in_multibulk_ = false;
  int64_t multibulk_left_ = -1;  // arguments still to read; -1: header not read yet
  int64_t bulk_len_ = -1;       // length of the bulk whose header was read; -1: none
  size_t pos_ = 0;              // next unparsed byte
  std::vector<Span> spans_;
};

// Splits an inline command line in place the way redis-cli/sdssplitargs does: words separated
// by spaces or tabs; "double quotes" with \n \r \t \b \a \\ \" \xHH escapes; 'single quotes'
// with \' only. Returns false on unbalanced quotes. Views point into line.
bool split_inline(char* line, size_t len, std::vector<std::string_view>* argv);

}  // namespace hmdb::net
