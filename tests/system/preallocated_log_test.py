#!/usr/bin/env python3
"""The log's preallocated zeros, as a user sees them (docs/formats.md, "Preallocated zeros";
docs/operations.md, INFO persistence and "What a node can and cannot detect"):

  1. A --durability always node takes 50 SETs through redis-cli; `redis-cli INFO persistence`
     says disk_preallocated_bytes >= 1 MiB and disk_preallocate_failures 0.
  2. kill -9; `hmdb log verify DIR` exits 0, says SOUND and names the zeros after the records
     ("bytes of preallocated zeros (no record)").
  3. Restarted on the same directory: its log has no "torn" line (zeros are not a torn tail),
     and redis-cli reads every value back.

Only replies, exit codes and printed text are checked, never time.

Usage: preallocated_log_test.py HMDB_BINARY
"""

import os
import subprocess
import sys

import harness

WRITES = 50
PREALLOCATE_BYTES = 1 << 20  # src/storage/log.h, kLogPreallocateBytes
TOOL_TIMEOUT_S = 60


def redis_cli(port, *args):
    out = subprocess.run(["redis-cli", "-h", harness.HOST, "-p", str(port)] + list(args), capture_output=True,
                         text=True, timeout=TOOL_TIMEOUT_S)
    harness.check(out.returncode == 0, "redis-cli %s exited %d: %s" % (args, out.returncode, out.stderr))
    return out.stdout


def info_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise harness.TestFailure("no %s in INFO:\n%s" % (name, text))


def main():
    binary = sys.argv[1]
    work = harness.make_work_dir("hmdb-prealloc-")
    server = harness.Server(binary, os.path.join(work, "data"), work, durability="always")
    ok = False
    try:
        server.start()
        for i in range(WRITES):
            harness.check(redis_cli(server.port, "SET", "k%d" % i, "v%d" % i).strip() == "OK", "SET k%d" % i)
        info = redis_cli(server.port, "INFO", "persistence")
        written = int(info_field(info, "disk_preallocated_bytes"))
        harness.check(written >= PREALLOCATE_BYTES, "disk_preallocated_bytes %d < %d" % (written, PREALLOCATE_BYTES))
        harness.check(info_field(info, "disk_preallocate_failures") == "0", "disk_preallocate_failures")
        server.kill()

        verify = subprocess.run([binary, "log", "verify", server.data_dir], capture_output=True, text=True,
                                timeout=TOOL_TIMEOUT_S)
        harness.check(verify.returncode == 0, "hmdb log verify exited %d:\n%s" % (verify.returncode, verify.stdout))
        harness.check("verdict: SOUND" in verify.stdout, "no SOUND verdict:\n" + verify.stdout)
        harness.check("bytes of preallocated zeros (no record)" in verify.stdout,
                      "the zeros are not named:\n" + verify.stdout)

        server.start()
        harness.check("torn" not in server.log(), "the restart called the zeros a torn tail:\n" + server.log_tail())
        for i in range(WRITES):
            got = redis_cli(server.port, "GET", "k%d" % i).strip()
            harness.check(got == "v%d" % i, "k%d reads %r after the restart" % (i, got))
        print("PASS preallocated_log: INFO %d bytes of zeros written, log verify names them, kill -9 and restart "
              "reads all %d writes" % (written, WRITES))
        ok = True
    except harness.TestFailure as e:
        harness.fail("%s\n%s" % (e, server.log_tail() if server.proc else ""))
    finally:
        if server.running():
            server.kill()
        if ok:
            harness.remove_work_dir(work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
