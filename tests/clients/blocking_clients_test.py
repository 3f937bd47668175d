#!/usr/bin/env python3
"""Blocking commands through redis-py, as a user writes them (`redis.Redis(...).blpop`;
docs/kv-commands.md, "Blocking commands"), on a 3-node cluster (tests/system/cluster.py).
Each waiter is a thread with its own connection; before the write meant to wake it the test
waits for the node's INFO to show it parked (`blocked_clients`), never for a time.

  wake       a client BLPOPs an empty key on the leader; another LPUSHes: the first gets it
  fifo       three clients BLPOP the same key, parked one after another; one RPUSH of three
             elements: each gets the element of its turn
  timeout    BLPOP with timeout 0.01 on an empty key answers None (the null array); BRPOP,
             BLMOVE, BZPOPMIN the same
  disconnect a client parked on a key disconnects: blocked_clients drops to 0, and a later
             push stays in the list (nobody takes it)
  follower   a client on a follower (which forwards) BLPOPs: it waits on the follower, and a
             push on the leader reaches it
  moved      a cluster client (CLIENT NO-FORWARD ON) parked on the leader is answered -MOVED
             to the new leader when leadership is transferred away
  kill       the leader is killed with kill -9 while one client is parked on it and one on a
             follower: the first gets an answer (its connection ends: ConnectionError) and its
             retry on the new leader works; the second keeps waiting through the election and
             gets the element pushed on the new leader

Usage: blocking_clients_test.py [--keep] HMDB_BINARY. Needs Debian's python3-redis (exit 77
without it: bash scripts/install-deps.sh installs it).
"""
import argparse
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, os.path.join(HERE, "..", "system"))
import cluster as cl  # noqa: E402
import harness  # noqa: E402

redis = harness.import_redis(skip_as="blocking_clients_test")
SKIP_EXIT_CODE = harness.SKIP_EXIT_CODE

WAIT_TIMEOUT_S = 30.0   # for a condition polled on a node (parked, a reply, a leader)
CLIENT_TIMEOUT_S = 60.0  # redis-py's socket timeout: a waiter that is never answered fails


class Waiter:
    """A thread running one blocking call on its own connection; result() waits for it."""

    def __init__(self, fn):
        self.value = None
        self.error = None
        self._done = threading.Event()

        def run():
            try:
                self.value = fn()
            except Exception as e:  # noqa: BLE001 - the error is the result
                self.error = e
            self._done.set()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def done(self):
        return self._done.is_set()

    def result(self, timeout=WAIT_TIMEOUT_S):
        if not self._done.wait(timeout):
            raise harness.TestFailure("a blocking call was not answered within %.0f s" % timeout)
        return self.value, self.error


def expect(cond, what):
    if not cond:
        raise harness.TestFailure(what)


def client(node, **kw):
    return redis.Redis(host=node.ip, port=node.client_port, socket_timeout=CLIENT_TIMEOUT_S, **kw)


def blocked(node):
    return int(cl.parse_info(node.call("INFO", "clients")).get("blocked_clients", "-1"))


def wait_blocked(node, count):
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while blocked(node) != count:
        if time.monotonic() > deadline:
            raise harness.TestFailure("%s: blocked_clients never became %d (now %d)" % (node, count, blocked(node)))
        time.sleep(cl.POLL_INTERVAL_S)


def case_wake(c, leader):
    w = Waiter(lambda: client(leader).blpop(["wake:q"], timeout=0))
    wait_blocked(leader, 1)
    expect(client(leader).lpush("wake:q", "hello") == 1, "LPUSH")
    value, error = w.result()
    expect(error is None and value == (b"wake:q", b"hello"), "BLPOP woken: %r %r" % (value, error))
    wait_blocked(leader, 0)


def case_fifo(c, leader):
    waiters = []
    for i in range(3):
        waiters.append(Waiter(lambda: client(leader).blpop(["fifo:q"], timeout=0)))
        wait_blocked(leader, i + 1)
    client(leader).rpush("fifo:q", "first", "second", "third")
    got = [w.result() for w in waiters]
    expect(got == [((b"fifo:q", e), None) for e in (b"first", b"second", b"third")], "FIFO: %r" % got)


def case_timeout(c, leader):
    r = client(leader)
    expect(r.blpop(["timeout:q"], timeout=0.01) is None, "BLPOP 0.01")
    expect(r.brpop(["timeout:q", "timeout:r"], timeout=0.01) is None, "BRPOP 0.01")
    expect(r.blmove("timeout:q", "timeout:d", 0.01, "LEFT", "RIGHT") is None, "BLMOVE 0.01")
    expect(r.bzpopmin(["timeout:z"], timeout=0.01) is None, "BZPOPMIN 0.01")
    expect(blocked(leader) == 0, "nobody left blocked")


def case_disconnect(c, leader):
    r = client(leader)
    conn = client(leader).connection_pool.get_connection("BLPOP")
    conn.send_command("BLPOP", "gone:q", 0)
    wait_blocked(leader, 1)
    conn.disconnect()
    wait_blocked(leader, 0)
    expect(r.lpush("gone:q", "x") == 1, "LPUSH")
    expect(r.llen("gone:q") == 1, "the element stayed: nobody waits for it")


def case_follower(c, leader):
    follower = next(n for n in c.nodes if n is not leader)
    w = Waiter(lambda: client(follower).blpop(["fol:q"], timeout=0))
    wait_blocked(follower, 1)
    expect(blocked(leader) == 0, "the client waits on its own node, not on the leader")
    client(leader).rpush("fol:q", "via-leader")
    value, error = w.result()
    expect(error is None and value == (b"fol:q", b"via-leader"), "BLPOP on a follower: %r %r" % (value, error))


def case_moved(c, leader):
    r = client(leader)
    r.execute_command("CLIENT", "NO-FORWARD", "ON")  # what a cluster client is
    w = Waiter(lambda: r.blpop(["moved:q"], timeout=0))
    wait_blocked(leader, 1)
    target = next(n for n in c.nodes if n is not leader)
    out = subprocess.run([c.binary, "cluster", "--addr", leader.client_addr, "transfer", str(target.id)],
                         capture_output=True, text=True, timeout=WAIT_TIMEOUT_S, check=False)
    expect(out.returncode == 0, "transfer: %s %s" % (out.stdout, out.stderr))
    value, error = w.result()
    expect(isinstance(error, redis.exceptions.ResponseError) and str(error).startswith("MOVED ")
           and str(error).endswith(target.moved_addr), "parked cluster client after a transfer: %r %r" % (value, error))
    wait_blocked(leader, 0)


def case_kill(c, leader):
    follower = next(n for n in c.nodes if n is not leader)
    on_leader = Waiter(lambda: client(leader).blpop(["kill:a"], timeout=0))
    on_follower = Waiter(lambda: client(follower).blpop(["kill:b"], timeout=0))
    wait_blocked(leader, 1)
    wait_blocked(follower, 1)
    leader.kill()
    value, error = on_leader.result()
    expect(isinstance(error, redis.exceptions.ConnectionError), "parked on the killed leader: %r %r" % (value, error))
    new_leader = c.wait_leader(WAIT_TIMEOUT_S, nodes=[n for n in c.nodes if n is not leader])
    if on_follower.done():
        raise harness.TestFailure("the follower's client was answered during the election: %r" % (on_follower.result(),))
    retry = Waiter(lambda: client(new_leader).blpop(["kill:a"], timeout=0))
    wait_blocked(new_leader, 1 if new_leader is not follower else 2)
    client(new_leader).rpush("kill:a", "retried")
    client(new_leader).rpush("kill:b", "survived")
    value, error = retry.result()
    expect(error is None and value == (b"kill:a", b"retried"), "retry on the new leader: %r %r" % (value, error))
    value, error = on_follower.result()
    expect(error is None and value == (b"kill:b", b"survived"), "waiter on a follower: %r %r" % (value, error))


CASES = [("wake", case_wake), ("fifo", case_fifo), ("timeout", case_timeout), ("disconnect", case_disconnect),
         ("follower", case_follower), ("moved", case_moved), ("kill", case_kill)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    work = harness.make_work_dir("hmdb-blocking-")
    c = cl.Cluster(os.path.abspath(args.binary), work, nodes=3, cluster_id="hmdb-blocking")
    name = "start"
    try:
        c.start()
        for name, fn in CASES:
            t0 = time.monotonic()
            leader = c.wait_leader(WAIT_TIMEOUT_S)
            fn(c, leader)
            print("ok %s (%.1f s)" % (name, time.monotonic() - t0))
    except (harness.TestFailure, harness.ServerExited, redis.exceptions.RedisError, OSError) as e:
        print("FAIL %s: %r\nwork dir kept: %s" % (name, e, work))
        for n in c.nodes:
            print(n.log_tail())
        c.kill_all()
        return 1
    c.kill_all()
    if not args.keep:
        harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
