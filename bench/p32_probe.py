#!/usr/bin/env python3
"""bench/p32_probe.py — what bounds a pipelined (default pipeline 32) workload on a small
machine shared by the load tool and the server: per server (hmdb in mode always, `none:PATH` for
hmdb in mode none, `redis` for Redis AOF always, `redis-none` for Redis without persistence), per
redis-benchmark test (any of its `-t` tests), runs interleaved, it prints

  - ops/s (redis-benchmark's own figure);
  - the load tool's CPU µs per request and its share of one core (with --threads N, the
    tool's N threads together);
  - the server's CPU µs per request, all threads and per thread (hmdb: the loop, the disk
    thread, the prefault thread), as shares of one core;
  - the machine: idle (and iowait) share of all cores, and the CPU of everything that is
    neither the server nor the tool (kernel threads: jbd2, kworkers, softirqs; the probe),
    per request, from /proc/stat;
  - hmdb's group commit from INFO: requests per fdatasync, rounds, holds and how many ran
    out, and (through --metrics-port, the Prometheus histograms' sums) the share of the run's
    wall time the loop worked (its turns) and the disk thread spent in write(2) and fdatasync;
  - with --perf: system calls of each process per request (perf stat), fdatasyncs of Redis;
  - with --record DIR: a perf record (cpu-clock, call graphs, RECORD_HZ) of the server during each
    measured run, kept in DIR, and its hottest symbols by thread (self time; the VM has no
    hardware counters). The samples of a run of N requests give CPU per request by symbol:
    samples / RECORD_HZ / N;
  - with --sched SECONDS (one pass, after the measured runs): perf's scheduler trace of a
    window of that many seconds of a run, and from it the share of the disk thread's
    fdatasync time during which the loop thread ran, the tool ran, and a CPU was idle: whether
    the loop idles while the disk syncs.

Each binary gets a fresh server (and data directory) per repetition; the tests run in it in
order, each after a warm-up of the same test (MSET and the LRANGE tests run a share of
--requests, REQUEST_SHARE), so the order matters: LPOP/RPOP pop what the
LPUSH/RPUSH runs before them pushed, SPOP what SADD added, ZPOPMIN what ZADD added (the order of
redis-benchmark's own `-t` list, which --tests all gives). An LRANGE test's run includes the LPUSH
that fills its list: its ops/s are the LRANGE row's, its CPU per request counts both runs'
requests (as bench/compare.py's --suite does).

--pair A/B[:GOAL] (repeatable) prints, after the medians, a table per test of the median ops/s of
A over B's, with each one's spread ((max-min)/median), the ratio of their server CPU per request
and of the load tool's, and whether A/B reaches GOAL. The load average (1 min) is printed with
every run and the table. --nice -10 runs the servers and the tool ahead of
other users' niced work (on a shared machine: builds at nice 10), which then only takes what
they leave idle; it does not keep other users' disk writes from slowing the fdatasyncs.

Examples (what issue 16 item 4 at pipeline 32 was analysed with, bench/README.md):
  flock /tmp/hmdb-bench.lock python3 bench/p32_probe.py --nice -10 --bin redis \\
      --bin base=/tmp/lead/hmdb-s29 --bin new=build/apps/kv/hmdb --tests set,incr,sadd,hset --runs 3
  flock /tmp/hmdb-bench.lock python3 bench/p32_probe.py --nice -10 --tests all --runs 3 \\
      --bin redis --bin always=build/apps/kv/hmdb --bin redis-none --bin none=none:build/apps/kv/hmdb \\
      --pair always/redis:2 --pair none/redis-none:1
Every process it starts is stopped by PID; data directories are removed at the end.
"""
import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from ping_wait import info_all as info, wait_ping

CLK = os.sysconf("SC_CLK_TCK")
NICE = []  # a `nice -n N` prefix for the servers and the tool (--nice)
# Bounds (seconds).
TOOL_TIMEOUT = 300.0      # one redis-benchmark run
STOP_GRACE = 10.0         # after SIGTERM, before SIGKILL
# --record: samples per second (cpu-clock), and the share below which a symbol is not printed.
RECORD_HZ = 2000
RECORD_PERCENT_MIN = 0.8
# How long perf record is given to attach before the measured run starts (seconds).
RECORD_START_S = 0.5
# Requests of the warm-up run before each measured test (the same test, fills the container).
WARMUP_REQUESTS = 100000
# redis-benchmark 7.0's `-t` tests in its own order (--tests all), and the CSV row each one's
# result is in (an LRANGE test first prints "LPUSH (needed to benchmark LRANGE)").
ALL_TESTS = ["ping_inline", "ping_mbulk", "set", "get", "incr", "lpush", "rpush", "lpop", "rpop", "sadd",
             "hset", "spop", "zadd", "zpopmin", "lrange_100", "lrange_300", "lrange_500", "lrange_600",
             "mset"]
ROW = {t: t.upper() for t in ALL_TESTS}
ROW.update({f"lrange_{n}": f"LRANGE_{n} (first {n} elements)" for n in (100, 300, 500, 600)})
ROW["mset"] = "MSET (10 keys)"
# The share of --requests (and of the warm-up) a test runs: the tests that do ~5-100x a SET's
# work per request run fewer, so that each stays within a few seconds against Redis AOF always.
REQUEST_SHARE = {"mset": 0.2, "lrange_100": 0.4, "lrange_300": 0.2, "lrange_500": 0.1, "lrange_600": 0.1}


def proc_stat_fields(path):
    with open(path) as f:
        text = f.read()
    name = text[text.index("(") + 1:text.rindex(")")]
    return name, text.rsplit(")", 1)[1].split()


def threads_cpu(pid):
    """{tid: (name, cpu seconds)} of every thread of pid."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        try:
            name, f = proc_stat_fields(f"/proc/{pid}/task/{t}/stat")
        except OSError:
            continue
        out[int(t)] = (name, (int(f[11]) + int(f[12])) / CLK)
    return out


def machine():
    """(busy, idle, iowait) seconds summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq + steal) / CLK, idle / CLK, iowait / CLK


def prom_sums(port):
    """Sums (seconds) of the stage histograms from the Prometheus endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out = {}
    for m in re.finditer(r'^hmdb_stage_latency_seconds_sum\{stage="([a-z_]+)"\} (\S+)$', text, re.M):
        out[m.group(1)] = float(m.group(2))
    return out


def num(d, k):
    try:
        return float(d.get(k, "0"))
    except ValueError:
        return 0.0


def perf_stat(pid, events, out_path):
    return subprocess.Popen(["perf", "stat", "-x", ",", "-o", out_path, "-e", ",".join(events), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def perf_read(p, out_path):
    if p.poll() is None:
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=30)
    counts = {}
    with open(out_path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) >= 3 and parts[0] and parts[0][0].isdigit():
                counts[parts[2]] = float(parts[0])
    return counts


SYSCALL_EVENTS = ["raw_syscalls:sys_enter", "syscalls:sys_enter_read", "syscalls:sys_enter_write", "syscalls:sys_enter_recvfrom", "syscalls:sys_enter_sendto",
                  "syscalls:sys_enter_writev", "syscalls:sys_enter_sendmsg", "syscalls:sys_enter_epoll_wait",
                  "syscalls:sys_enter_fdatasync", "context-switches"]


def short(e):
    return e.split(":")[-1].replace("sys_enter_", "").replace("sys_enter", "syscalls")


def run_tool(a, port, test, n):
    argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(a.clients), "-P", str(a.pipeline),
            "-n", str(n), "-r", "1000000", "-d", "3", "-t", test, "--csv"]
    if a.threads:
        argv += ["--threads", str(a.threads)]
    return subprocess.Popen(NICE + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_tool(p, test):
    """(ops/s of the test's row, rows printed: an LRANGE run also prints its LPUSH fill's)."""
    out, err = p.communicate(timeout=TOOL_TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {err.strip()[-500:]}")
    rows = [[x.strip('"') for x in line.split(",")] for line in out.splitlines()]
    rows = [f for f in rows if f[0] != "test" and len(f) > 1]
    for f in rows:
        if f[0] == ROW.get(test, test.upper()):
            return float(f[1]), len(rows)
    raise RuntimeError(f"no {ROW.get(test, test.upper())!r} row: {out}")


def load1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def spread(v):
    return (max(v) - min(v)) / statistics.median(v) if v and statistics.median(v) else 0.0


def sched_overlap(a, server_pid, port, test):
    """perf's scheduler trace of a window of a run: while the disk thread is off the CPU in
    fdatasync (switched out in state D), what ran. Returns a dict of shares."""
    loop_tid = server_pid
    tool = run_tool(a, port, test, a.requests * 4)
    time.sleep(0.5)
    data = tempfile.mktemp(prefix="p32-sched-", suffix=".data")
    subprocess.run(["perf", "record", "-q", "-a", "-e", "sched:sched_switch", "-o", data, "--", "sleep",
                    str(a.sched)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=a.sched + 60)
    tool_pid = tool.pid
    script = subprocess.run(["perf", "script", "-i", data, "-F", "cpu,time,trace"], capture_output=True, text=True,
                            timeout=300).stdout
    os.unlink(data)
    finish_tool(tool, test)
    # hmdb's disk thread (not the loop, not the prefault thread); Redis fsyncs on its loop.
    disk_tids = [t for t, (name, _) in threads_cpu(server_pid).items() if t != loop_tid and name != "hmdb-prefault"]
    if not disk_tids or threads_cpu(server_pid)[loop_tid][0].startswith("redis"):
        disk_tids = [loop_tid]
    # Events: "[001] 1234.567890: prev_comm=... prev_pid=N prev_prio=.. prev_state=S ==> next_comm=.. next_pid=M ..."
    rx = re.compile(r"\[(\d+)\]\s+([\d.]+):\s+prev_comm=(.*?) prev_pid=(\d+) .*?prev_state=(\S+) ==> next_comm=.*?next_pid=(\d+)")
    comm = {}
    running = {}  # cpu -> pid running
    t0 = None
    disk_in_d_since = {}
    # Intervals: who ran on each cpu, and when a disk thread was in D.
    runs = []      # (start, end, pid)
    d_spans = []   # (start, end)
    cur_start = {}
    for line in script.splitlines():
        m = rx.search(line)
        if not m:
            continue
        cpu, t, prev, state, nxt = int(m.group(1)), float(m.group(2)), int(m.group(4)), m.group(5), int(m.group(6))
        comm[prev] = m.group(3)
        if t0 is None:
            t0 = t
        if cpu in cur_start:
            runs.append((cur_start[cpu], t, prev))
        cur_start[cpu] = t
        if prev in disk_tids and state.startswith("D"):
            disk_in_d_since[prev] = t
        if nxt in disk_tids and nxt in disk_in_d_since:
            d_spans.append((disk_in_d_since.pop(nxt), t))
    if not d_spans:
        return {}
    total_d = sum(e - s for s, e in d_spans)
    # Overlap of each D span with runs of the loop, the tool (any thread), idle (pid 0).
    tool_tids = set(int(x) for x in os.listdir(f"/proc/{tool_pid}/task")) if os.path.exists(f"/proc/{tool_pid}") else {tool_pid}
    tool_tids.add(tool_pid)

    def overlap(pred):
        tot = 0.0
        spans = sorted(d_spans)
        for s, e, pid in runs:
            if not pred(pid):
                continue
            for ds, de in spans:
                if de <= s:
                    continue
                if ds >= e:
                    break
                tot += min(e, de) - max(s, ds)
        return tot

    window = (runs[-1][1] - t0) if runs else 1.0
    is_loop = lambda p: p == loop_tid  # noqa: E731
    is_tool = lambda p: p == tool_pid or p in tool_tids  # noqa: E731
    is_disk = lambda p: p in disk_tids  # noqa: E731
    server_tids = set(threads_cpu(server_pid))

    def ran(pred):  # CPU seconds of the window (both CPUs)
        return sum(e - s for s, e, pid in runs if pred(pid))

    # While the disk thread is in fdatasync (D): CPU-seconds of each, per second of D (at most
    # the number of CPUs; idle_cpus 1.0 means one CPU was idle throughout on average).
    by_comm = {}
    for s_, e_, pid in runs:
        if pid != 0 and not is_tool(pid) and pid not in server_tids:
            by_comm[comm.get(pid, "?")] = by_comm.get(comm.get(pid, "?"), 0.0) + (e_ - s_)
    top = sorted(by_comm.items(), key=lambda kv: -kv[1])[:4]
    print("  others by name (CPUs): " + ", ".join(f"{c} {v / window:.2f}" for c, v in top), flush=True)
    return {"syncs": len(d_spans), "sync_ms_mean": 1e3 * total_d / len(d_spans),
            "d_share_of_window": total_d / window,
            "in_sync:loop_ran": overlap(is_loop) / total_d,
            "in_sync:tool_ran": overlap(is_tool) / total_d,
            "in_sync:idle_cpus": overlap(lambda p: p == 0) / total_d,
            "in_sync:others_ran": overlap(lambda p: p != 0 and not is_tool(p) and p not in server_tids) / total_d,
            "window_s": window,
            "loop_share": ran(is_loop) / window, "tool_share": ran(is_tool) / window,
            "disk_thread_share": ran(is_disk) / window,
            "idle_cpus": ran(lambda p: p == 0) / window,
            "others": ran(lambda p: p != 0 and not is_tool(p) and p not in server_tids) / window}


def print_record(data, pid):
    """The hottest symbols of a perf record by thread (self time)."""
    out = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", "--sort",
                          "pid,sym", "--percent-limit", str(RECORD_PERCENT_MIN)], capture_output=True, text=True,
                         timeout=300).stdout
    print(f"  perf record {data} (self time by thread: pid:comm is the thread; the loop's id is {pid}):")
    for line in out.splitlines():
        if line.strip() and not line.startswith("#"):
            print("   " + line.rstrip())


def print_pair(pair, tests, res):
    """A/B[:GOAL]: per test, A's median ops/s over B's, with spreads, CPU ratios and the goal."""
    names, _, goal = pair.partition(":")
    an, bn = names.split("/")
    goal = float(goal) if goal else None
    print(f"\n{an} / {bn}" + (f" (goal >= {goal:g})" if goal else "") + ": median ops/s (spread), server CPU "
          "us/request, the load tool's share of one core, ratio of ops/s, of server CPU per request")
    print(f"| test | {an} ops/s | {bn} ops/s | {an} CPU | {bn} CPU | tool core {an} / {bn} | ops {an}/{bn} | "
          f"CPU {an}/{bn} |" + (" goal |" if goal else ""))
    print("|---|---:|---:|---:|---:|---:|---:|---:|" + ("---|" if goal else ""))
    for t in tests:
        ra, rb = res.get((an, t), []), res.get((bn, t), [])
        if not ra or not rb:
            continue
        m = lambda rs, k: statistics.median([r.get(k, 0.0) for r in rs])  # noqa: E731
        oa, ob = m(ra, "ops"), m(rb, "ops")
        ca, cb = m(ra, "server_us"), m(rb, "server_us")
        ratio = oa / ob if ob else 0.0
        cells = [f"{oa / 1e3:,.0f} k ({spread([r['ops'] for r in ra]):.0%})",
                 f"{ob / 1e3:,.0f} k ({spread([r['ops'] for r in rb]):.0%})", f"{ca:.2f}", f"{cb:.2f}",
                 f"{m(ra, 'tool_core'):.2f} / {m(rb, 'tool_core'):.2f}", f"**{ratio:.2f}**", f"{ca / cb:.2f}" if cb else "-"]
        if goal:
            cells.append("met" if ratio >= goal else "MISSED")
        print(f"| {t.upper()} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", default=[],
                    help="name=path (hmdb in mode always; none:path for mode none; path?VAR=VALUE&... sets "
                         "its environment), redis (AOF always) or redis-none (no persistence)")
    ap.add_argument("--tests", default="set,incr,sadd,hset", help="redis-benchmark -t tests, in order; all: every one")
    ap.add_argument("--pair", action="append", default=[],
                    help="A/B[:GOAL]: print A's ops/s over B's per test (and whether it reaches GOAL)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=500000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipeline", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="redis-benchmark --threads (0: its default, one)")
    ap.add_argument("--port", type=int, default=7593)
    ap.add_argument("--perf", action="store_true", help="system calls per request (perf stat)")
    ap.add_argument("--sched", type=float, default=0, help="seconds of scheduler trace, once per binary and test")
    ap.add_argument("--record", metavar="DIR",
                    help="perf record (cpu-clock, call graphs) of the server during each measured run, kept in DIR "
                         "as perf-NAME-TEST-rREP.data; prints each run's hottest symbols by thread")
    ap.add_argument("--hmdb-args", default="", help="extra arguments for hmdb serve")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the servers and the tool at this nice value (negative: ahead of other users' work)")
    a = ap.parse_args()
    if a.tests == "all":
        a.tests = ",".join(ALL_TESTS)
    global NICE
    NICE = ["nice", "-n", str(a.nice)] if a.nice else []
    root = tempfile.mkdtemp(prefix="hmdb-p32-probe-")
    res = {}
    procs = []
    loads = [load1()]
    print(f"load average at the start: {open('/proc/loadavg').read().split()[:3]}", flush=True)
    try:
        for rep in range(a.runs + (1 if a.sched else 0)):
            sched_pass = rep == a.runs
            for b in a.bin:
                name, path = b.split("=", 1) if "=" in b else (b, b)
                # name=path?VAR=VALUE&VAR2=VALUE: the server runs with these in its environment.
                path, _, envs = path.partition("?")
                durability = "always"
                if path.startswith("none:"):
                    durability, path = "none", path[len("none:"):]
                env = dict(os.environ)
                env.update(dict(e.split("=", 1) for e in envs.split("&") if e))
                d = os.path.join(root, f"{name}-{rep}")
                os.makedirs(d)
                port, mport = a.port, a.port + 1
                redis = path in ("redis", "redis-none")
                if redis:
                    persistence = (["--appendonly", "yes", "--appendfsync", "always"] if path == "redis" else
                                   ["--appendonly", "no"])
                    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                            "--daemonize", "no"] + persistence
                else:
                    argv = [path, "serve", "--port", str(port), "--dir", d + "/data", "--durability", durability,
                            "--metrics-port", str(mport)] + a.hmdb_args.split()
                p = subprocess.Popen(NICE + argv, stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT, env=env)
                procs.append(p)
                try:
                    wait_ping(port)
                    for test in a.tests.split(","):
                        share = REQUEST_SHARE.get(test, 1.0)
                        finish_tool(run_tool(a, port, test, int(WARMUP_REQUESTS * share)), test)
                        if sched_pass:
                            r = sched_overlap(a, p.pid, port, test)
                            print(f"sched {name} {test}: " + "  ".join(
                                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
                                flush=True)
                            continue
                        hm = not redis
                        recorder = None
                        if a.record:
                            os.makedirs(a.record, exist_ok=True)
                            data = os.path.join(a.record, f"perf-{name}-{test}-r{rep}.data")
                            recorder = (data, subprocess.Popen(
                                ["perf", "record", "-q", "-e", "cpu-clock", "-F", str(RECORD_HZ), "-g", "-p",
                                 str(p.pid), "-o", data], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                            time.sleep(RECORD_START_S)
                        i0 = info(port)
                        s0 = prom_sums(mport) if hm else {}
                        th0 = threads_cpu(p.pid)
                        m0 = machine()
                        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        w0 = time.monotonic()
                        tool = run_tool(a, port, test, int(a.requests * share))
                        perfs = []
                        if a.perf:
                            perfs = [(who, perf_stat(pid, SYSCALL_EVENTS, os.path.join(d, f"perf-{who}-{test}")),
                                      os.path.join(d, f"perf-{who}-{test}")) for who, pid in
                                     (("server", p.pid), ("tool", tool.pid))]
                        rps, nrows = finish_tool(tool, test)
                        wall = time.monotonic() - w0
                        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        m1 = machine()
                        th1 = threads_cpu(p.pid)
                        s1 = prom_sums(mport) if hm else {}
                        i1 = info(port)
                        counts = {who: perf_read(pp, path_) for who, pp, path_ in perfs}
                        if recorder:  # reaped after ru1: its CPU is not the tool's
                            recorder[1].send_signal(signal.SIGINT)
                            recorder[1].wait(timeout=60)
                        n = int(a.requests * share) * nrows  # an LRANGE run's LPUSH fill counts
                        tool_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                        # perf stat processes are children too: subtract nothing (they use
                        # little), but say so in the README.
                        per_thread = {}
                        used = {tid: c1 - th0.get(tid, (tname, 0.0))[1] for tid, (tname, c1) in th1.items()}
                        # hmdb's disk thread: the busiest thread that is neither the loop nor named.
                        others_ = [t for t in used if t != p.pid and th1[t][0] != "hmdb-prefault"]
                        disk_tid = max(others_, key=lambda t: used[t]) if hm and others_ else None
                        for tid, (tname, c1) in th1.items():
                            label = ("loop" if tid == p.pid else "prefault" if tname == "hmdb-prefault" else
                                     "disk" if tid == disk_tid else "other" if hm else tname)
                            per_thread[label] = per_thread.get(label, 0.0) + used[tid]
                        server_s = sum(per_thread.values())
                        busy = m1[0] - m0[0]
                        idle = m1[1] - m0[1]
                        iow = m1[2] - m0[2]
                        cores = os.cpu_count()
                        r = {"ops": rps, "tool_us": 1e6 * tool_s / n, "tool_core": tool_s / wall,
                             "server_us": 1e6 * server_s / n, "server_core": server_s / wall,
                             "idle": (idle + iow) / (wall * cores), "iowait": iow / (wall * cores),
                             "other_us": 1e6 * max(0.0, busy - server_s - tool_s) / n, "load": load1()}
                        loads.append(r["load"])
                        for label, c in per_thread.items():
                            if c / wall >= 0.005:
                                r["thr:" + label] = c / wall
                        if hm:
                            fs = num(i1, "disk_fsyncs") - num(i0, "disk_fsyncs")
                            holds = num(i1, "disk_holds") - num(i0, "disk_holds")
                            exp = num(i1, "disk_holds_expired") - num(i0, "disk_holds_expired")
                            r["req_per_sync"] = n / fs if fs else 0
                            r["rounds"] = num(i1, "disk_rounds") - num(i0, "disk_rounds")
                            r["holds_expired"] = exp / holds if holds else 0
                            r["rounds_held"] = holds / r["rounds"] if r["rounds"] else 0
                            r["turns_per_round"] = (num(i1, "loop_turns") - num(i0, "loop_turns")) / max(r["rounds"], 1)
                            for st in ("loop_turn", "disk_fsync", "disk_write"):
                                if st in s1:
                                    r[st + "_share"] = (s1[st] - s0.get(st, 0.0)) / wall
                        for who, c in counts.items():
                            for e, v in c.items():
                                r[f"{who}:{short(e)}/req"] = v / n
                            if who == "server" and not hm and path == "redis":
                                fs = c.get("syscalls:sys_enter_fdatasync", 0)
                                r["req_per_sync"] = n / fs if fs else 0
                        res.setdefault((name, test), []).append(r)
                        if recorder:
                            print_record(recorder[0], p.pid)
                        print(f"run {rep} {name} {test}: " + "  ".join(
                            f"{k} {v:.3f}" if abs(v) < 100 else f"{k} {v:.0f}" for k, v in r.items()), flush=True)
                finally:
                    if p.poll() is None:
                        os.kill(p.pid, signal.SIGTERM)
                        try:
                            p.wait(timeout=STOP_GRACE)
                        except subprocess.TimeoutExpired:
                            os.kill(p.pid, signal.SIGKILL)
                            p.wait()
                    os.sync()
        print("\nmedians:")
        for (name, test), rs in res.items():
            keys = sorted({k for r in rs for k in r})
            med = {k: statistics.median([r.get(k, 0.0) for r in rs]) for k in keys}
            ops = [r["ops"] for r in rs]
            print(f"{name} {test} (ops/s {min(ops):.0f}-{max(ops):.0f}): " + "  ".join(
                f"{k} {v:.3f}" if abs(v) < 100 else f"{k} {v:.0f}" for k, v in med.items()))
        for pair in a.pair:
            print_pair(pair, a.tests.split(","), res)
        print(f"load average (1 min) over the runs: {min(loads):.1f}-{max(loads):.1f}; at the end: "
              f"{open('/proc/loadavg').read().split()[:3]}")
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
