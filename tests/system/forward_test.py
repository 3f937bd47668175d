#!/usr/bin/env python3
"""A follower forwards a plain client's commands to the leader (issue 11, item 2;
docs/cluster.md "What clients see"): each case starts its own 3-node cluster
(tests/system/cluster.py) and checks one promise.

  same       a pipeline of writes, reads, local commands, errors and transactions (one that
             runs, one refused while queueing), in RESP2 and after HELLO 3 in RESP3, gets
             from a follower byte for byte the replies the leader gives: every read sees the
             session's earlier writes, every reply in order. WATCH on a follower: -MOVED.
             redis-cli SETs on one follower and GETs on the other (README).
  cluster    a cluster client gets -MOVED as before: after CLIENT NO-FORWARD ON, after
             CLUSTER SLOTS/SHARDS/NODES, and for a READONLY client's writes (its reads stay
             local; after READWRITE its reads get -MOVED too); another node's forwarding link (CLUSTER FORWARDER) is never forwarded
             again (one hop), and the leader lists the links in CLIENT LIST.
  killed     the leader is stopped, a plain client's SET and another's GET are forwarded
             to it, and it is killed -9: the SET is answered "write outcome unknown" at once,
             the GET is sent again and answered by the new leader, and the client's next
             write succeeds. (Election timeout 3 s, so that the follower provably sent both
             to the old leader before the kill: same leader and term before and after.)
  noleader   a majority is killed: a forwarded write waits for a leader and is answered
             -CLUSTERDOWN after the wait (10 election timeouts); once a node comes back and
             a leader is elected, the follower's writes go through again.
  transfer   a plain client pipelines INCRs through a follower while leadership moves to
             the other follower, to the client's own node (which then runs what it had not
             forwarded) and back: every INCR is answered, the values of those acknowledged
             strictly increase (session order held), and the counter ends between the
             acknowledged count and that plus the unknown outcomes (nothing applied twice).
  bigread    the leader is stopped, one plain client's SET and then another's SMEMBERS of a
             set big enough to be sliced (BIG_SET members) are forwarded on the same link,
             and the leader resumes: the big read, behind another client's write that waits
             for the apply, is made into its own slot (INFO sliced_replies_buffered rises)
             instead of holding the apply until the 30 s bound (slice_hold_overdue_turns
             stays; before 89a5420 both replies came after that bound, with it counted);
             both replies are right. The order it needs is a race (the case's comment):
             each attempt is checked, and one of BIGREAD_ATTEMPTS must be buffered.
  bounded    the leader is stopped and a plain client pipelines 20,000 GETs through a
             follower: the follower holds at most kForwardCommandsMax (10,000) of them
             (hmdb_forward_pending on its metrics port, which back-pressure does not stop)
             and stops reading; once the leader resumes all 20,000 are answered in order.

Every wait is a bounded poll of a real condition. Usage: forward_test.py [--case NAME]
[--keep] HMDB_BINARY
"""

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import cluster as cl
import harness
import resp

LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
REPLY_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 30.0
# core/forwarder.h's kForwardCommandsMax: forwarded commands held at once.
FORWARD_COMMANDS_MAX = 10000
BOUNDED_GETS = 20000
TRANSFER_INCRS_IN_FLIGHT = 8
# Members of the set bigread reads: past the 8,192 elements of one reply slice.
BIG_SET = 20000
BIG_SET_BATCH = 1000
# Tries of bigread's race (the SET still unapplied when the big read starts) before failing.
BIGREAD_ATTEMPTS = 5
UNKNOWN_OUTCOME = "ERR write outcome unknown"


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def wait_for(cond, timeout, what):
    """harness.wait_for at the cluster's poll interval."""
    return harness.wait_for(what, timeout, cond, cl.POLL_INTERVAL_S)


def info_all(node):
    reply = node.call("INFO", "all")
    expect(isinstance(reply, bytes), "%s: INFO answered %r" % (node, reply))
    return cl.parse_info(reply)


# ---- raw RESP2/RESP3 frames (tests/system/resp.py reads RESP2 values only) ----------------

def frame_end(buf, pos):
    """The end of the RESP2 or RESP3 frame at buf[pos:], or None if incomplete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    kind, line = buf[pos:pos + 1], buf[pos + 1:nl]
    at = nl + 2
    if kind in b"+-:_,#(":
        return at
    if kind in b"$!=":
        n = int(line)
        if n < 0:
            return at
        return at + n + 2 if len(buf) >= at + n + 2 else None
    if kind in b"*~>%|":
        n = int(line)
        if kind in b"%|":
            n *= 2
        for _ in range(max(n, 0)):
            at = frame_end(buf, at)
            if at is None:
                return None
        return at
    raise harness.TestFailure("not RESP: %r" % bytes(buf[pos:pos + 40]))


class RawClient:
    """A connection that returns each reply as its bytes."""

    def __init__(self, node, timeout=REPLY_TIMEOUT_S):
        self.sock = socket.create_connection((node.ip, node.client_port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def send(self, commands):
        self.sock.sendall(b"".join(resp.encode_command(c) for c in commands))

    def replies(self, n):
        out = []
        while len(out) < n:
            end = frame_end(self.buf, 0)
            if end is None:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    raise harness.TestFailure("connection closed after %d of %d replies" % (len(out), n))
                self.buf += chunk
                continue
            out.append(bytes(self.buf[:end]))
            del self.buf[:end]
        return out

    def close(self):
        self.sock.close()


# ---- cases -------------------------------------------------------------------------------

def pipeline_of(prefix):
    k = lambda name: "{%s}%s" % (prefix, name)  # noqa: E731
    return [("SET", k("a"), "1"), ("GET", k("a")), ("INCR", k("a")), ("GET", k("a")), ("PING",),
            ("HSET", k("h"), "f", "v", "g", "w"), ("HGETALL", k("h")), ("NOSUCH", "x"), ("SET", k("a")),
            ("SADD", k("s"), "m"), ("SMEMBERS", k("s")), ("ZADD", k("z"), "1.5", "m"), ("ZSCORE", k("z"), "m"),
            ("GET", k("missing")), ("ECHO", "e"), ("DEL", k("a")), ("GET", k("a")),
            ("MULTI",), ("SET", k("t"), "1"), ("INCR", k("t")), ("GET", k("t")), ("PING",), ("EXEC",),
            ("MULTI",), ("INCR", k("t")), ("NOSUCH",), ("EXEC",), ("GET", k("t"))]


def case_same(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    for protocol in ("2", "3"):
        got = {}
        for node in (leader, follower):
            rc = RawClient(node)
            try:
                if protocol == "3":
                    rc.send([("HELLO", "3")])
                    rc.replies(1)  # its id and role differ between the nodes
                # Keys of their own per node and protocol: the same replies are expected.
                cmds = pipeline_of("%s%s" % ("L" if node is leader else "F", protocol))
                rc.send(cmds)
                got[node] = rc.replies(len(cmds))
            finally:
                rc.close()
        expect(got[leader] == got[follower], "RESP%s: the follower's replies differ from the leader's:\nleader   %r\n"
               "follower %r" % (protocol, got[leader], got[follower]))
        expect(got[follower][1] == b"$1\r\n1\r\n" and got[follower][3] == b"$1\r\n2\r\n",
               "the reads did not see the session's writes: %r" % got[follower])
    # A WATCH is the leader's own: never forwarded, a follower redirects it.
    r = follower.call("WATCH", "k")
    want = "MOVED %d %s" % (cl.key_slot("k"), leader.moved_addr)
    expect(isinstance(r, resp.RespError) and r.message == want, "WATCH on a follower: %r" % (r,))
    # The README's sentence: redis-cli, a plain client, works on any node.
    others = [n for n in c.nodes if n is not leader]
    out = subprocess.run(["redis-cli", "-h", others[0].ip, "-p", str(others[0].client_port), "SET", "a", "1"],
                         capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    expect(out.stdout.strip() == "OK", "redis-cli SET on a follower: %r %r" % (out.stdout, out.stderr))
    out = subprocess.run(["redis-cli", "-h", others[1].ip, "-p", str(others[1].client_port), "GET", "a"],
                         capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    expect(out.stdout.strip() == "1", "redis-cli GET on the other follower: %r %r" % (out.stdout, out.stderr))
    info = info_all(follower)
    expect(int(info["forwarded_commands"]) > 0, "the follower forwarded nothing: %s" % info)
    expect(info_all(leader)["forwarded_commands"] == "0", "the leader forwarded")
    print("same: %d commands in RESP2 and RESP3 answered alike by %s (forwarding) and %s"
          % (len(pipeline_of("x")), follower, leader))


def case_cluster(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    moved = "MOVED %d %s" % (cl.key_slot("k"), leader.moved_addr)
    for mark in (("CLIENT", "NO-FORWARD", "ON"), ("CLUSTER", "SLOTS"), ("CLUSTER", "SHARDS"), ("CLUSTER", "NODES"),
                 ("CLUSTER", "FORWARDER", "9")):
        with follower.client() as fc:
            fc.call(*mark)
            for cmd in (("SET", "k", "v"), ("GET", "k")):
                r = fc.call(*cmd)
                expect(isinstance(r, resp.RespError) and r.message == moved,
                       "after %r the follower answered %r to %r, expected -%s" % (mark, r, cmd, moved))
    with follower.client() as fc:
        expect(fc.call("CLIENT", "NO-FORWARD", "ON") == "OK", "NO-FORWARD ON")
        expect(fc.call("CLIENT", "NO-FORWARD", "OFF") == "OK", "NO-FORWARD OFF")
        expect(fc.call("SET", "k", "v1") == "OK", "CLIENT NO-FORWARD OFF did not forward again")
        r = fc.call("CLIENT", "NO-FORWARD", "MAYBE")
        expect(isinstance(r, resp.RespError) and r.message == "ERR syntax error", "NO-FORWARD MAYBE: %r" % (r,))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    with follower.client() as fc:
        expect(fc.call("READONLY") == "OK", "READONLY")
        expect(fc.call("GET", "k") == b"v1", "a READONLY GET was not served from the follower's state")
        r = fc.call("SET", "k", "v2")
        expect(isinstance(r, resp.RespError) and r.message == moved, "a READONLY client's SET: %r" % (r,))
        expect(fc.call("READWRITE") == "OK", "READWRITE")
        r = fc.call("GET", "k")
        expect(isinstance(r, resp.RespError) and r.message == moved, "after READONLY, READWRITE: GET %r" % (r,))
    links = [line for line in leader.call("CLIENT", "LIST").decode().splitlines()
             if "name=hmdb-forwarder-%d " % follower.id in line]
    expect(len(links) == 1, "the leader does not list one forwarding link of %s: %r" % (follower, links))
    r = leader.call("CLUSTER", "FORWARDER", "x")
    expect(isinstance(r, resp.RespError) and "usage" in r.message, "CLUSTER FORWARDER x: %r" % (r,))
    print("cluster: -MOVED after each mark and for READONLY writes; one forwarding link on the leader")


def forward_to_stopped_leader(leader, follower, writer, reader, write, read):
    """Stops the leader, sends `write` on the writer's connection, waits until the follower
    has forwarded it, then sends `read` on the reader's and waits for that too (forward_pending
    1, then 2; same leader and term): they are then on the link in that order, whatever the
    leader does next. (Sent back to back, the two connections' commands could reach the link
    in either order: the follower's loop serves its ready sockets in epoll's order.)"""
    before = follower.info()
    leader.pause()
    for command, pending in ((write, 1), (read, 2)):
        (writer if command is write else reader).send([command])

        def sent():
            i = info_all(follower)
            return (i["forward_pending"] == str(pending) and i["leader_id"] == str(leader.id)
                    and i["term"] == before["term"]) and i
        wait_for(sent, LEADER_TIMEOUT_S, "%s to forward the %s to the stopped %s" % (follower, command[0], leader))


def case_killed(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    writer, reader = follower.client(timeout=REPLY_TIMEOUT_S), follower.client(timeout=REPLY_TIMEOUT_S)
    try:
        expect(writer.call("SET", "warm", "1") == "OK", "the first forwarded write failed")  # the link is up
        forward_to_stopped_leader(leader, follower, writer, reader, ("SET", "k", "1"), ("GET", "warm"))
        leader.kill()
        r = writer.read_reply()
        expect(isinstance(r, resp.RespError) and r.message.startswith(UNKNOWN_OUTCOME),
               "the SET in flight when the leader died was answered %r" % (r,))
        expect(reader.read_reply() == b"1", "the GET in flight was not answered after the election")
        expect(writer.call("SET", "k2", "2") == "OK", "the next write through the follower failed")
    finally:
        writer.close()
        reader.close()
    new = c.wait_leader(LEADER_TIMEOUT_S, nodes=[n for n in c.nodes if n is not leader])
    expect(new.call("GET", "k2") == b"2", "the acknowledged write is not on the new leader %s" % new)
    i = info_all(follower)
    expect(i["forward_unknown_outcomes"] == "1" and int(i["forward_links_broken"]) >= 1,
           "forwarding counters: %s" % {k: v for k, v in i.items() if k.startswith("forward")})
    # The GET went again to the new leader (over a link to itself if the follower was elected).
    expect(int(i["forward_resent"]) >= 1, "the GET was not sent again: forward_resent %s" % i["forward_resent"])
    print("killed: the SET in flight: outcome unknown; the GET in flight: sent again to %s%s and answered"
          % (new, " (the follower itself)" if new is follower else ""))


def case_bigread(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    members = [b"m%d" % i for i in range(BIG_SET)]
    for at in range(0, BIG_SET, BIG_SET_BATCH):
        n = leader.call("SADD", "big", *members[at:at + BIG_SET_BATCH])
        expect(n == BIG_SET_BATCH, "SADD added %r of %d" % (n, BIG_SET_BATCH))
    # Whether the SET still waits for its apply when the leader starts the big read's reply
    # depends on when the leader's own disk round ends and when its followers' replies arrive
    # (they both commit the SET and confirm the read's index): on a busy machine the SET can be
    # applied first, and the read, then at the head of the link's replies, is not buffered. Every attempt must be answered right; the
    # buffered path must be taken in one of BIGREAD_ATTEMPTS.
    for attempt in range(1, BIGREAD_ATTEMPTS + 1):
        writer, reader = follower.client(timeout=REPLY_TIMEOUT_S), follower.client(timeout=REPLY_TIMEOUT_S)
        try:
            expect(writer.call("SET", "warm", "1") == "OK", "the first forwarded write failed")  # the link is up
            lead_before = info_all(leader)
            forward_to_stopped_leader(leader, follower, writer, reader, ("SET", "k", str(attempt)), ("SMEMBERS", "big"))
            leader.resume()
            expect(writer.read_reply() == "OK", "the forwarded SET was not answered OK")
            got = reader.read_reply()
            expect(isinstance(got, list) and sorted(got) == sorted(members),
                   "SMEMBERS answered %s" % (("%d members" % len(got)) if isinstance(got, list) else repr(got)[:80]))
        finally:
            writer.close()
            reader.close()
        lead_after = info_all(leader)
        expect(lead_after["term"] == lead_before["term"], "the leader changed while stopped: the case ran nothing")
        expect(lead_after["slice_hold_overdue_turns"] == lead_before["slice_hold_overdue_turns"],
               "the big read held the apply until its bound: slice_hold_overdue_turns %s -> %s"
               % (lead_before["slice_hold_overdue_turns"], lead_after["slice_hold_overdue_turns"]))
        buffered = int(lead_after["sliced_replies_buffered"]) - int(lead_before["sliced_replies_buffered"])
        if buffered >= 1:
            break
        print("bigread: attempt %d: the SET was applied before the big read's reply started (not buffered); again"
              % attempt)
    expect(buffered >= 1, "the big read behind the SET was not buffered in %d attempts (sliced_replies_buffered +0)"
           % BIGREAD_ATTEMPTS)
    print("bigread: SMEMBERS of %d members behind another client's SET on %s's link: buffered (attempt %d), "
          "both answered" % (BIG_SET, follower, attempt))


def case_noleader(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    other = next(n for n in c.nodes if n is not leader and n is not follower)
    with follower.client(timeout=REPLY_TIMEOUT_S) as fc:
        expect(fc.call("SET", "k", "1") == "OK", "the first forwarded write failed")
        leader.kill()
        other.kill()
        r = fc.call("SET", "k", "2")
        expect(isinstance(r, resp.RespError) and r.message.startswith("CLUSTERDOWN"),
               "a forwarded write with no leader was answered %r" % (r,))
        expect(info_all(follower)["forward_timed_out"] == "1", "forward_timed_out is not 1")
        other.start()
        c.wait_leader(LEADER_TIMEOUT_S, nodes=[follower, other])
        expect(fc.call("SET", "k", "3") == "OK", "the follower's write failed once a leader was back")
        expect(fc.call("GET", "k") == b"3", "the write is not there")
    print("noleader: %r; then OK once %s and %s elected a leader" % (r.message, follower, other))


def case_transfer(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    other = next(n for n in c.nodes if n is not leader and n is not follower)
    replies = []
    stop = threading.Event()
    failure = []

    def incr():
        try:
            with follower.client(timeout=REPLY_TIMEOUT_S) as fc:
                while not stop.is_set():
                    replies.extend(fc.pipeline([("INCR", "n")] * TRANSFER_INCRS_IN_FLIGHT))
        except Exception as e:  # reported by the main thread
            failure.append(e)

    t = threading.Thread(target=incr, daemon=True)
    t.start()
    try:
        for target in (other, follower, leader):
            wait_for(lambda: len(replies) >= 200 or failure, REPLY_TIMEOUT_S, "INCRs through %s" % follower)
            before = len(replies)
            out = subprocess.run([c.binary, "cluster", "--addr", target.client_addr, "transfer", str(target.id)],
                                 capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
            expect(out.returncode == 0, "hmdb cluster transfer %d: %s" % (target.id, out.stdout + out.stderr))
            wait_for(lambda: len(replies) >= before + 200 or failure, REPLY_TIMEOUT_S,
                     "INCRs through %s after the transfer to %s" % (follower, target))
    finally:
        stop.set()
        t.join(REPLY_TIMEOUT_S)
    expect(not failure, "the INCR client failed: %r" % failure)
    values = [r for r in replies if isinstance(r, int)]
    errors = [r for r in replies if not isinstance(r, int)]
    unknown = [r for r in errors if isinstance(r, resp.RespError) and r.message.startswith(UNKNOWN_OUTCOME)]
    expect(all(isinstance(r, resp.RespError) for r in errors), "unexpected replies: %r" % errors[:5])
    expect(all(a < b for a, b in zip(values, values[1:])), "acknowledged INCRs out of order: %r" % values[:50])
    final = int(c.wait_leader(LEADER_TIMEOUT_S).call("GET", "n"))
    expect(len(values) <= final <= len(values) + len(unknown),
           "counter %d after %d acknowledged INCRs and %d unknown outcomes" % (final, len(values), len(unknown)))
    counters = info_all(follower)
    print("transfer: %d INCRs acknowledged in order, %d errors (%d unknown outcome: %s), counter %d; "
          "forward_resent %s" % (len(values), len(errors), len(unknown), sorted({e.message[:40] for e in errors}),
                                 final, counters["forward_resent"]))


def metric(node, port, name):
    with urllib.request.urlopen("http://%s:%d/metrics" % (node.ip, port), timeout=cl.ADMIN_TIMEOUT_S) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise harness.TestFailure("no %s on %s's metrics" % (name, node))


def case_bounded(c, metrics_port):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    expect(follower.call("SET", "k", "v") == "OK", "the first forwarded write failed")
    rc = RawClient(follower)
    try:
        rc.send([("GET", "k")])
        expect(rc.replies(1) == [b"$1\r\nv\r\n"], "the forwarded GET")
        leader.pause()
        sender = threading.Thread(target=rc.send, args=([("GET", "k")] * BOUNDED_GETS,), daemon=True)
        sender.start()
        seen = []

        def held():
            n = metric(follower, metrics_port, "hmdb_forward_pending")
            seen.append(n)
            expect(n <= FORWARD_COMMANDS_MAX, "%s holds %d forwarded commands (bound %d)" % (follower, n,
                                                                                       FORWARD_COMMANDS_MAX))
            return n == FORWARD_COMMANDS_MAX
        wait_for(held, LEADER_TIMEOUT_S, "%s to hold %d forwarded commands" % (follower, FORWARD_COMMANDS_MAX))
        leader.resume()
        got = rc.replies(BOUNDED_GETS)
        sender.join(REPLY_TIMEOUT_S)
    finally:
        rc.close()
    expect(all(r == b"$1\r\nv\r\n" for r in got), "a GET was answered otherwise: %r" % [r for r in got if r != got[0]][:3])
    wait_for(lambda: metric(follower, metrics_port, "hmdb_forward_pending") == 0, REPLY_TIMEOUT_S,
             "the forwarded commands to drain")
    print("bounded: at most %d of %d pipelined GETs held (max seen %d), all answered" % (FORWARD_COMMANDS_MAX,
                                                                                         BOUNDED_GETS, max(seen)))


# case -> extra server flags
CASES = {
    "same": (case_same, []),
    "cluster": (case_cluster, []),
    "killed": (case_killed, ["--election-timeout-ms", "3000"]),
    "noleader": (case_noleader, []),
    "transfer": (case_transfer, []),
    "bigread": (case_bigread, ["--election-timeout-ms", "3000"]),
    "bounded": (case_bounded, ["--election-timeout-ms", "3000"]),
}


def free_port_on_all(nodes_ips):
    """A port free on every one of the nodes' addresses (for --metrics-port)."""
    for _ in range(20):
        port = cl.free_port_on(nodes_ips[0])
        ok = True
        for ip in nodes_ips[1:]:
            with socket.socket() as s:
                try:
                    s.bind((ip, port))
                except OSError:
                    ok = False
        if ok:
            return port
    raise harness.TestFailure("no port free on %s" % nodes_ips)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    for name in args.case or list(CASES):
        fn, flags = CASES[name]
        work = harness.make_work_dir("hmdb-forward-%s-" % name)
        t0 = time.monotonic()
        extra = []
        metrics_port = None
        if name == "bounded":
            metrics_port = free_port_on_all([cl.node_ip(i) for i in (1, 2, 3)])
            extra = ["--metrics-port", str(metrics_port)]
        c = cl.Cluster(os.path.abspath(args.binary), work, nodes=3, cluster_id="hmdb-forward",
                       server_args=flags + extra)
        try:
            c.start()
            if metrics_port is None:
                fn(c)
            else:
                fn(c, metrics_port)
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
