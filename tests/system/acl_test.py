#!/usr/bin/env python3
"""Authorization: ACL users and rules (issue 15, second slice; docs/security.md) with real
hmdb processes and real clients.

  single     one kv node: a user without @write gets NOPERM for SET and reads; a user
             limited to keys app:* (and %R~ro:*) is refused other keys, reads and writes
             apart; a user limited to channels news.* may SUBSCRIBE/PUBLISH there only, and
             PSUBSCRIBE only its own pattern; redis-cli --user/--pass and redis-py
             (username=, Debian's interpreter) log in as named users and meet the same
             refusals; a restricted default user holds new connections; HMDB.EXPIRE (the
             engine's housekeeping command) is refused to every client; CLUSTER FORWARDER
             needs @admin; ACL LOG records the refusals; DELUSER closes the user's
             connections.
  cluster    three nodes: the same user set through each (every SETUSER is logged and
             applied by every node); a client of a follower logged in as it writes
             its keys through the forwarding link and is refused other keys by the
             follower (checked against its own user, never forwarded); the leader serves
             the link although the client's user could not send CLUSTER FORWARDER itself;
             every node reads the allowed write and none the refused one.
  replicated three nodes, each with an ACL file of its own: the first change (SETUSER on a
             follower, forwarded) makes the leader's file users every node's; SETUSER on
             the leader too; a refused rule is refused alike; a revocation (-@write) and a
             DELUSER (closing the user's connections) take effect on every node; a changed
             password works and the old one fails on every node, still after the leader is
             killed -9 and another elected (redis-py too); the killed node restarted catches
             up; ACL LOAD on a follower logs that follower's file (a bad one is refused
             there, naming it); a node restarted from its own snapshot holds the users
             though its file changed; ACL SAVE writes the replicated users to its file.
  link       three nodes with requirepass and --cluster-secret: default restricted
             (-cluster|forwarder, replicated) may not declare a link, yet a follower's client writes through
             its links, which log in as hmdb-forwarder (CLIENT LIST on the leader); AUTH as
             it with requirepass is refused, with the secret it may run nothing else; the
             name cannot be created (SETUSER); the secret is in no log.
  refused    three nodes with requirepass, no cluster secret: default restricted
             (-cluster|forwarder) before any write was forwarded, so the follower's first
             link is refused: its client's write gets the refusal as its error and runs
             nowhere, the follower logs it once and counts it; allowed again, the next
             link is accepted and the write goes through; `hmdb cluster verify` compares
             the replicated users too.
  file       --aclfile: its users at start (a file user logs in, default restricted by
             it); ACL SAVE writes SETUSER's changes and a restart reads them back; ACL LOAD
             takes an edited file, and a bad one (named line) changes nothing; a bad file
             at start exits 1 naming FILE and line; ACL LOAD/SAVE without a file refused.

Every wait is a bounded poll of a real condition. Usage: acl_test.py [--case NAME] HMDB_BINARY
"""

import argparse
import os
import shutil
import subprocess
import sys
import time

import cluster as cl
import harness
import resp

# Bounds on a cluster electing a leader and its nodes applying the same entries.
LEADER_TIMEOUT_S = 30
CONVERGE_TIMEOUT_S = 30

# Debian's interpreter, for which python3-redis is installed.
DEBIAN_PYTHON = harness.DEBIAN_PYTHON
# Bound on one client program's run (redis-cli, redis-py).
CLIENT_TIMEOUT_S = 60
# Bound on a closed connection being seen as closed.
CLOSE_TIMEOUT_S = 10

NOPERM_KEYS = resp.RespError("NOPERM this user has no permissions to access one of the keys used as arguments")
NOPERM_CHANNELS = resp.RespError(
    "NOPERM this user has no permissions to access one of the channels used as arguments")


def noperm(command):
    return resp.RespError("NOPERM this user has no permissions to run the '%s' command" % command)


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def expect_reply(got, want, what):
    expect(got == want, "%s: %r, expected %r" % (what, got, want))


# redis-py logged in as a named user: its writes refused, its reads served. argv: host port.
REDIS_PY_CHECK = r"""
import sys
import redis
host, port = sys.argv[1], int(sys.argv[2])
r = redis.Redis(host=host, port=port, username="reader", password="rpw")
try:
    r.set("k", "x")
    sys.exit("redis-py as reader: SET was served")
except redis.exceptions.NoPermissionError as e:
    if "no permissions to run the 'set' command" not in str(e):
        sys.exit("redis-py as reader: SET refused with %r" % str(e))
if r.get("k") != b"v":
    sys.exit("redis-py as reader: GET did not read the value")
try:
    redis.Redis(host=host, port=port, username="reader", password="wrong").get("k")
    sys.exit("redis-py with a wrong password was served")
except redis.exceptions.ResponseError as e:  # redis-py 4.3 raises WRONGPASS as it is
    if "WRONGPASS" not in str(e):
        sys.exit("redis-py with a wrong password: %r" % str(e))
print("redis-py %s: logged in as reader, SET refused, GET served" % redis.__version__)
"""


# redis-py on a follower whose forwarding link the leader refuses: the write raises
# ResponseError naming the refusal. argv: host port expected-message.
REDIS_PY_REFUSED_LINK = r"""
import sys
import redis
host, port, told = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    redis.Redis(host=host, port=port, password="pw").set("kpy", "v")
    sys.exit("redis-py: a write through a refused link was served")
except redis.exceptions.ResponseError as e:
    if str(e) != told:
        sys.exit("redis-py: %r, expected %r" % (str(e), told))
"""


def redis_cli(port, args, user=None, password=None):
    cli = shutil.which("redis-cli")
    if not cli:
        return None
    cmd = [cli, "-h", harness.HOST, "-p", str(port)]
    if user:
        cmd += ["--user", user, "--pass", password, "--no-auth-warning"]
    out = subprocess.run(cmd + args, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
    return out.stdout.strip()


def wait_closed(client):
    """True once the server closed client's connection (bounded by CLOSE_TIMEOUT_S)."""
    deadline = time.monotonic() + CLOSE_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            client.call("PING")
        except (resp.ConnectionLost, OSError):
            return True
    return False


def case_single(binary):
    work = harness.make_work_dir("hmdb-acl-")
    s = harness.Server(binary, os.path.join(work, "data"), work, durability="none")
    try:
        s.start()
        with s.client() as admin:
            expect_reply(admin.call("SET", "k", "v"), "OK", "SET as default")
            expect_reply(admin.call("ACL", "SETUSER", "reader", "on", ">rpw", "~*", "+@read"), "OK", "SETUSER reader")
            expect_reply(admin.call("ACL", "SETUSER", "app", "on", ">apw", "~app:*", "%R~ro:*", "+@all", "-@dangerous"),
                         "OK", "SETUSER app")
            expect_reply(admin.call("ACL", "SETUSER", "news", "on", ">npw", "resetchannels", "&news.*", "+@all"), "OK",
                         "SETUSER news")
            expect_reply(admin.call("ACL", "SETUSER", "watcher", "on", ">wpw", "~*", "+@all", "-@admin"), "OK",
                         "SETUSER watcher")
            users = admin.call("ACL", "USERS")
            expect_reply(users, [b"app", b"default", b"news", b"reader", b"watcher"], "ACL USERS")

        # A user without @write: writes refused, reads served.
        with s.client() as c:
            expect_reply(c.call("AUTH", "reader", "wrong"),
                         resp.RespError("WRONGPASS invalid username-password pair or user is disabled."), "wrong AUTH")
            expect_reply(c.call("AUTH", "reader", "rpw"), "OK", "AUTH reader")
            expect_reply(c.call("ACL", "WHOAMI"), noperm("acl|whoami"), "WHOAMI without @slow")
            expect_reply(c.call("SET", "k", "x"), noperm("set"), "SET as reader")
            expect_reply(c.call("INCR", "n"), noperm("incr"), "INCR as reader")
            expect_reply(c.call("FLUSHALL"), noperm("flushall"), "FLUSHALL as reader")
            expect_reply(c.call("GET", "k"), b"v", "GET as reader")
            expect_reply(c.call("MULTI"), noperm("multi"), "MULTI as reader")
            expect_reply(c.call("CLUSTER", "FORWARDER", "9"), noperm("cluster|forwarder"), "FORWARDER as reader")

        # Key patterns: app:* read and write, ro:* read only, nothing else.
        with s.client() as c:
            expect_reply(c.call("AUTH", "app", "apw"), "OK", "AUTH app")
            expect_reply(c.call("SET", "app:1", "a"), "OK", "SET app:1")
            expect_reply(c.call("GET", "app:1"), b"a", "GET app:1")
            expect_reply(c.call("SET", "k", "x"), NOPERM_KEYS, "SET outside app:*")
            expect_reply(c.call("GET", "k"), NOPERM_KEYS, "GET outside app:*")
            expect_reply(c.call("GET", "ro:1"), None, "GET ro:1 (read allowed)")
            expect_reply(c.call("SET", "ro:1", "x"), NOPERM_KEYS, "SET ro:1 (read only)")
            expect_reply(c.call("MSET", "app:2", "b", "k", "x"), NOPERM_KEYS, "MSET with one key outside")
            expect_reply(c.call("MGET", "app:1", "ro:1"), [b"a", None], "MGET of allowed keys")
            expect_reply(c.call("DEL", "app:1", "k"), NOPERM_KEYS, "DEL with one key outside")
            expect_reply(c.call("FLUSHALL"), noperm("flushall"), "FLUSHALL is @dangerous")
            # In a transaction the refusal discards it at EXEC, as in Redis.
            expect_reply(c.call("MULTI"), "OK", "MULTI")
            expect_reply(c.call("SET", "app:3", "c"), "QUEUED", "queued SET")
            expect_reply(c.call("SET", "k", "c"), NOPERM_KEYS, "queued SET outside")
            expect_reply(c.call("EXEC"),
                         resp.RespError("EXECABORT Transaction discarded because of previous errors."), "EXEC")
            expect_reply(c.call("GET", "app:3"), None, "nothing of the discarded transaction ran")
            # HMDB.REQ: the command it tags is checked.
            expect_reply(c.call("HMDB.REQ", "r1", "SET", "k", "x"), NOPERM_KEYS, "a tagged SET outside")
            expect_reply(c.call("HMDB.REQ", "r2", "SET", "app:4", "x"), "OK", "a tagged SET inside")
        with s.client() as admin:
            expect_reply(admin.call("GET", "k"), b"v", "k unchanged by the refused writes")

        # Channels: news.* only; PSUBSCRIBE only the user's own pattern.
        with s.client() as pub:
            expect_reply(pub.call("AUTH", "news", "npw"), "OK", "AUTH news")
            expect_reply(pub.call("PUBLISH", "other", "m"), NOPERM_CHANNELS, "PUBLISH outside news.*")
            expect_reply(pub.call("PUBLISH", "news.a", "m"), 0, "PUBLISH news.a")
            expect_reply(pub.call("SUBSCRIBE", "other"), NOPERM_CHANNELS, "SUBSCRIBE outside news.*")
            expect_reply(pub.call("PSUBSCRIBE", "news.a*"), NOPERM_CHANNELS, "PSUBSCRIBE of a narrower pattern")
            expect_reply(pub.call("HMDB.SUBSCRIBE", "$", "other"), NOPERM_CHANNELS, "HMDB.SUBSCRIBE outside")
            expect_reply(pub.call("SUBSCRIBE", "news.a"), [b"subscribe", b"news.a", 1], "SUBSCRIBE news.a")
            with s.client() as p2:
                expect_reply(p2.call("AUTH", "news", "npw"), "OK", "AUTH news (2)")
                expect_reply(p2.call("PUBLISH", "news.a", "hello"), 1, "PUBLISH to the subscriber")
            expect_reply(pub.read_reply(), [b"message", b"news.a", b"hello"], "the message")

        # The engine's housekeeping command: refused to everyone, the default user included.
        with s.client() as admin:
            r = admin.call("HMDB.EXPIRE")
            expect(isinstance(r, resp.RespError) and "engine's own command" in r.message,
                   "HMDB.EXPIRE from a client: %r" % (r,))
            # CLUSTER FORWARDER needs @admin (watcher has everything else).
            with s.client() as w:
                expect_reply(w.call("AUTH", "watcher", "wpw"), "OK", "AUTH watcher")
                expect_reply(w.call("CLUSTER", "FORWARDER", "9"), noperm("cluster|forwarder"), "FORWARDER as watcher")
                expect_reply(w.call("SET", "w", "1"), "OK", "watcher writes")
            log = admin.call("ACL", "LOG", "100")
            reasons = [dict(zip(e[::2], e[1::2]))[b"reason"] for e in log]
            for reason in (b"command", b"key", b"channel", b"auth"):
                expect(reason in reasons, "ACL LOG has no %r entry: %r" % (reason, log))

            # A restricted default user: new connections are held to it.
            expect_reply(admin.call("ACL", "SETUSER", "default", "-flushall"), "OK", "restrict default")
            with s.client() as c:
                expect_reply(c.call("FLUSHALL"), noperm("flushall"), "FLUSHALL as the restricted default")
                expect_reply(c.call("SET", "d", "1"), "OK", "SET as the restricted default")
            expect_reply(admin.call("ACL", "SETUSER", "default", "+@all"), "OK", "default restored")
            expect_reply(admin.call("ACL", "LIST")[1], b"user default on nopass ~* &* +@all", "default's rules")

            # DELUSER closes the user's connections.
            victim = s.client()
            expect_reply(victim.call("AUTH", "reader", "rpw"), "OK", "AUTH reader (to be deleted)")
            expect_reply(admin.call("ACL", "DELUSER", "reader"), 1, "DELUSER reader")
            expect(wait_closed(victim), "a deleted user's connection stayed open")
            victim.close()
            expect_reply(admin.call("ACL", "SETUSER", "reader", "on", ">rpw", "~*", "+@read"), "OK", "reader again")

        # Real clients: redis-cli --user/--pass, redis-py username=.
        out = redis_cli(s.port, ["SET", "k", "x"], user="reader", password="rpw")
        if out is not None:
            expect("no permissions to run the 'set' command" in out, "redis-cli as reader, SET: %r" % out)
            expect_reply(redis_cli(s.port, ["GET", "k"], user="reader", password="rpw"), "v", "redis-cli as reader, GET")
        if os.path.exists(DEBIAN_PYTHON):
            p = subprocess.run([DEBIAN_PYTHON, "-c", REDIS_PY_CHECK, harness.HOST, str(s.port)],
                               capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
            if "No module named" not in p.stderr:
                expect(p.returncode == 0, "redis-py: %s%s" % (p.stdout, p.stderr))
                print(p.stdout.strip())
        s.terminate()
    except Exception:
        print(s.log_tail())
        s.kill()
        print("work dir kept: %s" % work)
        raise
    harness.remove_work_dir(work)
    print("single: NOPERM for commands, keys (read and write apart) and channels; redis-cli and redis-py")


def case_cluster(binary):
    work = harness.make_work_dir("hmdb-acl-cluster-")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-acl-test")
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        follower = next(n for n in c.nodes if n is not leader)
        for n in c.nodes:
            expect_reply(n.call("ACL", "SETUSER", "app", "on", ">apw", "~app:*", "+@all", "-@dangerous"), "OK",
                         "SETUSER app on %s" % n)
        # Without an ACL file, a follower refuses ACL LOAD itself (it would log its file).
        r = follower.call("ACL", "LOAD")
        expect(isinstance(r, resp.RespError) and "not configured to use an ACL file" in r.message,
               "ACL LOAD on a follower without a file: %r" % (r,))
        with resp.Client(follower.ip, follower.client_port, timeout=CLIENT_TIMEOUT_S) as f:
            expect_reply(f.call("AUTH", "app", "apw"), "OK", "AUTH app on the follower")
            for i in range(5):
                expect_reply(f.call("SET", "app:k", "v%d" % i), "OK", "a write forwarded for app")
            expect_reply(f.call("SET", "other", "x"), NOPERM_KEYS, "a write outside app:* on the follower")
            expect_reply(f.call("CLUSTER", "FORWARDER", "9"), noperm("cluster|forwarder"), "FORWARDER as app")
            expect_reply(f.call("GET", "app:k"), b"v4", "a read through the follower")
        # The refusal came from the follower: the leader never saw the command.
        with resp.Client(leader.ip, leader.client_port, timeout=CLIENT_TIMEOUT_S) as l:
            log = l.call("ACL", "LOG", "100")
            expect(all(dict(zip(e[::2], e[1::2]))[b"object"] != b"other" for e in log),
                   "the leader logged a refusal of the follower's client: %r" % log)
        with resp.Client(follower.ip, follower.client_port, timeout=CLIENT_TIMEOUT_S) as f:
            log = f.call("ACL", "LOG", "100")
            expect(any(dict(zip(e[::2], e[1::2]))[b"object"] == b"other" for e in log),
                   "the follower did not log its refusal: %r" % log)
        c.wait_converged(CONVERGE_TIMEOUT_S)
        for n in c.nodes:
            expect_reply(n.call("GET", "app:k"), b"v4", "the forwarded write on %s" % n)
            expect_reply(n.call("GET", "other"), None, "the refused write on %s" % n)
    print("cluster: a follower checks its client's own user before forwarding")


# redis-py logged in as alice with the changed password (served) and the old one (refused).
# argv: host port new old.
REDIS_PY_PASSWORD_CHECK = r"""
import sys
import redis
host, port, new, old = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if not redis.Redis(host=host, port=port, username="alice", password=new).ping():
    sys.exit("redis-py as alice with the new password: PING failed")
try:
    redis.Redis(host=host, port=port, username="alice", password=old).ping()
    sys.exit("redis-py as alice with the old password was served")
except redis.exceptions.ResponseError as e:  # redis-py 4.3 raises WRONGPASS as it is
    if "WRONGPASS" not in str(e):
        sys.exit("redis-py with the old password: %r" % str(e))
print("redis-py: the new password logs in, the old one is refused")
"""


def wait_until(what, timeout, fn):
    """harness.wait_for of fn() (returning (done, detail)) at the cluster's poll interval,
    at most timeout seconds; a failure also shows the last detail."""
    last = [None]

    def probe():
        done, last[0] = fn()
        return done

    try:
        harness.wait_for(what, timeout, probe, cl.POLL_INTERVAL_S)
    except harness.TestFailure as e:
        raise harness.TestFailure("%s (last: %s)" % (e, last[0])) from None


def auth_reply(node, user, password):
    with resp.Client(node.ip, node.client_port, timeout=CLIENT_TIMEOUT_S) as c:
        return c.call("AUTH", user, password)


def users_everywhere(nodes, want, timeout=CONVERGE_TIMEOUT_S):
    """Until every node's ACL LIST is the same and its users are `want`. Returns the list."""
    def check():
        lists = {n: n.call("ACL", "LIST") for n in nodes}
        first = lists[nodes[0]]
        users = sorted(line.split()[1].decode() for line in first)
        return all(v == first for v in lists.values()) and users == sorted(want), lists
    wait_until("the users %s on %s" % (want, nodes), timeout, check)
    return nodes[0].call("ACL", "LIST")


def case_replicated(binary):
    work = harness.make_work_dir("hmdb-acl-replicated-")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-acl-replicated")
    # Each node's ACL file has a user of its own: the users of the leader's file become the
    # cluster's at the first ACL change (the seed), the others' are gone.
    for n in c.nodes:
        path = os.path.join(work, "node%d.acl" % n.id)
        with open(path, "w") as f:
            f.write("user default on nopass ~* &* +@all\nuser file%d on nopass ~* &* +@all\n" % n.id)
        n.extra_args = ["--aclfile", path]
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        followers = [n for n in c.nodes if n is not leader]
        for n in c.nodes:
            expect_reply(n.call("ACL", "USERS"), [b"default", ("file%d" % n.id).encode()], "%s before any change" % n)
        # SETUSER on a follower: forwarded, logged, applied everywhere (after the leader's users).
        expect_reply(followers[0].call("ACL", "SETUSER", "alice", "on", ">apw", "~app:*", "+@all", "-@dangerous"),
                     "OK", "SETUSER alice on a follower")
        seeded = "file%d" % leader.id
        users_everywhere(c.nodes, ["default", seeded, "alice"])
        # A rule refused is refused with the same words on a follower and on the leader.
        for n in (followers[1], leader):
            r = n.call("ACL", "SETUSER", "alice", "+nosuchcommand")
            expect(isinstance(r, resp.RespError) and "Unknown command or category name in ACL" in r.message,
                   "a bad rule on %s: %r" % (n, r))
        # SETUSER on the leader.
        expect_reply(leader.call("ACL", "SETUSER", "bob", "on", ">bpw", "~*", "+@all"), "OK", "SETUSER bob")
        lines = users_everywhere(c.nodes, ["default", seeded, "alice", "bob"])
        expect(all(b"apw" not in l and b"bpw" not in l for l in lines), "a password in clear in ACL LIST: %r" % lines)
        for n in c.nodes:
            wait_until("AUTH alice and bob on %s" % n, CONVERGE_TIMEOUT_S,
                       lambda: ((auth_reply(n, "alice", "apw"), auth_reply(n, "bob", "bpw")) == ("OK", "OK"), n))
        # alice writes her keys through every node.
        for n in c.nodes:
            with resp.Client(n.ip, n.client_port, timeout=CLIENT_TIMEOUT_S) as a:
                expect_reply(a.call("AUTH", "alice", "apw"), "OK", "AUTH alice on %s" % n)
                expect_reply(a.call("SET", "app:k", "v%d" % n.id), "OK", "alice's SET through %s" % n)
        # Revocation: -@write, sent to a follower, takes effect on every node (a follower
        # checks before forwarding, so each node refuses on its own).
        sessions = {}
        for n in c.nodes:
            sessions[n] = resp.Client(n.ip, n.client_port, timeout=CLIENT_TIMEOUT_S)
            expect_reply(sessions[n].call("AUTH", "alice", "apw"), "OK", "AUTH alice on %s" % n)
        expect_reply(followers[1].call("ACL", "SETUSER", "alice", "-@write"), "OK", "revoke @write")
        for n in c.nodes:  # (waiting on ACL GETUSER: a SET tried before the node applied it would write)
            wait_until("alice's -@write on %s" % n, CONVERGE_TIMEOUT_S,
                       lambda: (b"-@write" in n.call("ACL", "GETUSER", "alice")[5], n))
        for n in c.nodes:
            expect_reply(sessions[n].call("SET", "app:k", "late"), noperm("set"), "alice's SET on %s" % n)
            expect_reply(sessions[n].call("GET", "app:k"), b"v%d" % c.nodes[-1].id, "alice's GET on %s" % n)
            sessions[n].close()
        # DELUSER on a follower: bob's connections close and he can no longer log in anywhere.
        bobs = {}
        for n in c.nodes:
            bobs[n] = resp.Client(n.ip, n.client_port, timeout=CLIENT_TIMEOUT_S)
            expect_reply(bobs[n].call("AUTH", "bob", "bpw"), "OK", "AUTH bob on %s" % n)
        expect_reply(followers[0].call("ACL", "DELUSER", "bob"), 1, "DELUSER bob")
        users_everywhere(c.nodes, ["default", seeded, "alice"])
        for n in c.nodes:
            expect_reply(auth_reply(n, "bob", "bpw"), resp.RespError(
                "WRONGPASS invalid username-password pair or user is disabled."), "AUTH bob on %s after DELUSER" % n)
            try:
                bobs[n].call("PING")
            except (resp.ConnectionLost, resp.ProtocolError):
                pass
            expect(wait_closed(bobs[n]), "bob's connection to %s stayed open after DELUSER" % n)
        # A changed password: the new one works and the old one fails everywhere, and still
        # after the leader is killed and another elected.
        expect_reply(leader.call("ACL", "SETUSER", "alice", "resetpass", ">apw2"), "OK", "a new password")
        for n in c.nodes:
            wait_until("alice's new password on %s" % n, CONVERGE_TIMEOUT_S,
                       lambda: (auth_reply(n, "alice", "apw2") == "OK", n))
        before = users_everywhere(c.nodes, ["default", seeded, "alice"])
        leader.kill()
        alive = [n for n in c.nodes if n is not leader]
        new_leader = c.wait_leader(LEADER_TIMEOUT_S, nodes=alive)
        expect(users_everywhere(alive, ["default", seeded, "alice"]) == before, "the users changed with the leader")
        for n in alive:
            expect_reply(auth_reply(n, "alice", "apw2"), "OK", "the new password on %s after failover" % n)
            expect_reply(auth_reply(n, "alice", "apw"), resp.RespError(
                "WRONGPASS invalid username-password pair or user is disabled."), "the old password on %s" % n)
        p = subprocess.run([DEBIAN_PYTHON, "-c", REDIS_PY_PASSWORD_CHECK, new_leader.ip, str(new_leader.client_port),
                            "apw2", "apw"], capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
        expect(p.returncode == 0, "redis-py against the new leader: %s%s" % (p.stdout, p.stderr))
        # The new leader logs changes too; the killed node, restarted, applies what it missed.
        expect_reply(new_leader.call("ACL", "SETUSER", "carol", "on", ">cpw", "+get", "~*"), "OK", "SETUSER carol")
        leader.start()
        everyone = ["default", seeded, "alice", "carol"]
        lines = users_everywhere(c.nodes, everyone)
        # ACL LOAD on a follower logs that follower's file for every node; a bad file is
        # refused there, naming it, and changes nothing.
        f = next(n for n in c.nodes if n is not c.wait_leader(LEADER_TIMEOUT_S))
        f_file = os.path.join(work, "node%d.acl" % f.id)
        with open(f_file, "w") as out:
            out.write("".join(l.decode() + "\n" for l in lines) + "user dave on >dpw ~* +get\n")
        expect_reply(f.call("ACL", "LOAD"), "OK", "ACL LOAD on follower %s" % f)
        everyone.append("dave")
        lines = users_everywhere(c.nodes, everyone)
        with open(f_file, "w") as out:
            out.write("user default on nopass +@all\nuser bad on +@nosuch\n")
        r = f.call("ACL", "LOAD")
        expect(isinstance(r, resp.RespError) and f_file + ": line 2" in r.message,
               "ACL LOAD of a bad file on %s: %r" % (f, r))
        expect_reply(users_everywhere(c.nodes, everyone), lines, "the users after a refused ACL LOAD")
        # A node restarted from its own snapshot, taken after every change, holds the users
        # although its ACL file now says otherwise (the log after the snapshot has no ACL item).
        c.wait_converged(CONVERGE_TIMEOUT_S)
        target = next(n for n in c.nodes if n is not c.leader())
        r = target.call("SNAPSHOT", timeout=CLIENT_TIMEOUT_S)
        expect(isinstance(r, str) and r.startswith("OK snapshot at index"), "SNAPSHOT answered %r" % (r,))
        snapshot_index = int(r.split()[-1])
        expected = users_everywhere(c.nodes, everyone)
        target.kill()
        with open(os.path.join(work, "node%d.acl" % target.id), "w") as f:
            f.write("user default on nopass ~* &* +@all\nuser stray on nopass ~* &* +@all\n")
        target.start()
        expect("recovery: loading snapshot" in target.log() and ("index %d" % snapshot_index) in target.log(),
               "%s did not restart from its snapshot at %d:\n%s" % (target, snapshot_index, target.log_tail()))
        expect_reply(target.call("ACL", "LIST"), expected, "the users of %s restarted from its snapshot" % target)
        expect_reply(auth_reply(target, "carol", "cpw"), "OK", "carol on %s after its restart" % target)
        # ACL SAVE writes the replicated users to the node's own file.
        expect_reply(target.call("ACL", "SAVE"), "OK", "ACL SAVE on %s" % target)
        with open(os.path.join(work, "node%d.acl" % target.id)) as f:
            saved = f.read()
        expect("stray" not in saved and "user carol on #" in saved, "ACL SAVE wrote:\n" + saved)
        c.check_alive()
    print("replicated: SETUSER/DELUSER on any node reach every node, through a failover and a snapshot restart")


def case_link(binary):
    work = harness.make_work_dir("hmdb-acl-link-")
    config = os.path.join(work, "hmdb.conf")  # (not the command line, which the logs show)
    with open(config, "w") as f:
        f.write('requirepass "pw"\ncluster-secret "node-secret"\n')
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-acl-link", server_args=["--config", config])
    c.password = "pw"  # the admin connections AUTH with it
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        follower = next(n for n in c.nodes if n is not leader)
        # default may no longer declare a forwarding link: the links log in as hmdb-forwarder
        # with the cluster secret, so forwarding goes on.
        expect_reply(leader.call("ACL", "SETUSER", "default", "-cluster|forwarder"), "OK", "restrict default")
        users_everywhere(c.nodes, ["default"])
        with resp.Client(follower.ip, follower.client_port, timeout=CLIENT_TIMEOUT_S) as f:
            expect_reply(f.call("AUTH", "pw"), "OK", "AUTH default on the follower")
            expect_reply(f.call("CLUSTER", "FORWARDER", "9"), noperm("cluster|forwarder"), "FORWARDER as default")
            for i in range(3):
                expect_reply(f.call("SET", "k", "v%d" % i), "OK", "a write forwarded by the follower")
        c.wait_converged(CONVERGE_TIMEOUT_S)
        links = [line for line in leader.call("CLIENT", "LIST").decode().splitlines() if "hmdb-forwarder-" in line]
        expect(links and all(" user=hmdb-forwarder " in line for line in links),
               "the leader's forwarding links: %r" % links)
        # No client logs in as the link user without the secret, nor may anyone create it.
        wrongpass = resp.RespError("WRONGPASS invalid username-password pair or user is disabled.")
        expect_reply(auth_reply(leader, "hmdb-forwarder", "pw"), wrongpass, "AUTH hmdb-forwarder with requirepass")
        r = leader.call("ACL", "SETUSER", "hmdb-forwarder", "on", "nopass", "+@all")
        expect(isinstance(r, resp.RespError) and "reserved" in r.message, "SETUSER hmdb-forwarder: %r" % (r,))
        with resp.Client(leader.ip, leader.client_port, timeout=CLIENT_TIMEOUT_S) as l:
            expect_reply(l.call("AUTH", "hmdb-forwarder", "node-secret"), "OK", "AUTH with the secret")
            expect_reply(l.call("SET", "k", "x"), noperm("set"), "the link user's own commands")
        for n in c.nodes:
            expect_reply(n.call("GET", "k"), b"v2", "the forwarded writes on %s" % n)
        for n in c.nodes:
            expect("node-secret" not in n.log(), "the secret in %s's log" % n)
        c.check_alive()
    print("link: forwarding links log in as hmdb-forwarder with the cluster secret; default restricted")


def case_refused(binary):
    work = harness.make_work_dir("hmdb-acl-refused-")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-acl-refused", server_args=["--requirepass", "pw"])
    c.password = "pw"
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        follower = next(n for n in c.nodes if n is not leader)
        expect_reply(leader.call("ACL", "SETUSER", "default", "-cluster|forwarder"), "OK", "restrict default")
        c.wait_converged(CONVERGE_TIMEOUT_S)
        told = ("ERR this node cannot forward to the leader (node %d): it refused this node's link: "
                "NOPERM this user has no permissions to run the 'cluster|forwarder' command" % leader.id)
        with resp.Client(follower.ip, follower.client_port, timeout=CLIENT_TIMEOUT_S) as f:
            expect_reply(f.call("AUTH", "pw"), "OK", "AUTH on the follower")
            for i in range(3):  # the first dials the link; the next come during the redial pause or dial again
                expect_reply(f.call("SET", "k%d" % i, "v"), resp.RespError(told), "a write through a refused link")
        # Real clients are told the same while the leader refuses the link: redis-cli prints
        # the error, redis-py raises ResponseError with the text after "ERR ".
        cli = shutil.which("redis-cli")
        if cli:
            out = subprocess.run([cli, "-h", follower.ip, "-p", str(follower.client_port), "-a", "pw", "--no-auth-warning",
                                  "SET", "kcli", "v"], capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
            expect(told in out.stdout, "redis-cli through a refused link: %r" % (out.stdout + out.stderr))
        if os.path.exists(DEBIAN_PYTHON):
            p = subprocess.run([DEBIAN_PYTHON, "-c", REDIS_PY_REFUSED_LINK, follower.ip, str(follower.client_port), told[4:]],
                               capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
            if "No module named" not in p.stderr:
                expect(p.returncode == 0, "redis-py through a refused link: %s%s" % (p.stdout, p.stderr))
        expect_reply(leader.call("DBSIZE"), 0, "nothing ran on the leader")
        c.wait_converged(CONVERGE_TIMEOUT_S)  # (a follower's own DBSIZE would be forwarded too)
        log = follower.log()
        expect(log.count("refused this node's forwarding link's handshake: -NOPERM") == 1,
               "the refusal is logged once:\n" + follower.log_tail())
        refused = int(follower.info().get("forward_handshakes_refused", "0"))
        expect(refused >= 1, "forward_handshakes_refused on the follower: %d" % refused)
        expect_reply(leader.call("ACL", "SETUSER", "default", "+cluster|forwarder"), "OK", "allow default again")
        c.wait_converged(CONVERGE_TIMEOUT_S)
        with resp.Client(follower.ip, follower.client_port, timeout=CLIENT_TIMEOUT_S) as f:
            expect_reply(f.call("AUTH", "pw"), "OK", "AUTH on the follower")
            deadline = time.monotonic() + CONVERGE_TIMEOUT_S
            while True:  # a write answered with the remembered refusal until the redial pause ends
                r = f.call("SET", "k", "after")
                if r == "OK" or time.monotonic() > deadline:
                    break
                expect_reply(r, resp.RespError(told), "a write before the next link")
            expect_reply(r, "OK", "a write once the leader accepts the link")
        c.wait_converged(CONVERGE_TIMEOUT_S)
        for n in c.nodes:
            expect_reply(n.call("GET", "k"), b"after", "the write on %s" % n)
        # The replicated users are compared at verify's mark, beside the app's state.
        code, out = cl.cluster_cli(binary, "--addr", leader.client_addr, "--password", "pw", "verify")
        expect(code == 0 and "ACL users too" in out, "verify with replicated users (exit %d):\n%s" % (code, out))
        c.check_alive()
    print("refused: a refused forwarding link runs nothing, its clients are told why, and the next link is accepted; "
          "verify compares the replicated users")


def case_file(binary):
    work = harness.make_work_dir("hmdb-acl-file-")
    path = os.path.join(work, "users.acl")
    with open(path, "w") as f:
        f.write("user default on nopass ~* &* +@all -flushall\n"
                "user ops on >ops-pw ~* &* +@all\n")
    s = harness.Server(binary, os.path.join(work, "data"), work, durability="none",
                       extra_args=["--aclfile", path])
    try:
        s.start()
        with s.client() as c:
            expect_reply(c.call("FLUSHALL"), noperm("flushall"), "FLUSHALL as the file's default")
            expect_reply(c.call("AUTH", "ops", "ops-pw"), "OK", "AUTH as the file's user")
            expect_reply(c.call("FLUSHALL"), "OK", "FLUSHALL as ops")
            expect_reply(c.call("ACL", "SETUSER", "reader", "on", ">rpw", "~*", "+@read"), "OK", "SETUSER reader")
            expect_reply(c.call("ACL", "SAVE"), "OK", "ACL SAVE")
        with open(path) as f:
            saved = f.read()
        expect("user reader on #" in saved and "+@read" in saved, "ACL SAVE wrote:\n" + saved)
        s.terminate()
        s.start()
        with s.client() as c:
            expect_reply(c.call("AUTH", "reader", "rpw"), "OK", "a saved user after a restart")
            expect_reply(c.call("SET", "k", "v"), noperm("set"), "its rules after a restart")
        with open(path, "a") as f:
            f.write("user extra on nopass +@all\n")
        with s.client() as c:
            expect_reply(c.call("AUTH", "ops", "ops-pw"), "OK", "AUTH ops")
            expect_reply(c.call("ACL", "LOAD"), "OK", "ACL LOAD")
            expect_reply(c.call("ACL", "USERS"), [b"default", b"extra", b"ops", b"reader"], "users after LOAD")
            with open(path, "w") as f:
                f.write("user default on nopass +@all\nuser bad on +@nosuch\n")
            r = c.call("ACL", "LOAD")
            expect(isinstance(r, resp.RespError) and "line 2" in r.message and "+@nosuch" in r.message,
                   "ACL LOAD of a bad file: %r" % (r,))
            expect_reply(c.call("ACL", "USERS"), [b"default", b"extra", b"ops", b"reader"], "a bad LOAD changed nothing")
        s.terminate()
        p = subprocess.run([binary, "serve", "--port", str(harness.free_port()), "--dir", os.path.join(work, "d2"),
                            "--durability", "none", "--aclfile", path], capture_output=True, text=True,
                           timeout=CLIENT_TIMEOUT_S)
        expect(p.returncode == 1 and path + ": line 2" in p.stderr + p.stdout,
               "a bad ACL file at start: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
    except Exception:
        print(s.log_tail())
        s.kill()
        print("work dir kept: %s" % work)
        raise
    harness.remove_work_dir(work)
    # Without --aclfile, LOAD and SAVE are refused in Redis' words.
    work = harness.make_work_dir("hmdb-acl-nofile-")
    s = harness.Server(binary, os.path.join(work, "data"), work, durability="none")
    try:
        s.start()
        with s.client() as c:
            for sub in ("LOAD", "SAVE"):
                r = c.call("ACL", sub)
                expect(isinstance(r, resp.RespError) and "not configured to use an ACL file" in r.message,
                       "ACL %s without a file: %r" % (sub, r))
        s.terminate()
    except Exception:
        s.kill()
        raise
    harness.remove_work_dir(work)
    print("file: users from --aclfile, ACL SAVE and LOAD, a bad file refused whole")


CASES = {"single": case_single, "cluster": case_cluster, "replicated": case_replicated, "link": case_link,
         "refused": case_refused,
         "file": case_file}


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
