// tests/core/schema_test.cc — the active schema version as replicated state: raised only by
// a committed activation (batch item, core/apply.h), which answers the node that proposed
// it; entries stamped with the version their writes were validated under; a transaction
// queued under the old version refused at EXEC; snapshots carry the active version
// (core/state.h), older payloads take their header's, one this binary does not read is
// refused with nothing loaded.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/apply.h"
#include "core/state.h"
#include "hmdb/app.h"
#include "replica_harness.h"

namespace hmdb::core {
namespace {

// Version 1: SET k v. Version 2 adds PUT k v (SET, answering the old value).
struct Pair {
  static constexpr std::string_view kName = "pair";
  static constexpr uint32_t kSchemaVersion = 2;
  struct State {
    std::map<std::string, std::string, std::less<>> values;
  };
  struct KeyValue {
    std::string_view key, value;
  };
  static bool parse(Args a, KeyValue& out, std::string&) {
    out = KeyValue{a[1], a[2]};
    return true;
  }
  static void set(State& s, const KeyValue& a, const ApplyContext&, Reply& r) {
    s.values[std::string(a.key)] = a.value;
    r.ok();
  }
  static void put(State& s, const KeyValue& a, const ApplyContext&, Reply& r) {
    std::string& v = s.values[std::string(a.key)];
    r.bulk(v);
    v = a.value;
  }
  static void get(const State& s, Args a, const QueryContext&, Reply& r) {
    auto it = s.values.find(a[1]);
    if (it == s.values.end()) r.null();
    else r.bulk(it->second);
  }
  static void define(Commands<State>& c) {
    c.write("SET", 3, &parse, &set);
    c.write("PUT", 3, &parse, &put);
    c.query("GET", 2, &get);
    c.version(2).added("PUT");
  }
  static void save(const State& s, Encoder& out) {
    out.varint(s.values.size());
    for (const auto& [k, v] : s.values) {
      out.bytes(k);
      out.bytes(v);
    }
  }
  static bool load(State& s, Decoder& in, uint32_t) {
    const uint64_t n = in.count<std::string_view, std::string_view>();
    for (uint64_t i = 0; i < n && in.ok(); i++) {
      std::string k(in.bytes());
      s.values[k] = in.bytes();
    }
    return in.ok();
  }
};

using Node = TestNode<AppHost<Pair>>;

// The schema versions the entries persisted since `from` were stamped with.
std::vector<uint32_t> stamps(const Node& n, size_t from = 0) {
  std::vector<uint32_t> out;
  for (size_t i = from; i < n.host.persisted.size(); i++)
    if (n.host.persisted[i].type == raft::EntryType::kNormal) out.push_back(n.host.persisted[i].schema_version);
  return out;
}

TEST(Schema, AnActivationRaisesTheActiveVersionWhenItApplies) {
  Node n;
  EXPECT_EQ(n.app.active_schema_version(), 1u) << "an empty state is at version 1";
  n.send({{"SET", "a", "1"}, {"PUT", "a", "2"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n-ERR PUT is a command of schema version 2; the cluster's active schema version is 1\r\n");
  EXPECT_EQ(stamps(n), std::vector<uint32_t>{1});

  const size_t before = n.host.persisted.size();
  n.send({{"ACTIVATE", "2"}, {"SET", "b", "1"}});
  EXPECT_EQ(n.out(), "") << "the activation waits for its entry, the write behind it too";
  EXPECT_EQ(n.app.active_schema_version(), 1u) << "proposing changes nothing";
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+OK\r\n");
  EXPECT_EQ(n.app.active_schema_version(), 2u);
  // The activation and the SET queued behind it: one entry, under the version the SET was
  // validated under (the activation's own words mean nothing under any version).
  EXPECT_EQ(stamps(n, before), std::vector<uint32_t>{1});

  n.send({{"PUT", "a", "3"}, {"ACTIVATE", "2"}, {"ACTIVATE", "1"}});
  for (int turn = 0; turn < 3; turn++) n.replica->end_turn();  // a barrier holds the next one
  EXPECT_EQ(n.out(),
            "$1\r\n1\r\n-ERR schema version 2 is not above the active version 2\r\n"
            "-ERR schema version 1 is not above the active version 2\r\n");
  EXPECT_EQ(stamps(n, before).back(), 2u) << "writes validated under version 2 are logged under it";
  EXPECT_EQ(n.app.active_schema_version(), 2u);
}

TEST(Schema, ATransactionQueuedUnderTheOldVersionIsRefusedAtExec) {
  Node n;
  n.send({{"MULTI"}, {"SET", "a", "1"}});
  n.send({{"ACTIVATE", "2"}}, 2);
  n.replica->end_turn();
  EXPECT_EQ(n.out(2), "+OK\r\n");
  n.send({{"EXEC"}, {"GET", "a"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(),
            "+OK\r\n+QUEUED\r\n-EXECABORT Transaction discarded because the cluster's schema version changed while "
            "it was queued\r\n$-1\r\n");
  // Queued under the version in force throughout: it runs.
  n.send({{"MULTI"}, {"PUT", "a", "1"}, {"EXEC"}});
  n.replica->end_turn();
  EXPECT_EQ(n.out(), "+OK\r\n+QUEUED\r\n*1\r\n$0\r\n\r\n");
}

TEST(Schema, ApplyingAnActivationThisBinaryDoesNotReadStopsBeforeIt) {
  AppHost<Pair> app;
  BatchBuilder b(1);
  std::string_view set[] = {"SET", "a", "1"};
  b.add(Args(set, 3));
  b.add_activation(3);
  b.add(Args(set, 3));
  ApplyScratch scratch;
  const ApplyResult r = apply_batch(app, b.finish(), 5, 1, nullptr, scratch);
  EXPECT_EQ(r.status, ApplyStatus::kUnsupportedSchema);
  EXPECT_TRUE(r.activation);
  EXPECT_EQ(r.schema_version, 3u);
  EXPECT_EQ(r.commands, 1u) << "what came before it was applied";
  EXPECT_EQ(app.active_schema_version(), 1u);
}

TEST(Schema, ASnapshotCarriesTheActiveVersion) {
  AppHost<Pair> app;
  app.state().values["k"] = "v";
  app.set_active_schema_version(2);
  RequestTable requests;
  Encoder enc;
  save_state(app, requests, enc);
  const std::string payload = enc.take();
  EXPECT_EQ(payload.substr(0, 4), std::string("\x02\0\0\0", 4)) << "u32 active version first";

  AppHost<Pair> loaded;
  RequestTable t;
  Decoder in(payload);
  ASSERT_EQ(load_state(loaded, t, in, 2, kStateFormatNewest), LoadState::kOk);
  EXPECT_EQ(loaded.active_schema_version(), 2u);
  EXPECT_EQ(loaded.digest(), app.digest());

  // Format 3 (no active version): the header's schema version, that of the binary that wrote
  // it and logged every entry under it.
  Encoder old;
  requests.save(old);
  app.save(old);
  const std::string v3 = old.take();
  Decoder in3(v3);
  AppHost<Pair> from3;
  ASSERT_EQ(load_state(from3, t, in3, 2, kStateFormatWithRequests), LoadState::kOk);
  EXPECT_EQ(from3.active_schema_version(), 2u);
  Decoder in3b(v3);
  ASSERT_EQ(load_state(from3, t, in3b, 1, kStateFormatWithRequests), LoadState::kOk);
  EXPECT_EQ(from3.active_schema_version(), 1u);

  // An active version this binary does not read: refused, nothing kept.
  std::string newer = payload;
  newer[0] = 3;
  Decoder in_newer(newer);
  uint32_t active = 0;
  EXPECT_EQ(load_state(loaded, t, in_newer, 2, kStateFormatNewest, &active), LoadState::kUnsupportedActive);
  EXPECT_EQ(active, 3u);
  EXPECT_TRUE(loaded.state().values.empty());
  EXPECT_EQ(loaded.active_schema_version(), 1u);
  EXPECT_EQ(unreadable_schema(loaded, 3), "schema version 3 of app 'pair'; this binary reads versions 1..2: upgrade the binary");
  EXPECT_EQ(unreadable_schema(loaded, 2), "");
  // Cut inside the active version.
  Decoder cut(std::string_view(payload).substr(0, 3));
  EXPECT_EQ(load_state(loaded, t, cut, 2, kStateFormatNewest), LoadState::kBadRequests);
}

}  // namespace
}  // namespace hmdb::core
