#!/usr/bin/env python3
"""bench/big_reply_bench.py - the longest event-loop turn while one client runs `KEYS *` over N
keys, with big replies made in slices (the default) and made whole in one turn (the same
binary with `--test-slice-elements` above N: today's path before slicing), against
redis-server in the same run (issue 16 item 5; docs/architecture.md, "Big replies").

Per system, in a fresh process and data directory (hmdb `--durability none`, Redis without
persistence): N keys `key:<i>` (value "v") loaded by MSETs; then CONFIG RESETSTAT; then,
while a GET probe and a SET probe (one connection each, one request at a time) run, one
`redis-cli KEYS '*'` (its output counted, not kept). Reported: the KEYS wall time at the
client, the worst GET and SET probe latencies during it, and for hmdb INFO's
loop_turn_max_ms, slow_turns, sliced_replies and reply_slices; for Redis its own time in the
command (INFO commandstats, usec_per_call of keys: one event, so its stall).

    flock /tmp/hmdb-bench.lock python3 bench/big_reply_bench.py --hmdb build/apps/kv/hmdb --keys 3000000

Python 3 standard library plus redis-cli and redis-server on PATH. Every process started here
is stopped by PID.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import Resp, Server, free_port, info, loadavg, stop_proc  # noqa: E402

MSET_PAIRS = 1000          # keys per MSET while loading
MSETS_IN_FLIGHT = 50       # MSETs pipelined before reading their replies
KEYS_TIMEOUT_S = 600


class Probe(threading.Thread):
    """One connection, one command at a time, until stopped: the worst latency and the count."""

    def __init__(self, port, words, timeout=KEYS_TIMEOUT_S):
        super().__init__(daemon=True)
        self.port, self.words, self.timeout = port, words, timeout
        self.worst = 0.0
        self.count = 0
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            c = Resp(self.port, timeout=self.timeout)
            req = Resp.encode(*self.words)
            while not self.stop_flag.is_set():
                t0 = time.monotonic()
                c.sock.sendall(req)
                c.reply()
                self.worst = max(self.worst, time.monotonic() - t0)
                self.count += 1
                time.sleep(0.001)
            c.close()
        except Exception as e:  # reported by the main thread
            self.error = e


def load(port, n):
    c = Resp(port, timeout=600)
    sent = 0
    while sent < n:
        batch = []
        for _ in range(MSETS_IN_FLIGHT):
            if sent >= n:
                break
            words = [b"MSET"]
            for i in range(sent, min(n, sent + MSET_PAIRS)):
                words += [b"key:%d" % i, b"v"]
            sent = min(n, sent + MSET_PAIRS)
            batch.append(Resp.encode(*words))
        c.sock.sendall(b"".join(batch))
        for _ in batch:
            r = c.reply()
            if r != "OK":
                raise IOError(f"MSET: {r!r}")
    if c.call("DBSIZE") != n:
        raise IOError("DBSIZE is not the keys loaded")
    c.close()


def run_system(name, argv, port, n, hmdb):
    work = tempfile.mkdtemp(prefix="big-reply-bench-")
    log = os.path.join(work, "server.log")
    if hmdb:
        server = Server(argv[0], port, os.path.join(work, "data"), log, durability="none")
        server.argv += argv[1:]
        server.start()
        proc = server.proc
    else:
        proc = subprocess.Popen(argv + ["--port", str(port), "--dir", work, "--save", "", "--appendonly", "no"],
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                if Resp(port, timeout=2).call("PING") == "PONG":
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    try:
        load(port, n)
        Resp(port).call("CONFIG", "RESETSTAT")
        probes = [Probe(port, [b"GET", b"key:1"]), Probe(port, [b"SET", b"probe", b"v"])]
        for p in probes:
            p.start()
        time.sleep(0.2)
        t0 = time.monotonic()
        out = subprocess.run(["redis-cli", "-p", str(port), "KEYS", "*"], stdout=subprocess.PIPE,
                             timeout=KEYS_TIMEOUT_S, check=True).stdout
        keys_s = time.monotonic() - t0
        time.sleep(0.2)
        for p in probes:
            p.stop_flag.set()
            p.join()
            if p.error:
                raise p.error
        lines = out.count(b"\n")
        if lines < n:
            raise IOError(f"KEYS returned {lines} lines for {n} keys")
        st = info(port, "all")
        row = {"system": name, "keys": n, "keys_wall_ms": round(keys_s * 1000),
               "get_probe_worst_ms": round(probes[0].worst * 1000, 1), "get_probes": probes[0].count,
               "set_probe_worst_ms": round(probes[1].worst * 1000, 1), "set_probes": probes[1].count}
        if hmdb:
            for k in ("loop_turn_max_ms", "slow_turns", "loop_turns", "sliced_replies", "reply_slices"):
                row[k] = int(st[k])
        else:
            stats = st.get("cmdstat_keys", "")
            row["redis_keys_usec"] = stats.split("usec=")[1].split(",")[0] if "usec=" in stats else "?"
        return row
    finally:
        stop_proc(proc)
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hmdb", required=True)
    ap.add_argument("--redis-server", default=shutil.which("redis-server"))
    ap.add_argument("--keys", type=int, default=3000000)
    a = ap.parse_args()
    print(f"# load before: {loadavg()}", flush=True)
    systems = [("hmdb sliced", [a.hmdb], True),
               ("hmdb whole", [a.hmdb, "--test-slice-elements", str(10 * a.keys)], True)]
    if a.redis_server:
        systems.append(("redis", [a.redis_server], False))
    for name, argv, hmdb in systems:
        row = run_system(name, argv, free_port(), a.keys, hmdb)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(f"# load after: {loadavg()}", flush=True)


if __name__ == "__main__":
    main()
