"""Answer equivalence: an exact pure-Python fast path, then math-verify in a guarded worker.

The fast path (`fast_equivalent`) decides plain numbers, fractions, percentages, units, text
answers, and tuples, intervals, sets and matrices of numbers with exact `Fraction` arithmetic. It
covers nearly every GSM8K answer and most MATH answers without starting the worker. Anything with
symbolic LaTeX (`\\sqrt`, `\\pi`, variables, `\\pm`, ...) goes to math-verify.

Conventions where answers are ambiguous:
    * `1,000` (groups of three digits) is one thousand; `1,2` and `12,3456` are lists; so
      the set `\\{1, 000\\}` is not `1,000`.
    * A percentage equals its number and its hundredth: `50%` == `50` == `0.5`.
    * An integer right before a fraction is a mixed number: `1\\frac{4}{5}` == `9/5`.
    * Bare comma lists and `\\{...\\}` are sets (order ignored); `(...)`/`[...]` are ordered and
      their bracket kinds must match, so `(0,1)` != `[0,1]` and `(1,2)` != `1,2`.
    * Plain-text answers compare case-insensitively and never equal a number.
    * Whitespace is ignored everywhere, so `1, 000` is also one thousand.
    * A decimal with at least `MIN_SIGNIFICANT` significant digits stands for any value within
      half a unit of its last place: `0.142857142857143` == `\\frac{1}{7}`, `1.3333` ==
      `\\frac{4}{3}`, alike in scalars, tuples, intervals and matrices; shorter decimals are
      exact (`0.33` != `\\frac{1}{3}`).
    * Decimal commas are not read: `0,25` is the list 0, 25 (the datasets are English).
    * An inequality equals the interval it describes, whatever the variable's name or side:
      `-1 \\le y \\le 6` == `y \\in [-1,6]` == `[-1,6]`, `x > 3` == `(3,\\infty)`, `9 \\ge y`
      == `y \\le 9` (`oreo_envs.verifiers.relations`).
    * Linear equations in two or more variables are lines (planes...): equal when one is a
      nonzero multiple of the other, `y=\\frac{1}{3}x-2` == `x-3y-6=0`.
    * Products of different large factorials are unequal (`1/100!` != `1/102!`), where a
      floating-point comparison would call both zero.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction

from oreo_envs.verifiers import guard, relations
from oreo_envs.verifiers.normalize import (
    MAX_ANSWER_CHARS,
    Number,
    as_matrix,
    as_sequence,
    is_long_number,
    is_text,
    normalize,
    parse_number,
    sanitize,
    squash,
)

logger = logging.getLogger(__name__)

MIN_SIGNIFICANT = 4
_DECIMAL_TEXT = re.compile(r"[+-]?(\d*)\.(\d+)")
_FACTORIAL = re.compile(r"(\d+)!")
_LARGE_FACTORIAL = 20  # 20! > 2**53: beyond it floats cannot tell factorials apart


def is_equivalent(pred: str, gold: str, *, timeout: float = 2.0) -> bool:
    """Whether the predicted answer equals the gold answer. Never raises.

    Args:
        pred: An extracted answer, e.g. `"\\frac{1}{2}"` or `"1,000"` (not a whole response).
        gold: The reference answer.
        timeout: Wall-clock seconds math-verify may spend, when the fast path cannot decide.

    Returns:
        True when equivalent; False when not, on timeout, and on any error.
    """
    if not isinstance(pred, str) or not isinstance(gold, str):
        return False
    try:
        pred, gold = sanitize(pred), sanitize(gold)
        if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:
            return squash(pred) == squash(gold)
        line = _line_verdict(pred, gold)
        if line is not None:
            return line
        pred_form, gold_form = normalize(pred), normalize(gold)
        verdict = fast_equivalent(pred_form, gold_form)
        if verdict is not None:
            return verdict
        if not pred_form or not gold_form or _factorials_differ(pred_form, gold_form):
            return False
        return guard.math_verify_equivalent(pred_form, gold_form, timeout)
    except Exception:  # adversarial input must never crash an env step
        logger.debug("is_equivalent failed on %r vs %r", pred[:80], gold[:80], exc_info=True)
        return False


def fast_equivalent(pred: str, gold: str) -> bool | None:
    """Decide equivalence of two normalised answers without sympy, or None when undecided.

    Args:
        pred: `normalize(prediction)`.
        gold: `normalize(gold answer)`.

    Returns:
        True or False when the fast path is sure, None when math-verify must decide.
    """
    if pred == gold:
        return True
    if not pred or not gold or is_long_number(pred) or is_long_number(gold):
        return False
    pred_num, gold_num = parse_number(pred), parse_number(gold)
    if pred_num is not None and gold_num is not None:
        return _numbers_equal(pred_num, gold_num, pred, gold)
    verdict = _text_verdict(pred, gold, pred_num, gold_num)
    if verdict is not None:
        return verdict
    pred_matrix, gold_matrix = as_matrix(pred), as_matrix(gold)
    if pred_matrix is not None and gold_matrix is not None:
        return _matrices_equal(pred_matrix, gold_matrix)
    interval = _interval_verdict(pred, gold)
    if interval is not None:
        return interval
    return _sequence_verdict(pred, gold, pred_num, gold_num)


def values_match(x: Fraction, y: Fraction, x_text: str = "", y_text: str = "") -> bool:
    """Exact equality, or equality at the stated precision of a long decimal (module
    docstring): ``x_text`` / ``y_text`` are the numbers as written."""
    if x == y:
        return True
    for text in (x_text, y_text):
        m = _DECIMAL_TEXT.fullmatch(text)
        if m is None:
            continue
        digits = (m.group(1) + m.group(2)).lstrip("0")
        if len(digits) >= MIN_SIGNIFICANT and abs(x - y) <= Fraction(1, 2 * 10 ** len(m.group(2))):
            return True
    return False


def _numbers_equal(a: Number, b: Number, a_text: str = "", b_text: str = "") -> bool:
    (x, x_percent), (y, y_percent) = a, b
    if x == y or x_percent == y_percent:
        return values_match(x, y, a_text, b_text)
    # A percentage also matches its fraction of one: 50% == 0.5.
    return x / 100 == y if x_percent else y / 100 == x


def _line_verdict(pred: str, gold: str) -> bool | None:
    """Two linear equations in two or more variables: the same line? None when either is not
    one (`relations.as_linear_equation`)."""
    if "=" not in pred or "=" not in gold:
        return None
    a = relations.as_linear_equation(_bare(pred))
    b = relations.as_linear_equation(_bare(gold))
    if a is None or b is None:
        return None
    return relations.same_line(a, b)


def _bare(s: str) -> str:
    """An answer with `$`, spacing commands and `\\dfrac` spellings removed (for equations)."""
    s = s.strip().strip("$")
    for old, new in (("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("\\left", ""),
                     ("\\right", ""), ("\\,", ""), ("\\!", ""), ("\\ ", "")):  # fmt: skip
        s = s.replace(old, new)
    return s


def _interval_verdict(pred: str, gold: str) -> bool | None:
    """An inequality against an interval or another inequality (`relations.as_interval`):
    the same set? None unless one of them is a relation or has an infinite end, and both
    parse (plain intervals of numbers are `_sequence_verdict`'s)."""
    if not any(relations.relation_parts(s) or "\\infty" in s for s in (pred, gold)):
        return None
    a, b = relations.as_interval(pred), relations.as_interval(gold)
    if a is None or b is None or a[0] > a[1] or b[0] > b[1]:
        return None
    if a[2:] != b[2:]:
        return False  # open against closed ends
    return all(_ends_match(x, y) for x, y in zip(a[:2], b[:2], strict=True))


def _ends_match(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):  # infinities
        return x == y
    return values_match(x, y)


def _factorials_differ(pred: str, gold: str) -> bool:
    """Both sides hold factorials, some of them large, and not the same ones."""
    a, b = sorted(_FACTORIAL.findall(pred)), sorted(_FACTORIAL.findall(gold))
    large = any(int(n) >= _LARGE_FACTORIAL for n in a + b if len(n) < 6)
    return bool(a) and bool(b) and large and a != b


def _text_verdict(pred: str, gold: str, pred_num, gold_num) -> bool | None:
    """Words never equal numbers or other words; single letters may be variables (undecided)."""
    pred_text, gold_text = is_text(pred), is_text(gold)
    if not (pred_text or gold_text):
        return None
    if pred_text and gold_text:
        return False  # equal strings were caught before
    if pred_num is not None or gold_num is not None:
        return False
    text = pred if pred_text else gold
    return None if len(text) == 1 else False


def _matrices_equal(pred: list[list[str]], gold: list[list[str]]) -> bool | None:
    if [len(row) for row in pred] != [len(row) for row in gold]:
        return False
    verdicts = [
        _item_verdict(a, b)
        for row_a, row_b in zip(pred, gold, strict=True)
        for a, b in zip(row_a, row_b, strict=True)
    ]
    if False in verdicts:
        return False
    return True if None not in verdicts else None


def _item_verdict(pred: str, gold: str) -> bool | None:
    """Compare two cells or elements: equal strings, or two numbers by value; else undecided."""
    if pred == gold:
        return True
    a, b = parse_number(pred), parse_number(gold)
    if a is None or b is None:
        return None
    return values_match(a[0], b[0], pred, gold)


def _sequence_verdict(pred: str, gold: str, pred_num, gold_num) -> bool | None:
    """Tuples, intervals, sets and comma lists whose elements are all numbers."""
    pred_seq, gold_seq = as_sequence(pred), as_sequence(gold)
    if pred_seq is None and gold_seq is None:
        return None
    if pred_seq is None or gold_seq is None:
        # One number against a list of several: `12` vs `1,2`.
        seq = pred_seq or gold_seq
        scalar = pred_num if pred_seq is None else gold_num
        return False if scalar is not None and len(seq[1]) > 1 else None
    if (pred_num is None) != (gold_num is None):
        # A number with thousands separators is not a list: `\{500, 58\}` != `58,500`.
        return False
    (pred_kind, pred_items), (gold_kind, gold_items) = pred_seq, gold_seq
    pred_values = [parse_number(item) for item in pred_items]
    gold_values = [parse_number(item) for item in gold_items]
    if None in pred_values or None in gold_values:
        if pred_kind != gold_kind and "set" not in (pred_kind, gold_kind):
            return False  # open vs closed interval ends, whatever the endpoints
        return None
    if pred_kind != gold_kind or len(pred_values) != len(gold_values):
        return False
    pred_exact = [value for value, _ in pred_values]
    gold_exact = [value for value, _ in gold_values]
    if pred_kind == "set":
        return sorted(pred_exact) == sorted(gold_exact)
    return all(
        values_match(x, y, xt.strip(), yt.strip())
        for x, y, xt, yt in zip(pred_exact, gold_exact, pred_items, gold_items, strict=True)
    )
