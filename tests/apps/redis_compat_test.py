#!/usr/bin/env python3
# tests/apps/redis_compat_test.py — runs the same commands against Redis (redis-server,
# no persistence) and hmdb's kv app (durability none) and checks that every reply is
# byte-identical: the proof that kv speaks Redis' exact reply formats and error texts.
#
#   redis_compat_test.py <hmdb binary> [commands file]
#
# Exits 77 (ctest: skipped) when redis-server is not installed. Starts both servers on
# free loopback ports and stops exactly those processes at the end.
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# How long a server may take to accept connections after it was started.
READY_TIMEOUT_S = 20
# Socket timeout for one reply.
REPLY_TIMEOUT_S = 5
# Commands whose reply is an array in no specified order: compared as multisets.
ORDER_FREE = {"HGETALL", "SMEMBERS"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, proc, deadline):
    while True:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT_S)
            return s
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server on port {port} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit(f"server on port {port} not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.05)  # polling for readiness, not synchronisation of results


def encode(words):
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w.encode()
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    return out


def read_reply(f):
    """Returns (raw bytes, parsed value) of one RESP2 reply."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise SystemExit(f"connection closed or bad line: {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return line, (kind, body)
    if kind == b":":
        return line, int(body)
    if kind == b"$":
        n = int(body)
        if n < 0:
            return line, None
        data = f.read(n + 2)
        return line + data, data[:-2]
    if kind == b"*":
        n = int(body)
        raw, items = line, []
        for _ in range(max(n, 0)):
            r, v = read_reply(f)
            raw += r
            items.append(v)
        return raw, (items if n >= 0 else None)
    raise SystemExit(f"unexpected reply line {line!r}")


def order_free(value):
    if isinstance(value, list):
        return sorted(repr(v) for v in value)
    return value


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: redis_compat_test.py <hmdb binary> [commands file]")
    hmdb = sys.argv[1]
    commands_file = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "redis_compat_commands.txt")
    redis = shutil.which("redis-server")
    if not redis:
        print("SKIP: redis-server is not installed (apt-get install redis-server)")
        return 77
    commands = []
    with open(commands_file) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line.split())

    work = tempfile.mkdtemp(prefix="hmdb-compat-")
    redis_port, hmdb_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [redis, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [hmdb, "serve", "--port", str(hmdb_port), "--dir", os.path.join(work, "hmdb"), "--durability", "none"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + READY_TIMEOUT_S
        socks = [connect(redis_port, procs[0], deadline), connect(hmdb_port, procs[1], deadline)]
        files = [s.makefile("rb") for s in socks]
        differences = 0
        for words in commands:
            replies = []
            for s, f in zip(socks, files):
                s.sendall(encode(words))
                replies.append(read_reply(f))
            (redis_raw, redis_value), (hmdb_raw, hmdb_value) = replies
            if words[0].upper() in ORDER_FREE:
                same = order_free(redis_value) == order_free(hmdb_value)
            else:
                same = redis_raw == hmdb_raw
            if not same:
                differences += 1
                print(f"DIFFERENT: {' '.join(words)}\n  redis: {redis_raw!r}\n  hmdb:  {hmdb_raw!r}")
        print(f"{len(commands)} commands, {differences} different replies")
        return 1 if differences else 0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
