"""Durable command journal: SQLite (stdlib ``sqlite3``) in WAL mode with group commit.

The service applies a command to the engine, ``append``s it here (cheap, synchronous, in apply
order) and awaits ``durable(seq)`` before acknowledging. One background writer task commits
everything buffered in a single transaction on a dedicated worker thread, so fsync never blocks
the event loop; whatever is appended while that commit runs goes into the next one together. At
start-up ``replay()`` yields every committed command in sequence order to rebuild the engine.

Durability by ``sync`` (``PRAGMA synchronous`` with ``journal_mode=WAL``):

- ``full``   (FULL): the WAL is fsynced at every commit. No acknowledged command is lost on a
  process crash, an OS crash or a power loss (given a disk that honours fsync).
- ``normal`` (NORMAL): the WAL is fsynced only at checkpoints. Safe against a process crash
  (SIGKILL): committed data is in the OS page cache. An OS crash or power loss may lose the
  last commits, i.e. commands that were already acknowledged; the file stays consistent.
- ``off``    (OFF): no fsync at all. An OS crash or power loss may lose commits and may corrupt
  the file. For throughput experiments only.

The file holds ``commands(seq INTEGER PRIMARY KEY, body BLOB)`` with orjson bodies and
``meta(key, value)`` naming the format and its version. A file that exists but is not a journal,
is corrupt, or has another format version raises ``JournalError``: the journal never silently
starts empty. The file is opened in exclusive locking mode, so a second process (a second
exchange) cannot append to the same journal and interleave sequence numbers.

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
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Final

import orjson

FORMAT_NAME: Final = "capacity-command-journal"
FORMAT_VERSION: Final = 1
SYNC_MODES: Final = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}
LOCK_TIMEOUT_S: Final = 0.2  # how long open() waits for another process's lock before giving up
REPLAY_CHUNK: Final = 1000  # rows read per query during replay: bounded memory, short lock holds

_SCHEMA: Final = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE commands (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)",
)


class JournalError(Exception):
    """The journal cannot be opened, read or written. The message is one line naming the file."""


class Journal:
    """A ``CommandLog`` backed by SQLite with group commit. Create it with ``Journal.open``.

    ``append`` must be called from the event loop thread. Sequence numbers start at 1 and are
    contiguous. ``last_sequence`` is the highest appended (not necessarily committed) sequence;
    ``committed_sequence`` the highest one known to be durable.
    """

    def __init__(self, connection: sqlite3.Connection, path: str, sync: str, last_sequence: int) -> None:
        """Use ``Journal.open``; this takes an already validated connection."""
        self.path = path
        self.sync = sync
        self._conn = connection
        self._conn_lock = threading.Lock()  # the writer thread and replay() share one connection
        self._last_appended = last_sequence
        self._committed = last_sequence
        self._buffer: list[tuple[int, bytes]] = []  # (seq, body) appended but not yet taken by a commit
        # One future per batch, not per command: waiters of buffered commands share _next_batch;
        # waiters of the commit in flight (sequences up to _inflight_high) share _inflight.
        self._next_batch: asyncio.Future[None] | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._inflight_high = last_sequence
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._writer: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._close_task: asyncio.Future[None] | None = None
        self._error: JournalError | None = None
        # (latency s, monotonic deadline s) of a chaos injection; read by the writer thread.
        self._chaos: tuple[float, float] | None = None
        # Stats for metrics, updated on the event loop thread after each commit.
        self.commits = 0
        self.commands_committed = 0
        self.last_batch_size = 0
        self.commit_seconds_total = 0.0  # time inside SQLite commits, excluding injected latency

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, sync: str = "full") -> Journal:
        """Open the journal at ``path`` (``":memory:"`` for tests), creating it if it does not exist.

        Raises ``JournalError`` if the file is not a journal, is corrupt, has an unknown format
        version, is locked by another process, or ``sync`` is not full, normal or off.
        """
        if sync not in SYNC_MODES:
            raise JournalError(f"journal sync mode {sync!r} is not one of {', '.join(SYNC_MODES)}")
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
        return cls(connection, path, sync, last_sequence)

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
            for seq, body in rows:
                if seq != after + 1:
                    raise JournalError(f"journal {self.path} is corrupt: sequence {seq} follows {after}")
                try:
                    command = orjson.loads(body)
                except orjson.JSONDecodeError as exc:
                    raise JournalError(f"journal {self.path} is corrupt: command {seq} is not JSON") from exc
                after = seq
                yield command

    def _read_chunk(self, after: int) -> list[tuple[int, bytes]]:
        sql = "SELECT seq, body FROM commands WHERE seq > ? ORDER BY seq LIMIT ?"
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
        body = orjson.dumps(command)
        self._last_appended += 1
        self._buffer.append((self._last_appended, body))
        if self._wakeup is not None:
            self._wakeup.set()
        elif _loop_running():
            self._start_writer()
        return self._last_appended

    async def durable(self, sequence: int) -> None:
        """Return once a commit containing ``sequence`` has finished; raise ``JournalError`` if it failed."""
        if sequence <= self._committed:
            return
        if sequence > self._last_appended:
            raise ValueError(f"sequence {sequence} was never appended (last is {self._last_appended})")
        if self._error is not None:
            raise JournalError(str(self._error))
        self._start_writer()
        # shield: a cancelled waiter must not cancel the future its whole batch shares.
        await asyncio.shield(self._batch_future(sequence))

    def _batch_future(self, sequence: int) -> asyncio.Future[None]:
        assert self._loop is not None
        if sequence <= self._inflight_high:
            if self._inflight is None:
                self._inflight = self._loop.create_future()
            return self._inflight
        if self._next_batch is None:
            self._next_batch = self._loop.create_future()
        return self._next_batch

    async def start(self) -> None:
        """Start the background writer (``append``/``durable`` also start it on first use)."""
        self._start_writer()

    def _start_writer(self) -> None:
        if self._writer is not None:
            return
        if self._close_task is not None and self._close_task.done():
            raise JournalError(f"journal {self.path} is closed")
        self._loop = asyncio.get_running_loop()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-writer")
        self._writer = self._loop.create_task(self._write_loop(), name=f"journal-writer {self.path}")
        if self._buffer:
            self._wakeup.set()

    async def _write_loop(self) -> None:
        """Commit whatever is buffered, one transaction at a time, until closed and drained."""
        assert self._wakeup is not None and self._loop is not None
        rows: list[tuple[int, bytes]] = []
        try:
            while self._buffer or not self._closing:
                if not self._buffer:
                    await self._wakeup.wait()
                    self._wakeup.clear()
                    continue
                rows, self._buffer = self._buffer, []
                self._inflight, self._next_batch = self._next_batch, None
                self._inflight_high = rows[-1][0]
                elapsed_s = await self._loop.run_in_executor(self._executor, self._commit, rows)
                self._committed = self._inflight_high
                self._count_commit(len(rows), elapsed_s)
                waiters, self._inflight = self._inflight, None
                if waiters is not None and not waiters.done():
                    waiters.set_result(None)
        except BaseException as exc:
            self._fail(rows, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def _commit(self, rows: list[tuple[int, bytes]]) -> float:
        """Writer thread: one transaction for the whole batch. Returns seconds spent in SQLite."""
        delay_s = self._chaos_delay()
        if delay_s > 0:
            time.sleep(delay_s)
        started = time.perf_counter()
        with self._conn_lock:
            try:
                self._conn.execute("BEGIN")
                self._conn.executemany("INSERT INTO commands (seq, body) VALUES (?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise
        return time.perf_counter() - started

    def _count_commit(self, batch_size: int, elapsed_s: float) -> None:
        self.commits += 1
        self.commands_committed += batch_size
        self.last_batch_size = batch_size
        self.commit_seconds_total += elapsed_s

    def _fail(self, rows: list[tuple[int, bytes]], exc: BaseException) -> None:
        """Fail-stop: every waiter, of this batch and of anything buffered since, gets the error."""
        if isinstance(exc, asyncio.CancelledError):
            reason = "the writer task was cancelled"
        elif isinstance(exc, sqlite3.Error):
            reason = _explain(self.path, exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        if rows and self._committed < rows[-1][0]:
            what = f"commit of sequences {rows[0][0]}..{rows[-1][0]} failed ({reason})"
        else:
            what = f"writer stopped ({reason})"
        self._error = JournalError(f"journal {self.path}: {what}; restart the exchange to replay the journal")
        self._buffer = []
        for waiters in (self._inflight, self._next_batch):
            if waiters is not None and not waiters.done():
                waiters.set_exception(JournalError(str(self._error)))
        self._inflight = self._next_batch = None

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
        if self._buffer and self._error is None:
            self._start_writer()
        if self._writer is not None and self._wakeup is not None:
            self._wakeup.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if self._executor is not None and self._loop is not None:
            # Closing may checkpoint the WAL into the main file: keep that off the event loop.
            await self._loop.run_in_executor(self._executor, self._close_connection)
            self._executor.shutdown(wait=False)
        else:
            self._close_connection()

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
    return connection.execute("SELECT coalesce(max(seq), 0) FROM commands").fetchone()[0]


def _check_format(connection: sqlite3.Connection, path: str) -> None:
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        raise JournalError(
            f"journal {path} is not a journal (empty file or database): "
            "delete it to start a new journal, or set JOURNAL_PATH"
        )
    if not {"meta", "commands"} <= tables:
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
