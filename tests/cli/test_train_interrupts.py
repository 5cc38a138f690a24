"""`oreo train` loses nothing: kills at any point of a save, SIGINT / SIGTERM, a full disk and a
torn metrics log all leave a run that resumes to exactly the uninterrupted result."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from oreo_agents.training.config import TrainConfig
from oreo_agents.training.loop import run_train

# Pinned to the CPU (gloo, fp32) on a GPU machine too: these tests hold the CPU path to exact
# equalities that CUDA's kernels do not promise (batch-invariant sampling, bitwise-deterministic
# backward passes, one device per process); tests/gpu holds CUDA to its own tolerances.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160", "CUDA_VISIBLE_DEVICES": ""}
STEPS = 8  # 16 rows, batch 4, 2 epochs


def cmd(model, data, out, *extra):
    return [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "oreo", "--data", str(data),
        "--model", str(model), "--out", str(out), "--batch-size", "4", "--micro-batch-size", "2",
        "--epochs", "2", "--lr", "1e-3", "--set", "value_lr=1e-3", "--max-length", "1024",
        "--warmup-ratio", "0", *extra,
    ]  # fmt: skip


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    """The in-process runs too (see ENV)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def step_of(out):
    """The step of the current checkpoint; None before the first one (or while it switches)."""
    try:
        return json.loads((out / "checkpoint" / "progress.json").read_text())["step"]
    except (OSError, ValueError):
        return None


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


def weights(out):
    policy = load_file(str(out / "policy" / "model.safetensors"))
    value = load_file(str(out / "value" / "model.safetensors"))
    head = load_file(str(out / "value" / "value_head.safetensors"))
    return {**policy, **{f"value.{k}": v for k, v in {**value, **head}.items()}}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


@pytest.fixture(scope="module")
def straight(tiny_model_dir, mixed_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    run = subprocess.run(cmd(tiny_model_dir, mixed_data, out), capture_output=True, text=True,
                         env=ENV, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return out


@pytest.mark.slow
def test_kills_at_random_points_of_saves_resume_to_the_same_weights(
    tiny_model_dir, mixed_data, tmp_path, straight
):
    """With a save every step most of the run is spent saving; each kill lands at a random
    instant after a checkpoint switch, so inside the next save more often than not."""
    out, rng, kills = tmp_path / "run", random.Random(0), 0
    args = cmd(tiny_model_dir, mixed_data, out, "--save-every", "1")
    while kills < 4:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=ENV)  # fmt: skip
        start = step_of(out)
        while proc.poll() is None and step_of(out) == start:
            time.sleep(0.01)
        if proc.poll() is not None:
            break  # finished before it could be killed
        time.sleep(rng.uniform(0, 0.4))
        proc.kill()
        proc.wait(timeout=60)
        kills += 1
    run = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert kills >= 3 and step_of(out) == STEPS
    kept = sorted(p.name for p in out.glob("ckpt-*"))  # the last one and the one before it
    assert kept[-1] == f"ckpt-{STEPS:08d}" and len(kept) <= 2
    assert all((out / name / "progress.json").exists() for name in kept)
    assert_same(weights(out), weights(straight))
    logged = [json.loads(line)["step"] for line in lines(out / "metrics.jsonl")]
    assert logged == list(range(1, STEPS + 1))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_then_the_rerun_resumes_exactly(
    tiny_model_dir, mixed_data, tmp_path, straight, sig, code
):
    out = tmp_path / "run"
    args = cmd(tiny_model_dir, mixed_data, out, "--save-minutes", "0")  # only the signal saves
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV)  # fmt: skip
    metrics = out / "metrics.jsonl"
    while (
        proc.poll() is None
        and len(metrics.read_text().splitlines() if metrics.exists() else []) < 3
    ):
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, stdout
    stopped = step_of(out)
    assert 3 <= stopped < STEPS, stdout
    assert f"saved the checkpoint of step {stopped}" in " ".join(stdout.split())
    run = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_same(weights(out), weights(straight))


@pytest.mark.slow
def test_a_second_ctrl_c_aborts_at_once_and_still_loses_nothing(
    tiny_model_dir, mixed_data, tmp_path, straight
):
    """The second SIGINT lands during (or just before) the save the first one asked for: the
    run aborts with 130 and whatever that save left, the re-run resumes to the same weights."""
    out = tmp_path / "run"
    args = cmd(tiny_model_dir, mixed_data, out, "--save-every", "2", "--save-minutes", "0")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV)  # fmt: skip
    while proc.poll() is None and len(lines(out / "metrics.jsonl")) < 3:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, stdout
    assert "aborted" in stdout or "stopped by SIGINT" in stdout  # the save may have won the race
    run = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert_same(weights(out), weights(straight))


def config(model, data, out, **kw):
    return TrainConfig(
        algo="oreo", data=str(data), model=str(model), out=str(out), batch_size=4,
        micro_batch_size=2, epochs=2, lr=1e-3, max_length=1024, warmup_ratio=0.0,
        settings={"value_lr": 1e-3}, report_to="none", **kw,
    )  # fmt: skip


FULL_DISK_ERRORS = {
    "OSError": lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),
    # what torch.save raises on a full disk, and safetensors' own error class
    "torch": lambda: RuntimeError(
        "[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0\n"
        "PytorchStreamWriter failed writing file data/0: No space left on device"
    ),
    "safetensors": lambda: __import__("safetensors").SafetensorError(
        'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
        'left on device" })'
    ),
}


@pytest.mark.parametrize("error", list(FULL_DISK_ERRORS))
def test_a_full_disk_keeps_the_last_checkpoint_and_says_so(
    tiny_model_dir, mixed_data, tmp_path, monkeypatch, straight, error
):
    out = tmp_path / "run"
    real_save = torch.save
    full = []

    def save(obj, f, *args, **kwargs):
        if full:
            raise FULL_DISK_ERRORS[error]()
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    cfg = config(tiny_model_dir, mixed_data, out, save_every=2)
    with pytest.raises(ValueError, match=r"step 4 .*No space left on device.*step 2 is kept") as e:
        run_train(cfg, log=lambda record: full.append(1) if record["step"] == 3 else None)
    assert "\n" not in str(e.value)
    assert step_of(out) == 2 and [p.name for p in out.glob("ckpt-*")] == ["ckpt-00000002"]
    full.clear()
    run_train(cfg)
    assert_same(weights(out), weights(straight))


def test_a_torn_metrics_line_is_dropped_and_garbage_is_named(tiny_model_dir, mixed_data, tmp_path):
    out = tmp_path / "run"
    cfg = config(tiny_model_dir, mixed_data, out, max_steps=2)
    run_train(cfg)
    log = out / "metrics.jsonl"
    log.write_text(log.read_text() + '{"step": 3, "lo')  # a kill in the middle of a write
    run_train(cfg)  # the finished run again: nothing to train, the torn line goes
    assert [json.loads(line)["step"] for line in lines(log)] == [1, 2]
    log.write_text("garbage\n" + log.read_text())
    with pytest.raises(ValueError, match="metrics.jsonl:1: not a JSON metrics record"):
        run_train(cfg)


def test_a_folder_that_is_not_a_run_is_refused(tiny_model_dir, mixed_data, tmp_path):
    out = tmp_path / "run"
    (out / "policy").mkdir(parents=True)
    (out / "policy" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="holds policy but no oreo train checkpoint"):
        run_train(config(tiny_model_dir, mixed_data, out))


def wrapper(patch: str) -> list[str]:
    """``oreo train`` in a subprocess with ``patch`` (Python) applied first."""
    cli = "from oreo_cli.main import app\nsys.argv = ['oreo', *sys.argv[1:]]\napp()"
    script = f"import sys\n{patch}\n{cli}"
    return [sys.executable, "-c", script]


@pytest.mark.slow
def test_a_kill_between_the_link_switch_and_the_export_loses_no_policy(
    tiny_model_dir, mixed_data, tmp_path, straight
):
    """SIGKILL right after the last checkpoint became current, before OUT/policy was linked:
    the re-run finds a finished run and links the exports it lacks."""
    out = tmp_path / "run"
    patch = (
        "import os, signal\n"
        "from oreo_agents.training import checkpoint\n"
        "def killing(self, name):\n"
        f"    if os.readlink(self.out / 'checkpoint') == 'ckpt-{STEPS:08d}':\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "checkpoint.CheckpointDir._export = killing\n"
    )
    args = cmd(tiny_model_dir, mixed_data, out)[3:]  # after "-m oreo_cli"
    killed = subprocess.run([*wrapper(patch), *args], capture_output=True, text=True, env=ENV,
                            timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert step_of(out) == STEPS and not (out / "policy").exists()
    run = subprocess.run(cmd(tiny_model_dir, mixed_data, out), capture_output=True, text=True,
                         env=ENV, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert_same(weights(out), weights(straight))  # OUT/policy and OUT/value load again


@pytest.mark.slow
def test_two_trains_into_one_out_one_is_refused(tiny_model_dir, mixed_data, tmp_path, straight):
    out = tmp_path / "run"
    slow = (  # a second per step, so that the second command surely starts while it runs
        "import time\nfrom oreo_agents.training import loop as train\nreport = train._report\n"
        "train._report = lambda *args: (time.sleep(1), report(*args))\n"
    )
    args = cmd(tiny_model_dir, mixed_data, out)[3:]
    first = subprocess.Popen([*wrapper(slow), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=ENV)  # fmt: skip
    while first.poll() is None and not lines(out / "metrics.jsonl"):
        time.sleep(0.05)
    second = subprocess.run(cmd(tiny_model_dir, mixed_data, out), capture_output=True, text=True,
                            env=ENV, timeout=300)  # fmt: skip
    stdout, _ = first.communicate(timeout=300)
    assert first.returncode == 0, stdout
    assert second.returncode == 2
    error = " ".join(second.stdout.split())
    assert f"another process (pid {first.pid}) is writing to {out}" in error, second.stdout
    assert "Traceback" not in second.stdout + second.stderr
    logged = [json.loads(line)["step"] for line in lines(out / "metrics.jsonl")]
    assert logged == list(range(1, STEPS + 1))
    assert_same(weights(out), weights(straight))


@pytest.mark.parametrize("damage", ["state", "progress"])
def test_a_damaged_checkpoint_falls_back_to_the_one_before(
    tiny_model_dir, mixed_data, tmp_path, straight, caplog, damage
):
    """A truncated state file or progress record in the last checkpoint: the re-run resumes
    from the checkpoint kept before it, says so in one line, and ends where an uninterrupted
    run ends."""
    out = tmp_path / "run"
    cfg = config(tiny_model_dir, mixed_data, out, save_every=2, save_minutes=0)
    run_train(cfg)
    assert sorted(p.name for p in out.glob("ckpt-*")) == ["ckpt-00000006", "ckpt-00000008"]
    last = out / "ckpt-00000008"
    if damage == "state":
        victim = next((last / "state").glob("optimizer.bin"))
    else:
        victim = last / "progress.json"
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])
    with caplog.at_level("WARNING"):
        run_train(cfg)
    (note,) = [r.getMessage() for r in caplog.records if "resuming from step 6" in r.getMessage()]
    assert str(victim if damage == "progress" else last) in note
    assert step_of(out) == STEPS
    assert_same(weights(out), weights(straight))
    logged = [json.loads(line)["step"] for line in lines(out / "metrics.jsonl")]
    assert logged == list(range(1, STEPS + 1))


def test_a_damaged_checkpoint_with_nothing_before_it_is_one_clear_error(
    tiny_model_dir, mixed_data, tmp_path
):
    out = tmp_path / "run"
    cfg = config(tiny_model_dir, mixed_data, out, max_steps=2)
    run_train(cfg)
    (out / "checkpoint" / "progress.json").write_text('{"step": 2, "mic')
    with pytest.raises(ValueError, match="cannot be read .* no earlier checkpoint is kept"):
        run_train(cfg)


def test_a_deleted_progress_record_is_refused_not_restarted(tiny_model_dir, mixed_data, tmp_path):
    out = tmp_path / "run"
    cfg = config(tiny_model_dir, mixed_data, out, max_steps=2)
    run_train(cfg)
    (out / "checkpoint" / "progress.json").unlink()
    with pytest.raises(ValueError, match="has no progress.json .* where the run stopped"):
        run_train(cfg)
    assert [json.loads(line)["step"] for line in lines(out / "metrics.jsonl")] == [1, 2]
