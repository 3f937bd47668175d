// hmdb/glob.h — Redis' glob-style pattern matching (stringmatchlen), for applications'
// KEYS / SCAN MATCH-like commands.
//
// The rules are Redis': * ? [abc] [^a-z] [a-z] and \ escapes, case-sensitive, an unclosed
// class running to the end of the pattern. The engine's pub/sub (PSUBSCRIBE) and ACL key and
// channel patterns use it too (core::glob_match). Linear in the pattern times the text at
// worst: the last '*' seen is the only backtracking point (every other token matches exactly
// one character), so no pattern takes exponential time.
#pragma once

#include <cstddef>
#include <string_view>
#include <utility>

namespace hmdb {

namespace detail {
// The pattern token at *pi against c; advances *pi past it. REQUIRES: pattern[*pi] != '*'.
inline bool glob_token_matches(std::string_view pattern, size_t* pi, char c) {
  size_t i = *pi;
  switch (pattern[i]) {
    case '?':
      *pi = i + 1;
      return true;
    case '[': {
      i++;
      const bool negate = i < pattern.size() && pattern[i] == '^';
      if (negate) i++;
      bool match = false;
      while (i < pattern.size() && pattern[i] != ']') {
        if (pattern[i] == '\\' && i + 1 < pattern.size()) {
          i++;
          if (pattern[i] == c) match = true;
          i++;
        } else if (i + 2 < pattern.size() && pattern[i + 1] == '-') {
          char lo = pattern[i], hi = pattern[i + 2];
          if (lo > hi) std::swap(lo, hi);
          if (c >= lo && c <= hi) match = true;
          i += 3;
        } else {
          if (pattern[i] == c) match = true;
          i++;
        }
      }
      *pi = i < pattern.size() ? i + 1 : i;
      return negate ? !match : match;
    }
    case '\\':
      if (i + 1 < pattern.size()) i++;
      [[fallthrough]];
    default:
      *pi = i + 1;
      return pattern[i] == c;
  }
}
}  // namespace detail

// True if text matches pattern. As in Redis, the empty text matches only the empty pattern
// (not even "*"): commands that treat "*" as "everything" (KEYS *, SCAN MATCH *) check for
// it before calling this.
inline bool string_match(std::string_view pattern, std::string_view text) {
  if (text.empty()) return pattern.empty();
  size_t pi = 0, ti = 0;
  size_t star_pi = std::string_view::npos, star_ti = 0;
  while (ti < text.size()) {
    if (pi < pattern.size() && pattern[pi] == '*') {
      while (pi < pattern.size() && pattern[pi] == '*') pi++;
      if (pi == pattern.size()) return true;
      star_pi = pi;
      star_ti = ti;
      continue;
    }
    size_t next = pi;
    if (pi < pattern.size() && detail::glob_token_matches(pattern, &next, text[ti])) {
      pi = next;
      ti++;
      continue;
    }
    if (star_pi == std::string_view::npos) return false;
    pi = star_pi;
    ti = ++star_ti;
  }
  while (pi < pattern.size() && pattern[pi] == '*') pi++;
  return pi == pattern.size();
}

}  // namespace hmdb
