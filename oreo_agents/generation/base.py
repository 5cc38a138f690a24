"""The backend interface shared by the Hugging Face, vLLM and served-model implementations."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample continuations.

    Attributes:
        n: Continuations per prompt.
        max_new_tokens: Upper bound on generated tokens per continuation.
        temperature: 0 means greedy decoding.
        top_p: Nucleus sampling mass (1.0 = off).
        top_k: Keep the k most likely tokens (0 = off).
        stop: Strings that end a continuation; the stop string is kept at the end of the text
            (a reasoning step keeps its delimiter, so steps concatenate back to the response).
        seed: Seeds the sampler for this call (None: not reseeded).
    """

    n: int = 1
    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty")
        object.__setattr__(self, "stop", tuple(self.stop))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    """One generated continuation.

    Attributes:
        text: The decoded continuation: the text of ``token_ids`` (so when a stop string was
            hit it ends with the token that completed it, which may reach past it).
        token_ids: Its token ids (EOS and padding excluded).
        finish_reason: "eos" (the model stopped), "stop" (a stop string) or "length".
        eos_id: With "eos", the end-of-sequence id the model emitted (chat models have several,
            e.g. ``<|im_end|>`` and ``<|endoftext|>``); training appends that one.
        text_only: ``token_ids`` are not the ids the model generated but the text encoded
            again (or empty without a tokenizer): a served model whose server did not return
            its ids (`oreo_agents.generation.openai_backend`). The collector logs such an
            action as re-encoded text.
    """

    text: str
    token_ids: list[int]
    finish_reason: Literal["eos", "stop", "length"]
    eos_id: int | None = None
    text_only: bool = False


Prompt = str | Sequence[int]
"""What a backend continues: a text (its first segment's encoding, `oreo_agents.data.inputs`) or
token ids (a context built segment by segment, with the ids the model generated before)."""


class Backend(Protocol):
    """What the collector and rollout need from a generator."""

    name: str
    model_name: str

    def generate(
        self, prompts: Sequence[Prompt], params: SamplingParams, seeds: Sequence[int] | None = None
    ) -> list[list[Completion]]:
        """``params.n`` completions for each prompt, in prompt order. With ``seeds`` (one per
        prompt), what a prompt's samples draw depends on its seed only, not on the batch."""
        ...


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any parts (``derive_seed(seed, task_id, sample, step)``), stable
    across processes and Python versions (no ``hash()`` randomisation)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def eos_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """Every id that ends a generation: ``generation_config.eos_token_id`` (an int or a list:
    Qwen2.5-Instruct and Llama-3-Instruct list two or three; None: no config) and the
    tokenizer's."""
    ids = getattr(generation_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(ids))  # in order, once each
