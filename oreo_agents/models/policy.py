"""The policy and its frozen reference: causal LMs loaded for training."""

from __future__ import annotations

from typing import Any

import torch

from oreo_agents.models.loading import load_causal_lm


def load_policy(path: str, *, dtype: Any = None, trainable: bool = True):
    """A causal LM for training (``trainable``) or as the frozen reference.

    Raises:
        ValueError: ``path`` cannot load, or is a value model folder (`load_causal_lm`).
    """
    model = load_causal_lm(path, device="cpu", dtype=dtype or torch.float32)
    if trainable:
        model.train()
    else:
        model.requires_grad_(False)
    return model
