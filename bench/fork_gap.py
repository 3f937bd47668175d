#!/usr/bin/env python3
"""bench/fork_gap.py - a kv node's snapshot fork() and a bare process's fork() (bench/fork_probe.cc)
at the same time and load, alternated, per 2 MiB huge page (issue 16 item 5).

A mode-none node grown to --keys keys of --value-bytes (redis-benchmark SET, random keys), or
restarted from --from-dir's snapshot; a fork_probe of --probe-mib beside it. Then --rounds
rounds of: the node's SNAPSHOT (its log line `fork took W us: U us of the loop's CPU, ...` and
INFO's AnonHugePages-counted huge pages), then the probe's commands (--probe, `;`-separated,
e.g. "fork;fork;fork" or "touch read 2048;fork"). Every fork prints the forking thread's CPU
per huge page: the figure to compare (wall time includes waits for a CPU on a shared machine;
the node's CPU figure is CLOCK_THREAD_CPUTIME_ID's from 71a9fad on, getrusage's 4 ms steps
before). --perf DIR records the forking thread (`perf record -g -e cpu-clock -F 20000`; the
sampling itself about doubles a fork's CPU on this VM: compare shares, not times).
Run under the benchmark lock; it prints the load average per round. Every process it starts is
stopped by PID.

    g++ -O2 -pthread -o /tmp/fork_probe bench/fork_probe.cc
    flock /tmp/hmdb-bench.lock python3 bench/fork_gap.py --hmdb build/apps/kv/hmdb \\
        --keys 8000000 --probe-mib 4096 --rounds 4 --probe "fork;fork;fork"
"""
import argparse
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import Resp, Server, free_port, stop_proc  # noqa: E402

FILL_TIMEOUT_S = 3600        # growing a node to 20 M keys takes minutes on a busy machine
SNAPSHOT_TIMEOUT_S = 1800    # the child writes the whole state
PERF_START_S = 1.0           # perf record needs a moment before it samples
FORK_LINE = re.compile(r"fork took (\d+) us: (\d+) us of the loop's CPU, (\d+) waits, (\d+) preemptions")


def loadavg():
    return open("/proc/loadavg").read().split()[0]


def huge_pages(pid):
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) // 2048
    return 0


def mappings(pid):
    return sum(1 for _ in open(f"/proc/{pid}/maps"))


def call(port, *args, timeout=SNAPSHOT_TIMEOUT_S):
    c = Resp(port, timeout=timeout)
    try:
        return c.call(*args)
    finally:
        c.close()


class Perf:
    """`perf record` of one thread (the server's loop is its main thread) while the block runs."""

    def __init__(self, directory, tid, name):
        self.directory, self.tid, self.name, self.proc = directory, tid, name, None

    def __enter__(self):
        if self.directory:
            os.makedirs(self.directory, exist_ok=True)
            self.proc = subprocess.Popen(["perf", "record", "-q", "-g", "-e", "cpu-clock", "-F", "20000", "-t",
                                          str(self.tid), "-o", os.path.join(self.directory, self.name + ".data")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(PERF_START_S)
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait()


class Probe:
    def __init__(self, binary, args):
        self.proc = subprocess.Popen([binary] + args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self.proc.stdout.readline().strip()

    def run(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self):
        try:
            self.run("quit")
        except OSError:
            pass
        stop_proc(self.proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hmdb", required=True)
    ap.add_argument("--probe-bin", default="/tmp/fork_probe")
    ap.add_argument("--keys", type=int, default=8_000_000)
    ap.add_argument("--value-bytes", type=int, default=400)
    ap.add_argument("--probe-mib", type=int, default=4096)
    ap.add_argument("--probe-args", default="", help="more fork_probe options, e.g. '--threads 3'")
    ap.add_argument("--probe", default="fork;fork;fork",
                    help="fork_probe commands after each SNAPSHOT, ';'-separated; variants separated by '|' "
                         "are taken in turn, one per round")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--snapshots", type=int, default=1, help="SNAPSHOTs back to back per round")
    ap.add_argument("--perf", default=None,
                    help="directory: `perf record -g -e cpu-clock` of the forking thread around every fork")
    ap.add_argument("--server-first", default="", help="redis commands before each SNAPSHOT, ';'-separated")
    ap.add_argument("--between", default="",
                    help="a shell command run before each round's SNAPSHOT ({port} is the node's), e.g. a "
                         "redis-benchmark that touches the state; variants separated by '|' in turn, one per "
                         "round (an empty one: nothing)")
    ap.add_argument("--keep-dir", default=None, help="data directory to keep (and restart from if it has a snapshot)")
    ap.add_argument("--serve-args", default="", help="more `hmdb serve` options")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="hmdb-fork-gap.")
    data = args.keep_dir or os.path.join(work, "data")
    port = free_port()
    server = Server(args.hmdb, port, data, os.path.join(work, "hmdb.log"), durability="none")
    server.argv += args.serve_args.split()
    probe = None
    try:
        t0 = time.monotonic()
        server.start()
        n = int(call(port, "DBSIZE"))
        if n < args.keys:
            r = 4 * args.keys  # random keys over R: R(1 - e^(-N/R)) distinct after N SETs
            reqs = int(-r * math.log(1 - args.keys / r))
            subprocess.run(["redis-benchmark", "-p", str(port), "-q", "-t", "set", "-P", "64", "-c", "50",
                            "-r", str(r), "-n", str(reqs), "-d", str(args.value_bytes)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=FILL_TIMEOUT_S, check=True)
            n = int(call(port, "DBSIZE"))
        print(f"node: {n} keys after {time.monotonic() - t0:.0f} s, load {loadavg()}", flush=True)
        probe = Probe(args.probe_bin, ["--mib", str(args.probe_mib)] + args.probe_args.split())
        print(f"probe: {probe.ready}", flush=True)
        for rnd in range(args.rounds):
            for cmd in filter(None, args.server_first.split(";")):
                call(port, *cmd.split())
            between = args.between.split("|")[rnd % len(args.between.split("|"))].strip()
            if between:
                t = time.monotonic()
                subprocess.run(between.format(port=port), shell=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=FILL_TIMEOUT_S, check=True)
                print(f"round {rnd} between: {between} ({time.monotonic() - t:.1f} s)", flush=True)
            for snap in range(args.snapshots):
                hp, maps = huge_pages(server.proc.pid), mappings(server.proc.pid)
                load0 = loadavg()
                call(port, "SET", "fork-gap-round", f"{rnd}.{snap}")
                t = time.monotonic()
                with Perf(args.perf, server.proc.pid, f"server-{rnd}-{snap}"):
                    reply = call(port, "SNAPSHOT")
                took = time.monotonic() - t
                m = FORK_LINE.findall(open(server.log_path, errors="replace").read())
                w, u, v, p = map(int, m[-1]) if m else (0, 0, 0, 0)
                print(f"round {rnd} server: fork wall_us={w} cpu_us={u} nvcsw={v} nivcsw={p} huge_pages={hp} "
                      f"cpu_ns_per_hp={u * 1000 // max(hp, 1)} mappings={maps} snapshot_s={took:.1f} load={load0} "
                      f"({reply})", flush=True)
            variants = args.probe.split("|")
            for i, cmd in enumerate(filter(None, variants[rnd % len(variants)].split(";"))):
                with Perf(args.perf if cmd.startswith("fork") else None, probe.proc.pid, f"probe-{rnd}-{i}"):
                    out = probe.run(cmd.strip())
                print(f"round {rnd} probe: {cmd.strip()} -> {out} load={loadavg()}", flush=True)
    finally:
        if probe:
            probe.stop()
        server.stop()
        if not args.keep_dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
