"""``capacity gate``: a run or sweep against a committed baseline, with noise in mind.

One module per job, as pyperf's: ``metrics`` (a tier reduced to per-second samples), ``baseline`` (the
``capacity-baseline/1`` file), ``thresholds`` (the YAML that decides verdicts), ``compare`` (the
significance tests and verdicts), ``render`` (terminal, Markdown, JUnit XML). The CLI is
``capacity/cli/gate.py`` and ``capacity/cli/baseline.py``; the format and the CI recipe are documented in
``docs/ci-gate.md``.

    from capacity.gate import gate, load_side, load_thresholds, read_baseline
    thresholds = load_thresholds("scenarios/gate/thresholds.yaml")
    result = gate(read_baseline("reports/baselines/ci-smoke.json"),
                  load_side("reports/sweeps/20261125T120000-ci_smoke", thresholds.min_steady_seconds),
                  thresholds)
    result.status, [c.detail for c in result.failures]
"""

from capacity.gate.baseline import (
    Baseline,
    BaselineFormatError,
    from_sweep,
    load_side,
    read_baseline,
    write_baseline,
)
from capacity.gate.compare import Check, GateInputError, GateResult, TierOutcome, gate
from capacity.gate.metrics import METRICS, Metric, MetricSamples, TierData, tier_data
from capacity.gate.thresholds import Limit, Thresholds, ThresholdsError, load_thresholds, parse_thresholds

__all__ = [
    "METRICS",
    "Baseline",
    "BaselineFormatError",
    "Check",
    "GateInputError",
    "GateResult",
    "Limit",
    "Metric",
    "MetricSamples",
    "Thresholds",
    "ThresholdsError",
    "TierData",
    "TierOutcome",
    "from_sweep",
    "gate",
    "load_side",
    "load_thresholds",
    "parse_thresholds",
    "read_baseline",
    "tier_data",
    "write_baseline",
]
