// tests/server/tiny_server_main.cc — the tiny test app as a full server binary (hmdb_add_app),
// started as a real process by server_test. With HMDB_TINY_APP=reserved-name in its
// environment it hosts instead an app that defines PING, which the server must refuse at
// startup (hmdb/reserved_names.h). With HMDB_TINY_APP=skewed its SET stores another value
// than the tiny app's (tiny_app.h): a node running it diverges from its peers, which
// `hmdb cluster verify` must report (tests/system/verify_test.py).
#include <cstdlib>
#include <string_view>

#include "hmdb/server.h"
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
}  // namespace

int main(int argc, char** argv) {
  const char* app = std::getenv("HMDB_TINY_APP");
  if (app && std::string_view(app) == "reserved-name") return hmdb::run<ReservedNameApp>(argc, argv);
  if (app && std::string_view(app) == "skewed") return hmdb::run<SkewedApp>(argc, argv);
  return hmdb::run<hmdb::test::TinyKv>(argc, argv);
}
