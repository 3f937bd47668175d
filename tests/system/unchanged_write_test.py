#!/usr/bin/env python3
"""Writes that change nothing (docs/architecture.md, "Writes that change nothing"): a pop of a
missing key is answered as a read, with no log entry and no fdatasync, and a pop right behind a
pipelined push still pops what the push pushed.

  1. ROUNDS pipelines of pops of missing keys (LPOP, RPOP, SPOP, ZPOPMIN, ZPOPMAX, with and
     without a count, and one of a string: -WRONGTYPE), each pipeline answered before the next
     is sent: every reply is Redis' for that case, and INFO's last_index, total_writes,
     total_batches and disk_fsyncs have not moved, while total_writes_unchanged grew by every
     pop. (No key expires and no big value is freed here: no housekeeping entry either.)
  2. The pending entry: ROUNDS pipelines, each sent in one write, of a push and the pops behind
     it (RPUSH then LPOP, RPOP, LPOP; SADD then SPOP twice; ZADD then ZPOPMIN twice): the push is
     in the turn's batch, or logged and not applied, when its pops are read, so they must not be
     answered from the applied state: the first pops get what was pushed, the last ones find
     nothing. total_writes grew by at least the pushes and the pops that popped.

--plant starts the server with the planted bug --test-plant-unchanged-ignores-pending (a write
whose app says it changes nothing is answered from the applied state even while writes are
pending): part 2 must then fail (its pops find nothing).

Only replies and INFO counters are checked, never time.

Usage: unchanged_write_test.py [--plant] HMDB_BINARY
"""

import argparse
import sys

import cluster as cl
import harness
from resp import RespError

check = harness.check

ROUNDS = 50
PIPELINE = 40  # pops per pipeline in part 1
WRONGTYPE = RespError("WRONGTYPE Operation against a key holding the wrong kind of value")
PLANT_ARGS = ["--test-plant-unchanged-ignores-pending"]

# Part 1: (command, the reply for a missing key) in RESP2, as Redis 7 answers.
MISSING_POPS = [
    (["LPOP", "nokey"], None),
    (["RPOP", "nokey"], None),
    (["LPOP", "nokey", "3"], None),  # a null array
    (["SPOP", "nokey"], None),
    (["SPOP", "nokey", "2"], []),
    (["ZPOPMIN", "nokey"], []),
    (["ZPOPMAX", "nokey", "2"], []),
    (["LPOP", "str"], WRONGTYPE),
]


def info(server):
    with server.client() as c:
        return cl.parse_info(c.call("INFO", "everything"))


def counters(server):
    i = info(server)
    return {k: int(i[k]) for k in ("last_index", "total_writes", "total_batches", "disk_fsyncs",
                                   "total_writes_unchanged")}


def missing_pops(server):
    with server.client() as c:
        check(c.call("SET", "str", "x") == "OK", "SET str")  # durable and applied once answered
    before = counters(server)
    pops = 0
    with server.client() as c:
        for r in range(ROUNDS):
            batch = [MISSING_POPS[(r + i) % len(MISSING_POPS)] for i in range(PIPELINE)]
            replies = c.pipeline([cmd for cmd, _ in batch])
            for (cmd, expected), got in zip(batch, replies):
                check(got == expected, "round %d: %s answered %r, expected %r" % (r, " ".join(cmd), got, expected))
            pops += len(batch)
    after = counters(server)
    print("part 1: %d pops of missing keys; before %s, after %s" % (pops, before, after), flush=True)
    for k in ("last_index", "total_writes", "total_batches", "disk_fsyncs"):
        check(after[k] == before[k], "%s moved from %d to %d: a pop of a missing key was logged or synced" %
              (k, before[k], after[k]))
    check(after["total_writes_unchanged"] - before["total_writes_unchanged"] == pops,
          "total_writes_unchanged grew by %d, not by the %d pops" %
          (after["total_writes_unchanged"] - before["total_writes_unchanged"], pops))


def pops_behind_a_push(server):
    before = counters(server)
    with server.client() as c:
        for r in range(ROUNDS):
            lk, sk, zk = "l%d" % r, "s%d" % r, "z%d" % r
            cmds = [["RPUSH", lk, "a", "b"], ["LPOP", lk], ["RPOP", lk], ["LPOP", lk],
                    ["SADD", sk, "m"], ["SPOP", sk], ["SPOP", sk],
                    ["ZADD", zk, "1", "m"], ["ZPOPMIN", zk], ["ZPOPMIN", zk]]
            expected = [2, b"a", b"b", None, 1, b"m", None, 1, [b"m", b"1"], []]
            replies = c.pipeline(cmds)  # one write: read by the server in one turn
            for cmd, want, got in zip(cmds, expected, replies):
                check(got == want, "round %d: %s right behind the push answered %r, expected %r" %
                      (r, " ".join(cmd), got, want))
    after = counters(server)
    print("part 2: before %s, after %s" % (before, after), flush=True)
    grew = after["total_writes"] - before["total_writes"]
    check(grew >= 7 * ROUNDS, "total_writes grew by %d: fewer than the pushes and the pops that popped" % grew)


def run(binary, plant):
    work = harness.make_work_dir("hmdb-unchanged-")
    server = harness.Server(binary, work + "/data", work, extra_args=PLANT_ARGS if plant else [], name="unchanged")
    server.start()
    try:
        missing_pops(server)
        pops_behind_a_push(server)
        server.terminate()
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.kill()
    harness.remove_work_dir(work)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--plant", action="store_true", help="the server runs the planted bug: the test must fail")
    p.add_argument("binary")
    args = p.parse_args()
    try:
        run(args.binary, args.plant)
    except harness.TestFailure as e:
        harness.fail(str(e))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
