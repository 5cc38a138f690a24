"""Sampling that depends only on a sequence's own seed, never on the batch it runs in.

`transformers` samples every row of a batch from one global generator, so what a row draws
depends on which other rows share its batch and in which order: a resumed or sharded
collection would sample other episodes than an uninterrupted one. Here each row has its own
`torch.Generator`, seeded from (run seed, task, sample, step) by
`oreo_agents.generation.base.derive_seed`, and draws one uniform number per generated token;
`RowSampler` plugs into greedy `generate` as the last logits processor and leaves only the drawn
token, so greedy decoding emits exactly it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def filter_logits(scores: torch.Tensor, temperature: float, top_p: float, top_k: int):
    """``[B, V]`` logits after temperature, top-k (0: off) and nucleus (1.0: off) filtering;
    filtered tokens get -inf, and the most likely token always survives."""
    scores = scores.float() / temperature
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_scores, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_scores, dim=-1) >= top_p  # mass before > p
        sorted_scores = sorted_scores.masked_fill(drop, float("-inf"))
        scores = torch.full_like(scores, float("-inf")).scatter(-1, order, sorted_scores)
    return scores


class RowSampler:
    """A logits processor that samples each row with its own generator (module docstring).

    Args:
        seeds: One seed per row of the batch.
        temperature: > 0.
        top_p: Nucleus mass.
        top_k: Top-k (0: off).
    """

    def __init__(self, seeds: Sequence[int], temperature: float, top_p: float, top_k: int):
        self.seeds, self.temperature, self.top_p, self.top_k = (
            list(seeds),
            temperature,
            top_p,
            top_k,
        )
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.generators is None:
            self.generators = [
                torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds
            ]
        probs = torch.softmax(filter_logits(scores, self.temperature, self.top_p, self.top_k), -1)
        u = torch.stack(
            [torch.rand((), generator=g, device=scores.device) for g in self.generators]
        )
        cdf = probs.cumsum(-1)
        # side='right': the first token whose cumulative mass exceeds the draw (never a 0-prob one)
        picked = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(-1), side="right").clamp(
            max=cdf.shape[-1] - 1
        )
        out = torch.full_like(scores, float("-inf"))
        return out.scatter(-1, picked, 0.0)
