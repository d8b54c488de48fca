"""Reading YAML with a line for every field: the data beside PyYAML's node tree, walked along a field's path.

Syntax errors, duplicate keys and self-referencing aliases become problems here, before any other check.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from capacity.input_limits import InputLimitError, check_yaml_structure, read_bounded_text
from capacity.scenario.model import Problem, ScenarioError

FieldPath = tuple[str | int, ...]


@dataclass
class YamlDoc:
    """A parsed YAML document: data, node tree (for line numbers) and the problems found so far."""

    source: str
    data: Any
    node: yaml.Node | None = None
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: FieldPath, key: bool = False) -> int | None:
        """1-based line of the value at ``path`` (or of its key), or of the deepest ancestor that exists."""
        if self.node is None:
            return None
        return _node_at(self.node, path, key).start_mark.line + 1

    def add(
        self, path: FieldPath, message: str, key: bool = False, line_path: FieldPath | None = None
    ) -> None:
        """Record a problem of the field at ``path``; its line is that of ``line_path`` if given."""
        line = self.line_of(path if line_path is None else line_path, key)
        self.problems.append(Problem(self.source, line, field_name(path), message))

    def raise_if_any(self) -> None:
        if self.problems:
            # this file's problems in line order, then those of files it refers to
            ordered = sorted(self.problems, key=lambda p: (p.source != self.source, p.line or 0))
            raise ScenarioError(ordered)


def field_name(path: FieldPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    """(key node, value node) of ``part`` in a mapping or sequence node; None if absent."""
    if isinstance(node, yaml.MappingNode):
        # reversed: with duplicate keys the last one wins, as in the loaded data
        for key, value in reversed(node.value):
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return key, value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part], node.value[part]
    return None


def _node_at(root: yaml.Node, path: FieldPath, key: bool) -> yaml.Node:
    node, key_node = root, root
    for part in path:
        child = _child(node, part)
        if child is None:
            return node
        key_node, node = child
    return key_node if key else node


def _structure_problems(
    node: yaml.Node, path: FieldPath = (), ancestors: frozenset[int] = frozenset()
) -> Iterator[tuple[FieldPath, yaml.Node, str]]:
    """Duplicate keys and self-referencing aliases (which would make the data infinitely deep)."""
    if id(node) in ancestors:
        yield path, node, RECURSIVE_ALIAS
        return
    inside = ancestors | {id(node)}
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            if name in seen:
                yield (*path, name), key, "duplicate key (the last one would win)"
            seen.add(name)
            yield from _structure_problems(value, (*path, name), inside)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _structure_problems(item, (*path, index), inside)


RECURSIVE_ALIAS = "an alias that refers to its own ancestor (recursive data) is not supported"


def read_yaml(path: str | os.PathLike[str]) -> str:
    try:
        return read_bounded_text(path)
    except InputLimitError as exc:
        raise ScenarioError([Problem(str(path), None, "", exc.message)]) from None
    except FileNotFoundError:
        raise ScenarioError([Problem(str(path), None, "", "file not found")]) from None
    except IsADirectoryError:
        raise ScenarioError([Problem(str(path), None, "", "is a directory, expected a YAML file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ScenarioError([Problem(str(path), None, "", f"cannot read file: {reason}")]) from None


def parse_yaml(text: str, source: str) -> YamlDoc:
    """YAML text to data plus node tree; syntax errors and structural problems become problems."""
    try:
        check_yaml_structure(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        problems = [
            Problem(source, at.start_mark.line + 1, field_name(path), message)
            for path, at, message in (_structure_problems(node) if node is not None else ())
        ]
        if any(p.message == RECURSIVE_ALIAS for p in problems):
            raise ScenarioError(problems)  # nothing downstream can walk infinitely deep data
        data = yaml.safe_load(text)
    except InputLimitError as exc:
        raise ScenarioError([Problem(source, exc.line, "", exc.message)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = f"{exc.context}, {exc.problem}" if exc.context else str(exc.problem)
        line = mark.line + 1 if mark else None
        raise ScenarioError([Problem(source, line, "", f"YAML syntax error: {detail}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([Problem(source, None, "", f"YAML error: {exc}")]) from None
    return YamlDoc(source, data, node, problems)
