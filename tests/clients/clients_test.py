#!/usr/bin/env python3
# tests/clients/clients_test.py — client libraries that no one here wrote connect to hmdb
# unchanged, over its handshake (HELLO 3 or RESP2, AUTH, SETNAME, SELECT 0, CLIENT ...),
# and see exactly what they see from Redis: node-redis (the current major, which sends
# HELLO 3, and 4), ioredis, and Debian's redis-py 4.3 run the same steps against a
# redis-server and an hmdb node started here, and their results must be equal.
#
#   clients_test.py <hmdb binary>
#
# redis-cli's subscriber mode (SUBSCRIBE, RESP2 and RESP3) is compared the same way: its
# output for the same messages must be the same.
#
# Needs redis-server, redis-cli, node with tests/clients/node_modules (npm ci, run by
# scripts/install-deps.sh) and Debian's python3-redis; exits 77 (ctest: skipped), saying
# what is missing, without them. Starts both servers on free loopback ports and stops
# exactly those processes.
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# How long a server may take to accept connections after it was started.
READY_TIMEOUT_S = 20
# How long one client script may run against one server.
SCRIPT_TIMEOUT_S = 90
sys.path.insert(0, os.path.join(HERE, "..", "system"))
from harness import free_port  # noqa: E402  (never hands out one port twice)
# Debian's interpreter: python3-redis is installed for it, not for another python3 on PATH.
from harness import DEBIAN_PYTHON  # noqa: E402


def wait_ready(port, proc, deadline):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server on port {port} exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise SystemExit(f"server on port {port} not ready after {READY_TIMEOUT_S} s")
            time.sleep(0.05)  # polling for readiness, not synchronisation of results


def missing_prerequisites():
    missing = []
    if not shutil.which("redis-server"):
        missing.append("redis-server (apt-get install redis-server)")
    if not shutil.which("redis-cli"):
        missing.append("redis-cli (apt-get install redis-tools)")
    if not shutil.which("node"):
        missing.append("node")
    for package in ("redis", "redis4", "ioredis"):
        if not os.path.exists(os.path.join(HERE, "node_modules", package, "package.json")):
            missing.append(f"the npm package {package} (cd tests/clients && npm ci)")
    if subprocess.run([DEBIAN_PYTHON, "-c", "import redis"], capture_output=True).returncode != 0:
        missing.append("python3-redis (apt-get install python3-redis)")
    return missing


def send_command(port, *words):
    """One command on a fresh connection; returns its reply's lines (`lines` of them)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        out = b"*%d\r\n" % len(words)
        for w in words:
            out += b"$%d\r\n%s\r\n" % (len(w), w.encode())
        s.sendall(out)
        f = s.makefile("rb")
        first = f.readline()
        # Enough for the replies read here: an integer, or PUBSUB NUMSUB's array of one pair.
        return [first] + ([f.readline() for _ in range(3)] if first.startswith(b"*2") else [])


def redis_cli_subscriber(port, protocol):
    """redis-cli SUBSCRIBE in RESP2 or RESP3 while two messages are published: its output."""
    channel = f"cli{protocol}"
    cli = subprocess.Popen(["redis-cli", "-p", str(port), f"-{protocol}", "SUBSCRIBE", channel, channel + "b"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SCRIPT_TIMEOUT_S
        while send_command(port, "PUBSUB", "NUMSUB", channel + "b")[-1] != b":1\r\n":
            if time.monotonic() > deadline:
                raise SystemExit(f"redis-cli never subscribed on port {port}")
            time.sleep(0.02)  # polling until the subscription exists, not synchronising results
        send_command(port, "PUBLISH", channel, "hello")
        send_command(port, "PUBLISH", channel + "b", "world")
        out = b""
        while out.count(b"\n") < 12:  # two confirmations and two messages, three lines each
            ready, _, _ = select.select([cli.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(cli.stdout.fileno(), 65536)
            if not chunk:
                break
            out += chunk
        return out.decode(errors="replace")
    finally:
        cli.terminate()
        cli.wait(timeout=10)


def run_script(command, port):
    p = subprocess.run(command + [str(port)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S, cwd=HERE)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(command)} {port} failed ({p.returncode}):\n{p.stderr}")
    return json.loads(p.stdout)


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: clients_test.py <hmdb binary>")
    missing = missing_prerequisites()
    if missing:
        print("SKIP: missing " + "; ".join(missing) + " (scripts/install-deps.sh installs them)")
        return 77
    work = tempfile.mkdtemp(prefix="hmdb-clients-")
    redis_port, hmdb_port = free_port(), free_port()
    procs = []
    try:
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--databases", "1", "--dir", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(
            [sys.argv[1], "serve", "--port", str(hmdb_port), "--dir", os.path.join(work, "hmdb")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + READY_TIMEOUT_S
        wait_ready(redis_port, procs[0], deadline)
        wait_ready(hmdb_port, procs[1], deadline)
        failures = 0
        setups = 0
        from_hmdb = {}
        for protocol in (2, 3):
            setups += 1
            want, got = redis_cli_subscriber(redis_port, protocol), redis_cli_subscriber(hmdb_port, protocol)
            if want == got and want.count("\n") >= 12:
                print(f"  same as Redis: redis-cli -{protocol} SUBSCRIBE ({want.count(chr(10))} lines)")
            else:
                failures += 1
                print(f"  DIFFERENT: redis-cli -{protocol} SUBSCRIBE\n    redis {want!r}\n    hmdb  {got!r}")
        for command in (["node", "node_clients.js"], [DEBIAN_PYTHON, "redis_py_clients.py"]):
            want = run_script(command, redis_port)
            got = from_hmdb[command[-1]] = run_script(command, hmdb_port)
            print(f"{command[-1]}: {want['versions']}")
            for setup, expected in want["results"].items():
                setups += 1
                actual = got["results"].get(setup)
                steps = [s for s in expected if s != "connect"]
                if actual == expected:
                    print(f"  same as Redis: {setup} ({len(steps)} steps"
                          f"{', connect refused as by Redis' if 'connect' in expected else ''})")
                    continue
                failures += 1
                print(f"  DIFFERENT: {setup}")
                for step in sorted(set(expected) | set(actual or {})):
                    e, a = expected.get(step), (actual or {}).get(step)
                    if e != a:
                        print(f"    {step}: redis {json.dumps(e)}  hmdb {json.dumps(a)}")
        # The expectations are Redis' own; these say the run exercised what it claims.
        nr = from_hmdb["node_clients.js"]["results"]
        current = nr["node-redis-current RESP3 (default), AUTH default, SETNAME"]
        checks = [
            (current.get("protocol") == "3", "node-redis (current) did not speak RESP3 to hmdb"),
            (nr["node-redis-4, AUTH default, SETNAME"].get("protocol") == "2", "node-redis 4 did not speak RESP2"),
            (current.get("hgetall") == {"f1": "a", "f2": "b"}, "node-redis (current) HGETALL"),
            (current.get("getname") == "nr-current", "HELLO 3 AUTH default ... SETNAME did not name the client"),
            (nr["ioredis blocking"].get("blpop_woken") == ["blk:q", "woken"],
             "ioredis BLPOP was not woken by another connection's LPUSH"),
        ]
        for ok, what in checks:
            if not ok:
                failures += 1
                print(f"  FAILED: {what}")
        print(f"{setups} client setups, {failures} failed")
        return 1 if failures else 0
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
