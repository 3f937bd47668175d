// tests/server/server_test.cc — the server as a user meets it: a real process on 127.0.0.1
// (the tiny test app built with hmdb_add_app), driven over RESP.
//
// Covers: pipelined writes and reads in order, per-session ordering of a query behind a
// write, errors for unknown commands / wrong arity / bad arguments, protocol errors (bulk
// over the limit, 1 MB without a newline) that close only the offending connection, many
// idle connections, the client limit, the shell's own commands, SIGTERM draining pending
// writes, restart, snapshots (command, `hmdb snapshot`, automatic), durability none and
// periodic, kill -9 in `always` mode, a single node's loop sleeping on its disk's
// acknowledgement while its writes sync (rounds on the disk thread), and the loop running the
// round itself (rounds on the loop, the default).
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>

#include <fmt/format.h>

#include "core/batch.h"
#include "harness.h"
#include "server_fixture.h"
#include "server/options.h"
#include "storage/log.h"
#include "storage/snapshot.h"

namespace hmdb::test {
namespace {

const std::string kBinary = HMDB_TINY_SERVER;

class ServerTest : public ServerProcessTest {
 protected:
  ServerTest() : ServerProcessTest(kBinary) {}

  // One SET at a time, each read back by another client before the next: every SET's turn
  // ends with nothing to do but make it durable.
  static constexpr int kSerialWrites = 40;
  void write_one_at_a_time(RespClient& writer, RespClient& reader) {
    for (int i = 0; i < kSerialWrites; i++) {
      ASSERT_EQ(writer.call({"SET", "k", std::to_string(i)}), std::string("OK")) << i;
      ASSERT_EQ(reader.call({"GET", "k"}).str, std::to_string(i)) << i;
    }
  }
};

TEST_F(ServerTest, PipelinedWritesAndReadsAnswerInOrder) {
  server_->start();
  RespClient c(server_->port());
  constexpr int kCommands = 3000;
  std::string burst;
  for (int i = 0; i < kCommands; i++) {
    burst += RespClient::encode({"SET", "k" + std::to_string(i), "v" + std::to_string(i)});
    burst += RespClient::encode({"GET", "k" + std::to_string(i)});
    burst += RespClient::encode({"INCRBY", "counter", "1"});
  }
  ASSERT_TRUE(c.send_raw(burst));
  for (int i = 0; i < kCommands; i++) {
    ASSERT_EQ(c.read(), std::string("OK")) << i;
    RespValue got = c.read();
    ASSERT_EQ(got.str, "v" + std::to_string(i)) << i;
    RespValue n = c.read();
    ASSERT_EQ(n.integer, i + 1);
  }
  EXPECT_EQ(c.call({"DBSIZE"}).integer, kCommands + 1);
}

TEST_F(ServerTest, ASingleNodeSleepsOnItsDisksAcknowledgementWhileItsWritesSync) {
  // durability always; the rounds on the disk thread (else the loop runs them itself: below)
  server_->start({"--test-disk-rounds-on-thread"});
  RespClient writer(server_->port());
  RespClient reader(server_->port());
  write_one_at_a_time(writer, reader);
  // Each SET's turn ends with nothing to do but wait for its fdatasync: the loop sleeps on the
  // disk's acknowledgement (Node::wait_for_disk_ack), except in a turn where a timer fell due.
  EXPECT_GE(std::stoull(info_field(writer, "loop_ack_waits")), static_cast<uint64_t>(kSerialWrites / 2));
}

TEST_F(ServerTest, ASingleNodesLoopRunsTheDiskRoundItWouldWaitFor) {
  // durability always; no holds, and rounds on the loop however slow the disk is now (the
  // decisions that depend on the disk's times are disk_thread_test's and group_hold_policy_test's)
  server_->start({"--group-commit-hold", "off", "--test-loop-round-sync-avg-max-us", "1000000000"});
  RespClient writer(server_->port());
  RespClient reader(server_->port());
  write_one_at_a_time(writer, reader);
  // Each SET's turn ends with nothing to do but its round (disk_thread.h, "Rounds on the
  // loop"): the loop writes and syncs it itself, except in a turn where a timer fell due.
  const uint64_t loop_rounds = std::stoull(info_field(writer, "disk_loop_rounds"));
  EXPECT_GE(loop_rounds, static_cast<uint64_t>(kSerialWrites / 2));
  EXPECT_LE(loop_rounds, std::stoull(info_field(writer, "disk_rounds")));
  // No reply before its write reached the log: after kill -9 the restarted node has the last.
  // (That the round synced before its ack is disk_thread_test's, with a file layer that
  // drops unsynced bytes.)
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  server_->start();
  RespClient after(server_->port());
  EXPECT_EQ(after.call({"GET", "k"}).str, std::to_string(kSerialWrites - 1));
}

TEST_F(ServerTest, QueryBehindWriteSeesExactlyTheWritesBeforeIt) {
  server_->start();
  RespClient c(server_->port());
  // One send: the GETs must see 1, then 2, although all four arrive in one read.
  std::string burst = RespClient::encode({"SET", "k", "1"}) + RespClient::encode({"GET", "k"}) +
                      RespClient::encode({"SET", "k", "2"}) + RespClient::encode({"GET", "k"}) +
                      RespClient::encode({"PING"}) + RespClient::encode({"DEL", "k"}) +
                      RespClient::encode({"GET", "k"});
  ASSERT_TRUE(c.send_raw(burst));
  EXPECT_EQ(c.read(), std::string("OK"));
  EXPECT_EQ(c.read().str, "1");
  EXPECT_EQ(c.read(), std::string("OK"));
  EXPECT_EQ(c.read().str, "2");
  EXPECT_EQ(c.read(), std::string("PONG"));
  EXPECT_EQ(c.read().integer, 1);
  EXPECT_TRUE(c.read().null);
}

TEST_F(ServerTest, RandomPipelinesFromSeveralClientsMatchASequentialModelPerClient) {
  // Each client owns its keys, so its replies must match a sequential model of its own
  // commands exactly, however the server interleaves clients into batches.
  uint64_t seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  server_->start();
  constexpr int kClients = 4;
  constexpr int kRounds = 20;
  std::vector<std::unique_ptr<RespClient>> clients;
  std::vector<std::map<std::string, std::string>> models(kClients);
  for (int c = 0; c < kClients; c++) clients.push_back(std::make_unique<RespClient>(server_->port()));
  for (int round = 0; round < kRounds; round++) {
    std::vector<std::vector<RespValue>> expected(kClients);
    for (int c = 0; c < kClients; c++) {
      std::string burst;
      auto& model = models[c];
      int n = 1 + static_cast<int>(rng() % 60);
      for (int i = 0; i < n; i++) {
        std::string key = "c" + std::to_string(c) + ":" + std::to_string(rng() % 4);
        RespValue want;
        switch (rng() % 6) {
          case 0: {
            std::string v = std::to_string(rng() % 1000);
            burst += RespClient::encode({"SET", key, v});
            model[key] = v;
            want.type = '+';
            want.str = "OK";
            break;
          }
          case 1: {
            int64_t d = static_cast<int64_t>(rng() % 10);
            burst += RespClient::encode({"INCRBY", key, std::to_string(d)});
            int64_t cur = model.count(key) ? std::stoll(model[key]) : 0;
            model[key] = std::to_string(cur + d);
            want.type = ':';
            want.integer = cur + d;
            break;
          }
          case 2: {
            burst += RespClient::encode({"DEL", key});
            want.type = ':';
            want.integer = static_cast<int64_t>(model.erase(key));
            break;
          }
          case 3:
            burst += RespClient::encode({"INCRBY", key, "x"});  // invalid: never logged
            want.type = '-';
            want.str = "ERR value is not an integer or out of range";
            break;
          case 4:
            burst += RespClient::encode({"PING"});
            want.type = '+';
            want.str = "PONG";
            break;
          default: {
            burst += RespClient::encode({"GET", key});
            want.type = '$';
            if (model.count(key)) want.str = model[key];
            else want.null = true;
            break;
          }
        }
        expected[c].push_back(want);
      }
      ASSERT_TRUE(clients[c]->send_raw(burst));
    }
    for (int c = 0; c < kClients; c++) {
      for (size_t i = 0; i < expected[c].size(); i++) {
        RespValue got = clients[c]->read();
        const RespValue& want = expected[c][i];
        ASSERT_EQ(got.type, want.type) << "client " << c << " reply " << i << " round " << round << ": " << got.str;
        ASSERT_EQ(got.null, want.null) << "client " << c << " reply " << i;
        ASSERT_EQ(got.str, want.str) << "client " << c << " reply " << i;
        ASSERT_EQ(got.integer, want.integer) << "client " << c << " reply " << i;
      }
    }
  }
}

TEST_F(ServerTest, ClientThatDoesNotReadIsPausedNotBuffered) {
  server_->start();
  RespClient setup(server_->port());
  const std::string value(64 << 10, 'v');
  ASSERT_EQ(setup.call({"SET", "big", value}), std::string("OK"));
  // 20,000 GETs of 64 KiB = 1.25 GiB of replies that the client never reads.
  RespClient lazy(server_->port());
  std::string gets;
  for (int i = 0; i < 1000; i++) gets += RespClient::encode({"GET", "big"});
  int fl = ::fcntl(lazy.fd(), F_GETFL);
  ::fcntl(lazy.fd(), F_SETFL, fl | O_NONBLOCK);
  size_t sent = 0;
  for (int i = 0; i < 20 && sent < gets.size() * 20; i++) {
    ssize_t n = ::send(lazy.fd(), gets.data(), gets.size(), MSG_NOSIGNAL);
    if (n <= 0) break;  // the server stopped reading: its socket buffer is full
    sent += static_cast<size_t>(n);
  }
  // Wait (bounded) until the server's unsent replies for it reach the pause threshold.
  auto output_of_lazy = [&]() -> int64_t {
    RespValue list = setup.call({"CLIENT", "LIST"});
    int64_t most = 0;
    size_t p = 0;
    while ((p = list.str.find("obl=", p)) != std::string::npos) {
      most = std::max<int64_t>(most, std::stoll(list.str.substr(p + 4)));
      p += 4;
    }
    return most;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kExitTimeoutMs);
  while (output_of_lazy() < (4 << 20)) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the lazy client's replies never piled up";
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
  // Bounded: the pause threshold plus at most one reply (and what is already in flight).
  EXPECT_LT(output_of_lazy(), (4 << 20) + 2 * static_cast<int64_t>(value.size()) + 1024);
  EXPECT_EQ(setup.call({"GET", "missing"}).null, true);
  EXPECT_EQ(setup.call({"SET", "k", "v"}), std::string("OK"));
}

// One loop turn reads at most kTurnReadBytesMax from all clients together (server/options.h).
// The clients' pipelines are sent while the server is stopped (SIGSTOP), so that all of them
// wait in the kernel when it goes on: its first turn reaches the bound (INFO
// read_bound_turns), the clients left unread are read in the next turns, and every client
// gets every reply.
TEST_F(ServerTest, ATurnReadsAtMostItsBoundFromAllClientsTogether) {
  server_->start();
  RespClient info(server_->port());
  constexpr int kClients = 16, kSets = 2000;
  const std::string value(400, 'v');
  std::vector<std::unique_ptr<RespClient>> clients;
  std::vector<std::string> pipelines(kClients);
  for (int c = 0; c < kClients; c++) {
    clients.push_back(std::make_unique<RespClient>(server_->port()));
    ASSERT_EQ(clients.back()->call({"PING"}), std::string("PONG"));  // accepted before the stop
    for (int i = 0; i < kSets; i++)
      pipelines[c] += RespClient::encode({"SET", "c" + std::to_string(c) + ":" + std::to_string(i), value});
  }
  ASSERT_EQ(std::stoull(info_field(info, "read_bound_turns")), 0u);
  server_->signal(SIGSTOP);
  std::vector<size_t> sent(kClients, 0);
  size_t sent_total = 0;
  for (int c = 0; c < kClients; c++) {
    const int fd = clients[c]->fd();
    const int fl = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    for (;;) {
      const ssize_t n = ::send(fd, pipelines[c].data() + sent[c], pipelines[c].size() - sent[c], MSG_NOSIGNAL);
      if (n <= 0) break;  // the socket's buffers are full
      sent[c] += static_cast<size_t>(n);
    }
    ::fcntl(fd, F_SETFL, fl);
    sent_total += sent[c];
  }
  server_->signal(SIGCONT);
  ASSERT_GT(sent_total, 2 * server::kTurnReadBytesMax) << "the kernel did not buffer enough to test the bound";
  for (int c = 0; c < kClients; c++) {
    ASSERT_TRUE(clients[c]->send_raw(pipelines[c].substr(sent[c])));
    for (int i = 0; i < kSets; i++) ASSERT_EQ(clients[c]->read(), std::string("OK")) << "client " << c << " reply " << i;
  }
  EXPECT_GE(std::stoull(info_field(info, "read_bound_turns")), 1u);
  std::printf("%zu bytes waited in the kernel at once; turns that reached the bound: %s\n", sent_total,
              info_field(info, "read_bound_turns").c_str());
}

TEST_F(ServerTest, ErrorsForUnknownCommandsWrongArityAndBadArgumentsKeepTheConnection) {
  server_->start();
  RespClient c(server_->port());
  RespValue v = c.call({"NOSUCH", "a", "b"});
  EXPECT_TRUE(v.is_error());
  EXPECT_EQ(v.str, "ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' ");
  v = c.call({"SET", "onlykey"});
  EXPECT_EQ(v.str, "ERR wrong number of arguments for 'set' command");
  v = c.call({"GET"});
  EXPECT_EQ(v.str, "ERR wrong number of arguments for 'get' command");
  v = c.call({"INCRBY", "k", "notanumber"});
  EXPECT_EQ(v.str, "ERR value is not an integer or out of range");
  v = c.call({"ECHO"});
  EXPECT_EQ(v.str, "ERR wrong number of arguments for 'echo' command");
  // Nothing of that reached the log: only the startup no-op was applied.
  std::string applied = info_field(c, "applied_index");
  EXPECT_EQ(c.call({"PING"}), std::string("PONG"));
  EXPECT_EQ(info_field(c, "applied_index"), applied);
  EXPECT_EQ(info_field(c, "total_writes"), "0");
  // Errors queued behind a pending write keep their place.
  ASSERT_TRUE(c.send_raw(RespClient::encode({"SET", "a", "1"}) + RespClient::encode({"NOSUCH"}) +
                         RespClient::encode({"INCRBY", "a", "x"}) + RespClient::encode({"GET", "a"})));
  EXPECT_EQ(c.read(), std::string("OK"));
  EXPECT_TRUE(c.read().is_error());
  EXPECT_TRUE(c.read().is_error());
  EXPECT_EQ(c.read().str, "1");
}

TEST_F(ServerTest, HalfClosedClientGetsEveryReplyThenTheConnectionCloses) {
  server_->start();
  RespClient c(server_->port());
  std::string burst;
  for (int i = 0; i < 100; i++) burst += RespClient::encode({"SET", "k" + std::to_string(i), "v"});
  burst += RespClient::encode({"DBSIZE"});
  ASSERT_TRUE(c.send_raw(burst));
  ::shutdown(c.fd(), SHUT_WR);  // like `nc`: done sending, still reading
  for (int i = 0; i < 100; i++) ASSERT_EQ(c.read(), std::string("OK")) << i;
  EXPECT_EQ(c.read().integer, 100);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, InlineCommandsWork) {
  server_->start();
  RespClient c(server_->port());
  ASSERT_TRUE(c.send_raw("SET greeting \"hello world\"\r\nGET greeting\r\nPING\n"));
  EXPECT_EQ(c.read(), std::string("OK"));
  EXPECT_EQ(c.read().str, "hello world");
  EXPECT_EQ(c.read(), std::string("PONG"));
}

// The server parses up to kParseAheadCommands pipelined commands before running them (so
// the app can prefetch). Whatever stops a pipeline must still stop it at the right command.
TEST_F(ServerTest, ParsingAheadKeepsOrderAndStopsAtQuitErrorsAndPartialCommands) {
  server_->start();
  // Multibulk and inline commands mixed (an inline one is never parsed ahead), then a
  // malformed frame: everything before it is answered in order, then the error, then close.
  RespClient a(server_->port());
  ASSERT_TRUE(a.send_raw("*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n"
                         "SET b \"x y\"\r\n*2\r\n$3\r\nGET\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n:5\r\n"
                         "*2\r\n$3\r\nGET\r\n$1\r\na\r\n"));
  EXPECT_EQ(a.read(), std::string("OK"));
  EXPECT_EQ(a.read().str, "1");
  EXPECT_EQ(a.read(), std::string("OK"));
  EXPECT_EQ(a.read().str, "x y");
  EXPECT_EQ(a.read().str, "1");
  EXPECT_EQ(a.read().str, "ERR Protocol error: expected '$', got ':'");
  EXPECT_TRUE(a.closed_by_server());

  // QUIT inside a pipeline: nothing after it runs.
  RespClient q(server_->port());
  ASSERT_TRUE(q.send_raw("*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\n1\r\n*1\r\n$4\r\nQUIT\r\n"
                         "*3\r\n$3\r\nSET\r\n$1\r\nq\r\n$1\r\n2\r\n"));
  EXPECT_EQ(q.read(), std::string("OK"));
  EXPECT_EQ(q.read(), std::string("OK"));
  EXPECT_TRUE(q.closed_by_server());
  RespClient check(server_->port());
  EXPECT_EQ(check.call({"GET", "q"}).str, "1");

  // A command cut in two after complete ones: the complete ones are answered (which proves
  // the server parsed up to the cut), and the rest completes the cut command.
  RespClient p(server_->port());
  ASSERT_TRUE(p.send_raw("*2\r\n$3\r\nGET\r\n$1\r\na\r\n*2\r\n$3\r\nGET\r\n$1\r\nq\r\n*2\r\n$3\r\nGE"));
  EXPECT_EQ(p.read().str, "1");
  EXPECT_EQ(p.read().str, "1");
  ASSERT_TRUE(p.send_raw("T\r\n$1\r\nb\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n"));
  EXPECT_EQ(p.read().str, "x y");
  EXPECT_EQ(p.read().str, "1");
}

TEST_F(ServerTest, BulkOverTheLimitIsAProtocolErrorThatClosesOnlyThatConnection) {
  server_->start({"--max-bulk-bytes", "1024"});
  RespClient bystander(server_->port());
  ASSERT_EQ(bystander.call({"SET", "x", "1"}), std::string("OK"));
  RespClient bad(server_->port());
  ASSERT_EQ(bad.call({"SET", "ok", std::string(1024, 'a')}), std::string("OK"));
  ASSERT_TRUE(bad.send_raw("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n"));
  RespValue v = bad.read();
  EXPECT_EQ(v.str, "ERR Protocol error: invalid bulk length");
  EXPECT_TRUE(bad.closed_by_server());
  EXPECT_EQ(bystander.call({"GET", "x"}).str, "1");
}

TEST_F(ServerTest, MegabyteWithoutNewlineIsRefusedAndClosed) {
  server_->start();
  RespClient bystander(server_->port());
  RespClient bad(server_->port());
  // The server answers and closes as soon as 64 KiB pass without a newline; the rest of
  // our send may fail with EPIPE/ECONNRESET, which is fine.
  bad.send_raw(std::string(1 << 20, 'a'));
  RespValue v = bad.read();
  EXPECT_EQ(v.str, "ERR Protocol error: too big inline request");
  EXPECT_TRUE(bad.closed_by_server());
  EXPECT_EQ(bystander.call({"PING"}), std::string("PONG"));
  RespClient after(server_->port());
  EXPECT_EQ(after.call({"PING"}), std::string("PONG"));
  RespClient malformed(server_->port());
  ASSERT_TRUE(malformed.send_raw("*1\r\n:5\r\n"));
  EXPECT_EQ(malformed.read().str, "ERR Protocol error: expected '$', got ':'");
  EXPECT_TRUE(malformed.closed_by_server());
}

TEST_F(ServerTest, ManyIdleConnections) {
  constexpr int kConnections = 2000;
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < kConnections + 100) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, kConnections + 100);
    ::setrlimit(RLIMIT_NOFILE, &rl);
  }
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < kConnections + 100) GTEST_SKIP() << "open-file limit too low: " << rl.rlim_cur;
  server_->start();
  std::vector<std::unique_ptr<RespClient>> idle;
  for (int i = 0; i < kConnections; i++) idle.push_back(std::make_unique<RespClient>(server_->port()));
  RespClient active(server_->port());
  EXPECT_EQ(active.call({"SET", "k", "v"}), std::string("OK"));
  EXPECT_EQ(info_field(active, "connected_clients"), std::to_string(kConnections + 1));
  // Every one of them is still served.
  for (int i = 0; i < kConnections; i += 97) EXPECT_EQ(idle[i]->call({"GET", "k"}).str, "v") << i;
}

TEST_F(ServerTest, ClientsBeyondTheLimitAreRefused) {
  server_->start({"--max-clients", "3"});
  RespClient a(server_->port()), b(server_->port()), c(server_->port());
  ASSERT_EQ(c.call({"PING"}), std::string("PONG"));  // all three are registered
  RespClient d(server_->port());
  EXPECT_EQ(d.read().str, "ERR max number of clients reached");
  EXPECT_TRUE(d.closed_by_server());
  EXPECT_EQ(a.call({"PING"}), std::string("PONG"));
}

TEST_F(ServerTest, ShellCommandsForRedisClients) {
  server_->start();
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"PING", "hi"}).str, "hi");
  EXPECT_EQ(c.call({"ECHO", "x y"}).str, "x y");
  EXPECT_EQ(c.call({"SELECT", "0"}), std::string("OK"));
  EXPECT_EQ(c.call({"SELECT", "1"}).str, "ERR DB index is out of range");
  RespValue hello = c.call({"HELLO", "2", "SETNAME", "me"});
  ASSERT_EQ(hello.type, '*');
  EXPECT_EQ(hello.elements.size(), 14u);
  EXPECT_EQ(c.call({"CLIENT", "GETNAME"}).str, "me");
  EXPECT_EQ(c.call({"HELLO", "4"}).str, "NOPROTO unsupported protocol version");
  EXPECT_EQ(c.call({"AUTH", "default", "any"}), std::string("OK"));
  EXPECT_EQ(c.call({"CLIENT", "SETNAME", "other"}), std::string("OK"));
  EXPECT_EQ(c.call({"CLIENT", "GETNAME"}).str, "other");
  EXPECT_GE(c.call({"CLIENT", "ID"}).integer, 16);
  EXPECT_EQ(c.call({"CLIENT", "SETINFO", "LIB-NAME", "test"}), std::string("OK"));
  RespValue cfg = c.call({"CONFIG", "GET", "save"});
  ASSERT_EQ(cfg.elements.size(), 2u);
  EXPECT_EQ(cfg.elements[0].str, "save");
  cfg = c.call({"CONFIG", "GET", "appendonly"});
  ASSERT_EQ(cfg.elements.size(), 2u);
  EXPECT_EQ(cfg.elements[1].str, "yes");
  cfg = c.call({"CONFIG", "GET", "*snapshot-method"});  // --snapshot-method, the default
  ASSERT_EQ(cfg.elements.size(), 2u);
  EXPECT_EQ(cfg.elements[0].str, "hmdb-snapshot-method");
  EXPECT_EQ(cfg.elements[1].str, "fork");
  EXPECT_GT(c.call({"COMMAND", "COUNT"}).integer, 0);
  EXPECT_EQ(c.call({"COMMAND", "DOCS"}).type, '*');
  RespValue info = c.call({"COMMAND", "INFO", "get", "nosuch"});
  ASSERT_EQ(info.elements.size(), 2u);
  EXPECT_EQ(info.elements[0].elements[0].str, "get");
  EXPECT_EQ(info.elements[0].elements[1].integer, 2);  // the app's own arity for GET
  EXPECT_TRUE(info.elements[1].null);
  // The listing holds the shell's commands and the app's: GET and DBSIZE come from the app.
  RespValue list = c.call({"COMMAND", "LIST"});
  auto listed = [&](const std::string& name) {
    for (const auto& e : list.elements)
      if (e.str == name) return true;
    return false;
  };
  EXPECT_TRUE(listed("ping"));
  EXPECT_TRUE(listed("get"));
  EXPECT_TRUE(listed("dbsize"));
  EXPECT_EQ(c.call({"COMMAND", "COUNT"}).integer, static_cast<int64_t>(list.elements.size()));
  EXPECT_EQ(c.call({"COMMAND"}).elements.size(), list.elements.size());
  RespValue text = c.call({"INFO"});
  EXPECT_NE(text.str.find("role:leader"), std::string::npos);
  EXPECT_NE(text.str.find("keys:0"), std::string::npos);
  EXPECT_EQ(c.call({"QUIT"}), std::string("OK"));
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(ServerTest, SigtermRepliesToEveryWriteItReadAndExitsZero) {
  server_->start();
  constexpr int kWrites = 20000;
  RespClient c(server_->port());
  std::string burst;
  for (int i = 0; i < kWrites; i++) burst += RespClient::encode({"SET", "k" + std::to_string(i), "v"});
  ASSERT_TRUE(c.send_raw(burst));
  // Make sure the server is working on them, then ask it to stop.
  ASSERT_EQ(c.read(), std::string("OK"));
  ::kill(server_->pid(), SIGTERM);
  int acknowledged = 1;
  try {
    while (acknowledged < kWrites) {
      RespValue v = c.read();
      ASSERT_EQ(v, std::string("OK"));
      acknowledged++;
    }
  } catch (const std::exception&) {
    // The server closed the connection: the writes it had not read yet were never run.
  }
  EXPECT_EQ(server_->wait_exit(), 0);
  EXPECT_NE(server_->read_log().find("stopped cleanly"), std::string::npos);
  // Restart: exactly the acknowledged prefix is there.
  server_->start();
  RespClient after(server_->port());
  EXPECT_EQ(after.call({"DBSIZE"}).integer, acknowledged);
  EXPECT_EQ(after.call({"GET", "k" + std::to_string(acknowledged - 1)}).str, "v");
  EXPECT_TRUE(after.call({"GET", "k" + std::to_string(acknowledged)}).null);
}

TEST_F(ServerTest, RestartKeepsData) {
  server_->start();
  {
    RespClient c(server_->port());
    for (int i = 0; i < 100; i++) ASSERT_EQ(c.call({"INCRBY", "n", "2"}).integer, 2 * (i + 1));
    ASSERT_EQ(c.call({"SET", "bin", std::string("a\0\r\nb", 5)}), std::string("OK"));
  }
  ASSERT_EQ(server_->stop(), 0);
  server_->start();
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"GET", "n"}).str, "200");
  EXPECT_EQ(c.call({"GET", "bin"}).str, std::string("a\0\r\nb", 5));
  EXPECT_EQ(c.call({"INCRBY", "n", "1"}).integer, 201);
}

TEST_F(ServerTest, KillNineKeepsEveryAcknowledgedWrite) {
  server_->start();
  int acknowledged = 0;
  {
    RespClient c(server_->port());
    for (int i = 0; i < 200; i++) {
      ASSERT_EQ(c.call({"SET", "k" + std::to_string(i), std::to_string(i)}), std::string("OK"));
      acknowledged++;
    }
    // Some more in flight when the kill lands: those may or may not survive.
    std::string burst;
    for (int i = 200; i < 2000; i++) burst += RespClient::encode({"SET", "k" + std::to_string(i), std::to_string(i)});
    c.send_raw(burst);
    for (int i = 200; i < 1000; i++) {
      ASSERT_EQ(c.read(), std::string("OK"));
      acknowledged++;
    }
    EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  }
  server_->start();
  RespClient c(server_->port());
  for (int i = 0; i < acknowledged; i++) ASSERT_EQ(c.call({"GET", "k" + std::to_string(i)}).str, std::to_string(i)) << i;
  // Whatever survived beyond them is a prefix of what was sent (log order = send order).
  int64_t size = c.call({"DBSIZE"}).integer;
  EXPECT_GE(size, acknowledged);
  EXPECT_LE(size, 2000);
  for (int i = 0; i < size; i++) ASSERT_FALSE(c.call({"GET", "k" + std::to_string(i)}).null) << i;
}

TEST_F(ServerTest, SnapshotCommandThenRestartRecoversFromSnapshotAndLog) {
  server_->start();
  {
    RespClient c(server_->port());
    for (int i = 0; i < 500; i++) ASSERT_EQ(c.call({"SET", "a" + std::to_string(i), "x"}), std::string("OK"));
    RespValue v = c.call({"SNAPSHOT"});
    ASSERT_EQ(v.type, '+') << v.str;
    EXPECT_EQ(files(".hmsnap").size(), 1u);
    for (int i = 0; i < 300; i++) ASSERT_EQ(c.call({"SET", "b" + std::to_string(i), "y"}), std::string("OK"));
    // A query behind SNAPSHOT waits for it and sees the state after it.
    ASSERT_TRUE(c.send_raw(RespClient::encode({"SNAPSHOT"}) + RespClient::encode({"DBSIZE"})));
    EXPECT_EQ(c.read().type, '+');
    EXPECT_EQ(c.read().integer, 800);
    EXPECT_EQ(info_field(c, "snapshots_taken"), "2");
  }
  // Older snapshots are removed once a newer one is durable.
  ASSERT_EQ(server_->stop(), 0);
  EXPECT_EQ(files(".hmsnap").size(), 1u);
  server_->start();
  EXPECT_NE(server_->read_log().find("loading snapshot"), std::string::npos);
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"DBSIZE"}).integer, 800);
  EXPECT_EQ(c.call({"GET", "a0"}).str, "x");
  EXPECT_EQ(c.call({"GET", "b299"}).str, "y");
}

TEST_F(ServerTest, ConfigResetstatZeroesCountersButKeepsTheSnapshotState) {
  server_->start();
  RespClient c(server_->port());
  ASSERT_EQ(c.call({"SET", "a", "1"}), std::string("OK"));
  ASSERT_EQ(c.call({"SNAPSHOT"}).type, '+');
  const std::string index = info_field(c, "last_snapshot_index");
  ASSERT_EQ(c.call({"CONFIG", "RESETSTAT"}), std::string("OK"));
  EXPECT_EQ(info_field(c, "snapshots_taken"), "0");
  EXPECT_EQ(info_field(c, "last_snapshot_index"), index);
  // Nothing new since that snapshot: no second one is taken.
  RespValue v = c.call({"SNAPSHOT"});
  EXPECT_NE(v.str.find("is current"), std::string::npos) << v.str;
  EXPECT_EQ(info_field(c, "snapshots_taken"), "0");
}

TEST_F(ServerTest, HmdbSnapshotSubcommandWaitsForTheSnapshot) {
  server_->start();
  {
    RespClient c(server_->port());
    ASSERT_EQ(c.call({"SET", "k", "v"}), std::string("OK"));
  }
  int code = ServerProcess::run_command({kBinary, "snapshot", "--port", std::to_string(server_->port())},
                                        dir_ + "/snapshot-cli.log");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(files(".hmsnap").size(), 1u);
  // Nothing new since: still succeeds, no second file.
  EXPECT_EQ(ServerProcess::run_command({kBinary, "snapshot", "--port", std::to_string(server_->port())},
                                       dir_ + "/snapshot-cli2.log"),
            0);
  EXPECT_EQ(files(".hmsnap").size(), 1u);
}

TEST_F(ServerTest, AutomaticSnapshotWhenTheLogGrowsAndOldSegmentsGo) {
  server_->start({"--snapshot-log-bytes", std::to_string(1 << 20)});
  RespClient c(server_->port());
  const std::string value(4096, 'v');
  std::string burst;
  for (int i = 0; i < 600; i++) burst += RespClient::encode({"SET", "k" + std::to_string(i % 50), value});
  ASSERT_TRUE(c.send_raw(burst));
  for (int i = 0; i < 600; i++) ASSERT_EQ(c.read(), std::string("OK"));
  // The snapshot runs in a child; wait (bounded) until the server reports it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kExitTimeoutMs);
  while (info_field(c, "snapshots_taken") == "0") {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "no automatic snapshot";
    std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
  }
  EXPECT_EQ(info_field(c, "last_snapshot_status"), "ok");
  ASSERT_EQ(server_->stop(), 0);
  EXPECT_GE(files(".hmsnap").size(), 1u);
  server_->start();
  RespClient after(server_->port());
  EXPECT_EQ(after.call({"DBSIZE"}).integer, 50);
  EXPECT_EQ(after.call({"GET", "k49"}).str, value);
}

TEST_F(ServerTest, DurabilityNoneKeepsOnlySnapshots) {
  server_->start({"--durability", "none"});
  {
    RespClient c(server_->port());
    ASSERT_EQ(c.call({"SET", "kept", "1"}), std::string("OK"));
    ASSERT_EQ(c.call({"SNAPSHOT"}).type, '+');
    ASSERT_EQ(c.call({"SET", "lost", "1"}), std::string("OK"));
    EXPECT_EQ(c.call({"CONFIG", "GET", "appendonly"}).elements.at(1).str, "no");
  }
  ASSERT_EQ(server_->stop(), 0);
  EXPECT_TRUE(files(".hmlog").empty() || std::filesystem::file_size(server_->data_dir() + "/" + files(".hmlog")[0]) < 4096);
  server_->start({"--durability", "none"});
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"GET", "kept"}).str, "1");
  EXPECT_TRUE(c.call({"GET", "lost"}).null);
}

TEST_F(ServerTest, DurabilityPeriodicSurvivesAProcessCrash) {
  // A process crash loses nothing in periodic mode: write(2) returned, the kernel has it.
  server_->start({"--durability", "periodic", "--fsync-interval-ms", "100000"});
  {
    RespClient c(server_->port());
    for (int i = 0; i < 100; i++) ASSERT_EQ(c.call({"SET", "k" + std::to_string(i), "v"}), std::string("OK"));
    EXPECT_EQ(info_field(c, "durability"), "periodic");
  }
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  server_->start({"--durability", "periodic"});
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"DBSIZE"}).integer, 100);
}

// The running server's log segment is preallocated: zeros after the records (INFO says how
// many were written), which a restart reads as the clean end of the log, nothing lost.
TEST_F(ServerTest, TheLogIsPreallocatedAndARestartReadsItWhole) {
  server_->start();
  {
    RespClient c(server_->port());
    for (int i = 0; i < 20; i++) ASSERT_EQ(c.call({"SET", "k" + std::to_string(i), "v"}), std::string("OK"));
    EXPECT_GE(std::stoull(info_field(c, "disk_preallocated_bytes")), storage::kLogPreallocateBytes);
    EXPECT_EQ(info_field(c, "disk_preallocate_failures"), "0");
  }
  auto logs = files(".hmlog");
  ASSERT_EQ(logs.size(), 1u);
  std::string data;
  ASSERT_TRUE(storage::Env::posix()->read_file(server_->data_dir() + "/" + logs[0], &data));
  size_t records_end = data.find_last_not_of('\0') + 1;
  EXPECT_GE(data.size() - records_end, storage::kLogPreallocateBytes / 2) << "zeros after the records";
  EXPECT_EQ(server_->stop(SIGKILL), 128 + SIGKILL);
  server_->start();
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"DBSIZE"}).integer, 20);
  EXPECT_EQ(server_->read_log().find("torn"), std::string::npos) << "zeros are not a torn tail";
}

TEST_F(ServerTest, CorruptLogRefusesToStartWithFileAndOffset) {
  server_->start();
  {
    RespClient c(server_->port());
    for (int i = 0; i < 50; i++) ASSERT_EQ(c.call({"SET", "k" + std::to_string(i), std::string(100, 'x')}), std::string("OK"));
  }
  ASSERT_EQ(server_->stop(), 0);
  auto logs = files(".hmlog");
  ASSERT_FALSE(logs.empty());
  std::string path = server_->data_dir() + "/" + logs[0];
  {
    // Flip a byte in the middle of the log's records (not of the preallocated zeros after
    // them): damage, not a torn tail.
    std::string data;
    ASSERT_TRUE(storage::Env::posix()->read_file(path, &data));
    size_t records_end = data.find_last_not_of('\0') + 1;
    ASSERT_GT(records_end, 1000u);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(records_end / 2));
    char c = static_cast<char>(data[records_end / 2] ^ 0x5a);
    f.write(&c, 1);
  }
  int code = server_->run_to_exit();
  EXPECT_EQ(code, 2);
  std::string log = server_->read_log();
  EXPECT_NE(log.find(logs[0]), std::string::npos) << log;
  EXPECT_NE(log.find("offset"), std::string::npos) << log;
}

// Installing a leader's snapshot replaces a follower's whole log but writes nothing to the
// log, so the old log's entries after the snapshot's index stay on disk until overwritten.
// Recovery drops them (their term is below the snapshot's) instead of handing the core a
// log whose terms go back, on which it aborted at every start (found by the simulator).
// Built by hand here: a snapshot of term >= 2, then entries of an older term after it.
TEST_F(ServerTest, EntriesAfterTheSnapshotWithAnOlderTermAreDroppedAtRecovery) {
  server_->start();
  {
    RespClient c(server_->port());
    ASSERT_EQ(c.call({"SET", "a", "1"}), std::string("OK"));
  }
  ASSERT_EQ(server_->stop(), 0);
  server_->start();  // a single node elects itself again: a newer term
  {
    RespClient c(server_->port());
    ASSERT_EQ(c.call({"SET", "b", "2"}), std::string("OK"));
    ASSERT_EQ(c.call({"SNAPSHOT"}).type, '+');
  }
  ASSERT_EQ(server_->stop(), 0);
  storage::Env* env = storage::Env::posix();
  storage::LoadedSnapshot snap;
  ASSERT_TRUE(storage::read_latest_snapshot(env, server_->data_dir(), &snap).is_ok());
  ASSERT_GE(snap.meta.term, 2u);
  const raft::Index s = snap.meta.index;
  const raft::Term t = snap.meta.term;
  {
    storage::RecoveredLog log;
    ASSERT_TRUE(storage::recover_log(env, server_->data_dir(), s, &log).is_ok());
    std::unique_ptr<storage::LogWriter> w;
    ASSERT_TRUE(storage::LogWriter::open(env, server_->data_dir(), storage::LogOptions{}, &w).is_ok());
    std::vector<raft::Entry> stale;
    for (raft::Index i = s + 1; i <= s + 3; i++) stale.push_back(raft::Entry{t - 1, i, raft::EntryType::kNoop, 0, ""});
    ASSERT_TRUE(w->append(nullptr, stale).is_ok());
    ASSERT_TRUE(w->sync().is_ok());
  }
  server_->start();
  EXPECT_NE(server_->read_log().find(fmt::format("dropped log entries {}..{}", s + 1, s + 3)), std::string::npos)
      << server_->read_log();
  {
    RespClient c(server_->port());
    EXPECT_EQ(c.call({"GET", "a"}).str, "1");
    EXPECT_EQ(c.call({"GET", "b"}).str, "2");
    ASSERT_EQ(c.call({"SET", "c", "3"}), std::string("OK"));
  }
  // The new entries overwrote the leftovers: the next start finds nothing to drop.
  ASSERT_EQ(server_->stop(), 0);
  server_->start();
  EXPECT_EQ(server_->read_log().find("dropped log entries"), std::string::npos) << server_->read_log();
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"GET", "c"}).str, "3");
}

// The same leftovers when their term is not below the snapshot's (overlapping leaders: the
// snapshot's last entry was committed by a later leader): the log's own entry at the
// snapshot's index has another term, and no entry was written after a hard state whose
// commit reached that index, so they are the replaced log's. Kept, they broke log matching
// (found by the simulator). Built by hand: a snapshot at S of term 2, and a log whose
// entries 1..S are of term 1 and S+1, S+2 of term 2, under a hard state of commit 0.
TEST_F(ServerTest, LeftoversOfTheSnapshotsTermAreDroppedAtRecoveryToo) {
  server_->start();
  ASSERT_EQ(server_->stop(), 0);
  server_->start();  // term 2
  {
    RespClient c(server_->port());
    ASSERT_EQ(c.call({"SET", "a", "1"}), std::string("OK"));
    ASSERT_EQ(c.call({"SNAPSHOT"}).type, '+');
  }
  ASSERT_EQ(server_->stop(), 0);
  storage::Env* env = storage::Env::posix();
  storage::LoadedSnapshot snap;
  ASSERT_TRUE(storage::read_latest_snapshot(env, server_->data_dir(), &snap).is_ok());
  ASSERT_GE(snap.meta.term, 2u);
  const raft::Index s = snap.meta.index;
  const raft::Term t = snap.meta.term;
  for (const std::string& name : files(".hmlog")) std::filesystem::remove(server_->data_dir() + "/" + name);
  {
    std::unique_ptr<storage::LogWriter> w;
    ASSERT_TRUE(storage::LogWriter::open(env, server_->data_dir(), storage::LogOptions{}, &w).is_ok());
    std::vector<raft::Entry> old;
    for (raft::Index i = 1; i <= s + 2; i++) old.push_back(raft::Entry{i <= s ? t - 1 : t, i, raft::EntryType::kNoop, 0, ""});
    raft::HardState hs{t, 1, 0};
    ASSERT_TRUE(w->append(&hs, old).is_ok());
    ASSERT_TRUE(w->sync().is_ok());
  }
  server_->start();
  EXPECT_NE(server_->read_log().find(fmt::format("dropped log entries {}..{}", s + 1, s + 2)), std::string::npos)
      << server_->read_log();
  {
    RespClient c(server_->port());
    EXPECT_EQ(c.call({"GET", "a"}).str, "1");
    ASSERT_EQ(c.call({"SET", "b", "2"}), std::string("OK"));
  }
  // What this run wrote follows the hard state recovery wrote first (commit = the
  // snapshot's index), so the next start keeps it: nothing dropped, b still there.
  ASSERT_EQ(server_->stop(), 0);
  server_->start();
  EXPECT_EQ(server_->read_log().find("dropped log entries"), std::string::npos) << server_->read_log();
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"GET", "a"}).str, "1");
  EXPECT_EQ(c.call({"GET", "b"}).str, "2");
}

// Appends to the stopped server's log one normal entry after its last, of the same term.
void append_normal_entry(const std::string& dir, uint32_t schema_version, const std::string& payload) {
  storage::Env* env = storage::Env::posix();
  storage::RecoveredLog log;
  ASSERT_TRUE(storage::recover_log(env, dir, 0, &log).is_ok());
  ASSERT_FALSE(log.entries.empty());
  const raft::Entry& last = log.entries.back();
  std::unique_ptr<storage::LogWriter> w;
  ASSERT_TRUE(storage::LogWriter::open(env, dir, storage::LogOptions{}, &w).is_ok());
  std::vector<raft::Entry> more = {raft::Entry{last.term, last.index + 1, raft::EntryType::kNormal, schema_version, payload}};
  ASSERT_TRUE(w->append(nullptr, more).is_ok());
  ASSERT_TRUE(w->sync().is_ok());
}

// A command batch of one command, or of one activation.
std::string batch_of(std::vector<std::string_view> words) {
  core::BatchBuilder b(1'700'000'000'000);
  b.add(Args(words.data(), words.size()));
  return b.finish();
}
std::string activation_of(uint32_t version) {
  core::BatchBuilder b(1'700'000'000'000);
  b.add_activation(version);
  return b.finish();
}

// The active schema version in INFO, and what the leader refuses to activate.
TEST_F(ServerTest, InfoShowsTheSchemaVersionsAndTheLeaderRefusesOneItDoesNotRead) {
  server_->start();
  RespClient c(server_->port());
  EXPECT_EQ(info_field(c, "schema_version"), "1");
  EXPECT_EQ(info_field(c, "schema_version_oldest"), "1");
  EXPECT_EQ(info_field(c, "schema_version_active"), "1");
  EXPECT_EQ(c.call({"CLUSTER", "SCHEMA", "ACTIVATE", "2"}).str,
            "ERR this node reads schema versions 1..1 of app tinykv: it cannot activate version 2");
  EXPECT_EQ(c.call({"CLUSTER", "SCHEMA", "ACTIVATE", "1"}).str, "ERR schema version 1 is not above the active version 1");
  EXPECT_EQ(c.call({"CLUSTER", "SCHEMA", "ACTIVATE", "x"}).str, "ERR usage: CLUSTER SCHEMA ACTIVATE <schema version>");
  EXPECT_EQ(c.call({"CLUSTER", "SCHEMA"}).str, "ERR usage: CLUSTER SCHEMA ACTIVATE <schema version>");
}

// A committed entry that does not mean to this binary what it meant where it was logged
// stops the node, naming it (exit 5); one of a version it does not read, too (exit 1).
// Nothing after the entry before it is applied, and no client is answered from it.
TEST_F(ServerTest, AnEntryThatDoesNotApplyUnderItsVersionStopsTheNode) {
  struct Case {
    uint32_t stamp;
    std::string payload;
    int code;
    std::string says;
  };
  const std::vector<Case> cases = {
      {1, batch_of({"INCRBY", "k", "ten"}), 5,
       "schema version 1) diverges: its command 1 ('INCRBY', 3 words) does not apply under schema version 1: ERR "
       "value is not an integer"},
      {1, batch_of({"NOSUCH", "k"}), 5, "schema version 1 has no write of that name"},
      // (Above the active version but read by the binary: tests/apps/versions_test.cc.)
      {7, batch_of({"SET", "k", "v"}), 1,
       "was logged under schema version 7 of app 'tinykv'; this binary reads versions 1..1: upgrade the binary"},
      {1, activation_of(2), 1, "activates schema version 2 of app 'tinykv'; this binary reads versions 1..1"},
  };
  for (const Case& c : cases) {
    std::filesystem::remove_all(server_->data_dir());
    server_->start();
    {
      RespClient client(server_->port());
      ASSERT_EQ(client.call({"SET", "a", "1"}), std::string("OK"));
    }
    ASSERT_EQ(server_->stop(), 0);
    append_normal_entry(server_->data_dir(), c.stamp, c.payload);
    EXPECT_EQ(server_->run_to_exit(), c.code) << c.says;
    const std::string log = server_->read_log();
    EXPECT_NE(log.find(c.says), std::string::npos) << log;
    EXPECT_NE(log.find("Nothing was applied past index"), std::string::npos) << log;
  }
}

// While version 1 is active a version-2 binary writes its snapshots in version 1's layout
// (the older binary loads them: an upgrade can be abandoned); when the app's save_as refuses
// the state, the snapshot is written in the newest layout instead, said in the log, and
// loads at restart.
TEST_F(ServerTest, SnapshotsAreInTheActiveVersionsLayoutUnlessSaveAsRefuses) {
  ASSERT_EQ(::setenv("HMDB_TINY_APP", "two-layouts", 1), 0);
  server_->start();
  ::unsetenv("HMDB_TINY_APP");
  auto newest_layout = [&] {
    std::vector<std::string> paths;
    EXPECT_TRUE(storage::list_snapshots(storage::Env::posix(), server_->data_dir(), &paths));
    storage::LoadedSnapshot snap;
    EXPECT_FALSE(paths.empty());
    EXPECT_TRUE(storage::read_snapshot_file(storage::Env::posix(), paths.back(), &snap));
    return snap.meta.schema_version;
  };
  {
    RespClient c(server_->port());
    EXPECT_EQ(info_field(c, "schema_version"), "2");
    EXPECT_EQ(info_field(c, "schema_version_active"), "1");
    ASSERT_EQ(c.call({"SET", "a", "1"}), std::string("OK"));
    ASSERT_EQ(c.call({"SNAPSHOT"}).type, '+');
    EXPECT_EQ(newest_layout(), 1u);
    ASSERT_EQ(c.call({"SET", "v2-only", "x"}), std::string("OK"));
    RespValue v = c.call({"SNAPSHOT"});
    ASSERT_EQ(v.type, '+') << v.str;
    EXPECT_EQ(newest_layout(), 2u);
    EXPECT_NE(server_->read_log().find("in schema version 1's layout (its save_as refused); writing this binary's "
                                       "layout (version 2) instead, which a binary that reads only version 1 cannot load"),
              std::string::npos);
  }
  ASSERT_EQ(server_->stop(), 0);
  ASSERT_EQ(::setenv("HMDB_TINY_APP", "two-layouts", 1), 0);
  server_->start();
  ::unsetenv("HMDB_TINY_APP");
  EXPECT_NE(server_->read_log().find("loading snapshot"), std::string::npos);
  RespClient c(server_->port());
  EXPECT_EQ(c.call({"GET", "v2-only"}).str, "x");
  EXPECT_EQ(c.call({"GET", "a"}).str, "1");
}

// An app that defines a command the shell answers first (PING) is refused before anything
// is served: exit 1, the message naming the app, the command and why.
TEST_F(ServerTest, AnAppDefiningAReservedNameIsRefusedAtStartup) {
  ASSERT_EQ(::setenv("HMDB_TINY_APP", "reserved-name", 1), 0);
  const int code = server_->run_to_exit();
  ::unsetenv("HMDB_TINY_APP");
  EXPECT_EQ(code, 1);
  const std::string log = server_->read_log();
  EXPECT_NE(log.find("hmdb: the app's definition is refused: hmdb: app tinykv: command PING is reserved: the server "
                     "answers PING itself, before any app command, so the app's would never run"),
            std::string::npos)
      << log;
  EXPECT_FALSE(std::filesystem::exists(server_->data_dir())) << "refused before the data directory was made";
}

TEST_F(ServerTest, BadFlagsAreRefusedAndVersionWorks) {
  EXPECT_NE(server_->run_to_exit({"--durability", "sometimes"}), 0);
  EXPECT_EQ(ServerProcess::run_command({kBinary, "version"}, dir_ + "/version.log"), 0);
}

}  // namespace
}  // namespace hmdb::test
