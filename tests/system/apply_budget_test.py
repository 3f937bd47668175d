#!/usr/bin/env python3
"""The loop turn's apply budget (docs/operations.md, "A turn's apply budget";
kTurnApplyBudgetUs) through real servers and redis-py (Debian's python3-redis). The nodes run
with the hidden `--test-turn-apply-budget-us 1`, so every turn stops applying a log entry
before its 16th command (kApplyBudgetCheckCommands) and resumes it in the next turn: the
pipelines below, batched by the server into entries of hundreds of commands, are applied 15
commands a turn. Nothing is timed: each check is on replies, INFO counters and digests.

  single   one node. WRITERS redis-py clients each send ROUNDS pipelines of BATCH x (SET,
           INCR, RPUSH) on keys of their own, then a GET of each key set (writes only first: a
           read waits for the writes before it, so the writes are batched into entries of
           hundreds of commands), one of them with a SUNIONSTORE of two sets of MEMBERS
           members in its middle, and after each pipeline a MULTI/EXEC of GROUP SETs of one
           generation; every reply is the one a whole apply gives (INCR and RPUSH count up by
           one, each GET reads its SET of the same pipeline). Meanwhile a reader's MGET of each writer's group always sees one
           generation (a transaction is never split by the budget), and each writer's counter,
           read after its list's length, is never below it and never goes back (a read sees a
           prefix of the log's commands, in order). INFO apply_yields grew. The state then has
           the digest of the same workload on a node whose budget is off (applied whole), and
           after a restart (the log replayed, whole) the same digest again.
  cluster  a 3-node cluster, every node with the 1-us budget (followers stop where their own
           turns end): the same workload through the leader, every reply right; once
           converged, every node's apply_yields grew and all digests are equal, and equal to a
           single node's that applied the workload whole.

--plant starts the budget nodes with the planted bug --test-plant-skip-yielded-command (a
resumed entry loses the command it stopped before): the test must fail.

Usage: apply_budget_test.py [--case single|cluster] [--plant] [--keep] HMDB_BINARY. Exits 77
(skipped) without a python3 that has the redis module.
"""

import argparse
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

redis = harness.import_redis(skip_as="apply_budget_test")

import cluster as cl  # noqa: E402

# The hidden flag's value: every turn's budget is spent once a turn has run 1 us, i.e. at the
# first ask (before the 16th command of an entry).
BUDGET_ARGS = ["--test-turn-apply-budget-us", "1"]
# The budget off, for the node that applies the workload whole (1e12 us: never spent).
WHOLE_ARGS = ["--test-turn-apply-budget-us", "1000000000000"]
PLANT_ARGS = ["--test-plant-skip-yielded-command"]
# The workload: writers, pipelines each, (SET, INCR, RPUSH, GET) groups per pipeline, SETs
# per MULTI/EXEC, members of each set the SUNIONSTORE reads (half shared).
WRITERS = 3
ROUNDS = 6
BATCH = 400
GROUP = 20
MEMBERS = 20000
# A reply not read within this long is a failure (a lost reply: the planted bug).
SOCKET_TIMEOUT_S = 30.0
LEADER_TIMEOUT_S = 20.0
CONVERGE_TIMEOUT_S = 120.0


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def stat(r, name):
    return int(r.info("stats")[name])


def fill_sets(r):
    p = r.pipeline(transaction=False)
    for start in range(0, MEMBERS, 2000):
        p.sadd("a", *["m%d" % i for i in range(start, start + 2000)])
        p.sadd("b", *["m%d" % (i + MEMBERS // 2) for i in range(start, start + 2000)])
    expect(p.execute() == [2000] * (MEMBERS // 1000), "SADD did not add 2,000 members each")


class Writer:
    """One redis-py client sending the workload on keys w<id>:*, checking every reply."""

    def __init__(self, host, port, wid):
        self.r = redis.Redis(host=host, port=port, socket_timeout=SOCKET_TIMEOUT_S)
        self.w = "w%d" % wid
        self.wid = wid
        self.error = None
        self.thread = threading.Thread(target=self.run)

    def run(self):
        try:
            for rnd in range(ROUNDS):
                self.round(rnd)
        except Exception as e:  # reported by the main thread
            self.error = "%s: %r" % (self.w, e)

    def round(self, rnd):
        w = self.w
        p = self.r.pipeline(transaction=False)
        union_at = BATCH // 2 if (rnd == ROUNDS // 2 and self.wid == 0) else None
        # Writes only, then the reads: a read waits for the writes before it, so the writes
        # of a pipeline are batched into entries of hundreds of commands.
        for j in range(BATCH):
            n = rnd * BATCH + j
            if j == union_at:
                p.sunionstore(w + ":u", "a", "b")
            p.set("%s:k%d" % (w, n), "v%d" % n)
            p.incr(w + ":ctr")
            p.rpush(w + ":list", n)
        for j in range(BATCH):
            p.get("%s:k%d" % (w, rnd * BATCH + j))
        out = p.execute()
        expected = []
        for j in range(BATCH):
            n = rnd * BATCH + j
            if j == union_at:
                expected.append(MEMBERS * 3 // 2)
            expected += [True, n + 1, n + 1]
        expected += [b"v%d" % (rnd * BATCH + j) for j in range(BATCH)]
        if out != expected:
            first = next((i for i in range(min(len(out), len(expected))) if out[i] != expected[i]),
                         min(len(out), len(expected)))
            raise harness.TestFailure("%s round %d: reply %d is %r, not %r (%d replies for %d commands)"
                                      % (w, rnd, first, out[first:first + 3], expected[first:first + 3],
                                         len(out), len(expected)))
        t = self.r.pipeline(transaction=True)
        for g in range(GROUP):
            t.set("%s:x%d" % (w, g), "g%d" % rnd)
        t.incr(w + ":gen")
        expect(t.execute() == [True] * GROUP + [rnd + 1], "%s round %d: EXEC's replies" % (w, rnd))


class Reader:
    """Reads each writer's keys until stopped: a group is one generation; a counter read after
    its list's length is at least that length and never decreases."""

    def __init__(self, host, port):
        self.r = redis.Redis(host=host, port=port, socket_timeout=SOCKET_TIMEOUT_S)
        self.stop = threading.Event()
        self.error = None
        self.reads = 0
        self.thread = threading.Thread(target=self.run)

    def run(self):
        last = [0] * WRITERS
        try:
            while not self.stop.is_set():
                for wid in range(WRITERS):
                    w = "w%d" % wid
                    group = self.r.mget(["%s:x%d" % (w, g) for g in range(GROUP)])
                    expect(len(set(group)) == 1, "%s: MGET of a group saw generations %s: a transaction split"
                           % (w, sorted(set(group), key=str)))
                    length = self.r.llen(w + ":list")
                    ctr = int(self.r.get(w + ":ctr") or 0)
                    expect(ctr >= length, "%s: counter %d read after the list's length %d: an INCR not applied "
                           "before the RPUSH after it" % (w, ctr, length))
                    expect(ctr >= last[wid], "%s: counter %d after %d" % (w, ctr, last[wid]))
                    last[wid] = ctr
                    self.reads += 1
        except Exception as e:
            self.error = repr(e)


def run_workload(host, port):
    """Fills the sets, runs the writers and the reader; returns the reads made meanwhile."""
    r = redis.Redis(host=host, port=port, socket_timeout=SOCKET_TIMEOUT_S)
    fill_sets(r)
    writers = [Writer(host, port, i) for i in range(WRITERS)]
    reader = Reader(host, port)
    reader.thread.start()
    for w in writers:
        w.thread.start()
    for w in writers:
        w.thread.join()
    reader.stop.set()
    reader.thread.join()
    errors = [w.error for w in writers if w.error] + ([reader.error] if reader.error else [])
    expect(not errors, "; ".join(errors))
    return reader.reads


def check_state(r):
    """The values a whole apply of the workload leaves."""
    total = ROUNDS * BATCH
    for wid in range(WRITERS):
        w = "w%d" % wid
        expect(int(r.get(w + ":ctr")) == total, "%s:ctr is %r, not %d" % (w, r.get(w + ":ctr"), total))
        expect(r.lrange(w + ":list", 0, -1) == [b"%d" % n for n in range(total)], "%s:list is not 0..%d" % (w, total - 1))
        values = r.mget(["%s:k%d" % (w, n) for n in range(total)])
        expect(values == [b"v%d" % n for n in range(total)], "%s: a SET of the pipelines is missing" % w)
        expect(r.mget(["%s:x%d" % (w, g) for g in range(GROUP)]) == [b"g%d" % (ROUNDS - 1)] * GROUP,
               "%s: the last group is not generation %d" % (w, ROUNDS - 1))
        expect(int(r.get(w + ":gen")) == ROUNDS, "%s:gen is not %d" % (w, ROUNDS))
    expect(r.smembers("w0:u") == {b"m%d" % i for i in range(MEMBERS * 3 // 2)}, "SMEMBERS w0:u is not the union")


def digest_value(r):
    """CLUSTER DIGEST's digest and schema version (not the index: nodes' logs differ)."""
    index, value, version = r.execute_command("CLUSTER", "DIGEST").decode().split()
    return value + "@" + version


def whole_digest(binary, work):
    """The digest of the workload applied whole by a node whose budget is off."""
    server = harness.Server(binary, os.path.join(work, "whole"), work, extra_args=WHOLE_ARGS, name="whole")
    server.start()
    try:
        run_workload(harness.HOST, server.port)
        r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=SOCKET_TIMEOUT_S)
        check_state(r)
        expect(stat(r, "apply_yields") == 0, "the node without a budget stopped an apply")
        return digest_value(r)
    finally:
        server.kill()


def case_single(binary, work, plant):
    server = harness.Server(binary, os.path.join(work, "data"), work, extra_args=BUDGET_ARGS + plant, name="budget")
    server.start()
    try:
        r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=SOCKET_TIMEOUT_S)
        yields = stat(r, "apply_yields")
        reads = run_workload(harness.HOST, server.port)
        check_state(r)
        yielded = stat(r, "apply_yields") - yields
        expect(yielded > 0, "INFO apply_yields did not grow: no apply stopped for the budget")
        expect(stat(r, "applying_index") == 0, "an entry is still being applied")
        before = digest_value(r)
        print("single: %d commands in pipelines, %d applies stopped for the budget, %d reads meanwhile"
              % (WRITERS * ROUNDS * (BATCH * 4 + GROUP + 1) + 1, yielded, reads))
        whole = whole_digest(binary, work)
        expect(before == whole, "digest %s, but %s when applied whole" % (before, whole))
        expect(server.terminate() == 0, "server exit code")
        server.start()
        r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=SOCKET_TIMEOUT_S)
        after = digest_value(r)
        expect(after == before, "digest %s after a restart, %s before" % (after, before))
        check_state(r)
        print("single: the digest of a whole apply, and the same after a restart")
        expect(server.terminate() == 0, "server exit code")
    finally:
        server.kill()


def case_cluster(binary, work, plant):
    c = cl.Cluster(binary, os.path.join(work, "cluster"), nodes=3, cluster_id="hmdb-budget-test",
                   server_args=BUDGET_ARGS + plant)
    c.start()
    try:
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        yields = {n: int(cl.parse_info(n.call("INFO", "stats"))["apply_yields"]) for n in c.nodes}
        run_workload(leader.ip, leader.client_port)
        r = redis.Redis(host=leader.ip, port=leader.client_port, socket_timeout=SOCKET_TIMEOUT_S)
        check_state(r)
        c.wait_converged(CONVERGE_TIMEOUT_S)
        grown = {n: int(cl.parse_info(n.call("INFO", "stats"))["apply_yields"]) - yields[n] for n in c.nodes}
        roles = {n: n.info().get("role") for n in c.nodes}
        expect(all(g > 0 for g in grown.values()), "INFO apply_yields did not grow on every node: %s"
               % ", ".join("%s (%s) +%d" % (n, roles[n], g) for n, g in grown.items()))
        digests = {n: n.digest() for n in c.nodes}
        expect(len(set(digests.values())) == 1, "digests differ: %s" % digests)
        whole = whole_digest(binary, work)
        ours = digest_value(r)
        expect(ours == whole, "the cluster's digest %s, but %s when applied whole" % (ours, whole))
        print("cluster: applies stopped for the budget %s; the same digest on all, a whole apply's"
              % ", ".join("%s (%s) %d" % (n, roles[n], g) for n, g in grown.items()))
        c.check_alive()
    finally:
        c.kill_all()


CASES = {"single": case_single, "cluster": case_cluster}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--plant", action="store_true", help="the budget nodes run the planted bug: the test must fail")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    plant = PLANT_ARGS if args.plant else []
    for name in args.case or sorted(CASES):
        work = harness.make_work_dir("hmdb-apply-budget-%s-" % name)
        t0 = time.monotonic()
        try:
            CASES[name](args.binary, work, plant)
        except harness.TestFailure as e:
            print("FAIL %s: %s\nwork dir kept: %s" % (name, e, work))
            return 1
        print("ok %s (%.1f s)" % (name, time.monotonic() - t0))
        if not args.keep:
            harness.remove_work_dir(work)
    print("apply_budget_test: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
