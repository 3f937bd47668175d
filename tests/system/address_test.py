#!/usr/bin/env python3
"""Where a single node listens (`--bind`), with real processes and real clients.

  ipv6   --bind ::1: the node answers our RESP client and redis-cli (when installed) on
         [::1], CLIENT LIST shows the client as [::1]:PORT, `hmdb snapshot --host ::1`
         works, and nothing listens on 127.0.0.1 at that port (bound to ::1 only; with
         --metrics-port, the metrics endpoint too). Skipped (exit 77) on a machine without
         IPv6 loopback.
  name   --bind localhost: bound where the name resolves (its first IPv4 address, the rule
         every dialer uses), so redis-cli -h localhost and `hmdb snapshot --host localhost`
         reach it; a --bind that is not a host ("127.0.0.1:7379") stops at startup with an
         error naming --bind.

The 3-node cluster on names and on ::1 is cluster_test.py's names and ipv6 cases.
Every wait is a bounded poll of a real condition. Usage: address_test.py [--case NAME] HMDB_BINARY
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import cluster as cl
import harness
import resp

# How long a node may take to answer PING after it starts.
READY_TIMEOUT_S = 30.0
# Timeout of one client command (hmdb snapshot, redis-cli).
TOOL_TIMEOUT_S = 30.0
# The server's exit code for a bad flag (kExitStartupFailure, src/server/fatal.h).
STARTUP_FAILURE_EXIT_CODE = 1
# ctest's SKIP_RETURN_CODE: the case cannot run on this machine.
SKIP_EXIT_CODE = 77


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Single:
    """One `hmdb serve --bind HOST` process."""

    def __init__(self, binary, work, host, extra=()):
        self.binary = binary
        self.host = host
        self.port = cl.free_port_on(host)
        self.log_path = os.path.join(work, "node.log")
        self.cmd = [binary, "serve", "--bind", host, "--port", str(self.port), "--dir", os.path.join(work, "data")]
        self.cmd += list(extra)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = None
        while True:
            code = self.proc.poll()
            expect(code is None, "the node exited with code %s:\n%s" % (code, self.log()))
            try:
                with resp.Client(self.host, self.port, timeout=2.0) as c:
                    if c.call("PING") == "PONG":
                        return
            except (resp.ConnectionLost, resp.ProtocolError) as e:
                last = str(e)
            expect(time.monotonic() < deadline, "no PONG within %.0fs (last: %s)\n%s"
                   % (READY_TIMEOUT_S, last, self.log()))
            time.sleep(cl.POLL_INTERVAL_S)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def tool(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    return p.returncode, p.stdout + p.stderr


def redis_cli(host, port, *args):
    """redis-cli's output, or None when it is not installed."""
    if shutil.which("redis-cli") is None:
        return None
    code, out = tool(["redis-cli", "-h", host, "-p", str(port)] + list(args))
    expect(code == 0, "redis-cli -h %s %s exited %d: %s" % (host, " ".join(args), code, out))
    return out.strip()


def refuses(host, port):
    """True if nothing accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except OSError:
        return True


def case_ipv6(binary, work):
    metrics_port = cl.free_port_on("::1")
    node = Single(binary, work, "::1", ["--metrics-port", str(metrics_port)])
    try:
        node.wait_ready()
        expect("listening on [::1]:%d" % node.port in node.log(), "the ready line does not name [::1]:%d:\n%s"
               % (node.port, node.log()))
        with resp.Client("::1", node.port) as c:
            expect(c.call("SET", "k", "over-ipv6") == "OK", "SET over IPv6 refused")
            expect(c.call("GET", "k") == b"over-ipv6", "GET over IPv6")
            clients = c.call("CLIENT", "LIST").decode()
            expect("addr=[::1]:" in clients, "CLIENT LIST does not show an IPv6 client: %r" % clients)
        out = redis_cli("::1", node.port, "GET", "k")
        if out is None:
            print("redis-cli is not installed: checked with the RESP client only")
        else:
            expect(out == "over-ipv6", "redis-cli -h ::1 GET k printed %r" % out)
            expect(redis_cli("::1", node.port, "PING") == "PONG", "redis-cli -h ::1 PING")
        code, out = tool([binary, "snapshot", "--host", "::1", "--port", str(node.port)])
        expect(code == 0, "hmdb snapshot --host ::1 exited %d: %s" % (code, out))
        expect(refuses("127.0.0.1", node.port), "something answers on 127.0.0.1:%d: --bind ::1 bound more" % node.port)
        with urllib.request.urlopen("http://[::1]:%d/metrics" % metrics_port, timeout=5.0) as r:
            expect(r.status == 200 and b"hmdb_" in r.read(), "metrics over IPv6")
    finally:
        node.stop()


def case_name(binary, work):
    node = Single(binary, work, "localhost")
    try:
        node.wait_ready()
        expect("listening on localhost:%d" % node.port in node.log(), "the ready line: %s" % node.log())
        out = redis_cli("localhost", node.port, "SET", "k", "by-name")
        if out is None:
            print("redis-cli is not installed: checked with the RESP client only")
            with resp.Client("localhost", node.port) as c:
                expect(c.call("SET", "k", "by-name") == "OK", "SET by name refused")
        else:
            expect(out == "OK", "redis-cli -h localhost SET printed %r" % out)
        code, out = tool([binary, "snapshot", "--host", "localhost", "--port", str(node.port)])
        expect(code == 0, "hmdb snapshot --host localhost exited %d: %s" % (code, out))
    finally:
        node.stop()
    code, out = tool([binary, "serve", "--bind", "127.0.0.1:7379", "--port", "0", "--dir", os.path.join(work, "bad")])
    expect(code == STARTUP_FAILURE_EXIT_CODE and "--bind" in out,
           "--bind 127.0.0.1:7379 exited %d: %s" % (code, out))


CASES = {"ipv6": case_ipv6, "name": case_name}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("binary")
    args = ap.parse_args()
    names = args.case or list(CASES)
    skipped = 0
    for name in names:
        if name == "ipv6" and not have_ipv6_loopback():
            print("skip %s: this machine has no IPv6 loopback (::1 cannot be bound)" % name)
            skipped += 1
            continue
        work = harness.make_work_dir("hmdb-address-%s-" % name)
        try:
            CASES[name](args.binary, work)
        except harness.TestFailure as e:
            print("FAIL %s: %s\nwork dir kept: %s" % (name, e, work))
            return 1
        print("ok %s" % name)
        harness.remove_work_dir(work)
    return SKIP_EXIT_CODE if skipped == len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
