"""The value model: an LM backbone and a scalar head.

A value model folder is the backbone saved by ``save_pretrained`` plus ``value_head.safetensors``
and ``oreo_value.json`` (docs/architecture.md). For training, ``ValueModel.from_pretrained`` also
accepts a plain causal-LM folder: the backbone starts from the LM's weights and the scalar head
from zeros, as in the OREO paper (the value model is initialised from the same checkpoint as the
policy). Scoring and search pass ``require_head=True``, since a zero head scores everything 0.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from oreo_agents.losses.logprobs import token_logps
from oreo_agents.models.loading import (
    VALUE_CONFIG_FILE,
    check_model_source,
    is_value_folder,
    load_pretrained,
)

VALUE_HEAD_FILE = "value_head.safetensors"


FORMS = ("last", "logprob")


class ValueModel(nn.Module):
    """V(s_t) for every prefix: a transformer backbone and a linear head on its hidden states.

    ``forward`` returns ``[B, T]`` float32 values; ``values[b, t]`` is the value of the state that
    ends at token t (the state before token t + 1).

    Two forms (``form``):

    - ``"last"``: ``V(s_t) = head(h_t)``, a linear head on the last hidden state (the OREO paper).
    - ``"logprob"``: the backbone is a causal LM, and
      ``V(s_t) = head(h_t) + w * sum_{i <= t} log p(x_i | x_<i) + c * n_t``, the sum over the
      action tokens up to t (``action_mask``; all tokens after the first without one), ``n_t``
      their number, ``w`` and ``c`` learnt from 0. The value's increments then read how
      surprising each token is to the backbone's own LM head, the shape of OREO's soft Bellman
      equation with no intermediate reward, ``V(s_t+1) - V(s_t) = beta log(pi / pi_ref)(a_t | s_t)``
      (Wang et al. 2024, Sec. 4). On ``oreo/Chain-v0`` a head on the last state could not learn
      to verify even from a backbone whose likelihood ranks right chains perfectly; this form
      could (docs/results.md). Scored without an action mask (search), every token after the
      first counts, so a prompt adds one constant to the values of all its states: the order of
      one prompt's states is kept, values of different prompts are not comparable.
    """

    def __init__(self, backbone: nn.Module, *, form: str = "last"):
        super().__init__()
        if form not in FORMS:
            raise ValueError(f"value form must be one of {', '.join(FORMS)}, got {form!r}")
        self.backbone, self.form = backbone, form
        self.config = backbone.config
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)  # V = 0 everywhere at the start, as the paper does
        nn.init.zeros_(self.head.bias)
        if form == "logprob":  # on the head: saved, loaded and trained with it
            self.head.register_parameter("logprob_weight", nn.Parameter(torch.zeros(())))
            self.head.register_parameter("token_bias", nn.Parameter(torch.zeros(())))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        action_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.form == "last":
            hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask)[0]
            return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        hidden = out.hidden_states[-1].to(self.head.weight.dtype)
        values = self.head(hidden).squeeze(-1).float()
        logps = token_logps(out.logits[:, :-1], input_ids[:, 1:])  # of token t + 1
        keep = torch.ones_like(logps, dtype=torch.bool)
        if attention_mask is not None:
            keep = keep & attention_mask[:, 1:].bool()
        if action_mask is not None:
            keep = keep & action_mask[:, 1:].bool()
        head = self.head
        terms = (head.logprob_weight * logps + head.token_bias).float()
        terms = torch.where(keep, terms, torch.zeros_like(terms)).cumsum(dim=1)
        return values + torch.cat([torch.zeros_like(terms[:, :1]), terms], dim=1)

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
        path = Path(path)
        backbone = self.backbone
        if hasattr(backbone, "merge_and_unload"):  # LoRA: save plain merged weights
            backbone = copy.deepcopy(backbone).merge_and_unload()
        backbone.save_pretrained(path, **kwargs)
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        save_file(state, str(path / VALUE_HEAD_FILE))
        meta = {"format": "oreo-value", "version": 1, "hidden_size": self.config.hidden_size,
                "form": self.form}  # fmt: skip
        (path / VALUE_CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: Any = None,
        require_head: bool = False,
        form: str | None = None,
    ) -> ValueModel:
        """Load a value folder, or start one from a causal-LM folder (zero head).

        Args:
            path: A value folder, or (unless ``require_head``) a causal-LM folder or hub id.
            dtype: Backbone dtype (default float32).
            require_head: Refuse anything but a value folder (loading a trained value model).
            form: "last" or "logprob" (`ValueModel`); None: the value folder's, else "last".

        Raises:
            ValueError: The folder cannot be loaded (message says what to pass), its weights do
                not fit its config.json (`check_weights`), or ``form`` differs from the value
                folder's.
        """
        if require_head:
            check_value_folder(path)
        saved = None
        if is_value_folder(path):
            saved = json.loads((Path(path) / VALUE_CONFIG_FILE).read_text()).get("form", "last")
        if form is not None and saved is not None and form != saved:
            raise ValueError(f"{path} holds a value model of form {saved!r}, not {form!r}")
        form = form or saved or "last"
        if form not in FORMS:
            raise ValueError(f"value form must be one of {', '.join(FORMS)}, got {form!r}")

        kwargs = check_model_source(str(path), "value model backbone")
        from transformers import AutoModel, AutoModelForCausalLM  # after check_model_source

        auto = AutoModelForCausalLM if form == "logprob" else AutoModel  # logprob: an LM head
        dtype = dtype or torch.float32
        backbone = load_pretrained(auto, str(path), "value model backbone", dtype=dtype, **kwargs)
        model = cls(backbone, form=form)
        head_file = Path(path) / VALUE_HEAD_FILE
        if head_file.exists():
            model.head.load_state_dict(load_file(str(head_file)))
        return model


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
