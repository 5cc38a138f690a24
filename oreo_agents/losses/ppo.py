"""PPO's pieces for language models (Schulman et al. 2017; per-token KL reward as in Ziegler et al.
2019 and InstructGPT, Ouyang et al. 2022; the setting Havrilla et al. 2024 compare): the
per-token reward, generalized advantage estimation, and the clipped policy and value losses.

Every tensor is ``[B, T]`` in the shifted alignment of `oreo_agents.algorithms.base`: index t
holds the action token ``input_ids[:, t + 1]``, its log-prob, and the value of the state before
it. Only masked (action) positions are time steps; prompt and observation tokens in between are
the environment's part of a transition, so GAE steps from one action token to the next.
"""

from __future__ import annotations

from typing import Any

import torch

from oreo_agents.losses._checks import as_bool_mask, check_float, check_same_shape


def _checked(mask: torch.Tensor, **tensors: torch.Tensor) -> torch.Tensor:
    for name, x in tensors.items():
        check_float(name, x, 2)
    check_same_shape(**tensors)
    return as_bool_mask("mask", mask, next(iter(tensors.values())).shape)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor, normalizer: Any = None) -> torch.Tensor:
    """The mean of ``x`` over ``mask``; with ``normalizer``, the sum divided by it instead."""
    n = mask.sum().clamp(min=1) if normalizer is None else normalizer
    return torch.where(mask, x, torch.zeros_like(x)).sum() / n


def kl_rewards(
    logps: torch.Tensor,
    ref_logps: torch.Tensor,
    scores: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> torch.Tensor:
    """Per-token rewards ``r_t = scores_t - kl_coef * (log pi(a_t) - log pi_ref(a_t))`` on action
    tokens, 0 elsewhere (the KL-penalised reward of Ziegler et al. 2019; Havrilla et al. 2024 use
    kl_coef 0.05). ``scores`` holds the task's rewards where they are earned (the outcome on the
    last action token; a dense reward's bonuses at the ends of steps).

    Args:
        logps: ``[B, T]`` log-probs of the actions under the sampling policy.
        ref_logps: ``[B, T]`` their log-probs under the reference.
        scores: ``[B, T]`` task rewards placed on tokens.
        mask: ``[B, T]`` bool or 0/1; 1 at action tokens.
        kl_coef: The KL penalty's weight (>= 0).

    Returns:
        ``[B, T]`` rewards.

    Raises:
        ValueError: On wrong shapes or dtypes, a negative kl_coef, or a score outside the mask.
    """
    mask = _checked(mask, logps=logps, ref_logps=ref_logps, scores=scores)
    if kl_coef < 0:
        raise ValueError(f"kl_coef must be >= 0, got {kl_coef}")
    if (scores[~mask] != 0).any():
        raise ValueError("scores must be 0 outside the action mask")
    rewards = scores - kl_coef * (logps - ref_logps)
    return torch.where(mask, rewards, torch.zeros_like(rewards))


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, Eq. 16) over each row's action
    tokens: ``delta_t = r_t + gamma * V(s_t') - V(s_t)`` and ``A_t = delta_t + gamma * lam *
    A_t'``, where t' is the next action token (none after the last: the episode ended, V = 0).

    With lam = 1 and a zero critic, ``A_t`` is the reward-to-go ``sum_{u >= t} gamma^(u-t) r_u``.

    Args:
        rewards: ``[B, T]`` per-token rewards (`kl_rewards`).
        values: ``[B, T]`` the critic's V of the state before each token.
        mask: ``[B, T]`` bool or 0/1; 1 at action tokens (the time steps).
        gamma: Discount (1: none, as for episodic LM tasks).
        lam: GAE's lambda (0.95; InstructGPT-style PPO).

    Returns:
        ``(advantages, returns)``, each ``[B, T]`` and 0 outside the mask; ``returns =
        advantages + values`` is the critic's target.

    Raises:
        ValueError: On wrong shapes or dtypes, or gamma / lam outside [0, 1].
    """
    mask = _checked(mask, rewards=rewards, values=values)
    for name, x in (("gamma", gamma), ("lam", lam)):
        if not 0 <= x <= 1:
            raise ValueError(f"{name} must lie in [0, 1], got {x}")
    rewards, values = rewards.detach().float(), values.detach().float()
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_advantage = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        a = delta + gamma * lam * next_advantage
        advantages[:, t] = torch.where(m, a, torch.zeros_like(a))
        next_advantage = torch.where(m, a, next_advantage)
        next_value = torch.where(m, values[:, t], next_value)
    returns = torch.where(mask, advantages + values, torch.zeros_like(values))
    return advantages, returns


def leave_one_out(returns: torch.Tensor, groups: list[object]) -> torch.Tensor:
    """RLOO's advantages (Kool et al. 2019; Ahmadian et al. 2024, "Back to Basics", arXiv
    2402.14740): each sample's return minus the mean return of the other samples of its group
    (the same task), ``A_i = R_i - mean_{j != i, g(j) = g(i)} R_j``, a baseline without a
    critic.

    Args:
        returns: ``[N]`` one return per sample (its KL-penalised episode return).
        groups: ``N`` hashable labels; samples with the same label baseline each other.

    Returns:
        ``[N]`` advantages.

    Raises:
        ValueError: On a shape mismatch, or a group of one sample (it has no baseline).
    """
    check_float("returns", returns, 1)
    if len(groups) != returns.shape[0]:
        raise ValueError(f"{len(groups)} group labels for {returns.shape[0]} returns")
    index: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        index.setdefault(g, []).append(i)
    returns = returns.detach().float()
    out = torch.zeros_like(returns)
    for g, members in index.items():
        if len(members) < 2:
            raise ValueError(f"group {g!r} has one sample: a leave-one-out baseline needs two")
        r = returns[members]
        out[members] = r - (r.sum() - r) / (len(members) - 1)
    return out


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``x`` shifted and scaled to mean 0 and standard deviation 1 over the masked entries (0
    elsewhere): the advantage normalisation of most PPO implementations."""
    mask = as_bool_mask("mask", mask, x.shape)
    picked = x[mask]
    if picked.numel() < 2:
        return torch.where(mask, x - picked.mean() if picked.numel() else x, torch.zeros_like(x))
    out = (x - picked.mean()) / (picked.std() + eps)
    return torch.where(mask, out, torch.zeros_like(out))


def ppo_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float = 0.2,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate (Schulman et al. 2017, Eq. 7), negated and averaged over action
    tokens: ``-mean_t min(rho_t A_t, clip(rho_t, 1 - eps, 1 + eps) A_t)``, ``rho_t = exp(log
    pi(a_t) - log pi_old(a_t))``.

    Args:
        logps: ``[B, T]`` log-probs under the policy being trained (differentiable).
        old_logps: ``[B, T]`` log-probs under the policy that sampled (fixed).
        advantages: ``[B, T]`` advantage estimates (fixed).
        mask: ``[B, T]`` bool or 0/1; 1 at action tokens.
        clip: epsilon (0.2).
        normalizer: The token count to divide by (None: this batch's action tokens); a
            micro-batch's share of its optimizer batch's.

    Returns:
        ``(loss, metrics)``: ``ratio`` (mean rho), ``clip_fraction`` (tokens whose objective is
        the clipped one), ``approx_kl`` (``mean (rho - 1) - log rho``, an estimate of
        KL(old || new)). A batch with no action token gives 0.

    Raises:
        ValueError: On wrong shapes or dtypes, or clip <= 0.
    """
    mask = _checked(mask, logps=logps, old_logps=old_logps, advantages=advantages)
    if clip <= 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    log_ratio = torch.where(mask, logps - old_logps.detach(), torch.zeros_like(logps))
    ratio = log_ratio.exp()
    advantages = advantages.detach()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1 - clip, 1 + clip) * advantages
    loss = -_masked_mean(torch.minimum(unclipped, clipped), mask, normalizer)
    with torch.no_grad():
        metrics = {
            "ratio": _masked_mean(ratio, mask),
            "clip_fraction": _masked_mean((clipped < unclipped).float(), mask),
            "approx_kl": _masked_mean(ratio - 1 - log_ratio, mask),
        }
    return loss, metrics


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float | None = 0.2,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The critic's clipped squared error (as in OpenAI baselines' PPO2):
    ``1/2 mean_t max((V_t - R_t)^2, (V_old_t + clip(V_t - V_old_t, -c, c) - R_t)^2)``.

    Args:
        values: ``[B, T]`` the critic's values (differentiable).
        old_values: ``[B, T]`` its values when the samples were scored (fixed).
        returns: ``[B, T]`` targets (`gae`'s returns, fixed).
        mask: ``[B, T]`` bool or 0/1; 1 at action tokens.
        clip: c; None for the plain squared error.
        normalizer: As in `ppo_policy_loss`.

    Returns:
        ``(loss, metrics)``: ``value_clip_fraction`` and ``value_error`` (mean absolute error of
        the unclipped values).

    Raises:
        ValueError: On wrong shapes or dtypes, or clip <= 0.
    """
    mask = _checked(mask, values=values, old_values=old_values, returns=returns)
    if clip is not None and clip <= 0:
        raise ValueError(f"clip must be > 0 (or None), got {clip}")
    returns, old_values = returns.detach(), old_values.detach()
    error = (values - returns) ** 2
    if clip is None:
        worst, clipped_share = error, torch.zeros_like(error)
    else:
        moved = old_values + (values - old_values).clamp(-clip, clip)
        clipped_error = (moved - returns) ** 2
        worst = torch.maximum(error, clipped_error)
        clipped_share = (clipped_error > error).float()
    loss = 0.5 * _masked_mean(worst, mask, normalizer)
    with torch.no_grad():
        metrics = {
            "value_clip_fraction": _masked_mean(clipped_share, mask),
            "value_error": _masked_mean((values - returns).abs(), mask),
        }
    return loss, metrics
