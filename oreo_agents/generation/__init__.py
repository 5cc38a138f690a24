"""Generation backends: batched prompts in, K sampled continuations out.

``load_backend("auto", model)`` picks vLLM when it is installed and a GPU is present, else
Hugging Face `transformers` (CPU or GPU). Both honour the same `SamplingParams`.
"""

from oreo_agents.generation.backends import load_backend
from oreo_agents.generation.base import Backend, Completion, SamplingParams

__all__ = ["Backend", "Completion", "SamplingParams", "load_backend"]
