"""Supervised fine-tuning loss and the log-probability helpers every algorithm uses.

Alignment convention: the caller shifts labels, so ``logits[b, t]`` is the distribution that
predicts ``labels[b, t]`` (for a causal LM, ``logits[:, :-1]`` with ``input_ids[:, 1:]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oreo_agents.losses._checks import as_bool_mask, check_float


def sft_loss(
    logits: torch.Tensor, labels: torch.Tensor, loss_mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Token-level cross-entropy ``-1/N sum_{(b,t) in mask} log p(labels[b,t] | logits[b,t])``.

    The mean is over all N target tokens of the batch, so long responses weigh more than short
    ones, as in ordinary language-model training. A batch with no target tokens gives 0.

    Args:
        logits: ``[B, T, V]`` model logits, already aligned with `labels`.
        labels: ``[B, T]`` integer token ids; only positions in `loss_mask` are read.
        loss_mask: ``[B, T]`` bool or 0/1; 1 on target tokens.

    Returns:
        ``(loss, metrics)``: a scalar tensor and a dict of detached scalars: ``token_accuracy``
        (argmax equals the label) and ``n_tokens``.

    Raises:
        ValueError: On wrong shapes or dtypes, or a target label outside ``[0, V)``.
    """
    _check_logits_labels(logits, labels)
    mask = as_bool_mask("loss_mask", loss_mask, labels.shape)
    targets = labels[mask]
    _check_label_range(targets, logits.shape[-1])

    # Selecting target rows first keeps the float32 copy to the N rows that are actually scored.
    selected = logits[mask].to(torch.promote_types(logits.dtype, torch.float32))
    n_tokens = mask.sum()
    loss = F.cross_entropy(selected, targets, reduction="sum") / n_tokens.clamp(min=1)

    with torch.no_grad():
        correct = (selected.argmax(-1) == targets).sum()
        metrics = {
            "token_accuracy": correct / n_tokens.clamp(min=1),
            "n_tokens": n_tokens,
        }
    return loss, metrics


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Log-probability of each label: ``log_softmax(logits[b, t])[labels[b, t]]``.

    Computed as the label's logit minus the log-sum-exp of its row, one sequence at a time, so that
    the float32 temporaries are ``[T, V]`` rather than ``[B, T, V]`` (most of the saving shows when
    no gradient is kept, e.g. for the frozen reference model). Labels below 0 (the ``-100`` ignore
    index of Hugging Face data collators) give 0 instead of a gather error.

    Args:
        logits: ``[B, T, V]`` logits aligned with `labels`.
        labels: ``[B, T]`` integer token ids, or negative for positions to skip.

    Returns:
        ``[B, T]`` log-probs in at least float32; differentiable with respect to `logits`.

    Raises:
        ValueError: On wrong shapes or dtypes, or a label at or above the vocabulary size.
    """
    _check_logits_labels(logits, labels)
    _check_label_range(labels[labels >= 0], logits.shape[-1])
    dtype = torch.promote_types(logits.dtype, torch.float32)
    valid = labels >= 0
    index = torch.where(valid, labels, torch.zeros_like(labels)).unsqueeze(-1)
    picked = logits.gather(-1, index).squeeze(-1).to(dtype)
    normaliser = torch.stack([torch.logsumexp(row.to(dtype), dim=-1) for row in logits])
    logps = picked - normaliser
    return torch.where(valid, logps, torch.zeros_like(logps))


def sequence_logps(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of the masked labels of each sequence (DPO / KTO inputs).

    Args:
        logits: ``[B, T, V]`` logits aligned with `labels`.
        labels: ``[B, T]`` integer token ids (negative ids are allowed outside `mask`).
        mask: ``[B, T]`` bool or 0/1; 1 on the response tokens to score.

    Returns:
        ``[B]`` sums ``sum_t mask[b, t] * log p(labels[b, t])``, in at least float32.

    Raises:
        ValueError: On wrong shapes or dtypes, or an out-of-range label inside `mask`.
    """
    _check_logits_labels(logits, labels)
    mask = as_bool_mask("mask", mask, labels.shape)
    if (labels[mask] < 0).any():
        raise ValueError("labels inside mask must be token ids >= 0, found a negative label")
    logps = token_logps(logits, labels)
    return torch.where(mask, logps, torch.zeros_like(logps)).sum(-1)


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    """Raise ValueError unless logits are ``[B, T, V]`` float and labels ``[B, T]`` integer."""
    check_float("logits", logits, 3)
    if (
        not isinstance(labels, torch.Tensor)
        or labels.dtype.is_floating_point
        or (labels.dtype == torch.bool)
    ):
        raise ValueError(f"labels must be an integer tensor, got {getattr(labels, 'dtype', None)}")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels shape {tuple(labels.shape)} does not match logits [B, T] "
            f"{tuple(logits.shape[:2])}"
        )


def _check_label_range(labels: torch.Tensor, vocab_size: int) -> None:
    """Raise ValueError if any label lies outside ``[0, vocab_size)``."""
    if labels.numel() and (labels.min() < 0 or labels.max() >= vocab_size):
        raise ValueError(
            f"labels must lie in [0, {vocab_size}), got min {int(labels.min())} "
            f"and max {int(labels.max())}"
        )
