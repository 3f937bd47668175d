#!/usr/bin/env python3
# tests/clients/cluster_shapes_test.py — hmdb's cluster presents itself to clients as a real
# Redis Cluster of one shard does (issue 11, item 1): the same commands, sent to a 3-node hmdb
# cluster and to a Redis Cluster of one master and two replicas (Debian's redis-server) built
# here in the same run, must give replies of the same shape, in RESP2 and in RESP3, on the
# master/leader and on a replica/follower:
#
#   CLUSTER SLOTS, SHARDS        same types, aggregate sizes and map keys (shape); one slot
#                                range 0-16383 naming every node, the master first
#   CLUSTER NODES                one line per node, the same number of fields, the same flags
#                                (myself,master / slave / myself,slave), the master's slots
#   CLUSTER INFO                 the same keys; equal cluster_state, cluster_slots_*,
#                                cluster_known_nodes, cluster_size
#   CLUSTER MYID, KEYSLOT        shape; KEYSLOT's numbers equal (CRC16 with hash tags)
#   INFO cluster                 cluster_enabled:1
#   GET/SET on a replica         -MOVED <slot> <address of the master>, the same slot
#   READONLY, then GET           a replica serves the read
#
# Commands the Redis here does not know (Redis 7.0 has no CLUSTER MYSHARDID) are skipped and
# said. Node ids and addresses differ by nature and are compared by shape only.
#
#   cluster_shapes_test.py <hmdb binary>
#
# Needs redis-server; exits 77 (ctest: skipped) without it. Starts its own processes on
# loopback ports and stops exactly those.
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "apps"))

import clients  # noqa: E402  (tests/clients/clients.py: brings in tests/system/cluster.py as clients.cl)
import redis_cluster  # noqa: E402
from redis_compat_test import read_reply, shape, encode  # noqa: E402

cl = clients.cl

# Bounds of the waits below (each a poll of a real condition).
REDIS_READY_TIMEOUT_S = 60.0
POLL_S = 0.05
# Keys whose slots are compared: plain, hash-tagged, empty tag (the whole key hashes).
KEYS = ["foo", "{user1000}.following", "{}bar", "a{b}c{d}"]
# CLUSTER INFO fields whose values must be equal (the rest: present on both sides).
INFO_EQUAL = ["cluster_state", "cluster_slots_assigned", "cluster_slots_ok", "cluster_slots_pfail",
              "cluster_slots_fail", "cluster_known_nodes", "cluster_size"]


class TestFailure(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise TestFailure(what)


class Conn:
    """One raw connection: send words, read (raw, value) replies as the compat test does."""

    def __init__(self, port, host="127.0.0.1", protocol=2):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.f = self.sock.makefile("rb")
        if protocol == 3:
            _, v = self.call("HELLO", "3")
            expect(v[0] == b"%", "HELLO 3 on %s:%d: %r" % (host, port, v))

    def call(self, *words):
        self.sock.sendall(encode([str(w) for w in words]))
        return read_reply(self.f)

    def close(self):
        self.f.close()
        self.sock.close()


def one_master_redis(work):
    """A Redis Cluster of one master owning all 16384 slots and two replicas of it (as hmdb
    presents itself). redis-cli --cluster create wants three masters, so by hand: slots,
    MEET, REPLICATE."""
    nodes = [redis_cluster.RedisNode(work, i) for i in range(1, 4)]
    for n in nodes:
        n.start()
    master = nodes[0]
    expect(master.call("CLUSTER", "ADDSLOTSRANGE", "0", "16383") == "OK", "ADDSLOTSRANGE")
    for n in nodes[1:]:
        master.call("CLUSTER", "MEET", "127.0.0.1", str(n.port), str(n.bus_port))
    master_id = master.call("CLUSTER", "MYID").decode()
    deadline = time.monotonic() + REDIS_READY_TIMEOUT_S
    for n in nodes[1:]:
        while True:  # a node can replicate only a master it knows
            try:
                if n.call("CLUSTER", "REPLICATE", master_id) == "OK":
                    break
            except Exception:
                pass
            expect(time.monotonic() < deadline, "%s did not learn of the master" % n)
            time.sleep(POLL_S)
    while True:
        ok = True
        for n in nodes:
            info = n.call("CLUSTER", "INFO")
            ok = ok and b"cluster_state:ok" in info and b"cluster_known_nodes:3" in info
        ok = ok and all(b"master_link_status:up" in n.call("INFO", "replication") for n in nodes[1:])
        ok = ok and all(len(n.call("CLUSTER", "SLOTS")[0]) == 5 for n in nodes)  # gossip told all of the replicas
        if ok:
            return nodes
        expect(time.monotonic() < deadline, "the one-master Redis Cluster is not ok")
        time.sleep(POLL_S)


def text_of(value):
    kind, payload = value
    expect(kind in (b"$", b"="), "not a string: %r" % (value,))
    if kind == b"=":
        payload = payload[4:]  # verbatim: "txt:" then the text
    return payload.decode()


def nodes_lines(value):
    """CLUSTER NODES as [(field count, flags, slots)] sorted by flags."""
    out = []
    for line in text_of(value).strip().split("\n"):
        f = line.split(" ")
        out.append((len(f), f[2], " ".join(f[8:])))
    return sorted(out, key=lambda x: x[1])


def info_fields(value):
    """CLUSTER INFO's fields, less Redis' per-message-type bus counters
    (cluster_stats_messages_<type>_sent/received): Redis lists a type only once such a message
    went by (meet_sent only on the node that sent MEET), and hmdb has no gossip bus; the
    totals (cluster_stats_messages_sent/received) are compared."""
    fields = dict(line.split(":", 1) for line in text_of(value).strip().replace("\r", "").split("\n") if ":" in line)
    return {k: v for k, v in fields.items()
            if not (k.startswith("cluster_stats_messages_") and k.count("_") > 3)}


def unknown(value):
    return value[0] == b"-" and (b"unknown subcommand" in value[1].lower() or b"unknown command" in value[1].lower())


def compare(redis_conn, hmdb_conn, role, protocol, skipped):
    """Every comparison for one role and protocol; returns the number of replies compared."""
    where = "%s, RESP%d" % (role, protocol)
    compared = 0
    for words in (["CLUSTER", "SLOTS"], ["CLUSTER", "SHARDS"], ["CLUSTER", "MYID"], ["CLUSTER", "MYSHARDID"],
                  ["CLUSTER", "NODES"], ["CLUSTER", "INFO"]) + tuple(["CLUSTER", "KEYSLOT", k] for k in KEYS):
        _, r = redis_conn.call(*words)
        _, h = hmdb_conn.call(*words)
        name = " ".join(words)
        if unknown(r):
            skipped.add(name)
            continue
        compared += 1
        expect(shape(r) == shape(h), "%s (%s): shapes differ\n  redis %r\n  hmdb  %r" % (name, where, r, h))
        if words[1] == "KEYSLOT":
            expect(r == h, "%s (%s): redis %r, hmdb %r" % (name, where, r, h))
        elif words[1] == "NODES":
            expect(nodes_lines(r) == nodes_lines(h), "CLUSTER NODES (%s):\n  redis %r\n  hmdb  %r"
                   % (where, nodes_lines(r), nodes_lines(h)))
        elif words[1] == "INFO":
            ri, hi = info_fields(r), info_fields(h)
            expect(set(ri) == set(hi), "CLUSTER INFO (%s) keys: only redis %s, only hmdb %s"
                   % (where, sorted(set(ri) - set(hi)), sorted(set(hi) - set(ri))))
            for k in INFO_EQUAL:
                expect(ri[k] == hi[k], "CLUSTER INFO (%s) %s: redis %s, hmdb %s" % (where, k, ri[k], hi[k]))
        elif words[1] == "SLOTS":
            for v in (r, h):  # one range, all slots, every node (master first)
                ranges = v[1]
                expect(len(ranges) == 1 and ranges[0][1][0][1] == b"0" and ranges[0][1][1][1] == b"16383"
                       and len(ranges[0][1]) == 2 + 3, "CLUSTER SLOTS (%s): %r" % (where, v))
    _, ri = redis_conn.call("INFO", "cluster")
    _, hi = hmdb_conn.call("INFO", "cluster")
    expect("cluster_enabled:1" in text_of(ri) and "cluster_enabled:1" in text_of(hi),
           "INFO cluster (%s): %r / %r" % (where, ri, hi))
    compared += 1
    if role == "replica":
        for words in (["GET", "foo"], ["SET", "{user1000}.following", "x"]):
            _, r = redis_conn.call(*words)
            _, h = hmdb_conn.call(*words)
            expect(r[0] == h[0] == b"-" and r[1].split(b" ")[:2] == h[1].split(b" ")[:2],
                   "%s on a %s (%s): redis %r, hmdb %r" % (" ".join(words), role, where, r, h))
            compared += 1
        for conn in (redis_conn, hmdb_conn):
            _, ok = conn.call("READONLY")
            expect(ok == (b"+", b"OK"), "READONLY (%s): %r" % (where, ok))
        _, r = redis_conn.call("GET", "foo")
        _, h = hmdb_conn.call("GET", "foo")
        expect(r == h, "GET after READONLY (%s): redis %r, hmdb %r" % (where, r, h))
        compared += 1
    return compared


def redis_version():
    out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return "Redis " + out[2].split("=")[-1]


def main():
    if len(sys.argv) != 2:
        print(__doc__ or "usage: cluster_shapes_test.py <hmdb binary>")
        return 2
    if not shutil.which("redis-server"):
        print("skipped: redis-server not installed (apt-get install redis-server)")
        return 77
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="hmdb-cluster-shapes-")
    redis_nodes = []
    hmdb = None
    try:
        redis_nodes = one_master_redis(work)
        hmdb = cl.Cluster(binary, os.path.join(work, "hmdb"), nodes=3, cluster_id="hmdb-shapes")
        hmdb.start()
        leader = hmdb.wait_leader(cl.NODE_READY_TIMEOUT_S)
        follower = next(n for n in hmdb.nodes if n is not leader)
        # Every hmdb node knows every member's client address before the comparison.
        deadline = time.monotonic() + cl.NODE_READY_TIMEOUT_S
        while not all(len(n.call("CLUSTER", "SLOTS")[0]) == 5 for n in hmdb.nodes):
            expect(time.monotonic() < deadline, "hmdb's CLUSTER SLOTS did not name all three nodes")
            time.sleep(POLL_S)
        skipped = set()
        total = 0
        for protocol in (2, 3):
            for role, r_port, h_node in (("master", redis_nodes[0].port, leader),
                                         ("replica", redis_nodes[1].port, follower)):
                host, port = h_node.client_addr.rsplit(":", 1)
                rc, hc = Conn(r_port, protocol=protocol), Conn(int(port), host=host.strip("[]"), protocol=protocol)
                try:
                    total += compare(rc, hc, role, protocol, skipped)
                finally:
                    rc.close()
                    hc.close()
        print("cluster shapes: %d replies compared with a one-master Redis Cluster (%s), 0 different%s"
              % (total, redis_version(),
                 "; not known to this Redis, skipped: %s" % ", ".join(sorted(skipped)) if skipped else ""))
        return 0
    except TestFailure as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        for n in redis_nodes:
            n.kill()
        if hmdb is not None:
            hmdb.kill_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
