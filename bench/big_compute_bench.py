#!/usr/bin/env python3
"""bench/big_compute_bench.py - the longest event-loop turn of one hmdb node while one client
runs a read whose *computation* (not only its reply) is big: SINTER/SUNION/SDIFF/SINTERCARD of
two sets of N members, ZRANGE and its BYSCORE/BYLEX/REV forms over a sorted set of N, the
negative-count random reads (SRANDMEMBER/HRANDFIELD/ZRANDMEMBER key -N), the *SCANs with
COUNT N, and SUNION inside MULTI/EXEC; and the writes whose computation is big, SUNIONSTORE/
SINTERSTORE/SDIFFSTORE of the two sets into a third key, and ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE
of two sorted sets, and ZUNIONSTORE of six (issue 16 item 5; docs/kv-commands.md, "Commands
that take long").

One fresh process (`--durability none`): sets s1 = {m:0 .. m:N-1} and s2 = {m:N/2 .. m:3N/2-1}
(half shared), a hash h of N fields f:<i>, a sorted set z of N members m:<i>, all scored 0 (so
BYLEX is meaningful), and (for the sorted-set STOREs) a sorted set z2 of m:N/2 .. m:3N/2-1
scored 0 .. N-1, loaded by pipelined SADD/HSET/ZADD of 1,000 elements; only the keys the
commands run name are loaded. Then per command:
CONFIG RESETSTAT; while a SET probe (one request at a time) runs, one `redis-cli <command>`
(its output counted, not kept); INFO. Reported per command: the wall time at the client, the
reply lines, the worst SET probe latency (writes wait for a sliced reply: they are applied
after it), INFO's loop_turn_max_ms, long_turns (>= 20 ms), long_turns_on_cpu and
long_turns_cpu_max_ms (CPU time of the long turns: on a loaded machine a turn's wall time
includes waiting for a CPU), sliced_replies and reply_slices, sliced_writes and write_slices
(-1: a binary without them). `--only STORE` runs the writes only, `--only
ZUNIONSTORE,ZINTERSTORE,ZDIFFSTORE` the sorted-set ones.

    flock /tmp/hmdb-bench.lock python3 bench/big_compute_bench.py --hmdb build/apps/kv/hmdb --n 2000000

Run it with the binary before and after a change, and say the load (printed). Python 3
standard library plus redis-cli on PATH. Every process started here is stopped by PID.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import Resp, Server, free_port, info, loadavg, stop_proc  # noqa: E402
from big_reply_bench import Probe  # noqa: E402  (one connection, one command at a time)

BATCH = 1000           # elements per SADD/HSET/ZADD while loading
IN_FLIGHT = 50         # commands pipelined before reading their replies
COMMAND_TIMEOUT_S = 300


def load(port, n, cmd, key, element):
    """cmd key <element(i)...> for i in [0, n), BATCH elements a command."""
    c = Resp(port, timeout=600)
    i = 0
    while i < n:
        batch = []
        for _ in range(IN_FLIGHT):
            if i >= n:
                break
            words = [cmd, key]
            for j in range(i, min(n, i + BATCH)):
                words += element(j)
            i = min(n, i + BATCH)
            batch.append(Resp.encode(*words))
        c.sock.sendall(b"".join(batch))
        for _ in batch:
            r = c.reply()
            if not isinstance(r, int):
                raise IOError(f"{cmd}: {r!r}")
    c.close()


def commands(n):
    return [
        ["SINTER", "s1", "s2"], ["SUNION", "s1", "s2"], ["SDIFF", "s1", "s2"], ["SINTERCARD", "2", "s1", "s2"],
        ["ZRANGE", "z", "0", "-1"], ["ZRANGEBYSCORE", "z", "-inf", "+inf"], ["ZREVRANGEBYSCORE", "z", "+inf", "-inf"],
        ["ZRANGEBYLEX", "z", "-", "+"], ["ZRANGE", "z", "+", "-", "BYLEX", "REV"],
        ["SRANDMEMBER", "s1", str(-n)], ["HRANDFIELD", "h", str(-n)], ["ZRANDMEMBER", "z", str(-n)],
        ["SRANDMEMBER", "s1"], ["HRANDFIELD", "h"],
        ["SSCAN", "s1", "0", "COUNT", str(n)], ["HSCAN", "h", "0", "COUNT", str(n)], ["ZSCAN", "z", "0", "COUNT", str(n)],
        ["MULTI", "SUNION", "s1", "s2"],  # inside MULTI/EXEC: made whole
        ["SUNIONSTORE", "d", "s1", "s2"], ["SINTERSTORE", "d", "s1", "s2"], ["SDIFFSTORE", "d", "s1", "s2"],
        ["ZUNIONSTORE", "d", "2", "z", "z2", "WEIGHTS", "1", "2"], ["ZINTERSTORE", "d", "2", "z", "z2", "AGGREGATE", "MAX"],
        ["ZDIFFSTORE", "d", "2", "z", "z2"],
        # More than kZUnionLookupInputsMax (4) inputs: the walk sorts instead of looking up.
        ["ZUNIONSTORE", "d", "6", "z", "z2", "z", "z2", "z", "z2"],
    ]


# The keys each loads, by name: loaded only when a command to run names them.
KEYS = {
    "s1": ("SADD", lambda n: (lambda i: [b"m:%d" % i])),
    "s2": ("SADD", lambda n: (lambda i: [b"m:%d" % (i + n // 2)])),
    "h": ("HSET", lambda n: (lambda i: [b"f:%d" % i, b"v"])),
    "z": ("ZADD", lambda n: (lambda i: [b"0", b"m:%d" % i])),
    "z2": ("ZADD", lambda n: (lambda i: [b"%d" % i, b"m:%d" % (i + n // 2)])),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hmdb", required=True)
    ap.add_argument("--n", type=int, default=2000000)
    ap.add_argument("--only", default="", help="run only the commands whose words contain this (e.g. SINTER; "
                    "several, comma-separated: any of them)")
    a = ap.parse_args()
    n = a.n
    print(f"# {a.hmdb} n={n} load before: {loadavg()}", flush=True)
    work = tempfile.mkdtemp(prefix="big-compute-bench-")
    port = free_port()
    server = Server(a.hmdb, port, os.path.join(work, "data"), os.path.join(work, "server.log"), durability="none")
    server.start()
    try:
        t0 = time.monotonic()
        only = [o.upper() for o in a.only.split(",") if o]
        chosen = [w for w in commands(n) if not only or any(o in " ".join(w).upper() for o in only)]
        named = {word for w in chosen for word in w}
        for key, (cmd, element) in KEYS.items():
            if key in named:
                load(port, n, cmd, key, element(n))
        print(f"# loaded {sorted(named & set(KEYS))} in {time.monotonic() - t0:.1f} s; load: {loadavg()}", flush=True)
        for words in chosen:
            Resp(port).call("CONFIG", "RESETSTAT")
            probe = Probe(port, ("SET", "probe", "v"), timeout=COMMAND_TIMEOUT_S)
            probe.start()
            time.sleep(0.1)
            t0 = time.monotonic()
            if words[0] == "MULTI":  # MULTI, the command, EXEC on one connection
                out = subprocess.run(["redis-cli", "-p", str(port)], stdout=subprocess.PIPE, timeout=COMMAND_TIMEOUT_S,
                                     input=("MULTI\n" + " ".join(words[1:]) + "\nEXEC\n").encode(), check=True).stdout
            else:
                out = subprocess.run(["redis-cli", "-p", str(port)] + words, stdout=subprocess.PIPE,
                                     timeout=COMMAND_TIMEOUT_S, check=True).stdout
            wall = time.monotonic() - t0
            time.sleep(0.1)
            probe.stop_flag.set()
            probe.join()
            if probe.error:
                raise probe.error
            st = info(port, "all")
            row = {"cmd": "_".join(words).replace(str(-n), "-N").replace(str(n), "N"),
                   "wall_ms": round(wall * 1000), "lines": out.count(b"\n"),
                   "set_probe_worst_ms": round(probe.worst * 1000, 1)}
            for k in ("loop_turn_max_ms", "long_turns", "long_turns_on_cpu", "long_turns_cpu_max_ms",
                      "sliced_replies", "reply_slices", "sliced_writes", "write_slices"):
                row[k] = int(st.get(k, -1))
            row["load"] = loadavg().split()[0]
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    finally:
        stop_proc(server.proc)
        shutil.rmtree(work, ignore_errors=True)
    print(f"# load after: {loadavg()}", flush=True)


if __name__ == "__main__":
    main()
