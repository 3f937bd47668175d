// tests/server/tiny_server_main.cc — the tiny test app as a full server binary (hmdb_add_app),
// started as a real process by server_test. With HMDB_TINY_APP=reserved-name in its
// environment it hosts instead an app that defines PING, which the server must refuse at
// startup (hmdb/reserved_names.h). With HMDB_TINY_APP=skewed its SET stores another value
// than the tiny app's (tiny_app.h): a node running it diverges from its peers, which
// `hmdb cluster verify` must report (tests/system/verify_test.py). With
// HMDB_TINY_APP=two-layouts it is at schema version 2 (version 1 active) and its save_as(1)
// refuses a state holding the key "v2-only": the snapshot path that falls back to the
// newest layout (server_test). With HMDB_TINY_APP=kv-bad-load it is the kv app (`hmdb`)
// with a planted bug: loading a snapshot changes the value of the key "victim" (when it is
// a string), so a node restarted from its snapshot holds one key differently from its peers,
// which `hmdb cluster verify` must name (tests/system/verify_test.py). With
// HMDB_TINY_APP=sliced-save it writes its snapshots in slices (begin_save: a SaveProducer
// keeping what writes change ahead of it, TinyKv::KeptValues), for the engine's
// --snapshot-method slices (server_test); sliced-save-no-copy is the same with a planted bug
// (writes during the snapshot are not kept from it), which the tests must catch;
// sliced-save-gives-up-once is sliced-save whose first producer throws, at its last slice,
// that it found the state not as its hooks keep it (as kv's SaveCursor does): the engine must
// abandon that snapshot and go on (sliced_snapshot_test).
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string_view>

#include "hmdb/server.h"
#include "kv/kv.h"
#include "tiny_app.h"

namespace {
struct ReservedNameApp : hmdb::test::TinyKv {
  static void define(hmdb::Commands<State>& c) {
    TinyKv::define(c);
    c.query("PING", 1, [](const State&, hmdb::Args, const hmdb::QueryContext&, hmdb::Reply& r) { r.status("PONG"); });
  }
};
struct SkewedApp : hmdb::test::TinyKv {
  static void define(hmdb::Commands<State>& c) { TinyKv::define_as<true>(c); }
};
// Version 2 of the tiny app with the same commands; its layout prefixes version 1's with a
// marker byte, and version 1's layout cannot hold a key named "v2-only".
struct TwoLayoutsApp : hmdb::test::TinyKv {
  static constexpr uint32_t kSchemaVersion = 2;
  static void define(hmdb::Commands<State>& c) {
    TinyKv::define(c);
    c.version(2);
  }
  static void save(const State& s, hmdb::Encoder& out) {
    out.u8(2);
    TinyKv::save(s, out);
  }
  static bool save_as(const State& s, uint32_t version, hmdb::Encoder& out) {
    if (version != 1 || s.data.count("v2-only")) return false;
    TinyKv::save(s, out);
    return true;
  }
  static bool load(State& s, hmdb::Decoder& in, uint32_t version) {
    if (version == 2 && in.u8() != 2) return false;
    return TinyKv::load(s, in, version);
  }
};
// The tiny app with save() in slices: the producer writes the keys in order, each at its
// value when the snapshot began (a kept one if a write changed it since, none if it was
// created since).
template <bool kCopy>
struct SlicedSaveApp : hmdb::test::TinyKv {
  struct Producer final : hmdb::SaveProducer {
    explicit Producer(State& state) : s(state), count(state.data.size()) {
      kept.copy = kCopy;
      s.saving = &kept;
    }
    ~Producer() override {
      if (s.saving == &kept) s.saving = nullptr;
    }
    bool next(hmdb::Encoder& out, const hmdb::SliceBudget& budget) override {
      const size_t start = out.size();
      if (!counted) {
        out.varint(count);
        counted = true;
      }
      while (true) {
        auto d = kept.started ? s.data.upper_bound(kept.written_up_to) : s.data.begin();
        auto k = kept.started ? kept.kept.upper_bound(kept.written_up_to) : kept.kept.begin();
        if (d == s.data.end() && k == kept.kept.end()) {
          s.saving = nullptr;
          return true;
        }
        const bool use_kept = k != kept.kept.end() && (d == s.data.end() || k->first <= d->first);
        kept.written_up_to = use_kept ? k->first : d->first;
        kept.started = true;
        if (use_kept) {
          if (k->second) {
            out.bytes(k->first);
            out.bytes(*k->second);
          }
          kept.kept.erase(k);
        } else {
          out.bytes(d->first);
          out.bytes(d->second);
        }
        if (out.size() - start >= budget.bytes) return false;
      }
    }
    State& s;
    size_t count;
    bool counted = false;
    hmdb::test::TinyKv::KeptValues kept;
  };
  static std::unique_ptr<hmdb::SaveProducer> begin_save(State& s) { return std::make_unique<Producer>(s); }
};

// The same whose first snapshot's producer gives up at its last slice (throws).
struct SlicedSaveGivesUpOnceApp : SlicedSaveApp<true> {
  struct Producer final : hmdb::SaveProducer {
    Producer(State& s, bool give_up) : inner(s), give_up(give_up) {}
    bool next(hmdb::Encoder& out, const hmdb::SliceBudget& budget) override {
      const bool last = inner.next(out, budget);
      if (last && give_up) throw std::runtime_error("the key 'k00007' is not what the test's hooks kept (a planted failure)");
      return last;
    }
    SlicedSaveApp<true>::Producer inner;
    bool give_up;
  };
  static inline bool gave_up = false;  // the loop thread's only
  static std::unique_ptr<hmdb::SaveProducer> begin_save(State& s) {
    const bool first = !gave_up;
    gave_up = true;
    return std::make_unique<Producer>(s, first);
  }
};

// kv whose snapshot load corrupts one key (a planted bug, never in a shipped binary).
struct KvBadLoad : hmdb::kv::Kv {
  static bool load(State& s, hmdb::Decoder& in, uint32_t version) {
    if (!Kv::load(s, in, version)) return false;
    hmdb::AppHost<hmdb::kv::Kv> host;  // SET through kv's own command, on the loaded state
    host.state() = std::move(s);
    if (host.expiry_ms("victim") || !host.state().keys.contains("victim")) {
      s = std::move(host.state());
      return true;
    }
    const std::string_view argv[] = {"SET", "victim", "corrupted"};
    std::string out, why;
    hmdb::Reply reply(&out);
    hmdb::ApplyContext ctx;
    host.apply(hmdb::Args(argv, 3), ctx, reply, &why);
    s = std::move(host.state());
    return true;
  }
};
}  // namespace

int main(int argc, char** argv) {
  const char* app = std::getenv("HMDB_TINY_APP");
  if (app && std::string_view(app) == "reserved-name") return hmdb::run<ReservedNameApp>(argc, argv);
  if (app && std::string_view(app) == "skewed") return hmdb::run<SkewedApp>(argc, argv);
  if (app && std::string_view(app) == "kv-bad-load") return hmdb::run<KvBadLoad>(argc, argv);
  if (app && std::string_view(app) == "two-layouts") return hmdb::run<TwoLayoutsApp>(argc, argv);
  if (app && std::string_view(app) == "sliced-save") return hmdb::run<SlicedSaveApp<true>>(argc, argv);
  if (app && std::string_view(app) == "sliced-save-no-copy") return hmdb::run<SlicedSaveApp<false>>(argc, argv);
  if (app && std::string_view(app) == "sliced-save-gives-up-once") return hmdb::run<SlicedSaveGivesUpOnceApp>(argc, argv);
  return hmdb::run<hmdb::test::TinyKv>(argc, argv);
}
