// hmdb/text.h — the text rules shared by the engine and applications: decimal integers,
// blocking commands' timeouts and ASCII case. An app's parse() functions use them for its
// arguments (hmdb/app.h includes this header); the RESP parser, the shell's commands, the
// file-name readers and the tools use the same functions (src/common/text.h adds
// host:port), so "is this an integer" has one answer everywhere.
//
// The rules are Redis' (string2ll, strcasecmp on ASCII), because clients and their test
// suites expect exactly those: no '+', no spaces, no leading zeros in a signed integer, no
// locale. Every function is pure and thread-safe.
#pragma once

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace hmdb {

// ---- integers ---------------------------------------------------------------------------

// Strict decimal integer, like Redis' string2ll: an optional '-', then digits; no '+', no
// spaces, no leading zeros ("0" itself is fine, "-0" is not); must fit in int64_t. The
// whole string must be the number. On false, *out is unchanged.
inline bool parse_int64(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  if (s.size() == 1 && s[0] == '0') { *out = 0; return true; }
  bool negative = s[0] == '-';
  size_t i = negative ? 1 : 0;
  if (i >= s.size() || s[i] < '1' || s[i] > '9') return false;
  uint64_t v = 0;
  constexpr uint64_t kMagnitudeMax = static_cast<uint64_t>(INT64_MAX) + 1;  // |INT64_MIN|
  for (; i < s.size(); i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (v > (kMagnitudeMax - digit) / 10) return false;
    v = v * 10 + digit;
  }
  if (negative) {
    *out = v == kMagnitudeMax ? INT64_MIN : -static_cast<int64_t>(v);
    return true;
  }
  if (v > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

// Unsigned decimal: one or more digits and nothing else (no sign, no spaces); leading zeros
// are allowed (file names pad indexes to 20 digits); must fit in uint64_t. The whole string
// must be the number. On false, *out is unchanged.
inline bool parse_uint64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  *out = v;
  return true;
}

// A blocking command's timeout (BLPOP ... timeout), as Redis 7.0's getTimeoutFromObjectOrReply
// reads it: seconds as a float ("0.01", "1e1"; strtold's syntax, no spaces, no NaN), times
// 1000 and rounded up to milliseconds; 0 waits forever. On false, *error is Redis' text;
// like Redis 7.0 on x86-64, a value past the 64-bit milliseconds ("inf", "1e20") is
// "timeout is negative". *ms is unchanged.
inline bool parse_block_timeout(std::string_view s, uint64_t* ms, std::string* error) {
  constexpr size_t kCharsMax = 5 * 1024;  // Redis' MAX_LONG_DOUBLE_CHARS
  long double v = 0;
  bool ok = !s.empty() && s.size() < kCharsMax && !std::isspace(static_cast<unsigned char>(s[0]));
  if (ok) {
    const std::string buf(s);
    char* end = nullptr;
    errno = 0;
    v = std::strtold(buf.c_str(), &end);
    ok = end == buf.c_str() + buf.size() && !std::isnan(v) &&  // a zero byte inside ends strtold early
         !(errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL || std::fpclassify(v) == FP_ZERO));
  }
  if (!ok) {
    *error = "ERR timeout is not a float or out of range";
    return false;
  }
  const long double rounded = std::ceil(v * 1000.0L);
  if (rounded < 0 || rounded > static_cast<long double>(LLONG_MAX)) {
    *error = "ERR timeout is negative";
    return false;
  }
  *ms = static_cast<uint64_t>(rounded);
  return true;
}

// ---- ASCII case (no locale: a command name means the same under every LANG) ---------------

constexpr char ascii_upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
constexpr char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string uppercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}
inline std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

// ASCII case-insensitive equality, for command names and option words ("NX", "WITHSCORES").
inline bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++)
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  return true;
}

}  // namespace hmdb
