"""Start the embedded reference exchange as its own process, and stop it cleanly.

capacity talks to every exchange over HTTP only; this module just owns the child process of the
embedded default: it picks a free port (SERVER_PORT=0), reads the bound URL from the server's
first line, waits for ``/health`` and can pin the process to chosen CPUs.

The child runs in its own session: a Ctrl-C in the terminal reaches only capacity (the terminal signals
its foreground process group), and capacity stops the exchange itself (``stop``: SIGTERM) when it is
done with it — after the load generator, so no request of a run meets a closing server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import psutil

READY_PREFIX = "reference-exchange listening on "
JOURNAL_SYNC_MODES = ("full", "normal", "off")  # the exchange's JOURNAL_SYNC values
# The embedded exchange's /api/metrics window: short, so its per-second view is per-second.
METRICS_WINDOW = "1s"


def exchange_settings(
    journal_sync: str | None, journal: bool, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The embedded exchange's settings (its environment variables, README) for capacity's choices: the
    one place the toolkit spells the exchange's setting names. ``extra`` is passed as given; the journal
    choices win over it."""
    env = {"METRICS_COLLECTION_TIME": METRICS_WINDOW, **(extra or {})}
    if journal_sync:
        env["JOURNAL_SYNC"] = journal_sync
    if not journal:
        env["JOURNAL_PATH"] = "none"
    return env


class ExchangeStartError(RuntimeError):
    """The embedded exchange did not come up; the message carries the tail of its output."""


class EmbeddedExchange:
    """``with EmbeddedExchange(env={...}) as exchange: exchange.url`` — a running reference exchange.

    ``cpus`` pins the server (e.g. ``[1]``) so a load generator pinned elsewhere does not steal its
    core. The journal goes to a fresh temporary directory unless JOURNAL_PATH is given in ``env``.
    """

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        cpus: Sequence[int] | None = None,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.env = dict(env or {})
        self.cpus = list(cpus) if cpus else None
        self.start_timeout_s = start_timeout_s
        self.url = ""
        self.process: subprocess.Popen[str] | None = None
        self._output: list[str] = []
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "exchange not started"
        return self.process.pid

    def start(self) -> EmbeddedExchange:
        self._workdir = tempfile.TemporaryDirectory(prefix="capacity-exchange-")
        env = {
            **os.environ,
            "SERVER_HOST": "127.0.0.1",
            "SERVER_PORT": "0",
            "JOURNAL_PATH": str(Path(self._workdir.name) / "journal.sqlite3"),
            "PYTHONUNBUFFERED": "1",
            **self.env,
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reference_exchange"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a terminal's Ctrl-C is for capacity, which stops us in turn
        )
        if self.cpus:
            psutil.Process(self.process.pid).cpu_affinity(self.cpus)
        self.url = self._read_url()
        # Keep draining output so a chatty server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        self._wait_healthy()
        return self

    def _read_url(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self._output.append(line)
            if line.startswith(READY_PREFIX):
                return line[len(READY_PREFIX) :].split()[0]
        self.stop()
        tail = "".join(self._output[-20:]).strip() or "(no output)"
        raise ExchangeStartError(f"reference exchange did not start:\n{tail}")

    def _drain(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self._output.append(line)
            del self._output[:-200]

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        self.stop()
        raise ExchangeStartError(f"reference exchange at {self.url} never answered /health")

    def output(self) -> str:
        return "".join(self._output)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL if it hangs. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None
        return self.process.returncode

    def __enter__(self) -> EmbeddedExchange:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
