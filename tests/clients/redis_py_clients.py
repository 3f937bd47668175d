#!/usr/bin/python3
# tests/clients/redis_py_clients.py — Debian's redis-py (python3-redis, 4.3), unchanged,
# connecting to a server and running a few commands of each type. Prints one JSON object:
# for each client setup, what the library returned for each step (or the error it raised).
# clients_test.py runs it against redis-server and against hmdb in the same run and
# requires the same results. redis-py 4.3 speaks RESP2 only (its `protocol=3` came in 5.0).
#
#   /usr/bin/python3 redis_py_clients.py <port>
import json
import math
import sys

import redis

# A client that hangs fails its step after this long.
SOCKET_TIMEOUT_S = 5


def run(steps):
    out = {}
    for name, fn in steps:
        try:
            value = fn()
        except Exception as e:  # noqa: BLE001 — a library failing on a reply is a result too
            value = {"error": f"{type(e).__name__}: {e}"}
        out[name] = value
    return out


def plain(value):
    """JSON-friendly: sets sorted, tuples as lists, infinities as text."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def steps(c, prefix):
    k = lambda s: f"{prefix}:{s}"  # noqa: E731
    p = lambda fn: lambda: plain(fn())  # noqa: E731
    return [
        ("ping", p(lambda: c.ping())),
        ("protocol", p(lambda: c.client_info()["resp"].strip())),  # Redis 7.0 ends the line with it
        ("getname", p(lambda: c.client_getname())),
        ("select0", p(lambda: c.execute_command("SELECT", 0))),
        ("select1", p(lambda: c.execute_command("SELECT", 1))),
        ("set", p(lambda: c.set(k("s"), "v1"))),
        ("get", p(lambda: c.get(k("s")))),
        ("get_missing", p(lambda: c.get(k("nope")))),
        ("incr", p(lambda: c.incr(k("n")))),
        ("mget", p(lambda: c.mget(k("s"), k("nope"), k("n")))),
        ("hset", p(lambda: c.hset(k("h"), mapping={"f1": "a", "f2": "b"}))),
        ("hgetall", p(lambda: c.hgetall(k("h")))),
        ("hgetall_missing", p(lambda: c.hgetall(k("nope")))),
        ("sadd", p(lambda: c.sadd(k("set"), "x", "y", "z"))),
        ("smembers", p(lambda: c.smembers(k("set")))),
        ("zadd", p(lambda: c.zadd(k("z"), {"a": 1.5, "b": 2, "c": float("-inf")}))),
        ("zscore", p(lambda: c.zscore(k("z"), "a"))),
        ("zrange_withscores", p(lambda: c.zrange(k("z"), 0, -1, withscores=True))),
        ("zmpop", p(lambda: c.zmpop(2, [k("nope"), k("z")], min=True))),
        ("zmpop_empty", p(lambda: c.zmpop(1, [k("nope")], max=True, count=2))),
        ("zadd_incr", p(lambda: c.zadd(k("z"), {"a": 0.25}, incr=True))),
        ("zpopmin", p(lambda: c.zpopmin(k("z"), 2))),
        ("lpush", p(lambda: c.lpush(k("l"), "a", "b", "c"))),
        ("lrange", p(lambda: c.lrange(k("l"), 0, -1))),
        ("lmpop", p(lambda: c.lmpop(2, k("nope"), k("l"), direction="LEFT"))),
        ("lmpop_empty", p(lambda: c.lmpop(1, k("nope"), direction="RIGHT", count=2))),
        ("lpop_count", p(lambda: c.lpop(k("l"), 2))),
        ("expire", p(lambda: c.expire(k("s"), 100))),
        ("ttl", p(lambda: c.ttl(k("s")))),
        ("wrongtype", p(lambda: c.hget(k("s"), "f"))),
        ("pipeline", p(lambda: c.pipeline(transaction=False).set(k("p"), 1).incr(k("p")).get(k("p")).execute())),
        ("del", p(lambda: c.delete(k("s"), k("h"), k("set"), k("z"), k("l"), k("n"), k("p")))),
    ]


def pubsub_setup(port, prefix):
    """A subscriber (redis-py's PubSub object) and a publisher, as an application uses them."""
    c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S)
    p = c.pubsub()
    ch = lambda s: f"{prefix}:{s}"  # noqa: E731
    got = []

    def collect(count):
        # get_message waits at most its timeout for each frame; the step is bounded by count.
        for _ in range(count):
            m = p.get_message(timeout=SOCKET_TIMEOUT_S)
            if m is None:
                break
            got.append(m)
        return plain(got[-count:])

    out = run([
        ("subscribe", lambda: p.subscribe(ch("a"), ch("b"))),
        ("psubscribe", lambda: p.psubscribe(f"{prefix}:p*")),
        ("confirmations", lambda: collect(3)),
        ("publish_a", lambda: c.publish(ch("a"), "hello")),
        ("publish_pa", lambda: c.publish(ch("pa"), "pattern")),
        ("messages", lambda: collect(2)),
        ("numsub", lambda: plain(c.pubsub_numsub(ch("a"), ch("none")))),
        ("numpat", lambda: c.pubsub_numpat()),
        ("channels", lambda: sorted(c.pubsub_channels(f"{prefix}:*"))),
        ("refused", lambda: p.execute_command("GET", ch("k")) or collect(1)),
        # Unsubscribing from all: one confirmation per channel, in no specified order.
        ("unsubscribe", lambda: p.unsubscribe() or sorted(m["channel"] for m in collect(2))),
        ("punsubscribe", lambda: p.punsubscribe() or collect(1)),
    ])
    p.close()
    c.close()
    return out


def setup(port, prefix, **options):
    c = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=SOCKET_TIMEOUT_S, **options)
    try:
        c.ping()
    except redis.RedisError as e:
        return {"connect": {"error": f"{type(e).__name__}: {e}"}}
    out = run(steps(c, prefix))
    c.close()
    return out


def main():
    port = int(sys.argv[1])
    results = {
        "redis-py RESP2, AUTH default, client_name": setup(port, "py1", username="default", password="secret",
                                                            client_name="py-1"),
        "redis-py RESP2, password only": setup(port, "py2", password="secret"),
        "redis-py RESP2, no auth": setup(port, "py3"),
        "redis-py pub/sub": pubsub_setup(port, "pyps"),
    }
    print(json.dumps({"versions": {"redis-py": redis.__version__}, "results": results}))


if __name__ == "__main__":
    main()
