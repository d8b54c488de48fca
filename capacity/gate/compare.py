"""Verdicts: a run (or sweep) against a baseline, tier by tier (matched by name), metric by metric.

As pyperf's ``_compare``: a change is reported only when it is both statistically significant and large
enough to matter; otherwise it is **not significant**, never a misleading "3 % slower".

- **Relative checks** (one per metric and tier): the per-second samples of baseline and run are
  compared with a two-sided test of the difference in means (medians for P99) that allows for
  autocorrelated seconds (``difference_test``, below). **worse** when p < alpha and the value moved in
  the metric's bad direction by more than its threshold; **better** likewise in the good direction;
  otherwise **not significant**.
- **Absolute checks** against the run's own scenario SLO (P99, error rate): **fail** when more than
  ``max_violating_share`` of the steady seconds break the limit, else **pass**.
- **fail** (a broken tier): the run under test failed (the exchange did not come up, died, or was not the
  API) or the exchange answered no request successfully (hung, or only errors). A server that does not
  work is the worst regression there is.
- **inconclusive**: the tier cannot be compared - the run (or the baseline's tier) is unusable
  (interrupted, generator-bound, too few steady seconds), is missing, or a metric could not be measured
  on one side. Never a regression.

The gate's status: ``regression`` when any check is worse or failed, else ``inconclusive`` when a tier
could not be compared (or nothing could), else ``pass``.

**The test, and why not a permutation test.** Consecutive seconds of one run are autocorrelated (lag-1
0.6-0.7 for CPU per order): a GC pause, a group commit or a queue spans several seconds. Shuffling
single seconds treats 30 seconds as 30 independent facts, so on AR(1) seconds with phi = 0.8 and equal
means a permutation test called 41 % of comparisons significant at alpha = 0.01. Blocks of seconds do not
rescue it at the gate's sizes: 30 seconds at that dependence make 3 blocks of 10 s a side, 20 ways
to deal them, so no two-sided p below 0.1 exists. Instead ``difference_test`` is a Welch t-test whose
variances are those of an AR(1):

- the lag-1 autocorrelation rho is pooled from both sides (each centred on its own mean; Marriott-Pope
  bias-corrected and clipped to [0, 0.95] by ``capacity.fit.regression.autocorrelation``, the estimate the
  fit's block bootstrap uses): 30 + 30 seconds estimate it far better than either side alone;
- each side's variance of the statistic is its independent-seconds variance (``s^2 / n`` for a mean, the
  Maritz-Jarrett standard error squared for a median, which needs no density estimate and copes with
  ties) times the exact finite-sample AR(1) factor ``ar1_variance_factor(n, rho)``: the variance of an
  AR(1) mean over the naive ``s^2 / n``, both its numerator (the correlated terms of the mean) and its
  denominator (``s^2`` itself is low on autocorrelated data); 1 when rho = 0;
- the t reference has Welch-Satterthwaite degrees of freedom from the effective sample sizes
  ``n / factor``: a noisy variance from few independent stretches needs a wider reference.

Measured on simulated AR(1) seconds (tests/toolkit/gate/test_gate_statistics.py asserts them): with phi = 0.8,
30 vs 30 seconds and equal means, 2.0-2.6 % of comparisons are significant at alpha = 0.01 and 5.5-6.8 %
at 0.05 (means; simulations of 600 and 2000 pairs); for medians 1.0-1.1 % and 3.3-3.4 %. With independent
seconds (rho estimated 0) it is Welch's t-test (0.7 % at 0.01). Limits: the estimate of rho from a handful
of seconds is noisy and the factor is steep near 1, so short, strongly dependent tiers still reject too
often (10 vs 10 seconds at phi = 0.8: about 6 % at alpha = 0.01 for means); the AR(1) is a stand-in for
the real dependence; the median uses the mean's factor, which for Gaussian AR(1) seconds is larger than
the median's (conservative: less power, not false alarms). Power is what the dependence leaves: 30 vs 30
seconds at phi = 0.8 hold about as much information as 3 independent seconds a side, and a high estimate
of rho leaves about one degree of freedom, so at alpha = 0.01 a shift of 2 / 3 / 4 marginal standard
deviations is found in about 31 / 49 / 59 % of comparisons (60 s tiers: 2 sd in about 64 %). Same inputs,
same p: nothing is random.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from capacity.exit_codes import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK
from capacity.fit.regression import autocorrelation
from capacity.gate.baseline import Baseline
from capacity.gate.metrics import METRICS, Metric, MetricSamples, TierData
from capacity.gate.thresholds import Limit, Thresholds
from capacity.results.run_file import FloatArray

Verdict = Literal["better", "worse", "not significant", "inconclusive", "pass", "fail"]
Status = Literal["pass", "regression", "inconclusive"]

#: Fewer per-second samples than this on a side: no test (a variance and a lag-1 correlation need them).
MIN_SAMPLES = 3


class GateInputError(ValueError):
    """The two sides cannot be compared at all (no tier in common, a different workload): exit 2."""


@dataclass(frozen=True)
class Check:
    """One test case: a metric of a tier against the baseline, or an absolute SLO check.

    Values are in the metric's base unit (``Metric.display`` formats them). ``change`` is current vs
    baseline: relative (0.31 = +31 %) when ``relative``, else absolute; ``limit`` the threshold it was
    held to; ``p_value`` the test's (None when no test ran). ``detail`` explains the verdict in one line.
    """

    tier: str
    key: str
    label: str
    verdict: Verdict
    detail: str
    baseline: float | None = None
    current: float | None = None
    change: float | None = None
    relative: bool = True
    limit: str | None = None
    p_value: float | None = None
    n_baseline: int = 0
    n_current: int = 0

    @property
    def failed(self) -> bool:
        return self.verdict in ("worse", "fail")

    def display(self, value: float | None) -> str:
        """``value`` in this check's display unit."""
        metric = METRICS.get(self.key) or _SLO_METRICS.get(self.key)
        return metric.display(value) if metric else "-" if value is None else f"{value:g}"

    def change_text(self) -> str:
        """``+31.2 %``, ``+0.50 pt`` (absolute change of a share, in percentage points), or ``-``."""
        if self.change is None:
            return "-"
        metric = METRICS.get(self.key)
        if metric is None:
            return f"{self.change:+g}"
        return _change_words(self.change, self.relative, metric)


@dataclass(frozen=True)
class TierOutcome:
    """The checks of one tier; ``problems`` says why the tier could not be compared (empty when it could)."""

    name: str
    checks: tuple[Check, ...]
    problems: tuple[str, ...] = ()

    @property
    def inconclusive(self) -> bool:
        return bool(self.problems)


@dataclass(frozen=True)
class GateResult:
    """The whole comparison. ``warnings`` are things a reader must see (a different machine, unusable
    tiers); ``notes`` are context (tiers without a baseline, a busy machine)."""

    baseline: Baseline
    current: Baseline
    baseline_path: str
    current_path: str
    thresholds: Thresholds
    tiers: tuple[TierOutcome, ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    status: Status = "pass"

    @property
    def checks(self) -> list[Check]:
        return [c for t in self.tiers for c in t.checks]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.failed]

    def exit_code(self, strict: bool = False) -> int:
        """0 pass (or inconclusive), 1 regression, 3 inconclusive with ``strict``."""
        if self.status == "regression":
            return EXIT_FAILED
        if self.status == "inconclusive" and strict:
            return EXIT_INCONCLUSIVE
        return EXIT_OK


# ---------------------------------------------------------------------------------------------- gate


def gate(
    baseline: Baseline,
    current: Baseline,
    thresholds: Thresholds,
    baseline_path: str = "<baseline>",
    current_path: str = "<run>",
) -> GateResult:
    """Compare ``current`` with ``baseline`` tier by tier. GateInputError when no tier is in common or a
    common tier ran a different workload (the baseline must be re-recorded: not a regression)."""
    common = [t.name for t in current.tiers if baseline.tier(t.name) is not None]
    if not common:
        raise GateInputError(
            f"no tier in common: the baseline has {_names(baseline.tiers)}, "
            f"the run has {_names(current.tiers)}"
        )
    for name in common:
        _check_same_workload(baseline.tier(name), current.tier(name))  # type: ignore[arg-type]
    warnings, cpu_changed = _environment_warnings(baseline, current, thresholds)
    notes: list[str] = []
    outcomes: list[TierOutcome] = []
    for base in baseline.tiers:
        cur = current.tier(base.name)
        if cur is None:
            problem = f"tier {base.name} is in the baseline but not in the run"
            outcomes.append(
                TierOutcome(base.name, (_inconclusive(base.name, "tier", "Tier", problem),), (problem,))
            )
            continue
        outcomes.append(compare_tier(base, cur, thresholds, cpu_changed))
    for cur in current.tiers:
        if baseline.tier(cur.name) is None:
            notes.append(f"tier {cur.name} has no baseline: not compared")
    for outcome in outcomes:
        for problem in outcome.problems:
            warnings.append(f"INCONCLUSIVE tier {outcome.name}: {problem}")
    checks = [c for o in outcomes for c in o.checks]
    if any(c.failed for c in checks):
        status: Status = "regression"
    elif any(o.inconclusive for o in outcomes) or not any(c.verdict != "inconclusive" for c in checks):
        status = "inconclusive"
    else:
        status = "pass"
    return GateResult(
        baseline, current, baseline_path, current_path, thresholds, tuple(outcomes), tuple(warnings),
        tuple(notes), status,
    )  # fmt: skip


def compare_tier(
    base: TierData, cur: TierData, thresholds: Thresholds, cpu_changed: bool = False
) -> TierOutcome:
    """Every metric and SLO check of one tier (all inconclusive when either side is unusable; one failed
    check when the run under test is broken)."""
    if cur.broken:
        why = "; ".join(cur.broken)
        return TierOutcome(base.name, (Check(base.name, "tier", "Tier works", "fail", f"broken: {why}"),))
    problems = [f"baseline: {p}" for p in base.problems] + [f"run: {p}" for p in cur.problems]
    for side, tier in (("baseline", base), ("run", cur)):
        if not tier.problems and tier.steady_seconds < thresholds.min_steady_seconds:
            problems.append(
                f"{side}: only {tier.steady_seconds} steady second(s), fewer than the "
                f"{thresholds.min_steady_seconds} a comparison needs"
            )
    if problems:
        why = "; ".join(problems)
        checks = [_inconclusive(base.name, key, m.label, why) for key, m in METRICS.items()]
        checks += [_inconclusive(base.name, key, m.label, why) for key, m in _enabled_slo(thresholds).items()]
        return TierOutcome(base.name, tuple(checks), tuple(problems))
    checks = []
    for key, metric in METRICS.items():
        limit = thresholds.limits[key]
        if not limit.enabled:
            continue
        if cpu_changed and metric.machine_dependent:
            checks.append(
                _inconclusive(
                    base.name, key, metric.label, "measured on another CPU model than the baseline",
                    base.metrics.get(key), cur.metrics.get(key),
                )
            )  # fmt: skip
            continue
        checks.append(
            compare_metric(
                base.name, metric, base.metrics.get(key), cur.metrics.get(key), limit, thresholds.alpha
            )
        )
    checks += slo_checks(cur, thresholds)
    return TierOutcome(base.name, tuple(checks))


def compare_metric(
    tier: str,
    metric: Metric,
    base: MetricSamples | None,
    cur: MetricSamples | None,
    limit: Limit,
    alpha: float,
) -> Check:
    """One metric's verdict: better / worse / not significant, or inconclusive when it is missing."""
    for side, m in (("baseline", base), ("run", cur)):
        if m is None or m.value is None:
            why = (m.note if m is not None else None) or "not recorded"
            return _inconclusive(tier, metric.key, metric.label, f"{side}: {why}", base, cur)
    assert base is not None and cur is not None and base.value is not None and cur.value is not None
    if base.source != cur.source:
        why = f"the baseline's figure came from the {base.source}, the run's from the {cur.source}"
        return _inconclusive(tier, metric.key, metric.label, why, base, cur)
    if limit.relative and base.value == 0:
        why = f"the baseline's value is 0: a change relative to it is undefined ({limit.text(metric.key)})"
        return _inconclusive(tier, metric.key, metric.label, why, base, cur)
    change = _change(base.value, cur.value, limit.relative)
    worse_by = change if metric.better == "lower" else -change
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is caught below, not printed
        test = difference_test(base.samples, cur.samples, metric.statistic)
    if not math.isfinite(change) or (test is not None and not math.isfinite(test.p)):
        # Finite inputs can still overflow a double (a variance of 1e200s): no verdict rests on inf or NaN.
        why = "the figures overflow a double-precision number, so no change or test can be computed"
        return _inconclusive(tier, metric.key, metric.label, why, base, cur)
    p = test.p if test is not None else None
    limit_text = limit.text(metric.key)
    common = {
        "baseline": base.value,
        "current": cur.value,
        "change": change,
        "relative": limit.relative,
        "limit": limit_text,
        "p_value": p,
        "n_baseline": len(base.samples),
        "n_current": len(cur.samples),
    }
    figures = f"{metric.display(base.value)} -> {metric.display(cur.value)}"
    moved = _change_words(change, limit.relative, metric)
    if test is None:
        why = f"{figures}: too few per-second samples to test ({len(base.samples)} and {len(cur.samples)})"
        return Check(tier, metric.key, metric.label, "inconclusive", why, **common)  # type: ignore[arg-type]
    # The test compares the per-second samples; the change is of the value (a ratio of sums, a median of
    # runs). Both must point the same way for a verdict.
    reduce = np.mean if metric.statistic == "mean" else np.median
    agree = float(reduce(cur.samples) - reduce(base.samples)) * change >= 0
    significant = test.p < alpha and agree
    tested = f"p = {_p(test.p)}"
    method = test.method()
    if significant and worse_by > limit.amount:
        verdict: Verdict = "worse"
        why = (
            f"{metric.label} worse by {moved} ({figures}; threshold {limit_text}, {tested} < {alpha:g}; "
            f"{method})"
        )
    elif significant and -worse_by > limit.amount:
        verdict = "better"
        why = (
            f"{metric.label} better by {moved} ({figures}; threshold {limit_text}, {tested} < {alpha:g}; "
            f"{method})"
        )
    elif not agree:
        verdict = "not significant"
        why = f"{figures} ({moved}): the per-second samples moved the other way ({tested}; {method})"
    elif not significant:
        verdict = "not significant"
        why = f"{figures} ({moved}): {tested}, not significant at {alpha:g} ({method})"
    else:
        verdict = "not significant"
        why = f"{figures} ({moved}): within the {limit_text} threshold ({tested}; {method})"
    return Check(tier, metric.key, metric.label, verdict, why, **common)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Significance:
    """The outcome of ``difference_test``: the two-sided ``p``, the pooled lag-1 ``autocorrelation`` it
    allowed for, and the t reference's degrees of freedom ``df``."""

    p: float
    autocorrelation: float
    df: float

    def method(self) -> str:
        """The test, as the detail text names it next to p."""
        return (
            f"Welch t, AR(1)-adjusted for lag-1 autocorrelation {self.autocorrelation:.2f}, df {self.df:.1f}"
        )


def difference_test(
    a: Sequence[float] | FloatArray,
    b: Sequence[float] | FloatArray,
    statistic: Literal["mean", "median"] = "mean",
) -> Significance | None:
    """Two-sided test of the difference in ``statistic`` between two sets of per-second samples, allowing
    for autocorrelated seconds (a Welch t-test with AR(1) variances; see the module docstring). p is 1.0
    when neither side varies and both are equal (0.0 when they differ), NaN when the figures overflow a
    double; None with fewer than ``MIN_SAMPLES`` samples on a side (no test can say anything)."""
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return None
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    groups = np.repeat([0, 1], [x.size, y.size])
    rho = autocorrelation(np.concatenate([x, y]), groups)
    reduce = np.mean if statistic == "mean" else np.median
    difference = float(reduce(y) - reduce(x))
    variances, dfs = [], []
    for side in (x, y):
        factor = ar1_variance_factor(side.size, rho)
        variances.append(factor * _naive_variance(side, statistic))
        dfs.append(max(side.size / factor - 1, 1.0))
    total = sum(variances)
    if not (math.isfinite(total) and math.isfinite(difference)):
        return Significance(math.nan, rho, math.nan)
    if total == 0:
        return Significance(1.0 if difference == 0 else 0.0, rho, math.inf)
    # Welch-Satterthwaite, with each side's effective sample size in place of its seconds.
    df = total**2 / sum(v**2 / d for v, d in zip(variances, dfs, strict=True))

    from scipy import stats  # imported here: `capacity --help` lists this command without paying for scipy

    p = 2 * float(stats.t.sf(abs(difference) / math.sqrt(total), df))
    return Significance(min(p, 1.0), rho, df)


def ar1_variance_factor(n: int, rho: float) -> float:
    """Variance of the mean of ``n`` AR(1) seconds with lag-1 autocorrelation ``rho`` over its naive
    estimate ``s^2 / n``: ``(1 + 2 sum_k (1 - k/n) rho^k) / (1 - 2 sum_k (n - k) rho^k / (n (n - 1)))``,
    k = 1 .. n-1. The numerator is the correlated terms of the mean; the denominator the expected shortfall
    of ``s^2`` (deviations from a mean that followed the data). 1 when rho = 0."""
    if rho <= 0 or n < 2:
        return 1.0
    k = np.arange(1, n)
    powers = rho**k
    correlated = 1 + 2 * float(np.sum((1 - k / n) * powers))
    shortfall = 1 - 2 * float(np.sum((n - k) * powers)) / (n * (n - 1))
    return correlated / shortfall


def _naive_variance(samples: np.ndarray, statistic: Literal["mean", "median"]) -> float:
    """The statistic's variance as if the seconds were independent: ``s^2 / n`` for a mean, the
    Maritz-Jarrett standard error squared for a median."""
    if statistic == "mean":
        return float(samples.var(ddof=1)) / samples.size
    from scipy.stats import mstats

    return float(mstats.mjci(samples, prob=[0.5])[0]) ** 2


def _change(base: float, cur: float, relative: bool) -> float:
    """``cur - base``, over ``|base|`` when relative (``compare_metric`` has refused a base of 0 then)."""
    return (cur - base) / abs(base) if relative else cur - base


def _change_words(change: float, relative: bool, metric: Metric) -> str:
    """A change as text: relative in %, absolute in the metric's unit (shares in percentage points)."""
    if relative:
        return f"{change * 100:+.1f} %"
    if metric.unit == "%":
        return f"{change * metric.scale:+.{metric.digits}f} pt"
    return ("+" if change >= 0 else "-") + metric.display(abs(change))


def _p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.0001 else "< 0.0001"


# ---------------------------------------------------------------------------------------------- SLO


_SLO_METRICS: dict[str, Metric] = {
    "slo_p99": Metric("slo_p99", "SLO: P99 corrected", "lower", "ms", 1.0, 2),
    "slo_error_rate": Metric("slo_error_rate", "SLO: error rate", "lower", "%", 100.0, 2),
}


def _enabled_slo(thresholds: Thresholds) -> dict[str, Metric]:
    wanted = {"slo_p99": thresholds.slo.p99, "slo_error_rate": thresholds.slo.error_rate}
    return {key: m for key, m in _SLO_METRICS.items() if wanted[key]}


def slo_checks(cur: TierData, thresholds: Thresholds) -> list[Check]:
    """The run's absolute checks against its scenario's SLO, on per-second figures (see the module
    docstring); the whole-run figure is shown beside them."""
    checks = []
    share = thresholds.slo.max_violating_share
    for key, metric in _enabled_slo(thresholds).items():
        if key == "slo_p99":
            limit, whole = cur.slo.get("p99_limit_ms"), cur.slo.get("p99_ms")
            measured = cur.metrics.get("p99")
        else:
            limit, whole = cur.slo.get("error_rate_limit"), cur.slo.get("error_rate")
            measured = cur.metrics.get("error_rate")
        samples = measured.samples if measured is not None else ()
        if limit is None or not len(samples):
            checks.append(_inconclusive(cur.name, key, metric.label, "no SLO limit or no per-second figures"))
            continue
        over = sum(1 for x in samples if x > limit)
        allowed = math.floor(share * len(samples) + 1e-9)
        verdict: Verdict = "fail" if over > allowed else "pass"
        seconds = f"{over} of {len(samples)} steady seconds above {metric.display(limit)}"
        whole_text = f"whole run {metric.display(whole)}"
        why = (
            f"{metric.label} limit {metric.display(limit)} broken: {seconds} "
            f"(at most {allowed} allowed; {whole_text})"
            if verdict == "fail"
            else f"{seconds} (at most {allowed} allowed; {whole_text})"
        )
        checks.append(
            Check(cur.name, key, metric.label, verdict, why, current=whole, limit=metric.display(limit),
                  relative=False, n_current=len(samples))
        )  # fmt: skip
    return checks


# ---------------------------------------------------------------------------------------------- context


def _check_same_workload(base: TierData, cur: TierData) -> None:
    """GateInputError when a tier's offered load or request mix differs from the baseline's: the numbers
    would differ because the test changed, so the baseline must be re-recorded."""
    if (base.problems and not base.offered_rate) or (cur.problems and not cur.offered_rate):
        return
    if base.offered_rate > 0 and abs(cur.offered_rate / base.offered_rate - 1) > 0.02:
        raise GateInputError(
            f"tier {base.name}: offered {cur.offered_rate:,.0f}/s but the baseline was measured at "
            f"{base.offered_rate:,.0f}/s: the workload changed; record a new baseline with "
            "`capacity baseline update`"
        )
    base_mix, cur_mix = base.scenario.get("mix"), cur.scenario.get("mix")
    if base_mix and cur_mix and base_mix != cur_mix:
        raise GateInputError(
            f"tier {base.name}: the request mix differs from the baseline's ({cur_mix} vs {base_mix}); "
            "record a new baseline with `capacity baseline update`"
        )


def _environment_warnings(
    baseline: Baseline, current: Baseline, thresholds: Thresholds
) -> tuple[list[str], bool]:
    """Differences between where the baseline and the run were measured, and whether the CPU differs
    (then CPU-dependent metrics are inconclusive, unless ``same_cpu_model`` is off)."""
    b, c = baseline.environment, current.environment
    warnings = []
    cpu_changed = (b.cpu_model, b.logical_cpus) != (c.cpu_model, c.logical_cpus)
    if cpu_changed:
        what = f"{b.cpu_model} x{b.logical_cpus} vs {c.cpu_model} x{c.logical_cpus}"
        if thresholds.same_cpu_model:
            warnings.append(
                f"the baseline was measured on another machine ({what}): CPU per order and P99 are not "
                "compared; record a baseline on this kind of machine"
            )
        else:
            warnings.append(f"the baseline was measured on another machine ({what})")
    for label, old, new in (
        ("Python", b.python_version, c.python_version),
        ("pinning", b.pinned, c.pinned),
    ):
        if old != new:
            warnings.append(f"{label} differs from the baseline's: {old} vs {new}")
    bs, cs = baseline.settings or {}, current.settings or {}
    for key in sorted(set(bs) | set(cs)):
        if key.startswith("JOURNAL") and key != "JOURNAL_PATH" and bs.get(key) != cs.get(key):
            warnings.append(
                f"exchange setting {key} differs from the baseline's: {bs.get(key)} vs {cs.get(key)}"
            )
    return warnings, cpu_changed and thresholds.same_cpu_model


def _inconclusive(
    tier: str,
    key: str,
    label: str,
    why: str,
    base: MetricSamples | None = None,
    cur: MetricSamples | None = None,
) -> Check:
    return Check(
        tier, key, label, "inconclusive", why,
        baseline=base.value if base is not None else None,
        current=cur.value if cur is not None else None,
    )  # fmt: skip


def _names(tiers: Sequence[TierData]) -> str:
    return ", ".join(t.name for t in tiers) or "none"


__all__ = [
    "Check",
    "GateInputError",
    "GateResult",
    "Significance",
    "TierOutcome",
    "compare_metric",
    "difference_test",
    "gate",
]
