// hmdb/state_machine.h — the boundary between the engine and an application.
//
// The engine (server shell, simulator, log tools) sees an application only through this
// interface. Application authors do not implement it by hand: hmdb/app.h turns an app
// definition (state, commands, queries, snapshot encoding) into an AppHost<App>, which
// implements it. Keeping the boundary virtual means the engine is compiled once and every
// app binary links the same engine library.
//
// Determinism contract (what makes replication and recovery correct):
//   apply() and load() do no I/O, read no clock and use no randomness. Everything a
//   command needs of time comes from ApplyContext, which the leader stamped into the log
//   entry. The same sequence of apply() calls on the same starting state yields the same
//   state and the same replies, on every node and on every restart.
//
// Thread-safety: none. The engine calls everything from one thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "hmdb/codec.h"
#include "hmdb/reply.h"

namespace hmdb {

// A command line as the client sent it: argv[0] is the command name (any case).
using Args = std::span<const std::string_view>;

// What apply() may know beyond the command's arguments. All of it is in the log entry.
struct ApplyContext {
  uint64_t now_ms = 0;          // leader's wall clock when it built the batch, ms since epoch
  uint64_t index = 0;           // log index of the entry holding this command
  uint32_t schema_version = 0;  // schema version of the app that proposed the entry
};

// What a read-only query may know. Queries are not logged, so the shell passes its clock.
struct QueryContext {
  uint64_t now_ms = 0;
};

enum class CommandKind : uint8_t { kUnknown, kWrite, kQuery };

// One command an app defines, as listed by COMMAND (names in upper case; arity as Redis).
struct CommandDescription {
  std::string name;
  CommandKind kind = CommandKind::kUnknown;
  int arity = 0;
};

class StateMachine {
 public:
  virtual ~StateMachine() = default;

  virtual std::string_view app_name() const = 0;
  virtual uint32_t schema_version() const = 0;

  // Classifies argv[0] (case-insensitive). kUnknown for names the app does not define.
  virtual CommandKind kind(std::string_view name) const = 0;

  // Every command the app defines, in definition order (for COMMAND and introspection).
  virtual std::vector<CommandDescription> describe_commands() const { return {}; }

  // Checks a write before it is proposed: known name, arity, typed parse. On failure writes
  // the RESP error message (without the leading '-') to *error and returns false; such a
  // command is answered with that error and never reaches the log.
  virtual bool validate(Args argv, std::string* error) const = 0;

  // Applies one logged write. Writes exactly one RESP value to reply.
  virtual void apply(Args argv, const ApplyContext& ctx, Reply& reply) = 0;

  // Runs a read-only query. Writes exactly one RESP value to reply.
  virtual void query(Args argv, const QueryContext& ctx, Reply& reply) const = 0;

  // A hint, for a command that will run soon (the shell parses a few of a client's
  // pipelined commands ahead): start loading the memory it will touch (e.g. the hash-table
  // slot of its key), so the cache misses of several commands overlap instead of each
  // stalling in turn. Must not change the state or its observable behaviour. Default: none.
  virtual void prefetch(Args argv) const { (void)argv; }

  // Periodic housekeeping the leader should log as a command (e.g. deleting expired keys).
  // Called by the leader's shell every housekeeping interval; returns the argv to propose,
  // or nothing. Must be cheap: it runs on the event loop.
  virtual std::optional<std::vector<std::string>> housekeeping(uint64_t now_ms) const = 0;

  // Snapshot encoding. save() must not modify the state. load() replaces the state and
  // returns false (leaving the state empty) if the bytes are malformed or the version is
  // one this binary has no migration path from.
  virtual void save(Encoder& out) const = 0;
  virtual bool load(Decoder& in, uint32_t schema_version) = 0;
  virtual void clear() = 0;

  // A digest of the logical state, equal on two nodes iff their states are equal (with
  // overwhelming probability), independent of container iteration order.
  virtual uint64_t digest() const = 0;

  // Human-readable statistics for INFO (e.g. "keys:12\r\n"), app-specific.
  virtual std::string info() const = 0;
};

}  // namespace hmdb
