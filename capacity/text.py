"""How a figure is spelled wherever the toolkit prints one (CLI tables, the live panel, the web UI's tab):
one spelling each, so the same number never reads two ways."""

from __future__ import annotations

from collections.abc import Sequence

#: What stands for a figure that was not measured.
MISSING = "-"


def figure(value: float | None, fmt: str) -> str:
    """``value`` formatted with ``fmt`` (a ``str.format`` pattern), or ``MISSING``."""
    return MISSING if value is None else fmt.format(value)


def cpu_list(cpus: Sequence[int] | None) -> str:
    """CPU numbers as ``taskset`` and ``--cpus`` write them: ``0,2``; empty when none."""
    return ",".join(map(str, cpus or ()))
