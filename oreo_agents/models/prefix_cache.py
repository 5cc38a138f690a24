"""Scoring many short continuations of one long context with a transformer: the context's
key/value cache, kept and extended from one call to the next, and the continuations run as one
packed sequence after it.

An agent acting step by step scores its admissible actions (the policy, ``--rank-actions``) or
its K candidate actions (the value model, value-guided acting) after a history of about a
thousand tokens that grew by a few dozen since the last step. Without a cache every candidate
pays for the whole history; with `PrefixCache` a step costs one pass over the history's new
tokens and one over the candidates.
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch


class PrefixCache:
    """The key/value caches of the last ``capacity`` contexts a model ran, least recently used
    dropped first, and packed runs of continuations after one of them.

    The caches hold the weights' outputs: make a new `PrefixCache` when the weights change.

    Args:
        model: A transformers model (a causal LM, or a base model) taking a cache, 4-D
            attention masks and position ids.
        capacity: Contexts kept (e.g. 4 x the episodes acting side by side).
        last: What to keep of the output at a context's last token (e.g. the logits there),
            returned by `context`; None keeps nothing.
    """

    def __init__(self, model: Any, capacity: int, last: Callable[[Any], Any] | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.model, self.capacity, self.last = model, capacity, last
        self._entries: OrderedDict[tuple[int, ...], tuple[list[int], Any, Any]] = OrderedDict()
        # the forward argument that takes a cache: ``cache`` since transformers 5.x renamed
        # it, ``past_key_values`` before (looked up once, not per scored step)
        forward = inspect.signature(model.forward).parameters
        self._arg = "cache" if "cache" in forward else "past_key_values"
        self.run_tokens = 0  # tokens run through the model (the cost)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def context(self, ids: list[int]) -> tuple[Any, Any]:
        """``(cache, last)`` of the context ``ids``: the longest context run before that starts
        it (an agent's context at its previous step) is extended by the new tokens, else the
        context runs whole. Kept for the next call."""
        if not ids:
            raise ValueError("an empty context: the model needs at least one token to continue")
        best = None
        for key, (seen, _, _) in self._entries.items():
            n = len(seen)
            if n <= len(ids) and (best is None or n > len(self._entries[best][0])):
                if ids[:n] == seen:
                    best = key
        if best is not None:
            self._entries.move_to_end(best)
            seen, cache, last = self._entries[best]
            if len(seen) == len(ids):
                return cache, last
            cache = copy.deepcopy(cache)  # another context may extend the same one
            new = ids[len(seen) :]
            out = self.model(torch.tensor([new], device=self.device), **{self._arg: cache},
                             use_cache=True)  # fmt: skip
        else:
            new = ids
            out = self.model(torch.tensor([ids], device=self.device), use_cache=True)
        self.run_tokens += len(new)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        last = self.last(out) if self.last is not None else None
        self._entries[tuple(ids)] = (list(ids), cache, last)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return cache, last

    def packed(self, cache: Any, n: int, chunk: list[list[int]], **kwargs: Any) -> Any:
        """The model's output over ``chunk``, continuations of an ``n``-token context whose
        ``cache`` they share, run as one sequence: each token attends to the context and to the
        earlier tokens of its own continuation only (a block-diagonal causal mask; positions
        restart after the context for each), on a copy of the cache (the context's stays as it
        is). Row ``sum(len(c) for c in chunk[:i]) + j`` of the output is token j of
        continuation i; `ends` gives each continuation's last row."""
        flat = [t for c in chunk for t in c]
        mask = torch.zeros(len(flat), n + len(flat), dtype=torch.bool)
        mask[:, :n] = True
        positions, off = [], 0
        for c in chunk:
            k = len(c)
            mask[off : off + k, n + off : n + off + k] = torch.ones(k, k, dtype=torch.bool).tril()
            positions += range(n, n + k)
            off += k
        device = self.device
        self.run_tokens += len(flat)
        return self.model(
            torch.tensor([flat], device=device),
            position_ids=torch.tensor([positions], device=device),
            attention_mask=mask[None, None].to(device),
            **{self._arg: copy.deepcopy(cache)},
            use_cache=True,
            **kwargs,
        )


def ends(chunk: list[list[int]]) -> list[int]:
    """The row of each continuation's last token in a `PrefixCache.packed` output."""
    rows, off = [], 0
    for c in chunk:
        off += len(c)
        rows.append(off - 1)
    return rows
