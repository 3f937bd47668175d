// tests/apps/ledger_v2/ledger_v2.h — version 2 of the ledger (apps/ledger is version 1), as
// its author would write it: the proof that an entry keeps the meaning of the version it was
// logged under, and the binary the schema system tests run (hmdb-ledger-v2).
//
// What changed from version 1:
//   - TRANSFER's words: <amount> is a decimal number of major units with at most two
//     fraction digits ("25.50" is 2550 cents; version 1 took minor units: "2550"), and an
//     optional MEMO <text> joins ID <transfer-id> (either order):
//       TRANSFER <from> <to> <amount> <currency> [ID <transfer-id>] [MEMO <text>]
//     A version-1 entry is read by version 1's parse and upcast (memo empty): the same
//     words mean a hundredth of the money under version 2, so replaying one with version
//     2's parse would move 100 times the amount.
//   - A transfer keeps its memo: the snapshot layout gains it (version 1's snapshots load,
//     migrated; save_as writes version 1's layout while no memo exists, so that a v2 node's
//     digest at active version 1 equals a v1 node's).
// Everything else (ACCOUNT.CREATE, the queries but HISTORY's memo field) is version 1's.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include <absl/container/btree_map.h>

#include "hmdb/app.h"
#include "ledger/ledger.h"

namespace hmdb::ledger_v2 {

inline constexpr size_t kAccountIdBytesMax = ledger::kAccountIdBytesMax;
inline constexpr size_t kTransferIdBytesMax = ledger::kTransferIdBytesMax;
inline constexpr size_t kCurrencyBytesMax = ledger::kCurrencyBytesMax;
inline constexpr size_t kHistoryMax = ledger::kHistoryMax;
inline constexpr size_t kHistoryDefault = ledger::kHistoryDefault;
inline constexpr size_t kMemoBytesMax = 256;  // bound on a transfer's memo

struct Transfer {
  uint64_t seq = 0;
  uint64_t time_ms = 0;
  std::string id;
  std::string from, to;
  int64_t amount = 0;  // > 0, minor units
  std::string currency;
  std::string memo;  // new in version 2
};

struct Account {
  std::string currency;
  int64_t balance = 0;
  bool allow_overdraft = false;
  uint64_t created_ms = 0;
  uint64_t transfer_count = 0;
  std::deque<Transfer> history;
};

struct State {
  absl::btree_map<std::string, Account, std::less<>> accounts;
  absl::btree_map<std::string, Transfer, std::less<>> transfers_by_id;
  uint64_t last_seq = 0;
};

struct LedgerV2 {
  static constexpr std::string_view kName = "ledger";  // the same app: version 1's data loads
  static constexpr uint32_t kSchemaVersion = 2;
  using State = ledger_v2::State;

  static void define(hmdb::Commands<State>& c);
  static void save(const State& s, hmdb::Encoder& out);
  static bool load(State& s, hmdb::Decoder& in, uint32_t version);
  static bool save_as(const State& s, uint32_t version, hmdb::Encoder& out);
  static std::string info(const State& s);
  // Version 1's records (apps/ledger) with the memos; at version 1 without them, while no
  // memo exists (as save_as), so that a v2 node's records at active version 1 are a v1 node's.
  static void records(const State& s, hmdb::RecordSink& out);
  static bool records_as(const State& s, uint32_t version, hmdb::RecordSink& out);

  // Version 1's state as version 2 holds it (what load does to a version-1 snapshot).
  static State migrate(ledger::State&& v1);
  // define() without its history: version 2's commands only. For the proof that a history
  // left out is caught (tests/apps/ledger_v2_test.cc), not for a server.
  static void define_commands(hmdb::Commands<State>& c);
};

}  // namespace hmdb::ledger_v2
