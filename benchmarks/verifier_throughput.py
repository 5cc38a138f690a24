"""Grading throughput: `oreo_envs.verifiers.grade` against math-verify's own parse + verify.

    python benchmarks/verifier_throughput.py

Grades each reference solution against its own gold answer (should be True) and against the
next problem's gold answer (should be False unless the two answers are equal), from GSM8K test
and MATH-500 in the shared data folder when present, else from small built-in cases; the
built-in LaTeX cases (answers written unlike their gold) are always run too. Prints
answers per second on one thread for both graders (ours in its strict and lenient modes),
accuracy against those labels, how often the two agree, and how many comparisons our fast
path decided without math-verify.

The math-verify baseline uses its default extraction (LaTeX and plain expressions, the latter
through sympy's `parse_expr`), which is only acceptable here because every input is trusted
reference data, never model output.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

from oreo_envs.verifiers import MODES, extract_answer, grade, gsm8k_gold, is_equivalent
from oreo_envs.verifiers.equivalence import fast_equivalent
from oreo_envs.verifiers.guard import warmup
from oreo_envs.verifiers.normalize import normalize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

BUILTIN_MATH = [
    ("\\frac{1}{2}", "0.5"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\pi}{2}", "\\frac{\\pi}{2}"),
    ("(0, 1]", "(0,1]"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{bmatrix}1\\\\2\\end{bmatrix}"),
    ("x^2 + 2x + 1", "(x+1)^2"),
    ("\\text{(B)}", "B"),
    ("90^\\circ", "90"),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"),
    ("6 - 5i", "-5i + 6"),
    ("\\dfrac{17}{50}", "0.34"),
    ("10,\\!080", "10080"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)"),
    ("3\\sqrt{13}", "\\sqrt{117}"),
    ("\\frac{3\\sqrt{3}}{4}", "\\frac{3}{4}\\sqrt{3}"),
]


@dataclass
class Case:
    """One grading: a response, a gold answer, the expected verdict."""

    response: str
    gold: str
    expected: bool


def gsm8k_cases() -> tuple[str, list[Case]]:
    path = DATA / "gsm8k" / "test.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.open()]
        pairs = [(row["answer"], gsm8k_gold(row["answer"])) for row in rows]
        return "GSM8K test", _with_negatives(pairs)
    rng = random.Random(0)
    pairs = []
    for _ in range(1000):
        value = rng.randint(-5000, 2_000_000)
        pairs.append((f"Adding it up gives {value}.\n#### {value:,}", str(value)))
    return "GSM8K-style (generated)", _with_negatives(pairs)


def math_cases() -> tuple[str, list[Case]]:
    path = DATA / "math500" / "test.jsonl"
    if path.exists():
        rows = [json.loads(line) for line in path.open()]
        return "MATH-500", _with_negatives([(row["solution"], row["answer"]) for row in rows])
    return builtin_math_cases()


def builtin_math_cases() -> tuple[str, list[Case]]:
    """Answers written differently from their gold, so most need math-verify (or exact maths)."""
    pairs = [
        (f"So the answer is $\\boxed{{{response}}}$.", gold) for response, gold in BUILTIN_MATH
    ]
    return "MATH-style (built-in)", _with_negatives(pairs)


def _with_negatives(pairs: list[tuple[str, str]]) -> list[Case]:
    """Each response with its own gold (True) and with the next one's gold (False if different)."""
    cases = [Case(response, gold, True) for response, gold in pairs]
    for i, (response, gold) in enumerate(pairs):
        other = pairs[(i + 1) % len(pairs)][1]
        cases.append(Case(response, other, is_equivalent(gold, other, timeout=10.0)))
    return cases


def run_ours(cases: list[Case], style: str, mode: str) -> tuple[list[bool], float]:
    start = time.perf_counter()
    verdicts = [grade(case.response, case.gold, style=style, mode=mode) for case in cases]
    return verdicts, time.perf_counter() - start


def run_math_verify(cases: list[Case]) -> tuple[list[bool], float]:
    from math_verify import parse, verify

    start = time.perf_counter()
    verdicts = [verify(parse("$" + case.gold + "$"), parse(case.response)) for case in cases]
    return verdicts, time.perf_counter() - start


def fast_path_share(cases: list[Case], style: str) -> float:
    """Fraction of cases our fast path decides without starting math-verify."""
    decided = 0
    for case in cases:
        answer = extract_answer(case.response, style=style)
        if answer is None or fast_equivalent(normalize(answer), normalize(case.gold)) is not None:
            decided += 1
    return decided / len(cases)


def accuracy(verdicts: list[bool], cases: list[Case]) -> float:
    return sum(v == case.expected for v, case in zip(verdicts, cases, strict=True)) / len(cases)


def main() -> None:
    logging.disable(logging.WARNING)  # math-verify logs every parse it gives up on
    start = time.perf_counter()
    warmup()
    print(f"math-verify worker start-up: {time.perf_counter() - start:.2f}s (not in the rates)")
    rows = []
    math, builtin = math_cases(), builtin_math_cases()
    datasets = [(gsm8k_cases(), "gsm8k"), (math, "math")]
    if math[0] != builtin[0]:  # MATH-500 was found: run the built-in cases as well
        datasets.append((builtin, "math"))
    for (name, cases), style in datasets:
        theirs, theirs_s = run_math_verify(cases)
        for mode in MODES:
            ours, ours_s = run_ours(cases, style, mode)
            agree = sum(a == b for a, b in zip(ours, theirs, strict=True)) / len(cases)
            rows.append(_row(name, mode, cases, style, ours, ours_s, theirs, theirs_s, agree))
    header = [
        "data",
        "mode",
        "gradings",
        "ours /s",
        "math-verify /s",
        "speed-up",
        "ours acc",
        "math-verify acc",
        "agreement",
        "fast path",
    ]
    _print_table(header, rows)


def _row(name, mode, cases, style, ours, ours_s, theirs, theirs_s, agree) -> list[str]:
    return [
        name,
        mode,
        f"{len(cases)}",
        f"{len(cases) / ours_s:,.0f}",
        f"{len(cases) / theirs_s:,.0f}",
        f"{theirs_s / ours_s:.0f}x",
        f"{accuracy(ours, cases):.2%}",
        f"{accuracy(theirs, cases):.2%}",
        f"{agree:.2%}",
        f"{fast_path_share(cases, style):.1%}",
    ]


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        for row in [header, *rows]:
            print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        return
    table = Table(title="Grading throughput, one thread (half the gradings are negatives)")
    for column in header:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*row)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
