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
    """Items are (chosen, rejected) pairs; a micro-batch holds the chosen episodes first and the
    rejected ones second, so one forward scores both."""

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
        return collate([c for c, _ in items] + [r for _, r in items], pad_id)

    def precomputes_reference(self, settings: DPOConfig) -> bool:
        return settings.precompute_ref

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: DPOConfig):
        labels, mask = shifted(batch)
        half = batch["input_ids"].shape[0] // 2
        policy = sequence_logps(logits(models["policy"], batch), labels, mask)
        ref = ref_sequence_logps(models, batch)
        loss, metrics = dpo_loss(
            policy[:half], policy[half:], ref[:half], ref[half:], beta=settings.beta
        )
        return loss, {**metrics, "dpo_loss": loss.detach()}
