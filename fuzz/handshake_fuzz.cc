// fuzz/handshake_fuzz.cc — libFuzzer target for the handshake's argument parsing
// (server/handshake.h: HELLO's options, AUTH, client names) and the reply writers it feeds
// (hmdb/reply.h).
//
// The input is split into words at NUL bytes; the words are given to parse_hello and
// auth_error as HELLO's and AUTH's arguments, once with no password configured and once
// with the password "secret". Properties: no crash; HELLO either errs and switches
// nothing, or switches to 2 or 3; a name it takes is a valid client name; HELLO
// authenticates only with the default user and (when one is set) its password; AUTH
// succeeds only for the default user and (when one is set) its password; every reply the shell would write from the outcome
// (the error, or HELLO's map with the name) is one complete RESP value in RESP2 and RESP3
// as the client side's scanner (net/resp_reply.h) reads it.
//
// Built two ways like the other targets: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt),
// and with -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays the corpus (tests/server).
// `handshake_fuzz_replay --make-seeds DIR` writes the seed corpus (fuzz/corpus/handshake_fuzz).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/assert.h"
#include "hmdb/reply.h"
#include "hmdb/text.h"
#include "net/resp_reply.h"
#include "server/handshake.h"

namespace {

using hmdb::Protocol;
using hmdb::Reply;

void check_one_value(const std::string& bytes) {
  hmdb::net::ScannedReply s;
  HMDB_ASSERT(hmdb::net::scan_reply(bytes.data(), bytes.size(), &s) == hmdb::net::ScanResult::kComplete &&
                  s.length == bytes.size(),
              "a reply the writers built is not one complete RESP value");
}

void render_both(const std::string& error, std::string_view name) {
  for (Protocol p : {Protocol::kResp2, Protocol::kResp3}) {
    std::string out;
    Reply r(&out, p);
    if (!error.empty()) {
      r.error(error);
    } else {
      r.map(3);
      r.bulk("name");
      r.bulk(name);
      r.bulk("proto");
      r.integer(static_cast<int>(p));
      r.bulk("info");
      r.verbatim(name);
    }
    check_one_value(out);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> words;
  for (size_t start = 0;;) {
    const size_t end = input.find('\0', start);
    words.push_back(input.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  using hmdb::server::kDefaultUser;
  for (const std::string_view password : {std::string_view(), std::string_view("secret")}) {
    const hmdb::server::DefaultUser user(password);
    auto right = [&](std::string_view name, std::string_view pass) {
      return name == kDefaultUser && (password.empty() || pass == password);
    };
    // HELLO's arguments after the command name.
    std::vector<std::string_view> hello = {"HELLO"};
    hello.insert(hello.end(), words.begin(), words.end());
    const hmdb::server::HelloRequest h = hmdb::server::parse_hello(hello, user);
    HMDB_ASSERT(h.error.empty() || !h.protocol, "HELLO switched the protocol and failed");
    HMDB_ASSERT(h.error.empty() || !h.authenticated, "HELLO authenticated and failed");
    HMDB_ASSERT(!h.protocol || *h.protocol == Protocol::kResp2 || *h.protocol == Protocol::kResp3, "bad protocol");
    HMDB_ASSERT(!h.name || hmdb::server::valid_client_name(*h.name), "HELLO took an invalid client name");
    if (h.authenticated) {
      bool any_right = false;  // some AUTH option in the words named the right credentials
      for (size_t i = 2; i + 2 < hello.size(); i++)
        any_right |= hmdb::iequals(hello[i], "AUTH") && right(hello[i + 1], hello[i + 2]);
      HMDB_ASSERT(any_right, "HELLO authenticated without the right credentials");
    }
    render_both(h.error, h.name.value_or(""));

    std::vector<std::string_view> auth = {"AUTH"};
    auth.insert(auth.end(), words.begin(), words.end());
    if (auth.size() >= 2) {
      const std::string error = hmdb::server::auth_error(auth, user);
      const bool ok = (auth.size() == 3 && right(auth[1], auth[2])) ||
                      (auth.size() == 2 && !password.empty() && auth[1] == password);
      HMDB_ASSERT(error.empty() == ok, "AUTH succeeded without the right credentials, or failed with them");
      render_both(error, "");
    }
  }
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include <fstream>

#include "replay_main.h"

namespace {

void write_seed(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

int make_seeds(const std::filesystem::path& dir) {
  using namespace std::string_literals;
  std::filesystem::create_directories(dir);
  write_seed(dir, "hello3", "3"s);
  write_seed(dir, "hello2_auth_setname", "2\0AUTH\0default\0secret\0SETNAME\0app"s);
  write_seed(dir, "hello_bad_user", "3\0auth\0bob\0x"s);
  write_seed(dir, "hello_bad_name", "3\0SETNAME\0a b\r\n"s);
  write_seed(dir, "hello_noproto", "4"s);
  write_seed(dir, "hello_not_integer", "three\0SETNAME"s);
  write_seed(dir, "auth_default", "default\0pw"s);
  write_seed(dir, "auth_password", "secret"s);
  write_seed(dir, "hello3_auth_password", "3\0AUTH\0default\0secret"s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
