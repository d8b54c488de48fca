"""Is a read exactly one plain order request? Then a standing queue can refuse it without parsing it.

Under overload, a trading client's connection delivers one ``POST /api/orders`` per read, the same few
headers each time, and most of them are refused. Through llhttp each one still costs a Python callback per
header and per parsing step: about half of a refusal's Python (docs/benchmarks.md, "What a refusal costs").
``OrderFraming.plain`` frames such a read with two byte searches and a dict lookup: each distinct head is
judged once (a few C-level searches and one regular expression) and the verdict kept.

It answers for a read only when llhttp would frame it the same way and the lean path would take it as a
plain order: the request line ``POST /api/orders HTTP/1.1``; header lines of a token name, a colon and
printable ASCII; exactly one Content-Length, in digits and within the body limit; none of the headers that
make a request not lean (Transfer-Encoding, Content-Encoding, Expect, Upgrade); Connection absent or
``keep-alive``; and the head and body filling the read exactly. Anything else, including every malformed
request, goes to llhttp as before, so HTTP errors are still judged in one place.
"""

from __future__ import annotations

import re
from typing import Final

ORDER_REQUEST_LINE: Final = b"POST /api/orders HTTP/1.1\r\n"
#: Header lines llhttp accepts as they are (a subset: no obs-fold, no tab, no space before the colon), and
#: the blank line that ends the head.
_PLAIN_HEADERS: Final = re.compile(rb"(?:[A-Za-z0-9!#$%&'*+.^_`|~-]+:[ ]*[\x21-\x7e][\x20-\x7e]*\r\n)*\r\n")
#: Headers whose presence makes a request not lean: aiohttp's to judge (``lean_http`` reads them too).
HEADERS_NOT_LEAN: Final = frozenset({b"transfer-encoding", b"content-encoding", b"expect", b"upgrade"})
#: Any of them, as a header line begins in a lowercased head.
_NOT_PLAIN: Final = re.compile(rb"\r\n(?:" + b"|".join(sorted(HEADERS_NOT_LEAN)) + rb"):")
_CONTENT_LENGTH: Final = b"\r\ncontent-length:"
_CONNECTION: Final = b"\r\nconnection:"
#: Heads judged, kept per framer: a client repeats a few heads (they differ by Content-Length alone).
HEADS_KEPT: Final = 256


class OrderFraming:
    """``plain(data)``: whether ``data`` is exactly one plain, keep-alive order request of at most
    ``max_body`` bytes of body (see the module docstring)."""

    def __init__(self, max_body: int) -> None:
        self.max_body = max_body
        self._heads: dict[bytes, int] = {}  # a head judged: its body's length, or -1 when not plain

    def plain(self, data: bytes) -> bool:
        if not data.startswith(ORDER_REQUEST_LINE):
            return False
        end = data.find(b"\r\n\r\n") + 4
        if end < 4:
            return False
        head = data[:end]
        length = self._heads.get(head)
        if length is None:
            length = _body_length(head, self.max_body)
            if len(self._heads) < HEADS_KEPT:
                self._heads[head] = length
        return length >= 0 and len(data) == end + length


def _body_length(head: bytes, max_body: int) -> int:
    """The Content-Length of a plain order request's head (the request line, headers and blank line), or
    -1 when it is not plain."""
    if not _PLAIN_HEADERS.fullmatch(head, len(ORDER_REQUEST_LINE)):
        return -1
    lines = head[len(ORDER_REQUEST_LINE) - 2 : -2].lower()  # every header line starts with \r\n
    if _NOT_PLAIN.search(lines):
        return -1
    length = _only_value(lines, _CONTENT_LENGTH)
    if length is None or not length.isdigit() or len(length) > 9 or int(length) > max_body:
        return -1
    connection = _only_value(lines, _CONNECTION)
    if connection is not None and connection != b"keep-alive":
        return -1
    return int(length)


def _only_value(lines: bytes, name: bytes) -> bytes | None:
    """The value of the one ``name`` header line in ``lines`` (None when absent); b"" when it repeats."""
    at = lines.find(name)
    if at < 0:
        return None
    if lines.find(name, at + 1) >= 0:
        return b""
    return lines[at + len(name) : lines.index(b"\r\n", at + 2)].strip(b" ")
