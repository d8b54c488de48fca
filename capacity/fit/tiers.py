"""``TierMeasurement``: what the fits need from one tier of a sweep, and nothing else.

It is deliberately plain (floats and 1-D arrays) so that the adapter from a run's ``run.json`` is a few lines:
one ``TierMeasurement`` per tier, per-second series taken from the steady-state seconds (ramp-up excluded,
that is the adapter's choice), tier percentiles from the merged, coordinated-omission-corrected histograms.

Per-second arrays of one tier must have the same length where they are paired in a fit: ``achieved_rate`` with
``server_cpu_percent`` (service demand) and with ``rss_bytes`` and ``resting_orders`` (memory). Seconds with a
missing (NaN) value in a pair are dropped from that fit only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

_SERIES = ("achieved_rate", "server_cpu_percent", "rss_bytes", "resting_orders", "p99_ms_per_second")


def _series(values: ArrayLike) -> NDArray[np.float64]:
    return np.asarray(values, dtype=float).reshape(-1)


@dataclass(frozen=True, eq=False)
class TierMeasurement:
    """Measurements of one load level (tier) of a sweep.

    Units: rates in orders per second; ``server_cpu_percent`` in percent of one core (200 = two cores busy);
    ``rss_bytes`` in bytes; ``resting_orders`` a count; latencies in milliseconds; ``error_rate`` and
    ``shed_rate`` as fractions (0-1) of requests sent; ``concurrency`` in simulated users.
    ``offered_rate`` is ``math.inf`` for a closed-loop tier (each user sends as soon as its last answer is
    back). ``generator_bound`` marks a tier whose load generator saturated: its numbers say nothing about the
    server, so every fit leaves it out, as it does a ``disturbed`` tier (other processes on the machine took
    CPU during it). ``slo_p99_ms`` is the tier scenario's P99 objective, if it has one.
    """

    name: str
    offered_rate: float
    achieved_rate: NDArray[np.float64]
    server_cpu_percent: NDArray[np.float64]
    rss_bytes: NDArray[np.float64]
    resting_orders: NDArray[np.float64]
    p50_ms: float
    p99_ms: float
    p999_ms: float
    p99_ms_per_second: NDArray[np.float64] = field(default_factory=lambda: np.empty(0))
    error_rate: float = 0.0
    shed_rate: float = 0.0
    concurrency: int = 1
    generator_bound: bool = False
    slo_p99_ms: float | None = None
    disturbed: bool = False

    @property
    def left_out(self) -> bool:
        """True when the tier's figures are not the server's (generator-bound or disturbed): never fitted."""
        return self.generator_bound or self.disturbed

    def __post_init__(self) -> None:
        # Accept lists or arrays; store float arrays so the fits never see ints or nested shapes.
        for name in _SERIES:
            object.__setattr__(self, name, _series(getattr(self, name)))

    @property
    def mean_achieved(self) -> float:
        """Mean achieved rate over the tier's seconds (requests/s); NaN when there are none."""
        finite = self.achieved_rate[np.isfinite(self.achieved_rate)]
        return float(finite.mean()) if finite.size else float("nan")


def split_left_out(
    tiers: Sequence[TierMeasurement],
) -> tuple[list[TierMeasurement], list[TierMeasurement]]:
    """(server tiers sorted by offered rate, tiers left out). Only the first kind is fitted."""
    server = sorted((t for t in tiers if not t.left_out), key=lambda t: t.offered_rate)
    return server, [t for t in tiers if t.left_out]


def stacked(tiers: Sequence[TierMeasurement], *columns: str) -> tuple[NDArray[np.float64], NDArray[np.int_]]:
    """Per-second rows ``(n, len(columns))`` of the named series across tiers, and each row's tier index.

    Rows with any non-finite value are dropped; a tier whose series differ in length contributes only its
    first ``min(len)`` seconds (they are assumed to be aligned at t = 0).
    """
    blocks, groups = [], []
    for i, tier in enumerate(tiers):
        series = [getattr(tier, c) for c in columns]
        n = min(s.size for s in series)
        block = np.column_stack([s[:n] for s in series]) if n else np.empty((0, len(columns)))
        block = block[np.all(np.isfinite(block), axis=1)]
        blocks.append(block)
        groups.append(np.full(block.shape[0], i))
    if not blocks:
        return np.empty((0, len(columns))), np.empty(0, dtype=int)
    return np.vstack(blocks), np.concatenate(groups)
