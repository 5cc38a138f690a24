"""``oreo/Chain-v0``: procedural multi-step arithmetic that a tiny model learns on a CPU.

A problem defines variables one per statement and asks for the last one of a dependency chain::

    a=7;b=a+5;c=9;d=b*2;d?

The gold solution spends one line per step of the chain, restating the formula, substituting
the value and computing, then gives the answer GSM8K-style (graded by `oreo_envs.verifiers`)::

    b=a+5=7+5=12
    d=b*2=12*2=24
    #### 24

Difficulty knobs: the chain length (``steps``), the value range (``max_value``: every given and
intermediate value lies in ``[0, max_value]``), the constants (``max_operand``), the operators
(``ops``), ``distractors`` (statements the answer does not depend on; some extend the chain's
variables, so the model must trace the chain back from the question) and ``shuffle_names``
(random letters instead of a, b, c... in definition order).

Faithfulness labels: every finished episode's ``info["line_correct"]`` says, per line of the
solution before its answer, whether it is the gold line of that step (the chain is linear, so a
right line is unique); in step mode each line's ``info["step_correct"]`` says it as the line is
taken. A success can hold a wrong line (``21-4=19`` ... ``#### 11``): these labels tell such
lucky guesses from faithful chains (`oreo_agents.evaluation.metrics.line_metrics`).

Splits: each split draws from its own seeded stream, and a problem belongs to the split chosen by
a hash of its text, so train and test never share a problem, whatever their sizes. The first
``n`` tasks of a split do not depend on ``size``.
"""

from __future__ import annotations

import functools
import hashlib
import random
import string
from typing import Any

from oreo_envs.core import TextEnv
from oreo_envs.math_env import SPLITS
from oreo_envs.tasks import MathTask
from oreo_envs.verifiers import extract_answer, grade, has_final_answer

OPS = "+-*"
# Every character a problem, its solution or a graded answer can contain (a task tokenizer's
# vocabulary: `oreo_agents.models.tiny.chain_model`).
ALPHABET = string.ascii_lowercase + string.digits + OPS + "=;?# \n"
# Step-mode episodes need steps + 1 actions; a variable per letter bounds steps + distractors.
MAX_STATEMENTS = len(string.ascii_lowercase)
STEP_DELIMITERS = ("\n",)
# Draws per wanted task before giving up: a split keeps about half of the candidates, so this is
# only reached when the knobs allow fewer distinct problems than the split's size.
_MAX_DRAWS_PER_TASK = 50


def _apply(value: int, op: str, k: int) -> int:
    return value + k if op == "+" else value - k if op == "-" else value * k


def _feasible_ops(value: int, ops: str, max_value: int, max_operand: int) -> list[tuple[str, int]]:
    """(op, largest constant) pairs that keep ``value op k`` in ``[0, max_value]`` for k >= 1."""
    out = []
    for op in ops:
        if op == "+":
            top = min(max_operand, max_value - value)
        elif op == "-":
            top = min(max_operand, value)
        else:  # multiplying 0 or 1 teaches nothing, so only values that grow
            top = min(max_operand, max_value // value) if value > 1 else 0
            top = top if top >= 2 else 0
        if top >= 1:
            out.append((op, top))
    return out


def _derive(rng: random.Random, value: int, cfg: dict[str, Any]) -> tuple[str, int, int]:
    """A random (op, k, result) applied to ``value``; falls back to '+'/'-' when no op fits."""
    choices = _feasible_ops(value, cfg["ops"], cfg["max_value"], cfg["max_operand"])
    if not choices:  # e.g. ops="*" and value 0: any value admits '+' or '-' (max_value >= 1)
        choices = _feasible_ops(value, "+-", cfg["max_value"], cfg["max_operand"])
    op, top = rng.choice(choices)
    k = rng.randint(1 if op != "*" else 2, top)
    return op, k, _apply(value, op, k)


def generate_problem(rng: random.Random, cfg: dict[str, Any]) -> tuple[str, str, str]:
    """One problem from ``rng``: ``(question, gold solution, answer)``.

    Args:
        rng: The stream to draw from (advanced by this call).
        cfg: The knobs: steps, max_value, max_operand, ops, distractors, shuffle_names (see
            `ChainEnv`).
    """
    count = cfg["steps"] + cfg["distractors"] + 1
    letters = string.ascii_lowercase
    names = rng.sample(letters, count) if cfg["shuffle_names"] else list(letters[:count])
    names.reverse()  # pop() hands them out in order
    values: dict[str, int] = {}
    first = names.pop()
    values[first] = rng.randint(0, cfg["max_value"])
    statements = [f"{first}={values[first]}"]
    chain, lines = first, []
    kinds = ["step"] * cfg["steps"] + ["distractor"] * cfg["distractors"]
    rng.shuffle(kinds)
    for kind in kinds:
        name = names.pop()
        if kind == "distractor" and rng.random() < 0.5:
            values[name] = rng.randint(0, cfg["max_value"])
            statements.append(f"{name}={values[name]}")
            continue
        # A distractor may branch off any variable, the chain's included, so the question's
        # variable must be traced back to know which statements matter.
        source = chain if kind == "step" else rng.choice(sorted(values))
        op, k, values[name] = _derive(rng, values[source], cfg)
        statements.append(f"{name}={source}{op}{k}")
        if kind == "step":
            lines.append(f"{name}={source}{op}{k}={values[source]}{op}{k}={values[name]}\n")
            chain = name
    question = ";".join(statements) + f";{chain}?"
    answer = str(values[chain])
    return question, "".join(lines) + f"#### {answer}", answer


def line_labels(solution: str, gold: str) -> list[bool]:
    """Per line of ``solution`` before its ``####`` line (blank lines skipped): whether it is
    the gold solution's line of the same step."""
    gold_lines = _reasoning_lines(gold)
    return [
        i < len(gold_lines) and line == gold_lines[i]
        for i, line in enumerate(_reasoning_lines(solution))
    ]


def _reasoning_lines(text: str) -> list[str]:
    lines = []
    for line in text.split("\n"):
        line = line.strip()
        if line.startswith("####"):
            break
        if line:
            lines.append(line)
    return lines


def split_of(question: str) -> str:
    """The split a problem belongs to, from a hash of its text (stable across processes)."""
    return SPLITS[hashlib.blake2b(question.encode(), digest_size=8).digest()[0] % 2]


def generate_tasks(split: str, size: int, data_seed: int, cfg: dict[str, Any]) -> list[MathTask]:
    """The first ``size`` distinct problems of a split's stream (ids ``"0"``, ``"1"``, ...).

    Generated once per process and set of arguments: a collector or rollout makes one env per
    parallel episode, and 20,000 problems take seconds to draw.

    Raises:
        ValueError: The knobs allow too few distinct problems to fill the split.
    """
    return list(_generate_tasks(split, size, data_seed, tuple(sorted(cfg.items()))))


@functools.lru_cache(maxsize=16)
def _generate_tasks(split: str, size: int, data_seed: int, knobs: tuple) -> tuple[MathTask, ...]:
    cfg = dict(knobs)
    rng = random.Random(f"oreo/Chain-v0/{data_seed}/{split}")
    tasks: list[MathTask] = []
    seen: set[str] = set()
    for _ in range(size * _MAX_DRAWS_PER_TASK):
        question, solution, answer = generate_problem(rng, cfg)
        if split_of(question) == split and question not in seen:
            seen.add(question)
            tasks.append(MathTask(str(len(tasks)), question, answer, solution, {}))
            if len(tasks) == size:
                return tuple(tasks)  # MathTask is frozen: the cached tuple is shared safely
    raise ValueError(
        f"could not draw {size} {split} problems with {cfg}: the knobs allow too few distinct "
        "problems; raise max_value, max_operand or steps"
    )


class ChainEnv(TextEnv):
    """Multi-step arithmetic chains with gold step-by-step solutions (module docstring).

    Works like `MathEnv` with GSM8K answers: ``task(task_id)`` gives the `MathTask` (question,
    answer, solution) that the ``gold`` policy of ``oreo collect`` writes, and ``granularity``
    picks one action per solution or per line.

    Args:
        split: "train" or "test" (disjoint: module docstring).
        size: Number of problems in the split.
        data_seed: Seed of the problem streams; the same seed gives the same problems.
        steps: Computations on the chain from the given value to the answer (>= 1).
        max_value: Given and intermediate values lie in ``[0, max_value]`` (>= 1). The default
            25 is where a 1M-parameter model's SFT from scratch reaches a middling success
            (42% greedy, `benchmarks/calibrate_chain.py`), leaving room for RL.
        max_operand: Constants lie in ``[1, max_operand]`` (``[2, max_operand]`` for '*').
        ops: The operators to draw from, a non-empty subset of "+-*".
        distractors: Statements the answer does not depend on.
        shuffle_names: Name variables with random letters instead of a, b, c... in the order
            they are defined (harder: a tiny model must then find each next step by name).
        granularity: "response" (one action is the whole solution) or "step" (one line each).
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        *,
        split: str = "train",
        size: int = 1000,
        data_seed: int = 0,
        steps: int = 3,
        max_value: int = 25,
        max_operand: int = 9,
        ops: str = "+-",
        distractors: int = 0,
        shuffle_names: bool = False,
        granularity: str = "response",
        render_mode: str | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if granularity not in ("response", "step"):
            raise ValueError(f"granularity must be 'response' or 'step', got {granularity!r}")
        if size < 1 or steps < 1 or max_value < 1 or max_operand < 1 or distractors < 0:
            raise ValueError(
                "need size, steps, max_value, max_operand >= 1 and distractors >= 0; got "
                f"size={size}, steps={steps}, max_value={max_value}, "
                f"max_operand={max_operand}, distractors={distractors}"
            )
        if steps + distractors + 1 > MAX_STATEMENTS:
            raise ValueError(
                f"steps + distractors + 1 = {steps + distractors + 1} variables, but there are "
                f"only {MAX_STATEMENTS} letters"
            )
        if not ops or set(ops) - set(OPS) or len(set(ops)) != len(ops):
            raise ValueError(f"ops must be distinct characters of {OPS!r}, got {ops!r}")
        if not isinstance(shuffle_names, bool):  # a CLI string "false" must not read as True
            raise ValueError(f"shuffle_names must be true or false, got {shuffle_names!r}")
        self.config = {
            "steps": steps,
            "max_value": max_value,
            "max_operand": max_operand,
            "ops": ops,
            "distractors": distractors,
            "shuffle_names": shuffle_names,
        }
        self.split, self.granularity = split, granularity
        self.step_delimiters = STEP_DELIMITERS
        self.tasks = generate_tasks(split, size, data_seed, self.config)
        super().__init__([t.task_id for t in self.tasks], render_mode=render_mode)
        self._task: MathTask | None = None
        self._solution = ""

    def task(self, task_id: str) -> MathTask:
        """The task with this id (question, gold answer and gold solution)."""
        return self.tasks[self._task_index[self._check_task_id(task_id)]]

    def prompt(self, task: MathTask) -> str:
        """The first observation: the bare question (a model trained from scratch needs no
        instruction, and short prompts keep sequences short)."""
        return task.question

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self._task = self.task(task_id)
        self._solution = ""
        return self.prompt(self._task), {"granularity": self.granularity}

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        # Step mode follows MathEnv: a line per action, a newline observation keeps the
        # transcript exact, and "" (EOS) or a '#### N' line ends the episode.
        if self.granularity == "response":
            return self._finish(action, "")
        if action == "":
            return self._finish(self._solution, "")
        obs = "" if action[-1].isspace() else "\n"
        self._solution += action + obs
        if has_final_answer(self._solution, style="gsm8k"):
            return self._finish(self._solution, obs)
        labels = line_labels(self._solution, self._task.solution)
        info = {"step_correct": labels[-1]} if action.strip() and labels else {}
        return obs, 0.0, False, info

    def _finish(self, solution: str, obs: str) -> tuple[str, float, bool, dict[str, Any]]:
        assert self._task is not None
        # No last-number fallback: the answer counts only when given as '#### N'.
        correct = grade(solution, self._task.answer, style="gsm8k", mode="strict")
        info = {
            "success": correct,
            "answer": extract_answer(solution, style="gsm8k", mode="strict"),
            "gold": self._task.answer,
            "line_correct": line_labels(solution, self._task.solution),
        }
        return obs, float(correct), True, info
