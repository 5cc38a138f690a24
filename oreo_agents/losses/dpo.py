"""Direct Preference Optimization (Rafailov et al. 2023, arXiv 2305.18290), an OREO baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oreo_agents.losses._checks import check_float, check_same_shape


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    *,
    beta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPO loss, Eq. 7 of Rafailov et al. (2023).

        L = -mean log sigmoid(beta * [(log pi(y_w) - log pi_ref(y_w))
                                      - (log pi(y_l) - log pi_ref(y_l))])

    The implicit reward of a response is ``beta * (log pi(y) - log pi_ref(y))``. When the policy
    equals the reference the loss is ln 2.

    Args:
        policy_chosen_logps: ``[B]`` summed log pi_theta of each chosen (preferred) response.
        policy_rejected_logps: ``[B]`` summed log pi_theta of each rejected response.
        ref_chosen_logps: ``[B]`` summed log pi_ref of each chosen response.
        ref_rejected_logps: ``[B]`` summed log pi_ref of each rejected response.
        beta: Strength of the implicit KL constraint (DPO and OREO papers: 0.1).

    Returns:
        ``(loss, metrics)``: a scalar tensor and a dict of detached scalars: mean chosen and
        rejected rewards, mean margin, and reward accuracy (fraction of pairs whose chosen reward
        is higher).

    Raises:
        ValueError: On tensors that are not 1-D floating point of one shape, or a non-positive beta.
    """
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    inputs = {
        "policy_chosen_logps": policy_chosen_logps,
        "policy_rejected_logps": policy_rejected_logps,
        "ref_chosen_logps": ref_chosen_logps,
        "ref_rejected_logps": ref_rejected_logps,
    }
    for name, tensor in inputs.items():
        check_float(name, tensor, 1)
    check_same_shape(**inputs)

    chosen_log_ratio = policy_chosen_logps - ref_chosen_logps
    rejected_log_ratio = policy_rejected_logps - ref_rejected_logps
    logits = beta * (chosen_log_ratio - rejected_log_ratio)
    # logsigmoid is stable for large |logits|, where log(sigmoid(x)) would underflow to -inf.
    loss = -F.logsigmoid(logits).mean()

    with torch.no_grad():
        chosen_rewards = beta * chosen_log_ratio
        rejected_rewards = beta * rejected_log_ratio
        metrics = {
            "rewards_chosen": chosen_rewards.mean(),
            "rewards_rejected": rejected_rewards.mean(),
            "rewards_margin": (chosen_rewards - rejected_rewards).mean(),
            "rewards_accuracy": (chosen_rewards > rejected_rewards).float().mean(),
        }
    return loss, metrics
