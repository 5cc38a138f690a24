"""PPO (Schulman et al. 2017) for LM agents, online, as Havrilla et al. 2024 ("Teaching Large
Language Models to Reason with Reinforcement Learning", arXiv 2403.04642) compare it with expert
iteration and return-conditioned RL.

`oreo_agents.online.driver` runs the iterations: collect with the current policy, score the samples
(`make_experience`: the sampling policy's and the reference's log-probs, the critic's values, the
task reward placed on tokens, per-token KL-penalised rewards, GAE advantages and returns), then
``ppo_epochs`` passes of clipped policy and value updates over them, which this spec's ``step``
computes. The critic is a value model initialised from the policy (zero head). With
``advantage=group`` the advantages are RLOO's instead (each sample against its task's other
samples, `oreo_agents.losses.leave_one_out`).

Defaults: KL coefficient 0.05 to the starting model and a sparse +1 reward (Havrilla et al.
2024); gamma 1, GAE lambda 0.95, clip 0.2 (InstructGPT-style PPO, Ouyang et al. 2022); 4 epochs
per batch (Schulman et al. 2017's Atari setting uses 3-4). The learning rates are our choice for
an LM policy (1e-6) and its critic (5e-6); each is constant over the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from oreo_agents.algorithms.base import Algorithm, logits, normalizer, shifted, target_tokens
from oreo_agents.data.tokenization import TokenizedEpisode, collate
from oreo_agents.losses import (
    gae,
    kl_rewards,
    leave_one_out,
    ppo_policy_loss,
    ppo_value_loss,
    token_logps,
    whiten,
)

EXPERIENCE_FIELDS = ("old_logps", "old_values", "advantages", "returns")


@dataclass(frozen=True)
class PPOConfig:
    """PPO's settings (module docstring for the sources of the defaults).

    Attributes:
        iterations: Collect + update rounds (``--max-steps`` may stop the run earlier).
        tasks: Tasks sampled per iteration (a new seeded sample each iteration).
        samples: Episodes per task per iteration.
        ppo_epochs: Passes over each iteration's episodes.
        kl_coef: Weight of the per-token KL penalty to the reference in the reward (0.05).
        gamma: Discount (1).
        lam: GAE lambda (0.95).
        clip: Policy ratio clip epsilon (0.2).
        value_clip: Clip of the critic's change per iteration (0.2; 0 turns clipping off).
        critic_lr: The critic's learning rate.
        advantage: gae (the critic's GAE advantages, per token) | group (RLOO, Ahmadian et
            al. 2024: every action token of a sample gets its KL-penalised return minus the
            mean return of the other samples of its task; needs samples >= 2; gamma and lam
            do not enter it, and the critic is still fitted and logged but not used).
        whiten_advantages: Normalise each iteration's advantages to mean 0, std 1.
        reward: The task reward: sparse | dense | orm, or a registered reward function
            (`oreo_agents.online.rewards`).
        reward_model: An outcome reward model folder (``oreo train --algo orm``'s OUT/value),
            for reward=orm: its probability of a correct answer replaces the env's reward.
        dense_weight: The dense reward's total bonus for reproducing every intermediate result
            of the reference solution.
        temperature: Sampling temperature of collection; the policy PPO optimises is the
            sampling one, softmax(logits / temperature), so its log-probs, the ratio and the KL
            to the reference (at the same temperature) are computed from scaled logits, as
            TRL's PPO trainer does.
        max_new_tokens: Token budget of one generation.
        generation_batch_size: Episodes generated side by side.
        backend: Generation backend: auto | hf | vllm (vllm reloads the policy each iteration).
        chat_template: Prompt through the tokenizer's chat template.
        reference: The KL reference model ("" = --model, the starting policy).
        critic: Where this iteration's critic starts (set by the iteration loop: --value, else
            --model, at the first iteration, then the previous iteration's critic).
        experience: The scored samples an update reads (set by the iteration loop).
        carry_optimizer: Start each iteration's optimizers from the previous iteration's
            (Adam's moments and step count, as one PPO run with one optimizer keeps them);
            off: fresh optimizers each iteration. Tested on one process; FSDP and DeepSpeed
            save their optimizer states in their own layouts, which this does not read.
        optimizer_state: The previous iteration's optimizer states (set by the iteration loop
            when carry_optimizer is on).
    """

    iterations: int = 10
    tasks: int = 64
    samples: int = 4
    ppo_epochs: int = 4
    kl_coef: float = 0.05
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2
    value_clip: float = 0.2
    critic_lr: float = 5e-6
    advantage: str = "gae"
    whiten_advantages: bool = True
    reward: str = "sparse"
    reward_model: str = ""
    dense_weight: float = 0.5
    temperature: float = 1.0
    max_new_tokens: int = 512
    generation_batch_size: int = 32
    backend: str = "auto"
    chat_template: bool = False
    reference: str = ""
    critic: str = ""
    experience: str = ""
    carry_optimizer: bool = False
    optimizer_state: str = ""

    def __post_init__(self):
        from oreo_agents.online.rewards import reward_names

        for name in ("iterations", "tasks", "samples", "ppo_epochs", "generation_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kl_coef < 0 or self.clip <= 0 or self.value_clip < 0:
            raise ValueError("kl_coef and value_clip must be >= 0 and clip > 0")
        if not (0 <= self.gamma <= 1 and 0 <= self.lam <= 1):
            raise ValueError(f"gamma and lam must lie in [0, 1], got {self.gamma}, {self.lam}")
        if self.temperature <= 0:
            raise ValueError(f"PPO samples its episodes: temperature must be > 0, got "
                             f"{self.temperature}")  # fmt: skip
        if self.advantage not in ("gae", "group"):
            raise ValueError(f"advantage must be gae or group, got {self.advantage!r}")
        if self.advantage == "group" and self.samples < 2:
            raise ValueError("advantage=group baselines a task's samples with each other: "
                             f"samples must be >= 2, got {self.samples}")  # fmt: skip
        if self.reward not in reward_names():
            raise ValueError(f"reward must be one of {reward_names()}, got {self.reward!r}")
        if (self.reward == "orm") != bool(self.reward_model):
            raise ValueError("reward=orm needs reward_model=DIR (an ORM), and only it uses one")


class PPO(Algorithm):
    """The update phase of PPO on scored samples (module docstring); online iterations are
    `oreo_agents.online.driver.run_online`'s."""

    config = PPOConfig
    value = True
    online = True
    schedule = "constant"
    default_lr = 1e-6
    log_keys = ("policy_loss", "value_loss", "clip_fraction", "approx_kl")

    def select(self, episodes: list[Any], settings: PPOConfig, source: str) -> list[Any]:
        if not settings.experience:
            raise ValueError("ppo trains online: give --env (and no --data)")
        return episodes

    def items(self, episodes: list[TokenizedEpisode], settings: PPOConfig, seed: int, source):
        """Each episode with its scored arrays (``settings.experience``), checked to match."""
        experience = torch.load(settings.experience, weights_only=True)
        items = []
        for ep in episodes:
            arrays = experience.get(episode_key(ep))
            if arrays is None:
                raise ValueError(f"{settings.experience} has no scores for episode {ep.task_id}")
            if len(arrays["advantages"]) != len(ep) - 1:
                raise ValueError(f"{settings.experience}: episode {ep.task_id} was scored with "
                                 "other tokens (another tokenizer or max_length?)")  # fmt: skip
            items.append((ep, arrays))
        return items

    def length(self, item: Any) -> int:
        return len(item[0])

    def collate(
        self, items: Sequence[Any], pad_id: int, max_length: int | None = None
    ) -> dict[str, Any]:
        batch = collate([ep for ep, _ in items], pad_id)
        width = batch["input_ids"].shape[1] - 1
        for name in EXPERIENCE_FIELDS:
            padded = torch.zeros(len(items), width)
            for i, (_, arrays) in enumerate(items):
                padded[i, : len(arrays[name])] = arrays[name]
            batch[name] = padded
        return batch

    def value_model(self, model: str, settings: PPOConfig):
        from oreo_agents.models.value import ValueModel

        # the critic is a head on the last state; the logprob form is OREO's (value_form)
        critic = ValueModel.from_pretrained(settings.critic or model, form="last")
        return critic, settings.critic_lr

    def counts(self, items: Sequence[Any]) -> dict[str, float]:
        return {"tokens": sum(target_tokens(episode) for episode, _ in items)}

    def step(self, models: dict[str, Any], batch: dict[str, Any], settings: PPOConfig):
        labels, mask = shifted(batch)
        tokens = normalizer(batch, "tokens")
        logps = sampled_logps(models["policy"], batch, labels, settings.temperature)
        values = models["value"](batch["input_ids"], batch["attention_mask"])[:, :-1]
        policy_loss, metrics = ppo_policy_loss(
            logps, batch["old_logps"], batch["advantages"], mask, clip=settings.clip,
            normalizer=tokens,
        )  # fmt: skip
        value_loss, value_metrics = ppo_value_loss(
            values, batch["old_values"], batch["returns"], mask,
            clip=settings.value_clip or None, normalizer=tokens,
        )  # fmt: skip
        metrics = {**metrics, **value_metrics}
        metrics.update(policy_loss=policy_loss.detach(), value_loss=value_loss.detach())
        return policy_loss + value_loss, metrics


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
    settings: PPOConfig,
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
