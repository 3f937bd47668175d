#!/usr/bin/env python3
"""bench/release_bench.py - the event loop's longest turn, and its munmaps, while the kv app frees
a flushed keyspace (FLUSHALL of --values values of --value-bytes) and a deleted big hash (DEL of
one hash of about --fields fields), for one or more hmdb binaries side by side (issue 16 item 5:
no loop turn longer than 20 ms at any size; apps/kv/prefault.h: memory handed back).

Per run and binary (the binaries' order alternates between runs), a fresh
`hmdb serve --durability none` in a fresh data directory:

1. fill: `redis-benchmark -t set -d VALUE_BYTES -n VALUES -r 1000000000 -P 64 -c 20` (random
   keys over 10^9: ~VALUES distinct);
2. CONFIG RESETSTAT, then FLUSHALL; the kv app frees the keyspace over the following
   housekeeping turns (one a 100 ms tick, apps/kv/kv.h: Graveyard). Done when the applied
   index (each housekeeping turn is a log entry) has not moved for IDLE_S. Then INFO:
   loop_turn_max_ms (the longest turn since the reset), long_turns (turns of 20 ms or more),
   long_turns_on_cpu, last_long_turn_ms / _cpu_ms, and the app's block counters if the binary
   has them (value_blocks, pantry_blocks_*);
3. the same for a hash: `redis-benchmark -t hset -n FIELDS -r FIELDS -P 64 -c 20` fills
   `myhash`, then RESETSTAT, `DEL myhash`, done as above, INFO.

4. with --big TYPE (hash, set, zset, list; repeat it), per TYPE and per op of --big-ops (DEL,
   UNLINK, FLUSHALL): one key `big` of --big-n elements (commands of 1,000 elements, sent
   pipelined on one connection), RESETSTAT, the op, then --write-s seconds of one connection's
   pipelines of 16 SETs (each entry frees up to kLazyFreeEntryWork of it, as a loaded server's
   writes do; housekeeping alone frees it at its tick's rate), then done as above, INFO. The
   loop's CPU in the long turns (long_turns_cpu_ms, long_turns_cpu_max_ms) is what a loaded
   machine does not inflate. Also the writer's worst pipeline (write_max_ms: sent to its 16th
   reply, the worst write latency a client saw) and the server's VmRSS before the fill, after
   it and once freed (rss_mib: memory given back to the kernel). --values 0 skips steps 1-2,
   --fields 0 step 3.

With --trace, `perf trace -e munmap` follows the server during steps 2 and 3 (attached after
the RESETSTAT, stopped when done) and the script reports, per step, the munmap calls of the
event loop (the process's main thread) and of the other threads (hmdb-prefault: the blocks
handed back): count, total and median / max ms, and how many were of 2 MiB; in step 4,
`perf trace -e brk,munmap` (brk: glibc moving its heap's end) and the script reports each brk
that moved the end down (heap memory returned to the kernel: MiB, ms, the thread), and the
munmaps as in steps 2 and 3. Step 4 also reports the bucket arrays handed to the prefault
thread during the op (+released_array_bytes, +released_arrays_unmapped_by_caller: INFO's
fields, binaries that have them). Tracing
slows every system call: compare the turns of runs without --trace. Step 4 also reports the
heap's size ([heap] in /proc/PID/maps) before the op and once freed (heap_mib).

Run it under the benchmark lock and quote the load (printed) with every figure:
    flock /tmp/hmdb-bench.lock python3 bench/release_bench.py --hmdb A --hmdb B --runs 3
Python 3 standard library, redis-benchmark on PATH, perf for --trace (root). Every process
started here is stopped by its PID.
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import Resp, RespError, Server, free_port, info, loadavg, proc_status_kib, stop_proc  # noqa: E402
from stall_bench import LongTurnWatch  # noqa: E402

# --- bounds ---
FILL_TIMEOUT_S = 900      # one redis-benchmark fill on a busy machine
IDLE_S = 1.0              # applied index unchanged this long (10 housekeeping ticks): freeing done
FREE_TIMEOUT_S = 300      # a FLUSHALL or DEL must be freed within this
POLL_S = 0.1
TRACE_START_S = 1.0       # perf trace attaches to every thread first
TRACE_STOP_TIMEOUT_S = 30

TURN_FIELDS = ("loop_turn_max_ms", "long_turns", "long_turns_on_cpu", "long_turns_cpu_ms", "long_turns_cpu_max_ms",
               "last_long_turn_ms", "last_long_turn_cpu_ms", "slow_turns")
BIG_CHUNK = 1000          # elements per command of a --big fill
BIG_PIPELINE = 64         # commands in flight while filling
WRITE_PIPELINE = 16       # SETs per pipeline of the writer that runs while a big value is freed
BLOCK_FIELDS = ("value_blocks", "pantry_blocks_taken", "pantry_blocks_missed", "pantry_blocks_handed_back",
                "pantry_blocks_reused", "pantry_blocks_unmapped_by_caller")
ARRAY_FIELDS = ("released_array_bytes", "released_arrays_unmapped_by_caller")
# perf trace's line: "  12.345 ( 0.025 ms): hmdb/1234 munmap(addr: 0x7f.., len: 2097152) = 0"
TRACE_RE = re.compile(r"\(\s*([\d.]+) ms\):\s*(\S+)/(\d+) munmap\(addr: \S+, len: (\w+)")
# "  12.345 ( 95.000 ms): hmdb/1234 brk(brk: 0x55d0c8a21000) = 0x55d0c8a21000"
BRK_RE = re.compile(r"\(\s*([\d.]+) ms\):\s*(\S+)/(\d+) brk\(brk: (\w+)\)\s*=\s*(\w+)")


def call(port, *args, timeout=600):
    c = Resp(port, timeout=timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


def redis_benchmark(port, args):
    subprocess.run(["redis-benchmark", "-p", str(port), "-q"] + args, check=True, timeout=FILL_TIMEOUT_S,
                   stdout=subprocess.DEVNULL)


def wait_freed(port):
    """Waits until the applied index stays put IDLE_S (no housekeeping entry: the graveyard is
    empty); returns the seconds it took."""
    t0 = time.monotonic()
    last, since = None, time.monotonic()
    while time.monotonic() - t0 < FREE_TIMEOUT_S:
        a = info(port, "replication")["applied_index"]
        if a != last:
            last, since = a, time.monotonic()
        elif time.monotonic() - since >= IDLE_S:
            return since - t0
        time.sleep(POLL_S)
    raise RuntimeError(f"still freeing after {FREE_TIMEOUT_S} s")


def start_trace(pid, path):
    p = subprocess.Popen(["perf", "trace", "-e", "munmap", "-p", str(pid), "-o", path],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(TRACE_START_S)
    return p


def stop_trace(p):
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(TRACE_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_proc(p)


def munmaps(path, loop_tid):
    """{"loop"|"other": {"n", "ms", "median_ms", "max_ms", "n_2mib"}} from perf trace's output."""
    out = {}
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for who in ("loop", "other"):
        calls = []
        for line in lines:
            m = TRACE_RE.search(line)
            if not m or (int(m.group(3)) == loop_tid) != (who == "loop"):
                continue
            calls.append((float(m.group(1)), int(m.group(4), 0)))
        d = [c[0] for c in calls]
        out[who] = {"n": len(d), "ms": sum(d), "median_ms": statistics.median(d) if d else 0.0,
                    "max_ms": max(d) if d else 0.0, "n_2mib": sum(1 for c in calls if c[1] == 2 << 20)}
    return out


def heap_span(pid):
    """(start, end) of the process's [heap] mapping (glibc's main arena), or None."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[heap]"):
                    a, b = line.split()[0].split("-")
                    return int(a, 16), int(b, 16)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def brk_drops(path, end0, loop_tid):
    """The brk calls in perf trace's output that moved the heap's end down (from end0, the end
    before the trace): [(MiB, ms, "loop"|"other")]."""
    out, end = [], end0
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return out
    for line in lines:
        m = BRK_RE.search(line)
        if not m:
            continue
        new = int(m.group(5), 16)
        if new == 0:
            continue
        if end is not None and new < end:
            out.append((round((end - new) / (1 << 20), 1), float(m.group(1)),
                        "loop" if int(m.group(3)) == loop_tid else "other"))
        end = new
    return out


def release(port, pid, what, trace_path):
    """RESETSTAT, `what` (FLUSHALL or DEL myhash), wait until freed; INFO's turns and blocks."""
    call(port, "CONFIG", "RESETSTAT")
    i0 = info(port, "app")
    before = {k: int(i0[k]) for k in BLOCK_FIELDS if k in i0}
    tracer = start_trace(pid, trace_path) if trace_path else None
    watch = LongTurnWatch(port)
    watch.start()
    try:
        t0 = time.monotonic()
        r = call(port, *what)
        reply_ms = (time.monotonic() - t0) * 1e3
        freed_s = wait_freed(port)
    finally:
        stop_trace(tracer)
    i = info(port, "all")
    out = {k: int(i[k]) for k in TURN_FIELDS + BLOCK_FIELDS if k in i}
    out.update(reply=str(r), reply_ms=reply_ms, freed_s=freed_s, load=loadavg(), before=before)
    out.update(watched(watch))
    if trace_path:
        out["munmap"] = munmaps(trace_path, pid)
    return out


def big_command(kind, start, n):
    """One fill command of elements [start, start + n) of key `big`, RESP-encoded."""
    words = [{"hash": b"HSET", "set": b"SADD", "zset": b"ZADD", "list": b"RPUSH"}[kind], b"big"]
    for i in range(start, start + n):
        if kind == "hash":
            words += [b"f:%d" % i, b"v"]
        elif kind == "zset":
            words += [b"%d" % i, b"m:%d" % i]
        else:
            words.append(b"m:%d" % i)
    return b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words)


def fill_big(port, kind, n):
    """Fills key `big` with n elements, BIG_PIPELINE commands in flight; returns its size."""
    c = Resp(port, timeout=FILL_TIMEOUT_S)
    try:
        sent = answered = 0
        commands = (n + BIG_CHUNK - 1) // BIG_CHUNK
        while answered < commands:
            batch = []
            while sent < commands and sent - answered < BIG_PIPELINE:
                start = sent * BIG_CHUNK
                batch.append(big_command(kind, start, min(BIG_CHUNK, n - start)))
                sent += 1
            if batch:
                c.sock.sendall(b"".join(batch))
            r = c.reply()
            if isinstance(r, RespError):
                raise RuntimeError(f"fill {kind}: {r}")
            answered += 1
        size = c.call({"hash": "HLEN", "set": "SCARD", "zset": "ZCARD", "list": "LLEN"}[kind], "big")
    finally:
        c.close()
    return size


class Writer(threading.Thread):
    """Pipelines of WRITE_PIPELINE SETs on one connection for `seconds`."""

    def __init__(self, port, seconds):
        super().__init__(daemon=True)
        self.port, self.seconds, self.sets, self.error = port, seconds, 0, None
        self.max_ms = 0.0  # the slowest pipeline, sent to its last reply

    def run(self):
        try:
            c = Resp(self.port, timeout=60)
            batch = b"".join(Resp.encode("SET", "w:%d" % i, "x") for i in range(WRITE_PIPELINE))
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.seconds:
                t1 = time.monotonic()
                c.sock.sendall(batch)
                for _ in range(WRITE_PIPELINE):
                    c.reply()
                self.max_ms = max(self.max_ms, (time.monotonic() - t1) * 1e3)
                self.sets += WRITE_PIPELINE
            c.close()
        except Exception as e:  # reported by the caller
            self.error = e


def release_big(port, pid, kind, op, args):
    """Fills `big`, RESETSTAT, the op, the writer, wait until freed; INFO's turns."""
    rss0 = proc_status_kib(pid)
    t0 = time.monotonic()
    size = fill_big(port, kind, args.big_n)
    fill_s = time.monotonic() - t0
    rss_filled = proc_status_kib(pid)
    call(port, "CONFIG", "RESETSTAT")
    i0 = info(port, "app")
    heap0 = heap_span(pid)
    tracer, trace_path = None, None
    if args.trace:
        trace_path = tempfile.mktemp(prefix="brk.", dir="/var/tmp")
        tracer = subprocess.Popen(["perf", "trace", "-e", "brk,munmap", "-p", str(pid), "-o", trace_path],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(TRACE_START_S)
    watch = LongTurnWatch(port)
    watch.start()
    t0 = time.monotonic()
    r = call(port, *(("FLUSHALL",) if op == "FLUSHALL" else (op, "big")))
    reply_ms = (time.monotonic() - t0) * 1e3
    w = Writer(port, args.write_s)
    if args.write_s > 0:
        w.start()
        w.join()
        if w.error:
            raise RuntimeError(f"writer: {w.error}")
    freed_s = wait_freed(port)
    stop_trace(tracer)
    rss_freed = proc_status_kib(pid)
    heap1 = heap_span(pid)
    i = info(port, "all")
    out = {k: int(i[k]) for k in TURN_FIELDS if k in i}
    out.update(size=size, fill_s=fill_s, reply=str(r), reply_ms=reply_ms, freed_s=freed_s, sets=w.sets, load=loadavg(),
               write_max_ms=round(w.max_ms, 1), rss_mib=[rss0 >> 10, rss_filled >> 10, rss_freed >> 10],
               heap_mib=[(h[1] - h[0]) >> 20 if h else None for h in (heap0, heap1)])
    # The bucket arrays handed to the prefault thread meanwhile (binaries that have the fields).
    out.update({f"+{k}": int(i[k]) - int(i0[k]) for k in ARRAY_FIELDS if k in i and k in i0})
    if trace_path:
        out["brk_drops"] = brk_drops(trace_path, heap0[1] if heap0 else None, pid)
        out["munmap"] = munmaps(trace_path, pid)
        os.unlink(trace_path)
    out.update(watched(watch))
    return out


def watched(watch):
    """The long turns (>= 20 ms) the watch saw one at a time: how many, the most CPU of one
    (at most, ms), and how many it saw only in sums."""
    d = watch.summary()
    seen = d.get("seen") or []
    return {"seen_alone": len(seen), "seen_cpu_max_ms": max((cm for _, _, cm, _ in seen), default=0),
            "seen_wall_max_ms": max((w for w, _, _, _ in seen), default=0), "missed": d.get("missed")}


def one(binary, args, work, label):
    port = free_port()
    d = tempfile.mkdtemp(dir=work)
    srv = Server(binary, port, d, os.path.join(d, "server.log"), durability="none")
    srv.start()
    pid = srv.proc.pid
    res = {"binary": label}
    try:
        rss0 = proc_status_kib(pid)
        if args.values:
            redis_benchmark(port, ["-t", "set", "-d", str(args.value_bytes), "-n", str(args.values), "-r", "1000000000",
                                   "-P", "64", "-c", "20"])
            res["keys"] = int(call(port, "DBSIZE"))
            res["rss_filled_mib"] = (proc_status_kib(pid) - rss0) / 1024
            res["flush"] = release(port, pid, ("FLUSHALL",), os.path.join(d, "flush.trace") if args.trace else None)
            res["rss_flushed_mib"] = (proc_status_kib(pid) - rss0) / 1024
        if args.fields:
            redis_benchmark(port, ["-t", "hset", "-n", str(args.fields), "-r", str(args.fields), "-P", "64", "-c", "20"])
            res["fields"] = int(call(port, "HLEN", "myhash"))
            res["hash"] = release(port, pid, ("DEL", "myhash"), os.path.join(d, "hash.trace") if args.trace else None)
        for kind in args.big or []:
            for op in args.big_ops.split(","):
                res[f"{op} {kind}"] = release_big(port, pid, kind, op, args)
                print(f"    {label}: {op} {kind}: {res[f'{op} {kind}']}", flush=True)
    finally:
        srv.stop()
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)
    return res


def show(r):
    if "keys" in r:
        print(f"  {r['binary']}: {r['keys']} keys, +{r['rss_filled_mib']:.0f} MiB filled, "
              f"+{r['rss_flushed_mib']:.0f} MiB after FLUSHALL")
    for step in ("flush", "hash"):
        if step not in r:
            continue
        s = r[step]
        turns = ", ".join(f"{k} {s[k]}" for k in TURN_FIELDS if k in s)
        blocks = ", ".join(f"{k} {s['before'][k]} -> {s[k]}" if k == "value_blocks" else f"{k} +{s[k] - s['before'][k]}"
                           for k in BLOCK_FIELDS if k in s and k in s["before"])
        extra = f" ({r['fields']} fields)" if step == "hash" else ""
        print(f"    {step}{extra}: reply {s['reply_ms']:.1f} ms, freed in {s['freed_s']:.1f} s, load {s['load']}; {turns}; "
              f"long turns seen alone {s['seen_alone']} (most CPU of one {s['seen_cpu_max_ms']} ms, wall "
              f"{s['seen_wall_max_ms']} ms), {s['missed']} not seen alone")
        if blocks:
            print(f"      blocks during the release: {blocks}")
        for who, m in s.get("munmap", {}).items():
            print(f"      munmap {who}: {m['n']} calls ({m['n_2mib']} of 2 MiB), {m['ms']:.2f} ms, "
                  f"median {m['median_ms']:.3f} / max {m['max_ms']:.3f} ms")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hmdb", action="append", required=True, help="an hmdb binary (repeat to compare)")
    ap.add_argument("--values", type=int, default=600_000)
    ap.add_argument("--value-bytes", type=int, default=400)
    ap.add_argument("--fields", type=int, default=1_000_000, help="random fields over which myhash is filled; 0: no hash")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--trace", action="store_true", help="perf trace -e munmap (and brk with --big) during the releases")
    ap.add_argument("--keep", action="store_true", help="keep the data directories (and traces)")
    ap.add_argument("--big", action="append", choices=("hash", "set", "zset", "list"),
                    help="free one key of --big-n elements of this type (repeat for several)")
    ap.add_argument("--big-n", type=int, default=10_000_000)
    ap.add_argument("--big-ops", default="DEL,UNLINK,FLUSHALL", help="how the big key goes, comma-separated")
    ap.add_argument("--write-s", type=float, default=5.0, help="seconds of SET pipelines after each big op")
    args = ap.parse_args()
    work = tempfile.mkdtemp(dir="/var/tmp", prefix="release_bench.")
    print(f"release_bench: {args.values} x {args.value_bytes} B values, hash of ~{args.fields} fields, "
          f"{args.runs} run(s), trace {args.trace}; load {loadavg()}")
    results = []
    try:
        for run in range(args.runs):
            order = list(enumerate(args.hmdb))
            if run % 2:
                order.reverse()
            for i, b in order:
                r = one(b, args, work, b)
                r["i"] = i
                print(f"run {run + 1}:")
                show(r)
                sys.stdout.flush()
                results.append(r)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\nsummary (median [min-max] over runs):")
    for i, b in enumerate(args.hmdb):
        rs = [r for r in results if r["i"] == i]
        steps = ["flush", "hash"] + [f"{op} {kind}" for kind in args.big or [] for op in args.big_ops.split(",")]
        for step in steps:
            vals = [r[step]["loop_turn_max_ms"] for r in rs if step in r]
            if vals:
                print(f"  {b} {step}: loop_turn_max_ms {statistics.median(vals)} [{min(vals)}-{max(vals)}], "
                      f"long_turns {[r[step]['long_turns'] for r in rs]}, long turns' CPU at most (ms) "
                      f"{[r[step].get('long_turns_cpu_max_ms') for r in rs]}, last long turn's CPU "
                      f"{[r[step].get('last_long_turn_cpu_ms') for r in rs]}")
            writes = [r[step]["write_max_ms"] for r in rs if step in r and "write_max_ms" in r[step]]
            if writes:
                print(f"  {b} {step}: write_max_ms {statistics.median(writes)} [{min(writes)}-{max(writes)}], "
                      f"VmRSS MiB before fill / filled / freed {[r[step]['rss_mib'] for r in rs]}")


if __name__ == "__main__":
    main()
