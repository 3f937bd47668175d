#!/usr/bin/env python3
"""Schema versions with real processes (docs/cluster.md, "Schema versions"): the ledger at
version 1 (hmdb-ledger) and at version 2 (hmdb-ledger-v2, tests/apps/ledger_v2, whose
TRANSFER takes major units where version 1 took minor ones).

  single  one node of hmdb-ledger-v2: at active version 1 it takes version 1's words
          ("2550" cents) and refuses version 2's ("25.50"); `hmdb cluster schema` shows it
          reads 1..2 with 1 active; `hmdb cluster schema activate 2` commits the activation,
          and version 2's words work. A restart replays the log (version-1 entries keep
          their meaning, the activation its place), a snapshot then another restart load the
          active version from the snapshot: balances and version survive both, and CLUSTER
          DIGEST says which version it hashed at.
  mixed   nodes 1 and 2 run hmdb-ledger-v2, node 3 hmdb-ledger (version 1): every write at
          active version 1 applies on all three, and `hmdb cluster digest` finds them
          identical at schema version 1 (version 2 hashes its state in version 1's layout).
          `hmdb cluster schema activate 2` refuses, naming node 3, and proposes nothing.
          By hand on the leader (CLUSTER SCHEMA ACTIVATE 2: 2 of 3 voters read it) the
          activation commits; node 3 stays up, blocked at it (INFO, its log, `hmdb cluster
          status` and `schema` say so; it refuses clients, a transfer to it is refused),
          nothing past the entry before applied, but it stores the log. Restarted with the
          same binary it is blocked at the same index. kill -9 of the leader: the other
          version-2 node leads (node 3 votes, never leads) and the two serve writes. Node 3
          restarted with hmdb-ledger-v2, and the old leader, catch up: identical at version 2.
  snapshot node 3 (hmdb-ledger) is stopped, version 2 activated and both other nodes' logs
          compacted (SNAPSHOT on each: whichever leads when node 3 is back has only a snapshot
          to offer it); restarted, node 3 is offered a snapshot of version 2: it refuses it,
          stays up, blocked at that snapshot's index, and says so; upgraded, it installs it.
          Its writes go to whichever node leads: an election under load (a loop stalled
          past the election timeout) is not what it tests, and with node 3 down the two others
          are the quorum, so any stall of either one moves leadership.
  gate    node 1 runs hmdb-ledger-v2, nodes 2 and 3 hmdb-ledger: the leader (node 1) refuses
          CLUSTER SCHEMA ACTIVATE 2, naming both (1 of 3 voters reads it), and proposes
          nothing.

Every wait is a bounded poll of a real condition. Usage: schema_test.py --ledger BIN
--ledger-v2 BIN [--case NAME] [--keep] [HMDB_BINARY (ignored: the ledgers are the binaries)]
"""

import argparse
import os
import sys
import time

import cluster as cl
import harness
import resp

LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0
# SNAPSHOT answers once the snapshot is written and synced (fdatasync, rename, directory
# fsync): on a disk that other engineers' benchmarks and builds share, that took more than the
# harness's 2 s bound on an admin request (cl.ADMIN_TIMEOUT_S) under load, so it has its own.
SNAPSHOT_TIMEOUT_S = 30.0


check = harness.check
cli = cl.cluster_cli


def call_ok(node, *args):
    reply = node.call(*args)
    check(not isinstance(reply, resp.RespError), "%s: %s answered %s" % (node, " ".join(args), reply))
    return reply


def server_info(node):
    return cl.parse_info(node.call("INFO", "server"))


def balance(node, account):
    reply = node.call("BALANCE", account)
    check(isinstance(reply, int), "%s: BALANCE %s answered %r" % (node, account, reply))
    return reply


def digest_version(node):
    reply = node.call("CLUSTER", "DIGEST")
    check(isinstance(reply, bytes), "%s: CLUSTER DIGEST answered %r" % (node, reply))
    return int(reply.decode().split()[2])


def accounts(node):
    for words in (["ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"], ["ACCOUNT.CREATE", "alice", "USD"]):
        check(node.call(*words) == "OK", "%s: %s refused" % (node, " ".join(words)))


def case_single(c, ledger, ledger_v2):
    n = c.node(1)
    c.wait_leader(LEADER_TIMEOUT_S)
    info = server_info(n)
    check((info.get("schema_version"), info.get("schema_version_oldest"), info.get("schema_version_active"))
          == ("2", "1", "1"), "INFO server: %r" % (info,))
    accounts(n)
    check(n.call("TRANSFER", "bank", "alice", "2550", "USD") == 1, "a version-1 TRANSFER at active version 1")
    refused = n.call("TRANSFER", "bank", "alice", "25.50", "USD")
    check(isinstance(refused, resp.RespError) and "minor units" in refused.message,
          "version 2's words at active version 1: %r" % (refused,))
    code, out = cli(ledger_v2, "--addr", n.client_addr, "schema")
    check(code == 0 and "1..2" in out and "active schema version: 1" in out, "cluster schema:\n%s" % out)
    check(digest_version(n) == 1, "the digest at active version 1")

    code, out = cli(ledger_v2, "--addr", n.client_addr, "schema", "activate", "2")
    check(code == 0 and "schema version 2 is active" in out, "cluster schema activate 2 (exit %d):\n%s" % (code, out))
    check(server_info(n).get("schema_version_active") == "2", "INFO after the activation")
    check("schema: version 2 of app ledger is active from log index" in n.log(), "the activation's log line")
    check(n.call("TRANSFER", "bank", "alice", "25.50", "USD") == 2, "version 2's words at active version 2")
    check(n.call("TRANSFER", "bank", "alice", "1", "USD", "MEMO", "tip") == 3, "a memo")
    expected = 2550 + 2550 + 100
    check(balance(n, "alice") == expected, "alice: %d" % balance(n, "alice"))
    again = n.call("CLUSTER", "SCHEMA", "ACTIVATE", "2")
    check(isinstance(again, resp.RespError) and "not above the active version 2" in again.message, repr(again))

    # Restart: the log replays, version-1 entries with version 1's meaning.
    check(n.terminate() == 0, "SIGTERM")
    n.start()
    c.wait_leader(LEADER_TIMEOUT_S)
    check(balance(n, "alice") == expected, "after the replay alice has %d" % balance(n, "alice"))
    check(server_info(n).get("schema_version_active") == "2", "the active version after the replay")
    # A snapshot, then a restart from it.
    snap = n.call("SNAPSHOT", timeout=SNAPSHOT_TIMEOUT_S)
    check(isinstance(snap, str), "SNAPSHOT answered %r" % (snap,))
    check(n.terminate() == 0, "SIGTERM")
    n.start()
    c.wait_leader(LEADER_TIMEOUT_S)
    check("recovery: loading snapshot" in n.log(), "the restart loaded the snapshot")
    check(balance(n, "alice") == expected, "after the snapshot alice has %d" % balance(n, "alice"))
    check(server_info(n).get("schema_version_active") == "2", "the active version from the snapshot")
    check(digest_version(n) == 2, "the digest at active version 2")


def wait_for(what, fn, timeout):
    """harness.wait_for at the cluster's poll interval: fn()'s first true value, or fails naming `what`."""
    return harness.wait_for(what, timeout, fn, cl.POLL_INTERVAL_S)


def blocked_at(node):
    """(schema_blocked_at_index, schema_blocked_version) from INFO server; (0, 0): not blocked."""
    info = server_info(node)
    return int(info.get("schema_blocked_at_index", "0")), int(info.get("schema_blocked_version", "0"))


def check_blocked(old, index):
    """old runs, is blocked at `index` (activating version 2), refuses clients and says so."""
    check(blocked_at(old) == (index, 2), "%s: INFO server %r" % (old, blocked_at(old)))
    check(int(old.info()["applied_index"]) == index - 1, "%s applied up to the entry before" % old)
    refused = old.call("BALANCE", "alice")
    check(isinstance(refused, resp.RespError) and ("stopped applying at log index %d" % index) in refused.message
          and "schema version 2" in refused.message, "a blocked node's reply to a query: %r" % (refused,))
    check(isinstance(old.call("CLUSTER", "DIGEST"), resp.RespError), "a blocked node has no digest")
    check(("schema: BLOCKED at log index %d" % index) in old.log(), "the log line:\n%s" % old.log_tail())


def wait_caught_up(node, leader):
    """Until node's log holds everything the leader's does (INFO last_index)."""
    wait_for("%s holds the leader's log" % node,
             lambda: int(node.info()["last_index"]) >= int(leader.info()["last_index"]), CONVERGE_TIMEOUT_S)


def case_mixed(c, ledger, ledger_v2):
    old = c.node(3)
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    accounts(leader)
    for amount in ("100", "250", "7"):
        check(leader.call("TRANSFER", "bank", "alice", amount, "USD") > 0, "a version-1 TRANSFER")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    for n in c.nodes:
        check(balance(n, "alice") == 357, "%s: alice has %d" % (n, balance(n, "alice")))
    code, out = cli(ledger_v2, "--addr", c.node(1).client_addr, "digest")
    check(code == 0 and "identical" in out and "compared at schema version 1" in out,
          "nodes of versions 1 and 2 compare at active version 1 (exit %d):\n%s" % (code, out))

    code, out = cli(ledger_v2, "--addr", c.node(1).client_addr, "schema", "activate", "2")
    check(code == 1 and "refused, nothing was proposed" in out and "node 3 (voter" in out
          and "reads schema versions 1..1" in out, "the tool refuses (exit %d):\n%s" % (code, out))
    check(all(server_info(n).get("schema_version_active") == "1" for n in c.nodes), "nothing activated")

    # By hand, on a leader that reads version 2: 2 of 3 voters read it, a quorum.
    if c.wait_leader(LEADER_TIMEOUT_S) is old:
        code, out = cli(ledger_v2, "--addr", old.client_addr, "transfer", "1")
        check(code == 0, "transfer to node 1 (exit %d):\n%s" % (code, out))
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    check(leader is not old, "a version-2 node leads")
    other = [n for n in c.nodes if n is not leader and n is not old][0]
    check(leader.call("CLUSTER", "SCHEMA", "ACTIVATE", "2") == "OK", "the activation commits")
    check("leaves these nodes blocked at the activation" in leader.log() and "node 3 (voter, reads 1..1)" in leader.log(),
          "the leader names the node it leaves blocked:\n%s" % leader.log_tail())
    index = wait_for("node 3 blocked", lambda: blocked_at(old)[0], CONVERGE_TIMEOUT_S)
    check_blocked(old, index)
    check(server_info(old).get("schema_version_active") == "1", "node 3 never applied the activation")
    # A leadership transfer to it is refused by the leader (it does not read the active version).
    code, out = cli(ledger_v2, "--addr", leader.client_addr, "transfer", "3")
    check(code == 1 and "not the active version 2" in out, "transfer to node 3 (exit %d):\n%s" % (code, out))
    # status and schema say so.
    for verb in ("status", "schema"):
        code, out = cli(ledger_v2, "--addr", leader.client_addr, verb)
        check(("node 3: BLOCKED at log index %d" % index) in out, "cluster %s:\n%s" % (verb, out))

    # Writes go on, and node 3 still stores the log.
    check(leader.call("TRANSFER", "bank", "alice", "0.43", "USD") > 0, "version 2's words once it is active")
    check(balance(leader, "alice") == 400, "alice: %d" % balance(leader, "alice"))
    wait_caught_up(old, leader)

    # Restarted with the same binary, it stops at the same place (it replays its log).
    check(old.terminate() == 0, "SIGTERM to the blocked node")
    old.start()
    wait_for("node 3 blocked again", lambda: blocked_at(old)[0], CONVERGE_TIMEOUT_S)
    check_blocked(old, index)
    check(leader.call("TRANSFER", "bank", "alice", "1", "USD") > 0, "a write after node 3 came back")
    wait_caught_up(old, leader)
    wait_caught_up(other, leader)

    # kill -9 the leader: node 3 votes for the other version-2 node but never leads, and
    # the two keep serving (every commit needs node 3's acknowledgement now).
    leader.kill()
    new_leader = c.wait_leader(LEADER_TIMEOUT_S, nodes=[other, old])
    check(new_leader is other, "the version-2 node leads, not %s" % new_leader)
    check(other.call("TRANSFER", "bank", "alice", "1", "USD") > 0, "a write with only nodes %d and 3" % other.id)
    check(balance(other, "alice") == 600, "alice: %d" % balance(other, "alice"))
    for role in ("precandidate", "candidate", "leader"):
        check((" -> %s in term" % role) not in old.log(), "node 3 never campaigned:\n%s" % old.log_tail())
    check_blocked(old, index)

    # Node 3 upgraded: the same data directory, the version-2 binary. Then the old leader.
    check(old.terminate() == 0, "SIGTERM to the blocked node")
    old.binary = ledger_v2
    old.start()
    leader.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    for n in c.nodes:
        check(balance(n, "alice") == 600, "%s: alice has %d" % (n, balance(n, "alice")))
        check(server_info(n).get("schema_version_active") == "2", "%s: active version" % n)
        check(blocked_at(n) == (0, 0), "%s: not blocked" % n)
    code, out = cli(ledger_v2, "--addr", c.node(1).client_addr, "digest")
    check(code == 0 and "identical" in out and "compared at schema version 2" in out,
          "all at version 2 (exit %d):\n%s" % (code, out))


def case_gate(c, ledger, ledger_v2):
    """Nodes 2 and 3 run version 1: the leader refuses to activate 2 (1 of 3 voters reads it)."""
    new = c.node(1)
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    accounts(leader)
    if leader is not new:
        code, out = cli(ledger_v2, "--addr", leader.client_addr, "transfer", "1")
        check(code == 0, "transfer to node 1 (exit %d):\n%s" % (code, out))
    check(c.wait_leader(LEADER_TIMEOUT_S) is new, "node 1 leads")
    # Every peer said what it reads in its hello by now: each one acknowledged an entry.
    check(new.call("TRANSFER", "bank", "alice", "5", "USD") > 0, "a write")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    refused = new.call("CLUSTER", "SCHEMA", "ACTIVATE", "2")
    check(isinstance(refused, resp.RespError) and "1 of 3 voters read schema version 2, and a quorum is 2" in refused.message
          and "node 2 (voter, reads 1..1)" in refused.message and "node 3 (voter, reads 1..1)" in refused.message,
          "the leader refuses: %r" % (refused,))
    index = c.wait_converged(CONVERGE_TIMEOUT_S)
    for n in c.nodes:
        check(server_info(n).get("schema_version_active") == "1", "%s: nothing activated" % n)
    check(new.call("TRANSFER", "bank", "alice", "5", "USD") > 0, "writes go on")
    check(c.wait_converged(CONVERGE_TIMEOUT_S) == index + 1, "one entry more: nothing was proposed")


def wait_applied(c, nodes):
    """Until every one of `nodes` applied the leader's last index (the leader among them);
    returns that index."""
    def same():
        infos = c.infos(nodes)
        leaders = [i for i in infos.values() if i.get("role") == "leader"]
        if len(infos) != len(nodes) or len(leaders) != 1:
            return None
        last = int(leaders[0]["last_index"])
        return last if all(int(i["applied_index"]) == last for i in infos.values()) else None
    return wait_for("%s applied the leader's last index" % nodes, same, CONVERGE_TIMEOUT_S)


def case_snapshot(c, ledger, ledger_v2):
    """Node 3 (version 1) is down while version 2 is activated and the others' logs are
    compacted: back, it is offered a snapshot of version 2, refuses it, stays up blocked."""
    old = c.node(3)
    others = [c.node(1), c.node(2)]
    # If node 3 leads, its SIGTERM below makes the other two elect (no transfer first: under
    # load a transfer can miss its election timeout, and nothing here depends on who leads).
    for words in (["ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"], ["ACCOUNT.CREATE", "alice", "USD"]):
        _, reply = cl.leader_call(c, words, again="already exists")
        check(reply == "OK", "%s answered %r" % (" ".join(words), reply))
    c.wait_converged(CONVERGE_TIMEOUT_S)
    check(old.terminate() == 0, "SIGTERM to node 3")
    _, reply = cl.leader_call(c, ["CLUSTER", "SCHEMA", "ACTIVATE", "2"], nodes=others,
                              again="not above the active version 2")
    check(reply == "OK", "the activation commits (2 of 3 read it): %r" % (reply,))
    _, reply = cl.leader_call(c, ["TRANSFER", "bank", "alice", "2.50", "USD", "ID", "v2-write"], nodes=others)
    check(isinstance(reply, int) and reply > 0, "a version-2 write: %r" % (reply,))
    # Both compacted past the activation: whichever leads when node 3 is back offers it a
    # snapshot, not the activation entry.
    wait_applied(c, others)
    snap_indexes = set()
    for n in others:
        snap = n.call("SNAPSHOT", timeout=SNAPSHOT_TIMEOUT_S)
        check(isinstance(snap, str) and snap.startswith("OK snapshot at index"), "%s: SNAPSHOT answered %r" % (n, snap))
        snap_indexes.add(int(snap.split()[-1]))
    old.start()
    index = wait_for("node 3 refuses the snapshot", lambda: blocked_at(old)[0], CONVERGE_TIMEOUT_S)
    check(index in snap_indexes and blocked_at(old) == (index, 2),
          "blocked at %r; the snapshots are at %r" % (blocked_at(old), sorted(snap_indexes)))
    check(("schema: BLOCKED: refused the leader's snapshot at index %d" % index) in old.log(), old.log_tail())
    refused = old.call("BALANCE", "alice")
    check(isinstance(refused, resp.RespError) and "the leader's snapshot there is of schema version 2" in refused.message,
          "a blocked node's reply: %r" % (refused,))
    _, reply = cl.leader_call(c, ["TRANSFER", "bank", "alice", "1", "USD", "ID", "after-refusal"], nodes=others)
    check(isinstance(reply, int) and reply > 0, "writes go on: %r" % (reply,))
    check(old.exited_unexpectedly() is None, "node 3 runs")
    # Upgraded, it installs the snapshot and catches up.
    check(old.terminate() == 0, "SIGTERM to node 3")
    old.binary = ledger_v2
    old.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    for n in c.nodes:
        check(balance(n, "alice") == 350, "%s: alice has %d" % (n, balance(n, "alice")))
        check(blocked_at(n) == (0, 0), "%s: not blocked" % n)


CASES = {"single": (case_single, 1), "mixed": (case_mixed, 3), "gate": (case_gate, 3), "snapshot": (case_snapshot, 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--ledger", required=True, help="hmdb-ledger (schema version 1)")
    ap.add_argument("--ledger-v2", required=True, help="hmdb-ledger-v2 (schema version 2)")
    ap.add_argument("binary", nargs="?", help="ignored (the ledgers are the binaries)")
    args = ap.parse_args()
    ledger, ledger_v2 = os.path.abspath(args.ledger), os.path.abspath(args.ledger_v2)
    for name in args.case or list(CASES):
        fn, nodes = CASES[name]
        work = harness.make_work_dir("hmdb-schema-%s-" % name)
        t0 = time.monotonic()
        c = cl.Cluster(ledger_v2, work, nodes=nodes, cluster_id="hmdb-schema")
        if name in ("mixed", "snapshot"):
            c.node(3).binary = ledger
        if name == "gate":
            c.node(2).binary = ledger
            c.node(3).binary = ledger
        try:
            c.start()
            fn(c, ledger, ledger_v2)
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
