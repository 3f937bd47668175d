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

Every wait is a bounded poll of a real condition. Usage: pubsub_test.py [--case NAME] [--keep]
HMDB_BINARY
"""

import argparse
import os
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
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise harness.TestFailure("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(cl.POLL_INTERVAL_S)


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


CASES = {
    "fanout": (case_fanout, 3, []),
    "resume": (case_resume, 3, []),
    "slow": (case_slow, 1, ["--subscriber-output-bytes", "65536"]),
    "snapshot": (case_snapshot, 3, ["--snapshot-log-bytes", "1048576"]),
    "retain": (case_retain, 1, ["--events-retain-bytes", "65536", "--notify-keyspace-events", "KEA"]),
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
