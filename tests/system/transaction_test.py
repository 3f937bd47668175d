#!/usr/bin/env python3
"""Transactions through a real client library: redis-py (Debian's python3-redis), whose
default pipeline() is MULTI ... EXEC and whose transaction() helper is the WATCH retry loop.

  pipeline   a single node: pipeline(transaction=True) answers each queued command in
             order, a run-time error in its place (raise_on_error=False), and an error
             while queueing fails the whole EXEC (redis-py raises, nothing is applied).
  watch      a single node, a WATCH conflict between two clients: client A watches a key,
             client B changes it, A's EXEC fails (WatchError); then CLIENTS threads each
             increment one counter ROUNDS times with the WATCH/GET/MULTI/SET/EXEC retry
             loop (no INCR): the counter ends at exactly CLIENTS x ROUNDS, which it cannot
             if a WATCH misses a conflicting change (a lost update). And B's pops of a
             missing key are no conflict (they change nothing, as in Redis).
  failover   a 3-node cluster (tests/system/cluster.py): a client runs MULTI INCR a,
             INCR b, EXEC against the leader; FAILOVER_IN_FLIGHT more are sent on another
             connection and the leader is killed (kill -9) before any reply is read; the
             client follows the new leader and goes on. At the end a == b on every node (every
             transaction was all or nothing), a is at least the number of acknowledged
             EXECs and at most the number attempted, and the digests agree.

Usage: transaction_test.py [--case NAME] [--keep] HMDB_BINARY. Exits 77 (skipped) when no
python3 with the redis module is found (apt-get install python3-redis).
"""

import os
import sys

import harness

redis = harness.import_redis(skip_as="transaction_test")

import argparse  # noqa: E402
import socket
import threading
import time

import cluster as cl  # noqa: E402

SKIP_EXIT_CODE = harness.SKIP_EXIT_CODE
# Bounds of the waits below.
LEADER_TIMEOUT_S = 20.0
CONVERGE_TIMEOUT_S = 60.0
SOCKET_TIMEOUT_S = 5.0
# watch case: threads, and increments each makes with the optimistic loop.
CLIENTS = 4
ROUNDS = 150
# An optimistic increment gives up after this many conflicts in a row (a bound, not a
# tolerance: the test fails if it is reached).
WATCH_RETRIES_MAX = 10000
# failover case: transactions before the kill, and after it on the new leader.
FAILOVER_BEFORE = 100
FAILOVER_AFTER = 100
FAILOVER_TIMEOUT_S = 60.0
# Transactions in flight when the leader is killed.
FAILOVER_IN_FLIGHT = 50
IN_FLIGHT_TRANSACTION = b"*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$1\r\na\r\n*2\r\n$4\r\nINCR\r\n$1\r\nb\r\n*1\r\n$4\r\nEXEC\r\n"


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def client(host, port):
    return redis.Redis(host=host, port=port, socket_timeout=SOCKET_TIMEOUT_S)


def case_pipeline(server):
    r = client(harness.HOST, server.port)
    r.set("n", 10)
    p = r.pipeline(transaction=True)
    p.incr("n").get("n").set("s", "text").incr("s").lpush("l", "x").get("n")
    out = p.execute(raise_on_error=False)
    expect(out[:4] == [11, b"11", True, out[3]] and isinstance(out[3], redis.ResponseError),
           "pipeline answered %r" % (out,))
    expect(out[4:] == [1, b"11"], "pipeline answered %r" % (out,))
    # An error while queueing (wrong arity): redis-py raises, and nothing was applied.
    p = r.pipeline(transaction=True)
    p.incr("n")
    p.execute_command("GET")
    try:
        p.execute()
        raise harness.TestFailure("a transaction with a queueing error ran")
    except redis.ResponseError as e:
        expect("EXECABORT" in str(e) or "wrong number of arguments" in str(e), "unexpected error %r" % e)
    expect(r.get("n") == b"11", "an aborted transaction changed the state: n = %r" % r.get("n"))
    print("pipeline: %r" % (out,))


def optimistic_increment(r, key):
    """The WATCH retry loop (redis-py's transaction() helper); returns the conflicts seen."""
    conflicts = [0]

    def body(pipe):
        value = int(pipe.get(key) or 0)
        pipe.multi()
        pipe.set(key, value + 1)

    def counting(pipe):
        if conflicts[0] >= WATCH_RETRIES_MAX:
            raise harness.TestFailure("%d WATCH conflicts in a row" % conflicts[0])
        conflicts[0] += 1
        body(pipe)

    r.transaction(counting, key)
    return conflicts[0] - 1


def case_watch(server):
    a, b = client(harness.HOST, server.port), client(harness.HOST, server.port)
    a.set("k", 1)
    with a.pipeline() as p:
        p.watch("k")
        b.set("k", 2)  # another client changes it
        p.multi()
        p.set("k", 3)
        try:
            p.execute()
            raise harness.TestFailure("EXEC ran although a WATCHed key changed")
        except redis.WatchError:
            pass
    expect(a.get("k") == b"2", "the failed transaction changed k: %r" % a.get("k"))
    with a.pipeline() as p:  # nothing changed: it runs
        p.watch("k")
        p.multi()
        p.set("k", 4)
        expect(p.execute() == [True], "an unconflicted transaction did not run")
    # A pop that finds nothing changes nothing, so it is no conflict, as in Redis: B's pops of
    # a missing key between A's WATCH and EXEC leave A's transaction to run (nothing is pending
    # on the node then: they are answered as reads, docs/kv-commands.md "Pops that find nothing").
    with a.pipeline() as p:
        p.watch("nokey", "k")
        expect(b.lpop("nokey") is None and b.spop("nokey") is None and b.zpopmin("nokey") == [],
               "a pop of a missing key found something")
        p.multi()
        p.set("k", 5)
        try:
            expect(p.execute() == [True], "a transaction did not run")
        except redis.WatchError:
            raise harness.TestFailure("another client's pops of a missing key failed a transaction WATCHing it")

    a.set("counter", 0)
    conflicts = []
    errors = []

    def worker():
        try:
            r = client(harness.HOST, server.port)
            for _ in range(ROUNDS):
                conflicts.append(optimistic_increment(r, "counter"))
        except Exception as e:  # reported below, with the others
            errors.append(repr(e))

    threads = [threading.Thread(target=worker) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expect(not errors, "workers failed: %s" % errors)
    final = int(a.get("counter"))
    expect(final == CLIENTS * ROUNDS, "counter %d after %d increments: a WATCH missed a change"
           % (final, CLIENTS * ROUNDS))
    print("watch: %d optimistic increments by %d clients, %d conflicts retried" % (final, CLIENTS, sum(conflicts)))


def case_failover(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    host, port = leader.client_addr.rsplit(":", 1)
    r = client(host, int(port))
    acked = attempted = outcome_errors = 0
    killed = None
    deadline = time.monotonic() + FAILOVER_TIMEOUT_S
    while acked < FAILOVER_BEFORE + FAILOVER_AFTER:
        expect(time.monotonic() < deadline, "%d transactions acknowledged in %.0f s" % (acked, FAILOVER_TIMEOUT_S))
        if killed is None and acked == FAILOVER_BEFORE:
            # The kill lands while transactions are in flight: FAILOVER_IN_FLIGHT of them are
            # sent on a connection of their own, and the leader dies without a reply read.
            # Each may or may not have been committed (by the followers, then the new leader).
            with socket.create_connection((host, int(port)), timeout=SOCKET_TIMEOUT_S) as raw:
                raw.sendall(IN_FLIGHT_TRANSACTION * FAILOVER_IN_FLIGHT)
                killed = leader
                leader.kill()
            attempted += FAILOVER_IN_FLIGHT
        try:
            p = r.pipeline(transaction=True)
            p.incr("a").incr("b")
            attempted += 1
            out = p.execute()
            expect(out[0] == out[1], "one transaction's INCRs saw different counters: %r" % (out,))
            acked += 1
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as e:
            # A lost connection, a redirect or an unknown outcome: find the leader again.
            outcome_errors += 1
            survivors = [n for n in c.nodes if n is not killed]
            leader = c.wait_leader(LEADER_TIMEOUT_S, nodes=survivors)
            host, port = leader.client_addr.rsplit(":", 1)
            r = client(host, int(port))
    killed.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    a = 0
    for n in c.nodes:
        rc = client(*n.client_addr.rsplit(":", 1))
        rc.execute_command("READONLY")
        a, b = int(rc.get("a") or 0), int(rc.get("b") or 0)
        expect(a == b, "%s: a = %d, b = %d: a transaction was applied in part" % (n, a, b))
        expect(acked <= a <= attempted, "%s: a = %d, acknowledged %d, attempted %d" % (n, a, acked, attempted))
    digests = {n: n.digest() for n in c.nodes}
    expect(len(set(digests.values())) == 1, "digests differ: %s" % digests)
    print("failover: %d transactions acknowledged of %d attempted (%d applied), %d errors around the kill of %s"
          % (acked, attempted, a, outcome_errors, killed))


SINGLE = {"pipeline": case_pipeline, "watch": case_watch}
CASES = dict(SINGLE, failover=case_failover)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    for name in args.case or list(CASES):
        work = harness.make_work_dir("hmdb-txn-%s-" % name)
        t0 = time.monotonic()
        if name in SINGLE:
            os.makedirs(os.path.join(work, "data"), exist_ok=True)
            server = harness.Server(args.binary, os.path.join(work, "data"), work)
            try:
                server.start()
                SINGLE[name](server)
            except harness.TestFailure as e:
                print("FAIL %s: %s\n%s" % (name, e, server.log_tail()))
                server.kill()
                print("work dir kept: %s" % work)
                return 1
            server.kill()
        else:
            c = cl.Cluster(args.binary, work, nodes=3, cluster_id="hmdb-txn-test")
            try:
                c.start()
                CASES[name](c)
                c.check_alive()
            except harness.TestFailure as e:
                print("FAIL %s: %s" % (name, e))
                for n in c.nodes:
                    print(n.log_tail())
                c.kill_all()
                print("work dir kept: %s" % work)
                return 1
            c.kill_all()
        print("ok %s (%.1f s)" % (name, time.monotonic() - t0))
        if not args.keep:
            harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
