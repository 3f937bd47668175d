#!/usr/bin/env python3
"""bench/p1_probe.py — A/B counts at pipeline 1 that a busy machine does not scramble as much
as ops/s: per server binary (hmdb in mode always, or `redis` for Redis AOF always), per
workload, with redis-benchmark or hmdb-bench as the load (50 clients), runs interleaved.
Prints per run and as medians: ops/s, the server's CPU µs per request (utime + stime of all
its threads), its context switches per request, requests per fdatasync and the share of
group-commit holds that ran out (and ran out before the replies were sent: INFO
disk_holds_expired, disk_holds_expired_unsent), and the load tool's own CPU µs per request.
Example: python3 bench/p1_probe.py --bin redis --bin base=/tmp/hmdb-a --bin new=build/apps/kv/hmdb
  --workloads set,incr --runs 5 --tool redis-benchmark
A path `taskset:CPUS:PATH` (e.g. `--bin redis1=taskset:1:redis`) runs that server under
`taskset -c CPUS` (all its threads on those CPUs), the load tool where the kernel puts it.
Run it under `flock /tmp/hmdb-bench.lock` on a shared machine."""
import argparse, resource, os, subprocess, time, shutil, tempfile, socket, statistics, sys, re
from ping_wait import info_all as info, wait_ping

def cpu_us(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) * 1e6 / os.sysconf("SC_CLK_TCK")

def ctxsw(pid):
    tot = 0
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/status") as f:
            for line in f:
                if "ctxt_switches" in line: tot += int(line.split()[1])
    return tot

def load(tool, port, wl, seconds, clients, hb, n=None, threads=0):
    if tool == "hmdb-bench":
        out = subprocess.run([hb, "--port", str(port), "--clients", str(clients), "--pipeline", "1", "--seconds", str(seconds),
                              "--keyspace", "1000000", "--value-size", "3", "--tests", wl, "--csv", "--quiet"], capture_output=True, text=True).stdout
        lines = out.strip().splitlines(); hdr = lines[0].split(","); row = lines[1].split(",")
        r = dict(zip(hdr, row)); return float(r["rps"]), int(r["requests"])
    else:
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-c", str(clients), "-P", "1", "-n", str(n), "-r", "1000000",
                              "-d", "3", "-t", wl, "--csv"] + (["--threads", str(threads)] if threads else []),
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            f = [x.strip('"') for x in line.split(",")]
            if f[0] != "test" and len(f) > 1: return float(f[1]), n
        raise RuntimeError(out)

ap = argparse.ArgumentParser()
ap.add_argument("--bin", action="append", default=[], help="name=path or redis; path taskset:CPUS:path pins the server")
ap.add_argument("--workloads", default="set,incr")
ap.add_argument("--tool", default="redis-benchmark")
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--seconds", type=float, default=3)
ap.add_argument("--clients", type=int, default=50)
ap.add_argument("--hb", default="build/bench/hmdb-bench")
ap.add_argument("--port", type=int, default=7493)
ap.add_argument("--perf", action="store_true")
ap.add_argument("--rate", type=float, default=20000)
ap.add_argument("--threads", type=int, default=0, help="redis-benchmark --threads (0: its default, one thread)")
a = ap.parse_args()
res = {}
for rep in range(a.runs):
    for b in a.bin:
        name, path = b.split("=", 1) if "=" in b else (b, b)
        d = tempfile.mkdtemp(prefix="hmdb-p1-probe-")
        port = a.port
        pin = []
        if path.startswith("taskset:"):
            _, cpus, path = path.split(":", 2)
            pin = ["taskset", "-c", cpus]
        if path == "redis":
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv = [path, "serve", "--port", str(port), "--dir", d + "/data", "--durability", "always"]
        p = subprocess.Popen(pin + argv, stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT)
        try:
            wait_ping(port)
            for wl in a.workloads.split(","):
                load(a.tool, port, wl, 0.5, a.clients, a.hb, n=10000, threads=a.threads)
                i0 = info(port); c0 = cpu_us(p.pid); x0 = ctxsw(p.pid)
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                rps, n = load(a.tool, port, wl, a.seconds, a.clients, a.hb, n=int(a.seconds * a.rate), threads=a.threads)
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                c1 = cpu_us(p.pid); x1 = ctxsw(p.pid); i1 = info(port)
                g = lambda k: int(i1.get(k, 0)) - int(i0.get(k, 0))
                fs = g("disk_fsyncs") or (g("aof_fsyncs") if "aof_fsyncs" in i1 else 0)
                r = dict(rps=rps, cpu=(c1 - c0) / n, cs=(x1 - x0) / n,
                         rpf=(n / fs) if fs else float("nan"),
                         cl=((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)) * 1e6 / n,
                         uns=(100.0 * g("disk_holds_expired_unsent") / g("disk_holds")) if g("disk_holds") else float("nan"),
                         exp=(100.0 * g("disk_holds_expired") / g("disk_holds")) if g("disk_holds") else float("nan"))
                res.setdefault((wl, name), []).append(r)
                print(f"rep{rep} {wl:5} {name:8} rps {rps:8.0f} cpu {r['cpu']:6.2f} cs {r['cs']:.3f} req/fsync {r['rpf']:5.1f} exp {r['exp']:4.0f}% unsent {r['uns']:4.0f}% client {r['cl']:5.2f}  load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            p.terminate(); p.wait(); shutil.rmtree(d, ignore_errors=True)
print("medians:")
for (wl, name), rs in sorted(res.items()):
    m = lambda k: statistics.median(x[k] for x in rs)
    print(f"{wl:5} {name:8} rps {m('rps'):8.0f} cpu {m('cpu'):6.2f} cs {m('cs'):.3f} req/fsync {m('rpf'):5.1f} exp {m('exp'):4.0f}% unsent {m('uns'):4.0f}% client {m('cl'):5.2f}  cpu range {min(x['cpu'] for x in rs):.2f}-{max(x['cpu'] for x in rs):.2f} rps range {min(x['rps'] for x in rs):.0f}-{max(x['rps'] for x in rs):.0f}")
