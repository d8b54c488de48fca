"""A ``POST /demo/load-test`` body, checked and with its defaults filled in: the plan and the scenario file
it becomes (``load_test.py`` launches it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reference_exchange.config import ConfigError, parse_duration
from reference_exchange.errors import ApiError
from reference_exchange.schemas import (
    MAX_LOAD_TEST_DURATION_S,
    MIN_LOAD_TEST_DURATION_S,
    SchemaViolation,
    validate_load_test_request,
)

DEFAULT_RAMP_S = 30.0  # ramp_up without a duration: 30 s, at most half the run
RAMP_START_PERCENT = 20.0  # the seed's defaults
RAMP_END_PERCENT = 100.0


@dataclass(frozen=True, slots=True)
class LoadTestPlan:
    """A validated request with every default filled in."""

    intensity: str | None
    duration_s: float
    orders_per_second: float
    concurrent_users: int
    symbols: tuple[str, ...]
    ramp_duration_s: float | None  # None: no ramp
    ramp_start_percent: float
    ramp_end_percent: float
    p99_ms: float | None  # None: capacity takes the limit of the seed matrix's tier for this rate
    error_rate: float | None

    def describe(self) -> dict[str, Any]:
        ramp = None
        if self.ramp_duration_s is not None:
            ramp = {
                "duration_s": self.ramp_duration_s,
                "start_percent": self.ramp_start_percent,
                "end_percent": self.ramp_end_percent,
            }
        return {
            "intensity": self.intensity,
            "duration_s": self.duration_s,
            "orders_per_second": self.orders_per_second,
            "concurrent_users": self.concurrent_users,
            "symbols": list(self.symbols),
            "ramp_up": ramp,
            "slo": {"p99_ms": self.p99_ms, "error_rate": self.error_rate},
        }

    @property
    def scenario_name(self) -> str:
        return f"demo-{self.intensity or 'load-test'}"

    def scenario(self, run_id: str) -> dict[str, Any]:
        """The capacity scenario (scenarios/README.md) for this request."""
        load: dict[str, Any] = {
            "orders_per_second": _plain(self.orders_per_second),
            "concurrent_users": self.concurrent_users,
            "symbols": list(self.symbols),
            "duration": _plain(self.duration_s),
        }
        if self.ramp_duration_s is not None:
            load["ramp_up"] = {
                "duration": _plain(self.ramp_duration_s),
                "start_percent": _plain(self.ramp_start_percent),
                "end_percent": _plain(self.ramp_end_percent),
            }
        label = f"intensity {self.intensity}" if self.intensity else "no intensity given"
        scenario: dict[str, Any] = {
            "name": self.scenario_name,
            "description": f"POST /demo/load-test {run_id} ({label}), run by the exchange against itself",
            "load": load,
        }
        limits = {"p99_ms": self.p99_ms, "error_rate": self.error_rate}
        slo = {name: _plain(value) for name, value in limits.items() if value is not None}
        if slo:  # what is left out, capacity fills from the seed matrix (capacity run --seed-slo)
            scenario["slo"] = slo
        return scenario


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


def _seconds(value: float | str, name: str) -> float:
    """Seconds from a schema-checked duration (a number or text such as "60s")."""
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError:  # the schema's pattern makes this unreachable; keep the 400 anyway
            raise _bad(f'{name} {value!r} is not a duration (e.g. 60, "60s", "2m")') from None
    return float(value)


def parse_request(body: Any, symbols: Sequence[str]) -> LoadTestPlan:
    """The plan for a request body, or ApiError 400 naming the field. ``symbols``: the exchange's."""
    if isinstance(body, dict):
        if "target" in body:
            raise _bad("body.target is not accepted: a load test always targets this exchange itself")
        missing = [key for key in ("duration", "orders_per_second", "concurrent_users") if key not in body]
        if missing:
            raise _bad(f"body.{missing[0]} is required")
    try:
        validate_load_test_request(body)
    except SchemaViolation as error:
        raise _bad(str(error)) from None
    except RecursionError:  # the compiled validator recurses once per level (orjson allows 1,024)
        raise _bad("the body is nested too deeply") from None
    duration_s = _seconds(body["duration"], "body.duration")
    if not MIN_LOAD_TEST_DURATION_S <= duration_s <= MAX_LOAD_TEST_DURATION_S:
        raise _bad(
            f"body.duration must be from {MIN_LOAD_TEST_DURATION_S} s to 1 h "
            f"({MAX_LOAD_TEST_DURATION_S} s), got {body['duration']!r}"
        )
    chosen = tuple(body.get("symbols") or symbols)
    unknown = [symbol for symbol in chosen if symbol not in symbols]
    if unknown:
        raise _bad(f"body.symbols: unknown symbol {unknown[0]!r} (this exchange has {', '.join(symbols)})")
    ramp = body.get("ramp_up") or {}
    ramp_duration_s: float | None = None
    start = float(ramp.get("start_percent", RAMP_START_PERCENT))
    end = float(ramp.get("end_percent", RAMP_END_PERCENT))
    if "ramp_up" in body and ramp.get("enabled", True):
        if "duration" in ramp:
            ramp_duration_s = _seconds(ramp["duration"], "body.ramp_up.duration")
            if ramp_duration_s <= 0:
                raise _bad(f"body.ramp_up.duration must be more than 0, got {ramp['duration']!r}")
            if ramp_duration_s > duration_s:
                raise _bad(
                    f"body.ramp_up.duration ({_plain(ramp_duration_s)} s) must not be longer than "
                    f"the run (body.duration, {_plain(duration_s)} s): the ramp is part of the run"
                )
        else:
            ramp_duration_s = min(DEFAULT_RAMP_S, duration_s / 2)
        if start > end:
            raise _bad(
                f"body.ramp_up.start_percent ({_plain(start)}) must not be above end_percent ({_plain(end)})"
            )
    slo = body.get("slo") or {}
    return LoadTestPlan(
        intensity=body.get("intensity"),
        duration_s=duration_s,
        orders_per_second=float(body["orders_per_second"]),
        concurrent_users=int(body["concurrent_users"]),
        symbols=chosen,
        ramp_duration_s=ramp_duration_s,
        ramp_start_percent=start,
        ramp_end_percent=end,
        p99_ms=_optional_float(slo.get("p99_ms")),
        error_rate=_optional_float(slo.get("error_rate")),
    )


def _optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _plain(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
