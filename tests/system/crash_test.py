#!/usr/bin/env python3
"""Crash test: kill -9 the server under pipelined load, restart it, and check that every
acknowledged write survived and nothing else changed. Many rounds on one data directory.

Each round:
  1. Several client connections pipeline writes and record exactly which were acknowledged
     (a reply completely received and parsed):
       SET   k:<conn>:<n> <value(conn, n)>   unique keys, values of varying length
       HSET  h:<conn> f<n> <value>            unique fields of a per-connection hash
       SADD  s:<conn> <n>                     unique members of a per-connection set
       INCR  ctr:<j>                          a few counters shared by all connections
       RPUSH l:<conn> <seq>                   a per-connection list of 0, 1, 2, ...
  2. When the number of acknowledged writes reaches a point drawn from the seeded PRNG
     (sometimes plus a short random delay), the server gets SIGKILL.
  3. The server restarts on the same directory and the whole state is checked:
       - every acknowledged SET is present with its value; a SET that was sent but not
         acknowledged is either absent or has its value; a key found absent after one
         recovery stays absent for ever (it is never sent again); the same for every
         hash field and set member, and a hash or set holds nothing that was not sent;
       - DBSIZE equals the keys we can account for: nothing else exists;
       - each list is exactly 0..m-1 (no holes, duplicates or reordering) with
         acknowledged <= m <= sent;
       - each counter is between (previous value + acknowledged INCRs) and (previous
         value + sent INCRs), and at least the largest value an INCR reply showed.
     What was found becomes the state the next round builds on.
Some rounds instead kill the server while it is still recovering (before it answers).
At the end the server gets SIGTERM (it must exit 0), restarts, and is checked once more.

The seed fixes the workload and the kill points (in acknowledged-write counts and delays);
thread scheduling is not deterministic, so a replay repeats the scenario, not the exact
interleaving.

Usage: crash_test.py [--rounds N] [--seed S] [--kind hmdb|redis] SERVER_BINARY
       HMDB_CRASH_ROUNDS=N overrides the default number of rounds.
"""

import argparse
import os
import random
import sys
import threading
import time

import harness
import resp

DEFAULT_ROUNDS = 25
DEFAULT_CONNECTIONS = 4
# Commands per pipelined batch: drawn uniformly from 1..this.
DEFAULT_MAX_PIPELINE = 32
# The kill point of a round is drawn uniformly from 0..this many acknowledged writes.
DEFAULT_MAX_ACKS_PER_ROUND = 3000
# A round that does not reach its kill point in this time has a stuck server.
ROUND_DEADLINE_S = 60.0
# Upper bound of the random delay added after the kill point (it moves the kill between
# acknowledgements; it is not a synchronisation).
MAX_KILL_DELAY_S = 0.003
# Share of rounds that kill the server during recovery instead of under load, and the
# longest random delay after spawning for that kill.
RECOVERY_KILL_PROBABILITY = 0.12
MAX_RECOVERY_KILL_DELAY_S = 0.05
COUNTERS = 3
# Client-side reply timeout: a live server answers much faster; a dead one closes the
# connection, so this only bounds a hung server.
CLIENT_TIMEOUT_S = 20.0
# Keys per MGET when checking.
CHECK_BATCH_KEYS = 500
# A sampled check (see --full-check-every) reads this many random windows of
# CHECK_BATCH_KEYS older keys per connection.
SAMPLED_OLD_WINDOWS = 4
# Failure messages shown at most (the first ones matter).
MAX_REPORTED_PROBLEMS = 20

SENT, PRESENT, ABSENT = 0, 1, 2
# Collections whose members are added one by one with unique names, checked like keys:
#   hash: HSET h:<conn> f<n> <hash_value(conn, n)>    (reply 1: a new field)
#   set:  SADD s:<conn> <n>                           (reply 1: a new member)
MEMBER_KINDS = ("hash", "set")


def hash_value(conn, n):
    return b"hv:%d:%d" % (conn, n)


def value_of(conn, n):
    """The value written to k:<conn>:<n>: derived from the key, 10 to ~330 bytes."""
    filler_len = (n * 2654435761 + conn * 40503) % 320
    return ("v:%d:%d:" % (conn, n) + "abcdefghij"[n % 10] * filler_len).encode()


class Model:
    """What the database must contain, built from what was sent and acknowledged."""

    def __init__(self, connections):
        self.connections = connections
        # key_status[c][n]: SENT (not yet known), PRESENT (acknowledged or seen), ABSENT.
        self.key_status = [bytearray() for _ in range(connections)]
        # values[c][n]: the value of k:<c>:<n> (value_of), cached: checking compares
        # whole MGET replies against these lists.
        self.values = [[] for _ in range(connections)]
        # member_status[kind][c][n] for kind "hash" (field f<n> of h:<c>) and "set" (member
        # <n> of s:<c>): the same three states as keys.
        self.member_status = {kind: [bytearray() for _ in range(connections)] for kind in MEMBER_KINDS}
        self.counter_value = [0] * COUNTERS  # value found at the last check
        self.list_len = [0] * connections  # length found at the last check
        self.total_acked = 0
        self.total_checked_keys = 0


class Connection(threading.Thread):
    """One client connection's writes in one round."""

    def __init__(self, index, model, server, seed, round_no, max_pipeline, progress):
        super().__init__(name="conn-%d" % index, daemon=True)
        self.index = index
        self.model = model
        self.server = server
        self.rng = random.Random("%d:%d:%d" % (seed, round_no, index))
        self.max_pipeline = max_pipeline
        self.progress = progress
        self.incr_sent = [0] * COUNTERS
        self.incr_acked = [0] * COUNTERS
        self.incr_max_reply = [0] * COUNTERS
        self.push_sent = 0
        self.push_acked = 0
        self.acked = 0
        self.problem = None  # a broken promise seen in a reply
        self.stop = False

    def run(self):
        try:
            self._run()
        except resp.ProtocolError as e:
            self.problem = "invalid RESP from the server: %s" % e
        finally:
            self.progress.thread_done()  # wakes the main thread if every connection ended

    def _run(self):
        c = self.index
        status = self.model.key_status[c]
        values = self.model.values[c]
        next_seq = self.model.list_len[c]
        members = {kind: self.model.member_status[kind][c] for kind in MEMBER_KINDS}
        try:
            client = self.server.client(timeout=CLIENT_TIMEOUT_S)
        except resp.ConnectionLost:
            return  # the server was killed before we connected
        with client:
            while not self.stop:
                batch = []
                for _ in range(self.rng.randint(1, self.max_pipeline)):
                    r = self.rng.random()
                    if r < 0.4:
                        n = len(status)
                        status.append(SENT)
                        value = value_of(c, n)
                        values.append(value)
                        batch.append(("set", n, ("SET", "k:%d:%d" % (c, n), value)))
                    elif r < 0.5:
                        n = len(members["hash"])
                        members["hash"].append(SENT)
                        batch.append(("hash", n, ("HSET", "h:%d" % c, "f%d" % n, hash_value(c, n))))
                    elif r < 0.6:
                        n = len(members["set"])
                        members["set"].append(SENT)
                        batch.append(("set_add", n, ("SADD", "s:%d" % c, str(n))))
                    elif r < 0.8:
                        j = self.rng.randrange(COUNTERS)
                        self.incr_sent[j] += 1
                        batch.append(("incr", j, ("INCR", "ctr:%d" % j)))
                    else:
                        self.push_sent += 1
                        batch.append(("push", next_seq, ("RPUSH", "l:%d" % c, str(next_seq))))
                        next_seq += 1
                try:
                    client.send([cmd for _, _, cmd in batch])
                except resp.ConnectionLost:
                    return
                acked_now = 0
                try:
                    for kind, arg, cmd in batch:
                        reply = client.read_reply()
                        if kind == "set":
                            if reply != "OK":
                                self.problem = "%r answered %r" % (cmd[:2], reply)
                                return
                            status[arg] = PRESENT
                        elif kind in ("hash", "set_add"):
                            if reply != 1:  # names are never reused, so always a new member
                                self.problem = "%r answered %r, expected 1" % (cmd[:3], reply)
                                return
                            members["hash" if kind == "hash" else "set"][arg] = PRESENT
                        elif kind == "incr":
                            if not isinstance(reply, int) or reply <= self.model.counter_value[arg]:
                                self.problem = "INCR ctr:%d answered %r (value before the round: %d)" % (
                                    arg, reply, self.model.counter_value[arg])
                                return
                            self.incr_acked[arg] += 1
                            self.incr_max_reply[arg] = max(self.incr_max_reply[arg], reply)
                        else:
                            if reply != arg + 1:
                                self.problem = "RPUSH l:%d %d answered %r, expected length %d" % (
                                    c, arg, reply, arg + 1)
                                return
                            self.push_acked += 1
                        acked_now += 1
                except resp.ConnectionLost:
                    return
                finally:
                    self.acked += acked_now
                    self.progress.add(acked_now)


class Progress:
    """Acknowledged writes in the current round, for the main thread to wait on."""

    def __init__(self):
        self.cond = threading.Condition()
        self.acked = 0
        self.finished = 0  # connection threads that ended

    def add(self, n):
        with self.cond:
            self.acked += n
            self.cond.notify_all()

    def thread_done(self):
        with self.cond:
            self.finished += 1
            self.cond.notify_all()


def check_state(server, model, round_info, sample_rng=None):
    """Checks the recovered state against the model and folds what it found into it."""
    problems = []

    def problem(msg):
        problems.append(msg)

    with server.client(timeout=CLIENT_TIMEOUT_S) as client:
        # SET keys.
        present_keys = 0
        for c in range(model.connections):
            status = model.key_status[c]
            # Every key, or (a sampled check) this round's keys and a few random windows
            # of older ones: those are settled, and DBSIZE below still counts all of them.
            if sample_rng is None:
                windows = list(range(0, len(status), CHECK_BATCH_KEYS))
            else:
                first_new = round_info["first_new_key"][c]
                older = list(range(0, first_new, CHECK_BATCH_KEYS))
                windows = sorted(sample_rng.sample(older, min(SAMPLED_OLD_WINDOWS, len(older)))) + \
                    list(range(first_new, len(status), CHECK_BATCH_KEYS))
            for start in range(0, len(windows), 8):
                # Up to 8 MGETs in one pipeline.
                commands = []
                ranges = []
                for lo in windows[start:start + 8]:
                    hi = min(lo + CHECK_BATCH_KEYS, len(status))
                    commands.append(["MGET"] + ["k:%d:%d" % (c, n) for n in range(lo, hi)])
                    ranges.append((lo, hi))
                replies = client.pipeline(commands)
                for (lo, hi), reply in zip(ranges, replies):
                    if not isinstance(reply, list) or len(reply) != hi - lo:
                        problem("MGET k:%d:%d..%d answered %r" % (c, lo, hi - 1, reply))
                        continue
                    # Fast path (most keys, in later rounds): every key's fate is known and
                    # the reply is exactly what it must be.
                    if status.count(SENT, lo, hi) == 0:
                        want = [v if st == PRESENT else None
                                for st, v in zip(status[lo:hi], model.values[c][lo:hi])]
                        if reply == want:
                            continue
                    for n, got in zip(range(lo, hi), reply):
                        want = status[n]
                        if got is None:
                            if want == PRESENT:
                                problem("acknowledged key k:%d:%d is missing" % (c, n))
                            status[n] = ABSENT
                        else:
                            if want == ABSENT:
                                problem("key k:%d:%d reappeared (it was absent after an earlier recovery)" % (c, n))
                            if got != model.values[c][n]:
                                problem("key k:%d:%d has value %r, wrote %r" % (c, n, got[:60], model.values[c][n][:60]))
                            status[n] = PRESENT
                model.total_checked_keys += sum(hi - lo for lo, hi in ranges)
            if status.count(SENT, round_info["first_new_key"][c]):
                raise harness.TestFailure("internal: keys of conn %d left unchecked" % c)
            present_keys += status.count(PRESENT)

        # Counters.
        replies = client.pipeline([("GET", "ctr:%d" % j) for j in range(COUNTERS)])
        counters_present = 0
        for j, got in enumerate(replies):
            low = model.counter_value[j] + round_info["incr_acked"][j]
            low = max(low, round_info["incr_max_reply"][j])
            high = model.counter_value[j] + round_info["incr_sent"][j]
            if got is None:
                value = 0
            else:
                counters_present += 1
                try:
                    value = int(got)
                except (ValueError, TypeError):
                    problem("counter ctr:%d holds %r" % (j, got))
                    continue
            if not low <= value <= high:
                problem("counter ctr:%d is %d, expected %d..%d (before the round %d, INCRs acknowledged %d, sent %d, largest reply %d)"
                        % (j, value, low, high, model.counter_value[j], round_info["incr_acked"][j],
                           round_info["incr_sent"][j], round_info["incr_max_reply"][j]))
            model.counter_value[j] = value

        # Lists.
        replies = client.pipeline([("LRANGE", "l:%d" % c, "0", "-1") for c in range(model.connections)])
        lists_present = 0
        for c, got in enumerate(replies):
            if not isinstance(got, list):
                problem("LRANGE l:%d answered %r" % (c, got))
                continue
            m = len(got)
            if m:
                lists_present += 1
            expected = [str(i).encode() for i in range(m)]
            if got != expected:
                first_bad = next(i for i in range(m) if got[i] != expected[i])
                problem("list l:%d is not 0..%d: element %d is %r (a hole, duplicate or reordering)"
                        % (c, m - 1, first_bad, got[first_bad]))
            low = model.list_len[c] + round_info["push_acked"][c]
            high = model.list_len[c] + round_info["push_sent"][c]
            if not low <= m <= high:
                problem("list l:%d has %d elements, expected %d..%d (before the round %d, RPUSHes acknowledged %d, sent %d)"
                        % (c, m, low, high, model.list_len[c], round_info["push_acked"][c], round_info["push_sent"][c]))
            model.list_len[c] = m

        # Hashes and sets: every member individually, like keys.
        collections_present = 0
        for kind in MEMBER_KINDS:
            read = "HGETALL" if kind == "hash" else "SMEMBERS"
            replies = client.pipeline([(read, "%s:%d" % (kind[0], c)) for c in range(model.connections)])
            for c, got in enumerate(replies):
                name = "%s:%d" % (kind[0], c)
                if not isinstance(got, list):
                    problem("%s %s answered %r" % (read, name, got))
                    continue
                if kind == "hash":
                    found = dict(zip(got[0::2], got[1::2]))
                else:
                    found = dict.fromkeys(got)
                if found:
                    collections_present += 1
                status = model.member_status[kind][c]
                for n in range(len(status)):
                    member = (b"f%d" if kind == "hash" else b"%d") % n
                    if member in found:
                        if status[n] == ABSENT:
                            problem("%s of %s reappeared (it was absent after an earlier recovery)" % (member, name))
                        if kind == "hash" and found[member] != hash_value(c, n):
                            problem("field %s of %s is %r, wrote %r" % (member, name, found[member], hash_value(c, n)))
                        status[n] = PRESENT
                        del found[member]
                    else:
                        if status[n] == PRESENT:
                            problem("acknowledged %s %s of %s is missing" % (
                                "field" if kind == "hash" else "member", member, name))
                        status[n] = ABSENT
                if found:
                    problem("%s holds members that were never sent: %r" % (name, sorted(found)[:5]))
                model.total_checked_keys += len(status)

        # Nothing else exists.
        dbsize = client.call("DBSIZE")
        expected_size = present_keys + counters_present + lists_present + collections_present
        if dbsize != expected_size:
            problem("DBSIZE is %r, but only %d keys can exist (%d SET keys, %d counters, %d lists, %d hashes/sets)"
                    % (dbsize, expected_size, present_keys, counters_present, lists_present, collections_present))
    return problems


def run_round(round_no, server, model, args, rng, log):
    """One round: load, kill, restart, check. The server is running on entry and exit."""
    progress = Progress()
    threads = [Connection(c, model, server, args.seed, round_no, args.max_pipeline, progress)
               for c in range(model.connections)]
    t_start = time.monotonic()
    first_new_key = [len(s) for s in model.key_status]
    kill_at = rng.randint(0, args.max_acks)
    kill_delay = rng.uniform(0, MAX_KILL_DELAY_S) if rng.random() < 0.5 else 0.0
    for t in threads:
        t.start()
    with progress.cond:
        reached = progress.cond.wait_for(
            lambda: progress.acked >= kill_at or progress.finished == len(threads),
            timeout=ROUND_DEADLINE_S)
    if kill_delay:
        time.sleep(kill_delay)  # moves the kill point; the ack count above is the sync
    server.kill()
    for t in threads:
        t.stop = True
    for t in threads:
        t.join(CLIENT_TIMEOUT_S + 5)
        if t.is_alive():
            raise harness.TestFailure("connection thread %s did not finish" % t.name)
    for t in threads:
        if t.problem:
            raise harness.TestFailure("round %d: bad reply: %s" % (round_no, t.problem))
    if not reached:
        raise harness.TestFailure("round %d: only %d writes acknowledged in %.0fs (kill point %d)\n%s"
                                  % (round_no, progress.acked, ROUND_DEADLINE_S, kill_at, server.log_tail()))
    if progress.acked < kill_at:
        raise harness.TestFailure("round %d: every connection ended after %d acknowledged writes, before the kill point %d\n%s"
                                  % (round_no, progress.acked, kill_at, server.log_tail()))

    round_info = {
        "first_new_key": first_new_key,
        "incr_sent": [sum(t.incr_sent[j] for t in threads) for j in range(COUNTERS)],
        "incr_acked": [sum(t.incr_acked[j] for t in threads) for j in range(COUNTERS)],
        "incr_max_reply": [max(t.incr_max_reply[j] for t in threads) for j in range(COUNTERS)],
        "push_sent": [t.push_sent for t in threads],
        "push_acked": [t.push_acked for t in threads],
    }
    acked = sum(t.acked for t in threads)
    model.total_acked += acked

    t_killed = time.monotonic()
    # Sometimes kill it again while it recovers, then start it for real.
    recovery_kill = rng.random() < RECOVERY_KILL_PROBABILITY
    if recovery_kill:
        server.spawn()
        time.sleep(rng.uniform(0, MAX_RECOVERY_KILL_DELAY_S))  # a random kill moment
        server.kill()
    try:
        server.start()
    except harness.ServerExited as e:
        raise harness.TestFailure("round %d: restart failed (exit code %d)\n%s"
                                  % (round_no, e.returncode, server.log_tail()))
    t_restarted = time.monotonic()
    full = args.full_check_every <= 1 or round_no % args.full_check_every == args.full_check_every - 1
    problems = check_state(server, model, round_info, None if full else random.Random(rng.random()))
    t_checked = time.monotonic()
    log("round %3d: kill after %5d acked (point %4d%s)%s, %s check of %6d keys: %s "
        "[load %.2fs, restart %.2fs, check %.2fs]"
        % (round_no, acked, kill_at, ", +%.1fms" % (kill_delay * 1e3) if kill_delay else "",
           ", killed again during recovery" if recovery_kill else "", "full" if full else "sampled",
           sum(len(s) for s in model.key_status), "ok" if not problems else "FAILED",
           t_killed - t_start, t_restarted - t_killed, t_checked - t_restarted))
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = len(problems) - len(shown)
        raise harness.TestFailure("round %d: %d problems after restart:\n  %s%s"
                                  % (round_no, len(problems), "\n  ".join(shown),
                                     "\n  ... and %d more" % more if more else ""))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binary", help="server binary: hmdb, or redis-server to validate the harness")
    parser.add_argument("--kind", choices=["hmdb", "redis"], help="default: from the binary name")
    parser.add_argument("--rounds", type=int,
                        default=int(os.environ.get("HMDB_CRASH_ROUNDS", DEFAULT_ROUNDS)))
    parser.add_argument("--seed", type=int)
    parser.add_argument("--connections", type=int, default=DEFAULT_CONNECTIONS)
    parser.add_argument("--max-pipeline", type=int, default=DEFAULT_MAX_PIPELINE)
    parser.add_argument("--max-acks", type=int, default=DEFAULT_MAX_ACKS_PER_ROUND,
                        help="kill points are drawn from 0..this many acknowledged writes")
    parser.add_argument("--full-check-every", type=int, default=1,
                        help="check every key only every N rounds (and at the end); other rounds check "
                             "the round's keys, random older ones and DBSIZE (for long runs)")
    parser.add_argument("--durability", choices=["always", "periodic", "none"], default="always",
                        help="the server's durability mode; only 'always' promises what is checked "
                             "(the others are negative controls)")
    parser.add_argument("--server-arg", action="append", default=[],
                        help="extra argument for the server (repeatable)")
    parser.add_argument("--keep", action="store_true", help="keep the data directory even on success")
    args = parser.parse_args()
    args.seed = harness.get_seed(args.seed)
    binary = os.path.abspath(args.binary)
    kind = args.kind or harness.detect_kind(binary)

    replay = harness.replay_command(__file__, [
        "--seed", str(args.seed), "--rounds", str(args.rounds), "--connections", str(args.connections),
        "--max-pipeline", str(args.max_pipeline), "--max-acks", str(args.max_acks), "--full-check-every", str(args.full_check_every),
        "--durability", args.durability, "--kind", kind]
        + ["--server-arg=%s" % a for a in args.server_arg] + [binary])
    started = time.monotonic()

    def log(msg):
        print("[%6.1fs] %s" % (time.monotonic() - started, msg), flush=True)

    work = harness.make_work_dir("hmdb-crash-")
    data_dir = os.path.join(work, "data")
    os.mkdir(data_dir)
    log("crash test: %s (%s), %d rounds, seed %d, work dir %s" % (binary, kind, args.rounds, args.seed, work))
    rng = random.Random(args.seed)
    model = Model(args.connections)
    server = harness.Server(binary, data_dir, work, kind=kind, durability=args.durability,
                                extra_args=args.server_arg)
    ok = False
    round_no = -1
    try:
        server.start()
        for round_no in range(args.rounds):
            run_round(round_no, server, model, args, rng, log)
        round_no = args.rounds
        code = server.terminate()
        if code != 0:
            raise harness.TestFailure("SIGTERM: server exited with code %d, expected 0\n%s" % (code, server.log_tail()))
        server.start()
        empty = {"first_new_key": [len(s) for s in model.key_status], "incr_sent": [0] * COUNTERS, "incr_acked": [0] * COUNTERS, "incr_max_reply": [0] * COUNTERS,
                 "push_sent": [0] * args.connections, "push_acked": [0] * args.connections}
        problems = check_state(server, model, empty)
        if problems:
            raise harness.TestFailure("after SIGTERM and restart:\n  " + "\n  ".join(problems[:MAX_REPORTED_PROBLEMS]))
        server.terminate()
        ok = True
    except (harness.TestFailure, harness.ServerExited, resp.ConnectionLost, resp.ProtocolError) as e:
        harness.fail(str(e))
        if not isinstance(e, harness.TestFailure) and server.log_path:
            print(server.log_tail(), file=sys.stderr)
    finally:
        server.kill()
    elapsed = time.monotonic() - started
    if ok:
        log("PASS: %d rounds, %d acknowledged writes, %d key checks, %d SET keys in the final state, %.1fs"
            % (args.rounds, model.total_acked, model.total_checked_keys,
               sum(s.count(PRESENT) for s in model.key_status), elapsed))
        if not args.keep:
            harness.remove_work_dir(work)
        return 0
    print("crash test FAILED in round %d, seed %d; data and server logs kept in %s\nreplay: %s"
          % (round_no, args.seed, work, replay), file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
