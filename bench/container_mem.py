#!/usr/bin/env python3
"""bench/container_mem.py — RSS per element of one big container (issue 16, item 4).

For each of a hash, a list, a set and a sorted set: starts a fresh server, loads N elements
(default 1,000,000; env N) named element:%012d (20 bytes, as redis-benchmark's), 100 per
command (HSET with 3-byte values, RPUSH, SADD, ZADD with scores below 1,000,003) through
`redis-cli --pipe`, and prints (RSS - RSS of the empty server) / N. For hmdb (durability
none) also after SNAPSHOT and a restart from it: the state alone, without the in-memory log.
KINDS (env, comma-separated) picks some of them; KINDS=smalllist measures the other shape of
lists instead: N keys mylist:%012d of three 3-byte elements each (RPUSH key xxx yyy zzz), as a
random-key LPUSH workload leaves them (2-3 elements a key), and prints bytes per key.
Run it once per system, one at a time (flock /tmp/hmdb-bench.lock):

  python3 bench/container_mem.py after build/apps/kv/hmdb 7472
  python3 bench/container_mem.py redis redis 7473
"""
import os, socket, subprocess, sys, tempfile, time, shutil
name, binary, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
N, PER = int(os.environ.get("N", "1000000")), 100
def cmds(kind):
    out = []
    if kind == "smalllist":
        for i in range(N):
            k = "mylist:%012d" % i
            out.append("*5\r\n$5\r\nRPUSH\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n$3\r\nyyy\r\n$3\r\nzzz\r\n" % (len(k), k))
        return "".join(out).encode()
    for c in range(N // PER):
        args = {"hash": ["HSET", "h"], "list": ["RPUSH", "l"], "set": ["SADD", "s"], "zset": ["ZADD", "z"]}[kind][:]
        for i in range(c * PER, (c + 1) * PER):
            m = "element:%012d" % i
            if kind == "hash": args += [m, "xxx"]
            elif kind == "zset": args += [str((i * 7919) % 1000003), m]
            else: args.append(m)
        out.append("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return "".join(out).encode()
def rss(pid):
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1]) * 1024
def call(*args):
    s = socket.create_connection(("127.0.0.1", port), 600)
    s.sendall(("*%d\r\n" % len(args) + "".join("$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
    data = s.recv(65536); s.close(); return data
def start(d):
    if binary == "redis":
        argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", d, "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", d + "/log"]
    else:
        argv = [binary, "serve", "--port", str(port), "--dir", d + "/data", "--durability", "none"]
    p = subprocess.Popen(argv, stdout=open(d + "/out", "a"), stderr=subprocess.STDOUT)
    for _ in range(600):
        try:
            if b"PONG" in call("PING"): break
        except OSError: pass
        time.sleep(0.05)
    time.sleep(0.3)
    return p
for kind in os.environ.get("KINDS", "hash,list,set,zset").split(","):
    d = tempfile.mkdtemp(prefix="container-mem-")
    p = start(d); r0 = rss(p.pid)
    data = cmds(kind)
    unit = "key" if kind == "smalllist" else "element"
    subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=data, capture_output=True)
    r1 = rss(p.pid)
    extra = ""
    if binary != "redis":
        call("SNAPSHOT"); time.sleep(1)
        p.terminate(); p.wait()
        p = start(d)
        for _ in range(600):
            if (b":%d" % (N if kind == "smalllist" else 1)) in call("DBSIZE"): break
            time.sleep(0.1)
        r2 = rss(p.pid)
        extra = f", restarted from snapshot {(r2 - r0) / N:6.1f} B/{unit}"
    print(f"{name:8s} {kind:5s} after load {(r1 - r0) / N:6.1f} B/{unit}{extra}", flush=True)
    p.terminate(); p.wait(); shutil.rmtree(d, ignore_errors=True)
