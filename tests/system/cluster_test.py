#!/usr/bin/env python3
"""Cluster operations with real processes (issue 4, "What a user must be able to do"):
each case starts its own 3-node cluster (tests/system/cluster.py) and checks one promise.

  redirect   a follower forwards a plain client's reads and writes to the leader; it
             answers them -MOVED naming the leader's client address to a cluster client (one
             that sent CLIENT NO-FORWARD ON, or asked for CLUSTER SLOTS); READONLY lets a
             follower serve its (stale) state; INFO replication and CLUSTER MEMBERS describe
             the cluster. (tests/system/forward_test.py checks forwarding in depth.)
  failover   kill -9 the leader while a client writes: a new leader takes writes, no
             acknowledged write is lost; the old leader restarts, rejoins as a follower and
             catches up by log; all digests agree.
  snapshot   a follower is down while the leader's log is compacted by a snapshot: on
             restart it catches up by receiving the snapshot (its log says so), then the log.
             It syncs, verifies and loads the snapshot off its event loop: with
             --test-snapshot-load-hold-messages neither the file's sync and verification (the
             install is recorded only after them) nor the decoding can finish before the loop
             sent that many messages to its peers during it (answers to the leader's
             heartbeats and appends), and INFO says it did; a client writes meanwhile, and
             every acknowledged write is on every node.
  membership while a client writes: a brand-new node (--join) is added as a learner,
             catches up, is promoted, receives the leadership (CLUSTER TRANSFER), and an
             original node is removed and then stops by itself (exit code 4); every
             acknowledged write is on every member.
  removed    a follower is stopped (SIGSTOP) while it is removed, so it cannot apply its
             removal; resumed, it is refused by the members as a non-member of their newer
             membership, says so in one line and exits with code 4, its data directory
             kept; the two remaining members go on taking writes. Then the leader of the
             moment removes itself: it answers OK, applies its removal and exits with code 4
             too, and the last member leads alone. (Any election meanwhile, as a loaded
             machine causes, moves the commands to the leader of the moment.)
  refusal    a node started with another --cluster-id is refused by the members (a log
             line) and never receives the log.
  releader   (issue 9) a leader whose uncommitted tail a new leader truncates leads again:
             kill -9 both followers while a client pipelines SETs to the leader (one every
             5 ms, so each is its own entry); SIGSTOP the leader; restart the followers and
             let one lead; SIGCONT the old leader. Once it has caught up as a follower, every
             pipelined SET has its answer ("write outcome unknown", or a redirect for those
             that arrived after it stepped down) and nothing is left in flight; `hmdb cluster
             transfer` makes it lead again, and its first write succeeds (it used to abort:
             "two proposals at index N").
  topology   the Redis Cluster view (issue 11): every node answers CLUSTER SLOTS, NODES,
             SHARDS, INFO and MYID with one shard owning slots 0-16383, the leader its master
             and the other members its replicas; INFO says cluster_enabled:1. After kill -9
             of the leader every surviving node reports the new leader as master.
  logmem     (issue 16 item 7) --log-memory-bytes LOGMEM_BOUND: a follower is killed, the
             leader takes LOGMEM_WRITES SETs from redis-cli (several times the bound, less than
             --snapshot-log-bytes, so no snapshot is taken by the size rule) and drops the
             entries beyond the bound from memory (INFO log_bytes, first_index). The follower
             restarts: the leader asks for a fresh snapshot (INFO snapshots_wanted, a log line),
             the follower installs it and then holds every key (read back with redis-cli,
             READONLY); digests agree. Then the follower is killed for a few writes (within the
             bound): it catches up from entries, no snapshot asked for. Every node keeps the
             bound, so these hold whichever of the two others leads (a loaded machine moves
             leadership): the leader's counters are summed over both.
  abandoned  a leadership transfer to a stopped follower (SIGSTOP): `hmdb cluster transfer`
             gets the leader's "abandoned" error ("...; node L still leads", sent once the
             consensus core drops the transfer, one election timeout), not the 10 s bound's
             "did not finish"; the leader leads on in the same term and a redis-cli SET to it
             is answered OK while the follower is still stopped; resumed, the follower holds
             it and the digests agree. An attempt whose leader's term moved (an election of
             a loaded machine's, not the transfer's doing) is tried again, ABANDONED_ATTEMPTS
             in all. No timing is asserted (the seconds the reply took are printed). --plant
             runs the nodes with --test-plant-transfer-waits-for-deadline (the reply waits
             for the 10 s bound, as before 52f3725): the case must fail.
  lostlead   (675f28a) a leadership transfer whose leader loses its leadership to ANOTHER node
             than the target is answered at once naming the node that leads, not at the 10 s
             bound. Leader L, target T, third node X (nftables link cuts, cluster.Network):
             L<->T is cut and a SET committed by L and X leaves T's log behind (so T can win
             no election); then L<->X is cut too and `hmdb cluster transfer T` is sent to L.
             L, hearing no voter, steps down at its next check-quorum round with the
             transfer pending (a transfer answered "still leads" meanwhile, its check having
             passed on what L heard before the cut, is sent again, LOSTLEAD_TRANSFERS in all;
             an attempt whose L stepped down before a transfer reached it is tried again,
             LOSTLEAD_ATTEMPTS in all);
             X and T elect X; the links heal, L hears X's heartbeat and must answer
             "...abandoned: node L lost its leadership meanwhile; node X leads now" (not the
             bound's "did not finish within"). No timing is asserted. --plant runs the nodes
             with --test-plant-transfer-ignores-lost-leadership (the reply waits for the
             bound): the case must fail. Needs nftables (root); skipped (77) without.
  names      every address is localhost:PORT (--bind, --peer-addr, --initial-cluster):
             peers dial the name, -MOVED, INFO and CLUSTER MEMBERS carry it, `hmdb cluster
             status` follows it, and the failover case passes as with numeric addresses.
  ipv6       the same on ::1 ([::1]:PORT everywhere); skipped (exit 77) on a machine
             without IPv6 loopback.
  rounds     (issue 16 item 6) a follower makes one disk round per write it receives: the
             leader's append that only carries the new commit index costs it no round of its
             own (server/disk_thread.h: the hard state that only moved its commit waits for
             the next round), so ROUNDS_WRITES SETs sent one at a time cost each follower at
             most that many rounds (a round of their own for those appends made it about
             twice as many). After a clean stop the follower's log ends with a hard state
             whose commit is the last index it knew committed: the waiting hint is written
             at stop.

Every wait is a bounded poll of a real condition (cluster.py); the writer records exactly
which writes were acknowledged. Usage: cluster_test.py [--case NAME] [--keep] [--plant] HMDB_BINARY
"""

import argparse
import os
import re
import socket
import subprocess
import sys
import threading
import time

import cluster as cl
import harness
import resp

# Bounds of the waits below.
LEADER_TIMEOUT_S = 20.0
CONVERGE_TIMEOUT_S = 60.0
WRITE_TIMEOUT_S = 2.0
# Snapshot case: values written while the follower is down (enough to pass the 1 MiB
# snapshot trigger several times over).
SNAPSHOT_CASE_WRITES = 3000
# Rounds case: SETs sent one at a time, and how often a measurement disturbed by a leader
# change (whose votes and terms need rounds of their own) is tried again.
ROUNDS_WRITES = 20
ROUNDS_ATTEMPTS = 3
SNAPSHOT_CASE_VALUE_BYTES = 1024
# Messages to peers the follower's loop must send while it loads the leader's snapshot (a
# loop that loaded in its own turn would never finish the load: the case times out).
SNAPSHOT_CASE_LOAD_MESSAGES = 10
# Logmem case: the log memory bound, and the SETs (of ~LOGMEM_VALUE_BYTES) written while the
# follower is down: 6 times the bound, under --snapshot-log-bytes (1 MiB here).
LOGMEM_BOUND = 65536
LOGMEM_WRITES = 3000
LOGMEM_VALUE_BYTES = 100
LOGMEM_FEW_WRITES = 20
# A removed node's exit code (kExitRemoved, src/server/node.h; docs/cluster.md) and how
# long it may take to stop once it can hear from the members (it is refused at its next
# dial: a re-dial backoff of at most 1 s, then the drain).
REMOVED_EXIT_CODE = 4
REMOVED_EXIT_TIMEOUT_S = 30.0
# How long one CLUSTER REMOVE may take to be answered: the entry commits and applies (an
# fdatasync on each of two voters; seconds under disk load).
REMOVE_CALL_TIMEOUT_S = 15.0
# How long case membership retries a change its leader refused as busy (leader_call).
MEMBERSHIP_BUSY_RETRY_S = 30.0
# Abandoned case: attempts at a transfer during which the leader's term stays (one that an
# election of the loaded machine's disturbed is tried again).
ABANDONED_ATTEMPTS = 3
# The planted bug --plant gives the abandoned case's nodes (options.h): the abandoned
# transfer is answered at the 10 s bound instead.
ABANDONED_PLANT_ARGS = ["--test-plant-transfer-waits-for-deadline"]
# Lostlead case: transfers sent to the isolated leader until one is pending when it steps
# down (the first may be answered "still leads": its check-quorum round counted what the
# leader heard before the cut; the next starts just after a round, with nothing heard since).
LOSTLEAD_TRANSFERS = 3
# ... and attempts in all: one whose leader stepped down before a transfer reached it (the
# tool started late on a loaded machine) is tried again.
LOSTLEAD_ATTEMPTS = 3
# The planted bug --plant gives the lostlead case's nodes (options.h): a transfer whose
# leader lost its leadership to another node is answered only at the 10 s bound.
LOSTLEAD_PLANT_ARGS = ["--test-plant-transfer-ignores-lost-leadership"]
# The planted bug each case's --plant gives its nodes.
PLANTS = {"abandoned": ABANDONED_PLANT_ARGS, "lostlead": LOSTLEAD_PLANT_ARGS}


class Writer(threading.Thread):
    """SETs w:<n> = <n> one at a time on whichever node leads (following -MOVED, trying the
    next node otherwise) and records the acknowledged ones."""

    def __init__(self, nodes_fn, prefix="w"):
        super().__init__(daemon=True)
        self.nodes_fn = nodes_fn
        self.prefix = prefix
        self.acked = []
        self.stop = threading.Event()
        self.errors = 0

    def run(self):
        n = 0
        target = None
        while not self.stop.is_set():
            nodes = self.nodes_fn()
            node = target or nodes[n % len(nodes)]
            key = "%s:%d" % (self.prefix, n)
            try:
                with node.client(timeout=WRITE_TIMEOUT_S) as c:
                    reply = c.call("SET", key, str(n))
            except (resp.ConnectionLost, resp.ProtocolError, OSError):
                reply = None
            if reply == "OK":
                self.acked.append(n)
                n += 1
                continue
            # A redirect, no leader yet, a lost connection or an unknown outcome: the write
            # may or may not have happened; it is not counted as acknowledged. Retry the same
            # key (a SET is idempotent) on the named leader or the next node.
            self.errors += 1
            target = None
            if isinstance(reply, resp.RespError) and reply.message.startswith("MOVED"):
                addr = reply.message.split()[-1]
                for cand in nodes:
                    if cand.moved_addr == addr:
                        target = cand
            else:
                n_next = nodes.index(node) + 1 if node in nodes else 0
                target = nodes[n_next % len(nodes)]
                time.sleep(cl.POLL_INTERVAL_S)

    def finish(self):
        self.stop.set()
        self.join(timeout=WRITE_TIMEOUT_S * 3)


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def check_writes_everywhere(nodes, writer):
    """Every acknowledged write, read with READONLY from every node."""
    for node in nodes:
        with node.client() as c:
            expect(c.call("READONLY") == "OK", "%s: READONLY refused" % node)
            for n in writer.acked:
                v = c.call("GET", "%s:%d" % (writer.prefix, n))
                expect(v == str(n).encode(), "%s lost acknowledged write %s:%d (GET -> %r)" % (node, writer.prefix, n, v))


def check_digests(nodes):
    digests = {node: node.digest() for node in nodes}
    expect(len(set(digests.values())) == 1, "digests differ: %s" % digests)
    return digests


def wait_for(cond, timeout, what):
    """harness.wait_for at the cluster's poll interval (replace_test.py uses it too)."""
    return harness.wait_for(what, timeout, cond, cl.POLL_INTERVAL_S)


def wait_exit(node, timeout, what):
    """Until node's process ends by itself; returns its exit code (and forgets the process)."""
    deadline = time.monotonic() + timeout
    while node.proc.poll() is None:
        if time.monotonic() > deadline:
            raise harness.TestFailure("timed out after %.0fs waiting for %s\n%s" % (timeout, what, node.log_tail()))
        time.sleep(cl.POLL_INTERVAL_S)
    return node.kill()  # it has exited: this only reaps it


def removal_line(node):
    """(config index, how) from the removed node's log line, or None."""
    m = re.search(r"this node \(id %d\) was removed from the cluster by the configuration at index (\d+) "
                  r"\(([^)]*)\); it stops" % node.id, node.log())
    return (int(m.group(1)), m.group(2)) if m else None


def expect_removed_exit(node, code, index):
    """node exited with the removed code after its one log line, naming the REMOVE's index."""
    expect(code == REMOVED_EXIT_CODE, "%s exited with code %r, expected %d\n%s"
           % (node, code, REMOVED_EXIT_CODE, node.log_tail()))
    line = removal_line(node)
    expect(line is not None, "%s did not log that it was removed:\n%s" % (node, node.log_tail()))
    expect(line[0] == index, "%s names the configuration at index %d, the removal is at %d" % (node, line[0], index))
    expect("stopped cleanly" in node.log(), "%s did not stop cleanly:\n%s" % (node, node.log_tail()))
    expect(os.listdir(node.data_dir), "%s: the data directory was emptied" % node)
    return line


def proposed_index(leader, what):
    """The log index of the leader's last "cluster: proposed <what> at index N" line."""
    found = re.findall(r"cluster: proposed %s at index (\d+)" % re.escape(what), leader.log())
    expect(found, "%s did not log proposing %s" % (leader, what))
    return int(found[-1])


def cluster_client_call(node, *args, mark=("CLIENT", "NO-FORWARD", "ON")):
    """One command on a connection of a cluster client: a follower answers it -MOVED
    instead of forwarding it (mark: CLIENT NO-FORWARD ON, or asking CLUSTER SLOTS)."""
    with node.client() as c:
        c.call(*mark)
        return c.call(*args)


def case_redirect(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    expect(leader.call("SET", "k", "v1") == "OK", "leader refused a write")
    for mark in (("CLIENT", "NO-FORWARD", "ON"), ("CLUSTER", "SLOTS")):
        for cmd in (("SET", "k", "v2"), ("GET", "k")):
            r = cluster_client_call(follower, *cmd, mark=mark)
            want = "MOVED %d %s" % (cl.key_slot(cmd[1]), leader.moved_addr)
            expect(isinstance(r, resp.RespError) and r.message == want,
                   "follower answered %r to %r after %r, expected -%s" % (r, cmd, mark, want))
    # A plain client: the follower runs its commands on the leader.
    with follower.client() as fc:
        expect(fc.call("GET", "k") == b"v1", "a follower's forwarded GET did not read the leader's value")
        expect(fc.call("SET", "k", "v1") == "OK", "a follower's forwarded SET failed")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    with follower.client() as fc:
        expect(fc.call("READONLY") == "OK", "READONLY refused")
        expect(fc.call("GET", "k") == b"v1", "READONLY GET on a follower did not see the committed value")
        r = fc.call("SET", "k", "v3")
        expect(isinstance(r, resp.RespError) and r.message.startswith("MOVED"), "READONLY let a follower write: %r" % (r,))
    expect(leader.call("GET", "k") == b"v1", "the follower's refused write changed the value")
    info = follower.info()
    for field in ("role", "term", "leader_id", "leader_addr", "commit_index", "applied_index"):
        expect(field in info, "INFO replication lacks %s: %s" % (field, info))
    expect(info["role"] == "follower" and info["leader_addr"] == leader.client_addr, "follower INFO: %s" % info)
    linfo = leader.info()
    peers = [k for k in linfo if k.startswith("peer")]
    expect(len(peers) == 2 and all("lag=" in linfo[p] for p in peers), "leader INFO lacks per-peer lag: %s" % linfo)
    members = leader.call("CLUSTER", "MEMBERS").decode()
    expect(len(members.strip().splitlines()) == 3 and "leader" in members, "CLUSTER MEMBERS: %r" % members)


def case_failover(c):
    old = c.wait_leader(LEADER_TIMEOUT_S)
    w = Writer(lambda: c.nodes)
    w.start()
    wait_for(lambda: len(w.acked) >= 50, 30, "50 writes before the kill")
    old.kill()
    before = len(w.acked)
    survivors = [n for n in c.nodes if n is not old]
    new = c.wait_leader(LEADER_TIMEOUT_S, nodes=survivors)
    expect(new is not old, "no new leader")
    wait_for(lambda: len(w.acked) >= before + 50, 30, "50 writes on the new leader")
    old.start()
    wait_for(lambda: len(w.acked) >= before + 100, 30, "writes after the old leader restarted")
    w.finish()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    info = old.info()
    expect(info["role"] == "follower", "the old leader did not rejoin as a follower: %s" % info)
    check_writes_everywhere(c.nodes, w)
    check_digests(c.nodes)
    print("failover: %d writes acknowledged, %d retried; %s took over from %s" % (len(w.acked), w.errors, new, old))


def case_snapshot(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    down = next(n for n in c.nodes if n is not leader)
    expect(leader.call("SET", "early", "1") == "OK", "write refused")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    down.kill()
    value = "x" * SNAPSHOT_CASE_VALUE_BYTES
    with leader.client() as lc:
        for i in range(SNAPSHOT_CASE_WRITES):
            expect(lc.call("SET", "s:%d" % (i % 500), "%d:%s" % (i, value)) == "OK", "write %d refused" % i)
        reply = lc.call("SNAPSHOT")
        expect(isinstance(reply, str) and reply.startswith("OK"), "SNAPSHOT answered %r" % (reply,))
    # The leader's log must no longer reach back to what the follower has.
    first = int(leader.info()["first_index"])
    expect(first > 2, "the leader's log was not compacted (first_index %d)" % first)
    down.extra_args = ["--test-snapshot-load-hold-messages=%d" % SNAPSHOT_CASE_LOAD_MESSAGES]
    # Writes go on while the follower loads (it stores the entries and applies them after
    # the swap; it answers its own clients -LOADING meanwhile, which the writer retries).
    w = Writer(lambda: c.nodes)
    w.start()
    down.start()

    def loaded():
        try:
            info = cl.parse_info(down.call("INFO", "persistence"))
        except (resp.ConnectionLost, resp.ProtocolError, OSError):
            return False
        return int(info.get("snapshot_installs", 0)) >= 1 and info.get("loading") == "0"
    wait_for(loaded, CONVERGE_TIMEOUT_S, "the follower loaded the leader's snapshot")
    acked = len(w.acked)
    wait_for(lambda: len(w.acked) >= acked + 20, 30, "20 writes after the follower loaded the snapshot")
    w.finish()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    check_writes_everywhere(c.nodes, w)
    log = down.log()
    expect("installed the leader's snapshot" in log, "the follower did not catch up by snapshot:\n%s" % down.log_tail())
    expect("loaded the leader's snapshot" in log, "the follower did not say it loaded the snapshot:\n%s" % down.log_tail())
    info = cl.parse_info(down.call("INFO", "persistence"))
    expect(int(info["snapshot_installs"]) >= 1 and info["loading"] == "0", "INFO after the install: %s" % info)
    prepare = int(info["last_install_prepare_messages"])
    expect(prepare >= SNAPSHOT_CASE_LOAD_MESSAGES,
           "the loop sent %d messages while the snapshot's file was synced and verified" % prepare)
    expect(int(info["last_install_load_messages"]) - prepare >= SNAPSHOT_CASE_LOAD_MESSAGES,
           "the loop sent %s messages while the snapshot loaded" % info["last_install_load_messages"])
    expect(int(info["last_install_load_turns"]) >= 1, "no loop turn while the snapshot loaded: %s" % info)
    check_digests(c.nodes)
    with down.client() as dc:
        dc.call("READONLY")
        expect(dc.call("GET", "early") == b"1", "the snapshot lost an early write")


def redis_cli(node, commands):
    """Runs `commands` (lists of words) on one connection of the real redis-cli to `node`;
    returns its reply lines."""
    text = "".join(" ".join(words) + "\n" for words in commands)
    out = subprocess.run(["redis-cli", "-h", node.ip, "-p", str(node.client_port)], input=text, capture_output=True,
                         text=True, timeout=120)
    expect(out.returncode == 0, "redis-cli failed: %r" % out.stderr)
    return out.stdout.splitlines()


def set_all(c, node, words_list):
    """SETs through redis-cli on `node` (a follower runs them on the leader); any not answered
    OK (a forwarded write whose outcome a leadership change left unknown) is sent again to the
    leader of the moment (a SET is idempotent)."""
    lines = redis_cli(node, words_list)
    replies = []
    while lines:  # redis-cli prints an error reply as its line and an empty one
        replies.append(lines.pop(0))
        if replies[-1] != "OK" and lines and lines[0] == "":
            lines.pop(0)
    expect(len(replies) == len(words_list), "redis-cli SETs: %d replies for %d, not OK: %r"
           % (len(replies), len(words_list), [r for r in replies if r != "OK"][:20]))
    again = [w for w, r in zip(words_list, replies) if r != "OK"]
    for words in again:
        _, r = cl.leader_call(c, words)
        expect(r == "OK", "%s answered %r" % (" ".join(words), r))
    return len(again)


def sum_field(nodes, field, section="replication"):
    return sum(int(cl.parse_info(n.call("INFO", section))[field]) for n in nodes)


def case_logmem(c):
    # Leadership may move at any point (a loaded machine that stalls a server past the
    # election timeout is enough; with the follower down, a stall of either other node): the
    # leader's share of the claim (it asked for a snapshot, said why) is looked for on both
    # nodes that may have led, never on the node that led when the case began.
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    down = next(n for n in c.nodes if n is not leader)
    up = [n for n in c.nodes if n is not down]
    cl.leader_call(c, ("SET", "early", "1"))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    for n in c.nodes:
        expect(int(n.info()["log_memory_bytes"]) == LOGMEM_BOUND, "INFO of %s: %s" % (n, n.info()))
    down.kill()
    pad = "x" * LOGMEM_VALUE_BYTES
    value = lambda i: "%d-%s" % (i, pad)  # noqa: E731
    resent = set_all(c, c.leader(nodes=up) or leader, [["SET", "m:%d" % i, value(i)] for i in range(LOGMEM_WRITES)])
    # Every node holds at most the bound of log in memory (raft::Config::log_memory_bytes is
    # every core's, follower or leader), so whichever leads has dropped the early entries.
    for n in up:
        info = n.info()
        expect(int(info["log_bytes"]) <= LOGMEM_BOUND + 4096,
               "%s holds %s bytes of log, bound %d" % (n, info["log_bytes"], LOGMEM_BOUND))
        expect(int(info["log_trimmed_entries"]) > LOGMEM_WRITES // 2, "few entries dropped by %s: %s" % (n, info))
    expect(sum_field(up, "snapshots_wanted") == 0, "a snapshot wanted before the follower is back: %s"
           % [n.info() for n in up])
    expect(sum_field(up, "snapshots_taken", "persistence") == 0,
           "the size rule took a snapshot (the case needs none)")
    down.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    wanted = sum_field(up, "snapshots_wanted")
    expect(wanted >= 1, "no leader asked for a snapshot: %s" % [n.info() for n in up])
    expect(any("needs log entries this node no longer holds in memory" in n.log() for n in up),
           "no leader said why it took a snapshot:\n%s" % "\n".join(n.log_tail() for n in up))
    expect("installed the leader's snapshot" in down.log(),
           "the follower did not catch up by snapshot:\n%s" % down.log_tail())
    # One install, or one per leader if leadership moved while it was sent.
    dinfo = cl.parse_info(down.call("INFO", "persistence"))
    expect(int(dinfo["snapshot_installs"]) >= 1, "INFO persistence of the follower: %s" % dinfo)
    got = redis_cli(down, [["READONLY"], ["GET", "early"]] + [["GET", "m:%d" % i] for i in range(LOGMEM_WRITES)])
    expect(got[:2] == ["OK", "1"], "READONLY / GET early on the follower: %r" % got[:2])
    missing = [i for i in range(LOGMEM_WRITES) if got[2 + i] != value(i)]
    expect(not missing, "the follower lacks %d keys, e.g. m:%s" % (len(missing), missing[:5]))
    check_digests(c.nodes)
    # Away for less than the bound's worth of writes: caught up from the entries kept by
    # whichever node leads (every node keeps the bound).
    down.kill()
    resent += set_all(c, c.leader(nodes=up) or up[0], [["SET", "f:%d" % i, str(i)] for i in range(LOGMEM_FEW_WRITES)])
    down.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    expect(sum_field(up, "snapshots_wanted") == wanted, "a snapshot asked for a follower within the bound")
    dinfo = cl.parse_info(down.call("INFO", "persistence"))
    expect(int(dinfo["snapshot_installs"]) == 0, "the follower installed a snapshot again: %s" % dinfo)
    got = redis_cli(down, [["READONLY"]] + [["GET", "f:%d" % i] for i in range(LOGMEM_FEW_WRITES)])
    expect(got == ["OK"] + [str(i) for i in range(LOGMEM_FEW_WRITES)], "the follower after the short absence: %r" % got)
    check_digests(c.nodes)
    print("logmem: %s and %s dropped %s and %s entries, asked for %d snapshot(s); %d SETs sent again"
          % (up[0], up[1], up[0].info()["log_trimmed_entries"], up[1].info()["log_trimmed_entries"], wanted, resent))


def case_abandoned(c):
    for attempt in range(1, ABANDONED_ATTEMPTS + 1):
        c.wait_converged(CONVERGE_TIMEOUT_S)
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        term = leader.info()["term"]
        target = next(n for n in c.nodes if n is not leader)
        key = "abandoned:%d" % attempt
        target.pause()
        try:
            t0 = time.monotonic()
            code, out = cl.cluster_cli(c.binary, "--addr", leader.client_addr, "transfer", str(target.id))
            seconds = time.monotonic() - t0
            info = leader.info()
            moved = info is None or info.get("term") != term
            if not moved:
                expect(info.get("role") == "leader", "%s no longer leads after the transfer: %s" % (leader, info))
                expect(code == 1 and "leadership transfer to node %d abandoned" % target.id in out,
                       "`hmdb cluster transfer %d` to the stopped %s: exit %d, not the leader's \"abandoned\" error: %r"
                       % (target.id, target, code, out))
                expect("node %d still leads" % leader.id in out and "did not finish within" not in out,
                       "the abandoned reply names the wrong leader or is the deadline's: %r" % out)
                replies = redis_cli(leader, [["SET", key, "after"], ["GET", key]])
                expect(replies == ["OK", "after"], "redis-cli SET/GET on %s after the abandoned transfer: %r"
                       % (leader, replies))
        finally:
            target.resume()
        if moved:
            print("abandoned: attempt %d: %s's term moved from %s (an election), tried again; the tool said %r"
                  % (attempt, leader, term, out))
            continue
        # Resumed, the target may still read the leader's TimeoutNow from its socket and
        # campaign: whoever leads then, the cluster converges.
        c.wait_converged(CONVERGE_TIMEOUT_S)
        got = redis_cli(target, [["READONLY"], ["GET", key]])
        expect(got == ["OK", "after"], "%s after it was resumed: %r" % (target, got))
        check_digests(c.nodes)
        print("abandoned: the transfer to the stopped %s was answered in %.2f s (not asserted): %s"
              % (target, seconds, out.strip()))
        return
    raise harness.TestFailure("the leader's term moved in each of %d attempts" % ABANDONED_ATTEMPTS)


def case_lostlead(c):
    net = cl.Network(c.nodes)
    if not net.available:
        raise SkipCase(net.why_not)
    try:
        for attempt in range(1, LOSTLEAD_ATTEMPTS + 1):
            if lostlead(c, net, attempt):
                return
            net.heal()
        raise harness.TestFailure("the leader had lost its leadership before a transfer reached it in each of %d "
                                  "attempts" % LOSTLEAD_ATTEMPTS)
    finally:
        net.heal()
        net.close()


def lostlead(c, net, attempt):
    """One attempt; False if the leader had stepped down before a transfer reached it (a
    loaded machine's slow tool start: try again)."""
    c.wait_converged(CONVERGE_TIMEOUT_S)
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    term = leader.info()["term"]
    target, third = [n for n in c.nodes if n is not leader]
    key = "lostlead:%d" % attempt
    # T is cut off from the leader and falls behind: only X can win an election without L.
    net.set_cut({(leader.id, target.id), (target.id, leader.id)})
    expect(redis_cli(leader, [["SET", key, "behind"]]) == ["OK"],
           "a SET on %s with %s cut off" % (leader, target))
    net.isolate(leader.id)
    transfer = None
    for sent in range(1, LOSTLEAD_TRANSFERS + 1):
        transfer = subprocess.Popen([c.binary, "cluster", "--addr", leader.client_addr, "transfer", str(target.id)],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def answered_or_stepped_down():
            if transfer.poll() is not None:
                return "answered"
            info = leader.info()
            return "stepped down" if info is not None and info.get("role") != "leader" else None

        what = wait_for(answered_or_stepped_down, LEADER_TIMEOUT_S, "the transfer answered or %s stepping down" % leader)
        if what == "stepped down":
            break
        out = transfer.stdout.read().decode("utf-8", "replace")
        info = leader.info()
        if "still leads" not in out and (info is None or info.get("role") != "leader" or info.get("term") != term):
            print("lostlead: attempt %d: %s no longer led (term %s -> %s) when transfer %d reached it: %r; tried again"
                  % (attempt, leader, term, info and info.get("term"), sent, out))
            return False
        expect("node %d still leads" % leader.id in out,
               "transfer %d to %s, sent to the isolated %s, answered: %r" % (sent, target, leader, out))
        print("lostlead: transfer %d was answered before %s stepped down: %s" % (sent, leader, out.strip()))
        transfer = None
    expect(transfer is not None, "%s was still leading after %d transfers" % (leader, LOSTLEAD_TRANSFERS))
    try:
        new = c.wait_leader(LEADER_TIMEOUT_S, nodes=[target, third])
        expect(new is third, "%s leads, not %s (its log is behind)" % (new, third))
        net.heal()
        out, _ = transfer.communicate(timeout=cl.CLUSTER_CLI_TIMEOUT_S)
        out = out.decode("utf-8", "replace")
    finally:
        if transfer.poll() is None:
            transfer.kill()
            transfer.wait()
    expect(transfer.returncode == 1, "`hmdb cluster transfer %d`: exit %d: %r" % (target.id, transfer.returncode, out))
    expect("leadership transfer to node %d abandoned" % target.id in out
           and "node %d lost its leadership meanwhile; node %d leads now" % (leader.id, third.id) in out
           and "did not finish within" not in out,
           "the transfer's reply does not name %s as the leader now, or is the deadline's: %r" % (third, out))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    got = redis_cli(target, [["READONLY"], ["GET", key]])
    expect(got == ["OK", "behind"], "%s after the links healed: %r" % (target, got))
    check_digests(c.nodes)
    print("lostlead: %s stepped down with the transfer to %s pending; %s won; the reply: %s"
          % (leader, target, third, out.strip()))
    return True


class SkipCase(Exception):
    """The case cannot run on this machine (the reason)."""


def case_membership(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    ip = cl.node_ip(4)
    new = cl.Node(c, 4, cl.free_port_on(ip), cl.free_port_on(ip))
    join_cmd = [c.binary, "serve", "--node-id", "4", "--bind", new.ip, "--port", str(new.client_port),
                "--peer-addr", new.peer_addr, "--join", "--cluster-id", c.cluster_id, "--dir", new.data_dir,
                "--durability", c.durability] + list(c.server_args)
    new.command = lambda: join_cmd
    members = list(c.nodes)
    w = Writer(lambda: members)
    w.start()
    wait_for(lambda: len(w.acked) >= 30, 30, "writes before the change")
    new.start()

    def leader_call(*args):
        # As the reply asks (and `hmdb cluster` does): a change refused as busy (an earlier one,
        # or a just-elected leader's first entry, not committed yet: under load, right after the
        # transfer) is tried again, within MEMBERSHIP_BUSY_RETRY_S.
        deadline = time.monotonic() + MEMBERSHIP_BUSY_RETRY_S
        while True:
            ldr = c.leader(nodes=members) or c.wait_leader(LEADER_TIMEOUT_S, nodes=members)
            r = ldr.call(*args, timeout=15)
            if not (isinstance(r, resp.RespError) and "the leader is busy" in r.message) or time.monotonic() > deadline:
                return r
            time.sleep(cl.POLL_INTERVAL_S)

    r = leader_call("CLUSTER", "ADDLEARNER", "4", new.client_addr, new.peer_addr)
    expect(r == "OK", "ADDLEARNER answered %r" % (r,))
    members.append(new)
    c.nodes.append(new)
    wait_for(lambda: (new.info() or {}).get("role") == "learner", 30, "node 4 to become a learner")
    # Caught up: its applied index reaches what the leader had committed just now.
    target = int(c.leader(nodes=members).info()["commit_index"])
    wait_for(lambda: int((new.info() or {}).get("applied_index", 0)) >= target, 60, "the learner to catch up")
    # It caught up by log: it must know every member's address (CLUSTER ADDLEARNER carries
    # them), or it could not lead them after a transfer.
    listed = new.call("CLUSTER", "MEMBERS").decode()
    expect("?" not in listed, "the new node does not know every member's address: %r" % listed)
    r = leader_call("CLUSTER", "PROMOTE", "4")
    expect(r == "OK", "PROMOTE answered %r" % (r,))
    r = leader_call("CLUSTER", "TRANSFER", "4")
    expect(r == "OK", "TRANSFER answered %r" % (r,))
    expect(c.wait_leader(LEADER_TIMEOUT_S, nodes=members) is new, "node 4 did not become the leader")
    victim = next(n for n in members if n is not new)
    r = leader_call("CLUSTER", "REMOVE", str(victim.id))
    expect(r == "OK", "REMOVE answered %r" % (r,))
    members.remove(victim)
    c.nodes.remove(victim)  # it stops by itself (below), which is not a crash
    n_before = len(w.acked)
    wait_for(lambda: len(w.acked) >= n_before + 30, 30, "writes after the removal")
    w.finish()
    # Running all along, it either applied its removal or was refused at its next dial.
    code = wait_exit(victim, REMOVED_EXIT_TIMEOUT_S, "the removed %s to stop" % victim)
    expect_removed_exit(victim, code, proposed_index(new, "REMOVE %d" % victim.id))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    listed = new.call("CLUSTER", "MEMBERS").decode()
    expect(("%d " % victim.id) not in "\n".join(l[:3] for l in listed.splitlines()) and "4 " in listed,
           "CLUSTER MEMBERS after the changes: %r" % listed)
    check_writes_everywhere(c.nodes, w)
    check_digests(c.nodes)
    print("membership: %d writes acknowledged during add/promote/transfer/remove" % len(w.acked))


def applied_change_index(node, what):
    """The log index of node's "cluster: applied membership change at index N: <what>" line:
    whichever leader proposed the change, every member that applied it names its index."""
    found = re.findall(r"cluster: applied membership change at index (\d+): %s$" % re.escape(what), node.log(), re.M)
    expect(found, "%s did not log applying %s:\n%s" % (node, what, node.log_tail()))
    return int(found[-1])


def self_removal_committed(c, gone, last, index):
    """After an unknown outcome of `gone`'s REMOVE of itself (proposed at `index`): True once
    `gone` stops by itself (the removal committed), False once the leader of the moment has
    committed `index` with `gone` still a voter (the entry there is another: replaced)."""
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while True:
        if gone.proc.poll() is not None:
            return True
        leader = c.leader()
        info = leader.info() if leader is not None else None
        if (info is not None and int(info["commit_index"]) >= index
                and str(gone.id) in info["voters"].split(",")):
            return False
        expect(time.monotonic() < deadline, "%s's removal of itself neither took nor was replaced within %.0fs"
               % (gone, CONVERGE_TIMEOUT_S))
        time.sleep(cl.POLL_INTERVAL_S)


def case_removed(c):
    # Leadership may move at any point (a loaded machine that stalls a server past the
    # election timeout is enough; with two voters left, a stall of either): every command
    # goes to the leader of the moment (cluster.leader_call), and no check names the node
    # that led when the case began.
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    victim = next(n for n in c.nodes if n is not leader)
    members = [n for n in c.nodes if n is not victim]
    cl.leader_call(c, ("SET", "before", "1"))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    victim.pause()
    # Among the two others (if the victim led by now, they elect one of themselves). A repeat
    # after an unknown outcome that finds it removed ("not a member") means the first took.
    who, r = cl.leader_call(c, ("CLUSTER", "REMOVE", str(victim.id)), nodes=members, again="is not a member",
                            call_timeout=REMOVE_CALL_TIMEOUT_S)
    expect(r == "OK", "REMOVE answered %r" % (r,))
    c.nodes.remove(victim)
    # The members applied it; the stopped node cannot have, and nobody replicates to it now.
    c.wait_converged(CONVERGE_TIMEOUT_S)
    index = applied_change_index(who, "remove node %d" % victim.id)
    for n in members:
        expect(applied_change_index(n, "remove node %d" % victim.id) == index,
               "%s applied the removal at another index than %s (%d)" % (n, who, index))
    victim.resume()
    code = wait_exit(victim, REMOVED_EXIT_TIMEOUT_S, "the removed %s to stop" % victim)
    _, how = expect_removed_exit(victim, code, index)
    expect(how in ["told by node %d" % n.id for n in members],
           "%s learnt its removal %r, expected from a member's refusal" % (victim, how))
    expect("applied membership change at index %d" % index not in victim.log(),
           "%s applied its own removal: the case did not test the refusal path" % victim)
    expect(len(re.findall(r"was removed from the cluster", victim.log())) == 1, "the removal was logged more than once")
    # The remaining two go on.
    cl.leader_call(c, ("SET", "after", "1"))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    check_digests(c.nodes)
    # The leader of the moment removes itself: it applies the change, answers the REMOVE, and
    # stops too. Asked again (of whoever leads then) only while the replies say it was not
    # executed; an unknown outcome is a failure of the case, not a retry (the removal may
    # have committed, and which node it removed is the claim).
    deadline = time.monotonic() + cl.LEADER_CALL_TIMEOUT_S
    while True:
        gone = c.wait_leader(LEADER_TIMEOUT_S)
        last = next(n for n in members if n is not gone)
        try:
            r = gone.call("CLUSTER", "REMOVE", str(gone.id), timeout=REMOVE_CALL_TIMEOUT_S)
        except (resp.ConnectionLost, OSError) as e:
            r = resp.RespError("%s (connection lost: %s)" % (cl.OUTCOME_UNKNOWN_REPLY, e))
        if isinstance(r, resp.RespError) and r.message.startswith(cl.OUTCOME_UNKNOWN_REPLY):
            # It stopped leading before the removal committed: either the entry commits under
            # `last` (then `gone` is removed all the same and stops) or it was replaced.
            if self_removal_committed(c, gone, last, proposed_index(gone, "REMOVE %d" % gone.id)):
                break
            r = resp.RespError("MOVED (the removal was replaced: asked again)")
        if not (isinstance(r, resp.RespError) and r.message.startswith(cl.NOT_EXECUTED_REPLIES)):
            expect(r == "OK", "REMOVE of the leader %s answered %r" % (gone, r))
            break
        expect(time.monotonic() < deadline, "REMOVE of the leader not executed within %.0fs: %r"
               % (cl.LEADER_CALL_TIMEOUT_S, r))
        time.sleep(cl.POLL_INTERVAL_S)
    c.nodes.remove(gone)
    code = wait_exit(gone, REMOVED_EXIT_TIMEOUT_S, "the removed leader %s to stop" % gone)
    _, how_leader = expect_removed_exit(gone, code, proposed_index(gone, "REMOVE %d" % gone.id))
    # Answered OK: it applied its removal itself. (After an unknown outcome it may have
    # learnt it from the last member's refusal instead.)
    hows = ["applied here"] + (["told by node %d" % last.id] if r != "OK" else [])
    expect(how_leader in hows, "the old leader learnt its removal %r, expected %s" % (how_leader, hows))
    expect(c.wait_leader(LEADER_TIMEOUT_S) is last, "%s did not take over alone" % last)
    expect(last.call("SET", "alone", "1") == "OK", "the last member refused a write")
    print("removed: %s stopped with code %d, %s; then the leader %s, %s" % (victim, code, how, gone, how_leader))


def case_refusal(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    ip = cl.node_ip(4)
    stranger = cl.Node(c, 4, cl.free_port_on(ip), cl.free_port_on(ip))
    cmd = [c.binary, "serve", "--node-id", "4", "--bind", stranger.ip, "--port", str(stranger.client_port),
           "--peer-addr", stranger.peer_addr, "--join", "--cluster-id", "another-cluster", "--dir",
           stranger.data_dir]
    stranger.command = lambda: cmd
    stranger.start()
    try:
        # The leader adds it: its messages to node 4 are refused by node 4 (other cluster id).
        r = leader.call("CLUSTER", "ADDLEARNER", "4", stranger.client_addr, stranger.peer_addr, timeout=15)
        expect(r == "OK", "ADDLEARNER answered %r" % (r,))
        expect(leader.call("SET", "a", "1") == "OK", "write refused")
        wait_for(lambda: "cluster id" in stranger.log(), 20, "node 4 to log the refusal of another cluster's frames")
        info = stranger.info()
        expect(int(info["applied_index"]) == 0 and int(info["last_index"]) == 0,
               "a node of another cluster received the log: %s" % info)
    finally:
        stranger.kill()


# releader: the pipelined SETs while both followers are dead, and how long the old leader
# may take to answer them once it has caught up (it answers them when the new leader's
# entries replace its tail, i.e. before it has caught up).
RELEADER_SETS = 30
RELEADER_SET_INTERVAL_S = 0.005
RELEADER_REPLY_TIMEOUT_S = 5.0
UNKNOWN_OUTCOME_ERROR = "ERR write outcome unknown"
# How long one `hmdb cluster` command may take (it retries for up to 10 s itself).
CLI_TIMEOUT_S = 60.0


def case_releader(c):
    old = c.wait_leader(LEADER_TIMEOUT_S)
    followers = [n for n in c.nodes if n is not old]
    expect(old.call("SET", "before", "1") == "OK", "write refused")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    for f in followers:
        f.kill()
    # The followers are gone, so none of these can commit: they stay in the old leader's
    # log as an uncommitted tail (or are refused once it has stepped down).
    pipe = old.client(timeout=RELEADER_REPLY_TIMEOUT_S + LEADER_TIMEOUT_S + CONVERGE_TIMEOUT_S)
    # A cluster client: once its node no longer leads, the SETs it has not run yet are
    # redirected, not forwarded to the new leader (this case is about the truncated tail).
    expect(pipe.call("CLIENT", "NO-FORWARD", "ON") == "OK", "CLIENT NO-FORWARD ON refused")
    for i in range(RELEADER_SETS):
        pipe.send([("SET", "tail:%d" % i, str(i))])
        time.sleep(RELEADER_SET_INTERVAL_S)  # pacing the client, not synchronisation: one entry each
    info = old.info()
    expect(info is not None and int(info["last_index"]) > int(info["commit_index"]),
           "the old leader holds no uncommitted tail: %s" % info)
    tail = int(info["last_index"]) - int(info["commit_index"])
    old.pause()
    for f in followers:
        f.start()
    new = c.wait_leader(LEADER_TIMEOUT_S, nodes=followers)
    expect(new.call("SET", "after", "2") == "OK", "the new leader refused a write")
    old.resume()

    def caught_up():
        i, l = old.info(), new.info()
        return (i is not None and l is not None and i.get("role") == "follower" and i.get("leader_id") == str(new.id)
                and i["applied_index"] == i["commit_index"] == i["last_index"] == l["last_index"])
    wait_for(caught_up, CONVERGE_TIMEOUT_S, "%s to catch up as a follower of %s" % (old, new))
    info = old.info()
    expect(info["inflight_batches"] == "0", "the old leader still tracks truncated proposals: %s" % info)
    # Every pipelined SET has its answer by now: none succeeded, the truncated ones are
    # "outcome unknown" at once (not left waiting until the log regrows past their index).
    replies = [pipe.read_reply() for _ in range(RELEADER_SETS)]
    pipe.close()
    unknown = [r for r in replies if isinstance(r, resp.RespError) and r.message.startswith(UNKNOWN_OUTCOME_ERROR)]
    others = [r for r in replies if r not in unknown]
    expect(all(isinstance(r, resp.RespError) and r.message.startswith(("MOVED", "CLUSTERDOWN")) for r in others),
           "unexpected replies to the truncated SETs: %r" % others)
    expect(len(unknown) >= 2, "only %d of the %d SETs (tail of %d entries) were answered 'outcome unknown': %r"
           % (len(unknown), RELEADER_SETS, tail, replies))
    # Leadership back to the old leader, the way an operator does it.
    out = subprocess.run([c.binary, "cluster", "--addr", new.client_addr, "transfer", str(old.id)],
                         capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    expect(out.returncode == 0, "hmdb cluster transfer %d failed: %s" % (old.id, out.stdout + out.stderr))
    expect(c.wait_leader(LEADER_TIMEOUT_S) is old, "leadership did not move back to %s" % old)
    try:
        reply = old.call("SET", "back", "3")
    except (resp.ConnectionLost, resp.ProtocolError) as e:
        reply = e
    c.check_alive()  # an abort shows here, with the node's log
    expect(reply == "OK", "the old leader answered its first write as leader again with %r" % (reply,))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    check_digests(c.nodes)
    for i in range(RELEADER_SETS):
        expect(old.call("GET", "tail:%d" % i) is None, "truncated SET tail:%d took effect" % i)
    for k, v in (("before", b"1"), ("after", b"2"), ("back", b"3")):
        expect(old.call("GET", k) == v, "acknowledged write %s lost" % k)


def check_addresses_are_carried(c):
    """-MOVED, INFO, CLUSTER MEMBERS and `hmdb cluster status` use the addresses as given."""
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    follower = next(n for n in c.nodes if n is not leader)
    expect(leader.call("SET", "k", "v1") == "OK", "leader refused a write")
    r = cluster_client_call(follower, "GET", "k")
    want = "MOVED %d %s" % (cl.key_slot("k"), leader.moved_addr)
    expect(isinstance(r, resp.RespError) and r.message == want, "follower answered %r, expected -%s" % (r, want))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    expect(follower.info()["leader_addr"] == leader.client_addr, "follower INFO: %s" % follower.info())
    members = leader.call("CLUSTER", "MEMBERS").decode()
    wait_topology(c.nodes, leader, c.nodes)
    for n in c.nodes:
        line = "%d %s %s voter" % (n.id, n.client_addr, n.peer_addr)
        expect(line in members, "CLUSTER MEMBERS lacks %r: %r" % (line, members))
    status = subprocess.run([c.binary, "cluster", "status", "--addr", follower.client_addr],
                            capture_output=True, text=True, timeout=60)
    expect(status.returncode == 0 and leader.client_addr in status.stdout,
           "hmdb cluster status --addr %s exited %d:\n%s%s"
           % (follower.client_addr, status.returncode, status.stdout, status.stderr))
    for n in c.nodes:
        expect("cannot dial" not in n.log(), "%s could not dial a peer:\n%s" % (n, n.log_tail()))


def topology_problem(nodes, leader, members):
    """None if every node in `nodes` presents the Redis Cluster view of `members` with
    `leader` as master; else what is wrong (the first problem found)."""
    for n in nodes:
        try:
            slots = n.call("CLUSTER", "SLOTS")
            text = n.call("CLUSTER", "NODES")
            shards = n.call("CLUSTER", "SHARDS")
            myid = n.call("CLUSTER", "MYID")
            cinfo = cl.parse_info(n.call("CLUSTER", "INFO"))
        except Exception as e:  # a node that does not answer is a problem to report, then retry
            return "%s: %s" % (n, e)
        if not (isinstance(slots, list) and len(slots) == 1 and slots[0][:2] == [0, 16383]):
            return "%s: CLUSTER SLOTS %r is not one range 0-16383" % (n, slots)
        addrs = [(e[0].decode(), e[1]) for e in slots[0][2:]]
        if addrs[0] != (leader.ip, leader.client_port):
            return "%s: CLUSTER SLOTS names %r as master, not the leader %s" % (n, addrs[0], leader)
        if sorted(addrs) != sorted((m.ip, m.client_port) for m in members):
            return "%s: CLUSTER SLOTS lists %r, not the members" % (n, addrs)
        if any(len(e) != 4 or not re.fullmatch(rb"[0-9a-f]{40}", e[2]) or e[3] != [] for e in slots[0][2:]):
            return "%s: CLUSTER SLOTS node entries are not [host, port, 40-hex id, {}]: %r" % (n, slots)
        lines = text.decode().splitlines()
        mine = [l for l in lines if "myself" in l.split()[2]]
        if len(lines) != len(members) or len(mine) != 1 or mine[0].split()[0] != myid.decode():
            return "%s: CLUSTER NODES %r does not match its MYID %r" % (n, text, myid)
        masters = [l for l in lines if "master" in l.split()[2]]
        want = "%s:%d@%d" % (leader.ip, leader.client_port, leader.peer_port)
        if len(masters) != 1 or masters[0].split()[1] != want or masters[0].split()[-1] != "0-16383":
            return "%s: CLUSTER NODES masters %r, expected %s owning 0-16383" % (n, masters, want)
        if any(l.split()[3] != masters[0].split()[0] for l in lines if l not in masters):
            return "%s: CLUSTER NODES replicas do not name the master: %r" % (n, text)
        roles = [dict(zip(node[::2], node[1::2]))[b"role"] for node in dict(zip(shards[0][::2], shards[0][1::2]))[b"nodes"]]
        if len(shards) != 1 or roles != [b"master"] + [b"replica"] * (len(members) - 1):
            return "%s: CLUSTER SHARDS %r" % (n, shards)
        if cinfo.get("cluster_state") != "ok" or cinfo.get("cluster_known_nodes") != str(len(members)):
            return "%s: CLUSTER INFO %r" % (n, cinfo)
        info = n.call("INFO", "cluster").decode()
        if "cluster_enabled:1\r\n" not in info:
            return "%s: INFO cluster %r" % (n, info)
    return None


def wait_topology(nodes, leader, members, timeout=10.0):
    """Until every node in `nodes` reports `leader` as master of `members` (a follower learns
    of a new leader from its first heartbeat); on timeout, fails with the last problem."""
    deadline = time.monotonic() + timeout
    while True:
        problem = topology_problem(nodes, leader, members)
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise harness.TestFailure("the Redis Cluster view after %.0fs: %s" % (timeout, problem))
        time.sleep(cl.POLL_INTERVAL_S)


def case_topology(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    wait_topology(c.nodes, leader, c.nodes)
    ids = {n.call("CLUSTER", "MYID") for n in c.nodes}
    expect(len(ids) == 3, "node ids are not distinct: %r" % ids)
    expect(leader.call("CLUSTER", "KEYSLOT", "123456789") == 12739, "CLUSTER KEYSLOT 123456789 is not 12739")
    # HELLO says what INFO says: cluster mode, the leader a master and the others replicas.
    # (Asked again until it holds, as wait_topology does: an election may move the leader.)
    def hello_fields(n):
        hello = n.call("HELLO", "2")
        return dict(zip(hello[0::2], hello[1::2]))

    def hello_agrees():
        lead = c.wait_leader(LEADER_TIMEOUT_S)
        return all(hello_fields(n).get(b"mode") == b"cluster" and
                   hello_fields(n).get(b"role") == (b"master" if n is lead else b"replica") for n in c.nodes)
    wait_for(hello_agrees, 30, "HELLO's mode and role on every node")
    w = Writer(lambda: c.nodes)
    w.start()
    wait_for(lambda: len(w.acked) >= 20, 30, "20 writes before the kill")
    leader.kill()
    survivors = [n for n in c.nodes if n is not leader]
    new = c.wait_leader(LEADER_TIMEOUT_S, nodes=survivors)
    # The dead node stays a member (a replica now); every survivor names the new master.
    wait_topology(survivors, new, c.nodes)
    wait_for(lambda: len(w.acked) >= 40, 30, "writes on the new leader")
    w.finish()
    for n in w.acked:
        v = new.call("GET", "%s:%d" % (w.prefix, n))
        expect(v == str(n).encode(), "acknowledged write %s:%d lost (GET -> %r)" % (w.prefix, n, v))
    # A node restarted with no majority up knows no leader, yet still presents one master
    # owning every slot (itself), so a cluster client that refreshes there gets -CLUSTERDOWN
    # and asks again, instead of a topology with no slots.
    for n in c.nodes:
        n.kill()
    alone = survivors[0]
    alone.start()
    slots = alone.call("CLUSTER", "SLOTS")
    expect(len(slots) == 1 and slots[0][:2] == [0, 16383] and slots[0][2][1] == alone.client_port,
           "CLUSTER SLOTS on %s with no leader known: %r" % (alone, slots))
    info = alone.call("CLUSTER", "INFO")
    expect(b"cluster_state:fail" in info, "CLUSTER INFO with no leader known: %r" % info)
    # As a cluster client (a plain one's SET would wait leader_wait_ms on the node first).
    with resp.Client(alone.ip, alone.client_port, timeout=cl.ADMIN_TIMEOUT_S) as conn:
        marked, reply = conn.pipeline([("CLIENT", "NO-FORWARD", "ON"), ("SET", "%s:alone" % w.prefix, "x")])
    expect(marked == "OK", "CLIENT NO-FORWARD ON: %r" % (marked,))
    expect(isinstance(reply, resp.RespError) and reply.message.startswith("CLUSTERDOWN"),
           "a cluster client's SET with no leader known: %r" % (reply,))
    print("topology: %s took over from %s; every node reported it; alone, %s presents itself" % (new, leader, alone))


def case_names(c):
    expect(all(n.ip == "localhost" for n in c.nodes), "the nodes are not addressed by name")
    check_addresses_are_carried(c)
    case_failover(c)


def case_ipv6(c):
    expect(all(n.ip == "::1" for n in c.nodes), "the nodes are not on ::1")
    check_addresses_are_carried(c)
    case_failover(c)


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def case_rounds(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    expect(leader.call("SET", "warm", "up") == "OK", "leader refused a write")
    c.wait_converged(CONVERGE_TIMEOUT_S)

    def persistence(node):
        return cl.parse_info(node.call("INFO", "persistence"))

    for attempt in range(ROUNDS_ATTEMPTS):
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        term = leader.info()["term"]
        followers = [n for n in c.nodes if n is not leader]
        before = {n: persistence(n) for n in followers + [leader]}
        for i in range(ROUNDS_WRITES):
            expect(leader.call("SET", "r%d" % i, str(i)) == "OK", "SET r%d refused" % i)
        c.wait_converged(CONVERGE_TIMEOUT_S)
        after = {n: persistence(n) for n in followers + [leader]}
        now = c.wait_leader(LEADER_TIMEOUT_S)
        if now is not leader or now.info()["term"] != term:
            print("rounds: the leader changed during attempt %d; measuring again" % attempt)
            continue
        for n in followers:
            rounds = int(after[n]["disk_rounds"]) - int(before[n]["disk_rounds"])
            print("rounds: %s made %d disk rounds for %d SETs" % (n, rounds, ROUNDS_WRITES))
            expect(rounds <= ROUNDS_WRITES, "%s made %d disk rounds for %d SETs sent one at a time"
                   % (n, rounds, ROUNDS_WRITES))
            # Its acknowledgements left from the disk thread right after each fdatasync, and no
            # round woke its loop (server/disk_thread.h, "Sending after the sync").
            sent = int(after[n]["disk_messages_sent"]) - int(before[n]["disk_messages_sent"])
            quiet = int(after[n]["disk_quiet_acks"]) - int(before[n]["disk_quiet_acks"])
            print("rounds: %s's disk thread sent %d messages; %d of its rounds did not wake the loop"
                  % (n, sent, quiet))
            expect(sent >= ROUNDS_WRITES, "%s's disk thread sent %d messages for %d SETs: the acknowledgements "
                   "went out from the loop" % (n, sent, ROUNDS_WRITES))
            expect(quiet == rounds, "%s: %d of its %d disk rounds woke the loop" % (n, rounds - quiet, rounds))
        # The leader's own acknowledgement commits nothing alone: it is taken at the turn a
        # follower's acknowledgement wakes the loop (server/disk_thread.h, "A leader's own
        # acknowledgement"). Its fdatasync starts as its appends leave, so for a write at a
        # time it comes first in all but a rare round.
        rounds = int(after[leader]["disk_rounds"]) - int(before[leader]["disk_rounds"])
        quiet = int(after[leader]["disk_quiet_acks"]) - int(before[leader]["disk_quiet_acks"])
        print("rounds: the leader %s made %d disk rounds, %d of them did not wake its loop" % (leader, rounds, quiet))
        expect(quiet > 0, "every one of the leader's %d disk rounds woke its loop" % rounds)
        break
    else:
        raise harness.TestFailure("the leader changed in each of %d attempts" % ROUNDS_ATTEMPTS)

    # A clean stop writes the deferred hint: the log's last hard state names the commit.
    follower = followers[0]
    commit = int(follower.info()["commit_index"])
    expect(follower.terminate() == 0, "%s did not stop cleanly" % follower)
    dump = subprocess.run([c.binary, "log", "dump", follower.data_dir], capture_output=True, text=True,
                          timeout=cl.CLUSTER_CLI_TIMEOUT_S)
    hints = re.findall(r"^@\d+ hardstate term=\d+ vote=\d+ commit=(\d+)$", dump.stdout, re.M)
    expect(hints, "no hard state in %s's log: %s" % (follower, (dump.stdout + dump.stderr)[-500:]))
    expect(int(hints[-1]) == commit, "%s stopped knowing commit %d, but its log's last hard state says %s"
           % (follower, commit, hints[-1]))
    follower.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)


CASES = {"redirect": case_redirect, "failover": case_failover, "topology": case_topology, "snapshot": case_snapshot,
         "membership": case_membership, "refusal": case_refusal, "removed": case_removed,
         "releader": case_releader, "names": case_names, "ipv6": case_ipv6, "rounds": case_rounds,
         "logmem": case_logmem, "abandoned": case_abandoned,
         "lostlead": case_lostlead}
# The host every node of a case uses (default: one loopback address per node, cluster.py).
CASE_HOSTS = {"names": "localhost", "ipv6": "::1"}
# Server arguments a case adds to every node's.
CASE_SERVER_ARGS = {"logmem": ["--log-memory-bytes=%d" % LOGMEM_BOUND]}
# ctest's SKIP_RETURN_CODE: the case cannot run on this machine.
SKIP_EXIT_CODE = 77


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--plant", action="store_true",
                    help="cases abandoned and lostlead: nodes with their planted bug (%s; the case must fail)"
                    % ", ".join("%s: %s" % (k, v[0]) for k, v in sorted(PLANTS.items())))
    ap.add_argument("binary")
    args = ap.parse_args()
    skipped = 0
    for name in args.case or list(CASES):
        if name == "ipv6" and not have_ipv6_loopback():
            print("skip %s: this machine has no IPv6 loopback (::1 cannot be bound)" % name)
            skipped += 1
            continue
        work = harness.make_work_dir("hmdb-cluster-%s-" % name)
        plant = PLANTS.get(name, []) if args.plant else []
        c = cl.Cluster(args.binary, work, nodes=3,
                       server_args=["--snapshot-log-bytes=1048576"] + CASE_SERVER_ARGS.get(name, []) + plant,
                       cluster_id="hmdb-cluster-test", host=CASE_HOSTS.get(name))
        t0 = time.monotonic()
        try:
            c.start()
            CASES[name](c)
            c.check_alive()
        except SkipCase as e:
            print("skip %s: %s" % (name, e))
            skipped += 1
            c.kill_all()
            harness.remove_work_dir(work)
            continue
        except harness.TestFailure as e:
            print("FAIL %s: %s" % (name, e))
            for n in c.nodes:
                print(n.log_tail())
            c.kill_all()
            print("work dir kept: %s" % work)
            return 1
        c.kill_all()
        print("ok %s (%.1f s)" % (name, time.monotonic() - t0))
        if not args.keep:
            harness.remove_work_dir(work)
    return SKIP_EXIT_CODE if skipped and skipped == len(args.case or CASES) else 0


if __name__ == "__main__":
    sys.exit(main())
