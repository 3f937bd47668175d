#!/usr/bin/env python3
"""Where a replicated write's server CPU goes, node by node and thread by thread (issue 16 item 6).

Starts a 3-node hmdb cluster (--durability always, as bench/cluster_bench.py does), warms it
up for 0.5 s, then runs `hmdb-bench --tests set --clients N` against the leader and prints,
per acknowledged write:
  - per node: user and system CPU time, disk rounds, fdatasyncs, group-commit holds (and
    those that expired), raft messages sent and received, log entries, deferred commit
    hints (INFO persistence/replication before and after);
  - per thread (the loop thread is marked *): CPU time, system calls and context switches
    (`perf stat --per-thread -e raw_syscalls:sys_enter,context-switches`);
  - a SUM line: all nodes' CPU, the leader's, a follower's (mean of the two), a follower's
    messages received and disk rounds, system calls and context switches of the leader and
    of a follower, ops/s, the load tool's p50 and p99 latency and the load average.
With --by-kind, perf stat also counts the system calls of the write path by name (the
`syscalls:sys_enter_*` tracepoints of KINDS, per thread: counting, not tracing, so the run
goes at full speed). With --trace, `perf trace -s` replaces perf stat: every system call by
name and thread (slow: the tracing itself costs, so compare counts, not times). With
--record leader|follower, `perf record` samples that node (a follower: the first one) by
CPU time (cpu-clock: this VM has no hardware counters) during the run and prints its hottest
symbols, self time, and the report file's path.

Run it under the benchmark lock, one at a time:
  flock /tmp/hmdb-bench.lock bench/cluster_profile.py --build-dir build --runs 3
Compare two binaries by interleaving runs (--hmdb, --label), and give the load average
with every figure. Needs perf and root (or perf_event_paranoid <= 0).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_bench as cb  # noqa: E402

# System calls counted by name with --by-kind: the client, peer, disk and wake-up paths.
KINDS = ("read", "write", "sendto", "recvfrom", "epoll_wait", "futex", "pwrite64", "fdatasync", "getrusage")
# --record: samples per second (cpu-clock), and the share below which a symbol is not printed.
RECORD_HZ = 2000
RECORD_PERCENT_MIN = 0.8
# INFO fields read before and after each run (counters; a missing one counts 0).
COUNTERS = ("disk_rounds", "disk_fsyncs", "disk_holds", "disk_holds_expired", "last_index", "commit_hints_deferred")


def proc_cpu(pid):
    """(user, system) seconds of a process, all threads."""
    with open(f"/proc/{pid}/stat") as f:
        x = f.read().rsplit(")", 1)[1].split()
    return int(x[11]) / 100, int(x[12]) / 100


def thread_cpu(pid):
    """{tid: user + system seconds}."""
    out = {}
    for t in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{t}/stat") as f:
            x = f.read().rsplit(")", 1)[1].split()
        out[int(t)] = (int(x[11]) + int(x[12])) / 100
    return out


def node_counters(port):
    """(counters, role) from INFO all; peer messages summed over the peers."""
    f = cb.info_fields(port, "all") or {}
    d = {k: int(f.get(k, 0)) for k in COUNTERS}
    d["msg_sent"] = d["msg_recv"] = 0
    for k, v in f.items():
        if re.match(r"peer\d+$", k):
            kv = dict(x.split("=", 1) for x in v.split(","))
            d["msg_sent"] += int(kv["sent"])
            d["msg_recv"] += int(kv["received"])
    return d, f.get("role", "?")


def parse_perf_stat(path):
    """{tid: {event: count}} from `perf stat --per-thread -x,` output."""
    per = {}
    for line in open(path).read().splitlines():
        c = line.split(",")
        if len(c) > 3 and c[1].replace(".", "").isdigit():
            tid = int(c[0].rsplit("-", 1)[1])
            per.setdefault(tid, {})[c[3]] = float(c[1])
    return per


def one_run(args, ns, root, rep):
    d = os.path.join(root, f"r{rep}")
    os.makedirs(d)
    s = cb.HmdbCluster(ns, d, args.base_port)
    s.start()
    port = s.leader_port()
    try:
        cb.measure_throughput(ns, "hmdb", port, args.clients, seconds=0.5)
        pids = [p.pid for p in s.procs]
        c0 = [node_counters(p)[0] for p in s.client_ports]
        cpu0 = [proc_cpu(p) for p in pids]
        t0 = [thread_cpu(p) for p in pids]
        if args.trace:
            perfs = [subprocess.Popen(["perf", "trace", "-s", "-p", str(p), "-o", f"{d}/perf{i}"],
                                      stderr=subprocess.DEVNULL) for i, p in enumerate(pids)]
        else:
            events = "raw_syscalls:sys_enter,context-switches"
            if args.by_kind:
                events += "".join(f",syscalls:sys_enter_{k}" for k in KINDS)
            perfs = [subprocess.Popen(["perf", "stat", "--per-thread", "-x,", "-e", events, "-p", str(p),
                                       "-o", f"{d}/perf{i}"])
                     for i, p in enumerate(pids)]
        recorder = None
        if args.record:
            roles = [node_counters(p)[1] for p in s.client_ports]
            want = args.record
            target = next((i for i, role in enumerate(roles) if role == want), None)
            if target is None:
                print(f"  --record: no {want} among {roles}")
            else:
                data = os.path.join(args.record_dir or d, f"perf-{args.label}-{want}-r{rep}.data")
                recorder = (data, subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", str(RECORD_HZ),
                                                    "-g", "-p", str(pids[target]), "-o", data],
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        r = cb.measure_throughput(ns, "hmdb", port, args.clients)
        for p in perfs + ([recorder[1]] if recorder else []):
            p.send_signal(2)
        for p in perfs + ([recorder[1]] if recorder else []):
            p.wait()
        cpu1 = [proc_cpu(p) for p in pids]
        t1 = [thread_cpu(p) for p in pids]
        after = [node_counters(p) for p in s.client_ports]
        n = r.requests
        print(f"{args.label} run {rep}: {r.rps:,.0f} ops/s, {n} writes, load {cb.loadavg()}")
        by_role = {}
        for i, pid in enumerate(pids):
            user = (cpu1[i][0] - cpu0[i][0]) * 1e6 / n
            sys_ = (cpu1[i][1] - cpu0[i][1]) * 1e6 / n
            c1, role = after[i]
            dd = {k: (c1[k] - c0[i][k]) / n for k in c1}
            print(f"  node {i + 1} {role:8}: user {user:5.1f} sys {sys_:5.1f} us/w; rounds {dd['disk_rounds']:.3f} "
                  f"fsyncs {dd['disk_fsyncs']:.3f} holds {dd['disk_holds']:.3f}/{dd['disk_holds_expired']:.3f} "
                  f"msgs sent {dd['msg_sent']:.3f} recv {dd['msg_recv']:.3f} entries {dd['last_index']:.3f} "
                  f"hints {dd['commit_hints_deferred']:.3f} /w")
            row = {"cpu": user + sys_, "msgs": dd["msg_recv"], "rounds": dd["disk_rounds"], "sys": 0.0, "cs": 0.0}
            by_role.setdefault(role, []).append(row)
            if args.trace:
                print(re.sub(r"\n\s*\n", "\n", open(f"{d}/perf{i}").read()))
                continue
            for tid, v in sorted(parse_perf_stat(f"{d}/perf{i}").items()):
                calls = v.get("raw_syscalls:sys_enter", 0) / n
                switches = v.get("context-switches", 0) / n
                row["sys"] += calls
                row["cs"] += switches
                cpu = (t1[i].get(tid, 0) - t0[i].get(tid, 0)) * 1e6 / n
                if calls < 0.001 and cpu == 0:
                    continue
                kinds = "".join(f" {k} {v[f'syscalls:sys_enter_{k}'] / n:.3f}" for k in KINDS
                                if v.get(f"syscalls:sys_enter_{k}", 0) > 0)
                print(f"     tid {tid}{'*' if tid == pid else ' '}: cpu {cpu:5.1f} us/w syscalls {calls:5.2f}/w "
                      f"cs {switches:5.2f}/w{kinds}")
        zero = {"cpu": 0, "msgs": 0, "rounds": 0, "sys": 0, "cs": 0}
        leader = by_role.get("leader", [zero])[0]
        followers = by_role.get("follower", [zero])
        mean = {k: sum(f[k] for f in followers) / len(followers) for k in zero}
        total = leader["cpu"] + sum(f["cpu"] for f in followers)
        print(f"SUM {args.label} total {total:5.1f} leader {leader['cpu']:5.1f} follower {mean['cpu']:5.1f} "
              f"f_msgs {mean['msgs']:.3f} f_rounds {mean['rounds']:.3f} l_sys {leader['sys']:.2f} l_cs {leader['cs']:.3f} "
              f"f_sys {mean['sys']:.2f} f_cs {mean['cs']:.3f} ops {r.rps:,.0f} p50 {r.p50:.2f} p99 {r.p99:.2f} ms "
              f"load {cb.loadavg()}")
        if recorder:
            rep_out = subprocess.run(["perf", "report", "-i", recorder[0], "--stdio", "--no-children", "-g", "none",
                                      "--sort", "pid,sym", "--percent-limit", str(RECORD_PERCENT_MIN)],
                                     capture_output=True, text=True).stdout
            print(f"  perf record of the {args.record} ({recorder[0]}), self time by thread (pid:comm; the "
                  f"loop thread's id is the process's, {pids[target]}) and symbol:")
            for line in rep_out.splitlines():
                if line.strip() and not line.startswith("#"):
                    print("   " + line.rstrip())
    finally:
        s.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--hmdb", help="server binary (default: BUILD/apps/kv/hmdb)")
    ap.add_argument("--hmdb-bench", help="load tool (default: BUILD/bench/hmdb-bench)")
    ap.add_argument("--hmdb-flags", default="", help="extra flags for every node")
    ap.add_argument("--label", default="hmdb", help="names the runs in the output")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=4)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--base-port", type=int, default=7800)
    ap.add_argument("--trace", action="store_true", help="perf trace -s instead of perf stat")
    ap.add_argument("--by-kind", action="store_true", help="perf stat also counts KINDS' system calls by name")
    ap.add_argument("--record", choices=("leader", "follower"), help="perf record of that node during the run")
    ap.add_argument("--record-dir", help="keep the perf.data files here (default: the run's directory, removed)")
    args = ap.parse_args()
    ns = types.SimpleNamespace(hmdb=args.hmdb or os.path.join(args.build_dir, "apps/kv/hmdb"),
                               hmdb_bench=args.hmdb_bench or os.path.join(args.build_dir, "bench/hmdb-bench"),
                               hmdb_flags=args.hmdb_flags.split(), redis_server="redis-server", keyspace=1000000,
                               value_size=3, seconds=args.seconds)
    root = tempfile.mkdtemp(dir="/var/tmp")
    try:
        for rep in range(args.runs):
            one_run(args, ns, root, rep)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
