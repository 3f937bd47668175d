#!/usr/bin/env python3
"""`hmdb cluster verify` with real processes (docs/cluster.md, "Verifying"): the leader logs a
digest mark, every member hashes its state when it applies it, and the tool compares the
digests taken at that one index.

  load      a 3-node kv cluster (HMDB_BINARY) while two clients pipeline writes without
            pause: `verify` exits 0 ("identical at index I, schema version 1") three times in
            a row, each at its own mark, writes being acknowledged before and after each one;
            CLUSTER DIGEST AT I answers the same digest on every node afterwards, and the
            leader has applied past I. Then node 3 is stopped (SIGSTOP): `verify` exits 1
            naming node 3 and no other; resumed, it verifies again.
  diverged  a 3-node cluster of the tiny test app whose node 3 runs it with an apply bug
            (HMDB_TINY_APP=skewed: its SET stores another value): the log is the same
            everywhere, the states are not. `verify` exits 1 and names node 3 as the one that
            differs from nodes 1 and 2. CLUSTER DIGEST MARK on a follower answers -MOVED,
            CLUSTER DIGEST AT an index not applied yet `pending`, malformed ones a usage error.

  restart   a follower restarted after kill -9 replays its log and takes the digest at a
            mark in it again (on its event loop, during the replay): CLUSTER DIGEST AT
            answers what it answered before, and what the leader's digest child logged. After a
            snapshot and another restart the mark is not replayed: `none`. A new verify
            passes, and once a fourth node joins as a learner, verify compares it too.

Every wait is a bounded poll of a real condition. Usage: verify_test.py --tiny BIN
[--case NAME] [--keep] HMDB_BINARY
"""

import argparse
import os
import re
import sys
import threading
import time

import cluster as cl
import harness
import resp

LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
# Writes each client pipelines per round trip: enough that the applied indexes of the nodes
# differ all the time while `verify` runs.
PIPELINE = 16
WRITERS = 2
# How long the writers may take to be acknowledged some writes (under load on 2 cores).
WRITES_TIMEOUT_S = 30.0


check = harness.check
cli = cl.cluster_cli


class Writers:
    """WRITERS clients pipelining SETs to the leader until stopped; counts acknowledged ones."""

    def __init__(self, leader):
        self.leader = leader
        self.acked = 0
        self.failed = None
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(WRITERS)]
        for t in self.threads:
            t.start()

    def run(self, who):
        n = 0
        try:
            with self.leader.client(timeout=10.0) as c:
                while not self.stop.is_set():
                    replies = c.pipeline([["SET", "w%d:%d" % (who, n + i), str(n + i)] for i in range(PIPELINE)])
                    bad = [r for r in replies if r != "OK"]
                    if bad:
                        raise harness.TestFailure("a write was refused: %r" % (bad[0],))
                    n += PIPELINE
                    with self.lock:
                        self.acked += PIPELINE
        except Exception as e:  # reported by finish()
            self.failed = "writer %d: %r" % (who, e)

    def count(self):
        with self.lock:
            return self.acked

    def wait_for_more(self, than, what):
        deadline = time.monotonic() + WRITES_TIMEOUT_S
        while self.count() <= than:
            check(self.failed is None, self.failed or "")
            check(time.monotonic() < deadline, "no write acknowledged within %.0f s %s" % (WRITES_TIMEOUT_S, what))
            time.sleep(cl.POLL_INTERVAL_S)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20.0)
        check(self.failed is None, self.failed or "")


def verified_index(out):
    m = re.search(r"identical at index (\d+), schema version (\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def case_load(c, binary, tiny):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    writers = Writers(leader)
    try:
        writers.wait_for_more(0, "before the first verify")
        indexes = []
        for attempt in range(3):
            code, out = cli(binary, "--addr", c.node(1).client_addr, "verify")
            check(code == 0, "verify %d under load exited %d:\n%s" % (attempt + 1, code, out))
            print(out)
            at = verified_index(out)
            check(at is not None and at[1] == 1, "verify's verdict:\n%s" % out)
            indexes.append(at[0])
            writers.wait_for_more(writers.count(), "after verify %d" % (attempt + 1))
        check(indexes == sorted(set(indexes)), "each verify logs its own mark: %r" % indexes)
        # What the tool compared, asked again of each node: one digest at the last mark.
        digests = set()
        for n in c.nodes:
            reply = n.call("CLUSTER", "DIGEST", "AT", str(indexes[-1]))
            check(isinstance(reply, bytes), "%s: CLUSTER DIGEST AT answered %r" % (n, reply))
            words = reply.decode().split()
            check(len(words) == 5 and words[0] == str(indexes[-1]), "%s: %r" % (n, words))
            digests.add(words[1])
        check(len(digests) == 1, "the nodes' digests at index %d: %r" % (indexes[-1], digests))
        # Writes acknowledged after the last verify are applied on the leader past its mark.
        applied = int(leader.info()["applied_index"])
        check(applied > indexes[-1], "the leader applied %d, the last mark is at %d" % (applied, indexes[-1]))

        # A node that cannot answer: named, and nothing else is.
        stopped = next(n for n in c.nodes if n is not leader)
        stopped.pause()
        try:
            code, out = cli(binary, "--addr", leader.client_addr, "verify", "--wait-ms", "3000")
        finally:
            stopped.resume()
        print(out)
        check(code == 1, "verify with %s stopped exited %d:\n%s" % (stopped, code, out))
        named = re.findall(r"^  node (\d+) ", out, re.M)
        check(named == [str(stopped.id)], "verify names only node %d:\n%s" % (stopped.id, out))
        code, out = cli(binary, "--addr", leader.client_addr, "verify")
        check(code == 0 and verified_index(out), "verify once %s resumed (exit %d):\n%s" % (stopped, code, out))
    finally:
        writers.finish()


def case_diverged(c, binary, tiny):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    with leader.client() as client:
        for i in range(20):
            check(client.call("SET", "k%d" % i, str(i)) == "OK", "SET k%d" % i)
    c.wait_converged(CONVERGE_TIMEOUT_S)
    code, out = cli(tiny, "--addr", c.node(1).client_addr, "verify")
    print(out)
    check(code == 1, "verify of a diverged cluster exited %d:\n%s" % (code, out))
    lines = [line for line in out.splitlines() if line.startswith("  node ")]
    check(len(lines) == 1 and lines[0].startswith("  node 3 (voter") and "DIFFERS" in lines[0]
          and "where nodes 1, 2 hashed" in lines[0], "verify names node 3, and only it:\n%s" % out)
    # The commands' other answers: a follower refuses to log a mark (-MOVED to the leader),
    # an index not applied yet is pending, a malformed one is refused.
    follower = next(n for n in c.nodes if n is not leader)
    moved = follower.call("CLUSTER", "DIGEST", "MARK")
    check(isinstance(moved, resp.RespError) and moved.message.startswith("MOVED")
          and moved.message.endswith(leader.moved_addr), "MARK on %s: %r" % (follower, moved))
    pending = follower.call("CLUSTER", "DIGEST", "AT", "999999")
    check(isinstance(pending, bytes) and pending.decode().startswith("pending "), "AT 999999: %r" % (pending,))
    for bad in (["CLUSTER", "DIGEST", "AT", "x"], ["CLUSTER", "DIGEST", "AT"], ["CLUSTER", "DIGEST", "MARK", "1"]):
        reply = leader.call(*bad)
        check(isinstance(reply, resp.RespError) and "usage" in reply.message, "%s: %r" % (" ".join(bad), reply))
    # The skew is real: node 3 holds other values (READONLY: its own state).
    with c.node(3).client() as client:
        check(client.call("READONLY") == "OK", "READONLY")
        check(client.call("GET", "k1") == b"1'", "node 3's skewed value")


def digest_at(node, index):
    """CLUSTER DIGEST AT index on node, once it is not pending (a bounded poll)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while True:
        reply = node.call("CLUSTER", "DIGEST", "AT", str(index))
        check(isinstance(reply, bytes), "%s: CLUSTER DIGEST AT answered %r" % (node, reply))
        words = reply.decode().split()
        if words[0] != "pending":
            return words
        check(time.monotonic() < deadline, "%s: still pending at %d" % (node, index))
        time.sleep(cl.POLL_INTERVAL_S)


def case_restart(c, binary, tiny):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    with leader.client() as client:
        for i in range(50):
            check(client.call("SET", "k%d" % i, "v%d" % i) == "OK", "SET k%d" % i)
    code, out = cli(binary, "--addr", leader.client_addr, "verify")
    check(code == 0 and verified_index(out), "verify (exit %d):\n%s" % (code, out))
    index = verified_index(out)[0]
    at_leader = digest_at(leader, index)
    check("digest: mark at index %d: %s at schema version 1" % (index, at_leader[1]) in leader.log(),
          "the leader's digest child logged the digest:\n%s" % leader.log_tail())
    follower = next(n for n in c.nodes if n is not leader)
    with leader.client() as client:  # entries after the mark, so that its index is committed behind them
        check(client.call("SET", "after", "1") == "OK", "SET after")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    follower.kill()
    follower.start()
    check(digest_at(follower, index) == at_leader, "%s after its replay: %r, the leader: %r"
          % (follower, digest_at(follower, index), at_leader))
    snap = follower.call("SNAPSHOT")
    check(isinstance(snap, str), "SNAPSHOT answered %r" % (snap,))
    follower.kill()
    follower.start()
    words = digest_at(follower, index)
    check(words[0] == "none", "%s restarted from a snapshot past the mark: %r" % (follower, words))
    code, out = cli(binary, "--addr", leader.client_addr, "verify")
    check(code == 0 and verified_index(out), "verify after the restarts (exit %d):\n%s" % (code, out))

    # A learner is a member verify waits for and compares too.
    ip = cl.node_ip(4)
    learner = cl.Node(c, 4, cl.free_port_on(ip), cl.free_port_on(ip))
    join_cmd = [binary, "serve", "--node-id", "4", "--bind", learner.ip, "--port", str(learner.client_port),
                "--peer-addr", learner.peer_addr, "--join", "--cluster-id", c.cluster_id, "--dir",
                learner.data_dir, "--durability", c.durability]
    learner.command = lambda: join_cmd
    learner.start()
    c.nodes.append(learner)
    code, out = cli(binary, "--addr", leader.client_addr, "add-learner", "4", learner.client_addr, learner.peer_addr)
    check(code == 0, "add-learner (exit %d):\n%s" % (code, out))
    code, out = cli(binary, "--addr", leader.client_addr, "verify")
    print(out)
    check(code == 0 and "(4 members)" in out and re.search(r"^4 +learner ", out, re.M),
          "verify with a learner (exit %d):\n%s" % (code, out))


CASES = {"load": case_load, "diverged": case_diverged, "restart": case_restart}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--tiny", required=True, help="hmdb_tiny_server (tests/server)")
    ap.add_argument("binary", help="hmdb (the kv app)")
    args = ap.parse_args()
    binary, tiny = os.path.abspath(args.binary), os.path.abspath(args.tiny)
    for name in args.case or list(CASES):
        work = harness.make_work_dir("hmdb-verify-%s-" % name)
        t0 = time.monotonic()
        c = cl.Cluster(tiny if name == "diverged" else binary, work, nodes=3, cluster_id="hmdb-verify")
        if name == "diverged":
            c.node(3).env = {"HMDB_TINY_APP": "skewed"}
        try:
            c.start()
            CASES[name](c, binary, tiny)
            c.check_alive()
        except (harness.TestFailure, harness.ServerExited, resp.ConnectionLost, resp.ProtocolError, OSError) as e:
            print("FAIL %s: %s\nwork dir kept: %s" % (name, e, work))
            for n in c.nodes:
                print(n.log_tail())
            c.kill_all()
            return 1
        c.kill_all()
        print("ok %s (%.1f s)" % (name, time.monotonic() - t0))
        if not args.keep:
            harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
