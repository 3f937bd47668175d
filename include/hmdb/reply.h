// hmdb/reply.h — how a command or query answers: RESP values written straight into a
// buffer, in the protocol the client speaks (RESP2, or RESP3 after HELLO 3).
//
// A Reply appends RESP-encoded bytes to a std::string owned by the caller (the client's
// output buffer in the server, a scratch string in tests and the simulator). There is no
// intermediate value tree: a command writes exactly one RESP value (an aggregate counts as
// one value whose elements follow).
//
// The typed writers say what a value is, and the Reply renders it as the session's protocol
// wants — what Redis 7 sends a client of that protocol:
//
//   writer                 RESP2                          RESP3
//   null()                 $-1                            _
//   null_array()           *-1                            _
//   map(n) + 2n values     *2n (flat key, value, ...)     %n
//   set(n) + n values      *n                             ~n
//   double_value(d)        $ bulk "1.5" / "inf" / "-inf"  ,1.5 / ,inf / ,-inf
//   boolean(b)             :1 / :0                        #t / #f
//   big_number(digits)     $ bulk of the digits           (digits
//   verbatim(text, "txt")  $ bulk of text                 =len txt:text
//
// ok, status, error, integer, bulk and array are the same in both. A command whose reply
// has a different SHAPE in RESP3 (Redis' ZRANGE WITHSCORES: pairs in RESP3, flat in RESP2)
// asks resp3() and writes the shape itself.
//
// Errors: error(msg) writes "-msg\r\n"; by Redis convention msg starts with an upper-case
// code such as "ERR" or "WRONGTYPE". CR and LF inside msg are replaced by spaces, so a
// message can never break the framing.
//
// reply_problem() checks what a command wrote: exactly one complete value, well formed, in
// the client's protocol. The test driver (hmdb/testing.h) checks every reply with it, and
// so does AppHost in builds with HMDB_CHECK_REPLIES (hmdb/app.h; on in Debug builds).
//
// Thread-safety: none.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace hmdb {

// The protocol a client session speaks: RESP2 until it sends HELLO 3.
enum class Protocol : uint8_t { kResp2 = 2, kResp3 = 3 };

class Reply {
 public:
  explicit Reply(std::string* out, Protocol protocol = Protocol::kResp2) : out_(out), protocol_(protocol) {}

  Protocol protocol() const { return protocol_; }
  bool resp3() const { return protocol_ == Protocol::kResp3; }

  void ok() { out_->append("+OK\r\n"); }
  void status(std::string_view s) { out_->push_back('+'); append_line(s); }
  void error(std::string_view msg) { out_->push_back('-'); append_line(msg); }
  void integer(int64_t v) { header(':', v); }
  void bulk(std::string_view s) {
    header('$', static_cast<int64_t>(s.size()));
    out_->append(s.data(), s.size());
    out_->append("\r\n");
  }
  void bulk_integer(int64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    bulk(std::string_view(tmp, r.ptr - tmp));
  }
  // A missing value (Redis' addReplyNull).
  void null() { out_->append(resp3() ? "_\r\n" : "$-1\r\n"); }
  // A missing aggregate (Redis' addReplyNullArray): RESP3 has only one null.
  void null_array() { out_->append(resp3() ? "_\r\n" : "*-1\r\n"); }
  // Starts an array of n values; the caller then writes exactly n values.
  void array(size_t n) { header('*', static_cast<int64_t>(n)); }
  // Starts a map of n pairs; the caller then writes 2n values: key, value, key, value...
  void map(size_t pairs) {
    if (resp3()) header('%', static_cast<int64_t>(pairs));
    else header('*', static_cast<int64_t>(2 * pairs));
  }
  // Starts a set of n members; the caller then writes exactly n values.
  void set(size_t n) { header(resp3() ? '~' : '*', static_cast<int64_t>(n)); }
  // A floating-point number, in the shortest text that reads back as the same double
  // (what Redis 7.2 sends; 7.0 printed %.17g, the same text for every value whose shortest
  // form needs 15 digits or fewer). REQUIRES: d is not NaN (no Redis reply carries one).
  void double_value(double d) {
    char tmp[40];
    std::string_view text;
    if (std::isinf(d)) {
      text = d > 0 ? "inf" : "-inf";
    } else {
      text = std::string_view(tmp, double_text(d, tmp, sizeof tmp));
    }
    if (!resp3()) {
      bulk(text);
      return;
    }
    out_->push_back(',');
    out_->append(text.data(), text.size());
    out_->append("\r\n");
  }
  // The text double_value sends for a finite d, into out (cap >= 32): std::to_chars'
  // shortest round-trip form. An integer of up to 15 digits whose last digit is not 0 (most
  // scores: redis-benchmark's, ranks, counts, timestamps) is that integer's digits, and is
  // written as an integer: the same text for half the instructions (callgrind: 157 instead
  // of 314 per ZPOPMIN reply at redis-benchmark's scores, 2 % of the request). Why the same: below 1e15 every integer is exact and no decimal of fewer
  // digits reads back as it, so the shortest form has all its digits, and the fixed form of
  // k digits is shorter than any exponent form (k + 4 or more). A trailing zero can make the
  // exponent form shorter (1e+06), and 0 has a sign (-0): those go to to_chars(double).
  static size_t double_text(double d, char* out, size_t cap) {
    if (d > -1e15 && d < 1e15) {
      const auto i = static_cast<int64_t>(d);
      if (static_cast<double>(i) == d && i % 10 != 0) return static_cast<size_t>(std::to_chars(out, out + cap, i).ptr - out);
    }
    return static_cast<size_t>(std::to_chars(out, out + cap, d).ptr - out);
  }
  void boolean(bool b) {
    if (resp3()) out_->append(b ? "#t\r\n" : "#f\r\n");
    else out_->append(b ? ":1\r\n" : ":0\r\n");
  }
  // An integer too large for int64. REQUIRES: digits is an optional '-' and decimal digits.
  void big_number(std::string_view digits) {
    if (!resp3()) {
      bulk(digits);
      return;
    }
    out_->push_back('(');
    out_->append(digits.data(), digits.size());
    out_->append("\r\n");
  }
  // Text meant for a person (INFO, CLIENT LIST), tagged with its 3-letter format ("txt",
  // "mkd"; shorter is padded with spaces as Redis does).
  void verbatim(std::string_view text, std::string_view format = "txt") {
    if (!resp3()) {
      bulk(text);
      return;
    }
    header('=', static_cast<int64_t>(text.size() + 4));
    for (size_t i = 0; i < 3; i++) out_->push_back(i < format.size() ? format[i] : ' ');
    out_->push_back(':');
    out_->append(text.data(), text.size());
    out_->append("\r\n");
  }
  // Pre-encoded RESP (e.g. a cached reply). REQUIRES: resp is one complete RESP value, in
  // this reply's protocol.
  void raw(std::string_view resp) { out_->append(resp.data(), resp.size()); }

  size_t size() const { return out_->size(); }
  std::string* buffer() { return out_; }

 private:
  void header(char type, int64_t v) {
    char tmp[24];
    tmp[0] = type;
    auto r = std::to_chars(tmp + 1, tmp + sizeof tmp - 2, v);
    r.ptr[0] = '\r';
    r.ptr[1] = '\n';
    out_->append(tmp, static_cast<size_t>(r.ptr + 2 - tmp));
  }
  void append_line(std::string_view s) {
    size_t start = out_->size();
    out_->append(s.data(), s.size());
    for (size_t i = start; i < out_->size(); i++)
      if ((*out_)[i] == '\r' || (*out_)[i] == '\n') (*out_)[i] = ' ';
    out_->append("\r\n");
  }

  std::string* out_;
  Protocol protocol_;
};

namespace detail {

// `resp` quoted for a message, control bytes escaped, at most 96 bytes of it.
inline std::string quote_resp(std::string_view resp) {
  constexpr size_t kShownBytes = 96;
  std::string out = "\"";
  for (size_t i = 0; i < resp.size() && i < kShownBytes; i++) {
    const char c = resp[i];
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '"' || c == '\\') out += std::string("\\") + c;
    else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[static_cast<unsigned char>(c) & 15];
    } else {
      out += c;
    }
  }
  out += resp.size() > kShownBytes ? "\"..." : "\"";
  return out;
}

// A RESP integer: an optional '-' then decimal digits, within int64.
inline bool resp_integer(std::string_view text, int64_t* out) {
  if (text.empty() || text[0] == '+') return false;
  auto r = std::from_chars(text.data(), text.data() + text.size(), *out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

}  // namespace detail

// Why `resp` is not exactly one complete RESP value as a Reply in `protocol` writes one, or
// "" if it is: nothing written, a second value after the first, an aggregate promising more
// elements than follow (an array(3) followed by two values), a malformed line, a RESP3 type
// sent to a RESP2 client, a push or attribute (not a reply). The walk keeps a count of the
// values still owed instead of recursing, so any nesting is checked in constant stack.
inline std::string reply_problem(std::string_view resp, Protocol protocol) {
  const bool resp3 = protocol == Protocol::kResp3;
  uint64_t owed = 1;  // values still to come: the reply, then each aggregate's elements
  size_t pos = 0;
  auto at = [&](size_t p) { return " at byte " + std::to_string(p) + " of " + detail::quote_resp(resp); };
  if (resp.empty()) return "nothing (a command writes exactly one RESP value)";
  while (owed > 0) {
    if (pos >= resp.size())
      return "an incomplete value: an aggregate promised " + std::to_string(owed) + " more element" +
             (owed == 1 ? "" : "s") + " than were written: " + detail::quote_resp(resp);
    const size_t start = pos;
    const char type = resp[pos];
    const size_t eol = resp.find("\r\n", pos + 1);
    if (eol == std::string_view::npos) return "a line without its CRLF" + at(start);
    const std::string_view line = resp.substr(pos + 1, eol - pos - 1);
    if (line.find_first_of("\r\n") != std::string_view::npos) return "a CR or LF inside a line" + at(start);
    pos = eol + 2;
    owed--;
    int64_t n = 0;
    auto aggregate = [&](uint64_t per_entry) -> std::string {
      if (!detail::resp_integer(line, &n) || n < -1 || (n == -1 && (resp3 || type != '*')))
        return std::string("a bad element count '") + std::string(line) + "'" + at(start);
      if (n == -1) return {};  // RESP2's null array
      // Each element takes at least 3 bytes ("_\r\n"): a count beyond that is incomplete.
      if (static_cast<uint64_t>(n) > (resp.size() - pos) / 3 + 1)
        return "an incomplete value: an aggregate of " + std::to_string(n) + " elements with " +
               std::to_string(resp.size() - pos) + " bytes after it: " + detail::quote_resp(resp);
      owed += static_cast<uint64_t>(n) * per_entry;
      return {};
    };
    auto blob = [&](size_t min_bytes) -> std::string {
      if (!detail::resp_integer(line, &n) || n < -1 || (n == -1 && (resp3 || type != '$')))
        return std::string("a bad length '") + std::string(line) + "'" + at(start);
      if (n == -1) return {};  // RESP2's null bulk string
      if (static_cast<uint64_t>(n) > resp.size() - pos || resp.size() - pos - static_cast<size_t>(n) < 2)
        return "an incomplete bulk string of " + std::to_string(n) + " bytes" + at(start);
      if (resp.substr(pos + static_cast<size_t>(n), 2) != "\r\n")
        return "a bulk string whose CRLF is not after its " + std::to_string(n) + " bytes" + at(start);
      if (static_cast<size_t>(n) < min_bytes || (min_bytes && resp[pos + 3] != ':'))
        return "a verbatim string without its 3-letter format and ':'" + at(start);
      pos += static_cast<size_t>(n) + 2;
      return {};
    };
    std::string problem;
    switch (type) {
      case '+':
      case '-': break;
      case ':':
        if (!detail::resp_integer(line, &n)) problem = "a bad integer" + at(start);
        break;
      case '$': problem = blob(0); break;
      case '*': problem = aggregate(1); break;
      case '_':
      case '#':
      case ',':
      case '(':
      case '!':
      case '=':
      case '%':
      case '~':
        if (!resp3) {
          problem = std::string("a RESP3 value ('") + type + "') to a RESP2 client (the typed writers render each " +
                    "protocol's form)" + at(start);
        } else if (type == '_') {
          if (!line.empty()) problem = "a null with text after '_'" + at(start);
        } else if (type == '#') {
          if (line != "t" && line != "f") problem = "a boolean other than #t or #f" + at(start);
        } else if (type == ',') {
          if (line.empty()) problem = "an empty double" + at(start);
        } else if (type == '(') {
          const std::string_view digits = line.starts_with('-') ? line.substr(1) : line;
          if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos)
            problem = "a big number that is not digits" + at(start);
        } else if (type == '!') {
          problem = blob(0);
        } else if (type == '=') {
          problem = blob(4);
        } else {
          problem = aggregate(type == '%' ? 2 : 1);
        }
        break;
      case '>':
      case '|': problem = "a push or attribute (not a command's reply)" + at(start); break;
      default: problem = std::string("an unknown type byte '") + type + "'" + at(start); break;
    }
    if (!problem.empty()) return problem;
  }
  if (pos != resp.size())
    return "a second value after the first complete one (a command writes exactly one RESP value): " +
           detail::quote_resp(resp);
  return {};
}

}  // namespace hmdb
