#!/usr/bin/env python3
# tests/apps/redis_diff_test.py — randomized differential test of the kv app against a real
# redis-server: per data type a seeded generator writes random command sequences over a
# small key, member and number space (so collisions, wrong types, empty keys, negative
# indexes, infinities, overflow and bad arguments happen), the same sequence goes to both
# servers, and every reply must be byte-identical, error texts included, in RESP2 and in RESP3
# (redis_compat_test.py compares fixed scripts; this finds the cases nobody wrote down).
#
#   redis_diff_test.py <hmdb binary> [--types strings,hashes,...] [--seed S] [--sequences N]
#                                    [--length L]
#
# Environment (for a long run, or to replay): HMDB_DIFF_SEED (base seed, default fixed),
# HMDB_DIFF_SEQUENCES (sequences per type), HMDB_DIFF_LENGTH (commands per sequence).
# Sequence i of a run has seed S + i and is replayed alone by --seed S+i --sequences 1; its
# protocol is RESP2 for an even seed and RESP3 (HELLO 3 first) for an odd one, so every type
# runs in both. Each sequence starts from FLUSHALL on both servers.
#
# Where Redis' reply is not defined the comparison is weaker, and each generator says so at
# the command (mode):
#   bytes      byte for byte (the default)
#   unordered  an aggregate in no specified order (SMEMBERS, SINTER, HKEYS, HVALS): compared as
#              a multiset (redis_compat_test.unordered)
#   pairs      the same for [field, value, ...] replies (HGETALL in RESP2, a map in RESP3):
#              a multiset of pairs
#   ttl        TTL/PTTL/EXPIRETIME: both servers' clocks run between the two sends, so a
#              positive value may differ by TTL_SLACK; -1 and -2 exactly
#   rand       SRANDMEMBER, HRANDFIELD, ZRANDMEMBER: both replies of the same type and size,
#              distinct elements for a positive count, every hmdb element (and its value or
#              score) present in Redis' container
#   lex        a range by member (BYLEX, ZLEXCOUNT, ZREMRANGEBYLEX): Redis defines it only when
#              all scores are equal, so it is not sent (the history says so) when Redis' key
#              holds a sorted set of mixed scores; else byte for byte
#   zstore     ZUNIONSTORE/ZINTERSTORE/ZDIFFSTORE: byte for byte, except that kv checks the
#              options before the keys' types (docs/kv-commands.md, Sorted sets: a write's words
#              are checked before it is logged), so kv's option error may stand where Redis
#              answers WRONGTYPE
#   scan       SCAN, HSCAN, SSCAN, ZSCAN from cursor 0: the cursors are kv's own (docs/kv-commands.md
#              "Differences from Redis"), so each server's iteration is run to its end and the
#              sets of elements (pairs for HSCAN, ZSCAN) compared; errors byte for byte
#   spop       SPOP: the same checks; then Redis is made to have popped hmdb's members (SADD
#              back its own, SREM hmdb's) so the states stay equal, and SMEMBERS compared
# Every STATE_CHECK_EVERY commands and at the end, every key of the space is compared whole
# (TYPE, TTL, content), so a write whose reply was right but whose state was not is caught.
# Deliberate differences (docs/kv-commands.md "Differences from Redis") are kept out of the
# generators or the comparison, each with a comment saying which: scores printed alike by
# both (Redis 7.0's %.17g), a score of -0 read as 0, no DBSIZE after a past EXAT, RANK
# -2^63, and the zstore and lex modes above.
#
# Exits 77 (ctest: skipped) when redis-server is not installed.
import argparse
import os
import random
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree by the import below
from redis_compat_test import Servers, connect, encode, read_reply, unordered  # noqa: E402

# The CI size: sequences per type and commands per sequence (a few seconds per type).
DEFAULT_SEQUENCES = 60
DEFAULT_LENGTH = 120
DEFAULT_SEED = 20261206
# Chances (per command) of a word dropped (arity errors) or a stray word added (syntax errors).
P_DROP_WORD = 0.02
P_EXTRA_WORD = 0.02
# Chance (per command) of a bulk write (40-140 members added or removed) in hashes, sets,
# lists and sorted sets, so that containers cross the compact sizes both ways.
P_BULK = 0.02
# Chance (per command) that a transaction starts (MULTI, 1-4 commands, EXEC).
P_MULTI = 0.02
# Slack of the ttl mode: the two servers set a deadline and read their clocks a few ms apart,
# more on a loaded machine; generous, since what is checked is the deadline's presence and
# rough value (the expiries are 1000 s and more), not the scheduler.
TTL_SLACK = {"TTL": 2, "PTTL": 1500, "EXPIRETIME": 2, "PEXPIRETIME": 1500}
# Every this many commands (and at a sequence's end) each key of the type's space is compared
# whole: TYPE, TTL, and its content (GET, LRANGE, SMEMBERS, HGETALL, ZRANGE WITHSCORES), so a
# state that drifted where no reply showed it (COPY without the deadline) is caught too.
STATE_CHECK_EVERY = 10
# How many preceding commands a failure report shows.
REPORT_HISTORY = 400


class Gen:
    """Random words over small spaces; every choice comes from rng (seeded)."""

    INTS = ["0", "1", "-1", "2", "-2", "3", "-3", "5", "10", "-10", "100", "9223372036854775807",
            "-9223372036854775808", "9223372036854775808", "-9223372036854775809", "abc", "", "1.5", "+1", "01",
            " 1", "0x10", "4611686018427387904"]
    # Scores that Redis 7.0's %.17g and kv's shortest form print alike (docs/kv-commands.md
    # "Differences from Redis": 7.0 prints 0.1 as 0.10000000000000001), so only values with
    # short binary fractions, and the words that are not scores at all.
    SCORES = ["0", "1", "-1", "2", "3", "-3", "1.5", "-2.5", "0.5", "1e3", "inf", "-inf", "+inf", "1e400",
              "nan", "abc", "", "+2", "0.25", "7", "0x10", "infinity", "-Infinity", "1e-400", " 1", "1 ", "-0"]
    FLOATS = ["0", "1", "-1", "1.5", "0.1", "-0.1", "2.5e1", "1e3", "inf", "-inf", "nan", "abc", "", "3",
              "-7", "10.5", "5.0e3", "1e308", "0x10", " 1"]

    def __init__(self, seed, prefix):
        self.rng = random.Random(seed)
        self.prefix = prefix

    def chance(self, p):
        return self.rng.random() < p

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def key(self):
        return self.prefix + str(self.rng.randrange(3))

    def keys(self, lo=1, hi=3):
        return [self.key() for _ in range(self.rng.randint(lo, hi))]

    MEMBERS = ["a", "b", "c", "d", "e", "f", "", "10", "-1", "aa"]

    def member(self, n=len(MEMBERS)):
        return self.pick(self.MEMBERS[:n])

    def many(self, n):
        """n distinct members of a space of 150 (beside the small one), for containers past kv's
        compact sizes (a hash or set switches to a B-tree above 64, back at 32; Redis' listpacks
        end at 128 entries) and back."""
        return ["m" + str(i) for i in self.rng.sample(range(150), n)]

    def members(self, lo=1, hi=4):
        return [self.member() for _ in range(self.rng.randint(lo, hi))]

    def small(self, lo=-6, hi=6):
        return str(self.rng.randint(lo, hi))

    def num(self):
        return self.pick(self.INTS) if self.chance(0.3) else self.small()

    def count(self):
        return self.pick(["0", "1", "2", "3", "5", "10", "-1", "-3", "-10", "abc", "-9223372036854775808"])

    def score(self):
        return self.pick(self.SCORES) if self.chance(0.3) else self.small(-4, 4)

    def float(self):
        return self.pick(self.FLOATS) if self.chance(0.4) else self.small()

    def secs(self):
        """A relative expiry in seconds: random over a wide range, so that two in one sequence
        are seconds apart. (EXPIRE k 1000 GT after SET k v EX 1000 depends on whether the two
        ran in one millisecond, on each server apart.)"""
        return str(self.rng.randint(1000, 1000000))

    def millis(self):
        return str(self.rng.randint(1000, 1000000) * 1000 + self.rng.randrange(1000))

    def value(self):
        return self.pick(["", "x", "hello", "10", "-5", "3.5", "abc", "9223372036854775807", "0", "1e3"])

    def other_type(self, key):
        """A write of another type on key: the next commands meet WRONGTYPE or a fresh key."""
        if self.chance(0.6):
            return ["DEL", key]
        return self.pick([["SET", key, self.value()], ["LPUSH", key, "x"], ["SADD", key, "a"],
                          ["HSET", key, "a", "1"], ["ZADD", key, "1", "a"]])


# ---- generators: gen(g) -> (words, mode) ------------------------------------------------------

def gen_strings(g):
    k, k2 = g.key(), g.key()
    r = g.rng.randrange(43)
    if r < 3:
        # SET's options in any order and combination: NX/XX/GET/KEEPTTL/EX/PX/EXAT/PXAT, and
        # bad ones (two of a kind, a missing or bad expiry) for its errors. Expiries are long
        # or absolute far in the future: a short one would expire between the two sends.
        words = ["SET", k, g.value()]
        for _ in range(g.rng.randrange(4)):
            words += g.pick([["NX"], ["XX"], ["GET"], ["KEEPTTL"], ["EX", g.pick([g.secs(), g.secs(), "0", "-1", "abc", "9223372036854775807"])],
                             ["PX", g.pick([g.millis(), "0", "abc"])], ["EXAT", "4102444800"], ["PXAT", "4102444800000"],
                             ["EXAT", "1"], ["EX"], ["nx"], ["BOGUS"]])
        return words, "bytes"
    if r < 5:
        return ["GET", k], "bytes"
    if r < 6:
        return ["SETNX", k, g.value()], "bytes"
    if r < 7:
        return ["GETSET", k, g.value()], "bytes"
    if r < 8:
        return ["GETDEL", k], "bytes"
    if r < 9:
        return ["GETEX", k] + g.pick([[], ["PERSIST"], ["EX", g.secs()], ["PX", g.pick([g.millis(), "0", "abc"])],
                                      ["EXAT", "4102444800"], ["EX", g.secs(), "PERSIST"], ["BOGUS"]]), "bytes"
    if r < 11:
        return ["GETRANGE", k, g.small(-8, 8), g.pick([g.small(-8, 8), "9223372036854775807", "-9223372036854775808",
                                                       "abc"])], "bytes"
    if r < 13:
        # Offsets stay small: a big one would allocate up to 512 MiB on both servers.
        return ["SETRANGE", k, g.pick([g.small(0, 12), "-1", "abc", "536870912"]), g.value()], "bytes"
    if r < 15:
        return ["APPEND", k, g.value()], "bytes"
    if r < 16:
        return ["STRLEN", k], "bytes"
    if r < 19:
        return g.pick([["INCR", k], ["DECR", k], ["INCRBY", k, g.num()], ["DECRBY", k, g.num()]]), "bytes"
    if r < 21:
        return ["INCRBYFLOAT", k, g.float()], "bytes"
    if r < 22:
        words = ["MSET"]
        for _ in range(g.rng.randint(1, 3)):
            words += [g.key(), g.value()]
        return words, "bytes"
    if r < 23:
        words = ["MSETNX"]
        for _ in range(g.rng.randint(1, 3)):
            words += [g.key(), g.value()]
        return words, "bytes"
    if r < 24:
        return ["MGET"] + g.keys(), "bytes"
    if r < 25:
        return ["RENAME", k, k2], "bytes"
    if r < 26:
        return ["RENAMENX", k, k2], "bytes"
    if r < 27:
        return ["COPY", k, k2] + g.pick([[], ["REPLACE"], ["DB", "0"], ["DB", "0", "REPLACE"], ["DB", "1"],
                                        ["DB", "abc"], ["BOGUS"]]), "bytes"
    if r < 28:
        return [g.pick(["DEL", "UNLINK"])] + g.keys(), "bytes"
    if r < 29:
        return ["EXISTS"] + g.keys(), "bytes"
    if r < 30:
        return ["TYPE", k], "bytes"
    if r < 31:
        return [g.pick(["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"]), k], "ttl"
    if r < 32:
        return ["SET", k, g.value(), "EX", g.secs()], "bytes"  # deadlines for RENAME, COPY, KEEPTTL to move
    if r < 33:
        return g.pick([["EXPIRE", k, g.secs()] + g.pick([[], ["NX"], ["XX"], ["GT"], ["LT"]]),
                       ["PERSIST", k], ["EXPIRE", k, "abc"]]), "bytes"
    if r < 34:
        return g.pick([["SETEX", k, g.pick([g.secs(), "0", "-5", "abc"]), g.value()],
                       ["PSETEX", k, g.pick([g.millis(), "0", "abc"]), g.value()]]), "bytes"
    if r < 35:
        return ["TOUCH"] + g.keys(), "bytes"
    if r < 36 and g.chance(0.5):
        # SCAN's cursors are kv's own ("Differences from Redis"): a whole iteration from 0
        # compared; no other start (Redis takes "-1" as 2^64-1, a position in its table).
        return ["SCAN", g.pick(["0", "0", "0", "abc"])] + scan_options(g, True), "scan"
    if r < 36:
        # KEYS: kv lists in hash order, Redis in its table's ("Differences from Redis"): a multiset.
        return ["KEYS", g.pick(["*", "s*", "s[01]", "s?", "*2", "x*", "[", "s\\1"])], "unordered"
    if r < 37:
        return g.pick([[g.pick(["EXPIRE", "PEXPIRE"]), k, g.pick([g.secs(), g.millis(), "-1", "0", "abc", "9223372036854775807"])]
                       + g.pick([[], ["NX"], ["XX"], ["GT"], ["LT"], ["NX", "XX"], ["GT", "LT"], ["BOGUS"]]),
                       [g.pick(["EXPIREAT", "PEXPIREAT"]), k, g.pick(["4102444800", "1", "0", "abc"])]]), "bytes"
    # No DBSIZE: SET ... EXAT 1 leaves Redis 7.0 a key past its deadline that it still counts
    # (docs/kv-commands.md "Differences from Redis": DBSIZE).
    return g.other_type(k), "bytes"


def gen_hashes(g):
    k = g.key()
    f = g.member()
    if g.chance(P_BULK):
        if g.chance(0.6):
            words = ["HSET", k]
            for m in g.many(g.rng.randint(40, 140)):
                words += [m, g.value()]
            return words, "bytes"
        return ["HDEL", k] + g.many(g.rng.randint(40, 140)), "bytes"
    r = g.rng.randrange(30)
    if r < 4:
        words = [g.pick(["HSET", "HMSET"]), k]
        for _ in range(g.rng.randint(1, 3)):
            words += [g.member(), g.value()]
        return words, "bytes"
    if r < 6:
        return ["HGET", k, f], "bytes"
    if r < 7:
        return ["HEXISTS", k, f], "bytes"
    if r < 9:
        return ["HDEL", k] + g.members(), "bytes"
    if r < 11:
        # HGETALL: Redis' order is its table's, kv's hash order (docs/kv-commands.md
        # "Differences from Redis"): a multiset of pairs.
        return ["HGETALL", k], "pairs"
    if r < 12:
        return ["HLEN", k], "bytes"
    if r < 14:
        return ["HINCRBY", k, f, g.num()], "bytes"
    if r < 16:
        return ["HINCRBYFLOAT", k, f, g.float()], "bytes"
    if r < 18:
        return ["HMGET", k] + g.members(), "bytes"
    if r < 20:
        # The same order difference as HGETALL: a multiset.
        return [g.pick(["HKEYS", "HVALS"]), k], "unordered"
    if r < 21:
        return ["HSTRLEN", k, f], "bytes"
    if r < 23:
        return ["HSETNX", k, f, g.value()], "bytes"
    if r < 24 and g.chance(0.5):
        return ["HSCAN", k, g.pick(["0", "0", "0", "abc"])] + scan_options(g), "scan"
    if r < 26:
        # Random: compared by its properties (mode rand).
        return ["HRANDFIELD", k] + g.pick([[], [g.count()], [g.count(), "WITHVALUES"], [g.count(), "withvalues"],
                                           [g.count(), "BOGUS"]]), "rand"
    if r < 27:
        return ["TYPE", k], "bytes"
    return g.other_type(k), "bytes"


def gen_sets(g):
    k = g.key()
    if g.chance(P_BULK):
        return [g.pick(["SADD", "SADD", "SREM"]), k] + g.many(g.rng.randint(40, 140)), "bytes"
    r = g.rng.randrange(34)
    if r < 5:
        return ["SADD", k] + g.members(), "bytes"
    if r < 7:
        return ["SREM", k] + g.members(), "bytes"
    if r < 9:
        # SPOP is pseudo-random by kv's own rule (docs/kv-commands.md "SPOP is deterministic"):
        # compared by its properties, then the states made equal again (mode spop).
        return ["SPOP", k] + g.pick([[], [g.count()], [g.count(), "x"]]), "spop"
    if r < 11:
        # SMEMBERS: Redis' order is its table's, kv's its hash order ("Differences from
        # Redis"): a multiset; the same for SINTER, SUNION and SDIFF below.
        return ["SMEMBERS", k], "unordered"
    if r < 12 and g.chance(0.5):
        return ["SSCAN", k, g.pick(["0", "0", "0", "abc"])] + scan_options(g), "scan"
    if r < 12:
        return ["SCARD", k], "bytes"
    if r < 13:
        return ["SISMEMBER", k, g.member()], "bytes"
    if r < 14:
        return ["SMISMEMBER", k] + g.members(), "bytes"
    if r < 17:
        return [g.pick(["SINTER", "SUNION", "SDIFF"])] + g.keys(), "unordered"
    if r < 20:
        return [g.pick(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), g.key()] + g.keys(), "bytes"
    if r < 22:
        keys = g.keys()
        n = g.pick([str(len(keys))] * 4 + ["0", "-1", str(len(keys) + 1), "abc"])
        return ["SINTERCARD", n] + keys + g.pick([[], ["LIMIT", g.pick(["0", "1", "2", "-1", "abc"])], ["LIMIT"],
                                                  ["BOGUS", "1"]]), "bytes"
    if r < 24:
        return ["SMOVE", k, g.key(), g.member()], "bytes"
    if r < 27:
        # Random: compared by its properties (mode rand).
        return ["SRANDMEMBER", k] + g.pick([[], [g.count()]]), "rand"
    if r < 28:
        return ["TYPE", k], "bytes"
    return g.other_type(k), "bytes"


def gen_lists(g):
    k = g.key()
    if g.chance(P_BULK):
        return [g.pick(["LPUSH", "RPUSH"]), k] + [g.member(4) for _ in range(g.rng.randint(40, 140))], "bytes"
    e = g.member(4)
    idx = g.pick([g.small(-5, 5)] * 5 + ["9223372036854775807", "-9223372036854775808", "abc", "100", "-100"])
    r = g.rng.randrange(38)
    if r < 6:
        return [g.pick(["LPUSH", "RPUSH"]), k] + [g.member(4) for _ in range(g.rng.randint(1, 4))], "bytes"
    if r < 9:
        return [g.pick(["LPOP", "RPOP"]), k] + g.pick([[], [g.count()]]), "bytes"
    if r < 12:
        return ["LRANGE", k, idx, g.small(-5, 5)], "bytes"
    if r < 13:
        return ["LLEN", k], "bytes"
    if r < 15:
        return ["LINDEX", k, idx], "bytes"
    if r < 17:
        return ["LSET", k, idx, e], "bytes"
    if r < 19:
        return ["LREM", k, g.pick([g.small(-3, 3)] * 4 + ["abc", "9223372036854775807", "-9223372036854775808"]), e], "bytes"
    if r < 21:
        return ["LTRIM", k, idx, g.small(-5, 5)], "bytes"
    if r < 23:
        return ["LINSERT", k, g.pick(["BEFORE", "AFTER", "after", "BOGUS"]), g.member(4), e], "bytes"
    if r < 26:
        opts = []
        for _ in range(g.rng.randrange(3)):
            # RANK -2^63 is kept out: Redis 7.0 overflows there (docs/kv-commands.md, Lists).
            opts += g.pick([["RANK", g.pick(["1", "2", "-1", "-2", "0", "abc", "9223372036854775807"])],
                            ["COUNT", g.pick(["0", "1", "2", "-1", "abc"])], ["MAXLEN", g.pick(["0", "1", "3", "-1"])],
                            ["BOGUS"], ["RANK"]])
        return ["LPOS", k, e] + opts, "bytes"
    if r < 28:
        return [g.pick(["LPUSHX", "RPUSHX"]), k] + [g.member(4) for _ in range(g.rng.randint(1, 2))], "bytes"
    if r < 31:
        return ["LMOVE", k, g.key(), g.pick(["LEFT", "RIGHT", "left", "UP"]), g.pick(["LEFT", "RIGHT"])], "bytes"
    if r < 32:
        return ["RPOPLPUSH", k, g.key()], "bytes"
    if r < 33:
        if g.chance(0.6):
            return ["LLEN", k], "bytes"
        # Blocking forms with a non-empty source answer at once; on an empty one they wait
        # the timeout (10 ms) and answer a null, the same on both.
        return g.pick([[g.pick(["BLPOP", "BRPOP"])] + g.keys() + [g.pick(["0.01", "-1", "abc"])],
                       ["BLMOVE", k, g.key(), g.pick(["LEFT", "RIGHT"]), g.pick(["LEFT", "RIGHT"]), "0.01"],
                       ["BLMPOP", "0.01", "2", k, g.key(), g.pick(["LEFT", "RIGHT", "UP"])] +
                       g.pick([[], ["COUNT", g.count()]])]), "bytes"
    if r < 34:
        return ["TYPE", k], "bytes"
    if r < 35:
        keys = g.keys()
        n = g.pick([str(len(keys))] * 4 + ["0", "-1", str(len(keys) + 1), "abc"])
        return ["LMPOP", n] + keys + [g.pick(["LEFT", "RIGHT", "UP"])] + g.pick([[], ["COUNT", g.count()], ["COUNT"]]), "bytes"
    return g.other_type(k), "bytes"


def zbound(g):
    # 1e-310 (subnormal) only as a bound: as a score Redis 7.0 would print it in %.17g.
    return g.pick(["(", "", "", ""]) + g.score() if g.chance(0.9) else g.pick(["((1", "[1", "-", "+", "1e-310", "(1e-310"])


def lexbound(g):
    return g.pick(["-", "+", "[" + g.member(), "(" + g.member(), g.member(), "[", "("])


def gen_zsets(g):
    k = g.key()
    if g.chance(P_BULK):
        if g.chance(0.6):
            words = ["ZADD", k]
            for m in g.many(g.rng.randint(40, 140)):
                words += [g.small(-4, 4), m]
            return words, "bytes"
        return ["ZREM", k] + g.many(g.rng.randint(40, 140)), "bytes"
    r = g.rng.randrange(45)
    if r < 7:
        words = ["ZADD", k]
        for _ in range(g.rng.randrange(3)):
            words.append(g.pick(["NX", "XX", "GT", "LT", "CH", "INCR"]))
        for _ in range(g.rng.randint(1, 3) if "INCR" not in words or g.chance(0.2) else 1):
            words += [g.score(), g.member()]
        return words, "bytes"
    if r < 9:
        return ["ZINCRBY", k, g.score(), g.member()], "bytes"
    if r < 11:
        return ["ZREM", k] + g.members(), "bytes"
    if r < 13:
        return [g.pick(["ZPOPMIN", "ZPOPMAX"]), k] + g.pick([[], [g.count()]]), "bytes"
    if r < 17:
        by = g.pick([[], ["BYSCORE"], ["BYLEX"]])
        if by == ["BYLEX"]:
            lo, hi = lexbound(g), lexbound(g)
        elif by:
            lo, hi = zbound(g), zbound(g)
        else:
            lo, hi = g.small(-4, 4), g.pick([g.small(-4, 4), "abc", "9223372036854775807"])
        words = ["ZRANGE", k, lo, hi] + by
        if g.chance(0.4):
            words.append("REV")
        if g.chance(0.4):
            words += ["LIMIT", g.small(-1, 3), g.small(-1, 3)]
        if g.chance(0.4):
            words.append("WITHSCORES")
        return words, "lex" if by == ["BYLEX"] else "bytes"
    if r < 20:
        cmd = g.pick(["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"])
        words = [cmd, k, zbound(g), zbound(g)]
        if g.chance(0.4):
            words.append("WITHSCORES")
        if g.chance(0.4):
            words += ["LIMIT", g.small(-1, 3), g.small(-1, 3)]
        return words, "bytes"
    if r < 22:
        words = [g.pick(["ZRANGEBYLEX", "ZREVRANGEBYLEX"]), k, lexbound(g), lexbound(g)]
        if g.chance(0.4):
            words += ["LIMIT", g.small(-1, 3), g.small(-1, 3)]
        return words, "lex"
    if r < 23:
        return ["ZREVRANGE", k, g.small(-4, 4), g.small(-4, 4)] + g.pick([[], ["WITHSCORES"]]), "bytes"
    if r < 25:
        if g.chance(0.5):
            return ["ZCOUNT", k, zbound(g), zbound(g)], "bytes"
        return ["ZLEXCOUNT", k, lexbound(g), lexbound(g)], "lex"
    if r < 27:
        return [g.pick(["ZRANK", "ZREVRANK"]), k, g.member()], "bytes"
    if r < 29 and g.chance(0.3):
        return ["ZSCAN", k, g.pick(["0", "0", "0", "abc"])] + scan_options(g), "scan"
    if r < 29:
        return g.pick([["ZMSCORE", k] + g.members(), ["ZSCORE", k, g.member()], ["ZCARD", k]]), "bytes"
    if r < 31:
        return g.pick([(["ZREMRANGEBYRANK", k, g.small(-4, 4), g.small(-4, 4)], "bytes"),
                       (["ZREMRANGEBYSCORE", k, zbound(g), zbound(g)], "bytes"),
                       (["ZREMRANGEBYLEX", k, lexbound(g), lexbound(g)], "lex")])
    if r < 36:
        op = g.pick(["ZUNION", "ZINTER", "ZDIFF", "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"])
        keys = g.keys()
        n = g.pick([str(len(keys))] * 5 + ["0", str(len(keys) + 1), "abc"])
        words = [op] + ([g.key()] if op.endswith("STORE") else []) + [n] + keys
        if not op.startswith("ZDIFF") or g.chance(0.1):
            if g.chance(0.4):
                words += ["WEIGHTS"] + [g.pick(["1", "2", "0", "-1", "1.5", "inf", "-inf", "abc"]) for _ in keys]
            if g.chance(0.4):
                words += ["AGGREGATE", g.pick(["SUM", "MIN", "MAX", "max", "AVG"])]
        if not op.endswith("STORE") and g.chance(0.5):
            words.append("WITHSCORES")
        return words, "zstore" if op.endswith("STORE") else "bytes"
    if r < 38:
        # Random: compared by its properties (mode rand).
        return ["ZRANDMEMBER", k] + g.pick([[], [g.count()], [g.count(), "WITHSCORES"], [g.count(), "BOGUS"]]), "rand"
    if r < 39:
        return ["TYPE", k], "bytes"
    if r < 40:
        keys = g.keys()
        n = g.pick([str(len(keys))] * 4 + ["0", "-1", str(len(keys) + 1), "abc"])
        if g.chance(0.8):
            return ["ZMPOP", n] + keys + [g.pick(["MIN", "MAX", "max", "UP"])] + g.pick([[], ["COUNT", g.count()], ["COUNT"]]), "bytes"
        # Blocking forms: at once on a non-empty key, else a null after the 10 ms timeout.
        return g.pick([[g.pick(["BZPOPMIN", "BZPOPMAX"])] + keys + [g.pick(["0.01", "-1", "abc"])],
                       ["BZMPOP", "0.01", n] + keys + [g.pick(["MIN", "MAX"])] + g.pick([[], ["COUNT", g.count()]])]), "bytes"
    if r < 41:
        # A set where a sorted set is read: ZUNION and friends take sets as scores of 1.
        return ["SADD", k] + g.members(), "bytes"
    return g.other_type(k), "bytes"


GENERATORS = {"strings": ("s", gen_strings), "hashes": ("h", gen_hashes), "sets": ("t", gen_sets),
              "lists": ("l", gen_lists), "zsets": ("z", gen_zsets)}


def scan_options(g, with_type=False):
    """MATCH, COUNT (bad ones too) and, for SCAN, TYPE options in random order."""
    opts = []
    for _ in range(g.rng.randrange(3)):
        opts += g.pick([["MATCH", g.pick(["*", "a*", "?", "[a-c]", "*0", "x*", "s*", "h*", "\\a"])],
                        ["COUNT", g.pick(["1", "2", "10", "0", "-1", "abc"])]] +
                       ([["TYPE", g.pick(["string", "list", "set", "zset", "hash", "nosuch"])]] if with_type else []))
    return opts


def mangle(g, words):
    """Sometimes drops a word (arity errors) or adds a stray one (syntax errors)."""
    if len(words) > 1 and g.chance(P_DROP_WORD):
        words = words[:-1]
    elif g.chance(P_EXTRA_WORD):
        words = words + [g.pick(["x", "1", "NX", "LIMIT", "-1", ""])]
    return words


# ---- comparison ------------------------------------------------------------------------------

class Pair:
    """One connection to each server; send() writes both before reading either."""

    def __init__(self, servers, protocol):
        self.socks = [connect(servers.redis_port, servers.procs[0], servers.deadline),
                      connect(servers.hmdb_port, servers.procs[1], servers.deadline)]
        self.files = [s.makefile("rb") for s in self.socks]
        if protocol == 3:
            self.both(["HELLO", "3"])

    def both(self, words):
        frame = encode(words)
        for s in self.socks:
            s.sendall(frame)
        return [read_reply(f) for f in self.files]

    def one(self, which, words):
        self.socks[which].sendall(encode(words))
        return read_reply(self.files[which])

    def close(self):
        for s in self.socks:
            s.close()


def pairs(value):
    kind, payload = value
    if kind == b"%":
        return (kind, sorted(repr(p) for p in payload))
    if kind == b"*" and payload is not None and len(payload) % 2 == 0:
        return (kind, sorted(repr((payload[i], payload[i + 1])) for i in range(0, len(payload), 2)))
    return value


def is_error(value):
    return value[0] == b"-"


def elements(value, with_values):
    """A reply's elements as (element, value or None) pairs: a single bulk, a flat array
    (alternating element and value when with_values), an array of [e, v] pairs (RESP3), or a map."""
    kind, payload = value
    if kind == b"$":
        return [(payload, None)]
    if kind == b"%":
        return [(k[1], v[1]) for k, v in payload]
    if kind in (b"*", b"~") and payload is not None:
        if payload and payload[0][0] == b"*":
            return [(p[1][0][1], p[1][1][1]) for p in payload]
        if with_values:
            return [(payload[i][1], payload[i + 1][1]) for i in range(0, len(payload) - 1, 2)]
        return [(p[1], None) for p in payload]
    return []


def check_rand(pair, words, redis, hmdb):
    """The properties of a random pick (mode rand): a reason it fails, or None."""
    if is_error(redis) or is_error(hmdb) or redis[1] is None or hmdb[1] is None or redis[0] == b"_":
        return None if redis == hmdb else "different error or null"
    if redis[0] != hmdb[0]:
        return "different reply types"
    with_values = len(words) > 3
    picked = elements(hmdb, with_values)
    if len(elements(redis, with_values)) != len(picked) or (redis[0] != b"$" and len(redis[1]) != len(hmdb[1])):
        return "different sizes"
    count = int(words[2]) if len(words) > 2 else None
    if count is not None and count > 0 and len({e for e, _ in picked}) != len(picked):
        return "a repeated element for a positive count"
    cmd, key = words[0].upper(), words[1]
    for e, v in picked:
        e = e.decode("latin-1")
        if cmd == "SRANDMEMBER":
            ok = pair.one(0, ["SISMEMBER", key, e])[1] == (b":", b"1")
        elif cmd == "HRANDFIELD":
            got = pair.one(0, ["HGET", key, e])[1]
            ok = got[1] is not None and (not with_values or got[1] == v)
        else:
            got = pair.one(0, ["ZSCORE", key, e])[1]
            ok = got[1] is not None and (not with_values or float(got[1]) == float(v))
        if not ok:
            return f"{e!r} (value {v!r}) is not in Redis' {key}"
    return None


# How many pages a whole SCAN iteration may take (the spaces are a few keys or members).
MAX_SCAN_PAGES = 1000


def scan_rest(pair, which, words, first):
    """The set of elements of a whole SCAN-family iteration whose first page was first
    (pairs for HSCAN and ZSCAN, a -0 score read as 0), or None for a malformed reply."""
    at = 1 if words[0].upper() == "SCAN" else 2
    pairs_of = words[0].upper() in ("HSCAN", "ZSCAN")
    found, value = set(), first
    for _ in range(MAX_SCAN_PAGES):
        kind, payload = value
        if kind != b"*" or len(payload) != 2:
            return None
        items = [v[1] for v in payload[1][1]]
        if pairs_of:
            found |= {(items[i], b"0" if items[i + 1] == b"-0" else items[i + 1]) for i in range(0, len(items), 2)}
        else:
            found |= set(items)
        cursor = payload[0][1].decode()
        if cursor == "0":
            return found
        value = pair.one(which, words[:at] + [cursor] + words[at + 1:])[1]
    return None


def same(mode, words, redis, hmdb, pair):
    """Whether two replies agree under mode: (ok, reason)."""
    (redis_raw, redis_value), (hmdb_raw, hmdb_value) = redis, hmdb
    if words[0].upper().startswith(("Z", "BZ")) or (words[0].upper() == "EXEC" and pair.zsets):
        # A score of -0 is "0" in Redis' small sorted sets, "-0" in kv (docs/kv-commands.md
        # "Differences from Redis"): both are read as 0 (no member is named "-0"), in the
        # zsets sequences' transactions too.
        redis_raw, hmdb_raw = (raw.replace(b"$2\r\n-0\r\n", b"$1\r\n0\r\n").replace(b",-0\r\n", b",0\r\n")
                               for raw in (redis_raw, hmdb_raw))
    if (mode == "zstore" and redis_raw.startswith(b"-WRONGTYPE") and
            hmdb_raw in (b"-ERR syntax error\r\n", b"-ERR weight value is not a float\r\n")):
        return True, None  # the deliberate difference above (mode zstore)
    if mode in ("bytes", "lex", "zstore") or is_error(redis_value) or is_error(hmdb_value):
        return redis_raw == hmdb_raw, "bytes differ"
    if mode == "unordered":
        return unordered(redis_value) == unordered(hmdb_value), "different multisets"
    if mode == "scan":
        a, b = scan_rest(pair, 0, words, redis_value), scan_rest(pair, 1, words, hmdb_value)
        return a is not None and a == b, f"whole iterations differ: redis {a} hmdb {b}"
    if mode == "pairs":
        return pairs(redis_value) == pairs(hmdb_value), "different multisets of pairs"
    if mode == "ttl":
        a, b = int(redis_value[1]), int(hmdb_value[1])
        if redis_value[0] != hmdb_value[0]:
            return False, "different reply types"
        return (a == b) if min(a, b) < 0 else abs(a - b) <= TTL_SLACK[words[0].upper()], "times differ by more than the slack"
    if mode in ("rand", "spop"):
        if mode == "rand":
            reason = check_rand(pair, words, redis_value, hmdb_value)
            return reason is None, reason
        # SPOP: same sizes, distinct members, then Redis pops what hmdb popped.
        if (redis_value[1] is None) != (hmdb_value[1] is None) or redis_value[0] != hmdb_value[0]:
            return False, "different reply types"
        if redis_value[1] is None or redis_value[0] in (b"_",):
            return True, None
        mine = [e for e, _ in elements(redis_value, False)]
        theirs = [e for e, _ in elements(hmdb_value, False)]
        if len(mine) != len(theirs) or len(set(theirs)) != len(theirs):
            return False, "different sizes or a member popped twice"
        key = words[1]
        if mine:
            pair.one(0, ["SADD", key] + [e.decode("latin-1") for e in mine])
            pair.one(0, ["SREM", key] + [e.decode("latin-1") for e in theirs])
        (_, a), (_, b) = pair.both(["SMEMBERS", key])
        if unordered(a) != unordered(b):
            return False, f"after Redis popped hmdb's members the sets differ: {a!r} vs {b!r}"
        return True, None
    raise ValueError(mode)


def mixed_scores(pair, key):
    """Whether Redis' key is a sorted set whose scores are not all equal (mode lex)."""
    kind, payload = pair.one(0, ["ZRANGE", key, "0", "-1", "WITHSCORES"])[1]
    if kind != b"*" or not payload:
        return False
    scores = {repr(v) for v in (payload[1::2] if payload[0][0] != b"*" else [p[1][1] for p in payload])}
    return len(scores) > 1


class Stats:
    """What a run covered: commands compared, of which errors (Redis'), commands not sent (lex
    ranges on mixed scores, undefined replies in MULTI), and the state checks' commands."""

    def __init__(self):
        self.commands = self.errors = self.skipped = self.checks = 0


CONTENT = {b"string": (["GET"], "bytes"), b"list": (["LRANGE", None, "0", "-1"], "bytes"),
           b"set": (["SMEMBERS"], "unordered"), b"hash": (["HGETALL"], "pairs"),
           b"zset": (["ZRANGE", None, "0", "-1", "WITHSCORES"], "bytes")}


def state_checks(pair, prefix):
    """The commands of a state check (words, mode), asked of both servers: TYPE, TTL and
    content of every key in the space."""
    for i in range(3):
        key = prefix + str(i)
        yield ["TYPE", key], "bytes"
        yield ["TTL", key], "ttl"
        (_, (kind, payload)), _ = pair.both(["TYPE", key])  # the same on both, or TYPE differs above
        if payload in CONTENT:
            words, mode = CONTENT[payload]
            yield [words[0], key] + words[2:], mode


def run_sequence(servers, name, gen, prefix, seed, length, stats):
    """Runs one sequence; returns None or a failure report."""
    protocol = 2 + seed % 2
    g = Gen(seed, prefix)
    pair = Pair(servers, protocol)
    pair.zsets = name == "zsets"
    try:
        pair.both(["FLUSHALL"])
        history = []
        queued = 0  # commands still to queue in the open MULTI, if any
        for i in range(length + 1):
            if queued and i == length:
                queued = 1  # the sequence ends: the next command is EXEC
            if not queued and (i % STATE_CHECK_EVERY == 0 or i == length):
                for words, mode in state_checks(pair, prefix):
                    redis, hmdb = pair.both(words)
                    stats.checks += 1
                    ok, reason = same(mode, words, redis, hmdb, pair)
                    if not ok:
                        return report(name, seed, protocol, i, mode, reason, history, ["(state check)"] + words, redis, hmdb)
            if i == length:
                break
            if not queued and g.chance(P_MULTI):
                # A transaction of 1-4 commands: MULTI, each +QUEUED (or a queueing error), EXEC
                # with the results (or EXECABORT), all byte for byte.
                queued = g.rng.randint(1, 4) + 1
                words, mode = ["MULTI"], "bytes"
            elif queued == 1:
                words, mode = ["EXEC"], "bytes"
            else:
                words, mode = gen(g)
                words = mangle(g, words)
            if queued:
                queued -= 1
                if mode != "bytes":
                    # Inside EXEC's array a reply is compared byte for byte only: a command
                    # whose reply Redis leaves undefined (random, unordered, a BYLEX whose
                    # scores are checked before EXEC runs it) is not queued.
                    history.append(["(not sent in MULTI:)"] + words)
                    stats.skipped += 1
                    continue
            elif mode == "lex" and mixed_scores(pair, words[1]):
                history.append(["(not sent, mixed scores:)"] + words)
                stats.skipped += 1
                continue
            redis, hmdb = pair.both(words)
            stats.commands += 1
            stats.errors += is_error(redis[1])
            ok, reason = same(mode, words, redis, hmdb, pair)
            if not ok:
                return report(name, seed, protocol, i + 1, mode, reason, history, words, redis, hmdb)
            history.append(words)
        return None
    finally:
        pair.close()


def report(name, seed, protocol, n, mode, reason, history, words, redis, hmdb):
    """A failure: the seed, how to replay it, the sequence so far, the command, both replies."""
    shown = history[-REPORT_HISTORY:]
    lines = [f"DIFFERENT: {name}, seed {seed} (RESP{protocol}), after command {n} of the sequence "
             f"(mode {mode}: {reason})",
             f"  replay: redis_diff_test.py <hmdb> --types {name} --seed {seed} --sequences 1 --length {n}",
             f"  after FLUSHALL{' and HELLO 3' if protocol == 3 else ''}"
             f"{f' and {len(history) - len(shown)} more commands' if len(shown) < len(history) else ''}:"]
    lines += [f"    {' '.join(w if w else chr(34) * 2 for w in h)}" for h in shown]
    lines += [f"  > {' '.join(w if w else chr(34) * 2 for w in words)}",
              f"  redis: {redis[0]!r}", f"  hmdb:  {hmdb[0]!r}"]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("hmdb")
    parser.add_argument("--types", default=",".join(GENERATORS))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("HMDB_DIFF_SEED", DEFAULT_SEED)))
    parser.add_argument("--sequences", type=int, default=int(os.environ.get("HMDB_DIFF_SEQUENCES", DEFAULT_SEQUENCES)))
    parser.add_argument("--length", type=int, default=int(os.environ.get("HMDB_DIFF_LENGTH", DEFAULT_LENGTH)))
    parser.add_argument("--keep-going", action="store_true", help="report every failing sequence, not only the first")
    args = parser.parse_args()
    redis = shutil.which("redis-server")
    if not redis:
        print("SKIP: redis-server is not installed (apt-get install redis-server)")
        return 77
    # A SIGTERM (ctest's timeout, a long run stopped) unwinds through Servers' exit, which
    # stops both servers and removes their directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failures = 0
    with Servers(redis, args.hmdb) as servers:
        for name in args.types.split(","):
            prefix, gen = GENERATORS[name]
            start = time.monotonic()
            stats = Stats()
            for i in range(args.sequences):
                report = run_sequence(servers, name, gen, prefix, args.seed + i, args.length, stats)
                if report:
                    print(report, flush=True)
                    failures += 1
                    if not args.keep_going:
                        break
            print(f"{name}: {args.sequences} sequences of {args.length} commands from seed {args.seed}: "
                  f"{stats.commands} compared ({stats.errors} errors), {stats.skipped} not sent (lex ranges, in MULTI), "
                  f"{stats.checks} state-check commands; "
                  f"{time.monotonic() - start:.1f} s", flush=True)
            if failures and not args.keep_going:
                break
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
