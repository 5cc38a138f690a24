"""The value model as a batched function ``(prompts, continuations) -> values`` for search."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class ValueScorer:
    """A `ValueModel` as a batched `oreo_agents.evaluation.search.ValueFn`: the value at the
    last token of each text.

    Texts are tokenized as in training (`oreo_agents.data.tokenization.tokenize_episode`): the
    prompt with a BOS when the tokenizer has one, the continuation without special tokens, so a
    state has the token ids the value model learned on.

    Args:
        model: A `ValueModel` (``model(input_ids, attention_mask) -> [B, T]``).
        tokenizer: The policy's tokenizer.
        batch_size: Sequences per forward (sorted by length, right-padded).
    """

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 16):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.tokenizer, self.batch_size = model.eval(), tokenizer, batch_size
        self.scored_tokens = 0  # tokens run through the value model (search cost)

    @classmethod
    def from_pretrained(
        cls, path: str | Path, tokenizer: Any = None, *, batch_size: int = 16, device=None
    ) -> ValueScorer:
        """Load ``oreo train``'s OUT/value folder (its tokenizer too, unless one is given).

        Raises:
            ValueError: The folder cannot be loaded, or is not a value folder (a policy folder
                would score every state 0 through a fresh zero head).
        """
        from oreo_agents.generation.hf import load_tokenizer
        from oreo_agents.models.value import ValueModel

        model = ValueModel.from_pretrained(path, require_head=True)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda"):
            model = model.to(torch.bfloat16)
        return cls(model.to(device), tokenizer or load_tokenizer(str(path)), batch_size=batch_size)

    def encode(self, prompt: str, continuation: str) -> list[int]:
        tok = self.tokenizer
        add_bos = tok.bos_token is not None and not prompt.startswith(tok.bos_token)
        ids = tok(prompt, add_special_tokens=add_bos)["input_ids"]
        if continuation:
            ids += tok(continuation, add_special_tokens=False)["input_ids"]
        return ids

    @torch.inference_mode()
    def __call__(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        seqs = [self.encode(p, c) for p, c in zip(prompts, continuations, strict=True)]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        values = [0.0] * len(seqs)
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(seqs[i]) for i in chunk)
            # Right padding keeps position ids 0..n-1, the layout training used.
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                mask[row, : len(seqs[i])] = 1
            out = self.model(ids.to(device), mask.to(device))
            last = mask.sum(dim=1) - 1
            picked = out[torch.arange(len(chunk)), last.to(out.device)].tolist()
            for row, i in enumerate(chunk):
                values[i] = float(picked[row])
            self.scored_tokens += int(mask.sum())
        return values
