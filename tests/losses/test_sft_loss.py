"""SFT loss and the log-probability helpers: hand-computed values and agreement with torch."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from oreo_agents.losses import sequence_logps, sft_loss, token_logps

F64 = torch.float64
LN3 = math.log(3.0)


def small_example():
    """V = 2; softmax([0, ln 3]) = [1/4, 3/4]. Position 0 is prompt (label -100, not scored).

    position 1: label 1 -> -ln(3/4) = 0.2876821 (argmax 1: correct)
    position 2: label 0 -> -ln(1/4) = 1.3862944 (argmax 1: wrong)
    loss = (0.2876821 + 1.3862944) / 2 = 0.8369882; accuracy 1/2
    """
    logits = torch.tensor([[[5.0, -5.0], [0.0, LN3], [0.0, LN3]]], dtype=F64, requires_grad=True)
    labels = torch.tensor([[-100, 1, 0]])
    mask = torch.tensor([[0, 1, 1]])
    return logits, labels, mask


def test_sft_loss_hand_computed():
    logits, labels, mask = small_example()
    loss, metrics = sft_loss(logits, labels, mask)
    assert loss.item() == pytest.approx(0.8369882, abs=1e-7)
    assert metrics["token_accuracy"].item() == 0.5
    assert metrics["n_tokens"].item() == 2


def test_sft_loss_equals_torch_cross_entropy_on_the_masked_positions():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 6, 11, generator=gen, dtype=F64, requires_grad=True)
    labels = torch.randint(0, 11, (3, 6), generator=gen)
    mask = torch.rand(3, 6, generator=gen) > 0.4
    loss, metrics = sft_loss(logits, labels, mask)
    (grad,) = torch.autograd.grad(loss, logits)

    ignored = torch.where(mask, labels, torch.full_like(labels, -100))
    expected = F.cross_entropy(logits.reshape(-1, 11), ignored.reshape(-1), ignore_index=-100)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(grad, expected_grad)
    assert metrics["n_tokens"].item() == mask.sum().item()


def test_sft_loss_without_targets_is_zero_and_backpropagates():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    loss, metrics = sft_loss(logits, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    loss.backward()
    assert loss.item() == 0.0 and metrics["n_tokens"].item() == 0
    assert torch.all(logits.grad == 0)


def test_token_and_sequence_logps_hand_computed():
    logits, labels, mask = small_example()
    expected = torch.tensor([[0.0, math.log(0.75), math.log(0.25)]], dtype=F64)
    torch.testing.assert_close(token_logps(logits, labels), expected)  # -100 -> 0
    torch.testing.assert_close(
        sequence_logps(logits, labels, mask),
        torch.tensor([math.log(0.75 * 0.25)], dtype=F64),
    )


def test_token_logps_matches_log_softmax_gather_in_value_and_gradient():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 13, generator=gen, dtype=F64, requires_grad=True)
    labels = torch.randint(0, 13, (2, 5), generator=gen)
    ours = token_logps(logits, labels)
    reference = logits.log_softmax(-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(ours, reference)
    weights = torch.randn(2, 5, generator=gen, dtype=F64)
    (grad,) = torch.autograd.grad((ours * weights).sum(), logits)
    (expected_grad,) = torch.autograd.grad((reference * weights).sum(), logits)
    torch.testing.assert_close(grad, expected_grad)


def test_token_logps_upcasts_bf16_logits():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 4, 17, generator=gen) * 4
    labels = torch.randint(0, 17, (2, 4), generator=gen)
    out = token_logps(logits.bfloat16(), labels)
    assert out.dtype == torch.float32
    exact = token_logps(logits.bfloat16().float(), labels)
    torch.testing.assert_close(out, exact)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: token_logps(torch.zeros(1, 2, 3), torch.zeros(1, 2)), "integer tensor"),
        (lambda: token_logps(torch.zeros(1, 2, 3), torch.zeros(1, 3, dtype=torch.long)), "shape"),
        (lambda: token_logps(torch.zeros(1, 2, 3), torch.tensor([[0, 3]])), r"\[0, 3\)"),
        (
            lambda: sft_loss(torch.zeros(1, 2, 3), torch.tensor([[0, -100]]), torch.ones(1, 2)),
            "0, 3",
        ),
        (
            lambda: sequence_logps(
                torch.zeros(1, 2, 3), torch.tensor([[0, -100]]), torch.ones(1, 2)
            ),
            "negative label",
        ),
        (lambda: sft_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long), None), "3 dim"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
