// hmdb/server.h — turns an application into a server binary with every feature of `hmdb`.
//
//   int main(int argc, char** argv) { return hmdb::run<MyApp>(argc, argv); }
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

}  // namespace hmdb
