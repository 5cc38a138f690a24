"""Return-conditioned RL (RCRL): SFT on every episode, each conditioned on a control text that
says how it went, so the policy learns to act as the good episodes did when told "good".

Havrilla et al. 2024 ("Teaching Large Language Models to Reason with Reinforcement Learning",
arXiv 2403.04642) compare return-conditioned RL with expert iteration and PPO on math. The
control texts and the reward threshold are our design choices (the paper does not pin them
down): ``<good>`` / ``<bad>`` as a prefix of the prompt (after a BOS), its own segment of
context (not trained on), good when the reward is above 0.5 (the sparse reward is 1 for a
correct answer). At test time the policy is conditioned on the good text: ``oreo rollout
--control '<good>'`` (recorded in the report's config).

A prefix, not a suffix: a control text between the prompt and the answer moves every prompt
token further from the answer, and a small policy that learned to copy operands from fixed
distances loses them (on the demo's Chain task, seed 0: with a suffix, greedy validation success
went from the SFT policy's 52% to 3% told ``<good>``, 17% told nothing; docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from oreo_agents.algorithms.sft import SFT


@dataclass(frozen=True)
class RCRLConfig:
    """RCRL's settings.

    Attributes:
        good: Control text of episodes with reward above ``threshold`` (what rollout passes as
            ``--control``).
        bad: Control text of the others.
        threshold: Reward above which an episode is good.
    """

    good: str = "<good>"
    bad: str = "<bad>"
    threshold: float = 0.5

    def __post_init__(self):
        if not self.good or not self.bad or self.good == self.bad:
            raise ValueError("rcrl needs two different, non-empty control texts (good, bad)")


class RCRL(SFT):
    """SFT on every episode, its control text a prefix of the prompt (module docstring)."""

    config = RCRLConfig

    def select(self, episodes: list[Any], settings: Any, source: str) -> list[Any]:
        labels = [e.reward > settings.threshold for e in episodes]
        if len(set(labels)) < 2:
            which = "good" if labels and labels[0] else "bad"
            raise ValueError(
                f"{source}: every episode is {which} (reward vs threshold {settings.threshold}); "
                "return conditioning needs both kinds"
            )
        return [
            replace(e, meta={**e.meta, "control": settings.good if good else settings.bad})
            for e, good in zip(episodes, labels, strict=True)
        ]
