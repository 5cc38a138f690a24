"""`oreo demo --fast` end to end: the report has a number for every method."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from oreo_agents.algorithms.rcrl import RCRLConfig
from oreo_agents.evaluation.metrics import wilson_interval

EXPECTED = {
    "sft", "oreo-r0", "rft-r0", "dpo-r0", "kto-r0", "rcrl-r0", "oreo+beam", "sft+orm", "ppo",
    "oreo-r1", "rft-r1", "oreo+value@k", "oreo+maj@k", "oreo+pass@k", "paper-r0", "paper+beam",
    "paper+value@k",
}  # fmt: skip


@pytest.mark.slow
def test_demo_fast_reports_every_method(tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    cmd = [sys.executable, "-m", "oreo_cli", "demo", "--fast", "--rounds", "2", "--out", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["results"]) == EXPECTED
    for name, result in report["results"].items():
        n = result["tasks"]
        assert n == report["config"]["test_tasks"]
        wins = result["success_rate"] * n
        assert wins == pytest.approx(round(wins)), name  # a rate of whole test tasks
        assert result["ci95"] == pytest.approx(wilson_interval(round(wins), n)), name
    # A randomly initialised model solves none of these tasks; SFT on gold solutions must.
    assert report["results"]["sft"]["success_rate"] > 0
    assert (out / "demo.png").stat().st_size > 1000
    assert "OREO + value-guided beam" in run.stdout and "rejection sampling" in run.stdout
    assert "PPO" in run.stdout and (out / "ppo" / "iterations.jsonl").exists()
    assert "RCRL" in run.stdout and "ORM rerank" in run.stdout
    assert "PIPELINE CHECK (--fast), not a result" in " ".join(run.stdout.split())
    # RCRL is evaluated conditioned on its good control text; the ORM picks one of K samples
    rcrl = json.loads((out / "rcrl-r0" / "eval-greedy.json").read_text())
    assert rcrl["config"]["control"] == RCRLConfig().good
    orm = json.loads((out / "sft" / "eval-best-of-k.json").read_text())
    assert orm["value"] == str(out / "orm" / "value") and orm["k"] == report["config"]["samples"]
    assert all(r["chosen"] is not None for r in orm["records"])
    # search rows: OREO's value model reranks search_k samples of its policy, beside maj@K and
    # pass@K of the same samples; the table shows each chain's line accuracy and the AUROC
    ranked = json.loads((out / "oreo-r1" / "eval-best-of-k.json").read_text())
    k = report["config"]["search_k"]
    assert ranked["k"] == k and ranked["value"] == str(out / "oreo-r1" / "value")
    results = report["results"]
    assert results["oreo+value@k"]["success_rate"] == ranked["value_at_k"][str(k)]
    assert results["oreo+pass@k"]["success_rate"] == ranked["pass_at_k"][str(k)]
    assert results["oreo+maj@k"]["success_rate"] == ranked["maj_at_k"][str(k)]
    assert results["oreo+pass@k"]["success_rate"] >= results["oreo+value@k"]["success_rate"]
    assert (
        results["sft"]["lines"]
        == json.loads((out / "sft" / "eval-greedy.json").read_text())["lines"]
    )
    assert f"OREO + value@{k}" in run.stdout and "vs greedy" in run.stdout
    # each search row against its policy's greedy row on the same tasks, paired
    for key, greedy in (("oreo+beam", "oreo-r1"), ("oreo+value@k", "oreo-r1"),
                        ("oreo+maj@k", "oreo-r1"), ("sft+orm", "sft")):  # fmt: skip
        vs = results[key]["vs_greedy"]
        diff = results[key]["success_rate"] - results[greedy]["success_rate"]
        assert vs["diff"] == pytest.approx(diff) and vs["tasks"] == results[key]["tasks"]
        assert vs["ci95"][0] <= vs["diff"] <= vs["ci95"][1]
        assert vs["won"] - vs["lost"] == round(diff * vs["tasks"])
    assert "vs_greedy" not in results["oreo-r1"] and "vs_greedy" not in results["oreo+pass@k"]
    if "within_task" in ranked.get("value_auroc", {}):
        assert results["oreo+value@k"]["value_auroc"] == ranked["value_auroc"]

    check_verifier_rows(out, results, k, run.stdout)

    # round 2: iterative OREO trains on from its round-1 policy; expert iteration starts again
    # from the SFT policy on the de-duplicated successes of both rounds' samples
    oreo, ei = trained(out, "oreo-r1"), trained(out, "rft-r1")
    assert oreo["model"] == str(out / "oreo-r0" / "policy")
    assert oreo["data"] == str(out / "samples-r1-oreo")
    assert oreo["value"] == str(out / "oreo-r0" / "value")  # the value trains on too
    assert ei["model"] == str(out / "sft" / "policy") and ei["deduplicate"] is True
    assert ei["data"] == f"{out / 'samples-r0'},{out / 'samples-r1-rft'}"


def trained(out, name):
    """The settings a demo stage's training ran with."""
    return json.loads((out / name / "checkpoint" / "progress.json").read_text())["config"]


def check_verifier_rows(out, results, k, stdout):
    """OREO's value is the verifier, the SFT policy trained further on the gold solutions, in
    the log-probability form; OREO-paper's starts from the policy, a head on the last state."""
    verifier = trained(out, "verifier")
    assert verifier["model"] == str(out / "sft" / "policy") and verifier["algo"] == "sft"
    assert verifier["data"] == str(out / "gold")
    oreo0, paper = trained(out, "oreo-r0"), trained(out, "paper-r0")
    assert oreo0["value"] == str(out / "verifier" / "policy") and oreo0["value_form"] == "logprob"
    assert paper["value"] is None and paper["value_form"] == "last"
    assert paper["model"] == oreo0["model"] == str(out / "sft" / "policy")
    assert paper["data"] == oreo0["data"] and paper["alpha"] == oreo0["alpha"]
    paper_ranked = json.loads((out / "paper-r0" / "eval-best-of-k.json").read_text())
    assert paper_ranked["value"] == str(out / "paper-r0" / "value")
    assert results["paper+value@k"]["success_rate"] == paper_ranked["value_at_k"][str(k)]
    for key in ("paper+beam", "paper+value@k"):
        vs = results[key]["vs_greedy"]
        diff = results[key]["success_rate"] - results["paper-r0"]["success_rate"]
        assert vs["diff"] == pytest.approx(diff)
    assert "OREO-paper + value@" in stdout and "paper's configuration" in stdout


def test_demo_settings_full_and_fast():
    from oreo_agents.recipes.demo import CHAIN, demo_config

    default, full = demo_config("d"), demo_config("d", full=True)
    assert default.env_options == full.env_options == CHAIN  # the calibrated task, both
    assert full.test_tasks > default.test_tasks and full.sft == default.sft
    assert default.search_k == default.beam_width**2  # value@K spends a beam's lines
    # the default demo checks its SFT start; --fast is a pipeline check and never stops there
    assert default.sft_floor == full.sft_floor > 0 and demo_config("d", fast=True).sft_floor == 0
    # the tasks the demo (and the benchmarks that extend it) draw: its knobs, sized per split
    assert default.task_options("train") == {**CHAIN, "size": 8000, "split": "train"}
    assert full.task_options("test") == {**CHAIN, "size": 500, "split": "test"}
    with pytest.raises(ValueError, match="exclude"):
        demo_config("d", fast=True, full=True)


def test_demo_stops_when_its_sft_start_fails_validation(tmp_path):
    """An SFT policy below the floor on validation tasks stops the demo with a message that
    says so, before anything learns from it; the CLI turns it into exit 2."""
    from dataclasses import replace

    from oreo_agents.recipes.demo import SFTNotConverged, demo_config, run_demo

    cfg = replace(demo_config(str(tmp_path / "d"), fast=True), sft_floor=0.99, val_tasks=20)
    stages = []
    with pytest.raises(SFTNotConverged, match=r"of 20 validation tasks greedily, below the 99%"):
        run_demo(cfg, stages.append)
    assert stages[-1] == "check SFT" and not (tmp_path / "d" / "samples-r0").exists()
    report = json.loads((tmp_path / "d" / "sft" / "eval-validation.json").read_text())
    assert report["config"]["env_options"]["data_seed"] == 1  # validation, not test tasks
    assert report["config"]["env_options"]["split"] == "train"
