#!/usr/bin/env python3
"""Transactions with the Node.js client libraries (issue 11, item 4): apps/node_transactions.js
written with ioredis, node-redis or node-redis 4 runs multi() ... exec(), a transaction over
keys of different hash slots, and (plain clients) a WATCH conflict between two clients and
its retry; it checks every reply itself. Each library runs twice: its plain client against
one node, and its cluster client against a 3-node cluster (hmdb presents one shard owning
every slot, so a transaction across slots is allowed: no library refuses it). redis-py's
pipeline(transaction=True), WATCH and a MULTI across a failover are in
tests/system/transaction_test.py.

Usage: transaction_clients_test.py [--library NAME] HMDB_BINARY. A library that is not
installed is skipped (bash scripts/install-deps.sh); exit 77 if none is.
"""
import argparse
import json
import os
import subprocess
import sys

import clients

SKIP_EXIT_CODE = 77
NODE_LIBRARIES = ("ioredis", "node-redis", "node-redis4")
APP = os.path.join(clients.HERE, "apps", "node_transactions.js")
# How long one run of the app may take (connect, discover, a few transactions).
APP_TIMEOUT_S = 60


def run_app(library, mode, addr, prefix):
    p = subprocess.run(["node", APP, "--library", library, "--mode", mode, "--addr", addr, "--prefix", prefix],
                       capture_output=True, text=True, timeout=APP_TIMEOUT_S, cwd=clients.HERE)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    steps = [e["step"] for e in events if e.get("ev") == "step"]
    if p.returncode != 0 or not any(e.get("ev") == "done" for e in events):
        raise clients.TestFailure("%s %s: exit %d, %s\n%s" % (library, mode, p.returncode,
                                                               [e for e in events if e.get("ev") == "fail"],
                                                               p.stderr[-2000:]))
    version = next((e.get("version") for e in events if e.get("ev") == "ready"), "?")
    return version, steps


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", choices=NODE_LIBRARIES, action="append")
    ap.add_argument("binary")
    args = ap.parse_args()
    wanted = args.library or list(NODE_LIBRARIES)
    missing = clients.missing_libraries(wanted)
    for name, why in missing.items():
        print("skip %s: %s" % (name, why))
    libraries = [name for name in wanted if name not in missing]
    if not libraries:
        return SKIP_EXIT_CODE
    work = clients.harness.make_work_dir("hmdb-txn-clients-")
    try:
        server = clients.harness.Server(args.binary, os.path.join(work, "single"), work)
        server.start()
        try:
            for library in libraries:
                version, steps = run_app(library, "plain", "127.0.0.1:%d" % server.port, "p-" + library)
                print("%s %s plain client, one node: %s" % (library, version, ", ".join(steps)))
        finally:
            server.kill()
        target = clients.HmdbTarget(args.binary, os.path.join(work, "cluster"))
        target.start()
        try:
            for library in libraries:
                addr = target.all_addrs() if library in clients.ALL_ADDRESSES else target.seed_addr()
                version, steps = run_app(library, "cluster", addr, "c-" + library)
                print("%s %s cluster client, 3 nodes: %s" % (library, version, ", ".join(steps)))
        finally:
            target.stop()
    except clients.TestFailure as e:
        print("FAIL: %s" % e)
        print("work dir kept: %s" % work)
        return 1
    clients.harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
