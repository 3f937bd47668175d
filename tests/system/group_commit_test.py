#!/usr/bin/env python3
"""Group commit's holds (docs/operations.md, "Durability modes"; INFO `disk_holds`,
`disk_holds_expired`, `disk_holds_expired_unsent`, `disk_holds_skipped`,
`disk_hold_sync_avg_us`, `disk_hold_return_avg_us`; `--group-commit-hold`) as a user sees them
through redis-py (Debian's python3-redis), on one real node:

  always (--group-commit-hold on)
          * one client writes once and then nothing: the round after its write is held for
            that client's next write, which never comes, so the hold runs out (disk_holds and
            disk_holds_expired each grow by at least one; of the expired, the unsent count is
            never more than the expired);
          * CLIENTS clients write WRITES_EACH keys each, one at a time, concurrently: every
            write is answered OK and readable, fewer fdatasyncs than writes were made
            (disk_fsyncs grew less than the writes: rounds held for the cohort joined
            several clients' writes), holds happened, none skipped, and the counters keep
            their order (unsent <= expired <= holds).
  auto    (the default; CONFIG GET says so) the lone write's round holds (no cohort measured
          yet) and its hold runs out, which measures a cohort: both averages are then above 0;
          the concurrent writes are all answered and readable, and every round that carried
          them either held or was skipped (holds + skipped grew). Whether a round holds
          depends on the machine's times (group_hold_policy_test checks that decision).
  off     no round holds (disk_holds stays 0), the lone write's round is skipped, the
          concurrent writes are all answered and readable.
  none    the same clients in `--durability none`: all answered and readable, no hold and no
          fdatasync (there is nothing to wait for).

No timing in pass/fail: every wait is a bounded poll of INFO. Exits 77 (skipped) without
python3-redis. Usage: group_commit_test.py [--case always|auto|off|none] HMDB_BINARY
"""

import argparse
import os
import sys
import threading
import time

import harness

redis = harness.import_redis(skip_as="group_commit_test")

# Concurrent writers and the writes each sends one at a time.
CLIENTS = 8
WRITES_EACH = 300
# Bound of a poll for a counter to move, and of any one reply.
WAIT_S = 20.0


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def stats(r):
    s = r.info("stats")
    s.update(r.info("persistence"))
    return {k: int(s.get(k, 0)) for k in ("disk_holds", "disk_holds_expired", "disk_holds_expired_unsent",
                                          "disk_holds_skipped", "disk_hold_sync_avg_us", "disk_hold_return_avg_us",
                                          "disk_fsyncs", "total_writes")}


def check_order(s, where):
    expect(s["disk_holds_expired_unsent"] <= s["disk_holds_expired"] <= s["disk_holds"],
           "%s: holds out of order: %r" % (where, s))


def write_concurrently(port):
    """CLIENTS redis-py clients, WRITES_EACH SETs each, one at a time; returns the errors."""
    errors = []

    def writer(n):
        try:
            r = redis.Redis(host=harness.HOST, port=port, socket_timeout=WAIT_S)
            for i in range(WRITES_EACH):
                if r.set("c%d:%d" % (n, i), "v%d" % i) is not True:
                    errors.append("client %d write %d not OK" % (n, i))
                    return
            r.close()
        except Exception as e:  # noqa: BLE001 - reported as the test's failure
            errors.append("client %d: %r" % (n, e))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def check_all_readable(r):
    p = r.pipeline(transaction=False)
    for n in range(CLIENTS):
        for i in range(WRITES_EACH):
            p.get("c%d:%d" % (n, i))
    values = p.execute()
    want = [b"v%d" % i for _ in range(CLIENTS) for i in range(WRITES_EACH)]
    expect(values == want, "%d of %d written values read back" % (sum(a == b for a, b in zip(values, want)), len(want)))


# --case -> (--durability, --group-commit-hold)
CASES = {"always": ("always", "on"), "auto": ("always", None), "off": ("always", "off"), "none": ("none", None)}


def run(binary, case):
    durability, hold = CASES[case]
    work = harness.make_work_dir("hmdb-group-commit-")
    extra = ["--group-commit-hold", hold] if hold else []
    server = harness.Server(binary, os.path.join(work, "data"), work, durability=durability, extra_args=extra,
                            name="group-commit")
    try:
        server.start()
        r = redis.Redis(host=harness.HOST, port=server.port, socket_timeout=WAIT_S)
        configured = r.config_get("hmdb-group-commit-hold").get("hmdb-group-commit-hold")
        expect(configured == (hold or "auto"), "CONFIG GET hmdb-group-commit-hold: %r" % configured)
        if durability == "always":
            before = stats(r)
            expect(r.set("lone", "1") is True, "the lone SET")
            if case == "off":
                # Skipped is counted when the round's ack is published, before the reply.
                after = stats(r)
                expect(after["disk_holds_skipped"] > before["disk_holds_skipped"] and after["disk_holds"] == 0,
                       "off: the lone write's round was not skipped: %r" % after)
            else:
                deadline = time.monotonic() + WAIT_S
                while stats(r)["disk_holds_expired"] == before["disk_holds_expired"]:
                    expect(time.monotonic() < deadline, "no hold ran out within %.0f s of a lone write" % WAIT_S)
                    time.sleep(0.01)
                after = stats(r)
                expect(after["disk_holds"] > before["disk_holds"], "a hold ran out but none was counted: %r" % after)
                if case == "auto":
                    # (A hold that ran out before the replies were even sent measures no cohort.)
                    unsent = after["disk_holds_expired_unsent"] > before["disk_holds_expired_unsent"]
                    expect(after["disk_hold_sync_avg_us"] > 0 and (after["disk_hold_return_avg_us"] > 0 or unsent),
                           "auto: a hold ran out, yet no average: %r" % after)
            check_order(after, "after the lone write")
            print("lone write: holds %d -> %d, expired %d -> %d, skipped %d -> %d"
                  % (before["disk_holds"], after["disk_holds"], before["disk_holds_expired"],
                     after["disk_holds_expired"], before["disk_holds_skipped"], after["disk_holds_skipped"]))
        before = stats(r)
        errors = write_concurrently(server.port)
        expect(not errors, "; ".join(errors[:5]))
        after = stats(r)
        check_all_readable(r)
        writes = after["total_writes"] - before["total_writes"]
        fsyncs = after["disk_fsyncs"] - before["disk_fsyncs"]
        holds = after["disk_holds"] - before["disk_holds"]
        skipped = after["disk_holds_skipped"] - before["disk_holds_skipped"]
        expect(writes == CLIENTS * WRITES_EACH, "total_writes grew by %d, %d were sent" % (writes, CLIENTS * WRITES_EACH))
        check_order(after, "after the concurrent writes")
        if case == "always":
            expect(0 < fsyncs < writes, "%d fdatasyncs for %d concurrent writes: no group commit" % (fsyncs, writes))
            expect(holds > 0 and skipped == 0, "on: %d holds, %d skipped during %d concurrent writes"
                   % (holds, skipped, writes))
        elif case == "auto":
            expect(0 < fsyncs <= writes, "%d fdatasyncs for %d concurrent writes" % (fsyncs, writes))
            expect(holds + skipped > 0, "auto: no round held or skipped during %d writes" % writes)
        elif case == "off":
            expect(0 < fsyncs <= writes and holds == 0 and skipped > 0,
                   "off: %d fdatasyncs, %d holds, %d skipped for %d writes" % (fsyncs, holds, skipped, writes))
        else:
            expect(fsyncs == 0 and holds == 0, "mode none: %d fdatasyncs and %d holds" % (fsyncs, holds))
        print("%s: %d writes by %d clients, %d fdatasyncs (%.1f writes each), %d holds, %d expired (%d unsent), "
              "%d skipped; averages: fdatasync %d us, cohort %d us"
              % (case, writes, CLIENTS, fsyncs, writes / fsyncs if fsyncs else 0, holds,
                 after["disk_holds_expired"] - before["disk_holds_expired"],
                 after["disk_holds_expired_unsent"] - before["disk_holds_expired_unsent"], skipped,
                 after["disk_hold_sync_avg_us"], after["disk_hold_return_avg_us"]))
        r.close()
        expect(server.terminate() == 0, "server exit code")
    finally:
        server.kill()
    harness.remove_work_dir(work)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", choices=sorted(CASES), default="always")
    ap.add_argument("binary")
    a = ap.parse_args()
    run(a.binary, a.case)
    print("group_commit_test %s: OK" % a.case)


if __name__ == "__main__":
    main()
