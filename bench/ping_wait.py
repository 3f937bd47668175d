"""bench/ping_wait.py — what the probe scripts (p1_probe.py, p1_trace.py, p1_syscalls.py,
p32_probe.py) share about a server on 127.0.0.1: wait_ping(port), the bounded wait for it to
answer PING (300 tries, 50 ms apart), and info_all(port), its `INFO all` as a dict."""
import socket
import subprocess
import time

INFO_TIMEOUT_S = 30  # one redis-cli INFO call


def wait_ping(port):
    for _ in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port), 0.2); s.sendall(b"PING\r\n")
            if s.recv(10).startswith(b"+PONG"): s.close(); return
        except OSError: pass
        time.sleep(0.05)
    raise RuntimeError("the server did not answer PING")


def info_all(port):
    """`redis-cli -p PORT info all` as {field: value} (every line with a colon)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "info", "all"], capture_output=True, text=True,
                         timeout=INFO_TIMEOUT_S).stdout
    d = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            d[k] = v.strip()
    return d
