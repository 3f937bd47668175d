#!/usr/bin/env python3
"""Fault test: disk errors and damaged files must stop the server cleanly, and never cost an
acknowledged write.

Cases (--case, default all):
  fsync_eio       The server runs under strace, which makes fdatasync/fsync fail with EIO
                  from the K-th call on (K from the seed) while clients write. The server
                  must exit with a non-zero code and a message about the I/O error. From
                  strace's record of every write and sync on the files of the data
                  directory we check that each acknowledged write had been written and
                  then covered by a *successful* sync of that file: nothing was
                  acknowledged on the strength of the failed sync. Restarted without
                  strace, it must hold every acknowledged write.
  write_eio       Same, but write/pwrite to the log files fail (strace -P limits the
                  injection to those files, so the server can still print its message).
  enospc          The data directory is a tiny tmpfs. Clients write until the disk is
                  full: the server must exit non-zero naming the lack of space. The
                  directory is copied to a normal disk, the server restarted there, and
                  every acknowledged write checked. Skipped (reason printed) if mounting
                  a tmpfs is not permitted; so are the EIO cases if strace cannot trace.
                  Exit code 77 when every requested case was skipped.
  corrupt_middle  A byte in the middle of a log segment of a stopped server is flipped:
                  the restart must fail with a non-zero code and a message naming the file
                  and the offset, and must leave the files as they were. With the byte
                  restored, it must start and hold every acknowledged write.
  corrupt_snapshot  (hmdb only) After a SNAPSHOT command and more writes, a byte in the
                  middle of the newest snapshot file is flipped: the restart must fail
                  naming the file and an offset, leave the files as they were, and with the
                  byte restored start with every write.
  torn_tail       The last few bytes of the last segment are cut off (a torn write): the
                  restart must succeed, say that it cut a torn tail, and hold every write
                  acknowledged before the last one; a further round of writes, kill -9
                  and restart must work on the repaired log.

Usage: fault_test.py [--case NAME] [--seed S] [--kind hmdb|redis] SERVER_BINARY
"""

import argparse
import bisect
import glob
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time

import harness
import resp

CASES = ["fsync_eio", "write_eio", "enospc", "corrupt_middle", "corrupt_snapshot", "torn_tail"]

CONNECTIONS = 3
# Exit code when every requested case was skipped (ctest's SKIP_RETURN_CODE shows it as
# "Skipped", not as a pass).
SKIP_EXIT_CODE = 77
# write_eio first starts the server without faults to create its log files; these writes
# (keys f:<PRIMING_CONN>:<n>, a connection number the load never uses) make them non-empty.
PRIMING_WRITES = 10
PRIMING_CONN = 99
MAX_PIPELINE = 16
# A faulted server must stop within this time once its clients keep writing.
FAULT_DEADLINE_S = 60.0
CLIENT_TIMEOUT_S = 20.0
RECONNECT_PAUSE_S = 0.01
# The failing sync/write is drawn from this range of calls (counted per thread by strace).
# Low values also exercise failures during startup.
INJECT_AFTER_MIN = 2
INJECT_AFTER_MAX = 40
# strace prints at most this many bytes of each written buffer; a log write larger than
# this would hide keys from the coverage check (hmdb batches are at most 8 MiB).
STRACE_STRING_BYTES = 16 << 20
STRACE_SYSCALLS = "write,writev,pwrite64,pwritev,pwritev2,fdatasync,fsync,sync_file_range"
# tmpfs for the full-disk case: small enough to fill in seconds, big enough for the
# server's startup files.
DEFAULT_TMPFS_SIZE = "8m"
ENOSPC_VALUE_BYTES = 1000
# Writes for the corruption cases, and bytes cut off for a torn tail (drawn from 1..this).
CORRUPTION_WRITES = 2000
MAX_TORN_BYTES = 12
# A corruption report's offset must lie in the record holding the flipped byte, which
# starts at most this far before it (a record is a batch of at most 8 MiB).
MAX_RECORD_BYTES = 9 << 20

EIO_MESSAGE = re.compile(r"input/output error|\bEIO\b|I/O error", re.I)
ENOSPC_MESSAGE = {
    "hmdb": re.compile(r"no space left|ENOSPC|no space", re.I),
    # Redis reports a short AOF write without strerror, so accept its generic message.
    "redis": re.compile(r"no space left|ENOSPC|AOF write error", re.I),
}
TORN_TAIL_MESSAGE = {
    "hmdb": re.compile(r"torn|truncat|cut", re.I),
    "redis": re.compile(r"short read|truncat", re.I),
}


def value_of(conn, n, size):
    """Value of key f:<conn>:<n>; the "fv:<conn>:<n>:" prefix makes it findable in a trace."""
    head = b"fv:%d:%d:" % (conn, n)
    return head + b"x" * max(0, size - len(head))


# ---- load ----------------------------------------------------------------------------


class Load:
    """Client connections writing unique SETs until stopped or the server dies. Records
    what was sent and what was acknowledged. A lost connection is reopened while the server
    runs (a server may drop a client whose reply it failed to write)."""

    def __init__(self, server, rng, value_bytes=100, max_writes=None):
        self.server = server
        self.value_bytes = value_bytes
        self.max_writes = max_writes  # per connection
        self.sent = [0] * CONNECTIONS  # keys f:c:0 .. f:c:sent-1 were sent
        self.acked = [set() for _ in range(CONNECTIONS)]
        self.problems = []
        self.stop = False
        self.rngs = [random.Random(rng.random()) for _ in range(CONNECTIONS)]
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True)
                        for c in range(CONNECTIONS)]

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop = True
        for t in self.threads:
            t.join(CLIENT_TIMEOUT_S + 5)
            if t.is_alive():
                raise harness.TestFailure("a load thread did not finish")

    def total_acked(self):
        return sum(len(a) for a in self.acked)

    def _run(self, c):
        try:
            self._write(c)
        except resp.ProtocolError as e:
            self.problems.append("invalid RESP from the server: %s" % e)

    def _write(self, c):
        rng = self.rngs[c]
        while not self.stop and self.server.running():
            try:
                client = self.server.client(timeout=CLIENT_TIMEOUT_S)
            except resp.ConnectionLost:
                # The loop condition notices a dead server; the pause only keeps a server
                # that refuses connections from turning this into a busy loop.
                time.sleep(RECONNECT_PAUSE_S)
                continue
            with client:
                try:
                    while not self.stop:
                        if self.max_writes is not None and self.sent[c] >= self.max_writes:
                            return
                        first = self.sent[c]
                        count = rng.randint(1, MAX_PIPELINE)
                        if self.max_writes is not None:
                            count = min(count, self.max_writes - first)
                        self.sent[c] += count
                        client.send([("SET", "f:%d:%d" % (c, n), value_of(c, n, self.value_bytes))
                                     for n in range(first, first + count)])
                        for n in range(first, first + count):
                            reply = client.read_reply()
                            if reply == "OK":
                                self.acked[c].add(n)
                            elif isinstance(reply, resp.RespError):
                                # An error reply is not an acknowledgement; the write may or
                                # may not be durable. A server that refuses writes after a
                                # disk error is within its rights.
                                continue
                            else:
                                self.problems.append("SET f:%d:%d answered %r" % (c, n, reply))
                                return
                except resp.ConnectionLost:
                    continue


def write_sequential(server, count, value_bytes=100, conn=0):
    """Writes f:<conn>:0..count-1 with one pipelined connection, all acknowledged."""
    with server.client(timeout=CLIENT_TIMEOUT_S) as client:
        for lo in range(0, count, MAX_PIPELINE):
            hi = min(lo + MAX_PIPELINE, count)
            replies = client.pipeline([("SET", "f:%d:%d" % (conn, n), value_of(conn, n, value_bytes))
                                       for n in range(lo, hi)])
            for n, reply in zip(range(lo, hi), replies):
                if reply != "OK":
                    raise harness.TestFailure("SET f:%d:%d answered %r" % (conn, n, reply))


def check_keys(server, expected, value_bytes, context):
    """expected: {conn: iterable of n that must be present}. Returns problem strings."""
    problems = []
    with server.client(timeout=CLIENT_TIMEOUT_S) as client:
        for c, ns in expected.items():
            ns = sorted(ns)
            for lo in range(0, len(ns), 500):
                part = ns[lo:lo + 500]
                got = client.call("MGET", *["f:%d:%d" % (c, n) for n in part])
                if not isinstance(got, list):
                    problems.append("MGET answered %r" % (got,))
                    return problems
                for n, v in zip(part, got):
                    if v is None:
                        problems.append("%s: acknowledged key f:%d:%d is missing" % (context, c, n))
                    elif v != value_of(c, n, value_bytes):
                        problems.append("%s: key f:%d:%d has value %r" % (context, c, n, v[:40]))
    return problems


# ---- data directory ------------------------------------------------------------------


def log_files(data_dir, kind):
    """The command log's files, oldest first."""
    if kind == "redis":
        return sorted(glob.glob(os.path.join(data_dir, "appendonlydir", "*.incr.aof")),
                      key=lambda p: int(re.search(r"\.(\d+)\.incr\.aof$", p).group(1)))
    return sorted(glob.glob(os.path.join(data_dir, "log-*.hmlog")))


def dir_digest(data_dir):
    out = {}
    for root, _, files in os.walk(data_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, data_dir)] = hashlib.sha256(f.read()).hexdigest()
    return out


# ---- strace ---------------------------------------------------------------------------


def strace_wrapper(trace_path, inject, paths=()):
    cmd = ["strace", "-f", "-qq", "-e", "signal=none", "-o", trace_path, "-y", "-xx",
           "-s", str(STRACE_STRING_BYTES), "-e", "trace=" + STRACE_SYSCALLS, "-e", "inject=" + inject]
    for p in paths:
        cmd += ["-P", p]
    return cmd


_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_FD_PATH = re.compile(r"^\s*\d+<([^>]*)>")
_RESULT = re.compile(r"\)\s+=\s+(-?\d+)(.*)$")
_ALL_HEX = re.compile(r"^(?:\\x[0-9a-f]{2})*$")
_HEX_STRING = re.compile(r'"((?:\\x[0-9a-f]{2})*)"')


def _unescape(text):
    """Decodes strace -xx output: every byte as \\xNN (plain characters kept as they are)."""
    if _ALL_HEX.match(text):
        return bytes.fromhex(text.replace("\\x", ""))  # the usual case, and fast
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), text).encode("latin-1")


class Trace:
    """The writes and syncs strace saw on files under a directory, in the order they
    happened (strace serialises the events of all threads)."""

    def __init__(self, trace_path, data_dir):
        self.writes = []  # (event number at completion, path, bytes written)
        self.syncs = {}  # path -> sorted event numbers at which a successful sync started
        self.failed_syncs = 0
        self.failed_writes = 0
        pending = {}
        data_dir = os.path.realpath(data_dir)
        with open(trace_path, "r", errors="replace") as f:
            for event, line in enumerate(f):
                m = _LINE.match(line.rstrip("\n"))
                if not m:
                    continue
                pid, body = m.groups()
                resumed = _RESUMED.match(body)
                if resumed:
                    if pid not in pending:
                        continue
                    name, args, start = pending.pop(pid)
                    args += resumed.group(2)
                else:
                    call = _CALL.match(body)
                    if not call:
                        continue  # "+++ exited +++" and the like
                    name, args = call.groups()
                    start = event
                    if args.endswith("<unfinished ...>"):
                        pending[pid] = (name, args[:-len("<unfinished ...>")], start)
                        continue
                fd = _FD_PATH.match(args)
                result = _RESULT.search(args)
                if not fd or not result:
                    continue
                path = _unescape(fd.group(1)).decode("utf-8", "replace")  # -xx escapes paths too
                if not path.startswith(data_dir + "/"):
                    continue
                ret = int(result.group(1))
                ok = ret >= 0 and "INJECTED" not in result.group(2)
                if name in ("fdatasync", "fsync", "sync_file_range"):
                    if ok and name != "sync_file_range":  # sync_file_range syncs no metadata
                        self.syncs.setdefault(path, []).append(start)
                    elif not ok:
                        self.failed_syncs += 1
                else:
                    if not ok:
                        self.failed_writes += 1
                        continue
                    data = b"".join(_unescape(s) for s in _HEX_STRING.findall(args))
                    self.writes.append((event, path, data[:ret]))

    def durable_keys(self, value_bytes):
        """{(conn, n)} whose full value was in a write followed by a successful sync of that
        file, and {(conn, n)} seen written at all."""
        durable, written = set(), set()
        for event, path, data in self.writes:
            syncs = self.syncs.get(path, [])
            synced = bisect.bisect_right(syncs, event) < len(syncs)
            for m in re.finditer(rb"fv:(\d+):(\d+):", data):
                key = (int(m.group(1)), int(m.group(2)))
                value = value_of(key[0], key[1], value_bytes)
                if data[m.start():m.start() + len(value)] != value:
                    continue  # cut by a short write or split across two writes
                written.add(key)
                if synced:
                    durable.add(key)
        return durable, written


# ---- cases ----------------------------------------------------------------------------


def server_output(server, work):
    """The server's output with our work directory's path replaced by "<work>": a message
    check must not match a path we chose (e.g. ".../hmdb-fault-torn_tail-.../data")."""
    return server.log().replace(os.path.realpath(work), "<work>").replace(work, "<work>")


def expect_fault_exit(server, code, message_re, what, work):
    log = server_output(server, work)
    if code is None:
        raise harness.TestFailure("%s: the server did not stop\n%s" % (what, server.log_tail()))
    if code < 0:
        raise harness.TestFailure("%s: the server was killed by signal %d (a crash, not a clean stop)\n%s"
                                  % (what, -code, server.log_tail()))
    if code == 0:
        raise harness.TestFailure("%s: the server exited with code 0\n%s" % (what, server.log_tail()))
    m = message_re.search(log)
    if not m:
        raise harness.TestFailure("%s: exit code %d but no message matching /%s/\n%s"
                                  % (what, code, message_re.pattern, server.log_tail()))
    line = log[log.rfind("\n", 0, m.start()) + 1:log.find("\n", m.end())]
    return line.strip()


def run_until_exit(server, load):
    """Keeps the load running until the server exits (or the deadline). Returns the code."""
    deadline = time.monotonic() + FAULT_DEADLINE_S
    try:
        code = server.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        code = None
    load.join()
    if code is None:
        server.kill()
    harness._live_servers.discard(server)
    return code


def case_eio(ctx, target):
    """target: 'fsync' or 'write'."""
    rng, server, work = ctx.rng, ctx.server, ctx.work
    inject_after = rng.randint(INJECT_AFTER_MIN, INJECT_AFTER_MAX)
    paths = ()
    if target == "fsync":
        inject = "fdatasync,fsync:error=EIO:when=%d+" % inject_after
    else:
        # Failing every write(2) would also silence the server's own log; -P limits tracing
        # and injection to the log files, which exist after a first start. (A segment the
        # server creates under a new name later would escape: the check says so.)
        server.start()
        write_sequential(server, PRIMING_WRITES, conn=PRIMING_CONN)
        server.kill()
        ctx.extra_keys = PRIMING_WRITES
        paths = log_files(server.data_dir, ctx.kind)
        if not paths:
            raise harness.TestFailure("no log files found in %s" % server.data_dir)
        inject = "write,writev,pwrite64,pwritev,pwritev2:error=EIO:when=%d+" % inject_after
    trace_path = os.path.join(work, "strace-%s.txt" % target)
    ctx.log("%s EIO from call %d on (per thread), traced to %s" % (target, inject_after, trace_path))
    load = Load(server, rng)
    try:
        server.start(wrapper=strace_wrapper(trace_path, inject, paths))
        load.start()
        code = run_until_exit(server, load)
    except harness.ServerExited as e:
        code = e.returncode  # failed during startup: nothing can have been acknowledged
    line = expect_fault_exit(server, code, EIO_MESSAGE, "%s EIO" % target, work)
    if load.problems:
        raise harness.TestFailure("bad replies: %s" % load.problems[:5])
    trace = Trace(trace_path, server.data_dir)
    acked = {(c, n) for c in range(CONNECTIONS) for n in load.acked[c]}
    durable, written = trace.durable_keys(load.value_bytes)
    if acked and not trace.writes:
        raise harness.TestFailure("strace saw no writes to files under %s; cannot check (does the server "
                                  "write its log with write/pwrite/writev?)" % server.data_dir)
    not_written = sorted(acked - written)
    not_synced = sorted(acked & written - durable)
    if not_written or not_synced:
        raise harness.TestFailure(
            "%d acknowledged writes were never seen written to a traced file (e.g. %s), and %d were written "
            "but acknowledged without a successful sync of their file after the write (e.g. %s); "
            "failed syncs: %d, failed writes: %d, trace: %s"
            % (len(not_written), ["f:%d:%d" % k for k in not_written[:5]], len(not_synced),
               ["f:%d:%d" % k for k in not_synced[:5]], trace.failed_syncs, trace.failed_writes, trace_path))
    if not (trace.failed_syncs if target == "fsync" else trace.failed_writes):
        raise harness.TestFailure("the injected %s failure never happened, yet the server stopped (code %d)"
                                  % (target, code))
    ctx.log("server stopped: exit code %d, %r; %d writes acknowledged, each covered by a successful sync "
            "(%d failed syncs, %d failed writes seen)" % (code, line, len(acked), trace.failed_syncs,
                                                          trace.failed_writes))
    restart_and_check(ctx, server, load)


def restart_and_check(ctx, server, load):
    try:
        server.start()
    except harness.ServerExited as e:
        raise harness.TestFailure("restart after the fault failed (code %d)\n%s" % (e.returncode, server.log_tail()))
    problems = check_keys(server, {c: load.acked[c] for c in range(CONNECTIONS)}, load.value_bytes,
                          "after restart")
    if problems:
        raise harness.TestFailure("%d acknowledged writes lost:\n  %s" % (len(problems), "\n  ".join(problems[:20])))
    with server.client() as client:
        dbsize = client.call("DBSIZE")
    sent = sum(load.sent) + getattr(ctx, "extra_keys", 0)
    if not isinstance(dbsize, int) or dbsize > sent:
        raise harness.TestFailure("DBSIZE %r, but only %d keys were sent" % (dbsize, sent))
    code = server.terminate()
    if code != 0:
        raise harness.TestFailure("SIGTERM after the restart: exit code %d\n%s" % (code, server.log_tail()))
    ctx.log("restarted without the fault: all %d acknowledged writes present (%d of %d sent keys exist)"
            % (load.total_acked(), dbsize, sent))


def case_enospc(ctx):
    mount_point = os.path.join(ctx.work, "tmpfs")
    os.mkdir(mount_point)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % ctx.args.tmpfs_size, "tmpfs", mount_point],
                            capture_output=True, text=True)
    if result.returncode != 0:
        ctx.log("SKIPPED enospc: cannot mount a tmpfs (%s)" % (result.stderr.strip() or result.returncode))
        return "skipped"
    server = ctx.server
    try:
        data_dir = os.path.join(mount_point, "data")
        os.mkdir(data_dir)
        server.data_dir = data_dir
        load = Load(server, ctx.rng, value_bytes=ENOSPC_VALUE_BYTES)
        try:
            server.start()
        except harness.ServerExited as e:
            raise harness.TestFailure("the server could not start on a %s tmpfs (code %d); a smaller "
                                      "disk needs smaller preallocation\n%s"
                                      % (ctx.args.tmpfs_size, e.returncode, server.log_tail()))
        load.start()
        code = run_until_exit(server, load)
        line = expect_fault_exit(server, code, ENOSPC_MESSAGE[ctx.kind], "full disk", ctx.work)
        if load.problems:
            raise harness.TestFailure("bad replies: %s" % load.problems[:5])
        if load.total_acked() == 0:
            raise harness.TestFailure("no write was acknowledged before the disk was full")
        ctx.log("server stopped on a full %s disk: exit code %d, %r; %d writes acknowledged"
                % (ctx.args.tmpfs_size, code, line, load.total_acked()))
        copy = os.path.join(ctx.work, "data-copy")
        shutil.copytree(data_dir, copy, symlinks=True)
    finally:
        server.kill()
        subprocess.run(["umount", mount_point], check=False)
    server.data_dir = copy
    restart_and_check(ctx, server, load)


def case_corrupt_middle(ctx):
    server = ctx.server
    server.start()
    write_sequential(server, CORRUPTION_WRITES)
    server.kill()  # kill -9: no shutdown work (e.g. a snapshot) may hide the log
    files = log_files(server.data_dir, ctx.kind)
    if not files:
        raise harness.TestFailure("no log files found in %s" % server.data_dir)
    path = max(files, key=harness.written_size)
    size = harness.written_size(path)  # an hmdb segment's preallocated zeros hold no record
    offset = size // 2 + ctx.rng.randrange(-size // 8, size // 8 + 1)
    with open(path, "r+b") as f:
        f.seek(offset)
        original = f.read(1)
        f.seek(offset)
        f.write(bytes([original[0] ^ 0x5A]))
    ctx.log("flipped byte %d of %s (%d bytes)" % (offset, os.path.basename(path), size))
    before = dir_digest(server.data_dir)
    try:
        server.start()
        started = True
    except harness.ServerExited as e:
        started = False
        code = e.returncode
    if started:
        server.kill()
        raise harness.TestFailure("the server started on a log with a damaged record in the middle "
                                  "(byte %d of %s)\n%s" % (offset, path, server.log_tail()))
    log = server_output(server, ctx.work)
    if code <= 0:
        raise harness.TestFailure("refusal to start must be a non-zero exit, got %d\n%s" % (code, server.log_tail()))
    name = os.path.basename(path)
    if name not in log:
        raise harness.TestFailure("the message does not name the file %s\n%s" % (name, server.log_tail()))
    offsets = [int(x) for x in re.findall(r"offset\D{0,12}?(\d+)", log, re.I)]
    if not any(offset - MAX_RECORD_BYTES <= o <= offset for o in offsets):
        raise harness.TestFailure("the message does not give an offset at or before the damaged byte %d "
                                  "(offsets found: %s)\n%s" % (offset, offsets, server.log_tail()))
    after = dir_digest(server.data_dir)
    changed = [p for p in before if after.get(p) != before[p]]
    if changed:
        raise harness.TestFailure("the refused start changed or removed files: %s" % changed)
    line = next(l for l in log.splitlines() if name in l)
    ctx.log("refused to start: exit code %d, %r" % (code, line.strip()))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(original)
    server.start()
    problems = check_keys(server, {0: range(CORRUPTION_WRITES)}, 100, "with the byte restored")
    if problems:
        raise harness.TestFailure("\n  ".join(problems[:20]))
    server.terminate()
    ctx.log("with the byte restored it starts and holds all %d writes" % CORRUPTION_WRITES)


def case_corrupt_snapshot(ctx):
    if ctx.kind != "hmdb":
        ctx.log("SKIPPED corrupt_snapshot: only hmdb has a SNAPSHOT command and snapshot files")
        return "skipped"
    server = ctx.server
    server.start()
    write_sequential(server, CORRUPTION_WRITES)
    with server.client(timeout=CLIENT_TIMEOUT_S) as client:
        reply = client.call("SNAPSHOT")  # answers once the snapshot is durable
    if isinstance(reply, resp.RespError):
        raise harness.TestFailure("SNAPSHOT answered %r" % reply)
    write_sequential(server, CORRUPTION_WRITES // 10, conn=1)  # the log after the snapshot
    server.kill()
    snapshots = sorted(glob.glob(os.path.join(server.data_dir, "snap-*.hmsnap")))
    if not snapshots:
        raise harness.TestFailure("SNAPSHOT answered %r but no snap-*.hmsnap is in %s" % (reply, server.data_dir))
    path = snapshots[-1]
    size = os.path.getsize(path)
    offset = size // 2 + ctx.rng.randrange(-size // 8, size // 8 + 1)
    with open(path, "r+b") as f:
        f.seek(offset)
        original = f.read(1)
        f.seek(offset)
        f.write(bytes([original[0] ^ 0x5A]))
    ctx.log("flipped byte %d of %s (%d bytes)" % (offset, os.path.basename(path), size))
    before = dir_digest(server.data_dir)
    try:
        server.start()
        server.kill()
        raise harness.TestFailure("the server started on a damaged snapshot (byte %d of %s)\n%s"
                                  % (offset, path, server.log_tail()))
    except harness.ServerExited as e:
        code = e.returncode
    log = server_output(server, ctx.work)
    name = os.path.basename(path)
    if code <= 0 or name not in log or not re.search(r"offset\D{0,12}?\d+", log, re.I):
        raise harness.TestFailure("refusal must be a non-zero exit (got %d) with a message naming %s and an "
                                  "offset\n%s" % (code, name, server.log_tail()))
    changed = [p for p in before if dir_digest(server.data_dir).get(p) != before[p]]
    if changed:
        raise harness.TestFailure("the refused start changed or removed files: %s" % changed)
    line = next(l for l in log.splitlines() if name in l)
    ctx.log("refused to start: exit code %d, %r" % (code, line.strip()))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(original)
    server.start()
    problems = check_keys(server, {0: range(CORRUPTION_WRITES), 1: range(CORRUPTION_WRITES // 10)}, 100,
                          "with the byte restored")
    if problems:
        raise harness.TestFailure("\n  ".join(problems[:20]))
    server.terminate()
    ctx.log("with the byte restored it starts and holds all %d writes" % (CORRUPTION_WRITES * 11 // 10))


def case_torn_tail(ctx):
    server = ctx.server
    server.start()
    write_sequential(server, CORRUPTION_WRITES - 1)
    write_sequential_one(server, CORRUPTION_WRITES - 1)  # the last record holds only this write
    server.kill()
    files = log_files(server.data_dir, ctx.kind)
    if not files:
        raise harness.TestFailure("no log files found in %s" % server.data_dir)
    path = files[-1]
    size = harness.written_size(path)  # an hmdb segment's preallocated zeros hold no record
    cut = ctx.rng.randint(1, MAX_TORN_BYTES)
    os.truncate(path, size - cut)
    ctx.log("cut the last %d bytes of %s (%d bytes)" % (cut, os.path.basename(path), size))
    try:
        server.start()
    except harness.ServerExited as e:
        raise harness.TestFailure("the server refused a log with a torn tail (code %d)\n%s"
                                  % (e.returncode, server.log_tail()))
    log = server_output(server, ctx.work)
    m = TORN_TAIL_MESSAGE[ctx.kind].search(log)
    if not m:
        raise harness.TestFailure("no log line about the cut tail (/%s/)\n%s"
                                  % (TORN_TAIL_MESSAGE[ctx.kind].pattern, server.log_tail()))
    line = log[log.rfind("\n", 0, m.start()) + 1:log.find("\n", m.end())].strip()
    problems = check_keys(server, {0: range(CORRUPTION_WRITES - 1)}, 100, "after the torn tail")
    with server.client() as client:
        last = client.call("GET", "f:0:%d" % (CORRUPTION_WRITES - 1))
    if last is not None and last != value_of(0, CORRUPTION_WRITES - 1, 100):
        problems.append("the last write has value %r" % last[:40])
    if problems:
        raise harness.TestFailure("\n  ".join(problems[:20]))
    ctx.log("started and cut the tail: %r; %d earlier writes present, last write %s"
            % (line, CORRUPTION_WRITES - 1, "present" if last is not None else "gone (it was in the cut record)"))
    # The repaired log must take new writes and survive another crash.
    write_sequential(server, 500, conn=1)
    server.kill()
    server.start()
    problems = check_keys(server, {0: range(CORRUPTION_WRITES - 1), 1: range(500)}, 100, "after a second crash")
    if problems:
        raise harness.TestFailure("\n  ".join(problems[:20]))
    server.terminate()
    ctx.log("500 more writes after the repair survive another kill -9")


def write_sequential_one(server, n):
    with server.client(timeout=CLIENT_TIMEOUT_S) as client:
        reply = client.call("SET", "f:0:%d" % n, value_of(0, n, 100))
        if reply != "OK":
            raise harness.TestFailure("SET f:0:%d answered %r" % (n, reply))


# ---- main -----------------------------------------------------------------------------


class Context:
    pass


def strace_unusable():
    """None if strace can trace a child here, else the reason (not installed, or ptrace
    forbidden, as in some containers)."""
    if shutil.which("strace") is None:
        return "strace is not installed"
    probe = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "strace cannot trace here: %s" % (probe.stderr.strip() or "exit code %d" % probe.returncode)
    return None


def run_case(name, args, binary, kind, seed, log):
    """Returns "ok", "skipped" or "failed"."""
    if name in ("fsync_eio", "write_eio"):
        reason = strace_unusable()
        if reason:
            log("SKIPPED %s: %s" % (name, reason))
            return "skipped"
    ctx = Context()
    ctx.args, ctx.kind, ctx.log = args, kind, log
    ctx.rng = random.Random("%d:%s" % (seed, name))
    ctx.work = harness.make_work_dir("hmdb-fault-%s-" % name)
    data_dir = os.path.join(ctx.work, "data")
    os.mkdir(data_dir)
    ctx.server = harness.Server(binary, data_dir, ctx.work, kind=kind, durability=args.durability,
                                extra_args=args.server_arg)
    log("case %s: work dir %s" % (name, ctx.work))
    try:
        if name == "fsync_eio":
            result = case_eio(ctx, "fsync")
        elif name == "write_eio":
            result = case_eio(ctx, "write")
        elif name == "enospc":
            result = case_enospc(ctx)
        elif name == "corrupt_middle":
            result = case_corrupt_middle(ctx)
        elif name == "corrupt_snapshot":
            result = case_corrupt_snapshot(ctx)
        else:
            result = case_torn_tail(ctx)
    except (harness.TestFailure, harness.ServerExited, resp.ConnectionLost, resp.ProtocolError) as e:
        ctx.server.kill()
        harness.fail("case %s: %s" % (name, e))
        print("data and logs kept in %s" % ctx.work, file=sys.stderr)
        return "failed"
    ctx.server.kill()
    if not args.keep:
        harness.remove_work_dir(ctx.work)
    result = result or "ok"
    log("case %s: %s" % (name, result.upper() if result == "skipped" else result))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary")
    parser.add_argument("--case", choices=CASES + ["all"], default="all")
    parser.add_argument("--kind", choices=["hmdb", "redis"])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--tmpfs-size", default=DEFAULT_TMPFS_SIZE)
    parser.add_argument("--durability", choices=["always", "periodic", "none"], default="always",
                        help="the server's durability mode; only 'always' promises what is checked "
                             "(the others are negative controls)")
    parser.add_argument("--server-arg", action="append", default=[])
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    seed = harness.get_seed(args.seed)
    binary = os.path.abspath(args.binary)
    kind = args.kind or harness.detect_kind(binary)
    started = time.monotonic()

    def log(msg):
        print("[%6.1fs] %s" % (time.monotonic() - started, msg), flush=True)

    log("fault test: %s (%s), seed %d" % (binary, kind, seed))
    failed, skipped = [], []
    names = CASES if args.case == "all" else [args.case]
    for name in names:
        result = run_case(name, args, binary, kind, seed, log)
        if result == "failed":
            failed.append(name)
        elif result == "skipped":
            skipped.append(name)
    if failed:
        print("fault test FAILED: %s; seed %d\nreplay: %s" % (", ".join(failed), seed, harness.replay_command(
            __file__, ["--seed", str(seed), "--kind", kind, "--durability", args.durability] + ["--server-arg=%s" % a for a in args.server_arg]
            + ["--case", failed[0] if len(failed) == 1 else "all", binary])), file=sys.stderr)
        return 1
    if len(skipped) == len(names):
        log("SKIPPED: %s (see the reasons above)" % ", ".join(skipped))
        return SKIP_EXIT_CODE
    log("PASS (%.1fs)%s" % (time.monotonic() - started, "; skipped: " + ", ".join(skipped) if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
