"""Evaluate a policy on an env split: greedy, sampling, value-guided beam search, best-of-K.

The strategies (``RolloutConfig.strategy``: greedy, sample, best-of-k, beam, and plug-ins) are
specs in `oreo_agents.evaluation.strategies`: each declares what it needs and runs the tasks.

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
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from oreo_agents.evaluation.embodied import embodied_block
from oreo_agents.evaluation.metrics import (
    curves,
    line_metrics,
    subsets,
    value_auroc,
    wilson_interval,
)
from oreo_agents.evaluation.search import ValueFn
from oreo_agents.evaluation.strategies import Run, get_strategy, strategy_names
from oreo_agents.rollout.collect import select_tasks
from oreo_agents.rollout.config import ActingConfig, CollectConfig
from oreo_agents.rollout.scripted import SCRIPTED
from oreo_agents.runtime.distributed import gather, rank_world
from oreo_agents.runtime.provenance import software
from oreo_envs import env_kind
from oreo_envs.files import atomic_write

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
        strategy: "greedy", "sample", "best-of-k", "beam" or a plug-in's name
            (`oreo_agents.evaluation.strategies`).
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
        spec = get_strategy(self.strategy)
        for name in ("k", "beam_width", "max_steps", "value_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}; got {self.scorer!r}")
        if spec.ranked and self.value is None and self.scorer != "implicit":
            raise ValueError(
                f"--strategy {self.strategy} ranks with a value model: pass --value DIR "
                "(or --scorer implicit)"
            )
        if self.scorer != "value" and not spec.ranked:
            raise ValueError(f"--scorer ranks states in --strategy {_which('ranked')}")
        if self.scorer == "implicit" and self.value is not None:
            raise ValueError("--scorer implicit uses no value model: drop --value (or use "
                             "--scorer value+implicit)")  # fmt: skip
        if "implicit" not in self.scorer and (self.reference is not None or self.beta is not None):
            raise ValueError("--reference and --beta belong to --scorer implicit / value+implicit")
        if self.beta is not None and self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not spec.scripted and self.policy in SCRIPTED:
            raise ValueError(f"the scripted policy {self.policy!r} runs with {_which('scripted')} "
                             "only")  # fmt: skip
        if self.reranker is not None and not spec.reranks:
            raise ValueError(f"--reranker ranks K samples: use --strategy {_which('reranks')}")
        if self.admissible and not spec.admissible:
            raise ValueError(f"--admissible applies to --strategy {_which('admissible')} in agent "
                             "envs")  # fmt: skip
        spec.check(self)

    @property
    def label(self) -> str:
        """The run's name in reports and tables: the strategy, or a scripted policy's name (a
        script is not decoded, so "greedy" would misname it)."""
        return self.policy if self.policy in SCRIPTED else self.strategy

    def collect_config(self, out: str, samples: int, temperature: float) -> CollectConfig:
        """The `CollectConfig` that runs this evaluation's episodes."""
        acting = {**self.acting(), "temperature": temperature}
        return CollectConfig(**acting, model=self.policy, out=out, samples=samples)


def _which(attribute: str) -> str:
    """The strategies that have ``attribute`` (``ranked``, ``reranks``...), for a message."""
    return " or ".join(n for n in strategy_names() if getattr(get_strategy(n), attribute))


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
    spec = get_strategy(cfg.strategy)
    if spec.ranked and value_fn is None:
        raise ValueError(f"--strategy {cfg.strategy} needs a value model")
    if (cfg.reranker is None) != (reranker_fn is None):
        raise ValueError("pass reranker_fn exactly when the config names a --reranker")
    if reranker_fn is not None and agent:
        raise ValueError("--reranker ranks finished answers; agent envs act with --value")
    run = Run(cfg, env, make_env, task_ids, backend=backend, value_fn=value_fn,
              scripted=scripted, progress=_counter(progress, len(task_ids)),
              reranker_fn=reranker_fn, agent=agent)  # fmt: skip
    records = spec.run(run)
    if world > 1:
        order = {t: i for i, t in enumerate(every)}
        records = sorted((r for part in gather(records) for r in part),
                         key=lambda r: order[r["task_id"]])  # fmt: skip
    for record in records:
        record["subset"] = _subset(unwrapped, record)
    env.close()
    elapsed = time.perf_counter() - started
    embodied = embodied_block(cfg, env, records, spec) if agent else None
    return _report(cfg, spec, records, unwrapped, elapsed, embodied)


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


def _report(cfg: RolloutConfig, spec, records, unwrapped, elapsed: float,
            embodied: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    for r in records:
        r["success"] = spec.task_success(r)
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
