"""The outcome reward model: its loss by hand, and `oreo train --algo orm` training only the
classifier (OUT/value), which `oreo rollout --value` then uses to rerank samples."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

from oreo_agents.losses import orm_loss


def test_orm_loss_by_hand():
    logits = torch.tensor([[0.0, math.log(3.0), 5.0], [math.log(3.0), 0.0, 0.0]])
    rewards = torch.tensor([1.0, 0.0])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    loss, metrics = orm_loss(logits, rewards, mask)
    # -log(1/2), -log(3/4) for the correct episode; -log(1 - 3/4) for the wrong one
    expected = (math.log(2) + math.log(4 / 3) + math.log(4)) / 3
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert metrics["orm_accuracy"].item() == pytest.approx(1 / 3)  # only log(3) > 0 for y=1
    assert int(metrics["n_tokens"]) == 3
    zero, _ = orm_loss(logits, rewards, torch.zeros_like(mask))
    assert zero.item() == 0.0
    with pytest.raises(ValueError, match="rows"):
        orm_loss(logits, rewards[:1], mask)


def test_train_orm_learns_the_classifier_and_leaves_the_policy(
    tiny_model_dir, mixed_data, tmp_path
):
    from safetensors.torch import load_file

    from oreo_agents.models.value import ValueModel

    out = tmp_path / "orm"
    cmd = [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "orm", "--data", str(mixed_data),
        "--model", str(tiny_model_dir), "--out", str(out), "--batch-size", "4",
        "--micro-batch-size", "2", "--max-steps", "3", "--set", "value_lr=1e-3",
        "--report-to", "none", "--save-minutes", "0",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "orm_loss" in run.stdout
    value = ValueModel.from_pretrained(out / "value")
    assert value.head.weight.abs().sum() > 0  # the zero-initialised head has learned
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(out / "policy" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)  # the policy is not trained
