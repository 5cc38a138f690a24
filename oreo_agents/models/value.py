"""The value model: an LM backbone and a scalar head.

A value model folder is the backbone saved by ``save_pretrained`` plus ``value_head.safetensors``
and ``oreo_value.json`` (ARCHITECTURE.md). ``ValueModel.from_pretrained`` also accepts a plain
causal-LM folder: the backbone starts from the LM's weights and the scalar head from zeros, as in
the OREO paper (the value model is initialised from the same checkpoint as the policy).
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
    def from_pretrained(cls, path: str | Path, *, dtype: Any = None) -> ValueModel:
        """Load a value folder, or start one from a causal-LM folder (zero head).

        Raises:
            ValueError: The folder cannot be loaded (message says what to pass).
        """
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:
            backbone = AutoModel.from_pretrained(str(path), dtype=dtype or torch.float32)
        except (OSError, ValueError) as e:
            raise ValueError(f"could not load a value model backbone from {path!r}: {e}") from None
        model = cls(backbone)
        head_file = Path(path) / VALUE_HEAD_FILE
        if head_file.exists():
            from safetensors.torch import load_file

            model.head.load_state_dict(load_file(str(head_file)))
        return model


def is_value_folder(path: str | Path) -> bool:
    return (Path(path) / VALUE_CONFIG_FILE).exists()
