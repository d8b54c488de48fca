"""How a figure is spelled wherever the toolkit prints one (CLI tables, the live panel, the web UI's tab):
one spelling each, so the same number never reads two ways."""

from __future__ import annotations

from collections.abc import Sequence

#: What stands for a figure that was not measured.
MISSING = "-"

#: Bytes in a megabyte: every memory figure is given in MB of 10⁶ bytes, as the seed's "100 MB" reads.
MB = 1e6


def megabytes(size: float | None) -> float | None:
    """``size`` bytes in MB, or None when it was not measured."""
    return None if size is None else size / MB


def figure(value: float | None, fmt: str) -> str:
    """``value`` formatted with ``fmt`` (a ``str.format`` pattern), or ``MISSING``."""
    return MISSING if value is None else fmt.format(value)


def cpu_list(cpus: Sequence[int] | None) -> str:
    """CPU numbers as ``taskset`` and ``--cpus`` write them: ``0,2``; empty when none."""
    return ",".join(map(str, cpus or ()))


def sentence_ms(value: float) -> str:
    """A latency in a sentence: ``4.25``, ``60``, ``5,980`` (no exponents)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def plain_number(value: float) -> str:
    """A number as a command-line flag takes it, exactly: ``10``, not ``10.0``; ``2.5`` as is."""
    return str(int(value)) if float(value).is_integer() else str(value)
