"""Answer equivalence: hand-written tables of (prediction, gold, expected verdict).

`FAST` pairs must be decided by the pure-Python fast path (no sympy, no worker process);
`SYMBOLIC` pairs need math-verify and go through the guarded worker.
"""

from __future__ import annotations

import pytest

from oreo_envs.verifiers import guard, is_equivalent
from oreo_envs.verifiers.equivalence import fast_equivalent
from oreo_envs.verifiers.normalize import normalize, parse_number

FAST_EQUAL = [
    # thousands separators, trailing zeros, signs
    ("1,000", "1000"),
    ("1000", "1,000"),
    ("1,234,567", "1234567"),
    ("1{,}000", "1000"),
    ("10,\\!080", "10080"),
    ("11,\\! 111,\\! 111,\\! 100", "11111111100"),
    ("3\\,000", "3000"),
    ("5.50", "5.5"),
    ("3.0", "3"),
    ("3", "3.000"),
    ("0.50", ".5"),
    ("007", "7"),
    ("+5", "5"),
    ("-7", "-7.0"),
    ("\u22123", "-3"),
    ("5.", "5"),
    # currency, percent, degrees, units
    ("$5", "5"),
    ("\\$5.00", "5"),
    ("\\$32,\\!348", "32348"),
    ("50%", "50"),
    ("50\\%", "50"),
    ("50\\%", "0.5"),
    ("0.125", "12.5%"),
    ("90^\\circ", "90"),
    ("90^{\\circ}", "90"),
    ("90\u00b0", "90"),
    ("45 degrees", "45"),
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),
    ("5\\text{ cm}", "5"),
    ("5 \\text{cm}^2", "5"),
    ("864 \\mbox{ inches}^2", "864"),
    ("5.4 \\text{ cents}", "5.4"),
    ("5 dollars", "5"),
    ("3.5 apples", "3.5"),
    # fractions in every spelling, and fractions vs decimals
    ("\\dfrac{1}{2}", "\\frac{1}{2}"),
    ("\\tfrac{3}{4}", "0.75"),
    ("\\frac12", "0.5"),
    ("\\frac 59", "\\frac{5}{9}"),
    ("\\frac9{19}", "\\frac{9}{19}"),
    ("1/2", "0.5"),
    ("0.5", "\\frac{1}{2}"),
    ("2/4", "1/2"),
    ("-0.5", "-\\frac{1}{2}"),
    ("-\\frac{3}{8}", "-0.375"),
    ("\\frac{-3}{8}", "-\\frac{3}{8}"),
    ("\\left( \\frac{1}{2} \\right)", "(0.5)"),
    ("1\\frac{4}{5}", "\\frac95"),
    ("137 \\frac{1}{2}", "137.5"),
    # wrappers, assignments, spacing
    ("x = 5", "5"),
    ("x=5", "5"),
    ("k = -2", "-2"),
    ("\\theta = 30^\\circ", "30"),
    ("$\\frac{1}{2}$", "1/2"),
    ("\\(\\frac{1}{2}\\)", "1/2"),
    ("\\displaystyle \\frac{1}{2}", "0.5"),
    # intervals, tuples, sets and lists of numbers
    ("(0, 1]", "(0,1]"),
    ("\\left( 0, 1 \\right]", "(0,1]"),
    ("[-2, 7]", "x \\in [-2,7]"),
    ("(1, 2)", "(1,2)"),
    ("(0.5, 2)", "(\\frac{1}{2}, 2)"),
    ("(6,31,-1)", "(6, 31, -1)"),
    ("\\left(\\frac{3}{5},\\frac{8}{3}\\right]", "(0.6, 8/3]"),
    ("(-\\infty, 0]", "(-\\infty,0]"),
    ("1, 2, 3", "3, 2, 1"),
    ("-2,1", "1, -2"),
    ("\\{1,2\\}", "\\{2, 1\\}"),
    ("1, 2", "\\{1, 2\\}"),
    # matrices
    (
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "\\begin{bmatrix}1\\\\2\\end{bmatrix}",
    ),
    (
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac23 \\\\ \\frac{5}{3} \\end{pmatrix}",
    ),
    (
        "\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}",
        "\\begin{bmatrix} -1.0 & 0 \\\\ 0 & -1 \\end{bmatrix}",
    ),
    # symbolic answers that agree once normalised
    ("288 \\pi", "288\\pi"),
    ("y = 2x + 3", "2x+3"),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("(0,9) \\cup (9,36)", "(0, 9)\\cup(9, 36)"),
    ("(2,\\infty)", "(2, \\infty)"),
    # text answers
    ("\\text{(B)}", "B"),
    ("(B)", "b"),
    ("\\textbf{B}", "B"),
    ("\\text{Evelyn}", "Evelyn"),
    ("evelyn", "\\text{Evelyn}"),
    ("\\text{east}", "East"),
    ("\\mathrm{even}", "\\text{even}"),
    ("\\text{ellipse}", "ellipse"),
]

FAST_DIFFERENT = [
    ("1/2", "2"),
    ("0.5", "5"),
    ("1,000", "100"),
    # `12` vs `1,2`: a comma is a thousands separator only before groups of three digits.
    ("12", "1,2"),
    ("1,2", "12"),
    ("1,23", "123"),
    ("12,3456", "123456"),
    ("1000", "1,000,0"),
    ("5.5", "5.05"),
    ("3", "-3"),
    ("-0.5", "0.5"),
    ("50%", "5"),
    ("50\\%", "0.05"),
    ("90^\\circ", "180"),
    ("5 \\text{ cm}", "6"),
    ("5 dollars", "50"),
    ("\\frac{1}{2}", "\\frac{2}{1}"),
    ("\\frac12", "12"),
    ("1\\frac{4}{5}", "4/5"),
    ("137 \\frac{1}{2}", "68.5"),
    ("x = 5", "6"),
    # open vs closed ends, order, and tuple vs set
    ("(0,1)", "[0,1]"),
    ("(0,1]", "[0,1)"),
    ("(0,1]", "(0,1)"),
    ("(-\\infty, 0]", "(-\\infty, 0)"),
    ("(2,\\infty)", "[2,\\infty)"),
    ("(1,2)", "(2,1)"),
    ("(1,2)", "1,2"),
    ("(1,2)", "\\{1,2\\}"),
    ("(1,2,3)", "(1,2)"),
    ("1,2,3", "1,2"),
    ("1,2", "1,3"),
    ("5", "5,5"),
    (
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
        "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}",
    ),
    (
        "\\begin{pmatrix} 1 & 2 \\end{pmatrix}",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
    ),
    # text answers never equal other words or numbers
    ("\\text{(B)}", "C"),
    ("Evelyn", "Navin"),
    ("east", "west"),
    ("\\text{even}", "odd"),
    ("B", "2"),
    ("yes", "1"),
    ("\\text{ellipse}", "\\text{circle}"),
    ("", "5"),
    ("5", ""),
]

SYMBOLIC = [
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("\\sqrt{8}", "2\\sqrt2", True),
    ("\\frac{\\pi}{2}", "\\pi/2", True),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", True),
    ("3\\sqrt{13}", "\\sqrt{117}", True),
    ("18+2\\pi", "2\\pi+18", True),
    ("6 - 5i", "-5i+6", True),
    ("p - q", "-q + p", True),
    ("x^3+3x-6", "-6+3x+x^3", True),
    ("(a+5)(b+2)", "(b+2)(a+5)", True),
    ("2k+2", "2(k+1)", True),
    ("\\frac{11+9a}{20}", "\\frac{9a+11}{20}", True),
    ("\\frac{\\sqrt2}{2}", "\\sqrt{2}/2", True),
    ("2^{10}", "1024", True),
    ("10^3", "1000", True),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}", True),
    ("\\{1\\pm\\sqrt{5},-2\\}", "-2, 1+\\sqrt5, 1-\\sqrt5", True),
    ("2\\sqrt{2}", "2\\sqrt{3}", False),
    ("\\sqrt{8}", "8", False),
    ("\\frac{\\pi}{2}", "\\pi", False),
    ("\\pi", "3.14", False),
    ("6 - 5i", "6 + 5i", False),
    ("p - q", "q - p", False),
    ("x^2", "x^3", False),
    ("2k+2", "2k", False),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}", False),
    ("\\sqrt{2}", "2", False),
    ("(0,9) \\cup (9,36)", "(0,36)", False),
    ("(3, \\frac{\\pi}{2})", "(3, \\pi)", False),
    ("1/0", "0", False),
]


@pytest.fixture(scope="module")
def worker():
    """Start math-verify's worker once, so its start-up is not inside a test's timing."""
    assert guard.warmup()
    yield


@pytest.mark.parametrize(("pred", "gold"), FAST_EQUAL)
def test_fast_path_equal(pred, gold):
    assert fast_equivalent(normalize(pred), normalize(gold)) is True
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(("pred", "gold"), FAST_DIFFERENT)
def test_fast_path_different(pred, gold):
    assert fast_equivalent(normalize(pred), normalize(gold)) is False
    assert not is_equivalent(pred, gold)


@pytest.mark.parametrize(("pred", "gold", "expected"), SYMBOLIC)
def test_symbolic_needs_math_verify(worker, pred, gold, expected):
    assert fast_equivalent(normalize(pred), normalize(gold)) is None
    assert is_equivalent(pred, gold, timeout=5.0) is expected


@pytest.mark.parametrize(("pred", "gold"), FAST_EQUAL[:40] + [(b, a) for a, b in FAST_EQUAL[:40]])
def test_numbers_never_start_the_worker(monkeypatch, pred, gold):
    def forbidden(*args):
        raise AssertionError("the fast path should have decided this pair")

    monkeypatch.setattr(guard, "math_verify_equivalent", forbidden)
    assert is_equivalent(pred, gold)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1,000", "\\frac{1000}{1}"),
        ("-2.50", "-\\frac{5}{2}"),
        ("12.5\\%", "\\frac{25}{2}\\%"),
        ("3/4", "0.75"),
    ],
)
def test_parse_number_is_exact(text, expected):
    assert parse_number(normalize(text))[0] == parse_number(normalize(expected))[0]


@pytest.mark.parametrize("text", ["1e5", "2^{3}", "\\sqrt{4}", "1,2", "--5", "-", "", "9" * 101])
def test_parse_number_rejects_non_plain_numbers(text):
    assert parse_number(normalize(text)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("\\$32,\\!348", "32,348"),
        ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),
        ("\\text{(C)}", "c"),
        ("x \\in [-2,7]", "[-2,7]"),
        ("\\cot x", "\\cot x"),
        ("4210_{5}", "4210_5"),
        ("\\sqrt2", "\\sqrt{2}"),
        ("x^{2}", "x^2"),
        ("50\\%", "50\\%"),
        (
            "\\begin{bmatrix} 1 & 2 \\\\ 3 & 4\\end{bmatrix}",
            "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        ),
    ],
)
def test_normalize_examples(text, expected):
    assert normalize(text) == expected


def test_long_numbers_compare_as_strings():
    huge = "9" * 5000
    assert is_equivalent(huge, huge)
    assert not is_equivalent(huge, huge[:-1] + "8")
    assert not is_equivalent("1" + "0" * 200, "1e200")


def test_non_strings_are_not_equivalent():
    assert not is_equivalent(None, "1")
    assert not is_equivalent(5, "5")
