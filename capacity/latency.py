"""Per-second latency and outcome counts of an open-model load generator, in HdrHistograms.

Every request has an *intended* send time (its slot on the arrival schedule), an actual send time and a
completion time. Latency is kept two ways, as wrk2 does:

- ``corrected`` = completion - intended: what a client arriving on schedule would have seen. A generator
  that fell behind (a stall, a slow response holding up the next send) shows up here.
- ``raw`` = completion - actual send: the service time of the request alone. It hides stalls, because the
  requests that would have waited were simply sent later (coordinated omission).

Both go into HdrHistograms in microseconds (1 us .. 60 s, 3 significant digits), one pair per second of
*intended* send time, so processes can merge exactly: a histogram is encoded for the wire and added on the
other side, and every percentile is read from the merged distribution, never averaged.

Times passed in are integer nanoseconds since t = 0 of the schedule. No Locust import: this module is pure.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

LOWEST_US = 1
HIGHEST_US = 60_000_000  # 60 s: anything slower is clamped here (and is a failed run anyway)
SIGNIFICANT_DIGITS = 3
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
# Always present in errors_by_kind (other HTTP statuses appear as http_<status> when they occur).
ERROR_KINDS = ("http_503", "http_400", "connection", "timeout")
REQUEST_KINDS = ("limit", "market", "cancel", "book")

_NS_PER_S = 1_000_000_000


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds with this module's range and precision."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def to_us(duration_ns: int) -> int:
    """Nanoseconds to whole microseconds, clamped into the histogram's trackable range."""
    return min(max(round(duration_ns / 1000), LOWEST_US), HIGHEST_US)


def summarize(histogram: HdrHistogram | None, sum_us: int = 0) -> dict[str, Any]:
    """``{"count", "p50", "p90", "p99", "p999", "max", "mean"}`` in milliseconds.

    Percentiles and max come from the histogram (exact to its 3 significant digits); the mean is the exact
    sum of recorded values over the count. With no samples every figure but ``count`` is None: a latency of
    0 ms would be a lie.
    """
    count = 0 if histogram is None else histogram.get_total_count()
    if histogram is None or count == 0:
        return {"count": 0, **dict.fromkeys(PERCENTILES), "max": None, "mean": None}
    values = histogram.get_percentile_to_value_dict(list(PERCENTILES.values()))
    out: dict[str, Any] = {"count": count}
    for name, percentile in PERCENTILES.items():
        out[name] = _ms(values[percentile])
    out["max"] = _ms(histogram.get_max_value())
    out["mean"] = _ms(sum_us / count)
    return out


def _ms(us: float) -> float:
    return round(us / 1000, 3)


# ---------------------------------------------------------------------------------------------- one second


_COUNTERS = (
    "scheduled",
    "sent",
    "ok",
    "errors",
    "shed",
    "late",
    "lag_max_us",
    "corrected_sum_us",
    "raw_sum_us",
)


@dataclass
class Second:
    """Everything recorded for requests whose intended send time fell in one second of the schedule.

    ``scheduled`` slots came due; ``sent`` of them were sent (``late`` more than the threshold after their
    intended time); ``ok`` and ``errors`` are completed requests (``shed`` = errors that were HTTP 503).
    ``sent - ok - errors`` were still in flight when the test stopped. Histograms hold ok responses only and
    are created on first use, so an idle second costs almost nothing.
    """

    scheduled: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    shed: int = 0
    late: int = 0
    lag_max_us: int = 0  # largest (actual - intended) send time, us
    corrected_sum_us: int = 0  # exact sums, for means without walking the histogram
    raw_sum_us: int = 0
    corrected: HdrHistogram | None = field(default=None, repr=False)
    raw: HdrHistogram | None = field(default=None, repr=False)

    def record(self, corrected_us: int, raw_us: int) -> None:
        if self.corrected is None or self.raw is None:
            self.corrected, self.raw = new_histogram(), new_histogram()
        self.ok += 1
        self.corrected.record_value(corrected_us)
        self.raw.record_value(raw_us)
        self.corrected_sum_us += corrected_us
        self.raw_sum_us += raw_us

    def merge(self, other: Second) -> None:
        """Add ``other`` into this second (counts add, lag takes the max, histograms merge)."""
        for name in _COUNTERS:
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(self, name, max(mine, theirs) if name == "lag_max_us" else mine + theirs)
        if other.corrected is not None and other.raw is not None:
            if self.corrected is None or self.raw is None:
                self.corrected, self.raw = new_histogram(), new_histogram()
            self.corrected.add(other.corrected)
            self.raw.add(other.raw)

    def to_wire(self) -> dict[str, Any]:
        """Plain data for Locust's master/worker messages: counters plus encoded histograms (or None)."""
        wire: dict[str, Any] = {name: getattr(self, name) for name in _COUNTERS}
        wire["corrected"] = None if self.corrected is None else self.corrected.encode()
        wire["raw"] = None if self.raw is None else self.raw.encode()
        return wire

    @classmethod
    def from_wire(cls, wire: Mapping[str, Any]) -> Second:
        second = cls(**{name: int(wire.get(name, 0)) for name in _COUNTERS})
        if wire.get("corrected") is not None and wire.get("raw") is not None:
            second.corrected = HdrHistogram.decode(wire["corrected"])
            second.raw = HdrHistogram.decode(wire["raw"])
        return second

    def summary(self) -> dict[str, Any]:
        """Counters of this second as in loadgen.json (latency in ms), without ``t``/``offered_rate``."""
        return {
            "scheduled": self.scheduled,
            "sent": self.sent,
            "ok": self.ok,
            "errors": self.errors,
            "shed": self.shed,
            "late": self.late,
            "corrected": summarize(self.corrected, self.corrected_sum_us),
            "raw": summarize(self.raw, self.raw_sum_us),
        }


# ---------------------------------------------------------------------------------------------- recorder


class LatencyRecorder:
    """Per-second outcomes and latency of requests, keyed by the second of their intended send time.

    A load-generating process records into one; it hands its data over with ``take_delta()`` (which starts
    it afresh) and the collecting side adds each delta with ``add_delta()``. Recording the same requests in
    one recorder or spread over many and merged gives the same counts and the same percentiles.
    """

    def __init__(self, late_threshold_ms: float = 10.0) -> None:
        self.late_threshold_ns = round(late_threshold_ms * 1_000_000)
        self.seconds: dict[int, Second] = {}
        self.errors_by_kind: Counter[str] = Counter()
        self.requests_by_kind: Counter[str] = Counter()

    # -- recording (times: ns since t = 0 of the schedule) --

    def _second(self, intended_ns: int) -> Second:
        index = max(intended_ns // _NS_PER_S, 0)
        second = self.seconds.get(index)
        if second is None:
            second = self.seconds[index] = Second()
        return second

    def owed(self, intended_ns: int) -> None:
        """A slot that came due but was never sent (the test stopped while the user was behind)."""
        self._second(intended_ns).scheduled += 1

    def sent(self, intended_ns: int, sent_ns: int, kind: str) -> None:
        """A request of ``kind`` (limit, market, cancel, book) for slot ``intended_ns``, sent at ``sent_ns``.

        Counts the slot as scheduled and sent, and as late if it left more than the threshold after it.
        """
        second = self._second(intended_ns)
        second.scheduled += 1
        second.sent += 1
        lag_ns = sent_ns - intended_ns
        if lag_ns > self.late_threshold_ns:
            second.late += 1
        if lag_ns > 0:
            second.lag_max_us = max(second.lag_max_us, lag_ns // 1000)
        self.requests_by_kind[kind] += 1

    def record(self, intended_ns: int, sent_ns: int, done_ns: int) -> None:
        """A successful response: corrected latency from the intended time, raw from the actual send."""
        self._second(intended_ns).record(to_us(done_ns - intended_ns), to_us(done_ns - sent_ns))

    def error(self, intended_ns: int, kind: str) -> None:
        """A failed request; ``kind`` is ``http_<status>``, ``connection`` or ``timeout``."""
        second = self._second(intended_ns)
        second.errors += 1
        if kind == "http_503":
            second.shed += 1
        self.errors_by_kind[kind] += 1

    # -- moving data between processes --

    def take_delta(self) -> dict[str, Any]:
        """Everything recorded since the last call, as wire data; the recorder starts empty again."""
        delta = {
            "seconds": [[index, second.to_wire()] for index, second in sorted(self.seconds.items())],
            "errors_by_kind": dict(self.errors_by_kind),
            "requests_by_kind": dict(self.requests_by_kind),
        }
        self.seconds = {}
        self.errors_by_kind = Counter()
        self.requests_by_kind = Counter()
        return delta

    def add_delta(self, delta: Mapping[str, Any]) -> None:
        """Merge wire data from ``take_delta()`` (of any process) into this recorder."""
        for index, wire in delta.get("seconds", ()):
            self._merge_second(int(index), Second.from_wire(wire))
        self.errors_by_kind.update(delta.get("errors_by_kind", {}))
        self.requests_by_kind.update(delta.get("requests_by_kind", {}))

    def merge(self, other: LatencyRecorder) -> None:
        """Merge another recorder in this process (no encoding)."""
        for index, second in other.seconds.items():
            self._merge_second(index, second)
        self.errors_by_kind.update(other.errors_by_kind)
        self.requests_by_kind.update(other.requests_by_kind)

    def _merge_second(self, index: int, second: Second) -> None:
        mine = self.seconds.get(index)
        if mine is None:
            self.seconds[index] = mine = Second()
        mine.merge(second)

    # -- reading --

    @property
    def last_second(self) -> int:
        """Index of the last second holding anything, -1 if none."""
        return max(self.seconds, default=-1)

    def combined(self, indices: Iterable[int] | None = None) -> Second:
        """One Second holding the sum of the given seconds (default: all of them)."""
        total = Second()
        chosen = self.seconds.keys() if indices is None else indices
        for index in chosen:
            second = self.seconds.get(index)
            if second is not None:
                total.merge(second)
        return total

    def errors_summary(self) -> dict[str, int]:
        """errors_by_kind with the standard kinds always present."""
        return {**dict.fromkeys(ERROR_KINDS, 0), **dict(sorted(self.errors_by_kind.items()))}

    def requests_summary(self) -> dict[str, int]:
        return {kind: self.requests_by_kind.get(kind, 0) for kind in REQUEST_KINDS}


# ---------------------------------------------------------------------------------------------- hlog


def write_hlog(path: str | Path, histograms: Iterable[HdrHistogram | None], started_at: float) -> None:
    """An HdrHistogram interval log: one 1-second interval per histogram (None = empty), values in us.

    Interval start times are relative to ``started_at`` (unix seconds, written as BaseTime and StartTime),
    so HdrHistogram's own tools (HistogramLogReader, HistogramLogProcessor) read it as is.
    """
    base_ms = started_at * 1000
    with open(path, "w", encoding="ascii") as out:
        writer = HistogramLogWriter(out)
        writer.base_time = base_ms
        writer.output_comment("capacity load generator: latency in microseconds, one interval per second")
        writer.output_log_format_version()
        # HistogramLogWriter.output_start_time is broken in hdrhistogram 0.10.8, so write the line here.
        iso = datetime.fromtimestamp(started_at, UTC).isoformat(" ")
        out.write(f"#[StartTime: {started_at:.3f} (seconds since epoch), {iso}]\n")
        writer.output_base_time(base_ms)
        writer.output_legend()
        for index, histogram in enumerate(histograms):
            interval = histogram if histogram is not None else new_histogram()
            # The writer falls back to the histogram's own stamps when a start of 0 s is passed.
            interval.set_start_time_stamp(base_ms + index * 1000)
            interval.set_end_time_stamp(base_ms + (index + 1) * 1000)
            writer.output_interval_histogram(
                interval,
                start_time_stamp_sec=float(index),
                end_time_stamp_sec=float(index + 1),
                max_value_unit_ratio=1000.0,  # the max column in ms, as the values are us
            )


def seconds_needed(duration_s: float) -> int:
    """Number of whole-second buckets that cover ``duration_s`` seconds."""
    return max(math.ceil(duration_s - 1e-9), 0)
