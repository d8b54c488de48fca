"""Scenarios: the validated YAML model of what load to offer, and its schedule arithmetic.

A file is checked in three passes, each reporting problems as ``file:line: field: message``:
YAML syntax (and duplicate keys), the JSON Schema shipped in ``capacity/schemas`` (the same file editors
use for completion), then the rules a schema cannot express (the mix sums to 100, a ramp goes up, a sweep
tier's file exists). Line numbers come from PyYAML's node tree, walked along the failing field's path.

One module a job, each importing only from those before it: ``model`` (the dataclasses, durations, Problem),
``yaml_source`` (data plus node tree, lines), ``schema_check`` (schema errors in user words) and ``loading``
(building the model, the ``load_*`` functions). Import from here; the names below are the public API.
"""

from capacity.scenario.loading import (
    SEED_MATRIX,
    load_document,
    load_scenario,
    load_scenario_text,
    load_sweep,
    load_sweep_text,
    scenario_from_mapping,
    slo_for_rate,
)
from capacity.scenario.model import (
    MAX_DURATION_S,
    MAX_P99_MS,
    MAX_RATE,
    MAX_USERS,
    MIN_DURATION_S,
    Mix,
    Problem,
    RampUp,
    Scenario,
    ScenarioError,
    Sweep,
    Tier,
    format_duration,
    parse_duration,
)
from capacity.scenario.schema_check import load_schema

__all__ = [
    "MAX_DURATION_S",
    "MAX_P99_MS",
    "MAX_RATE",
    "MAX_USERS",
    "MIN_DURATION_S",
    "SEED_MATRIX",
    "Mix",
    "Problem",
    "RampUp",
    "Scenario",
    "ScenarioError",
    "Sweep",
    "Tier",
    "format_duration",
    "load_document",
    "load_scenario",
    "load_scenario_text",
    "load_schema",
    "load_sweep",
    "load_sweep_text",
    "parse_duration",
    "scenario_from_mapping",
    "slo_for_rate",
]
