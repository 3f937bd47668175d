#!/usr/bin/env python3
"""A big write applied in slices across loop turns (issue 16 item 5; docs/architecture.md,
"Big writes"), through a real node and redis-py (Debian's python3-redis). The node runs with a
tiny write slice (--test-write-slice-elements 10, a hidden test flag), so a SUNIONSTORE of two
sets of 50,000 members (100,000 walked) takes ~10,000 slices, one a loop turn. Every check is
on what the protocol and INFO say, never on how long anything took: where a check depends on
whether the write was still half applied when it ran, the test asks INFO before and after and
holds each answer to the rule for what it saw.

  * While a redis-py client's SUNIONSTORE runs (a thread), another redis-py client keeps
    writing (INCR, every reply the one after the last: none lost, none repeated), and the
    test reads: EXISTS of the destination is 0 while INFO applying_index still names the
    write's entry (a read sees the state before the write); CLUSTER DIGEST answers -TRYAGAIN,
    or a digest of an applied index at or past that entry (never the half-applied state).
  * The SUNIONSTORE answers 75,000; SMEMBERS is the union; INFO sliced_writes grew by one,
    write_slices by at least 100,000 / 10; applying_index is 0 again.
  * ZUNIONSTORE (WEIGHTS, AGGREGATE MAX), ZINTERSTORE and ZDIFFSTORE of two sorted sets of
    50,000 members (half shared) are sliced too (sliced_writes grows by 3): each stores what
    the test computes (ZRANGE WITHSCORES: members and scores in order).
  * Restarted, the node replays the log with the writes applied whole: the same digest.
  * A SNAPSHOT sent while a second SUNIONSTORE is half applied is of an index at or past that
    write's entry: no snapshot of a half-applied state.

Usage: sliced_write_test.py HMDB_BINARY
"""

import argparse
import os
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, HERE)
import harness  # noqa: E402

redis = harness.import_redis()

MEMBERS = 50000
SLICE = 10
WAIT_S = 120.0  # for a condition polled through INFO
POLL_INTERVAL_S = 0.002  # between two probes of such a condition (a probe decides; this spaces them)


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def wait_for(what, cond):
    """harness.wait_for within WAIT_S."""
    return harness.wait_for(what, WAIT_S, cond, POLL_INTERVAL_S)


def stat(r, name):
    return int(r.info("stats")[name])


def za_score(i):
    return i % 100


def zb_score(i):  # of m<i>, i in [MEMBERS / 2, 3 MEMBERS / 2)
    return i - MEMBERS // 2


def fill(r):
    p = r.pipeline(transaction=False)
    for start in range(0, MEMBERS, 5000):
        p.sadd("a", *["m%d" % i for i in range(start, start + 5000)])
        p.sadd("b", *["m%d" % (i + MEMBERS // 2) for i in range(start, start + 5000)])
        p.zadd("za", {"m%d" % i: za_score(i) for i in range(start, start + 5000)})
        p.zadd("zb", {"m%d" % (i + MEMBERS // 2): zb_score(i + MEMBERS // 2) for i in range(start, start + 5000)})
    p.execute()


def check_zstores(r):
    """The three sorted-set STOREs, sliced: each stores the result computed here."""
    a = {i: float(za_score(i)) for i in range(MEMBERS)}
    b = {i: float(zb_score(i)) for i in range(MEMBERS // 2, MEMBERS * 3 // 2)}
    union = {i: max(a.get(i, float("-inf")), 2 * b.get(i, float("-inf"))) for i in set(a) | set(b)}
    cases = [
        (("ZUNIONSTORE", "zu", 2, "za", "zb", "WEIGHTS", 1, 2, "AGGREGATE", "MAX"), union),
        (("ZINTERSTORE", "zi", 2, "za", "zb"), {i: a[i] + b[i] for i in set(a) & set(b)}),
        (("ZDIFFSTORE", "zd", 2, "za", "zb"), {i: a[i] for i in set(a) - set(b)}),
    ]
    sliced = stat(r, "sliced_writes")
    for words, expected in cases:
        reply = r.execute_command(*words)
        expect(reply == len(expected), "%s answered %r, not %d" % (words[0], reply, len(expected)))
        want = sorted(((b"m%d" % i, score) for i, score in expected.items()), key=lambda e: (e[1], e[0]))
        expect(r.zrange(words[1], 0, -1, withscores=True) == want, "%s stored other entries or scores" % words[0])
    expect(stat(r, "sliced_writes") == sliced + len(cases), "INFO sliced_writes did not grow by %d" % len(cases))
    print("ZUNIONSTORE, ZINTERSTORE, ZDIFFSTORE of 2 x %d members: sliced, as computed" % MEMBERS)


class Writer:
    """A redis-py client that INCRs a counter until stopped, keeping every reply."""

    def __init__(self, port):
        self.r = redis.Redis(host=harness.HOST, port=port, socket_timeout=WAIT_S)
        self.replies = []
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self.run)

    def run(self):
        try:
            while not self.stop.is_set():
                self.replies.append(self.r.incr("counter"))
        except Exception as e:  # reported by the main thread
            self.error = e


class Store:
    """A redis-py client's SUNIONSTORE in a thread."""

    def __init__(self, port, dst):
        self.r = redis.Redis(host=harness.HOST, port=port, socket_timeout=WAIT_S)
        self.reply = None
        self.error = None
        self.thread = threading.Thread(target=self.run, args=(dst,))

    def run(self, dst):
        try:
            self.reply = self.r.sunionstore(dst, "a", "b")
        except Exception as e:
            self.error = e


def digest(r):
    """CLUSTER DIGEST: (applied index, digest), or None for -TRYAGAIN."""
    try:
        index, value, _ = r.execute_command("CLUSTER", "DIGEST").decode().split()
        return int(index), value
    except redis.ResponseError as e:
        expect(str(e).startswith("TRYAGAIN"), "CLUSTER DIGEST answered %s" % e)
        return None


def run(binary):
    if redis is None:
        print("sliced_write_test: SKIPPED (no python3-redis)")
        sys.exit(77)
    work = harness.make_work_dir("hmdb-sliced-write-")
    server = harness.Server(binary, os.path.join(work, "data"), work,
                            extra_args=["--test-write-slice-elements", str(SLICE)], name="sliced-write")
    server.start()
    try:
        r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=WAIT_S)
        fill(r)
        sliced, slices = stat(r, "sliced_writes"), stat(r, "write_slices")
        writer = Writer(server.port)
        writer.thread.start()
        store = Store(server.port, "dst")
        store.thread.start()
        wait_for("the SUNIONSTORE half applied or answered",
                 lambda: stat(r, "applying_index") != 0 or not store.thread.is_alive())
        index = stat(r, "applying_index")
        reads_during = 0
        while index != 0:
            exists = r.exists("dst")
            d = digest(r)
            still = stat(r, "applying_index")
            if still == index:
                expect(exists == 0, "EXISTS dst was 1 while the SUNIONSTORE was half applied")
                reads_during += 1
            expect(d is None or d[0] >= index,
                   "CLUSTER DIGEST gave a digest at applied index %d with entry %d half applied" % (d[0], index)
                   if d else "")
            if still != index:
                break
        store.thread.join(WAIT_S)
        writer.stop.set()
        writer.thread.join(WAIT_S)
        expect(store.error is None, "SUNIONSTORE: %s" % store.error)
        expect(writer.error is None, "the writer: %s" % writer.error)
        expect(store.reply == MEMBERS * 3 // 2, "SUNIONSTORE answered %r" % store.reply)
        expect(writer.replies == list(range(1, len(writer.replies) + 1)), "an INCR reply lost or repeated")
        expect(r.smembers("dst") == {b"m%d" % i for i in range(MEMBERS * 3 // 2)}, "SMEMBERS dst is not the union")
        expect(stat(r, "sliced_writes") == sliced + 1, "INFO sliced_writes did not grow by one")
        expect(stat(r, "write_slices") - slices >= 2 * MEMBERS // SLICE, "INFO write_slices grew by less than a slice "
               "per %d members walked" % SLICE)
        expect(stat(r, "applying_index") == 0, "INFO applying_index is not 0 after the write")
        print("SUNIONSTORE of 2 x %d members: %d slices, %d INCRs meanwhile, %d reads seen half applied"
              % (MEMBERS, stat(r, "write_slices") - slices, len(writer.replies), reads_during))
        check_zstores(r)
        before = digest(r)
        expect(before is not None, "CLUSTER DIGEST answered TRYAGAIN with nothing half applied")

        # Recovery replays the log, the SUNIONSTORE whole: the same state.
        expect(server.terminate() == 0, "server exit code")
        server.start()
        r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=WAIT_S)
        after = digest(r)  # (its applied index is past the restart's no-op entry)
        expect(after is not None and after[1] == before[1],
               "the digest after a restart (%r) differs from the one before (%r)" % (after, before))

        # No snapshot of a half-applied state.
        store = Store(server.port, "dst2")
        store.thread.start()
        wait_for("the second SUNIONSTORE half applied or answered",
                 lambda: stat(r, "applying_index") != 0 or not store.thread.is_alive())
        index = stat(r, "applying_index")
        snap = r.execute_command("SNAPSHOT")
        snap = snap.decode() if isinstance(snap, bytes) else str(snap)
        at = int(snap.split("index ")[1].split()[0])
        expect(at >= index, "SNAPSHOT at index %d while entry %d was half applied" % (at, index))
        store.thread.join(WAIT_S)
        expect(store.reply == MEMBERS * 3 // 2, "the second SUNIONSTORE answered %r" % store.reply)
        print("SNAPSHOT sent with entry %d half applied: taken at index %d" % (index, at))
        expect(server.terminate() == 0, "server exit code")
    finally:
        server.kill()
    harness.remove_work_dir(work)
    print("sliced_write_test: OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("binary")
    args = ap.parse_args()
    run(args.binary)


if __name__ == "__main__":
    main()
