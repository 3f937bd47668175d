"""bench/etcd/etcd_cluster.py — starts a 3-node etcd cluster on 127.0.0.1 for the benchmarks.

Used by bench/cluster_bench.py (import) and by hand:
    python3 bench/etcd/etcd_cluster.py [--base-port 7470] [--dir DIR]
starts the cluster, prints the endpoints and the leader, and stops it on Ctrl-C.

Debian's etcd-server (3.4) with its defaults (heartbeat 100 ms, election timeout 1000 ms,
fsync of the WAL before every acknowledged write). Node i (1..3) serves clients on
base+i and peers on base+10+i; data goes to DIR/n<i>. Status (leader, raft indexes) comes
from the HTTP/JSON gateway, POST /v3/maintenance/status, so no client library is needed
here. Every process is stopped by PID.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

# How long a node may take to answer its status endpoint.
STATUS_TIMEOUT = 1.0
# How long the cluster may take to elect a leader that every live node agrees on.
HEALTHY_TIMEOUT = 60.0
# SIGTERM grace before SIGKILL when stopping a node.
STOP_GRACE = 10.0
# A restarted node counts as caught up when its applied index is within this many entries
# of the leader's commit index sampled just before (the load keeps writing meanwhile).
CATCH_UP_SLACK = 0


def stop_process(proc, grace=STOP_GRACE):
    """SIGTERM, then SIGKILL after `grace` seconds; reaps the process. Shared with
    bench/cluster_bench.py."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass


class EtcdCluster:
    def __init__(self, root, base_port=7470, etcd="etcd", size=3, on_spawn=None,
                 on_reap=None):
        self.root = root
        self.etcd = etcd
        self.size = size
        self.client_ports = [base_port + i for i in range(1, size + 1)]
        self.peer_ports = [base_port + 10 + i for i in range(1, size + 1)]
        self.procs = [None] * size
        # Callbacks so that a caller can track every child process (to kill leftovers).
        self.on_spawn = on_spawn or (lambda proc, what: None)
        self.on_reap = on_reap or (lambda proc: None)

    def name(self, i):
        return f"n{i + 1}"

    def endpoints(self):
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def argv(self, i):
        initial = ",".join(f"{self.name(j)}=http://127.0.0.1:{self.peer_ports[j]}"
                           for j in range(self.size))
        return [self.etcd, "--name", self.name(i),
                "--data-dir", os.path.join(self.root, self.name(i)),
                "--listen-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.client_ports[i]}",
                "--listen-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer_ports[i]}",
                "--initial-cluster", initial, "--initial-cluster-token", "hmdb-bench",
                "--initial-cluster-state", "new", "--logger", "zap",
                "--log-outputs", "stderr"]

    def start_node(self, i):
        log = open(os.path.join(self.root, f"{self.name(i)}.log"), "ab")
        proc = subprocess.Popen(self.argv(i), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        log.close()
        self.procs[i] = proc
        self.on_spawn(proc, f"etcd {self.name(i)}")

    def start(self):
        for i in range(self.size):
            self.start_node(i)
        self.wait_healthy()

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def kill9(self, i):
        """SIGKILL node i and reap it. Returns once the process is gone."""
        proc = self.procs[i]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.on_reap(proc)

    def stop_node(self, i):
        proc = self.procs[i]
        if proc is None:
            return
        stop_process(proc)
        self.on_reap(proc)
        self.procs[i] = None

    def stop(self):
        for i in range(self.size):
            self.stop_node(i)

    def pid(self, i):
        return self.procs[i].pid

    def status(self, i):
        """The node's /v3/maintenance/status as a dict, or None if it does not answer."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.client_ports[i]}"
                                     "/v3/maintenance/status", data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=STATUS_TIMEOUT) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def leader(self):
        """Index of the node every live node names as leader, or None."""
        named = set()
        ids = {}
        for i in range(self.size):
            if not self.alive(i):
                continue
            s = self.status(i)
            if s is None:
                return None
            ids[s["header"]["member_id"]] = i
            named.add(s.get("leader", "0"))
        if len(named) != 1:
            return None
        return ids.get(named.pop())

    def term(self):
        i = self.leader()
        s = self.status(i) if i is not None else None
        return int(s["raftTerm"]) if s else None

    def wait_healthy(self, timeout=HEALTHY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(self.size):
                if self.procs[i] is not None and not self.alive(i):
                    raise RuntimeError(f"etcd {self.name(i)} exited: see "
                                       f"{os.path.join(self.root, self.name(i))}.log")
            if self.leader() is not None:
                return self.leader()
            time.sleep(0.05)
        raise RuntimeError(f"etcd: no agreed leader within {timeout:.0f} s")

    def wait_caught_up(self, i, timeout=HEALTHY_TIMEOUT):
        """Waits until node i has applied what the leader had committed when we asked."""
        deadline = time.monotonic() + timeout
        target = None
        while time.monotonic() < deadline:
            lead = self.leader()
            if lead is not None and target is None:
                s = self.status(lead)
                target = int(s["raftIndex"]) if s else None
            s = self.status(i)
            if target is not None and s is not None:
                applied = int(s.get("raftAppliedIndex", s["raftIndex"]))
                if applied + CATCH_UP_SLACK >= target:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"etcd {self.name(i)} did not catch up within {timeout:.0f} s")


def main():
    parser = argparse.ArgumentParser(description="start a 3-node etcd cluster on 127.0.0.1")
    parser.add_argument("--base-port", type=int, default=7470)
    parser.add_argument("--dir", help="data directory (default: a new temporary one)")
    args = parser.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="hmdb-etcd-")
    os.makedirs(root, exist_ok=True)
    cluster = EtcdCluster(root, args.base_port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        cluster.start()
        print(f"etcd cluster up: endpoints {','.join(cluster.endpoints())}, leader "
              f"{cluster.name(cluster.leader())}, data and logs in {root}. Ctrl-C stops it.",
              flush=True)
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
