"""OREO losses: hand-computed values, invariants and gradients (token, step, response level)."""

from __future__ import annotations

import math

import pytest
import torch

from oreo_agents.losses import kl_penalty, oreo_loss, suffix_sum

F64 = torch.float64


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=F64)


# ---------------------------------------------------------------- suffix_sum


def test_suffix_sum_hand_computed_and_bridges_unmasked_positions():
    x = t([[1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[1, 0, 1, 1]])
    # masked x = [1, 0, 3, 4]; suffixes from each t: [8, 7, 7, 4]
    torch.testing.assert_close(suffix_sum(x, mask), t([[8.0, 7.0, 7.0, 4.0]]))


def test_suffix_sum_ignores_non_finite_unmasked_entries_and_has_the_right_gradient():
    x = t([[1.0, -math.inf, 3.0, 4.0]]).requires_grad_()
    mask = torch.tensor([[True, False, True, True]])
    out = suffix_sum(x, mask)
    torch.testing.assert_close(out, t([[8.0, 7.0, 7.0, 4.0]]))
    out.sum().backward()
    # x_i appears in the suffix of every t <= i when masked: i + 1 times; never when unmasked.
    torch.testing.assert_close(x.grad, t([[1.0, 0.0, 3.0, 4.0]]))


def test_suffix_sum_rejects_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        suffix_sum(t([[1.0, 2.0]]), torch.ones(1, 3))
    with pytest.raises(ValueError, match="floating-point"):
        suffix_sum(torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2))


# ---------------------------------------------------------------- hand-computed losses


def token_level_example():
    """B=1, T=4; position 0 is prompt. beta = 0.5, R = 1.

    log-ratios r = [-, 0.5, -1.0, 0.0]; suffix sums from t = 1, 2, 3: [-0.5, -1.0, 0.0]
    values V = [-, 0.2, 0.6, 0.9]
    residuals V - R + beta * suffix:
        t=1: 0.2 - 1 - 0.25 = -1.05
        t=2: 0.6 - 1 - 0.50 = -0.90
        t=3: 0.9 - 1 + 0.00 = -0.10
    loss = (1.1025 + 0.81 + 0.01) / 3 = 0.6408333...
    """
    policy = t([[-3.0, -1.0, -2.0, -0.5]]).requires_grad_()
    ref = t([[-7.0, -1.5, -1.0, -0.5]])
    values = t([[9.0, 0.2, 0.6, 0.9]]).requires_grad_()
    rewards = torch.tensor([1.0], dtype=F64)
    mask = torch.tensor([[0, 1, 1, 1]])
    return policy, ref, values, rewards, mask


def test_token_level_hand_computed_values_and_gradients():
    policy, ref, values, rewards, mask = token_level_example()
    value_loss, policy_loss, metrics = oreo_loss(policy, ref, values, rewards, mask, beta=0.5)
    expected = (1.05**2 + 0.9**2 + 0.1**2) / 3
    # Value and policy residuals are equal in value; they differ only in where gradient flows.
    assert value_loss.item() == pytest.approx(expected)
    assert policy_loss.item() == pytest.approx(expected)
    assert metrics["n_states"].item() == 3
    assert metrics["value_residual_mean"].item() == pytest.approx((-1.05 - 0.9 - 0.1) / 3)
    assert metrics["log_ratio_mean"].item() == pytest.approx(-0.5 / 3)

    # d policy_loss / d logp_t = 2/3 * residual_t * beta: only the current token's term.
    (grad_policy,) = torch.autograd.grad(policy_loss, policy, retain_graph=True)
    torch.testing.assert_close(grad_policy, t([[0.0, -0.35, -0.3, -0.1 / 3]]))
    # d value_loss / d V_t = 2/3 * residual_t.
    (grad_values,) = torch.autograd.grad(value_loss, values, retain_graph=True)
    torch.testing.assert_close(grad_values, t([[0.0, -0.7, -0.6, -0.2 / 3]]))


def test_value_loss_gives_no_gradient_to_the_policy_and_policy_loss_none_to_values():
    policy, ref, values, rewards, mask = token_level_example()
    for level in ("token", "response"):
        value_loss, policy_loss, _ = oreo_loss(policy, ref, values, rewards, mask, level=level)
        assert torch.autograd.grad(value_loss, policy, allow_unused=True)[0] is None
        assert torch.autograd.grad(policy_loss, values, allow_unused=True)[0] is None


def test_step_level_hand_computed_values_and_gradients():
    """B=1, T=5; steps {1, 2} and {3, 4}. beta = 0.5, R = 1.

    r = [-, 0.5, -1.0, 0.25, 0.25]; step sums: A = -0.5, B = 0.5; suffix at t=1: 0.0, at t=3: 0.5
    residuals: t=1: 0.3 - 1 + 0.5 * 0.0 = -0.70;  t=3: 0.7 - 1 + 0.5 * 0.5 = -0.05
    loss = (0.49 + 0.0025) / 2 = 0.24625
    d policy_loss / d logp_i = 2/2 * residual(step of i) * beta: -0.35 on step A, -0.025 on B.
    """
    policy = t([[0.0, -1.0, -2.0, -0.75, -0.25]]).requires_grad_()
    ref = t([[0.0, -1.5, -1.0, -1.0, -0.5]])
    values = t([[5.0, 0.3, 5.0, 0.7, 5.0]]).requires_grad_()
    mask = torch.tensor([[0, 1, 1, 1, 1]])
    starts = torch.tensor([[0, 1, 0, 1, 0]], dtype=torch.bool)
    value_loss, policy_loss, metrics = oreo_loss(
        policy,
        ref,
        values,
        torch.tensor([1.0], dtype=F64),
        mask,
        beta=0.5,
        level="step",
        step_starts=starts,
    )
    assert value_loss.item() == pytest.approx(0.24625)
    assert policy_loss.item() == pytest.approx(0.24625)
    assert metrics["n_states"].item() == 2
    assert metrics["values_mean"].item() == pytest.approx(0.5)
    (grad_policy,) = torch.autograd.grad(policy_loss, policy, retain_graph=True)
    torch.testing.assert_close(grad_policy, t([[0.0, -0.35, -0.35, -0.025, -0.025]]))
    (grad_values,) = torch.autograd.grad(value_loss, values)
    torch.testing.assert_close(grad_values, t([[0.0, -0.7, 0.0, -0.05, 0.0]]))


def test_response_level_hand_computed_values_and_gradients():
    """B=2, beta = 0.5; each sequence has one residual at its first action token.

    seq 0: as in token_level_example, residual 0.2 - 1 + 0.5 * (-0.5) = -1.05
    seq 1: actions at 0, 1 (right padding), r = [0.5, 0.5], V = -0.4, R = 0:
           residual -0.4 - 0 + 0.5 * 1.0 = 0.1
    loss = (1.1025 + 0.01) / 2 = 0.55625
    d policy_loss / d logp: seq 0 tokens 1/2 * 2 * (-1.05) * 0.5 = -0.525, seq 1 tokens 0.05
    """
    policy = t([[-3.0, -1.0, -2.0, -0.5], [-1.0, -1.0, 0.0, 0.0]]).requires_grad_()
    ref = t([[-7.0, -1.5, -1.0, -0.5], [-1.5, -1.5, 0.0, 0.0]])
    values = t([[9.0, 0.2, 0.6, 0.9], [-0.4, 3.0, 3.0, 3.0]])
    rewards = torch.tensor([1.0, 0.0], dtype=F64)
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 0, 0]])
    value_loss, policy_loss, metrics = oreo_loss(
        policy, ref, values, rewards, mask, beta=0.5, level="response"
    )
    assert value_loss.item() == pytest.approx(0.55625)
    assert policy_loss.item() == pytest.approx(0.55625)
    assert metrics["n_states"].item() == 2
    assert metrics["response_log_ratio_mean"].item() == pytest.approx((-0.5 + 1.0) / 2)
    (grad_policy,) = torch.autograd.grad(policy_loss, policy)
    expected = t([[0.0, -0.525, -0.525, -0.525], [0.05, 0.05, 0.0, 0.0]])
    torch.testing.assert_close(grad_policy, expected)


def test_sequences_without_actions_are_left_out_of_the_batch_mean():
    policy, ref, values, rewards, mask = token_level_example()

    def pad(x: torch.Tensor, fill: float) -> torch.Tensor:
        return torch.cat([x.detach(), torch.full_like(x[:1], fill)])

    value_loss, policy_loss, metrics = oreo_loss(
        pad(policy, 0.0),
        pad(ref, 0.0),
        pad(values, 0.0),
        torch.tensor([1.0, 0.0], dtype=F64),
        torch.cat([mask, torch.zeros_like(mask)]),
        beta=0.5,
    )
    expected = (1.05**2 + 0.9**2 + 0.1**2) / 3
    assert value_loss.item() == pytest.approx(expected)
    assert policy_loss.item() == pytest.approx(expected)
    assert metrics["rewards_mean"].item() == 1.0


def test_a_batch_without_any_action_gives_zero_loss_that_backpropagates():
    policy = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    values = torch.zeros(2, 3, dtype=F64, requires_grad=True)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for level in ("token", "response"):
        value_loss, policy_loss, metrics = oreo_loss(
            policy, torch.zeros(2, 3, dtype=F64), values, torch.ones(2), mask, level=level
        )
        assert value_loss.item() == 0.0 and policy_loss.item() == 0.0
        (value_loss + policy_loss).backward()
        assert metrics["n_states"].item() == 0
    assert torch.all(policy.grad == 0) and torch.all(values.grad == 0)


# ---------------------------------------------------------------- invariants


def random_episode_batch(seed: int = 0, batch: int = 3, length: int = 12):
    """Random log-probs and masks with prompt tokens, observation gaps and padding."""
    gen = torch.Generator().manual_seed(seed)
    policy = -torch.rand(batch, length, generator=gen, dtype=F64) * 3
    ref = -torch.rand(batch, length, generator=gen, dtype=F64) * 3
    mask = torch.zeros(batch, length, dtype=torch.bool)
    mask[0, 2:5] = mask[0, 7:11] = True  # two agent turns around an observation
    mask[1, 1:length] = True  # one long response
    mask[2, 3:4] = mask[2, 6:8] = True  # three short turns, right padding
    mask[2, 9] = True
    rewards = torch.tensor([1.0, 0.0, 1.0], dtype=F64)
    return policy, ref, mask, rewards


def run_starts(mask: torch.Tensor) -> torch.Tensor:
    """True at the first token of every run of action tokens."""
    previous = torch.nn.functional.pad(mask[:, :-1], (1, 0), value=False)
    return mask & ~previous


@pytest.mark.parametrize("level", ["token", "step", "response"])
def test_residuals_vanish_for_a_consistent_policy_value_pair(level):
    beta = 0.03
    policy, ref, mask, rewards = random_episode_batch()
    # V(s_t) = R - beta * sum_{i >= t} r_i is the fixed point of Eq. 7 at every state.
    values = rewards[:, None] - beta * suffix_sum(policy - ref, mask)
    starts = run_starts(mask)
    starts[1, 6] = True  # split the long response into two steps
    value_loss, policy_loss, metrics = oreo_loss(
        policy,
        ref,
        values,
        rewards,
        mask,
        beta=beta,
        level=level,
        step_starts=starts if level == "step" else None,
    )
    assert value_loss.item() < 1e-20 and policy_loss.item() < 1e-20
    assert abs(metrics["value_residual_mean"].item()) < 1e-12
    assert abs(metrics["policy_residual_mean"].item()) < 1e-12


def losses_and_grads(policy, ref, values, rewards, mask, **kwargs):
    policy = policy.clone().requires_grad_()
    values = values.clone().requires_grad_()
    value_loss, policy_loss, _ = oreo_loss(policy, ref, values, rewards, mask, **kwargs)
    (grad_policy,) = torch.autograd.grad(policy_loss, policy)
    (grad_values,) = torch.autograd.grad(value_loss, values)
    return value_loss, policy_loss, grad_policy, grad_values


def test_token_level_equals_step_level_when_every_token_is_a_step():
    policy, ref, mask, rewards = random_episode_batch(seed=1)
    values = torch.rand(policy.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    token = losses_and_grads(policy, ref, values, rewards, mask, level="token")
    step = losses_and_grads(policy, ref, values, rewards, mask, level="step", step_starts=mask)
    for a, b in zip(token, step, strict=True):
        torch.testing.assert_close(a, b)


def test_response_level_equals_step_level_when_the_response_is_one_step():
    policy, ref, _, rewards = random_episode_batch(seed=3)
    mask = torch.zeros_like(policy, dtype=torch.bool)
    mask[0, 2:9] = mask[1, 0:12] = mask[2, 5:7] = True  # one contiguous response each
    values = torch.rand(policy.shape, generator=torch.Generator().manual_seed(4), dtype=F64)
    response = losses_and_grads(policy, ref, values, rewards, mask, level="response")
    step = losses_and_grads(
        policy, ref, values, rewards, mask, level="step", step_starts=run_starts(mask)
    )
    for a, b in zip(response, step, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("level", ["token", "step", "response"])
def test_observation_gaps_are_bridged(level):
    """Inserting observation tokens (mask 0, junk values) between turns changes nothing."""
    compact_policy = t([[-1.0, -0.5, -2.0, -0.25]])
    compact_ref = t([[-1.5, -0.5, -1.0, -1.0]])
    compact_values = t([[0.1, 0.4, 0.8, 0.2]])
    compact_mask = torch.ones(1, 4, dtype=torch.bool)
    compact_starts = torch.tensor([[True, False, True, False]])
    # Same two turns with a 3-token observation between them; junk must not leak through.
    gap = [math.nan, -math.inf, 7.0]
    policy = t([[-1.0, -0.5, *gap, -2.0, -0.25]])
    ref = t([[-1.5, -0.5, *gap, -1.0, -1.0]])
    values = t([[0.1, 0.4, *gap, 0.8, 0.2]])
    mask = torch.tensor([[True, True, False, False, False, True, True]])
    starts = torch.tensor([[True, False, False, False, False, True, False]])
    rewards = torch.tensor([1.0], dtype=F64)
    step = level == "step"
    compact = losses_and_grads(
        compact_policy,
        compact_ref,
        compact_values,
        rewards,
        compact_mask,
        beta=0.5,
        level=level,
        step_starts=compact_starts if step else None,
    )
    gapped = losses_and_grads(
        policy,
        ref,
        values,
        rewards,
        mask,
        beta=0.5,
        level=level,
        step_starts=starts if step else None,
    )
    torch.testing.assert_close(gapped[0], compact[0])
    torch.testing.assert_close(gapped[1], compact[1])
    keep = mask[0]
    torch.testing.assert_close(gapped[2][:, keep], compact[2])
    torch.testing.assert_close(gapped[3][:, keep], compact[3])
    assert torch.all(gapped[2][:, ~keep] == 0) and torch.all(gapped[3][:, ~keep] == 0)


def test_token_level_gap_hand_computed():
    """Turns [r=0.5] | observation | [r=-1.0]: the first state's sum reaches across the gap.

    beta = 1, R = 1, V = [0.0, -, 0.5]: residuals 0 - 1 + (0.5 - 1.0) = -1.5 and 0.5 - 1 - 1 = -1.5
    loss = (2.25 + 2.25) / 2 = 2.25
    """
    value_loss, _, _ = oreo_loss(
        t([[-0.5, 0.0, -2.0]]),
        t([[-1.0, 0.0, -1.0]]),
        t([[0.0, 4.0, 0.5]]),
        torch.tensor([1.0]),
        torch.tensor([[1, 0, 1]]),
        beta=1.0,
    )
    assert value_loss.item() == pytest.approx(2.25)


# ---------------------------------------------------------------- validation


def valid_args():
    policy, ref, mask, rewards = random_episode_batch()
    return dict(
        policy_logps=policy,
        ref_logps=ref,
        values=torch.zeros_like(policy),
        rewards=rewards,
        action_mask=mask,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(ref_logps=torch.zeros(3, 11, dtype=F64)), "shape mismatch"),
        (dict(values=torch.zeros(3, 12, 1, dtype=F64)), "values must have 2 dimensions"),
        (dict(rewards=torch.zeros(4)), "rewards must be a tensor of shape"),
        (dict(action_mask=torch.zeros(3, 11)), "action_mask must have shape"),
        (dict(action_mask=torch.full((3, 12), 2)), "only 0 and 1"),
        (dict(policy_logps=torch.zeros(3, 12, dtype=torch.long)), "floating-point"),
        (dict(level="x"), "level must be one of"),
        (dict(level="step"), "needs step_starts"),
        (dict(step_starts=torch.ones(3, 12, dtype=torch.bool)), "only used with level='step'"),
        (dict(beta=0.0), "beta must be positive"),
    ],
)
def test_bad_inputs_raise_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        oreo_loss(**{**valid_args(), **change})


def test_step_starts_must_begin_every_run_and_sit_on_actions():
    args = valid_args()
    mask = args["action_mask"]
    off_action = run_starts(mask).clone()
    off_action[0, 0] = True
    with pytest.raises(ValueError, match="action_mask is 0"):
        oreo_loss(**args, level="step", step_starts=off_action)
    missing = run_starts(mask).clone()
    missing[0, 7] = False  # the second turn of sequence 0 has no start
    with pytest.raises(ValueError, match="does not begin with a step start"):
        oreo_loss(**args, level="step", step_starts=missing)


# ---------------------------------------------------------------- kl_penalty


def test_kl_penalty_hand_computed():
    """V = 2. p = softmax([0, 0]) = [1/2, 1/2], q = softmax([0, ln 3]) = [1/4, 3/4].

    KL(p || q) = 1/2 ln 2 + 1/2 ln(2/3) = 1/2 ln(4/3).
    seq 0: actions at both positions, KL 0 and 1/2 ln(4/3) -> mean 1/4 ln(4/3)
    seq 1: action only at position 1 (position 0 junk, ignored) -> 1/2 ln(4/3)
    seq 2: no actions -> left out.   kl = (1/4 + 1/2) / 2 * ln(4/3) = 3/8 ln(4/3)
    """
    ln3 = math.log(3.0)
    policy = torch.tensor(
        [[[0.0, 0.0], [0.0, 0.0]], [[50.0, -50.0], [0.0, 0.0]], [[1.0, 2.0], [3.0, 4.0]]],
        dtype=F64,
        requires_grad=True,
    )
    ref = torch.tensor(
        [[[0.0, 0.0], [0.0, ln3]], [[-50.0, 50.0], [0.0, ln3]], [[0.0, 0.0], [0.0, 0.0]]],
        dtype=F64,
        requires_grad=True,
    )
    mask = torch.tensor([[1, 1], [0, 1], [0, 0]])
    kl, metrics = kl_penalty(policy, ref, mask)
    assert kl.item() == pytest.approx(3 / 8 * math.log(4 / 3))
    assert metrics["n_action_tokens"].item() == 3
    assert metrics["kl_token_mean"].item() == pytest.approx(math.log(4 / 3) / 3)
    assert metrics["entropy_mean"].item() == pytest.approx(math.log(2.0))
    kl.backward()
    assert ref.grad is None  # the reference is frozen
    assert torch.all(policy.grad[2] == 0) and torch.all(policy.grad[1, 0] == 0)


def test_kl_penalty_is_zero_for_equal_logits_and_matches_a_direct_computation():
    gen = torch.Generator().manual_seed(0)
    policy = torch.randn(2, 5, 7, generator=gen, dtype=F64)
    ref = torch.randn(2, 5, 7, generator=gen, dtype=F64)
    mask = torch.tensor([[0, 1, 1, 0, 1], [1, 1, 1, 1, 0]])

    same, _ = kl_penalty(policy, policy.clone(), mask)
    assert abs(same.item()) < 1e-12

    kl, _ = kl_penalty(policy, ref, mask)
    logp, logq = policy.log_softmax(-1), ref.log_softmax(-1)
    per_token = (logp.exp() * (logp - logq)).sum(-1)
    direct = ((per_token * mask).sum(-1) / mask.sum(-1)).mean()
    assert kl.item() > 0
    assert kl.item() == pytest.approx(direct.item())

    bf16, _ = kl_penalty(policy.bfloat16(), ref.bfloat16(), mask)
    assert bf16.dtype == torch.float32
    assert bf16.item() == pytest.approx(direct.item(), rel=0.05)


def test_kl_penalty_rejects_bad_inputs():
    logits = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="shape mismatch"):
        kl_penalty(logits, torch.zeros(1, 2, 4), torch.ones(1, 2))
    with pytest.raises(ValueError, match="3 dimensions"):
        kl_penalty(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match="action_mask must have shape"):
        kl_penalty(logits, logits, torch.ones(1, 3))
