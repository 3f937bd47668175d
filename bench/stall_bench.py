#!/usr/bin/env python3
"""bench/stall_bench.py - the longest wait of a one-at-a-time client while a server grows to N
small keys, deletes a big hash and flushes everything, and the memory per key; hmdb against
redis-server in the same run (issue 16, items 5 and 7).

Per system (hmdb `--durability none`, optionally a second hmdb binary such as the build before
a change, and redis-server without persistence; `--durability always` runs hmdb in that mode and
Redis with AOF appendfsync always), each in a fresh process and data directory:

1. growth: `redis-benchmark -t set -P 64 -c 50 -r R -n N` (--value-bytes values, 3 by default:
   --keys 20000000 --value-bytes 400 grows a node to ~10 GiB; random keys over
   R, so about R * (1 - e^(-N/R)) distinct keys; R and N chosen for --keys distinct keys)
   while the probe (one connection, one SET at a time, PROBE_INTERVAL_S apart) records every
   latency: worst, p99.9, p99;
2. memory: VmRSS minus VmRSS of the fresh server, divided by DBSIZE (hmdb: also after a
   SNAPSHOT, which lets it drop its in-memory log, and SETTLE_S; and after a restart from
   that snapshot, which holds the state alone; Redis: also INFO used_memory per key).
   hmdb's SNAPSHOT runs with the probe on and after CONFIG RESETSTAT: its fork() stall
   (fork_stall_last_us), the longest turn meanwhile and the probe's worst; the restart's
   recovery time (INFO recovery_ms, and exec to the first PONG); and, before the SNAPSHOT, the
   process's AnonHugePages (what of the state fork() copies one entry per 2 MiB of);
3. FLUSHALL while the probe runs: its latency and the probe's worst;
4. big delete: `redis-benchmark -t hset -P 64` fills one hash (`myhash`) with about --fields
   fields; then, while the probe runs, `DEL myhash` on its own connection: its latency and the
   probe's worst (Redis' DEL frees synchronously: lazyfree-lazy-user-del is off by default).

For hmdb it also reads INFO's loop_turn_max_ms (the longest event-loop turn since start)
after each phase, and after the growth the turns' percentiles (INFO stages
latency_stage_usec_loop_turn) and slow_turns (turns of 100 ms or more). During the growth it
polls INFO stats (every LONG_TURN_POLL_S) for the turns of 20 ms or more with the loop
thread's CPU time during each (long_turns*, last_long_turn_*): a turn mostly on the CPU is our
work, one that was not waited for a CPU (the machine's). Before each system it runs
bench/pause_probe (--pause-probe-s, one thread that only reads the clocks) and reports the
longest gap that thread saw in its own CPU time: on a VM that does not report steal time, the
host's pauses count as the running thread's CPU, so a server turn's "CPU" near that floor is
not the server's work. Run it under the benchmark lock on a shared machine:
    flock /tmp/hmdb-bench.lock python3 bench/stall_bench.py --runs 3
and quote the load (printed) with the medians and spread. Python 3 standard library plus
redis-benchmark and redis-server on PATH. Every process started here is stopped by PID.
"""
import argparse
import math
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import (Probe, Resp, Server, free_port, loadavg, percentile,  # noqa: E402
                            proc_status_kib, stop_proc)

# --- bounds ---
LOAD_TIMEOUT_S = 1800          # one redis-benchmark fill may take minutes on a busy machine
SETTLE_S = 3.0                 # after SNAPSHOT: hmdb frees its log a bounded amount per turn
AFTER_DELETE_S = 1.0           # the probe keeps running this long after DEL / FLUSHALL
SERVER_READY_TIMEOUT_S = 60.0
LONG_TURN_POLL_S = 0.1         # INFO stats polled this often during the growth (hmdb)
PAUSE_PROBE_TIMEOUT_EXTRA_S = 30.0  # pause_probe runs --pause-probe-s; this much more is a hang


def wait_ping(port, proc, timeout=SERVER_READY_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {port} exited with {proc.returncode}")
        try:
            c = Resp(port, timeout=5)
            try:
                if c.call("PING") == "PONG":
                    return
            finally:
                c.close()
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"server on {port} not answering")


# hmdb --durability -> Redis' persistence flags in the same run: none -> no persistence,
# always -> AOF appendfsync always, periodic -> AOF appendfsync everysec.
REDIS_PERSISTENCE = {"none": ["--appendonly", "no"],
                     "always": ["--appendonly", "yes", "--appendfsync", "always"],
                     "periodic": ["--appendonly", "yes", "--appendfsync", "everysec"]}


class RedisServer:
    def __init__(self, binary, port, work, args):
        self.port = port
        self.proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""] + REDIS_PERSISTENCE[args.durability] +
            ["--databases", "1", "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ping(port, self.proc)

    def stop(self):
        stop_proc(self.proc)


class HmdbServer:
    def __init__(self, binary, port, work, args, extra_args=()):
        self.port = port
        self.server = Server(binary, port, os.path.join(work, "data"), os.path.join(work, "hmdb.log"),
                             durability=args.durability, snapshot_log_bytes=args.snapshot_log_bytes,
                             extra_args=extra_args)
        self.server.start()
        self.proc = self.server.proc

    def stop(self):
        self.server.stop()


def call(port, *args, timeout=600):
    c = Resp(port, timeout=timeout)
    try:
        t0 = time.monotonic()
        r = c.call(*args)
        return r, time.monotonic() - t0
    finally:
        c.close()


def info_field(port, section, field):
    r, _ = call(port, "INFO", section)
    for line in r.decode().splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def redis_benchmark(port, args):
    t0 = time.monotonic()
    p = subprocess.Popen(["redis-benchmark", "-p", str(port), "-q"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=LOAD_TIMEOUT_S)
    finally:
        stop_proc(p)
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark {args} failed: {out[-500:]!r}")
    return time.monotonic() - t0, out.decode(errors="replace").strip().splitlines()[-1:]


def probe_summary(samples):
    v = sorted(lat for _, lat in samples)
    if not v:
        return {"n": 0, "max_ms": float("nan"), "p999_ms": float("nan"), "p99_ms": float("nan")}
    return {"n": len(v), "max_ms": v[-1] * 1e3, "p999_ms": percentile(v, 99.9) * 1e3,
            "p99_ms": percentile(v, 99) * 1e3}


def info_fields(port, section):
    r, _ = call(port, "INFO", section)
    return dict(line.split(":", 1) for line in r.decode().splitlines() if ":" in line)


class LongTurnWatch(threading.Thread):
    """Polls hmdb's INFO stats every LONG_TURN_POLL_S during a phase and keeps each long turn
    (>= 20 ms: wall ms, the loop thread's CPU ms at least and at most, its involuntary context
    switches) that it
    saw alone between two polls; `missed` counts those that came two or more at a time (only
    the sums cover them)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop_flag, self.turns, self.missed, self.error = port, threading.Event(), [], 0, None
        self.first = self.last = None

    def run(self):
        try:
            while True:
                s = info_fields(self.port, "stats")
                if self.first is None:
                    self.first = s
                elif int(s["long_turns"]) == int(self.last["long_turns"]) + 1:
                    self.turns.append((int(s["last_long_turn_ms"]), int(s["last_long_turn_cpu_ms"]),
                                       int(s["last_long_turn_cpu_max_ms"]), int(s["last_long_turn_preemptions"])))
                elif int(s["long_turns"]) > int(self.last["long_turns"]):
                    self.missed += int(s["long_turns"]) - int(self.last["long_turns"])
                self.last = s
                if self.stop_flag.wait(LONG_TURN_POLL_S):
                    return
        except Exception as e:  # noqa: BLE001 - reported by the caller
            self.error = repr(e)

    def summary(self):
        self.stop_flag.set()
        self.join(60)
        if self.error or self.first is None:
            return {"error": self.error}
        d = {k: int(self.last[k]) - int(self.first[k])
             for k in ("long_turns", "long_turns_ms", "long_turns_cpu_ms", "long_turns_cpu_max_ms", "long_turns_on_cpu",
                       "slow_turns")}
        d["seen"], d["missed"] = self.turns, self.missed
        # Entries whose apply stopped for the turn's budget (kTurnApplyBudgetUs; 0 for a binary
        # without the field).
        d["apply_yields"] = int(self.last.get("apply_yields", 0)) - int(self.first.get("apply_yields", 0))
        return d


class Probing:
    """Runs the one-at-a-time SET probe for the duration of a `with` block."""

    def __init__(self, port):
        self.probe = Probe(port, 3)

    def __enter__(self):
        self.probe.start()
        time.sleep(0.2)  # the probe's connection is up before the work starts
        return self

    def __exit__(self, *exc):
        self.probe.stop_flag.set()
        self.probe.join(30)
        if self.probe.error:
            raise RuntimeError(f"probe: {self.probe.error}")
        self.summary = probe_summary(self.probe.samples)
        return False


def pause_probe(binary, seconds):
    """bench/pause_probe for seconds: its summary line's "key value" pairs (floats), or None."""
    if seconds <= 0 or not binary or not os.path.exists(binary):
        return None
    out = subprocess.run([binary, "--seconds", str(seconds)], capture_output=True, text=True, check=True,
                         timeout=seconds + PAUSE_PROBE_TIMEOUT_EXTRA_S).stdout
    line = [x for x in out.splitlines() if x.startswith("pause_probe: all ")][-1].split()[2:]
    return {k: float(v) for k, v in zip(line[::2], line[1::2])}


def run_one(name, kind, binary, args, work, extra_args=()):
    port = free_port()
    server = HmdbServer(binary, port, work, args, extra_args) if kind == "hmdb" else RedisServer(binary, port, work, args)
    out = {"system": name}
    turn = (lambda: int(info_field(port, "stats", "loop_turn_max_ms"))) if kind == "hmdb" else (lambda: None)
    try:
        rss0 = proc_status_kib(server.proc.pid)
        # 1. growth under load
        watch = LongTurnWatch(port) if kind == "hmdb" else None
        if watch:
            watch.start()
        with Probing(port) as p:
            out["load_s"], out["load_line"] = redis_benchmark(
                port, ["-t", "set", "-P", "64", "-c", "50", "-r", str(args.keyspace), "-n", str(args.requests),
                       "-d", str(args.value_bytes)])
        out["grow_probe"] = p.summary
        if watch:
            out["grow_long_turns"] = watch.summary()
        out["turn_after_grow_ms"] = turn()
        if kind == "hmdb":
            # The distribution of the turns, not only the longest: a wall-clock turn includes
            # preemption on a loaded machine, a stall of ours shows in the counts too.
            out["grow_turns"] = info_field(port, "stages", "latency_stage_usec_loop_turn")
            out["grow_slow_turns"] = info_field(port, "stats", "slow_turns")
        # 2. memory per key
        keys = call(port, "DBSIZE")[0]
        out["keys"] = keys
        out["rss_kib"] = proc_status_kib(server.proc.pid)
        out["bytes_per_key"] = (out["rss_kib"] - rss0) * 1024 / keys
        if kind == "hmdb":
            out["huge_pages"] = info_field(port, "persistence", "huge_pages")
            out["anon_huge_kib"] = anon_huge_kib(server.proc.pid)
            call(port, "CONFIG", "RESETSTAT")
            with Probing(port) as p:
                _, out["snapshot_s"] = call(port, "SNAPSHOT", timeout=1800)
            out["snap_probe"] = p.summary
            out["fork_us"] = int(info_field(port, "persistence", "fork_stall_last_us"))
            # --snapshot-method slices (server/snapshot.cc): how it was written, and the loop's
            # time in the app's producer (all turns; the most in one) and its turns.
            out["snapshot_method"] = info_field(port, "persistence", "last_snapshot_method") or "fork"
            out["slices_us"] = int(info_field(port, "persistence", "last_snapshot_slices_us") or 0)
            out["slices_turn_max_us"] = int(info_field(port, "persistence", "last_snapshot_slices_turn_max_us") or 0)
            out["slices_turns"] = int(info_field(port, "persistence", "last_snapshot_slices_turns") or 0)
            out["turn_during_snapshot_ms"] = turn()
            time.sleep(SETTLE_S)
            out["bytes_per_key_after_snapshot"] = (proc_status_kib(server.proc.pid) - rss0) * 1024 / keys
            # A node started from that snapshot holds the state and no log (nor the log's freed
            # but not returned heap): the state's own cost per key.
            server.server.stop()
            t0 = server.server.start(wait=False)
            out["restart_s"] = server.server.wait_ready(timeout=LOAD_TIMEOUT_S) - t0
            server.proc = server.server.proc
            out["recovery_ms"] = int(info_field(port, "persistence", "recovery_ms"))
            # The server's own split of both (src/server/snapshot.cc, recovery.cc): the fork's
            # CPU, waits and preemptions; the snapshot file's map + checksum against its decoding.
            text = server.server.log_text()
            forks = re.findall(r"fork took \d+ us[^)]*", text)
            out["fork_split"] = forks[-1] if forks else "-"
            # A snapshot in slices: the loop thread's CPU in the producer (against the wall time,
            # which a loaded machine's preemption adds to).
            slices = re.findall(r"of the loop thread's CPU \d+ us \(at most \d+ us in one turn\)", text)
            if slices:
                out["fork_split"] = "slices " + slices[-1]
            out["recovery_split"] = "; ".join(
                re.findall(r"mapped and verified in \d+ ms|snapshot decoded into the state in \d+ ms", text)[-2:]) or "-"
            assert call(port, "DBSIZE")[0] == keys
            out["bytes_per_key_restarted"] = (proc_status_kib(server.proc.pid) - rss0) * 1024 / keys
        else:
            out["used_memory_per_key"] = int(info_field(port, "memory", "used_memory")) / keys
        # 3. FLUSHALL while the probe runs
        with Probing(port) as p:
            r, out["flushall_s"] = call(port, "FLUSHALL")
            time.sleep(AFTER_DELETE_S)
        out["flush_probe"] = p.summary
        out["turn_after_flush_ms"] = turn()
        # 4. a big hash, then DEL of it while the probe runs
        redis_benchmark(port, ["-t", "hset", "-P", "64", "-c", "50", "-r", str(args.fields),
                               "-n", str(int(args.fields * 1.2))])
        out["turn_after_fill_ms"] = turn()
        out["hash_fields"] = call(port, "HLEN", "myhash")[0]
        with Probing(port) as p:
            r, out["del_s"] = call(port, "DEL", "myhash")
            time.sleep(AFTER_DELETE_S)
        assert r == 1, r
        out["del_probe"] = p.summary
        out["turn_after_del_ms"] = turn()
    finally:
        server.stop()
    return out


def anon_huge_kib(pid):
    """The process's memory in transparent huge pages (what a fork copies one entry per 2 MiB of)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def fmt_ms(x):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--hmdb", default=None, help="hmdb binary (default: BUILD/apps/kv/hmdb)")
    ap.add_argument("--hmdb-before", default=None, help="a second hmdb binary to compare (e.g. before a change)")
    ap.add_argument("--hmdb-args", default="", help="more options for hmdb serve (e.g. \"--snapshot-method slices\")")
    ap.add_argument("--hmdb-before-args", default="", help="more options for the second hmdb's serve")
    ap.add_argument("--redis", default=shutil.which("redis-server"))
    ap.add_argument("--keys", type=int, default=5_000_000, help="distinct keys to grow to (5 M)")
    ap.add_argument("--value-bytes", type=int, default=3, help="value size of the growth's SETs (3)")
    ap.add_argument("--fields", type=int, default=1_000_000, help="random fields over which myhash is filled")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--pause-probe", default=None, help="bench/pause_probe binary (default: BUILD/bench/pause_probe)")
    ap.add_argument("--pause-probe-s", type=float, default=10.0,
                    help="seconds of pause_probe before each system's run (0: none)")
    ap.add_argument("--durability", choices=sorted(REDIS_PERSISTENCE), default="none",
                    help="hmdb's --durability; Redis runs with the matching persistence (always: AOF "
                         "appendfsync always, periodic: everysec, none: none)")
    ap.add_argument("--snapshot-log-bytes", type=int, default=256 << 20,
                    help="hmdb's --snapshot-log-bytes (256 MiB, its default)")
    args = ap.parse_args()
    # Random keys over R = 4 N with n = R * ln(R / (R - N)) requests gives N distinct on average.
    args.keyspace = 4 * args.keys
    args.requests = int(args.keyspace * math.log(args.keyspace / (args.keyspace - args.keys)))
    hmdb = args.hmdb or os.path.join(args.build_dir, "apps", "kv", "hmdb")
    systems = [("hmdb", "hmdb", hmdb)]
    serve_options = {"hmdb": shlex.split(args.hmdb_args)}
    if args.hmdb_before:
        systems.append(("hmdb-before", "hmdb", args.hmdb_before))
        serve_options["hmdb-before"] = shlex.split(args.hmdb_before_args)
    if args.redis:
        systems.append(("redis", "redis", args.redis))
    print(f"stall_bench: hmdb --durability {args.durability} --snapshot-log-bytes {args.snapshot_log_bytes}, "
          f"Redis {' '.join(REDIS_PERSISTENCE[args.durability])}; {args.keys} keys (SET -P 64 -c 50 -r {args.keyspace} -n {args.requests} "
          f"-d {args.value_bytes}), "
          f"hash over {args.fields} fields, {args.runs} run(s); load {loadavg()}", flush=True)
    for name, options in serve_options.items():
        if options:
            print(f"  {name}: serve {' '.join(options)}", flush=True)
    results = {name: [] for name, _, _ in systems}
    probe_bin = args.pause_probe or os.path.join(args.build_dir, "bench", "pause_probe")
    for run in range(args.runs):
        for name, kind, binary in systems:
            work = tempfile.mkdtemp(prefix="stall_bench-")
            try:
                pauses = pause_probe(probe_bin, args.pause_probe_s)
                t0 = time.monotonic()
                r = run_one(name, kind, binary, args, work, serve_options.get(name, ()))
                r["pauses"] = pauses
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[name].append(r)
            extra = (f"after SNAPSHOT {r['bytes_per_key_after_snapshot']:.1f} B/key, restarted "
                     f"{r['bytes_per_key_restarted']:.1f} B/key" if kind == "hmdb"
                     else f"used_memory {r['used_memory_per_key']:.1f} B/key")
            if r["pauses"]:
                p = r["pauses"]
                print(f"run {run + 1} before {name}: the platform (pause_probe, {p['seconds']:.0f} s, one thread reading "
                      f"the clocks): longest gap in its CPU time {p['cpu_gap_max_ms']:.1f} ms ({p['cpu_gaps_ge_4ms']:.0f} "
                      f">= 4 ms, {p['cpu_gaps_ge_20ms']:.0f} >= 20 ms), in wall time {p['wall_gap_max_ms']:.1f} ms",
                      flush=True)
            print(f"run {run + 1} {name}: {r['keys']} keys in {r['load_s']:.1f} s ({r['load_line']}); "
                  f"probe worst during growth {fmt_ms(r['grow_probe']['max_ms'])} ms "
                  f"(p99.9 {fmt_ms(r['grow_probe']['p999_ms'])}, n {r['grow_probe']['n']}); "
                  f"DEL of {r['hash_fields']} fields {r['del_s'] * 1e3:.1f} ms, probe worst "
                  f"{fmt_ms(r['del_probe']['max_ms'])} ms; FLUSHALL {r['flushall_s'] * 1e3:.1f} ms, probe worst "
                  f"{fmt_ms(r['flush_probe']['max_ms'])} ms; loop_turn_max_ms after grow/flush/hash fill/del "
                  f"{r['turn_after_grow_ms']}/{r['turn_after_flush_ms']}/{r['turn_after_fill_ms']}/"
                  f"{r['turn_after_del_ms']}; "
                  f"RSS {r['bytes_per_key']:.1f} B/key, {extra}; {time.monotonic() - t0:.0f} s; load {loadavg()}",
                  flush=True)
            if kind == "hmdb":
                print(f"  {name} (huge_pages {r['huge_pages']}, RSS {r['rss_kib'] / 2**20:.2f} GiB, of it in huge pages "
                      f"{r['anon_huge_kib'] / 2**20:.2f} GiB): SNAPSHOT ({r['snapshot_method']}) "
                      f"{r['snapshot_s']:.1f} s, fork {r['fork_us'] / 1e3:.1f} ms, slices "
                      f"{r['slices_us'] / 1e3:.1f} ms of the loop over {r['slices_turns']} turns (at most "
                      f"{r['slices_turn_max_us'] / 1e3:.1f} ms in one), loop_turn_max_ms during it "
                      f"{r['turn_during_snapshot_ms']}, probe worst {fmt_ms(r['snap_probe']['max_ms'])} ms "
                      f"(n {r['snap_probe']['n']}); restart: recovery {r['recovery_ms']} ms, exec to first PONG "
                      f"{r['restart_s']:.1f} s; worst probe SET of the run "
                      f"{fmt_ms(max(r[k]['max_ms'] for k in ('grow_probe', 'snap_probe', 'flush_probe', 'del_probe')))} ms",
                      flush=True)
                print(f"  {name} server log: {r['fork_split']}; recovery: {r['recovery_split']}", flush=True)
                print(f"  {name} loop turns during growth (us): {r['grow_turns']}; turns >= 100 ms: "
                      f"{r['grow_slow_turns']}", flush=True)
                lt = r["grow_long_turns"]
                if "error" in lt:
                    print(f"  {name} long turns: INFO poll failed: {lt['error']}", flush=True)
                else:
                    seen = ", ".join(f"{w}/{c}-{cm}/{p}" for w, c, cm, p in lt["seen"])
                    print(f"  {name} turns >= 20 ms during growth: {lt['long_turns']} ({lt['slow_turns']} >= 100 ms), "
                          f"{lt['long_turns_on_cpu']} of them >= 80 % on the CPU (ours), the rest waited for a CPU; "
                          f"wall {lt['long_turns_ms']} ms, CPU {lt['long_turns_cpu_ms']}-{lt['long_turns_cpu_max_ms']} ms; "
                          f"one by one (wall ms/CPU ms at least-at most/involuntary switches): {seen or '-'}; "
                          f"{lt['missed']} not seen alone; the most CPU of one seen: "
                          f"{max((cm for _, _, cm, _ in lt['seen']), default='-')} ms; applies stopped for the "
                          f"turn's budget (apply_yields): {lt['apply_yields']}",
                          flush=True)
    print(f"\nmedians (min-max) over {args.runs} run(s); load at the end {loadavg()}")

    def med(name, f):
        v = [f(r) for r in results[name]]
        v = [x for x in v if x is not None]
        if not v:
            return "-"
        return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"

    rows = [("the platform before the run: pause_probe's longest CPU-time gap, ms",
             lambda r: r["pauses"]["cpu_gap_max_ms"] if r.get("pauses") else None),
            ("probe worst during growth, ms", lambda r: r["grow_probe"]["max_ms"]),
            ("probe p99.9 during growth, ms", lambda r: r["grow_probe"]["p999_ms"]),
            ("SNAPSHOT's fork() stall, ms", lambda r: r["fork_us"] / 1e3 if "fork_us" in r else None),
            ("loop_turn_max_ms during SNAPSHOT", lambda r: r.get("turn_during_snapshot_ms")),
            ("SNAPSHOT's wall time, s", lambda r: r.get("snapshot_s")),
            ("SNAPSHOT in slices: the loop's time in the producer, ms",
             lambda r: r["slices_us"] / 1e3 if r.get("slices_turns") else None),
            ("SNAPSHOT in slices: the most of it in one turn, ms",
             lambda r: r["slices_turn_max_us"] / 1e3 if r.get("slices_turns") else None),
            ("probe worst during SNAPSHOT, ms", lambda r: r["snap_probe"]["max_ms"] if "snap_probe" in r else None),
            ("restart from the snapshot: recovery_ms", lambda r: r.get("recovery_ms")),
            ("DEL of the big hash, ms", lambda r: r["del_s"] * 1e3),
            ("probe worst around DEL, ms", lambda r: r["del_probe"]["max_ms"]),
            ("FLUSHALL, ms", lambda r: r["flushall_s"] * 1e3),
            ("probe worst around FLUSHALL, ms", lambda r: r["flush_probe"]["max_ms"]),
            ("loop_turn_max_ms after growth", lambda r: r["turn_after_grow_ms"]),
            ("loop_turn_max_ms after FLUSHALL", lambda r: r["turn_after_flush_ms"]),
            ("loop_turn_max_ms after DEL (whole run)", lambda r: r["turn_after_del_ms"]),
            ("RSS per key, bytes", lambda r: r["bytes_per_key"]),
            ("RSS per key after SNAPSHOT, bytes", lambda r: r.get("bytes_per_key_after_snapshot")),
            ("RSS per key restarted from the snapshot, bytes", lambda r: r.get("bytes_per_key_restarted")),
            ("used_memory per key (Redis), bytes", lambda r: r.get("used_memory_per_key")),
            ("load time, s", lambda r: r["load_s"])]
    names = [n for n, _, _ in systems]
    print("| | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, f in rows:
        print(f"| {label} | " + " | ".join(med(n, f) for n in names) + " |")


if __name__ == "__main__":
    main()
