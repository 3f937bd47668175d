#!/usr/bin/env python3
"""A big reply made in slices across loop turns (issue 16 item 5; docs/architecture.md,
"Big replies"), through a real node started with a small slice (--test-slice-elements 1000,
a hidden test flag) and 300,000 keys of 60 bytes: KEYS * is then ~21 MB and ~600 slices.
Every check is on what the protocol and INFO say, never on how long anything took.

  * The sliced KEYS * reply is byte for byte the reply made whole in one turn (the same
    KEYS inside MULTI/EXEC, which is never sliced), and a PING pipelined behind it is
    answered after it.
  * While it is in progress (INFO sliced_replies_in_progress 1: client A sends it and reads
    nothing, so its ~21 MB cannot all leave; the node makes no slice for a client with 4 MiB
    unsent), another client's GET is answered and INFO still says it is in progress; a SET
    sent meanwhile is logged (INFO total_writes grows) but not applied (EXISTS says 0, still
    in progress). Then A reads its reply: the key of that SET is not in it; the SET is
    answered; the key exists.
  * INFO reply_slices and loop_turns grew by at least the slices a 1000-key slice implies.
  * A client that reads nothing holds no write past the wait for a slow reader (200 ms by
    default; the parts above set it to 60 s): a second node, KEYS * sent and not read, another
    client's SET is answered, the reply completed (buffered), slice_reader_waits_expired grew,
    and the reply A then reads does not hold the SET's key.
  * redis-py (Debian's python3-redis; skipped with a message without it): r.keys('*') equals
    the keys of the same KEYS inside a transaction (pipeline(transaction=True)), sliced_replies
    grew by one; r.zlexcount over a sorted set of unequal scores (3,000 members, "-" to "+")
    is sliced, counts every member, and equals the count and ZRANGEBYLEX inside a transaction.

With --case follower, the same on a follower of a 3-node cluster for a READONLY client: the
keys written through the leader, then KEYS * on a follower (sliced there, the same bytes as
the leader's KEYS inside EXEC); while it is in progress another READONLY client's GET there
is answered; a SET through the leader is answered by the leader and committed on the
follower (its commit_index passes it) but not applied there (EXISTS 0 on the follower) until
the KEYS reply is read; then it is.

Usage: big_reply_test.py [--case single|follower] HMDB_BINARY
"""

import argparse
import os
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

sys.path.insert(0, HERE)
import cluster as cl  # noqa: E402
import harness  # noqa: E402
import resp  # noqa: E402

redis = harness.import_redis()

KEYS = 300000
KEY_BYTES = 60
SLICE = 1000
WAIT_S = 60.0  # for a condition polled through INFO
POLL_INTERVAL_S = 0.01  # between two probes of such a condition (a probe decides; this spaces them)
# How long a sliced reply waits for a client that reads nothing (--test-slice-reader-wait-ms):
# longer than the 30 s hold bound, so that client A's KEYS stays in progress while the test
# looks (the default, 200 ms, is what the slow-reader part checks).
READER_WAIT_MS = 60000


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def info(client):
    text = client.call("INFO", "stats")
    text = text.decode() if isinstance(text, bytes) else text
    out = {}
    for line in text.split("\r\n"):
        if line and not line.startswith("#"):
            k, _, v = line.partition(":")
            out[k] = v
    return out


def stat(client, name):
    return int(info(client)[name])


def wait_for(what, cond):
    """harness.wait_for within WAIT_S."""
    return harness.wait_for(what, WAIT_S, cond, POLL_INTERVAL_S)


def key(i):
    k = "key:%d:" % i
    return k + "x" * (KEY_BYTES - len(k))


def read_exactly(sock, n):
    sock.settimeout(WAIT_S)
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            raise harness.TestFailure("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def load_keys(client):
    for start in range(0, KEYS, 5000):
        words = ["MSET"]
        for i in range(start, min(KEYS, start + 5000)):
            words += [key(i), "v"]
        expect(client.call(*words) == "OK", "MSET failed")


def keys_reply(host, port):
    """KEYS * (sliced) read whole, as raw bytes."""
    s = socket.create_connection((host, port))
    s.sendall(resp.encode_command(["KEYS", "*"]))
    reply = keys_reply_from(s)
    s.close()
    return reply


def keys_reply_from(s):
    """The reply to a KEYS * already sent on socket s, read whole, as raw bytes."""
    first = read_exactly(s, len(b"*%d\r\n" % KEYS))
    expect(first == b"*%d\r\n" % KEYS, "KEYS starts %r" % first)
    element = b"$%d\r\n" % KEY_BYTES
    return first + read_exactly(s, KEYS * (len(element) + KEY_BYTES + 2))


def run_follower(binary):
    work = harness.make_work_dir("hmdb-big-reply-follower-")
    # A long election timeout: this test is not about elections, and a loaded machine's
    # stalls (a whole KEYS would be one) must not move the leader under it.
    c = cl.Cluster(os.path.abspath(binary), work, nodes=3, durability="periodic",
                   server_args=["--test-slice-elements", str(SLICE), "--test-slice-reader-wait-ms", str(READER_WAIT_MS),
                                "--election-timeout-ms", "2000"],
                   cluster_id="hmdb-big-reply")
    c.start()
    try:
        leader = c.wait_leader(WAIT_S)
        with leader.client(timeout=WAIT_S) as w:
            load_keys(w)
        c.wait_converged(WAIT_S)
        whole = keys_reply(leader.ip, leader.client_port)  # the same bytes as made whole: --case single
        f = next(n for n in c.nodes if n is not leader)
        a = socket.create_connection((f.ip, f.client_port))
        a.sendall(resp.encode_command(["READONLY"]))
        expect(read_exactly(a, 5) == b"+OK\r\n", "READONLY")
        with f.client(timeout=WAIT_S) as b, leader.client(timeout=WAIT_S) as w:
            expect(b.call("READONLY") == "OK", "READONLY")
            a.sendall(resp.encode_command(["KEYS", "*"]) + resp.encode_command(["PING"]))
            wait_for("KEYS in progress on the follower", lambda: stat(b, "sliced_replies_in_progress") == 1)
            expect(b.call("GET", key(7)) == b"v", "GET on the follower during KEYS")
            expect(stat(b, "sliced_replies_in_progress") == 1, "KEYS complete before the GET's answer was read")
            expect(w.call("SET", "written-during-keys", "1") == "OK", "SET on the leader")
            written = int(leader.info()["last_index"])
            wait_for("the SET committed on the follower", lambda: int(f.info()["commit_index"]) >= written)
            expect(int(f.info()["applied_index"]) < written, "the follower applied the SET during KEYS")
            expect(b.call("EXISTS", "written-during-keys") == 0, "the SET visible on the follower during KEYS")
            expect(stat(b, "sliced_replies_in_progress") == 1, "KEYS complete before EXISTS was answered")
            sliced = read_exactly(a, len(whole))
            if sliced != whole:
                raise harness.TestFailure("the follower's KEYS differs from the leader's")
            expect(read_exactly(a, 7) == b"+PONG\r\n", "PING's reply after KEYS")
            wait_for("the SET applied on the follower", lambda: int(f.info()["applied_index"]) >= written)
            expect(b.call("EXISTS", "written-during-keys") == 1, "the SET not applied on the follower after KEYS")
            print("follower: KEYS * of %d keys in %d slices, the SET applied after it"
                  % (KEYS, stat(b, "reply_slices")))
        a.close()
    finally:
        c.kill_all()
    harness.remove_work_dir(work)
    print("big_reply_test --case follower: OK")


def run(binary):
    work = harness.make_work_dir("hmdb-big-reply-")
    server = harness.Server(binary, os.path.join(work, "data"), work, durability="none",
                            extra_args=["--test-slice-elements", str(SLICE), "--test-slice-reader-wait-ms",
                                        str(READER_WAIT_MS)], name="big-reply")
    server.start()
    try:
        with server.client(timeout=WAIT_S) as c:
            for start in range(0, KEYS, 5000):
                words = ["MSET"]
                for i in range(start, min(KEYS, start + 5000)):
                    words += [key(i), "v"]
                expect(c.call(*words) == "OK", "MSET failed")

        # The reply made whole: KEYS inside a transaction is never sliced. As raw bytes:
        # EXEC's "*1\r\n" and then KEYS' reply.
        a = socket.create_connection((harness.HOST, server.port))
        a.sendall(resp.encode_command(["MULTI"]) + resp.encode_command(["KEYS", "*"]) +
                  resp.encode_command(["EXEC"]))
        expect(read_exactly(a, len(b"+OK\r\n+QUEUED\r\n")) == b"+OK\r\n+QUEUED\r\n", "MULTI/KEYS not queued")
        head = read_exactly(a, 4)
        expect(head == b"*1\r\n", "EXEC's reply starts %r" % head)
        first = read_exactly(a, len(b"*%d\r\n" % KEYS))
        expect(first == b"*%d\r\n" % KEYS, "KEYS in EXEC starts %r" % first)
        element = b"$%d\r\n" % KEY_BYTES
        whole = first + read_exactly(a, KEYS * (len(element) + KEY_BYTES + 2))

        with server.client(timeout=WAIT_S) as b, server.client(timeout=WAIT_S) as c:
            before = info(b)
            expect(int(before["sliced_replies_in_progress"]) == 0, "a sliced reply in progress before KEYS")
            # A sends KEYS * and a PING behind it, and reads nothing yet.
            a.sendall(resp.encode_command(["KEYS", "*"]) + resp.encode_command(["PING"]))
            wait_for("KEYS in progress", lambda: stat(b, "sliced_replies_in_progress") == 1)
            # Another client's read is served between slices.
            expect(c.call("GET", key(7)) == b"v", "GET during KEYS")
            expect(stat(b, "sliced_replies_in_progress") == 1, "KEYS complete before the GET's answer was read")
            # A write sent now is logged, not applied, until KEYS is complete.
            writes = stat(c, "total_writes")
            b.send([["SET", "written-during-keys", "1"]])
            wait_for("the SET proposed", lambda: stat(c, "total_writes") > writes)
            expect(c.call("EXISTS", "written-during-keys") == 0, "the SET applied while KEYS was in progress")
            expect(stat(c, "sliced_replies_in_progress") == 1, "KEYS complete before EXISTS was answered")
            # A reads: the same bytes as the whole reply, then the PING's answer.
            sliced = read_exactly(a, len(whole))
            if sliced != whole:
                raise harness.TestFailure("sliced KEYS differs from the whole reply (first difference at byte %d)"
                                          % next(i for i in range(len(whole)) if sliced[i] != whole[i]))
            expect(read_exactly(a, 7) == b"+PONG\r\n", "PING's reply after KEYS")
            expect(b.read_reply() == "OK", "the SET sent during KEYS")
            expect(c.call("EXISTS", "written-during-keys") == 1, "the SET not applied after KEYS")
            after = info(c)
            slices = int(after["reply_slices"]) - int(before["reply_slices"])
            turns = int(after["loop_turns"]) - int(before["loop_turns"])
            print("KEYS * of %d keys: %d slices, %d loop turns, %d sliced replies"
                  % (KEYS, slices, turns, int(after["sliced_replies"]) - int(before["sliced_replies"])))
            # KEYS * with no expiring key needs no pass to count: KEYS / SLICE slices.
            expect(slices >= KEYS // SLICE, "only %d slices" % slices)
            expect(turns >= slices, "%d slices in %d loop turns" % (slices, turns))
        a.close()

        if redis is None:
            print("redis-py part skipped: python3-redis is not installed (bash scripts/install-deps.sh)")
        else:
            r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=WAIT_S)
            sliced_before = int(r.info("stats")["sliced_replies"])
            keys = r.keys("*")
            p = r.pipeline(transaction=True)
            p.keys("*")
            (in_transaction,) = p.execute()
            expect(len(keys) == KEYS + 1, "redis-py KEYS: %d keys" % len(keys))
            expect(keys == in_transaction, "redis-py: sliced KEYS differs from KEYS in a transaction")
            expect(int(r.info("stats")["sliced_replies"]) == sliced_before + 1, "redis-py's KEYS was not sliced")
            print("redis-py: KEYS * (%d keys) sliced, equal to the transaction's" % len(keys))
            # ZLEXCOUNT over unequal scores walks what ZRANGE BYLEX selects, in slices
            # (docs/kv-commands.md): members m00000..m02999 with scores i % 3, the whole range
            # ("-" to "+": every member, as Redis counts it; on narrower ranges over unequal
            # scores Redis leaves the result undefined) is a walk of 3 slices. The count is
            # the same inside a transaction (never sliced) and what ZRANGEBYLEX lists there.
            r.zadd("zl", {"m%05d" % i: i % 3 for i in range(3 * SLICE)})
            sliced_before = int(r.info("stats")["sliced_replies"])
            count = r.zlexcount("zl", "-", "+")
            expect(int(r.info("stats")["sliced_replies"]) == sliced_before + 1, "redis-py's ZLEXCOUNT was not sliced")
            p = r.pipeline(transaction=True)
            p.zlexcount("zl", "-", "+")
            p.zrangebylex("zl", "-", "+")
            in_transaction, members = p.execute()
            expect(count == 3 * SLICE, "redis-py: ZLEXCOUNT counted %d, not %d" % (count, 3 * SLICE))
            expect(in_transaction == count, "redis-py: ZLEXCOUNT %d sliced, %d in a transaction" % (count, in_transaction))
            expect(members == [b"m%05d" % i for k in range(3) for i in range(k, 3 * SLICE, 3)],
                   "redis-py: ZRANGEBYLEX listed %d members, not the order's" % len(members))
            print("redis-py: ZLEXCOUNT over unequal scores sliced, %d members" % count)
        expect(server.terminate() == 0, "server exit code")
    finally:
        server.kill()
    run_slow_reader(binary, work)
    harness.remove_work_dir(work)
    print("big_reply_test: OK")


def run_slow_reader(binary, work):
    """With the default wait for a slow reader: client A sends KEYS * and reads nothing (its
    ~21 MB cannot leave); another client's SET is still applied and answered while A reads
    nothing, because the reply went on without A after the wait, buffered
    (slice_reader_waits_expired grew, nothing in progress). Then A reads the whole reply,
    without the SET's key in it."""
    server = harness.Server(binary, os.path.join(work, "data-slow"), work, durability="none",
                            extra_args=["--test-slice-elements", str(SLICE)], name="big-reply-slow")
    server.start()
    try:
        with server.client(timeout=WAIT_S) as c:
            load_keys(c)
            expired = stat(c, "slice_reader_waits_expired")
            overdue = stat(c, "slice_hold_overdue_turns")
            a = socket.create_connection((harness.HOST, server.port))
            a.sendall(resp.encode_command(["KEYS", "*"]))
            wait_for("KEYS started", lambda: stat(c, "sliced_replies") >= 1)
            # Answered although A has read nothing: the SET waited only for the reply's slices.
            expect(c.call("SET", "written-while-a-reads-nothing", "1") == "OK", "the SET during the slow read")
            expect(stat(c, "sliced_replies_in_progress") == 0, "KEYS still in progress after the SET was answered")
            expect(stat(c, "slice_reader_waits_expired") > expired, "no slice was made past the wait for the reader")
            # Not by the 30 s bound on the hold (how a reader that never read let go before).
            expect(stat(c, "slice_hold_overdue_turns") == overdue, "the reply was finished by the 30 s hold bound")
            reply = keys_reply_from(a)
            expect(b"written-while-a-reads-nothing" not in reply, "the SET's key is in the KEYS reply")
            a.close()
            print("slow reader: a SET answered while the KEYS client read nothing (%d slices made past the wait)"
                  % (stat(c, "slice_reader_waits_expired") - expired))
        expect(server.terminate() == 0, "server exit code")
    finally:
        server.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=["single", "follower"], default="single")
    ap.add_argument("binary")
    args = ap.parse_args()
    if args.case == "follower":
        run_follower(args.binary)
    else:
        run(args.binary)


if __name__ == "__main__":
    main()
