"""Bounds on what the toolkit reads, checked before anything is built: size, nesting and alias expansion.

A YAML file written by a careless or hostile hand can cost without limit: ``/dev/zero`` never ends, a
"billion laughs" of nine nested aliases expands exponentially, 500 levels of nesting overflow the
recursive walks of PyYAML and jsonschema. So a YAML file is read only if it is a regular file of at most
``MAX_YAML_BYTES``, and its parser *events* (which never expand an alias) are counted first: nesting deeper
than ``MAX_DEPTH`` or an expanded size above ``MAX_YAML_NODES`` nodes is refused with the line where it
happened. The expanded size is counted the way a loader would build it (an alias costs as many nodes as
its anchor holds), which is what makes a bomb expensive; a file with a few ordinary aliases is unaffected.
JSON files are bounded by ``capacity.jsonfile``. Limits are listed in docs/limits.md.

This module imports nothing from ``capacity``, so every stage that reads user files can use it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

#: Largest scenario, sweep, claims or thresholds file: a hundred times the largest shipped one.
MAX_YAML_BYTES = 1_000_000
#: Deepest nesting of mappings and lists in a YAML file (the shipped formats need 4).
MAX_DEPTH = 64
#: Largest number of nodes a YAML file may expand to, aliases expanded.
MAX_YAML_NODES = 100_000


class InputLimitError(ValueError):
    """Input refused before it was built: ``line`` (1-based, None for the whole file) and why."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def read_bounded_text(path: str | os.PathLike[str], limit: int = MAX_YAML_BYTES) -> str:
    """The UTF-8 text of the regular file at ``path``, at most ``limit`` bytes.

    Raises InputLimitError for a device, FIFO or socket (``/dev/zero`` would never end) and for a larger
    file; OSError and UnicodeDecodeError pass through for the caller's own message.
    """
    mode = os.stat(path).st_mode  # before opening: opening a FIFO would wait for a writer
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    if not stat.S_ISREG(mode):
        raise InputLimitError("not a regular file (a device, pipe or socket cannot be read as input)")
    with Path(path).open("rb") as file:
        data = file.read(limit + 1)
    if len(data) > limit:
        raise InputLimitError(f"larger than the {limit:,}-byte limit for input files (docs/limits.md)")
    return data.decode("utf-8")


def check_yaml_structure(text: str) -> None:
    """Raise InputLimitError if ``text`` nests deeper than ``MAX_DEPTH`` or expands to more than
    ``MAX_YAML_NODES`` nodes; YAML syntax errors pass through (yaml.YAMLError) for the caller's message."""
    counts: list[int] = []  # nodes so far in each open collection, outermost first
    anchors: list[str | None] = []
    sizes: dict[str, int] = {}
    total = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            size = sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(counts) >= MAX_DEPTH:
                raise InputLimitError(f"nested deeper than {MAX_DEPTH} levels", _line(event))
            counts.append(1)
            anchors.append(event.anchor)
            continue
        elif isinstance(event, yaml.CollectionEndEvent):
            size = counts.pop()
            anchor = anchors.pop()
            if anchor:
                sizes[anchor] = size
        else:
            continue
        if counts:
            counts[-1] += size
        else:
            total += size
        if total + sum(counts) > MAX_YAML_NODES:
            raise InputLimitError(
                f"expands to more than {MAX_YAML_NODES:,} values (aliases expanded): refused", _line(event)
            )


def _line(event: yaml.Event) -> int | None:
    return None if event.start_mark is None else event.start_mark.line + 1
