"""A claim's formula, evaluated: ``+ - * /``, parentheses, numbers and names (other claims' ids and a few
constants), nothing else. Python's own parser reads it; only those nodes are evaluated."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping

CONSTANTS = {"seconds_per_day": 86_400.0, "seconds_per_hour": 3_600.0, "days_per_year": 365.0}

_OPERATORS: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


class FormulaError(ValueError):
    """A formula that is not arithmetic over names and numbers; the message says what."""


def parse_formula(text: str) -> ast.expr:
    """The formula's expression, or FormulaError naming what is not allowed."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise FormulaError(f"not a formula: {text!r}") from None
    for node in ast.walk(tree.body):
        allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.USub, *_OPERATORS)
        if not isinstance(node, allowed) or (
            isinstance(node, ast.Constant) and not isinstance(node.value, int | float)
        ):
            raise FormulaError(f"only + - * /, numbers and claim ids are allowed, got {ast.unparse(node)!r}")
    return tree.body


def names_in(expression: ast.expr) -> list[str]:
    """The names a formula uses, in order of appearance, without constants."""
    found = [node.id for node in ast.walk(expression) if isinstance(node, ast.Name)]
    return [name for name in dict.fromkeys(found) if name not in CONSTANTS]


def evaluate(expression: ast.expr, values: Mapping[str, float]) -> float:
    """The formula's value with ``values`` for its names (and ``CONSTANTS``); ZeroDivisionError as is."""
    if isinstance(expression, ast.Constant) and isinstance(expression.value, int | float):
        return float(expression.value)
    if isinstance(expression, ast.Name):
        return CONSTANTS[expression.id] if expression.id in CONSTANTS else values[expression.id]
    if isinstance(expression, ast.UnaryOp):
        return -evaluate(expression.operand, values)
    if isinstance(expression, ast.BinOp):
        apply = _OPERATORS[type(expression.op)]
        return apply(evaluate(expression.left, values), evaluate(expression.right, values))
    raise FormulaError(f"cannot evaluate {ast.unparse(expression)!r}")
