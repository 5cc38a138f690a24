"""The text-environment core: a Gymnasium env whose observations and actions are strings.

Contract (``docs/architecture.md``): ``reset`` returns the task's first observation; ``step(text)``
returns ``(obs, reward, terminated, truncated, info)`` with a sparse reward (1.0 when the task is
solved at the end, else 0.0). ``info`` always carries ``task_id`` and ``success`` (False until the
episode ends solved). ``options={"task_id": ...}`` selects a task; a seed fixes the task order.

The model's context is always ``prompt + action_1 + obs_1 + action_2 + obs_2 ...``: envs that
give no feedback between steps (step-level math) return ``""`` as the observation.
"""

from __future__ import annotations

import os
import string
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Text

from oreo_envs.files import atomic_write

# Upper bound on an observation or action. Generous on purpose: a runaway generation (a 1 MB
# action) must be graded 0 by the env, not rejected by the space.
MAX_TEXT_LENGTH = 1 << 24

# Characters `sample()` draws from: what model output is made of (ASCII, whitespace, LaTeX
# punctuation, accented letters, Greek, math symbols, CJK, an emoji).
SAMPLE_CHARSET = (
    string.ascii_letters
    + string.digits
    + string.punctuation
    + " \n\t"
    + "àáâäçèéêëíîïñóôöúûüßÀÉÖÜ"
    + "αβγδεζηθικλμνξπρστυφχψωΓΔΘΛΞΠΣΦΨΩ"
    + "±×÷≤≥≠≈∞√∑∏∫∂∇∈∉⊂⊆∪∩∀∃→←↔⇒⇔°′″·…–—“”‘’€£¥"
    + "数学答案的是"
    + "🙂"
)


KINDS = ("answer", "agent")


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """``messages`` through the tokenizer's chat template, the assistant's turn opened; a
    template that refuses a system turn gets the system text folded into the first user turn.

    Raises:
        ValueError: The tokenizer has no chat template.
    """
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
        raise ValueError(f"the tokenizer {name!r} has no chat template; use the plain format")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # e.g. Gemma's template raises on a system turn
        if not messages or messages[0]["role"] != "system":
            raise
        system, rest = messages[0]["content"], [dict(m) for m in messages[1:]]
        if rest and rest[0]["role"] == "user":
            rest[0]["content"] = f"{rest[0]['content']}\n{system}"
        else:
            rest.insert(0, {"role": "user", "content": system})
        return tokenizer.apply_chat_template(rest, tokenize=False, add_generation_prompt=True)


def _registered_class(env_id: str) -> tuple[Any, dict[str, Any]]:
    """The class a registered id makes and its registered arguments; (None, {}) for an id
    that is not registered or whose entry point does not load (imported data)."""
    import gymnasium

    try:
        spec = gymnasium.spec(env_id)
        cls = spec.entry_point
        if isinstance(cls, str):
            cls = gymnasium.envs.registration.load_env_creator(cls)
    except (gymnasium.error.Error, ImportError, AttributeError, ModuleNotFoundError):
        return None, {}
    return cls, dict(spec.kwargs)


def step_delimiters_of(env_id: str) -> tuple[str, ...]:
    """The step delimiters of a registered env id (`TextEnv.delimiters_for` its registered
    arguments); lines for an id that is not registered or not a `TextEnv` (imported data)."""
    cls, kwargs = _registered_class(env_id)
    if isinstance(cls, type) and issubclass(cls, TextEnv):
        return cls.delimiters_for(kwargs)
    return ("\n",)


def kind_of(env_id: str) -> str:
    """The declared kind (`TextEnv.kind`) of a registered env id, without making the env;
    "answer" for an id that is not registered or not a `TextEnv` (imported data)."""
    cls, _ = _registered_class(env_id)
    if isinstance(cls, type) and issubclass(cls, TextEnv):
        return cls.kind
    return "answer"


def env_kind(env: Any) -> str:
    """The declared kind of an env (`TextEnv.kind`), through any wrappers; a plain Gymnasium
    env that declares none is an answer env.

    Raises:
        ValueError: An undeclared kind.
    """
    kind = getattr(env.unwrapped, "kind", "answer")
    if kind not in KINDS:
        raise ValueError(f"{type(env.unwrapped).__name__}.kind must be one of {KINDS}: {kind!r}")
    return kind


class TextSpace(Text):
    """A `gymnasium.spaces.Text` that holds any Unicode string up to ``max_length`` characters.

    Gymnasium's ``Text`` only accepts characters of a fixed charset, but a language model can emit
    any code point, so membership here accepts every string whose characters can be written as
    UTF-8 (lone surrogates cannot, and would break the JSON Lines episode store). The charset is
    used only by ``sample()``, whose length is drawn up to ``sample_max_length`` rather than
    ``max_length`` (a uniform draw up to 16M characters would be useless and slow).
    """

    def __init__(
        self,
        max_length: int = MAX_TEXT_LENGTH,
        *,
        min_length: int = 0,
        charset: str = SAMPLE_CHARSET,
        sample_max_length: int = 256,
        seed: int | np.random.Generator | None = None,
    ):
        super().__init__(max_length, min_length=min_length, charset=charset, seed=seed)
        self.sample_max_length = min(sample_max_length, max_length)

    def contains(self, x: Any) -> bool:
        if not isinstance(x, str) or not self.min_length <= len(x) <= self.max_length:
            return False
        try:
            x.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True

    def sample(self, mask=None, probability=None) -> str:
        if mask is None and probability is None:
            length = int(self.np_random.integers(self.min_length, self.sample_max_length + 1))
            mask = (length, None)
        return super().sample(mask=mask, probability=probability)

    def __repr__(self) -> str:
        return f"TextSpace({self.min_length}, {self.max_length}, any UTF-8 text)"


class TextEnv(gym.Env[str, str]):
    """Base class for oreo's text environments: task selection, episode bookkeeping, rendering.

    A subclass provides the task ids and two hooks:

    - ``_start(task_id) -> (observation, info)``: begin an episode on that task;
    - ``_act(action) -> (observation, reward, terminated, info)``: apply one action. Set
      ``info["success"]`` when the episode ends; the base adds ``task_id``.

    Truncation at a step limit is left to Gymnasium's ``TimeLimit`` wrapper, added by registering
    the id with ``max_episode_steps``.

    Task order: ``reset(seed=s)`` draws a fresh permutation of the tasks from the env's RNG, and
    each later ``reset()`` takes the next task in it (a new permutation once all were used), so a
    seed reproduces the task sequence and an evaluation pass covers tasks without repeats.

    Class attributes (what collectors and evaluators read; no one guesses from ids or info keys):
        kind: "answer" (the agent writes a response graded at the end: math, Chain,
            ReasoningGym; final answers can be voted on, maj@k) or "agent" (one command per
            turn, ``info["admissible_actions"]``: ALFWorld, TextWorld).
        granularity: Answer envs: "response" (one action is the whole response) or "step" (one
            reasoning step per action, split on ``step_delimiters``).
        step_delimiters: Where a response splits into steps (kept at the end of each step).

    Answer envs' reset info carries ``messages`` (`messages`), the task for chat templates.
    """

    # render_fps only quiets Gymnasium's checker: text frames are not played back in real time.
    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    kind: str = "answer"
    granularity: str = "response"
    step_delimiters: tuple[str, ...] = ("\n",)

    @classmethod
    def delimiters_for(cls, kwargs: dict[str, Any]) -> tuple[str, ...]:
        """The step delimiters an env built with ``kwargs`` will have, without building it
        (training reads them for logged episodes); override when they depend on ``kwargs``."""
        return tuple(cls.step_delimiters)

    def __init__(self, task_ids: Sequence[str], *, render_mode: str | None = None):
        if not task_ids:
            raise ValueError(f"{type(self).__name__}: the task set is empty")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} or None"
            )
        self.task_ids = list(task_ids)
        self._task_index = {tid: i for i, tid in enumerate(self.task_ids)}
        if len(self._task_index) != len(self.task_ids):
            raise ValueError(f"{type(self).__name__}: task ids are not unique")
        self.render_mode = render_mode
        self.observation_space = TextSpace()
        self.action_space = TextSpace()
        self._order: np.ndarray | None = None
        self._cursor = 0
        self._task_id: str | None = None
        self._done = True
        self._transcript: list[str] = []

    @property
    def task_id(self) -> str | None:
        """The task of the current episode (None before the first reset)."""
        return self._task_id

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._order = None
        options = options or {}
        unknown = set(options) - {"task_id"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; supported: ['task_id']")
        if "task_id" in options:
            task_id = self._check_task_id(options["task_id"])
        else:
            task_id = self._next_task_id()
        self._task_id = task_id
        self._done = False
        obs, info = self._start(task_id)
        self._transcript = [obs]
        if self.kind == "answer":
            info = {**info, "messages": self.messages(obs)}
        return obs, {**info, "task_id": task_id}

    def messages(self, observation: str) -> list[dict[str, str]]:
        """The current task as chat messages (``info["messages"]`` at reset, in answer envs):
        what a chat template renders instead of the plain first observation. Default: the
        observation as the user's turn; envs with an instruction override it (MathEnv)."""
        return [{"role": "user", "content": observation}]

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._task_id is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended; call reset() to start a new one")
        if not isinstance(action, str):
            raise TypeError(f"an action must be a str, got {type(action).__name__}")
        obs, reward, terminated, info = self._act(action)
        self._done = terminated
        self._transcript += [action, obs]
        info = {"success": False, **info, "task_id": self._task_id}
        return obs, float(reward), terminated, False, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return "".join(self._transcript)
        return None

    def _check_task_id(self, task_id: Any) -> str:
        task_id = str(task_id)
        if task_id not in self._task_index:
            examples = ", ".join(repr(t) for t in self.task_ids[:3])
            raise ValueError(
                f"unknown task_id {task_id!r} ({len(self.task_ids)} tasks; e.g. {examples})"
            )
        return task_id

    def _next_task_id(self) -> str:
        if self._order is None or self._cursor >= len(self._order):
            self._order = self.np_random.permutation(len(self.task_ids))
            self._cursor = 0
        task_id = self.task_ids[int(self._order[self._cursor])]
        self._cursor += 1
        return task_id

    def _start(self, task_id: str) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _act(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        raise NotImplementedError


def cache_dir() -> Path:
    """oreo's cache folder: ``$XDG_CACHE_HOME/oreo`` (default ``~/.cache/oreo``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "oreo"


def write_cache_file(path: Path, data: bytes) -> None:
    """Write a cache entry whole or not at all (temp file, then rename: a kill mid-write leaves
    no half entry); a cache that cannot be written (read-only home) is skipped silently, since
    it only costs recomputing the entry next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(data)
    except OSError:
        pass
