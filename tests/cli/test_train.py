"""`oreo train` end to end on a tiny model: every algorithm, checkpoints, resume, bad input (the
CLI in this process, but for kills and what a new process prints)."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import oreo_in_process
from oreo_agents.models.value import ValueModel
from oreo_agents.training.config import TrainConfig
from oreo_agents.training.loop import run_train

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}


def train_cmd(model, data, out, algo, *extra):
    # value_lr is a setting of the OREO algorithms only; the others refuse it
    value_lr = ["--set", "value_lr=1e-3"] if algo.startswith("oreo") else []
    return [
        sys.executable, "-m", "oreo_cli", "train", "--algo", algo, "--data", str(data),
        "--model", str(model), "--out", str(out), "--batch-size", "4",
        "--micro-batch-size", "2", "--set", "lr=1e-3", *value_lr,
        "--set", "max_length=1024", *extra,
    ]  # fmt: skip


def checkpoint_step(out):
    """The step of the run's current checkpoint (None before the first, or mid-switch)."""
    try:
        return json.loads((out / "checkpoint" / "progress.json").read_text())["step"]
    except (OSError, ValueError):
        return None


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "algo", ["oreo", "oreo-step", "oreo-response", "sft", "rft", "dpo", "kto", "rcrl"]
)
def test_every_algorithm_trains_and_saves_loadable_checkpoints(
    tiny_model_dir, mixed_data, tmp_path, algo
):
    from transformers import AutoModelForCausalLM

    out = tmp_path / algo
    run = oreo_in_process(*train_cmd(tiny_model_dir, mixed_data, out, algo, "--max-steps", "2")[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "saved the policy" in run.stdout
    assert [m["step"] for m in metrics(out)] == [1, 2]
    # the rate each step used: a one-step warm-up from 0 (ceil(3% of the steps)), then the
    # cosine's start, 1e-3 (logged before the scheduler moves on, not after)
    assert [m["lr"] for m in metrics(out)] == [0.0, pytest.approx(1e-3)]
    policy = AutoModelForCausalLM.from_pretrained(out / "policy")
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    changed = any(
        not torch.equal(p, q) for p, q in zip(policy.parameters(), start.parameters(), strict=True)
    )
    assert changed, "two optimizer steps at lr 1e-3 must move the weights"
    if algo.startswith("oreo"):
        value = ValueModel.from_pretrained(out / "value")
        assert value.head.weight.abs().sum() > 0  # the zero-initialised head has learned
    else:
        assert not (out / "value").exists()


def test_resume_after_sigkill_gives_the_same_loss_curve(tiny_model_dir, mixed_data, tmp_path):
    straight = tmp_path / "straight"
    cmd = train_cmd(tiny_model_dir, mixed_data, straight, "oreo", "--epochs", "2")
    assert oreo_in_process(*cmd[3:]).returncode == 0
    resumed = tmp_path / "resumed"
    cmd = train_cmd(
        tiny_model_dir, mixed_data, resumed, "oreo", "--epochs", "2", "--set", "save_every=1"
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (checkpoint_step(resumed) or 0) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    killed_at = checkpoint_step(resumed)
    assert 2 <= killed_at < 8, "the kill should land mid-run (8 optimizer steps in all)"
    run = oreo_in_process(*cmd[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    a, b = metrics(straight), metrics(resumed)
    assert [m["step"] for m in b] == list(range(1, 9))
    for x, y in zip(a, b, strict=True):
        for key in ("value_loss", "policy_loss", "kl", "lr"):
            assert y[key] == pytest.approx(x[key], rel=1e-4, abs=1e-7), (x["step"], key)


def test_gradient_accumulation_1x8_equals_8x1(tiny_model_dir, mixed_data, tmp_path):
    def weights(micro):
        cfg = TrainConfig(
            algo="oreo", data=str(mixed_data), model=str(tiny_model_dir),
            out=str(tmp_path / f"m{micro}"), batch_size=8, micro_batch_size=micro,
            lr=1e-3, max_steps=2, warmup_ratio=0.0, max_length=1024, settings={"value_lr": 1e-3},
        )  # fmt: skip
        run_train(cfg)
        out = tmp_path / f"m{micro}"
        head = ValueModel.from_pretrained(out / "value").head.weight.detach()
        return head, [m[k] for m in metrics(out) for k in ("value_loss", "policy_loss")]

    (head8, losses8), (head1, losses1) = weights(8), weights(1)
    assert torch.allclose(head8, head1, atol=1e-6)
    assert losses8 == pytest.approx(losses1, rel=1e-4)


@pytest.mark.parametrize(
    "algo, rows, message",
    [
        ("sft", [], "holds no episodes"),
        ("rft", [{"prompt": "p", "response": "r", "reward": 0}] * 4, "no episode has reward > 0"),
        ("dpo", [{"prompt": "p", "response": "r", "reward": 1}] * 4, "no (chosen, rejected) pairs"),
        ("kto", [{"prompt": "p", "response": "r", "reward": 1}] * 4, "both successful and failed"),
        ("sft", [{"prompt": "p", "response": "r", "reward": 1}] * 2, "do not fill one batch"),
    ],
)
def test_bad_data_is_refused_before_training(tiny_model_dir, tmp_path, algo, rows, message):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows) or "\n")
    run = oreo_in_process(*train_cmd(tiny_model_dir, data, tmp_path / "out", algo)[3:])
    assert run.returncode == 2 and message in " ".join(run.stdout.split()), run.stdout + run.stderr
    assert not (tmp_path / "out" / "state").exists()


def test_mismatched_tokenizer_and_other_runs_are_refused(tiny_model_dir, mixed_data, tmp_path):
    import shutil

    from oreo_agents.models.tiny import byte_tokenizer

    odd = tmp_path / "odd_model"
    shutil.copytree(tiny_model_dir, odd)
    tok = byte_tokenizer()
    tok.add_tokens([f"<extra{i}>" for i in range(10)])
    tok.save_pretrained(odd)
    with pytest.raises(ValueError, match="do not belong together"):
        run_train(TrainConfig("sft", str(mixed_data), str(odd), str(tmp_path / "o1"), batch_size=4))

    out = tmp_path / "o2"
    cfg = TrainConfig("sft", str(mixed_data), str(tiny_model_dir), str(out), batch_size=4,
                      micro_batch_size=2, max_steps=1)  # fmt: skip
    run_train(cfg)
    software = json.loads((out / "checkpoint" / "progress.json").read_text())["software"]
    assert software["torch"] == torch.__version__ and software["oreo"] is not None
    assert software["machine"] == platform.machine() and "cpu" in software
    before = (out / "policy" / "model.safetensors").read_bytes()
    run_train(cfg)  # the same finished command again: nothing left to do
    assert (out / "policy" / "model.safetensors").read_bytes() == before
    with pytest.raises(ValueError, match=r"holds a run with other settings \(algo"):
        run_train(TrainConfig("rft", str(mixed_data), str(tiny_model_dir), str(out), batch_size=4))


def test_a_setting_added_since_a_run_started_resumes_at_its_default():
    cfg = TrainConfig("ppo", None, "m", "o", env="oreo/Chain-v0", batch_size=4)
    recorded = cfg.flat()
    assert cfg.changed(recorded) == []
    del recorded["advantage"]  # a run started before the setting existed
    assert cfg.changed(recorded) == []
    group = TrainConfig("ppo", None, "m", "o", env="oreo/Chain-v0", batch_size=4,
                        settings={"advantage": "group"})  # fmt: skip
    assert group.changed(recorded) == ["advantage"]
    recorded["lr"] = 1.0  # a recorded setting that differs
    assert cfg.changed(recorded) == ["lr"]
    recorded["max_steps"] = 7  # free to change on a resume
    assert cfg.changed(recorded) == ["lr"]


def test_lora_value_model_and_tensorboard_logs(tiny_model_dir, mixed_data, tmp_path):
    pytest.importorskip("peft")
    pytest.importorskip("tensorboard")
    out = tmp_path / "lora"
    cfg = TrainConfig(
        algo="oreo", data=str(mixed_data), model=str(tiny_model_dir), out=str(out),
        batch_size=4, micro_batch_size=2, max_steps=3, lr=1e-3, warmup_ratio=0.0,
        max_length=1024, settings={"value_lr": 1e-3, "value_lora_rank": 4}, report_to="tensorboard",
    )  # fmt: skip
    run_train(cfg)
    value = ValueModel.from_pretrained(out / "value")  # merged: a plain backbone + head
    start = ValueModel.from_pretrained(tiny_model_dir)
    moved = [
        not torch.equal(p, q)
        for p, q in zip(value.backbone.parameters(), start.backbone.parameters(), strict=True)
    ]
    assert any(moved) and not hasattr(value.backbone, "peft_config")
    assert list((out / "runs").rglob("events.out.tfevents.*"))


def test_a_value_folder_is_not_a_policy(tiny_model_dir, mixed_data, tmp_path):
    out = tmp_path / "v"
    cfg = TrainConfig("oreo", str(mixed_data), str(tiny_model_dir), str(out), batch_size=4,
                      micro_batch_size=2, max_steps=1, max_length=1024)  # fmt: skip
    run_train(cfg)
    with pytest.raises(ValueError, match="is a value model folder, not a policy"):
        run_train(TrainConfig("sft", str(mixed_data), str(out / "value"), str(tmp_path / "s"),
                              batch_size=4, micro_batch_size=2))  # fmt: skip


def test_a_separate_wider_value_backbone_trains_beside_the_policy(
    tiny_model_dir, mixed_data, tmp_path
):
    """--value starts OREO's value model from another folder (here twice as wide, same
    tokenizer): OUT/value has that folder's shape and a trained head, OUT/policy the policy's."""
    import shutil

    from transformers import AutoConfig

    from oreo_agents.models.tiny import byte_tokenizer, tiny_model

    wide = tmp_path / "wide"
    tiny_model(wide, hidden_size=128, seed=1)
    out = tmp_path / "sep"
    # Three steps: step 1 is warm-up (lr 0) and step 2 moves the head from zero, so the
    # backbone's first gradient comes with step 3.
    run = oreo_in_process(*train_cmd(tiny_model_dir, mixed_data, out, "oreo", "--value", str(wide),
                                     "--max-steps", "3")[3:])  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert AutoConfig.from_pretrained(out / "value").hidden_size == 128
    assert AutoConfig.from_pretrained(out / "policy").hidden_size == 64
    value = ValueModel.from_pretrained(out / "value", require_head=True)
    assert value.head.weight.abs().sum() > 0  # trained from its zero start
    start = ValueModel.from_pretrained(wide)
    assert any(
        not torch.equal(p, q)
        for p, q in zip(value.backbone.parameters(), start.backbone.parameters(), strict=True)
    )

    odd = tmp_path / "odd_value"
    shutil.copytree(wide, odd)
    tok = byte_tokenizer()
    tok.add_tokens(["<extra>"])
    tok.save_pretrained(odd)  # a tokenizer of another vocabulary beside the same weights
    with pytest.raises(ValueError, match="must use the policy's tokenizer"):
        cfg = TrainConfig("oreo", str(mixed_data), str(tiny_model_dir), str(tmp_path / "o"),
                          value=str(odd), batch_size=4, max_steps=1)  # fmt: skip
        run_train(cfg)
    with pytest.raises(ValueError, match="--value: sft trains no value model"):
        TrainConfig("sft", str(mixed_data), str(tiny_model_dir), "o", value=str(wide))


@pytest.mark.parametrize("algo", ["dpo", "kto"])
def test_precomputed_reference_equals_online_reference(tiny_model_dir, mixed_data, tmp_path, algo):
    curves = []
    for precompute in (False, True):
        out = tmp_path / f"{algo}-{precompute}"
        cfg = TrainConfig(
            algo=algo, data=str(mixed_data), model=str(tiny_model_dir), out=str(out),
            batch_size=4, micro_batch_size=2, max_steps=3, lr=1e-3, max_length=1024,
            warmup_ratio=0.0, settings={"precompute_ref": precompute},
        )  # fmt: skip
        run_train(cfg)
        curves.append([m[f"{algo}_loss"] for m in metrics(out)])
    assert curves[0] == pytest.approx(curves[1], rel=1e-5, abs=1e-7)
    assert len(set(curves[0])) > 1  # the policy moved, so the comparison means something
    # OREO's exact KL needs the reference's full logits, so it has no such setting.
    with pytest.raises(ValueError, match=r"oreo has no setting \['precompute_ref'\]"):
        TrainConfig("oreo", "d", "m", "o", settings={"precompute_ref": True})


def test_kto_balances_classes_unless_told_otherwise():
    from types import SimpleNamespace

    from oreo_agents.algorithms import get_algorithm

    items = [SimpleNamespace(reward=r) for r in (1.0, 0.0, 0.0, 0.0)]
    kto = get_algorithm("kto")
    cfg = TrainConfig("kto", "d", "m", "o")
    assert kto.finalize(cfg.settings, items).desirable_weight == 3.0  # 1 good vs 3 bad
    fixed = TrainConfig("kto", "d", "m", "o", settings={"desirable_weight": 1.0})
    assert kto.finalize(fixed.settings, items).desirable_weight == 1.0
    dpo = TrainConfig("dpo", "d", "m", "o")
    assert dpo.spec.finalize(dpo.settings, items) == dpo.settings  # only KTO has class weights


def test_weights_of_another_architecture_are_refused_in_one_line(
    tiny_model_dir, mixed_data, tmp_path
):
    # A config.json of another architecture than its weights: transformers would start every
    # weight at random, and oreo train would then train a random model.
    import shutil

    model = shutil.copytree(tiny_model_dir, tmp_path / "model")
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=32, n_layer=2,
                  n_head=4)  # fmt: skip
    (model / "config.json").write_text(json.dumps(config))
    run = oreo_in_process(*train_cmd(model, mixed_data, tmp_path / "out", "sft")[3:],
                          env={"COLUMNS": "1000"})
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    (error,) = [line for line in run.stdout.splitlines() if "error:" in line]
    assert f"{model / 'model.safetensors'} does not fit its config.json" in error, output
    assert "architecture GPT2LMHeadModel" in error and "weights are not in it" in error
    assert "Traceback" not in output and "LOAD REPORT" not in output


def test_library_warnings_print_as_one_line(tiny_model_dir, mixed_data, tmp_path):
    """The text-only episodes' warning reaches the user once, as one line, without Python's
    "file:line: UserWarning" prefix and the source line of the library that raised it."""
    run = subprocess.run(
        train_cmd(tiny_model_dir, mixed_data, tmp_path / "out", "sft", "--max-steps", "1"),
        capture_output=True, text=True, env={**ENV, "COLUMNS": "1000"}, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    lines = [line for line in run.stderr.splitlines() if "carry no token ids" in line]
    assert len(lines) == 1 and lines[0].startswith("warning: 16 of 16 episodes"), run.stderr
    assert "UserWarning" not in run.stderr and "batches.prepare(" not in run.stderr
