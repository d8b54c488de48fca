"""The seed request mix on the wire for ``_loadgen.py``: limit 70 % (25 % of them marketable), market 10 %,
cancel 15 %, book reads 5 % (``capacity.scenario.Mix``'s defaults, the seed scenarios' mix).

The bodies come from the toolkit's own ``capacity.generator.order_flow.OrderFlow`` (the native generator's
pricing, around each symbol's reference price from ``GET /api/symbols``), drawn once from a seeded RNG and
encoded once into whole HTTP/1.1 requests (``plan``), which the run sends in turn. Two differences from the
native generator, both so that sending costs one list look-up and one write:

- the mid stays at the reference price (the native generator moves it with trades and book reads);
- client order ids are left out: the plan repeats, and a repeated id would be answered as a duplicate.

A cancel is a slot in the plan whose order id is chosen at send time: one of the resting orders learnt from
earlier ``201`` answers to limit orders (the id and status are read from the body's bytes, no JSON parse),
taken at random and forgotten, as ``OrderFlow.cancel`` does. With none known yet, a limit order goes instead
(as in ``OrderFlow.next_request``). A cancel answered 404 or 409 (the order traded meanwhile) was answered
correctly and counts as completed.
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections import Counter
from collections.abc import Sequence

import orjson
from _loadgen import Requests

from capacity.generator.http_wire import encode_request, host_header
from capacity.generator.order_flow import ORDERS_PATH, Market, OrderFlow, OrderRequest
from capacity.scenario import Mix

SEED_MIX = Mix()  # limit 70, market 10, cancel 15, book 5; price_offset_ticks 10, marketable_percent 25
SYMBOLS = ("BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD")  # the seed scenarios' symbols
KINDS = ("limit", "market", "cancel", "book")
LIMIT, MARKET, CANCEL, BOOK = range(4)
PLAN_SIZE = 8192
MAX_RESTING = 100_000  # ids remembered for cancels (past this, a new id replaces a random one)
CANCEL_DONE = frozenset({404, 409})  # the order traded (or was cancelled) before the cancel arrived
_ID, _STATUS = b'{"id":', b'"status":"'
_RESTING = (b"new", b"partially_filled")


class _PlannedFlow(OrderFlow):
    """``OrderFlow`` whose cancels are placeholders: their order id is chosen when they are sent."""

    def cancel(self) -> OrderRequest | None:
        return OrderRequest("cancel", "DELETE", ORDERS_PATH + "/{id}", "cancel", "")


def resting_order_id(body: bytes) -> int | None:
    """The order id of a placement answer whose order rests on the book (new or partially filled), else
    None. Reads the bytes the exchange writes (``{"id":123,...,"status":"new",...}``), not JSON."""
    if not body.startswith(_ID):
        return None
    comma = body.find(b",", 6)
    at = body.find(_STATUS, comma)
    if comma < 0 or at < 0:
        return None
    at += len(_STATUS)
    if not body.startswith(_RESTING, at):
        return None
    try:
        return int(body[6:comma])
    except ValueError:
        return None


def fetch_market(url: str) -> Market:
    with urllib.request.urlopen(url + "/api/symbols", timeout=10) as response:
        return Market.from_symbols_response(json.load(response))


def plan(
    url: str,
    market: Market,
    symbols: Sequence[str] = SYMBOLS,
    mix: Mix = SEED_MIX,
    size: int = PLAN_SIZE,
    seed: int = 7,
) -> list[tuple[bytes, int]]:
    """``size`` requests drawn from ``mix``, encoded for ``url``: (request, kind); a cancel's request is
    empty (its id is chosen when it is sent)."""
    flow = _PlannedFlow(mix, symbols, market, random.Random(seed), "bench")
    host = host_header(url)
    out: list[tuple[bytes, int]] = []
    for _ in range(size):
        request = flow.next_request()
        kind = KINDS.index(request.kind)
        if kind == CANCEL:
            out.append((b"", CANCEL))
            continue
        body = None
        if request.body is not None:
            fields = {k: v for k, v in request.body.items() if k != "client_order_id"}
            body = orjson.dumps(fields)
        out.append((encode_request(request.method, request.path, host, body), kind))
    return out


class SeedMix(Requests):
    """The plan in turn, cancels filled in with learnt resting order ids; counts sent kinds and answers."""

    kinds = KINDS
    learns = frozenset({LIMIT})

    def __init__(self, url: str, planned: list[tuple[bytes, int]], seed: int = 11) -> None:
        super().__init__([request for request, _ in planned])
        self.planned = planned
        self.limits = [request for request, kind in planned if kind == LIMIT]
        host = host_header(url)
        self.cancel_head = f"DELETE {ORDERS_PATH}/".encode()
        self.cancel_tail = f" HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        self.resting: list[int] = []
        self.rng = random.Random(seed)
        self.sent_kinds: Counter[int] = Counter()
        self.answers: Counter[tuple[int, int]] = Counter()  # (kind, status)

    @classmethod
    def for_exchange(cls, url: str, size: int = PLAN_SIZE, seed: int = 7) -> SeedMix:
        return cls(url, plan(url, fetch_market(url), size=size, seed=seed))

    def next(self) -> tuple[bytes, int]:
        self.i += 1
        request, kind = self.planned[self.i % self.n]
        if kind == CANCEL:
            resting = self.resting
            if resting:
                at = int(self.rng.random() * len(resting))
                order_id = resting[at]
                resting[at] = resting[-1]
                resting.pop()
                request = b"%s%d%s" % (self.cancel_head, order_id, self.cancel_tail)
            else:  # nothing known to cancel yet: a limit order instead, as OrderFlow does
                request, kind = self.limits[self.i % len(self.limits)], LIMIT
        self.sent_kinds[kind] += 1
        return request, kind

    def answered(self, kind: int, status: int, body: bytes | None) -> bool:
        self.answers[kind, status] += 1
        if body is not None and status == 201:
            order_id = resting_order_id(body)
            if order_id is not None:
                if len(self.resting) < MAX_RESTING:
                    self.resting.append(order_id)
                else:
                    self.resting[int(self.rng.random() * MAX_RESTING)] = order_id
        return kind == CANCEL and status in CANCEL_DONE

    def report(self) -> dict:
        """Sent shares per kind (percent) and the answers' statuses per kind."""
        total = sum(self.sent_kinds.values()) or 1
        return {
            "sent_pct": {KINDS[k]: round(100 * n / total, 2) for k, n in sorted(self.sent_kinds.items())},
            "answers": {
                KINDS[k]: {str(s): n for (kk, s), n in sorted(self.answers.items()) if kk == k}
                for k in sorted({k for k, _ in self.answers})
            },
            "resting_known": len(self.resting),
        }
