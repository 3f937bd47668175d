#!/usr/bin/env python3
"""bench/p1_syscalls.py — the server's system calls per request, by kind and by thread, under
redis-benchmark's load (default: `-c 50 -P 1 -t set -r 1000000 -d 3`), for hmdb in mode always
and Redis with AOF always (`--bin redis`), runs interleaved. Counts per request depend little on
the machine's load (unlike ops/s), so they are what an A/B of kernel-side work compares.

Per binary and run: a fresh server and data directory, a warm-up of WARMUP_REQUESTS, then
`perf stat --per-thread -p PID -- redis-benchmark -n REQUESTS`: per server thread, the system
calls of each kind in SYSCALLS (a tracepoint each), all system calls, reads that failed
(EAGAIN), context switches; and over the same run each thread's CPU time (/proc/PID/task/TID)
and, for hmdb, the fdatasyncs (INFO). All divided by the run's requests. Threads are named by
role: `loop` (the main thread), `disk` (the one that calls fdatasync), their comm otherwise.
The counting costs the server some CPU (use p1_probe.py for CPU per request), the counts
little.

Example: flock /tmp/hmdb-bench.lock python3 bench/p1_syscalls.py --bin redis \\
    --bin base=/tmp/hmdb-base --bin new=build/apps/kv/hmdb --runs 2
Every process it starts is stopped by PID; data directories are removed."""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from ping_wait import info_all as info, wait_ping

CLK = os.sysconf("SC_CLK_TCK")
# Bounds and fixed amounts.
WARMUP_REQUESTS = 20000   # before the counted run, the same test
TOOL_TIMEOUT_S = 300.0    # one redis-benchmark run
STOP_GRACE_S = 10.0       # after SIGTERM, before SIGKILL


def threads(pid):
    """tid -> (comm, cpu µs, context switches)"""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{t}/stat") as f:
                text = f.read()
            comm = text[text.index("(") + 1:text.rindex(")")]
            parts = text.rsplit(")", 1)[1].split()
            cpu = (int(parts[11]) + int(parts[12])) * 1e6 / CLK
            cs = 0
            with open(f"/proc/{pid}/task/{t}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        cs += int(line.split()[1])
            out[int(t)] = (comm, cpu, cs)
        except (FileNotFoundError, ProcessLookupError):
            pass
    return out


# The system calls counted (a tracepoint each: counting all ~360 doubled the server's CPU), and
# reads that failed (EAGAIN: nothing there) through a filter on read's exit.
SYSCALLS = ["read", "write", "sendto", "recvfrom", "sendmsg", "writev", "epoll_wait", "epoll_pwait", "epoll_ctl",
            "ppoll", "poll", "futex", "fdatasync", "fsync", "pwrite64", "getrusage", "clock_gettime", "madvise",
            "mmap", "munmap", "brk", "openat", "close", "sched_yield", "clock_nanosleep", "nanosleep"]


def perf_argv(pid, out, syscalls):
    events = ["raw_syscalls:sys_enter", "context-switches"] + [f"syscalls:sys_enter_{c}" for c in syscalls]
    return (["perf", "stat", "-x", ",", "--per-thread", "-o", out, "-e", ",".join(events), "-e",
             "syscalls:sys_exit_read", "--filter", "ret < 0", "-p", str(pid), "--"])


def parse_perf(text):
    """perf stat --per-thread -x, output: tid -> {event: count}"""
    res = {}
    for line in text.splitlines():
        f = line.split(",")
        if len(f) < 4 or "-" not in f[0]:
            continue
        tid = int(f[0].rsplit("-", 1)[1])
        try:
            v = float(f[1])
        except ValueError:
            continue
        ev = f[3].replace("syscalls:sys_enter_", "").replace("raw_syscalls:sys_enter", "all")
        ev = ev.replace("syscalls:sys_exit_read", "read_failed")
        res.setdefault(tid, {})[ev] = v
    return res


def one_run(name, path, a, port):
    d = tempfile.mkdtemp(prefix="hmdb-p1-syscalls-")
    if path == "redis":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly",
                "yes", "--appendfsync", "always"]
    else:
        argv = [path, "serve", "--port", str(port), "--dir", d + "/data", "--durability", "always"] + a.server_arg
    p = subprocess.Popen(argv, stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_ping(port)
        bench = ["redis-benchmark", "-p", str(port), "-c", str(a.clients), "-P", str(a.pipeline), "-r", "1000000",
                 "-d", "3", "-t", a.test, "-q"]
        subprocess.run(bench + ["-n", str(WARMUP_REQUESTS)], capture_output=True, timeout=TOOL_TIMEOUT_S)
        i0, t0 = info(port), threads(p.pid)
        t_start = time.monotonic()
        out = subprocess.run(perf_argv(p.pid, d + "/perf", a.syscalls.split(",") if a.syscalls else SYSCALLS) + bench + ["-n", str(a.requests), "--csv"],
                             capture_output=True, text=True, timeout=TOOL_TIMEOUT_S).stdout
        wall = time.monotonic() - t_start
        i1, t1 = info(port), threads(p.pid)
        n = a.requests
        with open(d + "/perf") as f:
            counts = parse_perf(f.read())
        r = {"n": n, "rps": n / wall, "threads": {}, "fsyncs": float(i1.get("disk_fsyncs", 0)) - float(i0.get("disk_fsyncs", 0))}
        for tid in set(counts) | set(t1):
            c = counts.get(tid, {})
            role = "loop" if tid == p.pid else ("disk" if c.get("fdatasync") and path != "redis" else t1.get(tid, ("?",))[0])
            c0 = t0.get(tid, (None, 0, 0))
            c1 = t1.get(tid, (None, c0[1], c0[2]))
            th = r["threads"].setdefault(role, {"sc": {}, "cpu": 0.0, "cs": 0.0})
            for k, v in c.items():
                th["sc"][k] = th["sc"].get(k, 0) + v / n
            th["cpu"] += (c1[1] - c0[1]) / n
            th["cs"] += (c1[2] - c0[2]) / n
        return r
    finally:
        p.terminate()
        try:
            p.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", default=[], help="name=path of hmdb, or redis")
    ap.add_argument("--server-arg", action="append", default=[], help="one more argument for every hmdb")
    ap.add_argument("--test", default="set")
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=100000, help="of the counted run")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--syscalls", default="", help="count only these (comma-separated; default: SYSCALLS)")
    ap.add_argument("--port", type=int, default=7497)
    a = ap.parse_args()
    res = {}
    for rep in range(a.runs):
        for b in a.bin:
            name, path = b.split("=", 1) if "=" in b else (b, b)
            la = os.getloadavg()[0]
            r = one_run(name, path, a, a.port)
            res.setdefault(name, []).append(r)
            fs = r["fsyncs"] / r["n"] or sum(th["sc"].get("fdatasync", 0) for th in r["threads"].values())
            print(f"run {rep} {name}: {r['rps']:.0f} requests/s, syscalls {total(r):.3f} per request, "
                  f"{1 / fs if fs else float('nan'):.1f} requests per fdatasync, load {la:.1f}", flush=True)
            for role, th in sorted(r["threads"].items()):
                if th["cpu"] or th["sc"].get("all"):
                    print(f"  {role:14} cpu {th['cpu']:6.2f} us cs {th['cs']:.3f} | {fmt(th['sc'])}", flush=True)
    print("medians (per request):")
    for name, rs in res.items():
        print(f"{name}: syscalls {statistics.median(total(r) for r in rs):.3f}, context switches "
              f"{statistics.median(sum(th['cs'] for th in r['threads'].values()) for r in rs):.3f}, CPU µs "
              f"{statistics.median(sum(th['cpu'] for th in r['threads'].values()) for r in rs):.2f}")
        for role in sorted({role for r in rs for role in r["threads"]}):
            ths = [r["threads"].get(role, {"sc": {}, "cpu": 0, "cs": 0}) for r in rs]
            if not any(th["cpu"] or th["sc"].get("all") for th in ths):
                continue
            keys = {k for th in ths for k in th["sc"]}
            med = {k: statistics.median(th["sc"].get(k, 0) for th in ths) for k in keys}
            print(f"  {role:14} cpu {statistics.median(th['cpu'] for th in ths):6.2f} cs "
                  f"{statistics.median(th['cs'] for th in ths):.3f} | {fmt(med)}")


def total(r):
    return sum(th["sc"].get("all", 0) for th in r["threads"].values())


def fmt(sc):
    return " ".join(f"{k} {v:.3f}" for k, v in sorted(sc.items(), key=lambda kv: -kv[1]) if v >= 0.0005)


if __name__ == "__main__":
    main()
