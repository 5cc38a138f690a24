"""Any `reasoning-gym` task as a single-response text env: how to plug a third-party task library.

The library generates (question, answer) pairs procedurally from a seed and scores answers with
its own ``score_answer``; this env only adds the prompt, answer extraction and the sparse reward
(1.0 iff the library scores the answer as fully correct).

The library's ``score_answer`` evaluates the answer with ``eval`` or sympy's ``parse_expr``
for several tasks, so it never runs in this process: it runs in a confined worker
(`oreo_envs.sandbox`), bounded in time and memory, and any failure there is a wrong answer
whose reason lands in ``info["score_error"]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

from oreo_envs.core import TextEnv
from oreo_envs.sandbox import DEFAULT_TIMEOUT_S, shared_scorer
from oreo_envs.tasks import ReasoningGymTasks
from oreo_envs.verifiers import extract_answer

INSTRUCTION = (
    "Think step by step, then give only your final answer on the last line as '#### ANSWER'."
)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# Longer answers are not sent to the library's scorer (its parsers are not all bounded).
_MAX_ANSWER_CHARS = 10_000


def extract_rg_answer(response: str) -> str | None:
    """The final answer of a response: ``<answer>..</answer>``, else ``#### X`` / ``\\boxed{X}``
    / "the answer is X", else the last non-empty line."""
    tags = _ANSWER_TAG.findall(response[-_MAX_ANSWER_CHARS * 2 :])
    if tags:
        return tags[-1].strip()
    answer = extract_answer(response, style="auto", mode="strict")
    if answer is not None:
        return answer
    lines = [ln.strip() for ln in response.splitlines() if ln.strip()]
    return lines[-1] if lines else None


class ReasoningGymEnv(TextEnv):
    """``oreo/ReasoningGym-v0``: one reasoning-gym task (``basic_arithmetic``, ``leg_counting``...).

    Args:
        task: The reasoning-gym dataset name (``reasoning_gym.factory.DATASETS`` lists them).
        size: Number of generated problems.
        data_seed: Generator seed; the same seed gives the same problems.
        config: Extra keyword arguments for the generator (difficulty knobs).
        instruction: Appended to each question.
        score_timeout: Seconds the library's scorer may take on one answer (a longer one
            counts as wrong).
        render_mode: None or "ansi".
    """

    def __init__(
        self,
        task: str = "basic_arithmetic",
        *,
        size: int = 1000,
        data_seed: int = 0,
        config: dict[str, Any] | None = None,
        instruction: str = INSTRUCTION,
        score_timeout: float = DEFAULT_TIMEOUT_S,
        render_mode: str | None = None,
    ):
        self.tasks = ReasoningGymTasks(task, size, data_seed, **(config or {}))
        spec = {"task": task, "size": size, "data_seed": data_seed, "config": config or {}}
        self.scorer = shared_scorer(f"{__name__}:make_scorer", spec, timeout=score_timeout)
        super().__init__(self.tasks.task_ids, render_mode=render_mode)
        self.task_name, self.instruction = task, instruction
        self._index = -1

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self._index = self._task_index[task_id]
        question = self.tasks.entry(self._index)["question"]
        return f"{question}\n{self.instruction}\n", {"task": self.task_name}

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        entry = self.tasks.entry(self._index)
        answer = extract_rg_answer(action)
        score, why = 0.0, None
        if answer is not None and len(answer) <= _MAX_ANSWER_CHARS:
            score, why = astuple(self.scorer(answer, _encode(entry)))
        correct = score >= 1.0
        info = {"success": correct, "answer": answer, "gold": str(entry["answer"])}
        if why is not None:
            info["score_error"] = why
        return "", float(correct), True, info


def make_scorer(task: str, size: int, data_seed: int, config: dict[str, Any]) -> Callable:
    """The library's scorer of one generated dataset; runs in the sandbox worker only.

    The worker is sent the entry this process generated rather than generating it again: some
    generators differ between processes for one seed (``polynomial_multiplication`` follows
    Python's per-process string hashing), and the answer must be scored against the question
    the policy saw.
    """
    dataset = ReasoningGymTasks(task, size, data_seed, **config).dataset

    def score(answer: str, entry: Any) -> float:
        return dataset.score_answer(answer, _decode(entry))

    return score


# Entries hold tuples (ARC boards), sets and int-keyed dicts that scorers compare as such; JSON
# alone would turn them into lists and strings, so they travel tagged.
_TAG = "__oreo_py__"


def _encode(value: Any) -> Any:
    """An entry as JSON values that `_decode` turns back into the same Python values."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, tuple):
        return {_TAG: "tuple", "items": [_encode(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {_TAG: type(value).__name__, "items": [_encode(v) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and k != _TAG for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k), _encode(v)] for k, v in value.items()]}
    return str(value)  # an object a scorer cannot need by identity (a generator's RNG...)


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(_TAG)
    if kind is None:
        return {k: _decode(v) for k, v in value.items()}
    items = value["items"]
    if kind == "dict":
        return {_decode(k): _decode(v) for k, v in items}
    return {"tuple": tuple, "set": set, "frozenset": frozenset}[kind](_decode(v) for v in items)
