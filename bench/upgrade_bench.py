#!/usr/bin/env python3
"""bench/upgrade_bench.py — what a schema upgrade and a scale-up cost the clients (issue 13).

Three measurements, each printed with the load average of the shared machine:

  upgrade     a 3-node ledger cluster of the OLD binary under write load (--writers clients,
              each one TRANSFER at a time, plain clients spread over the nodes: a follower
              forwards) is upgraded as docs/cluster.md says: `hmdb cluster replace` of every
              member by a node of the NEW binary (followers first, the leader last, so there
              is one leadership transfer), then `hmdb cluster schema activate NEW_VERSION`
              (the gate). Reported: the longest gap between two successful writes seen by the
              clients over the whole run and around the leadership transfer and the gate
              (goal: <= 50 ms at the switch), the write throughput before, during each
              catch-up and after, and each replace's own summary (catch-up rate, write pause).
  scaleup     the same with the OLD binary for the new nodes and no gate: moving every member
              to a new node.
  redis       the peer: Redis' way to upgrade, a replica and a coordinated `FAILOVER`
              (redis-server from Debian, appendonly yes, appendfsync always), with the same
              number of writers sending SET one at a time to whichever node is the primary.
              The longest gap between successful writes around the failover.
  migration   one node of the OLD binary is filled until its resident memory passes
              --migration-bytes (1 GiB by default: accounts, then transfers between them),
              snapshotted and stopped; then a copy of its data directory is started --runs
              times with the OLD binary and with the NEW one, alternately: the NEW binary
              migrates every record of the old snapshot as it loads it. Reported: the restart's
              recovery_ms (INFO) of each, records/s of the migrating load, the snapshot size.

Usage:
  bench/upgrade_bench.py --old build/apps/ledger/hmdb-ledger --new build/tests/apps/hmdb-ledger-v2 \\
      --new-version 2 [--parts upgrade,scaleup,redis,migration] [--runs 3] [--out report.md]
  bench/upgrade_bench.py --quick ...     # small state, one run: a smoke test of the script

Every process it starts is stopped by PID on every exit path (tests/system/cluster.py's
bookkeeping); every wait is bounded; the temporary directory is removed unless --keep.
"""

import argparse
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))
import cluster as cl  # noqa: E402
import resp  # noqa: E402

# Bounds.
LEADER_TIMEOUT_S = 30.0
REPLACE_TIMEOUT_S = 900.0       # one `hmdb cluster replace` (a catch-up of the preloaded state)
ACTIVATE_TIMEOUT_S = 60.0
WRITER_IO_TIMEOUT_S = 5.0       # one TRANSFER; past it the writer reconnects elsewhere
STEADY_S = 3.0                  # load before the first step and after the last one
LOAD_CHUNK = 20000              # commands per pipelined chunk of a bulk load
MIGRATION_FILL_TIMEOUT_S = 900.0
RECOVERY_TIMEOUT_S = 600.0
REDIS_READY_TIMEOUT_S = 30.0
# Around an event (transfer, gate, failover), the window in which the longest gap is taken.
EVENT_WINDOW_S = 2.0


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def loadavg():
    return "%.1f" % os.getloadavg()[0]


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def bulk(host, port, commands, what):
    """Pipelines `commands` (lists of str) in chunks; every reply must be a one-line success."""
    s = socket.create_connection((host, port), timeout=120)
    try:
        for base in range(0, len(commands), LOAD_CHUNK):
            chunk = commands[base:base + LOAD_CHUNK]
            s.sendall(b"".join(resp.encode_command(c) for c in chunk))
            want, buf = len(chunk), b""
            while buf.count(b"\r\n") < want:
                data = s.recv(1 << 20)
                if not data:
                    raise RuntimeError("%s: connection closed" % what)
                buf += data
            bad = [l for l in buf.split(b"\r\n")[:want] if l[:1] == b"-"]
            if bad:
                raise RuntimeError("%s: %d errors, first %r" % (what, len(bad), bad[0]))
    finally:
        s.close()


class Writers:
    """--writers threads, each a plain client sending one TRANSFER (or SET) at a time to one of
    the addresses (chosen round robin, moved on after an error). Successful completions are
    recorded by monotonic time."""

    def __init__(self, addrs, count, command):
        self.addrs = list(addrs)  # mutable: the bench adds new nodes' addresses
        self.command = command
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.done = []  # (time, writer)
        self.errors = 0
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(count)]

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(WRITER_IO_TIMEOUT_S * 2)

    def run(self, i):
        k, conn = i, None
        while not self.stop.is_set():
            try:
                if conn is None:
                    with self.lock:
                        host, port = self.addrs[k % len(self.addrs)]
                    conn = resp.Client(host, port, timeout=WRITER_IO_TIMEOUT_S)
                r = conn.call(*self.command(i))
                if isinstance(r, resp.RespError):
                    raise RuntimeError(str(r))
                with self.lock:
                    self.done.append((time.monotonic(), i))
            except Exception:  # noqa: BLE001 — any failure: count it, try another node
                with self.lock:
                    self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                k += 1
                self.stop.wait(0.001)
        if conn is not None:
            conn.close()

    def times(self):
        with self.lock:
            return sorted(t for t, _ in self.done)


def longest_gap(times, lo=None, hi=None):
    """The longest interval between consecutive successes within [lo, hi] (ms), and where."""
    sel = [t for t in times if (lo is None or t >= lo) and (hi is None or t <= hi)]
    best, at = 0.0, None
    for a, b in zip(sel, sel[1:]):
        if b - a > best:
            best, at = b - a, a
    return best * 1000.0, at


def rate(times, lo, hi):
    n = sum(1 for t in times if lo <= t <= hi)
    return n / max(hi - lo, 1e-9)


def transfer_cmd(i):
    return ["TRANSFER", "bank", "w%d" % i, "1", "USD"]


def start_cluster(binary, root, name, server_args=()):
    c = cl.Cluster(binary, os.path.join(root, name), nodes=3, durability="always", server_args=server_args,
                   cluster_id="bench-" + name)
    c.start()
    return c


def preload_ledger(node, accounts, writers):
    cmds = [["ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"]]
    cmds += [["ACCOUNT.CREATE", "w%d" % i, "USD"] for i in range(writers)]
    cmds += [["ACCOUNT.CREATE", "p%d" % i, "USD"] for i in range(accounts)]
    cmds += [["TRANSFER", "bank", "p%d" % i, "100", "USD"] for i in range(accounts)]
    bulk(node.ip, node.client_port, cmds, "preload")


def new_node(c, node_id, binary):
    ip = cl.node_ip(node_id)
    n = cl.Node(c, node_id, cl.free_port_on(ip), cl.free_port_on(ip))
    argv = [binary, "serve", "--node-id", str(node_id), "--bind", n.ip, "--port", str(n.client_port),
            "--peer-addr", n.peer_addr, "--join", "--cluster-id", c.cluster_id, "--dir", n.data_dir,
            "--durability", c.durability] + list(c.server_args)
    n.command = lambda: argv
    n.start()
    c.nodes.append(n)
    return n


def run_cli(binary, *args, timeout):
    t0 = time.monotonic()
    p = subprocess.run([binary, "cluster"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout, check=False)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise RuntimeError("hmdb cluster %s exited %d:\n%s" % (" ".join(args), p.returncode, out))
    return t0, time.monotonic(), out


def move_all(args, root, name, new_binary, activate):
    """The upgrade (activate=True) or the scale-up: every member replaced, the leader last."""
    c = start_cluster(args.old, root, name)
    try:
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        preload_ledger(leader, args.accounts, args.writers)
        for n in c.nodes:
            n.call("SNAPSHOT", timeout=120)  # so each catch-up is a snapshot and a log suffix
        w = Writers([(n.ip, n.client_port) for n in c.nodes], args.writers, transfer_cmd)
        w.start()
        time.sleep(STEADY_S)  # a measurement window, not a synchronisation
        events, summaries = [], []
        t_begin = time.monotonic()
        first = c.leader()
        old = sorted(list(c.nodes), key=lambda n: n is first)  # the leader last
        next_id = 4
        for o in old:
            lead = c.wait_leader(LEADER_TIMEOUT_S)
            n = new_node(c, next_id, new_binary)
            with w.lock:
                w.addrs.append((n.ip, n.client_port))
            t0, t1, out = run_cli(args.old, "--addr", lead.client_addr, "replace", str(o.id), str(next_id),
                                  n.client_addr, n.peer_addr, timeout=REPLACE_TIMEOUT_S)
            with w.lock:
                w.addrs.remove((o.ip, o.client_port))
            c.nodes.remove(o)
            summaries.append(out[out.find("replaced node"):].strip())
            kind = "replace of the leader" if "write pause: none" not in out else "replace of a follower"
            events.append((kind + " %d -> %d" % (o.id, next_id), t0, t1, "leader" in kind))
            next_id += 1
        if activate:
            lead = c.wait_leader(LEADER_TIMEOUT_S)
            t0, t1, out = run_cli(new_binary, "--addr", lead.client_addr, "schema", "activate",
                                  str(args.new_version), timeout=ACTIVATE_TIMEOUT_S)
            events.append(("schema activate %d (the gate)" % args.new_version, t0, t1, True))
        t_end = time.monotonic()
        time.sleep(STEADY_S)
        w.finish()
        times = w.times()
        return {"times": times, "events": events, "summaries": summaries, "errors": w.errors,
                "t_begin": t_begin, "t_end": t_end}
    finally:
        c.kill_all()


def report_moves(name, r, lines):
    times = r["times"]
    t0, t1 = r["t_begin"], r["t_end"]
    whole, _ = longest_gap(times)
    lines.append("### %s (load %s)" % (name, loadavg()))
    lines.append("")
    lines.append("| window | writes/s | longest gap between successful writes (ms) |")
    lines.append("|---|---:|---:|")
    lines.append("| before (%.0f s) | %.0f | %.1f |" % (STEADY_S, rate(times, t0 - STEADY_S, t0),
                                                       longest_gap(times, t0 - STEADY_S, t0)[0]))
    for what, a, b, _ in r["events"]:
        lines.append("| during %s (%.1f s) | %.0f | %.1f |" % (what, b - a, rate(times, a, b),
                                                            longest_gap(times, a, b)[0]))
    lines.append("| after (%.0f s) | %.0f | %.1f |" % (STEADY_S, rate(times, t1, t1 + STEADY_S),
                                                      longest_gap(times, t1, t1 + STEADY_S)[0]))
    lines.append("| whole run | %.0f | %.1f |" % (rate(times, times[0], times[-1]) if times else 0, whole))
    lines.append("")
    switch = [e for e in r["events"] if e[3]]
    for what, a, b, _ in switch:
        g, _ = longest_gap(times, a - EVENT_WINDOW_S, b + EVENT_WINDOW_S)
        lines.append("- the switch, %s: longest gap %.1f ms (goal <= 50 ms)" % (what, g))
    lines.append("- %d writes, %d failed attempts retried on another node" % (len(times), r["errors"]))
    lines.append("")
    lines.append("```")
    lines.extend(r["summaries"])
    lines.append("```")
    lines.append("")
    return whole, [longest_gap(times, a - EVENT_WINDOW_S, b + EVENT_WINDOW_S)[0] for _, a, b, _ in switch]


def redis_failover(args, root):
    """Redis' upgrade: a replica of the new version, then FAILOVER (coordinated)."""
    ports = [cl.free_port_on("127.0.0.1"), cl.free_port_on("127.0.0.1")]
    procs = []
    try:
        for i, port in enumerate(ports):
            d = os.path.join(root, "redis%d" % i)
            os.makedirs(d)
            argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                    "--appendonly", "yes", "--appendfsync", "always"]
            if i == 1:
                argv += ["--replicaof", "127.0.0.1", str(ports[0])]
            procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + REDIS_READY_TIMEOUT_S
        while True:
            try:
                with resp.Client("127.0.0.1", ports[0]) as c:
                    info = c.call("INFO", "replication").decode()
                if "connected_slaves:1" in info and "state=online" in info:
                    break
            except Exception:  # noqa: BLE001
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis replica did not come online")
            time.sleep(0.05)

        def primary_cmd(i):
            return ["SET", "w%d" % i, "x"]

        w = Writers([("127.0.0.1", p) for p in ports], args.writers, primary_cmd)
        w.start()
        time.sleep(STEADY_S)
        t0 = time.monotonic()
        with resp.Client("127.0.0.1", ports[0]) as c:
            r = c.call("FAILOVER", "TIMEOUT", "5000")
            if isinstance(r, resp.RespError):
                raise RuntimeError("FAILOVER: %s" % r)
        deadline = time.monotonic() + REDIS_READY_TIMEOUT_S
        while True:
            with resp.Client("127.0.0.1", ports[1]) as c:
                if b"role:master" in c.call("INFO", "replication"):
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis failover did not finish")
            time.sleep(0.01)
        t1 = time.monotonic()
        time.sleep(STEADY_S)
        w.finish()
        times = w.times()
        return {"times": times, "events": [("FAILOVER to the replica", t0, t1, True)], "summaries": [],
                "errors": w.errors, "t_begin": t0, "t_end": t1}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def wait_answers(p, port, binary):
    """Until the server at port answers PING (bounded by RECOVERY_TIMEOUT_S)."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        try:
            with resp.Client("127.0.0.1", port) as cli:
                if cli.call("PING") == "PONG":
                    return
        except Exception:  # noqa: BLE001 — not listening yet
            pass
        if p.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("%s did not start (exit %r)" % (binary, p.poll()))
        time.sleep(0.05)


def migration(args, root):
    """Fills one OLD node past --migration-bytes, snapshots it, and times restarts of copies
    of its data directory with OLD and with NEW (which migrates every record as it loads)."""
    src = os.path.join(root, "fill")
    os.makedirs(src)
    port = cl.free_port_on("127.0.0.1")
    p = subprocess.Popen([args.old, "serve", "--bind", "127.0.0.1", "--port", str(port), "--dir", src,
                          "--durability", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    accounts = transfers = 0
    try:
        wait_answers(p, port, args.old)
        bulk("127.0.0.1", port, [["ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"]], "issuer")
        deadline = time.monotonic() + MIGRATION_FILL_TIMEOUT_S
        step = args.fill_step
        while rss_bytes(p.pid) < args.migration_bytes:
            if time.monotonic() > deadline:
                raise RuntimeError("the fill did not reach %d bytes" % args.migration_bytes)
            cmds = [["ACCOUNT.CREATE", "a%08d" % i, "USD"] for i in range(accounts, accounts + step)]
            cmds += [["TRANSFER", "bank", "a%08d" % i, "100", "USD"] for i in range(accounts, accounts + step)]
            bulk("127.0.0.1", port, cmds, "fill")
            accounts += step
            transfers += step
            log("fill: %d accounts, %d transfers, RSS %.0f MiB" % (accounts, transfers, rss_bytes(p.pid) / 2**20))
        rss = rss_bytes(p.pid)
        with resp.Client("127.0.0.1", port, timeout=600) as cli:
            r = cli.call("SNAPSHOT")
            if isinstance(r, resp.RespError):
                raise RuntimeError("SNAPSHOT: %s" % r)
    finally:
        p.terminate()
        p.wait()
    snap = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src) if "snap" in f)
    results = {"old": [], "new": []}
    for run in range(args.runs):
        for which, binary in (("old", args.old), ("new", args.new)):
            d = os.path.join(root, "copy")
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(src, d)
            port = cl.free_port_on("127.0.0.1")
            p = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1", "--port", str(port), "--dir", d,
                                  "--durability", "none"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_answers(p, port, binary)
                with resp.Client("127.0.0.1", port) as cli:
                    info = cli.call("INFO", "persistence").decode()
                ms = int(re.search(r"recovery_ms:(\d+)", info).group(1))
                results[which].append(ms)
                log("recovery %s run %d: %d ms (load %s)" % (which, run + 1, ms, loadavg()))
            finally:
                p.kill()
                p.wait()
    return {"accounts": accounts, "transfers": transfers, "rss": rss, "snapshot_bytes": snap, **results}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="the old version's server binary (e.g. hmdb-ledger)")
    ap.add_argument("--new", required=True, help="the new version's server binary (e.g. hmdb-ledger-v2)")
    ap.add_argument("--new-version", type=int, default=2, help="the schema version the gate activates")
    ap.add_argument("--parts", default="upgrade,scaleup,redis,migration")
    ap.add_argument("--runs", type=int, default=3, help="runs of each part (medians and spread are reported)")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--accounts", type=int, default=100000, help="accounts preloaded before a move")
    ap.add_argument("--migration-bytes", type=int, default=1 << 30, help="RSS the migration fill reaches")
    ap.add_argument("--fill-step", type=int, default=100000, help="accounts added per fill step")
    ap.add_argument("--quick", action="store_true", help="small state, one run")
    ap.add_argument("--out", help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.accounts, args.migration_bytes, args.fill_step = 1, 5000, 64 << 20, 20000
    parts = args.parts.split(",")
    root = tempfile.mkdtemp(prefix="hmdb-upgrade-bench-")
    lines = ["# upgrade_bench (%s)" % time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "",
             "old %s, new %s, writers %d, preloaded accounts %d, runs %d, load at start %s" %
             (args.old, args.new, args.writers, args.accounts, args.runs, loadavg()), ""]
    summary = {}
    try:
        for part in ("upgrade", "scaleup", "redis"):
            if part not in parts:
                continue
            wholes, switches = [], []
            for run in range(args.runs):
                log("%s run %d (load %s)" % (part, run + 1, loadavg()))
                if part == "redis":
                    r = redis_failover(args, os.path.join(root, "r%d" % run))
                else:
                    r = move_all(args, root, "%s%d" % (part, run), args.new if part == "upgrade" else args.old,
                                 activate=(part == "upgrade"))
                whole, sw = report_moves("%s, run %d" % (part, run + 1), r, lines)
                wholes.append(whole)
                switches.append(max(sw) if sw else 0.0)
            summary[part] = (wholes, switches)
        if "migration" in parts:
            m = migration(args, root)
            records = m["accounts"] + m["transfers"] + 1
            lines.append("### migration (load %s)" % loadavg())
            lines.append("")
            lines.append("state: %d accounts, %d transfers (%d records), RSS %.0f MiB, snapshot %.0f MiB" %
                         (m["accounts"], m["transfers"], records, m["rss"] / 2**20, m["snapshot_bytes"] / 2**20))
            lines.append("")
            for which in ("old", "new"):
                ms = m[which]
                med = statistics.median(ms)
                lines.append("- restart with the %s binary: recovery_ms %s, median %.0f ms, %.0f records/s" %
                             (which, ms, med, records / (med / 1000.0)))
            lines.append("")
        lines.append("## Summary")
        lines.append("")
        for part, (wholes, switches) in summary.items():
            lines.append("- %s: longest gap at the switch, median %.1f ms (runs %s); whole run median %.1f ms (runs %s)"
                         % (part, statistics.median(switches), ["%.1f" % x for x in switches],
                            statistics.median(wholes), ["%.1f" % x for x in wholes]))
        lines.append("- load at the end %s" % loadavg())
    finally:
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text)
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
