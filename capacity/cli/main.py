"""The ``capacity`` command line.

This file holds the group, ``validate`` and the table of the other subcommands (``COMMANDS``): each lives in
its own module defining ``command`` (a ``click.Command``), imported only when its command is used or help
lists it, so heavy imports (Locust, matplotlib) never slow ``validate``.

Exit codes: 0 success, 2 invalid input (bad scenario files, usage errors), as click does for usage errors.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import click

from capacity.cli.signals import stop_on_hangup_and_terminate
from capacity.exit_codes import EXIT_INVALID
from capacity.scenario import ScenarioError, load_document

#: Subcommand -> the module defining its ``command``, in the order of the pipeline.
COMMANDS: dict[str, str] = {
    "run": "capacity.cli.run",
    "sweep": "capacity.cli.sweep",
    "fit": "capacity.cli.fit",
    "audit": "capacity.cli.audit",
    "report": "capacity.cli.report",
    "baseline": "capacity.cli.baseline",
    "gate": "capacity.cli.gate",
}


class _CapacityGroup(click.Group):
    """A group whose ``COMMANDS`` are imported when first asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = importlib.import_module(COMMANDS[cmd_name]).command
        return command


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
