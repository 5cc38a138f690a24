"""Value-guided beam search on a scripted policy/value where the best path is known, and the
invariant beam width 1 + greedy == greedy decoding with a real tiny model."""

from __future__ import annotations

import pytest

from oreo_agents.evaluation.search import beam_search
from oreo_agents.generation import Completion, SamplingParams
from oreo_agents.models.scorer import ValueScorer

# A reasoning tree: the text so far -> the next steps the "policy" proposes, most likely first.
# Greedy (the first child each time) walks a -> a2 -> "#### 1" (wrong); the value model knows
# the second branch leads to "#### 2" (right).
TREE = {
    "": ["a\n", "b\n"],
    "a\n": ["a2\n", "a3\n"],
    "b\n": ["b2\n", "b3\n"],
    "a\na2\n": ["#### 1"],
    "a\na3\n": ["#### 3"],
    "b\nb2\n": ["#### 2"],
    "b\nb3\n": ["b4\n"],
}
VALUES = {
    "a\n": 0.1, "b\n": 0.6, "a\na2\n": 0.0, "a\na3\n": 0.2, "b\nb2\n": 0.9, "b\nb3\n": 0.5,
    "a\na2\n#### 1": 0.0, "a\na3\n#### 3": 0.1, "b\nb2\n#### 2": 1.0, "b\nb3\nb4\n": 0.4,
}  # fmt: skip
PROMPT = "Q: ?\n"


class CharTokenizer:
    """One id per character (its code point): enough for search, which only moves ids."""

    bos_token = None

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def decode(self, ids, **kwargs):
        return "".join(chr(i) for i in ids)


TOK = CharTokenizer()


class TreeBackend:
    """Proposes the tree's children of the text after the prompt (cycling when n is larger)."""

    name, model_name, tokenizer = "tree", "tree", TOK

    def __init__(self):
        self.calls: list[list[str]] = []

    def generate(self, prompts, params: SamplingParams, seeds=None) -> list[list[Completion]]:
        texts = [TOK.decode(p) for p in prompts]  # search continues ids, never text
        self.calls.append(texts)
        out = []
        for p in texts:
            children = TREE.get(p[len(PROMPT) :], [""])
            picks = [children[i % len(children)] for i in range(params.n)]
            out.append([Completion(c, TOK(c)["input_ids"], _reason(c)) for c in picks])
        return out


def _reason(step: str) -> str:
    return "stop" if step.endswith("\n") else "eos"


class TableValue:
    tokenizer = TOK

    def __init__(self, values=VALUES, default=None):
        self.calls: list[int] = []
        self.values, self.default = values, default

    def __call__(self, states):
        self.calls.append(len(states))
        texts = [TOK.decode(s) for s in states]
        assert all(t.startswith(PROMPT) for t in texts)  # the prompt's ids come first
        rest = [t[len(PROMPT) :] for t in texts]
        return [self.values[t] if self.default is None else self.values.get(t, self.default)
                for t in rest]  # fmt: skip


def is_final(text: str) -> bool:
    return "####" in text


def test_beam_search_follows_the_value_to_the_best_answer():
    backend, value = TreeBackend(), TableValue()
    (res,) = beam_search(backend, value, [PROMPT], beam_width=2, is_final=is_final)
    assert res.text == "b\nb2\n#### 2" and res.finished and res.value == 1.0
    assert res.steps == 3
    # Round 1: 2 distinct children of the root; round 2: 4 grandchildren; round 3: the two kept
    # beams (b2 0.9, b3 0.5) give "#### 2" (finished) and "b4" -> pool of 1 < B, so a 4th round
    # would run from b4, which has no children here ("" = EOS): finished, pool full.
    assert value.calls == [2, 4, 2, 1]
    assert res.rounds == 4 and res.candidates == 9


def test_beam_width_one_is_greedy_on_the_proposals():
    (res,) = beam_search(TreeBackend(), TableValue(), [PROMPT], beam_width=1, is_final=is_final)
    assert res.text == "a\na2\n#### 1"  # the policy's first choice each step, right or wrong


def test_one_generation_and_one_value_call_per_step_for_all_problems():
    backend, value = TreeBackend(), TableValue()
    results = beam_search(backend, value, [PROMPT] * 3, beam_width=2, is_final=is_final)
    assert [r.text for r in results] == ["b\nb2\n#### 2"] * 3
    assert len(backend.calls) == len(value.calls) == 4
    assert [len(c) for c in backend.calls] == [3, 6, 6, 3]  # all beams of all problems at once
    assert value.calls == [6, 12, 6, 3]


def test_step_limit_answers_with_the_best_unfinished_beam():
    (res,) = beam_search(TreeBackend(), TableValue(), [PROMPT], beam_width=2, max_steps=2)
    assert res.text == "b\nb2\n" and not res.finished and res.value == 0.9


def test_finished_candidates_beat_unfinished_ones_with_higher_values():
    values = dict(VALUES, **{"a\na3\n": 5.0, "a\na3\n#### 3": 0.1, "b\nb2\n#### 2": -1.0})
    (res,) = beam_search(
        TreeBackend(), TableValue(values, default=0.0), [PROMPT], beam_width=2,
        max_steps=3, is_final=is_final,
    )  # fmt: skip
    assert res.finished and res.text == "a\na3\n#### 3"  # the best finished, not b4


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(TreeBackend(), TableValue(), [PROMPT], beam_width=0)


def test_beam_width_one_with_greedy_sampling_equals_greedy_decoding(tiny_model_dir):
    from oreo_agents.generation.hf import HFBackend

    backend = HFBackend(str(tiny_model_dir))
    # Random tiny models repeat a character; these prompts make them write newlines (many
    # steps), letters (steps cut by the token budget) and spaces.
    prompts = ["x = 1\ny = 2\n", "hello world", "Question: 2+2?\nAnswer: "]
    results = beam_search(
        backend, lambda states: [0.0] * len(states), prompts, beam_width=1, max_steps=6,
        stop=("\n",), max_new_tokens=5, temperature=0.0,
    )  # fmt: skip
    for prompt, res in zip(prompts, results, strict=True):
        n_tokens = len(backend.tokenizer(res.text, add_special_tokens=False)["input_ids"])
        params = SamplingParams(max_new_tokens=n_tokens, temperature=0.0)
        ((greedy,),) = backend.generate([prompt], params)
        assert res.text == greedy.text
    assert results[0].steps == 6 and results[0].text == "\n" * 6  # one step per line
    assert results[1].steps == 6 and len(results[1].text) == 30  # 6 steps of 5 tokens


def test_value_scorer_reads_the_value_at_the_last_token(tiny_model_dir):
    import torch

    from oreo_agents.models.value import ValueModel

    model = ValueModel.from_pretrained(tiny_model_dir)
    torch.nn.init.normal_(model.head.weight, std=1.0)
    scorer = ValueScorer(model, backend_tokenizer(tiny_model_dir), batch_size=2)
    prompts, texts = ["ab", "a", "abc"], ["cd", "", "d e f g"]
    got = scorer.score_texts(prompts, texts)
    for p, t, v in zip(prompts, texts, got, strict=True):
        ids = torch.tensor([scorer.encode(p, t)])
        assert v == pytest.approx(model(ids, torch.ones_like(ids))[0, -1].item(), abs=1e-5)


def backend_tokenizer(path):
    from oreo_agents.models.loading import load_tokenizer

    return load_tokenizer(str(path))


@pytest.mark.parametrize("form", ["last", "logprob"])
def test_cached_beam_scores_equal_whole_prefix_scores(tiny_model_dir, form):
    """With a `ValueScorer`, beam search scores each beam's candidates after the beam's cached
    context (`ValueScorer.values_after`); the search takes the same path as with every whole
    prefix scored from scratch, with values equal to 1e-4, and runs fewer value tokens."""
    import torch

    from oreo_agents.generation.hf import HFBackend
    from oreo_agents.models.value import ValueModel

    backend = HFBackend(str(tiny_model_dir))
    model = ValueModel.from_pretrained(tiny_model_dir, form=form)
    torch.nn.init.normal_(model.head.weight, std=1.0, generator=torch.Generator().manual_seed(0))
    if form == "logprob":
        torch.nn.init.constant_(model.head.logprob_weight, 0.5)
    cached = ValueScorer(model, backend.tokenizer, batch_size=4)
    whole = ValueScorer(model, backend.tokenizer, batch_size=4)
    prompts = ["x = 1\ny = 2\n", "Question: 2+2?\nAnswer: "]
    kwargs = {"beam_width": 3, "max_steps": 4, "stop": ("\n", " "), "max_new_tokens": 4,
              "temperature": 1.0, "seed": 3}  # fmt: skip
    got = beam_search(backend, cached, prompts, **kwargs)
    want = beam_search(backend, lambda states: whole(states), prompts, **kwargs)
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.value for r in got] == pytest.approx([r.value for r in want], abs=1e-4)
    assert len({r.value for r in want}) == len(want)  # distinct values: a nonzero head
    assert sum(r.candidates for r in got) > 2 * len(prompts)  # it searched
    assert cached.scored_tokens < whole.scored_tokens
