"""Hugging Face `transformers` generation: batched, left-padded, KV-cached; CPU or GPU."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from oreo_agents.data.inputs import encode_prompt
from oreo_agents.generation.base import Completion, Prompt, SamplingParams, derive_seed, eos_ids
from oreo_agents.models.loading import load_causal_lm, load_tokenizer

if TYPE_CHECKING:
    import torch

# torch and transformers load inside the functions: `HFBackend` checks the model folder
# (`load_tokenizer`) before the seconds that importing them takes.


def left_padded(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of id sequences, padded on the left."""
    import torch  # after the model check (see above)

    width = max(len(x) for x in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
    return {"input_ids": ids, "attention_mask": mask}


class HFBackend:
    """Generation with `model.generate`, micro-batched over prompts x samples.

    Args:
        model: A hub id or local folder (or an already loaded model; then pass ``tokenizer``).
        tokenizer: A tokenizer, or None to load it from ``model``.
        device: "cpu", "cuda", ... (default: cuda when available).
        batch_size: Sequences per `generate` call; prompts are sorted by length first so a
            batch pads little.
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any = None, *, device=None, batch_size: int = 32):
        if isinstance(model, str):
            self.model_name = model
            self.tokenizer = tokenizer or load_tokenizer(model)
            self.model = load_causal_lm(model, device=device)
        else:
            if tokenizer is None:
                raise ValueError("pass the tokenizer along with an already loaded model")
            self.model_name = getattr(model, "name_or_path", type(model).__name__)
            self.model, self.tokenizer = model, tokenizer
            self.tokenizer.padding_side = "left"
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.eos_ids = eos_ids(getattr(self.model, "generation_config", None), self.tokenizer)
        from oreo_agents.models.prefix_cache import PrefixCache  # after the model check (see above)

        # the key/value caches of contexts scored (`score_continuations`), with the logits
        # after each
        self._prefix = PrefixCache(
            self.model, 4 * batch_size, last=lambda out, _new, _previous: out.logits[0, -1]
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        """``params.n`` completions per prompt (a text, encoded by
        `oreo_agents.data.inputs.encode_prompt`, or the token ids to continue). Sample j of
        prompt i draws from its own generator seeded by ``(seeds[i], j)`` (default seeds:
        ``(params.seed, i)``), so it does not depend on the batch it runs in
        (`oreo_agents.generation.sampling`)."""
        return self._generate(prompts, params, seeds, cached=False)

    def generate_cached(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        """`generate` for contexts that grow from call to call (a beam search's partial
        solutions): each prompt's key/value cache comes from the contexts kept by earlier calls
        (`oreo_agents.models.prefix_cache.PrefixCache`, extended by the tokens the prompt
        adds), is kept for the next call, and is shared by the prompt's ``params.n`` samples,
        so a prompt's tokens run once, not once per sample and step. Keep at least as many
        contexts as prompts come in one call (`keep_contexts`)."""
        return self._generate(prompts, params, seeds, cached=True)

    def keep_contexts(self, n: int) -> None:
        """Keep the caches of at least ``n`` contexts (`generate_cached`,
        `score_continuations`)."""
        self._prefix.capacity = max(self._prefix.capacity, n)

    def _generate(self, prompts, params, seeds, cached: bool) -> list[list[Completion]]:
        encoded = [
            encode_prompt(self.tokenizer, p) if isinstance(p, str) else list(p) for p in prompts
        ]
        if not all(encoded):
            raise ValueError("an empty prompt: the model needs at least one token to continue")
        if seeds is None:
            # unseeded: fresh entropy, without reseeding torch's global generator as seed() would
            base = params.seed
            if base is None:
                base = int.from_bytes(os.urandom(8), "little")
            seeds = [derive_seed(base, i) for i in range(len(prompts))]
        if len(seeds) != len(prompts):
            raise ValueError(f"{len(seeds)} seeds for {len(prompts)} prompts")
        jobs = [(i, j) for i in range(len(prompts)) for j in range(params.n)]
        lengths = [len(encoded[i]) for i, _ in jobs]
        order = sorted(range(len(jobs)), key=lambda k: lengths[k])
        results: list[Completion | None] = [None] * len(jobs)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            rows = [jobs[k] for k in chunk]
            job_seeds = [derive_seed(seeds[i], j) for i, j in rows]
            batch = [encoded[i] for i, _ in rows]
            outs = self._generate_batch(batch, params, job_seeds, cached)
            for j, out in zip(chunk, outs, strict=True):
                results[j] = out
        grouped: list[list[Completion]] = [[] for _ in prompts]
        for (i, _), out in zip(jobs, results, strict=True):
            grouped[i].append(out)
        return grouped

    def score_continuations(
        self, context: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> list[float]:
        """The model's log-probability of each continuation after ``context`` (summed over
        its tokens): how likely the policy is to write it, e.g. an agent's admissible actions.

        The context's key/value cache is kept and shared by the continuations, which run
        packed into one sequence after it (`oreo_agents.models.prefix_cache.PrefixCache`):
        the cost is one pass over what the context adds to the last one scored plus one over
        the continuations, not one over the context per continuation. (The caches hold the
        weights' outputs: a backend whose model changes must be made anew.)
        """
        import torch  # after the model check (see above)

        if not continuations or not all(continuations):
            raise ValueError("every continuation needs at least one token")
        with torch.inference_mode():
            cache, last = self._prefix.context(list(context))
            first = torch.log_softmax(last.float(), dim=-1)
            totals = []
            for start in range(0, len(continuations), self.batch_size):
                chunk = [list(c) for c in continuations[start : start + self.batch_size]]
                out, rows = self._prefix.packed(cache, len(context), chunk)
                logps = torch.log_softmax(out.logits[0].float(), dim=-1)
                for c, path in zip(chunk, rows, strict=True):
                    # token j of a continuation is predicted at the row of its token j - 1
                    at = torch.tensor(path[:-1], device=logps.device, dtype=torch.long)
                    labels = torch.tensor(c[1:], device=logps.device, dtype=torch.long)
                    totals.append(float(first[c[0]] + logps[at, labels].sum()))
        return totals

    def _generate_batch(
        self, prompts: list[list[int]], params: SamplingParams, seeds: list[int], cached: bool
    ) -> list[Completion]:
        import torch  # after the model check (see above)
        from transformers import LogitsProcessorList  # after the model check (see above)

        from oreo_agents.generation.sampling import RowSampler  # after the model check (see above)

        tok = self.tokenizer
        enc = {k: v.to(self.device) for k, v in left_padded(prompts, tok.pad_token_id).items()}
        # Greedy decoding; when sampling, RowSampler (the last processor) leaves one token per
        # row, drawn from that row's own generator.
        processors = LogitsProcessorList()
        if params.temperature > 0:
            processors.append(RowSampler(seeds, params.temperature, params.top_p, params.top_k))
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "do_sample": False,
            "temperature": None,
            "top_p": None,
            "top_k": None,
            "logits_processor": processors,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": self.eos_ids,  # all of them stop, not only the tokenizer's
            "return_dict_in_generate": True,
        }
        if params.stop:
            from transformers import StoppingCriteriaList  # after the model check (see above)

            prompt_len = enc["input_ids"].shape[1]
            kwargs["stopping_criteria"] = StoppingCriteriaList(
                [_StopOnText(tok, params.stop, prompt_len)]
            )
        with torch.inference_mode():
            if cached and max(map(len, prompts)) > 1:
                kwargs[self._prefix.cache_arg] = self._padded_cache(prompts)
            out = self.model.generate(**enc, **kwargs)
        new = out.sequences[:, enc["input_ids"].shape[1] :].tolist()
        return [self._finish(ids, params) for ids in new]

    def _padded_cache(self, prompts: list[list[int]]) -> Any:
        """One key/value cache for a left-padded batch of ``prompts``: each row holds its
        prompt's cache but the last token (`PrefixCache.context`, so `generate` runs that token
        and samples on), padded on the left with zeros that the attention mask hides. A row's
        positions count from its first real token, as they did when its cache was made."""
        import torch  # after the model check (see above)
        from transformers import DynamicCache  # after the model check (see above)

        caches = {}
        for p in prompts:
            if len(p) > 1 and tuple(p) not in caches:
                caches[tuple(p)] = self._prefix.context(p[:-1])[0]
        some = next(iter(caches.values()))
        width = max(map(len, prompts)) - 1
        layers = []
        for layer in range(len(some.layers)):
            keys, values = [], []
            for p in prompts:
                if len(p) > 1:
                    k, v = (
                        caches[tuple(p)].layers[layer].keys,
                        caches[tuple(p)].layers[layer].values,
                    )
                else:  # a one-token prompt: nothing before the token it runs
                    k = some.layers[layer].keys[:, :, :0]
                    v = some.layers[layer].values[:, :, :0]
                pad = width - k.shape[2]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            layers.append((torch.cat(keys), torch.cat(values)))
        return DynamicCache(layers)

    def _finish(self, ids: list[int], params: SamplingParams) -> Completion:
        # Special tokens the model wrote stay in the text (as in the ids), so the text is the
        # ids' text and re-encoding it gives them back.
        tok = self.tokenizer
        reason, eos = "length", None
        ends = [k for k, t in enumerate(ids) if t in self.eos_ids]
        if ends:
            eos, ids, reason = ids[ends[0]], ids[: ends[0]], "eos"
        else:  # a row stopped early is padded to the batch's length
            while ids and ids[-1] == tok.pad_token_id:
                ids = ids[:-1]
        text = tok.decode(ids, skip_special_tokens=False)
        cut = _first_stop_end(text, params.stop)
        if cut is not None:
            # The text is the ids' text: it ends with the token that completed the stop
            # string, which may reach a few characters past it (``"\n\n"`` for ``"\n"``).
            reason, eos = "stop", None
            ids = _shortest_prefix(tok, ids, cut)
            text = tok.decode(ids, skip_special_tokens=False)
        return Completion(text=text, token_ids=ids, finish_reason=reason, eos_id=eos)


def _first_stop_end(text: str, stops: tuple[str, ...]) -> int | None:
    """End index of the earliest stop string in ``text`` (None when there is none)."""
    best = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i + len(s) < best):
            best = i + len(s)
    return best


def _shortest_prefix(tok: Any, ids: list[int], n_chars: int) -> list[int]:
    """The shortest prefix of ``ids`` whose decoded text is at least ``n_chars`` long."""
    lo, hi = 0, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(tok.decode(ids[:mid], skip_special_tokens=False)) >= n_chars:
            hi = mid
        else:
            lo = mid + 1
    return ids[:lo]


class _StopOnText:
    """Stop a row once its generated text contains a stop string.

    Decodes only the generated tail (enough tokens for the longest stop string, 4 per character
    as a byte-level worst case), so the rule is exactly the one `_first_stop_end` applies
    afterwards; transformers' own ``stop_strings`` matches token strings, which for byte-level
    vocabularies can stop where the decoded text holds no stop string.
    """

    def __init__(self, tokenizer: Any, stops: tuple[str, ...], prompt_len: int):
        self.tokenizer, self.stops, self.prompt_len = tokenizer, stops, prompt_len
        self.window = 4 * max(len(s) for s in stops) + 4

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch  # after the model check (see above)

        generated = input_ids[:, self.prompt_len :]
        tail = generated[:, -self.window :].tolist()
        texts = self.tokenizer.batch_decode(tail, skip_special_tokens=False)
        done = [any(s in text for s in self.stops) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
