"""A small RESP2 (Redis protocol) client for the system tests.

Why our own: the system tests may use only the Python standard library, and they need
exact control over pipelining and over what counts as "acknowledged" (a reply that was
completely received and parsed), which a high-level client would hide.

Replies map to Python values:
  simple string  -> str           ("+OK"    -> "OK")
  error          -> RespError     (returned, not raised: a pipeline keeps its order)
  integer        -> int
  bulk string    -> bytes, or None for a null bulk ($-1)
  array          -> list, or None for a null array (*-1)
"""

import socket
import time

# Bounds on what we accept from a server: a reply beyond these is a protocol error, not
# something to allocate memory for. The tests never store values near these sizes.
MAX_BULK_BYTES = 64 * 1024 * 1024
MAX_ARRAY_ITEMS = 16 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024  # a status/error/integer line
RECV_BYTES = 256 * 1024  # one recv() call


class RespError:
    """An error reply ("-ERR ..."). A value, not an exception: see the module comment."""

    def __init__(self, message):
        self.message = message

    def __repr__(self):
        return "RespError(%r)" % self.message

    def __eq__(self, other):
        return isinstance(other, RespError) and other.message == self.message


class ProtocolError(Exception):
    """The server sent bytes that are not valid RESP: the stream cannot be trusted."""


class ConnectionLost(Exception):
    """The connection closed or failed before a complete reply arrived."""


def encode_command(args):
    """Encodes one command (a sequence of str/bytes/int) as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int):
            arg = b"%d" % arg
        out.append(b"$%d\r\n" % len(arg))
        out.append(arg)
        out.append(b"\r\n")
    return b"".join(out)


class _Incomplete(Exception):
    pass


def _read_line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        if len(buf) - pos > MAX_LINE_BYTES:
            raise ProtocolError("line longer than %d bytes" % MAX_LINE_BYTES)
        raise _Incomplete()
    if end - pos > MAX_LINE_BYTES:
        raise ProtocolError("line longer than %d bytes" % MAX_LINE_BYTES)
    return bytes(buf[pos:end]), end + 2


def _parse_int(line):
    try:
        return int(line)
    except ValueError:
        raise ProtocolError("bad integer %r" % line) from None


def _parse_at(buf, pos):
    if pos >= len(buf):
        raise _Incomplete()
    kind = buf[pos:pos + 1]
    line, pos = _read_line(buf, pos + 1)
    if kind == b"+":
        return line.decode("utf-8", "replace"), pos
    if kind == b"-":
        return RespError(line.decode("utf-8", "replace")), pos
    if kind == b":":
        return _parse_int(line), pos
    if kind == b"$":
        n = _parse_int(line)
        if n == -1:
            return None, pos
        if n < 0 or n > MAX_BULK_BYTES:
            raise ProtocolError("bad bulk length %d" % n)
        if len(buf) < pos + n + 2:
            raise _Incomplete()
        if buf[pos + n:pos + n + 2] != b"\r\n":
            raise ProtocolError("bulk string not followed by CRLF")
        return bytes(buf[pos:pos + n]), pos + n + 2
    if kind == b"*":
        n = _parse_int(line)
        if n == -1:
            return None, pos
        if n < 0 or n > MAX_ARRAY_ITEMS:
            raise ProtocolError("bad array length %d" % n)
        items = []
        for _ in range(n):
            item, pos = _parse_at(buf, pos)
            items.append(item)
        return items, pos
    raise ProtocolError("unknown reply type byte %r" % kind)


def parse_reply(buf, pos=0):
    """Parses one reply from buf at pos. Returns (value, next_pos), or None if buf does not
    yet hold a complete reply. Raises ProtocolError on invalid input."""
    try:
        return _parse_at(buf, pos)
    except _Incomplete:
        return None


class Client:
    """One RESP connection. Not thread-safe: one thread per Client."""

    def __init__(self, host, port, timeout=10.0, tls=None):
        """tls: an ssl.SSLContext to speak TLS with (a node's --tls-port), else plaintext."""
        self.timeout = timeout
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            if tls is not None:
                self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        except OSError as e:  # ssl.SSLError is one: a refused handshake
            raise ConnectionLost("connect to %s:%d: %s" % (host, port, e)) from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, commands):
        """Sends several commands in one write (a pipeline). Replies come from read_reply()."""
        data = b"".join(encode_command(c) for c in commands)
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise ConnectionLost("send: %s" % e) from None

    def read_reply(self):
        """Returns the next complete reply. Raises ConnectionLost on EOF, error or timeout
        (the deadline is self.timeout for the whole reply)."""
        deadline = time.monotonic() + self.timeout
        while True:
            parsed = parse_reply(self.buf, self.pos)
            if parsed is not None:
                value, self.pos = parsed
                if self.pos > RECV_BYTES:  # drop consumed bytes now and then, not per reply
                    del self.buf[:self.pos]
                    self.pos = 0
                return value
            left = deadline - time.monotonic()
            if left <= 0:
                raise ConnectionLost("timed out after %.1fs waiting for a reply" % self.timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(RECV_BYTES)
            except socket.timeout:
                raise ConnectionLost("timed out after %.1fs waiting for a reply" % self.timeout) from None
            except OSError as e:
                raise ConnectionLost("recv: %s" % e) from None
            if not chunk:
                raise ConnectionLost("connection closed by server")
            self.buf += chunk

    def pipeline(self, commands):
        """Sends all commands, then returns their replies in order."""
        self.send(commands)
        return [self.read_reply() for _ in commands]

    def call(self, *args):
        return self.pipeline([args])[0]
