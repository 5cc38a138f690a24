"""The policy and its frozen reference: causal LMs loaded for training."""

from __future__ import annotations

from typing import Any

import torch

from oreo_agents.models.value import is_value_folder


def load_policy(path: str, *, dtype: Any = None, trainable: bool = True):
    """A causal LM for training (``trainable``) or as the frozen reference."""
    from oreo_agents.generation.hf import load_causal_lm

    if is_value_folder(path):
        raise ValueError(f"{path} is a value model folder, not a policy (pass OUT/policy)")
    model = load_causal_lm(path, device="cpu", dtype=dtype or torch.float32)
    if trainable:
        model.train()
    else:
        model.requires_grad_(False)
    return model
