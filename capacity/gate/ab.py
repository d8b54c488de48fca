"""``capacity gate --against REV``: the baseline and the candidate measured on the same machine at the same
time, interleaved, and compared pair by pair.

A stored baseline is measured on one machine at one time; gated on another machine (or the same one, busier)
its CPU per order and P99 say more about the machines than about the change. Here both sides run now: the
baseline (A, a git revision checked out and built beside this one, or a running server) and the candidate (B,
this checkout's embedded exchange, or another running server), each tier as a pair of runs with the same
generator, pinning and scenario, in the order A B B A A B ... (``interleaving``) so a drift of the machine
falls on both sides equally. Each metric is compared over the pairs (``capacity.gate.paired``): the
per-pair difference of B from A (a log ratio for a relative limit, a difference for an absolute one), its
mean with a 95 % interval, and a sign-flip test. **worse** when p < ``alpha`` and the mean moved past the
metric's limit (thresholds.yaml) in its bad direction, **better** likewise in the good one, **not
significant** otherwise, **inconclusive** when fewer than ``MIN_PAIRS`` pairs could be compared (a run was
generator-bound, disturbed or broken). A broken candidate (its run failed, or no answer) is a regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from capacity.exit_codes import EXIT_FAILED, EXIT_INCONCLUSIVE, EXIT_OK
from capacity.gate.compare import Status, Verdict
from capacity.gate.metrics import METRICS, TierData, tier_data
from capacity.gate.paired import PairedTest, paired_test, pairs_needed, smallest_p
from capacity.gate.thresholds import Thresholds
from capacity.run.orchestrator import RunOptions, RunResult
from capacity.scenario import Sweep

Side = Literal["A", "B"]
#: Fewer comparable pairs than this: the metric is inconclusive.
MIN_PAIRS = 3
#: The metrics compared pair by pair (CPU per request, P99, throughput, errors).
AB_METRICS = ("cpu_per_order", "p99", "throughput", "error_rate")
SIDE_NAMES = {"A": "baseline", "B": "candidate"}


def interleaving(pairs: int) -> list[tuple[int, Side]]:
    """The order of the runs: pair 1 A then B, pair 2 B then A, and so on (A B B A A B ...)."""
    order: list[tuple[int, Side]] = []
    for index in range(1, pairs + 1):
        sides: tuple[Side, Side] = ("A", "B") if index % 2 else ("B", "A")
        order += [(index, side) for side in sides]
    return order


@dataclass(frozen=True)
class PairRun:
    """One run of one side of one pair, reduced as the gate reduces runs."""

    pair: int
    side: Side
    tier: str
    order: int  # its place in time, from 1
    run_dir: str
    data: TierData


@dataclass(frozen=True)
class PairedCheck:
    """One metric of one tier over the pairs. ``change`` is B against A: relative (0.31 = +31 %) when
    ``relative``, else absolute in the metric's base unit, with its 95 % interval ``low``-``high``."""

    tier: str
    key: str
    label: str
    verdict: Verdict
    detail: str
    pairs: int
    change: float | None = None
    low: float | None = None
    high: float | None = None
    relative: bool = True
    p_value: float | None = None
    limit: str | None = None
    differences: tuple[float, ...] = ()

    @property
    def failed(self) -> bool:
        return self.verdict in ("worse", "fail")


@dataclass(frozen=True)
class ABResult:
    """Every pair's runs in time order and every metric's paired verdict."""

    baseline: str  # what A was: "revision 1a2b3c4" or a URL
    candidate: str
    runs: tuple[PairRun, ...]
    checks: tuple[PairedCheck, ...]
    thresholds: Thresholds
    notes: tuple[str, ...] = ()
    status: Status = "pass"

    @property
    def failures(self) -> list[PairedCheck]:
        return [c for c in self.checks if c.failed]

    def exit_code(self, strict: bool = False) -> int:
        """0 pass (or inconclusive), 1 a regression the pairs confirm, 3 inconclusive with ``strict``."""
        if self.status == "regression":
            return EXIT_FAILED
        return EXIT_INCONCLUSIVE if self.status == "inconclusive" and strict else EXIT_OK


# ---------------------------------------------------------------------------------------------- running

RunFunction = Callable[..., RunResult]


@dataclass(frozen=True)
class SideSetup:
    """How to run one side: the run options (embedded exchange settings, or a target) and its name."""

    name: str
    options: RunOptions


def run_pairs(
    sweep: Sweep,
    sides: dict[Side, SideSetup],
    pairs: int,
    output_dir: Path,
    thresholds: Thresholds,
    run: RunFunction,
    progress: Callable[[str], None] | None = None,
) -> list[PairRun]:
    """Run every tier of ``sweep`` on both sides, ``pairs`` times, interleaved; runs go to
    ``output_dir/pair-NN-S/<tier>``. ``run`` is ``run_scenario`` (a stand-in in tests)."""
    runs: list[PairRun] = []
    for pair, side in interleaving(pairs):
        for tier in sweep.tiers:
            run_dir = output_dir / f"pair-{pair:02d}-{side}" / tier.name
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            if progress is not None:
                progress(f"pair {pair}/{pairs}, {SIDE_NAMES[side]} ({sides[side].name}): tier {tier.name}")
            options = replace(sides[side].options, run_dir=run_dir)
            result: RunResult = run(tier.scenario, options)
            runs.append(
                PairRun(
                    pair=pair,
                    side=side,
                    tier=tier.name,
                    order=len(runs) + 1,
                    run_dir=str(result.path),
                    data=tier_data(result.run, tier.name, thresholds.min_steady_seconds, paired=True),
                )
            )
    return runs


# ---------------------------------------------------------------------------------------------- comparing


def compare_pairs(
    runs: Sequence[PairRun], thresholds: Thresholds, baseline: str, candidate: str, alpha: float
) -> ABResult:
    """Every metric of every tier over the pairs (see the module docstring)."""
    checks: list[PairedCheck] = []
    notes: list[str] = []
    tiers = list(dict.fromkeys(r.tier for r in runs))
    for tier in tiers:
        by_pair: dict[int, dict[Side, PairRun]] = {}
        for r in runs:
            if r.tier == tier:
                by_pair.setdefault(r.pair, {})[r.side] = r
        broken = [p for p, sides in by_pair.items() if "B" in sides and sides["B"].data.broken]
        if broken:
            reason = "; ".join(by_pair[broken[0]]["B"].data.broken)
            checks.append(PairedCheck(tier, "broken", "Candidate works", "fail", reason, len(broken)))
            continue
        usable = {
            p: sides
            for p, sides in by_pair.items()
            if len(sides) == 2 and sides["A"].data.usable and sides["B"].data.usable
        }
        for p in sorted(set(by_pair) - set(usable)):
            problems = [
                f"{SIDE_NAMES[s]}: {'; '.join(r.data.problems)}"
                for s, r in by_pair[p].items()
                if r.data.problems
            ]
            notes.append(f"tier {tier}, pair {p} left out: {'; '.join(problems) or 'a side is missing'}")
        for key in AB_METRICS:
            checks.append(_check(tier, key, usable, thresholds, alpha))
    status: Status = "pass"
    if any(c.failed for c in checks):
        status = "regression"
    elif any(c.verdict == "inconclusive" for c in checks):
        status = "inconclusive"
    return ABResult(baseline, candidate, tuple(runs), tuple(checks), thresholds, tuple(notes), status)


def _check(
    tier: str, key: str, usable: dict[int, dict[Side, PairRun]], thresholds: Thresholds, alpha: float
) -> PairedCheck:
    metric = METRICS[key]
    limit = thresholds.ab_limits[key]
    differences: list[float] = []
    for sides in usable.values():
        a, b = sides["A"].data.metrics[key].value, sides["B"].data.metrics[key].value
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            continue
        if limit.relative:
            if a <= 0 or b <= 0:
                continue
            differences.append(math.log(b / a))
        else:
            differences.append(b - a)
    n = len(differences)
    if n < MIN_PAIRS or smallest_p(n) >= alpha:
        # Too few pairs for the sign-flip test to say anything: not "not significant", which would read as
        # evidence of no change when nothing could have been found
        why = (
            f"{n} comparable pair(s), fewer than the {MIN_PAIRS} a paired test needs"
            if n < MIN_PAIRS
            else f"{n} comparable pairs: the sign-flip test cannot reach p < {alpha:g} (it needs "
            f"{pairs_needed(alpha)}); run more pairs (--pairs)"
        )
        return PairedCheck(tier, key, metric.label, "inconclusive", why, n, relative=limit.relative)
    test = paired_test(differences)
    change, low, high = _as_change(test, limit.relative)
    worse_sign = 1 if metric.better == "lower" else -1
    beyond = change * worse_sign > limit.amount if limit.enabled else False
    better = -change * worse_sign > limit.amount if limit.enabled else False
    verdict: Verdict = "not significant"
    if test.p_value < alpha and beyond:
        verdict = "worse"
    elif test.p_value < alpha and better:
        verdict = "better"
    shown = [_change_text(x, limit.relative, key) for x in (change, low, high)]
    detail = (
        f"{shown[0]} over {n} pairs (95 % interval {shown[1]} to {shown[2]}), "
        f"p = {test.p_value:.3g}; limit {limit.text(key)}"
    )
    return PairedCheck(
        tier,
        key,
        metric.label,
        verdict,
        detail,
        n,
        change,
        low,
        high,
        limit.relative,
        test.p_value,
        limit.text(key),
        tuple(differences),
    )


def _as_change(test: PairedTest, relative: bool) -> tuple[float, float, float]:
    if relative:  # the mean log ratio back to a relative change
        return math.expm1(test.mean), math.expm1(test.low), math.expm1(test.high)
    return test.mean, test.low, test.high


def _change_text(change: float, relative: bool, key: str) -> str:
    if relative:
        return f"{change * 100:+.1f} %"
    metric = METRICS[key]
    return f"{'+' if change >= 0 else '-'}{metric.display(abs(change))}"
