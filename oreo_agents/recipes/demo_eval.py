"""`oreo demo`'s evaluations: greedy rollouts of each policy, OREO's searches and the ORM's
rerank on the test tasks (`evaluate`), and the report's rows (`results`)."""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import gymnasium

import oreo_envs  # noqa: F401
from oreo_agents.algorithms.rcrl import RCRLConfig
from oreo_agents.evaluation.evaluate import (
    RolloutConfig,
    load_report,
    run_rollout,
    save_report,
)
from oreo_agents.evaluation.metrics import majority_index, paired_difference, wilson_interval
from oreo_agents.evaluation.strategies import get_strategy
from oreo_agents.generation import load_backend
from oreo_agents.models.scorer import ValueScorer

ENV_ID = "oreo/Chain-v0"


def _ignore(_done: float, _total: float | None) -> None:
    pass


def evaluate(cfg, policies: dict[str, str], last_oreo: Path, orm: Path, options, timed, tick):
    """Greedy rollouts of every policy (RCRL told its good control text), the last OREO policy
    with value-guided beam and reranking ``search_k`` of its samples (and so OREO in the
    paper's configuration where the demo trained it), and the ORM's pick among K samples of
    the SFT policy."""
    controls = {"rcrl": RCRLConfig().good}  # return-conditioned: told to act as the good did
    evaluations = {}
    for key, path in policies.items():
        control = controls.get(key.partition("-r")[0], "")
        evaluations[key] = timed(
            f"eval {key}", rollout, cfg, path, None, options, "greedy", control, progress=tick
        )
    searched = {"oreo": ("OREO", last_oreo)}
    if "paper-r0" in policies:  # OREO in the paper's configuration, beside the verifier's
        searched["paper"] = ("OREO-paper", Path(policies["paper-r0"]).parent)
    for key, (label, trained) in searched.items():
        policy, value = str(trained / "policy"), str(trained / "value")
        evaluations[f"{key}+beam"] = timed(
            f"eval {label} + beam", rollout, cfg, policy, value, options, "beam", progress=tick
        )
        evaluations[f"{key}+value@k"] = timed(
            f"eval {label} + value@K", rollout, cfg, policy, value, options, "best-of-k",
            k=cfg.search_k, progress=tick,
        )  # fmt: skip
    evaluations["sft+orm"] = timed(
        "eval SFT + ORM rerank", rollout, cfg, policies["sft"], str(orm), options, "best-of-k",
        k=cfg.samples, progress=tick,
    )  # fmt: skip
    return evaluations


def rollout(
    cfg, policy: str, value: str | None, options, strategy: str, control: str = "", k: int = 1,
    progress=_ignore, tasks: int | None = None, name: str | None = None,
):  # fmt: skip
    """One `run_rollout` of ``policy`` on ``tasks`` tasks of ``options`` (default the test
    tasks), its report written beside the policy as ``eval-NAME.json`` (default the
    strategy's name) and reused by a resumed demo when its config is the same."""

    rc = RolloutConfig(
        env=ENV_ID, policy=policy, out=str(Path(policy).parent / f"eval-{name or strategy}.json"),
        env_options=options, tasks=tasks or cfg.test_tasks, strategy=strategy, value=value,
        beam_width=cfg.beam_width, max_new_tokens=cfg.max_new_tokens, backend="hf",
        batch_size=64, seed=cfg.seed, temperature=1.0, control=control,
        k=k,
    )  # fmt: skip
    gran = get_strategy(strategy).env_options  # beam: over reasoning steps
    rc = replace(rc, env_options={**options, **gran})
    done = Path(rc.out)
    if done.exists():  # a resumed demo re-uses an evaluation of the same config
        report = load_report(done)
        if report["config"] == json.loads(json.dumps(asdict(rc))):
            return report
    backend = load_backend("hf", policy, batch_size=64)
    value_fn = None
    if value is not None:
        value_fn = ValueScorer.from_pretrained(value, backend.tokenizer, batch_size=64)
    report = run_rollout(
        rc, lambda: gymnasium.make(ENV_ID, **options, **gran), backend=backend, value_fn=value_fn,
        progress=progress,
    )  # fmt: skip
    save_report(report, done)
    return report


def results(evaluations: dict[str, Any], k: int, oreo: str) -> dict[str, dict[str, Any]]:
    """One row per evaluation (success, CI, the chains' line metrics, the value model's AUROC
    where it ranked samples), with maj@K and pass@K of OREO's K reranked samples as rows of
    their own after value@K (both a whole number of tasks: one vote, or whether any of the K
    is right). Each search row (beam, value@K and maj@K of the ``oreo`` policy, the ORM's
    rerank of SFT samples) also holds ``vs_greedy``: its difference from the same policy's
    greedy row on the same tasks, with the paired interval (`paired_difference`)."""
    results = {}
    for key, r in evaluations.items():
        n = len(r["records"])
        results[key] = {"success_rate": r["success_rate"], "ci95": r["ci95"], "tasks": n}
        for extra in ("lines", "value_auroc"):
            if extra in r:
                results[key][extra] = r[extra]
        if key == "oreo+value@k":
            for name, curve in (("maj", "maj_at_k"), ("pass", "pass_at_k")):
                rate = r[curve][str(k)]
                ci = list(wilson_interval(round(rate * n), n))
                results[f"oreo+{name}@k"] = {"success_rate": rate, "ci95": ci, "tasks": n}
    searches = {"oreo+beam": oreo, "oreo+value@k": oreo, "paper+beam": "paper-r0",
                "paper+value@k": "paper-r0", "sft+orm": "sft"}  # fmt: skip
    for key, greedy in searches.items():
        if key in evaluations and greedy in evaluations:
            results[key]["vs_greedy"] = _vs(evaluations[greedy], evaluations[key])
    if "oreo+value@k" in evaluations and oreo in evaluations:
        maj = {}  # per task: the majority answer of the first K samples is right
        for rec in evaluations["oreo+value@k"]["records"]:
            i = majority_index([s.get("answer") for s in rec["samples"][:k]])
            maj[rec["task_id"]] = 0 if i is None else int(bool(rec["samples"][i]["success"]))
        results["oreo+maj@k"]["vs_greedy"] = _vs(evaluations[oreo], maj)
    return results


def _vs(greedy: dict[str, Any], search: dict[str, Any]) -> dict[str, Any]:
    """`paired_difference` of a search's outcomes (a report, or task id -> 0/1) from greedy's,
    over the tasks greedy evaluated."""
    outcome = search if "records" not in search else {
        rec["task_id"]: int(bool(rec["success"])) for rec in search["records"]
    }  # fmt: skip
    tasks = [rec["task_id"] for rec in greedy["records"]]
    base = [int(bool(rec["success"])) for rec in greedy["records"]]
    return paired_difference(base, [outcome[t] for t in tasks])
