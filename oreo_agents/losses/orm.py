"""Outcome reward model loss (Cobbe et al. 2021, as Havrilla et al. 2024 use it): at every
token of a sampled solution, predict whether its final answer is correct."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oreo_agents.losses._checks import as_bool_mask, check_float


def orm_loss(
    logits: torch.Tensor,
    rewards: torch.Tensor,
    loss_mask: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Binary cross-entropy of per-token correctness logits against the episode's outcome.

    ``-1/N sum_{(b,t) in mask} [y_b log s(z_bt) + (1 - y_b) log(1 - s(z_bt))]`` with
    ``y_b = clamp(rewards[b], 0, 1)`` (the verifier's label) over the N masked tokens.

    Args:
        logits: ``[B, T]`` the model's logit of "correct" after reading token t.
        rewards: ``[B]`` episode rewards (1 correct, 0 wrong; clamped into [0, 1]).
        loss_mask: ``[B, T]`` bool or 0/1; 1 on the solution's (action) tokens.
        normalizer: The N to divide by (None: this batch's masked tokens); a micro-batch's
            share of its optimizer batch's.

    Returns:
        ``(loss, metrics)``: ``orm_accuracy`` (the sign of the logit agrees with the label, over
        the masked tokens) and ``n_tokens``. A batch with no masked token gives 0.

    Raises:
        ValueError: On wrong shapes or dtypes.
    """
    check_float("logits", logits, 2)
    check_float("rewards", rewards, 1)
    if rewards.shape[0] != logits.shape[0]:
        raise ValueError(f"rewards has {rewards.shape[0]} rows, logits {logits.shape[0]}")
    mask = as_bool_mask("loss_mask", loss_mask, logits.shape)
    target = rewards.clamp(0, 1)[:, None].expand_as(logits).float()
    z, y = logits.float()[mask], target[mask]
    n = mask.sum()
    if n == 0:
        zero = logits.sum() * 0.0
        return zero, {"orm_accuracy": zero.detach(), "n_tokens": n}
    total = F.binary_cross_entropy_with_logits(z, y, reduction="sum")
    loss = total / (n if normalizer is None else normalizer)
    accuracy = ((z > 0).float() == (y > 0.5).float()).float().mean()
    return loss, {"orm_accuracy": accuracy.detach(), "n_tokens": n}


def rank_loss(
    won: torch.Tensor,
    lost: torch.Tensor,
    mask: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Bradley-Terry loss of a task's correct episode against an incorrect one, compared where
    both have taken the same number of actions.

    ``1/N sum_{(b,j) in mask} softplus(lost_bj - won_bj)``, i.e. ``-log s(won - lost)``, over the
    N masked comparisons. Only differences count, so the model learns to order one task's
    histories, not which tasks are hard (what a per-episode label also rewards).

    Args:
        won: ``[B, M]`` the model's score of the correct episode at comparison j.
        lost: ``[B, M]`` the incorrect episode's score at the same comparison.
        mask: ``[B, M]`` bool or 0/1; 1 where comparison j exists.
        normalizer: The N to divide by (None: this batch's comparisons); a micro-batch's
            share of its optimizer batch's.

    Returns:
        ``(loss, metrics)``: ``rank_accuracy`` (the correct episode scores higher, over the
        masked comparisons) and ``n_comparisons``. A batch with no comparison gives 0.

    Raises:
        ValueError: On wrong shapes or dtypes.
    """
    check_float("won", won, 2)
    check_float("lost", lost, 2)
    if won.shape != lost.shape:
        raise ValueError(f"won {tuple(won.shape)} and lost {tuple(lost.shape)} differ in shape")
    m = as_bool_mask("mask", mask, won.shape)
    margin = (won.float() - lost.float())[m]
    n = m.sum()
    if n == 0:
        zero = (won.sum() + lost.sum()) * 0.0
        return zero, {"rank_accuracy": zero.detach(), "n_comparisons": n}
    loss = F.softplus(-margin).sum() / (n if normalizer is None else normalizer)
    return loss, {"rank_accuracy": (margin > 0).float().mean().detach(), "n_comparisons": n}
