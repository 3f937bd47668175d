// tests/server/tiny_app.h — a minimal application for the server's tests, so that they do
// not depend on the kv app: a string map with SET/INCRBY/DEL (writes), GET/DBSIZE (queries).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "hmdb/app.h"

namespace hmdb::test {

struct TinyKv {
  static constexpr std::string_view kName = "tinykv";
  static constexpr uint32_t kSchemaVersion = 1;
  // What a snapshot written in slices keeps (tiny_server_main.cc, HMDB_TINY_APP=sliced-save):
  // the value at its start of each key a write changed before the producer wrote it (copy
  // before write; nullopt: the key did not exist then).
  struct KeptValues {
    bool started = false;      // some key was written: keys <= written_up_to are done
    std::string written_up_to;
    std::map<std::string, std::optional<std::string>, std::less<>> kept;
    bool copy = true;  // false: a planted bug (HMDB_TINY_APP=sliced-save-no-copy) keeps nothing
  };
  struct State {
    std::map<std::string, std::string, std::less<>> data;
    KeptValues* saving = nullptr;  // the snapshot in slices running, if any
    // Every write calls this before it changes `key`.
    void before_change(std::string_view key) {
      if (saving == nullptr || !saving->copy) return;
      if (saving->started && key <= saving->written_up_to) return;
      if (saving->kept.find(key) != saving->kept.end()) return;
      auto it = data.find(key);
      saving->kept.emplace(std::string(key),
                           it == data.end() ? std::nullopt : std::optional<std::string>(it->second));
    }
  };

  struct KeyValue {
    std::string_view key;
    std::string_view value;
  };
  struct KeyDelta {
    std::string_view key;
    int64_t delta = 0;
  };
  struct Key {
    std::string_view key;
  };

  static bool parse_int(std::string_view s, int64_t* out) {
    if (s.empty() || s.size() > 19) return false;
    int64_t v = 0;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == s.size()) return false;
    for (; i < s.size(); i++) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = s[0] == '-' ? -v : v;
    return true;
  }

  static void define(Commands<State>& c) { define_as<false>(c); }
  // kSkewed: SET stores its value with a ' appended, an apply bug that makes the state of a
  // node running it differ from its peers' (tiny_server_main.cc: HMDB_TINY_APP=skewed, for
  // system.verify.diverged).
  template <bool kSkewed>
  static void define_as(Commands<State>& c) {
    c.write(
        "SET", 3,
        [](Args a, KeyValue& o, std::string&) {
          o.key = a[1];
          o.value = a[2];
          return true;
        },
        [](State& s, const KeyValue& o, const ApplyContext&, Reply& r) {
          s.before_change(o.key);
          s.data.insert_or_assign(std::string(o.key), kSkewed ? std::string(o.value) + "'" : std::string(o.value));
          r.ok();
        });
    c.write(
        "INCRBY", 3,
        [](Args a, KeyDelta& o, std::string& error) {
          o.key = a[1];
          if (!parse_int(a[2], &o.delta)) {
            error = "ERR value is not an integer or out of range";
            return false;
          }
          return true;
        },
        [](State& s, const KeyDelta& o, const ApplyContext&, Reply& r) {
          s.before_change(o.key);
          auto& v = s.data[std::string(o.key)];
          int64_t n = 0;
          if (!v.empty() && !parse_int(v, &n)) {
            r.error("ERR value is not an integer or out of range");
            return;
          }
          n += o.delta;
          v = std::to_string(n);
          r.integer(n);
        });
    c.write(
        "DEL", 2,
        [](Args a, Key& o, std::string&) {
          o.key = a[1];
          return true;
        },
        [](State& s, const Key& o, const ApplyContext&, Reply& r) {
          s.before_change(o.key);
          auto it = s.data.find(o.key);
          if (it == s.data.end()) {
            r.integer(0);
          } else {
            s.data.erase(it);
            r.integer(1);
          }
        });
    c.query("GET", 2, [](const State& s, Args a, const QueryContext&, Reply& r) {
      auto it = s.data.find(a[1]);
      if (it == s.data.end()) r.null();
      else r.bulk(it->second);
    });
    c.query("DBSIZE", 1, [](const State& s, Args, const QueryContext&, Reply& r) {
      r.integer(static_cast<int64_t>(s.data.size()));
    });
  }

  static void save(const State& s, Encoder& out) {
    out.varint(s.data.size());
    for (const auto& [k, v] : s.data) {
      out.bytes(k);
      out.bytes(v);
    }
  }
  static bool load(State& s, Decoder& in, uint32_t) {
    uint64_t n = in.count<std::string, std::string>();
    for (uint64_t i = 0; i < n && in.ok(); i++) {
      std::string k(in.bytes());
      std::string v(in.bytes());
      s.data.emplace(std::move(k), std::move(v));
    }
    return in.done();
  }
  static std::string info(const State& s) { return "keys:" + std::to_string(s.data.size()) + "\r\n"; }
};

}  // namespace hmdb::test
