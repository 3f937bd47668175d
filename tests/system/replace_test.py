#!/usr/bin/env python3
"""`hmdb cluster replace OLD NEW_ID NEW_CLIENT NEW_PEER` with real processes (docs/cluster.md,
"Replacing a node"): a 3-node kv cluster under a light write load (one client, one SET at a
time, on whichever node leads) has one member moved to a new node (--join, id 4).

  follower     OLD is a follower: the tool adds node 4 as a learner, waits for its catch-up,
               verifies every member at one digest mark, promotes it and removes OLD, which
               stops by itself (exit code 4). It exits 0 with a summary (catch-up figures, the
               final members: 4 and the two others, all voters).
  leader       OLD leads: the same, with a leadership transfer to node 4 before the removal
               (the tool says node 4 leads); the summary gives the write pause.
  interrupted  node 4 is paused (SIGSTOP) when it is added, so the catch-up cannot finish; the
               tool, once it has printed a progress line ("N entries behind"), is killed (SIGKILL).
               `hmdb cluster status` then says node 4 is a learner and names the command that
               resumes; node 4 is resumed, the same command run again picks up at the catch-up
               (no second ADDLEARNER), finishes, and OLD stops.

  dead         OLD is a follower killed (kill -9) before the replace (a failed machine): it is
               left out of the verify (said so), and removed; the rest is as for a follower.

In every case writes go on throughout and at the end every acknowledged write is read back
from every remaining member, and their digests agree. Every wait is a bounded poll of a real
condition. Usage: replace_test.py [--case NAME] [--keep] HMDB_BINARY
"""

import argparse
import re
import signal
import subprocess
import sys
import threading
import time

import cluster as cl
import cluster_test as ct
import harness
import resp

LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
# The whole replace (catch-up of a small log, a verify, three membership changes) takes a few
# seconds; this bounds it under a loaded 2-core machine.
REPLACE_TIMEOUT_S = 120.0
# Writes before the replace, so that the catch-up has entries to send.
PRELOAD_KEYS = 2000
PRELOAD_VALUE_BYTES = 200
PRELOAD_PIPELINE = 100
# Writes acknowledged after a step before the test goes on (the load continues throughout).
WRITES_AFTER = 20
WRITES_TIMEOUT_S = 60.0
REMOVED_EXIT_CODE = 4
REMOVED_EXIT_TIMEOUT_S = 30.0


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def start_new_node(c):
    ip = cl.node_ip(4)
    new = cl.Node(c, 4, cl.free_port_on(ip), cl.free_port_on(ip))
    join_cmd = [c.binary, "serve", "--node-id", "4", "--bind", new.ip, "--port", str(new.client_port),
                "--peer-addr", new.peer_addr, "--join", "--cluster-id", c.cluster_id, "--dir", new.data_dir,
                "--durability", c.durability] + list(c.server_args)
    new.command = lambda: join_cmd
    new.start()
    return new


def preload(leader):
    value = "v" * PRELOAD_VALUE_BYTES
    with leader.client(timeout=30.0) as client:
        for base in range(0, PRELOAD_KEYS, PRELOAD_PIPELINE):
            replies = client.pipeline([["SET", "pre:%d" % i, value] for i in range(base, base + PRELOAD_PIPELINE)])
            expect(all(r == "OK" for r in replies), "a preload write was refused: %r" % replies[:3])


def replace_argv(c, old, new, leader):
    return [c.binary, "cluster", "--addr", leader.client_addr, "replace", str(old.id), "4", new.client_addr,
            new.peer_addr]


def run_replace(c, old, new, leader):
    p = subprocess.run(replace_argv(c, old, new, leader), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=REPLACE_TIMEOUT_S, check=False)
    out = p.stdout.decode("utf-8", "replace")
    print(out)
    expect(p.returncode == 0, "replace exited %d:\n%s" % (p.returncode, out))
    return out


def wait_writes(w, more_than, what):
    ct.wait_for(lambda: len(w.acked) > more_than + WRITES_AFTER, WRITES_TIMEOUT_S, "writes %s" % what)


def finish(c, w, members, old, new, out, old_dead=False):
    """After a successful replace: the summary, OLD's exit, the membership, the writes."""
    expect(re.search(r"^replaced node %d by node 4$" % old.id, out, re.M), "no summary line:\n%s" % out)
    expect("identical at index" in out, "the replace did not verify:\n%s" % out)
    if old in members:
        members.remove(old)
    c.nodes.remove(old)  # it stops by itself, which is not a crash
    if old_dead:
        expect(re.search(r"^node %d does not answer: it is left out of the verify$" % old.id, out, re.M),
               "the dead node was not left out of the verify:\n%s" % out)
    else:
        code = ct.wait_exit(old, REMOVED_EXIT_TIMEOUT_S, "the replaced %s to stop" % old)
        expect(code == REMOVED_EXIT_CODE, "%s exited with %r, expected %d" % (old, code, REMOVED_EXIT_CODE))
    final = re.search(r"^  members: (.*)$", out, re.M)
    expect(final is not None, "no members line:\n%s" % out)
    ids = sorted(int(x) for x in re.findall(r"(\d+) \(voter", final.group(1)))
    expect(ids == sorted(n.id for n in members) and "learner" not in final.group(1),
           "final members %r, expected voters %r" % (final.group(1), sorted(n.id for n in members)))
    listed = new.call("CLUSTER", "MEMBERS").decode()
    expect(sorted(int(l.split()[0]) for l in listed.splitlines() if l.strip()) == sorted(n.id for n in members)
           and "learner" not in listed, "CLUSTER MEMBERS after the replace: %r" % listed)
    n_before = len(w.acked)
    wait_writes(w, n_before, "after the replace")
    w.finish()
    expect(w.is_alive() is False, "the writer did not stop")
    c.wait_converged(CONVERGE_TIMEOUT_S)
    ct.check_writes_everywhere(c.nodes, w)
    ct.check_digests(c.nodes)
    print("%d writes acknowledged, %d errors/redirects retried" % (len(w.acked), w.errors))


def setup(c):
    leader = c.wait_leader(LEADER_TIMEOUT_S)
    preload(leader)
    members = list(c.nodes)
    w = ct.Writer(lambda: list(members))
    w.start()
    wait_writes(w, 0, "before the replace")
    new = start_new_node(c)
    c.nodes.append(new)
    members.append(new)
    return leader, members, w, new


def case_follower(c):
    leader, members, w, new = setup(c)
    old = next(n for n in c.nodes if n is not leader and n is not new)
    out = run_replace(c, old, new, leader)
    expect("next step: add the new node as a learner" in out, "it did not start by adding the learner:\n%s" % out)
    expect(re.search(r"^  catch-up: \d+ entries in [\d.]+ s \(\d+ entries/s\)", out, re.M),
           "no catch-up figures:\n%s" % out)
    finish(c, w, members, old, new, out)


def case_leader(c):
    leader, members, w, new = setup(c)
    old = leader
    out = run_replace(c, old, new, leader)
    pause = re.search(r"^  write pause: (\d+) ms, from the transfer request to node 4's first committed write", out, re.M)
    expect(pause is not None, "no write pause reported:\n%s" % out)
    expect("leadership moved to node 4" in out, "no transfer to node 4:\n%s" % out)
    finish(c, w, members, old, new, out)
    print("write pause reported: %s ms" % pause.group(1))


def case_interrupted(c):
    leader, members, w, new = setup(c)
    old = next(n for n in c.nodes if n is not leader and n is not new)
    new.pause()  # it cannot catch up until resumed: the tool is caught waiting
    tool = subprocess.Popen(replace_argv(c, old, new, leader), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    seen = threading.Event()

    def read():
        for raw in tool.stdout:
            line = raw.decode("utf-8", "replace")
            lines.append(line)
            if re.match(r"node 4: .*\d+ entries behind", line):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        got = seen.wait(REPLACE_TIMEOUT_S)
        expect(got, "no progress line from the tool:\n%s" % "".join(lines))
        expect(any("added node 4 as a learner" in l for l in lines), "progress before the learner was added?")
    finally:
        tool.send_signal(signal.SIGKILL)
        tool.wait(timeout=10)
        reader.join(timeout=10)
    print("".join(lines))
    out = subprocess.run([c.binary, "cluster", "--addr", leader.client_addr, "status"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=60, check=False).stdout.decode()
    print(out)
    expect(re.search(r"^node 4 is a learner \(it receives the log, does not vote\), \d+ entries behind the leader",
                     out, re.M), "status does not explain the learner:\n%s" % out)
    expect("`hmdb cluster replace OLD 4 %s %s`" % (new.client_addr, new.peer_addr) in out,
           "status does not name the command that resumes:\n%s" % out)
    new.resume()
    out = run_replace(c, old, new, leader)
    expect("next step: wait for the learner's catch-up, verify, promote it" in out,
           "the second run did not resume at the catch-up:\n%s" % out)
    expect("added node 4" not in out, "the second run added the learner again:\n%s" % out)
    finish(c, w, members, old, new, out)


def case_dead(c):
    leader, members, w, new = setup(c)
    old = next(n for n in c.nodes if n is not leader and n is not new)
    members.remove(old)  # the writer stops trying it
    old.kill()
    out = run_replace(c, old, new, leader)
    finish(c, w, members, old, new, out, old_dead=True)


CASES = {"follower": case_follower, "leader": case_leader, "interrupted": case_interrupted, "dead": case_dead}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("binary")
    args = ap.parse_args()
    for name in args.case or list(CASES):
        work = harness.make_work_dir("hmdb-replace-%s-" % name)
        c = cl.Cluster(args.binary, work, nodes=3, cluster_id="hmdb-replace-test")
        t0 = time.monotonic()
        try:
            c.start()
            CASES[name](c)
            c.check_alive()
        except (harness.TestFailure, harness.ServerExited, resp.ConnectionLost, resp.ProtocolError, OSError,
                subprocess.TimeoutExpired) as e:
            print("FAIL %s: %s\nwork dir kept: %s" % (name, e, work))
            for n in c.nodes:
                print(n.log_tail())
            c.kill_all()
            return 1
        c.kill_all()
        print("ok %s (%.1f s)" % (name, time.monotonic() - t0))
        if not args.keep:
            harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
