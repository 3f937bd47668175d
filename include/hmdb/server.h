// hmdb/server.h — turns an application into a server binary with every feature of `hmdb`.
//
// Either name the app of the binary, and let the engine's main() (the hmdb::main library,
// which hmdb_add_app links) run it:
//
//   HMDB_APP(MyApp);
//
// or write main() yourself:
//
//   int main(int argc, char** argv) { return hmdb::run<MyApp>(argc, argv); }
//
// HMDB_APP keeps an app to one file that both the server and its tests link: the tests
// build a driver from hmdb::registered_app() (hmdb/testing.h) without a main() in the way.
//
// The binary accepts the same subcommands and flags as `hmdb` (serve, log dump|verify,
// snapshot, bench, ...); run with --help for the list. The engine is compiled once into
// libhmdb_server; this header only hands it a factory for the app's StateMachine.
#pragma once

#include <functional>
#include <memory>

#include "hmdb/app.h"
#include "hmdb/state_machine.h"

namespace hmdb {

using StateMachineFactory = std::function<std::unique_ptr<StateMachine>()>;

// The engine's entry point (src/tools/main.cc). Returns the process exit code.
int run_main(const StateMachineFactory& factory, int argc, char** argv);

template <class App>
int run(int argc, char** argv) {
  return run_main([] { return std::make_unique<AppHost<App>>(); }, argc, argv);
}

// A new instance of the app named by HMDB_APP in the program (declared here, defined by the
// macro: a program without HMDB_APP that calls it does not link).
std::unique_ptr<StateMachine> registered_app();

}  // namespace hmdb

// Names App as the program's app: defines hmdb::registered_app(). Use it once in the
// program, outside any namespace (name the app with its namespace: HMDB_APP(shop::Shop)).
#define HMDB_APP(App)                                              \
  std::unique_ptr<::hmdb::StateMachine> hmdb::registered_app() {   \
    return std::make_unique<::hmdb::AppHost<App>>();               \
  }                                                                \
  static_assert(true, "HMDB_APP(App) is followed by a semicolon")
