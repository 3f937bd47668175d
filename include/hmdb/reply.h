// hmdb/reply.h — how a command or query answers: RESP2 values written straight into a buffer.
//
// A Reply appends RESP-encoded bytes to a std::string owned by the caller (the client's
// output buffer in the server, a scratch string in tests and the simulator). There is no
// intermediate value tree: a command writes exactly one RESP value (an array counts as one
// value whose elements follow). Helpers exist for every RESP2 type redis-cli understands.
//
// Errors: error(msg) writes "-msg\r\n"; by Redis convention msg starts with an upper-case
// code such as "ERR" or "WRONGTYPE". CR and LF inside msg are replaced by spaces, so a
// message can never break the framing.
//
// Thread-safety: none.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <string_view>

namespace hmdb {

class Reply {
 public:
  explicit Reply(std::string* out) : out_(out) {}

  void ok() { out_->append("+OK\r\n"); }
  void status(std::string_view s) { out_->push_back('+'); append_line(s); }
  void error(std::string_view msg) { out_->push_back('-'); append_line(msg); }
  void integer(int64_t v) { out_->push_back(':'); number(v); out_->append("\r\n"); }
  void bulk(std::string_view s) {
    out_->push_back('$');
    number(static_cast<int64_t>(s.size()));
    out_->append("\r\n");
    out_->append(s.data(), s.size());
    out_->append("\r\n");
  }
  void bulk_integer(int64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    bulk(std::string_view(tmp, r.ptr - tmp));
  }
  void null() { out_->append("$-1\r\n"); }
  void null_array() { out_->append("*-1\r\n"); }
  // Starts an array of n values; the caller then writes exactly n values.
  void array(size_t n) { out_->push_back('*'); number(static_cast<int64_t>(n)); out_->append("\r\n"); }
  // Pre-encoded RESP (e.g. a cached reply). REQUIRES: resp is one complete RESP value.
  void raw(std::string_view resp) { out_->append(resp.data(), resp.size()); }

  size_t size() const { return out_->size(); }
  std::string* buffer() { return out_; }

 private:
  void number(int64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    out_->append(tmp, r.ptr - tmp);
  }
  void append_line(std::string_view s) {
    size_t start = out_->size();
    out_->append(s.data(), s.size());
    for (size_t i = start; i < out_->size(); i++)
      if ((*out_)[i] == '\r' || (*out_)[i] == '\n') (*out_)[i] = ' ';
    out_->append("\r\n");
  }

  std::string* out_;
};

}  // namespace hmdb
