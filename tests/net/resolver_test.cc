// tests/net/resolver_test.cc — net/resolver.h: ask() returns while a lookup blocks, the
// answer arrives through fd() (no sleeps: the test waits in ::poll on it), a host:port
// asked twice is looked up once, failures come back as answers, and destroying the
// Resolver never waits for a lookup in flight.
#include "net/resolver.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace hmdb::net {
namespace {

// Hang guard for waiting on fd(); never reached when the resolver works.
constexpr int kWaitMs = 20000;

// A lookup that blocks until released, counting calls.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::atomic<int> calls{0};
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

Resolver::Lookup gated(std::shared_ptr<Gate> gate) {
  return [gate](const std::string& host, uint16_t port, SocketAddress* out) {
    gate->calls++;
    std::unique_lock<std::mutex> lock(gate->mu);
    gate->cv.wait(lock, [&] { return gate->open; });
    if (host == "nowhere.test") return Status::invalid_argument("cannot resolve nowhere.test: no such host");
    return numeric_address("127.0.0.1", port, out) ? Status::ok() : Status::invalid_argument("?");
  };
}

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(Resolver, AnswersArriveThroughFdWhileTheCallerNeverBlocks) {
  auto gate = std::make_shared<Gate>();
  Resolver r(gated(gate));
  ASSERT_GE(r.fd(), 0);
  EXPECT_TRUE(r.ask("db-1.test", 7000));  // returns although the lookup blocks
  EXPECT_TRUE(r.ask("db-1.test", 7000));  // already being resolved: no second lookup
  EXPECT_TRUE(r.ask("nowhere.test", 7000));
  EXPECT_FALSE(readable(r.fd(), 0));
  EXPECT_TRUE(r.take().empty());
  gate->release();
  std::vector<Resolver::Answer> answers;
  while (answers.size() < 2) {
    ASSERT_TRUE(readable(r.fd(), kWaitMs));
    for (auto& a : r.take()) answers.push_back(std::move(a));
  }
  EXPECT_EQ(gate->calls.load(), 2);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].host, "db-1.test");
  EXPECT_EQ(answers[0].port, 7000);
  ASSERT_TRUE(answers[0].status) << answers[0].status.to_string();
  EXPECT_EQ(answers[0].address.to_string(), "127.0.0.1:7000");
  EXPECT_EQ(answers[1].host, "nowhere.test");
  EXPECT_FALSE(answers[1].status);
  EXPECT_NE(answers[1].status.message().find("no such host"), std::string::npos);
  EXPECT_FALSE(readable(r.fd(), 0)) << "take() drained the event";
  // Answered names may be asked again (a redial looks the name up afresh).
  EXPECT_TRUE(r.ask("db-1.test", 7000));
  ASSERT_TRUE(readable(r.fd(), kWaitMs));
  EXPECT_EQ(r.take().size(), 1u);
  EXPECT_EQ(gate->calls.load(), 3);
}

TEST(Resolver, DestroyingItDoesNotWaitForALookupInFlight) {
  auto gate = std::make_shared<Gate>();
  {
    Resolver r(gated(gate));
    ASSERT_TRUE(r.ask("db-1.test", 7000));
    while (gate->calls.load() == 0) std::this_thread::yield();  // the lookup is in flight
  }  // returns with the lookup still blocked
  gate->release();  // the detached thread finishes and drops the answer
}

TEST(Resolver, PendingLookupsAreBounded) {
  auto gate = std::make_shared<Gate>();
  Resolver r(gated(gate));
  for (size_t i = 0; i < kMaxPendingLookups; i++) ASSERT_TRUE(r.ask("host-" + std::to_string(i) + ".test", 1));
  EXPECT_FALSE(r.ask("one-more.test", 1));
  EXPECT_TRUE(r.ask("host-0.test", 1)) << "a name already pending is not a new lookup";
  gate->release();
}

}  // namespace
}  // namespace hmdb::net
