#!/usr/bin/env python3
"""bench/p32_probe.py — what bounds a pipelined (default pipeline 32) write workload on a
small machine shared by the load tool and the server: per server binary (hmdb in mode always,
or `redis` for Redis AOF always), per redis-benchmark test, runs interleaved, it prints

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
  - with --sched SECONDS (one pass, after the measured runs): perf's scheduler trace of a
    window of that many seconds of a run, and from it the share of the disk thread's
    fdatasync time during which the loop thread ran, the tool ran, and a CPU was idle: whether
    the loop idles while the disk syncs.

Each binary gets a fresh server (and data directory) per repetition; the tests run in it in
order, each after a warm-up of the same test. --nice -10 runs the servers and the tool ahead of
other users' niced work (on a shared machine: builds at nice 10), which then only takes what
they leave idle; it does not keep other users' disk writes from slowing the fdatasyncs.

Example (what issue 16 item 4 at pipeline 32 was analysed with, bench/README.md):
  flock /tmp/hmdb-bench.lock python3 bench/p32_probe.py --nice -10 --bin redis \\
      --bin base=/tmp/lead/hmdb-s29 --bin new=build/apps/kv/hmdb --tests set,incr,sadd,hset --runs 3
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
# Requests of the warm-up run before each measured test (the same test, fills the container).
WARMUP_REQUESTS = 100000


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


def finish_tool(p):
    out, err = p.communicate(timeout=TOOL_TIMEOUT)
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {err.strip()[-500:]}")
    for line in out.splitlines():
        f = [x.strip('"') for x in line.split(",")]
        if f[0] != "test" and len(f) > 1:
            return float(f[1])
    raise RuntimeError(out)


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
    finish_tool(tool)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", action="append", default=[],
                    help="name=path (hmdb; path?VAR=VALUE&... sets its environment) or redis")
    ap.add_argument("--tests", default="set,incr,sadd,hset")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--requests", type=int, default=500000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--pipeline", type=int, default=32)
    ap.add_argument("--threads", type=int, default=0, help="redis-benchmark --threads (0: its default, one)")
    ap.add_argument("--port", type=int, default=7593)
    ap.add_argument("--perf", action="store_true", help="system calls per request (perf stat)")
    ap.add_argument("--sched", type=float, default=0, help="seconds of scheduler trace, once per binary and test")
    ap.add_argument("--hmdb-args", default="", help="extra arguments for hmdb serve")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the servers and the tool at this nice value (negative: ahead of other users' work)")
    a = ap.parse_args()
    global NICE
    NICE = ["nice", "-n", str(a.nice)] if a.nice else []
    root = tempfile.mkdtemp(prefix="hmdb-p32-probe-")
    res = {}
    procs = []
    try:
        for rep in range(a.runs + (1 if a.sched else 0)):
            sched_pass = rep == a.runs
            for b in a.bin:
                name, path = b.split("=", 1) if "=" in b else (b, b)
                # name=path?VAR=VALUE&VAR2=VALUE: the server runs with these in its environment.
                path, _, envs = path.partition("?")
                env = dict(os.environ)
                env.update(dict(e.split("=", 1) for e in envs.split("&") if e))
                d = os.path.join(root, f"{name}-{rep}")
                os.makedirs(d)
                port, mport = a.port, a.port + 1
                if path == "redis":
                    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                            "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"]
                else:
                    argv = [path, "serve", "--port", str(port), "--dir", d + "/data", "--durability", "always",
                            "--metrics-port", str(mport)] + a.hmdb_args.split()
                p = subprocess.Popen(NICE + argv, stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT, env=env)
                procs.append(p)
                try:
                    wait_ping(port)
                    for test in a.tests.split(","):
                        finish_tool(run_tool(a, port, test, WARMUP_REQUESTS))
                        if sched_pass:
                            r = sched_overlap(a, p.pid, port, test)
                            print(f"sched {name} {test}: " + "  ".join(
                                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()),
                                flush=True)
                            continue
                        hm = path != "redis"
                        i0 = info(port)
                        s0 = prom_sums(mport) if hm else {}
                        th0 = threads_cpu(p.pid)
                        m0 = machine()
                        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        w0 = time.monotonic()
                        tool = run_tool(a, port, test, a.requests)
                        perfs = []
                        if a.perf:
                            perfs = [(who, perf_stat(pid, SYSCALL_EVENTS, os.path.join(d, f"perf-{who}-{test}")),
                                      os.path.join(d, f"perf-{who}-{test}")) for who, pid in
                                     (("server", p.pid), ("tool", tool.pid))]
                        rps = finish_tool(tool)
                        wall = time.monotonic() - w0
                        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                        m1 = machine()
                        th1 = threads_cpu(p.pid)
                        s1 = prom_sums(mport) if hm else {}
                        i1 = info(port)
                        counts = {who: perf_read(pp, path_) for who, pp, path_ in perfs}
                        n = a.requests
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
                             "other_us": 1e6 * max(0.0, busy - server_s - tool_s) / n}
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
                            if who == "server" and not hm:
                                fs = c.get("syscalls:sys_enter_fdatasync", 0)
                                r["req_per_sync"] = n / fs if fs else 0
                        res.setdefault((name, test), []).append(r)
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
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
