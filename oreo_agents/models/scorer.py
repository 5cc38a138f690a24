"""Scorers: batched functions ``states (token ids) -> values`` for search and reranking.

`ValueScorer` reads a trained value model; `ImplicitScorer` reads the value a trained OREO policy
implies through its log-ratio to the reference (optionally added to a value model's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from oreo_agents.data.inputs import encode_prompt, encode_text
from oreo_agents.losses.logprobs import token_logps
from oreo_agents.models.loading import load_causal_lm, load_tokenizer
from oreo_agents.models.prefix_cache import PrefixCache
from oreo_agents.models.value import ValueModel


class ValueScorer:
    """A `ValueModel` as a batched `oreo_agents.evaluation.search.ValueFn`: the value at the
    last token of each state, given as the token ids of its context, the ids training uses for
    that state (`oreo_agents.data.inputs`: logged ids, or segments encoded alike); `encode`
    builds them from text.

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
        self._prefix: Any = None  # `values_after`'s context caches, made on first use
        self._keep = 4 * batch_size

    @classmethod
    def from_pretrained(
        cls, path: str | Path, tokenizer: Any = None, *, batch_size: int = 16, device=None
    ) -> ValueScorer:
        """Load ``oreo train``'s OUT/value folder (its tokenizer too, unless one is given).

        Raises:
            ValueError: The folder cannot be loaded, or is not a value folder (a policy folder
                would score every state 0 through a fresh zero head).
        """
        model = ValueModel.from_pretrained(path, require_head=True)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if device.startswith("cuda"):
            model = model.to(torch.bfloat16)
        return cls(model.to(device), tokenizer or load_tokenizer(str(path)), batch_size=batch_size)

    def encode(self, prompt: str, continuation: str) -> list[int]:
        """A state's ids from text: the prompt, then the continuation as one segment."""
        return encode_prompt(self.tokenizer, prompt) + encode_text(self.tokenizer, continuation)

    def score_texts(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[float]:
        """Values of states given as text (`encode`)."""
        if len(prompts) != len(continuations):
            raise ValueError("prompts and continuations differ in length")
        return self([self.encode(p, c) for p, c in zip(prompts, continuations, strict=True)])

    def _score(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        device = next(self.model.parameters()).device
        out = self.model(ids.to(device), mask.to(device))
        last = (mask.sum(dim=1) - 1).to(out.device)
        return out[torch.arange(len(ids), device=out.device), last]

    def __call__(self, states: Sequence[Sequence[int]]) -> list[float]:
        return _scored(self, states)

    def keep_contexts(self, n: int) -> None:
        """Keep the caches of at least ``n`` contexts for `values_after` (one per episode
        acting side by side: fewer, and each step runs every history whole again)."""
        self._keep = max(self._keep, n)
        if self._prefix is not None:
            self._prefix.capacity = self._keep

    def values_after(
        self, context: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> list[float]:
        """The values of the states ``context + c``, one per continuation ``c`` (an agent's
        candidate actions after its history, a beam's candidate steps after its partial
        solution): ``self([context + c for c in continuations])``, computed once over the
        context. Its key/value cache is kept and extended at the next call (the same history
        one step on), and the continuations run packed into one sequence after it
        (`oreo_agents.models.prefix_cache.PrefixCache`); an empty one is the context itself.
        The ``logprob`` form keeps the context's running sum of log-probability terms and its
        last logits beside the cache. A model that is not a `ValueModel` may read all of a
        state: those score whole states."""
        form = getattr(self.model, "form", None)
        if form not in ("last", "logprob") or not hasattr(self.model, "backbone"):
            return self([[*context, *c] for c in continuations])
        if self._prefix is None:
            backbone = self.model.backbone
            if form == "last":  # keeps the last hidden state: the value of the context itself
                keep = lambda out, _new, _previous: (out[0][0, -1], None, 0.0)  # noqa: E731
                self._prefix = PrefixCache(backbone, self._keep, last=keep)
            else:
                self._prefix = PrefixCache(backbone, self._keep, last=self._logprob_last,
                                           output_hidden_states=True)  # fmt: skip
        before = self._prefix.run_tokens
        with torch.inference_mode():
            cache, (hidden, logps, total) = self._prefix.context(list(context))
            values = {i: self._head(hidden) + total for i, c in enumerate(continuations) if not c}
            todo = [i for i, c in enumerate(continuations) if c]
            for start in range(0, len(todo), self.batch_size):
                rows = todo[start : start + self.batch_size]
                chunk = [list(continuations[i]) for i in rows]
                out, paths = self._prefix.packed(cache, len(context), chunk)
                if form == "last":
                    heads = self._head(out[0][0][[path[-1] for path in paths]])
                    values.update(zip(rows, heads.tolist(), strict=True))
                    continue
                states = torch.log_softmax(out.logits[0].float(), dim=-1)
                heads = self._head(out.hidden_states[-1][0][[path[-1] for path in paths]])
                for i, c, path, v in zip(rows, chunk, paths, heads.tolist(), strict=True):
                    # token j is predicted at the row of token j - 1, the first after the context
                    at = torch.tensor(path[:-1], dtype=torch.long, device=states.device)
                    token = torch.tensor(c[1:], dtype=torch.long, device=states.device)
                    lp = torch.cat([logps[c[:1]], states[at, token]])
                    values[i] = v + total + float(self._terms(lp).sum())
        self.scored_tokens += self._prefix.run_tokens - before
        return [float(values[i]) for i in range(len(continuations))]

    def _head(self, hidden: torch.Tensor) -> Any:
        """The linear head on hidden states: a float (one state) or a ``[N]`` tensor."""
        head = self.model.head
        out = head(hidden.to(head.weight.dtype)).squeeze(-1).float()
        return float(out) if out.dim() == 0 else out

    def _terms(self, logps: torch.Tensor) -> torch.Tensor:
        """The logprob form's per-token terms, ``w * log p + c`` (`ValueModel`)."""
        head = self.model.head
        return (head.logprob_weight * logps + head.token_bias).float()

    def _logprob_last(self, out: Any, new: list[int], previous: Any) -> tuple[Any, Any, float]:
        """What the logprob form keeps of a context (`PrefixCache`'s ``last``): the hidden
        state and the log-probabilities at its last token, and the sum of the terms of all its
        tokens after the first (``previous``: the cached context it extends, or None)."""
        logps = torch.log_softmax(out.logits[0].float(), dim=-1)
        ids = torch.tensor(new, dtype=torch.long, device=logps.device)
        lp = logps[:-1].gather(-1, ids[1:, None]).squeeze(-1)  # of new token j, j >= 1
        total = 0.0
        if previous is not None:  # the first new token is predicted by the context before it
            total = previous[2]
            lp = torch.cat([previous[1][ids[:1]], lp])
        return out.hidden_states[-1][0, -1], logps[-1], total + float(self._terms(lp).sum())


@torch.inference_mode()
def _scored(scorer: Any, states: Sequence[Sequence[int]]) -> list[float]:
    """A scorer's ``__call__``: ``scorer._score(ids, mask) -> [B]`` over padded batches."""
    seqs = [list(s) for s in states]
    if not all(seqs):
        raise ValueError("an empty state: a value needs at least one token")
    values = [0.0] * len(seqs)
    for chunk, ids, mask in padded_batches(seqs, scorer.batch_size, scorer.tokenizer):
        for i, v in zip(chunk, scorer._score(ids, mask).tolist(), strict=True):
            values[i] = float(v)
        scorer.scored_tokens += int(mask.sum())
    return values


def padded_batches(seqs: list[list[int]], batch_size: int, tokenizer: Any):
    """``(indices, ids, mask)`` per batch of ``seqs``, sorted by length and right-padded (which
    keeps position ids 0..n-1, the layout training used)."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    pad = tokenizer.pad_token_id or 0
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(seqs[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
            mask[row, : len(seqs[i])] = 1
        yield chunk, ids, mask


class ImplicitScorer:
    """The value a trained OREO policy implies, as a batched
    `oreo_agents.evaluation.search.ValueFn`.

    OREO fits the soft Bellman equation of KL-regularised RL (Wang et al. 2024, Sec. 4): with
    no intermediate reward, ``V(s_{t+1}) = V(s_t) + beta * log(pi / pi_ref)(a_t | s_t)``, so
    along one response ``V(s) = V(s_0) + beta * sum_t log(pi / pi_ref)(a_t | s_t)``. A state's
    score is ``beta`` times the summed log-ratio of all its tokens after the first: the
    prompt's tokens add one constant to every state of that prompt, so the order of a prompt's
    states (beam search, value@K, best-of-K) is the order of the implied V, while scores of
    different prompts are not comparable. In math envs every token after the prompt is an
    action; in agent envs the observations between actions are counted too.

    Args:
        policy: The trained causal LM (``model(input_ids=, attention_mask=).logits``).
        reference: The reference it was trained against (OREO: its start, the SFT policy).
        tokenizer: The policy's tokenizer.
        beta: OREO's KL coefficient (the run's ``beta``; the paper: 0.03 on math).
        value: A `ValueScorer` whose values are added (``--scorer value+implicit``), or None.
        batch_size: Sequences per forward.
    """

    def __init__(
        self,
        policy: Any,
        reference: Any,
        tokenizer: Any,
        *,
        beta: float,
        value: ValueScorer | None = None,
        batch_size: int = 16,
    ):
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.policy, self.reference = policy.eval(), reference.eval()
        self.tokenizer, self.beta, self.value, self.batch_size = tokenizer, beta, value, batch_size
        self.scored_tokens = 0

    @classmethod
    def from_run(
        cls,
        policy: str | Path,
        tokenizer: Any = None,
        *,
        reference: str | None = None,
        beta: float | None = None,
        value: str | None = None,
        batch_size: int = 16,
        device: Any = None,
    ) -> ImplicitScorer:
        """Load the policy folder of an ``oreo train`` OREO run; the reference (the run's
        ``--model``) and ``beta`` come from the run's ``checkpoint/progress.json`` unless given.

        Raises:
            ValueError: No run beside the policy folder and no ``reference`` / ``beta`` given.
        """
        run = _run_config(Path(policy))
        reference = reference or run.get("model")
        beta = beta if beta is not None else run.get("beta")
        if reference is None or beta is None:
            raise ValueError(
                f"{policy} is not the policy of an OREO run (no checkpoint/progress.json with "
                "model and beta beside it): pass --reference DIR and --beta B"
            )
        tokenizer = tokenizer or load_tokenizer(str(policy))
        models = [load_causal_lm(str(path), device=device) for path in (policy, reference)]
        scorer = None
        if value is not None:
            scorer = ValueScorer.from_pretrained(
                value, tokenizer, batch_size=batch_size, device=device
            )
        return cls(*models, tokenizer, beta=float(beta), value=scorer, batch_size=batch_size)

    def _score(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:

        device = next(self.policy.parameters()).device
        ids, mask = ids.to(device), mask.to(device)
        labels, keep = ids[:, 1:], mask[:, 1:].bool()
        ratio = 0.0
        for model, sign in ((self.policy, 1.0), (self.reference, -1.0)):
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            ratio = ratio + sign * token_logps(logits, labels)
        return self.beta * torch.where(keep, ratio, torch.zeros_like(ratio)).sum(dim=1)

    def __call__(self, states: Sequence[Sequence[int]]) -> list[float]:
        values = _scored(self, states)
        if self.value is not None:
            values = [v + w for v, w in zip(values, self.value(states), strict=True)]
        return values


def _run_config(policy: Path) -> dict[str, Any]:

    # OUT/policy links into the newest checkpoint, which holds the run's progress.json
    for progress in (policy.parent / "checkpoint" / "progress.json",
                     policy.resolve().parent / "progress.json"):  # fmt: skip
        if progress.exists():
            return json.loads(progress.read_text()).get("config", {})
    return {}
