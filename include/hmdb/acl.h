// hmdb/acl.h — Redis' ACL command categories (@read, @write, @string, ...), which an app's
// commands declare in define() (hmdb/app.h: .categories("@string @fast")) and users' rules
// name (ACL SETUSER alice +@read -@dangerous; docs/security.md).
//
// The categories and their order are Redis 7's (ACL CAT lists them in this order). A
// command's categories are a bit set (Categories); an app cannot invent new ones, so that a
// rule means the same against every app.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hmdb::acl {

enum Category : uint8_t {
  kKeyspace, kRead, kWrite, kSet, kSortedSet, kList, kHash, kString, kBitmap, kHyperLogLog, kGeo,
  kStream, kPubSub, kAdmin, kFast, kSlow, kBlocking, kDangerous, kConnection, kTransaction, kScripting,
  kCategoryCount,
};

inline constexpr std::string_view kCategoryNames[kCategoryCount] = {
    "keyspace", "read",  "write", "set",  "sortedset", "list",     "hash",       "string",      "bitmap",    "hyperloglog", "geo",
    "stream",   "pubsub", "admin", "fast", "slow",      "blocking", "dangerous", "connection", "transaction", "scripting"};

using Categories = uint32_t;
static_assert(kCategoryCount <= 32, "Categories holds one bit per category");

constexpr Categories bit(Category c) { return Categories{1} << c; }

// The category named `name` (lower case, without '@'), or kCategoryCount if there is none.
constexpr Category category_named(std::string_view name) {
  for (uint8_t i = 0; i < kCategoryCount; i++)
    if (kCategoryNames[i] == name) return static_cast<Category>(i);
  return kCategoryCount;
}

// "@string @fast" (words separated by spaces, each starting with '@') -> *out. False, with
// the offending word in *bad, for a word that names no category.
inline bool parse_categories(std::string_view text, Categories* out, std::string* bad) {
  Categories c = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == ' ') {
      i++;
      continue;
    }
    size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(i, end - i);
    const Category cat = word.size() > 1 && word[0] == '@' ? category_named(word.substr(1)) : kCategoryCount;
    if (cat == kCategoryCount) {
      *bad = std::string(word);
      return false;
    }
    c |= bit(cat);
    i = end;
  }
  *out = c;
  return true;
}

}  // namespace hmdb::acl
