"""Scripted policies ``policy(observation, info) -> action`` that stand in for a model: a math
env's reference solutions (``gold``), ALFWorld's walkthrough expert (``expert``) and uniformly
random admissible actions (``random``). Each declares what it needs of an env (`NEEDS`), and
`check_scripted` refuses an env without it before any episode."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ScriptedPolicy = Callable[[str, dict[str, Any]], str]
SCRIPTED = ("random", "expert", "gold")


@dataclass(frozen=True)
class Need:
    """What a scripted policy needs of an env, said and checked.

    Attributes:
        what: The need in words, e.g. "walkthroughs (ALFWorld, TextWorld)".
        met: Whether an (unwrapped) env has it, from its class, without a reset.
    """

    what: str
    met: Callable[[Any], bool]


def _walkthroughs(env: Any) -> bool:
    # the envs whose reset info carries the game's walkthrough; loaded when env is one of them
    homes = (("oreo_envs.alfworld.env", "AlfWorldEnv"), ("oreo_envs.textworld_env", "TextWorldEnv"))
    classes = [getattr(sys.modules.get(module), name, None) for module, name in homes]
    return any(cls is not None and isinstance(env, cls) for cls in classes)


NEEDS = {
    "random": Need(
        "admissible actions (an agent env: ALFWorld, TextWorld)",
        lambda env: getattr(env, "kind", None) == "agent",
    ),
    "gold": Need(
        "reference solutions (a math env: Chain, GSMSymbolic, GSM8K, MATH)",
        lambda env: callable(getattr(env, "task", None)),
    ),
    "expert": Need("walkthroughs (ALFWorld, TextWorld)", _walkthroughs),
}


def check_scripted(name: str, env: Any, env_id: str) -> None:
    """Refuse, before any episode, an env that lacks what the scripted policy ``name`` needs
    (`NEEDS`): ``random`` on a math env would fail at its first step, and ``expert`` would say
    "look" on every task and score 0% without a word.

    Raises:
        ValueError: One line naming the policy, the env and what it lacks.
    """
    need = NEEDS[name]
    if not need.met(env.unwrapped):
        raise ValueError(f"--policy {name} needs an env with {need.what}; {env_id} has none")


class GoldPolicy:
    """A scripted policy that writes a math env's reference solution (SFT data).

    Response level: the whole solution; step level: its steps one by one (the last one holds
    the final answer, which ends the episode).
    """

    def __init__(self, env: Any):
        from oreo_envs.math_env import split_steps

        self.env = env.unwrapped
        if not hasattr(self.env, "task"):
            raise ValueError("the 'gold' policy needs a math env with reference solutions")
        self._split = split_steps
        self._queue: list[str] = []
        self._task: str | None = None

    def __call__(self, _obs: str, info: dict[str, Any]) -> str:
        if "success" not in info:  # a reset: start on this task's solution
            solution = self.env.task(info["task_id"]).solution
            if not solution:
                raise ValueError(f"task {info['task_id']} has no reference solution")
            text = " " + solution
            if self.env.granularity == "step":
                self._queue = self._split(text, self.env.step_delimiters)
            else:
                self._queue = [text]
        return self._queue.pop(0) if self._queue else ""  # EOS if the env wants more


def scripted_policy(name: str, seed: int):
    """A factory ``env -> policy(observation, info) -> action`` for a scripted policy name."""
    if name == "random":
        rng = random.Random(seed)

        def random_admissible(_obs: str, info: dict) -> str:
            admissible = info.get("admissible_actions")
            if not admissible:
                raise ValueError("the 'random' policy needs an agent env (admissible actions)")
            return rng.choice(admissible)

        return lambda env: random_admissible
    if name == "gold":
        return GoldPolicy
    try:
        from oreo_envs.alfworld import WalkthroughExpert
    except ImportError as e:
        raise ImportError(f"the 'expert' policy needs the ALFWorld env: {e}") from None
    return lambda env: WalkthroughExpert()
