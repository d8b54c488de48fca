"""`capacity validate` and the CLI's lazily discovered subcommands."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import click
import pytest
import support
from click.testing import Result
from support import invoke_capacity

from capacity.cli import main as cli

ROOT = support.REPO_ROOT
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml")) + sorted((ROOT / "scenarios" / "sweeps").glob("*.yaml"))

GOOD = """\
name: good
load: {orders_per_second: 100, concurrent_users: 10, symbols: [BTCUSD], duration: 30s}
slo: {p99_ms: 20, error_rate: 0.01}
"""


def invoke(*args: str | Path) -> Result:
    return invoke_capacity(*args)


def test_all_shipped_files_are_ok() -> None:
    result = invoke("validate", *SHIPPED)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == len(SHIPPED)
    assert all(line.startswith("ok  ") for line in lines)
    assert any("quick.yaml (7 tiers, " in line for line in lines)
    assert any(line.endswith("gauntlet.yaml (3 stages, peak 12000/s, 4m30s)") for line in lines)


def test_bad_file_exits_2_with_file_line_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("orders_per_second: 100", 'orders_per_second: "fast"'))
    result = invoke("validate", bad)
    assert result.exit_code == 2
    expected = 'load.orders_per_second: expected a number > 0 and <= 100000, got "fast"'
    assert f"{bad}:2: {expected}" in result.stderr
    assert result.stdout == ""


def test_good_files_still_reported_when_another_is_bad(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "typo.yaml").write_text(GOOD + "mixx: {}\n")
    result = invoke("validate", tmp_path / "good.yaml", tmp_path / "typo.yaml")
    assert result.exit_code == 2
    assert result.stdout.startswith(f"ok  {tmp_path / 'good.yaml'} (100/s, 30s)")
    assert 'typo.yaml:4: mixx: unknown field "mixx" (did you mean "mix"?)' in result.stderr
    assert "1 of 2 file(s) invalid" in result.stderr


def test_sweep_is_detected_by_its_tiers(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "sweep.yaml").write_text(
        "name: s\ntiers:\n  - scenario: good.yaml\n  - scenario: gone.yaml\n"
    )
    result = invoke("validate", tmp_path / "sweep.yaml")
    assert result.exit_code == 2
    assert "sweep.yaml:4: tiers[1].scenario: scenario file not found: gone.yaml" in result.stderr


@pytest.mark.parametrize("text", ["name: [unclosed\n", "", "key: value: other\n"])
def test_unparseable_files_exit_2(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert str(path) in result.stderr


def test_missing_file_and_directory_exit_2(tmp_path: Path) -> None:
    result = invoke("validate", tmp_path / "nope.yaml", tmp_path)
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: file not found" in result.stderr
    assert f"{tmp_path}: is a directory" in result.stderr


def test_no_files_is_a_usage_error() -> None:
    assert invoke("validate").exit_code == 2


def test_the_command_table_names_every_subcommand_and_imports_it_when_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    @click.command()
    def hello() -> None:
        click.echo("hello from a table entry")

    module = types.ModuleType("capacity.cli_say_hello")
    module.command = hello  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "capacity.cli_say_hello", module)
    monkeypatch.setitem(cli.COMMANDS, "say-hello", "capacity.cli_say_hello")
    listed = invoke("--help").output
    assert all(name in listed for name in ("run", "sweep", "fit", "report", "baseline", "gate", "say-hello"))
    result = invoke("say-hello")
    assert (result.exit_code, result.output) == (0, "hello from a table entry\n")
    assert invoke("no-such-command").exit_code == 2
    for name, path in cli.COMMANDS.items():  # every real entry imports and is a click command
        if name != "say-hello":
            assert isinstance(importlib.import_module(path).command, click.Command), name
