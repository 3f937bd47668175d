// tests/compile_fail/good_app.h — a complete, correct app, every optional hook declared as
// the engine calls it: each case derives from it and gets one thing wrong, so its first
// error can only come from that one mistake.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/app.h"

namespace good {

struct Set {
  std::string_view key;
};
inline bool parse_set(hmdb::Args a, Set& out, std::string&) {
  out.key = a[1];
  return true;
}

struct GoodApp {
  static constexpr std::string_view kName = "good";
  static constexpr uint32_t kSchemaVersion = 1;
  struct State {
    uint64_t n = 0;
  };
  static void apply_set(State& s, const Set&, const hmdb::ApplyContext&, hmdb::Reply& r) {
    s.n++;
    r.ok();
  }
  static void define(hmdb::Commands<State>& c) {
    c.write("SET", 2, &parse_set, &apply_set);
    c.query("GET", 1, [](const State& s, hmdb::Args, const hmdb::QueryContext&, hmdb::Reply& r) {
      r.integer(static_cast<int64_t>(s.n));
    });
  }
  static void save(const State& s, hmdb::Encoder& out) { out.varint(s.n); }
  static bool load(State& s, hmdb::Decoder& in, uint32_t) {
    s.n = in.varint();
    return in.ok();
  }
  static uint64_t digest(const State& s) noexcept { return s.n; }
  static std::string info(const State& s) { return "n:" + std::to_string(s.n) + "\r\n"; }
  static std::optional<std::vector<std::string>> housekeeping(const State&, uint64_t) { return std::nullopt; }
  static void prefetch(const State&, hmdb::Args) {}
  static std::optional<uint64_t> expiry_ms(const State&, std::string_view) { return std::nullopt; }
};

}  // namespace good
