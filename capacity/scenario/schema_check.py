"""Checking a document against the JSON Schema shipped in ``capacity/schemas`` (the file editors use for
completion), and saying what each violation means in the user's words."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

from capacity.scenario.model import plain_number, shown
from capacity.scenario.yaml_source import FieldPath, YamlDoc, field_name


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The shipped JSON Schema for ``kind`` ("scenario" or "sweep")."""
    text = resources.files("capacity").joinpath("schemas", f"{kind}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(kind))


def check_schema(doc: YamlDoc, kind: str) -> None:
    """Add a problem for every schema violation and raise if there was any (with earlier problems too)."""
    root = load_schema(kind)
    if doc.data is None:
        doc.add((), f"the file is empty; expected {_expectation(root)}")
        doc.raise_if_any()
    reported: set[str] = set()
    for path in _non_finite(doc.data, ()):  # JSON Schema's bounds let NaN through: NaN > max is false
        reported.add(field_name(path))
        doc.add(path, f"expected a finite number, got {_yaml_number(_value_at(doc.data, path))}", key=True)
    for error in _validator(kind).iter_errors(doc.data):
        for path, message, line_path in _explain(error, root):
            if field_name(path) not in reported:  # one message per field is enough
                reported.add(field_name(path))
                doc.add(path, message, key=True, line_path=line_path)
    if reported:  # building needs schema-valid data; duplicate keys alone do not stop it
        doc.raise_if_any()


def _non_finite(data: Any, path: FieldPath) -> Iterator[FieldPath]:
    """Paths of every NaN or infinity in ``data`` (YAML's .nan, .inf and -.inf)."""
    if isinstance(data, float) and not math.isfinite(data):
        yield path
    elif isinstance(data, Mapping):
        for key, value in data.items():
            yield from _non_finite(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _non_finite(value, (*path, index))


def _value_at(data: Any, path: FieldPath) -> Any:
    for part in path:
        data = data[part]
    return data


def _yaml_number(value: float) -> str:
    """NaN and infinities as YAML spells them."""
    return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")


def _explain(
    error: jsonschema.ValidationError, root: dict[str, Any]
) -> list[tuple[FieldPath, str, FieldPath]]:
    """(field path, message, path whose key line to report) for one jsonschema error, in plain words."""
    path: FieldPath = tuple(error.absolute_path)
    instance = error.instance
    schema: dict[str, Any] = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "required" and isinstance(instance, Mapping):
        # a missing field has no line of its own: point at its parent's key
        return [
            (
                (*path, name),
                f"missing required field; expected {_expectation(_schema_at(root, (*path, name)))}",
                path,
            )
            for name in (error.validator_value if isinstance(error.validator_value, list) else ())
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        allowed = list(schema.get("properties", {}))
        return [
            ((*path, k), _unknown_field(str(k), allowed), (*path, k)) for k in instance if k not in allowed
        ]
    if error.validator == "uniqueItems":
        return [(path, f"expected no duplicates, got {shown(instance)}", path)]
    if error.validator is None:  # a `false` schema
        return [(path, "not allowed here", path)]
    if error.validator in _EXPLAINED:
        return [(path, f"expected {_expectation(schema)}, got {shown(instance)}", path)]
    return [(path, error.message, path)]


_EXPLAINED = {
    "type",
    "anyOf",
    "oneOf",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "minLength",
}


def _unknown_field(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f'unknown field "{key}" (did you mean "{close[0]}"?)'
    return f'unknown field "{key}"; allowed here: {", ".join(allowed)}'


def _resolve(root: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:  # only local refs ("#/$defs/...") are used in the shipped schemas
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        schema = target
    return schema


def _schema_at(root: dict[str, Any], path: FieldPath) -> dict[str, Any]:
    """The (resolved) schema describing the value at ``path``; {} where the schema says nothing."""
    schema = root
    for part in path:
        schema = _resolve(root, schema)
        schema = (
            schema.get("items", {}) if isinstance(part, int) else schema.get("properties", {}).get(part, {})
        )
    return _resolve(root, schema)


_TYPE_WORDS = {
    "number": "a number",
    "integer": "an integer",
    "string": "a string",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


def _expectation(schema: dict[str, Any]) -> str:
    """What a schema accepts, in words: 'a number > 0', 'a string like 30s, 2m', 'a mapping with a, b'."""
    if "anyOf" in schema:
        return " or ".join(_expectation(option) for option in schema["anyOf"])
    if "const" in schema:
        return shown(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(map(shown, schema["enum"]))
    kind = str(schema.get("type"))
    text = _TYPE_WORDS.get(kind, "a value")
    if kind in ("number", "integer"):
        text += _bounds(schema)
    elif kind == "string" and "examples" in schema:
        text += " like " + ", ".join(schema["examples"])
    elif kind == "string" and "pattern" in schema:
        text += f" matching {schema['pattern']}"
    elif kind == "array" and schema.get("minItems"):
        text = f"a list of at least {schema['minItems']} item(s)"
    elif kind == "object" and schema.get("required"):
        text += " with " + ", ".join(schema["required"])
    return text


_LOWER_BOUNDS = (("exclusiveMinimum", ">"), ("minimum", ">="))
_UPPER_BOUNDS = (("exclusiveMaximum", "<"), ("maximum", "<="))


def _bounds(schema: dict[str, Any]) -> str:
    """' > 0', ' >= 0 and <= 100' or '' for a numeric schema."""
    found = [
        next((f"{op} {plain_number(schema[key])}" for key, op in bounds if key in schema), "")
        for bounds in (_LOWER_BOUNDS, _UPPER_BOUNDS)
    ]
    text = " and ".join(b for b in found if b)
    return f" {text}" if text else ""
