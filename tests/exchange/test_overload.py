"""Overload in-process: the loop-lag monitor, shedding with 503 + Retry-After, and how it is reported."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from reference_exchange.api import EXCHANGE
from reference_exchange.config import ConfigError, Settings, load_settings, settings_from_env
from reference_exchange.http_guard import MIN_CONNECTIONS, connection_cap
from reference_exchange.journal import Journal
from reference_exchange.overload import LagMonitor
from reference_exchange.server import create_app

ORDER = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "0.5"}


def settings(**changes) -> Settings:
    return dataclasses.replace(Settings(journal_path=None), **changes)


async def error_of(response, status: int) -> dict:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]


async def block_loop(seconds: float) -> None:
    """Hog the event loop the way a burst of requests does: nothing else runs meanwhile."""
    time.sleep(seconds)
    await asyncio.sleep(0)


# --- config ------------------------------------------------------------------------------------------


def test_overload_max_lag_setting():
    assert Settings().overload_max_lag == 0.2
    assert settings_from_env({"OVERLOAD_MAX_LAG": "50ms"}).overload_max_lag == 0.05
    assert settings_from_env({"OVERLOAD_MAX_LAG": "1"}).overload_max_lag == 1.0
    assert load_settings(["--overload-max-lag", "0.3"], {"OVERLOAD_MAX_LAG": "1"}).overload_max_lag == 0.3
    for bad in ("0", "0s", "-1", "fast"):
        with pytest.raises(ConfigError, match=r"^OVERLOAD_MAX_LAG="):
            settings_from_env({"OVERLOAD_MAX_LAG": bad})


# --- the monitor -------------------------------------------------------------------------------------


async def test_monitor_sees_a_stall_while_it_happens_and_after():
    monitor = LagMonitor(0.05, interval_s=0.01)
    assert monitor.lag_s() == 0.0 and not monitor.overloaded()  # not started: never sheds
    monitor.start()
    await asyncio.sleep(0.05)
    assert monitor.samples >= 2 and not monitor.overloaded()

    samples = monitor.samples
    time.sleep(0.15)  # the loop is stuck: the pending wake-up is overdue right now
    assert monitor.lag_s() > 0.1 and monitor.overloaded()
    while monitor.samples == samples:  # the monitor wakes and records the stall
        await asyncio.sleep(0.001)
    assert monitor.max_seen_s > 0.1

    await asyncio.sleep(0.05)  # a few quiet samples later it is over
    assert not monitor.overloaded()
    assert monitor.stats()["loop_lag_max_ms"] > 100
    await monitor.stop()
    assert monitor.lag_s() == 0.0 and not monitor.running


def test_monitor_rejects_nonsense():
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            LagMonitor(bad)
    with pytest.raises(ValueError):
        LagMonitor(0.1, interval_s=0)


# --- shedding through HTTP ---------------------------------------------------------------------------


async def test_new_orders_are_shed_while_the_loop_lags_but_reads_and_cancels_are_not(aiohttp_client):
    client = await aiohttp_client(create_app(settings(overload_max_lag=0.1)))
    monitor = client.app[EXCHANGE].lag
    resting = await (await client.post("/api/orders", json=ORDER)).json()
    await asyncio.sleep(0.12)
    assert monitor.running and monitor.samples >= 1

    # A 300 ms stall starts just before the request is handled: the order is refused, not queued.
    stall = asyncio.ensure_future(block_loop(0.3))
    shed = await client.post("/api/orders", json=ORDER)
    await stall
    error = await error_of(shed, 503)
    assert error["code"] == "overloaded" and "behind" in error["message"]
    assert int(shed.headers["Retry-After"]) >= 1

    stall = asyncio.ensure_future(block_loop(0.3))
    book = await client.get("/api/orderbook/BTCUSD")
    await stall
    assert book.status == 200  # reads are never shed
    stall = asyncio.ensure_future(block_loop(0.3))
    cancel = await client.delete(f"/api/orders/{resting['id']}")
    await stall
    assert cancel.status == 200  # cancels reduce work and risk: not shed for lag

    for _ in range(40):  # caught up once the lag monitor's samples are on time again (longer on a busy host)
        await asyncio.sleep(0.1)
        if not (await (await client.get("/api/metrics")).json())["data"]["overloaded"]:
            break
    assert (await client.post("/api/orders", json=ORDER)).status == 201

    data = (await (await client.get("/api/metrics")).json())["data"]
    assert data["shed_loop_lag"] == 1 and data["shed_total"] == 1 and data["shed_pending"] == 0
    assert data["loop_lag_max_ms"] >= 200 and data["overloaded"] is False
    assert data["overload_max_lag_ms"] == 100 and data["journal_healthy"] is True
    assert data["shed_rate"] > 0  # the metrics window counts the 503 as shed, not as a server error
    families = {
        f.name: f for f in text_string_to_metric_families(await (await client.get("/metrics")).text())
    }
    shed_samples = {s.labels["reason"]: s.value for s in families["exchange_shed"].samples}
    assert shed_samples == {"pending": 0, "loop_lag": 1, "queue_delay": 0, "journal_failed": 0}
    assert "exchange_event_loop_lag_seconds" in families
    health = await (await client.get("/health")).json()
    # overloaded is the lag monitor's state now: a busy host can make one late sample after the recovery
    assert health == {
        "status": "ok",
        "uptime_seconds": health["uptime_seconds"],
        "journal": "disabled",
        "overloaded": health["overloaded"],
    }
    assert isinstance(health["overloaded"], bool)


@pytest.mark.parametrize(("max_pending", "max_connections", "bound"), [(0, 50, 50), (3, 50, 3), (0, 0, None)])
async def test_the_pending_bound_defaults_to_the_connection_cap(
    aiohttp_client, max_pending: int, max_connections: int, bound: int | None
):
    """Each connection waits on at most one order: a default below the cap would refuse orders for the
    number of clients, not for a slow journal."""
    app = create_app(settings(max_pending_orders=max_pending, max_connections=max_connections))
    data = (await (await (await aiohttp_client(app)).get("/api/metrics")).json())["data"]
    assert data["max_pending_orders"] == (bound or connection_cap(0))
    assert connection_cap(0) >= MIN_CONNECTIONS


async def test_orders_beyond_the_pending_bound_get_503_with_retry_after(aiohttp_client):
    journal = Journal.open(":memory:")
    await journal.start()
    try:
        client = await aiohttp_client(create_app(settings(max_pending_orders=3), journal))
        journal.inject_latency(0.2, 5)
        responses = await asyncio.gather(*(client.post("/api/orders", json=ORDER) for _ in range(8)))
        statuses = sorted(r.status for r in responses)
        assert statuses == [201] * 3 + [503] * 5
        for response in responses:
            if response.status == 503:
                assert (await error_of(response, 503))["code"] == "overloaded"
                assert response.headers["Retry-After"] == "1"
        journal.clear_chaos()
        data = (await (await client.get("/api/metrics")).json())["data"]
        assert data["shed_pending"] == 5 and data["pending_orders"] == 0
        assert data["resting_orders"] == 3  # shed orders never touched the book
    finally:
        journal.clear_chaos()
        await journal.close()
