"""Durable command journal: SQLite (stdlib ``sqlite3``) in WAL mode with group commit.

The service applies a command to the engine, ``append``s it here (cheap, synchronous, in apply
order) and awaits ``durable(seq)`` before acknowledging. A dedicated writer thread commits each
batch of buffered commands as one row in one transaction, so fsync never blocks the event loop.
While one batch commits, the next one accumulates. At start-up ``replay()`` yields every committed
command in sequence order to rebuild the engine.

When the next batch is already waiting as a commit finishes, the writer is busy back to back, and it
starts that commit no sooner than ``commit_interval_s`` after the last one started (as PostgreSQL's
``commit_delay`` and MySQL's ``binlog_group_commit_sync_delay`` do). An fsync costs the core about as
much as an order, and on a fast disk back-to-back commits carry only a few orders each: spacing them
gathers more orders per fsync, for a wait of up to the interval. A writer that went idle commits the
next command at once, so a lone client never waits for the interval.

The costs are per batch wherever they can be: one row (the batch's commands as one JSON array)
and one SQLite statement per commit, so the writer thread needs the GIL about once per commit, not
per command; one ``call_soon_threadsafe`` back per commit; and a wake-up of the thread only when
it had gone idle. Per command there is the orjson encoding and, for each waiter, a future that
the completion callback resolves (a waiter's own future, so cancelling it never touches its
batch-mates).

Durability by ``sync`` (``PRAGMA synchronous`` with ``journal_mode=WAL``):

- ``full``   (FULL): the WAL is fsynced at every commit. No acknowledged command is lost on a
  process crash, an OS crash or a power loss (given a disk that honours fsync).
- ``normal`` (NORMAL): the WAL is fsynced only at checkpoints. Safe against a process crash
  (SIGKILL): committed data is in the OS page cache. An OS crash or power loss may lose the
  last commits, i.e. commands that were already acknowledged; the file stays consistent.
- ``off``    (OFF): no fsync at all. An OS crash or power loss may lose commits and may corrupt
  the file. For throughput experiments only.

Format version 2 holds ``batches(first_seq INTEGER PRIMARY KEY, count INTEGER, body BLOB)``: each
row is one commit, ``body`` the orjson array of its ``count`` commands, sequences ``first_seq``
onwards. ``meta(key, value)`` names the format and its version. A file that exists but is not a
journal, is corrupt, or has another format version (version 1 stored a row per command) raises
``JournalError``: the journal never silently starts empty. The file is opened in exclusive locking
mode, so a second process (a second exchange) cannot append to the same journal.

After a failed commit the journal is failed for good (fail-stop): the engine has already applied
commands that are not durable, and later commands may depend on them (a cancel of a lost order),
so the process must restart and replay rather than keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import sqlite3
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, Final

import orjson

FORMAT_NAME: Final = "capacity-command-journal"
FORMAT_VERSION: Final = 2
SYNC_MODES: Final = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
LOCK_TIMEOUT_S: Final = 0.2  # how long open() waits for another process's lock before giving up
REPLAY_CHUNK: Final = 100  # batches read per query during replay: bounded memory, short lock holds

_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE batches (first_seq INTEGER PRIMARY KEY, count INTEGER NOT NULL, body BLOB NOT NULL)",
)
# Autocommit (isolation_level=None): this one statement is the whole transaction, fsync included.
_INSERT: Final = "INSERT INTO batches (first_seq, count, body) VALUES (?, ?, ?)"

Batch = tuple[int, int, bytes]  # (first sequence, command count, orjson array of the commands)


class JournalError(Exception):
    """The journal cannot be opened, read or written. The message is one line naming the file."""


class Journal:
    """A ``CommandLog`` backed by SQLite with group commit. Create it with ``Journal.open``.

    ``append`` and ``durable`` must be called from the event loop thread. Sequence numbers start at
    1 and are contiguous. ``last_sequence`` is the highest appended (not necessarily committed)
    sequence; ``committed_sequence`` the highest one known to be durable.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: str,
        sync: str,
        last_sequence: int,
        commit_interval_s: float = 0.0,
    ) -> None:
        """Use ``Journal.open``; this takes an already validated connection."""
        self.path = path
        self.sync = sync
        self.commit_interval_s = commit_interval_s
        self._conn = connection
        self._conn_lock = threading.Lock()  # the writer thread and replay() share one connection
        self._last_appended = last_sequence
        self._committed = last_sequence
        # Encoded commands appended but not yet taken by the writer thread. The loop thread appends,
        # the writer pops from the left: both atomic under the GIL, so neither needs a lock.
        self._bodies: deque[bytes] = deque()
        # durable() calls not yet satisfied: sequences (sorted) and their futures, side by side so
        # that a waiter costs no tuple and a commit finds its waiters with one bisect.
        self._waiting_for: list[int] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._wakeup = threading.Condition()  # wakes the writer when idle (appends) or pacing (close)
        self._writer_idle = False  # True while the writer thread waits for work (or is about to)
        self._stopped: asyncio.Future[None] | None = None  # done once the thread let go of the file
        self._closing = False
        self._close_task: asyncio.Future[None] | None = None
        self._error: JournalError | None = None
        # (latency s, monotonic deadline s) of a chaos injection; read by the writer thread.
        self._chaos: tuple[float, float] | None = None
        # Stats for metrics, updated on the event loop thread after each commit.
        self.commits = 0
        self.commands_committed = 0
        self.last_batch_size = 0
        # Time in the commit statement, fsync and retaking the GIL included, injected latency not.
        self.commit_seconds_total = 0.0

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, sync: str = "full", commit_interval_s: float = 0.0) -> Journal:
        """Open the journal at ``path`` (``":memory:"`` for tests), creating it if it does not exist.
        ``commit_interval_s`` is the least time between the starts of back-to-back commits (see above).

        Raises ``JournalError`` if the file is not a journal, is corrupt, has an unknown format
        version, is locked by another process, ``sync`` is not full, normal or off, or the interval is
        not a finite number of seconds >= 0.
        """
        if sync not in SYNC_MODES:
            raise JournalError(f"journal sync mode {sync!r} is not one of {', '.join(SYNC_MODES)}")
        if not (math.isfinite(commit_interval_s) and commit_interval_s >= 0):
            raise JournalError(f"journal commit interval must be seconds >= 0, got {commit_interval_s!r}")
        memory = path == ":memory:"
        new = memory or not os.path.exists(path)
        if new and os.path.exists(path + "-wal"):
            # SQLite could attach this orphaned log to the new file; the journal was moved without it.
            raise JournalError(
                f"journal {path} is missing but its write-ahead log {path}-wal exists: "
                "restore the journal file, or delete the -wal file to start a new journal"
            )
        try:
            connection = sqlite3.connect(
                path, timeout=LOCK_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise JournalError(_explain(path, exc)) from exc
        try:
            last_sequence = _prepare(connection, path, sync, new, memory)
        except BaseException as exc:
            connection.close()
            if new and not memory:  # a half-created file would be refused as "not a journal" next time
                with contextlib.suppress(OSError):
                    if os.path.getsize(path) == 0:
                        os.remove(path)
            if isinstance(exc, sqlite3.Error):
                raise JournalError(_explain(path, exc)) from exc
            raise
        return cls(connection, path, sync, last_sequence, commit_interval_s)

    # -- reading -------------------------------------------------------------------------------

    @property
    def last_sequence(self) -> int:
        """Highest sequence number appended so far (0 for an empty journal)."""
        return self._last_appended

    @property
    def committed_sequence(self) -> int:
        """Highest sequence number known to be committed."""
        return self._committed

    @property
    def pending(self) -> int:
        """Commands appended but not yet committed."""
        return self._last_appended - self._committed

    @property
    def mean_batch_size(self) -> float:
        """Commands per commit since this journal was opened (0.0 before the first commit)."""
        return self.commands_committed / self.commits if self.commits else 0.0

    @property
    def error(self) -> JournalError | None:
        """The failure that stopped the journal, or None while it is healthy."""
        return self._error

    def replay(self) -> Iterator[dict[str, Any]]:
        """Yield every committed command in sequence order. Raises ``JournalError`` on corruption
        or a gap in the sequence. Meant for start-up, before the first append."""
        after = 0
        while rows := self._read_chunk(after):
            for first, count, body in rows:
                if first != after + 1:
                    raise JournalError(f"journal {self.path} is corrupt: sequence {first} follows {after}")
                try:
                    commands = orjson.loads(body)
                except orjson.JSONDecodeError:
                    commands = None
                if not isinstance(commands, list) or len(commands) != count:
                    raise JournalError(
                        f"journal {self.path} is corrupt: the batch of commands {first}..{first + count - 1} "
                        f"is not a JSON list of {count}"
                    )
                after = first + count - 1
                yield from commands

    def _read_chunk(self, after: int) -> list[tuple[int, int, bytes]]:
        sql = "SELECT first_seq, count, body FROM batches WHERE first_seq > ? ORDER BY first_seq LIMIT ?"
        try:
            with self._conn_lock:
                return self._conn.execute(sql, (after, REPLAY_CHUNK)).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(_explain(self.path, exc)) from exc

    def settings(self) -> dict[str, Any]:
        """SQLite's live settings (journal_mode, synchronous as 0=OFF 1=NORMAL 2=FULL, locking_mode)."""
        with self._conn_lock:
            return {
                name: self._conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "locking_mode")
            }

    # -- writing -------------------------------------------------------------------------------

    def append(self, command: Mapping[str, Any]) -> int:
        """Serialise and buffer ``command``; return its sequence number. Event loop thread only.

        Raises ``JournalError`` once the journal is closed or failed, and orjson's TypeError for
        a command that is not JSON-serialisable (no sequence number is used up then)."""
        if self._error is not None:
            raise JournalError(str(self._error))
        if self._closing:
            raise JournalError(f"journal {self.path} is closed")
        self._bodies.append(orjson.dumps(command))
        self._last_appended += 1
        # Read after appending: the writer sets the flag before it looks for work (see _take).
        if self._writer_idle:
            self._writer_idle = False  # one wake-up per idle spell, not one per command
            with self._wakeup:
                self._wakeup.notify()
        elif self._thread is None and _loop_running():
            self._start_writer()
        return self._last_appended

    def durable(self, sequence: int) -> asyncio.Future[None]:
        """A future done once a commit containing ``sequence`` has finished. It fails with
        ``JournalError`` if that commit failed, ``ValueError`` if ``sequence`` was never appended.

        Each call gets a future of its own: cancelling it leaves the commit and its other waiters be."""
        loop = self._loop or self._start_writer()
        waiter = loop.create_future()
        if self._committed < sequence <= self._last_appended and self._error is None:
            waiting_for = self._waiting_for
            if not waiting_for or waiting_for[-1] <= sequence:  # the usual case: the newest command
                waiting_for.append(sequence)
                self._waiters.append(waiter)
            else:  # an older sequence (a retry waiting for its first attempt): keep the order
                at = bisect_right(waiting_for, sequence)
                waiting_for.insert(at, sequence)
                self._waiters.insert(at, waiter)
        elif sequence <= self._committed:
            waiter.set_result(None)
        elif sequence > self._last_appended:
            waiter.set_exception(
                ValueError(f"sequence {sequence} was never appended (last is {self._last_appended})")
            )
        else:
            waiter.set_exception(JournalError(str(self._error)))
        return waiter

    async def start(self) -> None:
        """Start the writer thread (``append``/``durable`` also start it on first use)."""
        self._start_writer()

    def _start_writer(self) -> asyncio.AbstractEventLoop:
        if self._loop is not None:
            return self._loop
        if self._close_task is not None and self._close_task.done():
            raise JournalError(f"journal {self.path} is closed")
        loop = self._loop = asyncio.get_running_loop()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(target=self._write, name=f"journal-writer {self.path}", daemon=True)
        self._thread.start()
        return loop

    def _write(self) -> None:
        """Writer thread: commit batches until closed and drained, or until a commit fails.

        It takes the next batch itself once a commit is durable (and the commit interval has
        passed), while it holds the GIL anyway: while busy it needs the GIL once per commit and no
        wake-up from the loop."""
        taken = self._committed
        batch: Batch | None = None
        not_before = 0.0  # the monotonic time before which a back-to-back commit does not start
        try:
            while batch := self._take(taken + 1, not_before):
                taken += batch[1]
                not_before = time.monotonic() + self.commit_interval_s
                elapsed_s = self._commit(batch)
                self._notify(self._on_committed, taken, batch[1], elapsed_s)
        except BaseException as exc:
            self._notify(self._fail, exc, batch)
        finally:
            self._close_connection()  # may checkpoint the WAL into the main file: off the loop
            self._notify(self._on_stopped)

    def _take(self, first: int, not_before: float) -> Batch | None:
        """Writer thread: the next batch, waiting for one if need be; None once closed and drained.

        A batch already waiting is taken at ``not_before`` at the earliest (the commit interval),
        or as soon as the journal is closing. After waiting idle it takes at once, and the older half
        only. Committing everything would leave the loop nothing to do until the commit is durable,
        and wake every waiter at once to append again at once: closed-loop clients would move in
        lockstep with the disk. With half in flight, the other half's commit follows the first,
        while the loop serves the first half's waiters, so the loop and the disk work side by side."""
        bodies = self._bodies
        split = False
        if not bodies:
            with self._wakeup:
                self._writer_idle = True  # before looking again: an append now sees it and wakes us
                while not bodies and not self._closing:
                    self._wakeup.wait()
                self._writer_idle = False
            split = True
        elif (wait_s := not_before - time.monotonic()) > 0:
            with self._wakeup:  # the loop goes on adding to this batch; close() ends the wait
                if not self._closing:
                    self._wakeup.wait(wait_s)
        count = len(bodies)
        if count == 0:
            return None
        if split:
            count = (count + 1) // 2
        return first, count, b"[" + b",".join([bodies.popleft() for _ in range(count)]) + b"]"

    def _notify(self, callback: Callable[..., None], *args: Any) -> None:
        """Writer thread: run ``callback`` on the loop thread."""
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop was closed without closing the journal
            self._loop.call_soon_threadsafe(callback, *args)

    def _commit(self, batch: Batch) -> float:
        """Writer thread: one transaction, one row for the whole batch. Returns seconds in SQLite."""
        delay_s = self._chaos_delay()
        if delay_s > 0:
            time.sleep(delay_s)
        started = time.perf_counter()
        with self._conn_lock:
            self._conn.execute(_INSERT, batch)
        return time.perf_counter() - started

    def _on_committed(self, high: int, batch_size: int, elapsed_s: float) -> None:
        """Loop thread, once per commit: wake the waiters of every sequence up to ``high``."""
        self._committed = high
        self.commits += 1
        self.commands_committed += batch_size
        self.last_batch_size = batch_size
        self.commit_seconds_total += elapsed_s
        waiters = self._waiters
        done = bisect_right(self._waiting_for, high)
        del self._waiting_for[:done]
        self._waiters = waiters[done:]
        for waiter in waiters[:done]:
            if not waiter.done():  # a cancelled waiter
                waiter.set_result(None)

    def _fail(self, exc: BaseException, batch: Batch | None) -> None:
        """Fail-stop: every waiter, of this batch and of anything buffered since, gets the error."""
        if isinstance(exc, sqlite3.Error):
            reason = _explain(self.path, exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        if batch is not None and batch[0] > self._committed:
            what = f"commit of sequences {batch[0]}..{batch[0] + batch[1] - 1} failed ({reason})"
        else:
            what = f"writer stopped ({reason})"
        self._error = JournalError(f"journal {self.path}: {what}; restart the exchange to replay the journal")
        self._bodies.clear()
        waiters, self._waiters, self._waiting_for = self._waiters, [], []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(JournalError(str(self._error)))

    def _on_stopped(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    # -- closing -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Commit what is buffered, stop the writer and close the file. Idempotent.

        Raises ``JournalError`` if appended commands could not be committed."""
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close())
        await asyncio.shield(self._close_task)
        if self._error is not None and self.pending:
            raise JournalError(str(self._error))

    async def _close(self) -> None:
        self._closing = True
        if self._bodies and self._error is None:
            self._start_writer()
        if self._thread is None:
            self._close_connection()
            return
        with self._wakeup:
            self._wakeup.notify()  # an idle writer sees _closing, commits what is left and stops
        assert self._stopped is not None
        await self._stopped

    def _close_connection(self) -> None:
        with self._conn_lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()

    async def __aenter__(self) -> Journal:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- chaos ---------------------------------------------------------------------------------

    def inject_latency(self, latency_s: float, duration_s: float) -> None:
        """Sleep ``latency_s`` seconds before every commit that starts in the next ``duration_s``
        seconds (monotonic clock); replaces any injection in progress. Raises ValueError."""
        if not (math.isfinite(latency_s) and latency_s >= 0):
            raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency_s!r}")
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"duration must be a finite number of seconds > 0, got {duration_s!r}")
        # One tuple, assigned at once, so the writer thread never sees a latency with a stale deadline.
        self._chaos = (latency_s, time.monotonic() + duration_s)

    def clear_chaos(self) -> None:
        """End any latency injection now."""
        self._chaos = None

    def chaos_status(self) -> dict[str, Any] | None:
        """The injection in progress, or None: ``{"type", "latency_ms", "remaining_s"}``."""
        chaos = self._chaos
        if chaos is None:
            return None
        remaining_s = chaos[1] - time.monotonic()
        if remaining_s <= 0:
            return None
        return {
            "type": "latency_injection",
            "latency_ms": round(chaos[0] * 1000, 3),
            "remaining_s": round(remaining_s, 3),
        }

    def _chaos_delay(self) -> float:
        """Seconds to sleep before the next commit (writer thread)."""
        chaos = self._chaos
        if chaos is None or time.monotonic() >= chaos[1]:
            return 0.0
        return chaos[0]


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _prepare(connection: sqlite3.Connection, path: str, sync: str, new: bool, memory: bool) -> int:
    """Lock, create the schema if new, switch to WAL, check the format; return the last sequence."""
    # Exclusive before the first access: held until close, and WAL then needs no shared-memory file.
    connection.execute("PRAGMA locking_mode=EXCLUSIVE")
    if new:
        # Created in rollback mode (durable on commit) before switching to WAL, so the main file
        # holds the schema even if the WAL file is later lost.
        connection.execute("BEGIN")
        for statement in _SCHEMA:
            connection.execute(statement)
        connection.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("format", FORMAT_NAME), ("format_version", str(FORMAT_VERSION))],
        )
        connection.execute("COMMIT")
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if not memory and mode != "wal":
        raise JournalError(f"journal {path} cannot use WAL mode (SQLite kept {mode!r})")
    connection.execute(f"PRAGMA synchronous={SYNC_MODES[sync]}")
    # On macOS plain fsync does not flush the drive's cache; F_FULLFSYNC does (ignored elsewhere).
    connection.execute(f"PRAGMA fullfsync={'ON' if sync == 'full' else 'OFF'}")
    _check_format(connection, path)
    last = connection.execute("SELECT first_seq + count - 1 FROM batches ORDER BY first_seq DESC LIMIT 1")
    row = last.fetchone()
    return 0 if row is None else row[0]


def _check_format(connection: sqlite3.Connection, path: str) -> None:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        raise JournalError(
            f"journal {path} is not a journal (empty file or database): "
            "delete it to start a new journal, or set JOURNAL_PATH"
        )
    if "meta" not in tables:  # meta first: a journal of another version has other tables
        raise JournalError(
            f"journal {path} is not a journal (an SQLite database of something else): "
            "move it away or set JOURNAL_PATH"
        )
    meta = dict(connection.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != FORMAT_NAME:
        found = meta.get("format")
        raise JournalError(
            f"journal {path} is not a journal (format {found!r}): move it away or set JOURNAL_PATH"
        )
    version = meta.get("format_version")
    if version != str(FORMAT_VERSION):
        raise JournalError(
            f"journal {path} has format version {version}, this exchange reads version {FORMAT_VERSION}: "
            "use a matching exchange version or set JOURNAL_PATH"
        )
    if "batches" not in tables:
        raise JournalError(f"journal {path} is corrupt (its batches table is missing): move it away")


def _explain(path: str, exc: sqlite3.Error) -> str:
    """One line for an SQLite error: what it means for the operator and what to do."""
    text = str(exc)
    if "file is not a database" in text:
        return f"journal {path} is not a journal ({text}): move it away or set JOURNAL_PATH"
    if "malformed" in text or "corrupt" in text:
        return f"journal {path} is corrupt ({text}): restore it from a backup or move it away"
    if "locked" in text or "busy" in text:
        return f"journal {path} is in use by another process ({text}): stop it or set JOURNAL_PATH"
    if "unable to open" in text:
        return f"journal {path} cannot be opened ({text}): check that its directory exists and is writable"
    return f"journal {path}: {type(exc).__name__}: {text}"
