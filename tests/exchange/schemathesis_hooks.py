"""Schemathesis hooks for tests/exchange/test_schemathesis.py (loaded by name through its config file).

JSON Schema cannot compare two fields, so the published LoadTestRequest leaves two rules of the server to
its description: a ramp no longer than the run, and ``start_percent`` not above ``end_percent``. Generated
*positive* load-test bodies that break them are dropped here, so that ``positive_data_acceptance`` judges
only what the document promises. Negative bodies are kept: the server must refuse them either way.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from reference_exchange.config import ConfigError, parse_duration
from reference_exchange.load_test_request import RAMP_END_PERCENT, RAMP_START_PERCENT


def _seconds(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError:
            return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def breaks_a_cross_field_rule(body: Any) -> bool:
    """Whether a load-test body breaks one of the rules the schema states in words only."""
    if not isinstance(body, dict) or not isinstance(body.get("ramp_up"), dict):
        return False
    ramp = body["ramp_up"]
    if ramp.get("enabled", True) is False:
        return False  # the server ignores the rest of the ramp then
    start = ramp.get("start_percent", RAMP_START_PERCENT)
    end = ramp.get("end_percent", RAMP_END_PERCENT)
    if isinstance(start, int | float) and isinstance(end, int | float) and start > end:
        return True
    run_s, ramp_s = _seconds(body.get("duration")), _seconds(ramp.get("duration"))
    return run_s is not None and ramp_s is not None and ramp_s > run_s


@schemathesis.hook
def filter_case(context: schemathesis.HookContext, case: schemathesis.Case) -> bool:
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and case.operation.path == "/demo/load-test" and case.method.upper() == "POST":
        return not breaks_a_cross_field_rule(case.body)
    return True
