// tests/core/request_table_test.cc — the request table alone: an id's first outcome is found
// again, eviction by leader time and by bytes is oldest first and the same from the same
// inputs, long replies are kept by length only, the snapshot encoding round-trips and refuses
// what is malformed, and the state digest covers the table (core/state.h).
#include "core/request_table.h"

#include <gtest/gtest.h>

#include <string>

#include "core/state.h"
#include "sim/register_app.h"

namespace hmdb::core {
namespace {

constexpr uint64_t kT0 = 1'700'000'000'000;

std::string saved(const RequestTable& t) {
  Encoder enc;
  t.save(enc);
  return enc.take();
}

TEST(RequestTable, FindsTheFirstOutcome) {
  RequestTable t;
  EXPECT_EQ(t.find("a"), nullptr);
  t.insert("a", kT0, 7, 0x1234, Protocol::kResp2, ":1\r\n");
  t.insert("b", kT0 + 1, 7, 0x99, Protocol::kResp3, "+OK\r\n");
  const RequestTable::Entry* a = t.find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->reply, ":1\r\n");
  EXPECT_TRUE(a->kept());
  EXPECT_EQ(a->index, 7u);
  EXPECT_EQ(a->command_hash, 0x1234u);
  EXPECT_EQ(t.find("b")->protocol, Protocol::kResp3);
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.bytes(), RequestTable::entry_bytes("a", 4) + RequestTable::entry_bytes("b", 5));
}

TEST(RequestTable, ALongReplyIsKeptByLengthOnly) {
  RequestTable t;
  const std::string kept(kRequestReplyKeptBytesMax, 'x');
  const std::string longer(kRequestReplyKeptBytesMax + 1, 'x');
  t.insert("kept", kT0, 1, 1, Protocol::kResp2, kept);
  t.insert("long", kT0, 1, 2, Protocol::kResp2, longer);
  EXPECT_TRUE(t.find("kept")->kept());
  EXPECT_FALSE(t.find("long")->kept());
  EXPECT_EQ(t.find("long")->reply_bytes, longer.size());
  EXPECT_TRUE(t.find("long")->reply.empty());
}

TEST(RequestTable, EntriesExpireByLeaderTimeOldestFirst) {
  RequestTable t;
  t.insert("a", kT0, 1, 0, Protocol::kResp2, ":1\r\n");
  t.insert("b", kT0 + 1000, 2, 0, Protocol::kResp2, ":2\r\n");
  t.expire(kT0 + kRequestRetentionMs - 1);
  EXPECT_EQ(t.size(), 2u) << "younger than the retention: kept";
  t.expire(kT0 + kRequestRetentionMs);
  EXPECT_EQ(t.find("a"), nullptr);
  EXPECT_NE(t.find("b"), nullptr);
  EXPECT_EQ(t.stats().evicted_by_age, 1u);
  t.expire(kT0 + 1000 + kRequestRetentionMs);
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.bytes(), 0u);
}

TEST(RequestTable, ALaggingLeaderClockKeepsLaterEntriesBehindAYoungerOne) {
  // A later leader's clock may be behind an earlier one's: eviction follows log order and
  // stops at the first entry that is not old enough, on every node alike.
  RequestTable t;
  t.insert("early-but-stamped-late", kT0 + 5000, 1, 0, Protocol::kResp2, ":1\r\n");
  t.insert("later-but-stamped-early", kT0, 2, 0, Protocol::kResp2, ":2\r\n");
  t.expire(kT0 + kRequestRetentionMs);
  EXPECT_EQ(t.size(), 2u);
  t.expire(kT0 + 5000 + kRequestRetentionMs);
  EXPECT_TRUE(t.empty());
  t.insert("c", kT0, 3, 0, Protocol::kResp2, ":3\r\n");
  t.expire(kT0 - 1);  // a batch stamped before the entry: its age is not negative, just young
  EXPECT_EQ(t.size(), 1u);
}

TEST(RequestTable, TheByteBoundEvictsTheOldest) {
  RequestTable t;
  const std::string reply(kRequestReplyKeptBytesMax, 'r');
  const uint64_t per = RequestTable::entry_bytes("id-000000", reply.size());
  const uint64_t fit = kRequestTableBytesMax / per;
  for (uint64_t i = 0; i <= fit; i++) {
    char id[16];
    std::snprintf(id, sizeof id, "id-%06llu", static_cast<unsigned long long>(i));
    t.insert(id, kT0, i + 1, i, Protocol::kResp2, reply);
    ASSERT_LE(t.bytes(), kRequestTableBytesMax);
  }
  EXPECT_EQ(t.size(), fit);
  EXPECT_EQ(t.stats().evicted_by_bytes, 1u);
  EXPECT_EQ(t.find("id-000000"), nullptr) << "the oldest went first";
  EXPECT_NE(t.find("id-000001"), nullptr);
  EXPECT_EQ(t.oldest().id, "id-000001");
}

TEST(RequestTable, SnapshotRoundTripKeepsEverythingAndTheDigest) {
  RequestTable t;
  t.insert("a", kT0, 3, 11, Protocol::kResp2, ":1\r\n");
  t.insert(std::string(kRequestIdBytesMax, 'i'), kT0 + 2, 4, 12, Protocol::kResp3, "%0\r\n");
  t.insert("long", kT0 + 3, 4, 13, Protocol::kResp2, std::string(kRequestReplyKeptBytesMax + 5, 'x'));
  const std::string bytes = saved(t);
  RequestTable u;
  Decoder in(bytes);
  ASSERT_TRUE(u.load(in));
  EXPECT_TRUE(in.done());
  EXPECT_EQ(u.digest(), t.digest());
  EXPECT_EQ(saved(u), bytes);
  EXPECT_EQ(u.size(), 3u);
  EXPECT_EQ(u.bytes(), t.bytes());
  EXPECT_FALSE(u.find("long")->kept());
  EXPECT_EQ(u.find("long")->reply_bytes, kRequestReplyKeptBytesMax + 5);
  EXPECT_EQ(u.find(std::string(kRequestIdBytesMax, 'i'))->protocol, Protocol::kResp3);
  // The loaded table goes on like the original.
  u.insert("b", kT0 + 4, 5, 14, Protocol::kResp2, "+OK\r\n");
  t.insert("b", kT0 + 4, 5, 14, Protocol::kResp2, "+OK\r\n");
  EXPECT_EQ(u.digest(), t.digest());
  u.expire(kT0 + kRequestRetentionMs);
  t.expire(kT0 + kRequestRetentionMs);
  EXPECT_EQ(u.digest(), t.digest());
  EXPECT_EQ(u.size(), 3u);
}

TEST(RequestTable, EveryTruncatedEncodingIsRefused) {
  RequestTable t;
  t.insert("a", kT0, 3, 11, Protocol::kResp2, ":1\r\n");
  t.insert("b", kT0, 3, 12, Protocol::kResp2, "+OK\r\n");
  const std::string bytes = saved(t);
  for (size_t n = 0; n < bytes.size(); n++) {
    RequestTable u;
    Decoder in(std::string_view(bytes).substr(0, n));
    EXPECT_FALSE(u.load(in)) << "prefix of " << n << " bytes";
    EXPECT_TRUE(u.empty());
  }
}

// One encoded entry, field by field, to build malformed tables.
std::string table_of(std::vector<std::string> entries, uint8_t format = kRequestTableFormat) {
  Encoder e;
  e.u8(format);
  e.varint(entries.size());
  for (const auto& x : entries) e.raw(x);
  return e.take();
}
std::string entry(std::string_view id, uint64_t index, uint8_t protocol, uint64_t reply_bytes, std::string_view reply) {
  Encoder e;
  e.bytes(id);
  e.u64(kT0);
  e.u64(index);
  e.u64(0);
  e.u8(protocol);
  e.varint(reply_bytes);
  e.bytes(reply);
  return e.take();
}

TEST(RequestTable, MalformedTablesAreRefused) {
  auto loads = [](const std::string& bytes) {
    RequestTable t;
    Decoder in(bytes);
    const bool ok = t.load(in);
    EXPECT_EQ(ok, !t.empty() || bytes == table_of({}));
    return ok;
  };
  EXPECT_TRUE(loads(table_of({})));
  EXPECT_TRUE(loads(table_of({entry("a", 1, 2, 4, ":1\r\n"), entry("b", 1, 3, 4, ":1\r\n")})));
  EXPECT_FALSE(loads(table_of({}, 2))) << "unknown format";
  EXPECT_FALSE(loads(table_of({entry("", 1, 2, 4, ":1\r\n")}))) << "empty id";
  EXPECT_FALSE(loads(table_of({entry(std::string(kRequestIdBytesMax + 1, 'i'), 1, 2, 4, ":1\r\n")}))) << "long id";
  EXPECT_FALSE(loads(table_of({entry("a", 1, 2, 4, ":1\r\n"), entry("a", 2, 2, 4, ":1\r\n")}))) << "an id twice";
  EXPECT_FALSE(loads(table_of({entry("a", 1, 4, 4, ":1\r\n")}))) << "unknown protocol";
  EXPECT_FALSE(loads(table_of({entry("a", 1, 2, 5, ":1\r\n")}))) << "reply of another length";
  EXPECT_FALSE(loads(table_of({entry("a", 1, 2, kRequestReplyKeptBytesMax + 1, ":1\r\n")})))
      << "a long reply is not kept";
  EXPECT_FALSE(loads(table_of({entry("a", 2, 2, 4, ":1\r\n"), entry("b", 1, 2, 4, ":1\r\n")}))) << "index goes back";
}

TEST(RequestTable, TheStateDigestCoversTheTable) {
  sim::RegisterHost app;
  RequestTable t;
  EXPECT_EQ(state_digest(app, t).value, app.digest()) << "an empty table leaves the app's digest as it was";
  t.insert("a", kT0, 1, 0, Protocol::kResp2, ":1\r\n");
  const uint64_t with_a = state_digest(app, t).value;
  EXPECT_NE(with_a, app.digest());
  RequestTable other;
  other.insert("a", kT0, 1, 0, Protocol::kResp2, ":2\r\n");
  EXPECT_NE(state_digest(app, other).value, with_a) << "another first reply is another state";
}

TEST(RequestTable, StateSavesAndLoadsBothParts) {
  sim::RegisterHost app;
  std::vector<std::string_view> words = {"SET", "k", "5"};
  std::string reply;
  Reply r(&reply);
  std::string why;
  ASSERT_TRUE(app.apply(Args(words.data(), words.size()), ApplyContext{kT0, 1, sim::RegisterApp::kSchemaVersion}, r, &why));
  RequestTable t;
  t.insert("a", kT0, 1, 0, Protocol::kResp2, "+OK\r\n");
  Encoder enc;
  save_state(app, t, enc);
  const std::string payload = enc.take();

  sim::RegisterHost app2;
  RequestTable t2;
  Decoder in(payload);
  ASSERT_EQ(load_state(app2, t2, in, sim::RegisterApp::kSchemaVersion, kStateFormatNewest), LoadState::kOk);
  EXPECT_EQ(state_digest(app2, t2).value, state_digest(app, t).value);

  // A payload of snapshot formats 1 and 2 is the app's alone: its table is empty.
  Encoder old;
  app.save(old);
  const std::string app_only = old.take();
  Decoder in_old(app_only);
  ASSERT_EQ(load_state(app2, t2, in_old, sim::RegisterApp::kSchemaVersion, 2), LoadState::kOk);
  EXPECT_TRUE(t2.empty());
  EXPECT_EQ(state_digest(app2, t2).value, app.digest());

  // Read as the other format, each is refused.
  Decoder wrong(app_only);
  EXPECT_EQ(load_state(app2, t2, wrong, sim::RegisterApp::kSchemaVersion, kStateFormatWithRequests),
            LoadState::kBadRequests);
  Decoder wrong2(payload);
  EXPECT_EQ(load_state(app2, t2, wrong2, sim::RegisterApp::kSchemaVersion, 2), LoadState::kBadApp);
  EXPECT_TRUE(t2.empty());
}

}  // namespace
}  // namespace hmdb::core
