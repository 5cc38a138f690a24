"""Grading modes, relations, lines, precision and matrix notations, with hand-written verdicts
(issue cases from math-verify's test suite categories, and mistakes it makes that we must not)."""

from __future__ import annotations

import pytest

from oreo_envs.verifiers import extract_answer, grade, is_equivalent

P = "\\begin{pmatrix}%s\\end{pmatrix}"
B = "\\begin{bmatrix}%s\\end{bmatrix}"
ARRAY = "\\left[\\begin{array}{cc}%s\\end{array}\\right]"


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        # inequalities and intervals, any spelling, side or variable
        ("t \\ge 4", "t >= 4", True),
        ("y \\lt 8", "y < 8", True),
        ("9 \\ge y", "y \\le 9", True),
        ("-1 \\le y \\le 6", "y \\in [-1,6]", True),
        ("-1 \\le y \\le 6", "[-1,6]", True),
        ("6 \\geq y \\geq -1", "[-1, 6]", True),
        ("x > 3", "(3, \\infty)", True),
        ("x \\le -2", "(-\\infty, -2]", True),
        ("x > 3", "[3, \\infty)", False),  # open vs closed end
        ("-1 < y \\le 6", "[-1,6]", False),
        ("x > 3", "x < 3", False),
        ("x \\ge 4", "(4, \\infty)", False),
        # lines as equations
        ("y=\\frac{1}{3}x-2", "x-3y-6=0", True),
        ("x+y=1", "2x+2y=2", True),
        ("y = 2x+1", "y = 2x-1", False),
        ("y = 2x+1", "x = 2y+1", False),
        # numbers at their stated precision, alike in scalars, intervals and matrices
        ("0.142857142857143", "\\frac{1}{7}", True),
        ("0.1429", "\\frac{1}{7}", True),
        ("0.1428", "\\frac{1}{7}", False),  # not 1/7 rounded
        ("0.33", "\\frac{1}{3}", False),  # too few digits to stand for 1/3
        ("2.0001", "2", False),
        ("[0.25,1.3333)", "[\\frac{1}{4},\\frac{4}{3})", True),
        ("(0.6667, 2)", "(\\frac{2}{3}, 2)", True),
        (P % "0.5 & 0.3333", P % "\\frac12 & \\frac13", True),
        (P % "0.5 & 0.33", P % "\\frac12 & \\frac13", False),
        # matrix notations
        (B % "1&2\\\\3&4", P % "1&2\\\\3&4", True),
        (ARRAY % "1&2\\\\3&4", P % "1&2\\\\3&4", True),
        (B % "1&2\\\\3&5", P % "1&2\\\\3&4", False),
        # decimal commas are not read (documented): a list, not a quarter
        ("0,25", "0.25", False),
        # no false positives, including ones math-verify makes
        ("2-\\frac{1}{e}", "2+\\frac{1}{e}", False),
        ("g(a)", "g(b)", False),
        ("1/100!", "1/102!", False),
        ("3", "3\\sqrt{3}", False),
    ],
)  # fmt: skip
def test_equivalence(pred, gold, expected):
    assert is_equivalent(pred, gold) is expected


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        ("So $t \\ge 4$ is the answer.", None, "t \\ge 4"),
        ("Hence $y \\lt 8$.", None, "y \\lt 8"),
        ("The result is $\\begin{pmatrix}2 & 0\\\\0 & 2\\end{pmatrix}$", None,
         "\\begin{pmatrix}2 & 0\\\\0 & 2\\end{pmatrix}"),
        ("We get \\(x = 3\\) in the end", None, "x = 3"),
        ("$$\\frac{1}{2}$$", None, "\\frac{1}{2}"),
        ("He paid $5 and got $3 back.", None, "3"),  # prices: prose, not a span; last number
        ("$3 + 4 = 7$, so the answer is 7.", "7", "7"),  # a phrase beats a span
        ("... \\boxed{5} and $6$", "5", "5"),  # a marker beats everything
        ("Tom has 7 apples.", None, "7"),
    ],
)  # fmt: skip
def test_extraction_modes(text, strict, lenient):
    assert extract_answer(text, style="math", mode="strict") == strict
    assert extract_answer(text, style="math", mode="lenient") == lenient


def test_grading_modes_on_free_text():
    assert grade("So $t \\ge 4$ is the answer.", "t \\geq 4", style="math", mode="lenient")
    assert not grade("So $t \\ge 4$ is the answer.", "t \\geq 4", style="math", mode="strict")
    assert grade("Hence $y \\lt 8$.", "(-\\infty, 8)", style="math", mode="lenient")
    with pytest.raises(ValueError, match="grading mode"):
        grade("x", "x", mode="loose")


def test_math_env_records_its_grade_mode(gsm8k_file):
    import gymnasium

    import oreo_envs  # noqa: F401

    env = gymnasium.make("oreo/GSM8K-v0", path=str(gsm8k_file))
    assert env.unwrapped.grade_mode == "strict"
    with pytest.raises(ValueError, match="grading mode"):
        gymnasium.make("oreo/GSM8K-v0", path=str(gsm8k_file), grade_mode="loose")
