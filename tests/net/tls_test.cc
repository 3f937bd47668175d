// tests/net/tls_test.cc — net/tls.h on a socket pair: a client and a server context finish a
// handshake driven by non-blocking reads and writes alone and carry bytes both ways; a write
// to a connection whose other end closed fails as send(2) does (EPIPE, never 0: the peer
// transport once spun forever writing into a closed connection when it said 0); a server
// that requires a client certificate refuses a client without one; bad files are refused
// with their names.
#include "net/tls.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>

#include "tls_test_certs.h"

namespace hmdb::net {
namespace {

struct Pair {
  std::shared_ptr<TlsContext> server, client;
  int fds[2] = {-1, -1};
  TlsConnection s, c;
  ~Pair() {
    s.reset();
    c.reset();
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
  }
};

void make_pair(Pair* p, TlsAuthClients auth, bool client_cert) {
  const TlsFiles node = testing::write_test_tls_files(testing::kNodeCertPem, testing::kNodeKeyPem);
  ASSERT_TRUE(TlsContext::create(TlsContext::Role::kServer, node, auth, &p->server).is_ok());
  TlsFiles client = node;
  if (!client_cert) client.cert_file.clear(), client.key_file.clear();
  ASSERT_TRUE(TlsContext::create(TlsContext::Role::kClient, client, TlsAuthClients::kYes, &p->client).is_ok());
  std::filesystem::remove_all(std::filesystem::path(node.cert_file).parent_path());
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
  p->s.reset(p->server->connect_fd(p->fds[0]));
  p->c.reset(p->client->connect_fd(p->fds[1]));
  ASSERT_TRUE(p->s && p->c);
}

// Drives both ends (the client writes `message`, the server reads) until the server has it
// or one end fails; bounded.
TlsResult exchange(Pair* p, const std::string& message, std::string* got) {
  size_t sent = 0;
  char buf[4096];
  for (int round = 0; round < 100 && got->size() < message.size(); round++) {
    if (sent < message.size()) {
      TlsResult w = tls_write(p->c.get(), message.data() + sent, message.size() - sent);
      if (w.io == TlsIo::kOk) sent += w.bytes;
      else if (w.io != TlsIo::kWantRead && w.io != TlsIo::kWantWrite) return w;
    }
    TlsResult r = tls_read(p->s.get(), buf, sizeof buf);
    if (r.io == TlsIo::kOk) got->append(buf, r.bytes);
    else if (r.io != TlsIo::kWantRead && r.io != TlsIo::kWantWrite) return r;
    // The client reads too: TLS 1.3's server answers arrive on its side.
    TlsResult cr = tls_read(p->c.get(), buf, sizeof buf);
    if (cr.io == TlsIo::kError || cr.io == TlsIo::kClosed) return cr;
  }
  return TlsResult{};
}

TEST(Tls, AHandshakeOnNonBlockingSocketsCarriesBytes) {
  Pair p;
  make_pair(&p, TlsAuthClients::kYes, true);
  std::string got;
  const std::string message(100000, 'x');
  TlsResult r = exchange(&p, message, &got);
  EXPECT_EQ(r.io, TlsIo::kOk) << r.error;
  EXPECT_EQ(got, message);
  EXPECT_TRUE(tls_handshake_done(p.s.get()));
}

TEST(Tls, AWriteToAClosedConnectionIsEpipeNeverZero) {
  // OpenSSL writes with write(2): as in every hmdb program (tools/main.cc), SIGPIPE is ignored.
  ::signal(SIGPIPE, SIG_IGN);
  Pair p;
  make_pair(&p, TlsAuthClients::kYes, true);
  std::string got;
  ASSERT_EQ(exchange(&p, "hello", &got).io, TlsIo::kOk);
  p.s.reset();
  ::close(p.fds[0]);
  p.fds[0] = -1;
  TlsIo want;
  std::string error;
  for (int i = 0; i < 3; i++) {
    errno = 0;
    const ssize_t n = io_send(p.fds[1], p.c.get(), "more", 4, &want, &error);
    EXPECT_EQ(n, -1) << "attempt " << i;
    EXPECT_TRUE(errno == EPIPE || errno == EPROTO) << "attempt " << i << ": " << std::strerror(errno);
  }
  char buf[16];
  EXPECT_EQ(io_recv(p.fds[1], p.c.get(), buf, sizeof buf, &want, &error), 0) << "a read sees the close";
}

TEST(Tls, AServerRequiringACertificateRefusesAClientWithout) {
  Pair p;
  make_pair(&p, TlsAuthClients::kYes, false);
  std::string got;
  TlsResult r = exchange(&p, "PING", &got);
  EXPECT_EQ(r.io, TlsIo::kError);
  EXPECT_TRUE(got.empty()) << "the server read application data from a client without a certificate";
  EXPECT_FALSE(tls_handshake_done(p.s.get()));
}

TEST(Tls, BadFilesAreRefusedWithTheirNames) {
  std::shared_ptr<TlsContext> ctx;
  Status s = TlsContext::create(TlsContext::Role::kServer, TlsFiles{"/nonexistent/cert.pem", "/nonexistent/key.pem", ""},
                                TlsAuthClients::kNo, &ctx);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("/nonexistent/cert.pem"), std::string::npos) << s.message();
  const TlsFiles node = testing::write_test_tls_files(testing::kNodeCertPem, testing::kStrangerKeyPem);
  s = TlsContext::create(TlsContext::Role::kServer, node, TlsAuthClients::kNo, &ctx);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find(node.key_file), std::string::npos) << s.message();  // "key values mismatch"
  s = TlsContext::create(TlsContext::Role::kServer, TlsFiles{node.cert_file, node.cert_file, ""},
                         TlsAuthClients::kYes, &ctx);
  EXPECT_FALSE(s.is_ok());
  std::filesystem::remove_all(std::filesystem::path(node.cert_file).parent_path());
}

}  // namespace
}  // namespace hmdb::net
