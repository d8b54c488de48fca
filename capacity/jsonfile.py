"""Reading a JSON file with one clear error: ``read_json_file(path, what, error) -> Any``.

Every format reader (``run.json``, ``sweep.json``, ``loadgen.json``, ``fit.json``, baselines) opens its
file the same way and wants the same one-line messages naming the file; each raises its own error type.
This module imports nothing from ``capacity``, so the earliest stage can use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def read_json_file(
    path: str | os.PathLike[str],
    what: str,
    error: Callable[[str], Exception],
    *,
    missing: str = "no such file",
) -> Any:
    """The parsed content of the JSON file at ``path``.

    Raises ``error(message)`` (from None: the message says it all) with one line naming the file:
    ``<path>: no such file`` (or ``<path>: <missing>``), ``<path>: is a directory, expected <what>``,
    ``<path>: cannot read: <reason>`` (permissions, not UTF-8) or
    ``<path>: not valid JSON (line L, column C: <reason>)``. ``what`` names the expected file for that
    message, e.g. ``"a capacity-run/1 file"``. The content is not checked: that is the caller's format.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{source}: {missing}") from None
    except IsADirectoryError:
        raise error(f"{source}: is a directory, expected {what}") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{source}: cannot read: {problem}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as problem:
        raise error(
            f"{source}: not valid JSON (line {problem.lineno}, column {problem.colno}: {problem.msg})"
        ) from None
