"""Journal: durability round trips, group commit, corruption handling, chaos latency and a SIGKILL test."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reference_exchange.engine import EngineError, MatchingEngine, OrderType, Side, TimeInForce
from reference_exchange.journal import Journal, JournalError
from reference_exchange.service import ExchangeService, PlaceCommand

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTCUSD", "ETHUSD", "SOLUSD"]


@pytest.fixture
def path(tmp_path: Path) -> str:
    return str(tmp_path / "journal.sqlite3")


async def append_all(journal: Journal, commands: list[dict]) -> list[int]:
    """Append every command first, then wait for all: the way concurrent requests reach the journal."""
    sequences = [journal.append(command) for command in commands]
    await asyncio.gather(*(journal.durable(seq) for seq in sequences))
    return sequences


async def test_round_trip_survives_reopen(path):
    commands = [{"op": "test", "i": i, "text": "é" * (i % 3)} for i in range(50)]
    journal = Journal.open(path)
    assert await append_all(journal, commands) == list(range(1, 51))
    assert journal.committed_sequence == journal.last_sequence == 50
    await journal.close()

    reopened = Journal.open(path)
    assert list(reopened.replay()) == commands
    assert reopened.last_sequence == 50
    assert reopened.append({"op": "test", "i": 50}) == 51  # sequence numbers continue
    await reopened.close()


async def test_group_commit_batches(path):
    journal = Journal.open(path)
    await append_all(journal, [{"i": i} for i in range(500)])
    assert journal.commands_committed == 500
    assert journal.commits < 50
    assert journal.mean_batch_size == 500 / journal.commits
    await journal.close()


async def test_concurrent_waiters_share_commits(path):
    """Appends that arrive while a commit is in flight go into the next commit together."""
    journal = Journal.open(path)

    async def client(i: int) -> None:
        for k in range(10):
            await journal.durable(journal.append({"client": i, "k": k}))

    await asyncio.gather(*(client(i) for i in range(50)))
    assert journal.commands_committed == 500
    assert journal.commits < 100
    assert journal.last_batch_size >= 1
    await journal.close()


def commit_starts(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The monotonic time at which each of ``journal``'s commits starts, filled in as they run."""
    starts: list[float] = []
    commit = journal._commit

    def timed(batch):
        starts.append(time.monotonic())
        return commit(batch)

    monkeypatch.setattr(journal, "_commit", timed)
    return starts


async def test_back_to_back_commits_start_the_commit_interval_apart(path, monkeypatch):
    journal = Journal.open(path, commit_interval_s=0.05)
    starts = commit_starts(journal, monkeypatch)
    # All appended before the first commit ends: every later commit has a batch waiting as the last ends.
    await append_all(journal, [{"i": i} for i in range(10)])
    assert len(starts) >= 2  # the first commit takes half of what waited after an idle spell
    assert all(later - earlier >= 0.05 for earlier, later in itertools.pairwise(starts))
    await journal.close()


async def test_an_idle_writer_commits_at_once_and_closing_cuts_the_interval_short(path, monkeypatch):
    journal = Journal.open(path, commit_interval_s=30.0)
    starts = commit_starts(journal, monkeypatch)
    await journal.durable(journal.append({"i": 0}))
    await asyncio.sleep(0.05)  # the writer goes idle
    started = time.monotonic()
    await journal.durable(journal.append({"i": 1}))  # a lone command: no interval after an idle spell
    assert time.monotonic() - started < 10
    await asyncio.sleep(0.05)  # idle again: the burst below wakes the writer, which commits half at once
    for i in range(2, 12):
        journal.append({"i": i})
    await asyncio.sleep(0.2)  # half committed, the rest waiting out the 30 s interval
    assert journal.committed_sequence < 12
    await asyncio.wait_for(journal.close(), 10)
    assert journal.committed_sequence == 12 and len(starts) == 4
    reopened = Journal.open(path)
    assert [command["i"] for command in reopened.replay()] == list(range(12))
    await reopened.close()


def test_open_refuses_a_commit_interval_that_is_not_seconds(path):
    for bad in (-0.001, float("nan"), float("inf")):
        with pytest.raises(JournalError, match="commit interval"):
            Journal.open(path, commit_interval_s=bad)


async def test_durable_waits_for_its_commit():
    journal = Journal.open(":memory:")
    journal.inject_latency(0.3, 5.0)
    started = time.monotonic()
    seq = journal.append({"op": "slow"})
    waiter = asyncio.ensure_future(journal.durable(seq))
    await asyncio.sleep(0.15)
    assert not waiter.done()
    assert journal.committed_sequence == 0
    await waiter
    assert time.monotonic() - started >= 0.3
    assert journal.committed_sequence == seq
    journal.clear_chaos()
    await journal.close()


async def test_cancelled_waiter_does_not_cancel_its_batch():
    journal = Journal.open(":memory:")
    journal.inject_latency(0.1, 5.0)
    first, second = journal.append({"i": 1}), journal.append({"i": 2})
    impatient = asyncio.ensure_future(journal.durable(first))
    patient = asyncio.ensure_future(journal.durable(second))
    await asyncio.sleep(0.02)
    impatient.cancel()
    await patient  # would raise CancelledError if the shared batch future had been cancelled
    assert journal.committed_sequence == 2
    await journal.close()


async def test_waiters_of_older_sequences_wake_with_their_own_commit():
    journal = Journal.open(":memory:")
    journal.inject_latency(0.1, 5.0)
    first = journal.append({"i": 1})
    await asyncio.sleep(0.02)  # the commit of 1 is in flight
    second, third = journal.append({"i": 2}), journal.append({"i": 3})
    late_third, late_second, late_first = (journal.durable(seq) for seq in (third, second, first))
    await late_first
    assert journal.committed_sequence == first and not late_second.done() and not late_third.done()
    await asyncio.gather(late_second, late_third)
    assert journal.committed_sequence == third
    journal.clear_chaos()
    await journal.close()


async def test_chaos_latency_expires_by_itself():
    journal = Journal.open(":memory:")
    assert journal.chaos_status() is None
    journal.inject_latency(0.5, 0.1)
    status = journal.chaos_status()
    assert status is not None
    assert status["type"] == "latency_injection"
    assert status["latency_ms"] == 500
    assert 0 < status["remaining_s"] <= 0.1
    await asyncio.sleep(0.15)
    assert journal.chaos_status() is None
    started = time.monotonic()
    await journal.durable(journal.append({"i": 1}))
    assert time.monotonic() - started < 0.5  # no longer delayed
    await journal.close()


async def test_inject_latency_rejects_bad_values():
    async with Journal.open(":memory:") as journal:
        with pytest.raises(ValueError):
            journal.inject_latency(-1, 1)
        with pytest.raises(ValueError):
            journal.inject_latency(0.1, 0)
        with pytest.raises(ValueError):
            journal.inject_latency(float("nan"), 1)


async def test_close_flushes_pending_commands(path):
    journal = Journal.open(path)
    for i in range(10):
        journal.append({"i": i})
    assert journal.pending == 10
    await journal.close()
    await journal.close()  # idempotent
    assert journal.pending == 0
    with pytest.raises(JournalError, match="closed"):
        journal.append({"i": 10})

    reopened = Journal.open(path)
    assert [command["i"] for command in reopened.replay()] == list(range(10))
    await reopened.close()


async def test_async_context_manager(path):
    async with Journal.open(path) as journal:
        journal.append({"i": 1})
    async with Journal.open(path) as journal:
        assert list(journal.replay()) == [{"i": 1}]


@pytest.mark.parametrize(("sync", "level"), [("full", 2), ("normal", 1), ("off", 0)])
async def test_sync_modes_map_to_pragma(path, sync, level):
    journal = Journal.open(path, sync=sync)
    settings = journal.settings()
    assert settings["synchronous"] == level
    assert settings["journal_mode"] == "wal"
    await journal.close()


def test_unknown_sync_mode():
    with pytest.raises(JournalError, match="sync mode 'always'"):
        Journal.open(":memory:", sync="always")


def test_garbage_file_is_refused(path):
    Path(path).write_bytes(b"this is not a journal\n" * 300)
    with pytest.raises(JournalError, match="is not a journal") as caught:
        Journal.open(path)
    assert path in str(caught.value)
    assert "\n" not in str(caught.value)


def test_empty_file_is_refused(path):
    Path(path).touch()  # an existing journal truncated to nothing must not become a fresh one
    with pytest.raises(JournalError, match="is not a journal") as caught:
        Journal.open(path)
    assert path in str(caught.value)


async def test_orphaned_wal_file_is_refused(path):
    journal = Journal.open(path)
    await journal.durable(journal.append({"i": 1}))
    os.rename(path, path + ".moved")  # the journal moved away while its WAL stayed behind
    with pytest.raises(JournalError, match="write-ahead log"):
        Journal.open(path)
    os.rename(path + ".moved", path)
    await journal.close()


def test_other_sqlite_database_is_refused(path):
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE users (name TEXT)")
    other.close()
    with pytest.raises(JournalError, match="is not a journal"):
        Journal.open(path)


async def test_unknown_format_version_is_refused(path):
    await Journal.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    raw.close()
    with pytest.raises(JournalError, match="format version 99") as caught:
        Journal.open(path)
    assert path in str(caught.value)


def test_version_1_journal_is_refused_not_misread(path):
    """Version 1 stored a row per command in a table version 2 does not read: name the version."""
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        raw.execute("CREATE TABLE commands (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        meta = [("format", "capacity-command-journal"), ("format_version", "1")]
        raw.executemany("INSERT INTO meta VALUES (?, ?)", meta)
        raw.execute("INSERT INTO commands VALUES (1, ?)", (b'{"op": "cancel", "order_id": 1}',))
    raw.close()
    with pytest.raises(JournalError, match="has format version 1, this exchange reads version 2"):
        Journal.open(path)


async def test_batch_that_does_not_hold_its_count_is_corrupt(path):
    journal = Journal.open(path)
    await append_all(journal, [{"i": i} for i in range(5)])
    await journal.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE batches SET count = count + 1 WHERE first_seq = 1")
    raw.close()
    reopened = Journal.open(path)
    with pytest.raises(JournalError, match=r"corrupt: the batch of commands 1\.\.\d+ is not a JSON list"):
        list(reopened.replay())
    await reopened.close()


async def test_commands_appended_during_a_commit_share_the_next_one(path):
    """One commit in flight at a time; what arrives meanwhile is committed together right after."""
    journal = Journal.open(path)
    journal.inject_latency(0.05, 5.0)
    first = journal.append({"i": 0})
    waiter = journal.durable(first)
    await asyncio.sleep(0.01)  # the first commit is in flight (sleeping in the injected latency)
    rest = [journal.append({"i": i}) for i in range(1, 11)]
    await asyncio.gather(waiter, *(journal.durable(seq) for seq in rest))
    assert journal.commits == 2 and journal.last_batch_size == 10
    journal.clear_chaos()
    await journal.close()
    reopened = Journal.open(path)
    assert [command["i"] for command in reopened.replay()] == list(range(11))
    await reopened.close()


async def test_corrupt_pages_fail_replay_loudly(path):
    journal = Journal.open(path)
    await append_all(journal, [{"i": i, "pad": "x" * 200} for i in range(2000)])
    await journal.close()
    size = os.path.getsize(path)
    with open(path, "r+b") as raw:  # keep page 1 (the header and schema), smash everything after it
        raw.seek(4096)
        raw.write(b"\xde\xad\xbe\xef" * ((size - 4096) // 4))
    with pytest.raises(JournalError, match=r"corrupt|not a journal") as caught:
        reopened = Journal.open(path)
        list(reopened.replay())
    assert path in str(caught.value)


async def test_second_process_cannot_open_a_journal_in_use(path):
    journal = Journal.open(path)
    await journal.durable(journal.append({"i": 1}))
    with pytest.raises(JournalError, match="in use"):
        Journal.open(path)
    await journal.close()


async def test_failed_commit_fails_its_waiters_and_stops_the_journal(path, monkeypatch):
    journal = Journal.open(path)
    await journal.durable(journal.append({"i": 0}))

    def broken_commit(rows):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(journal, "_commit", broken_commit)
    sequences = [journal.append({"i": i}) for i in range(1, 4)]
    results = await asyncio.gather(*(journal.durable(s) for s in sequences), return_exceptions=True)
    assert all(isinstance(result, JournalError) for result in results)
    assert "disk I/O error" in str(results[0])
    assert journal.error is not None
    with pytest.raises(JournalError):
        journal.append({"i": 4})
    with pytest.raises(JournalError):
        await journal.close()


async def test_engine_round_trip_through_the_service(path):
    rng = random.Random(7)
    engine = MatchingEngine(SYMBOLS)
    journal = Journal.open(path)
    service = ExchangeService(engine, journal)

    async def place() -> None:
        market = rng.random() < 0.1
        tif = rng.choice([TimeInForce.IOC, TimeInForce.FOK]) if market else rng.choice(list(TimeInForce))
        await service.place(
            PlaceCommand(
                symbol=rng.choice(SYMBOLS),
                side=rng.choice(list(Side)),
                type=OrderType.MARKET if market else OrderType.LIMIT,
                quantity=rng.randint(1, 20),
                price=None if market else rng.randint(990, 1010),
                time_in_force=tif,
                client_order_id=f"c{rng.randint(0, 400)}" if rng.random() < 0.2 else None,
            )
        )

    async def cancel() -> None:
        with contextlib.suppress(EngineError):  # already filled or cancelled: nothing journaled
            await service.cancel(rng.randint(1, max(1, engine.orders_accepted)))

    # Concurrent requests, so commits batch; the engine still sees them one at a time.
    for _ in range(6):
        await asyncio.gather(*((cancel if rng.random() < 0.25 else place)() for _ in range(60)))
    await journal.close()
    assert journal.commits < journal.commands_committed

    reopened = Journal.open(path)
    fresh = MatchingEngine(SYMBOLS)
    replayed = ExchangeService(fresh).replay(reopened.replay())
    await reopened.close()

    assert replayed == journal.commands_committed
    assert fresh.audit() == [] and engine.audit() == []
    for symbol in SYMBOLS:
        assert fresh.book(symbol).checksum() == engine.book(symbol).checksum()
        assert fresh.book(symbol).depth(50) == engine.book(symbol).depth(50)
    assert (fresh.orders_accepted, fresh.trades_executed) == (engine.orders_accepted, engine.trades_executed)
    assert fresh.resting_order_count == engine.resting_order_count


# Appends from 32 concurrent clients and prints "seq i" only once durable() returned.
CRASH_CHILD = """
import asyncio, itertools, sys
from reference_exchange.journal import Journal

async def main(path):
    journal = Journal.open(path, sync="full")
    counter = itertools.count()

    async def client():
        while True:
            i = next(counter)
            seq = journal.append({"op": "crash-test", "i": i})
            await journal.durable(seq)
            sys.stdout.write(f"{seq} {i}\\n")
            sys.stdout.flush()

    await asyncio.gather(*(client() for _ in range(32)))

asyncio.run(main(sys.argv[1]))
"""


async def test_acknowledged_commands_survive_sigkill(path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CRASH_CHILD, path], stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    assert child.stdout is not None
    lines: list[bytes] = []
    deadline = time.monotonic() + 10
    try:
        while len(lines) < 300 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
    finally:
        child.send_signal(signal.SIGKILL)  # mid-stream: commits are in flight
        lines += child.stdout.read().splitlines(keepends=True)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    acknowledged = [tuple(map(int, line.split())) for line in lines if line.endswith(b"\n")]
    assert len(acknowledged) >= 300, "the child did not acknowledge enough commands in time"

    journal = Journal.open(path)
    replayed = list(journal.replay())  # replay() itself checks sequences are 1, 2, 3, ... without gaps
    assert journal.last_sequence == len(replayed)
    for seq, i in acknowledged:
        assert seq <= len(replayed), f"acknowledged sequence {seq} was lost"
        assert replayed[seq - 1]["i"] == i
    await journal.close()
