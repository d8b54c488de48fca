"""Least squares with a seeded, tier-stratified block bootstrap: the engine under service demand and memory.

Why a bootstrap and not the textbook t-interval: the figures people care about are *derived* (requests/s per
core = 1 / slope, saturation rate = (cores - intercept) / slope), and percentiles of the derived value over
bootstrap replicates give their interval directly, without a delta-method approximation.

Why stratified by tier: resampling seconds *within* each tier keeps every load level in every replicate, so
the design (which rates were offered) stays as it was in the experiment and only the noise is resampled.

Why blocks: consecutive seconds of one tier are not independent (a GC pause, a group commit, a queue that
builds up span several seconds; the lag-1 autocorrelation of CPU per request measured 0.6-0.7 within a demo
run). Resampling single seconds then treats 60 seconds as 60 independent facts and gives an interval far
narrower than the spread between two identical runs. So each replicate rebuilds every tier from *circular
blocks* of consecutive seconds (Politis & Romano 1992), long enough to carry the dependence:

    b = (3n/2)^(1/3) * (2 rho / (1 - rho^2))^(2/3),  rounded, clipped to [1, n/2]

the Politis-White (2004) optimal block length for the circular block bootstrap, evaluated for an AR(1) whose
lag-1 autocorrelation ``rho`` is measured on the data: the residuals of the fit (or a mean's
deviations), pooled over the tiers (each tier's own deviations from its mean, so a tier the line misses
does not look autocorrelated), with the Marriott-Pope small-sample bias correction ``+ (1 + 3 rho) / n``.
``n`` is the tier's seconds, so each tier has its own block length.

That length minimises the error of the variance estimate, not the miss rate of the interval: a block of b
seconds still cuts the dependence at its edges, and for an AR(1) the bootstrap variance of a mean is only the
share ``1 + 2 sum_{k<b} (1 - k/b) rho^k`` of the long-run variance ``(1 + rho) / (1 - rho)`` (both in units of
one second's variance). So every replicate's distance from the point estimate is widened by
``1 / sqrt(share)`` (averaged over the tiers, weighted by seconds): about x1.2 for 9-second blocks at rho =
0.7. On simulated AR(1) seconds with phi = 0.7 this brings the 95 % interval of a slope from about 83 %
coverage to about 90 % (tests/toolkit/fit/test_fit_intervals.py). With ``rho <= 0`` the blocks are one second
long, nothing is widened, and the method is the plain stratified bootstrap. Caveats: the method and block
lengths are stated in every figure's note (``Resampling.note()``); the AR(1) rule is a stand-in for the real
dependence (at rho = 0.9 and 60-second tiers the interval still covers only about 80 %); and a rerun on
another day can still differ by more (another machine state), which only repeats of the sweep measure.

Too few seconds, no interval: with one steady second in a tier every replicate resamples that same second,
and with a handful in all the replicates' percentiles are far too narrow. Below ``MIN_SECONDS_PER_TIER`` in
any tier, or below ``MIN_SECONDS_PER_PARAMETER`` independent stretches per fitted parameter in all, no
bootstrap is run and the figures carry ``Estimate.no_interval`` (why) instead of a zero-width "95 % CI".
The second rule counts *blocks*, not seconds (a tier of 20 s in blocks of 5 s is 4 stretches), because
that is how many independent pieces of evidence the replicates recombine; with one-second blocks it is the
count of seconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from capacity.fit.estimate import CONFIDENCE, DASH, TIMES, Basis, Estimate, fmt

#: Bootstrap replicates per interval; 2000 keeps 95 % percentile limits stable to about ±1 % of their width.
N_RESAMPLES = 2000

#: A design whose standardised normal matrix is worse conditioned than this cannot separate its regressors.
MAX_CONDITION = 1e8

#: A bootstrap interval needs at least this many steady seconds in every tier...
MIN_SECONDS_PER_TIER = 3

#: ...and at least this many independent stretches (blocks) in all per fitted parameter (a mean has one,
#: a straight line two).
MIN_SECONDS_PER_PARAMETER = 5

#: Measured autocorrelation is capped here: at 1 the block-length rule diverges, and near it the AR(1)
#: stand-in says only "as long as the tier allows", which the n/2 clip gives anyway.
MAX_AUTOCORRELATION = 0.95

_CHUNK = 250

_TAILS = (100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2)


@dataclass(frozen=True)
class Resampling:
    """How the bootstrap resampled seconds: circular blocks of ``block_seconds[i]`` consecutive seconds
    within tier ``i`` (tiers in the order of their group labels, ``seconds_per_tier[i]`` seconds each),
    chosen from the pooled lag-1 ``autocorrelation`` of the residuals (see the module docstring)."""

    seconds_per_tier: tuple[int, ...]
    block_seconds: tuple[int, ...]
    autocorrelation: float

    @property
    def widening(self) -> float:
        """Factor on each replicate's distance from the point estimate that restores the long-run variance
        blocks of these lengths miss (see the module docstring); 1 without autocorrelation."""
        if not self.seconds_per_tier:
            return 1.0
        shares = [variance_share(b, self.autocorrelation) for b in self.block_seconds]
        return float(np.sqrt(1.0 / np.average(shares, weights=self.seconds_per_tier)))

    def widen(
        self, point: NDArray[np.float64] | float, replicates: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """``replicates`` moved away from ``point`` by ``widening``."""
        return point + (replicates - point) * self.widening

    def note(self) -> str:
        """The method, as every figure with this interval states it."""
        rho = f"lag-1 autocorrelation of the seconds {self.autocorrelation:.2f}"
        where = " within each tier" if len(self.seconds_per_tier) > 1 else ""
        if self.autocorrelation <= 0:
            return f"95 % CI: bootstrap over seconds{where} ({rho}, so blocks of 1 s)"
        low, high = min(self.block_seconds), max(self.block_seconds)
        blocks = f"{low} s" if low == high else f"{low}{DASH}{high} s"
        return (
            f"95 % CI: block bootstrap over seconds{where}, blocks of {blocks}, widened "
            f"{TIMES}{self.widening:.2f} for the dependence beyond a block ({rho})"
        )


def interval_shortfall(
    seconds_per_tier: Sequence[int], n_parameters: int, block_seconds: Sequence[int] | None = None
) -> str | None:
    """Why no 95 % interval can be computed from this many seconds per tier, or None when there are enough
    (see the module docstring). ``block_seconds`` (one per tier, default 1 s each) makes the total count
    blocks."""
    total, fewest, tiers = sum(seconds_per_tier), min(seconds_per_tier, default=0), len(seconds_per_tier)
    blocks = list(block_seconds) if block_seconds is not None else [1] * tiers
    stretches = sum(n / b for n, b in zip(seconds_per_tier, blocks, strict=True))
    needed = max(MIN_SECONDS_PER_PARAMETER * n_parameters, MIN_SECONDS_PER_TIER)
    if fewest >= MIN_SECONDS_PER_TIER and stretches >= needed:
        return None
    where = f" ({fewest} in the smallest of {tiers} tiers)" if tiers > 1 else ""
    rule = f"≥ {MIN_SECONDS_PER_TIER} per tier and " if tiers > 1 else ""
    unit = "in all"
    if max(blocks, default=1) > 1:
        where += f", about {fmt(stretches)} independent blocks of up to {max(blocks)} s"
        unit = "blocks in all (consecutive seconds are autocorrelated)"
    return (
        f"no 95 % CI from {total} steady second{'s' if total != 1 else ''}{where}: "
        f"an interval needs {rule}≥ {needed} {unit}; measure longer tiers"
    )


def percentile_interval(values: NDArray[np.float64]) -> tuple[float, float]:
    """Central ``CONFIDENCE`` interval of bootstrap replicates; ±inf survives (an unbounded end)."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    # "nearest" picks order statistics instead of interpolating, so inf - inf never makes a NaN.
    low, high = np.percentile(values, _TAILS, method="nearest")
    return float(low), float(high)


def autocorrelation(residuals: NDArray[np.float64], groups: NDArray[np.int_]) -> float:
    """Pooled lag-1 autocorrelation of ``residuals`` within each group (rows in time order), each group
    centred on its own mean, bias-corrected for short tiers and clipped to [0, ``MAX_AUTOCORRELATION``]."""
    products = squares = correction = 0.0
    for g in np.unique(groups):
        e = residuals[groups == g]
        e = e - e.mean()
        products += float(e[:-1] @ e[1:])
        squares += float(e @ e)
        correction += float(e @ e) / e.size
    if squares <= 0:
        return 0.0
    rho = products / squares
    # Marriott-Pope: the estimate is low by about (1 + 3 rho) / n; pooled, 1/n is weighted like the estimate.
    rho += (1 + 3 * rho) * correction / squares
    return float(np.clip(rho, 0.0, MAX_AUTOCORRELATION))


def block_length(n_seconds: int, rho: float) -> int:
    """Politis-White block length for a circular block bootstrap of ``n_seconds`` AR(1) seconds with lag-1
    autocorrelation ``rho``, clipped to [1, n/2] (see the module docstring)."""
    if rho <= 0 or n_seconds < 2:
        return 1
    b = (1.5 * n_seconds) ** (1 / 3) * (2 * rho / (1 - rho**2)) ** (2 / 3)
    return int(np.clip(round(b), 1, max(n_seconds // 2, 1)))


def variance_share(block: int, rho: float) -> float:
    """Share of an AR(1)'s long-run variance of a mean that a block bootstrap with blocks of ``block``
    seconds reproduces (Bartlett weights up to the block length)."""
    k = np.arange(1, block)
    return float((1 + 2 * np.sum((1 - k / block) * rho**k)) * (1 - rho) / (1 + rho))


def resampling_for(residuals: NDArray[np.float64], groups: NDArray[np.int_]) -> Resampling:
    """Block lengths for resampling rows within ``groups`` (sorted labels), from the residuals' dependence."""
    rho = autocorrelation(residuals, groups)
    _, per_tier = np.unique(groups, return_counts=True)
    seconds = tuple(int(n) for n in per_tier)
    return Resampling(seconds, tuple(block_length(n, rho) for n in seconds), rho)


@dataclass(frozen=True)
class LinearFit:
    """``y = coef[0] + coef[1]·x1 + …`` fitted by least squares, with bootstrap replicates of ``coef``."""

    coef: NDArray[np.float64]
    replicates: NDArray[np.float64]  # (n_resamples, k)
    n_samples: int
    n_groups: int
    r_squared: float
    no_interval: str | None = None  # why there are no replicates (too few seconds); see interval_shortfall
    resampling: Resampling | None = field(default=None)  # the blocks the replicates were drawn in

    def derive(self, fn: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> tuple[float, float, float]:
        """(point, low, high) of a quantity computed from the coefficients; ``fn`` maps (..., k) to (...)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            point = float(fn(self.coef))
            low, high = percentile_interval(np.asarray(fn(self.replicates), dtype=float))
        return point, low, high

    def coefficient(self, i: int) -> tuple[float, float, float]:
        """(point, low, high) of coefficient ``i`` (0 = intercept)."""
        return self.derive(lambda c: c[..., i])

    def interval_note(self) -> str:
        """How the interval was computed (blocks and autocorrelation), or "" when there is none."""
        return "" if self.resampling is None or self.no_interval else self.resampling.note()

    def estimate(
        self,
        fn: Callable[[NDArray[np.float64]], NDArray[np.float64]],
        unit: str,
        basis: Basis = "measured",
        note: str = "",
    ) -> Estimate:
        """``derive(fn)`` as an ``Estimate`` whose note ends with the interval's method; without an
        interval, and saying why, when there were too few seconds to bootstrap one."""
        method = self.interval_note()
        full = f"{note}; {method}" if note and method else note or method
        return Estimate.of(self.derive(fn), unit, basis, full, no_interval=self.no_interval)


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
    """Least-squares fit of ``y`` on ``x`` (n x p, an intercept is added) with a stratified block bootstrap.

    Rows of one group must be in time order (``tiers.stacked`` keeps them so): blocks are consecutive rows.
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

    resampling = resampling_for(residual, groups)
    shortfall = interval_shortfall(resampling.seconds_per_tier, design.shape[1], resampling.block_seconds)
    betas = np.empty((0, design.shape[1]))
    if shortfall is None:
        rng = np.random.default_rng(seed)
        # Normal equations of many replicates at once, in chunks so memory stays about chunk * n * k floats.
        chunks = []
        for size in np.diff(np.r_[0:n_resamples:_CHUNK, n_resamples]):
            rows = _stratified_indices(groups, int(size), rng, resampling.block_seconds)
            xb, yb = design[rows], y[rows]  # (chunk, n, k), (chunk, n)
            xtx, xty = np.einsum("bni,bnj->bij", xb, xb), np.einsum("bni,bn->bi", xb, yb)
            chunks.append(np.linalg.solve(xtx, xty[..., None])[..., 0])
        betas = resampling.widen(beta, np.concatenate(chunks))

    return LinearFit(
        coef=_unstandardise(beta, mean, std),
        replicates=_unstandardise(betas, mean, std),
        n_samples=int(y.size),
        n_groups=len(resampling.seconds_per_tier),
        r_squared=r_squared,
        no_interval=shortfall,
        resampling=resampling,
    )


def _unstandardise(
    beta: NDArray[np.float64], mean: NDArray[np.float64], std: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Coefficients on standardised columns -> coefficients in the original units (intercept first)."""
    slopes = beta[..., 1:] / std
    intercept = beta[..., 0] - np.sum(slopes * mean, axis=-1)
    return np.concatenate([intercept[..., None], slopes], axis=-1)


def _stratified_indices(
    groups: NDArray[np.int_],
    n_resamples: int,
    rng: np.random.Generator,
    block_seconds: Sequence[int] | None = None,
) -> NDArray[np.int_]:
    """(n_resamples, n) row indices, each replicate rebuilding every group from circular blocks of its
    consecutive rows (``block_seconds`` per group in label order; 1, single rows, by default)."""
    labels = np.unique(groups)
    blocks = [1] * labels.size if block_seconds is None else block_seconds
    parts = []
    for g, b in zip(labels, blocks, strict=True):
        members = np.flatnonzero(groups == g)
        n = members.size
        starts = rng.integers(0, n, size=(n_resamples, -(-n // b)))
        # Each start continues for b rows, wrapping at the tier's end; the last block is cut to fit n rows.
        rows = (starts[..., None] + np.arange(b)) % n
        parts.append(members[rows.reshape(n_resamples, -1)[:, :n]])
    return np.concatenate(parts, axis=1)


@dataclass(frozen=True)
class MeanFit:
    """A mean of per-second samples with its block-bootstrap interval (NaN ends and ``no_interval`` saying
    why when there are too few seconds)."""

    mean: float
    low: float
    high: float
    resampling: Resampling
    no_interval: str | None

    def interval_note(self) -> str:
        """How the interval was computed, or "" when there is none."""
        return "" if self.no_interval else self.resampling.note()


def mean_fit(samples: NDArray[np.float64], *, seed: int, n_resamples: int = N_RESAMPLES) -> MeanFit:
    """Mean of per-second samples (in time order) with a circular block bootstrap percentile interval;
    blocks from the samples' own lag-1 autocorrelation, as for ``fit_linear``."""
    samples = samples[np.isfinite(samples)]
    one_tier = np.zeros(samples.size, dtype=int)
    resampling = (
        resampling_for(samples - samples.mean(), one_tier) if samples.size else Resampling((), (), 0.0)
    )
    shortfall = interval_shortfall(list(resampling.seconds_per_tier), 1, resampling.block_seconds)
    if samples.size == 0:
        return MeanFit(float("nan"), float("nan"), float("nan"), resampling, shortfall)
    mean = float(samples.mean())
    if shortfall is not None:
        return MeanFit(mean, float("nan"), float("nan"), resampling, shortfall)
    if np.all(samples == samples[0]):
        return MeanFit(mean, mean, mean, resampling, None)
    rows = _stratified_indices(one_tier, n_resamples, np.random.default_rng(seed), resampling.block_seconds)
    low, high = percentile_interval(resampling.widen(mean, samples[rows].mean(axis=1)))
    return MeanFit(mean, low, high, resampling, None)


def mean_interval(
    samples: NDArray[np.float64], *, seed: int, n_resamples: int = N_RESAMPLES
) -> tuple[float, float, float]:
    """(mean, low, high) of per-second samples (``mean_fit`` without its method): NaN ends when there are
    too few samples for an interval (``interval_shortfall``)."""
    fit = mean_fit(samples, seed=seed, n_resamples=n_resamples)
    return fit.mean, fit.low, fit.high


#: Webb's six-point distribution for a wild bootstrap with few clusters (mean 0, variance 1): with G tiers it
#: gives 6^G sign-and-size patterns where Rademacher weights give 2^G (Webb 2014).
WEBB_WEIGHTS = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])

#: A wild cluster bootstrap needs this many more tiers than fitted parameters: with as many tiers as
#: parameters every tier's residual is 0 and the replicates never move.
MIN_EXTRA_TIERS = 2


@dataclass(frozen=True)
class TierBootstrap:
    """A wild cluster bootstrap with each tier as one cluster (see ``tier_bootstrap_weights``) for a fit of
    k parameters over G tiers: residuals scaled by ``inflation`` = sqrt(G / (G - k)) (the fit used up k of
    the G tiers' freedom), and each replicate's distance from the point estimate by ``widening`` =
    t(G - k) / z at 97.5 %: a variance estimated from G - k independent tiers is itself uncertain (the
    t reference Cameron & Miller 2015 recommend for few clusters)."""

    tiers: int
    inflation: float
    widening: float

    @classmethod
    def for_fit(cls, tiers: int, parameters: int) -> TierBootstrap:
        from scipy import stats  # only fits need scipy

        freedom = max(tiers - parameters, 1)
        tail = (1 + CONFIDENCE) / 2
        return cls(
            tiers, float(np.sqrt(tiers / freedom)), float(stats.t.ppf(tail, freedom) / stats.norm.ppf(tail))
        )

    def widen(self, point: float, low: float, high: float) -> tuple[float, float]:
        """The percentile interval (``low``, ``high``) of a figure, its ends moved away from ``point`` by
        ``widening`` (a figure derived from the coefficients, so the curve itself stays a fitted one)."""
        return point - (point - low) * self.widening, point + (high - point) * self.widening

    def note(self) -> str:
        return (
            f"95 % CI: wild bootstrap over the {self.tiers} tiers (each tier's residuals moved together, "
            f"Webb weights, scaled {TIMES}{self.inflation:.2f}; widened {TIMES}{self.widening:.2f} for "
            "few tiers), so tier-to-tier drift counts as a rerun's would"
        )


def tier_bootstrap_shortfall(n_tiers: int, n_parameters: int) -> str | None:
    """Why a fit over ``n_tiers`` tiers gets no tier bootstrap interval, or None when it can have one."""
    needed = n_parameters + MIN_EXTRA_TIERS
    if n_tiers >= needed:
        return None
    return f"no 95 % CI from {n_tiers} tiers: {n_parameters} parameters need ≥ {needed} tiers; add tiers"


def tier_bootstrap_weights(groups: NDArray[np.int_], *, n_resamples: int, seed: int) -> NDArray[np.float64]:
    """(n_resamples, n) wild-bootstrap weights, one Webb draw per tier and replicate, repeated over the
    tier's seconds: replicate ``m`` of a fit is the fit to ``fitted + weights[m] * inflation * residuals``.

    Why tiers and not seconds: a tier is one run at one time, and reruns of a sweep move whole tiers (one
    run's CPU per request at a rate sits 5-25 % from another's, with the tiers of one run scattered around
    their own curve about as much): resampling seconds within a tier keeps each tier's level, and its
    interval covered only 1-3 of 9 other runs' CPU limits. Moving each tier's residuals together (a wild
    cluster bootstrap: Cameron, Gelbach & Miller 2008) keeps the dependence within a tier whatever it is and
    lets the tiers' scatter around the curve stand for the drift a rerun would show. With few tiers it is
    conservative where the curve fits badly: a misfit is counted as drift."""
    _, tier = np.unique(groups, return_inverse=True)
    draws = np.random.default_rng(seed).choice(WEBB_WEIGHTS, size=(n_resamples, int(tier.max()) + 1))
    return draws[:, tier]


def resample_indices(
    groups: NDArray[np.int_], resampling: Resampling, *, n_resamples: int, seed: int
) -> NDArray[np.int_]:
    """(n_resamples, n) row indices of the block bootstrap ``fit_linear`` uses, for fits that are not linear
    (the USL): the same resampling as the other fits over seconds. (The CPU curve moves whole tiers
    instead: ``tier_bootstrap_weights``.)
    Replicates computed from these rows are then ``resampling.widen``-ed, as ``fit_linear``'s are, before
    ``resampling.note()`` describes their interval."""
    return _stratified_indices(groups, n_resamples, np.random.default_rng(seed), resampling.block_seconds)
