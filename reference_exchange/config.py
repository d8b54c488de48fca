"""Reference exchange settings: the seed's environment variables, overridden by command-line flags.

One table (``_FIELDS``) drives both sources: each entry names the ``Settings`` attribute, the environment
variable, the optional flag and the parser, so a value is validated by the same code whichever way it came
in. The module is pure: it reads only the mapping (and argv) it is given.

Rules:
- an environment variable that is unset, empty or only whitespace means "use the default";
- a flag that is given always wins over the environment, which is then not consulted for that field;
- every bad value raises ``ConfigError`` with one line naming the variable or flag, the value and what
  is expected, e.g. ``SERVER_PORT='abc': expected an integer from 0 to 65535 (0 = any free port)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from reference_exchange.admission import SHARE_BOUNDS
from reference_exchange.instruments import DEFAULT_INSTRUMENTS

KNOWN_SYMBOLS: tuple[str, ...] = tuple(instrument.symbol for instrument in DEFAULT_INSTRUMENTS)
MIB = 1024 * 1024


class ConfigError(ValueError):
    """A bad setting. ``name`` is the variable or flag (None when raised by a bare parser)."""

    def __init__(self, value: str, expected: str, name: str | None = None) -> None:
        self.value = value
        self.expected = expected
        self.name = name
        subject = f"{value!r}" if name is None else f"{name}={value!r}"
        super().__init__(f"{subject}: expected {expected}")

    def named(self, name: str) -> ConfigError:
        """The same error attributed to ``name`` (an environment variable or a flag)."""
        return ConfigError(self.value, self.expected, name)


@dataclass(frozen=True, slots=True)
class Settings:
    """Validated settings. Durations are float seconds, sizes are bytes, rates are per second."""

    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    simulation_enabled: bool = False
    simulation_orders_per_sec: float = 100.0
    simulation_workers: int = 4
    simulation_symbols: tuple[str, ...] = KNOWN_SYMBOLS
    metrics_collection_time: float = 60.0
    journal_path: str | None = "reference_exchange.sqlite3"
    journal_sync: str = "full"
    journal_commit_interval: float = 0.002
    admin_token: str | None = None
    max_body_bytes: int = 64 * 1024
    max_pending_orders: int = 0  # 0: the connection cap (http_guard.connection_cap)
    overload_max_lag: float = 0.2
    admission_target: float = 0.01
    admission_interval: float = 0.1
    admission_share: float = 0.8
    client_timeout: float = 10.0
    max_connections: int = 0  # 0: from the open-file limit (http_guard.connection_cap)
    lean_http: bool = True
    order_retention: int = 1_000_000
    load_test_output_dir: str = "reports/runs"


# --- parsers: str -> value, raising ConfigError without a name --------------------------------------

Parser = Callable[[str], object]

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_BARE_SECONDS = re.compile(_NUMBER, re.ASCII)
_DURATION_PART = re.compile(rf"({_NUMBER})(ms|s|m|h|d)", re.ASCII)
_DURATION = re.compile(rf"(?:{_NUMBER}(?:ms|s|m|h|d))+", re.ASCII)
_DURATION_EXPECTED = "a duration such as 500ms, 60s, 30m, 1h30m or 2d, or a number of seconds"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _show(value: object, unit: str = "") -> str:
    """A default as a user would type it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value}{unit}"


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``500ms``, ``60s``, ``30m``, ``1h``, ``2d``, ``1h30m`` or bare seconds (``0.5``).

    Units are ms, s, m, h, d (case-insensitive); negatives, empty text and unknown units raise ConfigError.
    """
    clean = text.strip().lower()
    if _BARE_SECONDS.fullmatch(clean):
        seconds = float(clean)
    elif _DURATION.fullmatch(clean):
        seconds = sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(clean))
    else:
        raise ConfigError(text, _DURATION_EXPECTED)
    if not math.isfinite(seconds):
        raise ConfigError(text, _DURATION_EXPECTED)
    return seconds


def _duration(*, positive: bool = False, maximum: float | None = None) -> Parser:
    """A duration in seconds; ``positive`` rejects zero, ``maximum`` (seconds) anything longer."""

    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if positive and seconds == 0:
            raise ConfigError(text, "a duration greater than zero, e.g. 60s or 1m")
        if maximum is not None and seconds > maximum:
            raise ConfigError(text, f"a duration of at most {_show(maximum * 1000, 'ms')}, e.g. 2ms")
        return seconds

    return parse


def _ranged(
    convert: Callable[[str], float],
    kind: str,
    low: float,
    high: float | None,
    note: str,
    exclusive: bool = False,
) -> Parser:
    """A finite ``kind`` ("integer" or "number") converted by ``convert``, in ``[low, high]`` (with
    ``exclusive``, strictly between them)."""
    if high is None:
        bounds = f"{kind} >= {_show(low)}"
    elif exclusive:
        bounds = f"{kind} strictly between {_show(low)} and {_show(high)}"
    else:
        bounds = f"{kind} from {_show(low)} to {_show(high)}"
    expected = f"{'an' if kind[0] in 'aeiou' else 'a'} {bounds}{note}"

    def outside(value: float) -> bool:
        if exclusive:
            return value <= low or (high is not None and value >= high)
        return value < low or (high is not None and value > high)

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise ConfigError(text, expected) from None
        if not math.isfinite(value) or outside(value):
            raise ConfigError(text, expected)
        return value

    return parse


def _integer(low: int, high: int | None = None, note: str = "") -> Parser:
    """An integer in ``[low, high]`` (no upper bound when ``high`` is None)."""
    return _ranged(int, "integer", low, high, note)


def _number(low: float) -> Parser:
    """A finite real number >= ``low`` (``1e3`` allowed; nan and inf are not)."""
    return _ranged(float, "number", low, None, "")


_share = _ranged(float, "number", *SHARE_BOUNDS, "", exclusive=True)


def _choice(*options: str, aliases: Mapping[str, str] | None = None) -> Parser:
    """One of ``options`` (case-insensitive), returned lower-case; ``aliases`` map to canonical names."""
    table = {option: option for option in options} | dict(aliases or {})
    expected = "one of " + ", ".join(sorted(table))

    def parse(text: str) -> str:
        try:
            return table[text.lower()]
        except KeyError:
            raise ConfigError(text, expected) from None

    return parse


def _boolean(text: str) -> bool:
    """true/false/1/0/yes/no/on/off, case-insensitive."""
    lowered = text.lower()
    if lowered in _TRUE or lowered in _FALSE:
        return lowered in _TRUE
    raise ConfigError(text, "a boolean: true/false, 1/0, yes/no or on/off")


def _host(text: str) -> str:
    """A host name or address without whitespace."""
    if not text or any(char.isspace() for char in text):
        raise ConfigError(text, "a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0")
    return text


def _symbols(text: str) -> tuple[str, ...]:
    """Comma-separated known symbols (case-insensitive); blanks are skipped, repeats dropped."""
    symbols = tuple(dict.fromkeys(item.strip().upper() for item in text.split(",") if item.strip()))
    unknown = [symbol for symbol in symbols if symbol not in KNOWN_SYMBOLS]
    if not symbols or unknown:
        found = f" (unknown: {', '.join(unknown)})" if unknown else ""
        raise ConfigError(text, f"a comma-separated list of {', '.join(KNOWN_SYMBOLS)}{found}")
    return symbols


def _optional(disabled: frozenset[str]) -> Parser:
    """The text itself, or None when it is empty or one of ``disabled`` (case-insensitive)."""

    def parse(text: str) -> str | None:
        return None if not text or text.lower() in disabled else text

    return parse


# --- the table --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """One setting: attribute, environment variable, optional flag, parser and help."""

    name: str
    env: str
    parse: Parser
    help: str
    flag: str | None = None
    metavar: str | None = None
    unit: str = ""


_FIELDS: tuple[_Field, ...] = (
    _Field("host", "SERVER_HOST", _host, "address to listen on", "--host", "HOST"),
    _Field(
        "port",
        "SERVER_PORT",
        _integer(0, 65535, " (0 = any free port)"),
        "TCP port, 0 picks a free one",
        "--port",
        "PORT",
    ),
    _Field(
        "log_level",
        "LOG_LEVEL",
        _choice("debug", "info", "warning", "error", aliases={"warn": "warning"}),
        "debug, info, warn(ing) or error",
        "--log-level",
        "LEVEL",
    ),
    _Field("simulation_enabled", "SIMULATION_ENABLED", _boolean, "background order flow", "--simulation"),
    _Field(
        "simulation_orders_per_sec",
        "SIMULATION_ORDERS_PER_SEC",
        _number(0),
        "simulated orders per second in total",
        "--simulation-rate",
        "ORDERS_PER_SEC",
    ),
    _Field(
        "simulation_workers",
        "SIMULATION_WORKERS",
        _integer(1, 256),
        "simulation tasks, 1 to 256",
        "--simulation-workers",
        "N",
    ),
    _Field(
        "simulation_symbols",
        "SIMULATION_SYMBOLS",
        _symbols,
        "comma-separated symbols to simulate",
        "--simulation-symbols",
        "SYMBOLS",
    ),
    _Field(
        "metrics_collection_time",
        "METRICS_COLLECTION_TIME",
        _duration(positive=True),
        "metrics window, a duration such as 60s or 1m",
        "--metrics-window",
        "DURATION",
        "s",
    ),
    _Field(
        "journal_path",
        "JOURNAL_PATH",
        _optional(frozenset({"none", "off"})),
        "SQLite journal file; ':memory:' or 'none' disables durability",
        "--journal",
        "PATH",
    ),
    _Field(
        "journal_sync",
        "JOURNAL_SYNC",
        _choice("full", "normal", "off"),
        "SQLite synchronous mode: full, normal or off",
        "--journal-sync",
        "MODE",
    ),
    _Field(
        "journal_commit_interval",
        "JOURNAL_COMMIT_INTERVAL",
        _duration(maximum=0.1),
        "least time between the starts of back-to-back journal commits: more orders per fsync, each "
        "waiting up to this long (0: commit as soon as the last commit ends), at most 100ms",
        "--journal-commit-interval",
        "DURATION",
        "s",
    ),
    _Field(
        "admin_token",
        "ADMIN_TOKEN",
        _optional(frozenset()),
        "token for admin routes from non-loopback clients",
        "--admin-token",
        "TOKEN",
    ),
    _Field(
        "max_body_bytes",
        "MAX_BODY_BYTES",
        _integer(1024, 16 * MIB),
        "request body limit in bytes",
        "--max-body-bytes",
        "BYTES",
    ),
    _Field(
        "max_pending_orders",
        "MAX_PENDING_ORDERS",
        _integer(0, note=" (0 = the connection cap)"),
        "orders admitted but not yet acknowledged before shedding with 503 (0: the connection cap, as "
        "each connection waits on at most one order)",
        "--max-pending-orders",
        "N",
    ),
    _Field(
        "overload_max_lag",
        "OVERLOAD_MAX_LAG",
        _duration(positive=True),
        "with LEAN_HTTP=off, the event-loop lag above which new orders are shed with 503, e.g. 200ms",
        "--overload-max-lag",
        "DURATION",
        "s",
    ),
    _Field(
        "admission_target",
        "ADMISSION_TARGET",
        _duration(positive=True),
        "event-loop turn length (the queueing delay) that, exceeded for ADMISSION_INTERVAL, is a standing "
        "queue: new orders are then refused with a cheap 503 (lean path), e.g. 10ms",
        "--admission-target",
        "DURATION",
        "s",
    ),
    _Field(
        "admission_interval",
        "ADMISSION_INTERVAL",
        _duration(positive=True),
        "how long turns must stay above ADMISSION_TARGET before new orders are refused, e.g. 100ms",
        "--admission-interval",
        "DURATION",
        "s",
    ),
    _Field(
        "admission_share",
        "ADMISSION_SHARE",
        _share,
        "share of each turn given to admitted orders while the queue stands (the rest refused), in (0, 1)",
        "--admission-share",
        "FRACTION",
    ),
    _Field(
        "client_timeout",
        "CLIENT_TIMEOUT",
        _duration(positive=True),
        "a connection that starts no request for this long, or a request body not received within it, "
        "is closed, e.g. 10s",
        "--client-timeout",
        "DURATION",
        "s",
    ),
    _Field(
        "max_connections",
        "MAX_CONNECTIONS",
        _integer(0, note=" (0 = the open-file limit less 64)"),
        "open client connections (0: the open-file limit less 64); more are answered 503 and closed",
        "--max-connections",
        "N",
    ),
    _Field(
        "lean_http",
        "LEAN_HTTP",
        _boolean,
        "answer the trading routes on the lean path (httptools, no aiohttp Request/Response); "
        "off: aiohttp answers every route",
        "--lean-http",
    ),
    _Field("order_retention", "ORDER_RETENTION", _integer(1000), "finished orders kept for lookup"),
    _Field(
        "load_test_output_dir",
        "LOAD_TEST_OUTPUT_DIR",
        _optional(frozenset()),
        "where POST /demo/load-test writes its run directories",
        "--load-test-output-dir",
        "DIR",
    ),
)

_DEFAULTS: dict[str, object] = {field.name: field.default for field in dataclasses.fields(Settings)}


def _parse(field: _Field, source: str, raw: object) -> object:
    """``raw`` validated by the field's parser; errors are attributed to ``source``."""
    text = str(raw).lower() if isinstance(raw, bool) else str(raw).strip()
    try:
        return field.parse(text)
    except ConfigError as error:
        raise error.named(source) from None


# --- public API -------------------------------------------------------------------------------------


def build_arg_parser() -> argparse.ArgumentParser:
    """Flags overriding the environment; every default is None (= not given)."""
    parser = argparse.ArgumentParser(
        prog="reference-exchange",
        description="Lean reference exchange (aiohttp) for capacity benchmarks.",
    )
    for field in _FIELDS:
        if field.flag is None:
            continue
        help_text = f"{field.help} [env {field.env}, default {_show(_DEFAULTS[field.name], field.unit)}]"
        if field.parse is _boolean:
            parser.add_argument(
                field.flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            parser.add_argument(
                field.flag, dest=field.name, metavar=field.metavar, default=None, help=help_text
            )
    return parser


def _settings(environ: Mapping[str, str], flags: Mapping[str, object]) -> Settings:
    """Settings from given flags, else non-blank environment variables, else defaults."""
    values: dict[str, object] = {}
    for field in _FIELDS:
        flag_value = flags.get(field.name)
        env_value = environ.get(field.env, "")
        if flag_value is not None and field.flag is not None:
            values[field.name] = _parse(field, field.flag, flag_value)
        elif env_value.strip():
            values[field.name] = _parse(field, field.env, env_value)
    return Settings(**values)  # type: ignore[arg-type]


def settings_from_env(environ: Mapping[str, str]) -> Settings:
    """Settings from environment variables alone; unrelated variables are ignored."""
    return _settings(environ, {})


def load_settings(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Settings:
    """Settings from flags (``argv``, None = sys.argv[1:]) over ``environ``.

    Unknown flags and ``--help`` are handled by argparse (message on stderr, SystemExit).
    """
    namespace = build_arg_parser().parse_args(argv)
    return _settings(environ, vars(namespace))
