#!/usr/bin/env python3
"""`hmdb serve --cpus LIST` (docs/operations.md, "CPUs"; src/server/cpu_affinity.h): the CPUs
every thread of the server runs on, set before the first thread starts.

  first     --cpus 0 (the first CPU this test may run on, when that is not 0): once the node
            answers PING, and again after writes and a SNAPSHOT (which start the kv app's
            prefault thread and the snapshot's helper threads), every thread's
            Cpus_allowed_list in /proc/<pid>/task/*/status is that CPU; CONFIG GET hmdb-cpus
            says it; the log names it.
  last      the same with the last CPU this test may run on, written as a list with a
            duplicate and a range of one ("L,L-L").
  narrowed  a server started with `taskset -c L` (L: the last CPU) given --cpus
            FIRST-LAST runs every thread on L (the listed CPUs it may run on) and logs the
            others as left out; given --cpus FIRST it refuses to start (exit 1) naming L as
            the CPU it may run on.
  refused   malformed lists (3-1, an empty one, a trailing comma, 1024, a word, a blank) and a
            list of no CPU the process may run on exit non-zero with a one-line message
            naming the problem, before the data directory is made; a bad `cpus` line in a
            config file names its file and line.
  planted   the check of `first` catches the planted bug --test-cpus-after-start (the list
            set on the main thread only, after the node's threads started): some thread
            then keeps every CPU. Skipped (77) on a one-CPU machine, where the bug changes
            nothing.

`first`, `last` and `narrowed` (and `planted`) need two CPUs to show anything beyond the
default: on a one-CPU machine `first` and `last` still run, `narrowed` is skipped (77), as
it is without taskset.
Every wait is a bounded poll of a real condition. Usage: cpus_test.py [--case NAME] [--plant] HMDB_BINARY
(--plant: start the nodes of `first` and `last` with the planted bug: they must fail. `narrowed`
cannot tell: its process runs on one CPU from the start.)
"""

import argparse
import os
import shutil
import subprocess
import sys

import harness

check = harness.check

# ctest's SKIP_RETURN_CODE: the case cannot run on this machine.
SKIP_EXIT_CODE = 77
# The server's exit code for a bad flag value it checks after parsing (kExitStartupFailure,
# src/server/fatal.h); a malformed list is refused by the flag parser (CLI11's own code).
STARTUP_FAILURE_EXIT_CODE = 1
# How long a refused start may take to exit.
REFUSAL_TIMEOUT_S = 30.0
# The largest CPU number a list may name, plus one (server/cpu_affinity.h kCpuSetSize).
CPU_SET_SIZE = 1024
# Writes before the SNAPSHOT (enough to take the kv app's first 2 MiB value block).
KEYS = 2000
VALUE = b"v" * 400
PIPELINE = 500

PLANT_FLAG = "--test-cpus-after-start"


def format_cpus(cpus):
    """A set of CPU numbers as Linux writes a list (and server/cpu_affinity.h format_cpu_list)."""
    out, cpus = [], sorted(cpus)
    i = 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else "%d-%d" % (cpus[i], cpus[j]))
        i = j + 1
    return ",".join(out)


def threads(pid):
    """{tid: (name, Cpus_allowed_list)} of every thread of the process."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        fields = {}
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    key, _, value = line.partition(":")
                    fields[key] = value.strip()
        except (FileNotFoundError, ProcessLookupError):
            # The thread ended between the listing and the open (ENOENT), or between the open
            # and the read (ESRCH: seen once in CI, 2026-12-07): either way it no longer runs.
            continue
        out[int(tid)] = (fields.get("Name", "?"), fields.get("Cpus_allowed_list", "?"))
    return out


def wrong_threads(pid, expected):
    """The threads whose CPUs are not `expected`, and every thread (for the report)."""
    seen = threads(pid)
    return {t: v for t, v in seen.items() if v[1] != expected}, seen


def check_every_thread(server, expected, when):
    wrong, seen = wrong_threads(server.proc.pid, expected)
    print("%s: %s: %d threads: %s" % (server.name, when, len(seen),
                                      ", ".join("%s=%s" % v for v in sorted(seen.values()))))
    check(not wrong, "%s: %s: threads not on CPUs %s: %s\n%s" % (server.name, when, expected, wrong,
                                                                   server.log_tail()))
    return seen


def start(work, name, cpus, plant, wrapper=()):
    args = ["--cpus", cpus] + ([PLANT_FLAG] if plant else [])
    s = harness.Server(sys.argv[-1], os.path.join(work, name), work, durability="always", extra_args=args, name=name)
    s.start(wrapper=wrapper)
    return s


def serve_and_check(work, name, cpus, expected, plant, wrapper=()):
    """Starts a node with --cpus `cpus`; checks every thread is on `expected` when it answers,
    and again after writes and a SNAPSHOT started the threads made on demand."""
    s = start(work, name, cpus, plant, wrapper)
    try:
        check_every_thread(s, expected, "at PING")
        with s.client() as c:
            reply = c.call("CONFIG", "GET", "hmdb-cpus")
            check(reply in ([b"hmdb-cpus", expected.encode()], {b"hmdb-cpus": expected.encode()}),
                  "%s: CONFIG GET hmdb-cpus answered %r, not %s" % (name, reply, expected))
            for base in range(0, KEYS, PIPELINE):
                replies = c.pipeline([("SET", "k%d" % i, VALUE) for i in range(base, base + PIPELINE)])
                check(all(r == "OK" for r in replies), "%s: SETs answered %r" % (name, replies[:3]))
            r = c.call("SNAPSHOT")
            check(isinstance(r, str) and r.startswith("OK snapshot at index"), "%s: SNAPSHOT answered %r" % (name, r))
        seen = check_every_thread(s, expected, "after writes and a SNAPSHOT")
        check(len(seen) >= 2, "%s: only %d thread: the disk thread is missing" % (name, len(seen)))
        check("cpus: the server's threads run on CPUs %s (--cpus %s)" % (expected, cpus) in s.log(),
              "%s: the log does not name the CPUs:\n%s" % (name, s.log_tail()))
        return s.log()
    finally:
        s.kill()


def allowed_cpus():
    return sorted(os.sched_getaffinity(0))


def case_first(work, plant):
    first = allowed_cpus()[0]
    serve_and_check(work, "first", str(first), str(first), plant)


def case_last(work, plant):
    last = allowed_cpus()[-1]
    serve_and_check(work, "last", "%d,%d-%d" % (last, last, last), str(last), plant)


def case_narrowed(work, plant):
    cpus = allowed_cpus()
    if len(cpus) < 2:
        return "one CPU: nothing to narrow"
    if shutil.which("taskset") is None:
        return "no taskset (util-linux) here"
    first, last = cpus[0], cpus[-1]
    on_last = ["taskset", "-c", str(last)]  # executes the server on CPU `last` alone (same PID)
    log = serve_and_check(work, "narrowed", "%d-%d" % (first, last), str(last), plant, wrapper=on_last)
    left_out = format_cpus(set(range(first, last)))
    check("cpus: CPUs %s of --cpus are left out: this process may not run on them" % left_out in log,
          "narrowed: the log does not name the CPUs left out (%s):\n%s" % (left_out, log))
    p = subprocess.run(on_last + [sys.argv[-1], "serve", "--port", "0", "--dir",
                                  os.path.join(work, "narrowed-refused"), "--cpus", str(first)],
                       capture_output=True, text=True, timeout=REFUSAL_TIMEOUT_S)
    out = p.stdout + p.stderr
    check(p.returncode == STARTUP_FAILURE_EXIT_CODE and
          "it names no CPU this process may run on; it may run on %d " % last in out,
          "narrowed: --cpus %d on CPU %d alone exited %d: %s" % (first, last, p.returncode, out))
    return None


def refused(work, name, args, expected_code, message):
    data = os.path.join(work, "refused-" + name)
    p = subprocess.run([sys.argv[-1], "serve", "--port", "0", "--dir", data] + args, capture_output=True, text=True,
                       timeout=REFUSAL_TIMEOUT_S)
    out = p.stdout + p.stderr
    print("refused %s: exit %d: %s" % (name, p.returncode, out.strip().splitlines()[0] if out.strip() else ""))
    check(p.returncode != 0, "refused %s: %s exited 0: %s" % (name, args, out))
    if expected_code is not None:
        check(p.returncode == expected_code, "refused %s: exit %d, not %d: %s" % (name, p.returncode, expected_code, out))
    lines = [line for line in out.splitlines() if message in line]
    check(len(lines) == 1, "refused %s: no one line with %r in: %s" % (name, message, out))
    check(not os.path.exists(data), "refused %s: the data directory was made before the refusal" % name)


def case_refused(work, plant):
    # Refused by the flag's check while the command line is parsed (its exit code is CLI11's).
    for name, cpus, message in (
            ("reversed", "3-1", "'3-1' is a reversed range (write 1-3)"),
            ("empty", "", "the list is empty"),
            ("trailing-comma", "0,", "has an empty item"),
            ("beyond", str(CPU_SET_SIZE), "CPU %d is beyond the largest CPU number a list may name" % CPU_SET_SIZE),
            ("word", "all", "'all' is not a CPU number or a range N-M"),
            ("blank", "0, 1", "the list has a blank in it")):
        refused(work, name, ["--cpus", cpus], None, message)
    cpus = allowed_cpus()
    if cpus[-1] + 1 < CPU_SET_SIZE:
        refused(work, "not-allowed", ["--cpus", str(cpus[-1] + 1)], STARTUP_FAILURE_EXIT_CODE,
                "hmdb serve: --cpus %d: it names no CPU this process may run on; it may run on %s "
                % (cpus[-1] + 1, format_cpus(cpus)))
    config = os.path.join(work, "hmdb.conf")
    with open(config, "w") as f:
        f.write("# a config file\ncpus 3-1\n")
    refused(work, "config", ["--config", config], STARTUP_FAILURE_EXIT_CODE,
            "%s:2: cpus: --cpus: '3-1' is a reversed range" % config)
    return None


def case_planted(work, plant):
    cpus = allowed_cpus()
    if len(cpus) < 2:
        return "one CPU: the planted bug changes nothing here"
    first = str(cpus[0])
    s = start(work, "planted", first, plant=True)
    try:
        with s.client() as c:
            check(c.call("PING") == "PONG", "planted: PING")
        wrong, seen = wrong_threads(s.proc.pid, first)
        print("planted: %d of %d threads not on CPU %s: %s" % (len(wrong), len(seen), first, sorted(wrong.values())))
        check(wrong, "planted: the check found every thread on CPU %s with the list applied late" % first)
        check(seen[s.proc.pid][1] == first, "planted: the main thread is not on CPU %s: %s" % (first, seen))
    finally:
        s.kill()
    return None


CASES = {"first": case_first, "last": case_last, "narrowed": case_narrowed, "refused": case_refused,
         "planted": case_planted}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--plant", action="store_true", help="start the nodes with the planted bug (they must fail)")
    ap.add_argument("binary")
    args = ap.parse_args()
    names = args.case or list(CASES)
    skipped = 0
    for name in names:
        work = harness.make_work_dir("hmdb-cpus-%s-" % name)
        try:
            why = CASES[name](work, args.plant)
        except (harness.TestFailure, harness.ServerExited) as e:
            print("FAIL %s: %s\nwork dir kept: %s" % (name, e, work))
            return 1
        if why:
            print("skip %s: %s" % (name, why))
            skipped += 1
        else:
            print("ok %s" % name)
        harness.remove_work_dir(work)
    return SKIP_EXIT_CODE if skipped == len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
