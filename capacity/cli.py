"""The ``capacity`` command line.

This file holds only the group and ``validate``. Every other subcommand lives in its own module and is found
without editing this file: ``capacity/cli_<name>.py`` defining ``command`` (a ``click.Command``) becomes
``capacity <name>`` (underscores in the module name become dashes). Such modules are imported only when
their command is used (or help lists it), so heavy imports (Locust, matplotlib) never slow ``validate``.

Exit codes: 0 success, 2 invalid input (bad scenario files, usage errors), as click does for usage errors.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import click

import capacity
from capacity.exit_codes import EXIT_INVALID
from capacity.scenario import ScenarioError, load_document
from capacity.signals import stop_on_hangup_and_terminate

_PLUGIN_PREFIX = "cli_"


def _plugin_names() -> list[str]:
    """Subcommand names of the ``capacity/cli_*.py`` modules, without importing them."""
    return [
        info.name.removeprefix(_PLUGIN_PREFIX).replace("_", "-")
        for info in pkgutil.iter_modules(capacity.__path__)
        if info.name.startswith(_PLUGIN_PREFIX)
    ]


def _load_plugin(name: str) -> click.Command | None:
    if name not in _plugin_names():
        return None
    module = importlib.import_module(f"capacity.{_PLUGIN_PREFIX}{name.replace('-', '_')}")
    command = getattr(module, "command", None) or getattr(module, name.replace("-", "_"), None)
    return command if isinstance(command, click.Command) else None


class _CapacityGroup(click.Group):
    """A group that adds the lazily imported ``cli_*`` modules to the commands registered here."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugin_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or _load_plugin(cmd_name)


@click.group(cls=_CapacityGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capacity")
def main() -> None:
    """Measured capacity planning for trading systems."""
    stop_on_hangup_and_terminate()


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Check scenario and sweep YAML files (a top-level `tiers` key means sweep).

    Prints `ok` per good file; every problem of a bad file goes to stderr as file:line: field: message.
    Exits 2 if any file is invalid or unreadable.
    """
    invalid = 0
    for path in files:
        try:
            document = load_document(path)
        except ScenarioError as exc:
            invalid += 1
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            continue
        click.echo(f"ok  {path} ({document.summary()})")
    if invalid:
        click.echo(f"{invalid} of {len(files)} file(s) invalid", err=True)
        ctx.exit(EXIT_INVALID)
