"""Log-probabilities of labels under logits: the helpers every algorithm's step uses.

Alignment convention: the caller shifts labels, so ``logits[b, t]`` is the distribution that
predicts ``labels[b, t]`` (for a causal LM, ``logits[:, :-1]`` with ``input_ids[:, 1:]``).
"""

from __future__ import annotations

import torch

from oreo_agents.losses._checks import as_bool_mask, check_label_range, check_logits_labels


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
    check_logits_labels(logits, labels)
    check_label_range(labels[labels >= 0], logits.shape[-1])
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
    check_logits_labels(logits, labels)
    mask = as_bool_mask("mask", mask, labels.shape)
    if (labels[mask] < 0).any():
        raise ValueError("labels inside mask must be token ids >= 0, found a negative label")
    logps = token_logps(logits, labels)
    return torch.where(mask, logps, torch.zeros_like(logps)).sum(-1)
