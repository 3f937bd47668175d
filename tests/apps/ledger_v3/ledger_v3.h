// tests/apps/ledger_v3/ledger_v3.h — version 3 of the ledger (apps/ledger is version 1,
// tests/apps/ledger_v2 version 2): two-phase transfers, and the binary the upgrade system
// tests run (hmdb-ledger-v3). The second migration of the series docs/migrations.md walks
// through.
//
// What changed from version 2:
//   - An account's balance is split in two: `posted` (version 2's balance: money that moved)
//     and the pending amounts reserved by two-phase transfers (`pending_debits` going out,
//     `pending_credits` coming in). available = posted - pending_debits.
//   - Three commands (added in version 3; clients may send them once version 3 is active):
//       TRANSFER.PENDING <from> <to> <amount> <currency> ID <pending-id> [MEMO <text>]
//           reserves the amount (major units, as version 2's TRANSFER) if the payer's
//           available balance allows it -> +OK; the same id and arguments again -> +OK,
//           nothing reserved twice; other arguments -> an error.
//       TRANSFER.POST <pending-id>   moves the reserved money -> :<sequence number> (again:
//                                     the same number)
//       TRANSFER.VOID <pending-id>   releases it -> +OK (again: +OK)
//     A pending transfer is posted or voided once; both outcomes are kept (by id) so a
//     retried POST or VOID answers as the first one did. Pending ids are their own name space,
//     apart from TRANSFER's idempotency ids.
//   - TRANSFER's rule: a version-3 TRANSFER checks the payer's *available* balance (it cannot
//     spend money reserved by a pending transfer). Its words are version 2's. A version-2
//     TRANSFER keeps version 2's rule (old_handler): it checks the posted balance only. Only
//     an entry logged under version 2 and applied after version 3's pending transfers (one
//     proposed before the activation) can see the difference; a POST that then finds the
//     posted balance short answers ERR insufficient funds and stays pending.
//   - The snapshot gains each account's pending amounts and the table of pending transfers.
//     Version 1's and 2's snapshots load (read by version 2's load, then migrated: nothing
//     pending). save_as writes version 2's layout (and version 1's, while no memo exists)
//     while no pending transfer was ever made, so that a v3 node's digest at active version
//     2 (or 1) equals a v2 (v1) node's.
// Queries: BALANCE answers the posted balance (version 1's meaning); ACCOUNT.GET adds
// pending_debits, pending_credits and available; PENDING.GET <pending-id> shows one.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include <absl/container/btree_map.h>

#include "hmdb/app.h"
#include "ledger_v2/ledger_v2.h"

namespace hmdb::ledger_v3 {

inline constexpr size_t kAccountIdBytesMax = ledger_v2::kAccountIdBytesMax;
inline constexpr size_t kTransferIdBytesMax = ledger_v2::kTransferIdBytesMax;
inline constexpr size_t kCurrencyBytesMax = ledger_v2::kCurrencyBytesMax;
inline constexpr size_t kHistoryMax = ledger_v2::kHistoryMax;
inline constexpr size_t kHistoryDefault = ledger_v2::kHistoryDefault;
inline constexpr size_t kMemoBytesMax = ledger_v2::kMemoBytesMax;

using Transfer = ledger_v2::Transfer;  // a posted transfer: unchanged since version 2

struct Account {
  std::string currency;
  int64_t posted = 0;           // version 2's balance
  int64_t pending_debits = 0;   // >= 0: reserved by pending transfers from this account
  int64_t pending_credits = 0;  // >= 0: reserved by pending transfers to it
  bool allow_overdraft = false;
  uint64_t created_ms = 0;
  uint64_t transfer_count = 0;
  std::deque<Transfer> history;
};

enum class PendingStatus : uint8_t { kPending = 0, kPosted = 1, kVoided = 2 };

struct Pending {
  std::string from, to;
  int64_t amount = 0;  // > 0, minor units
  std::string currency;
  std::string memo;
  uint64_t created_ms = 0;
  PendingStatus status = PendingStatus::kPending;
  uint64_t seq = 0;  // kPosted: the posted transfer's sequence number
};

struct State {
  absl::btree_map<std::string, Account, std::less<>> accounts;
  absl::btree_map<std::string, Transfer, std::less<>> transfers_by_id;
  absl::btree_map<std::string, Pending, std::less<>> pending;  // by pending id, every outcome
  uint64_t last_seq = 0;
};

struct LedgerV3 {
  static constexpr std::string_view kName = "ledger";  // the same app: versions 1 and 2 load
  static constexpr uint32_t kSchemaVersion = 3;
  using State = ledger_v3::State;

  static void define(hmdb::Commands<State>& c);
  static void save(const State& s, hmdb::Encoder& out);
  static bool load(State& s, hmdb::Decoder& in, uint32_t version);
  static bool save_as(const State& s, uint32_t version, hmdb::Encoder& out);
  static std::string info(const State& s);
  // Version 2's records with the pending amounts and pending transfers; at versions 1 and 2
  // theirs, while the state fits their layouts (as save_as).
  static void records(const State& s, hmdb::RecordSink& out);
  static bool records_as(const State& s, uint32_t version, hmdb::RecordSink& out);

  // Version 2's state as version 3 holds it: balance -> posted, nothing pending.
  static State migrate(ledger_v2::State&& v2);
};

}  // namespace hmdb::ledger_v3
