#!/usr/bin/env python3
"""The offline dry run of an upgrade (`<binary> dry-run --dir COPY`, docs/migrations.md):
a newer binary replays a copy of an older version's data directory, read-only, and reports
the digest a live node would, the time, the rates and the first error.

  1. hmdb-ledger (version 1) serves a single node: accounts, random transfers (amounts from
     the seed; some with ids, some refused), a SNAPSHOT half way, more transfers. Its INFO
     digest is noted and it stops (SIGTERM).
  2. Copies of its directory are dry-run by hmdb-ledger, hmdb-ledger-v2 and hmdb-ledger-v3:
     each exits 0, loads the snapshot, applies the log after it, prints progress, and
     reports the version-1 node's digest (at active version 1) and a migrated digest at its
     own version. The copy's files are byte for byte what they were (sha256, names).
  3. hmdb-ledger-v3 serves another copy: its INFO digest after replaying it equals the dry
     run's. Version 3 is activated there (CLUSTER SCHEMA ACTIVATE 3) and two-phase transfers
     made. While it runs, a dry run of its directory and a second node started on it both
     refuse (exit 1, naming its pid: one process per directory). Stopped, a copy of its
     directory dry-run by hmdb-ledger-v3 reports the live
     node's digest at version 3, and hmdb-ledger-v2 refuses it: exit 1, the first error
     naming the activation of schema version 3 it cannot read.
  4. Damaged copies: a byte flipped in the middle of the log exits 2 naming the segment and
     the byte offset; a byte flipped in the snapshot exits 2 naming the snapshot; a torn
     tail (garbage appended) is described and left in place (the file unchanged: the dry run
     does not cut it as a restarting node would), exit 0 with the same digest.

Usage: dry_run_test.py --ledger BIN --ledger-v2 BIN --ledger-v3 BIN [--seed S] [--keep]
[HMDB_BINARY (ignored)]
"""

import argparse
import glob
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import time

import cluster as cl
import harness
import resp

# Bounds: a dry run of this small directory takes milliseconds; generous for a loaded machine.
DRY_RUN_TIMEOUT_S = 60.0
TRANSFERS_BEFORE_SNAPSHOT = 150
TRANSFERS_AFTER_SNAPSHOT = 150
EXIT_UNREADABLE = 1  # as `serve` stops on data of a schema version it does not read
EXIT_CORRUPTION = 2

check = harness.check


def dry_run(binary, directory):
    """Runs `binary dry-run --dir directory --progress-ms 1`: (exit code, stdout, stderr)."""
    p = subprocess.run([binary, "dry-run", "--dir", directory, "--progress-ms", "1"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=DRY_RUN_TIMEOUT_S)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def report_value(out, key):
    m = re.search(r"^%s: (.*)$" % re.escape(key), out, re.M)
    check(m is not None, "no '%s:' line in the dry run's report:\n%s" % (key, out))
    return m.group(1)


def live_digest(server):
    """INFO digest's state digest of a running node: (hex, schema version)."""
    with server.client() as c:
        info = cl.parse_info(c.call("INFO", "digest"))
    return info["state_digest"], int(info["state_digest_schema_version"])


def fingerprint(directory):
    """{file name: sha256} of a directory: what a read-only run must leave as it was."""
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    return dst


def flip_byte(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def call_ok(client, *words):
    reply = client.call(*words)
    check(not isinstance(reply, resp.RespError), "%s: %s" % (" ".join(words), reply))
    return reply


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--ledger-v2", required=True)
    parser.add_argument("--ledger-v3", required=True)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("ignored", nargs="?")
    args = parser.parse_args()
    seed = harness.get_seed(args.seed)
    rng = random.Random(seed)
    v1, v2, v3 = (os.path.abspath(b) for b in (args.ledger, args.ledger_v2, args.ledger_v3))
    work = harness.make_work_dir("hmdb-dry-run-")
    started = time.monotonic()

    def log(msg):
        print("[%6.1fs] %s" % (time.monotonic() - started, msg), flush=True)

    log("dry run test, seed %d, in %s" % (seed, work))
    try:
        # 1. A version-1 node's data: a snapshot half way, the log after it.
        data = os.path.join(work, "v1")
        node = harness.Server(v1, data, work, name="ledger-v1")
        node.start()
        with node.client() as c:
            call_ok(c, "ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT")
            for name in ("alice", "bob", "carol"):
                call_ok(c, "ACCOUNT.CREATE", name, "USD")

            def transfers(n):
                for i in range(n):
                    a, b = rng.sample(["bank", "alice", "bob", "carol"], 2)
                    words = ["TRANSFER", a, b, str(rng.randint(1, 5000)), "USD"]
                    if rng.random() < 0.2:
                        words += ["ID", "t%d" % rng.randint(0, 20)]
                    c.call(*words)  # insufficient funds and id conflicts are answers too

            transfers(TRANSFERS_BEFORE_SNAPSHOT)
            snap = c.call("SNAPSHOT")
            check(isinstance(snap, str) and snap.startswith("OK"), "SNAPSHOT answered %r" % (snap,))
            transfers(TRANSFERS_AFTER_SNAPSHOT)
        digest_v1, version = live_digest(node)
        check(version == 1, "the version-1 node hashes at version 1")
        check(node.terminate() == 0, "SIGTERM of the version-1 node")
        check(glob.glob(os.path.join(data, "*.hmsnap")), "a snapshot in %s" % data)
        log("version-1 data: digest %s" % digest_v1)

        # 2. Dry runs of copies by every version: the version-1 digest, nothing written.
        copy = copy_dir(data, os.path.join(work, "copy"))
        before = fingerprint(copy)
        migrated = {}
        for binary, own in ((v1, 1), (v2, 2), (v3, 3)):
            code, out, err = dry_run(binary, copy)
            check(code == 0, "%s dry-run exited %d:\n%s\n%s" % (binary, code, out, err))
            check(report_value(out, "result") == "ok" and report_value(out, "first error") == "none", out)
            check(report_value(out, "digest").split()[1:] == [digest_v1, "1"],
                  "%s's dry run reports the digest %r, the version-1 node had %s at version 1"
                  % (binary, report_value(out, "digest"), digest_v1))
            check(re.search(r"^snapshot: .*schema version 1, \d+ bytes, loaded", out, re.M), out)
            check(re.search(r"^applied: index \d+ \(%d entries" % TRANSFERS_AFTER_SNAPSHOT, out, re.M), out)
            check(re.search(r"entries/s", out) and re.search(r"log records/s", out), out)
            check("dry run: read " in err and "dry run: loading snapshot" in err, "progress on stderr:\n%s" % err)
            check(("schema version %d" % own) in report_value(out, "migrated digest"), out)
            migrated[own] = report_value(out, "migrated digest").split()[0]
            check(fingerprint(copy) == before, "%s's dry run changed %s" % (binary, copy))
        check(migrated[1] == digest_v1, "version 1's own digest is the node's")
        check(len(set(migrated.values())) == 3, "each version's layout hashes differently: %r" % migrated)
        log("dry runs by v1, v2, v3: digest %s at version 1; the copy unchanged" % digest_v1)

        # 3. A live version-3 node replaying the same data reports the same digest.
        live_dir = copy_dir(data, os.path.join(work, "live-v3"))
        node3 = harness.Server(v3, live_dir, work, name="ledger-v3")
        node3.start()
        check(live_digest(node3) == (digest_v1, 1), "the live v3 node's digest %r" % (live_digest(node3),))
        with node3.client() as c:
            check(c.call("CLUSTER", "SCHEMA", "ACTIVATE", "3") == "OK", "activation of version 3")
            call_ok(c, "TRANSFER.PENDING", "bank", "alice", "12.50", "USD", "ID", "p1", "MEMO", "hotel")
            call_ok(c, "TRANSFER.PENDING", "bank", "bob", "3", "USD", "ID", "p2")
            call_ok(c, "TRANSFER.POST", "p1")
            call_ok(c, "TRANSFER.VOID", "p2")
        digest_v3, version = live_digest(node3)
        check(version == 3, "the live node hashes at version 3 once it is active")
        # The live node holds its directory: a dry run of it, and a second node on it, refuse.
        code, out, err = dry_run(v3, live_dir)
        first = report_value(out, "first error")
        check(code == EXIT_UNREADABLE and ("in use by another process (pid %d)" % node3.proc.pid) in first
              and "dry-run a copy" in first, "a dry run of the live node's directory exited %d: %s" % (code, first))
        second = subprocess.run(harness.server_command(v3, node3.kind, harness.free_port(), live_dir, "always"),
                                stdin=subprocess.DEVNULL, capture_output=True, timeout=DRY_RUN_TIMEOUT_S)
        second_err = second.stderr.decode("utf-8", "replace") + second.stdout.decode("utf-8", "replace")
        check(second.returncode == EXIT_UNREADABLE and ("in use by another process (pid %d)" % node3.proc.pid)
              in second_err, "a second node on the live directory exited %d:\n%s" % (second.returncode, second_err))
        log("the live node's directory is refused to a dry run and to a second node: %s" % first)
        check(node3.terminate() == 0, "SIGTERM of the version-3 node")
        after = copy_dir(live_dir, os.path.join(work, "copy-v3"))
        code, out, err = dry_run(v3, after)
        check(code == 0 and report_value(out, "digest").split()[1:] == [digest_v3, "3"],
              "v3's dry run of the activated data (exit %d), live digest %s:\n%s" % (code, digest_v3, out))
        check(report_value(out, "active schema version") == "3", out)
        code, out, err = dry_run(v2, after)
        check(code == EXIT_UNREADABLE, "v2's dry run of version-3 data exited %d:\n%s" % (code, out))
        first = report_value(out, "first error")
        check("activates" in first and "schema version 3" in first and "1..2" in first, "first error: %s" % first)
        check(report_value(out, "result").startswith("failed"), out)
        log("live v3: digest %s = dry run's; v2 refuses the activated data: %s" % (digest_v1, first))

        # 4. Damaged copies.
        bad = copy_dir(data, os.path.join(work, "bad-log"))
        segment = sorted(glob.glob(os.path.join(bad, "*.hmlog")))[-1]
        flip_byte(segment, harness.written_size(segment) // 2)
        code, out, err = dry_run(v3, bad)
        first = report_value(out, "first error")
        check(code == EXIT_CORRUPTION and os.path.basename(segment) in first and "byte offset" in first,
              "a damaged log (exit %d): %s" % (code, out))
        bad = copy_dir(data, os.path.join(work, "bad-snapshot"))
        snapshot = sorted(glob.glob(os.path.join(bad, "*.hmsnap")))[-1]
        flip_byte(snapshot, os.path.getsize(snapshot) // 2)
        code, out, err = dry_run(v3, bad)
        first = report_value(out, "first error")
        check(code == EXIT_CORRUPTION and os.path.basename(snapshot) in first,
              "a damaged snapshot (exit %d): %s" % (code, out))
        torn = copy_dir(data, os.path.join(work, "torn"))
        segment = sorted(glob.glob(os.path.join(torn, "*.hmlog")))[-1]
        os.truncate(segment, harness.written_size(segment))  # a torn write after the records
        with open(segment, "ab") as f:
            f.write(b"\x07torn write")
        before = fingerprint(torn)
        code, out, err = dry_run(v3, torn)
        check(code == 0 and "torn record" in out and report_value(out, "digest").split()[1] == digest_v1,
              "a torn tail (exit %d): %s" % (code, out))
        check(fingerprint(torn) == before, "the dry run cut the torn tail of %s" % segment)
        log("damaged log and snapshot: exit 2 with the first error; a torn tail described, left in place")
    except harness.TestFailure as e:
        print("FAIL: %s\nseed %d; replay: %s" % (e, seed, harness.replay_command(
            __file__, ["--seed", str(seed), "--ledger", v1, "--ledger-v2", v2, "--ledger-v3", v3])),
              file=sys.stderr, flush=True)
        return 1
    finally:
        if not args.keep:
            harness.remove_work_dir(work)
    log("PASS (%.1fs)" % (time.monotonic() - started))
    return 0


if __name__ == "__main__":
    sys.exit(main())
