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


def episode(ids, mask, reward, task="t"):
    from oreo_agents.data.tokenization import TokenizedEpisode

    flags = [bool(m) for m in mask]
    return TokenizedEpisode(list(ids), flags, [False] * len(ids), 1, reward, task)


def test_ranked_pairs_compare_where_the_histories_differ():
    """Hand-read: prompt 9, action [1 2], reply 7, action [3 4] / [5 4], reply, action [6 0].
    Action j is read before its closing token (its last position - 1). The first action is
    one history in both episodes, so the comparisons start at the second; the third is taken
    by the correct episode only, so it is not compared."""
    from oreo_agents.algorithms import get_algorithm
    from oreo_agents.data.tokenization import action_spans, ranked_pairs

    won = episode([9, 1, 2, 7, 3, 4, 7, 6, 0], [0, 1, 1, 0, 1, 1, 0, 1, 1], 1.0)
    lost = episode([9, 1, 2, 7, 5, 4, 8], [0, 1, 1, 0, 1, 1, 0], 0.0)
    assert action_spans(won.action_mask) == [(1, 2), (4, 5), (7, 8)]
    [pair] = ranked_pairs([won, lost])
    assert pair.won is won and pair.lost is lost and pair.reads == ((4, 4),)
    # the loss averages over the optimizer batch's comparisons, not its pairs
    pair3 = ranked_pairs([won, episode([9, 5, 2, 7, 5, 4, 8, 6, 0], won.action_mask, 0.0)])[0]
    assert pair3.reads == ((1, 1), (4, 4), (7, 7))
    assert get_algorithm("orm-rank").counts([pair, pair3]) == {"comparisons": 4}
    # a history that differs only in its closing token is read at one state: no comparison
    alike = episode([9, 1, 3], [0, 1, 1], 0.0)
    assert ranked_pairs([episode([9, 1, 2], [0, 1, 1], 1.0), alike]) == []
    # one task's pairs only, and none from a task of one outcome
    other = episode([9, 1, 5, 7], [0, 1, 1, 0], 0.0, task="u")
    assert [p.lost for p in ranked_pairs([won, lost, other])] == [lost]


def test_rank_loss_by_hand():
    from oreo_agents.losses import rank_loss

    won = torch.tensor([[1.0, 0.0], [2.0, 9.0]])
    lost = torch.tensor([[0.0, 0.0], [3.0, -9.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, metrics = rank_loss(won, lost, mask)
    # -log s(1), -log s(0), -log s(-1); the masked-out pair (margin 18) does not count
    softplus = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert loss.item() == pytest.approx((softplus(-1) + softplus(0) + softplus(1)) / 3, abs=1e-6)
    assert metrics["rank_accuracy"].item() == pytest.approx(1 / 3)  # a tie is not a win
    assert int(metrics["n_comparisons"]) == 3
    assert rank_loss(won, lost, mask, normalizer=6.0)[0].item() == pytest.approx(loss.item() / 2)
    assert rank_loss(won, lost, torch.zeros_like(mask))[0].item() == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        rank_loss(won, lost[:1], mask)


def test_train_orm_rank_orders_each_tasks_episodes(tiny_model_dir, mixed_data, tmp_path):
    """`oreo train --algo orm-rank`: before training the zero head ties every pair; after it,
    the correct episode of (nearly) every task scores above the wrong one where acting reads
    it, and the policy is untouched."""
    from safetensors.torch import load_file

    from oreo_agents.data.batches import load_training_episodes
    from oreo_agents.data.tokenization import ranked_pairs, tokenize_episodes
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.models.value import ValueModel

    out = tmp_path / "rank"
    run = oreo_in_process(
        "train", "--algo", "orm-rank", "--data", str(mixed_data), "--model", str(tiny_model_dir),
        "--out", str(out), "--batch-size", "4", "--micro-batch-size", "2", "--epochs", "10",
        "--set", "value_lr=1e-3", "--set", "value_head_lr=1e-2", "--report-to", "none",
        "--save-minutes", "0",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "rank_loss" in run.stdout and "pairs" in run.stdout

    tokenizer = load_tokenizer(str(tiny_model_dir))
    pairs = ranked_pairs(tokenize_episodes(load_training_episodes(str(mixed_data)), tokenizer))
    assert len(pairs) == 8

    def right(folder) -> int:
        model = ValueModel.from_pretrained(folder).eval()
        n = 0
        with torch.no_grad():
            for p in pairs:
                w, lo = (model(torch.tensor([x.input_ids]), None, None)[0] for x in (p.won, p.lost))
                n += sum(bool(w[a] > lo[b]) for a, b in p.reads) == len(p.reads)
        return n

    assert right(tiny_model_dir) == 0  # a zero head: every pair tied
    assert right(out / "value") >= 7
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = load_file(str(out / "policy" / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
