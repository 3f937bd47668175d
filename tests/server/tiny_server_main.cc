// tests/server/tiny_server_main.cc — the tiny test app as a full server binary (hmdb_add_app),
// started as a real process by server_test. With HMDB_TINY_APP=reserved-name in its
// environment it hosts instead an app that defines PING, which the server must refuse at
// startup (hmdb/reserved_names.h).
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
}  // namespace

int main(int argc, char** argv) {
  const char* app = std::getenv("HMDB_TINY_APP");
  if (app && std::string_view(app) == "reserved-name") return hmdb::run<ReservedNameApp>(argc, argv);
  return hmdb::run<hmdb::test::TinyKv>(argc, argv);
}
