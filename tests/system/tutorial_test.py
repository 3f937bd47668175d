#!/usr/bin/env python3
"""The redis-cli sessions of docs/app-tutorial.md, run as written against hmdb-ledger.

Every fenced block of the tutorial that holds redis-cli prompts (`127.0.0.1:7380> ...`, or
`127.0.0.1:7380(TX)> ...` inside MULTI) is one session: its commands are sent by the real
redis-cli (`--no-raw`, which formats replies as the interactive shell does) on one
connection, and what it prints must be the block's reply lines, byte for byte, except:

  - an annotation at the end of a reply line (`   <- ...`) is the tutorial's comment;
  - the value after a "time_ms" field is the leader's clock: any integer is accepted.

Between two sessions the server is killed with kill -9 and started again on its data
directory (the tutorial says that a restart keeps everything; section 12's request-id
example retries a transfer after such a restart), and before the last restart it takes a
snapshot, so that the request table comes back from a snapshot, not only from the log.

Usage: tutorial_test.py HMDB_LEDGER_BINARY. Exit 77 (skipped) without redis-cli.
"""
import os
import re
import shutil
import subprocess
import sys

import harness

SKIP_EXIT_CODE = 77
HERE = os.path.dirname(os.path.abspath(__file__))
TUTORIAL = os.path.join(HERE, "..", "..", "docs", "app-tutorial.md")
PROMPT = re.compile(r"^\d+\.\d+\.\d+\.\d+:\d+(\(TX\))?> (.*)$")
ANNOTATION = re.compile(r"\s+<- .*$")
# A session's bound: a handful of commands on loopback.
SESSION_TIMEOUT_S = 30.0


def sessions(path):
    """[(line number, [(command, [expected reply lines])])] for each block with prompts."""
    out = []
    block, in_block = None, False
    for number, line in enumerate(open(path, encoding="utf-8").read().split("\n"), 1):
        if line.startswith("```"):
            if in_block and block:
                out.append(block)
            in_block, block = not in_block, None
            continue
        if not in_block:
            continue
        m = PROMPT.match(line)
        if m:
            if block is None:
                block = (number, [])
            block[1].append((m.group(2), []))
        elif block is not None:
            block[1][-1][1].append(ANNOTATION.sub("", line))
    return out


def matches(expected, got):
    if len(expected) != len(got):
        return False
    for i, (e, g) in enumerate(zip(expected, got)):
        if e == g:
            continue
        # The value after "time_ms" (in an array: `N) "time_ms"`, then `N+1) (integer) T`).
        if i > 0 and expected[i - 1].endswith('"time_ms"') and re.sub(r"\d+$", "", e) == re.sub(r"\d+$", "", g):
            continue
        return False
    return True


def run_session(cli, port, commands):
    text = "".join(command + "\n" for command, _ in commands)
    done = subprocess.run([cli, "-h", harness.HOST, "-p", str(port), "--no-raw"], input=text, capture_output=True,
                          text=True, timeout=SESSION_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise harness.TestFailure("redis-cli exited %d: %s" % (done.returncode, done.stderr))
    return done.stdout.rstrip("\n").split("\n")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    cli = shutil.which("redis-cli")
    if cli is None:
        print("skip: redis-cli is not installed")
        return SKIP_EXIT_CODE
    blocks = sessions(TUTORIAL)
    if len(blocks) < 3:
        raise harness.TestFailure("%s has %d redis-cli sessions, expected sections 10 and 12's"
                                  % (TUTORIAL, len(blocks)))
    work = harness.make_work_dir("hmdb-tutorial-")
    server = harness.Server(os.path.abspath(sys.argv[1]), os.path.join(work, "data"), work, name="ledger")
    server.start()
    try:
        for k, (line, commands) in enumerate(blocks):
            if k > 0:
                if k == len(blocks) - 1:
                    with server.client() as c:
                        c.call("SNAPSHOT")
                server.kill()
                server.start()
            got = run_session(cli, server.port, commands)
            expected = [reply for _, replies in commands for reply in replies]
            if not matches(expected, got):
                raise harness.TestFailure("the session at docs/app-tutorial.md:%d printed\n%s\nnot\n%s"
                                          % (line, "\n".join(got), "\n".join(expected)))
            print("ok: the session at docs/app-tutorial.md:%d (%d command%s)%s"
                  % (line, len(commands), "" if len(commands) == 1 else "s", "" if k == 0 else ", after a kill -9 and a restart"))
    except (harness.TestFailure, harness.ServerExited) as e:
        print("FAIL: %s\nwork dir kept: %s" % (e, work))
        server.kill()
        return 1
    server.kill()
    harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
