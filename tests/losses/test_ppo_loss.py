"""PPO's pure pieces by hand: the per-token KL reward, GAE (and its lambda-1 / zero-critic
invariant), RLOO's leave-one-out baseline, the clipped policy and value losses, reward
placement, and the rewards."""

from __future__ import annotations

import math

import pytest
import torch

from oreo_agents.algorithms.ppo_experience import place_rewards
from oreo_agents.data.episodes import Episode
from oreo_agents.data.tokenization import TokenizedEpisode
from oreo_agents.losses import (
    gae,
    kl_rewards,
    leave_one_out,
    ppo_policy_loss,
    ppo_value_loss,
    whiten,
)
from oreo_agents.online.rewards import dense, intermediate_results, reasoning_steps, sparse


def t(*rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_kl_rewards_by_hand():
    logps, ref = t([-1.0, -2.0, 0.0]), t([-1.5, -1.0, 0.0])
    scores, mask = t([0.0, 1.0, 0.0]), torch.tensor([[1, 1, 0]])
    rewards = kl_rewards(logps, ref, scores, mask, kl_coef=0.05)
    # -0.05 * (-1 + 1.5); 1 - 0.05 * (-2 + 1); nothing off the mask
    assert rewards.tolist()[0] == pytest.approx([-0.025, 1.05, 0.0])
    with pytest.raises(ValueError, match="outside the action mask"):
        kl_rewards(logps, ref, t([0.0, 0.0, 1.0]), mask, kl_coef=0.05)
    with pytest.raises(ValueError, match="kl_coef"):
        kl_rewards(logps, ref, scores, mask, kl_coef=-1)


def test_gae_by_hand_skips_context_tokens():
    # action tokens at 0, 2, 3; index 1 is an observation token whose numbers must not count
    rewards, values = t([0.0, 9.0, 0.0, 1.0]), t([0.5, 7.0, 0.6, 0.8])
    mask = torch.tensor([[1, 0, 1, 1]])
    adv, ret = gae(rewards * mask, values, mask, gamma=1.0, lam=0.5)
    # delta_3 = 1 - 0.8 = 0.2; A_3 = 0.2
    # delta_2 = 0 + 0.8 - 0.6 = 0.2; A_2 = 0.2 + 0.5 * 0.2 = 0.3
    # delta_0 = 0 + 0.6 - 0.5 = 0.1; A_0 = 0.1 + 0.5 * 0.3 = 0.25
    assert adv.tolist()[0] == pytest.approx([0.25, 0.0, 0.3, 0.2])
    assert ret.tolist()[0] == pytest.approx([0.75, 0.0, 0.9, 1.0])


def test_gae_with_lambda_1_and_a_zero_critic_is_the_reward_to_go():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(3, 7, generator=g)
    mask = torch.rand(3, 7, generator=g) > 0.3
    rewards = rewards * mask
    adv, ret = gae(rewards, torch.zeros(3, 7), mask, gamma=0.9, lam=1.0)
    for b in range(3):
        steps = [i for i in range(7) if mask[b, i]]
        for j, i in enumerate(steps):
            to_go = sum(0.9**k * rewards[b, s].item() for k, s in enumerate(steps[j:]))
            assert adv[b, i].item() == pytest.approx(to_go, abs=1e-5)
    assert torch.equal(adv, ret)


def test_clipped_policy_loss_by_hand():
    old = t([0.0, 0.0, 0.0])
    logps = t([math.log(1.5), math.log(0.5), math.log(0.5)]).requires_grad_()
    adv, mask = t([1.0, 1.0, -1.0]), torch.ones(1, 3, dtype=torch.bool)
    loss, metrics = ppo_policy_loss(logps, old, adv, mask, clip=0.2)
    # min(1.5, 1.2) = 1.2 (clipped); min(0.5, 0.8) = 0.5; min(-0.5, -0.8) = -0.8 (clipped)
    assert loss.item() == pytest.approx(-(1.2 + 0.5 - 0.8) / 3)
    assert metrics["clip_fraction"].item() == pytest.approx(2 / 3)
    assert metrics["ratio"].item() == pytest.approx((1.5 + 0.5 + 0.5) / 3)
    loss.backward()
    # only the unclipped token moves: d/dlogp of -(rho * A) / 3 = -rho / 3
    assert logps.grad.tolist()[0] == pytest.approx([0.0, -0.5 / 3, 0.0])


def test_policy_loss_at_ratio_1_clips_nothing():
    logps = torch.randn(2, 5)
    adv, mask = torch.randn(2, 5), torch.rand(2, 5) > 0.4
    loss, metrics = ppo_policy_loss(logps, logps.clone(), adv, mask)
    assert metrics["ratio"].item() == pytest.approx(1.0)
    assert metrics["clip_fraction"].item() == 0.0 and metrics["approx_kl"].item() == 0.0
    assert loss.item() == pytest.approx(-adv[mask].mean().item(), abs=1e-6)


def test_clipped_value_loss_by_hand():
    values, old, returns = t([1.0, 0.6]), t([0.5, 0.5]), t([1.5, 0.0])
    mask = torch.ones(1, 2, dtype=torch.bool)
    loss, metrics = ppo_value_loss(values, old, returns, mask, clip=0.2)
    # token 0: (1 - 1.5)^2 = 0.25 vs (0.7 - 1.5)^2 = 0.64 -> 0.64; token 1: 0.36 either way
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.36) / 2)
    assert metrics["value_clip_fraction"].item() == pytest.approx(0.5)
    plain, _ = ppo_value_loss(values, old, returns, mask, clip=None)
    assert plain.item() == pytest.approx(0.5 * (0.25 + 0.36) / 2)


def test_whiten_uses_only_masked_entries():
    x, mask = t([1.0, 3.0, 100.0]), torch.tensor([[1, 1, 0]])
    out = whiten(x, mask)
    s = math.sqrt(2.0)  # std of (1, 3) with Bessel's correction
    assert out.tolist()[0] == pytest.approx([-1 / s, 1 / s, 0.0], abs=1e-6)


def test_leave_one_out_baselines_each_sample_with_its_groups_others():
    returns = torch.tensor([1.0, 0.0, 0.0, 0.5, -0.5])
    adv = leave_one_out(returns, ["a", "a", "a", "b", "b"])
    # a: 1 - (0 + 0) / 2, 0 - (1 + 0) / 2 twice; b: 0.5 - (-0.5), -0.5 - 0.5
    assert adv.tolist() == pytest.approx([1.0, -0.5, -0.5, 1.0, -1.0])
    # a group all right (or all wrong) teaches nothing
    assert leave_one_out(torch.ones(3), [7, 7, 7]).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="one sample"):
        leave_one_out(returns, ["a", "a", "a", "b", "c"])
    with pytest.raises(ValueError, match="group labels"):
        leave_one_out(returns, ["a", "a"])


def test_place_rewards_puts_each_step_reward_at_its_last_action_token():
    # tokens: prompt p p | step a a | step b | observation o | step c c  (EOS last)
    ids = list(range(10))
    action = [0, 0, 1, 1, 1, 0, 1, 1, 0, 0]
    starts = [0, 0, 1, 0, 1, 0, 1, 0, 0, 0]
    ep = TokenizedEpisode(ids[:8], action[:8], starts[:8], 2, 1.0, "t")
    scores = place_rewards(ep, [0.1, 0.2, 1.0])
    # shifted: token k sits at index k - 1; ends of steps at tokens 3, 4 and 7
    assert scores == pytest.approx([0, 0, 0.1, 0.2, 0, 0, 1.0])
    more = place_rewards(ep, [0.1, 0.2, 0.3, 1.0])  # a reward beyond the steps goes to the end
    assert more == pytest.approx([0, 0, 0.1, 0.2, 0, 0, 1.3])


CHAIN_SOLUTION = "b=a+5=7+5=12\nd=b*2=12*2=24\n#### 24"


class Task:
    def __init__(self, solution):
        self.solution = solution


def episode(response, reward, env_id="oreo/Chain-v0"):
    return Episode(env_id, "0", "q", [{"action": response, "observation": ""}], reward, reward > 0)


def test_dense_reward_by_hand():
    assert intermediate_results(CHAIN_SOLUTION) == ["12", "24"]
    right = episode("b=a+5=7+5=12\nd=b*2=12*2=24\n#### 24", 1.0)
    assert reasoning_steps(right) == ["b=a+5=7+5=12\n", "d=b*2=12*2=24\n", "#### 24"]
    assert dense(right, Task(CHAIN_SOLUTION)) == pytest.approx([0.25, 0.25, 1.0])
    wrong_line = episode("b=a+5=7+5=12\nd=b*2=12*3=36\n#### 24", 1.0)
    assert dense(wrong_line, Task(CHAIN_SOLUTION), weight=1.0) == pytest.approx([0.5, 0, 1.0])
    repeats = episode("b=12\nb=12\n#### 5", 0.0)  # a result is credited once
    assert dense(repeats, Task(CHAIN_SOLUTION)) == pytest.approx([0.25, 0, 0])
    assert sparse(wrong_line) == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="reference solution"):
        dense(right, None)


def test_dense_reward_reads_gsm8k_calculator_annotations():
    gold = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    )
    assert intermediate_results(gold) == ["24", "72"]
    response = "In May she sold 48/2 = 24 clips.\nIn all 48 + 24 = 72.0\n#### 72"
    ep = episode(response, 1.0, env_id="oreo/GSM8K-v0")
    assert dense(ep, Task(gold)) == pytest.approx([0.25, 0.25, 1.0])
