"""Final-answer extraction, final-answer detection and gold-answer helpers."""

from __future__ import annotations

import time

import pytest

from oreo_envs.verifiers import extract_answer, grade, gsm8k_gold, has_final_answer, math_gold

EXTRACT = [
    # (text, style, expected)
    ("#### 42", "gsm8k", "42"),
    ("She has 7.\n#### 1,234", "gsm8k", "1,234"),
    ("#### $5.00", "gsm8k", "5.00"),
    ("#### -3\n", "gsm8k", "-3"),
    ("##### 17", "gsm8k", "17"),
    ("#### 1\nmore work\n#### 2", "gsm8k", "2"),
    ("Total: <<2*3=6>>6 eggs.\n#### 6", "gsm8k", "6"),
    ("#### 18.", "gsm8k", "18"),
    ("#### **18**", "gsm8k", "18"),
    ("#### Step 1: add\n3 + 4 = 7\nThe answer is 7.", "gsm8k", "7"),
    ("#### 7\n#### Check", "gsm8k", "7"),
    ("So $x = \\boxed{5}$.", "math", "5"),
    ("\\boxed{ \\frac{1}{2} }", "math", "\\frac{1}{2}"),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "math", "\\frac{\\sqrt{3}}{2}"),
    ("\\boxed{\\text{(A)}}", "math", "\\text{(A)}"),
    ("\\boxed{1} or rather \\boxed{2}", "math", "2"),
    ("The answer is $\\boxed{20}$.", "math", "20"),
    ("\\fbox{7}", "math", "7"),
    ("$\\boxed 5$.", "math", "5"),
    ("\\boxed {3}", "math", "3"),
    ("\\boxed{\\{1,2\\}}", "math", "\\{1,2\\}"),
    (
        "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}",
        "math",
        "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
    ),
    ("\\boxed{$5$}", "math", "5"),
    ("#### 3 and then \\boxed{4}", "auto", "4"),
    ("\\boxed{4} and then\n#### 3", "auto", "3"),
    ("\\boxed{4} and then\n#### 3", "math", "4"),
    ("\\boxed{4} and then\n#### 3", "gsm8k", "3"),
    ("no hashes but \\boxed{9}", "gsm8k", "9"),
    ("The final answer is 42.", "auto", "42"),
    ("The answer is: 17", "auto", "17"),
    ("Final Answer: $\\frac{3}{4}$ because reasons", "auto", "\\frac{3}{4}"),
    ("So the answer is 3.5 apples. Done", "auto", "3.5 apples"),
    ("the answer is 12\nand 13 is wrong", "auto", "12"),
    ("... so 3.5 apples.", "auto", "3.5"),
    ("I get 1,000 in total", "auto", "1,000"),
    ("the temperature is -4 today", "auto", "-4"),
    ("read pages 3-5", "auto", "5"),
    ("no numbers here", "auto", None),
    ("", "auto", None),
    # an unclosed last box is no box; with fallback the last number is used
    ("\\boxed{", "math", None),
    ("\\boxed{1} then \\boxed{2", "math", "2"),
]


@pytest.mark.parametrize(("text", "style", "expected"), EXTRACT)
def test_extract_answer(text, style, expected):
    assert extract_answer(text, style=style) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so 3.5 apples.", None),
        ("The answer is 7", "7"),
        ("\\boxed{8}", "8"),
        ("\\boxed{8", None),
    ],
)
def test_extract_strict_mode(text, expected):
    assert extract_answer(text, style="auto", mode="strict") == expected


def test_strict_grading_needs_an_explicit_answer():
    assert grade("Tom has 3 + 4 = 7 apples.", "7", style="gsm8k")
    assert not grade("Tom has 3 + 4 = 7 apples.", "7", style="gsm8k", mode="strict")
    assert grade("Tom has 3 + 4 = 7 apples.\n#### 7", "7", style="gsm8k", mode="strict")


@pytest.mark.parametrize(
    ("text", "style", "expected"),
    [
        ("#### 5", "gsm8k", True),
        ("#### ", "gsm8k", False),
        ("####\n5", "gsm8k", False),
        ("#### Step 1: add 3 and 4", "gsm8k", False),
        ("the answer is 5", "gsm8k", False),
        ("\\boxed{5}", "gsm8k", False),
        ("\\boxed{5}", "math", True),
        ("\\boxed{\\frac{1}{2}}.", "math", True),
        ("\\boxed{\\frac{1}{2}", "math", False),
        ("\\boxed{}", "math", False),
        ("\\boxed{5} and \\boxed{", "math", False),
        ("#### 5", "math", False),
        ("#### 5", "auto", True),
        ("\\boxed{5}", "auto", True),
        ("Let me think step by step.", "auto", False),
        ("x" * 100_000 + "\\boxed{" + "{" * 100_000, "auto", False),
    ],
)
def test_has_final_answer(text, style, expected):
    assert has_final_answer(text, style=style) is expected


def test_gsm8k_gold():
    assert gsm8k_gold("3 + 4 = <<3+4=7>>7\n#### 7") == "7"
    assert gsm8k_gold("#### 1 is wrong\n#### 1,200 ") == "1,200"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no final answer")


def test_math_gold():
    assert math_gold("So $\\boxed{\\frac{1}{2}}$.") == "\\frac{1}{2}"
    assert math_gold("\\boxed{1} and finally \\boxed{ 2 }") == "2"
    assert math_gold("\\boxed{\\text{(B)}}") == "\\text{(B)}"
    assert math_gold("no box here, the answer is 3") is None


@pytest.mark.parametrize("function", [extract_answer, has_final_answer])
def test_unknown_style_raises(function):
    with pytest.raises(ValueError, match="unknown answer style"):
        function("#### 1", style="gsm9k")


@pytest.mark.parametrize(
    "text",
    [
        "9" * 1_000_000,
        "(" * 1_000_000,
        "\\boxed{" * 150_000,
        "{" * 1_000_000 + "\\boxed{" + "}" * 1_000_000,
        "the answer is " * 70_000,
        "#### " + "1," * 500_000,
        "$" * 1_000_000,
        "1." * 500_000,
        "\\boxed{1}, " * 100_000,
        "$x = \\boxed{" * 100_000 + "1}$ and " * 100_000,
        "Final Answer: The final answer is $1$ and " * 25_000,
    ],
)
def test_megabyte_responses_scan_in_linear_time(text):
    start = time.perf_counter()
    extract_answer(text, style="auto")
    has_final_answer(text, style="auto")
    assert time.perf_counter() - start < 1.0


def test_strange_characters_do_not_raise():
    assert extract_answer("\\boxed{1\x002}") == "12"
    assert extract_answer("\\boxed{\ud800}") == "?"
    assert extract_answer(None) is None
