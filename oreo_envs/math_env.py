"""GSM8K- and MATH-style math environments with a sparse, verifier-checked reward.

Two granularities (OREO paper, Sec. 3):

- ``"response"``: one action is the whole solution; the episode ends after it.
- ``"step"``: each action is one reasoning step (a line for GSM8K; for MATH a step also ends at
  ``". "`` or ``".$ "``). The episode ends when the solution so far holds a final answer
  (``#### N`` / a balanced ``\\boxed{}``), when the action is ``""`` (the model stopped: EOS), or
  at the step limit (``max_episode_steps``, truncated, reward 0).

In step mode an action that does not end in whitespace gets a newline appended, and that
newline is returned as the observation, so ``prompt + a1 + o1 + a2 + o2 ...`` is always exactly
the text the model has seen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from oreo_envs.core import TextEnv, render_chat
from oreo_envs.tasks import (
    DEFAULT_HUB,
    MathTask,
    ReasoningGymTasks,
    TaskDataError,
    load_file,
    load_hub,
)
from oreo_envs.verifiers import check_mode, extract_answer, grade, has_final_answer

# Instructions the OREO authors used (Wang et al. 2024, public code): GSM8K asks for '#### N',
# MATH for \boxed{}.
INSTRUCTIONS = {
    "gsm8k": (
        "Please reason step by step, and produce a final answer following 4 '#', like '#### 0'"
    ),
    "math": "Please reason step by step, and put your final answer within \\boxed{}.",
}
# The plain (non-chat) prompt format of the OREO paper's DeepSeekMath runs.
PLAIN_TEMPLATE = "User: {question}\n{instruction}\n\nAssistant:"
STEP_DELIMITERS = {"gsm8k": ("\n",), "math": ("\n", ". ", ".$ ")}
SOURCES = ("file", "hub", "symbolic")
SPLITS = ("train", "test")
# reasoning-gym seeds for the symbolic test split are offset so train and test draw from
# different streams of the same generator.
_SYMBOLIC_TEST_SEED_OFFSET = 1_000_003


def split_steps(text: str, delimiters: Sequence[str] = ("\n",)) -> list[str]:
    """Split a solution into steps, each keeping its trailing delimiter.

    ``"".join(split_steps(t, d)) == t`` always holds, so step boundaries map back to exact
    character (and token) positions.

    >>> split_steps("a = 1. So b = 2.\\n#### 2", ("\\n", ". "))
    ['a = 1. ', 'So b = 2.\\n', '#### 2']
    """
    if not text:
        return []
    pattern = "|".join(re.escape(d) for d in sorted(delimiters, key=len, reverse=True))
    steps, start = [], 0
    for m in re.finditer(pattern, text):
        steps.append(text[start : m.end()])
        start = m.end()
    if start < len(text):
        steps.append(text[start:])
    return steps


def format_prompt(
    question: str, dataset: str, *, tokenizer: Any = None, instruction: str | None = None
) -> str:
    """The prompt for one problem: the paper's instruction, as plain text or a chat template.

    Args:
        question: The problem statement.
        dataset: "gsm8k" or "math" (picks the default instruction).
        tokenizer: A `transformers` tokenizer with a chat template, or None for the plain
            ``User: ... Assistant:`` format. The instruction goes in the system message, as the
            OREO authors did for instruct models.
        instruction: Overrides the default instruction.
    """
    instruction = INSTRUCTIONS[dataset] if instruction is None else instruction
    if tokenizer is None:
        return PLAIN_TEMPLATE.format(question=question, instruction=instruction)
    return render_chat(tokenizer, chat_messages(question, instruction))


def chat_messages(question: str, instruction: str) -> list[dict[str, str]]:
    """The instruction as the system turn and the question as the user's, as the OREO authors
    prompted instruct models."""
    return [{"role": "system", "content": instruction}, {"role": "user", "content": question}]


def load_tasks(
    dataset: str,
    *,
    source: str,
    path: str | None,
    split: str,
    hub_id: str | None,
    hub_config: str | None,
    size: int,
    data_seed: int,
) -> Sequence[MathTask]:
    """Load the task set of one math env (see `MathEnv` for the arguments)."""
    if source == "file":
        if path is None:
            raise ValueError("source='file' needs path='tasks.jsonl'")
        return load_file(path, dataset)
    if source == "hub":
        _check_hub_source(dataset, split, hub_id)
        return load_hub(dataset, split, hub_id, hub_config)
    if dataset != "gsm8k":
        raise ValueError("source='symbolic' exists for GSM8K only (reasoning-gym gsm_symbolic)")
    seed = data_seed + (_SYMBOLIC_TEST_SEED_OFFSET if split == "test" else 0)
    return ReasoningGymTasks("gsm_symbolic", size, seed)


def _check_hub_source(dataset: str, split: str, hub_id: str | None) -> None:
    """Fail at once where a hub load cannot succeed, before `datasets` spends ~25 s retrying:
    a local-looking ``hub_id`` that does not exist, or an unreachable hub with nothing cached.

    Raises:
        TaskDataError: Saying what to pass instead.
    """
    from oreo_envs import hub

    example = "oreo/GSM8K-v0" if dataset == "gsm8k" else "oreo/MATH-v0"
    hint = (
        "To run offline, pass a local JSON Lines file in the dataset's native format, e.g. "
        f"gymnasium.make({example!r}, path='test.jsonl') or `oreo play {example} "
        "--option path=test.jsonl`; or use the embedded generator 'oreo/GSMSymbolic-v0'."
    )
    if hub_id is not None and hub.looks_local(hub_id):
        if not os.path.exists(hub_id):
            raise TaskDataError(
                f"no such local folder: {hub_id} (hub_id= takes a `datasets` folder or a hub id "
                f"such as 'HuggingFaceH4/MATH-500')\n{hint}"
            )
        return
    repo = hub_id or DEFAULT_HUB[dataset][0]
    if hub.hub_offline() and not hub.dataset_maybe_cached(repo):
        raise TaskDataError(
            f"could not load {repo!r} (split {split!r}): the Hugging Face hub is unreachable "
            f"and the dataset is not cached\n{hint}"
        )


class MathEnv(TextEnv):
    """A math word-problem environment (``oreo/GSM8K-v0``, ``oreo/MATH-v0``, ...).

    Args:
        dataset: "gsm8k" or "math": answer format, instruction and step delimiters.
        path: A local JSON Lines file in the dataset's native format (implies source="file").
        source: "file", "hub" (Hugging Face `datasets`) or "symbolic" (GSM8K only: problems
            generated offline by reasoning-gym's ``gsm_symbolic``). Default: "file" when ``path``
            is given, else "hub".
        split: "train" or "test" (hub and symbolic sources).
        hub_id: Another hub dataset in the same native format (e.g. "HuggingFaceH4/MATH-500").
        hub_config: The hub dataset's config name, if it has several.
        size: Number of generated problems (symbolic source).
        data_seed: Generator seed (symbolic source); train and test use different streams.
        granularity: "response" or "step" (module docstring).
        tokenizer: A `transformers` tokenizer (or a hub id / folder to load one) whose chat
            template formats the prompt; None for the plain format.
        instruction: Replaces the default instruction.
        grade_timeout: Wall-clock bound in seconds for grading one answer.
        grade_mode: "strict" (the default, for rewards: the answer must follow the prompt's
            marker, ``####`` or ``\\boxed{}``, or an answer phrase) or "lenient" (else the last
            math span, then the last number: for evaluating models that do not box answers).
        render_mode: None or "ansi" (``render()`` returns the episode's text).
    """

    @classmethod
    def delimiters_for(cls, kwargs: dict[str, Any]) -> tuple[str, ...]:
        """Lines for GSM8K; MATH also splits sentences (``". "``, ``".$ "``), as the OREO paper's
        step-level MATH runs do."""
        return STEP_DELIMITERS[kwargs.get("dataset", "gsm8k")]

    def __init__(
        self,
        dataset: str = "gsm8k",
        *,
        path: str | None = None,
        source: str | None = None,
        split: str = "test",
        hub_id: str | None = None,
        hub_config: str | None = None,
        size: int = 1000,
        data_seed: int = 0,
        granularity: str = "response",
        tokenizer: Any = None,
        instruction: str | None = None,
        grade_timeout: float = 2.0,
        grade_mode: str = "strict",
        render_mode: str | None = None,
    ):
        if dataset not in INSTRUCTIONS:
            raise ValueError(f"dataset must be one of {sorted(INSTRUCTIONS)}, got {dataset!r}")
        source = source or ("file" if path is not None else "hub")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
        if path is not None and source != "file":
            raise ValueError(f"path={path!r} conflicts with source={source!r}")
        if split not in SPLITS and source != "hub":
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if granularity not in ("response", "step"):
            raise ValueError(f"granularity must be 'response' or 'step', got {granularity!r}")
        self.dataset, self.source, self.split = dataset, source, split
        self.granularity = granularity
        self.step_delimiters = STEP_DELIMITERS[dataset]
        self.grade_timeout = grade_timeout
        check_mode(grade_mode)
        self.grade_mode = grade_mode
        self.tasks = load_tasks(
            dataset,
            source=source,
            path=path,
            split=split,
            hub_id=hub_id,
            hub_config=hub_config,
            size=size,
            data_seed=data_seed,
        )
        ids = getattr(self.tasks, "task_ids", None) or [t.task_id for t in self.tasks]
        super().__init__(ids, render_mode=render_mode)
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        self.tokenizer = tokenizer
        self.instruction = instruction
        self._task: MathTask | None = None
        self._solution = ""

    def task(self, task_id: str) -> MathTask:
        """The task with this id (its question, gold answer and gold solution)."""
        return self.tasks[self._task_index[self._check_task_id(task_id)]]

    def prompt(self, task: MathTask) -> str:
        """The first observation for a task."""
        return format_prompt(
            task.question, self.dataset, tokenizer=self.tokenizer, instruction=self.instruction
        )

    def messages(self, observation: str) -> list[dict[str, str]]:
        """`chat_messages` of the current task (what `format_prompt` with a tokenizer renders)."""
        assert self._task is not None
        instruction = INSTRUCTIONS[self.dataset] if self.instruction is None else self.instruction
        return chat_messages(self._task.question, instruction)

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        self._task = self.task(task_id)
        self._solution = ""
        return self.prompt(self._task), {"granularity": self.granularity, **self._task.meta}

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.granularity == "response":
            return self._finish(action, "")
        if action == "":  # the model stopped without a final-answer marker
            return self._finish(self._solution, "")
        obs = "" if action[-1].isspace() else "\n"
        self._solution += action + obs
        if has_final_answer(self._solution, style=self.dataset):
            return self._finish(self._solution, obs)
        return obs, 0.0, False, {}

    def _finish(self, solution: str, obs: str) -> tuple[str, float, bool, dict[str, Any]]:
        assert self._task is not None
        correct = grade(
            solution, self._task.answer, style=self.dataset, timeout=self.grade_timeout,
            mode=self.grade_mode,
        )  # fmt: skip
        info = {
            "success": correct,
            "answer": extract_answer(solution, style=self.dataset, mode=self.grade_mode),
            "gold": self._task.answer,
        }
        return obs, float(correct), True, info
