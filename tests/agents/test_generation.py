"""The Hugging Face backend on a tiny random model: batching, stops, seeds, per-row sampling."""

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


def test_a_seeded_sample_does_not_depend_on_its_batch(backend):
    """What resumed and re-batched collection relies on: a prompt's draw depends on its seed."""
    params = SamplingParams(n=2, max_new_tokens=16, temperature=1.0)
    alone = backend.generate(["User: 7*8?"], params, seeds=[42])[0]
    batched = backend.generate(["x", "User: 7*8?", "a longer prompt"], params, seeds=[1, 42, 2])
    assert [c.token_ids for c in alone] == [c.token_ids for c in batched[1]]
    assert alone[0].token_ids != alone[1].token_ids  # the two samples are two streams
    other = backend.generate(["User: 7*8?"], params, seeds=[43])[0]
    assert [c.token_ids for c in other] != [c.token_ids for c in alone]


def test_filter_logits_by_hand():
    import torch

    from oreo_agents.generation.sampling import filter_logits

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    inf = float("-inf")
    kept = lambda out: (out > inf).tolist()[0]  # noqa: E731
    assert kept(filter_logits(logits, 1.0, 1.0, 2)) == [True, True, False, False]
    # nucleus 0.8: 0.5 + 0.3 reach it, so the rest goes; 0.81 needs the third token too
    assert kept(filter_logits(logits, 1.0, 0.8, 0)) == [True, True, False, False]
    assert kept(filter_logits(logits, 1.0, 0.81, 0)) == [True, True, True, False]
    assert kept(filter_logits(logits, 1.0, 0.01, 0)) == [True, False, False, False]
    halved = filter_logits(logits, 2.0, 1.0, 0)
    assert torch.allclose(halved, logits / 2)


def test_row_sampler_draws_by_probability():
    import torch

    from oreo_agents.generation.sampling import RowSampler

    logits = torch.log(torch.tensor([[0.7, 0.2, 0.1, 0.0]])).repeat(4000, 1)
    out = RowSampler(range(4000), 1.0, 1.0, 0)(None, logits)
    picked = out.argmax(-1)
    assert (out > float("-inf")).sum(-1).eq(1).all()  # one token left per row
    freq = torch.bincount(picked, minlength=4).float() / 4000
    # binomial standard errors at n = 4000 are below 0.0073: 5 of them is 0.037
    assert torch.allclose(freq, torch.tensor([0.7, 0.2, 0.1, 0.0]), atol=0.037)
    assert freq[3] == 0  # a zero-probability token is never drawn


def test_generate_cached_samples_as_generate_and_runs_each_context_once(chat_model):
    """`HFBackend.generate_cached` (beam search's partial solutions): the same samples as
    `generate` for the same seeds, with one-token and longer prompts side by side; the next
    call's contexts, the last ones grown, run only what they add."""
    import torch

    from oreo_agents.generation.hf import HFBackend

    model, tok = chat_model
    with torch.no_grad():  # sharp weights: what comes next depends on the whole context
        for w in model.parameters():
            w.mul_(8.0 if w.dim() > 1 else 1.0)
    backend = HFBackend(model, tok, batch_size=8)
    texts = ["You are in a room.\n> ", "x = 1\ny = 2\n", "Question: what is 7 * 8?\nAnswer:"]
    prompts = [tok(t)["input_ids"] for t in texts] + [[tok("Q")["input_ids"][0]]]
    params = SamplingParams(n=3, max_new_tokens=6, temperature=1.0)
    seeds = [11, 12, 13, 14]
    ran = []  # tokens per forward, rows x columns, read at the embedding
    hook = model.get_input_embeddings().register_forward_hook(
        lambda _m, args, _out: ran.append(args[0].numel())
    )
    want = backend.generate(prompts, params, seeds)
    whole, ran[:] = sum(ran), []
    got = backend.generate_cached(prompts, params, seeds)
    hook.remove()
    assert [[c.token_ids for c in g] for g in got] == [[c.token_ids for c in g] for g in want]
    # the cached prompts run once each (not once per sample), then one token per row and step
    assert sum(ran) == sum(len(p) - 1 for p in prompts[:3]) + 12 * 6 <= whole / 2
    assert len({tuple(c.token_ids) for g in got for c in g}) > 4  # it sampled, not repeated
    grown = [p + g[0].token_ids for p, g in zip(prompts, got, strict=True)]
    before = backend._prefix.run_tokens
    again = backend.generate_cached(grown, params, seeds)
    added = sum(len(g) - len(p) for g, p in zip(grown, prompts, strict=True))
    assert backend._prefix.run_tokens - before == added  # each context: its new tokens only
    assert again == backend.generate(grown, params, seeds)
