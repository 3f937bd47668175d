#!/usr/bin/env python3
"""The operator's upgrade flow (docs/cluster.md, "Upgrading a cluster") on a live 3-node ledger
cluster under client load: hmdb-ledger (schema version 1), hmdb-ledger-v2 (version 2) and,
when given, hmdb-ledger-v3 (version 3).

  live      v1 -> v2 (-> v3): every node is replaced in turn by a new node of the next binary
            (`hmdb cluster replace`), then the gate is committed (`hmdb cluster schema
            activate N`). v2 -> v3 takes the other shape: the three new nodes are added as
            learners and verified with the old ones (6 members) first, then each replace goes
            on from the catch-up. While the second replace runs, the leader is killed with kill -9; the
            replace is run again until it finishes (it resumes), and the killed node is
            restarted if it is still a member. Before the last node of a round is replaced,
            the gate is refused, by the tool (naming the old node) and by the leader itself
            while fewer than a quorum reads the version, and nothing is activated. `hmdb
            cluster schema` says how far the upgrade is. After each gate an old-binary node
            added as a learner stops applying at the activation or refuses the leader's
            snapshot of the new version, and says so (INFO, refusals), then is removed.
  rollback  v1 -> v2 on every node, not activated, then abandoned: every v2 node writes a
            snapshot (in version 1's layout, while version 1 is active), one is restarted in
            place with hmdb-ledger on its own data directory (it loads that snapshot), the two
            others are replaced by new hmdb-ledger nodes (they catch up from a v2 node's
            snapshot). The cluster ends all-v1.

Throughout, 3 clients run transfers of the same words ("TRANSFER bank <account> 1 USD", valid
at every version) and reads. Each account's transfer count (ACCOUNT.GET's "transfers") is a
register: a transfer in MULTI/EXEC with ACCOUNT.GET after it is an INCR that returns the new
count, ACCOUNT.GET alone a GET, ACCOUNT.CREATE a SET to 0. At the end every account is read
on the leader and the whole history (sim/history_io.h) must be linearizable for hmdb-lincheck,
which is also shown a copy with one final read one transfer short (a lost acknowledged write)
and must refuse it. No acknowledged transfer is lost: each account's final count is at least
its highest acknowledged count. `hmdb cluster verify` finds every member identical at one
index after each round and at the end, and SUPPLY USD is 0 on every node (money is neither
created nor lost).

Every wait is a bounded poll of a real condition. Usage: upgrade_test.py --case NAME --ledger
BIN --ledger-v2 BIN [--ledger-v3 BIN] --lincheck BIN [--keep] [HMDB_BINARY (ignored)]
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import threading
import time

import cluster as cl
import harness
import resp

LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
# One `hmdb cluster replace` (a catch-up of a small log or snapshot, a verify, three
# membership changes) takes a few seconds; this bounds it on a loaded 2-core machine.
REPLACE_TIMEOUT_S = 120.0
# Runs of one replace before the test gives up: the first may fail because the leader was
# killed under it, or because an election under load failed its leadership transfer (the
# server answers that after kClusterCommandTimeoutMs, 10 s); each run resumes where the last
# one stopped.
REPLACE_ATTEMPTS = 4
# How long the interrupted replace may take to show that it added its learner.
REPLACE_PROGRESS_TIMEOUT_S = 60.0
# Acknowledged client transfers required after each step before the test goes on, and how long
# they may take (the load runs throughout; this shows it was served at each step).
OPS_AFTER_STEP = 10
OPS_TIMEOUT_S = 60.0
REMOVED_EXIT_CODE = 4
REMOVED_EXIT_TIMEOUT_S = 30.0
BLOCKED_TIMEOUT_S = 60.0
# The old-binary learner added after the gate of version V has id LEFT_BEHIND_ID_BASE + V (the
# replacements take 4..6 and 7..9; a removed node's id is never reused).
LEFT_BEHIND_ID_BASE = 20
# Client load: threads, one op's bound (send and reply), pause after a redirect or no leader.
CLIENTS = 3
CLIENT_OP_TIMEOUT_S = 2.0
NO_LEADER_BACKOFF_S = 0.02
CLIENT_JOIN_TIMEOUT_S = 30.0
# Share of transfers among the ops (the rest are reads).
TRANSFER_SHARE = 0.7
# Accounts: ACCOUNTS_PER_EPOCH new ones every EPOCH_S, so that one account's history stays
# short; the last epoch's accounts take the ops of any later time.
ACCOUNTS_PER_EPOCH = 4
EPOCHS = 12
EPOCH_S = 4.0
ADMIN_CLIENT = 0
LINCHECK_TIMEOUT_S = 300.0
LOST_WRITE_ERROR = "ERR write lost in a leadership change"
OUTCOME_UNKNOWN_ERROR = "ERR write outcome unknown"

check = harness.check


def account(epoch, i):
    return "a%02d-%d" % (epoch, i)


class Load:
    """CLIENTS threads of transfers and reads on the members' addresses, recording a history."""

    def __init__(self, c, seed):
        self.c = c
        self.lock = threading.Lock()
        self.members = []  # the nodes clients send to (voters that apply)
        self.history = []  # (client, key, kind, arg, result, invoke, ret, outcome)
        self.acked = 0  # acknowledged transfers
        self.unexpected = []
        self.stop = threading.Event()
        self.started = None
        self.seed = seed
        self.threads = []

    def set_members(self, nodes):
        with self.lock:
            self.members = list(nodes)

    def record(self, *op):
        with self.lock:
            self.history.append(op)
            if op[2] == "incr" and op[7] == "ok":
                self.acked += 1

    def create_accounts(self):
        """bank and every epoch's accounts, on the leader of the moment (cl.leader_call: an
        election under load moves it), each recorded as a SET to 0 from its first send on."""
        _, reply = cl.leader_call(self.c, ["ACCOUNT.CREATE", "bank", "USD", "OVERDRAFT"], again="already exists")
        check(reply == "OK", "ACCOUNT.CREATE bank answered %r" % (reply,))
        for e in range(EPOCHS):
            for i in range(ACCOUNTS_PER_EPOCH):
                invoke = time.monotonic_ns()
                _, reply = cl.leader_call(self.c, ["ACCOUNT.CREATE", account(e, i), "USD"], again="already exists")
                check(reply == "OK", "ACCOUNT.CREATE answered %r" % (reply,))
                self.record(ADMIN_CLIENT, account(e, i), "set", 0, None, invoke, time.monotonic_ns(), "ok")

    def start(self):
        self.started = time.monotonic()
        for cid in range(1, CLIENTS + 1):
            t = threading.Thread(target=self.run, args=(cid,), name="client-%d" % cid, daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(CLIENT_JOIN_TIMEOUT_S)
            check(not t.is_alive(), "a client thread did not stop")

    def pick(self, rng):
        epoch = min(int((time.monotonic() - self.started) / EPOCH_S), EPOCHS - 1)
        if epoch > 0 and rng.random() < 0.25:
            epoch -= 1  # accounts live through two epochs
        return account(epoch, rng.randrange(ACCOUNTS_PER_EPOCH))

    def wait_ops(self, what):
        with self.lock:
            target = self.acked + OPS_AFTER_STEP
        deadline = time.monotonic() + OPS_TIMEOUT_S
        while True:
            with self.lock:
                if self.acked >= target:
                    return
            check(time.monotonic() < deadline, "fewer than %d transfers acknowledged within %.0fs %s"
                  % (OPS_AFTER_STEP, OPS_TIMEOUT_S, what))
            check(not self.unexpected, "unexpected replies: %s" % self.unexpected[:5])
            time.sleep(cl.POLL_INTERVAL_S)

    def run(self, cid):
        rng = random.Random("%d:%d" % (self.seed, cid))
        conns = {}
        target = None
        try:
            while not self.stop.is_set():
                key = self.pick(rng)
                kind = "incr" if rng.random() < TRANSFER_SHARE else "get"
                while not self.stop.is_set():
                    with self.lock:
                        members = list(self.members)
                    node = target if target in members else rng.choice(members)
                    outcome = self.one(cid, conns, node, kind, key)
                    if outcome == "again":
                        target = None
                        time.sleep(NO_LEADER_BACKOFF_S)
                        continue
                    if isinstance(outcome, cl.Node):
                        target = outcome
                        continue
                    break
        except Exception as e:  # a broken promise in a reply, or a harness bug: fail the test
            with self.lock:
                self.unexpected.append("client %d: %r" % (cid, e))
        finally:
            for conn in conns.values():
                conn.close()

    def one(self, cid, conns, node, kind, key):
        """One attempt: records the op and returns "done", or returns "again" (not executed:
        no leader, not reachable) or the node a -MOVED names."""
        conn = conns.get(node)
        if conn is None:
            try:
                conn = node.client(timeout=CLIENT_OP_TIMEOUT_S)
            except (resp.ConnectionLost, resp.ProtocolError, OSError):
                return "again"
            conns[node] = conn
        if kind == "incr":
            cmds = [["MULTI"], ["TRANSFER", "bank", key, "1", "USD"], ["ACCOUNT.GET", key], ["EXEC"]]
        else:
            cmds = [["ACCOUNT.GET", key]]
        invoke = time.monotonic_ns()
        try:
            replies = conn.pipeline(cmds)
        except (resp.ConnectionLost, resp.ProtocolError, OSError):
            conns.pop(node).close()
            self.record(cid, key, kind, None, None, invoke, time.monotonic_ns(), "unknown")
            return "done"
        ret = time.monotonic_ns()
        last = replies[-1]
        if isinstance(last, resp.RespError):
            msg = last.message
            if msg.startswith("MOVED "):
                moved = self.c.node_by_client_addr(msg.split()[-1]) if len(msg.split()) == 3 else None
                return moved or "again"
            if msg.startswith(("CLUSTERDOWN", "TRYAGAIN")):
                return "again"
            if kind == "incr" and (msg.startswith(LOST_WRITE_ERROR) or msg.startswith("EXECABORT")):
                self.record(cid, key, kind, None, None, invoke, ret, "failed")
                return "done"
            if kind == "incr" and msg.startswith(OUTCOME_UNKNOWN_ERROR):
                self.record(cid, key, kind, None, None, invoke, ret, "unknown")
                return "done"
            with self.lock:
                self.unexpected.append("%s on %s: %s" % (" ".join(cmds[-1]), node, msg))
            self.record(cid, key, kind, None, None, invoke, ret, "unknown")
            return "done"
        if kind == "incr":
            check(replies[0] == "OK" and replies[1] == "QUEUED" and replies[2] == "QUEUED",
                  "MULTI's replies: %r" % (replies,))
            check(isinstance(last, list) and len(last) == 2, "EXEC answered %r" % (last,))
            if isinstance(last[0], resp.RespError):
                # The transfer was refused when it ran (nothing changed): the read is a GET.
                self.record(cid, key, "get", None, transfers_of(last[1]), invoke, ret, "ok")
                return "done"
            check(isinstance(last[0], int), "TRANSFER in EXEC answered %r" % (last[0],))
            self.record(cid, key, "incr", None, transfers_of(last[1]), invoke, ret, "ok")
        else:
            self.record(cid, key, "get", None, transfers_of(last), invoke, ret, "ok")
        return "done"


def transfers_of(reply):
    """ACCOUNT.GET's reply (a flat field/value array) -> its "transfers" count."""
    check(isinstance(reply, list) and len(reply) % 2 == 0, "ACCOUNT.GET answered %r" % (reply,))
    fields = {reply[i]: reply[i + 1] for i in range(0, len(reply), 2)}
    count = fields.get(b"transfers")
    check(isinstance(count, int), "ACCOUNT.GET has no transfers count: %r" % (reply,))
    return count


def op_json(cid, key, kind, arg, result, invoke, ret, outcome):
    op = {"client": cid, "key": key, "kind": kind, "invoke": invoke, "outcome": outcome}
    if kind == "set":
        op["arg"] = arg
    if outcome == "ok":
        op["ret"] = ret
        if kind != "set":
            op["result"] = result
    return json.dumps(op, separators=(",", ":"))


def run_lincheck(lincheck, path):
    try:
        p = subprocess.run([lincheck, path], capture_output=True, text=True, timeout=LINCHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise harness.TestFailure("hmdb-lincheck took more than %.0fs on %s" % (LINCHECK_TIMEOUT_S, path)) from None
    return p.returncode, (p.stdout + p.stderr).strip()


# ---- the cluster ----------------------------------------------------------------------


def cli(binary, node, *args, timeout=REPLACE_TIMEOUT_S):
    p = subprocess.run([binary, "cluster", "--addr", node.client_addr] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, check=False)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def call_executed(node, *args):
    """node's reply to a read, asked again while the reply says it was not executed (a follower
    that knows no leader during an election under load answers -CLUSTERDOWN)."""
    deadline = time.monotonic() + LEADER_TIMEOUT_S
    while True:
        reply = node.call(*args)
        if not (isinstance(reply, resp.RespError) and reply.message.startswith(cl.NOT_EXECUTED_REPLIES)):
            return reply
        check(time.monotonic() < deadline, "%s: %s not executed within %.0fs: %s"
              % (node, " ".join(args), LEADER_TIMEOUT_S, reply.message))
        time.sleep(cl.POLL_INTERVAL_S)


def server_info(node):
    return cl.parse_info(node.call("INFO", "server"))


def wait_for(what, fn, timeout):
    """harness.wait_for at the cluster's poll interval."""
    return harness.wait_for(what, timeout, fn, cl.POLL_INTERVAL_S)


def start_joiner(c, node_id, binary):
    """A new node started with --join (an unused id, an empty data directory)."""
    ip = cl.node_ip(node_id)
    n = cl.Node(c, node_id, cl.free_port_on(ip), cl.free_port_on(ip))
    n.binary = binary
    # n.binary read at each start: a restart may run another binary on the same directory.
    n.command = lambda: [n.binary, "serve", "--node-id", str(node_id), "--bind", n.ip, "--port", str(n.client_port),
                         "--peer-addr", n.peer_addr, "--join", "--cluster-id", c.cluster_id, "--dir", n.data_dir,
                         "--durability", c.durability] + list(c.server_args)
    n.start()
    c.nodes.append(n)
    return n


def node_by_id(c, node_id):
    return next(n for n in c.nodes if n.id == node_id)


def member_ids(node):
    listed = node.call("CLUSTER", "MEMBERS")
    check(isinstance(listed, bytes), "%s: CLUSTER MEMBERS answered %r" % (node, listed))
    return sorted(int(line.split()[0]) for line in listed.decode().splitlines() if line.strip())


def replace(c, load, old, new, tool, kill_leader=False):
    """`hmdb cluster replace OLD NEW` until it exits 0 (each run resumes); with kill_leader,
    the leader is killed (kill -9) once the first run has added the learner. OLD ends removed:
    it stops by itself (exit 4), or stays dead if it was the one killed."""
    killed = None
    outs = []  # every run's output: a run that resumes after the promotion verifies nothing again
    for attempt in range(REPLACE_ATTEMPTS):
        via = next(n for n in load.members if n is not old and n.state() == cl.Node.RUNNING)
        argv = [tool, "cluster", "--addr", via.client_addr, "replace", str(old.id), str(new.id), new.client_addr,
                new.peer_addr]
        if kill_leader and attempt == 0:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            lines = []
            added = threading.Event()

            def read():
                for raw in p.stdout:
                    line = raw.decode("utf-8", "replace")
                    lines.append(line)
                    # Once it has added the learner, or found it added (the other shape).
                    if ("added node %d as a learner" % new.id in line
                            or "next step: wait for the learner's catch-up" in line):
                        added.set()
            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                check(added.wait(REPLACE_PROGRESS_TIMEOUT_S), "the replace did not add node %d:\n%s"
                      % (new.id, "".join(lines)))
                # The new node counts: the tool may have promoted it and moved leadership to it.
                killed = c.wait_leader(LEADER_TIMEOUT_S, nodes=load.members + [new])
                killed.kill()
                print("kill -9 of the leader, %s, during the replace of %s by node %d" % (killed, old, new.id))
                was_member = killed in load.members
                load.set_members([n for n in load.members if n is not killed])
                code = p.wait(timeout=REPLACE_TIMEOUT_S)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                reader.join(timeout=10)
            out = "".join(lines)
            if killed is not old:
                killed.start()  # still a member: it comes back with its data and catches up
                if was_member:
                    load.set_members(load.members + [killed])
        else:
            code, out = (lambda p: (p.returncode, p.stdout.decode("utf-8", "replace")))(
                subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=REPLACE_TIMEOUT_S,
                               check=False))
        print("$ %s\n%s(exit %d)" % (" ".join(argv[1:]), out, code))
        outs.append(out)
        if code == 0:
            break
    else:
        raise harness.TestFailure("the replace of %s by node %d did not succeed in %d runs" % (old, new.id,
                                                                                               REPLACE_ATTEMPTS))
    check(re.search(r"^replaced node %d by node %d$" % (old.id, new.id), out, re.M), "no summary line:\n%s" % out)
    # Verified before node N became a voter: in the run that promoted it, or in an earlier one
    # when a later run resumed past the promotion (an election under load failed the transfer
    # after it: that run starts at the transfer or the removal and verifies nothing again).
    runs = "".join(outs)
    promoted = runs.find("promoted node %d to voter" % new.id)
    check("identical at index" in runs[:promoted if promoted >= 0 else len(runs)],
          "the replace did not verify before the promotion:\n%s" % runs)
    c.nodes.remove(old)
    load.set_members([n for n in load.members if n is not old] + [new])
    if killed is not old:
        code = wait_exit(old)
        check(code == REMOVED_EXIT_CODE, "%s exited %r, expected %d" % (old, code, REMOVED_EXIT_CODE))
    check(old.id not in member_ids(new) and new.id in member_ids(new), "members after the replace: %r"
          % member_ids(new))
    load.wait_ops("after %s was replaced by node %d" % (old, new.id))


def wait_exit(node):
    deadline = time.monotonic() + REMOVED_EXIT_TIMEOUT_S
    while node.proc.poll() is None:
        check(time.monotonic() < deadline, "%s did not stop within %.0fs\n%s" % (node, REMOVED_EXIT_TIMEOUT_S,
                                                                                node.log_tail()))
        time.sleep(cl.POLL_INTERVAL_S)
    cl._live_nodes.discard(node)
    return node.proc.returncode


def verify(tool, node, version, members):
    code, out = cli(tool, node, "verify")
    print(out, end="")
    check(code == 0 and ("schema version %d (%d members)" % (version, members)) in out,
          "verify at version %d (exit %d):\n%s" % (version, code, out))


def verified(tool, node, version, members):
    """`hmdb cluster verify`'s output if every one of `members` members is identical, else None."""
    code, out = cli(tool, node, "verify")
    return out if code == 0 and ("schema version %d (%d members)" % (version, members)) in out else None


def schema_line(tool, node):
    code, out = cli(tool, node, "schema")
    print(out, end="")
    check(code == 0, "cluster schema (exit %d):\n%s" % (code, out))
    return out


def check_gate_refused(tool, load, version, old):
    """With `old` (a binary that does not read `version`) a member, the tool refuses the gate
    naming it, and nothing is activated."""
    via = load.members[0]
    code, out = cli(tool, via, "schema", "activate", str(version))
    check(code == 1 and "refused, nothing was proposed" in out and ("node %d (voter" % old.id) in out,
          "activate %d with node %d on the old binary (exit %d):\n%s" % (version, old.id, code, out))
    for n in load.members:
        check(server_info(n).get("schema_version_active") == str(version - 1), "%s: activated anyway" % n)


def check_leader_gate(c, load, tool, version, new):
    """1 of 3 voters (new) reads `version`: the leader refuses CLUSTER SCHEMA ACTIVATE, an old
    one because it cannot activate it, and `new` itself (leadership moved to it) because
    fewer than a quorum read it."""
    leader = c.wait_leader(LEADER_TIMEOUT_S, nodes=load.members)
    if leader is not new:
        refused = leader.call("CLUSTER", "SCHEMA", "ACTIVATE", str(version))
        check(isinstance(refused, resp.RespError) and ("it cannot activate version %d" % version) in refused.message,
              "the old-binary leader %s did not refuse to activate %d: %r" % (leader, version, refused))
        print("the old leader refuses: %s" % refused.message)
        code, out = cli(tool, leader, "transfer", str(new.id))
        check(code == 0, "transfer to %s (exit %d):\n%s" % (new, code, out))
        check(c.wait_leader(LEADER_TIMEOUT_S, nodes=load.members) is new, "%s leads" % new)
    refused = new.call("CLUSTER", "SCHEMA", "ACTIVATE", str(version))
    check(isinstance(refused, resp.RespError)
          and ("refused: 1 of 3 voters read schema version %d, and a quorum is 2" % version) in refused.message,
          "the leader %s did not refuse an activation of %d that 1 of 3 voters reads: %r" % (new, version, refused))
    print("the new leader refuses: %s" % refused.message)
    for n in load.members:
        check(server_info(n).get("schema_version_active") == str(version - 1), "%s: activated anyway" % n)


def check_left_behind(c, load, tool, old_binary, node_id, version):
    """An old-binary node added after the gate never applies an entry of `version`: it is
    blocked (at the activation entry, or refusing the leader's snapshot of `version`), says
    so and refuses clients; removed, it stops."""
    n = start_joiner(c, node_id, old_binary)
    code, out = cli(tool, load.members[0], "add-learner", str(node_id), n.client_addr, n.peer_addr)
    check(code == 0, "add-learner (exit %d):\n%s" % (code, out))
    index = wait_for("node %d blocked" % node_id,
                     lambda: int(server_info(n).get("schema_blocked_at_index", "0")), BLOCKED_TIMEOUT_S)
    info = server_info(n)
    check(info.get("schema_blocked_version") == str(version), "INFO server of the left-behind node: %r" % info)
    check(info.get("schema_version_active") == str(version - 1), "it applied the activation: %r" % info)
    applied = int(n.info()["applied_index"])
    check(applied < index, "node %d applied up to %d, at or past the entry it is blocked at (%d)" % (node_id, applied,
                                                                                                  index))
    refused = n.call("ACCOUNT.GET", "bank")
    check(isinstance(refused, resp.RespError) and "schema version %d" % version in refused.message,
          "a blocked node's reply to a query: %r" % (refused,))
    check("schema: BLOCKED" in n.log(), "no log line:\n%s" % n.log_tail())
    code, out = cli(tool, load.members[0], "status")
    check(("node %d: BLOCKED" % node_id) in out, "status does not say node %d is blocked:\n%s" % (node_id, out))
    print("node %d (old binary) is blocked at index %d, applied %d" % (node_id, index, applied))
    code, out = cli(tool, load.members[0], "remove", str(node_id))
    check(code == 0, "remove (exit %d):\n%s" % (code, out))
    c.nodes.remove(n)
    check(wait_exit(n) == REMOVED_EXIT_CODE, "the removed learner's exit code")


def upgrade_round(c, load, tool, old_binary, new_binary, version, first_id, kill_leader, check_left, add_first):
    """Replaces the three members by new nodes of new_binary, then activates `version`. With
    add_first, the three new nodes are added as learners and verified with the old ones
    first; each replace then goes on from the catch-up (docs/cluster.md's second shape)."""
    olds = sorted(load.members, key=lambda n: n.id)
    check(len(olds) == 3, "members: %r" % olds)
    news = []
    if add_first:
        for k in range(3):
            n = start_joiner(c, first_id + k, new_binary)
            code, out = cli(tool, load.members[0], "add-learner", str(n.id), n.client_addr, n.peer_addr)
            check(code == 0, "add-learner %d (exit %d):\n%s" % (n.id, code, out))
            news.append(n)
        out = wait_for("the learners caught up and verified", lambda: verified(tool, load.members[0], version - 1, 6),
                       CONVERGE_TIMEOUT_S)
        print(out, end="")
        load.wait_ops("with three learners")
    for k, old in enumerate(olds):
        if k == 1:
            check_leader_gate(c, load, tool, version, news[0])
        if k == 2:
            out = schema_line(tool, load.members[0])
            # Two old nodes replaced; the third new one is a learner already in the other shape.
            readers, members = (3, 4) if add_first else (2, 3)
            check("upgrade to schema version %d: %d of %d members read it (not yet: node %d reads"
                  % (version, readers, members, old.id) in out,
                  "cluster schema does not say where the upgrade stands:\n%s" % out)
            check_gate_refused(tool, load, version, old)
        if not add_first:
            news.append(start_joiner(c, first_id + k, new_binary))
        replace(c, load, old, news[k], tool, kill_leader=kill_leader and k == 1)
    c.wait_leader(LEADER_TIMEOUT_S, nodes=load.members)
    out = schema_line(tool, load.members[0])
    check("upgrade to schema version %d: 3 of 3 members read it; the gate is not committed" % version in out,
          "cluster schema before the gate:\n%s" % out)
    verify(tool, load.members[0], version - 1, 3)
    code, out = cli(tool, load.members[0], "schema", "activate", str(version))
    print(out, end="")
    check(code == 0 and ("schema version %d is active" % version) in out, "activate (exit %d):\n%s" % (code, out))
    load.wait_ops("after the activation of version %d" % version)
    for n in load.members:
        check(server_info(n).get("schema_version_active") == str(version), "%s: active version" % n)
    verify(tool, load.members[0], version, 3)
    if check_left:
        check_left_behind(c, load, tool, old_binary, LEFT_BEHIND_ID_BASE + version, version)
    load.wait_ops("after version %d" % version)
    verify(tool, load.members[0], version, 3)


def case_upgrade(c, load, args):
    binaries = [args.ledger, args.ledger_v2] + ([args.ledger_v3] if args.ledger_v3 else [])
    first_id = 4
    for version in range(2, len(binaries) + 1):
        upgrade_round(c, load, binaries[version - 1], binaries[version - 2], binaries[version - 1], version, first_id,
                      kill_leader=True, check_left=True, add_first=version == 3)
        first_id += 3
    return len(binaries)


def case_rollback(c, load, args):
    v1, v2 = args.ledger, args.ledger_v2
    for k, old in enumerate(sorted(load.members, key=lambda n: n.id)):
        replace(c, load, old, start_joiner(c, 4 + k, v2), v2)
    out = schema_line(v2, load.members[0])
    check("3 of 3 members read it; the gate is not committed" in out, "cluster schema:\n%s" % out)
    # Every v2 node writes a snapshot (and compacts its log) at active version 1.
    for n in load.members:
        snap = n.call("SNAPSHOT", timeout=30.0)
        check(isinstance(snap, str) and snap.startswith("OK snapshot at index"), "%s: SNAPSHOT answered %r" % (n, snap))
    load.wait_ops("after the snapshots")
    # Abandon. Node 4 in place: the v1 binary on the v2 node's data directory.
    n4 = node_by_id(c, 4)
    load.set_members([n for n in load.members if n is not n4])
    check(n4.terminate() == 0, "SIGTERM to node 4")
    n4.binary = v1
    n4.start()
    check("recovery: loading snapshot" in n4.log(), "node 4 did not load its snapshot:\n%s" % n4.log_tail())
    load.set_members(load.members + [n4])
    load.wait_ops("after node 4 came back on the v1 binary")
    # Nodes 5 and 6 replaced by new v1 nodes: each catches up from a v2-written snapshot.
    for k, old in enumerate([node_by_id(c, 5), node_by_id(c, 6)]):
        new = start_joiner(c, 7 + k, v1)
        replace(c, load, old, new, v1)
        check("installed the leader's snapshot" in new.log(), "%s did not catch up by snapshot:\n%s"
              % (new, new.log_tail()))
    for n in load.members:
        info = server_info(n)
        check(info.get("schema_version") == "1" and info.get("schema_version_active") == "1",
              "%s does not run version 1: %r" % (n, info))
    out = schema_line(v1, load.members[0])
    check("upgrade to" not in out, "an upgrade still pending after the rollback:\n%s" % out)
    return 1


def final_checks(c, load, lincheck, tool, version, work):
    load.finish()
    check(not load.unexpected, "unexpected replies: %s" % load.unexpected[:5])
    c.wait_converged(CONVERGE_TIMEOUT_S)
    finals = {}
    keys = sorted({op[1] for op in load.history})
    for key in keys:
        # On the leader of the moment: an election under load between two reads moves it.
        invoke = time.monotonic_ns()
        _, reply = cl.leader_call(c, ["ACCOUNT.GET", key])
        count = transfers_of(reply)
        load.record(ADMIN_CLIENT, key, "get", None, count, invoke, time.monotonic_ns(), "ok")
        finals[key] = count
    # No acknowledged transfer lost: the final count is at least every acknowledged count.
    for op in load.history:
        if op[2] == "incr" and op[7] == "ok":
            check(finals[op[1]] >= op[4], "lost acknowledged transfer: %s reached %d transfers, now %d"
                  % (op[1], op[4], finals[op[1]]))
    for n in c.nodes:
        supply = call_executed(n, "SUPPLY", "USD")  # [accounts, net, issued]
        check(isinstance(supply, list) and len(supply) == 3 and supply[1] in (0, b"0"),
              "%s: SUPPLY USD answered %r (the net of all balances is not 0: money created or lost)" % (n, supply))
    verify(tool, c.wait_leader(LEADER_TIMEOUT_S), version, len(c.nodes))
    path = os.path.join(work, "history.jsonl")
    with open(path, "w") as f:
        for op in load.history:
            f.write(op_json(*op) + "\n")
    code, out = run_lincheck(lincheck, path)
    counts = {}
    for op in load.history:
        counts[(op[2], op[7])] = counts.get((op[2], op[7]), 0) + 1
    print("history: %d ops (%s); hmdb-lincheck: %s" % (len(load.history), ", ".join(
        "%s %s %d" % (k[0], k[1], v) for k, v in sorted(counts.items())), out.splitlines()[0] if out else ""))
    check(code == 0, "the history is not linearizable (%s):\n%s" % (path, out))
    # The checker has teeth on this history: one final read a transfer short is refused (on an
    # account whose final count an acknowledged transfer returned, so no unknown op explains it).
    acked_finals = [op[1] for op in load.history if op[2] == "incr" and op[7] == "ok" and op[4] == finals[op[1]]]
    check(acked_finals, "no account's final count was acknowledged")
    key = acked_finals[-1]
    planted = os.path.join(work, "history-planted-lost-write.jsonl")
    with open(planted, "w") as f:
        for op in load.history[:-len(keys)]:
            f.write(op_json(*op) + "\n")
        for op in load.history[-len(keys):]:
            if op[1] == key:
                op = op[:4] + (op[4] - 1,) + op[5:]
            f.write(op_json(*op) + "\n")
    code, out = run_lincheck(lincheck, planted)
    check(code == 1, "hmdb-lincheck accepted a final read of %s one transfer short (exit %d): %s" % (key, code, out))


CASES = {"live": case_upgrade, "rollback": case_rollback}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--case", choices=sorted(CASES), required=True)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--ledger", required=True, help="hmdb-ledger (schema version 1)")
    ap.add_argument("--ledger-v2", required=True, help="hmdb-ledger-v2 (schema version 2)")
    ap.add_argument("--ledger-v3", default=None, help="hmdb-ledger-v3 (schema version 3), optional")
    ap.add_argument("--lincheck", required=True, help="hmdb-lincheck")
    ap.add_argument("binary", nargs="?", help="ignored (the ledgers are the binaries)")
    args = ap.parse_args()
    for name in ("ledger", "ledger_v2", "ledger_v3", "lincheck"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    seed = harness.get_seed(args.seed)
    work = harness.make_work_dir("hmdb-upgrade-%s-" % args.case)
    t0 = time.monotonic()
    c = cl.Cluster(args.ledger, work, nodes=3, cluster_id="hmdb-upgrade")
    load = Load(c, seed)
    try:
        c.start()
        c.wait_leader(LEADER_TIMEOUT_S)
        load.create_accounts()
        load.set_members(c.nodes)
        load.start()
        load.wait_ops("before the upgrade")
        version = CASES[args.case](c, load, args)
        final_checks(c, load, args.lincheck, args.ledger if version == 1 else
                     [args.ledger, args.ledger_v2, args.ledger_v3][version - 1], version, work)
        c.check_alive()
    except (harness.TestFailure, harness.ServerExited, resp.ConnectionLost, resp.ProtocolError, OSError,
            subprocess.TimeoutExpired) as e:
        load.stop.set()
        print("FAIL %s (seed %d): %s\nwork dir kept: %s" % (args.case, seed, e, work))
        for n in c.nodes:
            print(n.log_tail())
        c.kill_all()
        return 1
    c.kill_all()
    print("ok %s (seed %d, %.1f s)" % (args.case, seed, time.monotonic() - t0))
    if not args.keep:
        harness.remove_work_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
