"""The published request schemas (published_schemas.py) against the server's own checks, in process."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reference_exchange import published_schemas, schemas
from reference_exchange.config import parse_duration
from reference_exchange.instruments import DEFAULT_INSTRUMENTS, MAX_UNITS

QUICK = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
ORDER = Draft202012Validator(published_schemas.ORDER_REQUEST)
LOAD_TEST = Draft202012Validator(published_schemas.LOAD_TEST_REQUEST)


def test_space_is_what_str_strip_removes():
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()}
    assert {c for c in spaces if re.fullmatch(published_schemas.SPACE, c)} == spaces
    assert not re.fullmatch(published_schemas.SPACE, "\ufeff")


@pytest.mark.parametrize(
    ("low", "high", "exclusive"),
    [
        (schemas.MIN_LOAD_TEST_DURATION_S, schemas.MAX_LOAD_TEST_DURATION_S, False),
        (0, schemas.MAX_LOAD_TEST_DURATION_S, True),
        (schemas.MIN_CHAOS_DURATION_S, schemas.MAX_CHAOS_DURATION_S, False),
    ],
)
def test_every_duration_the_pattern_admits_is_in_range(low, high, exclusive):
    pattern = published_schemas.duration_pattern(low, high, exclusive_low=exclusive)

    @QUICK
    @given(st.from_regex(pattern))
    def check(text):
        seconds = parse_duration(text)
        assert (low < seconds if exclusive else low <= seconds) and seconds <= high, text

    check()
    for text in ("0", "0s", "0.0ms", "3601", "60.01m", "2h"):
        assert not re.search(pattern, text), text


@pytest.mark.parametrize("instrument", DEFAULT_INSTRUMENTS, ids=lambda i: i.symbol)
def test_every_amount_the_pattern_admits_is_accepted(instrument):
    for unit, convert in (
        (instrument.tick_size, instrument.price_to_ticks),
        (instrument.lot_size, instrument.quantity_to_lots),
    ):
        pattern = published_schemas.multiple_pattern(unit)

        @QUICK
        @given(st.from_regex(pattern))
        def check(text):
            assert 1 <= convert(text) <= MAX_UNITS  # noqa: B023 (run before the loop moves on)

        check()
        largest = MAX_UNITS * unit
        assert re.search(pattern, f" +{largest:f} ")
        for refused in ("0", f"{unit / 10:f}", f"{largest + unit:f}", "-1", "1e2", ""):
            assert not re.search(pattern, refused), refused


def test_the_four_disagreements_schemathesis_found_are_gone():
    order = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000.01", "quantity": "0.5"}
    assert ORDER.is_valid(order)
    assert not ORDER.is_valid({**order, "symbol": "DOGEUSD"})  # the server: 400 unknown_symbol
    assert not ORDER.is_valid({**order, "price": "60000.001"})  # off tick: 400 invalid_price
    assert not ORDER.is_valid({**order, "quantity": "0"})  # 400 invalid_quantity
    assert not ORDER.is_valid({**order, "type": "market"})  # 400 unexpected_price
    assert ORDER.is_valid({**{k: v for k, v in order.items() if k != "price"}, "type": "market"})
    assert not ORDER.is_valid({k: v for k, v in order.items() if k != "price"})  # 400 missing_price
    load = {"duration": "60s", "orders_per_second": 1, "concurrent_users": 1}
    assert LOAD_TEST.is_valid(load)
    assert not LOAD_TEST.is_valid({**load, "duration": "0"})
    assert not LOAD_TEST.is_valid({**load, "orders_per_second": 5e-324})
    # The server's own schemas are unchanged: its error codes come from its checks, as before.
    assert "enum" not in schemas.ORDER_REQUEST["properties"]["symbol"]
