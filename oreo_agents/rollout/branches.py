"""Branches: episodes that take over a logged episode at one of its states.

``oreo collect --branch-from DIR`` picks ``--branch-states N`` states of each episode in DIR
(the state after its t-th action, 1 <= t < its length, drawn by the run's seed), replays the
episode's first t actions in a fresh env and lets the policy play on from there, ``--samples``
times per state. The mean success of a state's branches is a Monte-Carlo estimate of its value
under the policy (VinePPO, Kazemnejad et al. 2024, estimates values this way instead of
learning them); a value model trained on the source episodes and their branches together
regresses each shared state toward that mean, on more outcomes per state than one episode
gives.

A branch is an ordinary episode (the source's t steps, then its own), logged with
``meta["branch"] = {"sample": the source's sample, "at": t}``. Its key is ``(task, n)``, n
counting the task's branches in a fixed order, so a re-run resumes it. The replay must retrace
the source exactly: each replayed step's observation is checked against the logged one, and a
branch whose prompt renders otherwise (other ``--remind-task`` / ``--chat-template`` settings
than the source's) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from oreo_agents.data.episodes import Episode


@dataclass(frozen=True)
class Branch:
    """Where one branch starts: the source episode, the actions of it replayed, and the reset
    seed the source was started with."""

    source: Episode
    at: int
    reset_seed: int


def plan_branches(
    episodes: Sequence[Episode], states: int, samples: int, seed: int
) -> dict[tuple[str, int], Branch]:
    """Every branch of ``episodes``, by key: for each episode, ``states`` of its states (all of
    them when it has fewer), ``samples`` branches each.

    The states are drawn per episode from a generator seeded by (``seed``, task, sample), so
    the plan does not depend on which other episodes the source holds.

    Raises:
        ValueError: ``states`` or ``samples`` below 1, or an episode without its sample index
            and seed in ``meta`` (not logged by ``oreo collect``).
    """
    if states < 1 or samples < 1:
        raise ValueError(f"branch states and samples must be >= 1, got {states} and {samples}")
    plan: dict[tuple[str, int], Branch] = {}
    counts: dict[str, int] = {}
    for ep in sorted(episodes, key=lambda e: (e.task_id, e.meta.get("sample", -1))):
        if "sample" not in ep.meta or "seed" not in ep.meta:
            raise ValueError(f"task {ep.task_id}: an episode without meta 'sample' and 'seed' "
                             "(branch from a store that oreo collect wrote)")  # fmt: skip
        for at in branch_states(ep, states, seed):
            for _ in range(samples):
                n = counts.get(ep.task_id, 0)
                counts[ep.task_id] = n + 1
                reset_seed = int(ep.meta["seed"]) + int(ep.meta["sample"])
                plan[(ep.task_id, n)] = Branch(ep, at, reset_seed)
    return plan


def branch_states(episode: Episode, states: int, seed: int) -> list[int]:
    """The states of ``episode`` its branches start from, as counts of replayed actions, in
    increasing order: ``states`` distinct t in [1, length), or every one there is."""
    candidates = list(range(1, len(episode.steps)))
    if len(candidates) <= states:
        return candidates
    key = [seed, int(episode.meta.get("sample", 0)), *episode.task_id.encode()]
    rng = np.random.default_rng(key)
    return sorted(int(t) for t in rng.choice(candidates, size=states, replace=False))
