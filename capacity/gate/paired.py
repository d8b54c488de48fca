"""Statistics on A/B pairs: each pair is the baseline (A) and the candidate (B) measured back to back on the
same machine, so a pair's difference carries what the machine did at that moment on both sides.

``paired_test(differences)``: the mean paired difference, its 95 % percentile-bootstrap interval (seeded:
same input, same interval), and the two-sided p-value of an exact sign-flip test: under "no change" each
difference is as likely to have either sign, so the observed mean is compared with the means of every
one of the 2^n sign assignments (a seeded sample of them above ``EXACT_UP_TO`` pairs). It assumes only
that the pairs are exchangeable, not that the differences are normal; its smallest two-sided p-value is
2 / 2^n, so n pairs can reach p < alpha only when 2 / 2^n < alpha (6 pairs: 0.031).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

EXACT_UP_TO = 16  # pairs; above this the sign assignments are sampled
SAMPLED_ASSIGNMENTS = 65_536
RESAMPLES = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedTest:
    """The mean of ``n`` paired differences, its interval, and the sign-flip test's p-value."""

    n: int
    mean: float
    low: float
    high: float
    p_value: float


def smallest_p(pairs: int) -> float:
    """The smallest two-sided p-value the sign-flip test can give for ``pairs`` pairs."""
    return min(1.0, 2.0 / 2**pairs)


def pairs_needed(alpha: float) -> int:
    """The fewest pairs with which the sign-flip test can give p < ``alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    pairs = 1
    while smallest_p(pairs) >= alpha:
        pairs += 1
    return pairs


def sign_flip_p(differences: Sequence[float], seed: int = 0) -> float:
    """Two-sided p-value of the mean of ``differences`` under random signs (exact up to EXACT_UP_TO)."""
    values = np.asarray(differences, dtype=float)
    n = values.size
    if n == 0:
        return 1.0
    observed = abs(values.mean())
    if n <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(SAMPLED_ASSIGNMENTS, n))
    means = np.abs(signs @ values) / n
    # ties count as extreme (a tolerance for rounding in the sums), so p is never below 2 / 2^n
    return float(np.mean(means >= observed - 1e-12 * max(1.0, observed)))


def bootstrap_interval(differences: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The percentile-bootstrap ``CONFIDENCE`` interval of the mean difference (pairs resampled)."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(RESAMPLES, values.size))].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_test(differences: Sequence[float], seed: int = 0) -> PairedTest:
    low, high = bootstrap_interval(differences, seed)
    mean = float(np.mean(differences)) if len(differences) else float("nan")
    return PairedTest(len(differences), mean, low, high, sign_flip_p(differences, seed))
