// examples/library/library.cc — a lending library as an hmdb application: books, members,
// loans. The whole app is this file; examples/library/CMakeLists.txt builds it against the
// installed engine with one hmdb_add_app call (docs/app-tutorial.md).
//
//   BOOK.ADD <book> <title>        write  -> +OK
//   MEMBER.ADD <member> <name>     write  -> +OK
//   LEND <book> <member>           write  -> :<loan number>  (a book is lent to one member at
//                                  a time; a member holds at most kLoansPerMemberMax books)
//   RETURN <book> <loan>           write  -> :1 returned now, :0 that loan is not current
//                                  (returned already: a retry)
//   BOOK.GET <book>                query  -> map: title, lent_to, loan, since_ms (nil if not lent)
//   LOANS <member>                 query  -> the member's books, in id order
//
// Written for a cluster (docs/app-tutorial.md, "Writing for a cluster"):
// * A retry after a lost reply is harmless: LEND of a book already lent to the same member
//   answers the original loan number; RETURN names the loan (numbers are never reused), so
//   a retry answers :0 and can never end a later loan of the same book.
// * What needs no state is refused in parse (ids, title length, loan number), before the
//   log; what needs the state (unknown book, already lent, the member's limit) is refused in
//   apply, where it costs a log entry.
// * loans_by_member is a derived index: never in the snapshot, rebuilt by load().
// * apply reads time only from ctx.now_ms, and every container is ordered.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include <hmdb/app.h>
#include <hmdb/server.h>

namespace library {

using hmdb::ApplyContext;
using hmdb::Args;
using hmdb::QueryContext;
using hmdb::Reply;

// Bounds on what a client controls, so one command cannot take unbounded memory.
inline constexpr size_t kIdBytesMax = 64;      // book and member ids
inline constexpr size_t kTextBytesMax = 256;   // titles and names
inline constexpr size_t kLoansPerMemberMax = 5;

struct Book {
  std::string title;
  std::string lent_to;    // member id; empty when the book is on the shelf
  uint64_t loan = 0;      // the loan number while lent
  uint64_t since_ms = 0;  // leader time of the LEND, while lent
};

struct State {
  std::map<std::string, Book, std::less<>> books;
  std::map<std::string, std::string, std::less<>> members;  // id -> name
  uint64_t last_loan = 0;                                   // loans are numbered 1, 2, 3, ...
  // Derived from books[*].lent_to: kept in step by LEND and RETURN, rebuilt by load(), never
  // saved (a snapshot holds each fact once, so it cannot hold two that disagree).
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> loans_by_member;
};

bool valid_id(std::string_view id) { return !id.empty() && id.size() <= kIdBytesMax; }
bool valid_text(std::string_view t) { return !t.empty() && t.size() <= kTextBytesMax; }

// ---- BOOK.ADD <book> <title>, MEMBER.ADD <member> <name> ----------------------------------
struct Add {
  std::string_view id, text;
};

bool parse_add(Args a, Add& out, std::string& err) {
  out.id = a[1];
  out.text = a[2];
  if (!valid_id(out.id)) { err = "ERR id must be 1 to 64 bytes"; return false; }
  if (!valid_text(out.text)) { err = "ERR title or name must be 1 to 256 bytes"; return false; }
  return true;
}

void apply_book_add(State& s, const Add& a, const ApplyContext&, Reply& r) {
  if (s.books.find(a.id) != s.books.end()) { r.error("ERR book '" + std::string(a.id) + "' exists"); return; }
  Book book;
  book.title = a.text;
  s.books.emplace(std::string(a.id), std::move(book));
  r.ok();
}

void apply_member_add(State& s, const Add& a, const ApplyContext&, Reply& r) {
  if (!s.members.emplace(std::string(a.id), std::string(a.text)).second) {
    r.error("ERR member '" + std::string(a.id) + "' exists");
    return;
  }
  r.ok();
}

// ---- LEND <book> <member> -------------------------------------------------------------------
struct Lend {
  std::string_view book, member;
};

bool parse_lend(Args a, Lend& out, std::string& err) {
  out.book = a[1];
  out.member = a[2];
  if (!valid_id(out.book) || !valid_id(out.member)) { err = "ERR id must be 1 to 64 bytes"; return false; }
  return true;
}

void apply_lend(State& s, const Lend& a, const ApplyContext& ctx, Reply& r) {
  auto book = s.books.find(a.book);
  if (book == s.books.end()) { r.error("ERR no such book '" + std::string(a.book) + "'"); return; }
  if (s.members.find(a.member) == s.members.end()) { r.error("ERR no such member '" + std::string(a.member) + "'"); return; }
  if (book->second.lent_to == a.member) {  // a retry of the LEND that lent it: same answer
    r.integer(static_cast<int64_t>(book->second.loan));
    return;
  }
  if (!book->second.lent_to.empty()) { r.error("ERR book '" + std::string(a.book) + "' is lent to another member"); return; }
  auto& held = s.loans_by_member[std::string(a.member)];
  if (held.size() >= kLoansPerMemberMax) {
    r.error("ERR member '" + std::string(a.member) + "' already holds " + std::to_string(kLoansPerMemberMax) + " books");
    return;
  }
  // Every check passed: now change everything.
  held.emplace(a.book);
  book->second.lent_to = a.member;
  book->second.loan = ++s.last_loan;
  book->second.since_ms = ctx.now_ms;  // the leader's clock, stamped into the log entry
  r.integer(static_cast<int64_t>(book->second.loan));
}

// ---- RETURN <book> <loan> -------------------------------------------------------------------
struct Return {
  std::string_view book;
  uint64_t loan = 0;
};

bool parse_return(Args a, Return& out, std::string& err) {
  out.book = a[1];
  if (!valid_id(out.book)) { err = "ERR id must be 1 to 64 bytes"; return false; }
  int64_t loan = 0;
  if (!hmdb::parse_int64(a[2], &loan) || loan <= 0) { err = "ERR loan must be a positive integer"; return false; }
  out.loan = static_cast<uint64_t>(loan);
  return true;
}

void apply_return(State& s, const Return& a, const ApplyContext&, Reply& r) {
  auto book = s.books.find(a.book);
  if (book == s.books.end()) { r.error("ERR no such book '" + std::string(a.book) + "'"); return; }
  // Returned already (a retry), or a loan of another book: nothing to do, and no later loan
  // of this book is ended by mistake.
  if (book->second.lent_to.empty() || book->second.loan != a.loan) { r.integer(0); return; }
  auto held = s.loans_by_member.find(book->second.lent_to);
  held->second.erase(held->second.find(a.book));
  if (held->second.empty()) s.loans_by_member.erase(held);
  book->second.lent_to.clear();
  book->second.loan = 0;
  book->second.since_ms = 0;
  r.integer(1);
}

// ---- queries --------------------------------------------------------------------------------
void query_book(const State& s, Args a, const QueryContext&, Reply& r) {
  auto book = s.books.find(a[1]);
  if (book == s.books.end()) { r.error("ERR no such book '" + std::string(a[1]) + "'"); return; }
  const Book& b = book->second;
  r.map(4);
  r.bulk("title");
  r.bulk(b.title);
  r.bulk("lent_to");
  if (b.lent_to.empty()) r.null(); else r.bulk(b.lent_to);
  r.bulk("loan");
  if (b.lent_to.empty()) r.null(); else r.integer(static_cast<int64_t>(b.loan));
  r.bulk("since_ms");
  if (b.lent_to.empty()) r.null(); else r.integer(static_cast<int64_t>(b.since_ms));
}

void query_loans(const State& s, Args a, const QueryContext&, Reply& r) {
  if (s.members.find(a[1]) == s.members.end()) { r.error("ERR no such member '" + std::string(a[1]) + "'"); return; }
  auto held = s.loans_by_member.find(a[1]);
  if (held == s.loans_by_member.end()) { r.array(0); return; }
  r.array(held->second.size());
  for (const std::string& book : held->second) r.bulk(book);
}

// ---- the app --------------------------------------------------------------------------------
struct Library {
  static constexpr std::string_view kName = "library";
  static constexpr uint32_t kSchemaVersion = 1;
  using State = library::State;

  static void define(hmdb::Commands<State>& c) {
    c.write("BOOK.ADD", 3, &parse_add, &apply_book_add);
    c.write("MEMBER.ADD", 3, &parse_add, &apply_member_add);
    c.write("LEND", 3, &parse_lend, &apply_lend, hmdb::KeySpec{1, 2, 1});  // the book and the member
    c.write("RETURN", 3, &parse_return, &apply_return);
    c.query("BOOK.GET", 2, &query_book);
    c.query("LOANS", 2, &query_loans);
  }

  // Members first, so that load() can check every loan's member as it reads the books.
  static void save(const State& s, hmdb::Encoder& out) {
    out.varint(s.last_loan);
    out.varint(s.members.size());
    for (const auto& [id, name] : s.members) {
      out.bytes(id);
      out.bytes(name);
    }
    out.varint(s.books.size());
    for (const auto& [id, b] : s.books) {
      out.bytes(id);
      out.bytes(b.title);
      out.bytes(b.lent_to);
      if (!b.lent_to.empty()) {
        out.varint(b.loan);
        out.u64(b.since_ms);
      }
    }
  }

  static bool load(State& s, hmdb::Decoder& in, uint32_t version) {
    if (version != kSchemaVersion) return false;
    s.last_loan = in.varint();
    const uint64_t members = in.count<std::string, std::string>();  // an id and a name
    for (uint64_t i = 0; i < members && in.ok(); i++) {
      const std::string_view id = in.bytes(), name = in.bytes();
      if (!in.ok() || !valid_id(id) || !valid_text(name)) return false;
      if (!s.members.emplace(std::string(id), std::string(name)).second) return false;
    }
    const uint64_t books = in.count<std::string, std::string, std::string>();  // id, title, lent_to (then a loan)
    std::set<uint64_t> loans;
    for (uint64_t i = 0; i < books && in.ok(); i++) {
      const std::string_view id = in.bytes(), title = in.bytes(), lent_to = in.bytes();
      if (!in.ok() || !valid_id(id) || !valid_text(title)) return false;
      Book b;
      b.title = title;
      if (!lent_to.empty()) {
        b.lent_to = lent_to;
        b.loan = in.varint();
        b.since_ms = in.u64();
        if (!in.ok() || s.members.find(lent_to) == s.members.end()) return false;  // lent to nobody we know
        if (b.loan == 0 || b.loan > s.last_loan || !loans.insert(b.loan).second) return false;
        // The derived index, rebuilt as the facts are read.
        auto& held = s.loans_by_member[b.lent_to];
        if (held.size() >= kLoansPerMemberMax) return false;
        held.emplace(id);
      }
      if (!s.books.emplace(std::string(id), std::move(b)).second) return false;
    }
    return in.done();  // every byte read, none left over
  }

  static std::string info(const State& s) {
    size_t lent = 0;
    for (const auto& [member, held] : s.loans_by_member) lent += held.size();
    return "books:" + std::to_string(s.books.size()) + "\r\nmembers:" + std::to_string(s.members.size()) +
           "\r\nbooks_lent:" + std::to_string(lent) + "\r\n";
  }
};

}  // namespace library

HMDB_APP(library::Library);
