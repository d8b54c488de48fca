"""Reference exchange configuration: environment variables, flags, durations and error messages."""

from __future__ import annotations

import dataclasses

import pytest

from reference_exchange.admission import SHARE_BOUNDS, CoDelAdmission
from reference_exchange.config import (
    ConfigError,
    Settings,
    build_arg_parser,
    load_settings,
    parse_duration,
    settings_from_env,
)
from reference_exchange.instruments import DEFAULT_INSTRUMENTS
from reference_exchange.schemas import ADMISSION_REQUEST

ALL_SYMBOLS = tuple(instrument.symbol for instrument in DEFAULT_INSTRUMENTS)


# --- defaults --------------------------------------------------------------------------------------


def test_defaults_from_empty_environment() -> None:
    settings = settings_from_env({})
    assert settings == Settings()
    assert dataclasses.asdict(settings) == {
        "host": "127.0.0.1",
        "port": 8080,
        "log_level": "info",
        "simulation_enabled": False,
        "simulation_orders_per_sec": 100,
        "simulation_workers": 4,
        "simulation_symbols": ALL_SYMBOLS,
        "metrics_collection_time": 60,
        "journal_path": "reference_exchange.sqlite3",
        "journal_sync": "full",
        "journal_commit_interval": 0.002,
        "admin_token": None,
        "max_body_bytes": 65536,
        "max_pending_orders": 0,
        "overload_max_lag": 0.2,
        "admission_target": 0.01,
        "admission_interval": 0.1,
        "admission_share": 0.8,
        "client_timeout": 10.0,
        "max_connections": 0,
        "lean_http": True,
        "order_retention": 1_000_000,
        "load_test_output_dir": "reports/runs",
    }
    assert len(settings.simulation_symbols) == 8


def test_settings_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().port = 1  # type: ignore[misc]


def test_no_flags_means_environment_only() -> None:
    assert load_settings([], {"SERVER_PORT": "9000"}) == settings_from_env({"SERVER_PORT": "9000"})


# --- every variable from the environment -----------------------------------------------------------

SEED_ENV = {
    # The seed's "Environment Variables (Peak Performance)" block, verbatim values.
    "SERVER_PORT": "8080",
    "ENVIRONMENT": "production",
    "LOG_LEVEL": "warn",
    "SIMULATION_ENABLED": "true",
    "SIMULATION_ORDERS_PER_SEC": "1000",
    "SIMULATION_WORKERS": "16",
    "SIMULATION_SYMBOLS": "BTCUSD,ETHUSD,ADAUSD,DOTUSD,SOLUSD",
    "METRICS_ENABLED": "true",
    "METRICS_COLLECTION_TIME": "60s",
    "METRICS_RETENTION_TIME": "24h",
    "DB_MAX_CONNECTIONS": "100",
    "DB_MAX_IDLE_TIME": "30m",
    "DB_MAX_LIFETIME": "1h",
    "GOMAXPROCS": "16",
    "GOGC": "100",
    "GOMEMLIMIT": "28GB",
}


READ_FROM_SEED = {
    "SERVER_PORT",
    "LOG_LEVEL",
    "SIMULATION_ENABLED",
    "SIMULATION_ORDERS_PER_SEC",
    "SIMULATION_WORKERS",
    "SIMULATION_SYMBOLS",
    "METRICS_COLLECTION_TIME",
}


def test_seed_environment_block_parses() -> None:
    """ENVIRONMENT, METRICS_ENABLED, METRICS_RETENTION_TIME, the DB_* and the GO* variables name nothing
    this exchange has (no database pool, no metrics history, no Go runtime): they are left alone like any
    other variable it does not read, rather than parsed into settings nothing uses."""
    settings = settings_from_env(SEED_ENV)
    assert settings == settings_from_env({k: v for k, v in SEED_ENV.items() if k in READ_FROM_SEED})
    assert settings.port == 8080
    assert settings.log_level == "warning"
    assert settings.simulation_enabled is True
    assert settings.simulation_orders_per_sec == 1000
    assert settings.simulation_workers == 16
    assert settings.simulation_symbols == ("BTCUSD", "ETHUSD", "ADAUSD", "DOTUSD", "SOLUSD")
    assert settings.metrics_collection_time == 60


def test_every_variable_from_environment() -> None:
    env = {
        "SERVER_HOST": "0.0.0.0",
        "SERVER_PORT": "9001",
        "LOG_LEVEL": "DEBUG",
        "SIMULATION_ENABLED": "on",
        "SIMULATION_ORDERS_PER_SEC": "12.5",
        "SIMULATION_WORKERS": "256",
        "SIMULATION_SYMBOLS": " solusd , BTCUSD ",
        "METRICS_COLLECTION_TIME": "500ms",
        "JOURNAL_PATH": "/tmp/journal.db",
        "JOURNAL_SYNC": "NORMAL",
        "JOURNAL_COMMIT_INTERVAL": "0.5ms",
        "ADMIN_TOKEN": "s3cret",
        "MAX_BODY_BYTES": "1024",
        "MAX_PENDING_ORDERS": "1",
        "ORDER_RETENTION": "1000",
    }
    assert settings_from_env(env) == Settings(
        host="0.0.0.0",
        port=9001,
        log_level="debug",
        simulation_enabled=True,
        simulation_orders_per_sec=12.5,
        simulation_workers=256,
        simulation_symbols=("SOLUSD", "BTCUSD"),
        metrics_collection_time=0.5,
        journal_path="/tmp/journal.db",
        journal_sync="normal",
        journal_commit_interval=0.0005,
        admin_token="s3cret",
        max_body_bytes=1024,
        max_pending_orders=1,
        order_retention=1000,
    )


def test_types_are_normalised() -> None:
    settings = settings_from_env({"SIMULATION_ORDERS_PER_SEC": "7", "METRICS_COLLECTION_TIME": "2m"})
    assert isinstance(settings.simulation_orders_per_sec, float)
    assert isinstance(settings.metrics_collection_time, float)
    assert settings.metrics_collection_time == 120.0


@pytest.mark.parametrize(
    ("variable", "value", "attribute", "expected"),
    [
        ("SERVER_PORT", "0", "port", 0),
        ("SERVER_PORT", "65535", "port", 65535),
        ("SIMULATION_WORKERS", "1", "simulation_workers", 1),
        ("SIMULATION_ORDERS_PER_SEC", "0", "simulation_orders_per_sec", 0.0),
        ("MAX_BODY_BYTES", str(16 * 1024 * 1024), "max_body_bytes", 16 * 1024 * 1024),
        ("ORDER_RETENTION", "1_000", "order_retention", 1000),
        ("LOG_LEVEL", "warning", "log_level", "warning"),
        ("LOG_LEVEL", "Error", "log_level", "error"),
        ("JOURNAL_SYNC", "off", "journal_sync", "off"),
        ("JOURNAL_COMMIT_INTERVAL", "0", "journal_commit_interval", 0.0),
        ("JOURNAL_COMMIT_INTERVAL", "100ms", "journal_commit_interval", 0.1),
        ("ADMISSION_SHARE", "0.000001", "admission_share", 0.000001),
        ("ADMISSION_SHARE", "0.999", "admission_share", 0.999),
    ],
)
def test_boundary_values_accepted(variable: str, value: str, attribute: str, expected: object) -> None:
    assert getattr(settings_from_env({variable: value}), attribute) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (":memory:", ":memory:"),
        ("none", None),
        ("NONE", None),
        ("off", None),
        ("data/j.sqlite3", "data/j.sqlite3"),
    ],
)
def test_journal_path(value: str, expected: str | None) -> None:
    assert settings_from_env({"JOURNAL_PATH": value}).journal_path == expected


def test_unrelated_variables_are_ignored() -> None:
    env = {"PATH": "/usr/bin", "HOME": "/root", "PORT": "abc", "server_port": "abc", "GOGC": "x"}
    assert settings_from_env(env) == Settings()


@pytest.mark.parametrize(
    "variable",
    [
        "SERVER_HOST",
        "SERVER_PORT",
        "LOG_LEVEL",
        "SIMULATION_ENABLED",
        "SIMULATION_ORDERS_PER_SEC",
        "SIMULATION_WORKERS",
        "SIMULATION_SYMBOLS",
        "METRICS_COLLECTION_TIME",
        "JOURNAL_PATH",
        "JOURNAL_SYNC",
        "JOURNAL_COMMIT_INTERVAL",
        "ADMIN_TOKEN",
        "MAX_BODY_BYTES",
        "MAX_PENDING_ORDERS",
        "ORDER_RETENTION",
    ],
)
@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_value_means_default(variable: str, blank: str) -> None:
    assert settings_from_env({variable: blank}) == Settings()


# --- bad values name the variable ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SERVER_HOST", "local host"),
        ("SERVER_PORT", "abc"),
        ("SERVER_PORT", "-1"),
        ("SERVER_PORT", "65536"),
        ("SERVER_PORT", "80.5"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_LEVEL", "critical"),
        ("SIMULATION_ENABLED", "maybe"),
        ("SIMULATION_ENABLED", "2"),
        ("SIMULATION_ORDERS_PER_SEC", "-1"),
        ("SIMULATION_ORDERS_PER_SEC", "fast"),
        ("SIMULATION_ORDERS_PER_SEC", "nan"),
        ("SIMULATION_ORDERS_PER_SEC", "inf"),
        ("SIMULATION_WORKERS", "0"),
        ("SIMULATION_WORKERS", "257"),
        ("SIMULATION_WORKERS", "4.0"),
        ("SIMULATION_SYMBOLS", "BTCUSD,DOGEUSD"),
        ("SIMULATION_SYMBOLS", ","),
        ("METRICS_COLLECTION_TIME", "0s"),
        ("METRICS_COLLECTION_TIME", "-60s"),
        ("METRICS_COLLECTION_TIME", "60x"),
        ("JOURNAL_SYNC", "extra"),
        ("JOURNAL_COMMIT_INTERVAL", "101ms"),
        ("JOURNAL_COMMIT_INTERVAL", "-1ms"),
        ("JOURNAL_COMMIT_INTERVAL", "nan"),
        ("MAX_BODY_BYTES", "1023"),
        ("MAX_BODY_BYTES", str(16 * 1024 * 1024 + 1)),
        ("MAX_BODY_BYTES", "64KiB"),
        ("MAX_PENDING_ORDERS", "-1"),
        ("ORDER_RETENTION", "999"),
        ("ADMISSION_SHARE", "0"),
        ("ADMISSION_SHARE", "1"),
        ("ADMISSION_SHARE", "-0.5"),
        ("ADMISSION_SHARE", "nan"),
    ],
)
def test_bad_environment_value_names_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env({variable: value})
    message = str(caught.value)
    assert message.startswith(f"{variable}={value!r}: expected ")
    assert "\n" not in message
    assert caught.value.name == variable
    assert caught.value.value == value


def test_port_message_is_readable() -> None:
    with pytest.raises(ConfigError, match=r"^SERVER_PORT='abc': expected an integer from 0 to 65535"):
        settings_from_env({"SERVER_PORT": "abc"})


def test_admission_share_takes_the_range_put_and_the_controller_take() -> None:
    # one range (admission.SHARE_BOUNDS) for the variable, the PUT body's schema and the controller
    with pytest.raises(
        ConfigError, match=r"^ADMISSION_SHARE='1': expected a number strictly between 0 and 1$"
    ):
        settings_from_env({"ADMISSION_SHARE": "1"})
    share = ADMISSION_REQUEST["properties"]["share"]
    assert (share["exclusiveMinimum"], share["exclusiveMaximum"]) == SHARE_BOUNDS
    with pytest.raises(ValueError, match="share must be between 0 and 1"):
        CoDelAdmission(target_s=0.01, interval_s=0.1, share=SHARE_BOUNDS[1])


def test_unknown_symbol_is_named() -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env({"SIMULATION_SYMBOLS": "BTCUSD,DOGEUSD,ETHUSD"})
    message = str(caught.value)
    assert message.startswith("SIMULATION_SYMBOLS='BTCUSD,DOGEUSD,ETHUSD'")
    assert "unknown: DOGEUSD" in message
    assert "MATICUSD" in message  # lists what is allowed


def test_symbols_are_case_insensitive_and_deduplicated() -> None:
    settings = settings_from_env({"SIMULATION_SYMBOLS": "ethusd,ETHUSD,,BTCUSD,"})
    assert settings.simulation_symbols == ("ETHUSD", "BTCUSD")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# --- durations -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("60s", 60.0),
        ("30m", 1800.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 86400 + 7200 + 180 + 4 + 0.005),
        ("1.5h", 5400.0),
        ("60", 60.0),
        ("0.5", 0.5),
        (".25", 0.25),
        ("0", 0.0),
        ("  30S ", 30.0),
        ("1M", 60.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)
    assert isinstance(parse_duration(text), float)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "-1",
        "-1s",
        "1x",
        "1w",
        "s",
        "ms",
        "1h-30m",
        "1 h",
        "h1",
        "1e3",
        "nan",
        "inf",
        "1..2s",
        "1,5s",
    ],
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text)
    assert caught.value.name is None
    assert str(caught.value).startswith(f"{text!r}: expected a duration")


# --- booleans --------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["true", "TRUE", "True", "1", "yes", "YES", "on", "On"])
def test_boolean_true(text: str) -> None:
    assert settings_from_env({"SIMULATION_ENABLED": text}).simulation_enabled is True


@pytest.mark.parametrize("text", ["false", "FALSE", "0", "no", "No", "off", "OFF"])
def test_boolean_false(text: str) -> None:
    assert settings_from_env({"SIMULATION_ENABLED": text}).simulation_enabled is False


@pytest.mark.parametrize("text", ["y", "n", "t", "enabled", "2", "-1", "truthy"])
def test_boolean_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^SIMULATION_ENABLED="):
        settings_from_env({"SIMULATION_ENABLED": text})


# --- flags -----------------------------------------------------------------------------------------


def test_parser_defaults_are_all_none() -> None:
    parser = build_arg_parser()
    assert parser.prog == "reference-exchange"
    namespace = vars(parser.parse_args([]))
    assert len(namespace) == 22
    assert all(value is None for value in namespace.values())


def test_help_names_env_var_and_default() -> None:
    parser = build_arg_parser()
    for action in parser._actions:
        if action.dest == "help":
            continue
        assert action.help is not None
        assert "env " in action.help
        assert "default " in action.help
    text = parser.format_help()
    for expected in ("SERVER_PORT", "8080", "SIMULATION_ORDERS_PER_SEC", "METRICS_COLLECTION_TIME", "60s"):
        assert expected in text


def test_flags_override_environment() -> None:
    env = {
        "SERVER_HOST": "10.0.0.1",
        "SERVER_PORT": "9000",
        "LOG_LEVEL": "error",
        "SIMULATION_ENABLED": "true",
        "SIMULATION_ORDERS_PER_SEC": "1000",
        "SIMULATION_WORKERS": "16",
        "SIMULATION_SYMBOLS": "BTCUSD",
        "METRICS_COLLECTION_TIME": "10s",
        "JOURNAL_PATH": "env.sqlite3",
        "JOURNAL_SYNC": "off",
        "ADMIN_TOKEN": "from-env",
        "MAX_BODY_BYTES": "2048",
        "MAX_PENDING_ORDERS": "10",
    }
    argv = [
        "--host=0.0.0.0",
        "--port=0",
        "--log-level=warn",
        "--no-simulation",
        "--simulation-rate=2.5",
        "--simulation-workers=2",
        "--simulation-symbols=ETHUSD,SOLUSD",
        "--metrics-window=1m",
        "--journal=:memory:",
        "--journal-sync=normal",
        "--admin-token=from-flag",
        "--max-body-bytes=4096",
        "--max-pending-orders=20",
    ]
    assert load_settings(argv, env) == Settings(
        host="0.0.0.0",
        port=0,
        log_level="warning",
        simulation_enabled=False,
        simulation_orders_per_sec=2.5,
        simulation_workers=2,
        simulation_symbols=("ETHUSD", "SOLUSD"),
        metrics_collection_time=60.0,
        journal_path=":memory:",
        journal_sync="normal",
        admin_token="from-flag",
        max_body_bytes=4096,
        max_pending_orders=20,
    )


def test_unflagged_fields_still_come_from_environment() -> None:
    settings = load_settings(["--port", "9100"], {"SERVER_PORT": "9000", "ORDER_RETENTION": "7000"})
    assert settings.port == 9100
    assert settings.order_retention == 7000


def test_simulation_flag_enables() -> None:
    assert load_settings(["--simulation"], {"SIMULATION_ENABLED": "false"}).simulation_enabled is True
    assert load_settings([], {"SIMULATION_ENABLED": "false"}).simulation_enabled is False


def test_flag_wins_over_bad_environment_value() -> None:
    assert load_settings(["--port", "9000"], {"SERVER_PORT": "abc"}).port == 9000
    with pytest.raises(ConfigError, match=r"^SERVER_PORT="):
        load_settings([], {"SERVER_PORT": "abc"})


def test_empty_journal_flag_disables_journal() -> None:
    assert load_settings(["--journal", ""], {}).journal_path is None
    assert load_settings(["--journal", "none"], {}).journal_path is None


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--host", ""),
        ("--port", "x"),
        ("--port", "70000"),
        ("--port", ""),
        ("--log-level", "trace"),
        ("--simulation-rate", "-3"),
        ("--simulation-workers", "0"),
        ("--simulation-symbols", "XRPUSD"),
        ("--metrics-window", "10 minutes"),
        ("--metrics-window", "0"),
        ("--journal-sync", "always"),
        ("--max-body-bytes", "100"),
        ("--max-pending-orders", "-1"),
    ],
)
def test_bad_flag_value_names_flag(flag: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings([f"{flag}={value}"], {})
    assert str(caught.value).startswith(f"{flag}={value!r}: expected ")
    assert caught.value.name == flag


def test_flag_and_env_share_validation_message() -> None:
    with pytest.raises(ConfigError) as from_env:
        settings_from_env({"SIMULATION_WORKERS": "300"})
    with pytest.raises(ConfigError) as from_flag:
        load_settings(["--simulation-workers", "300"], {})
    assert from_env.value.expected == from_flag.value.expected
    assert "1 to 256" in from_env.value.expected


def test_unknown_flag_exits_through_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        load_settings(["--bogus"], {})
    assert caught.value.code == 2
    assert "--bogus" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "meaning"),
    [
        ("MAX_PENDING_ORDERS", "0 = the connection cap"),
        ("MAX_CONNECTIONS", "0 = the open-file limit less 64"),
    ],
)
def test_a_setting_whose_zero_means_a_default_says_so_when_refused(variable: str, meaning: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_env({variable: "-1"})
    assert str(caught.value) == f"{variable}='-1': expected an integer >= 0 ({meaning})"
