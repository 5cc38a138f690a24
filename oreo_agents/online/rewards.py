"""Reward functions for online RL (``oreo train --algo ppo --set reward=NAME``), by name.

A reward function is a pure function ``fn(episode, task, **options) -> list[float]``: one reward
per reasoning step of the episode's actions (`reasoning_steps`: each action split on its env's
step delimiters, e.g. lines), credited at the step's last token; the last entry is credited at
the episode's last action token. ``task`` is the env's task (`oreo_envs.tasks.MathTask`: its
reference ``solution``), or None when the env has no task lookup.

Built in:
    sparse: the env's reward at the end (Havrilla et al. 2024: +1 for a correct final answer).
    dense: sparse, plus a bonus for each intermediate result of the reference solution that a
        step reproduces (Havrilla et al. 2024's heuristic dense reward): the results of GSM8K's
        ``<<a*b=c>>`` calculator annotations, or the value after the last ``=`` of each line of a
        chain solution (``oreo/Chain-v0``).

The learned outcome reward model (``reward=orm``) is not a pure function; PPO scores it with the
model itself (`oreo_agents.algorithms.ppo`).

Adding one::

    from oreo_agents.online.rewards import register_reward
    register_reward("length", lambda episode, task: [0.0] * (n - 1) + [...])
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from oreo_envs import step_delimiters_of
from oreo_envs.math_env import split_steps

RewardFn = Callable[..., list[float]]
REWARDS: dict[str, RewardFn] = {}
MODEL_REWARDS = ("orm",)  # scored by a model, not a registered function

_ANNOTATION = re.compile(r"<<[^<>]*=\s*([^<>]+?)\s*>>")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def register_reward(name: str, fn: RewardFn) -> RewardFn:
    """Make ``fn`` usable as ``--set reward=name``.

    Raises:
        ValueError: The name is taken by another function or by a model reward.
    """
    if name in MODEL_REWARDS or (name in REWARDS and REWARDS[name] is not fn):
        raise ValueError(f"a reward named {name!r} already exists")
    REWARDS[name] = fn
    return fn


def get_reward(name: str) -> RewardFn:
    """The reward function registered as ``name``.

    Raises:
        ValueError: No such reward (the message lists them).
    """
    if name not in REWARDS:
        raise ValueError(f"reward must be one of {reward_names()}, got {name!r}")
    return REWARDS[name]


def reward_names() -> tuple[str, ...]:
    return (*REWARDS, *MODEL_REWARDS)


def reasoning_steps(episode: Any) -> list[str]:
    """The reasoning steps of an episode's actions, in order: each action split on its env's step
    delimiters, each piece keeping its delimiter (what OREO's step level and token step starts
    use); an empty action contributes none."""
    delims = step_delimiters_of(episode.env_id)
    return [piece for step in episode.steps for piece in split_steps(step["action"], delims)]


def sparse(episode: Any, task: Any = None) -> list[float]:
    """The episode's reward on its last step, 0 on the others."""
    steps = reasoning_steps(episode)
    return [0.0] * max(len(steps) - 1, 0) + [float(episode.reward)]


def dense(episode: Any, task: Any, *, weight: float = 0.5) -> list[float]:
    """`sparse` plus ``weight / n`` for each step that reproduces one of the n intermediate
    results of ``task.solution`` (each result credited once; a fully faithful chain earns
    ``weight`` on top of the outcome). ``weight`` is our choice: the paper gives no scale.

    Raises:
        ValueError: The task has no reference solution with intermediate results.
    """
    solution = getattr(task, "solution", None)
    if not solution:
        raise ValueError(f"task {episode.task_id}: the dense reward needs a reference solution")
    reference = Counter(intermediate_results(solution))
    n = sum(reference.values())
    if n == 0:
        return sparse(episode)
    steps = reasoning_steps(episode)
    rewards = [0.0] * len(steps)
    for i, step in enumerate(steps):
        for value in step_results(step):
            if reference[value] > 0:
                reference[value] -= 1
                rewards[i] += weight / n
    if rewards:
        rewards[-1] += float(episode.reward)
    return rewards or [float(episode.reward)]


def intermediate_results(solution: str) -> list[str]:
    """The intermediate results of a reference solution (its final ``####`` line excluded):
    GSM8K's calculator annotation results, else each line's value after its last ``=``."""
    body = "\n".join(line for line in solution.splitlines() if not line.lstrip().startswith("###"))
    return [r for line in body.splitlines() for r in step_results(line)]


def step_results(text: str) -> list[str]:
    """The results a step states, as canonical numbers: its ``<<...=c>>`` annotations' c, or the
    number after its last ``=``."""
    found = _ANNOTATION.findall(text)
    if not found and "=" in text:
        found = [text.rsplit("=", 1)[1]]
    values = []
    for raw in found:
        match = _NUMBER.search(raw)
        if match:
            values.append(_canonical(match.group()))
    return values


def _canonical(number: str) -> str:
    text = number.replace(",", "")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text.lstrip("+") if text not in ("-0", "") else "0"


register_reward("sparse", sparse)
register_reward("dense", dense)
