#!/usr/bin/env python3
"""bench/restart.py - how fast hmdb comes back after a stop (issue 2 goals: "restart with 10
million keys in at most 3 s" and "recovery replays at least 1 million log records per second").

Part 1, restart from a snapshot: fills N distinct keys (`key:%012d`, 8-byte values; MSET of
--mset-keys keys, pipelined on a few connections), checks DBSIZE, takes a SNAPSHOT (its reply
comes when the snapshot is durable; INFO must then say snapshot_in_progress:0), stops the
server with SIGTERM, then starts it again --runs times: the time from just before exec to the
first +PONG, and the server's own `recovery: done in X ms` line, with the median and spread.

Part 2, log replay speed: a fresh server with automatic snapshots pushed out of the way
(--snapshot-log-bytes huge) takes M SET commands from hmdb-bench (--replay-clients connections,
pipeline --replay-pipeline; by default 8 x 1 with durability periodic, so entries hold few
commands and the per-record cost shows), is stopped, and restarted --runs times. Every write that arrives in
one event-loop turn is one log entry (a batch of commands), so the report gives entries/s (the
log records the server counts) and commands/s, from the `recovery: log has ...` and `recovery:
done in X ms` lines. The server's CPU time (user + system, /proc/PID/stat) from exec to the
first +PONG is reported next to the wall clock: on a shared, loaded machine the wall clock says
as much about the neighbours as about the replay, records per CPU-second much less.
--replay-from DIR replays a copy of a data directory kept by an earlier run (--keep) instead of
filling a fresh one, so that two builds can be compared on the very same log.

Python 3 standard library only; helpers come from snapshot_stall.py next to this file. Every
server started here is stopped by PID on every exit path.
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot_stall import (Resp, Server, find_binaries, free_port, info, loadavg,  # noqa: E402
                            proc_status_kib, gib, run_bench)

FILL_CONNECTIONS = 4          # parallel writer connections for the key fill
FILL_CHUNK_COMMANDS = 64      # MSETs per write(); two chunks in flight per connection
VALUE = b"vvvvvvvv"           # 8-byte value of every filled key
RECOVERY_DONE = re.compile(r"recovery: done in (\d+) ms: applied index (\d+) \((\d+) log entries")
RECOVERY_LOG = re.compile(r"recovery: log has (\d+) segments, (\d+) records, (\d+) entries after "
                          r"index (\d+) \((\d+) bytes\)")
RECOVERY_SNAP = re.compile(r"recovery: loading snapshot (\S+) \(index \d+, term \d+, (\d+) bytes[;)]")


def proc_cpu_seconds(pid):
    """User + system CPU seconds of the process so far (all threads), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def die(msg):
    print(f"restart: {msg}", file=sys.stderr)
    sys.exit(1)


def fill_keys(port, n, mset_keys):
    """SETs key:0..key:n-1 with MSET, FILL_CONNECTIONS connections each on its own range."""
    item = b"$16\r\nkey:%012d\r\n$" + str(len(VALUE)).encode() + b"\r\n" + VALUE + b"\r\n"
    errors = []

    def writer(lo, hi):
        try:
            c = Resp(port)
            expect = b"+OK\r\n" * FILL_CHUNK_COMMANDS

            def chunk(start):
                parts = []
                count = 0
                k = start
                while k < hi and count < FILL_CHUNK_COMMANDS:
                    m = min(mset_keys, hi - k)
                    parts.append(b"*%d\r\n$4\r\nMSET\r\n" % (1 + 2 * m))
                    parts.append(b"".join([item % i for i in range(k, k + m)]))
                    k += m
                    count += 1
                return b"".join(parts), count, k

            def read_replies(count):
                want = 5 * count
                while len(c.buf) < want:
                    data = c.sock.recv(1 << 16)
                    if not data:
                        raise IOError("connection closed during the fill")
                    c.buf += data
                got, c.buf = c.buf[:want], c.buf[want:]
                if got != expect[:want]:
                    raise IOError(f"fill: unexpected reply {got[:120]!r}")

            pos = lo
            inflight = []
            while pos < hi or inflight:
                if pos < hi:
                    data, count, pos = chunk(pos)
                    c.sock.sendall(data)
                    inflight.append(count)
                if len(inflight) >= 2 or (pos >= hi and inflight):
                    read_replies(inflight.pop(0))
            c.close()
        except Exception as e:
            errors.append(e)

    per = (n + FILL_CONNECTIONS - 1) // FILL_CONNECTIONS
    threads = [threading.Thread(target=writer, args=(i * per, min(n, (i + 1) * per)))
               for i in range(FILL_CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def timed_restarts(server, runs, label):
    """Starts and stops `server` `runs` times; returns a list of per-run dicts."""
    out = []
    for r in range(runs):
        offset = os.path.getsize(server.log_path) if os.path.exists(server.log_path) else 0
        t0 = server.start(wait=False)
        t1 = server.wait_ready()
        cpu = proc_cpu_seconds(server.proc.pid)
        rss = proc_status_kib(server.proc.pid)
        c = Resp(server.port)
        keys = c.call("DBSIZE")
        c.close()
        code = server.stop()
        with open(server.log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        done = RECOVERY_DONE.search(text)
        logl = RECOVERY_LOG.search(text)
        snap = RECOVERY_SNAP.search(text)
        if not done or not logl:
            die(f"{label}: no recovery lines in the server log:\n{text[-2000:]}")
        run = {"exec_to_pong_ms": (t1 - t0) * 1e3, "recovery_ms": int(done.group(1)),
               "entries": int(done.group(3)), "records": int(logl.group(2)),
               "log_bytes": int(logl.group(5)), "segments": int(logl.group(1)),
               "snapshot_bytes": int(snap.group(2)) if snap else 0, "keys": keys, "rss_kib": rss,
               "cpu_s": cpu,
               "exit": code, "lines": [l for l in text.splitlines() if "recovery:" in l]}
        out.append(run)
        print(f"  {label} run {r + 1}: exec->PONG {run['exec_to_pong_ms']:.0f} ms, server "
              f"'recovery: done in {run['recovery_ms']} ms', CPU to PONG "
              f"{'-' if cpu is None else f'{cpu:.2f} s'}, {run['entries']} entries replayed, "
              f"DBSIZE {keys}, RSS {gib(rss)}, exit {code}", flush=True)
    return out


def spread(values):
    med = statistics.median(values)
    return med, min(values), max(values), (max(values) - min(values)) / med if med else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", default="build")
    ap.add_argument("--quick", action="store_true", help="1M keys, 300k replay commands")
    ap.add_argument("--keys", type=int, default=None, help="keys for the restart (10,000,000)")
    ap.add_argument("--mset-keys", type=int, default=100, help="keys per MSET in the fill")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--replay-commands", type=int, default=None,
                    help="SETs written to the log for the replay test (1,000,000)")
    ap.add_argument("--replay-clients", type=int, default=8,
                    help="few clients at pipeline 1 make small entries: the per-record cost")
    ap.add_argument("--replay-pipeline", type=int, default=1)
    ap.add_argument("--replay-durability", default="periodic", choices=["always", "periodic"],
                    help="periodic: replies do not wait for fsync, so the fill is quick and "
                         "entries stay small (the log's format is the same in both modes)")
    ap.add_argument("--replay-from", default=None,
                    help="replay a copy of this data directory (the 'replay' directory of an earlier "
                         "run with --keep) instead of filling a fresh one; --replay-commands then only "
                         "labels the rates")
    ap.add_argument("--skip-restart", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--tmp-root", default=None, help="where the data directories go (a real disk)")
    ap.add_argument("--keep", action="store_true", help="keep the data directories")
    a = ap.parse_args()
    n_keys = a.keys if a.keys is not None else (1_000_000 if a.quick else 10_000_000)
    n_replay = a.replay_commands if a.replay_commands is not None else (
        200_000 if a.quick else 1_000_000)
    if a.runs < 1:
        die("--runs must be >= 1")
    hmdb, bench = find_binaries(a.build_dir)
    tmp = tempfile.mkdtemp(prefix="hmdb-restart-", dir=a.tmp_root)
    servers = []
    print(f"# restart: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, load average "
          f"{loadavg()}, {os.cpu_count()} CPUs; binary {hmdb}; data under {tmp}")
    try:
        if not a.skip_restart:
            port = free_port()
            s = Server(hmdb, port, os.path.join(tmp, "snap"), os.path.join(tmp, "snap.log"))
            servers.append(s)
            s.start()
            t = time.monotonic()
            fill_keys(port, n_keys, a.mset_keys)
            c = Resp(port)
            dbsize = c.call("DBSIZE")
            print(f"filled {dbsize} keys in {time.monotonic() - t:.1f} s; RSS "
                  f"{gib(proc_status_kib(s.proc.pid))}", flush=True)
            if dbsize != n_keys:
                die(f"DBSIZE {dbsize}, expected {n_keys}")
            t = time.monotonic()
            reply = c.call("SNAPSHOT")
            c.close()
            inf = info(port, "persistence")
            print(f"SNAPSHOT: {reply!r} in {time.monotonic() - t:.1f} s; snapshot_in_progress "
                  f"{inf['snapshot_in_progress']}, last_snapshot_status "
                  f"{inf['last_snapshot_status']}, log_bytes_since_snapshot "
                  f"{inf['log_bytes_since_snapshot']}", flush=True)
            if not str(reply).startswith("OK") or inf["snapshot_in_progress"] != "0":
                die("the snapshot did not finish")
            code = s.stop()
            if code != 0:
                die(f"server exit code {code} on SIGTERM")
            runs = timed_restarts(s, a.runs, f"{n_keys} keys")
            if any(r["keys"] != n_keys for r in runs):
                die("a restart came back with the wrong number of keys")
            med, lo, hi, sp = spread([r["exec_to_pong_ms"] for r in runs])
            rmed, rlo, rhi, rsp = spread([r["recovery_ms"] for r in runs])
            print(f"RESTART {n_keys} keys (snapshot {runs[0]['snapshot_bytes'] / (1 << 20):.0f} MiB"
                  f" + {runs[0]['entries']} log entries): exec->first PONG median {med:.0f} ms "
                  f"(min {lo:.0f}, max {hi:.0f}, spread {sp * 100:.0f} %); server recovery median "
                  f"{rmed:.0f} ms (min {rlo}, max {rhi}); goal <= 3000 ms: "
                  f"{'met' if med <= 3000 else 'MISSED'}")
            print("  server log of the last run:")
            for line in runs[-1]["lines"]:
                print(f"    {line}")

        if not a.skip_replay:
            port = free_port()
            s = Server(hmdb, port, os.path.join(tmp, "replay"), os.path.join(tmp, "replay.log"),
                       durability=a.replay_durability)
            servers.append(s)
        if not a.skip_replay and a.replay_from:
            port = free_port()
            s = Server(hmdb, port, os.path.join(tmp, "replay"), os.path.join(tmp, "replay.log"),
                       durability=a.replay_durability)
            servers.append(s)
            shutil.copytree(a.replay_from, os.path.join(tmp, "replay"))
            print(f"replay: a copy of {a.replay_from} "
                  f"({sum(os.path.getsize(os.path.join(a.replay_from, f)) for f in os.listdir(a.replay_from)) / (1 << 20):.0f} MiB)",
                  flush=True)
            commands = n_replay
        elif not a.skip_replay:
            port = free_port()
            s = Server(hmdb, port, os.path.join(tmp, "replay"), os.path.join(tmp, "replay.log"),
                       durability=a.replay_durability)
            servers.append(s)
            s.start()
            t = time.monotonic()
            r = run_bench(bench, port, ["--tests", "set", "--clients", a.replay_clients,
                                        "--pipeline", a.replay_pipeline, "--requests", n_replay,
                                        "--keyspace", 1_000_000, "--value-size", 8],
                          timeout=3600)
            inf = info(port, "all")
            print(f"replay fill: {r['requests']} SETs ({a.replay_clients} clients, pipeline "
                  f"{a.replay_pipeline}, durability {a.replay_durability}) in "
                  f"{time.monotonic() - t:.1f} s, {float(r['rps']):.0f}/s; errors {r['errors']}; "
                  f"log {int(inf['log_bytes_since_snapshot']) / (1 << 20):.0f} MiB, applied_index "
                  f"{inf['applied_index']}, snapshots_taken {inf['snapshots_taken']}", flush=True)
            if inf["snapshots_taken"] != "0":
                die("a snapshot was taken during the replay fill; the replay would be shorter")
            commands = int(r["requests"])
            code = s.stop()
            if code != 0:
                die(f"server exit code {code} on SIGTERM")
        if not a.skip_replay:
            runs = timed_restarts(s, a.runs, "replay")
            rates = []
            for run in runs:
                sec = max(run["recovery_ms"], 1) / 1e3
                rates.append((run["entries"] / sec, run["records"] / sec, commands / sec,
                              run["log_bytes"] / sec))
            med_e = statistics.median(x[0] for x in rates)
            med_r = statistics.median(x[1] for x in rates)
            med_c = statistics.median(x[2] for x in rates)
            med_b = statistics.median(x[3] for x in rates)
            rmed, rlo, rhi, rsp = spread([run["recovery_ms"] for run in runs])
            cpus = [run["cpu_s"] for run in runs if run["cpu_s"]]
            cpu_med = statistics.median(cpus) if cpus else None
            first = runs[0]
            print(f"REPLAY {first['records']} records ({first['entries']} entries, "
                  f"{commands} SET commands, ~{commands / max(1, first['entries']):.1f} commands per "
                  f"entry, {first['log_bytes'] / (1 << 20):.0f} MiB in {first['segments']} segments)"
                  f": recovery median {rmed:.0f} ms (min {rlo}, max {rhi}) -> {med_r / 1e6:.2f}M "
                  f"records/s, {med_e / 1e6:.2f}M entries/s, {med_c / 1e6:.2f}M commands/s, "
                  f"{med_b / (1 << 20):.0f} MiB/s; goal >= 1M records/s: "
                  f"{'met' if med_r >= 1e6 else 'MISSED'}")
            if cpu_med:
                print(f"  server CPU from exec to first PONG: median {cpu_med:.2f} s (min {min(cpus):.2f}, "
                      f"max {max(cpus):.2f}) -> {first['records'] / cpu_med / 1e6:.2f}M records per "
                      f"CPU-second, {commands / cpu_med / 1e6:.2f}M commands per CPU-second")
            print("  note: later runs also replay the no-op entry each earlier start appended")
            print("  server log of the last run:")
            for line in runs[-1]["lines"]:
                print(f"    {line}")
        print(f"# done; load average {loadavg()}")
    finally:
        for s in servers:
            s.stop()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
