"""Crash recovery: SIGKILL under load loses no acknowledged order; a failed journal is fatal and says so;
a corrupt journal stops start-up with one line and exit 2."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from capacity.run.exchange_process import EmbeddedExchange
from reference_exchange.api import order_json
from reference_exchange.config import Settings
from reference_exchange.engine import MatchingEngine, OrderStatus
from reference_exchange.instruments import default_instruments
from reference_exchange.journal import Journal, JournalError
from reference_exchange.server import create_app
from reference_exchange.service import ExchangeService

REPO = Path(__file__).resolve().parents[2]
INSTRUMENTS = default_instruments()
ORDER = {"symbol": "BTCUSD", "side": "buy", "type": "limit", "price": "60000", "quantity": "0.5"}


@contextlib.contextmanager
def pinned(cpus: list[int]):
    me = psutil.Process()
    before = me.cpu_affinity()
    if len(before) > 1:
        me.cpu_affinity([cpu for cpu in cpus if cpu in before] or before)
    try:
        yield
    finally:
        me.cpu_affinity(before)


async def replay_journal_async(path: Path) -> tuple[MatchingEngine, int]:
    """A fresh engine fed the journal, the way the server rebuilds itself at start-up."""
    engine = MatchingEngine(INSTRUMENTS)
    journal = Journal.open(str(path))
    try:
        return engine, ExchangeService(engine).replay(journal.replay())
    finally:
        await journal.close()


def replay_journal(path: Path) -> tuple[MatchingEngine, int]:
    return asyncio.run(replay_journal_async(path))


# --- SIGKILL under load --------------------------------------------------------------------------------


@dataclasses.dataclass
class Acks:
    places: dict[str, dict] = dataclasses.field(default_factory=dict)  # client_order_id -> 2xx body
    cancels: dict[int, dict] = dataclasses.field(default_factory=dict)  # order id -> 2xx body
    attempts: int = 0
    shed: int = 0  # 503: refused, not applied (a busy machine can make the loop lag past the limit)
    lost_in_flight: int = 0  # no answer: the process died first (never acknowledged)


def random_order(rng: random.Random, client_order_id: str) -> dict:
    """A mix that rests, crosses, partially fills and sweeps, on three symbols."""
    symbol, center = rng.choice([("BTCUSD", 60000), ("ETHUSD", 3000), ("SOLUSD", 150)])
    side = rng.choice(["buy", "sell"])
    quantity = str(rng.randint(1, 20))
    if rng.random() < 0.15:
        return {
            "symbol": symbol,
            "side": side,
            "type": "market",
            "quantity": quantity,
            "client_order_id": client_order_id,
        }
    offset = rng.randint(-5, 5)
    price = f"{center + offset}.{rng.choice(['00', '50'])}"
    tif = rng.choices(["gtc", "ioc", "fok"], weights=[8, 1, 1])[0]
    return {
        "symbol": symbol,
        "side": side,
        "type": "limit",
        "price": price,
        "quantity": quantity,
        "time_in_force": tif,
        "client_order_id": client_order_id,
    }


async def trade_until_killed(url: str, pid: int, workers: int, kill_after_s: float) -> Acks:
    acks = Acks()
    killed = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def trader(worker: int) -> None:
            rng = random.Random(worker)
            mine: list[int] = []  # own orders that were resting when acknowledged
            n = 0
            while not killed.is_set():
                n += 1
                acks.attempts += 1
                try:
                    if mine and rng.random() < 0.25:
                        order_id = mine.pop(rng.randrange(len(mine)))
                        async with session.delete(f"{url}/api/orders/{order_id}") as response:
                            body = await response.read()
                            if response.status == 200:
                                acks.cancels[order_id] = orjson.loads(body)
                            elif response.status == 503:
                                acks.shed += 1
                                mine.append(order_id)  # refused, so still resting
                            else:
                                assert response.status == 409, body  # filled meanwhile
                        continue
                    order = random_order(rng, f"w{worker}-{n}")
                    async with session.post(f"{url}/api/orders", json=order) as response:
                        body = await response.read()
                        if response.status == 503:
                            acks.shed += 1
                            continue
                        assert response.status in (200, 201), body
                        acked = orjson.loads(body)
                        acks.places[order["client_order_id"]] = acked
                        if acked["status"] in ("new", "partially_filled"):
                            mine.append(acked["id"])
                except (TimeoutError, aiohttp.ClientError):
                    acks.lost_in_flight += 1
                    return

        async def killer() -> None:
            await asyncio.sleep(kill_after_s)
            os.kill(pid, signal.SIGKILL)
            killed.set()

        await asyncio.gather(killer(), *(trader(worker) for worker in range(workers)))
    return acks


@pytest.mark.timeout(90)
def test_sigkill_mid_stream_loses_no_acknowledged_order(tmp_path: Path):
    journal_path = tmp_path / "journal.sqlite3"
    env = {"JOURNAL_PATH": str(journal_path), "JOURNAL_SYNC": "full", "LOG_LEVEL": "warning"}
    with pinned([0]):
        first = EmbeddedExchange(env=env, cpus=[1]).start()
        try:
            acks = asyncio.run(trade_until_killed(first.url, first.pid, workers=64, kill_after_s=1.5))
            assert first.process is not None and first.process.wait(10) == -signal.SIGKILL
        finally:
            first.stop()
    assert len(acks.places) > 200 and acks.cancels, "too little traffic before the kill to mean anything"
    assert acks.lost_in_flight > 0, "the kill did not land mid-stream"

    # What the journal says, replayed in this process: every acknowledged command is in it.
    engine, replayed = replay_journal(journal_path)
    assert replayed >= len(acks.places) + len(acks.cancels)
    for client_order_id, acked in acks.places.items():
        order = engine.get_order(acked["id"])
        recovered = order_json(order, INSTRUMENTS[order.symbol])
        for key in (
            "client_order_id",
            "symbol",
            "side",
            "type",
            "price",
            "quantity",
            "time_in_force",
            "timestamp_ns",
        ):
            assert recovered[key] == acked[key], (client_order_id, key)
        if acked["status"] in (
            "filled",
            "cancelled",
            "rejected",
        ):  # finished when acknowledged: unchanged since
            assert recovered == {k: v for k, v in acked.items() if k != "trades"}
        else:  # it may have traded or been cancelled since, never un-filled
            assert float(recovered["filled_quantity"]) >= float(acked["filled_quantity"])
    for order_id in acks.cancels:
        assert engine.get_order(order_id).status is OrderStatus.CANCELLED
    assert engine.audit() == []
    expected_checksums = {symbol: book.checksum() for symbol, book in engine.books.items()}

    # The restarted server rebuilt exactly that state from the same journal.
    with pinned([0]), EmbeddedExchange(env=env, cpus=[1]) as second:

        async def inspect() -> tuple[dict, dict[int, dict], dict]:
            async with aiohttp.ClientSession() as session:
                async with session.get(second.url + "/api/books/checksum") as response:
                    checksums = await response.json()
                found: dict[int, dict] = {}
                ids = [acked["id"] for acked in acks.places.values()]

                async def fetch(chunk: list[int]) -> None:
                    for order_id in chunk:
                        async with session.get(f"{second.url}/api/orders/{order_id}") as response:
                            assert response.status == 200, order_id
                            found[order_id] = await response.json()

                await asyncio.gather(*(fetch(ids[i::32]) for i in range(32)))
                async with session.post(second.url + "/api/orders", json=ORDER) as response:
                    assert response.status == 201
                    after_restart = await response.json()
            return checksums, found, after_restart

        checksums, found, after_restart = asyncio.run(inspect())
    assert checksums["checksums"] == expected_checksums
    assert checksums["journal_sequence"] == replayed
    assert checksums["resting_orders"] == engine.resting_order_count
    for acked in acks.places.values():
        order = engine.get_order(acked["id"])
        assert found[acked["id"]] == order_json(order, INSTRUMENTS[order.symbol])
    assert after_restart["id"] == engine.orders_accepted + 1  # ids continue, none reused
    print(
        f"\n[recovery] {acks.attempts} requests ({acks.shed} shed), SIGKILL after 1.5 s with "
        f"{acks.lost_in_flight} in flight; "
        f"acknowledged {len(acks.places)} orders + {len(acks.cancels)} cancels; journal held {replayed} "
        f"commands ({replayed - len(acks.places) - len(acks.cancels)} committed but never acknowledged); "
        f"recovered {len(found)}/{len(acks.places)} acknowledged orders, 0 lost; "
        f"checksums of {len(expected_checksums)} books match the replay"
    )


# --- a failed commit is fatal ------------------------------------------------------------------------------


async def test_failed_commit_is_fatal_until_restart(aiohttp_client, tmp_path: Path):
    path = tmp_path / "journal.sqlite3"
    journal = Journal.open(str(path))
    await journal.start()
    client = await aiohttp_client(
        create_app(dataclasses.replace(Settings(), journal_path=str(path)), journal)
    )
    first = await (await client.post("/api/orders", json=ORDER)).json()

    def broken_disk(rows):
        raise sqlite3.OperationalError("disk I/O error")

    journal._commit = broken_disk  # the next commit fails as a dying disk would make it
    failed = await client.post("/api/orders", json={**ORDER, "price": "59000"})
    assert failed.status == 503, await failed.text()
    error = (await failed.json())["error"]
    assert error["code"] == "journal_failed" and "disk I/O error" in error["message"]
    assert int(failed.headers["Retry-After"]) >= 1

    # From now on every write is refused up front, reads still work, and /health asks for a restart.
    resting_before = (await (await client.get("/api/metrics")).json())["data"]["resting_orders"]
    for response in (
        await client.post("/api/orders", json={**ORDER, "price": "58000"}),
        await client.delete(f"/api/orders/{first['id']}"),
    ):
        assert response.status == 503 and (await response.json())["error"]["code"] == "journal_failed"
    data = (await (await client.get("/api/metrics")).json())["data"]
    assert data["resting_orders"] == resting_before  # refused writes changed nothing
    assert data["journal_healthy"] is False and data["refused_journal_failed"] == 2
    assert (await client.get(f"/api/orders/{first['id']}")).status == 200
    health = await client.get("/health")
    assert health.status == 503
    body = await health.json()
    assert body["status"] == "unhealthy" and body["journal"] == "failed" and "restart" in body["reason"]
    text = await (await client.get("/metrics")).text()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["exchange_journal_healthy"].samples[0].value == 0

    await client.close()
    with pytest.raises(JournalError):
        await journal.close()  # the failed commit is still pending: close says so

    # A restart replays what was durable: the first order, not the one that got a 503.
    engine, replayed = await replay_journal_async(path)
    assert replayed == 1 and engine.get_order(first["id"]).client_order_id is None
    assert engine.resting_order_count == 1


# --- a journal that cannot be used stops start-up --------------------------------------------------------


def write_journal(path: Path, commands: list[dict]) -> None:
    async def write() -> None:
        journal = Journal.open(str(path))
        for command in commands:
            await journal.durable(journal.append(command))
        await journal.close()

    asyncio.run(write())


def place(price: int, order_id_hint: int = 0) -> dict:
    return {
        "op": "place",
        "symbol": "BTCUSD",
        "side": "buy",
        "type": "limit",
        "quantity": 1,
        "price": price,
        "tif": "gtc",
        "client_order_id": None,
        "ts": order_id_hint,
    }


def corrupt_body(path: Path) -> None:
    write_journal(path, [place(100), place(101), place(102)])
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute("UPDATE batches SET body = ? WHERE first_seq = 2", (b"{not json",))
    finally:
        connection.close()


def unknown_command(path: Path) -> None:
    write_journal(path, [place(100), {"op": "teleport", "order_id": 1}])


def impossible_cancel(path: Path) -> None:
    write_journal(path, [place(100), {"op": "cancel", "order_id": 99}])


def not_a_database(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite file at all, just some bytes " * 100)


def a_directory(path: Path) -> None:
    path.mkdir()


def truncated(path: Path) -> None:
    write_journal(path, [place(100 + i) | {"client_order_id": "x" * 60 + str(i)} for i in range(3000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (not_a_database, "is not a journal"),
        (corrupt_body, "the batch of commands 2..2 is not a JSON list"),
        (unknown_command, "command 2 cannot be replayed"),
        (impossible_cancel, "command 2 cannot be replayed (order 99 not found)"),
        (a_directory, "cannot be opened"),
        (truncated, "corrupt"),
    ],
)
def test_unusable_journal_stops_start_up_with_one_line_and_exit_2(tmp_path: Path, damage, needle):
    path = tmp_path / "journal.sqlite3"
    damage(path)
    env = {**os.environ, "JOURNAL_PATH": str(path), "SERVER_PORT": "0", "LOG_LEVEL": "warning"}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "reference_exchange"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"reference-exchange: error: journal {path}") and needle in lines[0], lines[0]
    assert "listening" not in result.stdout
    assert time.monotonic() - started < 20
