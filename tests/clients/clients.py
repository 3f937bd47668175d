"""The client-library harness: real client libraries, each driving an application program
(apps/) against hmdb or a real Redis, and the failover driver that kills the leader under
them. Used by client_test.py (the ctest cases) and bench/client_failover.py (the benchmark).

Libraries (LIBRARIES below): redis-py from Debian's python3-redis, run by /usr/bin/python3
(scripts/install-deps.sh); ioredis, node-redis (current major) and node-redis 4 from npm,
pinned in tests/clients/package.json and installed into tests/clients/node_modules by
scripts/install-deps.sh. missing_libraries() says which are not installed.

An app (apps/redis_py_app.py, apps/node_app.js) connects to ONE address, in cluster mode
(the library's cluster client) or plain mode, writes and reads a smoke key, then SETs
P:0, P:1, ... one at a time until told to stop, printing a JSON line per event (see the
apps' docstrings). App wraps the process: it collects the acknowledged writes, the errors,
and the CLOCK_MONOTONIC time of each acknowledgement.

Failover (run_failover): while the app writes, kill -9 the node that serves the app's keys
(hmdb: the leader; Redis Cluster: the master of the keys' slot), record the time from the
kill to the app's first acknowledged write after it, bring the killed node back, wait until
it has rejoined, and repeat. At the end every acknowledged write is read back. A Target
(HmdbTarget here, redis_cluster.RedisClusterTarget) knows how to do each step on its system.
In plain mode (hmdb only) the app's plain client is given node 1's address and the leader is
never node 1 when it is killed (leadership is transferred away from node 1 first, with
`hmdb cluster transfer`): node 1 forwards the app's commands to whichever node leads.

Every wait is a poll of a real condition against a named bound.
"""

import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "system"))

import cluster as cl  # noqa: E402  (tests/system/cluster.py: a local hmdb cluster)
import harness  # noqa: E402
import resp  # noqa: E402

# The Python the Debian package python3-redis installs into (not a pyenv or venv python).
DEBIAN_PYTHON = harness.DEBIAN_PYTHON
NODE_MODULES = os.path.join(HERE, "node_modules")

# library name -> (how to run its app, the module whose presence says it is installed)
LIBRARIES = {
    "redis-py": ([DEBIAN_PYTHON, os.path.join(HERE, "apps", "redis_py_app.py")], None),
    "ioredis": (["node", os.path.join(HERE, "apps", "node_app.js"), "--library", "ioredis"], "ioredis"),
    "node-redis": (["node", os.path.join(HERE, "apps", "node_app.js"), "--library", "node-redis"], "redis"),
    "node-redis4": (["node", os.path.join(HERE, "apps", "node_app.js"), "--library", "node-redis4"], "redis4"),
}

# Libraries given every node's address: node-redis rediscovers the topology only from the
# masters it knows and the root nodes it was given, and a one-shard cluster has one master.
ALL_ADDRESSES = {"node-redis", "node-redis4"}

# Bounds.
APP_READY_TIMEOUT_S = 30.0      # from start to "ready" (connect, discover, smoke SET/GET)
RECOVERY_TIMEOUT_S = 20.0       # from a kill to the app's first acknowledged write after it
PROGRESS_TIMEOUT_S = 30.0       # for the writes asked for between kills
REJOIN_TIMEOUT_S = 60.0         # for a restarted node to catch up
APP_STOP_TIMEOUT_S = 30.0       # from "stop" to the app's exit
TRANSFER_TIMEOUT_S = 30.0       # hmdb cluster transfer (plain mode), and the leader moving
WRITES_BETWEEN_KILLS = 20       # acknowledged writes before each kill (and after a rejoin)


def missing_libraries(names):
    """{name: why} for the libraries among `names` that cannot run here."""
    out = {}
    for name in names:
        cmd, module = LIBRARIES[name]
        if not shutil.which(cmd[0]) and not os.path.exists(cmd[0]):
            out[name] = "%s is not installed" % cmd[0]
        elif module is None:
            probe = subprocess.run([DEBIAN_PYTHON, "-c", "import redis"], capture_output=True, timeout=30)
            if probe.returncode != 0:
                out[name] = "python3-redis is not installed (bash scripts/install-deps.sh)"
        elif not os.path.isdir(os.path.join(NODE_MODULES, module)):
            out[name] = "%s is not in %s (bash scripts/install-deps.sh)" % (module, NODE_MODULES)
    return out


class TestFailure(Exception):
    pass


class App:
    """One app process of a library, and what it reported."""

    def __init__(self, library, mode, addr, prefix, log_path, command=None):
        """command: the app to run instead of the library's own (LIBRARIES), with the same
        output protocol (e.g. apps/request_app.py); --mode, --addr, --prefix are added."""
        self.library = library
        self.prefix = prefix
        self.acked = []      # n of each acknowledged SET, in order
        self.values = []     # the "v" of each acknowledgement (apps that report one), same order
        self.ack_times = []  # (start, end) CLOCK_MONOTONIC ns of each call, same order
        self.errors = []     # (t, n, msg)
        self.logs = []
        self.version = None
        self.done = False
        self.fatal = None
        self._events = queue.Queue()
        self._lock = threading.Lock()
        cmd = (command or LIBRARIES[library][0]) + ["--mode", mode, "--addr", addr, "--prefix", prefix]
        self.log = open(log_path, "w")
        self.log.write("$ %s\n" % " ".join(cmd))
        self.log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     cwd=HERE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.log.write(line)
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                kind = ev.get("ev")
                if kind == "ack":
                    self.acked.append(ev["n"])
                    self.values.append(ev.get("v"))
                    self.ack_times.append((ev["s"], ev["t"]))
                elif kind == "err":
                    self.errors.append((ev["t"], ev["n"], ev["msg"]))
                elif kind == "ready":
                    self.version = ev.get("version")
                elif kind == "done":
                    self.done = True
                elif kind == "fatal":
                    self.fatal = ev.get("msg")
                elif kind == "log":
                    self.logs.append(ev.get("msg"))
        self.log.flush()

    def _wait(self, cond, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if cond():
                    return
                fatal = self.fatal
            if fatal is not None:
                raise TestFailure("%s app failed: %s (log: %s)" % (self.library, fatal, self.log.name))
            if self.proc.poll() is not None and not cond():
                raise TestFailure("%s app exited with %s while waiting for %s (log: %s)"
                                  % (self.library, self.proc.returncode, what, self.log.name))
            if time.monotonic() > deadline:
                raise TestFailure("%s app: no %s within %.0f s (acked %d, last errors %s; log: %s)"
                                  % (self.library, what, timeout, len(self.acked), self.errors[-3:], self.log.name))
            time.sleep(0.005)

    def wait_ready(self, timeout=APP_READY_TIMEOUT_S):
        self._wait(lambda: self.version is not None, timeout, "ready")

    def wait_acked(self, count, timeout=PROGRESS_TIMEOUT_S):
        self._wait(lambda: len(self.acked) >= count, timeout, "%d acknowledged writes" % count)

    def first_ack_after(self, t_ns, timeout=RECOVERY_TIMEOUT_S):
        """When the first write the app started after t_ns was acknowledged (CLOCK_MONOTONIC
        ns; waits for it). Writes started before t_ns do not count: the reply to one of them
        may have left the killed node before it died and be read after the kill. So the time
        measured is at most one write's round trip longer than the recovery (the write in
        flight at the kill, retried by the library, completes first)."""
        self._wait(lambda: self.ack_times and self.ack_times[-1][0] > t_ns, timeout, "write after the kill")
        with self._lock:
            return next(t for s, t in self.ack_times if s > t_ns)

    def stop(self):
        """Asks the app to stop, waits for it; returns the acknowledged n's."""
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        try:
            self.proc.wait(timeout=APP_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("%s app did not stop within %.0f s (log: %s)" % (self.library, APP_STOP_TIMEOUT_S,
                                                                              self.log.name))
        self._reader.join(timeout=10)
        if not self.done:
            raise TestFailure("%s app exited with %s without finishing (log: %s)"
                              % (self.library, self.proc.returncode, self.log.name))
        with self._lock:
            return list(self.acked)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class HmdbTarget:
    """A local 3-node hmdb cluster (tests/system/cluster.py) as the failover driver sees it."""

    name = "hmdb"

    def __init__(self, binary, work_dir, server_args=()):
        self.cluster = cl.Cluster(binary, work_dir, nodes=3, cluster_id="hmdb-client-test",
                                  server_args=list(server_args))

    def start(self):
        self.cluster.start()
        self.cluster.wait_leader(cl.NODE_READY_TIMEOUT_S)

    def seed_addr(self):
        """The one address the app is given: node 1's, whatever its role."""
        return self.cluster.node(1).moved_addr

    def all_addrs(self):
        return ",".join(n.moved_addr for n in self.cluster.nodes)

    def victim(self, avoid_addr=None):
        """The node that serves the app's writes: the leader. Not the node at avoid_addr (the
        plain client's, which must outlive the kill): leadership is moved off it first, again
        if an election gives it back (a new leader that loses its quorum at once, e.g. while
        a restarted node reconnects: seen in bench/client_failover.py under load 7)."""
        deadline = time.monotonic() + TRANSFER_TIMEOUT_S
        transfers = []
        while True:
            leader = self.cluster.wait_leader(cl.NODE_READY_TIMEOUT_S)
            if avoid_addr is None or leader.moved_addr != avoid_addr:
                return leader
            if time.monotonic() > deadline:
                raise TestFailure("%s still leads %.0f s after %d transfers off it: %s"
                                  % (leader, TRANSFER_TIMEOUT_S, len(transfers), transfers[-1:]))
            target = next(n for n in self.cluster.nodes if n is not leader)
            out = subprocess.run([self.cluster.binary, "cluster", "--addr", leader.client_addr, "transfer",
                                  str(target.id)], capture_output=True, text=True, timeout=TRANSFER_TIMEOUT_S,
                                 check=False)
            transfers.append("transfer %d: exit %d %s" % (target.id, out.returncode, (out.stdout + out.stderr).strip()))
            if out.returncode == 0:
                continue  # target led when it returned; checked again above
            time.sleep(cl.POLL_INTERVAL_S)  # e.g. the leader changed meanwhile: look again

    def kill(self, node):
        node.kill()

    def rejoin(self, node):
        """Restarts a killed node and waits until it follows the leader and has applied
        everything the leader had committed when it came back."""
        node.start()
        deadline = time.monotonic() + REJOIN_TIMEOUT_S
        leader = self.cluster.wait_leader(REJOIN_TIMEOUT_S)
        target = int(leader.info()["commit_index"])
        while True:
            info = node.info()
            if info.get("leader_id") == str(leader.id) and int(info.get("applied_index", "0")) >= target:
                return
            if time.monotonic() > deadline:
                raise TestFailure("%s did not catch up within %.0f s: %s" % (node, REJOIN_TIMEOUT_S, info))
            time.sleep(cl.POLL_INTERVAL_S)

    def read(self, key):
        """A linearizable read on the leader."""
        return self.cluster.wait_leader(cl.NODE_READY_TIMEOUT_S).call("GET", key)

    def stop(self):
        self.cluster.kill_all()

    def describe(self):
        return "hmdb 3-node cluster (election timeout 200 ms, heartbeat 50 ms)"


def run_failover(target, library, kills, work_dir, prefix="{fo}", mode="cluster", out=print):
    """Runs the app of `library` against `target` and kills the node serving it `kills`
    times. Returns {"library", "version", "times_ms", "acked", "lost", "errors"}; raises
    TestFailure if the writes do not resume within RECOVERY_TIMEOUT_S or the app fails.
    Lost writes are reported, not raised: the caller decides (hmdb must lose none)."""
    addr = target.all_addrs() if library in ALL_ADDRESSES and mode == "cluster" else target.seed_addr()
    app = App(library, mode, addr, prefix, os.path.join(work_dir, "%s-%s-app.log" % (library, mode)))
    times_ms = []
    try:
        app.wait_ready()
        app.wait_acked(WRITES_BETWEEN_KILLS)
        for k in range(kills):
            victim = target.victim(avoid_addr=addr) if mode == "plain" else target.victim()
            app.wait_acked(len(app.acked) + WRITES_BETWEEN_KILLS)
            t_kill = time.monotonic_ns()
            target.kill(victim)
            t_first = app.first_ack_after(t_kill)
            times_ms.append((t_first - t_kill) / 1e6)
            out("  %s kill %d/%d: %s killed, first write %.0f ms later" % (library, k + 1, kills, victim,
                                                                         times_ms[-1]))
            target.rejoin(victim)
            app.wait_acked(len(app.acked) + WRITES_BETWEEN_KILLS)
        acked = app.stop()
    finally:
        app.kill()
    lost = [n for n in acked if target.read("%s:%d" % (prefix, n)) != str(n).encode()]
    return {"library": library, "version": app.version, "times_ms": times_ms, "acked": len(acked), "lost": lost,
            "errors": len(app.errors)}


def summary(times_ms):
    if not times_ms:
        return "no kills"
    return "median %.0f ms, max %.0f ms over %d kills" % (statistics.median(times_ms), max(times_ms), len(times_ms))
