#!/usr/bin/env python3
"""bench/pubsub_bench.py — live updates (issue 14): hmdb pub/sub against Redis pub/sub and an
etcd watch, side by side in one run.

Three systems, 3 nodes each on 127.0.0.1, all started once and kept up for the whole run:
  hmdb   a 3-node cluster (--durability always); writers on the leader; PUBLISH is a logged,
         replicated, fsynced write; subscribers on all three nodes (followers deliver too).
  Redis  7 master + 2 replicas (bench/cluster_bench.py's group, appendonly always; PUBLISH is
         not written to the AOF, it is propagated to the replicas, whose subscribers get it
         from there); writers on the master, subscribers on all three.
  etcd   3 members (Debian's etcd 3.4, defaults); writers PUT one key on the leader, watchers
         of that key on all three members.

One load client drives all three: bench/pubsub/pubsub-load (Go; RESP by hand, etcd through
Debian's clientv3), built by bench/pubsub/build.sh. Per cell it connects the subscribers
(round-robin over the nodes, the non-leaders first, so a single subscriber sits on a
follower/replica), then --writers writers with one request in flight each write for
--seconds, and it reports writes/s and the delivery latency of every event: the time the
subscriber read it minus the time the writer read the write's reply (CLOCK_MONOTONIC,
read by the writers' process and the subscribers'), so for hmdb it includes commit on the followers, apply and fan-out. Events
lost or duplicated are counted per subscriber from the writers' sequence numbers.

Two series, each cell once per repetition, repetitions interleaved (rep -> cell -> system,
the system order rotating) so that a slow phase of the shared machine hits all systems:
  closed  writers as fast as the replies come; subscribers 0 (the baseline), then --subs.
          Loss = 1 - writes/s with subscribers / writes/s with none (medians).
  paced   writers at --rate writes/s in all; latency at a load every system sustains.

Usage:
  bench/pubsub_bench.py --quick                  # smoke: 1 run of 1 s, 1 and 10 subscribers
  bench/pubsub_bench.py --smoke                  # the ctest bench.pubsub_smoke (hmdb only)
  bench/pubsub_bench.py                          # the run quoted in bench/README.md
  bench/pubsub_bench.py --systems hmdb --subs 1000 --runs 5 --out report.md

Every process it starts is stopped by PID on every exit path; every load run has a time bound;
the data directories (under --tmp-root, a real disk) are removed at the end.
"""

import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import cluster_bench as cb  # noqa: E402  (the systems, process tracking, RESP admin client)

SYSTEMS = ["hmdb", "redis", "etcd"]
LABEL = {"hmdb": "hmdb 3 nodes (always)", "redis": "Redis master + 2 replicas",
         "etcd": "etcd 3 members"}  # etcd's gets the watchers per client appended when > 1
# Port bases (each system uses base+1..3 and base+11..13).
BASE = {"hmdb": 0, "redis": 30, "etcd": 60}
# A load run may take this much longer than its nominal time (setup, drain) before it is
# killed and counted as failed.
LOAD_SLACK = 120.0


def log(message):
    print(message, file=sys.stderr, flush=True)


def cpu_ticks(pids):
    """utime + stime of these processes (all threads), in seconds; dead ones count 0."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


class Target:
    """A running system as the load client sees it."""

    def __init__(self, name, system, writer, subs, pids):
        self.name, self.system, self.writer, self.subs, self.pids = name, system, writer, subs, pids


def start_systems(args, root):
    targets = {}
    for name in args.systems:
        base = args.base_port + BASE[name]
        d = os.path.join(root, name)
        os.makedirs(d)
        if name == "hmdb":
            s = cb.HmdbCluster(args, d, base)
            lead = s.start()
            ports = s.client_ports
            pids = [p.pid for p in s.procs]
        elif name == "redis":
            s = cb.RedisGroup(args, d, base)
            lead = s.start()
            ports = s.ports
            pids = [p.pid for p in s.procs]
            if "set" in args.ops:
                for p in ports:
                    cb.command(p, "CONFIG", "SET", "notify-keyspace-events", "E$")
        else:
            s = cb.EtcdSystem(args, d, base)
            lead = s.start()
            ports = s.client_ports
            pids = [p.pid for p in s.procs]
        order = [i for i in range(3) if i != lead] + ([lead] if args.subs_on == "all" else [])
        if args.subs_on == "one-follower":  # the leader and the other follower make the quorum
            order = order[:1]
        targets[name] = Target(name, s, f"127.0.0.1:{ports[lead]}",
                               ",".join(f"127.0.0.1:{ports[i]}" for i in order), pids)
        log(f"{name} up: writer {targets[name].writer}, subscribers over {targets[name].subs}")
    return targets


def run_cell(args, t, op, subs, rate, seconds):
    proto = "etcd" if t.name == "etcd" else "resp"
    argv = [args.load, "--proto", proto, "--op", op, "--writer-addr", t.writer,
            "--sub-addrs", t.subs, "--writers", str(args.writers), "--subscribers", str(subs),
            "--seconds", str(seconds), "--rate", str(rate), "--drain", f"{args.drain}s",
            "--channel", "bench"]
    if t.name == "etcd":
        argv += ["--watchers-per-client", str(args.etcd_watchers_per_client)]
    load_before = os.getloadavg()[0]
    cpu0 = cpu_ticks(t.pids)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    cb.track(proc, "pubsub-load")
    t0 = time.monotonic()
    try:
        out, err = proc.communicate(timeout=seconds + args.drain + LOAD_SLACK)
    except subprocess.TimeoutExpired:
        cb.stop_process(proc)
        proc.communicate()
        return None, f"{t.name} {op} {subs} subscribers: timed out"
    cb.untrack(proc)
    wall = time.monotonic() - t0
    cpu = cpu_ticks(t.pids) - cpu0
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None, f"{t.name} {op} {subs} subscribers: no result ({err.strip()[-300:]})"
    if proc.returncode != 0 or res.get("error"):
        return None, f"{t.name} {op} {subs} subscribers: {res.get('error') or err.strip()[-300:]}"
    res["server_cpu_s"] = cpu
    res["wall_s"] = wall
    res["load"] = f"{load_before:.1f}/{os.getloadavg()[0]:.1f}"
    return res, None


def spread(values):
    m = statistics.median(values)
    return (max(values) - min(values)) / m if m else 0.0


def fmt_ms(values):
    return f"{statistics.median(values):.2f}" + (
        f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")


def report_tables(args, results, failures):
    out = []
    for op in args.ops:
        for series in (["closed"] + (["paced"] if args.rate > 0 else [])):
            what = ("PUBLISH (hmdb, Redis) / PUT one key (etcd)" if op == "publish"
                    else "SET of a new key + keyevent notification (hmdb, Redis) / PUT (etcd)")
            how = ("writers as fast as the replies come" if series == "closed"
                   else f"writers paced at {args.rate:g} writes/s in all")
            where = {"all": "subscribers round-robin over the 3 nodes",
                     "followers": "subscribers on the 2 non-leaders only",
                     "one-follower": "subscribers all on one non-leader"}[args.subs_on]
            out.append(f"#### {what}; {args.writers} writers, {how}; {where}; {args.seconds:g} s "
                       f"per run, median of {args.runs}")
            out.append("")
            out.append("| system | subs | writes/s (runs) | spread | loss vs 0 subs | write p50 / p99 ms | "
                       "events/s | delivery p50 ms | delivery p99 ms (min-max) | write->event p99 ms | "
                       "max ms | lost | dup | early | client us/event | servers us/write | servers us/event | servers cores | load |")
            out.append("|---|---:|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            subs_list = ([0] if series == "closed" else []) + args.subs
            for subs in subs_list:
                for name in args.systems:
                    sysop = "publish" if name == "etcd" else op
                    rs = results.get((name, sysop, series, subs), [])
                    if not rs:
                        continue
                    wps = [r["writes_per_s"] for r in rs]
                    base = results.get((name, sysop, "closed", 0), [])
                    loss = "-"
                    if series == "closed" and subs and base:
                        loss = f"{1 - statistics.median(wps) / statistics.median([r['writes_per_s'] for r in base]):.0%}"
                    med = lambda key: statistics.median([r[key] for r in rs])  # noqa: E731
                    server = statistics.median([r["server_cpu_s"] / r["wall_s"] for r in rs])
                    per_write = statistics.median([r["server_cpu_s"] / max(r["writes"], 1) * 1e6 for r in rs])
                    base_per_write = statistics.median([r["server_cpu_s"] / max(r["writes"], 1) * 1e6
                                                        for r in base]) if base else None
                    if subs:
                        deliv = f"{med('delivered_per_s'):,.0f}"
                        p50, p99 = f"{med('p50_ms'):.2f}", fmt_ms([r["p99_ms"] for r in rs])
                        e2e = f"{med('e2e_p99_ms'):.2f}"
                        mx = f"{max(r['max_ms'] for r in rs):.1f}"
                        client_us = statistics.median([r["client_cpu_s"] / max(r["delivered"], 1) * 1e6 for r in rs])
                        cus = f"{client_us:.2f}"
                        # What the subscribers add to a write's server CPU, per event sent.
                        sus = f"{(per_write - base_per_write) / subs:.2f}" if base_per_write is not None else "-"
                    else:
                        deliv = p50 = p99 = e2e = mx = cus = "-"
                        sus = "-"
                    out.append(
                        f"| {LABEL[name]} | {subs} | {statistics.median(wps):,.0f} "
                        f"({' / '.join(f'{w:,.0f}' for w in wps)}) | {spread(wps):.0%} | {loss} | "
                        f"{med('write_p50_ms'):.2f} / {med('write_p99_ms'):.2f} | {deliv} | {p50} | {p99} | {e2e} | {mx} | "
                        f"{sum(r['lost'] for r in rs)} | {sum(r['duplicates'] for r in rs)} | "
                        f"{sum(r['early'] for r in rs)} | {cus} | {per_write:.1f} | {sus} | {server:.2f} | "
                        f"{' '.join(r['load'] for r in rs)} |")
            out.append("")
            # Ratios and goals.
            lines = []
            for subs in subs_list:
                h = results.get(("hmdb", op, series, subs))
                if not h:
                    continue
                hw = statistics.median([r["writes_per_s"] for r in h])
                parts = []
                for other, oop in (("redis", op), ("etcd", "publish")):
                    o = results.get((other, oop, series, subs))
                    if not o:
                        continue
                    ow = statistics.median([r["writes_per_s"] for r in o])
                    part = f"writes hmdb/{other} {hw / ow:.2f}x" if ow else ""
                    if subs:
                        hp = statistics.median([r["p99_ms"] for r in h])
                        op99 = statistics.median([r["p99_ms"] for r in o])
                        part += f", delivery p99 {hp:.2f} vs {op99:.2f} ms"
                    parts.append(part)
                if parts:
                    lines.append(f"- {subs} subscribers: " + "; ".join(parts))
            if op == "publish":
                h = results.get(("hmdb", op, series, 1000))
                b = results.get(("hmdb", op, "closed", 0))
                if h:
                    p99 = statistics.median([r["p99_ms"] for r in h])
                    goal = f"- goal (1,000 subscribers): delivery p99 {p99:.2f} ms " \
                           f"({'met' if p99 < 5 else 'MISSED'}, < 5 ms)"
                    if series == "closed" and b:
                        loss = 1 - statistics.median([r["writes_per_s"] for r in h]) / \
                            statistics.median([r["writes_per_s"] for r in b])
                        goal += f"; writers lose {loss:.0%} ({'met' if loss < 0.10 else 'MISSED'}, < 10 %)"
                    lines.append(goal)
            out += lines + [""]
    if failures:
        out.append("Failed runs:")
        out += [f"- {f}" for f in failures]
        out.append("")
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 run of 1 s, 1 and 10 subscribers")
    parser.add_argument("--smoke", action="store_true",
                        help="the ctest: --quick, hmdb only, exit 77 (skip) if the load client cannot be "
                             "built (no Go or clientv3 here); fails only on a failed run or a lost, "
                             "duplicated or malformed hmdb event, never on a figure")
    parser.add_argument("--systems", default=",".join(SYSTEMS))
    parser.add_argument("--ops", default="publish", help="publish[,set] (set: SET + keyevent notification)")
    parser.add_argument("--subs", default=None, help="subscriber counts (default 1,100,1000)")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--etcd-watchers-per-client", type=int, default=1,
                        help="etcd watchers sharing one clientv3 client, i.e. one gRPC connection and "
                             "stream (default 1: one connection per watcher, like one per RESP subscriber)")
    parser.add_argument("--subs-on", choices=["all", "followers", "one-follower"], default="all",
                        help="subscribers on all 3 nodes (default), only on the 2 non-leaders, or all "
                             "on one non-leader (the leader and the other one make a quorum without it)")
    parser.add_argument("--seconds", type=float, default=None, help="writing time per run (3, quick 1)")
    parser.add_argument("--rate", type=float, default=None,
                        help="paced series: writes/s in all (default 200; 0: no paced series)")
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last events")
    parser.add_argument("--runs", type=int, default=None, help="repetitions (3, quick 1)")
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--hmdb", help="server binary (default BUILD/apps/kv/hmdb)")
    parser.add_argument("--hmdb-flags", default="", help="extra flags for every hmdb node")
    parser.add_argument("--load", help="load client (default BUILD/bench/pubsub-load, built if missing)")
    parser.add_argument("--etcd", default="etcd")
    parser.add_argument("--redis-server", default="redis-server")
    parser.add_argument("--base-port", type=int, default=7600,
                        help="hmdb base+1..3 (+11..13 peers), Redis base+31..33, etcd base+61..63 (+71..73)")
    parser.add_argument("--tmp-root", default=None, help="where data directories go (a real disk)")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the data and logs")
    args = parser.parse_args()
    if args.smoke:
        args.quick = True
        args.systems = "hmdb"

    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.0 if args.quick else 3.0)
    args.rate = (50.0 if args.quick else 200.0) if args.rate is None else args.rate
    args.subs = [int(s) for s in (args.subs or ("1,10" if args.quick else "1,100,1000")).split(",") if s]
    args.systems = [s for s in args.systems.split(",") if s]
    args.ops = [o for o in args.ops.split(",") if o]
    for s in args.systems:
        if s not in SYSTEMS:
            parser.error(f"unknown system {s}")
    for o in args.ops:
        if o not in ("publish", "set"):
            parser.error(f"unknown op {o}")
    if args.etcd_watchers_per_client > 1:
        LABEL["etcd"] += f" ({args.etcd_watchers_per_client} watchers per connection)"
    args.hmdb = args.hmdb or os.path.join(args.build_dir, "apps", "kv", "hmdb")
    args.hmdb_flags = args.hmdb_flags.split()
    if "set" in args.ops:
        args.hmdb_flags += ["--notify-keyspace-events", "E$"]
    args.load = args.load or os.path.join(args.build_dir, "bench", "pubsub-load")
    if "hmdb" in args.systems and not os.access(args.hmdb, os.X_OK):
        parser.error(f"{args.hmdb} not found (build target hmdb, or --hmdb)")
    if "etcd" in args.systems and shutil.which(args.etcd) is None:
        parser.error("etcd not found: scripts/install-bench-deps.sh")
    if "redis" in args.systems and shutil.which(args.redis_server) is None:
        parser.error("redis-server not found: scripts/install-deps.sh")
    if not os.access(args.load, os.X_OK):
        log(f"building {args.load} (bench/pubsub/build.sh)")
        built = subprocess.run([os.path.join(here, "pubsub", "build.sh"), args.load])
        if built.returncode != 0:
            if args.smoke:
                log("skipped: the load client cannot be built here (scripts/install-bench-deps.sh)")
                sys.exit(77)
            sys.exit(1)

    signal.signal(signal.SIGTERM, cb.on_signal)
    signal.signal(signal.SIGHUP, cb.on_signal)
    root = tempfile.mkdtemp(prefix="hmdb-pubsub-bench-", dir=args.tmp_root)
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = f"{os.getloadavg()[0]:.1f}"
    results, failures = {}, []
    cells = [("closed", s) for s in [0] + args.subs]
    if args.rate > 0:
        cells += [("paced", s) for s in args.subs]
    try:
        targets = start_systems(args, root)
        for rep in range(args.runs):
            order = args.systems[rep % len(args.systems):] + args.systems[:rep % len(args.systems)]
            for series, subs in cells:
                for op in args.ops:
                    for name in order:
                        if name == "etcd" and op != "publish":
                            continue  # etcd has one kind of write: its PUT row is under publish
                        rate = 0 if series == "closed" else args.rate
                        res, fail = run_cell(args, targets[name], op, subs, rate, args.seconds)
                        if fail:
                            log("  FAILED " + fail)
                            failures.append(fail)
                            continue
                        results.setdefault((name, op, series, subs), []).append(res)
                        log(f"run {rep + 1}/{args.runs} {series} {op} {name} {subs} subs: "
                            f"{res['writes_per_s']:,.0f} writes/s, {res['delivered_per_s']:,.0f} events/s, "
                            f"p50 {res['p50_ms']:.2f} p99 {res['p99_ms']:.2f} ms, lost {res['lost']} "
                            f"dup {res['duplicates']}, client CPU {res['client_cpu_s']:.2f} s, "
                            f"servers CPU {res['server_cpu_s']:.2f} s, load {res['load']}")
        for name, t in targets.items():
            t.system.stop()
    finally:
        for pid in list(cb.children):
            log(f"stopping leftover process {pid} ({cb.children[pid]})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if args.keep:
            log(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=here).stdout.strip()
    versions = []
    if "etcd" in args.systems:
        versions.append(subprocess.run([args.etcd, "--version"], capture_output=True,
                                       text=True).stdout.split("\n")[0])
    if "redis" in args.systems:
        versions.append("Redis " + " ".join(subprocess.run([args.redis_server, "--version"],
                                                           capture_output=True, text=True).stdout.split()[2:3]))
    header = (f"Pub/sub benchmark {started:%Y-%m-%d %H:%M} UTC, commit {commit or '?'}, "
              f"{os.cpu_count()} CPUs, load average before {load_before}, after "
              f"{os.getloadavg()[0]:.1f}; {'; '.join(versions)}{'; QUICK run' if args.quick else ''}")
    legend = ("writes/s: acknowledged writes per second, all writers (the runs in order); loss: "
              "against the same system's 0-subscriber median; write p50/p99: request written -> "
              "reply read; events/s: events read by all subscribers together; delivery: the time "
              "the subscriber read the event - the time the writer read the write's reply (median "
              "over runs; p99 with the runs' min-max); write->event: from the request's write "
              "instead (never negative); lost/dup/early: summed over the runs (early: events read "
              "before the writer read the reply, counted as 0 ms); client / servers us/event: CPU "
              "time of the load client per event read; servers us/write: CPU time of the 3 server "
              "processes (all threads) per acknowledged write; servers us/event: what the "
              "subscribers add to that, per event (us/write minus the 0-subscriber us/write, / "
              "subscribers); "
              "servers cores: their CPU time / the cell's wall time; load: 1-min load average "
              "before/after each run.")
    # hmdb must deliver every acknowledged write's event exactly once (docs/subscriptions.md);
    # the peers' losses are reported, not judged.
    broken = [f"hmdb {op} {series} {subs} subscribers: {r['lost']} events lost, "
              f"{r['duplicates']} duplicated, {r['bad_payloads']} malformed"
              for (name, op, series, subs), rs in results.items() if name == "hmdb"
              for r in rs if r["lost"] or r["duplicates"] or r["bad_payloads"]]
    errors = [f"{name} {op} {series} {subs} subscribers: {r['error_replies']} error replies to writes, "
              f"first: {r.get('first_error_reply', '')}"
              for (name, op, series, subs), rs in results.items() for r in rs if r["error_replies"]]
    text = "\n".join([header, "", legend, ""] + report_tables(args, results, failures + broken)
                     + (["Error replies (the writes were retried, not counted):"] + [f"- {e}" for e in errors]
                        if errors else []))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if failures or broken:
        sys.exit(1)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        log(f"bench/pubsub_bench.py: {e}")
        sys.exit(1)
