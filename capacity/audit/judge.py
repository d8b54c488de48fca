"""One verdict per claim (docs/audit.md):

- ``inconsistent``: the document's own arithmetic disagrees with the claim (its formula, over the other
  claims' values, misses it by more than the tolerance), or a day's volume is computed from a rate the
  document holds only at peak or in a burst. Decided before, and whatever, anything is measured.
- ``holds`` / ``refuted``: measured on this machine, compared as the claim says (``<=``, ``>=``, ``≈``
  within its tolerance).
- ``projected``: the claim is about hardware this machine is not (more cores, other memory); the fit's
  projection is compared instead, and ``meets`` says whether it would hold there.
- ``untestable``: the sweep cannot say (what it cannot measure, a rate past its highest tier, a bound
  not reached, a failure on fewer cores than the claim's machine), with the reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from capacity.audit.arithmetic import evaluate, names_in, parse_formula
from capacity.audit.claims import FORMULA_TOLERANCE, Claim, ClaimsFile
from capacity.audit.evidence import Figure, NotHere, SweepEvidence
from capacity.audit.units import from_base, to_base
from capacity.fit.estimate import fmt

VerdictKind = Literal["holds", "refuted", "projected", "untestable", "inconsistent"]
VERDICT_KINDS: tuple[VerdictKind, ...] = ("holds", "refuted", "projected", "untestable", "inconsistent")
#: The verdicts that fail an audit (exit 1).
FAILING: frozenset[VerdictKind] = frozenset({"refuted", "inconsistent"})


@dataclass(frozen=True)
class Verdict:
    """A claim judged. ``measured`` is in the claim's unit; ``ratio`` is measured / claimed."""

    claim: Claim
    kind: VerdictKind
    measured: float | None = None
    ratio: float | None = None
    basis: str = ""  # where the measured figure came from, or the arithmetic
    reason: str | None = None  # why untestable or inconsistent
    meets: bool | None = None  # projected: would the claim hold on its machine
    at_least: bool = False  # ``measured`` is a lower bound


@dataclass(frozen=True)
class AuditResult:
    """Every claim of a claims file judged against one sweep."""

    claims: ClaimsFile
    sweep: str
    order_share: float
    mix: str
    verdicts: tuple[Verdict, ...]
    measured_cores: float
    tally: dict[str, int] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(v.kind in FAILING for v in self.verdicts)


def audit(claims: ClaimsFile, evidence: SweepEvidence, sweep: str) -> AuditResult:
    """Judge every claim of ``claims`` with what ``evidence`` (a sweep and its fit) measured."""
    verdicts = tuple(judge(claim, claims, evidence) for claim in claims.claims)
    tally = Counter(v.kind for v in verdicts)
    return AuditResult(
        claims=claims,
        sweep=sweep,
        order_share=evidence.order_share,
        mix=evidence.mix_text,
        verdicts=verdicts,
        measured_cores=evidence.cores,
        tally={kind: tally.get(kind, 0) for kind in VERDICT_KINDS},
    )


def judge(claim: Claim, claims: ClaimsFile, evidence: SweepEvidence) -> Verdict:
    arithmetic = inconsistency(claim, claims)
    if arithmetic is not None:
        return arithmetic
    found = evidence.figure(claim)
    if isinstance(found, NotHere):
        return Verdict(claim, "untestable", reason=found.reason)
    return compare(claim, found)


def inconsistency(claim: Claim, claims: ClaimsFile) -> Verdict | None:
    """The inconsistent verdict if the document's arithmetic disagrees with ``claim``, else None."""
    if claim.formula is None:
        return None
    expression = parse_formula(claim.formula)
    used = [claims.claim(name) for name in names_in(expression)]
    if "seconds_per_day" in claim.formula:
        for other in used:
            if other.metric in ("rate", "burst_rate") and other.held != "sustained":
                return Verdict(
                    claim,
                    "inconsistent",
                    reason=f"a day's volume at {other.value:,g} {other.unit.text} assumes that rate for all "
                    f"86,400 s, but the document holds it only {_held_text(other)} ({other.id})",
                )
    values = {other.id: to_base(other.value, other.unit) for other in used}
    try:
        computed = evaluate(expression, values)
    except ZeroDivisionError:
        return Verdict(claim, "inconsistent", reason=f"its formula {claim.formula} divides by zero")
    claimed = to_base(claim.value, claim.unit)
    shown = from_base(computed, claim.unit)
    arithmetic = f"{claim.formula} = {fmt(shown)} {claim.unit.text}"
    if agrees(computed, claimed, FORMULA_TOLERANCE):
        return None
    gap = abs(computed - claimed) / abs(claimed) if claimed else math.inf
    return Verdict(
        claim,
        "inconsistent",
        measured=shown,
        ratio=computed / claimed if claimed else None,
        basis=arithmetic,
        reason=f"the document's own formula gives {fmt(shown)} {claim.unit.text}, not {fmt(claim.value)}: "
        f"{gap:.0%} apart",
    )


def compare(claim: Claim, figure: Figure) -> Verdict:
    """The claim against a measured or projected figure."""
    claimed = to_base(claim.value, claim.unit)
    measured = from_base(figure.value, claim.unit)
    ratio = figure.value / claimed if claimed else None
    passes = _passes(claim, figure.value, claimed)
    if figure.at_least and not passes and claim.op in (">=", ">"):
        reason = f"not reached in the measured range: at least {fmt(measured)} {claim.unit.text}"
        return Verdict(claim, "untestable", measured, ratio, figure.how, reason, at_least=True)
    if figure.at_least and passes and claim.op not in (">=", ">"):
        reason = f"only a lower bound was measured: at least {fmt(measured)} {claim.unit.text}"
        return Verdict(claim, "untestable", measured, ratio, figure.how, reason, at_least=True)
    if figure.fewer_cores and not passes:
        reason = (
            f"measured {fmt(measured)} {claim.unit.text} on fewer cores than the claim's "
            f"{claim.at.cores:g}: only a pass carries over to the bigger machine"
        )
        return Verdict(claim, "untestable", measured, ratio, figure.how, reason)
    bound = figure.at_least
    if figure.basis == "projection":
        return Verdict(claim, "projected", measured, ratio, figure.how, meets=passes, at_least=bound)
    return Verdict(claim, "holds" if passes else "refuted", measured, ratio, figure.how, at_least=bound)


def _passes(claim: Claim, measured: float, claimed: float) -> bool:
    if claim.op == ">=":
        return measured >= claimed
    if claim.op == ">":
        return measured > claimed
    if claim.op == "<=":
        return measured <= claimed
    if claim.op == "<":
        return measured < claimed
    return agrees(measured, claimed, claim.tolerance)


def agrees(value: float, claimed: float, tolerance: float) -> bool:
    """Within ``tolerance`` of the claimed value, relative to it (not to the larger of the two)."""
    return abs(value - claimed) <= tolerance * abs(claimed)


def _held_text(claim: Claim) -> str:
    if claim.held == "burst" and claim.at.duration_s:
        return f"in a {claim.at.duration_s:g}-second burst"
    return "at peak" if claim.held == "peak" else f"in a {claim.held}"
