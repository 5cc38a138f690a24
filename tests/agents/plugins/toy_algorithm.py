"""A toy algorithm registered from outside the library: reward-weighted SFT.

A spec and a pure loss, nothing else: `test_algorithms` installs this module as an
``oreo.algorithms`` plug-in and trains it with ``oreo train --algo toy-rwr``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from oreo_agents.algorithms import Algorithm, register
from oreo_agents.algorithms.base import logits, shifted
from oreo_agents.losses import token_logps


def reward_weighted_nll(
    logps: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``-sum_b w_b sum_t mask[b,t] logps[b,t] / sum(mask)``; logps and mask ``[B, T]``,
    weights ``[B]``."""
    mask = mask.float()
    loss = -(weights[:, None] * logps * mask).sum() / mask.sum().clamp(min=1)
    return loss, {"mean_weight": weights.mean().detach()}


@dataclass(frozen=True)
class RWRConfig:
    """Reward-weighted SFT.

    Attributes:
        floor: The weight of a failed episode (a successful one weighs 1).
    """

    floor: float = 0.1


class RewardWeightedSFT(Algorithm):
    config = RWRConfig
    log_keys = ("rwr_loss",)

    def step(self, models, batch, settings):
        labels, mask = shifted(batch)
        logps = token_logps(logits(models["policy"], batch), labels)
        weights = torch.where(batch["rewards"] > 0, 1.0, settings.floor)
        loss, metrics = reward_weighted_nll(logps, mask, weights)
        return loss, {**metrics, "rwr_loss": loss.detach()}


def register_algorithms():
    register(RewardWeightedSFT("toy-rwr", "reward-weighted SFT (a test plug-in)"))
