// hmdb/reserved_names.h — the command names an app may not define, because the engine
// answers them before it looks at the app's commands (an app's command of such a name would
// never run). Commands<State> refuses them when the app is hosted (hmdb/app.h): the server
// then stops at startup and the app's first test fails, with a message naming the command
// and the reason.
//
// Why when hosted, not when compiled: command names are values that define() computes at
// run time (a loop over a table, a name built from a prefix), and the shell's table is in
// the engine library, compiled once; every app is hosted by its first test and at every
// start, so the mistake cannot get further than that.
//
// Thread-safety: constants and a pure function.
#pragma once

#include <string>
#include <string_view>

namespace hmdb {

// The commands the server's shell answers itself. src/server/shell_commands.cc takes each
// of its table's names from this list (a name not in it does not compile) and checks at
// startup that the list has no name the table lacks: one list for both.
inline constexpr std::string_view kShellCommandNames[] = {
    "PING",    "ECHO",   "QUIT",     "SELECT",   "HELLO", "AUTH", "CLIENT",   "COMMAND",
    "CONFIG",  "INFO",   "SNAPSHOT", "BGSAVE",   "SAVE",  "READONLY", "READWRITE", "CLUSTER",
    "RESET",   "SUBSCRIBE", "PSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "PUBSUB",
    "HMDB.SUBSCRIBE", "HMDB.PSUBSCRIBE", "ACL", "LATENCY", "SLOWLOG",
};

// Writes the engine logs and applies itself, for every app: pub/sub's PUBLISH
// (core/pubsub.h, docs/subscriptions.md).
inline constexpr std::string_view kEngineWriteNames[] = {"PUBLISH"};

// Transactions, which the engine runs for every app (core/replica.cc, core/transaction.h).
inline constexpr std::string_view kTransactionCommandNames[] = {"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"};

// The engine's own commands are named HMDB.<name> (HMDB.REQ tags a write with a request id):
// the prefix is reserved whole, so that a command the engine adds later cannot shadow an
// app's.
inline constexpr std::string_view kEngineCommandPrefix = "HMDB.";

// Names under the prefix that are apps' all the same: kv's housekeeping command predates the
// rule and is in existing logs, and the engine will never define a command of that name.
inline constexpr std::string_view kAppCommandsUnderEnginePrefix[] = {"HMDB.EXPIRE"};

// Why an app may not define a command named `upper` (upper case), or "" if it may.
inline std::string reserved_command_reason(std::string_view upper) {
  for (std::string_view n : kShellCommandNames)
    if (n == upper)
      return "the server answers " + std::string(n) + " itself, before any app command, so the app's would never run";
  for (std::string_view n : kEngineWriteNames)
    if (n == upper)
      return "the engine logs and applies " + std::string(n) + " itself (pub/sub), for every app, so the app's would "
             "never run";
  for (std::string_view n : kTransactionCommandNames)
    if (n == upper)
      return "the engine runs transactions (MULTI, EXEC, DISCARD, WATCH, UNWATCH) for every app, so the app's " +
             std::string(n) + " would never run";
  if (upper.starts_with(kEngineCommandPrefix)) {
    for (std::string_view n : kAppCommandsUnderEnginePrefix)
      if (n == upper) return {};
    return "names starting with HMDB. are the engine's own commands (HMDB.REQ, ...), present and future";
  }
  return {};
}

}  // namespace hmdb
