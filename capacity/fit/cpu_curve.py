"""CPU against rate: a straight line, or a power law when the data show CPU per request changing with rate.

Model: ``cores = idle + scale * rate ** exponent``. Exponent 1 is the straight line (a constant CPU cost per
request). Below 1 the server amortises fixed costs as the rate rises (one journal commit or one event-loop
wake-up serves many requests), so CPU per request falls; above 1 it rises (contention). A straight line
through an amortising server's low tiers overstates its cost at high rates, and so understates where it
saturates.

Fitting: for a fixed exponent the model is linear in ``idle`` and ``scale``, so every exponent of a grid is
fitted exactly by least squares and the one with the least squared error wins. Intervals come from a wild
bootstrap over tiers (``regression.tier_bootstrap_weights``): each replicate moves every tier's residuals
from the shape's own fit together, by one random weight per tier, and refits everything, exponent
included, so the intervals carry the uncertainty of the shape as well as of the level, and the tiers'
scatter around the curve stands for what a rerun would move. The CPU limit is the figure the recommended
maximum rests on; resampling seconds within tiers gave it intervals that covered 1-3 of 9 reruns
(docs/benchmarks.md).

Choice: the power law is used when the 95 % interval of its exponent excludes 1, i.e. the data show that CPU
per request changes with rate; otherwise the straight line. Without an interval (too few tiers) the line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from capacity.fit.estimate import Basis, Estimate
from capacity.fit.regression import (
    N_RESAMPLES,
    TierBootstrap,
    percentile_interval,
    tier_bootstrap_shortfall,
    tier_bootstrap_weights,
)

Shape = Literal["linear", "power"]

#: Exponents tried, in steps of 0.01: from strong amortisation (0.2) to strong contention (2).
EXPONENTS = np.round(np.arange(0.2, 2.0 + 1e-9, 0.01), 2)
_LINEAR = int(np.flatnonzero(EXPONENTS == 1.0)[0])

_CHUNK = 250

Coefficients = NDArray[np.float64]  # (..., 3): idle cores, scale, exponent


@dataclass(frozen=True)
class CurveFit:
    """One fitted shape: ``coef`` = (idle, scale, exponent), and its bootstrap replicates (empty, with
    ``no_interval`` saying why, when there were too few tiers)."""

    shape: Shape
    coef: Coefficients
    replicates: Coefficients
    r_squared: float
    method: TierBootstrap
    no_interval: str | None = None

    def interval_note(self) -> str:
        """How the intervals were computed, or "" when there are none."""
        return "" if self.no_interval else self.method.note()

    def derive(self, fn: Callable[[Coefficients], NDArray[np.float64]]) -> tuple[float, float, float]:
        """(point, low, high) of a quantity computed from the coefficients; ``fn`` maps (..., 3) to (...)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            point = float(fn(self.coef))
            low, high = percentile_interval(np.asarray(fn(self.replicates), dtype=float))
        return point, *self.method.widen(point, low, high)

    def estimate(
        self, fn: Callable[[Coefficients], NDArray[np.float64]], unit: str, basis: Basis, note: str
    ) -> Estimate:
        """``derive(fn)`` as an ``Estimate`` whose note states the interval's method, or without an interval
        (and saying why) when there is none."""
        method = self.interval_note()
        note = f"{note}; {method}" if note and method else note or method
        return Estimate.of(self.derive(fn), unit, basis, note, no_interval=self.no_interval)

    @property
    def exponent(self) -> tuple[float, float, float]:
        """(point, low, high) of the exponent; 1 for the straight line."""
        return self.derive(lambda c: c[..., 2])


@dataclass(frozen=True)
class CpuCurves:
    """Both shapes fitted to the same seconds, and the one the data support (see the module docstring)."""

    linear: CurveFit
    power: CurveFit

    @property
    def chosen(self) -> CurveFit:
        _, low, high = self.power.exponent
        amortises_or_contends = self.power.no_interval is None and not low <= 1.0 <= high
        return self.power if amortises_or_contends else self.linear


def cores_at(coef: Coefficients, rate: float | NDArray[np.float64]) -> NDArray[np.float64]:
    """CPU cores the curve(s) ``coef`` put at ``rate``."""
    return np.asarray(coef[..., 0] + coef[..., 1] * np.power(rate, coef[..., 2]))


def rate_at(coef: Coefficients, cores: float) -> NDArray[np.float64]:
    """The rate at which the curve(s) ``coef`` reach ``cores``: +inf when CPU does not rise with the rate
    (scale ≤ 0, "no CPU limit in sight"), 0 when the idle cost alone exceeds ``cores``."""
    idle, scale, exponent = coef[..., 0], coef[..., 1], coef[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        above_idle = np.maximum(cores - idle, 0.0) / np.where(scale > 0, scale, 0.0)
        return np.asarray(np.power(above_idle, 1.0 / exponent))


def fit_cpu_curves(
    rate: NDArray[np.float64],
    cores: NDArray[np.float64],
    groups: NDArray[np.int_],
    *,
    seed: int,
    n_resamples: int = N_RESAMPLES,
) -> CpuCurves:
    """Fit the straight line and the power law of ``cores`` against ``rate`` (per-second samples, each
    row's tier in ``groups``); the caller checks that the rates vary (``regression.is_separable``)."""
    # Standardised powers of the rate: bytes of precision stay where the spread is, at every exponent.
    powers = np.power(rate[:, None], EXPONENTS[None, :])
    centre, spread = powers.mean(axis=0), powers.std(axis=0)
    spread[spread == 0] = 1.0
    z = (powers - centre) / spread
    point = _fit_grid(z, cores[None, :])
    n_tiers = int(np.unique(groups).size)
    weights = tier_bootstrap_weights(groups, n_resamples=n_resamples, seed=seed)

    def fitted(shape: Shape, n_parameters: int) -> CurveFit:
        coef = _select(point, shape, centre, spread)[0]
        fit = cores_at(coef, rate)
        method = TierBootstrap.for_fit(n_tiers, n_parameters)
        shortfall = tier_bootstrap_shortfall(n_tiers, n_parameters)
        replicates = np.empty((0, 3))
        if shortfall is None:
            moved = fit[None, :] + weights * (method.inflation * (cores - fit))[None, :]
            chunks = np.array_split(moved, max(1, n_resamples // _CHUNK))
            replicates = np.concatenate(
                [_select(_fit_grid(z, chunk), shape, centre, spread) for chunk in chunks]
            )
        return CurveFit(shape, coef, replicates, _r_squared(coef, rate, cores), method, shortfall)

    return CpuCurves(linear=fitted("linear", 2), power=fitted("power", 3))


@dataclass(frozen=True)
class _Grid:
    """Least squares of each row of y on each standardised column: (m, k) arrays."""

    intercept: NDArray[np.float64]
    slope: NDArray[np.float64]
    sse: NDArray[np.float64]


def _fit_grid(z: NDArray[np.float64], y: NDArray[np.float64]) -> _Grid:
    """Simple regressions of every row of ``y`` (m, n: the data, or m bootstrap replicates of it) on every
    column of ``z`` (n, k) at once."""
    n = z.shape[0]
    sy, syy = y.sum(axis=1)[:, None], (y * y).sum(axis=1)[:, None]
    sx, sxx, sxy = z.sum(axis=0)[None, :], (z * z).sum(axis=0)[None, :], y @ z
    cxx, cxy, cyy = sxx - sx * sx / n, sxy - sx * sy / n, syy - sy * sy / n
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(cxx > 0, cxy / cxx, 0.0)
    return _Grid(intercept=(sy - slope * sx) / n, slope=slope, sse=cyy - slope * cxy)


def _select(
    grid: _Grid, shape: Shape, centre: NDArray[np.float64], spread: NDArray[np.float64]
) -> Coefficients:
    """(m, 3) coefficients in the original units: the exponent 1 column, or each row's best exponent."""
    rows = np.arange(grid.sse.shape[0])
    column = np.full(rows.size, _LINEAR) if shape == "linear" else np.argmin(grid.sse, axis=1)
    scale = grid.slope[rows, column] / spread[column]
    idle = grid.intercept[rows, column] - scale * centre[column]
    return np.column_stack([idle, scale, EXPONENTS[column]])


def _r_squared(coef: Coefficients, rate: NDArray[np.float64], cores: NDArray[np.float64]) -> float:
    residual = cores - cores_at(coef, rate)
    total = float(np.sum((cores - cores.mean()) ** 2))
    return 1.0 - float(residual @ residual) / total if total > 0 else float("nan")
