"""Prompts for LLM agents in text envs (ALFWorld, TextWorld), ReAct / ETO style.

An interaction is an instruction, optional few-shot episodes, the env's first observation and
the history so far, a list of ``(action, observation)`` pairs. Actions are single lines. With
``think=True`` the agent may also write ``think: ...`` lines, which the env never sees: the
collector answers them with ``"OK."`` (`THINK_REPLY`), as the ReAct prompts do.

With ``remind_task=True`` every observation in the history is followed by the task's line from
the first observation (ALFWorld's ``Your task is to: ...``), so the goal stays a few tokens before
each action however long the episode grows: a small agent trained from scratch otherwise loses
it (docs/results.md, "Learned ALFWorld agents"). The rendering stays append-only.

Two renderings of the same interaction:

- plain text, ReAct's transcript format: the observation, then ``> action`` lines each followed
  by the observation, ending with ``"> "`` for the model to complete;
- chat messages (``messages``): the instruction, examples and first observation in the first user
  turn, then one assistant turn per action and one user turn per observation, ETO's layout; with
  a `transformers` tokenizer, `render` applies its chat template.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

THINK_PREFIX = "think:"
THINK_REPLY = "OK."
DEFAULT_INSTRUCTION = (
    "Interact with a household to solve a task. Each turn, reply with exactly one action on a "
    "single line, such as 'go to countertop 1', 'take apple 1 from countertop 1', "
    "'move apple 1 to fridge 1', 'open fridge 1', 'heat apple 1 with microwave 1', "
    "'clean apple 1 with sinkbasin 1', 'cool apple 1 with fridge 1', 'use desklamp 1'."
)
TASK_PREFIX = "Your task is to:"  # ALFWorld's (and TextWorld's ALFRED games') goal line
THINK_INSTRUCTION = " You may also reply 'think: ...' to reason; thoughts are answered 'OK.'."
# The ReAct prompt file names its examples by these prefixes (react_<prefix>_<i>).
REACT_PREFIXES = {
    "pick_and_place_simple": "put",
    "pick_clean_then_place_in_recep": "clean",
    "pick_heat_then_place_in_recep": "heat",
    "pick_cool_then_place_in_recep": "cool",
    "look_at_obj_in_light": "examine",
    "pick_two_obj_and_place": "puttwo",
}


@dataclass(frozen=True)
class Example:
    """A few-shot example: a first observation and its ``(action, observation)`` steps."""

    first_observation: str
    steps: tuple[tuple[str, str], ...]

    def without_thoughts(self) -> Example:
        """The same episode with its ``think:`` steps removed."""
        return Example(self.first_observation, tuple(s for s in self.steps if not is_think(s[0])))


def is_think(action: str) -> bool:
    """Whether an action is a thought (never sent to the env)."""
    return action.strip().lower().startswith(THINK_PREFIX)


def parse_action(generation: str) -> str:
    """The action in a model's generation: its first non-empty line, without a leading ``>``
    or ``Action:``.

    >>> parse_action("\\n> go to desk 1\\nYou arrive...")
    'go to desk 1'
    """
    for line in generation.splitlines():
        line = line.strip()
        while line.startswith(">"):
            line = line[1:].strip()
        if line.lower().startswith("action:"):
            line = line[len("action:") :].strip()
        if line:
            return line
    return ""


def parse_transcript(text: str) -> Example:
    """Read a ReAct transcript (observation, then ``> action`` / observation lines) as an
    `Example`."""
    first: list[str] = []
    steps: list[tuple[str, list[str]]] = []
    for line in text.strip("\n").split("\n"):
        if line.startswith("> "):
            steps.append((line[2:].strip(), []))
        elif steps:
            steps[-1][1].append(line)
        else:
            first.append(line)
    return Example("\n".join(first).strip(), tuple((a, "\n".join(o).strip()) for a, o in steps))


def load_react_examples(
    path: str | Path, task_type: str | None = None, style: str = "react"
) -> list[Example]:
    """Few-shot episodes from a ReAct prompt file (a JSON object of transcripts named
    ``<style>_<task>_<i>``, such as ``react_alfworld_3prompts.json``).

    Args:
        path: The JSON file.
        task_type: Only the examples of this ALFWorld task type.
        style: "react" (with thoughts) or "act" (actions only).

    Raises:
        ValueError: Unknown task type, or no example for it in the file.
    """
    data = json.loads(Path(path).read_text())
    keys = sorted(k for k in data if k.startswith(f"{style}_"))
    if task_type is not None:
        if task_type not in REACT_PREFIXES:
            raise ValueError(f"unknown task type {task_type!r}; use one of {list(REACT_PREFIXES)}")
        keys = [k for k in keys if k.rsplit("_", 1)[0] == f"{style}_{REACT_PREFIXES[task_type]}"]
        if not keys:
            raise ValueError(f"{path} has no example for task type {task_type!r}")
    return [parse_transcript(data[k]) for k in keys]


def example_from_episode(episode: dict[str, Any]) -> Example:
    """A `Example` from a stored episode (``prompt`` and ``steps`` of ``{action, observation}``)."""
    steps = tuple((s["action"], s["observation"]) for s in episode["steps"])
    return Example(episode["prompt"], steps)


def task_line(first_observation: str) -> str:
    """The last line of a first observation that states the task (``Your task is to: ...``),
    or "" when none does.

    >>> task_line("You are in a room.\\n\\nYour task is to: put a mug in shelf.")
    'Your task is to: put a mug in shelf.'
    """
    lines = [line.strip() for line in first_observation.splitlines()]
    return next((line for line in reversed(lines) if line.startswith(TASK_PREFIX)), "")


def _transcript(first_observation: str, steps: Sequence[tuple[str, str]], after: str = "") -> str:
    return first_observation + "".join(f"\n> {a}\n{o}{after}" for a, o in steps)


class AgentPrompt:
    """Turns an interaction into a prompt.

    Args:
        instruction: What the agent is told first (default: ALFWorld's actions).
        examples: Few-shot episodes shown before the task.
        think: Allow ``think:`` lines (kept in the examples, mentioned in the instruction; the
            collector answers them with `THINK_REPLY` and never sends them to the env); without
            it, thoughts are removed from the examples and a ``think:`` line is an action.
        remind_task: Repeat the first observation's task line (`task_line`) after every
            observation of the history (module docstring); examples are shown as they are.

    Renderings are append-only (each turn's prompt extends the previous one), which is what
    lets an episode store ``prompt + action_1 + observation_1 + ...`` as exactly the text the
    model saw; a history window would break that, so there is none: cut long episodes at
    training time (``max_length``) instead.
    """

    def __init__(
        self,
        instruction: str = DEFAULT_INSTRUCTION,
        examples: Sequence[Example] = (),
        *,
        think: bool = False,
        remind_task: bool = False,
    ):
        self.think, self.remind_task = think, remind_task
        self.instruction = instruction + (THINK_INSTRUCTION if think else "")
        self.examples = [e if think else e.without_thoughts() for e in examples]

    def with_examples(self, examples: Sequence[Example]) -> AgentPrompt:
        """This prompt with ``examples`` shown after its own (one episode's few-shot examples,
        `oreo_agents.rollout.fewshot`); thoughts are dropped from them as from the others."""
        clone = copy.copy(self)
        added = [e if self.think else e.without_thoughts() for e in examples]
        clone.examples = self.examples + added
        return clone

    def _history(self, history: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(a.strip(), o.strip()) for a, o in history]

    def _reminder(self, first_observation: str) -> str:
        """What follows each observation of the history: the task line, or nothing."""
        line = task_line(first_observation) if self.remind_task else ""
        return f"\n{line}" if line else ""

    def _preamble(self) -> str:
        parts = [self.instruction]
        for i, example in enumerate(self.examples, start=1):
            parts.append(f"Example {i}:\n{_transcript(example.first_observation, example.steps)}")
        if self.examples:
            parts.append("Now it is your turn.")
        return "\n\n".join(parts)

    def messages(
        self, first_observation: str, history: Sequence[tuple[str, str]]
    ) -> list[dict[str, str]]:
        """The interaction as chat messages (the next turn is the assistant's)."""
        content = f"{self._preamble()}\n\n{first_observation.strip()}"
        messages = [{"role": "user", "content": content}]
        reminder = self._reminder(first_observation)
        for action, observation in self._history(history):
            messages.append({"role": "assistant", "content": action})
            messages.append({"role": "user", "content": observation + reminder})
        return messages

    def render(
        self, first_observation: str, history: Sequence[tuple[str, str]], tokenizer: Any = None
    ) -> str:
        """The prompt string: the tokenizer's chat template when given, else plain text ending
        in ``"> "`` (the model writes the action; `parse_action` reads it back)."""
        if tokenizer is None:
            reminder = self._reminder(first_observation)
            body = _transcript(first_observation.strip(), self._history(history), reminder)
            return f"{self._preamble()}\n\n{body}\n> "
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("the tokenizer has no chat template; pass tokenizer=None")
        return tokenizer.apply_chat_template(
            self.messages(first_observation, history), tokenize=False, add_generation_prompt=True
        )
