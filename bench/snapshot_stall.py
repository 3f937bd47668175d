#!/usr/bin/env python3
"""bench/snapshot_stall.py - how long writes stall, and how much memory it costs, while hmdb
snapshots a large state (issue 2, item 5: "measure and report the longest write stall while a
snapshot of a large state (at least 2 GiB in memory) is taken, and the memory it costs").

What it does, against ONE server process (durability `always`, fresh data directory, automatic
snapshots pushed out of the way with a huge --snapshot-log-bytes):

1. fills the state with `hmdb-bench --tests mset` (pipelined, 10 random keys per MSET) in
   chunks until the server's VmRSS reaches --target-gib;
2. "before" window: a steady SET load (hmdb-bench, 50 clients, pipeline 1) for W seconds, plus a
   Python probe that sends one SET every ~1 ms on its own connection and records each latency
   with its time, plus a sampler of /proc memory figures;
3. "snapshot" window: the same load for the same W seconds; LEAD seconds in, SNAPSHOT is sent on
   a separate connection (its reply comes when the snapshot is durable);
4. reports: max / p99.9 / p99 write latency before vs during the snapshot (hmdb-bench's whole
   window and the probe's exact snapshot interval), the fork stall from INFO, the snapshot's
   duration, and the memory: parent VmRSS before/during/after, the child's RSS, the sum of
   parent + child Pss (= physical memory of both; its growth over the parent's RSS before the
   fork is the copy-on-write cost), Private_Dirty of both, and the system MemAvailable drop;
5. stops the server (SIGTERM) and runs `hmdb log verify DIR` on the data directory.

Python 3 standard library only. Every process started here is stopped by PID on every exit path.
restart.py imports the helpers (RESP client, server process, /proc readers) from this file.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

# --- bounds (named so a reader sees each limit in one place) ---
SERVER_START_TIMEOUT_S = 600.0   # a start may replay a big log; give it minutes
SERVER_STOP_TIMEOUT_S = 60.0     # SIGTERM drains and syncs; SIGKILL after this
RESP_TIMEOUT_S = 600.0           # a blocking SNAPSHOT of a multi-GiB state may take minutes
PROBE_INTERVAL_S = 0.001         # the latency probe's pause between two SETs
RSS_SAMPLE_INTERVAL_S = 0.1      # /proc/<pid>/status is cheap
INFO_SAMPLE_INTERVAL_S = 0.25   # INFO persistence (fsync_last_us) on the sampler's own connection
SMAPS_SAMPLE_INTERVAL_S = 0.5    # smaps_rollup walks the page tables (takes mmap_lock): sample rarely
FILL_CHUNK_S = 4                 # one hmdb-bench fill run; RSS is checked between runs
MIN_MEM_AVAILABLE_KIB = 3 << 20  # stop filling if the machine has less than 3 GiB left
MAX_REPLY_LINE = 1 << 20         # a RESP header line longer than this is a protocol error here


def die(msg):
    print(f"snapshot_stall: {msg}", file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- RESP client
class Resp:
    """A minimal blocking RESP2 client: enough for PING, INFO, SET, DBSIZE, SNAPSHOT."""

    def __init__(self, port, timeout=RESP_TIMEOUT_S):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        self.sock.close()

    @staticmethod
    def encode(*args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if isinstance(a, str):
                a = a.encode()
            elif isinstance(a, int):
                a = b"%d" % a
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            if len(self.buf) > MAX_REPLY_LINE:
                raise IOError("reply line too long")
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise IOError("connection closed by the server")
            self.buf += chunk

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(1 << 16, n + 2 - len(self.buf)))
            if not chunk:
                raise IOError("connection closed by the server")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise IOError(f"unexpected reply line {line[:80]!r}")

    def call(self, *args):
        self.sock.sendall(self.encode(*args))
        return self.reply()


class RespError(str):
    pass


def info(port, section="all"):
    c = Resp(port, timeout=30)
    try:
        text = c.call("INFO", section)
    finally:
        c.close()
    if isinstance(text, RespError):
        raise IOError(f"INFO: {text}")
    out = {}
    for line in text.decode().splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


# ---------------------------------------------------------------- processes
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `hmdb serve` process; stderr goes to a log file we can search."""

    def __init__(self, binary, port, data_dir, log_path, durability="always",
                 snapshot_log_bytes=1 << 50, extra_args=()):
        self.argv = [binary, "serve", "--port", str(port), "--dir", data_dir,
                     "--durability", durability, "--snapshot-log-bytes", str(snapshot_log_bytes)] + list(extra_args)
        self.port = port
        self.log_path = log_path
        self.proc = None

    def start(self, wait=True):
        """Starts the server; returns the time.monotonic() just before the exec."""
        self.log_file = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return t0

    def wait_ready(self, timeout=SERVER_START_TIMEOUT_S, poll_s=0.002):
        """Polls PING until +PONG; returns the time.monotonic() of the first PONG."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} while starting; "
                                   f"log: {self.log_path}\n{self.log_tail()}")
            try:
                c = Resp(self.port, timeout=5)
                try:
                    if c.call("PING") == "PONG":
                        return time.monotonic()
                finally:
                    c.close()
            except OSError:
                pass
            time.sleep(poll_s)
        raise RuntimeError(f"server not answering PING after {timeout} s; log: {self.log_path}")

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_tail(self, n=20):
        return "\n".join(self.log_text().splitlines()[-n:])

    def stop(self):
        """SIGTERM, wait; SIGKILL after SERVER_STOP_TIMEOUT_S. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"warning: server {self.proc.pid} ignored SIGTERM for "
                      f"{SERVER_STOP_TIMEOUT_S} s; SIGKILL", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()
        code = self.proc.returncode
        self.proc = None
        return code


def stop_proc(p):
    """Ends a helper process (hmdb-bench) we started, by PID."""
    if p is not None and p.poll() is None:
        p.kill()
        p.wait()


# ---------------------------------------------------------------- /proc readers
def proc_status_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def smaps_rollup(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return out


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def children(pid):
    kids = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                kids += [int(x) for x in f.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            pass
    return kids


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def gib(kib):
    return "-" if kib is None else f"{kib / (1 << 20):.2f} GiB"


def ms(x):
    return f"{x:.3f} ms"


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def median_spread(values):
    """'median (min-max)' of the values that are not None, one decimal; '-' if none."""
    v = [x for x in values if x is not None]
    if not v:
        return "-"
    return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"


def find_binaries(build_dir):
    hmdb = os.path.join(build_dir, "apps", "kv", "hmdb")
    bench = os.path.join(build_dir, "bench", "hmdb-bench")
    if not os.path.exists(bench):
        found = glob.glob(os.path.join(build_dir, "**", "hmdb-bench"), recursive=True)
        bench = found[0] if found else bench
    for b in (hmdb, bench):
        if not os.access(b, os.X_OK):
            die(f"{b} not found; build it: ninja -C {build_dir} hmdb hmdb-bench")
    return hmdb, bench


def run_bench(bench, port, args, timeout):
    """Runs hmdb-bench with --csv; returns the dict of its one result line."""
    argv = [bench, "--port", str(port), "--csv", "--quiet"] + [str(a) for a in args]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        stop_proc(p)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({p.returncode}): {err.strip()}")
    lines = [l for l in out.splitlines() if l.strip()]
    header = lines[0].split(",")
    return dict(zip(header, lines[1].split(",")))


# ---------------------------------------------------------------- measurement threads
class Probe(threading.Thread):
    """One connection, one SET at a time: (send time, latency s) for every request."""

    def __init__(self, port, value_size):
        super().__init__(daemon=True)
        self.port = port
        self.value = b"p" * value_size
        self.samples = []
        self.stop_flag = threading.Event()
        self.error = None

    def run(self):
        try:
            c = Resp(self.port, timeout=RESP_TIMEOUT_S)
            i = 0
            while not self.stop_flag.is_set():
                req = Resp.encode("SET", b"probe:%d" % (i % 1000), self.value)
                t0 = time.monotonic()
                c.sock.sendall(req)
                r = c.reply()
                t1 = time.monotonic()
                if r != "OK":
                    raise IOError(f"probe SET got {r!r}")
                self.samples.append((t0, t1 - t0))
                i += 1
                time.sleep(PROBE_INTERVAL_S)
            c.close()
        except Exception as e:  # reported by the main thread
            self.error = e


class Sampler(threading.Thread):
    """Memory of the server and of its snapshot child, over time."""

    def __init__(self, pid, port):
        super().__init__(daemon=True)
        self.pid = pid
        self.port = port
        self.fsync = []   # (t, INFO fsync_last_us, disk_fsyncs): is the log's fdatasync slowed?
        self.rss = []     # (t, parent VmRSS kib, child pid or 0, child VmRSS kib or None)
        self.smaps = []   # (t, parent rollup, child rollup or None, MemAvailable kib)
        self.stop_flag = threading.Event()

    def run(self):
        next_smaps = 0.0
        next_info = 0.0
        conn = Resp(self.port, timeout=30)
        while not self.stop_flag.is_set():
            t = time.monotonic()
            if t >= next_info:
                try:
                    text = conn.call("INFO", "persistence").decode()
                    kv = dict(l.split(":", 1) for l in text.splitlines() if ":" in l)
                    self.fsync.append((t, int(kv["fsync_last_us"]), int(kv["disk_fsyncs"])))
                except (OSError, KeyError, ValueError):
                    pass  # the report says how many samples it has
                next_info = t + INFO_SAMPLE_INTERVAL_S
            kids = children(self.pid)
            child = kids[0] if kids else 0
            self.rss.append((t, proc_status_kib(self.pid), child,
                             proc_status_kib(child) if child else None))
            if t >= next_smaps:
                self.smaps.append((t, smaps_rollup(self.pid), smaps_rollup(child) if child else None,
                                   mem_available_kib()))
                next_smaps = t + SMAPS_SAMPLE_INTERVAL_S
            time.sleep(RSS_SAMPLE_INTERVAL_S)


def latency_summary(lat_s):
    v = sorted(lat_s)
    if not v:
        return "no samples"
    return (f"n={len(v)}  p50 {ms(percentile(v, 50) * 1e3)}  p99 {ms(percentile(v, 99) * 1e3)}  "
            f"p99.9 {ms(percentile(v, 99.9) * 1e3)}  max {ms(v[-1] * 1e3)}")


# ---------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true",
                    help="0.2 GiB state and 10 s windows: checks that everything works")
    ap.add_argument("--target-gib", type=float, default=None, help="server RSS to fill to (2.0)")
    ap.add_argument("--value-size", type=int, default=150)
    ap.add_argument("--clients", type=int, default=50, help="steady-load connections")
    ap.add_argument("--pipeline", type=int, default=1, help="steady-load pipeline depth")
    ap.add_argument("--window", type=float, default=None,
                    help="seconds of steady load before, and again around, the snapshot (60)")
    ap.add_argument("--lead", type=float, default=3.0,
                    help="seconds into the snapshot window at which SNAPSHOT is sent")
    ap.add_argument("--tmp-root", default=None, help="where the data directory goes (a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the data directory")
    a = ap.parse_args()
    target_gib = a.target_gib if a.target_gib is not None else (0.2 if a.quick else 2.0)
    window = a.window if a.window is not None else (10.0 if a.quick else 60.0)
    if a.lead >= window:
        die("--lead must be shorter than --window")
    hmdb, bench = find_binaries(a.build_dir)

    # Keyspace: about 1.5x the keys the target holds (~120 bytes of overhead per key is a
    # guess; the fill stops on RSS, not on a count), so the fill mostly inserts and the
    # steady load mostly overwrites existing keys.
    keyspace = max(100000, int(target_gib * (1 << 30) / (a.value_size + 120) * 1.5))

    tmp = tempfile.mkdtemp(prefix="hmdb-snapstall-", dir=a.tmp_root)
    data_dir = os.path.join(tmp, "data")
    port = free_port()
    server = Server(hmdb, port, data_dir, os.path.join(tmp, "server.log"))
    probe = sampler = None
    print(f"# snapshot stall: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
          f"load average {loadavg()}, {os.cpu_count()} CPUs")
    print(f"# binary {hmdb}; data {data_dir}; target RSS {target_gib} GiB; values "
          f"{a.value_size} B; keyspace {keyspace}")
    try:
        server.start()
        pid = server.proc.pid
        rss0 = proc_status_kib(pid)

        # 1. fill
        t_fill = time.monotonic()
        seed = 1
        while True:
            rss = proc_status_kib(pid)
            if rss >= target_gib * (1 << 20):
                break
            if mem_available_kib() < MIN_MEM_AVAILABLE_KIB:
                die(f"the machine is short of memory (MemAvailable {gib(mem_available_kib())}) "
                    f"at server RSS {gib(rss)}; lower --target-gib")
            run_bench(bench, port, ["--tests", "mset", "--clients", 50, "--pipeline", 32,
                                    "--value-size", a.value_size, "--keyspace", keyspace,
                                    "--seconds", FILL_CHUNK_S, "--seed", seed],
                      timeout=FILL_CHUNK_S + 120)
            seed += 1
            print(f"  fill: RSS {gib(proc_status_kib(pid))} after {time.monotonic() - t_fill:.0f} s",
                  flush=True)
        c = Resp(port)
        keys = c.call("DBSIZE")
        c.close()
        inf = info(port, "persistence")
        print(f"filled: {keys} keys, server RSS {gib(proc_status_kib(pid))} (empty: {gib(rss0)}), "
              f"log {int(inf['log_bytes_since_snapshot']) / (1 << 30):.2f} GiB, "
              f"in {time.monotonic() - t_fill:.0f} s")

        load = ["--tests", "set", "--clients", a.clients, "--pipeline", a.pipeline,
                "--value-size", a.value_size, "--keyspace", keyspace, "--seconds", window]
        probe = Probe(port, a.value_size)
        sampler = Sampler(pid, port)
        probe.start()
        sampler.start()

        # 2. before
        print(f"load before the snapshot: {window:.0f} s ...", flush=True)
        t_before0 = time.monotonic()
        before = run_bench(bench, port, load + ["--seed", 1000], timeout=window + 120)
        t_before1 = time.monotonic()

        # 3. during: SNAPSHOT after `lead` seconds, on its own connection and thread
        snap = {}

        def take_snapshot():
            time.sleep(a.lead)
            sc = Resp(port)
            snap["t0"] = time.monotonic()
            snap["reply"] = sc.call("SNAPSHOT")
            snap["t1"] = time.monotonic()
            sc.close()

        snap_thread = threading.Thread(target=take_snapshot, daemon=True)
        print(f"load with a snapshot {a.lead:.0f} s in: {window:.0f} s ...", flush=True)
        snap_thread.start()
        t_during0 = time.monotonic()
        during = run_bench(bench, port, load + ["--seed", 2000], timeout=window + 120)
        t_during1 = time.monotonic()
        snap_thread.join(RESP_TIMEOUT_S)
        if "t1" not in snap:
            die("SNAPSHOT did not reply")
        # a few seconds after, for the "after" memory figures
        time.sleep(2)
        probe.stop_flag.set()
        sampler.stop_flag.set()
        probe.join()
        sampler.join()
        if probe.error:
            die(f"probe failed: {probe.error}")
        inf = info(port, "persistence")
        rss_after = proc_status_kib(pid)
        mem_after = mem_available_kib()

        # 4. report
        s0, s1 = snap["t0"], snap["t1"]
        print()
        print(f"## result ({keys} keys, value {a.value_size} B, {a.clients} clients, pipeline "
              f"{a.pipeline}; load average now {loadavg()})")
        print(f"SNAPSHOT reply: {snap['reply']!r}; client-side duration {(s1 - s0) * 1e3:.0f} ms; "
              f"INFO last_snapshot_duration_ms {inf['last_snapshot_duration_ms']}, "
              f"fork_stall_last_us {inf['fork_stall_last_us']}, fork_stall_max_us "
              f"{inf['fork_stall_max_us']}")
        fork_line = re.findall(r"snapshot: child \d+ writing index \d+ \(fork took \d+ us[^)]*\)",
                               server.log_text())
        if fork_line:
            print(f"server log: {fork_line[-1]}")
        covered = t_during1 >= s1
        print(f"load window covered the whole snapshot: {'yes' if covered else 'NO (raise --window)'}"
              f" (snapshot {s0 - t_during0:.1f}..{s1 - t_during0:.1f} s of a "
              f"{t_during1 - t_during0:.1f} s window)")
        print()
        print("write latency, hmdb-bench (50-connection SET load, whole windows of equal length):")
        for name, r in (("before", before), ("with snapshot", during)):
            print(f"  {name:14s} {float(r['rps']):10.0f} SET/s  p50 {r['p50_latency_ms']} ms  "
                  f"p99 {r['p99_latency_ms']} ms  p99.9 {r['p999_latency_ms']} ms  max "
                  f"{r['max_latency_ms']} ms  errors {r['errors']}")
        pb = [l for t, l in probe.samples if t_before0 <= t < t_before1]
        pd = [l for t, l in probe.samples if s0 <= t <= s1]
        pf = [l for t, l in probe.samples if s0 <= t <= s0 + 1.0]
        print("write latency, probe (one SET at a time on its own connection):")
        print(f"  before window      {latency_summary(pb)}")
        print(f"  during snapshot    {latency_summary(pd)}")
        print(f"  first 1 s of it    {latency_summary(pf)}")
        if probe.samples:
            worst = max(probe.samples, key=lambda x: x[1])
            print(f"  longest probe SET: {worst[1] * 1e3:.3f} ms, sent {worst[0] - s0:+.3f} s "
                  f"from SNAPSHOT (which took {s1 - s0:.3f} s)")
        fb = [f for f in sampler.fsync if t_before0 <= f[0] < t_before1]
        fd = [f for f in sampler.fsync if s0 <= f[0] <= s1]
        for name, fs in (("before window", fb), ("during snapshot", fd)):
            if len(fs) >= 2:
                rate = (fs[-1][2] - fs[0][2]) / max(1e-9, fs[-1][0] - fs[0][0])
                print(f"  log fdatasync ({name}): {rate:.0f}/s, largest sampled fsync_last_us "
                      f"{max(f[1] for f in fs)} ({len(fs)} INFO samples)")
        print()

        # memory
        pre = [r for r in sampler.rss if r[0] < s0]
        rss_before = pre[-1][1] if pre else None
        dur = [r for r in sampler.rss if s0 <= r[0] <= s1]
        sm_pre = [s for s in sampler.smaps if s[0] < s0]
        sm_dur = [s for s in sampler.smaps if s0 <= s[0] <= s1 and s[2] is not None]
        mem_before = sm_pre[-1][3] if sm_pre else None
        print("memory:")
        print(f"  parent VmRSS   before {gib(rss_before)}  max during {gib(max((r[1] for r in dur), default=None))}"
              f"  after {gib(rss_after)}")
        print(f"  child VmRSS    max {gib(max((r[3] or 0 for r in dur), default=None))} "
              f"(shared pages count in both)")
        if sm_dur:
            def tot(s, k):
                return (s[1] or {}).get(k, 0) + (s[2] or {}).get(k, 0)
            peak_pss = max(sm_dur, key=lambda s: tot(s, "Pss"))
            cow = tot(peak_pss, "Pss") - (rss_before or 0)
            print(f"  parent+child Pss max {gib(tot(peak_pss, 'Pss'))} -> copy-on-write + growth "
                  f"{gib(cow)} ({100.0 * cow / max(1, rss_before or 1):.0f} % of the state)")
            pd_max = max(sm_dur, key=lambda s: tot(s, "Private_Dirty"))
            print(f"  Private_Dirty max: parent {gib(pd_max[1].get('Private_Dirty'))} + child "
                  f"{gib(pd_max[2].get('Private_Dirty'))}")
            if mem_before is not None:
                low = min(s[3] for s in sm_dur)
                print(f"  system MemAvailable before {gib(mem_before)}, lowest during {gib(low)} "
                      f"(drop {gib(mem_before - low)}; other processes move it too), after {gib(mem_after)}")
            print(f"  smaps samples during the snapshot: {len(sm_dur)}")
        else:
            print("  (no smaps_rollup sample caught the child: the snapshot was shorter than "
                  f"{SMAPS_SAMPLE_INTERVAL_S} s)")
        print()

        # 5. stop and verify
        code = server.stop()
        snaps = sorted(glob.glob(os.path.join(data_dir, "snap-*.hmsnap")))
        print(f"server stopped (exit {code}); snapshot files: "
              + ", ".join(f"{os.path.basename(s)} ({os.path.getsize(s) / (1 << 30):.2f} GiB)"
                          for s in snaps))
        if not snaps:
            die("no snapshot file in the data directory")
        v = subprocess.run([hmdb, "log", "verify", data_dir], capture_output=True, text=True,
                           timeout=1800)
        vout = (v.stdout + v.stderr).strip().splitlines()
        print(f"hmdb log verify {data_dir}: exit {v.returncode}")
        for line in vout[-6:]:
            print(f"  {line}")
        if v.returncode != 0:
            die("log verify says the data directory is NOT sound")
    finally:
        if probe:
            probe.stop_flag.set()
        if sampler:
            sampler.stop_flag.set()
        server.stop()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
