"""The answer forms chat models write: one box per solution, and the Minerva-style closing
sentence "Final Answer: The final answer is N. I hope it is correct." (issue 38, item 6).

Every case runs in both grading modes: these are explicit final answers, so "strict" must
read them exactly as "lenient" does.
"""

from __future__ import annotations

import pytest

from oreo_envs.verifiers import extract_answer, grade, has_final_answer, math_gold

MODES = ("strict", "lenient")

# (response, gold, expected grade)
SEVERAL_BOXES = [
    # one box per root, in either order, against a gold that lists them together
    ("$x = \\boxed{2}$ and $x = \\boxed{-3}$", "2, -3", True),
    ("$x = \\boxed{2}$ and $x = \\boxed{-3}$", "-3, 2", True),
    ("$x = \\boxed{2}$ and $x = \\boxed{-3}$", "2, 3", False),
    ("The roots are $\\boxed{2}$, $\\boxed{-3}$.", "-3,2", True),
    ("\\(x=\\boxed{2}\\) or \\(x=\\boxed{-3}\\)", "2,-3", True),
    ("\\[x_1 = \\boxed{2}, \\quad x_2 = \\boxed{-3}\\]", "-3, 2", True),
    ("\\boxed{2}\\text{ or }\\boxed{-3}", "-3, 2", True),
    ("$\\boxed{1+\\sqrt{2}}$ and $\\boxed{1-\\sqrt{2}}$", "1-\\sqrt{2}, 1+\\sqrt{2}", True),
    ("$\\boxed{1+\\sqrt{2}}$ and $\\boxed{1-\\sqrt{2}}$", "1\\pm\\sqrt{2}", True),
    # pairs: the order of the set does not matter, the order inside a pair does
    ("\\boxed{(1,2)}, \\boxed{(3,4)}", "(1,2),(3,4)", True),
    ("\\boxed{(1,2)}, \\boxed{(3,4)}", "(3,4),(1,2)", True),
    ("$(x, y) = \\boxed{(1,2)}$ and $(x, y) = \\boxed{(3,4)}$", "(3,4), (1,2)", True),
    ("\\boxed{(2,1)}, \\boxed{(4,3)}", "(1,2),(3,4)", False),
    ("\\boxed{(1,2)}, \\boxed{(3,4)}", "(1,2)", False),
    # a set is not a thousands-separated number: 2 and 500 are not 2,500
    ("\\boxed{2} and \\boxed{500}", "2500", False),
    ("\\boxed{2} and \\boxed{500}", "500, 2", True),
    # hedging: two different boxed values never earn a single-value gold
    ("The answer is $\\boxed{2}$ or $\\boxed{3}$.", "2", False),
    ("The answer is $\\boxed{2}$ or $\\boxed{3}$.", "3", False),
    ("\\boxed{\\frac{1}{2}}, \\boxed{7}", "\\frac{1}{2}", False),
    # one value boxed twice, or in two spellings, is one answer (MATH-500 problem 451)
    ("$\\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$ inches", "\\frac{639}{40}", True),
    ("$\\boxed{5}$ and again $\\boxed{5}$", "5", True),
    ("\\boxed{5} \\boxed{5}", "5", True),
    # an intermediate box followed by the final one: the final box alone is the answer
    ("The sum is $\\boxed{5}$. Doubling it, the answer is $\\boxed{10}$.", "10", True),
    ("The sum is $\\boxed{5}$. Doubling it, the answer is $\\boxed{10}$.", "5, 10", False),
    ("$a = \\boxed{3}$, so $b = 2a = \\boxed{6}$.", "6", True),
    ("\\boxed{1} or rather \\boxed{2}", "2", True),
    ("\\boxed{1}.\n\n**Final Answer**\n\\[\\boxed{2}\\]", "2", True),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("response", "gold", "expected"), SEVERAL_BOXES)
def test_several_boxes_grade_as_one_set(response, gold, expected, mode):
    assert grade(response, gold, style="math", mode=mode) is expected
    assert grade(response, gold, style="auto", mode=mode) is expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("$x = \\boxed{2}$ and $x = \\boxed{-3}$", "\\{2, -3\\}"),
        ("\\boxed{(1,2)}, \\boxed{(3,4)}", "\\{(1,2), (3,4)\\}"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\boxed{5}}", "5"),
        ("\\boxed{} and \\boxed{4}", "4"),
        ("\\boxed{3} and \\boxed{", None),  # the last box is unfinished: no boxed answer
    ],
)
def test_several_boxes_extract_as_a_set(response, expected):
    for mode in MODES:
        assert extract_answer(response, style="math", mode=mode) == (
            expected if expected is not None or mode == "strict" else "3"
        )


def test_gold_solutions_still_read_their_last_box():
    """`math_gold` (gold answers taken from reference solutions) keeps reading the last box."""
    assert math_gold("$x = \\boxed{2}$ and $x = \\boxed{-3}$") == "-3"
    assert has_final_answer("$\\boxed{2}$ and $\\boxed{-3}$", style="math")


# (response, gold, expected grade)
FINAL_ANSWER_SENTENCES = [
    ("Final Answer: The final answer is 5. I hope it is correct.", "5", True),
    ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "1/2", True),
    ("Final Answer: The final answer is 3.5. I hope it is correct.", "3.5", True),
    ("Final Answer: The final answer is 3.5. I hope it is correct.", "3", False),
    ("Final Answer: The final answer is $3.5$. I hope it is correct.", "\\frac72", True),
    ("The final answer is 3.5.", "3.5", True),
    ("The final answer is 3.5.", "35", False),
    ("The final answer is 12", "12", True),
    ("Final Answer: The final answer is 5.I hope it is correct.", "5", True),
    ("Final Answer: The final answer is 5 I hope it is correct.", "5", True),
    ("Final Answer: The final answer is $(1,2)$. I hope it is correct.", "(1,2)", True),
    ("Final Answer: The final answer is $(1,2)$. I hope it is correct.", "(2,1)", False),
    ("Final Answer: The final answer is 1,000. I hope it is correct.", "1000", True),
    ("Final Answer: The final answer is $2$ and $-3$. I hope it is correct.", "-3, 2", True),
    ("Final Answer: The final answer is $2$ and $-3$. I hope it is correct.", "2", False),
    ("Final Answer: The final answer is $x=2$ or $x=-3$. I hope it is correct.", "2,-3", True),
    ("Final Answer: The final answer is $5$ when $x = 2$. I hope it is correct.", "5", True),
    ("Final Answer: The final answer is $\\text{a.m.}$. I hope it is correct.", "a.m.", True),
    ("The final answer is\n$$\n\\frac{3}{4}\n$$", "\\frac34", True),
    ("The final answer is \\(7\\). That is all.", "7", True),
    # only the last such sentence counts
    (
        "The final answer is 7.\nWait, no.\nFinal Answer: The final answer is 8. I hope it is "
        "correct.",
        "8",
        True,
    ),
    (
        "The final answer is 7.\nWait, no.\nFinal Answer: The final answer is 8. I hope it is "
        "correct.",
        "7",
        False,
    ),
    # a box wins over the sentence, wherever the sentence is
    ("\\boxed{4}\nFinal Answer: The final answer is 5. I hope it is correct.", "4", True),
    ("\\boxed{4}\nFinal Answer: The final answer is 5. I hope it is correct.", "5", False),
    ("Final Answer: The final answer is $\\boxed{6}$. I hope it is correct.", "6", True),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("response", "gold", "expected"), FINAL_ANSWER_SENTENCES)
def test_final_answer_sentence(response, gold, expected, mode):
    assert grade(response, gold, style="math", mode=mode) is expected
    assert grade(response, gold, style="auto", mode=mode) is expected


def test_an_unclosed_dollar_does_not_swallow_the_next_line():
    assert extract_answer("The final answer is $5\nand then $x$", mode="strict") == "5"
    assert extract_answer("The final answer is\nlet me check", mode="strict") is None


def test_a_set_of_numbers_is_not_a_number_with_thousands_separators():
    """Two boxes `500` and `58` are the set {58, 500}, never the number 58,500."""
    for mode in MODES:
        assert not grade("\\boxed{500} and \\boxed{58}", "58,500", mode=mode)
        assert not grade("\\boxed{58} and \\boxed{500}", "58,500", mode=mode)
        assert grade("\\boxed{58,500}", "58,500", mode=mode)
