"""Universal Scalability Law (Gunther): throughput against concurrency, where the sweep varies concurrency.

    X(N) = lambda * N / (1 + sigma * (N - 1) + kappa * N * (N - 1))

``lambda`` is the throughput of one user alone (orders/s), ``sigma`` contention (serialised work, 0-1),
``kappa`` coherency (cross-talk that makes throughput *fall* past a peak). The peak is at
``N* = sqrt((1 - sigma) / kappa)``. Fitted with ``scipy.optimize.curve_fit`` (bounded: lambda, kappa >= 0,
0 <= sigma <= 1) on per-second samples; parameter intervals come from the fit's covariance (t quantiles), and
intervals of N* and X(N*) from seeded draws of the parameters from that covariance.

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

from capacity.fit.estimate import CONFIDENCE, Estimate, ToDict, fmt, range_basis
from capacity.fit.regression import percentile_interval
from capacity.fit.service_demand import RATE
from capacity.fit.tiers import TierMeasurement
from capacity.verdicts import KEPT_UP_TOLERANCE, kept_up

MIN_LEVELS = 4
N_DRAWS = 4000

CAVEAT = "fitted on tiers where the server, not the offered rate, set the throughput"


def usl(n: NDArray[np.float64], lam: float, sigma: float, kappa: float) -> NDArray[np.float64]:
    """USL throughput (orders/s) at concurrency ``n``."""
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


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
    _draws: NDArray[np.float64] | None = field(default=None, repr=False)

    @property
    def fitted(self) -> bool:
        """True when the USL could be fitted (else every figure is insufficient_data)."""
        return self._draws is not None

    def throughput(self, n: float) -> Estimate:
        """Fitted throughput at concurrency ``n`` (interpolated within the measured levels)."""
        if self._draws is None:
            return Estimate.insufficient(RATE, self.lam.note)
        value = usl(np.float64(n), self.lam.value, self.sigma.value, self.kappa.value)
        low, high = percentile_interval(usl(np.float64(n), *self._draws.T))
        basis = range_basis(n, min(self.levels), max(self.levels))
        return Estimate(value, RATE, low, high, basis, f"USL at N = {fmt(n)} ({basis})")

    def formulas(self) -> list[str]:
        """Plain-English formula with the fitted numbers."""
        if self._draws is None:
            return [f"Universal Scalability Law: {self.lam.note}"]
        lam, sigma, kappa = (fmt(p.value) for p in (self.lam, self.sigma, self.kappa))
        return [
            f"X(N) = {lam} N / (1 + {sigma} (N - 1) + {kappa} N (N - 1)) orders/s for N users "
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
    keep = np.isfinite(x) & (n > 0)
    n, x = n[keep], x[keep]
    levels = tuple(sorted({int(v) for v in n}))
    if len(levels) < MIN_LEVELS:
        return _insufficient(
            f"not enough concurrency levels with samples: {len(levels)}, need ≥ {MIN_LEVELS}"
        )

    import scipy.optimize  # ~1 s of import: only when a fit runs, never for `capacity --help` or `run`

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

    draws = np.random.default_rng(seed).multivariate_normal(popt, pcov, size=N_DRAWS, check_valid="ignore")
    draws = np.clip(draws, [0, 0, 0], [np.inf, 1, np.inf])  # keep draws inside the model's bounds
    residual = x - usl(n, *popt)
    total = float(np.sum((x - x.mean()) ** 2))
    where = f"fitted over {len(levels)} concurrency levels ({x.size} s)"
    lam, sigma, kappa = _parameters(popt, pcov, x.size)
    peak_n, peak_x = _peak(popt, draws, levels)
    return UslFit(
        lam=lam,
        sigma=sigma,
        kappa=kappa,
        peak_concurrency=peak_n,
        peak_throughput=peak_x,
        levels=levels,
        fitted_over=where,
        r_squared=1 - float(residual @ residual) / total if total > 0 else None,
        _draws=draws,
    )


def _parameters(
    popt: NDArray[np.float64], pcov: NDArray[np.float64], n_samples: int
) -> tuple[Estimate, Estimate, Estimate]:
    """Parameter estimates with t intervals from the covariance, clipped at the model's bounds."""
    import scipy.stats  # see fit_usl

    half = scipy.stats.t.ppf((1 + CONFIDENCE) / 2, max(n_samples - 3, 1)) * np.sqrt(np.diag(pcov))
    low = np.maximum(popt - half, 0.0)
    high = np.minimum(popt + half, [np.inf, 1.0, np.inf])
    specs = (
        (f"{RATE} per user", "throughput of one user alone"),
        ("", "contention: the serialised fraction of the work"),
        ("", "coherency: cross-talk that makes throughput fall past the peak"),
    )
    lam, sigma, kappa = (
        Estimate(value, unit, lo, hi, "measured", note)
        for value, lo, hi, (unit, note) in zip(popt, low, high, specs, strict=True)
    )
    return lam, sigma, kappa


def _peak(
    popt: NDArray[np.float64], draws: NDArray[np.float64], levels: tuple[int, ...]
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
    note = f"peak of the fitted curve ({basis}; measured N {levels[0]}-{levels[-1]})"
    return (
        Estimate(n_star, "users", *percentile_interval(n_draws), basis, note),
        Estimate(float(usl(np.float64(n_star), *popt)), RATE, *percentile_interval(x_draws), basis, note),
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
