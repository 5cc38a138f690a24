"""`load_backend`: a generation backend by name, each imported only when asked for (vLLM and
the served-model client are optional)."""

from __future__ import annotations

import importlib.util
from typing import Any

from oreo_agents.generation.base import Backend


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def load_backend(name: str, model: str, **kwargs: Any) -> Backend:
    """Build a backend by name: "hf", "vllm", "openai" (a served model: ``model`` is its served
    name, ``base_url`` the server's API root), or "auto" (vLLM when installed and on a GPU).

    Raises:
        ValueError: An unknown name; "openai" without ``base_url``, or with a model the server
            does not serve or a key it rejects (`ServedModelError`).
        ConnectionError: "openai" with no server answering at ``base_url``.
        ImportError: "vllm" asked for but not installed (names the extra to add).
    """
    if name == "auto":
        name = "vllm" if vllm_available() and _cuda() else "hf"
    if name == "hf":
        from oreo_agents.generation.hf import HFBackend

        return HFBackend(model, **kwargs)
    if name == "vllm":
        from oreo_agents.generation.vllm_backend import VLLMBackend

        return VLLMBackend(model, **kwargs)
    if name == "openai":
        from oreo_agents.generation.openai_backend import OpenAIBackend

        return OpenAIBackend(model, **kwargs)
    raise ValueError(f"unknown backend {name!r}; use 'auto', 'hf', 'vllm' or 'openai'")
