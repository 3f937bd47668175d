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
// which `hmdb cluster verify` must name (tests/system/verify_test.py).
#include <cstdlib>
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
  return hmdb::run<hmdb::test::TinyKv>(argc, argv);
}
