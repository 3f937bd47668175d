// tests/apps/ledger_v3/ledger_v3.cc — the ledger at schema version 3 (ledger_v3.h says what
// changed). Version 1's TRANSFER parse is kept verbatim (namespace v1) for version-1 entries,
// and version 2's TRANSFER rule (apply_transfer_v2) for version-2 entries.
#include "ledger_v3/ledger_v3.h"

#include <algorithm>
#include <tuple>

namespace hmdb::ledger_v3 {
namespace {

bool valid_account_id(std::string_view id) { return !id.empty() && id.size() <= kAccountIdBytesMax; }

bool valid_currency(std::string_view c) {
  if (c.empty() || c.size() > kCurrencyBytesMax) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'); });
}

std::string no_such_account(std::string_view id) { return "ERR no such account '" + std::string(id) + "'"; }
std::string no_such_pending(std::string_view id) { return "ERR no such pending transfer '" + std::string(id) + "'"; }

// ---- ACCOUNT.CREATE <id> <currency> [OVERDRAFT] (as in version 1) ----------------------------

struct CreateAccount {
  std::string_view id, currency;
  bool allow_overdraft = false;
};

bool parse_create(Args a, CreateAccount& out, std::string& err) {
  out.id = a[1];
  out.currency = a[2];
  if (a.size() > 4 || (a.size() == 4 && !iequals(a[3], "OVERDRAFT"))) { err = "ERR syntax error"; return false; }
  out.allow_overdraft = a.size() == 4;
  if (!valid_account_id(out.id)) { err = "ERR account id must be 1 to 64 bytes"; return false; }
  if (!valid_currency(out.currency)) { err = "ERR currency must be 1 to 12 characters A-Z or 0-9"; return false; }
  return true;
}

void apply_create(State& s, const CreateAccount& a, const ApplyContext& ctx, Reply& r) {
  if (s.accounts.find(a.id) != s.accounts.end()) { r.error("ERR account '" + std::string(a.id) + "' already exists"); return; }
  Account account;
  account.currency = a.currency;
  account.allow_overdraft = a.allow_overdraft;
  account.created_ms = ctx.now_ms;
  s.accounts.emplace(std::string(a.id), std::move(account));
  r.ok();
}

// ---- amounts and options, as version 2 reads them --------------------------------------------

// "25", "25.5", "25.50": a positive decimal number of major units with at most two fraction
// digits, in minor units (2500, 2550, 2550). Version 2's, unchanged.
bool parse_major_units(std::string_view s, int64_t* minor) {
  const size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (whole.empty() || (dot != std::string_view::npos && (fraction.empty() || fraction.size() > 2))) return false;
  for (char c : fraction)
    if (c < '0' || c > '9') return false;
  int64_t units = 0;
  if (whole[0] == '-' || whole[0] == '+' || !parse_int64(whole, &units) || units < 0) return false;
  int64_t cents = 0;
  for (size_t i = 0; i < 2; i++) cents = cents * 10 + (i < fraction.size() ? fraction[i] - '0' : 0);
  int64_t total = 0;
  if (__builtin_mul_overflow(units, int64_t{100}, &total) || __builtin_add_overflow(total, cents, &total)) return false;
  *minor = total;
  return total > 0;
}

// ---- TRANSFER <from> <to> <amount> <currency> [ID <transfer-id>] [MEMO <text>] ---------------
// Version 2's words, one parse for both versions; the rule differs (apply_transfer_v2 / v3).

struct TransferArgs {
  std::string_view from, to, currency, id, memo;
  int64_t amount = 0;  // minor units
};

// The words after <currency>: ID and MEMO pairs, each at most once. `need_id`: ID is required.
bool parse_options(Args a, TransferArgs& out, bool need_id, std::string& err) {
  if (a.size() % 2 == 0) { err = wrong_arity(a[0]); return false; }  // an option without its value
  bool id = false, memo = false;
  for (size_t i = 5; i + 1 < a.size(); i += 2) {
    if (iequals(a[i], "ID") && !id) {
      id = true;
      out.id = a[i + 1];
      if (out.id.empty() || out.id.size() > kTransferIdBytesMax) { err = "ERR transfer id must be 1 to 64 bytes"; return false; }
    } else if (iequals(a[i], "MEMO") && !memo) {
      memo = true;
      out.memo = a[i + 1];
      if (out.memo.size() > kMemoBytesMax) { err = "ERR memo must be at most 256 bytes"; return false; }
    } else {
      err = "ERR syntax error";
      return false;
    }
  }
  if (need_id && !id) { err = "ERR a pending transfer needs ID <pending-id>"; return false; }
  return true;
}

bool parse_transfer_words(Args a, TransferArgs& out, bool need_id, std::string& err) {
  out.from = a[1];
  out.to = a[2];
  out.currency = a[4];
  if (!parse_options(a, out, need_id, err)) return false;
  if (!parse_major_units(a[3], &out.amount)) {
    err = "ERR amount must be a positive number of major units with at most two decimals (25.50)";
    return false;
  }
  if (!valid_currency(out.currency)) { err = "ERR currency must be 1 to 12 characters A-Z or 0-9"; return false; }
  if (out.from == out.to) { err = "ERR cannot transfer from an account to itself"; return false; }
  return true;
}

bool parse_transfer(Args a, TransferArgs& out, std::string& err) { return parse_transfer_words(a, out, false, err); }

bool same_request(const Transfer& t, const TransferArgs& a) {
  return t.from == a.from && t.to == a.to && t.amount == a.amount && t.currency == a.currency && t.memo == a.memo;
}

void remember(Account& account, const Transfer& t) {
  account.transfer_count++;
  account.history.push_back(t);
  if (account.history.size() > kHistoryMax) account.history.pop_front();
}

using AccountIt = absl::btree_map<std::string, Account, std::less<>>::iterator;

// The checks both versions' TRANSFER make before the balance rule: a repeated id (answered,
// true), the accounts and their currency. Returns false when the command is answered.
bool transfer_accounts(State& s, const TransferArgs& a, Reply& r, AccountIt* from, AccountIt* to) {
  if (!a.id.empty()) {
    auto seen = s.transfers_by_id.find(a.id);
    if (seen != s.transfers_by_id.end()) {
      if (!same_request(seen->second, a)) { r.error("ERR transfer id already used with different arguments"); return false; }
      r.integer(static_cast<int64_t>(seen->second.seq));
      return false;
    }
  }
  *from = s.accounts.find(a.from);
  if (*from == s.accounts.end()) { r.error(no_such_account(a.from)); return false; }
  *to = s.accounts.find(a.to);
  if (*to == s.accounts.end()) { r.error(no_such_account(a.to)); return false; }
  for (auto* account : {&**from, &**to}) {
    if (account->second.currency != a.currency) {
      r.error("ERR currency mismatch: account '" + account->first + "' holds " + account->second.currency);
      return false;
    }
  }
  return true;
}

// Moves posted money and records the transfer (the rules were checked).
uint64_t post(State& s, Account& from, Account& to, int64_t from_after, int64_t to_after, std::string_view id,
              const TransferArgs& a, uint64_t now_ms, bool remember_id) {
  from.posted = from_after;
  to.posted = to_after;
  Transfer t;
  t.seq = ++s.last_seq;
  t.time_ms = now_ms;
  t.id = id;
  t.from = a.from;
  t.to = a.to;
  t.amount = a.amount;
  t.currency = a.currency;
  t.memo = a.memo;
  remember(from, t);
  remember(to, t);
  if (remember_id) s.transfers_by_id.emplace(t.id, t);
  return t.seq;
}

// Version 3's rule: the payer's available balance (posted - pending_debits) must cover it.
void apply_transfer(State& s, const TransferArgs& a, const ApplyContext& ctx, Reply& r) {
  AccountIt from, to;
  if (!transfer_accounts(s, a, r, &from, &to)) return;
  int64_t from_after = 0, to_after = 0, available_after = 0;
  if (__builtin_sub_overflow(from->second.posted, a.amount, &from_after) ||
      __builtin_add_overflow(to->second.posted, a.amount, &to_after)) {
    r.error("ERR balance would overflow");
    return;
  }
  if (__builtin_sub_overflow(from_after, from->second.pending_debits, &available_after) ||
      (available_after < 0 && !from->second.allow_overdraft)) {
    r.error("ERR insufficient funds");
    return;
  }
  r.integer(static_cast<int64_t>(post(s, from->second, to->second, from_after, to_after, a.id, a, ctx.now_ms, !a.id.empty())));
}

// Version 2's rule, for entries logged under version 2: the posted balance must cover it
// (version 2 knew nothing pending). In version 2's order of checks.
void apply_transfer_v2(State& s, const TransferArgs& a, const ApplyContext& ctx, Reply& r) {
  AccountIt from, to;
  if (!transfer_accounts(s, a, r, &from, &to)) return;
  int64_t from_after = 0, to_after = 0;
  if (__builtin_sub_overflow(from->second.posted, a.amount, &from_after)) { r.error("ERR balance would overflow"); return; }
  if (from_after < 0 && !from->second.allow_overdraft) { r.error("ERR insufficient funds"); return; }
  if (__builtin_add_overflow(to->second.posted, a.amount, &to_after)) { r.error("ERR balance would overflow"); return; }
  r.integer(static_cast<int64_t>(post(s, from->second, to->second, from_after, to_after, a.id, a, ctx.now_ms, !a.id.empty())));
}

// ---- version 1's TRANSFER, kept for version-1 entries ------------------------------------------

namespace v1 {

// TRANSFER <from> <to> <amount> <currency> [ID <transfer-id>], amount in minor units:
// apps/ledger/ledger.cc's parse_transfer, unchanged.
struct TransferArgs {
  std::string_view from, to, currency, id;
  int64_t amount = 0;
};

bool parse_transfer(Args a, TransferArgs& out, std::string& err) {
  if (a.size() == 6) { err = wrong_arity(a[0]); return false; }  // ID without its value
  out.from = a[1];
  out.to = a[2];
  out.currency = a[4];
  if (a.size() == 7) {
    if (!iequals(a[5], "ID")) { err = "ERR syntax error"; return false; }
    out.id = a[6];
    if (out.id.empty() || out.id.size() > kTransferIdBytesMax) { err = "ERR transfer id must be 1 to 64 bytes"; return false; }
  }
  if (!parse_int64(a[3], &out.amount) || out.amount <= 0) {
    err = "ERR amount must be a positive integer number of minor units";
    return false;
  }
  if (!valid_currency(out.currency)) { err = "ERR currency must be 1 to 12 characters A-Z or 0-9"; return false; }
  if (out.from == out.to) { err = "ERR cannot transfer from an account to itself"; return false; }
  return true;
}

}  // namespace v1

// A version-1 TRANSFER as version 2 takes it: the amount was minor units already, no memo.
TransferArgs transfer_from_v1(const v1::TransferArgs& old) {
  TransferArgs a;
  a.from = old.from;
  a.to = old.to;
  a.currency = old.currency;
  a.id = old.id;
  a.amount = old.amount;
  return a;
}

// ---- TRANSFER.PENDING / POST / VOID ------------------------------------------------------------

bool parse_pending(Args a, TransferArgs& out, std::string& err) { return parse_transfer_words(a, out, true, err); }

bool same_pending(const Pending& p, const TransferArgs& a) {
  return p.from == a.from && p.to == a.to && p.amount == a.amount && p.currency == a.currency && p.memo == a.memo;
}

void apply_pending(State& s, const TransferArgs& a, const ApplyContext& ctx, Reply& r) {
  if (auto seen = s.pending.find(a.id); seen != s.pending.end()) {
    if (!same_pending(seen->second, a)) { r.error("ERR pending id already used with different arguments"); return; }
    r.ok();
    return;
  }
  auto from = s.accounts.find(a.from);
  if (from == s.accounts.end()) { r.error(no_such_account(a.from)); return; }
  auto to = s.accounts.find(a.to);
  if (to == s.accounts.end()) { r.error(no_such_account(a.to)); return; }
  for (auto* account : {&*from, &*to}) {
    if (account->second.currency != a.currency) {
      r.error("ERR currency mismatch: account '" + account->first + "' holds " + account->second.currency);
      return;
    }
  }
  // Reserved amounts stay within int64 together with the balances they will move.
  int64_t debits = 0, credits = 0, available = 0, ceiling = 0;
  if (__builtin_add_overflow(from->second.pending_debits, a.amount, &debits) ||
      __builtin_add_overflow(to->second.pending_credits, a.amount, &credits) ||
      __builtin_add_overflow(to->second.posted, credits, &ceiling) ||
      __builtin_sub_overflow(from->second.posted, debits, &available)) {
    r.error("ERR balance would overflow");
    return;
  }
  if (available < 0 && !from->second.allow_overdraft) { r.error("ERR insufficient funds"); return; }
  from->second.pending_debits = debits;
  to->second.pending_credits = credits;
  Pending p;
  p.from = a.from;
  p.to = a.to;
  p.amount = a.amount;
  p.currency = a.currency;
  p.memo = a.memo;
  p.created_ms = ctx.now_ms;
  s.pending.emplace(std::string(a.id), std::move(p));
  r.ok();
}

struct PendingId {
  std::string_view id;
};

bool parse_pending_id(Args a, PendingId& out, std::string& err) {
  out.id = a[1];
  if (out.id.empty() || out.id.size() > kTransferIdBytesMax) { err = "ERR transfer id must be 1 to 64 bytes"; return false; }
  return true;
}

// The pending transfer to resolve, or an answer (false) when it is not pending.
Pending* find_pending(State& s, std::string_view id, PendingStatus resolving, Reply& r) {
  auto it = s.pending.find(id);
  if (it == s.pending.end()) { r.error(no_such_pending(id)); return nullptr; }
  Pending& p = it->second;
  if (p.status == PendingStatus::kPending) return &p;
  if (p.status == resolving) {  // a retry: the first outcome again
    if (resolving == PendingStatus::kPosted) r.integer(static_cast<int64_t>(p.seq));
    else r.ok();
  } else {
    r.error("ERR pending transfer '" + std::string(id) + "' was already " +
            (p.status == PendingStatus::kPosted ? "posted" : "voided"));
  }
  return nullptr;
}

void release(State& s, const Pending& p) {
  s.accounts.at(p.from).pending_debits -= p.amount;
  s.accounts.at(p.to).pending_credits -= p.amount;
}

void apply_post(State& s, const PendingId& a, const ApplyContext& ctx, Reply& r) {
  Pending* p = find_pending(s, a.id, PendingStatus::kPosted, r);
  if (!p) return;
  Account& from = s.accounts.at(p->from);
  Account& to = s.accounts.at(p->to);
  ctx.key_changed(p->from);
  ctx.key_changed(p->to);
  // The reservation covers it, unless a version-2 TRANSFER (version 2's rule: posted only)
  // spent reserved money since.
  // (Overflow is checked again: a TRANSFER may have moved the balances since the reservation.)
  int64_t from_after = 0, to_after = 0;
  if (__builtin_sub_overflow(from.posted, p->amount, &from_after) ||
      __builtin_add_overflow(to.posted, p->amount, &to_after)) {
    r.error("ERR balance would overflow");
    return;
  }
  if (from_after < 0 && !from.allow_overdraft) { r.error("ERR insufficient funds"); return; }
  release(s, *p);
  TransferArgs t;
  t.from = p->from;
  t.to = p->to;
  t.amount = p->amount;
  t.currency = p->currency;
  t.memo = p->memo;
  p->status = PendingStatus::kPosted;
  p->seq = post(s, from, to, from_after, to_after, a.id, t, ctx.now_ms, false);
  r.integer(static_cast<int64_t>(p->seq));
}

void apply_void(State& s, const PendingId& a, const ApplyContext& ctx, Reply& r) {
  Pending* p = find_pending(s, a.id, PendingStatus::kVoided, r);
  if (!p) return;
  ctx.key_changed(p->from);
  ctx.key_changed(p->to);
  release(s, *p);
  p->status = PendingStatus::kVoided;
  r.ok();
}

// ---- queries -------------------------------------------------------------------------------

const Account* find_account(const State& s, std::string_view id, Reply& r) {
  auto it = s.accounts.find(id);
  if (it == s.accounts.end()) { r.error(no_such_account(id)); return nullptr; }
  return &it->second;
}

void query_balance(const State& s, Args a, const QueryContext&, Reply& r) {
  if (const Account* account = find_account(s, a[1], r)) r.integer(account->posted);
}

void query_account(const State& s, Args a, const QueryContext&, Reply& r) {
  const Account* account = find_account(s, a[1], r);
  if (!account) return;
  r.map(9);
  r.bulk("id");              r.bulk(a[1]);
  r.bulk("currency");        r.bulk(account->currency);
  r.bulk("balance");         r.integer(account->posted);
  r.bulk("overdraft");       r.boolean(account->allow_overdraft);
  r.bulk("created_ms");      r.integer(static_cast<int64_t>(account->created_ms));
  r.bulk("transfers");       r.integer(static_cast<int64_t>(account->transfer_count));
  r.bulk("pending_debits");  r.integer(account->pending_debits);
  r.bulk("pending_credits"); r.integer(account->pending_credits);
  r.bulk("available");       r.integer(account->posted - account->pending_debits);
}

void query_pending(const State& s, Args a, const QueryContext&, Reply& r) {
  auto it = s.pending.find(a[1]);
  if (it == s.pending.end()) { r.error(no_such_pending(a[1])); return; }
  const Pending& p = it->second;
  static constexpr std::string_view kStatus[] = {"pending", "posted", "voided"};
  r.map(8);
  r.bulk("from");       r.bulk(p.from);
  r.bulk("to");         r.bulk(p.to);
  r.bulk("amount");     r.integer(p.amount);
  r.bulk("currency");   r.bulk(p.currency);
  r.bulk("memo");       r.bulk(p.memo);
  r.bulk("created_ms"); r.integer(static_cast<int64_t>(p.created_ms));
  r.bulk("status");     r.bulk(kStatus[static_cast<size_t>(p.status)]);
  r.bulk("seq");        r.integer(static_cast<int64_t>(p.seq));
}

void reply_transfer(const Transfer& t, Reply& r) {
  r.map(8);
  r.bulk("seq");      r.integer(static_cast<int64_t>(t.seq));
  r.bulk("time_ms");  r.integer(static_cast<int64_t>(t.time_ms));
  r.bulk("id");       r.bulk(t.id);
  r.bulk("from");     r.bulk(t.from);
  r.bulk("to");       r.bulk(t.to);
  r.bulk("amount");   r.integer(t.amount);
  r.bulk("currency"); r.bulk(t.currency);
  r.bulk("memo");     r.bulk(t.memo);
}

void query_history(const State& s, Args a, const QueryContext&, Reply& r) {
  int64_t count = static_cast<int64_t>(kHistoryDefault);
  if (a.size() == 3 && (!parse_int64(a[2], &count) || count < 1 || count > static_cast<int64_t>(kHistoryMax))) {
    r.error("ERR count must be an integer from 1 to " + std::to_string(kHistoryMax));
    return;
  }
  const Account* account = find_account(s, a[1], r);
  if (!account) return;
  size_t n = std::min(static_cast<size_t>(count), account->history.size());
  r.array(n);
  for (size_t i = 0; i < n; i++) reply_transfer(account->history[account->history.size() - 1 - i], r);
}

std::string int128_text(__int128 v) {
  if (v == 0) return "0";
  bool negative = v < 0;
  unsigned __int128 u = negative ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  std::string out;
  while (u) { out.push_back(static_cast<char>('0' + static_cast<int>(u % 10))); u /= 10; }
  if (negative) out.push_back('-');
  std::reverse(out.begin(), out.end());
  return out;
}

// SUPPLY <currency>: [accounts, net, issued] over posted balances, as before.
void query_supply(const State& s, Args a, const QueryContext&, Reply& r) {
  int64_t accounts = 0;
  __int128 net = 0, issued = 0;
  for (const auto& [id, account] : s.accounts) {
    if (account.currency != a[1]) continue;
    accounts++;
    net += account.posted;
    if (account.posted > 0) issued += account.posted;
  }
  r.array(3);
  r.integer(accounts);
  r.big_number(int128_text(net));
  r.big_number(int128_text(issued));
}

// ---- snapshot ------------------------------------------------------------------------------

// Schema version 3: version 2's layout (tests/apps/ledger_v2/ledger_v2.cc) with, per account
// after its transfer_count, varint pending_debits and varint pending_credits, and at the end
//   varint n_pending, per pending transfer (by id): bytes id, bytes from, bytes to,
//   varint amount, bytes currency, bytes memo, u64 created_ms, u8 status, varint seq.
// `version` 1 leaves out the memos too (save_as checks that the state fits).
void save_transfer(const Transfer& t, uint32_t version, Encoder& out) {
  out.varint(t.seq);
  out.u64(t.time_ms);
  out.bytes(t.id);
  out.bytes(t.from);
  out.bytes(t.to);
  out.svarint(t.amount);
  out.bytes(t.currency);
  if (version >= 2) out.bytes(t.memo);
}

void save_account(std::string_view id, const Account& a, uint32_t version, Encoder& out) {
  out.bytes(id);
  out.bytes(a.currency);
  out.svarint(a.posted);
  out.boolean(a.allow_overdraft);
  out.u64(a.created_ms);
  out.varint(a.transfer_count);
  if (version >= 3) {
    out.varint(static_cast<uint64_t>(a.pending_debits));
    out.varint(static_cast<uint64_t>(a.pending_credits));
  }
  out.varint(a.history.size());
  for (const auto& t : a.history) save_transfer(t, version, out);
}

void save_pending(std::string_view id, const Pending& p, Encoder& out) {
  out.bytes(id);
  out.bytes(p.from);
  out.bytes(p.to);
  out.varint(static_cast<uint64_t>(p.amount));
  out.bytes(p.currency);
  out.bytes(p.memo);
  out.u64(p.created_ms);
  out.u8(static_cast<uint8_t>(p.status));
  out.varint(p.seq);
}

void save_in(const State& s, uint32_t version, Encoder& out) {
  out.varint(s.last_seq);
  out.varint(s.accounts.size());
  for (const auto& [id, a] : s.accounts) save_account(id, a, version, out);
  out.varint(s.transfers_by_id.size());
  for (const auto& [id, t] : s.transfers_by_id) save_transfer(t, version, out);
  if (version < 3) return;
  out.varint(s.pending.size());
  for (const auto& [id, p] : s.pending) save_pending(id, p, out);
}

// Version 2's records (tests/apps/ledger_v2) as `version` writes them, and each pending
// transfer ("pending:<id>").
void records_in(const State& s, uint32_t version, RecordSink& out) {
  out.record_encoded("last_seq", [&](Encoder& e) { e.varint(s.last_seq); });
  for (const auto& [id, a] : s.accounts)
    out.record_encoded("account:" + id, [&, &id = id, &a = a](Encoder& e) { save_account(id, a, version, e); });
  for (const auto& [id, t] : s.transfers_by_id)
    out.record_encoded("transfer:" + id, [&, &t = t](Encoder& e) { save_transfer(t, version, e); });
  if (version < 3) return;
  for (const auto& [id, p] : s.pending)
    out.record_encoded("pending:" + id, [&, &id = id, &p = p](Encoder& e) { save_pending(id, p, e); });
}

using SavedTransfer =
    std::tuple<uint64_t, uint64_t, std::string, std::string, std::string, int64_t, std::string, std::string>;
using SavedAccount =
    std::tuple<std::string, std::string, int64_t, bool, uint64_t, uint64_t, uint64_t, uint64_t, std::deque<Transfer>>;
using SavedPending =
    std::tuple<std::string, std::string, std::string, uint64_t, std::string, std::string, uint64_t, uint8_t, uint64_t>;

bool load_transfer(Decoder& in, Transfer* t) {
  t->seq = in.varint();
  t->time_ms = in.u64();
  t->id = in.bytes();
  t->from = in.bytes();
  t->to = in.bytes();
  t->amount = in.svarint();
  t->currency = in.bytes();
  t->memo = in.bytes();
  return in.ok() && t->seq > 0 && t->amount > 0 && t->from != t->to && valid_currency(t->currency) &&
         t->id.size() <= kTransferIdBytesMax && t->memo.size() <= kMemoBytesMax;
}

// Reads version 3's layout and checks its invariants: posted balances of a currency sum to
// 0; a non-overdraft account's posted balance is not negative; each account's pending
// amounts are the sums of its transfers still pending.
bool load_v3(State& s, Decoder& in) {
  s.last_seq = in.varint();
  uint64_t n = in.count<SavedAccount>();
  absl::btree_map<std::string, __int128> net_by_currency;
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string id(in.bytes());
    Account a;
    a.currency = in.bytes();
    a.posted = in.svarint();
    a.allow_overdraft = in.boolean();
    a.created_ms = in.u64();
    a.transfer_count = in.varint();
    const uint64_t debits = in.varint(), credits = in.varint();
    if (debits > INT64_MAX || credits > INT64_MAX) return false;
    a.pending_debits = static_cast<int64_t>(debits);
    a.pending_credits = static_cast<int64_t>(credits);
    uint64_t h = in.count<SavedTransfer>();
    if (!in.ok() || h > kHistoryMax || h > a.transfer_count || !valid_account_id(id) || !valid_currency(a.currency) ||
        (a.posted < 0 && !a.allow_overdraft))
      return false;
    for (uint64_t j = 0; j < h; j++) {
      Transfer t;
      if (!load_transfer(in, &t) || t.seq > s.last_seq || (t.from != id && t.to != id)) return false;
      a.history.push_back(std::move(t));
    }
    net_by_currency[a.currency] += a.posted;
    if (!s.accounts.emplace(std::move(id), std::move(a)).second) return false;
  }
  uint64_t ids = in.count<SavedTransfer>();
  for (uint64_t i = 0; i < ids && in.ok(); i++) {
    Transfer t;
    if (!load_transfer(in, &t) || t.id.empty() || t.seq > s.last_seq) return false;
    std::string key = t.id;
    if (!s.transfers_by_id.emplace(std::move(key), std::move(t)).second) return false;
  }
  for (const auto& [currency, net] : net_by_currency)
    if (net != 0) return false;  // money appeared or vanished: corrupt
  uint64_t pendings = in.count<SavedPending>();
  absl::btree_map<std::string, std::pair<__int128, __int128>> reserved;  // by account: debits, credits
  for (uint64_t i = 0; i < pendings && in.ok(); i++) {
    std::string id(in.bytes());
    Pending p;
    p.from = in.bytes();
    p.to = in.bytes();
    const uint64_t amount = in.varint();
    p.currency = in.bytes();
    p.memo = in.bytes();
    p.created_ms = in.u64();
    const uint8_t status = in.u8();
    p.seq = in.varint();
    if (!in.ok() || id.empty() || id.size() > kTransferIdBytesMax || amount == 0 || amount > INT64_MAX || status > 2 ||
        p.memo.size() > kMemoBytesMax || p.from == p.to || (status == 1) != (p.seq != 0) || p.seq > s.last_seq)
      return false;
    p.amount = static_cast<int64_t>(amount);
    p.status = static_cast<PendingStatus>(status);
    auto from = s.accounts.find(p.from), to = s.accounts.find(p.to);
    if (from == s.accounts.end() || to == s.accounts.end() || from->second.currency != p.currency ||
        to->second.currency != p.currency)
      return false;
    if (p.status == PendingStatus::kPending) {
      reserved[p.from].first += p.amount;
      reserved[p.to].second += p.amount;
    }
    if (!s.pending.emplace(std::move(id), std::move(p)).second) return false;
  }
  for (const auto& [id, a] : s.accounts) {
    auto it = reserved.find(id);
    const __int128 debits = it == reserved.end() ? 0 : it->second.first;
    const __int128 credits = it == reserved.end() ? 0 : it->second.second;
    if (debits != a.pending_debits || credits != a.pending_credits) return false;
  }
  return in.ok();
}

}  // namespace

State LedgerV3::migrate(ledger_v2::State&& v2) {
  State s;
  s.last_seq = v2.last_seq;
  for (auto& [id, a] : v2.accounts) {
    Account b;
    b.currency = std::move(a.currency);
    b.posted = a.balance;
    b.allow_overdraft = a.allow_overdraft;
    b.created_ms = a.created_ms;
    b.transfer_count = a.transfer_count;
    b.history = std::move(a.history);
    s.accounts.emplace(id, std::move(b));
  }
  s.transfers_by_id = std::move(v2.transfers_by_id);
  return s;
}

void LedgerV3::save(const State& s, Encoder& out) { save_in(s, 3, out); }

// Version 2's layout has no pending transfers: only a state that never made one can be
// written in it (none can exist while version 2 or 1 is active: TRANSFER.PENDING is added in
// version 3). Version 1's has no memos either.
bool LedgerV3::save_as(const State& s, uint32_t version, Encoder& out) {
  if ((version != 1 && version != 2) || !s.pending.empty()) return false;
  if (version == 1)
    for (const auto& [id, a] : s.accounts)
      for (const auto& t : a.history)
        if (!t.memo.empty()) return false;
  save_in(s, version, out);
  return true;
}

void LedgerV3::records(const State& s, RecordSink& out) { records_in(s, 3, out); }

// As save_as: an older version's records while the state fits its layout.
bool LedgerV3::records_as(const State& s, uint32_t version, RecordSink& out) {
  if ((version != 1 && version != 2) || !s.pending.empty()) return false;
  if (version == 1)
    for (const auto& [id, a] : s.accounts)
      for (const auto& t : a.history)
        if (!t.memo.empty()) return false;
  records_in(s, version, out);
  return true;
}

bool LedgerV3::load(State& s, Decoder& in, uint32_t version) {
  if (version == 3) return load_v3(s, in);
  ledger_v2::State old;  // versions 1 and 2: read by version 2's own load, then migrated
  if (!ledger_v2::LedgerV2::load(old, in, version)) return false;
  s = migrate(std::move(old));
  return true;
}

std::string LedgerV3::info(const State& s) {
  size_t pending = 0;
  for (const auto& [id, p] : s.pending) pending += p.status == PendingStatus::kPending;
  return "accounts:" + std::to_string(s.accounts.size()) + "\r\ntransfers:" + std::to_string(s.last_seq) +
         "\r\npending_transfers:" + std::to_string(pending) + "\r\n";
}

void LedgerV3::define(Commands<State>& c) {
  c.write("ACCOUNT.CREATE", {3, 4}, &parse_create, &apply_create);
  c.write("TRANSFER", {5, 9}, &parse_transfer, &apply_transfer, KeySpec{1, 2, 1});
  c.write("TRANSFER.PENDING", {7, 9}, &parse_pending, &apply_pending, KeySpec{1, 2, 1});
  // POST and VOID name a pending id; the accounts they change are reported from apply.
  c.write("TRANSFER.POST", 2, &parse_pending_id, &apply_post, KeySpec{1, 1, 1, true});
  c.write("TRANSFER.VOID", 2, &parse_pending_id, &apply_void, KeySpec{1, 1, 1, true});
  c.query("BALANCE", 2, &query_balance);
  c.query("ACCOUNT.GET", 2, &query_account);
  c.query("PENDING.GET", 2, &query_pending);
  c.query("HISTORY", {2, 3}, &query_history);
  c.query("SUPPLY", 2, &query_supply);
  // Version 3 changed TRANSFER's rule (the available balance), not its words: a version-2
  // entry is applied by version 2's rule. The two-phase commands are new.
  c.version(3)
      .old_handler("TRANSFER", {5, 9}, &parse_transfer, &apply_transfer_v2, KeySpec{1, 2, 1})
      .added("TRANSFER.PENDING")
      .added("TRANSFER.POST")
      .added("TRANSFER.VOID");
  // Version 2 changed TRANSFER's words (major units, MEMO): a version-1 entry is read as
  // version 1 read it and upcast to version 2's form, then applied by version 2's rule.
  c.version(2).upcast("TRANSFER", {5, 7}, &v1::parse_transfer, &transfer_from_v1, KeySpec{1, 2, 1});
}

}  // namespace hmdb::ledger_v3
