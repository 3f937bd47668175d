#!/usr/bin/python3
"""An application written with redis-py (Debian's python3-redis) that counts with retries that
never apply twice: each increment is one request with its own id, sent as

    HMDB.REQ <prefix>-<n> INCR <prefix>:counter

(docs/kv-commands.md, "Retries that never apply twice"), and after any error the app sends
the SAME words again until one attempt is answered; only then does it go on to n + 1. The
request test driver (tests/clients/request_clients_test.py) starts it, kills the leader under
it, and checks that the counter equals the number of ids acknowledged.

  request_app.py --mode cluster|plain --addr HOST:PORT --prefix P [--untagged 1]

cluster: RedisCluster(host, port) (it routes HMDB.REQ by COMMAND's key positions: the
tagged command's key); plain: redis.Redis(host, port). --untagged sends plain INCR instead
(the control: a retry after a lost reply may then apply twice).

Output, one JSON object per line (the protocol of the apps in this folder):
  {"ev": "ready", "version": V}
  {"ev": "ack", "n": N, "v": VALUE, "s": NS, "t": NS}   request N answered VALUE (the counter
                                                       after it), called at s, answered at t
  {"ev": "err", "n": N, "t": NS, "msg": ...}          an attempt of request N failed (retried)
  {"ev": "done", "acked": K}                          after "stop" on stdin (the request in
                                                       flight is finished first)
"""
import argparse
import json
import sys
import threading
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException

# An application's pause before it sends a request again.
RETRY_PAUSE_S = 0.01


def emit(**fields):
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("cluster", "plain"), required=True)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--untagged", help="any value: send plain INCR, without a request id")
    args = ap.parse_args()
    host, port = args.addr.split(",")[0].rsplit(":", 1)
    host = host.strip("[]")
    if args.mode == "cluster":
        client = RedisCluster(host=host, port=int(port))
        known = [(n.host, n.port) for n in client.get_nodes()]
    else:
        client = redis.Redis(host=host, port=int(port))
    emit(ev="ready", version=redis.__version__)

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    counter = args.prefix + ":counter"
    n = 0
    while not stop.is_set():
        request_id = "%s-%d" % (args.prefix, n)
        start = time.monotonic_ns()
        while True:  # the same request until it is answered
            try:
                if args.untagged:
                    value = client.incr(counter)
                else:
                    value = client.execute_command("HMDB.REQ", request_id, "INCR", counter)
                break
            except Exception as e:  # any failure the library reports: send it again
                emit(ev="err", n=n, t=time.monotonic_ns(), msg="%s: %s" % (type(e).__name__, e))
                time.sleep(RETRY_PAUSE_S)
                if args.mode == "cluster" and isinstance(e, RedisClusterException):
                    # redis-py 4.3 cannot reconnect a dead master (see redis_py_app.py).
                    try:
                        client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in known])
                        known = [(x.host, x.port) for x in client.get_nodes()]
                    except Exception as e2:
                        emit(ev="err", n=n, t=time.monotonic_ns(), msg="reconnect: %s: %s" % (type(e2).__name__, e2))
        emit(ev="ack", n=n, v=int(value), s=start, t=time.monotonic_ns())
        n += 1
    emit(ev="done", acked=n)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
