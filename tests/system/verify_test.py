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
            The tiny app lists no records: verify says where the states differ is not known.

  named     where a kv cluster differs: node 3 runs kv with a planted bug in its snapshot load
            (hmdb_tiny_server, HMDB_TINY_APP=kv-bad-load: the key "victim" gets another value).
            Identical until node 3 restarts from its own snapshot; then `verify` names node 3
            and, under "where node 3 differs", the key victim and no other (held differently),
            from the record sketches every node took at the mark (CLUSTER DIGEST AT I RECORDS).
  migration the same through a schema migration: a ledger (v1) cluster whose node 3 is
            upgraded in place to a v2 binary whose migration of a v1 snapshot corrupts one
            account (hmdb-ledger-v2, HMDB_LEDGER_V2=bad-migration): `verify` names node 3 and
            the record account:alice, compared at active version 1 (the v2 node lists its
            records as version 1 does, records_as).

  restart   a follower restarted after kill -9 replays its log and takes the digest at a
            mark in it again (on its event loop, during the replay): CLUSTER DIGEST AT
            answers what it answered before, and what the leader's digest child logged. After a
            snapshot and another restart the mark is not replayed: `none`. A new verify
            passes, and once a fourth node joins as a learner, verify compares it too.

Every wait is a bounded poll of a real condition. Usage: verify_test.py --tiny BIN
[--ledger BIN --ledger-v2 BIN] [--case NAME] [--keep] HMDB_BINARY
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


def case_load(c, binary, tiny, ledger=None, ledger_v2=None):
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


def case_diverged(c, binary, tiny, ledger=None, ledger_v2=None):
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
    check("where the states differ is not known" in out, "the tiny app lists no records:\n%s" % out)
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


def named_records(out, node_id):
    """The keys verify's output names under "where node <node_id> differs", with what it says
    of each ("held differently", "only on node N")."""
    lines = out.splitlines()
    start = [i for i, line in enumerate(lines) if line.startswith("where node %d differs" % node_id)]
    check(len(start) == 1, "verify says where node %d differs:\n%s" % (node_id, out))
    named = {}
    for line in lines[start[0] + 1:]:
        if not line.startswith("  "):
            break
        m = re.match(r"^      (\S+): (held differently|only on node \d+)", line)
        if m:
            named[m.group(1)] = m.group(2)
    return named


def restart_from_own_snapshot(node, binary=None, env=None):
    """SNAPSHOT on node, kill -9, start it again (on `binary` with `env`, if given): it loads
    that snapshot."""
    snap = node.call("SNAPSHOT")
    check(isinstance(snap, str), "SNAPSHOT on %s answered %r" % (node, snap))
    node.kill()
    if binary:
        node.binary = binary
    if env:
        node.env = env
    node.start()


def verify_names(c, tool, node_id, expected):
    """verify exits 1 naming node node_id as the one that differs, and exactly the records in
    `expected` ({key: what}) as where."""
    code, out = cli(tool, "--addr", c.node(1).client_addr, "verify")
    print(out)
    check(code == 1, "verify of a diverged cluster exited %d:\n%s" % (code, out))
    lines = [line for line in out.splitlines() if line.startswith("  node ")]
    check(len(lines) == 1 and lines[0].startswith("  node %d (voter" % node_id) and "DIFFERS" in lines[0],
          "verify names node %d, and only it:\n%s" % (node_id, out))
    n = len(expected)
    check(("%d record%s differ%s:" % (n, "" if n == 1 else "s", "s" if n == 1 else "")) in out,
          "verify counts %d differing record(s):\n%s" % (n, out))
    named = named_records(out, node_id)
    check(named == expected, "verify names %r, expected %r:\n%s" % (named, expected, out))


def case_named(c, binary, tiny, ledger, ledger_v2):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    with leader.client() as client:
        for i in range(300):
            check(client.call("SET", "k%d" % i, "v%d" % i) == "OK", "SET k%d" % i)
        check(client.call("SET", "victim", "original") == "OK", "SET victim")
        check(client.call("RPUSH", "list", "a", "b") == 2, "RPUSH list")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    code, out = cli(binary, "--addr", c.node(1).client_addr, "verify")
    check(code == 0 and verified_index(out), "verify before the planted bug ran (exit %d):\n%s" % (code, out))
    # What the tool read: a sketch of kv's records at the mark, from every node.
    index = verified_index(out)[0]
    for n in c.nodes:
        reply = n.call("CLUSTER", "DIGEST", "AT", str(index), "RECORDS")
        check(isinstance(reply, bytes) and reply.startswith(b"records ") and len(reply) > 1000,
              "%s: CLUSTER DIGEST AT %d RECORDS answered %r" % (n, index, reply[:80]))
    restart_from_own_snapshot(c.node(3))
    with c.node(3).client() as client:
        check(client.call("READONLY") == "OK", "READONLY")
        check(client.call("GET", "victim") == b"corrupted", "node 3's planted bug ran on its snapshot load")
    with c.wait_leader(LEADER_TIMEOUT_S).client() as client:
        check(client.call("SET", "after", "1") == "OK", "SET after")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    verify_names(c, binary, 3, {"victim": "held differently"})


def case_migration(c, binary, tiny, ledger, ledger_v2):
    check(ledger and ledger_v2, "the migration case needs --ledger and --ledger-v2")
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    with leader.client() as client:
        check(client.call("ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT") == "OK", "ACCOUNT.CREATE bank")
        for name in ("alice", "bob", "carol"):
            check(client.call("ACCOUNT.CREATE", name, "USD") == "OK", "ACCOUNT.CREATE %s" % name)
            check(isinstance(client.call("TRANSFER", "bank", name, "10000", "USD"), int), "TRANSFER to %s" % name)
        check(isinstance(client.call("TRANSFER", "alice", "bob", "250", "USD", "ID", "t1"), int), "TRANSFER t1")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    code, out = cli(ledger, "--addr", c.node(1).client_addr, "verify")
    check(code == 0 and verified_index(out), "verify of the v1 cluster (exit %d):\n%s" % (code, out))
    # Node 3 upgraded in place: the v2 binary migrates its own v1 snapshot, wrongly.
    restart_from_own_snapshot(c.node(3), ledger_v2, {"HMDB_LEDGER_V2": "bad-migration"})
    with c.wait_leader(LEADER_TIMEOUT_S).client() as client:
        check(isinstance(client.call("TRANSFER", "bob", "carol", "5", "USD"), int), "TRANSFER after the upgrade")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    verify_names(c, ledger_v2, 3, {"account:alice": "held differently"})


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


def case_restart(c, binary, tiny, ledger=None, ledger_v2=None):
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


CASES = {"load": case_load, "diverged": case_diverged, "restart": case_restart, "named": case_named,
         "migration": case_migration}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--tiny", required=True, help="hmdb_tiny_server (tests/server)")
    ap.add_argument("binary", help="hmdb (the kv app)")
    ap.add_argument("--ledger", help="hmdb-ledger (the migration case)")
    ap.add_argument("--ledger-v2", help="hmdb-ledger-v2 (the migration case)")
    args = ap.parse_args()
    binary, tiny = os.path.abspath(args.binary), os.path.abspath(args.tiny)
    ledger = os.path.abspath(args.ledger) if args.ledger else None
    ledger_v2 = os.path.abspath(args.ledger_v2) if args.ledger_v2 else None
    for name in args.case or list(CASES):
        work = harness.make_work_dir("hmdb-verify-%s-" % name)
        t0 = time.monotonic()
        cluster_binary = {"diverged": tiny, "migration": ledger}.get(name, binary)
        c = cl.Cluster(cluster_binary, work, nodes=3, cluster_id="hmdb-verify")
        if name == "diverged":
            c.node(3).env = {"HMDB_TINY_APP": "skewed"}
        if name == "named":  # kv until it loads a snapshot
            c.node(3).binary = tiny
            c.node(3).env = {"HMDB_TINY_APP": "kv-bad-load"}
        try:
            c.start()
            CASES[name](c, binary, tiny, ledger, ledger_v2)
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
