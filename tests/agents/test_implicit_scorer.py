"""`ImplicitScorer`: the value an OREO policy implies, beta * sum log(pi / pi_ref), checked on a
hand-built bigram policy / reference pair whose log-probabilities are exact."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from oreo_agents.models.scorer import ImplicitScorer

TOKENIZER = SimpleNamespace(pad_token_id=0)


class Bigram(torch.nn.Module):
    """Next-token logits from the previous token only: row ``table[prev]``."""

    def __init__(self, probs: list[list[float]]):
        super().__init__()
        self.table = torch.nn.Parameter(torch.tensor(probs).log())

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])


# pi(next | prev) and a uniform reference over 3 tokens
POLICY = Bigram([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5], [0.2, 0.4, 0.4]])
REFERENCE = Bigram([[1 / 3] * 3] * 3)


def scorer(**kwargs):
    return ImplicitScorer(POLICY, REFERENCE, TOKENIZER, beta=0.5, **kwargs)


def test_implicit_value_by_hand():
    # state 0 -> 1 -> 2: pi = 0.25 then 0.5, pi_ref = 1/3 each: beta * log(0.125 * 9)
    (value,) = scorer()([[0, 1, 2]])
    assert value == pytest.approx(0.5 * math.log(0.125 * 9), abs=1e-6)
    # the first token has no log-ratio: a one-token state scores 0
    assert scorer()([[2]]) == [0.0]


def test_soft_bellman_step_and_padding():
    """V(child) - V(parent) = beta * log(pi / pi_ref)(a | s); states of several lengths in one
    padded batch score as they do alone."""
    states = [[0, 1], [0, 1, 2], [0, 1, 2, 1], [1, 0]]
    together = scorer(batch_size=4)(states)
    alone = [scorer()([s])[0] for s in states]
    assert together == pytest.approx(alone, abs=1e-6)
    step = together[2] - together[1]  # action 1 after token 2: pi 0.4 against 1/3
    assert step == pytest.approx(0.5 * math.log(0.4 * 3), abs=1e-6)


def test_value_plus_implicit_adds_the_value_model():
    def value_fn(states):
        return [10.0 * len(s) for s in states]

    both = ImplicitScorer(POLICY, REFERENCE, TOKENIZER, beta=0.5, value=value_fn)
    states = [[0, 1], [0, 1, 2]]
    implied = scorer()(states)
    assert both(states) == pytest.approx([implied[0] + 20, implied[1] + 30])


def test_bad_inputs():
    with pytest.raises(ValueError, match="beta must be > 0"):
        ImplicitScorer(POLICY, REFERENCE, TOKENIZER, beta=0)
    with pytest.raises(ValueError, match="empty state"):
        scorer()([[]])


def test_from_run_needs_a_run_or_explicit_settings(tiny_model_dir):
    with pytest.raises(ValueError, match="--reference DIR and --beta B"):
        ImplicitScorer.from_run(tiny_model_dir)
    # with both given, any causal LM pair loads; a model against itself implies V = 0
    same = ImplicitScorer.from_run(tiny_model_dir, reference=str(tiny_model_dir), beta=0.1)
    assert same([[1, 2, 3, 4]]) == [0.0]
