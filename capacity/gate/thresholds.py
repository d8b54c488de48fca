"""The gate's thresholds: ``scenarios/gate/thresholds.yaml`` read and validated into ``Thresholds``.

The file (every key optional; what is left out keeps the default below)::

    alpha: 0.01                  # significance level of the two-sided test (compare.py)
    min_steady_seconds: 6        # fewer steady seconds on either side: the tier is inconclusive
    metrics:                     # per metric: when a change is a regression
      cpu_per_order: {fail_if_worse_by: 25%}     # relative to the baseline's value
      error_rate: {fail_if_worse_by: 0.02}       # a plain number: absolute, in the metric's base unit
      rss_per_resting_order: {enabled: false}    # not compared
    slo:                         # absolute checks against the scenario's own SLO
      p99: true
      error_rate: true
      max_violating_share: 25%   # fail only when more steady seconds than this break the limit
    same_cpu_model: true         # CPU-dependent metrics are inconclusive against another CPU model

A metric is **worse** when it moved in its bad direction by more than ``fail_if_worse_by`` *and* the
per-second samples differ significantly (p < ``alpha``); **better** likewise in the good direction;
anything else is **not significant**. ``ThresholdsError`` lists every problem of a bad file as
``file:line: field: message``.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from capacity.gate.metrics import METRICS
from capacity.input_limits import InputLimitError, check_yaml_structure, read_bounded_text

DEFAULT_PATH = Path("scenarios/gate/thresholds.yaml")
#: How many A/B pairs a tier may have (``ab_pairs``, ``--pairs``).
AB_PAIRS_RANGE = (3, 50)


class ThresholdsError(ValueError):
    """A thresholds file cannot be used; ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)"
        )
        self.problems = problems


@dataclass(frozen=True)
class Limit:
    """When one metric counts as worse (or better): by more than ``amount``, relative to the baseline's
    value (0.25 = 25 %) when ``relative``, else absolute in the metric's base unit."""

    amount: float
    relative: bool = True
    enabled: bool = True

    def text(self, key: str) -> str:
        """``25 %`` or, for an absolute limit, the amount in the metric's display unit."""
        if self.relative:
            return f"{self.amount * 100:g} %"
        return METRICS[key].display(self.amount)


#: Defaults: set from the run-to-run noise measured on the 2-core reference machine (docs/ci-gate.md).
DEFAULT_LIMITS: dict[str, Limit] = {
    "throughput": Limit(0.10),
    "p99": Limit(10.0),
    "error_rate": Limit(0.05, relative=False),
    "cpu_per_order": Limit(0.25),
    "rss_per_resting_order": Limit(0.75),
}
#: A/B defaults: both sides measured together, so a pair's difference holds far less of the machine's drift
#: than a stored baseline does (docs/ci-gate.md, "A/B").
DEFAULT_AB_LIMITS: dict[str, Limit] = {
    **DEFAULT_LIMITS,
    "throughput": Limit(0.05),
    "error_rate": Limit(0.02, relative=False),
    "cpu_per_order": Limit(0.10),
}


@dataclass(frozen=True)
class SloChecks:
    """Absolute checks of the run under test against its scenario's SLO, on per-second figures: a check
    fails when more than ``max_violating_share`` of the steady seconds break the limit (one stalled
    second of a short run is not a failed SLO)."""

    p99: bool = True
    error_rate: bool = True
    max_violating_share: float = 0.25


@dataclass(frozen=True)
class Thresholds:
    """Everything that decides verdicts. ``source`` is the file they came from (None: the defaults)."""

    alpha: float = 0.01
    min_steady_seconds: int = 6
    limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    slo: SloChecks = field(default_factory=SloChecks)
    same_cpu_model: bool = True
    # capacity gate --against: the sign-flip test over n pairs cannot go below 2 / 2^n (6 pairs: 0.031)
    ab_alpha: float = 0.05
    ab_pairs: int = 8
    ab_limits: dict[str, Limit] = field(default_factory=lambda: dict(DEFAULT_AB_LIMITS))
    source: str | None = None


# ---------------------------------------------------------------------------------------------- reading

_TOP = (
    "alpha",
    "min_steady_seconds",
    "metrics",
    "slo",
    "same_cpu_model",
    "ab_alpha",
    "ab_pairs",
    "ab_metrics",
)
_METRIC_KEYS = ("fail_if_worse_by", "enabled")
_SLO_KEYS = ("p99", "error_rate", "max_violating_share")


def load_thresholds(path: str | os.PathLike[str]) -> Thresholds:
    """Read and validate a thresholds file; ThresholdsError naming the file, line and field otherwise."""
    source = str(path)
    try:
        text = read_bounded_text(path)
    except InputLimitError as error:
        raise ThresholdsError([f"{source}: {error.message}"]) from None
    except FileNotFoundError:
        raise ThresholdsError([f"{source}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ThresholdsError([f"{source}: cannot read: {error}"]) from None
    return parse_thresholds(text, source)


def parse_thresholds(text: str, source: str = "<thresholds>") -> Thresholds:
    """Validate thresholds given as YAML text (see the module docstring for the format)."""
    try:
        check_yaml_structure(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except InputLimitError as error:
        line = "" if error.line is None else f":{error.line}"
        raise ThresholdsError([f"{source}{line}: {error.message}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ThresholdsError([f"{source}{line}: not valid YAML: {problem}"]) from None
    checker = _Checker(source, root)
    if data is None:
        return Thresholds(source=source)
    if not isinstance(data, dict):
        checker.add((), "expected a mapping of settings (alpha, metrics, slo...)")
        raise ThresholdsError(checker.problems)
    checker.unknown((), data, _TOP)
    result = Thresholds(source=source)
    if "alpha" in data:
        alpha = checker.number(("alpha",), data["alpha"])
        if alpha is not None and not 0 < alpha < 0.5:
            checker.add(("alpha",), f"expected a significance level above 0 and below 0.5, got {alpha:g}")
        elif alpha is not None:
            result = replace(result, alpha=alpha)
    if "ab_alpha" in data:
        ab_alpha = checker.number(("ab_alpha",), data["ab_alpha"])
        if ab_alpha is not None and not 0 < ab_alpha < 0.5:
            checker.add(
                ("ab_alpha",), f"expected a significance level above 0 and below 0.5, got {ab_alpha:g}"
            )
        elif ab_alpha is not None:
            result = replace(result, ab_alpha=ab_alpha)
    if "ab_pairs" in data:
        pairs = data["ab_pairs"]
        low, high = AB_PAIRS_RANGE
        if isinstance(pairs, bool) or not isinstance(pairs, int) or not low <= pairs <= high:
            checker.add(
                ("ab_pairs",), f"expected a whole number of pairs from {low} to {high}, got {_show(pairs)}"
            )
        else:
            result = replace(result, ab_pairs=pairs)
    if "min_steady_seconds" in data:
        value = data["min_steady_seconds"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 3:
            checker.add(
                ("min_steady_seconds",), f"expected a whole number of seconds >= 3, got {_show(value)}"
            )
        else:
            result = replace(result, min_steady_seconds=value)
    if "same_cpu_model" in data:
        if isinstance(data["same_cpu_model"], bool):
            result = replace(result, same_cpu_model=data["same_cpu_model"])
        else:
            checker.add(("same_cpu_model",), f"expected true or false, got {_show(data['same_cpu_model'])}")
    if "metrics" in data:
        result = replace(result, limits=_limits(checker, data["metrics"], DEFAULT_LIMITS, "metrics"))
    if "ab_metrics" in data:
        ab_limits = _limits(checker, data["ab_metrics"], DEFAULT_AB_LIMITS, "ab_metrics")
        result = replace(result, ab_limits=ab_limits)
    if "slo" in data:
        result = replace(result, slo=_slo(checker, data["slo"]))
    if checker.problems:
        raise ThresholdsError(checker.problems)
    return result


def _limits(checker: _Checker, raw: Any, defaults: dict[str, Limit], section: str) -> dict[str, Limit]:
    limits = dict(defaults)
    if raw is None:
        return limits
    if not isinstance(raw, dict):
        checker.add((section,), f"expected a mapping of metric names ({', '.join(METRICS)})")
        return limits
    checker.unknown((section,), raw, tuple(METRICS))
    for key, spec in raw.items():
        if key not in METRICS:
            continue
        where = (section, key)
        if not isinstance(spec, dict):
            checker.add(where, "expected a mapping such as {fail_if_worse_by: 10%}")
            continue
        checker.unknown(where, spec, _METRIC_KEYS)
        limit = limits[key]
        if "enabled" in spec:
            if isinstance(spec["enabled"], bool):
                limit = replace(limit, enabled=spec["enabled"])
            else:
                checker.add((*where, "enabled"), f"expected true or false, got {_show(spec['enabled'])}")
        if "fail_if_worse_by" in spec:
            parsed = _amount(checker, (*where, "fail_if_worse_by"), spec["fail_if_worse_by"])
            if parsed is not None:
                limit = replace(limit, amount=parsed[0], relative=parsed[1])
        limits[key] = limit
    return limits


def _amount(checker: _Checker, where: tuple[str, ...], value: Any) -> tuple[float, bool] | None:
    """``10%`` -> (0.10, relative); a plain number -> (number, absolute). Must be above 0."""
    expected = 'a percentage such as "10%" (relative to the baseline) or a number > 0 (absolute)'
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            amount = float(value.strip()[:-1]) / 100
        except ValueError:
            amount = math.nan
        if not math.isfinite(amount) or amount <= 0:
            checker.add(where, f"expected {expected}, got {_show(value)}")
            return None
        return amount, True
    number = checker.number(where, value, expected)
    if number is None:
        return None
    if number <= 0:
        checker.add(where, f"expected {expected}, got {_show(value)}")
        return None
    return number, False


def _slo(checker: _Checker, raw: Any) -> SloChecks:
    slo = SloChecks()
    if raw is None:
        return slo
    if not isinstance(raw, dict):
        checker.add(("slo",), "expected a mapping such as {p99: true, error_rate: true}")
        return slo
    checker.unknown(("slo",), raw, _SLO_KEYS)
    for key in ("p99", "error_rate"):
        if key in raw:
            if isinstance(raw[key], bool):
                slo = replace(slo, **{key: raw[key]})
            else:
                checker.add(("slo", key), f"expected true or false, got {_show(raw[key])}")
    if "max_violating_share" in raw:
        value = raw["max_violating_share"]
        share = _share(value)
        if share is None:
            checker.add(
                ("slo", "max_violating_share"),
                f"expected a share from 0 to below 100 % such as 25% or 0.25, got {_show(value)}",
            )
        else:
            slo = replace(slo, max_violating_share=share)
    return slo


def _share(value: Any) -> float | None:
    """``25%`` or ``0.25`` as 0.25; None unless it is a share from 0 to below 1."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            share = float(value.strip()[:-1]) / 100
        except ValueError:
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        share = float(value)
    else:
        return None
    return share if 0 <= share < 1 else None


class _Checker:
    """Collects problems as ``file:line: field: message``, the line found in the composed YAML."""

    def __init__(self, source: str, root: yaml.Node | None) -> None:
        self.source = source
        self.root = root
        self.problems: list[str] = []

    def add(self, where: tuple[str, ...], message: str, key: bool = False) -> None:
        line = _line(self.root, where, key)
        location = f"{self.source}:{line}" if line else self.source
        name = ".".join(where) or "(top)"
        self.problems.append(f"{location}: {name}: {message}")

    def unknown(self, where: tuple[str, ...], data: dict[Any, Any], allowed: tuple[str, ...]) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (
                    f' (did you mean "{close[0]}"?)' if close else f" (expected one of: {', '.join(allowed)})"
                )
                self.add((*where, str(key)), f'unknown field "{key}"{hint}', key=True)

    def number(self, where: tuple[str, ...], value: Any, expected: str = "a number") -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.add(where, f"expected {expected}, got {_show(value)}")
            return None
        return float(value)


def _line(root: yaml.Node | None, where: tuple[str, ...], key: bool) -> int | None:
    """1-based line of the value (or key) at ``where`` in the composed document, if it is there."""
    node = root
    found: yaml.Node | None = root
    for part in where:
        if not isinstance(node, yaml.MappingNode):
            break
        for key_node, value_node in node.value:
            if key_node.value == part:
                found = key_node if key else value_node
                node = value_node
                break
        else:
            break
    return found.start_mark.line + 1 if found is not None else None


def _show(value: Any) -> str:
    if value is None:
        text = "nothing"
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, dict | list):
        text = "a mapping" if isinstance(value, dict) else "a list"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."
