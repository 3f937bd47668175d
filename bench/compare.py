#!/usr/bin/env python3
"""bench/compare.py — hmdb against Redis 7 on the same machine, in the same run.

Called by bench/run.sh (which builds first); python3 standard library only.

What it does, in order:
  1. Picks the load tool per pipeline setting: runs SET and GET against Redis without
     persistence with both `hmdb-bench` and `redis-benchmark` and keeps the faster one (on a
     2-core machine the client competes with the server for CPU, so a costly client caps
     what it can measure). The same tool is then used for every server at that setting.
  2. For each repetition, for each server mode in turn (Redis appendfsync always, hmdb
     durability always, Redis without persistence, hmdb durability none): starts the server
     on its own port with a fresh data directory, runs every workload at every pipeline
     setting, stops the server. Only one server exists at any time. Interleaving the modes
     inside each repetition spreads slow phases of a noisy machine over all of them.
  3. Prints the median of the repetitions per cell (ops/s, p50, p99, and the spread of
     ops/s across repetitions), the hmdb/Redis ratio per row, and the goals of issue 2.

With --tls (issue 15) the modes are Redis and hmdb without persistence, each over plaintext
and over TLS (a CA and certificates made for the run with the openssl command line, client
certificates required by both servers), and a second table gives the cost of encryption:
TLS/plaintext of ops/s and of server CPU per request for each server, and hmdb's against
Redis'.

Every server it starts is stopped by PID (SIGTERM, then SIGKILL after a grace period) on
any exit, including Ctrl-C and SIGTERM. Every load run has a timeout. Data directories live
under one mkdtemp directory that is removed at the end.
"""

import argparse
import csv
import datetime
import io
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

WORKLOADS = ["set", "get", "incr", "lpush", "hset", "mset"]
LABEL = {"set": "SET", "get": "GET", "incr": "INCR", "lpush": "LPUSH", "hset": "HSET",
         "mset": "MSET"}
REDIS_BENCHMARK_NAME = {"set": "SET", "get": "GET", "incr": "INCR", "lpush": "LPUSH",
                        "hset": "HSET", "mset": "MSET (10 keys)"}

# redis-benchmark's own workloads (`-t`, redis-benchmark 7.0), run by --suite: each test in a
# run of its own so that the server's CPU per request is the test's. The row redis-benchmark
# prints for each (its CSV "test" column); an LRANGE test first runs "LPUSH (needed to
# benchmark LRANGE)" to fill its list, whose row is ignored but whose CPU is counted.
SUITE_TESTS = ["ping_inline", "ping_mbulk", "set", "get", "incr", "lpush", "rpush", "lpop",
               "rpop", "sadd", "hset", "spop", "zadd", "zpopmin", "lrange_100", "lrange_300",
               "lrange_500", "lrange_600", "mset"]
SUITE_ROW = {t: t.upper() for t in SUITE_TESTS}
SUITE_ROW.update({"lrange_100": "LRANGE_100 (first 100 elements)",
                  "lrange_300": "LRANGE_300 (first 300 elements)",
                  "lrange_500": "LRANGE_500 (first 500 elements)",
                  "lrange_600": "LRANGE_600 (first 600 elements)",
                  "mset": "MSET (10 keys)"})
# Requests per suite test (redis-benchmark -n), per pipeline setting: about 1-3 s each on this
# 2-core machine against Redis.
SUITE_REQUESTS = {1: 100000, 32: 1000000}
SUITE_REQUESTS_DEFAULT = 200000
# Goals of issue 16 on every workload of both benchmarks: at pipeline 1, hmdb always >= 1.2x
# Redis AOF always in ops/s and server CPU per request <= Redis'; at pipeline 32, hmdb always
# >= 2x Redis AOF always and hmdb none >= 1x Redis without persistence.
GOAL_P1_ALWAYS = 1.2
GOAL_P32_ALWAYS = 2.0
GOAL_P32_NONE = 1.0

# Modes, in the order they run inside a repetition. Each pair in PAIRS is one table row.
# base-*: the same hmdb modes run by the --baseline binary (a before/after comparison in one
# run, interleaved with the others), only when --baseline is given.
# redis-tls, hmdb-tls: no persistence / durability none, TLS only (no plaintext port), client
# certificates required; only with --tls.
MODES = ["redis-always", "base-always", "hmdb-always", "redis-none", "base-none", "hmdb-none",
         "redis-tls", "hmdb-tls"]
BASE_MODES = ["base-always", "base-none"]
TLS_MODES = ["redis-tls", "hmdb-tls"]
PAIRS = [("redis-always", "hmdb-always", "redis aof-always vs hmdb always"),
         ("redis-none", "hmdb-none", "redis no-persistence vs hmdb none"),
         ("redis-tls", "hmdb-tls", "redis TLS vs hmdb TLS (no persistence / none)")]
# --tls: each TLS mode against the plaintext mode of the same server.
TLS_PAIRS = [("redis-none", "redis-tls", "redis"), ("hmdb-none", "hmdb-tls", "hmdb")]

# Bounds (seconds).
SERVER_START_TIMEOUT = 30.0   # until the server answers PING
SERVER_STOP_GRACE = 10.0      # after SIGTERM, before SIGKILL
LOAD_TIMEOUT_SLACK = 60.0     # added to the expected duration of one load run
SUITE_TEST_TIMEOUT = 300.0    # one redis-benchmark -t TEST run of --suite
REDIS_BENCHMARK_MIN_REQUESTS = 20000
# MSET carries 10 keys per request: size redis-benchmark's request count for it by this.
MSET_COST = 5.0

children = {}  # pid -> description, every process we started and have not reaped


def log(message):
    print(message, file=sys.stderr, flush=True)


def stop_process(proc, what):
    """Stops one process we started, by its PID: SIGTERM, a grace period, then SIGKILL."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=SERVER_STOP_GRACE)
        except subprocess.TimeoutExpired:
            log(f"{what} (pid {proc.pid}) did not stop within {SERVER_STOP_GRACE:.0f} s: SIGKILL")
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
    children.pop(proc.pid, None)


def on_signal(signum, frame):
    raise SystemExit(128 + signum)


def wait_for_ping(port, proc, timeout, tls_context=None):
    """True once the server on `port` answers PING with +PONG (over TLS with tls_context);
    False if it died or timed out. With TLS, returns the negotiated "version cipher"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as raw:
                s = tls_context.wrap_socket(raw) if tls_context else raw
                s.sendall(b"*1\r\n$4\r\nPING\r\n")
                if s.recv(64).startswith(b"+PONG"):
                    return f"{s.version()} {s.cipher()[0]}" if tls_context else True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class TlsFiles:
    """The run's certificates (tests/system/tls_certs.py, the openssl command line): a CA,
    the server's certificate (both servers present it) and the load tools' client
    certificate. EC P-256 keys, as docs/security.md shows."""

    def __init__(self, root):
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                        "tests", "system"))
        import tls_certs
        ca = tls_certs.CA(os.path.join(root, "tls"), "bench-ca")
        self.ca = ca.crt
        self.server_crt, self.server_key = ca.issue("bench-server")
        self.client_crt, self.client_key = ca.issue("bench-client")
        self.context = tls_certs.client_context(self.ca, (self.client_crt, self.client_key))


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Like the servers do: connections of an earlier server in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class Server:
    """One server process in one mode with its own fresh data directory."""

    def __init__(self, args, mode, port, root, repetition):
        self.mode = mode
        self.port = port
        self.dir = os.path.join(root, f"{mode}-{repetition}")
        os.makedirs(self.dir)
        self.log_path = os.path.join(self.dir, "server.log")
        self.tls = args.tls_files if mode in TLS_MODES else None
        if mode.startswith("redis"):
            persistence = (["--appendonly", "yes", "--appendfsync", "always"]
                           if mode == "redis-always" else ["--appendonly", "no"])
            ports = ["--port", str(port)]
            if self.tls:
                # TLS only; tls-auth-clients is yes by default, as hmdb's.
                ports = ["--port", "0", "--tls-port", str(port), "--tls-cert-file",
                         self.tls.server_crt, "--tls-key-file", self.tls.server_key,
                         "--tls-ca-cert-file", self.tls.ca]
            self.argv = [args.redis_server] + ports + ["--bind", "127.0.0.1",
                         "--dir", self.dir, "--save", "", "--daemonize", "no",
                         "--logfile", self.log_path] + persistence
        else:
            durability = "always" if mode.endswith("-always") else "none"
            binary = args.baseline if mode.startswith("base") else args.hmdb
            ports = ["--port", str(port)]
            if self.tls:
                # TLS only (--port 0 with --tls-port); --tls-auth-clients is yes by default.
                ports = ["--port", "0", "--tls-port", str(port), "--tls-cert-file",
                         self.tls.server_crt, "--tls-key-file", self.tls.server_key,
                         "--tls-ca-cert-file", self.tls.ca]
            self.argv = [binary, "serve"] + ports + ["--dir",
                         os.path.join(self.dir, "data"), "--durability", durability]
        self.proc = None
        self.tls_session = None  # "TLSv1.3 TLS_AES_256_GCM_SHA384": what PING negotiated

    def cpu_seconds(self):
        """User + system CPU time the server process (all its threads) has used so far.
        CPU per request is a measure that a busy shared machine distorts much less than
        ops/s: it tells how much work the engine does, not how much CPU it was given."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        # After the command name: state is field 3, utime field 14, stime field 15 (1-based).
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        if not port_is_free(self.port):
            raise RuntimeError(f"port {self.port} is in use; pick another --base-port")
        log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        log_file.close()
        children[self.proc.pid] = self.mode
        answered = wait_for_ping(self.port, self.proc, SERVER_START_TIMEOUT,
                                 self.tls.context if self.tls else None)
        if self.tls and answered:
            self.tls_session = answered
        if not answered:
            self.__exit__(None, None, None)
            with open(self.log_path, "rb") as f:
                tail = f.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"{self.mode} did not answer PING on port {self.port} within "
                               f"{SERVER_START_TIMEOUT:.0f} s: {' '.join(self.argv)}\n{tail}")
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            stop_process(self.proc, self.mode)
            code = self.proc.returncode
            # SIGTERM must end a server cleanly; anything else is worth a line.
            if code not in (0, -signal.SIGTERM):
                log(f"note: {self.mode} exited with status {code} (log: {self.log_path})")
            self.proc = None
            # Write back what this server left dirty (its AOF or log) now, so the next
            # server's fsyncs do not queue behind it (seen in bench/cluster_bench.py).
            os.sync()
        return False


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_tool(argv, timeout):
    """Runs a load tool with a time bound. Returns (stdout, stderr, CPU seconds the tool
    used) or raises RuntimeError. The CPU time is that of the reaped children, i.e. the tool:
    servers are reaped only when they are stopped."""
    cpu_before = children_cpu_seconds()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    children[proc.pid] = argv[0]
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_process(proc, argv[0])
        proc.communicate()
        raise RuntimeError(f"load run took longer than {timeout:.0f} s: {' '.join(argv)}")
    children.pop(proc.pid, None)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {err.strip()[-500:]}")
    return out, err, children_cpu_seconds() - cpu_before


class Measurement:
    def __init__(self, rps, p50, p99, errors, first_error, requests, cpu_seconds):
        self.rps, self.p50, self.p99 = rps, p50, p99
        self.errors, self.first_error = errors, first_error
        # Client CPU per request: how much of the 2 cores the load tool itself took.
        self.cpu_us_per_request = 1e6 * cpu_seconds / requests if requests else 0.0
        self.requests = requests
        self.server_cpu_us_per_request = None  # filled in by run_mode
        self.repetition = None  # filled in by run_mode: ratios are taken within one


def tls_argv(tls):
    """The load tools' TLS flags (hmdb-bench and redis-benchmark both take redis-cli's)."""
    if tls is None:
        return []
    return ["--tls", "--cacert", tls.ca, "--cert", tls.client_crt, "--key", tls.client_key]


def measure_hmdb_bench(args, port, workload, pipeline, seconds, tls=None):
    argv = [args.hmdb_bench, "--host", "127.0.0.1", "--port", str(port), "--clients",
            str(args.clients), "--pipeline", str(pipeline), "--seconds", str(seconds),
            "--keyspace", str(args.keyspace), "--value-size", str(args.value_size),
            "--tests", workload, "--csv", "--quiet"] + tls_argv(tls)
    out, err, cpu = run_tool(argv, seconds + LOAD_TIMEOUT_SLACK)
    rows = list(csv.DictReader(io.StringIO(out)))
    if len(rows) != 1:
        raise RuntimeError(f"unexpected hmdb-bench output: {out!r}")
    row = rows[0]
    first_error = ""
    for line in err.splitlines():
        if "first:" in line:
            first_error = line.split("first:", 1)[1].strip()
    return Measurement(float(row["rps"]), float(row["p50_latency_ms"]),
                       float(row["p99_latency_ms"]), int(row["errors"]), first_error,
                       int(row["requests"]), cpu)


def measure_redis_benchmark(args, port, workload, pipeline, seconds, expected_rps, tls=None):
    cost = MSET_COST if workload == "mset" else 1.0
    requests = max(REDIS_BENCHMARK_MIN_REQUESTS, int(expected_rps * seconds / cost))
    argv = [args.redis_benchmark, "-h", "127.0.0.1", "-p", str(port), "-c",
            str(args.clients), "-P", str(pipeline), "-n", str(requests), "-r",
            str(args.keyspace), "-d", str(args.value_size), "-t", workload, "--csv"] + tls_argv(tls)
    # Allow a slow server (hmdb under development) three times the expected duration.
    out, err, cpu = run_tool(argv, 3 * requests * cost / max(expected_rps, 1.0) + LOAD_TIMEOUT_SLACK)
    rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] != "test"]
    want = REDIS_BENCHMARK_NAME[workload]
    for r in rows:
        if r[0] == want:
            # test,rps,avg,min,p50,p95,p99,max. redis-benchmark 7 exits with status 1 at the
            # first error reply ("Error from server: ..."), which run_tool reports as a failed
            # run, so a row here had no errors.
            return Measurement(float(r[1]), float(r[4]), float(r[6]), 0, "", requests, cpu)
    raise RuntimeError(f"no {want} row in redis-benchmark output: {out!r} {err!r}")


def measure_suite_test(args, port, test, pipeline, tls=None):
    """One of redis-benchmark's own tests (-t), run as its docs say: redis-benchmark -t TEST
    -P P -c CLIENTS -r KEYSPACE -n N --csv. Exits non-zero at an error reply (run_tool raises)."""
    requests = args.suite_requests or SUITE_REQUESTS.get(pipeline, SUITE_REQUESTS_DEFAULT)
    argv = [args.redis_benchmark, "-h", "127.0.0.1", "-p", str(port), "-c", str(args.clients),
            "-P", str(pipeline), "-n", str(requests), "-r", str(args.keyspace), "-d",
            str(args.value_size), "-t", test, "--csv"] + tls_argv(tls)
    out, err, cpu = run_tool(argv, SUITE_TEST_TIMEOUT)
    rows = [r for r in csv.reader(io.StringIO(out)) if r and r[0] != "test"]
    for r in rows:
        if r[0] == SUITE_ROW[test]:
            # All the requests of the run (an LRANGE test's LPUSH fill included) count for
            # the server's CPU per request.
            return Measurement(float(r[1]), float(r[4]), float(r[6]), 0, "", requests * len(rows), cpu)
    raise RuntimeError(f"no {SUITE_ROW[test]!r} row in redis-benchmark output: {out!r} {err!r}")


def choose_tools(args, root):
    """Per pipeline: the faster tool (sum of SET and GET ops/s) against Redis without
    persistence. Returns ({pipeline: tool}, {pipeline: measured rps per tool}, notes)."""
    choice, rates, notes = {}, {}, []
    if args.tool != "auto":
        for p in args.pipelines:
            choice[p] = args.tool
        notes.append(f"load tool forced to {args.tool}")
        if args.tool == "redis-benchmark":
            # redis-benchmark runs a number of requests, not a time: size them by its rate
            # against Redis without persistence, as the automatic choice does.
            with Server(args, "redis-none", args.base_port, root, "calibration"):
                for p in args.pipelines:
                    ms = [measure_redis_benchmark(args, args.base_port, w, p,
                                                  args.choice_seconds, 50000.0)
                          for w in ("set", "get")]
                    rates[p] = {"redis-benchmark": sum(m.rps for m in ms) / len(ms)}
                    notes.append(f"pipeline {p}: redis-benchmark {rates[p]['redis-benchmark']:,.0f} "
                                 "ops/s (mean of SET and GET on redis no-persistence) sizes its runs")
        return choice, rates, notes
    with Server(args, "redis-none", args.base_port, root, "tool-choice"):
        for p in args.pipelines:
            totals = {"hmdb-bench": [], "redis-benchmark": []}
            cpu = {"hmdb-bench": [], "redis-benchmark": []}
            for _ in range(args.choice_runs):
                ours = [measure_hmdb_bench(args, args.base_port, w, p, args.choice_seconds)
                        for w in ("set", "get")]
                mean_ours = sum(m.rps for m in ours) / len(ours)
                theirs = [measure_redis_benchmark(args, args.base_port, w, p,
                                                  args.choice_seconds, mean_ours)
                          for w in ("set", "get")]
                for tool, ms in (("hmdb-bench", ours), ("redis-benchmark", theirs)):
                    totals[tool].append(sum(m.rps for m in ms) / len(ms))
                    cpu[tool] += [m.cpu_us_per_request for m in ms]
            med = {tool: statistics.median(v) for tool, v in totals.items()}
            choice[p] = max(med, key=med.get)
            rates[p] = med
            notes.append(f"pipeline {p}: hmdb-bench {med['hmdb-bench']:,.0f} ops/s "
                         f"({statistics.median(cpu['hmdb-bench']):.2f} us client CPU/request) vs "
                         f"redis-benchmark {med['redis-benchmark']:,.0f} ops/s "
                         f"({statistics.median(cpu['redis-benchmark']):.2f} us/request), mean of "
                         f"SET and GET on redis no-persistence -> {choice[p]}")
    return choice, rates, notes


def fmt_rate(values):
    if not values:
        return "-"
    return f"{statistics.median(values):,.0f}"


def spread(values):
    if len(values) < 2:
        return "-"
    m = statistics.median(values)
    return f"{100.0 * (max(values) - min(values)) / m:.0f}%" if m > 0 else "-"


def fmt_ms(values):
    return f"{statistics.median(values):.2f}" if values else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition of 1.5 s runs: checks that everything works")
    parser.add_argument("--runs", type=int, help="repetitions (median taken); default 3, quick 1")
    parser.add_argument("--seconds", type=float, help="seconds per load run; default 5, quick 1.5")
    parser.add_argument("--workloads", default=None, help="default: " + ",".join(WORKLOADS) +
                        " (with --tls: set,get)")
    parser.add_argument("--pipelines", default="1,32")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--keyspace", type=int, default=1000000)
    parser.add_argument("--value-size", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=7390,
                        help="ports base..base+7 are used, one per server mode")
    parser.add_argument("--tool", choices=["auto", "hmdb-bench", "redis-benchmark"],
                        default="auto")
    parser.add_argument("--modes", default=None,
                        help="subset of " + ",".join(MODES) + " (base-* need --baseline, "
                        "*-tls need --tls); default: every mode but those, or with --tls "
                        "redis-none,redis-tls,hmdb-none,hmdb-tls")
    parser.add_argument("--tls", action="store_true",
                        help="the cost of encryption: Redis and hmdb without persistence, over "
                        "plaintext and over TLS (certificates made for the run), and a table "
                        "of TLS/plaintext ratios; workloads default to set,get")
    parser.add_argument("--hmdb", help="hmdb server binary (default BUILD/apps/kv/hmdb)")
    parser.add_argument("--baseline", help="an older hmdb server binary: runs the hmdb modes "
                        "with it too (as base-*), interleaved, and reports after/before")
    parser.add_argument("--hmdb-bench", help="load generator (default BUILD/bench/hmdb-bench)")
    parser.add_argument("--redis-server", default="redis-server")
    parser.add_argument("--redis-benchmark", default="redis-benchmark")
    parser.add_argument("--tmp-root", default=None,
                        help="where the temporary data directories go (must be a real disk "
                             "for fsync to mean anything; default $TMPDIR or /tmp)")
    parser.add_argument("--suite", action="store_true",
                        help="also run every one of redis-benchmark's own -t tests (" +
                        ",".join(SUITE_TESTS) + ") against each mode, each in its own run, "
                        "and report them in a second table with the goals of issue 16")
    parser.add_argument("--suite-tests", default=",".join(SUITE_TESTS),
                        help="the subset of redis-benchmark tests --suite runs")
    parser.add_argument("--suite-requests", type=int,
                        help="requests per suite test (default 100,000 at pipeline 1, "
                        "1,000,000 at 32)")
    parser.add_argument("--out", help="also write the markdown report to this file")
    args = parser.parse_args()

    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (1.5 if args.quick else 5.0)
    args.choice_runs = 1 if args.quick else 2
    args.choice_seconds = 1.0 if args.quick else 3.0
    if args.workloads is None:
        args.workloads = "set,get" if args.tls else ",".join(WORKLOADS)
    if args.modes is None:
        args.modes = ("redis-none,redis-tls,hmdb-none,hmdb-tls" if args.tls else
                      ",".join(m for m in MODES if m not in BASE_MODES + TLS_MODES))
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.pipelines = [int(p) for p in args.pipelines.split(",") if p]
    args.modes = [m for m in args.modes.split(",") if m]
    args.suite_tests = [t for t in args.suite_tests.split(",") if t] if args.suite else []
    for t in args.suite_tests:
        if t not in SUITE_TESTS:
            parser.error(f"unknown redis-benchmark test {t}")
    if args.quick and args.suite and not args.suite_requests:
        args.suite_requests = 20000
    for w in args.workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w}")
    if args.baseline:
        if not os.access(args.baseline, os.X_OK):
            parser.error(f"--baseline {args.baseline} is not an executable")
        args.modes += [b for b, h in (("base-always", "hmdb-always"), ("base-none", "hmdb-none"))
                       if h in args.modes and b not in args.modes]
    for m in args.modes:
        if m not in MODES:
            parser.error(f"unknown mode {m}")
        if m in BASE_MODES and not args.baseline:
            parser.error(f"mode {m} needs --baseline")
        if m in TLS_MODES and not args.tls:
            parser.error(f"mode {m} needs --tls")
    args.hmdb = args.hmdb or os.path.join(args.build_dir, "apps", "kv", "hmdb")
    args.hmdb_bench = args.hmdb_bench or os.path.join(args.build_dir, "bench", "hmdb-bench")
    for tool in (args.redis_server, args.redis_benchmark):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found (Debian: apt-get install redis-server redis-tools)")
    if not os.access(args.hmdb_bench, os.X_OK):
        parser.error(f"{args.hmdb_bench} not found: build the hmdb-bench target first")
    args.tool_notes = []
    if args.tls:
        if shutil.which("openssl") is None:
            parser.error("--tls needs the openssl command line (the run's certificates)")
        helptext = subprocess.run([args.hmdb_bench, "--help"], capture_output=True,
                                  text=True).stdout
        if "--tls" not in helptext:
            if args.tool == "hmdb-bench":
                parser.error(f"{args.hmdb_bench} does not speak TLS (no --tls): rebuild it")
            args.tool = "redis-benchmark"
            args.tool_notes.append(f"{args.hmdb_bench} has no --tls: redis-benchmark drives "
                                   "every mode")
    if not os.access(args.hmdb, os.X_OK):
        log(f"SKIPPING hmdb: server binary {args.hmdb} not found (build target `hmdb`, or "
            f"pass --hmdb). Redis is measured alone.")
        args.modes = [m for m in args.modes if not m.startswith("hmdb")]

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    root = tempfile.mkdtemp(prefix="hmdb-bench-", dir=args.tmp_root)
    args.tls_files = None
    args.tls_sessions = {}  # mode -> the TLS version and cipher its PING negotiated
    results = {}  # (mode, workload, pipeline) -> [Measurement]
    failures = []  # cells that produced no measurement, with the reason
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    try:
        if args.tls:
            args.tls_files = TlsFiles(root)
        choice, rates, notes = choose_tools(args, root)
        notes = args.tool_notes + notes
        for n in notes:
            log("tool choice: " + n)
        for repetition in range(args.runs):
            for i, mode in enumerate(MODES):
                if mode not in args.modes:
                    continue
                port = args.base_port + i
                log(f"repetition {repetition + 1}/{args.runs}: {mode} on port {port}")
                try:
                    run_mode(args, mode, port, root, repetition, choice, rates, results,
                             failures)
                except RuntimeError as e:  # the server did not start: the other modes go on
                    failures.append(f"{mode} repetition {repetition + 1}: {e}")
                    log(f"  FAILED: {e}")
    finally:
        for pid in list(children):
            log(f"stopping leftover process {pid} ({children[pid]})")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(root, ignore_errors=True)

    report = render(args, results, choice, notes, started, load_before, failures)
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report + "\n")


def run_mode(args, mode, port, root, repetition, choice, rates, results, failures):
    """One server in one mode: every pipeline setting and workload. A failed load run is
    recorded and the next one tried; if the server died, the rest of this mode is skipped."""
    with Server(args, mode, port, root, repetition) as server:
        if server.tls_session:
            args.tls_sessions[mode] = server.tls_session
        for p in args.pipelines:
            for w in args.workloads:
                if server.proc.poll() is not None:
                    failures.append(f"{mode} {LABEL[w]} P={p}: server exited with status "
                                    f"{server.proc.returncode} (log: {server.log_path})")
                    continue
                try:
                    server_cpu_before = server.cpu_seconds()
                    if choice[p] == "hmdb-bench":
                        m = measure_hmdb_bench(args, port, w, p, args.seconds, server.tls)
                    else:
                        expected = rates.get(p, {}).get("redis-benchmark", 50000.0)
                        m = measure_redis_benchmark(args, port, w, p, args.seconds, expected,
                                                    server.tls)
                except RuntimeError as e:
                    failures.append(f"{mode} {LABEL[w]} P={p}: {e}")
                    log(f"  {LABEL[w]:5} P={p:<3} FAILED: {e}")
                    continue
                if m.requests:
                    m.server_cpu_us_per_request = (1e6 * (server.cpu_seconds() - server_cpu_before)
                                                   / m.requests)
                m.repetition = repetition
                results.setdefault((mode, w, p), []).append(m)
                log(f"  {LABEL[w]:5} P={p:<3} {m.rps:>12,.0f} ops/s  p50 {m.p50:.2f} ms  "
                    f"p99 {m.p99:.2f} ms  server CPU {m.server_cpu_us_per_request or 0:.2f} us/op" + (f"  ERRORS {m.errors}: {m.first_error}"
                                             if m.errors else ""))
            for t in args.suite_tests:
                if server.proc.poll() is not None:
                    failures.append(f"{mode} suite {t} P={p}: server exited with status "
                                    f"{server.proc.returncode} (log: {server.log_path})")
                    continue
                try:
                    server_cpu_before = server.cpu_seconds()
                    m = measure_suite_test(args, port, t, p, server.tls)
                except RuntimeError as e:
                    failures.append(f"{mode} suite {t} P={p}: {e}")
                    log(f"  suite {t} P={p} FAILED: {e}")
                    continue
                m.server_cpu_us_per_request = 1e6 * (server.cpu_seconds() - server_cpu_before) / m.requests
                results.setdefault((mode, "suite:" + t, p), []).append(m)
                log(f"  suite {t:11} P={p:<3} {m.rps:>12,.0f} ops/s  p50 {m.p50:.2f} ms  "
                    f"p99 {m.p99:.2f} ms  server CPU {m.server_cpu_us_per_request:.2f} us/op")


def render(args, results, choice, notes, started, load_before, failures):
    lines = []
    redis_version = subprocess.run([args.redis_server, "--version"], capture_output=True,
                                   text=True).stdout.split()[2:3]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    lines.append(f"hmdb vs Redis ({' '.join(redis_version)}), {started:%Y-%m-%d %H:%M} UTC, "
                 f"commit {commit or '?'}, {os.cpu_count()} CPUs, load average before "
                 f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    lines.append(f"{args.clients} clients, {args.value_size}-byte values, keyspace "
                 f"{args.keyspace:,}, {args.seconds:g} s per run, median of {args.runs} "
                 f"run(s); spread = (max-min)/median of ops/s across runs; CPU us/op = "
                 f"server process CPU time (all threads) per request, median")
    for n in notes:
        lines.append("load tool: " + n)
    lines.append("load tool used: " + ", ".join(f"pipeline {p}: {choice[p]}"
                                                 for p in args.pipelines))
    lines.append("")
    lines.append("| workload | P | modes | redis ops/s | spread | p50 ms | p99 ms | CPU us/op "
                 "| hmdb ops/s | spread | p50 ms | p99 ms | CPU us/op | hmdb/redis |")
    lines.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    error_notes = []
    for p in args.pipelines:
        for w in args.workloads:
            for redis_mode, hmdb_mode, pair in PAIRS:
                if redis_mode not in args.modes and hmdb_mode not in args.modes:
                    continue
                cells = []
                medians = {}
                for mode in (redis_mode, hmdb_mode):
                    ms = results.get((mode, w, p), [])
                    rps = [m.rps for m in ms]
                    medians[mode] = statistics.median(rps) if rps else None
                    errors = sum(m.errors for m in ms)
                    mark = "*" if errors else ""
                    if errors:
                        first = next((m.first_error for m in ms if m.errors), "")
                        error_notes.append(f"* {mode} {LABEL[w]} P={p}: {errors} error "
                                           f"replies, first: {first}")
                    cells += [fmt_rate(rps) + mark, spread(rps), fmt_ms([m.p50 for m in ms]),
                              fmt_ms([m.p99 for m in ms]),
                              fmt_ms([m.server_cpu_us_per_request for m in ms
                                      if m.server_cpu_us_per_request is not None])]
                r, h = medians[redis_mode], medians[hmdb_mode]
                ratio = f"{h / r:.2f}" if r and h else "-"
                lines.append(f"| {LABEL[w]} | {p} | {pair} | " + " | ".join(cells) +
                             f" | {ratio} |")
    if args.baseline:
        lines += render_baseline(args, results)
    if args.suite_tests:
        lines += render_suite(args, results)
    if args.tls:
        lines += render_tls(args, results)
    lines += [""] + error_notes
    if failures:
        lines.append("Failed runs (no measurement):")
        lines += [f"- {f}" for f in failures]
    # The goals of issue 2, at pipeline 32 (not what --tls measures).
    if 32 in args.pipelines and not args.tls:
        lines.append("")
        lines.append("Goals at pipeline 32 (issue 2): hmdb always >= 2.0x redis aof-always and "
                     ">= 0.9x redis no-persistence; hmdb none >= 1.0x redis no-persistence")
        for w in args.workloads:
            def med(mode):
                ms = results.get((mode, w, 32), [])
                return statistics.median([m.rps for m in ms]) if ms else None
            checks = [("always/aof-always", med("hmdb-always"), med("redis-always"), 2.0),
                      ("always/no-persistence", med("hmdb-always"), med("redis-none"), 0.9),
                      ("none/no-persistence", med("hmdb-none"), med("redis-none"), 1.0)]
            parts = []
            for name, h, r, goal in checks:
                if h and r:
                    parts.append(f"{name} {h / r:.3f} ({'met' if h / r >= goal else 'MISSED'}, "
                                 f"goal {goal})")
                else:
                    parts.append(f"{name} -")
            lines.append(f"- {LABEL[w]}: " + "; ".join(parts))
    return "\n".join(lines)


def per_repetition_ratios(results, a, b, w, p, value):
    """value(b) / value(a) for each repetition that measured both cells: the servers of one
    repetition ran minutes apart at most, so their ratio suffers less from a shared machine's
    slow phases than a ratio of medians over the whole run."""
    by_rep = {m.repetition: m for m in results.get((a, w, p), [])}
    ratios = []
    for m in results.get((b, w, p), []):
        base = by_rep.get(m.repetition)
        if base is not None and value(base) and value(m) is not None:
            ratios.append(value(m) / value(base))
    return ratios


def render_tls(args, results):
    """--tls: the cost of encryption for each server (TLS/plaintext of ops/s and of server CPU
    per request, per repetition, median and spread) and hmdb's against Redis'."""
    sessions = "; ".join(f"{m}: {v}" for m, v in sorted(args.tls_sessions.items()))
    lines = ["", "Cost of TLS (both servers TLS only on their port, client certificates "
             f"required; negotiated: {sessions or '?'}). TLS/plain = the TLS mode's value over "
             "the plaintext mode's in the same repetition, median over repetitions (spread = "
             "(max-min)/median); CPU +us = server CPU per request over TLS minus over "
             "plaintext (medians); hmdb/redis = hmdb's TLS/plain ops/s over Redis' (> 1: hmdb "
             "loses less to encryption).", "",
             "| workload | P | redis plain ops/s | redis TLS ops/s | TLS/plain | spread | "
             "CPU us plain | CPU us TLS | CPU +us | hmdb plain ops/s | hmdb TLS ops/s | "
             "TLS/plain | spread | CPU us plain | CPU us TLS | CPU +us | hmdb/redis TLS/plain |",
             "|---|---|" + "---:|" * 15]

    def med(values):
        return statistics.median(values) if values else None

    def f(x, pattern="{:.2f}"):
        return pattern.format(x) if x is not None else "-"

    for p in args.pipelines:
        for w in args.workloads:
            cells, ops_ratio = [], {}
            for plain, tls, name in TLS_PAIRS:
                rps = {mode: [m.rps for m in results.get((mode, w, p), [])] for mode in (plain, tls)}
                cpu = {mode: med([m.server_cpu_us_per_request for m in results.get((mode, w, p), [])
                                  if m.server_cpu_us_per_request is not None])
                       for mode in (plain, tls)}
                ratios = per_repetition_ratios(results, plain, tls, w, p, lambda m: m.rps)
                ops_ratio[name] = med(ratios)
                added = cpu[tls] - cpu[plain] if cpu[tls] is not None and cpu[plain] is not None else None
                cells += [fmt_rate(rps[plain]), fmt_rate(rps[tls]), f(ops_ratio[name], "{:.3f}"),
                          spread(ratios), f(cpu[plain]), f(cpu[tls]), f(added, "{:+.2f}")]
            h, r = ops_ratio["hmdb"], ops_ratio["redis"]
            lines.append(f"| {LABEL[w]} | {p} | " + " | ".join(cells) +
                         f" | {f(h / r if h and r else None, '{:.3f}')} |")
    return lines


def render_suite(args, results):
    """redis-benchmark's own workloads: ops/s and server CPU per request of each mode, the
    ratios, and issue 16's goals per test."""
    modes = [m for m in ("redis-always", "hmdb-always", "redis-none", "hmdb-none") if m in args.modes]
    lines = ["", "redis-benchmark's own workloads (`redis-benchmark -t TEST -P P -c "
             f"{args.clients} -r {args.keyspace} -d {args.value_size} --csv`, one run per test; "
             "ops/s median, spread, server CPU us/request median):", "",
             "| test | P | " + " | ".join(f"{m} ops/s | spread | CPU us" for m in modes) +
             " | always/aof-always | CPU always/aof-always | none/no-persistence | goals | "
             "load tool busy, % of one core (" + " / ".join(modes) + ") |",
             "|---|---|" + "---:|---:|---:|" * len(modes) + "---:|---:|---:|---|---:|"]

    bound = set()

    def med(mode, t, p, cpu=False):
        ms = results.get((mode, "suite:" + t, p), [])
        v = [m.server_cpu_us_per_request if cpu else m.rps for m in ms]
        return statistics.median(v) if v else None

    for p in args.pipelines:
        for t in args.suite_tests:
            cells = []
            for m in modes:
                ms = results.get((m, "suite:" + t, p), [])
                rps = [x.rps for x in ms]
                cells += [fmt_rate(rps), spread(rps), fmt_ms([x.server_cpu_us_per_request for x in ms])]
            ra, ha, rn, hn = (med("redis-always", t, p), med("hmdb-always", t, p),
                              med("redis-none", t, p), med("hmdb-none", t, p))
            rac, hac = med("redis-always", t, p, True), med("hmdb-always", t, p, True)
            always = ha / ra if ha and ra else None
            cpu = hac / rac if hac and rac else None
            none = hn / rn if hn and rn else None
            goals = []
            if p == 1 and always is not None:
                goals.append(f"ops {'met' if always >= GOAL_P1_ALWAYS else 'MISSED'} (>= {GOAL_P1_ALWAYS})")
            if p == 1 and cpu is not None:
                goals.append(f"CPU {'met' if cpu <= 1.0 else 'MISSED'} (<= 1)")
            if p == 32 and always is not None:
                goals.append(f"always {'met' if always >= GOAL_P32_ALWAYS else 'MISSED'} (>= {GOAL_P32_ALWAYS})")
            if p == 32 and none is not None:
                goals.append(f"none {'met' if none >= GOAL_P32_NONE else 'MISSED'} (>= {GOAL_P32_NONE})")
            fmt = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
            busy = []
            for m in modes:
                b = tool_busy(results.get((m, "suite:" + t, p), []))
                busy.append(f"{b:.0f}" if b is not None else "-")
                if b is not None and b >= TOOL_BOUND_PERCENT:
                    bound.add(f"{t} P={p} {m}")
            lines.append(f"| {t} | {p} | " + " | ".join(cells) +
                         f" | {fmt(always)} | {fmt(cpu)} | {fmt(none)} | {'; '.join(goals) or '-'} | "
                         + " / ".join(busy) + " |")
    lines += ["", f"Runs where the load tool was {TOOL_BOUND_PERCENT} % busy or more (one core of "
              f"{os.cpu_count()}; redis-benchmark is single-threaded): the server was not what "
              "bounded their ops/s, so their ratio says little about the server: "
              + (", ".join(sorted(bound)) if bound else "none")]
    return lines


# A load tool that keeps one core this busy cannot send faster: the ops/s of its run are the
# tool's, not the server's, on this machine (the server shares the other core with the OS).
TOOL_BOUND_PERCENT = 90


def tool_busy(ms):
    """Median share of one core the load tool used in these runs, in percent: its CPU per
    request times its ops/s."""
    v = [m.cpu_us_per_request * m.rps / 1e4 for m in ms if m.rps]
    return statistics.median(v) if v else None


def render_baseline(args, results):
    """The after/before table: the hmdb binary against the --baseline binary, same modes."""
    lines = ["", f"before = {args.baseline}, after = {args.hmdb} (same load tool, interleaved "
             "in every repetition)", "",
             "| workload | P | durability | before ops/s | spread | CPU us/op | after ops/s | "
             "spread | CPU us/op | after/before ops/s | after/before CPU |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in args.pipelines:
        for w in args.workloads:
            for base_mode, hmdb_mode in (("base-always", "hmdb-always"), ("base-none", "hmdb-none")):
                if base_mode not in args.modes:
                    continue
                cells, rate, cpu = [], {}, {}
                for mode in (base_mode, hmdb_mode):
                    ms = results.get((mode, w, p), [])
                    rps = [m.rps for m in ms]
                    cpus = [m.server_cpu_us_per_request for m in ms
                            if m.server_cpu_us_per_request is not None]
                    rate[mode] = statistics.median(rps) if rps else None
                    cpu[mode] = statistics.median(cpus) if cpus else None
                    cells += [fmt_rate(rps), spread(rps), fmt_ms(cpus)]
                ratio = (f"{rate[hmdb_mode] / rate[base_mode]:.3f}"
                         if rate[base_mode] and rate[hmdb_mode] else "-")
                cpu_ratio = (f"{cpu[hmdb_mode] / cpu[base_mode]:.3f}"
                             if cpu[base_mode] and cpu[hmdb_mode] else "-")
                lines.append(f"| {LABEL[w]} | {p} | {hmdb_mode.split('-')[1]} | " +
                             " | ".join(cells) + f" | {ratio} | {cpu_ratio} |")
    return lines


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:
        log(f"bench/compare.py: {e}")
        sys.exit(1)
