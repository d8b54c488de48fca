"""Memory: server RSS as a linear function of resting orders and order rate.

The seed's Memory Scaling Pattern, fitted instead of asserted.

Two least-squares fits on per-second samples of the server tiers:

1. *Efficiency*: ``RSS = base + b * resting orders + c * requests/s``. ``b`` is bytes per resting order (the
   seed's "100 MB per 10,000 active orders"), ``c`` bytes per request/s of throughput (buffers, in-flight
   requests, metrics windows: the seed's "2 GB per 1,000 orders/s"). Needs resting orders and rate not to
   move in lockstep across the sweep, otherwise their effects cannot be told apart, and we say so.
2. *Growth*: ``RSS = base' + s * requests/s``, memory as the sweep actually grew it (resting orders included,
   at this sweep's mix and tier duration). Solving it for a RAM size gives the memory-exhaustion rate, which
   is always labelled a projection: nothing was run near that memory, and resting orders keep accumulating
   for as long as a real day lasts, not a tier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from capacity.fit.estimate import TIMES, Estimate, ToDict, fmt
from capacity.fit.regression import LinearFit, fit_linear, is_separable
from capacity.fit.service_demand import MIN_TIERS, RATE
from capacity.fit.tiers import TierMeasurement, stacked
from capacity.text import MB

_NOT_SIGNIFICANT = "not significantly different from zero"


@dataclass(frozen=True)
class MemoryFit(ToDict):
    """Fitted memory figures (MB are 10⁶ bytes) and, if a RAM size was given, the exhaustion projection."""

    base_mb: Estimate
    bytes_per_resting_order: Estimate
    mb_per_10k_resting_orders: Estimate
    mb_per_1k_requests_per_s: Estimate
    exhaustion_rate: Estimate
    memory_bytes: int | None = None
    rate_range: tuple[float, float] | None = None
    n_tiers: int = 0
    _growth: LinearFit | None = field(default=None, repr=False)

    def rss_at(self, rate: float) -> Estimate:
        """Projected RSS (MB) at ``rate`` requests/s from the growth fit (resting orders as in this sweep)."""
        if self._growth is None:
            return Estimate.insufficient("MB", self.exhaustion_rate.note)
        note = f"RSS at {fmt(rate)} {RATE}, resting orders as in this sweep"
        return self._growth.estimate(lambda c: (c[..., 0] + c[..., 1] * rate) / MB, "MB", "projection", note)

    def exhaustion_for(self, memory_bytes: int) -> Estimate:
        """Order rate at which RSS would reach ``memory_bytes`` — always a projection, or not_reached."""
        if self._growth is None or self.rate_range is None:
            return Estimate.insufficient(RATE, self.exhaustion_rate.note)
        base, slope = self._growth.coef
        top = self.rate_range[1]
        what = f"{fmt(memory_bytes / 2**30)} GiB"
        if slope <= 0:
            note = f"RSS does not grow with rate in this sweep; {what} not reached"
            return Estimate.not_reached(RATE, note, at_least=top)
        if base >= memory_bytes:
            note = f"RSS at zero load ({fmt(base / MB)} MB) already exceeds {what}"
            return Estimate(0.0, RATE, basis="projection", note=note)
        note = (
            f"rate at which RSS reaches {what} if it keeps growing by {fmt(slope * 1000 / MB)} MB per 1k "
            f"{RATE} from {fmt(base / MB)} MB, resting orders as in this sweep "
            f"(measured up to {fmt(top)} {RATE})"
        )
        # Replicates with no growth never exhaust memory: +inf, an open upper end of the interval.
        return self._growth.estimate(
            lambda c: (memory_bytes - c[..., 0]) / (c[..., 1] * (c[..., 1] > 0)), RATE, "projection", note
        )

    def formulas(self) -> list[str]:
        """Plain-English formulas with the fitted numbers."""
        if not self.bytes_per_resting_order.known:
            lines = [f"Memory per resting order: {self.bytes_per_resting_order.note}"]
        else:
            per_order, per_rate = self.bytes_per_resting_order, self.mb_per_1k_requests_per_s
            lines = [
                f"RSS (MB) = {fmt(self.base_mb.value)} + {fmt(per_order.value)} bytes {TIMES} resting "
                f"orders / 1e6 + {fmt(per_rate.value)} MB {TIMES} ({RATE} / 1000)",
                f"Order book memory ≈ {self.mb_per_10k_resting_orders.text()} per 10k resting orders",
                f"Memory per 1k {RATE} ≈ {per_rate.text()}"
                + (f"; {_NOT_SIGNIFICANT}" if _NOT_SIGNIFICANT in per_rate.note else ""),
            ]
        if self.memory_bytes is not None:
            lines.append(f"Memory exhaustion ≈ {self.exhaustion_rate.text()}: {self.exhaustion_rate.note}")
        return lines


def fit_memory(
    tiers: Sequence[TierMeasurement], *, memory_bytes: int | None = None, seed: int = 0
) -> MemoryFit:
    """Fit RSS against resting orders and achieved rate over the (non-generator-bound) ``tiers``.

    ``memory_bytes`` (e.g. 32 GiB) adds the projected rate at which RSS would exhaust that much memory.
    """
    rows, groups = stacked(tiers, "achieved_rate", "resting_orders", "rss_bytes")
    n_tiers = len(set(groups.tolist()))
    if n_tiers < MIN_TIERS or not is_separable(rows[:, :1]):
        note = f"needs ≥ {MIN_TIERS} server tiers at different rates with RSS samples, got {n_tiers}"
        exhaustion = Estimate.insufficient(RATE, note)
        return MemoryFit(**_no_efficiency(note), exhaustion_rate=exhaustion, memory_bytes=memory_bytes)

    rate, rss = rows[:, 0], rows[:, 2]
    fitted = MemoryFit(
        **_efficiency(rows, groups, n_tiers, seed),
        exhaustion_rate=Estimate.insufficient(RATE, "no memory size given"),
        memory_bytes=memory_bytes,
        rate_range=(float(rate.min()), float(rate.max())),
        n_tiers=n_tiers,
        _growth=fit_linear(rate[:, None], rss, groups, seed=seed),
    )
    if memory_bytes is None:
        return fitted
    return dataclasses.replace(fitted, exhaustion_rate=fitted.exhaustion_for(memory_bytes))


_EFFICIENCY_UNITS = {
    "base_mb": "MB",
    "bytes_per_resting_order": "bytes/order",
    "mb_per_10k_resting_orders": "MB",
    "mb_per_1k_requests_per_s": "MB",
}


def _no_efficiency(note: str) -> dict[str, Any]:
    return {name: Estimate.insufficient(unit, note) for name, unit in _EFFICIENCY_UNITS.items()}


def _efficiency(
    rows: NDArray[np.float64], groups: NDArray[np.int_], n_tiers: int, seed: int
) -> dict[str, Any]:
    """Fit ``RSS = base + b * resting + c * rate``; insufficient_data if b and c are confounded."""
    regressors = rows[:, [1, 0]]  # resting orders, rate
    if not is_separable(regressors):
        return _no_efficiency(
            "resting orders and rate moved in lockstep (or resting orders did not vary): effects inseparable"
        )
    fit = fit_linear(regressors, rows[:, 2], groups, seed=seed)
    where = f"fitted over {n_tiers} tiers ({fit.n_samples} s), R² {fit.r_squared:.3f}"
    per_order = _significance(fit, 1)
    return {
        "base_mb": fit.estimate(lambda c: c[..., 0] / MB, "MB", note="RSS at zero load (intercept)"),
        "bytes_per_resting_order": fit.estimate(lambda c: c[..., 1], "bytes/order", note=where + per_order),
        "mb_per_10k_resting_orders": fit.estimate(
            lambda c: c[..., 1] * 1e4 / MB, "MB", note="per 10k resting orders" + per_order
        ),
        "mb_per_1k_requests_per_s": fit.estimate(
            lambda c: c[..., 2] * 1e3 / MB, "MB", note=f"per 1k {RATE}" + _significance(fit, 2)
        ),
    }


def _significance(fit: LinearFit, i: int) -> str:
    """pyperf-style honesty: say so when a coefficient's interval includes zero."""
    _, low, high = fit.coefficient(i)
    return f"; {_NOT_SIGNIFICANT}" if low <= 0 <= high else ""
