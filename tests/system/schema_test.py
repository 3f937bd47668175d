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
          Forced on the leader (CLUSTER SCHEMA ACTIVATE 2), the activation commits on the two
          nodes that read it; node 3 stops at it with exit code 1 and says why, nothing past
          the entry before applied; the other two go on with version 2's words. Node 3
          restarted with hmdb-ledger-v2 catches up: all three identical at version 2.

Every wait is a bounded poll of a real condition. Usage: schema_test.py --ledger BIN
--ledger-v2 BIN [--case NAME] [--keep] [HMDB_BINARY (ignored: the ledgers are the binaries)]
"""

import argparse
import os
import subprocess
import sys
import time

import cluster as cl
import harness
import resp

LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 60.0


def check(condition, message):
    if not condition:
        raise harness.TestFailure(message)


def cli(binary, *args):
    """`<binary> cluster ARGS...` -> (exit code, stdout + stderr)."""
    p = subprocess.run([binary, "cluster"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=CLI_TIMEOUT_S, check=False)
    return p.returncode, p.stdout.decode("utf-8", "replace")


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
    snap = n.call("SNAPSHOT")
    check(isinstance(snap, str), "SNAPSHOT answered %r" % (snap,))
    check(n.terminate() == 0, "SIGTERM")
    n.start()
    c.wait_leader(LEADER_TIMEOUT_S)
    check("recovery: loading snapshot" in n.log(), "the restart loaded the snapshot")
    check(balance(n, "alice") == expected, "after the snapshot alice has %d" % balance(n, "alice"))
    check(server_info(n).get("schema_version_active") == "2", "the active version from the snapshot")
    check(digest_version(n) == 2, "the digest at active version 2")


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

    # Forced past the tool, on a leader that reads version 2.
    if c.wait_leader(LEADER_TIMEOUT_S) is old:
        code, out = cli(ledger_v2, "--addr", old.client_addr, "transfer", "1")
        check(code == 0, "transfer to node 1 (exit %d):\n%s" % (code, out))
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    check(leader is not old, "a version-2 node leads")
    applied_before = int(old.info()["applied_index"])
    check(leader.call("CLUSTER", "SCHEMA", "ACTIVATE", "2") == "OK", "the activation commits")
    try:
        code = old.proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("%s did not stop at the activation\n%s" % (old, old.log_tail()))
    cl._live_nodes.discard(old)
    log = old.log()
    check(code == 1, "%s exited with %d\n%s" % (old, code, old.log_tail()))
    check("activates schema version 2 of app 'ledger'; this binary reads versions 1..1: upgrade the binary" in log,
          "node 3's last words:\n%s" % old.log_tail())
    check("Nothing was applied past index" in log, old.log_tail())
    # The two version-2 nodes go on: a majority.
    check(leader.call("TRANSFER", "bank", "alice", "0.43", "USD") > 0, "version 2's words once it is active")
    check(balance(leader, "alice") == 400, "alice: %d" % balance(leader, "alice"))
    check(applied_before > 0, "node 3 had applied the version-1 entries")

    # Node 3 upgraded: the same data directory, the version-2 binary.
    old.binary = ledger_v2
    old.start()
    c.wait_converged(CONVERGE_TIMEOUT_S)
    for n in c.nodes:
        check(balance(n, "alice") == 400, "%s: alice has %d" % (n, balance(n, "alice")))
        check(server_info(n).get("schema_version_active") == "2", "%s: active version" % n)
    code, out = cli(ledger_v2, "--addr", c.node(1).client_addr, "digest")
    check(code == 0 and "compared at schema version 2" in out, "all at version 2 (exit %d):\n%s" % (code, out))


CASES = {"single": (case_single, 1), "mixed": (case_mixed, 3)}


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
        if name == "mixed":
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
