#!/usr/bin/env python3
"""Authentication, protected mode and the config file (issue 15, first slice;
docs/security.md) with real hmdb processes and real clients.

  config     hmdb serve --config: each refused file exits 1 with FILE:LINE and the reason
             (unknown key, bad value, a flag's value not yes/no, a repeated key, unbalanced
             quotes, a missing file); a good file is applied, the command line overriding it
             (the port); `requirepass` from the file is in force; the password appears in no
             log line, INFO, CONFIG GET * or CLIENT LIST.
  protected  --bind 0.0.0.0 without a password: refused at start (exit 1) with a message
             naming --requirepass and --protected-mode no; nothing is bound.
  auth       one node with --requirepass: no password -> NOAUTH for commands, AUTH with a
             wrong password -> WRONGPASS, AUTH then commands work, HELLO 3 AUTH in RESP3;
             redis-cli -a and REDISCLI_AUTH; redis-py (if installed) with and without the
             password; 300 wrong AUTHs counted in INFO acl_access_denied_auth but logged in
             at most 2 lines (rate limit).
  cluster    three nodes with requirepass from a config file: a client of a follower AUTHs
             and writes (forwarded to the leader, whose forwarding link AUTHs itself), the
             value reads back on every node; a client that has not authenticated cannot
             claim to be a forwarding link (CLUSTER FORWARDER -> NOAUTH); `hmdb cluster status`
             is refused without the password and works with HMDB_PASSWORD (a wrong --password:
             WRONGPASS).

Every wait is a bounded poll of a real condition. Usage: auth_test.py [--case NAME] HMDB_BINARY
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import cluster as cl
import harness
import resp


# Debian's interpreter, for which python3-redis is installed.
DEBIAN_PYTHON = harness.DEBIAN_PYTHON
# Bound on one run of a client library's check.
CLIENT_TIMEOUT_S = 60
# What redis-py must see: refused without the password (NOAUTH raised as an
# AuthenticationError), served with it. argv: host port password.
REDIS_PY_CHECK = r"""
import sys
import redis
host, port, password = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    redis.Redis(host=host, port=port).get("k")
    sys.exit("redis-py without a password was served")
except redis.exceptions.AuthenticationError:
    pass
r = redis.Redis(host=host, port=port, password=password)
if not (r.set("p", "1") and r.get("p") == b"1"):
    sys.exit("redis-py with a password: SET then GET did not read back")
print("redis-py %s: refused without the password, served with it" % redis.__version__)
"""
PASSWORD = "s3cret#pw with space"
LEADER_TIMEOUT_S = 30.0
CONVERGE_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0
CLI_TIMEOUT_S = 30.0
BRUTE_FORCE_ATTEMPTS = 300
NOAUTH = resp.RespError("NOAUTH Authentication required.")
WRONGPASS = resp.RespError("WRONGPASS invalid username-password pair or user is disabled.")


def expect(cond, message):
    if not cond:
        raise harness.TestFailure(message)


def write_config(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def run_refused(binary, args):
    """Runs hmdb serve with args; it must exit 1 at once. Returns its stderr."""
    p = subprocess.run([binary, "serve"] + args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=EXIT_TIMEOUT_S)
    expect(p.returncode == 1, "hmdb serve %s exited %d, not 1:\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    return p.stderr


def quoted(password):
    return '"%s"' % password.replace("\\", "\\\\").replace('"', '\\"')


def check_no_secret(server, client):
    """The password is in no log line, INFO, CONFIG GET * or CLIENT LIST."""
    for what, text in (("the log", server.log()),
                       ("INFO", client.call("INFO", "everything")),
                       ("CONFIG GET *", repr(client.call("CONFIG", "GET", "*"))),
                       ("CLIENT LIST", client.call("CLIENT", "LIST"))):
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        expect(PASSWORD not in text and "s3cret" not in text, "%s shows the password" % what)
    expect(client.call("CONFIG", "GET", "requirepass") == {} or client.call("CONFIG", "GET", "requirepass") == [],
           "CONFIG GET requirepass answered %r" % (client.call("CONFIG", "GET", "requirepass"),))


def case_config(binary):
    work = harness.make_work_dir("hmdb-auth-config-")
    try:
        bad = {
            "port 7000\nnot-a-flag 1\n": r":2: unknown key 'not-a-flag'",
            "\n# c\nport seven\n": r":3: port: ",
            "durability sometimes\n": r":1: durability: ",
            "join maybe\n": r":1: join: the value is yes or no",
            "port 1\nport 2\n": r":2: 'port' is already set at line 1",
            'requirepass "open\n': r":1: 'requirepass': unbalanced quotes",
            "requirepass\n": r":1: 'requirepass' has no value",
            "config other.conf\n": r":1: unknown key 'config'",
            "protected-mode perhaps\n": r":1: protected-mode: ",
        }
        for i, (text, pattern) in enumerate(bad.items()):
            path = write_config(os.path.join(work, "bad%d.conf" % i), text)
            err = run_refused(binary, ["--config", path, "--dir", os.path.join(work, "d")])
            expect(re.search(re.escape(path) + pattern, err), "config %r: stderr does not match %r:\n%s"
                   % (text, pattern, err))
        err = run_refused(binary, ["--config", os.path.join(work, "missing.conf")])
        expect("cannot read the config file" in err, "a missing config file: %s" % err)

        # A good file: the command line's --port wins over the file's; requirepass applies.
        file_port = harness.free_port()
        path = write_config(os.path.join(work, "good.conf"),
                            "# hmdb.conf\nport %d\n  durability none\nrequirepass %s\njoin no\n"
                            % (file_port, quoted(PASSWORD)))
        s = harness.Server(binary, os.path.join(work, "data"), work, durability="none",
                           extra_args=["--config", path], name="config")
        s.start()
        expect(s.port != file_port, "the harness picked the file's port")
        with s.client() as c:
            expect(c.call("GET", "k") == NOAUTH, "requirepass from the file is not in force")
            expect(c.call("AUTH", PASSWORD) == "OK", "AUTH with the file's password failed")
            expect(c.call("SET", "k", "v") == "OK", "SET after AUTH failed")
            expect(c.call("CONFIG", "GET", "port") == {b"port": str(s.port).encode()}
                   or c.call("CONFIG", "GET", "port") == [b"port", str(s.port).encode()],
                   "the command line's --port did not override the file's")
            check_no_secret(s, c)
        expect(s.terminate() == 0, "the server did not stop cleanly")
    finally:
        harness.remove_work_dir(work)
    print("config: %d refused files named their line; the command line overrode the file" % len(bad))


def case_protected(binary):
    work = harness.make_work_dir("hmdb-auth-protected-")
    try:
        err = run_refused(binary, ["--bind", "0.0.0.0", "--port", str(harness.free_port()), "--dir",
                                   os.path.join(work, "d"), "--durability", "none"])
        expect("protected mode" in err and "--requirepass" in err and "--protected-mode no" in err,
               "the refusal does not say how to configure it:\n%s" % err)
        expect(not os.path.exists(os.path.join(work, "d")), "a refused start created its data directory")
    finally:
        harness.remove_work_dir(work)
    print("protected: --bind 0.0.0.0 without a password refused")


def redis_cli(port, args, env_password=None, password=None):
    cli = shutil.which("redis-cli")
    if not cli:
        return None
    cmd = [cli, "-h", harness.HOST, "-p", str(port)] + (["-a", password, "--no-auth-warning"] if password else []) + args
    env = dict(os.environ)
    env.pop("REDISCLI_AUTH", None)
    if env_password:
        env["REDISCLI_AUTH"] = env_password
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env).stdout.strip()


def case_auth(binary):
    work = harness.make_work_dir("hmdb-auth-")
    s = harness.Server(binary, os.path.join(work, "data"), work, durability="none",
                       extra_args=["--requirepass", PASSWORD], name="auth")
    try:
        s.start()
        with s.client() as c:
            expect(c.call("SET", "k", "v") == NOAUTH, "SET without a password was not refused")
            expect(c.call("CLUSTER", "FORWARDER", "2") == NOAUTH, "CLUSTER FORWARDER was not refused")
            expect(c.call("SUBSCRIBE", "ch") == NOAUTH, "SUBSCRIBE was not refused")
            expect(c.call("AUTH", "wrong") == WRONGPASS, "a wrong password was not refused")
            expect(c.call("AUTH", "default", PASSWORD) == "OK", "AUTH default <password> failed")
            expect(c.call("SET", "k", "v") == "OK", "SET after AUTH failed")
            expect(c.call("ACL", "WHOAMI") == b"default", "ACL WHOAMI")
        # HELLO 3 AUTH: read as bytes (tests/system/resp.py reads RESP2 only).
        with socket.create_connection((harness.HOST, s.port), timeout=CLI_TIMEOUT_S) as raw:
            raw.sendall(resp.encode_command(("HELLO", "3", "AUTH", "default", PASSWORD)) +
                        resp.encode_command(("GET", "k")))
            data = b""
            while not data.endswith(b"$1\r\nv\r\n") and len(data) < 4096:
                chunk = raw.recv(4096)
                expect(chunk, "the server closed the connection after HELLO 3 AUTH: %r" % data)
                data += chunk
            expect(data.startswith(b"%7\r\n") and b"$5\r\nproto\r\n:3\r\n" in data,
                   "HELLO 3 AUTH answered %r" % data)
        # redis-cli, as users run it.
        if shutil.which("redis-cli"):
            expect(redis_cli(s.port, ["GET", "k"]).startswith("NOAUTH"), "redis-cli without a password")
            expect(redis_cli(s.port, ["GET", "k"], password=PASSWORD) == "v", "redis-cli -a")
            expect(redis_cli(s.port, ["GET", "k"], env_password=PASSWORD) == "v", "redis-cli with REDISCLI_AUTH")
        else:
            print("auth: redis-cli not installed: its checks skipped")
        # redis-py as Debian installs it (python3-redis, for Debian's interpreter: the
        # interpreter running this test may be another one, without it).
        if subprocess.run([DEBIAN_PYTHON, "-c", "import redis"], capture_output=True,
                          timeout=CLIENT_TIMEOUT_S).returncode != 0:
            print("auth: redis-py not installed for %s: its checks skipped" % DEBIAN_PYTHON)
        else:
            out = subprocess.run([DEBIAN_PYTHON, "-c", REDIS_PY_CHECK, harness.HOST, str(s.port), PASSWORD],
                                 capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S)
            expect(out.returncode == 0, "redis-py: %s%s" % (out.stdout, out.stderr))
            print("auth: " + out.stdout.strip())
        # Brute force: every attempt counted, the log bounded.
        with s.client() as c:
            before = int(re.search(rb"acl_access_denied_auth:(\d+)", c.call("AUTH", PASSWORD) and
                                   c.call("INFO", "stats")).group(1))
            replies = c.pipeline([("AUTH", "guess%d" % i) for i in range(BRUTE_FORCE_ATTEMPTS)])
            expect(all(r == WRONGPASS for r in replies), "a guessed password was not refused")
            after = int(re.search(rb"acl_access_denied_auth:(\d+)", c.call("INFO", "stats")).group(1))
            expect(after - before == BRUTE_FORCE_ATTEMPTS, "counted %d of %d refused attempts"
                   % (after - before, BRUTE_FORCE_ATTEMPTS))
            lines = [l for l in s.log().splitlines() if "authentication refused" in l]
            # The attempts take far less than kAuthFailureLogIntervalMs (10 s): one line for
            # the first failure of the run, at most one more if the period ended meanwhile.
            expect(1 <= len(lines) <= 2, "%d log lines for %d failures" % (len(lines), after))
            check_no_secret(s, c)
        expect(s.terminate() == 0, "the server did not stop cleanly")
    except Exception:
        print(s.log_tail())
        raise
    finally:
        s.kill()
        harness.remove_work_dir(work)
    print("auth: NOAUTH, WRONGPASS, AUTH, HELLO 3 AUTH, redis-cli; %d guesses counted, logged in %d line(s)"
          % (BRUTE_FORCE_ATTEMPTS, len(lines)))


def case_cluster(binary):
    work = harness.make_work_dir("hmdb-auth-cluster-")
    c = cl.Cluster(binary, work, nodes=3, cluster_id="hmdb-auth-test", password=PASSWORD)
    with cl.cluster_case(c, work):
        c.start()
        leader = c.wait_leader(LEADER_TIMEOUT_S)
        follower = next(n for n in c.nodes if n is not leader)
        with resp.Client(follower.ip, follower.client_port, timeout=CLI_TIMEOUT_S) as f:
            expect(f.call("SET", "k", "before") == NOAUTH, "a follower served a client without a password")
            expect(f.call("AUTH", PASSWORD) == "OK", "AUTH on a follower")
            # Forwarded to the leader over the follower's link, which authenticated itself.
            for i in range(10):
                r = f.call("SET", "k", "v%d" % i)
                expect(r == "OK", "a write through the follower answered %r" % (r,))
            expect(f.call("GET", "k") == b"v9", "a read through the follower")
        with resp.Client(leader.ip, leader.client_port, timeout=CLI_TIMEOUT_S) as l:
            expect(l.call("CLUSTER", "FORWARDER", "9") == NOAUTH, "an unauthenticated client claimed to be a link")
            expect(l.call("AUTH", PASSWORD) == "OK", "AUTH on the leader")
            listed = l.call("CLIENT", "LIST").decode()
            expect("hmdb-forwarder-%d" % follower.id in listed, "the leader lists no forwarding link:\n" + listed)
            expect(PASSWORD not in listed, "CLIENT LIST shows the password")
        # hmdb cluster: refused without the password, works with HMDB_PASSWORD or --password.
        env = {k: v for k, v in os.environ.items() if k != "HMDB_PASSWORD"}
        status = [binary, "cluster", "--addr", follower.client_addr, "status"]
        p = subprocess.run(status, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env)
        expect(p.returncode != 0 and "NOAUTH" in p.stdout + p.stderr,
               "hmdb cluster status without a password: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
        p = subprocess.run(status, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                           env=dict(env, HMDB_PASSWORD=PASSWORD))
        expect(p.returncode == 0, "hmdb cluster status with HMDB_PASSWORD: exit %d\n%s%s"
               % (p.returncode, p.stdout, p.stderr))
        p = subprocess.run([binary, "cluster", "--password", "wrong", "--addr", follower.client_addr, "status"],
                           capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env)
        expect(p.returncode != 0 and "WRONGPASS" in p.stdout + p.stderr,
               "hmdb cluster --password wrong: exit %d\n%s%s" % (p.returncode, p.stdout, p.stderr))
        c.wait_converged(CONVERGE_TIMEOUT_S)
        for n in c.nodes:
            expect(n.call("GET", "k") == b"v9", "%s has another value" % n)
            expect(PASSWORD not in n.log(), "%s logged the password" % n)
    print("cluster: a follower's client wrote through the authenticated forwarding link")


CASES = {"config": case_config, "protected": case_protected, "auth": case_auth, "cluster": case_cluster}


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
