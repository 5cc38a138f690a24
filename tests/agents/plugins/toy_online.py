"""A toy online algorithm registered from outside the library: online reward-weighted SFT.

Each iteration the online driver collects episodes of the current policy; this spec scores
them (only counts: the update reads the episodes themselves) and fine-tunes the policy on them,
a failed episode weighted ``floor``. A spec with ``online = True``, ``score``,
``update_config`` and a loss, nothing else (the base spec runs the online driver):
`test_algorithms` installs this module as an ``oreo.algorithms`` plug-in and trains it with
``oreo train --algo toy-online --env ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from oreo_agents.algorithms import Algorithm, register
from oreo_agents.algorithms.base import logits, shifted
from oreo_agents.losses import token_logps


@dataclass(frozen=True)
class OnlineRWRConfig:
    """Online reward-weighted SFT.

    Attributes:
        iterations: Collect + update rounds.
        tasks: Tasks per iteration.
        samples: Episodes per task.
        temperature: Sampling temperature.
        max_new_tokens: Token budget of one generation.
        generation_batch_size: Episodes generated side by side.
        backend: Generation backend.
        chat_template: Prompt through the chat template.
        update_epochs: Passes over each iteration's episodes.
        floor: The weight of a failed episode (a successful one weighs 1).
    """

    iterations: int = 2
    tasks: int = 4
    samples: int = 2
    temperature: float = 1.0
    max_new_tokens: int = 16
    generation_batch_size: int = 8
    backend: str = "hf"
    chat_template: bool = False
    update_epochs: int = 1
    floor: float = 0.1


class OnlineRWR(Algorithm):
    config = OnlineRWRConfig
    online = True
    epochs_setting = "--set update_epochs=N"
    log_keys = ("rwr_loss",)

    def score(self, cfg, policy, critic, folder):
        from oreo_agents.data.batches import load_training_episodes

        episodes = load_training_episodes(str(folder / "episodes"))
        steps = len(episodes) // cfg.batch_size * cfg.settings.update_epochs
        wins = sum(e.success for e in episodes)
        return {"episodes": len(episodes), "success_rate": wins / len(episodes),
                "expected_steps": steps}  # fmt: skip

    def update_config(self, cfg, policy, critic, folder, previous, it, steps):
        left = None if cfg.max_steps is None else cfg.max_steps - steps
        return replace(cfg, data=str(folder / "episodes"), env=None, env_options={},
                       model=policy, out=str(folder / "train"), seed=cfg.seed + it,
                       epochs=cfg.settings.update_epochs, warmup_ratio=0.0,
                       max_steps=left)  # fmt: skip

    def step(self, models, batch, settings):
        labels, mask = shifted(batch)
        logps = token_logps(logits(models["policy"], batch), labels)
        weights = torch.where(batch["rewards"] > 0, 1.0, settings.floor)
        mask = mask.float()
        loss = -(weights[:, None] * logps * mask).sum() / mask.sum().clamp(min=1)
        return loss, {"rwr_loss": loss.detach(), "mean_weight": weights.mean().detach()}


def register_algorithms():
    register(OnlineRWR("toy-online", "online reward-weighted SFT (a test plug-in)"))
