// tests/apps/ledger_v2/ledger_v2.cc — the ledger at schema version 2 (ledger_v2.h says what
// changed). Version 1's TRANSFER parse is kept here verbatim (namespace v1): a version-1
// entry is read by it and upcast.
#include "ledger_v2/ledger_v2.h"

#include <algorithm>
#include <tuple>

namespace hmdb::ledger_v2 {
namespace {

bool valid_account_id(std::string_view id) { return !id.empty() && id.size() <= kAccountIdBytesMax; }

bool valid_currency(std::string_view c) {
  if (c.empty() || c.size() > kCurrencyBytesMax) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'); });
}

std::string no_such_account(std::string_view id) { return "ERR no such account '" + std::string(id) + "'"; }

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

// ---- TRANSFER <from> <to> <amount> <currency> [ID <transfer-id>] [MEMO <text>] ---------------

struct TransferArgs {
  std::string_view from, to, currency, id, memo;
  int64_t amount = 0;  // minor units
};

// "25", "25.5", "25.50": a positive decimal number of major units with at most two fraction
// digits, in minor units (2500, 2550, 2550).
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

bool parse_transfer(Args a, TransferArgs& out, std::string& err) {
  if (a.size() % 2 == 0) { err = wrong_arity(a[0]); return false; }  // an option without its value
  out.from = a[1];
  out.to = a[2];
  out.currency = a[4];
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
  if (!parse_major_units(a[3], &out.amount)) {
    err = "ERR amount must be a positive number of major units with at most two decimals (25.50)";
    return false;
  }
  if (!valid_currency(out.currency)) { err = "ERR currency must be 1 to 12 characters A-Z or 0-9"; return false; }
  if (out.from == out.to) { err = "ERR cannot transfer from an account to itself"; return false; }
  return true;
}

bool same_request(const Transfer& t, const TransferArgs& a) {
  return t.from == a.from && t.to == a.to && t.amount == a.amount && t.currency == a.currency && t.memo == a.memo;
}

void remember(Account& account, const Transfer& t) {
  account.transfer_count++;
  account.history.push_back(t);
  if (account.history.size() > kHistoryMax) account.history.pop_front();
}

void apply_transfer(State& s, const TransferArgs& a, const ApplyContext& ctx, Reply& r) {
  if (!a.id.empty()) {
    auto seen = s.transfers_by_id.find(a.id);
    if (seen != s.transfers_by_id.end()) {
      if (!same_request(seen->second, a)) { r.error("ERR transfer id already used with different arguments"); return; }
      r.integer(static_cast<int64_t>(seen->second.seq));
      return;
    }
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
  int64_t from_after = 0, to_after = 0;
  if (__builtin_sub_overflow(from->second.balance, a.amount, &from_after)) { r.error("ERR balance would overflow"); return; }
  if (from_after < 0 && !from->second.allow_overdraft) { r.error("ERR insufficient funds"); return; }
  if (__builtin_add_overflow(to->second.balance, a.amount, &to_after)) { r.error("ERR balance would overflow"); return; }

  from->second.balance = from_after;
  to->second.balance = to_after;
  Transfer t;
  t.seq = ++s.last_seq;
  t.time_ms = ctx.now_ms;
  t.id = a.id;
  t.from = a.from;
  t.to = a.to;
  t.amount = a.amount;
  t.currency = a.currency;
  t.memo = a.memo;
  remember(from->second, t);
  remember(to->second, t);
  if (!a.id.empty()) s.transfers_by_id.emplace(t.id, t);
  r.integer(static_cast<int64_t>(t.seq));
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
ledger_v2::TransferArgs transfer_from_v1(const v1::TransferArgs& old) {
  ledger_v2::TransferArgs a;
  a.from = old.from;
  a.to = old.to;
  a.currency = old.currency;
  a.id = old.id;
  a.amount = old.amount;
  return a;
}

// ---- queries (version 1's; HISTORY shows the memo) ----------------------------------------------

const Account* find_account(const State& s, std::string_view id, Reply& r) {
  auto it = s.accounts.find(id);
  if (it == s.accounts.end()) { r.error(no_such_account(id)); return nullptr; }
  return &it->second;
}

void query_balance(const State& s, Args a, const QueryContext&, Reply& r) {
  if (const Account* account = find_account(s, a[1], r)) r.integer(account->balance);
}

void query_account(const State& s, Args a, const QueryContext&, Reply& r) {
  const Account* account = find_account(s, a[1], r);
  if (!account) return;
  r.map(6);
  r.bulk("id");              r.bulk(a[1]);
  r.bulk("currency");        r.bulk(account->currency);
  r.bulk("balance");         r.integer(account->balance);
  r.bulk("overdraft");       r.boolean(account->allow_overdraft);
  r.bulk("created_ms");      r.integer(static_cast<int64_t>(account->created_ms));
  r.bulk("transfers");       r.integer(static_cast<int64_t>(account->transfer_count));
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

void query_supply(const State& s, Args a, const QueryContext&, Reply& r) {
  int64_t accounts = 0;
  __int128 net = 0, issued = 0;
  for (const auto& [id, account] : s.accounts) {
    if (account.currency != a[1]) continue;
    accounts++;
    net += account.balance;
    if (account.balance > 0) issued += account.balance;
  }
  r.array(3);
  r.integer(accounts);
  r.big_number(int128_text(net));
  r.big_number(int128_text(issued));
}

// ---- snapshot ------------------------------------------------------------------------------

// Schema version 2: version 1's layout (apps/ledger/ledger.cc) with a transfer's memo (bytes)
// after its currency.
void save_transfer(const Transfer& t, bool with_memo, Encoder& out) {
  out.varint(t.seq);
  out.u64(t.time_ms);
  out.bytes(t.id);
  out.bytes(t.from);
  out.bytes(t.to);
  out.svarint(t.amount);
  out.bytes(t.currency);
  if (with_memo) out.bytes(t.memo);
}

void save_account(std::string_view id, const Account& a, bool with_memo, Encoder& out) {
  out.bytes(id);
  out.bytes(a.currency);
  out.svarint(a.balance);
  out.boolean(a.allow_overdraft);
  out.u64(a.created_ms);
  out.varint(a.transfer_count);
  out.varint(a.history.size());
  for (const auto& t : a.history) save_transfer(t, with_memo, out);
}

void save_in(const State& s, bool with_memo, Encoder& out) {
  out.varint(s.last_seq);
  out.varint(s.accounts.size());
  for (const auto& [id, a] : s.accounts) save_account(id, a, with_memo, out);
  out.varint(s.transfers_by_id.size());
  for (const auto& [id, t] : s.transfers_by_id) save_transfer(t, with_memo, out);
}

// Version 1's records (apps/ledger: Ledger::records) with the memos, or without them.
void records_in(const State& s, bool with_memo, RecordSink& out) {
  out.record_encoded("last_seq", [&](Encoder& e) { e.varint(s.last_seq); });
  for (const auto& [id, a] : s.accounts)
    out.record_encoded("account:" + id, [&, &id = id, &a = a](Encoder& e) { save_account(id, a, with_memo, e); });
  for (const auto& [id, t] : s.transfers_by_id)
    out.record_encoded("transfer:" + id, [&, &t = t](Encoder& e) { save_transfer(t, with_memo, e); });
}

using SavedTransfer =
    std::tuple<uint64_t, uint64_t, std::string, std::string, std::string, int64_t, std::string, std::string>;
using SavedAccount = std::tuple<std::string, std::string, int64_t, bool, uint64_t, uint64_t, std::deque<Transfer>>;

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

bool load_v2(State& s, Decoder& in) {
  s.last_seq = in.varint();
  uint64_t n = in.count<SavedAccount>();
  absl::btree_map<std::string, __int128> net_by_currency;
  for (uint64_t i = 0; i < n && in.ok(); i++) {
    std::string id(in.bytes());
    Account a;
    a.currency = in.bytes();
    a.balance = in.svarint();
    a.allow_overdraft = in.boolean();
    a.created_ms = in.u64();
    a.transfer_count = in.varint();
    uint64_t h = in.count<SavedTransfer>();
    if (!in.ok() || h > kHistoryMax || h > a.transfer_count || !valid_account_id(id) || !valid_currency(a.currency) ||
        (a.balance < 0 && !a.allow_overdraft))
      return false;
    for (uint64_t j = 0; j < h; j++) {
      Transfer t;
      if (!load_transfer(in, &t) || t.seq > s.last_seq || (t.from != id && t.to != id)) return false;
      a.history.push_back(std::move(t));
    }
    net_by_currency[a.currency] += a.balance;
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
    if (net != 0) return false;
  return in.ok();
}

Transfer migrate_transfer(ledger::Transfer&& t) {
  return Transfer{t.seq, t.time_ms, std::move(t.id), std::move(t.from), std::move(t.to), t.amount,
                  std::move(t.currency), ""};
}

}  // namespace

State LedgerV2::migrate(ledger::State&& v1) {
  State s;
  s.last_seq = v1.last_seq;
  for (auto& [id, a] : v1.accounts) {
    Account b;
    b.currency = std::move(a.currency);
    b.balance = a.balance;
    b.allow_overdraft = a.allow_overdraft;
    b.created_ms = a.created_ms;
    b.transfer_count = a.transfer_count;
    for (auto& t : a.history) b.history.push_back(migrate_transfer(std::move(t)));
    s.accounts.emplace(id, std::move(b));
  }
  for (auto& [id, t] : v1.transfers_by_id) s.transfers_by_id.emplace(id, migrate_transfer(std::move(t)));
  return s;
}

void LedgerV2::save(const State& s, Encoder& out) { save_in(s, true, out); }

// Version 1's layout has no memo: only a state without one can be written in it (and at
// active version 1 none can exist: version 1's TRANSFER has no MEMO).
bool LedgerV2::save_as(const State& s, uint32_t version, Encoder& out) {
  if (version != 1) return false;
  for (const auto& [id, a] : s.accounts)
    for (const auto& t : a.history)
      if (!t.memo.empty()) return false;
  save_in(s, false, out);
  return true;
}

void LedgerV2::records(const State& s, RecordSink& out) { records_in(s, true, out); }

// As save_as: version 1's records while no memo exists.
bool LedgerV2::records_as(const State& s, uint32_t version, RecordSink& out) {
  if (version != 1) return false;
  for (const auto& [id, a] : s.accounts)
    for (const auto& t : a.history)
      if (!t.memo.empty()) return false;
  records_in(s, false, out);
  return true;
}

bool LedgerV2::load(State& s, Decoder& in, uint32_t version) {
  if (version == 2) return load_v2(s, in);
  ledger::State old;  // version 1: read by version 1's own load, then migrated
  if (!ledger::Ledger::load(old, in, version)) return false;
  s = migrate(std::move(old));
  return true;
}

std::string LedgerV2::info(const State& s) {
  return "accounts:" + std::to_string(s.accounts.size()) + "\r\ntransfers:" + std::to_string(s.last_seq) + "\r\n";
}

void LedgerV2::define_commands(Commands<State>& c) {
  c.write("ACCOUNT.CREATE", {3, 4}, &parse_create, &apply_create);
  c.write("TRANSFER", {5, 9}, &parse_transfer, &apply_transfer, KeySpec{1, 2, 1});
  c.query("BALANCE", 2, &query_balance);
  c.query("ACCOUNT.GET", 2, &query_account);
  c.query("HISTORY", {2, 3}, &query_history);
  c.query("SUPPLY", 2, &query_supply);
}

void LedgerV2::define(Commands<State>& c) {
  define_commands(c);
  // Version 2 changed TRANSFER's words (major units, MEMO): a version-1 entry is read as
  // version 1 read it and upcast.
  c.version(2).upcast("TRANSFER", {5, 7}, &v1::parse_transfer, &transfer_from_v1, KeySpec{1, 2, 1});
}

}  // namespace hmdb::ledger_v2
