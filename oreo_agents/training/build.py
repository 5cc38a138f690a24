"""What `oreo train` trains: the models an algorithm asks for, their AdamW optimizers and
schedules, prepared by accelerate (`build`), and the checks a value model started from another
folder must pass."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from oreo_agents.models.loading import load_tokenizer
from oreo_agents.models.policy import load_policy

if TYPE_CHECKING:
    from oreo_agents.training.config import TrainConfig


def build(cfg: TrainConfig, total_steps: int, accelerator: Any):
    """The models the algorithm asks for (policy; frozen reference; value model), with an AdamW
    optimizer and the algorithm's schedule for each trained one, prepared by ``accelerator``."""
    spec = cfg.spec
    models: dict[str, Any] = {"policy": load_policy(cfg.model)}
    groups = [("policy", cfg.lr)]
    if spec.reference:
        models["reference"] = load_policy(cfg.model, trainable=False)
    if spec.trains_value:
        models["value"], value_lr = spec.value_model(cfg.value or cfg.model, cfg.settings)
        if cfg.value is not None:
            _check_value_vocabulary(cfg, models["policy"], models["value"])
        groups.append(("value", value_lr))
    if cfg.gradient_checkpointing:
        for name, _ in groups:
            models[name].gradient_checkpointing_enable()
    # Models are wrapped first and the optimizers built on the wrapped parameters: FSDP
    # flattens and shards them, and an optimizer over the originals would update nothing.
    for name, _ in groups:
        models[name] = accelerator.prepare_model(models[name])
    if "reference" in models:
        models["reference"] = accelerator.prepare_model(models["reference"], evaluation_mode=True)
    optimizers, schedulers = [], []
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    for name, lr in groups:
        params: Any = models[name].parameters()
        if name == "value" and spec.value_head_lr(cfg.settings) is not None:
            params = _head_groups(models[name], accelerator, lr, spec.value_head_lr(cfg.settings))
        opt = torch.optim.AdamW(params, lr=lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
        optimizers.append(accelerator.prepare_optimizer(opt))
        if spec.schedule == "constant":
            schedule = get_constant_schedule_with_warmup(opt, warmup)
        else:
            schedule = get_cosine_schedule_with_warmup(opt, warmup, max(total_steps, 1))
        schedulers.append(accelerator.prepare_scheduler(schedule))
    return models, optimizers, schedulers


def _head_groups(model: Any, accelerator: Any, lr: float, head_lr: float) -> list[dict]:
    """Two AdamW groups of a prepared value model: its head at ``head_lr``, the rest at ``lr``.

    Raises:
        ValueError: The wrapper hides the head's parameters (FSDP flattens them).
    """
    head = {id(p) for p in accelerator.unwrap_model(model).head.parameters()}
    params = list(model.parameters())
    ours = [p for p in params if id(p) in head]
    if len(ours) != len(head):
        raise ValueError("value_head_lr needs the head's own parameters; FSDP flattens them "
                         "(leave value_head_lr unset there)")  # fmt: skip
    rest = [p for p in params if id(p) not in head]
    return [{"params": rest, "lr": lr}, {"params": ours, "lr": head_lr}]


def _check_value_vocabulary(cfg: TrainConfig, policy: Any, value: Any) -> None:
    """A value model started from another folder reads the policy's token ids: refuse one
    whose tokenizer (or, without a tokenizer file, vocabulary size) differs."""
    ours = policy.config.vocab_size
    theirs = value.config.vocab_size
    if ours != theirs:
        raise ValueError(
            f"--value {cfg.value}: vocabulary of {theirs} tokens, the policy's has {ours}; the "
            "value model must use the policy's tokenizer"
        )
    try:
        other = load_tokenizer(cfg.value)
    except (OSError, ValueError):
        return  # a backbone saved without a tokenizer: the sizes agree, nothing more to check
    if other.get_vocab() != load_tokenizer(cfg.model).get_vocab():
        raise ValueError(
            f"--value {cfg.value}: its tokenizer differs from the policy's ({cfg.model}); the "
            "value model must use the policy's tokenizer"
        )
