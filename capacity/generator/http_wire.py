"""HTTP/1.1 on the wire for the native load generator: whole requests as bytes, response framing.

The generator keeps one request in flight per keep-alive connection, so it only needs to know where a
response ends and its status: the status line, ``Content-Length``, and nothing else. A response framed
any other way (chunked, or no length) is a ``ProtocolError`` naming what was seen; the generator counts
it as an error of that connection, which it closes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

NO_BODY_STATUSES = frozenset({204, 304})
MAX_HEAD_BYTES = 65_536  # a response head longer than this is not an exchange's answer


class ProtocolError(Exception):
    """The server answered something this generator does not parse (it needs HTTP/1.x + Content-Length)."""


def host_header(url: str) -> str:
    """The ``Host`` header value for a base URL (``127.0.0.1:8080``)."""
    return urlsplit(url).netloc


def encode_request(method: str, path: str, host: str, body: bytes | None = None) -> bytes:
    """One whole keep-alive request, so sending it costs one write."""
    if body is None:
        return f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    return (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def parse_head(buf: bytes, end: int) -> tuple[int, int]:
    """Status and body length of the response whose header block ends at ``end`` (the blank line)."""
    if not buf.startswith(b"HTTP/1.") or len(buf) < 12 or not buf[9:12].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {bytes(buf[:40])!r}")
    status = int(buf[9:12])
    head = buf[:end].lower()
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 2)
        try:
            length = int(head[at + 17 : line_end if line_end >= 0 else end])
        except ValueError:
            raise ProtocolError(f"status {status} with a malformed Content-Length") from None
        if length < 0:
            raise ProtocolError(f"status {status} with a negative Content-Length")
        return status, length
    if status in NO_BODY_STATUSES or 100 <= status < 200:
        return status, 0
    if b"\r\ntransfer-encoding:" in head:
        raise ProtocolError(f"status {status} with a chunked body (the native engine needs Content-Length)")
    raise ProtocolError(f"status {status} without Content-Length")


def split_response(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """``(status, body, rest)`` of the first whole final response in ``buf`` (1xx answers are skipped),
    or None while it is incomplete. Raises ProtocolError for what is not an HTTP/1.x response."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD_BYTES:
                raise ProtocolError(f"no end of the response head in {len(buf):,} bytes")
            return None
        # the usual spelling first, without copying the head; parse_head handles every other
        at = buf.find(b"\r\nContent-Length: ", 0, end)
        try:
            if at < 0 or not buf.startswith(b"HTTP/1."):
                raise ValueError
            status = int(buf[9:12])
            length = int(buf[at + 18 : buf.find(b"\r\n", at + 18)])
        except ValueError:
            status, length = parse_head(buf, end)
        stop = end + 4 + length
        if len(buf) < stop:
            return None
        if 100 <= status < 200:  # an interim answer: the real one follows
            buf = buf[stop:]
            continue
        return status, buf[end + 4 : stop], buf[stop:]
