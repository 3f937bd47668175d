"""Shared machinery for the system tests: start/stop/kill a server process, wait until it
answers, pick ports, keep logs, and report failures with the seed that replays them.

A "server" is either hmdb (`hmdb serve ...`) or, to validate the harness itself, Redis
(`redis-server` with AOF). Redis speaks the same protocol and, with appendfsync always,
promises the same durability, so a harness that passes against Redis and fails against a
broken hmdb is testing hmdb, not itself.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import resp

HOST = "127.0.0.1"
# How long a server may take to start answering PING (recovery of a large log included).
READY_TIMEOUT_S = 60.0
# Pause between two readiness probes. It is a poll interval, not a synchronisation: the
# probe itself (a PING answered with PONG) decides when the server is ready.
READY_POLL_INTERVAL_S = 0.01
# How long a server may take to exit after SIGTERM, or after a fault made it stop.
EXIT_TIMEOUT_S = 30.0
# A free port can be taken by someone else between our probe and the server's bind.
PORT_RETRIES = 5
# Bytes of a server log shown in a failure report.
LOG_TAIL_BYTES = 4000

# Debian's interpreter, for which python3-redis (redis-py) is installed: the interpreter
# running a test (CMake's python3, a pyenv or a venv) may be another one, without it.
DEBIAN_PYTHON = "/usr/bin/python3"
# Set in the environment of a test run again under DEBIAN_PYTHON (import_redis), so that it
# is never run again a second time.
REEXEC_ENV = "HMDB_TEST_UNDER_DEBIAN_PYTHON"
# ctest's SKIP_RETURN_CODE for the system tests.
SKIP_EXIT_CODE = 77

# Every server started by this process, so that an interrupted test leaves nothing running.
_live_servers = set()


def _kill_live_servers():
    for server in list(_live_servers):
        server.kill()


atexit.register(_kill_live_servers)


class TestFailure(Exception):
    """A check failed: the server broke a promise (not a harness error)."""


class ServerExited(Exception):
    """The server exited while we expected it to be running."""

    def __init__(self, message, returncode, log):
        super().__init__(message)
        self.returncode = returncode
        self.log = log


def import_redis(skip_as=None):
    """redis-py, for a test that uses it. Where the interpreter running the test lacks it and
    Debian's may have it, the test's script is run again under Debian's (the rest of a test
    needs only the standard library), so this returns only in the interpreter that runs the
    test. Without redis-py there: None, or, given skip_as (the test's name), the test is
    skipped: it says so and exits SKIP_EXIT_CODE. Call it before anything else runs."""
    try:
        import redis
        return redis
    except ImportError:
        pass
    if (os.path.exists(DEBIAN_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON)
            and not os.environ.get(REEXEC_ENV)):
        os.environ[REEXEC_ENV] = "1"
        sys.stdout.flush()
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)
    if skip_as is None:
        return None
    print("%s: skipped: python3-redis is not installed (bash scripts/install-deps.sh)" % skip_as)
    sys.exit(SKIP_EXIT_CODE)


def detect_kind(binary):
    """'redis' for a redis-server binary, else 'hmdb'."""
    return "redis" if "redis" in os.path.basename(binary) else "hmdb"


# Ports this test process has handed out: the kernel may pick a port again once the probe
# socket is closed, and two servers of one test given the same port collide (a node's peer
# port equal to another's metrics port failed system.forward.bounded once).
_ports_given = set()
# Bound on the attempts to find a port not handed out yet.
PORT_ATTEMPTS = 64


def check(condition, message):
    """Fails the test with `message` unless `condition` holds."""
    if not condition:
        raise TestFailure(message)


def free_port_on(ip):
    """A port free on ip (an IPv4 or IPv6 address, or a name) a moment ago, chosen by the kernel,
    and never one this process handed out before."""
    family = socket.getaddrinfo(ip, 0, type=socket.SOCK_STREAM)[0][0]
    for _ in range(PORT_ATTEMPTS):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no new free port on %s after %d attempts" % (ip, PORT_ATTEMPTS))


def free_port():
    """A port that was free a moment ago on HOST (see free_port_on)."""
    return free_port_on(HOST)


def server_command(binary, kind, port, data_dir, durability, extra_args=()):
    if kind == "redis":
        fsync = {"always": "always", "periodic": "everysec", "none": "no"}[durability]
        cmd = [binary, "--port", str(port), "--bind", HOST, "--dir", data_dir,
               "--appendonly", "no" if durability == "none" else "yes",
               "--appendfsync", fsync, "--save", "", "--daemonize", "no",
               "--protected-mode", "no", "--logfile", ""]
    else:
        cmd = [binary, "serve", "--port", str(port), "--bind", HOST, "--dir", data_dir,
               "--durability", durability]
    return cmd + list(extra_args)


class Server:
    """One server process on a data directory. start() may be called again after the
    process died (a restart on the same directory, on a fresh port)."""

    def __init__(self, binary, data_dir, log_dir, kind=None, durability="always",
                 extra_args=(), name="server"):
        self.binary = binary
        self.kind = kind or detect_kind(binary)
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.durability = durability
        self.extra_args = list(extra_args)
        self.name = name
        self.proc = None
        self.port = None
        self.log_path = None
        self.starts = 0

    # ---- lifecycle -------------------------------------------------------------------

    def spawn(self, wrapper=()):
        """Starts the process without waiting for it to answer. wrapper is a command
        prefix (e.g. strace with fault injection)."""
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        self.starts += 1
        self.port = free_port()
        self.log_path = os.path.join(self.log_dir, "%s-%03d.log" % (self.name, self.starts))
        cmd = list(wrapper) + server_command(self.binary, self.kind, self.port, self.data_dir,
                                             self.durability, self.extra_args)
        self.command = cmd
        with open(self.log_path, "wb") as log:
            log.write(("$ %s\n" % " ".join(cmd)).encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT)
        _live_servers.add(self)

    def start(self, wrapper=(), timeout=READY_TIMEOUT_S):
        """Starts the server and returns once it answers PING. Raises ServerExited if it
        exits first (retrying on a fresh port if the port was taken meanwhile)."""
        for attempt in range(PORT_RETRIES):
            self.spawn(wrapper)
            try:
                self.wait_ready(timeout)
                return
            except ServerExited as e:
                if "in use" in e.log and attempt + 1 < PORT_RETRIES:
                    continue
                raise

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            code = self.proc.poll()
            if code is not None:
                _live_servers.discard(self)
                raise ServerExited("%s exited with code %d before answering PING"
                                   % (self.name, code), code, self.log())
            try:
                with resp.Client(HOST, self.port, timeout=1.0) as c:
                    reply = c.call("PING")
                    # A server with a password (requirepass) answers -NOAUTH: it is up too.
                    if reply == "PONG" or (isinstance(reply, resp.RespError) and reply.message.startswith("NOAUTH")):
                        return
                    last_error = "PING answered %r" % (reply,)
            except (resp.ConnectionLost, resp.ProtocolError) as e:
                last_error = str(e)
            if time.monotonic() > deadline:
                self.kill()
                raise TestFailure("%s did not answer PING within %.0fs (last: %s)\n%s"
                                  % (self.name, timeout, last_error, self.log_tail()))
            time.sleep(READY_POLL_INTERVAL_S)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL (if running) and reap. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        code = self.proc.wait()
        _live_servers.discard(self)
        return code

    def terminate(self, timeout=EXIT_TIMEOUT_S):
        """SIGTERM and wait for the exit. Returns the exit code; a server that does not exit
        in time is killed and reported."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout=EXIT_TIMEOUT_S):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("%s did not exit within %.0fs\n%s"
                              % (self.name, timeout, self.log_tail()))
        _live_servers.discard(self)
        return code

    # ---- access ------------------------------------------------------------------------

    def client(self, timeout=10.0):
        return resp.Client(HOST, self.port, timeout=timeout)

    def log(self, with_command=False):
        """What the server printed (stdout and stderr) in its latest run. The first line of
        the file is the command we ran; it is left out unless asked for, so that a check of
        the server's messages cannot match our own command line."""
        if not self.log_path or not os.path.exists(self.log_path):
            return ""
        with open(self.log_path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return text if with_command else text[text.find("\n") + 1:]

    def log_tail(self, nbytes=LOG_TAIL_BYTES):
        text = self.log(with_command=True)
        return "---- %s (tail) ----\n%s\n----" % (self.log_path, text[-nbytes:])


def make_work_dir(prefix, keep_root=None):
    root = keep_root or os.environ.get("HMDB_TEST_TMPDIR") or None
    return tempfile.mkdtemp(prefix=prefix, dir=root)


def remove_work_dir(path):
    shutil.rmtree(path, ignore_errors=True)


def get_seed(arg_seed):
    """The seed: --seed, else $HMDB_SEED, else fresh from the OS. Always printed."""
    if arg_seed is not None:
        return arg_seed
    env = os.environ.get("HMDB_SEED")
    if env:
        return int(env)
    return int.from_bytes(os.urandom(4), "little")


def written_size(path):
    """Bytes of a log file up to its last non-zero byte. An hmdb log segment ends in zeros its
    writer preallocated (docs/formats.md, "Preallocated zeros"): they hold no record, so
    damage meant for the records must land before them."""
    with open(path, "rb") as f:
        data = f.read()
    return len(data.rstrip(b"\0"))


def replay_command(script, args):
    return "python3 %s %s" % (os.path.abspath(script), " ".join(args))


def wait_for(what, timeout, probe, interval):
    """Polls probe() every `interval` seconds until it returns a true value (returned), at most
    `timeout` seconds; then the test fails naming `what`. For the system tests' bounded waits
    (no sleep stands for the thing waited on)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        check(time.monotonic() < deadline, "%s: not within %.0f s" % (what, timeout))
        time.sleep(interval)


def fail(message):
    print("FAIL: " + message, file=sys.stderr, flush=True)
