"""Universal Scalability Law (Gunther): throughput against concurrency, where the sweep varies concurrency.

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

``lambda`` is the throughput of one user alone (requests/s), ``sigma`` contention (serialised work, 0-1),
``kappa`` coherency (cross-talk that makes throughput *fall* past a peak). The peak is at
``N* = sqrt((1 - sigma) / kappa)``. Fitted with ``scipy.optimize.curve_fit`` (bounded: lambda, kappa >= 0,
0 <= sigma <= 1) on per-second samples.

Intervals: the same block bootstrap over seconds as every other fit (``regression``: circular blocks within
each tier, as long as the residuals' lag-1 autocorrelation asks, widened for the dependence beyond a block),
applied to the fit linearised at its optimum. Within a tier the concurrency is fixed, so a replicate only
reshuffles residuals, and one Gauss-Newton step from the optimum, ``(J'J)^-1 J' e*`` with ``J`` the
Jacobian of X(N) in the parameters and ``e*`` the resampled residuals, gives that replicate's parameters
without refitting (2,000 refits would take seconds). Draws are clipped to the model's bounds; percentiles
of the draws give the parameters' intervals and, through the formulas, those of N*, X(N*) and X(N). The
fit's covariance assumed independent seconds, which within a run they are not.

It needs at least ``MIN_LEVELS`` distinct concurrency levels (three parameters always fit three points), and
it only uses tiers where the *server* set the pace: closed-loop tiers, or open-model tiers whose achieved rate
fell behind the offered rate. Where the achieved rate simply followed an open-model schedule, throughput says
nothing about how the server scales with concurrency, and a fit would describe the schedule.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from capacity.fit.estimate import Estimate, ToDict, fmt, range_basis
from capacity.fit.regression import (
    N_RESAMPLES,
    Resampling,
    interval_shortfall,
    percentile_interval,
    resample_indices,
    resampling_for,
)
from capacity.fit.service_demand import RATE
from capacity.fit.tiers import TierMeasurement
from capacity.results.verdicts import KEPT_UP_TOLERANCE, kept_up

MIN_LEVELS = 4

CAVEAT = "fitted on tiers where the server, not the offered rate, set the throughput"


def usl(n: NDArray[np.float64] | float, lam: float, sigma: float, kappa: float) -> NDArray[np.float64]:
    """USL throughput (requests/s) at concurrency ``n`` (a 0-d array for a single ``n``)."""
    return np.asarray(lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)), dtype=float)


@dataclass(frozen=True)
class UslFit(ToDict):
    """Fitted USL parameters and the peak they imply; all insufficient_data when it cannot be fitted."""

    lam: Estimate
    sigma: Estimate
    kappa: Estimate
    peak_concurrency: Estimate
    peak_throughput: Estimate
    levels: tuple[int, ...] = ()
    r_squared: float | None = None
    fitted_over: str = ""
    caveat: str = CAVEAT
    resampling: Resampling | None = None  # the blocks the bootstrap drew seconds in (None: not fitted)
    no_interval: str | None = None  # why there are no intervals (too few independent blocks of seconds)
    _draws: NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def fitted(self) -> bool:
        """True when the USL could be fitted (else every figure is insufficient_data)."""
        return self._draws is not None

    def throughput(self, n: float) -> Estimate:
        """Fitted throughput at concurrency ``n`` (interpolated within the measured levels)."""
        lam, sigma, kappa = self.lam.value, self.sigma.value, self.kappa.value
        if self._draws is None or lam is None or sigma is None or kappa is None:
            return Estimate.insufficient(RATE, self.lam.note)
        value = float(usl(n, lam, sigma, kappa))
        low, high = percentile_interval(usl(np.float64(n), *self._draws.T))
        basis = range_basis(n, min(self.levels), max(self.levels))
        note = _with(f"USL at N = {fmt(n)} ({basis})", _method(self.resampling, self.no_interval))
        return Estimate(value, RATE, low, high, basis, note, no_interval=self.no_interval)

    def formulas(self) -> list[str]:
        """Plain-English formula with the fitted numbers."""
        if self._draws is None:
            return [f"Universal Scalability Law: {self.lam.note}"]
        lam, sigma, kappa = (fmt(p.value) for p in (self.lam, self.sigma, self.kappa))
        return [
            f"X(N) = {lam} N / (1 + {sigma} (N - 1) + {kappa} N (N - 1)) requests/s for N users "
            f"(sigma {self.sigma.text()}, kappa {self.kappa.text()}; {self.fitted_over}; {self.caveat})",
            f"Peak at N* ≈ {self.peak_concurrency.text()}, X(N*) ≈ {self.peak_throughput.text()}",
        ]


def fit_usl(
    tiers: Sequence[TierMeasurement], *, tolerance: float = KEPT_UP_TOLERANCE, seed: int = 0
) -> UslFit:
    """Fit the USL to per-second achieved rates against concurrency, over the server-paced ``tiers``.

    ``tolerance``: a tier is server-paced when it achieved less than ``1 - tolerance`` of its offered rate.
    """
    paced = [t for t in tiers if not kept_up(t.offered_rate, t.mean_achieved, tolerance)]
    if len({t.concurrency for t in paced}) < MIN_LEVELS:
        return _insufficient(_too_few_levels(tiers, paced))
    n = np.concatenate([np.full(t.achieved_rate.size, float(t.concurrency)) for t in paced])
    x = np.concatenate([t.achieved_rate for t in paced])
    tier = np.concatenate([np.full(t.achieved_rate.size, i) for i, t in enumerate(paced)])
    keep = np.isfinite(x) & (n > 0)
    n, x, tier = n[keep], x[keep], tier[keep]
    levels = tuple(sorted({int(v) for v in n}))
    if len(levels) < MIN_LEVELS:
        return _insufficient(
            f"not enough concurrency levels with samples: {len(levels)}, need ≥ {MIN_LEVELS}"
        )

    import scipy.optimize  # ~1 s of import: only when a fit runs

    lowest = n == levels[0]
    p0 = (max(float(x[lowest].mean()) / levels[0], 1e-9), 0.01, 1e-4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", scipy.optimize.OptimizeWarning)
            popt, pcov = scipy.optimize.curve_fit(usl, n, x, p0=p0, bounds=([0, 0, 0], [np.inf, 1, np.inf]))
    except (RuntimeError, ValueError, scipy.optimize.OptimizeWarning) as exc:
        return _insufficient(f"USL fit did not converge ({exc})")
    if not np.all(np.isfinite(pcov)):
        return _insufficient("USL fit converged but its parameters are not identifiable from these levels")

    residual = x - usl(n, *popt)
    resampling = resampling_for(residual, tier)
    draws, no_interval = _bootstrap(n, residual, tier, popt, resampling, seed)
    method = _method(resampling, no_interval)
    total = float(np.sum((x - x.mean()) ** 2))
    where = f"fitted over {len(levels)} concurrency levels ({x.size} s)"
    lam, sigma, kappa = _parameters(popt, draws, method, no_interval)
    peak_n, peak_x = _peak(popt, draws, levels, method, no_interval)
    return UslFit(
        lam=lam,
        sigma=sigma,
        kappa=kappa,
        peak_concurrency=peak_n,
        peak_throughput=peak_x,
        levels=levels,
        fitted_over=where,
        r_squared=1 - float(residual @ residual) / total if total > 0 else None,
        resampling=resampling,
        no_interval=no_interval,
        _draws=draws,
    )


def _bootstrap(
    n: NDArray[np.float64],
    residual: NDArray[np.float64],
    tier: NDArray[np.int_],
    popt: NDArray[np.float64],
    resampling: Resampling,
    seed: int,
) -> tuple[NDArray[np.float64], str | None]:
    """(draws of the parameters, why there are none): the linearised block bootstrap of the module
    docstring. Without enough independent blocks the draws are empty."""
    shortfall = interval_shortfall(list(resampling.seconds_per_tier), popt.size, resampling.block_seconds)
    if shortfall is not None:
        return np.empty((0, popt.size)), shortfall
    jacobian = _jacobian(n, popt)
    scale = np.linalg.norm(jacobian, axis=0)
    scale[scale == 0] = 1.0
    # Columns scaled to unit length: lambda (~1e3) and kappa (~1e-4) in one pseudo-inverse stay well posed.
    step = np.linalg.pinv(jacobian / scale) / scale[:, None]  # (3, n): residuals -> parameter change
    rows = resample_indices(tier, resampling, n_resamples=N_RESAMPLES, seed=seed)
    draws = resampling.widen(popt, popt + residual[rows] @ step.T)
    draws = np.clip(draws, [0, 0, 0], [np.inf, 1, np.inf])  # keep draws inside the model's bounds
    return draws, None


def _jacobian(n: NDArray[np.float64], popt: NDArray[np.float64]) -> NDArray[np.float64]:
    """(len(n), 3) derivatives of X(N) in lambda, sigma and kappa at ``popt``."""
    lam, sigma, kappa = popt
    d = 1 + sigma * (n - 1) + kappa * n * (n - 1)
    return np.column_stack([n / d, -lam * n * (n - 1) / d**2, -lam * n * n * (n - 1) / d**2])


def _method(resampling: Resampling | None, no_interval: str | None) -> str:
    """How the intervals were computed, or "" when there are none."""
    return "" if resampling is None or no_interval else resampling.note()


def _with(note: str, method: str) -> str:
    """``note``, then the interval's method when there is one."""
    return f"{note}; {method}" if method else note


def _parameters(
    popt: NDArray[np.float64], draws: NDArray[np.float64], method: str, no_interval: str | None
) -> tuple[Estimate, Estimate, Estimate]:
    """Parameter estimates with percentile intervals of the (bound-clipped) bootstrap draws."""
    specs = (
        (f"{RATE} per user", "throughput of one user alone"),
        ("", "contention: the serialised fraction of the work"),
        ("", "coherency: cross-talk that makes throughput fall past the peak"),
    )
    lam, sigma, kappa = (
        Estimate(
            value,
            unit,
            *percentile_interval(draws[:, i]),
            "measured",
            _with(note, method),
            no_interval=no_interval,
        )
        for i, (value, (unit, note)) in enumerate(zip(popt, specs, strict=True))
    )
    return lam, sigma, kappa


def _peak(
    popt: NDArray[np.float64],
    draws: NDArray[np.float64],
    levels: tuple[int, ...],
    method: str,
    no_interval: str | None,
) -> tuple[Estimate, Estimate]:
    """N* = sqrt((1 - sigma) / kappa) and X(N*), or not_reached when there is no coherency penalty."""
    _, sigma, kappa = popt
    if kappa <= 0:
        note = f"no coherency penalty (kappa = 0): throughput does not peak within or beyond N = {levels[-1]}"
        return Estimate.not_reached("users", note, at_least=levels[-1]), Estimate.not_reached(RATE, note)
    with np.errstate(divide="ignore", invalid="ignore"):
        n_draws = np.sqrt((1 - draws[:, 1]) / draws[:, 2])
        # kappa = 0 in a draw: no peak, throughput tends to lambda / sigma.
        x_draws = np.where(np.isinf(n_draws), draws[:, 0] / draws[:, 1], usl(n_draws, *draws.T))
    n_star = float(np.sqrt((1 - sigma) / kappa))
    basis = range_basis(n_star, levels[0], levels[-1])
    note = _with(f"peak of the fitted curve ({basis}; measured N {levels[0]}-{levels[-1]})", method)
    x_star = float(usl(np.float64(n_star), *popt))
    return (
        Estimate(n_star, "users", *percentile_interval(n_draws), basis, note, no_interval=no_interval),
        Estimate(x_star, RATE, *percentile_interval(x_draws), basis, note, no_interval=no_interval),
    )


def _too_few_levels(tiers: Sequence[TierMeasurement], paced: Sequence[TierMeasurement]) -> str:
    """Why there is no fit, in words: too few levels at all, or too few where the server set the pace."""
    all_levels, paced_levels = len({t.concurrency for t in tiers}), len({t.concurrency for t in paced})
    note = f"not enough concurrency levels: {paced_levels} server-paced, need ≥ {MIN_LEVELS}"
    if all_levels >= MIN_LEVELS:
        note += f" ({all_levels} in the sweep, but elsewhere throughput just followed the offered rate)"
    return note


def _insufficient(note: str) -> UslFit:
    return UslFit(
        lam=Estimate.insufficient(f"{RATE} per user", note),
        sigma=Estimate.insufficient("", note),
        kappa=Estimate.insufficient("", note),
        peak_concurrency=Estimate.insufficient("users", note),
        peak_throughput=Estimate.insufficient(RATE, note),
    )
