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
// Thread-safety: none.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
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
      auto r = std::to_chars(tmp, tmp + sizeof tmp, d);
      text = std::string_view(tmp, static_cast<size_t>(r.ptr - tmp));
    }
    if (!resp3()) {
      bulk(text);
      return;
    }
    out_->push_back(',');
    out_->append(text.data(), text.size());
    out_->append("\r\n");
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

}  // namespace hmdb
