"""Service demand: server CPU-seconds per order, the measured version of the seed's "750 ops/s per core".

Model, fitted on per-second samples of every server tier:  ``cores busy = idle + demand * achieved orders/s``
(cores = CPU percent / 100). The slope ``demand`` is CPU-seconds per order; the intercept is the idle cost
(background simulation, timers, the sampler itself). Everything else is arithmetic on those two numbers, and
its interval comes from the same bootstrap replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from capacity.fit.estimate import DASH, TIMES, Estimate, ToDict, fmt, range_basis
from capacity.fit.regression import LinearFit, fit_linear, is_separable
from capacity.fit.tiers import TierMeasurement, stacked

#: Fewer tiers than this cannot show whether CPU grows linearly with load.
MIN_TIERS = 3

RATE = "orders/s"


def cores_text(cores: float) -> str:
    """``1 core``, ``16 cores``, ``1.50 cores``."""
    return f"{fmt(cores)} core" + ("" if cores == 1 else "s")


@dataclass(frozen=True)
class ServiceDemandFit(ToDict):
    """CPU cost of an order and what follows from it; ``available_cores`` is the server's CPU budget."""

    available_cores: float
    cpu_seconds_per_order: Estimate
    idle_cores: Estimate
    orders_per_core: Estimate
    cores_per_1k_orders: Estimate
    saturation_rate: Estimate
    rate_range: tuple[float, float] | None = None
    r_squared: float | None = None
    n_tiers: int = 0
    n_seconds: int = 0
    _fit: LinearFit | None = field(default=None, repr=False)

    def cores_needed(self, rate: float, target_utilisation: float = 0.7) -> Estimate:
        """Cores to serve ``rate`` orders/s with CPU at ``target_utilisation`` (0-1) of those cores."""
        if self._fit is None or self.rate_range is None:
            return Estimate.insufficient("cores", self.cpu_seconds_per_order.note)
        if not 0 < target_utilisation <= 1:
            raise ValueError(f"target_utilisation must be in (0, 1], got {target_utilisation}")
        basis = range_basis(rate, *self.rate_range)
        note = f"cores for {fmt(rate)} {RATE} at {target_utilisation:.0%} CPU utilisation ({basis})"
        return self._fit.estimate(
            lambda c: (c[..., 0] + c[..., 1] * rate) / target_utilisation, "cores", basis, note
        )

    def rate_at_cores(self, cores: float) -> tuple[float, float, float]:
        """(value, low, high) orders/s at which the fitted CPU use reaches ``cores`` (linear per core)."""
        if self._fit is None:
            return float("nan"), float("nan"), float("nan")
        return _rate_at(self._fit, cores)

    def formulas(self) -> list[str]:
        """Plain-English formulas with the fitted numbers."""
        if self._fit is None:
            return [f"CPU per order: {self.cpu_seconds_per_order.note}"]
        slope = self.cpu_seconds_per_order
        line = f"{fmt(self.idle_cores.value)} + {fmt(slope.value)} {TIMES} {RATE}"
        ci = slope.no_interval or f"95 % CI for the slope {fmt(slope.low)}{DASH}{fmt(slope.high)}"
        return [
            f"CPU cores = {line} ({ci}; {slope.note})",
            f"Throughput per core ≈ {self.orders_per_core.text()}; "
            f"cores per 1k {RATE} ≈ {self.cores_per_1k_orders.text()}",
            f"Cores needed = ({line}) / target utilisation (e.g. 0.7 for 70 % busy)",
            f"CPU saturation at {cores_text(self.available_cores)} ≈ {self.saturation_rate.text()}",
        ]


def fit_service_demand(
    tiers: Sequence[TierMeasurement], *, available_cores: float, seed: int = 0
) -> ServiceDemandFit:
    """Fit CPU cores against achieved rate over the (non-generator-bound) ``tiers``."""
    rows, groups = stacked(tiers, "achieved_rate", "server_cpu_percent")
    n_tiers = int(np.unique(groups).size)
    if n_tiers < MIN_TIERS or not is_separable(rows[:, :1]):
        note = f"needs ≥ {MIN_TIERS} server tiers at different rates, got {n_tiers}"
        return _insufficient(available_cores, note)
    rate, cores = rows[:, 0], rows[:, 1] / 100.0
    fit = fit_linear(rate[:, None], cores, groups, seed=seed)
    if fit.coef[1] <= 0:
        return _insufficient(
            available_cores, "server CPU does not rise with the order rate; check the sampler"
        )

    rate_range = (float(rate.min()), float(rate.max()))
    where = (
        f"fitted over {n_tiers} tiers ({fit.n_samples} s), "
        f"{fmt(rate_range[0])}{DASH}{fmt(rate_range[1])} {RATE}, R² {fit.r_squared:.3f}"
    )
    return ServiceDemandFit(
        available_cores=available_cores,
        cpu_seconds_per_order=fit.estimate(lambda c: c[..., 1], "CPU-s/order", note=where),
        idle_cores=fit.estimate(lambda c: c[..., 0], "cores", note="CPU busy at zero load (intercept)"),
        orders_per_core=fit.estimate(
            lambda c: 1.0 / _demand(c), f"{RATE} per core", note="1 / CPU-seconds per order"
        ),
        cores_per_1k_orders=fit.estimate(
            lambda c: 1000.0 * c[..., 1], "cores", note="cores per 1,000 orders/s, idle excluded"
        ),
        saturation_rate=_saturation(fit, available_cores, rate_range),
        rate_range=rate_range,
        r_squared=fit.r_squared,
        n_tiers=n_tiers,
        n_seconds=fit.n_samples,
        _fit=fit,
    )


def _demand(coef: np.ndarray) -> np.ndarray:
    """The slope, with replicates ≤ 0 set to 0: "no CPU limit in sight" then divides to +inf, an open end."""
    return np.where(coef[..., 1] > 0, coef[..., 1], 0.0)


def _saturation(fit: LinearFit, cores: float, rate_range: tuple[float, float]) -> Estimate:
    """The CPU breaking point: the rate at which the fitted CPU use reaches ``cores``."""
    value, low, high = _rate_at(fit, cores)
    if value <= 0:
        note = f"the idle cost alone ({fmt(fit.coef[0])} cores) exceeds {cores_text(cores)}"
        return Estimate(0.0, RATE, basis="extrapolated", note=note)
    basis = range_basis(value, *rate_range)
    note = f"rate at which the fitted CPU reaches {cores_text(cores)} ({basis})"
    floor = max(low, 0.0) if np.isfinite(low) else low  # a replicate's rate below zero means zero
    return Estimate(value, RATE, floor, high, basis, note, no_interval=fit.no_interval)


def _rate_at(fit: LinearFit, cores: float) -> tuple[float, float, float]:
    """Solve ``cores = idle + demand * rate`` for the rate, per replicate."""
    return fit.derive(lambda c: (cores - c[..., 0]) / _demand(c))


def _insufficient(available_cores: float, note: str) -> ServiceDemandFit:
    return ServiceDemandFit(
        available_cores=available_cores,
        cpu_seconds_per_order=Estimate.insufficient("CPU-s/order", note),
        idle_cores=Estimate.insufficient("cores", note),
        orders_per_core=Estimate.insufficient(f"{RATE} per core", note),
        cores_per_1k_orders=Estimate.insufficient("cores", note),
        saturation_rate=Estimate.insufficient(RATE, note),
    )
