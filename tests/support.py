"""Helpers shared by several test modules (imported as ``support``: tests/conftest.py puts tests/ on
sys.path)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from click.testing import CliRunner, Result

from capacity.cli import main as cli
from capacity.results.run_file import Second

#: The repository's root, and the recorded fixtures (tests/fixtures), wherever a test file sits.
REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = REPO_ROOT / "tests" / "fixtures"


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """The cyclic garbage collector held off: what is freed inside was freed by its last reference going,
    as the exchange needs (it tenures whatever survives a collection, so a cycle waits for a thorough one)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def invoke_capacity(*args: str | Path) -> Result:
    """Run ``capacity ARGS...`` in-process; whatever happens, the user never sees a traceback."""
    result = CliRunner().invoke(cli.main, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def with_remote(app: web.Application, remote: str) -> web.Application:
    """Make every request look as if it came from ``remote`` (the test client is always loopback)."""

    @web.middleware
    async def fake_remote(request: web.Request, handler):
        return await handler(request.clone(remote=remote))

    app.middlewares.insert(0, fake_remote)
    return app


def second(t: int, p99_ms: float | None, refused: float = 0.0, sent: float = 500.0) -> Second:
    """One second of a run's series: ``sent`` requests/s, ``refused`` of them refused, P99 ``p99_ms``."""
    return Second(
        t=t,
        offered_rate=sent,
        sent_rate=sent,
        achieved_rate=sent - refused,
        errors_per_s=refused,
        shed_per_s=refused,
        late_per_s=0.0,
        corrected_p50_ms=None if p99_ms is None else p99_ms / 2,
        corrected_p99_ms=p99_ms,
        corrected_p999_ms=p99_ms,
        raw_p50_ms=None,
        raw_p99_ms=None,
        raw_p999_ms=None,
    )
