"""Relations as answers: inequalities and intervals, and lines written as equations.

Pure Python on short normalised strings (callers cap lengths), no ``eval`` and no sympy:

- `as_interval`: ``-1 \\le y \\le 6``, ``x > 3``, ``9 \\ge y``, ``y \\in [-1, 6]`` and
  ``[-1, 6]`` as one form ``(lower, upper, closed_low, closed_high)`` with exact endpoints
  (`fractions.Fraction`, or +-inf), so an inequality equals the interval it describes;
- `as_linear_equation`: ``y=\\frac{1}{3}x-2`` and ``x-3y-6=0`` as coefficient vectors, equal
  when proportional (the same line, plane...); only linear equations in two or more variables
  are decided here (``x = 5`` stays an answer with a presentational ``x =``).
"""

from __future__ import annotations

import re
from fractions import Fraction

from oreo_envs.verifiers.normalize import parse_number

INF = float("inf")
# Every spelling of the four order relations, longest first (``\geqslant`` before ``\geq``).
_RELATIONS = {
    "\\geqslant": ">=", "\\leqslant": "<=", "\\geq": ">=", "\\leq": "<=", "\\ge": ">=",
    "\\le": "<=", "\\gt": ">", "\\lt": "<", ">=": ">=", "<=": "<=", "≥": ">=", "≤": "<=",
    ">": ">", "<": "<",
}  # fmt: skip
_RELATION = re.compile(
    "|".join(re.escape(k) + ("(?![A-Za-z])" if k[0] == "\\" else "") for k in _RELATIONS)
)
_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}
_VARIABLE = re.compile(r"\\?[A-Za-z]+(?:_\{?\w+\}?)?")
_INFINITY = {"\\infty": INF, "+\\infty": INF, "-\\infty": -INF, "\\inf": INF, "-\\inf": -INF}

Endpoint = Fraction | float  # a float only for +-inf
Interval = tuple[Endpoint, Endpoint, bool, bool]


def relation_parts(s: str) -> list[str] | None:
    """``s`` split into operands and canonical operators (``["-1", "<=", "y", "<=", "6"]``), or
    None when it holds no order relation."""
    parts, start = [], 0
    for m in _RELATION.finditer(s):
        parts += [s[start : m.start()].strip(), _RELATIONS[m.group()]]
        start = m.end()
    if not parts:
        return None
    parts.append(s[start:].strip())
    return parts if all(parts[::2]) else None


def endpoint(s: str) -> Endpoint | None:
    """An interval end: an exact number or +-infinity; None for anything symbolic."""
    if s in _INFINITY:
        return _INFINITY[s]
    number = parse_number(s)
    return None if number is None or number[1] else number[0]


def as_interval(s: str) -> Interval | None:
    """The set of values an inequality or interval describes (module docstring), or None."""
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]":
        ends = s[1:-1].split(",")
        if len(ends) != 2:
            return None
        lo, hi = endpoint(ends[0].strip()), endpoint(ends[1].strip())
        if lo is None or hi is None:
            return None
        return lo, hi, s[0] == "[" and lo != -INF, s[-1] == "]" and hi != INF
    parts = relation_parts(s)
    if parts is None:
        return None
    if len(parts) == 3:  # x op a, or a op x
        left, op, right = parts
        if _VARIABLE.fullmatch(right) and not _VARIABLE.fullmatch(left):
            left, op, right = right, _FLIP[op], left
        bound = endpoint(right)
        if not _VARIABLE.fullmatch(left) or bound is None:
            return None
        if op in (">", ">="):
            return bound, INF, op == ">=", False
        return -INF, bound, False, op == "<="
    if len(parts) == 5:  # a op x op b, both the same direction
        a, op1, x, op2, b = parts
        if op1[0] != op2[0] or not _VARIABLE.fullmatch(x):
            return None
        lo, hi = endpoint(a), endpoint(b)
        if lo is None or hi is None:
            return None
        if op1[0] == ">":
            (lo, hi), (op1, op2) = (hi, lo), (_FLIP[op2], _FLIP[op1])
        return lo, hi, op1 == "<=", op2 == "<="
    return None


_TERM = re.compile(
    r"([+-]?)"  # sign
    r"(\d+(?:\.\d+)?|\\frac\{\d+\}\{\d+\}|\d+/\d+)?"  # coefficient
    r"(?:\\cdot|\*)?"
    r"([A-Za-z](?:_\{?\w+\}?)?)?"  # one variable
)


def linear_form(side: str) -> dict[str, Fraction] | None:
    """A sum of terms ``c``, ``c x``, ``\\frac{a}{b}x``, ``-x`` as ``{variable or "": coeff}``;
    None for anything else (products of variables, powers, brackets, functions)."""
    s = side.replace(" ", "")
    if not s:
        return None
    out: dict[str, Fraction] = {}
    i = 0
    while i < len(s):
        m = _TERM.match(s, i)
        if m is None or m.end() == i or not (m.group(2) or m.group(3)):
            return None
        if i > 0 and not m.group(1):
            return None  # two terms without a sign between them: a product
        coefficient = Fraction(1)
        if m.group(2):
            number = parse_number(m.group(2))
            if number is None or number[1]:
                return None
            coefficient = number[0]
        if m.group(1) == "-":
            coefficient = -coefficient
        var = m.group(3) or ""
        out[var] = out.get(var, Fraction(0)) + coefficient
        i = m.end()
    return out


def as_linear_equation(s: str) -> dict[str, Fraction] | None:
    """``lhs = rhs`` as the coefficients of ``lhs - rhs`` when both sides are linear and it
    names at least two variables (a line or a plane); None otherwise."""
    if s.count("=") != 1 or relation_parts(s) is not None:
        return None
    left, right = (linear_form(side) for side in s.split("="))
    if left is None or right is None:
        return None
    form = dict(left)
    for var, c in right.items():
        form[var] = form.get(var, Fraction(0)) - c
    form = {v: c for v, c in form.items() if c != 0}
    return form if len([v for v in form if v]) >= 2 else None


def same_line(a: dict[str, Fraction], b: dict[str, Fraction]) -> bool:
    """Whether two linear forms are nonzero multiples of each other (the same equation)."""
    if set(a) != set(b):
        return False
    pivot = next(iter(a))
    ratio = b[pivot] / a[pivot]
    return all(b[v] == ratio * c for v, c in a.items())
