"""`PrefixCache`: a context's key/value cache is reused without being changed by what runs after
it, and cached runs give the logits of whole ones."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from oreo_agents.models.prefix_cache import PrefixCache, fork
from oreo_agents.models.tiny import tiny_model


def _model():
    model, _ = tiny_model(seed=0)
    return model.eval()


@torch.inference_mode()
def test_a_fork_is_extended_while_its_source_stays_as_it_was():
    model = _model()
    arg = PrefixCache(model, 1).cache_arg  # "cache" (transformers 5.x) or "past_key_values"
    context, more = [5, 9, 13, 40, 41], [7, 8, 9]
    out = model(torch.tensor([context]), use_cache=True)
    cache = getattr(out, arg)
    assert isinstance(cache, DynamicCache)
    before = [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]
    copy = fork(cache)
    extended = model(torch.tensor([more]), **{arg: copy}, use_cache=True)
    assert copy.get_seq_length() == len(context) + len(more)
    assert cache.get_seq_length() == len(context)
    for layer, (keys, values) in zip(cache.layers, before, strict=True):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    # the fork shares the context's tensors instead of copying them
    assert fork(cache).layers[0].keys.data_ptr() == cache.layers[0].keys.data_ptr()
    whole = model(torch.tensor([context + more])).logits[0, len(context) :]
    torch.testing.assert_close(extended.logits[0], whole, atol=1e-5, rtol=1e-5)
    # the source is still the context's: extending it again gives the same logits
    again = model(torch.tensor([more]), **{arg: fork(cache)}, use_cache=True)
    torch.testing.assert_close(again.logits, extended.logits)


@torch.inference_mode()
def test_contexts_extended_and_packed_score_as_whole_sequences():
    """One context extended twice (two agents' histories that share their start) and packed
    continuations after each: every score is the whole sequence's."""
    model = _model()
    cache = PrefixCache(model, capacity=4)
    start = [3, 4, 5, 6]
    for history in ([*start, 10, 11], [*start, 20], [*start, 10, 11, 12]):
        kv, _ = cache.context(history)
        continuations = [[30, 31], [30, 32, 33], [40]]
        out, rows = cache.packed(kv, len(history), continuations)
        for continuation, path in zip(continuations, rows, strict=True):
            whole = model(torch.tensor([history + continuation])).logits[0, len(history) :]
            torch.testing.assert_close(out.logits[0, path], whole, atol=1e-5, rtol=1e-5)
        assert kv.get_seq_length() == len(history)  # the packed run left the context's cache


@torch.inference_mode()
def test_a_context_extends_the_longest_context_that_starts_it():
    """Only the ids after the longest cached context that starts a context run
    (``run_tokens``): contexts with the same last ids but another start are not taken for it,
    and a short cached context is found under a much longer one."""
    model = _model()
    cache = PrefixCache(model, capacity=8)
    end = list(range(50, 70))  # longer than the ids compared before a whole context
    short, a, b = [1, 2], [1, 2, *end], [3, 2, *end]
    for ids in (short, a, b):
        cache.context(ids)
    runs = cache.run_tokens
    steps = [([*b, 7], 1), ([1, 2, 9], 1), ([1, 2, *range(100, 130)], 30), ([*a, 8, 9], 2),
             ([4, *end], 21), ([*b, 7], 0)]  # fmt: skip
    for ids, new in steps:
        cache.context(ids)
        assert cache.run_tokens - runs == new, ids
        runs = cache.run_tokens
