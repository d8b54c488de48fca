"""OrderFraming says a read is plain only when llhttp frames it as exactly one plain keep-alive order."""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reference_exchange.order_framing import HEADS_KEPT, ORDER_REQUEST_LINE, OrderFraming

BODY = b'{"symbol":"BTCUSD","side":"buy","type":"limit","quantity":"1","price":"59000"}'
MAX_BODY = 64 * 1024
SHARED = OrderFraming(MAX_BODY)  # judges every test's heads, as a server's does all its clients'


def judged_plain(data: bytes) -> bool:
    """The shared framer's verdict, which must be a fresh one's."""
    verdict = SHARED.plain(data)
    assert OrderFraming(MAX_BODY).plain(data) == verdict
    return verdict


def order(headers: bytes, body: bytes = BODY, line: bytes = ORDER_REQUEST_LINE) -> bytes:
    return line + headers + b"\r\n" + body


def length(body: bytes = BODY) -> bytes:
    return b"Content-Length: %d\r\n" % len(body)


class Seen:
    """What llhttp makes of some bytes: the messages it completed and where."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.urls: list[bytes] = []
        self.keep_alive: list[bool] = []
        self.parser = httptools.HttpRequestParser(self)
        self._body = b""
        self._url = b""

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.bodies.append(self._body)
        self.urls.append(self._url)
        self.keep_alive.append(self.parser.should_keep_alive())
        self._body = self._url = b""


def llhttp_frames_one_plain_order(data: bytes) -> bool:
    seen = Seen()
    try:
        seen.parser.feed_data(data)
    except httptools.HttpParserError:
        return False
    return (
        seen.urls == [b"/api/orders"]
        and seen.parser.get_method() == b"POST"
        and seen.keep_alive == [True]
        and len(seen.bodies[0]) == len(data) - data.index(b"\r\n\r\n") - 4
    )


@pytest.mark.parametrize(
    "headers",
    [
        b"Host: 127.0.0.1:8080\r\nContent-Type: application/json\r\n" + length(),  # capacity's generator
        b"Host: localhost\r\n" + length() + b"Content-Type: application/json\r\n",  # wrk2's Lua
        b"Host: x\r\nUser-Agent: python-requests/2.32\r\nAccept-Encoding: gzip, deflate\r\nAccept: */*\r\n"
        b"Connection: keep-alive\r\n" + length(),  # Locust's HttpUser
        b"content-length:   %d  \r\n" % len(BODY),
    ],
)
def test_the_requests_clients_send_are_plain(headers: bytes) -> None:
    data = order(headers)
    assert judged_plain(data) and llhttp_frames_one_plain_order(data)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (order(b"Host: x\r\n" + length())[:-1], "the body is not all there"),
        (order(b"Host: x\r\n" + length()) + b"POST", "a pipelined request follows"),
        (order(b"Host: x\r\n" + length())[:40], "the head is not all there"),
        (order(b"Host: x\r\n" + length() + length()), "two Content-Lengths"),
        (order(b"Host: x\r\n"), "no Content-Length"),
        (order(b"Host: x\r\nTransfer-Encoding: chunked\r\n" + length()), "chunked"),
        (order(b"Host: x\r\nContent-Encoding: gzip\r\n" + length()), "encoded"),
        (order(b"Host: x\r\nExpect: 100-continue\r\n" + length()), "expects a 100"),
        (order(b"Host: x\r\nUpgrade: websocket\r\n" + length()), "an upgrade"),
        (order(b"Host: x\r\nConnection: close\r\n" + length()), "the connection ends after it"),
        (order(b"Host: x\r\n" + length(), line=b"POST /api/orders HTTP/1.0\r\n"), "HTTP/1.0"),
        (order(b"Host: x\r\n" + length(), line=b"POST /api/orders/ HTTP/1.1\r\n"), "another path"),
        (order(b"Host : x\r\n" + length()), "a space before the colon"),
        (order(b"Host: x\r\n continued\r\n" + length()), "a folded line"),
        (order(b"Host: x\tx\r\n" + length()), "a tab"),
        (order(b"Host: x\nX: y\r\n" + length()), "a bare line feed"),
        (order(b"Content-Length: 1" + b"0" * 20 + b"\r\n"), "a length no body may have"),
        (order(b"Content-Length: %d\r\n" % (MAX_BODY + 1), b"x" * (MAX_BODY + 1)), "over the body limit"),
        (order(b"Content-Length: -1\r\n", b""), "a negative length"),
    ],
)
def test_anything_else_goes_to_llhttp(data: bytes, why: str) -> None:
    assert not judged_plain(data), why


HEADER_NAMES = st.sampled_from(
    [b"Host", b"Content-Type", b"Content-Length", b"Connection", b"Transfer-Encoding", b"Expect", b"X-A"]
)
HEADER_VALUES = st.one_of(
    st.sampled_from([b"keep-alive", b"close", b"chunked", b"0", b"12", b"application/json", b" 5 "]),
    st.binary(max_size=6),
)


@settings(max_examples=500, deadline=None)
@given(
    headers=st.lists(
        st.tuples(HEADER_NAMES, st.sampled_from([b":", b": ", b" :"]), HEADER_VALUES), max_size=5
    ),
    body=st.binary(max_size=16),
    tail=st.sampled_from([b"", b"GET / HTTP/1.1\r\n\r\n", b"\r\n"]),
    with_length=st.booleans(),
)
def test_whatever_it_calls_plain_llhttp_frames_as_one_plain_order(
    headers: list[tuple[bytes, bytes, bytes]], body: bytes, tail: bytes, with_length: bool
) -> None:
    lines = b"".join(name + colon + value + b"\r\n" for name, colon, value in headers)
    data = order(lines + (length(body) if with_length else b""), body) + tail
    if judged_plain(data):
        assert llhttp_frames_one_plain_order(data), data


def test_it_keeps_a_bounded_number_of_heads_and_judges_the_rest_each_time() -> None:
    framing = OrderFraming(MAX_BODY)
    for number in range(HEADS_KEPT + 50):
        assert framing.plain(order(b"X-Id: %d\r\n" % number + length()))
    assert len(framing._heads) == HEADS_KEPT
    assert framing.plain(order(b"X-Id: %d\r\n" % (HEADS_KEPT + 49) + length()))
    assert not framing.plain(order(b"X-Id: 1\r\nExpect: 100-continue\r\n" + length()))
