"""Supervised fine-tuning on the episodes' actions, and rejection sampling (SFT on the
successful episodes only; collect + rft repeated is expert iteration)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from oreo_agents.algorithms.base import Algorithm, logits, normalizer, shifted, target_tokens
from oreo_agents.losses import sft_loss


@dataclass(frozen=True)
class SFTConfig:
    """SFT has no settings beyond the loop's (the OREO paper's lr 5e-6, App. A.3)."""


class SFT(Algorithm):
    """Cross-entropy on action tokens; observations and the prompt are context."""

    config = SFTConfig
    log_keys = ("sft_loss",)

    def counts(self, items: Sequence[Any]) -> dict[str, float]:
        return {"tokens": sum(target_tokens(x) for x in items)}

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: Any):
        labels, mask = shifted(batch)
        policy_logits = logits(models["policy"], batch)
        loss, metrics = sft_loss(policy_logits, labels, mask, normalizer(batch, "tokens"))
        return loss, {**metrics, "sft_loss": loss.detach()}


@dataclass(frozen=True)
class RFTConfig:
    """Rejection sampling's settings.

    Attributes:
        deduplicate: Keep one of the successful episodes of a task that took the same actions
            (expert iteration de-duplicates its samples, Havrilla et al. 2024).
    """

    deduplicate: bool = False


class RejectionSampling(SFT):
    """SFT on reward > 0 episodes (the OREO paper's rejection-sampling baseline)."""

    config = RFTConfig

    def select(self, episodes: list[Any], settings: Any, source: str) -> list[Any]:
        kept = [e for e in episodes if e.reward > 0]
        if not kept:
            raise ValueError(f"{source}: no episode has reward > 0, nothing to fine-tune on")
        if settings.deduplicate:  # the first episode of each (task, actions) stays
            seen: set[tuple] = set()
            unique = []
            for e in kept:
                key = (e.task_id, tuple(step["action"] for step in e.steps))
                if key not in seen:
                    seen.add(key)
                    unique.append(e)
            kept = unique
        return kept
