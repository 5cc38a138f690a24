"""One micro-batch of each algorithm: forward passes, then a pure loss from `losses`.

Every function takes the collated batch (``data.collate``) and returns ``(loss, metrics)``; the
loss already combines what is backpropagated (for OREO: value loss + policy loss + alpha * KL,
which touch disjoint parameters). Alignment: logits at position t predict token t + 1, so
targets and masks are shifted by one and ``values[:, t]`` (the state ending at token t) is V of
the state before action token t + 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from oreo_agents.losses import (
    dpo_loss,
    kl_penalty,
    kto_loss,
    kto_reference_point,
    oreo_loss,
    sequence_logps,
    sft_loss,
    token_logps,
)

OREO_LEVELS = {"oreo": "token", "oreo-step": "step", "oreo-response": "response"}


def _logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return out.logits[:, :-1]


def _shifted(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    labels = batch["input_ids"][:, 1:]
    mask = batch["action_mask"][:, 1:] & batch["attention_mask"][:, 1:].bool()
    return labels, mask


def ref_sequence_logps(models: dict[str, Any], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The frozen reference's per-sequence log-prob of the actions ``[B]``, precomputed
    (``batch["ref_logps"]``, see `precompute_reference`) or computed now."""
    if "ref_logps" in batch:
        return batch["ref_logps"]
    labels, mask = _shifted(batch)
    with torch.no_grad():
        return sequence_logps(_logits(models["reference"], batch), labels, mask)


@torch.no_grad()
def precompute_reference(
    reference: Any, batches: Sequence[dict[str, Any]], start: int, device: Any
) -> dict[int, dict[str, torch.Tensor]]:
    """The reference's sequence log-probs of micro-batches ``start..`` (and of their KTO
    mismatched batches), so the reference model can be freed before training (DPO, KTO).
    Returns ``{index: {"ref_logps": [B], "mismatched": [B]}}`` for `with_reference`."""
    out: dict[int, dict[str, torch.Tensor]] = {}
    for i in range(start, len(batches)):
        batch = batches[i]
        out[i] = {}
        for key, part in (("ref_logps", batch), ("mismatched", batch.get("mismatched"))):
            if part is None:
                continue
            on_device = {k: v.to(device) for k, v in part.items() if torch.is_tensor(v)}
            out[i][key] = ref_sequence_logps({"reference": reference}, on_device).cpu()
    return out


def with_reference(batch: dict[str, Any], refs: dict[str, torch.Tensor] | None) -> dict[str, Any]:
    """``batch`` with precomputed reference log-probs (`precompute_reference`) filled in."""
    if refs:
        batch["ref_logps"] = refs["ref_logps"]
        if "mismatched" in refs:
            batch["mismatched"]["ref_logps"] = refs["mismatched"]
    return batch


def oreo_step(models: dict[str, Any], batch: dict[str, torch.Tensor], cfg: Any):
    """OREO (Eq. 8-10): value residuals with the policy's log-ratios held fixed, policy residuals
    with the values from before this update, plus alpha * exact reverse KL."""
    level = OREO_LEVELS[cfg.algo]
    labels, mask = _shifted(batch)
    policy_logits = _logits(models["policy"], batch)
    with torch.no_grad():
        ref_logits = _logits(models["reference"], batch)
    policy_lp = token_logps(policy_logits, labels)
    ref_lp = token_logps(ref_logits, labels)
    values = models["value"](batch["input_ids"], batch["attention_mask"])[:, :-1]
    starts = batch["step_starts"][:, 1:] & mask if level == "step" else None
    kwargs = {"beta": cfg.beta, "level": level, "step_starts": starts}
    value_loss, _, value_metrics = oreo_loss(
        policy_lp.detach(), ref_lp, values, batch["rewards"], mask, **kwargs
    )
    _, policy_loss, metrics = oreo_loss(
        policy_lp, ref_lp, values.detach(), batch["rewards"], mask, **kwargs
    )
    kl, kl_metrics = kl_penalty(policy_logits, ref_logits, mask)
    metrics = {
        **metrics,
        **kl_metrics,
        "value_loss": value_loss.detach(),
        "policy_loss": policy_loss.detach(),
        "kl": kl.detach(),
        "value_residual_mean": value_metrics["value_residual_mean"],
    }
    return value_loss + policy_loss + cfg.alpha * kl, metrics


def sft_step(models: dict[str, Any], batch: dict[str, torch.Tensor], cfg: Any):
    """Cross-entropy on action tokens (SFT; rejection sampling = SFT on successful episodes)."""
    labels, mask = _shifted(batch)
    loss, metrics = sft_loss(_logits(models["policy"], batch), labels, mask)
    return loss, {**metrics, "sft_loss": loss.detach()}


def dpo_step(models: dict[str, Any], batch: dict[str, torch.Tensor], cfg: Any):
    """DPO on a batch whose first half are chosen and second half rejected episodes."""
    labels, mask = _shifted(batch)
    half = batch["input_ids"].shape[0] // 2
    policy = sequence_logps(_logits(models["policy"], batch), labels, mask)
    ref = ref_sequence_logps(models, batch)
    loss, metrics = dpo_loss(policy[:half], policy[half:], ref[:half], ref[half:], beta=cfg.beta)
    return loss, {**metrics, "dpo_loss": loss.detach()}


def kto_step(models: dict[str, Any], batch: dict[str, torch.Tensor], cfg: Any):
    """KTO on unpaired episodes; the reference point z0 comes from the batch's mismatched pairs
    (``batch["mismatched"]``: prompt i with response i + 1)."""
    labels, mask = _shifted(batch)
    policy = sequence_logps(_logits(models["policy"], batch), labels, mask)
    mis = batch["mismatched"]
    mis_labels, mis_mask = _shifted(mis)
    ref = ref_sequence_logps(models, batch)
    with torch.no_grad():
        z0 = kto_reference_point(
            sequence_logps(_logits(models["policy"], mis), mis_labels, mis_mask),
            ref_sequence_logps(models, mis),
        )
    loss, metrics = kto_loss(
        policy,
        ref,
        batch["rewards"] > 0,
        z0,
        beta=cfg.beta,
        desirable_weight=cfg.kto_desirable_weight,
        undesirable_weight=cfg.kto_undesirable_weight,
    )
    return loss, {**metrics, "kto_loss": loss.detach()}


STEP_FNS = {
    "oreo": oreo_step,
    "oreo-step": oreo_step,
    "oreo-response": oreo_step,
    "sft": sft_step,
    "rft": sft_step,
    "dpo": dpo_step,
    "kto": kto_step,
}
