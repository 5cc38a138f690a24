"""Supervised fine-tuning loss.

Alignment convention: the caller shifts labels, so ``logits[b, t]`` is the distribution that
predicts ``labels[b, t]`` (for a causal LM, ``logits[:, :-1]`` with ``input_ids[:, 1:]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oreo_agents.losses._checks import as_bool_mask, check_label_range, check_logits_labels


def sft_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    loss_mask: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Token-level cross-entropy ``-1/N sum_{(b,t) in mask} log p(labels[b,t] | logits[b,t])``.

    The mean is over all N target tokens of the batch, so long responses weigh more than short
    ones, as in ordinary language-model training. A batch with no target tokens gives 0. With
    ``normalizer``, N is that instead: a micro-batch's share of its optimizer batch's tokens,
    so that accumulated micro-batches give the optimizer batch's token mean.

    Args:
        logits: ``[B, T, V]`` model logits, already aligned with `labels`.
        labels: ``[B, T]`` integer token ids; only positions in `loss_mask` are read.
        loss_mask: ``[B, T]`` bool or 0/1; 1 on target tokens.
        normalizer: The N to divide by (None: this batch's target tokens).

    Returns:
        ``(loss, metrics)``: a scalar tensor and a dict of detached scalars: ``token_accuracy``
        (argmax equals the label) and ``n_tokens``.

    Raises:
        ValueError: On wrong shapes or dtypes, or a target label outside ``[0, V)``.
    """
    check_logits_labels(logits, labels)
    mask = as_bool_mask("loss_mask", loss_mask, labels.shape)
    targets = labels[mask]
    check_label_range(targets, logits.shape[-1])

    # Selecting target rows first keeps the float32 copy to the N rows that are actually scored.
    selected = logits[mask].to(torch.promote_types(logits.dtype, torch.float32))
    n_tokens = mask.sum()
    n = n_tokens.clamp(min=1) if normalizer is None else normalizer
    loss = F.cross_entropy(selected, targets, reduction="sum") / n

    with torch.no_grad():
        correct = (selected.argmax(-1) == targets).sum()
        metrics = {
            "token_accuracy": correct / n_tokens.clamp(min=1),
            "n_tokens": n_tokens,
        }
    return loss, metrics
