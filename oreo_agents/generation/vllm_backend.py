"""vLLM generation (optional extra ``pip install 'oreo[vllm]'``, GPU). Loaded lazily."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from oreo_agents.data.inputs import encode_prompt
from oreo_agents.generation.base import Completion, Prompt, SamplingParams, eos_ids


class VLLMBackend:
    """The same interface as `HFBackend`, on a `vllm.LLM`.

    Args:
        model: A hub id or local folder.
        tokenizer: Unused (vLLM loads the model's own); accepted for a uniform signature.
        seed: Seed of the engine.
        **llm_kwargs: Passed to `vllm.LLM` (e.g. ``tensor_parallel_size``,
            ``gpu_memory_utilization``, ``max_model_len``).
    """

    name = "vllm"

    def __init__(self, model: str, tokenizer: Any = None, *, seed: int = 0, **llm_kwargs: Any):
        try:
            import vllm
        except ImportError as e:
            raise ImportError(
                "the vllm backend needs vLLM: pip install 'oreo[vllm]' (GPU machines only)"
            ) from e
        llm_kwargs.pop("batch_size", None)  # vLLM schedules its own batches
        llm_kwargs.pop("device", None)
        self._vllm = vllm
        self.model_name = model
        self.llm = vllm.LLM(model=model, seed=seed, dtype="auto", **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_ids = eos_ids(_generation_config(model), self.tokenizer)

    def sampling_params(self, params: SamplingParams) -> Any:
        """The `vllm.SamplingParams` equivalent of ours (stop strings kept in the text)."""
        return self._vllm.SamplingParams(
            n=params.n,
            max_tokens=params.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,
            stop=list(params.stop) or None,
            include_stop_str_in_output=True,
            skip_special_tokens=False,  # the text is the ids' text, as in the HF backend
            stop_token_ids=self.eos_ids,  # every EOS id of the model's generation config
            seed=params.seed,
        )

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        # Token ids as they are (vLLM's TokensPrompt); texts encoded as the HF backend does, so
        # both backends continue the same ids.
        ids = [encode_prompt(self.tokenizer, p) if isinstance(p, str) else list(p) for p in prompts]
        inputs = [{"prompt_token_ids": x} for x in ids]
        # vLLM seeds each request's sampler on its own: one SamplingParams per prompt.
        sampling = self.sampling_params(params)
        if seeds is not None:
            sampling = [self.sampling_params(replace(params, seed=s % 2**31)) for s in seeds]
        outputs = self.llm.generate(inputs, sampling, use_tqdm=False)
        primary = self.tokenizer.eos_token_id
        return [
            [completion(o, self.eos_ids, primary, self.tokenizer) for o in out.outputs]
            for out in outputs
        ]


def completion(out: Any, eos: list[int], primary: int | None, tokenizer: Any = None) -> Completion:
    """Our `Completion` of a vLLM ``CompletionOutput`` (``text``, ``token_ids``,
    ``finish_reason`` "stop" | "length", ``stop_reason``: None for the tokenizer's EOS, the
    token id for a ``stop_token_ids`` hit, the string for a stop string).

    Any EOS id counts as EOS (an int ``stop_reason`` that is one of ``eos``), so an episode that
    ended on a chat model's second EOS id still gets its EOS target in training; a None
    ``stop_reason`` is the tokenizer's own EOS (``primary``). EOS ids are cut from
    ``token_ids``, as the HF backend does. With ``tokenizer``, a stop string's text is the
    ids' text (vLLM cuts the text at the stop string but keeps the token that completed it),
    as the HF backend does.
    """
    ids = list(out.token_ids)
    if out.finish_reason == "length":
        return Completion(text=out.text, token_ids=ids, finish_reason="length")
    if out.stop_reason is None or (isinstance(out.stop_reason, int) and out.stop_reason in eos):
        eos_id = out.stop_reason if out.stop_reason is not None else primary
        if ids and ids[-1] in eos:
            eos_id = ids.pop()
        return Completion(text=out.text, token_ids=ids, finish_reason="eos", eos_id=eos_id)
    text = out.text if tokenizer is None else tokenizer.decode(ids, skip_special_tokens=False)
    return Completion(text=text, token_ids=ids, finish_reason="stop")


def _generation_config(model: str) -> Any:
    """The ``generation_config.json`` of the model vLLM loaded (its EOS ids), None if absent."""
    try:
        from transformers import GenerationConfig  # after __init__'s vllm check

        return GenerationConfig.from_pretrained(model)
    except (OSError, ValueError):
        return None
