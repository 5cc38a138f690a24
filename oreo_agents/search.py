"""Test-time search with a learned value model (OREO, Wang et al. 2024, Sec. 4.3).

- `beam_search`: value-guided step-level beam search for reasoning. Keep B beams; from each,
  sample B candidate next steps (temperature 1, stop at the step delimiter); score every partial
  solution with the value model at its last token; keep the top B unfinished, move finished
  candidates (a final answer, or EOS) to a pool; after the step limit (20) answer with the
  highest-value finished candidate (the best unfinished one when none finished).
- `ValueScorer`: the value model as a batched function ``(prompts, continuations) -> values``.

Every search step makes one generation call for all beams of all problems and one scoring call
for all their candidates, so the model never sees one prompt at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from oreo_agents.generation import Backend, SamplingParams

ValueFn = Callable[[Sequence[str], Sequence[str]], list[float]]
"""``value_fn(prompts, continuations)``: V of the state after each ``prompt + continuation``."""


class ValueScorer:
    """A `ValueModel` as a batched `ValueFn`: the value at the last token of each text.

    Texts are tokenized as in training (`oreo_agents.data.tokenize_episode`): the prompt with a
    BOS when the tokenizer has one, the continuation without special tokens, so a state has the
    token ids the value model learned on.

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
            ValueError: The folder cannot be loaded.
        """
        from oreo_agents.generation.hf import load_tokenizer
        from oreo_agents.models import ValueModel

        model = ValueModel.from_pretrained(path)
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


@dataclass
class SearchResult:
    """The answer of one search.

    Attributes:
        text: The chosen response (its steps concatenated).
        value: Its value under the value model.
        finished: Whether it ended (final answer or EOS) rather than hit the step limit.
        steps: Its number of steps.
        generated_tokens: Tokens generated for this problem over all candidates (search cost).
        candidates: Candidates scored for this problem.
        rounds: Search steps run for this problem.
    """

    text: str
    value: float
    finished: bool
    steps: int
    generated_tokens: int = 0
    candidates: int = 0
    rounds: int = 0


@dataclass
class _Node:
    text: str
    steps: int
    value: float = 0.0
    finished: bool = False


@dataclass
class _Problem:
    beams: list[_Node]
    pool: list[_Node] = field(default_factory=list)
    tokens: int = 0
    candidates: int = 0
    rounds: int = 0
    done: bool = False


def beam_search(
    backend: Backend,
    value_fn: ValueFn,
    prompts: Sequence[str],
    *,
    beam_width: int = 4,
    max_steps: int = 20,
    stop: Sequence[str] = ("\n",),
    is_final: Callable[[str], bool] | None = None,
    max_new_tokens: int = 256,
    temperature: float = 1.0,
    seed: int = 0,
) -> list[SearchResult]:
    """Value-guided step-level beam search over many problems at once (module docstring).

    A problem stops early once its pool holds ``beam_width`` finished candidates, as finished
    hypotheses fill a standard beam, which bounds the cost to ``max_steps * B^2`` steps.
    Identical candidates of one problem are scored once (greedy sampling yields B copies).

    Args:
        backend: The policy's generator.
        value_fn: Scores ``(prompt, partial response)`` pairs, e.g. a `ValueScorer`.
        prompts: One prompt per problem; a response continues it directly.
        beam_width: B (beams kept, and candidates sampled per beam).
        max_steps: Search steps (the paper: 20).
        stop: Step delimiters (kept at the end of each step).
        is_final: Whether a partial response holds a final answer (None: only EOS ends one).
        max_new_tokens: Token budget of one step.
        temperature: Sampling temperature of candidate steps (the paper: 1; 0 = greedy).
        seed: Seeds the sampler (step t uses ``seed * 1_000_003 + t``).

    Returns:
        One `SearchResult` per prompt, in order.
    """
    if beam_width < 1 or max_steps < 1:
        raise ValueError(f"beam_width and max_steps must be >= 1, got {beam_width}, {max_steps}")
    problems = [_Problem(beams=[_Node("", 0)]) for _ in prompts]
    for step in range(max_steps):
        active = [(i, b) for i, p in enumerate(problems) if not p.done for b in p.beams]
        if not active:
            break
        params = SamplingParams(
            n=beam_width,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            stop=tuple(stop),
            seed=seed * 1_000_003 + step,
        )
        outs = backend.generate([prompts[i] + b.text for i, b in active], params)
        fresh: dict[int, dict[str, _Node]] = {}
        for (i, beam), completions in zip(active, outs, strict=True):
            for c in completions:
                problems[i].tokens += len(c.token_ids)
                text = beam.text + c.text
                done = c.finish_reason == "eos" or (is_final is not None and is_final(text))
                fresh.setdefault(i, {}).setdefault(text, _Node(text, beam.steps + 1, 0.0, done))
        flat = [(i, node) for i, nodes in fresh.items() for node in nodes.values()]
        scores = value_fn([prompts[i] for i, _ in flat], [n.text for _, n in flat])
        for (_, node), v in zip(flat, scores, strict=True):
            node.value = float(v)
        for i, nodes in fresh.items():
            _select(problems[i], list(nodes.values()), beam_width)
    return [_answer(p) for p in problems]


def _select(problem: _Problem, candidates: list[_Node], beam_width: int) -> None:
    """Keep the top-B unfinished candidates; finished ones join the pool."""
    problem.rounds += 1
    problem.candidates += len(candidates)
    problem.pool += [c for c in candidates if c.finished]
    unfinished = sorted((c for c in candidates if not c.finished), key=lambda c: -c.value)
    problem.beams = unfinished[:beam_width]
    problem.done = not problem.beams or len(problem.pool) >= beam_width


def _answer(problem: _Problem) -> SearchResult:
    # max() keeps the first of equal values, so ties go to the earlier (cheaper) candidate.
    pick = max(problem.pool or problem.beams, key=lambda c: c.value)
    return SearchResult(
        text=pick.text,
        value=pick.value,
        finished=pick.finished,
        steps=pick.steps,
        generated_tokens=problem.tokens,
        candidates=problem.candidates,
        rounds=problem.rounds,
    )
