"""A real Redis Cluster of 3 masters and 3 replicas (Debian's redis-server), as a failover
target for clients.run_failover: the same apps, killed the same way (kill -9 of the master
that serves the app's keys), for bench/client_failover.py's comparison.

Each node: 127.0.0.1, its own port and directory, cluster-enabled, appendonly with
appendfsync always (every write fsynced before the reply, as hmdb's default durability),
cluster-node-timeout NODE_TIMEOUT_MS, cluster-replica-validity-factor 0 (a replica fails
over however long ago it last heard from its master, as a test wants). A killed master is restarted on its directory and
rejoins as a replica of the replica that took over. Redis replicates asynchronously, so a
failover may lose acknowledged writes: run_failover reports them, this target does not hide
them.
"""

import os
import signal
import subprocess
import time

import clients

# Redis' failure detection: a master unreachable this long is marked failing, and its
# replica starts an election (after a further 500 ms + up to 500 ms of random delay).
# Redis' default is 15,000 ms; 1,000 ms is as low as is reasonable on a loaded 2-core machine.
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 60.0
POLL_S = 0.05


def key_slot(key):
    return clients.cl.key_slot(key)


class RedisNode:
    def __init__(self, work_dir, index):
        self.index = index
        self.port = clients.cl.free_port_on("127.0.0.1")
        self.bus_port = clients.cl.free_port_on("127.0.0.1")  # not port + 10000: may exceed 65535
        self.dir = os.path.join(work_dir, "redis%d" % index)
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None
        self.starts = 0

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def __repr__(self):
        return "redis%d(:%d)" % (self.index, self.port)

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.dir, "log-%d.txt" % self.starts), "wb")
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(self.bus_port),
             "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--cluster-replica-validity-factor", "0",
             "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--daemonize", "no", "--protected-mode", "no", "--logfile", ""],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if self.call("PING") == "PONG":
                    return
            except Exception:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise clients.TestFailure("%s did not start" % self)
            time.sleep(POLL_S)

    def call(self, *args):
        with clients.resp.Client("127.0.0.1", self.port, timeout=2.0) as c:
            return c.call(*args)

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


class RedisClusterTarget:
    name = "redis"

    def __init__(self, work_dir):
        self.nodes = [RedisNode(work_dir, i) for i in range(1, 7)]

    def start(self):
        for n in self.nodes:
            n.start()
        r = subprocess.run(["redis-cli", "--cluster", "create"] + [n.addr for n in self.nodes] +
                           ["--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise clients.TestFailure("redis-cli --cluster create failed: %s%s" % (r.stdout, r.stderr))
        self.wait_ok(self.nodes)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while sum(b"master_link_status:up" in n.call("INFO", "replication") for n in self.nodes) < 3:
            if time.monotonic() > deadline:
                raise clients.TestFailure("the replicas did not sync with their masters")
            time.sleep(POLL_S)

    def wait_ok(self, nodes):
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                if all(b"cluster_state:ok" in n.call("CLUSTER", "INFO") for n in nodes):
                    return
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise clients.TestFailure("the Redis Cluster is not ok after %.0f s" % READY_TIMEOUT_S)
            time.sleep(POLL_S)

    def live(self):
        return [n for n in self.nodes if n.proc.poll() is None]

    def seed_addr(self):
        return self.nodes[0].addr

    def all_addrs(self):
        return ",".join(n.addr for n in self.nodes)

    def master_of(self, slot):
        for n in self.live():
            try:
                for entry in n.call("CLUSTER", "SLOTS"):
                    if entry[0] <= slot <= entry[1]:
                        port = entry[2][1]
                        return next(x for x in self.nodes if x.port == port)
            except Exception:
                continue
        raise clients.TestFailure("no live node answered CLUSTER SLOTS")

    def victim(self):
        return self.master_of(key_slot("{fo}"))

    def kill(self, node):
        node.kill()

    def rejoin(self, node):
        """Restarts the killed master; it rejoins as a replica of the node that replaced it.
        Waits until every node says cluster_state:ok and it has synced with its master."""
        node.start()
        deadline = time.monotonic() + clients.REJOIN_TIMEOUT_S
        while True:
            try:
                info = node.call("INFO", "replication").decode()
                if "role:slave" in info and "master_link_status:up" in info:
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise clients.TestFailure("%s did not rejoin as a replica" % node)
            time.sleep(POLL_S)
        self.wait_ok(self.nodes)

    def read(self, key):
        return self.master_of(key_slot(key)).call("GET", key)

    def stop(self):
        for n in self.nodes:
            n.kill()

    def describe(self):
        return ("Redis %s Cluster, 3 masters + 3 replicas, cluster-node-timeout %d ms, appendfsync always"
                % (subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2],
                   NODE_TIMEOUT_MS))
