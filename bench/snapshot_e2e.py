#!/usr/bin/env python3
"""bench/snapshot_e2e.py - a snapshot taken while redis-benchmark writes, end to end, for each
--snapshot-method (fork, slices): the loop's longest turns meanwhile, and whether the snapshot
plus the log after it is the state the node had (the lead's /tmp e2e.sh, made a script).

Per method and run, one fresh kv node (`hmdb serve --durability D --snapshot-method M`, on
127.0.0.1, no snapshot by size: --snapshot-log-bytes 1e12):

1. fill: `redis-benchmark -t set,lpush,sadd,hset,zadd,incr -r R -n N -P 16` (random string
   keys, and redis-benchmark's one-key containers: mylist, myset, myhash, myzset grow to about
   N elements each, at most R distinct);
2. writers: `redis-benchmark -t incr,lpush,rpop,hset,sadd,zadd,spop -r LR -n LN -P 4 -c 20`
   (non-idempotent writes to every family); once INFO applied_index moved by
   LOAD_STARTED_ENTRIES, CONFIG RESETSTAT, then `hmdb snapshot` (waits for the snapshot's end);
   the writers are left to finish (bounded by LOAD_TIMEOUT_S, then ended by PID);
3. figures from INFO: the loop's longest turn during the snapshot and the writes
   (loop_turn_max_ms, reset before it), the snapshot's duration and bytes; for slices its
   producer's CPU in all, its longest turn (last_snapshot_slices_turn_max_us) and turns; for
   fork the fork() stall (fork_stall_last_us);
4. digest: `hmdb cluster digest --local` of the live node once quiet; the node is stopped
   (SIGTERM) and `hmdb dry-run --dir` replays the snapshot and the log after it: its digest
   line must be the live node's (reported as equal or not: a benchmark, not a test;
   tests/system/snapshot_slices_test.py is the test).

Prints each run and, per method, medians with the spread (min-max) and the load average
before and after. Wall-clock figures (turns, durations) grow on a loaded machine; the
producer's CPU is less sensitive. No Redis comparison: redis-benchmark is only the load here
(bench/stall_bench.py compares the snapshot's stall with Redis' BGSAVE fork).

Options: --hmdb BINARY (default build/apps/kv/hmdb), --methods fork,slices, --runs 3,
--fill-requests N (1,000,000), --fill-range R (1,000,000), --load-requests LN (400,000),
--load-range LR (200,000), --durability always|none, --hmdb-args "...".
Run it under the benchmark lock:
    flock /tmp/hmdb-bench.lock python3 bench/snapshot_e2e.py --runs 3
Python 3 standard library plus redis-benchmark on PATH. Every process started here is ended
by its PID.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import free_port, loadavg, median_spread, stop_proc  # noqa: E402
from stall_bench import HmdbServer, call, info_fields, redis_benchmark  # noqa: E402

# --- bounds ---
LOAD_TIMEOUT_S = 600.0          # the writers' redis-benchmark run, at most (then ended by PID)
TOOL_TIMEOUT_S = 600.0          # one `hmdb snapshot`, `hmdb cluster digest` or `hmdb dry-run`
LOAD_START_TIMEOUT_S = 60.0     # the writers' first LOAD_STARTED_ENTRIES entries applied
QUIET_TIMEOUT_S = 120.0         # the node applies what the stopped writers sent
POLL_INTERVAL_S = 0.02          # INFO polls (the fields decide; this only spaces them)
# Applied entries the writers must add before the snapshot is asked for: they are writing.
LOAD_STARTED_ENTRIES = 200
# No snapshot by log size during a run: only the one asked for.
NO_AUTO_SNAPSHOT_BYTES = 10 ** 12
FILL_TESTS = "set,lpush,sadd,hset,zadd,incr"
LOAD_TESTS = "incr,lpush,rpop,hset,sadd,zadd,spop"


def wait_until(what, timeout, probe):
    """Polls probe() until true (returned), at most timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = probe()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_INTERVAL_S)


def tool(argv, timeout=TOOL_TIMEOUT_S):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def run_one(binary, method, args, work):
    port = free_port()
    server = HmdbServer(binary, port, work, args, ["--snapshot-method", method] + shlex.split(args.hmdb_args))
    load = None
    out = {"method": method}
    try:
        out["fill_s"], _ = redis_benchmark(port, ["-t", FILL_TESTS, "-r", str(args.fill_range), "-n",
                                                  str(args.fill_requests), "-P", "16"])
        start = int(info_fields(port, "replication")["applied_index"])
        load = subprocess.Popen(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-q", "-t", LOAD_TESTS,
                                 "-r", str(args.load_range), "-n", str(args.load_requests), "-P", "4", "-c", "20"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_until("the writers applying", LOAD_START_TIMEOUT_S,
                   lambda: int(info_fields(port, "replication")["applied_index"]) >= start + LOAD_STARTED_ENTRIES)
        call(port, "CONFIG", "RESETSTAT")
        t0 = time.monotonic()
        code, text = tool([binary, "snapshot", "--addr", f"127.0.0.1:{port}"])
        out["snapshot_wall_s"] = time.monotonic() - t0
        if code != 0 or not text.startswith("OK snapshot at index"):
            raise RuntimeError(f"hmdb snapshot exited {code}: {text}")
        out["writers_still_running"] = load.poll() is None
        stats = info_fields(port, "stats")
        pers = info_fields(port, "persistence")
        out["turn_max_ms"] = int(stats["loop_turn_max_ms"])
        out["duration_ms"] = int(pers["last_snapshot_duration_ms"])
        out["bytes"] = int(pers["last_snapshot_bytes"])
        out["status"] = pers["last_snapshot_status"].strip()
        if method == "slices":
            out["producer_turn_max_ms"] = int(pers["last_snapshot_slices_turn_max_us"]) / 1e3
            out["producer_ms"] = int(pers["last_snapshot_slices_us"]) / 1e3
            out["turns"] = int(pers["last_snapshot_slices_turns"])
        else:
            out["producer_turn_max_ms"] = int(pers["fork_stall_last_us"]) / 1e3  # the fork() itself
        try:
            load.communicate(timeout=LOAD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        stop_proc(load)
        load = None

        def quiet():
            r = info_fields(port, "replication")
            return r["applied_index"] == r["last_index"] == r["commit_index"]

        wait_until("the node quiet after the writers", QUIET_TIMEOUT_S, quiet)
        code, text = tool([binary, "cluster", "digest", "--local", "--addr", f"127.0.0.1:{port}"])
        m = re.search(r"applied (\d+)\s+digest (\S+) at schema version (\d+)", text)
        if code != 0 or not m:
            raise RuntimeError(f"hmdb cluster digest exited {code}: {text}")
        live = (int(m.group(1)), m.group(2), int(m.group(3)))
        server.stop()
        code, text = tool([binary, "dry-run", "--dir", os.path.join(work, "data")])
        m = re.search(r"^digest: (\d+) (\S+) (\d+)$", text, re.M)
        replayed = (int(m.group(1)), m.group(2), int(m.group(3))) if m else None
        out["digest_equal"] = code == 0 and replayed == live
        out["digest"] = f"live {live[1]} at {live[0]}, dry run {replayed[1] if replayed else '-'}"
        return out
    finally:
        stop_proc(load)
        server.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--hmdb", default=os.path.join(root, "build", "apps", "kv", "hmdb"))
    ap.add_argument("--methods", default="fork,slices")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fill-requests", type=int, default=1000000)
    ap.add_argument("--fill-range", type=int, default=1000000)
    ap.add_argument("--load-requests", type=int, default=400000)
    ap.add_argument("--load-range", type=int, default=200000)
    ap.add_argument("--durability", default="always", choices=["always", "none"])
    ap.add_argument("--hmdb-args", default="", help="more `hmdb serve` arguments")
    args = ap.parse_args()
    if shutil.which("redis-benchmark") is None:
        sys.exit("snapshot_e2e: redis-benchmark not on PATH")
    # stall_bench's HmdbServer reads these two.
    server_args = types.SimpleNamespace(durability=args.durability, snapshot_log_bytes=NO_AUTO_SNAPSHOT_BYTES,
                                        hmdb_args=args.hmdb_args, fill_range=args.fill_range,
                                        fill_requests=args.fill_requests, load_range=args.load_range,
                                        load_requests=args.load_requests)
    methods = args.methods.split(",")
    print(f"snapshot_e2e: {args.hmdb}, --durability {args.durability}; fill -t {FILL_TESTS} -r {args.fill_range} "
          f"-n {args.fill_requests} -P 16; writers -t {LOAD_TESTS} -r {args.load_range} -n {args.load_requests} "
          f"-P 4 -c 20; load {loadavg()}")
    results = {m: [] for m in methods}
    for run in range(1, args.runs + 1):
        for method in methods:
            work = tempfile.mkdtemp(prefix=f"hmdb-snapshot-e2e-{method}-")
            try:
                r = run_one(args.hmdb, method, server_args, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[method].append(r)
            extra = (f", producer {r['producer_ms']:.1f} ms in {r['turns']} turns" if method == "slices" else "")
            print(f"run {run} {method}: loop's longest turn {r['turn_max_ms']} ms, producer's/fork's longest "
                  f"{r['producer_turn_max_ms']:.1f} ms{extra}; snapshot {r['duration_ms']} ms, {r['bytes']} bytes, "
                  f"{r['status']}; writers throughout: {r['writers_still_running']}; digest equal: "
                  f"{r['digest_equal']} ({r['digest']}); load {loadavg()}", flush=True)
    print(f"\nmedians (min-max) over {args.runs} run(s); load at the end {loadavg()}")
    print("| method | loop's longest turn ms | producer's (slices) / fork's longest ms | snapshot ms | digests equal |")
    print("|---|---|---|---|---|")
    for m in methods:
        rs = results[m]
        print(f"| {m} | {median_spread([r['turn_max_ms'] for r in rs])} | "
              f"{median_spread([r['producer_turn_max_ms'] for r in rs])} | {median_spread([r['duration_ms'] for r in rs])} | "
              f"{sum(r['digest_equal'] for r in rs)} of {len(rs)} |")
    return 0 if all(r["digest_equal"] for rs in results.values() for r in rs) else 1


if __name__ == "__main__":
    sys.exit(main())
