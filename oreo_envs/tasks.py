"""Math task sources: local JSON Lines files, the Hugging Face hub, and procedural generators.

Every source yields `MathTask` records built from the dataset's native format:

- GSM8K: ``question`` and ``answer`` (a worked solution ending in ``#### N``);
- MATH: ``problem`` and ``solution`` (with ``\\boxed{...}``), optionally ``answer``, ``level``,
  ``type`` (or ``subject``, as in MATH-500) and ``unique_id``.

A file-sourced task's id is its record's ``unique_id`` or ``id`` when present, else its 0-based
line number as a string.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oreo_envs.verifiers import gsm8k_gold, math_gold

# The seven subjects of Hendrycks et al.'s MATH, one hub config each.
MATH_SUBJECTS = (
    "algebra",
    "counting_and_probability",
    "geometry",
    "intermediate_algebra",
    "number_theory",
    "prealgebra",
    "precalculus",
)

DEFAULT_HUB = {
    "gsm8k": ("openai/gsm8k", "main"),
    "math": ("EleutherAI/hendrycks_math", None),
}


class TaskDataError(ValueError):
    """A task file or dataset record is missing, unreadable or not in the expected format."""


@dataclass(frozen=True)
class MathTask:
    """One math problem.

    Attributes:
        task_id: Stable id, unique within its source.
        question: The problem statement shown to the agent.
        answer: The gold final answer (what the verifier compares against).
        solution: A gold worked solution when the source has one (SFT data), else None.
        meta: Extra fields kept for per-subset reports (``level``, ``type``, ...).
    """

    task_id: str
    question: str
    answer: str
    solution: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line (1-based line numbers).

    Raises:
        TaskDataError: The file is missing, or a line is not a JSON object; the message names the
            file and the line.
    """
    path = Path(path)
    if not path.is_file():
        raise TaskDataError(f"task file not found: {path}")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise TaskDataError(f"{path}:{lineno}: not a valid JSON line ({e})") from None
            if not isinstance(record, dict):
                raise TaskDataError(
                    f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}"
                )
            yield lineno, record


def task_from_record(record: dict[str, Any], dataset: str, task_id: str) -> MathTask:
    """Build a `MathTask` from one native-format record of ``dataset`` ("gsm8k" or "math").

    Raises:
        TaskDataError: Required fields are missing or hold no final answer.
    """
    if dataset == "gsm8k":
        question, solution = record.get("question"), record.get("answer")
        if not isinstance(question, str) or not isinstance(solution, str):
            raise TaskDataError(
                "a GSM8K record needs string fields 'question' and 'answer' (a solution ending "
                f"in '#### N'); got keys {sorted(record)}"
            )
        if "####" not in solution:
            raise TaskDataError("a GSM8K 'answer' must end in '#### N' (the final answer)")
        return MathTask(task_id, question, gsm8k_gold(solution), solution, {})
    if dataset == "math":
        question, solution = record.get("problem"), record.get("solution")
        answer = record.get("answer")
        if not isinstance(question, str) or not (isinstance(solution, str) or answer):
            raise TaskDataError(
                "a MATH record needs 'problem' and 'solution' (with \\boxed{...}) or 'answer'; "
                f"got keys {sorted(record)}"
            )
        if answer is None:
            answer = math_gold(solution)
            if answer is None:
                raise TaskDataError(
                    "a MATH 'solution' has no \\boxed{...} and there is no 'answer'"
                )
        meta = {k: record[k] for k in ("level", "type") if k in record}
        if "type" not in meta and "subject" in record:
            meta["type"] = record["subject"]
        return MathTask(task_id, question, str(answer), solution, meta)
    raise ValueError(f"unknown dataset {dataset!r}; expected 'gsm8k' or 'math'")


def load_file(path: str | Path, dataset: str) -> list[MathTask]:
    """Load every task of a native-format JSON Lines file (see module docstring for ids)."""
    tasks = []
    for lineno, record in read_jsonl(path):
        rid = record.get("unique_id", record.get("id"))
        task_id = str(rid) if rid is not None else str(lineno - 1)
        try:
            tasks.append(task_from_record(record, dataset, task_id))
        except TaskDataError as e:
            raise TaskDataError(f"{path}:{lineno}: {e}") from None
    if not tasks:
        raise TaskDataError(f"{path}: no records")
    return _check_unique(tasks, str(path))


def load_hub(
    dataset: str, split: str, hub_id: str | None = None, config: str | None = None
) -> list[MathTask]:
    """Load a split from the Hugging Face hub through `datasets` (cached after the first time).

    With no ``hub_id``: GSM8K is ``openai/gsm8k`` (config ``main``); MATH is
    ``EleutherAI/hendrycks_math`` with all seven subject configs concatenated, ids
    ``<subject>/<index>``. Pass ``hub_id="HuggingFaceH4/MATH-500"`` for the 500-problem subset.

    Raises:
        TaskDataError: The hub is unreachable and the dataset is not cached, with the ways to run
            offline.
    """
    import datasets  # heavy; only hub users pay for it

    default_id, default_config = DEFAULT_HUB[dataset]
    hub_id = hub_id or default_id
    if hub_id == default_id and config is None:
        config = default_config
    if dataset == "math" and hub_id == "EleutherAI/hendrycks_math" and config is None:
        parts = [(s, _hub_rows(datasets, hub_id, s, split)) for s in MATH_SUBJECTS]
    else:
        parts = [(None, _hub_rows(datasets, hub_id, config, split))]
    tasks = []
    for subject, rows in parts:
        for i, record in enumerate(rows):
            rid = record.get("unique_id", record.get("id"))
            task_id = str(rid) if rid is not None else (f"{subject}/{i}" if subject else str(i))
            try:
                tasks.append(task_from_record(record, dataset, task_id))
            except TaskDataError as e:
                raise TaskDataError(f"{hub_id} [{split}] row {i}: {e}") from None
    return _check_unique(tasks, hub_id)


def _hub_rows(datasets_module: Any, hub_id: str, config: str | None, split: str) -> Any:
    try:
        return datasets_module.load_dataset(hub_id, config, split=split)
    except (ConnectionError, OSError) as e:
        example = "oreo/GSM8K-v0" if "gsm" in hub_id.lower() else "oreo/MATH-v0"
        raise TaskDataError(
            f"could not load {hub_id!r} (config {config!r}, split {split!r}) from the Hugging Face "
            f"hub and it is not cached: {e}\n"
            "To run offline, pass a local JSON Lines file in the dataset's native format, e.g. "
            f"gymnasium.make({example!r}, path='test.jsonl') or `oreo play {example} "
            "--option path=test.jsonl`; or use the embedded generator 'oreo/GSMSymbolic-v0'."
        ) from None


class ReasoningGymTasks(Sequence[MathTask]):
    """A lazy, deterministic sequence of tasks from one `reasoning_gym` generator.

    Item ``i`` depends only on (name, seed, i), so tasks are generated on demand.
    The gold solution is the generator's ``answer_cot`` when it has one (``gsm_symbolic`` does,
    in GSM8K's ``#### N`` format).
    """

    def __init__(self, name: str, size: int, seed: int, **config: Any):
        try:
            import reasoning_gym
        except ImportError as e:  # a core dependency, but say what to install if it is gone
            raise ImportError("reasoning-gym is missing: pip install reasoning-gym") from e
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        try:
            self.dataset = reasoning_gym.create_dataset(name, size=size, seed=seed, **config)
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"reasoning-gym task {name!r}: {e}") from None
        self.name, self.size = name, size

    @property
    def task_ids(self) -> list[str]:
        return [str(i) for i in range(self.size)]

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.size))]
        entry = self.dataset[index]
        meta = entry.get("metadata", {})
        solution = meta.get("answer_cot")
        return MathTask(str(index), entry["question"], str(entry["answer"]), solution, {})

    def entry(self, index: int) -> dict[str, Any]:
        """The generator's raw entry (what its ``score_answer`` expects)."""
        return self.dataset[index]


def _check_unique(tasks: list[MathTask], source: str) -> list[MathTask]:
    seen: set[str] = set()
    for t in tasks:
        if t.task_id in seen:
            raise TaskDataError(f"{source}: duplicate task id {t.task_id!r}")
        seen.add(t.task_id)
    return tasks
