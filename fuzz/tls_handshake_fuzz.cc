// fuzz/tls_handshake_fuzz.cc — libFuzzer target for the TLS server's handshake path as a
// client port (--tls-port) and a peer port (--tls-replication) run it: arbitrary bytes from
// a stranger arrive on a non-blocking socket, and the server side (net/tls.h: a server
// context, tls_read as client_io.cc's read_session_tls and the peer transport call it)
// answers.
//
// The first byte picks the context's client-certificate rule (yes, optional, no); the rest
// is what the stranger sends (at most kInputBytesMax), split into up to 4 writes at the
// offsets the next bytes give, so records and handshake messages arrive cut anywhere; then
// the stranger closes its sending side. The server reads after each write, draining what it
// answers (as the stranger would, so a full socket never stops it).
//
// Properties: no crash or sanitizer report; not one byte of application data is ever
// returned (a handshake cannot complete from bytes that do not know the server's random and
// key share, and none completes without a client certificate when one is required): what a
// stranger sends is never parsed as a command or a frame; and once the stranger closed, the
// connection ends (kClosed or kError) within kReadsAfterCloseMax reads, never waits forever.
//
// The certificates are the unit tests' throwaway ones (tests/net/tls_test_certs.h: 100-year
// validity, used nowhere else): the key is public, which is the point.
//
// Built two ways like the other targets: with clang -fsanitize=fuzzer (fuzz/CMakeLists.txt),
// and with -DHMDB_FUZZ_REPLAY_MAIN as a plain program that replays the corpus (tests/net).
// `tls_handshake_fuzz_replay --make-seeds DIR` writes the seed corpus: a real ClientHello from
// OpenSSL's client (whole, cut in two, and truncated), plain RESP and an HTTP request.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "../tests/net/tls_test_certs.h"
#include "common/assert.h"
#include "net/tls.h"

namespace {

using hmdb::net::TlsAuthClients;
using hmdb::net::TlsContext;
using hmdb::net::TlsIo;

constexpr size_t kInputBytesMax = 64 << 10;  // below a socketpair's buffer: a write never blocks
constexpr int kReadsPerWriteMax = 16;
constexpr int kReadsAfterCloseMax = 16;

struct Contexts {
  std::shared_ptr<TlsContext> by_rule[3];
};

const Contexts& contexts() {
  static const Contexts made = [] {
    const hmdb::net::TlsFiles files =
        hmdb::net::testing::write_test_tls_files(hmdb::net::testing::kNodeCertPem, hmdb::net::testing::kNodeKeyPem);
    Contexts c;
    const TlsAuthClients rules[3] = {TlsAuthClients::kYes, TlsAuthClients::kOptional, TlsAuthClients::kNo};
    for (int i = 0; i < 3; i++) {
      hmdb::Status s = TlsContext::create(TlsContext::Role::kServer, files, rules[i], &c.by_rule[i]);
      HMDB_ASSERT(s.is_ok(), "the fuzz target's certificates: %s", s.to_string().c_str());
    }
    // Loaded: the files are not needed any more.
    std::filesystem::remove_all(std::filesystem::path(files.cert_file).parent_path());
    return c;
  }();
  return made;
}

void drain(int fd) {
  char sink[16 << 10];
  while (::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const Contexts& c = contexts();
  const int rule = data[0] % 3;
  data++;
  size--;
  // Up to 3 cut points from the next bytes (each a fraction of what follows), then the bytes.
  size_t cuts[3] = {0, 0, 0};
  size_t ncuts = 0;
  while (ncuts < 3 && size > 0 && data[0] >= 0xF0) {  // a cut is announced by a byte >= 0xF0
    if (size < 2) break;
    cuts[ncuts++] = data[1];
    data += 2;
    size -= 2;
  }
  if (size > kInputBytesMax) size = kInputBytesMax;

  int fds[2];
  HMDB_ASSERT(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) == 0, "socketpair: %s",
              std::strerror(errno));
  const int server = fds[0], stranger = fds[1];
  hmdb::net::TlsConnection tls(c.by_rule[rule]->connect_fd(server));
  HMDB_ASSERT(tls != nullptr, "no connection state");

  char buf[16 << 10];
  bool ended = false;
  auto read_some = [&](int reads_max) {
    for (int i = 0; i < reads_max && !ended; i++) {
      hmdb::net::TlsResult r = hmdb::net::tls_read(tls.get(), buf, sizeof buf);
      HMDB_ASSERT(r.io != TlsIo::kOk, "a stranger's bytes produced %zu bytes of application data", r.bytes);
      drain(stranger);
      if (r.io == TlsIo::kClosed || r.io == TlsIo::kError) {
        HMDB_ASSERT(!hmdb::net::tls_handshake_done(tls.get()), "a stranger completed the handshake");
        ended = true;
      }
      if (r.io == TlsIo::kWantRead) return;  // it waits for the stranger
    }
  };
  // Writes at the cut points (each a share of the rest), reading after each.
  size_t at = 0;
  for (size_t i = 0; i <= ncuts && !ended; i++) {
    size_t n = i < ncuts ? (size - at) * cuts[i] / 256 : size - at;
    if (n > 0) {
      const ssize_t w = ::send(stranger, data + at, n, MSG_NOSIGNAL);
      HMDB_ASSERT(w == static_cast<ssize_t>(n), "the stranger's write was cut: %zd of %zu", w, n);
      at += n;
    }
    read_some(kReadsPerWriteMax);
  }
  ::shutdown(stranger, SHUT_WR);
  read_some(kReadsAfterCloseMax);
  HMDB_ASSERT(ended, "the connection neither closed nor failed after the stranger closed (%d reads)",
              kReadsAfterCloseMax);
  if (ended) hmdb::net::tls_discard(tls.release());
  ::close(server);
  ::close(stranger);
  return 0;
}

#ifdef HMDB_FUZZ_REPLAY_MAIN
#include "replay_main.h"

namespace {

// A ClientHello as OpenSSL's client writes it (TLS 1.3 and 1.2 offered).
std::string client_hello() {
  // A client without a certificate of its own: the CA file alone.
  hmdb::net::TlsFiles files =
      hmdb::net::testing::write_test_tls_files(hmdb::net::testing::kNodeCertPem, hmdb::net::testing::kNodeKeyPem);
  const std::filesystem::path dir = std::filesystem::path(files.cert_file).parent_path();
  files.cert_file.clear();
  files.key_file.clear();
  std::shared_ptr<TlsContext> client;
  HMDB_ASSERT(TlsContext::create(TlsContext::Role::kClient, files, TlsAuthClients::kYes, &client).is_ok(), "client");
  std::filesystem::remove_all(dir);
  int fds[2];
  HMDB_ASSERT(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0, "socketpair");
  hmdb::net::TlsConnection tls(client->connect_fd(fds[0]));
  hmdb::net::TlsResult r = hmdb::net::tls_write(tls.get(), "PING", 4);
  HMDB_ASSERT(r.io == TlsIo::kWantRead, "the client's first write did not wait for the server");
  std::string hello(16 << 10, '\0');
  const ssize_t n = ::recv(fds[1], hello.data(), hello.size(), 0);
  HMDB_ASSERT(n > 0, "no ClientHello");
  hello.resize(static_cast<size_t>(n));
  tls.reset();
  ::close(fds[0]);
  ::close(fds[1]);
  return hello;
}

int make_seeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::string hello = client_hello();
  auto put = [&](const char* name, char rule, const std::string& cuts, const std::string& body) {
    std::ofstream(dir / name, std::ios::binary) << std::string(1, rule) << cuts << body;
  };
  put("client-hello-cert-required", 0, "", hello);
  put("client-hello-optional", 1, "", hello);
  put("client-hello-no-client-cert", 2, "", hello);
  put("client-hello-in-two", 0, std::string("\xF0\x80", 2), hello);
  put("client-hello-truncated", 2, "", hello.substr(0, hello.size() / 2));
  put("plain-resp", 0, "", "*1\r\n$4\r\nPING\r\n");
  put("http", 1, "", "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return hmdb::fuzz::replay_main(argc, argv, make_seeds); }
#endif
