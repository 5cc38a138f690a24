"""`oreo train` under torchrun with 2 CPU processes (gloo) trains exactly like 1 process with the
same global batch: the same learning rate at every step, the same losses and final weights, and
a 2-process run stopped by SIGTERM and resumed ends the same."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from safetensors.torch import load_file

# Pinned to the CPU (gloo, fp32) on a GPU machine too: these tests hold the CPU path to exact
# equalities that CUDA's kernels do not promise (batch-invariant sampling, bitwise-deterministic
# backward passes, one device per process); tests/gpu holds CUDA to its own tolerances.
ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "COLUMNS": "160",
    "OMP_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def train_args(model, data, out, algo):
    # batch 4 = 2 processes x micro-batch 1 x 2 accumulation steps
    value_lr = ["--set", "value_lr=1e-3"] if algo == "oreo" else []
    return [
        "-m", "oreo_cli", "train", "--algo", algo, "--data", str(data), "--model", str(model),
        "--out", str(out), "--batch-size", "4", "--micro-batch-size", "1", "--epochs", "2",
        "--lr", "1e-3", *value_lr, "--max-length", "1024", "--warmup-ratio", "0.25",
        "--save-minutes", "0", "--report-to", "none",
    ]  # fmt: skip


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def assert_same_weights(a, b):
    for name in ("policy/model.safetensors", "value/model.safetensors"):
        if not (a / name).exists():
            continue
        x, y = load_file(str(a / name)), load_file(str(b / name))
        for k in x:
            assert (x[k] - y[k]).abs().max() < 1e-5, (name, k)


@pytest.fixture(scope="module")
def runs(tiny_model_dir, mixed_data, tmp_path_factory):
    """``runs(algo)``: the 1-process and 2-process outputs of ``algo`` (made once each)."""
    root, made = tmp_path_factory.mktemp("distributed"), {}

    def get(algo):
        if algo not in made:
            one, two = root / f"{algo}-1", root / f"{algo}-2"
            run([sys.executable, *train_args(tiny_model_dir, mixed_data, one, algo)])
            stdout = run([*TORCHRUN, *train_args(tiny_model_dir, mixed_data, two, algo)]).stdout
            assert stdout.count("saved the policy") == 1  # one process reports
            made[algo] = one, two
        return made[algo]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("algo, loss", [("oreo", "value_loss"), ("dpo", "dpo_loss")])
def test_two_processes_train_like_one(runs, algo, loss):
    one, two = runs(algo)
    a, b = metrics(one), metrics(two)
    assert [m["step"] for m in b] == [m["step"] for m in a] and len(a) >= 4
    assert [m["lr"] for m in b] == pytest.approx([m["lr"] for m in a], rel=1e-9)
    assert [m[loss] for m in b] == pytest.approx([m[loss] for m in a], abs=1e-5)
    assert len({round(m[loss], 6) for m in a}) > 1  # training moved, so equality means something
    assert_same_weights(one, two)


@pytest.mark.slow
def test_two_process_run_stopped_by_sigterm_resumes_to_the_same_weights(
    runs, tiny_model_dir, mixed_data, tmp_path
):
    one, _ = runs("oreo")
    out = tmp_path / "stopped"
    cmd = [*TORCHRUN, *train_args(tiny_model_dir, mixed_data, out, "oreo")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    log = out / "metrics.jsonl"
    while proc.poll() is None and len(log.read_text().splitlines() if log.exists() else []) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # torchrun passes it on to both workers
    proc.wait(timeout=120)
    stopped = json.loads((out / "checkpoint" / "progress.json").read_text())["step"]
    assert 2 <= stopped < len(metrics(one))
    run(cmd)
    assert [m["step"] for m in metrics(out)] == [m["step"] for m in metrics(one)]
    assert_same_weights(one, out)


@pytest.mark.slow
def test_two_process_ppo_scores_every_episode_once_and_trains_like_one(chat_model_dir, tmp_path):
    """PPO on a byte-level BPE chat model (two EOS ids) under torchrun: the ranks split the
    collection and the scoring, rank 0 writes one experience file holding every episode, each
    rank carries its optimizers into the next iteration, and the run ends where one process
    does."""
    import torch

    from oreo_agents.models.value import ValueModel

    torch.manual_seed(0)
    orm = ValueModel.from_pretrained(str(chat_model_dir))
    with torch.no_grad():
        orm.head.weight.normal_(0, 1.0)  # rewards that differ by episode, so the policy moves
    orm.save_pretrained(tmp_path / "orm")

    def args(out):
        return [
            "-m", "oreo_cli", "train", "--algo", "ppo", "--env", "oreo/GSMSymbolic-v0",
            "-o", "size=30", "--model", str(chat_model_dir), "--out", str(out),
            "--batch-size", "4", "--micro-batch-size", "1", "--lr", "1e-3", "--save-minutes", "0",
            "--report-to", "none", "--set", "iterations=2", "--set", "tasks=3", "--set",
            "samples=2", "--set", "max_new_tokens=12", "--set", "ppo_epochs=1", "--set",
            "chat_template=true", "--set", "reward=orm", "--set", f"reward_model={tmp_path}/orm",
            "--set", "critic_lr=1e-3", "--set", "carry_optimizer=true",
        ]  # fmt: skip

    one, two = tmp_path / "one", tmp_path / "two"
    run([sys.executable, *args(one)])
    done = run([*TORCHRUN, *args(two)])
    assert done.stdout.count("iteration 1") == 1  # printed by rank 0 only
    log1, log2 = (
        [json.loads(x) for x in (o / "iterations.jsonl").read_text().splitlines()]
        for o in (one, two)
    )
    assert [r["samples_seen"] for r in log2] == [6, 12]
    assert [r["optimizer_steps"] for r in log2] == [1, 2]
    for a, b in zip(log1, log2, strict=True):
        assert a["success_rate"] == b["success_rate"]
        assert a["reward_mean"] == pytest.approx(b["reward_mean"], abs=1e-5)
    shards = sorted(p.name[:11] for p in (two / "iter-0000" / "episodes").glob("episodes-*"))
    assert shards == ["episodes-r0", "episodes-r1"]
    scores = torch.load(two / "iter-0000" / "experience.pt", weights_only=True)
    assert sorted(scores) == sorted(f"{t}/{s}" for t in {k.split("/")[0] for k in scores}
                                    for s in (0, 1)) and len(scores) == 6  # fmt: skip
    w1, w2 = (load_file(str(o / "policy" / "model.safetensors")) for o in (one, two))
    assert all(torch.allclose(w1[k], w2[k], atol=1e-5) for k in w1)
