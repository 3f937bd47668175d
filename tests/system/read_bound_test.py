#!/usr/bin/env python3
"""The per-turn read bound (issue 16 item 5; server/options.h, kTurnReadBytesMax: one loop turn
reads at most 256 KiB from all clients together; INFO `read_bound_turns` counts the turns that
reached it) as real clients meet it: CLIENTS clients each send one big pipeline (SETS_EACH pairs
of SET of a VALUE_BYTES value and INCR of the client's counter, ~7.5 MB in all) while the
server is stopped (SIGSTOP to the PID this test started), so that their bytes wait in the
kernel together; then the server goes on (SIGCONT):

  * every client gets every reply, right and in order (SET -> OK, the INCRs 1, 2, 3, ... in
    the order sent), and every value reads back;
  * the kernel held more than twice the bound for the server's sockets at once before it went
    on (/proc/net/tcp, their receive queues), so its first turn had more than the bound to
    read; INFO read_bound_turns rose.

  redis-py  Debian's python3-redis, one thread per client (pipeline(transaction=False));
  ioredis   ioredis from npm (tests/clients/apps/pipeline_app.js: client.pipeline().exec());
            skipped (77) without node or tests/clients/node_modules.

No timing in pass/fail: the wait for the kernel to hold the bytes is a bounded poll of
/proc/net/tcp. Exits 77 (skipped) without python3-redis (INFO and the values are read with it).
Usage: read_bound_test.py [--case redis-py|ioredis] HMDB_BINARY
"""

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import harness

redis = harness.import_redis(skip_as="read_bound_test")

# The server's bound (server/options.h, kTurnReadBytesMax).
TURN_READ_BYTES_MAX = 256 << 10
# Clients, and the SET + INCR pairs each pipelines; the values' size.
CLIENTS = 16
SETS_EACH = 1000
VALUE_BYTES = 400
# Bound of the wait for the kernel to hold the pipelines, and of any one reply.
WAIT_S = 60.0
# Pause between two looks at /proc/net/tcp (a poll interval: the queues decide).
POLL_S = 0.01
# The ioredis case's app, and where npm installed ioredis (scripts/install-deps.sh).
CLIENTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "clients")
PIPELINE_APP = os.path.join(CLIENTS_DIR, "apps", "pipeline_app.js")
NODE_MODULES = os.path.join(CLIENTS_DIR, "node_modules")


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def value(prefix, n, i):
    head = b"%s%d:%d:" % (prefix, n, i)
    return head + b"v" * (VALUE_BYTES - len(head))


def unread_bytes(port):
    """Bytes received by the kernel and not read yet, summed over the established IPv4
    sockets of local port `port` (the server's side of its clients' connections)."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == "01" and int(local.split(":")[1], 16) == port:
                total += int(queues.split(":")[1], 16)
    return total


def read_bound_turns(r):
    return int(r.info("stats")["read_bound_turns"])


def stopped_while(server, start_senders):
    """Stops the server (SIGSTOP to the PID this test started), calls start_senders(), waits
    until the kernel holds more than twice the bound for the server's sockets, and lets the
    server go on (SIGCONT). Returns the bytes held then."""
    os.kill(server.proc.pid, signal.SIGSTOP)
    try:
        start_senders()
        deadline = time.monotonic() + WAIT_S
        held = unread_bytes(server.port)
        while held <= 2 * TURN_READ_BYTES_MAX:
            expect(time.monotonic() < deadline, "the kernel held only %d bytes of the pipelines for the stopped "
                   "server within %.0f s: not enough to test the bound" % (held, WAIT_S))
            time.sleep(POLL_S)
            held = unread_bytes(server.port)
        return held
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)


def check_values(admin, prefix):
    p = admin.pipeline(transaction=False)
    for n in range(CLIENTS):
        for i in range(SETS_EACH):
            p.get(b"%s%d:%d" % (prefix, n, i))
    values = p.execute()
    wrong = sum(1 for k, v in enumerate(values) if v != value(prefix, k // SETS_EACH, k % SETS_EACH))
    expect(wrong == 0, "%d of %d values read back wrong" % (wrong, len(values)))


def round_redis_py(server, admin):
    """The redis-py clients' round; returns the bytes the kernel held at once."""
    prefix = b"c"
    clients = [redis.Redis(host=harness.HOST, port=server.port, socket_timeout=WAIT_S) for _ in range(CLIENTS)]
    pipelines = []
    for n, r in enumerate(clients):
        expect(r.ping() is True, "client %d PING" % n)  # connected and accepted before the stop
        p = r.pipeline(transaction=False)
        for i in range(SETS_EACH):
            p.set(b"%s%d:%d" % (prefix, n, i), value(prefix, n, i))
            p.incr(b"%sseq:%d" % (prefix, n))
        pipelines.append(p)
    results = [None] * CLIENTS

    def send(n):
        try:
            results[n] = pipelines[n].execute()
        except Exception as e:  # noqa: BLE001 - reported as the test's failure
            results[n] = e

    threads = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(CLIENTS)]
    held = stopped_while(server, lambda: [t.start() for t in threads])
    for t in threads:
        t.join(WAIT_S)
        expect(not t.is_alive(), "a client got no reply to its pipeline within %.0f s" % WAIT_S)
    want = [x for i in range(SETS_EACH) for x in (True, i + 1)]
    for n, got in enumerate(results):
        expect(not isinstance(got, Exception), "client %d: %r" % (n, got))
        expect(len(got) == len(want), "client %d: %d replies to %d commands" % (n, len(got), len(want)))
        bad = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), None)
        expect(bad is None, "client %d reply %d: %r, expected %r" % (n, bad or 0, got[bad or 0], want[bad or 0]))
    check_values(admin, prefix)
    for r in clients:
        r.close()
    return held


def round_ioredis(server, admin):
    """The ioredis clients' round (tests/clients/apps/pipeline_app.js); returns the bytes the
    kernel held at once."""
    prefix = b"io"
    cmd = ["node", PIPELINE_APP, "--port", str(server.port), "--clients", str(CLIENTS), "--sets", str(SETS_EACH),
           "--value-bytes", str(VALUE_BYTES), "--prefix", prefix.decode()]
    app = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in app.stdout] and None, daemon=True).start()

        def next_line(what):
            try:
                return lines.get(timeout=WAIT_S).strip()
            except queue.Empty:
                raise harness.TestFailure("pipeline_app.js: no %s within %.0f s" % (what, WAIT_S))

        expect(next_line("ready") == "ready", "pipeline_app.js did not connect")

        def start():
            app.stdin.write("go\n")
            app.stdin.flush()
            expect(next_line("sent") == "sent", "pipeline_app.js did not send")

        held = stopped_while(server, start)
        out = json.loads(next_line("replies"))
        for c in out:
            expect("error" not in c, "ioredis client %d: %s" % (c["client"], c.get("error")))
            expect(c["replies"] == 2 * SETS_EACH, "ioredis client %d: %d replies to %d commands"
                   % (c["client"], c["replies"], 2 * SETS_EACH))
            expect(c["bad"] is None, "ioredis client %d: %r" % (c["client"], c["bad"]))
        expect(len(out) == CLIENTS, "%d ioredis clients answered of %d" % (len(out), CLIENTS))
        expect(app.wait(WAIT_S) == 0, "pipeline_app.js exit code")
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    check_values(admin, prefix)
    return held


def run(binary, case):
    work = harness.make_work_dir("hmdb-read-bound-")
    server = harness.Server(binary, os.path.join(work, "data"), work, name="read-bound")
    try:
        server.start()
        admin = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=WAIT_S)
        turns_before = read_bound_turns(admin)
        held = (round_redis_py if case == "redis-py" else round_ioredis)(server, admin)
        turns = read_bound_turns(admin) - turns_before
        expect(turns >= 1, "%d bytes waited for the server at once, but read_bound_turns did not rise" % held)
        print("%s: %d clients, %d bytes waited in the kernel at once (at least), %d turns reached the bound, "
              "%d replies right and in order" % (case, CLIENTS, held, turns, 2 * SETS_EACH * CLIENTS))
        admin.close()
        expect(server.terminate() == 0, "server exit code")
    finally:
        server.kill()
    harness.remove_work_dir(work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=["redis-py", "ioredis"], default="redis-py")
    ap.add_argument("binary")
    a = ap.parse_args()
    if a.case == "ioredis":
        if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_MODULES, "ioredis")):
            print("read_bound_test: skipped: node or ioredis (in %s) is not installed (bash scripts/install-deps.sh)"
                  % NODE_MODULES)
            sys.exit(77)
    run(a.binary, a.case)
    print("read_bound_test %s: OK" % a.case)


if __name__ == "__main__":
    main()
