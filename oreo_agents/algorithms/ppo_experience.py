"""PPO's experience: what an online iteration scores before its update (`oreo_agents.algorithms.ppo`
trains on it). `score_iteration` loads the iteration's episodes and the scoring models and calls
`make_experience` (the sampling policy's and the reference's log-probs, the critic's values, the
task reward placed on tokens, per-token KL-penalised rewards, GAE advantages and returns), or
`group_advantages` for RLOO; `update_config` says what the update trains. PPO's spec hands both
to the online driver (`oreo_agents.online.driver`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from oreo_agents.algorithms.base import logits, shifted
from oreo_agents.data.batches import load_training_episodes
from oreo_agents.data.tokenization import TokenizedEpisode, collate, tokenize_episodes
from oreo_agents.losses import gae, kl_rewards, leave_one_out, token_logps, whiten
from oreo_agents.models.loading import load_tokenizer
from oreo_agents.models.policy import load_policy
from oreo_agents.models.value import ValueModel
from oreo_agents.online.rewards import get_reward
from oreo_agents.runtime.distributed import (
    device,
    free_memory,
    gather,
    rank_world,
    wait_for_everyone,
)
from oreo_agents.training.checkpoint import CheckpointDir
from oreo_envs.files import atomic_write
from oreo_envs.registration import make_env

EXPERIENCE_FIELDS = ("old_logps", "old_values", "advantages", "returns")


def sampled_logps(model: Any, batch: dict[str, Any], labels: Any, temperature: float) -> Any:
    """``[B, T - 1]`` log-probs of ``labels`` under softmax(logits / temperature): the
    distribution collection sampled from."""
    return token_logps(logits(model, batch) / temperature, labels)


def episode_key(episode: Any) -> str:
    """A tokenized episode's key in an experience file: ``task_id/sample``."""
    return f"{episode.task_id}/{episode.sample}"


def place_rewards(episode: TokenizedEpisode, step_rewards: Sequence[float]) -> list[float]:
    """Task rewards on tokens, in the shifted alignment (``len(episode) - 1`` entries): reward j
    at the last action token of reasoning step j (steps begin at ``episode.step_starts``), and the
    last reward (with any beyond the episode's steps) at its last action token."""
    scores = [0.0] * (len(episode) - 1)
    actions = [k for k in range(1, len(episode)) if episode.action_mask[k]]
    if not actions or not step_rewards:
        return scores
    # step j ends at the action token just before the start of step j + 1
    starts = [i for i, k in enumerate(actions) if episode.step_starts[k]]
    ends = [actions[i - 1] for i in starts[1:]]
    for j, reward in enumerate(step_rewards):
        last = j == len(step_rewards) - 1 or j >= len(ends)
        scores[(actions[-1] if last else ends[j]) - 1] += float(reward)
    return scores


@torch.no_grad()
def make_experience(
    models: dict[str, Any],
    episodes: Sequence[TokenizedEpisode],
    step_rewards: Sequence[Sequence[float]] | None,
    settings: Any,
    *,
    pad_id: int,
    micro_batch_size: int,
    device: Any = None,
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, float]]:
    """Score sampled episodes for PPO's update: ``{key: {old_logps, old_values, advantages,
    returns}}`` (``[len - 1]`` each, 0 off the action tokens; advantages not yet whitened) plus
    ``return`` (the episode's summed KL-penalised reward, a scalar, for `group_advantages`), and
    totals (``reward``: summed task reward, ``kl``: summed log-ratio to the reference).

    Args:
        models: "policy" (the sampling policy), "reference", "value" (the critic) and, for
            reward=orm, "orm" (its logit after the last action token is the outcome reward).
        episodes: The tokenized samples.
        step_rewards: Each episode's rewards per reasoning step (`oreo_agents.online.rewards`); None
            with reward=orm.
        settings: PPO's settings (kl_coef, gamma, lam).
        pad_id: The tokenizer's pad id.
        micro_batch_size: Sequences per forward pass.
        device: Where the models are.
    """
    out: dict[str, dict[str, torch.Tensor]] = {}
    totals = {"reward": 0.0, "kl": 0.0}
    for start in range(0, len(episodes), micro_batch_size):
        chunk = list(episodes[start : start + micro_batch_size])
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
        labels, mask = shifted(batch)
        logps = sampled_logps(models["policy"], batch, labels, settings.temperature)
        ref = sampled_logps(models["reference"], batch, labels, settings.temperature)
        values = models["value"](batch["input_ids"], batch["attention_mask"])[:, :-1]
        if step_rewards is None:
            outcome = torch.sigmoid(models["orm"](batch["input_ids"], batch["attention_mask"]))
            rewards_of = [[float(outcome[i, _last_action(ep)])] for i, ep in enumerate(chunk)]
        else:
            rewards_of = step_rewards[start : start + micro_batch_size]
        scores = torch.zeros_like(logps)
        for i, (ep, rewards) in enumerate(zip(chunk, rewards_of, strict=True)):
            placed = torch.tensor(place_rewards(ep, rewards), device=scores.device)
            scores[i, : len(placed)] = placed
        rewards = kl_rewards(logps, ref, scores, mask, settings.kl_coef)
        advantages, returns = gae(rewards, values, mask, gamma=settings.gamma, lam=settings.lam)
        totals["reward"] += float(scores.sum())
        totals["kl"] += float(torch.where(mask, logps - ref, torch.zeros_like(ref)).sum())
        for i, ep in enumerate(chunk):
            n = len(ep) - 1
            arrays = (logps, torch.where(mask, values, 0), advantages, returns)
            out[episode_key(ep)] = {
                name: x[i, :n].detach().float().cpu()
                for name, x in zip(EXPERIENCE_FIELDS, arrays, strict=True)
            }
            out[episode_key(ep)]["return"] = rewards[i].sum().detach().float().cpu()
    return out, totals


def group_advantages(
    experience: dict[str, dict[str, torch.Tensor]], episodes: Sequence[TokenizedEpisode]
) -> None:
    """Replace GAE's advantages with RLOO's (`leave_one_out` over each task's samples), the same
    on every action token of a sample (in place; PPOConfig.advantage = group)."""
    keys = [episode_key(ep) for ep in episodes]
    returns = torch.stack([experience[k]["return"] for k in keys])
    advantages = leave_one_out(returns, [ep.task_id for ep in episodes])
    for key, ep, a in zip(keys, episodes, advantages, strict=True):
        mask = torch.tensor(ep.action_mask[1:], dtype=torch.bool)
        experience[key]["advantages"] = torch.where(mask, a, 0.0)


def whiten_experience(
    experience: dict[str, dict[str, torch.Tensor]], episodes: Sequence[TokenizedEpisode]
) -> None:
    """Advantages over all of an iteration's action tokens to mean 0, std 1 (in place, with
    `whiten`)."""
    masks = {episode_key(ep): torch.tensor(ep.action_mask[1:]) for ep in episodes}
    if not masks:
        return
    flat = torch.cat([experience[k]["advantages"][m] for k, m in masks.items()])[None]
    white = whiten(flat, torch.ones_like(flat, dtype=torch.bool))[0]
    offset = 0
    for key, mask in masks.items():
        a = experience[key]["advantages"].clone()
        n = int(mask.sum())
        a[mask] = white[offset : offset + n]
        experience[key]["advantages"] = torch.where(mask, a, 0.0)
        offset += n


def _last_action(episode: TokenizedEpisode) -> int:
    return max(k for k in range(len(episode)) if episode.action_mask[k])


def score_iteration(cfg: Any, policy: str, critic: str, folder: Path) -> dict[str, Any]:
    """Score an online iteration's episodes into ``experience.pt`` (each rank a share, rank 0
    writes), or read the totals of an earlier scoring."""
    path, totals_path = folder / "experience.pt", folder / "experience.json"
    if totals_path.exists():
        return json.loads(totals_path.read_text())
    s = cfg.settings
    tokenizer = load_tokenizer(policy)
    episodes = load_training_episodes(str(folder / "episodes"))
    tokenized = tokenize_episodes(episodes, tokenizer, max_length=cfg.max_length)
    rank, world = rank_world()
    rewards = None if s.reward == "orm" else step_rewards(cfg, episodes, tokenized)
    mine = list(range(rank, len(tokenized), world))
    models = _scoring_models(cfg, policy, critic, device() or "cpu")
    experience, totals = make_experience(
        models, [tokenized[i] for i in mine],
        None if rewards is None else [rewards[i] for i in mine], s,
        pad_id=tokenizer.pad_token_id, micro_batch_size=cfg.micro_batch_size,
        device=device() or "cpu",
    )  # fmt: skip
    del models
    free_memory()
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


def step_rewards(cfg: Any, episodes: list[Any], tokenized: list[Any]) -> list[list[float]]:
    """The reward function's per-step rewards of each tokenized episode (by key)."""
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


def update_config(cfg: Any, policy: str, critic: str, folder: Path, previous: Path | None,
                   it: int, steps: int) -> Any:  # fmt: skip
    """An online iteration's update: `run_train` of PPO on its scored episodes."""
    carried = ""
    if cfg.settings.carry_optimizer and previous is not None:
        last = CheckpointDir(previous).current
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
