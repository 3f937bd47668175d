#!/usr/bin/env python3
"""bench/snapshot_alone.py - a snapshot of a big state alone, no writers: how the loop's turns
go while a snapshot in slices (or fork) writes N keys, and what the kernel did meanwhile
(the lead's /tmp run.sh of the 20 M-key measurement, made a script).

Per run, one fresh kv node (`hmdb serve --durability none --snapshot-method M`, on 127.0.0.1,
no snapshot by size), filled by `redis-benchmark -t set -P 64 -c 50 -r R -n N -d V` (R and N
chosen for about --keys distinct keys of --value-bytes: --keys 20000000 --value-bytes 400 is
the ~10 GiB state of issue 16 item 5), then --snapshots snapshots one after the other with
nothing else running, each `hmdb snapshot` after one SET (a node whose index has not moved
has nothing to snapshot) and CONFIG RESETSTAT. Per snapshot: from INFO
the snapshot's duration and bytes, for slices the producer's CPU in all, its longest turn
(last_snapshot_slices_turn_max_us) and its turns, for fork the fork() stall
(fork_stall_last_us), and the loop's longest turn meanwhile (loop_turn_max_ms); the server
log's "in slices" summary line; and the deltas of /proc/vmstat's compaction, huge-page and
reclaim counters across it (compact_*, thp_fault_*, pgmajfault, allocstall_*: a fresh huge
page or a stall in reclaim shows there, not in our code).

Prints each snapshot and medians with the spread (min-max) of the figures, and the load
average before and after. The producer's CPU per turn is the figure that least depends on
the machine's load; wall figures grow with it. No Redis comparison here (bench/stall_bench.py
compares the SNAPSHOT's stall with Redis' BGSAVE at the same size).

With --probe-seconds S, bench/pause_probe (one thread, nice 19, a thread that only reads the
clocks) runs S seconds at rest before each snapshot and S seconds from its start: its longest
"CPU gap" is time the platform charged to a thread doing nothing (a VM whose host reports no
steal time), the floor to set the loop's longest turn against (bench/README.md, "The
session's end on a quiet machine: 20 M keys in slices ...").

Options: --hmdb BINARY (default build/apps/kv/hmdb), --keys 1000000, --value-bytes 400,
--snapshot-method slices|fork, --snapshots 3, --runs 1, --hmdb-args "...", --probe-seconds 0
(off), --pause-probe BINARY (default build/bench/pause_probe).
Run it under the benchmark lock:
    flock /tmp/hmdb-bench.lock python3 bench/snapshot_alone.py --keys 20000000 --snapshots 3
Python 3 standard library plus redis-benchmark on PATH. Every process started here is ended
by its PID.
"""
import argparse
import math
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
from snapshot_stall import free_port, loadavg, median_spread  # noqa: E402
from stall_bench import HmdbServer, call, info_fields, redis_benchmark  # noqa: E402

# --- bounds ---
SNAPSHOT_TIMEOUT_S = 1800.0     # one `hmdb snapshot` of a multi-GiB state, at most
# No snapshot by log size during a run: only the ones asked for.
NO_AUTO_SNAPSHOT_BYTES = 10 ** 15
# The key written before each snapshot (the state is otherwise the fill's).
MARKER_KEY = "snapshot_alone:marker"
# pause_probe's run past its --seconds, at most (it exits by itself at its end).
PROBE_SLACK_S = 30.0
# /proc/vmstat counters whose deltas are reported (prefixes).
VMSTAT_PREFIXES = ("compact_stall", "compact_fail", "compact_success", "thp_fault_alloc", "thp_fault_fallback",
                   "pgmajfault", "allocstall_")


def vmstat():
    out = {}
    with open("/proc/vmstat") as f:
        for line in f:
            k, v = line.split()
            if k.startswith(VMSTAT_PREFIXES):
                out[k] = int(v)
    return out


def start_probe(probe, seconds):
    return subprocess.Popen(["nice", "-n", "19", probe, "--seconds", str(seconds), "--threads", "1"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def probe_result(p, seconds):
    """pause_probe's summary line as {key: float}: cpu_gap_max_ms, cpu_gaps_ge_4ms, ..."""
    out, _ = p.communicate(timeout=seconds + PROBE_SLACK_S)
    line = [l for l in out.splitlines() if l.startswith("pause_probe: all threads")]
    if p.returncode != 0 or not line:
        raise RuntimeError(f"pause_probe exited {p.returncode}: {out}")
    words = line[-1].split()[2:]  # after "pause_probe: all": threads N seconds S ...
    return {k: float(v) for k, v in zip(words[0::2], words[1::2])}


def probe_text(r):
    return (f"longest CPU gap {r['cpu_gap_max_ms']:.1f} ms, gaps >= 4/8/20 ms {int(r['cpu_gaps_ge_4ms'])}/"
            f"{int(r['cpu_gaps_ge_8ms'])}/{int(r['cpu_gaps_ge_20ms'])}")


def snapshot_once(binary, server, port, method, number, probe=None, probe_s=0):
    log_before = len(server.server.log_text())
    # One write first: a node whose applied index has not moved since its last snapshot has
    # nothing to snapshot (it answers with that one).
    call(port, "SET", MARKER_KEY, str(number))
    call(port, "CONFIG", "RESETSTAT")
    taken = int(info_fields(port, "persistence")["snapshots_taken"])  # (RESETSTAT zeroes it)
    rest = probe_result(start_probe(probe, probe_s), probe_s) if probe_s else None
    vm0 = vmstat()
    during = start_probe(probe, probe_s) if probe_s else None
    t0 = time.monotonic()
    p = subprocess.run([binary, "snapshot", "--addr", f"127.0.0.1:{port}"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=SNAPSHOT_TIMEOUT_S)
    wall = time.monotonic() - t0
    vm1 = vmstat()
    during = probe_result(during, probe_s) if during else None
    if p.returncode != 0 or not p.stdout.startswith("OK snapshot at index"):
        raise RuntimeError(f"hmdb snapshot exited {p.returncode}: {p.stdout}{p.stderr}")
    pers = info_fields(port, "persistence")
    if int(pers["snapshots_taken"]) != taken + 1:
        raise RuntimeError(f"snapshots_taken {pers['snapshots_taken']} after `hmdb snapshot`, was {taken}")
    out = {"wall_s": wall, "duration_ms": int(pers["last_snapshot_duration_ms"]),
           "bytes": int(pers["last_snapshot_bytes"]),
           "turn_max_ms": int(info_fields(port, "stats")["loop_turn_max_ms"]),
           "vmstat": {k: vm1[k] - vm0.get(k, 0) for k in vm1 if vm1[k] != vm0.get(k, 0)},
           "probe_rest": rest, "probe_during": during}
    if method == "slices":
        out["producer_turn_max_ms"] = int(pers["last_snapshot_slices_turn_max_us"]) / 1e3
        out["producer_ms"] = int(pers["last_snapshot_slices_us"]) / 1e3
        out["turns"] = int(pers["last_snapshot_slices_turns"])
    else:
        out["producer_turn_max_ms"] = int(pers["fork_stall_last_us"]) / 1e3
    lines = [l for l in server.server.log_text()[log_before:].splitlines() if re.search(r"in slices: |done in", l)]
    out["log"] = "; ".join(l.split("snapshot: ", 1)[-1] for l in lines)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--hmdb", default=os.path.join(root, "build", "apps", "kv", "hmdb"))
    ap.add_argument("--keys", type=int, default=1000000, help="distinct keys, about")
    ap.add_argument("--value-bytes", type=int, default=400)
    ap.add_argument("--snapshot-method", default="slices", choices=["slices", "fork"])
    ap.add_argument("--snapshots", type=int, default=3, help="snapshots of the same state per run")
    ap.add_argument("--runs", type=int, default=1, help="fresh nodes, each filled again")
    ap.add_argument("--hmdb-args", default="", help="more `hmdb serve` arguments")
    ap.add_argument("--probe-seconds", type=float, default=0,
                    help="pause_probe at rest before each snapshot and from its start, this long (0: off)")
    ap.add_argument("--pause-probe", default=os.path.join(root, "build", "bench", "pause_probe"))
    args = ap.parse_args()
    if args.probe_seconds and not os.access(args.pause_probe, os.X_OK):
        sys.exit(f"snapshot_alone: no pause_probe at {args.pause_probe} (build it: scripts/build.sh pause_probe)")
    if shutil.which("redis-benchmark") is None:
        sys.exit("snapshot_alone: redis-benchmark not on PATH")
    # Random keys over a keyspace R with N requests give about R * (1 - e^(-N/R)) distinct
    # keys: R = 1.15 * keys and N from that (as bench/stall_bench.py sizes its growth).
    keyspace = int(args.keys * 1.15)
    requests = int(keyspace * math.log(keyspace / (keyspace - args.keys)))
    server_args = types.SimpleNamespace(durability="none", snapshot_log_bytes=NO_AUTO_SNAPSHOT_BYTES)
    print(f"snapshot_alone: {args.hmdb} --durability none --snapshot-method {args.snapshot_method}; fill -t set "
          f"-P 64 -c 50 -r {keyspace} -n {requests} -d {args.value_bytes}; {args.snapshots} snapshot(s) per run, "
          f"{args.runs} run(s); load {loadavg()}")
    results = []
    for run in range(1, args.runs + 1):
        work = tempfile.mkdtemp(prefix="hmdb-snapshot-alone-")
        port = free_port()
        server = HmdbServer(args.hmdb, port, work, server_args,
                            ["--snapshot-method", args.snapshot_method] + shlex.split(args.hmdb_args))
        try:
            fill_s, _ = redis_benchmark(port, ["-t", "set", "-P", "64", "-c", "50", "-r", str(keyspace), "-n",
                                               str(requests), "-d", str(args.value_bytes)])
            keys = call(port, "DBSIZE")[0]
            print(f"run {run}: {keys} keys filled in {fill_s:.1f} s; load {loadavg()}", flush=True)
            for i in range(1, args.snapshots + 1):
                r = snapshot_once(args.hmdb, server, port, args.snapshot_method, i, args.pause_probe,
                                  args.probe_seconds)
                results.append(r)
                extra = (f", producer {r['producer_ms']:.1f} ms in {r['turns']} turns"
                         if args.snapshot_method == "slices" else "")
                print(f"run {run} snapshot {i}: producer's/fork's longest {r['producer_turn_max_ms']:.1f} ms{extra}; "
                      f"loop's longest turn {r['turn_max_ms']} ms; {r['duration_ms']} ms, {r['bytes']} bytes; "
                      f"vmstat deltas {r['vmstat'] or 'none'}; load {loadavg()}\n  log: {r['log']}", flush=True)
                if r["probe_during"]:
                    print(f"  pause_probe ({args.probe_seconds:g} s, nice 19): at rest {probe_text(r['probe_rest'])}; "
                          f"from the snapshot's start {probe_text(r['probe_during'])}", flush=True)
        finally:
            server.stop()
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nmedians (min-max) over {len(results)} snapshot(s); load at the end {loadavg()}")
    print("| producer's / fork's longest ms | loop's longest turn ms | snapshot ms |")
    print("|---|---|---|")
    print(f"| {median_spread([r['producer_turn_max_ms'] for r in results])} | {median_spread([r['turn_max_ms'] for r in results])} "
          f"| {median_spread([r['duration_ms'] for r in results])} |")
    if args.probe_seconds:
        print(f"pause_probe's longest CPU gap, ms: at rest "
              f"{median_spread([r['probe_rest']['cpu_gap_max_ms'] for r in results])}, from the snapshot's start "
              f"{median_spread([r['probe_during']['cpu_gap_max_ms'] for r in results])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
