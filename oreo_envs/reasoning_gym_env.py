"""Any `reasoning-gym` task as a single-response text env: how to plug a third-party task library.

The library generates (question, answer) pairs procedurally from a seed and scores answers with
its own ``score_answer``; this env only adds the prompt, answer extraction and the sparse reward
(1.0 iff the library scores the answer as fully correct).
"""

from __future__ import annotations

import re
from typing import Any

from oreo_envs.core import TextEnv
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
        render_mode: str | None = None,
    ):
        self.tasks = ReasoningGymTasks(task, size, data_seed, **(config or {}))
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
        score = 0.0
        if answer is not None and len(answer) <= _MAX_ANSWER_CHARS:
            try:
                score = float(self.tasks.dataset.score_answer(answer, entry))
            except Exception:  # a library scorer choking on garbage means "wrong", not a crash
                score = 0.0
        correct = score >= 1.0
        info = {"success": correct, "answer": answer, "gold": str(entry["answer"])}
        return "", float(correct), True, info
