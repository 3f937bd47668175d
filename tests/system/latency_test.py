#!/usr/bin/env python3
"""Latency by stage through a real node (docs/operations.md, "Latency"): writes and reads
sent one at a time and pipelined, then every view of their latency checked for existence
and consistency — never for how long anything took.

  * INFO stages: each write stage (read_parse .. reply_sent) counted exactly the SETs sent;
    query counted exactly the commands answered as they ran; every line has
    p50 <= p99 <= p99.9 <= max; the disk thread's fsyncs and group sizes are there.
  * INFO latencystats and LATENCY HISTOGRAM: set and get have exactly the calls sent; the
    histogram's cumulative counts never fall and end at calls; p50 <= p99 <= p99.9.
  * SLOWLOG (threshold 0: every command): LEN, GET's newest-first entries with the exact
    arguments, ids, the client's address, AUTH's password redacted, slowlog-max-len, RESET.
  * LATENCY LATEST is empty with the monitor off; CONFIG RESETSTAT empties the histograms.

Usage: latency_test.py HMDB_BINARY
"""

import os
import re
import sys

import harness
import resp

ONE_AT_A_TIME_SETS = 20
PIPELINED_SETS = 100
GETS = 30


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def info_fields(client, section):
    text = client.call("INFO", section)
    text = text.decode() if isinstance(text, bytes) else text
    fields = {}
    for line in text.split("\r\n"):
        if line and not line.startswith("#"):
            k, _, v = line.partition(":")
            fields[k] = v
    return fields


def parse_values(v):
    """'count=3,p50=1,...' -> {'count': 3.0, 'p50': 1.0, ...}"""
    return {k: float(x) for k, _, x in (p.partition("=") for p in v.split(","))}


def check_percentiles(name, d):
    expect(d["p50"] <= d["p99"] <= d["p99.9"], "%s: percentiles out of order: %r" % (name, d))
    if "max" in d:
        expect(d["p99.9"] <= d["max"], "%s: p99.9 above max: %r" % (name, d))


def histogram(reply):
    """LATENCY HISTOGRAM's RESP2 reply -> {command: (calls, [(bound, cumulative), ...])}"""
    out = {}
    for i in range(0, len(reply), 2):
        body = reply[i + 1]
        fields = {body[j].decode(): body[j + 1] for j in range(0, len(body), 2)}
        points = fields["histogram_usec"]
        out[reply[i].decode()] = (fields["calls"], [(points[j], points[j + 1]) for j in range(0, len(points), 2)])
    return out


def run(binary):
    work = harness.make_work_dir("hmdb-latency-")
    server = harness.Server(binary, os.path.join(work, "data"), work, name="latency")
    try:
        server.start()
        with server.client() as c:
            # Commands answered as they ran (the query stage) are counted from here on.
            expect(c.call("CONFIG", "RESETSTAT") == "OK", "CONFIG RESETSTAT")
            queries = 1  # the RESETSTAT itself is counted after it ran
            expect(c.call("LATENCY", "LATEST") == [], "LATENCY LATEST with the monitor off")
            queries += 1
            for i in range(ONE_AT_A_TIME_SETS):
                expect(c.call("SET", "k%d" % i, "v%d" % i) == "OK", "SET")
            replies = c.pipeline([("SET", "p%d" % i, "x") for i in range(PIPELINED_SETS)])
            expect(replies == ["OK"] * PIPELINED_SETS, "pipelined SETs")
            for i in range(GETS):
                expect(c.call("GET", "k%d" % (i % ONE_AT_A_TIME_SETS)) == b"v%d" % (i % ONE_AT_A_TIME_SETS), "GET")
            queries += GETS
            sets = ONE_AT_A_TIME_SETS + PIPELINED_SETS

            stages = info_fields(c, "stages")
            for stage in ("read_parse", "batch_wait", "propose", "persist", "commit", "apply", "reply_queued",
                          "reply_sent"):
                d = parse_values(stages["latency_stage_usec_" + stage])
                expect(d["count"] == sets, "stage %s counted %d writes, %d were sent" % (stage, d["count"], sets))
                check_percentiles(stage, d)
            q = parse_values(stages["latency_stage_usec_query"])
            expect(q["count"] == queries, "stage query counted %d, %d were answered as they ran" % (q["count"], queries))
            check_percentiles("query", q)
            for line in ("latency_stage_usec_disk_fsync", "latency_stage_usec_disk_write", "persist_group_writes",
                         "disk_group_entries", "latency_stage_usec_loop_turn"):
                d = parse_values(stages[line])
                expect(d["count"] >= 1, "%s: nothing recorded" % line)
                check_percentiles(line, d)
            # Every write was made durable by some acknowledgement: the group sizes add up.
            group = parse_values(stages["persist_group_writes"])
            expect(group["max"] <= sets and group["count"] <= sets, "persist_group_writes %r" % group)
            queries += 1  # the INFO

            lat = info_fields(c, "latencystats")
            for cmd in ("set", "get"):
                check_percentiles(cmd, parse_values(lat["latency_percentiles_usec_" + cmd]))
            queries += 1
            h = histogram(c.call("LATENCY", "HISTOGRAM", "set", "GET", "nosuchcommand"))
            expect(sorted(h) == ["get", "set"], "LATENCY HISTOGRAM named %r" % sorted(h))
            for cmd, want in (("set", sets), ("get", GETS)):
                calls, points = h[cmd]
                expect(calls == want, "%s: %d calls in LATENCY HISTOGRAM, %d sent" % (cmd, calls, want))
                counts = [n for _, n in points]
                bounds = [b for b, _ in points]
                expect(counts == sorted(counts) and counts[-1] == calls, "%s: histogram %r" % (cmd, points))
                expect(bounds == sorted(bounds) and all(b & (b - 1) == 0 for b in bounds),
                       "%s: bounds are not rising powers of two: %r" % (cmd, bounds))
            queries += 1
            expect(histogram(c.call("LATENCY", "HISTOGRAM", "nosuchcommand")) == {}, "unknown command's histogram")

            # SLOWLOG: threshold 0 logs every command, after it ran (the CONFIG SET itself too).
            expect(c.call("CONFIG", "SET", "slowlog-log-slower-than", "0") == "OK", "CONFIG SET slowlog")
            expect(c.call("SLOWLOG", "RESET") == "OK", "SLOWLOG RESET")
            for i in range(3):
                c.call("GET", "k%d" % i)
            err = c.call("AUTH", "not-the-password")
            expect(isinstance(err, resp.RespError), "AUTH without a password answered %r" % (err,))
            expect(c.call("SLOWLOG", "LEN") == 5, "SLOWLOG LEN after RESET, 3 GETs and an AUTH")
            entries = c.call("SLOWLOG", "GET", "-1")
            expect(len(entries) == 6, "SLOWLOG GET -1 has %d entries (RESET, 3 GETs, AUTH, LEN)" % len(entries))
            ids = [e[0] for e in entries]
            expect(ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids), "ids not newest first: %r" % ids)
            expect(entries[0][3] == [b"SLOWLOG", b"LEN"], "newest entry %r" % (entries[0][3],))
            expect(entries[1][3] == [b"AUTH", b"(redacted)"], "AUTH's password was logged: %r" % (entries[1][3],))
            expect(entries[2][3] == [b"GET", b"k2"] and entries[4][3] == [b"GET", b"k0"], "GET entries %r" % entries)
            expect(entries[5][3] == [b"SLOWLOG", b"RESET"], "oldest entry %r" % (entries[5][3],))
            me = c.call("CLIENT", "INFO")
            me = me.decode() if isinstance(me, bytes) else me
            addr = re.search(r"addr=(\S+)", me).group(1)
            for e in entries:
                expect(len(e) == 6 and isinstance(e[1], int) and e[1] > 0 and isinstance(e[2], int) and e[2] >= 0,
                       "entry %r" % (e,))
                expect(e[4].decode() == addr and e[5] == b"", "entry's client %r %r, expected %s" % (e[4], e[5], addr))
            two = c.call("SLOWLOG", "GET", "2")
            expect([e[3] for e in two] == [[b"CLIENT", b"INFO"], [b"SLOWLOG", b"GET", b"-1"]], "SLOWLOG GET 2: %r" % two)
            for _ in range(5):
                c.call("PING")
            expect(c.call("SLOWLOG", "LEN") == 14, "SLOWLOG LEN after 14 logged commands")
            expect(len(c.call("SLOWLOG", "GET")) == 10, "SLOWLOG GET's default count is 10")
            expect(c.call("CONFIG", "SET", "slowlog-max-len", "3") == "OK", "CONFIG SET slowlog-max-len")
            expect(c.call("SLOWLOG", "LEN") == 3, "slowlog-max-len 3")
            expect(c.call("CONFIG", "SET", "slowlog-log-slower-than", "-1") == "OK", "slowlog off")
            expect(c.call("SLOWLOG", "RESET") == "OK" and c.call("SLOWLOG", "LEN") == 0, "SLOWLOG RESET, off")

            # CONFIG RESETSTAT empties the histograms; the RESETSTAT is then the only call.
            expect(c.call("CONFIG", "RESETSTAT") == "OK", "CONFIG RESETSTAT")
            h = histogram(c.call("LATENCY", "HISTOGRAM"))
            expect(list(h) == ["config"] and h["config"][0] == 1, "after RESETSTAT: %r" % h)
            stages = info_fields(c, "stages")
            expect(parse_values(stages["latency_stage_usec_persist"])["count"] == 0, "RESETSTAT kept the stages")
        code = server.terminate()
        expect(code == 0, "exit code %d after SIGTERM" % code)
        print("latency: %d SETs (%d pipelined) and %d GETs through every stage" % (sets, PIPELINED_SETS, GETS))
    except Exception:
        print(server.log_tail())
        server.kill()
        print("work dir kept: %s" % work)
        raise
    harness.remove_work_dir(work)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    try:
        run(sys.argv[1])
    except harness.TestFailure as e:
        print("FAIL: %s" % e)
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
