#!/usr/bin/python3
"""An application written with redis-py (Debian's python3-redis), as a user would write it:
the client test driver (tests/clients/client_test.py) starts it and reads what it did.

  redis_py_app.py --mode cluster|plain --addr HOST:PORT --prefix P

cluster: `redis.cluster.RedisCluster(host=HOST, port=PORT)` (one node's address; the library
discovers the rest with CLUSTER SLOTS). plain: `redis.Redis(host=HOST, port=PORT)`.

It prints one JSON object per line on stdout (the protocol of every app in this folder,
apps/README in tests/clients/client_test.py's docstring):
  {"ev": "ready"}                        connected; SET then GET of P:smoke read back
  {"ev": "ack", "n": N, "s": NS, "t": NS}  SET P:N N, called at s, succeeded at t
                                         (CLOCK_MONOTONIC ns; s is this call's start)
  {"ev": "err", "n": N, "t": NS, "msg": ...}   the library gave up on SET P:N (retried)
  {"ev": "done", "acked": K}             after "stop" on stdin
Writes go one at a time; after an error the app waits RETRY_PAUSE_S and sends the same SET
again (a SET is safe to repeat), as an application's own retry loop would.

redis-py 4.3 (Debian 12's) needs one more step in cluster mode: once the master it used has
died, RedisCluster raises RedisClusterException ("cannot pickle '_thread.lock' object") on
every command, with hmdb as with a real Redis Cluster (redis-py issue #2480: it deep-copies
its connection arguments, which hold the client itself, to reconnect the dead node). So on
that exception the app builds a new RedisCluster from every node address it has seen.
"""
import argparse
import json
import sys
import threading
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

# An application's pause before it retries a write the library gave up on.
RETRY_PAUSE_S = 0.01


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("cluster", "plain"), required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--prefix", required=True)
    args = ap.parse_args()
    host, port = args.addr.rsplit(":", 1)
    host = host.strip("[]")
    if args.mode == "cluster":
        client = RedisCluster(host=host, port=int(port))
        known = [(n.host, n.port) for n in client.get_nodes()]
    else:
        client = redis.Redis(host=host, port=int(port))
    client.set(args.prefix + ":smoke", "hello")
    if client.get(args.prefix + ":smoke") != b"hello":
        emit(ev="fatal", msg="GET did not read back the SET")
        return 1
    emit(ev="ready", version=redis.__version__)

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    n = 0
    acked = 0
    while not stop.is_set():
        start = time.monotonic_ns()
        try:
            client.set("%s:%d" % (args.prefix, n), str(n))
        except Exception as e:  # any failure the library reports: retry, as an app would
            emit(ev="err", n=n, t=time.monotonic_ns(), msg="%s: %s" % (type(e).__name__, e))
            time.sleep(RETRY_PAUSE_S)
            if args.mode == "cluster" and isinstance(e, RedisClusterException):
                try:
                    client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in known])
                    known = [(n.host, n.port) for n in client.get_nodes()]
                except Exception as e2:
                    emit(ev="err", n=n, t=time.monotonic_ns(), msg="reconnect: %s: %s" % (type(e2).__name__, e2))
            continue
        emit(ev="ack", n=n, s=start, t=time.monotonic_ns())
        acked += 1
        n += 1
    emit(ev="done", acked=acked)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
