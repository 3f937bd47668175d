#!/usr/bin/env python3
"""Client tests with real client libraries (issue 11): each case runs an application
written with one library (apps/) against real hmdb processes and checks what the
application saw. The harness is clients.py.

  single    one node; the library's plain client (redis.Redis, new Redis(), createClient)
            given its address: SET/GET read back, then writes; every acknowledged write is
            read back.
  failover  a 3-node cluster; the library's cluster client (RedisCluster, Redis.Cluster,
            createCluster) given one node's address (node-redis: every node's, see
            clients.ALL_ADDRESSES): SET/GET read back, then while it writes, kill -9 the
            leader --kills times (restarting the killed node after each): the writes resume
            by themselves within clients.RECOVERY_TIMEOUT_S every time, and every
            acknowledged write is on the leader at the end. The time from each kill to the
            first write the app started after it is printed (a figure, not a pass/fail bound:
            bench/client_failover.py measures it).
  plain     the same with the library's plain client (redis.Redis, new Redis(), createClient)
            given node 1's address: node 1 forwards its commands to the leader, which is
            killed (never node 1: leadership is moved off it first) --kills times; the
            writes resume by themselves and every acknowledged write is on the leader.

Usage: client_test.py --case single|failover|plain --library NAME [--kills N] HMDB_BINARY
Exits 77 (ctest: skipped) when the library is not installed (scripts/install-deps.sh,
scripts/install-deps.sh).
"""
import argparse
import os
import sys
import time

import clients

SKIP_EXIT_CODE = 77
SINGLE_WRITES = 200


def case_single(binary, library, work):
    server = clients.harness.Server(binary, os.path.join(work, "data"), work)
    server.start()
    try:
        addr = "127.0.0.1:%d" % server.port
        app = clients.App(library, "plain", addr, "single", os.path.join(work, "%s-app.log" % library))
        try:
            app.wait_ready()
            app.wait_acked(SINGLE_WRITES)
            acked = app.stop()
        finally:
            app.kill()
        with server.client() as c:
            lost = [n for n in acked if c.call("GET", "single:%d" % n) != str(n).encode()]
        if lost:
            raise clients.TestFailure("%d acknowledged writes not read back: %s" % (len(lost), lost[:10]))
        print("%s %s single node: %d writes acknowledged and read back" % (library, app.version, len(acked)))
    finally:
        server.kill()


def case_failover(binary, library, work, kills, mode="cluster"):
    target = clients.HmdbTarget(binary, work)
    target.start()
    try:
        r = clients.run_failover(target, library, kills, work, mode=mode)
    finally:
        target.stop()
    if r["lost"]:
        raise clients.TestFailure("%s lost %d acknowledged writes: %s" % (library, len(r["lost"]), r["lost"][:10]))
    print("%s %s %s failover: %d writes acknowledged, none lost, %d errors retried by the app; kill -> first write: %s"
          % (library, r["version"], mode, r["acked"], r["errors"], clients.summary(r["times_ms"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=("single", "failover", "plain"), required=True)
    ap.add_argument("--library", choices=sorted(clients.LIBRARIES), required=True)
    ap.add_argument("--kills", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    missing = clients.missing_libraries([args.library])
    if missing:
        print("skip: %s" % missing[args.library])
        return SKIP_EXIT_CODE
    work = clients.harness.make_work_dir("hmdb-clients-%s-%s-" % (args.case, args.library))
    t0 = time.monotonic()
    try:
        if args.case == "single":
            case_single(os.path.abspath(args.binary), args.library, work)
        else:
            case_failover(os.path.abspath(args.binary), args.library, work, args.kills,
                          "plain" if args.case == "plain" else "cluster")
    except (clients.TestFailure, clients.harness.TestFailure, clients.harness.ServerExited) as e:
        print("FAIL %s %s: %s\nwork dir kept: %s" % (args.case, args.library, e, work))
        return 1
    print("ok %s %s (%.1f s)" % (args.case, args.library, time.monotonic() - t0))
    if not args.keep:
        clients.harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
