// examples/library/library_test.cc — the library app driven as a node drives it, without a
// server (hmdb/testing.h): replies and refusals, no double lending, retries, the snapshot
// and its derived index, and two copies that agree over a long seeded run.
#include <gtest/gtest.h>
#include <hmdb/server.h>
#include <hmdb/testing.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace {

using hmdb::testing::array;
using hmdb::testing::bulk;
using hmdb::testing::Driver;
using hmdb::testing::error;
using hmdb::testing::integer;
using hmdb::testing::kNil;
using hmdb::testing::kOk;

// A library with books b1..b7 and members alice and bob.
void stock(Driver& db) {
  for (int i = 1; i <= 7; i++) ASSERT_EQ(db.run_strings({"BOOK.ADD", "b" + std::to_string(i), "Title " + std::to_string(i)}), kOk);
  ASSERT_EQ(db.run({"MEMBER.ADD", "alice", "Alice A."}), kOk);
  ASSERT_EQ(db.run({"MEMBER.ADD", "bob", "Bob B."}), kOk);
}

TEST(LibraryTest, LendAndReturn) {
  Driver db(hmdb::registered_app());
  stock(db);
  EXPECT_EQ(db.run({"BOOK.GET", "b1"}), array({bulk("title"), bulk("Title 1"), bulk("lent_to"), kNil, bulk("loan"), kNil,
                                               bulk("since_ms"), kNil}));
  db.now_ms += 1000;
  EXPECT_EQ(db.run({"LEND", "b1", "alice"}), integer(1));
  EXPECT_EQ(db.run({"lend", "b2", "alice"}), integer(2));
  EXPECT_EQ(db.run({"BOOK.GET", "b1"}),
            array({bulk("title"), bulk("Title 1"), bulk("lent_to"), bulk("alice"), bulk("loan"), integer(1), bulk("since_ms"),
                   integer(static_cast<int64_t>(Driver::kStartMs + 1000))}));
  EXPECT_EQ(db.run({"LOANS", "alice"}), array({bulk("b1"), bulk("b2")}));
  EXPECT_EQ(db.run({"LOANS", "bob"}), array({}));
  EXPECT_EQ(db.run({"RETURN", "b1", "2"}), integer(0)) << "loan 2 is b2's";
  EXPECT_EQ(db.run({"RETURN", "b1", "1"}), integer(1));
  EXPECT_EQ(db.run({"LOANS", "alice"}), array({bulk("b2")}));
  EXPECT_EQ(db.run({"LEND", "b1", "bob"}), integer(3));
  EXPECT_EQ(db.run({"LOANS", "bob"}), array({bulk("b1")}));
}

TEST(LibraryTest, NoDoubleLending) {
  Driver db(hmdb::registered_app());
  stock(db);
  ASSERT_EQ(db.run({"LEND", "b1", "alice"}), integer(1));
  EXPECT_EQ(db.run({"LEND", "b1", "bob"}), error("ERR book 'b1' is lent to another member"));
  EXPECT_EQ(db.run({"LOANS", "bob"}), array({}));
  for (int i = 2; i <= 5; i++) ASSERT_EQ(db.run_strings({"LEND", "b" + std::to_string(i), "alice"}), integer(i));
  EXPECT_EQ(db.run({"LEND", "b6", "alice"}), error("ERR member 'alice' already holds 5 books"));
  EXPECT_EQ(db.run({"LEND", "b6", "bob"}), integer(6));
}

// A client whose reply was lost sends the write again: the answer is the same and nothing
// changes twice.
TEST(LibraryTest, RetriesAreHarmless) {
  Driver db(hmdb::registered_app());
  stock(db);
  ASSERT_EQ(db.run({"LEND", "b1", "alice"}), integer(1));
  const uint64_t digest = db.digest();
  EXPECT_EQ(db.run({"LEND", "b1", "alice"}), integer(1));
  EXPECT_EQ(db.digest(), digest);
  EXPECT_EQ(db.run({"RETURN", "b1", "1"}), integer(1));
  EXPECT_EQ(db.run({"RETURN", "b1", "1"}), integer(0));
  EXPECT_EQ(db.run({"LOANS", "alice"}), array({}));
  // The book is lent again before a late retry of that RETURN arrives: the new loan stays.
  EXPECT_EQ(db.run({"LEND", "b1", "bob"}), integer(2));
  EXPECT_EQ(db.run({"RETURN", "b1", "1"}), integer(0));
  EXPECT_EQ(db.run({"LOANS", "bob"}), array({bulk("b1")}));
}

TEST(LibraryTest, RefusedInParseNeverLoggedRefusedInApplyChangesNothing) {
  Driver db(hmdb::registered_app());
  stock(db);
  const uint64_t logged = db.index;
  const uint64_t digest = db.digest();
  EXPECT_EQ(db.run({"BOOK.ADD", "", "Untitled"}), error("ERR id must be 1 to 64 bytes"));
  EXPECT_EQ(db.run_strings({"BOOK.ADD", "b9", std::string(257, 't')}), error("ERR title or name must be 1 to 256 bytes"));
  EXPECT_EQ(db.run_strings({"LEND", std::string(65, 'b'), "alice"}), error("ERR id must be 1 to 64 bytes"));
  EXPECT_EQ(db.run({"LEND", "b1"}), error("ERR wrong number of arguments for 'lend' command"));
  EXPECT_EQ(db.run({"RETURN", "b1", "0"}), error("ERR loan must be a positive integer"));
  EXPECT_EQ(db.index, logged) << "a command refused in parse never reaches the log";
  EXPECT_EQ(db.run({"LEND", "b9", "alice"}), error("ERR no such book 'b9'"));
  EXPECT_EQ(db.run({"LEND", "b1", "carol"}), error("ERR no such member 'carol'"));
  EXPECT_EQ(db.run({"BOOK.ADD", "b1", "Again"}), error("ERR book 'b1' exists"));
  EXPECT_EQ(db.run({"RETURN", "b9", "1"}), error("ERR no such book 'b9'"));
  EXPECT_EQ(db.index, logged + 4) << "a command refused in apply costs a log entry";
  EXPECT_EQ(db.digest(), digest);
  EXPECT_EQ(db.run({"BOOK.GET", "b9"}), error("ERR no such book 'b9'"));
  EXPECT_EQ(db.run({"LOANS", "carol"}), error("ERR no such member 'carol'"));
}

TEST(LibraryTest, SnapshotRebuildsTheLoanIndex) {
  Driver a(hmdb::registered_app());
  stock(a);
  a.run({"LEND", "b1", "alice"});
  a.run({"LEND", "b3", "alice"});
  a.run({"LEND", "b2", "bob"});
  const std::string bytes = a.snapshot();
  Driver b(hmdb::registered_app());
  ASSERT_TRUE(b.restore(bytes));
  EXPECT_EQ(b.digest(), a.digest());
  EXPECT_EQ(b.info(), a.info());
  EXPECT_EQ(b.run({"LOANS", "alice"}), array({bulk("b1"), bulk("b3")})) << "the derived index was rebuilt";
  EXPECT_EQ(b.run({"LEND", "b1", "bob"}), error("ERR book 'b1' is lent to another member"));
  EXPECT_EQ(b.run({"LEND", "b4", "bob"}), integer(4)) << "loan numbers continue";
  for (size_t len = 0; len < bytes.size(); len++)  // a torn snapshot is refused, never half-loaded
    EXPECT_FALSE(b.restore(std::string_view(bytes).substr(0, len))) << len << " bytes";
  EXPECT_FALSE(b.restore(bytes + '\0')) << "trailing bytes";
  EXPECT_FALSE(b.restore(bytes, 2)) << "a newer schema version";
}

TEST(LibraryTest, SnapshotWithALoanToAnUnknownMemberIsRefused) {
  hmdb::Encoder enc;
  enc.varint(1);  // last_loan
  enc.varint(0);  // no members
  enc.varint(1);  // one book...
  enc.bytes("b1");
  enc.bytes("Title");
  enc.bytes("ghost");  // ...lent to a member the snapshot does not have
  enc.varint(1);
  enc.u64(0);
  Driver db(hmdb::registered_app());
  EXPECT_FALSE(db.restore(enc.take()));
}

// Two copies fed the same seeded random commands give the same replies and the same
// digest, and every book's BOOK.GET agrees with its member's LOANS. HMDB_SEED replays a run.
TEST(LibraryTest, RandomCommandsAgreeAndTheIndexMatchesTheBooks) {
  const char* env = std::getenv("HMDB_SEED");
  const uint64_t seed = env ? std::strtoull(env, nullptr, 10) : std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: HMDB_SEED=" + std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  Driver a(hmdb::registered_app()), b(hmdb::registered_app());
  const std::vector<std::string> members = {"m0", "m1", "m2", "m3"};
  for (const auto& m : members) {
    a.run_strings({"MEMBER.ADD", m, "name"});
    b.run_strings({"MEMBER.ADD", m, "name"});
  }
  std::map<std::string, std::string> last_loan;  // book -> the loan number LEND last answered
  for (int i = 0; i < 2000; i++) {
    const std::string book = "b" + std::to_string(rng() % 12);
    std::vector<std::string> cmd;
    switch (rng() % 4) {
      case 0: cmd = {"BOOK.ADD", book, "title"}; break;
      case 1: {  // mostly the book's latest loan; sometimes a stale or made-up one
        const bool latest = rng() % 4 != 0 && last_loan.count(book);
        cmd = {"RETURN", book, latest ? last_loan[book] : std::to_string(1 + rng() % 50)};
        break;
      }
      default: cmd = {"LEND", book, members[rng() % members.size()]}; break;
    }
    if (rng() % 5 == 0) { a.now_ms++; b.now_ms++; }
    const std::string reply = a.run_strings(cmd);
    ASSERT_EQ(reply, b.run_strings(cmd)) << "command " << i;
    if (cmd[0] == "LEND" && reply[0] == ':') last_loan[book] = reply.substr(1, reply.size() - 3);
  }
  ASSERT_EQ(a.digest(), b.digest());
  size_t lent = 0;
  for (const auto& m : members) {
    const std::string loans = a.run_strings({"LOANS", m});
    for (int k = 0; k < 12; k++) {
      const std::string book = "b" + std::to_string(k);
      const std::string got = a.run_strings({"BOOK.GET", book});
      if (got[0] == '-') continue;  // never added
      const bool lent_to_m = got.find(bulk("lent_to") + bulk(m)) != std::string::npos;
      EXPECT_EQ(lent_to_m, loans.find(bulk(book)) != std::string::npos) << book << " and " << m;
      lent += lent_to_m;
    }
  }
  const std::string info = a.info();
  EXPECT_NE(info.find("books_lent:" + std::to_string(lent) + "\r\n"), std::string::npos) << info;
}

}  // namespace
