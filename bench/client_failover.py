#!/usr/bin/env python3
"""Failover as an application sees it (issue 11, item 3): for each client library, the app
of tests/clients (apps/) writes one key at a time through the library's cluster client
while the node serving it is killed with kill -9, --kills times, against a 3-node hmdb
cluster and then, in the same run, against a Redis Cluster of 3 masters + 3 replicas
(tests/clients/redis_cluster.py); and (setup "plain") through the library's plain client
given one hmdb node's address, which forwards to the leader, killed the same way (the
plain client's node itself is never the one killed: leadership is moved off it first).
A plain client has nothing to fail over to on Redis (a replica answers its writes
-MOVED, a dead master is gone): its comparison is the same library's cluster client on the
Redis Cluster, in the same run. Reported per library, setup and system: the time from each
kill to the first write the app started after it and saw acknowledged (median, max),
and acknowledged writes lost. A program, not a test: nothing here passes or fails on time.

  bench/client_failover.py [--kills 10] [--libraries redis-py,ioredis,...]
                           [--setups cluster,plain] HMDB_BINARY

Run it alone on the machine (it measures time); bench/README.md has the figures.
"""
import argparse
import json
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))

import clients  # noqa: E402
import redis_cluster  # noqa: E402


def run(target, library, kills, work, mode):
    os.makedirs(work, exist_ok=True)
    target.start()
    try:
        return clients.run_failover(target, library, kills, work, mode=mode)
    except clients.TestFailure as e:
        return {"library": library, "failed": str(e), "times_ms": [], "lost": [], "acked": 0}
    finally:
        target.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--libraries", default="redis-py,ioredis,node-redis,node-redis4")
    ap.add_argument("--setups", default="cluster,plain",
                    help="cluster: the cluster client, hmdb and Redis; plain: the plain client, hmdb only")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("binary")
    args = ap.parse_args()
    libraries = args.libraries.split(",")
    missing = clients.missing_libraries(libraries)
    if missing:
        sys.exit("not installed: %s" % missing)
    work = clients.harness.make_work_dir("hmdb-client-failover-")
    setups = args.setups.split(",")
    runs = []  # (system, setup): hmdb and Redis with the cluster client, hmdb with the plain one
    if "cluster" in setups:
        runs += [("hmdb", "cluster"), ("redis", "cluster")]
    if "plain" in setups:
        runs += [("hmdb", "plain")]
    results = []
    for library in libraries:
        for name, setup in runs:
            where = os.path.join(work, library, "%s-%s" % (name, setup))
            target = (clients.HmdbTarget(os.path.abspath(args.binary), where)
                      if name == "hmdb" else redis_cluster.RedisClusterTarget(where))
            print("== %s, %s client, against %s" % (library, setup, target.describe()), flush=True)
            r = run(target, library, args.kills, where, setup)
            r["system"] = name
            r["setup"] = setup
            results.append(r)
            print("   %s" % (r.get("failed") or "%s; %d writes acknowledged, %d lost"
                                             % (clients.summary(r["times_ms"]), r["acked"], len(r["lost"]))), flush=True)
    print("\n| library | client | system | kills | median ms | max ms | acked | lost |")
    print("|---|---|---|---|---|---|---|---|")
    by = {(r["library"], r["system"], r["setup"]): r for r in results}
    for r in results:
        t = r["times_ms"]
        print("| %s %s | %s | %s | %d | %s | %s | %d | %d |" % (
            r["library"], r.get("version") or "", r["setup"] + (" (via a follower)" if r["setup"] == "plain" else ""),
            r["system"], len(t), "%.0f" % statistics.median(t) if t else "-", "%.0f" % max(t) if t else "-",
            r["acked"], len(r["lost"])))
    print("\nratios hmdb / Redis Cluster with the cluster client (median, max):")
    for library in libraries:
        d = by.get((library, "redis", "cluster"), {}).get("times_ms")
        for setup in ("cluster", "plain"):
            h = by.get((library, "hmdb", setup), {}).get("times_ms")
            if h and d:
                print("  %s, hmdb %s client: %.2f, %.2f" % (library, setup, statistics.median(h) / statistics.median(d),
                                                             max(h) / max(d)))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    print("work dir: %s" % work)


if __name__ == "__main__":
    main()
