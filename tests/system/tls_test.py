#!/usr/bin/env python3
"""TLS for clients and peers (issue 15, item 3; docs/security.md "TLS") with real hmdb
processes, real clients and certificates made by openssl for the test (tls_certs.py).

  clients   one node with --port and --tls-port, client certificates required: redis-cli
            --tls and redis-py (ssl=True) with a client certificate run commands, a
            pipeline of 2,000 commands and a 4 MiB value both ways; the plaintext port still
            serves. Refused at the handshake, each counted in INFO tls_handshake_failures and
            logged: no client certificate, one signed by another CA, an expired one, plain
            RESP sent to the TLS port; a client checking the node against another CA refuses it.
  tlsonly   a node from a config file with tls-port, port 0 (no plaintext port) and
            tls-auth-clients optional: the plaintext port is gone from the log's "listening
            on"; a client without a certificate is served, one with a certificate from another
            CA is refused.
  reload    the node's certificate files are replaced and SIGHUP sent: new connections get
            the new certificate (its CN), a connection opened before keeps working, INFO
            tls_reloads counts it; then a broken key file: the reload is refused
            (tls_reload_failures, logged) and the certificate in use stays.
  cluster   three nodes with --tls-replication yes and no plaintext port (--port 0), each
            with its own certificate from the cluster's CA: they elect; a TLS client of a follower writes (forwarded over the
            follower's TLS link to the leader's TLS port); `hmdb cluster --tls --cacert --cert
            --key status` works and plain `hmdb cluster` is not served by a TLS port; the
            leader is killed, the others elect and take writes, it comes back, all converge
            to one digest; no member refused another's handshake.
  peer_reload  three nodes over peer TLS move to a new CA without a restart: each node's
            certificate, key and CA file are replaced (the new CA alone: the old one is
            dropped) and every node is sent SIGHUP (INFO tls_reloads 1 each; the TLS port
            presents the new certificate). The cluster goes on over its open connections.
            Node 3 restarted with its old certificate is refused by both others at the
            handshake (log line, INFO tls_peer_handshake_failures) and falls behind; restarted
            with its new one, it is accepted and converges to the others' digest: the
            connections made after the reload use the new files on both sides.
  tools     hmdb-bench and `hmdb snapshot` against a node's TLS port (client certificates
            required, a password): with --tls --cacert --cert --key (and --password) they
            are served: hmdb-bench's SETs land (DBSIZE), its SETs and GETs of 100 kB values
            complete with no error, the snapshot is written; without --tls, with a certificate of
            another CA, or trusting another CA they are refused and say why.
  intruder  a node 4 that lists itself with the members dials them with a certificate of
            another CA, and another speaks plaintext: every member refuses both at the TLS
            handshake (log line naming the reason, INFO tls_peer_handshake_failures) and
            never reads a Hello from node 4; node 4 moves no member's term: every term a
            member reaches is one a member campaigned for, and no member follows node 4. (Not "the
            term stays": on a loaded machine a loop stalled past the 200 ms election timeout
            makes the members elect among themselves, which says nothing about node 4. The
            check is shown a copy of the members' lines with a term no member campaigned for,
            and must refuse it.)

Every wait is a bounded poll of a real condition.
Usage: tls_test.py [--case NAME] [--bench HMDB_BENCH_BINARY] HMDB_BINARY
"""

import argparse
import contextlib
import csv
import io
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

import cluster as cl
import harness
import resp
import tls_certs

# Debian's interpreter, for which python3-redis is installed.
DEBIAN_PYTHON = harness.DEBIAN_PYTHON
# Bound on one client program's run (redis-cli, redis-py).
CLIENT_TIMEOUT_S = 60
# Bound on waiting for a counter or a log line after the event that makes it.
OBSERVE_TIMEOUT_S = 30
POLL_INTERVAL_S = 0.02
LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
PIPELINE_COMMANDS = 2000
READ_ATTEMPTS = 50
BIG_VALUE_BYTES = 4 << 20
# tools: hmdb-bench's runs (small: they prove the connections work, they measure nothing).
BENCH_KEYS = 1000
BENCH_REQUESTS = 3000
BENCH_BIG_VALUE_BYTES = 100000
BENCH_BIG_REQUESTS = 400
PASSWORD = "tls-and-a-password"

REDIS_PY_CHECK = r"""
import sys
import redis
host, port, ca, crt, key, pipeline, big = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
r = redis.Redis(host=host, port=port, ssl=True, ssl_ca_certs=ca, ssl_certfile=crt, ssl_keyfile=key,
                ssl_check_hostname=False, socket_timeout=30)
if not (r.set("py", "1") and r.get("py") == b"1"):
    sys.exit("redis-py over TLS: SET then GET did not read back")
p = r.pipeline(transaction=False)
for i in range(pipeline):
    p.set("p%d" % i, i)
    p.get("p%d" % i)
replies = p.execute()
if replies != [x for i in range(pipeline) for x in (True, str(i).encode())]:
    sys.exit("redis-py over TLS: the pipeline's replies are not the SETs' and GETs'")
value = bytes(range(256)) * (big // 256)
r.set("big", value)
if r.get("big") != value:
    sys.exit("redis-py over TLS: a %d-byte value did not read back" % big)
print("redis-py %s over TLS: commands, a pipeline of %d, a %d-byte value" % (redis.__version__, 2 * pipeline, big))
"""


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def info_field(port, field, host=harness.HOST):
    with resp.Client(host, port, timeout=CLIENT_TIMEOUT_S) as c:
        text = c.call("INFO", "everything").decode()
    m = re.search(r"^%s:(\d+)\r?$" % re.escape(field), text, re.M)
    expect(m is not None, "INFO has no %s" % field)
    return int(m.group(1))


def wait_for(what, condition, server):
    """harness.wait_for within OBSERVE_TIMEOUT_S; a failure shows server's log tail."""
    try:
        return harness.wait_for(what, OBSERVE_TIMEOUT_S, condition, POLL_INTERVAL_S)
    except harness.TestFailure as e:
        raise harness.TestFailure("%s\n%s" % (e, server.log_tail())) from None


def _log_tails(thing):
    if isinstance(thing, list):
        return [t for x in thing for t in _log_tails(x)]
    if isinstance(thing, cl.Cluster):
        return [n.log_tail() for n in thing.nodes]
    return [thing.log_tail()] if hasattr(thing, "log_tail") else []


def _stop(thing):
    if isinstance(thing, list):
        for x in thing:
            _stop(x)
    elif isinstance(thing, cl.Cluster):
        thing.kill_all()
    elif isinstance(thing, subprocess.Popen):
        thing.kill()
        thing.wait()
    elif hasattr(thing, "kill"):
        thing.kill()


@contextlib.contextmanager
def running(work, *things):
    """A case's body with what it starts (harness.Server, cl.Cluster, a Popen, a list of
    Popens filled meanwhile, or anything with log_tail()): if the body fails their log tails
    are printed; they are killed either way; the work directory is removed only when the
    body passed (a failed case's files stay to be looked at)."""
    try:
        yield
    except BaseException:
        for tail in _log_tails(list(things)):
            print(tail)
        _stop(list(things))
        raise
    _stop(list(things))
    harness.remove_work_dir(work)


def node_certificates(work):
    """The cluster's CA, another CA, and (cert, key) pairs: a node's and a client's of the
    cluster's CA, a stranger's of the other."""
    ca = tls_certs.CA(os.path.join(work, "ca"), "cluster-ca")
    other = tls_certs.CA(os.path.join(work, "other"), "other-ca")
    return ca, other, ca.issue("node"), ca.issue("client"), other.issue("stranger")


def tls_flags(port, crt, key, ca, auth="yes"):
    return ["--tls-port", str(port), "--tls-cert-file", crt, "--tls-key-file", key, "--tls-ca-cert-file", ca,
            "--tls-auth-clients", auth]


def refused(port, ctx):
    """True if a TLS client with ctx gets no reply to PING (the handshake or its first read
    fails: with TLS 1.3 the server's verdict on a client certificate arrives after the
    client's side of the handshake)."""
    try:
        with resp.Client(harness.HOST, port, timeout=CLIENT_TIMEOUT_S, tls=ctx) as c:
            reply = c.call("PING")
    except resp.ConnectionLost:
        return True
    raise harness.TestFailure("a client that should have been refused got %r" % (reply,))


def redis_cli_tls(port, ca, cert, args):
    cli = shutil.which("redis-cli")
    cmd = [cli, "-h", harness.HOST, "-p", str(port), "--tls", "--cacert", ca]
    if cert:
        cmd += ["--cert", cert[0], "--key", cert[1]]
    return subprocess.run(cmd + args, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)


def case_clients(binary):
    work = harness.make_work_dir("hmdb-tls-clients-")
    ca, other, node_cert, client_cert, stranger = node_certificates(work)
    expired = ca.issue("expired-client", days=-1)
    tls_port = harness.free_port()
    s = harness.Server(binary, os.path.join(work, "data"), work, durability="none", name="tls",
                       extra_args=tls_flags(tls_port, node_cert[0], node_cert[1], ca.crt))
    with running(work, s):
        s.start()
        good = tls_certs.client_context(ca.crt, client_cert)
        with resp.Client(harness.HOST, tls_port, timeout=CLIENT_TIMEOUT_S, tls=good) as c:
            expect(c.call("SET", "k", "v") == "OK" and c.call("GET", "k") == b"v", "SET/GET over TLS")
            # A pipeline in one write, its replies read together.
            replies = c.pipeline([("INCR", "n") for _ in range(PIPELINE_COMMANDS)])
            expect(replies == list(range(1, PIPELINE_COMMANDS + 1)), "a pipeline over TLS answered out of order")
            expect(c.call("SET", "big", b"x" * BIG_VALUE_BYTES) == "OK", "a big SET over TLS")
            expect(c.call("GET", "big") == b"x" * BIG_VALUE_BYTES, "a big GET over TLS")
        with resp.Client(harness.HOST, s.port, timeout=CLIENT_TIMEOUT_S) as plain:
            expect(plain.call("GET", "k") == b"v", "the plaintext port beside the TLS port")

        if shutil.which("redis-cli"):
            p = redis_cli_tls(tls_port, ca.crt, client_cert, ["SET", "cli", "yes"])
            expect(p.returncode == 0 and p.stdout.strip() == "OK", "redis-cli --tls SET: %r %r" % (p.stdout, p.stderr))
            p = redis_cli_tls(tls_port, ca.crt, client_cert, ["GET", "cli"])
            expect(p.stdout.strip() == "yes", "redis-cli --tls GET: %r %r" % (p.stdout, p.stderr))
            # redis-cli checking the node against a CA that did not sign it: it refuses the node.
            p = redis_cli_tls(tls_port, other.crt, client_cert, ["PING"])
            expect("PONG" not in p.stdout and "certificate verify failed" in p.stdout + p.stderr,
                   "redis-cli with the wrong CA was not refused: %r %r" % (p.stdout, p.stderr))
            print("redis-cli --tls: served with a client certificate; refuses a node its CA did not sign")
        if os.path.exists(DEBIAN_PYTHON):
            p = subprocess.run([DEBIAN_PYTHON, "-c", REDIS_PY_CHECK, harness.HOST, str(tls_port), ca.crt,
                                client_cert[0], client_cert[1], str(PIPELINE_COMMANDS), str(BIG_VALUE_BYTES)],
                               capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
            expect(p.returncode == 0, "redis-py over TLS: %s%s" % (p.stdout, p.stderr))
            print(p.stdout.strip())

        # Refused at the handshake: each counted, each logged with its reason.
        # (redis-cli refusing the node above counts too: the node's handshake failed.)
        base = info_field(s.port, "tls_handshake_failures")
        cases = [("no client certificate", tls_certs.client_context(ca.crt), "peer did not return a certificate"),
                 ("a certificate of another CA", tls_certs.client_context(ca.crt, stranger), "certificate verify failed"),
                 ("an expired certificate", tls_certs.client_context(ca.crt, expired), "certificate has expired")]
        for n, (what, ctx, reason) in enumerate(cases, 1):
            expect(refused(tls_port, ctx), what)
            wait_for("tls_handshake_failures %d (%s)" % (base + n, what),
                     lambda: info_field(s.port, "tls_handshake_failures") == base + n, s)
            expect(re.search(r"tls: refused client \d+ \(127\.0\.0\.1:\d+\): .*%s" % reason, s.log()),
                   "no log line says '%s' for %s" % (reason, what))
            print("refused and logged: %s (%s)" % (what, reason))
        # Plain RESP to the TLS port: not a handshake.
        with socket.create_connection((harness.HOST, tls_port), timeout=CLIENT_TIMEOUT_S) as raw:
            raw.sendall(resp.encode_command(("PING",)))
            try:
                data = raw.recv(4096)
            except ConnectionResetError:  # closed with our bytes unread
                data = b""
            expect(b"PONG" not in data, "the TLS port answered plain RESP")
        wait_for("tls_handshake_failures %d (plain RESP)" % (base + 4),
                 lambda: info_field(s.port, "tls_handshake_failures") == base + 4, s)
        # Still serving.
        with resp.Client(harness.HOST, tls_port, timeout=CLIENT_TIMEOUT_S, tls=good) as c:
            expect(c.call("GET", "k") == b"v", "a good client after the refusals")
    print("clients: served over TLS with a certificate; refused without one, with a stranger's or an expired one")


def case_tlsonly(binary):
    work = harness.make_work_dir("hmdb-tls-only-")
    ca = tls_certs.CA(os.path.join(work, "ca"), "cluster-ca")
    other = tls_certs.CA(os.path.join(work, "other"), "other-ca")
    node_cert = ca.issue("node")
    stranger = other.issue("stranger")
    tls_port = harness.free_port()
    config = os.path.join(work, "hmdb.conf")
    with open(config, "w") as f:
        f.write("# TLS only\nport 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"
                "tls-auth-clients optional\ndurability none\ndir %s\n"
                % (tls_port, node_cert[0], node_cert[1], ca.crt, os.path.join(work, "data")))
    log_path = os.path.join(work, "tlsonly.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([binary, "serve", "--config", config], stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT)

    def text():
        with open(log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    class Log:
        def log_tail(self):
            return text()[-harness.LOG_TAIL_BYTES:]

    with running(work, proc, Log()):
        wait_for("the node to be ready", lambda: "ready:" in text() or proc.poll() is not None, Log())
        expect(proc.poll() is None, "the node exited:\n" + text())
        line = next(l for l in text().splitlines() if "ready:" in l)
        expect("listening on TLS on 127.0.0.1:%d, durability" % tls_port in line,
               "the ready line names another listener than the TLS port alone: " + line)
        anonymous = tls_certs.client_context(ca.crt)
        with resp.Client(harness.HOST, tls_port, timeout=CLIENT_TIMEOUT_S, tls=anonymous) as c:
            expect(c.call("SET", "k", "v") == "OK", "tls-auth-clients optional: a client without a certificate")
        expect(refused(tls_port, tls_certs.client_context(ca.crt, stranger)),
               "tls-auth-clients optional: a certificate of another CA")
    print("tlsonly: no plaintext port; optional client certificates: none served, a stranger's refused")


def served_cn(port, ca_crt, cert, ip=harness.HOST):
    """The CN of the certificate the node at ip:port presents now."""
    ctx = tls_certs.client_context(ca_crt, cert)
    with socket.create_connection((ip, port), timeout=CLIENT_TIMEOUT_S) as raw:
        with ctx.wrap_socket(raw, server_hostname=ip) as t:
            subject = dict(x[0] for x in t.getpeercert()["subject"])
            return subject["commonName"]


def case_reload(binary):
    work = harness.make_work_dir("hmdb-tls-reload-")
    ca = tls_certs.CA(os.path.join(work, "ca"), "cluster-ca")
    first = ca.issue("node-first")
    second = ca.issue("node-second")
    client_cert = ca.issue("client")
    live = (os.path.join(work, "node.crt"), os.path.join(work, "node.key"))
    shutil.copy(first[0], live[0])
    shutil.copy(first[1], live[1])
    tls_port = harness.free_port()
    s = harness.Server(binary, os.path.join(work, "data"), work, durability="none", name="reload",
                       extra_args=tls_flags(tls_port, live[0], live[1], ca.crt))
    with running(work, s):
        s.start()
        good = tls_certs.client_context(ca.crt, client_cert)
        expect(served_cn(tls_port, ca.crt, client_cert) == "node-first", "the first certificate")
        before = resp.Client(harness.HOST, tls_port, timeout=CLIENT_TIMEOUT_S, tls=good)
        expect(before.call("SET", "k", "1") == "OK", "a connection before the reload")
        # New files in place (renamed over: a reader never sees half a file), then SIGHUP.
        for src, dst in zip(second, live):
            shutil.copy(src, dst + ".new")
            os.replace(dst + ".new", dst)
        s.proc.send_signal(signal.SIGHUP)
        wait_for("tls_reloads 1", lambda: info_field(s.port, "tls_reloads") == 1, s)
        expect(served_cn(tls_port, ca.crt, client_cert) == "node-second", "the certificate after SIGHUP")
        expect(before.call("GET", "k") == b"1", "a connection opened before the reload")
        before.close()
        # A broken key: refused, logged, the certificate in use stays.
        with open(live[1], "w") as f:
            f.write("not a key\n")
        s.proc.send_signal(signal.SIGHUP)
        wait_for("tls_reload_failures 1", lambda: info_field(s.port, "tls_reload_failures") == 1, s)
        expect("tls: reload failed, the certificates in use stay" in s.log(), "the failed reload is not logged")
        expect(served_cn(tls_port, ca.crt, client_cert) == "node-second", "the certificate after a failed reload")
        expect(info_field(s.port, "tls_reloads") == 1, "a failed reload counted as done")
    print("reload: SIGHUP serves the new certificate to new connections; a bad file is refused and the old one stays")


def tls_client(node, cert):
    return resp.Client(node.ip, node.tls_port, timeout=CLIENT_TIMEOUT_S,
                       tls=tls_certs.client_context(node.cluster.tls.crt, cert))


def cluster_cli_tls(binary, node, cert, *verb):
    c = node.cluster
    cmd = [binary, "cluster", "--tls", "--cacert", c.tls.crt, "--cert", cert[0], "--key", cert[1],
           "--addr", cl.host_port(node.ip, node.tls_port)] + list(verb)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)


def read_retrying(client, key):
    """GET key; a -CLUSTERDOWN or -TRYAGAIN (not run: a follower that knows no leader at
    the moment, as clients are told to retry) is sent again, at most READ_ATTEMPTS times.
    Any other answer is returned as it is."""
    for _ in range(READ_ATTEMPTS):
        reply = client.call("GET", key)
        if not (isinstance(reply, resp.RespError) and reply.message.startswith(("CLUSTERDOWN", "TRYAGAIN"))):
            return reply
        time.sleep(POLL_INTERVAL_S)
    return reply


def case_cluster(binary):
    work = harness.make_work_dir("hmdb-tls-cluster-")
    ca = tls_certs.CA(os.path.join(work, "ca"), "cluster-ca")
    client_cert = ca.issue("client")
    # TLS only: no node has a plaintext port, so every connection below (the harness's own,
    # the forwarding links, hmdb cluster) can only be TLS.
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-tls-test", durability="always", tls=ca, tls_only=True)
    with running(work, c):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        follower = next(n for n in c.nodes if n is not leader)
        # A client of a follower's TLS port: its writes go to the leader over the follower's
        # forwarding link, which dials the leader's TLS port with the follower's certificate.
        with tls_client(follower, client_cert) as f:
            for i in range(20):
                r = f.call("SET", "k%d" % i, "v%d" % i)
                expect(r == "OK", "a write through %s over TLS answered %r" % (follower, r))
        listed = leader.call("CLIENT", "LIST").decode()
        expect("hmdb-forwarder-%d" % follower.id in listed, "the leader lists no forwarding link:\n" + listed)
        p = cluster_cli_tls(binary, follower, client_cert, "status")
        expect(p.returncode == 0 and "leader" in p.stdout,
               "hmdb cluster --tls status: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
        p = subprocess.run([binary, "cluster", "--addr", cl.host_port(follower.ip, follower.tls_port), "status"],
                           capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
        expect(p.returncode != 0, "hmdb cluster without --tls was served by a TLS port:\n" + p.stdout)
        # Failover: the leader dies, the others elect over TLS, writes go on.
        leader.kill()
        survivors = [n for n in c.nodes if n is not leader]
        new_leader = c.wait_leader(LEADER_TIMEOUT_S, nodes=survivors)
        with tls_client(next(n for n in survivors if n is not new_leader), client_cert) as f:
            for i in range(20, 40):
                r = f.call("SET", "k%d" % i, "v%d" % i)
                expect(r == "OK", "a write after the failover answered %r" % (r,))
        leader.start()
        c.wait_converged(CONVERGE_TIMEOUT_S)
        digests = {n: n.digest() for n in c.nodes}
        expect(len(set(digests.values())) == 1, "the nodes' digests differ: %r" % digests)
        for n in c.nodes:
            with tls_client(n, client_cert) as t:
                got = (read_retrying(t, "k39"), read_retrying(t, "k0"))
                expect(got == (b"v39", b"v0"), "%s answered GET k39, GET k0 with %r" % (n, got))
            failures = cl.parse_info(n.call("INFO", "stats"))["tls_peer_handshake_failures"]
            expect(failures == "0", "%s refused %s members' TLS handshakes" % (n, failures))
            expect("listening on TLS on" in n.log(), "%s has a plaintext port" % n)
    print("cluster: 3 nodes over peer TLS elected, forwarded, failed over and converged; hmdb cluster --tls")


def case_intruder(binary):
    work = harness.make_work_dir("hmdb-tls-intruder-")
    ca = tls_certs.CA(os.path.join(work, "ca"), "cluster-ca")
    other = tls_certs.CA(os.path.join(work, "other"), "other-ca")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-tls-test", durability="periodic", tls=ca)
    intruders = []
    with running(work, c, intruders):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        term = cl.parse_info(leader.call("INFO", "replication"))["term"]
        # Node 4 claims a place in the cluster (it lists itself and the three members), first
        # with a certificate of another CA, then speaking plaintext: the members must refuse
        # both at the handshake, before a Hello or a vote request is read. One at a time: the
        # transport's log budget for unidentified connections (5 lines per 10 s) would let
        # one intruder's lines hide the other's. Each dials again after a backoff (at most
        # 1 s) when refused.
        members = c.initial_cluster()

        def start_intruder(name, args):
            peer_port = harness.free_port()
            cmd = [binary, "serve", "--node-id", "4", "--port", str(harness.free_port()), "--dir",
                   os.path.join(work, "intruder-" + name), "--durability", "periodic", "--cluster-id", c.cluster_id,
                   "--peer-addr", "127.0.0.1:%d" % peer_port,
                   "--initial-cluster", members + ",4=127.0.0.1:1@127.0.0.1:%d" % peer_port] + args
            log = open(os.path.join(work, "intruder-%s.log" % name), "wb")
            intruders.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT))

        def refusals(n):
            return info_field(n.client_port, "tls_peer_handshake_failures", n.ip)

        stranger_cert = other.issue("node-4")
        start_intruder("stranger", ["--tls-cert-file", stranger_cert[0], "--tls-key-file", stranger_cert[1],
                                    "--tls-ca-cert-file", ca.crt, "--tls-replication", "yes",
                                    "--tls-port", str(harness.free_port())])
        refused_certificate = re.compile(r"refused the connection from 127\.0\.0\.1:\d+: TLS handshake failed: "
                                         r"certificate verify failed: unable to get local issuer certificate")
        wait_for("every member refusing the stranger's certificate (log line, counter)",
                 lambda: all(refused_certificate.search(n.log()) and refusals(n) >= 1 for n in c.nodes), c.nodes[0])
        intruders[-1].kill()
        intruders[-1].wait()
        before = {n: refusals(n) for n in c.nodes}
        start_intruder("plaintext", [])
        wait_for("every member refusing the plaintext node's connection (counter)",
                 lambda: all(refusals(n) > before[n] for n in c.nodes), c.nodes[0])
        for n in c.nodes:
            expect("node 4 connected" not in n.log(), "%s took a Hello from node 4" % n)
        # Every term a member went to, the one it is in now too, is one a member campaigned for.
        infos = {n: cl.parse_info(n.call("INFO", "replication")) for n in c.nodes}
        lines = [line for n in c.nodes for line in n.log().splitlines() if RAFT_LINE.search(line)]
        now = ["raft: now -> %s in term %s (leader: %s)" % (i["role"], i["term"], i["leader_id"]) for i in infos.values()]
        foreign = terms_not_campaigned(lines + now, int(term))
        expect(not foreign, "the members reached terms %r that no member campaigned for (from term %s):\n%s\n%r"
               % (foreign, term, "\n".join(lines), infos))
        member_ids = {str(n.id) for n in c.nodes}
        expect(all(i["leader_id"] in member_ids | {"0"} for i in infos.values()), "a non-member leads: %r" % infos)
        # The check has teeth: the same lines with one role change moved to a term above every
        # campaigned one (what a vote request of node 4 that got through would make) are refused.
        top = max(int(m.group(3)) for m in map(RAFT_LINE.search, lines + now))
        doctored = lines + ["raft: leader -> follower in term %d (leader: 0)" % (top + 1)]
        expect(terms_not_campaigned(doctored, int(term)) == [top + 1],
               "the term check accepted a term no member campaigned for: %r" % terms_not_campaigned(doctored, int(term)))
        elections = len([line for line in lines if "-> candidate in term" in line])
        leader_now = next(iter(infos.values()))["leader_id"]
    print("intruder: a node with another CA's certificate and a plaintext node were refused at the TLS handshake "
          "(logged, counted); every term was the members' own (%d campaigns in all; leader %s in term %s, then %s)"
          % (elections, leader.id, term, leader_now))


# A member's role change (server/cluster.cc, Node::role_changed): "raft: <from> -> <to> in term
# <term> (leader: <id>)".
RAFT_LINE = re.compile(r"raft: (\w+) -> (\w+) in term (\d+) \(leader: (\d+)\)")


def terms_not_campaigned(lines, first_term):
    """The terms above first_term that the members' role changes (`lines`) reach without a
    member having campaigned for them ("-> candidate in term T"): a term only a message from
    outside could have brought. Empty when every term change was the members' own election."""
    changes = [RAFT_LINE.search(line) for line in lines]
    changes = [m for m in changes if m]
    campaigned = {int(m.group(3)) for m in changes if m.group(2) == "candidate"}
    return sorted({int(m.group(3)) for m in changes if int(m.group(3)) > first_term} - campaigned)


def replace_file(src, dst):
    """Puts src's bytes at dst the way docs/security.md says to rotate: a new file renamed
    over the old one (a reader never sees half a file)."""
    shutil.copy(src, dst + ".new")
    os.replace(dst + ".new", dst)


def case_peer_reload(binary):
    work = harness.make_work_dir("hmdb-tls-peer-reload-")
    ca = tls_certs.CA(os.path.join(work, "ca"), "cluster-ca")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-tls-test", durability="periodic", tls=ca)

    def refusals(n):
        return info_field(n.client_port, "tls_peer_handshake_failures", n.ip)

    with running(work, c):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        for i in range(10):
            expect(leader.call("SET", "k%d" % i, "v%d" % i) == "OK", "a write before the rotation")
        # Node 3's certificate of the old CA, kept to try it again after the rotation.
        victim = c.nodes[2]
        victim_paths = victim.tls_cert
        old_cert = (os.path.join(work, "old-node-3.crt"), os.path.join(work, "old-node-3.key"))
        for src, dst in zip(victim.tls_cert, old_cert):
            shutil.copy(src, dst)
        # The rotation: a new CA, a certificate of it per node, and the CA file holding the new
        # CA alone. The nodes' paths stay (what they were started with); SIGHUP reads them.
        new_ca = tls_certs.CA(os.path.join(work, "new-ca"), "new-cluster-ca")
        new_client = new_ca.issue("new-client")
        for n in c.nodes:
            crt, key = new_ca.issue("new-node-%d" % n.id)
            replace_file(crt, n.tls_cert[0])
            replace_file(key, n.tls_cert[1])
        replace_file(new_ca.crt, ca.crt)
        for n in c.nodes:
            expect(refusals(n) == 0, "%s refused a handshake before the rotation" % n)
            n.proc.send_signal(signal.SIGHUP)
        for n in c.nodes:
            wait_for("%s: tls_reloads 1" % n, lambda: info_field(n.client_port, "tls_reloads", n.ip) == 1, n)
            expect(served_cn(n.tls_port, new_ca.crt, new_client, n.ip) == "new-node-%d" % n.id,
                   "%s does not present its new certificate after SIGHUP" % n)
        print("rotated to a new CA: every node reloaded (tls_reloads 1) and presents its new certificate")
        # The open peer connections keep their old certificates: the cluster goes on.
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        if leader is victim:
            # Node 3 is to be restarted below; writes must go on without it.
            other = c.nodes[0]
            r = leader.call("CLUSTER", "TRANSFER", str(other.id), timeout=LEADER_TIMEOUT_S)
            expect(r == "OK", "CLUSTER TRANSFER off node 3 answered %r" % (r,))
            leader = c.wait_leader(LEADER_TIMEOUT_S, nodes=c.nodes[:2])
        members = [n for n in c.nodes if n is not victim]
        # Node 3 with only its old certificate: refused by both members at the handshake.
        victim.kill()
        victim.tls_cert = old_cert
        victim.start()
        refused_certificate = re.compile(r"refused the connection from [0-9.]+:\d+: TLS handshake failed: "
                                         r"certificate verify failed: unable to get local issuer certificate")
        wait_for("both members refusing node 3's old certificate (log line, counter)",
                 lambda: all(refused_certificate.search(n.log()) and refusals(n) >= 1 for n in members), members[0])
        for i in range(10, 20):
            expect(leader.call("SET", "k%d" % i, "v%d" % i) == "OK", "a write while node 3 is refused")
        applied = {n: int(cl.parse_info(n.call("INFO", "replication"))["applied_index"]) for n in c.nodes}
        expect(applied[victim] < min(applied[n] for n in members),
               "node 3 with the old certificate kept up with the cluster: %r" % applied)
        print("node 3 with its old certificate: refused by both members (log line, tls_peer_handshake_failures), "
              "behind at applied index %d" % applied[victim])
        # Node 3 with its new certificate: accepted over connections made after the reload.
        victim.kill()
        victim.tls_cert = victim_paths
        victim.start()
        c.wait_converged(CONVERGE_TIMEOUT_S)
        digests = {n: n.digest() for n in c.nodes}
        expect(len(set(digests.values())) == 1, "the nodes' digests differ: %r" % digests)
    print("peer_reload: a new CA by SIGHUP on every node; the old certificate refused, the new one accepted")


def case_tools(binary, bench):
    if bench is None:
        raise harness.TestFailure("the tools case needs --bench HMDB_BENCH_BINARY")
    work = harness.make_work_dir("hmdb-tls-tools-")
    ca, other, node_cert, client_cert, stranger = node_certificates(work)
    tls_port = harness.free_port()
    data = os.path.join(work, "data")
    s = harness.Server(binary, data, work, durability="always", name="tools",
                       extra_args=tls_flags(tls_port, node_cert[0], node_cert[1], ca.crt) +
                       ["--requirepass", PASSWORD])
    tls_args = ["--tls", "--cacert", ca.crt, "--cert", client_cert[0], "--key", client_cert[1]]
    # The password through the environment, as the docs advise (and both tools read).
    env = dict(os.environ, HMDB_PASSWORD=PASSWORD)

    def run(cmd, env=env):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S, env=env)

    def hmdb_bench(*args, env=env):
        return run([bench, "--host", harness.HOST, "--port", str(tls_port), "--csv", "--quiet"] + list(args), env)

    def snapshot(*args, env=env):
        return run([binary, "snapshot", "--host", harness.HOST, "--port", str(tls_port)] + list(args), env)

    def rows(p):
        return {r["test"]: r for r in csv.DictReader(io.StringIO(p.stdout))}

    with running(work, s):
        s.start()
        good = tls_certs.client_context(ca.crt, client_cert)
        # hmdb-bench over TLS with AUTH: every key of the keyspace written once at least
        # (sequential keys), pipelined; then GETs of them.
        p = hmdb_bench(*tls_args, "--tests", "set,get", "--sequential", "--keyspace", str(BENCH_KEYS),
                       "--requests", str(BENCH_REQUESTS), "--clients", "4", "--pipeline", "32")
        expect(p.returncode == 0, "hmdb-bench --tls: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
        r = rows(p)
        for test in ("SET", "GET"):
            expect(test in r and r[test]["errors"] == "0" and r[test]["requests"] == str(BENCH_REQUESTS),
                   "hmdb-bench --tls %s: %r" % (test, r.get(test)))
        with resp.Client(harness.HOST, tls_port, timeout=CLIENT_TIMEOUT_S, tls=good) as c:
            expect(c.call("AUTH", PASSWORD) == "OK", "AUTH over TLS")
            expect(c.call("DBSIZE") == BENCH_KEYS, "hmdb-bench's SETs over TLS did not write every key")
        # Requests and replies of many TLS records each (16 kB at most), 8 in flight, more
        # than the tool's first read buffer (64 kB): partial TLS writes, reads that grow it.
        p = hmdb_bench(*tls_args, "--tests", "set,get", "--value-size", str(BENCH_BIG_VALUE_BYTES), "--keyspace", "50",
                       "--requests", str(BENCH_BIG_REQUESTS), "--clients", "2", "--pipeline", "8")
        r = rows(p)
        expect(p.returncode == 0 and all(r.get(t, {}).get("errors") == "0" and
                                         r[t]["requests"] == str(BENCH_BIG_REQUESTS) for t in ("SET", "GET")),
               "hmdb-bench --tls with %d-byte values: exit %d\n%s%s"
               % (BENCH_BIG_VALUE_BYTES, p.returncode, p.stdout, p.stderr))
        print("hmdb-bench --tls: %d SETs and GETs pipelined, every key written; %d-byte values read back"
              % (BENCH_REQUESTS, BENCH_BIG_VALUE_BYTES))
        # Refused, each saying why.
        p = hmdb_bench("--tests", "set", "--requests", "10")
        expect(p.returncode == 1, "hmdb-bench without --tls was served by the TLS port: %s%s" % (p.stdout, p.stderr))
        p = hmdb_bench("--tls", "--cacert", ca.crt, "--cert", stranger[0], "--key", stranger[1], "--tests", "set",
                       "--requests", "10")
        expect(p.returncode == 1 and "TLS" in p.stderr,
               "hmdb-bench with another CA's certificate: exit %d %s" % (p.returncode, p.stderr))
        p = hmdb_bench("--tls", "--cacert", other.crt, "--cert", client_cert[0], "--key", client_cert[1],
                       "--tests", "set", "--requests", "10")
        expect(p.returncode == 1 and "certificate verify failed" in p.stderr,
               "hmdb-bench trusting another CA: exit %d %s" % (p.returncode, p.stderr))
        p = hmdb_bench(*tls_args, "--tests", "set", "--requests", "10", env=dict(os.environ, HMDB_PASSWORD="wrong"))
        expect(p.returncode == 1 and "WRONGPASS" in p.stderr,
               "hmdb-bench over TLS with a wrong password: exit %d %s" % (p.returncode, p.stderr))
        p = hmdb_bench("--cacert", ca.crt, "--tests", "set")
        expect(p.returncode == 2 and "need --tls" in p.stderr, "hmdb-bench --cacert without --tls: %s" % p.stderr)
        print("hmdb-bench: refused without --tls, with another CA's certificate, trusting another CA, "
              "with a wrong password")

        # hmdb snapshot over TLS with AUTH: the snapshot file appears.
        def snapshots():
            return [f for f in os.listdir(data) if f.endswith(".hmsnap")]
        expect(snapshots() == [], "a snapshot before any was asked for")
        p = snapshot(*tls_args)
        expect(p.returncode == 0 and len(snapshots()) == 1,
               "hmdb snapshot --tls: exit %d %s%s, snapshots %r" % (p.returncode, p.stdout, p.stderr, snapshots()))
        p = snapshot()
        expect(p.returncode == 1, "hmdb snapshot without --tls was served by the TLS port: %s%s" % (p.stdout, p.stderr))
        p = snapshot("--tls", "--cacert", ca.crt, "--cert", stranger[0], "--key", stranger[1])
        expect(p.returncode == 1 and "TLS" in p.stderr, "hmdb snapshot with another CA's certificate: %s" % p.stderr)
        p = snapshot(*tls_args, env=dict((k, v) for k, v in os.environ.items() if k != "HMDB_PASSWORD"))
        expect(p.returncode == 1 and "NOAUTH" in p.stderr, "hmdb snapshot without the password: %s" % p.stderr)
        p = snapshot(*tls_args, "--password", PASSWORD, env=dict((k, v) for k, v in os.environ.items()
                                                                 if k != "HMDB_PASSWORD"))
        expect(p.returncode == 0, "hmdb snapshot --password: %s" % p.stderr)
        p = snapshot("--cert", client_cert[0])
        expect(p.returncode == 2 and "need --tls" in p.stderr, "hmdb snapshot --cert without --tls: %s" % p.stderr)
        print("hmdb snapshot --tls: written; refused without --tls, with another CA's certificate, without the password")
    print("tools: hmdb-bench and hmdb snapshot speak TLS (with a password) to a TLS port")


CASES = {"clients": case_clients, "tlsonly": case_tlsonly, "reload": case_reload, "cluster": case_cluster,
         "intruder": case_intruder, "tools": case_tools,
         "peer_reload": case_peer_reload}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--bench", help="hmdb-bench, for the tools case")
    ap.add_argument("binary")
    args = ap.parse_args()
    if not shutil.which("openssl"):
        harness.fail("openssl not found (Debian's openssl package: scripts/install-deps.sh)")
        return 1
    for name in args.case or list(CASES):
        t0 = time.monotonic()
        try:
            if name == "tools":
                CASES[name](args.binary, args.bench)
            else:
                CASES[name](args.binary)
        except harness.TestFailure as e:
            harness.fail("%s: %s" % (name, e))
            return 1
        print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
