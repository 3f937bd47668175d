#!/usr/bin/env python3
"""Retries that never apply twice, through real client libraries (issue 11, item 6): an app
(apps/request_app.py with redis-py, apps/request_app.js with ioredis, node-redis, node-redis 4)
counts with HMDB.REQ <id> INCR <counter>, one request at a time, and sends a request again
after any error until it is answered (docs/kv-commands.md, "Retries that never apply twice").

  single    one node, the library's plain client, through a proxy (LostReplyProxy) that
            loses a reply on purpose: it lets a tagged INCR through, keeps the node's reply
            (so the write was applied and is durable), then the node is killed with kill -9,
            the client's connection is cut, and the node is started again on its data
            directory (after a SNAPSHOT every other time, so that the request table comes
            back from a snapshot, or else from the log). --kills times.
  plain     a 3-node cluster, the library's plain client given node 1 through the same
            proxy: node 1 forwards to the leader (never node 1: leadership is moved off it
            first), the reply is lost the same way, the LEADER is killed and the client's
            connection cut; the retry goes through node 1 to the new leader. --kills times.
  failover  a 3-node cluster, the library's cluster client; the leader is killed --kills
            times while the app counts, wherever its request is (clients.HmdbTarget): a
            reply may or may not be lost, as it happens.

Each lost reply must come back: the retry of request n is answered exactly the value the lost
reply held, and the node that applied the retry counts it in INFO's request_repeats (it
was answered from the request table). At the end, for every case:

  - request n was answered n + 1 (the app is the counter's only writer), and
  - the counter (read on the leader) equals the number of requests answered.

--untagged sends plain INCR instead: the control run, showing what the check catches (the
retry after a lost reply applies twice: the single and plain cases then fail every time).

Usage: request_clients_test.py --case single|plain|failover [--library NAME]... [--kills N]
       [--untagged] HMDB_BINARY. A library that is not installed is skipped (bash
       scripts/install-deps.sh); exit 77 if none is.
"""
import argparse
import os
import re
import socket
import sys
import threading
import time

import clients

SKIP_EXIT_CODE = 77
HERE = clients.HERE
APPS = {
    "redis-py": [clients.DEBIAN_PYTHON, os.path.join(HERE, "apps", "request_app.py")],
    "ioredis": ["node", os.path.join(HERE, "apps", "request_app.js"), "--library", "ioredis"],
    "node-redis": ["node", os.path.join(HERE, "apps", "request_app.js"), "--library", "node-redis"],
    "node-redis4": ["node", os.path.join(HERE, "apps", "request_app.js"), "--library", "node-redis4"],
}
# Requests answered before the first kill and between kills (and after the last restart).
REQUESTS_BETWEEN_KILLS = 20
# Bounds.
DROP_TIMEOUT_S = 30.0        # from arming the proxy to a tagged request's reply kept back
RETRY_TIMEOUT_S = 30.0       # from cutting the client's connection to the retry's answer
REPEATS_TIMEOUT_S = 10.0     # for the node to have applied the retry (INFO request_repeats)
PROXY_CONNECT_TIMEOUT_S = 1.0


class LostReplyProxy:
    """A TCP proxy between an app's plain client and one node, which can lose one reply on
    purpose. arm(word): the next command that holds `word` (HMDB.REQ; INCR for the untagged
    control) goes through, and the node's reply to it is kept back (lost(): the request's bytes and the reply's); nothing more reaches
    that client on that connection. sever() then closes it, as a network or a dead node
    would. target() gives the node's address at each new connection (a restarted node may
    listen on another port)."""

    def __init__(self, target):
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((clients.harness.HOST, 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed = None     # the word the next command to lose the reply of holds
        self._lost = None      # (request bytes, reply bytes) once a reply was kept back
        self._lost_pair = None
        self._got_lost = threading.Event()
        self._pairs = {}  # id -> the open connection pairs
        threading.Thread(target=self._accept, daemon=True).start()

    def addr(self):
        return "%s:%d" % (clients.harness.HOST, self.port)

    def arm(self, word):
        with self._lock:
            self._armed, self._lost, self._lost_pair = word.lower(), None, None
            self._got_lost.clear()

    def lost(self, timeout):
        """(request bytes, reply bytes) of the reply kept back; waits for it."""
        if not self._got_lost.wait(timeout):
            raise clients.TestFailure("no request went through the proxy within %.0f s" % timeout)
        with self._lock:
            return self._lost

    def sever(self):
        with self._lock:
            pair = self._lost_pair
        if pair is not None:
            self._close(pair)

    def close(self):
        self._listener.close()
        with self._lock:
            pairs = list(self._pairs.values())
        for pair in pairs:
            self._close(pair)

    def _accept(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(self.target(), timeout=PROXY_CONNECT_TIMEOUT_S)
                up.settimeout(None)
            except OSError:
                conn.close()  # the node is down: the client sees its connection close
                continue
            pair = {"client": conn, "node": up, "drop": False}
            with self._lock:
                self._pairs[id(pair)] = pair
            threading.Thread(target=self._to_node, args=(pair,), daemon=True).start()
            threading.Thread(target=self._to_client, args=(pair,), daemon=True).start()

    def _to_node(self, pair):
        try:
            while True:
                data = pair["client"].recv(65536)
                if not data:
                    break
                with self._lock:
                    if self._armed and self._armed in data.lower():
                        self._armed = None
                        pair["drop"] = True  # before the node can answer it
                        pair["request"] = data
                        self._lost_pair = pair
                pair["node"].sendall(data)
        except OSError:
            pass
        self._close(pair)

    def _to_client(self, pair):
        try:
            while True:
                data = pair["node"].recv(65536)
                if not data:
                    break
                with self._lock:
                    drop = pair["drop"]
                    if drop and self._lost is None:
                        self._lost = (pair["request"], data)
                        self._got_lost.set()
                if not drop:
                    pair["client"].sendall(data)
        except OSError:
            pass
        self._close(pair)

    def _close(self, pair):
        with self._lock:
            self._pairs.pop(id(pair), None)
        for s in (pair["client"], pair["node"]):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def parse_info(reply):
    out = {}
    for line in reply.decode().split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = v
    return out


def request_repeats(call):
    return int(parse_info(call("INFO", "stats")).get("request_repeats", "0"))


def check(library, app, acked, counter):
    """Request n answered n + 1; the counter is the number of requests answered."""
    wrong = [(n, v) for n, v in zip(acked, app.values) if v != n + 1]
    if wrong:
        raise clients.TestFailure("%s: requests answered another value than n + 1 (n, value): %s%s"
                                  % (library, wrong[:10], " -- applied twice" if any(v > n + 1 for n, v in wrong) else ""))
    if counter != len(acked):
        raise clients.TestFailure("%s: the counter is %d after %d requests answered%s"
                                  % (library, counter, len(acked), " -- applied twice" if counter > len(acked) else ""))


def lose_reply(proxy, app, prefix, untagged):
    """Loses the reply to the app's next request: its n and the lost reply's value."""
    proxy.arm(b"INCR" if untagged else b"HMDB.REQ")
    request, reply = proxy.lost(DROP_TIMEOUT_S)
    r = re.match(rb":(-?\d+)\r\n", reply)
    if untagged:  # no id to read n from: the app sends one request at a time
        with app._lock:
            m, n = True, len(app.acked)
    else:
        m = re.search(re.escape(prefix.encode()) + rb"-(\d+)\r\n", request)
        n = int(m.group(1)) if m else None
    if not m or not r:
        raise clients.TestFailure("the reply kept back is not an INCR's: %r -> %r" % (request, reply))
    return n, int(r.group(1))


def check_retry(library, app, n, value, repeats_before, repeats_now):
    """The retry of request n was answered the lost reply's value, from the request table."""
    app.wait_acked(n + 1, timeout=RETRY_TIMEOUT_S)
    with app._lock:
        got = app.values[app.acked.index(n)]
        retries = sum(1 for _, m, _ in app.errors if m == n)
    if got != value:
        raise clients.TestFailure("%s: request %d's reply was lost holding %d, its retry was answered %s%s"
                                  % (library, n, value, got, " -- applied twice" if got > value else ""))
    deadline = time.monotonic() + REPEATS_TIMEOUT_S
    while repeats_now() <= repeats_before:
        if time.monotonic() > deadline:
            raise clients.TestFailure("%s: request %d was answered %d but no node counted a repeat (request_repeats "
                                      "stayed %d): was the retry sent?" % (library, n, got, repeats_before))
        time.sleep(0.01)
    return retries


def case_single(binary, library, kills, untagged, work):
    prefix = "rq-" + library
    server = clients.harness.Server(binary, os.path.join(work, "single-" + library), work, name="single-" + library)
    server.start()
    proxy = LostReplyProxy(lambda: (clients.harness.HOST, server.port))
    notes = []
    try:
        app = clients.App(library, "plain", proxy.addr(), prefix, os.path.join(work, "%s-single-app.log" % library),
                          command=APPS[library] + (["--untagged", "1"] if untagged else []))
        try:
            app.wait_ready()
            app.wait_acked(REQUESTS_BETWEEN_KILLS)
            for k in range(kills):
                n, value = lose_reply(proxy, app, prefix, untagged)
                snapshot = k % 2 == 0
                if snapshot:  # request n's id goes into the snapshot: the restart loads it from there
                    with server.client() as c:
                        c.call("SNAPSHOT")
                server.kill()
                proxy.sever()
                server.start()

                def repeats():
                    with server.client() as c:
                        return request_repeats(c.call)

                retries = check_retry(library, app, n, value, 0, repeats)
                notes.append("request %d's reply lost, node killed, restarted from its %s, retried %d times: %d"
                             % (n, "snapshot" if snapshot else "log", retries, value))
                app.wait_acked(len(app.acked) + REQUESTS_BETWEEN_KILLS)
            acked = app.stop()
        finally:
            app.kill()
        with server.client() as c:
            counter = int(c.call("GET", prefix + ":counter"))
    finally:
        proxy.close()
        server.kill()
    check(library, app, acked, counter)
    return app, acked, notes


def case_plain(binary, library, kills, untagged, work):
    prefix = "rq-" + library
    target = clients.HmdbTarget(binary, os.path.join(work, "plain-" + library))
    target.start()
    node1 = target.cluster.node(1)
    proxy = LostReplyProxy(lambda: (node1.ip, node1.client_port))
    notes = []
    try:
        app = clients.App(library, "plain", proxy.addr(), prefix, os.path.join(work, "%s-plain-app.log" % library),
                          command=APPS[library] + (["--untagged", "1"] if untagged else []))
        try:
            app.wait_ready()
            app.wait_acked(REQUESTS_BETWEEN_KILLS)
            for _ in range(kills):
                victim = target.victim(avoid_addr=node1.moved_addr)  # node 1 forwards to it
                before = request_repeats(node1.call)
                n, value = lose_reply(proxy, app, prefix, untagged)
                target.kill(victim)
                proxy.sever()
                retries = check_retry(library, app, n, value, before, lambda: request_repeats(node1.call))
                notes.append("request %d's reply lost, leader %s killed, retried %d times through node 1: %d"
                             % (n, victim, retries, value))
                target.rejoin(victim)
                app.wait_acked(len(app.acked) + REQUESTS_BETWEEN_KILLS)
            acked = app.stop()
        finally:
            app.kill()
        counter = int(target.read(prefix + ":counter"))
    finally:
        proxy.close()
        target.stop()
    check(library, app, acked, counter)
    return app, acked, notes


def case_failover(binary, library, kills, untagged, work):
    prefix = "{rq}" + library
    target = clients.HmdbTarget(binary, os.path.join(work, "cluster-" + library))
    target.start()
    notes = []
    try:
        addr = target.all_addrs() if library in clients.ALL_ADDRESSES else target.seed_addr()
        app = clients.App(library, "cluster", addr, prefix, os.path.join(work, "%s-failover-app.log" % library),
                          command=APPS[library] + (["--untagged", "1"] if untagged else []))
        try:
            app.wait_ready()
            app.wait_acked(REQUESTS_BETWEEN_KILLS)
            for _ in range(kills):
                victim = target.victim()
                app.wait_acked(len(app.acked) + REQUESTS_BETWEEN_KILLS)
                target.kill(victim)
                # The killed node comes back once the app counts again (as clients.run_failover
                # does): restarted at once, it knows no leader while the others have not elected
                # one yet, and answers CLUSTER SLOTS with no slot; node-redis 6, refreshing its
                # topology from it then, has no node for any slot and fails every command with a
                # TypeError, never asking again.
                app.wait_acked(len(app.acked) + 1, timeout=RETRY_TIMEOUT_S)
                notes.append("leader %s killed" % victim)
                target.rejoin(victim)
                app.wait_acked(len(app.acked) + REQUESTS_BETWEEN_KILLS)
            acked = app.stop()
        finally:
            app.kill()
        counter = int(target.read(prefix + ":counter"))
        repeats = sum(request_repeats(n.call) for n in target.cluster.nodes)
        notes.append("retries answered from the table, summed over the nodes' INFO since their last start: %d" % repeats)
    finally:
        target.stop()
    check(library, app, acked, counter)
    return app, acked, notes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=("single", "plain", "failover"), required=True)
    ap.add_argument("--library", choices=sorted(APPS), action="append")
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--untagged", action="store_true", help="the control run: plain INCR, no request ids")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    wanted = args.library or sorted(APPS)
    missing = clients.missing_libraries(wanted)
    for name, why in missing.items():
        print("skip %s: %s" % (name, why))
    libraries = [name for name in wanted if name not in missing]
    if not libraries:
        return SKIP_EXIT_CODE
    binary = os.path.abspath(args.binary)
    work = clients.harness.make_work_dir("hmdb-request-clients-%s-" % args.case)
    run = {"single": case_single, "plain": case_plain, "failover": case_failover}[args.case]
    failed = False
    for library in libraries:
        t0 = time.monotonic()
        try:
            app, acked, notes = run(binary, library, args.kills, args.untagged, work)
            print("ok %s %s %s: %d requests answered, counter %d, %d kills (%.1f s)"
                  % (args.case, library, app.version, len(acked), len(acked), args.kills, time.monotonic() - t0))
            for note in notes:
                print("  " + note)
        except (clients.TestFailure, clients.harness.TestFailure, clients.harness.ServerExited) as e:
            print("FAIL %s %s%s: %s" % (args.case, library, " (untagged)" if args.untagged else "", e))
            failed = True
    if failed:
        print("work dir kept: %s" % work)
        return 1
    if not args.keep:
        clients.harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
