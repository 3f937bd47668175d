// net/tls.h — TLS over the event loop's non-blocking sockets (Debian's OpenSSL): one
// context per role and set of certificate files, and read/write calls that never block.
//
// Who uses it: client connections on --tls-port (server/client_io.cc), peer connections
// with --tls-replication (net/peer_transport.cc: both ends present the node's certificate
// and check the other's against the cluster's CA), forwarding links to the leader's TLS
// port (server/forward_links.cc) and `hmdb cluster --tls` (tools/cluster_cli.cc).
//
// What is checked (docs/security.md "TLS"): a certificate's chain up to the CA file, its
// dates (an expired certificate is refused), and, for a server's client certificates, the
// --tls-auth-clients rule. Host names are not compared with the certificate (as Redis does
// not for its peers): whoever holds a certificate the CA signed is trusted, so the CA is
// meant to be the cluster's own. TLS 1.2 is the oldest version spoken; renegotiation is off.
//
// Non-blocking use. A connection is an SSL object on a non-blocking socket. tls_read and
// tls_write say kWantRead or kWantWrite when the socket cannot go on: call again with the
// same arguments once the socket is readable or writable (either way: a read can need to
// write during a handshake, and a write to read). The handshake happens inside the first
// reads and writes (SSL_set_accept_state / SSL_set_connect_state), so a caller needs no
// state of its own for it. Decrypted bytes can wait inside OpenSSL after the socket was
// drained (tls_pending): a caller on an edge-triggered socket reads until kWantRead.
//
// Reload. A context is immutable once made; reloading certificates makes a new one, and the
// connections made from the old one keep it (OpenSSL counts its references) until they close.
//
// Thread-safety: a context may be shared; a connection belongs to one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <sys/types.h>
#include <string>
#include <string_view>

#include "common/status.h"

struct ssl_st;
struct ssl_ctx_st;

namespace hmdb::net {

// Redis' tls-auth-clients: whether a client connecting to the TLS port must present a
// certificate signed by the CA (kYes), may (kOptional: checked if given), or is not asked (kNo).
enum class TlsAuthClients : uint8_t { kNo, kYes, kOptional };
bool parse_tls_auth_clients(std::string_view text, TlsAuthClients* out);
const char* tls_auth_clients_name(TlsAuthClients a);

struct TlsFiles {
  std::string cert_file;     // PEM: the certificate (and its chain); empty for a client without one
  std::string key_file;      // PEM: its private key (unencrypted)
  std::string ca_cert_file;  // PEM: the CA(s) the other end's certificate must chain to
};

class TlsContext {
 public:
  enum class Role : uint8_t { kServer, kClient };
  // A server presents cert/key and checks client certificates by `auth`. A client presents
  // cert/key if given and always checks the server's certificate against the CA file.
  // Errors name the file and OpenSSL's reason (never a key's bytes).
  //
  // read_ahead: OpenSSL reads as much as its record buffer takes in one read(2) instead of
  // a record's header and then its body, so a request of one record costs one read and the
  // reader's last read (kWantRead) instead of three. Only for a reader that reads until
  // kWantRead or comes back by itself (client_io.cc's sessions): bytes read ahead wait inside
  // OpenSSL, where no epoll event announces them (tls_pending does not count them either).
  static Status create(Role role, const TlsFiles& files, TlsAuthClients auth, std::shared_ptr<TlsContext>* out,
                       bool read_ahead = false);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A connection on the connected socket fd (not owned), handshaking as this context's
  // role on first use. Null only if OpenSSL cannot allocate it.
  ssl_st* connect_fd(int fd) const;
  Role role() const { return role_; }
  // The certificate's subject and expiry, for a log line ("CN=node-1, expires 2027-12-05").
  const std::string& description() const { return description_; }

 private:
  TlsContext(Role role, ssl_ctx_st* ctx) : role_(role), ctx_(ctx) {}
  Role role_;
  ssl_ctx_st* ctx_;
  std::string description_;
};

enum class TlsIo : uint8_t {
  kOk,         // bytes moved (> 0)
  kWantRead,   // call again once the socket is readable
  kWantWrite,  // call again once the socket is writable
  kClosed,     // the other end closed the connection (close_notify, EOF, or a reset)
  kError,      // the connection is broken: handshake refused, bad record, reset; see error
};
struct TlsResult {
  TlsIo io = TlsIo::kOk;
  size_t bytes = 0;
  std::string error;  // kError: OpenSSL's reason ("certificate verify failed: certificate has expired")
};

TlsResult tls_read(ssl_st* ssl, char* buf, size_t n);
// Drives the handshake alone (kOk once it is done): for a client on a blocking socket with
// timeouts (hmdb-bench, `hmdb snapshot`) that wants a refused certificate reported at
// connect time rather than at its first request. kWantRead/kWantWrite: a timeout.
TlsResult tls_handshake(ssl_st* ssl);
TlsResult tls_write(ssl_st* ssl, const char* buf, size_t n);
// One recv(2) or send(2) on a non-blocking socket, through TLS when tls is not null (the
// peer transport's and forwarding links' sockets). Returns the bytes, 0 at EOF, or -1 with
// errno: EAGAIN (wait; *want says for which readiness: with TLS a read may wait to write and
// a write to read), EPROTO (TLS failed; *tls_error says why), or the syscall's own (a write
// to a connection the other end closed is EPIPE, never 0).
ssize_t io_recv(int fd, ssl_st* tls, char* buf, size_t n, TlsIo* want, std::string* tls_error);
ssize_t io_send(int fd, ssl_st* tls, const char* buf, size_t n, TlsIo* want, std::string* tls_error);
// Decrypted bytes buffered inside the connection (readable without the socket).
size_t tls_pending(const ssl_st* ssl);
bool tls_handshake_done(const ssl_st* ssl);
// One non-blocking attempt to send close_notify (the connection stays usable for reading).
void tls_shutdown(ssl_st* ssl);
// Best-effort close_notify (one non-blocking attempt) and free. Null is fine.
void tls_close(ssl_st* ssl);
// Free after a kError: nothing more may be written on it. Null is fine.
void tls_discard(ssl_st* ssl);

// A connection that frees itself (tls_close).
struct TlsCloser {
  void operator()(ssl_st* ssl) const { tls_close(ssl); }
};
using TlsConnection = std::unique_ptr<ssl_st, TlsCloser>;

}  // namespace hmdb::net
