#!/usr/bin/env python3
"""A --durability none node keeps its in-memory log bounded (docs/operations.md, "Durability
modes"; docs/decisions.md, "Durability none trims its log without a snapshot").

  0. What the trim rests on: a mode-none node never has peers. `--durability none` with
     `--peer-addr` and `--initial-cluster` (or `--join`) stops at startup with exit code 1 and
     "a cluster needs a log", so no follower can ever ask for the entries it dropped.
  1. A mode-none node takes ROUNDS rounds of pipelined SETs over a small keyspace: each
     round's log is several times the bound (kUnloggedLogRetainBytes, 4 MiB), values drawn
     from the seed. After each round (every reply read), INFO: last_index grew, the
     core's log (log_bytes, log_entries) is within the bound, first_index moved past the
     entries written before the round, and unlogged_log_trims grew. Without the trim the
     log holds every entry since the start (ROUNDS x ~9 MB).
  2. Every key reads back its last value; SNAPSHOT answers +OK; the node is stopped and
     restarted from the snapshot, and every key still reads back its value.

Only INFO counters and replies are checked, never time. RSS after each round is printed (the
entries freed are reused by the allocator), not checked: it depends on the allocator.

Usage: unlogged_log_test.py [--seed S] HMDB_BINARY
"""

import argparse
import random
import subprocess
import sys

import cluster as cl
import harness

# The server's bound (src/server/node.h, kUnloggedLogRetainBytes).
LOG_RETAIN_BYTES = 4 << 20
# Housekeeping entries (expiry sweeps) the node may propose between the last reply of a round
# and the INFO that follows it: a few hundred bytes each, far below this.
HOUSEKEEPING_SLACK_BYTES = 1 << 20
# Bytes an entry is charged for beyond its payload (raft_log.h, kEntryOverheadBytes): the
# entry count's bound follows from the bytes'.
ENTRY_OVERHEAD_BYTES = 32
ROUNDS = 4
KEYS = 500
SETS_PER_ROUND = 40000
PIPELINE = 500
VALUE_BYTES = 200  # ~240 bytes of log per SET: ~9.6 MB a round, more than twice the bound

check = harness.check


def info(server, section):
    with server.client() as c:
        return cl.parse_info(c.call("INFO", section))


def rss_kib(server):
    with open("/proc/%d/status" % server.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def read_back(server, values, what):
    with server.client() as c:
        keys = sorted(values)
        replies = c.pipeline([["GET", k] for k in keys])
    for k, got in zip(keys, replies):
        check(got == values[k], "%s: %s is %r, expected %r" % (what, k, got[:40] if got else got, values[k][:40]))


def refused_in_a_cluster(binary, work):
    port, peer = harness.free_port(), harness.free_port()
    me = "1=%s:%d@%s:%d" % (harness.HOST, port, harness.HOST, peer)
    for membership in (["--initial-cluster", me], ["--join"]):
        cmd = [binary, "serve", "--port", str(port), "--bind", harness.HOST, "--dir", work + "/refused",
               "--durability", "none", "--node-id", "1", "--peer-addr", "%s:%d" % (harness.HOST, peer)] + membership
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=harness.EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # (run() killed it)
            raise harness.TestFailure("%s started instead of refusing (still running after %.0f s)" %
                                      (" ".join(cmd), harness.EXIT_TIMEOUT_S))
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        check(p.returncode == 1 and "a cluster needs a log" in out,
              "%s: exit %d, expected 1 with 'a cluster needs a log':\n%s" % (" ".join(cmd), p.returncode, out))


def run(binary, seed):
    rng = random.Random(seed)
    work = harness.make_work_dir("hmdb-unlogged-")
    refused_in_a_cluster(binary, work)
    server = harness.Server(binary, work + "/data", work, durability="none", name="none")
    server.start()
    values = {}
    try:
        previous = info(server, "replication")
        trims = 0
        for r in range(ROUNDS):
            with server.client(timeout=60.0) as c:
                for start in range(0, SETS_PER_ROUND, PIPELINE):
                    batch = []
                    for _ in range(PIPELINE):
                        k = "key:%d" % rng.randrange(KEYS)
                        v = ("%d:" % r).encode() + rng.randbytes(VALUE_BYTES // 2).hex().encode()[:VALUE_BYTES]
                        values[k] = v
                        batch.append(["SET", k, v])
                    for reply in c.pipeline(batch):
                        check(reply == "OK", "round %d: SET answered %r" % (r, reply))
            now = info(server, "everything")
            last, first = int(now["last_index"]), int(now["first_index"])
            log_bytes, log_entries = int(now["log_bytes"]), int(now["log_entries"])
            print("round %d: last_index %d, first_index %d, log_entries %d, log_bytes %d, unlogged_log_trims %s, "
                  "RSS %d KiB" % (r, last, first, log_entries, log_bytes, now["unlogged_log_trims"], rss_kib(server)),
                  flush=True)
            check(last > int(previous["last_index"]), "round %d: last_index did not grow" % r)
            check(log_entries == last + 1 - first, "log_entries %d is not last_index + 1 - first_index" % log_entries)
            check(log_bytes <= LOG_RETAIN_BYTES + HOUSEKEEPING_SLACK_BYTES,
                  "round %d: the in-memory log holds %d bytes, over the bound %d (+%d)" %
                  (r, log_bytes, LOG_RETAIN_BYTES, HOUSEKEEPING_SLACK_BYTES))
            check(log_entries * ENTRY_OVERHEAD_BYTES <= log_bytes, "log_entries %d with only %d bytes" %
                  (log_entries, log_bytes))
            check(first > int(previous["last_index"]),
                  "round %d: first_index %d: the entries before the round (up to %s) are still held" %
                  (r, first, previous["last_index"]))
            check(int(now["unlogged_log_trims"]) > trims, "round %d: unlogged_log_trims did not grow" % r)
            trims = int(now["unlogged_log_trims"])
            previous = now
        read_back(server, values, "before the restart")
        with server.client(timeout=60.0) as c:
            reply = c.call("SNAPSHOT")
        check(isinstance(reply, str) and reply.startswith("OK snapshot at index"), "SNAPSHOT answered %r" % (reply,))
        server.terminate()
        server.start()
        with server.client() as c:
            check(c.call("DBSIZE") == len(values), "restarted: DBSIZE is not %d" % len(values))
        read_back(server, values, "restarted from the snapshot")
        server.terminate()
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.kill()
    harness.remove_work_dir(work)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int)
    p.add_argument("binary")
    args = p.parse_args()
    seed = harness.get_seed(args.seed)
    print("seed %d (replay: %s)" % (seed, harness.replay_command(sys.argv[0], ["--seed", str(seed), args.binary])),
          flush=True)
    try:
        run(args.binary, seed)
    except harness.TestFailure as e:
        harness.fail("%s (seed %d)" % (e, seed))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
