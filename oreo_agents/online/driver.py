"""Online training (``oreo train --algo ALGO --env ID`` for an online algorithm, e.g. ppo):
iterations of collect -> score -> update. The loop reaches it only through the algorithm's spec
(`Algorithm.run_online`), so the offline loop holds no online code.

Iteration i, in ``OUT/iter-000i/``:

1. ``episodes/``: ``tasks x samples`` episodes of the current policy (`run_collect`, the HF or
   vLLM backend loaded from the policy folder, so a new backend sees the new weights), on a new
   seeded sample of tasks. The settings of collection (``tasks``, ``samples``, ``iterations``,
   ``temperature``, ``max_new_tokens``, ``backend``, ``generation_batch_size``,
   ``chat_template``) are fields every online algorithm's config has.
2. the spec's ``score``: whatever the update reads (PPO: ``experience.pt``, the scored samples,
   written once, atomically, so a resume reads it instead of scoring again with moved weights),
   and the iteration's totals for its record.
3. ``train/``: the update, an ordinary `run_train` run of the config the spec's
   ``update_config`` gives (PPO: ``ppo_epochs`` passes over the scored episodes) from the
   current policy and critic; resumable to the micro-batch.

``OUT/iterations.jsonl`` gets one record per finished iteration (samples seen, optimizer steps,
wall time, and the spec's totals: PPO's success rate, reward and KL to the reference), and
``OUT/policy`` / ``OUT/value`` link to the newest update's models. Re-running the same command
resumes: finished iterations are skipped, the current one continues where it stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from oreo_agents.generation import load_backend
from oreo_agents.rollout.collect import run_collect
from oreo_agents.rollout.config import CollectConfig
from oreo_agents.runtime.distributed import device, free_memory, rank_world, wait_for_everyone
from oreo_agents.training.checkpoint import CheckpointDir
from oreo_envs.files import LOCK, atomic_write
from oreo_envs.registration import make_env

ITERATIONS = "iterations.jsonl"
CONFIG = "online.json"
EXPORTS = ("policy", "value")


def run_online(
    cfg: Any, update: Callable[..., Any], *, log: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """Run ``cfg`` (a `TrainConfig` with ``env``) for its iterations or ``max_steps``; returns
    OUT/policy (module docstring). The algorithm's spec scores each iteration's episodes
    (``score``) and says what its update trains (``update_config``); ``update(config, log=,
    end=False)`` trains it (the loop's `run_train`, passed in so that the loop and this driver
    do not import each other).

    Raises:
        ValueError: Bad settings, an env that does not make, too few samples for one batch, or
            an output folder holding another run.
    """
    spec, settings, out = cfg.spec, cfg.settings, Path(cfg.out)
    if settings.tasks * settings.samples < cfg.batch_size:
        raise ValueError(
            f"{settings.tasks} tasks x {settings.samples} samples per iteration do not fill one "
            f"batch of {cfg.batch_size}; lower --batch-size or raise tasks / samples"
        )
    make_env(cfg.env, cfg.env_options).close()  # a bad id or option fails before any compute
    main = rank_world()[0] == 0
    settings_record = _check_resume(cfg, out)
    wait_for_everyone()  # every rank has checked before the first one writes
    if main and settings_record is not None:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / CONFIG, text=True) as f:
            f.write(json.dumps(settings_record, indent=2))
    wait_for_everyone()
    records = _records(out)
    policy, critic = cfg.model, cfg.value or cfg.model
    if records:
        last = out / _folder(len(records) - 1) / "train"
        policy, critic = str(last / "policy"), str(last / "value")
    steps = records[-1]["optimizer_steps"] if records else 0
    for it in range(len(records), settings.iterations):
        if cfg.max_steps is not None and steps >= cfg.max_steps:
            break
        folder = out / _folder(it)
        t0 = time.perf_counter()
        _collect(cfg, policy, folder / "episodes", it)
        wait_for_everyone()
        scores = spec.score(cfg, policy, critic, folder)
        previous = out / _folder(it - 1) / "train" if it > 0 else None
        update(spec.update_config(cfg, policy, critic, folder, previous, it, steps), log=log,
               end=False)  # fmt: skip
        done = _progress_steps(folder / "train")
        steps += done
        if main:
            _export(out, folder / "train")
        policy, critic = str(folder / "train" / "policy"), str(folder / "train" / "value")
        if done < scores["expected_steps"]:  # max_steps stopped it inside this iteration
            break
        record = _record(it, scores, steps, time.perf_counter() - t0, records)
        records.append(record)
        if main:
            with (out / ITERATIONS).open("a") as f:
                f.write(json.dumps(record) + "\n")
            if log is not None:
                log({"iteration": it, **record})
        wait_for_everyone()
    return out / "policy"


def _folder(it: int) -> str:
    return f"iter-{it:04d}"


def _collect(cfg: Any, policy: str, dest: Path, it: int) -> None:
    """This iteration's samples into ``dest`` (resumes a store an interrupt left)."""
    s = cfg.settings
    collect = CollectConfig(
        env=cfg.env, env_options=cfg.env_options, model=policy, out=str(dest), tasks=s.tasks,
        samples=s.samples, max_new_tokens=s.max_new_tokens, temperature=s.temperature,
        backend=s.backend, batch_size=s.generation_batch_size, seed=cfg.seed + 1000 * it,
        chat_template=s.chat_template,
    )  # fmt: skip
    backend = load_backend(s.backend, policy, batch_size=s.generation_batch_size, device=device())
    run_collect(collect, lambda: make_env(cfg.env, cfg.env_options), backend=backend)
    del backend
    free_memory()


def _progress_steps(train_out: Path) -> int:

    progress = CheckpointDir(train_out).progress()
    return progress["step"] if progress else 0


# What every iteration's record holds beside the spec's own totals (`_record`): what a
# display shows of the spec's numbers is the rest.
RECORD_KEYS = frozenset(
    {"iteration", "episodes", "samples_seen", "optimizer_steps", "wall_s", "wall_total_s"}
)


def _record(it, scores, steps, wall, records) -> dict[str, Any]:
    """An iteration's line of ``iterations.jsonl``: the totals of the spec's ``score`` (but
    its ``expected_steps``), with the samples, steps and time so far."""
    seen = (records[-1]["samples_seen"] if records else 0) + scores["episodes"]
    total = (records[-1]["wall_total_s"] if records else 0.0) + wall
    totals = {k: v for k, v in scores.items() if k != "expected_steps"}
    return {
        "iteration": it,
        **totals,
        "samples_seen": seen,
        "optimizer_steps": steps,
        "wall_s": round(wall, 2),
        "wall_total_s": round(total, 2),
    }


def _records(out: Path) -> list[dict[str, Any]]:
    """Finished iterations' records (a last line torn by a kill is dropped)."""
    path = out / ITERATIONS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return records


def _check_resume(cfg: Any, out: Path) -> dict[str, Any] | None:
    """The run's settings to record in ``OUT/online.json`` for a new run, or None when ``out``
    holds this run already (to resume).

    Raises:
        ValueError: The folder holds another run (other settings, or no online run at all).
    """
    new = cfg.fixed()
    path = out / CONFIG
    if path.exists():
        changed = sorted(cfg.changed(json.loads(path.read_text())))
        if changed:
            raise ValueError(
                f"{out} holds an online run with other settings ({', '.join(changed)}); resume "
                "with the same settings or choose another --out"
            )
        return None
    if out.exists() and any(not p.name.startswith(LOCK) for p in out.iterdir()):
        raise ValueError(f"{out} is not empty and holds no online run; choose another --out")
    return new


def _export(out: Path, train_out: Path) -> None:
    """Point OUT/policy and OUT/value at the newest update's, each switched atomically (through
    a link of a name no other writer uses, as `atomic_write` does for files)."""
    for name in EXPORTS:
        if not (train_out / name).exists():  # an algorithm with no value model
            continue
        tmp = out / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        os.symlink(os.path.relpath(train_out / name, out), tmp)
        try:
            os.replace(tmp, out / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
