"""OREO value and policy losses (Wang et al. 2024, arXiv 2412.16145, Sec. 4).

OREO enforces the telescoped soft Bellman equation (Eq. 7) of the KL-regularised, undiscounted MDP
with a terminal reward R:

    V*(s_t) = R - beta * sum_{i >= t} log pi*(a_i|s_i) / pi_ref(a_i|s_i)

A value model V_phi and the policy pi_theta are both fitted to it by least squares on logged
episodes, at one of three granularities:

* ``"token"``: every action token is an action and every state before one carries a residual
  (Eq. 8 and Eq. 9).
* ``"step"``: an action is a whole reasoning step (a run of action tokens); residuals are taken at
  step starts (Sec. 4.2).
* ``"response"``: one residual at the first state for the whole response (Eq. 10).

All tensors are aligned by action position: ``policy_logps[b, t]`` is log pi(a_t|s_t) of the token
at position t and ``values[b, t]`` is V(s_t), the value of the state just before that token. Tokens
with ``action_mask == 0`` (prompt, environment observations, padding) are context, not actions: the
sums over later actions skip them, so a multi-turn episode is one chain of actions across its
observation gaps. The alpha * KL(pi || pi_ref) regulariser of Eq. 9 needs full logits, so it is a
separate function, :func:`kl_penalty`, that the trainer adds.
"""

from __future__ import annotations

import torch

from oreo_agents.losses._checks import as_bool_mask, check_float, check_same_shape

LEVELS = ("token", "step", "response")


def suffix_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked reverse cumulative sum along the last dimension.

    ``out[..., t] = sum_{i >= t, mask[..., i]} x[..., i]``. Unmasked positions add nothing but still
    hold the sum of the masked entries after them, which is how the OREO sums bridge observation
    tokens. Entries of `x` at unmasked positions are ignored, even if they are inf or NaN.

    Args:
        x: Float tensor, e.g. per-token log-ratios ``[B, T]``.
        mask: Bool or 0/1 tensor of the same shape; 1 where `x` counts.

    Returns:
        Tensor of the same shape and dtype as `x`. Differentiable with respect to `x`.

    Raises:
        ValueError: If `x` is not floating point or `mask` has another shape or non-0/1 values.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError("suffix_sum: x must be a floating-point tensor")
    mask = as_bool_mask("mask", mask, x.shape)
    # torch.where rather than x * mask, so that padding holding -inf does not turn into NaN.
    masked = torch.where(mask, x, torch.zeros_like(x))
    return masked.flip(-1).cumsum(-1).flip(-1)


def oreo_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    action_mask: torch.Tensor,
    *,
    beta: float = 0.03,
    level: str = "token",
    step_starts: torch.Tensor | None = None,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """OREO value loss (Eq. 8) and policy loss (Eq. 9, or Eq. 10 at response level).

    With ``r_i = log pi_theta(a_i|s_i) - log pi_ref(a_i|s_i)`` and ``sg`` the stop-gradient, the
    token-level residuals at each action token t are

        value:  V_phi(s_t) - R + beta * sg[sum_{i >= t} r_i]                           (Eq. 8)
        policy: sg[V_phi(s_t)] - R + beta * r_t + sg[beta * sum_{i > t} r_i]            (Eq. 9)

    At step level the states are the step starts and ``r_t`` becomes the sum of r_i over the whole
    step (with gradient), the stop-gradient part the sum over later steps. At response level the
    only state is the first action token and the policy term is the whole response's sum with
    gradient (Eq. 10). Each loss is the mean squared residual over a sequence's states, then the
    mean over the sequences that have at least one action token; sequences without actions are
    left out of the batch mean (and a batch without any gives a loss of 0).

    The value loss gives no gradient to the policy log-probs; the policy loss gives none to the
    values. Both are returned so that one backward pass can train both models.

    Args:
        policy_logps: ``[B, T]`` log pi_theta(a_t|s_t) of the token at each position.
        ref_logps: ``[B, T]`` log pi_ref(a_t|s_t) from the frozen reference model.
        values: ``[B, T]`` V_phi(s_t), the value of the state just before the token at t.
        rewards: ``[B]`` terminal reward R of each episode (undiscounted).
        action_mask: ``[B, T]`` bool or 0/1; 1 on tokens the agent generated.
        beta: KL coefficient of the soft Bellman equation (paper: 0.03).
        level: ``"token"``, ``"step"`` or ``"response"``.
        step_starts: ``[B, T]`` bool or 0/1, required for ``level="step"`` and rejected otherwise.
            Marks the first action token of each step; a step runs until the next mark or the next
            non-action token, so every run of action tokens must begin with a mark.
        normalizer: The number of sequences to divide the sum of per-sequence means by (None:
            this batch's sequences with states); a micro-batch's share of its optimizer batch's.

    Returns:
        ``(value_loss, policy_loss, metrics)``: two scalar tensors and a dict of detached scalar
        tensors (residual, value and log-ratio means, state and token counts).

    Raises:
        ValueError: On wrong shapes or dtypes, an unknown level, a non-positive beta, or step
            starts that are missing, misplaced or given for another level.
    """
    mask, starts = _check_inputs(
        policy_logps, ref_logps, values, rewards, action_mask, beta, level, step_starts
    )
    segment_ids, states = _segments(mask, level, starts)

    log_ratio = torch.where(mask, policy_logps - ref_logps, torch.zeros_like(policy_logps))
    # Both losses see the suffix sums without gradient: the value loss by Eq. 8, the policy loss
    # because only the current action's term is differentiated (Eq. 9).
    later_and_now = suffix_sum(log_ratio, mask).detach()
    segment = _segment_sums(log_ratio, segment_ids)
    reward = rewards.to(values.dtype).unsqueeze(-1)

    later = later_and_now - segment.detach()

    value_residual = values - reward + beta * later_and_now
    policy_residual = values.detach() - reward + beta * segment + beta * later
    value_loss = _mean_square_over_states(value_residual, states, normalizer)
    policy_loss = _mean_square_over_states(policy_residual, states, normalizer)

    metrics = _metrics(value_residual, policy_residual, values, log_ratio, reward, mask, states)
    return value_loss, policy_loss, metrics


@torch.no_grad()
def _metrics(value_residual, policy_residual, values, log_ratio, reward, mask, states):
    """Detached scalar diagnostics of `oreo_loss` (means over states, tokens or sequences)."""
    n_tokens = mask.sum()
    has_actions = mask.any(-1)
    return {
        "value_residual_mean": _masked_mean(value_residual, states),
        "policy_residual_mean": _masked_mean(policy_residual, states),
        "values_mean": _masked_mean(values, states),
        "log_ratio_mean": log_ratio.sum() / n_tokens.clamp(min=1),
        "response_log_ratio_mean": _masked_mean(log_ratio.sum(-1), has_actions),
        "rewards_mean": _masked_mean(reward.squeeze(-1), has_actions),
        "n_states": states.sum(),
        "n_action_tokens": n_tokens,
    }


def kl_penalty(
    policy_logits: torch.Tensor,
    ref_logits: torch.Tensor,
    action_mask: torch.Tensor,
    normalizer: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Exact reverse KL(pi_theta || pi_ref) at action positions, the L_reg term of Eq. 9.

    ``KL_t = sum_v pi(v|s_t) * (log pi(v|s_t) - log pi_ref(v|s_t))`` over the full vocabulary,
    averaged over each sequence's action tokens, then over the sequences that have any (the paper's
    ``1/T sum_t KL[pi(.|s_t) || pi_ref(.|s_t)]``). The trainer adds ``alpha * kl`` to the policy
    loss (paper, App. A: alpha = 0.01 at token, 0.1 at step, 0.3 at response level).

    Only action rows of the logits are normalised, which keeps the ``[N, V]`` temporaries small when
    prompts and observations are long. They are normalised in at least float32 because bf16
    log-softmax is too coarse for a KL that is often below 1e-3. `ref_logits` are treated as
    constants (the reference is frozen), so gradient flows into `policy_logits` only.

    Args:
        policy_logits: ``[B, T, V]`` policy logits; row t is the distribution of the token at t.
        ref_logits: ``[B, T, V]`` reference-model logits, aligned the same way.
        action_mask: ``[B, T]`` bool or 0/1; 1 on action tokens.
        normalizer: The number of sequences to divide by (None: this batch's with actions).

    Returns:
        ``(kl, metrics)``: a scalar tensor and a dict of detached scalars (mean per-token KL,
        policy entropy at action positions, number of action tokens).

    Raises:
        ValueError: On wrong dimensions, dtypes or shapes.
    """
    check_float("policy_logits", policy_logits, 3)
    check_float("ref_logits", ref_logits, 3)
    check_same_shape(policy_logits=policy_logits, ref_logits=ref_logits)
    mask = as_bool_mask("action_mask", action_mask, policy_logits.shape[:2])

    dtype = torch.promote_types(policy_logits.dtype, torch.float32)
    logp = torch.log_softmax(policy_logits[mask].to(dtype), dim=-1)
    ref_logp = torch.log_softmax(ref_logits.detach()[mask].to(dtype), dim=-1)
    token_kl = (logp.exp() * (logp - ref_logp)).sum(-1)

    rows = mask.nonzero(as_tuple=True)[0]
    per_sequence = token_kl.new_zeros(mask.shape[0]).index_add(0, rows, token_kl)
    n_per_sequence = mask.sum(-1)
    has_actions = n_per_sequence > 0
    per_sequence = per_sequence / n_per_sequence.clamp(min=1)
    n = has_actions.sum().clamp(min=1) if normalizer is None else normalizer
    kl = per_sequence.sum() / n

    with torch.no_grad():
        n_tokens = mask.sum()
        entropy = -(logp.exp() * logp).sum(-1)
        metrics = {
            "kl_token_mean": token_kl.sum() / n_tokens.clamp(min=1),
            "entropy_mean": entropy.sum() / n_tokens.clamp(min=1),
            "n_action_tokens": n_tokens,
        }
    return kl, metrics


def _check_inputs(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    values: torch.Tensor,
    rewards: torch.Tensor,
    action_mask: torch.Tensor,
    beta: float,
    level: str,
    step_starts: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Validate the arguments of `oreo_loss`; return the action mask and step starts as bool."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")
    if not beta > 0:
        raise ValueError(f"beta must be positive, got {beta}")
    check_float("policy_logps", policy_logps, 2)
    check_float("ref_logps", ref_logps, 2)
    check_float("values", values, 2)
    check_same_shape(policy_logps=policy_logps, ref_logps=ref_logps, values=values)
    batch = tuple(policy_logps.shape[:1])
    if not isinstance(rewards, torch.Tensor) or tuple(rewards.shape) != batch:
        got = tuple(rewards.shape) if isinstance(rewards, torch.Tensor) else type(rewards).__name__
        raise ValueError(f"rewards must be a tensor of shape {batch}, got {got}")
    if rewards.is_complex():
        raise ValueError(f"rewards must be real, got dtype {rewards.dtype}")
    mask = as_bool_mask("action_mask", action_mask, policy_logps.shape)

    if level != "step":
        if step_starts is not None:
            raise ValueError(f"step_starts is only used with level='step', not level={level!r}")
        return mask, None
    if step_starts is None:
        raise ValueError("level='step' needs step_starts ([B, T], True at each step's first token)")
    starts = as_bool_mask("step_starts", step_starts, policy_logps.shape)
    if (starts & ~mask).any():
        raise ValueError("step_starts marks a token whose action_mask is 0; steps start on actions")
    previous = torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    if (mask & ~previous & ~starts).any():
        raise ValueError(
            "a run of action tokens does not begin with a step start; mark the first token of "
            "every step (a step cannot span an observation gap)"
        )
    return mask, starts


def _segments(
    mask: torch.Tensor, level: str, starts: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Number the actions of each sequence and mark the states that carry a residual.

    Returns ``(segment_ids, states)``, both ``[B, T]``: `segment_ids` is 1, 2, ... for the action
    (token, step or whole response) each action token belongs to and 0 on non-action tokens;
    `states` is True where an action begins.
    """
    if level == "token":
        ids, states = mask.long().cumsum(-1), mask
    elif level == "step":
        ids, states = starts.long().cumsum(-1), starts
    else:
        ids = torch.ones_like(mask, dtype=torch.long)
        states = mask & (mask.long().cumsum(-1) == 1)
    return torch.where(mask, ids, torch.zeros_like(ids)), states


def _segment_sums(x: torch.Tensor, segment_ids: torch.Tensor) -> torch.Tensor:
    """Sum `x` within each segment and give every position its segment's total (differentiable).

    `x` must be 0 wherever `segment_ids` is 0; bucket 0 then only collects zeros.
    """
    totals = x.new_zeros(x.shape[0], x.shape[1] + 1).scatter_add(1, segment_ids, x)
    return totals.gather(1, segment_ids)


def _mean_square_over_states(residual: torch.Tensor, states: torch.Tensor,
                             normalizer: torch.Tensor | float | None) -> torch.Tensor:  # fmt: skip
    """Mean squared residual per sequence over its states, then the sum over sequences divided
    by ``normalizer`` (None: the number of sequences with states, i.e. their mean)."""
    squared = torch.where(states, residual, torch.zeros_like(residual)).square()
    n_states = states.sum(-1)
    per_sequence = squared.sum(-1) / n_states.clamp(min=1)
    has_states = n_states > 0
    n = has_states.sum().clamp(min=1) if normalizer is None else normalizer
    return per_sequence.sum() / n


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `x` over `mask` (0 when the mask is empty); for metrics only."""
    return torch.where(mask, x, torch.zeros_like(x)).sum() / mask.sum().clamp(min=1)
