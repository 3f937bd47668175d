#!/usr/bin/env python3
"""Live updates (issue 14; docs/subscriptions.md): pub/sub from the replicated log, with real
server processes. Each case starts its own cluster (tests/system/cluster.py).

  fanout   3 nodes: a subscriber on every node (RESP2, and a RESP3 one on a follower) gets a
           PUBLISH sent to the leader and one sent to a follower (forwarded), once each;
           PUBLISH answers the leader's own receivers, as Redis answers its own.
  resume   3 nodes under a PUBLISH stream sent through a follower; a positioned subscriber
           (HMDB.SUBSCRIBE) on every node. The leader is killed -9, restarted, then a
           follower is killed -9 and restarted, mid-stream. A subscriber whose node dies
           resumes from its last position on another node. At the end a new subscriber reads
           the whole stream from position 0 (the committed log's events); every subscriber's
           messages must be exactly that stream after its start: each once, in order, with
           the same positions and terms; every acknowledged PUBLISH is in it.
  slow     1 node, --subscriber-output-bytes 64 KiB: a subscriber that stops reading while
           4 MiB of messages are published is ended with -SUBSCRIPTIONENDED naming the last
           position it was sent, after which the connection closes; every PUBLISH was
           answered (writers are not slowed); a resume from that position gets exactly the
           rest.
  snapshot 3 nodes, a follower stopped (SIGSTOP) with a positioned subscriber connected to it
           while the leader's log is compacted past it: once it runs again it installs the
           leader's snapshot, so it never applies the entries in between; its subscriber is
           ended with -SUBSCRIPTIONENDED naming the last position it got (nothing skipped
           silently), and a resume from there on the leader gets exactly the messages it missed.
  retain   1 node, --events-retain-bytes 64 KiB: a resume from before the retained events
           is refused with -OLDPOSITION naming the oldest position served; a resume from that
           position gets every retained event after it. The node starts with
           --notify-keyspace-events KEA: a SET is notified from the start.

  hostile  1 node, --subscriber-output-bytes 64 KiB: while 4 MiB of messages flow, subscribers
           misbehave: one never reads; one sends seeded random bytes; one sends half a RESP
           frame then nothing; one declares a 512 MB bulk, sends 1 MiB of it, then nothing;
           one declares a bulk of 10^11 bytes and one 2 million arguments (protocol errors:
           answered, closed); one subscribes to 100,001 channels (refused: the bound is
           100,000), then to exactly 100,000; one to 10,000 patterns of '*' and unclosed '['
           that match nothing. The node stays up, its RSS grows by at most
           HOSTILE_RSS_GROWTH_MAX (the declared bulks alone are 512 MB), each subscriber that
           does not read is ended as slow, and three honest subscribers (plain, positioned,
           pattern) get every message, in order; a plain client is served throughout.

Every wait is a bounded poll of a real condition. Usage: pubsub_test.py [--case NAME] [--keep]
HMDB_BINARY
"""

import argparse
import os
import random
import socket
import sys
import threading
import time

import cluster as cl
import harness
import resp

LEADER_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 30.0
# How long a subscriber may wait for the end of the stream once it was published.
END_TIMEOUT_S = 120.0
# Acknowledged PUBLISHes between two faults of the resume case.
PUBLISHES_BETWEEN_FAULTS = 300
CHANNEL = "stream"


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def wait_for(cond, timeout, what):
    """harness.wait_for at the cluster's poll interval."""
    return harness.wait_for(what, timeout, cond, cl.POLL_INTERVAL_S)


def info_all(node):
    return cl.parse_info(node.call("INFO", "all"))


def parse_position(text):
    index, _, ordinal = text.partition("-")
    return (int(index), int(ordinal) if ordinal else float("inf"))


# ---- case fanout -------------------------------------------------------------------------

def case_fanout(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    followers = [n for n in c.nodes if n is not leader]
    subs = []
    for node in c.nodes:
        s = node.client(REPLY_TIMEOUT_S)
        expect(s.call("SUBSCRIBE", "fan") == [b"subscribe", b"fan", 1], "%s: SUBSCRIBE" % node)
        subs.append((node, s))
    # A RESP3 subscriber: confirmations and messages are push frames (checked as bytes).
    raw = socket.create_connection((followers[0].ip, followers[0].client_port), timeout=REPLY_TIMEOUT_S)
    raw.sendall(resp.encode_command(["HELLO", "3"]) + resp.encode_command(["SUBSCRIBE", "fan"]))
    with leader.client() as p:
        expect(p.call("PUBLISH", "fan", "from-leader") == 1, "the leader counts its own subscriber only")
    with followers[1].client() as p:
        expect(p.call("PUBLISH", "fan", "via-follower") == 1, "a forwarded PUBLISH is answered by the leader")
    for node, s in subs:
        got = [s.read_reply(), s.read_reply()]
        expect(got == [[b"message", b"fan", b"from-leader"], [b"message", b"fan", b"via-follower"]],
               "%s delivered %r" % (node, got))
        s.close()
    want = (b">3\r\n$9\r\nsubscribe\r\n$3\r\nfan\r\n:1\r\n>3\r\n$7\r\nmessage\r\n$3\r\nfan\r\n$11\r\nfrom-leader\r\n"
            b">3\r\n$7\r\nmessage\r\n$3\r\nfan\r\n$12\r\nvia-follower\r\n")
    got = b""
    while not got.endswith(want):
        chunk = raw.recv(65536)
        expect(chunk, "the RESP3 subscriber's connection closed: %r" % got)
        got += chunk
    raw.close()
    infos = {n: info_all(n) for n in c.nodes}
    for n, info in infos.items():
        expect(int(info["pubsub_events"]) >= 2, "%s emitted no events: %s" % (n, info["pubsub_events"]))
    print("fanout: 2 messages to 4 subscribers on 3 nodes, each once")


# ---- case resume -------------------------------------------------------------------------

class Publisher(threading.Thread):
    """Publishes m0, m1, ... one at a time through a node, moving to another when it dies."""

    def __init__(self, c, first):
        super().__init__(daemon=True)
        self.c = c
        self.node = first
        self.acked = []
        self.unknown = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        seq = 0
        cli = None
        try:
            while not self.stop.is_set():
                try:
                    if cli is None:
                        cli = self.node.client(REPLY_TIMEOUT_S)
                    payload = "m%d" % seq
                    seq += 1
                    r = cli.call("PUBLISH", CHANNEL, payload)
                    if isinstance(r, int):
                        self.acked.append(payload)
                    else:
                        self.unknown.append(payload)  # outcome unknown, no leader, ...: maybe applied
                        time.sleep(cl.POLL_INTERVAL_S)
                except resp.ConnectionLost:
                    self.unknown.append(payload)
                    if cli is not None:
                        cli.close()
                    cli = None
                    self.node = next_running(self.c, self.node)
                    time.sleep(cl.POLL_INTERVAL_S)
        except Exception as e:  # noqa: BLE001 — reported by the main thread
            self.error = e
        finally:
            if cli is not None:
                cli.close()


def next_running(c, after):
    """The next node after `after` (in id order, wrapping) that runs; `after` if none does."""
    ids = [n.id for n in c.nodes]
    start = ids.index(after.id)
    for k in range(1, len(ids) + 1):
        n = c.nodes[(start + k) % len(ids)]
        if n.state() == cl.Node.RUNNING:
            return n
    return after


class Subscriber(threading.Thread):
    """HMDB.SUBSCRIBE from `start` on a node; on a lost connection or an ended subscription,
    resumes from the last position it received on the next running node. Stops at `end`."""

    def __init__(self, c, home, start="$", end=b"end", timeout=600.0):
        super().__init__(daemon=True)
        self.c = c
        self.node = home
        self.position = start
        self.end = end
        self.got = []  # (position text, term, payload)
        self.start_position = None
        self.resumes = 0
        self.nodes_used = [home.id]
        self.error = None
        self.timeout = timeout

    def run(self):
        deadline = time.monotonic() + self.timeout
        try:
            while time.monotonic() < deadline:
                cli = None
                try:
                    cli = resp.Client(self.node.ip, self.node.client_port, timeout=REPLY_TIMEOUT_S)
                    confirm = cli.call("HMDB.SUBSCRIBE", self.position, CHANNEL)
                    if isinstance(confirm, resp.RespError):
                        raise harness.TestFailure("%s refused HMDB.SUBSCRIBE %s: %s"
                                                  % (self.node, self.position, confirm.message))
                    if self.start_position is None:
                        self.start_position = confirm[3].decode()
                    while True:
                        m = cli.read_reply()
                        if isinstance(m, resp.RespError):
                            expect(m.message.startswith("SUBSCRIPTIONENDED "), "unexpected error %r" % m.message)
                            self.position = m.message.split()[1]
                            break
                        expect(m[0] == b"message" and len(m) == 5, "not a positioned message: %r" % (m,))
                        self.got.append((m[3].decode(), m[4], m[2]))
                        self.position = m[3].decode()
                        if m[2] == self.end:
                            return
                except resp.ConnectionLost:
                    pass
                finally:
                    if cli is not None:
                        cli.close()
                self.resumes += 1
                time.sleep(cl.POLL_INTERVAL_S)
                self.node = next_running(self.c, self.node)
                self.nodes_used.append(self.node.id)
            raise harness.TestFailure("subscriber from %s never saw the end of the stream within %.0fs (%d messages, "
                                      "last position %s)" % (self.start_position, self.timeout, len(self.got),
                                                             self.position))
        except Exception as e:  # noqa: BLE001 — reported by the main thread
            self.error = e


def case_resume(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    subs = [Subscriber(c, n) for n in c.nodes]
    for s in subs:
        s.start()
    wait_for(lambda: all(s.start_position for s in subs) or any(s.error for s in subs), REPLY_TIMEOUT_S,
             "every subscriber subscribed")
    follower = next(n for n in c.nodes if n is not leader)
    pub = Publisher(c, follower)
    pub.start()

    def published(n):
        wait_for(lambda: len(pub.acked) >= n or pub.error or not pub.is_alive(), 120, "%d acknowledged PUBLISHes" % n)
        expect(pub.error is None, "publisher: %r" % pub.error)

    faults = []
    killed = []
    published(PUBLISHES_BETWEEN_FAULTS)
    for victim_is_leader in (True, False):
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        # The follower killed is another node than the leader killed before: two nodes die.
        victim = leader if victim_is_leader else next(n for n in c.nodes if n is not leader and n not in killed)
        killed.append(victim)
        victim.kill()
        faults.append("kill -9 %s (%s) after %d acknowledged" % (victim, "leader" if victim_is_leader else "follower",
                                                                  len(pub.acked)))
        c.wait_leader(LEADER_TIMEOUT_S, nodes=[n for n in c.nodes if n is not victim])
        published(len(pub.acked) + PUBLISHES_BETWEEN_FAULTS)
        victim.start()
        published(len(pub.acked) + PUBLISHES_BETWEEN_FAULTS)
    pub.stop.set()
    pub.join(REPLY_TIMEOUT_S)
    expect(not pub.is_alive() and pub.error is None, "publisher did not stop: %r" % pub.error)
    # The end marker, through the leader, until acknowledged.
    def publish_end():
        try:
            return isinstance(c.wait_leader(LEADER_TIMEOUT_S).call("PUBLISH", CHANNEL, "end"), int)
        except resp.ConnectionLost:
            return False
    wait_for(publish_end, LEADER_TIMEOUT_S, "the end marker acknowledged")
    for s in subs:
        s.join(END_TIMEOUT_S)
        expect(not s.is_alive(), "a subscriber did not reach the end (last position %s on node%d)"
               % (s.position, s.node.id))
        expect(s.error is None, "subscriber: %r" % s.error)
    # The whole stream from the start of the log: the committed events, as any node retains them.
    truth = Subscriber(c, c.wait_leader(LEADER_TIMEOUT_S), start="0", timeout=END_TIMEOUT_S)
    truth.run()
    expect(truth.error is None, "reading the whole stream: %r" % truth.error)
    stream = truth.got
    positions = [parse_position(p) for p, _, _ in stream]
    expect(positions == sorted(set(positions)), "the stream's positions are not strictly increasing")
    payloads = [p for _, _, p in stream]
    expect(len(set(payloads)) == len(payloads), "a PUBLISH is in the stream twice")
    missing = [m for m in pub.acked if m.encode() not in set(payloads)]
    expect(not missing, "acknowledged PUBLISHes missing from the stream: %s" % missing[:10])
    for s in subs:
        start = parse_position(s.start_position)
        want = [e for e in stream if parse_position(e[0]) > start]
        if s.got != want:
            got_pos = [e[0] for e in s.got]
            want_pos = [e[0] for e in want]
            first = next((i for i, (a, b) in enumerate(zip(got_pos, want_pos)) if a != b), min(len(got_pos), len(want_pos)))
            raise harness.TestFailure("subscriber from node%d (resumed %d times, nodes %s): %d messages, the stream "
                                      "has %d after its start %s; first difference at #%d: got %s, want %s"
                                      % (s.nodes_used[0], s.resumes, s.nodes_used, len(s.got), len(want),
                                         s.start_position, first, got_pos[first:first + 3], want_pos[first:first + 3]))
    moved = [s for s in subs if s.resumes > 0]
    expect(len(moved) >= 2, "the subscribers of the killed nodes did not resume: %s"
           % [(s.nodes_used, s.resumes) for s in subs])
    print("resume: %s; %d events in the stream (%d acknowledged, %d unknown outcomes); %d subscribers, each got "
          "exactly the stream after its start; resumes %s"
          % ("; ".join(faults), len(stream), len(pub.acked), len(pub.unknown), len(subs),
             [(s.nodes_used, s.resumes) for s in subs]))


# ---- case slow ---------------------------------------------------------------------------

def case_slow(c):
    node = c.wait_leader(LEADER_TIMEOUT_S)
    sock = socket.socket()
    # A small receive window: the server's sends stop early and its output grows.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(REPLY_TIMEOUT_S)
    sock.connect((node.ip, node.client_port))
    sock.sendall(resp.encode_command(["HMDB.SUBSCRIBE", "$", "slow"]))
    payload = "x" * 1024
    published = 0
    with node.client(REPLY_TIMEOUT_S) as p:
        for _ in range(64):  # 64 pipelines of 64: 4 MiB, far past the 64 KiB bound
            replies = p.pipeline([("PUBLISH", "slow", payload)] * 64)
            expect(all(isinstance(r, int) for r in replies), "a PUBLISH failed: %r" % replies[:3])
            published += len(replies)
        wait_for(lambda: int(info_all(node)["pubsub_ended_slow"]) == 1, REPLY_TIMEOUT_S, "the slow subscriber ended")
    # Now read everything: the confirmation, messages, the error, then the end of the stream.
    buf = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    sock.close()
    values, pos = [], 0
    while pos < len(buf):
        parsed = resp.parse_reply(buf, pos)
        expect(parsed is not None, "a torn frame before the close")
        v, pos = parsed
        values.append(v)
    expect(isinstance(values[-1], resp.RespError) and values[-1].message.startswith("SUBSCRIPTIONENDED "),
           "the stream did not end with -SUBSCRIPTIONENDED: %r" % (values[-1],))
    messages = values[1:-1]
    last = values[-1].message.split()[1]
    expect(messages and messages[-1][3].decode() == last,
           "the error names %s, the last message delivered was %s" % (last, messages[-1][3] if messages else None))
    expect(0 < len(messages) < published, "%d of %d messages before the end" % (len(messages), published))
    # Resume from there: exactly the rest.
    rest = []
    with node.client(REPLY_TIMEOUT_S) as s:
        expect(not isinstance(s.call("HMDB.SUBSCRIBE", last, "slow"), resp.RespError), "resume refused")
        while len(messages) + len(rest) < published:
            m = s.read_reply()
            expect(isinstance(m, list), "resume: %r" % (m,))
            rest.append(m)
    positions = [parse_position(m[3].decode()) for m in messages + rest]
    expect(positions == sorted(set(positions)), "positions repeat or go back across the resume")
    print("slow: ended after %d of %d messages (named its last position %s); the resume got the other %d"
          % (len(messages), published, last, len(rest)))


# ---- case snapshot -----------------------------------------------------------------------

SNAPSHOT_CASE_MESSAGES = 3000  # of 1 KiB: past the 1 MiB snapshot trigger several times


def case_snapshot(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    sub = follower.client(REPLY_TIMEOUT_S)
    expect(not isinstance(sub.call("HMDB.SUBSCRIBE", "$", "snap"), resp.RespError), "subscribe")
    with leader.client(REPLY_TIMEOUT_S) as p:
        for i in range(10):
            expect(isinstance(p.call("PUBLISH", "snap", "m%d" % i), int), "PUBLISH refused")
    before = [sub.read_reply() for _ in range(10)]
    last = before[-1][3].decode()
    follower.pause()
    try:
        payload = "x" * 1024
        with leader.client(REPLY_TIMEOUT_S) as p:
            for i in range(10, 10 + SNAPSHOT_CASE_MESSAGES, 100):
                replies = p.pipeline([("PUBLISH", "snap", "m%d %s" % (j, payload)) for j in range(i, i + 100)])
                expect(all(isinstance(r, int) for r in replies), "a PUBLISH was refused: %r" % replies[:3])
            reply = p.call("SNAPSHOT")
            expect(isinstance(reply, str) and reply.startswith("OK"), "SNAPSHOT answered %r" % (reply,))
        first = int(leader.info()["first_index"])
        expect(first > parse_position(last)[0], "the leader's log was not compacted past the follower (first_index %d)"
               % first)
    finally:
        follower.resume()
    # What reached the follower before it stopped (appends in its socket buffer) it applies
    # and delivers; then the snapshot ends the subscription, naming the last it delivered.
    got = []
    while True:
        m = sub.read_reply()
        if isinstance(m, resp.RespError):
            ended = m
            break
        got.append(m)
        last = m[3].decode()
    names = [m[2].split(b" ")[0].decode() for m in got]
    expect(names == ["m%d" % i for i in range(10, 10 + len(got))], "before the end, not in order: %s" % names[:5])
    expect(len(got) < SNAPSHOT_CASE_MESSAGES, "the follower delivered everything: it installed no snapshot")
    expect(ended.message.startswith("SUBSCRIPTIONENDED %s " % last),
           "the follower's subscriber got %r, not -SUBSCRIPTIONENDED %s" % (ended.message, last))
    expect("installed the leader's snapshot" in follower.log(), "the follower did not catch up by snapshot")
    expect(info_all(follower)["pubsub_ended_snapshot"] == "1", "pubsub_ended_snapshot is not 1")
    sub.close()
    with leader.client(REPLY_TIMEOUT_S) as s:
        expect(not isinstance(s.call("HMDB.SUBSCRIBE", last, "snap"), resp.RespError), "resume on the leader")
        rest = [s.read_reply() for _ in range(SNAPSHOT_CASE_MESSAGES - len(got))]
    names = [m[2].split(b" ")[0].decode() for m in rest]
    expect(names == ["m%d" % i for i in range(10 + len(got), 10 + SNAPSHOT_CASE_MESSAGES)],
           "the resume did not give exactly the missed messages: %s ... %s" % (names[:3], names[-3:]))
    print("snapshot: the follower delivered %d messages, installed the leader's snapshot and ended its subscriber at "
          "%s; the resume on the leader got the %d messages after it" % (len(got), last, len(rest)))


# ---- case retain -------------------------------------------------------------------------

def case_retain(c):
    node = c.wait_leader(LEADER_TIMEOUT_S)
    expect(node.call("CONFIG", "GET", "notify-keyspace-events") == [b"notify-keyspace-events", b"AKE"],
           "--notify-keyspace-events KEA did not take")
    with node.client(REPLY_TIMEOUT_S) as k:
        k.call("SUBSCRIBE", "__keyevent@0__:set")
        node.call("SET", "rk", "v")
        expect(k.read_reply() == [b"message", b"__keyevent@0__:set", b"rk"], "the SET was not notified")
    # 200 KB of messages on r: the SET's notifications, earlier, are long evicted, so every
    # retained event is one of r's.
    with node.client(REPLY_TIMEOUT_S) as p:
        for _ in range(20):
            p.pipeline([("PUBLISH", "r", "y" * 500)] * 20)
    info = info_all(node)
    oldest = int(info["events_oldest_index"])
    expect(oldest > 0, "nothing was evicted: %s" % info["events_retained_bytes"])
    expect(int(info["events_retained_bytes"]) <= 64 * 1024, "retention over its bound: %s" % info["events_retained_bytes"])
    with node.client(REPLY_TIMEOUT_S) as s:
        r = s.call("HMDB.SUBSCRIBE", "0", "r")
        expect(isinstance(r, resp.RespError) and r.message.startswith("OLDPOSITION "), "resume from 0: %r" % (r,))
        named = r.message.split()[1]
        expect(parse_position(named)[0] == oldest, "OLDPOSITION names %s, INFO says %d" % (named, oldest))
    with node.client(REPLY_TIMEOUT_S) as s:
        confirm = s.call("HMDB.SUBSCRIBE", named, "r")
        expect(confirm[3].decode() == named, "resume from the oldest: %r" % (confirm,))
        got = [s.read_reply() for _ in range(int(info["events_retained"]))]
        expect(all(parse_position(m[3].decode()) > parse_position(named) for m in got), "an event at or before the start")
    print("retain: resume from 0 refused naming %s; from there, the %d retained events" % (named, len(got)))


# ---- case hostile ------------------------------------------------------------------------

HOSTILE_MESSAGES = 4096  # of 1 KiB: 4 MiB, far past a non-reader's 64 KiB bound
HOSTILE_CHANNELS = 100000  # kSubscriptionsPerSessionMax (core/pubsub.h)
HOSTILE_PATTERNS = 10000
# What the node may grow by while it all happens: subscribers' output (the documented bound:
# --subscriber-output-bytes each, plus one message), the 1 MiB sent of a declared bulk, the
# confirmations of 110,000 subscriptions and their tables, the 4 MiB of events retained and
# of log entries in memory. Measured: 30 MiB (6 -> 36). A node that allocated a declared
# bulk (512 MB) or kept a non-reader's 4 MiB would pass it.
HOSTILE_RSS_GROWTH_MAX = 64 << 20


def rss_bytes(node):
    with open("/proc/%d/status" % node.proc.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise harness.TestFailure("no VmRSS for pid %d" % node.proc.pid)


def raw_subscriber(node, channel):
    """A connection that subscribes to `channel` and never reads (a 4 KiB receive window, so
    that the node's output to it grows instead of filling socket buffers)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(REPLY_TIMEOUT_S)
    sock.connect((node.ip, node.client_port))
    sock.sendall(resp.encode_command(["SUBSCRIBE", channel]))
    return sock


def read_until_closed(sock):
    """What the node sent before closing the connection (bounded by the socket's timeout)."""
    got = b""
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return got
        got += chunk


def case_hostile(c):
    node = c.wait_leader(LEADER_TIMEOUT_S)
    seed = harness.get_seed(None)
    print("hostile: seed %d (HMDB_SEED=%d to replay the random bytes)" % (seed, seed))
    rng = random.Random(seed)
    control = node.client(REPLY_TIMEOUT_S)

    def numsub(channel):
        return control.call("PUBSUB", "NUMSUB", channel)[1]

    # Honest subscribers, each read by its own thread until it has every message.
    honest = {"plain": ["SUBSCRIBE", "h"], "positioned": ["HMDB.SUBSCRIBE", "$", "h"], "pattern": ["PSUBSCRIBE", "h*"]}
    received = {name: [] for name in honest}
    failures = []
    threads = []
    for name, command in honest.items():
        client = node.client(REPLY_TIMEOUT_S)
        expect(not isinstance(client.call(*command), resp.RespError), "%s: %s refused" % (name, command))

        def read(name=name, client=client):
            try:
                while len(received[name]) < HOSTILE_MESSAGES:
                    received[name].append(client.read_reply())
            except Exception as e:  # reported by the main thread
                failures.append("%s: %r" % (name, e))
            finally:
                client.close()
        threads.append(threading.Thread(target=read, daemon=True))
    for t in threads:
        t.start()
    rss_before = rss_bytes(node)

    # Subscribed to the flowing channel, then misbehaving: none of them reads.
    never_reads = raw_subscriber(node, "h")
    random_bytes = raw_subscriber(node, "h")
    half_frame = raw_subscriber(node, "h")
    big_bulk = raw_subscriber(node, "h")
    # On channel h: the plain and positioned honest subscribers (the third is a pattern) and these four.
    wait_for(lambda: numsub("h") == 2 + 4, REPLY_TIMEOUT_S, "the four non-readers subscribed")
    half_frame.sendall(b"*3\r\n$9\r\nSUBSCRIBE\r\n$5\r\nab")
    big_bulk.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$536870000\r\n" + b"x" * (1 << 20))
    try:
        for _ in range(64):
            random_bytes.sendall(bytes(rng.getrandbits(8) for _ in range(1024)))
    except OSError:
        pass  # the node closed it (a protocol error): that is allowed
    # Protocol bounds: a bulk too long, too many arguments: answered and closed.
    protocol_errors = int(info_all(node)["protocol_errors"])
    for frame in (b"*2\r\n$9\r\nSUBSCRIBE\r\n$100000000000\r\n", b"*2000000\r\n$9\r\nSUBSCRIBE\r\n"):
        sock = socket.create_connection((node.ip, node.client_port), timeout=REPLY_TIMEOUT_S)
        sock.sendall(resp.encode_command(["SUBSCRIBE", "h"]) + frame)
        got = read_until_closed(sock)
        sock.close()
        expect(b"-ERR Protocol error" in got, "%r answered %r" % (frame[:24], got[-120:]))
    expect(int(info_all(node)["protocol_errors"]) >= protocol_errors + 2, "the protocol errors were not counted")
    # Subscriptions at the bound: one past it is refused whole, then exactly the bound.
    many = node.client(REPLY_TIMEOUT_S)
    names = ["c%d" % i for i in range(HOSTILE_CHANNELS)]
    reply = many.call("SUBSCRIBE", *(names + ["one-too-many"]))
    expect(isinstance(reply, resp.RespError) and "at most %d" % HOSTILE_CHANNELS in reply.message,
           "%d channels at once: %r" % (HOSTILE_CHANNELS + 1, reply))
    many.send([["SUBSCRIBE"] + names])
    for i in range(HOSTILE_CHANNELS):
        confirmation = many.read_reply()
    expect(confirmation == [b"subscribe", names[-1].encode(), HOSTILE_CHANNELS], "last confirmation %r" % (confirmation,))
    # Patterns that are expensive to try and match nothing that is published.
    patterns = node.client(REPLY_TIMEOUT_S)
    patterns.send([["PSUBSCRIBE"] + ["*h*h*h*h*h*h*h*h*[%d" % i for i in range(HOSTILE_PATTERNS)]])
    wait_for(lambda: control.call("PUBSUB", "NUMPAT") == HOSTILE_PATTERNS + 1, REPLY_TIMEOUT_S, "the patterns")

    # Events flow; a plain client is served between the pipelines.
    payload = "x" * 1000
    with node.client(REPLY_TIMEOUT_S) as p:
        # 16 at a time: what one loop turn applies reaches a subscriber's output before any of
        # it is sent, so a burst near the 64 KiB bound would end even a subscriber that reads.
        for batch in range(HOSTILE_MESSAGES // 16):
            replies = p.pipeline([("PUBLISH", "h", "%05d %s" % (batch * 16 + i, payload)) for i in range(16)])
            bad = [r for r in replies if not isinstance(r, int) or r < 3]
            expect(not bad, "a PUBLISH answered %r" % (bad[:3],))
            key = "k%d" % batch
            expect(control.call("SET", key, "v") == "OK" and control.call("GET", key) == b"v", "SET/GET")
    for t in threads:
        t.join(END_TIMEOUT_S)
    expect(not failures, "honest subscribers failed: %s" % failures)
    expect(all(not t.is_alive() for t in threads), "an honest subscriber did not get every message in time")
    # Every non-reader subscribed to h was ended as slow (the random-bytes one unless the
    # node closed it first for a protocol error).
    wait_for(lambda: int(info_all(node)["pubsub_ended_slow"]) >= 3, REPLY_TIMEOUT_S, "the non-readers ended")

    want = ["%05d %s" % (i, payload) for i in range(HOSTILE_MESSAGES)]
    for name, messages in received.items():
        texts = [m[3 if name == "pattern" else 2].decode() for m in messages]
        expect(texts == want, "%s: %d messages, not the %d published in order" % (name, len(texts), len(want)))
    positions = [parse_position(m[3].decode()) for m in received["positioned"]]
    expect(positions == sorted(set(positions)), "positions repeat or go back")
    rss_after = rss_bytes(node)
    print("hostile: RSS %.1f MiB -> %.1f MiB (bound +%d MiB); %d messages to each of 3 honest subscribers"
          % (rss_before / 2**20, rss_after / 2**20, HOSTILE_RSS_GROWTH_MAX >> 20, HOSTILE_MESSAGES))
    expect(rss_after - rss_before <= HOSTILE_RSS_GROWTH_MAX, "RSS grew by %d MiB" % ((rss_after - rss_before) >> 20))
    expect(control.call("PING") == "PONG", "PING after it all")
    expect(numsub("c%d" % (HOSTILE_CHANNELS - 1)) == 1, "the 100,000th channel's subscriber is gone")
    for sock in (never_reads, random_bytes, half_frame, big_bulk):
        sock.close()
    many.close()
    patterns.close()
    control.close()


CASES = {
    "fanout": (case_fanout, 3, []),
    "resume": (case_resume, 3, []),
    "slow": (case_slow, 1, ["--subscriber-output-bytes", "65536"]),
    "snapshot": (case_snapshot, 3, ["--snapshot-log-bytes", "1048576"]),
    "retain": (case_retain, 1, ["--events-retain-bytes", "65536", "--notify-keyspace-events", "KEA"]),
    "hostile": (case_hostile, 1, ["--subscriber-output-bytes", "65536"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    for name in args.case or list(CASES):
        fn, nodes, flags = CASES[name]
        work = harness.make_work_dir("hmdb-pubsub-%s-" % name)
        t0 = time.monotonic()
        c = cl.Cluster(os.path.abspath(args.binary), work, nodes=nodes, cluster_id="hmdb-pubsub", server_args=flags)
        try:
            c.start()
            fn(c)
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
