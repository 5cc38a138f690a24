"""String normalisation and exact number parsing for short answer strings.

Everything here is pure Python on strings of at most `MAX_ANSWER_CHARS` characters: the callers
cap lengths first, so a regex here never sees model output of unbounded size. No function evaluates
its input (no `eval`, no sympy); numbers become `fractions.Fraction` only after a regex has checked
that they are plain digits, and never when longer than `MAX_DIGITS` characters.
"""

from __future__ import annotations

import re
from fractions import Fraction

# Answers longer than this skip normalisation and math-verify: they are compared as squashed
# strings. Real final answers are far shorter; long ones are usually a model rambling in \boxed{}.
MAX_ANSWER_CHARS = 1000
# Number strings longer than this are compared as strings, never converted: Python refuses
# int(str) past 4,300 digits and huge Fractions make every later operation slow.
MAX_DIGITS = 100

# `\\\\` (a row break) is matched first so that its second backslash is not read as `\\ `.
_SPACING = re.compile(r"\\\\|\\[!,;:> ]|\\q?quad(?![A-Za-z])|\\displaystyle(?![A-Za-z])|~")
_UNICODE = {"\u2212": "-", "\u2013": "-", "\u221e": "\\infty", "\u03c0": "\\pi", "\u00b0": ""}
_WRAPPERS = ("\\text", "\\textbf", "\\textit", "\\textrm", "\\textnormal", "\\mbox", "\\mathrm")
_UNIT_WORD = re.compile(r"[A-Za-z][A-Za-z .]*")
_UNIT_EXPONENT = re.compile(r"(?:\^\{?\d\}?)?")
_SIZED_DELIM = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|biggl|biggr|bigg|Bigg)(?![A-Za-z])"
)
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\degrees?(?![A-Za-z])")
_WRAPPED = re.compile(r"\\(?:text|textbf|textit|textrm|textnormal|mbox|mathrm|mathbf)\{([^{}]*)\}")
_ASSIGNMENT = re.compile(r"\\?[A-Za-z]+(?:_\{?\w+\}?)?\s*(?:=|\\in(?![A-Za-z]))([^=<>]+)")
_NUMBER_WITH_WORDS = re.compile(r"([+-]?[\d.,/]*\d)\s+[A-Za-z][A-Za-z .]*")
_CHOICE = re.compile(r"\(([A-Za-z])\)")
_TEXT = re.compile(r"[A-Za-z][A-Za-z ]*")
_CONTROL_WORD_END = re.compile(r"\\[A-Za-z]+$")
_FRAC_DIGITS = re.compile(r"\\frac(\d)(\d)")
_FRAC_FIRST = re.compile(r"\\frac(\w)\{")
_FRAC_SECOND = re.compile(r"\\frac\{([^{}]*)\}(\w)")
_SQRT_SHORT = re.compile(r"\\sqrt(\w)")
_SINGLE_BRACED = re.compile(r"([\^_])\{(\w)\}")

_DECIMAL = r"(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(_DECIMAL)
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_SLASH = re.compile(rf"([+-]?{_DECIMAL})/([+-]?{_DECIMAL})")
_FRAC = re.compile(rf"\\frac\{{([+-]?{_DECIMAL})\}}\{{([+-]?{_DECIMAL})\}}")
_MIXED = re.compile(r"(\d+)\\frac\{(\d+)\}\{(\d+)\}")
_LONG_NUMBER = re.compile(r"[+-]?[\d.,]+")

Number = tuple[Fraction, bool]
"""An exact value and whether it was written as a percentage."""


def sanitize(text: str) -> str:
    """Drop NUL bytes and replace lone surrogates, so every later stage sees valid text."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def squash(text: str) -> str:
    """Whitespace-free form used to compare over-long answers as plain strings."""
    return "".join(text.split())


def normalize(answer: str) -> str:
    """Canonical form of a short answer string; equal forms mean equivalent answers.

    Removes presentation-only LaTeX (`$`, `\\left`, `\\!`, `\\dfrac`, degrees, units, `x =`),
    keeps a trailing percent as `\\%`, lower-cases plain-text answers and writes fractions and
    roots in one brace style. The result is still valid LaTeX so it can go to math-verify.

    Args:
        answer: An extracted answer or a gold answer, at most `MAX_ANSWER_CHARS` long.

    Returns:
        The canonical string (may be empty).
    """
    s = answer.strip().strip("$").strip()
    if s[:2] in ("\\(", "\\[") and s[-2:] in ("\\)", "\\]"):
        s = s[2:-2].strip()
    for src, dst in _UNICODE.items():
        s = s.replace(src, dst)
    s = s.replace("\\left.", "").replace("\\right.", "")
    s = _SIZED_DELIM.sub("", s)
    s = _SPACING.sub(_space_out, s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\cfrac", "\\frac").replace("{,}", ",").replace("\\$", "")
    s = s.replace("bmatrix", "pmatrix").strip().rstrip(".").strip()
    s = _DEGREES.sub("", s)
    percent = s.endswith("%")
    if percent:
        s = s[:-2] if s.endswith("\\%") else s[:-1]
    s = _strip_trailing_unit(s.strip())
    s = _WRAPPED.sub(r"\1", s).strip()
    assignment = _ASSIGNMENT.fullmatch(s)
    if assignment:
        s = assignment.group(1).strip()
    words = _NUMBER_WITH_WORDS.fullmatch(s)
    if words:
        s = words.group(1)
    choice = _CHOICE.fullmatch(s)
    if choice:
        s = choice.group(1)
    if _TEXT.fullmatch(s):
        return " ".join(s.lower().split())
    s = _squash_spaces(s).rstrip(".")
    s = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", s)
    s = _FRAC_FIRST.sub(r"\\frac{\1}{", s)
    s = _FRAC_SECOND.sub(r"\\frac{\1}{\2}", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = _SINGLE_BRACED.sub(r"\1\2", s)
    return s + "\\%" if percent and s else s


def _space_out(match: re.Match) -> str:
    return match.group() if match.group() == "\\\\" else " "


def _strip_trailing_unit(s: str) -> str:
    """Drop a trailing `\\text{ cm}`-style unit (optionally squared) after a non-empty value."""
    for cmd in _WRAPPERS:
        start = s.rfind(cmd + "{")
        if start <= 0 or not s[:start].strip():
            continue
        close = s.find("}", start)
        if close < 0:
            continue
        unit = s[start + len(cmd) + 1 : close].strip()
        # `\mathrm{e}` and `\mathrm{i}` are constants, not units.
        if cmd == "\\mathrm" and len(unit) < 2:
            continue
        if _UNIT_WORD.fullmatch(unit) and _UNIT_EXPONENT.fullmatch(s[close + 1 :].strip()):
            return s[:start].rstrip()
    return s


def _squash_spaces(s: str) -> str:
    """Remove whitespace, keeping one space where it ends a control word (`\\cot x`)."""
    pieces = s.split()
    if not pieces:
        return ""
    out = [pieces[0]]
    for piece in pieces[1:]:
        if piece[0].isalpha() and _CONTROL_WORD_END.search(out[-1]):
            out.append(" ")
        out.append(piece)
    return "".join(out)


def is_text(canonical: str) -> bool:
    """True for a plain-words answer (`evelyn`, `b`), as `normalize` leaves it."""
    return bool(_TEXT.fullmatch(canonical))


def is_long_number(canonical: str) -> bool:
    """True for a digit string too long to convert safely (compare it as a string)."""
    return len(canonical) > MAX_DIGITS and bool(_LONG_NUMBER.fullmatch(canonical))


def parse_number(canonical: str) -> Number | None:
    """Exact value of a plain number, percentage, `a/b`, `\\frac{a}{b}` or mixed number.

    Args:
        canonical: Output of `normalize`.

    Returns:
        `(value, is_percent)`, or None when the string is not one of these forms, is too long, or
        divides by zero.
    """
    s = canonical
    if not s or len(s) > MAX_DIGITS:
        return None
    percent = s.endswith("\\%")
    if percent:
        s = s[:-2]
    negative = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    value = _unsigned_value(s)
    if value is None:
        return None
    return (-value if negative else value), percent


def _unsigned_value(s: str) -> Fraction | None:
    """Value of `s` (no leading sign) for the forms `parse_number` accepts."""
    if _PLAIN.fullmatch(s):
        return Fraction(s)
    if _THOUSANDS.fullmatch(s):
        return Fraction(s.replace(",", ""))
    match = _SLASH.fullmatch(s) or _FRAC.fullmatch(s)
    if match:
        numerator, denominator = Fraction(match.group(1)), Fraction(match.group(2))
        return numerator / denominator if denominator else None
    match = _MIXED.fullmatch(s)
    if match:
        whole, numerator, denominator = (int(g) for g in match.groups())
        return whole + Fraction(numerator, denominator) if denominator else None
    return None


def split_top_level(s: str) -> list[str]:
    """Split on commas outside any bracket pair; `\\{` and `\\}` count as brackets."""
    items, depth, start, i = [], 0, 0, 0
    while i < len(s):
        char = s[i]
        if char == "\\" and s[i + 1 : i + 2] in ("{", "}"):
            char = s[i + 1]
            i += 1
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(s[start:i])
            start = i + 1
        i += 1
    items.append(s[start:])
    return items


def as_sequence(canonical: str) -> tuple[str, list[str]] | None:
    """Split a tuple, interval, set or bare comma list into `(kind, items)`.

    `kind` is `"set"` for `\\{...\\}` and bare lists (order does not matter), else the outer
    bracket pair, e.g. `"(]"` (order and open/closed ends matter). A string of one number with
    thousands separators (`1,000`) is a number, not a list; this is checked by the caller first.
    """
    s = canonical
    if s.startswith("\\{") and s.endswith("\\}") and _encloses(s, 2):
        return "set", split_top_level(s[2:-2])
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _encloses(s, 1):
        return s[0] + s[-1], split_top_level(s[1:-1])
    items = split_top_level(s)
    return ("set", items) if len(items) > 1 else None


def _encloses(s: str, width: int) -> bool:
    """True when the opening bracket of `s` closes only at its last `width` characters."""
    depth = 0
    for i, char in enumerate(s[:-width]):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if depth == 0 and i >= width - 1:
            return False
    return True


def as_matrix(canonical: str) -> list[list[str]] | None:
    """Cells of a `pmatrix` (or `bmatrix`, renamed by `normalize`), row by row, or None."""
    head, tail = "\\begin{pmatrix}", "\\end{pmatrix}"
    if not (canonical.startswith(head) and canonical.endswith(tail)):
        return None
    body = canonical[len(head) : -len(tail)]
    if head in body:
        return None
    rows = [row for row in body.split("\\\\") if row.strip()]
    return [row.split("&") for row in rows]
