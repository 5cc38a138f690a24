"""`oreo rollout` end to end: a tiny policy and value from `oreo train`, every strategy on a math
env and an agent env; reports are written, reload, and agree with each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
import torch
from rich.console import Console

from conftest import oreo_in_process
from oreo_agents.evaluation.evaluate import RolloutConfig, load_report

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "160"}
MATH = "oreo/GSMSymbolic-v0"


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory):
    """OUT/policy and OUT/value of two OREO steps on gold and wrong answers (OREO-math rows)."""
    import gymnasium

    import oreo_envs  # noqa: F401

    env = gymnasium.make(MATH, size=20)
    rows = []
    for task_id in env.unwrapped.task_ids[:4]:
        prompt = env.unwrapped.prompt(env.unwrapped.task(task_id))
        rows.append({"prompt": prompt, "response": " " + env.unwrapped.task(task_id).solution,
                     "reward": 1})  # fmt: skip
        rows.append({"prompt": prompt, "response": " No idea.\n#### 0", "reward": 0})
    root = tmp_path_factory.mktemp("rollout")
    data = root / "mixed.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cmd = [
        sys.executable, "-m", "oreo_cli", "train", "--algo", "oreo", "--data", str(data),
        "--model", str(tiny_model_dir), "--out", str(root / "run"), "--batch-size", "4",
        "--micro-batch-size", "4", "--max-steps", "2", "--set", "lr=1e-3",
        "--set", "value_lr=1e-3", "--set", "max_length=1024",
    ]  # fmt: skip
    run = oreo_in_process(*cmd[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    return root / "run"


def rollout(tmp_path, trained, env, options, name, **kwargs):
    """Run the command's recipe in-process (the CLI surface has its own subprocess test)."""
    from oreo_cli.rollout import run

    cfg = RolloutConfig(
        env=env, policy=str(trained / "policy"), out=str(tmp_path / f"{name}.json"),
        env_options=options, max_new_tokens=8, backend="hf",
        **{"value": str(trained / "value"), **kwargs},
    )  # fmt: skip
    console = Console(file=StringIO(), width=160)
    run(cfg, console)
    return load_report(cfg.out), console.file.getvalue()


def task_rate(report, per_task):
    """The mean over tasks of ``per_task(sample successes)``, from the report's own records."""
    rates = [float(per_task([s["success"] for s in r["samples"]])) for r in report["records"]]
    return sum(rates) / len(rates)


def test_every_strategy_on_math_gives_consistent_reports(trained, tmp_path):
    opts = {"size": 20}  # response level: one generation per episode keeps this fast
    greedy, text = rollout(tmp_path, trained, MATH, opts, "greedy", tasks=3)
    assert greedy["tasks"] == 3 and "success by split" in text
    assert greedy["success_rate"] == pytest.approx(task_rate(greedy, any))
    assert greedy["pass_at_k"]["1"] == pytest.approx(task_rate(greedy, any))
    assert greedy["maj_at_k"]["1"] == pytest.approx(task_rate(greedy, any))
    assert greedy["model"].endswith("policy") and greedy["config"]["strategy"] == "greedy"

    sample, _ = rollout(tmp_path, trained, MATH, opts, "sample", tasks=3, strategy="sample", k=3)
    assert set(sample["pass_at_k"]) == {"1", "2", "3"} and set(sample["maj_at_k"]) == {
        "1",
        "2",
        "3",
    }
    assert all(len(r["samples"]) == 3 for r in sample["records"])
    # pass@1 is the mean over all samples; pass@K (K = all samples) is "any sample right"
    mean = task_rate(sample, lambda wins: sum(wins) / len(wins))
    assert sample["success_rate"] == pytest.approx(mean)
    assert sample["pass_at_k"]["1"] == pytest.approx(mean)
    assert sample["pass_at_k"]["3"] == pytest.approx(task_rate(sample, any))

    best, text = rollout(tmp_path, trained, MATH, opts, "best", tasks=3, strategy="best-of-k", k=3)
    assert best["success_rate"] == best["value_at_k"]["3"] and "value@3" in text
    for r in best["records"]:
        values = [s["value"] for s in r["samples"]]
        assert values[r["chosen"]] == max(values)

    beam, _ = rollout(
        tmp_path, trained, MATH, opts, "beam", tasks=2, strategy="beam", beam_width=2, max_steps=2
    )
    assert beam["tasks"] == 2
    assert beam["success_rate"] == pytest.approx(task_rate(beam, any))
    assert beam["pass_at_k"]["1"] == pytest.approx(task_rate(beam, any))
    for r in beam["records"]:
        (s,) = r["samples"]
        assert 1 <= s["steps"] <= 2 and s["tokens"] > 0 and s["candidates"] >= 2


def test_implicit_scorer_ranks_the_same_samples(trained, tmp_path):
    """--scorer implicit (the OREO policy's log-ratio to its run's reference, no value model)
    and value+implicit score the samples that --scorer value scores: the sum is the sum."""
    opts = {"size": 20}
    common = {"tasks": 3, "strategy": "best-of-k", "k": 3}
    by_value, _ = rollout(tmp_path, trained, MATH, opts, "v", **common)
    implicit, text = rollout(tmp_path, trained, MATH, opts, "i", **common, scorer="implicit",
                             value=None)  # fmt: skip
    both, _ = rollout(tmp_path, trained, MATH, opts, "vi", **common, scorer="value+implicit")
    assert implicit["config"]["scorer"] == "implicit" and "value@3" in text
    for rv, ri, rb in zip(by_value["records"], implicit["records"], both["records"], strict=True):
        assert [s["text"] for s in rv["samples"]] == [s["text"] for s in ri["samples"]]
        for sv, si, sb in zip(rv["samples"], ri["samples"], rb["samples"], strict=True):
            assert sb["value"] == pytest.approx(sv["value"] + si["value"], abs=1e-4)
        values = [s["value"] for s in ri["samples"]]
        assert values[ri["chosen"]] == max(values)
    # two steps of training moved the policy off its reference: the implied values are not 0
    assert any(s["value"] != 0 for r in implicit["records"] for s in r["samples"])
    with pytest.raises(ValueError, match="drop --value"):
        RolloutConfig(env=MATH, policy="p", out="o", strategy="best-of-k", value="v",
                      scorer="implicit")  # fmt: skip
    with pytest.raises(ValueError, match="--scorer ranks states"):
        RolloutConfig(env=MATH, policy="p", out="o", scorer="implicit")


def test_reasoning_gym_is_an_answer_env_with_votes_and_value_reranking(trained, tmp_path):
    """It has no step delimiters of its own: it used to be taken for an agent env, losing maj@k
    and failing best-of-k."""
    opts = {"size": 10}
    best, _ = rollout(tmp_path, trained, "oreo/ReasoningGym-v0", opts, "rg", tasks=3,
                      strategy="best-of-k", k=3)  # fmt: skip
    assert set(best["maj_at_k"]) == {"1", "2", "3"} and set(best["value_at_k"]) == {"1", "2", "3"}
    assert all(len(r["samples"]) == 3 for r in best["records"])


def test_command_line_writes_report_and_plot(trained, tmp_path):
    cmd = [
        sys.executable, "-m", "oreo_cli", "rollout", "--env", MATH, "-o", "size=20",
        "--tasks", "2", "--policy", str(trained / "policy"), "--max-new-tokens", "6",
        "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"), "--backend", "hf",
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "report written" in run.stdout and "pass@1" in run.stdout
    # Six tokens of a barely trained model cannot hold "#### N": a grader that accepts
    # anything fails here, and one that accepts nothing fails on the gold policy below.
    report = load_report(tmp_path / "r.json")
    assert report["success_rate"] == 0.0
    assert report["software"]["torch"] == torch.__version__  # what produced it
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    gold = [*cmd[:10], "--policy", "gold", "--out", str(tmp_path / "gold.json")]
    run = oreo_in_process(*gold[3:])
    assert run.returncode == 0, run.stdout + run.stderr
    assert load_report(tmp_path / "gold.json")["success_rate"] == 1.0
    bad = oreo_in_process(*cmd[3:-4], "--strategy", "beam")
    assert bad.returncode == 2 and "pass --value DIR" in bad.stdout


@pytest.mark.parametrize("out", ["runs", "runs/", "missing/sub/r.json", "afile/r.json"])
def test_an_out_that_cannot_be_written_is_refused_before_evaluating(tmp_path, monkeypatch, out):
    """An existing folder (or a path under a file) as --out: refused in one line before any
    task runs, with no temporary file left in the working folder."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "afile").write_text("")
    cmd = [sys.executable, "-m", "oreo_cli", "rollout", "--env", MATH, "-o", "size=20",
           "--policy", "gold", "--out", out]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    run = oreo_in_process(*cmd[3:])
    if out.startswith("missing"):  # missing folders are created, as before
        assert run.returncode == 0, run.stdout + run.stderr
        assert load_report(tmp_path / out)["tasks"] == 20
        return
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stdout.startswith("error: ") and run.stdout.count("\n") == 1, run.stdout
    assert "--out" in run.stdout and "Traceback" not in run.stderr
    assert "rollout greedy" not in run.stdout  # no task ran
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["afile", "runs"]


def test_agent_env_strategies_and_reference_rows(trained, tmp_path):
    pytest.importorskip("alfworld")
    from oreo_cli.rollout import run

    opts = {"split": "bundled", "max_episode_steps": 3}
    greedy, text = rollout(tmp_path, trained, "oreo/ALFWorld-v0", opts, "g")
    assert greedy["tasks"] == 6 and greedy["split"] == "bundled" and "maj_at_k" not in greedy
    assert len(greedy["subsets"]["task_type"]) == 6 and "success by task_type" in text
    assert greedy["success_rate"] == pytest.approx(task_rate(greedy, any))
    assert greedy["pass_at_k"]["1"] == pytest.approx(task_rate(greedy, any))
    sample, _ = rollout(
        tmp_path, trained, "oreo/ALFWorld-v0", opts, "s", tasks=2, strategy="sample", k=2
    )
    assert set(sample["pass_at_k"]) == {"1", "2"}
    acted, _ = rollout(
        tmp_path, trained, "oreo/ALFWorld-v0", opts, "b", tasks=2, strategy="best-of-k", k=3
    )
    for r in acted["records"]:
        (s,) = r["samples"]
        assert s["steps"] == 3 and 3 <= s["candidates"] <= 9  # K sampled actions per step
    pooled, _ = rollout(
        tmp_path, trained, "oreo/ALFWorld-v0", opts, "p", tasks=2, strategy="best-of-k", k=3,
        env_workers=2,
    )  # fmt: skip
    assert [r["samples"] for r in pooled["records"]] == [r["samples"] for r in acted["records"]]
    admissible, _ = rollout(
        tmp_path, trained, "oreo/ALFWorld-v0", opts, "a", tasks=2, strategy="best-of-k",
        admissible=True,
    )  # fmt: skip
    assert all(r["samples"][0]["candidates"] > 3 for r in admissible["records"])
    with pytest.raises(ValueError, match="use --strategy best-of-k"):
        rollout(tmp_path, trained, "oreo/ALFWorld-v0", opts, "x", strategy="beam")
    cfg = RolloutConfig(
        env="oreo/ALFWorld-v0", policy="expert", out=str(tmp_path / "e.json"),
        env_options={"split": "bundled"},
    )  # fmt: skip
    run(cfg, Console(file=StringIO()))
    expert = load_report(cfg.out)
    assert expert["success_rate"] == 1.0
    assert all(row["success_rate"] == 1.0 for row in expert["subsets"]["task_type"].values())


def test_a_plugin_strategy_runs_through_the_cli(tiny_model_dir, tmp_path):
    """A strategy spec from a test file, installed as an ``oreo.strategies`` entry point, runs
    through ``oreo rollout --strategy`` in a fresh process, with no change to the library."""
    from pathlib import Path

    dist = tmp_path / "toy_strategy-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-strategy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[oreo.strategies]\ntoy = toy_strategy:register_strategies\n"
    )
    plugins = Path(__file__).parents[1] / "agents" / "plugins"
    paths = [str(tmp_path), str(plugins), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**ENV, "PYTHONPATH": os.pathsep.join(paths)}
    out = tmp_path / "short.json"
    cmd = [
        sys.executable, "-m", "oreo_cli", "rollout", "--env", "oreo/Chain-v0", "--split", "test",
        "-o", "size=6", "--tasks", "4", "--policy", str(tiny_model_dir), "--strategy",
        "shortest-of-k", "--k", "3", "--temperature", "1.0", "--max-new-tokens", "12",
        "--out", str(out),
    ]  # fmt: skip
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    report = load_report(out)
    assert report["strategy"] == "shortest-of-k" and report["tasks"] == 4
    for r in report["records"]:
        tokens = [s["tokens"] for s in r["samples"]]
        assert len(tokens) == 3 and tokens[r["chosen"]] == min(tokens)
        assert r["success"] == r["samples"][r["chosen"]]["success"]
    assert set(report["pass_at_k"]) == {"1", "2", "3"}
    # without the plug-in the name is unknown, and the message lists what is registered
    bare = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert bare.returncode == 2 and "strategy must be one of greedy, sample" in bare.stdout
