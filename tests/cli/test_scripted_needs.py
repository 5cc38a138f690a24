"""Scripted policies say what they need of an env: `oreo collect` and `oreo rollout` refuse an
env without it in one line, before any episode; a scripted rollout is named by its policy."""

from __future__ import annotations

import json

import pytest

from conftest import oreo_in_process
from oreo_agents.rollout.scripted import NEEDS, SCRIPTED

MISUSES = [
    ("expert", "oreo/Chain-v0", [], "walkthroughs (ALFWorld, TextWorld)"),
    ("random", "oreo/Chain-v0", [], "admissible actions"),
    ("gold", "oreo/ALFWorld-v0", ["--split", "bundled"], "reference solutions"),
    ("gold", "oreo/ReasoningGym-v0", [], "reference solutions"),
]


def oreo(*args: str):
    return oreo_in_process(*args, env={"COLUMNS": "200"})


def test_every_scripted_policy_declares_what_it_needs():
    assert set(NEEDS) == set(SCRIPTED)


@pytest.mark.parametrize("command", ["collect", "rollout"])
@pytest.mark.parametrize("policy, env, extra, need", MISUSES)
def test_a_scripted_policy_on_an_env_without_its_need_is_refused_at_once(
    tmp_path, command, policy, env, extra, need
):
    out = tmp_path / ("eps" if command == "collect" else "report.json")
    run = oreo(command, "--env", env, *extra, "--policy", policy, "--tasks", "2", "--out", str(out))
    output = run.stdout + run.stderr
    assert run.returncode == 2, output
    # one line: the policy, what it needs and the env without it; no progress bar, no episode
    (line,) = output.strip().splitlines()
    assert line.startswith(f"error: --policy {policy} needs an env with {need}"), output
    assert line.endswith(f"; {env} has none"), output
    assert list(tmp_path.iterdir()) == []  # no store, no report


def test_a_scripted_rollout_is_named_by_its_policy_not_greedy(tmp_path):
    out = tmp_path / "gold.json"
    run = oreo("rollout", "--env", "oreo/Chain-v0", "--policy", "gold", "--tasks", "3",
               "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(out.read_text())
    assert report["strategy"] == "gold" and report["success_rate"] == 1.0
    assert report["config"]["strategy"] == "greedy"  # what ran is still recorded
    (row,) = [line for line in run.stdout.splitlines() if "100.0%" in line and "│" in line][:1]
    assert row.split("│")[1].strip() == "gold", run.stdout
    assert "greedy" not in run.stdout
