"""The CUDA paths a GPU user takes, on a byte-level BPE chat model with two EOS ids: every
algorithm trains in bf16 (the default on a GPU) and saves loadable checkpoints, fp32 training
on the GPU follows the CPU's loss curve, online PPO collects and scores on the GPU, the value
model scores the same on both devices, and `oreo rollout` searches with a value model on the GPU.

Marked ``gpu``: skipped on a machine without CUDA (CI has none). Run by hand on a GPU machine:
``python -m pytest -m gpu tests/gpu``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
CPU_ONLY = {**ENV, "CUDA_VISIBLE_DEVICES": ""}
MATH = "oreo/GSMSymbolic-v0"


def oreo(*args, env=ENV, timeout=600):
    run = subprocess.run(
        [sys.executable, "-m", "oreo_cli", *map(str, args)],
        capture_output=True, text=True, env=env, timeout=timeout,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return run


def train(model, data, out, algo, *extra, env=ENV):
    value_lr = ["--set", "value_lr=1e-3"] if algo.startswith("oreo") else []
    return oreo(
        "train", "--algo", algo, "--data", data, "--model", model, "--out", out,
        "--batch-size", 4, "--micro-batch-size", 2, "--lr", 1e-3, *value_lr,
        "--max-length", 1024, "--report-to", "none", "--seed", 0, *extra, env=env,
    )  # fmt: skip


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "algo", ["oreo", "oreo-step", "oreo-response", "sft", "rft", "dpo", "kto", "rcrl", "orm"]
)
def test_every_algorithm_trains_in_bf16_on_cuda(chat_model_dir, mixed_data, tmp_path, algo):
    from transformers import AutoModelForCausalLM

    from oreo_agents.models.value import ValueModel

    out = tmp_path / algo
    value_lr = ["--set", "value_lr=1e-3"] if algo == "orm" else []
    # rejection sampling and DPO keep a part of the data (successes, pairs): a few epochs give
    # every algorithm its 3 steps
    train(chat_model_dir, mixed_data, out, algo, "--max-steps", 3, "--epochs", 4, *value_lr)
    rows = metrics(out)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for row in rows:
        losses = {k: v for k, v in row.items() if "loss" in k}
        assert losses and all(math.isfinite(v) for v in losses.values()), row
    # checkpoints are saved in the start's dtype (fp32), loadable on a machine without a GPU
    if algo != "orm":  # an ORM trains no policy
        policy = AutoModelForCausalLM.from_pretrained(out / "policy")
        assert policy.dtype == torch.float32
        start = AutoModelForCausalLM.from_pretrained(chat_model_dir)
        pairs = zip(policy.parameters(), start.parameters(), strict=True)
        assert any(not torch.equal(p, q) for p, q in pairs), "3 steps at lr 1e-3 move it"
    if algo.startswith("oreo") or algo == "orm":
        value = ValueModel.from_pretrained(out / "value")
        assert value.head.weight.dtype == torch.float32
        assert value.head.weight.abs().sum() > 0


@pytest.mark.parametrize("algo", ["oreo", "dpo"])
def test_fp32_training_on_cuda_follows_the_cpu_loss_curve(
    chat_model_dir, mixed_data, tmp_path, algo
):
    # --length-grouping off and one seed: both devices see the same batches in the same order
    same = ("--epochs", 2, "--mixed-precision", "no", "--no-length-grouping")
    train(chat_model_dir, mixed_data, tmp_path / "cpu", algo, *same, env=CPU_ONLY)
    train(chat_model_dir, mixed_data, tmp_path / "cuda", algo, *same)
    cpu, cuda = metrics(tmp_path / "cpu"), metrics(tmp_path / "cuda")
    assert len(cpu) == len(cuda) >= 4
    for a, b in zip(cpu, cuda, strict=True):
        for key in a:
            if "loss" in key:
                assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), (key, a, b)


def test_ppo_collects_scores_and_trains_on_cuda(chat_model_dir, tmp_path):
    out = tmp_path / "ppo"
    oreo(
        "train", "--algo", "ppo", "--env", MATH, "-o", "size=30", "--model", chat_model_dir,
        "--out", out, "--batch-size", 4, "--micro-batch-size", 2, "--lr", 1e-4,
        "--report-to", "none", "--set", "iterations=2", "--set", "tasks=4", "--set", "samples=2",
        "--set", "max_new_tokens=16", "--set", "ppo_epochs=2", "--set", "chat_template=true",
    )  # fmt: skip
    log = [json.loads(x) for x in (out / "iterations.jsonl").read_text().splitlines()]
    assert [r["samples_seen"] for r in log] == [8, 16]
    assert all(math.isfinite(r["reward_mean"]) for r in log)
    assert (out / "policy" / "config.json").exists()


def test_value_scores_agree_between_cpu_and_cuda(chat_model_dir, mixed_data, tmp_path):
    from oreo_agents.models.scorer import ValueScorer

    out = tmp_path / "oreo"
    train(chat_model_dir, mixed_data, out, "oreo", "--max-steps", 3)
    rows = [json.loads(line) for line in mixed_data.read_text().splitlines()]
    prompts = [r["prompt"] for r in rows]
    responses = [r["response"] for r in rows]
    values = {}
    for device in ("cpu", "cuda"):
        scorer = ValueScorer.from_pretrained(out / "value", device=device)
        values[device] = torch.tensor(scorer.score_texts(prompts, responses))
    # the GPU scores in bf16: agreement to bf16's precision, and the same ranking of a
    # task's gold solution against its wrong answer
    assert torch.allclose(values["cuda"], values["cpu"], atol=0.05, rtol=0.02), values
    gold_first = lambda v: (v[0::2] > v[1::2]).tolist()  # noqa: E731
    assert gold_first(values["cuda"]) == gold_first(values["cpu"])


def test_rollout_searches_with_the_value_model_on_cuda(chat_model_dir, mixed_data, tmp_path):
    run = tmp_path / "oreo"
    train(chat_model_dir, mixed_data, run, "oreo", "--max-steps", 3)
    common = ("--env", MATH, "-o", "size=12", "--policy", run / "policy", "--value",
              run / "value", "--max-new-tokens", 16, "--backend", "hf",
              "--chat-template")  # fmt: skip
    for strategy, extra in (
        ("greedy", ()),
        ("best-of-k", ("--k", 4, "--temperature", 1.0)),
        ("beam", ("--beam-width", 2, "-o", "granularity=step")),
    ):
        report = tmp_path / f"{strategy}.json"
        oreo("rollout", *common, "--strategy", strategy, *extra, "--out", report)
        r = json.loads(report.read_text())
        assert r["tasks"] == 12 and 0.0 <= r["success_rate"] <= 1.0, strategy


def test_ranked_action_scores_on_cuda_match_the_cpu(chat_model):
    """`--rank-actions` packs the admissible actions into one sequence with a block-diagonal
    mask over a cached context: the same scores on the GPU (bf16) as on the CPU (fp32)."""
    from oreo_agents.data.inputs import encode_text
    from oreo_agents.generation.hf import HFBackend

    model, tok = chat_model
    context = encode_text(tok, "You are in a room.\n> go to shelf 1\nOn it a mug.\n> ")
    actions = [encode_text(tok, t) for t in ("look\n", "take mug 1 from shelf 1\n", "help\n")]
    cpu = HFBackend(model, tok).score_continuations(context, actions)
    gpu = HFBackend(model.to("cuda", torch.bfloat16), tok).score_continuations(context, actions)
    assert gpu == pytest.approx(cpu, rel=0.05, abs=0.5)
    assert max(range(3), key=gpu.__getitem__) == max(range(3), key=cpu.__getitem__)
