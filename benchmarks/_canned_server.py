"""A sink that answers the exchange's API from canned bytes, for measuring load generators.

To measure a generator at 30,000 requests/s on one core, the server on the other core must answer faster
than any Python HTTP framework does. This one is a raw ``asyncio.Protocol`` on uvloop: it frames each
request by its head and Content-Length and writes a pre-encoded answer of the route's shape (an order
ack with a fresh id, so a generator learns resting orders to cancel; a cancel; a book; the symbol list;
health). It parses nothing else: it is a measuring instrument, not an exchange.

``CannedServer`` runs it as a subprocess the way ``EmbeddedExchange`` runs the exchange.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bare_server import SYMBOLS, BareServer

from capacity.run.exchange_process import READY_PREFIX


def _answer(status: str, body: bytes) -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


ACK = b'{"id":%d,"status":"new","filled_quantity":"0","trades":[]}'
CANCELLED = _answer("200 OK", b'{"status":"cancelled"}')
BOOK = _answer("200 OK", b'{"symbol":"BTCUSD","bids":[["59990","1"]],"asks":[["60010","1"]],"sequence":1}')
SYMBOL_LIST = _answer("200 OK", orjson.dumps(SYMBOLS))
OK = _answer("200 OK", b'{"status":"ok"}')


class _Connection(asyncio.Protocol):
    next_id = 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        out = []
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                break
            at = buf.find(b"Content-Length: ", 0, end)
            length = int(buf[at + 16 : buf.find(b"\r\n", at)]) if at >= 0 else 0
            if len(buf) < end + 4 + length:
                break
            method = buf[:1]
            if method == b"P":
                _Connection.next_id += 1
                out.append(_answer("201 Created", ACK % _Connection.next_id))
            elif method == b"D":
                out.append(CANCELLED)
            elif buf.startswith(b"GET /api/orderbook"):
                out.append(BOOK)
            elif buf.startswith(b"GET /api/symbols"):
                out.append(SYMBOL_LIST)
            else:
                out.append(OK)
            buf = buf[end + 4 + length :]
        self.buf = buf
        if out:
            self.transport.write(b"".join(out))


async def serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, "127.0.0.1", 0, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"{READY_PREFIX}http://{host}:{port} (pid {os.getpid()})", flush=True)
    await stop.wait()
    server.close()


class CannedServer(BareServer):
    """``with CannedServer(cpus=[1]) as sink: sink.url`` — this module's server in a pinned subprocess."""

    script = __file__


if __name__ == "__main__":
    uvloop.run(serve())
