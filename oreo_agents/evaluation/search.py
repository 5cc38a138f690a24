"""Test-time search with a learned value model (OREO, Wang et al. 2024, Sec. 4.3).

- `beam_search`: value-guided step-level beam search for reasoning. Keep B beams; from each,
  sample B candidate next steps (temperature 1, stop at the step delimiter); score every partial
  solution with the value model at its last token; keep the top B unfinished, move finished
  candidates (a final answer, or EOS) to a pool; after the step limit (20) answer with the
  highest-value finished candidate (the best unfinished one when none finished).

Every search step makes one generation call for all beams of all problems. A scorer with a
context cache (`oreo_agents.models.scorer.ValueScorer.values_after`) scores each beam's
candidates after the beam's cached context: a step runs what the beam added since the last step
and the candidates' new tokens, packed into one sequence, so a path's tokens run through the
value model about once, as when reranking finished samples; any other scorer gets one call for
all candidates of the step, as whole states. A partial solution is
kept as the ids the policy generated, and the value model scores exactly those (after the
prompt's ids, `oreo_agents.data.inputs.policy_prompt_ids`), the ids training reads from a logged
episode of the same steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from oreo_agents.data.inputs import policy_prompt_ids
from oreo_agents.generation import Backend, SamplingParams
from oreo_agents.generation.base import derive_seed


class ValueFn(Protocol):
    """``value_fn(states)``: V of each state, a context given as token ids (the policy's
    tokenizer, ``value_fn.tokenizer``), e.g. `oreo_agents.models.scorer.ValueScorer`."""

    tokenizer: Any

    def __call__(self, states: Sequence[Sequence[int]]) -> list[float]: ...


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
    ids: list[int] = field(default_factory=list)  # the generated ids of ``text``


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
    top_p: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    control: str = "",
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
        top_p: Nucleus sampling mass of candidate steps.
        top_k: Top-k sampling of candidate steps (0 = off).
        seed: Seeds the sampler (`_step`: a beam's samples depend on the seed, the step, the
            problem and the beam's rank only).
        control: Text before each prompt, as its own segment (return-conditioned policies).

    Returns:
        One `SearchResult` per prompt, in order.
    """
    if beam_width < 1 or max_steps < 1:
        raise ValueError(f"beam_width and max_steps must be >= 1, got {beam_width}, {max_steps}")
    tok = backend.tokenizer
    prompt_ids = [policy_prompt_ids(tok, p, control) for p in prompts]
    problems = [_Problem(beams=[_Node("", 0)]) for _ in prompts]
    params = SamplingParams(n=beam_width, max_new_tokens=max_new_tokens, temperature=temperature,
                            top_p=top_p, top_k=top_k, stop=tuple(stop))  # fmt: skip
    # a backend that keeps its contexts' caches (`HFBackend.generate_cached`) searches as many
    # problems at once as fill one of its batches (B beams x B samples each), which bounds the
    # caches it keeps
    at_once = len(prompts)
    if hasattr(backend, "generate_cached"):
        at_once = max(1, getattr(backend, "batch_size", 0) // beam_width**2)
    for first in range(0, len(prompts), at_once):
        group = range(first, min(first + at_once, len(prompts)))
        for step in range(max_steps):
            if not _step(backend, value_fn, problems, group, prompt_ids, params, step, seed,
                         is_final):  # fmt: skip
                break
    return [_answer(p) for p in problems]


def _step(backend, value_fn, problems, group, prompt_ids, params, step, seed, is_final) -> bool:
    """One search step of the problems in ``group``: sample B candidates from each beam,
    score them, keep the best; False when every problem of the group is done. Beam j of
    problem i samples from seed ``(seed, step, i, j)``, whichever problems search beside it."""
    ranked = [(i, j, b) for i in group if not problems[i].done
              for j, b in enumerate(problems[i].beams)]  # fmt: skip
    if not ranked:
        return False
    active = [(i, b) for i, _, b in ranked]
    contexts = [prompt_ids[i] + b.ids for i, b in active]
    seeds = [derive_seed(seed, step, i, j) for i, j, _ in ranked]
    cached = getattr(backend, "generate_cached", None)
    if cached is not None:
        backend.keep_contexts(len(active))
        outs = cached(contexts, params, seeds)
    else:
        outs = backend.generate(contexts, params, seeds)
    fresh: dict[int, dict[str, _Node]] = {}
    children: list[list[tuple[_Node, list[int]]]] = []  # each active beam's new candidates
    for (i, beam), completions in zip(active, outs, strict=True):
        children.append([])
        for c in completions:
            problems[i].tokens += len(c.token_ids)
            text = beam.text + c.text
            done = c.finish_reason == "eos" or (is_final is not None and is_final(text))
            node = _Node(text, beam.steps + 1, 0.0, done, beam.ids + list(c.token_ids))
            if text not in fresh.setdefault(i, {}):
                fresh[i][text] = node
                children[-1].append((node, list(c.token_ids)))
    _score(value_fn, list(zip(contexts, children, strict=True)))
    for i, nodes in fresh.items():
        _select(problems[i], list(nodes.values()), params.n)
    return True


def _score(value_fn: ValueFn, beams: list[tuple[list[int], list[tuple[_Node, list[int]]]]]):
    """Set the values of the beams' new candidates, given per beam as ``(context ids,
    [(candidate, its new ids)])``: after the beam's cached context when the scorer has one
    (`ValueScorer.values_after`: a pass over what the context adds since the last step and one
    packed pass over the candidates' new tokens), else of the whole states."""
    after = getattr(value_fn, "values_after", None)
    if after is None:
        flat = [(node, context + new) for context, kids in beams for node, new in kids]
        values = value_fn([state for _, state in flat])
        scored = [(node, v) for (node, _), v in zip(flat, values, strict=True)]
    else:
        value_fn.keep_contexts(len(beams))
        scored = [
            (node, v)
            for context, kids in beams
            if kids
            for (node, _), v in zip(kids, after(context, [new for _, new in kids]), strict=True)
        ]
    for node, v in scored:
        node.value = float(v)


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
