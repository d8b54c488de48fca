"""``Estimate``: a number that never travels without its unit, its interval and how we know it.

A capacity figure is only as good as the evidence behind it, so the evidence is part of the value (pyperf's
"honesty as a data type"). ``basis`` says which kind of evidence:

- ``measured``: observed in a tier, or a model parameter fitted over the measured range;
- ``interpolated``: a fitted model evaluated between the lowest and highest measured load;
- ``extrapolated``: a fitted model evaluated beyond the measured load on this machine;
- ``projection``: a model carried to a machine or a condition we did not measure (more cores, more RAM);
- ``not_reached``: the thing (a knee, an SLO breach, a saturation) did not happen in the measured range;
  ``value`` is None and ``low`` may hold the lower bound we can vouch for;
- ``insufficient_data``: too few tiers, levels or samples to say anything; ``value`` is None.

``low``/``high`` are a 95 % confidence interval, or with ``interval="tiers"`` the neighbouring measured
tiers. A value whose interval could not be computed (too few steady seconds: a bootstrap of one second per
tier gives a zero-width "interval") has ``low``/``high`` None and ``no_interval`` saying why, never a
made-up interval. Non-finite numbers are stored as None so that ``to_dict()`` is always valid JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Basis = Literal["measured", "interpolated", "extrapolated", "projection", "not_reached", "insufficient_data"]

#: What ``low``/``high`` mean: a 95 % confidence interval, or the measured tiers on either side of a value
#: that can only be located to the sweep's tier spacing (a knee, an interpolated SLO crossing).
Interval = Literal["ci95", "tiers"]

#: Multiplication sign and en dash for the plain-English formulas (named, so the source stays ASCII-clean).
TIMES = "\u00d7"
DASH = "\u2013"

#: Confidence level of every interval in this package.
CONFIDENCE = 0.95

#: How far past the highest measured rate a fitted curve may be carried (0.5: up to 1.5 times that rate). A
#: limit the curve puts further out is "not reached", with the highest measured rate as its floor.
MAX_EXTRAPOLATION = 0.5

#: How ``text()`` marks a value whose interval could not be computed (``no_interval`` has the details).
NO_INTERVAL = "no 95 % CI: too little data"


def finite_or_none(x: Any) -> float | None:
    """``x`` as a Python float, or None when it is missing, NaN or infinite (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class Estimate:
    """One capacity figure: value and unit, optional interval, kind of evidence, and a plain-English note."""

    value: float | None
    unit: str
    low: float | None = None
    high: float | None = None
    basis: Basis = "measured"
    note: str = ""
    interval: Interval = "ci95"
    no_interval: str | None = None  # why a value has no 95 % CI (too few steady seconds); survives relabels

    def __post_init__(self) -> None:
        for name in ("value", "low", "high"):
            object.__setattr__(self, name, finite_or_none(getattr(self, name)))

    @classmethod
    def of(
        cls,
        interval: tuple[float, float, float],
        unit: str,
        basis: Basis = "measured",
        note: str = "",
        no_interval: str | None = None,
    ) -> Estimate:
        """From a ``(value, low, high)`` triple, as the fitting helpers return them."""
        value, low, high = interval
        return cls(value, unit, low, high, basis, note, no_interval=no_interval)

    @classmethod
    def insufficient(cls, unit: str, note: str) -> Estimate:
        """Nothing can be said: too few tiers, levels or samples. ``note`` says what was missing."""
        return cls(None, unit, basis="insufficient_data", note=note)

    @classmethod
    def not_reached(cls, unit: str, note: str, at_least: float | None = None) -> Estimate:
        """The event did not happen within the measured range; ``at_least`` is the bound we can vouch for."""
        return cls(None, unit, low=at_least, basis="not_reached", note=note)

    @property
    def known(self) -> bool:
        """True when there is a number to use (any basis but not_reached / insufficient_data)."""
        return self.value is not None

    def scaled(self, factor: float, unit: str | None = None, note: str | None = None) -> Estimate:
        """The same estimate multiplied by a positive constant (a unit change or a safety factor)."""
        return dataclasses.replace(
            self,
            value=None if self.value is None else self.value * factor,
            low=None if self.low is None else self.low * factor,
            high=None if self.high is None else self.high * factor,
            unit=self.unit if unit is None else unit,
            note=self.note if note is None else note,
        )

    def text(self) -> str:
        """Short human form: ``885 requests/s (95 % CI 850-917, interpolated)`` with an en dash, or
        ``885 requests/s (measured, no 95 % CI: too little data)`` when none could be computed."""
        basis = self.basis.replace("_", " ")
        if self.value is None:
            bound = f" (≥ {fmt(self.low)} {self.unit})" if self.low is not None else ""
            return f"{basis}{bound}"
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            kind = "95 % CI" if self.interval == "ci95" else "between tiers"
            return f"{fmt(self.value)}{unit} ({kind} {fmt(self.low)}{DASH}{fmt(self.high)}, {basis})"
        if self.no_interval:
            return f"{fmt(self.value)}{unit} ({basis}, {NO_INTERVAL})"
        return f"{fmt(self.value)}{unit} ({basis})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping; missing numbers are None."""
        return dataclasses.asdict(self)


def fmt(x: float | None, digits: int = 3) -> str:
    """``x`` to ``digits`` significant figures, without scientific notation for everyday magnitudes."""
    if x is None or not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = digits - 1 - magnitude
    if decimals > 8:
        return f"{x:.{digits - 1}e}"
    if decimals <= 0 or x == round(x):
        # Whole numbers: keep every digit below 10,000 (a rate of 1,081 stays 1,081), round larger ones.
        return f"{round(x, min(0, decimals) if magnitude >= 4 else 0):,.0f}"
    return f"{x:,.{decimals}f}"


def range_basis(x: float, lo: float, hi: float) -> Basis:
    """``interpolated`` when ``x`` lies within the measured range [lo, hi], else ``extrapolated``."""
    return "interpolated" if lo <= x <= hi else "extrapolated"


def jsonable(obj: Any) -> Any:
    """Recursively turn dataclasses, numpy values and tuples into JSON-ready data with None for non-finite."""
    if isinstance(obj, Estimate):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.repr}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return finite_or_none(obj)
    return obj


class ToDict:
    """Mixin: ``to_dict()`` for this package's result dataclasses; fields with ``repr=False`` are private."""

    def to_dict(self) -> dict[str, Any]:
        as_dict: dict[str, Any] = jsonable(self)
        return as_dict
