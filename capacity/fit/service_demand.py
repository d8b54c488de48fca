"""Service demand: server CPU against the rate, the measured version of the seed's "750 ops/s per core".

Model, fitted on per-second samples of every server tier (``cpu_curve``): ``cores busy = idle + scale *
rate ** exponent`` (cores = CPU percent / 100), a straight line (exponent 1, constant CPU-seconds per request)
unless the data show the cost per request changing with the rate. The intercept is the idle cost (background
simulation, timers, the sampler itself). Everything else is arithmetic on the chosen curve, and its interval
comes from the same bootstrap replicates.

The CPU breaking point is where the curve reaches the server's cores: interpolated inside the measured rates,
extrapolated no further than ``MAX_EXTRAPOLATION`` past the highest tier, and beyond that "not reached" with
the highest tier as its floor: a fitted curve is not evidence far from its data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from capacity.fit.cpu_curve import CurveFit, Shape, cores_at, fit_cpu_curves, rate_at
from capacity.fit.estimate import DASH, MAX_EXTRAPOLATION, TIMES, Estimate, ToDict, fmt, range_basis
from capacity.fit.regression import is_separable
from capacity.fit.tiers import TierMeasurement, stacked

#: Fewer tiers than this cannot show whether CPU grows linearly with load.
MIN_TIERS = 3

RATE = "requests/s"


def cores_text(cores: float) -> str:
    """``1 core``, ``16 cores``, ``1.50 cores``."""
    return f"{fmt(cores)} core" + ("" if cores == 1 else "s")


@dataclass(frozen=True)
class ServiceDemandFit(ToDict):
    """CPU cost of an order and what follows from it; ``available_cores`` is the server's CPU budget.

    ``shape`` is the curve the data chose (``cpu_curve``), ``exponent`` its exponent (1 for the line), and
    ``linear_r_squared``/``power_r_squared`` how well each shape fits the same seconds. ``top_rate`` is the
    highest tier's mean achieved rate, the end of the evidence.
    """

    available_cores: float
    cpu_seconds_per_request: Estimate
    idle_cores: Estimate
    requests_per_core: Estimate
    cores_per_1k_requests: Estimate
    saturation_rate: Estimate
    rate_range: tuple[float, float] | None = None
    r_squared: float | None = None
    n_tiers: int = 0
    n_seconds: int = 0
    shape: Shape | None = None
    exponent: Estimate | None = None
    linear_r_squared: float | None = None
    power_r_squared: float | None = None
    top_rate: float | None = None
    _curve: CurveFit | None = field(default=None, repr=False)

    def cores_needed(self, rate: float, target_utilisation: float = 0.7) -> Estimate:
        """Cores to serve ``rate`` requests/s with CPU at ``target_utilisation`` (0-1) of those cores."""
        if self._curve is None or self.rate_range is None:
            return Estimate.insufficient("cores", self.cpu_seconds_per_request.note)
        if not 0 < target_utilisation <= 1:
            raise ValueError(f"target_utilisation must be in (0, 1], got {target_utilisation}")
        basis = range_basis(rate, *self.rate_range)
        note = f"cores for {fmt(rate)} {RATE} at {target_utilisation:.0%} CPU utilisation ({basis})"
        return self._curve.estimate(lambda c: cores_at(c, rate) / target_utilisation, "cores", basis, note)

    def rate_at_cores(self, cores: float) -> tuple[float, float, float]:
        """(value, low, high) requests/s of ``cores`` cores, each running one server process that saturates at
        ``requests_per_core`` (linear per core: what a projection to more cores assumes)."""
        if self._curve is None:
            return float("nan"), float("nan"), float("nan")
        return self._curve.derive(lambda c: cores * rate_at(c, 1.0))

    def formulas(self) -> list[str]:
        """Plain-English formulas with the fitted numbers."""
        if self._curve is None or self.exponent is None:
            return [f"CPU per request: {self.cpu_seconds_per_request.note}"]
        idle, scale, exponent = self._curve.coef
        rate = RATE if self.shape == "linear" else f"({RATE})^{exponent:.2f}"
        line = f"{fmt(idle)} + {fmt(scale)} {TIMES} {rate}"
        return [
            f"CPU cores = {line} ({self._shape_reason()})",
            f"CPU per request at {fmt(self.top_rate)} {RATE} (the highest tier) ≈ "
            f"{self.cpu_seconds_per_request.text()}",
            f"Throughput per core ≈ {self.requests_per_core.text()}; "
            f"cores per 1k {RATE} ≈ {self.cores_per_1k_requests.text()}",
            f"Cores needed = ({line}) / target utilisation (e.g. 0.7 for 70 % busy)",
            f"CPU saturation at {cores_text(self.available_cores)} ≈ {self.saturation_rate.text()}: "
            f"{self.saturation_rate.note}",
        ]

    def _shape_reason(self) -> str:
        """Why this shape: the power law's exponent and its interval, and both fits' R²."""
        assert self.exponent is not None
        exponent = self.exponent
        if exponent.no_interval:
            return f"straight line: {exponent.no_interval}"
        interval = f"exponent {fmt(exponent.value)}, 95 % CI {fmt(exponent.low)}{DASH}{fmt(exponent.high)}"
        fits = f"R² {fmt(self.power_r_squared)} against {fmt(self.linear_r_squared)} for a straight line"
        if self.shape == "linear":
            return f"straight line: a power law's {interval}, includes 1; {fits}"
        trend = "falls" if (exponent.value or 1.0) < 1 else "rises"
        return f"power law: {interval}, so CPU per request {trend} as the rate rises; {fits}"


def fit_service_demand(
    tiers: Sequence[TierMeasurement], *, available_cores: float, seed: int = 0
) -> ServiceDemandFit:
    """Fit CPU cores against achieved rate over the server tiers (none generator-bound or disturbed)."""
    rows, groups = stacked(tiers, "achieved_rate", "server_cpu_percent")
    n_tiers = int(np.unique(groups).size)
    if n_tiers < MIN_TIERS or not is_separable(rows[:, :1]):
        note = f"needs ≥ {MIN_TIERS} server tiers at different rates, got {n_tiers}"
        return _insufficient(available_cores, note)
    rate, cores = rows[:, 0], rows[:, 1] / 100.0
    curves = fit_cpu_curves(rate, cores, groups, seed=seed)
    curve = curves.chosen
    if curve.coef[1] <= 0:
        return _insufficient(
            available_cores, "server CPU does not rise with the order rate; check the sampler"
        )

    rate_range = (float(rate.min()), float(rate.max()))
    top = max(float(np.mean(rate[groups == g])) for g in np.unique(groups))
    where = (
        f"fitted over {n_tiers} tiers ({rate.size} s), "
        f"{fmt(rate_range[0])}{DASH}{fmt(rate_range[1])} {RATE}, R² {curve.r_squared:.3f}"
    )
    return ServiceDemandFit(
        available_cores=available_cores,
        cpu_seconds_per_request=curve.estimate(
            lambda c: c[..., 1] * c[..., 2] * np.power(top, c[..., 2] - 1),
            "CPU-s/order",
            "measured",
            f"marginal CPU per request at {fmt(top)} {RATE}, the highest tier; {where}",
        ),
        idle_cores=curve.estimate(
            lambda c: c[..., 0], "cores", "measured", "CPU busy at zero load (intercept)"
        ),
        requests_per_core=curve.estimate(
            lambda c: rate_at(c, 1.0),
            f"{RATE} per core",
            range_basis(float(rate_at(curve.coef, 1.0)), *rate_range),
            "rate at which the fitted CPU reaches one core, idle cost included",
        ),
        cores_per_1k_requests=curve.estimate(
            lambda c: c[..., 1] * np.power(1000.0, c[..., 2]),
            "cores",
            "measured",
            f"cores for 1,000 {RATE} above the idle cost",
        ),
        saturation_rate=_saturation(curve, available_cores, rate_range, top),
        rate_range=rate_range,
        r_squared=curve.r_squared,
        n_tiers=n_tiers,
        n_seconds=int(rate.size),
        shape=curve.shape,
        exponent=Estimate.of(
            curves.power.exponent,
            "",
            "measured",
            "exponent of the power law",
            no_interval=curves.power.no_interval,
        ),
        linear_r_squared=curves.linear.r_squared,
        power_r_squared=curves.power.r_squared,
        top_rate=top,
        _curve=curve,
    )


def _saturation(curve: CurveFit, cores: float, rate_range: tuple[float, float], top: float) -> Estimate:
    """The CPU breaking point: the rate at which the fitted CPU reaches ``cores``, when near the data."""
    value = float(rate_at(curve.coef, cores))
    if value <= 0:
        note = f"the idle cost alone ({fmt(curve.coef[0])} cores) exceeds {cores_text(cores)}"
        return Estimate(0.0, RATE, basis="extrapolated", note=note)
    if value > top * (1 + MAX_EXTRAPOLATION):
        note = (
            f"the fitted CPU would reach {cores_text(cores)} at ≈ {fmt(value)} {RATE}, "
            f"{value / top:.1f} {TIMES} the highest tier's {fmt(top)}: too far past the data to trust "
            f"(a fit is carried at most {1 + MAX_EXTRAPOLATION:g} {TIMES} beyond it)"
        )
        return Estimate.not_reached(RATE, note, at_least=top)
    basis = range_basis(value, *rate_range)
    return curve.estimate(
        lambda c: rate_at(c, cores), RATE, basis, f"rate at which the fitted CPU reaches {cores_text(cores)}"
    )


def _insufficient(available_cores: float, note: str) -> ServiceDemandFit:
    return ServiceDemandFit(
        available_cores=available_cores,
        cpu_seconds_per_request=Estimate.insufficient("CPU-s/order", note),
        idle_cores=Estimate.insufficient("cores", note),
        requests_per_core=Estimate.insufficient(f"{RATE} per core", note),
        cores_per_1k_requests=Estimate.insufficient("cores", note),
        saturation_rate=Estimate.insufficient(RATE, note),
    )
