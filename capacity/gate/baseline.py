"""Baselines: the ``capacity-baseline/1`` file the gate compares against, and the same reduction of a run
or sweep directory under test.

A baseline is self-contained: per tier the per-second samples and value of every metric
(``capacity.gate.metrics``), the SLO figures, the tier's scenario and run summary, plus the environment
and git revision it was measured at - and small (a few KB per tier; the file is never meant to exceed
``MAX_BYTES``). It is written only by ``capacity baseline update``, deliberately. Documented in
``docs/ci-gate.md``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from capacity.gate.metrics import MetricSamples, TierData, pool, tier_data
from capacity.jsonfile import read_json_file
from capacity.results.run_file import Environment, dataclass_from_json
from capacity.sweep.sweep_file import SweepFormatError, SweepResult, read_sweep

FORMAT = "capacity-baseline/1"
FORMAT_NAME, _, _FORMAT_VERSION = FORMAT.partition("/")
FORMAT_VERSION = int(_FORMAT_VERSION)
DEFAULT_DIR = Path("reports/baselines")
MAX_BYTES = 200_000


class BaselineFormatError(ValueError):
    """A file is not a readable ``capacity-baseline/1`` baseline (one line, naming the file)."""


@dataclass(frozen=True)
class Baseline:
    """A measured set of tiers to compare with: a baseline file, or a run or sweep directory reduced the
    same way. ``sources`` are the directories it was made from (several when runs were pooled: ``pooled``),
    ``reason`` why it was recorded (free text), ``notes`` what was left out."""

    name: str
    created_utc: str
    sources: tuple[str, ...]
    environment: Environment
    tiers: tuple[TierData, ...]
    sweep_status: str | None = None
    settings: dict[str, str] | None = None  # the embedded exchange's settings (e.g. JOURNAL_SYNC)
    reason: str | None = None
    notes: tuple[str, ...] = ()
    format: str = FORMAT

    @property
    def git_revision(self) -> str | None:
        return self.environment.git_revision

    def tier(self, name: str) -> TierData | None:
        """The tier named ``name``, or None."""
        return next((t for t in self.tiers if t.name == name), None)


def from_sweep(result: SweepResult, min_steady_seconds: int, reason: str | None = None) -> Baseline:
    """A sweep (or a run read as a one-tier sweep) reduced to a baseline. Tiers that never ran are kept,
    with the reason they cannot be compared. A sweep run with ``--repeat N`` gives one tier per tier of
    its definition, its usable repeats pooled (``metrics.pool``): ``average#2`` is the second run of
    ``average``, compared as such, never a tier of its own."""
    repeats: dict[str, list[TierData]] = {}
    settings: dict[str, str] | None = None
    for entry in result.record.tiers:
        run = result.runs.get(entry.name)
        if run is None:
            why = f"did not run ({entry.status}" + (f": {entry.problem})" if entry.problem else ")")
            data = TierData(entry.tier, entry.status, (why,), entry.offered or 0.0, 0, {}, {})
        else:
            data = tier_data(run, entry.tier, min_steady_seconds)
            if settings is None:
                settings = dict(run.target.settings)
        repeats.setdefault(entry.tier, []).append(data)
    tiers, notes = [], []
    for name, runs in repeats.items():
        usable = [r for r in runs if r.usable]
        tiers.append(pool(usable) if usable else runs[0])
        if usable and len(usable) < len(runs):
            notes += [
                f"left out repeat {i} of tier {name}: {'; '.join(r.problems)}"
                for i, r in enumerate(runs, start=1)
                if not r.usable
            ]
    return Baseline(
        name=result.record.name,
        created_utc=datetime.now(UTC).isoformat(timespec="seconds"),
        sources=(str(result.path),),
        environment=result.record.environment,
        tiers=tuple(tiers),
        sweep_status=result.record.status,
        settings=settings,
        reason=reason,
        notes=tuple(notes),
    )


def pooled(sides: Sequence[Baseline], reason: str | None = None) -> Baseline:
    """Several runs of the same sweep as one baseline (``capacity baseline update DIR DIR...``): per tier,
    the usable runs pooled (``metrics.pool``); unusable runs are left out and listed in ``notes``. A tier
    none of whose runs is usable keeps the first run's problems. BaselineFormatError when the runs are not
    of the same sweep (name, tiers, offered rates and mix)."""
    first = sides[0]
    if len(sides) == 1:
        return replace(first, reason=reason)
    for other in sides[1:]:
        if other.name != first.name or [t.name for t in other.tiers] != [t.name for t in first.tiers]:
            raise BaselineFormatError(
                f"{other.sources[0]}: not the same sweep as {first.sources[0]} ({other.name}: "
                f"{', '.join(t.name for t in other.tiers)} vs {first.name}: "
                f"{', '.join(t.name for t in first.tiers)}); pool only runs of one sweep"
            )
    tiers, notes = [], []
    for index, tier in enumerate(first.tiers):
        runs = [(side.sources[0], side.tiers[index]) for side in sides]
        for source, run in runs:
            if (
                run.offered_rate
                and tier.offered_rate
                and abs(run.offered_rate / tier.offered_rate - 1) > 0.02
            ):
                raise BaselineFormatError(
                    f"{source}: tier {tier.name} offered {run.offered_rate:,.0f}/s, not "
                    f"{tier.offered_rate:,.0f}/s as in {first.sources[0]}: pool only runs of one workload"
                )
        usable = [run for _, run in runs if run.usable]
        notes += [
            f"left out {source} tier {run.name}: {'; '.join(run.problems)}"
            for source, run in runs
            if not run.usable
        ]
        tiers.append(pool(usable) if usable else tier)
    return replace(
        first,
        sources=tuple(s for side in sides for s in side.sources),
        tiers=tuple(tiers),
        reason=reason,
        notes=tuple(notes),
    )


def load_side(path: str | os.PathLike[str], min_steady_seconds: int) -> Baseline:
    """What a gate compares: a baseline file as it is, or a run or sweep directory reduced now.
    Raises BaselineFormatError or SweepFormatError (both one line, naming the path)."""
    source = Path(path)
    if source.is_file() and source.suffix == ".json" and source.name not in ("run.json", "sweep.json"):
        return read_baseline(source)
    return from_sweep(read_sweep(source), min_steady_seconds)


# ---------------------------------------------------------------------------------------------- writing


def baseline_to_dict(baseline: Baseline) -> dict[str, Any]:
    """The JSON form, ``format`` first; metric samples as lists."""
    data = asdict(baseline)
    del data["format"]
    data["tiers"] = [_tier_to_dict(t) for t in baseline.tiers]
    return {"format": FORMAT, **json.loads(json.dumps(data, allow_nan=False, default=str))}


def _tier_to_dict(tier: TierData) -> dict[str, Any]:
    data = asdict(tier)
    data["metrics"] = {key: m.to_dict() for key, m in tier.metrics.items()}
    return data


def dumps(baseline: Baseline) -> str:
    """The file's text: indented JSON with each list of numbers on one line (small and diff-friendly)."""
    text = json.dumps(baseline_to_dict(baseline), indent=1, allow_nan=False)
    return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


_NUMBER_LIST = re.compile(r"\[\s*((?:-?[0-9][0-9.eE+-]*,\s*)*-?[0-9][0-9.eE+-]*)\s*\]")


def write_baseline(path: str | os.PathLike[str], baseline: Baseline) -> Path:
    """Write ``baseline`` to ``path`` atomically (parent directories created). Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    text = dumps(baseline)
    baseline_from_dict(json.loads(text), str(target))  # never a file the toolkit cannot read back
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def default_path(name: str) -> Path:
    """``reports/baselines/<name>.json`` with underscores as dashes (``ci_smoke`` -> ``ci-smoke.json``)."""
    return DEFAULT_DIR / f"{name.replace('_', '-')}.json"


# ---------------------------------------------------------------------------------------------- reading


def read_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; BaselineFormatError (naming the file and field) otherwise."""
    source = Path(path)
    data = read_json_file(source, f"a {FORMAT} file", BaselineFormatError)
    return baseline_from_dict(data, str(source))


def baseline_from_dict(data: Any, source: str = "<baseline>") -> Baseline:
    """Validate an already-parsed baseline; unknown extra fields are ignored."""
    if not isinstance(data, dict):
        raise BaselineFormatError(f"{source}: not a capacity baseline (expected a JSON object)")
    _check_format(data.get("format"), source)
    baseline = dataclass_from_json(Baseline, data, source, error=BaselineFormatError)
    if not baseline.tiers:
        raise BaselineFormatError(f"{source}: has no tiers")
    names = [t.name for t in baseline.tiers]
    if len(set(names)) != len(names):
        raise BaselineFormatError(f"{source}: tier names must be unique, got {', '.join(names)}")
    return replace(baseline, tiers=tuple(_checked_tier(t, source) for t in baseline.tiers))


def _checked_tier(tier: TierData, source: str) -> TierData:
    """``tier`` with every metric's samples checked to be numbers."""
    metrics: dict[str, MetricSamples] = {}
    for key, m in tier.metrics.items():
        if m.value is None and len(m.samples):
            raise BaselineFormatError(
                f'{source}: tier "{tier.name}": metric "{key}" has samples but no value'
            )
        metrics[key] = m
    return replace(tier, metrics=metrics)


def _check_format(value: Any, source: str) -> None:
    if value is None:
        raise BaselineFormatError(
            f'{source}: not a capacity baseline (no "format" field; expected "{FORMAT}"; '
            "make one with `capacity baseline update`)"
        )
    name, _, version = str(value).partition("/")
    if name != FORMAT_NAME or not version.isdigit():
        raise BaselineFormatError(f'{source}: unknown format "{value}"; expected "{FORMAT}"')
    if int(version) > FORMAT_VERSION:
        raise BaselineFormatError(
            f'{source}: format "{value}" is newer than this capacity reads ("{FORMAT}"); upgrade capacity'
        )
    if int(version) != FORMAT_VERSION:
        raise BaselineFormatError(f'{source}: unsupported format version "{value}"; expected "{FORMAT}"')


__all__ = [
    "FORMAT",
    "MAX_BYTES",
    "Baseline",
    "BaselineFormatError",
    "SweepFormatError",
    "baseline_from_dict",
    "default_path",
    "dumps",
    "from_sweep",
    "load_side",
    "pooled",
    "read_baseline",
    "write_baseline",
]
