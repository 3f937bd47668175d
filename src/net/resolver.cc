// net/resolver.cc — the lookup thread behind net/resolver.h.
#include "net/resolver.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

namespace hmdb::net {

// Outlives the Resolver while a detached lookup thread still holds it.
struct Resolver::Shared {
  explicit Shared(Lookup l) : lookup(std::move(l)), event_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~Shared() {
    if (event_fd >= 0) ::close(event_fd);
  }

  const Lookup lookup;
  const int event_fd;
  std::mutex mu;
  std::condition_variable wake;
  // Guarded by mu:
  std::deque<std::pair<std::string, uint16_t>> queue;
  std::set<std::pair<std::string, uint16_t>> pending;  // queued or being looked up
  std::vector<Answer> answers;
  bool thread_started = false;
  bool stopped = false;  // the Resolver is gone: exit, drop what is in flight
};

Resolver::Resolver(Lookup lookup) : shared_(std::make_shared<Shared>(std::move(lookup))) {}

Resolver::~Resolver() {
  std::lock_guard<std::mutex> lock(shared_->mu);
  shared_->stopped = true;
  shared_->wake.notify_all();
}

int Resolver::fd() const { return shared_->event_fd; }

bool Resolver::ask(const std::string& host, uint16_t port) {
  std::lock_guard<std::mutex> lock(shared_->mu);
  if (shared_->event_fd < 0) return false;
  const auto key = std::make_pair(host, port);
  if (shared_->pending.count(key) != 0) return true;
  if (shared_->pending.size() >= kMaxPendingLookups) return false;
  if (!shared_->thread_started) {
    try {
      std::thread(lookup_loop, shared_).detach();
    } catch (const std::system_error&) {
      return false;  // no thread (resource limits): the caller retries later
    }
    shared_->thread_started = true;
  }
  shared_->pending.insert(key);
  shared_->queue.push_back(key);
  shared_->wake.notify_one();
  return true;
}

std::vector<Resolver::Answer> Resolver::take() {
  // Under the lock, as the lookup thread writes it: fd() is readable exactly while answers
  // wait (no wakeup without an answer).
  std::lock_guard<std::mutex> lock(shared_->mu);
  uint64_t count = 0;
  [[maybe_unused]] ssize_t r = ::read(shared_->event_fd, &count, sizeof count);  // EAGAIN: nothing new
  return std::exchange(shared_->answers, {});
}

void Resolver::lookup_loop(std::shared_ptr<Shared> s) {
  std::unique_lock<std::mutex> lock(s->mu);
  for (;;) {
    s->wake.wait(lock, [&] { return s->stopped || !s->queue.empty(); });
    if (s->stopped) return;
    auto [host, port] = s->queue.front();
    s->queue.pop_front();
    lock.unlock();
    Resolver::Answer a;
    a.host = host;
    a.port = port;
    a.status = s->lookup(host, port, &a.address);
    lock.lock();
    if (s->stopped) return;
    s->pending.erase({host, port});
    s->answers.push_back(std::move(a));
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t w = ::write(s->event_fd, &one, sizeof one);  // wakes the owner's epoll
  }
}

}  // namespace hmdb::net
