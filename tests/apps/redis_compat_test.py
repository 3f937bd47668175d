#!/usr/bin/env python3
# tests/apps/redis_compat_test.py — runs the same commands against Redis (redis-server,
# no persistence, one database) and hmdb's kv app (durability none) and checks that every
# reply is byte-identical: the proof that kv and the shell speak Redis' exact reply formats
# and error texts, in RESP2 and in RESP3.
#
#   redis_compat_test.py <hmdb binary> [--requirepass PASSWORD] [commands file ...]
#
# With --requirepass both servers are started with that password (the files then begin
# unauthenticated: redis_compat_auth.txt).
#
# Every file runs twice, each time on fresh connections to both servers: once in RESP2, and
# once in RESP3 (both connections first send HELLO 3). Default files: the kv commands
# (redis_compat_commands.txt) and the handshake (redis_compat_handshake.txt). A line is one
# command, words split on spaces ($PROTO stands for the pass's protocol, 2 or 3), "#"
# starts a comment; the word "" stands for the empty string; a line may start with a
# directive:
#
#   @shape CMD ...     the replies' shapes must match (types, aggregate sizes, map keys) but
#                      not their scalar values (HELLO's server name and version, client ids)
#   @unordered CMD ... an aggregate in no specified order (HGETALL, SMEMBERS): compared as a
#                      multiset of its elements (a map's as pairs)
#   @scan CMD ...      a SCAN-family reply [cursor, elements]: the cursor byte for byte, the
#                      elements as a multiset (Redis' order is its table's)
#   @scanpairs CMD ... the same, the elements taken as pairs (HSCAN, ZSCAN: field, value)
#   @since 7.2 <reply> | CMD ...   a command the Redis under test may predate: compared with
#                      Redis when it is 7.2 or newer, else hmdb's reply must be <reply> (RESP
#                      with \r\n written as \r\n), Redis 7.2's reply read from its source
#   @2 CMD ...         sent on a second connection to each server (WATCH is about other
#                      clients' changes), compared byte for byte; may precede another directive
#   @frames N CMD ...  the command answers N frames (SUBSCRIBE a b: one confirmation each),
#                      read and compared together
#   !sleep <ms>        lets time pass (a key expires); not a command
#   !read <client> <n> reads n frames that client was sent without asking (pub/sub
#                      messages), compared byte for byte; not a command
#   !until <client> <w> the same, up to and including the first frame whose last element
#                      is the bulk string <w> (a marker PUBLISHed after what is compared)
#
# Exits 77 (ctest: skipped) when redis-server is not installed. Starts both servers on
# free loopback ports and stops exactly those processes at the end.
import os
import re
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
# Frames "!until" reads at most before giving up on its marker.
MAX_FRAMES_UNTIL = 1000
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_FILES = [os.path.join(HERE, "redis_compat_commands.txt"), os.path.join(HERE, "redis_compat_handshake.txt"),
                 os.path.join(HERE, "redis_compat_transactions.txt"), os.path.join(HERE, "redis_compat_pubsub.txt"),
                 os.path.join(HERE, "redis_compat_scan.txt"), os.path.join(HERE, "redis_compat_strings.txt"),
                 os.path.join(HERE, "redis_compat_hashes_sets.txt"),
                 os.path.join(HERE, "redis_compat_lists.txt"), os.path.join(HERE, "redis_compat_zsets.txt"),
                 os.path.join(HERE, "redis_compat_latency.txt")]


sys.path.insert(0, os.path.join(HERE, "..", "system"))
from harness import free_port  # noqa: E402  (never hands out one port twice)


def connect(port, proc, deadline):
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT_S)
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
    """Returns (raw bytes, value) of one RESP2 or RESP3 reply. A value is (type, payload):
    payload is bytes for simple types, a list of values for aggregates (a map's or an
    attribute's as a list of (key, value) pairs), None for a null."""
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise SystemExit(f"connection closed or bad line: {line!r}")
    kind, body = line[:1], line[1:-2]
    if kind in (b"+", b"-", b":", b",", b"#", b"(", b"_"):
        return line, (kind, body)
    if kind in (b"$", b"=", b"!"):
        n = int(body)
        if n < 0:
            return line, (kind, None)
        data = f.read(n + 2)
        return line + data, (kind, data[:-2])
    if kind in (b"*", b"~", b">", b"%", b"|"):
        n = int(body)
        if n < 0:
            return line, (kind, None)
        raw, items = line, []
        for _ in range(n):
            if kind in (b"%", b"|"):
                kr, k = read_reply(f)
                vr, v = read_reply(f)
                raw += kr + vr
                items.append((k, v))
            else:
                r, v = read_reply(f)
                raw += r
                items.append(v)
        if kind == b"|":  # an attribute precedes the reply it describes
            r, v = read_reply(f)
            return raw + r, (kind, (items, v))
        return raw, (kind, items)
    raise SystemExit(f"unexpected reply line {line!r}")


def shape(value, is_key=False):
    kind, payload = value
    if payload is None or kind in (b"-", b"_", b"#"):
        return value if kind != b"-" else (kind, payload.split(b" ")[0])  # an error's code
    if kind == b"%":
        return (kind, sorted((repr(shape(k, True)), repr(shape(v))) for k, v in payload))
    if kind in (b"*", b"~", b">"):
        return (kind, [shape(v) for v in payload])
    return value if is_key else (kind, None)


def unordered(value):
    kind, payload = value
    if kind in (b"*", b"~") and payload is not None:
        return (kind, sorted(repr(v) for v in payload))
    if kind == b"%":
        return (kind, sorted(repr(p) for p in payload))
    return value


def scan_reply(value, pairs):
    """A [cursor, elements] reply with its elements sorted (as pairs if pairs), or the value
    itself if it is not one (an error)."""
    kind, payload = value
    if kind != b"*" or payload is None or len(payload) != 2 or payload[1][0] != b"*":
        return value
    elements = [repr(v) for v in payload[1][1]]
    if pairs:
        elements = [elements[i] + elements[i + 1] for i in range(0, len(elements), 2)]
    return (kind, [payload[0], sorted(elements)])


def load(path):
    lines = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            mode, expected, client, frames = "bytes", None, 1, 1
            if line.startswith("!sleep "):
                lines.append((f"{os.path.basename(path)}:{n}", line.split(), "sleep", 1, 1))
                continue
            if line.startswith("!read "):
                _, who, count = line.split()
                lines.append((f"{os.path.basename(path)}:{n}", [], "bytes", int(who), int(count)))
                continue
            if line.startswith("!until "):
                _, who, marker = line.split()
                lines.append((f"{os.path.basename(path)}:{n}", [], "bytes", int(who), marker))
                continue
            if line.startswith("@2 "):
                client, line = 2, line[3:].strip()
            if line.startswith("@frames "):
                _, count, line = line.split(" ", 2)
                frames = int(count)
            elif line.startswith("@"):
                directive, _, rest = line.partition(" ")
                if directive == "@shape":
                    mode = "shape"
                elif directive == "@unordered":
                    mode = "unordered"
                elif directive in ("@scan", "@scanpairs"):
                    mode = directive[1:]
                elif directive == "@since":
                    version, _, rest = rest.partition(" ")
                    expected, _, rest = rest.partition(" | ")
                    mode = ("since", tuple(int(x) for x in version.split(".")), expected.replace("\\r\\n", "\r\n").encode())
                else:
                    raise SystemExit(f"{path}:{n}: unknown directive {directive}")
                line = rest.strip()
            words = ["" if w == '""' else w for w in line.split()]
            lines.append((f"{os.path.basename(path)}:{n}", words, mode, client, frames))
    return lines


class Servers:
    """A redis-server (no persistence, one database) and an hmdb kv node (durability none) on
    free loopback ports, in a temporary directory; exactly these two processes are stopped and
    the directory removed on exit. procs is [redis, hmdb]; deadline bounds their start."""

    def __init__(self, redis, hmdb, password=()):
        self.redis, self.hmdb, self.password = redis, hmdb, list(password)

    def __enter__(self):
        self.work = tempfile.mkdtemp(prefix="hmdb-compat-")
        self.redis_port, self.hmdb_port = free_port(), free_port()
        self.procs = []
        try:
            self.procs.append(subprocess.Popen(
                [self.redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--databases", "1", "--dir", self.work] + self.password,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.procs.append(subprocess.Popen(
                [self.hmdb, "serve", "--port", str(self.hmdb_port), "--dir", os.path.join(self.work, "hmdb"),
                 "--durability", "none"] + self.password, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        self.deadline = time.monotonic() + READY_TIMEOUT_S
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.work, ignore_errors=True)
        return False


def redis_version(binary):
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else (0, 0, 0)


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: redis_compat_test.py <hmdb binary> [commands file ...]")
    hmdb = sys.argv[1]
    files = sys.argv[2:]
    password = []
    if files[:1] == ["--requirepass"]:
        password = ["--requirepass", files[1]]
        files = files[2:]
    files = files or DEFAULT_FILES
    redis = shutil.which("redis-server")
    if not redis:
        print("SKIP: redis-server is not installed (apt-get install redis-server)")
        return 77
    version = redis_version(redis)
    scripts = [(path, load(path)) for path in files]

    with Servers(redis, hmdb, password) as servers:
        redis_port, hmdb_port, procs, deadline = servers.redis_port, servers.hmdb_port, servers.procs, servers.deadline
        counts = {}
        differences = 0
        pinned = 0
        for protocol in (2, 3):
            for path, lines in scripts:
                # connections[client] = [(redis socket, file), (hmdb socket, file)]
                connections = {}

                def connection(client):
                    if client not in connections:
                        socks = [connect(redis_port, procs[0], deadline), connect(hmdb_port, procs[1], deadline)]
                        connections[client] = [(s, s.makefile("rb")) for s in socks]
                        if protocol == 3 and client != 1:  # client 1's HELLO 3 is compared below
                            for s, f in connections[client]:
                                s.sendall(encode(["HELLO", "3"]))
                                read_reply(f)
                    return connections[client]

                if protocol == 3:
                    lines = [("(switch)", ["HELLO", "3"], "shape", 1, 1)] + lines
                for where, words, mode, client, frames in lines:
                    if mode == "sleep":
                        time.sleep(int(words[1]) / 1000)  # time passing is what is tested (expiry)
                        continue
                    words = [str(protocol) if w == "$PROTO" else w for w in words]
                    replies = []
                    for s, f in connection(client):
                        if words:  # "!read": nothing is sent, frames come by themselves
                            s.sendall(encode(words))
                        raw, values = b"", []
                        while len(values) < (frames if isinstance(frames, int) else MAX_FRAMES_UNTIL):
                            r, v = read_reply(f)
                            raw += r
                            values.append(v)
                            if isinstance(frames, str) and v[1] and v[1][-1] == (b"$", frames.encode()):
                                break
                        replies.append((raw, values[0] if frames == 1 else (b"frames", values)))
                    (redis_raw, redis_value), (hmdb_raw, hmdb_value) = replies
                    if not words:
                        words = ["(read)", str(frames)]
                    if mode == "shape":
                        same = shape(redis_value) == shape(hmdb_value)
                    elif mode == "unordered":
                        same = unordered(redis_value) == unordered(hmdb_value)
                    elif mode in ("scan", "scanpairs"):
                        same = scan_reply(redis_value, mode == "scanpairs") == scan_reply(hmdb_value, mode == "scanpairs")
                    elif isinstance(mode, tuple) and version < mode[1]:
                        pinned += 1
                        same = hmdb_raw == mode[2]
                        redis_raw = mode[2]  # what the report shows as expected
                    else:
                        same = redis_raw == hmdb_raw
                    counts[protocol] = counts.get(protocol, 0) + 1
                    if not same:
                        differences += 1
                        print(f"DIFFERENT (RESP{protocol}, {where}): {' '.join(words)}\n"
                              f"  redis: {redis_raw!r}\n  hmdb:  {hmdb_raw!r}")
                # Every frame sent must have been read by its line: a PING now must be answered
                # by the very next frame (a file that reads too few frames would otherwise
                # compare each reply with the one before it, equally on both servers).
                for client, pair in connections.items():
                    for (s, f), name in zip(pair, ("redis", "hmdb")):
                        s.sendall(encode(["PING", "aligned"]))
                        _, value = read_reply(f)
                        if value not in ((b"$", b"aligned"), (b"*", [(b"$", b"pong"), (b"$", b"aligned")])):
                            differences += 1
                            print(f"MISALIGNED (RESP{protocol}, {os.path.basename(path)}, client {client}, {name}): "
                                  f"a frame no line read: {value!r}")
                        s.close()
        total = sum(counts.values())
        print(f"redis-server {'.'.join(map(str, version))}: {counts.get(2, 0)} commands in RESP2, "
              f"{counts.get(3, 0)} in RESP3; {pinned} checked against Redis 7.2's reply (newer than this "
              f"redis-server); {differences} different replies of {total}")
        return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
