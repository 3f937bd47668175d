#!/usr/bin/env python3
"""Chaos test: a real 3-node hmdb cluster under concurrent clients while a seeded schedule
kills, pauses, restarts and partitions nodes; then the recorded history must be
linearizable, every node must hold the same state, and every acknowledged write must be
there.

Clients. Several threads, each with its own connections, run SET k v (unique values),
INCR k and GET k on a few keys. They follow -MOVED to the named leader, try another node on
-CLUSTERDOWN, a refused connection or a timeout, and record every operation that reached a
server with its invoke and return time (time.monotonic_ns, one clock for all threads) and
its outcome:
  ok        a reply (GET's value, INCR's new value, SET's +OK)
  failed    `-ERR write lost in a leadership change`: it did not take effect
  unknown   no reply (timeout, connection closed after sending) or an unexpected error
            reply: it may or may not have taken effect, at any time after its invocation
A redirect (-MOVED, -CLUSTERDOWN) was not executed and is not recorded; the retry is a new
operation with its own invoke time. Every socket operation is bounded (CLIENT_OP_TIMEOUT_S).
To keep each key's history small enough for an exact check, keys belong to epochs of
--epoch-seconds: an op uses a key of the current epoch, sometimes (OLD_KEY_SHARE) one of the
previous epoch, so every key lives through two epochs and their faults.

Faults, drawn from the seed (printed; HMDB_CHAOS_SEED / --seed replays the schedule, not
the thread interleaving): kill -9 of the leader (the time to the first acknowledged write
after it is the failover time) or of a follower, SIGSTOP/SIGCONT of the leader or a
follower, a symmetric partition isolating the leader (minority) or a follower, asymmetric
cuts (the leader cannot send, or cannot hear), a cut between the two followers, one random
directed link, a graceful restart (SIGTERM must exit 0), and a crash of every node at once.
Partitions are nftables rules (tests/system/cluster.py). Each fault is held for a drawn
time, undone, and followed by a bounded wait for an agreed leader that accepts a write.

At the end: everything is healed and restarted, and within bounded waits
  - all nodes report the same commit and applied index (= the leader's last index);
  - a final linearizable GET of every key on the leader is added to the history, and
    hmdb-lincheck must find the whole history linearizable (this is what proves that no
    acknowledged SET/INCR was lost: a lost one makes the final read impossible);
  - every node, with READONLY, holds exactly the leader's value for every key;
  - CLUSTER DIGEST is identical on all nodes;
  - the checker has teeth on this very history: a copy with one planted stale read (a GET
    answered with a value overwritten by a write that returned before the GET began) must
    be rejected.
No node may exit by itself at any time (a crash or an assertion fails the test).

Without nftables (or not root) the test fails, unless HMDB_CHAOS_ALLOW_NO_NFT=1, in which
case partition faults are skipped and the output says so.

--tls: the same with every peer connection and forwarding link over mutually authenticated
TLS (--tls-replication yes, each node with its own certificate of a CA made for the run) and
the clients on the nodes' TLS ports: kills, pauses and partitions cut TLS connections mid-
record and mid-handshake.

Usage: chaos_test.py [--seconds S | --long] [--seed S] [--clients N] [--lincheck PATH]
                     [--negative-control follower-reads] [--keep] [--server-arg=...] [--tls] HMDB_BINARY
       HMDB_CHAOS_SECONDS, HMDB_CHAOS_SEED, HMDB_CHAOS_ALLOW_NO_NFT=1
"""

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

import cluster
import harness
import resp

DEFAULT_SECONDS = 60
LONG_SECONDS = 1800
DEFAULT_CLIENTS = 5
# Nodes snapshot every this many bytes of log (the server's minimum), so that a node that
# was down or cut off for a few seconds often catches up by snapshot rather than by log, and
# kills land during snapshots.
DEFAULT_SNAPSHOT_LOG_BYTES = 1 << 20
# Keys per epoch, and how long an epoch lasts (bounds the length of one key's history).
DEFAULT_KEYS_PER_EPOCH = 6
DEFAULT_EPOCH_SECONDS = 10.0
# Share of ops on a key of the previous epoch (so keys live through two epochs).
OLD_KEY_SHARE = 0.25
# Bound on one request (send and reply). A live node answers in milliseconds; a paused,
# partitioned or dead one makes the op unknown after this.
CLIENT_OP_TIMEOUT_S = 1.0
# Redirects followed for one op before backing off.
MAX_REDIRECTS = 5
# Pause after -CLUSTERDOWN or when no node accepts a connection (an election is under
# way); a poll interval, not a synchronisation.
NO_LEADER_BACKOFF_S = 0.02
# How long a node's consensus may take to agree on a leader after a fault was undone
# (TCP retransmission on a healed link can take a few seconds by itself).
LEADER_TIMEOUT_S = 30.0
# How long the probe write after a fault may take to be acknowledged.
WRITE_TIMEOUT_S = 30.0
# How long the cluster may take to converge (same applied index everywhere) at the end.
CONVERGE_TIMEOUT_S = 90.0
# How long the client threads may take to stop (each op is bounded by CLIENT_OP_TIMEOUT_S).
CLIENT_JOIN_TIMEOUT_S = 30.0
# How long hmdb-lincheck may take.
LINCHECK_TIMEOUT_S = 900.0
# Fault hold times (s), drawn uniformly, and the quiet time between faults.
HOLD_S = {"kill": (0.3, 3.0), "pause": (0.2, 2.5), "partition": (0.5, 4.0)}
QUIET_S = (0.2, 1.5)
# Weights of the fault kinds.
FAULTS = [
    ("kill_leader", 3), ("kill_follower", 2), ("pause_leader", 2), ("pause_follower", 1),
    ("isolate_leader", 3), ("isolate_follower", 1), ("leader_cannot_send", 2),
    ("leader_cannot_hear", 2), ("cut_followers", 1), ("cut_one_link", 1),
    ("restart_node", 1), ("crash_all", 1), ("flapping_links", 2), ("no_quorum", 1),
    ("transfer_leader", 1),
]
PARTITION_FAULTS = {"isolate_leader", "isolate_follower", "leader_cannot_send", "leader_cannot_hear",
                    "cut_followers", "cut_one_link", "flapping_links", "no_quorum"}
# flapping_links: a new random set of cut directed links every FLAP_INTERVAL_S (drawn), for
# the partition hold time; each link is cut with probability FLAP_CUT_PROBABILITY.
FLAP_INTERVAL_S = (0.05, 0.5)
FLAP_CUT_PROBABILITY = 0.3
# SET values: client c's n-th SET writes (c+1)*VALUE_CLIENT_STRIDE + n*VALUE_SEQ_STRIDE, far
# apart so that INCRs on a SET value do not reach another SET's value.
VALUE_CLIENT_STRIDE = 10 ** 12
VALUE_SEQ_STRIDE = 10 ** 4
# Attempts of one final GET whose outcome is unknown (a lost reply: safe to send again).
FINAL_READ_ATTEMPTS = 3
# The client id of the fault thread's probe writes and of the final reads.
ADMIN_CLIENT = 0
LOST_WRITE_ERROR = "ERR write lost in a leadership change"
# The planted stale read goes into a key with at least this many ops, if there is one;
# at most PLANT_MAX_KEYS keys are tried (each try reads the history file once).
PLANT_MIN_OPS = 200
PLANT_MAX_KEYS = 5
# A client keeps at most this many recorded ops in memory before appending them to its
# spool file (a 30-minute run records millions).
SPOOL_OPS = 10000


class KeySpace:
    def __init__(self, keys_per_epoch, epoch_seconds, started):
        self.keys_per_epoch = keys_per_epoch
        self.epoch_seconds = epoch_seconds
        self.started = started
        self.used = set()
        self.lock = threading.Lock()

    def pick(self, rng):
        epoch = int((time.monotonic() - self.started) / self.epoch_seconds)
        if epoch > 0 and rng.random() < OLD_KEY_SHARE:
            epoch -= 1
        key = "e%d:k%d" % (epoch, rng.randrange(self.keys_per_epoch))
        with self.lock:
            self.used.add(key)
        return key


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}  # (kind, outcome) -> n
        self.redirects = 0
        self.clusterdown = 0
        self.connect_failures = 0
        self.unexpected = {}  # error message -> n

    def add(self, what, n=1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n

    def unexpected_error(self, message):
        with self.lock:
            self.unexpected[message] = self.unexpected.get(message, 0) + 1


class ClusterClient:
    """One client's connections (one per node, lazily) and its recorded operations."""

    def __init__(self, cid, the_cluster, stats, spool_path, follower_reads=False):
        self.cid = cid
        self.spool_path = spool_path
        self.spool = open(spool_path, "w")
        self.recorded = 0
        self.cluster = the_cluster
        self.stats = stats
        self.follower_reads = follower_reads
        self.conns = {}
        self.target = None  # the node believed to lead
        self.history = []
        self.rng = random.Random(cid)

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()

    def _conn(self, node):
        c = self.conns.get(node)
        if c is None:
            c = self.cluster.data_client(node, CLIENT_OP_TIMEOUT_S)
            if self.follower_reads:
                reply = c.call("READONLY")
                if reply != "OK":
                    c.close()
                    raise harness.TestFailure("READONLY answered %r" % (reply,))
            self.conns[node] = c
        return c

    def _drop(self, node):
        c = self.conns.pop(node, None)
        if c is not None:
            c.close()

    def _record(self, kind, key, arg, result, invoke, ret, outcome):
        self.history.append((self.cid, key, kind, arg, result, invoke, ret, outcome))
        self.recorded += 1
        self.stats.add((kind, outcome))
        if len(self.history) >= SPOOL_OPS:
            self.flush_history()

    def flush_history(self):
        """Appends the ops recorded so far to the spool file (one JSON line each)."""
        for op in self.history:
            self.spool.write(op_json(*op) + "\n")
        self.history.clear()
        self.spool.flush()

    def execute(self, kind, key, arg=None, stop=None, node=None):
        """Runs one logical operation until it is recorded (ok, failed or unknown) or stop
        is set. Returns (outcome, result). node: send a read there (follower reads)."""
        redirects = 0
        while stop is None or not stop.is_set():
            if node is None:
                target = self.target or self.rng.choice(self.cluster.nodes)
            else:
                target = node
            try:
                conn = self._conn(target)
            except (resp.ConnectionLost, resp.ProtocolError):
                self.stats.add("connect_failure")
                self._drop(target)
                self.target = None
                if node is not None:
                    return "unreachable", None
                time.sleep(NO_LEADER_BACKOFF_S)
                continue
            cmd = {"set": ("SET", key, str(arg)), "incr": ("INCR", key), "get": ("GET", key)}[kind]
            invoke = time.monotonic_ns()
            try:
                conn.send([cmd])
                reply = conn.read_reply()
            except (resp.ConnectionLost, resp.ProtocolError):
                ret = time.monotonic_ns()
                self._drop(target)
                self.target = None
                self._record(kind, key, arg, None, invoke, ret, "unknown")
                return "unknown", None
            ret = time.monotonic_ns()
            if isinstance(reply, resp.RespError):
                msg = reply.message
                if msg.startswith("MOVED "):
                    parts = msg.split()
                    self.target = self.cluster.node_by_client_addr(parts[2]) if len(parts) == 3 else None
                    with self.stats.lock:
                        self.stats.redirects += 1
                    redirects += 1
                    if node is not None:
                        return "redirected", None
                    if redirects >= MAX_REDIRECTS or self.target is None:
                        self.target = None
                        redirects = 0
                        time.sleep(NO_LEADER_BACKOFF_S)
                    continue
                if msg.startswith(("CLUSTERDOWN", "TRYAGAIN")):  # not executed: retry
                    with self.stats.lock:
                        self.stats.clusterdown += 1
                    if node is not None:
                        return "redirected", None
                    self.target = None
                    time.sleep(NO_LEADER_BACKOFF_S)
                    continue
                if msg.startswith(LOST_WRITE_ERROR) and kind != "get":
                    self._record(kind, key, arg, None, invoke, ret, "failed")
                    return "failed", None
                # Anything else: we cannot know what happened; say so at the end.
                self.stats.unexpected_error("%s -> %s" % (kind.upper(), msg[:80]))
                self._record(kind, key, arg, None, invoke, ret, "unknown")
                return "unknown", None
            if kind == "set":
                if reply != "OK":
                    raise harness.TestFailure("SET %s %s answered %r" % (key, arg, reply))
                result = None
            elif kind == "incr":
                if not isinstance(reply, int):
                    raise harness.TestFailure("INCR %s answered %r" % (key, reply))
                result = reply
            else:
                if reply is None:
                    result = None
                else:
                    try:
                        result = int(reply)
                    except (TypeError, ValueError):
                        raise harness.TestFailure("GET %s answered %r" % (key, reply)) from None
            self._record(kind, key, arg, result, invoke, ret, "ok")
            return "ok", result
        return "stopped", None


class Worker(threading.Thread):
    def __init__(self, cid, the_cluster, keyspace, stats, stop, seed, follower_reads, spool_path):
        super().__init__(name="client-%d" % cid, daemon=True)
        self.client = ClusterClient(cid, the_cluster, stats, spool_path, follower_reads)
        self.keyspace = keyspace
        self.stop = stop
        self.rng = random.Random("%d:%d" % (seed, cid))
        self.client.rng = random.Random("%d:%d:nodes" % (seed, cid))
        self.follower_reads = follower_reads
        self.error = None
        self.sets = 0

    def run(self):
        try:
            while not self.stop.is_set():
                key = self.keyspace.pick(self.rng)
                r = self.rng.random()
                if r < 0.4:
                    value = (self.client.cid + 1) * VALUE_CLIENT_STRIDE + self.sets * VALUE_SEQ_STRIDE
                    self.sets += 1
                    self.client.execute("set", key, value, self.stop)
                elif r < 0.7:
                    self.client.execute("incr", key, None, self.stop)
                elif self.follower_reads:
                    # Negative control: a stale read from any node, recorded as if linearizable.
                    self.client.execute("get", key, None, self.stop, node=self.rng.choice(self.client.cluster.nodes))
                else:
                    self.client.execute("get", key, None, self.stop)
        except Exception as e:  # a broken promise in a reply, or a harness bug: fail the test
            self.error = e
        finally:
            self.client.close()


class Chaos:
    def __init__(self, args, the_cluster, network, log):
        self.args = args
        self.cluster = the_cluster
        self.network = network
        self.log = log
        self.rng = random.Random(args.seed)
        self.admin = ClusterClient(ADMIN_CLIENT, the_cluster, Stats(),
                                   os.path.join(the_cluster.work_dir, "history-client-%d.jsonl" % ADMIN_CLIENT))
        self.probe_seq = 0
        self.failover_s = []
        self.recovery_s = {}  # fault kind -> [time from undo to an acknowledged write]
        self.fault_counts = {}
        kinds = [(k, w) for k, w in FAULTS if network.available or k not in PARTITION_FAULTS]
        if args.only_faults:
            kinds = [(k, w) for k, w in kinds if k in args.only_faults]
        self.kinds = kinds

    def probe_write(self, timeout=WRITE_TIMEOUT_S):
        """SET on the probe key until acknowledged; returns the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            self.cluster.check_alive()
            self.probe_seq += 1
            outcome, _ = self.admin.execute("set", "probe", self.probe_seq)
            if outcome == "ok":
                return time.monotonic() - start
        raise harness.TestFailure("no write was acknowledged within %.0fs; INFO: %s"
                                  % (timeout, self.cluster.describe_infos(self.cluster.infos())))

    def hold(self, kind_class):
        lo, hi = HOLD_S[kind_class]
        time.sleep(self.rng.uniform(lo, hi))  # the fault's duration, not a synchronisation

    def run_fault(self, kind, elapsed):
        c = self.cluster
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        followers = [n for n in c.nodes if n is not leader]
        follower = self.rng.choice(followers)
        detail = ""
        if kind == "kill_leader":
            leader.kill()
            failover = self.probe_write()
            self.failover_s.append(failover)
            detail = "%s, failover %.2fs" % (leader, failover)
            self.hold("kill")
            leader.start()
        elif kind == "kill_follower":
            follower.kill()
            detail = str(follower)
            self.hold("kill")
            follower.start()
        elif kind in ("pause_leader", "pause_follower"):
            victim = leader if kind == "pause_leader" else follower
            victim.pause()
            detail = str(victim)
            try:
                self.hold("pause")
            finally:
                victim.resume()
        elif kind in PARTITION_FAULTS:
            if kind == "isolate_leader":
                self.network.isolate(leader.id)
            elif kind == "isolate_follower":
                self.network.isolate(follower.id)
            elif kind == "leader_cannot_send":
                self.network.isolate(leader.id, "out")
            elif kind == "leader_cannot_hear":
                self.network.isolate(leader.id, "in")
            elif kind == "flapping_links":
                pass  # below
            elif kind == "no_quorum":
                # The leader isolated and one follower killed: no majority anywhere.
                self.network.isolate(leader.id)
                follower.kill()
            elif kind == "cut_followers":
                a, b = followers
                self.network.set_cut({(a.id, b.id), (b.id, a.id)})
            else:
                a, b = self.rng.sample(c.nodes, 2)
                self.network.cut_link(a.id, b.id)
            detail = "leader %s, cut %s" % (leader, self.network.describe())
            try:
                if kind == "flapping_links":
                    lo, hi = HOLD_S["partition"]
                    until = time.monotonic() + self.rng.uniform(lo, hi)
                    changes = 0
                    while time.monotonic() < until:
                        self.network.set_cut({(a.id, b.id) for a in c.nodes for b in c.nodes
                                              if a is not b and self.rng.random() < FLAP_CUT_PROBABILITY})
                        changes += 1
                        time.sleep(self.rng.uniform(*FLAP_INTERVAL_S))  # the fault's rhythm
                    detail = "leader %s, %d cut sets" % (leader, changes)
                else:
                    self.hold("partition")
            finally:
                self.network.heal()
            if kind == "no_quorum":
                detail += ", %s killed" % follower
                follower.start()
        elif kind == "transfer_leader":
            # CLUSTER TRANSFER under load: +OK once the follower leads, or an error on
            # timeout (both fine: only safety and liveness afterwards are checked).
            try:
                reply = leader.call("CLUSTER", "TRANSFER", str(follower.id), timeout=LEADER_TIMEOUT_S)
            except (resp.ConnectionLost, resp.ProtocolError) as e:
                reply = "no reply: %s" % e
            detail = "%s -> %s: %r" % (leader, follower, reply)
        elif kind == "restart_node":
            victim = self.rng.choice(c.nodes)
            code = victim.terminate()
            if code != 0:
                raise harness.TestFailure("%s: SIGTERM exit code %d, expected 0\n%s" % (victim, code, victim.log_tail()))
            detail = str(victim)
            victim.start()
        elif kind == "crash_all":
            for n in c.nodes:
                n.kill()
            for n in c.nodes:
                n.spawn()
            for n in c.nodes:
                n.wait_ready()
        else:
            raise AssertionError(kind)
        undone = time.monotonic()
        c.wait_leader(LEADER_TIMEOUT_S)
        self.probe_write()
        recovery = time.monotonic() - undone
        self.recovery_s.setdefault(kind, []).append(recovery)
        self.fault_counts[kind] = self.fault_counts.get(kind, 0) + 1
        self.log("[%6.1fs] %-18s %s; write acknowledged %.2fs after undo" % (elapsed, kind, detail, recovery))

    def run(self, seconds, started):
        if not self.kinds:
            self.log("no faults (only waiting %.0fs)" % seconds)
            while time.monotonic() - started < seconds:
                self.cluster.check_alive()
                time.sleep(0.5)  # waiting out the run's duration, not a synchronisation
            return
        names = [k for k, _ in self.kinds]
        weights = [w for _, w in self.kinds]
        while time.monotonic() - started < seconds:
            kind = self.rng.choices(names, weights)[0]
            self.run_fault(kind, time.monotonic() - started)
            time.sleep(self.rng.uniform(*QUIET_S))  # load between faults, not a synchronisation


def op_json(cid, key, kind, arg, result, invoke, ret, outcome):
    """One recorded op as a line of hmdb-lincheck's JSON form (sim/history_io.h)."""
    op = {"client": cid, "key": key, "kind": kind, "invoke": invoke, "outcome": outcome}
    if kind == "set":
        op["arg"] = arg
    if outcome == "ok":
        op["ret"] = ret
        if kind != "set":
            op["result"] = result
    return json.dumps(op, separators=(",", ":"))


def write_history(path, clients):
    """Concatenates every client's spool into path; returns the number of ops."""
    n = 0
    with open(path, "w") as out:
        for cl in clients:
            cl.flush_history()
            cl.spool.close()
            with open(cl.spool_path) as f:
                shutil.copyfileobj(f, out)
            os.unlink(cl.spool_path)
            n += cl.recorded
    return n


# What the nodes' logs say happened (coverage of the run, not pass/fail): name -> regex.
COVERAGE_PATTERNS = [
    ("elections won", re.compile(r"raft: \w+ -> leader in term")),
    ("snapshots taken", re.compile(r"snapshot: index \d+ done")),
    ("snapshots installed from the leader", re.compile(r"installed the leader's snapshot")),
    ("starts", re.compile(r"^\$ ")),
]


def coverage(work):
    counts = {name: 0 for name, _ in COVERAGE_PATTERNS}
    for name in sorted(os.listdir(work)):
        if not (name.startswith("node") and name.endswith(".log")):
            continue
        with open(os.path.join(work, name), "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                for what, pattern in COVERAGE_PATTERNS:
                    if pattern.search(line):
                        counts[what] += 1
    return ", ".join("%s %d" % (k, counts[k]) for k, _ in COVERAGE_PATTERNS)


def run_lincheck(lincheck, path):
    start = time.monotonic()
    try:
        p = subprocess.run([lincheck, path], capture_output=True, text=True, timeout=LINCHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("hmdb-lincheck took more than %.0fs on %s" % (LINCHECK_TIMEOUT_S, path))
    return p.returncode, (p.stdout + p.stderr).strip(), time.monotonic() - start


def plant_stale_reads(history_path):
    """Yields copies of one key's ops with one GET turned stale: it now returns the value of
    a SET that was overwritten by another acknowledged SET which returned before the GET was
    invoked, as (ops, description), for up to PLANT_MAX_KEYS keys. Streams the file: only
    the tried key's ops are held in memory. Keys with the fewest unknown outcomes come first:
    every unknown op doubles the checker's search, and a key whose search gives up
    (inconclusive) proves nothing about the checker (seed 2411 planted into the probe key
    with 74 unknowns)."""
    sizes = {}
    unknowns = {}
    with open(history_path) as f:
        for line in f:
            op = json.loads(line)
            key = op["key"]
            sizes[key] = sizes.get(key, 0) + 1
            if op["outcome"] == "unknown":
                unknowns[key] = unknowns.get(key, 0) + 1

    def ops_of(key):
        with open(history_path) as f:
            return [op for op in map(json.loads, f) if op["key"] == key]
    # The smallest key of at least PLANT_MIN_OPS ops that has the pattern (else any): a
    # violation is only reported after the search exhausted that key's states, so a smaller
    # key keeps it quick, but one with some history around the stale read is the real test.
    order = sorted(sizes, key=lambda k: (sizes[k] < PLANT_MIN_OPS, unknowns.get(k, 0), sizes[k]))
    tried = 0
    for key in order:
        if tried == PLANT_MAX_KEYS:
            return
        tried += 1
        kops = ops_of(key)
        sets = sorted((o for o in kops if o["kind"] == "set" and o["outcome"] == "ok"), key=lambda o: o["ret"])
        gets = [o for o in kops if o["kind"] == "get" and o["outcome"] == "ok"]
        for s1 in sets:
            s2 = next((s for s in sets if s["invoke"] > s1["ret"] and s["arg"] != s1["arg"]), None)
            if s2 is None:
                continue
            g = next((o for o in gets if o["invoke"] > s2["ret"] and o.get("result") != s1["arg"]), None)
            if g is None:
                continue
            planted = [dict(o) for o in kops]
            i = kops.index(g)
            planted[i]["result"] = s1["arg"]
            yield planted, "key %s: GET at %d now returns %d, overwritten by SET %d that returned at %d" % (
                key, g["invoke"], s1["arg"], s2["arg"], s2["ret"])
            break


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--long", action="store_true", help="run for %d s" % LONG_SECONDS)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--keys", type=int, default=DEFAULT_KEYS_PER_EPOCH, help="keys per epoch")
    parser.add_argument("--epoch-seconds", type=float, default=DEFAULT_EPOCH_SECONDS)
    parser.add_argument("--lincheck", default=None, help="hmdb-lincheck (default: next to the build's src/sim)")
    parser.add_argument("--only-faults", default=None, help="comma-separated fault kinds (default: all)")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--negative-control", choices=["follower-reads"], default=None,
                        help="follower-reads: clients read any node after READONLY and record the reads as "
                             "linearizable; the test must then FAIL (proves the pipeline catches stale reads)")
    parser.add_argument("--durability", default="always")
    parser.add_argument("--snapshot-log-bytes", type=int, default=DEFAULT_SNAPSHOT_LOG_BYTES,
                        help="passed to every node; 0: the server's default")
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--tls", action="store_true",
                        help="peers over mutually authenticated TLS (--tls-replication yes, certificates made with "
                             "openssl), the workload on the nodes' TLS ports")
    args = parser.parse_args()

    seconds = args.seconds
    if seconds is None:
        env = os.environ.get("HMDB_CHAOS_SECONDS")
        seconds = float(env) if env else (LONG_SECONDS if args.long else DEFAULT_SECONDS)
    if args.seed is None and os.environ.get("HMDB_CHAOS_SEED"):
        args.seed = int(os.environ["HMDB_CHAOS_SEED"])
    args.seed = harness.get_seed(args.seed)
    args.only_faults = set(args.only_faults.split(",")) if args.only_faults else None
    if args.no_faults:
        args.only_faults = {"none"}
    lincheck = args.lincheck or os.path.join(os.path.dirname(os.path.abspath(args.binary)), "..", "..", "src", "sim",
                                             "hmdb-lincheck")
    if not os.access(lincheck, os.X_OK):
        harness.fail("hmdb-lincheck not found at %s (build it, or pass --lincheck)" % lincheck)
        return 1

    started = time.monotonic()

    def log(msg):
        print(msg, flush=True)

    replay = "HMDB_CHAOS_SEED=%d HMDB_CHAOS_SECONDS=%g python3 %s %s" % (
        args.seed, seconds, os.path.abspath(__file__), os.path.abspath(args.binary))
    log("chaos test: seed %d, %.0fs of faults, %d clients, %d keys per %.0fs epoch%s"
        % (args.seed, seconds, args.clients, args.keys, args.epoch_seconds,
           ", NEGATIVE CONTROL %s (must fail)" % args.negative_control if args.negative_control else ""))

    work_root = os.environ.get("HMDB_TEST_TMPDIR") or os.path.join(os.getcwd(), "chaos-work")
    os.makedirs(work_root, exist_ok=True)
    work = harness.make_work_dir("chaos-", work_root)
    server_args = list(args.server_arg)
    if args.snapshot_log_bytes:
        server_args.append("--snapshot-log-bytes=%d" % args.snapshot_log_bytes)
    tls = None
    if args.tls:
        import tls_certs
        tls = tls_certs.CA(os.path.join(work, "ca"), "chaos-ca")
        log("TLS: peers, forwarding links and the workload over TLS (CA %s)" % tls.crt)
    the_cluster = cluster.Cluster(args.binary, work, durability=args.durability, server_args=server_args, tls=tls)
    network = cluster.Network(the_cluster.nodes)
    if not network.available:
        if os.environ.get("HMDB_CHAOS_ALLOW_NO_NFT") != "1":
            harness.fail("%s.\nThe chaos test needs nftables for its partitions (root, `nft` from "
                         "scripts/install-deps.sh). HMDB_CHAOS_ALLOW_NO_NFT=1 runs it without partitions."
                         % network.why_not)
            harness.remove_work_dir(work)
            return 1
        log("PARTITIONS SKIPPED: %s (HMDB_CHAOS_ALLOW_NO_NFT=1)" % network.why_not)

    stop = threading.Event()
    workers = []
    stats = Stats()
    ok = False
    phase = "start"
    chaos = None
    try:
        the_cluster.start()
        log("cluster: %s; work dir %s" % (the_cluster.initial_cluster(), work))
        the_cluster.wait_leader(LEADER_TIMEOUT_S)
        keyspace = KeySpace(args.keys, args.epoch_seconds, time.monotonic())
        for i in range(args.clients):
            w = Worker(i + 1, the_cluster, keyspace, stats, stop, args.seed,
                       args.negative_control == "follower-reads",
                       os.path.join(work, "history-client-%d.jsonl" % (i + 1)))
            workers.append(w)
            w.start()

        phase = "faults"
        chaos = Chaos(args, the_cluster, network, log)
        chaos.run(seconds, started)

        phase = "stopping clients"
        stop.set()
        for w in workers:
            w.join(CLIENT_JOIN_TIMEOUT_S)
            if w.is_alive():
                raise harness.TestFailure("client %s did not stop within %.0fs" % (w.name, CLIENT_JOIN_TIMEOUT_S))
            if w.error is not None:
                raise harness.TestFailure("client %s: %s" % (w.name, w.error))
        fault_end = time.monotonic()

        phase = "healing"
        network.heal()
        for n in the_cluster.nodes:
            if n.state() == cluster.Node.PAUSED:
                n.resume()
            elif n.state() == cluster.Node.DOWN:
                n.start()
        phase = "convergence"
        index = the_cluster.wait_converged(CONVERGE_TIMEOUT_S)
        converge_s = time.monotonic() - fault_end
        log("converged: every node at applied index %d, %.2fs after the last fault" % (index, converge_s))

        phase = "final reads"
        problems = []
        keys = sorted(keyspace.used | {"probe"})
        final = {}
        for key in keys:
            # A GET changes nothing, so one whose reply was lost is sent again: the admin
            # client's cached connection may be to a node killed and restarted by the last
            # fault, and the first use of it is then "unknown" (seen once in CI).
            # An unexpected error reply is also "unknown": it is never retried, it fails.
            for _ in range(FINAL_READ_ATTEMPTS):
                errors_before = sum(stats.unexpected.values())
                outcome, value = chaos.admin.execute("get", key)
                if outcome != "unknown" or sum(stats.unexpected.values()) != errors_before:
                    break
            if outcome != "ok":
                raise harness.TestFailure("final GET %s on the leader: %s" % (key, outcome))
            final[key] = value
        for n in the_cluster.nodes:
            with n.client(timeout=cluster.ADMIN_TIMEOUT_S) as cl:
                if cl.call("READONLY") != "OK":
                    raise harness.TestFailure("%s: READONLY refused" % n)
                replies = cl.pipeline([("GET", k) for k in keys])
            for k, got in zip(keys, replies):
                want = final[k]
                if (None if got is None else int(got)) != want:
                    problems.append("%s holds %s=%r, the leader %r" % (n, k, got, want))
        digests = {n: n.digest() for n in the_cluster.nodes}
        if len(set(digests.values())) != 1:
            problems.append("CLUSTER DIGEST differs: %s" % ", ".join("%s=%s" % (n, d) for n, d in digests.items()))
        log("final state: %d keys read on the leader and on every node (READONLY); digests %s"
            % (len(keys), "identical %s" % (list(digests.values())[0],) if len(set(digests.values())) == 1 else "DIFFER"))

        phase = "linearizability"
        history_path = os.path.join(work, "history.jsonl")
        n_ops = write_history(history_path, [w.client for w in workers] + [chaos.admin])
        code, out, lin_s = run_lincheck(lincheck, history_path)
        log("hmdb-lincheck (%d ops, %.1fs): %s" % (n_ops, lin_s, out.splitlines()[0] if out else "(no output)"))
        if code == 1:
            problems.append("history not linearizable (%s):\n%s" % (history_path, "\n".join(out.splitlines()[:80])))
        elif code == 2:
            problems.append("linearizability check inconclusive: %s" % out)
        elif code != 0:
            problems.append("hmdb-lincheck failed with code %d: %s" % (code, out))

        phase = "checker teeth"
        if code == 0:
            # The plant must be reported (exit 1). An inconclusive search (exit 2) on that key
            # says nothing either way: try the next key. Anything else is a failure.
            outcome = None
            for planted_ops, what in plant_stale_reads(history_path):
                planted_path = os.path.join(work, "history-planted-stale-read.jsonl")
                with open(planted_path, "w") as f:
                    for op in planted_ops:
                        f.write(json.dumps(op, separators=(",", ":")) + "\n")
                pcode, pout, ps = run_lincheck(lincheck, planted_path)
                log("checker teeth: planted stale read (%s) -> exit %d in %.1fs: %s"
                    % (what, pcode, ps, pout.splitlines()[0] if pout else ""))
                outcome = pcode
                if pcode != 2:
                    break
            if outcome is None:
                log("checker teeth: no key had SET, SET, GET in sequence; not checked")
            elif outcome != 1:
                problems.append("a planted stale read was not reported as a violation (exit %d)" % outcome)

        # Summary.
        counts = stats.counts
        line = ", ".join("%s %s %d" % (k, o, counts.get((k, o), 0))
                         for k in ("set", "incr", "get") for o in ("ok", "failed", "unknown"))
        log("ops: %s; redirects %d, CLUSTERDOWN %d, connect failures %d"
            % (line, stats.redirects, stats.clusterdown, counts.get("connect_failure", 0)))
        if stats.unexpected:
            log("unexpected error replies (recorded as unknown): %s"
                % "; ".join("%s x%d" % kv for kv in sorted(stats.unexpected.items())))
        log("faults: %s" % (", ".join("%s %d" % kv for kv in sorted(chaos.fault_counts.items())) or "none"))
        if chaos.failover_s:
            log("failover after kill -9 of the leader (kill -> first acknowledged write): median %.2fs, max %.2fs, n=%d"
                % (statistics.median(chaos.failover_s), max(chaos.failover_s), len(chaos.failover_s)))
        for kind, xs in sorted(chaos.recovery_s.items()):
            log("  after %-18s a write was acknowledged within median %.2fs, max %.2fs of the undo"
                % (kind, statistics.median(xs), max(xs)))
        log("node logs: %s" % coverage(work))
        acked_writes = sum(counts.get((k, "ok"), 0) for k in ("set", "incr"))
        if acked_writes == 0:
            problems.append("no write was acknowledged at all")

        phase = "shutdown"
        for n in the_cluster.nodes:
            code = n.terminate()
            if code != 0:
                problems.append("%s: SIGTERM exit code %d" % (n, code))
        the_cluster.check_alive()  # a node that had died by itself before SIGTERM
        phase = "final checks"
        if problems:
            raise harness.TestFailure("\n  ".join(["%d problem(s):" % len(problems)] + problems[:20]))
        ok = True
    except (harness.TestFailure, harness.ServerExited, resp.ConnectionLost, resp.ProtocolError) as e:
        harness.fail("in phase %s: %s" % (phase, e))
        for n in the_cluster.nodes:
            if n.log_path:
                print(n.log_tail(2000), file=sys.stderr)
    finally:
        stop.set()
        try:
            network.close()
        finally:
            the_cluster.kill_all()

    elapsed = time.monotonic() - started
    if args.negative_control:
        if ok:
            harness.fail("NEGATIVE CONTROL %s passed: the test did not catch it" % args.negative_control)
            return 1
        log("NEGATIVE CONTROL %s failed as it must (%.1fs)" % (args.negative_control, elapsed))
        if not args.keep:
            harness.remove_work_dir(work)
        return 0
    if ok:
        log("PASS: %.1fs in total (seed %d)" % (elapsed, args.seed))
        if not args.keep:
            harness.remove_work_dir(work)
        return 0
    print("chaos test FAILED (seed %d) after %.1fs; data, logs and history kept in %s\nreplay: %s"
          % (args.seed, elapsed, work, replay), file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
