#!/usr/bin/env python3
"""The Prometheus endpoint (`--metrics-port`) of real hmdb processes, scraped with urllib.

  single   one node: GET /metrics is text exposition 0.0.4 whose every sample has a TYPE,
           no INFO field is left unmapped ("# hmdb:" comments), hmdb_applied_index and
           hmdb_writes_total grow by exactly the SETs sent one at a time, the app's key
           count follows; the latency histograms (hmdb_stage_latency_seconds, ...) are well
           formed (cumulative buckets, +Inf equal to _count) and count exactly those SETs in
           every write stage and in hmdb_command_latency_seconds{command="set"}; / answers,
           other paths 404, other methods 405.
  cluster  three nodes: the leader exports hmdb_peer_lag_entries and hmdb_peer_match_index
           for both followers (0 and the leader's last index once converged); a follower
           names the leader in hmdb_leader_id and exports no peer progress; the leader's
           hmdb_replicate_latency_seconds has samples for both followers.

Every wait is a bounded poll of a real condition. Usage: metrics_test.py [--case NAME] HMDB_BINARY
"""

import argparse
import os
import re
import sys
import time
import urllib.error
import urllib.request

import cluster as cl
import harness

# Timeout of one HTTP request to the metrics port.
SCRAPE_TIMEOUT_S = 5.0
# SETs sent in the single-node case, one at a time (each its own log entry).
SINGLE_WRITES = 5
# Bounds of the cluster case's waits.
LEADER_TIMEOUT_S = 20.0
CONVERGE_TIMEOUT_S = 60.0
CLUSTER_WRITES = 20

SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def get(host, port, path, method="GET"):
    """(status, content type, body text) of one request."""
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=SCRAPE_TIMEOUT_S) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode("utf-8")


def scrape(host, port):
    """GET /metrics, checked for form; returns {(name, ((label, value), ...)): float}."""
    status, ctype, text = get(host, port, "/metrics")
    expect(status == 200, "GET /metrics answered %d" % status)
    expect(ctype == "text/plain; version=0.0.4; charset=utf-8", "Content-Type %r" % ctype)
    unmapped = [l for l in text.splitlines() if l.startswith("# hmdb:")]
    expect(not unmapped, "INFO fields the metrics table does not know:\n" + "\n".join(unmapped))
    typed, histograms, samples = set(), set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            expect(kind in ("gauge", "counter", "histogram"), "bad TYPE line %r" % line)
            expect(name not in typed, "family %s has two TYPE lines" % name)
            typed.add(name)
            if kind == "histogram":
                histograms.add(name)
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        expect(m is not None, "not a sample line: %r" % line)
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[:-len(suffix)] in histograms:
                family = name[:-len(suffix)]
        expect(family in typed, "sample %s before its TYPE line" % name)
        key = (name, tuple(LABEL_RE.findall(labels)))
        expect(key not in samples, "duplicate sample %r" % (key,))
        samples[key] = float(value)
    check_histograms(histograms, samples)
    return samples


def check_histograms(families, samples):
    """Each histogram series: buckets cumulative in le order, +Inf equal to _count."""
    series = {}
    for (name, labels), v in samples.items():
        for f in families:
            if name == f + "_bucket":
                rest = tuple(l for l in labels if l[0] != "le")
                le = [l[1] for l in labels if l[0] == "le"]
                expect(len(le) == 1, "bucket without le: %s%r" % (name, labels))
                series.setdefault((f, rest), []).append((float(le[0]), v))
    for (f, rest), buckets in series.items():
        buckets.sort()
        counts = [v for _, v in buckets]
        expect(counts == sorted(counts), "%s%r: buckets not cumulative: %r" % (f, rest, buckets))
        expect(buckets[-1][0] == float("inf"), "%s%r: no +Inf bucket" % (f, rest))
        expect(samples.get((f + "_count", rest)) == counts[-1], "%s%r: +Inf bucket is not _count" % (f, rest))
        expect((f + "_sum", rest) in samples, "%s%r: no _sum" % (f, rest))


def value(samples, name, **labels):
    """The sample with exactly these labels."""
    want = sorted(labels.items())
    for (n, ls), v in samples.items():
        if n == name and sorted(ls) == want:
            return v
    raise harness.TestFailure("no sample %s%s; have: %s" % (name, labels, sorted({n for n, _ in samples})))


def has(samples, name):
    return any(n == name for n, _ in samples)


def case_single(binary):
    work = harness.make_work_dir("hmdb-metrics-")
    metrics_port = harness.free_port()
    server = harness.Server(binary, os.path.join(work, "data"), work,
                            extra_args=["--metrics-port", str(metrics_port)], name="metrics")
    try:
        server.start()
        host = harness.HOST
        s0 = scrape(host, metrics_port)
        expect(value(s0, "hmdb_role", role="leader") == 1, "a single node leads")
        expect(any(n == "hmdb_build_info" and ("app", "kv") in ls for n, ls in s0), "hmdb_build_info lacks app=kv")
        expect(value(s0, "hmdb_app_keys") == 0, "fresh node has keys")
        a0 = value(s0, "hmdb_applied_index")
        w0 = value(s0, "hmdb_writes_total")
        with server.client() as c:
            for i in range(SINGLE_WRITES):
                r = c.call("SET", "k%d" % i, "v")
                expect(r == "OK", "SET answered %r" % (r,))
        # A SET is answered once applied: the next scrape sees every one of them.
        s1 = scrape(host, metrics_port)
        a1 = value(s1, "hmdb_applied_index")
        expect(a1 >= a0 + SINGLE_WRITES, "hmdb_applied_index %d -> %d after %d SETs" % (a0, a1, SINGLE_WRITES))
        expect(value(s1, "hmdb_writes_total") == w0 + SINGLE_WRITES, "hmdb_writes_total did not count the SETs")
        expect(value(s1, "hmdb_app_keys") == SINGLE_WRITES, "hmdb_app_keys does not follow the SETs")
        expect(value(s1, "hmdb_commit_index") >= a1, "commit index behind applied")
        expect(not has(s1, "hmdb_peer_lag_entries"), "a single node has peers?")
        # Latency by stage: each SET went through every write stage once (one client, one
        # SET at a time: each is its own log entry).
        sets = value(s1, "hmdb_command_latency_seconds_count", command="set") - \
            (value(s0, "hmdb_command_latency_seconds_count", command="set")
             if ("hmdb_command_latency_seconds_count", (("command", "set"),)) in s0 else 0)
        expect(sets == SINGLE_WRITES, "hmdb_command_latency_seconds counted %d SETs of %d" % (sets, SINGLE_WRITES))
        for stage in ("read_parse", "batch_wait", "propose", "persist", "commit", "apply", "reply_queued",
                      "reply_sent"):
            n = value(s1, "hmdb_stage_latency_seconds_count", stage=stage) - \
                value(s0, "hmdb_stage_latency_seconds_count", stage=stage)
            expect(n == SINGLE_WRITES, "stage %s counted %d writes of %d" % (stage, n, SINGLE_WRITES))
        expect(value(s1, "hmdb_stage_latency_seconds_count", stage="disk_fsync") >= 1, "no fsync timed")

        status, _, body = get(host, metrics_port, "/")
        expect(status == 200 and "/metrics" in body, "GET / answered %d %r" % (status, body))
        status, _, _ = get(host, metrics_port, "/nope")
        expect(status == 404, "GET /nope answered %d" % status)
        status, _, _ = get(host, metrics_port, "/metrics", method="POST")
        expect(status == 405, "POST /metrics answered %d" % status)
        # The node still serves clients and scrapes after all that.
        with server.client() as c:
            expect(c.call("PING") == "PONG", "PING after scrapes")
        scrape(host, metrics_port)
        code = server.terminate()
        expect(code == 0, "exit code %d after SIGTERM" % code)
        print("single: applied index %d -> %d after %d SETs" % (a0, a1, SINGLE_WRITES))
    except Exception:
        print(server.log_tail())
        server.kill()
        print("work dir kept: %s" % work)
        raise
    harness.remove_work_dir(work)


def case_cluster(binary):
    work = harness.make_work_dir("hmdb-metrics-cluster-")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-metrics-test")
    metrics_ports = {}
    for n in c.nodes:
        metrics_ports[n.id] = cl.free_port_on(n.ip)
        n.command = (lambda orig, port: lambda: orig() + ["--metrics-port", str(port)])(n.command, metrics_ports[n.id])
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        for i in range(CLUSTER_WRITES):
            r = leader.call("SET", "k%d" % i, "v")
            expect(r == "OK", "SET on the leader answered %r" % (r,))
        index = c.wait_converged(CONVERGE_TIMEOUT_S)
        s = scrape(leader.ip, metrics_ports[leader.id])
        expect(value(s, "hmdb_role", role="leader") == 1, "the leader's metrics say another role")
        expect(value(s, "hmdb_voters") == 3, "voters")
        for n in c.nodes:
            if n is leader:
                continue
            lag = value(s, "hmdb_peer_lag_entries", peer=str(n.id))
            match = value(s, "hmdb_peer_match_index", peer=str(n.id))
            # Converged: every node applied the leader's last index, and an idle leader
            # appends nothing more (heartbeats carry no entries).
            expect(lag == 0 and match == index, "peer %d: lag %s match %s, converged at %d" % (n.id, lag, match, index))
            expect(value(s, "hmdb_peer_connected", peer=str(n.id)) == 1, "peer %d not connected" % n.id)
            expect(value(s, "hmdb_peer_info", peer=str(n.id), addr=n.peer_addr, state="voter") == 1, "peer_info")
            expect(value(s, "hmdb_peer_messages_sent_total", peer=str(n.id)) > 0, "nothing sent to peer %d" % n.id)
            expect(value(s, "hmdb_replicate_latency_seconds_count", peer=str(n.id)) > 0,
                   "no replication to peer %d timed" % n.id)
        for n in c.nodes:
            if n is leader:
                continue
            f = scrape(n.ip, metrics_ports[n.id])
            expect(value(f, "hmdb_role", role="follower") == 1, "%s is not a follower" % n)
            expect(value(f, "hmdb_leader_id") == leader.id, "%s names another leader" % n)
            expect(value(f, "hmdb_applied_index") == index, "%s applied index" % n)
            expect(not has(f, "hmdb_peer_lag_entries"), "a follower exports peer progress")
        c.check_alive()
        print("cluster: leader %s, converged at %d, both followers lag 0" % (leader, index))


CASES = {"single": case_single, "cluster": case_cluster}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("binary")
    args = ap.parse_args()
    for name in args.case or list(CASES):
        t0 = time.monotonic()
        try:
            CASES[name](args.binary)
        except harness.TestFailure as e:
            harness.fail("%s: %s" % (name, e))
            return 1
        print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
