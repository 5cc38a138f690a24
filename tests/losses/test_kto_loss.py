"""KTO loss and reference point: hand-computed values, invariants and validation."""

from __future__ import annotations

import pytest
import torch

from oreo_agents.losses import kto_loss, kto_reference_point

F64 = torch.float64


def test_kto_at_the_reference_with_zero_kl_gives_half_the_weights():
    logps = torch.tensor([-3.0, -7.0, -1.0], dtype=F64)
    labels = torch.tensor([True, False, True])
    loss, _ = kto_loss(
        logps, logps.clone(), labels, 0.0, desirable_weight=1.0, undesirable_weight=1.5
    )
    # Every sigmoid is sigmoid(0) = 1/2: (0.5 + 0.75 + 0.5) / 3
    assert loss.item() == pytest.approx(1.75 / 3)


def test_kto_hand_computed_loss_metrics_and_gradient():
    """beta = 0.5, z0 = 0.5, lambda_D = 1, lambda_U = 2.

    desirable r = 2.5:    1 * (1 - sigmoid(0.5 * (2.5 - 0.5))) = sigmoid(-1) = 0.2689414
    undesirable r = -3.5: 2 * (1 - sigmoid(0.5 * (0.5 + 3.5))) = 2 sigmoid(-2) = 0.2384058
    mean 0.2536736; rewards beta * r: desirable 1.25, undesirable -1.75
    d loss / d logp = 1/2 * lambda * beta * s (s - 1) * (+1 desirable, -1 undesirable),
    with s the sigmoid in the term: desirable -1/4 s(1-s) at s = sigmoid(1),
    undesirable +1/2 s(1-s) at s = sigmoid(2).
    """
    policy = torch.tensor([-1.0, -4.5], dtype=F64, requires_grad=True)
    ref = torch.tensor([-3.5, -1.0], dtype=F64)
    labels = torch.tensor([1, 0])
    z0 = torch.tensor(0.5, dtype=F64, requires_grad=True)
    loss, metrics = kto_loss(
        policy, ref, labels, z0, beta=0.5, desirable_weight=1.0, undesirable_weight=2.0
    )
    assert loss.item() == pytest.approx(0.2536736, abs=1e-7)
    assert metrics["rewards_desirable"].item() == pytest.approx(1.25)
    assert metrics["rewards_undesirable"].item() == pytest.approx(-1.75)
    assert metrics["n_desirable"].item() == 1 and metrics["n_undesirable"].item() == 1
    assert metrics["kl_ref_point"].item() == 0.5

    grad_policy, grad_z0 = torch.autograd.grad(loss, [policy, z0], allow_unused=True)
    s1, s2 = (
        torch.sigmoid(torch.tensor(1.0, dtype=F64)),
        torch.sigmoid(torch.tensor(2.0, dtype=F64)),
    )
    expected = torch.stack([-0.25 * s1 * (1 - s1), 0.5 * s2 * (1 - s2)])
    torch.testing.assert_close(grad_policy, expected)
    assert grad_z0 is None  # z0 is a constant of the loss


def test_kto_reference_point_is_the_clamped_detached_mean_log_ratio():
    policy = torch.tensor([-1.0, -2.0], requires_grad=True)
    # log-ratios [1, 0] -> mean 0.5
    z0 = kto_reference_point(policy, torch.tensor([-2.0, -2.0]))
    assert z0.item() == pytest.approx(0.5)
    assert z0.dim() == 0 and not z0.requires_grad
    # log-ratios [-1, -2] -> mean -1.5, clamped to 0
    assert kto_reference_point(torch.tensor([-3.0, -4.0]), torch.tensor([-2.0, -2.0])).item() == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": torch.ones(3, dtype=torch.bool)}, "labels must have shape"),
        ({"labels": torch.tensor([2, 0])}, "only 0 and 1"),
        ({"kl_ref_point": torch.zeros(2)}, "must be a scalar"),
        ({"ref_logps": torch.zeros(3)}, "shape mismatch"),
        ({"undesirable_weight": -1.0}, "weights must be >= 0"),
        ({"beta": -0.1}, "beta must be positive"),
    ],
)
def test_kto_rejects_bad_inputs(kwargs, message):
    args = {
        "policy_logps": torch.zeros(2),
        "ref_logps": torch.zeros(2),
        "labels": torch.tensor([True, False]),
        "kl_ref_point": torch.tensor(0.0),
    }
    with pytest.raises(ValueError, match=message):
        kto_loss(**{**args, **kwargs})


def test_kto_reference_point_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape mismatch"):
        kto_reference_point(torch.zeros(2), torch.zeros(3))
