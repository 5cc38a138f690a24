"""PPO (Schulman et al. 2017) for LM agents, online, as Havrilla et al. 2024 ("Teaching Large
Language Models to Reason with Reinforcement Learning", arXiv 2403.04642) compare it with expert
iteration and return-conditioned RL.

`oreo_agents.online.driver` runs the iterations: collect with the current policy, score the
samples (`oreo_agents.algorithms.ppo_experience`: the sampling policy's and the reference's
log-probs, the critic's values, the task reward placed on tokens, per-token KL-penalised
rewards, GAE advantages and returns), then ``ppo_epochs`` passes of clipped policy and value
updates over them, which this spec's ``step`` computes. The critic is a value model initialised
from the policy (zero head). With ``advantage=group`` the advantages are RLOO's instead (each
sample against its task's other samples, `oreo_agents.losses.leave_one_out`).

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

from oreo_agents.algorithms import ppo_experience
from oreo_agents.algorithms.base import Algorithm, driver_set, normalizer, shifted, target_tokens
from oreo_agents.algorithms.ppo_experience import EXPERIENCE_FIELDS, episode_key, sampled_logps
from oreo_agents.data.tokenization import TokenizedEpisode, collate
from oreo_agents.losses import (
    ppo_policy_loss,
    ppo_value_loss,
)
from oreo_agents.models.value import ValueModel
from oreo_agents.online.rewards import reward_names


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
        critic: Where this iteration's critic starts (set by the online driver: --value, else
            --model, at the first iteration, then the previous iteration's critic).
        experience: The scored samples an update reads (set by the online driver).
        carry_optimizer: Start each iteration's optimizers from the previous iteration's
            (Adam's moments and step count, as one PPO run with one optimizer keeps them);
            off: fresh optimizers each iteration. Tested on one process; FSDP and DeepSpeed
            save their optimizer states in their own layouts, which this does not read.
        optimizer_state: The previous iteration's optimizer states (set by the online driver
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
    critic: str = driver_set()
    experience: str = driver_set()
    carry_optimizer: bool = False
    optimizer_state: str = driver_set()

    def __post_init__(self):
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
    trains_value = True
    online = True
    schedule = "constant"
    epochs_setting = "--set ppo_epochs=N"
    default_lr = 1e-6
    log_keys = ("policy_loss", "value_loss", "clip_fraction", "approx_kl")

    def score(self, cfg: Any, policy: str, critic: str, folder: Any) -> dict[str, Any]:
        """Score an iteration's episodes into ``experience.pt`` (`make_experience`), or read
        the totals of an earlier scoring: episodes, success rate, mean reward and KL, and the
        update's expected optimizer steps."""
        return ppo_experience.score_iteration(cfg, policy, critic, folder)

    def update_config(self, cfg: Any, policy: str, critic: str, folder: Any, previous: Any,
                      it: int, steps: int) -> Any:  # fmt: skip
        """The iteration's update: ``ppo_epochs`` passes over its scored episodes from the
        current policy and critic (and, with ``carry_optimizer``, the previous update's
        optimizer states from ``previous``, its train folder)."""
        return ppo_experience.update_config(cfg, policy, critic, folder, previous, it, steps)

    def optimizer_state(self, settings: PPOConfig) -> str | None:
        return settings.optimizer_state or None

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
