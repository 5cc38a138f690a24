"""Evaluate a policy on an env split: greedy, sampling, value-guided beam search, best-of-K.

Strategies (``RolloutConfig.strategy``):

- ``greedy``: one greedy episode per task.
- ``sample``: K sampled episodes per task; the success rate is their mean (pass@1), beside
  pass@k (the unbiased estimator of Chen et al. 2021) and maj@k (majority over final answers).
- ``best-of-k``: math: K sampled responses reranked by the value model at their final state
  (the value model as an outcome verifier), reported beside maj@k; agent envs: value-guided
  acting, K candidate actions scored at every step (`oreo_agents.evaluation.acting`).
- ``beam``: value-guided step-level beam search
  (`oreo_agents.evaluation.search.beam_search`), graded by the env.

The report (`run_rollout`) holds the config, the overall ``success_rate`` with a 95% Wilson
interval, pass@k / maj@k / value@k curves, per-subset success (MATH ``level`` / ``type``,
ALFWorld ``task_type``, the split), timings and one record per task; the numbers come from
the pure functions of `oreo_agents.evaluation.metrics`. With K > 1 ranked samples, ``value_auroc``
says how well the value model separates successes from failures (overall and within a task);
on envs that label their lines (``oreo/Chain-v0``), ``lines`` gives the chains' per-line
accuracy, the rate of fully right chains and the share of successes with a wrong line. Agent
envs (ALFWorld, TextWorld) add an ``embodied`` block: the evaluated games and their hashes, the
step cap, the engine's versions, the decoding settings, the steps of won and lost games, the
"Nothing happens." rate and the share of lost games that end in a loop
(`oreo_agents.evaluation.embodied`).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oreo_agents.data.episodes import Episode, load_episodes
from oreo_agents.data.inputs import episode_state
from oreo_agents.evaluation.embodied import embodied_block, episode_flags
from oreo_agents.evaluation.metrics import (
    curves,
    line_metrics,
    subsets,
    value_auroc,
    wilson_interval,
)
from oreo_agents.evaluation.search import ValueFn, beam_search
from oreo_agents.rollout.collect import run_collect, select_tasks
from oreo_agents.rollout.config import ActingConfig, CollectConfig
from oreo_agents.rollout.prompting import make_prompter
from oreo_agents.rollout.scripted import SCRIPTED
from oreo_agents.runtime.distributed import gather, rank_world
from oreo_agents.runtime.provenance import software
from oreo_envs import env_kind
from oreo_envs.files import atomic_write

STRATEGIES = ("greedy", "sample", "beam", "best-of-k")
SCORERS = ("value", "implicit", "value+implicit")  # RolloutConfig.scorer
SUBSET_KEYS = ("level", "type", "task_type", "split")
REPORT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class RolloutConfig(ActingConfig):
    """What `oreo rollout` runs (with the `ActingConfig` fields).

    Attributes:
        policy: Hub id or folder of a causal LM (``oreo train``'s OUT/policy), or a scripted
            policy for reference rows: "gold", "expert", "random" (greedy and sample only).
        out: Path of the JSON report.
        strategy: "greedy", "sample", "beam" or "best-of-k" (module docstring).
        k: Samples per task (sample, best-of-k) or candidate actions per step (agent best-of-k).
        beam_width: B of the beam search (B beams, B candidates each per step).
        max_steps: Beam search step limit (the OREO paper: 20).
        value: Folder of the value model (``oreo train`` OUT/value); beam and best-of-k.
        admissible: Agent best-of-k: score every admissible action instead of K samples.
        value_batch_size: Sequences per value-model forward.
        reranker: An outcome reward model (``oreo train --algo orm``'s OUT/value) that also
            scores every finished sample of sample / best-of-k on answer envs: the report adds
            rerank@k (the sample it scores highest; Havrilla et al. 2024) beside maj@k and
            value@k.
        scorer: What ranks states in beam and best-of-k: "value" (the value model of
            ``value``), "implicit" (the value the OREO policy implies through its log-ratio to
            the reference, `oreo_agents.models.scorer.ImplicitScorer`; no value model needed)
            or "value+implicit" (their sum).
        reference: The implicit scorer's reference policy; default: the OREO run's ``--model``
            (read from its ``checkpoint/progress.json``).
        beta: The implicit scorer's beta; default: the OREO run's.
    """

    policy: str
    out: str
    strategy: str = "greedy"
    k: int = 1
    beam_width: int = 4
    max_steps: int = 20
    value: str | None = None
    admissible: bool = False
    value_batch_size: int = 16
    reranker: str | None = None
    scorer: str = "value"
    reference: str | None = None
    beta: float | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"strategy must be one of {', '.join(STRATEGIES)}; got {self.strategy!r}"
            )
        for name in ("k", "beam_width", "max_steps", "value_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.strategy == "greedy" and self.k != 1:
            raise ValueError(
                "greedy decoding gives one response per task; for pass@k and maj@k use "
                "--strategy sample --k K"
            )
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}; got {self.scorer!r}")
        ranked = self.strategy in ("beam", "best-of-k")
        if ranked and self.value is None and self.scorer != "implicit":
            raise ValueError(
                f"--strategy {self.strategy} ranks with a value model: pass --value DIR "
                "(or --scorer implicit)"
            )
        if self.scorer != "value" and not ranked:
            raise ValueError("--scorer ranks states in --strategy beam or best-of-k")
        if self.scorer == "implicit" and self.value is not None:
            raise ValueError("--scorer implicit uses no value model: drop --value (or use "
                             "--scorer value+implicit)")  # fmt: skip
        if "implicit" not in self.scorer and (self.reference is not None or self.beta is not None):
            raise ValueError("--reference and --beta belong to --scorer implicit / value+implicit")
        if self.beta is not None and self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.strategy not in ("greedy", "sample") and self.policy in SCRIPTED:
            raise ValueError(f"the scripted policy {self.policy!r} runs with greedy or sample only")
        if self.reranker is not None and self.strategy not in ("sample", "best-of-k"):
            raise ValueError("--reranker ranks K samples: use --strategy sample or best-of-k")
        if self.admissible and self.strategy != "best-of-k":
            raise ValueError("--admissible applies to --strategy best-of-k in agent envs")

    @property
    def label(self) -> str:
        """The run's name in reports and tables: the strategy, or a scripted policy's name (a
        script is not decoded, so "greedy" would misname it)."""
        return self.policy if self.policy in SCRIPTED else self.strategy

    def collect_config(self, out: str, samples: int, temperature: float) -> CollectConfig:
        """The `CollectConfig` that runs this evaluation's episodes."""
        acting = {**self.acting(), "temperature": temperature}
        return CollectConfig(**acting, model=self.policy, out=out, samples=samples)


def run_rollout(
    cfg: RolloutConfig,
    make_env: Callable[[], Any],
    *,
    backend: Any = None,
    value_fn: ValueFn | None = None,
    scripted: Callable[[Any], Any] | None = None,
    progress: Callable[[float, int], None] | None = None,
    reranker_fn: ValueFn | None = None,
) -> dict[str, Any]:
    """Run ``cfg`` and return its report (module docstring); `save_report` writes it. Under a
    multi-process launcher each rank evaluates every world-th task and every rank returns
    the report of all of them (the records are gathered).

    Args:
        cfg: The evaluation.
        make_env: Builds one env instance.
        backend: The policy's generator (None with ``scripted``).
        value_fn: The value model (beam and best-of-k).
        scripted: A scripted policy factory (``env -> policy``) in place of ``backend``.
        progress: Called as ``progress(done, total)`` in tasks (one of K samples counts 1/K).
        reranker_fn: The outcome reward model of ``cfg.reranker`` (rerank@k).

    Raises:
        ValueError: A strategy the env does not support, or a missing model.
    """
    started = time.perf_counter()
    env = make_env()
    unwrapped = env.unwrapped
    every = select_tasks(list(unwrapped.task_ids), cfg.tasks, cfg.seed)
    rank, world = rank_world()
    task_ids = every[rank::world]  # what run_collect takes on this rank too
    agent = env_kind(env) == "agent"
    progress = _counter(progress, len(task_ids))
    if cfg.strategy in ("beam", "best-of-k") and value_fn is None:
        raise ValueError(f"--strategy {cfg.strategy} needs a value model")
    if (cfg.reranker is None) != (reranker_fn is None):
        raise ValueError("pass reranker_fn exactly when the config names a --reranker")
    if reranker_fn is not None and agent:
        raise ValueError("--reranker ranks finished answers; agent envs act with --value")
    if cfg.strategy == "beam":
        if agent:
            raise ValueError(
                "beam search runs over reasoning steps of math envs; in agent envs use "
                "--strategy best-of-k (value-guided acting: K candidate actions per step)"
            )
        records = _beam_records(cfg, env, task_ids, backend, value_fn, progress)
    elif cfg.strategy == "best-of-k" and agent:
        records = _acting_records(cfg, make_env, task_ids, backend, value_fn, progress)
    else:
        records = _collect_records(cfg, make_env, task_ids, backend, scripted, value_fn, progress,
                                   reranker_fn, agent=agent)  # fmt: skip
    if world > 1:
        order = {t: i for i, t in enumerate(every)}
        records = sorted((r for part in gather(records) for r in part),
                         key=lambda r: order[r["task_id"]])  # fmt: skip
    for record in records:
        record["subset"] = _subset(unwrapped, record)
    env.close()
    elapsed = time.perf_counter() - started
    embodied = embodied_block(cfg, env, records) if agent else None
    return _report(cfg, records, unwrapped, elapsed, embodied)


def _counter(progress, total: int) -> Callable[[float], None] | None:
    """Turn ``progress(done, total)`` into an ``advance(n)`` the strategies call."""
    if progress is None:
        return None
    done = [0.0]
    progress(0.0, total)

    def advance(n: float) -> None:
        done[0] += n
        progress(done[0], total)

    return advance


def _collect_records(cfg, make_env, task_ids, backend, scripted, value_fn, progress, reranker,
                     agent=False):  # fmt: skip
    """greedy / sample / math best-of-k: K episodes per task through `run_collect`."""
    samples = 1 if cfg.strategy == "greedy" else cfg.k
    temperature = 0.0 if cfg.strategy == "greedy" else cfg.temperature
    # The evaluation's episodes live only as long as the run: the report keeps what matters.
    # run_collect draws the same seeded task sample (`select_tasks`) as `run_rollout`.
    with tempfile.TemporaryDirectory(prefix="oreo-rollout-") as tmp:
        ccfg = cfg.collect_config(tmp, samples, temperature)

        def on_episode(_episode, _stats):
            if progress is not None:
                progress(1 / samples)

        run_collect(ccfg, make_env, backend=backend, scripted=scripted, on_episode=on_episode)
        episodes = load_episodes(tmp)
    by_task: dict[str, list[Episode]] = {t: [] for t in task_ids}
    for ep in sorted(episodes, key=lambda e: e.meta["sample"]):
        by_task[ep.task_id].append(ep)
    records = [_record(t, [_sample(e, agent) for e in eps]) for t, eps in by_task.items()]
    flat = [
        (s, e)
        for r, eps in zip(records, by_task.values(), strict=True)
        for s, e in zip(r["samples"], eps, strict=True)
    ]
    for key, scorer in (("value", value_fn if cfg.strategy == "best-of-k" else None),
                        ("orm", reranker)):  # fmt: skip
        if scorer is not None:
            scores = scorer([episode_state(e, scorer.tokenizer) for _, e in flat])
            for (s, _), v in zip(flat, scores, strict=True):
                s[key] = float(v)
    if cfg.strategy == "best-of-k":
        for r in records:
            r["chosen"] = max(range(len(r["samples"])), key=lambda i: r["samples"][i]["value"])
    return records


def _beam_records(cfg, env, task_ids, backend, value_fn, progress):
    from oreo_envs.verifiers import has_final_answer

    u = env.unwrapped
    prompter = make_prompter(cfg, backend.tokenizer, None, env)
    prompts = [
        prompter.first("answer", *env.reset(seed=cfg.seed, options={"task_id": t}))
        for t in task_ids
    ]
    style = getattr(u, "dataset", "auto")
    results = beam_search(
        backend,
        value_fn,
        prompts,
        beam_width=cfg.beam_width,
        max_steps=cfg.max_steps,
        stop=tuple(u.step_delimiters),
        is_final=lambda text: has_final_answer(text, style=style),
        max_new_tokens=cfg.max_new_tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        seed=cfg.seed,
        control=cfg.control,
    )
    records = []
    for task_id, res in zip(task_ids, results, strict=True):
        info = _grade(env, task_id, res.text, cfg.seed)
        sample = {
            "success": bool(info.get("success", False)),
            "answer": info.get("answer"),
            "steps": res.steps,
            "tokens": res.generated_tokens,
            "value": res.value,
            "candidates": res.candidates,
            "text": res.text,
            **_labels(info),
        }
        records.append(_record(task_id, [sample]))
        if progress is not None:
            progress(1)
    return records


def _grade(env, task_id: str, text: str, seed: int) -> dict[str, Any]:
    """Play a finished response through the env (its steps, then EOS) and return the last info."""
    from oreo_envs.math_env import split_steps

    u = env.unwrapped
    env.reset(seed=seed, options={"task_id": task_id})
    if u.granularity == "response":
        actions = [text]
    else:
        actions = split_steps(text, u.step_delimiters) + [""]  # "" = the model's EOS
    info: dict[str, Any] = {}
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return info


def _acting_records(cfg, make_env, task_ids, backend, value_fn, progress):
    from oreo_agents.evaluation.acting import act_with_value

    episodes = act_with_value(
        cfg.collect_config("", 1, cfg.temperature),
        make_env,
        task_ids,
        backend=backend,
        value_fn=value_fn,
        k=cfg.k,
        admissible=cfg.admissible,
        on_episode=(lambda _e: progress(1)) if progress is not None else None,
    )
    records = []
    for ep in episodes:
        sample = _sample(ep, agent=True)
        sample["candidates"] = ep.meta.get("candidates", 0)
        records.append(_record(ep.task_id, [sample]))
    return records


def _sample(ep: Episode, agent: bool = False) -> dict[str, Any]:
    """A sample of a record; an agent env's adds the `episode_flags` fields."""
    return {
        "success": bool(ep.success),
        "answer": ep.info.get("answer"),
        "steps": len(ep.steps),
        "tokens": int(ep.meta.get("generated_tokens", 0)),
        "value": None,
        "text": ep.response,
        **_labels(ep.info),
        **(episode_flags(ep.steps) if agent else {}),
        **({"fewshot": ep.meta["fewshot"]} if "fewshot" in ep.meta else {}),
    }


def _labels(info: dict[str, Any]) -> dict[str, Any]:
    """The env's per-line faithfulness labels, where it gives them."""
    return {"line_correct": info["line_correct"]} if "line_correct" in info else {}


def _record(task_id: str, samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {"task_id": task_id, "samples": samples, "chosen": None}


def _subset(unwrapped: Any, record: dict[str, Any]) -> dict[str, Any]:
    """The task's subset labels: MATH level/type from the task, ALFWorld task type, split."""
    labels: dict[str, Any] = {}
    task_id = record["task_id"]
    if hasattr(unwrapped, "task"):
        labels.update(unwrapped.task(task_id).meta)
    games = getattr(unwrapped, "games", None)
    if isinstance(games, dict) and task_id in games:
        labels["task_type"] = games[task_id].task_type
    if getattr(unwrapped, "split", None) is not None:
        labels["split"] = unwrapped.split
    return {k: v for k, v in labels.items() if k in SUBSET_KEYS}


def task_success(record: dict[str, Any], strategy: str) -> float:
    """A task's score: the chosen sample's success, or the mean over samples (sample)."""
    samples = record["samples"]
    if record["chosen"] is not None:
        return float(samples[record["chosen"]]["success"])
    if strategy == "sample":
        return sum(s["success"] for s in samples) / len(samples)
    return float(samples[0]["success"])


def _report(cfg: RolloutConfig, records, unwrapped, elapsed: float,
            embodied: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    for r in records:
        r["success"] = task_success(r, cfg.strategy)
    n = len(records)
    successes = sum(r["success"] for r in records)
    all_samples = [s for r in records for s in r["samples"]]
    tokens = sum(s["tokens"] for s in all_samples)
    lo, hi = wilson_interval(successes, n)
    report = {
        "version": REPORT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": asdict(cfg),
        "software": software(),
        "env": cfg.env,
        "split": getattr(unwrapped, "split", None),
        "grade_mode": getattr(unwrapped, "grade_mode", None),  # math envs: strict or lenient
        "model": cfg.policy,
        "value": cfg.value,
        "reranker": cfg.reranker,
        "seed": cfg.seed,
        "strategy": cfg.label,  # how the CLI's table names the row; config holds the strategy
        "k": cfg.k,
        "tasks": n,
        "success_rate": successes / n if n else 0.0,
        "ci95": [lo, hi],
        **curves(records, answers=env_kind(unwrapped) == "answer"),
        **({"value_auroc": auroc} if (auroc := value_auroc(records)) else {}),
        **({"lines": lines} if (lines := line_metrics(records)) else {}),
        "mean_steps": sum(s["steps"] for s in all_samples) / max(len(all_samples), 1),
        "mean_tokens_per_task": tokens / max(n, 1),
        "subsets": subsets(records),
        **({"embodied": embodied} if embodied is not None else {}),
        "timings": {
            "total_s": elapsed,
            "s_per_task": elapsed / max(n, 1),
            "generated_tokens": tokens,
            "tokens_per_s": tokens / max(elapsed, 1e-9),
        },
        "records": records,
    }
    return report


def check_report_path(path: str | Path) -> None:
    """Refuse, before any evaluation, a report path that `save_report` could not write.

    Raises:
        ValueError: ``path`` is a folder, or its nearest existing folder is a file or not
            writable by this process (missing folders below it are created when saving).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(
            f"--out {path} is a folder; give the report's file, such as {path / 'report.json'}"
        )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"--out {path}: the folder {parent} is not writable")


def save_report(report: dict[str, Any], path: str | Path) -> Path:
    """Write the report as JSON (creating folders), atomically: a kill leaves the old report or
    the new one, never half of one. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, text=True) as f:
        f.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return path


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report written by `save_report`.

    Raises:
        ValueError: Not a rollout report.
    """
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(report, dict) or "success_rate" not in report:
        raise ValueError(f"{path} is not an oreo rollout report")
    return report
