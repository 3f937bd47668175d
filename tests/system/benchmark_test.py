#!/usr/bin/env python3
"""Every test of `redis-benchmark -t` against real hmdb processes, as a correctness test
(issue 17): no timing decides anything here.

For each of redis-benchmark's tests (TESTS below: every name its -t takes; 7.0 has no more),
run alone with -n N and no -r (so every request hits the same keys), the test asserts that
redis-benchmark exits 0 (since 7.0 it stops at the first error reply, "Error from server"),
printed a CSV row for the test, and left the data the test wrote: SET and MSET's value under
key:__rand_int__, INCR's counter at N, LPUSH/RPUSH/LPOP/RPOP's list at N, 2N, N, gone, SADD's and
HSET's one element, SPOP and ZPOPMIN emptying what SADD and ZADD filled, LRANGE_*'s list at
the N elements of the LPUSH it runs first; PING_INLINE/PING_MBULK raise the node's
total_commands_processed by at least 2N. Then all the tests in one run with random keys
(-r, -P pipelining): exit 0, every row, INCR's counters summing to exactly N, the list back at
N, the set and sorted set emptied by SPOP/ZPOPMIN, and the same once more in RESP3 (-3).

  single   one node (`hmdb serve`).
  cluster  a 3-node cluster: the per-test runs against the leader and against a follower
           (which forwards a plain client's commands to the leader: docs/cluster.md), then
           every node's digest equal once converged. `redis-benchmark --cluster` is not run:
           it refuses every cluster with fewer than two masters owning slots ("Invalid
           cluster: 1 node(s)", a real one-shard Redis Cluster too), and an hmdb cluster is
           one shard (docs/cluster.md, "Limits").

The assertions hold for a real Redis too: `benchmark_test.py --case single redis-server` passes.
Skipped (77) without redis-benchmark. Usage: benchmark_test.py [--case NAME] [-n N] BINARY
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import cluster as cl
import harness
import resp

# redis-benchmark's -t names (7.0: `strings redis-benchmark`; its --help lists none) and the
# CSV row each prints.
TESTS = {
    "ping_inline": "PING_INLINE", "ping_mbulk": "PING_MBULK", "set": "SET", "get": "GET", "incr": "INCR",
    "lpush": "LPUSH", "rpush": "RPUSH", "lpop": "LPOP", "rpop": "RPOP", "sadd": "SADD", "hset": "HSET",
    "spop": "SPOP", "zadd": "ZADD", "zpopmin": "ZPOPMIN", "lrange_100": "LRANGE_100 (first 100 elements)",
    "lrange_300": "LRANGE_300 (first 300 elements)", "lrange_500": "LRANGE_500 (first 500 elements)",
    "lrange_600": "LRANGE_600 (first 600 elements)", "mset": "MSET (10 keys)",
}
# The LPUSH every LRANGE test runs first, to fill the list it reads.
LRANGE_FILL_ROW = "LPUSH (needed to benchmark LRANGE)"
# Requests per test (-n), parallel clients (-c), pipeline and key range of the mixed runs.
REQUESTS = 500
CLIENTS = 8
PIPELINE = 4
KEY_RANGE = 50
# Bound of one redis-benchmark run (a few thousand requests: well under a second unloaded).
BENCH_TIMEOUT_S = 120.0
LEADER_TIMEOUT_S = 20.0
CONVERGE_TIMEOUT_S = 60.0
# The size of redis-benchmark's values (-d, default 3: fixed pseudo-random bytes, the same in
# every test of a run) and the keys its tests use without -r.
VALUE_BYTES = 3
KEY = "key:__rand_int__"
COUNTER = "counter:__rand_int__"
ELEMENT = b"element:__rand_int__"


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def bench(host, port, tests, n, extra=()):
    """Runs redis-benchmark -t tests; checks it exited 0 with no error and printed a row for
    each test; returns the rows' names."""
    cmd = ["redis-benchmark", "-h", host, "-p", str(port), "-n", str(n), "-c", str(CLIENTS), "--csv",
           "-t", ",".join(tests)] + list(extra)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=BENCH_TIMEOUT_S)
    out = p.stdout + p.stderr
    expect(p.returncode == 0, "%s exited %d:\n%s" % (" ".join(cmd), p.returncode, out[-2000:]))
    expect("Error" not in out and "ERR" not in out, "%s printed an error:\n%s" % (" ".join(cmd), out[-2000:]))
    rows = []
    for line in p.stdout.splitlines()[1:]:
        if line.startswith('"'):
            rows.append(line.split('","')[0].strip('"'))
    for t in tests:
        expect(TESTS[t] in rows, "%s: no row %r in:\n%s" % (" ".join(cmd), TESTS[t], p.stdout))
    return rows


def commands_processed(host, port):
    with resp.Client(host, port) as c:
        info = c.call("INFO", "stats")
    for line in info.decode().splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    raise harness.TestFailure("INFO stats has no total_commands_processed")


def each_test(host, port, c, n):
    """Every test alone, the data checked after each (c: a client of the same node, or of the
    leader when the benchmark runs against a follower that forwards)."""
    expect(c.call("FLUSHALL") == "OK", "FLUSHALL")
    before = commands_processed(host, port)
    bench(host, port, ["ping_inline", "ping_mbulk"], n)
    after = commands_processed(host, port)
    expect(after - before >= 2 * n, "PINGs counted %d of %d" % (after - before, 2 * n))
    bench(host, port, ["set"], n)
    value = c.call("GET", KEY)
    expect(isinstance(value, bytes) and len(value) == VALUE_BYTES and c.call("DBSIZE") == 1,
           "after SET: %r, dbsize %r" % (value, c.call("DBSIZE")))
    bench(host, port, ["get"], n)
    expect(c.call("DBSIZE") == 1, "GET changed the key count")
    bench(host, port, ["incr"], n)
    expect(c.call("GET", COUNTER) == str(n).encode(), "INCR x%d left %r" % (n, c.call("GET", COUNTER)))
    for test, want in (("lpush", n), ("rpush", 2 * n), ("lpop", n), ("rpop", 0)):
        bench(host, port, [test], n)
        expect(c.call("LLEN", "mylist") == want, "after %s: LLEN %r, want %d" % (test, c.call("LLEN", "mylist"), want))
    expect(c.call("EXISTS", "mylist") == 0, "an emptied list still exists")
    bench(host, port, ["sadd"], n)
    expect(c.call("SMEMBERS", "myset") == [ELEMENT], "after SADD: %r" % (c.call("SMEMBERS", "myset"),))
    bench(host, port, ["hset"], n)
    expect(c.call("HGETALL", "myhash") == [ELEMENT, value], "after HSET: %r" % (c.call("HGETALL", "myhash"),))
    bench(host, port, ["spop"], n)
    expect(c.call("SCARD", "myset") == 0, "SPOP x%d left %r" % (n, c.call("SCARD", "myset")))
    bench(host, port, ["zadd"], n)
    expect(c.call("ZRANGE", "myzset", "0", "-1", "WITHSCORES") == [ELEMENT, b"0"],
           "after ZADD: %r" % (c.call("ZRANGE", "myzset", "0", "-1", "WITHSCORES"),))
    bench(host, port, ["zpopmin"], n)
    expect(c.call("ZCARD", "myzset") == 0, "ZPOPMIN x%d left %r" % (n, c.call("ZCARD", "myzset")))
    lranges = ["lrange_100", "lrange_300", "lrange_500", "lrange_600"]
    rows = bench(host, port, lranges, n)
    expect(rows.count(LRANGE_FILL_ROW) == 1, "LRANGE's fill ran %d times" % rows.count(LRANGE_FILL_ROW))
    expect(c.call("LLEN", "mylist") == n, "after the LRANGE tests: LLEN %r, want %d" % (c.call("LLEN", "mylist"), n))
    expect(c.call("FLUSHALL") == "OK", "FLUSHALL")
    bench(host, port, ["mset"], n)
    expect(c.call("GET", KEY) == value and c.call("DBSIZE") == 1, "after MSET: %r" % (c.call("GET", KEY),))


def scan_all(c, pattern):
    keys, cursor = [], b"0"
    while True:
        cursor, page = c.call("SCAN", cursor, "MATCH", pattern, "COUNT", "100")
        keys += page
        if cursor == b"0":
            return keys


def mixed(host, port, c, n, extra=()):
    """All tests in one run, random keys, pipelined: the totals that do not depend on which
    keys were drawn."""
    expect(c.call("FLUSHALL") == "OK", "FLUSHALL")
    bench(host, port, list(TESTS), n, ["-r", str(KEY_RANGE), "-P", str(PIPELINE)] + list(extra))
    counters = scan_all(c, "counter:*")
    total = sum(int(c.call("GET", k)) for k in counters)
    expect(total == n, "INCR x%d on random counters: they sum to %d" % (n, total))
    expect(len(counters) <= KEY_RANGE, "%d counters from a key range of %d" % (len(counters), KEY_RANGE))
    expect(c.call("LLEN", "mylist") == n, "LLEN mylist %r, want %d (lpush, rpush, lpop, rpop, lrange's lpush)"
           % (c.call("LLEN", "mylist"), n))
    # SPOP and ZPOPMIN each ran n times on at most KEY_RANGE elements.
    expect(c.call("SCARD", "myset") == 0 and c.call("ZCARD", "myzset") == 0, "SPOP/ZPOPMIN left elements")
    expect(0 < c.call("HLEN", "myhash") <= KEY_RANGE, "HLEN myhash %r" % (c.call("HLEN", "myhash"),))
    keys = scan_all(c, "key:*")
    values = {c.call("GET", k) for k in keys}
    expect(0 < len(keys) <= KEY_RANGE and len(values) == 1 and len(values.pop()) == VALUE_BYTES,
           "SET/MSET's keys: %d, values %r" % (len(keys), values))


def need_redis_benchmark():
    if shutil.which("redis-benchmark") is None:
        print("SKIP: no redis-benchmark")
        sys.exit(77)


def case_single(binary, n):
    work = harness.make_work_dir("hmdb-benchmark-")
    os.makedirs(os.path.join(work, "data"))  # (redis-server wants it to exist)
    server = harness.Server(binary, os.path.join(work, "data"), work, name="benchmark")
    try:
        server.start()
        with server.client() as c:
            each_test(harness.HOST, server.port, c, n)
            mixed(harness.HOST, server.port, c, n)
            mixed(harness.HOST, server.port, c, n, ["-3"])
        code = server.terminate()
        expect(code == 0, "exit code %d after SIGTERM" % code)
    except Exception:
        print(server.log_tail())
        server.kill()
        print("work dir kept: %s" % work)
        raise
    harness.remove_work_dir(work)
    print("single: %d tests x %d requests, then mixed twice (RESP2, RESP3)" % (len(TESTS), n))


def case_cluster(binary, n):
    work = harness.make_work_dir("hmdb-benchmark-cluster-")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-benchmark-test")
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        follower = next(x for x in c.nodes if x is not leader)
        with leader.client(timeout=10.0) as lc:
            for node in (leader, follower):
                each_test(node.ip, node.client_port, lc, n)
                mixed(node.ip, node.client_port, lc, n)
        index = c.wait_converged(CONVERGE_TIMEOUT_S)
        digests = {x.id: x.digest() for x in c.nodes}
        expect(len(set(digests.values())) == 1, "digests differ: %r" % digests)
        c.check_alive()
        print("cluster: leader %s and follower %s, converged at %d" % (leader, follower, index))


CASES = {"single": case_single, "cluster": case_cluster}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("-n", type=int, default=REQUESTS, help="requests per test")
    ap.add_argument("binary")
    args = ap.parse_args()
    need_redis_benchmark()
    for name in args.case or list(CASES):
        t0 = time.monotonic()
        try:
            CASES[name](args.binary, args.n)
        except harness.TestFailure as e:
            harness.fail("%s: %s" % (name, e))
            return 1
        print("%s: passed in %.1fs" % (name, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
