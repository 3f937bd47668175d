#!/usr/bin/env python3
"""Self-test of resp.py, the RESP2 client the system tests trust to decide what was
acknowledged: every reply type, every split point of a pipelined stream (a reply is
complete only when its last byte arrived), and rejection of malformed input."""

import sys

import resp

STREAM = (b"+OK\r\n-ERR wrong number of arguments\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n"
          b"$-1\r\n*3\r\n$1\r\na\r\n:1\r\n*1\r\n+x\r\n*0\r\n*-1\r\n$4\r\na\r\nb\r\n")
EXPECTED = ["OK", resp.RespError("ERR wrong number of arguments"), 42, -7, b"hello", b"", None,
            [b"a", 1, ["x"]], [], None, b"a\r\nb"]


def parse_all(buf):
    out, pos = [], 0
    while True:
        parsed = resp.parse_reply(buf, pos)
        if parsed is None:
            return out, pos
        value, pos = parsed
        out.append(value)


def main():
    failures = []
    values, pos = parse_all(STREAM)
    if values != EXPECTED or pos != len(STREAM):
        failures.append("whole stream parsed as %r (pos %d of %d)" % (values, pos, len(STREAM)))
    # A prefix must parse into exactly the replies that are complete in it, never more.
    ends = []
    p = 0
    for _ in EXPECTED:
        _, p = resp.parse_reply(STREAM, p)
        ends.append(p)
    for cut in range(len(STREAM) + 1):
        values, _ = parse_all(STREAM[:cut])
        want = sum(1 for e in ends if e <= cut)
        if values != EXPECTED[:want]:
            failures.append("prefix of %d bytes parsed as %r, want %r" % (cut, values, EXPECTED[:want]))
    for bad in [b"?x\r\n", b":12a\r\n", b"$3\r\nabcd\r\n", b"$-5\r\n", b"*-2\r\n",
                b"$%d\r\n" % (resp.MAX_BULK_BYTES + 1), b"+" + b"x" * (resp.MAX_LINE_BYTES + 1)]:
        try:
            resp.parse_reply(bad)
            failures.append("accepted malformed %r" % bad[:40])
        except resp.ProtocolError:
            pass
    cmd = resp.encode_command(["SET", b"k\r\n", 5])
    if cmd != b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$1\r\n5\r\n":
        failures.append("encode_command gave %r" % cmd)
    for f in failures:
        print("FAIL: " + f)
    print("resp selftest: %s" % ("FAILED" if failures else "ok"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
