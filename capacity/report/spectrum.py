"""The HDR percentile spectrum of a run: latency at each percentile, from its merged interval histograms.

``spectrum(tier, kind)`` merges every interval of ``loadgen/<kind>.hlog`` (HdrHistogram's log format,
microseconds) into one histogram and reads it at percentiles spaced evenly on the ``1 / (1 - p)`` axis,
up to the last percentile the sample can resolve. Without a readable log it falls back to the run's
whole-run percentiles (P50, P90, P99, P99.9, max), which come from the same merged histograms, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from capacity.measure.latency import new_histogram
from capacity.report.source import TierRun

Kind = Literal["corrected", "raw"]

#: Percentile points per decade of 1 / (1 - p), and the deepest tail ever asked for (99.9999 %).
STEPS_PER_DECADE = 10
MAX_DECADES = 6


@dataclass(frozen=True)
class Spectrum:
    """Latency (ms) at ``percentiles`` (0-100); ``source`` is ``hlog`` or ``summary``."""

    percentiles: tuple[float, ...]
    latency_ms: tuple[float, ...]
    count: int
    source: str


def spectrum(tier: TierRun, kind: Kind) -> Spectrum | None:
    """The spectrum of ``kind`` latency of one tier, or None when nothing was measured."""
    rel = tier.run.files.get(f"{kind}_hlog", f"loadgen/{kind}.hlog")
    histogram = merged_log(tier.path / rel)
    if histogram is not None and histogram.get_total_count() > 0:
        return _from_histogram(histogram)
    return _from_summary(tier, kind)


def merged_log(path: Path) -> HdrHistogram | None:
    """All intervals of an HdrHistogram log added into one histogram; None if missing or unreadable."""
    if not path.is_file():
        return None
    total = new_histogram()
    try:
        reader = HistogramLogReader(str(path), new_histogram())
        try:
            while reader.add_next_interval_histogram(total) is not None:
                pass
        finally:
            reader.close()
    except (OSError, ValueError, TypeError):
        return None
    return total


def _from_histogram(histogram: HdrHistogram) -> Spectrum:
    count = histogram.get_total_count()
    # The tail is resolved down to about one sample: 1 / (1 - p) up to the count, within MAX_DECADES.
    steps = min(MAX_DECADES * STEPS_PER_DECADE, int(STEPS_PER_DECADE * _log10(count)))
    percentiles = [100 * (1 - 10 ** (-k / STEPS_PER_DECADE)) for k in range(steps + 1)]
    values = histogram.get_percentile_to_value_dict(percentiles)
    latency = tuple(values[p] / 1000 for p in percentiles)
    return Spectrum(tuple(percentiles), latency, count, "hlog")


def _from_summary(tier: TierRun, kind: Kind) -> Spectrum | None:
    lat = tier.run.summary.corrected if kind == "corrected" else tier.run.summary.raw
    points = [(50.0, lat.p50_ms), (90.0, lat.p90_ms), (99.0, lat.p99_ms), (99.9, lat.p999_ms)]
    known = [(p, v) for p, v in points if v is not None]
    if not lat.count or not known:
        return None
    return Spectrum(tuple(p for p, _ in known), tuple(v for _, v in known), lat.count, "summary")


def _log10(x: float) -> float:
    return math.log10(x) if x > 0 else 0.0
