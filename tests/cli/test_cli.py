"""The `oreo` command through a subprocess, as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import GSM8K_RECORDS


def oreo(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    exe = shutil.which("oreo")
    cmd = [exe] if exe else [sys.executable, "-m", "oreo_cli"]
    return subprocess.run(
        [*cmd, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": "/tmp", "HF_HUB_OFFLINE": "1"},
    )


def test_help_lists_commands():
    out = oreo("--help")
    assert out.returncode == 0
    assert "envs" in out.stdout and "play" in out.stdout


def test_envs_lists_builtin_ids():
    out = oreo("envs")
    assert out.returncode == 0, out.stderr
    for env_id in ("oreo/GSM8K-v0", "oreo/MATH-v0", "oreo/GSMSymbolic-v0", "oreo/ReasoningGym-v0"):
        assert env_id in out.stdout


def test_play_a_file_task_to_the_end(gsm8k_file):
    answer = GSM8K_RECORDS[1]["answer"].replace("\n", "\\n")
    out = oreo(
        "play",
        "oreo/GSM8K-v0",
        "-o",
        f"path={gsm8k_file}",
        "--task-id",
        "1",
        "--episodes",
        "1",
        stdin=answer + "\n",
    )
    assert out.returncode == 0, out.stderr
    assert "How many pens are left" in out.stdout
    assert "reward" in out.stdout and "solved" in out.stdout and "not solved" not in out.stdout


def test_play_step_level_until_eof():
    out = oreo(
        "play",
        "oreo/GSMSymbolic-v0",
        "-o",
        "granularity=step",
        "-o",
        "size=3",
        "--seed",
        "0",
        stdin="first step\nsecond step\n",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("terminated") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (("play", "oreo/Nope-v0"), "Registered text envs"),
        (("play", "oreo/GSM8K-v0", "-o", "path=/no/such.jsonl"), "task file not found"),
        (("play", "oreo/GSM8K-v0", "-o", "novalue"), "expected KEY=VALUE"),
        (("play", "oreo/GSMSymbolic-v0", "-o", "colour=red"), "colour"),
        (("play", "oreo/GSM8K-v0"), "path='test.jsonl'"),
    ],
)
def test_play_bad_input_is_a_clear_error(args, message):
    out = oreo(*args)
    assert out.returncode == 2
    assert message in out.stdout, out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr
