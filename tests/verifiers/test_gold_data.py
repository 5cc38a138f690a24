"""Grade real reference solutions: each must match its own answer and no other problem's.

Uses GSM8K and MATH-500 from the shared data folder beside the project; skipped in a clone
without it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from oreo_envs.verifiers import grade, gsm8k_gold, is_equivalent
from oreo_envs.verifiers.normalize import normalize, parse_number

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _load(relative: str) -> list[dict]:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"reference data not found at {path}")
    with path.open() as lines:
        return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def gsm8k_test() -> list[dict]:
    return _load("gsm8k/test.jsonl")


@pytest.fixture(scope="module")
def math500() -> list[dict]:
    return _load("math500/test.jsonl")


@pytest.mark.parametrize(("split", "size"), [("train", 7473), ("test", 1319)])
def test_every_gsm8k_solution_grades_correct(split, size):
    rows = _load(f"gsm8k/{split}.jsonl")
    assert len(rows) == size
    start = time.perf_counter()
    failures = [
        row["answer"][-80:]
        for row in rows
        if not grade(row["answer"], gsm8k_gold(row["answer"]), style="gsm8k")
    ]
    print(f"GSM8K {split}: {len(rows)} solutions in {time.perf_counter() - start:.2f}s")
    assert failures == []


def test_gsm8k_solution_does_not_match_the_next_problem(gsm8k_test):
    golds = [gsm8k_gold(row["answer"]) for row in gsm8k_test]
    wrong = []
    for i, row in enumerate(gsm8k_test):
        other = golds[(i + 1) % len(golds)]
        if is_equivalent(golds[i], other):
            continue  # two problems that happen to share an answer
        if grade(row["answer"], other, style="gsm8k"):
            wrong.append((i, golds[i], other))
    assert wrong == []


def test_math500_solutions_grade_correct(math500):
    start = time.perf_counter()
    failures = [
        (i, row["answer"])
        for i, row in enumerate(math500)
        if not grade(row["solution"], row["answer"], style="math", timeout=5.0)
    ]
    elapsed = time.perf_counter() - start
    print(f"MATH-500: {len(math500) - len(failures)}/{len(math500)} correct in {elapsed:.2f}s")
    for i, answer in failures:
        print(f"  problem {i}: gold {answer!r} not matched by its solution")
    assert len(failures) <= 0.01 * len(math500)


def test_math500_solution_does_not_match_the_next_problem(math500):
    wrong, shared = [], 0
    start = time.perf_counter()
    for i, row in enumerate(math500):
        other = math500[(i + 1) % len(math500)]["answer"]
        if is_equivalent(row["answer"], other, timeout=5.0):
            shared += 1
            continue
        if grade(row["solution"], other, style="math", timeout=5.0):
            wrong.append((i, row["answer"], other))
    print(f"MATH-500 cross check: {shared} shared answers, {time.perf_counter() - start:.2f}s")
    assert wrong == []


def test_math500_chat_forms_grade_without_false_positives(math500):
    """Each gold answer written as chat models write it: the Minerva-style closing sentence,
    one box per element of a list answer (in reverse order), and, against a single-value gold,
    the gold boxed beside the next problem's answer (a hedge that must never be rewarded)."""
    missed, hedges = [], []
    for i, row in enumerate(math500):
        gold, other = row["answer"], math500[(i + 1) % len(math500)]["answer"]
        sentence = f"Final Answer: The final answer is ${gold}$. I hope it is correct."
        # `58,500` is one number: only lists of solutions are boxed item by item
        number = parse_number(normalize(gold)) is not None
        parts = [gold] if number else [part for part in _top_level_items(gold) if part]
        boxes = " and ".join(f"$x = \\boxed{{{part}}}$" for part in reversed(parts))
        for mode in ("strict", "lenient"):
            if not grade(sentence, gold, mode=mode, timeout=5.0):
                missed.append((i, mode, "sentence", gold))
            if len(parts) > 1 and "\\{" not in gold and not grade(boxes, gold, mode=mode):
                missed.append((i, mode, "boxes", gold))
            if len(parts) == 1 and not is_equivalent(gold, other, timeout=5.0):
                hedge = f"$\\boxed{{{gold}}}$ or $\\boxed{{{other}}}$"
                if grade(hedge, gold, mode=mode, timeout=5.0):
                    hedges.append((i, mode, gold, other))
    print(f"MATH-500 chat forms: {len(missed)} missed, {len(hedges)} hedges rewarded")
    assert hedges == []
    assert len(missed) <= 0.01 * 2 * len(math500), missed


def _top_level_items(answer: str) -> list[str]:
    """The comma-separated items of an answer outside any brackets."""
    items, depth, start = [], 0, 0
    for k, char in enumerate(answer):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            items.append(answer[start:k].strip())
            start = k + 1
    return [*items, answer[start:].strip()]
