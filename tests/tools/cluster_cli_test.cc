// tests/tools/cluster_cli_test.cc — the parts of `hmdb cluster` that decide where a command
// goes and what it prints: HOST:PORT parsing, -MOVED and retryable-error recognition,
// CLUSTER MEMBERS and INFO parsing, and the command line. (Reply decoding is
// net::decode_reply: tests/net/resp_reply_test.cc.)
#include "tools/cluster_cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace hmdb::tools {
namespace {

TEST(ParseHostPort, AcceptsIpv4AndNames) {
  HostPort hp;
  std::string error;
  ASSERT_TRUE(parse_host_port("127.0.0.1:7379", &hp, &error)) << error;
  EXPECT_EQ(hp.host, "127.0.0.1");
  EXPECT_EQ(hp.port, 7379);
  EXPECT_EQ(hp.to_string(), "127.0.0.1:7379");
  ASSERT_TRUE(parse_host_port("db-2.example:1", &hp, &error)) << error;
  EXPECT_EQ(hp.host, "db-2.example");
  EXPECT_EQ(hp.port, 1);
  ASSERT_TRUE(parse_host_port("10.0.0.3:65535", &hp, &error)) << error;
  EXPECT_EQ(hp.port, 65535);
}

TEST(ParseHostPort, RejectsMalformed) {
  for (const char* bad : {"", "7379", "127.0.0.1", ":7379", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:73a9", "127.0.0.1: 7379", "::1:7379",
                          "127.0.0.1:99999999999999999999"}) {
    HostPort hp;
    std::string error;
    EXPECT_FALSE(parse_host_port(bad, &hp, &error)) << "'" << bad << "'";
    EXPECT_FALSE(error.empty()) << "'" << bad << "'";
  }
}

TEST(ParseMoved, NamesTheLeader) {
  HostPort leader;
  ASSERT_TRUE(parse_moved("MOVED 0 127.0.0.1:7381", &leader));
  EXPECT_EQ(leader, (HostPort{"127.0.0.1", 7381}));
  ASSERT_TRUE(parse_moved("MOVED 3999 node1:7379", &leader));
  EXPECT_EQ(leader, (HostPort{"node1", 7379}));
  // An IPv6 host as Redis (and hmdb) write it, without brackets; with them too.
  ASSERT_TRUE(parse_moved("MOVED 12739 ::1:7379", &leader));
  EXPECT_EQ(leader, (HostPort{"::1", 7379}));
  ASSERT_TRUE(parse_moved("MOVED 12739 2001:db8::7:7380", &leader));
  EXPECT_EQ(leader, (HostPort{"2001:db8::7", 7380}));
  ASSERT_TRUE(parse_moved("MOVED 1 [::1]:7381", &leader));
  EXPECT_EQ(leader, (HostPort{"::1", 7381}));
}

TEST(ParseMoved, RejectsOtherErrors) {
  HostPort leader;
  for (const char* bad : {"", "MOVED", "MOVED 0", "MOVED 0 ", "MOVED x 127.0.0.1:7379", "MOVED 0 127.0.0.1",
                          "ASK 0 127.0.0.1:7379", "moved 0 127.0.0.1:7379", "ERR MOVED 0 127.0.0.1:7379",
                          "CLUSTERDOWN no leader known; retry", "MOVED 0 127.0.0.1:7379 extra"})
    EXPECT_FALSE(parse_moved(bad, &leader)) << "'" << bad << "'";
}

TEST(RetryableErrors, ClusterDownAndLostWritesOnly) {
  EXPECT_TRUE(is_retryable_error("CLUSTERDOWN no leader known; retry"));
  EXPECT_TRUE(is_retryable_error("CLUSTERDOWN"));
  EXPECT_TRUE(is_retryable_error("ERR write lost in a leadership change; retry"));
  EXPECT_TRUE(is_retryable_error("TRYAGAIN leadership transfer in progress; retry"));
  EXPECT_TRUE(is_retryable_error("ERR the leader is busy (too many uncommitted entries); retry"));
  EXPECT_FALSE(is_retryable_error("ERR learner 4 is 5000 entries behind (at most 1000 allowed)"));
  EXPECT_FALSE(is_retryable_error("ERR unknown node 7"));
  EXPECT_FALSE(is_retryable_error("MOVED 0 127.0.0.1:7379"));
  EXPECT_FALSE(is_retryable_error("CLUSTERDOWNX"));
  EXPECT_FALSE(is_retryable_error(""));
}

TEST(ParseMembers, LinesOfTheSpec) {
  std::vector<Member> m;
  std::string error;
  ASSERT_TRUE(parse_members("1 127.0.0.1:7379 127.0.0.1:17379 voter leader myself\n"
                            "2 127.0.0.1:7380 127.0.0.1:17380 voter\r\n"
                            "\n"
                            "4 127.0.0.1:7382 127.0.0.1:17382 learner",
                            &m, &error))
      << error;
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].id, 1u);
  EXPECT_TRUE(m[0].voter);
  EXPECT_TRUE(m[0].leader);
  EXPECT_TRUE(m[0].myself);
  EXPECT_EQ(m[0].client_addr, "127.0.0.1:7379");
  EXPECT_EQ(m[0].peer_addr, "127.0.0.1:17379");
  EXPECT_EQ(m[1].id, 2u);
  EXPECT_FALSE(m[1].leader);
  EXPECT_FALSE(m[1].myself);
  EXPECT_EQ(m[2].id, 4u);
  EXPECT_FALSE(m[2].voter);
  ASSERT_TRUE(parse_members("", &m, &error));
  EXPECT_TRUE(m.empty());
}

TEST(ParseMembers, RejectsMalformedLines) {
  for (const char* bad : {"1 a:1 b:2", "x a:1 b:2 voter", "0 a:1 b:2 voter", "1 a:1 b:2 observer",
                          "1 a:1 b:2 voter boss", "1 a:1 b:2 voter leader extra", "1 a:1 b:2 leader voter"}) {
    std::vector<Member> m;
    std::string error;
    EXPECT_FALSE(parse_members(bad, &m, &error)) << bad;
    EXPECT_NE(error.find("malformed"), std::string::npos) << bad;
  }
}

TEST(InfoField, FindsExactKeys) {
  const std::string info =
      "# Replication\r\nrole:follower\r\nnode_id:2\r\nleader_id:1\r\nleader_addr:127.0.0.1:7379\r\n"
      "term:5\r\nterm_x:9\r\n";
  EXPECT_EQ(info_field(info, "role"), "follower");
  EXPECT_EQ(info_field(info, "leader_addr"), "127.0.0.1:7379");
  EXPECT_EQ(info_field(info, "term"), "5");  // not term_x
  EXPECT_EQ(info_field(info, "missing"), "");
  EXPECT_EQ(info_field(info, "# Replication"), "");
}

// ---------------------------------------------------------------------------------------
// send_to_leader against scripted nodes

// How often the fake node's thread checks whether it should stop.
constexpr int kFakePollMs = 20;

// A scripted RESP node on 127.0.0.1 (the kernel picks the port). Each request (its words
// joined by spaces) is answered with respond(n, words), n counting requests from 0; an
// empty answer closes the connection without a reply. One connection at a time, which is
// how the tool talks.
class FakeNode {
 public:
  using Responder = std::function<std::string(int n, const std::string& words)>;
  explicit FakeNode(Responder respond) : respond_(std::move(respond)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof a;
    EXPECT_EQ(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(listen_fd_, 8), 0);
    EXPECT_EQ(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &length), 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeNode() {
    stop_ = true;
    thread_.join();
    ::close(listen_fd_);
  }
  HostPort addr() const { return HostPort{"127.0.0.1", port_}; }
  int requests() const { return requests_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, kFakePollMs) <= 0) continue;
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      talk(fd);
      ::close(fd);
    }
  }
  void talk(int fd) {
    std::string in;
    char chunk[4096];
    while (!stop_) {
      Reply request;
      const int64_t used = net::decode_reply(in, &request);
      if (used < 0) return;
      if (used > 0) {
        in.erase(0, static_cast<size_t>(used));
        std::string words;
        for (const auto& e : request.elements) words += (words.empty() ? "" : " ") + e.text;
        const std::string answer = respond_(requests_++, words);
        if (answer.empty()) return;
        if (::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(answer.size())) return;
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, kFakePollMs) <= 0) continue;
      const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return;
      in.append(chunk, static_cast<size_t>(n));
    }
  }

  Responder respond_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

std::string moved_to(const FakeNode& node) { return "-MOVED 0 " + node.addr().to_string() + "\r\n"; }

constexpr int kTestReplyTimeoutMs = 5000;

TEST(SendToLeader, FollowsMovedToTheLeader) {
  std::string seen;
  FakeNode leader([&](int, const std::string& words) {
    seen = words;
    return std::string("+OK\r\n");
  });
  FakeNode follower([&](int, const std::string&) { return moved_to(leader); });
  Reply reply;
  HostPort answered_by;
  std::string error;
  ASSERT_TRUE(send_to_leader(follower.addr(), {"CLUSTER", "PROMOTE", "4"}, kTestReplyTimeoutMs, &reply, &answered_by,
                             &error))
      << error;
  EXPECT_FALSE(reply.is_error());
  EXPECT_EQ(reply.text, "OK");
  EXPECT_EQ(answered_by, leader.addr());
  EXPECT_EQ(seen, "CLUSTER PROMOTE 4");
  EXPECT_EQ(follower.requests(), 1);
  EXPECT_EQ(leader.requests(), 1);
}

TEST(SendToLeader, RetriesClusterDownThenSucceeds) {
  FakeNode node([](int n, const std::string&) {
    return std::string(n < 2 ? "-CLUSTERDOWN no leader known; retry\r\n" : "+OK\r\n");
  });
  Reply reply;
  HostPort answered_by;
  std::string error;
  ASSERT_TRUE(send_to_leader(node.addr(), {"CLUSTER", "REMOVE", "3"}, kTestReplyTimeoutMs, &reply, &answered_by, &error))
      << error;
  EXPECT_EQ(reply.text, "OK");
  EXPECT_EQ(node.requests(), 3);
}

TEST(SendToLeader, AServerErrorIsReturnedNotRetried) {
  FakeNode node([](int, const std::string&) { return std::string("-ERR node 9 is not a voter\r\n"); });
  Reply reply;
  HostPort answered_by;
  std::string error;
  ASSERT_TRUE(send_to_leader(node.addr(), {"CLUSTER", "TRANSFER", "9"}, kTestReplyTimeoutMs, &reply, &answered_by,
                             &error));
  EXPECT_TRUE(reply.is_error());
  EXPECT_EQ(reply.text, "ERR node 9 is not a voter");
  EXPECT_EQ(node.requests(), 1);
}

TEST(SendToLeader, ARedirectLoopStopsAtTheBound) {
  FakeNode* b_ptr = nullptr;
  FakeNode a([&](int, const std::string&) { return moved_to(*b_ptr); });
  FakeNode b([&](int, const std::string&) { return moved_to(a); });
  b_ptr = &b;
  Reply reply;
  HostPort answered_by;
  std::string error;
  EXPECT_FALSE(send_to_leader(a.addr(), {"CLUSTER", "PROMOTE", "4"}, kTestReplyTimeoutMs, &reply, &answered_by, &error));
  EXPECT_NE(error.find("redirects"), std::string::npos) << error;
  EXPECT_EQ(a.requests() + b.requests(), kMaxRedirects + 1);
}

TEST(SendToLeader, AClosedConnectionIsAnUnknownOutcomeAndNotRetried) {
  FakeNode node([](int, const std::string&) { return std::string(); });
  Reply reply;
  HostPort answered_by;
  std::string error;
  EXPECT_FALSE(send_to_leader(node.addr(), {"CLUSTER", "ADDLEARNER", "4", "127.0.0.1:1", "127.0.0.1:2"},
                              kTestReplyTimeoutMs, &reply, &answered_by, &error));
  EXPECT_NE(error.find("unknown"), std::string::npos) << error;
  EXPECT_EQ(node.requests(), 1);
}

TEST(SendToLeader, AnUnreachableLeaderSendsItBackToTheFirstNode) {
  // A bound socket that does not listen: connecting to it is refused, with no port race.
  const int dead = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof a;
  ASSERT_EQ(::bind(dead, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::getsockname(dead, reinterpret_cast<sockaddr*>(&a), &length), 0);
  const std::string dead_addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  // The first node still names the dead leader, then (a new leader elected: itself) says OK.
  FakeNode node([&](int n, const std::string&) {
    return n == 0 ? "-MOVED 0 " + dead_addr + "\r\n" : std::string("+OK\r\n");
  });
  Reply reply;
  HostPort answered_by;
  std::string error;
  EXPECT_TRUE(send_to_leader(node.addr(), {"CLUSTER", "PROMOTE", "4"}, kTestReplyTimeoutMs, &reply, &answered_by,
                             &error))
      << error;
  EXPECT_EQ(reply.text, "OK");
  EXPECT_EQ(answered_by, node.addr());
  EXPECT_EQ(node.requests(), 2);
  ::close(dead);
}

// Runs the parser on words given as strings.
int parse(std::vector<std::string> words, ClusterArgs* out) {
  words.insert(words.begin(), "cluster");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return parse_cluster_args(static_cast<int>(argv.size()), argv.data(), out);
}

TEST(ParseDigest, IndexDigestAndTheVersionItWasComputedAt) {
  Reply r;
  r.type = '$';
  r.text = "1020 aeedab0f2be9573f 2";
  uint64_t index = 0;
  std::string digest;
  uint32_t version = 9;
  ASSERT_TRUE(parse_digest(r, &index, &digest, &version));
  EXPECT_EQ(index, 1020u);
  EXPECT_EQ(digest, "aeedab0f2be9573f");
  EXPECT_EQ(version, 2u);
  r.text = "7 00ff\r\n";  // an hmdb from before versions
  ASSERT_TRUE(parse_digest(r, &index, &digest, &version));
  EXPECT_EQ(digest, "00ff");
  EXPECT_EQ(version, 0u);
  for (const char* bad : {"", "7", "x 00ff 1", "7 00ff 0", "7 00ff v2", "7 00ff 4294967296"}) {
    r.text = bad;
    EXPECT_FALSE(parse_digest(r, &index, &digest, &version)) << bad;
  }
}

TEST(Verify, TheAnswersToDigestAt) {
  Reply r;
  r.type = '$';
  MarkRow row;
  r.text = "1020 aeedab0f2be9573f 1 2 1..2";
  ASSERT_TRUE(parse_mark_reply(r, 1020, &row));
  EXPECT_EQ(row.state, MarkRow::State::kDigest);
  EXPECT_EQ(row.digest, "aeedab0f2be9573f");
  EXPECT_EQ(row.hashed_at, 1u);
  EXPECT_EQ(row.active, 2u);
  EXPECT_EQ(row.oldest, 1u);
  EXPECT_EQ(row.newest, 2u);
  EXPECT_FALSE(parse_mark_reply(r, 1021, &row)) << "the digest of another mark";
  r.text = "pending 1000";
  ASSERT_TRUE(parse_mark_reply(r, 1020, &row));
  EXPECT_EQ(row.state, MarkRow::State::kPending);
  EXPECT_EQ(row.applied, 1000u);
  r.text = "none 2000 1500";
  ASSERT_TRUE(parse_mark_reply(r, 1020, &row));
  EXPECT_EQ(row.state, MarkRow::State::kNone);
  EXPECT_EQ(row.applied, 2000u);
  EXPECT_EQ(row.oldest_kept, 1500u);
  r.text = "failed 1030";
  ASSERT_TRUE(parse_mark_reply(r, 1020, &row));
  EXPECT_EQ(row.state, MarkRow::State::kFailed);
  EXPECT_EQ(row.applied, 1030u);
  for (const char* bad : {"", "pending", "pending x", "none 1", "failed", "1020 ab 1 1", "1020 ab 0 1 1..1", "1020 ab 1 1 1-2",
                          "1020 ab 1 1 1..", "later 5"}) {
    r.text = bad;
    EXPECT_FALSE(parse_mark_reply(r, 1020, &row)) << bad;
  }
  r.type = '-';
  r.text = "ERR unknown subcommand";
  ASSERT_TRUE(parse_mark_reply(r, 1020, &row));
  EXPECT_EQ(row.state, MarkRow::State::kError);
  EXPECT_EQ(row.error, "ERR unknown subcommand");
}

TEST(Verify, TheAnswersToDigestAtUsers) {
  Reply r;
  r.type = '$';
  std::string users, error;
  r.text = "users 00c0ffee12345678";
  ASSERT_TRUE(parse_users_reply(r, &users, &error)) << error;
  EXPECT_EQ(users, "00c0ffee12345678");
  r.text = "users none";
  ASSERT_TRUE(parse_users_reply(r, &users, &error)) << error;
  EXPECT_EQ(users, "");
  for (const char* bad : {"", "users", "users ", "users abc", "users 00c0ffee1234567g", "records none", "pending 5"}) {
    r.text = bad;
    EXPECT_FALSE(parse_users_reply(r, &users, &error)) << bad;
  }
  r.type = '-';
  r.text = "ERR usage: CLUSTER DIGEST AT <log index of a digest mark> [RECORDS]";
  EXPECT_FALSE(parse_users_reply(r, &users, &error));
  EXPECT_EQ(error, r.text) << "an older server's answer is kept as the reason";
}

TEST(Verify, TheAclUsersAreComparedAtTheMarkToo) {
  const std::vector<Member> members = {{1, "a:1", "", true, true, false}, {2, "b:1", "", true, false, false},
                                       {3, "c:1", "", true, false, false}};
  auto row = [](const std::string& users) { return UsersRow{true, users, ""}; };
  UsersVerdict v = compare_users(members, {row("aa"), row("aa"), row("aa")});
  EXPECT_TRUE(v.identical);
  EXPECT_TRUE(v.replicated);
  EXPECT_TRUE(v.lines.empty());
  v = compare_users(members, {row(""), row(""), row("")});
  EXPECT_TRUE(v.identical);
  EXPECT_FALSE(v.replicated) << "none logged: each node's own file";
  v = compare_users(members, {row("aa"), row("bb"), row("aa")});
  EXPECT_FALSE(v.identical);
  ASSERT_EQ(v.lines.size(), 1u);
  EXPECT_EQ(v.lines[0], "node 2: ACL users bb, the others' aa");
  v = compare_users(members, {row("aa"), row(""), row("aa")});
  EXPECT_FALSE(v.identical);
  EXPECT_EQ(v.lines.at(0), "node 2: ACL users none replicated, the others' aa");
  // An older node cannot say: not compared, and said so, but no verdict against it.
  v = compare_users(members, {row("aa"), UsersRow{false, "", "ERR usage"}, row("aa")});
  EXPECT_TRUE(v.identical);
  ASSERT_EQ(v.lines.size(), 1u);
  EXPECT_EQ(v.lines[0], "node 2: ACL users not compared: ERR usage");
}

TEST(Verify, IdenticalOnlyWhenEveryMemberHashedTheSameStateAtTheActiveVersion) {
  std::vector<Member> members = {{1, "127.0.0.1:7379", "127.0.0.1:17379", true, true, false},
                                 {2, "127.0.0.1:7380", "127.0.0.1:17380", true, false, false},
                                 {3, "127.0.0.1:7381", "127.0.0.1:17381", false, false, false}};
  auto digest = [](const char* d, uint32_t hashed_at = 2, uint32_t active = 2) {
    MarkRow row;
    row.state = MarkRow::State::kDigest;
    row.digest = d;
    row.hashed_at = hashed_at;
    row.active = active;
    row.oldest = 1;
    row.newest = 2;
    return row;
  };
  MarkVerdict v = compare_marks(9, members, {digest("aa"), digest("aa"), digest("aa")});
  EXPECT_TRUE(v.identical);
  EXPECT_EQ(v.version, 2u);
  EXPECT_TRUE(v.lines.empty());

  v = compare_marks(9, members, {digest("aa"), digest("aa"), digest("bb")});
  EXPECT_FALSE(v.identical);
  ASSERT_EQ(v.lines.size(), 1u);
  EXPECT_EQ(v.lines[0], "node 3 (learner, 127.0.0.1:7381) DIFFERS: digest bb, where nodes 1, 2 hashed aa");
  v = compare_marks(9, members, {digest("bb"), digest("aa"), digest("aa")});
  ASSERT_EQ(v.lines.size(), 1u);
  EXPECT_EQ(v.lines[0].substr(0, 33), "node 1 (voter, 127.0.0.1:7379) DI") << "the minority is named, leader or not";

  MarkRow behind;
  behind.state = MarkRow::State::kPending;
  behind.applied = 7;
  MarkRow gone;
  gone.state = MarkRow::State::kNone;
  gone.applied = 30;
  gone.oldest_kept = 12;
  MarkRow silent;
  silent.error = "timed out";
  v = compare_marks(9, members, {digest("aa"), behind, gone});
  EXPECT_FALSE(v.identical) << "a member behind is not verified";
  ASSERT_EQ(v.lines.size(), 2u);
  EXPECT_EQ(v.lines[0], "node 2 (voter, 127.0.0.1:7380) is behind: it has applied up to index 7, not yet the mark");
  EXPECT_NE(v.lines[1].find("node 3 (learner, 127.0.0.1:7381) has no digest at index 9 (applied 30)"), std::string::npos);
  MarkRow hashing;
  hashing.state = MarkRow::State::kPending;
  hashing.applied = 12;
  MarkRow failed;
  failed.state = MarkRow::State::kFailed;
  v = compare_marks(9, members, {hashing, digest("aa"), failed});
  EXPECT_FALSE(v.identical);
  ASSERT_EQ(v.lines.size(), 2u);
  EXPECT_EQ(v.lines[0], "node 1 (voter, 127.0.0.1:7379) was still hashing its state at the mark (applied 12)");
  EXPECT_EQ(v.lines[1], "node 3 (learner, 127.0.0.1:7381) could not take its digest at the mark (its log says why)");
  v = compare_marks(9, members, {digest("aa"), digest("aa"), silent});
  EXPECT_FALSE(v.identical);
  ASSERT_EQ(v.lines.size(), 1u);
  EXPECT_EQ(v.lines[0], "node 3 (learner, 127.0.0.1:7381) did not answer: timed out");
  // A binary that cannot express its state at the active version hashed at its own.
  v = compare_marks(9, members, {digest("aa"), digest("aa"), digest("cc", 3, 2)});
  EXPECT_FALSE(v.identical);
  ASSERT_EQ(v.lines.size(), 1u);
  EXPECT_EQ(v.lines[0].substr(0, 48), "node 3 (learner, 127.0.0.1:7381) cannot compare:");
  // Two against two: no majority, said so.
  members.push_back({4, "127.0.0.1:7382", "127.0.0.1:17382", true, false, false});
  v = compare_marks(9, members, {digest("aa"), digest("bb"), digest("aa"), digest("bb")});
  ASSERT_EQ(v.lines.size(), 2u);
  EXPECT_NE(v.lines[0].find("(no majority)"), std::string::npos);
}

TEST(Verify, WhereTwoMembersDifferIsNamedFromTheirRecordSketches) {
  std::vector<Member> members = {{1, "127.0.0.1:7379", "127.0.0.1:17379", true, true, false},
                                 {2, "127.0.0.1:7380", "127.0.0.1:17380", true, false, false},
                                 {3, "127.0.0.1:7381", "127.0.0.1:17381", true, false, false}};
  MarkRow a, b;
  a.state = b.state = MarkRow::State::kDigest;
  a.hashed_at = b.hashed_at = a.active = b.active = a.oldest = b.oldest = a.newest = b.newest = 1;
  a.digest = "aa";
  b.digest = "bb";
  const MarkVerdict v = compare_marks(9, members, {a, b, a});
  ASSERT_EQ(v.differs.size(), 1u);
  EXPECT_EQ(v.differs[0], (std::pair<size_t, size_t>{1, 0})) << "node 2 against the largest group's first";

  // Sketches as two nodes' digest children take them (core/record_sketch.h), through the
  // reply that carries them.
  auto s1 = std::make_unique<core::RecordSketch>(), s2 = std::make_unique<core::RecordSketch>();
  for (int i = 0; i < 1000; i++) {
    s1->add("k" + std::to_string(i), static_cast<uint64_t>(i));
    if (i != 17 && i != 400) s2->add("k" + std::to_string(i), static_cast<uint64_t>(i == 3 ? 99 : i));
  }
  for (int i = 0; i < 12; i++) s2->add("new" + std::to_string(i), 1);
  Reply reply;
  reply.type = '$';
  reply.text = "records " + core::to_hex(s2->encode());
  auto parsed = std::make_unique<core::RecordSketch>();
  bool has = false;
  std::string error;
  ASSERT_TRUE(parse_records_reply(reply, parsed.get(), &has, &error)) << error;
  ASSERT_TRUE(has);
  const std::vector<std::string> lines =
      record_lines("node 2", "node 1", core::compare_sketches(*parsed, *s1), kVerifyRecordsShown);
  ASSERT_EQ(lines.size(), 1 + kVerifyRecordsShown + 1);
  EXPECT_NE(lines[0].find("15 records differ:"), std::string::npos) << lines[0];
  std::string all;
  for (const std::string& l : lines) all += l + "\n";
  EXPECT_NE(all.find("  ... and 5 more"), std::string::npos) << all;
  size_t named = 0;
  for (size_t i = 1; i <= kVerifyRecordsShown; i++) {
    const std::string& l = lines[i];
    if (l.starts_with("  k3: held differently (record hash 0000000000000063 on node 2, 0000000000000003 on node 1)") ||
        l.starts_with("  k17: only on node 1 (missing on node 2)") || l.starts_with("  k400: only on node 1") ||
        (l.starts_with("  new") && l.find(": only on node 2 (missing on node 1)") != std::string::npos))
      named++;
  }
  EXPECT_EQ(named, kVerifyRecordsShown) << all;

  reply.text = "records none";
  ASSERT_TRUE(parse_records_reply(reply, parsed.get(), &has, &error));
  EXPECT_FALSE(has);
  reply.text = "records 00ff";
  EXPECT_FALSE(parse_records_reply(reply, parsed.get(), &has, &error));
  reply.type = '-';
  reply.text = "ERR usage: CLUSTER DIGEST AT <log index of a digest mark>";  // an older server
  EXPECT_FALSE(parse_records_reply(reply, parsed.get(), &has, &error));
  EXPECT_EQ(error, reply.text);
  // Equal records, different digests: the difference is outside what the app lists.
  const std::vector<std::string> same = record_lines("node 2", "node 1", core::compare_sketches(*s1, *s1), 10);
  ASSERT_EQ(same.size(), 1u);
  EXPECT_NE(same[0].find("the same on both"), std::string::npos);
}

TEST(Schema, AMembersVersionsFromItsInfo) {
  SchemaView v = schema_view_of("# Server\r\napp:ledger\r\nschema_version:3\r\nschema_version_oldest:2\r\n"
                                "schema_version_active:2\r\n");
  EXPECT_TRUE(v.known);
  EXPECT_EQ(v.oldest, 2u);
  EXPECT_EQ(v.newest, 3u);
  EXPECT_EQ(v.active, 2u);
  v = schema_view_of("# Server\r\nschema_version:1\r\n");  // an hmdb from before version ranges
  EXPECT_TRUE(v.known);
  EXPECT_EQ(v.oldest, 1u);
  EXPECT_EQ(v.newest, 1u);
  EXPECT_EQ(v.active, 0u) << "not said";
  EXPECT_FALSE(schema_view_of("# Server\r\napp:kv\r\n").known);
}

TEST(Schema, ABlockedMemberIsNamed) {
  SchemaView v = schema_view_of("# Server\r\nschema_version:1\r\nschema_version_oldest:1\r\n"
                                "schema_version_active:1\r\nschema_blocked_at_index:0\r\nschema_blocked_version:0\r\n");
  EXPECT_EQ(v.blocked_index, 0u);
  EXPECT_EQ(blocked_text(3, v), "");
  v = schema_view_of("# Server\r\nschema_version:1\r\nschema_version_oldest:1\r\nschema_version_active:1\r\n"
                     "schema_blocked_at_index:812\r\nschema_blocked_version:2\r\n");
  EXPECT_EQ(v.blocked_index, 812u);
  EXPECT_EQ(v.blocked_version, 2u);
  EXPECT_EQ(blocked_text(3, v),
            "node 3: BLOCKED at log index 812: that entry needs schema version 2, and its binary reads 1..1. It applies "
            "nothing more, does not lead and refuses clients, but stores the log and votes: restart it with a binary that "
            "reads version 2, or remove it.");
  // An hmdb from before blocking says nothing: not blocked.
  EXPECT_EQ(schema_view_of("# Server\r\nschema_version:1\r\n").blocked_index, 0u);
}

TEST(Schema, ActivationIsRefusedWhileAMemberCannotReadTheVersionOrDidNotAnswer) {
  std::vector<Member> members = {{1, "127.0.0.1:7379", "127.0.0.1:17379", true, true, false},
                                 {2, "127.0.0.1:7380", "127.0.0.1:17380", true, false, false},
                                 {3, "127.0.0.1:7381", "127.0.0.1:17381", false, false, false}};
  SchemaView v12{true, "", 1, 2, 1}, v1{true, "", 1, 1, 1}, v23{true, "", 2, 3, 1}, none{false, "timed out", 0, 0, 0};
  EXPECT_TRUE(activation_obstacles(members, {v12, v12, v23}, 2).empty());
  std::vector<std::string> out = activation_obstacles(members, {v12, v1, v23}, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0],
            "node 2 (voter, 127.0.0.1:7380) reads schema versions 1..1: it would be left blocked at the activation (upgrade "
            "it, or remove it from the cluster)");
  out = activation_obstacles(members, {v12, v12, v1}, 2);
  ASSERT_EQ(out.size(), 1u) << "a learner would stop too";
  EXPECT_NE(out[0].find("node 3 (learner"), std::string::npos);
  out = activation_obstacles(members, {v12, none, v12}, 2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], "node 2 (voter, 127.0.0.1:7380) did not answer, and every member must be asked: timed out");
  EXPECT_EQ(activation_obstacles(members, {v12, v12, v23}, 3).size(), 2u) << "nodes 1 and 2 read up to 2";
}

TEST(Schema, TheUpgradeSummarySaysHowManyReadTheNewVersionAndThatTheGateIsOpen) {
  std::vector<Member> members = {{1, "127.0.0.1:7379", "127.0.0.1:17379", true, true, false},
                                 {2, "127.0.0.1:7380", "127.0.0.1:17380", true, false, false},
                                 {3, "127.0.0.1:7381", "127.0.0.1:17381", true, false, false}};
  SchemaView v1{true, "", 1, 1, 1}, v12{true, "", 1, 2, 1}, v12at2{true, "", 1, 2, 2}, none{false, "timed out", 0, 0, 0};
  EXPECT_EQ(upgrade_summary(members, {v1, v1, v1}), "") << "no member reads a newer version";
  EXPECT_EQ(upgrade_summary(members, {v12, v1, none}),
            "upgrade to schema version 2: 1 of 3 members read it (not yet: node 2 reads 1..1, node 3 did not answer); "
            "the gate is not committed, and `hmdb cluster schema activate 2` is refused until every member reads it; "
            "until then it can be abandoned, losing no write (docs/cluster.md, \"Upgrading a cluster\")");
  EXPECT_EQ(upgrade_summary(members, {v12, v12, v12}),
            "upgrade to schema version 2: 3 of 3 members read it; the gate is not committed: `hmdb cluster schema "
            "activate 2` commits it (no going back after that); until then it can be abandoned, losing no write "
            "(docs/cluster.md, \"Upgrading a cluster\")");
  EXPECT_EQ(upgrade_summary(members, {v12at2, v12at2, v12at2}), "") << "activated: nothing pending";
}

TEST(ClusterArgs, VerbsAndDefaults) {
  ClusterArgs a;
  ASSERT_EQ(parse({"status"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kStatus);
  EXPECT_EQ(a.addr, (HostPort{"127.0.0.1", 7379}));
  EXPECT_EQ(a.timeout_ms, kDefaultReplyTimeoutMs);

  a = ClusterArgs{};
  ASSERT_EQ(parse({"status", "--addr", "127.0.0.1:7380"}, &a), -1);
  EXPECT_EQ(a.addr, (HostPort{"127.0.0.1", 7380}));

  a = ClusterArgs{};
  ASSERT_EQ(parse({"--addr", "10.0.0.2:7379", "promote", "4"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kPromote);
  EXPECT_EQ(a.id, 4u);
  EXPECT_EQ(a.addr.host, "10.0.0.2");

  a = ClusterArgs{};
  ASSERT_EQ(parse({"add-learner", "4", "127.0.0.1:7382", "127.0.0.1:17382", "--timeout-ms", "500"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kAddLearner);
  EXPECT_EQ(a.id, 4u);
  EXPECT_EQ(a.client_addr, (HostPort{"127.0.0.1", 7382}));
  EXPECT_EQ(a.peer_addr, (HostPort{"127.0.0.1", 17382}));
  EXPECT_EQ(a.timeout_ms, 500);

  for (const auto& [verb, expected] : std::vector<std::pair<std::string, ClusterVerb>>{
           {"remove", ClusterVerb::kRemove}, {"transfer", ClusterVerb::kTransfer}}) {
    a = ClusterArgs{};
    ASSERT_EQ(parse({verb, "3"}, &a), -1) << verb;
    EXPECT_EQ(a.verb, expected);
    EXPECT_EQ(a.id, 3u);
  }
  a = ClusterArgs{};
  ASSERT_EQ(parse({"digest", "--local"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kDigest);
  EXPECT_TRUE(a.local);
  a = ClusterArgs{};
  ASSERT_EQ(parse({"members"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kMembers);
  a = ClusterArgs{};
  ASSERT_EQ(parse({"schema"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kSchema);
  a = ClusterArgs{};
  ASSERT_EQ(parse({"schema", "activate", "2"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kActivate);
  EXPECT_EQ(a.version, 2u);
  a = ClusterArgs{};
  ASSERT_EQ(parse({"verify"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kVerify);
  EXPECT_EQ(a.wait_ms, kVerifyWaitMs);
  a = ClusterArgs{};
  ASSERT_EQ(parse({"verify", "--wait-ms", "500"}, &a), -1);
  EXPECT_EQ(a.wait_ms, 500);
}

TEST(ClusterArgs, BadUsageIsExitTwo) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"promote"},
      {"promote", "0"},
      {"promote", "x"},
      {"promote", "1", "2"},
      {"add-learner", "4", "127.0.0.1:7382"},
      {"add-learner", "4", "127.0.0.1", "127.0.0.1:17382"},
      {"add-learner", "4", "127.0.0.1:7382", "127.0.0.1:0"},
      {"status", "--addr", "localhost"},
      {"status", "--timeout-ms", "0"},
      {"schema", "activate"},
      {"schema", "activate", "0"},
      {"schema", "activate", "4294967296"},
      {"schema", "activate", "two"},
  };
  for (const auto& words : bad) {
    ClusterArgs a;
    std::string joined;
    for (const auto& w : words) joined += w + " ";
    EXPECT_EQ(parse(words, &a), 2) << joined;
  }
}

// `hmdb snapshot`: --addr HOST:PORT as `hmdb cluster` takes it, or --host and --port as before.
int parse_snapshot(std::vector<std::string> words, SnapshotArgs* out) {
  words.insert(words.begin(), "snapshot");
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return parse_snapshot_args(static_cast<int>(argv.size()), argv.data(), out);
}

TEST(SnapshotArgs, AddrOrHostAndPort) {
  SnapshotArgs a;
  ASSERT_EQ(parse_snapshot({}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"127.0.0.1", 7379}));
  EXPECT_EQ(a.timeout_ms, kSnapshotTimeoutMs);
  a = SnapshotArgs{};
  ASSERT_EQ(parse_snapshot({"--addr", "10.0.0.2:7380", "--timeout-ms", "500"}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"10.0.0.2", 7380}));
  EXPECT_EQ(a.timeout_ms, 500);
  a = SnapshotArgs{};
  ASSERT_EQ(parse_snapshot({"--addr", "[::1]:7381"}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"::1", 7381}));
  a = SnapshotArgs{};
  ASSERT_EQ(parse_snapshot({"--addr", "db-2.example:1"}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"db-2.example", 1}));
  // The older form still works, each half with the other's default.
  a = SnapshotArgs{};
  ASSERT_EQ(parse_snapshot({"--host", "10.0.0.3", "--port", "7390"}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"10.0.0.3", 7390}));
  a = SnapshotArgs{};
  ASSERT_EQ(parse_snapshot({"--port", "7390"}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"127.0.0.1", 7390}));
  a = SnapshotArgs{};
  ASSERT_EQ(parse_snapshot({"--host", "::1"}, &a), -1);
  EXPECT_EQ(a.server, (HostPort{"::1", 7379}));
  for (const std::vector<std::string>& words : std::vector<std::vector<std::string>>{
           {"--addr", "127.0.0.1"},                       // no port
           {"--addr", "127.0.0.1:0"},                     // port 0
           {"--addr", ":7379"},                           // no host
           {"--addr", "127.0.0.1:7379", "--port", "7380"},  // two servers named
           {"--addr", "127.0.0.1:7379", "--host", "10.0.0.1"},
           {"--port", "0x"},
           {"--timeout-ms", "0"},
           {"7379"}}) {
    a = SnapshotArgs{};
    std::string joined;
    for (const auto& w : words) joined += w + " ";
    EXPECT_EQ(parse_snapshot(words, &a), 2) << joined;
  }
}

TEST(Replace, Arguments) {
  ClusterArgs a;
  ASSERT_EQ(parse({"replace", "2", "4", "127.0.0.1:7382", "127.0.0.1:17382"}, &a), -1);
  EXPECT_EQ(a.verb, ClusterVerb::kReplace);
  EXPECT_EQ(a.old_id, 2u);
  EXPECT_EQ(a.id, 4u);
  EXPECT_EQ(a.client_addr, (HostPort{"127.0.0.1", 7382}));
  EXPECT_EQ(a.peer_addr, (HostPort{"127.0.0.1", 17382}));
  EXPECT_EQ(a.catch_up_timeout_s, kReplaceCatchUpTimeoutS);
  EXPECT_EQ(a.wait_ms, kVerifyWaitMs);
  a = ClusterArgs{};
  ASSERT_EQ(parse({"--addr", "10.0.0.1:7379", "replace", "1", "5", "10.0.0.5:7379", "10.0.0.5:17379",
                   "--catch-up-timeout-s", "30", "--wait-ms", "2000"},
                  &a),
            -1);
  EXPECT_EQ(a.catch_up_timeout_s, 30);
  EXPECT_EQ(a.wait_ms, 2000);
  EXPECT_EQ(a.addr.host, "10.0.0.1");
  for (const std::vector<std::string>& words : std::vector<std::vector<std::string>>{
           {"replace", "2", "4", "127.0.0.1:7382"},
           {"replace", "2", "2", "127.0.0.1:7382", "127.0.0.1:17382"},  // the same id twice
           {"replace", "0", "4", "127.0.0.1:7382", "127.0.0.1:17382"},
           {"replace", "2", "4", "127.0.0.1", "127.0.0.1:17382"},
           {"replace", "2", "4", "127.0.0.1:7382", "127.0.0.1:17382", "--catch-up-timeout-s", "0"}}) {
    a = ClusterArgs{};
    EXPECT_EQ(parse(words, &a), 2) << words.size();
  }
}

Member member(uint64_t id, bool voter, bool leader = false) {
  return Member{id, "127.0.0.1:" + std::to_string(7378 + id), "127.0.0.1:" + std::to_string(17378 + id), voter,
                leader, false};
}

TEST(Replace, EachStepFollowsFromTheMembership) {
  const std::string client4 = "127.0.0.1:7382";
  std::string why;
  auto plan = [&](std::vector<Member> m, uint64_t old_id = 2) {
    why.clear();
    return plan_replace(m, old_id, 4, client4, &why);
  };
  // The order a replace of a follower walks through, as each step's effect shows.
  EXPECT_EQ(plan({member(1, true, true), member(2, true), member(3, true)}), ReplaceStep::kAddLearner);
  EXPECT_EQ(plan({member(1, true, true), member(2, true), member(3, true), member(4, false)}), ReplaceStep::kCatchUp);
  EXPECT_EQ(plan({member(1, true, true), member(2, true), member(3, true), member(4, true)}), ReplaceStep::kRemove);
  EXPECT_EQ(plan({member(1, true, true), member(3, true), member(4, true)}), ReplaceStep::kDone);
  // Of the leader: a transfer before the removal.
  EXPECT_EQ(plan({member(1, true), member(2, true, true), member(3, true), member(4, true)}), ReplaceStep::kTransfer);
  EXPECT_EQ(plan({member(1, true), member(2, true), member(3, true), member(4, true, true)}), ReplaceStep::kRemove);
  // OLD removed by hand while NEW was a learner: it is still caught up and promoted.
  EXPECT_EQ(plan({member(1, true, true), member(3, true), member(4, false)}), ReplaceStep::kCatchUp);
  // Refused, changing nothing: an OLD that is not a member, an id taken by another node.
  EXPECT_EQ(plan({member(1, true, true), member(3, true)}), ReplaceStep::kRefused);
  EXPECT_NE(why.find("node 2 is not a member"), std::string::npos) << why;
  std::vector<Member> taken = {member(1, true, true), member(2, true), member(3, true), member(4, true)};
  taken[3].client_addr = "127.0.0.1:9999";
  EXPECT_EQ(plan(taken), ReplaceStep::kRefused);
  EXPECT_NE(why.find("a new node needs an unused id"), std::string::npos) << why;
  // An address the answering node does not know yet is not a conflict.
  taken[3].client_addr = "?";
  EXPECT_EQ(plan(taken), ReplaceStep::kRemove);
  EXPECT_EQ(plan({member(1, true, true), member(2, true)}, 4), ReplaceStep::kRefused);
}

TEST(Replace, ProgressLine) {
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(3u << 20), "3.0 MiB");
  EXPECT_EQ(human_bytes(uint64_t{5} << 30), "5.00 GiB");
  CatchUpSample first{.ms = 1000, .match = 0, .last_index = 10000, .bytes_sent = 0};
  CatchUpSample now{.ms = 3000, .match = 4000, .last_index = 10000, .bytes_sent = 2u << 20};
  // 4,000 entries in 2 s: 2,000/s, 6,000 left: 3 s.
  EXPECT_EQ(catch_up_line(4, first, now),
            "node 4: 6000 entries behind (holds 4000 of 10000), 2.0 MiB sent, 2000 entries/s, 1.0 MiB/s, about 3 s left");
  // A snapshot streaming: the time left is of its bytes.
  now.snapshot_acked = 2u << 20;
  now.snapshot_total = 10u << 20;
  now.match = 0;
  EXPECT_EQ(catch_up_line(4, first, now),
            "node 4: receiving a snapshot, 2.0 MiB of 10.0 MiB; 10000 entries behind (holds 0 of 10000), 2.0 MiB sent, "
            "0 entries/s, 1.0 MiB/s, about 8 s left");
  // Done, and a leader that does not give bytes (an older hmdb), and a link down.
  now = CatchUpSample{.ms = 2000, .match = 10000, .last_index = 10000, .bytes_sent = 0, .connected = false};
  EXPECT_EQ(catch_up_line(4, first, now),
            "node 4: 0 entries behind (holds 10000 of 10000), 10000 entries/s, caught up (the leader's link to it is "
            "down)");
  // No time has passed: no rate, no estimate.
  EXPECT_EQ(catch_up_line(4, first, first), "node 4: 10000 entries behind (holds 0 of 10000)");
}

TEST(Replace, StatusExplainsALearnerAndAnEvenNumberOfVoters) {
  EXPECT_TRUE(membership_notes({member(1, true, true), member(2, true), member(3, true)}, {"", "0", "0"}).empty());
  const std::vector<std::string> learner =
      membership_notes({member(1, true, true), member(2, true), member(3, true), member(4, false)}, {"", "0", "0", "65"});
  ASSERT_EQ(learner.size(), 1u);
  EXPECT_EQ(learner[0].rfind("node 4 is a learner (it receives the log, does not vote), 65 entries behind the leader. ", 0),
            0u)
      << learner[0];
  EXPECT_NE(learner[0].find("`hmdb cluster replace OLD 4 127.0.0.1:7382 127.0.0.1:17382` resumes"), std::string::npos)
      << learner[0];
  EXPECT_NE(learner[0].find("`hmdb cluster promote 4`"), std::string::npos);
  // No leader answered: the lag is unknown, and said so.
  EXPECT_NE(membership_notes({member(1, true), member(4, false)}, {"", ""})[0].find("its lag unknown"),
            std::string::npos);
  const std::vector<std::string> four =
      membership_notes({member(1, true, true), member(2, true), member(3, true), member(4, true)}, {});
  ASSERT_EQ(four.size(), 1u);
  EXPECT_EQ(four[0].rfind("4 voters: a majority is 3, so this tolerates no more failures than 3 voters would.", 0), 0u)
      << four[0];
}

}  // namespace
}  // namespace hmdb::tools
