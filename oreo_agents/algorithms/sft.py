"""Supervised fine-tuning on the episodes' actions, and rejection sampling (SFT on the
successful episodes only; collect + rft repeated is expert iteration)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oreo_agents.algorithms.base import Algorithm, logits, shifted
from oreo_agents.losses import sft_loss


@dataclass(frozen=True)
class SFTConfig:
    """SFT has no settings beyond the loop's (the OREO paper's lr 5e-6, App. A.3)."""


class SFT(Algorithm):
    """Cross-entropy on action tokens; observations and the prompt are context."""

    config = SFTConfig
    log_keys = ("sft_loss",)

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: Any):
        labels, mask = shifted(batch)
        loss, metrics = sft_loss(logits(models["policy"], batch), labels, mask)
        return loss, {**metrics, "sft_loss": loss.detach()}


class RejectionSampling(SFT):
    """SFT on reward > 0 episodes (the OREO paper's rejection-sampling baseline)."""

    def select(self, episodes: list[Any], settings: Any, source: str) -> list[Any]:
        kept = [e for e in episodes if e.reward > 0]
        if not kept:
            raise ValueError(f"{source}: no episode has reward > 0, nothing to fine-tune on")
        return kept
