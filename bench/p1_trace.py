#!/usr/bin/env python3
"""bench/p1_trace.py — how the replies of a pipeline-1 round leave a server, and what the load
tool does with them (issue 16 item 3). Per server binary (hmdb in mode always, or `redis` for
Redis AOF always), redis-benchmark drives 50 clients at pipeline 1 while `perf record` takes
the system-call tracepoints of both processes for `--seconds`; then it prints, per run:

  tool:   epoll_wait calls per reply it read, events per epoll_wait (mean, median), and the
          epoll_waits that slept (returned > 20 µs after they were called) per reply;
  server: the loop thread's turns (epoll_wait / epoll_pwait2 returns) per reply, the turns
          that sent replies and the replies each sent (a round's replies leave back to back in
          one turn if this equals the requests per fdatasync), the replies' send span within a
          turn and the gap between two sends, the reads per turn, the fdatasyncs and their
          median duration.

Tracepoints only (no stacks): each costs the traced process well under a µs, so the shape is
kept, not the speed. Needs root (perf). Example:
  flock /tmp/hmdb-bench.lock python3 bench/p1_trace.py --bin redis --bin hmdb=build/apps/kv/hmdb --runs 2
"""
import argparse, os, re, shutil, signal, socket, statistics as st, subprocess, tempfile, time
from ping_wait import wait_ping
from collections import Counter

# A reply sent in the same turn less than this after the previous one is part of its burst
# (used only for the span figure); an epoll_wait that returns later than this slept.
SLEPT_US = 20

def events(path):
    out = subprocess.run(["perf", "script", "-i", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*(.+?)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+syscalls:(\S+):\s*(.*)", line)
        if m: yield int(m.group(2)), float(m.group(4)) * 1e6, m.group(5), m.group(6)

def tool_summary(path):
    waits = 0; ready = []; slept = 0; recv = 0; entered = {}
    for tid, t, ev, args in events(path):
        if ev in ("sys_enter_epoll_wait", "sys_enter_epoll_pwait2"): waits += 1; entered[tid] = t
        elif ev in ("sys_exit_epoll_wait", "sys_exit_epoll_pwait2"):
            ready.append(int(args, 16))
            if tid in entered and t - entered.pop(tid) > SLEPT_US: slept += 1
        elif ev == "sys_enter_recvfrom": recv += 1
    recv = max(recv, 1)
    return (f"tool: replies read {recv}, epoll_wait per reply {waits / recv:.3f}, events per epoll_wait mean "
            f"{st.mean(ready) if ready else 0:.1f} median {st.median(ready) if ready else 0:.0f}, "
            f"epoll_waits that slept per reply {slept / recv:.3f}")

def server_summary(path, redis):
    rows = list(events(path))
    loop = Counter(tid for tid, t, ev, a in rows if ev.startswith("sys_exit_epoll")).most_common(1)[0][0]
    turns = []; cur = None; syncs = []; sync_at = {}
    for tid, t, ev, args in rows:
        if ev == "sys_enter_fdatasync": sync_at[tid] = t
        elif ev == "sys_exit_fdatasync" and tid in sync_at: syncs.append(t - sync_at.pop(tid))
        if tid != loop: continue
        if ev.startswith("sys_exit_epoll"):
            cur = dict(reads=0, sends=[]); turns.append(cur)
        elif cur is None: continue
        elif ev == "sys_enter_read": cur["reads"] += 1
        elif ev == ("sys_enter_write" if redis else "sys_enter_sendto"):
            # Redis writes its AOF with write(2) too: a reply is what goes to a client socket,
            # the AOF write is the one per turn that is not; count by size ('+OK\r\n' or ':n\r\n'
            # replies are short, the AOF's batch is not).
            size = int(re.search(r"(?:count|len): (0x[0-9a-f]+)", args).group(1), 16)
            if redis and size > 32: continue
            cur["sends"].append(t)
    replies = max(sum(len(x["sends"]) for x in turns), 1)
    sending = [x for x in turns if x["sends"]]
    spans = [x["sends"][-1] - x["sends"][0] for x in sending if len(x["sends"]) > 1]
    gaps = [b - a for x in sending for a, b in zip(x["sends"], x["sends"][1:])]
    out = (f"server: replies sent {replies}, loop turns per reply {len(turns) / replies:.3f}, turns that sent "
           f"{len(sending)} with {replies / max(len(sending), 1):.1f} replies each, reads per turn "
           f"{st.mean(x['reads'] for x in turns):.2f}, fdatasync {len(syncs)} "
           f"({replies / max(len(syncs), 1):.1f} replies each, median {st.median(syncs) if syncs else 0:.0f} us)")
    if spans:
        out += (f"; a turn's sends span median {st.median(spans):.0f} us, gap between two sends median "
                f"{st.median(gaps):.1f} us, p90 {sorted(gaps)[int(len(gaps) * 0.9)]:.1f} us")
    return out

ap = argparse.ArgumentParser()
ap.add_argument("--bin", action="append", default=[], help="name=path or redis")
ap.add_argument("--workload", default="set")
ap.add_argument("--runs", type=int, default=1)
ap.add_argument("--seconds", type=float, default=1)
ap.add_argument("--requests", type=int, default=150000, help="redis-benchmark -n (must outlast the trace)")
ap.add_argument("--port", type=int, default=7631)
a = ap.parse_args()
tool_events = "syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait,syscalls:sys_enter_recvfrom"
srv_events = ("syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_read,"
              "syscalls:sys_exit_epoll_wait,syscalls:sys_exit_epoll_pwait2,"
              "syscalls:sys_enter_fdatasync,syscalls:sys_exit_fdatasync")
for rep in range(a.runs):
    for b in a.bin:
        name, path = b.split("=", 1) if "=" in b else (b, b)
        d = tempfile.mkdtemp(prefix="hmdb-p1-trace-")
        if path == "redis":
            argv = ["redis-server", "--port", str(a.port), "--bind", "127.0.0.1", "--dir", d, "--save", "",
                    "--appendonly", "yes", "--appendfsync", "always"]
        else:
            argv = [path, "serve", "--port", str(a.port), "--dir", d + "/data", "--durability", "always"]
        srv = subprocess.Popen(argv, stdout=open(d + "/log", "w"), stderr=subprocess.STDOUT)
        tool = None
        try:
            wait_ping(a.port)
            rb = ["redis-benchmark", "-p", str(a.port), "-c", "50", "-P", "1", "-r", "1000000", "-d", "3",
                  "-t", a.workload, "--csv"]
            subprocess.run(rb + ["-n", "20000"], capture_output=True)  # warm-up
            tool = subprocess.Popen(rb + ["-n", str(a.requests)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            time.sleep(0.5)
            recs = [subprocess.Popen(["perf", "record", "-q", "-o", f"{d}/{who}.data", "-e", ev, "-p", str(pid),
                                      "--", "sleep", str(a.seconds)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    for who, ev, pid in (("srv", srv_events, srv.pid), ("tool", tool_events, tool.pid))]
            for r in recs: r.wait()
            out, _ = tool.communicate(); tool = None
            rps = next((line.split(",")[1].strip('"') for line in out.splitlines() if not line.startswith('"test')), "?")
            load = os.getloadavg()[0]
            print(f"run {rep} {name}: {a.workload} {rps} ops/s (the whole redis-benchmark run), load {load:.1f}")
            print("  " + server_summary(f"{d}/srv.data", path == "redis"))
            print("  " + tool_summary(f"{d}/tool.data"), flush=True)
        finally:
            if tool: tool.kill(); tool.wait()
            srv.send_signal(signal.SIGTERM); srv.wait()
            shutil.rmtree(d, ignore_errors=True)
