"""Least squares with a seeded, tier-stratified bootstrap: the engine under service demand and memory.

Why a bootstrap and not the textbook t-interval: the figures people care about are *derived* (orders/s per
core = 1 / slope, saturation rate = (cores - intercept) / slope), and percentiles of the derived value over
bootstrap replicates give their interval directly, without a delta-method approximation.

Why stratified by tier: resampling seconds *within* each tier keeps every load level in every replicate, so
the design (which rates were offered) stays as it was in the experiment and only the noise is resampled.

Caveat, stated in the notes of the figures: seconds of one tier are treated as independent; if they are
autocorrelated (a GC pause spans seconds) the interval is somewhat too narrow.

Too few seconds, no interval: with one steady second in a tier every replicate resamples that same second,
and with a handful in all the replicates' percentiles are far too narrow. Below ``MIN_SECONDS_PER_TIER`` in
any tier or ``MIN_SECONDS_PER_PARAMETER`` per fitted parameter in all, no bootstrap is run and the figures
carry ``Estimate.no_interval`` (why) instead of a zero-width "95 % CI".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from capacity.fit.estimate import CONFIDENCE, Basis, Estimate

#: Bootstrap replicates per interval; 2000 keeps 95 % percentile limits stable to about ±1 % of their width.
N_RESAMPLES = 2000

#: A design whose standardised normal matrix is worse conditioned than this cannot separate its regressors.
MAX_CONDITION = 1e8

#: A bootstrap interval needs at least this many steady seconds in every tier...
MIN_SECONDS_PER_TIER = 3

#: ...and at least this many in all per fitted parameter (a mean has one, a straight line two).
MIN_SECONDS_PER_PARAMETER = 5

_CHUNK = 250

_TAILS = (100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2)


def interval_shortfall(seconds_per_tier: Sequence[int], n_parameters: int) -> str | None:
    """Why no 95 % interval can be computed from this many seconds per tier, or None when there are enough
    (see the module docstring)."""
    total, fewest, tiers = sum(seconds_per_tier), min(seconds_per_tier, default=0), len(seconds_per_tier)
    needed = max(MIN_SECONDS_PER_PARAMETER * n_parameters, MIN_SECONDS_PER_TIER)
    if fewest >= MIN_SECONDS_PER_TIER and total >= needed:
        return None
    where = f" ({fewest} in the smallest of {tiers} tiers)" if tiers > 1 else ""
    rule = f"≥ {MIN_SECONDS_PER_TIER} per tier and " if tiers > 1 else ""
    return (
        f"no 95 % CI from {total} steady second{'s' if total != 1 else ''}{where}: "
        f"an interval needs {rule}≥ {needed} in all; measure longer tiers"
    )


def percentile_interval(values: NDArray[np.float64]) -> tuple[float, float]:
    """Central ``CONFIDENCE`` interval of bootstrap replicates; ±inf survives (an unbounded end)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    # "nearest" picks order statistics instead of interpolating, so inf - inf never makes a NaN.
    low, high = np.percentile(values, _TAILS, method="nearest")
    return float(low), float(high)


@dataclass(frozen=True)
class LinearFit:
    """``y = coef[0] + coef[1]·x1 + …`` fitted by least squares, with bootstrap replicates of ``coef``."""

    coef: NDArray[np.float64]
    replicates: NDArray[np.float64]  # (n_resamples, k)
    n_samples: int
    n_groups: int
    r_squared: float
    no_interval: str | None = None  # why there are no replicates (too few seconds); see interval_shortfall

    def derive(self, fn: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> tuple[float, float, float]:
        """(point, low, high) of a quantity computed from the coefficients; ``fn`` maps (..., k) to (...)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            point = float(fn(self.coef))
            low, high = percentile_interval(np.asarray(fn(self.replicates), dtype=float))
        return point, low, high

    def coefficient(self, i: int) -> tuple[float, float, float]:
        """(point, low, high) of coefficient ``i`` (0 = intercept)."""
        return self.derive(lambda c: c[..., i])

    def estimate(
        self,
        fn: Callable[[NDArray[np.float64]], NDArray[np.float64]],
        unit: str,
        basis: Basis = "measured",
        note: str = "",
    ) -> Estimate:
        """``derive(fn)`` as an ``Estimate``: without an interval, and saying why, when there were too few
        seconds to bootstrap one."""
        return Estimate.of(self.derive(fn), unit, basis, note, no_interval=self.no_interval)


def is_separable(x: NDArray[np.float64]) -> bool:
    """True when the regressors (columns of ``x``) vary and are not (nearly) collinear with each other."""
    if x.shape[0] <= x.shape[1] + 1:
        return False
    std = x.std(axis=0)
    if np.any(std == 0):
        return False
    z = np.column_stack([np.ones(x.shape[0]), (x - x.mean(axis=0)) / std])
    return bool(np.linalg.cond(z.T @ z) < MAX_CONDITION)


def fit_linear(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    groups: NDArray[np.int_],
    *,
    seed: int,
    n_resamples: int = N_RESAMPLES,
) -> LinearFit:
    """Least-squares fit of ``y`` on ``x`` (n x p, an intercept is added) with a stratified bootstrap.

    The caller checks ``is_separable(x)`` first. Columns are standardised before solving so that bytes
    (~1e8) and rates (~1e3) in one design do not make the normal equations ill-conditioned. With too few
    seconds (``interval_shortfall``) there are no replicates and ``no_interval`` says why.
    """
    mean, std = x.mean(axis=0), x.std(axis=0)
    design = np.column_stack([np.ones(x.shape[0]), (x - mean) / std])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    total = float(np.sum((y - y.mean()) ** 2))
    r_squared = 1.0 - float(residual @ residual) / total if total > 0 else float("nan")

    _, per_tier = np.unique(groups, return_counts=True)
    shortfall = interval_shortfall(per_tier.tolist(), design.shape[1])
    betas = np.empty((0, design.shape[1]))
    if shortfall is None:
        rng = np.random.default_rng(seed)
        # Normal equations of many replicates at once, in chunks so memory stays about chunk * n * k floats.
        chunks = []
        for size in np.diff(np.r_[0:n_resamples:_CHUNK, n_resamples]):
            rows = _stratified_indices(groups, int(size), rng)
            xb, yb = design[rows], y[rows]  # (chunk, n, k), (chunk, n)
            xtx, xty = np.einsum("bni,bnj->bij", xb, xb), np.einsum("bni,bn->bi", xb, yb)
            chunks.append(np.linalg.solve(xtx, xty[..., None])[..., 0])
        betas = np.concatenate(chunks)

    return LinearFit(
        coef=_unstandardise(beta, mean, std),
        replicates=_unstandardise(betas, mean, std),
        n_samples=int(y.size),
        n_groups=int(per_tier.size),
        r_squared=r_squared,
        no_interval=shortfall,
    )


def _unstandardise(
    beta: NDArray[np.float64], mean: NDArray[np.float64], std: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Coefficients on standardised columns -> coefficients in the original units (intercept first)."""
    slopes = beta[..., 1:] / std
    intercept = beta[..., 0] - np.sum(slopes * mean, axis=-1)
    return np.concatenate([intercept[..., None], slopes], axis=-1)


def _stratified_indices(
    groups: NDArray[np.int_], n_resamples: int, rng: np.random.Generator
) -> NDArray[np.int_]:
    """(n_resamples, n) row indices, each replicate resampling rows with replacement within every group."""
    parts = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        parts.append(members[rng.integers(0, members.size, size=(n_resamples, members.size))])
    return np.concatenate(parts, axis=1)


def mean_interval(samples: NDArray[np.float64], *, seed: int) -> tuple[float, float, float]:
    """(mean, low, high) of per-second samples; the interval is a percentile bootstrap (scipy.stats), NaN
    when there are too few samples for one (``interval_shortfall``)."""
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(samples.mean())
    if interval_shortfall([samples.size], 1) is not None:
        return mean, float("nan"), float("nan")
    if np.all(samples == samples[0]):
        return mean, mean, mean
    import scipy.stats  # ~1 s of import under load: only when a fit runs, never for `capacity run`

    ci = scipy.stats.bootstrap(
        (samples,),
        np.mean,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    ).confidence_interval
    return mean, float(ci.low), float(ci.high)


def resample_indices(groups: NDArray[np.int_], *, n_resamples: int, seed: int) -> NDArray[np.int_]:
    """(n_resamples, n) row indices of the bootstrap ``fit_linear`` uses, for fits that are not linear
    (the CPU power law): the same resampling, so every interval in a model is computed the same way."""
    return _stratified_indices(groups, n_resamples, np.random.default_rng(seed))
