"""bench/ping_wait.py — wait_ping(port): the bench scripts' bounded wait for a server on
127.0.0.1 to answer PING (300 tries, 50 ms apart), shared by p1_probe.py and p1_trace.py."""
import socket
import time


def wait_ping(port):
    for _ in range(300):
        try:
            s = socket.create_connection(("127.0.0.1", port), 0.2); s.sendall(b"PING\r\n")
            if s.recv(10).startswith(b"+PONG"): s.close(); return
        except OSError: pass
        time.sleep(0.05)
    raise RuntimeError("the server did not answer PING")
