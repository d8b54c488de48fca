"""Number formatting for the report: every figure with its unit, ``—`` for what was not measured."""

from __future__ import annotations

from capacity.fit.estimate import DASH, NO_INTERVAL, Estimate, fmt

__all__ = ["DASH", "MISSING", "basis_label", "estimate_interval", "estimate_value", "number", "percent"]

MISSING = "—"

#: How each kind of evidence is labelled on its badge.
BASIS_LABELS = {
    "measured": "measured",
    "interpolated": "interpolated",
    "extrapolated": "EXTRAPOLATED",
    "projection": "PROJECTION",
    "not_reached": "not reached",
    "insufficient_data": "insufficient data",
}


def number(value: float | None, unit: str = "", digits: int = 3) -> str:
    """``1,234 requests/s``; ``—`` when ``value`` is None."""
    if value is None:
        return MISSING
    return f"{fmt(value, digits)} {unit}".rstrip()


def percent(fraction: float | None) -> str:
    """A fraction 0-1 as ``1.25 %``; ``—`` when None."""
    if fraction is None:
        return MISSING
    return f"{fmt(100 * fraction)} %" if fraction else "0 %"


def basis_label(basis: str) -> str:
    """The badge text for an estimate's basis."""
    return BASIS_LABELS.get(basis, basis.replace("_", " "))


def estimate_value(estimate: Estimate) -> str:
    """The value with its unit, or what is known instead (``≥ 1,000 requests/s`` for a bound)."""
    if estimate.value is not None:
        return number(estimate.value, estimate.unit)
    if estimate.basis == "not_reached" and estimate.low is not None:
        return f"≥ {number(estimate.low, estimate.unit)}"
    if estimate.high is not None:
        return f"< {number(estimate.high, estimate.unit)}"
    return MISSING


def estimate_interval(estimate: Estimate) -> str:
    """``95 % CI 850-917`` or ``between tiers 1,499-2,403`` (en dash), ``no 95 % CI: too little data``
    when it could not be computed (the note says why); empty when there is no interval."""
    if estimate.value is not None and estimate.no_interval:
        return NO_INTERVAL
    if estimate.value is None or estimate.low is None or estimate.high is None:
        return ""
    kind = "95 % CI" if estimate.interval == "ci95" else "between tiers"
    return f"{kind} {fmt(estimate.low)}{DASH}{fmt(estimate.high)} {estimate.unit}".rstrip()
