// hmdb/testing.h — test an application without a server: a driver that runs commands
// through the app as a node does, and helpers that spell expected RESP replies.
//
// A write is validated first (a refused write answers its error and never reaches apply, as
// it would never reach the log), then packed into a one-command log entry stamped with the
// driver's leader clock (now_ms) and applied through the engine's one apply path, the code
// every node runs for a committed entry. A query runs against the state with a QueryContext
// whose clock is now_ms. Everything is deterministic: time moves only when the test moves
// now_ms.
//
//   #include <hmdb/testing.h>
//   hmdb::testing::Driver db(hmdb::registered_app());   // the app of HMDB_APP(...) (hmdb/server.h)
//   EXPECT_EQ(db.run({"BOOK.ADD", "b1", "Dune"}), hmdb::testing::kOk);
//   EXPECT_EQ(db.run({"BOOK.GET", "b1"}), ...);
//
// Driver works on any StateMachine; AppDriver<App> is the same with the typed AppHost<App>
// in reach (db.host.state()) for an app whose definition the test can see.
//
// Each reply is checked to be exactly one complete RESP value in the driver's protocol
// (hmdb/reply.h, reply_problem: not two values, not an array header with fewer elements, ...);
// run() throws std::logic_error naming the command and the problem otherwise, which fails
// the test that ran it.
//
// Replies are returned as RESP bytes, so a test compares them with the helpers at the end
// (bulk, integer, error, array, kOk, kNil, ...). The driver does not depend on a test
// framework: the engine's own tests and the app scaffold use GoogleTest, but any framework
// (or plain assert) works. Link the hmdb::testing CMake target (hmdb_add_app's TESTS does).
//
// Thread-safety: none; one driver per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hmdb/app.h"
#include "hmdb/codec.h"
#include "hmdb/reply.h"
#include "hmdb/server.h"
#include "hmdb/state_machine.h"

namespace hmdb::testing {

// Where apply_write applies a write in slices, as a node does (hmdb::ApplyProducer,
// ApplyContext::produce): slice_elements a slice (0: whole, as in recovery); before each
// slice `between` runs (a test reads the state there: the write has not happened yet);
// `slices` counts the slices made (0: the write was applied whole).
struct WriteSlicing {
  size_t slice_elements = 0;
  std::function<void()> between;
  size_t slices = 0;
};

// Applies the write argv to app as a node applies a committed log entry that holds only it:
// a one-command batch with leader time now_ms at log index `index`, logged under the app's
// active schema version (as a leader logs it), through the engine's apply path. The reply is appended to *out in
// `protocol`. Returns false if the engine did not apply the entry (never, for a command
// validate() accepted). The events it emits (ApplyContext::publish, keyspace_event; a
// PUBLISH) go to `events` if given. Defined in the hmdb_testing library.
// With `slicing` (its slice_elements not 0), a big write is applied in slices.
bool apply_write(StateMachine& app, Args argv, uint64_t now_ms, uint64_t index, Protocol protocol, std::string* out,
                 EventSink* events = nullptr, WriteSlicing* slicing = nullptr);

// An EventSink that keeps what a write emitted, for tests of an app's events
// (docs/subscriptions.md): Driver::events = &recorder.
struct RecordedEvents final : EventSink {
  struct Event {
    std::string channel, message;  // publish(); for a keyspace event: "", ""
    uint32_t keyspace_type = 0;    // keyspace_event(): its class (hmdb::keyspace), event and key
    std::string event, key;
    bool operator==(const Event&) const = default;
  };
  std::vector<Event> events;
  void publish(std::string_view channel, std::string_view message) override {
    events.push_back(Event{std::string(channel), std::string(message), 0, {}, {}});
  }
  void keyspace_event(uint32_t type, std::string_view event, std::string_view key) override {
    events.push_back(Event{{}, {}, type, std::string(event), std::string(key)});
  }
  // The events so far, taken.
  std::vector<Event> take() { return std::exchange(events, {}); }
};

class Driver {
 public:
  // An arbitrary, fixed leader clock (2023-11-14T22:13:20Z): tests move it explicitly.
  static constexpr uint64_t kStartMs = 1'700'000'000'000;

  // Drives an app the driver owns (hmdb::registered_app() gives the app of HMDB_APP).
  explicit Driver(std::unique_ptr<StateMachine> app) : owned_(std::move(app)), app_(owned_.get()) {}
  // Drives an app someone else owns, which must outlive the driver.
  explicit Driver(StateMachine& app) : app_(&app) {}
  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;

  uint64_t now_ms = kStartMs;            // the leader clock stamped into the next write's entry
  uint64_t index = 0;                    // log index of the last applied entry
  Protocol protocol = Protocol::kResp2;  // the client's protocol (after HELLO 3: kResp3)
  EventSink* events = nullptr;           // gets the events writes emit (RecordedEvents), if set
  // Queries' big replies made in slices of this many elements, as a node makes them
  // (hmdb::ReplyProducer, QueryContext::produce); 0: whole, as inside EXEC. last_slices: how
  // many slices the last query's reply took (0: it was not sliced).
  size_t slice_elements = 0;
  size_t last_slices = 0;
  // Writes applied in slices (WriteSlicing: write_slicing.slice_elements; 0: whole, as in
  // recovery). write_slicing.slices: how many slices the last write took; .between runs
  // before each slice (queries only: no write may run while one is half applied).
  WriteSlicing write_slicing;

  // One command as a client would send it; returns the RESP reply.
  std::string run(std::initializer_list<std::string_view> words) { return run(std::vector<std::string_view>(words)); }
  std::string run(const std::vector<std::string_view>& words) {
    const Args argv(words.data(), words.size());
    std::string out;
    Reply reply(&out, protocol);
    switch (app_->kind(argv.empty() ? std::string_view() : argv[0])) {
      case CommandKind::kWrite: {
        std::string error;
        // The driver stands for the engine too: a test runs the app's housekeeping command
        // (engine-only, refused to clients by validate) as the leader logs it.
        if (!app_->validate_housekeeping(argv, &error, nullptr)) {
          reply.error(error);
          break;
        }
        // A write with a reply for when it changes nothing (StateMachine::unchanged_reply),
        // which a node may answer without logging it: applied anyway, and its promise checked.
        std::string unchanged;
        bool claims_unchanged = false;
        uint64_t digest_before = 0;
        if (app_->has_unchanged_replies()) {
          Reply unchanged_reply(&unchanged, protocol);
          QueryContext ctx;
          ctx.now_ms = now_ms;
          claims_unchanged = app_->unchanged_reply(argv, ctx, unchanged_reply);
          if (claims_unchanged) digest_before = app_->digest();
        }
        CountingEvents counted(events);
        write_slicing.slices = 0;
        if (!apply_write(*app_, argv, now_ms, ++index, protocol, &out, claims_unchanged ? &counted : events,
                         &write_slicing))
          reply.error("ERR test driver: the engine did not apply the entry");
        if (claims_unchanged) check_unchanged(argv, unchanged, out, digest_before, counted.count);
        break;
      }
      case CommandKind::kQuery: {
        QueryContext ctx;
        ctx.now_ms = now_ms;
        std::unique_ptr<ReplyProducer> producer;
        if (slice_elements != 0) {
          ctx.slice_elements = slice_elements;
          ctx.producer = &producer;
        }
        last_slices = 0;
        app_->query(argv, ctx, reply);
        if (producer) {
          do last_slices++;
          while (!producer->next(reply, SliceBudget{slice_elements, SIZE_MAX}));
        }
        break;
      }
      case CommandKind::kUnknown:
        reply.error("ERR unknown command");
        break;
    }
    // Every reply, in any build: a command that wrote two values, or an array header and
    // fewer elements, would desynchronise a real client.
    if (std::string problem = reply_problem(out, protocol); !problem.empty())
      throw std::logic_error("hmdb testing: command " + std::string(argv.empty() ? "" : argv[0]) + " wrote " + problem);
    return out;
  }
  std::string run_strings(const std::vector<std::string>& words) {
    return run(std::vector<std::string_view>(words.begin(), words.end()));
  }

  // The app's snapshot encoding (save()), and loading it back as a restarting node would.
  std::string snapshot() const {
    Encoder enc;
    app_->save(enc);
    return enc.take();
  }
  bool restore(std::string_view bytes) { return restore(bytes, app_->schema_version()); }
  bool restore(std::string_view bytes, uint32_t version) {
    Decoder dec(bytes);
    return app_->load(dec, version);
  }

  // The digest nodes compare (equal states, equal digests) and the app's INFO lines.
  uint64_t digest() const { return app_->digest(); }
  std::string info() const { return app_->info(); }
  StateMachine& app() { return *app_; }

 private:
  // Counts the events a write emits, passing them on.
  struct CountingEvents final : EventSink {
    explicit CountingEvents(EventSink* to) : to(to) {}
    void publish(std::string_view channel, std::string_view message) override {
      count++;
      if (to) to->publish(channel, message);
    }
    void keyspace_event(uint32_t type, std::string_view event, std::string_view key) override {
      count++;
      if (to) to->keyspace_event(type, event, key);
    }
    EventSink* to;
    size_t count = 0;
  };
  // The write argv's unchanged_reply said it changes nothing and answers `unchanged`; its
  // apply answered `applied`, emitted `events` and left the digest where `digest_before` was.
  void check_unchanged(Args argv, const std::string& unchanged, const std::string& applied, uint64_t digest_before,
                       size_t events) const {
    const std::string what = "hmdb testing: command " + std::string(argv[0]) + "'s unchanged_reply said it changes nothing";
    if (unchanged != applied)
      throw std::logic_error(what + " and answers " + printable(unchanged) + ", but its apply answers " + printable(applied));
    if (app_->digest() != digest_before) throw std::logic_error(what + ", but its apply changed the state");
    if (events != 0) throw std::logic_error(what + ", but its apply emitted " + std::to_string(events) + " events");
  }
  static std::string printable(std::string_view resp) {
    std::string out = "'";
    for (char c : resp) out += c == '\r' ? std::string("\\r") : c == '\n' ? std::string("\\n") : std::string(1, c);
    return out + "'";
  }

  std::unique_ptr<StateMachine> owned_;
  StateMachine* app_;
};

namespace detail {
// Holds the AppHost so that it is built before the Driver base that points at it.
template <class App>
struct HostHolder {
  AppHost<App> host;
};
}  // namespace detail

// A Driver over an AppHost<App> it owns, with the typed state in reach: db.host.state().
template <class App>
class AppDriver : public detail::HostHolder<App>, public Driver {
 public:
  AppDriver() : Driver(static_cast<StateMachine&>(this->host)) {}
  using detail::HostHolder<App>::host;
};

// ---- expected replies (RESP2 bytes) -----------------------------------------------------
inline std::string bulk(std::string_view s) { return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n"; }
inline std::string integer(int64_t v) { return ":" + std::to_string(v) + "\r\n"; }
inline std::string error(std::string_view s) { return "-" + std::string(s) + "\r\n"; }
inline std::string array(std::initializer_list<std::string> items) {
  std::string out = "*" + std::to_string(items.size()) + "\r\n";
  for (const auto& i : items) out += i;
  return out;
}
inline const std::string kOk = "+OK\r\n";
inline const std::string kNil = "$-1\r\n";
inline const std::string kNilArray = "*-1\r\n";
inline const std::string kEmptyArray = "*0\r\n";

}  // namespace hmdb::testing
