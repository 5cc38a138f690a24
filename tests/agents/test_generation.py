"""The Hugging Face backend on a tiny random model: batching, stops, log-probs, seeds."""

from __future__ import annotations

import pytest

from oreo_agents.generation import SamplingParams, load_backend


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return load_backend("hf", str(tiny_model_dir), batch_size=4)


def test_n_samples_per_prompt_in_prompt_order(backend):
    out = backend.generate(["a", "bb", "ccc"], SamplingParams(n=2, max_new_tokens=5, seed=0))
    assert [len(group) for group in out] == [2, 2, 2]
    assert all(len(c.token_ids) <= 5 for g in out for c in g)


def test_stop_string_is_kept_and_ends_the_text(backend):
    params = SamplingParams(n=8, max_new_tokens=64, stop=("e",), seed=1)
    completions = backend.generate(["hello"], params)[0]
    stopped = [c for c in completions if c.finish_reason == "stop"]
    assert stopped, "with 64 random byte tokens some sample should emit an 'e'"
    for c in stopped:
        assert c.text.endswith("e") and c.text.count("e") == 1
        assert backend.tokenizer.decode(c.token_ids) == c.text
    for c in completions:
        if c.finish_reason == "length":
            assert len(c.token_ids) == 64 and "e" not in c.text


def test_greedy_is_deterministic_and_batch_invariant(backend):
    params = SamplingParams(temperature=0, max_new_tokens=12)
    alone = backend.generate(["User: 7*8?"], params)[0][0]
    batched = backend.generate(["x", "User: 7*8?", "a much longer prompt here"], params)[1][0]
    assert alone.token_ids == batched.token_ids  # left padding does not change the result


def test_same_seed_same_samples(backend):
    params = SamplingParams(n=3, max_new_tokens=10, seed=123)
    first = backend.generate(["q"], params)
    again = backend.generate(["q"], params)
    assert [c.token_ids for c in first[0]] == [c.token_ids for c in again[0]]


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1)
    with pytest.raises(ValueError, match="unknown backend"):
        load_backend("tgi", "x")
    with pytest.raises(ValueError, match="could not load the tokenizer '/no/such/model'"):
        load_backend("hf", "/no/such/model")
