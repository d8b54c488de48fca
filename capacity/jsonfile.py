"""Reading a JSON file with one clear error: ``read_json_file(path, what, error) -> Any``.

Every format reader (``run.json``, ``sweep.json``, ``loadgen.json``, ``fit.json``, baselines) opens its
file the same way and wants the same one-line messages naming the file; each raises its own error type.
It is also where doctored or damaged files stop: a file larger than ``MAX_JSON_BYTES``, nested deeper than
``MAX_JSON_DEPTH`` (100,000 brackets used to overflow every reader's recursion) or holding ``NaN`` or
``Infinity`` (Python's json accepts them; no file the toolkit writes contains them, and a NaN metric would
compare as "not significant") is refused with a message naming the file. This module imports only
``capacity.input_limits``, which imports nothing from ``capacity``, so the earliest stage can use it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from capacity.input_limits import InputLimitError, read_bounded_text

#: Largest result file read (run.json, sweep.json, fit.json, loadgen.json, baselines): far above a day-long
#: run's, small enough to read into memory.
MAX_JSON_BYTES = 256_000_000
#: Deepest nesting of objects and arrays in a JSON file (the toolkit's own files need under 10).
MAX_JSON_DEPTH = 64


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
    ``<path>: not valid JSON (line L, column C: <reason>)`` (NaN and Infinity included), or a limit
    (size, a regular file, nesting; see the module docstring). ``what`` names the expected file for that
    message, e.g. ``"a capacity-run/1 file"``. The content is not checked: that is the caller's format.
    """
    source = Path(path)
    try:
        text = read_bounded_text(source, MAX_JSON_BYTES)
    except InputLimitError as problem:
        raise error(f"{source}: {problem.message}") from None
    except FileNotFoundError:
        raise error(f"{source}: {missing}") from None
    except IsADirectoryError:
        raise error(f"{source}: is a directory, expected {what}") from None
    except (OSError, UnicodeDecodeError) as problem:
        raise error(f"{source}: cannot read: {problem}") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as problem:
        raise error(
            f"{source}: not valid JSON (line {problem.lineno}, column {problem.colno}: {problem.msg})"
        ) from None
    except _NotANumber as problem:
        line = text.count("\n", 0, max(text.find(str(problem)), 0)) + 1
        raise error(
            f"{source}: not valid JSON (line {line}: {problem} is not a number; the toolkit never writes one)"
        ) from None
    except RecursionError:
        raise error(f"{source}: nested deeper than {MAX_JSON_DEPTH} levels") from None
    if _depth(data) > MAX_JSON_DEPTH:
        raise error(f"{source}: nested deeper than {MAX_JSON_DEPTH} levels")
    return data


class _NotANumber(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotANumber(name)


def _depth(data: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, depth)
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest
