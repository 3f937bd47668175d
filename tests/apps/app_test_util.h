// tests/apps/app_test_util.h — drives an app through hmdb::AppHost the way the server does:
// a write is validated (its error never reaches apply, as it would never reach the log),
// then logged as a one-command batch stamped with the leader's clock and applied through the
// engine's one apply path (core::apply_batch, as every node applies entries); a query runs
// with a QueryContext.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "core/apply.h"
#include "core/batch.h"
#include "hmdb/app.h"

namespace hmdb::testing {

template <class App>
class AppDriver {
 public:
  // An arbitrary, fixed leader clock (2023-11-14): tests move it explicitly.
  static constexpr uint64_t kStartMs = 1'700'000'000'000;

  uint64_t now_ms = kStartMs;
  uint64_t index = 0;  // log index of the last applied entry
  Protocol protocol = Protocol::kResp2;  // the client's protocol (HELLO 3: kResp3)
  AppHost<App> host;

  // One command as a client would send it; returns the RESP reply.
  std::string run(std::initializer_list<std::string_view> words) {
    return run(std::vector<std::string_view>(words));
  }
  std::string run(const std::vector<std::string_view>& words) {
    Args argv(words.data(), words.size());
    std::string out;
    Reply reply(&out, protocol);
    switch (host.kind(argv.empty() ? std::string_view() : argv[0])) {
      case CommandKind::kWrite: {
        std::string error;
        if (!host.validate(argv, &error)) { reply.error(error); break; }
        core::BatchBuilder batch(now_ms);
        batch.add(argv);
        const std::string entry = batch.finish();
        struct OneReply final : core::ApplySink {
          core::ReplyTo to;
          core::ReplyTo reply_to(size_t) override { return to; }
          void replied(size_t) override {}
        } sink;
        sink.to = core::ReplyTo{&out, protocol};
        const core::ApplyResult r = core::apply_batch(host, entry, ++index, App::kSchemaVersion, &sink, scratch_);
        if (r.status != core::ApplyStatus::kOk || r.commands != 1) reply.error("ERR test driver: the batch did not apply");
        break;
      }
      case CommandKind::kQuery: {
        QueryContext ctx;
        ctx.now_ms = now_ms;
        host.query(argv, ctx, reply);
        break;
      }
      case CommandKind::kUnknown:
        reply.error("ERR unknown command");
        break;
    }
    return out;
  }
  std::string run_strings(const std::vector<std::string>& words) {
    std::vector<std::string_view> views(words.begin(), words.end());
    return run(views);
  }

  core::ApplyScratch scratch_;

  std::string snapshot() const {
    Encoder enc;
    host.save(enc);
    return enc.take();
  }
  bool restore(std::string_view bytes, uint32_t version = App::kSchemaVersion) {
    Decoder dec(bytes);
    return host.load(dec, version);
  }
};

// RESP helpers for expected replies.
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
