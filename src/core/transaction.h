// core/transaction.h — a session's MULTI/EXEC transaction and its WATCHed keys.
//
// Between MULTI and EXEC a session's commands are not run: each is checked as Redis checks
// it when queueing (known name, arity, not a command refused inside a transaction, this
// node leads) and kept here in order. EXEC turns the kept commands into one group of one
// log entry (core/batch.h); the group's writes are applied back to back, and the queries
// kept between them run inside the apply loop at their place, so they see exactly the
// transaction's earlier writes and nothing else. The EXEC's reply is one array, in order.
//
// Redis' rules (src/multi.c and processCommand in server.c, Redis 7), which hmdb keeps:
//   - an unknown command or a wrong arity while queueing answers its error and marks the
//     transaction: EXEC answers -EXECABORT and nothing is applied;
//   - other argument errors are run-time errors: the command is queued (+QUEUED) and its
//     error takes its place in EXEC's array (hmdb knows it at queue time: the write never
//     reaches the log, its error is kept here);
//   - MULTI inside MULTI and WATCH inside MULTI answer an error and change nothing;
//   - EXEC, DISCARD: end the transaction and forget every WATCHed key;
//   - EXEC answers a null array (RESP2 *-1, RESP3 _) if a WATCHed key changed since its
//     WATCH (core/watch_table.h decides).
//
// Pure data: no I/O. Thread-safety: none (the loop thread).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hmdb/state_machine.h"
#include "raft/types.h"

namespace hmdb::core {

// Bytes of words a transaction may queue (its group is one log entry, and the log's
// uncommitted bound, raft's max_uncommitted_bytes, is 256 MiB). Beyond it the command is
// refused and EXEC answers -EXECABORT.
inline constexpr uint64_t kTransactionBytesMax = 64ull << 20;
// Keys a session may WATCH at once; beyond, WATCH answers an error.
inline constexpr size_t kWatchedKeysMax = 100000;

struct QueuedCommand {
  enum class Kind : uint8_t {
    kWrite,  // an app write: one command of the log entry's group
    kQuery,  // an app query: runs inside the apply loop at its place
    kLocal,  // a local shell command (PING, ECHO, ...): runs there too
    kReply,  // answered when queued: its reply is kept (a write's argument error, UNWATCH)
  };
  Kind kind = Kind::kWrite;
  std::vector<std::string> argv;  // kWrite, kQuery, kLocal
  std::string reply;              // kReply
  KeySpec keys;                   // kWrite: the keys it changes, for WATCH
};

struct WatchedKey {
  std::string key;
  raft::Index since = 0;  // the applied index when WATCH ran
  bool expired = false;   // the key had expired already then (Redis: not a change)
};

// What EXEC takes: the queued commands and the watched keys.
// Transaction::schema_version when writes were queued under more than one active version.
inline constexpr uint32_t kMixedSchemaVersions = UINT32_MAX;

struct Transaction {
  std::vector<QueuedCommand> commands;
  std::vector<WatchedKey> watched;
  uint64_t writes = 0;  // commands of kind kWrite
  // The active schema version its writes were validated under (0: no write yet): EXEC
  // refuses to log them under another.
  uint32_t schema_version = 0;
  // Filled while the group is applied: the next command to run, the writes passed, and
  // whether the array's header is written.
  size_t cursor = 0;
  uint64_t writes_passed = 0;
  bool started = false;
};

// A session's transaction state (ClientSession::transaction).
struct SessionTransaction {
  bool multi = false;    // between MULTI and EXEC/DISCARD
  bool aborted = false;  // a command was refused while queueing: EXEC answers -EXECABORT
  uint64_t bytes = 0;    // words queued, for kTransactionBytesMax
  Transaction queued;    // commands since MULTI; keys WATCHed (before MULTI)
  // EXECs whose group is in a batch or the log, by the sequence number of their reply slot
  // (kept here rather than in the slot, so that a plain command's slot stays small).
  std::vector<std::pair<uint64_t, std::unique_ptr<Transaction>>> in_flight;

  // Ends the transaction and forgets the watched keys (EXEC, DISCARD).
  void reset() {
    multi = false;
    aborted = false;
    bytes = 0;
    queued = Transaction{};
  }
};

}  // namespace hmdb::core
