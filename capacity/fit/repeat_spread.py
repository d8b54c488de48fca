"""The spread between repeats of a sweep run with ``capacity sweep --repeat N``.

An interval from the seconds of each tier (the block bootstrap) says how precisely one run pins a figure
down, assuming the machine stayed the same throughout; it cannot see drift from one run to the next (other
load on the machine, thermal state, the journal file growing). The CPU curve's interval moves whole tiers
(``capacity.fit.cpu_curve``), so it sees drift as far as the tiers of one sweep show it. Repeating the
tiers measures it directly: the sweep's
model is fitted on all repeats pooled, and again on each repeat alone (repeat R: every tier's R-th run), and
for each headline figure this module keeps the pooled estimate beside every repeat's own. The spread is the
smallest to the largest per-repeat value: with N repeats it is what N reruns gave, not a confidence interval.
Only complete repeats (every tier that ran in the sweep done) are compared: a repeat cut short would differ
for want of tiers, not because the machine drifted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capacity.fit import CapacityModel, Estimate
from capacity.fit.estimate import DASH, ToDict, fmt

#: The figures whose spread between repeats is shown: key, label, and where a model holds it.
SPREAD_FIGURES: tuple[tuple[str, str, Callable[[CapacityModel], Estimate]], ...] = (
    ("recommended_max", "Recommended maximum", lambda m: m.recommended_max),
    ("cpu", "CPU saturation", lambda m: m.breaking_points.cpu),
    ("throughput", "Throughput saturation", lambda m: m.breaking_points.throughput),
)

#: How the spread is made, for fit.json and the report.
METHOD = (
    "the model fitted on each repeat alone (repeat R: every tier's R-th run); the spread is the smallest "
    "to the largest of those values, not a confidence interval"
)


@dataclass(frozen=True)
class RepeatFigure(ToDict):
    """One figure of a repeated sweep: the pooled fit's estimate (its interval is the within-run one) and
    each repeat's own estimate, in repeat order. ``low``/``high`` are the smallest and largest per-repeat
    values, None when fewer than two repeats gave one; ``values`` counts the repeats that gave one."""

    key: str
    label: str
    unit: str
    pooled: Estimate
    per_repeat: tuple[Estimate, ...]
    low: float | None
    high: float | None
    values: int

    @property
    def within_ci(self) -> bool | None:
        """Whether every repeat's value lies within the pooled figure's interval (None: nothing to compare).
        False means the runs disagree by more than the within-run interval allows."""
        pooled = self.pooled
        if self.low is None or self.high is None or pooled.low is None or pooled.high is None:
            return None
        return pooled.low <= self.low and self.high <= pooled.high

    def spread_text(self) -> str:
        """``2,560-3,400 requests/s`` (en dash), or why there is none (under two repeats gave a value)."""
        if self.low is None or self.high is None:
            return f"none: {self.values} of {len(self.per_repeat)} repeats gave a value"
        return f"{fmt(self.low)}{DASH}{fmt(self.high)} {self.unit}"

    def each_text(self) -> str:
        """Each repeat's value in repeat order, ``2,560; 3,400; 2,910``; what is known instead where a
        repeat gave none (``not reached (≥ 2,400 requests/s)``)."""
        return "; ".join(fmt(e.value) if e.known else e.text() for e in self.per_repeat)


@dataclass(frozen=True)
class RepeatSpread(ToDict):
    """The spread between ``count`` complete repeats (numbered ``repeats``) for each of ``SPREAD_FIGURES``;
    ``left_out`` numbers the repeats that were not complete (pooled, but not compared)."""

    count: int
    repeats: tuple[int, ...]
    left_out: tuple[int, ...]
    figures: tuple[RepeatFigure, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the method in words and each figure's ``within_ci``."""
        data = super().to_dict()
        for figure, out in zip(self.figures, data["figures"], strict=True):
            out["within_ci"] = figure.within_ci
        return {**data, "method": METHOD}


def repeat_spread(
    pooled: CapacityModel, per_repeat: Mapping[int, CapacityModel], left_out: Sequence[int] = ()
) -> RepeatSpread:
    """The spread of ``SPREAD_FIGURES`` over ``per_repeat`` (each complete repeat's model by its number, in
    repeat order) beside the ``pooled`` model's figures; ``left_out``: the incomplete repeats."""
    figures = []
    for key, label, figure_of in SPREAD_FIGURES:
        estimates = tuple(figure_of(model) for model in per_repeat.values())
        values = [e.value for e in estimates if e.value is not None]
        low, high = (min(values), max(values)) if len(values) >= 2 else (None, None)
        main = figure_of(pooled)
        figures.append(RepeatFigure(key, label, main.unit, main, estimates, low, high, len(values)))
    return RepeatSpread(len(per_repeat), tuple(per_repeat), tuple(left_out), tuple(figures))
