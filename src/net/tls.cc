// net/tls.cc — OpenSSL contexts and non-blocking reads and writes (net/tls.h).
#include "net/tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace hmdb::net {

namespace {

// OpenSSL's queued errors as one line (they name files and reasons, never key material).
std::string drain_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed": keep the reason only.
    const char* reason = ERR_reason_error_string(e);
    if (!text.empty()) text += "; ";
    text += reason ? reason : buf;
  }
  return text;
}

std::string describe_certificate(X509* cert) {
  if (!cert) return "no certificate";
  std::string out;
  char name[256];
  X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
  out = name;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio && ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    out += ", expires " + std::string(data, static_cast<size_t>(len));
  }
  BIO_free(bio);
  return out;
}

// Why a connection failed: the certificate check's verdict if there was one, else the
// error queue's reasons, else errno's.
std::string failure_text(ssl_st* ssl, int ssl_error) {
  std::string text = drain_errors();
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) text += std::string(text.empty() ? "" : ": ") + X509_verify_cert_error_string(verify);
  if (text.empty() && ssl_error == SSL_ERROR_SYSCALL) text = errno ? std::strerror(errno) : "connection closed";
  if (text.empty()) text = "TLS error " + std::to_string(ssl_error);
  return text;
}

TlsResult classify(ssl_st* ssl, int ret) {
  const int e = SSL_get_error(ssl, ret);
  switch (e) {
    case SSL_ERROR_WANT_READ: return {TlsIo::kWantRead, 0, {}};
    case SSL_ERROR_WANT_WRITE: return {TlsIo::kWantWrite, 0, {}};
    case SSL_ERROR_ZERO_RETURN: return {TlsIo::kClosed, 0, {}};
    case SSL_ERROR_SYSCALL:
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return {TlsIo::kWantRead, 0, {}};
      // The socket failed under TLS with nothing wrong in TLS itself: the other end closed or
      // reset the connection (ECONNRESET, EPIPE), as a plaintext client may; not a refusal.
      if (ERR_peek_error() == 0) return {TlsIo::kClosed, 0, {}};
      [[fallthrough]];
    default: {
      TlsResult r{TlsIo::kError, 0, failure_text(ssl, e)};
      return r;
    }
  }
}

}  // namespace

bool parse_tls_auth_clients(std::string_view text, TlsAuthClients* out) {
  if (text == "no") *out = TlsAuthClients::kNo;
  else if (text == "yes") *out = TlsAuthClients::kYes;
  else if (text == "optional") *out = TlsAuthClients::kOptional;
  else return false;
  return true;
}

const char* tls_auth_clients_name(TlsAuthClients a) {
  switch (a) {
    case TlsAuthClients::kNo: return "no";
    case TlsAuthClients::kYes: return "yes";
    case TlsAuthClients::kOptional: return "optional";
  }
  return "?";
}

Status TlsContext::create(Role role, const TlsFiles& files, TlsAuthClients auth, std::shared_ptr<TlsContext>* out,
                          bool read_ahead) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(role == Role::kServer ? TLS_server_method() : TLS_client_method());
  if (!ctx) return Status::io_error("TLS: cannot make a context: " + drain_errors());
  std::shared_ptr<TlsContext> made(new TlsContext(role, ctx));
  auto failed = [&](const std::string& what) { return Status::invalid_argument("TLS: " + what + ": " + drain_errors()); };

  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // No renegotiation (a TLS 1.2 client could make the server redo handshakes at will); a
  // peer that closes without close_notify is an ordinary EOF (redis-cli does so), not an error.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes: a reply is sent as far as the socket takes it, like send(2). The output
  // buffer may move between a kWantWrite and the retry (it is a std::string that grows).
  // Release buffers: an idle connection keeps no 34 KiB of record buffers (10,000 clients).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // Sessions are not resumed: no cache, no TLS 1.3 tickets written after each handshake.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  if (read_ahead) SSL_CTX_set_read_ahead(ctx, 1);

  if (!files.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, files.cert_file.c_str()) != 1)
      return failed("certificate file " + files.cert_file);
    if (files.key_file.empty()) return Status::invalid_argument("TLS: a certificate file needs its key file");
    if (SSL_CTX_use_PrivateKey_file(ctx, files.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return failed("key file " + files.key_file);
    if (SSL_CTX_check_private_key(ctx) != 1)
      return failed("key file " + files.key_file + " does not match certificate " + files.cert_file);
    made->description_ = describe_certificate(SSL_CTX_get0_certificate(ctx));
  } else if (role == Role::kServer) {
    return Status::invalid_argument("TLS: a server needs a certificate file (--tls-cert-file)");
  }

  int verify = SSL_VERIFY_NONE;
  if (role == Role::kClient) verify = SSL_VERIFY_PEER;
  else if (auth == TlsAuthClients::kYes) verify = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  else if (auth == TlsAuthClients::kOptional) verify = SSL_VERIFY_PEER;
  if (verify != SSL_VERIFY_NONE) {
    if (files.ca_cert_file.empty())
      return Status::invalid_argument("TLS: checking certificates needs a CA file (--tls-ca-cert-file)");
    if (SSL_CTX_load_verify_locations(ctx, files.ca_cert_file.c_str(), nullptr) != 1)
      return failed("CA file " + files.ca_cert_file);
    if (role == Role::kServer) {
      // The CAs a client is told it may present a certificate of.
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca_cert_file.c_str());
      if (names) SSL_CTX_set_client_CA_list(ctx, names);
    }
  }
  SSL_CTX_set_verify(ctx, verify, nullptr);
  ERR_clear_error();
  *out = std::move(made);
  return Status::ok();
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

ssl_st* TlsContext::connect_fd(int fd) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  if (role_ == Role::kServer) SSL_set_accept_state(ssl);
  else SSL_set_connect_state(ssl);
  return ssl;
}

TlsResult tls_read(ssl_st* ssl, char* buf, size_t n) {
  ERR_clear_error();
  errno = 0;
  size_t got = 0;
  const int ret = SSL_read_ex(ssl, buf, n, &got);
  if (ret == 1) return {TlsIo::kOk, got, {}};
  return classify(ssl, ret);
}

TlsResult tls_handshake(ssl_st* ssl) {
  ERR_clear_error();
  errno = 0;
  const int ret = SSL_do_handshake(ssl);
  if (ret == 1) return {TlsIo::kOk, 0, {}};
  return classify(ssl, ret);
}

TlsResult tls_write(ssl_st* ssl, const char* buf, size_t n) {
  ERR_clear_error();
  errno = 0;
  size_t put = 0;
  const int ret = SSL_write_ex(ssl, buf, n, &put);
  if (ret == 1) return {TlsIo::kOk, put, {}};
  return classify(ssl, ret);
}

static ssize_t tls_outcome(TlsResult r, TlsIo* want, std::string* tls_error) {
  switch (r.io) {
    case TlsIo::kOk: return static_cast<ssize_t>(r.bytes);
    case TlsIo::kClosed: return 0;
    case TlsIo::kWantRead:
    case TlsIo::kWantWrite:
      *want = r.io;
      errno = EAGAIN;
      return -1;
    case TlsIo::kError: break;
  }
  *tls_error = std::move(r.error);
  errno = EPROTO;
  return -1;
}

ssize_t io_recv(int fd, ssl_st* tls, char* buf, size_t n, TlsIo* want, std::string* tls_error) {
  *want = TlsIo::kWantRead;
  if (tls == nullptr) return ::recv(fd, buf, n, MSG_DONTWAIT);
  TlsResult r = tls_read(tls, buf, n);
  return tls_outcome(std::move(r), want, tls_error);
}

ssize_t io_send(int fd, ssl_st* tls, const char* buf, size_t n, TlsIo* want, std::string* tls_error) {
  *want = TlsIo::kWantWrite;
  if (tls == nullptr) return ::send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
  TlsResult r = tls_write(tls, buf, n);
  if (r.io == TlsIo::kClosed) {
    // The other end is gone: a write says so as send(2) does (it never returns 0 for a
    // non-empty buffer, and callers loop on what was written).
    errno = EPIPE;
    return -1;
  }
  return tls_outcome(std::move(r), want, tls_error);
}

size_t tls_pending(const ssl_st* ssl) { return static_cast<size_t>(SSL_pending(ssl)); }

bool tls_handshake_done(const ssl_st* ssl) { return SSL_is_init_finished(ssl) == 1; }

void tls_shutdown(ssl_st* ssl) {
  ERR_clear_error();
  SSL_shutdown(ssl);
  ERR_clear_error();
}

void tls_close(ssl_st* ssl) {
  if (!ssl) return;
  // One attempt: a close_notify if the handshake finished and the socket takes it now.
  if (SSL_is_init_finished(ssl)) SSL_shutdown(ssl);
  ERR_clear_error();
  SSL_free(ssl);
}

void tls_discard(ssl_st* ssl) {
  ERR_clear_error();
  SSL_free(ssl);
}

}  // namespace hmdb::net
