// apps/ledger/ledger.cc — the ledger's commands, queries and snapshot encoding.
//
// Each write is a pair: parse() turns the client's words into typed arguments and checks
// everything that does not need the state (it runs before the command is logged, so a
// bad command never reaches the log); apply() checks the rules that need the state and
// then changes it, all or nothing.
#include "ledger/ledger.h"

#include <algorithm>
#include <tuple>

namespace hmdb::ledger {
namespace {

// ---- argument checks -----------------------------------------------------------------------

bool valid_account_id(std::string_view id) { return !id.empty() && id.size() <= kAccountIdBytesMax; }

bool valid_currency(std::string_view c) {
  if (c.empty() || c.size() > kCurrencyBytesMax) return false;
  return std::all_of(c.begin(), c.end(), [](char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'); });
}

std::string no_such_account(std::string_view id) { return "ERR no such account '" + std::string(id) + "'"; }

// ---- events ------------------------------------------------------------------------------

// A JSON string: ids are any bytes, so quotes, backslashes and control bytes are escaped.
void json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    } else {
      out += c;
    }
  }
  out += '"';
}

// One event per transfer on the channel of each account it moved money between
// (account:<id>), the transfer as a JSON object: a subscriber follows an account's movements
// live, and resumes from a position without missing one (docs/subscriptions.md).
void publish_transfer(const Transfer& t, const ApplyContext& ctx) {
  std::string message = "{\"seq\":" + std::to_string(t.seq) + ",\"time_ms\":" + std::to_string(t.time_ms) + ",\"from\":";
  json_string(message, t.from);
  message += ",\"to\":";
  json_string(message, t.to);
  message += ",\"amount\":" + std::to_string(t.amount) + ",\"currency\":";
  json_string(message, t.currency);
  if (!t.id.empty()) {
    message += ",\"id\":";
    json_string(message, t.id);
  }
  message += '}';
  for (const std::string* account : {&t.from, &t.to}) ctx.publish(std::string(kAccountChannelPrefix) + *account, message);
}

// ---- ACCOUNT.CREATE <id> <currency> [OVERDRAFT] ---------------------------------------------

struct CreateAccount {
  std::string_view id, currency;
  bool allow_overdraft = false;
};

bool parse_create(Args a, CreateAccount& out, std::string& err) {
  out.id = a[1];
  out.currency = a[2];
  if (a.size() == 4 && !iequals(a[3], "OVERDRAFT")) { err = "ERR syntax error"; return false; }
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

// ---- TRANSFER <from> <to> <amount> <currency> [ID <transfer-id>] -----------------------------

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

bool same_request(const Transfer& t, const TransferArgs& a) {
  return t.from == a.from && t.to == a.to && t.amount == a.amount && t.currency == a.currency;
}

void remember(Account& account, const Transfer& t) {
  account.transfer_count++;
  account.history.push_back(t);
  if (account.history.size() > kHistoryMax) account.history.pop_front();
}

void apply_transfer(State& s, const TransferArgs& a, const ApplyContext& ctx, Reply& r) {
  // A repeated id answers with the original result and changes nothing.
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
  // Check every rule before changing anything: the transfer is all or nothing.
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
  remember(from->second, t);
  remember(to->second, t);
  if (!a.id.empty()) s.transfers_by_id.emplace(t.id, t);
  if (ctx.events) publish_transfer(t, ctx);
  r.integer(static_cast<int64_t>(t.seq));
}

// ---- queries -------------------------------------------------------------------------------

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
  r.map(6);  // RESP2: a flat array of 12
  r.bulk("id");              r.bulk(a[1]);
  r.bulk("currency");        r.bulk(account->currency);
  r.bulk("balance");         r.integer(account->balance);
  r.bulk("overdraft");       r.boolean(account->allow_overdraft);  // RESP2: :1 / :0
  r.bulk("created_ms");      r.integer(static_cast<int64_t>(account->created_ms));
  r.bulk("transfers");       r.integer(static_cast<int64_t>(account->transfer_count));
}

void reply_transfer(const Transfer& t, Reply& r) {
  r.map(7);  // RESP2: a flat array of 14
  r.bulk("seq");      r.integer(static_cast<int64_t>(t.seq));
  r.bulk("time_ms");  r.integer(static_cast<int64_t>(t.time_ms));
  r.bulk("id");       r.bulk(t.id);
  r.bulk("from");     r.bulk(t.from);
  r.bulk("to");       r.bulk(t.to);
  r.bulk("amount");   r.integer(t.amount);
  r.bulk("currency"); r.bulk(t.currency);
}

// HISTORY <id> [count]: the newest transfers first.
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

// SUPPLY <currency>: [accounts, net, issued]. net is the sum of all balances and is always
// "0" (conservation); issued is the sum of the positive balances, the money in
// circulation. Sums are exact (128-bit) and sent as big numbers (RESP2: bulk strings of
// the digits). Scans every account:
// an operator's check, not a hot-path query.
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

// Schema version 1 (all in key order, so the bytes are the same on every node):
//   varint last_seq
//   varint n_accounts, per account: bytes id, bytes currency, svarint balance,
//     u8 allow_overdraft, u64 created_ms, varint transfer_count,
//     varint n_history, n_history × transfer (oldest first)
//   varint n_ids, n_ids × transfer (the idempotency table, by id)
//   transfer: varint seq, u64 time_ms, bytes id, bytes from, bytes to, svarint amount, bytes currency
void save_transfer(const Transfer& t, Encoder& out) {
  out.varint(t.seq);
  out.u64(t.time_ms);
  out.bytes(t.id);
  out.bytes(t.from);
  out.bytes(t.to);
  out.svarint(t.amount);
  out.bytes(t.currency);
}

// The values save_transfer and save write per transfer and per account, in order: their
// types give Decoder::count the fewest bytes an item takes.
using SavedTransfer = std::tuple<uint64_t, uint64_t, std::string, std::string, std::string, int64_t, std::string>;
using SavedAccount = std::tuple<std::string, std::string, int64_t, bool, uint64_t, uint64_t, std::deque<Transfer>>;

bool load_transfer(Decoder& in, Transfer* t) {
  t->seq = in.varint();
  t->time_ms = in.u64();
  t->id = in.bytes();
  t->from = in.bytes();
  t->to = in.bytes();
  t->amount = in.svarint();
  t->currency = in.bytes();
  return in.ok() && t->seq > 0 && t->amount > 0 && t->from != t->to && valid_currency(t->currency) &&
         t->id.size() <= kTransferIdBytesMax;
}

}  // namespace

void save_account(std::string_view id, const Account& a, Encoder& out) {
  out.bytes(id);
  out.bytes(a.currency);
  out.svarint(a.balance);
  out.boolean(a.allow_overdraft);
  out.u64(a.created_ms);
  out.varint(a.transfer_count);
  out.varint(a.history.size());
  for (const auto& t : a.history) save_transfer(t, out);
}

void Ledger::save(const State& s, Encoder& out) {
  out.varint(s.last_seq);
  out.varint(s.accounts.size());
  for (const auto& [id, a] : s.accounts) save_account(id, a, out);
  out.varint(s.transfers_by_id.size());
  for (const auto& [id, t] : s.transfers_by_id) save_transfer(t, out);
}

// Each part of the state save() writes, hashed as it writes it.
void Ledger::records(const State& s, RecordSink& out) {
  out.record_encoded("last_seq", [&](Encoder& e) { e.varint(s.last_seq); });
  // (Structured bindings are captured by name: clang before 16 cannot capture them.)
  for (const auto& [id, a] : s.accounts)
    out.record_encoded("account:" + id, [&, &id = id, &a = a](Encoder& e) { save_account(id, a, e); });
  for (const auto& [id, t] : s.transfers_by_id)
    out.record_encoded("transfer:" + id, [&, &t = t](Encoder& e) { save_transfer(t, e); });
}

// Checks the invariants while loading: a snapshot that breaks them is corrupt.
bool Ledger::load(State& s, Decoder& in, uint32_t version) {
  // AppHost passes only a version this app reads: 1 (kOldestSchemaVersion..kSchemaVersion).
  // A version 2 would read version 1's layout here and convert it, or keep this function
  // for version 1 and migrate its result (tests/apps/ledger_v2 does).
  if (version != 1) return false;
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
    if (net != 0) return false;  // money appeared or vanished: corrupt
  return in.ok();
}

std::string Ledger::info(const State& s) {
  return "accounts:" + std::to_string(s.accounts.size()) + "\r\ntransfers:" + std::to_string(s.last_seq) + "\r\n";
}

void Ledger::define(Commands<State>& c) {
  c.write("ACCOUNT.CREATE", {3, 4}, &parse_create, &apply_create);
  // TRANSFER changes two accounts: a transaction that WATCHes either fails if it ran since.
  c.write("TRANSFER", {5, 7}, &parse_transfer, &apply_transfer, KeySpec{1, 2, 1});
  c.query("BALANCE", 2, &query_balance);
  c.query("ACCOUNT.GET", 2, &query_account);
  c.query("HISTORY", {2, 3}, &query_history);
  c.query("SUPPLY", 2, &query_supply);
}

}  // namespace hmdb::ledger
