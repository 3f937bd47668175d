// net/resp_reply.cc — reading a server's RESP replies (see resp_reply.h).
#include "net/resp_reply.h"

#include <algorithm>
#include <cstring>

#include "hmdb/text.h"

namespace hmdb::net {

namespace {

// Finds the CRLF-terminated line starting at data[pos]. Sets *line_end to the index of the
// '\r'. Returns kIncomplete / kMalformed / kComplete.
ScanResult find_line(const char* data, size_t size, size_t pos, size_t* line_end) {
  const size_t available = size - pos;
  const size_t window = std::min(available, kMaxReplyLineBytes + 2);
  const void* newline = std::memchr(data + pos, '\n', window);
  if (newline == nullptr) {
    return available > kMaxReplyLineBytes + 1 ? ScanResult::kMalformed : ScanResult::kIncomplete;
  }
  const size_t at = static_cast<size_t>(static_cast<const char*>(newline) - data);
  if (at == pos || data[at - 1] != '\r') return ScanResult::kMalformed;
  *line_end = at - 1;
  return ScanResult::kComplete;
}

// Reply integers (':', lengths, counts) follow the syntax servers write them in: Redis'
// string2ll (hmdb/text.h).
bool parse_integer(const char* begin, const char* end, int64_t* out) {
  return parse_int64(std::string_view(begin, static_cast<size_t>(end - begin)), out);
}

// Decodes a reply already known (by scan_reply) to be complete and well formed up to
// `end`. Returns the position after it, or nullptr on a RESP3 type.
const char* decode_complete(const char* p, const char* end, int depth, RespReply* out) {
  if (p >= end || depth > kMaxReplyDepth) return nullptr;
  // The line ends at the first '\n', which scan_reply checked follows a '\r' (a '\r' alone
  // is part of a status or error text).
  const char* newline = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
  if (newline == nullptr || newline - p < 2) return nullptr;
  const char* line_end = newline - 1;
  out->type = *p;
  const std::string_view line(p + 1, static_cast<size_t>(line_end - p - 1));
  const char* next = line_end + 2;
  switch (out->type) {
    case '+':
    case '-':
      out->text = std::string(line);
      return next;
    case ':':
      return parse_integer(line.data(), line.data() + line.size(), &out->integer) ? next : nullptr;
    case '$': {
      int64_t length = 0;
      if (!parse_integer(line.data(), line.data() + line.size(), &length)) return nullptr;
      if (length < 0) {
        out->null = true;
        return next;
      }
      if (end - next < length + 2) return nullptr;
      out->text.assign(next, static_cast<size_t>(length));
      return next + length + 2;
    }
    case '*': {
      int64_t count = 0;
      if (!parse_integer(line.data(), line.data() + line.size(), &count)) return nullptr;
      if (count < 0) {
        out->null = true;
        return next;
      }
      out->elements.resize(static_cast<size_t>(count));
      for (auto& element : out->elements) {
        next = decode_complete(next, end, depth + 1, &element);
        if (next == nullptr) return nullptr;
      }
      return next;
    }
    default:
      return nullptr;  // RESP3 types: our clients never send HELLO 3, so a server never answers so
  }
}

}  // namespace

ScanResult scan_reply(const char* data, size_t size, ScannedReply* out) {
  struct Frame {
    int64_t remaining;  // elements still to come at this level
    bool attribute;     // RESP3 '|': annotates the value that follows, is not one itself
  };
  Frame stack[kMaxReplyDepth];
  int depth = 0;
  size_t pos = 0;
  *out = ScannedReply();

  for (;;) {
    if (pos >= size) return ScanResult::kIncomplete;
    const char type = data[pos];
    size_t line_end = 0;
    const ScanResult line = find_line(data, size, pos + 1, &line_end);
    if (line != ScanResult::kComplete) return line;
    const char* text = data + pos + 1;
    const char* text_end = data + line_end;
    const size_t after_line = line_end + 2;
    bool value_done = false;

    switch (type) {
      case '+':
      case '-':
      case ',':
      case '(':
        if (type == '-' && depth == 0) {
          out->is_error = true;
          out->error_text = text;
          out->error_length = static_cast<size_t>(text_end - text);
        }
        pos = after_line;
        value_done = true;
        break;
      case ':': {
        int64_t ignored = 0;
        if (!parse_integer(text, text_end, &ignored)) return ScanResult::kMalformed;
        pos = after_line;
        value_done = true;
        break;
      }
      case '_':
        if (text != text_end) return ScanResult::kMalformed;
        pos = after_line;
        value_done = true;
        break;
      case '#':
        if (text_end - text != 1 || (*text != 't' && *text != 'f')) return ScanResult::kMalformed;
        pos = after_line;
        value_done = true;
        break;
      case '$':
      case '!':
      case '=': {
        int64_t length = 0;
        if (!parse_integer(text, text_end, &length)) return ScanResult::kMalformed;
        if (length == -1 && type == '$') {  // RESP2 null bulk
          pos = after_line;
          value_done = true;
          break;
        }
        if (length < 0 || length > kMaxReplyBulkBytes) return ScanResult::kMalformed;
        const size_t need = after_line + static_cast<size_t>(length) + 2;
        if (need > size) return ScanResult::kIncomplete;
        if (data[need - 2] != '\r' || data[need - 1] != '\n') return ScanResult::kMalformed;
        if (type == '!' && depth == 0) {
          out->is_error = true;
          out->error_text = data + after_line;
          out->error_length = static_cast<size_t>(length);
        }
        pos = need;
        value_done = true;
        break;
      }
      case '*':
      case '~':
      case '>':
      case '%':
      case '|': {
        int64_t count = 0;
        if (!parse_integer(text, text_end, &count)) return ScanResult::kMalformed;
        pos = after_line;
        if (count == -1 && type == '*') {  // RESP2 null array
          value_done = true;
          break;
        }
        if (count < 0 || count > kMaxReplyElements) return ScanResult::kMalformed;
        if (type == '%' || type == '|') count *= 2;  // key and value per entry
        if (count == 0) {
          value_done = type != '|';  // an empty attribute still precedes a value
          break;
        }
        if (depth == kMaxReplyDepth) return ScanResult::kMalformed;
        stack[depth++] = Frame{count, type == '|'};
        break;
      }
      default:
        return ScanResult::kMalformed;
    }

    if (!value_done) continue;
    // One value finished: count it against the enclosing aggregates, innermost first.
    bool need_more = false;
    while (depth > 0) {
      Frame& frame = stack[depth - 1];
      if (--frame.remaining > 0) {
        need_more = true;
        break;
      }
      --depth;
      if (frame.attribute) {  // the annotated value still follows at this level
        need_more = true;
        break;
      }
    }
    if (need_more) continue;
    out->length = pos;
    return ScanResult::kComplete;
  }
}

int64_t decode_reply(std::string_view data, RespReply* out) {
  ScannedReply scanned;
  switch (scan_reply(data.data(), data.size(), &scanned)) {
    case ScanResult::kIncomplete:
      return 0;
    case ScanResult::kMalformed:
      return -1;
    case ScanResult::kComplete:
      break;
  }
  *out = RespReply{};
  const char* end = data.data() + scanned.length;
  const char* next = decode_complete(data.data(), end, 0, out);
  if (next != end) return -1;
  return static_cast<int64_t>(scanned.length);
}

}  // namespace hmdb::net
