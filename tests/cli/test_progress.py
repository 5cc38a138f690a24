"""Long work says how far it is: `oreo train` logs step N/TOTAL with tokens/s and an ETA, the
demo shows each stage's progress under an overall line, Ctrl-C is one line and exit 130, and the
re-run says where it resumes. Through a subprocess and a real SIGINT, as a user meets them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "80", "CUDA_VISIBLE_DEVICES": ""}
STEP_LINE = re.compile(
    r"^step (\d+)/(\d+)  residual \S+  kl \S+  \d+ tok/s  pad \d+%  "
    r"ETA \d+:\d\d$"
)


def step_of(out):
    return json.loads((out / "checkpoint" / "progress.json").read_text())["step"]


def ctrl_c_when(cmd, ready, timeout=300):
    """Start ``cmd``, wait until ``ready()``, then Ctrl-C it as a terminal does (SIGINT to its
    process group); returns (exit code, output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not ready() and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=timeout)
    return proc.returncode, output


def lines_of(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.slow
def test_train_shows_step_of_total_and_eta_and_the_rerun_says_where_it_resumes(
    tiny_model_dir, mixed_data, tmp_path
):
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "oreo", "--data", str(mixed_data),
        "--model", str(tiny_model_dir), "--out", str(out), "--batch-size", "4",
        "--micro-batch-size", "2", "--epochs", "4", "--lr", "1e-3", "--set", "value_lr=1e-3",
        "--max-length", "1024", "--save-minutes", "0",
    ]  # fmt: skip
    code, output = ctrl_c_when(cmd, lambda: len(lines_of(out / "metrics.jsonl")) >= 3)
    assert code == 130, output
    stopped = step_of(out)
    assert 3 <= stopped < 16, output
    lines = output.splitlines()
    logged = [STEP_LINE.match(line) for line in lines if line.startswith("step ")]
    assert logged and all(logged), output  # each step on one line, at 80 columns too
    assert [(int(m[1]), int(m[2])) for m in logged[:3]] == [(1, 16), (2, 16), (3, 16)]
    (said,) = [line for line in lines if "resume" in line]
    assert said == (
        f"stopped by SIGINT: saved the checkpoint of step {stopped}; re-run the same command "
        "to resume from it"
    )
    assert "Traceback" not in output

    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = (run.stdout + run.stderr).splitlines()
    assert [line for line in lines if "resum" in line] == [
        f"resuming {out} from step {stopped} of 16"
    ]
    logged = [STEP_LINE.match(line) for line in run.stdout.splitlines() if line.startswith("step")]
    assert [int(m[1]) for m in logged] == list(range(stopped + 1, 17))


@pytest.mark.slow
def test_ctrl_c_in_the_demo_is_one_line_and_the_rerun_resumes(tmp_path):
    """Interrupted while it trains the SFT model (a checkpoint is saved); the re-run resumes
    that training, re-uses what was done, and shows a line per stage as it finishes."""
    from oreo_agents.recipes.demo import demo_config, stage_names

    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "oreo_cli", "demo", "--fast", "--out", str(out)]
    code, output = ctrl_c_when(cmd, lambda: len(lines_of(out / "sft" / "metrics.jsonl")) >= 3)
    assert code == 130, output
    assert "Traceback" not in output and "TrainingInterrupted" not in output
    stopped = step_of(out / "sft")
    (said,) = [line for line in output.splitlines() if "resume" in line]
    assert said == (
        f"stopped by SIGINT in SFT: saved its checkpoint of step {stopped}; finished stages are "
        f"kept in {out}; re-run the same command to resume"
    )
    # the SFT stage's row: its steps of the total, with an ETA
    assert re.search(rf"SFT .* {stopped}/\d+ ETA \d+:\d\d", output), output

    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    lines = output.splitlines()
    (resumed,) = [line for line in lines if line.startswith(f"resuming {out / 'sft'} ")]
    total = int(re.fullmatch(rf"resuming \S+ from step {stopped} of (\d+)", resumed)[1])
    names = stage_names(demo_config(str(out), fast=True))
    done = [line for line in lines if line.startswith("done ")]
    assert len(done) == len(names), output
    for line, name in zip(done, names, strict=True):
        assert line.startswith(f"done {name}  "), (line, name)
    assert done[names.index("SFT")].startswith(f"done SFT  {total}/{total}  ")
    assert f"demo stage {len(names)} of {len(names)}" in output
    assert json.loads((out / "report.json").read_text())["results"]
