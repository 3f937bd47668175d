// tests/net/peer_transport_test.cc — PeerTransport on 127.0.0.1: two transports exchanging
// messages both ways, refusals (cluster id, membership, Hello.to, protocol violations from a
// raw socket) and the refusal frames that tell the dialer why, a peer restart, the queue
// bound, and the rule by which a refused node concludes it was removed. With TLS
// (--tls-replication): members exchange messages and a 1 MiB chunk; a node with another CA's
// certificate, an expired one, or no TLS is refused at the handshake and nothing it sent is
// read; a refusal frame after the handshake reaches the dialer inside TLS.
//
// No sleeps as synchronisation: pump() polls every transport until the condition holds,
// waiting in ::poll() on their fds between rounds; its deadline only guards against a hang.
#include "net/peer_transport.h"

#include "tls_test_certs.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hmdb::net {
namespace {

using raft::Entry;
using raft::EntryType;
using raft::Message;
using raft::MessageType;

constexpr uint64_t kCluster = 77;
// Hang guard for pump(); never reached when the transport works.
constexpr uint64_t kPumpDeadlineMs = 20000;

uint64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

struct TestNode {
  raft::NodeId id = 0;
  std::unique_ptr<PeerTransport> t;
  std::vector<std::string> logs;
  std::vector<Message> got;
  std::vector<PeerRefusal> refusals;  // options.on_refused

  std::string addr() const { return "127.0.0.1:" + std::to_string(t->port()); }
  bool logged(const std::string& needle) const {
    for (const auto& l : logs)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
  PeerTransport::PeerStats stats_of(raft::NodeId peer) const {
    for (const auto& s : t->stats())
      if (s.id == peer) return s;
    return {};
  }
};

struct TlsPair {
  std::shared_ptr<TlsContext> server, client;
};

std::unique_ptr<TestNode> make_node(raft::NodeId id, uint64_t cluster = kCluster, uint16_t port = 0,
                                    uint64_t max_queue = kPeerQueueBytesMax, const TlsPair& tls = {},
                                    const std::function<void(PeerTransportOptions*)>& tweak = {}) {
  auto n = std::make_unique<TestNode>();
  n->id = id;
  PeerTransportOptions o;
  o.cluster_id = cluster;
  o.self = id;
  o.listen_host = "127.0.0.1";
  o.listen_port = port;
  o.advertise_client_addr = "127.0.0.1:" + std::to_string(7000 + id);
  if (id == 1) o.schema_oldest = 1, o.schema_newest = 2;  // the others say no versions, as older nodes
  o.max_queue_bytes_per_peer = max_queue;
  TestNode* raw = n.get();
  o.log = [raw](const std::string& line) { raw->logs.push_back(line); };
  o.on_refused = [raw](const PeerRefusal& r) { raw->refusals.push_back(r); };
  o.tls_server = tls.server;
  o.tls_client = tls.client;
  if (tweak) tweak(&o);
  Status s = PeerTransport::open(o, &n->t);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return n;
}

// Polls and flushes every node until done() holds; false if the hang guard fired.
bool pump(const std::vector<TestNode*>& nodes, const std::function<bool()>& done) {
  uint64_t deadline = now_ms() + kPumpDeadlineMs;
  while (true) {
    for (TestNode* n : nodes) {
      n->t->poll(now_ms(), &n->got);
      n->t->flush();
    }
    if (done()) return true;
    if (now_ms() > deadline) return false;
    std::vector<pollfd> fds;
    for (TestNode* n : nodes) fds.push_back(pollfd{n->t->fd(), POLLIN, 0});
    ::poll(fds.data(), fds.size(), 10);
  }
}

Message msg(MessageType type, raft::NodeId from, raft::NodeId to, uint64_t context) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.term = 3;
  m.context = context;
  if (type == MessageType::kAppend) {
    m.log_index = context;
    m.entries.push_back(Entry{3, context + 1, EntryType::kNormal, 1, "payload-" + std::to_string(context)});
    m.entries.push_back(Entry{3, context + 2, EntryType::kNoop, 0, ""});
  }
  if (type == MessageType::kSnapshot) {
    m.snapshot_meta = raft::SnapshotMeta{10, 2, raft::ConfState{{1, 2}, {3}}, 1};
    m.snapshot_chunk = std::string(1 << 20, static_cast<char>('a' + context % 26));
    m.snapshot_total = 1 << 20;
    m.snapshot_last = true;
  }
  return m;
}

// Connects a plain blocking socket to a transport, for writing hand-made bytes.
int raw_connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  return fd;
}

void raw_write(int fd, const std::string& bytes) {
  ASSERT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
}

std::string hello_frame(raft::NodeId from, raft::NodeId to, uint64_t cluster = kCluster) {
  return peer::encode_hello_frame(cluster, peer::Hello{from, to, "127.0.0.1:1", "127.0.0.1:2"});
}

std::string message_frame(const Message& m, uint64_t cluster = kCluster) {
  std::string out;
  peer::append_message_frame(&out, cluster, m);
  return out;
}

// Everything the transport writes on a raw connection until it closes it.
std::string read_until_closed(int fd) {
  std::string got;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return got;
    got.append(buf, static_cast<size_t>(n));
  }
}

// The one refusal frame in bytes (asserting that it is exactly that).
peer::Refusal refusal_in(const std::string& bytes, uint64_t cluster = kCluster) {
  peer::FrameParser parser(peer::kMaxRefusalBodyBytes);
  size_t consumed = 0;
  peer::Frame frame;
  std::string error;
  peer::Refusal r;
  EXPECT_EQ(parser.parse(bytes.data(), bytes.size(), &consumed, &frame, &error), peer::FrameParser::Result::kFrame)
      << error;
  EXPECT_EQ(consumed, bytes.size());
  EXPECT_EQ(frame.kind, peer::FrameKind::kRefusal);
  EXPECT_EQ(frame.cluster_id, cluster);
  EXPECT_TRUE(peer::decode_refusal(frame.body, &r, &error)) << error;
  return r;
}

TEST(PeerTransport, TwoNodesExchangeMessagesBothWays) {
  auto a = make_node(1);
  auto b = make_node(2);
  a->t->set_address(2, b->addr());
  b->t->set_address(1, a->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected && b->stats_of(1).connected; }));
  // Every message type from A to B, and heartbeat responses from B to A.
  std::vector<Message> sent;
  for (int round = 0; round < 3; round++)
    for (int t = 1; t <= static_cast<int>(MessageType::kReadIndexResponse); t++)
      sent.push_back(msg(static_cast<MessageType>(t), 1, 2, sent.size()));
  for (const auto& m : sent) a->t->send(m);
  for (int i = 0; i < 50; i++) b->t->send(msg(MessageType::kHeartbeatResponse, 2, 1, i));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->got.size() == sent.size() && a->got.size() == 50; }));
  for (size_t i = 0; i < sent.size(); i++) {  // in order, intact
    EXPECT_EQ(b->got[i].type, sent[i].type);
    EXPECT_EQ(b->got[i].context, sent[i].context);
    EXPECT_EQ(b->got[i].entries, sent[i].entries);
    EXPECT_EQ(b->got[i].snapshot_meta, sent[i].snapshot_meta);
    EXPECT_EQ(b->got[i].snapshot_chunk, sent[i].snapshot_chunk);
  }
  for (size_t i = 0; i < a->got.size(); i++) EXPECT_EQ(a->got[i].context, i);
  // Addresses learnt from the Hello.
  ASSERT_NE(b->t->client_addr_of(1), nullptr);
  EXPECT_EQ(*b->t->client_addr_of(1), "127.0.0.1:7001");
  ASSERT_NE(a->t->peer_addr_of(2), nullptr);
  EXPECT_EQ(*a->t->peer_addr_of(2), b->addr());
  EXPECT_EQ(a->t->client_addr_of(3), nullptr);
  // Schema versions learnt from the Hello: node 1 says 1..2, node 2 says none.
  uint32_t oldest = 0, newest = 0;
  ASSERT_TRUE(b->t->schema_versions_of(1, &oldest, &newest));
  EXPECT_EQ(oldest, 1u);
  EXPECT_EQ(newest, 2u);
  EXPECT_FALSE(a->t->schema_versions_of(2, &oldest, &newest));
  EXPECT_FALSE(a->t->schema_versions_of(3, &oldest, &newest));
  auto sa = a->stats_of(2);
  EXPECT_EQ(sa.msgs_sent, sent.size());
  EXPECT_EQ(sa.msgs_dropped, 0u);
  EXPECT_EQ(sa.queued_bytes, 0u);
  EXPECT_GT(sa.bytes_sent, 3u << 20);  // three 1 MiB snapshot chunks
  EXPECT_EQ(b->stats_of(1).msgs_received, sent.size());
  EXPECT_EQ(a->stats_of(2).msgs_received, 50u);
  EXPECT_TRUE(a->logged("connected to node 2")) << (a->logs.empty() ? "" : a->logs[0]);
}

TEST(PeerTransport, MessagesSentWhileConnectingAreDelivered) {
  auto a = make_node(1);
  auto b = make_node(2);
  a->t->poll(now_ms(), &a->got);  // the clock is known from here on
  a->t->set_address(2, b->addr());
  for (int i = 0; i < 5; i++) a->t->send(msg(MessageType::kHeartbeat, 1, 2, i));
  EXPECT_EQ(a->stats_of(2).msgs_dropped, 0u);
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->got.size() == 5; }));
  // A joining node learns where to answer from the Hello alone (no set_address on B).
  b->t->send(msg(MessageType::kHeartbeatResponse, 2, 1, 9));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->got.size() == 1; }));
  EXPECT_EQ(a->got[0].context, 9u);
}

TEST(PeerTransport, WrongClusterIdIsRefusedAndLogged) {
  auto a = make_node(1, /*cluster=*/kCluster + 1);
  auto b = make_node(2);
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] {
    a->t->send(msg(MessageType::kHeartbeat, 1, 2, 0));
    return b->logged("cluster id");
  }));
  EXPECT_TRUE(b->got.empty());
  EXPECT_GE(b->t->frames_refused_unidentified(), 1u);
  // A is told why, with B's cluster id in the frame.
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !a->refusals.empty(); }));
  EXPECT_EQ(a->refusals[0].peer, 2u);
  EXPECT_EQ(a->refusals[0].cluster_id, kCluster);
  EXPECT_EQ(a->refusals[0].refusal.reason, peer::RefusalReason::kWrongCluster);
  EXPECT_EQ(a->refusals[0].refusal.from, 2u);
  EXPECT_TRUE(a->logged("node 2 refused our connection: wrong cluster id"));
}

TEST(PeerTransport, NonMemberIsRefusedAndMemberAccepted) {
  auto a = make_node(1);
  auto b = make_node(2);
  auto c = make_node(4);
  b->t->set_members({1, 2, 3});
  a->t->set_address(2, b->addr());
  c->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get(), c.get()}, [&] {
    a->t->send(msg(MessageType::kHeartbeat, 1, 2, 1));
    c->t->send(msg(MessageType::kHeartbeat, 4, 2, 4));
    return b->logged("node 4 is not a member") && !b->got.empty();
  }));
  for (const auto& m : b->got) EXPECT_EQ(m.from, 1u);
  EXPECT_EQ(b->t->client_addr_of(4), nullptr);  // a refused node leaves no state behind
}

// A node that knows no membership with itself in it (a --join node not added yet) refuses
// nobody of its cluster: it cannot know which node will add it (docs/decisions.md, "One TCP
// connection per direction between two nodes"). Once it knows a membership, a node outside
// it is refused, an accepted connection from it included.
TEST(PeerTransport, ANodeWithNoMembershipTakesAnyNodeOfItsClusterUntilItKnowsOne) {
  auto b = make_node(2);
  auto c = make_node(4);
  c->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({b.get(), c.get()}, [&] {
    c->t->send(msg(MessageType::kHeartbeat, 4, 2, 4));
    return !b->got.empty();
  }));
  EXPECT_EQ(b->got[0].from, 4u);
  EXPECT_FALSE(b->logged("not a member"));
  b->t->set_members({1, 2, 3}, /*config_index=*/3, /*config_committed=*/true);
  ASSERT_TRUE(pump({b.get(), c.get()}, [&] { return b->logged("node 4 is no longer a member"); }));
  ASSERT_TRUE(pump({b.get(), c.get()}, [&] {
    c->t->send(msg(MessageType::kHeartbeat, 4, 2, 5));
    return b->logged("node 4 is not a member");
  }));
}

// The dialer of a refused connection learns the reason, the refuser and the membership index.
TEST(PeerTransport, RefusedOutboundConnectionReportsTheRefusal) {
  auto b = make_node(2);
  auto c = make_node(4);
  b->t->set_members({1, 2, 3}, /*config_index=*/12, /*config_committed=*/true);
  c->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({b.get(), c.get()}, [&] {
    c->t->send(msg(MessageType::kHeartbeat, 4, 2, 4));
    return !c->refusals.empty();
  }));
  const PeerRefusal& r = c->refusals[0];
  EXPECT_EQ(r.peer, 2u);
  EXPECT_EQ(r.cluster_id, kCluster);
  EXPECT_EQ(r.refusal.reason, peer::RefusalReason::kNotMember);
  EXPECT_EQ(r.refusal.from, 2u);
  EXPECT_EQ(r.refusal.to, 4u);
  EXPECT_EQ(r.refusal.config_index, 12u);
  EXPECT_EQ(r.refusal.text, "node 4 is not a member");
  EXPECT_TRUE(c->logged("node 2 refused our connection: not a member (refuser node 2, its membership at index 12"));
  EXPECT_EQ(c->stats_of(2).refusals_received, c->refusals.size());
  EXPECT_TRUE(b->got.empty());
  // An uncommitted membership says so: nobody may conclude anything from it.
  b->t->set_members({1, 2, 3}, /*config_index=*/13, /*config_committed=*/false);
  const size_t before = c->refusals.size();
  ASSERT_TRUE(pump({b.get(), c.get()}, [&] {
    c->t->send(msg(MessageType::kHeartbeat, 4, 2, 4));
    return c->refusals.size() > before && c->refusals.back().refusal.config_index == 13;
  }));
  EXPECT_EQ(c->refusals.back().refusal.reason, peer::RefusalReason::kNotMemberUncommitted);
}

// Refused at every re-dial: each refusal is reported, but logged once per reason per peer
// within the quiet time.
TEST(PeerTransport, RepeatedRefusalsAreReportedButLoggedOnce) {
  auto b = make_node(2);
  auto c = make_node(4);
  b->t->set_members({1, 2, 3}, 5, true);
  c->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({b.get(), c.get()}, [&] {
    c->t->send(msg(MessageType::kHeartbeat, 4, 2, 4));
    return c->refusals.size() >= 3;
  }));
  size_t lines = 0;
  for (const auto& l : c->logs) lines += l.find("refused our connection") != std::string::npos ? 1 : 0;
  EXPECT_EQ(lines, 1u);
}

TEST(PeerTransport, RemovingAMemberClosesItsConnection) {
  auto a = make_node(1);
  auto b = make_node(2);
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->logged("node 1 connected"); }));
  b->t->set_members({2, 3}, /*config_index=*/7, /*config_committed=*/true);
  EXPECT_TRUE(b->logged("node 1 is no longer a member"));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !a->refusals.empty(); }));
  EXPECT_EQ(a->refusals[0].refusal.reason, peer::RefusalReason::kNotMember);
  EXPECT_EQ(a->refusals[0].refusal.to, 1u);
  EXPECT_EQ(a->refusals[0].refusal.config_index, 7u);
  EXPECT_FALSE(a->stats_of(2).connected);
}

TEST(PeerTransport, RefusalProvesRemovalOnlyByANewerCommittedMembership) {
  const PeerRefusal removed{2, kCluster, peer::Refusal{peer::RefusalReason::kNotMember, 2, 4, 20, ""}};
  // Node 4 knows a membership with itself at index 10; node 2 judged by index 20 without it.
  EXPECT_TRUE(refusal_proves_removal(removed, kCluster, 4, raft::Index{10}));
  // An initial member (membership index 0) removed later.
  EXPECT_TRUE(refusal_proves_removal(removed, kCluster, 4, raft::Index{0}));
  // A new learner added at 20 or later, refused by a member that has not appended that yet.
  EXPECT_FALSE(refusal_proves_removal(removed, kCluster, 4, raft::Index{20}));
  EXPECT_FALSE(refusal_proves_removal(removed, kCluster, 4, raft::Index{25}));
  // A --join node that knows no membership with itself yet.
  EXPECT_FALSE(refusal_proves_removal(removed, kCluster, 4, std::nullopt));
  // Not the right kind of refusal, or not from whom it seems.
  for (auto reason : {peer::RefusalReason::kNotMemberUncommitted, peer::RefusalReason::kWrongCluster,
                      peer::RefusalReason::kOther}) {
    PeerRefusal r = removed;
    r.refusal.reason = reason;
    EXPECT_FALSE(refusal_proves_removal(r, kCluster, 4, raft::Index{10}));
  }
  PeerRefusal other_cluster = removed;
  other_cluster.cluster_id = kCluster + 1;
  EXPECT_FALSE(refusal_proves_removal(other_cluster, kCluster, 4, raft::Index{10}));
  PeerRefusal other_refuser = removed;
  other_refuser.refusal.from = 3;  // we dialed node 2, node 3 answered
  EXPECT_FALSE(refusal_proves_removal(other_refuser, kCluster, 4, raft::Index{10}));
  PeerRefusal other_target = removed;
  other_target.refusal.to = 5;
  EXPECT_FALSE(refusal_proves_removal(other_target, kCluster, 4, raft::Index{10}));
}

TEST(PeerTransport, HelloAddressedToAnotherNodeIsRefused) {
  auto a = make_node(1);
  auto b = make_node(3);
  a->t->set_address(2, b->addr());  // A believes node 2 listens there; it is node 3
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] {
    a->t->send(msg(MessageType::kHeartbeat, 1, 2, 0));
    return b->logged("addressed to node 2, this is node 3");
  }));
  EXPECT_TRUE(b->got.empty());
}

// Protocol violations from a hand-driven socket: each is refused, logged, never delivered,
// and the connection is closed.
TEST(PeerTransport, ProtocolViolationsAreRefused) {
  std::string bad_checksum = hello_frame(1, 2);
  bad_checksum.back() ^= 1;
  std::string old_version = hello_frame(1, 2);
  old_version[4] = 9;
  struct Case {
    std::string name, bytes, expect_log;
  } cases[] = {
      {"message before hello", message_frame(msg(MessageType::kHeartbeat, 1, 2, 0)), "a message before the hello"},
      {"from mismatch", hello_frame(11, 2) + message_frame(msg(MessageType::kHeartbeat, 5, 2, 0)),
       "message from node 5 on node 11's connection"},
      {"to mismatch", hello_frame(12, 2) + message_frame(msg(MessageType::kHeartbeat, 12, 7, 0)), "message to node 7"},
      {"second hello", hello_frame(13, 2) + hello_frame(13, 2), "a second hello"},
      {"bad checksum", bad_checksum, "checksum"},
      {"other version", old_version, "version 9 is not supported (this node speaks version 1)"},
      {"not hmdb", "GET / HTTP/1.1\r\n\r\n", "bad frame magic"},
      {"own id", hello_frame(2, 2), "claims this node's id"},
      {"oversized hello", hello_frame(1, 2).substr(0, 8) + std::string("\xff\xff\x00\x00", 4) + std::string(16, '\0'),
       "exceeds the bound"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto b = make_node(2);  // a fresh node per case: log lines are rate-limited
    int fd = raw_connect(b->t->port());
    raw_write(fd, c.bytes);
    ASSERT_TRUE(pump({b.get()}, [&] { return b->logged(c.expect_log); })) << (b->logs.empty() ? "" : b->logs.back());
    EXPECT_TRUE(b->got.empty());
    // One refusal frame saying why, then the end of the stream (not for a non-peer).
    std::string written = read_until_closed(fd);
    if (c.name == "not hmdb") {
      EXPECT_EQ(written, "");
    } else {
      peer::Refusal r = refusal_in(written);
      EXPECT_EQ(r.reason, peer::RefusalReason::kOther);
      EXPECT_EQ(r.from, 2u);
      EXPECT_NE(r.text.find(c.expect_log.substr(0, 20)), std::string::npos) << r.text;
    }
    ::close(fd);
    bool identified = b->stats_of(11).frames_refused + b->stats_of(12).frames_refused + b->stats_of(13).frames_refused == 1;
    EXPECT_EQ(b->t->frames_refused_unidentified(), identified ? 0u : 1u);
  }
}

TEST(PeerTransport, FramesArrivingByteByByteAreDelivered) {
  auto b = make_node(2);
  int fd = raw_connect(b->t->port());
  std::string bytes = hello_frame(1, 2) + message_frame(msg(MessageType::kAppend, 1, 2, 42));
  for (char c : bytes) {
    raw_write(fd, std::string(1, c));
    b->t->poll(now_ms(), &b->got);
  }
  ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == 1; }));
  EXPECT_EQ(b->got[0].context, 42u);
  EXPECT_EQ(b->got[0].entries.size(), 2u);
  ::close(fd);
}

// A message costs its receiver one recv: a plain socket that gave less than asked for is
// not asked again (that read would only hear EAGAIN; the level-triggered event announces
// later bytes). Reading on until EAGAIN, as before, costs two per message.
TEST(PeerTransport, AMessageArrivingAloneCostsOneRead) {
  auto b = make_node(2);
  int fd = raw_connect(b->t->port());
  constexpr size_t kMessages = 100;
  raw_write(fd, hello_frame(1, 2) + message_frame(msg(MessageType::kAppend, 1, 2, 0)));
  ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == 1; }));
  for (size_t i = 1; i < kMessages; i++) {
    raw_write(fd, message_frame(msg(MessageType::kHeartbeat, 1, 2, i)));  // one write(2) each
    ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == i + 1; }));
    EXPECT_EQ(b->got[i].context, i);
  }
  // Each write(2) of a small frame on loopback arrives whole: one recv each.
  EXPECT_EQ(b->t->inbound_reads(), kMessages);
  ::close(fd);
}

// send_later() queues without writing (a leader's appends wait for its disk round:
// server/disk_thread.h); the next flush() writes them, in order with what was queued before
// and after. Only B is pumped while A must not write: pump() flushes every node it polls.
TEST(PeerTransport, SendLaterWritesNothingUntilAFlush) {
  auto a = make_node(1);
  auto b = make_node(2);
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 0));
  std::vector<Message> later;
  for (uint64_t i = 1; i <= 3; i++) later.push_back(msg(MessageType::kAppend, 1, 2, i));
  a->t->send_later(std::move(later));
  EXPECT_EQ(a->stats_of(2).msgs_sent, 0u);
  EXPECT_GT(a->stats_of(2).queued_bytes, 0u);
  a->t->flush();
  EXPECT_EQ(a->stats_of(2).msgs_sent, 4u);
  EXPECT_EQ(a->stats_of(2).queued_bytes, 0u);
  ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == 4; }));
  for (uint64_t i = 0; i < 4; i++) EXPECT_EQ(b->got[i].context, i);
}

// flush_stale() writes a peer's queue only if it was queued at the previous call and nothing
// was written since: what send_later() queued waits one to two calls (the server calls it
// every consensus tick), never zero.
TEST(PeerTransport, FlushStaleWritesOnlyWhatWaitedAWholePeriod) {
  auto a = make_node(1);
  auto b = make_node(2);
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  auto later = [&](uint64_t context) {
    std::vector<Message> v;
    v.push_back(msg(MessageType::kAppend, 1, 2, context));
    a->t->send_later(std::move(v));
  };
  a->t->flush_stale();  // nothing queued: marks nothing
  later(1);
  a->t->flush_stale();  // queued just now: waits
  EXPECT_EQ(a->stats_of(2).msgs_sent, 0u);
  a->t->flush_stale();  // queued at the previous call, nothing written since: written
  EXPECT_EQ(a->stats_of(2).msgs_sent, 1u);
  // Written in between (a disk round's flush): what is queued after that waits again.
  later(2);
  a->t->flush_stale();
  a->t->flush();
  EXPECT_EQ(a->stats_of(2).msgs_sent, 2u);
  later(3);
  a->t->flush_stale();  // bytes were queued at the previous call, but some were written since
  EXPECT_EQ(a->stats_of(2).msgs_sent, 2u);
  a->t->flush_stale();
  EXPECT_EQ(a->stats_of(2).msgs_sent, 3u);
  ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == 3; }));
  for (uint64_t i = 0; i < 3; i++) EXPECT_EQ(b->got[i].context, i + 1);
}

TEST(PeerTransport, ReconnectsAndDeliversAfterPeerRestart) {
  auto a = make_node(1);
  auto b = make_node(2);
  uint16_t port = b->t->port();
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] {
    a->t->send(msg(MessageType::kHeartbeat, 1, 2, 1));
    return !b->got.empty();
  }));
  b.reset();  // the peer goes away
  ASSERT_TRUE(pump({a.get()}, [&] {
    a->t->send(msg(MessageType::kHeartbeat, 1, 2, 2));  // may be written before the close is seen
    return !a->stats_of(2).connected;
  }));
  b = make_node(2, kCluster, port);  // and comes back on the same port
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] {
    a->t->send(msg(MessageType::kHeartbeat, 1, 2, 3));
    return !b->got.empty();
  }));
  EXPECT_EQ(b->got[0].context, 3u);
  EXPECT_TRUE(a->logged("disconnected from node 2"));
  EXPECT_GT(a->stats_of(2).msgs_dropped, 0u);  // sends during the backoff
}

TEST(PeerTransport, QueueBoundDropsAndCounts) {
  auto b = make_node(2);
  Message m = msg(MessageType::kAppend, 1, 2, 0);
  m.entries[0].data.assign(1000, 'x');
  size_t frame = peer::message_frame_bytes(m);
  size_t hello = peer::encode_hello_frame(kCluster, peer::Hello{1, 2, "127.0.0.1:" + std::to_string(0), "127.0.0.1:7001", 1, 2}).size();
  auto a = make_node(1, kCluster, 0, /*max_queue=*/hello + 3 * frame + frame / 2);
  hello = peer::encode_hello_frame(kCluster, peer::Hello{1, 2, a->addr(), "127.0.0.1:7001", 1, 2}).size();
  a->t->poll(now_ms(), &a->got);
  a->t->set_address(2, b->addr());
  // Without flush() nothing is written: the bound sees every queued byte.
  for (int i = 0; i < 10; i++) a->t->send(m);
  auto s = a->stats_of(2);
  EXPECT_EQ(s.msgs_dropped, 7u);
  EXPECT_EQ(s.queued_bytes, hello + 3 * frame);
  // No address: dropped and counted too.
  a->t->send(msg(MessageType::kHeartbeat, 1, 9, 0));
  EXPECT_EQ(a->stats_of(9).msgs_dropped, 1u);
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->got.size() == 3; }));
  EXPECT_EQ(a->stats_of(2).msgs_sent, 3u);
  EXPECT_EQ(a->stats_of(2).queued_bytes, 0u);
}

TEST(PeerTransport, RefusalLogIsRateLimited) {
  auto b = make_node(2);
  uint64_t start = now_ms();
  constexpr int kConnections = 30;
  for (int i = 0; i < kConnections; i++) {
    int fd = raw_connect(b->t->port());
    raw_write(fd, "nope");
    ASSERT_TRUE(pump({b.get()}, [&] { return b->t->frames_refused_unidentified() == static_cast<uint64_t>(i + 1); }));
    ::close(fd);
  }
  uint64_t windows = 1 + (now_ms() - start) / kLogWindowMs;
  EXPECT_LE(b->logs.size(), windows * kLogLinesPerWindow);
  EXPECT_GE(b->logs.size(), 1u);
}

// A free port nobody listens on (connects to it are refused).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(PeerTransport, FailedDialsAreLoggedOnceAndRetriedUntilThePeerAppears) {
  auto a = make_node(1);
  uint16_t port = closed_port();
  a->t->set_address(2, "127.0.0.1:" + std::to_string(port));
  ASSERT_TRUE(pump({a.get()}, [&] { return a->logged("could not connect to node 2"); }));
  // The retry is driven by fd() alone: it becomes readable when the backoff ends, so a
  // server loop that only polls on readiness retries. (Generous bound: backoff is 50 ms.)
  pollfd pfd{a->t->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10000), 1);
  auto b = make_node(2, kCluster, port);
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  size_t failures = 0;
  for (const auto& l : a->logs) failures += l.find("could not connect") != std::string::npos ? 1 : 0;
  EXPECT_EQ(failures, 1u);
  EXPECT_TRUE(a->logged("failed attempts"));
}

TEST(PeerTransport, StalledConnectionIsClosedAndItsQueueDropped) {
  // A listener that never accepts or reads: the handshake completes in the kernel's
  // backlog, then the socket buffers fill up.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  auto a = make_node(1);
  a->t->set_address(2, "127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  ASSERT_TRUE(pump({a.get()}, [&] { return a->stats_of(2).connected; }));
  for (int i = 0; i < 200 && a->stats_of(2).queued_bytes == 0; i++) {
    a->t->send(msg(MessageType::kSnapshot, 1, 2, i));
    a->t->flush();
  }
  ASSERT_GT(a->stats_of(2).queued_bytes, 0u) << "the socket buffers never filled";
  // The clock jumps past the stall timeout (poll takes the caller's clock).
  a->t->poll(now_ms() + kWriteStallTimeoutMs + 1, &a->got);
  auto s = a->stats_of(2);
  EXPECT_FALSE(s.connected);
  EXPECT_EQ(s.queued_bytes, 0u);
  EXPECT_GE(s.msgs_dropped, 1u);
  EXPECT_TRUE(a->logged("no write progress"));
  ::close(listener);
}

TEST(PeerTransport, DialThatDoesNotCompleteTimesOut) {
  // A listener whose accept queue is full: Linux drops further SYNs, so a dial hangs the way
  // it does behind a firewall that drops packets.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 0), 0);
  socklen_t len = sizeof addr;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
  int filler = raw_connect(ntohs(addr.sin_port));  // fills the queue of one
  auto a = make_node(1);
  uint64_t t0 = now_ms();
  a->t->poll(t0, &a->got);
  a->t->set_address(2, "127.0.0.1:" + std::to_string(ntohs(addr.sin_port)));
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 0));  // queued while connecting
  a->t->poll(t0, &a->got);
  if (a->stats_of(2).connected) GTEST_SKIP() << "this kernel completed the handshake despite the full queue";
  a->t->poll(t0 + kConnectTimeoutMs, &a->got);
  EXPECT_TRUE(a->logged("connect timed out")) << (a->logs.empty() ? "" : a->logs.back());
  EXPECT_EQ(a->stats_of(2).msgs_dropped, 1u);
  ::close(filler);
  ::close(listener);
}

TEST(PeerTransport, ConnectionWithoutHelloIsClosedAfterTheTimeout) {
  auto b = make_node(2);
  int fd = raw_connect(b->t->port());
  raw_write(fd, "HMP");  // a valid start, then silence
  b->t->poll(now_ms(), &b->got);  // accepts it
  b->t->poll(now_ms() + kHelloTimeoutMs + 1, &b->got);
  EXPECT_TRUE(b->logged("no hello within"));
  char byte;
  EXPECT_LE(::recv(fd, &byte, 1, 0), 0);
  ::close(fd);
}

TEST(PeerTransport, NewestConnectionFromANodeReplacesTheOlder) {
  auto b = make_node(2);
  int old_fd = raw_connect(b->t->port());
  raw_write(old_fd, hello_frame(1, 2));
  ASSERT_TRUE(pump({b.get()}, [&] { return b->logged("node 1 connected"); }));
  b->logs.clear();
  int new_fd = raw_connect(b->t->port());
  raw_write(new_fd, hello_frame(1, 2) + message_frame(msg(MessageType::kHeartbeat, 1, 2, 5)));
  ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == 1; }));
  char byte;
  EXPECT_EQ(::recv(old_fd, &byte, 1, 0), 0);  // the stale one was closed
  EXPECT_EQ(b->got[0].context, 5u);
  ::close(old_fd);
  ::close(new_fd);
}

TEST(PeerTransport, OwnAddressIsRememberedButNeverDialed) {
  auto a = make_node(1);
  a->t->set_address(1, a->addr());
  a->t->send(msg(MessageType::kHeartbeat, 1, 1, 0));
  for (int i = 0; i < 10; i++) a->t->poll(now_ms(), &a->got);
  ASSERT_NE(a->t->peer_addr_of(1), nullptr);
  EXPECT_EQ(*a->t->peer_addr_of(1), a->addr());
  EXPECT_FALSE(a->stats_of(1).connected);
  EXPECT_EQ(a->stats_of(1).msgs_dropped, 1u);
  EXPECT_TRUE(a->logs.empty()) << a->logs[0];
  EXPECT_TRUE(a->got.empty());
}

TEST(PeerTransport, ForgettingAnAddressClosesTheConnection) {
  auto a = make_node(1);
  auto b = make_node(2);
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  a->t->set_address(2, "");
  EXPECT_FALSE(a->stats_of(2).connected);
  EXPECT_EQ(a->t->peer_addr_of(2), nullptr);
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 0));
  EXPECT_EQ(a->stats_of(2).msgs_dropped, 1u);
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->logged("node 1 closed its connection"); }));
}

// Throughput on loopback, single thread driving both ends (the figures in the report).
// Heavy: runs only with HMDB_PEER_BENCH=1.
TEST(PeerTransport, ThroughputBench) {
  if (std::getenv("HMDB_PEER_BENCH") == nullptr) GTEST_SKIP() << "set HMDB_PEER_BENCH=1";
  for (size_t payload : {size_t{0}, size_t{1024}, size_t{1} << 20}) {
    auto a = make_node(1);
    auto b = make_node(2);
    a->t->set_address(2, b->addr());
    ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
    const size_t total = payload >= (1u << 20) ? 2000 : 200000;
    Message m = msg(MessageType::kAppend, 1, 2, 0);
    m.entries.resize(1);
    m.entries[0].data.assign(payload, 'p');
    size_t sent = 0, received = 0;
    uint64_t start = now_ms();
    timespec cpu0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    ASSERT_TRUE(pump({a.get(), b.get()}, [&] {
      // Keep at most ~8 MiB queued, like raft's inflight window would.
      while (sent < total && a->stats_of(2).queued_bytes < (8u << 20)) {
        for (int i = 0; i < 16 && sent < total; i++, sent++) a->t->send(m);
      }
      received += b->got.size();
      b->got.clear();
      return received == total;
    }));
    uint64_t ms = std::max<uint64_t>(1, now_ms() - start);
    timespec cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    double cpu_ms = (cpu1.tv_sec - cpu0.tv_sec) * 1e3 + (cpu1.tv_nsec - cpu0.tv_nsec) / 1e6;
    double mb = static_cast<double>(a->stats_of(2).bytes_sent) / (1 << 20);
    // CPU time is the steadier figure on a shared machine; it covers both ends (and the kernel).
    std::printf("payload %7zu B: %zu msgs, wall %llu ms (%.0f msgs/s, %.0f MiB/s), cpu %.0f ms (%.2f us/msg, %.0f MiB/cpu-s)\n",
                payload, total, static_cast<unsigned long long>(ms), total * 1000.0 / ms, mb * 1000.0 / ms, cpu_ms,
                cpu_ms * 1000.0 / total, mb * 1000.0 / cpu_ms);
    EXPECT_EQ(a->stats_of(2).msgs_dropped, 0u);
  }
}

TEST(PeerTransport, AcceptPausesWhenOutOfFdsAndResumes) {
  auto b = make_node(2);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // the client's fd, before the limit
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(b->t->port());
  ::inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  // No free fd below the limit: accept() fails with EMFILE.
  int lowest_free = ::dup(0);
  ::close(lowest_free);
  rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  rlimit tight = old_limit;
  tight.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  uint64_t t0 = now_ms();
  b->t->poll(t0, &b->got);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old_limit), 0);
  EXPECT_TRUE(b->logged("not accepting peers")) << (b->logs.empty() ? "" : b->logs[0]);
  // After the pause (the listener is not watched meanwhile, so the loop does not spin on
  // it) the connection is accepted and served.
  raw_write(fd, hello_frame(1, 2) + message_frame(msg(MessageType::kHeartbeat, 1, 2, 8)));
  b->t->poll(t0 + kAcceptPauseMs, &b->got);
  ASSERT_TRUE(pump({b.get()}, [&] { return b->got.size() == 1; }));
  ::close(fd);
}

TEST(PeerTransport, OpenRejectsBadOptions) {
  std::unique_ptr<PeerTransport> t;
  PeerTransportOptions o;
  o.self = 0;
  EXPECT_FALSE(PeerTransport::open(o, &t).is_ok());
  o.self = 1;
  o.listen_host = "not-an-ip";
  EXPECT_FALSE(PeerTransport::open(o, &t).is_ok());
}

// ---- addresses: names (resolved off the loop) and IPv6 ----------------------------------

// A transport listening on listen_host whose peer names are looked up by `lookup`.
std::unique_ptr<TestNode> make_node_at(raft::NodeId id, const std::string& listen_host, Resolver::Lookup lookup = {}) {
  auto n = std::make_unique<TestNode>();
  n->id = id;
  PeerTransportOptions o;
  o.cluster_id = kCluster;
  o.self = id;
  o.listen_host = listen_host;
  o.advertise_client_addr = "client-of-" + std::to_string(id) + ":7000";
  o.lookup = std::move(lookup);
  TestNode* raw = n.get();
  o.log = [raw](const std::string& line) { raw->logs.push_back(line); };
  Status s = PeerTransport::open(o, &n->t);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return n;
}

bool have_ipv6_loopback() {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

TEST(PeerTransport, APeerNamedByAHostNameIsResolvedOffTheLoopBeforeEachDial) {
  // The lookup records which thread ran it and answers with the real resolver.
  struct Seen {
    std::mutex mu;
    std::vector<std::thread::id> threads;
  };
  auto seen = std::make_shared<Seen>();
  auto lookup = [seen](const std::string& host, uint16_t port, SocketAddress* out) {
    {
      std::lock_guard<std::mutex> lock(seen->mu);
      seen->threads.push_back(std::this_thread::get_id());
    }
    return resolve(host, port, out);
  };
  auto a = make_node_at(1, "127.0.0.1", lookup);
  auto b = make_node_at(2, "127.0.0.1");
  a->t->set_address(2, "localhost:" + std::to_string(b->t->port()));
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 5));  // dropped: no connection yet
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  a->t->send(msg(MessageType::kAppend, 1, 2, 6));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !b->got.empty(); }));
  EXPECT_EQ(b->got[0].context, 6u);
  EXPECT_EQ(a->stats_of(2).addr, "localhost:" + std::to_string(b->t->port()));
  {
    std::lock_guard<std::mutex> lock(seen->mu);
    ASSERT_EQ(seen->threads.size(), 1u);
    EXPECT_NE(seen->threads[0], std::this_thread::get_id()) << "DNS never runs on the loop's thread";
  }
  // A reconnect looks the name up again (a peer that moved is found at its new address).
  b.reset();
  ASSERT_TRUE(pump({a.get()}, [&] { return !a->stats_of(2).connected; }));
  ASSERT_TRUE(pump({a.get()}, [&] {
    std::lock_guard<std::mutex> lock(seen->mu);
    return seen->threads.size() >= 2;
  }));
}

TEST(PeerTransport, AnUnresolvableNameIsAFailedDialLoggedOnceAndRetried) {
  auto b = make_node_at(2, "127.0.0.1");
  const uint16_t port = b->t->port();
  auto lookups = std::make_shared<std::atomic<int>>(0);
  // db-2.test does not resolve for the first three lookups, then it is 127.0.0.1.
  auto lookup = [lookups](const std::string& host, uint16_t p, SocketAddress* out) {
    if (host != "db-2.test") return Status::invalid_argument("unexpected lookup of " + host);
    if (lookups->fetch_add(1) < 3) return Status::invalid_argument("cannot resolve db-2.test: Name or service not known");
    return numeric_address("127.0.0.1", p, out) ? Status::ok() : Status::invalid_argument("?");
  };
  auto a = make_node_at(1, "127.0.0.1", lookup);
  a->t->set_address(2, "db-2.test:" + std::to_string(port));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  EXPECT_GE(lookups->load(), 4);
  size_t failures = 0;
  for (const auto& l : a->logs) failures += l.find("cannot dial node 2 at db-2.test:") != std::string::npos ? 1 : 0;
  EXPECT_EQ(failures, 1u) << "a run of failed dials is logged once";
  EXPECT_TRUE(a->logged("Name or service not known"));
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 9));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !b->got.empty(); }));
}

TEST(PeerTransport, Ipv6PeersExchangeMessages) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "this machine has no IPv6 loopback (::1 cannot be bound)";
  auto a = make_node_at(1, "::1");
  auto b = make_node_at(2, "::1");
  const std::string b_addr = "[::1]:" + std::to_string(b->t->port());
  a->t->set_address(2, b_addr);
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  a->t->send(msg(MessageType::kAppend, 1, 2, 11));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !b->got.empty(); }));
  EXPECT_EQ(b->got[0].context, 11u);
  // b learnt a's peer address from its Hello (bracketed) and dials it back.
  ASSERT_NE(b->t->peer_addr_of(1), nullptr);
  EXPECT_EQ(*b->t->peer_addr_of(1), "[::1]:" + std::to_string(a->t->port()));
  b->t->send(msg(MessageType::kHeartbeat, 2, 1, 12));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !a->got.empty(); }));
  EXPECT_TRUE(b->logged("node 1 connected from [::1]:"));
}

TEST(PeerTransport, AnIpv4NodeDialsAnIpv6PeerWithoutBindingItsSource) {
  if (!have_ipv6_loopback()) GTEST_SKIP() << "this machine has no IPv6 loopback (::1 cannot be bound)";
  auto a = make_node_at(1, "127.0.0.1");  // its dials bind 127.0.0.1 only towards IPv4 peers
  auto b = make_node_at(2, "::1");
  a->t->set_address(2, "[::1]:" + std::to_string(b->t->port()));
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 1));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  a->t->send(msg(MessageType::kHeartbeat, 1, 2, 2));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return !b->got.empty(); }));
}

TEST(PeerTransport, ListenHostMustBeAnAddress) {
  std::unique_ptr<PeerTransport> t;
  PeerTransportOptions o;
  o.self = 1;
  o.listen_host = "localhost";  // the server resolves --peer-addr's name before it opens the transport
  Status s = PeerTransport::open(o, &t);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("not an IPv4 or IPv6 address: localhost"), std::string::npos) << s.to_string();
}

// ---- TLS (--tls-replication) -----------------------------------------------------------------

// The contexts a node makes from one identity's files (server side requires a client
// certificate, as server/node.cc's load_tls makes them for peers).
TlsPair tls_pair(const char* cert_pem, const char* key_pem) {
  const TlsFiles files = testing::write_test_tls_files(cert_pem, key_pem);
  TlsPair p;
  Status s = TlsContext::create(TlsContext::Role::kServer, files, TlsAuthClients::kYes, &p.server);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  s = TlsContext::create(TlsContext::Role::kClient, files, TlsAuthClients::kYes, &p.client);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  std::filesystem::remove_all(std::filesystem::path(files.cert_file).parent_path());
  return p;
}

TEST(PeerTransportTls, MembersExchangeMessagesOverMutualTls) {
  const TlsPair tls = tls_pair(testing::kNodeCertPem, testing::kNodeKeyPem);
  auto a = make_node(1, kCluster, 0, kPeerQueueBytesMax, tls);
  auto b = make_node(2, kCluster, 0, kPeerQueueBytesMax, tls);
  a->t->set_address(2, b->addr());
  b->t->set_address(1, a->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [] { return true; }));  // the first poll dials
  for (uint64_t i = 0; i < 50; i++) {
    a->t->send(msg(MessageType::kAppend, 1, 2, i));
    b->t->send(msg(MessageType::kAppendResponse, 2, 1, i));
    ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->got.size() == i + 1 && a->got.size() == i + 1; }))
        << "message " << i;
  }
  // A 1 MiB snapshot chunk: many TLS records, written as the socket takes them.
  a->t->send(msg(MessageType::kSnapshot, 1, 2, 7));
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return b->got.size() == 51; }));
  EXPECT_EQ(b->got.back().snapshot_chunk, std::string(1 << 20, static_cast<char>('a' + 7)));
  EXPECT_EQ(a->t->tls_handshakes_refused(), 0u);
  EXPECT_EQ(b->t->tls_handshakes_refused(), 0u);
}

TEST(PeerTransportTls, NodesWithoutTheClustersCertificateAreRefusedAtTheHandshake) {
  const TlsPair tls = tls_pair(testing::kNodeCertPem, testing::kNodeKeyPem);
  auto member = make_node(1, kCluster, 0, kPeerQueueBytesMax, tls);
  // Another CA's certificate, an expired one of the right CA, and no TLS at all. Each would
  // be a member if it got past the handshake (no membership is set: any node of the cluster id).
  auto stranger = make_node(3, kCluster, 0, kPeerQueueBytesMax, tls_pair(testing::kStrangerCertPem, testing::kStrangerKeyPem));
  auto expired = make_node(4, kCluster, 0, kPeerQueueBytesMax, tls_pair(testing::kExpiredCertPem, testing::kExpiredKeyPem));
  auto plain = make_node(5);
  std::vector<TestNode*> all = {member.get(), stranger.get(), expired.get(), plain.get()};
  for (TestNode* n : {stranger.get(), expired.get(), plain.get()}) n->t->set_address(1, member->addr());
  ASSERT_TRUE(pump(all, [] { return true; }));
  for (TestNode* n : {stranger.get(), expired.get(), plain.get()}) n->t->send(msg(MessageType::kVote, n->id, 1, 1));
  ASSERT_TRUE(pump(all, [&] {
    return member->logged("certificate verify failed: unable to get local issuer certificate") &&
           member->logged("certificate verify failed: certificate has expired") &&
           member->logged("TLS handshake failed: wrong version number");
  })) << ::testing::PrintToString(member->logs);
  // Each refused node dials again (after its backoff) and is refused again.
  ASSERT_TRUE(pump(all, [&] { return member->t->tls_handshakes_refused() >= 9; }));
  EXPECT_TRUE(member->got.empty()) << "a message got past the handshake";
  EXPECT_FALSE(member->logged("node 3 connected") || member->logged("node 4 connected") ||
               member->logged("node 5 connected"))
      << "a Hello was read from a node without the certificate";
}

TEST(PeerTransportTls, ARefusalFrameTravelsInsideTls) {
  // A member's refusal after the handshake (not a member) reaches the dialer as on plaintext:
  // the removed-node rule (refusal_proves_removal) depends on it.
  const TlsPair tls = tls_pair(testing::kNodeCertPem, testing::kNodeKeyPem);
  auto a = make_node(1, kCluster, 0, kPeerQueueBytesMax, tls);
  auto c = make_node(3, kCluster, 0, kPeerQueueBytesMax, tls);
  a->t->set_members({1, 2}, 9, true);
  c->t->set_address(1, a->addr());
  ASSERT_TRUE(pump({a.get(), c.get()}, [] { return true; }));
  c->t->send(msg(MessageType::kVote, 3, 1, 1));
  ASSERT_TRUE(pump({a.get(), c.get()}, [&] { return !c->refusals.empty(); }));
  EXPECT_EQ(c->refusals[0].refusal.reason, peer::RefusalReason::kNotMember);
  EXPECT_EQ(c->refusals[0].refusal.config_index, 9u);
  EXPECT_EQ(a->t->tls_handshakes_refused(), 0u);
  EXPECT_TRUE(a->got.empty());
}

TEST(PeerTransportTls, PlaintextLeftInsideOpenSslAtTheReadBudgetIsReadWithoutNewTraffic) {
  // A TLS record is decrypted whole; a read smaller than it leaves the rest inside OpenSSL,
  // where no epoll event announces it. A connection that stops at its read budget right
  // then must still deliver those messages at the next poll, not when the sender next
  // writes (a follower would have sat on the leader's appends until the next heartbeat).
  // Bounds of 1 byte per poll and 64-byte reads put every read at that edge.
  const TlsPair tls = tls_pair(testing::kNodeCertPem, testing::kNodeKeyPem);
  auto a = make_node(1, kCluster, 0, kPeerQueueBytesMax, tls);
  auto b = make_node(2, kCluster, 0, kPeerQueueBytesMax, tls, [](PeerTransportOptions* o) {
    o->read_bytes_per_poll_max = 1;
    o->read_chunk_bytes = 64;
  });
  a->t->set_address(2, b->addr());
  ASSERT_TRUE(pump({a.get(), b.get()}, [&] { return a->stats_of(2).connected; }));
  // Five messages in one flush: one write, one record of several hundred bytes.
  for (uint64_t i = 0; i < 5; i++) a->t->send(msg(MessageType::kAppend, 1, 2, i));
  a->t->flush();
  // Only b polls from here: a sends nothing more that could wake the connection.
  const uint64_t deadline = now_ms() + kPumpDeadlineMs;
  while (b->got.size() < 5 && now_ms() < deadline) {
    b->t->poll(now_ms(), &b->got);
    if (b->got.size() < 5 && !b->t->reads_pending()) {
      pollfd p{b->t->fd(), POLLIN, 0};
      ::poll(&p, 1, 10);  // nothing inside OpenSSL: the rest is still on its way in the kernel
    }
  }
  ASSERT_EQ(b->got.size(), 5u) << "messages stuck inside OpenSSL after the read budget";
  for (uint64_t i = 0; i < 5; i++) EXPECT_EQ(b->got[i].entries.at(0).data, "payload-" + std::to_string(i));
  EXPECT_FALSE(b->t->reads_pending());
}

TEST(PeerTransport, ReadBoundsOfZeroAreRefused) {
  for (int which = 0; which < 2; which++) {
    PeerTransportOptions o;
    o.cluster_id = kCluster;
    o.self = 1;
    (which == 0 ? o.read_bytes_per_poll_max : o.read_chunk_bytes) = 0;
    std::unique_ptr<PeerTransport> t;
    Status s = PeerTransport::open(o, &t);
    EXPECT_FALSE(s.is_ok());
    EXPECT_NE(s.to_string().find("a read bound of 0 bytes"), std::string::npos) << s.to_string();
  }
}

}  // namespace
}  // namespace hmdb::net
