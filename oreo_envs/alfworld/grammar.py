"""ALFWorld's grammar expressions, evaluated without ``eval``.

TextWorld evaluates a grammar's ``{python}`` symbols with ``eval``, so a game file could run any
code. ALFWorld's grammar only reads entity fields and joins them (``{o.name}``,
``{r.name or r.id}``, ``{o.indefinite + ' ' + o.name}``), so that is all that is evaluated here:
names, public attributes, ``and`` / ``or``, ``+`` and constants; a game asking for more is
refused.
"""

from __future__ import annotations

import ast
import functools
from typing import Any


class GameFileError(ValueError):
    """A game file that cannot be read, parsed or translated."""


def evaluate(text: str, variables: dict) -> Any:
    """The value of a grammar expression with the context's ``variables``.

    Raises:
        GameFileError: The expression is not one this module evaluates.
    """
    return _evaluate(_expression(text), variables)


@functools.lru_cache(maxsize=1024)
def _expression(text: str) -> ast.expr:
    """A grammar's ``{python}`` expression, parsed and checked once (module docstring).

    Raises:
        GameFileError: The expression is anything else.
    """
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise GameFileError(f"grammar expression {{{text}}} does not parse") from None
    for node in ast.walk(tree):
        allowed = isinstance(node, (ast.Name, ast.Load, ast.BoolOp, ast.And, ast.Or, ast.Add))
        allowed |= isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add)
        allowed |= isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float))
        allowed |= isinstance(node, ast.Attribute) and not node.attr.startswith("_")
        if not allowed:
            raise GameFileError(
                f"grammar expression {{{text}}} is not allowed: only names, fields, 'and', "
                f"'or', '+' and constants are evaluated ({type(node).__name__})"
            )
    return tree


def _evaluate(node: ast.expr, variables: dict) -> Any:
    """Evaluate a tree that `_expression` accepted."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in variables:
            raise GameFileError(f"grammar expression names an unknown entity {node.id!r}")
        return variables[node.id]
    if isinstance(node, ast.Attribute):
        return getattr(_evaluate(node.value, variables), node.attr)
    if isinstance(node, ast.BinOp):  # only Add passes `_expression`
        return _evaluate(node.left, variables) + _evaluate(node.right, variables)
    value = None
    for operand in node.values:  # BoolOp: Python's short-circuit and / or
        value = _evaluate(operand, variables)
        if (isinstance(node.op, ast.Or) and value) or (isinstance(node.op, ast.And) and not value):
            return value
    return value
