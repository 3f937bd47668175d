#!/usr/bin/env python3
"""bench/cluster_bench.py — a replicated hmdb against etcd and Redis, side by side in one run.

The benchmarks of issue 4, each against its peers on the same machine, one system at a time:

  throughput  random-key SET of small values, 50 and 100 clients, one request in flight per
              client, median of --runs runs: a 3-node hmdb cluster (--durability always, all
              writes to the leader) vs a 3-node etcd 3.4 cluster (Debian's etcd-server,
              defaults, all puts to its leader, load from bench/etcd/etcd-load: a Go client on
              Debian's clientv3) vs Redis 7 primary + 2 replicas (appendonly yes, appendfsync
              always on all three) with `WAIT 1 0` after every SET (hmdb-bench
              --wait-replicas 1). Prints ops/s, p50, p99 and the ratios hmdb/etcd and
              hmdb/Redis+WAIT. Also one hmdb node (always, no replication) under the same
              load: not a competitor but the ceiling, since the 3 nodes share the same cores.
  failover    while 50 clients write, kill -9 the leader (--kills times); the time from the
              kill to the first successful write sent after the killed process was reaped.
              The old leader is restarted and caught up before the next kill. hmdb: hmdb-bench
              follow mode (follows -MOVED, tries the other nodes); etcd: etcd-load failover
              mode (clientv3 over all endpoints); Redis: 3 Sentinels (down-after 1000 ms),
              hmdb-bench asks them for the master (plain SET: WAIT would also time the
              reconfiguration of the other replica).
  elections   hmdb only: a 60 s full-load run (100 clients); the leader and term are polled
              every 0.5 s and compared before/after: there should be no leader change.
  catchup     hmdb only: fill the leader with ~1 GiB (sequential keys, 1 KiB values), SNAPSHOT,
              start a new node with --join, CLUSTER ADDLEARNER it, and time until its
              applied_index reaches the leader's commit index: MB/s of the snapshot size.
  forward     hmdb only (issue 11): what a plain client pays for a follower's extra hop.
              SET and GET sent to the leader, and sent to a follower that forwards them
              (hmdb-bench, plain client): 1 client with one request in flight (latency), and
              --clients clients (throughput), median of --runs runs, the leader and the
              follower measured alternately on the same cluster. With --baseline-hmdb OLD
              (a build from before forwarding): the leader's SET and GET throughput at
              --clients clients of a cluster of OLD and one of this build, alternately: what
              forwarding costs the leader when nobody forwards.

Usage:
  bench/cluster_bench.py --quick                      # smoke run (~3 min)
  bench/cluster_bench.py                              # the full run quoted in bench/README.md
  bench/cluster_bench.py --only etcd,redis,sentinel   # without hmdb
  bench/cluster_bench.py --parts throughput,failover --runs 5 --out report.md

Every process it starts is stopped by PID on every exit path; every load run has a time
bound; the temporary directory (under --tmp-root: a real disk, fsync must cost what it
costs) is removed at the end. The load average is printed with every measurement: the
machine is shared, so quote medians.
"""

import argparse
import datetime
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "etcd"))
import etcd_cluster  # noqa: E402
from etcd_cluster import EtcdCluster  # noqa: E402
from compare import port_is_free  # noqa: E402  (bench/compare.py, same folder)

SYSTEMS = ["hmdb", "hmdb1", "etcd", "redis", "sentinel"]
PARTS = ["throughput", "failover", "elections", "catchup", "forward"]

# How long a server may take to answer after start.
START_TIMEOUT = 30.0
# SIGTERM grace before SIGKILL.
STOP_GRACE = 10.0
# How long a cluster may take to agree on a leader, and a restarted node to catch up.
HEALTHY_TIMEOUT = 60.0
# A load run may take this much longer than its nominal time before it is killed.
LOAD_SLACK = 60.0
# Failover: the longest wait for the first write after a kill before the kill counts as
# failed (no recovery).
FAILOVER_TIMEOUT = 30.0
# Failover: clients writing during the kills, and the per-request timeout of the client
# (a request sent to a dead or stopped leader is abandoned after it and another node tried).
FAILOVER_CLIENTS = 50
FAILOVER_REQUEST_TIMEOUT_MS = 250
# Failover: writing time before the first kill and after each recovery.
FAILOVER_SETTLE = 1.0
# Sentinel: failover-timeout (ms). A Sentinel does not start another failover of the same
# master name within twice this time of the last one it took part in, so the kills are
# spaced by at least that much.
SENTINEL_FAILOVER_TIMEOUT_MS = 3000
SENTINEL_DOWN_AFTER_MS = 1000
# Catch-up: the longest wait for the new node.
CATCHUP_TIMEOUT = 600.0
# Small RESP requests to the servers (INFO, CLUSTER ...): receive timeout.
COMMAND_TIMEOUT = 5.0
# Catch-up: connections writing the state.
CATCHUP_FILL_CLIENTS = 50
# Catch-up: ADDLEARNER attempts (each after a -MOVED / -CLUSTERDOWN and a leader wait).
ADDLEARNER_TRIES = 5
# Elections: how often the leader and term are polled during the full-load run.
POLL_INTERVAL = 0.5

children = {}  # pid -> description, every process we started and have not reaped


def log(message):
    print(message, file=sys.stderr, flush=True)


def loadavg():
    return f"{os.getloadavg()[0]:.1f}"


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


def track(proc, what):
    children[proc.pid] = what


def untrack(proc):
    children.pop(proc.pid, None)


def stop_process(proc):
    if proc is None:
        return
    etcd_cluster.stop_process(proc, STOP_GRACE)
    untrack(proc)


def kill9(proc):
    """SIGKILL and reap: when this returns the process is gone (its sockets are closed)."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    untrack(proc)


# ---------------------------------------------------------------------------------------
# A minimal RESP client for INFO and admin commands.

def _read_reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b":"):
        return rest.decode()
    if kind == b"-":
        return RespError(rest.decode())
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise OSError(f"unexpected reply {line!r}")


class RespError(str):
    pass


def command(port, *args, timeout=COMMAND_TIMEOUT):
    """Sends one command to 127.0.0.1:port; returns the reply (RespError for -ERR), or
    raises OSError when the server does not answer."""
    payload = f"*{len(args)}\r\n".encode()
    for a in args:
        a = str(a).encode()
        payload += b"$%d\r\n%s\r\n" % (len(a), a)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        with s.makefile("rb") as f:
            return _read_reply(f)


def info_fields(port, section="replication"):
    """INFO <section> as a dict, or None if the server does not answer."""
    try:
        text = command(port, "INFO", section, timeout=2.0)
    except (OSError, ValueError):
        return None
    if not isinstance(text, str) or isinstance(text, RespError):
        return None
    fields = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    return fields


def spawn(argv, log_path, what):
    for_log = open(log_path, "ab")
    proc = subprocess.Popen(argv, stdout=for_log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    for_log.close()
    track(proc, what)
    return proc


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value is not None and value is not False:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------------------
# The systems. Each: start(), stop(), leader() -> node index or None, leader_port(),
# kill_leader() -> killed index, restart(i), wait_caught_up(i), endpoints().

class HmdbCluster:
    """3 hmdb nodes (--durability always) per docs/cluster.md / the agreed flags."""

    def __init__(self, args, root, base_port, size=3):
        self.args = args
        self.root = root
        self.size = size
        self.client_ports = [base_port + i for i in range(1, size + 1)]
        self.peer_ports = [base_port + 10 + i for i in range(1, size + 1)]
        self.procs = [None] * size
        self.joined = []  # nodes added later (catch-up): (id, client port, peer port)

    def initial_cluster(self):
        return ",".join(f"{i + 1}=127.0.0.1:{self.client_ports[i]}@127.0.0.1:{self.peer_ports[i]}"
                        for i in range(self.size))

    def argv(self, i, join=False, client_port=None, peer_port=None):
        node_id = i + 1
        client_port = client_port or self.client_ports[i]
        peer_port = peer_port or self.peer_ports[i]
        argv = [self.args.hmdb, "serve", "--node-id", str(node_id), "--bind", "127.0.0.1",
                "--port", str(client_port), "--dir", os.path.join(self.root, f"n{node_id}"),
                "--durability", "always", "--peer-addr", f"127.0.0.1:{peer_port}"]
        argv += ["--join"] if join else ["--initial-cluster", self.initial_cluster()]
        return argv + self.args.hmdb_flags

    def start_node(self, i):
        self.procs[i] = spawn(self.argv(i), os.path.join(self.root, f"n{i + 1}.log"),
                              f"hmdb n{i + 1}")

    def start(self):
        for p in self.client_ports + self.peer_ports:
            if not port_is_free(p):
                raise RuntimeError(f"port {p} is in use; pick another --base-port")
        for i in range(self.size):
            self.start_node(i)
        return self.wait_healthy()

    def stop(self):
        for p in self.procs:
            stop_process(p)
        self.procs = [None] * len(self.procs)

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def info(self, i):
        return info_fields(self.client_ports[i])

    def leader(self):
        """Index of the leader every live node agrees on, or None."""
        leader_ids = set()
        leader = None
        for i in range(self.size):
            if not self.alive(i):
                continue
            f = self.info(i)
            if f is None:
                return None
            leader_ids.add(f.get("leader_id"))
            if f.get("role") == "leader":
                leader = i
        if leader is None or len(leader_ids) != 1 or leader_ids.pop() != str(leader + 1):
            return None
        return leader

    def term(self):
        i = self.leader()
        f = self.info(i) if i is not None else None
        return int(f["term"]) if f else None

    def wait_healthy(self, timeout=HEALTHY_TIMEOUT):
        def check():
            for i in range(self.size):
                if self.procs[i] is not None and self.procs[i].poll() is not None:
                    raise RuntimeError(f"hmdb n{i + 1} exited with status "
                                       f"{self.procs[i].returncode}: see "
                                       f"{os.path.join(self.root, f'n{i + 1}.log')}")
            return self.leader() is not None
        wait_until(check, timeout, "an hmdb leader all nodes agree on")
        return self.leader()

    def leader_port(self):
        return self.client_ports[self.wait_healthy()]

    def endpoints(self):
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def kill9(self, i):
        kill9(self.procs[i])

    def restart(self, i):
        self.start_node(i)

    def wait_caught_up(self, i, port=None, timeout=HEALTHY_TIMEOUT):
        """Until node i's applied_index reaches the leader's commit_index sampled first."""
        lead = self.wait_healthy()
        target = int(self.info(lead)["commit_index"])
        port = port or self.client_ports[i]

        def check():
            f = info_fields(port)
            return f is not None and int(f.get("applied_index", -1)) >= target
        wait_until(check, timeout, f"hmdb node {i + 1} to apply index {target}")


class RedisGroup:
    """Redis primary + 2 replicas, AOF always on all three; optionally 3 Sentinels."""

    def __init__(self, args, root, base_port, sentinels=False):
        self.args = args
        self.root = root
        self.ports = [base_port + 1, base_port + 2, base_port + 3]
        self.sentinel_ports = [base_port + 11, base_port + 12, base_port + 13] if sentinels else []
        self.procs = [None] * 3
        self.sentinel_procs = []

    def argv(self, i, master_port=None):
        d = os.path.join(self.root, f"r{i + 1}")
        os.makedirs(d, exist_ok=True)
        argv = [self.args.redis_server, "--port", str(self.ports[i]), "--bind", "127.0.0.1",
                "--dir", d, "--save", "", "--daemonize", "no", "--appendonly", "yes",
                "--appendfsync", "always", "--logfile", os.path.join(d, "redis.log")]
        if master_port is not None:
            argv += ["--replicaof", "127.0.0.1", str(master_port)]
        return argv

    def start_node(self, i, master_port=None):
        self.procs[i] = subprocess.Popen(self.argv(i, master_port), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        track(self.procs[i], f"redis r{i + 1}")
        wait_until(lambda: info_fields(self.ports[i]) is not None or
                   self.procs[i].poll() is not None, START_TIMEOUT, f"redis r{i + 1}")
        if self.procs[i].poll() is not None:
            raise RuntimeError(f"redis r{i + 1} exited: see {self.root}/r{i + 1}/redis.log")

    def start(self):
        for p in self.ports + self.sentinel_ports:
            if not port_is_free(p):
                raise RuntimeError(f"port {p} is in use; pick another --base-port")
        self.start_node(0)
        self.start_node(1, self.ports[0])
        self.start_node(2, self.ports[0])
        self.wait_replicas_online(0)
        for k, port in enumerate(self.sentinel_ports):
            conf = os.path.join(self.root, f"sentinel{k + 1}.conf")
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind 127.0.0.1\ndaemonize no\n"
                        f"dir \"{self.root}\"\n"
                        f"logfile \"{os.path.join(self.root, f'sentinel{k + 1}.log')}\"\n"
                        f"sentinel monitor mymaster 127.0.0.1 {self.ports[0]} 2\n"
                        f"sentinel down-after-milliseconds mymaster {SENTINEL_DOWN_AFTER_MS}\n"
                        f"sentinel failover-timeout mymaster {SENTINEL_FAILOVER_TIMEOUT_MS}\n")
            proc = subprocess.Popen([self.args.redis_server, conf, "--sentinel"],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            track(proc, f"sentinel {k + 1}")
            self.sentinel_procs.append(proc)
        if self.sentinel_ports:
            self.wait_sentinels_agree()
        return self.leader()

    def stop(self):
        for p in self.sentinel_procs + self.procs:
            stop_process(p)
        self.procs = [None] * 3
        self.sentinel_procs = []

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def replicas_online(self, master):
        f = info_fields(self.ports[master])
        if f is None or f.get("role") != "master":
            return False
        online = [k for k, v in f.items() if k.startswith("slave") and "state=online" in v]
        return len(online) == 2

    def wait_replicas_online(self, master, timeout=HEALTHY_TIMEOUT):
        wait_until(lambda: self.replicas_online(master), timeout,
                   f"2 online replicas on redis r{master + 1}")

    def sentinel_master_port(self, port):
        try:
            r = command(port, "SENTINEL", "get-master-addr-by-name", "mymaster", timeout=1.0)
        except OSError:
            return None
        return int(r[1]) if isinstance(r, list) and len(r) == 2 else None

    def wait_sentinels_agree(self, timeout=HEALTHY_TIMEOUT):
        """Every Sentinel names the same master, sees 2 healthy replicas and 2 other
        Sentinels."""
        def check():
            masters = set()
            for port in self.sentinel_ports:
                masters.add(self.sentinel_master_port(port))
                try:
                    m = command(port, "SENTINEL", "master", "mymaster", timeout=1.0)
                    replicas = command(port, "SENTINEL", "replicas", "mymaster", timeout=1.0)
                except OSError:
                    return False
                if not isinstance(m, list) or not isinstance(replicas, list):
                    return False
                md = dict(zip(m[::2], m[1::2]))
                if md.get("flags") != "master" or md.get("num-other-sentinels") != "2":
                    return False
                healthy = [r for r in replicas if dict(zip(r[::2], r[1::2])).get("flags") == "slave"]
                if len(healthy) != 2:
                    return False
            return len(masters) == 1 and None not in masters
        wait_until(check, timeout, "the Sentinels to agree on a master with 2 healthy replicas")

    def leader(self):
        if not self.sentinel_ports:
            return 0
        port = self.sentinel_master_port(self.sentinel_ports[0])
        return self.ports.index(port) if port in self.ports else None

    def leader_port(self):
        return self.ports[self.leader()]

    def kill9(self, i):
        kill9(self.procs[i])

    def restart(self, i):
        # As a replica of the current master (an operator would; a restarted old master that
        # claims to be master is converted by Sentinel anyway).
        master = wait_until(lambda: self.leader() if self.leader() != i else None,
                            HEALTHY_TIMEOUT, "Sentinel to name a new master")
        self.start_node(i, self.ports[master])

    def wait_caught_up(self, i, timeout=HEALTHY_TIMEOUT):
        # The master is asked again each time: under load a Sentinel may fail over once more
        # on its own (a master busy for down-after-milliseconds counts as down).
        def check():
            master = self.leader()
            return master is not None and self.replicas_online(master)
        wait_until(check, timeout, "the current Redis master to have 2 online replicas")
        if self.sentinel_ports:
            self.wait_sentinels_agree(timeout)


class HmdbSingle:
    """One hmdb node, --durability always, no replication: the same binary and workload
    without the cluster. Not a competitor: the ceiling a 3-node cluster on the same cores
    cannot beat (it does the leader's work plus two followers' on the same 2 CPUs)."""

    def __init__(self, args, root, base_port):
        self.args = args
        self.root = root
        self.port = base_port + 5
        self.proc = None

    def start(self):
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is in use; pick another --base-port")
        argv = [self.args.hmdb, "serve", "--bind", "127.0.0.1", "--port", str(self.port),
                "--dir", os.path.join(self.root, "n1"), "--durability", "always"]
        self.proc = spawn(argv + self.args.hmdb_flags, os.path.join(self.root, "n1.log"), "hmdb single")
        wait_until(lambda: info_fields(self.port) is not None, START_TIMEOUT, "hmdb single node")
        return 0

    def leader_port(self):
        return self.port

    def stop(self):
        stop_process(self.proc)
        self.proc = None


class EtcdSystem(EtcdCluster):
    def __init__(self, args, root, base_port):
        super().__init__(root, base_port, args.etcd, on_spawn=track, on_reap=untrack)

    def start(self):
        for p in self.client_ports + self.peer_ports:
            if not port_is_free(p):
                raise RuntimeError(f"port {p} is in use; pick another --base-port")
        super().start()
        return self.leader()

    def leader_port(self):
        return self.client_ports[self.wait_healthy()]

    def restart(self, i):
        self.start_node(i)


# ---------------------------------------------------------------------------------------
# Load runs

def run_load(argv, timeout):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    track(proc, argv[0])
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        proc.communicate()
        raise RuntimeError(f"load run took longer than {timeout:.0f} s: {' '.join(argv)}")
    untrack(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {err.strip()[-500:]}")
    return out, err


def run_follow_load(argv, timeout):
    """Like run_load, for hmdb-bench in follow mode: stdin is kept open (EOF ends its run)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.PIPE, text=True)
        track(proc, argv[0])
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            raise RuntimeError(f"load run took longer than {timeout:.0f} s: {' '.join(argv)}")
        finally:
            proc.stdin.close()
        untrack(proc)
        out.seek(0)
        err.seek(0)
        out_text, err_text = out.read(), err.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {err_text[-500:]}")
    return out_text, err_text


class Result:
    def __init__(self, rps, p50, p99, errors, first_error, load, requests=0):
        self.rps, self.p50, self.p99, self.errors, self.first_error = rps, p50, p99, errors, first_error
        self.load = load
        self.requests = requests  # acknowledged writes of the run
        # CPU time of every server process of the system (all nodes, all threads) per
        # acknowledged write, in microseconds: filled in by part_throughput.
        self.server_cpu_us = None


def process_cpu_seconds(pid):
    """User + system CPU time a process (all its threads) has used so far, or 0 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_cpu_seconds(system):
    """CPU time used so far by every server process of a system (its nodes; not the load tool)."""
    procs = list(getattr(system, "procs", []) or []) + [getattr(system, "proc", None)]
    return sum(process_cpu_seconds(p.pid) for p in procs if p is not None and p.poll() is None)


def parse_csv(out, err, test):
    for line in out.splitlines():
        cols = line.split(",")
        if cols and cols[0] == test:
            return cols
    raise RuntimeError(f"no {test} line in load output: {out!r} {err[-500:]!r}")


def measure_throughput(args, system, port_or_eps, clients, seconds=None):
    seconds = seconds or args.seconds
    load = loadavg()
    if system == "etcd":
        argv = [args.etcd_load, "--mode", "put", "--endpoints", port_or_eps, "--clients",
                str(clients), "--seconds", str(seconds), "--keyspace", str(args.keyspace),
                "--value-size", str(args.value_size)]
        out, err = run_load(argv, seconds + LOAD_SLACK)
        c = parse_csv(out, err, "PUT")
        first = err.split("first error:", 1)[1].strip()[:200] if "first error:" in err else ""
        return Result(float(c[1]), float(c[2]), float(c[3]), int(c[6]), first, load, int(c[7]))
    argv = [args.hmdb_bench, "--port", str(port_or_eps), "--tests", "set", "--clients",
            str(clients), "--seconds", str(seconds), "--keyspace", str(args.keyspace),
            "--value-size", str(args.value_size), "--csv", "--quiet"]
    if system == "redis":
        argv += ["--wait-replicas", "1"]
    out, err = run_load(argv, seconds + LOAD_SLACK)
    c = parse_csv(out, err, "SET")
    first = err.split("first:", 1)[1].strip()[:200] if "first:" in err else ""
    return Result(float(c[1]), float(c[4]), float(c[5]), int(c[8]), first, load, int(c[9]))


def bench_run(args, port, test, clients, seconds):
    """One hmdb-bench run of `test` (set, get) against port: a Result."""
    load = loadavg()
    argv = [args.hmdb_bench, "--port", str(port), "--tests", test, "--clients", str(clients), "--seconds",
            str(seconds), "--keyspace", str(args.keyspace), "--value-size", str(args.value_size), "--csv", "--quiet"]
    out, err = run_load(argv, seconds + LOAD_SLACK)
    c = parse_csv(out, err, test.upper())
    first = err.split("first:", 1)[1].strip()[:200] if "first:" in err else ""
    return Result(float(c[1]), float(c[4]), float(c[5]), int(c[8]), first, load)


def make_system(args, system, root, run_tag):
    d = os.path.join(root, f"{system}-{run_tag}")
    os.makedirs(d)
    if system == "hmdb":
        return HmdbCluster(args, d, args.base_port)
    if system == "hmdb1":
        return HmdbSingle(args, d, args.base_port)
    if system == "etcd":
        return EtcdSystem(args, d, args.base_port + 20)
    return RedisGroup(args, d, args.base_port + 40, sentinels=(system == "sentinel"))


def part_throughput(args, root, report):
    systems = [s for s in ("hmdb", "hmdb1", "etcd", "redis") if s in args.only]
    results = {}  # (system, clients) -> [Result]
    failures = []
    for rep in range(args.runs):
        for system in systems:
            log(f"throughput run {rep + 1}/{args.runs}: {system} (load {loadavg()})")
            s = make_system(args, system, root, f"tp{rep}")
            try:
                s.start()
                target = s.leader_port() if system != "etcd" else f"127.0.0.1:{s.leader_port()}"
                for clients in args.clients:
                    try:
                        cpu_before = system_cpu_seconds(s)
                        r = measure_throughput(args, system, target, clients)
                        if r.requests:
                            r.server_cpu_us = 1e6 * (system_cpu_seconds(s) - cpu_before) / r.requests
                    except RuntimeError as e:
                        failures.append(f"{system} {clients} clients run {rep + 1}: {e}")
                        log(f"  FAILED: {e}")
                        continue
                    results.setdefault((system, clients), []).append(r)
                    log(f"  {system:5} {clients:3} clients: {r.rps:10,.0f} ops/s  p50 "
                        f"{r.p50:.2f} ms  p99 {r.p99:.2f} ms  server CPU {r.server_cpu_us or 0:.1f} us/write  "
                        f"errors {r.errors}  load {r.load}")
            except RuntimeError as e:
                failures.append(f"{system} run {rep + 1}: {e}")
                log(f"  FAILED: {e}")
            finally:
                s.stop()
                # Write back what this system left dirty now, not during the next one's run
                # (a single hmdb node measured right after the 3-node cluster once saw 6-8 ms
                # fdatasyncs and 8k SET/s instead of 50-80k).
                os.sync()

    label = {"hmdb": "hmdb 3 nodes (always)", "hmdb1": "hmdb 1 node (always, no replication: the ceiling)",
             "etcd": "etcd 3 nodes",
             "redis": "Redis + 2 replicas, AOF always, WAIT 1 0"}
    report.append(f"### Throughput: random-key SET, {args.value_size}-byte values, keyspace "
                  f"{args.keyspace:,}, {args.seconds:g} s per run, median of {args.runs}")
    report.append("")
    report.append("etcd load: bench/etcd/etcd-load (Go, Debian's clientv3, one gRPC connection "
                  "per client, puts to the leader); hmdb and Redis load: hmdb-bench "
                  "(Redis: --wait-replicas 1, i.e. SET then WAIT 1 0, counted when WAIT replies).")
    report.append("")
    report.append("| system | clients | ops/s (median) | runs ops/s | p50 ms | p99 ms | server CPU us per write "
                  "(all nodes; median, runs) | load avg | errors |")
    report.append("|---|---:|---:|---|---:|---:|---|---|---:|")
    med = {}
    p99 = {}
    cpu = {}
    for clients in args.clients:
        for system in systems:
            rs = results.get((system, clients), [])
            if not rs:
                report.append(f"| {label[system]} | {clients} | - | - | - | - | - | - | - |")
                continue
            med[(system, clients)] = statistics.median([r.rps for r in rs])
            p99[(system, clients)] = statistics.median([r.p99 for r in rs])
            cpus = [r.server_cpu_us for r in rs if r.server_cpu_us is not None]
            if cpus:
                cpu[(system, clients)] = statistics.median(cpus)
            report.append(
                f"| {label[system]} | {clients} | {med[(system, clients)]:,.0f} | "
                f"{' / '.join(f'{r.rps:,.0f}' for r in rs)} | "
                f"{statistics.median([r.p50 for r in rs]):.2f} | "
                f"{statistics.median([r.p99 for r in rs]):.2f} | "
                + (f"{cpu[(system, clients)]:.1f} ({' / '.join(f'{x:.1f}' for x in cpus)})" if cpus else "-") + " | "
                f"{' / '.join(r.load for r in rs)} | {sum(r.errors for r in rs)} |")
    report.append("")
    for clients in args.clients:
        parts = []
        h = med.get(("hmdb", clients))
        for other, goal, name in (("etcd", 20.0, "etcd"), ("redis", 3.0, "Redis+WAIT")):
            o = med.get((other, clients))
            if h and o:
                parts.append(f"hmdb/{name} {h / o:.2f}x ({'met' if h / o >= goal else 'MISSED'}, "
                             f"goal {goal:g}x)")
                hp, op = p99[("hmdb", clients)], p99[(other, clients)]
                parts.append(f"p99 {hp:.1f} vs {op:.1f} ms ({'lower: met' if hp < op else 'MISSED'})")
        # Issue 16, item 6: server CPU per acknowledged write, summed over the system's
        # processes; meaningful on a small machine where throughput is not.
        hc = cpu.get(("hmdb", clients))
        for other, goal, name in (("etcd", 0.1, "etcd"), ("redis", 0.5, "Redis+WAIT")):
            oc = cpu.get((other, clients))
            if hc and oc:
                parts.append(f"CPU per write hmdb/{name} {hc / oc:.2f} ({'met' if hc / oc <= goal else 'MISSED'}, "
                             f"goal <= {goal:g})")
        single = med.get(("hmdb1", clients))
        if h and single:
            parts.append(f"hmdb 3 nodes / 1 node {h / single:.2f}")
            o = med.get(("redis", clients))
            if o:
                parts.append(f"3x Redis+WAIT would be {3 * o:,.0f}/s = {3 * o / single:.2f}x the single node")
        if parts:
            report.append(f"- {clients} clients: " + "; ".join(parts))
    for system in systems:
        for clients in args.clients:
            for r in results.get((system, clients), []):
                if r.errors:
                    report.append(f"- {system} {clients} clients: {r.errors} errors, first: "
                                  f"{r.first_error}")
    if failures:
        report.append("")
        report.append("Failed runs:")
        report += [f"- {f}" for f in failures]
    report.append("")


def part_forward(args, root, report):
    """A follower's forwarding: latency and throughput of SET and GET sent to the leader and
    to a follower; the leader's throughput against a baseline build (docstring, forward)."""
    tests = ["set", "get"]
    many = max(args.clients)
    results = {}  # (target, test, clients) -> [Result]; target: leader, follower, baseline
    failures = []
    builds = [("this", args.hmdb)] + ([("baseline", args.baseline_hmdb)] if args.baseline_hmdb else [])
    for rep in range(args.runs):
        for build, binary in builds:
            log(f"forward run {rep + 1}/{args.runs}: {build} build (load {loadavg()})")
            bargs = argparse.Namespace(**vars(args))
            bargs.hmdb = binary
            s = HmdbCluster(bargs, os.path.join(root, f"fwd-{build}-{rep}"), args.base_port)
            os.makedirs(s.root)
            try:
                s.start()
                leader = s.wait_healthy()
                follower = next(i for i in range(s.size) if i != leader)
                targets = [("leader", leader), ("follower", follower)] if build == "this" else [("baseline", leader)]
                for test in tests:
                    for clients in ([1, many] if build == "this" else [many]):
                        for target, i in targets:
                            try:
                                r = bench_run(args, s.client_ports[i], test, clients, args.seconds)
                            except RuntimeError as e:
                                failures.append(f"{target} {test} {clients} clients run {rep + 1}: {e}")
                                log(f"  FAILED: {e}")
                                continue
                            results.setdefault((target, test, clients), []).append(r)
                            log(f"  {target:8} {test} {clients:3} clients: {r.rps:10,.0f} ops/s  p50 {r.p50:.3f} ms  "
                                f"p99 {r.p99:.3f} ms  errors {r.errors}  load {r.load}")
                if build == "this":
                    f = info_fields(s.client_ports[follower]) or {}
                    log(f"  follower forwarded {f.get('forwarded_commands', '?')} commands")
            except RuntimeError as e:
                failures.append(f"{build} run {rep + 1}: {e}")
                log(f"  FAILED: {e}")
            finally:
                s.stop()
                os.sync()

    def med(key, attr):
        rs = results.get(key, [])
        return statistics.median([getattr(r, attr) for r in rs]) if rs else None

    report.append(f"### Forwarding: a plain client on a follower (SET/GET, {args.value_size}-byte values, "
                  f"keyspace {args.keyspace:,}, {args.seconds:g} s per run, median of {args.runs})")
    report.append("")
    report.append("hmdb-bench as a plain client sent to the leader, or to a follower that forwards to the leader "
                  "(one extra loopback hop: the follower's link to the leader's client port).")
    report.append("")
    report.append("| test | clients | to | ops/s (median) | runs ops/s | p50 ms | p99 ms | load avg | errors |")
    report.append("|---|---:|---|---:|---|---:|---:|---|---:|")
    for test in tests:
        for clients in (1, many):
            for target in ("leader", "follower", "baseline"):
                rs = results.get((target, test, clients), [])
                if not rs:
                    continue
                name = {"leader": "leader", "follower": "follower (forwarded)",
                        "baseline": "leader, baseline build"}[target]
                report.append(f"| {test.upper()} | {clients} | {name} | {med((target, test, clients), 'rps'):,.0f} | "
                              f"{' / '.join(f'{r.rps:,.0f}' for r in rs)} | {med((target, test, clients), 'p50'):.3f} | "
                              f"{med((target, test, clients), 'p99'):.3f} | {' / '.join(r.load for r in rs)} | "
                              f"{sum(r.errors for r in rs)} |")
    report.append("")
    for test in tests:
        for clients in (1, many):
            lp, fp = med(("leader", test, clients), "p50"), med(("follower", test, clients), "p50")
            lr, fr = med(("leader", test, clients), "rps"), med(("follower", test, clients), "rps")
            if lp and fp:
                report.append(f"- {test.upper()}, {clients} client(s): forwarded p50 {fp:.3f} ms vs {lp:.3f} ms direct "
                              f"(+{(fp - lp) * 1000:.0f} us); ops/s {fr / lr:.2f}x of direct")
        br, tr = med(("baseline", test, many), "rps"), med(("leader", test, many), "rps")
        if br and tr:
            report.append(f"- {test.upper()}, {many} clients on the leader: this build {tr:,.0f} ops/s vs baseline "
                          f"{br:,.0f} ({tr / br:.3f}x)")
    if failures:
        report.append("")
        report.append("Failed runs:")
        report += [f"- {f}" for f in failures]
    report.append("")


class FollowClient:
    """A load client in follow/failover mode, kept running across the kills; answers marks."""

    def __init__(self, argv, log_path):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(log_path, "ab"), text=True, bufsize=1)
        track(self.proc, argv[0])
        self.answers = {}
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            parts = line.split()
            if len(parts) == 5 and parts[0] == "first":
                with self.cond:
                    self.answers[int(parts[1])] = (int(parts[2]), int(parts[3]), parts[4])
                    self.cond.notify_all()

    def mark(self, t):
        self.proc.stdin.write(f"mark {t}\n")
        self.proc.stdin.flush()

    def wait_answer(self, t, timeout):
        with self.cond:
            self.cond.wait_for(lambda: t in self.answers or self.proc.poll() is not None,
                               timeout)
            return self.answers.get(t)

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=STOP_GRACE + 5)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            pass
        stop_process(self.proc)


def failover_client(args, system, s, log_path):
    if system == "etcd":
        argv = [args.etcd_load, "--mode", "failover", "--endpoints", ",".join(s.endpoints()),
                "--clients", str(FAILOVER_CLIENTS), "--keyspace", str(args.keyspace),
                "--value-size", str(args.value_size)]
    else:
        argv = [args.hmdb_bench, "--tests", "set", "--clients", str(FAILOVER_CLIENTS),
                "--seconds", "86400", "--keyspace", str(args.keyspace), "--value-size",
                str(args.value_size), "--request-timeout-ms", str(FAILOVER_REQUEST_TIMEOUT_MS),
                "--quiet"]
        if system == "hmdb":
            argv += ["--nodes", ",".join(s.endpoints())]
        else:
            argv += ["--sentinel", ",".join(f"127.0.0.1:{p}" for p in s.sentinel_ports)]
    return FollowClient(argv, log_path)


def part_failover(args, root, report):
    systems = [s for s in ("hmdb", "etcd", "sentinel") if s in args.only]
    rows = []
    for system in systems:
        log(f"failover: {system}, {args.kills} kills (load {loadavg()})")
        s = make_system(args, system, root, "fo")
        times, notes, loads = [], [], []
        client = None
        try:
            s.start()
            client = failover_client(args, system, s, os.path.join(root, f"{system}-fo-client.log"))
            time.sleep(FAILOVER_SETTLE * 2)
            last_kill = 0.0
            for k in range(args.kills):
                if system == "sentinel":  # a Sentinel will not fail over again sooner
                    gap = 2 * SENTINEL_FAILOVER_TIMEOUT_MS / 1000 + 0.5
                    time.sleep(max(0.0, last_kill + gap - time.monotonic()))
                victim = wait_until(s.leader, HEALTHY_TIMEOUT, f"{system} leader")
                load = loadavg()
                t_kill = time.monotonic_ns()
                last_kill = time.monotonic()
                s.kill9(victim)
                t_dead = time.monotonic_ns()
                client.mark(t_dead)
                answer = client.wait_answer(t_dead, FAILOVER_TIMEOUT)
                if answer is None:
                    notes.append(f"kill {k + 1}: no successful write within "
                                 f"{FAILOVER_TIMEOUT:.0f} s")
                    log(f"  kill {k + 1}: NO RECOVERY within {FAILOVER_TIMEOUT:.0f} s")
                else:
                    sent, done, where = answer
                    ms = (done - t_kill) / 1e6
                    times.append(ms)
                    loads.append(load)
                    log(f"  kill {k + 1}: node {victim + 1} killed; first write after "
                        f"{ms:.0f} ms (to {where}; reaped after {(t_dead - t_kill) / 1e6:.1f} ms)"
                        f"  load {load}")
                s.restart(victim)
                s.wait_caught_up(victim)
                time.sleep(FAILOVER_SETTLE)
        except RuntimeError as e:
            notes.append(f"aborted: {e}")
            log(f"  FAILED: {e}")
        finally:
            if client is not None:
                client.close()
            s.stop()
        if system == "sentinel":
            try:
                with open(os.path.join(s.root, "sentinel1.log"), errors="replace") as f:
                    switches = sum(1 for line in f if "+switch-master" in line)
                if switches > len(times) + len([n for n in notes if n.startswith("kill")]):
                    notes.append(f"{switches} master switches for {args.kills} kills: Sentinel "
                                 f"also failed over a live but busy master")
            except OSError:
                pass
        rows.append((system, times, notes, loads))

    report.append(f"### Failover: kill -9 of the leader while {FAILOVER_CLIENTS} clients write "
                  f"(time from the kill to the first successful write sent after the killed "
                  f"process was reaped)")
    report.append("")
    report.append("hmdb: default election settings, hmdb-bench follow mode (follows -MOVED, tries "
                  "the next node on a lost connection or -CLUSTERDOWN, "
                  f"{FAILOVER_REQUEST_TIMEOUT_MS} ms request timeout); etcd 3.4 defaults "
                  f"(election 1000 ms, heartbeat 100 ms), etcd-load failover mode (clientv3 over "
                  f"all endpoints, {FAILOVER_REQUEST_TIMEOUT_MS} ms per put); Redis: 3 Sentinels, "
                  f"down-after {SENTINEL_DOWN_AFTER_MS} ms, failover-timeout "
                  f"{SENTINEL_FAILOVER_TIMEOUT_MS} ms, quorum 2, hmdb-bench --sentinel (plain SET).")
    report.append("")
    report.append("| system | kills measured | median ms | max ms | min ms | all (ms) | load avg at kills |")
    report.append("|---|---:|---:|---:|---:|---|---|")
    label = {"hmdb": "hmdb 3 nodes", "etcd": "etcd 3 nodes", "sentinel": "Redis Sentinel"}
    for system, times, notes, loads in rows:
        if times:
            report.append(f"| {label[system]} | {len(times)} | {statistics.median(times):.0f} | "
                          f"{max(times):.0f} | {min(times):.0f} | "
                          f"{', '.join(f'{t:.0f}' for t in times)} | "
                          f"{min(loads, key=float)}-{max(loads, key=float)} |")
        else:
            report.append(f"| {label[system]} | 0 | - | - | - | - | - |")
    for system, times, notes, loads in rows:
        for n in notes:
            report.append(f"- {system}: {n}")
        if system == "hmdb" and times:
            med, mx = statistics.median(times), max(times)
            report.append(f"- hmdb goal (median <= 400 ms, max <= 1000 ms): "
                          f"{'met' if med <= 400 and mx <= 1000 else 'MISSED'}")
    report.append("")


def part_elections(args, root, report):
    if "hmdb" not in args.only:
        return
    log(f"elections: hmdb, {args.election_seconds:g} s full load (load {loadavg()})")
    s = make_system(args, "hmdb", root, "el")
    seen = []
    line = None
    try:
        s.start()
        lead = s.leader()
        before = s.info(lead)
        stop = threading.Event()

        def poll():
            while not stop.is_set():
                for i in range(s.size):
                    f = s.info(i)
                    if f and f.get("role") == "leader":
                        key = (f.get("term"), f.get("node_id"))
                        if not seen or seen[-1] != key:
                            seen.append(key)
                stop.wait(POLL_INTERVAL)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        load = loadavg()
        try:
            r = measure_throughput(args, "hmdb", s.client_ports[lead], max(args.clients),
                                   args.election_seconds)
        finally:
            stop.set()
            poller.join()
        after_lead = s.wait_healthy()
        after = s.info(after_lead)
        changes = len(seen) - 1
        line = (f"hmdb, {max(args.clients)} clients, {args.election_seconds:g} s of SET at "
                f"{r.rps:,.0f} ops/s (p99 {r.p99:.1f} ms, load {load}): term {before['term']} -> "
                f"{after['term']}, leader node {before['node_id']} -> {after['node_id']}, "
                f"leader changes seen by polling every {POLL_INTERVAL:g} s: {changes} "
                f"({'none: met' if changes == 0 and before['term'] == after['term'] else 'MISSED'})")
    except RuntimeError as e:
        line = f"hmdb elections run failed: {e}"
    finally:
        s.stop()
    log("  " + line)
    report.append("### No needless elections")
    report.append("")
    report.append("- " + line)
    report.append("")


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def snapshot_log_lines(log_path):
    """The new node's own lines about the snapshot it received (how long install took)."""
    try:
        with open(log_path, errors="replace") as f:
            return [line.strip() for line in f if "snapshot:" in line and
                    ("receiving" in line or "installed" in line)]
    except OSError:
        return []


def latest_snapshot_bytes(path):
    """Size of the newest complete snapshot (snap-<index>.hmsnap, docs/formats.md) under path."""
    best = (-1, 0)
    for dirpath, _, files in os.walk(path):
        for f in files:
            if f.startswith("snap-") and f.endswith(".hmsnap"):
                try:
                    index = int(f[len("snap-"):-len(".hmsnap")])
                    size = os.path.getsize(os.path.join(dirpath, f))
                except (ValueError, OSError):
                    continue
                best = max(best, (index, size))
    return best[1]


def dir_bytes(path, name_part=None):
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            if name_part is None or name_part in f:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except OSError:
                    pass
    return total


def part_catchup(args, root, report):
    if "hmdb" not in args.only:
        return
    log(f"catch-up: hmdb, {args.catchup_keys:,} keys x {args.catchup_value_size} B "
        f"(load {loadavg()})")
    s = make_system(args, "hmdb", root, "cu")
    new_proc = None
    try:
        s.start()
        lead = s.leader()
        port = s.client_ports[lead]
        term_before = s.term()
        t0 = time.monotonic()
        # Follow mode (--nodes), so that the fill goes on if the leader changes meanwhile
        # (which is reported); stdin stays open until it is done (EOF would end it).
        out, err = run_follow_load([args.hmdb_bench, "--nodes", ",".join(s.endpoints()),
                                    "--tests", "set", "--sequential", "--keyspace",
                                    str(args.catchup_keys), "--requests", str(args.catchup_keys),
                                    "--value-size", str(args.catchup_value_size),
                                    "--clients", str(CATCHUP_FILL_CLIENTS), "--pipeline",
                                    str(args.catchup_pipeline), "--csv", "--quiet"],
                                   CATCHUP_TIMEOUT)
        unknown = re.search(r"(\d+) requests unknown", err)
        unknown = int(unknown.group(1)) if unknown else 0
        fill_s = time.monotonic() - t0
        fill_errors = int(parse_csv(out, err, "SET")[8])
        first = err.split("first:", 1)[1].strip()[:120] if "first:" in err else ""
        # The leader may have changed during the fill (a finding in itself): go on with the
        # current one.
        lead = s.wait_healthy()
        port = s.client_ports[lead]
        term_after = s.term()
        keys = command(port, "DBSIZE")
        rss_mib = rss_bytes(s.procs[lead].pid) / 2**20
        reply = command(port, "SNAPSHOT", timeout=CATCHUP_TIMEOUT)
        if isinstance(reply, RespError):
            raise RuntimeError(f"SNAPSHOT: {reply}")
        snapshot_lead = lead
        lead = s.wait_healthy()  # writing a big snapshot may have cost the leadership
        port = s.client_ports[lead]
        term_after_snapshot = s.term()
        if lead != snapshot_lead or term_after_snapshot != term_after:
            fill_errors_note = (f"; **leader changed during SNAPSHOT** (node {snapshot_lead + 1}"
                                f" -> {lead + 1}, term {term_after} -> {term_after_snapshot})")
        else:
            fill_errors_note = ""
        lead_dir = os.path.join(s.root, f"n{lead + 1}")
        snap_bytes = latest_snapshot_bytes(lead_dir)
        new_id, new_client, new_peer = 4, args.base_port + 4, args.base_port + 14
        argv = s.argv(3, join=True, client_port=new_client, peer_port=new_peer)
        new_proc = spawn(argv, os.path.join(s.root, "n4.log"), "hmdb n4")
        wait_until(lambda: info_fields(new_client) is not None or new_proc.poll() is not None,
                   START_TIMEOUT, "the new node to answer INFO")
        if new_proc.poll() is not None:
            raise RuntimeError(f"the new node exited: see {s.root}/n4.log")
        load = loadavg()
        t_add = time.monotonic()
        for attempt in range(ADDLEARNER_TRIES):  # follow a leader change
            reply = command(port, "CLUSTER", "ADDLEARNER", new_id, f"127.0.0.1:{new_client}",
                            f"127.0.0.1:{new_peer}", timeout=CATCHUP_TIMEOUT)
            if not (isinstance(reply, RespError) and
                    reply.startswith(("MOVED", "CLUSTERDOWN"))):
                break
            lead = s.wait_healthy()
            port = s.client_ports[lead]
        if isinstance(reply, RespError):
            raise RuntimeError(f"CLUSTER ADDLEARNER: {reply}")
        # Committed now, so this covers the state and the membership entry that added it.
        target = int(s.info(lead)["commit_index"])

        def caught_up():
            if new_proc.poll() is not None:
                raise RuntimeError(f"the new node exited: see {s.root}/n4.log")
            f = info_fields(new_client)
            return f is not None and int(f.get("applied_index", -1)) >= target
        wait_until(caught_up, CATCHUP_TIMEOUT, "the new node to catch up")
        secs = time.monotonic() - t_add
        received = dir_bytes(os.path.join(s.root, "n4"))
        # What the new node says it received, else the leader's snapshot file, else its dir.
        logged = [int(m.group(1)) for l in snapshot_log_lines(os.path.join(s.root, "n4.log"))
                  for m in [re.search(r"installed .*\((\d+) bytes\)", l)] if m]
        size = (logged[-1] if logged else 0) or snap_bytes or received
        fill_note = (f"; fill ({CATCHUP_FILL_CLIENTS} clients, pipeline {args.catchup_pipeline}): "
                     f"{fill_errors:,} error replies, {unknown:,} unknown (connection dropped)"
                     f"{' (first: ' + first + ')' if fill_errors else ''}, term {term_before} -> "
                     f"{term_after}" + (" **leader changed during the fill**"
                                        if term_before != term_after else ""))
        line = (f"state {keys} keys (of {args.catchup_keys:,} written) x "
                f"{args.catchup_value_size} B (leader RSS {rss_mib:,.0f} MiB, filled in "
                f"{fill_s:.0f} s{fill_note}{fill_errors_note}), leader snapshot {snap_bytes / 2**20:,.0f} MiB, new "
                f"node's data dir after catch-up {received / 2**20:,.0f} MiB: ADDLEARNER -> "
                f"applied_index {target} in {secs:.1f} s: {size / 2**20:,.0f} MiB (snapshot "
                f"received) / {secs:.1f} s = {size / 2**20 / secs:,.0f} MiB/s "
                f"(load {load})")
        for l in snapshot_log_lines(os.path.join(s.root, "n4.log")):
            line += f"\n  - new node: `{l}`"
    except (RuntimeError, OSError) as e:
        line = f"hmdb catch-up run failed: {e}"
    finally:
        stop_process(new_proc)
        s.stop()
    log("  " + line)
    report.append("### Catch-up of a new node (snapshot + log)")
    report.append("")
    report.append("- " + line)
    report.append("")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run of 2 s, 3 kills")
    parser.add_argument("--only", default=",".join(SYSTEMS), help="subset of " + ",".join(SYSTEMS))
    parser.add_argument("--parts", default=",".join(PARTS), help="subset of " + ",".join(PARTS))
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--hmdb", help="server binary (default BUILD/apps/kv/hmdb)")
    parser.add_argument("--hmdb-bench", help="load generator (default BUILD/bench/hmdb-bench)")
    parser.add_argument("--hmdb-flags", default="", help="extra flags for every hmdb node")
    parser.add_argument("--baseline-hmdb", help="forward part: an hmdb binary from before forwarding, whose "
                                                "leader throughput is measured next to this build's")
    parser.add_argument("--etcd-load", help="etcd load client (default BUILD/bench/etcd-load, "
                                            "built by bench/etcd/build.sh if missing)")
    parser.add_argument("--etcd", default="etcd")
    parser.add_argument("--redis-server", default="redis-server")
    parser.add_argument("--runs", type=int, help="throughput repetitions (default 3, quick 1)")
    parser.add_argument("--seconds", type=float, help="seconds per throughput run (5, quick 2)")
    parser.add_argument("--clients", default="50,100")
    parser.add_argument("--keyspace", type=int, default=1000000)
    parser.add_argument("--value-size", type=int, default=3)
    parser.add_argument("--kills", type=int, help="failover kills per system (10, quick 3)")
    parser.add_argument("--election-seconds", type=float, help="full-load run (60, quick 5)")
    parser.add_argument("--catchup-keys", type=int, help="keys (1,000,000; quick 50,000)")
    parser.add_argument("--catchup-value-size", type=int, default=1024)
    parser.add_argument("--catchup-pipeline", type=int, default=1,
                        help="pipeline depth of the fill (at 16 with 1 KiB values the leader "
                             "lost its quorum contact and stepped down at 04:27 UTC)")
    parser.add_argument("--base-port", type=int, default=7700,
                        help="hmdb base+1..3 (peers +11..13, new node +4/+14, single node +5), etcd base+21.., "
                             "Redis base+41.., Sentinels base+51..")
    parser.add_argument("--tmp-root", default=None, help="where data directories go (a real disk)")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (data and logs) for a post-mortem")
    args = parser.parse_args()

    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.kills = args.kills or (3 if args.quick else 10)
    args.election_seconds = args.election_seconds or (5.0 if args.quick else 60.0)
    args.catchup_keys = args.catchup_keys or (50000 if args.quick else 1000000)
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.only = [s for s in args.only.split(",") if s]
    args.parts = [p for p in args.parts.split(",") if p]
    args.hmdb_flags = args.hmdb_flags.split()
    for s in args.only:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s}")
    for p in args.parts:
        if p not in PARTS:
            parser.error(f"unknown part {p}")
    args.hmdb = args.hmdb or os.path.join(args.build_dir, "apps", "kv", "hmdb")
    args.hmdb_bench = args.hmdb_bench or os.path.join(args.build_dir, "bench", "hmdb-bench")
    args.etcd_load = args.etcd_load or os.path.join(args.build_dir, "bench", "etcd-load")
    if any(s in args.only for s in ("hmdb", "hmdb1", "redis", "sentinel")) and \
            not os.access(args.hmdb_bench, os.X_OK):
        parser.error(f"{args.hmdb_bench} not found: build the hmdb-bench target first")
    if any(s in args.only for s in ("hmdb", "hmdb1")) and not os.access(args.hmdb, os.X_OK):
        parser.error(f"{args.hmdb} not found (build target hmdb, or --hmdb, or --only without hmdb)")
    if "etcd" in args.only:
        if shutil.which(args.etcd) is None:
            parser.error("etcd not found: scripts/install-bench-deps.sh")
        if not os.access(args.etcd_load, os.X_OK):
            log(f"building {args.etcd_load} (bench/etcd/build.sh)")
            subprocess.run([os.path.join(os.path.dirname(os.path.abspath(__file__)), "etcd",
                                         "build.sh"), args.etcd_load], check=True)
    if shutil.which(args.redis_server) is None and \
            any(s in args.only for s in ("redis", "sentinel")):
        parser.error("redis-server not found: scripts/install-deps.sh")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    root = tempfile.mkdtemp(prefix="hmdb-cluster-bench-", dir=args.tmp_root)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = loadavg()
    report = []
    try:
        if "throughput" in args.parts:
            part_throughput(args, root, report)
        if "failover" in args.parts:
            part_failover(args, root, report)
        if "elections" in args.parts:
            part_elections(args, root, report)
        if "catchup" in args.parts:
            part_catchup(args, root, report)
        if "forward" in args.parts:
            part_forward(args, root, report)
    finally:
        for pid in list(children):
            log(f"stopping leftover process {pid} ({children[pid]})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    etcd_version = ""
    if "etcd" in args.only:
        etcd_version = subprocess.run([args.etcd, "--version"], capture_output=True,
                                      text=True).stdout.split("\n")[0]
    redis_version = subprocess.run([args.redis_server, "--version"], capture_output=True,
                                   text=True).stdout.split()[2:3]
    built = ""
    if "hmdb" in args.only:
        mtime = datetime.datetime.fromtimestamp(os.path.getmtime(args.hmdb),
                                                datetime.timezone.utc)
        built = f" (hmdb binary built {mtime:%H:%M} UTC)"
    header = (f"Cluster benchmark {started:%Y-%m-%d %H:%M} UTC, commit {commit or '?'}{built}, "
              f"{os.cpu_count()} CPUs, load average before {load_before}, after {loadavg()}; "
              f"systems {','.join(args.only)}; {etcd_version}; Redis {' '.join(redis_version)}"
              f"{'; QUICK run' if args.quick else ''}")
    text = "\n".join([header, ""] + report)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        log(f"bench/cluster_bench.py: {e}")
        sys.exit(1)
