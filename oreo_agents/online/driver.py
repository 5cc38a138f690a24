"""Online training (``oreo train --algo ppo --env ID``): iterations of collect -> score -> update.

Iteration i, in ``OUT/iter-000i/``:

1. ``episodes/``: ``tasks x samples`` episodes of the current policy (`run_collect`, the HF or
   vLLM backend loaded from the policy folder, so a new backend sees the new weights), on a new
   seeded sample of tasks.
2. ``experience.pt``: the scored samples (`oreo_agents.algorithms.ppo.make_experience`), written
   once, atomically; a resume reads it instead of scoring again with moved weights.
3. ``train/``: the update, an ordinary `run_train` run of the algorithm over those episodes
   (``ppo_epochs`` passes) from the current policy and critic; resumable to the micro-batch.

``OUT/iterations.jsonl`` gets one record per finished iteration (samples seen, optimizer steps,
wall time, the samples' success rate and reward, KL to the reference), and ``OUT/policy`` /
``OUT/value`` link to the newest update's models. Re-running the same command resumes: finished
iterations are skipped, the current one continues where it stopped. Each update starts its
optimizers afresh, or, with ``carry_optimizer``, from the previous update's last checkpoint
(Adam's moments and step count).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from oreo_envs.files import LOCK, atomic_write

ITERATIONS = "iterations.jsonl"
CONFIG = "online.json"
EXPORTS = ("policy", "value")


def run_online(cfg: Any, *, log: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Run ``cfg`` (a `TrainConfig` with ``env``) for its iterations or ``max_steps``; returns
    OUT/policy (module docstring).

    Raises:
        ValueError: Bad settings, an env that does not make, too few samples for one batch, or
            an output folder holding another run.
    """
    from oreo_agents.runtime.distributed import rank_world, wait_for_everyone
    from oreo_envs.registration import make_env

    settings, out = cfg.settings, Path(cfg.out)
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
    policy, critic = cfg.model, settings.critic or cfg.value or cfg.model
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
        scores = _score(cfg, policy, critic, folder)
        inner = _update_config(cfg, policy, critic, folder, it, steps)
        from oreo_agents.training.loop import run_train

        run_train(inner, log=log, end=False)
        done = _progress_steps(folder / "train")
        steps += done
        if main:
            _export(out, folder / "train")
        policy, critic = str(folder / "train" / "policy"), str(folder / "train" / "value")
        if done < scores["expected_steps"]:  # max_steps stopped it inside this iteration
            break
        record = _record(cfg, it, folder, scores, steps, time.perf_counter() - t0, records)
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
    from oreo_agents.generation import load_backend
    from oreo_agents.rollout.collect import run_collect
    from oreo_agents.rollout.config import CollectConfig
    from oreo_agents.runtime.distributed import device
    from oreo_envs.registration import make_env

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
    _free_memory()


def _score(cfg: Any, policy: str, critic: str, folder: Path) -> dict[str, Any]:
    """Score the iteration's episodes into ``experience.pt`` (each rank a share, rank 0 writes),
    or read the totals of an earlier scoring."""
    import torch

    from oreo_agents.algorithms.ppo import group_advantages, make_experience, whiten_experience
    from oreo_agents.data.batches import load_training_episodes
    from oreo_agents.data.tokenization import tokenize_episodes
    from oreo_agents.models.loading import load_tokenizer
    from oreo_agents.runtime.distributed import device, gather, rank_world, wait_for_everyone

    path, totals_path = folder / "experience.pt", folder / "experience.json"
    if totals_path.exists():
        return json.loads(totals_path.read_text())
    s = cfg.settings
    tokenizer = load_tokenizer(policy)
    episodes = load_training_episodes(str(folder / "episodes"))
    tokenized = tokenize_episodes(episodes, tokenizer, max_length=cfg.max_length)
    rank, world = rank_world()
    step_rewards = None if s.reward == "orm" else _step_rewards(cfg, episodes, tokenized)
    mine = list(range(rank, len(tokenized), world))
    models = _scoring_models(cfg, policy, critic, device() or "cpu")
    experience, totals = make_experience(
        models, [tokenized[i] for i in mine],
        None if step_rewards is None else [step_rewards[i] for i in mine], s,
        pad_id=tokenizer.pad_token_id, micro_batch_size=cfg.micro_batch_size,
        device=device() or "cpu",
    )  # fmt: skip
    del models
    _free_memory()
    merged: dict[str, Any] = {}
    sums = {"reward": 0.0, "kl": 0.0}
    for part, part_totals in gather((experience, totals)):
        merged.update(part)
        for k in sums:
            sums[k] += part_totals[k]
    if s.advantage == "group":
        group_advantages(merged, tokenized)
    if s.whiten_advantages:
        whiten_experience(merged, tokenized)
    n = len(tokenized)
    result = {
        "episodes": len(episodes),
        "success_rate": sum(e.success for e in episodes) / max(len(episodes), 1),
        "reward_mean": sums["reward"] / max(n, 1),
        "kl_mean": sums["kl"] / max(n, 1),
        "expected_steps": (n // cfg.batch_size) * s.ppo_epochs,
    }
    if rank == 0:
        with atomic_write(path) as f:
            torch.save(merged, f)
        with atomic_write(totals_path, text=True) as f:
            f.write(json.dumps(result) + "\n")
    wait_for_everyone()
    return result


def _step_rewards(cfg: Any, episodes: list[Any], tokenized: list[Any]) -> list[list[float]]:
    """The reward function's per-step rewards of each tokenized episode (by key)."""
    from oreo_agents.online.rewards import get_reward
    from oreo_envs.registration import make_env

    s = cfg.settings
    fn = get_reward(s.reward)
    options = {"weight": s.dense_weight} if s.reward == "dense" else {}
    env = make_env(cfg.env, cfg.env_options).unwrapped
    lookup = getattr(env, "task", None)
    by_key = {e.key: e for e in episodes}
    rewards = []
    for tok in tokenized:
        episode = by_key[(tok.task_id, tok.sample)]
        task = lookup(episode.task_id) if lookup is not None else None
        rewards.append(list(fn(episode, task, **options)))
    env.close()
    return rewards


def _scoring_models(cfg: Any, policy: str, critic: str, device: str) -> dict[str, Any]:
    import torch

    from oreo_agents.models.policy import load_policy
    from oreo_agents.models.value import ValueModel

    s = cfg.settings
    # Scoring only reads the models: on a GPU in bf16 (as training computes under bf16), so
    # three of them fit where training holds two.
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    models = {
        "policy": load_policy(policy, trainable=False, dtype=dtype),
        "reference": load_policy(s.reference or cfg.model, trainable=False, dtype=dtype),
        "value": ValueModel.from_pretrained(critic, dtype=dtype),
    }
    if s.reward == "orm":
        models["orm"] = ValueModel.from_pretrained(s.reward_model, dtype=dtype, require_head=True)
    for model in models.values():
        model.to(device).eval()
    return models


def _update_config(cfg: Any, policy: str, critic: str, folder: Path, it: int, steps: int):
    """The iteration's update: `run_train` of the algorithm on its scored episodes."""
    carried = ""
    if cfg.settings.carry_optimizer and it > 0:
        from oreo_agents.training.checkpoint import CheckpointDir

        last = CheckpointDir(folder.parent / _folder(it - 1) / "train").current
        if last is None:
            raise ValueError(f"iteration {it - 1} left no checkpoint to carry its optimizers from")
        carried = str(last / "state")
    settings = replace(
        cfg.settings,
        reference=cfg.settings.reference or cfg.model,
        critic=critic,
        experience=str(folder / "experience.pt"),
        optimizer_state=carried,
    )
    return replace(
        cfg,
        data=str(folder / "episodes"),
        env=None,
        env_options={},
        model=policy,
        value=None,  # the critic to start from is in the settings
        out=str(folder / "train"),
        epochs=cfg.settings.ppo_epochs,
        warmup_ratio=0.0,
        seed=cfg.seed + it,
        max_steps=None if cfg.max_steps is None else cfg.max_steps - steps,
        settings=settings,
    )


def _progress_steps(train_out: Path) -> int:
    from oreo_agents.training.checkpoint import CheckpointDir

    progress = CheckpointDir(train_out).progress()
    return progress["step"] if progress else 0


def _record(cfg, it, folder, scores, steps, wall, records) -> dict[str, Any]:
    seen = (records[-1]["samples_seen"] if records else 0) + scores["episodes"]
    total = (records[-1]["wall_total_s"] if records else 0.0) + wall
    return {
        "iteration": it,
        "episodes": scores["episodes"],
        "samples_seen": seen,
        "optimizer_steps": steps,
        "success_rate": scores["success_rate"],
        "reward_mean": scores["reward_mean"],
        "kl_mean": scores["kl_mean"],
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
    from oreo_agents.training.loop import RESUME_FREE

    new = {k: v for k, v in cfg.flat().items() if k not in RESUME_FREE}
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
        tmp = out / f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        os.symlink(os.path.relpath(train_out / name, out), tmp)
        try:
            os.replace(tmp, out / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
