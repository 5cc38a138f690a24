"""Kahneman-Tversky Optimization loss (Ethayarajh et al. 2024, arXiv 2402.01306), an OREO baseline.

KTO learns from unpaired responses labelled desirable or undesirable. Each response's implicit
reward ``r = log pi_theta(y|x) - log pi_ref(y|x)`` is compared with a reference point z0, a
batch estimate of KL(pi_theta || pi_ref) that is not back-propagated through.
"""

from __future__ import annotations

import torch

from oreo_agents.losses._checks import as_bool_mask, check_float, check_same_shape


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    labels: torch.Tensor,
    kl_ref_point: torch.Tensor | float,
    *,
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KTO loss, ``L_KTO = E[lambda_y - v(x, y)]`` of Ethayarajh et al. (2024).

    With ``r = log pi_theta(y|x) - log pi_ref(y|x)`` and the reference point ``z0``:

        desirable y:   lambda_D * (1 - sigmoid(beta * (r - z0)))
        undesirable y: lambda_U * (1 - sigmoid(beta * (z0 - r)))

    averaged over the batch. At ``pi_theta = pi_ref`` and ``z0 = 0`` each term is half its weight.
    The paper suggests weights with ``lambda_D * n_D / (lambda_U * n_U)`` in ``[1, 4/3]``.

    Args:
        policy_logps: ``[B]`` summed log pi_theta of each response.
        ref_logps: ``[B]`` summed log pi_ref of each response.
        labels: ``[B]`` bool or 0/1; True for a desirable response.
        kl_ref_point: Scalar z0, e.g. from :func:`kto_reference_point`. Detached here as well,
            because the paper does not back-propagate through it.
        beta: Risk-aversion / KL strength (paper default 0.1).
        desirable_weight: lambda_D (paper default 1.0).
        undesirable_weight: lambda_U (paper default 1.0).

    Returns:
        ``(loss, metrics)``: a scalar tensor and a dict of detached scalars: mean implicit reward
        ``beta * r`` of desirable and of undesirable responses (0 when there are none), their
        counts, and z0.

    Raises:
        ValueError: On wrong shapes or dtypes, a non-scalar z0, a non-positive beta or negative
            weights.
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if desirable_weight < 0 or undesirable_weight < 0:
        raise ValueError(
            f"weights must be >= 0, got desirable_weight={desirable_weight}, "
            f"undesirable_weight={undesirable_weight}"
        )
    check_float("policy_logps", policy_logps, 1)
    check_float("ref_logps", ref_logps, 1)
    check_same_shape(policy_logps=policy_logps, ref_logps=ref_logps)
    desirable = as_bool_mask("labels", labels, policy_logps.shape)
    z0 = torch.as_tensor(kl_ref_point, dtype=policy_logps.dtype, device=policy_logps.device)
    if z0.dim() != 0:
        raise ValueError(f"kl_ref_point must be a scalar, got shape {tuple(z0.shape)}")
    z0 = z0.detach()

    log_ratio = policy_logps - ref_logps
    desirable_losses = desirable_weight * (1 - torch.sigmoid(beta * (log_ratio - z0)))
    undesirable_losses = undesirable_weight * (1 - torch.sigmoid(beta * (z0 - log_ratio)))
    loss = torch.where(desirable, desirable_losses, undesirable_losses).mean()

    with torch.no_grad():
        rewards = beta * log_ratio
        n_desirable = desirable.sum()
        n_undesirable = (~desirable).sum()
        metrics = {
            "rewards_desirable": torch.where(desirable, rewards, 0.0).sum()
            / n_desirable.clamp(min=1),
            "rewards_undesirable": torch.where(desirable, 0.0, rewards).sum()
            / n_undesirable.clamp(min=1),
            "n_desirable": n_desirable,
            "n_undesirable": n_undesirable,
            "kl_ref_point": z0,
        }
    return loss, metrics


def kto_reference_point(
    policy_logps_mismatched: torch.Tensor, ref_logps_mismatched: torch.Tensor
) -> torch.Tensor:
    """KTO reference point z0: the batch estimate of KL(pi_theta || pi_ref), clamped at 0.

    ``z0 = max(0, mean_j (log pi_theta(y'_j|x_j) - log pi_ref(y'_j|x_j)))``, where each y'_j is a
    response paired with a prompt it was not written for (e.g. the micro-batch's responses shifted
    by one), so that the estimate does not reflect what the examples themselves teach.

    Args:
        policy_logps_mismatched: ``[B]`` summed log pi_theta of the mismatched responses.
        ref_logps_mismatched: ``[B]`` summed log pi_ref of the same.

    Returns:
        A detached 0-dim tensor.

    Raises:
        ValueError: On tensors that are not 1-D floating point of one shape.
    """
    check_float("policy_logps_mismatched", policy_logps_mismatched, 1)
    check_float("ref_logps_mismatched", ref_logps_mismatched, 1)
    check_same_shape(
        policy_logps_mismatched=policy_logps_mismatched, ref_logps_mismatched=ref_logps_mismatched
    )
    return (policy_logps_mismatched - ref_logps_mismatched).mean().clamp(min=0).detach()
