// apps/ledger/ledger.h — accounts and transfers: the worked example of an hmdb application.
//
// Why an app-specific command beats generic ones: a transfer checks both accounts, the
// currency, the overdraft rule and the idempotency id, and moves the money, in ONE logged
// command applied atomically on every node. With a generic store (GET/SET/WATCH/MULTI) the
// client would need several round trips and optimistic retries to get the same guarantee.
//
// Commands (docs/app-tutorial.md walks through how they are built):
//   ACCOUNT.CREATE <id> <currency> [OVERDRAFT]        write  -> +OK
//   TRANSFER <from> <to> <amount> <currency> [ID <transfer-id>]
//                                                      write  -> :<sequence number>
//   BALANCE <id>                                       query  -> :<balance>
//   ACCOUNT.GET <id>                                   query  -> field/value array
//   HISTORY <id> [count]                               query  -> newest transfers first
//   SUPPLY <currency>                                  query  -> accounts, net, issued
//
// Money is an integer number of minor units (cents), never a float. Every account starts
// at 0; money enters through an account created with OVERDRAFT (an "issuer"), whose
// balance may go negative. So the balances of one currency always sum to exactly 0: the
// conservation invariant SUPPLY reports and load() checks.
//
// Idempotency: a TRANSFER with ID <transfer-id> that succeeded is remembered; repeating
// it with the same arguments returns the original sequence number and moves nothing, with
// different arguments it is an error. A transfer that failed is not remembered, so the
// client may retry it once the cause (say, insufficient funds) is fixed.
//
// Events: every transfer is published on the channel of each of its two accounts,
// account:<id>, as a JSON object {"seq","time_ms","from","to","amount","currency"[,"id"]}
// (docs/subscriptions.md): SUBSCRIBE account:alice follows alice's movements; a repeated
// transfer id moves nothing and publishes nothing.
//
// Determinism: the transfer's timestamp is ApplyContext::now_ms (the leader's clock,
// stamped into the log entry); every container is ordered (btree), so the snapshot bytes
// and the default digest (a hash of save()) are the same on every node.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include <absl/container/btree_map.h>

#include "hmdb/app.h"

namespace hmdb::ledger {

// Bounds on client-chosen names, so one account or transfer cannot take unbounded memory.
inline constexpr size_t kAccountIdBytesMax = 64;
inline constexpr size_t kTransferIdBytesMax = 64;
inline constexpr size_t kCurrencyBytesMax = 12;  // "USD", "EUR", "POINTS", ...
// Transfers kept per account for HISTORY (older ones drop off; balances are exact anyway).
inline constexpr size_t kHistoryMax = 1000;
// The channel prefix of an account's transfer events.
inline constexpr std::string_view kAccountChannelPrefix = "account:";
// Transfers HISTORY returns when no count is given.
inline constexpr size_t kHistoryDefault = 10;

struct Transfer {
  uint64_t seq = 0;      // 1, 2, 3, ... in log order; the reply to TRANSFER
  uint64_t time_ms = 0;  // leader's clock when the transfer was logged
  std::string id;        // the client's transfer id, or empty
  std::string from, to;
  int64_t amount = 0;  // > 0, minor units
  std::string currency;
};

struct Account {
  std::string currency;
  int64_t balance = 0;
  bool allow_overdraft = false;
  uint64_t created_ms = 0;
  uint64_t transfer_count = 0;   // all transfers in or out, ever
  std::deque<Transfer> history;  // the newest at the back, at most kHistoryMax
};

struct State {
  absl::btree_map<std::string, Account, std::less<>> accounts;
  // Successful transfers that carried an id, by id (the idempotency table).
  absl::btree_map<std::string, Transfer, std::less<>> transfers_by_id;
  uint64_t last_seq = 0;
};

struct Ledger {
  static constexpr std::string_view kName = "ledger";
  // The first version: define() has no history yet. A version 2 states in define() what it
  // changed (c.version(2)); tests/apps/ledger_v2 is one, TRANSFER in major units.
  static constexpr uint32_t kSchemaVersion = 1;
  using State = ledger::State;

  static void define(hmdb::Commands<State>& c);
  static void save(const State& s, hmdb::Encoder& out);
  static bool load(State& s, hmdb::Decoder& in, uint32_t version);
  static std::string info(const State& s);
  // digest(): not defined, so the engine hashes save(), which is deterministic here.
  // Each account ("account:<id>"), each transfer with an id ("transfer:<id>") and the last
  // sequence number ("last_seq"), hashed as save() writes them: `hmdb cluster verify` names
  // those two nodes hold differently.
  static void records(const State& s, hmdb::RecordSink& out);
};

}  // namespace hmdb::ledger
