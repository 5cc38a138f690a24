"""DPO (Rafailov et al. 2023) on (correct, incorrect) episode pairs of the same task."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from oreo_agents.algorithms.base import Algorithm, logits, ref_sequence_logps, shifted
from oreo_agents.data.tokenization import collate, dpo_pairs
from oreo_agents.losses import dpo_loss, sequence_logps


@dataclass(frozen=True)
class DPOConfig:
    """DPO's settings (the OREO paper's DPO baseline, Wang et al. 2024, App. A.3).

    Attributes:
        beta: DPO's KL strength beta (0.1).
        max_pairs_per_task: (correct, incorrect) pairs drawn per task (6).
        precompute_ref: Compute the reference's log-probs for all data before training and free
            the reference model.
    """

    beta: float = 0.1
    max_pairs_per_task: int = 6
    precompute_ref: bool = False

    def __post_init__(self):
        if self.max_pairs_per_task < 1:
            raise ValueError(f"max_pairs_per_task must be >= 1, got {self.max_pairs_per_task}")


class DPO(Algorithm):
    """Items are (chosen, rejected) pairs. A micro-batch holds the chosen episodes, with the
    rejected ones as its ``rejected`` sub-batch, and each runs its own forward: padded
    together, a short success and a failure that ran to the step cap spent a third of an
    ALFWorld DPO run's tokens on padding (docs/results.md)."""

    config = DPOConfig
    reference = True
    default_lr = 5e-7  # Wang et al. 2024, App. A.3
    unit = "pairs"
    log_keys = ("dpo_loss",)

    def items(self, episodes, settings: DPOConfig, seed: int, source: str):
        pairs = dpo_pairs(episodes, max_pairs_per_task=settings.max_pairs_per_task, seed=seed)
        if not pairs:
            raise ValueError(
                f"{source}: no task has both a correct and an incorrect episode, so DPO has "
                "no (chosen, rejected) pairs; collect more samples per task (--samples)"
            )
        return pairs

    def length(self, item: Any) -> int:
        return max(len(item[0]), len(item[1]))

    def collate(self, items, pad_id: int, max_length: int | None = None) -> dict[str, Any]:
        batch = collate([c for c, _ in items], pad_id)
        batch["rejected"] = collate([r for _, r in items], pad_id)
        return batch

    def precomputes_reference(self, settings: DPOConfig) -> bool:
        return settings.precompute_ref

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: DPOConfig):
        chosen, rejected = batch, batch["rejected"]
        loss, metrics = dpo_loss(
            sequence_logps(logits(models["policy"], chosen), *shifted(chosen)),
            sequence_logps(logits(models["policy"], rejected), *shifted(rejected)),
            ref_sequence_logps(models, chosen),
            ref_sequence_logps(models, rejected),
            beta=settings.beta,
        )
        return loss, {**metrics, "dpo_loss": loss.detach()}
