#!/usr/bin/env python3
"""`hmdb serve --huge-pages` (docs/operations.md, "Huge pages"; src/server/huge_pages.h): with
`yes` the server asks for its heap in transparent huge pages by executing itself again with
glibc's tunable glibc.malloc.hugetlb=1, so that a snapshot's fork() copies few page-table
entries.

  yes         the default, and --huge-pages yes: INFO huge_pages is "yes", the process (same PID after the exec) runs with
              GLIBC_TUNABLES=glibc.malloc.hugetlb=1, the log says so; it serves writes and
              a SNAPSHOT (whose fork_stall_last_us is printed, not checked); a tunable the
              operator set before (glibc.malloc.arena_max=2) is kept beside it.
  no          --huge-pages no, and `huge-pages no` in a config file: INFO "no", no tunable
              added.
  mend        writes while a snapshot child shares the memory split the huge pages they
              touch (the child is held with SIGSTOP so that the writes land while it lives:
              AnonHugePages falls below half); once the snapshot is done the server collapses
              them back (INFO huge_pages_mend_passes counts the pass; AnonHugePages back to at
              least MEND_KEPT of what it was). Fails without the mending (the split stays).
              Skipped (77) where the kernel gives the heap no huge pages to start with, or
              does not split them (before Linux 5.8), or has no MADV_COLLAPSE (before 6.1).
  operator    GLIBC_TUNABLES=glibc.malloc.hugetlb=0 set by the operator wins over
              --huge-pages yes: INFO says so, the environment is left as it was (no exec).

Where this kernel or glibc cannot (transparent huge pages "never", glibc before 2.35) INFO
says "no (<why>)": the yes case then checks that the node serves and exits 77 (skipped)
at the end. Nothing here depends on time or on the kernel finding huge pages (it may not:
the advice only asks); AnonHugePages is printed.

Usage: huge_pages_test.py HMDB_BINARY
"""

import os
import signal
import sys
import threading

import harness

SKIP_EXIT_CODE = 77
TUNABLE = "glibc.malloc.hugetlb=1"
KEYS = 20000  # ~3 MB of heap: a few huge pages' worth
VALUE = b"v" * 100
PIPELINE = 1000

MEND_KEYS = 200000
MEND_VALUE = b"m" * 300          # ~80 MB of heap: tens of huge pages
MEND_HUGE_MIN_KB = 16 << 10      # less than this in huge pages to start with: nothing to test
MEND_KEPT = 0.8                  # of the huge pages before the snapshot, back after the mending
POLL_S = 0.05
POLL_TIMEOUT_S = 60.0

check = harness.check


def info_field(server, name):
    with server.client() as c:
        text = c.call("INFO", "persistence").decode()
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1]
    raise harness.TestFailure("INFO persistence has no %s:\n%s" % (name, text))


def environ(server):
    """The process's environment block as exec() gave it (glibc's tunables parser may since
    have cut GLIBC_TUNABLES at its ':' separators in place: read the raw bytes)."""
    with open("/proc/%d/environ" % server.proc.pid, "rb") as f:
        return f.read()


def anon_huge_kb(server):
    with open("/proc/%d/smaps_rollup" % server.proc.pid) as f:
        for line in f:
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def start(work, name, args=(), env=None):
    saved = os.environ.get("GLIBC_TUNABLES")
    if env is None:
        os.environ.pop("GLIBC_TUNABLES", None)
    else:
        os.environ["GLIBC_TUNABLES"] = env
    try:
        s = harness.Server(sys.argv[1], os.path.join(work, name), work, durability="none", extra_args=list(args),
                           name=name)
        s.start()
        return s
    finally:
        if saved is None:
            os.environ.pop("GLIBC_TUNABLES", None)
        else:
            os.environ["GLIBC_TUNABLES"] = saved


def case_yes(work, name, args):
    s = start(work, name, args)
    try:
        state = info_field(s, "huge_pages")
        with s.client() as c:
            for base in range(0, KEYS, PIPELINE):
                replies = c.pipeline([("SET", "k%d" % i, VALUE) for i in range(base, base + PIPELINE)])
                check(all(r == "OK" for r in replies), "SETs answered %r" % replies[:3])
            check(c.call("GET", "k%d" % (KEYS - 1)) == VALUE, "the last SET reads back")
            r = c.call("SNAPSHOT")
            check(isinstance(r, str) and r.startswith("OK snapshot at index"), "SNAPSHOT answered %r" % (r,))
        print("%s: huge_pages:%s, AnonHugePages %d kB, fork_stall_last_us %s" %
              (name, state, anon_huge_kb(s), info_field(s, "fork_stall_last_us")))
        if state != "yes":
            # Only the machine may say no: its kernel (THP "never") or its glibc (before 2.35).
            check(state.startswith("no (transparent huge pages") or state.startswith("no (glibc"),
                  "%s: INFO huge_pages: %r" % (name, state))
            return state
        check(b"GLIBC_TUNABLES=" + TUNABLE.encode() + b"\0" in environ(s),
              "%s: the tunable not in the node's environment" % name)
        check("memory: heap in transparent huge pages: yes" in s.log(), "%s: the log line:\n%s" % (name, s.log_tail()))
    finally:
        s.kill()
    s = start(work, "kept-" + name, args, env="glibc.malloc.arena_max=2")
    try:
        check(info_field(s, "huge_pages") == "yes", "huge_pages with another tunable set")
        env = environ(s)
        check(b"GLIBC_TUNABLES=glibc.malloc.arena_max=2" in env and TUNABLE.encode() in env,
              "the operator's tunable and ours in the environment")
    finally:
        s.kill()
    return None


def wait_for(what, predicate):
    """harness.wait_for within POLL_TIMEOUT_S."""
    return harness.wait_for(what, POLL_TIMEOUT_S, predicate, POLL_S)


def children(pid):
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
            out += [int(x) for x in f.read().split()]
    return out


def case_mend(work):
    s = start(work, "mend")
    try:
        if info_field(s, "huge_pages") != "yes":
            return "no huge pages here: " + info_field(s, "huge_pages")
        with s.client() as c:
            for base in range(0, MEND_KEYS, PIPELINE):
                replies = c.pipeline([("SET", "k%d" % i, MEND_VALUE) for i in range(base, base + PIPELINE)])
                check(all(r == "OK" for r in replies), "SETs answered %r" % replies[:3])
            before = anon_huge_kb(s)
            if before < MEND_HUGE_MIN_KB:
                return "only %d kB of the heap in huge pages" % before
            passes = int(info_field(s, "huge_pages_mend_passes"))
            # A SNAPSHOT whose child is held stopped while every key is written again.
            done = {}
            snap = threading.Thread(target=lambda: done.update(r=s.client(timeout=120).call("SNAPSHOT")))
            snap.start()
            wait_for("the snapshot child", lambda: children(s.proc.pid))
            child = children(s.proc.pid)[0]
            os.kill(child, signal.SIGSTOP)
            try:
                for base in range(0, MEND_KEYS, PIPELINE):
                    c.pipeline([("SET", "k%d" % i, MEND_VALUE) for i in range(base, base + PIPELINE)])
                split = anon_huge_kb(s)
            finally:
                os.kill(child, signal.SIGCONT)
            snap.join(120)
            check(str(done.get("r", "")).startswith("OK snapshot"), "SNAPSHOT answered %r" % done.get("r"))
            print("mend: AnonHugePages %d kB before the snapshot, %d kB after the writes during it" % (before, split))
            if split > before // 2:
                return "writes during a snapshot did not split the huge pages (%d of %d kB kept)" % (split, before)
            wait_for("the mending pass", lambda: int(info_field(s, "huge_pages_mend_passes")) > passes)
            after = anon_huge_kb(s)
            print("mend: %d kB after the mending pass (%s ranges)" % (after, info_field(s, "huge_pages_mend_ranges")))
            if "MADV_COLLAPSE" in s.log() and after < MEND_KEPT * before:
                return "this kernel cannot collapse: " + s.log_tail()
            check(after >= MEND_KEPT * before, "AnonHugePages %d kB after the mending, %d before the snapshot"
                  % (after, before))
            r = c.call("GET", "k%d" % (MEND_KEYS - 1))
            check(r == MEND_VALUE, "the last key after the mending: %r" % (r[:20] if r else r,))
    finally:
        s.kill()
    return None


def case_no(work):
    config = os.path.join(work, "hmdb.conf")
    with open(config, "w") as f:
        f.write("huge-pages no\n")
    for name, args in (("flag", ["--huge-pages", "no"]), ("config", ["--config", config])):
        s = start(work, "no-" + name, args)
        try:
            check(info_field(s, "huge_pages") == "no", "%s: INFO huge_pages %r" % (name, info_field(s, "huge_pages")))
            check(b"GLIBC_TUNABLES" not in environ(s), "%s: a tunable in the environment" % name)
            with s.client() as c:
                check(c.call("SET", "k", "v") == "OK", "%s: SET" % name)
        finally:
            s.kill()


def case_operator(work):
    s = start(work, "operator", ["--huge-pages", "yes"], env="glibc.malloc.hugetlb=0")
    try:
        got = info_field(s, "huge_pages")
        check(got == "no (GLIBC_TUNABLES sets glibc.malloc.hugetlb=0)", "INFO huge_pages %r" % got)
        check(b"GLIBC_TUNABLES=glibc.malloc.hugetlb=0\0" in environ(s) and TUNABLE.encode() not in environ(s),
              "the operator's environment changed")
    finally:
        s.kill()


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: huge_pages_test.py HMDB_BINARY")
    work = harness.make_work_dir("hmdb-huge-pages-")
    # The default is yes (docs/decisions.md, "Huge pages by default"): no flag behaves as the flag.
    skipped = case_yes(work, "default", []) or case_yes(work, "yes", ["--huge-pages", "yes"])
    skipped = case_mend(work) or skipped
    case_no(work)
    case_operator(work)
    harness.remove_work_dir(work)
    if skipped:
        print("SKIP: this machine cannot: %s" % skipped)
        sys.exit(SKIP_EXIT_CODE)
    print("PASS huge_pages: yes (the default) re-executes with the tunable (the operator's kept), no by flag and config, "
          "the operator's hugetlb=0 wins")


if __name__ == "__main__":
    main()
