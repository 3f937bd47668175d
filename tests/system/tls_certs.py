"""Throwaway certificates for the TLS tests, made with the openssl command line into a
directory of the test's own: a CA, certificates it signs (a node's, a client's; an expired
one with `-days -1`), and another CA that signs nothing the node trusts. EC P-256 keys:
each takes milliseconds to make. docs/security.md "TLS" shows the same commands."""

import os
import subprocess

# Bound on one openssl run.
OPENSSL_TIMEOUT_S = 30
# Validity of the certificates the tests make: long enough for any run.
VALID_DAYS = 2


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True, timeout=OPENSSL_TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (%d):\n%s" % (" ".join(args), p.returncode, p.stderr))


def new_key_args(key):
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key]


class CA:
    """A certificate authority in directory d: ca.crt, and certificates it issues."""

    def __init__(self, d, name):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.name = name
        self.crt = os.path.join(d, name + ".crt")
        self.key = os.path.join(d, name + ".key")
        openssl("req", "-x509", *new_key_args(self.key), "-out", self.crt, "-subj", "/CN=" + name,
                "-days", str(VALID_DAYS), cwd=d)

    def issue(self, name, days=VALID_DAYS):
        """(certificate, key) paths of a new certificate for CN=name; days=-1: already expired."""
        crt = os.path.join(self.dir, name + ".crt")
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        openssl("req", *new_key_args(key), "-out", csr, "-subj", "/CN=" + name, cwd=self.dir)
        openssl("x509", "-req", "-in", csr, "-CA", self.crt, "-CAkey", self.key, "-CAcreateserial",
                "-days", str(days), "-out", crt, cwd=self.dir)
        os.remove(csr)
        return crt, key


def client_context(ca_crt, cert=None):
    """An ssl.SSLContext that checks the server against ca_crt (not its host name, as hmdb's
    own links do not) and presents cert=(crt, key) if given."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(ca_crt)
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    return ctx
