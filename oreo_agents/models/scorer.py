"""The value model as a batched function ``states (token ids) -> values`` for search."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


class ValueScorer:
    """A `ValueModel` as a batched `oreo_agents.evaluation.search.ValueFn`: the value at the
    last token of each state, given as the token ids of its context, the ids training uses for
    that state (`oreo_agents.data.inputs`: logged ids, or segments encoded alike); `encode`
    builds them from text.

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
        """A state's ids from text: the prompt, then the continuation as one segment."""
        from oreo_agents.data.inputs import encode_prompt, encode_text

        return encode_prompt(self.tokenizer, prompt) + encode_text(self.tokenizer, continuation)

    def score_texts(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Values of states given as text (`encode`)."""
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        return self([self.encode(p, c) for p, c in zip(prompts, continuations, strict=True)])

    @torch.inference_mode()
    def __call__(self, states: Sequence[Sequence[int]]) -> list[float]:
        seqs = [list(s) for s in states]
        if not all(seqs):
            raise ValueError("an empty state: a value needs at least one token")
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
