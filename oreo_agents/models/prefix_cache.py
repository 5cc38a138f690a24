"""Scoring many short continuations of one long context with a transformer: the context's
key/value cache, kept and extended from one call to the next, and the continuations run as one
packed sequence after it.

An agent acting step by step scores its admissible actions (the policy, ``--rank-actions``) or
its K candidate actions (the value model, value-guided acting) after a history of about a
thousand tokens that grew by a few dozen since the last step. Without a cache every candidate
pays for the whole history; with `PrefixCache` a step costs one pass over the history's new
tokens and one over the candidates, whose shared beginnings ("go to ...") run once.
"""

from __future__ import annotations

import copy
import inspect
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

TAIL = 16  # ids compared before a whole context (`PrefixCache.context`)


class PrefixCache:
    """The key/value caches of the last ``capacity`` contexts a model ran, least recently used
    dropped first, and packed runs of continuations after one of them.

    The caches hold the weights' outputs: make a new `PrefixCache` when the weights change.

    Args:
        model: A transformers model (a causal LM, or a base model) taking a cache, 4-D
            attention masks and position ids.
        capacity: Contexts kept (e.g. 4 x the episodes acting side by side).
        last: What to keep of a context besides its cache, returned by `context`:
            ``last(out, new, previous)`` of the model's output over the context's ``new`` ids
            (all of them, or those after a cached context) and the ``previous`` context's kept
            value (None when the context ran whole), e.g. the logits at its last token, or a
            running sum over all of its tokens; None keeps nothing.
        **forward_kwargs: Passed to every forward (e.g. ``output_hidden_states=True``).
    """

    def __init__(
        self,
        model: Any,
        capacity: int,
        last: Callable[[Any, list[int], Any], Any] | None = None,
        **forward_kwargs: Any,
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.model, self.capacity, self.last = model, capacity, last
        self.forward_kwargs = forward_kwargs
        self._entries: OrderedDict[tuple[int, ...], tuple[list[int], Any, Any]] = OrderedDict()
        # the forward argument that takes a cache: ``cache`` since transformers 5.x renamed
        # it, ``past_key_values`` before (looked up once, not per scored step)
        forward = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in forward else "past_key_values"
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
        best, longest = None, 0
        for key, (seen, _, _) in self._entries.items():
            n = len(seen)
            # the contexts' last tokens first: the others' differ there, and then the whole
            # compare (over a thousand ids, as many times as there are contexts) is skipped
            if longest < n <= len(ids) and ids[max(n - TAIL, 0) : n] == seen[-TAIL:]:
                if ids[:n] == seen:
                    best, longest = key, n
        previous, kwargs = None, dict(self.forward_kwargs)
        if best is not None:
            self._entries.move_to_end(best)
            seen, cache, previous = self._entries[best]
            if len(seen) == len(ids):
                return cache, previous
            kwargs[self.cache_arg] = fork(cache)  # another context may extend the same one
            new = ids[len(seen) :]
        else:
            new = ids
        out = self.model(torch.tensor([new], device=self.device), use_cache=True, **kwargs)
        self.run_tokens += len(new)
        cache = out.cache if hasattr(out, "cache") else out.past_key_values
        last = self.last(out, new, previous) if self.last is not None else None
        self._entries[tuple(ids)] = (list(ids), cache, last)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return cache, last

    def packed(
        self, cache: Any, n: int, chunk: list[list[int]], **kwargs: Any
    ) -> tuple[Any, list[list[int]]]:
        """The model's output over ``chunk``, continuations of an ``n``-token context whose
        ``cache`` they share, run as one sequence packed as a prefix tree (`prefix_tree`):
        tokens that continuations share run once (an agent's admissible actions share "go to",
        "take ... from"), and each token attends to the context and to its own ancestors only,
        at the position it has in its continuation. Runs on a copy of the cache (the context's
        stays as it is, `fork`). Returns ``(output, rows)``: ``rows[i][j]`` is the output row of
        token j of continuation i."""
        flat, parents, rows = prefix_tree(chunk)
        mask = torch.zeros(len(flat), n + len(flat), dtype=torch.bool)
        mask[:, :n] = True
        positions = []
        for row, parent in enumerate(parents):  # a parent's row precedes its children's
            if parent >= 0:
                mask[row] = mask[parent]
            mask[row, n + row] = True
            positions.append(n if parent < 0 else positions[parent] + 1)
        device = self.device
        self.run_tokens += len(flat)
        out = self.model(
            torch.tensor([flat], device=device),
            position_ids=torch.tensor([positions], device=device),
            attention_mask=mask[None, None].to(device),
            **{self.cache_arg: fork(cache)},
            use_cache=True,
            **{**self.forward_kwargs, **kwargs},
        )
        return out, rows


def fork(cache: Any) -> Any:
    """A copy of ``cache`` that a forward may extend while ``cache`` stays as it was. A
    `DynamicCache` extends each layer by concatenation (`DynamicLayer.update` binds new tensors
    and never writes into the old ones), so its copy is a copy of the layer objects that shares
    their tensors: no key or value is copied. Any other cache is copied deeply."""
    layers = getattr(cache, "layers", None)
    if layers is not None and all(type(layer) is DynamicLayer for layer in layers):
        out = copy.copy(cache)
        out.layers = [copy.copy(layer) for layer in layers]
        return out
    return copy.deepcopy(cache)


def prefix_tree(chunk: list[list[int]]) -> tuple[list[int], list[int], list[list[int]]]:
    """Continuations as a prefix tree in one flat sequence: ``(tokens, parents, rows)``, where
    ``parents[r]`` is the row of token r's predecessor in its continuation (-1 for a first
    token) and ``rows[i]`` the rows of continuation i's tokens. Repeated and shared prefixes
    take one row each; a parent always comes before its children.

    >>> prefix_tree([[5, 6, 7], [5, 6, 8], [9]])
    ([5, 6, 7, 8, 9], [-1, 0, 1, 1, -1], [[0, 1, 2], [0, 1, 3], [4]])
    """
    index: dict[tuple[int, int], int] = {}  # (parent row, token) -> row
    tokens: list[int] = []
    parents: list[int] = []
    rows = []
    for continuation in chunk:
        parent, path = -1, []
        for token in continuation:
            row = index.get((parent, token))
            if row is None:
                row = index[(parent, token)] = len(tokens)
                tokens.append(token)
                parents.append(parent)
            path.append(row)
            parent = row
        rows.append(path)
    return tokens, parents, rows
