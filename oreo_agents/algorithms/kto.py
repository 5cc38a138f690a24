"""KTO (Ethayarajh et al. 2024) on unpaired desirable (reward > 0) and undesirable episodes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from oreo_agents.algorithms.base import Algorithm, logits, ref_sequence_logps, shifted
from oreo_agents.data.tokenization import collate, mismatched
from oreo_agents.losses import kto_loss, kto_reference_point, sequence_logps


@dataclass(frozen=True)
class KTOConfig:
    """KTO's settings.

    Attributes:
        beta: KTO's beta (0.1, Ethayarajh et al. 2024).
        desirable_weight: lambda_D; None balances the classes, lambda_D * n_D =
            lambda_U * n_U, inside the range [1, 4/3] the KTO paper recommends for that ratio
            (Ethayarajh et al. 2024, Sec. 4); unbalanced weights with mostly failed episodes
            push the policy mainly away from them.
        undesirable_weight: lambda_U (1.0).
        precompute_ref: Compute the reference's log-probs for all data before training and free
            the reference model.
    """

    beta: float = 0.1
    desirable_weight: float | None = None
    undesirable_weight: float = 1.0
    precompute_ref: bool = False


class KTO(Algorithm):
    """Each micro-batch carries its mismatched twin (prompt i with response i + 1) from which
    the reference point z0 is estimated, as in the KTO paper."""

    config = KTOConfig
    reference = True
    log_keys = ("kto_loss",)

    def items(self, episodes, settings: KTOConfig, seed: int, source: str):
        if len({e.reward > 0 for e in episodes}) < 2:
            raise ValueError(f"{source}: KTO needs both successful and failed episodes")
        return episodes

    def finalize(self, settings: KTOConfig, items) -> KTOConfig:
        """lambda_D set so both classes weigh the same, when left to None."""
        if settings.desirable_weight is not None:
            return settings
        good = sum(1 for x in items if x.reward > 0)
        bad = len(items) - good
        return replace(settings, desirable_weight=settings.undesirable_weight * bad / good)

    def collate(self, items, pad_id: int, max_length: int | None = None) -> dict[str, Any]:
        batch = collate(items, pad_id)
        batch["mismatched"] = collate(mismatched(items, max_length), pad_id)
        return batch

    def precomputes_reference(self, settings: KTOConfig) -> bool:
        return settings.precompute_ref

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: KTOConfig):
        labels, mask = shifted(batch)
        policy = sequence_logps(logits(models["policy"], batch), labels, mask)
        mis = batch["mismatched"]
        mis_labels, mis_mask = shifted(mis)
        ref = ref_sequence_logps(models, batch)
        with torch.no_grad():
            z0 = kto_reference_point(
                sequence_logps(logits(models["policy"], mis), mis_labels, mis_mask),
                ref_sequence_logps(models, mis),
            )
        loss, metrics = kto_loss(
            policy,
            ref,
            batch["rewards"] > 0,
            z0,
            beta=settings.beta,
            desirable_weight=settings.desirable_weight,
            undesirable_weight=settings.undesirable_weight,
        )
        return loss, {**metrics, "kto_loss": loss.detach()}
