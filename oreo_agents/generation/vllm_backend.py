"""vLLM generation (optional extra ``pip install 'oreo[vllm]'``, GPU). Loaded lazily."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from oreo_agents.generation.base import Completion, SamplingParams


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
            seed=params.seed,
        )

    def generate(
        self, prompts: list[str], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        # vLLM seeds each request's sampler on its own: one SamplingParams per prompt.
        sampling = self.sampling_params(params)
        if seeds is not None:
            sampling = [self.sampling_params(replace(params, seed=s % 2**31)) for s in seeds]
        outputs = self.llm.generate(prompts, sampling, use_tqdm=False)
        return [[_completion(o, params) for o in out.outputs] for out in outputs]


def _completion(out: Any, params: SamplingParams) -> Completion:
    if out.finish_reason == "length":
        reason = "length"
    elif out.stop_reason is None:  # vLLM: finished with no stop string/token means EOS
        reason = "eos"
    else:
        reason = "stop"
    return Completion(text=out.text, token_ids=list(out.token_ids), finish_reason=reason)
