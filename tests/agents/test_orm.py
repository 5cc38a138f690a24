"""The outcome reward model: its loss by hand, and `oreo train --algo orm` training only the
classifier (OUT/value), which `oreo rollout --value` then uses to rerank samples."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from conftest import oreo_in_process
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


def train_orm(model, data, out, *, steps, lr):
    cmd = [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "orm", "--data", str(data),
        "--model", str(model), "--out", str(out), "--batch-size", "4", "--micro-batch-size", "2",
        "--max-steps", str(steps), "--set", f"value_lr={lr}", "--report-to", "none",
        "--save-minutes", "0",
    ]  # fmt: skip
    return oreo_in_process(*cmd[3:])


def test_train_orm_learns_the_classifier_and_leaves_the_policy(
    tiny_model_dir, mixed_data, tmp_path
):
    from safetensors.torch import load_file

    from oreo_agents.models.value import ValueModel

    out = tmp_path / "orm"
    run = train_orm(tiny_model_dir, mixed_data, out, steps=3, lr=1e-3)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "orm_loss" in run.stdout
    value = ValueModel.from_pretrained(out / "value")
    assert value.head.weight.abs().sum() > 0  # the zero-initialised head has learned
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(out / "policy" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)  # the policy is not trained


def test_rollout_reports_rerank_at_k_beside_maj_and_value(tiny_model_dir, mixed_data, tmp_path):
    """The ORM as ``oreo rollout --reranker``: every sample is scored, rerank@k follows the
    scores, and it sits beside value@k (here the same folder as the value model) and maj@k."""
    import json

    from oreo_agents.evaluation.metrics import curves

    orm = tmp_path / "orm"
    assert train_orm(tiny_model_dir, mixed_data, orm, steps=2, lr=1e-2).returncode == 0
    report_path = tmp_path / "report.json"
    cmd = [
        sys.executable, "-m", "oreo_cli", "rollout", "--env", "oreo/GSMSymbolic-v0", "-o",
        "size=6", "--policy", str(tiny_model_dir), "--strategy", "best-of-k", "--k", "4",
        "--value", str(orm / "value"), "--reranker", str(orm / "value"), "--tasks", "3",
        "--max-new-tokens", "8", "--out", str(report_path),
    ]  # fmt: skip
    run = oreo_in_process(*cmd[3:], env={"COLUMNS": "200"})
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rerank@4" in run.stdout and "maj@4" in run.stdout
    report = json.loads(report_path.read_text())
    assert report["reranker"] == str(orm / "value")
    scores = [s["orm"] for r in report["records"] for s in r["samples"]]
    assert len(scores) == 12 and len(set(scores)) > 1  # the model scored each sample
    assert [s["orm"] for r in report["records"] for s in r["samples"]] == [
        s["value"] for r in report["records"] for s in r["samples"]
    ]  # the same folder scores the same states the same way, as value and as reranker
    assert report["rerank_at_k"] == curves(report["records"], answers=True)["rerank_at_k"]
    assert report["rerank_at_k"]["4"] == report["value_at_k"]["4"]


def test_orm_in_the_logprob_form_learns_its_weight(tiny_model_dir, mixed_data, tmp_path):
    """``--set value_form=logprob``: the classifier reads the backbone's log-probabilities of
    the action tokens too; its weight, started at 0, moves, and the folder loads in that form."""
    from oreo_agents.models.value import ValueModel

    out = tmp_path / "orm"
    args = [
        "train", "--algo", "orm", "--data", str(mixed_data), "--model", str(tiny_model_dir),
        "--out", str(out), "--max-steps", "3", "--batch-size", "4", "--micro-batch-size", "4",
        "--set", "value_lr=1e-3", "--set", "value_head_lr=1e-2", "--report-to", "none",
    ]  # fmt: skip
    run = oreo_in_process(*args, "--set", "value_form=logprob")
    assert run.returncode == 0, run.stdout + run.stderr
    value = ValueModel.from_pretrained(out / "value")
    assert value.form == "logprob" and value.head.logprob_weight.abs() > 0
    bad = oreo_in_process(*args, "--out", str(tmp_path / "bad"), "--set", "value_form=mean")
    assert bad.returncode != 0 and "value_form must be one of" in bad.stdout + bad.stderr
