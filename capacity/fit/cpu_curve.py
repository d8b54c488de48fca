"""CPU against rate: a straight line, or a power law when the data show CPU per request changing with rate.

Model: ``cores = idle + scale * rate ** exponent``. Exponent 1 is the straight line (a constant CPU cost per
request). Below 1 the server amortises fixed costs as the rate rises (one journal commit or one event-loop
wake-up serves many requests), so CPU per request falls; above 1 it rises (contention). A straight line
through an amortising server's low tiers overstates its cost at high rates, and so understates where it
saturates.

Fitting: for a fixed exponent the model is linear in ``idle`` and ``scale``, so every exponent of a grid is
fitted exactly by least squares and the one with the least squared error wins. Each bootstrap replicate
(``regression.resample_indices``: the block bootstrap every fit in the package uses, blocks as long as the
power law's residuals are autocorrelated) refits everything, exponent included, so the intervals carry the
uncertainty of the shape as well as of the level.

Choice: the power law is used when the 95 % interval of its exponent excludes 1, i.e. the data show that CPU
per request changes with rate; otherwise the straight line. Without an interval (too few seconds) the line.
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
    Resampling,
    interval_shortfall,
    percentile_interval,
    resample_indices,
    resampling_for,
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
    ``no_interval`` saying why, when there were too few seconds)."""

    shape: Shape
    coef: Coefficients
    replicates: Coefficients
    r_squared: float
    resampling: Resampling
    no_interval: str | None = None

    def interval_note(self) -> str:
        """How the intervals were computed, or "" when there are none."""
        return "" if self.no_interval else self.resampling.note()

    def derive(self, fn: Callable[[Coefficients], NDArray[np.float64]]) -> tuple[float, float, float]:
        """(point, low, high) of a quantity computed from the coefficients; ``fn`` maps (..., 3) to (...)."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            point = float(fn(self.coef))
            low, high = percentile_interval(np.asarray(fn(self.replicates), dtype=float))
        return point, low, high

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

    point = _fit_grid(z, cores, np.ones((1, rate.size)))
    # Blocks as long as the dependence left in the residuals of the more general shape, for both shapes.
    general = _select(point, "power", centre, spread)[0]
    resampling = resampling_for(cores - cores_at(general, rate), groups)
    per_tier, blocks = resampling.seconds_per_tier, resampling.block_seconds
    grids = []
    if interval_shortfall(per_tier, 2, blocks) is None:
        indices = resample_indices(groups, resampling, n_resamples=n_resamples, seed=seed)
        chunks = np.array_split(indices, max(1, n_resamples // _CHUNK))
        grids = [_fit_grid(z, cores, _counts(chunk, rate.size)) for chunk in chunks]

    def fitted(shape: Shape, n_parameters: int) -> CurveFit:
        shortfall = interval_shortfall(per_tier, n_parameters, blocks)
        coef = _select(point, shape, centre, spread)[0]
        replicates = (
            resampling.widen(coef, np.concatenate([_select(grid, shape, centre, spread) for grid in grids]))
            if shortfall is None
            else np.empty((0, 3))
        )
        return CurveFit(shape, coef, replicates, _r_squared(coef, rate, cores), resampling, shortfall)

    return CpuCurves(linear=fitted("linear", 2), power=fitted("power", 3))


@dataclass(frozen=True)
class _Grid:
    """Least squares of y on each standardised column, per weighting: (m, k) arrays."""

    intercept: NDArray[np.float64]
    slope: NDArray[np.float64]
    sse: NDArray[np.float64]


def _fit_grid(z: NDArray[np.float64], y: NDArray[np.float64], weights: NDArray[np.float64]) -> _Grid:
    """Weighted simple regressions of ``y`` on every column of ``z`` at once; ``weights`` (m, n) counts how
    often each second appears in each of m replicates (all ones for the fit itself)."""
    n = weights.sum(axis=1)[:, None]
    sy, syy = (weights @ y)[:, None], (weights @ (y * y))[:, None]
    sx, sxx, sxy = weights @ z, weights @ (z * z), weights @ (z * y[:, None])
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


def _counts(indices: NDArray[np.int_], n: int) -> NDArray[np.float64]:
    """(m, n) how many times each of n rows was drawn in each of m replicates."""
    offsets = indices + n * np.arange(indices.shape[0])[:, None]
    return np.bincount(offsets.ravel(), minlength=indices.shape[0] * n).reshape(-1, n).astype(float)


def _r_squared(coef: Coefficients, rate: NDArray[np.float64], cores: NDArray[np.float64]) -> float:
    residual = cores - cores_at(coef, rate)
    total = float(np.sum((cores - cores.mean()) ** 2))
    return 1.0 - float(residual @ residual) / total if total > 0 else float("nan")
