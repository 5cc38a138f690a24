"""DPO loss: hand-computed values, the ln 2 invariant, gradients and validation."""

from __future__ import annotations

import math

import pytest
import torch

from oreo_agents.losses import dpo_loss

F64 = torch.float64


def test_dpo_equals_ln2_when_policy_equals_reference():
    gen = torch.Generator().manual_seed(0)
    chosen = -torch.rand(6, generator=gen, dtype=F64) * 50
    rejected = -torch.rand(6, generator=gen, dtype=F64) * 50
    loss, metrics = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone())
    assert loss.item() == pytest.approx(math.log(2.0))
    assert metrics["rewards_margin"].item() == 0.0
    assert metrics["rewards_accuracy"].item() == 0.0  # ties do not count as correct


def test_dpo_hand_computed_loss_metrics_and_gradient():
    """beta = 0.5.

    pair 0: chosen ratio -1 - (-2) = 1, rejected ratio -3 - (-2) = -1 -> logit 0.5 * 2 = 1
            loss ln(1 + e^-1) = 0.3132617
    pair 1: chosen ratio -2 - (-1) = -1, rejected ratio 0 -> logit -0.5
            loss ln(1 + e^0.5) = 0.9740770
    mean 0.6436693; rewards chosen [0.5, -0.5], rejected [-0.5, 0], margins [1, -0.5]
    d loss / d policy_chosen_i = -(1/2) * beta * sigmoid(-logit_i)
    """
    policy_chosen = torch.tensor([-1.0, -2.0], dtype=F64, requires_grad=True)
    policy_rejected = torch.tensor([-3.0, -2.0], dtype=F64, requires_grad=True)
    ref_chosen = torch.tensor([-2.0, -1.0], dtype=F64)
    ref_rejected = torch.tensor([-2.0, -2.0], dtype=F64)
    loss, metrics = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta=0.5)
    assert loss.item() == pytest.approx(0.6436693, abs=1e-7)
    assert metrics["rewards_chosen"].item() == pytest.approx(0.0)
    assert metrics["rewards_rejected"].item() == pytest.approx(-0.25)
    assert metrics["rewards_margin"].item() == pytest.approx(0.25)
    assert metrics["rewards_accuracy"].item() == pytest.approx(0.5)
    loss.backward()
    logits = torch.tensor([1.0, -0.5], dtype=F64)
    expected = -0.5 * 0.5 * torch.sigmoid(-logits)
    torch.testing.assert_close(policy_chosen.grad, expected)
    torch.testing.assert_close(policy_rejected.grad, -expected)


def test_dpo_is_finite_for_extreme_margins():
    zero = torch.zeros(1, dtype=F64)
    loss, _ = dpo_loss(torch.tensor([-2000.0], dtype=F64), zero, zero, zero, beta=1.0)
    assert loss.item() == pytest.approx(2000.0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((torch.zeros(2), torch.zeros(3), torch.zeros(2), torch.zeros(2)), {}, "shape mismatch"),
        ((torch.zeros(2, 1),) * 4, {}, "1 dimensions"),
        ((torch.zeros(2, dtype=torch.long),) + (torch.zeros(2),) * 3, {}, "floating-point"),
        ((torch.zeros(2),) * 4, {"beta": 0.0}, "beta must be positive"),
    ],
)
def test_dpo_rejects_bad_inputs(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        dpo_loss(*args, **kwargs)
