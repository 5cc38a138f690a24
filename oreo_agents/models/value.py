"""The value model: an LM backbone and a scalar head.

A value model folder is the backbone saved by ``save_pretrained`` plus ``value_head.safetensors``
and ``oreo_value.json`` (ARCHITECTURE.md). For training, ``ValueModel.from_pretrained`` also
accepts a plain causal-LM folder: the backbone starts from the LM's weights and the scalar head
from zeros, as in the OREO paper (the value model is initialised from the same checkpoint as the
policy). Scoring and search pass ``require_head=True``, since a zero head scores everything 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

VALUE_HEAD_FILE = "value_head.safetensors"
VALUE_CONFIG_FILE = "oreo_value.json"


class ValueModel(nn.Module):
    """V(s_t) for every prefix: a transformer backbone and a linear head on its hidden states.

    ``forward`` returns ``[B, T]`` float32 values; ``values[b, t]`` is the value of the state that
    ends at token t (the state before token t + 1).
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.config = backbone.config
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # V = 0 everywhere at the start, as the paper does
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        self.backbone.gradient_checkpointing_enable(**kwargs)

    def add_lora(self, rank: int, alpha: int) -> None:
        """Train the backbone through LoRA adapters (the OREO paper's 7B value models); the head
        stays fully trainable. Needs ``pip install peft``."""
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as e:
            raise ImportError("LoRA needs peft: pip install 'oreo[lora]'") from e
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules="all-linear", lora_dropout=0)
        self.backbone = get_peft_model(self.backbone, config)

    def save_pretrained(self, path: str | Path, **kwargs: Any) -> None:
        import copy

        from safetensors.torch import save_file

        path = Path(path)
        backbone = self.backbone
        if hasattr(backbone, "merge_and_unload"):  # LoRA: save plain merged weights
            backbone = copy.deepcopy(backbone).merge_and_unload()
        backbone.save_pretrained(path, **kwargs)
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(path / VALUE_HEAD_FILE))
        meta = {"format": "oreo-value", "version": 1, "hidden_size": self.config.hidden_size}
        (path / VALUE_CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, dtype: Any = None, require_head: bool = False
    ) -> ValueModel:
        """Load a value folder, or start one from a causal-LM folder (zero head).

        Args:
            path: A value folder, or (unless ``require_head``) a causal-LM folder or hub id.
            dtype: Backbone dtype (default float32).
            require_head: Refuse anything but a value folder (loading a trained value model).

        Raises:
            ValueError: The folder cannot be loaded (message says what to pass).
        """
        if require_head:
            check_value_folder(path)
        from oreo_agents.generation.hf import check_model_source

        kwargs = check_model_source(str(path), "value model backbone")
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            backbone = AutoModel.from_pretrained(str(path), dtype=dtype or torch.float32, **kwargs)
        except (OSError, ValueError) as e:
            raise ValueError(f"could not load a value model backbone from {path!r}: {e}") from None
        model = cls(backbone)
        head_file = Path(path) / VALUE_HEAD_FILE
        if head_file.exists():
            from safetensors.torch import load_file

            model.head.load_state_dict(load_file(str(head_file)))
        return model


def is_value_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder saved by `ValueModel.save_pretrained` (has its metadata)."""
    return (Path(path) / VALUE_CONFIG_FILE).exists()


def check_value_folder(path: str | Path) -> None:
    """Refuse anything but a complete value folder, naming what was given instead.

    Raises:
        ValueError: No such folder, a policy (causal-LM) folder, or a value folder missing a file.
    """
    folder = Path(path)
    hint = "(pass oreo train's OUT/value)"
    if not folder.is_dir():
        raise ValueError(f"no such local folder: {path} {hint}")
    has_config = (folder / VALUE_CONFIG_FILE).exists()
    has_head = (folder / VALUE_HEAD_FILE).exists()
    if has_config and has_head:
        return
    if has_config or has_head:
        missing = VALUE_HEAD_FILE if has_config else VALUE_CONFIG_FILE
        raise ValueError(f"{path} is an incomplete value model folder: no {missing} {hint}")
    if (folder / "config.json").exists():
        raise ValueError(f"{path} is a policy folder, not a value model {hint}")
    raise ValueError(f"{path} holds no value model ({VALUE_CONFIG_FILE}) {hint}")
