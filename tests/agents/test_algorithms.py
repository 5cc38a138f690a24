"""The algorithm registry: specs are documented, the loop takes a new one with no change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from oreo_agents.algorithms import ALGORITHMS, Algorithm, get_algorithm, register
from oreo_agents.online.driver import RECORD_KEYS  # what the CLI line leaves to the spec
from oreo_agents.training.config import TrainConfig
from oreo_cli.options import field_docs

PLUGINS = Path(__file__).parent / "plugins"


def test_every_setting_of_every_algorithm_is_documented():
    for name, spec in ALGORITHMS.items():
        docs = field_docs(spec.config)
        assert set(docs) == {f.name for f in fields(spec.config)}, name
        assert isinstance(spec.defaults(), spec.config)


def test_paper_defaults_per_algorithm():
    # Wang et al. 2024, App. A.3
    assert [TrainConfig(a, "d", "m", "o").settings.alpha for a in ALGORITHMS if "oreo" in a] == [
        0.01, 0.1, 0.3,
    ]  # fmt: skip
    assert TrainConfig("oreo", "d", "m", "o").settings.beta == 0.03
    assert TrainConfig("dpo", "d", "m", "o").lr == 5e-7
    assert TrainConfig("dpo", "d", "m", "o").settings.beta == 0.1
    assert TrainConfig("sft", "d", "m", "o").lr == 5e-6


def test_unknown_algorithm_and_setting_and_duplicate_name_are_refused():
    with pytest.raises(ValueError, match="algo must be one of oreo, .*kto"):
        TrainConfig("ppo2", "d", "m", "o")
    with pytest.raises(ValueError, match=r"sft has no setting \['beta'\]"):
        TrainConfig.from_dict({"algo": "sft", "data": "d", "model": "m", "out": "o", "beta": 1})
    with pytest.raises(ValueError, match="already registered"):
        register(Algorithm("sft", "another sft"))
    assert get_algorithm("sft") is ALGORITHMS["sft"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"carry_optimizer": "True"}, "carry_optimizer takes true or false, got 'True'"),
        ({"lam": "1.0"}, "lam takes a number"),
        ({"iterations": 2.5}, "iterations takes an integer"),
        ({"tasks": True}, "tasks takes an integer"),
    ],
)
def test_a_setting_of_the_wrong_kind_is_refused(values, message):
    # `--set KEY=VALUE` reads VALUE as JSON: "True" stays text, which would be truthy even as
    # "False"; a number field given text would fail later, mid-run
    with pytest.raises(ValueError, match=f"ppo setting {message}"):
        get_algorithm("ppo").settings(values)
    ok = get_algorithm("ppo").settings({"carry_optimizer": True, "lam": 1, "iterations": 3})
    assert (ok.carry_optimizer, ok.lam, ok.iterations) == (True, 1, 3)


@pytest.mark.parametrize("name", ["critic", "experience", "optimizer_state"])
def test_what_the_online_driver_sets_is_not_a_user_setting(name):
    from oreo_agents.algorithms import get_algorithm

    with pytest.raises(ValueError, match=f"ppo: {name} is set by the online driver"):
        get_algorithm("ppo").settings({name: "/tmp/x"})


def test_a_plugin_algorithm_trains_through_the_cli(tiny_model_dir, tmp_path):
    """A spec + a loss from a test file, installed as an ``oreo.algorithms`` entry point and
    trained by ``oreo train --algo`` in a fresh process, with no other change."""
    dist = tmp_path / "toy_algorithm-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-algorithm\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[oreo.algorithms]\ntoy = toy_algorithm:register_algorithms\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{PLUGINS}", "COLUMNS": "200"}
    data = tmp_path / "d.jsonl"
    rows = [{"prompt": f"q{i} ", "response": "a" * (1 + i), "reward": i % 2} for i in range(8)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "toy-rwr", "--data", str(data),
        "--model", str(tiny_model_dir), "--out", str(out), "--batch-size", "4",
        "--micro-batch-size", "2", "--lr", "1e-2", "--set", "floor=0.5",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "floor 0.5" in run.stdout and "rwr_loss" in run.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2]
    assert all(r["mean_weight"] == pytest.approx(0.75) for r in records)  # 1, 0.5, 1, 0.5...
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).lm_head.weight
    after = AutoModelForCausalLM.from_pretrained(out / "policy").lm_head.weight
    assert not torch.equal(before, after)
    helped = subprocess.run(
        [sys.executable, "-m", "oreo_cli", "train", "--help"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert "toy-rwr: reward-weighted SFT" in helped.stdout
    assert "floor = 0.1: The weight of a failed episode" in helped.stdout


def test_a_plugin_online_algorithm_trains_through_the_cli(tiny_model_dir, tmp_path):
    """An online spec (``online = True``, ``score``, ``update_config``, a loss) from a test
    file, installed as an entry point: ``oreo train --algo toy-online --env`` runs its
    iterations through the online driver, with no change to the loop or the driver."""
    dist = tmp_path / "toy_online-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-online\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[oreo.algorithms]\ntoy = toy_online:register_algorithms\n"
    )
    paths = [str(tmp_path), str(PLUGINS), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200"}
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "toy-online", "--env",
        "oreo/Chain-v0", "-o", "size=40", "--split", "train", "--model", str(tiny_model_dir),
        "--out", str(out), "--batch-size", "4", "--micro-batch-size", "2", "--lr", "1e-2",
        "--report-to", "none", "--set", "tasks=2", "--set", "samples=2", "--set", "floor=0.5",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "iteration 1" in run.stdout and "success" in run.stdout
    log = [json.loads(line) for line in (out / "iterations.jsonl").read_text().splitlines()]
    # 2 tasks x 2 samples = one batch of 4 a iteration, one epoch: one step each
    assert [(r["iteration"], r["samples_seen"], r["optimizer_steps"]) for r in log] == [
        (0, 4, 1), (1, 8, 2)
    ]  # fmt: skip
    assert {"success_rate", "episodes"} <= set(log[0]) and "kl_mean" not in log[0]
    assert set(log[0]) - RECORD_KEYS == {"success_rate"}  # the plug-in's own total
    assert os.readlink(out / "policy") == "iter-0001/train/policy"
    assert not (out / "value").exists()  # it trains no value model: nothing to link
    second = out / "iter-0001" / "train"
    metrics = [json.loads(x) for x in (second / "metrics.jsonl").read_text().splitlines()]
    weight = 0.5 + 0.5 * log[1]["success_rate"]  # floor 0.5 for a failed episode
    assert [m["mean_weight"] for m in metrics] == pytest.approx([weight])
    config = json.loads((second / "checkpoint" / "progress.json").read_text())["config"]
    assert config["model"] == str(out / "iter-0000" / "train" / "policy")  # on from iteration 0
    assert config["data"] == str(out / "iter-0001" / "episodes")
    from transformers import AutoModelForCausalLM

    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir).lm_head.weight
    after = AutoModelForCausalLM.from_pretrained(out / "policy").lm_head.weight
    assert not torch.equal(before, after)


def test_rejection_sampling_keeps_successes_and_deduplicates_when_asked():
    from oreo_agents.data.episodes import Episode

    def ep(task, action, reward, sample):
        steps = [{"action": action, "observation": ""}]
        return Episode(
            "oreo/Chain-v0", task, "q", steps, reward, reward > 0, meta={"sample": sample}
        )

    episodes = [ep("a", "x", 1.0, 0), ep("a", "x", 1.0, 1), ep("a", "y", 1.0, 2),
                ep("a", "z", 0.0, 3), ep("b", "x", 1.0, 0)]  # fmt: skip
    rft = get_algorithm("rft")
    kept = rft.select(episodes, rft.settings(), "s")
    assert [e.key for e in kept] == [("a", 0), ("a", 1), ("a", 2), ("b", 0)]
    unique = rft.select(episodes, rft.settings({"deduplicate": True}), "s")
    assert [e.key for e in unique] == [("a", 0), ("a", 2), ("b", 0)]  # same task, same actions
