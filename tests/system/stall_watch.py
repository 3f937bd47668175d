#!/usr/bin/env python3
"""Diagnostic (not a test): watches the three nodes of a running chaos test and, when one
has not answered PING within 0.3 s for 1.5 s in a row, prints each of its threads' CPU
ticks over one second, wchan and current syscall, and a gdb backtrace of all threads
(once per stall), to tell a spinning event loop from a blocked one. SIGSTOPped and dead
nodes are named as such.

Usage: start it next to a chaos run whose output goes to a file:
    python3 tests/system/stall_watch.py chaos.log 60 > stalls.txt &
    python3 tests/system/chaos_test.py ... HMDB > chaos.log
(the node addresses are read from the run's "cluster:" line; needs ss and gdb)
"""
import sys, time, re, os, datetime, subprocess
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import resp
log, secs = sys.argv[1], float(sys.argv[2])
deadline = time.time() + secs
addrs = None
while addrs is None and time.time() < deadline:
    try:
        m = re.search(r"cluster: (\S+);", open(log).read())
        if m: addrs = [a.split("@")[0].split("=")[1] for a in m.group(1).split(",")]
    except OSError: pass
    time.sleep(0.1)
def pid_of(addr):
    out = subprocess.run(["ss", "-ltnpH", "src", addr], capture_output=True, text=True).stdout
    m = re.search(r"pid=(\d+)", out)
    return int(m.group(1)) if m else None
bad_since = {}
reported = set()
def ts(): return datetime.datetime.utcnow().strftime("%H:%M:%S.%f")[:-3]
while time.time() < deadline:
    for a in addrs:
        h, p = a.split(":")
        ok = False
        try:
            with resp.Client(h, int(p), timeout=0.3) as c:
                c.call("PING"); ok = True
        except Exception: pass
        if ok:
            bad_since.pop(a, None); continue
        bad_since.setdefault(a, time.time())
        if time.time() - bad_since[a] > 1.5 and (a, int(bad_since[a])) not in reported:
            reported.add((a, int(bad_since[a])))
            pid = pid_of(a)
            if pid is None: print(ts(), a, "no listener (down)", flush=True); continue
            st = open("/proc/%d/stat" % pid).read().split()
            if st[2] == "T": print(ts(), a, "pid", pid, "is stopped (SIGSTOP)", flush=True); continue
            def cpu():
                r = {}
                for t in os.listdir("/proc/%d/task" % pid):
                    try:
                        s = open("/proc/%d/task/%s/stat" % (pid, t)).read()
                        f = s[s.rfind(")") + 2:].split()
                        r[t] = (int(f[11]) + int(f[12]), f[0], open("/proc/%d/task/%s/wchan" % (pid, t)).read(),
                                open("/proc/%d/task/%s/syscall" % (pid, t)).read().split()[0],
                                s[s.find("(") + 1:s.rfind(")")])
                    except OSError: pass
                return r
            c1 = cpu(); time.sleep(1.0); c2 = cpu()
            print(ts(), a, "pid", pid, "STALLED; threads (name state cpu-ticks-in-1s wchan syscall):", flush=True)
            for t in sorted(c2):
                print("   ", t, c2[t][4], c2[t][1], c2[t][0] - c1.get(t, (c2[t][0],))[0], c2[t][2], c2[t][3], flush=True)
            try:
                bt = subprocess.run(["gdb", "-p", str(pid), "-batch", "-ex", "thread apply all bt 12"], capture_output=True, text=True, timeout=20).stdout
                print(bt[-6000:], flush=True)
            except Exception as e: print("gdb:", e)
    time.sleep(0.1)
